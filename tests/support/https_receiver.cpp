// testing::https_receiver: Boost.Beast over asio::ssl; one accept thread (Asio), one blocking thread
// per connection (handshake, then requests until the peer closes).
#include "https_receiver.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <atomic>
#include <condition_variable>
#include <list>
#include <mutex>
#include <stdexcept>
#include <thread>

#include <sys/socket.h>

namespace testing {

namespace net = boost::asio;
namespace ssl = net::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

namespace {

std::string peer_cn(SSL* s) {
    X509* cert = SSL_get1_peer_certificate(s);
    if (!cert)
        return {};
    char buf[256] = {0};
    X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, sizeof buf);
    X509_free(cert);
    return buf;
}

} // namespace

struct https_receiver::impl {
    net::io_context ioc;
    tcp::acceptor acceptor{ioc};
    ssl::context ctx{ssl::context::tls_server};
    unsigned short port = 0;
    std::thread accept_thread;

    mutable std::mutex m;
    mutable std::condition_variable cv;
    std::vector<https_recorded_request> recorded;  // guarded by m
    reply_handler on_request;                      // guarded by m
    bool garbage = false;                          // guarded by m
    bool stopping = false;                         // guarded by m
    std::size_t connection_count = 0;              // guarded by m
    std::size_t failed_handshakes = 0;             // guarded by m

    struct session {
        std::thread t;
        int fd = -1;  // guarded by m; -1 once closed
        std::atomic<bool> finished{false};
    };
    std::list<session> sessions;  // guarded by m

    impl(const pki::files& pki, settings s) {
        on_request = [](const https_recorded_request&) { return reply{}; };
        boost::system::error_code ec;
        ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                        ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
        ctx.use_certificate_chain_file(pki.server_cert.string(), ec);
        if (!ec)
            ctx.use_private_key_file(pki.server_key.string(), ssl::context::pem, ec);
        if (!ec)
            ctx.load_verify_file(pki.ca_cert.string(), ec);
        if (ec)
            throw std::runtime_error("https_receiver: cannot load the certificates: " + ec.message());
        if (s.require_client_cert)
            ctx.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
        else
            ctx.set_verify_mode(ssl::verify_none);

        tcp::endpoint ep(net::ip::make_address("127.0.0.1"), s.port);
        acceptor.open(ep.protocol(), ec);
        if (!ec)
            acceptor.set_option(net::socket_base::reuse_address(true), ec);
        if (!ec)
            acceptor.bind(ep, ec);
        if (!ec)
            acceptor.listen(net::socket_base::max_listen_connections, ec);
        if (ec)
            throw std::runtime_error("https_receiver: cannot listen on 127.0.0.1: " + ec.message());
        port = acceptor.local_endpoint().port();
        do_accept();
        accept_thread = std::thread([this] { ioc.run(); });
    }

    ~impl() {
        {
            std::lock_guard lk(m);
            stopping = true;
        }
        net::post(ioc, [this] {
            boost::system::error_code ec;
            acceptor.close(ec);
        });
        accept_thread.join();
        {
            std::lock_guard lk(m);
            for (auto& s : sessions)
                if (s.fd >= 0)
                    ::shutdown(s.fd, SHUT_RDWR);
        }
        for (auto& s : sessions)
            if (s.t.joinable())
                s.t.join();
    }

    void do_accept() {
        acceptor.async_accept([this](boost::system::error_code ec, tcp::socket sock) {
            if (ec == net::error::operation_aborted || !acceptor.is_open())
                return;
            if (ec) {
                do_accept();
                return;
            }
            std::lock_guard lk(m);
            if (stopping)
                return;
            for (auto it = sessions.begin(); it != sessions.end();) {
                if (it->finished && it->t.joinable()) {
                    it->t.join();
                    it = sessions.erase(it);
                } else {
                    ++it;
                }
            }
            std::size_t number = ++connection_count;
            sessions.emplace_back();
            session& s = sessions.back();
            s.fd = sock.native_handle();
            s.t = std::thread([this, &s, number, sock = std::move(sock)]() mutable { serve(std::move(sock), s, number); });
            do_accept();
        });
    }

