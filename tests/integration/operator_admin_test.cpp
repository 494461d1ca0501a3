// The admin API and /metrics of a real broker (in process, real store, real vendor receiver):
// message search and detail, dead letters and resend, metrics, registry and routes, reload,
// retention.
#include "broker_env.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <thread>

using namespace testing;
namespace json = boost::json;

namespace {

struct admin_client {
    broker_env& env;
    std::string base() const { return "http://" + env.server->admin_address(); }
    http_response get(const std::string& path) { return http_request("GET", base() + path); }
    http_response post(const std::string& path, const std::string& body = "") {
        return http_request("POST", base() + path, body, {"Content-Type: application/json"});
    }
    json::array list(const std::string& query) {
        auto r = get("/admin/messages" + query);
        INFO(query << " -> " << r.body);
        REQUIRE(r.status == 200);
        auto v = json::parse(r.body);
        REQUIRE(v.is_array());
        return v.as_array();
    }
    json::object detail(const std::string& id) {
        auto r = get("/admin/messages/" + id);
        REQUIRE(r.status == 200);
        return json_of(r);
    }
};

bool has_id(const json::array& a, const std::string& id) {
    for (auto& x : a)
        if (x.as_object().at("id") == id.c_str())
            return true;
    return false;
}

std::string send(broker_env& env, const std::string& doc) {
    auto r = env.post_xml(doc);
    INFO(r.body);
    REQUIRE((r.status == 201 || r.status == 400 || r.status == 422));
    return str(json_of(r), "id");
}

/// Run SQL on the broker's database file with a connection of our own (WAL: beside the broker's).
void sql(const broker::config& cfg, const std::string& text) {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open((cfg.data_dir + "/edibroker.db").c_str(), &db) == SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    char* err = nullptr;
    int rc = sqlite3_exec(db, text.c_str(), nullptr, nullptr, &err);
    INFO((err ? err : ""));
    sqlite3_free(err);
    sqlite3_close(db);
    REQUIRE(rc == SQLITE_OK);
}

std::string to_bergen(const std::string& msg_id) {
    return replace_all(replace_all(dialog_message(msg_id), "<Id>9100110</Id>", "<Id>9100210</Id>"), "<Id>9100100</Id>",
                       "<Id>9100200</Id>");
}

} // namespace

TEST_CASE("admin API: the admin listener is separate and picks a free port with listen port 0",
          "[integration][operator]") {
    broker_env env;
    admin_client admin{env};
    CHECK(env.server->admin_address().rfind("127.0.0.1:", 0) == 0);
    CHECK(env.server->admin_address() != env.server->listen_address());
    auto idx = admin.get("/admin");
    CHECK(idx.status == 200);
    CHECK(idx.body.find("/admin/messages") != std::string::npos);
    // The EDI endpoint does not serve admin paths, and the admin listener no EDI paths.
    CHECK(env.get("/admin/messages").status == 404);
    CHECK(admin.get("/Messages?receiverHerIds=9100110").status == 404);
    CHECK(admin.get("/admin/nothing").status == 404);
    CHECK(admin.post("/admin/messages").status == 405);
    CHECK(admin.get("/admin/messages?colour=red").status == 400);
}

