// Address registry: our registry file format, raw Adresseregister answers, lineage.
#include "routing_support.hpp"

using namespace broker;
using namespace broker::routing;
using routing_test::write;

namespace {

const store::party* by_her(const std::vector<store::party>& v, const std::string& her) {
    for (auto& p : v)
        if (p.her_id == her)
            return &p;
    return nullptr;
}

std::filesystem::path ar_sample(const std::string& name) {
    return testing::interop_dir() / "fiks-nhn-client/adresseregisteret-client/src/test/resources" / name;
}

std::string registry_doc(const std::string& body) {
    return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Registry xmlns=\"urn:edibroker:registry:1\">\n" + body +
           "</Registry>\n";
}

} // namespace

TEST_CASE("the demo registry loads and holds the demo parties", "[registry][demo]") {
    auto r = parse_registry_file((testing::source_dir() / "config/registry.xml").string());
    INFO((r ? std::string() : r.error().where()));
    REQUIRE(r.has_value());
    address_registry reg(*r);
    CHECK(reg.size() == r->size());

    const auto* portal = reg.find("8093244");
    REQUIRE(portal);
    CHECK(portal->type == "service");
    CHECK(portal->parent_her_id == "115851");
    CHECK(portal->adapter == "portal-inbox");
    CHECK(portal->can_receive());

    const auto* dir = reg.find("115851");
    REQUIRE(dir);
    CHECK(dir->type == "organisation");
    CHECK_FALSE(dir->can_receive());

    const auto* nurse = reg.find("9100111");
    REQUIRE(nurse);
    CHECK(nurse->type == "person");
    CHECK(nurse->name == "Kari Nordmann, sykepleier");  // DisplayName wins
    CHECK(nurse->municipality == "0301");
    auto line = reg.lineage("9100111");
    REQUIRE(line.size() == 3);
    CHECK(line[1]->her_id == "9100110");
    CHECK(line[2]->her_id == "9100100");

    const auto* bergen = reg.find("9100210");
    REQUIRE(bergen);
    CHECK(bergen->edi_address == "hjemmetjenesten.bergenhus@bergen.edi.example");
    CHECK(bergen->municipality == "4601");
    CHECK(bergen->adapter == "tieto-bergen");

    // Every adapter the registry names is declared by the demo rules.
    auto rules = load_rules((testing::source_dir() / "routing-rules").string());
    REQUIRE(rules.has_value());
    for (auto& p : *r)
        if (!p.adapter.empty())
            CHECK(rules->find_adapter(p.adapter));
}

TEST_CASE("all fields of our registry format are read", "[registry]") {
    auto r = parse_registry(registry_doc(R"(  <CommunicationParty>
    <Adapter>visma-oslo</Adapter>
    <Type>Service</Type>
    <HerId>9100110</HerId>
    <DisplayName>Hjemmetjenesten</DisplayName>
    <Name>HJEMMETJENESTEN</Name>
    <Active>false</Active>
    <ParentHerId>9100100</ParentHerId>
    <ParentName>Oslo kommune</ParentName>
    <ParentOrganizationNumber>999888777</ParentOrganizationNumber>
    <Municipality><CodeText>OSLO</CodeText><CodeValue>0301</CodeValue></Municipality>
    <ElectronicAddresses>
      <ElectronicAddress><Address>x@y.example</Address><TypeCodeValue>E_EPO</TypeCodeValue></ElectronicAddress>
      <ElectronicAddress><TypeCodeValue>E_EDI</TypeCodeValue><Address>edi@y.example</Address></ElectronicAddress>
    </ElectronicAddresses>
  </CommunicationParty>
  <CommunicationParty><HerId>9100100</HerId><Name>Oslo kommune</Name><Type>Organization</Type>
    <ParentHerId>-1</ParentHerId><OrganizationNumber>999888777</OrganizationNumber></CommunicationParty>
)"),
                            "inline.xml");
    INFO((r ? std::string() : r.error().where()));
    REQUIRE(r.has_value());
    REQUIRE(r->size() == 2);
    const auto& s = (*r)[0];
    CHECK(s.her_id == "9100110");
    CHECK(s.type == "service");
    CHECK(s.name == "Hjemmetjenesten");
    CHECK_FALSE(s.active);
    CHECK_FALSE(s.can_receive());
    CHECK(s.parent_her_id == "9100100");
    CHECK(s.org_number == "999888777");
    CHECK(s.municipality == "0301");
    CHECK(s.edi_address == "edi@y.example");
    CHECK(s.adapter == "visma-oslo");
    const auto& o = (*r)[1];
    CHECK(o.type == "organisation");
    CHECK(o.parent_her_id.empty());
    CHECK(o.active);
    CHECK(o.adapter.empty());
}

