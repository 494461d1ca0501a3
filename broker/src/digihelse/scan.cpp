// The Digihelse scan: one Xerces SAX2 pass (namespaces on, no schema, no DTD, no external
// entities) over a message intake has already validated. Elements are matched by local name within
// the namespaces that define them; text is collected only where a rule needs it, so a 4 MB
// attachment costs a character count, not a copy.
#include "digihelse/scan.hpp"

#include "broker/message.hpp"
#include "broker/xml.hpp"
#include "xml/base64_check.hpp"
#include "xml/detail.hpp"

#include <xercesc/framework/MemBufInputSource.hpp>
#include <xercesc/sax2/Attributes.hpp>
#include <xercesc/sax2/DefaultHandler.hpp>
#include <xercesc/sax2/SAX2XMLReader.hpp>
#include <xercesc/sax2/XMLReaderFactory.hpp>
#include <xercesc/util/OutOfMemoryException.hpp>
#include <xercesc/util/PlatformUtils.hpp>
#include <xercesc/util/SecurityManager.hpp>
#include <xercesc/util/XMLUni.hpp>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace broker::digihelse {

namespace xc = XERCES_CPP_NAMESPACE;

namespace {

using namespace std::string_view_literals;  // u"..."sv: the size is known, so == checks it first

constexpr std::u16string_view dialog_ns_prefix = u"http://www.kith.no/xmlstds/dialog/";
constexpr std::u16string_view xcal_ns = u"urn:ietf:params:xml:ns:icalendar-2.0";

/// True if the NUL-terminated 's' begins with 'prefix'; stops at the first difference instead of
/// measuring 's' (it runs for every element of every citizen message).
bool starts_with(const XMLCh* s, std::u16string_view prefix) {
    if (!s)
        return prefix.empty();
    for (char16_t c : prefix) {
        if (*s != c)  // also stops at the end of 's'
            return false;
        ++s;
    }
    return true;
}

bool equals(const XMLCh* s, std::u16string_view v) { return starts_with(s, v) && s[v.size()] == 0; }
constexpr std::size_t capture_cap = 64 * 1024;  // UTF-16 units kept per text field

std::string to_utf8(std::u16string_view s) {
    std::string out;
    xml::detail::append_utf8(out, s.data(), s.size());
    return out;
}

constexpr bool xml_space(char16_t c) { return c == u' ' || c == u'\t' || c == u'\r' || c == u'\n'; }

std::u16string_view trim(std::u16string_view s) {
    while (!s.empty() && xml_space(s.front()))
        s.remove_prefix(1);
    while (!s.empty() && xml_space(s.back()))
        s.remove_suffix(1);
    return s;
}

/// Code points in UTF-16 (a surrogate pair counts once).
std::size_t code_points(std::u16string_view s) {
    std::size_t n = 0;
    for (char16_t c : s)
        if (c < 0xDC00 || c > 0xDFFF)
            ++n;
    return n;
}

/// A character of Base64 text: its value in the alphabet (0-63), or xml::detail::base64_space
/// (XML white space), base64_pad ('=') or base64_bad: the validator's own table.
std::uint8_t b64_code(char16_t c) { return c < 128 ? xml::detail::base64_table[c] : xml::detail::base64_bad; }

class handler final : public xc::DefaultHandler, public xml::attachment_observer {
public:
    explicit handler(scan_result& r) : r_(r) {}

    /// In the validating pass the validator counts an attachment's Base64 for us (its characters
    /// do not come here then); text inside a captured field still comes as text.
    bool take_base64_summary() override { return in_base64_ && !capturing_; }
    void base64_text(std::uint64_t alphabet_chars, std::u16string_view head, bool valid) override {
        b64_count_ = static_cast<std::size_t>(alphabet_chars);
        head_b64_.assign(head.substr(0, 24));
        if (!valid)
            r_.documents.back().bad_base64 = true;
    }

