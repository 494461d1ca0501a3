// The body log (store/body_log.hpp): bodies in segment files, named by their rows; what reading
// answers when a file is damaged; bodies of older stores; retention deleting whole segments;
// two writers on one database taking turns; the synced mark, and what opening does with the
// bodies past it (a crash during the last commit).
#include "store_test_util.hpp"

#include "../../../broker/src/store/body_log.hpp"

#include <filesystem>
#include <fstream>
#include <random>

using namespace store_test;
using broker::result;
namespace fs = std::filesystem;
namespace bl = broker::store::detail;

namespace {

/// A routed message with a body of 'n' bytes derived from its id.
st::new_message sized_msg(const std::string& id, std::size_t n) {
    auto m = make_msg(id);
    m.raw.clear();
    for (std::size_t i = 0; m.raw.size() < n; ++i)
        m.raw += id + ":" + std::to_string(i) + ";";
    m.raw.resize(n);
    return m;
}

std::string body_of(st::store& s, const std::string& id) {
    auto b = s.thread_reader().body(id);
    if (!b)
        FAIL("body of " << id << ": " << b.error().where());
    if (!b->has_value())
        FAIL("no body for " << id);
    return **b;
}

std::vector<std::int64_t> segments(const st::options& o) { return bl::list_segments(bl::body_log_dir(o.path)); }

std::int64_t record_size(const std::string& id, std::size_t body) {
    return bl::record_fixed_header + static_cast<std::int64_t>(id.size() + body);
}

} // namespace

TEST_CASE("CRC-32C: the standard check value, and the CPU's instruction agrees with the table", "[unit][store]") {
    CHECK(bl::crc32c_portable("123456789") == 0xE3069283u);
    CHECK(bl::crc32c("123456789") == 0xE3069283u);
    CHECK(bl::crc32c("") == 0u);
    std::mt19937 rng(7);
    for (std::size_t n : {1u, 7u, 8u, 9u, 63u, 4096u, 4099u}) {
        std::string s(n, '\0');
        for (auto& c : s)
            c = static_cast<char>(rng());
        INFO(n);
        CHECK(bl::crc32c(s) == bl::crc32c_portable(s));
    }
}

TEST_CASE("bodies go to the body log, byte-exact, and not into the database", "[unit][store]") {
    testing::temp_dir d;
    auto o = options_in(d);
    {
        auto s = open_ok(o);
        auto a = sized_msg("a", 4096);
        a.raw[10] = '\0';
        insert(*s, a);
        insert(*s, sized_msg("b", 100));
        CHECK(body_of(*s, "a") == a.raw);
        CHECK(body_of(*s, "b") == sized_msg("b", 100).raw);
        s->close();
    }
    CHECK(raw_query(o.path, "SELECT count(*) FROM bodies") == "0\n");
    CHECK(raw_query(o.path, "SELECT id, body_seg, body_off, size FROM messages ORDER BY body_off") ==
          "a|1|" + std::to_string(record_size("a", 0)) + "|4096\nb|1|" +
              std::to_string(record_size("a", 4096) + record_size("b", 0)) + "|100\n");
    REQUIRE(segments(o) == std::vector<std::int64_t>{1});
    CHECK(fs::file_size(bl::segment_path(bl::body_log_dir(o.path), 1)) ==
          static_cast<std::uintmax_t>(record_size("a", 4096) + record_size("b", 100)));

    // Reopened: the next body goes after the last one named.
    auto s = open_ok(o);
    insert(*s, sized_msg("c", 300));
    for (auto [id, n] : {std::pair{"a", 4096}, {"b", 100}, {"c", 300}})
        if (std::string(id) != "a")
            CHECK(body_of(*s, id) == sized_msg(id, static_cast<std::size_t>(n)).raw);
    CHECK(body_of(*s, "a").size() == 4096);
    auto stats = s->thread_reader().stats();
    REQUIRE(stats);
    CHECK(stats->body_log_bytes == record_size("a", 4096) + record_size("b", 100) + record_size("c", 300));
}