TEST_CASE("registry files: errors carry file:line:col", "[registry][errors]") {
    testing::temp_dir dir;

    SECTION("malformed xml") {
        auto p = write(dir.path(), "bad.xml",
                       registry_doc("  <CommunicationParty>\n    <HerId>1</HerId>\n  </CommunicationPart>\n"));
        auto r = parse_registry_file(p.string());
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().file == p.string());
        CHECK(r.error().line == 5);
        CHECK(r.error().column > 1);
        CHECK(r.error().message.rfind("malformed xml", 0) == 0);
        CHECK(r.error().where().rfind(p.string() + ":5:", 0) == 0);
    }
    SECTION("schema violation: unknown element") {
        auto p = write(dir.path(), "bad.xml", registry_doc(R"(  <CommunicationParty>
    <HerId>1</HerId>
    <Name>x</Name>
    <Colour>blue</Colour>
    <Type>Service</Type>
  </CommunicationParty>
)"));
        auto r = parse_registry_file(p.string());
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().line == 6);
        CHECK(r.error().column == 5);
        CHECK(r.error().message.find("schema violation") != std::string::npos);
        CHECK(r.error().message.find("Colour") != std::string::npos);
    }
    SECTION("schema violation: bad type value") {
        auto r = parse_registry(registry_doc("  <CommunicationParty><HerId>1</HerId><Name>x</Name>"
                                             "<Type>Kommune</Type></CommunicationParty>\n"),
                                "t.xml");
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().line == 3);
        CHECK(r.error().message.find("schema violation") != std::string::npos);
    }
    SECTION("duplicate HerId") {
        auto r = parse_registry(registry_doc("  <CommunicationParty><HerId>1</HerId><Name>x</Name><Type>Service</Type>"
                                             "</CommunicationParty>\n"
                                             "  <CommunicationParty><HerId>1</HerId><Name>y</Name><Type>Service</Type>"
                                             "</CommunicationParty>\n"),
                                "t.xml");
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().where() == "t.xml:4:3: duplicate HerId 1 (first at line 3)");
    }
    SECTION("unknown root") {
        auto r = parse_registry("<?xml version=\"1.0\"?>\n<parties/>\n", "t.xml");
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().line == 2);
        CHECK(r.error().column == 1);
        CHECK(r.error().message.find("unknown registry format") != std::string::npos);
    }
    SECTION("a DTD is refused") {
        auto r = parse_registry("<?xml version=\"1.0\"?>\n<!DOCTYPE Registry [<!ENTITY x \"y\">]>\n"
                                "<Registry xmlns=\"urn:edibroker:registry:1\"/>\n",
                                "t.xml");
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().line == 2);
        CHECK(r.error().message.find("DTD") != std::string::npos);
    }
    SECTION("unreadable file") {
        auto r = parse_registry_file((dir.path() / "missing.xml").string());
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == "registry.unreadable");
    }
}

