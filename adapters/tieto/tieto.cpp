// tieto adapter: pushes the raw MsgHead (or AppRec) XML as application/xml to a TietoEvry
// Gerica/Lifecare endpoint (plain HTTP POST, no SOAP) over HTTPS with the instance's own client
// certificate (mutual TLS, OpenSSL through libcurl). 200 and 202 mean delivered. AppRecs come back
// as MsgHead/AppRec messages to the broker's POST /Messages (README.md).
#include "broker/adapter.hpp"
#include "broker/https_client.hpp"
#include "broker/log.hpp"

#include <memory>

namespace broker::adapters::tieto {

namespace {

constexpr std::string_view type_name = "tieto";

struct options {
    std::string url;
    https::client_options client;
    std::vector<std::string> headers;
};

result<options> parse_options(const adapter_config& cfg) {
    options o;
    o.client.name = "tieto";
    bool have_url = false;
    for (const auto& [k, v] : cfg.options) {
        if (k == "url") {
            auto u = https::parse_url(k, v, true);
            if (!u)
                return u.error();
            o.url = *u;
            have_url = true;
            continue;
        }
        auto c = https::parse_common_option(k, v, cfg.data_dir, o.client, o.headers);
        if (!c)
            return c.error();
        if (!*c)
            return error{"config.invalid", "unknown option '" + k + "' for adapter type tieto"};
    }
    if (!have_url)
        return https::invalid_option("url", "is required (the Tieto endpoint, an https:// URL)");
    if (o.client.tls.client_cert.empty())
        return https::invalid_option("client-cert",
                                     "is required (the instance's client certificate, PEM; Tieto requires mutual TLS)");
    if (o.client.tls.client_key.empty())
        return https::invalid_option("client-key", "is required (the private key of client-cert, PEM)");
    return o;
}

using outcome = delivery_result::outcome;

delivery_result make(outcome o, std::string detail) {
    delivery_result r;
    r.o = o;
    r.detail = std::move(detail);
    return r;
}

delivery_result classify(const https::response& r) {
    if (r.status == 0)
        return make(outcome::retriable, r.failure);
    std::string detail = "http " + std::to_string(r.status);
    if (r.status == 200 || r.status == 202)
        return make(outcome::delivered, detail);
    if (r.status >= 200 && r.status < 300)
        return make(outcome::retriable, detail + " unexpected (Tieto answers 200 or 202)");
    if (r.status == 408 || r.status == 425 || r.status == 429 || r.status >= 500)
        return make(outcome::retriable, detail);
    if (r.status >= 400)
        return make(outcome::permanent, detail);
    if (r.status >= 300)
        return make(outcome::permanent, detail + " redirect not followed");
    return make(outcome::retriable, detail + " unexpected");
}

void complete(delivery_handler& done, delivery_result r) noexcept {
    try {
        if (done)
            done(std::move(r));
    } catch (...) {
        log::error("adapter.callback-threw", {{"adapter", type_name}});
    }
}

capabilities tieto_caps() {
    capabilities c;
    c.msg_types = {"DIALOG_*", "APPREC"};
    c.namespaces = {ns::dialog_1_0, ns::dialog_1_1, ns::apprec_1_0, ns::apprec_1_1};
    return c;
}

class adapter final : public broker::adapter {
public:
    adapter(std::string name, options o) : name_(std::move(name)), opt_(std::move(o)), client_(opt_.client) {}
    const std::string& name() const override { return name_; }
    std::string_view type() const override { return type_name; }
    const capabilities& caps() const override { return caps_; }
    result<void> start() override { return client_.start(); }
    void stop() override { client_.stop(); }

    /// Runs on: any thread; never blocks.
    void deliver(delivery d, delivery_handler done) override {
        if (!d.document) {
            complete(done, make(outcome::permanent, "no document to deliver"));
            return;
        }
        https::request r;
        r.url = opt_.url;
        r.body = d.document;  // the XML exactly as stored
        r.headers = {"Content-Type: application/xml", "X-EDIBroker-Id: " + https::header_safe(d.id)};
        if (!d.facts.msg_id.empty())
            r.headers.push_back("X-EDIBroker-MsgId: " + https::header_safe(d.facts.msg_id));
        for (const auto& h : opt_.headers)
            r.headers.push_back(h);
        client_.send(std::move(r), [done = std::move(done)](https::response resp) mutable {
            complete(done, classify(resp));
        });
    }

private:
    std::string name_;
    options opt_;
    capabilities caps_ = tieto_caps();
    https::client client_;
};

class factory final : public adapter_factory {
public:
    std::string_view type() const override { return type_name; }
    result<void> check(const adapter_config& cfg) const override {
        auto o = parse_options(cfg);
        if (!o)
            return o.error();
        return {};
    }
    result<adapter_ptr> create(const adapter_config& cfg) const override {
        auto o = parse_options(cfg);
        if (!o)
            return o.error();
        o->client.name = "tieto-" + cfg.name;
        return adapter_ptr(std::make_unique<adapter>(cfg.name, std::move(*o)));
    }
    capabilities caps(const adapter_config&) const override { return tieto_caps(); }
};

} // namespace

} // namespace broker::adapters::tieto

namespace broker::adapters {

void register_tieto(adapter_registry& r) {
    if (auto e = r.add(std::make_unique<tieto::factory>()); !e)
        log::error("adapter.register-failed", {{"type", tieto::type_name}, {"reason", e.error().message}});
}

} // namespace broker::adapters
