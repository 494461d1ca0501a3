// http-push against a real HTTP server (testing::http_receiver): outcomes, headers, timeouts,
// concurrency, back-pressure and shutdown. No sleeps: every wait is on a condition.
#include "broker/adapter.hpp"

#include "http_receiver.hpp"

#include <catch2/catch.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

using namespace broker;
using namespace std::chrono_literals;
using outcome = delivery_result::outcome;

namespace {

/// Collects results of deliveries by key, counting how often each completed.
class results {
public:
    delivery_handler handler(std::string key) {
        return [this, key](delivery_result r) {
            // Notify under the lock: the waiter may destroy *this as soon as it sees the result.
            std::lock_guard lk(m_);
            ++calls_[key];
            got_[key] = std::move(r);
            threads_.insert(std::this_thread::get_id());
            cv_.notify_all();
        };
    }
    bool wait_for(std::size_t n, std::chrono::milliseconds t = 5s) {
        std::unique_lock lk(m_);
        return cv_.wait_for(lk, t, [&] { return got_.size() >= n; });
    }
    delivery_result get(const std::string& key) {
        std::lock_guard lk(m_);
        return got_.at(key);
    }
    std::map<std::string, int> calls() {
        std::lock_guard lk(m_);
        return calls_;
    }
    std::size_t size() {
        std::lock_guard lk(m_);
        return got_.size();
    }
    std::set<std::thread::id> threads() {
        std::lock_guard lk(m_);
        return threads_;
    }

private:
    std::mutex m_;
    std::condition_variable cv_;
    std::map<std::string, delivery_result> got_;
    std::map<std::string, int> calls_;
    std::set<std::thread::id> threads_;
};

const char* name_of(outcome o) {
    switch (o) {
    case outcome::delivered: return "delivered";
    case outcome::waiting: return "waiting";
    case outcome::retriable: return "retriable";
    case outcome::permanent: return "permanent";
    }
    return "?";
}

adapter_registry& registry() {
    static adapter_registry r = [] {
        adapter_registry x;
        register_builtin_adapters(x);
        return x;
    }();
    return r;
}

adapter_ptr make(std::map<std::string, std::string> opts) {
    const adapter_factory* f = registry().find("http-push");
    REQUIRE(f);
    adapter_config cfg;
    cfg.name = "vendor-test";
    cfg.type = "http-push";
    cfg.options = std::move(opts);
    auto a = f->create(cfg);
    INFO((a ? std::string() : a.error().message));
    REQUIRE(a.has_value());
    auto started = (*a)->start();
    REQUIRE(started.has_value());
    return std::move(*a);
}

delivery make_delivery(const std::string& id, const std::string& msg_id = "", std::string body = "<MsgHead/>") {
    delivery d;
    d.id = id;
    d.facts.msg_id = msg_id.empty() ? "msg-" + id : msg_id;
    d.document = std::make_shared<const std::string>(std::move(body));
    return d;
}

/// Deliver one and wait for its result.
delivery_result deliver_one(adapter& a, delivery d) {
    results rs;
    a.deliver(std::move(d), rs.handler("one"));
    REQUIRE(rs.wait_for(1, 10s));
    return rs.get("one");
}

/// A port on 127.0.0.1 with nothing listening (bound, then closed).
unsigned short closed_port() {
    boost::asio::io_context ioc;
    boost::asio::ip::tcp::acceptor acc(ioc, {boost::asio::ip::make_address("127.0.0.1"), 0});
    auto p = acc.local_endpoint().port();
    acc.close();
    return p;
}

} // namespace

