#include "tools/http_client.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

#include <optional>
#include <strings.h>

namespace broker::tools {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

result<http_url> parse_url(const std::string& url) {
    const std::string scheme = "http://";
    if (url.rfind("https://", 0) == 0)
        return error{"usage.invalid", "https is not supported here; use http:// (e.g. http://127.0.0.1:8080)"};
    if (url.rfind(scheme, 0) != 0)
        return error{"usage.invalid", "'" + url + "' is not an http:// URL"};
    std::string rest = url.substr(scheme.size());
    http_url u;
    auto slash = rest.find('/');
    std::string hostport = rest.substr(0, slash);
    if (slash != std::string::npos) {
        u.prefix = rest.substr(slash);
        while (!u.prefix.empty() && u.prefix.back() == '/')
            u.prefix.pop_back();
    }
    auto colon = hostport.rfind(':');
    if (colon != std::string::npos && hostport.find(']') == std::string::npos) {
        u.host = hostport.substr(0, colon);
        u.port = hostport.substr(colon + 1);
    } else {
        u.host = hostport;
    }
    if (u.host.size() > 2 && u.host.front() == '[')
        u.host = u.host.substr(1, u.host.size() - 2);
    if (u.host.empty() || u.port.empty())
        return error{"usage.invalid", "'" + url + "' needs a host (http://HOST:PORT)"};
    return u;
}

std::string http_reply::header(const std::string& name) const {
    for (auto& [k, v] : headers)
        if (strcasecmp(k.c_str(), name.c_str()) == 0)
            return v;
    return {};
}

struct http_client::impl {
    http_url url;
    asio::io_context ioc;
    std::optional<beast::tcp_stream> stream;
    beast::flat_buffer buf;

    /// Run the io_context until 'done' or the deadline; false on timeout.
    bool run() {
        ioc.restart();
        ioc.run();
        return true;
    }

    result<void> connect(std::chrono::milliseconds timeout) {
        stream.emplace(ioc);
        buf.clear();
        tcp::resolver res(ioc);
        boost::system::error_code ec;
        auto eps = res.resolve(url.host, url.port, ec);
        if (ec)
            return error{"http.connect", "cannot resolve " + url.host + ": " + ec.message()};
        stream->expires_after(timeout);
        stream->async_connect(eps, [&](boost::system::error_code e, const tcp::endpoint&) { ec = e; });
        run();
        if (ec) {
            stream.reset();
            return error{"http.connect", "cannot connect to " + url.host + ":" + url.port + ": " + ec.message()};
        }
        return {};
    }

    /// One exchange on the open connection. 'fresh' tells whether it was just opened.
    result<http_reply> exchange(const http::request<http::string_body>& req, std::chrono::milliseconds timeout,
                                bool& retry_ok) {
        boost::system::error_code ec;
        retry_ok = false;
        stream->expires_after(timeout);
        http::async_write(*stream, req, [&](boost::system::error_code e, std::size_t) { ec = e; });
        run();
        if (ec) {
            retry_ok = true;
            return error{"http.io", "sending the request failed: " + ec.message()};
        }
        http::response_parser<http::string_body> parser;
        parser.body_limit(std::uint64_t(1) << 31);
        std::size_t got = 0;
        http::async_read(*stream, buf, parser, [&](boost::system::error_code e, std::size_t n) {
            ec = e;
            got = n;
        });
        run();
        if (ec) {
            // A kept-alive connection the server closed: nothing was read, try once more.
            retry_ok = got == 0 && (ec == http::error::end_of_stream || ec == asio::error::connection_reset ||
                                    ec == asio::error::eof);
            if (ec == beast::error::timeout)
                return error{"http.timeout", "no answer within " + std::to_string(timeout.count()) + " ms"};
            return error{"http.io", "reading the answer failed: " + ec.message()};
        }
        auto res = parser.release();
        http_reply r;
        r.status = static_cast<int>(res.result_int());
        r.body = std::move(res.body());
        for (auto& f : res)
            r.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
        if (!res.keep_alive())
            stream.reset();
        return r;
    }
};

http_client::http_client(http_url url) : impl_(std::make_unique<impl>()) { impl_->url = std::move(url); }

http_client::~http_client() = default;

result<http_reply> http_client::request(const std::string& method, const std::string& target,
                                        const std::string& body, const std::string& content_type,
                                        std::chrono::milliseconds timeout) {
    http::request<http::string_body> req{http::string_to_verb(method), impl_->url.prefix + target, 11};
    req.set(http::field::host, impl_->url.host + ":" + impl_->url.port);
    req.set(http::field::user_agent, "edibroker-cli");
    if (!content_type.empty())
        req.set(http::field::content_type, content_type);
    req.body() = body;
    req.keep_alive(true);
    req.prepare_payload();
    for (int attempt = 0; attempt < 2; ++attempt) {
        bool fresh = !impl_->stream;
        if (fresh)
            if (auto c = impl_->connect(timeout); !c)
                return c.error();
        bool retry_ok = false;
        auto r = impl_->exchange(req, timeout, retry_ok);
        if (r)
            return r;
        impl_->stream.reset();
        if (!retry_ok || fresh)
            return r.error();
    }
    return error{"http.io", "the connection was closed twice"};
}

} // namespace broker::tools
