// Checks the reference validator (tests/support/official_validator) against validation/results.txt.
#include "official_validator.hpp"
#include "test_paths.hpp"

#include <catch2/catch.hpp>

#include <fstream>
#include <map>

TEST_CASE("official validator agrees with validation/results.txt", "[xml][official]") {
    if (!testing::have_interop()) {
        WARN("interop samples absent; skipped");
        return;
    }
    std::ifstream in(testing::interop_dir() / "validation" / "results.txt");
    std::string line;
    int n = 0;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#')
            continue;
        auto sp = line.find(' ');
        auto path = line.substr(0, sp);
        bool expect_valid = line.find("] VALID") != std::string::npos;
        auto r = testing::official_verdict(testing::read_file(testing::interop_dir() / path));
        INFO(path << " -> " << r.first_error);
        CHECK(r.valid == expect_valid);
        ++n;
    }
    CHECK(n > 30);
}
