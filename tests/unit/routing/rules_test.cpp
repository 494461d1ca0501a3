// Routing rules files: loading, ordering, and errors with file:line:col.
#include "routing_support.hpp"

using namespace broker;
using namespace broker::routing;
using routing_test::load;
using routing_test::rules_doc;

TEST_CASE("the demo rules load", "[rules][demo]") {
    auto r = load_rules((testing::source_dir() / "routing-rules").string());
    INFO((r ? std::string() : r.error().where()));
    REQUIRE(r.has_value());
    CHECK(r->adapters.size() == 4);
    for (const char* n : {"portal-inbox", "visma-oslo", "tieto-bergen", "dips-trondheim"})
        CHECK(r->find_adapter(n));
    REQUIRE(r->rules.size() == 5);
    CHECK(r->rules.front().id == "helsenorge");
    CHECK(r->rules.back().id == "via-registry");
    CHECK(r->rules.back().via_registry);
    for (std::size_t i = 1; i < r->rules.size(); ++i)
        CHECK(r->rules[i - 1].priority >= r->rules[i].priority);
    for (auto& rule : r->rules) {
        if (rule.id == "oslo-visma")
            CHECK(rule.options.at("apprec-version") == "1.0");
        if (rule.id == "bergen-tieto" || rule.id == "trondheim-dips")
            CHECK(rule.options.at("apprec-version") == "1.1");
    }
}

