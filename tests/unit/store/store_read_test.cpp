// The read side: list filters, due_for_delivery, parties, readers per thread and per store.
#include "store_test_util.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <thread>

using namespace store_test;
using broker::result;

namespace {

std::vector<std::string> ids(const result<std::vector<broker::store::message_row>>& r) {
    REQUIRE(r);
    std::vector<std::string> out;
    for (auto& m : *r)
        out.push_back(m.id);
    return out;
}

using v = std::vector<std::string>;

/// Wait (a few ms at most) until the clock has passed 't', so the next insert gets a later time.
void pass_ms(broker::store::millis t) {
    while (broker::store::now_ms() <= t)
        std::this_thread::yield();
}

} // namespace

TEST_CASE("list filters, newest first, limit", "[unit][store]") {
    testing::temp_dir d;
    auto s = open_ok(options_in(d));
    // a: S1 -> R1, routed, conv C1
    auto a = make_msg("a", "S1", "M-a", "R1");
    a.facts.ref_to_conversation = "C1";
    // b: S2 -> R2, waiting, another type, conv C1
    auto b = make_msg("b", "S2", "M-b", "R2");
    b.facts.msg_type = "DIALOG_FORESPORSEL";
    b.state = "waiting";
    b.facts.ref_to_conversation = "C1";
    // c: S1 -> R1, rejected (unread but never delivered)
    auto c = make_msg("c", "S1", "M-c", "R1");
    c.state = "rejected";
    // d: S3 -> R3 with the same MsgId as a, delivered, then read
    auto dd = make_msg("d", "S3", "M-a", "R3");

    insert(*s, a);
    const auto t_a = get_row(*s, "a").received_at;
    pass_ms(t_a);
    insert(*s, b);
    insert(*s, c);
    const auto t_c = get_row(*s, "c").received_at;
    pass_ms(t_c);
    insert(*s, dd);
    REQUIRE(broker::store::write_sync(*s, [](auto& t) -> result<void> {
        if (auto e = t.set_state("d", "delivered", ""); !e)
            return e;
        return t.set_read("d", "R3");
    }));

    auto& rd = s->thread_reader();
    broker::store::message_filter f;
    CHECK(ids(rd.list(f)) == v{"d", "c", "b", "a"});

    f = {};
    f.receivers = {"R1"};
    CHECK(ids(rd.list(f)) == v{"c", "a"});
    f.receivers = {"R1", "R3"};
    CHECK(ids(rd.list(f)) == v{"d", "c", "a"});
    f.state = "routed";
    CHECK(ids(rd.list(f)) == v{"a"});

    f = {};
    f.sender = "S1";
    CHECK(ids(rd.list(f)) == v{"c", "a"});

    f = {};
    f.msg_type = "DIALOG_FORESPORSEL";
    CHECK(ids(rd.list(f)) == v{"b"});

    f = {};
    f.state = "waiting";
    CHECK(ids(rd.list(f)) == v{"b"});

    f = {};
    f.msg_id = "M-a";
    CHECK(ids(rd.list(f)) == v{"d", "a"});

    f = {};
    f.conversation = "C1";
    CHECK(ids(rd.list(f)) == v{"b", "a"});

    f = {};
    f.to = t_a;
    CHECK(ids(rd.list(f)) == v{"a"});
    f = {};
    f.from = t_a + 1;
    CHECK(ids(rd.list(f)) == v{"d", "c", "b"});
    f.to = t_c;
    CHECK(ids(rd.list(f)) == v{"c", "b"});

    f = {};
    f.unread_only = true;
    CHECK(ids(rd.list(f)) == v{"b", "a"});  // c rejected, d read
    f.receivers = {"R1", "R2", "R3"};
    CHECK(ids(rd.list(f)) == v{"b", "a"});

    f = {};
    f.limit = 2;
    CHECK(ids(rd.list(f)) == v{"d", "c"});

    f = {};
    f.sender = "nobody";
    CHECK(ids(rd.list(f)).empty());

    // find_by_msg_id / find_all_by_msg_id
    auto one = rd.find_by_msg_id("S1", "M-a");
    REQUIRE(one);
    REQUIRE(one->has_value());
    CHECK((*one)->id == "a");
    auto none = rd.find_by_msg_id("", "M-a");
    REQUIRE(none);
    CHECK_FALSE(none->has_value());
    CHECK(ids(rd.find_all_by_msg_id("M-a")) == v{"d", "a"});
    CHECK(ids(rd.find_all_by_msg_id("")).empty());
}

