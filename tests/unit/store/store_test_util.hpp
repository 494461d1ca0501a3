// Helpers for the store tests: real SQLite files in a temp folder, message builders, and a gate
// that holds the writer thread inside an operation until the test releases it (no sleeps).
#pragma once

#include "test_paths.hpp"

#include "broker/log.hpp"
#include "broker/store.hpp"
// The concrete store, for the fault hook (tests reach into the private header).
#include "../../../broker/src/store/sqlite_store.hpp"

#include "raw_sql.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <future>
#include <mutex>
#include <memory>
#include <string>
#include <thread>
#include <vector>

/// Print results as "ok" or the error (Boost's own operator<< needs operator<< for T and error).
template <class T>
struct Catch::StringMaker<broker::result<T>> {
    static std::string convert(const broker::result<T>& r) { return r ? "ok" : "error " + r.error().where(); }
};

namespace store_test {

namespace st = broker::store;

inline st::options options_in(const testing::temp_dir& d, const std::string& rel = "data/broker.db") {
    st::options o;
    o.path = (d.path() / rel).string();
    return o;
}

inline std::unique_ptr<st::store> open_ok(const st::options& o) {
    broker::log::set_level(broker::log::level::warn);
    auto s = st::open(o);
    if (!s)
        FAIL("open failed: " << s.error().where());
    return std::move(*s);
}

inline st::detail::sqlite_store& concrete(st::store& s) { return dynamic_cast<st::detail::sqlite_store&>(s); }

/// A routed Dialogmelding from 'sender' to 'receiver' with MsgId 'msg_id'.
inline st::new_message make_msg(std::string id, std::string sender = "8093240", std::string msg_id = "",
                                std::string receiver = "8142519") {
    st::new_message m;
    m.id = std::move(id);
    m.facts.msg_id = msg_id.empty() ? "msg-" + m.id : std::move(msg_id);
    m.facts.msg_type = "DIALOG_INNBYGGER_EKONTAKT";
    m.facts.root_ns = broker::ns::msghead;
    m.facts.content_ns = broker::ns::dialog_1_1;
    m.facts.sender.lvl1_her = "79768";
    m.facts.sender.lvl2_her = std::move(sender);
    m.facts.receiver.lvl1_her = "112374";
    m.facts.receiver.lvl2_her = std::move(receiver);
    m.facts.gen_date = "2026-11-21T10:00:00";
    m.raw = "<MsgHead>" + m.id + "</MsgHead>";
    m.content_type = "application/xml";
    m.source = "http";
    m.state = st::state::routed;
    m.initial_states = {st::state::received, st::state::validated, st::state::routed};
    m.rule = "demo-rule";
    m.adapter = "demo-adapter";
    m.http_status = 202;
    m.response_json = R"({"id":")" + m.id + R"("})";
    return m;
}

/// Insert synchronously; returns the outcome (FAILs on error).
inline st::insert_outcome insert(st::store& s, const st::new_message& m) {
    st::insert_outcome out;
    auto r = st::write_sync(s, [&](st::write_txn& t) -> broker::result<void> {
        auto o = t.insert_message(m);
        if (!o)
            return o.error();
        out = *o;
        return {};
    });
    if (!r)
        FAIL("insert failed: " << r.error().where());
    return out;
}

/// What insert_concurrently saw: how often each operation's done ran, and how many reported an error.
struct concurrent_inserts {
    std::vector<int> dones;
    int errors = 0;
};

/// Submit make(k) for k = 0 .. threads*per_thread-1 as insert operations from 'threads' threads
/// at once (each thread its own share), and wait until every done has run.
inline concurrent_inserts insert_concurrently(st::store& s, int threads, int per_thread,
                                              const std::function<st::new_message(int)>& make) {
    const int total = threads * per_thread;
    std::vector<std::atomic<int>> dones(static_cast<std::size_t>(total));
    std::atomic<int> errors{0}, finished{0};
    std::promise<void> all_done;
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t)
        ts.emplace_back([&, t] {
            for (int i = 0; i < per_thread; ++i) {
                const int k = t * per_thread + i;
                auto op = [m = make(k)](st::write_txn& tx) -> broker::result<void> {
                    auto o = tx.insert_message(m);
                    if (!o)
                        return o.error();
                    return {};
                };
                auto done = [&, k](broker::result<void> r) {
                    if (!r)
                        ++errors;
                    dones[static_cast<std::size_t>(k)]++;
                    if (++finished == total)
                        all_done.set_value();
                };
                if (auto r = s.submit(op, done); !r)
                    FAIL("submit refused: " << r.error().where());
            }
        });
    for (auto& t : ts)
        t.join();
    all_done.get_future().wait();
    concurrent_inserts out;
    out.errors = errors;
    for (auto& d : dones)
        out.dones.push_back(d);
    return out;
}

inline st::message_row get_row(st::store& s, const std::string& id) {
    auto r = s.thread_reader().get(id);
    REQUIRE(r);
    REQUIRE(r->has_value());
    return **r;
}

/// Holds the writer thread inside one operation: submit op(), wait_started(), ..., release().
class gate {
public:
    gate() : released_(release_.get_future().share()) {}
    st::write_op op() {
        return [this](st::write_txn&) -> broker::result<void> {
            started_.set_value();
            released_.wait();
            return {};
        };
    }
    void wait_started() { started_.get_future().wait(); }
    void release() { release_.set_value(); }

private:
    std::promise<void> started_;
    std::promise<void> release_;
    std::shared_future<void> released_;
};

/// Collects the results of async submits.
struct done_log {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<broker::result<void>> results;
    st::write_done done() {
        return [this](broker::result<void> r) {
            std::lock_guard lk(mu);
            results.push_back(std::move(r));
            cv.notify_all();
        };
    }
    /// Wait until 'n' dones have been called.
    void wait_for(std::size_t n) {
        std::unique_lock lk(mu);
        cv.wait(lk, [&] { return results.size() >= n; });
    }
};

/// Run SQL on the file with a separate raw connection (the store must be closed or readable).
inline std::string raw_query(const std::string& path, const std::string& sql) { return testing::raw_sql(path, sql); }

} // namespace store_test
