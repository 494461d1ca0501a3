// DIPS end to end: the real broker (in process, port 0, real SQLite) delivers through the dips
// adapter over real HTTPS (testing::https_receiver standing in for DIPS, certificates made at test
// time) in the EDI 2.0 JSON shape; DIPS answers 201 + id and posts its AppRec and read receipt back
// to the broker's REST API. DIPS's own message to the portal goes the other way, and the portal's
// AppRec 1.0 reaches DIPS as 1.1. Also: DIPS down, DIPS answering garbage, a Dialogmelding 1.0 that
// DIPS cannot take, and a rule that can never deliver refused when the rules load. No sleeps: every
// wait is waitForState on the status endpoint or a condition with a deadline.
#include "broker_env.hpp"

#include "https_receiver.hpp"
#include "pki.hpp"

#include "broker/apprec.hpp"
#include "broker/xml.hpp"

using namespace testing;
namespace json = boost::json;
using namespace std::chrono_literals;

namespace {

std::string dips_rules(const std::string& url, const pki::files& pki) {
    return R"(<routing-rules xmlns="urn:edibroker:routing-rules:1">
  <adapter name="portal-inbox" type="pull"/>
  <adapter name="dips-oslo" type="dips">
    <option name="url" value=")" +
           url + R"("/>
    <option name="ca-file" value=")" +
           pki.ca_cert.string() + R"("/>
    <option name="header.Authorization" value="Bearer test-token"/>
    <option name="timeout-ms" value="5000"/>
  </adapter>
  <rule id="oslo-dips" priority="100">
    <match receiver-or-ancestor="9100100"/>
    <deliver adapter="dips-oslo"/>
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

/// PKI and the DIPS stand-in first (the rules need its URL), then the broker.
struct dips_env {
    temp_dir pki_dir;
    pki::files pki = pki::generate(pki_dir.path(), "edibroker");
    std::unique_ptr<https_receiver> dips =
        std::make_unique<https_receiver>(pki, https_receiver::settings{.require_client_cert = false});
    unsigned short port = dips->port();
    broker_env env{[this](const std::string&) {
        return dips_rules("https://127.0.0.1:" + std::to_string(port) + "/api/Messages", pki);
    }};

    dips_env() { answer_created(); }

    /// DIPS's normal answer: 201 with an id of its own.
    void answer_created() {
        auto n = std::make_shared<std::atomic<int>>(0);
        dips->set_reply_handler([n](const https_recorded_request&) {
            return reply{201, R"({"id":"dips-)" + std::to_string(++*n) + R"("})", {}};
        });
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

TEST_CASE("dips: a Dialogmelding reaches DIPS as EDI 2.0 JSON over HTTPS; its AppRec and read receipt come back",
          "[integration][vendor][dips]") {
    dips_env x;
    std::string doc = dialog_message("d1000000-0000-4000-8000-000000000001");
    auto r = x.env.post_xml(doc);
    REQUIRE(r.status == 201);
    std::string id = str(json_of(r), "id");

    auto st = x.env.status(id, "delivered");
    REQUIRE(str(st, "state") == "delivered");
    CHECK(str(st, "adapter") == "dips-oslo");
    CHECK(has_transition(st, "delivered", "delivered by dips-oslo: http 201, DIPS id dips-1"));

    auto reqs = x.dips->requests();
    REQUIRE(reqs.size() == 1);
    CHECK(reqs[0].target == "/api/Messages");
    CHECK(reqs[0].headers.at("Content-Type") == "application/json");
    CHECK(reqs[0].headers.at("Authorization") == "Bearer test-token");
    CHECK(reqs[0].headers.at("X-EDIBroker-Id") == id);
    auto body = json::parse(reqs[0].body).as_object();
    CHECK(body.at("contentType").as_string() == "application/xml");
    CHECK(body.at("contentTransferEncoding").as_string() == "base64");
    CHECK(base64_decode(std::string(body.at("businessDocument").as_string())) == doc);

    // DIPS answers over the broker's REST API, with the broker id it got in X-EDIBroker-Id.
    std::string broker_id = reqs[0].headers.at("X-EDIBroker-Id");
    auto ap = http_request("POST", x.env.url("/Messages/" + broker_id + "/apprec/" + her::oslo_home_care),
                           R"({"appRecStatus":"Ok"})", {"Content-Type: application/json"});
    REQUIRE(ap.status == 201);
    std::string apprec_id = str(json_of(ap), "id");
    CHECK(http_request("PUT", x.env.url("/Messages/" + broker_id + "/read/" + her::oslo_home_care)).status == 204);

    st = x.env.status(id, "read");
    CHECK(str(st, "appRecStatus") == "Ok");
    CHECK(str(st, "appRecId") == apprec_id);
    CHECK(str(st.at("read").as_object(), "herId") == her::oslo_home_care);

    // The portal finds the AppRec (1.1, as its route says) in its inbox.
    auto inbox = json::parse(x.env.get("/Messages?receiverHerIds=" + her::portal).body).as_array();
    REQUIRE(inbox.size() == 1);
    CHECK(str(inbox[0].as_object(), "id") == apprec_id);
    CHECK(str(inbox[0].as_object(), "originalMsgId") == "d1000000-0000-4000-8000-000000000001");
    CHECK(str(inbox[0].as_object(), "namespace") == "http://www.kith.no/xmlstds/apprec/2012-02-15");
}

TEST_CASE("dips: DIPS down: the delivery is retried, each attempt visible in the status, until DIPS is back",
          "[integration][vendor][dips]") {
    dips_env x;
    x.dips.reset();  // DIPS is down: nothing listens on its port
    auto r = x.env.post_xml(dialog_message("d1000000-0000-4000-8000-000000000002"));
    REQUIRE(r.status == 201);  // stored: the sender is not bothered by DIPS being down
    std::string id = str(json_of(r), "id");

    auto st = x.env.status(id, "failed");
    REQUIRE(str(st, "state") == "failed");
    CHECK(st.at("attempts").as_int64() >= 1);
    CHECK(str(st, "lastError").find("connection refused to 127.0.0.1:" + std::to_string(x.port)) != std::string::npos);
    CHECK(has_transition(st, "failed", "attempt 1: connection refused to 127.0.0.1:"));

    // DIPS comes back on the same port; the next retry gets through.
    x.dips = std::make_unique<https_receiver>(x.pki, https_receiver::settings{.require_client_cert = false, .port = x.port});
    x.answer_created();
    st = x.env.status(id, "delivered");
    CHECK(str(st, "state") == "delivered");
    CHECK(st.at("attempts").as_int64() >= 1);
    CHECK(x.dips->request_count() == 1);
}

TEST_CASE("dips: DIPS answering garbage: retried with the reason in the status, never taken as delivered",
          "[integration][vendor][dips]") {
    dips_env x;
    SECTION("bytes that are not HTTP") {
        x.dips->send_garbage(true);
        auto r = x.env.post_xml(dialog_message("d1000000-0000-4000-8000-000000000003"));
        std::string id = str(json_of(r), "id");
        auto st = x.env.status(id, "failed");
        CHECK(str(st, "lastError").find("invalid http response from 127.0.0.1:") != std::string::npos);
        x.dips->send_garbage(false);
        CHECK(str(x.env.status(id, "delivered"), "state") == "delivered");
    }
    SECTION("201 without an id") {
        x.dips->respond_with(201, "<html><body>Created</body></html>");
        auto r = x.env.post_xml(dialog_message("d1000000-0000-4000-8000-000000000004"));
        std::string id = str(json_of(r), "id");
        auto st = x.env.status(id, "failed");
        CHECK(str(st, "lastError").find("http 201 without an id in the answer") != std::string::npos);
        x.answer_created();
        CHECK(str(x.env.status(id, "delivered"), "state") == "delivered");
    }
    SECTION("a permanent refusal (4xx) is a dead letter at once") {
        x.dips->respond_with(400, R"({"error":"schema"})");
        auto r = x.env.post_xml(dialog_message("d1000000-0000-4000-8000-000000000005"));
        std::string id = str(json_of(r), "id");
        auto st = x.env.status(id, "dead");
        CHECK(str(st, "state") == "dead");
        CHECK(str(st, "lastError") == "permanent failure: http 400");
        CHECK(x.dips->request_count() == 1);
    }
}

TEST_CASE("dips: a Dialogmelding 1.0 is refused at intake with T10 and an AppRec error to the sender",
          "[integration][vendor][dips]") {
    dips_env x;
    std::string doc = replace_all(dialog_message("d1000000-0000-4000-8000-000000000006"),
                                  "http://www.kith.no/xmlstds/dialog/2013-01-23",
                                  "http://www.kith.no/xmlstds/dialog/2006-10-11");
    auto r = x.env.post_xml(doc);
    CHECK(r.status == 400);
    auto o = json_of(r);
    CHECK(str(o.at("error").as_object(), "code") == "T10");
    CHECK(str(o.at("error").as_object(), "message").find("adapter 'dips-oslo' (dips) does not take") !=
          std::string::npos);
    std::string apprec_id = str(o, "appRecId");
    REQUIRE(!apprec_id.empty());
    auto ap = x.env.get("/Messages/" + apprec_id + "/business-document");
    CHECK(ap.body.find("V=\"T10\"") != std::string::npos);
    CHECK(ap.body.find("d1000000-0000-4000-8000-000000000006") != std::string::npos);
    CHECK(str(x.env.status(str(o, "id")), "state") == "rejected");
    CHECK(x.dips->request_count() == 0);
}

TEST_CASE("dips: a rule sending a type DIPS does not take is refused when the rules load",
          "[integration][vendor][dips]") {
    temp_dir dir;
    auto pki = pki::generate(dir.path() / "pki");
    std::string rules = dips_rules("https://127.0.0.1:1/api/Messages", pki);
    rules = replace_all(rules, "<match receiver-or-ancestor=\"9100100\"/>",
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
    CHECK(s.error().where().find("rule 'oslo-dips' sends type 'EPIKRISE' to adapter 'dips-oslo', which does not "
                                 "accept that message type") != std::string::npos);
    CHECK(s.error().file.find("rules.xml") != std::string::npos);
}

TEST_CASE("dips: DIPS writes to the portal (EDI 2.0 JSON to POST /Messages); the portal's AppRec 1.0 reaches "
          "DIPS as 1.1",
          "[integration][vendor][dips]") {
    dips_env x;
    // The nurse answers the citizen: DIPS posts its own Dialogmelding 1.1 in the EDI 2.0 shape.
    const std::string msg_id = "d1000000-0000-4000-8000-0000000000a1";
    std::string doc = dialog_message(msg_id);
    auto sb = doc.find("<Sender>"), se = doc.find("</Sender>") + 9;
    auto rb = doc.find("<Receiver>"), re = doc.find("</Receiver>") + 11;
    std::string sender = replace_all(replace_all(doc.substr(sb, se - sb), "<Sender>", "<Receiver>"), "</Sender>",
                                     "</Receiver>");
    std::string receiver = replace_all(replace_all(doc.substr(rb, re - rb), "<Receiver>", "<Sender>"), "</Receiver>",
                                       "</Sender>");
    std::string answer = doc.substr(0, sb) + receiver + doc.substr(se, rb - se) + sender + doc.substr(re);
    json::object body{{"businessDocument", base64_encode(answer)},
                      {"contentType", "application/xml"},
                      {"contentTransferEncoding", "base64"}};
    auto r = http_request("POST", x.env.url("/Messages"), json::serialize(body), {"Content-Type: application/json"});
    REQUIRE(r.status == 201);
    std::string answer_id = str(json_of(r), "id");
    CHECK(str(x.env.status(answer_id, "waiting"), "adapter") == "portal-inbox");

    // The portal acknowledges it with an AppRec 1.0 of its own (a process whose CPA prescribes 1.0),
    // posted as raw XML.
    auto facts = broker::xml::thread_validator().validate(answer).facts;
    broker::apprec::request a;
    a.version = "1.0";
    a.st = broker::apprec::status::ok;
    a.original = facts;
    a.software_name = "Helsenorge";
    auto apprec = broker::apprec::build(a);
    REQUIRE(apprec.has_value());
    REQUIRE(apprec->find("http://www.kith.no/xmlstds/apprec/2004-11-21") != std::string::npos);
    auto pr = x.env.post_xml(*apprec);
    REQUIRE(pr.status == 201);
    std::string apprec_broker_id = str(json_of(pr), "id");
    CHECK(str(json_of(pr), "originalId") == answer_id);
    auto st = x.env.status(apprec_broker_id, "delivered");
    CHECK(str(st, "state") == "delivered");
    CHECK(str(st, "adapter") == "dips-oslo");
    CHECK(str(x.env.status(answer_id, "apprec-ok"), "appRecStatus") == "Ok");

    // DIPS got it as AppRec 1.1 (namespace and MIGversion), every fact kept; the broker keeps 1.0.
    REQUIRE(x.dips->wait_for_requests(1, 5s));
    auto reqs = x.dips->requests();
    REQUIRE(reqs.size() == 1);
    std::string sent = base64_decode(std::string(json::parse(reqs[0].body).as_object().at("businessDocument").as_string()));
    auto got = broker::xml::thread_validator().validate(sent);
    REQUIRE(got.v == broker::xml::verdict::valid);
    CHECK(got.facts.root_ns == broker::ns::apprec_1_1);
    CHECK(got.facts.mig_version == "v1.1 2012-02-15");
    CHECK(got.facts.original_msg_id == msg_id);
    CHECK(got.facts.apprec_status == "1");
    CHECK(got.facts.msg_id == broker::xml::thread_validator().validate(*apprec).facts.msg_id);
    CHECK(x.env.get("/Messages/" + apprec_broker_id + "/business-document").body == *apprec);
}
