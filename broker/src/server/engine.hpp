// The broker's core, independent of any transport: intake (validate → route → store → answer),
// the delivery engine (adapters, retries, dead letters), AppRec correlation and read receipts.
// The HTTP endpoint (http_api.cpp) and later transports call into this.
#pragma once

#include "broker/adapter.hpp"
#include "broker/router.hpp"
#include "broker/server.hpp"
#include "broker/store.hpp"
#include "broker/xml.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/json/object.hpp>

#include <atomic>
#include <map>
#include <memory>
#include <condition_variable>
#include <mutex>
#include <set>
#include <string>
#include <tuple>
#include <vector>

namespace broker {

/// Rules + registry + the adapter instances they declare; replaced whole on reload.
struct routing_state {
    routing::rule_set rules;
    routing::address_registry registry{{}};
};

/// What the transport answers the sender.
struct intake_answer {
    int status = 0;        ///< HTTP status
    std::string json;      ///< body
    std::string id;        ///< broker id of the stored message ("" if nothing was stored)
    bool duplicate = false;
};

/// Run a store write from a coroutine; resumes on the coroutine's executor after the commit.
boost::asio::awaitable<result<void>> store_write(store::store& s, store::write_op op);

/// JSON error body: {"error": {"code": ..., "message": ...}}.
boost::json::object error_body(std::string_view code, std::string_view message);

/// Watches what the engine does, for metrics. Called on engine/I-O threads after the fact is
/// committed; implementations must be thread-safe, cheap, and never block.
class engine_observer {
public:
    virtual ~engine_observer() = default;
    /// Intake stored a message: 'state' is routed/unroutable/rejected; 'code' the rejection code.
    virtual void intake(std::string_view state, std::string_view rule, std::string_view adapter,
                        std::string_view code) = 0;
    /// A delivery attempt ended: "delivered", "waiting", "retry" or "dead"; 'latency_ms' is from
    /// receipt to delivery (delivered only).
    virtual void delivery(std::string_view outcome, std::string_view rule, std::string_view adapter,
                          store::millis latency_ms) = 0;
};

/// Told what the engine committed, for features that act on it (issue 6: visit notifications and
/// read notices, broker/src/digihelse/notify*). Called on I/O threads after the commit; must be
/// cheap, never block and never throw.
class message_listener {
public:
    virtual ~message_listener() = default;
    /// Intake stored a new message (not a duplicate) in 'state' (routed, unroutable, rejected).
    virtual void stored(const std::string& id, const message_facts& f,
                        const std::shared_ptr<const std::string>& document, std::string_view state) = 0;
    /// A first read receipt was recorded for 'm' (the row as it was before) by 'her_id'.
    virtual void read(const store::message_row& m, const std::string& her_id) = 0;
};

/// A delivery intake starts once its message is committed: id, adapter, rule, facts, document.
using pending_delivery =
    std::tuple<std::string, std::string, std::string, message_facts, std::shared_ptr<const std::string>>;

class engine {
public:
    engine(const config& cfg, store::store& st, adapter_registry& factories, boost::asio::any_io_executor ex);
    ~engine();

    /// Build adapters for 'rs' and make it current. Fails (and keeps the old state) when an
    /// adapter instance cannot be created.
    result<void> install(std::shared_ptr<routing_state> rs);
    std::shared_ptr<const routing_state> routing() const;

    /// Start the delivery scanner (recovers messages left routed/failed by an earlier run).
    void start();
    /// Stop the scanner and every adapter; in-flight deliveries complete as retriable.
    void stop();

    /// Validate, route and durably store one inbound business document, then queue its delivery.
    /// Never throws; every outcome is an answer.
    boost::asio::awaitable<intake_answer> intake(std::string document, std::string source);

    /// POST /Messages/{id}/apprec/{herId}: build the AppRec the receiver asks for and take it in.
    boost::asio::awaitable<intake_answer> apprec_for(std::string id, std::string her_id, std::string body_json);

    /// A synchronous request an adapter received (helsenorge's _sync queue): route it with the
    /// current rules to the receiver's adapter (the rule's option sync-adapter, else the route's
    /// adapter) and hand back that adapter's answer within 'timeout'. Nothing is stored; 'done' is
    /// called exactly once, from any thread. Never blocks.
    void sync_request(std::string document, std::string source, std::chrono::milliseconds timeout, sync_handler done);

    /// PUT /Messages/{id}/read/{herId}.
    boost::asio::awaitable<intake_answer> mark_read(std::string id, std::string her_id);

