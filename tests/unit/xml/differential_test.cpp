// edibroker's schemas against the official KITH schemas and the recorded verdicts, per sample.
#include "xml_test_util.hpp"

#include <catch2/catch.hpp>

#include <cstdio>

using broker::xml::verdict;

TEST_CASE("every interop message gets the official verdict", "[xml][differential]") {
    if (!testing::have_interop()) {
        WARN("shared/interop is absent; differential test skipped");
        return;
    }
    const auto recorded = xmltest::recorded_verdicts();
    const auto samples = xmltest::message_samples();
    REQUIRE(samples.size() >= 30);
    for (const auto& rel : samples) {
        const std::string doc = xmltest::sample(rel);
        auto ours = xmltest::v().validate(doc, rel);
        auto official = testing::official_verdict(doc);
        const bool ours_valid = ours.v == verdict::valid;
        INFO(rel << "\n  ours: " << broker::xml::apprec_code(ours.v)
                 << (ours.diagnostics.empty() ? std::string() : " " + ours.diagnostics[0].message)
                 << "\n  official: " << official.first_error);
        auto it = recorded.find(rel);
        REQUIRE(it != recorded.end());
        CHECK(official.valid == it->second);
        CHECK(ours_valid == it->second);
        CHECK(ours_valid == official.valid);
        // An invalid message is never "valid with a complaint", and a valid one has no diagnostics.
        CHECK(ours.diagnostics.empty() == ours_valid);
    }
}

// Not run by default: prints the verdict table (`test_xml "[table]"`).
TEST_CASE("verdict table", "[.][table]") {
    if (!testing::have_interop())
        return;
    const auto recorded = xmltest::recorded_verdicts();
    for (const auto& rel : xmltest::message_samples()) {
        const std::string doc = xmltest::sample(rel);
        auto ours = xmltest::v().validate(doc, rel);
        auto official = testing::official_verdict(doc);
        auto it = recorded.find(rel);
        std::printf("%-4s %-8s %-8s %s\n", ours.v == verdict::valid ? "ok" : broker::xml::apprec_code(ours.v),
                    official.valid ? "VALID" : "INVALID",
                    it == recorded.end() ? "?" : (it->second ? "VALID" : "INVALID"), rel.c_str());
        if (!ours.diagnostics.empty())
            std::printf("        %d:%d %s\n", ours.diagnostics[0].line, ours.diagnostics[0].column,
                        ours.diagnostics[0].message.c_str());
    }
}
