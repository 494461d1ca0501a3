// Reader: per-thread query_only connection with prepared statements; list() caches one statement
// per filter shape, so no SQL is built twice for the same kind of query and values are always bound.
#include "store/sqlite_reader.hpp"

#include "store/body_log.hpp"
#include "store/schema.hpp"
#include "store/sqlite_store.hpp"

#include <algorithm>
#include <string>

namespace broker::store::detail {
namespace {

constexpr int busy_timeout_ms = 5000;
constexpr int default_list_limit = 100;
constexpr int max_list_limit = 10000;
constexpr int max_find_all = 1000;

/// "SELECT <message_row columns> FROM messages" (a function: no static constructors).
std::string select_messages() { return std::string("SELECT ") + message_columns + " FROM messages"; }

party read_party(sqlite3_stmt* s) {
    party p;
    p.her_id = col_text(s, 0);
    p.name = col_text(s, 1);
    p.type = col_text(s, 2);
    p.parent_her_id = col_text(s, 3);
    p.org_number = col_text(s, 4);
    p.municipality = col_text(s, 5);
    p.edi_address = col_text(s, 6);
    p.adapter = col_text(s, 7);
    p.active = col_int(s, 8) != 0;
    return p;
}

const char* const party_columns =
    "SELECT her_id, name, type, parent_her_id, org_number, municipality, edi_address, adapter, active FROM parties";

// Filter shape bits for the list() statement cache.
enum : std::uint64_t {
    f_receivers = 1 << 0,
    f_sender = 1 << 1,
    f_type = 1 << 2,
    f_state = 1 << 3,
    f_msg_id = 1 << 4,
    f_conversation = 1 << 5,
    f_from = 1 << 6,
    f_to = 1 << 7,
    f_unread = 1 << 8,
};

// Which index serves a filter on the state alone (migration 6): messages on their way are in
// ix_messages_pending (small: the backlog), the usual final states are the newest messages
// (ix_messages_received, filtered), the rare ones have the partial ix_messages_state.
enum class state_class : std::uint64_t { none, on_the_way, usual_final, rare };

// The WHERE clauses of the partial indexes on the state (schema.cpp, migrations 5 and 6): a query
// is served from a partial index only if it repeats the index's condition.
constexpr const char* pending_where = "(state = 'routed' OR state = 'failed' OR state = 'waiting')";
constexpr const char* rare_state_where = "state <> 'routed' AND state <> 'failed' AND state <> 'waiting'"
                                         " AND state <> 'delivered' AND state <> 'read' AND state <> 'apprec-ok'";

state_class classify_state(const std::string& st) {
    if (st.empty())
        return state_class::none;
    if (st == "routed" || st == "failed" || st == "waiting")
        return state_class::on_the_way;
    if (st == "delivered" || st == "read" || st == "apprec-ok")
        return state_class::usual_final;
    return state_class::rare;
}

std::uint64_t shape_of(const message_filter& f) {
    std::uint64_t k = 0;
    if (!f.receivers.empty())
        k |= f_receivers | (static_cast<std::uint64_t>(f.receivers.size()) << 16);
    if (!f.sender.empty())
        k |= f_sender;
    if (!f.msg_type.empty())
        k |= f_type;
    if (!f.state.empty())
        k |= f_state | (static_cast<std::uint64_t>(classify_state(f.state)) << 9);
    if (!f.msg_id.empty())
        k |= f_msg_id;
    if (!f.conversation.empty())
        k |= f_conversation;
    if (f.from)
        k |= f_from;
    if (f.to)
        k |= f_to;
    if (f.unread_only)
        k |= f_unread;
    return k;
}

} // namespace

std::string list_sql(const message_filter& f) {
    // Most selective first. Without statistics SQLite's planner would, for instance, serve
    // "receivers + state" from the state index and walk every message in that state.
    const char* index = "ix_messages_received";
    // A partial index serves a query only if the query's WHERE repeats the index's (schema.cpp).
    const char* index_where = nullptr;
    if (!f.msg_id.empty()) {
        index = "ux_messages_msg_id";
    } else if (!f.conversation.empty()) {
        index = "ix_messages_conversation";
    } else if (!f.receivers.empty()) {
        index = f.unread_only ? "ix_messages_unread" : "ix_messages_receiver";
    } else if (!f.sender.empty()) {
        index = "ix_messages_sender";
    } else if (!f.msg_type.empty()) {
        index = "ix_messages_type";
    } else if (!f.state.empty()) {
        switch (classify_state(f.state)) {
        case state_class::on_the_way:  // few rows: sorted here
            index = "ix_messages_pending";
            index_where = pending_where;
            break;
        case state_class::rare:
            index = "ix_messages_state";
            index_where = rare_state_where;
            break;
        case state_class::none:
        case state_class::usual_final:
            break;
        }
    }
    std::string sql = "SELECT ";
    sql += message_columns;
    sql += " FROM messages INDEXED BY ";
    sql += index;
    sql += " WHERE 1";
    if (index_where) {
        sql += " AND ";
        sql += index_where;
    }
    int n = 0;
    auto param = [&] {
        std::string p(1, '?');
        p += std::to_string(++n);
        return p;
    };
    if (!f.receivers.empty()) {
        if (f.receivers.size() == 1) {
            sql += " AND receiver_her = " + param();
        } else {
            sql += " AND receiver_her IN (";
            for (std::size_t i = 0; i < f.receivers.size(); ++i)
                sql += (i ? ", " : "") + param();
            sql += ")";
        }
    }
    if (!f.sender.empty())
        sql += " AND sender_her = " + param();
    if (!f.msg_type.empty())
        sql += " AND msg_type = " + param();
    if (!f.state.empty())
        sql += " AND state = " + param();
    if (!f.msg_id.empty())
        sql += " AND msg_id = " + param();
    if (!f.conversation.empty())
        sql += " AND conversation_ref = " + param();
    if (f.from)
        sql += " AND received_at >= " + param();
    if (f.to)
        sql += " AND received_at <= " + param();
    if (f.unread_only)
        sql += " AND read_at IS NULL AND state NOT IN ('rejected', 'dead')";
    sql += " ORDER BY received_at DESC, rowid DESC LIMIT " + param();
    return sql;
}

std::string operator_sql(std::string_view name) {
    if (name == "size")
        return "SELECT (SELECT page_count FROM pragma_page_count()) * (SELECT page_size FROM pragma_page_size())";
    if (name == "oldest")
        return "SELECT min(received_at) FROM messages INDEXED BY ix_messages_received";
    if (name == "pending")
        return std::string("SELECT adapter, state, count(*), min(received_at) FROM messages INDEXED BY"
                           " ix_messages_pending WHERE ") +
               pending_where + " GROUP BY adapter, state ORDER BY adapter, state";
    if (name == "rules")
        // Skip-scan over ix_messages_rule: one index seek per distinct rule, not one step per message.
        return "WITH RECURSIVE r(x) AS (SELECT (SELECT min(rule) FROM messages INDEXED BY ix_messages_rule)"
               " UNION ALL SELECT (SELECT min(rule) FROM messages INDEXED BY ix_messages_rule WHERE rule > r.x)"
               " FROM r WHERE r.x IS NOT NULL) SELECT x FROM r WHERE x IS NOT NULL";
    if (name == "prune")
        return "DELETE FROM messages WHERE id IN (SELECT id FROM messages INDEXED BY ix_messages_rule"
               " WHERE rule IS ?1 AND received_at < ?2 AND state <> 'routed' AND state <> 'failed' AND state <> 'waiting'"
               " ORDER BY received_at LIMIT ?3)";
    return {};
}

sqlite_reader::~sqlite_reader() { close(); }

void sqlite_reader::open(const std::string& path) {
    std::lock_guard lk(mu_);
    configure_sqlite_once();
    body_dir_ = body_log_dir(path);
    int rc = sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
        open_error_ = sql_error(db_, rc, "open reader");
        sqlite3_close_v2(db_);
        db_ = nullptr;
        return;
    }
    sqlite3_busy_timeout(db_, busy_timeout_ms);
    auto r = exec(db_, "PRAGMA query_only = ON", "reader pragmas");
    if (r)
        r = prepare_all();
    if (!r) {
        open_error_ = r.error();
        list_cache_.clear();
        get_ = {}, body_ = {}, transitions_ = {}, by_sender_msg_id_ = {}, by_msg_id_ = {}, due_ = {};
        party_ = {}, parties_ = {}, count_ = {}, size_ = {}, oldest_ = {}, pending_ = {}, rules_ = {};
        sqlite3_close_v2(db_);
        db_ = nullptr;
    }
}