TEST_CASE("http-push: 201 with a JSON id is delivered with remote_id; headers and body arrive", "[unit][adapters]") {
    testing::http_receiver rx;
    rx.respond_with(201, R"({"id": "vendor-42", "status": "created"})");
    auto a = make({{"url", rx.url("/inbox")}, {"header.Authorization", "Bearer t0ken"}});
    CHECK(a->type() == "http-push");
    CHECK(a->name() == "vendor-test");

    delivery d = make_delivery("b-1", "m-1", std::string(4096, 'x'));  // > 1 KB: no Expect
    d.content_type = "application/xml; charset=utf-8";
    auto r = deliver_one(*a, d);
    CHECK(name_of(r.o) == std::string("delivered"));
    CHECK(r.remote_id == "vendor-42");
    CHECK(r.detail == "http 201");

    auto reqs = rx.requests();
    REQUIRE(reqs.size() == 1);
    CHECK(reqs[0].method == "POST");
    CHECK(reqs[0].target == "/inbox");
    CHECK(reqs[0].body == std::string(4096, 'x'));
    CHECK(reqs[0].headers["content-type"] == "application/xml; charset=utf-8");
    CHECK(reqs[0].headers["X-EDIBroker-Id"] == "b-1");
    CHECK(reqs[0].headers["x-edibroker-msgid"] == "m-1");
    CHECK(reqs[0].headers["Authorization"] == "Bearer t0ken");
    CHECK(reqs[0].headers.count("Expect") == 0);
    a->stop();
}

TEST_CASE("http-push: status codes map to outcomes", "[unit][adapters]") {
    auto [status, expected, body] = GENERATE(table<int, outcome, std::string>({
        {200, outcome::delivered, ""},
        {202, outcome::delivered, "accepted"},
        {204, outcome::delivered, ""},
        {400, outcome::permanent, "bad xml <patient data>"},
        {404, outcome::permanent, ""},
        {408, outcome::retriable, ""},
        {409, outcome::permanent, ""},
        {422, outcome::permanent, ""},
        {425, outcome::retriable, ""},
        {429, outcome::retriable, ""},
        {500, outcome::retriable, "stack trace with patient data"},
        {503, outcome::retriable, ""},
        {301, outcome::permanent, ""},
    }));
    testing::http_receiver rx;
    rx.respond_with(status, body);
    auto a = make({{"url", rx.url()}});
    auto r = deliver_one(*a, make_delivery("s"));
    INFO("status " << status << " -> " << name_of(r.o) << " (" << r.detail << ")");
    CHECK(r.o == expected);
    CHECK(r.detail.rfind("http " + std::to_string(status), 0) == 0);
    CHECK(r.detail.find("patient") == std::string::npos);  // never the body
    CHECK(r.remote_id.empty());
}

TEST_CASE("http-push: a numeric JSON id is kept; a non-JSON body gives no remote_id", "[unit][adapters]") {
    testing::http_receiver rx;
    auto a = make({{"url", rx.url()}});
    rx.respond_with(200, R"({"id": 12345})");
    CHECK(deliver_one(*a, make_delivery("n1")).remote_id == "12345");
    rx.respond_with(200, R"({"id": )");
    auto r = deliver_one(*a, make_delivery("n2"));
    CHECK(r.o == outcome::delivered);
    CHECK(r.remote_id.empty());
    rx.respond_with(200, "id=5");
    CHECK(deliver_one(*a, make_delivery("n3")).remote_id.empty());
}

TEST_CASE("http-push: connection refused is retriable and names the endpoint", "[unit][adapters]") {
    auto port = closed_port();
    auto a = make({{"url", "http://127.0.0.1:" + std::to_string(port) + "/x"}});
    auto r = deliver_one(*a, make_delivery("c"));
    CHECK(r.o == outcome::retriable);
    CHECK(r.detail == "connection refused to 127.0.0.1:" + std::to_string(port));
}

TEST_CASE("http-push: a vendor slower than timeout-ms is retriable", "[unit][adapters]") {
    testing::http_receiver rx;
    testing::gate slow;  // declared after rx: destroyed (opened) first
    auto a = make({{"url", rx.url()}, {"timeout-ms", "200"}});

    // First a quick one, so the slow request runs on a kept-alive connection.
    auto quick = deliver_one(*a, make_delivery("fast"));
    REQUIRE(quick.o == outcome::delivered);

    rx.set_handler([&](const testing::recorded_request&) {
        slow.wait();
        return std::pair{200, std::string()};
    });
    auto r = deliver_one(*a, make_delivery("slow"));
    slow.open();
    CHECK(r.o == outcome::retriable);
    CHECK(r.detail == "timeout after 200 ms");
    CHECK(rx.request_count() == 2);
    CHECK(rx.connections() == 1);  // the slow request reused the first one's connection
}

