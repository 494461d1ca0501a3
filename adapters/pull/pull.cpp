// pull adapter: nothing is pushed anywhere. deliver() answers at once with outcome::waiting; the
// message stays in the store's inbox until the receiver fetches it over the broker's API, which
// is what marks it delivered.
#include "broker/adapter.hpp"
#include "broker/log.hpp"

#include <memory>

namespace broker::adapters::pull {

namespace {

constexpr std::string_view type_name = "pull";

class adapter final : public broker::adapter {
public:
    explicit adapter(std::string name) : name_(std::move(name)) {}
    const std::string& name() const override { return name_; }
    std::string_view type() const override { return type_name; }
    const capabilities& caps() const override { return caps_; }
    result<void> start() override { return {}; }
    /// Runs on: the caller's thread; 'done' is called before deliver() returns.
    void deliver(delivery, delivery_handler done) override {
        delivery_result r;
        r.o = delivery_result::outcome::waiting;
        r.detail = "waiting in inbox";
        try {
            if (done)
                done(std::move(r));
        } catch (const std::exception& e) {
            log::error("adapter.callback-threw", {{"adapter", type_name}, {"what", e.what()}});
        } catch (...) {
            log::error("adapter.callback-threw", {{"adapter", type_name}});
        }
    }
    void stop() override {}

private:
    std::string name_;
    capabilities caps_;  // any type, any namespace
};

class factory final : public adapter_factory {
public:
    std::string_view type() const override { return type_name; }
    /// pull has no options of its own; any given are ignored.
    result<void> check(const adapter_config&) const override { return {}; }
    result<adapter_ptr> create(const adapter_config& cfg) const override {
        return adapter_ptr(std::make_unique<adapter>(cfg.name));
    }
    capabilities caps(const adapter_config&) const override { return {}; }
};

} // namespace

} // namespace broker::adapters::pull

namespace broker::adapters {

void register_pull(adapter_registry& r) {
    if (auto e = r.add(std::make_unique<pull::factory>()); !e)
        log::error("adapter.register-failed", {{"type", pull::type_name}, {"reason", e.error().message}});
}

} // namespace broker::adapters
