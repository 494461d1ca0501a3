// Operator helpers on a real store: time parsing, filters, retention (what goes, what stays),
// message detail, and the Prometheus text of the metrics.
#include "admin_test_util.hpp"

#include "admin/metrics.hpp"
#include "admin/ops.hpp"

#include <boost/json/serialize.hpp>

using namespace admin_test;
namespace ops = broker::ops;

TEST_CASE("times for filters: ISO 8601, relative, epoch ms", "[unit][admin]") {
    const broker::store::millis now = 1763800000000;  // 2025-11-22T08:26:40Z
    CHECK(*ops::parse_time("2026-11-22", now) == 1795305600000);
    CHECK(*ops::parse_time("2026-11-22T01:14:09Z", now) == 1795309200000 + 14 * 60000 + 9000);
    CHECK(*ops::parse_time("2026-11-22T01:14:09.133Z", now) == *ops::parse_time("2026-11-22T01:14:09Z", now) + 133);
    CHECK(*ops::parse_time("2026-11-22T02:14:09+01:00", now) == *ops::parse_time("2026-11-22T01:14:09Z", now));
    CHECK(*ops::parse_time("-2h", now) == now - 7200000);
    CHECK(*ops::parse_time("-7d", now) == now - 7 * 86400000LL);
    CHECK(*ops::parse_time("-30m", now) == now - 1800000);
    CHECK(*ops::parse_time("1763800000000", now) == 1763800000000);
    for (auto bad : {"", "yesterday", "-5w", "2026-13-01", "2026-11-22T25:00", "2026-11-22X"})
        CHECK_FALSE(ops::parse_time(bad, now));
    auto why = ops::parse_time("yesterday", now);
    REQUIRE_FALSE(why);
    CHECK(why.error().message == "'yesterday' is not a time: use 2026-11-22, 2026-11-22T01:00:00Z, -2h, -30m or -7d");
    CHECK(ops::iso_time(1795309200133) == "2026-11-22T01:00:00.133Z");
}

TEST_CASE("filters: unknown names and bad limits are refused", "[unit][admin]") {
    auto q = ops::make_query({{"receiver", "1,2,3"}, {"limit", "5"}, {"msgId", "m"}}, 0);
    REQUIRE(q);
    CHECK(q->filter.receivers == std::vector<std::string>{"1", "2", "3"});
    CHECK(q->filter.limit == 5);
    CHECK(q->filter.msg_id == "m");
    CHECK_FALSE(ops::make_query({{"colour", "red"}}, 0));
    CHECK_FALSE(ops::make_query({{"limit", "0"}}, 0));
    CHECK_FALSE(ops::make_query({{"limit", "ten"}}, 0));
    CHECK_FALSE(ops::make_query({{"from", "soon"}}, 0));
}

TEST_CASE("conversation: the first message (by MsgId) and every reply", "[unit][admin]") {
    testing::temp_dir d;
    auto s = open_store(d);
    auto first = make("c1", "delivered");
    first.facts.msg_id = "conv-start";
    insert(*s, first);
    auto reply = make("c2", "delivered");
    reply.facts.ref_to_conversation = "conv-start";
    reply.facts.ref_to_parent = "conv-start";
    insert(*s, reply);
    insert(*s, make("other", "delivered"));
    auto q = ops::make_query({{"conversation", "conv-start"}}, 0);
    REQUIRE(q);
    auto rows = ops::list_messages(s->thread_reader(), *q);
    REQUIRE(rows);
    REQUIRE(rows->size() == 2);
    std::set<std::string> ids{(*rows)[0].id, (*rows)[1].id};
    CHECK(ids == std::set<std::string>{"c1", "c2"});
    s->close();
}

