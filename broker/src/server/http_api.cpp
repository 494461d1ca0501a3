// Request handling for the REST endpoint. Shapes follow NHN's EDI 2.0 message server API
// (standards.md §2.3): POST /Messages, GET /Messages?receiverHerIds=, GET /Messages/{id},
// /business-document, /status, /apprec, PUT /Messages/{id}/read/{herId},
// POST /Messages/{id}/apprec/{herId}, GET /healthz.
#include "http_api.hpp"

#include "broker/log.hpp"
#include "digihelse/digihelse.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <charconv>

namespace broker {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using store::iso_time;

namespace {

/// Read buffer per connection (see session()).
constexpr std::size_t read_buffer_bytes = 16 * 1024;


constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

using request = http::request<http::string_body>;
using response = http::response<http::string_body>;

response json_response(unsigned status, std::string body) {
    response r{static_cast<http::status>(status), 11};
    r.set(http::field::server, "edibroker");
    if (!body.empty())
        r.set(http::field::content_type, "application/json");
    r.body() = std::move(body);
    return r;
}

response error_response(unsigned status, std::string_view code, std::string_view message) {
    return json_response(status, json::serialize(error_body(code, message)));
}


std::vector<std::string> split(std::string_view s, char sep) {
    std::vector<std::string> out;
    while (true) {
        auto p = s.find(sep);
        auto part = s.substr(0, p);
        if (!part.empty())
            out.emplace_back(part);
        if (p == std::string_view::npos)
            break;
        s.remove_prefix(p + 1);
    }
    return out;
}

bool all_digits(std::string_view s) {
    if (s.empty() || s.size() > 12)
        return false;
    for (char c : s)
        if (c < '0' || c > '9')
            return false;
    return true;
}

void put_if(json::object& o, const char* key, const std::string& v) {
    if (!v.empty())
        o[key] = v;
}

json::object row_json(const store::message_row& m) {
    json::object o;
    o["id"] = m.id;
    put_if(o, "msgId", m.msg_id);
    o["kind"] = m.kind;
    put_if(o, "type", m.msg_type);
    put_if(o, "namespace", m.root_ns);
    put_if(o, "contentNamespace", m.content_ns);
    put_if(o, "senderHerId", m.sender_her);
    put_if(o, "senderLvl1HerId", m.sender_lvl1_her);
    put_if(o, "receiverHerId", m.receiver_her);
    put_if(o, "receiverLvl1HerId", m.receiver_lvl1_her);
    put_if(o, "conversationRef", m.conversation_ref);
    put_if(o, "parentRef", m.parent_ref);
    put_if(o, "genDate", m.gen_date);
    o["state"] = m.state;
    put_if(o, "rule", m.rule);
    put_if(o, "adapter", m.adapter);
    put_if(o, "originalId", m.original_id);
    put_if(o, "originalMsgId", m.original_msg_id);
    put_if(o, "appRecId", m.apprec_id);
    o["receivedAt"] = iso_time(m.received_at);
    o["size"] = m.size;
    return o;
}

json::object status_json(const store::message_row& m, const std::vector<store::transition_row>& ts) {
    json::object o;
    o["id"] = m.id;
    put_if(o, "msgId", m.msg_id);
    o["kind"] = m.kind;
    put_if(o, "type", m.msg_type);
    put_if(o, "senderHerId", m.sender_her);
    put_if(o, "receiverHerId", m.receiver_her);
    o["state"] = m.state;
    o["transportDeliveryState"] = m.transport_state.empty() ? "Unconfirmed" : m.transport_state;
    if (!m.apprec_status.empty()) {
        o["appRecStatus"] = m.apprec_status;
        boost::system::error_code ec;
        json::value errs = json::parse(m.apprec_errors_json.empty() ? "[]" : m.apprec_errors_json, ec);
        o["appRecErrorList"] = ec ? json::value(json::array{}) : errs;
        put_if(o, "appRecId", m.apprec_id);
    } else {
        o["appRecStatus"] = nullptr;
    }
    if (m.read_at != 0) {
        json::object r;
        r["herId"] = m.read_by;
        r["at"] = iso_time(m.read_at);
        o["read"] = std::move(r);
    } else {
        o["read"] = nullptr;
    }
    if (!m.error_code.empty() || !m.error_text.empty()) {
        json::object e;
        put_if(e, "code", m.error_code);
        put_if(e, "message", m.error_text);
        o["error"] = std::move(e);
    }
    put_if(o, "rule", m.rule);
    put_if(o, "adapter", m.adapter);
    o["attempts"] = m.attempts;
    put_if(o, "lastError", m.last_error);
    if (m.next_attempt_at != 0 && m.state == std::string_view(store::state::failed))
        o["nextAttemptAt"] = iso_time(m.next_attempt_at);
    put_if(o, "originalId", m.original_id);
    json::object times;
    times["received"] = iso_time(m.received_at);
    if (m.delivered_at)
        times["delivered"] = iso_time(m.delivered_at);
    if (m.read_at)
        times["read"] = iso_time(m.read_at);
    times["updated"] = iso_time(m.updated_at);
    o["timestamps"] = std::move(times);
    json::array tr;
    for (auto& t : ts) {
        json::object x;
        x["state"] = t.state;
        x["at"] = iso_time(t.at);
        put_if(x, "detail", t.detail);
        tr.push_back(std::move(x));
    }
    o["transitions"] = std::move(tr);
    return o;
}

/// Strict base64 (RFC 4648), white space allowed between groups.
bool base64_decode(std::string_view in, std::string& out) {
    auto val = [](char c) -> int {
        if (c >= 'A' && c <= 'Z') return c - 'A';
        if (c >= 'a' && c <= 'z') return c - 'a' + 26;
        if (c >= '0' && c <= '9') return c - '0' + 52;
        if (c == '+') return 62;
        if (c == '/') return 63;
        return -1;
    };
    out.clear();
    out.reserve(in.size() * 3 / 4);
    unsigned acc = 0;
    int bits = 0;
    int pad = 0;
    for (char c : in) {
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
            continue;
        if (c == '=') {
            ++pad;
            continue;
        }
        if (pad)
            return false;  // data after padding
        int v = val(c);
        if (v < 0)
            return false;
        acc = (acc << 6) | static_cast<unsigned>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((acc >> bits) & 0xFF);
        }
    }
    return pad <= 2;
}

/// 'res' (after prepare_payload) as HTTP/1.1 bytes in 'out': status line, the fields as set,
/// the body.
const std::string& serialize(const response& res, std::string& out) {
    out.clear();
    out.reserve(256 + res.body().size());
    out += "HTTP/1.1 ";
    out += std::to_string(res.result_int());
    out += ' ';
    out += res.reason();
    out += "\r\n";
    for (const auto& f : res) {
        out += f.name_string();
        out += ": ";
        out += f.value();
        out += "\r\n";
    }
    out += "\r\n";
    out += res.body();
    return out;
}

std::string_view media_type(std::string_view ct) {
    auto semi = ct.find(';');
    ct = ct.substr(0, semi);
    while (!ct.empty() && ct.back() == ' ')
        ct.remove_suffix(1);
    return ct;
}

} // namespace

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size())
        return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
            return false;
    return true;
}