TEST_CASE("admin API: search with every filter, detail with transitions, AppRec and read receipt",
          "[integration][operator]") {
    broker_env env;
    admin_client admin{env};
    const std::string oslo = send(env, dialog_message("a0000001-0000-4000-8000-000000000001"));
    const std::string bergen = send(env, to_bergen("a0000001-0000-4000-8000-000000000002"));
    const std::string bad = send(env, replace_all(dialog_message("a0000001-0000-4000-8000-000000000003"),
                                                  "<MIGversion>v1.2 2006-05-24</MIGversion>", ""));
    env.status(oslo, "delivered");

    CHECK(has_id(admin.list("?receiver=9100110"), oslo));
    CHECK_FALSE(has_id(admin.list("?receiver=9100110"), bergen));
    CHECK(has_id(admin.list("?receiver=9100110,9100210"), bergen));
    CHECK(admin.list("?sender=8093244").size() >= 3);
    CHECK(admin.list("?sender=1").empty());
    CHECK(has_id(admin.list("?state=unroutable"), bergen));
    CHECK(has_id(admin.list("?state=rejected"), bad));
    CHECK(has_id(admin.list("?type=DIALOG_INNBYGGER_EKONTAKT"), oslo));
    CHECK(admin.list("?msgId=a0000001-0000-4000-8000-000000000002").size() == 1);
    CHECK(has_id(admin.list("?conversation=a0000001-0000-4000-8000-000000000001"), oslo));
    CHECK(admin.list("?from=-1h").size() >= 3);
    CHECK(admin.list("?to=-1h").empty());
    CHECK(admin.list("?limit=1").size() == 1);

    // The receiver answers with an AppRec and reads the message.
    auto ap = http_request("POST", env.url("/Messages/" + oslo + "/apprec/9100110"),
                           R"({"appRecStatus":"Rejected","appRecErrorList":[{"errorCode":"E35"}]})",
                           {"Content-Type: application/json"});
    REQUIRE(ap.status == 201);
    REQUIRE(http_request("PUT", env.url("/Messages/" + oslo + "/read/9100110")).status == 204);

    auto d = admin.detail(oslo);
    INFO(json::serialize(d));
    CHECK(d.at("message").at("rule") == "oslo-vendor");
    CHECK(d.at("message").at("adapter") == "vendor");
    std::vector<std::string> states;
    for (auto& t : d.at("transitions").as_array()) {
        states.emplace_back(t.at("state").as_string());
        CHECK_FALSE(t.at("at").as_string().empty());
    }
    CHECK(states == std::vector<std::string>{"received", "validated", "routed", "delivered", "apprec-rejected", "read"});
    CHECK(d.at("deliveryAttempts").as_array().size() == 1);
    CHECK(d.at("appRec").at("status") == "Rejected");
    CHECK(d.at("appRec").at("errors").at(0).at("errorCode") == "E35");
    CHECK(d.at("appRec").at("id") == str(json_of(ap), "id").c_str());
    CHECK(d.at("readReceipt").at("herId") == "9100110");
    // Metadata only: the document's text never appears.
    CHECK(json::serialize(d).find("Testesen") == std::string::npos);

    auto r = admin.detail(bad);
    CHECK(r.at("message").at("errorCode") == "T02");
    CHECK(r.at("appRec").at("status") == "Rejected");
    CHECK(admin.get("/admin/messages/no-such-id").status == 404);
}

