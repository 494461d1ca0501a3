// The analysis behind `edibroker routes check` (see routes.cpp for what it reports), apart from
// the command so tests can run it with their own adapter factories.
#pragma once

#include "broker/adapter.hpp"
#include "broker/router.hpp"

#include <string>
#include <vector>

namespace broker::tools {

struct route_finding {
    bool error = true;   ///< false: a warning
    std::string where;   ///< "file:line" (or the registry file)
    std::string text;
};

/// Check loaded rules against the registry and the adapter types available.
/// 'registry_name' names the registry in findings about parties.
std::vector<route_finding> check_routes(const routing::rule_set& rules, const routing::address_registry& reg,
                                        const adapter_registry& factories, const std::string& data_dir,
                                        const std::string& registry_name);

} // namespace broker::tools
