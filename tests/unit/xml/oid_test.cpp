// The validator accepts a plain OID (digit groups and dots) in CV/@S and Document/OidRef itself
// instead of running Xerces' regular-expression engine on it; every other value still goes to
// that engine. The verdicts and diagnostics must be Xerces' own, for each of the three OID types
// (MsgHead's, kith-datatypes' inside Dialogmelding, AppRec 1.0's).
#include "xml_test_util.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>

using broker::xml::verdict;

namespace {

std::string fixture() {
    return testing::read_file(testing::source_dir() / "tests/fixtures/messages/dialog-portal-to-oslo.xml");
}

std::string replaced(std::string doc, const std::string& what, const std::string& with) {
    const auto at = doc.find(what);
    REQUIRE(at != std::string::npos);
    return doc.replace(at, what.size(), with);
}

/// Where an OID value goes: the sender's TypeId/@S (mh:oid), the Dialogmelding's TypeForesp/@S
/// (kith:oid), Document/OidRef (mh:oid, element content), an AppRec 1.0's Error/@S (ar:oid).
enum class place { msghead_attribute, dialog_attribute, msghead_element, apprec_attribute };

std::string document(place p, const std::string& value) {
    switch (p) {
    case place::msghead_attribute:
        return replaced(fixture(), "S=\"2.16.578.1.12.4.1.1.9051\"", "S=\"" + value + "\"");
    case place::dialog_attribute:
        return replaced(fixture(), "S=\"2.16.578.1.12.4.1.1.7601\"", "S=\"" + value + "\"");
    case place::msghead_element:
        return replaced(fixture(), "<RefDoc>", "<OidRef>" + value + "</OidRef>\n    <RefDoc>");
    case place::apprec_attribute:
        return R"(<AppRec xmlns="http://www.kith.no/xmlstds/apprec/2004-11-21"><MsgType V="APPREC"/>)"
               R"(<MIGversion>1.0 2004-11-21</MIGversion><GenDate>2024-01-01T00:00:00</GenDate><Id>p</Id>)"
               R"(<Sender><HCP><Inst><Id>1</Id></Inst></HCP></Sender><Receiver><HCP><Inst><Id>2</Id></Inst></HCP>)"
               R"(</Receiver><Status V="2"/><Error V="T02" S=")" +
               value +
               R"("/><OriginalMsgId><MsgType V="T"/><IssueDate>2024-01-01T00:00:00</IssueDate><Id>q</Id>)"
               R"(</OriginalMsgId></AppRec>)";
    }
    return {};
}

broker::xml::validator& by_xerces() {
    return xmltest::with_xerces_check<&broker::xml::schema_source::oid_by_xerces>();
}

broker::xml::validator& ours() { return xmltest::v(); }

/// Both validators on one value in one place: same verdict, same diagnostics (text and position).
/// Returns whether it was valid.
bool same_verdict(place p, const std::string& value) {
    const std::string doc = document(p, value);
    auto x = by_xerces().validate(doc);
    auto o = ours().validate(doc);
    INFO("place " << static_cast<int>(p) << ", value [" << value << "]\n  Xerces: " << broker::xml::apprec_code(x.v)
                  << (x.diagnostics.empty() ? std::string() : " " + x.diagnostics[0].message)
                  << "\n  ours: " << broker::xml::apprec_code(o.v)
                  << (o.diagnostics.empty() ? std::string() : " " + o.diagnostics[0].message));
    xmltest::require_same_diagnostics(x, o);
    return o.v == verdict::valid;
}

constexpr place places[] = {place::msghead_attribute, place::dialog_attribute, place::msghead_element,
                            place::apprec_attribute};

} // namespace

