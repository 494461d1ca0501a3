// The validator checks the text of a Base64Container (an attachment) itself instead of leaving it
// to Xerces' xs:base64Binary check (base64_check.hpp): the verdicts must be Xerces' own, for the
// usual values and every odd one, and the diagnostic must stand where Xerces puts it.
#include "xml_test_util.hpp"

#include "../../../broker/src/xml/base64_check.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

using broker::xml::verdict;

namespace {

/// The fixture's Dialogmelding with an attachment whose Base64Container holds 'text' (raw XML:
/// character references, CDATA and comments are allowed in it).
std::string with_attachment(const std::string& text) {
    std::string doc = testing::read_file(testing::source_dir() / "tests/fixtures/messages/dialog-portal-to-oslo.xml");
    const std::string attachment = "  <Document>\n    <RefDoc>\n      <MsgType V=\"A\" DN=\"Vedlegg\"/>\n"
                                   "      <MimeType>application/pdf</MimeType>\n      <Content>\n"
                                   "        <Base64Container xmlns=\"http://www.kith.no/xmlstds/base64container\">" +
                                   text + "</Base64Container>\n      </Content>\n    </RefDoc>\n  </Document>\n";
    const auto end = doc.rfind("</MsgHead>");
    REQUIRE(end != std::string::npos);
    doc.insert(end, attachment);
    return doc;
}

broker::xml::validator& by_xerces() {
    return xmltest::with_xerces_check<&broker::xml::schema_source::base64_by_xerces>();
}

broker::xml::validator& ours() { return xmltest::v(); }

/// Both validators on one Base64Container text: same verdict, and when invalid, the first
/// diagnostic at the same line and column.
void same_verdict(const std::string& text) {
    const std::string doc = with_attachment(text);
    auto x = by_xerces().validate(doc);
    auto o = ours().validate(doc);
    INFO("text: [" << text << "]\n  Xerces: " << broker::xml::apprec_code(x.v)
                   << (x.diagnostics.empty() ? std::string() : " " + x.diagnostics[0].message)
                   << "\n  ours: " << broker::xml::apprec_code(o.v)
                   << (o.diagnostics.empty() ? std::string() : " " + o.diagnostics[0].message));
    REQUIRE(x.v == o.v);
    REQUIRE(x.diagnostics.size() == o.diagnostics.size());
    if (!x.diagnostics.empty()) {
        CHECK(x.diagnostics[0].line == o.diagnostics[0].line);
        CHECK(x.diagnostics[0].column == o.diagnostics[0].column);
    }
}

} // namespace

TEST_CASE("base64: the validator's own check gives Xerces' verdict on chosen values", "[xml][base64]") {
    const char* values[] = {
        // valid: plain, padded, with white space where collapse allows it
        "", "AAAA", "AAA=", "AA==", "QUJD", "QUI=", "QQ==", "TWFu TWFu", "TWFu\nTWFu\n", "\n  TWFu\r\n\tTWFu  \n",
        "AB C=", "A Q = =", "AQ\n==", "QUI =", " QQ== ", "JVBERi0xLjQK", "+/+/", "////",
        // padding and length
        "A", "AA", "AAA", "AAAAA", "A===", "====", "=AAA", "AA=A", "A=AA", "AAAA====", "AAA==", "AAAA=",
        "AAAAAA==AAAA", "QUJ=", "QR==", "QUJDRA=", "QUJDRA==", "QUJDREU=",
        // the bits before the padding: "xx==" ends in A Q g w, "xxx=" in A E I M Q U Y c g k o s w 0 4 8
        "AB==", "A B = =", "Ag==", "Aw==", "AR==", "AAB=", "AAE=", "AAc=", "AA8=", "AA9=", "AA/=",
        // characters outside the alphabet
        "AA-_", "AA.A", "A\xc3\x86" "AA", "AA\xe2\x82\xac" "A", "AA AA\x7f", "AAAA\xf0\x9f\x98\x80",
        // what XML lets a sender write for the same characters
        "AA&#65;A", "&#x41;AAA", "AA&#x3D;&#x3D;", "AA&#x20;AA", "&#9;AAAA&#10;", "AA&#x2D;A", "AA&amp;A",
        "<![CDATA[AAAA]]>", "AA<![CDATA[ ==]]>", "AA<!-- a comment -->AA", "AA<?pi x?>AA",
        "<![CDATA[A&A]]>AA",
    };
    for (const char* v : values)
        same_verdict(v);
}

