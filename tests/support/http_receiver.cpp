// testing::http_receiver: Boost.Beast, one accept thread (Asio), one blocking thread per connection.
#include "http_receiver.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <list>
#include <stdexcept>
#include <thread>

#include <sys/socket.h>

namespace testing {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

bool ci_less::operator()(std::string_view a, std::string_view b) const {
    return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
        return std::tolower(static_cast<unsigned char>(x)) < std::tolower(static_cast<unsigned char>(y));
    });
}

void gate::open() {
    // Notify under the lock: a waiter may destroy the gate as soon as it sees it open.
    std::lock_guard lk(m_);
    open_ = true;
    cv_.notify_all();
}

bool gate::is_open() const {
    std::lock_guard lk(m_);
    return open_;
}

void gate::wait() {
    std::unique_lock lk(m_);
    cv_.wait(lk, [&] { return open_; });
}

bool gate::wait_for(std::chrono::milliseconds timeout) {
    std::unique_lock lk(m_);
    return cv_.wait_for(lk, timeout, [&] { return open_; });
}

struct http_receiver::impl {
    net::io_context ioc;
    tcp::acceptor acceptor{ioc};
    unsigned short port = 0;
    std::thread accept_thread;

    mutable std::mutex m;
    mutable std::condition_variable cv;
    std::vector<recorded_request> recorded;          // guarded by m
    reply_handler on_request;                        // guarded by m
    bool garbage = false;                            // guarded by m
    after_answer after = after_answer::keep;         // guarded by m
    bool stopping = false;                           // guarded by m
    std::size_t connection_count = 0;                // guarded by m

    struct session {
        std::thread t;
        int fd = -1;                  // guarded by m; -1 once the session closed its socket
        std::atomic<bool> finished{false};
    };
    std::list<session> sessions;      // guarded by m

    impl() {
        on_request = [](const recorded_request&) { return reply{}; };
        boost::system::error_code ec;
        tcp::endpoint ep(net::ip::make_address("127.0.0.1"), 0);
        acceptor.open(ep.protocol(), ec);
        if (!ec)
            acceptor.set_option(net::socket_base::reuse_address(true), ec);
        if (!ec)
            acceptor.bind(ep, ec);
        if (!ec)
            acceptor.listen(net::socket_base::max_listen_connections, ec);
        if (ec)
            throw std::runtime_error("http_receiver: cannot listen on 127.0.0.1: " + ec.message());
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
        // Wake every session blocked in a read; each closes its own socket.
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
                return;  // closed: we are stopping
            if (ec) {
                do_accept();  // a transient failure (peer gone before accept): keep listening
                return;
            }
            std::lock_guard lk(m);
            if (stopping)
                return;
            reap_locked();
            std::size_t number = ++connection_count;
            sessions.emplace_back();
            session& s = sessions.back();
            s.fd = sock.native_handle();
            s.t = std::thread([this, &s, number, sock = std::move(sock)]() mutable { serve(std::move(sock), s, number); });
            do_accept();
        });
    }

    /// Joins sessions that have ended. Caller holds m.
    void reap_locked() {
        for (auto it = sessions.begin(); it != sessions.end();) {
            if (it->finished && it->t.joinable()) {
                it->t.join();
                it = sessions.erase(it);
            } else {
                ++it;
            }
        }
    }

    /// One connection: read requests, record them, answer, until the peer closes or asks to.
    void serve(tcp::socket sock, session& self, std::size_t number) {
        beast::flat_buffer buf;
        boost::system::error_code ec;
        for (;;) {
            http::request_parser<http::string_body> parser;
            parser.body_limit(256 * 1024 * 1024);
            http::read(sock, buf, parser, ec);
            if (ec)
                break;
            auto& req = parser.get();
            recorded_request rr;
            rr.method = std::string(req.method_string());
            rr.target = std::string(req.target());
            rr.body = req.body();
            rr.connection = number;
            for (const auto& f : req) {
                std::string name(f.name_string());
                auto [it, fresh] = rr.headers.emplace(name, std::string(f.value()));
                if (!fresh)
                    it->second += ", " + std::string(f.value());
            }
            reply_handler h;
            bool garbage_now = false;
            after_answer after_now = after_answer::keep;
            {
                std::lock_guard lk(m);
                recorded.push_back(rr);
                h = on_request;
                garbage_now = garbage;
                after_now = after;
                cv.notify_all();
            }

            if (garbage_now) {
                static constexpr std::string_view junk = "THIS IS NOT HTTP\r\n\x01\x02garbage\r\n\r\n";
                net::write(sock, net::buffer(junk.data(), junk.size()), ec);
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
            res.set(http::field::server, "edibroker-test-receiver");
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
            res.keep_alive(req.keep_alive() && after_now != after_answer::close);
            res.prepare_payload();
            http::write(sock, res, ec);
            if (ec || !res.keep_alive() || after_now == after_answer::drop)
                break;
        }
        // Close under the lock so the destructor never shuts down a reused descriptor.
        std::lock_guard lk(m);
        sock.shutdown(tcp::socket::shutdown_send, ec);
        sock.close(ec);
        self.fd = -1;
        self.finished = true;
    }
};

http_receiver::http_receiver() : impl_(std::make_unique<impl>()) {}
http_receiver::~http_receiver() = default;

unsigned short http_receiver::port() const { return impl_->port; }

std::string http_receiver::url(std::string_view path) const {
    std::string p(path);
    if (p.empty() || p.front() != '/')
        p.insert(p.begin(), '/');
    return "http://127.0.0.1:" + std::to_string(impl_->port) + p;
}

void http_receiver::respond_with(int status, std::string body) {
    std::lock_guard lk(impl_->m);
    impl_->on_request = [status, body = std::move(body)](const recorded_request&) { return reply{status, body, {}}; };
}

void http_receiver::set_handler(handler h) {
    std::lock_guard lk(impl_->m);
    impl_->on_request = [h = std::move(h)](const recorded_request& r) {
        auto [status, body] = h(r);
        return reply{status, std::move(body), {}};
    };
}

void http_receiver::set_reply_handler(reply_handler h) {
    std::lock_guard lk(impl_->m);
    impl_->on_request = std::move(h);
}

void http_receiver::send_garbage(bool on) {
    std::lock_guard lk(impl_->m);
    impl_->garbage = on;
}

void http_receiver::set_after_answer(after_answer a) {
    std::lock_guard lk(impl_->m);
    impl_->after = a;
}

std::vector<recorded_request> http_receiver::requests() const {
    std::lock_guard lk(impl_->m);
    return impl_->recorded;
}

std::size_t http_receiver::request_count() const {
    std::lock_guard lk(impl_->m);
    return impl_->recorded.size();
}

bool http_receiver::wait_for_requests(std::size_t n, std::chrono::milliseconds timeout) const {
    std::unique_lock lk(impl_->m);
    return impl_->cv.wait_for(lk, timeout, [&] { return impl_->recorded.size() >= n; });
}

std::size_t http_receiver::connections() const {
    std::lock_guard lk(impl_->m);
    return impl_->connection_count;
}

void http_receiver::clear() {
    std::lock_guard lk(impl_->m);
    impl_->recorded.clear();
}

} // namespace testing
