// Digihelse visit notifications and read notices (issue 6) end to end: a real broker, a real SMTP
// server process (python3-aiosmtpd, tests/support/smtp_server.py) receiving the e-mail, a real
// HTTP receiver standing for the SMS gateway, and one for the portal's route.
#include "broker_env.hpp"
#include "smtp_server.hpp"

#include "broker/xml.hpp"

#include <iostream>
#include <set>

using namespace testing;
namespace json = boost::json;

namespace {

const std::string patient = "01010112345";
const std::string relative_yes = "02020254321";
const std::string relative_no = "03030398765";
const std::string visit_text_nb = "Et bes\xC3\xB8k fra Hjemmetjenesten Gr\xC3\xBCnerl\xC3\xB8kka ble utf\xC3\xB8rt 22.11.2026 kl. 10:15.";

/// The sample VisitNotice with its MsgId and patient replaced.
std::string visit_message(const std::string& msg_id, const std::string& patient_id = patient) {
    std::string s = read_file(source_dir() / "samples/digihelse/visit-carried-out.xml");
    s = replace_all(s, "3d0b6f52-8a41-4c7e-9a55-2f8e1c7b9d01", msg_id);
    return replace_all(s, "01010112345", patient_id);
}

http_response put_consents(broker_env& env, const std::string& patient_id, const std::string& body) {
    return http_request("PUT", env.url("/Consents/" + patient_id), body, {"Content-Type: application/json"});
}

/// GET /Messages/{id}/notifications, waiting server-side for 'states' (all of them) when given.
json::array notifications(broker_env& env, const std::string& id, const std::string& query = "") {
    auto r = env.get("/Messages/" + id + "/notifications" + (query.empty() ? "" : "?" + query));
    REQUIRE(r.status == 200);
    auto o = json_of(r);
    return o.at("notifications").as_array();
}

std::string post_visit(broker_env& env, const std::string& msg_id, const std::string& patient_id = patient) {
    auto r = env.post_xml(visit_message(msg_id, patient_id));
    INFO(r.body);
    REQUIRE(r.status == 201);
    return str(json_of(r), "id");
}

/// Notification settings for tests: fast retries, plain SMTP on loopback.
std::function<void(broker::config&)> notify_config(std::string smtp_url, std::string sms_url, int max_attempts = 5) {
    return [=](broker::config& c) {
        c.smtp_url = smtp_url;
        c.smtp_tls = "none";
        c.smtp_from = "varsel@kommune.example";
        c.sms_gateway_url = sms_url;
        c.sms_gateway_token = "test-token";
        c.notify_retry_base_ms = 20;
        c.notify_retry_max_ms = 100;
        c.notify_scan_ms = 20;
        c.notify_timeout_ms = 5000;
        c.notify_max_attempts = max_attempts;
    };
}

#define SKIP_WITHOUT_AIOSMTPD()                                                                          \
    if (!smtp_server::available()) {                                                                     \
        std::cout << "skipped: python3-aiosmtpd is not installed (tools/install-deps.sh installs it)\n"; \
        return;                                                                                          \
    }

} // namespace

