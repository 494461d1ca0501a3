// `edibroker routes check [DIR]` and `edibroker routes explain FILE...`.
//
// check: the rules load (schema, references; file:line:col on error), every adapter type exists
// and takes its options, and then, against the registry in force:
//   error    a rule that can never match (its receiver is unknown or cannot receive, no receiving
//            party lies under its receiver-or-ancestor / in its municipality, via="registry" with
//            no such party naming a declared adapter);
//   error    a rule shadowed by an earlier one (every message it could match is taken first);
//   error    a rule sending a type to an adapter that takes none of it;
//   warning  a rule matching more types than its adapter takes (the rest are refused with T10),
//            an adapter no rule uses, a party naming an adapter no rules file declares.
// Exit 0 without errors (warnings too with --strict), 1 otherwise.
#include "admin/ops.hpp"
#include "broker/adapter.hpp"
#include "broker/xml.hpp"
#include "tools/commands.hpp"
#include "tools/routes_check.hpp"
#include "tools/common.hpp"

#include <boost/json/serialize.hpp>

#include <iostream>
#include <set>

namespace broker::tools {

namespace json = boost::json;

namespace {

constexpr const char* usage = R"(usage: edibroker routes check [DIR] [--strict] [--config FILE] [--registry FILE]
       edibroker routes explain FILE... [--json] [--config FILE] [--rules DIR] [--registry FILE]

check    validate the rules (DIR, else rules-dir of the configuration) and look for rules that can
         never match, rules shadowed by earlier ones, and routes to adapters that cannot take the
         message types they match
explain  for each message file: which rule matched, and why each of the others did not
)";

bool type_covers(const std::string& a, const std::string& b) {
    // Does pattern 'a' match every type pattern 'b' matches? ('*' suffix = prefix)
    if (a.empty())
        return true;
    if (b.empty())
        return false;
    bool ap = a.back() == '*', bp = b.back() == '*';
    std::string ab = ap ? a.substr(0, a.size() - 1) : a;
    std::string bb = bp ? b.substr(0, b.size() - 1) : b;
    if (!ap)
        return !bp && ab == bb;
    return bb.rfind(ab, 0) == 0;
}

bool types_overlap(const std::string& a, const std::string& b) { return type_covers(a, b) || type_covers(b, a); }

/// Receiving parties a rule's receiver conditions allow (receiver, receiver-or-ancestor,
/// municipality), and for via="registry" only those naming a declared adapter.
std::vector<const store::party*> candidates(const routing::rule& r, const routing::rule_set& rules,
                                            const routing::address_registry& reg) {
    std::vector<const store::party*> out;
    for (auto& [her, p] : reg.all()) {
        if (!p.can_receive())
            continue;
        if (!r.receiver.empty() && her != r.receiver)
            continue;
        if (!r.receiver_ancestor.empty()) {
            bool found = false;
            for (auto* x : reg.lineage(her))
                found = found || x->her_id == r.receiver_ancestor;
            if (!found)
                continue;
        }
        if (!r.municipality.empty() && p.municipality != r.municipality)
            continue;
        if (r.via_registry && (p.adapter.empty() || !rules.find_adapter(p.adapter)))
            continue;
        out.push_back(&p);
    }
    return out;
}

std::string never_reason(const routing::rule& r, const routing::address_registry& reg) {
    if (!r.receiver.empty()) {
        const store::party* p = reg.find(r.receiver);
        if (!p)
            return "receiver " + r.receiver + " is not in the registry (such messages are rejected E21 first)";
        if (!p->can_receive())
            return "receiver " + r.receiver + " is " +
                   (p->active ? (p->type == "organisation" ? "an " : "a ") + p->type : std::string("inactive")) +
                   "; only active services and persons receive (such messages are rejected E21 first)";
    }
    if (!r.receiver_ancestor.empty() && !reg.find(r.receiver_ancestor))
        return "receiver-or-ancestor " + r.receiver_ancestor + " is not in the registry";
    std::string scope;
    if (!r.receiver.empty())
        scope = "receiver " + r.receiver;
    if (!r.receiver_ancestor.empty())
        scope += (scope.empty() ? "" : ", ") + std::string("under ") + r.receiver_ancestor;
    if (!r.municipality.empty())
        scope += (scope.empty() ? "" : ", ") + std::string("in municipality ") + r.municipality;
    if (r.via_registry)
        return "no receiving party" + (scope.empty() ? std::string() : " (" + scope + ")") +
               " names an adapter that a rules file declares, so via=\"registry\" never delivers";
    return "no receiving party in the registry is " + scope;
}

} // namespace

