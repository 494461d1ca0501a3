#include "router/sax.hpp"

#include "broker/embedded.hpp"

#include <xercesc/framework/MemBufInputSource.hpp>
#include <xercesc/sax/SAXParseException.hpp>
#include <xercesc/sax2/SAX2XMLReader.hpp>
#include <xercesc/sax2/XMLReaderFactory.hpp>
#include <xercesc/util/OutOfMemoryException.hpp>
#include <xercesc/util/PlatformUtils.hpp>
#include <xercesc/util/XMLException.hpp>
#include <xercesc/util/XMLUni.hpp>
#include <xercesc/validators/common/Grammar.hpp>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>

namespace broker::routing::detail {

namespace xc = xercesc;

void ensure_xerces() {
    static std::once_flag once;
    std::call_once(once, [] { xc::XMLPlatformUtils::Initialize(); });
}

std::string utf8(const XMLCh* s, XMLSize_t len) {
    std::string out;
    if (!s)
        return out;
    out.reserve(len);
    for (XMLSize_t i = 0; i < len; ++i) {
        char32_t c = s[i];
        if (c >= 0xD800 && c <= 0xDBFF && i + 1 < len && s[i + 1] >= 0xDC00 && s[i + 1] <= 0xDFFF) {
            c = 0x10000 + ((c - 0xD800) << 10) + (static_cast<char32_t>(s[i + 1]) - 0xDC00);
            ++i;
        }
        if (c < 0x80) {
            out += static_cast<char>(c);
        } else if (c < 0x800) {
            out += static_cast<char>(0xC0 | (c >> 6));
            out += static_cast<char>(0x80 | (c & 0x3F));
        } else if (c < 0x10000) {
            out += static_cast<char>(0xE0 | (c >> 12));
            out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (c & 0x3F));
        } else {
            out += static_cast<char>(0xF0 | (c >> 18));
            out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
            out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (c & 0x3F));
        }
    }
    return out;
}

std::string utf8(const XMLCh* s) {
    if (!s)
        return {};
    XMLSize_t n = 0;
    while (s[n])
        ++n;
    return utf8(s, n);
}

std::string attr(const xc::Attributes& a, const char16_t* name, bool* present) {
    const XMLCh* v = a.getValue(u"", name);
    if (present)
        *present = v != nullptr;
    return v ? utf8(v) : std::string();
}

std::string trim(std::string_view s) {
    auto ws = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
    while (!s.empty() && ws(s.front()))
        s.remove_prefix(1);
    while (!s.empty() && ws(s.back()))
        s.remove_suffix(1);
    return std::string(s);
}

// ------------------------------------------------------------------------------------------------
// positions

namespace {
bool is_continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }
// Characters as Xerces counts them (UTF-16 units): a 4-byte UTF-8 sequence is two.
int units_of_lead(char c) { return (static_cast<unsigned char>(c) & 0xF8) == 0xF0 ? 2 : 1; }
constexpr std::string_view bom = "\xEF\xBB\xBF";
} // namespace

text_index::text_index(std::string_view text) : text_(text) {
    std::size_t start = text_.substr(0, 3) == bom ? 3 : 0;
    line_starts_.push_back(start);
    for (std::size_t i = 0; i < text_.size(); ++i) {
        if (text_[i] == '\n' || (text_[i] == '\r' && (i + 1 >= text_.size() || text_[i + 1] != '\n')))
            line_starts_.push_back(i + 1);
    }
}

std::size_t text_index::offset_of(position p) const {
    if (p.line < 1 || static_cast<std::size_t>(p.line) > line_starts_.size())
        return std::string_view::npos;
    std::size_t off = line_starts_[static_cast<std::size_t>(p.line) - 1];
    int units = 1;
    while (units < p.column && off < text_.size() && text_[off] != '\n' && text_[off] != '\r') {
        units += units_of_lead(text_[off]);
        ++off;
        while (off < text_.size() && is_continuation(text_[off]))
            ++off;
    }
    return off;
}

position text_index::position_of(std::size_t offset) const {
    auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
    std::size_t line = static_cast<std::size_t>(it - line_starts_.begin());  // 1-based
    if (line == 0)
        line = 1;
    std::size_t off = line_starts_[line - 1];
    int col = 1;
    while (off < offset && off < text_.size()) {
        col += units_of_lead(text_[off]);
        ++off;
        while (off < text_.size() && is_continuation(text_[off]))
            ++off;
    }
    return {static_cast<int>(line), col};
}

position text_index::tag_start(position after) const {
    std::size_t off = offset_of(after);
    if (off == std::string_view::npos || off == 0)
        return after;
    // '<' cannot occur inside a tag (not even in attribute values), so the nearest one before the
    // parser's position opens the tag it has just read.
    std::size_t lt = text_.rfind('<', off - 1);
    if (lt == std::string_view::npos)
        return after;
    return position_of(lt);
}

// ------------------------------------------------------------------------------------------------
// handler

