// Commit pacing (store::options::commit_interval_us): one client writing one operation at a time
// never waits; after a transaction that had company the next one waits out the interval unless
// a full batch is waiting or the store closes. The interval is a second here (the largest
// allowed), so "waits" (checked for 200 ms) and "does not wait" cannot be confused with a slow
// machine.
#include "store_test_util.hpp"

#include <chrono>
#include <future>
#include <memory>

using namespace store_test;
using namespace std::chrono_literals;

namespace {

/// Submits an insert of make_msg(id); the future is ready when its done has run.
std::future<bool> submit_insert(st::store& s, const std::string& id) {
    auto done = std::make_shared<std::promise<bool>>();
    auto f = done->get_future();
    auto r = s.submit(
        [m = make_msg(id)](st::write_txn& t) -> broker::result<void> {
            auto o = t.insert_message(m);
            if (!o)
                return o.error();
            return {};
        },
        [done](broker::result<void> r) { done->set_value(static_cast<bool>(r)); });
    REQUIRE(r);
    return f;
}

bool ready_within(std::future<bool>& f, std::chrono::milliseconds d) {
    return f.wait_for(d) == std::future_status::ready;
}

} // namespace

TEST_CASE("commit pacing: one operation at a time never waits", "[unit][store]") {
    testing::temp_dir d;
    auto o = options_in(d);
    o.commit_interval_us = 1'000'000;  // 1 s
    auto s = open_ok(o);
    for (int i = 0; i < 20; ++i) {
        auto f = submit_insert(*s, "lone-" + std::to_string(i));
        // Paced, each would wait the rest of a second after the one before.
        REQUIRE(ready_within(f, 900ms));
        CHECK(f.get());
    }
}

TEST_CASE("commit pacing: after company the next transaction waits for the interval, a full batch "
          "or close",
          "[unit][store]") {
    testing::temp_dir d;
    auto o = options_in(d);
    o.commit_interval_us = 1'000'000;  // 1 s
    o.max_batch = 4;
    auto s = open_ok(o);

    // A transaction of two: hold the writer inside a first operation while two more queue.
    std::promise<void> release;
    std::shared_future<void> released = release.get_future().share();
    auto entered = std::make_shared<std::promise<void>>();
    auto first_done = std::make_shared<std::promise<bool>>();
    auto first = first_done->get_future();
    REQUIRE(s->submit(
        [released, entered, m = make_msg("hold")](st::write_txn& t) mutable -> broker::result<void> {
            if (entered) {
                entered->set_value();
                entered.reset();
            }
            released.wait_for(30s);
            auto r = t.insert_message(m);
            if (!r)
                return r.error();
            return {};
        },
        [first_done](broker::result<void> r) { first_done->set_value(static_cast<bool>(r)); }));
    REQUIRE(entered->get_future().wait_for(30s) == std::future_status::ready);
    auto b = submit_insert(*s, "pair-b");
    auto c = submit_insert(*s, "pair-c");
    release.set_value();
    REQUIRE(ready_within(first, 30s));
    REQUIRE(ready_within(b, 30s));  // the writer had been idle for the first: no pacing yet
    REQUIRE(ready_within(c, 30s));

    SECTION("a lone operation waits; a full batch starts at once") {
        auto w1 = submit_insert(*s, "paced-1");
        CHECK_FALSE(ready_within(w1, 200ms));
        auto w2 = submit_insert(*s, "paced-2");
        auto w3 = submit_insert(*s, "paced-3");
        auto w4 = submit_insert(*s, "paced-4");  // max_batch waiting: the writer goes
        REQUIRE(ready_within(w1, 30s));
        REQUIRE(ready_within(w4, 30s));
        CHECK(w1.get());
        CHECK(w4.get());
        CHECK(w2.get());
        CHECK(w3.get());
    }
    SECTION("a lone operation waits at most the interval") {
        auto w = submit_insert(*s, "paced");
        CHECK_FALSE(ready_within(w, 200ms));
        REQUIRE(ready_within(w, 30s));
        CHECK(w.get());
    }
    SECTION("close does not wait out the interval, and the waiting operation is committed") {
        auto w = submit_insert(*s, "paced");
        CHECK_FALSE(ready_within(w, 200ms));
        s->close();
        REQUIRE(ready_within(w, 1ms));
        CHECK(w.get());
        s.reset();
        auto again = open_ok(o);
        CHECK(get_row(*again, "paced").id == "paced");
    }
}
