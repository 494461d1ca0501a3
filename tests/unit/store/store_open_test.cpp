// Opening, migrating, reopening and refusing databases.
#include "store_test_util.hpp"
#include "../../../broker/src/store/schema.hpp"

#include <sqlite3.h>

#include <filesystem>
#include <fstream>
#include <iterator>

using namespace store_test;
namespace fs = std::filesystem;

TEST_CASE("open creates the folder, the file and the schema", "[unit][store]") {
    testing::temp_dir d;
    auto o = options_in(d, "a/b/c/broker.db");
    REQUIRE_FALSE(fs::exists(d.path() / "a"));
    auto s = open_ok(o);
    CHECK(fs::exists(o.path));
    CHECK(s->schema_version() == broker::store::detail::latest_schema_version());
    CHECK(s->queue_depth() == 0);
    auto n = s->thread_reader().count_messages();
    REQUIRE(n);
    CHECK(*n == 0);
    s->close();

    CHECK(raw_query(o.path, "PRAGMA journal_mode") == "wal\n");
    std::string versions;
    for (int v = 1; v <= broker::store::detail::latest_schema_version(); ++v)
        versions += (v > 1 ? "," : "") + std::to_string(v);
    CHECK(raw_query(o.path, "SELECT group_concat(version) FROM schema_version") == versions + "\n");
    auto tables = raw_query(o.path, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name");
    // The core's tables (features add theirs in later migrations, e.g. issue 6's).
    for (const char* t : {"bodies\n", "messages\n", "parties\n", "schema_version\n", "transitions\n"})
        CHECK(tables.find(t) != std::string::npos);
    auto indexes = raw_query(o.path, "SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE "
                                     "'sqlite_autoindex%' ORDER BY name");
    CHECK(indexes.find("ux_messages_msg_id") != std::string::npos);
    CHECK(indexes.find("ix_messages_due") != std::string::npos);
    CHECK(indexes.find("ix_messages_receiver") != std::string::npos);
    CHECK(indexes.find("ix_messages_receiver_state") == std::string::npos);  // dropped by migration 6
}

TEST_CASE("reopen keeps data and schema_version", "[unit][store]") {
    testing::temp_dir d;
    auto o = options_in(d);
    {
        auto s = open_ok(o);
        insert(*s, make_msg("m1"));
        s->close();
    }
    auto s = open_ok(o);
    CHECK(s->schema_version() == broker::store::detail::latest_schema_version());
    CHECK(get_row(*s, "m1").msg_id == "msg-m1");
    s->close();
    // Migrations ran once: one row per version.
    CHECK(raw_query(o.path, "SELECT count(*) FROM schema_version") ==
          std::to_string(broker::store::detail::latest_schema_version()) + "\n");
}

TEST_CASE("a database with a newer schema_version is refused", "[unit][store]") {
    testing::temp_dir d;
    auto o = options_in(d);
    open_ok(o)->close();
    raw_query(o.path, "INSERT INTO schema_version(version, applied_at) VALUES(999, 0)");
    auto s = broker::store::open(o);
    REQUIRE_FALSE(s);
    CHECK(s.error().code == "store.schema");
    CHECK_THAT(s.error().message, Catch::Contains("999") && Catch::Contains("newer") && Catch::Contains("(" + std::to_string(broker::store::detail::latest_schema_version()) + ")"));
}

TEST_CASE("a file that is not a database is refused with an error", "[unit][store]") {
    testing::temp_dir d;
    auto o = options_in(d, "junk.db");
    {
        std::ofstream f(o.path, std::ios::binary);
        f << std::string(8192, 'x');
    }
    auto s = broker::store::open(o);
    REQUIRE_FALSE(s);
    CHECK(s.error().code == "store.io");
    CHECK_THAT(s.error().message, Catch::Contains("not a database"));
}

TEST_CASE("bad options are refused", "[unit][store]") {
    testing::temp_dir d;
    auto o = options_in(d);
    o.synchronous = "SOMETIMES";
    auto s = broker::store::open(o);
    REQUIRE_FALSE(s);
    CHECK(s.error().code == "store.config");

    o.synchronous = "normal";  // case-insensitive
    auto ok = broker::store::open(o);
    REQUIRE(ok);
    (*ok)->close();
    o.synchronous = "FULL";
    o.max_batch = 0;
    auto b = broker::store::open(o);
    REQUIRE_FALSE(b);
    CHECK(b.error().code == "store.config");
}

TEST_CASE("a store of schema 5 is upgraded in place: messages kept, listed by state from the new indexes",
          "[unit][store]") {
    testing::temp_dir d;
    auto o = options_in(d);
    const char* states[] = {"routed", "failed", "waiting", "delivered", "read", "apprec-ok", "dead", "unroutable"};
    {
        o.body_log = false;  // bodies where schema 5 kept them
        auto s = open_ok(o);
        for (int i = 0; i < 16; ++i)
            insert(*s, make_msg("m" + std::to_string(i), "8093240", "", i % 2 ? "8142519" : "8142520"));
        s->close();
    }
    // Back to schema 5 as a release with it left it: its two indexes, no record of migrations 6 to 9.
    raw_query(o.path, "DROP TABLE body_log_synced; DROP INDEX ix_messages_body; ALTER TABLE messages DROP COLUMN body_seg;"
                      "ALTER TABLE messages DROP COLUMN body_off; ALTER TABLE messages DROP COLUMN body_crc;"
                      "DROP INDEX ix_messages_receiver; DROP INDEX ix_messages_state;"
                      "CREATE INDEX ix_messages_receiver_state ON messages(receiver_her, state, received_at)"
                      " WHERE receiver_her IS NOT NULL;"
                      "CREATE INDEX ix_messages_state ON messages(state, received_at);"
                      "DELETE FROM schema_version WHERE version >= 6;");
    for (int i = 0; i < 16; ++i)
        raw_query(o.path, "UPDATE messages SET state = '" + std::string(states[i % 8]) + "' WHERE id = 'm" +
                              std::to_string(i) + "'");

    auto s = open_ok(o);
    CHECK(s->schema_version() == broker::store::detail::latest_schema_version());
    auto indexes = raw_query(o.path, "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE "
                                     "'ix_messages_%' ORDER BY name");
    CHECK(indexes.find("ix_messages_receiver\n") != std::string::npos);
    CHECK(indexes.find("ix_messages_receiver_state") == std::string::npos);
    // Only the rare states are in the partial state index.
    CHECK(raw_query(o.path, "SELECT count(*) FROM messages INDEXED BY ix_messages_state WHERE state <> 'routed'"
                            " AND state <> 'failed' AND state <> 'waiting' AND state <> 'delivered'"
                            " AND state <> 'read' AND state <> 'apprec-ok'") == "4\n");
    auto& rd = s->thread_reader();
    for (std::size_t k = 0; k < std::size(states); ++k) {
        const std::string state = states[k];
        broker::store::message_filter f;
        f.state = state;
        auto rows = rd.list(f);
        REQUIRE(rows);
        INFO(state);
        REQUIRE(rows->size() == 2);  // m<k> and m<k+8>
        for (auto& r : *rows)
            CHECK(r.state == state);
        f.receivers = {"8142519"};  // the odd ids: the receiver's index, filtered by state
        auto mine = rd.list(f);
        REQUIRE(mine);
        CHECK(mine->size() == (k % 2 ? 2u : 0u));
        for (auto& r : *mine) {
            CHECK(r.state == state);
            CHECK(r.receiver_her == "8142519");
        }
    }
    CHECK(rd.list({})->size() == 16);
    s->close();
}
