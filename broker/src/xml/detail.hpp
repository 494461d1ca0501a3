// Internals of broker/src/xml shared between its translation units.
#pragma once

#include "broker/xml.hpp"

#include <xercesc/util/XercesDefs.hpp>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace broker::xml::detail {

/// Appends the UTF-8 form of UTF-16 text (XMLCh is char16_t); lone surrogates become U+FFFD.
void append_utf8(std::string& out, const XMLCh* s, std::size_t n);
void append_utf8(std::string& out, const XMLCh* s);  ///< NUL-terminated; null is ""
inline std::string to_utf8(const XMLCh* s) {
    std::string r;
    append_utf8(r, s);
    return r;
}

/// Same, without XML white space (space, tab, CR, LF) at either end.
void assign_utf8_trimmed(std::string& out, const XMLCh* s, std::size_t n);

/// The namespace of Base64Container (attachments; ns::base64container), as the parser gives it.
inline constexpr std::u16string_view base64container_ns = u"http://www.kith.no/xmlstds/base64container";

/// Compare a NUL-terminated XMLCh string with a UTF-16 literal.
inline bool eq(const XMLCh* a, std::u16string_view b) noexcept {
    if (!a)
        return b.empty();
    std::size_t i = 0;
    for (; i < b.size(); ++i)
        if (a[i] != b[i])
            return false;
    return a[i] == 0;
}

/// The parser's error text made safe to log and to put into an AppRec: quoted text that is not an
/// element, attribute, type or namespace name (i.e. values from the document) is replaced by '…'.
std::string sanitize_message(const XMLCh* msg);

/// Where the MsgHead of an EI_fellesformat sits in the original bytes.
struct fellesformat_layout {
    bool is_fellesformat = false;      ///< root element is {http://www.nav.no/xml/eiff/2/}EI_fellesformat
    std::size_t decl_end = 0;          ///< end of the BOM + XML declaration kept verbatim (0 if none)
    std::size_t msghead_begin = 0;     ///< '<' of the MsgHead start tag
    std::size_t msghead_tag_end = 0;   ///< position of the '>' or "/>" that closes the start tag
    std::size_t msghead_end = 0;       ///< one past the end of the MsgHead element
    std::string extra_xmlns;           ///< " xmlns:p='…'" declarations of the envelope to carry over
    bool found_msghead = false;
};

/// Lexical look at the envelope (ASCII-compatible encodings: UTF-8, ISO-8859-x). Cheap when the
/// root is not EI_fellesformat: it stops after the root element's name.
fellesformat_layout scan_fellesformat(std::string_view doc);

/// The pseudo-attributes (name, value as written) of the XML declaration that 'doc' starts with
/// ("<?xml" and white space, which the caller has checked, up to "?>"); nullopt when they are not
/// each name = quoted value after white space. Read with the same lexer as scan_fellesformat.
std::optional<std::vector<std::pair<std::string_view, std::string_view>>> xml_declaration(std::string_view doc);

/// Builds the standalone MsgHead from a layout with found_msghead: the XML declaration is kept,
/// the envelope before MsgHead becomes blanks (line breaks kept, so line numbers stay those of the
/// original file), envelope namespace declarations are appended to the MsgHead start tag.
std::string build_unwrapped(std::string_view doc, const fellesformat_layout& l);

/// A growable UTF-16 buffer that is not zero-filled (std::u16string::resize would write every
/// code unit twice).
class utf16_buffer {
public:
    void reserve(std::size_t n) {
        if (n > cap_) {
            p_ = std::make_unique_for_overwrite<char16_t[]>(n);
            cap_ = n;
        }
        size_ = 0;
    }
    void release() noexcept {
        p_.reset();
        cap_ = size_ = 0;
    }
    char16_t* data() noexcept { return p_.get(); }
    const char16_t* data() const noexcept { return p_.get(); }
    std::size_t size() const noexcept { return size_; }
    std::size_t capacity() const noexcept { return cap_; }
    void set_size(std::size_t n) noexcept { size_ = n; }

private:
    std::unique_ptr<char16_t[]> p_;
    std::size_t cap_ = 0;
    std::size_t size_ = 0;
};

/// When Xerces would read 'doc' as UTF-8 throughout (no byte order mark but UTF-8's, no XML
/// declaration or one that names UTF-8, only ASCII before the first '>') and all of it is
/// well-formed UTF-8, writes its UTF-16 form (host byte order, without the mark) to 'out' and
/// returns true; false otherwise, and then the caller hands Xerces the bytes as they are. Xerces
/// reads UTF-16 in the host's order with a copy where its UTF-8 decoder takes about seven
/// instructions per byte; the characters it sees, and so its verdicts and diagnostic positions,
/// are the same either way.
bool utf8_document_as_utf16(std::string_view doc, utf16_buffer& out);

/// The regex pre-warm for Xerces' shared character-class tables (see platform_init).
void prewarm_regex();

} // namespace broker::xml::detail
