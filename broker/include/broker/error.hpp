// Error values used across edibroker. Expected failures travel as values (result<T>), never as
// exceptions across a subsystem or adapter boundary.
#pragma once

#include <boost/system/result.hpp>

#include <string>
#include <string_view>
#include <utility>

namespace broker {

/// An expected failure: a stable machine code, a human message, and where it was found when it
/// comes from a file (rules file, registry file, message file).
struct error {
    std::string code;     ///< e.g. "T02", "E21", "store.io", "rules.invalid", "config.invalid"
    std::string message;  ///< starts lower-case, no trailing period, never contains patient data
    std::string file;     ///< optional
    int line = 0;         ///< 1-based, 0 = unknown
    int column = 0;       ///< 1-based, 0 = unknown

    error() = default;
    error(std::string c, std::string m) : code(std::move(c)), message(std::move(m)) {}
    error(std::string c, std::string m, std::string f, int l, int col)
        : code(std::move(c)), message(std::move(m)), file(std::move(f)), line(l), column(col) {}

    /// "file:line:col: message" when a file is known, else "code: message".
    std::string where() const {
        if (!file.empty())
            return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
        return code + ": " + message;
    }
};

/// A value an operator wrote (an option, a URL), for an error message: in single quotes, cut after
/// 80 characters ("...'"). Built by appending: GCC 12 warns about "'" + std::string(...)
/// (-Wrestrict, a false positive) in optimised builds.
inline std::string quoted_value(std::string_view v) {
    std::string s(1, '\'');
    s.append(v.substr(0, 80));
    s.append(v.size() > 80 ? "...'" : "'");
    return s;
}

template <class Os>
Os& operator<<(Os& os, const error& e) {
    os << e.where();
    return os;
}

template <class T>
using result = boost::system::result<T, error>;

/// Needed by boost::system::result<T, error>::value() when it holds an error.
[[noreturn]] void throw_exception_from_error(error const& e, boost::source_location const& loc);

} // namespace broker
