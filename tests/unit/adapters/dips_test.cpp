// dips adapter against a real HTTPS server (testing::https_receiver, certificates made at test
// time): the EDI 2.0 JSON shape, 201 + id, every other answer classified, TLS, options, and what it
// accepts (Dialogmelding 1.1, AppRec 1.1; an AppRec 1.0 goes out as 1.1). No sleeps.
#include "broker/adapter.hpp"
#include "broker/message.hpp"
#include "broker/xml.hpp"

#include "http_client.hpp"
#include "https_receiver.hpp"
#include "pki.hpp"
#include "test_paths.hpp"

#include <catch2/catch.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/json.hpp>

#include <condition_variable>
#include <mutex>
#include <optional>

using namespace broker;
using namespace std::chrono_literals;
using outcome = delivery_result::outcome;

namespace {

adapter_registry& registry() {
    static adapter_registry r = [] {
        adapter_registry x;
        register_builtin_adapters(x);
        return x;
    }();
    return r;
}

adapter_config dips_config(std::map<std::string, std::string> opts) {
    adapter_config c;
    c.name = "dips-test";
    c.type = "dips";
    c.options = std::move(opts);
    return c;
}

adapter_ptr make_dips(std::map<std::string, std::string> opts) {
    const adapter_factory* f = registry().find("dips");
    REQUIRE(f);
    auto a = f->create(dips_config(std::move(opts)));
    INFO((a ? std::string() : a.error().message));
    REQUIRE(a.has_value());
    REQUIRE((*a)->start().has_value());
    return std::move(*a);
}

/// Deliver and wait (bounded) for the one result.
delivery_result deliver_one(adapter& a, delivery d) {
    std::mutex m;
    std::condition_variable cv;
    std::optional<delivery_result> got;
    a.deliver(std::move(d), [&](delivery_result r) {
        std::lock_guard lk(m);
        got = std::move(r);
        cv.notify_all();
    });
    std::unique_lock lk(m);
    REQUIRE(cv.wait_for(lk, 15s, [&] { return got.has_value(); }));
    return *got;
}

std::string fixture() {
    return testing::read_file(testing::source_dir() / "tests/fixtures/messages/dialog-portal-to-oslo.xml");
}

delivery make_delivery(const std::string& doc) {
    delivery d;
    d.id = "b-1";
    d.facts = xml::thread_validator().validate(doc).facts;
    d.document = std::make_shared<const std::string>(doc);
    return d;
}

unsigned short closed_port() {
    boost::asio::io_context io;
    boost::asio::ip::tcp::acceptor a(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
    return a.local_endpoint().port();
}

struct dips_fixture {
    testing::temp_dir dir;
    testing::pki::files pki = testing::pki::generate(dir.path() / "pki", "edibroker-trondheim");
    testing::https_receiver vendor{pki, {.require_client_cert = false}};
    std::map<std::string, std::string> opts() const {
        return {{"url", vendor.url("/api/Messages")}, {"ca-file", pki.ca_cert.string()}, {"timeout-ms", "5000"}};
    }
};

} // namespace

TEST_CASE("dips: posts the EDI 2.0 JSON shape over HTTPS and takes 201 + id as delivered", "[unit][adapters][dips]") {
    dips_fixture fx;
    fx.vendor.respond_with(201, R"({"id":"dips-4711"})");
    auto opts = fx.opts();
    opts["header.Authorization"] = "Bearer test-token";
    auto a = make_dips(opts);
    std::string doc = fixture();
    auto r = deliver_one(*a, make_delivery(doc));
    CHECK(r.o == outcome::delivered);
    CHECK(r.detail == "http 201, DIPS id dips-4711");
    CHECK(r.remote_id == "dips-4711");

    auto reqs = fx.vendor.requests();
    REQUIRE(reqs.size() == 1);
    const auto& q = reqs[0];
    CHECK(q.method == "POST");
    CHECK(q.target == "/api/Messages");
    CHECK(q.headers.at("Content-Type") == "application/json");
    CHECK(q.headers.at("X-EDIBroker-Id") == "b-1");
    CHECK(q.headers.at("X-EDIBroker-MsgId") == "6f1c2f3e-5d4b-4a39-9c1e-0b7a8d2e4f10");
    CHECK(q.headers.at("Authorization") == "Bearer test-token");
    auto v = boost::json::parse(q.body).as_object();
    CHECK(v.at("contentType").as_string() == "application/xml");
    CHECK(v.at("contentTransferEncoding").as_string() == "base64");
    CHECK(testing::base64_decode(std::string(v.at("businessDocument").as_string())) == doc);
    a->stop();
}

TEST_CASE("dips: answers other than 201 + id are classified, never taken as delivered", "[unit][adapters][dips]") {
    dips_fixture fx;
    auto a = make_dips(fx.opts());
    struct expect {
        int status;
        std::string body;
        outcome o;
        std::string detail;
    };
    std::vector<expect> cases = {
        {201, "<html>created</html>", outcome::retriable, "http 201 without an id in the answer"},
        {201, R"({"ok":true})", outcome::retriable, "http 201 without an id in the answer"},
        {200, R"({"id":"x"})", outcome::retriable, "http 200 unexpected (DIPS answers 201 with an id)"},
        {503, "", outcome::retriable, "http 503"},
        {429, "", outcome::retriable, "http 429"},
        {400, R"({"error":"bad"})", outcome::permanent, "http 400"},
        {404, "", outcome::permanent, "http 404"},
    };
    for (auto& c : cases) {
        fx.vendor.respond_with(c.status, c.body);
        auto r = deliver_one(*a, make_delivery(fixture()));
        INFO(c.status << " " << c.body << " -> " << r.detail);
        CHECK(r.o == c.o);
        CHECK(r.detail == c.detail);
        CHECK(r.remote_id.empty());
    }
    fx.vendor.send_garbage(true);
    auto g = deliver_one(*a, make_delivery(fixture()));
    CHECK(g.o == outcome::retriable);
    CHECK(g.detail.find("invalid http response from 127.0.0.1:") == 0);
}

TEST_CASE("dips: a vendor that is down, and one whose certificate we do not trust", "[unit][adapters][dips]") {
    dips_fixture fx;
    auto opts = fx.opts();
    unsigned short port = closed_port();
    opts["url"] = "https://127.0.0.1:" + std::to_string(port) + "/api/Messages";
    auto down = make_dips(opts);
    auto r = deliver_one(*down, make_delivery(fixture()));
    CHECK(r.o == outcome::retriable);
    CHECK(r.detail == "connection refused to 127.0.0.1:" + std::to_string(port));

    // No ca-file: the system store does not know the test CA.
    auto untrusted = make_dips({{"url", fx.vendor.url("/api/Messages")}});
    auto t = deliver_one(*untrusted, make_delivery(fixture()));
    CHECK(t.o == outcome::retriable);
    CHECK(t.detail.find("tls error with 127.0.0.1:") == 0);
    CHECK(fx.vendor.request_count() == 0);
}

TEST_CASE("dips: takes Dialogmelding 1.1 and AppRec; refuses Dialogmelding 1.0 with T10; sends AppRec 1.0 as 1.1",
          "[unit][adapters][dips]") {
    dips_fixture fx;
    fx.vendor.respond_with(201, R"({"id":7})");
    auto a = make_dips(fx.opts());
    std::string doc = fixture();
    auto f11 = xml::thread_validator().validate(doc).facts;
    CHECK(a->can_take(f11, doc).has_value());

    std::string v10 = doc;
    v10.replace(v10.find(ns::dialog_1_1), std::string(ns::dialog_1_1).size(), ns::dialog_1_0);
    auto f10 = xml::thread_validator().validate(v10).facts;
    REQUIRE(f10.content_ns == ns::dialog_1_0);
    auto refused = a->can_take(f10, v10);
    REQUIRE_FALSE(refused.has_value());
    CHECK(refused.error().code == "T10");

    std::string apprec10 = R"(<?xml version="1.0" encoding="UTF-8"?>
<AppRec xmlns="http://www.kith.no/xmlstds/apprec/2004-11-21">
  <MsgType V="APPREC"/><MIGversion>1.0 2004-11-21</MIGversion><GenDate>2026-11-21T10:20:00Z</GenDate>
  <Id>a1</Id>
  <Sender><HCP><Inst><Name>H</Name><Id>8093244</Id><TypeId V="HER" DN="HER-id"/></Inst></HCP></Sender>
  <Receiver><HCP><Inst><Name>T</Name><Id>9100310</Id><TypeId V="HER" DN="HER-id"/></Inst></HCP></Receiver>
  <Status V="1" DN="OK"/>
  <OriginalMsgId><MsgType V="DIALOG_INNBYGGER_EKONTAKT"/><IssueDate>2026-11-21T10:15:00Z</IssueDate>
    <Id>m1</Id></OriginalMsgId>
</AppRec>
)";
    auto d = make_delivery(apprec10);
    REQUIRE(d.facts.root_ns == ns::apprec_1_0);
    CHECK(a->can_take(d.facts, apprec10).has_value());
    auto r = deliver_one(*a, std::move(d));
    CHECK(r.o == outcome::delivered);
    CHECK(r.remote_id == "7");
    auto reqs = fx.vendor.requests();
    REQUIRE(reqs.size() == 1);
    std::string sent = testing::base64_decode(
        std::string(boost::json::parse(reqs[0].body).as_object().at("businessDocument").as_string()));
    auto sf = xml::thread_validator().validate(sent).facts;
    CHECK(sf.root_ns == ns::apprec_1_1);
    CHECK(sf.msg_id == "a1");
}

TEST_CASE("dips: options are checked, naming the option", "[unit][adapters][dips]") {
    const adapter_factory* f = registry().find("dips");
    REQUIRE(f);
    auto msg = [&](std::map<std::string, std::string> o) {
        auto r = f->check(dips_config(std::move(o)));
        return r ? std::string() : r.error().message;
    };
    CHECK(msg({}).find("option 'url' is required") == 0);
    CHECK(msg({{"url", "http://dips.example/api"}}).find("option 'url' must be an https:// URL") == 0);
    CHECK(msg({{"url", "https://dips.example/api"}, {"timeout", "5"}}) ==
          "unknown option 'timeout' for adapter type dips");
    CHECK(msg({{"url", "https://dips.example/api"}, {"ca-file", "/no/such/ca.pem"}}).find("option 'ca-file'") == 0);
    CHECK(msg({{"url", "https://dips.example/api"}, {"header.Content-Type", "x"}}).find("option 'header.Content-Type'") ==
          0);
    CHECK(msg({{"url", "https://dips.example/api"}, {"timeout-ms", "3000"}}).empty());
    auto caps = f->caps(dips_config({}));
    CHECK(caps.msg_types == std::vector<std::string>{"DIALOG_*", "APPREC"});
}
