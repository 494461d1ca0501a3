// SQLite helpers: statement ownership, error mapping.
#include "store/sqlite_util.hpp"

#include <mutex>
#include <string>

namespace broker::store::detail {

bool is_io_class(int rc) {
    switch (rc & 0xff) {
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return true;
    default:
        return false;
    }
}

error sql_error(sqlite3* db, int rc, std::string_view what) {
    const char* code = "store.sql";
    switch (rc & 0xff) {
    case SQLITE_CONSTRAINT:
        code = "store.constraint";
        break;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        code = "store.locked";
        break;
    default:
        if (is_io_class(rc))
            code = "store.io";
        break;
    }
    // sqlite3_errmsg names tables, columns and constraints, never bound values: no patient data.
    std::string msg(what);
    msg += ": ";
    msg += (db && (sqlite3_extended_errcode(db) & 0xff) == (rc & 0xff)) ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    msg += " (sqlite ";
    msg += std::to_string(rc);
    msg += ")";
    return error(code, std::move(msg));
}

statement::~statement() { finalize(); }

statement& statement::operator=(statement&& o) noexcept {
    if (this != &o) {
        finalize();
        s_ = o.s_;
        o.s_ = nullptr;
    }
    return *this;
}

void statement::finalize() {
    if (s_) {
        sqlite3_finalize(s_);
        s_ = nullptr;
    }
}

result<statement> statement::prepare(sqlite3* db, std::string_view sql) {
    statement st;
    int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &st.s_,
                                nullptr);
    if (rc != SQLITE_OK)
        return sql_error(db, rc, "prepare");
    return st;
}

int bind_values(sqlite3_stmt* s, const std::vector<sql_value>& params) {
    for (std::size_t i = 0; i < params.size(); ++i) {
        const int at = static_cast<int>(i) + 1;
        int rc = SQLITE_OK;
        if (auto* n = std::get_if<std::int64_t>(&params[i]))
            rc = sqlite3_bind_int64(s, at, *n);
        else if (auto* t = std::get_if<std::string>(&params[i]))
            rc = bind_text(s, at, *t);
        else
            rc = sqlite3_bind_null(s, at);
        if (rc != SQLITE_OK)
            return rc;
    }
    return SQLITE_OK;
}

sql_row read_values(sqlite3_stmt* s) {
    sql_row row;
    const int n = sqlite3_column_count(s);
    row.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
        switch (sqlite3_column_type(s, i)) {
        case SQLITE_NULL: row.emplace_back(std::monostate{}); break;
        case SQLITE_INTEGER: row.emplace_back(col_int(s, i)); break;
        default: row.emplace_back(col_text(s, i)); break;
        }
    }
    return row;
}

result<void> exec(sqlite3* db, const char* sql, std::string_view what) {
    int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK)
        return sql_error(db, rc, what);
    return {};
}

void configure_sqlite_once() {
    static std::once_flag once;
    // SQLITE_MISUSE if something in the process already initialised SQLite: then it stays as is.
    std::call_once(once, [] { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); });
}

} // namespace broker::store::detail
