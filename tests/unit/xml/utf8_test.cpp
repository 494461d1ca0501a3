// The validator decodes a UTF-8 document itself and hands Xerces UTF-16 (detail.hpp,
// utf8_document_as_utf16); anything it is not sure of goes to Xerces as bytes. Xerces must see the
// same characters either way: same verdicts, the same diagnostics at the same line and column, the
// same facts.
#include "xml_test_util.hpp"

#include "../../../broker/src/xml/detail.hpp"

#include <catch2/catch.hpp>

#include <xercesc/util/PlatformUtils.hpp>
#include <xercesc/util/TransService.hpp>

#include <memory>
#include <random>
#include <string>
#include <vector>

namespace xc = XERCES_CPP_NAMESPACE;
using broker::xml::detail::utf16_buffer;
using broker::xml::detail::utf8_document_as_utf16;

namespace {

std::string message(const std::string& text, const std::string& decl = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
                    const std::string& org = "Helsenorge.no") {
    return decl +
           "<MsgHead xmlns=\"http://www.kith.no/xmlstds/msghead/2006-05-24\">\n"
           "  <MsgInfo>\n"
           "    <Type V=\"DIALOG_INNBYGGER_EKONTAKT\" DN=\"Dialog med innbygger - eKontakt\"/>\n"
           "    <MIGversion>v1.2 2006-05-24</MIGversion>\n"
           "    <GenDate>2026-11-21T10:15:00Z</GenDate>\n"
           "    <MsgId>6c1c2b8e-3f4a-4c59-9a0e-5d1a8f0b7e11</MsgId>\n"
           "    <Sender><Organisation><OrganisationName>" + org + "</OrganisationName>"
           "<Ident><Id>8093244</Id><TypeId V=\"HER\" DN=\"HER-id\" S=\"2.16.578.1.12.4.1.1.9051\"/></Ident>"
           "</Organisation></Sender>\n"
           "    <Receiver><Organisation><OrganisationName>Oslo kommune</OrganisationName>"
           "<Ident><Id>9100100</Id><TypeId V=\"HER\" DN=\"HER-id\" S=\"2.16.578.1.12.4.1.1.9051\"/></Ident>"
           "</Organisation></Receiver>\n"
           "  </MsgInfo>\n"
           "  <Document><RefDoc><MsgType V=\"XML\" DN=\"XML-instans\"/><Content>\n"
           "    <Dialogmelding xmlns=\"http://www.kith.no/xmlstds/dialog/2013-01-23\">\n"
           "      <Foresporsel><TypeForesp V=\"HE\" DN=\"Henvendelse\" S=\"2.16.578.1.12.4.1.1.7601\"/>\n"
           "        <Sporsmal>" + text + "</Sporsmal></Foresporsel>\n"
           "    </Dialogmelding>\n"
           "  </Content></RefDoc></Document>\n"
           "</MsgHead>\n";
}

broker::xml::validator& by_xerces() {
    return xmltest::with_xerces_check<&broker::xml::schema_source::utf8_by_xerces>();
}

broker::xml::validator& ours() { return xmltest::v(); }

/// Both validators on one document: the same verdict, diagnostics and facts.
void same_result(const std::string& doc, const std::string& what) {
    auto x = by_xerces().validate(doc);
    auto o = ours().validate(doc);
    INFO(what << "\n  Xerces: " << broker::xml::apprec_code(x.v)
              << (x.diagnostics.empty() ? std::string() : " " + x.diagnostics[0].message)
              << "\n  ours: " << broker::xml::apprec_code(o.v)
              << (o.diagnostics.empty() ? std::string() : " " + o.diagnostics[0].message));
    xmltest::require_same_diagnostics(x, o);
    CHECK(x.facts.msg_id == o.facts.msg_id);
    CHECK(x.facts.msg_type_dn == o.facts.msg_type_dn);
    CHECK(x.facts.sender.lvl1_name == o.facts.sender.lvl1_name);
    CHECK(x.facts.sender.lowest_her() == o.facts.sender.lowest_her());
    CHECK(x.facts.receiver.lowest_her() == o.facts.receiver.lowest_her());
    CHECK(x.facts.content_ns == o.facts.content_ns);
}

/// What Xerces' own UTF-8 decoder makes of 'bytes' (all of them well-formed).
std::u16string xerces_utf8(const std::string& bytes) {
    xc::XMLTransService::Codes code;
    std::unique_ptr<xc::XMLTranscoder> t(
        xc::XMLPlatformUtils::fgTransService->makeNewTranscoderFor("UTF-8", code, 16 * 1024));
    REQUIRE(t);
    std::u16string out(bytes.size(), u'\0');
    std::vector<unsigned char> sizes(bytes.size());
    XMLSize_t eaten = 0;
    const XMLSize_t n = t->transcodeFrom(reinterpret_cast<const XMLByte*>(bytes.data()), bytes.size(),
                                         out.data(), out.size(), eaten, sizes.data());
    REQUIRE(eaten == bytes.size());
    out.resize(n);
    return out;
}

std::u16string decoded(const std::string& doc) {
    utf16_buffer b;
    REQUIRE(utf8_document_as_utf16(doc, b));
    return std::u16string(b.data(), b.size());
}

bool decodes(const std::string& doc) {
    utf16_buffer b;
    return utf8_document_as_utf16(doc, b);
}

} // namespace

