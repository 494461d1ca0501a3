// The validator: Xerces-C++ SAX2 with a grammar pool of its own, loaded from the embedded XSDs (or
// a folder), locked, and reused for every message.
#include "xml/detail.hpp"
#include "xml/facts_handler.hpp"

#include "broker/embedded.hpp"

#include <xercesc/framework/MemBufInputSource.hpp>
#include <xercesc/framework/XMLGrammarPoolImpl.hpp>
#include <xercesc/sax2/SAX2XMLReader.hpp>
#include <xercesc/sax2/XMLReaderFactory.hpp>
#include <xercesc/util/OutOfMemoryException.hpp>
#include <xercesc/util/PlatformUtils.hpp>
#include <xercesc/util/SecurityManager.hpp>
#include <xercesc/sax/EntityResolver.hpp>
#include <xercesc/util/XMLUni.hpp>
#include <xercesc/validators/common/Grammar.hpp>
#include <xercesc/validators/datatype/DatatypeValidatorFactory.hpp>
#include <xercesc/validators/datatype/StringDatatypeValidator.hpp>
#include <xercesc/validators/schema/ComplexTypeInfo.hpp>
#include <xercesc/validators/schema/SchemaAttDef.hpp>
#include <xercesc/validators/schema/SchemaElementDecl.hpp>
#include <xercesc/validators/schema/SchemaGrammar.hpp>
#include <xercesc/validators/schema/SchemaSymbols.hpp>

#include <algorithm>
#include <bit>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace broker::xml {

namespace xc = XERCES_CPP_NAMESPACE;

namespace {

/// The message schemas, loaded in this order; their imports (kith-datatypes, felleskomponent1,
/// xmldsig) are resolved by file name among the same files. Anything else in schemas/ (routing
/// rules, registry files, ...) is not a message format and is not loaded.
constexpr std::string_view message_schemas[] = {
    "MsgHead-v1_2.xsd", "dialogmelding-v1.0.xsd", "dialogmelding-v1.1.xsd",
    "apprec-v1.0.xsd",  "apprec-v1.1.xsd",        "kith-base64.xsd",
    "visit-notice.xsd", "read-notice.xsd",  // edibroker's own Digihelse notices (issue 6)
    "xcal-appointment.xsd",                 // Digihelse appointments (issue 6): xCal, ours
};

/// The formats above that are edibroker's own, not KITH's (see schemas/README.md).
constexpr std::string_view own_schemas[] = {"visit-notice.xsd", "read-notice.xsd", "xcal-appointment.xsd"};

constexpr XMLCh message_id[] = u"message";

std::string_view base_name(std::string_view p) {
    auto s = p.find_last_of("/\\");
    return s == std::string_view::npos ? p : p.substr(s + 1);
}

/// Serves xs:import/xs:include schemaLocations from the in-memory files, by file name. Nothing
/// else is resolved, and default resolution (files, network) is switched off on the readers.
/// (External entities never get here: a DOCTYPE stops the parse before any could be declared.)
class memory_resolver : public xc::EntityResolver {
public:
    explicit memory_resolver(const std::vector<embedded_file>* files) : files_(files) {}

    xc::InputSource* resolveEntity(const XMLCh* const, const XMLCh* const system_id) override {
        const std::string wanted = detail::to_utf8(system_id);
        const std::string_view name = base_name(wanted);
        for (const auto& f : *files_) {
            if (f.name == name) {
                auto* src = new xc::MemBufInputSource(reinterpret_cast<const XMLByte*>(f.content.data()),
                                                      f.content.size(), std::string(f.name).c_str(), false);
                src->setCopyBufToStream(false);
                return src;
            }
        }
        return nullptr;
    }

private:
    const std::vector<embedded_file>* files_;
};

/// Error handler used while the grammars load: remembers the first problem and where.
class load_errors : public xc::DefaultHandler {
public:
    void warning(const xc::SAXParseException&) override {}
    void error(const xc::SAXParseException& e) override { note(e); }
    void fatalError(const xc::SAXParseException& e) override { note(e); }
    void resetErrors() override {}

