// route() and explain(): the routing decision for one message.
#include "routing_support.hpp"

using namespace broker;
using namespace broker::routing;
using routing_test::facts;
using routing_test::load;
using routing_test::party;
using routing_test::rules_doc;
using kind = decision::kind;

namespace {

// A small municipality: organisation 100 (0301) > home care 110 > nurse 111; health station 120;
// department 130 (cannot receive); inactive service 140; portal org 900 > portal service 910;
// a Bergen service 210 under org 200 (4601) with no adapter in the registry.
address_registry test_registry() {
    std::vector<store::party> v{
        party("100", "organisation", "", "0301"),
        party("110", "service", "100", "0301", "reg-oslo"),
        party("111", "person", "110", "0301", "reg-oslo"),
        party("120", "service", "100", "0301", "reg-oslo"),
        party("130", "department", "100", "0301"),
        party("140", "service", "100", "0301", "reg-oslo"),
        party("900", "organisation", "", "0301"),
        party("910", "service", "900", "0301", "portal"),
        party("200", "organisation", "", "4601"),
        party("210", "service", "200", "4601"),
        party("220", "service", "200", "4601", "undeclared"),
    };
    v[5].active = false;
    return address_registry(std::move(v));
}

const std::string adapters = "  <adapter name=\"a\" type=\"pull\"/>\n  <adapter name=\"b\" type=\"pull\"/>\n"
                             "  <adapter name=\"reg-oslo\" type=\"pull\"/>\n  <adapter name=\"portal\" type=\"pull\"/>\n";

rule_set rules_of(const std::string& body) {
    testing::temp_dir dir;
    auto r = load(dir, {{"r.xml", rules_doc(adapters + body)}});
    INFO((r ? std::string() : r.error().where()));
    REQUIRE(r.has_value());
    return std::move(*r);
}

std::string rule_xml(const std::string& id, int prio, const std::string& match, const std::string& deliver) {
    return "  <rule id=\"" + id + "\" priority=\"" + std::to_string(prio) + "\">" +
           (match.empty() ? "" : "<match " + match + "/>") + "<deliver " + deliver + "/></rule>\n";
}

} // namespace

TEST_CASE("route: exact receiver", "[route]") {
    auto reg = test_registry();
    auto rs = rules_of(rule_xml("to-110", 10, "receiver=\"110\"", "adapter=\"a\""));
    auto d = route(rs, reg, facts("900", "910", "100", "110"));
    CHECK(d.k == kind::routed);
    REQUIRE(d.matched);
    CHECK(d.matched->id == "to-110");
    CHECK(d.adapter == "a");
    CHECK(d.reason.find("to-110") != std::string::npos);

    // The lowest level routes: a message to the nurse (111) is not the service's (110).
    auto n = route(rs, reg, facts("900", "910", "100", "111"));
    CHECK(n.k == kind::unroutable);
}

TEST_CASE("route: receiver-or-ancestor through two levels", "[route]") {
    auto reg = test_registry();
    auto rs = rules_of(rule_xml("oslo", 10, "receiver-or-ancestor=\"100\"", "adapter=\"a\""));
    for (const char* her : {"110", "111", "120"}) {
        auto d = route(rs, reg, facts("900", "910", "100", her));
        INFO(her);
        CHECK(d.k == kind::routed);
        CHECK(d.adapter == "a");
    }
    auto self = rules_of(rule_xml("self", 10, "receiver-or-ancestor=\"111\"", "adapter=\"a\""));
    CHECK(route(self, reg, facts("900", "910", "100", "111")).k == kind::routed);
    CHECK(route(rs, reg, facts("900", "910", "200", "210")).k == kind::unroutable);
}

TEST_CASE("route: sender matches the lowest or the level-1 HER-id", "[route]") {
    auto reg = test_registry();
    auto by_service = rules_of(rule_xml("from-910", 10, "sender=\"910\"", "adapter=\"a\""));
    auto by_org = rules_of(rule_xml("from-900", 10, "sender=\"900\"", "adapter=\"a\""));
    CHECK(route(by_service, reg, facts("900", "910", "100", "110")).k == kind::routed);
    CHECK(route(by_org, reg, facts("900", "910", "100", "110")).k == kind::routed);
    CHECK(route(by_org, reg, facts("900", "", "100", "110")).k == kind::routed);
    auto d = route(by_service, reg, facts("800", "810", "100", "110"));
    CHECK(d.k == kind::unroutable);
}

