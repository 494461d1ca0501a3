// The durable message store: one SQLite file in WAL mode, one writer thread with group commit,
// any number of readers.
//
// Message lifecycle (each transition is recorded with its time in `transitions`):
//
//   received ──► validated ──► routed ──► delivered ──► apprec-ok / apprec-rejected / apprec-partial
//      │             │            │  ▲        │                         │
//      │             │            │  └─retry──┤ (failed: retriable)     ▼
//      ▼             ▼            ▼           ▼                        read
//   rejected     unroutable    waiting     dead (permanent failure or attempts exhausted)
//   (T01/T02/T10/E21 ...)      (pull: until fetched)
//
// 'read' is recorded as its own fact (read_at/read_by) and as a transition, whatever the state.
#pragma once

#include "broker/error.hpp"
#include "broker/message.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace broker::store {

/// Message states as stored (text in the database, stable: operators query them).
namespace state {
inline constexpr const char* received = "received";
inline constexpr const char* validated = "validated";
inline constexpr const char* routed = "routed";
inline constexpr const char* waiting = "waiting";          ///< pull delivery: waiting in the inbox
inline constexpr const char* delivered = "delivered";
inline constexpr const char* failed = "failed";            ///< a retriable delivery failure; will retry
inline constexpr const char* dead = "dead";                ///< gave up: permanent failure or attempts exhausted
inline constexpr const char* rejected = "rejected";        ///< refused at intake (T01/T02/T10/E21...)
inline constexpr const char* unroutable = "unroutable";    ///< valid, receiver known, but no rule matched
inline constexpr const char* apprec_ok = "apprec-ok";
inline constexpr const char* apprec_rejected = "apprec-rejected";
inline constexpr const char* apprec_partial = "apprec-partial";  ///< status 3: OK, error in a part
inline constexpr const char* read = "read";
} // namespace state

/// Milliseconds since the Unix epoch (UTC).
using millis = std::int64_t;
millis now_ms();
/// 'ms' as UTC xs:dateTime with milliseconds, "2026-11-22T01:00:00.133Z"; "" for 0 (never).
std::string iso_time(millis ms);

/// A message as intake hands it to the store.
struct new_message {
    std::string id;             ///< broker id (UUID), assigned by intake
    message_facts facts;        ///< sender/receiver/type/...; may be partial for rejected input
    std::string raw;            ///< the business document exactly as received (after base64 decode)
    /// The same document shared instead of copied (intake hands the one it validated and delivers);
    /// when set, it is the body and 'raw' is not read.
    std::shared_ptr<const std::string> shared_raw;
    std::string content_type;   ///< "application/xml"
    std::string source;         ///< where it came from: "http", "amqp:...", "internal" (broker-made AppRec)
    std::string state;          ///< the state after intake (validated/routed/waiting/rejected/unroutable)
    std::vector<std::string> initial_states;  ///< transitions to record, in order, e.g. {received, validated, routed}
    std::string rule;           ///< id of the routing rule that matched ("" if none)
    std::string adapter;        ///< adapter instance that will deliver it ("" if none)
    std::string error_code;     ///< rejection code (T01, T02, T10, E21, ...), "" if accepted
    std::string error_text;     ///< rejection reason (no patient data)
    std::string original_id;    ///< for an AppRec: broker id of the original message, if found
    int http_status = 0;        ///< the answer given to the sender, replayed to duplicates
    std::string response_json;  ///< the JSON body of that answer

    std::string_view body() const { return shared_raw ? std::string_view(*shared_raw) : std::string_view(raw); }
};

/// Result of inserting: either stored, or a duplicate of an earlier (sender HER-id, MsgId).
struct insert_outcome {
    bool duplicate = false;
    std::string id;             ///< the stored id (the earlier one for a duplicate)
    int http_status = 0;        ///< for a duplicate: the first answer's status
    std::string response_json;  ///< for a duplicate: the first answer's body
};