    void serve(tcp::socket sock, session& self, std::size_t number) {
        boost::system::error_code ec;
        ssl::stream<tcp::socket> stream(std::move(sock), ctx);
        stream.handshake(ssl::stream_base::server, ec);
        if (ec) {
            std::lock_guard lk(m);
            ++failed_handshakes;
            cv.notify_all();
        } else {
            std::string cn = peer_cn(stream.native_handle());
            beast::flat_buffer buf;
            for (;;) {
                http::request_parser<http::string_body> parser;
                parser.body_limit(256 * 1024 * 1024);
                http::read(stream, buf, parser, ec);
                if (ec)
                    break;
                auto& req = parser.get();
                https_recorded_request rr;
                rr.method = std::string(req.method_string());
                rr.target = std::string(req.target());
                rr.body = req.body();
                rr.connection = number;
                rr.client_cn = cn;
                for (const auto& f : req) {
                    auto [it, fresh] = rr.headers.emplace(std::string(f.name_string()), std::string(f.value()));
                    if (!fresh)
                        it->second += ", " + std::string(f.value());
                }
                reply_handler h;
                bool garbage_now = false;
                {
                    std::lock_guard lk(m);
                    recorded.push_back(rr);
                    h = on_request;
                    garbage_now = garbage;
                    cv.notify_all();
                }
                if (garbage_now) {
                    static constexpr std::string_view junk = "THIS IS NOT HTTP\r\n\x01\x02garbage\r\n\r\n";
                    net::write(stream, net::buffer(junk.data(), junk.size()), ec);
                    break;
                }
                reply rep;
                try {
                    rep = h(rr);
                } catch (...) {
                    rep = reply{500, "handler threw", {}};
                }
                http::response<http::string_body> res;
                res.version(req.version());
                res.result(static_cast<unsigned>(rep.status));
                res.set(http::field::server, "edibroker-test-https-receiver");
                bool has_ct = false;
                for (const auto& [k, v] : rep.headers) {
                    res.set(k, v);
                    has_ct = has_ct || (!ci_less{}(k, "content-type") && !ci_less{}("content-type", k));
                }
                if (!has_ct && !rep.body.empty()) {
                    char c0 = rep.body.front();
                    res.set(http::field::content_type, c0 == '{' || c0 == '[' ? "application/json" : "text/plain");
                }
                res.body() = std::move(rep.body);
                res.keep_alive(req.keep_alive());
                res.prepare_payload();
                http::write(stream, res, ec);
                if (ec || !res.keep_alive())
                    break;
            }
        }
        std::lock_guard lk(m);
        auto& s = stream.next_layer();
        s.shutdown(tcp::socket::shutdown_both, ec);
        s.close(ec);
        self.fd = -1;
        self.finished = true;
    }
};

https_receiver::https_receiver(const pki::files& pki, settings s) : impl_(std::make_unique<impl>(pki, s)) {}
https_receiver::~https_receiver() = default;

unsigned short https_receiver::port() const { return impl_->port; }

std::string https_receiver::url(std::string_view path) const {
    std::string p(path);
    if (p.empty() || p.front() != '/')
        p.insert(p.begin(), '/');
    return "https://127.0.0.1:" + std::to_string(impl_->port) + p;
}

void https_receiver::respond_with(int status, std::string body) {
    std::lock_guard lk(impl_->m);
    impl_->on_request = [status, body = std::move(body)](const https_recorded_request&) {
        return reply{status, body, {}};
    };
}

void https_receiver::set_reply_handler(reply_handler h) {
    std::lock_guard lk(impl_->m);
    impl_->on_request = std::move(h);
}

void https_receiver::send_garbage(bool on) {
    std::lock_guard lk(impl_->m);
    impl_->garbage = on;
}

std::vector<https_recorded_request> https_receiver::requests() const {
    std::lock_guard lk(impl_->m);
    return impl_->recorded;
}

std::size_t https_receiver::request_count() const {
    std::lock_guard lk(impl_->m);
    return impl_->recorded.size();
}

bool https_receiver::wait_for_requests(std::size_t n, std::chrono::milliseconds timeout) const {
    std::unique_lock lk(impl_->m);
    return impl_->cv.wait_for(lk, timeout, [&] { return impl_->recorded.size() >= n; });
}

std::size_t https_receiver::connections() const {
    std::lock_guard lk(impl_->m);
    return impl_->connection_count;
}

std::size_t https_receiver::handshake_failures() const {
    std::lock_guard lk(impl_->m);
    return impl_->failed_handshakes;
}

bool https_receiver::wait_for_handshake_failures(std::size_t n, std::chrono::milliseconds timeout) const {
    std::unique_lock lk(impl_->m);
    return impl_->cv.wait_for(lk, timeout, [&] { return impl_->failed_handshakes >= n; });
}

} // namespace testing
