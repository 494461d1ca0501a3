// The operator commands of the edibroker executable, run as child processes against real stores
// and a real broker: replay (with expected files), routes check/explain, registry, messages,
// store, and SIGHUP reload of `serve`.
#include "broker_env.hpp"
#include "child_process.hpp"

#include <sqlite3.h>

#include <csignal>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <set>
#include <sstream>
#include <sys/wait.h>
#include <unistd.h>

using namespace testing;
namespace fs = std::filesystem;

namespace {

struct run_result {
    int code = -1;
    std::string out, err;
};

/// Run to the end, reading stdout and stderr together (poll, so neither pipe fills up).
run_result run(std::vector<std::string> args) {
    args.insert(args.begin(), broker_binary().string());
    child c = spawn(args);
    run_result r;
    pollfd fds[2] = {{c.out, POLLIN, 0}, {c.err, POLLIN, 0}};
    int open_fds = 2;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (open_fds > 0 && std::chrono::steady_clock::now() < deadline) {
        if (poll(fds, 2, 1000) < 0)
            break;
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP)))
                continue;
            char buf[4096];
            ssize_t n = read(fds[i].fd, buf, sizeof buf);
            if (n <= 0) {
                close(fds[i].fd);
                fds[i].fd = -1;
                --open_fds;
            } else {
                (i == 0 ? r.out : r.err).append(buf, static_cast<std::size_t>(n));
            }
        }
    }
    int status = 0;
    waitpid(c.pid, &status, 0);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
}

/// Read one line within 'ms' (poll; no sleeps).
std::string read_line(int fd, int ms) {
    std::string s;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (true) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0)
            return s;
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, static_cast<int>(left.count())) <= 0)
            return s;
        char c;
        if (read(fd, &c, 1) != 1)
            return s;
        if (c == '\n')
            return s;
        s += c;
    }
}

/// Read lines until one contains 'what' (true) or the deadline passes (false).
bool wait_for_line(int fd, const std::string& what, int ms, std::string* seen = nullptr) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (std::chrono::steady_clock::now() < deadline) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        std::string line = read_line(fd, static_cast<int>(left.count()));
        if (seen)
            *seen += line + "\n";
        if (line.find(what) != std::string::npos)
            return true;
    }
    return false;
}

/// Read 'fd' to its end (EOF, or EIO from a pty whose other side closed), within 'ms'.
std::string read_all(int fd, int ms) {
    std::string out;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0)
            return out;
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, static_cast<int>(left.count())) <= 0)
            return out;
        char buf[4096];
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0)
            return out;
        out.append(buf, static_cast<std::size_t>(n));
    }
}

/// The first line of 'text' that starts with 'prefix' ("" if none).
std::string line_of(const std::string& text, const std::string& prefix) {
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line))
        if (line.rfind(prefix, 0) == 0)
            return line;
    return {};
}

/// Run SQL on a database file with a connection of our own (WAL: beside the broker's).
void sql(const std::string& db_file, const std::string& text) {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(db_file.c_str(), &db) == SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    char* err = nullptr;
    int rc = sqlite3_exec(db, text.c_str(), nullptr, nullptr, &err);
    INFO((err ? err : ""));
    sqlite3_free(err);
    sqlite3_close(db);
    REQUIRE(rc == SQLITE_OK);
}

const fs::path suite = source_dir() / "tests/fixtures/replay";

/// A broker configured like the replay suite (its own rules and registry; pull inboxes only).
std::unique_ptr<broker_env> suite_broker() {
    auto rules = read_file(suite / "rules/rules.xml");
    return std::make_unique<broker_env>([rules](const std::string&) { return rules; },
                                        read_file(suite / "registry.xml"));
}

} // namespace