TEST_CASE("visit carried out: e-mail and SMS to those who consented, nothing to the others", "[integration][notify]") {
    SKIP_WITHOUT_AIOSMTPD();
    smtp_server smtp;
    http_receiver sms;
    sms.respond_with(202, R"({"status":"queued"})");
    broker_env env({}, test_registry(), notify_config(smtp.url(), sms.url("/sms")));

    // The patient: SMS and e-mail; one relative with power of attorney: e-mail; another relative
    // chose e-mail but did not consent.
    auto r = put_consents(env, patient, R"({"persons": [
        {"personId": ")" + patient + R"(", "role": "self", "channels": ["sms", "email"],
         "phone": "+47 900 00 001", "email": "ola@example.invalid", "consent": true},
        {"personId": ")" + relative_yes + R"(", "role": "relative", "name": "Kari", "channels": ["email"],
         "email": "kari@example.invalid", "consent": true},
        {"personId": ")" + relative_no + R"(", "role": "relative", "channels": ["email"],
         "email": "per@example.invalid", "consent": false}]})");
    INFO(r.body);
    REQUIRE(r.status == 200);

    // A visit to a patient without any consents first: no notification at all.
    std::string other = post_visit(env, "b0000000-0000-4000-8000-000000000001", "05050512345");
    // Then the consenting patient's visit.
    std::string id = post_visit(env, "b0000000-0000-4000-8000-000000000002");
    // The first one's planning was committed before the second message was (one writer, in order).
    CHECK(notifications(env, other).empty());

    REQUIRE(smtp.wait_for_messages(2, std::chrono::seconds(15)));
    REQUIRE(sms.wait_for_requests(1, std::chrono::seconds(15)));
    auto list = notifications(env, id, "waitForState=sent&timeoutMs=10000");
    REQUIRE(list.size() == 3);  // self e-mail, self SMS, relative e-mail
    int self_n = 0, relative_n = 0;
    for (auto& n : list) {
        auto& o = n.as_object();
        CHECK(str(o, "state") == "sent");
        CHECK(o.at("attempts").as_int64() == 1);
        CHECK_FALSE(str(o, "sentAt").empty());
        (str(o, "role") == "self" ? self_n : relative_n)++;
        // The status shows no contact data.
        CHECK(o.if_contains("address") == nullptr);
    }
    CHECK(self_n == 2);
    CHECK(relative_n == 1);

    auto mails = smtp.messages();
    REQUIRE(mails.size() == 2);
    std::set<std::string> rcpts;
    for (auto& m : mails) {
        REQUIRE(m.rcpt_tos.size() == 1);
        rcpts.insert(m.rcpt_tos[0]);
        CHECK(m.mail_from == "varsel@kommune.example");
        CHECK(m.subject == "Hjemmebes\xC3\xB8k utf\xC3\xB8rt");
        CHECK(m.content_type == "text/plain");
        std::string text = m.body;
        while (!text.empty() && (text.back() == '\n' || text.back() == '\r'))
            text.pop_back();
        CHECK(text == visit_text_nb);
        // Only the service and the time: not the patient's name or id, nor the visit's id.
        CHECK(m.raw.find("Testesen") == std::string::npos);
        CHECK(m.raw.find(patient) == std::string::npos);
    }
    CHECK(rcpts == std::set<std::string>{"ola@example.invalid", "kari@example.invalid"});

    REQUIRE(sms.requests().size() == 1);
    auto req = sms.requests()[0];
    CHECK(req.method == "POST");
    CHECK(req.target == "/sms");
    CHECK(req.headers["Authorization"] == "Bearer test-token");
    auto body = json::parse(req.body).as_object();
    CHECK(str(body, "to") == "+4790000001");
    CHECK(str(body, "text") == visit_text_nb);

    // The visit notice itself went on to the portal like any message.
    auto st = env.status(id);
    CHECK(str(st, "state") == "waiting");
    CHECK(str(st, "type") == "EDIBROKER_BESOK_UTFORT");
}

TEST_CASE("SMTP server down: the e-mail is retried with back-off, visible, and sent once it is up", "[integration][notify]") {
    SKIP_WITHOUT_AIOSMTPD();
    const unsigned short port = smtp_server::free_port();  // nothing listens there yet
    broker_env env({}, test_registry(), notify_config("smtp://127.0.0.1:" + std::to_string(port), "", 200));
    REQUIRE(put_consents(env, patient, R"({"persons": [{"role": "self", "channels": ["email"],
        "email": "ola@example.invalid", "consent": true}]})").status == 200);
    std::string id = post_visit(env, "b0000000-0000-4000-8000-000000000010");

    auto list = notifications(env, id, "channel=email&waitForState=retrying&minAttempts=2&timeoutMs=10000");
    REQUIRE(list.size() == 1);
    auto o = list[0].as_object();
    CHECK(str(o, "state") == "retrying");
    CHECK(o.at("attempts").as_int64() >= 2);
    CHECK_THAT(str(o, "lastError"), Catch::Contains("smtp"));
    CHECK_FALSE(str(o, "nextAttemptAt").empty());
    CHECK(str(o, "lastError").find("ola@") == std::string::npos);

    smtp_server smtp(port);
    REQUIRE(smtp.wait_for_messages(1, std::chrono::seconds(15)));
    list = notifications(env, id, "waitForState=sent&timeoutMs=10000");
    REQUIRE(list.size() == 1);
    CHECK(str(list[0].as_object(), "state") == "sent");
    CHECK(list[0].as_object().at("attempts").as_int64() >= 3);
    CHECK(smtp.messages().at(0).rcpt_tos == std::vector<std::string>{"ola@example.invalid"});
}