TEST_CASE("admin API: dead letters, resend after the endpoint is fixed, metrics", "[integration][operator]") {
    broker_env env;
    admin_client admin{env};
    env.vendor.respond_with(400, R"({"error":"we do not like it"})");  // permanent: dead at once
    const std::string id = send(env, dialog_message("b0000001-0000-4000-8000-000000000001"));
    auto st = env.status(id, "dead");
    REQUIRE(str(st, "state") == "dead");

    auto dead = admin.get("/admin/dead");
    REQUIRE(dead.status == 200);
    auto da = json::parse(dead.body).as_array();
    REQUIRE(has_id(da, id));
    CHECK(da.at(0).at("lastError").as_string().find("permanent failure") != std::string::npos);

    // A rejected message cannot be resent; an unknown one is 404.
    const std::string bad = send(env, "not xml");
    CHECK(admin.post("/admin/messages/" + bad + "/resend").status == 409);
    CHECK(admin.post("/admin/messages/nope/resend").status == 404);

    env.vendor.respond_with(201, R"({"id":"vendor-2"})");
    auto rs = admin.post("/admin/messages/" + id + "/resend");
    INFO(rs.body);
    REQUIRE(rs.status == 200);
    CHECK(str(json_of(rs), "adapter") == "vendor");
    st = env.status(id, "delivered");
    CHECK(str(st, "state") == "delivered");
    auto d = admin.detail(id);
    bool resend_seen = false;
    for (auto& t : d.at("transitions").as_array())
        if (t.as_object().if_contains("detail") &&
            t.at("detail").as_string().find("resend by operator") != std::string_view::npos)
            resend_seen = true;
    CHECK(resend_seen);
    CHECK(d.at("deliveryAttempts").as_array().size() == 2);  // dead, then delivered
    CHECK(admin.get("/admin/dead").body == "[]");

    send(env, to_bergen("b0000001-0000-4000-8000-000000000002"));
    auto m = admin.get("/metrics");
    REQUIRE(m.status == 200);
    CHECK(m.headers["Content-Type"].rfind("text/plain; version=0.0.4", 0) == 0);
    INFO(m.body);
    auto has = [&](const std::string& s) { CHECK(m.body.find(s) != std::string::npos); };
    has("edibroker_messages_in_total{rule=\"oslo-vendor\",adapter=\"vendor\"} 1\n");
    has("edibroker_messages_out_total{rule=\"oslo-vendor\",adapter=\"vendor\"} 1\n");
    has("edibroker_messages_dead_total{rule=\"oslo-vendor\",adapter=\"vendor\"} 1\n");
    has("edibroker_messages_rejected_total{rule=\"\",adapter=\"\",code=\"T01\"} 1\n");
    has("edibroker_messages_unroutable_total 1\n");
    has("edibroker_delivery_latency_seconds_count{rule=\"oslo-vendor\",adapter=\"vendor\"} 1\n");
    has("edibroker_delivery_latency_seconds_bucket{rule=\"oslo-vendor\",adapter=\"vendor\",le=\"+Inf\"} 1\n");
    has("edibroker_store_messages 3\n");
    has("edibroker_store_size_bytes ");
    has("edibroker_store_oldest_message_age_seconds ");
    has("edibroker_store_write_queue_depth ");
    has("edibroker_store_failed_batches_total 0\n");
    // Every accepted or refused message and every delivery outcome went through the writer.
    auto counter = [&](const std::string& name) -> long {
        auto at = m.body.find("\n" + name + " ");
        REQUIRE(at != std::string::npos);
        return std::stol(m.body.substr(at + name.size() + 2));
    };
    const long commits = counter("edibroker_store_commits_total"), ops = counter("edibroker_store_write_ops_total");
    CHECK(commits >= 1);
    CHECK(ops >= commits);
    CHECK(counter("edibroker_store_largest_batch") >= 1);
    CHECK(counter("edibroker_store_largest_batch") <= ops);
    has("edibroker_registry_parties 7\n");
    CHECK(counter("edibroker_store_body_log_bytes") > 0);  // the three bodies are in the body log

    auto s = admin.get("/admin/store");
    REQUIRE(s.status == 200);
    auto so = json_of(s);
    CHECK(so.at("messages").as_int64() == 3);
    CHECK(so.at("schemaVersion").as_int64() >= 2);  // features add migrations (issue 6: 3, 4)
    CHECK(so.at("sizeBytes").as_int64() > 0);
    CHECK(so.at("bodyLogBytes").as_int64() == counter("edibroker_store_body_log_bytes"));
    CHECK_FALSE(str(so, "oldestReceivedAt").empty());
}

