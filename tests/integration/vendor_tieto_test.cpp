// TietoEvry end to end: the real broker delivers through the tieto adapter — the raw MsgHead XML,
// application/xml, over HTTPS with the instance's client certificate — to a real HTTPS server that
// checks client certificates (testing::https_receiver; CA, server and client certificates made at
// test time with the OpenSSL API). Tieto answers 202 and later sends its AppRec as a MsgHead/AppRec
// message to the broker's POST /Messages. Also: Tieto down, Tieto answering garbage, 5xx retried
// and 4xx dead-lettered, a client certificate Tieto does not trust, a message type Tieto does not
// take (one message and a rule), and two municipalities each with its own certificate. No sleeps.
#include "broker_env.hpp"

#include "https_receiver.hpp"
#include "pki.hpp"

#include "broker/apprec.hpp"
#include "broker/xml.hpp"

using namespace testing;
namespace json = boost::json;
using namespace std::chrono_literals;

namespace {

std::string tieto_rules(const std::string& url, const pki::files& server_pki, const pki::files& client) {
    return R"(<routing-rules xmlns="urn:edibroker:routing-rules:1">
  <adapter name="portal-inbox" type="pull"/>
  <adapter name="tieto-oslo" type="tieto">
    <option name="url" value=")" +
           url + R"("/>
    <option name="ca-file" value=")" +
           server_pki.ca_cert.string() + R"("/>
    <option name="client-cert" value=")" +
           client.client_cert.string() + R"("/>
    <option name="client-key" value=")" +
           client.client_key.string() + R"("/>
    <option name="timeout-ms" value="5000"/>
  </adapter>
  <rule id="oslo-tieto" priority="100">
    <match receiver-or-ancestor="9100100"/>
    <deliver adapter="tieto-oslo"/>
    <option name="max-attempts" value="1000"/>
  </rule>
  <rule id="portal" priority="100">
    <match receiver-or-ancestor="115851"/>
    <deliver adapter="portal-inbox"/>
    <option name="apprec-version" value="1.1"/>
  </rule>
</routing-rules>
)";
}

struct tieto_env {
    temp_dir pki_dir;
    pki::files pki = pki::generate(pki_dir.path() / "ours", "edibroker-oslo");
    pki::files foreign = pki::generate(pki_dir.path() / "foreign", "not-known-to-tieto");
    std::unique_ptr<https_receiver> tieto = std::make_unique<https_receiver>(pki);  // client cert required
    unsigned short port = tieto->port();
    bool use_foreign_cert;
    broker_env env;

    explicit tieto_env(bool foreign_cert = false)
        : use_foreign_cert(foreign_cert), env([this](const std::string&) {
              return tieto_rules("https://127.0.0.1:" + std::to_string(port) + "/gerica/messages", pki,
                                 use_foreign_cert ? foreign : pki);
          }) {
        tieto->respond_with(202);
    }
};

bool has_transition(const json::object& st, const std::string& state, const std::string& detail_part) {
    for (auto& t : st.at("transitions").as_array()) {
        auto& o = t.as_object();
        if (str(o, "state") == state && str(o, "detail").find(detail_part) != std::string::npos)
            return true;
    }
    return false;
}

} // namespace

