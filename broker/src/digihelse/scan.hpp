// What the Digihelse rules read from a citizen-dialogue or appointment message, in one SAX pass
// without schema (the document was validated by intake before): the message text's length, the
// attachments (type, decoded size, first bytes), the person acting for the patient, the
// cancellation reason and the xCal events. Nothing here is logged.
#pragma once

#include "broker/error.hpp"

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <xercesc/util/XercesDefs.hpp>

XERCES_CPP_NAMESPACE_BEGIN
class SAX2XMLReader;
class ContentHandler;
XERCES_CPP_NAMESPACE_END

namespace broker::digihelse {

/// One Document after the first (the first carries the business message).
struct attachment {
    int document = 0;           ///< 1-based Document number
    std::string msg_type;       ///< RefDoc/MsgType/@V (kodeverk 8114: XML, A, REF)
    std::string mime_type;      ///< RefDoc/MimeType, trimmed
    std::string content_root;   ///< local name of RefDoc/Content's child ("Base64Container", "icalendar", ...)
    std::string content_ns;     ///< its namespace
    bool external = false;      ///< RefDoc/FileReference instead of Content
    std::size_t decoded_size = 0;  ///< Base64Container: size of the decoded bytes
    std::string head;           ///< Base64Container: the first decoded bytes (magic number), at most 16
    bool bad_base64 = false;    ///< Base64Container text is not base64
    /// A file (attachment proper): base64 content, an external reference, or MsgType "A".
    bool is_file() const { return content_root == "Base64Container" || external || msg_type == "A"; }
};

/// One xCal vevent: each property's value as written ("" when absent).
struct vevent {
    std::string uid, dtstart, dtend, dtstamp, summary, description, location, url, contact, related_to, status;
    std::string sequence;
};

/// The person acting for the patient (Dialogmelding RollerRelatertNotat/Person).
struct acting_person {
    bool present = false;
    std::string id, id_type;                   ///< Person/Ident/Id and TypeId/@V
    std::string role, role_system, role_name;  ///< RoleToPatient @V, @S, @DN
};

struct scan_result {
    /// Characters (Unicode code points, each field trimmed) of the message text: Sporsmal,
    /// EmneSporsmal and TekstNotatInnhold of the Dialogmelding (markup inside them not counted).
    std::size_t text_chars = 0;
    bool has_reason = false;       ///< Foresporsel/Begrunnelse present
    std::size_t reason_chars = 0;  ///< its length in code points (trimmed)
    std::string reason;            ///< UTF-8, trimmed (only kept up to a few thousand bytes)
    std::vector<attachment> documents;  ///< Documents 2..n
    acting_person acting;
    bool has_calendar = false;     ///< an xCal icalendar/vcalendar was found in a Document
    std::string calendar_method;   ///< vcalendar method (PUBLISH, CANCEL, ...)
    std::vector<vevent> events;
};

/// Parse 'document' (a MsgHead) without schema and extract the above. Errors: T01 when it is not
/// well-formed (intake validated it, so this means a bug or a race).
result<scan_result> scan(std::string_view document);

/// The same extraction from the events of a pass someone else runs: intake hands handler() to the
/// validator (xml::validator::validate_observed), so a citizen message is read once, not twice.
/// Read result() only when that pass found the message valid.
class scan_observer {
public:
    scan_observer();
    ~scan_observer();
    scan_observer(const scan_observer&) = delete;
    scan_observer& operator=(const scan_observer&) = delete;
    xercesc::ContentHandler* handler();
    const scan_result& result() const { return result_; }

private:
    struct impl;
    scan_result result_;
    std::unique_ptr<impl> impl_;
};

/// Whether a document may be one the Digihelse rules read (it names a DIALOG_INNBYGGER_ message
/// function somewhere): a cheap test before the parse, so other messages carry no observer.
bool may_apply(std::string_view document);

/// This thread's SAX reader without schema (namespaces on, no external entities or DTDs, entity
/// expansion bounded), built on first use. For the Digihelse passes over documents intake already
/// validated; the caller sets and clears its handlers.
xercesc::SAX2XMLReader& plain_reader();

/// Code points in UTF-8 text.
std::size_t utf8_length(std::string_view s);

} // namespace broker::digihelse
