#include "official_validator.hpp"

#include "test_paths.hpp"

#include <xercesc/dom/DOM.hpp>
#include <xercesc/framework/MemBufFormatTarget.hpp>
#include <xercesc/framework/MemBufInputSource.hpp>
#include <xercesc/framework/XMLGrammarPoolImpl.hpp>
#include <xercesc/parsers/XercesDOMParser.hpp>
#include <xercesc/sax/ErrorHandler.hpp>
#include <xercesc/sax/SAXParseException.hpp>
#include <xercesc/sax2/DefaultHandler.hpp>
#include <xercesc/sax2/SAX2XMLReader.hpp>
#include <xercesc/sax2/XMLReaderFactory.hpp>
#include <xercesc/util/OutOfMemoryException.hpp>
#include <xercesc/util/PlatformUtils.hpp>
#include <xercesc/util/XMLString.hpp>
#include <xercesc/util/XMLUni.hpp>
#include <xercesc/validators/common/Grammar.hpp>

#include <memory>
#include <mutex>
#include <stdexcept>

namespace testing {
namespace {

namespace xc = XERCES_CPP_NAMESPACE;

std::string narrow(const XMLCh* s) {
    if (!s)
        return {};
    char* c = xc::XMLString::transcode(s);
    std::string out = c ? c : "";
    xc::XMLString::release(&c);
    return out;
}

struct xstr {
    XMLCh* p;
    explicit xstr(const char* s) : p(xc::XMLString::transcode(s)) {}
    ~xstr() { xc::XMLString::release(&p); }
    xstr(const xstr&) = delete;
    xstr& operator=(const xstr&) = delete;
    operator const XMLCh*() const { return p; }
};

void init_once() {
    static std::once_flag once;
    std::call_once(once, [] { xc::XMLPlatformUtils::Initialize(); });
}

/// Records the first error or fatal error; warnings are ignored.
class first_error_handler : public xc::DefaultHandler {
public:
    void reset() {
        failed = false;
        first.clear();
    }
    void warning(const xc::SAXParseException&) override {}
    void error(const xc::SAXParseException& e) override { note(e); }
    void fatalError(const xc::SAXParseException& e) override { note(e); }
    void resetErrors() override {}

    bool failed = false;
    std::string first;

private:
    void note(const xc::SAXParseException& e) {
        if (failed)
            return;
        failed = true;
        first = std::to_string(e.getLineNumber()) + ":" + std::to_string(e.getColumnNumber()) + ": " +
                narrow(e.getMessage());
    }
};

/// Per-thread parser with its own grammar pool holding the official schemas.
struct official_parser {
    std::unique_ptr<xc::XMLGrammarPoolImpl> pool;
    std::unique_ptr<xc::SAX2XMLReader> reader;
    first_error_handler handler;

    official_parser() {
        init_once();
        pool = std::make_unique<xc::XMLGrammarPoolImpl>(xc::XMLPlatformUtils::fgMemoryManager);
        reader.reset(xc::XMLReaderFactory::createXMLReader(xc::XMLPlatformUtils::fgMemoryManager, pool.get()));
        reader->setFeature(xc::XMLUni::fgSAX2CoreNameSpaces, true);
        reader->setFeature(xc::XMLUni::fgSAX2CoreNameSpacePrefixes, false);
        reader->setFeature(xc::XMLUni::fgSAX2CoreValidation, true);
        reader->setFeature(xc::XMLUni::fgXercesDynamic, false);
        reader->setFeature(xc::XMLUni::fgXercesSchema, true);
        reader->setFeature(xc::XMLUni::fgXercesSchemaFullChecking, true);
        reader->setFeature(xc::XMLUni::fgXercesHandleMultipleImports, true);
        reader->setFeature(xc::XMLUni::fgXercesLoadExternalDTD, false);
        reader->setErrorHandler(&handler);

        const auto wrapper = (interop_dir() / "validation" / "official-all.xsd").string();
        handler.reset();
        xc::Grammar* g = nullptr;
        try {
            g = reader->loadGrammar(wrapper.c_str(), xc::Grammar::SchemaGrammarType, true);
        } catch (const xc::XMLException& e) {
            throw std::runtime_error("official schemas: " + narrow(e.getMessage()));
        } catch (const xc::SAXParseException& e) {
            throw std::runtime_error("official schemas: " + narrow(e.getMessage()));
        }
        if (!g || handler.failed)
            throw std::runtime_error("official schemas did not load from " + wrapper + ": " + handler.first);
        pool->lockPool();

        // Instances: only the cached grammars, never what xsi:schemaLocation names.
        reader->setFeature(xc::XMLUni::fgXercesUseCachedGrammarInParse, true);
        reader->setFeature(xc::XMLUni::fgXercesCacheGrammarFromParse, false);
        reader->setFeature(xc::XMLUni::fgXercesLoadSchema, false);
        reader->setFeature(xc::XMLUni::fgXercesDisableDefaultEntityResolution, true);
        reader->setContentHandler(nullptr);
    }

