#include "broker/adapter.hpp"

namespace broker {

namespace {
bool pattern_match(std::string_view pattern, std::string_view value) {
    if (!pattern.empty() && pattern.back() == '*')
        return value.substr(0, pattern.size() - 1) == pattern.substr(0, pattern.size() - 1);
    return pattern == value;
}
} // namespace

bool capabilities::accepts(const message_facts& f) const {
    if (!msg_types.empty()) {
        bool ok = false;
        for (auto& p : msg_types)
            ok = ok || pattern_match(p, f.msg_type);
        if (!ok)
            return false;
    }
    if (!namespaces.empty()) {
        // An AppRec is judged by its root namespace, a MsgHead by its content's namespace.
        const std::string& n = f.is_apprec() ? f.root_ns : f.content_ns;
        bool ok = false;
        for (auto& x : namespaces)
            ok = ok || x == n;
        if (!ok)
            return false;
    }
    return true;
}

result<void> adapter::can_take(const message_facts& f, std::string_view) const {
    if (caps().accepts(f))
        return {};
    return error{"T10", "adapter '" + name() + "' (" + std::string(type()) + ") does not take " + f.msg_type +
                            (f.is_apprec() ? " " + f.root_ns : " with content " + (f.content_ns.empty() ? std::string("(none)") : f.content_ns))};
}

result<void> adapter_registry::add(std::unique_ptr<adapter_factory> f) {
    std::string type(f->type());
    if (factories_.count(type))
        return error{"adapter.duplicate", "adapter type '" + type + "' is registered twice"};
    factories_.emplace(std::move(type), std::move(f));
    return {};
}

const adapter_factory* adapter_registry::find(std::string_view type) const {
    auto it = factories_.find(type);
    return it == factories_.end() ? nullptr : it->second.get();
}

std::vector<std::string> adapter_registry::types() const {
    std::vector<std::string> out;
    for (auto& [k, v] : factories_)
        out.push_back(k);
    return out;
}

} // namespace broker