    void startElement(const XMLCh* const uri, const XMLCh* const local, const XMLCh* const,
                      const xc::Attributes& attrs) override {
        std::u16string_view name(local ? local : u"");
        const std::size_t depth = depth_;
        if (capturing_ && depth >= capture_depth_) {
            push(name);
            return;  // markup inside a text field: its text counts, the element does not
        }
        const ns_class ns = classify_ns(uri);
        const bool dialog = ns.dialog;
        const bool xcal = ns.xcal;

        if (depth == 1 && name == u"Document"sv) {
            ++document_;
            if (document_ >= 2) {
                r_.documents.push_back({});
                r_.documents.back().document = document_;
            }
        } else if (document_ >= 2 && parent_is(u"RefDoc"sv)) {
            attachment& a = r_.documents.back();
            if (name == u"MsgType"sv)
                a.msg_type = to_utf8(attr(attrs, u"V"));
            else if (name == u"MimeType"sv)
                begin_capture(field::mime);
            else if (name == u"FileReference"sv)
                a.external = true;
        } else if (document_ >= 2 && parent_is(u"Content"sv) && r_.documents.back().content_root.empty()) {
            attachment& a = r_.documents.back();
            a.content_root = to_utf8(name);
            a.content_ns = to_utf8(uri ? std::u16string_view(uri) : std::u16string_view());
            if (name == u"Base64Container"sv) {
                in_base64_ = true;
                b64_count_ = 0;
                head_b64_.clear();
            }
        }

        if (dialog && (name == u"Sporsmal"sv || name == u"EmneSporsmal"sv || name == u"TekstNotatInnhold"sv)) {
            begin_capture(field::text);
        } else if (dialog && name == u"Begrunnelse"sv) {
            r_.has_reason = true;
            begin_capture(field::reason);
        } else if (dialog && name == u"RollerRelatertNotat"sv) {
            in_roles_ = true;
            role_ = {};
        } else if (dialog && in_roles_ && name == u"RoleToPatient"sv && parent_is(u"RollerRelatertNotat"sv)) {
            role_.role = to_utf8(attr(attrs, u"V"));
            role_.role_system = to_utf8(attr(attrs, u"S"));
            role_.role_name = to_utf8(attr(attrs, u"DN"));
        } else if (dialog && in_roles_ && name == u"Person"sv && parent_is(u"RollerRelatertNotat"sv)) {
            in_person_ = true;
            role_.present = true;
        } else if (in_person_ && name == u"Ident"sv && parent_is(u"Person"sv)) {
            ++person_idents_;
        } else if (in_person_ && person_idents_ == 1 && parent_is(u"Ident"sv)) {
            if (name == u"Id"sv)
                begin_capture(field::person_id);
            else if (name == u"TypeId"sv)
                role_.id_type = to_utf8(attr(attrs, u"V"));
        }

        if (xcal) {
            if (name == u"icalendar"sv || name == u"vcalendar"sv)
                r_.has_calendar = true;
            if (name == u"vevent"sv) {
                r_.events.emplace_back();
                in_event_ = true;
            } else if (name == u"parameters"sv) {
                ++in_parameters_;
            } else if (!in_parameters_ && (name == u"text"sv || name == u"date-time"sv || name == u"uri"sv ||
                                          name == u"integer"sv || name == u"date"sv)) {
                // The value of the property that is the parent element.
                if (depth >= 2) {
                    property_ = names_[depth - 1];
                    const std::u16string& owner = names_[depth - 2];  // "properties"
                    const bool of_event = in_event_ && owner == u"properties"sv;
                    const bool of_calendar = !in_event_ && owner == u"properties"sv;
                    if (of_event || (of_calendar && property_ == u"method"sv))
                        begin_capture(of_event ? field::event_value : field::method);
                }
            }
        }
        push(name);
    }

    void endElement(const XMLCh* const uri, const XMLCh* const local, const XMLCh* const) override {
        std::u16string_view name(local ? local : u"");
        if (depth_ > 0)
            --depth_;
        if (capturing_ && depth_ == capture_depth_) {
            end_capture();
        }
        if (capturing_)
            return;
        if (in_base64_ && name == u"Base64Container"sv) {
            in_base64_ = false;
            attachment& a = r_.documents.back();
            a.decoded_size = b64_count_ * 6 / 8;
            a.head = decode_head();
        }
        const ns_class ns = classify_ns(uri);
        const bool dialog = ns.dialog;
        if (dialog && name == u"Person"sv && in_person_) {
            in_person_ = false;
            person_idents_ = 0;
        } else if (dialog && name == u"RollerRelatertNotat"sv) {
            in_roles_ = false;
            // The first related Person is the one acting (later ones are ignored).
            if (role_.present && !r_.acting.present)
                r_.acting = role_;
        }
        if (ns.xcal) {
            if (name == u"vevent"sv)
                in_event_ = false;
            else if (name == u"parameters"sv && in_parameters_ > 0)
                --in_parameters_;
        }
    }