/// One row of `messages` (no body).
struct message_row {
    std::string id;
    std::string msg_id;
    std::string kind;           ///< "msghead" | "apprec"
    std::string msg_type;
    std::string root_ns;
    std::string content_ns;
    std::string sender_her;     ///< lowest level
    std::string sender_lvl1_her;
    std::string receiver_her;   ///< lowest level
    std::string receiver_lvl1_her;
    std::string conversation_ref;
    std::string parent_ref;
    std::string gen_date;
    std::string state;
    std::string rule;
    std::string adapter;
    std::string source;
    std::string error_code;
    std::string error_text;
    std::string original_id;    ///< AppRec → original
    std::string original_msg_id;
    std::string apprec_id;      ///< original → the AppRec that answered it
    std::string apprec_status;  ///< "Ok" | "Rejected" | "OkErrorInMessagePart" | ""
    std::string apprec_errors_json;  ///< JSON array [{errorCode, description}], "[]" if none
    std::string transport_state;     ///< "Unconfirmed" | "Acknowledged" | "Rejected"
    std::string read_by;
    millis read_at = 0;
    millis received_at = 0;
    millis updated_at = 0;
    millis delivered_at = 0;
    int attempts = 0;
    millis next_attempt_at = 0;
    std::string last_error;
    std::int64_t size = 0;
    std::string content_type;
};

struct transition_row {
    std::string state;
    millis at = 0;
    std::string detail;  ///< e.g. "http 503 from https://...", "rule demo-visma", never content
};

/// Filter for listing (all fields optional; empty = no filter).
struct message_filter {
    std::vector<std::string> receivers;  ///< lowest-level receiver HER-ids
    std::string sender;
    std::string msg_type;
    std::string state;
    std::string msg_id;
    std::string conversation;
    std::optional<millis> from, to;
    bool unread_only = false;            ///< read_at IS NULL and state not rejected/dead
    int limit = 100;
};

/// Store-wide figures for operators (metrics, admin API, `edibroker store stats`).
struct store_stats {
    std::int64_t messages = 0;        ///< rows in messages
    std::int64_t size_bytes = 0;      ///< database pages in use × page size
    std::int64_t body_log_bytes = 0;  ///< the body log's segment files
    millis oldest_received_at = 0;    ///< the oldest message's receipt time; 0 when empty
};

/// Messages on their way (routed, failed, waiting), per adapter instance and state.
struct pending_count {
    std::string adapter;
    std::string state;
    std::int64_t count = 0;
    millis oldest_received_at = 0;
};

/// A communication party in the address registry (mirrors AR CommunicationPartyDetails).
struct party {
    std::string her_id;
    std::string name;
    std::string type;            ///< "organisation" | "department" | "service" | "person"
    std::string parent_her_id;
    std::string org_number;      ///< ENH of the party or its parent
    std::string municipality;    ///< kodeverk 3402 code, e.g. "0301"
    std::string edi_address;
    std::string adapter;         ///< adapter instance serving this party ("" = none)
    bool active = true;
    /// Only services and persons receive messages (standards.md §2.6).
    bool can_receive() const { return active && (type == "service" || type == "person"); }
};

/// A value bound to, or read from, a statement on a feature's own tables (sql_exec/sql_query):
/// NULL, an integer or text.
using sql_value = std::variant<std::monostate, std::int64_t, std::string>;
using sql_row = std::vector<sql_value>;

