// Shared Xerces-C++ plumbing for the registry and rules readers: one SAX2 parse of an in-memory
// document, optionally validated against an XSD compiled into the binary, with every error mapped
// to broker::error{code, reason, file, line, column}. Internal to the routing library.
#pragma once

#include "broker/error.hpp"

#include <xercesc/sax/Locator.hpp>
#include <xercesc/sax2/Attributes.hpp>
#include <xercesc/sax2/DefaultHandler.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace broker::routing::detail {

/// Xerces' own initialisation, once per process (Initialize is reference counted; we never
/// Terminate, so other users of Xerces in the process are unaffected).
void ensure_xerces();

/// UTF-16 (XMLCh) to UTF-8.
std::string utf8(const XMLCh* s);
std::string utf8(const XMLCh* s, XMLSize_t len);

/// Value of the no-namespace attribute 'name' ("" if absent) and whether it is present.
std::string attr(const xercesc::Attributes& a, const char16_t* name, bool* present = nullptr);

/// Strip leading and trailing XML whitespace.
std::string trim(std::string_view s);

struct position {
    int line = 0;
    int column = 0;
};

/// Maps Xerces positions (which point just past the tag the parser has read) back to the '<' that
/// opens that tag, so errors name the start of the offending element.
class text_index {
public:
    explicit text_index(std::string_view text);
    position tag_start(position after) const;

private:
    std::size_t offset_of(position p) const;
    position position_of(std::size_t offset) const;
    std::string_view text_;
    std::vector<std::size_t> line_starts_;
};

/// Thrown by handlers to stop the parse; the error is in sax_handler::failure().
struct stop_parse {};

/// Base for the SAX handlers: records the locator, refuses DTDs, turns parser errors into
/// broker::error and stops at the first one.
class sax_handler : public xercesc::DefaultHandler {
public:
    sax_handler(std::string_view text, std::string file, std::string code)
        : index_(text), file_(std::move(file)), code_(std::move(code)) {}

    const std::string& file() const { return file_; }
    const std::string& code() const { return code_; }
    bool failed() const { return failed_; }
    const broker::error& failure() const { return failure_; }

    /// Where the element whose start tag was just read begins (call from startElement).
    position element_start() const;
    /// Where the parser is now, mapped back to the start of the current tag (call from endElement).
    position current_tag() const { return element_start(); }

    /// Record an error at 'p' and stop the parse.
    [[noreturn]] void fail(position p, const std::string& reason);
    /// Build an error at 'p' without stopping.
    broker::error make_error(position p, const std::string& reason) const {
        return broker::error{code_, reason, file_, p.line, p.column};
    }

    // xercesc::DefaultHandler
    void setDocumentLocator(const xercesc::Locator* const locator) override { locator_ = locator; }
    void startDTD(const XMLCh* const, const XMLCh* const, const XMLCh* const) override;
    void warning(const xercesc::SAXParseException&) override {}
    void error(const xercesc::SAXParseException& e) override;
    void fatalError(const xercesc::SAXParseException& e) override;

protected:
    const xercesc::Locator* locator_ = nullptr;

private:
    text_index index_;
    std::string file_;
    std::string code_;
    bool failed_ = false;
    broker::error failure_;
};

/// Parse 'text' (named 'file' in errors) with 'handler'. When 'schema' is non-empty, the document
/// is validated against the embedded XSD of that name (broker::schemas::files()); schemaLocation
/// hints in the instance are never followed, DTDs are refused and nothing is fetched.
result<void> run_sax(std::string_view text, sax_handler& handler, std::string_view schema);

/// Read a whole file; errors are '<code>' with the path in the message.
result<std::string> read_whole_file(const std::string& path, const std::string& code, const char* what);

} // namespace broker::routing::detail