std::string percent_decode(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size()) {
            int v = 0;
            auto [p, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
            if (ec == std::errc{} && p == s.data() + i + 3) {
                out += static_cast<char>(v);
                i += 2;
                continue;
            }
        }
        out += s[i] == '+' ? ' ' : s[i];
    }
    return out;
}

std::map<std::string, std::string> parse_query(std::string_view q) {
    std::map<std::string, std::string> out;
    while (!q.empty()) {
        auto amp = q.find('&');
        std::string_view kv = q.substr(0, amp);
        if (!kv.empty()) {
            auto eq = kv.find('=');
            std::string key = percent_decode(kv.substr(0, eq));
            // Parameter names are case-insensitive in the EDI 2.0 API (ReceiverHerIds / receiverHerIds).
            for (auto& c : key)
                c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            out[key] = eq == std::string_view::npos ? "" : percent_decode(kv.substr(eq + 1));
        }
        if (amp == std::string_view::npos)
            break;
        q.remove_prefix(amp + 1);
    }
    return out;
}

http_api::http_api(engine& e, asio::io_context& ioc, const config& cfg, std::vector<asio::io_context*> contexts)
    : engine_(e), ioc_(ioc), contexts_(std::move(contexts)), cfg_(cfg), acceptor_(ioc) {}

