// Every operator query is served from an index (EXPLAIN QUERY PLAN), and stays fast on a store
// with many messages.
#include "admin_test_util.hpp"

#include "admin/ops.hpp"
#include "store/schema.hpp"
#include "store/sqlite_store.hpp"

#include <chrono>

using namespace admin_test;
namespace ops = broker::ops;

namespace {

std::string plan_of(const std::string& path, const std::string& sql) {
    return raw(path, "EXPLAIN QUERY PLAN " + sql);
}

/// No full scan of messages: every step on it names an index.
void check_indexed(const std::string& plan, const std::string& index) {
    INFO(plan);
    CHECK(plan.find("SCAN messages\n") == std::string::npos);
    CHECK(plan.find("SCAN messages|") == std::string::npos);
    CHECK(plan.find(index) != std::string::npos);
}

} // namespace

TEST_CASE("every admin list filter is served from an index", "[unit][admin]") {
    testing::temp_dir d;
    open_store(d)->close();
    const std::string path = db_path(d);
    struct shape {
        const char* name;
        std::map<std::string, std::string> params;
        const char* index;
    };
    const shape shapes[] = {
        {"sender", {{"sender", "8093244"}}, "ix_messages_sender"},
        {"receiver", {{"receiver", "9100110"}}, "ix_messages_receiver"},
        {"receivers", {{"receiver", "9100110,9100111"}}, "ix_messages_receiver"},
        {"type", {{"type", "DIALOG_INNBYGGER_EKONTAKT"}}, "ix_messages_type"},
        // The state alone (migration 6): rare states from the partial state index, messages on
        // their way from the pending index, the usual final states from the newest messages.
        {"state (rare)", {{"state", "dead"}}, "ix_messages_state"},
        {"state (unroutable)", {{"state", "unroutable"}}, "ix_messages_state"},
        {"state (on the way)", {{"state", "failed"}}, "ix_messages_pending"},
        {"state (waiting)", {{"state", "waiting"}}, "ix_messages_pending"},
        {"state (usual final)", {{"state", "delivered"}}, "ix_messages_received"},
        {"msgId", {{"msgId", "x"}}, "ux_messages_msg_id"},
        {"time range", {{"from", "-7d"}, {"to", "-1d"}}, "ix_messages_received"},
        {"no filter (newest first)", {}, "ix_messages_received"},
        {"receiver + state + time", {{"receiver", "1"}, {"state", "waiting"}, {"from", "-1h"}},
         "ix_messages_receiver"},
        {"sender + type", {{"sender", "1"}, {"type", "x"}}, "ix_messages_sender"},
    };
    for (auto& s : shapes) {
        SECTION(s.name) {
            auto q = ops::make_query(s.params, broker::store::now_ms());
            REQUIRE(q);
            check_indexed(plan_of(path, broker::store::detail::list_sql(q->filter)), s.index);
        }
    }
    SECTION("conversation: both lookups") {
        broker::store::message_filter f;
        f.conversation = "c";
        check_indexed(plan_of(path, broker::store::detail::list_sql(f)), "ix_messages_conversation");
        broker::store::message_filter g;
        g.msg_id = "c";
        check_indexed(plan_of(path, broker::store::detail::list_sql(g)), "ux_messages_msg_id");
    }
}

TEST_CASE("metrics, store stats and retention queries use their indexes", "[unit][admin]") {
    testing::temp_dir d;
    open_store(d)->close();
    const std::string path = db_path(d);
    using broker::store::detail::operator_sql;
    check_indexed(plan_of(path, operator_sql("oldest")), "ix_messages_received");
    check_indexed(plan_of(path, operator_sql("pending")), "ix_messages_pending");
    check_indexed(plan_of(path, operator_sql("rules")), "ix_messages_rule");
    // The outer DELETE finds rows by primary key; the inner SELECT walks one route's oldest.
    auto prune = plan_of(path, operator_sql("prune"));
    check_indexed(prune, "ix_messages_rule (rule=? AND received_at<?)");
    CHECK(prune.find("USING INDEX sqlite_autoindex_messages_1 (id=?)") != std::string::npos);
    CHECK(raw(path, "SELECT max(version) FROM schema_version") ==
          std::to_string(broker::store::detail::latest_schema_version()) + "\n");
}

