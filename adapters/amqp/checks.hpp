// amqp adapter: what edibroker checks on a message that arrives from the service bus before it
// takes it in, and what it answers on the sender's _error queue when it refuses it (helsenorge's
// error-queue protocol, standards §2.1). No qpid-proton here: the proton side decodes a message
// into an 'envelope' first, so these rules are unit-tested on their own.
#pragma once

#include "options.hpp"

#include "broker/xml.hpp"

#include <optional>
#include <string>
#include <vector>

namespace broker::adapters::amqp {

/// errorCondition values of the error-queue protocol (Helsenorge.Messaging's MessageListener).
namespace condition {
inline constexpr const char* not_well_formed = "transport:not-well-formed-xml";
inline constexpr const char* invalid_field = "transport:invalid-field-value";
inline constexpr const char* internal = "transport:internal-error";
inline constexpr const char* unsupported = "transport:unsupported-message";
inline constexpr const char* spoofing = "abuse:spoofing-attack";
} // namespace condition

/// The transport fields of one AMQP message, decoded to text. "" = absent; a field present with
/// a type that cannot carry it (a list as fromHerId, ...) is named in 'unusable'.
struct envelope {
    std::string message_id;
    std::string to;
    std::string reply_to;
    std::string subject;
    std::string content_type;
    std::string correlation_id;
    std::string from_her;       ///< application property fromHerId
    std::string to_her;         ///< toHerId
    std::string cpa_id;         ///< cpaId
    std::string app_timestamp;  ///< applicationTimeStamp (a timestamp, or text)
    std::vector<std::string> unusable;
    bool has_body = false;      ///< one data section (binary) or an amqp-value string
    std::size_t body_size = 0;
};

/// Why a message is refused: what goes into the error message's application properties.
struct refusal {
    std::string condition;               ///< errorCondition
    std::string description;             ///< errorDescription (ids, HER-ids and field names only)
    std::vector<std::string> data;       ///< errorConditionData, ';'-joined on the wire
};

/// The properties helsenorge requires (standards §2.1), their presence and shape, the body and
/// its size, and the content type. pkcs7 (signed and encrypted) payloads are refused as
/// transport:unsupported-message: this instance has no CMS keys.
std::optional<refusal> check_envelope(const envelope& e, const options& o);

/// The document against the envelope: well-formed (and valid when 'schema_checked'), the MsgHead
/// (or AppRec) sender is fromHerId (else abuse:spoofing-attack), the receiver is toHerId and the
/// message function is the subject (else transport:invalid-field-value).
std::optional<refusal> check_document(const envelope& e, const xml::validation_result& vr, bool schema_checked);

/// The HER-id whose _error queue hears about a refused message: fromHerId when it is a HER-id,
/// else the HER-id in reply-to's queue name (by the instance's queue-pattern); "" when neither.
std::string error_target_her(const envelope& e, const options& o);

/// A queue name from a reply-to as senders write it: the part after the last '/', so
/// "/queue/8093244_syncreply" and "8093244_syncreply" name the same queue (AmqpCore.ExtractQueueName).
std::string queue_name_of(std::string_view address);

/// How an error from the engine's sync routing maps onto an errorCondition.
const char* condition_for_sync_error(std::string_view code);

} // namespace broker::adapters::amqp