    bool failed = false;
    std::string file, message;
    int line = 0, column = 0;

private:
    void note(const xc::SAXParseException& e) {
        if (failed)
            return;
        failed = true;
        file = detail::to_utf8(e.getSystemId());
        message = detail::to_utf8(e.getMessage());
        line = static_cast<int>(e.getLineNumber());
        column = static_cast<int>(e.getColumnNumber());
    }
};

/// Small valid documents run once through every new validator, while a global lock is held, so
/// that Xerces' lazily built per-pattern and shared regex tables are complete before the
/// validator is used concurrently with others (see limits.md, RangeToken race).
constexpr std::string_view prewarm_docs[] = {
    R"(<MsgHead xmlns="http://www.kith.no/xmlstds/msghead/2006-05-24"><MsgInfo><Type V="T"/><MIGversion>v1.2 2006-05-24</MIGversion><GenDate>2024-01-01T00:00:00Z</GenDate><MsgId>p</MsgId><Sender><Organisation><OrganisationName>a</OrganisationName><Ident><Id>1</Id><TypeId V="HER" S="2.16.578.1.12.4.1.1.9051"/></Ident></Organisation></Sender><Receiver><Organisation><OrganisationName>b</OrganisationName><Ident><Id>2</Id><TypeId V="HER" S="2.16.578.1.12.4.1.1.9051"/></Ident></Organisation></Receiver></MsgInfo><Document><RefDoc><MsgType V="XML"/><Content><Dialogmelding xmlns="http://www.kith.no/xmlstds/dialog/2013-01-23"><Notat><TemaKodet V="6" S="2.16.578.1.12.4.1.1.7322"/></Notat></Dialogmelding></Content></RefDoc></Document><Document><RefDoc><MsgType V="XML"/><Content><Dialogmelding xmlns="http://www.kith.no/xmlstds/dialog/2006-10-11"><Notat><TemaKodet V="6" S="2.16.578.1.12.4.1.1.7322"/></Notat></Dialogmelding></Content></RefDoc></Document></MsgHead>)",
    R"(<AppRec xmlns="http://www.kith.no/xmlstds/apprec/2004-11-21"><MsgType V="APPREC"/><MIGversion>1.0 2004-11-21</MIGversion><GenDate>2024-01-01T00:00:00</GenDate><Id>p</Id><Sender><HCP><Inst><Id>1</Id></Inst></HCP></Sender><Receiver><HCP><Inst><Id>2</Id></Inst></HCP></Receiver><Status V="2"/><Error V="T02" S="2.16.578.1.12.4.1.1.8221"/><OriginalMsgId><MsgType V="T"/><IssueDate>2024-01-01T00:00:00</IssueDate><Id>q</Id></OriginalMsgId></AppRec>)",
    R"(<AppRec xmlns="http://www.kith.no/xmlstds/apprec/2012-02-15"><MsgType V="APPREC"/><MIGversion>v1.1 2012-02-15</MIGversion><GenDate>2024-01-01T00:00:00</GenDate><Id>p</Id><Sender><HCP><Inst><Id>1</Id></Inst></HCP></Sender><Receiver><HCP><Inst><Id>2</Id></Inst></HCP></Receiver><Status V="2"/><Error V="T02" S="2.16.578.1.12.4.1.1.8221"/><OriginalMsgId><MsgType V="T"/><IssueDate>2024-01-01T00:00:00</IssueDate><Id>q</Id></OriginalMsgId></AppRec>)",
};

/// The schema grammars of 'pool'.
std::vector<xc::SchemaGrammar*> schema_grammars(xc::XMLGrammarPool& pool) {
    std::vector<xc::SchemaGrammar*> out;
    auto grammars = pool.getGrammarEnumerator();
    while (grammars.hasMoreElements()) {
        xc::Grammar& g = grammars.nextElement();
        if (g.getGrammarType() == xc::Grammar::SchemaGrammarType)
            out.push_back(static_cast<xc::SchemaGrammar*>(&g));
    }
    return out;
}

/// Takes the xs:base64Binary check of {base64container}Base64Container out of the loaded grammar:
/// its content is then typed xs:string (white space kept, nothing checked), and the fact handler
/// checks the text itself (base64_check.hpp). Returns false, changing nothing, unless the element
/// is there with exactly the built-in base64Binary type (no facets of its own to honour).
bool take_base64_check(xc::XMLGrammarPool& pool) {
    auto* registry = xc::DatatypeValidatorFactory::getBuiltInRegistry();
    xc::DatatypeValidator* b64 = registry ? registry->get(xc::SchemaSymbols::fgDT_BASE64BINARY) : nullptr;
    xc::DatatypeValidator* str = registry ? registry->get(xc::SchemaSymbols::fgDT_STRING) : nullptr;
    if (!b64 || !str)
        return false;
    for (xc::SchemaGrammar* g : schema_grammars(pool)) {
        if (!detail::eq(g->getTargetNamespace(), detail::base64container_ns))
            continue;
        auto elements = g->getElemEnumerator();
        while (elements.hasMoreElements()) {
            xc::SchemaElementDecl& d = elements.nextElement();
            if (!detail::eq(d.getBaseName(), u"Base64Container"))
                continue;
            xc::ComplexTypeInfo* type = d.getComplexTypeInfo();
            if (!type || type->getDatatypeValidator() != b64 ||
                (d.getDatatypeValidator() && d.getDatatypeValidator() != b64))
                return false;
            type->setDatatypeValidator(str);
            if (d.getDatatypeValidator())
                d.setDatatypeValidator(str);
            return true;
        }
    }
    return false;
}

/// Whether 's' is one or more groups of ASCII digits separated by single dots: a value that both
/// spellings of the OID pattern, `\d+(\.\d+)*` and the standard's `(\d+\.?)*\d+`, match.
bool plain_oid(const XMLCh* s) noexcept {
    if (!s || !*s)
        return false;
    bool digit = false;
    for (; *s; ++s) {
        if (*s >= u'0' && *s <= u'9')
            digit = true;
        else if (*s == u'.' && digit)
            digit = false;
        else
            return false;
    }
    return digit;
}

/// Stands in for an OID type (an xs:token restricted by the OID pattern and nothing else, see
/// schemas/README.md) wherever an attribute or element is typed with it: a plain OID is accepted
/// at once, anything else goes to the type's own validator, so that Xerces' regular-expression
/// engine (about 5 500 instructions per value) decides only the odd values, with its own verdict
/// and message.
class oid_datatype final : public xc::StringDatatypeValidator {
public:
    explicit oid_datatype(xc::DatatypeValidator* original)
        : xc::StringDatatypeValidator(original->getBaseValidator(), nullptr, nullptr, original->getFinalSet()),
          original_(original) {
        setWhiteSpace(original->getWSFacet());
        setTypeName(original->getTypeLocalName(), original->getTypeUri());
    }

