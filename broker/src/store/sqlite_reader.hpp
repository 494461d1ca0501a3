// The read side: one SQLite connection per (store, thread), opened query_only, with its statements
// prepared once. In WAL mode readers never block the writer and see the last commit as of the
// start of each statement.
#pragma once

#include "broker/store.hpp"
#include "store/sqlite_util.hpp"

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace broker::store::detail {

/// Ownership: shared by the thread that uses it (thread-local map) and, weakly, by its store,
/// which closes it on store::close(). After close() every call answers store.closed.
/// Runs on: its own thread; close() on any thread. 'mu_' makes the two safe together.
class sqlite_reader final : public reader {
public:
    sqlite_reader() = default;
    ~sqlite_reader() override;
    sqlite_reader(const sqlite_reader&) = delete;
    sqlite_reader& operator=(const sqlite_reader&) = delete;

    /// Open the connection and prepare the statements. On failure the reader stays closed and
    /// every call answers the open error.
    void open(const std::string& path);
    /// Finalize the statements and close the connection. Idempotent.
    void close();
    bool is_closed() const;

    result<std::optional<message_row>> get(std::string_view id) override;
    result<std::optional<std::string>> body(std::string_view id) override;
    result<std::vector<transition_row>> transitions(std::string_view id) override;
    result<std::optional<message_row>> find_by_msg_id(std::string_view sender_her, std::string_view msg_id) override;
    result<std::vector<message_row>> find_all_by_msg_id(std::string_view msg_id) override;
    result<std::vector<message_row>> list(const message_filter& f) override;
    result<std::vector<message_row>> due_for_delivery(millis now, int limit) override;
    result<std::optional<party>> get_party(std::string_view her_id) override;
    result<std::vector<party>> all_parties() override;
    result<std::int64_t> count_messages() override;
    result<store_stats> stats() override;
    result<std::vector<pending_count>> pending() override;
    result<std::vector<std::string>> stored_rules() override;
    result<std::vector<sql_row>> sql_query(std::string_view sql, const std::vector<sql_value>& params) override;

private:
    result<void> prepare_all();
    error closed_error() const;
    /// Step 's' to the end, appending each row with 'read'. Caller holds mu_ and a reset_guard.
    template <class T, class Read>
    result<void> collect(const statement& s, std::vector<T>& out, Read read);
    result<std::optional<message_row>> one_row(const statement& s);

    mutable std::mutex mu_;
    sqlite3* db_ = nullptr;
    std::string body_dir_;  ///< the body log's folder (body_log.hpp)
    error open_error_{"store.closed", "the store is closed"};

    statement get_, body_, transitions_, by_sender_msg_id_, by_msg_id_, due_, party_, parties_, count_;
    statement size_, oldest_, pending_, rules_;  // operator queries (stats, pending, stored_rules)
    /// list() statements by filter shape (which fields are set, number of receivers).
    std::unordered_map<std::uint64_t, statement> list_cache_;
    /// Feature queries (sql_query), prepared on first use, by SQL text.
    std::unordered_map<std::string, statement> feature_;
};

} // namespace broker::store::detail