TEST_CASE("replay --expect: the suite matches, a planted difference fails, --write-expected reproduces it",
          "[integration][operator][replay]") {
    auto env = suite_broker();
    const std::string url = "http://" + env->server->listen_address();
    const std::string messages = (suite / "messages").string();
    const std::string expected = (suite / "expected").string();

    auto ok = run({"replay", messages, "--to", url, "--expect", expected, "--concurrency", "3"});
    INFO(ok.out << ok.err);
    CHECK(ok.code == 0);
    CHECK(ok.out.find("expectations: 7 compared, 7 match, 0 differ") != std::string::npos);
    CHECK(ok.out.find("AppRecs received  3") != std::string::npos);
    // Rejections are counted per code, each with the broker's reason.
    CHECK(ok.out.find("rejected          4") != std::string::npos);
    CHECK_THAT(line_of(ok.out, "  E21 "), Catch::Matches(R"(  E21 +2 +receiver (HER-id 9199999 is not in the address registry|9100\d+ is an organisation.*))"));
    CHECK_THAT(line_of(ok.out, "  T01 "), Catch::Matches(R"(  T01 +1 +not well-formed XML.*)"));
    CHECK_THAT(line_of(ok.out, "  T02 "), Catch::Matches(R"(  T02 +1 +the message does not validate at \d+:\d+: .*)"));
    CHECK(ok.out.find("concurrency 3") != std::string::npos);
    CHECK(ok.out.find("latency p99") != std::string::npos);
    CHECK(ok.out.find("\r[") == std::string::npos);  // no progress bar: stdout is a pipe

    // Plant a difference: the Oslo message is expected on another route.
    temp_dir tmp;
    fs::copy(expected, tmp.path() / "expected");
    auto planted = tmp.path() / "expected/01-dialog-to-oslo-home-care.xml.expected";
    write_file(planted, replace_all(read_file(planted), "rule: oslo-visma", "rule: bergen-tieto"));
    auto bad = run({"replay", messages, "--to", url, "--expect", (tmp.path() / "expected").string()});
    INFO(bad.out << bad.err);
    CHECK(bad.code == 1);
    CHECK(bad.out.find("expectations: 7 compared, 6 match, 1 differ") != std::string::npos);
    CHECK(bad.out.find("01-dialog-to-oslo-home-care.xml: rule: expected 'bergen-tieto', got 'oslo-visma'") !=
          std::string::npos);

    // A missing expected file is a difference too.
    fs::remove(tmp.path() / "expected/07-not-xml.xml.expected");
    auto missing = run({"replay", messages, "--to", url, "--expect", (tmp.path() / "expected").string()});
    CHECK(missing.code == 1);
    CHECK(missing.out.find("07-not-xml.xml: ") != std::string::npos);

    // --write-expected writes exactly the suite's files (the second run sees duplicates: same answers).
    auto w = run({"replay", messages, "--to", url, "--write-expected", (tmp.path() / "written").string()});
    INFO(w.out << w.err);
    CHECK(w.code == 0);
    CHECK(w.out.find("duplicates        6") != std::string::npos);  // the T01 one has no sender: never a duplicate
    for (auto& f : fs::directory_iterator(expected))
        CHECK(read_file(tmp.path() / "written" / f.path().filename()) == read_file(f.path()));

    // With --wait-for the state is written and compared too.
    auto st = run({"replay", messages, "--to", url, "--wait-for", "waiting,unroutable,rejected", "--write-expected",
                   (tmp.path() / "states").string()});
    CHECK(st.code == 0);
    CHECK(read_file(tmp.path() / "states/01-dialog-to-oslo-home-care.xml.expected").find("state: waiting\n") !=
          std::string::npos);
}

TEST_CASE("replay --dry-run: validate and route in process, with the same expectations", "[integration][operator][replay]") {
    auto r = run({"replay", (suite / "messages").string(), "--dry-run", "--rules", (suite / "rules").string(),
                  "--registry", (suite / "registry.xml").string(), "--expect", (suite / "expected").string(),
                  "--verbose"});
    INFO(r.out << r.err);
    CHECK(r.code == 0);
    CHECK(r.out.find("01-dialog-to-oslo-home-care.xml: 201 routed rule oslo-visma -> visma-oslo") != std::string::npos);
    CHECK(r.out.find("04-unknown-receiver.xml: 422 rejected E21") != std::string::npos);
    CHECK(r.out.find("expectations: 7 compared, 7 match, 0 differ") != std::string::npos);
    // Usage errors.
    CHECK(run({"replay", (suite / "messages").string()}).code == 2);
    CHECK(run({"replay", "/no/such/folder", "--dry-run"}).code == 1);
    CHECK(run({"replay", (suite / "messages").string(), "--to", "https://127.0.0.1:1"}).code == 2);
    // Nobody listening: every message is reported as not sent.
    auto down = run({"replay", (suite / "messages/01-dialog-to-oslo-home-care.xml").string(), "--to",
                     "http://127.0.0.1:1"});
    CHECK(down.code == 1);
    CHECK(down.out.find("not sent") != std::string::npos);
}