TEST_CASE("a duplicate's body is taken back; a failed transaction's bodies are written over", "[unit][store]") {
    testing::temp_dir d;
    auto o = options_in(d);
    auto s = open_ok(o);
    insert(*s, sized_msg("first", 500));
    auto dup = sized_msg("again", 700);
    dup.facts.msg_id = "msg-first";  // same sender and MsgId
    auto out = insert(*s, dup);
    CHECK(out.duplicate);
    const std::string seg1 = bl::segment_path(bl::body_log_dir(o.path), 1);
    CHECK(fs::file_size(seg1) == static_cast<std::uintmax_t>(record_size("first", 500)));

    // A crash mid-transaction leaves a tail nothing names; the next transaction writes over it.
    {
        std::ofstream f(seg1, std::ios::binary | std::ios::app);
        f << std::string(3000, 'x');
    }
    // A commit that fails (injected, not an I/O error: the store stays open) names nothing either.
    concrete(*s).set_fault_hook([](std::string_view step) { return step == "commit" ? SQLITE_BUSY : SQLITE_OK; });
    auto failed = st::write_sync(*s, [](st::write_txn& t) -> result<void> {
        if (auto r = t.insert_message(sized_msg("lost", 400)); !r)
            return r.error();
        return {};
    });
    CHECK_FALSE(failed);
    concrete(*s).set_fault_hook({});
    insert(*s, sized_msg("second", 600));
    CHECK(raw_query(o.path, "SELECT body_off FROM messages WHERE id = 'second'") ==
          std::to_string(record_size("first", 500) + record_size("second", 0)) + "\n");
    CHECK(body_of(*s, "first") == sized_msg("first", 500).raw);
    CHECK(body_of(*s, "second") == sized_msg("second", 600).raw);
    auto lost = s->thread_reader().body("lost");
    REQUIRE(lost);
    CHECK_FALSE(lost->has_value());
}

TEST_CASE("segments close at their size; every body is read from its own", "[unit][store]") {
    testing::temp_dir d;
    auto o = options_in(d);
    o.body_segment_bytes = 8192;
    auto s = open_ok(o);
    // Five bodies of 3000 bytes: two fit a segment of 8192; one transaction spans segments too.
    insert(*s, sized_msg("m0", 3000));
    auto r = st::write_sync(*s, [](st::write_txn& t) -> result<void> {
        for (int i = 1; i < 5; ++i)
            if (auto x = t.insert_message(sized_msg("m" + std::to_string(i), 3000)); !x)
                return x.error();
        return {};
    });
    REQUIRE(r);
    CHECK(segments(o) == std::vector<std::int64_t>{1, 2, 3});
    CHECK(raw_query(o.path, "SELECT group_concat(body_seg) FROM (SELECT body_seg FROM messages ORDER BY id)") ==
          "1,1,2,2,3\n");
    for (int i = 0; i < 5; ++i)
        CHECK(body_of(*s, "m" + std::to_string(i)) == sized_msg("m" + std::to_string(i), 3000).raw);
}

TEST_CASE("a damaged body log is reported as store.corrupt, naming the file", "[unit][store]") {
    testing::temp_dir d;
    auto o = options_in(d);
    auto s = open_ok(o);
    insert(*s, sized_msg("one", 1000));
    insert(*s, sized_msg("two", 1000));
    auto& rd = s->thread_reader();
    const std::string seg = bl::segment_path(bl::body_log_dir(o.path), 1);
    auto expect_corrupt = [&](const std::string& id, const std::string& words) {
        auto b = rd.body(id);
        REQUIRE_FALSE(b);
        CHECK(b.error().code == "store.corrupt");
        CHECK(b.error().message.find(words) != std::string::npos);
        CHECK(b.error().message.find(seg) != std::string::npos);
    };
    SECTION("a flipped byte fails the CRC") {
        {
            std::fstream f(seg, std::ios::binary | std::ios::in | std::ios::out);
            f.seekp(record_size("one", 0) + 10);
            f.put('#');
        }
        expect_corrupt("one", "fails its CRC");
        CHECK(body_of(*s, "two") == sized_msg("two", 1000).raw);
    }
    SECTION("a row that points at another message's record") {
        raw_query(o.path, "UPDATE messages SET body_off = (SELECT body_off FROM messages WHERE id = 'two')"
                          " WHERE id = 'one'");
        expect_corrupt("one", "not where its row says");
    }
    SECTION("a cut-short file") {
        fs::resize_file(seg, static_cast<std::uintmax_t>(record_size("one", 1000) + 20));
        expect_corrupt("two", "cut short");
    }
    SECTION("a missing file") {
        fs::remove(seg);
        auto b = rd.body("one");
        REQUIRE_FALSE(b);
        CHECK(b.error().code == "store.corrupt");
        CHECK(b.error().message.find("missing") != std::string::npos);
    }
}

TEST_CASE("bodies stored in the database stay readable beside the body log", "[unit][store]") {
    testing::temp_dir d;
    auto o = options_in(d);
    o.body_log = false;
    {
        auto s = open_ok(o);
        insert(*s, sized_msg("old", 2000));
        s->close();
    }
    CHECK(raw_query(o.path, "SELECT count(*) FROM bodies") == "1\n");
    CHECK(segments(o).empty());
    o.body_log = true;
    auto s = open_ok(o);
    insert(*s, sized_msg("new", 2000));
    CHECK(raw_query(o.path, "SELECT id FROM messages WHERE body_seg IS NULL") == "old\n");
    CHECK(body_of(*s, "old") == sized_msg("old", 2000).raw);
    CHECK(body_of(*s, "new") == sized_msg("new", 2000).raw);
}

