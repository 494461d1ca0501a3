// tieto adapter against a real HTTPS server that checks client certificates (testing::https_receiver
// with a CA, server and client certificate made at test time): raw XML, 200/202, mutual TLS and a
// foreign client certificate, garbage and a vendor that is down. No sleeps.
#include "broker/adapter.hpp"
#include "broker/xml.hpp"

#include "https_receiver.hpp"
#include "pki.hpp"
#include "test_paths.hpp"

#include <catch2/catch.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

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

adapter_config tieto_config(std::map<std::string, std::string> opts) {
    adapter_config c;
    c.name = "tieto-test";
    c.type = "tieto";
    c.options = std::move(opts);
    return c;
}

adapter_ptr make_tieto(std::map<std::string, std::string> opts) {
    const adapter_factory* f = registry().find("tieto");
    REQUIRE(f);
    auto a = f->create(tieto_config(std::move(opts)));
    INFO((a ? std::string() : a.error().message));
    REQUIRE(a.has_value());
    REQUIRE((*a)->start().has_value());
    return std::move(*a);
}

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
    d.id = "b-2";
    d.facts = xml::thread_validator().validate(doc).facts;
    d.document = std::make_shared<const std::string>(doc);
    return d;
}

struct tieto_fixture {
    testing::temp_dir dir;
    testing::pki::files pki = testing::pki::generate(dir.path() / "pki", "edibroker-bergen");
    testing::https_receiver vendor{pki};  // requires a client certificate signed by the test CA
    std::map<std::string, std::string> opts() const {
        return {{"url", vendor.url("/gerica/inbound")},
                {"ca-file", pki.ca_cert.string()},
                {"client-cert", pki.client_cert.string()},
                {"client-key", pki.client_key.string()},
                {"timeout-ms", "5000"}};
    }
};

} // namespace

TEST_CASE("tieto: raw MsgHead XML over mutual TLS; 200 and 202 are delivered", "[unit][adapters][tieto]") {
    tieto_fixture fx;
    auto a = make_tieto(fx.opts());
    std::string doc = fixture();
    for (int status : {202, 200}) {
        fx.vendor.respond_with(status);
        auto r = deliver_one(*a, make_delivery(doc));
        CHECK(r.o == outcome::delivered);
        CHECK(r.detail == "http " + std::to_string(status));
    }
    auto reqs = fx.vendor.requests();
    REQUIRE(reqs.size() == 2);
    CHECK(reqs[0].method == "POST");
    CHECK(reqs[0].target == "/gerica/inbound");
    CHECK(reqs[0].headers.at("Content-Type") == "application/xml");
    CHECK(reqs[0].body == doc);  // exactly as stored, no SOAP envelope
    CHECK(reqs[0].client_cn == "edibroker-bergen");
    CHECK(reqs[0].headers.at("X-EDIBroker-MsgId") == "6f1c2f3e-5d4b-4a39-9c1e-0b7a8d2e4f10");
    CHECK(fx.vendor.connections() == 1);  // kept alive
}

TEST_CASE("tieto: a client certificate from another CA is refused by the vendor: retriable tls error",
          "[unit][adapters][tieto]") {
    tieto_fixture fx;
    testing::temp_dir other;
    auto foreign = testing::pki::generate(other.path(), "someone-else");
    auto opts = fx.opts();
    opts["client-cert"] = foreign.client_cert.string();
    opts["client-key"] = foreign.client_key.string();
    auto a = make_tieto(opts);
    auto r = deliver_one(*a, make_delivery(fixture()));
    CHECK(r.o == outcome::retriable);
    INFO(r.detail);
    CHECK((r.detail.find("tls error with 127.0.0.1:") == 0 || r.detail.find("receive from") == 0 ||
           r.detail.find("connection reset") == 0 || r.detail.find("transfer to") == 0));
    CHECK(fx.vendor.wait_for_handshake_failures(1, 5s));
    CHECK(fx.vendor.request_count() == 0);
}

TEST_CASE("tieto: garbage, errors and a vendor that is down", "[unit][adapters][tieto]") {
    tieto_fixture fx;
    auto a = make_tieto(fx.opts());
    fx.vendor.respond_with(201);
    CHECK(deliver_one(*a, make_delivery(fixture())).detail == "http 201 unexpected (Tieto answers 200 or 202)");
    fx.vendor.respond_with(500, "<soap:Fault/>");
    auto e = deliver_one(*a, make_delivery(fixture()));
    CHECK(e.o == outcome::retriable);
    CHECK(e.detail == "http 500");
    fx.vendor.respond_with(422);
    CHECK(deliver_one(*a, make_delivery(fixture())).o == outcome::permanent);
    fx.vendor.send_garbage(true);
    auto g = deliver_one(*a, make_delivery(fixture()));
    CHECK(g.o == outcome::retriable);
    CHECK(g.detail.find("invalid http response from 127.0.0.1:") == 0);

    unsigned short port;
    {
        boost::asio::io_context io;
        boost::asio::ip::tcp::acceptor acc(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
        port = acc.local_endpoint().port();
    }
    auto opts = fx.opts();
    opts["url"] = "https://127.0.0.1:" + std::to_string(port) + "/gerica/inbound";
    auto down = make_tieto(opts);
    auto d = deliver_one(*down, make_delivery(fixture()));
    CHECK(d.o == outcome::retriable);
    CHECK(d.detail == "connection refused to 127.0.0.1:" + std::to_string(port));
}

TEST_CASE("tieto: options: https and a client certificate are required", "[unit][adapters][tieto]") {
    tieto_fixture fx;
    const adapter_factory* f = registry().find("tieto");
    REQUIRE(f);
    auto msg = [&](std::map<std::string, std::string> o) {
        auto r = f->check(tieto_config(std::move(o)));
        return r ? std::string() : r.error().message;
    };
    CHECK(msg({{"url", "https://gerica.example/in"}}).find("option 'client-cert' is required") == 0);
    CHECK(msg({{"url", "https://gerica.example/in"}, {"client-cert", fx.pki.client_cert.string()}})
              .find("option 'client-key' is required") == 0);
    CHECK(msg({{"url", "http://gerica.example/in"}}).find("option 'url' must be an https:// URL") == 0);
    CHECK(msg(fx.opts()).empty());
    // Relative certificate paths are relative to the broker's data-dir.
    auto rel = tieto_config({{"url", "https://gerica.example/in"}, {"client-cert", "pki/client.pem"},
                             {"client-key", "pki/client.key"}});
    rel.data_dir = fx.dir.path().string();
    CHECK(f->check(rel).has_value());
}