    void validate(const XMLCh* content, xc::ValidationContext* context, xc::MemoryManager* manager) override {
        if (!plain_oid(content))
            original_->validate(content, context, manager);
    }

private:
    xc::DatatypeValidator* original_;  ///< owned by its grammar, which outlives this
};

/// Whether 'dv' is an OID type oid_datatype may stand in for: derived from the built-in xs:token
/// by one of the two spellings of the OID pattern and no other facet.
bool is_oid_type(const xc::DatatypeValidator& dv, const xc::DatatypeValidator* token) {
    if (dv.getBaseValidator() != token || dv.getType() != xc::DatatypeValidator::String || dv.getEnumString())
        return false;
    auto* facets = dv.getFacets();
    if (!facets)
        return false;
    xc::RefHashTableOfEnumerator<xc::KVStringPair> e(facets, false);
    int count = 0;
    const xc::KVStringPair* pattern = nullptr;
    while (e.hasMoreElements()) {
        const xc::KVStringPair& f = e.nextElement();
        ++count;
        if (detail::eq(f.getKey(), xc::SchemaSymbols::fgELT_PATTERN))
            pattern = &f;
    }
    return count == 1 && pattern &&
           (detail::eq(pattern->getValue(), uR"(\d+(\.\d+)*)") || detail::eq(pattern->getValue(), uR"((\d+\.?)*\d+)"));
}

/// Puts an oid_datatype in place of every OID type (is_oid_type) on the attributes, elements and
/// simple-content types of the loaded grammars. The replacements are returned: they must outlive
/// the pool. Types derived further from an OID type keep Xerces' check.
std::vector<std::unique_ptr<oid_datatype>> speed_up_oid_checks(xc::XMLGrammarPool& pool) {
    std::vector<std::unique_ptr<oid_datatype>> owned;
    auto* builtin = xc::DatatypeValidatorFactory::getBuiltInRegistry();
    const xc::DatatypeValidator* token = builtin ? builtin->get(xc::SchemaSymbols::fgDT_TOKEN) : nullptr;
    if (!token)
        return owned;
    std::map<const xc::DatatypeValidator*, xc::DatatypeValidator*> fast;
    const std::vector<xc::SchemaGrammar*> grammars = schema_grammars(pool);
    for (xc::SchemaGrammar* g : grammars) {
        auto* types = g->getDatatypeRegistry()->getUserDefinedRegistry();
        if (!types)
            continue;
        xc::RefHashTableOfEnumerator<xc::DatatypeValidator> e(types, false);
        while (e.hasMoreElements()) {
            xc::DatatypeValidator& dv = e.nextElement();
            if (is_oid_type(dv, token) && !fast.count(&dv)) {
                owned.push_back(std::make_unique<oid_datatype>(&dv));
                fast[&dv] = owned.back().get();
            }
        }
    }
    if (fast.empty())
        return owned;
    auto swap = [&](xc::DatatypeValidator* dv) -> xc::DatatypeValidator* {
        auto it = dv ? fast.find(dv) : fast.end();
        return it == fast.end() ? nullptr : it->second;
    };
    auto attribute = [&](xc::XMLAttDef& a) {
        auto& sa = static_cast<xc::SchemaAttDef&>(a);
        if (auto* f = swap(sa.getDatatypeValidator()))
            sa.setDatatypeValidator(f);
    };
    auto complex = [&](xc::ComplexTypeInfo* t) {
        if (!t)
            return;
        if (auto* f = swap(t->getDatatypeValidator()))
            t->setDatatypeValidator(f);
        if (!t->hasAttDefs())
            return;
        xc::XMLAttDefList& list = t->getAttDefList();
        for (XMLSize_t i = 0; i < list.getAttDefCount(); ++i)
            attribute(list.getAttDef(i));
    };
    for (xc::SchemaGrammar* g : grammars) {
        auto elements = g->getElemEnumerator();
        while (elements.hasMoreElements()) {
            xc::SchemaElementDecl& d = elements.nextElement();
            if (auto* f = swap(d.getDatatypeValidator()))
                d.setDatatypeValidator(f);
            complex(d.getComplexTypeInfo());
        }
        if (auto* registry = g->getComplexTypeRegistry()) {
            xc::RefHashTableOfEnumerator<xc::ComplexTypeInfo> e(registry, false);
            while (e.hasMoreElements())
                complex(&e.nextElement());
        }
        if (auto* registry = g->getAttributeDeclRegistry()) {
            xc::RefHashTableOfEnumerator<xc::XMLAttDef> e(registry, false);
            while (e.hasMoreElements())
                attribute(e.nextElement());
        }
    }
    return owned;
}

std::mutex& creation_mutex() {
    static std::mutex m;
    return m;
}

class validator_impl final : public validator {
public:
    /// 'owned' (from a folder) or 'files' (embedded) supplies the schemas.
    validator_impl(std::vector<std::pair<std::string, std::string>> owned, std::vector<embedded_file> files,
                   bool base64_by_xerces, bool oid_by_xerces, bool utf8_by_xerces)
        : owned_(std::move(owned)), files_(std::move(files)), base64_by_xerces_(base64_by_xerces),
          oid_by_xerces_(oid_by_xerces), utf8_by_xerces_(utf8_by_xerces),
          resolver_(&files_), handler_(&content_ns_) {
        for (const auto& [name, content] : owned_)
            files_.push_back({name, content});
        security_.setEntityExpansionLimit(100);
    }

