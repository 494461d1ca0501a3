// Wiring: store → registry import → rules → adapters → engine → HTTP endpoint, and the shutdown
// order (stop accepting, stop adapters, drain the I/O threads, close the store).
#include "broker/server.hpp"

#include "engine.hpp"
#include "http_api.hpp"

#include "admin/admin_api.hpp"
#include "admin/ops.hpp"
#include "digihelse/notify.hpp"

#include "broker/log.hpp"
#include "broker/xml.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <condition_variable>
#include <filesystem>
#include <pthread.h>
#include <string>
#include <thread>

namespace broker {

namespace asio = boost::asio;

/// Import a registry file into the store (replacing the parties) and return them.
result<std::vector<store::party>> import_registry(store::store& st, const std::string& file) {
    auto parties = routing::parse_registry_file(file);
    if (!parties)
        return parties.error();
    auto list = std::make_shared<std::vector<store::party>>(*parties);
    auto w = store::write_sync(st, [list](store::write_txn& t) -> result<void> {
        if (auto e = t.delete_all_parties(); !e)
            return e.error();
        for (auto& p : *list)
            if (auto e = t.upsert_party(p); !e)
                return e.error();
        return {};
    });
    if (!w)
        return w.error();
    return *parties;
}

/// Load rules + the registry as stored, ready to install.
result<std::shared_ptr<routing_state>> load_routing(store::store& st, const std::string& rules_dir) {
    auto rules = routing::load_rules(rules_dir);
    if (!rules)
        return rules.error();
    auto parties = st.thread_reader().all_parties();
    if (!parties)
        return parties.error();
    auto rs = std::make_shared<routing_state>();
    rs->rules = std::move(*rules);
    rs->registry = routing::address_registry(std::move(*parties));
    return rs;
}

namespace {

class server_impl final : public server {
public:
    explicit server_impl(const config& c) : cfg_(c), work_(asio::make_work_guard(ioc_)) {
        // One io_context per I/O thread: thread 0 runs ioc_ (the acceptors, the engine, the admin
        // API, the adapters' timers) and each further thread a context of its own. HTTP
        // connections and adapters' inbound documents go to the contexts in turn. A connection
        // stays on the context it was accepted to, so its handlers run on one thread without a
        // strand and the I/O threads never wait for each other on a shared scheduler (issue 3:
        // `perf` showed the shared context's mutex and condition variable as the I/O threads'
        // largest source of futex calls).
        for (int i = 1; i < cfg_.threads; ++i) {
            contexts_.push_back(std::make_unique<asio::io_context>(1));
            context_work_.push_back(asio::make_work_guard(*contexts_.back()));
        }
    }

    ~server_impl() override { stop(); }

