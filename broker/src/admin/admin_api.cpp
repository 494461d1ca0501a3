// The admin listener: Boost.Beast on Asio, one coroutine per connection on its own strand, the
// same shape as the EDI endpoint (server/http_api.cpp) with fewer limits: it is for operators on
// loopback or a management network, and carries no message content.
#include "admin/admin_api.hpp"

#include "admin/ops.hpp"
#include "server/http_api.hpp"
#include "broker/log.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>

#include <charconv>

namespace broker::admin {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t admin_body_limit = 64u << 20;  // routes/explain takes a whole message

using response = admin_api::response;

response reply(unsigned status, std::string body, const char* type = "application/json") {
    response r{static_cast<http::status>(status), 11};
    r.set(http::field::server, "edibroker-admin");
    if (!body.empty())
        r.set(http::field::content_type, type);
    r.body() = std::move(body);
    return r;
}

response json_reply(unsigned status, const json::value& v) { return reply(status, json::serialize(v)); }

response error_reply(unsigned status, std::string_view code, std::string_view message) {
    return reply(status, json::serialize(error_body(code, message)));
}

std::vector<std::string> split_path(std::string_view s) {
    std::vector<std::string> out;
    while (!s.empty()) {
        auto p = s.find('/');
        if (auto part = s.substr(0, p); !part.empty())
            out.push_back(percent_decode(part));
        if (p == std::string_view::npos)
            break;
        s.remove_prefix(p + 1);
    }
    return out;
}

json::array rows_json(const std::vector<store::message_row>& rows) {
    json::array a;
    for (auto& r : rows)
        a.push_back(ops::row_json(r));
    return a;
}

const char* endpoints_text =
    R"({"endpoints":["GET /metrics","GET /admin/messages?sender=&receiver=&type=&state=&msgId=&conversation=&from=&to=&limit=",)"
    R"("GET /admin/messages/{id}","POST /admin/messages/{id}/resend","GET /admin/dead?limit=","GET /admin/store",)"
    R"("POST /admin/retention/run","POST /admin/reload","GET /admin/registry?q=TEXT","GET /admin/registry/{herId}",)"
    R"("GET /admin/routes","POST /admin/routes/explain"]})";

} // namespace

admin_api::admin_api(engine& e, asio::io_context& ioc, const config& cfg, metrics& m, retention& r, reload_fn reload)
    : engine_(e), ioc_(ioc), cfg_(cfg), metrics_(m), retention_(r), reload_(std::move(reload)), acceptor_(ioc) {}

result<void> admin_api::listen(const std::string& host_port) {
    auto colon = host_port.rfind(':');
    if (colon == std::string::npos)
        return error{"config.invalid", "admin-listen address '" + host_port + "' needs HOST:PORT"};
    std::string host = host_port.substr(0, colon);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    unsigned port = 0;
    auto ps = host_port.substr(colon + 1);
    auto [p, ec1] = std::from_chars(ps.data(), ps.data() + ps.size(), port);
    if (ec1 != std::errc{} || p != ps.data() + ps.size() || port > 65535)
        return error{"config.invalid", "admin-listen port in '" + host_port + "' is not a port number"};
    boost::system::error_code ec;
    auto addr = asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
    if (ec)
        return error{"config.invalid", "admin-listen host '" + host + "' is not an IP address"};
    tcp::endpoint ep(addr, static_cast<unsigned short>(port));
    acceptor_.open(ep.protocol(), ec);
    if (!ec)
        acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec)
        acceptor_.bind(ep, ec);
    if (!ec)
        acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
        return error{"listen.failed", "cannot listen on " + host_port + " (admin-listen): " + ec.message()};
    port_ = acceptor_.local_endpoint(ec).port();
    address_ = (addr.is_v6() ? "[" + addr.to_string() + "]" : addr.to_string()) + ":" + std::to_string(port_);
    return {};
}

void admin_api::start() { asio::co_spawn(acceptor_.get_executor(), accept_loop(), asio::detached); }