TEST_CASE("oid: the validator's plain-OID check gives Xerces' verdict on chosen values", "[xml][oid]") {
    const char* values[] = {
        // valid: plain, and what xs:token's white-space collapse turns into a plain OID
        "2.16.578.1.12.4.1.1.9051", "0", "1.2", "00.000", "12345678901234567890.1", " 2.16.578 ", "\t1.2\n",
        // invalid
        "", " ", ".", "1.", ".1", "1..2", "1 .2", "1. 2", "1 2", "a", "1.a", "1,2", "-1", "+1", "1.2.",
        "2.16.578.1.12.4.1.1.9051x", "1e3",
        // digits outside ASCII, which \d may match: the regular-expression engine decides
        "\xef\xbc\x91.\xef\xbc\x92" /* fullwidth 1.2 */, "\xd9\xa3.\xd9\xa4" /* Arabic-Indic 3.4 */, "\xe0\xa5\xa7" /* Devanagari 1 */, "1.\xf0\x9d\x9f\x8e",
        // character references are the same characters to the validator
        "&#49;.&#50;", "1&#46;2", "1&#x20;.2", "&#x661;",
    };
    for (place p : places)
        for (const char* v : values)
            same_verdict(p, v);
}

TEST_CASE("oid: the validator's plain-OID check gives Xerces' verdict on random values", "[xml][oid]") {
    const std::string pieces[] = {"1", "0", "9", "23", ".", ".", " ", "a", "-", "\xd9\xa3", "\t"};
    std::mt19937 rng(20261207);
    std::uniform_int_distribution<int> len(0, 9), pick(0, static_cast<int>(std::size(pieces)) - 1);
    int valid = 0, total = 0;
    for (int i = 0; i < 400; ++i) {
        std::string value;
        for (int n = len(rng); n > 0; --n)
            value += pieces[pick(rng)];
        for (place p : places) {
            valid += same_verdict(p, value);
            ++total;
        }
    }
    // The draw covers both outcomes.
    CHECK(valid > 100);
    CHECK(valid < total - 100);
}

TEST_CASE("oid: a bad OID is reported with Xerces' words at the element", "[xml][oid]") {
    auto r = ours().validate(document(place::msghead_attribute, "2.16.578..1"));
    REQUIRE(r.v == verdict::invalid);
    REQUIRE_FALSE(r.diagnostics.empty());
    CHECK(r.diagnostics[0].message.find("regular expression") != std::string::npos);
    CHECK(r.diagnostics[0].line == 16);  // the sender's TypeId in the fixture
}

TEST_CASE("oid: a schema folder whose OID type has another facet keeps Xerces' check", "[xml][oid]") {
    // The same schemas from a folder, with MsgHead's oid type limited to 24 characters (the
    // fixture's other OIDs have 24).
    testing::temp_dir dir;
    for (const auto& e : std::filesystem::directory_iterator(testing::source_dir() / "schemas"))
        if (e.path().extension() == ".xsd")
            std::filesystem::copy_file(e.path(), dir.path() / e.path().filename());
    const auto msghead = dir.path() / "MsgHead-v1_2.xsd";
    std::string xsd = testing::read_file(msghead);
    xsd = replaced(xsd, R"(<xs:pattern value="\d+(\.\d+)*"/>)",
                   R"(<xs:pattern value="\d+(\.\d+)*"/><xs:maxLength value="24"/>)");
    std::ofstream(msghead, std::ios::trunc) << xsd;
    broker::xml::schema_source s;
    s.directory = dir.path().string();
    auto v = broker::xml::make_validator(s);
    REQUIRE(v);
    CHECK((*v)->validate(document(place::msghead_attribute, "2.16.578.1")).v == verdict::valid);
    CHECK((*v)->validate(document(place::msghead_attribute, "2.16.578.1.12.4.1.1.9051.1")).v == verdict::invalid);
    CHECK((*v)->validate(document(place::msghead_attribute, "2..16")).v == verdict::invalid);
    // kith-datatypes' oid type is unchanged there and takes a longer value.
    CHECK((*v)->validate(document(place::dialog_attribute, "2.16.578.1.12.4.1.1.7601.1")).v == verdict::valid);
}
