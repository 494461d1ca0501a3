// Counters the engine feeds (engine_observer) and the Prometheus text rendering of /metrics,
// which adds the gauges read from the store at scrape time (queue depth, oldest waiting message,
// store size). Thread-safe: engine threads count, the admin listener renders.
#pragma once

#include "server/engine.hpp"

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>

namespace broker::admin {

class metrics final : public engine_observer {
public:
    /// Upper bounds (seconds) of the delivery latency histogram buckets; +Inf is implied.
    static constexpr std::array<double, 16> latency_buckets{0.005, 0.01, 0.025, 0.05, 0.1,  0.25, 0.5,  1,
                                                            2.5,   5,    10,    30,   60,   300,  1800, 3600};

    void intake(std::string_view state, std::string_view rule, std::string_view adapter,
                std::string_view code) override;
    void delivery(std::string_view outcome, std::string_view rule, std::string_view adapter,
                  store::millis latency_ms) override;

    void pruned(std::int64_t n) { pruned_ += static_cast<std::uint64_t>(n); }
    void reloaded(bool ok) { (ok ? reloads_ok_ : reloads_failed_)++; }

    /// The whole exposition: counters kept here plus the store's gauges (read through 'rd').
    std::string render(store::store& st, std::size_t parties, std::size_t rules) const;

private:
    struct route_counters {
        std::uint64_t in = 0, out = 0, waiting = 0, retries = 0, dead = 0;
        std::array<std::uint64_t, latency_buckets.size()> buckets{};  // cumulative at render
        std::uint64_t latency_count = 0;
        double latency_sum = 0;
    };
    using key = std::pair<std::string, std::string>;  // rule, adapter

    mutable std::mutex mu_;
    std::map<key, route_counters> routes_;
    std::map<std::tuple<std::string, std::string, std::string>, std::uint64_t> rejected_;  // rule, adapter, code
    std::uint64_t unroutable_ = 0;
    std::atomic<std::uint64_t> pruned_{0}, reloads_ok_{0}, reloads_failed_{0};
};

} // namespace broker::admin