TEST_CASE("retention prunes old finished messages per route, in batches, and keeps the rest", "[unit][admin]") {
    testing::temp_dir d;
    auto s = open_store(d);
    // Route 'short' keeps 2 days, route 'long' 30; everything else the global 10 days.
    broker::routing::rule_set rules;
    broker::routing::rule r1;
    r1.id = "short";
    r1.options["retention-days"] = "2";
    broker::routing::rule r2;
    r2.id = "long";
    r2.options["retention-days"] = "30";
    rules.rules = {r1, r2};
    for (int i = 0; i < 7; ++i)
        insert(*s, make("short-old-" + std::to_string(i), "delivered", "short", "a"));
    insert(*s, make("short-new", "delivered", "short", "a"));
    insert(*s, make("short-old-waiting", "waiting", "short", "a"));
    insert(*s, make("short-old-failed", "failed", "short", "a"));
    insert(*s, make("long-old", "apprec-ok", "long", "a"));
    insert(*s, make("long-ancient", "dead", "long", "a"));
    insert(*s, make("gone-rule-old", "delivered", "removed-rule", "a"));
    insert(*s, make("rejected-old", "rejected"));
    insert(*s, make("rejected-new", "rejected"));
    const std::string path = db_path(d);
    const auto day = 86400000LL;
    auto age = [&](const std::string& like, long long days) {
        raw(path, "UPDATE messages SET received_at = received_at - " + std::to_string(days * day) +
                      " WHERE id LIKE '" + like + "'");
    };
    age("short-old%", 3);
    age("long-old", 20);
    age("long-ancient", 31);
    age("gone-rule-old", 11);
    age("rejected-old", 11);
    raw(path, "INSERT INTO transitions(message_id, state, at) SELECT id, 'x', 0 FROM messages");

    auto plan = ops::retention_plan(rules, {"short", "long", "removed-rule"}, 10, broker::store::now_ms());
    REQUIRE(plan);
    CHECK(plan->size() == 4);  // "", short, long, removed-rule (global)

    auto n = ops::prune_sync(*s, rules, 10, 3);  // batches of 3: 7 short ones take three batches
    REQUIRE(n);
    CHECK(*n == 7 + 1 + 1 + 1);
    auto left = raw(path, "SELECT id FROM messages ORDER BY id");
    CHECK(left == "long-old\nrejected-new\nshort-new\nshort-old-failed\nshort-old-waiting\n");
    // Transitions went with their messages; the bodies left (in the body log, whose one segment
    // still holds messages) are read as before.
    CHECK(raw(path, "SELECT count(*) FROM messages WHERE body_seg = 1") == "5\n");
    for (const char* id : {"long-old", "rejected-new", "short-new", "short-old-failed", "short-old-waiting"}) {
        auto b = s->thread_reader().body(id);
        REQUIRE(b);
        CHECK(b->has_value());
    }
    CHECK(raw(path, "SELECT count(*) FROM transitions WHERE message_id NOT IN (SELECT id FROM messages)") == "0\n");

    SECTION("0 days keeps everything; a bad value names the rule") {
        CHECK(*ops::prune_sync(*s, {}, 0, 100) == 0);
        broker::routing::rule_set bad;
        broker::routing::rule r;
        r.id = "weird";
        r.file = "rules.xml";
        r.line = 7;
        r.options["retention-days"] = "soon";
        bad.rules = {r};
        auto e = ops::retention_plan(bad, {}, 0, 0);
        REQUIRE_FALSE(e);
        CHECK(e.error().where() == "rules.xml:7:1: rule 'weird': option retention-days must be 0..36500 days, got 'soon'");
    }
    s->close();
}

TEST_CASE("message detail: transitions, attempts, AppRec and read receipt", "[unit][admin]") {
    testing::temp_dir d;
    auto s = open_store(d);
    insert(*s, make("orig", "routed", "r", "a"));
    auto ap = make("ap", "waiting", "back", "portal");
    ap.facts.kind = broker::doc_kind::apprec;
    ap.original_id = "orig";
    insert(*s, ap);
    auto w = broker::store::write_sync(*s, [](broker::store::write_txn& t) -> broker::result<void> {
        if (auto e = t.set_delivery("orig", 1, 0, "http 503"); !e)
            return e;
        if (auto e = t.set_state("orig", "failed", "attempt 1: http 503"); !e)
            return e;
        if (auto e = t.set_state("orig", "delivered", "delivered by a"); !e)
            return e;
        if (auto e = t.set_apprec("orig", "ap", "Rejected", R"([{"errorCode":"E35","description":"x"}])"); !e)
            return e;
        return t.set_read("orig", "9100110");
    });
    REQUIRE(w);
    auto det = ops::message_detail(s->thread_reader(), "orig");
    REQUIRE(det);
    REQUIRE(*det);
    auto text = boost::json::serialize(**det);
    INFO(text);
    const auto& o = **det;
    CHECK(o.at("message").at("state") == "read");
    CHECK(o.at("message").at("lastError") == "http 503");
    CHECK(o.at("transitions").as_array().size() == 5);  // received, routed, failed, delivered, read
    CHECK(o.at("deliveryAttempts").as_array().size() == 2);
    CHECK(o.at("appRec").at("status") == "Rejected");
    CHECK(o.at("appRec").at("errors").at(0).at("errorCode") == "E35");
    CHECK(o.at("appRec").at("state") == "waiting");
    CHECK(o.at("readReceipt").at("herId") == "9100110");
    auto apd = ops::message_detail(s->thread_reader(), "ap");
    REQUIRE(apd);
    CHECK((**apd).at("original").at("id") == "orig");
    CHECK_FALSE(*ops::message_detail(s->thread_reader(), "nope"));
    s->close();
}