TEST_CASE("retention deletes a segment once no message in it is left", "[unit][store]") {
    testing::temp_dir d;
    auto o = options_in(d);
    o.body_segment_bytes = 4096;  // one 3000-byte body per segment
    auto s = open_ok(o);
    for (int i = 0; i < 6; ++i) {
        auto m = sized_msg("r" + std::to_string(i), 3000);
        if (i != 2) {  // r2 stays on its way, so retention keeps it
            m.state = st::state::delivered;
            m.initial_states = {st::state::received, st::state::validated, st::state::routed, st::state::delivered};
        }
        insert(*s, m);
    }
    REQUIRE(segments(o) == std::vector<std::int64_t>{1, 2, 3, 4, 5, 6});
    auto pruned = [&](int limit) {
        int n = -1;
        auto r = st::write_sync(*s, [&](st::write_txn& t) -> result<void> {
            auto x = t.prune("demo-rule", st::now_ms() + 1000, limit);
            if (!x)
                return x.error();
            n = *x;
            return {};
        });
        REQUIRE(r);
        return n;
    };
    CHECK(pruned(2) == 2);  // r0, r1
    CHECK(segments(o) == std::vector<std::int64_t>{3, 4, 5, 6});
    CHECK(pruned(10) == 3);  // r3, r4, r5
    CHECK(segments(o) == std::vector<std::int64_t>{3});
    CHECK(body_of(*s, "r2") == sized_msg("r2", 3000).raw);
    // Not in segment 4: the synced mark is in segment 6 (r5's end), and nothing is written below it.
    insert(*s, sized_msg("after", 3000));
    CHECK(raw_query(o.path, "SELECT body_seg FROM messages WHERE id = 'after'") == "7\n");
    CHECK(body_of(*s, "after") == sized_msg("after", 3000).raw);
}

TEST_CASE("two stores writing one database (two processes) take turns in the body log", "[unit][store]") {
    testing::temp_dir d;
    auto o = options_in(d);
    auto s1 = open_ok(o);
    auto s2 = open_ok(o);
    for (int i = 0; i < 20; ++i)
        insert(i % 3 ? *s1 : *s2, sized_msg("t" + std::to_string(i), 100 + static_cast<std::size_t>(i) * 37));
    for (int i = 0; i < 20; ++i)
        CHECK(body_of(i % 2 ? *s1 : *s2, "t" + std::to_string(i)) ==
              sized_msg("t" + std::to_string(i), 100 + static_cast<std::size_t>(i) * 37).raw);
}

TEST_CASE("a body log that cannot be written fails the store like a disk error; nothing is acknowledged",
          "[unit][store]") {
    testing::temp_dir d;
    auto o = options_in(d);
    auto s = open_ok(o);
    insert(*s, sized_msg("before", 200));
    s->close();
    // The segment folder replaced by a file: opening a segment fails.
    fs::remove_all(bl::body_log_dir(o.path));
    { std::ofstream(bl::body_log_dir(o.path)) << "not a folder"; }
    s = open_ok(o);
    auto r = st::write_sync(*s, [](st::write_txn& t) -> result<void> {
        if (auto x = t.insert_message(sized_msg("after", 200)); !x)
            return x.error();
        return {};
    });
    REQUIRE_FALSE(r);
    CHECK(r.error().code == "store.io");
    CHECK(r.error().message.find(bl::body_log_dir(o.path)) != std::string::npos);
    // Sticky, as for SQLite's own I/O errors: later writes are refused until the store is reopened.
    auto again = st::write_sync(*s, [](st::write_txn&) -> result<void> { return {}; });
    REQUIRE_FALSE(again);
    CHECK(again.error().code == "store.failed");
    auto none = s->thread_reader().get("after");
    REQUIRE(none);
    CHECK_FALSE(none->has_value());
}

namespace {

/// Four messages k0..k3 of 1000 bytes, one transaction each, then a clean close.
void four_messages(const st::options& o) {
    auto s = open_ok(o);
    for (int i = 0; i < 4; ++i)
        insert(*s, sized_msg("k" + std::to_string(i), 1000));
    s->close();
}

/// The end of the n-th of four_messages' records (all the same size), as the synced mark's row says it.
std::string mark_after(int n) { return "1|" + std::to_string(n * record_size("k0", 1000)) + "\n"; }

const char* const mark_sql = "SELECT seg, end_off FROM body_log_synced";

} // namespace