TEST_CASE("due_for_delivery: routed or failed, with an adapter, due, oldest first", "[unit][store]") {
    testing::temp_dir d;
    auto s = open_ok(options_in(d));
    auto now = broker::store::now_ms();
    insert(*s, make_msg("r1"));  // routed, next_attempt_at 0
    auto no_adapter = make_msg("no-adapter");
    no_adapter.adapter = "";
    insert(*s, no_adapter);
    auto waiting = make_msg("waiting");
    waiting.state = "waiting";
    insert(*s, waiting);
    insert(*s, make_msg("f-soon"));
    insert(*s, make_msg("f-late"));
    insert(*s, make_msg("f-future"));
    insert(*s, make_msg("delivered"));
    insert(*s, make_msg("r2"));
    REQUIRE(broker::store::write_sync(*s, [now](auto& t) -> result<void> {
        if (auto e = t.set_delivery("f-late", 2, now - 10, "http 503"); !e)
            return e;
        if (auto e = t.set_state("f-late", "failed", ""); !e)
            return e;
        if (auto e = t.set_delivery("f-soon", 3, now - 1000, "http 503"); !e)
            return e;
        if (auto e = t.set_state("f-soon", "failed", ""); !e)
            return e;
        if (auto e = t.set_delivery("f-future", 1, now + 60000, "timeout"); !e)
            return e;
        if (auto e = t.set_state("f-future", "failed", ""); !e)
            return e;
        return t.set_state("delivered", "delivered", "");
    }));
    auto& rd = s->thread_reader();
    CHECK(ids(rd.due_for_delivery(now, 100)) == v{"r1", "r2", "f-soon", "f-late"});
    CHECK(ids(rd.due_for_delivery(now, 2)) == v{"r1", "r2"});
    CHECK(ids(rd.due_for_delivery(now + 60000, 100)) == v{"r1", "r2", "f-soon", "f-late", "f-future"});
    CHECK(ids(rd.due_for_delivery(now, 0)).empty());
    // Dropping the adapter takes a message out.
    REQUIRE(broker::store::write_sync(*s, [](auto& t) -> result<void> { return t.set_route("r2", "", ""); }));
    CHECK(ids(rd.due_for_delivery(now, 100)) == v{"r1", "f-soon", "f-late"});
    auto row = get_row(*s, "f-soon");
    CHECK(row.attempts == 3);
    CHECK(row.last_error == "http 503");
}

TEST_CASE("parties: upsert, get, all, delete_all", "[unit][store]") {
    testing::temp_dir d;
    auto s = open_ok(options_in(d));
    broker::store::party org{"79768", "Kommune", "organisation", "", "123456789", "0301", "", "", true};
    broker::store::party svc{"8093240", "Legekontor", "service", "79768", "123456789", "0301", "lk@edi", "visma", true};
    REQUIRE(broker::store::write_sync(*s, [&](auto& t) -> result<void> {
        if (auto e = t.upsert_party(org); !e)
            return e;
        return t.upsert_party(svc);
    }));
    auto& rd = s->thread_reader();
    auto p = rd.get_party("8093240");
    REQUIRE(p);
    REQUIRE(p->has_value());
    CHECK((*p)->name == "Legekontor");
    CHECK((*p)->type == "service");
    CHECK((*p)->parent_her_id == "79768");
    CHECK((*p)->org_number == "123456789");
    CHECK((*p)->municipality == "0301");
    CHECK((*p)->edi_address == "lk@edi");
    CHECK((*p)->adapter == "visma");
    CHECK((*p)->active);
    CHECK((*p)->can_receive());

    svc.name = "Legekontoret";
    svc.active = false;
    svc.adapter = "";
    REQUIRE(broker::store::write_sync(*s, [&](auto& t) -> result<void> { return t.upsert_party(svc); }));
    p = rd.get_party("8093240");
    REQUIRE(p);
    REQUIRE(p->has_value());
    CHECK((*p)->name == "Legekontoret");
    CHECK_FALSE((*p)->active);
    CHECK((*p)->adapter.empty());

    auto all = rd.all_parties();
    REQUIRE(all);
    REQUIRE(all->size() == 2);
    CHECK((*all)[0].her_id == "79768");
    CHECK((*all)[1].her_id == "8093240");

    auto missing = rd.get_party("1");
    REQUIRE(missing);
    CHECK_FALSE(missing->has_value());

    auto bad = broker::store::write_sync(*s, [](auto& t) -> result<void> { return t.upsert_party({}); });
    REQUIRE_FALSE(bad);

    REQUIRE(broker::store::write_sync(*s, [](auto& t) -> result<void> { return t.delete_all_parties(); }));
    all = rd.all_parties();
    REQUIRE(all);
    CHECK(all->empty());
}