TEST_CASE("admin API: a pull inbox shows up as queue depth and oldest waiting message", "[integration][operator]") {
    broker_env env;
    admin_client admin{env};
    // The AppRec the broker writes for a rejected message waits in the portal's pull inbox.
    auto rej = env.post_xml(replace_all(dialog_message("c0000001-0000-4000-8000-000000000001"),
                                        "<MIGversion>v1.2 2006-05-24</MIGversion>", ""));
    const std::string id = str(json_of(rej), "appRecId");
    REQUIRE_FALSE(id.empty());
    auto st = env.status(id, "waiting");
    REQUIRE(str(st, "state") == "waiting");
    auto m = admin.get("/metrics");
    INFO(m.body);
    CHECK(m.body.find("edibroker_queue_depth{adapter=\"portal-inbox\",state=\"waiting\"} 1\n") != std::string::npos);
    CHECK(m.body.find("edibroker_oldest_waiting_message_age_seconds{adapter=\"portal-inbox\"} ") != std::string::npos);
    auto s = json_of(admin.get("/admin/store"));
    REQUIRE(s.at("pending").as_array().size() == 1);
    CHECK(s.at("pending").at(0).at("adapter") == "portal-inbox");
}

TEST_CASE("admin API: registry search and show, routes and explain", "[integration][operator]") {
    broker_env env;
    admin_client admin{env};
    auto s = admin.get("/admin/registry?q=bergen");
    REQUIRE(s.status == 200);
    CHECK(json::parse(s.body).as_array().size() == 2);
    auto p = admin.get("/admin/registry/9100111");
    REQUIRE(p.status == 200);
    auto po = json_of(p);
    CHECK(po.at("adapter") == "vendor");
    REQUIRE(po.at("ancestors").as_array().size() == 2);
    CHECK(po.at("ancestors").at(0).at("herId") == "9100110");
    CHECK(po.at("ancestors").at(1).at("herId") == "9100100");
    CHECK(admin.get("/admin/registry/1234567").status == 404);

    auto r = json_of(admin.get("/admin/routes"));
    CHECK(r.at("rules").as_array().size() == 2);
    CHECK(r.at("adapters").as_array().size() == 2);

    auto e = admin.post("/admin/routes/explain", dialog_message("d0000001-0000-4000-8000-000000000001"));
    REQUIRE(e.status == 200);
    auto eo = json_of(e);
    INFO(e.body);
    CHECK(eo.at("verdict") == "valid");
    CHECK(eo.at("decision").at("rule") == "oslo-vendor");
    auto rules = eo.at("rules").as_array();
    REQUIRE(rules.size() == 2);
    for (auto& x : rules) {
        if (x.at("rule") == "portal") {
            CHECK_FALSE(x.at("matched").as_bool());
            CHECK(x.at("why").as_string().find("do not include 115851") != std::string_view::npos);
        }
    }
    // Explaining does not store anything.
    CHECK(json_of(admin.get("/admin/store")).at("messages").as_int64() == 0);
}

TEST_CASE("reload: a broken rules file is refused with file:line:col and the old rules stay", "[integration][operator]") {
    broker_env env;
    admin_client admin{env};
    const auto rules_file = std::filesystem::path(env.cfg.rules_dir) / "rules.xml";
    const std::string good = read_file(rules_file);

    write_file(rules_file, "<routing-rules xmlns=\"urn:edibroker:routing-rules:1\">\n  <rule id=\"x\">\n</routing-rules>\n");
    auto r = admin.post("/admin/reload");
    INFO(r.body);
    REQUIRE(r.status == 422);
    auto err = json_of(r).at("error").as_object();
    CHECK(str(err, "file") == rules_file.string());
    CHECK(err.at("line").as_int64() == 2);  // the <rule> without priority
    CHECK(str(err, "message").rfind(rules_file.string() + ":2:3: ", 0) == 0);
    // The old rules still route.
    auto a = env.post_xml(dialog_message("e0000001-0000-4000-8000-000000000001"));
    CHECK(str(json_of(a), "state") == "routed");

    // A good file with a new rule for Bergen, and a new party in the registry, take effect.
    write_file(rules_file, replace_all(good, "</routing-rules>",
                                       "  <rule id=\"bergen\" priority=\"10\">\n    <match receiver-or-ancestor=\"9100200\"/>\n"
                                       "    <deliver adapter=\"portal-inbox\"/>\n  </rule>\n</routing-rules>"));
    write_file(env.cfg.registry_file,
               test_registry(party_xml("9100230", "Helsestasjon Fana", "Service", her::bergen_org, "", "4601")));
    auto ok = admin.post("/admin/reload");
    INFO(ok.body);
    REQUIRE(ok.status == 200);
    CHECK(json_of(ok).at("parties").as_int64() == 8);
    auto b = env.post_xml(to_bergen("e0000001-0000-4000-8000-000000000002"));
    CHECK(str(json_of(b), "state") == "routed");
    CHECK(admin.get("/admin/registry/9100230").status == 200);
    auto m = admin.get("/metrics").body;
    CHECK(m.find("edibroker_reloads_total{result=\"ok\"} 1\n") != std::string::npos);
    CHECK(m.find("edibroker_reloads_total{result=\"refused\"} 1\n") != std::string::npos);
    // The reloaded registry is the stored one too (what `registry show` reads).
    env.restart();
    CHECK(admin_client{env}.get("/admin/registry/9100230").status == 200);
}

