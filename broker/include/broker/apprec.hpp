// Building AppRec (applikasjonskvittering) documents, v1.0 (2004-11-21) and v1.1 (2012-02-15).
#pragma once

#include "broker/error.hpp"
#include "broker/message.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace broker::apprec {

enum class status { ok = 1, rejected = 2, ok_error_in_part = 3 };

/// "Ok" | "Rejected" | "OkErrorInMessagePart" (EDI 2.0 names) ↔ status.
const char* status_name(status s) noexcept;
result<status> parse_status_name(std::string_view s);
/// Kodeverk 8258 display name: "OK", "Avvist", "OK, feil i delmelding".
const char* status_dn(status s) noexcept;
/// Kodeverk 8221 display name for a known code ("E21" → "Mottaker finnes ikke"), else "".
const char* error_dn(std::string_view code) noexcept;

struct request {
    std::string version = "1.1";          ///< "1.0" or "1.1"
    status st = status::ok;
    std::vector<apprec_error_entry> errors;  ///< required (≥1) for rejected
    std::string id;                       ///< the AppRec's own Id (new UUID); generated if empty
    std::string gen_date;                 ///< xs:dateTime; now (UTC) if empty
    /// The original message: its sender becomes our Receiver, its receiver our Sender.
    message_facts original;
    /// Override the AppRec sender (the party answering) when it is not the original receiver,
    /// e.g. the broker itself rejecting on behalf of an unknown receiver. Empty = original.receiver.
    party_ref sender_override;
    std::string software_name = "edibroker";
    std::string software_version;
};

/// Build the AppRec XML. Enforces the standard: status 2 needs at least one error; the original
/// must have a MsgId and a sender HER-id; never an AppRec for an AppRec (error code "apprec.on-apprec").
result<std::string> build(const request& r);

/// A new random UUID (v4), lower-case.
std::string new_uuid();
/// A new time-ordered UUID (v7: 48-bit Unix milliseconds, then 74 random bits), lower-case. For
/// the broker's own row ids: consecutive ids land next to each other in the store's id indexes
/// (a random v4 id dirties a random index page per insert).
std::string new_time_ordered_uuid();
/// Current UTC time as xs:dateTime with milliseconds and 'Z'.
std::string now_datetime();

} // namespace broker::apprec