TEST_CASE("http-push: a garbage answer is retriable with a clear detail", "[unit][adapters]") {
    testing::http_receiver rx;
    rx.send_garbage(true);
    auto a = make({{"url", rx.url()}});
    auto r = deliver_one(*a, make_delivery("g"));
    CHECK(r.o == outcome::retriable);
    CHECK(r.detail == "invalid http response from 127.0.0.1:" + std::to_string(rx.port()));

    // The adapter recovers once the vendor does.
    rx.send_garbage(false);
    CHECK(deliver_one(*a, make_delivery("g2")).o == outcome::delivered);
}

// The adapter keeps a connection's socket in its epoll set between transfers and relies on seeing
// every close (http_push.cpp): a closed connection's descriptor number comes back at once for the
// next connection, which must then be watched like a new one, and a kept connection the vendor
// drops must neither be used as if alive nor keep waking the adapter thread.
TEST_CASE("http-push: connections the vendor closes after each answer are replaced, one delivery after another",
          "[unit][adapters]") {
    using after = testing::http_receiver::after_answer;
    auto [mode, label] = GENERATE(table<after, std::string>({
        {after::close, "Connection: close"},
        {after::drop, "dropped without a word"},
    }));
    INFO(label);
    testing::http_receiver rx;
    rx.set_after_answer(mode);
    auto a = make({{"url", rx.url("/in")}, {"timeout-ms", "5000"}});
    constexpr int n = 30;
    for (int i = 0; i < n; ++i) {
        auto r = deliver_one(*a, make_delivery("s-" + std::to_string(i)));
        INFO("delivery " << i << ": " << r.detail);
        REQUIRE(name_of(r.o) == std::string("delivered"));
    }
    // Each request once, each on a connection of its own.
    auto reqs = rx.requests();
    REQUIRE(reqs.size() == n);
    for (int i = 0; i < n; ++i)
        CHECK(reqs[static_cast<std::size_t>(i)].headers.at("X-EDIBroker-Id") == "s-" + std::to_string(i));
    CHECK(rx.connections() == n);

    // Back to kept connections: the next ones are reused again.
    rx.set_after_answer(after::keep);
    for (int i = 0; i < 5; ++i)
        REQUIRE(deliver_one(*a, make_delivery("k-" + std::to_string(i))).o == outcome::delivered);
    CHECK(rx.connections() == n + 1);
    a->stop();
}

TEST_CASE("http-push: 200 concurrent deliveries complete exactly once, over kept-alive connections",
          "[unit][adapters]") {
    testing::http_receiver rx;
    rx.set_handler([](const testing::recorded_request& r) {
        return std::pair{201, R"({"id": "v-)" + r.headers.at("X-EDIBroker-Id") + "\"}"};
    });
    auto a = make({{"url", rx.url("/in")}});
    results rs;
    constexpr int n = 200;
    // From several threads at once: deliver() is safe from any thread.
    std::vector<std::thread> producers;
    for (int t = 0; t < 4; ++t)
        producers.emplace_back([&, t] {
            for (int i = t; i < n; i += 4) {
                std::string id = "c-" + std::to_string(i);
                a->deliver(make_delivery(id, "m-" + std::to_string(i), "<doc n=\"" + std::to_string(i) + "\"/>"),
                           rs.handler(id));
            }
        });
    for (auto& t : producers)
        t.join();
    REQUIRE(rs.wait_for(n, 10s));

    auto calls = rs.calls();
    REQUIRE(calls.size() == n);
    for (auto& [id, count] : calls) {
        INFO(id);
        CHECK(count == 1);
        auto r = rs.get(id);
        CHECK(r.o == outcome::delivered);
        CHECK(r.remote_id == "v-" + id);
    }
    // Callbacks run on the adapter thread only, never on the producers.
    CHECK(rs.threads().size() == 1);

    auto reqs = rx.requests();
    REQUIRE(reqs.size() == n);
    std::set<std::string> seen;
    for (auto& q : reqs) {
        std::string id = q.headers.at("X-EDIBroker-Id");
        auto i = id.substr(2);
        CHECK(q.headers.at("X-EDIBroker-MsgId") == "m-" + i);
        CHECK(q.body == "<doc n=\"" + i + "\"/>");
        CHECK(q.target == "/in");
        seen.insert(id);
    }
    CHECK(seen.size() == n);
    // At most max-in-flight (16) connections, reused for all 200 requests.
    CHECK(rx.connections() <= 16);
    a->stop();
}