result<void> sqlite_reader::prepare_all() {
    struct item {
        statement& st;
        std::string sql;
    };
    const std::string cols = select_messages();
    item items[] = {
        {get_, cols + " WHERE id = ?1"},
        // In the body log (body_seg set) or in bodies (stored before schema 8, or with the log off).
        {body_, "SELECT m.body_seg, m.body_off, m.size, m.body_crc, b.raw FROM messages m"
                " LEFT JOIN bodies b ON b.id = m.id WHERE m.id = ?1"},
        {transitions_, "SELECT state, at, detail FROM transitions WHERE message_id = ?1 ORDER BY seq"},
        {by_sender_msg_id_, cols + " WHERE sender_her = ?1 AND msg_id = ?2"},
        {by_msg_id_, cols + " WHERE msg_id = ?1 ORDER BY received_at DESC, rowid DESC LIMIT " +
                         std::to_string(max_find_all)},
        // The partial index holds exactly the candidates, in due order: no sort, stops at the limit.
        {due_, std::string("SELECT ") + message_columns +
                   " FROM messages INDEXED BY ix_messages_due"
                   " WHERE state IN ('routed', 'failed') AND adapter IS NOT NULL AND next_attempt_at <= ?1"
                   " ORDER BY next_attempt_at, received_at LIMIT ?2"},
        {party_, std::string(party_columns) + " WHERE her_id = ?1"},
        {parties_, std::string(party_columns) + " ORDER BY her_id"},
        {count_, "SELECT count(*) FROM messages"},
        {size_, operator_sql("size")},
        {oldest_, operator_sql("oldest")},
        {pending_, operator_sql("pending")},
        {rules_, operator_sql("rules")},
    };
    for (auto& it : items) {
        auto st = statement::prepare(db_, it.sql);
        if (!st)
            return st.error();
        it.st = std::move(*st);
    }
    return {};
}

