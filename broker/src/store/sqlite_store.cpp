// The store: queue, writer thread with group commit, sticky failure, per-thread readers; and the
// free functions of store.hpp (open, write_sync, now_ms).
#include "store/sqlite_store.hpp"

#include "broker/log.hpp"
#include "store/sqlite_reader.hpp"
#include "store/sqlite_writer.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <exception>
#include <future>
#include <pthread.h>
#include <string>
#include <unordered_map>

namespace broker::store {

millis now_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::string iso_time(millis ms) {
    if (ms == 0)
        return {};
    std::time_t t = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
    return buf;
}

result<std::unique_ptr<store>> open(const options& o) {
    auto s = detail::sqlite_store::open(o);
    if (!s)
        return s.error();
    return std::unique_ptr<store>(std::move(*s));
}

namespace detail {
/// True on a store's writer thread: write_sync there would wait for itself.
thread_local bool on_writer_thread = false;
} // namespace detail

result<void> write_sync(store& s, write_op op) {
    if (detail::on_writer_thread)
        return error("store.deadlock", "write_sync called on the store's writer thread (inside an operation or a done)");
    auto p = std::make_shared<std::promise<result<void>>>();
    auto f = p->get_future();
    if (auto r = s.submit(std::move(op), [p](result<void> r) { p->set_value(std::move(r)); }); !r)
        return r.error();
    return f.get();
}

namespace detail {
namespace {

std::atomic<std::uint64_t> next_uid{1};

/// This thread's readers, by store uid. A reader lives as long as its thread (or until its store
/// closes it); entries of closed stores are pruned when a new store's reader is added.
thread_local std::unordered_map<std::uint64_t, std::shared_ptr<sqlite_reader>> thread_readers;

error closed_error() { return error("store.closed", "the store is closed"); }

void call_done(const write_done& done, result<void> r) {
    if (!done)
        return;
    try {
        done(std::move(r));
    } catch (const std::exception& e) {
        log::error("store.done-threw", {{"what", e.what()}});
    } catch (...) {
        log::error("store.done-threw", {{"what", "unknown exception"}});
    }
}

void update_max(std::atomic<std::uint64_t>& a, std::uint64_t v) {
    std::uint64_t cur = a.load(std::memory_order_relaxed);
    while (v > cur && !a.compare_exchange_weak(cur, v, std::memory_order_relaxed)) {
    }
}

} // namespace

result<std::unique_ptr<sqlite_store>> sqlite_store::open(const options& o) {
    auto conn = writer_conn::open(o);
    if (!conn)
        return conn.error();
    std::unique_ptr<sqlite_store> s(new sqlite_store());
    s->opts_ = o;
    s->version_ = (*conn)->schema_version();
    s->uid_ = next_uid.fetch_add(1);
    s->conn_ = std::move(*conn);
    // Background checkpoints (see sqlite_store.hpp). If the second connection cannot be opened,
    // SQLite's auto-checkpoint on the writer stays in place.
    sqlite3* ck = nullptr;
    if (sqlite3_open_v2(o.path.c_str(), &ck, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr) == SQLITE_OK &&
        exec(ck, ("PRAGMA synchronous = " + o.synchronous).c_str(), "checkpointer pragmas")) {
        s->ckpt_db_ = ck;
        sqlite3_wal_hook(s->conn_->handle(), &sqlite_store::on_wal_commit, s.get());
        s->checkpointer_ = std::thread([p = s.get()] { p->run_checkpointer(); });
    } else {
        log::warn("store.checkpointer-unavailable", {{"path", o.path}, {"reason", ck ? sqlite3_errmsg(ck) : "open"}});
        sqlite3_close_v2(ck);
    }
    s->writer_ = std::thread([p = s.get()] { p->run_writer(); });
    log::info("store.open", {{"path", o.path}, {"schema", std::to_string(s->version_)}, {"synchronous", o.synchronous}});
    return s;
}

sqlite_store::~sqlite_store() {
    close();
    std::lock_guard lk(close_mu_);
    if (writer_.joinable())
        writer_.join();  // close() was called from a done: the writer has stopped or is stopping
}

result<void> sqlite_store::submit(write_op op, write_done done) {
    std::unique_lock lk(mu_);
    if (stopping_)
        return closed_error();
    if (failed_)
        return error("store.failed", "the store has failed and refuses work until reopened: " + failed_error_.message);
    if (queue_.size() >= opts_.queue_limit)
        return error("store.busy", "the store's write queue is full (" + std::to_string(opts_.queue_limit) + ")");
    queue_.push_back(pending{std::move(op), std::move(done)});
    const bool wake =
        writer_idle_ || (writer_pacing_ && queue_.size() >= static_cast<std::size_t>(opts_.max_batch));
    writer_idle_ = false;
    lk.unlock();
    if (wake)
        cv_.notify_one();
    return {};
}

std::size_t sqlite_store::queue_depth() const {
    std::lock_guard lk(mu_);
    return queue_.size();
}

writer_stats sqlite_store::writer_counters() const {
    writer_stats s;
    s.ops = ops_.load(std::memory_order_relaxed);
    s.commits = commits_.load(std::memory_order_relaxed);
    s.failed_batches = failed_batches_.load(std::memory_order_relaxed);
    s.largest_batch = largest_batch_.load(std::memory_order_relaxed);
    return s;
}

void sqlite_store::set_fault_hook(fault_hook h) {
    std::lock_guard lk(mu_);
    hook_ = std::move(h);
}

void sqlite_store::enter_failed(const error& e) {
    std::lock_guard lk(mu_);
    if (failed_)
        return;
    failed_ = true;
    failed_error_ = e;
    log::error("store.failed", {{"path", opts_.path}, {"code", e.code}, {"reason", e.message}});
}

void sqlite_store::close() {
    {
        std::lock_guard lk(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    {
        std::lock_guard lk(close_mu_);  // two closing threads must not both join
        if (writer_.joinable() && writer_.get_id() != std::this_thread::get_id())
            writer_.join();
    }

    {
        std::lock_guard lk(close_mu_);  // two closing threads must not both join
        stop_checkpointer();
    }

    std::vector<std::weak_ptr<sqlite_reader>> readers;
    {
        std::lock_guard lk(readers_mu_);
        readers_closed_ = true;
        readers.swap(readers_);
    }
    for (auto& w : readers)
        if (auto r = w.lock())
            r->close();
}

reader& sqlite_store::thread_reader() {
    auto it = thread_readers.find(uid_);
    if (it != thread_readers.end())
        return *it->second;
    // Prune this thread's readers of closed stores (uids are never reused).
    for (auto p = thread_readers.begin(); p != thread_readers.end();)
        p = p->second->is_closed() ? thread_readers.erase(p) : std::next(p);

    auto r = std::make_shared<sqlite_reader>();
    {
        std::lock_guard lk(readers_mu_);
        if (!readers_closed_) {
            r->open(opts_.path);  // under the lock: close() cannot miss a reader being opened
            readers_.erase(std::remove_if(readers_.begin(), readers_.end(), [](auto& w) { return w.expired(); }),
                           readers_.end());
            readers_.push_back(r);
        }
    }
    return *thread_readers.emplace(uid_, std::move(r)).first->second;
}

// ------------------------------------------------------------------------------------------------
// background checkpoints

int sqlite_store::on_wal_commit(void* self, sqlite3* db, const char* name, int frames) {
    auto* s = static_cast<sqlite_store*>(self);
    const int every = std::max(1, s->opts_.checkpoint_pages);
    const int restart = std::max(1, s->opts_.wal_restart_pages);
    if (frames < s->ckpt_woken_at_)
        s->ckpt_woken_at_ = 0;  // the WAL started again from its beginning
    if (frames - s->ckpt_woken_at_ >= every) {
        s->ckpt_woken_at_ = frames;
        {
            std::lock_guard lk(s->ckpt_mu_);
            s->ckpt_wanted_ = true;
        }
        s->ckpt_cv_.notify_one();
    }
    bool checkpointer_done = false;
    if (s->ckpt_woken_at_ >= restart) {
        std::lock_guard lk(s->ckpt_mu_);
        checkpointer_done = !s->ckpt_wanted_ && !s->ckpt_running_;
    }
    if (checkpointer_done || frames >= 4 * restart) {
        // The checkpointer, woken past wal_restart_pages, has copied all but the frames written
        // while it ran: copy those here, so that the next transaction restarts the WAL. (Past
        // 4 x wal_restart_pages: whatever is left, busy checkpointer or not.) SQLITE_BUSY is fine:
        // the next commit tries again.
        sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    }
    return SQLITE_OK;
}

void sqlite_store::run_checkpointer() {
    pthread_setname_np(pthread_self(), "edb-checkpoint");
    for (;;) {
        {
            std::unique_lock lk(ckpt_mu_);
            ckpt_cv_.wait(lk, [this] { return ckpt_wanted_ || ckpt_stopping_; });
            if (ckpt_stopping_)
                return;
            ckpt_wanted_ = false;
            ckpt_running_ = true;
        }
        int rc = sqlite3_wal_checkpoint_v2(ckpt_db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY && rc != SQLITE_LOCKED)
            log::warn("store.checkpoint-failed", {{"path", opts_.path}, {"reason", sqlite3_errstr(rc)}});
        std::lock_guard lk(ckpt_mu_);
        ckpt_running_ = false;
    }
}

void sqlite_store::stop_checkpointer() {
    {
        std::lock_guard lk(ckpt_mu_);
        ckpt_stopping_ = true;
    }
    ckpt_cv_.notify_all();
    if (checkpointer_.joinable() && checkpointer_.get_id() != std::this_thread::get_id())
        checkpointer_.join();
    std::lock_guard lk(ckpt_mu_);
    if (ckpt_db_ && !checkpointer_.joinable()) {
        sqlite3_close_v2(ckpt_db_);
        ckpt_db_ = nullptr;
    }
}

// ------------------------------------------------------------------------------------------------
// writer thread

void sqlite_store::run_writer() {
    pthread_setname_np(pthread_self(), "edb-store");  // names show in top -H, perf and gdb
    on_writer_thread = true;
    const std::size_t max_batch = static_cast<std::size_t>(opts_.max_batch);
    std::vector<pending> batch;
    std::vector<result<void>> results;
    batch.reserve(max_batch);
    results.reserve(max_batch);
    const std::chrono::microseconds pace(opts_.commit_interval_us);
    std::chrono::steady_clock::time_point last_start{};
    std::size_t last_size = 0;
    for (;;) {
        fault_hook hook;
        bool failed = false;
        {
            std::unique_lock lk(mu_);
            while (queue_.empty() && !stopping_) {
                writer_idle_ = true;
                cv_.wait(lk);
            }
            writer_idle_ = false;
            if (queue_.empty())
                break;  // stopping, and the queue is drained
            // Pacing: while the previous transaction had company, wait out the rest of the
            // interval so that more operations share the next one (see sqlite_store.hpp). One
            // client writing one operation at a time never waits.
            const auto due = last_start + pace;
            if (pace.count() > 0 && last_size > 1 && queue_.size() < max_batch && !stopping_ &&
                std::chrono::steady_clock::now() < due) {
                writer_pacing_ = true;
                cv_.wait_until(lk, due, [&] { return queue_.size() >= max_batch || stopping_; });
                writer_pacing_ = false;
            }
            const std::size_t n = std::min(queue_.size(), max_batch);
            for (std::size_t i = 0; i < n; ++i) {
                batch.push_back(std::move(queue_.front()));
                queue_.pop_front();
            }
            failed = failed_;
            hook = hook_;
        }
        if (failed) {
            // Sticky: what was queued before the failure is refused, not run.
            error e("store.failed", "the store has failed and refuses work until reopened");
            for (auto& p : batch)
                call_done(p.done, e);
        } else {
            last_start = std::chrono::steady_clock::now();
            last_size = batch.size();
            run_batch(batch, results, hook);
            for (std::size_t i = 0; i < batch.size(); ++i)
                call_done(batch[i].done, std::move(results[i]));
        }
        batch.clear();
        results.clear();
    }
    conn_->close();
}

void sqlite_store::run_batch(std::vector<pending>& batch, std::vector<result<void>>& results,
                             const fault_hook& hook) {
    // Fast pass: the operations back to back, no savepoints. A savepoint per operation made SQLite
    // copy every page the operation touched into a sub-journal: about a third of the writer's work
    // (issue 3's profile). Should an operation fail, the fast pass is rolled back as a whole and the
    // batch runs again with a savepoint per operation, so the failure is rolled back alone.
    if (run_pass(batch, results, hook, false) == pass::op_failed)
        run_pass(batch, results, hook, true);
}

sqlite_store::pass sqlite_store::run_pass(std::vector<pending>& batch, std::vector<result<void>>& results,
                                          const fault_hook& hook, bool savepoints) {
    writer_conn& c = *conn_;
    results.assign(batch.size(), result<void>{});
    // Every operation of the batch gets 'e'; the transaction, if open, is rolled back.
    auto abort_batch = [&](const error& e) {
        c.rollback();
        for (auto& r : results)
            r = e;
        failed_batches_.fetch_add(1, std::memory_order_relaxed);
        if (c.io_failure())
            enter_failed(*c.io_failure());
        return pass::aborted;
    };
    auto injected = [&](const char* step) -> int {
        if (!hook)
            return SQLITE_OK;
        int rc = hook(step);
        if (rc != SQLITE_OK && is_io_class(rc))
            c.note_io_failure(sql_error(nullptr, rc, std::string("injected fault at ") + step));
        return rc;
    };

    int rc = injected("begin");
    if (rc == SQLITE_OK)
        rc = c.begin();
    if (rc != SQLITE_OK)
        return abort_batch(c.io_failure() ? *c.io_failure() : c.fail(rc, "begin transaction"));

    for (std::size_t i = 0; i < batch.size(); ++i) {
        if (savepoints)
            if (rc = c.savepoint(); rc != SQLITE_OK)
                return abort_batch(c.io_failure() ? *c.io_failure() : c.fail(rc, "savepoint"));
        result<void> r;
        try {
            r = batch[i].op(c);
        } catch (const std::exception& e) {
            r = error("store.op-threw", std::string("a write operation threw: ") + e.what());
        } catch (...) {
            r = error("store.op-threw", "a write operation threw");
        }
        if (c.io_failure())
            return abort_batch(*c.io_failure());
        if (!c.in_txn())  // SQLite rolled the whole transaction back on its own (e.g. SQLITE_NOMEM)
            return abort_batch(r ? error("store.aborted", "the transaction was rolled back by SQLite") : r.error());
        if (!savepoints) {
            if (!r) {
                c.rollback();  // nothing of this pass is kept; the careful pass runs every operation again
                return pass::op_failed;
            }
        } else if (r) {
            if (rc = c.release(); rc != SQLITE_OK)
                return abort_batch(c.io_failure() ? *c.io_failure() : c.fail(rc, "release savepoint"));
        } else {
            results[i] = std::move(r);
            if (rc = c.rollback_to(); rc != SQLITE_OK)
                return abort_batch(c.io_failure() ? *c.io_failure() : c.fail(rc, "roll back savepoint"));
            if (rc = c.release(); rc != SQLITE_OK)
                return abort_batch(c.io_failure() ? *c.io_failure() : c.fail(rc, "release savepoint"));
        }
    }
    rc = injected("commit");
    if (rc == SQLITE_OK)
        rc = c.commit();
    if (rc != SQLITE_OK)
        return abort_batch(c.io_failure() ? *c.io_failure() : c.fail(rc, "commit"));
    c.after_commit();
    commits_.fetch_add(1, std::memory_order_relaxed);
    ops_.fetch_add(batch.size(), std::memory_order_relaxed);
    update_max(largest_batch_, batch.size());
    return pass::committed;
}

} // namespace detail
} // namespace broker::store
