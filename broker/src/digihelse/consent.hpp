// Digihelse notification consents (issue 6): who is told about a patient's home visits, on which
// channels, at which address, and whether they consented. One row per person in the store's
// `consents` table (migration 3); managed with PUT/GET/DELETE /Consents/{patientId} on the REST
// endpoint and imported from the `consents-file` at start. Contact data is never logged.
#pragma once

#include "broker/error.hpp"
#include "broker/store.hpp"

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace broker::digihelse {

/// One person who may be notified about a patient.
struct consent_person {
    std::string person_id;      ///< the person's own id (FNR/DNR, 11 digits); the patient's for "self"
    std::string role;           ///< "self" | "relative" (a relative with power of attorney)
    std::string name;           ///< optional display name (not used in notifications)
    bool sms = false;           ///< chose SMS
    bool email = false;         ///< chose e-mail
    std::string phone;          ///< E.164-ish, normalised ("+4791234567"); required when sms
    std::string email_address;  ///< required when email
    bool consent = false;       ///< consented to visit notifications
};

struct patient_consents {
    std::string patient_id;  ///< FNR/DNR, 11 digits
    std::vector<consent_person> persons;
};

/// Limits of one patient's set.
inline constexpr std::size_t max_persons = 20;

/// Whether 's' is a Norwegian person id as used here (11 digits).
bool is_person_id(std::string_view s);

/// The JSON body of PUT /Consents/{patientId}: {"persons": [{"personId", "role", "name",
/// "channels": ["sms","email"], "phone", "email", "consent"}]}. Errors (code request.invalid)
/// name the field and the person's index, never its value.
result<patient_consents> parse_consents(const boost::json::value& body, std::string_view patient_id);

/// A consents file: {"patients": [{"patientId": "...", "persons": [...]}]}.
result<std::vector<patient_consents>> parse_consents_file(const std::string& path);

/// The JSON of one patient's set (GET /Consents/{patientId}), addresses included.
boost::json::object to_json(const patient_consents& pc);

/// Replace the patient's set in the store (inside a write operation). An empty set deletes it.
result<void> replace_consents(store::write_txn& t, const patient_consents& pc, std::string_view source);

/// The patient's set as stored (empty persons when none).
result<patient_consents> load_consents(store::reader& rd, std::string_view patient_id);

/// Import a consents file: each patient in it has its set replaced (others are kept).
/// Returns the number of patients imported. Errors name the file (and field).
result<std::size_t> import_consents_file(store::store& st, const std::string& path);

} // namespace broker::digihelse