TEST_CASE("xsi:schemaLocation in a registry file is never followed", "[registry]") {
    auto r = parse_registry(
        "<Registry xmlns=\"urn:edibroker:registry:1\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" "
        "xsi:schemaLocation=\"urn:edibroker:registry:1 http://127.0.0.1:9/registry.xsd\">"
        "<CommunicationParty><HerId>7</HerId><Name>x</Name><Type>Person</Type></CommunicationParty></Registry>",
        "t.xml");
    INFO((r ? std::string() : r.error().where()));
    REQUIRE(r.has_value());
    CHECK(r->at(0).type == "person");
}

TEST_CASE("Adresseregister answers from the interop samples parse", "[registry][interop]") {
    if (!testing::have_interop())
        return;

    SECTION("service") {
        auto r = parse_registry_file(ar_sample("get-communication-party-details-service-response.xml").string());
        INFO((r ? std::string() : r.error().where()));
        REQUIRE(r.has_value());
        REQUIRE(r->size() == 1);
        const auto& p = r->front();
        CHECK(p.her_id == "8094866");
        CHECK(p.type == "service");
        CHECK(p.name == "Meldingsvalidering");
        CHECK(p.parent_her_id == "112374");
        CHECK(p.org_number == "994598759");
        CHECK(p.municipality == "5001");
        CHECK(p.edi_address == "meldingsvalidator@samsvar.nhn.no");
        CHECK(p.active);
        CHECK(p.can_receive());
        CHECK(p.adapter.empty());
    }
    SECTION("person, with its organisation") {
        auto r = parse_registry_file(ar_sample("get-communication-party-details-person-response.xml").string());
        INFO((r ? std::string() : r.error().where()));
        REQUIRE(r.has_value());
        const auto& p = r->front();
        CHECK(p.her_id == "115522");
        CHECK(p.type == "person");
        CHECK(p.parent_her_id == "84556");
        CHECK(p.municipality == "4616");
        CHECK(p.edi_address == "tysnes-kommune@edi.nhn.no");
        CHECK(p.can_receive());
        const auto* org = by_her(*r, "84556");
        REQUIRE(org);
        CHECK(org->type == "organisation");
        CHECK(org->parent_her_id.empty());
        address_registry reg(*r);
        auto line = reg.lineage("115522");
        REQUIRE(line.size() == 2);
        CHECK(line[1]->her_id == "84556");
    }
    SECTION("organisation, with its services") {
        auto r = parse_registry_file(ar_sample("get-communication-party-details-organzation-response.xml").string());
        INFO((r ? std::string() : r.error().where()));
        REQUIRE(r.has_value());
        const auto& p = r->front();
        CHECK(p.her_id == "8142987");
        CHECK(p.type == "organisation");
        CHECK(p.parent_her_id.empty());
        CHECK(p.org_number == "931796003");
        CHECK_FALSE(p.can_receive());
        const auto* s1 = by_her(*r, "8143040");
        const auto* s2 = by_her(*r, "8143060");
        REQUIRE(s1);
        REQUIRE(s2);
        CHECK(s1->type == "service");
        CHECK(s1->parent_her_id == "8142987");
        CHECK(s2->name == "Saksbehandling pasientopplysninger");
        CHECK(r->size() == 3);
    }
    SECTION("with parent") {
        auto r = parse_registry_file(ar_sample("get-communication-party-details-with-parent-response.xml").string());
        REQUIRE(r.has_value());
        REQUIRE(r->size() == 1);
        const auto& p = r->front();
        CHECK(p.her_id == "55555");
        CHECK(p.type == "organisation");
        CHECK(p.parent_her_id == "987654");
        CHECK(p.municipality == "4601");
        CHECK(p.org_number == "888333444");
        CHECK(p.name == "Et legekontor");
        CHECK(p.edi_address.empty());  // only an e-mail address (E_EPO)
    }
    SECTION("no parent") {
        auto r = parse_registry_file(ar_sample("get-communication-party-details-no-parent-response.xml").string());
        REQUIRE(r.has_value());
        REQUIRE(r->size() == 1);
        const auto& p = r->front();
        CHECK(p.her_id == "12345");
        CHECK(p.type == "organisation");
        CHECK(p.parent_her_id.empty());
        CHECK(p.municipality == "4601");
        CHECK(p.org_number == "123456789");
    }
    SECTION("not found: a SOAP fault is an error") {
        auto path = ar_sample("get-communication-party-details-not-found-response.xml").string();
        auto r = parse_registry_file(path);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().file == path);
        CHECK(r.error().line == 3);
        CHECK(r.error().column == 9);
        CHECK(r.error().message.find("soap fault") != std::string::npos);
        CHECK(r.error().message.find("InvalidHerIdSupplied") != std::string::npos);
    }
    SECTION("a bare CommunicationParty (Helsenorge.Messaging sample)") {
        auto path = testing::interop_dir() /
                    "Helsenorge.Messaging/test/Helsenorge.Registries.Tests/Files/CommunicationDetails_93238.xml";
        auto r = parse_registry_file(path.string());
        INFO((r ? std::string() : r.error().where()));
        REQUIRE(r.has_value());
        const auto& p = r->front();
        CHECK(p.her_id == "93238");
        CHECK(p.type == "person");  // i:type OrganizationPerson, Type Person
        CHECK(p.parent_her_id == "93237");
        CHECK(p.municipality == "0301");  // AR wrote "301"
        CHECK(p.name == "Alexander Dahl");
        const auto* org = by_her(*r, "93237");
        REQUIRE(org);
        CHECK(org->type == "organisation");
    }
}