    ~validator_impl() override {
        // Readers refer to the pool: release them first.
        validating_.reset();
        plain_.reset();
        pool_.reset();
        oid_types_.clear();  // after the grammars that point to them
    }

    /// Loads the grammars; an error names the XSD file, line and column.
    result<void> load() {
        pool_ = std::make_unique<xc::XMLGrammarPoolImpl>(xc::XMLPlatformUtils::fgMemoryManager);
        validating_.reset(make_reader(true));
        load_errors le;
        validating_->setErrorHandler(&le);
        validating_->setFeature(xc::XMLUni::fgXercesSchemaFullChecking, true);
        validating_->setFeature(xc::XMLUni::fgXercesUseCachedGrammarInParse, true);
        validating_->setFeature(xc::XMLUni::fgXercesCacheGrammarFromParse, true);
        for (std::string_view name : message_schemas) {
            const embedded_file* f = find(name);
            if (!f)
                return error("schema.missing", "message schema " + std::string(name) + " is not available");
            xc::MemBufInputSource src(reinterpret_cast<const XMLByte*>(f->content.data()), f->content.size(),
                                      std::string(name).c_str(), false);
            src.setCopyBufToStream(false);
            xc::Grammar* g = validating_->loadGrammar(src, xc::Grammar::SchemaGrammarType, true);
            if (le.failed)
                return error("schema.invalid", le.message, le.file.empty() ? std::string(name) : le.file, le.line,
                             le.column);
            if (!g)
                return error("schema.invalid", "the schema did not load", std::string(name), 0, 0);
        }
        if (!base64_by_xerces_)
            own_base64_check_ = take_base64_check(*pool_);
        if (!oid_by_xerces_)
            oid_types_ = speed_up_oid_checks(*pool_);
        pool_->lockPool();
        auto grammars = pool_->getGrammarEnumerator();
        while (grammars.hasMoreElements()) {
            const XMLCh* tns = grammars.nextElement().getTargetNamespace();
            content_ns_.emplace_back(tns ? tns : u"");
        }
        // From here on: instances only; only the pool's grammars, never what xsi:schemaLocation
        // names.
        validating_->setFeature(xc::XMLUni::fgXercesSchemaFullChecking, false);
        validating_->setFeature(xc::XMLUni::fgXercesCacheGrammarFromParse, false);
        validating_->setErrorHandler(&handler_);
        plain_.reset(make_reader(false));
        return {};
    }