TEST_CASE("route: message type, exact or prefix", "[route]") {
    auto reg = test_registry();
    auto rs = rules_of(rule_xml("apprec", 20, "type=\"APPREC\"", "adapter=\"b\"") +
                       rule_xml("dialog", 10, "type=\"DIALOG_*\"", "adapter=\"a\""));
    CHECK(route(rs, reg, facts("900", "910", "100", "110", "DIALOG_INNBYGGER_EKONTAKT")).adapter == "a");
    CHECK(route(rs, reg, facts("900", "910", "100", "110", "DIALOG_NOTAT")).adapter == "a");
    CHECK(route(rs, reg, facts("900", "910", "100", "110", "APPREC")).adapter == "b");
    CHECK(route(rs, reg, facts("900", "910", "100", "110", "APPRECX")).k == kind::unroutable);
    CHECK(route(rs, reg, facts("900", "910", "100", "110", "DIALOG")).k == kind::unroutable);
}

TEST_CASE("route: municipality is the receiver's, from the registry", "[route]") {
    auto reg = test_registry();
    auto rs = rules_of(rule_xml("bergen", 10, "municipality=\"4601\"", "adapter=\"b\"") +
                       rule_xml("oslo", 10, "municipality=\"0301\"", "adapter=\"a\""));
    CHECK(route(rs, reg, facts("100", "110", "200", "210")).adapter == "b");
    CHECK(route(rs, reg, facts("200", "210", "100", "110")).adapter == "a");
}

TEST_CASE("route: priority wins, ties go to the earlier declaration", "[route]") {
    auto reg = test_registry();
    testing::temp_dir dir;
    auto r = load(dir, {{"b.xml", rules_doc(rule_xml("b-tie", 10, "", "adapter=\"b\"") +
                                            rule_xml("b-high", 50, "receiver=\"120\"", "adapter=\"b\""))},
                        {"a.xml", rules_doc(adapters + rule_xml("a-tie", 10, "", "adapter=\"a\"") +
                                            rule_xml("a-tie-2", 10, "", "adapter=\"b\""))}});
    REQUIRE(r.has_value());
    auto tie = route(*r, reg, facts("900", "910", "100", "110"));
    REQUIRE(tie.matched);
    CHECK(tie.matched->id == "a-tie");
    auto high = route(*r, reg, facts("900", "910", "100", "120"));
    REQUIRE(high.matched);
    CHECK(high.matched->id == "b-high");
}

TEST_CASE("route: via registry uses the receiver's adapter", "[route]") {
    auto reg = test_registry();
    auto rs = rules_of(rule_xml("registry", 10, "", "via=\"registry\"") + rule_xml("last", 0, "", "adapter=\"b\""));
    auto d = route(rs, reg, facts("900", "910", "100", "111"));
    CHECK(d.k == kind::routed);
    CHECK(d.adapter == "reg-oslo");
    CHECK(d.matched->via_registry);

    // No adapter in the registry: the registry rule does not match; the next one does.
    auto none = route(rs, reg, facts("100", "110", "200", "210"));
    CHECK(none.k == kind::routed);
    CHECK(none.matched->id == "last");

    // Only the registry rule: unroutable, and the reason says why.
    auto only = rules_of(rule_xml("registry", 10, "", "via=\"registry\""));
    auto u = route(only, reg, facts("100", "110", "200", "210"));
    CHECK(u.k == kind::unroutable);
    CHECK(u.reason.find("names no adapter") != std::string::npos);
    auto undeclared = route(only, reg, facts("100", "110", "200", "220"));
    CHECK(undeclared.k == kind::unroutable);
    CHECK(undeclared.reason.find("'undeclared'") != std::string::npos);
}

TEST_CASE("route: a receiver not in the registry is E21 unknown_receiver", "[route]") {
    auto reg = test_registry();
    auto rs = rules_of(rule_xml("all", 0, "", "adapter=\"a\""));
    auto d = route(rs, reg, facts("900", "910", "100", "404"));
    CHECK(d.k == kind::unknown_receiver);
    CHECK(d.matched == nullptr);
    CHECK(d.reason == "receiver HER-id 404 is not in the address registry");
    CHECK(route(rs, reg, facts("900", "910", "", "")).k == kind::unknown_receiver);
}

TEST_CASE("route: organisation-only, department and inactive receivers are refused", "[route]") {
    auto reg = test_registry();
    auto rs = rules_of(rule_xml("all", 0, "", "adapter=\"a\""));
    auto org = route(rs, reg, facts("900", "910", "100", ""));  // lowest level is the organisation
    CHECK(org.k == kind::cannot_receive);
    CHECK(org.reason.find("100 is an organisation") != std::string::npos);
    CHECK(route(rs, reg, facts("900", "910", "100", "130")).k == kind::cannot_receive);
    auto inactive = route(rs, reg, facts("900", "910", "100", "140"));
    CHECK(inactive.k == kind::cannot_receive);
    CHECK(inactive.reason.find("inactive") != std::string::npos);
}

