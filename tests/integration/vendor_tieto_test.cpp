// TietoEvry end to end: the real broker delivers through the tieto adapter — the raw MsgHead XML,
// application/xml, over HTTPS with the instance's client certificate — to a real HTTPS server that
// checks client certificates (testing::https_receiver; CA, server and client certificates made at
// test time with the OpenSSL API). Tieto answers 202 and later sends its AppRec as a MsgHead/AppRec
// message to the broker's POST /Messages. Also: Tieto down, Tieto answering garbage, a client
// certificate Tieto does not trust. No sleeps.
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
