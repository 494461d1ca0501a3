// Every message in ../shared/interop through the real broker: the valid ones are accepted, routed
// and delivered byte-exact to the vendor; the invalid ones are refused with T01/T02/T10, matching
// the official schemas' verdict.
#include "broker_env.hpp"
#include "official_validator.hpp"

#include "broker/xml.hpp"

#include <set>

using namespace testing;
namespace json = boost::json;

namespace {

bool is_message_root(const std::string& doc) {
    for (const char* root : {"<MsgHead", "<AppRec", "<EI_fellesformat"}) {
        auto p = doc.find(root);
        if (p != std::string::npos) {
            // the first element of the document
            auto first = doc.find('<', doc.find("?>") == std::string::npos ? 0 : doc.find("?>") + 2);
            while (first != std::string::npos && doc.compare(first, 4, "<!--") == 0)
                first = doc.find('<', doc.find("-->", first) + 3);
            if (first == p)
                return true;
        }
    }
    return false;
}

std::vector<std::filesystem::path> interop_messages() {
    std::vector<std::filesystem::path> out;
    for (auto& e : std::filesystem::recursive_directory_iterator(interop_dir())) {
        if (!e.is_regular_file() || e.path().extension() != ".xml")
            continue;
        if (is_message_root(read_file(e.path())))
            out.push_back(e.path());
    }
    std::sort(out.begin(), out.end());
    return out;
}

} // namespace

TEST_CASE("every message in shared/interop passes through end to end (or is refused like the official XSDs do)",
          "[integration][interop]") {
    if (!have_interop()) {
        WARN("shared/interop is absent: skipped");
        return;
    }
    broker::xml::platform_init();
    auto v = broker::xml::make_validator();
    REQUIRE(v);
    auto files = interop_messages();
    REQUIRE(files.size() >= 30);

    // A registry holding every party the samples name, each served by the vendor.
    std::set<std::string> lowest;
    std::vector<broker::message_facts> facts;
    for (auto& f : files) {
        facts.push_back((*v)->parse_only(read_file(f), f.string()).facts);
        lowest.insert(facts.back().sender.lowest_her());
        lowest.insert(facts.back().receiver.lowest_her());
    }
    std::set<std::string> seen;
    std::string parties;
    int synthetic = 0;
    auto add = [&](const broker::party_ref& p) {
        // Addressed by organisation number only: a receiving party carrying that number.
        if (p.lvl1_her.empty() && p.lvl2_her.empty() && !p.lvl1_orgnr.empty() && seen.insert(p.lvl1_orgnr).second)
            parties += party_xml(std::to_string(8800000 + ++synthetic), "org " + p.lvl1_orgnr, "Service", "", "vendor",
                                 "0301", p.lvl1_orgnr);
        // A HER-id some sample addresses as its lowest level must be able to receive.
        bool lowest_somewhere = lowest.count(p.lvl1_her) > 0;
        if (!p.lvl1_her.empty() && seen.insert(p.lvl1_her).second)
            parties += party_xml(p.lvl1_her, "org " + p.lvl1_her, lowest_somewhere ? "Service" : "Organization", "",
                                 lowest_somewhere ? "vendor" : "", "0301");
        if (!p.lvl2_her.empty() && seen.insert(p.lvl2_her).second)
            parties += party_xml(p.lvl2_her, "unit " + p.lvl2_her, p.lvl2_is_person ? "Person" : "Service",
                                 p.lvl1_her, "vendor", "0301");
    };
    for (auto& ff : facts) {
        add(ff.sender);
        add(ff.receiver);
    }
    std::string registry = "<Registry xmlns=\"urn:edibroker:registry:1\">\n" + parties + "</Registry>\n";
    auto rules = [](const std::string& url) {
        return R"(<routing-rules xmlns="urn:edibroker:routing-rules:1">
  <adapter name="vendor" type="http-push"><option name="url" value=")" +
               url + R"("/></adapter>
  <rule id="by-registry" priority="1"><deliver via="registry"/></rule>
</routing-rules>
)";
    };
    broker_env env(rules, registry);

    int valid = 0, invalid = 0;
    for (auto& f : files) {
        std::string doc = read_file(f);
        auto official = official_verdict(doc);
        auto rel = std::filesystem::relative(f, interop_dir()).string();
        INFO(rel << " (official: " << (official.valid ? "valid" : "invalid: " + official.first_error) << ")");
        auto r = env.post_xml(doc);
        auto o = json_of(r);
        if (official.valid) {
            ++valid;
            REQUIRE(r.status == 201);
            if (r.headers["X-EDIBroker-Duplicate"] == "true")
                continue;  // same sender + MsgId as an earlier sample: stored and delivered once
            std::string id = str(o, "id");
            auto st = env.status(id, "delivered,dead");
            CHECK(str(st, "state") == "delivered");
            bool found = false;
            for (auto& req : env.vendor.requests())
                if (req.headers["X-EDIBroker-Id"] == id) {
                    found = true;
                    CHECK(req.body == doc);
                }
            CHECK(found);
        } else {
            ++invalid;
            CHECK(r.status == 400);
            std::string code = str(o.at("error").as_object(), "code");
            CHECK((code == "T01" || code == "T02" || code == "T10"));
        }
    }
    CHECK(valid >= 20);
    CHECK(invalid >= 10);
}
