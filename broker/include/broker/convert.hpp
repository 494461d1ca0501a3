// Version conversion between the dialects EPJ systems speak: Dialogmelding 1.1 → 1.0 (where the
// content maps without loss) and AppRec 1.1 ↔ 1.0 (always: the instances are structurally
// identical). Used by adapters whose vendor speaks an older version (visma). Never throws.
//
// What "without loss" means for Dialogmelding 1.1 → 1.0 (schemas/dialogmelding-v1.*.xsd):
//   refused (error code T10, the reason names the element):
//     - Foresporsel/EmneSporsmal, Foresporsel/KodetOpplysning (not in 1.0)
//     - Foresporsel/Sporsmal with element content (XHTML; 1.0 takes text only)
//     - more than one Foresporsel/TypeJournalinfo (1.0 takes one)
//     - RollerRelatertNotat/TilknyttetEnhet (not in 1.0), or a RollerRelatertNotat naming neither a
//       HealthcareProfessional nor a Person (1.0 requires one)
//   everything else moves to the 1.0 namespace as it is; the MsgHead around it is unchanged
//   (MsgId, type, parties), so AppRecs and status still refer to the same message.
// Every result is validated against the broker's 1.0 schemas before it is returned.
#pragma once

#include "broker/error.hpp"

#include <string>
#include <string_view>

namespace broker::convert {

/// A MsgHead whose Dialogmelding content is 1.1, rewritten with Dialogmelding 1.0 content.
/// Errors: "T01" (not well-formed), "T10" (not convertible without loss, or no Dialogmelding 1.1
/// in it), "T02" (the result would not validate — a bug or an input that did not validate).
result<std::string> dialog_1_1_to_1_0(std::string_view msghead);

/// Only the verdict of dialog_1_1_to_1_0 (same checks, same errors).
result<void> check_dialog_1_1_to_1_0(std::string_view msghead);

/// AppRec 1.1 (2012-02-15) → 1.0 (2004-11-21): namespace and MIGversion ("1.0 2004-11-21").
result<std::string> apprec_1_1_to_1_0(std::string_view apprec);

/// AppRec 1.0 → 1.1: namespace and MIGversion ("v1.1 2012-02-15").
result<std::string> apprec_1_0_to_1_1(std::string_view apprec);

} // namespace broker::convert