TEST_CASE("base64: the validator's own check gives Xerces' verdict on random values", "[xml][base64]") {
    // Short strings over the characters that matter: padding, white space, bits before padding, a
    // character outside the alphabet, one outside ASCII.
    const std::string pieces[] = {"A", "Q", "g", "w", "B", "E", "/", "+", "=", " ", "\n", "\t", "-", "\xc3\xa9"};
    std::mt19937 rng(20261207);
    std::uniform_int_distribution<int> len(0, 13), pick(0, static_cast<int>(std::size(pieces)) - 1);
    int valid = 0;
    for (int i = 0; i < 1500; ++i) {
        std::string text;
        for (int n = len(rng); n > 0; --n)
            text += pieces[pick(rng)];
        same_verdict(text);
        valid += ours().validate(with_attachment(text)).v == verdict::valid;
    }
    // The draw covers both outcomes.
    CHECK(valid > 20);
    CHECK(valid < 1480);
}

TEST_CASE("base64: a bad attachment is named without its content, where it ends", "[xml][base64]") {
    auto r = ours().validate(with_attachment("JVBERi0xLjQK\nJVBERi0x-jQK\n"));
    REQUIRE(r.v == verdict::invalid);
    REQUIRE(r.diagnostics.size() == 1);
    const auto& d = r.diagnostics[0];
    CHECK(d.message == "the content of element 'Base64Container' is not valid base64Binary: "
                       "a character that is not Base64: '-' (U+002D) at Base64 character 21");
    CHECK(d.message.find("JVBER") == std::string::npos);
    // The end tag's line: the fixture has 'lines' lines before the attachment, which starts with
    // five lines of its own; the Base64Container's text takes two more.
    const std::string fixture =
        testing::read_file(testing::source_dir() / "tests/fixtures/messages/dialog-portal-to-oslo.xml");
    const int lines = static_cast<int>(std::count(fixture.begin(), fixture.end(), '\n')) - 1;  // up to </MsgHead>
    CHECK(d.line == lines + 6 + 2);

    std::string why;
    broker::xml::detail::base64_check c;
    const std::u16string odd = u"QUJD\nRA";
    c.feed(odd.data(), odd.size());
    CHECK_FALSE(c.valid(why));
    CHECK(why == "6 Base64 characters, not a multiple of four");
    c.reset();
    const std::u16string padded = u"QR==";
    c.feed(padded.data(), padded.size());
    CHECK_FALSE(c.valid(why));
    CHECK(why == "the character before the '=' padding leaves bits that are not zero");
}

TEST_CASE("base64: a large attachment validates, and a bad character deep in it is found", "[xml][base64]") {
    // 3 MB of Base64 in 76-character lines, as mail-style encoders write it.
    std::string text;
    const std::string line = "JVBERi0xLjQKJSBmaWN0aW9uYWwgc2Nhbm5lZCBsZXR0ZXIsIHBhZ2UgZmlsbGVyCiUgZmljdGlv\n";
    while (text.size() < 3'000'000)
        text += line;
    auto ok = ours().validate(with_attachment(text));
    CHECK(ok.v == verdict::valid);
    CHECK(ok.diagnostics.empty());
    text[text.size() / 2 - 1] = '*';
    auto bad = ours().validate(with_attachment(text));
    CHECK(bad.v == verdict::invalid);
    REQUIRE_FALSE(bad.diagnostics.empty());
    CHECK(bad.diagnostics[0].message.find("'*' (U+002A)") != std::string::npos);
}

TEST_CASE("base64: a schema folder that constrains Base64Container further keeps Xerces' check", "[xml][base64]") {
    // The same schemas from a folder, with Base64Container restricted to at most 3 bytes.
    testing::temp_dir dir;
    for (const auto& e : std::filesystem::directory_iterator(testing::source_dir() / "schemas"))
        if (e.path().extension() == ".xsd")
            std::filesystem::copy_file(e.path(), dir.path() / e.path().filename());
    {
        std::ofstream out(dir.path() / "kith-base64.xsd", std::ios::trunc);
        out << R"(<?xml version="1.0" encoding="UTF-8"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="http://www.kith.no/xmlstds/base64container"
           elementFormDefault="qualified">
  <xs:element name="Base64Container">
    <xs:simpleType><xs:restriction base="xs:base64Binary"><xs:maxLength value="3"/></xs:restriction></xs:simpleType>
  </xs:element>
</xs:schema>
)";
    }
    broker::xml::schema_source s;
    s.directory = dir.path().string();
    auto v = broker::xml::make_validator(s);
    REQUIRE(v);
    CHECK((*v)->validate(with_attachment("QUJD")).v == verdict::valid);       // 3 bytes
    auto r = (*v)->validate(with_attachment("QUJDRA=="));                      // 4 bytes
    CHECK(r.v == verdict::invalid);
    REQUIRE_FALSE(r.diagnostics.empty());
    CHECK(r.diagnostics[0].message.find("not valid base64Binary") == std::string::npos);  // Xerces' words
    CHECK((*v)->validate(with_attachment("QUJ-")).v == verdict::invalid);
}
