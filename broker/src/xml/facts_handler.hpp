// The SAX2 handler of the validator: extracts message_facts by tracking the element path, collects
// diagnostics, refuses DTDs, and notes namespace problems (T10).
#pragma once

#include "xml/base64_check.hpp"
#include "xml/detail.hpp"

#include <xercesc/sax/Locator.hpp>
#include <xercesc/sax/SAXParseException.hpp>
#include <xercesc/sax2/DefaultHandler.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace broker::xml::detail {

/// Thrown by the handler to stop a parse (a DOCTYPE was seen). Caught in validator.cpp.
struct stop_parse {};

/// Element names the fact extraction cares about, per namespace family (MsgHead or AppRec).
enum class tag : std::uint8_t {
    other,
    // MsgHead
    MsgHead, MsgInfo, Type, MIGversion, GenDate, MsgId, Ack, ConversationRef, RefToParent,
    RefToConversation, Sender, Receiver, Patient, Organisation, OrganisationName, Ident, Id, TypeId,
    HealthcareProfessional, GivenName, MiddleName, FamilyName, Document, PatientReport, RefDoc, Content,
    // AppRec (Sender, Receiver, MIGversion, GenDate, Id, TypeId shared with the above)
    AppRec, MsgType, Status, Error, OriginalMsgId, IssueDate, HCP, Inst, HCProf, Dept, HCPerson,
    AdditionalId, Name,
};

class facts_handler : public XERCES_CPP_NAMESPACE::DefaultHandler {
public:
    static constexpr std::size_t max_diagnostics = 20;

    /// 'content_namespaces': namespaces allowed as children of RefDoc/Content (the grammars loaded).
    explicit facts_handler(const std::vector<std::u16string>* content_namespaces)
        : content_ns_(content_namespaces) {
        stack_.reserve(64);
        text_.reserve(256);
    }

    /// Prepares for the next document; 'r' receives facts and diagnostics.
    void begin(validation_result* r);
    /// Finishes the facts of units that were still open when the parse stopped.
    void finish();
    /// Check the text of Base64Container elements as xs:base64Binary (see base64_check.hpp): on for
    /// the validating passes when the grammar leaves that check to us.
    void set_check_base64(bool on) { check_base64_ = on; }
    /// Forward the content events to 'o' as well, after our own handling (nullptr: none).
    void set_observer(XERCES_CPP_NAMESPACE::ContentHandler* o) {
        observer_ = o;
        attachments_ = dynamic_cast<attachment_observer*>(o);
    }

    bool saw_fatal() const { return fatal_; }
    bool saw_error() const { return errors_ > 0; }
    bool unsupported_root() const { return bad_root_ns_; }
    bool wrong_root_element() const { return bad_root_name_; }
    bool unsupported_content() const { return bad_content_ns_; }
    bool saw_root() const { return root_seen_; }

    /// Adds a diagnostic of our own (not from the parser).
    void add_diagnostic(int line, int column, std::string message);
    /// Adds a diagnostic of our own ahead of the parser's (the reason for a T10).
    void add_priority_diagnostic(int line, int column, std::string message);
    /// Records an exception that ended the parse as a fatal error.
    void add_fatal(int line, int column, std::string message);

    // ContentHandler
    void setDocumentLocator(const XERCES_CPP_NAMESPACE::Locator* locator) override { locator_ = locator; }
    void startElement(const XMLCh* uri, const XMLCh* localname, const XMLCh* qname,
                      const XERCES_CPP_NAMESPACE::Attributes& attrs) override;
    void endElement(const XMLCh* uri, const XMLCh* localname, const XMLCh* qname) override;
    void characters(const XMLCh* chars, const XMLSize_t length) override;

    // ErrorHandler
    void warning(const XERCES_CPP_NAMESPACE::SAXParseException&) override {}
    void error(const XERCES_CPP_NAMESPACE::SAXParseException& e) override;
    void fatalError(const XERCES_CPP_NAMESPACE::SAXParseException& e) override;
    void resetErrors() override {}

    // LexicalHandler: no DTDs, hence no entity declarations, hence no entity bombs.
    void startDTD(const XMLCh* name, const XMLCh* publicId, const XMLCh* systemId) override;

private:
    enum class family : std::uint8_t { none, msghead, apprec };
    enum class id_kind : std::uint8_t { none, her, enh, other };

    /// An identified unit being read: MsgHead Organisation/HealthcareProfessional, AppRec
    /// Inst/HCProf/Dept/HCPerson.
    struct unit {
        bool active = false;
        bool person = false;
        std::string id;        ///< Ident/Id or Inst/Id ... (the last one read)
        id_kind kind = id_kind::none;
        std::string her, enh;  ///< what was found so far
        std::string name, given, middle, family;
        void reset(bool is_person) {
            active = true;
            person = is_person;
            id.clear();
            kind = id_kind::none;
            her.clear();
            enh.clear();
            name.clear();
            given.clear();
            middle.clear();
            family.clear();
        }
        /// Takes id/kind as one identifier of this unit.
        void take_ident() {
            if (kind == id_kind::her && her.empty())
                her = id;
            else if (kind == id_kind::enh && enh.empty())
                enh = id;
            id.clear();
            kind = id_kind::none;
        }
    };

    void diag(const XERCES_CPP_NAMESPACE::SAXParseException& e);
    tag classify(const XMLCh* local) const;
    bool in_root_ns(const XMLCh* uri);
    int line() const;
    int column() const;
    tag at(std::size_t i) const { return i < stack_.size() ? stack_[i] : tag::other; }
    void capture(std::string* target) {
        capture_ = target;
        capture_depth_ = stack_.size();
        text_.clear();
    }
    static id_kind kind_of(const XMLCh* v);
    void commit_lvl1();
    void commit_lvl2();

    void start_msghead(const XERCES_CPP_NAMESPACE::Attributes& attrs, tag t);
    void end_msghead(tag t);
    void start_apprec(const XERCES_CPP_NAMESPACE::Attributes& attrs, tag t);
    void end_apprec(tag t);

    const std::vector<std::u16string>* content_ns_;
    const XERCES_CPP_NAMESPACE::Locator* locator_ = nullptr;
    XERCES_CPP_NAMESPACE::ContentHandler* observer_ = nullptr;
    attachment_observer* attachments_ = nullptr;  ///< observer_, when it takes Base64 summaries
    validation_result* r_ = nullptr;

    std::vector<tag> stack_;  ///< the open elements, root first
    family fam_ = family::none;
    bool root_seen_ = false;
    std::u16string root_uri_;
    const XMLCh* last_root_uri_ptr_ = nullptr;  ///< fast path: Xerces hands out pooled URI strings

    std::u16string text_;
    std::string* capture_ = nullptr;
    std::size_t capture_depth_ = 0;

    party_ref* party_ = nullptr;
    unit lvl1_, lvl2_;
    unit* ident_owner_ = nullptr;  ///< the unit an Ident/AdditionalId belongs to
    bool patient_ident_done_ = false;
    bool in_patient_ident_ = false;
    bool first_doc_content_ = false;

    bool check_base64_ = false;
    std::size_t base64_depth_ = 0;  ///< depth of the open Base64Container (0: none)
    bool base64_summary_ = false;   ///< the observer takes that element's text as a summary
    base64_check base64_;

    std::size_t priority_count_ = 0;
    bool fatal_ = false;
    int errors_ = 0;
    bool bad_root_ns_ = false;
    bool bad_root_name_ = false;
    bool bad_content_ns_ = false;
};

} // namespace broker::xml::detail