TEST_CASE("a refused mailbox fails at once; a failing SMS gateway is given up after max attempts", "[integration][notify]") {
    SKIP_WITHOUT_AIOSMTPD();
    smtp_server smtp;
    http_receiver sms;
    sms.respond_with(503, "busy");
    broker_env env({}, test_registry(), notify_config(smtp.url(), sms.url("/sms"), 3));
    REQUIRE(put_consents(env, patient, R"({"persons": [{"role": "self", "channels": ["email", "sms"],
        "email": "reject-me@example.invalid", "phone": "90000001", "consent": true}]})").status == 200);
    std::string id = post_visit(env, "b0000000-0000-4000-8000-000000000020");

    auto list = notifications(env, id, "waitForState=failed&timeoutMs=10000");
    REQUIRE(list.size() == 2);
    for (auto& n : list) {
        auto& o = n.as_object();
        CHECK(str(o, "state") == "failed");
        if (str(o, "channel") == "email") {
            CHECK(o.at("attempts").as_int64() == 1);  // 550: permanent
            CHECK_THAT(str(o, "lastError"), Catch::Contains("permanent") && Catch::Contains("550"));
        } else {
            CHECK(o.at("attempts").as_int64() == 3);
            CHECK_THAT(str(o, "lastError"), Catch::Contains("http 503") && Catch::Contains("gave up after 3"));
        }
    }
    CHECK(sms.request_count() == 3);
    CHECK(smtp.messages().empty());
}

TEST_CASE("consents: PUT, GET, DELETE and refusals", "[integration][notify]") {
    broker_env env;
    SECTION("stored and read back, replaced whole, deleted") {
        auto r = put_consents(env, patient, R"({"persons": [{"role": "self", "channels": ["sms"],
            "phone": "+47 900 00 001", "consent": true}]})");
        REQUIRE(r.status == 200);
        auto g = env.get("/Consents/" + patient);
        REQUIRE(g.status == 200);
        auto o = json_of(g);
        auto& persons = o.at("persons").as_array();
        REQUIRE(persons.size() == 1);
        CHECK(str(persons[0].as_object(), "personId") == patient);
        CHECK(str(persons[0].as_object(), "phone") == "+4790000001");
        CHECK(persons[0].as_object().at("consent").as_bool());
        auto d = http_request("DELETE", env.url("/Consents/" + patient));
        CHECK(d.status == 204);
        CHECK(env.get("/Consents/" + patient).status == 404);
    }
    SECTION("refused with a reason that names the field, not the value") {
        auto bad = [&](const std::string& body, const std::string& field) {
            auto r = put_consents(env, patient, body);
            INFO(body << " -> " << r.body);
            CHECK(r.status == 400);
            auto o = json_of(r);
            CHECK(str(o.at("error").as_object(), "code") == "request.invalid");
            CHECK_THAT(str(o.at("error").as_object(), "message"), Catch::Contains(field));
        };
        bad("not json", "JSON");
        bad(R"({"persons": [{"role": "self", "channels": ["sms"], "consent": true}]})", "phone");
        bad(R"({"persons": [{"role": "self", "channels": ["email"], "email": "a b@x", "consent": true}]})", "email");
        bad(R"({"persons": [{"role": "boss", "consent": true}]})", "role");
        bad(R"({"persons": [{"role": "self", "channels": ["fax"], "consent": true}]})", "channels");
        bad(R"({"persons": [{"role": "self"}]})", "consent");
        bad(R"({"persons": [{"role": "relative", "personId": ")" + patient + R"(", "consent": true}]})", "relative");
        CHECK(put_consents(env, "123", R"({"persons": []})").status == 400);
        auto ct = http_request("PUT", env.url("/Consents/" + patient), "{}", {"Content-Type: text/plain"});
        CHECK(ct.status == 415);
    }
}

TEST_CASE("the consents file is imported at start; the samples validate", "[integration][notify]") {
    for (const char* f : {"samples/digihelse/visit-carried-out.xml", "samples/digihelse/read-notice.xml"}) {
        auto vr = broker::xml::thread_validator().validate(read_file(source_dir() / f), f);
        INFO(f << ": " << (vr.diagnostics.empty() ? "" : vr.diagnostics[0].message));
        CHECK(vr.v == broker::xml::verdict::valid);
    }
    broker_env env({}, test_registry(), [](broker::config& c) {
        c.consents_file = (source_dir() / "samples/digihelse/visit-consents.json").string();
    });
    auto g = env.get("/Consents/" + patient);
    REQUIRE(g.status == 200);
    CHECK(json_of(g).at("persons").as_array().size() == 3);
}

