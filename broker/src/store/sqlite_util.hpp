// Thin helpers over the SQLite C API used by the store: an owning prepared statement, a reset
// guard, NULL-aware binding and column reading, and the mapping of SQLite result codes to
// broker::error values.
//
// Conventions (they are the schema's, see schema.cpp):
//   - an empty string is stored as NULL and read back as "" (so partial indexes skip absent keys);
//   - a body is a BLOB, never NULL, possibly empty;
//   - a time of 0 ms means "absent" for read_at/delivered_at and is stored as NULL.
#pragma once

#include "broker/error.hpp"
#include "broker/store.hpp"

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace broker::store::detail {

/// True for the result codes after which SQLite's cached state (or the file) may be inconsistent:
/// the store goes into its sticky failed state on these.
bool is_io_class(int rc);

/// An error value for a failed SQLite call. 'what' names the operation (never content).
/// Codes: store.io (I/O class), store.constraint, store.locked (BUSY/LOCKED), store.sql (others).
error sql_error(sqlite3* db, int rc, std::string_view what);

/// An owning prepared statement. Prepared once (SQLITE_PREPARE_PERSISTENT), reset after each use.
class statement {
public:
    statement() = default;
    ~statement();
    statement(statement&& o) noexcept : s_(o.s_) { o.s_ = nullptr; }
    statement& operator=(statement&& o) noexcept;
    statement(const statement&) = delete;
    statement& operator=(const statement&) = delete;

    /// Prepare 'sql' on 'db'. Error: store.sql / store.io.
    static result<statement> prepare(sqlite3* db, std::string_view sql);

    sqlite3_stmt* get() const { return s_; }
    explicit operator bool() const { return s_ != nullptr; }
    void finalize();

private:
    sqlite3_stmt* s_ = nullptr;
};

/// Resets (and clears the bindings of) a statement when it leaves scope, so a read statement never
/// keeps its WAL snapshot open and no statically bound pointer outlives the call.
class reset_guard {
public:
    explicit reset_guard(const statement& s) : s_(s.get()) {}
    ~reset_guard() {
        sqlite3_reset(s_);
        sqlite3_clear_bindings(s_);
    }
    reset_guard(const reset_guard&) = delete;
    reset_guard& operator=(const reset_guard&) = delete;

private:
    sqlite3_stmt* s_;
};

// Binding. Indexes are 1-based as in SQLite. Text and blobs are bound SQLITE_STATIC: the caller's
// data must outlive the step (it does: every use binds, steps and resets within one call).

/// Bind text; "" binds NULL.
inline int bind_opt(sqlite3_stmt* s, int i, std::string_view v) {
    if (v.empty())
        return sqlite3_bind_null(s, i);
    return sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
}
/// Bind text as is ("" stays "").
inline int bind_text(sqlite3_stmt* s, int i, std::string_view v) {
    return sqlite3_bind_text(s, i, v.empty() ? "" : v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
}
/// Bind bytes as a BLOB, never NULL (an empty body is a zero-length BLOB).
inline int bind_blob(sqlite3_stmt* s, int i, std::string_view v) {
    if (v.empty())
        return sqlite3_bind_zeroblob(s, i, 0);
    return sqlite3_bind_blob(s, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
}
inline int bind_int(sqlite3_stmt* s, int i, std::int64_t v) { return sqlite3_bind_int64(s, i, v); }
/// Bind an integer; 0 binds NULL (times that are absent).
inline int bind_opt_int(sqlite3_stmt* s, int i, std::int64_t v) {
    return v == 0 ? sqlite3_bind_null(s, i) : sqlite3_bind_int64(s, i, v);
}

/// Column as text; NULL reads "".
inline std::string col_text(sqlite3_stmt* s, int i) {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s, i));
    if (!p)
        return {};
    return std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(s, i)));
}
/// Column as bytes (BLOB read byte-exact); NULL reads "".
inline std::string col_blob(sqlite3_stmt* s, int i) {
    const void* p = sqlite3_column_blob(s, i);
    int n = sqlite3_column_bytes(s, i);
    if (!p || n <= 0)
        return {};
    return std::string(static_cast<const char*>(p), static_cast<std::size_t>(n));
}
/// Column as integer; NULL reads 0.
inline std::int64_t col_int(sqlite3_stmt* s, int i) { return sqlite3_column_int64(s, i); }

/// Bind feature-statement parameters as ?1, ?2, ... (text SQLITE_STATIC: 'params' must outlive
/// the step). Returns the first SQLite error code, SQLITE_OK otherwise.
int bind_values(sqlite3_stmt* s, const std::vector<sql_value>& params);
/// The current row of 's' as values (NULL, integer, or text for every other type).
sql_row read_values(sqlite3_stmt* s);

/// Run a statement-less SQL text (pragmas, DDL). Error: sql_error(db, rc, what).
result<void> exec(sqlite3* db, const char* sql, std::string_view what);

/// Process-wide SQLite settings, applied once before the first connection opens: memory
/// statistics off (with them on, every SQLite allocation takes one global mutex that the writer,
/// checkpointer and reader threads share; issue 3's profile). Nothing here reads them.
void configure_sqlite_once();

} // namespace broker::store::detail
