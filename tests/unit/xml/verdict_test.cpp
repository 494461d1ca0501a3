// Verdict codes (T01/T02/T10), diagnostics, and the safety rules (no DTDs, no schema loading from
// the instance, no echo of text content).
#include "xml_test_util.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <string>

using broker::xml::verdict;

namespace {

const char* ekontakt_path = "Helsenorge.Messaging/Examples/SimpleSender/DIALOG_INNBYGGER_EKONTAKT.xml";

/// A small valid MsgHead + Dialogmelding 1.1 that does not depend on shared/interop.
std::string minimal_msghead(const std::string& content = "<Dialogmelding xmlns=\"http://www.kith.no/xmlstds/dialog/2013-01-23\">"
                                                          "<Foresporsel><TypeForesp V=\"KT\" S=\"2.16.578.1.12.4.1.1.7603\"/>"
                                                          "<Sporsmal>Test</Sporsmal></Foresporsel></Dialogmelding>",
                            const std::string& after_msginfo = "") {
    return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
           "<MsgHead xmlns=\"http://www.kith.no/xmlstds/msghead/2006-05-24\">\n"
           "  <MsgInfo>\n"
           "    <Type V=\"DIALOG_INNBYGGER_TEST\" DN=\"Test\"/>\n"
           "    <MIGversion>v1.2 2006-05-24</MIGversion>\n"
           "    <GenDate>2024-05-01T10:00:00+02:00</GenDate>\n"
           "    <MsgId>6c1c2b8e-3f4a-4c59-9a0e-5d1a8f0b7e11</MsgId>\n"
           "    <Sender><Organisation><OrganisationName>A</OrganisationName>"
           "<Ident><Id>111</Id><TypeId V=\"HER\" S=\"2.16.578.1.12.4.1.1.9051\"/></Ident></Organisation></Sender>\n"
           "    <Receiver><Organisation><OrganisationName>B</OrganisationName>"
           "<Ident><Id>222</Id><TypeId V=\"HER\" S=\"2.16.578.1.12.4.1.1.9051\"/></Ident></Organisation></Receiver>\n"
           "  </MsgInfo>\n" +
           after_msginfo +
           "  <Document><RefDoc><MsgType V=\"XML\"/><Content>" + content +
           "</Content></RefDoc></Document>\n"
           "</MsgHead>\n";
}

bool mentions(const broker::xml::validation_result& r, const std::string& what) {
    for (const auto& d : r.diagnostics)
        if (d.message.find(what) != std::string::npos)
            return true;
    return false;
}

} // namespace

TEST_CASE("a minimal MsgHead with Dialogmelding 1.1 is valid", "[xml][verdict]") {
    auto r = xmltest::v().validate(minimal_msghead());
    INFO((r.diagnostics.empty() ? "" : r.diagnostics[0].message));
    CHECK(r.v == verdict::valid);
    CHECK(r.diagnostics.empty());
    CHECK(r.facts.msg_id == "6c1c2b8e-3f4a-4c59-9a0e-5d1a8f0b7e11");
    CHECK(r.facts.content_ns == broker::ns::dialog_1_1);
    CHECK(r.facts.dialog_version() == "1.1");
    CHECK(broker::xml::apprec_code(r.v) == std::string());
}

TEST_CASE("not well-formed is T01 with line and column", "[xml][verdict]") {
    std::string doc = minimal_msghead();
    auto p = doc.find("</Sender>");
    doc.replace(p, 9, "</Sendr>");
    auto r = xmltest::v().validate(doc);
    REQUIRE(r.v == verdict::not_well_formed);
    CHECK(std::string(broker::xml::apprec_code(r.v)) == "T01");
    REQUIRE(!r.diagnostics.empty());
    CHECK(r.diagnostics[0].line == 8);  // the Sender line
    CHECK(r.diagnostics[0].column > 1);
    // Facts read before the error are kept, so a rejection can be addressed.
    CHECK(r.facts.msg_id == "6c1c2b8e-3f4a-4c59-9a0e-5d1a8f0b7e11");
    CHECK(r.facts.sender.lvl1_her == "111");
    CHECK(r.sender_known());
}

TEST_CASE("empty and non-XML input are T01", "[xml][verdict]") {
    auto& v = xmltest::v();
    for (std::string doc : {std::string(), std::string("   \n"), std::string("hello"), std::string("<a>"),
                            std::string("\x00\x01\x02", 3), std::string("<?xml version=\"1.0\"?>")}) {
        auto r = v.validate(doc);
        INFO("input of " << doc.size() << " bytes");
        CHECK(r.v == verdict::not_well_formed);
        REQUIRE(!r.diagnostics.empty());
        CHECK(r.diagnostics[0].line >= 1);
        CHECK(r.diagnostics[0].column >= 1);
        CHECK(!r.sender_known());
    }
}

