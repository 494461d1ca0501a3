// Version conversion with a Xerces DOM: parse (no DTDs, no external entities), check what cannot
// map, rename the elements into the target namespace, serialise as UTF-8, validate the result
// with the broker's own schemas. Reasons name elements only, never document text.
#include "broker/convert.hpp"

#include "broker/message.hpp"
#include "broker/xml.hpp"

#include <xercesc/dom/DOM.hpp>
#include <xercesc/framework/MemBufFormatTarget.hpp>
#include <xercesc/framework/MemBufInputSource.hpp>
#include <xercesc/parsers/XercesDOMParser.hpp>
#include <xercesc/sax/ErrorHandler.hpp>
#include <xercesc/sax/SAXParseException.hpp>
#include <xercesc/util/XMLString.hpp>
#include <xercesc/util/XMLUni.hpp>

#include <memory>
#include <vector>

namespace broker::convert {

namespace xc = xercesc;

namespace {

/// UTF-16 copy of a UTF-8/ASCII string, owned.
class xstr {
public:
    explicit xstr(std::string_view s) {
        std::string tmp(s);
        p_ = xc::XMLString::transcode(tmp.c_str());
    }
    ~xstr() { xc::XMLString::release(&p_); }
    xstr(const xstr&) = delete;
    xstr& operator=(const xstr&) = delete;
    const XMLCh* get() const { return p_; }

private:
    XMLCh* p_ = nullptr;
};

/// UTF-8 copy of a Xerces string.
std::string narrow(const XMLCh* s) {
    if (!s)
        return {};
    char* c = xc::XMLString::transcode(s);
    std::string out(c ? c : "");
    xc::XMLString::release(&c);
    return out;
}

bool ns_is(const xc::DOMNode* n, const char* ns) { return n && narrow(n->getNamespaceURI()) == ns; }
std::string local(const xc::DOMNode* n) { return narrow(n->getLocalName()); }

/// Throws nothing; collects the first fatal/error.
class collect_errors final : public xc::ErrorHandler {
public:
    void warning(const xc::SAXParseException&) override {}
    void error(const xc::SAXParseException& e) override { note(e); }
    void fatalError(const xc::SAXParseException& e) override { note(e); }
    void resetErrors() override { first.clear(); }
    std::string first;

private:
    void note(const xc::SAXParseException& e) {
        if (first.empty())
            first = std::to_string(e.getLineNumber()) + ":" + std::to_string(e.getColumnNumber()) + ": " +
                    narrow(e.getMessage());
    }
};

/// A parsed document; the parser owns it.
struct parsed {
    std::unique_ptr<xc::XercesDOMParser> parser;
    xc::DOMDocument* doc = nullptr;
};

result<parsed> parse(std::string_view text) {
    xml::platform_init();
    parsed p;
    try {
        p.parser = std::make_unique<xc::XercesDOMParser>();
        p.parser->setValidationScheme(xc::XercesDOMParser::Val_Never);
        p.parser->setDoNamespaces(true);
        p.parser->setDoSchema(false);
        p.parser->setLoadExternalDTD(false);
        p.parser->setDisableDefaultEntityResolution(true);
        p.parser->setCreateEntityReferenceNodes(false);
        p.parser->setCreateCommentNodes(true);
        collect_errors eh;
        p.parser->setErrorHandler(&eh);
        xc::MemBufInputSource src(reinterpret_cast<const XMLByte*>(text.data()), text.size(), "document", false);
        p.parser->parse(src);
        p.parser->setErrorHandler(nullptr);
        if (!eh.first.empty() || p.parser->getErrorCount() > 0)
            return error{"T01", "not well-formed XML at " + (eh.first.empty() ? std::string("?") : eh.first)};
        p.doc = p.parser->getDocument();
        if (!p.doc || !p.doc->getDocumentElement())
            return error{"T01", "no document element"};
    } catch (const xc::XMLException& e) {
        return error{"T01", "cannot parse: " + narrow(e.getMessage())};
    } catch (const xc::DOMException& e) {
        return error{"T01", "cannot parse: " + narrow(e.getMessage())};
    } catch (const std::exception& e) {
        return error{"T01", std::string("cannot parse: ") + e.what()};
    } catch (...) {
        return error{"T01", "cannot parse the document"};
    }
    return p;
}

std::vector<xc::DOMElement*> child_elements(xc::DOMElement* e) {
    std::vector<xc::DOMElement*> out;
    for (xc::DOMElement* c = e->getFirstElementChild(); c; c = c->getNextElementSibling())
        out.push_back(c);
    return out;
}

/// Rename every element in 'from' (within 'root', including it) into 'to', and rewrite namespace
/// declarations and xsi:schemaLocation mentions of 'from' everywhere in the document.
void move_namespace(xc::DOMDocument* doc, xc::DOMElement* root, const char* from, const char* to,
                    const char* from_xsd, const char* to_xsd) {
    xstr to_x(to);
    std::vector<xc::DOMElement*> stack{root};
    std::vector<xc::DOMElement*> all;
    while (!stack.empty()) {
        xc::DOMElement* e = stack.back();
        stack.pop_back();
        all.push_back(e);
        for (auto* c : child_elements(e))
            stack.push_back(c);
    }
    for (xc::DOMElement* e : all)
        if (ns_is(e, from))
            doc->renameNode(e, to_x.get(), e->getNodeName());

    // Declarations may sit on any ancestor (often the MsgHead root), so look at the whole tree.
    const std::string xmlns_ns = "http://www.w3.org/2000/xmlns/";
    const std::string xsi_ns = "http://www.w3.org/2001/XMLSchema-instance";
    std::vector<xc::DOMElement*> every;
    stack = {doc->getDocumentElement()};
    while (!stack.empty()) {
        xc::DOMElement* e = stack.back();
        stack.pop_back();
        every.push_back(e);
        for (auto* c : child_elements(e))
            stack.push_back(c);
    }
    for (xc::DOMElement* e : every) {
        xc::DOMNamedNodeMap* attrs = e->getAttributes();
        for (XMLSize_t i = 0; attrs && i < attrs->getLength(); ++i) {
            auto* a = static_cast<xc::DOMAttr*>(attrs->item(i));
            std::string ans = narrow(a->getNamespaceURI());
            std::string value = narrow(a->getValue());
            if (ans == xmlns_ns && value == from) {
                a->setValue(to_x.get());
            } else if (ans == xsi_ns && local(a) == "schemaLocation" && value.find(from) != std::string::npos) {
                for (auto [f, t] : {std::pair<std::string, std::string>{from, to}, {from_xsd, to_xsd}})
                    for (auto p = value.find(f); p != std::string::npos; p = value.find(f, p + t.size()))
                        value.replace(p, f.size(), t);
                xstr v(value);
                a->setValue(v.get());
            }
        }
    }
}

result<std::string> serialise(xc::DOMDocument* doc) {
    try {
        xstr ls("LS");
        xc::DOMImplementation* impl = xc::DOMImplementationRegistry::getDOMImplementation(ls.get());
        if (!impl)
            return error{"T99", "no DOM implementation"};
        std::unique_ptr<xc::DOMLSSerializer, void (*)(xc::DOMLSSerializer*)> ser(
            impl->createLSSerializer(), [](xc::DOMLSSerializer* s) { s->release(); });
        std::unique_ptr<xc::DOMLSOutput, void (*)(xc::DOMLSOutput*)> out(impl->createLSOutput(),
                                                                       [](xc::DOMLSOutput* o) { o->release(); });
        xc::MemBufFormatTarget target;
        xstr enc("UTF-8");
        out->setEncoding(enc.get());
        out->setByteStream(&target);
        xc::DOMConfiguration* cfg = ser->getDomConfig();
        if (cfg->canSetParameter(xc::XMLUni::fgDOMXMLDeclaration, true))
            cfg->setParameter(xc::XMLUni::fgDOMXMLDeclaration, true);
        if (!ser->write(doc, out.get()))
            return error{"T99", "cannot serialise the converted document"};
        std::string s(reinterpret_cast<const char*>(target.getRawBuffer()), target.getLen());
        if (s.empty() || s.back() != '\n')
            s += '\n';
        return s;
    } catch (const xc::XMLException& e) {
        return error{"T99", "cannot serialise: " + narrow(e.getMessage())};
    } catch (const xc::DOMException& e) {
        return error{"T99", "cannot serialise: " + narrow(e.getMessage())};
    } catch (...) {
        return error{"T99", "cannot serialise the converted document"};
    }
}

/// Check one Dialogmelding 1.1 element for what 1.0 cannot hold. Structural positions only: text
/// and markup inside anyType content (TekstNotatInnhold) are carried as they are.
result<void> check_dialog(xc::DOMElement* dm) {
    auto refuse = [](std::string what) -> result<void> {
        return error{"T10", "Dialogmelding 1.1 cannot be converted to 1.0 without loss: " + what};
    };
    std::vector<xc::DOMElement*> foresporsler, roller;
    for (auto* c : child_elements(dm)) {
        if (!ns_is(c, ns::dialog_1_1))
            continue;
        std::string n = local(c);
        if (n == "Foresporsel")
            foresporsler.push_back(c);
        else if (n == "Notat") {
            for (auto* nc : child_elements(c)) {
                if (!ns_is(nc, ns::dialog_1_1))
                    continue;
                std::string m = local(nc);
                if (m == "Foresporsel")
                    foresporsler.push_back(nc);
                else if (m == "RollerRelatertNotat")
                    roller.push_back(nc);
            }
        }
    }
    for (auto* f : foresporsler) {
        int journalinfo = 0;
        for (auto* c : child_elements(f)) {
            if (!ns_is(c, ns::dialog_1_1))
                continue;
            std::string n = local(c);
            if (n == "EmneSporsmal" || n == "KodetOpplysning")
                return refuse("Foresporsel has " + n + ", which 1.0 does not have");
            if (n == "Sporsmal" && c->getFirstElementChild())
                return refuse("Foresporsel/Sporsmal has structured (XHTML) content; 1.0 takes text only");
            if (n == "TypeJournalinfo" && ++journalinfo > 1)
                return refuse("Foresporsel has more than one TypeJournalinfo; 1.0 takes one");
            if (n == "RollerRelatertNotat")
                roller.push_back(c);
        }
    }
    for (auto* r : roller) {
        bool person = false;
        for (auto* c : child_elements(r)) {
            std::string n = local(c);
            if (n == "TilknyttetEnhet")
                return refuse("RollerRelatertNotat has TilknyttetEnhet, which 1.0 does not have");
            person = person || n == "HealthcareProfessional" || n == "Person";
        }
        if (!person)
            return refuse("RollerRelatertNotat names neither a HealthcareProfessional nor a Person (1.0 requires one)");
    }
    return {};
}

/// Every Dialogmelding 1.1 element in the document (normally exactly one, in the first Document).
std::vector<xc::DOMElement*> dialogs_1_1(xc::DOMDocument* doc) {
    std::vector<xc::DOMElement*> out;
    std::vector<xc::DOMElement*> stack{doc->getDocumentElement()};
    while (!stack.empty()) {
        xc::DOMElement* e = stack.back();
        stack.pop_back();
        if (ns_is(e, ns::dialog_1_1) && local(e) == "Dialogmelding") {
            out.push_back(e);
            continue;
        }
        for (auto* c : child_elements(e))
            stack.push_back(c);
    }
    return out;
}

/// The converted document must validate, with the expected namespace.
result<std::string> validated(std::string doc, const char* what, const char* expect_ns, bool apprec) {
    auto vr = xml::thread_validator().validate(doc, "converted");
    if (vr.v != xml::verdict::valid) {
        std::string where = vr.diagnostics.empty() ? std::string()
                                                   : " at " + std::to_string(vr.diagnostics.front().line) + ":" +
                                                         std::to_string(vr.diagnostics.front().column) + ": " +
                                                         vr.diagnostics.front().message;
        return error{"T02", std::string("the converted ") + what + " does not validate" + where};
    }
    const std::string& got = apprec ? vr.facts.root_ns : vr.facts.content_ns;
    if (got != expect_ns)
        return error{"T10", std::string("the converted ") + what + " has namespace " + got};
    return doc;
}

result<std::string> convert_dialog(std::string_view msghead) {
    auto p = parse(msghead);
    if (!p)
        return p.error();
    xc::DOMDocument* doc = p->doc;
    try {
        auto dialogs = dialogs_1_1(doc);
        if (dialogs.empty())
            return error{"T10", "the message carries no Dialogmelding 1.1"};
        for (auto* dm : dialogs)
            if (auto c = check_dialog(dm); !c)
                return c.error();
        for (auto* dm : dialogs)
            move_namespace(doc, dm, ns::dialog_1_1, ns::dialog_1_0, "dialogmelding-v1.1.xsd", "dialogmelding-v1.0.xsd");
    } catch (const xc::DOMException& e) {
        return error{"T99", "cannot convert: " + narrow(e.getMessage())};
    }
    auto s = serialise(doc);
    if (!s)
        return s.error();
    return validated(std::move(*s), "Dialogmelding 1.0", ns::dialog_1_0, false);
}

result<std::string> convert_apprec(std::string_view apprec, const char* from, const char* to, const char* mig_to,
                                   const char* from_xsd, const char* to_xsd) {
    auto p = parse(apprec);
    if (!p)
        return p.error();
    xc::DOMDocument* doc = p->doc;
    try {
        xc::DOMElement* root = doc->getDocumentElement();
        if (!ns_is(root, from) || local(root) != "AppRec")
            return error{"T10", std::string("not an AppRec in ") + from};
        for (auto* c : child_elements(root))
            if (ns_is(c, from) && local(c) == "MIGversion") {
                xstr v(mig_to);
                c->setTextContent(v.get());
            }
        move_namespace(doc, root, from, to, from_xsd, to_xsd);
    } catch (const xc::DOMException& e) {
        return error{"T99", "cannot convert: " + narrow(e.getMessage())};
    }
    auto s = serialise(doc);
    if (!s)
        return s.error();
    return validated(std::move(*s), "AppRec", to, true);
}

} // namespace

result<std::string> dialog_1_1_to_1_0(std::string_view msghead) { return convert_dialog(msghead); }

result<void> check_dialog_1_1_to_1_0(std::string_view msghead) {
    // The full conversion (with validation of the result) is the only honest check.
    auto r = convert_dialog(msghead);
    if (!r)
        return r.error();
    return {};
}

result<std::string> apprec_1_1_to_1_0(std::string_view apprec) {
    return convert_apprec(apprec, ns::apprec_1_1, ns::apprec_1_0, "1.0 2004-11-21", "apprec-v1.1.xsd",
                          "apprec-v1.0.xsd");
}

result<std::string> apprec_1_0_to_1_1(std::string_view apprec) {
    return convert_apprec(apprec, ns::apprec_1_0, ns::apprec_1_1, "v1.1 2012-02-15", "apprec-v1.0.xsd",
                          "apprec-v1.1.xsd");
}

} // namespace broker::convert