    void characters(const XMLCh* const chars, const XMLSize_t length) override {
        std::u16string_view s(chars, length);
        if (capturing_) {
            if (buf_.size() < capture_cap)
                buf_.append(s.substr(0, capture_cap - buf_.size()));
            else
                overflow_ = true;
            return;
        }
        if (in_base64_) {
            // Every attachment's characters pass here (issue 3's profile: a third of this
            // handler's work), so one table look-up per character and no branch on its class.
            std::size_t i = 0, digits = 0;
            bool bad = false;
            for (; i < s.size() && head_b64_.size() < 24; ++i) {  // the head sniffs the type
                const std::uint8_t c = b64_code(s[i]);
                if (c < 64) {
                    head_b64_ += s[i];
                    ++digits;
                }
                bad |= c == xml::detail::base64_bad;
            }
            for (; i < s.size(); ++i) {
                const std::uint8_t c = b64_code(s[i]);
                digits += c < 64;
                bad |= c == xml::detail::base64_bad;
            }
            b64_count_ += digits;
            if (bad)
                r_.documents.back().bad_base64 = true;
        }
    }

    void fatalError(const xc::SAXParseException& e) override { throw e; }

private:
    enum class field { text, reason, mime, person_id, event_value, method };

    /// What an element's namespace is to the rules. Xerces hands out a namespace as a pointer into
    /// its URI pool, stable for the whole parse (one handler per parse), so a namespace is compared
    /// as text once per parse and then found by its pointer (issue 3's profile: the text compares
    /// were almost half of this handler's work per element, 16 500 of 35 500 instructions).
    struct ns_class {
        const XMLCh* uri = nullptr;
        bool dialog = false;
        bool xcal = false;
    };

    ns_class classify_ns(const XMLCh* uri) {
        for (const ns_class& c : ns_seen_)
            if (c.uri == uri && uri)
                return c;
        ns_class c{uri, starts_with(uri, dialog_ns_prefix), equals(uri, xcal_ns)};
        if (uri)
            ns_seen_[ns_next_++ % ns_seen_.size()] = c;
        return c;
    }

    static std::u16string_view attr(const xc::Attributes& a, const char16_t* name) {
        const XMLCh* v = a.getValue(u"", name);
        if (!v)
            v = a.getValue(name);
        return v ? std::u16string_view(v) : std::u16string_view();
    }

    bool parent_is(std::u16string_view name) const { return depth_ > 0 && names_[depth_ - 1] == name; }

    /// Enter an element. The names' storage is reused from element to element (no allocation per
    /// element once the deepest level has been seen: this runs on every message, issue 3).
    void push(std::u16string_view name) {
        if (depth_ < names_.size())
            names_[depth_].assign(name);
        else
            names_.emplace_back(name);
        ++depth_;
    }

    void begin_capture(field f) {
        capturing_ = true;
        capture_depth_ = depth_;  // the field element is pushed right after this call
        field_ = f;
        buf_.clear();
        overflow_ = false;
    }

    void end_capture() {
        capturing_ = false;
        std::u16string_view t = trim(buf_);
        switch (field_) {
        case field::text:
            r_.text_chars += overflow_ ? capture_cap + 1 : code_points(t);
            break;
        case field::reason:
            r_.reason_chars += overflow_ ? capture_cap + 1 : code_points(t);
            if (r_.reason.size() < 8192)
                r_.reason += to_utf8(t.substr(0, 4096));
            break;
        case field::mime:
            r_.documents.back().mime_type = to_utf8(t);
            break;
        case field::person_id:
            role_.id = to_utf8(t);
            break;
        case field::method:
            r_.calendar_method = to_utf8(t);
            break;
        case field::event_value: {
            if (r_.events.empty())
                break;
            vevent& e = r_.events.back();
            std::string v = to_utf8(t);
            const std::u16string& p = property_;
            if (p == u"uid"sv) e.uid = v;
            else if (p == u"dtstart"sv) e.dtstart = v;
            else if (p == u"dtend"sv) e.dtend = v;
            else if (p == u"dtstamp"sv) e.dtstamp = v;
            else if (p == u"summary"sv) e.summary = v;
            else if (p == u"description"sv) e.description = v;
            else if (p == u"location"sv) e.location = v;
            else if (p == u"url"sv) e.url = v;
            else if (p == u"contact"sv) e.contact = v;
            else if (p == u"related-to"sv) e.related_to = v;
            else if (p == u"status"sv) e.status = v;
            else if (p == u"sequence"sv) e.sequence = v;
            break;
        }
        }
        buf_.clear();
    }

