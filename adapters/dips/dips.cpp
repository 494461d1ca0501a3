// dips adapter: pushes each document to a DIPS Front endpoint over HTTPS in the EDI 2.0 JSON shape
// ({"businessDocument": base64, "contentType": "application/xml", "contentTransferEncoding":
// "base64"}) and expects 201 with the id DIPS gave it. DIPS speaks Dialogmelding 1.1 and AppRec
// 1.1: a Dialogmelding 1.0 is refused at intake (T10); an AppRec 1.0 is sent as 1.1 (lossless).
// AppRecs and read receipts come back over the broker's REST API (README.md).
#include "broker/adapter.hpp"
#include "broker/convert.hpp"
#include "broker/https_client.hpp"
#include "broker/log.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <memory>

namespace broker::adapters::dips {

namespace {

constexpr std::string_view type_name = "dips";

struct options {
    std::string url;
    https::client_options client;
    std::vector<std::string> headers;  ///< from header.<Name>
};

result<options> parse_options(const adapter_config& cfg) {
    options o;
    o.client.name = "dips";
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
            return error{"config.invalid", "unknown option '" + k + "' for adapter type dips"};
    }
    if (!have_url)
        return https::invalid_option("url", "is required (the DIPS endpoint, an https:// URL)");
    if (o.client.tls.client_key.size() && o.client.tls.client_cert.empty())
        return https::invalid_option("client-key", "needs client-cert");
    return o;
}

std::string base64(std::string_view in) {
    static constexpr char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((in.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 2 < in.size(); i += 3) {
        unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8) |
                     static_cast<unsigned char>(in[i + 2]);
        out += tbl[(v >> 18) & 63];
        out += tbl[(v >> 12) & 63];
        out += tbl[(v >> 6) & 63];
        out += tbl[v & 63];
    }
    if (i < in.size()) {
        unsigned v = static_cast<unsigned char>(in[i]) << 16;
        if (i + 1 < in.size())
            v |= static_cast<unsigned char>(in[i + 1]) << 8;
        out += tbl[(v >> 18) & 63];
        out += tbl[(v >> 12) & 63];
        out += i + 1 < in.size() ? tbl[(v >> 6) & 63] : '=';
        out += '=';
    }
    return out;
}

/// The id in a JSON answer {"id": "..."} (string or number); "" if there is none.
std::string id_of(const std::string& body) {
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(body, ec);
    if (ec || !v.is_object())
        return {};
    const auto* id = v.as_object().if_contains("id");
    if (!id)
        return {};
    if (id->is_string())
        return https::header_safe(std::string(id->as_string().c_str(), id->as_string().size()).substr(0, 200));
    if (id->is_int64())
        return std::to_string(id->as_int64());
    if (id->is_uint64())
        return std::to_string(id->as_uint64());
    return {};
}

using outcome = delivery_result::outcome;

delivery_result make(outcome o, std::string detail, std::string remote_id = {}) {
    delivery_result r;
    r.o = o;
    r.detail = std::move(detail);
    r.remote_id = std::move(remote_id);
    return r;
}

/// What an answer of DIPS means for the delivery.
delivery_result classify(const https::response& r) {
    if (r.status == 0)
        return make(outcome::retriable, r.failure);
    std::string detail = "http " + std::to_string(r.status);
    if (r.status == 201) {
        std::string id = id_of(r.body);
        if (id.empty())  // DIPS may have it: it de-duplicates on MsgId, so sending again is safe
            return make(outcome::retriable, detail + " without an id in the answer");
        // The id DIPS gave it goes into the detail too: the status then shows it.
        return make(outcome::delivered, detail + ", DIPS id " + id, id);
    }
    if (r.status >= 200 && r.status < 300)
        return make(outcome::retriable, detail + " unexpected (DIPS answers 201 with an id)");
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

capabilities dips_caps() {
    capabilities c;
    c.msg_types = {"DIALOG_*", "APPREC"};
    c.namespaces = {ns::dialog_1_1, ns::apprec_1_1, ns::apprec_1_0};
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

    /// Runs on: any thread; never blocks (the HTTPS client queues it).
    void deliver(delivery d, delivery_handler done) override {
        if (!d.document) {
            complete(done, make(outcome::permanent, "no document to deliver"));
            return;
        }
        const std::string* doc = d.document.get();
        std::string converted;
        if (d.facts.is_apprec() && d.facts.root_ns == ns::apprec_1_0) {
            auto c = convert::apprec_1_0_to_1_1(*doc);
            if (!c) {
                complete(done, make(outcome::permanent, "cannot convert AppRec 1.0 to 1.1: " + c.error().message));
                return;
            }
            converted = std::move(*c);
            doc = &converted;
        }
        boost::json::object o;
        o["businessDocument"] = base64(*doc);
        o["contentType"] = "application/xml";
        o["contentTransferEncoding"] = "base64";
        https::request r;
        r.url = opt_.url;
        r.body = std::make_shared<const std::string>(boost::json::serialize(o));
        r.headers = {"Content-Type: application/json", "Accept: application/json",
                     "X-EDIBroker-Id: " + https::header_safe(d.id)};
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
    capabilities caps_ = dips_caps();
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
        o->client.name = "dips-" + cfg.name;
        return adapter_ptr(std::make_unique<adapter>(cfg.name, std::move(*o)));
    }
    capabilities caps(const adapter_config&) const override { return dips_caps(); }
};

} // namespace

} // namespace broker::adapters::dips

namespace broker::adapters {

void register_dips(adapter_registry& r) {
    if (auto e = r.add(std::make_unique<dips::factory>()); !e)
        log::error("adapter.register-failed", {{"type", dips::type_name}, {"reason", e.error().message}});
}

} // namespace broker::adapters
