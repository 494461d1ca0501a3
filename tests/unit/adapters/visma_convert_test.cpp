// Version conversion for Visma (broker/convert.hpp): Dialogmelding 1.1 → 1.0 where it maps without
// loss, its refusals (T10, naming the element), AppRec 1.1 ↔ 1.0. Every result is checked with the
// broker's own validator (and the converter itself validates before it returns).
#include "broker/convert.hpp"
#include "broker/message.hpp"
#include "broker/xml.hpp"

#include "test_paths.hpp"

#include <catch2/catch.hpp>

using namespace broker;

namespace {

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
    for (auto p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size()))
        s.replace(p, from.size(), to);
    return s;
}

std::string fixture() {
    return testing::read_file(testing::source_dir() / "tests/fixtures/messages/dialog-portal-to-oslo.xml");
}

/// The fixture with its Foresporsel's inner part replaced.
std::string with_foresporsel(const std::string& inner) {
    std::string s = fixture();
    auto b = s.find("<Foresporsel>");
    auto e = s.find("</Foresporsel>");
    REQUIRE(b != std::string::npos);
    REQUIRE(e != std::string::npos);
    return s.substr(0, b) + "<Foresporsel>" + inner + s.substr(e);
}

const std::string type_foresp = R"(<TypeForesp V="HE" DN="Henvendelse" S="2.16.578.1.12.4.1.1.7601"/>)";

xml::validation_result check(const std::string& doc) { return xml::thread_validator().validate(doc, "test"); }

std::string apprec_1_1() {
    return R"(<?xml version="1.0" encoding="UTF-8"?>
<AppRec xmlns="http://www.kith.no/xmlstds/apprec/2012-02-15">
  <MsgType V="APPREC"/>
  <MIGversion>v1.1 2012-02-15</MIGversion>
  <GenDate>2026-11-21T10:20:00Z</GenDate>
  <Id>0b7e7f44-0a8f-4b8e-9d7c-6a3c1f9e2d10</Id>
  <Sender><HCP><Inst><Name>Oslo kommune</Name><Id>9100100</Id><TypeId V="HER" DN="HER-id"/>
    <Dept><Name>Hjemmetjenesten</Name><Id>9100110</Id><TypeId V="HER" DN="HER-id"/></Dept></Inst></HCP></Sender>
  <Receiver><HCP><Inst><Name>Direktoratet for e-helse</Name><Id>115851</Id><TypeId V="HER" DN="HER-id"/>
    <Dept><Name>Helsenorge.no</Name><Id>8093244</Id><TypeId V="HER" DN="HER-id"/></Dept></Inst></HCP></Receiver>
  <Status V="2" DN="Avvist"/>
  <Error V="E35" DN="Pasienten finnes ikke i mottakersystemet" S="2.16.578.1.12.4.1.1.8221"/>
  <OriginalMsgId><MsgType V="DIALOG_INNBYGGER_EKONTAKT" DN="Dialog med innbygger - eKontakt"/>
    <IssueDate>2026-11-21T10:15:00Z</IssueDate><Id>6f1c2f3e-5d4b-4a39-9c1e-0b7a8d2e4f10</Id></OriginalMsgId>
</AppRec>
)";
}

} // namespace

TEST_CASE("convert: the portal's Dialogmelding 1.1 becomes a valid 1.0 with the same MsgHead", "[unit][convert]") {
    std::string in = fixture();
    REQUIRE(check(in).facts.content_ns == ns::dialog_1_1);
    auto out = convert::dialog_1_1_to_1_0(in);
    INFO((out ? std::string() : out.error().where()));
    REQUIRE(out.has_value());
    auto vr = check(*out);
    REQUIRE(vr.v == xml::verdict::valid);
    CHECK(vr.facts.content_ns == ns::dialog_1_0);
    CHECK(vr.facts.msg_id == "6f1c2f3e-5d4b-4a39-9c1e-0b7a8d2e4f10");
    CHECK(vr.facts.msg_type == "DIALOG_INNBYGGER_EKONTAKT");
    CHECK(vr.facts.receiver.lowest_her() == "9100110");
    CHECK(vr.facts.patient_id == "01010112345");
    CHECK(out->find(ns::dialog_1_1) == std::string::npos);
    // The text (UTF-8) is carried as it is.
    CHECK(out->find("Kan hjemmesykepleien komme litt senere på torsdag?") != std::string::npos);
    CHECK(convert::check_dialog_1_1_to_1_0(in).has_value());
}

TEST_CASE("convert: a prefixed Dialogmelding 1.1 declared on the MsgHead root converts", "[unit][convert]") {
    std::string s = fixture();
    s = replace_all(s, "<MsgHead xmlns=\"http://www.kith.no/xmlstds/msghead/2006-05-24\">",
                        "<MsgHead xmlns=\"http://www.kith.no/xmlstds/msghead/2006-05-24\" "
                        "xmlns:dia=\"http://www.kith.no/xmlstds/dialog/2013-01-23\">");
    s = replace_all(s, "<Dialogmelding xmlns=\"http://www.kith.no/xmlstds/dialog/2013-01-23\">", "<dia:Dialogmelding>");
    s = replace_all(s, "</Dialogmelding>", "</dia:Dialogmelding>");
    s = replace_all(s, "<Foresporsel>", "<dia:Foresporsel>");
    s = replace_all(s, "</Foresporsel>", "</dia:Foresporsel>");
    s = replace_all(s, "<TypeForesp ", "<dia:TypeForesp ");
    s = replace_all(s, "<Sporsmal>", "<dia:Sporsmal>");
    s = replace_all(s, "</Sporsmal>", "</dia:Sporsmal>");
    REQUIRE(check(s).v == xml::verdict::valid);
    auto out = convert::dialog_1_1_to_1_0(s);
    INFO((out ? std::string() : out.error().where()));
    REQUIRE(out.has_value());
    auto vr = check(*out);
    CHECK(vr.v == xml::verdict::valid);
    CHECK(vr.facts.content_ns == ns::dialog_1_0);
}