    std::string decode_head() const {
        std::string out;
        unsigned acc = 0;
        int bits = 0;
        for (char16_t c : head_b64_) {
            acc = (acc << 6) | static_cast<unsigned>(b64_code(c));
            bits += 6;
            if (bits >= 8) {
                bits -= 8;
                out += static_cast<char>((acc >> bits) & 0xFF);
            }
        }
        return out.substr(0, 16);
    }

    scan_result& r_;
    std::vector<std::u16string> names_;  // local names of the open elements: [0, depth_)
    std::size_t depth_ = 0;
    int document_ = 0;
    bool capturing_ = false;
    std::size_t capture_depth_ = 0;
    field field_ = field::text;
    std::u16string buf_;
    bool overflow_ = false;
    bool in_base64_ = false;
    std::size_t b64_count_ = 0;
    std::u16string head_b64_;
    bool in_roles_ = false, in_person_ = false;
    int person_idents_ = 0;
    acting_person role_;
    bool in_event_ = false;
    int in_parameters_ = 0;
    std::u16string property_;
    std::array<ns_class, 4> ns_seen_{};  // a message has few namespaces: MsgHead, dialog, xCal, ...
    std::size_t ns_next_ = 0;
};


using scan_handler = handler;

} // namespace

struct scan_observer::impl {
    explicit impl(scan_result& r) : h(r) {}
    scan_handler h;  // (scan_observer::handler() hides the class name here)
};

scan_observer::scan_observer() : impl_(std::make_unique<impl>(result_)) {}
scan_observer::~scan_observer() = default;
xc::ContentHandler* scan_observer::handler() { return &impl_->h; }

bool may_apply(std::string_view document) { return document.find("DIALOG_INNBYGGER_") != std::string_view::npos; }

xc::SAX2XMLReader& plain_reader() {
    struct holder {
        xc::SecurityManager security;
        std::unique_ptr<xc::SAX2XMLReader> reader;
    };
    thread_local holder h;
    if (!h.reader) {
        xml::platform_init();
        h.reader.reset(xc::XMLReaderFactory::createXMLReader());
        auto& r = *h.reader;
        r.setFeature(xc::XMLUni::fgSAX2CoreNameSpaces, true);
        r.setFeature(xc::XMLUni::fgSAX2CoreNameSpacePrefixes, false);
        r.setFeature(xc::XMLUni::fgSAX2CoreValidation, false);
        r.setFeature(xc::XMLUni::fgXercesSchema, false);
        r.setFeature(xc::XMLUni::fgXercesLoadSchema, false);
        r.setFeature(xc::XMLUni::fgXercesLoadExternalDTD, false);
        r.setFeature(xc::XMLUni::fgXercesDisableDefaultEntityResolution, true);
        r.setFeature(xc::XMLUni::fgXercesContinueAfterFatalError, false);
        h.security.setEntityExpansionLimit(100);
        r.setProperty(xc::XMLUni::fgXercesSecurityManager, &h.security);
    }
    return *h.reader;
}

std::size_t utf8_length(std::string_view s) {
    std::size_t n = 0;
    for (unsigned char c : s)
        if ((c & 0xC0) != 0x80)
            ++n;
    return n;
}

result<scan_result> scan(std::string_view document) {
    scan_result r;
    try {
        xc::SAX2XMLReader& reader = plain_reader();
        handler h(r);
        reader.setContentHandler(&h);
        reader.setErrorHandler(&h);
        xc::MemBufInputSource src(reinterpret_cast<const XMLByte*>(document.data()), document.size(),
                                  u"digihelse", false);
        src.setCopyBufToStream(false);
        reader.parse(src);
        reader.setContentHandler(nullptr);
        reader.setErrorHandler(nullptr);
    } catch (const xc::SAXParseException&) {
        plain_reader().setContentHandler(nullptr);
        plain_reader().setErrorHandler(nullptr);
        return error("T01", "the message could not be read again for the Digihelse rules");
    } catch (const xc::XMLException&) {
        return error("T01", "the message could not be read again for the Digihelse rules");
    } catch (const xc::OutOfMemoryException&) {
        return error("X99", "out of memory while reading the message for the Digihelse rules");
    } catch (const std::bad_alloc&) {
        return error("X99", "out of memory while reading the message for the Digihelse rules");
    }
    return r;
}

} // namespace broker::digihelse
