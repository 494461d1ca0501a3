#include "admin/retention.hpp"

#include "admin/ops.hpp"
#include "broker/log.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace broker::admin {

namespace asio = boost::asio;

retention::retention(engine& e, const config& cfg, metrics* m, asio::any_io_executor ex)
    : engine_(e), cfg_(cfg), metrics_(m), strand_(asio::make_strand(ex)), timer_(strand_) {}

void retention::start() { asio::co_spawn(strand_, loop(), asio::detached); }

void retention::stop() {
    stopped_ = true;
    asio::post(strand_, [this] { timer_.cancel(); });
}

asio::awaitable<void> retention::loop() {
    while (!stopped_) {
        timer_.expires_after(std::chrono::milliseconds(cfg_.retention_interval_ms));
        auto [ec] = co_await timer_.async_wait(asio::as_tuple(asio::use_awaitable));
        if (ec || stopped_)
            break;
        auto r = co_await run_once();
        if (!r)
            log::warn("retention.failed", {{"code", r.error().code}, {"reason", r.error().message}});
    }
}

asio::awaitable<result<std::int64_t>> retention::run_once() {
    store::store& st = engine_.store();
    auto stored = st.thread_reader().stored_rules();
    if (!stored)
        co_return stored.error();
    auto rs = engine_.routing();
    auto plan = ops::retention_plan(rs->rules, *stored, cfg_.retention_days, store::now_ms());
    if (!plan)
        co_return plan.error();
    std::int64_t total = 0;
    const int batch = cfg_.retention_batch;
    for (auto& t : *plan) {
        while (!stopped_) {
            auto n = std::make_shared<int>(0);
            store::write_op op = [t, n, batch](store::write_txn& w) -> result<void> {
                auto k = w.prune(t.rule, t.before, batch);
                if (!k)
                    return k.error();
                *n = *k;
                return {};
            };
            auto r = co_await store_write(st, std::move(op));
            if (!r)
                co_return r.error();
            total += *n;
            if (metrics_)
                metrics_->pruned(*n);
            if (*n < batch)
                break;
        }
    }
    if (total > 0)
        log::info("retention.pruned", {{"messages", std::to_string(total)}});
    co_return total;
}

} // namespace broker::admin