    void prewarm() {
        for (std::string_view d : prewarm_docs)
            (void)check(d, true);
    }

    validation_result validate(std::string_view document, std::string_view) override { return check(document, true); }
    validation_result validate_observed(std::string_view document, std::string_view,
                                        xc::ContentHandler* observer) override {
        return check(document, true, observer);
    }
    validation_result parse_only(std::string_view document, std::string_view) override {
        return check(document, false);
    }

private:
    const embedded_file* find(std::string_view name) const {
        for (const auto& f : files_)
            if (f.name == name)
                return &f;
        return nullptr;
    }

    xc::SAX2XMLReader* make_reader(bool validating) {
        xc::SAX2XMLReader* r = validating
                                   ? xc::XMLReaderFactory::createXMLReader(xc::XMLPlatformUtils::fgMemoryManager, pool_.get())
                                   : xc::XMLReaderFactory::createXMLReader(xc::XMLPlatformUtils::fgMemoryManager);
        r->setFeature(xc::XMLUni::fgSAX2CoreNameSpaces, true);
        r->setFeature(xc::XMLUni::fgSAX2CoreNameSpacePrefixes, false);
        r->setFeature(xc::XMLUni::fgSAX2CoreValidation, validating);
        r->setFeature(xc::XMLUni::fgXercesDynamic, false);
        r->setFeature(xc::XMLUni::fgXercesSchema, validating);
        r->setFeature(xc::XMLUni::fgXercesLoadSchema, false);
        r->setFeature(xc::XMLUni::fgXercesUseCachedGrammarInParse, validating);
        r->setFeature(xc::XMLUni::fgXercesCacheGrammarFromParse, false);
        r->setFeature(xc::XMLUni::fgXercesHandleMultipleImports, true);
        r->setFeature(xc::XMLUni::fgXercesIgnoreAnnotations, true);
        r->setFeature(xc::XMLUni::fgXercesLoadExternalDTD, false);
        r->setFeature(xc::XMLUni::fgXercesSkipDTDValidation, true);
        r->setFeature(xc::XMLUni::fgXercesDisableDefaultEntityResolution, true);
        r->setFeature(xc::XMLUni::fgXercesValidationErrorAsFatal, false);
        r->setFeature(xc::XMLUni::fgXercesContinueAfterFatalError, false);
        r->setFeature(xc::XMLUni::fgXercesIdentityConstraintChecking, true);
        r->setProperty(xc::XMLUni::fgXercesSecurityManager, &security_);
        r->setEntityResolver(&resolver_);
        r->setContentHandler(&handler_);
        r->setErrorHandler(&handler_);
        r->setLexicalHandler(&handler_);
        return r;
    }