TEST_CASE("routes check and explain", "[integration][operator][routes]") {
    const std::string registry = (suite / "registry.xml").string();
    auto ok = run({"routes", "check", (suite / "rules").string(), "--registry", registry});
    INFO(ok.out << ok.err);
    CHECK(ok.code == 0);
    CHECK(ok.out.find("routes check: 3 rules, 3 adapters, 8 parties: 0 errors, 0 warnings") != std::string::npos);

    temp_dir tmp;
    write_file(tmp.path() / "rules/a.xml", R"(<routing-rules xmlns="urn:edibroker:routing-rules:1">
  <adapter name="inbox" type="pull"/>
  <rule id="oslo" priority="100"><match receiver-or-ancestor="9100100"/><deliver adapter="inbox"/></rule>
  <rule id="oslo-home-care" priority="50"><match receiver="9100110"/><deliver adapter="inbox"/></rule>
  <rule id="ghost" priority="10"><match receiver="9199999"/><deliver adapter="inbox"/></rule>
</routing-rules>
)");
    auto bad = run({"routes", "check", (tmp.path() / "rules").string(), "--registry", registry});
    INFO(bad.out << bad.err);
    CHECK(bad.code == 1);
    const std::string a = (tmp.path() / "rules/a.xml").string();
    CHECK(bad.out.find(a + ":4: error: rule 'oslo-home-care' is shadowed by rule 'oslo'") != std::string::npos);
    CHECK(bad.out.find(a + ":5: error: rule 'ghost' can never match: receiver 9199999 is not in the registry") !=
          std::string::npos);
    CHECK(bad.out.find("2 errors, 3 warnings") != std::string::npos);  // the registry names adapters a.xml lacks

    write_file(tmp.path() / "broken/b.xml", "<routing-rules xmlns=\"urn:edibroker:routing-rules:1\">\n  <rule id=\"x\">\n</routing-rules>\n");
    auto broken = run({"routes", "check", (tmp.path() / "broken").string()});
    CHECK(broken.code == 1);
    CHECK(broken.err.rfind((tmp.path() / "broken/b.xml").string() + ":2:3: ", 0) == 0);

    auto ex = run({"routes", "explain", (suite / "messages/02-dialog-to-bergen-home-care.xml").string(), "--rules",
                   (suite / "rules").string(), "--registry", registry});
    INFO(ex.out << ex.err);
    CHECK(ex.code == 0);
    CHECK(ex.out.find("decision: routed: rule 'bergen-tieto' matched: deliver to adapter 'tieto-bergen'") !=
          std::string::npos);
    CHECK(ex.out.find("* bergen-tieto") != std::string::npos);
    CHECK(ex.out.find("receiver 9100210 and its ancestors (9100210 > 9100200) do not include 9100100") !=
          std::string::npos);
    auto js = run({"routes", "explain", (suite / "messages/04-unknown-receiver.xml").string(), "--rules",
                   (suite / "rules").string(), "--registry", registry, "--json"});
    auto v = boost::json::parse(js.out).as_object();
    CHECK(v.at("decision").at("code") == "E21");
    auto invalid = run({"routes", "explain", (suite / "messages/06-missing-migversion.xml").string(), "--rules",
                        (suite / "rules").string(), "--registry", registry});
    CHECK(invalid.code == 1);
    CHECK(invalid.out.find(": T02 ") != std::string::npos);
}

TEST_CASE("registry import, show and search work on the store", "[integration][operator][registry]") {
    temp_dir tmp;
    const std::string data = (tmp.path() / "data").string();
    auto imp = run({"registry", "import", (suite / "registry.xml").string(), "--data-dir", data});
    INFO(imp.out << imp.err);
    CHECK(imp.code == 0);
    CHECK(imp.out.find("imported 8 parties") != std::string::npos);
    auto show = run({"registry", "show", "9100210", "--data-dir", data});
    INFO(show.out);
    CHECK(show.code == 0);
    CHECK(show.out.find("Hjemmetjenesten Bergenhus") != std::string::npos);
    CHECK(show.out.find("ancestors     9100200 Bergen kommune (organisation)") != std::string::npos);
    CHECK(show.out.find("adapter       tieto-bergen") != std::string::npos);
    auto js = run({"registry", "show", "9100210", "--data-dir", data, "--json"});
    CHECK(boost::json::parse(js.out).at("ancestors").at(0).at("herId") == "9100200");
    CHECK(run({"registry", "show", "1234", "--data-dir", data}).code == 1);
    auto search = run({"registry", "search", "hjemmetjenesten", "--data-dir", data});
    CHECK(search.code == 0);
    CHECK(search.out.find("3 parties") != std::string::npos);
    CHECK(run({"registry", "search", "nowhere", "--data-dir", data}).code == 1);
    write_file(tmp.path() / "bad.xml", "<Registry xmlns=\"urn:edibroker:registry:1\">\n  <Colour/>\n</Registry>\n");
    auto bad = run({"registry", "import", (tmp.path() / "bad.xml").string(), "--data-dir", data});
    CHECK(bad.code == 1);
    CHECK(bad.err.rfind((tmp.path() / "bad.xml").string() + ":2:", 0) == 0);
    // The store still has the old registry.
    CHECK(run({"registry", "show", "9100210", "--data-dir", data}).code == 0);
}

