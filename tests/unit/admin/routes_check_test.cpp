// `routes check`'s analysis on real rules and registry files, with test adapter types that take
// only some message types.
#include "admin_test_util.hpp"

#include "tools/routes_check.hpp"

#include <fstream>

namespace {

/// An adapter type that takes only 'types' (and is never built here).
class typed_factory final : public broker::adapter_factory {
public:
    typed_factory(std::string name, std::vector<std::string> types) : name_(std::move(name)), types_(std::move(types)) {}
    std::string_view type() const override { return name_; }
    broker::result<void> check(const broker::adapter_config& c) const override {
        if (c.options.count("bad"))
            return broker::error{"adapter.config", "option 'bad' is not allowed"};
        return {};
    }
    broker::result<broker::adapter_ptr> create(const broker::adapter_config&) const override {
        return broker::error{"adapter.config", "not built in this test"};
    }
    broker::capabilities caps(const broker::adapter_config&) const override {
        broker::capabilities c;
        c.msg_types = types_;
        return c;
    }

private:
    std::string name_;
    std::vector<std::string> types_;
};

const char* registry = R"(<Registry xmlns="urn:edibroker:registry:1">
  <CommunicationParty><HerId>9100100</HerId><Name>Oslo kommune</Name><Type>Organization</Type><Municipality><CodeValue>0301</CodeValue></Municipality></CommunicationParty>
  <CommunicationParty><HerId>9100110</HerId><Name>Hjemmetjenesten</Name><Type>Service</Type><ParentHerId>9100100</ParentHerId><Municipality><CodeValue>0301</CodeValue></Municipality><Adapter>oslo</Adapter></CommunicationParty>
  <CommunicationParty><HerId>9100111</HerId><Name>Sykepleier</Name><Type>Person</Type><ParentHerId>9100110</ParentHerId><Municipality><CodeValue>0301</CodeValue></Municipality><Adapter>ghost</Adapter></CommunicationParty>
  <CommunicationParty><HerId>9100200</HerId><Name>Bergen kommune</Name><Type>Organization</Type><Municipality><CodeValue>4601</CodeValue></Municipality></CommunicationParty>
  <CommunicationParty><HerId>9100210</HerId><Name>Hjemmetjenesten Bergenhus</Name><Type>Service</Type><ParentHerId>9100200</ParentHerId><Municipality><CodeValue>4601</CodeValue></Municipality></CommunicationParty>
</Registry>
)";

const char* rules_xml = R"(<routing-rules xmlns="urn:edibroker:routing-rules:1">
  <adapter name="oslo" type="epj"/>
  <adapter name="receipts" type="appreconly"/>
  <adapter name="spare" type="epj"/>
  <adapter name="broken" type="epj"><option name="bad" value="1"/></adapter>
  <adapter name="odd" type="nosuchtype"/>
  <rule id="oslo-all" priority="100">
    <match receiver-or-ancestor="9100100"/>
    <deliver adapter="oslo"/>
  </rule>
  <rule id="oslo-nurse" priority="50">
    <match receiver="9100111"/>
    <deliver adapter="oslo"/>
  </rule>
  <rule id="oslo-dialog-only" priority="200">
    <match receiver-or-ancestor="9100100" type="DIALOG_NOTAT"/>
    <deliver adapter="oslo"/>
  </rule>
  <rule id="nobody" priority="10">
    <match receiver="9999999"/>
    <deliver adapter="oslo"/>
  </rule>
  <rule id="to-organisation" priority="10">
    <match receiver="9100200"/>
    <deliver adapter="oslo"/>
  </rule>
  <rule id="trondheim" priority="10">
    <match municipality="5001"/>
    <deliver adapter="oslo"/>
  </rule>
  <rule id="dialog-to-receipts" priority="10">
    <match receiver-or-ancestor="9100200" type="DIALOG_*"/>
    <deliver adapter="receipts"/>
  </rule>
  <rule id="bergen-everything" priority="5">
    <match receiver-or-ancestor="9100200"/>
    <deliver adapter="receipts"/>
  </rule>
  <rule id="bergen-registry" priority="1">
    <match receiver-or-ancestor="9100200" sender="8093244"/>
    <deliver via="registry"/>
  </rule>
  <rule id="keep" priority="0">
    <match receiver="9100110"/>
    <deliver adapter="oslo"/>
    <option name="retention-days" value="forever"/>
  </rule>
</routing-rules>
)";

} // namespace

TEST_CASE("routes check: never-matching, shadowed and mistyped routes, bad adapters", "[unit][admin]") {
    testing::temp_dir d;
    auto rules_file = d.path() / "rules.xml";
    std::ofstream(rules_file) << rules_xml;
    auto rules = broker::routing::load_rules_files({rules_file.string()});
    REQUIRE(rules);
    auto parties = broker::routing::parse_registry(registry, "registry.xml");
    REQUIRE(parties);
    broker::routing::address_registry reg(*parties);
    broker::adapter_registry factories;
    REQUIRE(factories.add(std::make_unique<typed_factory>("epj", std::vector<std::string>{"DIALOG_*", "APPREC"})));
    REQUIRE(factories.add(std::make_unique<typed_factory>("appreconly", std::vector<std::string>{"APPREC"})));

    auto found = broker::tools::check_routes(*rules, reg, factories, d.path().string(), "registry.xml");
    std::string all;
    for (auto& f : found)
        all += f.where + ": " + (f.error ? "error" : "warning") + ": " + f.text + "\n";
    INFO(all);
    auto has = [&](const std::string& s) { CHECK(all.find(s) != std::string::npos); };
    const std::string file = rules_file.string();
    has(file + ":5: error: adapter 'broken': option 'bad' is not allowed");
    has(file + ":6: error: adapter 'odd' has unknown type 'nosuchtype'");
    has("error: rule 'oslo-nurse' is shadowed by rule 'oslo-all'");
    has("error: rule 'nobody' can never match: receiver 9999999 is not in the registry");
    has("error: rule 'to-organisation' can never match: receiver 9100200 is an organisation");
    has("error: rule 'trondheim' can never match: no receiving party in the registry is in municipality 5001");
    has("error: rule 'dialog-to-receipts' sends type DIALOG_* to adapter 'receipts', which takes only APPREC");
    has("warning: rule 'bergen-everything' matches every message type but adapter 'receipts' takes only APPREC");
    has("error: rule 'bergen-registry' can never match: no receiving party (under 9100200) names an adapter");
    has(file + ":4: warning: adapter 'spare' is used by no rule");
    has("registry.xml: warning: party 9100111 names adapter 'ghost', which no rules file declares");
    has("error: rule 'keep': option retention-days must be 0..36500 days, got 'forever'");
    // A narrower rule first does not shadow the broad one after it, and the broad one is fine.
    CHECK(all.find("rule 'oslo-all' is shadowed") == std::string::npos);
    CHECK(all.find("rule 'oslo-dialog-only' ") == std::string::npos);
    // 'keep' (receiver 9100110, after oslo-all) is shadowed as well.
    has("error: rule 'keep' is shadowed by rule 'oslo-all'");
}
