// Retention: messages older than their route's retention-days (rule option) or the global
// retention-days are deleted, a small batch per write operation, on a timer. Each batch is one
// operation on the group-commit writer, queued behind whatever intake queued first, so pruning
// never holds intake up for longer than one small batch. Messages still on their way (routed,
// failed, waiting) are never pruned.
#pragma once

#include "admin/metrics.hpp"
#include "server/engine.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <atomic>
#include <cstdint>

namespace broker::admin {

class retention {
public:
    retention(engine& e, const config& cfg, metrics* m, boost::asio::any_io_executor ex);

    /// Start the timer (a first run after one interval). Nothing happens with no retention
    /// configured anywhere (every run finds an empty plan).
    void start();
    /// Cancel the timer; a run under way stops after its current batch.
    void stop();
    /// One full run now: every prunable message goes, batch by batch. Returns how many.
    boost::asio::awaitable<result<std::int64_t>> run_once();

private:
    boost::asio::awaitable<void> loop();

    engine& engine_;
    config cfg_;
    metrics* metrics_;
    boost::asio::strand<boost::asio::any_io_executor> strand_;
    boost::asio::steady_timer timer_;
    std::atomic<bool> stopped_{false};
};

} // namespace broker::admin
