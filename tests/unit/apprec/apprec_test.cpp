// AppRec builder: structure, content, refusals and validity against the official KITH schemas.
#include "broker/apprec.hpp"

#include "official_validator.hpp"
#include "test_paths.hpp"

#include <catch2/catch.hpp>

#include <xercesc/dom/DOM.hpp>
#include <xercesc/framework/MemBufInputSource.hpp>
#include <xercesc/parsers/XercesDOMParser.hpp>
#include <xercesc/sax/HandlerBase.hpp>
#include <xercesc/util/PlatformUtils.hpp>
#include <xercesc/util/XMLString.hpp>

#include <memory>
#include <mutex>
#include <regex>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

using namespace broker;
namespace xc = XERCES_CPP_NAMESPACE;

namespace {

std::string narrow(const XMLCh* s) {
    if (!s)
        return {};
    char* c = xc::XMLString::transcode(s);
    std::string out = c ? c : "";
    xc::XMLString::release(&c);
    return out;
}

/// A parsed AppRec with path lookups ("Sender/HCP/Inst/Id"), for reading the fields back.
class parsed {
public:
    explicit parsed(const std::string& xml) {
        static std::once_flag once;
        std::call_once(once, [] { xc::XMLPlatformUtils::Initialize(); });
        parser_ = std::make_unique<xc::XercesDOMParser>();
        parser_->setDoNamespaces(true);
        parser_->setValidationScheme(xc::XercesDOMParser::Val_Never);
        parser_->setErrorHandler(&errors_);
        xc::MemBufInputSource src(reinterpret_cast<const XMLByte*>(xml.data()), xml.size(), "apprec", false);
        parser_->parse(src);  // throws on malformed input: the test fails
        root_ = parser_->getDocument()->getDocumentElement();
    }

    std::string root_ns() const { return narrow(root_->getNamespaceURI()); }
    std::string root_name() const { return narrow(root_->getLocalName()); }

    /// Local names of the root's child elements, in order.
    std::vector<std::string> children(const xc::DOMElement* e = nullptr) const {
        std::vector<std::string> out;
        for (auto* n = (e ? e : root_)->getFirstChild(); n; n = n->getNextSibling())
            if (n->getNodeType() == xc::DOMNode::ELEMENT_NODE)
                out.push_back(narrow(n->getLocalName()));
        return out;
    }

    /// All elements at 'path' (slash-separated local names below the root).
    std::vector<const xc::DOMElement*> all(const std::string& path) const {
        std::vector<const xc::DOMElement*> cur{root_};
        std::stringstream ss(path);
        std::string step;
        while (std::getline(ss, step, '/')) {
            std::vector<const xc::DOMElement*> next;
            for (auto* e : cur)
                for (auto* n = e->getFirstChild(); n; n = n->getNextSibling())
                    if (n->getNodeType() == xc::DOMNode::ELEMENT_NODE && narrow(n->getLocalName()) == step)
                        next.push_back(static_cast<const xc::DOMElement*>(n));
            cur = std::move(next);
        }
        return cur;
    }
    const xc::DOMElement* one(const std::string& path) const {
        auto v = all(path);
        INFO(path);
        REQUIRE(v.size() == 1);
        return v.front();
    }
    bool has(const std::string& path) const { return !all(path).empty(); }
    std::string text(const std::string& path) const { return narrow(one(path)->getTextContent()); }
    std::string attr(const std::string& path, const char* name) const {
        XMLCh* n = xc::XMLString::transcode(name);
        std::string v = narrow(one(path)->getAttribute(n));
        xc::XMLString::release(&n);
        return v;
    }
    bool has_attr(const std::string& path, const char* name) const {
        XMLCh* n = xc::XMLString::transcode(name);
        bool v = one(path)->hasAttribute(n);
        xc::XMLString::release(&n);
        return v;
    }

private:
    xc::HandlerBase errors_;  // throws on fatal errors
    std::unique_ptr<xc::XercesDOMParser> parser_;
    const xc::DOMElement* root_ = nullptr;
};

/// An original Dialogmelding: sender = a GP office with a person at level 2, receiver = a
/// municipal service (department at level 2).
message_facts original() {
    message_facts f;
    f.kind = doc_kind::msghead;
    f.root_ns = ns::msghead;
    f.content_ns = ns::dialog_1_1;
    f.msg_id = "de1a95c0-4d0c-11e7-9598-0800200c9a66";
    f.msg_type = "DIALOG_HELSEFAGLIG";
    f.msg_type_dn = "Helsefaglig dialog";
    f.gen_date = "2017-06-12T09:35:22";
    f.sender.lvl1_her = "56704";
    f.sender.lvl1_name = "Kattskinnet legesenter";
    f.sender.lvl2_her = "258521";
    f.sender.lvl2_name = "Rita Lin";
    f.sender.lvl2_is_person = true;
    f.receiver.lvl1_her = "59";
    f.receiver.lvl1_name = "Oslo kommune";
    f.receiver.lvl2_her = "90998";
    f.receiver.lvl2_name = "Hjemmetjenesten bydel Frogner";
    return f;
}

void require_official_valid(const std::string& xml) {
    if (!testing::have_interop()) {
        WARN("interop schemas absent; official validation skipped");
        return;
    }
    auto r = testing::official_verdict(xml);
    INFO(xml);
    INFO("first error: " << r.first_error);
    REQUIRE(r.valid);
}

const std::vector<std::string> full_order = {"MsgType", "MIGversion", "SoftwareName", "SoftwareVersion", "GenDate",
                                             "Id",      "Sender",     "Receiver",     "Status",          "Error",
                                             "OriginalMsgId"};

/// Children in schema order (Error may repeat or be absent).
void check_order(const parsed& p) {
    auto kids = p.children();
    std::size_t pos = 0;
    for (const auto& k : kids) {
        while (pos < full_order.size() && full_order[pos] != k)
            ++pos;
        INFO("element " << k << " out of order");
        REQUIRE(pos < full_order.size());
    }
}

} // namespace

