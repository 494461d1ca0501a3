// The SQLite store: a bounded queue of write operations drained by one writer thread with group
// commit, and per-thread readers.
//
// Writer states (state_, under mu_):
//
//   open ──(I/O-class error: IOERR/FULL/CORRUPT/NOTADB)──► failed   (sticky until reopened)
//     │                                                      │
//     └──────────────(close())──────────────► closed ◄───────┘
//
//   open:   submit() queues (or answers store.busy at queue_limit); the writer commits batches.
//   failed: submit() answers store.failed; queued operations get store.failed from their done.
//   closed: submit() answers store.closed; the writer has drained the queue and closed its
//           connection; every reader handed out answers store.closed.
//
// Group commit (writer thread, run_batch): take up to max_batch queued operations, BEGIN
// IMMEDIATE, run them back to back, COMMIT, then call every done. If an operation returns an
// error, that pass is rolled back and the batch runs again with each operation inside SAVEPOINT op
// (the failing one is rolled back to its savepoint alone); every done then gets ok or the
// operation's own error. So an operation may run twice: it must only assign what it hands out, not
// accumulate. When BEGIN or COMMIT fails, every operation of the batch gets that error. While a batch runs, new operations
// queue up and form the next batch: that is the group commit, with no busy-waiting.
// Pacing (options::commit_interval_us): every transaction rewrites the last page of each b-tree it
// touches, so under moderate load, transactions of two or three operations wrote mostly those
// pages again (issue 3). While the previous transaction had company (more than one operation),
// the writer starts the next no sooner than the interval after the previous one started, unless
// max_batch operations wait (submit() then wakes it) or the store closes. A lone writer, one
// operation at a time, never waits.
//
// Checkpoints: mostly not on the writer. A WAL hook on the writer's connection (after each commit)
// wakes a checkpointer thread with its own connection each time options::checkpoint_pages new
// frames have been written; it runs PASSIVE checkpoints (never blocking the writer or readers)
// while commits go on. SQLite's own auto-checkpoint would run inside the commit that crosses 1000
// frames and stall every sender of that batch (found by the benchmark, issue 3).
// The WAL only starts again from its beginning when a write transaction begins with every frame
// copied back, which a checkpointer racing a busy writer never sees. So once the WAL holds
// options::wal_restart_pages frames and the checkpointer is done, the writer copies the few frames
// written while it ran (a short PASSIVE checkpoint, after its commit) and its next transaction
// restarts the WAL; past 4 x wal_restart_pages it does so even while the checkpointer is busy
// (a checkpointer that never finishes must not let the WAL grow without bound). Waking the
// checkpointer on the WAL's size instead (as before) ran a checkpoint, with two fsyncs, after every
// commit once the WAL had passed 1000 frames, and copied each hot index page once per commit
// instead of once per checkpoint (issue 3).
#pragma once

#include "broker/store.hpp"

#include <sqlite3.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace broker::store::detail {

class writer_conn;
class sqlite_reader;

/// The SQL reader::list() prepares for the shape of 'f' (which fields are set, how many
/// receivers). Parameters are numbered in the order list() binds them; the index is chosen by the
/// most selective filter present (INDEXED BY: preparing fails if the schema stops allowing it).
/// Declared here so tests can check the query plans.
std::string list_sql(const message_filter& f);

/// The operator queries (reader::stats/pending/stored_rules and write_txn::prune), by name, so
/// tests can check their query plans: "size", "oldest", "pending", "rules", "prune".
std::string operator_sql(std::string_view name);

class sqlite_store final : public store {
public:
    /// Open the database (see writer_conn::open) and start the writer thread.
    static result<std::unique_ptr<sqlite_store>> open(const options& o);
    /// Closes. Never destroy the store from a done callback (that runs on the writer thread).
    ~sqlite_store() override;
    sqlite_store(const sqlite_store&) = delete;
    sqlite_store& operator=(const sqlite_store&) = delete;

    /// Runs on: any thread. Never blocks on the database.
    result<void> submit(write_op op, write_done done) override;
    /// Runs on: any thread; the reader belongs to the calling thread.
    reader& thread_reader() override;
    std::size_t queue_depth() const override;
    /// Drains the queue (commits what is queued), stops the writer, closes every reader handed out.
    /// Runs on: any thread. From a done callback it only stops the writer; the destructor joins.
    void close() override;
    int schema_version() const override { return version_; }

    writer_stats writer_counters() const override;

    /// Test hook for fault injection: called on the writer thread before the transaction-control
    /// steps "begin" and "commit"; a non-zero SQLite result code it returns is taken as that step's
    /// result (the step is not run; an injected "commit" failure rolls the batch back).
    using fault_hook = std::function<int(std::string_view step)>;
    void set_fault_hook(fault_hook h);

private:
    struct pending {
        write_op op;
        write_done done;
    };

    sqlite_store() = default;
    void run_writer();
    /// Run one batch in one transaction; results[i] receives operation i's outcome.
    void run_batch(std::vector<pending>& batch, std::vector<result<void>>& results, const fault_hook& hook);
    enum class pass { committed, aborted, op_failed };
    /// One try at the batch: with 'savepoints' each operation runs in its own; without, the first
    /// failing operation rolls the whole pass back (op_failed) and nothing is committed.
    pass run_pass(std::vector<pending>& batch, std::vector<result<void>>& results, const fault_hook& hook,
                  bool savepoints);
    void enter_failed(const error& e);
    /// WAL hook of the writer's connection: runs on the writer thread after each commit.
    static int on_wal_commit(void* self, sqlite3* db, const char* name, int frames);
    void run_checkpointer();
    /// Stop and join the checkpointer thread and close its connection. Idempotent.
    void stop_checkpointer();

    options opts_;
    int version_ = 0;
    std::uint64_t uid_ = 0;  ///< unique per store object in this process: keys the thread readers
    std::unique_ptr<writer_conn> conn_;
    std::mutex close_mu_;  ///< serialises joining writer_
    std::thread writer_;

    // Queue and writer state. Lock: mu_.
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<pending> queue_;
    bool stopping_ = false;
    bool writer_idle_ = false;
    bool writer_pacing_ = false;  ///< the writer waits out commit_interval_us; a full batch wakes it
    bool failed_ = false;
    error failed_error_;
    fault_hook hook_;

    // Readers handed out (weak: a reader dies with its thread). Lock: readers_mu_.
    std::mutex readers_mu_;
    std::vector<std::weak_ptr<sqlite_reader>> readers_;
    bool readers_closed_ = false;

    std::atomic<std::uint64_t> ops_{0}, commits_{0}, failed_batches_{0}, largest_batch_{0};

    // Background checkpoints. Lock: ckpt_mu_.
    int ckpt_woken_at_ = 0;  ///< WAL frames when the checkpointer was last woken (writer thread only)
    sqlite3* ckpt_db_ = nullptr;  ///< the checkpointer's connection (null: SQLite's auto-checkpoint)
    std::thread checkpointer_;
    std::mutex ckpt_mu_;
    std::condition_variable ckpt_cv_;
    bool ckpt_wanted_ = false;
    bool ckpt_running_ = false;  ///< a checkpoint is under way (the writer's catch-up waits for it and ckpt_wanted_)
    bool ckpt_stopping_ = false;
};

} // namespace broker::store::detail