    /// One pass of 'reader' over 'bytes' (not copied) into 'r'. Catches everything.
    void run(bool validating, std::string_view bytes, validation_result& r) {
        handler_.begin(&r);
        handler_.set_check_base64(validating && own_base64_check_);
        xc::SAX2XMLReader& reader = validating ? *validating_ : *plain_;
        bool rebuild = false;
        try {
            if (!utf8_by_xerces_ && detail::utf8_document_as_utf16(bytes, utf16_)) {
                xc::MemBufInputSource src(reinterpret_cast<const XMLByte*>(utf16_.data()),
                                          utf16_.size() * sizeof(char16_t), message_id, false);
                src.setCopyBufToStream(false);
                src.setEncoding(std::endian::native == std::endian::little ? xc::XMLUni::fgUTF16LEncodingString
                                                                            : xc::XMLUni::fgUTF16BEncodingString);
                reader.parse(src);
            } else {
                xc::MemBufInputSource src(reinterpret_cast<const XMLByte*>(bytes.data()), bytes.size(), message_id,
                                          false);
                src.setCopyBufToStream(false);
                reader.parse(src);
            }
        } catch (const detail::stop_parse&) {
            // the handler has recorded why
        } catch (const xc::SAXParseException& e) {
            handler_.fatalError(e);
        } catch (const xc::XMLException& e) {
            handler_.add_fatal(1, 1, detail::sanitize_message(e.getMessage()));
        } catch (const xc::OutOfMemoryException&) {
            handler_.add_fatal(1, 1, "the parser ran out of memory");
            rebuild = true;
        } catch (const std::bad_alloc&) {
            handler_.add_fatal(1, 1, "the parser ran out of memory");
            rebuild = true;
        } catch (...) {
            handler_.add_fatal(1, 1, "internal parser error");
            rebuild = true;
        }
        handler_.finish();
        if (utf16_.capacity() > utf16_keep) {
            utf16_.release();  // a large document's buffer is not kept
        }
        if (rebuild) {
            // Xerces leaves a reader in an undefined state after these; start afresh.
            try {
                if (validating)
                    validating_.reset(make_reader(true));
                else
                    plain_.reset(make_reader(false));
            } catch (...) {
            }
        }
    }

    void observed_run(bool validating, std::string_view bytes, validation_result& r, xc::ContentHandler* observer) {
        handler_.set_observer(observer);
        run(validating, bytes, r);
        handler_.set_observer(nullptr);
    }

    verdict classify() const {
        if (handler_.saw_fatal() || !handler_.saw_root())
            return verdict::not_well_formed;
        if (handler_.unsupported_root() || handler_.unsupported_content())
            return verdict::unsupported;
        if (handler_.wrong_root_element() || handler_.saw_error())
            return verdict::invalid;
        return verdict::valid;
    }

    /// 'observer' sees the events of the pass whose verdict counts (for EI_fellesformat, the inner
    /// MsgHead's), never those of the envelope check.
    validation_result check(std::string_view doc, bool validating, xc::ContentHandler* observer = nullptr) {
        validation_result r;
        if (doc.empty()) {
            r.v = verdict::not_well_formed;
            r.diagnostics.push_back({1, 1, "the document is empty"});
            return r;
        }
        const detail::fellesformat_layout l = detail::scan_fellesformat(doc);
        if (l.is_fellesformat) {
            // The envelope must be well-formed as a whole ...
            run(false, doc, r);
            if (handler_.saw_fatal() || !l.found_msghead) {
                if (!handler_.saw_fatal()) {
                    validation_result u;
                    u.v = verdict::unsupported;
                    u.facts.root_ns = ns::fellesformat;
                    u.facts.from_fellesformat = true;
                    u.diagnostics.push_back({1, 1, "EI_fellesformat without a MsgHead child"});
                    return u;
                }
                r.v = verdict::not_well_formed;
                r.facts.from_fellesformat = true;
                return r;
            }
            // ... and what is validated is its MsgHead.
            const std::string inner = detail::build_unwrapped(doc, l);
            r = validation_result{};
            observed_run(validating, inner, r, observer);
            r.facts.from_fellesformat = true;
        } else {
            observed_run(validating, doc, r, observer);
        }
        r.v = classify();
        if (r.v == verdict::valid)
            r.diagnostics.clear();  // warnings never make it here, but be explicit
        return r;
    }