TEST_CASE("metrics: Prometheus text with counters, the latency histogram and store gauges", "[unit][admin]") {
    testing::temp_dir d;
    auto s = open_store(d);
    insert(*s, make("w1", "waiting", "oslo", "visma-oslo"));
    insert(*s, make("r1", "routed", "oslo", "visma-oslo"));
    broker::admin::metrics m;
    m.intake("routed", "oslo", "visma-oslo", "");
    m.intake("routed", "oslo", "visma-oslo", "");
    m.intake("rejected", "", "", "T02");
    m.intake("rejected", "oslo", "visma-oslo", "T10");  // the route's adapter refused the type
    m.intake("unroutable", "", "", "");
    m.delivery("delivered", "oslo", "visma-oslo", 30);
    m.delivery("delivered", "oslo", "visma-oslo", 4000);
    m.delivery("retry", "oslo", "visma-oslo", 0);
    m.delivery("dead", "oslo", "visma-oslo", 0);
    m.pruned(3);
    m.reloaded(true);
    m.reloaded(false);
    std::string t = m.render(*s, 13, 5);
    INFO(t);
    auto has = [&](const std::string& line) { CHECK(t.find(line + "\n") != std::string::npos); };
    has("# TYPE edibroker_messages_in_total counter");
    has("edibroker_messages_in_total{rule=\"oslo\",adapter=\"visma-oslo\"} 2");
    has("edibroker_messages_out_total{rule=\"oslo\",adapter=\"visma-oslo\"} 2");
    has("edibroker_delivery_retries_total{rule=\"oslo\",adapter=\"visma-oslo\"} 1");
    has("edibroker_messages_dead_total{rule=\"oslo\",adapter=\"visma-oslo\"} 1");
    has("edibroker_messages_rejected_total{rule=\"\",adapter=\"\",code=\"T02\"} 1");
    has("edibroker_messages_rejected_total{rule=\"oslo\",adapter=\"visma-oslo\",code=\"T10\"} 1");
    has("edibroker_messages_unroutable_total 1");
    has("# TYPE edibroker_delivery_latency_seconds histogram");
    has("edibroker_delivery_latency_seconds_bucket{rule=\"oslo\",adapter=\"visma-oslo\",le=\"0.025\"} 0");
    has("edibroker_delivery_latency_seconds_bucket{rule=\"oslo\",adapter=\"visma-oslo\",le=\"0.05\"} 1");
    has("edibroker_delivery_latency_seconds_bucket{rule=\"oslo\",adapter=\"visma-oslo\",le=\"5\"} 2");
    has("edibroker_delivery_latency_seconds_bucket{rule=\"oslo\",adapter=\"visma-oslo\",le=\"+Inf\"} 2");
    has("edibroker_delivery_latency_seconds_sum{rule=\"oslo\",adapter=\"visma-oslo\"} 4.03");
    has("edibroker_delivery_latency_seconds_count{rule=\"oslo\",adapter=\"visma-oslo\"} 2");
    has("edibroker_queue_depth{adapter=\"visma-oslo\",state=\"routed\"} 1");
    has("edibroker_queue_depth{adapter=\"visma-oslo\",state=\"waiting\"} 1");
    has("edibroker_store_messages 2");
    has("edibroker_retention_pruned_total 3");
    has("edibroker_reloads_total{result=\"refused\"} 1");
    has("edibroker_registry_parties 13");
    CHECK(t.find("edibroker_oldest_waiting_message_age_seconds{adapter=\"visma-oslo\"} ") != std::string::npos);
    CHECK(t.find("edibroker_store_size_bytes ") != std::string::npos);
    // Every sample line is "name{labels} value" or "name value".
    std::istringstream in(t);
    std::string line;
    while (std::getline(in, line)) {
        if (line.starts_with("#"))
            continue;
        INFO(line);
        CHECK(line.starts_with("edibroker_"));
        CHECK(line.rfind(' ') != std::string::npos);
    }
    s->close();
}
