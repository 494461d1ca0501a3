// Structured logging: one JSON object per line on stderr. Log ids, HER-ids, types and states;
// never message content (patient data).
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace broker::log {

enum class level { debug = 0, info = 1, warn = 2, error = 3, off = 4 };

void set_level(level l);
level get_level();
/// Parse "debug|info|warn|error|off".
bool parse_level(std::string_view s, level& out);

using field = std::pair<std::string_view, std::string_view>;

/// Emit {"ts":...,"level":...,"event":event, fields...}. Thread-safe, one write(2) per line.
void emit(level l, std::string_view event, std::initializer_list<field> fields = {});
/// The line emit writes (with its newline), whatever the level in force.
std::string format_line(level l, std::string_view event, std::initializer_list<field> fields);

inline void debug(std::string_view e, std::initializer_list<field> f = {}) { emit(level::debug, e, f); }
inline void info(std::string_view e, std::initializer_list<field> f = {}) { emit(level::info, e, f); }
inline void warn(std::string_view e, std::initializer_list<field> f = {}) { emit(level::warn, e, f); }
inline void error(std::string_view e, std::initializer_list<field> f = {}) { emit(level::error, e, f); }

} // namespace broker::log
