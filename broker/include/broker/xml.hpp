// Parsing and schema validation of inbound documents (Xerces-C++ SAX2 with a cached grammar pool).
#pragma once

#include "broker/error.hpp"
#include "broker/message.hpp"

#include <xercesc/util/XercesDefs.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

XERCES_CPP_NAMESPACE_BEGIN
class ContentHandler;
XERCES_CPP_NAMESPACE_END

namespace broker::xml {

/// Initialise Xerces once per process (idempotent, thread-safe). Call before anything else here.
void platform_init();

/// The verdict on one document, mapped onto the AppRec error codes of kodeverk 8221.
enum class verdict {
    valid,            ///< well-formed and valid against the broker's schemas
    not_well_formed,  ///< T01: not XML / not well-formed / unreadable
    invalid,          ///< T02: does not validate
    unsupported,      ///< T10: a root or content namespace/version the broker does not support
};

/// "T01" / "T02" / "T10", or "" for valid.
const char* apprec_code(verdict v) noexcept;

struct diagnostic {
    int line = 0;    ///< 1-based
    int column = 0;  ///< 1-based
    std::string message;  ///< the parser's reason; names elements, never echoes text content
};

struct validation_result {
    verdict v = verdict::valid;
    std::vector<diagnostic> diagnostics;  ///< empty when valid; at most a few dozen
    message_facts facts;  ///< filled as far as the parse got; reliable when v == valid
    /// True when the sender could be identified (msg_id and the sender's HER-id were read), so a
    /// rejection AppRec can be addressed even for an invalid document.
    bool sender_known() const { return !facts.msg_id.empty() && !facts.sender.lowest_her().empty(); }
};

/// An observer of validate_observed() that is also an attachment_observer may take, for a
/// Base64Container the validator checks itself (see schema_source::base64_by_xerces), the summary
/// of its text instead of the text: asked right after the element's startElement, and if it says
/// yes, one base64_text call just before the element's endElement and no characters events for
/// it. (The validator counts the Base64 anyway; a second pass is saved.)
class attachment_observer {
public:
    virtual ~attachment_observer() = default;
    /// Whether the Base64Container that just started is to come as a summary.
    virtual bool take_base64_summary() = 0;
    /// 'alphabet_chars': the text's Base64 alphabet characters (white space and '=' not counted);
    /// 'head': the first of them, up to 24; 'valid': whether the text is xs:base64Binary.
    virtual void base64_text(std::uint64_t alphabet_chars, std::u16string_view head, bool valid) = 0;
};

/// Where the validator's schemas come from.
struct schema_source {
    /// Empty: the XSDs compiled into the binary (schemas/). Otherwise a folder with the same files.
    std::string directory;
    /// Leave the xs:base64Binary check of Base64Container (attachments) to Xerces instead of the
    /// validator's own, much cheaper one (same verdicts; tests compare the two).
    bool base64_by_xerces = false;
    /// Leave every OID value (CV/@S, Document/OidRef) to Xerces' regular-expression engine instead
    /// of accepting plain ones (digit groups and dots) at once (same verdicts; tests compare the two).
    bool oid_by_xerces = false;
    /// Hand Xerces a UTF-8 document as its bytes instead of as UTF-16 decoded by the validator
    /// (same characters, so the same verdicts and positions; tests compare the two).
    bool utf8_by_xerces = false;
};

/// A validating SAX parser with its own cached grammar pool. Not thread-safe: give each thread its
/// own instance (Xerces builds regex tables lazily without a lock, see limits.md). Creating one
/// loads and pre-compiles every grammar.
class validator {
public:
    virtual ~validator() = default;

    /// Parse, validate and extract facts. Accepts MsgHead (with Dialogmelding 1.0/1.1 and
    /// Base64Container content), AppRec 1.0/1.1, and NAV's EI_fellesformat around a MsgHead (the
    /// inner MsgHead is what is validated). 'system_id' names the document in diagnostics.
    /// Never throws.
    virtual validation_result validate(std::string_view document, std::string_view system_id = "message") = 0;

    /// validate(), and 'observer' receives the content events (startElement, endElement,
    /// characters) of the validating pass too, after the validator's own handling: a feature that
    /// reads more of the message than the routing facts reads it in the same pass instead of a
    /// second one. For EI_fellesformat it sees the inner MsgHead. The events stop where the parse
    /// stops (at a fatal error or an unsupported root); use what it collected only when the
    /// verdict is valid. 'observer' must not throw; nullptr is plain validate().
    virtual validation_result validate_observed(std::string_view document, std::string_view system_id,
                                                XERCES_CPP_NAMESPACE::ContentHandler* observer) {
        (void)observer;
        return validate(document, system_id);
    }

    /// Same, but only well-formedness + fact extraction, no schema (for tools and diagnostics).
    virtual validation_result parse_only(std::string_view document, std::string_view system_id = "message") = 0;
};

/// Builds a validator; fails when a schema does not load (with file:line:col of the XSD problem).
result<std::unique_ptr<validator>> make_validator(const schema_source& src = {});

/// A validator owned by the calling thread, built from the embedded schemas on first use.
validator& thread_validator();

/// If 'document' is NAV's EI_fellesformat, the MsgHead inside it as a standalone document
/// (namespace declarations in scope carried over); otherwise nullopt-like empty string.
std::string unwrap_fellesformat(std::string_view document);

} // namespace broker::xml
