// Fact extraction on real samples and on hand-written edge cases.
#include "xml_test_util.hpp"

#include <catch2/catch.hpp>

using broker::xml::verdict;

#define NEED_INTEROP()                                                                                                 \
    if (!testing::have_interop()) {                                                                                    \
        WARN("shared/interop is absent; skipped");                                                                     \
        return;                                                                                                        \
    }

TEST_CASE("facts of the helsenorge eKontakt sample", "[xml][facts]") {
    NEED_INTEROP();
    auto r = xmltest::v().validate(xmltest::sample("Helsenorge.Messaging/Examples/SimpleSender/DIALOG_INNBYGGER_EKONTAKT.xml"));
    REQUIRE(r.v == verdict::valid);
    const auto& f = r.facts;
    CHECK(f.kind == broker::doc_kind::msghead);
    CHECK(!f.is_apprec());
    CHECK(f.root_ns == broker::ns::msghead);
    CHECK(f.msg_id == "0d77d041-f010-4ec8-9105-f3dda92fc320");
    CHECK(f.msg_type == "DIALOG_INNBYGGER_EKONTAKT");
    CHECK(f.msg_type_dn == "Dialog med innbygger - eKontakt");
    CHECK(f.mig_version == "v1.2 2006-05-24");
    CHECK(f.gen_date == "2022-10-22T14:15:00.0Z");
    CHECK(f.ack_requested);
    CHECK(f.sender.lvl1_her == "115851");
    CHECK(f.sender.lvl1_name == "Direktoratet for e-helse");
    CHECK(f.sender.lvl2_her == "8141333");
    CHECK(f.sender.lvl2_name == "Kenneths kommunikasjonspart 4");
    CHECK(!f.sender.lvl2_is_person);
    CHECK(f.sender.lowest_her() == "8141333");
    CHECK(f.receiver.lvl1_her == "115851");
    CHECK(f.receiver.lvl2_her == "8093244");
    CHECK(f.receiver.lvl2_name == "Helsenorge.no");
    CHECK(f.patient_id == "13116900216");
    CHECK(f.patient_id_type == "FNR");
    CHECK(f.ref_to_parent.empty());
    CHECK(f.ref_to_conversation.empty());
    CHECK(f.document_count == 1);
    CHECK(f.content_ns == broker::ns::dialog_1_1);
    CHECK(f.dialog_version() == "1.1");
    CHECK(!f.from_fellesformat);
    CHECK(r.sender_known());
}

TEST_CASE("facts: person at level 2, ENH orgnr, no HER at level 1", "[xml][facts]") {
    NEED_INTEROP();
    auto r = xmltest::v().validate(xmltest::sample("Helsenorge.Messaging/test/Helsenorge.Messaging.Tests/Files/Helsenorge_Message.xml"));
    REQUIRE(r.v == verdict::valid);
    const auto& f = r.facts;
    CHECK(f.sender.lvl1_her.empty());
    CHECK(f.sender.lvl1_orgnr == "983544622");
    CHECK(f.sender.lvl2_her == "109989");
    CHECK(f.receiver.lvl1_her == "109989");
    CHECK(f.receiver.lvl1_orgnr == "971318864");
    CHECK(f.receiver.lvl2_her == "91095");
    CHECK(f.receiver.lvl2_name == "August September");
    CHECK(f.receiver.lvl2_is_person);
}

TEST_CASE("facts: ConversationRef and attachments (MetadataTestsDialogmelding11)", "[xml][facts]") {
    NEED_INTEROP();
    auto r = xmltest::v().validate(
        xmltest::sample("Helsenorge.Messaging/test/Helsenorge.Messaging.Tests/Files/MetadataTestsDialogmelding11.xml"));
    // Invalid by the official schemas too (a typo'd xsi namespace on a Base64Container) ...
    CHECK(r.v == verdict::invalid);
    // ... but the facts are all there.
    const auto& f = r.facts;
    CHECK(f.msg_id == "de1a95c0-4d0c-11e7-9598-0800200c9a66");
    CHECK(f.msg_type == "DIALOG_HELSEFAGLIG");
    CHECK(f.ref_to_parent == "d14ea2f3-d796-4d7b-8271-a4480d2b4035");
    CHECK(f.ref_to_conversation == "a14ea2f3-d796-4d7b-8271-a4480d2b4037");
    CHECK(f.document_count == 4);  // the Dialogmelding + 3 attachments
    CHECK(f.content_ns == broker::ns::dialog_1_1);
    CHECK(f.sender.lvl1_her == "56704");
    CHECK(f.sender.lvl2_her == "258521");  // HealthcareProfessional
    CHECK(f.sender.lvl2_name == "Rita Lin");
    CHECK(f.sender.lvl2_is_person);
    CHECK(f.receiver.lvl1_her == "59");
    CHECK(f.receiver.lvl2_her == "90998");
    CHECK(f.receiver.lvl2_name == "Ortopedisk kirurgi");
    CHECK(!f.receiver.lvl2_is_person);
    CHECK(r.sender_known());
}