TEST_CASE("messages list, show, dead and resend, store stats and prune, against a running broker's store",
          "[integration][operator][messages]") {
    broker_env env;
    const std::string data = env.cfg.data_dir;
    std::vector<std::string> cfg{"--data-dir", data, "--rules", env.cfg.rules_dir, "--registry", env.cfg.registry_file};
    auto with = [&](std::vector<std::string> a) {
        a.insert(a.end(), cfg.begin(), cfg.end());
        return a;
    };
    env.vendor.respond_with(400, "{}");
    auto r = env.post_xml(dialog_message("90000001-0000-4000-8000-000000000001"));
    const std::string id = str(json_of(r), "id");
    env.status(id, "dead");
    auto bergen = env.post_xml(replace_all(replace_all(dialog_message("90000001-0000-4000-8000-000000000002"),
                                                       "<Id>9100110</Id>", "<Id>9100210</Id>"),
                                           "<Id>9100100</Id>", "<Id>9100200</Id>"));
    const std::string unroutable = str(json_of(bergen), "id");

    auto list = run(with({"messages", "list"}));
    INFO(list.out << list.err);
    CHECK(list.code == 0);
    CHECK(list.out.rfind("RECEIVED", 0) == 0);
    CHECK(list.out.find(id) != std::string::npos);
    CHECK(list.out.find("2 messages") != std::string::npos);
    auto filtered = run(with({"messages", "list", "--receiver", "9100210", "--from", "-1h", "--json"}));
    auto arr = boost::json::parse(filtered.out).as_array();
    REQUIRE(arr.size() == 1);
    CHECK(arr.at(0).at("id") == unroutable.c_str());
    CHECK(run(with({"messages", "list", "--state", "delivered"})).out.find("0 messages") != std::string::npos);
    CHECK(run(with({"messages", "list", "--sender", "8093244"})).out.find("2 messages") != std::string::npos);
    CHECK(run(with({"messages", "list", "--sender", "1"})).out.find("0 messages") != std::string::npos);
    CHECK(run(with({"messages", "list", "--type", "DIALOG_INNBYGGER_EKONTAKT"})).out.find("2 messages") !=
          std::string::npos);
    CHECK(run(with({"messages", "list", "--type", "DIALOG_SVAR"})).out.find("0 messages") != std::string::npos);
    CHECK(run(with({"messages", "list", "--to", "-1h"})).out.find("0 messages") != std::string::npos);
    CHECK(run(with({"messages", "list", "--limit", "1"})).out.find("1 message\n") != std::string::npos);
    auto by_msg_id = run(with({"messages", "list", "--msg-id", "90000001-0000-4000-8000-000000000002", "--json"}));
    REQUIRE(boost::json::parse(by_msg_id.out).as_array().size() == 1);
    CHECK(boost::json::parse(by_msg_id.out).at(0).at("id") == unroutable.c_str());
    auto conv = run(with({"messages", "list", "--conversation", "90000001-0000-4000-8000-000000000001", "--json"}));
    REQUIRE(boost::json::parse(conv.out).as_array().size() == 1);
    CHECK(boost::json::parse(conv.out).at(0).at("id") == id.c_str());
    CHECK(run(with({"messages", "list", "--colour", "red"})).code == 2);
    CHECK(run(with({"messages", "list", "--from", "tomorrow"})).code == 2);

    auto dead = run(with({"messages", "dead"}));
    CHECK(dead.out.find(id) != std::string::npos);
    CHECK(dead.out.find("1 message\n") != std::string::npos);

    auto show = run(with({"messages", "show", id}));
    INFO(show.out);
    CHECK(show.code == 0);
    CHECK(show.out.find("state       dead") != std::string::npos);
    CHECK(show.out.find("delivery attempts: 1") != std::string::npos);
    CHECK(show.out.find("permanent failure") != std::string::npos);
    CHECK(run(with({"messages", "show", "nope"})).code == 1);

    // Resend through the store: the running broker's delivery scanner picks it up.
    env.vendor.respond_with(201, "{}");
    auto rs = run(with({"messages", "resend", id}));
    INFO(rs.out << rs.err);
    CHECK(rs.code == 0);
    CHECK(rs.out.find("rule oslo-vendor, adapter vendor") != std::string::npos);
    auto st = env.status(id, "delivered");
    CHECK(str(st, "state") == "delivered");
    CHECK(run(with({"messages", "resend", unroutable})).code == 1);  // still no rule for Bergen

    auto stats = run(with({"store", "stats"}));
    INFO(stats.out);
    CHECK(stats.code == 0);
    CHECK(stats.out.find("messages        2") != std::string::npos);
    CHECK(stats.out.find("(schema ") != std::string::npos);  // the version grows with feature migrations
    auto sj = boost::json::parse(run(with({"store", "stats", "--json"})).out).as_object();
    CHECK(sj.at("messages").as_int64() == 2);
    CHECK(sj.at("bodyLogBytes").as_int64() > 0);
    CHECK(stats.out.find("body log        ") != std::string::npos);

    CHECK(run(with({"store", "prune"})).out == "pruned 0 messages\n");  // retention-days = 0: keep all
    auto pr = run(with({"store", "prune", "--set", "retention-days=1"}));
    CHECK(pr.out == "pruned 0 messages\n");  // nothing is a day old
    // Two days later both are finished (delivered, unroutable) and old enough.
    sql(data + "/edibroker.db", "UPDATE messages SET received_at = received_at - 2 * 86400000");
    auto pr2 = run(with({"store", "prune", "--set", "retention-days=1", "--set", "retention-batch=1"}));
    INFO(pr2.out << pr2.err);
    CHECK(pr2.out == "pruned 2 messages\n");
    CHECK(run(with({"messages", "list"})).out.find("0 messages") != std::string::npos);
    CHECK(run(with({"store", "stats"})).out.find("messages        0") != std::string::npos);
    // No message names a body any more: the prune's sweep deleted the body log's segments.
    CHECK(boost::json::parse(run(with({"store", "stats", "--json"})).out).at("bodyLogBytes").as_int64() == 0);
}

