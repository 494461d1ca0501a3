// The WAL write buffer VFS (broker/src/store/wal_write_buffer.hpp) under SQLite itself: a second
// connection on the default VFS sees every commit as soon as it returns; transactions larger
// than the buffer, cache spills mid-transaction (the writer reads its own frames back) and
// rollbacks leave the database exactly as without the buffer; and nothing is lost when the
// writing process dies right after its commits (no close, no checkpoint).
#include "../../../broker/src/store/wal_write_buffer.hpp"
#include "store_test_util.hpp"

#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

namespace {

using broker::store::detail::wal_buffer_bytes;
using broker::store::detail::wal_write_buffer_vfs;

/// The 4 KB body of row i: every row's differs from its neighbours'.
std::string row_body(int i) {
    std::string body(4096, static_cast<char>('a' + i % 26));
    body += std::to_string(i);
    return body;
}

struct db {
    sqlite3* h = nullptr;
    db(const std::string& path, const char* vfs) {
        REQUIRE(sqlite3_open_v2(path.c_str(), &h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs) == SQLITE_OK);
    }
    ~db() { sqlite3_close_v2(h); }
    void exec(const std::string& sql) {
        char* err = nullptr;
        int rc = sqlite3_exec(h, sql.c_str(), nullptr, nullptr, &err);
        INFO(sql << ": " << (err ? err : ""));
        sqlite3_free(err);
        REQUIRE(rc == SQLITE_OK);
    }
    sqlite3_int64 scalar(const std::string& sql) {
        sqlite3_stmt* s = nullptr;
        REQUIRE(sqlite3_prepare_v2(h, sql.c_str(), -1, &s, nullptr) == SQLITE_OK);
        REQUIRE(sqlite3_step(s) == SQLITE_ROW);
        sqlite3_int64 v = sqlite3_column_int64(s, 0);
        sqlite3_finalize(s);
        return v;
    }
    /// Inserts rows [from, to) with 4 KB bodies that depend on the row number.
    void insert(int from, int to) {
        sqlite3_stmt* s = nullptr;
        REQUIRE(sqlite3_prepare_v2(h, "INSERT INTO t(n, body) VALUES (?1, ?2)", -1, &s, nullptr) == SQLITE_OK);
        for (int i = from; i < to; ++i) {
            const std::string body = row_body(i);
            sqlite3_bind_int(s, 1, i);
            sqlite3_bind_blob(s, 2, body.data(), static_cast<int>(body.size()), SQLITE_TRANSIENT);
            REQUIRE(sqlite3_step(s) == SQLITE_DONE);
            sqlite3_reset(s);
        }
        sqlite3_finalize(s);
    }
};

/// Every row 0..n-1 is there with the body insert() gave it.
void check_rows(db& d, int n) {
    REQUIRE(d.scalar("SELECT count(*) FROM t") == n);
    sqlite3_stmt* s = nullptr;
    REQUIRE(sqlite3_prepare_v2(d.h, "SELECT n, body FROM t ORDER BY n", -1, &s, nullptr) == SQLITE_OK);
    int expect = 0, bad = 0;
    while (sqlite3_step(s) == SQLITE_ROW) {
        int i = sqlite3_column_int(s, 0);
        std::string body(static_cast<const char*>(sqlite3_column_blob(s, 1)),
                         static_cast<std::size_t>(sqlite3_column_bytes(s, 1)));
        if (i != expect || body != row_body(i))
            ++bad;
        ++expect;
    }
    sqlite3_finalize(s);
    CHECK(bad == 0);
    CHECK(expect == n);
}

void setup_writer(db& w) {
    w.exec("PRAGMA journal_mode = WAL");
    w.exec("PRAGMA synchronous = FULL");
    w.exec("PRAGMA wal_autocheckpoint = 0");  // frames stay in the WAL: readers must read them there
    w.exec("CREATE TABLE IF NOT EXISTS t(n INTEGER PRIMARY KEY, body BLOB NOT NULL)");
}

/// A test's database: the VFS under test and a file in a temporary folder.
struct fresh_db {
    const char* vfs = wal_write_buffer_vfs();
    testing::temp_dir d;
    const std::string path = (d.path() / "t.db").string();
};

} // namespace