    official_result validate(std::string_view xml) {
        handler.reset();
        xc::MemBufInputSource src(reinterpret_cast<const XMLByte*>(xml.data()), xml.size(), "official", false);
        try {
            reader->parse(src);
        } catch (const xc::SAXParseException& e) {
            if (!handler.failed)
                handler.error(e);
        } catch (const xc::XMLException& e) {
            if (!handler.failed) {
                handler.failed = true;
                handler.first = narrow(e.getMessage());
            }
        } catch (const xc::OutOfMemoryException&) {
            handler.failed = true;
            handler.first = "out of memory";
        }
        return {!handler.failed, handler.first};
    }
};

official_parser& thread_parser() {
    thread_local official_parser p;
    return p;
}

constexpr const char* eiff_ns = "http://www.nav.no/xml/eiff/2/";
constexpr const char* msghead_ns = "http://www.kith.no/xmlstds/msghead/2006-05-24";

/// If 'xml' is an EI_fellesformat, its MsgHead child serialised as a standalone UTF-8 document
/// (the DOM serialiser adds the namespace declarations it needs); otherwise nullopt-ish "".
/// 'is_ff' is set when the root is EI_fellesformat.
std::string dom_unwrap(std::string_view xml, bool& is_ff) {
    is_ff = false;
    if (xml.find("EI_fellesformat") == std::string_view::npos)
        return {};
    xc::XercesDOMParser parser;
    parser.setDoNamespaces(true);
    parser.setValidationScheme(xc::XercesDOMParser::Val_Never);
    parser.setDisableDefaultEntityResolution(true);
    parser.setLoadExternalDTD(false);
    parser.setCreateEntityReferenceNodes(false);
    first_error_handler eh;
    parser.setErrorHandler(&eh);
    xc::MemBufInputSource src(reinterpret_cast<const XMLByte*>(xml.data()), xml.size(), "ff", false);
    try {
        parser.parse(src);
    } catch (...) {
        return {};
    }
    if (eh.failed)
        return {};
    xc::DOMDocument* doc = parser.getDocument();
    xc::DOMElement* root = doc ? doc->getDocumentElement() : nullptr;
    if (!root || narrow(root->getLocalName()) != "EI_fellesformat" || narrow(root->getNamespaceURI()) != eiff_ns)
        return {};
    is_ff = true;
    for (xc::DOMNode* n = root->getFirstChild(); n; n = n->getNextSibling()) {
        if (n->getNodeType() != xc::DOMNode::ELEMENT_NODE)
            continue;
        if (narrow(n->getLocalName()) != "MsgHead" || narrow(n->getNamespaceURI()) != msghead_ns)
            continue;
        // Carry the envelope's namespace declarations over (MsgHead is a direct child, so the
        // root's are all that is in scope), then serialise the element alone.
        auto* msghead = static_cast<xc::DOMElement*>(n);
        const XMLCh* xmlns_uri = xc::XMLUni::fgXMLNSURIName;
        xc::DOMNamedNodeMap* attrs = root->getAttributes();
        for (XMLSize_t i = 0; i < attrs->getLength(); ++i) {
            auto* a = static_cast<xc::DOMAttr*>(attrs->item(i));
            if (!xc::XMLString::equals(a->getNamespaceURI(), xmlns_uri))
                continue;
            if (!msghead->hasAttributeNS(xmlns_uri, a->getLocalName()))
                msghead->setAttributeNS(xmlns_uri, a->getName(), a->getValue());
        }
        xstr ls("LS");
        xc::DOMImplementation* impl = xc::DOMImplementationRegistry::getDOMImplementation(ls);
        xc::DOMLSSerializer* ser = impl->createLSSerializer();
        xc::DOMLSOutput* lo = impl->createLSOutput();
        xc::MemBufFormatTarget target;
        xstr utf8("UTF-8");
        lo->setEncoding(utf8);
        lo->setByteStream(&target);
        ser->getDomConfig()->setParameter(xc::XMLUni::fgDOMXMLDeclaration, true);
        bool ok = ser->write(msghead, lo);
        lo->release();
        ser->release();
        if (!ok)
            throw std::runtime_error("DOMLSSerializer failed");
        return std::string(reinterpret_cast<const char*>(target.getRawBuffer()), target.getLen());
    }
    return {};
}

} // namespace

official_result official_verdict(std::string_view xml) {
    official_parser& p = thread_parser();
    bool is_ff = false;
    std::string inner;
    try {
        inner = dom_unwrap(xml, is_ff);
    } catch (const std::exception& e) {
        return {false, std::string("unwrap: ") + e.what()};
    } catch (const xc::DOMException& e) {
        return {false, "unwrap: " + narrow(e.getMessage())};
    } catch (const xc::XMLException& e) {
        return {false, "unwrap: " + narrow(e.getMessage())};
    }
    if (is_ff) {
        if (inner.empty())
            return {false, "EI_fellesformat without a MsgHead child"};
        return p.validate(inner);
    }
    return p.validate(xml);
}

} // namespace testing
