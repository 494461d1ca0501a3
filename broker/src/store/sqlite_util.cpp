// SQLite helpers: statement ownership, error mapping.
#include "store/sqlite_util.hpp"

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

result<void> exec(sqlite3* db, const char* sql, std::string_view what) {
    int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK)
        return sql_error(db, rc, what);
    return {};
}

} // namespace broker::store::detail
