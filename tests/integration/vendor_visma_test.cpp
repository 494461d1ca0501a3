// Visma end to end: the real broker exchanges files with a real folder tree (under its data-dir,
// where the visma instance's relative 'dir' points) and the "EPJ" is a separate process
// (fork/exec of /bin/sh: cp to a hidden name, then mv into in/). A Dialogmelding 1.1 from the portal
// lands in out/ as 1.0; the EPJ's AppRec 1.0 and its own Dialogmelding 1.0 come back through in/;
// the portal's AppRec goes out converted 1.1 -> 1.0. Also: a Dialogmelding 1.1 that 1.0 cannot
// carry (refused with T10 and an AppRec), garbage in in/, an out/ folder that is gone, and a
// message type Visma does not take (one message, and a rule refused when the rules load).
// Waits: waitForState on the status endpoint, inotify + poll() with a deadline for files.
#include "broker_env.hpp"

#include "broker/apprec.hpp"
#include "broker/xml.hpp"

#include <poll.h>
#include <sys/inotify.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace testing;
namespace json = boost::json;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

const std::string visma_rules = R"(<routing-rules xmlns="urn:edibroker:routing-rules:1">
  <adapter name="portal-inbox" type="pull"/>
  <adapter name="visma-oslo" type="visma">
    <option name="dir" value="visma-oslo"/>
    <option name="create-dirs" value="true"/>
    <option name="rescan-ms" value="200"/>
  </adapter>
  <rule id="oslo-visma" priority="100">
    <match receiver-or-ancestor="9100100"/>
    <deliver adapter="visma-oslo"/>
    <option name="apprec-version" value="1.1"/>
    <option name="max-attempts" value="1000"/>
  </rule>
  <rule id="portal" priority="100">
    <match receiver-or-ancestor="115851"/>
    <deliver adapter="portal-inbox"/>
    <option name="apprec-version" value="1.1"/>
  </rule>
</routing-rules>
)";