void admin_api::stop() {
    if (stopping_.exchange(true))
        return;
    asio::post(acceptor_.get_executor(), [this] {
        boost::system::error_code ec;
        acceptor_.close(ec);
    });
    std::lock_guard lk(mu_);
    for (auto& [id, s] : open_)
        // Only if the session is still open when this runs on its strand (see http_api::stop).
        asio::post(s->get_executor(), [this, sid = id] {
            std::lock_guard lk(mu_);
            auto it = open_.find(sid);
            if (it == open_.end())
                return;
            boost::system::error_code ec;
            it->second->shutdown(tcp::socket::shutdown_both, ec);
            it->second->close(ec);
        });
}

asio::awaitable<void> admin_api::accept_loop() {
    while (!stopping_) {
        auto [ec, sock] = co_await acceptor_.async_accept(asio::make_strand(ioc_), use_tuple);
        if (ec) {
            if (ec == asio::error::operation_aborted || stopping_)
                break;
            log::warn("admin.accept", {{"reason", ec.message()}});
            continue;
        }
        auto ex = sock.get_executor();
        std::uint64_t sid;
        {
            std::lock_guard lk(mu_);
            sid = next_sid_++;
        }
        asio::co_spawn(ex, session(std::move(sock), sid), asio::detached);
    }
}

asio::awaitable<void> admin_api::session(tcp::socket sock, std::uint64_t sid) {
    beast::tcp_stream stream(std::move(sock));
    {
        std::lock_guard lk(mu_);
        if (stopping_)
            co_return;
        open_[sid] = &stream.socket();
    }
    struct unregister {
        admin_api* self;
        std::uint64_t sid;
        ~unregister() {
            std::lock_guard lk(self->mu_);
            self->open_.erase(sid);
        }
    } guard{this, sid};
    const auto timeout = std::chrono::milliseconds(cfg_.http_timeout_ms);
    beast::flat_buffer buf;
    while (!stopping_) {
        http::request_parser<http::string_body> parser;
        parser.body_limit(admin_body_limit);
        stream.expires_after(timeout);
        auto [ec, n] = co_await http::async_read(stream, buf, parser, use_tuple);
        if (ec)
            break;
        request req = parser.release();
        stream.expires_never();
        response res = co_await handle(req);
        res.keep_alive(req.keep_alive() && !stopping_);
        res.prepare_payload();
        stream.expires_after(timeout);
        auto [wec, wn] = co_await http::async_write(stream, res, use_tuple);
        if (wec || !res.keep_alive())
            break;
    }
    boost::system::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
}

