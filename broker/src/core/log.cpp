#include "broker/log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <unistd.h>

namespace broker::log {
namespace {
std::atomic<int> g_level{static_cast<int>(level::info)};

const char* name(level l) {
    switch (l) {
    case level::debug: return "debug";
    case level::info: return "info";
    case level::warn: return "warn";
    case level::error: return "error";
    default: return "off";
    }
}

/// 's' as a JSON string. Two lines are written per message, so this avoids the temporaries of
/// building a json::string to serialize it (issue 3's profile). UTF-8 passes through unchanged;
/// quote, backslash and control characters are escaped.
void append_quoted(std::string& out, std::string_view s) {
    static constexpr char hex[] = "0123456789abcdef";
    out += '"';
    std::size_t plain = 0;  // start of the run of characters not yet appended
    for (std::size_t i = 0; i < s.size(); ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        out.append(s.data() + plain, i - plain);
        plain = i + 1;
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
            out += "\\u00";
            out += hex[c >> 4];
            out += hex[c & 0xf];
        }
    }
    out.append(s.data() + plain, s.size() - plain);
    out += '"';
}
} // namespace

void set_level(level l) { g_level.store(static_cast<int>(l)); }
level get_level() { return static_cast<level>(g_level.load()); }

bool parse_level(std::string_view s, level& out) {
    for (level l : {level::debug, level::info, level::warn, level::error, level::off}) {
        if (s == name(l)) {
            out = l;
            return true;
        }
    }
    return false;
}

std::string format_line(level l, std::string_view event, std::initializer_list<field> fields) {
    using namespace std::chrono;
    auto now = system_clock::now();
    std::time_t t = system_clock::to_time_t(now);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char ts[64];
    auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
    std::snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
    std::string line;
    line.reserve(256);
    line += "{\"ts\":\"";
    line += ts;
    line += "\",\"level\":\"";
    line += name(l);
    line += "\",\"event\":";
    append_quoted(line, event);
    for (auto& [k, v] : fields) {
        line += ',';
        append_quoted(line, k);
        line += ':';
        append_quoted(line, v);
    }
    line += "}\n";
    return line;
}

void emit(level l, std::string_view event, std::initializer_list<field> fields) {
    if (static_cast<int>(l) < g_level.load(std::memory_order_relaxed))
        return;
    const std::string line = format_line(l, event, fields);
    // One write per line so concurrent threads do not interleave within a line.
    ssize_t r = ::write(2, line.data(), line.size());
    (void)r;
}

} // namespace broker::log