    result<void> init() {
        log::level lv;
        if (log::parse_level(cfg_.log_level, lv))
            log::set_level(lv);
        register_builtin_adapters(factories_);

        std::error_code fec;
        std::filesystem::create_directories(cfg_.data_dir, fec);
        if (fec)
            return error{"config.invalid", "cannot create data-dir '" + cfg_.data_dir + "': " + fec.message()};
        store::options so;
        so.path = (std::filesystem::path(cfg_.data_dir) / "edibroker.db").string();
        so.synchronous = cfg_.synchronous;
        so.max_batch = cfg_.group_commit_max;
        so.commit_interval_us = cfg_.group_commit_interval_us;
        so.body_log = cfg_.body_log;
        so.queue_limit = cfg_.store_queue_limit;
        auto st = store::open(so);
        if (!st)
            return st.error();
        store_ = std::move(*st);

        if (!cfg_.registry_file.empty()) {
            auto parties = import_registry(*store_, cfg_.registry_file);
            if (!parties)
                return parties.error();
            log::info("registry.imported", {{"file", cfg_.registry_file}, {"parties", std::to_string(parties->size())}});
        }
        auto rs = load_routing(*store_, cfg_.rules_dir);
        if (!rs)
            return rs.error();
        engine_ = std::make_unique<engine>(cfg_, *store_, factories_, ioc_.get_executor());
        // Every I/O thread's context, in thread order: connections and inbound intake take turns.
        std::vector<asio::io_context*> session_contexts{&ioc_};
        for (auto& c : contexts_)
            session_contexts.push_back(c.get());
        std::vector<asio::any_io_executor> intake_executors;
        for (auto* c : session_contexts)
            intake_executors.push_back(c->get_executor());
        engine_->set_intake_executors(std::move(intake_executors));
        if (auto r = engine_->install(*rs); !r)
            return r.error();
        log::info("rules.loaded", {{"dir", cfg_.rules_dir},
                                   {"rules", std::to_string((*rs)->rules.rules.size())},
                                   {"adapters", std::to_string((*rs)->rules.adapters.size())}});
        api_ = std::make_unique<http_api>(*engine_, ioc_, cfg_, std::move(session_contexts));
        // Digihelse visit notifications and read notices (issue 6).
        notifier_ = std::make_unique<digihelse::notifier>(cfg_, *store_, *engine_, ioc_.get_executor());
        if (auto r = notifier_->init(); !r)
            return r.error();
        engine_->add_listener(notifier_.get());
        api_->add_extension(notifier_.get());
        // Operator side (issue 5): metrics, retention, the admin listener.
        if (auto plan = ops::retention_plan((*rs)->rules, {}, cfg_.retention_days, 0); !plan)
            return plan.error();
        engine_->set_observer(&metrics_);
        retention_ = std::make_unique<admin::retention>(*engine_, cfg_, &metrics_, ioc_.get_executor());
        admin_ = std::make_unique<admin::admin_api>(*engine_, ioc_, cfg_, metrics_, *retention_,
                                                    [this] { return reload(); });
        return {};
    }

    /// admin-listen as configured; unset: 127.0.0.1:8081, or HOST:0 when 'listen' asks for port 0.
    std::string admin_listen() const {
        if (!cfg_.admin_listen.empty())
            return cfg_.admin_listen;
        auto colon = cfg_.listen.rfind(':');
        if (colon != std::string::npos && cfg_.listen.substr(colon + 1) == "0")
            return cfg_.listen.substr(0, colon) + ":0";
        return "127.0.0.1:8081";
    }

    result<void> reload() override {
        std::lock_guard lk(reload_mu_);
        auto r = reload_locked();
        metrics_.reloaded(r.has_value());
        if (!r)
            log::error("reload.refused", {{"reason", r.error().where()}});
        return r;
    }

    result<void> reload_locked() {
        // Read and check everything first; only a complete, working set replaces the one in force.
        std::vector<store::party> parties;
        if (!cfg_.registry_file.empty()) {
            auto p = routing::parse_registry_file(cfg_.registry_file);
            if (!p)
                return p.error();
            parties = std::move(*p);
        } else {
            auto p = store_->thread_reader().all_parties();
            if (!p)
                return p.error();
            parties = std::move(*p);
        }
        auto rules = routing::load_rules(cfg_.rules_dir);
        if (!rules)
            return rules.error();
        if (auto plan = ops::retention_plan(*rules, {}, cfg_.retention_days, 0); !plan)
            return plan.error();
        auto rs = std::make_shared<routing_state>();
        rs->rules = std::move(*rules);
        rs->registry = routing::address_registry(parties);
        const std::size_t n_rules = rs->rules.rules.size(), n_parties = parties.size();
        if (auto r = engine_->install(rs); !r)
            return r.error();
        if (!cfg_.registry_file.empty()) {
            auto list = std::make_shared<std::vector<store::party>>(std::move(parties));
            auto w = store::write_sync(*store_, [list](store::write_txn& t) -> result<void> {
                if (auto e = t.delete_all_parties(); !e)
                    return e.error();
                for (auto& p : *list)
                    if (auto e = t.upsert_party(p); !e)
                        return e.error();
                return {};
            });
            if (!w)  // the new registry is in force in memory; the store catches up at the next reload
                log::error("reload.registry-store-failed", {{"reason", w.error().message}});
        }
        log::info("reloaded", {{"rules", std::to_string(n_rules)}, {"parties", std::to_string(n_parties)}});
        return {};
    }

