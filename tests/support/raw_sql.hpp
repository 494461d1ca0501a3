// Run SQL on a database file with a connection of its own (WAL: alongside a running store's), for
// tests that look at or shape what is on disk. Header-only: the tests that use it link SQLite.
#pragma once

#include <catch2/catch.hpp>

#include <sqlite3.h>

#include <string>

namespace testing {

/// Rows as "a|b|c\n" lines (NULL as ""); fails the test when the SQL fails.
inline std::string raw_sql(const std::string& path, const std::string& sql) {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    std::string out;
    char* err = nullptr;
    int rc = sqlite3_exec(
        db, sql.c_str(),
        [](void* p, int n, char** v, char**) {
            auto* o = static_cast<std::string*>(p);
            for (int i = 0; i < n; ++i)
                *o += (i ? "|" : "") + std::string(v[i] ? v[i] : "");
            *o += "\n";
            return 0;
        },
        &out, &err);
    std::string e = err ? err : "";
    sqlite3_free(err);
    sqlite3_close(db);
    INFO(sql << ": " << e);
    REQUIRE(rc == SQLITE_OK);
    return out;
}

} // namespace testing
