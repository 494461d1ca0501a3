// Appointments (issue 6): the checks and table writes behind the hooks in digihelse.hpp, for
// DIALOG_INNBYGGER_AVTALEUTSENDING (the EPJ's appointment or change) and
// DIALOG_INNBYGGER_AVTALEAVBESTILLING (the citizen's cancellation of one or more appointments).
#pragma once

#include "digihelse/digihelse.hpp"
#include "digihelse/scan.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace broker::digihelse {

/// One row of the appointments table.
struct appointment_row {
    std::int64_t seq = 0;
    std::string uid, message_id, patient_id, contact_her, sender_her, receiver_her;
    std::string dtstart, dtend;
    std::int64_t start_ms = 0, end_ms = 0;
    std::string summary, description, location, video_url, related_to;
    std::int64_t sequence = 0;
    std::string state, cancel_id, cancel_reason, state_detail;
    std::int64_t created_at = 0, updated_at = 0;
};

/// An appointment message from the EPJ: check its one vevent and plan the new row (and the
/// replaced instance, for related-to). Errors carry kodeverk 8221 codes.
result<store::write_op> check_appointment(const message_facts& f, const scan_result& s, const std::string& id,
                                          store::reader& rd, const routing::address_registry& registry);

/// A cancellation from the portal: every vevent names a known appointment of this patient owned
/// by the message's receiver; they all become cancel-requested.
result<store::write_op> check_cancellation(const message_facts& f, const scan_result& s, const std::string& id,
                                           store::reader& rd);

/// The current (newest) row of 'uid', if any.
result<std::optional<appointment_row>> current_appointment(store::reader& rd, const std::string& uid);
/// Every row whose cancellation message is 'cancel_id'.
result<std::vector<appointment_row>> appointments_of_cancellation(store::reader& rd, const std::string& cancel_id);

boost::json::object appointment_json(const appointment_row& a);

/// xs:dateTime to ms since the epoch (UTC; a time without zone is taken as UTC). nullopt if bad.
std::optional<std::int64_t> parse_datetime(std::string_view s);
bool is_uuid(std::string_view s);
bool is_her_id(std::string_view s);

} // namespace broker::digihelse