TEST_CASE("tieto: raw MsgHead XML over mutual TLS; Tieto's AppRec comes back through POST /Messages",
          "[integration][vendor][tieto]") {
    tieto_env x;
    std::string doc = dialog_message("e1000000-0000-4000-8000-000000000001");
    auto r = x.env.post_xml(doc);
    REQUIRE(r.status == 201);
    std::string id = str(json_of(r), "id");

    auto st = x.env.status(id, "delivered");
    REQUIRE(str(st, "state") == "delivered");
    CHECK(has_transition(st, "delivered", "delivered by tieto-oslo: http 202"));
    auto reqs = x.tieto->requests();
    REQUIRE(reqs.size() == 1);
    CHECK(reqs[0].body == doc);  // byte for byte, no SOAP
    CHECK(reqs[0].headers.at("Content-Type") == "application/xml");
    CHECK(reqs[0].client_cn == "edibroker-oslo");  // the instance's certificate, checked by the server

    // Tieto's EPJ rejects it (patient unknown) with an AppRec 1.1 posted as XML.
    auto facts = broker::xml::thread_validator().validate(reqs[0].body).facts;
    broker::apprec::request a;
    a.version = "1.1";
    a.st = broker::apprec::status::rejected;
    a.errors = {{"E35", "Pasienten finnes ikke i mottakersystemet", "2.16.578.1.12.4.1.1.8221", ""}};
    a.original = facts;
    a.software_name = "Gerica";
    auto xml = broker::apprec::build(a);
    REQUIRE(xml.has_value());
    auto ap = x.env.post_xml(*xml);
    REQUIRE(ap.status == 201);
    CHECK(str(json_of(ap), "originalId") == id);

    st = x.env.status(id, "apprec-rejected");
    CHECK(str(st, "state") == "apprec-rejected");
    auto& errs = st.at("appRecErrorList").as_array();
    REQUIRE(errs.size() == 1);
    CHECK(str(errs[0].as_object(), "errorCode") == "E35");
    auto inbox = json::parse(x.env.get("/Messages?receiverHerIds=" + her::portal).body).as_array();
    REQUIRE(inbox.size() == 1);
    CHECK(str(inbox[0].as_object(), "kind") == "apprec");
}

TEST_CASE("tieto: Tieto down: retried and visible in the status until it is back", "[integration][vendor][tieto]") {
    tieto_env x;
    x.tieto.reset();
    auto r = x.env.post_xml(dialog_message("e1000000-0000-4000-8000-000000000002"));
    REQUIRE(r.status == 201);
    std::string id = str(json_of(r), "id");
    auto st = x.env.status(id, "failed");
    CHECK(str(st, "state") == "failed");
    CHECK(str(st, "lastError").find("connection refused to 127.0.0.1:" + std::to_string(x.port)) != std::string::npos);

    x.tieto = std::make_unique<https_receiver>(x.pki, https_receiver::settings{.require_client_cert = true, .port = x.port});
    x.tieto->respond_with(200);
    st = x.env.status(id, "delivered");
    CHECK(str(st, "state") == "delivered");
    CHECK(has_transition(st, "failed", "connection refused"));
    CHECK(has_transition(st, "delivered", "http 200"));
}

TEST_CASE("tieto: Tieto answering garbage is retried with the reason in the status", "[integration][vendor][tieto]") {
    tieto_env x;
    x.tieto->send_garbage(true);
    auto r = x.env.post_xml(dialog_message("e1000000-0000-4000-8000-000000000003"));
    std::string id = str(json_of(r), "id");
    auto st = x.env.status(id, "failed");
    CHECK(str(st, "lastError").find("invalid http response from 127.0.0.1:") != std::string::npos);
    x.tieto->send_garbage(false);
    CHECK(str(x.env.status(id, "delivered"), "state") == "delivered");
}

TEST_CASE("tieto: a client certificate Tieto does not trust: the handshake fails, the message waits as failed",
          "[integration][vendor][tieto]") {
    tieto_env x(true);
    auto r = x.env.post_xml(dialog_message("e1000000-0000-4000-8000-000000000004"));
    std::string id = str(json_of(r), "id");
    auto st = x.env.status(id, "failed");
    CHECK(str(st, "state") == "failed");
    CHECK_FALSE(str(st, "lastError").empty());
    CHECK(x.tieto->wait_for_handshake_failures(1, 5s));
    CHECK(x.tieto->request_count() == 0);
}

