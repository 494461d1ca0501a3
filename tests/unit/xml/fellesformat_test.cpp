// unwrap_fellesformat: NAV's envelope around a MsgHead.
#include "xml_test_util.hpp"

#include <catch2/catch.hpp>

#include <algorithm>

using broker::xml::unwrap_fellesformat;
using broker::xml::verdict;

namespace {
int line_of(const std::string& s, const std::string& needle) {
    auto p = s.find(needle);
    REQUIRE(p != std::string::npos);
    return 1 + static_cast<int>(std::count(s.begin(), s.begin() + static_cast<std::ptrdiff_t>(p), '\n'));
}
} // namespace

TEST_CASE("unwrap_fellesformat returns empty for anything else", "[xml][fellesformat]") {
    CHECK(unwrap_fellesformat("").empty());
    CHECK(unwrap_fellesformat("<MsgHead xmlns=\"http://www.kith.no/xmlstds/msghead/2006-05-24\"/>").empty());
    CHECK(unwrap_fellesformat("<EI_fellesformat xmlns=\"urn:other\"><MsgHead/></EI_fellesformat>").empty());
    CHECK(unwrap_fellesformat("<EI_fellesformat xmlns=\"http://www.nav.no/xml/eiff/2/\"><Foo/></EI_fellesformat>").empty());
    CHECK(unwrap_fellesformat("not xml").empty());
}

TEST_CASE("unwrap_fellesformat carries namespace declarations and keeps lines", "[xml][fellesformat]") {
    const std::string doc =
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n"
        "<!-- envelope -->\n"
        "<ff:EI_fellesformat xmlns:ff=\"http://www.nav.no/xml/eiff/2/\"\n"
        "    xmlns:mh=\"http://www.kith.no/xmlstds/msghead/2006-05-24\" xmlns:xsi='http://www.w3.org/2001/XMLSchema-instance'>\n"
        "  <ff:Other a=\"x>y\"><![CDATA[<MsgHead>]]><mh:MsgHead/></ff:Other>\n"
        "  <mh:MsgHead xsi:foo=\"1\"><mh:MsgInfo>\n"
        "  <mh:MsgId>42</mh:MsgId></mh:MsgInfo></mh:MsgHead>\n"
        "  <ff:MottakenhetBlokk/>\n"
        "</ff:EI_fellesformat>\n";
    const std::string inner = unwrap_fellesformat(doc);
    REQUIRE(!inner.empty());
    CHECK(inner.rfind("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>", 0) == 0);
    CHECK(inner.find("EI_fellesformat") == std::string::npos);
    CHECK(inner.find("MottakenhetBlokk") == std::string::npos);
    CHECK(inner.find("xmlns:mh=\"http://www.kith.no/xmlstds/msghead/2006-05-24\"") != std::string::npos);
    CHECK(inner.find("xmlns:xsi='http://www.w3.org/2001/XMLSchema-instance'") != std::string::npos);
    CHECK(line_of(inner, "<mh:MsgId>") == line_of(doc, "<mh:MsgId>"));
    CHECK(line_of(inner, "<mh:MsgHead xsi") == line_of(doc, "<mh:MsgHead xsi"));
    // Columns before the injected declarations are kept too.
    CHECK(inner.find("  <mh:MsgHead xsi:foo") != std::string::npos);
    auto r = xmltest::v().parse_only(inner);
    CHECK(r.v == verdict::valid);
    CHECK(r.facts.msg_id == "42");
    auto whole = xmltest::v().parse_only(doc);
    CHECK(whole.v == verdict::valid);
    CHECK(whole.facts.msg_id == "42");
    CHECK(whole.facts.from_fellesformat);
}

TEST_CASE("a broken envelope is T01, an envelope without MsgHead is T10", "[xml][fellesformat]") {
    auto& v = xmltest::v();
    auto r = v.validate("<EI_fellesformat xmlns=\"http://www.nav.no/xml/eiff/2/\">"
                        "<MsgHead xmlns=\"http://www.kith.no/xmlstds/msghead/2006-05-24\"/><Broken></EI_fellesformat>");
    CHECK(r.v == verdict::not_well_formed);
    CHECK(r.facts.from_fellesformat);
    r = v.validate("<EI_fellesformat xmlns=\"http://www.nav.no/xml/eiff/2/\"><Foo/></EI_fellesformat>");
    CHECK(r.v == verdict::unsupported);
}

TEST_CASE("unwrapping the padm2 samples agrees with validating them directly", "[xml][fellesformat]") {
    if (!testing::have_interop()) {
        WARN("shared/interop is absent; skipped");
        return;
    }
    for (const auto& rel : xmltest::message_samples()) {
        if (rel.rfind("padm2/", 0) != 0)
            continue;
        const std::string doc = xmltest::sample(rel);
        const std::string inner = unwrap_fellesformat(doc);
        INFO(rel);
        REQUIRE(!inner.empty());
        auto direct = xmltest::v().validate(doc);
        auto unwrapped = xmltest::v().validate(inner);
        CHECK(direct.v == unwrapped.v);
        CHECK(direct.facts.msg_id == unwrapped.facts.msg_id);
        CHECK(direct.facts.from_fellesformat);
        CHECK(!unwrapped.facts.from_fellesformat);
        CHECK(line_of(inner, "<MsgId>") == line_of(doc, "<MsgId>"));
        CHECK(testing::official_verdict(inner).valid == (direct.v == verdict::valid));
    }
}