TEST_CASE("facts of an AppRec 1.0 with errors (status 3, delmelding)", "[xml][facts]") {
    NEED_INTEROP();
    auto r = xmltest::v().validate(
        xmltest::sample("fiks-nhn-client/msh-client/src/test/resources/app-rec/1.0/example-ok-feil-i-delmelding.xml"));
    REQUIRE(r.v == verdict::valid);
    const auto& f = r.facts;
    CHECK(f.is_apprec());
    CHECK(f.apprec_version() == "1.0");
    CHECK(f.msg_type == "APPREC");
    CHECK(f.mig_version == "1.0 2004-11-21");
    CHECK(f.msg_id == "97499dc0-33a8-11de-a044-0002a5d5c51b");
    CHECK(f.gen_date == "2009-03-19T09:30:47");
    CHECK(f.apprec_status == "3");
    REQUIRE(f.apprec_errors.size() == 2);
    CHECK(f.apprec_errors[0].code == "07");
    CHECK(f.apprec_errors[0].description == "Feilbruk av kveldstakst");
    CHECK(f.apprec_errors[0].code_system == "2.16.578.1.12.4.1.1.8223");
    CHECK(f.apprec_errors[0].origin == "93495");
    CHECK(f.apprec_errors[1].code == "16");
    CHECK(f.apprec_errors[1].origin == "93498");
    CHECK(f.original_msg_type == "LOM");
    CHECK(f.original_issue_date == "2009-03-17T09:32:15");
    CHECK(f.original_msg_id == "37de51e0-33a9-11de-a4cb-0002a5d5c51b");
    // Identified by organisation number only: no HER-id.
    CHECK(f.sender.lvl1_orgnr == "974760924");
    CHECK(f.sender.lvl1_her.empty());
    CHECK(f.sender.lvl1_name == "NAV");
    CHECK(f.receiver.lvl1_orgnr == "974793539");
    CHECK(f.receiver.lvl2_her.empty());  // HCPerson with an HPR number, not a HER-id
    CHECK(f.receiver.lvl2_name == "Rita Lin");
    CHECK(f.receiver.lvl2_is_person);
    CHECK(!r.sender_known());
}

TEST_CASE("facts of an AppRec 1.1 (rejected, E21)", "[xml][facts]") {
    NEED_INTEROP();
    auto r = xmltest::v().validate(xmltest::sample("fiks-nhn-client/msh-client/src/test/resources/app-rec/1.1/example-avvist.xml"));
    REQUIRE(r.v == verdict::valid);
    const auto& f = r.facts;
    CHECK(f.apprec_version() == "1.1");
    CHECK(f.root_ns == broker::ns::apprec_1_1);
    CHECK(f.mig_version == "v1.1 2012-02-15");
    CHECK(f.msg_id == "8d018d60-336b-11de-8bd7-0002a5d5c51b");
    CHECK(f.apprec_status == "2");
    REQUIRE(f.apprec_errors.size() == 1);
    CHECK(f.apprec_errors[0].code == "E21");
    CHECK(f.apprec_errors[0].description == "Mottaker finnes ikke");
    CHECK(f.apprec_errors[0].code_system == broker::oid::apprec_error);
    CHECK(f.original_msg_type == "EPIKRISE");
    CHECK(f.original_issue_date == "2012-02-17T08:32:15");
    CHECK(f.original_msg_id == "e0e21a90-5ec8-11e1-b86c-0800200c9a66");
    CHECK(f.sender.lvl1_her == "56704");
    CHECK(f.sender.lvl2_her == "258521");
    CHECK(f.sender.lvl2_is_person);  // HCPerson
    CHECK(f.receiver.lvl1_her == "69");
    CHECK(f.receiver.lvl2_her == "89583");
    CHECK(f.receiver.lvl2_name == "Kirurgi");
    CHECK(!f.receiver.lvl2_is_person);  // Dept
    CHECK(r.sender_known());
}