TEST_CASE("Adresseregister answers: errors carry file:line:col", "[registry][errors]") {
    const std::string head = "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\">\n<s:Body>\n"
                             "<GetCommunicationPartyDetailsResponse xmlns=\"http://register.nhn.no/CommunicationParty\">\n";
    const std::string tail = "</GetCommunicationPartyDetailsResponse>\n</s:Body>\n</s:Envelope>\n";
    SECTION("unknown type") {
        auto r = parse_registry(head + "  <GetCommunicationPartyDetailsResult>\n    <HerId>5</HerId>\n"
                                       "    <Type>Robot</Type>\n  </GetCommunicationPartyDetailsResult>\n" + tail,
                                "ar.xml");
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().where() == "ar.xml:4:3: communication party 5 has unknown type 'Robot'");
    }
    SECTION("the i:type attribute gives the type when there is no Type element") {
        auto r = parse_registry(head + "  <GetCommunicationPartyDetailsResult i:type=\"Service\" "
                                       "xmlns:i=\"http://www.w3.org/2001/XMLSchema-instance\">\n"
                                       "    <HerId>5</HerId><ParentHerId>-1</ParentHerId>\n"
                                       "  </GetCommunicationPartyDetailsResult>\n" + tail,
                                "ar.xml");
        REQUIRE(r.has_value());
        CHECK(r->at(0).type == "service");
    }
    SECTION("no party") {
        auto r = parse_registry(head + tail, "ar.xml");
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().line == 1);
        CHECK(r.error().message.find("no communication party") != std::string::npos);
    }
    SECTION("malformed") {
        auto r = parse_registry(head + "<GetCommunicationPartyDetailsResult>\n" + tail, "ar.xml");
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().line == 5);
        CHECK(r.error().message.rfind("malformed xml", 0) == 0);
    }
}

TEST_CASE("lineage is nearest first and stops at cycles and missing parents", "[registry]") {
    using routing_test::party;
    address_registry reg({party("1", "person", "2"), party("2", "service", "3"), party("3", "organisation", "1"),
                          party("10", "service", "11")});
    auto line = reg.lineage("1");
    REQUIRE(line.size() == 3);
    CHECK(line[0]->her_id == "1");
    CHECK(line[1]->her_id == "2");
    CHECK(line[2]->her_id == "3");
    auto orphan = reg.lineage("10");
    REQUIRE(orphan.size() == 1);
    CHECK(reg.lineage("404").empty());
    CHECK(reg.find("404") == nullptr);
}