std::vector<route_finding> check_routes(const routing::rule_set& rules, const routing::address_registry& reg,
                                        const adapter_registry& factories, const std::string& data_dir,
                                        const std::string& registry_name) {
    std::vector<route_finding> out;
    auto at = [](const std::string& file, int line) { return file + ":" + std::to_string(line); };

    if (auto plan = ops::retention_plan(rules, {}, 0, 0); !plan)
        out.push_back({true, at(plan.error().file, plan.error().line), plan.error().message});

    std::map<std::string, capabilities> caps;
    for (auto& inst : rules.adapters) {
        const adapter_factory* f = factories.find(inst.type);
        if (!f) {
            std::string known;
            for (auto& t : factories.types())
                known += (known.empty() ? "" : ", ") + t;
            out.push_back({true, at(inst.file, inst.line),
                           "adapter '" + inst.name + "' has unknown type '" + inst.type + "' (known: " + known + ")"});
            continue;
        }
        adapter_config ac;
        ac.name = inst.name;
        ac.type = inst.type;
        ac.options = inst.options;
        ac.data_dir = data_dir;
        if (auto r = f->check(ac); !r)
            out.push_back({true, at(inst.file, inst.line), "adapter '" + inst.name + "': " + r.error().message});
        caps[inst.name] = f->caps(ac);
    }

    std::set<std::string> used;
    std::vector<std::vector<const store::party*>> cand;
    for (auto& r : rules.rules)
        cand.push_back(candidates(r, rules, reg));
    for (std::size_t i = 0; i < rules.rules.size(); ++i) {
        const routing::rule& r = rules.rules[i];
        const std::string w = at(r.file, r.line);
        if (r.via_registry) {
            for (auto* p : cand[i])
                used.insert(p->adapter);
        } else {
            used.insert(r.adapter);
        }
        if (cand[i].empty()) {
            out.push_back({true, w, "rule '" + r.id + "' can never match: " + never_reason(r, reg)});
            continue;
        }
        // Shadowed: an earlier rule takes every message this one could match.
        for (std::size_t j = 0; j < i; ++j) {
            const routing::rule& e = rules.rules[j];
            if (cand[j].empty() || !type_covers(e.type, r.type) || !(e.sender.empty() || e.sender == r.sender))
                continue;
            std::set<const store::party*> earlier(cand[j].begin(), cand[j].end());
            bool all = true;
            for (auto* p : cand[i])
                all = all && earlier.count(p);
            if (all) {
                out.push_back({true, w, "rule '" + r.id + "' is shadowed by rule '" + e.id + "' (" + at(e.file, e.line) +
                                            ", priority " + std::to_string(e.priority) +
                                            "): every message it could match is taken there first"});
                break;
            }
        }
        // The adapter must take what the rule sends it.
        auto check_adapter = [&](const std::string& name, const std::string& why) {
            auto it = caps.find(name);
            if (it == caps.end() || it->second.msg_types.empty())
                return;
            std::string list;
            bool any = false, covered = false;
            for (auto& t : it->second.msg_types) {
                list += (list.empty() ? "" : ", ") + t;
                any = any || r.type.empty() || types_overlap(t, r.type);
                covered = covered || type_covers(t, r.type);
            }
            if (!any)
                out.push_back({true, w, "rule '" + r.id + "' sends type " + r.type + " to adapter '" + name + "'" + why +
                                            ", which takes only " + list});
            else if (!covered)
                out.push_back({false, w, "rule '" + r.id + "' matches " +
                                             (r.type.empty() ? std::string("every message type") : "type " + r.type) +
                                             " but adapter '" + name + "'" + why + " takes only " + list +
                                             "; other types are refused with T10"});
        };
        if (r.via_registry) {
            std::set<std::string> names;
            for (auto* p : cand[i])
                names.insert(p->adapter);
            for (auto& n : names)
                check_adapter(n, " (named by the registry)");
        } else {
            check_adapter(r.adapter, "");
        }
    }
    for (auto& inst : rules.adapters)
        if (!used.count(inst.name))
            out.push_back({false, at(inst.file, inst.line), "adapter '" + inst.name + "' is used by no rule"});
    for (auto& [her, p] : reg.all())
        if (!p.adapter.empty() && !rules.find_adapter(p.adapter))
            out.push_back({false, registry_name,
                           "party " + her + " names adapter '" + p.adapter + "', which no rules file declares"});

    return out;
}

