// Not run by default: per-message cost of validate() (`test_xml "[bench]"`), to compare with
// limits.md (SAX + validation of a ~4 KB message: 73 us simplified schemas, 90 us official).
#include "xml_test_util.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>

TEST_CASE("validate() cost per message", "[.][bench]") {
    if (!testing::have_interop())
        return;
    for (const char* rel : {"fiks-nhn-client/msh-client/src/test/resources/dialogmelding/1.0/foresporsel-og-svar/"
                            "dialog-notat-webmed-test.xml",
                            "Helsenorge.Messaging/Examples/SimpleSender/DIALOG_INNBYGGER_EKONTAKT.xml",
                            "fiks-nhn-client/msh-client/src/test/resources/app-rec/1.1/example-avvist.xml",
                            "padm2/src/test/resources/dialogmelding_kiropraktor.xml"}) {
        const std::string doc = xmltest::sample(rel);
        auto& v = xmltest::v();
        for (int i = 0; i < 200; ++i)
            (void)v.validate(doc);
        for (bool validating : {true, false}) {
            const int n = 5000;
            auto t0 = std::chrono::steady_clock::now();
            for (int i = 0; i < n; ++i) {
                auto r = validating ? v.validate(doc) : v.parse_only(doc);
                if (r.facts.msg_id.empty())
                    std::printf("?");
            }
            double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / n;
            std::printf("%-10s %6zu bytes %7.1f us/msg  %s\n", validating ? "validate" : "parse_only", doc.size(), us, rel);
        }
    }
}