TEST_CASE("utf8: documents Xerces reads as UTF-8 are decoded as Xerces decodes them", "[xml][utf8]") {
    ours();  // Xerces is initialised
    const std::string texts[] = {
        "plain ASCII, long enough to take the sixteen-byte path more than once",
        "Kan hjemmesykepleien komme litt senere på torsdag? ÆØÅ æøå",
        "two: \xc3\xa9, three: \xe2\x82\xac \xef\xbf\xbd \xed\x9f\xbf, four: \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf",
        "\xc2\x80\xdf\xbf\xe0\xa0\x80\xee\x80\x80\xf0\x90\x80\x80\xf3\xbf\xbf\xbf",
    };
    for (const auto& t : texts) {
        const std::string doc = message(t);
        INFO(t);
        CHECK(decoded(doc) == xerces_utf8(doc));
        // Every split of the ASCII runs against the 16- and 8-byte steps.
        for (std::size_t pad = 1; pad < 17; ++pad) {
            const std::string d = message(std::string(pad, 'x') + t);
            CHECK(decoded(d) == xerces_utf8(d));
        }
    }
    // Declarations and marks that mean UTF-8; the mark is not handed on (Xerces skips it as well).
    const std::string body = "<a>\xc3\xa6</a>";
    CHECK(decoded(body) == u"<a>æ</a>");
    CHECK(decoded("\xef\xbb\xbf" + body) == u"<a>æ</a>");
    CHECK(decodes("<?xml version='1.0' encoding='utf-8'?>" + body));
    CHECK(decodes("<?xml version=\"1.0\"   encoding = \"Utf-8\" standalone=\"yes\"?>" + body));
    CHECK(decodes("<?xml version=\"1.0\"?>" + body));
    CHECK(decodes("\xef\xbb\xbf<?xml version=\"1.0\" encoding=\"UTF-8\"?>" + body));
    CHECK(decodes("<?xml-stylesheet href=\"a\"?>" + body));
    CHECK(decodes("<"));
    CHECK(decodes("<?xml version=\"1.0\"?><!-- \xc3\xa6 -->" + body));  // after the first '>'
}

TEST_CASE("utf8: anything else goes to Xerces as bytes", "[xml][utf8]") {
    const std::string body = "<a>x</a>";
    const std::string not_decoded[] = {
        "",
        " <a/>",                                                      // Xerces' guess starts here
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a>\xe6</a>",  // another encoding
        "<?xml version=\"1.0\" encoding=\"UTF8\"?>" + body,            // a name Xerces may map
        "<?xml version=\"1.0\" encoding=\"UTF-16\"?>" + body,
        "<?xml version=\"1.0\" encoding=UTF-8?>" + body,  // not understood: Xerces reports it
        "<?xml version=\"1.0\" encoding=\"UTF-8" + body,
        std::string("<\0a\0", 4),                        // UTF-16 without a mark
        "\xff\xfe<\0a\0/\0>\0",                          // with one
        "\xef\xbb\xbf\xef\xbb\xbf<a/>",                  // two marks
        "<a>\xff</a>",                                   // bytes UTF-8 never has
        "<a>\xc0\xaf</a>", "<a>\xc1\xbf</a>",            // overlong
        "<a>\xe0\x80\xaf</a>", "<a>\xf0\x80\x80\xaf</a>",
        "<a>\xed\xa0\x80</a>", "<a>\xed\xbf\xbf</a>",    // surrogates
        "<a>\xf4\x90\x80\x80</a>", "<a>\xf5\x80\x80\x80</a>",  // past U+10FFFF
        "<a>\x80</a>", "<a>\xc3</a>", "<a>\xe2\x82</a>",  // cut short or alone
        "<a>\xc3", "<a>\xf0\x9f\x98",                     // at the very end
        // Xerces reads up to the first '>' byte by byte and refuses bytes above 0x7F there
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?\xc3\xa6>" + body,
        "<?xml-stylesheet href=\"\xc3\xa6\"?>" + body,
        // declarations this reading does not take apart
        "<?xml version='encoding=\"UTF-8\"' encoding='ISO-8859-1'?>" + body,
        "<?xml version=\"1.0\" encoding=\"UTF-8\" encoding=\"UTF-8\"?>" + body,
        "<?xml version=\"1.0\" Encoding=\"UTF-8\"?>" + body,
        "<?xml?>" + body, "<?xml",
    };
    for (const auto& d : not_decoded) {
        INFO("[" << d << "]");
        CHECK_FALSE(decodes(d));
    }
}

