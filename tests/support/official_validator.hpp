// Reference verdicts: validate a document with Xerces-C++ against the OFFICIAL KITH schemas kept in
// ../shared/interop (fiks-nhn-client/msh-client/src/main/resources/xsd/, loaded through
// validation/official-all.xsd). Used by differential tests to check edibroker's own schemas/.
//
// Independent of broker/src/xml on purpose (own parser set-up, DOM-based fellesformat unwrap), so
// the two implementations check each other.
#pragma once

#include <string>
#include <string_view>

namespace testing {

struct official_result {
    bool valid = false;       ///< well-formed and valid against the official schemas
    std::string first_error;  ///< "line:col: reason" of the first error (fatal or schema), "" if valid
};

/// Validate 'xml' against the official MsgHead v1.2, Dialogmelding 1.0/1.1, AppRec 1.0/1.1 and
/// Base64Container schemas (with their kith/felleskomponent1/xmldsig imports). A NAV
/// EI_fellesformat envelope is unwrapped first: its /EI_fellesformat/MsgHead is what is validated.
/// The root must be in one of those namespaces, else the result is invalid.
/// Thread-safe: each thread has its own parser and grammar pool, built on first use.
/// Requires testing::have_interop(); throws std::runtime_error if the official schemas do not load.
official_result official_verdict(std::string_view xml);

} // namespace testing