TEST_CASE("apprec: OK receipt, both versions", "[unit][apprec]") {
    auto [version, ns_uri, mig] = GENERATE(table<std::string, std::string, std::string>({
        {"1.0", ns::apprec_1_0, "1.0 2004-11-21"},
        {"1.1", ns::apprec_1_1, "v1.1 2012-02-15"},
    }));
    apprec::request r;
    r.version = version;
    r.st = apprec::status::ok;
    r.original = original();
    r.software_version = "0.1.0";
    auto xml = apprec::build(r);
    INFO((xml ? std::string() : xml.error().message));
    REQUIRE(xml.has_value());
    parsed p(*xml);

    CHECK(p.root_name() == "AppRec");
    CHECK(p.root_ns() == ns_uri);
    CHECK(p.children() == std::vector<std::string>{"MsgType", "MIGversion", "SoftwareName", "SoftwareVersion",
                                                    "GenDate", "Id", "Sender", "Receiver", "Status", "OriginalMsgId"});
    CHECK(p.attr("MsgType", "V") == "APPREC");
    CHECK(p.attr("MsgType", "DN") == "Applikasjonskvittering");
    CHECK(p.text("MIGversion") == mig);
    CHECK(p.text("SoftwareName") == "edibroker");
    CHECK(p.text("SoftwareVersion") == "0.1.0");
    CHECK(std::regex_match(p.text("GenDate"), std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")));
    CHECK(std::regex_match(p.text("Id"), std::regex("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")));

    // Sender = the original receiver (level 2 is a service: Dept).
    CHECK(p.text("Sender/HCP/Inst/Name") == "Oslo kommune");
    CHECK(p.text("Sender/HCP/Inst/Id") == "59");
    CHECK(p.attr("Sender/HCP/Inst/TypeId", "V") == "HER");
    CHECK(p.attr("Sender/HCP/Inst/TypeId", "DN") == "HER-id");
    CHECK(p.text("Sender/HCP/Inst/Dept/Name") == "Hjemmetjenesten bydel Frogner");
    CHECK(p.text("Sender/HCP/Inst/Dept/Id") == "90998");
    CHECK(p.attr("Sender/HCP/Inst/Dept/TypeId", "V") == "HER");
    CHECK_FALSE(p.has("Sender/HCP/Inst/HCPerson"));
    // Receiver = the original sender (level 2 is a person: HCPerson).
    CHECK(p.text("Receiver/HCP/Inst/Name") == "Kattskinnet legesenter");
    CHECK(p.text("Receiver/HCP/Inst/Id") == "56704");
    CHECK(p.text("Receiver/HCP/Inst/HCPerson/Name") == "Rita Lin");
    CHECK(p.text("Receiver/HCP/Inst/HCPerson/Id") == "258521");
    CHECK(p.attr("Receiver/HCP/Inst/HCPerson/TypeId", "V") == "HER");
    CHECK_FALSE(p.has("Receiver/HCP/Inst/Dept"));

    CHECK(p.attr("Status", "V") == "1");
    CHECK(p.attr("Status", "DN") == "OK");
    CHECK_FALSE(p.has("Error"));
    CHECK(p.attr("OriginalMsgId/MsgType", "V") == "DIALOG_HELSEFAGLIG");
    CHECK(p.attr("OriginalMsgId/MsgType", "DN") == "Helsefaglig dialog");
    CHECK(p.text("OriginalMsgId/IssueDate") == "2017-06-12T09:35:22");
    CHECK(p.text("OriginalMsgId/Id") == "de1a95c0-4d0c-11e7-9598-0800200c9a66");
    require_official_valid(*xml);
}

TEST_CASE("apprec: rejected with E21, both versions", "[unit][apprec]") {
    std::string version = GENERATE("1.0", "1.1");
    apprec::request r;
    r.version = version;
    r.st = apprec::status::rejected;
    r.errors = {{"E21", "", "", ""}};  // DN and S filled in from kodeverk 8221
    r.original = original();
    r.id = "11111111-2222-4333-8444-555555555555";
    r.gen_date = "2024-03-01T10:00:00+01:00";
    auto xml = apprec::build(r);
    INFO((xml ? std::string() : xml.error().message));
    REQUIRE(xml.has_value());
    parsed p(*xml);
    check_order(p);
    CHECK(p.text("Id") == r.id);
    CHECK(p.text("GenDate") == r.gen_date);
    CHECK(p.attr("Status", "V") == "2");
    CHECK(p.attr("Status", "DN") == "Avvist");
    REQUIRE(p.all("Error").size() == 1);
    CHECK(p.attr("Error", "V") == "E21");
    CHECK(p.attr("Error", "DN") == "Mottaker finnes ikke");
    CHECK(p.attr("Error", "S") == "2.16.578.1.12.4.1.1.8221");
    CHECK_FALSE(p.has_attr("Error", "OT"));
    require_official_valid(*xml);
}

TEST_CASE("apprec: status 3 with OT and a message-specific code system", "[unit][apprec]") {
    std::string version = GENERATE("1.0", "1.1");
    apprec::request r;
    r.version = version;
    r.st = apprec::status::ok_error_in_part;
    r.errors = {{"E35", "Pasienten finnes ikke i mottakersystemet", "", "delmelding-2"},
                {"07", "Ugyldig resept", "2.16.578.1.12.4.1.1.8223", "delmelding-3"}};
    r.original = original();
    auto xml = apprec::build(r);
    INFO((xml ? std::string() : xml.error().message));
    REQUIRE(xml.has_value());
    parsed p(*xml);
    check_order(p);
    CHECK(p.attr("Status", "V") == "3");
    CHECK(p.attr("Status", "DN") == "OK, feil i delmelding");
    auto errs = p.all("Error");
    REQUIRE(errs.size() == 2);
    CHECK(narrow(errs[0]->getAttribute(u"V")) == "E35");
    CHECK(narrow(errs[0]->getAttribute(u"S")) == "2.16.578.1.12.4.1.1.8221");
    CHECK(narrow(errs[0]->getAttribute(u"OT")) == "delmelding-2");
    CHECK(narrow(errs[1]->getAttribute(u"V")) == "07");
    CHECK(narrow(errs[1]->getAttribute(u"S")) == "2.16.578.1.12.4.1.1.8223");
    CHECK(narrow(errs[1]->getAttribute(u"DN")) == "Ugyldig resept");
    CHECK(narrow(errs[1]->getAttribute(u"OT")) == "delmelding-3");
    require_official_valid(*xml);
}

TEST_CASE("apprec: refusals", "[unit][apprec]") {
    apprec::request r;
    r.original = original();

    SECTION("rejected without an error") {
        r.st = apprec::status::rejected;
        auto xml = apprec::build(r);
        REQUIRE_FALSE(xml.has_value());
        CHECK(xml.error().code == "apprec.no-error");
    }
    SECTION("AppRec on an AppRec (by kind)") {
        r.original.kind = doc_kind::apprec;
        r.original.root_ns = ns::apprec_1_1;
        r.original.msg_type = "APPREC";
        auto xml = apprec::build(r);
        REQUIRE_FALSE(xml.has_value());
        CHECK(xml.error().code == "apprec.on-apprec");
    }
    SECTION("AppRec on an AppRec (by type only)") {
        r.original.msg_type = "APPREC";
        auto xml = apprec::build(r);
        REQUIRE_FALSE(xml.has_value());
        CHECK(xml.error().code == "apprec.on-apprec");
    }
    SECTION("original without MsgId") {
        r.original.msg_id.clear();
        auto xml = apprec::build(r);
        REQUIRE_FALSE(xml.has_value());
        CHECK(xml.error().code == "apprec.no-msgid");
    }
    SECTION("original without a sender HER-id") {
        r.original.sender.lvl1_her.clear();
        r.original.sender.lvl2_her.clear();
        auto xml = apprec::build(r);
        REQUIRE_FALSE(xml.has_value());
        CHECK(xml.error().code == "apprec.no-sender-her");
    }
    SECTION("unknown version") {
        r.version = "2.0";
        auto xml = apprec::build(r);
        REQUIRE_FALSE(xml.has_value());
        CHECK(xml.error().code == "apprec.version");
    }
    SECTION("error without a code") {
        r.st = apprec::status::rejected;
        r.errors = {{"", "something", "", ""}};
        auto xml = apprec::build(r);
        REQUIRE_FALSE(xml.has_value());
        CHECK(xml.error().code == "apprec.error-code");
    }
    SECTION("error code system that is not an OID") {
        r.st = apprec::status::rejected;
        r.errors = {{"E21", "", "kodeverk-8221", ""}};
        auto xml = apprec::build(r);
        REQUIRE_FALSE(xml.has_value());
        CHECK(xml.error().code == "apprec.error-system");
    }
    SECTION("a GenDate that is not an xs:dateTime") {
        r.gen_date = "2024-13-01T00:00:00";
        auto xml = apprec::build(r);
        REQUIRE_FALSE(xml.has_value());
        CHECK(xml.error().code == "apprec.gen-date");
    }
}

TEST_CASE("apprec: values are escaped", "[unit][apprec]") {
    std::string version = GENERATE("1.0", "1.1");
    apprec::request r;
    r.version = version;
    r.st = apprec::status::rejected;
    r.original = original();
    r.original.sender.lvl1_name = "Lege <&> \"Sentrum\" & 'co'";
    r.original.receiver.lvl2_name = "Avd. <B&B>";
    r.original.msg_type_dn = "Type \"x\" <y>";
    r.original.msg_id = "id&<1>";
    r.errors = {{"X99", "feil i <Patient> & \"ident\"", "", "a\"b"}};
    auto xml = apprec::build(r);
    INFO((xml ? std::string() : xml.error().message));
    REQUIRE(xml.has_value());
    CHECK(xml->find("<&>") == std::string::npos);
    parsed p(*xml);
    CHECK(p.text("Receiver/HCP/Inst/Name") == "Lege <&> \"Sentrum\" & 'co'");
    CHECK(p.text("Sender/HCP/Inst/Dept/Name") == "Avd. <B&B>");
    CHECK(p.attr("OriginalMsgId/MsgType", "DN") == "Type \"x\" <y>");
    CHECK(p.text("OriginalMsgId/Id") == "id&<1>");
    CHECK(p.attr("Error", "DN") == "feil i <Patient> & \"ident\"");
    CHECK(p.attr("Error", "OT") == "a\"b");
    require_official_valid(*xml);
}

TEST_CASE("apprec: sender override and sparse parties", "[unit][apprec]") {
    apprec::request r;
    r.st = apprec::status::rejected;
    r.errors = {{"E21", "", "", ""}};
    r.original = original();
    r.original.receiver = {};  // unknown receiver: the broker answers on its own behalf
    r.sender_override.lvl1_her = "8142987";
    r.sender_override.lvl1_name = "edibroker";
    r.original.sender.lvl2_her.clear();
    r.original.sender.lvl2_name.clear();
    r.software_name.clear();
    auto xml = apprec::build(r);
    INFO((xml ? std::string() : xml.error().message));
    REQUIRE(xml.has_value());
    parsed p(*xml);
    CHECK_FALSE(p.has("SoftwareName"));
    CHECK(p.text("Sender/HCP/Inst/Id") == "8142987");
    CHECK(p.text("Sender/HCP/Inst/Name") == "edibroker");
    CHECK(p.children(p.one("Sender/HCP/Inst")) == std::vector<std::string>{"Name", "Id", "TypeId"});
    CHECK(p.children(p.one("Receiver/HCP/Inst")) == std::vector<std::string>{"Name", "Id", "TypeId"});
    require_official_valid(*xml);
}

TEST_CASE("apprec: IssueDate falls back to GenDate when the original has none", "[unit][apprec]") {
    apprec::request r;
    r.original = original();
    std::string bad = GENERATE(std::string(""), std::string("2017-06-12"), std::string("1991-12-4T10:00:00"));
    r.original.gen_date = bad;
    r.gen_date = "2024-05-06T07:08:09.123Z";
    auto xml = apprec::build(r);
    INFO((xml ? std::string() : xml.error().message));
    REQUIRE(xml.has_value());
    parsed p(*xml);
    CHECK(p.text("OriginalMsgId/IssueDate") == "2024-05-06T07:08:09.123Z");
    require_official_valid(*xml);
}

TEST_CASE("apprec: code tables", "[unit][apprec]") {
    CHECK(std::string(apprec::status_name(apprec::status::ok)) == "Ok");
    CHECK(std::string(apprec::status_name(apprec::status::rejected)) == "Rejected");
    CHECK(std::string(apprec::status_name(apprec::status::ok_error_in_part)) == "OkErrorInMessagePart");
    for (auto s : {apprec::status::ok, apprec::status::rejected, apprec::status::ok_error_in_part}) {
        auto back = apprec::parse_status_name(apprec::status_name(s));
        REQUIRE(back.has_value());
        CHECK(*back == s);
    }
    CHECK(*apprec::parse_status_name("rejected") == apprec::status::rejected);
    CHECK(*apprec::parse_status_name("3") == apprec::status::ok_error_in_part);
    auto bad = apprec::parse_status_name("Maybe");
    REQUIRE_FALSE(bad.has_value());
    CHECK(bad.error().code == "apprec.status");

    CHECK(std::string(apprec::status_dn(apprec::status::ok)) == "OK");
    CHECK(std::string(apprec::status_dn(apprec::status::rejected)) == "Avvist");
    CHECK(std::string(apprec::status_dn(apprec::status::ok_error_in_part)) == "OK, feil i delmelding");

    CHECK(std::string(apprec::error_dn("E21")) == "Mottaker finnes ikke");
    CHECK(std::string(apprec::error_dn("T01")) == "Ikke XML / ikke 'well formed' / uleselig");
    CHECK(std::string(apprec::error_dn("T02")) == "XML validerer ikke");
    CHECK(std::string(apprec::error_dn("T10")) == "Støtter ikke meldingsformatet");
    CHECK(std::string(apprec::error_dn("S01")) == "Feil på signatur");
    CHECK(std::string(apprec::error_dn("X99")) == "Annen feil");
    for (const char* c : {"E10", "E20", "E30", "E31", "E32", "E35", "E36", "E53", "E54", "S02", "S03", "T99"})
        CHECK(std::string(apprec::error_dn(c)) != "");
    CHECK(std::string(apprec::error_dn("E99")) == "");
    CHECK(std::string(apprec::error_dn("")) == "");
}

TEST_CASE("apprec: ids and timestamps", "[unit][apprec]") {
    std::set<std::string> seen;
    std::regex v4("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");
    for (int i = 0; i < 1000; ++i) {
        auto id = apprec::new_uuid();
        REQUIRE(std::regex_match(id, v4));
        seen.insert(id);
    }
    CHECK(seen.size() == 1000);
    CHECK(std::regex_match(apprec::now_datetime(), std::regex(R"(20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")));
}

TEST_CASE("apprec: ids unique across threads and after fork()", "[unit][apprec]") {
    // Each thread hands out ids from its own buffer of CSPRNG bytes (issue 3): threads must not
    // share bytes, and a forked child must not repeat what its parent hands out next.
    std::vector<std::vector<std::string>> per(4);
    {
        std::vector<std::thread> ts;
        for (auto& v : per)
            ts.emplace_back([&v] {
                for (int i = 0; i < 2000; ++i)
                    v.push_back(i % 2 ? apprec::new_uuid() : apprec::new_time_ordered_uuid());
            });
        for (auto& t : ts)
            t.join();
    }
    std::set<std::string> seen;
    for (auto& v : per)
        seen.insert(v.begin(), v.end());
    CHECK(seen.size() == 8000);

    (void)apprec::new_uuid();  // the buffer is now part-used
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        std::string id = apprec::new_uuid();
        ssize_t w = write(fds[1], id.data(), id.size());
        _exit(w == static_cast<ssize_t>(id.size()) ? 0 : 1);
    }
    close(fds[1]);
    std::string parent_next = apprec::new_uuid();
    char buf[64] = {};
    ssize_t n = read(fds[0], buf, sizeof buf);
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    REQUIRE(n == 36);
    CHECK(std::string(buf, 36) != parent_next);
}
