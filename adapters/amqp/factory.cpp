// amqp factory and its registration (the one entry point the generated
// register_builtin_adapters() calls).
#include "amqp.hpp"

#include "broker/log.hpp"

#include <memory>

namespace broker::adapters::amqp {

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
        try {
            return adapter_ptr(std::make_unique<adapter>(cfg.name, std::move(*opt), cfg.inbound, cfg.sync_request));
        } catch (const std::exception& e) {
            return error{"adapter.create", std::string("cannot create the AMQP container: ") + e.what()};
        }
    }

    /// Any message type, any namespace: the portal decides what it takes.
    capabilities caps(const adapter_config&) const override { return {}; }
};

} // namespace

} // namespace broker::adapters::amqp

namespace broker::adapters {

void register_amqp(adapter_registry& r) {
    if (auto e = r.add(std::make_unique<amqp::factory>()); !e)
        log::error("adapter.register-failed", {{"type", amqp::type_name}, {"reason", e.error().message}});
}

} // namespace broker::adapters