TEST_CASE("serve: SIGHUP reloads the rules and the registry; a broken file is refused and the old one stays",
          "[integration][operator][reload]") {
    temp_dir tmp;
    const auto rules_dir = tmp.path() / "rules";
    const auto registry = tmp.path() / "registry.xml";
    fs::create_directories(rules_dir);
    fs::copy(suite / "rules/rules.xml", rules_dir / "rules.xml");
    fs::copy(suite / "registry.xml", registry);
    child c = spawn({broker_binary().string(), "serve", "--listen", "127.0.0.1:0", "--data-dir",
                     (tmp.path() / "data").string(), "--rules", rules_dir.string(), "--registry",
                     registry.string(), "--set", "log-level=info"});
    std::string l1 = read_line(c.out, 20000), l2 = read_line(c.out, 5000);
    INFO(l1 << "\n" << l2);
    REQUIRE(l1.rfind("listening on 127.0.0.1:", 0) == 0);
    REQUIRE(l2.rfind("admin listening on 127.0.0.1:", 0) == 0);
    const std::string admin = "http://" + l2.substr(std::string("admin listening on ").size());
    auto rules_count = [&] {
        auto r = http_request("GET", admin + "/admin/routes");
        return boost::json::parse(r.body).at("rules").as_array().size();
    };
    CHECK(rules_count() == 3);

    write_file(rules_dir / "rules.xml", "<routing-rules xmlns=\"urn:edibroker:routing-rules:1\">\n  <rule id=\"x\">\n</routing-rules>\n");
    kill(c.pid, SIGHUP);
    std::string seen;
    CHECK(wait_for_line(c.err, "reload refused: " + (rules_dir / "rules.xml").string() + ":2:3:", 10000, &seen));
    INFO(seen);
    CHECK(rules_count() == 3);

    write_file(rules_dir / "rules.xml",
               replace_all(read_file(suite / "rules/rules.xml"), "</routing-rules>",
                           "  <rule id=\"trondheim\" priority=\"10\"><match receiver-or-ancestor=\"9100300\"/>"
                           "<deliver adapter=\"portal-inbox\"/></rule>\n</routing-rules>"));
    kill(c.pid, SIGHUP);
    CHECK(wait_for_line(c.err, "\"event\":\"reloaded\"", 10000, &seen));
    CHECK(rules_count() == 4);

    // The registry: a broken file is refused with file:line:col, the parties in force stay.
    auto party = [&](const std::string& her) { return http_request("GET", admin + "/admin/registry/" + her).status; };
    CHECK(party("9100310") == 200);
    const std::string good_registry = read_file(registry);
    write_file(registry, "<Registry xmlns=\"urn:edibroker:registry:1\">\n  <Colour/>\n</Registry>\n");
    kill(c.pid, SIGHUP);
    CHECK(wait_for_line(c.err, "reload refused: " + registry.string() + ":2:", 10000, &seen));
    CHECK(party("9100310") == 200);
    CHECK(rules_count() == 4);
    // A good registry with a new party takes effect.
    write_file(registry, replace_all(good_registry, "</Registry>",
                                     "  <CommunicationParty><HerId>9100320</HerId><Name>Helsehuset Midtbyen</Name>"
                                     "<Type>Service</Type><ParentHerId>9100300</ParentHerId></CommunicationParty>\n"
                                     "</Registry>"));
    kill(c.pid, SIGHUP);
    CHECK(wait_for_line(c.err, "\"event\":\"reloaded\"", 10000, &seen));
    CHECK(party("9100320") == 200);

    CHECK(stop(c) == 0);
}