TEST_CASE("facts of the Helsenorge AppRec 1.0 / 1.1 metadata samples", "[xml][facts]") {
    NEED_INTEROP();
    auto r10 = xmltest::v().validate(xmltest::sample("Helsenorge.Messaging/test/Helsenorge.Messaging.Tests/Files/MetadataTests_Apprec10.xml"));
    REQUIRE(r10.v == verdict::valid);
    CHECK(r10.facts.sender.lvl1_her == "59");
    CHECK(r10.facts.sender.lvl2_her == "90998");
    CHECK(r10.facts.receiver.lvl2_her == "258521");
    CHECK(r10.facts.apprec_status == "1");
    CHECK(r10.facts.original_msg_id == "de1a95c0-4d0c-11e7-9598-0800200c9a66");
    auto r11 = xmltest::v().validate(xmltest::sample("Helsenorge.Messaging/test/Helsenorge.Messaging.Tests/Files/MetadataTests_Apprec11.xml"));
    REQUIRE(r11.v == verdict::valid);
    CHECK(r11.facts.msg_id == "C829A5F9-5BBF-4376-A37F-ADE4B399916C");
    CHECK(r11.facts.sender.lvl1_her == "56704");
    CHECK(r11.facts.sender.lvl2_her == "258521");
    CHECK(r11.facts.sender.lvl2_is_person);
    CHECK(r11.facts.receiver.lvl2_her == "90998");
    CHECK(r11.facts.apprec_errors.empty());
}

TEST_CASE("facts of a NAV padm2 message in EI_fellesformat", "[xml][facts][fellesformat]") {
    NEED_INTEROP();
    auto r = xmltest::v().validate(xmltest::sample("padm2/src/test/resources/dialogmelding_dialog_svar_foresporsel_om_pasient.xml"));
    REQUIRE(r.v == verdict::valid);
    const auto& f = r.facts;
    CHECK(f.from_fellesformat);
    CHECK(f.root_ns == broker::ns::msghead);
    CHECK(f.msg_id == "b62016eb-6c2d-417a-8ecc-157b3c5ee2ca");
    CHECK(f.msg_type == "DIALOG_SVAR");
    CHECK(f.sender.lvl1_her == "0123");
    CHECK(f.sender.lvl1_orgnr == "223456789");
    CHECK(f.sender.lvl2_her == "1234");
    CHECK(f.sender.lvl2_is_person);
    CHECK(f.receiver.lvl1_her == "79768");
    CHECK(f.receiver.lvl1_orgnr == "889640782");
    CHECK(f.receiver.lvl2_name == "NAV Drammen");
    CHECK(f.content_ns == broker::ns::dialog_1_0);
    CHECK(f.dialog_version() == "1.0");
}

TEST_CASE("facts are filled as far as an invalid fellesformat got, line numbers are the file's", "[xml][facts][fellesformat]") {
    NEED_INTEROP();
    const std::string doc = xmltest::sample("padm2/src/test/resources/dialogmelding_dialog_notat.xml");
    auto r = xmltest::v().validate(doc);
    REQUIRE(r.v == verdict::invalid);
    CHECK(r.facts.from_fellesformat);
    CHECK(r.facts.msg_id == "37340D30-FE14-42B5-985F-A8FF8FFA0CB5");
    CHECK(r.facts.ref_to_parent == "37340D30-FE14-42B5-985F-A8FF8FFA0CB5");
    CHECK(r.facts.ref_to_conversation == "37340D30-FE14-42B5-985F-A8FF8FFA0C99");
    CHECK(r.facts.patient_id == "01010142365");
    CHECK(r.facts.patient_id_type == "FNR");
    CHECK(r.sender_known());
    REQUIRE(!r.diagnostics.empty());
    // The ConversationRef (RefToConversation before RefToParent) ends on line 13 of the file.
    CHECK(r.diagnostics[0].line == 13);
    CHECK(r.diagnostics[0].message.find("RefToConversation") != std::string::npos);
}

