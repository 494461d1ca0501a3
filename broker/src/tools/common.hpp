// Shared by the operator commands of the command line (replay, routes, registry, messages,
// store): option parsing, the configuration as `serve` builds it, opening the store, and plain
// text tables.
#pragma once

#include "broker/error.hpp"
#include "broker/router.hpp"
#include "broker/server.hpp"
#include "broker/store.hpp"

#include <map>
#include <memory>
#include <ostream>
#include <set>
#include <string>
#include <vector>

namespace broker::tools {

/// Command-line arguments of one command: positional arguments, options with values (an option
/// given twice keeps both, in order), and flags.
struct args {
    std::vector<std::string> positional;
    std::map<std::string, std::vector<std::string>> values;
    std::set<std::string> flags;

    bool has(const std::string& o) const { return values.count(o) || flags.count(o); }
    /// The last value of an option, or 'def'.
    std::string get(const std::string& o, const std::string& def = "") const;
};

/// Options that every command reading the configuration takes: --config FILE, --data-dir DIR,
/// --rules DIR, --registry FILE, --set KEY=VALUE.
extern const std::set<std::string> config_options;

/// Parse 'argv' (after the command words). 'with_value' lists options taking a value ("--to"),
/// 'flags' those without. Anything else starting with "--" is an error (usage.invalid).
result<args> parse_args(int argc, char** argv, const std::set<std::string>& with_value,
                        const std::set<std::string>& flags);

/// The configuration as `serve` builds it: defaults, then --config FILE, then --data-dir,
/// --rules, --registry and each --set. Tools log at warn unless --set log-level=... says otherwise.
result<config> load_config(const args& a);

/// Open the store of 'c' (data-dir/edibroker.db), creating or migrating it like the server.
result<std::unique_ptr<store::store>> open_store(const config& c);

/// The registry for routing decisions: the registry file of 'c' when it names one, else the
/// parties stored in 'st' (when given).
result<routing::address_registry> load_registry(const config& c, store::store* st);

/// Print rows as columns separated by two spaces (the first row is the header).
void print_table(std::ostream& os, const std::vector<std::vector<std::string>>& rows);

/// Read a whole file; error (tools.unreadable) with the path.
result<std::string> read_file(const std::string& path);

/// "edibroker: message" on stderr; returns 'code'.
int fail(const std::string& message, int code = 1);
int fail(const error& e, int code = 1);

} // namespace broker::tools
