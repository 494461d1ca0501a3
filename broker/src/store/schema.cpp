// Schema migrations. Each entry of 'migrations' moves the database from version i to i+1; entries
// are only ever appended, never edited, once released. The whole list runs in one transaction at
// open, so a database is never left half-migrated.
//
// Conventions: absent strings are NULL (partial indexes skip them, so messages with an unknown
// sender or MsgId are stored and never de-duplicated); times are integer ms since the epoch (UTC);
// read_at/delivered_at are NULL while absent; next_attempt_at 0 means "due now".
#include "store/schema.hpp"

#include "store/sqlite_util.hpp"

#include <iterator>
#include <string>

namespace broker::store::detail {
namespace {

struct migration {
    int version;
    const char* sql;
};

// clang-format off
const migration migrations[] = {
{1, R"sql(
CREATE TABLE messages (
    id                 TEXT    NOT NULL PRIMARY KEY,
    msg_id             TEXT,
    kind               TEXT    NOT NULL,
    msg_type           TEXT,
    root_ns            TEXT,
    content_ns         TEXT,
    sender_her         TEXT,
    sender_lvl1_her    TEXT,
    receiver_her       TEXT,
    receiver_lvl1_her  TEXT,
    conversation_ref   TEXT,
    parent_ref         TEXT,
    gen_date           TEXT,
    state              TEXT    NOT NULL,
    rule               TEXT,
    adapter            TEXT,
    source             TEXT,
    error_code         TEXT,
    error_text         TEXT,
    original_id        TEXT,
    original_msg_id    TEXT,
    apprec_id          TEXT,
    apprec_status      TEXT,
    apprec_errors_json TEXT,
    transport_state    TEXT    NOT NULL DEFAULT 'Unconfirmed',
    read_by            TEXT,
    read_at            INTEGER,
    received_at        INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    delivered_at       INTEGER,
    attempts           INTEGER NOT NULL DEFAULT 0,
    next_attempt_at    INTEGER NOT NULL DEFAULT 0,
    last_error         TEXT,
    size               INTEGER NOT NULL DEFAULT 0,
    content_type       TEXT,
    http_status        INTEGER NOT NULL DEFAULT 0,   -- the answer given to the sender,
    response_json      TEXT                          -- replayed to duplicates
);

-- The de-duplication key: (lowest sender HER-id, MsgId) when both are known.
CREATE UNIQUE INDEX ux_messages_sender_msg_id ON messages(sender_her, msg_id)
    WHERE sender_her IS NOT NULL AND msg_id IS NOT NULL;
CREATE INDEX ix_messages_receiver_state ON messages(receiver_her, state, received_at)
    WHERE receiver_her IS NOT NULL;
-- The inbox poll (list with receivers + unread_only): holds only unread, deliverable messages, so
-- a poll costs what is unread, not the receiver's history. The WHERE must match list_sql's text.
CREATE INDEX ix_messages_unread ON messages(receiver_her, received_at)
    WHERE read_at IS NULL AND state NOT IN ('rejected', 'dead');
CREATE INDEX ix_messages_sender ON messages(sender_her, received_at) WHERE sender_her IS NOT NULL;
CREATE INDEX ix_messages_msg_id ON messages(msg_id, received_at) WHERE msg_id IS NOT NULL;
CREATE INDEX ix_messages_conversation ON messages(conversation_ref, received_at)
    WHERE conversation_ref IS NOT NULL;
CREATE INDEX ix_messages_type ON messages(msg_type, received_at) WHERE msg_type IS NOT NULL;
CREATE INDEX ix_messages_state ON messages(state, received_at);
CREATE INDEX ix_messages_received ON messages(received_at);
-- Only messages waiting for (re)delivery are in here; due_for_delivery names it (INDEXED BY).
CREATE INDEX ix_messages_due ON messages(next_attempt_at, received_at)
    WHERE state IN ('routed', 'failed') AND adapter IS NOT NULL;
CREATE INDEX ix_messages_original ON messages(original_id) WHERE original_id IS NOT NULL;

-- Bodies apart, so listing never reads them. Kept byte-exact as received.
CREATE TABLE bodies (
    id  TEXT NOT NULL PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
    raw BLOB NOT NULL
);

-- seq is the rowid: strictly increasing because transitions are never deleted except with their
-- message, so it orders the transitions of a message (AUTOINCREMENT's extra
-- sqlite_sequence write per row buys nothing here).
CREATE TABLE transitions (
    seq        INTEGER PRIMARY KEY,
    message_id TEXT    NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    state      TEXT    NOT NULL,
    at         INTEGER NOT NULL,
    detail     TEXT
);
CREATE INDEX ix_transitions_message ON transitions(message_id);

-- The address registry (mirrors AR CommunicationPartyDetails).
CREATE TABLE parties (
    her_id        TEXT    NOT NULL PRIMARY KEY,
    name          TEXT,
    type          TEXT,
    parent_her_id TEXT,
    org_number    TEXT,
    municipality  TEXT,
    edi_address   TEXT,
    adapter       TEXT,
    active        INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX ix_parties_parent ON parties(parent_her_id) WHERE parent_her_id IS NOT NULL;
)sql"},
{2, R"sql(
-- Operator tools (issue 5). Retention deletes per route: (rule, received_at) finds a route's
-- oldest messages without walking the others.
CREATE INDEX ix_messages_rule ON messages(rule, received_at);
-- Messages on their way, per adapter: queue depth and the oldest waiting message for /metrics.
-- Small by construction (only undelivered messages); the WHERE must match reader::pending's text.
CREATE INDEX ix_messages_pending ON messages(adapter, state, received_at)
    WHERE state IN ('routed', 'failed', 'waiting');
)sql"},
{3, R"sql(
-- Digihelse visit notifications (issue 6, broker/src/digihelse/notify*). Who wants to hear about
-- a patient's home visits, and how: one row per person (the patient, or a relative with power of
-- attorney), with the channels chosen and the consent. Written only through PUT /Consents/{id}
-- and the consents file; addresses are never logged.
CREATE TABLE consents (
    patient_id    TEXT    NOT NULL,
    person_id     TEXT    NOT NULL,            -- the person's own id; the patient's for 'self'
    role          TEXT    NOT NULL,            -- 'self' | 'relative' (with power of attorney)
    name          TEXT,
    sms           INTEGER NOT NULL DEFAULT 0,  -- chose SMS
    email         INTEGER NOT NULL DEFAULT 0,  -- chose e-mail
    phone         TEXT,
    email_address TEXT,
    consent       INTEGER NOT NULL DEFAULT 0,  -- 1: consented to notifications
    source        TEXT,                        -- 'api' | 'file'
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (patient_id, person_id)
) WITHOUT ROWID;

-- One notification per (visit notice, person, channel): the outbox of the SMS/e-mail senders.
-- state: queued -> sent | retrying -> ... -> sent | failed. Address and text are kept only until
-- the notification is final (then set to ''), so the table holds no contact data for history.
CREATE TABLE notifications (
    id              TEXT    NOT NULL PRIMARY KEY,
    message_id      TEXT    NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    patient_id      TEXT    NOT NULL,
    person_id       TEXT    NOT NULL,
    role            TEXT    NOT NULL,
    channel         TEXT    NOT NULL,          -- 'sms' | 'email'
    address         TEXT    NOT NULL,
    subject         TEXT,
    body            TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    sent_at         INTEGER
);
CREATE UNIQUE INDEX ux_notifications_key ON notifications(message_id, person_id, channel);
-- The senders' scan: only notifications still to send are in here.
CREATE INDEX ix_notifications_due ON notifications(channel, next_attempt_at)
    WHERE state IN ('queued', 'retrying');
CREATE INDEX ix_notifications_patient ON notifications(patient_id, created_at);
-- Which visit notices were planned (in the same transaction as their notifications), so a broker
-- stopped between storing a visit notice and planning it plans it at the next start.
CREATE TABLE notify_plans (
    message_id TEXT    NOT NULL PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
    planned_at INTEGER NOT NULL
) WITHOUT ROWID;
)sql"},
{4, R"sql(
-- Digihelse appointments and citizen dialogue (issue 6, broker/src/digihelse/ appointments*,
-- portal_rules*). One row per appointment message (a new appointment or a change of one), keyed by
-- the xCal uid; seq orders the changes, so the newest row of a uid is its current version.
-- related_to names the uid an instance replaces. state: planned | cancel-requested | cancelled |
-- cancel-refused | replaced. No foreign key to messages: the table outlives message retention.
CREATE TABLE appointments (
    seq           INTEGER PRIMARY KEY,
    uid           TEXT    NOT NULL,
    message_id    TEXT    NOT NULL,      -- the AVTALEUTSENDING that carried this version
    patient_id    TEXT    NOT NULL,
    contact_her   TEXT    NOT NULL,      -- owner of the appointment: receiver of cancellations
    sender_her    TEXT,
    receiver_her  TEXT,
    dtstart       TEXT    NOT NULL,      -- as written (xs:dateTime)
    dtend         TEXT    NOT NULL,
    start_ms      INTEGER NOT NULL,
    end_ms        INTEGER NOT NULL,
    summary       TEXT,
    description   TEXT,
    location      TEXT,
    video_url     TEXT,
    related_to    TEXT,
    sequence      INTEGER,
    state         TEXT    NOT NULL,
    cancel_id     TEXT,                  -- broker id of the cancellation message
    cancel_reason TEXT,
    state_detail  TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX ix_appointments_uid ON appointments(uid, seq);
CREATE INDEX ix_appointments_patient ON appointments(patient_id, start_ms);
CREATE INDEX ix_appointments_cancel ON appointments(cancel_id) WHERE cancel_id IS NOT NULL;

-- Identities and thread facts of a citizen-dialogue message: the patient and, when a relative
-- with power of attorney writes, the acting person. Shown in the message status, never logged.
CREATE TABLE dialogue_facts (
    message_id         TEXT NOT NULL PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
    patient_id         TEXT,
    patient_id_type    TEXT,
    acting_id          TEXT,
    acting_id_type     TEXT,
    acting_role        TEXT,
    acting_role_system TEXT,
    acting_role_name   TEXT,
    thread             TEXT,             -- first | reply | parent-unknown
    conversation       TEXT,             -- RefToConversation (MsgId of the first message)
    parent_id          TEXT              -- broker id of the parent message, when known
) WITHOUT ROWID;
)sql"},
{5, R"sql(
-- One index for both de-duplication and look-up by MsgId (issue 3's profile: every index on a
-- random key costs a page write per message). NULLs are distinct in a UNIQUE index, so a message
-- with an unknown sender or MsgId is still stored and never de-duplicated, as before; and the
-- index now also serves "msgId = ?" (AppRec linking, the operators' search), which had its own.
DROP INDEX ux_messages_sender_msg_id;
DROP INDEX ix_messages_msg_id;
CREATE UNIQUE INDEX ux_messages_msg_id ON messages(msg_id, sender_her);
-- A partial index's WHERE runs for every row written. SQLite codes an IN list of more than two
-- constants as a temporary b-tree built anew each time, so "state IN (3 states)" cost a b-tree
-- per message written (issue 3's profile); the same condition as ORs is three comparisons.
-- reader::pending's WHERE must match this text.
DROP INDEX ix_messages_pending;
CREATE INDEX ix_messages_pending ON messages(adapter, state, received_at)
    WHERE state = 'routed' OR state = 'failed' OR state = 'waiting';
)sql"},
{6, R"sql(
-- Fewer index entries rewritten per message (issue 3's profile: the store writer spent twice the
-- CPU of a bare insert + update, most of it in index b-trees). A delivery changes the state; every
-- index keyed on the state took a delete and an insert for it.
-- The receiver's listing keeps the newest first per receiver; a state filter on top of it is a
-- filter on those rows (the inbox poll has ix_messages_unread).
DROP INDEX ix_messages_receiver_state;
CREATE INDEX ix_messages_receiver ON messages(receiver_her, received_at) WHERE receiver_her IS NOT NULL;
-- The state index holds only the states an operator looks for and that are rare: not the ones on
-- the way (routed, failed, waiting: ix_messages_pending has them) nor the usual final ones
-- (delivered, read, apprec-ok: the newest messages, found by ix_messages_received). A message
-- delivered as expected never enters it. list_sql's WHERE must match this text.
DROP INDEX ix_messages_state;
CREATE INDEX ix_messages_state ON messages(state, received_at)
    WHERE state <> 'routed' AND state <> 'failed' AND state <> 'waiting' AND state <> 'delivered'
      AND state <> 'read' AND state <> 'apprec-ok';
)sql"},
{7, R"sql(
-- From here on a message's first transitions may be one row: states and details joined by U+001F
-- (schema.hpp, transition_separator). Nothing to change in the tables; the version stops an
-- older edibroker, which would show such a row as one odd state, from opening the file.
SELECT 1;
)sql"},
{8, R"sql(
-- The body log (body_log.hpp): a message's body may be in a segment file beside the database
-- instead of in bodies: body_seg (the file's number), body_off (where the body starts), body_crc
-- (its CRC-32C); its length is size. NULL body_seg: the body is in bodies (every message stored
-- before schema 8, and with body-log = off). The index finds where to append (the highest
-- offset) and whether a segment is still named.
ALTER TABLE messages ADD COLUMN body_seg INTEGER;
ALTER TABLE messages ADD COLUMN body_off INTEGER;
ALTER TABLE messages ADD COLUMN body_crc INTEGER;
CREATE INDEX ix_messages_body ON messages(body_seg, body_off) WHERE body_seg IS NOT NULL;
)sql"},
{9, R"sql(
-- How far the body log is known to be on the disk (body_log.hpp, "Durability"): every body that
-- ends at or before (seg, end_off) was synced before its message was acknowledged and before this
-- row moved past it. Bodies beyond it are the last transactions' and are read back when the store
-- opens. Up to schema 8 a body was synced before its row was committed: all of them are.
CREATE TABLE body_log_synced (
    id      INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    seg     INTEGER NOT NULL,
    end_off INTEGER NOT NULL
);
INSERT INTO body_log_synced(id, seg, end_off) VALUES(1, 0, 0);
UPDATE body_log_synced SET (seg, end_off) =
    (SELECT body_seg, body_off + size FROM messages WHERE body_seg IS NOT NULL
     ORDER BY body_seg DESC, body_off DESC LIMIT 1)
  WHERE EXISTS (SELECT 1 FROM messages WHERE body_seg IS NOT NULL);
)sql"},
};
// clang-format on

result<int> current_version(sqlite3* db) {
    auto st = statement::prepare(db, "SELECT COALESCE(MAX(version), 0) FROM schema_version");
    if (!st)
        return st.error();
    reset_guard g(*st);
    int rc = sqlite3_step(st->get());
    if (rc != SQLITE_ROW)
        return sql_error(db, rc, "read schema_version");
    return static_cast<int>(col_int(st->get(), 0));
}

result<int> migrate_in_txn(sqlite3* db) {
    if (auto r = exec(db,
                      "CREATE TABLE IF NOT EXISTS schema_version ("
                      " version INTEGER NOT NULL PRIMARY KEY,"
                      " applied_at INTEGER NOT NULL)",
                      "create schema_version");
        !r)
        return r.error();
    auto cur = current_version(db);
    if (!cur)
        return cur.error();
    const int latest = latest_schema_version();
    if (*cur > latest)
        return error("store.schema", "database schema version " + std::to_string(*cur) +
                                         " is newer than this edibroker supports (" + std::to_string(latest) +
                                         "); use a newer edibroker or another database file");
    auto ins = statement::prepare(db, "INSERT INTO schema_version(version, applied_at) VALUES(?1, ?2)");
    if (!ins)
        return ins.error();
    for (const auto& m : migrations) {
        if (m.version <= *cur)
            continue;
        if (auto r = exec(db, m.sql, "migration " + std::to_string(m.version)); !r)
            return r.error();
        reset_guard g(*ins);
        bind_int(ins->get(), 1, m.version);
        bind_int(ins->get(), 2, now_ms());
        if (int rc = sqlite3_step(ins->get()); rc != SQLITE_DONE)
            return sql_error(db, rc, "record migration");
    }
    return latest;
}

} // namespace

int latest_schema_version() { return migrations[std::size(migrations) - 1].version; }

result<int> migrate(sqlite3* db) {
    if (auto r = exec(db, "BEGIN IMMEDIATE", "begin migration"); !r)
        return r.error();
    auto v = migrate_in_txn(db);
    if (!v) {
        sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
        return v.error();
    }
    if (auto r = exec(db, "COMMIT", "commit migration"); !r) {
        sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
        return r.error();
    }
    return v;
}

const char* const message_columns =
    "id, msg_id, kind, msg_type, root_ns, content_ns, sender_her, sender_lvl1_her, receiver_her,"
    " receiver_lvl1_her, conversation_ref, parent_ref, gen_date, state, rule, adapter, source, error_code,"
    " error_text, original_id, original_msg_id, apprec_id, apprec_status, apprec_errors_json,"
    " transport_state, read_by, read_at, received_at, updated_at, delivered_at, attempts, next_attempt_at,"
    " last_error, size, content_type";

message_row read_message_row(sqlite3_stmt* s) {
    message_row r;
    int i = 0;
    r.id = col_text(s, i++);
    r.msg_id = col_text(s, i++);
    r.kind = col_text(s, i++);
    r.msg_type = col_text(s, i++);
    r.root_ns = col_text(s, i++);
    r.content_ns = col_text(s, i++);
    r.sender_her = col_text(s, i++);
    r.sender_lvl1_her = col_text(s, i++);
    r.receiver_her = col_text(s, i++);
    r.receiver_lvl1_her = col_text(s, i++);
    r.conversation_ref = col_text(s, i++);
    r.parent_ref = col_text(s, i++);
    r.gen_date = col_text(s, i++);
    r.state = col_text(s, i++);
    r.rule = col_text(s, i++);
    r.adapter = col_text(s, i++);
    r.source = col_text(s, i++);
    r.error_code = col_text(s, i++);
    r.error_text = col_text(s, i++);
    r.original_id = col_text(s, i++);
    r.original_msg_id = col_text(s, i++);
    r.apprec_id = col_text(s, i++);
    r.apprec_status = col_text(s, i++);
    r.apprec_errors_json = col_text(s, i++);
    if (r.apprec_errors_json.empty())
        r.apprec_errors_json = "[]";  // message_row's contract: "[]" if none
    r.transport_state = col_text(s, i++);
    r.read_by = col_text(s, i++);
    r.read_at = col_int(s, i++);
    r.received_at = col_int(s, i++);
    r.updated_at = col_int(s, i++);
    r.delivered_at = col_int(s, i++);
    r.attempts = static_cast<int>(col_int(s, i++));
    r.next_attempt_at = col_int(s, i++);
    r.last_error = col_text(s, i++);
    r.size = col_int(s, i++);
    r.content_type = col_text(s, i++);
    return r;
}

} // namespace broker::store::detail