/// The writer-side API, valid only inside a write operation (on the writer thread, inside the
/// group transaction). Each operation runs in its own SAVEPOINT: if it returns an error, its
/// changes are rolled back and the others in the batch still commit.
class write_txn {
public:
    virtual ~write_txn() = default;
    virtual result<insert_outcome> insert_message(const new_message& m) = 0;
    /// Set state (and record the transition). 'detail' is stored with the transition.
    virtual result<void> set_state(std::string_view id, std::string_view state, std::string_view detail) = 0;
    /// Set state only if the current state is one of 'from' (records the transition when it
    /// changes). Returns whether it changed. Used where a later fact must not be overwritten by an
    /// earlier one arriving late (a delivery result after the AppRec, say).
    virtual result<bool> set_state_if(std::string_view id, std::string_view state,
                                      std::initializer_list<std::string_view> from, std::string_view detail) = 0;
    /// Record a transition without changing the current state (e.g. "read").
    virtual result<void> add_transition(std::string_view id, std::string_view state, std::string_view detail) = 0;
    virtual result<void> set_delivery(std::string_view id, int attempts, millis next_attempt_at,
                                      std::string_view last_error) = 0;
    /// Record a successful delivery. 'attempts' is the number of the attempt that succeeded (so
    /// the status counts every attempt, the successful one included); 0 for a pick-up by the
    /// receiver (pull), which is no delivery attempt of the broker's.
    virtual result<void> set_delivered(std::string_view id, std::string_view transport_state, int attempts) = 0;
    /// set_delivered, then set_state_if(id, state::delivered, from, detail): what a successful
    /// delivery records. Returns whether the state changed. The SQLite writer does both in one
    /// UPDATE when the state is one of 'from' (every delivery: issue 3).
    virtual result<bool> set_delivered_state(std::string_view id, std::string_view transport_state, int attempts,
                                             std::initializer_list<std::string_view> from, std::string_view detail) {
        if (auto e = set_delivered(id, transport_state, attempts); !e)
            return e.error();
        return set_state_if(id, state::delivered, from, detail);
    }
    /// Record the read receipt (read_at/read_by + a 'read' transition). A message in state
    /// delivered or waiting moves to 'read'; one that already has an AppRec keeps that state.
    virtual result<void> set_read(std::string_view id, std::string_view her_id) = 0;
    /// Link an original message to the AppRec that answered it and record its outcome.
    virtual result<void> set_apprec(std::string_view original_id, std::string_view apprec_id,
                                    std::string_view status, std::string_view errors_json) = 0;
    virtual result<void> set_route(std::string_view id, std::string_view rule, std::string_view adapter) = 0;
    virtual result<void> upsert_party(const party& p) = 0;
    virtual result<void> delete_all_parties() = 0;
    /// Retention: delete up to 'limit' messages (with their bodies and transitions) routed by
    /// 'rule' ("" = messages without a rule) and received before 'before', oldest first. Messages
    /// still on their way (routed, failed, waiting) are never deleted. Returns how many went.
    virtual result<int> prune(std::string_view rule, millis before, int limit) {
        (void)rule, (void)before, (void)limit;
        return error("store.unsupported", "this store cannot prune");
    }
    /// Features with tables of their own (migrations in schema.cpp; e.g. the Digihelse consents
    /// and notifications, issue 6) run their statements here, inside the group transaction.
    /// Parameters bind as ?1, ?2, ...; the statement is prepared once per SQL text. Returns the
    /// number of rows changed. Never for the messages table: use the operations above.
    virtual result<std::int64_t> sql_exec(std::string_view sql, const std::vector<sql_value>& params) {
        (void)sql, (void)params;
        return error("store.unsupported", "this store cannot run feature statements");
    }
};

/// Read-side API. One reader per thread (its own connection); readers never block the writer.
class reader {
public:
    virtual ~reader() = default;
    virtual result<std::optional<message_row>> get(std::string_view id) = 0;
    virtual result<std::optional<std::string>> body(std::string_view id) = 0;
    virtual result<std::vector<transition_row>> transitions(std::string_view id) = 0;
    virtual result<std::optional<message_row>> find_by_msg_id(std::string_view sender_her, std::string_view msg_id) = 0;
    /// Any message with this MsgId, newest first (AppRec correlation when the sender is ambiguous).
    virtual result<std::vector<message_row>> find_all_by_msg_id(std::string_view msg_id) = 0;
    virtual result<std::vector<message_row>> list(const message_filter& f) = 0;
    /// Messages to (re)deliver: state routed or failed, adapter set, next_attempt_at <= now.
    virtual result<std::vector<message_row>> due_for_delivery(millis now, int limit) = 0;
    virtual result<std::optional<party>> get_party(std::string_view her_id) = 0;
    virtual result<std::vector<party>> all_parties() = 0;
    virtual result<std::int64_t> count_messages() = 0;
    /// Size, message count and the oldest message (operators; served from indexes).
    virtual result<store_stats> stats() { return error("store.unsupported", "this store has no stats"); }
    /// Messages on their way per adapter and state, with the oldest one's receipt time.
    virtual result<std::vector<pending_count>> pending() {
        return error("store.unsupported", "this store cannot count pending messages");
    }
    /// The distinct rule ids stored messages carry (retention walks them), without "".
    virtual result<std::vector<std::string>> stored_rules() {
        return error("store.unsupported", "this store cannot list rules");
    }
    /// The read side of write_txn::sql_exec: run a SELECT on a feature's own tables and return
    /// every row (columns in SELECT order). Prepared once per SQL text on this reader.
    virtual result<std::vector<sql_row>> sql_query(std::string_view sql, const std::vector<sql_value>& params) {
        (void)sql, (void)params;
        return error("store.unsupported", "this store cannot run feature queries");
    }
};