TEST_CASE("schema-invalid is T02", "[xml][verdict]") {
    auto& v = xmltest::v();
    SECTION("MsgId removed") {
        std::string doc = minimal_msghead();
        auto a = doc.find("    <MsgId>");
        auto b = doc.find('\n', a);
        doc.erase(a, b - a + 1);
        auto r = v.validate(doc);
        CHECK(r.v == verdict::invalid);
        CHECK(std::string(broker::xml::apprec_code(r.v)) == "T02");
        REQUIRE(!r.diagnostics.empty());
        CHECK(r.diagnostics[0].line >= 3);
        CHECK(r.diagnostics[0].line <= 9);  // Xerces reports content-model errors at the parent's end tag
    }
    SECTION("ConversationRef in the wrong order (a real-world deviation)") {
        std::string doc = minimal_msghead();
        doc.insert(doc.find("    <Sender>"),
                   "    <ConversationRef><RefToConversation>c</RefToConversation><RefToParent>p</RefToParent>"
                   "</ConversationRef>\n");
        auto r = v.validate(doc);
        CHECK(r.v == verdict::invalid);
        CHECK(mentions(r, "RefToConversation"));
    }
    SECTION("a sample with an element removed") {
        if (!testing::have_interop())
            return;
        std::string doc = xmltest::sample(ekontakt_path);
        auto a = doc.find("<MIGversion>");
        auto b = doc.find("</MIGversion>") + 13;
        doc.erase(a, b - a);
        auto r = v.validate(doc);
        CHECK(r.v == verdict::invalid);
        CHECK(!testing::official_verdict(doc).valid);
        CHECK(r.facts.msg_id == "0d77d041-f010-4ec8-9105-f3dda92fc320");
        CHECK(r.sender_known());
    }
    SECTION("text directly in RefDoc/Content") {
        auto r = v.validate(minimal_msghead("free text"));
        CHECK(r.v == verdict::invalid);
    }
    SECTION("an unknown element inside Dialogmelding") {
        auto r = v.validate(minimal_msghead("<Dialogmelding xmlns=\"http://www.kith.no/xmlstds/dialog/2013-01-23\">"
                                            "<Foresporsel><Hemmelig/></Foresporsel></Dialogmelding>"));
        CHECK(r.v == verdict::invalid);
    }
    SECTION("a root element of a message namespace that is not a message root") {
        auto r = v.validate("<Organisation xmlns=\"http://www.kith.no/xmlstds/msghead/2006-05-24\">"
                            "<OrganisationName>x</OrganisationName><Ident><Id>1</Id><TypeId V=\"HER\"/></Ident>"
                            "</Organisation>");
        CHECK(r.v == verdict::invalid);
    }
}

TEST_CASE("unknown root namespace or version is T10", "[xml][verdict]") {
    auto& v = xmltest::v();
    for (std::string doc : {
             std::string("<foo xmlns=\"urn:example\"><bar/></foo>"),
             std::string("<MsgHead><MsgInfo/></MsgHead>"),
             // a MsgHead of a future version
             std::string("<MsgHead xmlns=\"http://www.kith.no/xmlstds/msghead/2099-01-01\"><MsgInfo><MIGversion>v9"
                         "</MIGversion></MsgInfo></MsgHead>"),
             // an AppRec of an unknown version
             std::string("<AppRec xmlns=\"http://www.kith.no/xmlstds/apprec/2099-01-01\"><MsgType V=\"APPREC\"/>"
                         "</AppRec>"),
             // a Dialogmelding on its own is content, not a message
             std::string("<Dialogmelding xmlns=\"http://www.kith.no/xmlstds/dialog/2013-01-23\"/>"),
         }) {
        auto r = v.validate(doc);
        INFO(doc);
        CHECK(r.v == verdict::unsupported);
        CHECK(std::string(broker::xml::apprec_code(r.v)) == "T10");
        REQUIRE(!r.diagnostics.empty());
        CHECK(r.diagnostics[0].message.find("root element") != std::string::npos);
    }
    // Not well-formed wins over an unknown namespace.
    CHECK(v.validate("<foo xmlns=\"urn:example\"><bar></foo>").v == verdict::not_well_formed);
}

