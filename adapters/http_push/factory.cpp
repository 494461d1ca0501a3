// http-push factory and its registration (the one entry point the generated
// register_builtin_adapters() calls).
#include "http_push.hpp"

#include "broker/log.hpp"

#include <memory>

namespace broker::adapters::http_push {

namespace {

class factory final : public adapter_factory {
public:
    std::string_view type() const override { return type_name; }

    result<void> check(const adapter_config& cfg) const override {
        auto opt = parse_options(cfg.options);
        if (!opt)
            return opt.error();
        return {};
    }

    result<adapter_ptr> create(const adapter_config& cfg) const override {
        auto opt = parse_options(cfg.options);
        if (!opt)
            return opt.error();
        return adapter_ptr(std::make_unique<adapter>(cfg.name, std::move(*opt)));
    }

    /// Any message type, any namespace: the vendor endpoint decides.
    capabilities caps(const adapter_config&) const override { return {}; }
};

} // namespace

} // namespace broker::adapters::http_push

namespace broker::adapters {

void register_http_push(adapter_registry& r) {
    // A duplicate can only come from a wrong EDIBROKER_ADAPTERS list; the registry keeps the first.
    if (auto e = r.add(std::make_unique<http_push::factory>()); !e)
        log::error("adapter.register-failed", {{"type", http_push::type_name}, {"reason", e.error().message}});
}

} // namespace broker::adapters