struct options {
    std::string path;                  ///< database file; created with its folder if missing
    std::string synchronous = "FULL";  ///< FULL (default) | NORMAL | OFF
    int max_batch = 256;               ///< most operations per group transaction
    /// Commit pacing (see sqlite_store.hpp): while transactions have company, one starts at least
    /// this long after the previous one started, unless max_batch operations wait (0: off).
    int commit_interval_us = 2000;
    std::size_t queue_limit = 10000;   ///< writer queue bound; beyond it submit() answers store.busy
    /// WAL checkpoints (see sqlite_store.hpp): the background checkpointer runs once per
    /// checkpoint_pages new WAL frames; past wal_restart_pages the writer copies what is left so
    /// the WAL restarts; past 4 x wal_restart_pages it does so whether the checkpointer is busy or not.
    int checkpoint_pages = 1000;
    int wal_restart_pages = 4000;
    /// Bodies of new messages in the body log, segment files in "<path>-bodies" (schema 8;
    /// store/body_log.hpp), instead of in the database. Bodies already stored stay where they are
    /// and are read either way.
    bool body_log = true;
    std::int64_t body_segment_bytes = 64LL << 20;  ///< a body log segment closes past this size
};

/// The writer's counters since the store opened (metrics: operations per commit is how well group
/// commit batches; tests check batching with them).
struct writer_stats {
    std::uint64_t ops = 0;             ///< operations in committed transactions
    std::uint64_t commits = 0;         ///< group transactions committed
    std::uint64_t failed_batches = 0;  ///< batches whose BEGIN or COMMIT failed
    std::uint64_t largest_batch = 0;   ///< most operations in one transaction so far
};

/// A write operation; runs on the writer thread inside the group transaction. It may run twice
/// (when another operation of its batch fails, the batch is run again with a savepoint each), so
/// it assigns its outputs rather than accumulating them, and has no effect outside the transaction.
using write_op = std::function<result<void>(write_txn&)>;
/// Called on the writer thread once the group transaction is durably committed (ok) or failed.
/// Keep it short: hand the result to your own executor.
using write_done = std::function<void(result<void>)>;

class store {
public:
    virtual ~store() = default;
    /// Queue an operation for the writer. Returns an error at once (store.busy) when the queue is
    /// full or the store has failed; otherwise 'done' is called exactly once after commit.
    virtual result<void> submit(write_op op, write_done done) = 0;
    /// The calling thread's reader (opened on first use).
    virtual reader& thread_reader() = 0;
    /// Current writer queue depth (for metrics / back-pressure).
    virtual std::size_t queue_depth() const = 0;
    /// The writer's counters (for metrics); zeros where a store keeps none.
    virtual writer_stats writer_counters() const { return {}; }
    /// Flush the queue, stop the writer, close. Idempotent.
    virtual void close() = 0;
    /// Schema version of the open database.
    virtual int schema_version() const = 0;
};

/// Open (creating or migrating) the store and start its writer thread.
result<std::unique_ptr<store>> open(const options& o);

/// Run 'op' synchronously (submit + wait). For tools and tests, never on an I/O thread.
result<void> write_sync(store& s, write_op op);

} // namespace broker::store