void sqlite_reader::close() {
    std::lock_guard lk(mu_);
    list_cache_.clear();
    feature_.clear();
    get_.finalize(), body_.finalize(), transitions_.finalize(), by_sender_msg_id_.finalize();
    by_msg_id_.finalize(), due_.finalize(), party_.finalize(), parties_.finalize(), count_.finalize();
    size_.finalize(), oldest_.finalize(), pending_.finalize(), rules_.finalize();
    if (db_) {
        sqlite3_close_v2(db_);
        db_ = nullptr;
        open_error_ = error("store.closed", "the store is closed");
    }
}

bool sqlite_reader::is_closed() const {
    std::lock_guard lk(mu_);
    return db_ == nullptr;
}

error sqlite_reader::closed_error() const { return open_error_; }

template <class T, class Read>
result<void> sqlite_reader::collect(const statement& s, std::vector<T>& out, Read read) {
    for (;;) {
        int rc = sqlite3_step(s.get());
        if (rc == SQLITE_DONE)
            return {};
        if (rc != SQLITE_ROW)
            return sql_error(db_, rc, "read");
        out.push_back(read(s.get()));
    }
}

result<std::optional<message_row>> sqlite_reader::one_row(const statement& s) {
    int rc = sqlite3_step(s.get());
    if (rc == SQLITE_DONE)
        return std::optional<message_row>{};
    if (rc != SQLITE_ROW)
        return sql_error(db_, rc, "read message");
    return std::optional<message_row>{read_message_row(s.get())};
}

result<std::optional<message_row>> sqlite_reader::get(std::string_view id) {
    std::lock_guard lk(mu_);
    if (!db_)
        return closed_error();
    reset_guard g(get_);
    bind_text(get_.get(), 1, id);
    return one_row(get_);
}

result<std::optional<std::string>> sqlite_reader::body(std::string_view id) {
    std::lock_guard lk(mu_);
    if (!db_)
        return closed_error();
    reset_guard g(body_);
    sqlite3_stmt* s = body_.get();
    bind_text(s, 1, id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE)
        return std::optional<std::string>{};
    if (rc != SQLITE_ROW)
        return sql_error(db_, rc, "read body");
    if (sqlite3_column_type(s, 0) != SQLITE_NULL) {
        body_ref ref{col_int(s, 0), col_int(s, 1), col_int(s, 2), static_cast<std::uint32_t>(col_int(s, 3))};
        auto b = read_body(body_dir_, id, ref);
        if (!b)
            return b.error();
        return std::optional<std::string>{std::move(*b)};
    }
    if (sqlite3_column_type(s, 4) == SQLITE_NULL)
        return std::optional<std::string>{};
    return std::optional<std::string>{col_blob(s, 4)};
}