TEST_CASE("route: no matching rule leaves the message unroutable, with the reason", "[route]") {
    auto reg = test_registry();
    auto rs = rules_of(rule_xml("only-120", 10, "receiver=\"120\"", "adapter=\"a\""));
    auto d = route(rs, reg, facts("900", "910", "100", "110", "DIALOG_NOTAT"));
    CHECK(d.k == kind::unroutable);
    CHECK(d.matched == nullptr);
    CHECK(d.adapter.empty());
    CHECK(d.reason == "no routing rule matches receiver 110 (type DIALOG_NOTAT, sender 910); 1 rules checked");
}

TEST_CASE("explain gives a reason per rule", "[route][explain]") {
    auto reg = test_registry();
    auto rs = rules_of(rule_xml("to-456", 40, "receiver=\"456\"", "adapter=\"a\"") +
                       rule_xml("from-800", 30, "sender=\"800\" type=\"APPREC\"", "adapter=\"a\"") +
                       rule_xml("bergen", 25, "municipality=\"4601\"", "adapter=\"a\"") +
                       rule_xml("other-org", 22, "receiver-or-ancestor=\"200\"", "adapter=\"a\"") +
                       rule_xml("oslo", 20, "receiver-or-ancestor=\"100\"", "adapter=\"a\"") +
                       rule_xml("fallback", 0, "", "via=\"registry\""));
    auto e = explain(rs, reg, facts("900", "910", "100", "111", "DIALOG_NOTAT"));
    REQUIRE(e.size() == 6);
    CHECK(e[0].first->id == "to-456");
    CHECK(e[0].second == "receiver 111 is not 456");
    CHECK(e[1].second == "sender 910 (level 1: 900) is not 800; type DIALOG_NOTAT does not match APPREC");
    CHECK(e[2].second == "receiver 111 is in municipality 0301, not 4601");
    CHECK(e[3].second == "receiver 111 and its ancestors (111 > 110 > 100) do not include 200");
    CHECK(e[4].second == "matched, deliver to adapter 'a'");
    CHECK(e[5].second == "matched, deliver to adapter 'reg-oslo'; not used: rule 'oslo' comes first");

    // The chosen rule is the one route() takes.
    auto d = route(rs, reg, facts("900", "910", "100", "111", "DIALOG_NOTAT"));
    REQUIRE(d.matched);
    CHECK(d.matched->id == "oslo");

    auto unknown = explain(rs, reg, facts("900", "910", "100", "404"));
    CHECK(unknown[5].second == "receiver 404 is not in the registry, so it names no adapter");
    auto org = explain(rs, reg, facts("900", "910", "100", ""));
    CHECK(org[4].second.rfind("matched", 0) == 0);
    CHECK(org[4].second.find("not used: receiver 100 cannot receive") != std::string::npos);
}

TEST_CASE("the demo rules and registry route the demo traffic", "[route][demo]") {
    auto parties = parse_registry_file((testing::source_dir() / "config/registry.xml").string());
    REQUIRE(parties.has_value());
    address_registry reg(std::move(*parties));
    auto rs = load_rules((testing::source_dir() / "routing-rules").string());
    REQUIRE(rs.has_value());

    // Citizen on the portal (as in the interop samples: 8141333 under 115851 → Helsenorge.no).
    auto to_portal = route(*rs, reg, facts("115851", "8141333", "115851", "8093244"));
    CHECK(to_portal.adapter == "portal-inbox");
    // Portal → each municipality's home care, health station and the nurse.
    struct {
        const char* org;
        const char* her;
        const char* adapter;
        const char* apprec;
    } cases[] = {{"9100100", "9100110", "visma-oslo", "1.0"},     {"9100100", "9100111", "visma-oslo", "1.0"},
                 {"9100100", "9100120", "visma-oslo", "1.0"},     {"9100200", "9100210", "tieto-bergen", "1.1"},
                 {"9100200", "9100220", "tieto-bergen", "1.1"},   {"9100300", "9100310", "dips-trondheim", "1.1"},
                 {"9100300", "9100320", "dips-trondheim", "1.1"}};
    for (auto& c : cases) {
        auto d = route(*rs, reg, facts("115851", "8093244", c.org, c.her));
        INFO(c.her);
        CHECK(d.k == kind::routed);
        CHECK(d.adapter == c.adapter);
        REQUIRE(d.matched);
        CHECK(d.matched->options.at("apprec-version") == c.apprec);
    }
    CHECK(route(*rs, reg, facts("115851", "8093244", "9100100", "")).k == kind::cannot_receive);
    CHECK(route(*rs, reg, facts("115851", "8093244", "9100100", "9199999")).k == kind::unknown_receiver);
}
