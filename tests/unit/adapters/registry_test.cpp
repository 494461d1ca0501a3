// The registry of built-in adapters, option checking, and the pull adapter.
#include "broker/adapter.hpp"

#include <catch2/catch.hpp>

#include <memory>

using namespace broker;

namespace {

adapter_config config(std::string type, std::map<std::string, std::string> opts) {
    adapter_config c;
    c.name = "inst";
    c.type = std::move(type);
    c.options = std::move(opts);
    return c;
}

class fake_factory final : public adapter_factory {
public:
    std::string_view type() const override { return "http-push"; }
    result<void> check(const adapter_config&) const override { return {}; }
    result<adapter_ptr> create(const adapter_config&) const override {
        return error{"test", "not implemented"};
    }
    capabilities caps(const adapter_config&) const override { return {}; }
};

} // namespace

TEST_CASE("registry: built-in adapters are registered; a duplicate type is refused", "[unit][adapters]") {
    adapter_registry r;
    register_builtin_adapters(r);
    auto types = r.types();
    CHECK(std::find(types.begin(), types.end(), "http-push") != types.end());
    CHECK(std::find(types.begin(), types.end(), "pull") != types.end());
    REQUIRE(r.find("http-push"));
    CHECK(r.find("http-push")->type() == "http-push");
    REQUIRE(r.find("pull"));
    CHECK(r.find("nope") == nullptr);

    auto dup = r.add(std::make_unique<fake_factory>());
    REQUIRE_FALSE(dup.has_value());
    CHECK(dup.error().code == "adapter.duplicate");
    CHECK(dup.error().message.find("http-push") != std::string::npos);
}

TEST_CASE("http-push check(): errors name the option", "[unit][adapters]") {
    adapter_registry r;
    register_builtin_adapters(r);
    const adapter_factory* f = r.find("http-push");
    REQUIRE(f);

    using opts_t = std::map<std::string, std::string>;
    auto [opts, option] = GENERATE(table<opts_t, std::string>({
        {opts_t{}, "url"},
        {{{"url", ""}}, "url"},
        {{{"url", "not a url"}}, "url"},
        {{{"url", "ftp://example.org/in"}}, "url"},
        {{{"url", "http://127.0.0.1/"}, {"timeout-ms", "ten"}}, "timeout-ms"},
        {{{"url", "http://127.0.0.1/"}, {"timeout-ms", "-5"}}, "timeout-ms"},
        {{{"url", "http://127.0.0.1/"}, {"timeout-ms", "100ms"}}, "timeout-ms"},
        {{{"url", "http://127.0.0.1/"}, {"connect-timeout-ms", ""}}, "connect-timeout-ms"},
        {{{"url", "http://127.0.0.1/"}, {"max-in-flight", "0"}}, "max-in-flight"},
        {{{"url", "http://127.0.0.1/"}, {"queue-limit", "lots"}}, "queue-limit"},
        {{{"url", "http://127.0.0.1/"}, {"insecure", "maybe"}}, "insecure"},
        {{{"url", "http://127.0.0.1/"}, {"ca-file", "/nonexistent/ca.pem"}}, "ca-file"},
        {{{"url", "http://127.0.0.1/"}, {"header.Bad Name", "x"}}, "header.Bad Name"},
        {{{"url", "http://127.0.0.1/"}, {"header.X-Ok", "a\r\nInjected: 1"}}, "header.X-Ok"},
        {{{"url", "http://127.0.0.1/"}, {"header.Content-Type", "text/plain"}}, "header.Content-Type"},
        {{{"url", "http://127.0.0.1/"}, {"timeout", "5"}}, "timeout"},
    }));
    auto c = f->check(config("http-push", opts));
    REQUIRE_FALSE(c.has_value());
    INFO(c.error().message);
    CHECK(c.error().code == "config.invalid");
    CHECK(c.error().message.find("'" + option + "'") != std::string::npos);
    // create() refuses the same options.
    CHECK_FALSE(f->create(config("http-push", opts)).has_value());
}

TEST_CASE("http-push check(): valid options pass", "[unit][adapters]") {
    adapter_registry r;
    register_builtin_adapters(r);
    const adapter_factory* f = r.find("http-push");
    REQUIRE(f);
    CHECK(f->check(config("http-push", {{"url", "http://127.0.0.1:8080/in"}})).has_value());
    CHECK(f->check(config("http-push", {{"url", "https://vendor.example/api/v1/messages?tenant=oslo"},
                                        {"timeout-ms", "5000"},
                                        {"connect-timeout-ms", "1000"},
                                        {"max-in-flight", "4"},
                                        {"queue-limit", "100"},
                                        {"insecure", "false"},
                                        {"header.Authorization", "Bearer abc"},
                                        {"header.X-Empty", ""}}))
              .has_value());
    auto caps = f->caps(config("http-push", {{"url", "http://x/"}}));
    CHECK(caps.msg_types.empty());
    CHECK(caps.namespaces.empty());
}

TEST_CASE("pull: deliver completes at once with outcome waiting", "[unit][adapters]") {
    adapter_registry r;
    register_builtin_adapters(r);
    const adapter_factory* f = r.find("pull");
    REQUIRE(f);
    CHECK(f->check(config("pull", {})).has_value());
    auto a = f->create(config("pull", {}));
    REQUIRE(a.has_value());
    CHECK((*a)->type() == "pull");
    CHECK((*a)->name() == "inst");
    REQUIRE((*a)->start().has_value());

    message_facts facts;
    facts.msg_type = "DIALOG_NOTAT";
    facts.content_ns = ns::dialog_1_0;
    CHECK((*a)->caps().accepts(facts));

    int calls = 0;
    delivery_result got;
    delivery d;
    d.id = "p-1";
    d.document = std::make_shared<const std::string>("<x/>");
    (*a)->deliver(std::move(d), [&](delivery_result res) {
        ++calls;
        got = std::move(res);
    });
    CHECK(calls == 1);  // before deliver() returned
    CHECK(got.o == delivery_result::outcome::waiting);
    CHECK(got.detail == "waiting in inbox");
    (*a)->stop();
}