result<std::vector<transition_row>> sqlite_reader::transitions(std::string_view id) {
    std::lock_guard lk(mu_);
    if (!db_)
        return closed_error();
    reset_guard g(transitions_);
    bind_text(transitions_.get(), 1, id);
    std::vector<transition_row> rows;
    auto r = collect(transitions_, rows, [](sqlite3_stmt* s) {
        return transition_row{col_text(s, 0), col_int(s, 1), col_text(s, 2)};
    });
    if (!r)
        return r.error();
    // A row of intake's first transitions stands for several (schema.hpp).
    std::vector<transition_row> out;
    out.reserve(rows.size() + 2);
    for (auto& t : rows) {
        if (t.state.find(transition_separator) == std::string::npos) {
            out.push_back(std::move(t));
            continue;
        }
        std::string_view states = t.state, details = t.detail;
        for (;;) {
            const auto s_end = states.find(transition_separator), d_end = details.find(transition_separator);
            out.push_back(transition_row{std::string(states.substr(0, s_end)), t.at, std::string(details.substr(0, d_end))});
            if (s_end == std::string_view::npos)
                break;
            states.remove_prefix(s_end + 1);
            details = d_end == std::string_view::npos ? std::string_view() : details.substr(d_end + 1);
        }
    }
    return out;
}

result<std::optional<message_row>> sqlite_reader::find_by_msg_id(std::string_view sender_her,
                                                                 std::string_view msg_id) {
    std::lock_guard lk(mu_);
    if (!db_)
        return closed_error();
    if (sender_her.empty() || msg_id.empty())
        return std::optional<message_row>{};  // never stored as a key (NULL)
    reset_guard g(by_sender_msg_id_);
    bind_text(by_sender_msg_id_.get(), 1, sender_her);
    bind_text(by_sender_msg_id_.get(), 2, msg_id);
    return one_row(by_sender_msg_id_);
}

result<std::vector<message_row>> sqlite_reader::find_all_by_msg_id(std::string_view msg_id) {
    std::lock_guard lk(mu_);
    if (!db_)
        return closed_error();
    std::vector<message_row> out;
    if (msg_id.empty())
        return out;
    reset_guard g(by_msg_id_);
    bind_text(by_msg_id_.get(), 1, msg_id);
    if (auto r = collect(by_msg_id_, out, read_message_row); !r)
        return r.error();
    return out;
}

result<std::vector<message_row>> sqlite_reader::list(const message_filter& f) {
    std::lock_guard lk(mu_);
    if (!db_)
        return closed_error();
    const std::uint64_t shape = shape_of(f);
    auto it = list_cache_.find(shape);
    if (it == list_cache_.end()) {
        if (list_cache_.size() >= 64)
            list_cache_.clear();  // bound: shapes differ only by receiver count beyond a few
        auto st = statement::prepare(db_, list_sql(f));
        if (!st)
            return st.error();
        it = list_cache_.emplace(shape, std::move(*st)).first;
    }
    const statement& st = it->second;
    reset_guard g(st);
    sqlite3_stmt* s = st.get();
    int n = 0;
    for (const auto& r : f.receivers)
        bind_text(s, ++n, r);
    if (!f.sender.empty())
        bind_text(s, ++n, f.sender);
    if (!f.msg_type.empty())
        bind_text(s, ++n, f.msg_type);
    if (!f.state.empty())
        bind_text(s, ++n, f.state);
    if (!f.msg_id.empty())
        bind_text(s, ++n, f.msg_id);
    if (!f.conversation.empty())
        bind_text(s, ++n, f.conversation);
    if (f.from)
        bind_int(s, ++n, *f.from);
    if (f.to)
        bind_int(s, ++n, *f.to);
    int limit = f.limit <= 0 ? default_list_limit : std::min(f.limit, max_list_limit);
    bind_int(s, ++n, limit);
    std::vector<message_row> out;
    if (auto r = collect(st, out, read_message_row); !r)
        return r.error();
    return out;
}