TEST_CASE("read receipt: the EPJ reads the citizen's message and a read notice reaches the portal", "[integration][notify]") {
    http_receiver portal;
    portal.respond_with(200);
    const std::string portal_url = portal.url("/portal");
    broker_env env(
        [&](const std::string& vendor_url) {
            return R"(<routing-rules xmlns="urn:edibroker:routing-rules:1">
  <adapter name="portal-push" type="http-push"><option name="url" value=")" + portal_url + R"("/></adapter>
  <adapter name="vendor" type="http-push"><option name="url" value=")" + vendor_url + R"("/></adapter>
  <rule id="oslo-vendor" priority="100"><match receiver-or-ancestor="9100100"/><deliver adapter="vendor"/></rule>
  <rule id="portal" priority="100"><match receiver-or-ancestor="115851"/><deliver adapter="portal-push"/></rule>
</routing-rules>
)";
        },
        test_registry(), [](broker::config& c) { c.read_notice_her_ids = "8093244"; });

    const std::string msg_id = "b0000000-0000-4000-8000-000000000030";
    auto r = env.post_xml(dialog_message(msg_id));
    REQUIRE(r.status == 201);
    std::string id = str(json_of(r), "id");
    REQUIRE(env.vendor.wait_for_requests(1, std::chrono::seconds(10)));
    env.status(id, "delivered");

    auto rd = http_request("PUT", env.url("/Messages/" + id + "/read/" + her::oslo_home_care));
    REQUIRE(rd.status == 204);
    // The status API shows it (the sender's view) ...
    auto st = env.status(id, "read");
    CHECK(str(st.at("read").as_object(), "herId") == her::oslo_home_care);

    // ... and the portal gets a ReadNotice over its own route.
    REQUIRE(portal.wait_for_requests(1, std::chrono::seconds(10)));
    auto req = portal.requests().at(0);
    CHECK(req.body.find("<Type V=\"EDIBROKER_LEST\"") != std::string::npos);
    CHECK(req.body.find("<OriginalMsgId>" + msg_id + "</OriginalMsgId>") != std::string::npos);
    CHECK(req.body.find("<BrokerId>" + id + "</BrokerId>") != std::string::npos);
    CHECK(req.body.find("<ReadBy>" + her::oslo_home_care + "</ReadBy>") != std::string::npos);
    auto vr = broker::xml::thread_validator().validate(req.body, "read-notice");
    CHECK(vr.v == broker::xml::verdict::valid);
    CHECK(vr.facts.sender.lowest_her() == her::oslo_home_care);
    CHECK(vr.facts.receiver.lowest_her() == her::portal);

    // Reading again is idempotent: no second notice (checked after the next message round trip).
    CHECK(http_request("PUT", env.url("/Messages/" + id + "/read/" + her::oslo_home_care)).status == 204);
    auto r2 = env.post_xml(dialog_message("b0000000-0000-4000-8000-000000000031"));
    REQUIRE(r2.status == 201);
    std::string id2 = str(json_of(r2), "id");
    env.status(id2, "delivered");
    REQUIRE(http_request("PUT", env.url("/Messages/" + id2 + "/read/" + her::oslo_home_care)).status == 204);
    REQUIRE(portal.wait_for_requests(2, std::chrono::seconds(10)));
    CHECK(portal.requests().at(1).body.find("<BrokerId>" + id2 + "</BrokerId>") != std::string::npos);
    CHECK(portal.request_count() == 2);
}

TEST_CASE("a visit notice stored but not planned (stopped in between) is planned at the next start", "[integration][notify]") {
    SKIP_WITHOUT_AIOSMTPD();
    smtp_server smtp;
    // First run: no channel configured, so the visit notice is stored and nothing is planned.
    broker_env env;
    REQUIRE(put_consents(env, patient, R"({"persons": [{"role": "self", "channels": ["email"],
        "email": "ola@example.invalid", "consent": true}]})").status == 200);
    std::string id = post_visit(env, "b0000000-0000-4000-8000-000000000040");
    CHECK(notifications(env, id).empty());
    // Next run with e-mail: the notice is found unplanned and planned now, once.
    notify_config(smtp.url(), "")(env.cfg);
    env.restart();
    REQUIRE(smtp.wait_for_messages(1, std::chrono::seconds(15)));
    auto list = notifications(env, id, "waitForState=sent&timeoutMs=10000");
    REQUIRE(list.size() == 1);
    env.restart();  // planned already: not again
    auto again = env.post_xml(visit_message("b0000000-0000-4000-8000-000000000041", "05050512345"));
    REQUIRE(again.status == 201);
    CHECK(notifications(env, id).size() == 1);
    CHECK(smtp.messages().size() == 1);
}