    std::vector<std::pair<std::string, std::string>> owned_;  ///< name + content when loaded from a folder
    std::vector<embedded_file> files_;
    bool base64_by_xerces_ = false;
    bool own_base64_check_ = false;  ///< the grammar left Base64Container's check to the handler
    bool oid_by_xerces_ = false;
    bool utf8_by_xerces_ = false;
    std::vector<std::unique_ptr<oid_datatype>> oid_types_;  ///< see speed_up_oid_checks
    memory_resolver resolver_;
    xc::SecurityManager security_;
    std::vector<std::u16string> content_ns_;
    detail::facts_handler handler_;
    std::unique_ptr<xc::XMLGrammarPoolImpl> pool_;
    std::unique_ptr<xc::SAX2XMLReader> validating_;
    std::unique_ptr<xc::SAX2XMLReader> plain_;
    static constexpr std::size_t utf16_keep = 64 * 1024;  ///< code units kept between documents
    detail::utf16_buffer utf16_;  ///< the document as Xerces reads it (detail::utf8_document_as_utf16)
};

/// Name and content of every *.xsd in 'dir'.
result<std::vector<std::pair<std::string, std::string>>> read_folder(const std::string& dir) {
    std::vector<std::pair<std::string, std::string>> out;
    std::error_code ec;
    std::filesystem::directory_iterator it(dir, ec);
    if (ec)
        return error("schema.missing", "cannot read the schema folder: " + ec.message(), dir, 0, 0);
    for (const auto& e : it) {
        if (!e.is_regular_file() || e.path().extension() != ".xsd")
            continue;
        std::ifstream in(e.path(), std::ios::binary);
        if (!in)
            return error("schema.missing", "cannot read the schema", e.path().string(), 0, 0);
        std::ostringstream ss;
        ss << in.rdbuf();
        out.emplace_back(e.path().filename().string(), ss.str());
    }
    return out;
}

} // namespace

result<std::unique_ptr<validator>> make_validator(const schema_source& src) {
    try {
        platform_init();
        std::vector<std::pair<std::string, std::string>> owned;
        std::vector<embedded_file> files;
        if (src.directory.empty()) {
            for (const auto& f : schemas::files())
                files.push_back(f);
        } else {
            auto r = read_folder(src.directory);
            if (!r)
                return r.error();
            owned = std::move(*r);
            // edibroker's own content formats (issue 6) are not among the official files: they
            // come from the binary unless the folder has its own copy.
            for (const auto& f : schemas::files()) {
                bool own = false;
                for (std::string_view n : own_schemas)
                    own = own || f.name == n;
                bool in_folder = false;
                for (const auto& [name, content] : owned)
                    in_folder = in_folder || name == f.name;
                if (own && !in_folder)
                    files.push_back(f);
            }
        }
        auto v = std::make_unique<validator_impl>(std::move(owned), std::move(files), src.base64_by_xerces,
                                                  src.oid_by_xerces, src.utf8_by_xerces);
        std::lock_guard lock(creation_mutex());
        if (auto r = v->load(); !r)
            return r.error();
        v->prewarm();
        return std::unique_ptr<validator>(std::move(v));
    } catch (const xc::XMLException& e) {
        return error("schema.invalid", "xerces: " + detail::to_utf8(e.getMessage()));
    } catch (const xc::OutOfMemoryException&) {
        return error("schema.invalid", "xerces ran out of memory while loading the schemas");
    } catch (const std::exception& e) {
        return error("schema.invalid", e.what());
    }
}

validator& thread_validator() {
    thread_local std::unique_ptr<validator> v;
    if (!v) {
        auto r = make_validator();
        if (!r)
            throw std::runtime_error("edibroker: the built-in schemas do not load: " + r.error().where());
        v = std::move(*r);
    }
    return *v;
}

} // namespace broker::xml