TEST_CASE("replay on a terminal shows a progress bar; --rate paces the sending", "[integration][operator][replay]") {
    auto env = suite_broker();
    const std::string url = "http://" + env->server->listen_address();
    int master = -1, slave = -1;
    REQUIRE(openpty(&master, &slave, nullptr, nullptr, nullptr) == 0);
    const std::vector<std::string> args{broker_binary().string(), "replay", (suite / "messages").string(), "--to", url,
                                        "--rate", "10", "--concurrency", "2"};
    const auto t0 = std::chrono::steady_clock::now();
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        dup2(slave, 1);
        dup2(slave, 2);
        close(master);
        std::vector<char*> argv;
        for (auto& a : args)
            argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        execv(argv[0], argv.data());
        _exit(127);
    }
    close(slave);
    std::string out = read_all(master, 60000);
    int status = 0;
    waitpid(pid, &status, 0);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    close(master);
    INFO(out);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    // The bar redraws in place ("\r[====>   ] n/7  x msg/s") and is cleared before the summary.
    CHECK(out.find("\r[") != std::string::npos);
    CHECK(out.find("] 7/7  ") != std::string::npos);
    CHECK(out.find("\r\033[K") != std::string::npos);
    CHECK(out.find("rate limit 10 msg/s") != std::string::npos);
    // 7 messages at 10 per second: the last leaves 0.6 s after the first.
    CHECK(secs >= 0.55);
}

/// `edibroker serve` on 127.0.0.1:0 with the suite's rules and registry, its data in 'tmp', plus
/// 'extra' arguments; 'edi' receives its base URL.
child serve_suite(const temp_dir& tmp, const std::vector<std::string>& extra, std::string& edi) {
    std::vector<std::string> args{broker_binary().string(), "serve", "--listen", "127.0.0.1:0", "--data-dir",
                                  (tmp.path() / "data").string(), "--rules", (suite / "rules").string(),
                                  "--registry", (suite / "registry.xml").string()};
    args.insert(args.end(), extra.begin(), extra.end());
    child c = spawn(args);
    std::string l1 = read_line(c.out, 20000);
    INFO(l1);
    REQUIRE(l1.rfind("listening on 127.0.0.1:", 0) == 0);
    edi = "http://" + l1.substr(std::string("listening on ").size());
    return c;
}

http_response post_suite(const std::string& edi, const std::string& file) {
    return http_request("POST", edi + "/Messages", read_file(suite / "messages" / file),
                        {"Content-Type: application/xml"});
}

/// SIGTERM, then all the broker wrote on stderr until it exited.
std::string stop_for_stderr(child& c) {
    kill(c.pid, SIGTERM);
    std::string err = read_all(c.err, 20000);
    int status = 0;
    waitpid(c.pid, &status, 0);
    close(c.out);
    close(c.err);
    return err;
}