namespace {

int check(const args& a) {
    auto c = load_config(a);
    if (!c)
        return fail(c.error());
    std::string dir = a.positional.size() > 1 ? a.positional[1] : c->rules_dir;
    auto rules = routing::load_rules(dir);
    if (!rules) {
        std::cerr << rules.error().where() << "\n";
        return 1;
    }
    std::unique_ptr<store::store> st;
    if (c->registry_file.empty()) {
        auto s = open_store(*c);
        if (!s)
            return fail(s.error());
        st = std::move(*s);
    }
    auto reg = load_registry(*c, st.get());
    if (!reg)
        return fail(reg.error());
    adapter_registry factories;
    register_builtin_adapters(factories);

    auto out = check_routes(*rules, *reg, factories, c->data_dir,
                            c->registry_file.empty() ? "registry" : c->registry_file);
    std::size_t errors = 0, warnings = 0;
    for (auto& f : out) {
        (f.error ? errors : warnings)++;
        std::cout << f.where << ": " << (f.error ? "error" : "warning") << ": " << f.text << "\n";
    }
    std::cout << "routes check: " << rules->rules.size() << " rules, " << rules->adapters.size() << " adapters, "
              << reg->size() << " parties: " << errors << (errors == 1 ? " error, " : " errors, ") << warnings
              << (warnings == 1 ? " warning" : " warnings") << "\n";
    return errors || (warnings && a.flags.count("--strict")) ? 1 : 0;
}

int explain(const args& a) {
    if (a.positional.size() < 2)
        return std::cerr << "edibroker routes explain: give at least one message file\n\n" << usage, 2;
    auto c = load_config(a);
    if (!c)
        return fail(c.error());
    auto rules = routing::load_rules(c->rules_dir);
    if (!rules)
        return fail(rules.error());
    std::unique_ptr<store::store> st;
    if (c->registry_file.empty()) {
        auto s = open_store(*c);
        if (!s)
            return fail(s.error());
        st = std::move(*s);
    }
    auto reg = load_registry(*c, st.get());
    if (!reg)
        return fail(reg.error());
    xml::platform_init();
    auto v = xml::make_validator();
    if (!v)
        return fail(v.error());
    int rc = 0;
    for (std::size_t i = 1; i < a.positional.size(); ++i) {
        const std::string& path = a.positional[i];
        auto doc = read_file(path);
        if (!doc) {
            rc = 1;
            std::cerr << path << ": " << doc.error().message << "\n";
            continue;
        }
        auto vr = (*v)->validate(*doc, path);
        json::object e = ops::explain_json(*rules, *reg, vr);
        if (a.flags.count("--json")) {
            e["file"] = path;
            std::cout << json::serialize(e) << "\n";
            continue;
        }
        auto s = [](const json::object& o, const char* k) {
            auto* x = o.if_contains(k);
            return x && x->is_string() ? std::string(x->as_string()) : std::string();
        };
        const auto& m = e.at("message").as_object();
        std::cout << path << ": " << s(e, "verdict") << " " << s(m, "type") << ", MsgId " << s(m, "msgId")
                  << ", sender " << s(m, "senderHerId") << " -> receiver " << s(m, "receiverHerId") << "\n";
        if (auto* ds = e.if_contains("diagnostics"))
            for (auto& d : ds->as_array())
                std::cout << "  " << d.as_string().c_str() << "\n";
        if (e.at("receiver").is_object()) {
            const auto& p = e.at("receiver").as_object();
            std::cout << "receiver: " << s(p, "herId") << " " << s(p, "name") << " (" << s(p, "type");
            if (!s(p, "municipality").empty())
                std::cout << ", municipality " << s(p, "municipality");
            if (!s(p, "adapter").empty())
                std::cout << ", adapter " << s(p, "adapter");
            std::cout << ")";
            for (auto& an : p.at("ancestors").as_array())
                std::cout << " < " << s(an.as_object(), "herId") << " " << s(an.as_object(), "name");
            std::cout << "\n";
        }
        const auto& d = e.at("decision").as_object();
        std::cout << "decision: " << s(d, "outcome");
        if (!s(d, "code").empty())
            std::cout << " " << s(d, "code");
        std::cout << ": " << s(d, "reason") << "\n";
        std::vector<std::vector<std::string>> t{{"  rule", "priority", "where", "result"}};
        for (auto& r : e.at("rules").as_array()) {
            const auto& ro = r.as_object();
            bool matched = ro.at("matched").as_bool();
            t.push_back({std::string(matched ? "* " : "  ") + s(ro, "rule"), std::to_string(ro.at("priority").as_int64()),
                         s(ro, "file"), s(ro, "why")});
        }
        print_table(std::cout, t);
        if (s(e, "verdict") != "valid")
            rc = 1;
    }
    return rc;
}

} // namespace

int cmd_routes(int argc, char** argv) {
    std::set<std::string> with_value(config_options);
    auto a = parse_args(argc, argv, with_value, {"--strict", "--json", "--help"});
    if (!a)
        return std::cerr << "edibroker routes: " << a.error().message << "\n\n" << usage, 2;
    if (a->flags.count("--help") || a->positional.empty())
        return std::cout << usage, a->flags.count("--help") ? 0 : 2;
    if (a->positional[0] == "check")
        return check(*a);
    if (a->positional[0] == "explain")
        return explain(*a);
    return std::cerr << "edibroker routes: unknown subcommand '" << a->positional[0] << "'\n\n" << usage, 2;
}

} // namespace broker::tools