namespace {
std::string lower_first(std::string s) {
    if (!s.empty())
        s[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
    while (!s.empty() && (s.back() == '.' || s.back() == ' ' || s.back() == '\n'))
        s.pop_back();
    return s;
}

position pos_of(const xc::SAXParseException& e) {
    return {static_cast<int>(e.getLineNumber()), static_cast<int>(e.getColumnNumber())};
}
} // namespace

position sax_handler::element_start() const {
    if (!locator_)
        return {};
    position p{static_cast<int>(locator_->getLineNumber()), static_cast<int>(locator_->getColumnNumber())};
    return index_.tag_start(p);
}

void sax_handler::fail(position p, const std::string& reason) {
    if (!failed_) {
        failed_ = true;
        failure_ = make_error(p, reason);
    }
    throw stop_parse{};
}

void sax_handler::startDTD(const XMLCh* const, const XMLCh* const, const XMLCh* const) {
    fail(element_start(), "a document type declaration (DTD) is not allowed");
}

void sax_handler::error(const xc::SAXParseException& e) {
    // A validity error: Xerces reports it just past the tag it concerns; point at the tag.
    fail(index_.tag_start(pos_of(e)), "schema violation: " + lower_first(utf8(e.getMessage())));
}

void sax_handler::fatalError(const xc::SAXParseException& e) {
    fail(pos_of(e), "malformed xml: " + lower_first(utf8(e.getMessage())));
}

// ------------------------------------------------------------------------------------------------
// parse

namespace {

// Collects errors in an embedded schema itself (a build defect, but say so clearly).
class schema_errors : public xc::DefaultHandler {
public:
    std::string first;
    void warning(const xc::SAXParseException&) override {}
    void error(const xc::SAXParseException& e) override { note(e); }
    void fatalError(const xc::SAXParseException& e) override { note(e); }

private:
    void note(const xc::SAXParseException& e) {
        if (first.empty())
            first = std::to_string(e.getLineNumber()) + ":" + std::to_string(e.getColumnNumber()) + ": " +
                    lower_first(utf8(e.getMessage()));
    }
};

const embedded_file* find_schema(std::string_view name) {
    for (const auto& f : schemas::files())
        if (f.name == name)
            return &f;
    return nullptr;
}

} // namespace

result<void> run_sax(std::string_view text, sax_handler& handler, std::string_view schema) {
    const std::string& code = handler.code();
    const std::string& file = handler.file();
    try {
        ensure_xerces();
        std::unique_ptr<xc::SAX2XMLReader> reader(xc::XMLReaderFactory::createXMLReader());
        reader->setFeature(xc::XMLUni::fgSAX2CoreNameSpaces, true);
        reader->setFeature(xc::XMLUni::fgSAX2CoreNameSpacePrefixes, false);
        reader->setFeature(xc::XMLUni::fgXercesLoadExternalDTD, false);
        reader->setFeature(xc::XMLUni::fgXercesSkipDTDValidation, true);
        reader->setFeature(xc::XMLUni::fgXercesDisableDefaultEntityResolution, true);
        reader->setFeature(xc::XMLUni::fgXercesLoadSchema, false);  // never follow xsi:schemaLocation

        if (!schema.empty()) {
            const embedded_file* xsd = find_schema(schema);
            if (!xsd)
                return broker::error{code, "schema " + std::string(schema) + " is not built into this binary"};
            schema_errors se;
            reader->setErrorHandler(&se);
            xc::MemBufInputSource src(reinterpret_cast<const XMLByte*>(xsd->content.data()), xsd->content.size(),
                                      std::string(xsd->name).c_str(), false);
            xc::Grammar* g = reader->loadGrammar(src, xc::Grammar::SchemaGrammarType, true);
            if (!g || !se.first.empty())
                return broker::error{code, "embedded schema " + std::string(schema) + " is invalid: " +
                                               (se.first.empty() ? std::string("cannot load") : se.first)};
            reader->setFeature(xc::XMLUni::fgSAX2CoreValidation, true);
            reader->setFeature(xc::XMLUni::fgXercesDynamic, false);
            reader->setFeature(xc::XMLUni::fgXercesSchema, true);
            reader->setFeature(xc::XMLUni::fgXercesSchemaFullChecking, false);
            reader->setFeature(xc::XMLUni::fgXercesUseCachedGrammarInParse, true);
            reader->setFeature(xc::XMLUni::fgXercesIdentityConstraintChecking, true);
        } else {
            reader->setFeature(xc::XMLUni::fgSAX2CoreValidation, false);
            reader->setFeature(xc::XMLUni::fgXercesSchema, false);
        }

        reader->setContentHandler(&handler);
        reader->setErrorHandler(&handler);
        reader->setLexicalHandler(&handler);
        reader->setDTDHandler(&handler);
        reader->setEntityResolver(&handler);

        xc::MemBufInputSource in(reinterpret_cast<const XMLByte*>(text.data()), text.size(), file.c_str(), false);
        try {
            reader->parse(in);
        } catch (const stop_parse&) {
            // the handler recorded why (or just wanted to stop early)
        } catch (const xc::SAXParseException& e) {
            return broker::error{code, "malformed xml: " + lower_first(utf8(e.getMessage())), file,
                                 static_cast<int>(e.getLineNumber()), static_cast<int>(e.getColumnNumber())};
        }
        if (handler.failed())
            return handler.failure();
        return {};
    } catch (const stop_parse&) {
        if (handler.failed())
            return handler.failure();
        return {};
    } catch (const xc::OutOfMemoryException&) {
        return broker::error{code, "out of memory while parsing", file, 0, 0};
    } catch (const xc::XMLException& e) {
        return broker::error{code, "xml error: " + lower_first(utf8(e.getMessage())), file, 0, 0};
    } catch (const xc::SAXException& e) {
        return broker::error{code, "xml error: " + lower_first(utf8(e.getMessage())), file, 0, 0};
    } catch (const std::exception& e) {
        return broker::error{code, std::string("parse failed: ") + e.what(), file, 0, 0};
    }
}

result<std::string> read_whole_file(const std::string& path, const std::string& code, const char* what) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        return broker::error{code, std::string("cannot read ") + what + " '" + path + "'"};
    std::ostringstream s;
    s << in.rdbuf();
    if (in.bad())
        return broker::error{code, std::string("cannot read ") + what + " '" + path + "'"};
    return s.str();
}

} // namespace broker::routing::detail