TEST_CASE("serve: structured logs are JSON lines with ids and HER-ids, never message content",
          "[integration][operator][logs]") {
    temp_dir tmp;
    std::string edi;
    child c = serve_suite(tmp, {"--set", "log-level=debug"}, edi);
    auto post = [&](const std::string& file) { return post_suite(edi, file); };
    auto ok = post("01-dialog-to-oslo-home-care.xml");
    REQUIRE(ok.status == 201);
    const std::string id = str(json_of(ok), "id");
    CHECK(post("04-unknown-receiver.xml").status == 422);
    CHECK(post("06-missing-migversion.xml").status == 400);
    CHECK(post("07-not-xml.xml").status == 400);
    // The receiver fetches it (a delivery) and reads it.
    CHECK(http_request("GET", edi + "/Messages/" + id + "/business-document").status == 200);
    CHECK(http_request("PUT", edi + "/Messages/" + id + "/read/9100110").status == 204);
    std::string err = stop_for_stderr(c);

    std::istringstream in(err);
    std::string line;
    std::size_t lines = 0;
    bool intake_seen = false;
    std::set<std::string> events;
    while (std::getline(in, line)) {
        INFO(line);
        ++lines;
        boost::system::error_code ec;
        auto v = boost::json::parse(line, ec);
        if (ec)  // e.g. a sanitizer report: show all of it, not just its first line
            FAIL("a line of stderr is not JSON; the whole of stderr:\n" << err);
        REQUIRE(v.is_object());
        const auto& o = v.as_object();
        CHECK_FALSE(str(o, "ts").empty());
        CHECK_FALSE(str(o, "level").empty());
        events.insert(str(o, "event"));
        if (str(o, "event") == "intake" && str(o, "id") == id) {
            intake_seen = true;
            CHECK(str(o, "msgId") == "0e5b1c1a-0001-4a39-9c1e-0b7a8d2e4f10");
            CHECK(str(o, "sender") == "8093244");
            CHECK(str(o, "receiver") == "9100110");
            CHECK(str(o, "type") == "DIALOG_INNBYGGER_EKONTAKT");
        }
        // The patient's name and national id, and the citizen's question, never appear.
        for (const char* secret : {"Testesen", "01010112345", "hjemmesykepleien", "torsdag", "Ola"})
            CHECK(line.find(secret) == std::string::npos);
    }
    CHECK(lines >= 6);
    CHECK(intake_seen);
    CHECK(events.count("read"));
    CHECK(events.count("stopped"));
}

TEST_CASE("serve: at the default log level an accepted message writes no line, a refused one does",
          "[integration][operator][logs]") {
    // The two lines every message writes (intake, deliver) are debug: on the same disk as the
    // store they slowed its syncs (README, "Logs"). Refusals stay visible at info.
    temp_dir tmp;
    std::string edi;
    child c = serve_suite(tmp, {}, edi);
    auto post = [&](const std::string& file) { return post_suite(edi, file); };
    auto ok = post("01-dialog-to-oslo-home-care.xml");
    REQUIRE(ok.status == 201);
    const std::string accepted = str(json_of(ok), "id");
    auto refused = post("04-unknown-receiver.xml");
    REQUIRE(refused.status == 422);
    const std::string refused_id = str(json_of(refused), "id");
    REQUIRE_FALSE(refused_id.empty());
    std::string err = stop_for_stderr(c);

    std::istringstream in(err);
    std::string line;
    bool refusal_seen = false;
    std::set<std::string> events;
    while (std::getline(in, line)) {
        INFO(line);
        boost::system::error_code ec;
        auto v = boost::json::parse(line, ec);
        if (ec)
            FAIL("a line of stderr is not JSON; the whole of stderr:\n" << err);
        const auto& o = v.as_object();
        CHECK(str(o, "level") != "debug");
        if (str(o, "event") == "intake" || str(o, "event") == "deliver")  // waiting for pick-up: debug
            CHECK(str(o, "id") != accepted);
        events.insert(str(o, "event"));
        if (str(o, "event") == "intake" && str(o, "id") == refused_id) {
            refusal_seen = true;
            CHECK(str(o, "level") == "info");
            CHECK(str(o, "status") == "422");
        }
    }
    CHECK(refusal_seen);
    CHECK(events.count("stopped"));
}