TEST_CASE("retention prunes old finished messages and keeps those on their way", "[integration][operator]") {
    broker_env env({}, test_registry(), [](broker::config& c) {
        c.retention_days = 1;
        c.retention_batch = 2;  // several small write operations
    });
    admin_client admin{env};
    const std::string done = send(env, dialog_message("f0000001-0000-4000-8000-000000000001"));
    env.status(done, "delivered");
    const std::string unroutable = send(env, to_bergen("f0000001-0000-4000-8000-000000000002"));
    auto rej = env.post_xml(replace_all(dialog_message("f0000001-0000-4000-8000-000000000003"),
                                        "<MIGversion>v1.2 2006-05-24</MIGversion>", ""));
    const std::string rejected = str(json_of(rej), "id");
    const std::string rejection_apprec = str(json_of(rej), "appRecId");  // waits in the portal's inbox
    REQUIRE_FALSE(rejection_apprec.empty());
    env.status(rejection_apprec, "waiting");
    const std::string fresh = send(env, dialog_message("f0000001-0000-4000-8000-000000000004"));
    env.status(fresh, "delivered");

    // Nothing is old enough yet.
    auto n0 = admin.post("/admin/retention/run");
    REQUIRE(n0.status == 200);
    CHECK(json_of(n0).at("pruned").as_int64() == 0);

    // Age everything but 'fresh' by two days.
    sql(env.cfg, "UPDATE messages SET received_at = received_at - 2 * 86400000 WHERE id <> '" + fresh + "'");
    auto n = admin.post("/admin/retention/run");
    INFO(n.body);
    REQUIRE(n.status == 200);
    CHECK(json_of(n).at("pruned").as_int64() == 3);
    for (auto& id : {done, unroutable, rejected})
        CHECK(admin.get("/admin/messages/" + id).status == 404);
    CHECK(admin.get("/admin/messages/" + rejection_apprec).status == 200);  // still waiting: kept
    CHECK(admin.get("/admin/messages/" + fresh).status == 200);
    CHECK(admin.get("/metrics").body.find("edibroker_retention_pruned_total 3\n") != std::string::npos);
    // Intake goes on.
    auto after = env.post_xml(dialog_message("f0000001-0000-4000-8000-000000000005"));
    CHECK(after.status == 201);
}