TEST_CASE("admin queries stay fast on a store of 200 000 messages", "[unit][admin]") {
    testing::temp_dir d;
    open_store(d)->close();
    const std::string path = db_path(d);
    // Bulk-load with SQL (what intake stores, minus bodies): 200k messages over 30 days, 50
    // receivers, 20 senders, 4 types, mostly final states, a few dead and waiting.
    raw(path, R"(
        PRAGMA synchronous = OFF;
        WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 199999)
        INSERT INTO messages(id, msg_id, kind, msg_type, sender_her, receiver_her, conversation_ref, state,
                             rule, adapter, received_at, updated_at)
        SELECT printf('id-%06d', i), printf('msg-%06d', i), 'msghead',
               CASE i % 4 WHEN 0 THEN 'DIALOG_INNBYGGER_EKONTAKT' WHEN 1 THEN 'DIALOG_NOTAT'
                          WHEN 2 THEN 'DIALOG_SVAR' ELSE 'APPREC' END,
               CAST(8000000 + i % 20 AS TEXT), CAST(9100000 + i % 50 AS TEXT), printf('conv-%05d', i / 4),
               CASE WHEN i % 997 = 0 THEN 'dead' WHEN i % 101 = 0 THEN 'waiting' ELSE 'apprec-ok' END,
               printf('rule-%d', i % 5), printf('adapter-%d', i % 5),
               1700000000000 + i * 12960, 1700000000000 + i * 12960
        FROM n;
    )");
    auto s = open_store(d);
    auto& rd = s->thread_reader();
    const auto now = broker::store::now_ms();
    struct q {
        const char* name;
        std::map<std::string, std::string> params;
        std::size_t expect_at_least;
    };
    const q queries[] = {
        {"sender", {{"sender", "8000007"}, {"limit", "50"}}, 50},
        {"receiver", {{"receiver", "9100013"}, {"limit", "50"}}, 50},
        {"type", {{"type", "DIALOG_NOTAT"}, {"limit", "50"}}, 50},
        {"dead", {{"state", "dead"}, {"limit", "1000"}}, 200},
        {"msgId", {{"msgId", "msg-123456"}}, 1},
        {"conversation", {{"conversation", "conv-01234"}}, 4},
        {"time range", {{"from", "1700500000000"}, {"to", "1700600000000"}, {"limit", "100"}}, 100},
        {"receiver + state", {{"receiver", "9100000"}, {"state", "waiting"}}, 1},
        {"waiting (pending index, sorted)", {{"state", "waiting"}, {"limit", "1000"}}, 1000},
        {"apprec-ok (newest first)", {{"state", "apprec-ok"}, {"limit", "50"}}, 50},
    };
    for (auto& x : queries) {
        auto query = ops::make_query(x.params, now);
        REQUIRE(query);
        auto t0 = std::chrono::steady_clock::now();
        auto rows = ops::list_messages(rd, *query);
        auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        REQUIRE(rows);
        INFO(x.name << ": " << rows->size() << " rows in " << ms << " ms");
        CHECK(rows->size() >= x.expect_at_least);
        CHECK(ms < 250);  // an index walk; a full scan of 200k rows with row reads takes longer
    }
    auto t0 = std::chrono::steady_clock::now();
    auto pend = rd.pending();
    REQUIRE(pend);
    std::int64_t waiting = 0;
    for (auto& p : *pend)
        waiting += p.count;
    CHECK(waiting == 200000 / 101 + 1 - 2);  // i % 101 == 0 but not i % 997 == 0 (i = 0 and 100697 are dead)
    auto stats = rd.stats();
    REQUIRE(stats);
    CHECK(stats->messages == 200000);
    CHECK(stats->oldest_received_at == 1700000000000);
    auto rules = rd.stored_rules();
    REQUIRE(rules);
    CHECK(rules->size() == 5);
    auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    INFO("pending + stats + rules: " << ms << " ms");
    CHECK(ms < 500);
    s->close();
}