TEST_CASE("level 2: the first unit with a HER-id wins; names of a person are joined", "[xml][facts]") {
    const std::string doc =
        "<MsgHead xmlns=\"http://www.kith.no/xmlstds/msghead/2006-05-24\"><MsgInfo><Type V=\"T\"/>"
        "<MIGversion>v1.2 2006-05-24</MIGversion><GenDate>2024-01-01T00:00:00</GenDate><MsgId> id-1 </MsgId>"
        "<Sender><Organisation><OrganisationName>Org</OrganisationName>"
        "<Ident><Id>1</Id><TypeId V=\"LIN\"/></Ident><Ident><Id>10</Id><TypeId V=\"HER\"/></Ident>"
        "<Ident><Id>20</Id><TypeId V=\"HER\"/></Ident>"
        "<Organisation><OrganisationName>No HER here</OrganisationName><Ident><Id>5</Id><TypeId V=\"LIN\"/></Ident>"
        "</Organisation>"
        "<HealthcareProfessional><FamilyName>Lege</FamilyName><MiddleName>M</MiddleName><GivenName>Kari</GivenName>"
        "<Ident><Id>999</Id><TypeId V=\"HPR\"/></Ident><Ident><Id>30</Id><TypeId V=\"HER\"/></Ident>"
        "</HealthcareProfessional></Organisation></Sender>"
        "<Receiver><Organisation><OrganisationName>R</OrganisationName><Ident><Id>40</Id><TypeId V=\"HER\"/></Ident>"
        "</Organisation></Receiver>"
        "<Patient><Ident><Id>p1</Id><TypeId V=\"DNR\"/></Ident><Ident><Id>p2</Id><TypeId V=\"FNR\"/></Ident></Patient>"
        "</MsgInfo><Document><RefDoc><MsgType V=\"A\"/><FileReference>https://example.org/f</FileReference></RefDoc>"
        "</Document></MsgHead>";
    auto r = xmltest::v().validate(doc);
    CHECK(r.v == verdict::valid);
    const auto& f = r.facts;
    CHECK(f.msg_id == "id-1");  // trimmed
    CHECK(f.sender.lvl1_her == "10");
    CHECK(f.sender.lvl2_her == "30");
    CHECK(f.sender.lvl2_name == "Kari M Lege");
    CHECK(f.sender.lvl2_is_person);
    CHECK(f.receiver.lvl1_her == "40");
    CHECK(f.receiver.lvl2_her.empty());
    CHECK(f.receiver.lowest_her() == "40");
    CHECK(f.patient_id == "p1");
    CHECK(f.patient_id_type == "DNR");
    CHECK(f.content_ns.empty());
    CHECK(f.document_count == 1);
    CHECK(!f.ack_requested);
}

TEST_CASE("AppRec: HER-ids from AdditionalId and non-ASCII names", "[xml][facts]") {
    const std::string doc =
        "<AppRec xmlns=\"http://www.kith.no/xmlstds/apprec/2012-02-15\"><MsgType V=\"APPREC\"/>"
        "<MIGversion>v1.1 2012-02-15</MIGversion><GenDate>2024-01-01T00:00:00</GenDate><Id>a-1</Id>"
        "<Sender><HCP><Inst><Name>Ålesund kommune</Name><Id>964979812</Id><TypeId V=\"ENH\"/>"
        "<Dept><Name>Hjemmetjenesten</Name><AdditionalId><Id>77</Id><Type V=\"HER\"/></AdditionalId></Dept>"
        "<AdditionalId><Id>66</Id><Type V=\"HER\"/></AdditionalId></Inst></HCP></Sender>"
        "<Receiver><HCP><HCProf><Name>Dr Ø</Name><Id>88</Id><TypeId V=\"HER\"/></HCProf></HCP></Receiver>"
        "<Status V=\"1\"/><OriginalMsgId><MsgType V=\"DIALOG_INNBYGGER_EKONTAKT\"/>"
        "<IssueDate>2024-01-01T00:00:00</IssueDate><Id>o-1</Id></OriginalMsgId></AppRec>";
    auto r = xmltest::v().validate(doc);
    CHECK(r.v == verdict::valid);
    const auto& f = r.facts;
    CHECK(f.sender.lvl1_name == "Ålesund kommune");
    CHECK(f.sender.lvl1_orgnr == "964979812");
    CHECK(f.sender.lvl1_her == "66");
    CHECK(f.sender.lvl2_her == "77");
    CHECK(f.sender.lvl2_name == "Hjemmetjenesten");
    CHECK(f.receiver.lvl1_her == "88");
    CHECK(f.receiver.lvl1_name == "Dr Ø");
    CHECK(f.original_msg_id == "o-1");
    CHECK(f.original_msg_type == "DIALOG_INNBYGGER_EKONTAKT");
}

TEST_CASE("a nested MsgHead inside Content does not overwrite the facts", "[xml][facts]") {
    NEED_INTEROP();
    auto r = xmltest::v().validate(xmltest::sample("padm2/src/test/resources/dialogmelding_dialog_notat_pridok_bug.xml"));
    CHECK(r.v == verdict::invalid);
    CHECK(r.facts.msg_id == "37340D30-FE14-42B5-985F-A8FF8FFA0CB5");
    CHECK(r.facts.document_count == 2);
    CHECK(r.facts.content_ns == broker::ns::msghead);
    CHECK(r.facts.patient_id.empty());  // only the inner message has a Patient
}
