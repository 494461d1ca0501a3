// The writer connection and write_txn. Every statement is prepared once at open; an insert binds
// and steps prepared statements only (no SQL text is built per message).
#include "store/sqlite_writer.hpp"

#include "broker/log.hpp"

#include "store/schema.hpp"
#include "store/sqlite_store.hpp"
#include "store/wal_write_buffer.hpp"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <string>
#include <system_error>

#include <unistd.h>

namespace broker::store::detail {
namespace {

constexpr int busy_timeout_ms = 5000;

error not_found(std::string_view id) { return error("store.not-found", "no message with id " + std::string(id)); }

/// Binds the states of a guarded update, "(state = ?first OR state = ?first+1 OR state = ?first+2)":
/// 1 to 3 states; the unused places repeat the first.
void bind_from_states(sqlite3_stmt* s, int first, std::initializer_list<std::string_view> from) {
    int at = first;
    for (std::string_view f : from)
        bind_text(s, at++, f);
    for (; at < first + 3; ++at)
        bind_text(s, at, *from.begin());
}

/// The synchronous pragma value, upper-cased, or "" if not allowed.
std::string sync_mode(std::string_view s) {
    std::string u(s);
    std::transform(u.begin(), u.end(), u.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    if (u == "OFF" || u == "NORMAL" || u == "FULL" || u == "EXTRA")
        return u;
    return {};
}

/// The detail stored with an initial transition: the rejection code, or the matching rule.
std::string initial_detail(const new_message& m, const std::string& s) {
    if ((s == state::rejected || s == state::unroutable) && !m.error_code.empty())
        return m.error_code;
    if (s == state::routed && !m.rule.empty())
        return "rule " + m.rule;
    return {};
}

} // namespace

writer_conn::~writer_conn() { close(); }

result<std::unique_ptr<writer_conn>> writer_conn::open(const options& o) {
    const std::string sync = sync_mode(o.synchronous);
    // Whether commits are synced: the body log syncs its segments (and checks them at open) alike.
    const bool durable = sync == "FULL" || sync == "EXTRA";
    if (sync.empty())
        return error("store.config", "synchronous must be OFF, NORMAL, FULL or EXTRA, not '" + o.synchronous + "'");
    if (o.path.empty())
        return error("store.config", "the store path is empty");
    if (o.max_batch < 1 || o.queue_limit < 1)
        return error("store.config", "max_batch and queue_limit must be at least 1");
    if (o.commit_interval_us < 0 || o.commit_interval_us > 1'000'000)
        return error("store.config", "commit_interval_us must be 0..1000000");
    if (o.body_segment_bytes < 4096)
        return error("store.config", "body_segment_bytes must be at least 4096");

    std::filesystem::path parent = std::filesystem::path(o.path).parent_path();
    if (!parent.empty()) {
        std::error_code ec;
        std::filesystem::create_directories(parent, ec);
        if (ec)
            return error("store.open", "cannot create folder " + parent.string() + ": " + ec.message());
    }

    configure_sqlite_once();
    std::unique_ptr<writer_conn> w(new writer_conn());
    // With a sync per commit the WAL's frames go out in one write per commit (wal_write_buffer.hpp).
    const char* vfs = durable ? wal_write_buffer_vfs() : nullptr;
    int rc = sqlite3_open_v2(o.path.c_str(), &w->db_,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, vfs);
    if (rc != SQLITE_OK) {
        error e = sql_error(w->db_, rc, "open " + o.path);
        return e;
    }
    sqlite3_extended_result_codes(w->db_, 1);
    sqlite3_busy_timeout(w->db_, busy_timeout_ms);

    // journal_mode answers the mode in effect: anything but "wal" (an in-memory database, say)
    // would break the readers-never-block design.
    {
        auto st = statement::prepare(w->db_, "PRAGMA journal_mode = WAL");
        if (!st)
            return error(st.error().code, "open " + o.path + ": " + st.error().message);
        reset_guard g(*st);
        rc = sqlite3_step(st->get());
        if (rc != SQLITE_ROW)
            return sql_error(w->db_, rc, "open " + o.path + ": set WAL");
        if (col_text(st->get(), 0) != "wal")
            return error("store.open", "open " + o.path + ": cannot use WAL (journal_mode " +
                                           col_text(st->get(), 0) + ")");
    }
    std::string pragmas = "PRAGMA synchronous = " + sync +
                          "; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -16384";
    if (auto r = exec(w->db_, pragmas.c_str(), "open " + o.path + ": pragmas"); !r)
        return r.error();
    auto v = migrate(w->db_);
    if (!v)
        return v.error();
    w->version_ = *v;
    if (auto r = w->prepare_all(); !r)
        return r.error();
    w->body_dir_ = body_log_dir(o.path);
    if (auto r = w->check_body_log_tail(durable); !r)
        return r.error();
    if (o.body_log)
        w->body_log_ = std::make_unique<body_log_writer>(w->body_dir_, durable, o.body_segment_bytes);
    return w;
}

result<void> writer_conn::prepare_all() {
    struct item {
        statement& st;
        std::string sql;
    };
    const item items[] = {
        {begin_, "BEGIN IMMEDIATE"},
        {commit_, "COMMIT"},
        {rollback_, "ROLLBACK"},
        {savepoint_, "SAVEPOINT op"},
        {release_, "RELEASE op"},
        {rollback_to_, "ROLLBACK TO op"},
        {insert_,
         "INSERT INTO messages(id, msg_id, kind, msg_type, root_ns, content_ns, sender_her, sender_lvl1_her,"
         " receiver_her, receiver_lvl1_her, conversation_ref, parent_ref, gen_date, state, rule, adapter, source,"
         " error_code, error_text, original_id, original_msg_id, received_at, updated_at, size, content_type,"
         " http_status, response_json, body_seg, body_off, body_crc)"
         " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21,"
         " ?22, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29)"
         " ON CONFLICT(msg_id, sender_her) DO NOTHING"},
        {duplicate_, "SELECT id, http_status, response_json FROM messages WHERE sender_her = ?1 AND msg_id = ?2"},
        {body_, "INSERT INTO bodies(id, raw) VALUES(?1, ?2)"},
        // The body log's end, and the segments still named (ix_messages_body; body_log.hpp).
        {body_end_, "SELECT body_seg, body_off + size FROM messages WHERE body_seg IS NOT NULL"
                    " ORDER BY body_seg DESC, body_off DESC LIMIT 1"},
        {synced_get_, "SELECT seg, end_off FROM body_log_synced WHERE id = 1"},
        {synced_set_, "UPDATE body_log_synced SET seg = ?1, end_off = ?2"
                      " WHERE id = 1 AND (seg < ?1 OR (seg = ?1 AND end_off < ?2))"},
        {next_segment_, "SELECT body_seg FROM messages WHERE body_seg IS NOT NULL AND body_seg > ?1"
                        " ORDER BY body_seg, body_off LIMIT 1"},
        {transition_, "INSERT INTO transitions(message_id, state, at, detail) VALUES(?1, ?2, ?3, ?4)"},
        {set_state_, "UPDATE messages SET state = ?2, updated_at = ?3 WHERE id = ?1"},
        // set_state_if in one statement; the current state is read only when nothing changed.
        {set_state_from_, "UPDATE messages SET state = ?2, updated_at = ?3 WHERE id = ?1 AND (state = ?4 OR state = ?5 OR state = ?6)"},
        {current_state_, "SELECT state FROM messages WHERE id = ?1"},
        {touch_, "UPDATE messages SET updated_at = ?2 WHERE id = ?1"},
        {delivery_,
         "UPDATE messages SET attempts = ?2, next_attempt_at = ?3, last_error = ?4, updated_at = ?5 WHERE id = ?1"},
        {delivered_, "UPDATE messages SET delivered_at = ?2, transport_state = ?3, attempts = max(attempts, ?4), updated_at = ?2 "
                     "WHERE id = ?1"},
        // set_delivered_state in one statement when the state is one of 'from' (up to three).
        {delivered_from_, "UPDATE messages SET state = ?5, delivered_at = ?2, transport_state = ?3,"
                          " attempts = max(attempts, ?4), updated_at = ?2"
                          " WHERE id = ?1 AND (state = ?6 OR state = ?7 OR state = ?8)"},
        // A delivered (or waiting) message becomes 'read'; later states (an AppRec) are kept.
        {read_, "UPDATE messages SET read_at = ?2, read_by = ?3, updated_at = ?2, "
                "state = CASE WHEN state IN ('delivered', 'waiting') THEN 'read' ELSE state END WHERE id = ?1"},
        {apprec_, "UPDATE messages SET apprec_id = ?2, apprec_status = ?3, apprec_errors_json = ?4, updated_at = ?5"
                  " WHERE id = ?1"},
        {route_, "UPDATE messages SET rule = ?2, adapter = ?3, updated_at = ?4 WHERE id = ?1"},
        {party_,
         "INSERT INTO parties(her_id, name, type, parent_her_id, org_number, municipality, edi_address, adapter,"
         " active) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
         " ON CONFLICT(her_id) DO UPDATE SET name = excluded.name, type = excluded.type,"
         " parent_her_id = excluded.parent_her_id, org_number = excluded.org_number,"
         " municipality = excluded.municipality, edi_address = excluded.edi_address, adapter = excluded.adapter,"
         " active = excluded.active"},
        {delete_parties_, "DELETE FROM parties"},
        {prune_, operator_sql("prune")},
    };
    for (const auto& it : items) {
        auto st = statement::prepare(db_, it.sql);
        if (!st)
            return st.error();
        it.st = std::move(*st);
    }
    return {};
}

void writer_conn::close() {
    // A clean stop leaves the mark past every body this writer synced: the next open reads none
    // of them back. Best effort: without it the next open only reads a few more.
    if (db_ && body_log_ && !io_failure_ && synced_ > marked_ && begin() == SQLITE_OK) {
        if (write_synced_mark(synced_) == SQLITE_OK && control(commit_) == SQLITE_OK)
            marked_ = synced_;
        else
            rollback();
    }
    statement* all[] = {&begin_,   &commit_, &rollback_,      &savepoint_, &release_,   &rollback_to_,
                        &insert_,  &duplicate_, &body_,       &transition_, &body_end_, &next_segment_, &synced_get_, &synced_set_,
                        &set_state_, &set_state_from_, &current_state_,
                        &touch_,   &delivery_, &delivered_,   &read_,      &apprec_,    &route_,
                        &party_,   &delete_parties_, &prune_};
    for (auto* s : all)
        s->finalize();
    feature_.clear();
    body_log_.reset();
    if (db_) {
        sqlite3_close_v2(db_);
        db_ = nullptr;
    }
}

// ------------------------------------------------------------------------------------------------
// transaction control

error writer_conn::fail(int rc, std::string_view what) {
    error e = sql_error(db_, rc, what);
    if (is_io_class(rc) && !io_failure_)
        io_failure_ = e;
    return e;
}

void writer_conn::note_io_failure(const error& e) {
    if (!io_failure_)
        io_failure_ = e;
}

int writer_conn::step(const statement& s) {
    reset_guard g(s);
    return sqlite3_step(s.get());
}

int writer_conn::control(const statement& s) {
    int rc = step(s);
    if (rc == SQLITE_DONE)
        return SQLITE_OK;
    if (is_io_class(rc))
        fail(rc, "transaction");
    return rc;
}

int writer_conn::begin() {
    if (body_log_)
        body_log_->reset();
    return control(begin_);
}

int writer_conn::commit() {
    if (!body_log_)
        return control(commit_);
    // The earlier transactions' bodies are synced (each commit below waited for its own): the
    // synced mark moves past them in this one.
    const body_log_pos mark = synced_;
    if (mark > marked_)
        if (int rc = write_synced_mark(mark); rc != SQLITE_OK) {
            fail(rc, "move the body log's synced mark");
            return rc;
        }
    // The bodies this transaction's rows name are written (every process reads them from here
    // on) and synced while SQLite commits: the two syncs overlap instead of following each other.
    // The commit is reported (and its senders acknowledged) only when both are on the disk.
    // Should the machine stop between the two, rows may be there without their bodies: they are
    // past the synced mark, never acknowledged, and opening the store removes them
    // (check_body_log_tail).
    if (auto r = body_log_->write_and_start_sync(); !r) {
        note_io_failure(r.error());
        return SQLITE_IOERR;
    }
    int rc = control(commit_);
    if (auto r = body_log_->finish_sync(); !r) {
        // Committed rows whose bodies may not be on the disk: fail the store (sticky, like any I/O
        // failure); no sender of this batch is acknowledged, and the next open checks the bodies.
        note_io_failure(r.error());
        if (rc == SQLITE_OK)
            rc = SQLITE_IOERR;
    }
    if (rc == SQLITE_OK) {
        marked_ = std::max(marked_, mark);
        synced_ = std::max(synced_, body_log_->end());
    }
    return rc;
}

void writer_conn::after_commit() {
    if (!sweep_wanted_)
        return;
    sweep_wanted_ = false;
    (void)sweep_segments();  // what it could not delete, the next prune's sweep finds again
}

result<void> writer_conn::sweep_segments() {
    std::vector<std::int64_t> files = list_segments(body_dir_);
    if (files.empty())
        return {};
    if (int rc = begin(); rc != SQLITE_OK)
        return fail(rc, "begin body log sweep");
    std::vector<std::int64_t> named;
    std::int64_t after = 0;
    int rc = SQLITE_OK;
    for (;;) {
        reset_guard g(next_segment_);
        bind_int(next_segment_.get(), 1, after);
        rc = sqlite3_step(next_segment_.get());
        if (rc != SQLITE_ROW)
            break;
        after = col_int(next_segment_.get(), 0);
        named.push_back(after);
    }
    if (rc != SQLITE_DONE) {
        error e = fail(rc, "list body log segments");
        rollback();
        return e;
    }
    // Under the write lock no writer is appending, and the next one starts at the highest
    // segment named (or after the highest file when none is): every file not named can go. A
    // writer that still holds one open notices at its next transaction (body_log_writer checks
    // the link count) and opens the file by name again.
    for (std::int64_t n : files)
        if (!std::binary_search(named.begin(), named.end(), n))
            ::unlink(segment_path(body_dir_, n).c_str());  // a failure leaves it for the next sweep
    rollback();  // nothing was written
    return {};
}

result<body_log_pos> writer_conn::read_synced_mark() {
    reset_guard g(synced_get_);
    int rc = sqlite3_step(synced_get_.get());
    if (rc == SQLITE_ROW)
        return body_log_pos{col_int(synced_get_.get(), 0), col_int(synced_get_.get(), 1)};
    if (rc != SQLITE_DONE)
        return fail(rc, "read the body log's synced mark");
    return body_log_pos{};
}

int writer_conn::write_synced_mark(body_log_pos at) {
    reset_guard g(synced_set_);
    bind_int(synced_set_.get(), 1, at.segment);
    bind_int(synced_set_.get(), 2, at.end);
    int rc = sqlite3_step(synced_set_.get());
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

result<void> writer_conn::check_body_log_tail(bool sync) {
    // Under the write lock: no writer of any process appends or moves the mark meanwhile.
    if (int rc = begin(); rc != SQLITE_OK)
        return fail(rc, "begin the body log check");
    auto done = [&](result<void> r) -> result<void> {
        if (!r) {
            rollback();
            return r;
        }
        if (int rc = control(commit_); rc != SQLITE_OK)
            return fail(rc, "commit the body log check");
        return {};
    };
    auto mark = read_synced_mark();
    if (!mark)
        return done(mark.error());
    auto st = statement::prepare(db_, "SELECT id, body_seg, body_off, size, body_crc FROM messages"
                                      " WHERE body_seg IS NOT NULL AND body_seg >= ?1"
                                      " AND (body_seg > ?1 OR body_off + size > ?2)");
    if (!st)
        return done(st.error());
    std::vector<std::pair<std::string, std::string>> lost;  // id, why
    std::vector<std::int64_t> segments;                      // of the bodies found whole
    body_log_pos high = *mark;
    {
        reset_guard g(*st);
        bind_int(st->get(), 1, mark->segment);
        bind_int(st->get(), 2, mark->end);
        int rc;
        while ((rc = sqlite3_step(st->get())) == SQLITE_ROW) {
            sqlite3_stmt* s = st->get();
            std::string id = col_text(s, 0);
            body_ref ref{col_int(s, 1), col_int(s, 2), col_int(s, 3), static_cast<std::uint32_t>(col_int(s, 4))};
            auto b = read_body(body_dir_, id, ref);
            if (!b && b.error().code == "store.corrupt") {
                lost.emplace_back(std::move(id), b.error().message);
                continue;
            }
            if (!b)
                return done(b.error());
            if (std::find(segments.begin(), segments.end(), ref.segment) == segments.end())
                segments.push_back(ref.segment);
            high = std::max(high, body_log_pos{ref.segment, ref.offset + ref.length});
        }
        if (rc != SQLITE_DONE)
            return done(fail(rc, "check the body log"));
    }
    // The whole ones may still be only in the page cache (their writer stopped before its sync
    // returned): synced here before the mark passes them.
    if (sync)
        for (std::int64_t n : segments)
            if (auto r = sync_segment(body_dir_, n); !r)
                return done(r);
    auto del = statement::prepare(db_, "DELETE FROM messages WHERE id = ?1");
    if (!del)
        return done(del.error());
    for (const auto& [id, why] : lost) {
        reset_guard g(*del);
        bind_text(del->get(), 1, id);
        if (int rc = sqlite3_step(del->get()); rc != SQLITE_DONE)
            return done(fail(rc, "remove a message without its body"));
        log::warn("store.body-lost", {{"id", id},
                                      {"reason", "its body did not reach the disk before the machine stopped, so "
                                                 "it was never acknowledged; removed (the sender's retry is taken "
                                                 "as new): " + why}});
    }
    if (high > *mark)
        if (int rc = write_synced_mark(high); rc != SQLITE_OK)
            return done(fail(rc, "move the body log's synced mark"));
    marked_ = high;
    return done({});
}

result<void> writer_conn::position_body_log() {
    auto mark = read_synced_mark();  // another process's writer may have moved it
    if (!mark)
        return mark.error();
    marked_ = std::max(marked_, *mark);
    reset_guard g(body_end_);
    int rc = sqlite3_step(body_end_.get());
    if (rc == SQLITE_ROW)
        return body_log_->position({col_int(body_end_.get(), 0), col_int(body_end_.get(), 1)}, marked_);
    if (rc != SQLITE_DONE)
        return fail(rc, "find the body log's end");
    return body_log_->position({}, marked_);
}
int writer_conn::savepoint() { return control(savepoint_); }
int writer_conn::release() { return control(release_); }
int writer_conn::rollback_to() { return control(rollback_to_); }

void writer_conn::rollback() {
    if (in_txn())
        step(rollback_);
}

bool writer_conn::in_txn() const { return db_ && sqlite3_get_autocommit(db_) == 0; }

// ------------------------------------------------------------------------------------------------
// write_txn

result<void> writer_conn::insert_transition(std::string_view id, std::string_view state, millis at,
                                            std::string_view detail) {
    reset_guard g(transition_);
    sqlite3_stmt* s = transition_.get();
    bind_text(s, 1, id);
    bind_text(s, 2, state);
    bind_int(s, 3, at);
    bind_opt(s, 4, detail);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE)
        return {};
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        return not_found(id);
    return fail(rc, "insert transition");
}

result<void> writer_conn::update_one(const statement& st, std::string_view id, std::string_view what) {
    int rc = sqlite3_step(st.get());
    if (rc != SQLITE_DONE)
        return fail(rc, what);
    if (sqlite3_changes(db_) == 0)
        return not_found(id);
    return {};
}

result<insert_outcome> writer_conn::insert_message(const new_message& m) {
    if (m.id.empty())
        return error("store.invalid", "a message needs an id");
    const message_facts& f = m.facts;
    const millis now = now_ms();
    std::optional<body_ref> logged;
    if (body_log_) {
        // A file that cannot be written fails the store like SQLite's own I/O errors.
        auto failed = [&](const error& e) {
            if (e.code == "store.io")
                note_io_failure(e);
            return e;
        };
        if (!body_log_->positioned())
            if (auto r = position_body_log(); !r)
                return failed(r.error());
        auto r = body_log_->append(m.id, m.body());
        if (!r)
            return failed(r.error());
        logged = *r;
    }
    {
        reset_guard g(insert_);
        sqlite3_stmt* s = insert_.get();
        bind_text(s, 1, m.id);
        bind_opt(s, 2, f.msg_id);
        bind_text(s, 3, f.is_apprec() ? "apprec" : "msghead");
        bind_opt(s, 4, f.msg_type);
        bind_opt(s, 5, f.root_ns);
        bind_opt(s, 6, f.content_ns);
        bind_opt(s, 7, f.sender.lowest_her());
        bind_opt(s, 8, f.sender.lvl1_her);
        bind_opt(s, 9, f.receiver.lowest_her());
        bind_opt(s, 10, f.receiver.lvl1_her);
        bind_opt(s, 11, f.ref_to_conversation);
        bind_opt(s, 12, f.ref_to_parent);
        bind_opt(s, 13, f.gen_date);
        bind_text(s, 14, m.state);
        bind_opt(s, 15, m.rule);
        bind_opt(s, 16, m.adapter);
        bind_opt(s, 17, m.source);
        bind_opt(s, 18, m.error_code);
        bind_opt(s, 19, m.error_text);
        bind_opt(s, 20, m.original_id);
        bind_opt(s, 21, f.original_msg_id);
        bind_int(s, 22, now);
        bind_int(s, 23, static_cast<std::int64_t>(m.body().size()));
        bind_opt(s, 24, m.content_type);
        bind_int(s, 25, m.http_status);
        bind_opt(s, 26, m.response_json);
        if (logged) {
            bind_int(s, 27, logged->segment);
            bind_int(s, 28, logged->offset);
            bind_int(s, 29, logged->crc);
        } else {
            for (int i = 27; i <= 29; ++i)
                sqlite3_bind_null(s, i);
        }
        int rc = sqlite3_step(s);
        if (rc != SQLITE_DONE)
            return fail(rc, "insert message");
    }
    if (sqlite3_changes(db_) == 0) {
        // ON CONFLICT DO NOTHING: an earlier message has this (sender HER-id, MsgId).
        if (logged)
            body_log_->take_back(*logged);
        reset_guard g(duplicate_);
        sqlite3_stmt* s = duplicate_.get();
        bind_text(s, 1, f.sender.lowest_her());
        bind_text(s, 2, f.msg_id);
        int rc = sqlite3_step(s);
        if (rc != SQLITE_ROW)
            return fail(rc == SQLITE_DONE ? SQLITE_INTERNAL : rc, "look up duplicate");
        insert_outcome out;
        out.duplicate = true;
        out.id = col_text(s, 0);
        out.http_status = static_cast<int>(col_int(s, 1));
        out.response_json = col_text(s, 2);
        return out;
    }
    if (!logged) {
        reset_guard g(body_);
        bind_text(body_.get(), 1, m.id);
        bind_blob(body_.get(), 2, m.body());
        if (int rc = sqlite3_step(body_.get()); rc != SQLITE_DONE)
            return fail(rc, "insert body");
    }
    if (m.initial_states.empty()) {
        if (auto r = insert_transition(m.id, m.state, now, initial_detail(m, m.state)); !r)
            return r.error();
    } else {
        // A message's first transitions (received, validated, routed: same time) in one row, the
        // states and their details joined by transition_separator; the reader shows them as the
        // rows they stand for (schema 7). Two rows and their index entries fewer per message:
        // inserting a message 100 400 -> 82 000 instructions (issue 3's profile).
        std::string states, details;
        for (std::size_t i = 0; i < m.initial_states.size(); ++i) {
            if (i > 0) {
                states += transition_separator;
                details += transition_separator;
            }
            const std::size_t at = details.size();
            states += m.initial_states[i];
            details += initial_detail(m, m.initial_states[i]);
            std::replace(details.begin() + static_cast<std::ptrdiff_t>(at), details.end(), transition_separator, ' ');
        }
        if (auto r = insert_transition(m.id, states, now, details); !r)
            return r.error();
    }
    insert_outcome out;
    out.id = m.id;
    out.http_status = m.http_status;
    out.response_json = m.response_json;
    return out;
}

result<void> writer_conn::set_state(std::string_view id, std::string_view state, std::string_view detail) {
    const millis now = now_ms();
    {
        reset_guard g(set_state_);
        bind_text(set_state_.get(), 1, id);
        bind_text(set_state_.get(), 2, state);
        bind_int(set_state_.get(), 3, now);
        if (auto r = update_one(set_state_, id, "set state"); !r)
            return r;
    }
    return insert_transition(id, state, now, detail);
}

result<bool> writer_conn::step_guarded(sqlite3_stmt* s, std::string_view id, std::string_view state, millis now,
                                       std::string_view detail, std::string_view what) {
    int rc = sqlite3_step(s);
    if (rc != SQLITE_DONE)
        return fail(rc, what);
    if (sqlite3_changes(db_) == 0)
        return false;
    if (auto r = insert_transition(id, state, now, detail); !r)
        return r.error();
    return true;
}

result<bool> writer_conn::set_state_if(std::string_view id, std::string_view state,
                                       std::initializer_list<std::string_view> from, std::string_view detail) {
    if (from.size() == 0)
        return false;
    const millis now = now_ms();
    if (from.size() <= 3) {
        reset_guard g(set_state_from_);
        sqlite3_stmt* s = set_state_from_.get();
        bind_text(s, 1, id);
        bind_text(s, 2, state);
        bind_int(s, 3, now);
        bind_from_states(s, 4, from);
        auto changed = step_guarded(s, id, state, now, detail, "set state");
        if (!changed || *changed)
            return changed;
    }
    // Nothing changed (or more than three states to compare): is the message there at all, and in
    // which state?
    std::string current;
    {
        reset_guard g(current_state_);
        bind_text(current_state_.get(), 1, id);
        int rc = sqlite3_step(current_state_.get());
        if (rc == SQLITE_DONE)
            return not_found(id);
        if (rc != SQLITE_ROW)
            return fail(rc, "read state");
        current = col_text(current_state_.get(), 0);
    }
    if (from.size() <= 3 || std::find(from.begin(), from.end(), std::string_view(current)) == from.end())
        return false;
    if (auto r = set_state(id, state, detail); !r)
        return r.error();
    return true;
}

result<void> writer_conn::add_transition(std::string_view id, std::string_view state, std::string_view detail) {
    const millis now = now_ms();
    {
        reset_guard g(touch_);
        bind_text(touch_.get(), 1, id);
        bind_int(touch_.get(), 2, now);
        if (auto r = update_one(touch_, id, "touch message"); !r)
            return r;
    }
    return insert_transition(id, state, now, detail);
}

result<void> writer_conn::set_delivery(std::string_view id, int attempts, millis next_attempt_at,
                                       std::string_view last_error) {
    reset_guard g(delivery_);
    sqlite3_stmt* s = delivery_.get();
    bind_text(s, 1, id);
    bind_int(s, 2, attempts);
    bind_int(s, 3, next_attempt_at);
    bind_opt(s, 4, last_error);
    bind_int(s, 5, now_ms());
    return update_one(delivery_, id, "set delivery");
}

result<void> writer_conn::set_delivered(std::string_view id, std::string_view transport_state, int attempts) {
    reset_guard g(delivered_);
    sqlite3_stmt* s = delivered_.get();
    bind_text(s, 1, id);
    bind_int(s, 2, now_ms());
    bind_text(s, 3, transport_state);
    bind_int(s, 4, attempts);
    return update_one(delivered_, id, "set delivered");
}

result<bool> writer_conn::set_delivered_state(std::string_view id, std::string_view transport_state, int attempts,
                                              std::initializer_list<std::string_view> from, std::string_view detail) {
    if (from.size() >= 1 && from.size() <= 3) {
        const millis now = now_ms();
        reset_guard g(delivered_from_);
        sqlite3_stmt* s = delivered_from_.get();
        bind_text(s, 1, id);
        bind_int(s, 2, now);
        bind_text(s, 3, transport_state);
        bind_int(s, 4, attempts);
        bind_text(s, 5, state::delivered);
        bind_from_states(s, 6, from);
        auto changed = step_guarded(s, id, state::delivered, now, detail, "set delivered");
        if (!changed || *changed)
            return changed;
    }
    // Not in one of 'from' (or absent): as the two operations would.
    return write_txn::set_delivered_state(id, transport_state, attempts, from, detail);
}

result<void> writer_conn::set_read(std::string_view id, std::string_view her_id) {
    const millis now = now_ms();
    {
        reset_guard g(read_);
        sqlite3_stmt* s = read_.get();
        bind_text(s, 1, id);
        bind_int(s, 2, now);
        bind_opt(s, 3, her_id);
        if (auto r = update_one(read_, id, "set read"); !r)
            return r;
    }
    return insert_transition(id, state::read, now, her_id.empty() ? std::string() : "by " + std::string(her_id));
}

result<void> writer_conn::set_apprec(std::string_view original_id, std::string_view apprec_id,
                                     std::string_view status, std::string_view errors_json) {
    reset_guard g(apprec_);
    sqlite3_stmt* s = apprec_.get();
    bind_text(s, 1, original_id);
    bind_opt(s, 2, apprec_id);
    bind_opt(s, 3, status);
    bind_opt(s, 4, errors_json);
    bind_int(s, 5, now_ms());
    return update_one(apprec_, original_id, "set apprec");
}

result<void> writer_conn::set_route(std::string_view id, std::string_view rule, std::string_view adapter) {
    reset_guard g(route_);
    sqlite3_stmt* s = route_.get();
    bind_text(s, 1, id);
    bind_opt(s, 2, rule);
    bind_opt(s, 3, adapter);
    bind_int(s, 4, now_ms());
    return update_one(route_, id, "set route");
}

result<void> writer_conn::upsert_party(const party& p) {
    if (p.her_id.empty())
        return error("store.invalid", "a party needs a HER-id");
    reset_guard g(party_);
    sqlite3_stmt* s = party_.get();
    bind_text(s, 1, p.her_id);
    bind_opt(s, 2, p.name);
    bind_opt(s, 3, p.type);
    bind_opt(s, 4, p.parent_her_id);
    bind_opt(s, 5, p.org_number);
    bind_opt(s, 6, p.municipality);
    bind_opt(s, 7, p.edi_address);
    bind_opt(s, 8, p.adapter);
    bind_int(s, 9, p.active ? 1 : 0);
    if (int rc = sqlite3_step(s); rc != SQLITE_DONE)
        return fail(rc, "upsert party");
    return {};
}

result<void> writer_conn::delete_all_parties() {
    if (int rc = step(delete_parties_); rc != SQLITE_DONE)
        return fail(rc, "delete parties");
    return {};
}

result<int> writer_conn::prune(std::string_view rule, millis before, int limit) {
    reset_guard g(prune_);
    sqlite3_stmt* s = prune_.get();
    bind_opt(s, 1, rule);  // "" binds NULL: "rule IS NULL"
    bind_int(s, 2, before);
    bind_int(s, 3, limit);
    if (int rc = sqlite3_step(s); rc != SQLITE_DONE)
        return fail(rc, "prune messages");
    // sqlite3_changes counts the messages rows only (cascaded deletes are not counted).
    const int n = sqlite3_changes(db_);
    if (n > 0)
        sweep_wanted_ = true;
    return n;
}

result<std::int64_t> writer_conn::sql_exec(std::string_view sql, const std::vector<sql_value>& params) {
    auto it = feature_.find(std::string(sql));
    if (it == feature_.end()) {
        auto st = statement::prepare(db_, sql);
        if (!st)
            return st.error();
        it = feature_.emplace(std::string(sql), std::move(*st)).first;
    }
    reset_guard g(it->second);
    sqlite3_stmt* s = it->second.get();
    if (int rc = bind_values(s, params); rc != SQLITE_OK)
        return fail(rc, "bind feature statement");
    int rc = sqlite3_step(s);
    while (rc == SQLITE_ROW)
        rc = sqlite3_step(s);
    if (rc != SQLITE_DONE)
        return fail(rc, "feature statement");
    return static_cast<std::int64_t>(sqlite3_changes(db_));
}

} // namespace broker::store::detail