result<void> http_api::listen(const std::string& host_port) {
    auto colon = host_port.rfind(':');
    if (colon == std::string::npos)
        return error{"config.invalid", "listen address '" + host_port + "' needs HOST:PORT"};
    std::string host = host_port.substr(0, colon);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    unsigned port = 0;
    auto ps = host_port.substr(colon + 1);
    auto [p, ec1] = std::from_chars(ps.data(), ps.data() + ps.size(), port);
    if (ec1 != std::errc{} || p != ps.data() + ps.size() || port > 65535)
        return error{"config.invalid", "listen port in '" + host_port + "' is not a port number"};
    boost::system::error_code ec;
    auto addr = asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
    if (ec)
        return error{"config.invalid", "listen host '" + host + "' is not an IP address"};
    tcp::endpoint ep(addr, static_cast<unsigned short>(port));
    acceptor_.open(ep.protocol(), ec);
    if (!ec)
        acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec)
        acceptor_.bind(ep, ec);
    if (!ec)
        acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
        return error{"listen.failed", "cannot listen on " + host_port + ": " + ec.message()};
    auto local = acceptor_.local_endpoint(ec);
    port_ = local.port();
    address_ = (addr.is_v6() ? "[" + addr.to_string() + "]" : addr.to_string()) + ":" + std::to_string(port_);
    return {};
}

void http_api::start() { asio::co_spawn(acceptor_.get_executor(), accept_loop(), asio::detached); }

