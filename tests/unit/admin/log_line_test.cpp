// The structured log line: valid JSON whatever the field values hold.
#include "broker/log.hpp"

#include <boost/json/parse.hpp>

#include <catch2/catch.hpp>

#include <string>

namespace json = boost::json;

TEST_CASE("log lines are JSON objects; quotes, backslashes and control characters are escaped", "[unit][log]") {
    const std::string tricky[] = {
        "plain",
        "",
        "quote \" and backslash \\ inside",
        "new\nline, tab\t, return\r, bell\x07, nul" + std::string(1, '\0') + "end",
        "UTF-8 passes through: \xc3\xa6\xc3\xb8\xc3\xa5 \xe2\x82\xac",
        "\x1f\x01",
    };
    for (const auto& v : tricky) {
        INFO(v);
        std::string line = broker::log::format_line(broker::log::level::warn, "test.event", {{"id", "abc"}, {"value", v}});
        REQUIRE(line.size() > 1);
        CHECK(line.back() == '\n');
        CHECK(line.find('\n') == line.size() - 1);  // one line, whatever the value holds
        json::error_code ec;
        json::value parsed = json::parse(line, ec);
        REQUIRE_FALSE(ec);
        const json::object& o = parsed.as_object();
        CHECK(o.at("level").as_string() == "warn");
        CHECK(o.at("event").as_string() == "test.event");
        CHECK(o.at("id").as_string() == "abc");
        CHECK(std::string(o.at("value").as_string()) == v);
        CHECK(o.at("ts").as_string().size() == 24);  // 2026-12-04T18:44:04.123Z
    }
}