TEST_CASE_METHOD(fresh_db, "wal write buffer: each commit is visible to a default-VFS connection when it returns",
                 "[unit][store]") {
    REQUIRE(vfs != nullptr);
    db w(path, vfs);
    setup_writer(w);
    db r(path, nullptr);
    int n = 0;
    for (int round = 0; round < 20; ++round) {
        // 1, 2, 4 ... rows per transaction; the larger ones exceed the buffer several times over.
        int k = 1 << (round % 8);
        w.exec("BEGIN IMMEDIATE");
        w.insert(n, n + k);
        w.exec("COMMIT");
        n += k;
        check_rows(r, n);
    }
    CHECK(static_cast<long long>(n) * 4096 > 4LL * wal_buffer_bytes);
    CHECK(w.scalar("PRAGMA wal_checkpoint(PASSIVE)") == 0);  // the frames in the WAL are whole
    check_rows(r, n);
}

TEST_CASE_METHOD(fresh_db, "wal write buffer: cache spills, reads of own frames and rollbacks",
                 "[unit][store]") {
    REQUIRE(vfs != nullptr);
    db w(path, vfs);
    setup_writer(w);
    // A page cache of 8 pages: a transaction of 300 rows writes (spills) frames before its commit
    // and reads pages back from the WAL while still buffering.
    w.exec("PRAGMA cache_size = 8");
    w.exec("BEGIN IMMEDIATE");
    w.insert(0, 300);
    CHECK(w.scalar("SELECT count(*) FROM t") == 300);
    w.exec("COMMIT");
    db r(path, nullptr);
    check_rows(r, 300);

    w.exec("BEGIN IMMEDIATE");
    w.insert(300, 600);
    w.exec("ROLLBACK");
    check_rows(r, 300);
    check_rows(w, 300);

    w.exec("BEGIN IMMEDIATE");
    w.exec("UPDATE t SET body = body WHERE n % 7 = 0");  // rewrites pages spilled in this transaction
    w.insert(300, 400);
    w.exec("COMMIT");
    check_rows(r, 400);
}

TEST_CASE_METHOD(fresh_db, "wal write buffer: commits survive a process that dies right after them",
                 "[unit][store]") {
    REQUIRE(vfs != nullptr);
    {
        db w(path, vfs);
        setup_writer(w);
    }
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        // Child: plain SQLite calls only, and every path ends in _exit (no close: the WAL stays).
        sqlite3* h = nullptr;
        if (sqlite3_open_v2(path.c_str(), &h, SQLITE_OPEN_READWRITE, vfs) != SQLITE_OK)
            ::_exit(2);
        sqlite3_exec(h, "PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = 0", nullptr, nullptr, nullptr);
        sqlite3_stmt* s = nullptr;
        if (sqlite3_prepare_v2(h, "INSERT INTO t(n, body) VALUES (?1, ?2)", -1, &s, nullptr) != SQLITE_OK)
            ::_exit(3);
        for (int i = 0; i < 250; ++i) {
            if (i % 50 == 0 && sqlite3_exec(h, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK)
                ::_exit(4);
            const std::string body = row_body(i);
            sqlite3_bind_int(s, 1, i);
            sqlite3_bind_blob(s, 2, body.data(), static_cast<int>(body.size()), SQLITE_TRANSIENT);
            if (sqlite3_step(s) != SQLITE_DONE)
                ::_exit(5);
            sqlite3_reset(s);
            if (i % 50 == 49 && sqlite3_exec(h, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK)
                ::_exit(6);
        }
        ::_exit(0);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
    db r(path, nullptr);
    check_rows(r, 250);
}