void http_api::stop() {
    if (stopping_.exchange(true))
        return;
    asio::post(acceptor_.get_executor(), [this] {
        boost::system::error_code ec;
        acceptor_.close(ec);
    });
    std::lock_guard lk(mu_);
    for (auto& [id, s] : open_) {
        // On the session's strand, and only if the session is still open: it may end (and its
        // socket go) between this post and the handler (seen by ASan).
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
}

asio::awaitable<void> http_api::accept_loop() {
    while (!stopping_) {
        // The connection's executor: the next single-threaded context, else a strand.
        asio::any_io_executor to;
        if (contexts_.empty())
            to = asio::make_strand(ioc_);
        else
            to = contexts_[next_context_++ % contexts_.size()]->get_executor();
        auto [ec, sock] = co_await acceptor_.async_accept(to, use_tuple);
        if (ec) {
            if (ec == asio::error::operation_aborted || stopping_)
                break;
            log::warn("http.accept", {{"reason", ec.message()}});
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

asio::awaitable<void> http_api::session(tcp::socket sock, std::uint64_t sid) {
    beast::tcp_stream stream(std::move(sock));
    {
        std::lock_guard lk(mu_);
        open_[sid] = &stream.socket();
    }
    struct unregister {
        http_api* self;
        std::uint64_t sid;
        ~unregister() {
            std::lock_guard lk(self->mu_);
            self->open_.erase(sid);
            --self->sessions_;
        }
    } guard{this, sid};
    int active = ++sessions_;
    const auto timeout = std::chrono::milliseconds(cfg_.http_timeout_ms);
    beast::flat_buffer buf;
    std::string wire;  // the answer as sent, reused for every answer on this connection
    // Beast reads max(512, free capacity) bytes at a time, and the parser empties the buffer as it
    // goes, so an empty buffer never grows: a 4 KB message took nine reads (issue 3's strace). With
    // room reserved, a request that has arrived is read in one.
    buf.reserve(read_buffer_bytes);

    if (active > cfg_.max_connections) {
        auto res = error_response(503, "busy", "too many connections; try again");
        res.set(http::field::retry_after, "1");
        res.keep_alive(false);
        res.prepare_payload();
        stream.expires_after(timeout);
        co_await http::async_write(stream, res, use_tuple);
        co_return;
    }

    while (!stopping_) {
        http::request_parser<http::string_body> parser;
        parser.body_limit(cfg_.max_body_bytes);
        parser.header_limit(64 * 1024);
        stream.expires_after(timeout);
        auto [ec, n] = co_await http::async_read(stream, buf, parser, use_tuple);
        if (ec) {
            if (ec == http::error::body_limit) {
                auto res = error_response(413, "request.too-large",
                                          "the body exceeds max-body-bytes (" + std::to_string(cfg_.max_body_bytes) +
                                              " bytes)");
                res.keep_alive(false);
                res.prepare_payload();
                co_await http::async_write(stream, res, use_tuple);
            } else if (ec != http::error::end_of_stream && ec != beast::error::timeout &&
                       ec != asio::error::operation_aborted && ec != asio::error::connection_reset &&
                       ec != asio::error::eof && ec.category() == http::make_error_code(http::error::bad_target).category()) {
                auto res = error_response(400, "request.malformed", "malformed HTTP request: " + ec.message());
                res.keep_alive(false);
                res.prepare_payload();
                co_await http::async_write(stream, res, use_tuple);
            }
            break;
        }
        request req = parser.release();
        // The read timeout must not cut the request's own processing (the engine bounds that).
        stream.expires_never();
        response res = co_await handle(req);
        res.keep_alive(req.keep_alive() && !stopping_);
        res.prepare_payload();
        // The whole answer in one buffer and one write: Beast's serializer walks header and body
        // as a sequence of buffer views per write, which cost more than the answer (issue 3).
        const std::string& out = serialize(res, wire);
        stream.expires_after(timeout);
        auto [wec, wn] = co_await asio::async_write(stream, asio::buffer(out), use_tuple);
        if (wec || !res.keep_alive())
            break;
    }
    boost::system::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
}

} // namespace broker

namespace broker {

asio::awaitable<http_api::response> http_api::post_message(request& req) {
    std::string_view ct = media_type(req[http::field::content_type]);
    std::string document;
    if (iequals(ct, "application/json")) {
        boost::system::error_code ec;
        json::value v = json::parse(req.body(), ec);
        if (ec || !v.is_object())
            co_return error_response(400, "request.invalid", "the JSON body is not a JSON object");
        auto& o = v.as_object();
        auto* bd = o.if_contains("businessDocument");
        if (!bd || !bd->is_string())
            co_return error_response(400, "request.invalid", "businessDocument (base64 string) is required");
        if (auto* cte = o.if_contains("contentTransferEncoding");
            cte && (!cte->is_string() || !iequals(cte->as_string(), "base64")))
            co_return error_response(400, "request.invalid", "contentTransferEncoding must be base64");
        if (auto* c = o.if_contains("contentType");
            c && (!c->is_string() || (!iequals(media_type(c->as_string()), "application/xml") &&
                                      !iequals(media_type(c->as_string()), "text/xml"))))
            co_return error_response(415, "request.unsupported-media-type",
                                     "contentType must be application/xml");
        if (!base64_decode(bd->as_string(), document))
            co_return error_response(400, "request.invalid", "businessDocument is not valid base64");
    } else if (iequals(ct, "application/xml") || iequals(ct, "text/xml") || ct.empty()) {
        document = std::move(req.body());
    } else {
        co_return error_response(415, "request.unsupported-media-type",
                                 "send application/xml (the MsgHead/AppRec document) or application/json "
                                 "({\"businessDocument\": base64})");
    }
    if (document.empty())
        co_return error_response(400, "request.invalid", "the business document is empty");
    intake_answer a = co_await engine_.intake(std::move(document), "http");
    auto res = json_response(static_cast<unsigned>(a.status), std::move(a.json));
    if (a.duplicate)
        res.set("X-EDIBroker-Duplicate", "true");
    if (a.status == 503)
        res.set(http::field::retry_after, "1");
    if (!a.id.empty())
        res.set(http::field::location, "/Messages/" + a.id);
    co_return res;
}

asio::awaitable<http_api::response> http_api::handle(request& req) {
    std::string_view target = req.target();
    std::string_view path = target.substr(0, target.find('?'));
    std::string_view query = path.size() < target.size() ? target.substr(path.size() + 1) : std::string_view{};
    auto parts = split(path, '/');
    auto method = req.method();
    bool messages = !parts.empty() && iequals(parts[0], "messages");
    for (auto* ext : extensions_)
        if (auto r = co_await ext->handle(req, path, query))
            co_return std::move(*r);

    if (!parts.empty() && iequals(parts[0], "appointments")) {
        // Digihelse (issue 6): the patient's planned appointments (the portal's HentPlanlagteTimer).
        auto a = digihelse::appointments_endpoint(engine_.store().thread_reader(), req.method_string(), parts, query);
        co_return json_response(static_cast<unsigned>(a.status), std::move(a.json));
    }
    if (parts.size() == 1 && parts[0] == "healthz") {
        if (method != http::verb::get)
            co_return error_response(405, "method-not-allowed", "use GET");
        json::object o;
        o["status"] = "ok";
        o["storeQueueDepth"] = engine_.store().queue_depth();
        auto rs = engine_.routing();
        o["rules"] = rs->rules.rules.size();
        o["adapters"] = rs->rules.adapters.size();
        o["parties"] = rs->registry.size();
        co_return json_response(200, json::serialize(o));
    }
    if (!messages)
        co_return error_response(404, "not-found", "no such endpoint: " + std::string(path));

    auto& rd = engine_.store().thread_reader();

    if (parts.size() == 1) {
        if (method == http::verb::post)
            co_return co_await post_message(req);
        if (method != http::verb::get)
            co_return error_response(405, "method-not-allowed", "use POST to send, GET to list");
        auto q = parse_query(query);
        store::message_filter f;
        f.unread_only = true;
        auto it = q.find("receiverherids");
        if (it == q.end() || it->second.empty())
            co_return error_response(400, "request.invalid", "receiverHerIds is required (comma-separated HER-ids)");
        f.receivers = split(it->second, ',');
        for (auto& h : f.receivers)
            if (!all_digits(h))
                co_return error_response(400, "request.invalid", "'" + h + "' is not a HER-id");
        if (auto m = q.find("messagestofetch"); m != q.end()) {
            int n = 0;
            auto [p, ec] = std::from_chars(m->second.data(), m->second.data() + m->second.size(), n);
            if (ec != std::errc{} || n < 1 || n > 1000)
                co_return error_response(400, "request.invalid", "messagesToFetch must be 1..1000");
            f.limit = n;
        }
        if (auto s = q.find("senderherid"); s != q.end())
            f.sender = s->second;
        auto rows = rd.list(f);
        if (!rows)
            co_return error_response(500, rows.error().code, rows.error().message);
        json::array a;
        for (auto& r : *rows)
            a.push_back(row_json(r));
        co_return json_response(200, json::serialize(a));
    }

    const std::string id(parts[1]);
    auto row = rd.get(id);
    if (!row)
        co_return error_response(500, row.error().code, row.error().message);

    if (parts.size() == 4 && iequals(parts[2], "read")) {
        if (method != http::verb::put)
            co_return error_response(405, "method-not-allowed", "use PUT");
        intake_answer a = co_await engine_.mark_read(id, std::string(parts[3]));
        co_return json_response(static_cast<unsigned>(a.status), std::move(a.json));
    }
    if (parts.size() == 4 && iequals(parts[2], "apprec")) {
        if (method != http::verb::post)
            co_return error_response(405, "method-not-allowed", "use POST");
        if (!iequals(media_type(req[http::field::content_type]), "application/json"))
            co_return error_response(415, "request.unsupported-media-type", "send application/json");
        intake_answer a = co_await engine_.apprec_for(id, std::string(parts[3]), req.body());
        auto res = json_response(static_cast<unsigned>(a.status), std::move(a.json));
        if (!a.id.empty())
            res.set(http::field::location, "/Messages/" + a.id);
        co_return res;
    }
    if (!*row)
        co_return error_response(404, "not-found", "no message with id " + id);
    if (method != http::verb::get)
        co_return error_response(405, "method-not-allowed", "use GET");
    const store::message_row& m = **row;

    if (parts.size() == 2)
        co_return json_response(200, json::serialize(row_json(m)));
    if (parts.size() == 3 && iequals(parts[2], "status")) {
        // ?waitForState=delivered,apprec-ok&timeoutMs=5000: answer once the message is in one of
        // those states ("read" also matches a read receipt), or at the timeout with what it is.
        auto q = parse_query(query);
        store::message_row cur = m;
        if (auto ws = q.find("waitforstate"); ws != q.end()) {
            auto wanted = split(ws->second, ',');
            int timeout_ms = 10000;
            if (auto t = q.find("timeoutms"); t != q.end()) {
                auto [p, ec] = std::from_chars(t->second.data(), t->second.data() + t->second.size(), timeout_ms);
                if (ec != std::errc{} || timeout_ms < 0 || timeout_ms > 120000)
                    co_return error_response(400, "request.invalid", "timeoutMs must be 0..120000");
            }
            auto matches = [&](const store::message_row& r) {
                for (auto& w : wanted)
                    if (w == r.state || (w == "read" && r.read_at != 0))
                        return true;
                return false;
            };
            auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
            auto ex = co_await asio::this_coro::executor;
            while (!matches(cur) && std::chrono::steady_clock::now() < deadline) {
                auto w = engine_.watch(id, deadline, ex);
                // Fresh reader each time: after a co_await this coroutine may run on another thread.
                auto again = engine_.store().thread_reader().get(id);
                if (!again || !*again) {
                    engine_.unwatch(w);
                    break;
                }
                cur = **again;
                if (matches(cur)) {
                    engine_.unwatch(w);
                    break;
                }
                co_await engine_.wait(w);
                if (auto r2 = engine_.store().thread_reader().get(id); r2 && *r2)
                    cur = **r2;
            }
        }
        auto ts = engine_.store().thread_reader().transitions(id);
        if (!ts)
            co_return error_response(500, ts.error().code, ts.error().message);
        json::object so = status_json(cur, *ts);
        digihelse::add_status(engine_.store().thread_reader(), id, so);  // patient, acting person, thread (issue 6)
        co_return json_response(200, json::serialize(so));
    }
    if (parts.size() == 3 && (iequals(parts[2], "business-document") || iequals(parts[2], "apprec"))) {
        std::string doc_id = id;
        if (iequals(parts[2], "apprec")) {
            if (m.apprec_id.empty())
                co_return error_response(404, "not-found", "message " + id + " has no AppRec yet");
            doc_id = m.apprec_id;
        }
        auto body = rd.body(doc_id);
        if (!body)
            co_return error_response(500, body.error().code, body.error().message);
        if (!*body)
            co_return error_response(404, "not-found", "no document for " + doc_id);
        if (doc_id == id && (m.state == std::string_view(store::state::waiting) ||
                             (m.state == std::string_view(store::state::routed) && engine_.waits_for_pickup(m.adapter))))
            co_await engine_.fetched(id);
        std::string_view accept = req[http::field::accept];
        if (accept.find("application/json") != std::string_view::npos) {
            // EDI 2.0 shape.
            static const char* tbl = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            const std::string& in = **body;
            std::string b64;
            b64.reserve((in.size() + 2) / 3 * 4);
            std::size_t i = 0;
            for (; i + 2 < in.size(); i += 3) {
                unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8) |
                             static_cast<unsigned char>(in[i + 2]);
                b64 += tbl[(v >> 18) & 63];
                b64 += tbl[(v >> 12) & 63];
                b64 += tbl[(v >> 6) & 63];
                b64 += tbl[v & 63];
            }
            if (i < in.size()) {
                unsigned v = static_cast<unsigned char>(in[i]) << 16;
                if (i + 1 < in.size())
                    v |= static_cast<unsigned char>(in[i + 1]) << 8;
                b64 += tbl[(v >> 18) & 63];
                b64 += tbl[(v >> 12) & 63];
                b64 += i + 1 < in.size() ? tbl[(v >> 6) & 63] : '=';
                b64 += '=';
            }
            json::object o;
            o["businessDocument"] = b64;
            o["contentType"] = "application/xml";
            o["contentTransferEncoding"] = "base64";
            co_return json_response(200, json::serialize(o));
        }
        response r{http::status::ok, 11};
        r.set(http::field::server, "edibroker");
        r.set(http::field::content_type, "application/xml");
        r.body() = std::move(**body);
        co_return r;
    }
    co_return error_response(404, "not-found", "no such endpoint: " + std::string(path));
}

} // namespace broker