    std::string admin_address() const override { return admin_ ? admin_->address() : std::string(); }

    result<void> start() override {
        if (auto r = api_->listen(cfg_.listen); !r)
            return r;
        if (std::string a = admin_listen(); a != "off") {
            if (auto r = admin_->listen(a); !r)
                return r;
            admin_->start();
        } else {
            admin_.reset();
        }
        retention_->start();
        notifier_->start();
        api_->start();
        engine_->start();
        for (int i = 0; i < cfg_.threads; ++i)
            threads_.emplace_back([this, i] {
                pthread_setname_np(pthread_self(), ("edb-io-" + std::to_string(i)).c_str());
                // Build this thread's validator (grammar pool) before the first message arrives.
                xml::thread_validator();
                if (i == 0)
                    ioc_.run();
                else
                    contexts_[static_cast<std::size_t>(i - 1)]->run();
            });
        log::info("listening", {{"address", api_->address()}});
        if (admin_)
            log::info("admin.listening", {{"address", admin_->address()}});
        return {};
    }

    unsigned short port() const override { return api_ ? api_->port() : 0; }
    std::string listen_address() const override { return api_ ? api_->address() : std::string(); }

    void stop() override {
        {
            std::lock_guard lk(mu_);
            if (stopped_)
                return;
            stopped_ = true;
        }
        if (api_)
            api_->stop();
        if (admin_)
            admin_->stop();
        if (retention_)
            retention_->stop();
        if (engine_)
            engine_->stop();
        if (notifier_)
            notifier_->stop();  // before the store closes: its senders write to it
        work_.reset();
        for (auto& w : context_work_)
            w.reset();
        // Sessions were closed and the scanner cancelled: the I/O threads run out of work.
        for (auto& t : threads_)
            t.join();
        threads_.clear();
        ioc_.stop();
        for (auto& c : contexts_)
            c->stop();
        // Close the store before the engine goes: closing drains the writer queue, and the
        // completions of delivery results still refer to the engine.
        if (store_)
            store_->close();
        api_.reset();
        admin_.reset();
        retention_.reset();
        notifier_.reset();
        engine_.reset();
        log::info("stopped");
        cv_.notify_all();
    }

    void wait() override {
        std::unique_lock lk(mu_);
        cv_.wait(lk, [this] { return stopped_; });
    }

private:
    config cfg_;
    asio::io_context ioc_{1};  // run by I/O thread 0 only (see the constructor)
    asio::executor_work_guard<asio::io_context::executor_type> work_;
    /// The contexts of I/O threads 1..threads-1 (HTTP connections and adapters' inbound intake).
    std::vector<std::unique_ptr<asio::io_context>> contexts_;
    std::vector<asio::executor_work_guard<asio::io_context::executor_type>> context_work_;
    adapter_registry factories_;
    std::unique_ptr<store::store> store_;
    admin::metrics metrics_;  // before engine_: the engine reports to it until it is gone
    std::unique_ptr<engine> engine_;
    std::unique_ptr<http_api> api_;
    std::unique_ptr<admin::retention> retention_;
    std::unique_ptr<admin::admin_api> admin_;
    std::unique_ptr<digihelse::notifier> notifier_;
    std::mutex reload_mu_;
    std::vector<std::thread> threads_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool stopped_ = false;
};

} // namespace

result<std::unique_ptr<server>> make_server(const config& c) {
    // Before any io_context exists: Asio's io_uring backend throws from its constructor.
    if (auto r = io_backend_ready(); !r)
        return r.error();
    auto s = std::make_unique<server_impl>(c);
    if (auto r = s->init(); !r)
        return r.error();
    return std::unique_ptr<server>(std::move(s));
}

} // namespace broker