asio::awaitable<response> admin_api::handle(request& req) {
    std::string_view target = req.target();
    std::string_view path = target.substr(0, target.find('?'));
    std::string_view query = path.size() < target.size() ? target.substr(path.size() + 1) : std::string_view{};
    auto parts = split_path(path);
    const auto method = req.method();
    const bool get = method == http::verb::get, post = method == http::verb::post;
    auto wrong_method = [](const char* use) { return error_reply(405, "method-not-allowed", std::string("use ") + use); };

    if (parts.size() == 1 && parts[0] == "metrics") {
        if (!get)
            co_return wrong_method("GET");
        auto rs = engine_.routing();
        co_return reply(200, metrics_.render(engine_.store(), rs->registry.size(), rs->rules.rules.size()),
                        "text/plain; version=0.0.4; charset=utf-8");
    }
    if (parts.empty() || parts[0] != "admin")
        co_return error_reply(404, "not-found", "no such endpoint: " + std::string(path) + " (see GET /admin)");
    if (parts.size() == 1)
        co_return reply(200, endpoints_text);

    const std::string& what = parts[1];
    auto& rd = engine_.store().thread_reader();

    if (what == "messages") {
        if (parts.size() == 2) {
            if (!get)
                co_return wrong_method("GET");
            auto q = ops::make_query(parse_query(query), store::now_ms());
            if (!q)
                co_return error_reply(400, q.error().code, q.error().message);
            auto rows = ops::list_messages(rd, *q);
            if (!rows)
                co_return error_reply(500, rows.error().code, rows.error().message);
            co_return json_reply(200, rows_json(*rows));
        }
        const std::string& id = parts[2];
        if (parts.size() == 3) {
            if (!get)
                co_return wrong_method("GET");
            auto d = ops::message_detail(rd, id);
            if (!d)
                co_return error_reply(500, d.error().code, d.error().message);
            if (!*d)
                co_return error_reply(404, "not-found", "no message with id " + id);
            co_return json_reply(200, **d);
        }
        if (parts.size() == 4 && parts[3] == "resend") {
            if (!post)
                co_return wrong_method("POST");
            intake_answer a = co_await engine_.resend(id);
            co_return reply(static_cast<unsigned>(a.status), std::move(a.json));
        }
    } else if (what == "dead" && parts.size() == 2) {
        if (!get)
            co_return wrong_method("GET");
        auto params = parse_query(query);
        params["state"] = store::state::dead;
        auto q = ops::make_query(params, store::now_ms());
        if (!q)
            co_return error_reply(400, q.error().code, q.error().message);
        auto rows = ops::list_messages(rd, *q);
        if (!rows)
            co_return error_reply(500, rows.error().code, rows.error().message);
        json::array a;
        for (auto& r : *rows) {
            json::object o = ops::row_json(r);
            if (!r.last_error.empty())
                o["lastError"] = r.last_error;
            a.push_back(std::move(o));
        }
        co_return json_reply(200, a);
    } else if (what == "store" && parts.size() == 2) {
        if (!get)
            co_return wrong_method("GET");
        auto s = ops::store_json(engine_.store());
        if (!s)
            co_return error_reply(500, s.error().code, s.error().message);
        json::object o = std::move(*s);
        o["retentionDays"] = cfg_.retention_days;
        co_return json_reply(200, o);
    } else if (what == "retention" && parts.size() == 3 && parts[2] == "run") {
        if (!post)
            co_return wrong_method("POST");
        auto n = co_await retention_.run_once();
        if (!n)
            co_return error_reply(n.error().code == "rules.invalid" ? 422 : 503, n.error().code, n.error().where());
        json::object o;
        o["pruned"] = *n;
        co_return json_reply(200, o);
    } else if (what == "reload" && parts.size() == 2) {
        if (!post)
            co_return wrong_method("POST");
        auto r = reload_ ? reload_() : result<void>(error{"reload.unsupported", "no reload configured"});
        if (!r) {
            json::object o = error_body(r.error().code, r.error().where());
            if (!r.error().file.empty()) {
                json::object& e = o["error"].as_object();
                e["file"] = r.error().file;
                e["line"] = r.error().line;
                e["column"] = r.error().column;
            }
            co_return json_reply(422, o);
        }
        auto rs = engine_.routing();
        json::object o;
        o["status"] = "reloaded";
        o["rules"] = rs->rules.rules.size();
        o["adapters"] = rs->rules.adapters.size();
        o["parties"] = rs->registry.size();
        co_return json_reply(200, o);
    } else if (what == "registry") {
        if (!get)
            co_return wrong_method("GET");
        auto rs = engine_.routing();
        if (parts.size() == 2) {
            auto params = parse_query(query);
            json::array a;
            for (auto* p : ops::search_parties(rs->registry, params["q"]))
                a.push_back(ops::party_json(*p));
            co_return json_reply(200, a);
        }
        if (parts.size() == 3) {
            const store::party* p = rs->registry.find(parts[2]);
            if (!p)
                co_return error_reply(404, "not-found", "HER-id " + parts[2] + " is not in the registry");
            co_return json_reply(200, ops::party_detail(rs->registry, *p));
        }
    } else if (what == "routes") {
        auto rs = engine_.routing();
        if (parts.size() == 2) {
            if (!get)
                co_return wrong_method("GET");
            co_return json_reply(200, ops::routes_json(rs->rules));
        }
        if (parts.size() == 3 && parts[2] == "explain") {
            if (!post)
                co_return wrong_method("POST");
            if (req.body().empty())
                co_return error_reply(400, "request.invalid", "send the message (MsgHead or AppRec XML) as the body");
            auto vr = xml::thread_validator().validate(req.body(), "message");
            co_return json_reply(200, ops::explain_json(rs->rules, rs->registry, vr));
        }
    }
    co_return error_reply(404, "not-found", "no such endpoint: " + std::string(path) + " (see GET /admin)");
}

} // namespace broker::admin
