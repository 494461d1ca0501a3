// Digihelse (issue 6), messages and appointments: the rules the helsenorge portal enforces on
// citizen dialogue, threading by ConversationRef, the identities of a relative acting with power
// of attorney, and the appointment table (EPJ appointments in xCal, cancellations by the citizen
// and their outcome). The engine calls the hooks below at three points; everything else lives here.
//
// Appointment states (one row per appointment message; the newest row of a uid is current):
//
//   planned ──(cancellation from the portal)──► cancel-requested ──AppRec OK──────► cancelled
//      ▲  │                                            └────────AppRec rejected──► cancel-refused
//      │  └─(EPJ sends status CANCELLED)──► cancelled
//      └─(EPJ sends a change, same uid)     (a new uid with related-to = old uid: old ► replaced)
#pragma once

#include "broker/error.hpp"
#include "broker/message.hpp"
#include "broker/router.hpp"
#include "broker/store.hpp"
#include "digihelse/scan.hpp"

#include <boost/json/object.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace broker::digihelse {

/// Message functions (MsgInfo/Type, kodeverk 8279).
namespace msg_type {
inline constexpr std::string_view citizen_prefix = "DIALOG_INNBYGGER_";
inline constexpr const char* appointment = "DIALOG_INNBYGGER_AVTALEUTSENDING";
inline constexpr const char* cancellation = "DIALOG_INNBYGGER_AVTALEAVBESTILLING";
} // namespace msg_type

/// The portal's limits on citizen dialogue.
namespace limits {
inline constexpr std::size_t max_text_chars = 1000;        ///< message text, code points
inline constexpr std::size_t max_attachments = 3;
inline constexpr std::size_t max_attachment_bytes = 4u << 20;  ///< 4 MB (MiB) decoded, each
inline constexpr std::size_t max_reason_chars = 400;       ///< cancellation reason, code points
} // namespace limits

/// Appointment states as stored and shown.
namespace appointment_state {
inline constexpr const char* planned = "planned";
inline constexpr const char* cancel_requested = "cancel-requested";
inline constexpr const char* cancelled = "cancelled";
inline constexpr const char* cancel_refused = "cancel-refused";
inline constexpr const char* replaced = "replaced";
} // namespace appointment_state

/// A refusal carries an AppRec error code of kodeverk 8221 (error::code) and a reason that names
/// the rule and the limit, never content (error::message).
/// What intake adds for an accepted Digihelse message.
struct intake_effect {
    /// Runs inside intake's transaction, after the message row is inserted (empty: nothing).
    store::write_op write;
    /// Added to the 201 answer as "warning" (e.g. a reply whose parent is unknown); "" for none.
    std::string warning;
};

/// Whether 'f' is a message these rules apply to (a MsgHead with a DIALOG_INNBYGGER_* function).
bool applies(const message_facts& f);

/// Hook 1, intake after validation, before routing (engine::intake): check the portal rules,
/// threading, and for appointment messages the xCal content and the appointment table. 'id' is the
/// broker id the message will be stored under. An error refuses the message (AppRec with the code).
/// Runs on: the connection's strand; reads the store through 'rd'. Never throws.
/// 'scanned': what a scan_observer collected during validation (scan.hpp); nullptr scans
/// 'document' here.
result<intake_effect> check_intake(const message_facts& f, std::string_view document, const std::string& id,
                                   store::reader& rd, const routing::address_registry& registry,
                                   const scan_result* scanned = nullptr);

/// Hook 2, intake of an AppRec once it is correlated with its original (engine::intake): for a
/// cancellation, the EPJ's answer decides the appointments' outcome. Empty when nothing to do.
store::write_op on_apprec(const store::message_row& original, const message_facts& apprec);

/// Hook 3, GET /Messages/{id}/status: the Digihelse facts of the message (patient, acting person,
/// thread; for a cancellation its appointments) as "digihelse", when there are any.
void add_status(store::reader& rd, const std::string& id, boost::json::object& status);

/// REST: GET /Appointments?patientId=...[&from=&to=&state=a,b&contactHerId=] (the portal's
/// HentPlanlagteTimer as REST) and GET /Appointments/{uid} (its history). 'parts' are the path
/// segments, parts[0] == "Appointments".
struct http_answer {
    int status = 200;
    std::string json;
};
http_answer appointments_endpoint(store::reader& rd, std::string_view method, const std::vector<std::string>& parts,
                                  std::string_view query);

} // namespace broker::digihelse
