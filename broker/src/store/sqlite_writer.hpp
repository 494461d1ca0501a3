// The write side: the single writer connection, its prepared statements, the transaction-control
// steps the writer loop uses, and write_txn (what an operation may do inside a group transaction).
#pragma once

#include "broker/store.hpp"
#include "store/body_log.hpp"
#include "store/sqlite_util.hpp"

#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace broker::store::detail {

/// Ownership: owned by sqlite_store; used only by the opening thread until the writer thread
/// starts, then only by the writer thread (which closes it when it stops).
class writer_conn final : public write_txn {
public:
    ~writer_conn() override;
    writer_conn(const writer_conn&) = delete;
    writer_conn& operator=(const writer_conn&) = delete;

    /// Create the parent folder, open (creating) the database, set WAL/synchronous/foreign_keys,
    /// migrate, prepare every statement. Errors: store.config (bad option), store.open (folder),
    /// store.schema (database newer than this binary), store.io/store.sql from SQLite.
    static result<std::unique_ptr<writer_conn>> open(const options& o);

    int schema_version() const { return version_; }

    // Transaction control for the writer loop. Each returns the SQLite result code (SQLITE_OK on
    // success) and notes an I/O-class failure.
    int begin();
    int commit();
    int savepoint();
    int release();
    int rollback_to();
    /// Roll back the open transaction, if any. Best effort.
    void rollback();
    /// True while a transaction is open (false if SQLite rolled it back on its own).
    bool in_txn() const;
    /// The first I/O-class failure seen (the store must go into its failed state), if any.
    const std::optional<error>& io_failure() const { return io_failure_; }
    /// The connection, for sqlite_store's WAL hook (background checkpoints); writer thread only.
    sqlite3* handle() const { return db_; }
    /// Remember an I/O-class failure seen outside these calls (e.g. an injected fault).
    void note_io_failure(const error& e);
    /// Make an error for 'rc', noting it when it is I/O-class.
    error fail(int rc, std::string_view what);

    void close();

    /// After a committed transaction: when it pruned messages, delete the body log segments no
    /// row names any more. A failure leaves the files for the next prune's sweep.
    void after_commit();

    // write_txn
    result<insert_outcome> insert_message(const new_message& m) override;
    result<void> set_state(std::string_view id, std::string_view state, std::string_view detail) override;
    result<bool> set_state_if(std::string_view id, std::string_view state,
                              std::initializer_list<std::string_view> from, std::string_view detail) override;
    result<void> add_transition(std::string_view id, std::string_view state, std::string_view detail) override;
    result<void> set_delivery(std::string_view id, int attempts, millis next_attempt_at,
                              std::string_view last_error) override;
    result<void> set_delivered(std::string_view id, std::string_view transport_state, int attempts) override;
    result<bool> set_delivered_state(std::string_view id, std::string_view transport_state, int attempts,
                                     std::initializer_list<std::string_view> from, std::string_view detail) override;
    result<void> set_read(std::string_view id, std::string_view her_id) override;
    result<void> set_apprec(std::string_view original_id, std::string_view apprec_id, std::string_view status,
                            std::string_view errors_json) override;
    result<void> set_route(std::string_view id, std::string_view rule, std::string_view adapter) override;
    result<void> upsert_party(const party& p) override;
    result<void> delete_all_parties() override;
    result<int> prune(std::string_view rule, millis before, int limit) override;
    result<std::int64_t> sql_exec(std::string_view sql, const std::vector<sql_value>& params) override;

private:
    writer_conn() = default;
    result<void> prepare_all();
    /// Step a statement that returns no rows; SQLITE_DONE on success.
    int step(const statement& s);
    int control(const statement& s);
    /// Step an UPDATE of one message by id (bound as ?1); store.not-found when no row changed.
    result<void> update_one(const statement& s, std::string_view id, std::string_view what);
    result<void> insert_transition(std::string_view id, std::string_view state, millis at,
                                   std::string_view detail);
    /// Step a guarded UPDATE that moves message 'id' to 'state' (bound, not reset: the caller's
    /// reset_guard does that); when it changed the row, record the transition. Returns whether it did.
    result<bool> step_guarded(sqlite3_stmt* s, std::string_view id, std::string_view state, millis now,
                              std::string_view detail, std::string_view what);

    /// At open, under the write lock: every body past the synced mark is read back (they are the
    /// last transactions', whose sync a crash may have cut short); a message whose body is missing
    /// or damaged there was never acknowledged and is removed, with a warning naming its id; the
    /// others' segments are synced ('sync') and the mark moves past them.
    result<void> check_body_log_tail(bool sync);
    /// The body log's synced mark as the database has it (table body_log_synced, schema 9).
    result<body_log_pos> read_synced_mark();
    /// Move the mark forward to 'at' in the open transaction (never back). SQLITE_OK or the error.
    int write_synced_mark(body_log_pos at);
    /// Position the body log for this transaction (first append): the highest body the database names.
    result<void> position_body_log();
    /// In a transaction of its own (holding SQLite's write lock, so no writer of any process is
    /// appending): delete the segment files no row names, below the highest one named.
    result<void> sweep_segments();

    sqlite3* db_ = nullptr;
    int version_ = 0;
    std::unique_ptr<body_log_writer> body_log_;  ///< null: bodies go to the bodies table
    std::string body_dir_;            ///< the body log's folder (also read with body_log_ off)
    bool sweep_wanted_ = false;       ///< a prune deleted messages: sweep after the commit
    body_log_pos synced_;             ///< this writer's committed bodies are synced up to here
    body_log_pos marked_;             ///< the synced mark as last read or written
    std::optional<error> io_failure_;

    statement begin_, commit_, rollback_, savepoint_, release_, rollback_to_;
    statement insert_, duplicate_, body_, transition_, body_end_, next_segment_, synced_get_, synced_set_;
    statement set_state_, set_state_from_, current_state_, touch_, delivery_, delivered_, delivered_from_;
    statement read_, apprec_, route_;
    statement party_, delete_parties_;
    statement prune_;
    /// Feature statements (sql_exec), prepared on first use, by SQL text.
    std::unordered_map<std::string, statement> feature_;
};

} // namespace broker::store::detail