TEST_CASE("unknown RefDoc/Content namespace is T10", "[xml][verdict]") {
    auto& v = xmltest::v();
    auto r = v.validate(minimal_msghead("<Dialogmelding xmlns=\"http://www.kith.no/xmlstds/dialog/2099-01-01\">"
                                        "<Notat/></Dialogmelding>"));
    CHECK(r.v == verdict::unsupported);
    CHECK(r.facts.content_ns == "http://www.kith.no/xmlstds/dialog/2099-01-01");
    CHECK(r.facts.msg_id == "6c1c2b8e-3f4a-4c59-9a0e-5d1a8f0b7e11");
    REQUIRE(!r.diagnostics.empty());
    CHECK(r.diagnostics[0].message.find("RefDoc/Content") != std::string::npos);
    CHECK(r.diagnostics[0].line == 11);

    // Also in a later Document (an attachment).
    std::string doc = minimal_msghead();
    doc.insert(doc.find("</MsgHead>"), "  <Document><RefDoc><MsgType V=\"A\"/><Content><x:Pdf xmlns:x=\"urn:pdf\"/>"
                                       "</Content></RefDoc></Document>\n");
    r = v.validate(doc);
    CHECK(r.v == verdict::unsupported);
    CHECK(r.facts.content_ns == broker::ns::dialog_1_1);
    CHECK(r.facts.document_count == 2);

    if (testing::have_interop()) {
        r = v.validate(xmltest::sample("Helsenorge.Messaging/Examples/SimpleSender/DIALOG_INNBYGGER_RESEPTFORNYELSE.xml"));
        CHECK(r.v == verdict::unsupported);
        CHECK(mentions(r, "eresept"));
    }
}

TEST_CASE("DTDs and entity bombs are refused as T01, and the parser stays usable", "[xml][verdict][security]") {
    auto& v = xmltest::v();
    const std::string bomb = "<?xml version=\"1.0\"?>\n"
                             "<!DOCTYPE lolz [\n"
                             " <!ENTITY lol \"lol\">\n"
                             " <!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"
                             " <!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">\n"
                             " <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n"
                             " <!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">\n"
                             " <!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">\n"
                             " <!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">\n"
                             " <!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">\n"
                             " <!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">\n"
                             " <!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">\n"
                             "]>\n"
                             "<MsgHead xmlns=\"http://www.kith.no/xmlstds/msghead/2006-05-24\">&lol9;</MsgHead>\n";
    const std::string xxe = "<?xml version=\"1.0\"?>\n"
                            "<!DOCTYPE MsgHead [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>\n"
                            "<MsgHead xmlns=\"http://www.kith.no/xmlstds/msghead/2006-05-24\">&xxe;</MsgHead>\n";
    const std::string external_dtd = "<!DOCTYPE MsgHead SYSTEM \"http://127.0.0.1:9/evil.dtd\">\n"
                                     "<MsgHead xmlns=\"http://www.kith.no/xmlstds/msghead/2006-05-24\"/>\n";
    for (const std::string* doc : {&bomb, &xxe, &external_dtd}) {
        for (bool validating : {true, false}) {
            auto t0 = std::chrono::steady_clock::now();
            auto r = validating ? v.validate(*doc) : v.parse_only(*doc);
            auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
            CHECK(r.v == verdict::not_well_formed);
            CHECK(mentions(r, "DOCTYPE"));
            CHECK(!mentions(r, "root:"));
            CHECK(ms < 200);
        }
        // The reused parser still works after the aborted parse.
        CHECK(v.validate(minimal_msghead()).v == verdict::valid);
    }
}

TEST_CASE("schemas named by the instance are never loaded", "[xml][verdict][security]") {
    auto& v = xmltest::v();
    // A schema hint for an unknown namespace: nothing is fetched, the namespace stays unsupported.
    const std::string doc =
        "<x:Doc xmlns:x=\"urn:evil\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" "
        "xsi:schemaLocation=\"urn:evil http://127.0.0.1:9/evil.xsd\"/>";
    auto t0 = std::chrono::steady_clock::now();
    auto r = v.validate(doc);
    CHECK(r.v == verdict::unsupported);
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(500));
    // A hint for a supported namespace does not replace our schema either.
    std::string m = minimal_msghead();
    m.replace(m.find("<MsgHead xmlns"), 8,
              "<MsgHead xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" "
              "xsi:schemaLocation=\"http://www.kith.no/xmlstds/msghead/2006-05-24 http://127.0.0.1:9/MsgHead.xsd\"");
    CHECK(v.validate(m).v == verdict::valid);
}

