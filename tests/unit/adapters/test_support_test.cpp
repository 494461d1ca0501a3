// The shared test support (tests/support/http_receiver, http_client): everyone's integration tests
// depend on it, so it is checked here.
#include "http_client.hpp"
#include "http_receiver.hpp"

#include <catch2/catch.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <thread>

using namespace std::chrono_literals;

TEST_CASE("test support: http_receiver records requests and answers as told", "[unit][support]") {
    testing::http_receiver rx;
    CHECK(rx.port() != 0);
    CHECK(rx.url("/a/b") == "http://127.0.0.1:" + std::to_string(rx.port()) + "/a/b");
    CHECK(rx.url("x") == "http://127.0.0.1:" + std::to_string(rx.port()) + "/x");

    auto r = testing::http_request("GET", rx.url("/hello?x=1"), "", {"X-Test: one", "Accept: text/plain"});
    CHECK(r.error == "");
    CHECK(r.status == 200);
    CHECK(r.body == "");
    CHECK(r.headers["server"] == "edibroker-test-receiver");

    rx.respond_with(201, R"({"id":"abc"})");
    r = testing::http_request("POST", rx.url("/in"), "<x/>", {"Content-Type: application/xml"});
    CHECK(r.status == 201);
    CHECK(r.body == R"({"id":"abc"})");
    CHECK(r.headers["Content-Type"] == "application/json");

    r = testing::http_request("PUT", rx.url("/put"), "data");
    CHECK(r.status == 201);
    r = testing::http_request("DELETE", rx.url("/del"));
    CHECK(r.status == 201);

    REQUIRE(rx.wait_for_requests(4, 1s));
    auto reqs = rx.requests();
    REQUIRE(reqs.size() == 4);
    CHECK(reqs[0].method == "GET");
    CHECK(reqs[0].target == "/hello?x=1");
    CHECK(reqs[0].headers["x-test"] == "one");
    CHECK(reqs[0].headers.count("Expect") == 0);
    CHECK(reqs[1].method == "POST");
    CHECK(reqs[1].body == "<x/>");
    CHECK(reqs[1].headers["CONTENT-TYPE"] == "application/xml");
    CHECK(reqs[2].method == "PUT");
    CHECK(reqs[2].body == "data");
    CHECK(reqs[3].method == "DELETE");
    CHECK(reqs[3].body == "");

    rx.clear();
    CHECK(rx.request_count() == 0);
    CHECK_FALSE(rx.wait_for_requests(1, 1ms));
}

TEST_CASE("test support: handlers see the request and may set headers", "[unit][support]") {
    testing::http_receiver rx;
    rx.set_handler([](const testing::recorded_request& q) { return std::pair{q.body == "ok" ? 202 : 418, q.target}; });
    auto r = testing::http_request("POST", rx.url("/t1"), "ok");
    CHECK(r.status == 202);
    CHECK(r.body == "/t1");
    CHECK(r.headers["content-type"] == "text/plain");
    r = testing::http_request("POST", rx.url("/t2"), "no");
    CHECK(r.status == 418);

    rx.set_reply_handler([](const testing::recorded_request&) {
        testing::reply rep;
        rep.status = 503;
        rep.body = "busy";
        rep.headers["Retry-After"] = "7";
        rep.headers["Content-Type"] = "text/x-busy";
        return rep;
    });
    r = testing::http_request("GET", rx.url());
    CHECK(r.status == 503);
    CHECK(r.headers["retry-after"] == "7");
    CHECK(r.headers["content-type"] == "text/x-busy");
}

TEST_CASE("test support: a blocked handler stalls only its own connection", "[unit][support]") {
    testing::http_receiver rx;
    testing::gate g;
    rx.set_handler([&](const testing::recorded_request& q) {
        if (q.target == "/slow")
            g.wait();
        return std::pair{200, q.target};
    });
    testing::http_response slow;
    std::thread t([&] { slow = testing::http_request("GET", rx.url("/slow")); });
    REQUIRE(rx.wait_for_requests(1, 2s));
    auto fast = testing::http_request("GET", rx.url("/fast"));
    CHECK(fast.status == 200);
    CHECK_FALSE(g.is_open());
    g.open();
    t.join();
    CHECK(slow.status == 200);
    CHECK(slow.body == "/slow");
    CHECK(rx.connections() == 2);
}

TEST_CASE("test support: garbage mode and transport errors", "[unit][support]") {
    testing::http_receiver rx;
    rx.send_garbage(true);
    auto r = testing::http_request("GET", rx.url());
    CHECK(r.status == 0);
    CHECK(r.error != "");
    rx.send_garbage(false);
    CHECK(testing::http_request("GET", rx.url()).status == 200);

    unsigned short port = 0;
    {
        boost::asio::io_context ioc;
        boost::asio::ip::tcp::acceptor acc(ioc, {boost::asio::ip::make_address("127.0.0.1"), 0});
        port = acc.local_endpoint().port();
    }
    r = testing::http_request("GET", "http://127.0.0.1:" + std::to_string(port) + "/");
    CHECK(r.status == 0);
    CHECK(r.error != "");
}

TEST_CASE("test support: the receiver stops cleanly with idle kept-alive connections", "[unit][support]") {
    auto rx = std::make_unique<testing::http_receiver>();
    // curl closes its connection after each http_request; a raw socket stays open and idle.
    boost::asio::io_context ioc;
    boost::asio::ip::tcp::socket s(ioc);
    s.connect({boost::asio::ip::make_address("127.0.0.1"), rx->port()});
    CHECK(testing::http_request("GET", rx->url()).status == 200);
    rx.reset();  // must not hang on the idle connection
    SUCCEED();
}

TEST_CASE("test support: base64", "[unit][support]") {
    CHECK(testing::base64_encode("") == "");
    CHECK(testing::base64_encode("f") == "Zg==");
    CHECK(testing::base64_encode("fo") == "Zm8=");
    CHECK(testing::base64_encode("foo") == "Zm9v");
    CHECK(testing::base64_encode("foobar") == "Zm9vYmFy");
    CHECK(testing::base64_encode(std::string("\0\xff\xfe", 3)) == "AP/+");
    std::string all;
    for (int i = 0; i < 256; ++i)
        all += static_cast<char>(i);
    CHECK(testing::base64_decode(testing::base64_encode(all)) == all);
    CHECK(testing::base64_decode("Zm9v\nYmFy") == "foobar");
    CHECK_THROWS_AS(testing::base64_decode("Zm9v!"), std::invalid_argument);
    CHECK_THROWS_AS(testing::base64_decode("Z"), std::invalid_argument);
}

TEST_CASE("test support: gate", "[unit][support]") {
    testing::gate g;
    CHECK_FALSE(g.is_open());
    CHECK_FALSE(g.wait_for(1ms));
    std::thread t([&] { g.open(); });
    g.wait();
    t.join();
    CHECK(g.is_open());
    CHECK(g.wait_for(0ms));
}