TEST_CASE("readers are per store and per thread", "[unit][store]") {
    testing::temp_dir d;
    auto s1 = open_ok(options_in(d, "one.db"));
    auto s2 = open_ok(options_in(d, "two.db"));
    insert(*s1, make_msg("in-one"));
    insert(*s2, make_msg("in-two"));
    auto& r1 = s1->thread_reader();
    auto& r2 = s2->thread_reader();
    CHECK(&r1 != &r2);
    CHECK(&r1 == &s1->thread_reader());
    auto a = r1.get("in-two");
    REQUIRE(a);
    CHECK_FALSE(a->has_value());
    auto b = r2.get("in-two");
    REQUIRE(b);
    CHECK(b->has_value());

    // Another thread gets its own reader, which sees the same data.
    broker::store::reader* other = nullptr;
    bool seen = false;
    std::thread t([&] {
        other = &s1->thread_reader();
        auto r = other->get("in-one");
        seen = r && r->has_value();
    });
    t.join();
    CHECK(other != &r1);
    CHECK(seen);

    // Closing one store leaves the other's readers working.
    s1->close();
    auto c = r1.get("in-one");
    REQUIRE_FALSE(c);
    CHECK(c.error().code == "store.closed");
    auto e = s2->thread_reader().get("in-two");
    REQUIRE(e);
    CHECK(e->has_value());

    // A store opened after another was closed gets a fresh reader on this thread.
    auto s3 = open_ok(options_in(d, "one.db"));
    auto f = s3->thread_reader().get("in-one");
    REQUIRE(f);
    CHECK(f->has_value());
}

TEST_CASE("readers see each commit while the writer keeps writing", "[unit][store]") {
    testing::temp_dir d;
    auto s = open_ok(options_in(d));
    std::atomic<bool> stop{false};
    std::atomic<int> reads{0}, errors{0};
    std::vector<std::thread> readers;
    for (int i = 0; i < 2; ++i)
        readers.emplace_back([&] {
            auto& rd = s->thread_reader();
            std::int64_t last = 0;
            while (!stop) {
                auto n = rd.count_messages();
                if (!n || *n < last)
                    ++errors;  // counts never go backwards
                else
                    last = *n;
                broker::store::message_filter f;
                f.limit = 5;
                if (!rd.list(f))
                    ++errors;
                ++reads;
            }
        });
    for (int i = 0; i < 200; ++i)
        insert(*s, make_msg("rw-" + std::to_string(i)));
    stop = true;
    for (auto& t : readers)
        t.join();
    CHECK(errors == 0);
    CHECK(reads > 0);
}

TEST_CASE("every list shape is served from an index", "[unit][store]") {
    testing::temp_dir d;
    auto o = options_in(d);
    open_ok(o)->close();
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open_v2(o.path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
    auto plan = [&](const broker::store::message_filter& f) {
        std::string sql = "EXPLAIN QUERY PLAN " + broker::store::detail::list_sql(f);
        sqlite3_stmt* st = nullptr;
        int rc = sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr);
        INFO(sql << "\n" << sqlite3_errmsg(db));
        REQUIRE(rc == SQLITE_OK);
        std::string out;
        while (sqlite3_step(st) == SQLITE_ROW)
            out += reinterpret_cast<const char*>(sqlite3_column_text(st, 3)) + std::string("\n");
        sqlite3_finalize(st);
        return out;
    };
    struct shape {
        const char* name;
        broker::store::message_filter f;
        bool sorted_by_index;  // no temp b-tree for ORDER BY
    };
    auto with = [](auto set) {
        broker::store::message_filter f;
        set(f);
        return f;
    };
    const shape shapes[] = {
        {"receiver + unread (inbox poll)", with([](auto& f) { f.receivers = {"1"}, f.unread_only = true; }), true},
        {"receivers + unread", with([](auto& f) { f.receivers = {"1", "2"}, f.unread_only = true; }), false},
        {"receiver + state", with([](auto& f) { f.receivers = {"1"}, f.state = "waiting"; }), true},
        {"receivers + state", with([](auto& f) { f.receivers = {"1", "2"}, f.state = "waiting"; }), false},
        {"receiver", with([](auto& f) { f.receivers = {"1"}; }), false},
        {"sender", with([](auto& f) { f.sender = "1"; }), true},
        {"type", with([](auto& f) { f.msg_type = "x"; }), true},
        {"state", with([](auto& f) { f.state = "x"; }), true},
        // Served by the de-duplication index (msg_id, sender): a MsgId matches one message per
        // sender, so what is sorted is a handful of rows.
        {"msg_id", with([](auto& f) { f.msg_id = "x"; }), false},
        {"msg_id + receiver", with([](auto& f) { f.msg_id = "x", f.receivers = {"1"}; }), false},
        {"conversation", with([](auto& f) { f.conversation = "x"; }), true},
        {"time range", with([](auto& f) { f.from = 1, f.to = 2; }), true},
        {"sender + type + range",
         with([](auto& f) { f.sender = "1", f.msg_type = "x", f.from = 1; }), true},
        {"nothing", broker::store::message_filter{}, true},
    };
    for (const auto& s : shapes) {
        const std::string p = plan(s.f);
        INFO(s.name << ":\n" << p);
        // Only the unfiltered listing walks the whole time index; everything else searches.
        if (std::string(s.name) == "nothing")
            CHECK(p.find("SCAN messages USING INDEX ix_messages_received") != std::string::npos);
        else
            CHECK(p.find("SEARCH messages USING INDEX") != std::string::npos);
        if (s.sorted_by_index)
            CHECK(p.find("TEMP B-TREE") == std::string::npos);
    }
    sqlite3_close(db);
}