TEST_CASE("diagnostics never echo text or attribute values, and are capped", "[xml][verdict]") {
    auto& v = xmltest::v();
    std::string doc = minimal_msghead();
    doc.replace(doc.find("2024-05-01T10:00:00+02:00"), 25, "SECRET-2024");
    doc.replace(doc.find("2.16.578.1.12.4.1.1.9051"), 24, "2.16.HEMMELIG");
    doc.insert(doc.find("  </MsgInfo>"), "    <Patient><FamilyName>Nordmann</FamilyName><DateOfBirth>1991-12-4"
                                         "</DateOfBirth><Ident><Id>12345678901</Id><TypeId V=\"FNR\"/></Ident>"
                                         "</Patient>\n");
    auto r = v.validate(doc);
    REQUIRE(r.v == verdict::invalid);
    REQUIRE(r.diagnostics.size() >= 3);
    for (const auto& d : r.diagnostics) {
        INFO(d.message);
        CHECK(d.message.find("SECRET") == std::string::npos);
        CHECK(d.message.find("HEMMELIG") == std::string::npos);
        CHECK(d.message.find("1991") == std::string::npos);
        CHECK(d.message.find("Nordmann") == std::string::npos);
        CHECK(d.line >= 1);
        CHECK(d.column >= 1);
    }
    CHECK(r.facts.patient_id == "12345678901");  // the facts are another matter: they are for routing

    std::string many;
    for (int i = 0; i < 100; ++i)
        many += "<Bad" + std::to_string(i) + "/>";
    r = v.validate(minimal_msghead("<Dialogmelding xmlns=\"http://www.kith.no/xmlstds/dialog/2013-01-23\">" + many +
                                   "</Dialogmelding>"));
    CHECK(r.v == verdict::invalid);
    CHECK(r.diagnostics.size() <= 20);
    CHECK(!r.diagnostics.empty());
}

TEST_CASE("parse_only checks well-formedness and extracts facts without a schema", "[xml][verdict]") {
    auto& v = xmltest::v();
    std::string doc = minimal_msghead();
    doc.insert(doc.find("  </MsgInfo>"), "    <Unexpected/>\n");
    CHECK(v.validate(doc).v == verdict::invalid);
    auto r = v.parse_only(doc);
    CHECK(r.v == verdict::valid);
    CHECK(r.facts.msg_id == "6c1c2b8e-3f4a-4c59-9a0e-5d1a8f0b7e11");
    CHECK(r.facts.receiver.lvl1_her == "222");
    CHECK(v.parse_only("<MsgHead xmlns=\"http://www.kith.no/xmlstds/msghead/2006-05-24\">").v ==
          verdict::not_well_formed);
    CHECK(v.parse_only("<foo/>").v == verdict::unsupported);
}

TEST_CASE("an XML-DSig Signature after the Documents is checked", "[xml][verdict]") {
    auto& v = xmltest::v();
    const std::string sig =
        "  <Signature xmlns=\"http://www.w3.org/2000/09/xmldsig#\"><SignedInfo>"
        "<CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>"
        "<SignatureMethod Algorithm=\"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256\"/>"
        "<Reference URI=\"\"><Transforms><Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/>"
        "</Transforms><DigestMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"/>"
        "<DigestValue>AAAA</DigestValue></Reference></SignedInfo><SignatureValue>AAAA</SignatureValue>"
        "<KeyInfo><X509Data><X509Certificate>AAAA</X509Certificate></X509Data></KeyInfo></Signature>\n";
    std::string doc = minimal_msghead();
    doc.insert(doc.find("</MsgHead>"), sig);
    CHECK(v.validate(doc).v == verdict::valid);
    std::string bad = minimal_msghead();
    bad.insert(bad.find("</MsgHead>"), "  <Signature xmlns=\"http://www.w3.org/2000/09/xmldsig#\"><Junk/></Signature>\n");
    CHECK(v.validate(bad).v == verdict::invalid);
}

TEST_CASE("the official schemas can be loaded as a schema folder", "[xml][verdict]") {
    if (!testing::have_interop())
        return;
    auto ov = broker::xml::make_validator(
        {(testing::interop_dir() / "fiks-nhn-client/msh-client/src/main/resources/xsd").string()});
    REQUIRE(ov.has_value());
    CHECK((*ov)->validate(xmltest::sample(ekontakt_path)).v == verdict::valid);
    auto missing = broker::xml::make_validator({"/nonexistent/edibroker/schemas"});
    CHECK(!missing.has_value());
}