TEST_CASE("tieto: 5xx is retried, 4xx is permanent (dead letter at once), both with the reason in the status",
          "[integration][vendor][tieto]") {
    tieto_env x;
    SECTION("503, then 202: retried until delivered") {
        x.tieto->respond_with(503, "<html>maintenance</html>");
        auto r = x.env.post_xml(dialog_message("e1000000-0000-4000-8000-000000000005"));
        REQUIRE(r.status == 201);
        std::string id = str(json_of(r), "id");
        auto st = x.env.status(id, "failed");
        CHECK(str(st, "lastError").find("http 503") != std::string::npos);
        CHECK(has_transition(st, "failed", "attempt 1: http 503"));
        x.tieto->respond_with(202);
        st = x.env.status(id, "delivered");
        CHECK(str(st, "state") == "delivered");
        CHECK(st.at("attempts").as_int64() >= 2);
    }
    SECTION("422: Tieto refuses the content for good") {
        x.tieto->respond_with(422, "<error>schema</error>");
        auto r = x.env.post_xml(dialog_message("e1000000-0000-4000-8000-000000000006"));
        REQUIRE(r.status == 201);
        std::string id = str(json_of(r), "id");
        auto st = x.env.status(id, "dead");
        CHECK(str(st, "state") == "dead");
        CHECK(str(st, "lastError") == "permanent failure: http 422");
        CHECK(x.tieto->request_count() == 1);  // not retried
    }
}

TEST_CASE("tieto: a Dialogmelding 1.0 goes as it is (Tieto speaks 1.0 and 1.1, no conversion)",
          "[integration][vendor][tieto]") {
    tieto_env x;
    std::string doc = replace_all(dialog_message("e1000000-0000-4000-8000-000000000007"),
                                  "http://www.kith.no/xmlstds/dialog/2013-01-23",
                                  "http://www.kith.no/xmlstds/dialog/2006-10-11");
    REQUIRE(broker::xml::thread_validator().validate(doc).v == broker::xml::verdict::valid);
    auto r = x.env.post_xml(doc);
    REQUIRE(r.status == 201);
    CHECK(str(x.env.status(str(json_of(r), "id"), "delivered"), "state") == "delivered");
    auto reqs = x.tieto->requests();
    REQUIRE(reqs.size() == 1);
    CHECK(reqs[0].body == doc);
}

TEST_CASE("tieto: a message type Tieto does not take: refused for one message (T10 + AppRec), and a rule "
          "for it refused when the rules load",
          "[integration][vendor][tieto]") {
    SECTION("one message") {
        tieto_env x;
        // Valid MsgHead, but a message function outside Tieto's DIALOG_* / APPREC.
        std::string doc = replace_all(dialog_message("e1000000-0000-4000-8000-000000000008"),
                                      R"(<Type V="DIALOG_INNBYGGER_EKONTAKT" DN="Dialog med innbygger - eKontakt"/>)",
                                      R"(<Type V="EPIKRISE" DN="Epikrise"/>)");
        REQUIRE(broker::xml::thread_validator().validate(doc).v == broker::xml::verdict::valid);
        auto r = x.env.post_xml(doc);
        CHECK(r.status == 400);
        auto o = json_of(r);
        CHECK(str(o.at("error").as_object(), "code") == "T10");
        CHECK(str(o.at("error").as_object(), "message").find("adapter 'tieto-oslo' (tieto) does not take EPIKRISE") !=
              std::string::npos);
        std::string apprec_id = str(o, "appRecId");
        REQUIRE(!apprec_id.empty());
        auto ap = broker::xml::thread_validator().validate(x.env.get("/Messages/" + apprec_id + "/business-document").body);
        CHECK(ap.facts.apprec_status == "2");
        REQUIRE(ap.facts.apprec_errors.size() == 1);
        CHECK(ap.facts.apprec_errors[0].code == "T10");
        CHECK(ap.facts.original_msg_id == "e1000000-0000-4000-8000-000000000008");
        CHECK(str(x.env.status(str(o, "id")), "state") == "rejected");
        CHECK(x.tieto->request_count() == 0);
    }
    SECTION("a rule") {
        temp_dir dir;
        auto p = pki::generate(dir.path() / "pki", "edibroker-oslo");
        std::string rules = replace_all(tieto_rules("https://127.0.0.1:1/gerica/messages", p, p),
                                        "<match receiver-or-ancestor=\"9100100\"/>",
                                        "<match receiver-or-ancestor=\"9100100\" type=\"EPIKRISE\"/>");
        write_file(dir.path() / "rules/rules.xml", rules);
        write_file(dir.path() / "registry.xml", test_registry());
        auto cfg = broker::default_config();
        cfg.listen = "127.0.0.1:0";
        cfg.data_dir = (dir.path() / "data").string();
        cfg.rules_dir = (dir.path() / "rules").string();
        cfg.registry_file = (dir.path() / "registry.xml").string();
        cfg.log_level = "off";
        auto s = broker::make_server(cfg);
        REQUIRE_FALSE(s.has_value());
        CHECK(s.error().where().find("rule 'oslo-tieto' sends type 'EPIKRISE' to adapter 'tieto-oslo', which does "
                                     "not accept that message type") != std::string::npos);
        CHECK(s.error().file.find("rules.xml") != std::string::npos);
    }
}