TEST_CASE("convert: what Dialogmelding 1.0 cannot hold is refused with T10 naming the element", "[unit][convert]") {
    struct refusal {
        std::string inner;
        std::string names;
    };
    const std::string person = "<RollerRelatertNotat><Person><GivenName>A</GivenName></Person></RollerRelatertNotat>";
    std::vector<refusal> cases = {
        {type_foresp + "<EmneSporsmal>Tid</EmneSporsmal><Sporsmal>x</Sporsmal>", "EmneSporsmal"},
        {type_foresp + "<Sporsmal><p xmlns=\"http://www.w3.org/1999/xhtml\">x</p></Sporsmal>", "XHTML"},
        {type_foresp + "<Sporsmal>x</Sporsmal><KodetOpplysning V=\"1\" S=\"2.16.578.1.12.4.1.1.9152\"/>",
         "KodetOpplysning"},
        {type_foresp + "<TypeJournalinfo V=\"1\" S=\"2.16.578.1.12.4.1.1.9152\"/>"
                       "<TypeJournalinfo V=\"4\" S=\"2.16.578.1.12.4.1.1.9152\"/>",
         "TypeJournalinfo"},
        {type_foresp + "<RollerRelatertNotat><RolleNotat V=\"1\" S=\"2.16.578.1.12.4.1.1.9057\"/></RollerRelatertNotat>",
         "neither"},
        {type_foresp + "<RollerRelatertNotat><TilknyttetEnhet><Kontaktenhet>"
                       "<OrganisationName xmlns=\"http://www.kith.no/xmlstds/felleskomponent1\">Legekontoret</OrganisationName>"
                       "<Ident xmlns=\"http://www.kith.no/xmlstds/felleskomponent1\"><Id>9100999</Id>"
                       "<TypeId V=\"HER\" S=\"2.16.578.1.12.4.1.1.9051\"/></Ident>"
                       "</Kontaktenhet></TilknyttetEnhet></RollerRelatertNotat>",
         "TilknyttetEnhet"},
    };
    for (auto& c : cases) {
        std::string doc = with_foresporsel(c.inner);
        auto vr = check(doc);
        INFO(c.names << ": " << (vr.diagnostics.empty() ? std::string() : vr.diagnostics.front().message));
        REQUIRE(vr.v == xml::verdict::valid);  // a valid 1.1 message ...
        auto out = convert::dialog_1_1_to_1_0(doc);
        REQUIRE_FALSE(out.has_value());  // ... that 1.0 cannot carry
        CHECK(out.error().code == "T10");
        CHECK(out.error().message.find(c.names) != std::string::npos);
        CHECK(out.error().message.find("without loss") != std::string::npos);
        CHECK_FALSE(convert::check_dialog_1_1_to_1_0(doc).has_value());
    }
    // A person in the role, one TypeJournalinfo and plain text convert fine.
    auto ok = convert::dialog_1_1_to_1_0(
        with_foresporsel(type_foresp + "<Sporsmal>x</Sporsmal>" +
                         "<TypeJournalinfo V=\"1\" S=\"2.16.578.1.12.4.1.1.9152\"/>" + person));
    INFO((ok ? std::string() : ok.error().message));
    CHECK(ok.has_value());
}

TEST_CASE("convert: a message without Dialogmelding 1.1, and input that is not XML", "[unit][convert]") {
    std::string v10 = replace_all(fixture(), ns::dialog_1_1, ns::dialog_1_0);
    auto r = convert::dialog_1_1_to_1_0(v10);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == "T10");
    auto g = convert::dialog_1_1_to_1_0("this is <not xml");
    REQUIRE_FALSE(g.has_value());
    CHECK(g.error().code == "T01");
    auto a = convert::apprec_1_1_to_1_0(fixture());
    REQUIRE_FALSE(a.has_value());
    CHECK(a.error().code == "T10");
}

TEST_CASE("convert: AppRec 1.1 -> 1.0 -> 1.1 keeps every fact", "[unit][convert]") {
    std::string in = apprec_1_1();
    auto before = check(in);
    REQUIRE(before.v == xml::verdict::valid);
    auto v10 = convert::apprec_1_1_to_1_0(in);
    INFO((v10 ? std::string() : v10.error().where()));
    REQUIRE(v10.has_value());
    auto mid = check(*v10);
    REQUIRE(mid.v == xml::verdict::valid);
    CHECK(mid.facts.root_ns == ns::apprec_1_0);
    CHECK(mid.facts.mig_version == "1.0 2004-11-21");
    CHECK(v10->find("2012-02-15") == std::string::npos);
    auto v11 = convert::apprec_1_0_to_1_1(*v10);
    REQUIRE(v11.has_value());
    auto after = check(*v11);
    REQUIRE(after.v == xml::verdict::valid);
    CHECK(after.facts.root_ns == ns::apprec_1_1);
    CHECK(after.facts.mig_version == "v1.1 2012-02-15");
    for (const auto* f : {&mid.facts, &after.facts}) {
        CHECK(f->msg_id == before.facts.msg_id);
        CHECK(f->apprec_status == "2");
        REQUIRE(f->apprec_errors.size() == 1);
        CHECK(f->apprec_errors[0].code == "E35");
        CHECK(f->original_msg_id == before.facts.original_msg_id);
        CHECK(f->sender.lowest_her() == "9100110");
        CHECK(f->receiver.lowest_her() == "8093244");
    }
}
