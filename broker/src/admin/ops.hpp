// Operator queries and actions shared by the admin API (admin_api.cpp) and the command line
// (tools/): message search with filters, the detail of one message, registry search, retention
// planning. JSON shapes here are the admin API's; the CLI prints them as tables or as is (--json).
// Nothing here returns message content: metadata, ids, HER-ids, states and reasons only.
#pragma once

#include "broker/error.hpp"
#include "broker/router.hpp"
#include "broker/server.hpp"
#include "broker/store.hpp"
#include "broker/xml.hpp"

#include <boost/json/object.hpp>

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace broker::ops {

/// "2026-11-22T01:14:09.133Z" (UTC, milliseconds); "" for 0.
using store::iso_time;

/// A time for a filter: ISO 8601 ("2026-11-22", "2026-11-22T01:00", "...:00Z", "...+01:00"), or
/// relative to 'now' ("-30m", "-2h", "-7d", "-45s"), or milliseconds since the epoch.
result<store::millis> parse_time(std::string_view s, store::millis now);

/// Filters for listing messages. Every field maps onto an index (see store/sqlite_reader.cpp).
struct message_query {
    store::message_filter filter;  ///< sender, receivers, type, state, msg_id, from, to, limit
    std::string conversation;      ///< RefToConversation, or the MsgId that started the conversation
};

/// Build a query from named parameters, as the admin API's query string and the CLI's options
/// name them: sender, receiver (comma-separated), type, state, msgId, conversation, from, to,
/// limit (1..10000, default 100). Unknown names are an error (request.invalid).
result<message_query> make_query(const std::map<std::string, std::string>& params, store::millis now);

/// Newest first. A conversation filter finds the first message (its MsgId) and every reply.
result<std::vector<store::message_row>> list_messages(store::reader& rd, const message_query& q);

/// One message as a list item (metadata; no body).
boost::json::object row_json(const store::message_row& m);

/// Everything about one message: metadata, every state transition with its time, the delivery
/// attempts, the AppRec that answered it (status, errors, its own id and state), the read
/// receipt, and for an AppRec the original it answers. nullopt for an unknown id.
result<std::optional<boost::json::object>> message_detail(store::reader& rd, std::string_view id);

/// A party with its ancestors (nearest first) and the adapter serving it.
boost::json::object party_json(const store::party& p);
boost::json::object party_detail(const routing::address_registry& reg, const store::party& p);
/// Case-insensitive substring search over HER-id, name, organisation number, municipality, EDI
/// address and adapter, of the party or of any of its ancestors ("oslo" finds the parties under
/// "Oslo kommune").
std::vector<const store::party*> search_parties(const routing::address_registry& reg, std::string_view text);

/// The rules (in the order they are tried) and adapter instances in force.
boost::json::object routes_json(const routing::rule_set& rules);

/// `routes explain` / POST /admin/routes/explain: the message's verdict and routing facts, the
/// decision, and for every rule (in order) whether it matched and why not.
boost::json::object explain_json(const routing::rule_set& rules, const routing::address_registry& reg,
                                 const xml::validation_result& vr);

/// Retention: which messages may go. One entry per rule id ("" = messages without a rule) with
/// the cut-off time (received before it = prunable). Rules with option retention-days use it,
/// everything else the global retention-days; 0 days means keep (no entry).
struct prune_target {
    std::string rule;
    store::millis before = 0;
    int days = 0;
};
result<std::vector<prune_target>> retention_plan(const routing::rule_set& rules,
                                                 const std::vector<std::string>& stored_rules, int global_days,
                                                 store::millis now);

/// Run retention to the end synchronously, in batches of 'batch' (tools; never on an I/O thread).
result<std::int64_t> prune_sync(store::store& st, const routing::rule_set& rules, int global_days, int batch);

/// Store figures as JSON: messages, sizeBytes, oldestReceivedAt, oldestAgeSeconds, schemaVersion,
/// writeQueueDepth, pending [{adapter, state, count, oldestReceivedAt}].
result<boost::json::object> store_json(store::store& st);

/// Operator resend without a running engine (CLI on the store): route again with 'rs', reset the
/// attempts and leave it 'routed' with next attempt now; a running broker's delivery scanner (or
/// the next start) delivers it. Returns the rule and adapter chosen.
result<std::pair<std::string, std::string>> resend_in_store(store::store& st, const routing::rule_set& rules,
                                                            const routing::address_registry& reg, std::string_view id);

} // namespace broker::ops