TEST_CASE("reload: a broken registry file is refused with file:line:col and the old registry stays",
          "[integration][operator]") {
    broker_env env;
    admin_client admin{env};
    const std::string good = read_file(env.cfg.registry_file);
    write_file(env.cfg.registry_file, "<Registry xmlns=\"urn:edibroker:registry:1\">\n  <Colour/>\n</Registry>\n");
    auto r = admin.post("/admin/reload");
    INFO(r.body);
    REQUIRE(r.status == 422);
    auto err = json_of(r).at("error").as_object();
    CHECK(str(err, "file") == env.cfg.registry_file);
    CHECK(err.at("line").as_int64() == 2);
    CHECK(err.at("column").as_int64() > 0);
    CHECK(str(err, "message").rfind(env.cfg.registry_file + ":2:", 0) == 0);
    // The parties in force stay, in memory and in the store: Oslo still routes, Bergen's service is known.
    CHECK(admin.get("/admin/registry/9100210").status == 200);
    auto a = env.post_xml(dialog_message("e1000001-0000-4000-8000-000000000001"));
    CHECK(str(json_of(a), "state") == "routed");
    CHECK(admin.get("/admin/registry?q=oslo").body.find("9100110") != std::string::npos);
    // A registry without Oslo's home-care service: its messages are now refused with E21.
    write_file(env.cfg.registry_file, replace_all(good, party_xml(her::oslo_home_care, "Hjemmetjenesten Grünerløkka",
                                                                  "Service", her::oslo_org, "vendor", "0301"),
                                                  ""));
    REQUIRE(admin.post("/admin/reload").status == 200);
    CHECK(admin.get("/admin/registry/9100110").status == 404);
    CHECK(env.post_xml(dialog_message("e1000001-0000-4000-8000-000000000002")).status == 422);
}

TEST_CASE("retention runs in small batches beside intake: no message waits for the whole run",
          "[integration][operator]") {
    broker_env env({}, test_registry(), [](broker::config& c) {
        c.retention_days = 30;
        c.retention_batch = 100;
    });
    admin_client admin{env};
    // 20 000 finished messages of last year (what intake stores, minus bodies).
    sql(env.cfg, R"(
        WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 19999)
        INSERT INTO messages(id, msg_id, kind, msg_type, sender_her, receiver_her, state, rule, adapter,
                             received_at, updated_at)
        SELECT printf('old-%06d', i), printf('old-msg-%06d', i), 'msghead', 'DIALOG_INNBYGGER_EKONTAKT',
               '8093244', '9100110', 'apprec-ok', 'oslo-vendor', 'vendor',
               1700000000000 + i * 1000, 1700000000000 + i * 1000
        FROM n;
    )");
    std::atomic<bool> done{false};
    http_response pruned;
    double run_ms = 0;
    std::thread runner([&] {
        auto t0 = std::chrono::steady_clock::now();
        pruned = admin.post("/admin/retention/run");
        run_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        done = true;
    });
    // Intake goes on while retention runs (each message waits at most for one batch).
    std::vector<double> latencies;
    int during = 0;
    for (int i = 0; i < 200 && (!done || latencies.empty()); ++i) {
        char msg_id[64];
        std::snprintf(msg_id, sizeof msg_id, "a1000001-0000-4000-8000-%012d", i);
        auto t0 = std::chrono::steady_clock::now();
        auto r = env.post_xml(dialog_message(msg_id));
        latencies.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        CHECK(r.status == 201);
        during += !done;
    }
    runner.join();
    INFO(pruned.body);
    REQUIRE(pruned.status == 200);
    CHECK(json_of(pruned).at("pruned").as_int64() == 20000);
    const double worst = *std::max_element(latencies.begin(), latencies.end());
    INFO("retention run " << run_ms << " ms, " << latencies.size() << " messages taken in, " << during
                          << " while it ran, slowest " << worst << " ms");
    CHECK(during >= 1);
    // Pruning everything in one transaction would hold the first message for most of the run.
    if (run_ms > 400)
        CHECK(worst < run_ms / 2);
    else
        WARN("retention run too quick (" << run_ms << " ms) to compare with intake latency");
    auto s = json_of(admin.get("/admin/store"));
    CHECK(s.at("messages").as_int64() == static_cast<std::int64_t>(latencies.size()));
}