TEST_CASE("utf8: the same verdicts, diagnostics and facts either way", "[xml][utf8]") {
    const std::string texts[] = {
        "Hei", "ÆØÅ æøå é € 😀", std::string(40, 'x') + "é" + std::string(40, 'y'),
        // not well-formed: the position of the first error must be the same
        "før \xff etter", "før \xc3 etter", "\xed\xa0\x80", "\xf4\x90\x80\x80", "æøå\xc0\xaf",
        "æ &undefined; ø", "æ <b> ø", "æ\x01ø", "æ\xef\xbf\xbeø", "😀\x0bx",
    };
    for (const auto& t : texts)
        same_result(message(t), t);
    // schema-invalid after characters of two, three and four bytes on the same line
    same_result(message("ÆØÅ 😀 € <Ukjent/>"), "unknown element");
    same_result(message("x", "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", "æøå 😀 <Ukjent/>"),
                "unknown element in the header");
    // other encodings and marks
    same_result(message("Hei", "\xef\xbb\xbf<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"), "UTF-8 mark");
    same_result(message("Hei", ""), "no declaration");
    same_result(message("\xe6\xf8\xe5", "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n", "\xc6\xd8\xc5"),
                "ISO-8859-1");
    same_result(message("\xe6\xf8\xe5", "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"), "ISO-8859-1 bytes as UTF-8");
}

TEST_CASE("utf8: a large document, and small ones after it (the buffer is let go)", "[xml][utf8]") {
    // About 400 000 UTF-16 units, past what the validator keeps between documents.
    std::string big;
    for (int i = 0; i < 20000; ++i)
        big += "Linje " + std::to_string(i) + " æøå € 😀.\n";
    same_result(message(big), "large");
    same_result(message(big + "\xff"), "large, not UTF-8 at its end");
    same_result(message("Hei etterpå"), "small after large");
}

TEST_CASE("utf8: random changes to a message give the same results either way", "[xml][utf8]") {
    const std::string base = message("Kan hjemmesykepleien komme litt senere på torsdag? Vi har time hos fastlegen.");
    const std::vector<std::string> pieces = {
        "æ", "€", "😀", "\xef\xbf\xbd", "\xed\x9f\xbf", "\xee\x80\x80", "\xf4\x8f\xbf\xbf",
        "\xff", "\x80", "\xc3", "\xe2\x82", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\x01",
        "<", "&", ">", "]]>", "\r\n", "\r", "\"", "'", "?", "=", " ", "x",
    };
    std::mt19937 rng(20261207);
    for (int i = 0; i < 400; ++i) {
        std::string doc = base;
        const int edits = 1 + static_cast<int>(rng() % 3);
        for (int e = 0; e < edits; ++e) {
            const std::size_t at = rng() % doc.size();
            doc.insert(at, pieces[rng() % pieces.size()]);
        }
        same_result(doc, "random change " + std::to_string(i));
    }
    // The same within the XML declaration, which Xerces reads apart from the rest.
    for (int i = 0; i < 300; ++i) {
        std::string doc = base;
        const int edits = 1 + static_cast<int>(rng() % 2);
        for (int e = 0; e < edits; ++e) {
            const std::size_t at = rng() % 40;
            doc.insert(at, pieces[rng() % pieces.size()]);
        }
        same_result(doc, "random change in the declaration " + std::to_string(i));
    }
}

TEST_CASE("utf8: every interop sample gives the same result either way", "[xml][utf8]") {
    if (!testing::have_interop()) {
        WARN("shared/interop is absent; interop comparison skipped");
        return;
    }
    for (const auto& rel : xmltest::message_samples())
        same_result(xmltest::sample(rel), rel);
}