TEST_CASE("http-push: stop() completes queued and in-flight deliveries with 'shutting down'", "[unit][adapters]") {
    testing::http_receiver rx;
    testing::gate hold;
    rx.set_handler([&](const testing::recorded_request&) {
        hold.wait();
        return std::pair{200, std::string()};
    });
    auto a = make({{"url", rx.url()}, {"max-in-flight", "2"}});
    results rs;
    for (int i = 0; i < 5; ++i)
        a->deliver(make_delivery("s-" + std::to_string(i)), rs.handler("s-" + std::to_string(i)));
    REQUIRE(rx.wait_for_requests(2, 5s));  // two in flight, three queued
    CHECK(rs.size() == 0);
    a->stop();
    // stop() returns after every delivery completed.
    CHECK(rs.size() == 5);
    for (auto& [id, count] : rs.calls()) {
        INFO(id);
        CHECK(count == 1);
        CHECK(rs.get(id).o == outcome::retriable);
        CHECK(rs.get(id).detail == "shutting down");
    }
    // After stop, deliveries are refused at once.
    results late;
    a->deliver(make_delivery("late"), late.handler("late"));
    REQUIRE(late.size() == 1);
    CHECK(late.get("late").detail == "shutting down");
    a->stop();  // idempotent
    hold.open();
}

TEST_CASE("http-push: a full queue refuses at once with retriable 'queue full'", "[unit][adapters]") {
    testing::http_receiver rx;
    testing::gate hold;
    rx.set_handler([&](const testing::recorded_request&) {
        hold.wait();
        return std::pair{200, std::string()};
    });
    auto a = make({{"url", rx.url()}, {"max-in-flight", "1"}, {"queue-limit", "2"}});
    results rs;
    a->deliver(make_delivery("q0"), rs.handler("q0"));
    REQUIRE(rx.wait_for_requests(1, 5s));  // q0 is in flight, the queue is empty
    a->deliver(make_delivery("q1"), rs.handler("q1"));
    a->deliver(make_delivery("q2"), rs.handler("q2"));
    a->deliver(make_delivery("q3"), rs.handler("q3"));  // the queue holds q1, q2: refused
    REQUIRE(rs.size() == 1);
    CHECK(rs.get("q3").o == outcome::retriable);
    CHECK(rs.get("q3").detail == "queue full");
    hold.open();
    REQUIRE(rs.wait_for(4));
    CHECK(rs.get("q0").o == outcome::delivered);
    CHECK(rs.get("q1").o == outcome::delivered);
    CHECK(rs.get("q2").o == outcome::delivered);
}

TEST_CASE("http-push: a callback may deliver again", "[unit][adapters]") {
    testing::http_receiver rx;
    auto a = make({{"url", rx.url()}});
    results rs;
    a->deliver(make_delivery("first"), [&](delivery_result r) {
        rs.handler("first")(r);
        a->deliver(make_delivery("second"), rs.handler("second"));
    });
    REQUIRE(rs.wait_for(2));
    CHECK(rs.get("second").o == outcome::delivered);
}

TEST_CASE("http-push: deliver before start is refused", "[unit][adapters]") {
    const adapter_factory* f = registry().find("http-push");
    REQUIRE(f);
    adapter_config cfg{"x", "http-push", {{"url", "http://127.0.0.1:1/"}}, {}, {}};
    auto a = f->create(cfg);
    REQUIRE(a.has_value());
    results rs;
    (*a)->deliver(make_delivery("early"), rs.handler("early"));
    REQUIRE(rs.size() == 1);
    CHECK(rs.get("early").o == outcome::retriable);
}