int run_sh(const std::string& cmd) {
    pid_t pid = ::fork();
    if (pid == 0) {
        ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
        ::_exit(127);
    }
    REQUIRE(pid > 0);
    int st = 0;
    REQUIRE(::waitpid(pid, &st, 0) == pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

std::string q(const fs::path& p) { return "'" + p.string() + "'"; }

/// Wait until 'p' exists: inotify on its folder + poll() with a deadline.
bool wait_for_file(const fs::path& p, std::chrono::milliseconds timeout = 10s) {
    int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    REQUIRE(fd >= 0);
    ::inotify_add_watch(fd, p.parent_path().c_str(), IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE);
    auto deadline = std::chrono::steady_clock::now() + timeout;
    bool ok = false;
    for (;;) {
        std::error_code ec;
        if (fs::exists(p, ec)) {
            ok = true;
            break;
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0)
            break;
        pollfd pfd{fd, POLLIN, 0};
        if (::poll(&pfd, 1, static_cast<int>(left.count())) > 0) {
            char buf[4096];
            while (::read(fd, buf, sizeof buf) > 0) {
            }
        }
    }
    ::close(fd);
    return ok;
}

struct visma_env {
    broker_env env{[](const std::string&) { return visma_rules; }};
    fs::path root = fs::path(env.cfg.data_dir) / "visma-oslo";  // 'dir' is relative to the data-dir

    /// The EPJ, a separate process, drops a file into in/: written aside, copied to a hidden
    /// name in in/, renamed into place.
    void epj_writes(const std::string& name, const std::string& content) {
        fs::path aside = env.dir.path() / ("epj-" + name);
        write_file(aside, content);
        fs::path hidden = root / "in" / ("." + name + ".tmp");
        REQUIRE(run_sh("cp " + q(aside) + " " + q(hidden) + " && mv " + q(hidden) + " " + q(root / "in" / name)) == 0);
    }
};

/// Swap the MsgHead's Sender and Receiver blocks (the EPJ answering the portal).
std::string swap_parties(std::string s) {
    auto sb = s.find("<Sender>"), se = s.find("</Sender>") + 9;
    auto rb = s.find("<Receiver>"), re = s.find("</Receiver>") + 11;
    REQUIRE(sb < se);
    REQUIRE(se <= rb);
    std::string sender = s.substr(sb, se - sb), receiver = s.substr(rb, re - rb);
    sender = replace_all(replace_all(sender, "<Sender>", "<Receiver>"), "</Sender>", "</Receiver>");
    receiver = replace_all(replace_all(receiver, "<Receiver>", "<Sender>"), "</Receiver>", "</Sender>");
    return s.substr(0, sb) + receiver + s.substr(se, rb - se) + sender + s.substr(re);
}

bool has_transition(const json::object& st, const std::string& state, const std::string& detail_part) {
    for (auto& t : st.at("transitions").as_array()) {
        auto& o = t.as_object();
        if (str(o, "state") == state && str(o, "detail").find(detail_part) != std::string::npos)
            return true;
    }
    return false;
}

} // namespace

TEST_CASE("visma: portal -> Visma as Dialogmelding 1.0 in out/; the EPJ's AppRec and answer back through in/",
          "[integration][vendor][visma]") {
    visma_env x;
    const std::string msg_id = "f1000000-0000-4000-8000-000000000001";
    std::string doc = dialog_message(msg_id);
    auto r = x.env.post_xml(doc);
    REQUIRE(r.status == 201);
    std::string id = str(json_of(r), "id");
    auto st = x.env.status(id, "delivered");
    REQUIRE(str(st, "state") == "delivered");
    CHECK(str(st, "adapter") == "visma-oslo");

    // In out/, named by the MsgId, converted to Dialogmelding 1.0 (the stored original stays 1.1).
    fs::path out = x.root / "out" / (msg_id + ".xml");
    REQUIRE(fs::exists(out));
    std::string written = read_file(out);
    auto vr = broker::xml::thread_validator().validate(written);
    REQUIRE(vr.v == broker::xml::verdict::valid);
    CHECK(vr.facts.content_ns == broker::ns::dialog_1_0);
    CHECK(vr.facts.msg_id == msg_id);
    CHECK(x.env.get("/Messages/" + id + "/business-document").body == doc);

    // The EPJ answers with an AppRec 1.0 (what Visma speaks), dropped into in/.
    broker::apprec::request a;
    a.version = "1.0";
    a.st = broker::apprec::status::ok;
    a.original = vr.facts;
    a.software_name = "Visma Profil";
    auto apprec = broker::apprec::build(a);
    REQUIRE(apprec.has_value());
    x.epj_writes("apprec-" + msg_id + ".xml", *apprec);
    st = x.env.status(id, "apprec-ok");
    CHECK(str(st, "state") == "apprec-ok");
    CHECK(str(st, "appRecStatus") == "Ok");
    REQUIRE(wait_for_file(x.root / "done" / ("apprec-" + msg_id + ".xml")));
    auto inbox = json::parse(x.env.get("/Messages?receiverHerIds=" + her::portal).body).as_array();
    REQUIRE(inbox.size() == 1);
    CHECK(str(inbox[0].as_object(), "namespace") == "http://www.kith.no/xmlstds/apprec/2004-11-21");
    CHECK(str(inbox[0].as_object(), "originalMsgId") == msg_id);

    // The nurse writes back to the citizen: a Dialogmelding 1.0 from the EPJ to the portal.
    const std::string answer_id = "f1000000-0000-4000-8000-0000000000a1";
    std::string answer = replace_all(swap_parties(replace_all(doc, msg_id, answer_id)),
                                     "http://www.kith.no/xmlstds/dialog/2013-01-23",
                                     "http://www.kith.no/xmlstds/dialog/2006-10-11");
    REQUIRE(broker::xml::thread_validator().validate(answer).v == broker::xml::verdict::valid);
    x.epj_writes("answer-1.xml", answer);
    REQUIRE(wait_for_file(x.root / "done/answer-1.xml"));
    inbox = json::parse(x.env.get("/Messages?receiverHerIds=" + her::portal).body).as_array();
    std::string answer_broker_id;
    for (auto& m : inbox)
        if (str(m.as_object(), "msgId") == answer_id)
            answer_broker_id = str(m.as_object(), "id");
    REQUIRE(!answer_broker_id.empty());

    // The portal acknowledges it; the broker builds AppRec 1.1 (the route's apprec-version) and the
    // adapter writes it as 1.0.
    auto pa = http_request("POST", x.env.url("/Messages/" + answer_broker_id + "/apprec/" + her::portal),
                           R"({"appRecStatus":"Ok"})", {"Content-Type: application/json"});
    REQUIRE(pa.status == 201);
    std::string portal_apprec = str(json_of(pa), "id");
    auto pst = x.env.status(portal_apprec, "delivered");
    CHECK(str(pst, "state") == "delivered");
    std::string stored_doc = x.env.get("/Messages/" + portal_apprec + "/business-document").body;
    auto stored = broker::xml::thread_validator().validate(stored_doc);
    CHECK(stored.facts.root_ns == broker::ns::apprec_1_1);
    fs::path apprec_out = x.root / "out" / (stored.facts.msg_id + ".xml");
    REQUIRE(fs::exists(apprec_out));
    auto out_facts = broker::xml::thread_validator().validate(read_file(apprec_out));
    CHECK(out_facts.v == broker::xml::verdict::valid);
    CHECK(out_facts.facts.root_ns == broker::ns::apprec_1_0);
    CHECK(out_facts.facts.mig_version == "1.0 2004-11-21");
    CHECK(out_facts.facts.original_msg_id == answer_id);
}

TEST_CASE("visma: a Dialogmelding 1.1 that 1.0 cannot carry is refused with T10 and an AppRec, never written",
          "[integration][vendor][visma]") {
    visma_env x;
    const std::string msg_id = "f1000000-0000-4000-8000-000000000002";
    std::string doc = replace_all(dialog_message(msg_id), "<Sporsmal>",
                                  "<EmneSporsmal>Besøkstid</EmneSporsmal><Sporsmal>");
    auto r = x.env.post_xml(doc);
    CHECK(r.status == 400);
    auto o = json_of(r);
    auto& err = o.at("error").as_object();
    CHECK(str(err, "code") == "T10");
    CHECK(str(err, "message").find("route 'oslo-visma'") != std::string::npos);
    CHECK(str(err, "message").find("EmneSporsmal") != std::string::npos);
    std::string apprec_id = str(o, "appRecId");
    REQUIRE(!apprec_id.empty());
    auto ap = broker::xml::thread_validator().validate(x.env.get("/Messages/" + apprec_id + "/business-document").body);
    CHECK(ap.facts.apprec_status == "2");
    REQUIRE(ap.facts.apprec_errors.size() == 1);
    CHECK(ap.facts.apprec_errors[0].code == "T10");
    CHECK(ap.facts.original_msg_id == msg_id);
    CHECK(str(x.env.status(str(o, "id")), "state") == "rejected");
    CHECK_FALSE(fs::exists(x.root / "out" / (msg_id + ".xml")));
}

TEST_CASE("visma: garbage the EPJ drops in in/ goes to error/ with a reason file", "[integration][vendor][visma]") {
    visma_env x;
    x.epj_writes("broken.xml", "<MsgHead><MsgInfo>this is not finished");
    REQUIRE(wait_for_file(x.root / "error/broken.xml.reason"));
    REQUIRE(wait_for_file(x.root / "error/broken.xml"));
    std::string reason = read_file(x.root / "error/broken.xml.reason");
    CHECK(reason.rfind("400\n", 0) == 0);
    auto o = json::parse(reason.substr(4)).as_object();
    CHECK(str(o.at("error").as_object(), "code") == "T01");
    CHECK(!str(o, "id").empty());  // stored as rejected, visible in the status
    CHECK(str(x.env.status(str(o, "id")), "state") == "rejected");
    CHECK_FALSE(fs::exists(x.root / "in/broken.xml"));
}

TEST_CASE("visma: an out/ folder that is gone: retried, visible in the status, delivered when it is back",
          "[integration][vendor][visma]") {
    visma_env x;
    fs::rename(x.root / "out", x.root / "out.unmounted");
    const std::string msg_id = "f1000000-0000-4000-8000-000000000003";
    auto r = x.env.post_xml(dialog_message(msg_id));
    REQUIRE(r.status == 201);
    std::string id = str(json_of(r), "id");
    auto st = x.env.status(id, "failed");
    CHECK(str(st, "state") == "failed");
    CHECK(str(st, "lastError").find("out folder") != std::string::npos);
    CHECK(str(st, "lastError").find("does not exist") != std::string::npos);
    CHECK(has_transition(st, "failed", "attempt 1: out folder "));
    fs::rename(x.root / "out.unmounted", x.root / "out");
    st = x.env.status(id, "delivered");
    CHECK(str(st, "state") == "delivered");
    CHECK(st.at("attempts").as_int64() >= 2);
    CHECK(has_transition(st, "delivered", "delivered by visma-oslo: written to out/" + msg_id + ".xml"));
    CHECK(fs::exists(x.root / "out" / (msg_id + ".xml")));
}

TEST_CASE("visma: a message type Visma does not take: refused for one message (T10 + AppRec), and a rule "
          "for it refused when the rules load",
          "[integration][vendor][visma]") {
    SECTION("one message") {
        visma_env x;
        const std::string msg_id = "f1000000-0000-4000-8000-000000000004";
        std::string doc = replace_all(dialog_message(msg_id),
                                      R"(<Type V="DIALOG_INNBYGGER_EKONTAKT" DN="Dialog med innbygger - eKontakt"/>)",
                                      R"(<Type V="EPIKRISE" DN="Epikrise"/>)");
        REQUIRE(broker::xml::thread_validator().validate(doc).v == broker::xml::verdict::valid);
        auto r = x.env.post_xml(doc);
        CHECK(r.status == 400);
        auto o = json_of(r);
        CHECK(str(o.at("error").as_object(), "code") == "T10");
        CHECK(str(o.at("error").as_object(), "message").find("adapter 'visma-oslo' (visma) does not take EPIKRISE") !=
              std::string::npos);
        std::string apprec_id = str(o, "appRecId");
        REQUIRE(!apprec_id.empty());
        auto ap = broker::xml::thread_validator().validate(x.env.get("/Messages/" + apprec_id + "/business-document").body);
        CHECK(ap.facts.apprec_status == "2");
        REQUIRE(ap.facts.apprec_errors.size() == 1);
        CHECK(ap.facts.apprec_errors[0].code == "T10");
        CHECK(str(x.env.status(str(o, "id")), "state") == "rejected");
        CHECK_FALSE(fs::exists(x.root / "out" / (msg_id + ".xml")));
    }
    SECTION("a rule") {
        temp_dir dir;
        write_file(dir.path() / "rules/rules.xml",
                   replace_all(visma_rules, "<match receiver-or-ancestor=\"9100100\"/>",
                               "<match receiver-or-ancestor=\"9100100\" type=\"EPIKRISE\"/>"));
        write_file(dir.path() / "registry.xml", test_registry());
        auto cfg = broker::default_config();
        cfg.listen = "127.0.0.1:0";
        cfg.data_dir = (dir.path() / "data").string();
        cfg.rules_dir = (dir.path() / "rules").string();
        cfg.registry_file = (dir.path() / "registry.xml").string();
        cfg.log_level = "off";
        auto s = broker::make_server(cfg);
        REQUIRE_FALSE(s.has_value());
        CHECK(s.error().where().find("rule 'oslo-visma' sends type 'EPIKRISE' to adapter 'visma-oslo', which does "
                                     "not accept that message type") != std::string::npos);
        CHECK(s.error().file.find("rules.xml") != std::string::npos);
    }
}
