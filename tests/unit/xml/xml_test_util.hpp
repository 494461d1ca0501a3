// Helpers shared by the tests of broker/src/xml.
#pragma once

#include "official_validator.hpp"
#include "test_paths.hpp"

#include <broker/xml.hpp>

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace xmltest {

/// The message samples under interop_dir() (registry responses and SOAP faults skipped), as paths
/// relative to interop_dir(), sorted.
inline std::vector<std::string> message_samples() {
    std::vector<std::string> out;
    const auto root = testing::interop_dir();
    for (const auto& e : std::filesystem::recursive_directory_iterator(root)) {
        if (!e.is_regular_file() || e.path().extension() != ".xml")
            continue;
        const std::string name = e.path().filename().string();
        if (name.rfind("CPP_", 0) == 0 || name.rfind("CPA_", 0) == 0 ||
            name.rfind("CommunicationDetails", 0) == 0 || name.rfind("GetCertificateDetails", 0) == 0 ||
            name.rfind("get-communication-party-", 0) == 0 || name == "SoapFault.xml")
            continue;
        out.push_back(std::filesystem::relative(e.path(), root).generic_string());
    }
    std::sort(out.begin(), out.end());
    return out;
}

/// validation/results.txt: relative path -> VALID (true) / INVALID (false).
inline std::map<std::string, bool> recorded_verdicts() {
    std::map<std::string, bool> m;
    std::ifstream in(testing::interop_dir() / "validation" / "results.txt");
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#')
            continue;
        auto sp = line.find(' ');
        if (sp == std::string::npos)
            continue;
        m[line.substr(0, sp)] = line.find("] VALID") != std::string::npos;
    }
    return m;
}

inline std::string sample(const std::string& rel) { return testing::read_file(testing::interop_dir() / rel); }

inline broker::xml::validator& v() { return broker::xml::thread_validator(); }

/// A validator made from 's' (tests that compare the validator's own checks with Xerces' keep one
/// in a static); throws, failing the test, when the schemas do not load.
inline std::unique_ptr<broker::xml::validator> validator_with(const broker::xml::schema_source& s) {
    auto r = broker::xml::make_validator(s);
    if (!r)
        throw std::runtime_error("the schemas do not load: " + r.error().where());
    return std::move(*r);
}

/// The validator with one of its own checks left to Xerces (the schema_source flag set), made
/// once: the tests that compare the two give it the same documents as v().
template <bool broker::xml::schema_source::*Flag>
broker::xml::validator& with_xerces_check() {
    static const auto v = [] {
        broker::xml::schema_source s;
        s.*Flag = true;
        return validator_with(s);
    }();
    return *v;
}

/// Two validations of one document give the same verdict and the same diagnostics: text, line
/// and column of each.
inline void require_same_diagnostics(const broker::xml::validation_result& x, const broker::xml::validation_result& o) {
    REQUIRE(x.v == o.v);
    REQUIRE(x.diagnostics.size() == o.diagnostics.size());
    for (std::size_t i = 0; i < x.diagnostics.size(); ++i) {
        CHECK(x.diagnostics[i].message == o.diagnostics[i].message);
        CHECK(x.diagnostics[i].line == o.diagnostics[i].line);
        CHECK(x.diagnostics[i].column == o.diagnostics[i].column);
    }
}

} // namespace xmltest