TEST_CASE("the synced mark follows the commits; a clean close leaves it past every body", "[unit][store]") {
    testing::temp_dir d;
    auto o = options_in(d);
    auto s = open_ok(o);
    CHECK(raw_query(o.path, mark_sql) == "0|0\n");
    insert(*s, sized_msg("k0", 1000));
    insert(*s, sized_msg("k1", 1000));
    // k1's commit moved the mark past k0 (synced before k0 was acknowledged); k1's own is still to come.
    CHECK(raw_query(o.path, mark_sql) == mark_after(1));
    s->close();
    CHECK(raw_query(o.path, mark_sql) == mark_after(2));
    // A body damaged below the mark is not taken for a lost commit: the message stays, and
    // reading it says what is wrong.
    {
        std::fstream f(bl::segment_path(bl::body_log_dir(o.path), 1), std::ios::binary | std::ios::in | std::ios::out);
        f.seekp(-1, std::ios::end);
        f.put('#');
    }
    s = open_ok(o);
    CHECK(raw_query(o.path, "SELECT count(*) FROM messages") == "2\n");
    auto b = s->thread_reader().body("k1");
    REQUIRE_FALSE(b);
    CHECK(b.error().code == "store.corrupt");
}

TEST_CASE("opening removes the messages past the synced mark whose bodies never reached the disk",
          "[unit][store]") {
    testing::temp_dir d;
    auto o = options_in(d);
    four_messages(o);
    // As after a power loss during the commit of k2 and k3: their rows are on the disk, the mark
    // is still past k1, and the end of their bodies' write is not (k2's record zeroed, the file
    // cut inside k3's).
    raw_query(o.path, "UPDATE body_log_synced SET end_off = " + std::to_string(2 * record_size("k0", 1000)));
    const std::string seg = bl::segment_path(bl::body_log_dir(o.path), 1);
    fs::resize_file(seg, static_cast<std::uintmax_t>(3 * record_size("k0", 1000) + 100));
    {
        std::fstream f(seg, std::ios::binary | std::ios::in | std::ios::out);
        f.seekp(2 * record_size("k0", 1000));
        f << std::string(static_cast<std::size_t>(record_size("k0", 1000)), '\0');
    }
    auto s = open_ok(o);
    CHECK(raw_query(o.path, "SELECT group_concat(id) FROM (SELECT id FROM messages ORDER BY id)") == "k0,k1\n");
    CHECK(raw_query(o.path, "SELECT count(*) FROM transitions WHERE message_id IN ('k2', 'k3')") == "0\n");
    CHECK(raw_query(o.path, mark_sql) == mark_after(2));
    CHECK(body_of(*s, "k0") == sized_msg("k0", 1000).raw);
    CHECK(body_of(*s, "k1") == sized_msg("k1", 1000).raw);
    // The sender's retry of k2 is a new message again, and its body goes where k2's was.
    insert(*s, sized_msg("k2", 1000));
    CHECK(raw_query(o.path, "SELECT body_seg, body_off FROM messages WHERE id = 'k2'") ==
          "1|" + std::to_string(2 * record_size("k0", 1000) + record_size("k2", 0)) + "\n");
    CHECK(body_of(*s, "k2") == sized_msg("k2", 1000).raw);
}

TEST_CASE("bodies past the synced mark that are whole are kept, and the mark moves past them", "[unit][store]") {
    testing::temp_dir d;
    auto o = options_in(d);
    four_messages(o);
    // A writer stopped (killed) before its last mark moved: everything it wrote is in the files.
    raw_query(o.path, "UPDATE body_log_synced SET end_off = " + std::to_string(record_size("k0", 1000)));
    auto s = open_ok(o);
    CHECK(raw_query(o.path, "SELECT count(*) FROM messages") == "4\n");
    CHECK(raw_query(o.path, mark_sql) == mark_after(4));
    for (int i = 0; i < 4; ++i)
        CHECK(body_of(*s, "k" + std::to_string(i)) == sized_msg("k" + std::to_string(i), 1000).raw);
}

TEST_CASE("nothing is written below the synced mark, even when the newest messages were deleted", "[unit][store]") {
    testing::temp_dir d;
    auto o = options_in(d);
    four_messages(o);
    raw_query(o.path, "DELETE FROM messages WHERE id IN ('k2', 'k3')");
    auto s = open_ok(o);
    insert(*s, sized_msg("k4", 1000));
    CHECK(raw_query(o.path, "SELECT body_seg, body_off FROM messages WHERE id = 'k4'") ==
          "2|" + std::to_string(record_size("k4", 0)) + "\n");
    CHECK(body_of(*s, "k4") == sized_msg("k4", 1000).raw);
}

TEST_CASE("a store of schema 8 gets its synced mark past every body it has", "[unit][store]") {
    testing::temp_dir d;
    auto o = options_in(d);
    four_messages(o);
    raw_query(o.path, "DROP TABLE body_log_synced; DELETE FROM schema_version WHERE version >= 9;");
    auto s = open_ok(o);
    CHECK(raw_query(o.path, mark_sql) == mark_after(4));
    CHECK(body_of(*s, "k3") == sized_msg("k3", 1000).raw);
}