TEST_CASE("rules: every attribute and option is read", "[rules]") {
    testing::temp_dir dir;
    auto r = load(dir, {{"a.xml", rules_doc(R"(  <adapter name="visma-oslo" type="http-push">
    <option name="url" value="http://127.0.0.1:18081/visma-oslo"/>
    <option name="timeout-ms" value="5000"/>
  </adapter>
  <rule id="r1" priority="-5">
    <match receiver="1" receiver-or-ancestor="2" sender="3" type="DIALOG_*" municipality="0301"/>
    <deliver adapter="visma-oslo"/>
    <option name="apprec-version" value="1.1"/>
  </rule>
)")}});
    INFO((r ? std::string() : r.error().where()));
    REQUIRE(r.has_value());
    const auto& a = r->adapters.at(0);
    CHECK(a.name == "visma-oslo");
    CHECK(a.type == "http-push");
    CHECK(a.options.at("url") == "http://127.0.0.1:18081/visma-oslo");
    CHECK(a.options.at("timeout-ms") == "5000");
    CHECK(a.line == 3);
    const auto& x = r->rules.at(0);
    CHECK(x.id == "r1");
    CHECK(x.priority == -5);
    CHECK(x.receiver == "1");
    CHECK(x.receiver_ancestor == "2");
    CHECK(x.sender == "3");
    CHECK(x.type == "DIALOG_*");
    CHECK(x.municipality == "0301");
    CHECK(x.adapter == "visma-oslo");
    CHECK_FALSE(x.via_registry);
    CHECK(x.options.at("apprec-version") == "1.1");
    CHECK(x.line == 7);
    CHECK(std::filesystem::path(x.file).filename() == "a.xml");
}

TEST_CASE("rules: files load sorted by name; adapters may be declared in another file; order is "
          "priority then declaration",
          "[rules]") {
    testing::temp_dir dir;
    routing_test::write(dir.path(), "README.md", "not a rules file");
    auto r = load(dir, {{"b.xml", rules_doc("  <rule id=\"b1\" priority=\"10\"><deliver adapter=\"x\"/></rule>\n"
                                            "  <rule id=\"b2\" priority=\"50\"><deliver adapter=\"x\"/></rule>\n")},
                        {"a.xml", rules_doc("  <rule id=\"a1\" priority=\"10\"><deliver adapter=\"x\"/></rule>\n"
                                            "  <rule id=\"a2\" priority=\"10\"><deliver via=\"registry\"/></rule>\n")},
                        {"c.xml", rules_doc("  <adapter name=\"x\" type=\"pull\"/>\n")}});
    INFO((r ? std::string() : r.error().where()));
    REQUIRE(r.has_value());
    std::vector<std::string> ids;
    for (auto& x : r->rules)
        ids.push_back(x.id);
    CHECK(ids == std::vector<std::string>{"b2", "a1", "a2", "b1"});
}

TEST_CASE("rules: errors carry file:line:col", "[rules][errors]") {
    testing::temp_dir dir;
    auto file = [&](const char* n) { return (dir.path() / n).string(); };

    SECTION("malformed xml") {
        auto r = load(dir, {{"a.xml", rules_doc("  <adapter name=\"x\" type=\"pull\"/>\n"
                                                "  <rule id=\"a\" priority=\"1\">\n    <deliver adapter=\"x\"/>\n"
                                                "  </rul>\n")}});
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == "rules.invalid");
        CHECK(r.error().file == file("a.xml"));
        CHECK(r.error().line == 6);
        CHECK(r.error().column > 1);
        CHECK(r.error().message.rfind("malformed xml", 0) == 0);
    }
    SECTION("schema violation: unknown element") {
        auto r = load(dir, {{"a.xml", rules_doc("  <adapter name=\"x\" type=\"pull\"/>\n  <frobnicate/>\n")}});
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().line == 4);
        CHECK(r.error().column == 3);
        CHECK(r.error().message.rfind("schema violation", 0) == 0);
        CHECK(r.error().message.find("frobnicate") != std::string::npos);
        CHECK(r.error().where().rfind(file("a.xml") + ":4:3: schema violation", 0) == 0);
    }
    SECTION("schema violation: missing attribute") {
        auto r = load(dir, {{"a.xml", rules_doc("  <adapter name=\"x\" type=\"pull\"/>\n"
                                                "  <rule priority=\"1\">\n    <deliver adapter=\"x\"/>\n  </rule>\n")}});
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().line == 4);
        CHECK(r.error().column == 3);
        CHECK(r.error().message.find("id") != std::string::npos);
    }
    SECTION("schema violation: bad HER-id in match") {
        auto r = load(dir, {{"a.xml", rules_doc("  <adapter name=\"x\" type=\"pull\"/>\n"
                                                "  <rule id=\"a\" priority=\"1\">\n    <match receiver=\"12ab\"/>\n"
                                                "    <deliver adapter=\"x\"/>\n  </rule>\n")}});
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().line == 5);
        CHECK(r.error().column == 5);
    }
    SECTION("wrong namespace") {
        auto r = load(dir, {{"a.xml", "<routing-rules>\n  <rule id=\"a\" priority=\"1\"/>\n</routing-rules>\n"}});
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().line == 1);
        CHECK(r.error().message.rfind("schema violation", 0) == 0);
    }
    SECTION("unknown adapter reference") {
        auto r = load(dir, {{"a.xml", rules_doc("  <rule id=\"a\" priority=\"1\">\n    <deliver adapter=\"nowhere\"/>\n"
                                                "  </rule>\n")}});
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().where() ==
              file("a.xml") + ":4:5: rule 'a' delivers to adapter 'nowhere', which no rules file declares");
    }
    SECTION("duplicate rule id, across files") {
        auto r = load(dir, {{"a.xml", rules_doc("  <adapter name=\"x\" type=\"pull\"/>\n"
                                                "  <rule id=\"same\" priority=\"1\"><deliver adapter=\"x\"/></rule>\n")},
                            {"b.xml", rules_doc("\n  <rule id=\"same\" priority=\"2\"><deliver adapter=\"x\"/></rule>\n")}});
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().where() ==
              file("b.xml") + ":4:3: duplicate rule id 'same' (first declared at " + file("a.xml") + ":4)");
    }
    SECTION("duplicate adapter name") {
        auto r = load(dir, {{"a.xml", rules_doc("  <adapter name=\"x\" type=\"pull\"/>\n"
                                                "  <adapter name=\"x\" type=\"http-push\">\n"
                                                "    <option name=\"url\" value=\"http://127.0.0.1:1/\"/>\n"
                                                "  </adapter>\n")}});
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().where() ==
              file("a.xml") + ":4:3: duplicate adapter name 'x' (first declared at " + file("a.xml") + ":3)");
    }
    SECTION("a rule with neither adapter nor via") {
        auto r = load(dir, {{"a.xml", rules_doc("  <rule id=\"a\" priority=\"1\">\n    <deliver/>\n  </rule>\n")}});
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().where() == file("a.xml") + ":4:5: rule 'a' has neither adapter nor via=\"registry\" in deliver");
    }
    SECTION("a rule with both adapter and via") {
        auto r = load(dir, {{"a.xml", rules_doc("  <adapter name=\"x\" type=\"pull\"/>\n  <rule id=\"a\" priority=\"1\">"
                                                "<deliver adapter=\"x\" via=\"registry\"/></rule>\n")}});
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().line == 4);
        CHECK(r.error().column == 29);
        CHECK(r.error().message.find("both adapter and via") != std::string::npos);
    }
    SECTION("invalid priority") {
        for (const char* p : {"high", "1.5", "", "99999999999", "2000000"}) {
            testing::temp_dir d;
            auto r = load(d, {{"a.xml", rules_doc(std::string("  <rule id=\"a\" priority=\"") + p +
                                                  "\"><deliver via=\"registry\"/></rule>\n")}});
            INFO(p);
            REQUIRE_FALSE(r.has_value());
            CHECK(r.error().line == 3);
            CHECK(r.error().column == 3);
            CHECK(r.error().message.find("invalid priority") != std::string::npos);
        }
    }
    SECTION("duplicate option") {
        auto r = load(dir, {{"a.xml", rules_doc("  <rule id=\"a\" priority=\"1\"><deliver via=\"registry\"/>\n"
                                                "    <option name=\"o\" value=\"1\"/>\n"
                                                "    <option name=\"o\" value=\"2\"/></rule>\n")}});
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().line == 5);
        CHECK(r.error().column == 5);
        CHECK(r.error().message == "duplicate option 'o' in rule 'a'");
    }
    SECTION("a DTD is refused") {
        auto r = load(dir, {{"a.xml", "<?xml version=\"1.0\"?>\n<!DOCTYPE routing-rules SYSTEM \"http://127.0.0.1:9/x.dtd\">\n"
                                      "<routing-rules xmlns=\"urn:edibroker:routing-rules:1\"/>\n"}});
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().line == 2);
        CHECK(r.error().message.find("DTD") != std::string::npos);
    }
    SECTION("a directory without rules files") {
        routing_test::write(dir.path(), "README.md", "x");
        auto r = load_rules(dir.path().string());
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().message.find("no rules files") != std::string::npos);
    }
    SECTION("a missing directory") {
        auto r = load_rules((dir.path() / "nope").string());
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == "rules.unreadable");
    }
}

TEST_CASE("rules: positions are right after multi-byte characters", "[rules][errors]") {
    testing::temp_dir dir;
    // A comment with æøå before the offending element on the same line.
    auto r = load(dir, {{"a.xml", rules_doc("  <!-- Grünerløkka æøå --><rule id=\"a\" priority=\"1\">"
                                            "<deliver adapter=\"nowhere\"/></rule>\n")}});
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().line == 3);
    CHECK(r.error().column == 53);
}
