// Routing decisions. Reasons name rule ids, adapter names, HER-ids, message types and
// municipality numbers only, never message content.
#include "broker/router.hpp"

namespace broker::routing {

namespace {

bool type_matches(std::string_view pattern, std::string_view type) {
    if (!pattern.empty() && pattern.back() == '*')
        return type.substr(0, pattern.size() - 1) == pattern.substr(0, pattern.size() - 1);
    return pattern == type;
}

std::string join(const std::vector<std::string>& parts, const char* sep) {
    std::string out;
    for (const auto& p : parts) {
        if (!out.empty())
            out += sep;
        out += p;
    }
    return out;
}

std::string or_none(const std::string& s) { return s.empty() ? std::string("(none)") : s; }

struct evaluation {
    bool ok = false;
    std::string adapter;              ///< resolved destination when ok
    std::vector<std::string> why;     ///< failed conditions
    bool registry_without_adapter = false;
};

/// Evaluate one rule for a message whose lowest-level receiver is 'her' (party may be null).
evaluation evaluate(const rule& r, const rule_set& rules, const address_registry& reg, const message_facts& f,
                    const std::string& her, const store::party* party) {
    evaluation e;
    if (!r.receiver.empty() && her != r.receiver)
        e.why.push_back("receiver " + or_none(her) + " is not " + r.receiver);

    if (!r.receiver_ancestor.empty()) {
        auto line = reg.lineage(her);
        bool found = her == r.receiver_ancestor;
        std::vector<std::string> ids;
        for (const auto* p : line) {
            found = found || p->her_id == r.receiver_ancestor;
            ids.push_back(p->her_id);
        }
        if (!found) {
            if (!party)
                e.why.push_back("receiver " + or_none(her) + " is not " + r.receiver_ancestor +
                                " and is not in the registry (no ancestors known)");
            else
                e.why.push_back("receiver " + her + " and its ancestors (" + join(ids, " > ") + ") do not include " +
                                r.receiver_ancestor);
        }
    }

    if (!r.sender.empty()) {
        const std::string& low = f.sender.lowest_her();
        const std::string& l1 = f.sender.lvl1_her;
        if (low != r.sender && l1 != r.sender) {
            std::string s = "sender " + or_none(low);
            if (!l1.empty() && l1 != low)
                s += " (level 1: " + l1 + ")";
            e.why.push_back(s + " is not " + r.sender);
        }
    }

    if (!r.type.empty() && !type_matches(r.type, f.msg_type))
        e.why.push_back("type " + or_none(f.msg_type) + " does not match " + r.type);

    if (!r.municipality.empty()) {
        if (!party)
            e.why.push_back("receiver " + or_none(her) + " is not in the registry, so its municipality is unknown");
        else if (party->municipality.empty())
            e.why.push_back("receiver " + her + " has no municipality in the registry");
        else if (party->municipality != r.municipality)
            e.why.push_back("receiver " + her + " is in municipality " + party->municipality + ", not " +
                            r.municipality);
    }

    if (r.via_registry) {
        if (!party) {
            e.why.push_back("receiver " + or_none(her) + " is not in the registry, so it names no adapter");
        } else if (party->adapter.empty()) {
            e.why.push_back("receiver " + her + " names no adapter in the registry");
            e.registry_without_adapter = e.why.size() == 1;
        } else if (!rules.find_adapter(party->adapter)) {
            e.why.push_back("receiver " + her + " names adapter '" + party->adapter +
                            "' in the registry, which no rules file declares");
            e.registry_without_adapter = e.why.size() == 1;
        } else {
            e.adapter = party->adapter;
        }
    } else {
        e.adapter = r.adapter;
    }

    e.ok = e.why.empty();
    return e;
}

} // namespace

std::string receiver_her(const address_registry& reg, const message_facts& f, std::string* why) {
    const std::string& her = f.receiver.lowest_her();
    if (!her.empty())
        return her;
    const std::string& orgnr = f.receiver.lvl1_orgnr;
    if (orgnr.empty()) {
        if (why)
            *why = "the message names no receiver HER-id";
        return {};
    }
    auto found = reg.receivers_with_orgnr(orgnr);
    if (found.size() == 1)
        return found.front()->her_id;
    if (why)
        *why = "the message names no receiver HER-id, and organisation number " + orgnr + " names " +
               (found.empty() ? std::string("no receiving party") : std::to_string(found.size()) + " receiving parties") +
               " in the address registry";
    return {};
}

decision route(const rule_set& rules, const address_registry& reg, const message_facts& f) {
    decision d;
    std::string why;
    const std::string her = receiver_her(reg, f, &why);
    if (her.empty()) {
        d.k = decision::kind::unknown_receiver;
        d.reason = why;
        return d;
    }
    const store::party* party = reg.find(her);
    if (!party) {
        d.k = decision::kind::unknown_receiver;
        d.reason = "receiver HER-id " + her + " is not in the address registry";
        return d;
    }
    if (!party->active) {
        d.k = decision::kind::cannot_receive;
        d.reason = "receiver " + her + " is inactive in the address registry";
        return d;
    }
    if (!party->can_receive()) {
        d.k = decision::kind::cannot_receive;
        d.reason = "receiver " + her + " is " + (party->type == "organisation" ? "an " : "a ") +
                   (party->type.empty() ? std::string("party of unknown type") : party->type) +
                   "; only services and persons receive messages (address the lowest level)";
        return d;
    }

    std::vector<std::string> near_misses;
    for (const auto& r : rules.rules) {
        evaluation e = evaluate(r, rules, reg, f, her, party);
        if (e.ok) {
            d.k = decision::kind::routed;
            d.matched = &r;
            d.adapter = e.adapter;
            d.reason = "rule '" + r.id + "' matched: deliver to adapter '" + e.adapter + "'" +
                       (r.via_registry ? " (named by the registry for receiver " + her + ")" : "");
            return d;
        }
        if (e.registry_without_adapter)
            near_misses.push_back("rule '" + r.id + "' would deliver via the registry but " + e.why.front());
    }
    d.k = decision::kind::unroutable;
    d.reason = "no routing rule matches receiver " + her + " (type " + or_none(f.msg_type) + ", sender " +
               or_none(f.sender.lowest_her()) + "); " + std::to_string(rules.rules.size()) + " rules checked";
    if (!near_misses.empty())
        d.reason += "; " + join(near_misses, "; ");
    return d;
}

std::vector<std::pair<const rule*, std::string>> explain(const rule_set& rules, const address_registry& reg,
                                                         const message_facts& f) {
    std::vector<std::pair<const rule*, std::string>> out;
    const std::string her = receiver_her(reg, f);
    const store::party* party = her.empty() ? nullptr : reg.find(her);
    // Rules are only consulted for a receiver that can receive; say so on every line otherwise.
    std::string refused;
    if (her.empty())
        refused = "the message names no receiver HER-id";
    else if (!party)
        refused = "receiver " + her + " is not in the address registry";
    else if (!party->can_receive())
        refused = "receiver " + her + " cannot receive (" + party->type + (party->active ? "" : ", inactive") + ")";

    const rule* first = nullptr;
    for (const auto& r : rules.rules) {
        evaluation e = evaluate(r, rules, reg, f, her, party);
        std::string s;
        if (e.ok) {
            s = "matched, deliver to adapter '" + e.adapter + "'";
            if (first)
                s += "; not used: rule '" + first->id + "' comes first";
            else if (!refused.empty())
                s += "; not used: " + refused;
            else
                first = &r;
        } else {
            s = join(e.why, "; ");
        }
        out.emplace_back(&r, std::move(s));
    }
    return out;
}

} // namespace broker::routing