    /// GET /Messages/{id}/business-document by the receiver: a pull delivery is now delivered.
    boost::asio::awaitable<void> fetched(std::string id);
    /// Whether adapter instance 'name' leaves messages in the inbox for the receiver to fetch
    /// (type pull): such a message may be fetched while still 'routed', before the adapter's
    /// 'waiting' is recorded, and that fetch is its delivery too.
    bool waits_for_pickup(const std::string& name) const;

    /// A registration for changes of one message (any committed write the engine makes for it).
    struct watcher {
        std::string id;
        std::shared_ptr<boost::asio::steady_timer> timer;
        bool fired = false;  // guarded by engine::mu_
    };
    /// Register first, then read the state, then wait: a change in between is not lost.
    std::shared_ptr<watcher> watch(const std::string& id, std::chrono::steady_clock::time_point deadline,
                                   boost::asio::any_io_executor ex);
    /// Wait until the watched message changes or the deadline passes; unregisters.
    boost::asio::awaitable<void> wait(std::shared_ptr<watcher> w);
    /// Unregister without waiting.
    void unwatch(const std::shared_ptr<watcher>& w);

    /// Operator resend (admin API): route the stored message again with the current rules, reset
    /// its attempts and deliver it now. 200 with {"id","state","rule","adapter"}; 404 unknown id;
    /// 409 when it cannot be resent (rejected at intake, an inbound-only record, no rule matches).
    boost::asio::awaitable<intake_answer> resend(std::string id);

    /// Where adapters' inbound documents are validated and taken in, in turn (the server passes
    /// one executor per I/O thread); unset: the engine's executor. Set before install().
    void set_intake_executors(std::vector<boost::asio::any_io_executor> exs);

    /// Metrics hook; set before start(), not owned.
    void set_observer(engine_observer* o) { observer_ = o; }
    /// Feature hook (see message_listener); add before start(), not owned.
    void add_listener(message_listener* l) { listeners_.push_back(l); }

    store::store& store() { return store_; }
    const config& cfg() const { return cfg_; }

private:
    /// Deliveries under way at most; beyond it messages stay 'routed' until the scanner hands them over.
    static constexpr std::size_t max_in_flight = 8192;
    /// Put the ids in in_flight_ (up to max_in_flight); which ones were claimed.
    std::vector<bool> claim(const std::vector<pending_delivery>& ds);
    /// Take 'id' out of in_flight_ and wake a draining stop(); mu_ must be held.
    void unclaim_locked(const std::string& id);
    /// Take the claimed ones out of in_flight_ again (the write failed or was a duplicate).
    void release(const std::vector<pending_delivery>& ds, std::vector<bool>& claimed);

    struct job {
        std::string id;
        std::string adapter;
        std::string rule;
        int attempt = 1;
        message_facts facts;
        std::shared_ptr<const std::string> document;
        store::millis received_at = 0;  ///< for the delivery latency metric
        bool claimed = false;  ///< 'id' is already in in_flight_ (claimed by intake, resend or the scanner)
    };

    /// Intake for a document an adapter received; reports to 'done'.
    boost::asio::awaitable<void> run_inbound(std::string document, std::string source, inbound_handler done);
    /// Wake everyone waiting on 'id'. Any thread.
    void notify(const std::string& id);
    void dispatch(job j);
    /// An adapter's outcome for one delivery, on the thread that called the adapter's handler (any
    /// thread: it takes mu_ briefly and hands the state change to the store writer without waiting).
    void on_result(job j, delivery_result r);
    void scan();
    void schedule_scan();
    adapter* find_adapter(const std::string& name);
    boost::asio::any_io_executor intake_executor();
    store::millis backoff(int attempt) const;

    config cfg_;
    store::store& store_;
    adapter_registry& factories_;
    boost::asio::any_io_executor ex_;
    boost::asio::strand<boost::asio::any_io_executor> strand_;
    boost::asio::steady_timer scan_timer_;

    mutable std::mutex mu_;  // guards routing_, adapters_, in_flight_, stopped_
    std::shared_ptr<const routing_state> routing_;
    std::map<std::string, std::shared_ptr<adapter>, std::less<>> adapters_;
    std::set<std::string, std::less<>> in_flight_;
    std::multimap<std::string, std::shared_ptr<watcher>, std::less<>> watchers_;
    bool stopped_ = false;
    /// stop() is letting the deliveries under way finish: nothing new is handed to an adapter.
    bool draining_ = false;
    std::condition_variable drained_;  ///< notified when in_flight_ shrinks (with mu_)
    engine_observer* observer_ = nullptr;
    std::vector<message_listener*> listeners_;
    std::vector<boost::asio::any_io_executor> intake_executors_;  ///< fixed after set_intake_executors
    std::atomic<std::size_t> next_intake_{0};
};

} // namespace broker
