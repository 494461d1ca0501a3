// Helpers for the operator-tool unit tests: a real store in a temp folder, messages inserted
// through the store's own write path, and raw SQL on the same file (to backdate or bulk-load).
#pragma once

#include "test_paths.hpp"

#include "broker/log.hpp"
#include "broker/store.hpp"

#include "raw_sql.hpp"

#include <catch2/catch.hpp>
#include <sqlite3.h>

#include <memory>
#include <string>

/// Print results as "ok" or the error (Boost's own operator<< needs operator<< for T).
template <class T>
struct Catch::StringMaker<broker::result<T>> {
    static std::string convert(const broker::result<T>& r) { return r ? "ok" : "error " + r.error().where(); }
};

namespace admin_test {

namespace st = broker::store;

inline std::string db_path(const testing::temp_dir& d) { return (d.path() / "data" / "edibroker.db").string(); }

inline std::unique_ptr<st::store> open_store(const testing::temp_dir& d) {
    broker::log::set_level(broker::log::level::warn);
    st::options o;
    o.path = db_path(d);
    auto s = st::open(o);
    if (!s)
        FAIL(s.error().where());
    return std::move(*s);
}

/// A stored message as intake would store it; 'state' after intake, 'rule'/'adapter' its route.
inline st::new_message make(const std::string& id, const std::string& state, const std::string& rule = "",
                            const std::string& adapter = "", const std::string& sender = "8093244",
                            const std::string& receiver = "9100110") {
    st::new_message m;
    m.id = id;
    m.facts.msg_id = "msg-" + id;
    m.facts.msg_type = "DIALOG_INNBYGGER_EKONTAKT";
    m.facts.sender.lvl2_her = sender;
    m.facts.receiver.lvl2_her = receiver;
    m.raw = "<MsgHead/>";
    m.state = state;
    m.initial_states = {st::state::received, state};
    m.rule = rule;
    m.adapter = adapter;
    return m;
}

inline void insert(st::store& s, const st::new_message& m) {
    auto r = st::write_sync(s, [m](st::write_txn& t) -> broker::result<void> {
        auto i = t.insert_message(m);
        if (!i)
            return i.error();
        return {};
    });
    if (!r)
        FAIL(r.error().where());
}

/// Run SQL on the database file with its own connection (WAL: alongside the store's).
inline std::string raw(const std::string& path, const std::string& sql) { return testing::raw_sql(path, sql); }

} // namespace admin_test