result<std::vector<message_row>> sqlite_reader::due_for_delivery(millis now, int limit) {
    std::lock_guard lk(mu_);
    if (!db_)
        return closed_error();
    std::vector<message_row> out;
    if (limit <= 0)
        return out;
    reset_guard g(due_);
    bind_int(due_.get(), 1, now);
    bind_int(due_.get(), 2, limit);
    if (auto r = collect(due_, out, read_message_row); !r)
        return r.error();
    return out;
}

result<std::optional<party>> sqlite_reader::get_party(std::string_view her_id) {
    std::lock_guard lk(mu_);
    if (!db_)
        return closed_error();
    reset_guard g(party_);
    bind_text(party_.get(), 1, her_id);
    int rc = sqlite3_step(party_.get());
    if (rc == SQLITE_DONE)
        return std::optional<party>{};
    if (rc != SQLITE_ROW)
        return sql_error(db_, rc, "read party");
    return std::optional<party>{read_party(party_.get())};
}

result<std::vector<party>> sqlite_reader::all_parties() {
    std::lock_guard lk(mu_);
    if (!db_)
        return closed_error();
    reset_guard g(parties_);
    std::vector<party> out;
    if (auto r = collect(parties_, out, read_party); !r)
        return r.error();
    return out;
}

result<std::int64_t> sqlite_reader::count_messages() {
    std::lock_guard lk(mu_);
    if (!db_)
        return closed_error();
    reset_guard g(count_);
    int rc = sqlite3_step(count_.get());
    if (rc != SQLITE_ROW)
        return sql_error(db_, rc, "count messages");
    return col_int(count_.get(), 0);
}

result<store_stats> sqlite_reader::stats() {
    std::lock_guard lk(mu_);
    if (!db_)
        return closed_error();
    store_stats out;
    auto scalar = [&](const statement& st, std::int64_t& v, const char* what) -> result<void> {
        reset_guard g(st);
        int rc = sqlite3_step(st.get());
        if (rc != SQLITE_ROW)
            return sql_error(db_, rc, what);
        v = col_int(st.get(), 0);
        return {};
    };
    if (auto r = scalar(count_, out.messages, "count messages"); !r)
        return r.error();
    if (auto r = scalar(size_, out.size_bytes, "store size"); !r)
        return r.error();
    if (auto r = scalar(oldest_, out.oldest_received_at, "oldest message"); !r)
        return r.error();
    out.body_log_bytes = body_log_bytes(body_dir_);
    return out;
}

result<std::vector<pending_count>> sqlite_reader::pending() {
    std::lock_guard lk(mu_);
    if (!db_)
        return closed_error();
    reset_guard g(pending_);
    std::vector<pending_count> out;
    auto r = collect(pending_, out, [](sqlite3_stmt* s) {
        return pending_count{col_text(s, 0), col_text(s, 1), col_int(s, 2), col_int(s, 3)};
    });
    if (!r)
        return r.error();
    return out;
}

result<std::vector<std::string>> sqlite_reader::stored_rules() {
    std::lock_guard lk(mu_);
    if (!db_)
        return closed_error();
    reset_guard g(rules_);
    std::vector<std::string> out;
    if (auto r = collect(rules_, out, [](sqlite3_stmt* s) { return col_text(s, 0); }); !r)
        return r.error();
    return out;
}

result<std::vector<sql_row>> sqlite_reader::sql_query(std::string_view sql, const std::vector<sql_value>& params) {
    std::lock_guard lk(mu_);
    if (!db_)
        return closed_error();
    auto it = feature_.find(std::string(sql));
    if (it == feature_.end()) {
        auto st = statement::prepare(db_, sql);
        if (!st)
            return st.error();
        it = feature_.emplace(std::string(sql), std::move(*st)).first;
    }
    reset_guard g(it->second);
    if (int rc = bind_values(it->second.get(), params); rc != SQLITE_OK)
        return sql_error(db_, rc, "bind feature query");
    std::vector<sql_row> out;
    if (auto r = collect(it->second, out, [](sqlite3_stmt* s) { return read_values(s); }); !r)
        return r.error();
    return out;
}

} // namespace broker::store::detail