TEST_CASE("tieto: each municipality's instance presents its own client certificate to its own Tieto",
          "[integration][vendor][tieto]") {
    temp_dir pki_dir;
    auto oslo_pki = pki::generate(pki_dir.path() / "oslo", "edibroker-oslo");
    auto bergen_pki = pki::generate(pki_dir.path() / "bergen", "edibroker-bergen");
    https_receiver oslo(oslo_pki), bergen(bergen_pki);  // each trusts only its own CA
    oslo.respond_with(202);
    bergen.respond_with(200);
    auto instance = [](const std::string& name, const std::string& url, const pki::files& p) {
        return "  <adapter name=\"" + name + "\" type=\"tieto\">\n    <option name=\"url\" value=\"" + url +
               "\"/>\n    <option name=\"ca-file\" value=\"" + p.ca_cert.string() +
               "\"/>\n    <option name=\"client-cert\" value=\"" + p.client_cert.string() +
               "\"/>\n    <option name=\"client-key\" value=\"" + p.client_key.string() + "\"/>\n  </adapter>\n";
    };
    std::string rules = R"(<routing-rules xmlns="urn:edibroker:routing-rules:1">
  <adapter name="portal-inbox" type="pull"/>
)" + instance("tieto-oslo", oslo.url("/gerica/messages"), oslo_pki) +
                        instance("tieto-bergen", bergen.url("/lifecare/in"), bergen_pki) + R"(
  <rule id="oslo" priority="100"><match receiver-or-ancestor="9100100"/><deliver adapter="tieto-oslo"/></rule>
  <rule id="bergen" priority="100"><match receiver-or-ancestor="9100200"/><deliver adapter="tieto-bergen"/></rule>
  <rule id="portal" priority="100"><match receiver-or-ancestor="115851"/><deliver adapter="portal-inbox"/></rule>
</routing-rules>
)";
    broker_env env{[&](const std::string&) { return rules; }};
    std::string to_oslo = dialog_message("e1000000-0000-4000-8000-000000000009");
    std::string to_bergen = replace_all(replace_all(dialog_message("e1000000-0000-4000-8000-00000000000a"),
                                                    "<Id>9100110</Id>", "<Id>" + her::bergen_home_care + "</Id>"),
                                        "<Id>9100100</Id>", "<Id>" + her::bergen_org + "</Id>");
    auto ro = env.post_xml(to_oslo);
    auto rb = env.post_xml(to_bergen);
    REQUIRE(ro.status == 201);
    REQUIRE(rb.status == 201);
    CHECK(str(env.status(str(json_of(ro), "id"), "delivered"), "adapter") == "tieto-oslo");
    CHECK(str(env.status(str(json_of(rb), "id"), "delivered"), "adapter") == "tieto-bergen");
    auto o = oslo.requests();
    auto b = bergen.requests();
    REQUIRE(o.size() == 1);
    REQUIRE(b.size() == 1);
    CHECK(o[0].client_cn == "edibroker-oslo");
    CHECK(o[0].body == to_oslo);
    CHECK(b[0].client_cn == "edibroker-bergen");
    CHECK(b[0].target == "/lifecare/in");
    CHECK(b[0].body == to_bergen);
}
