// The vendor receiver: a small HTTP/1.1 server (one thread, Asio coroutines, keep-alive) that
// counts POSTs by X-EDIBroker-MsgId. It parses only what it needs (request line, Content-Length,
// the MsgId header) so that it costs the machine little next to the broker it measures.
#include "bench.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <charconv>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <unordered_map>

#include <pthread.h>

namespace bench {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

bool iequal_prefix(std::string_view line, std::string_view name) {
    if (line.size() < name.size())
        return false;
    for (std::size_t i = 0; i < name.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(line[i])) != name[i])
            return false;
    return true;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
        s.remove_suffix(1);
    return s;
}

struct entry {
    std::uint32_t count = 0;
    std::int64_t first_us = 0;
};

} // namespace

struct receiver::impl {
    asio::io_context ioc{1};
    tcp::acceptor acceptor{ioc};
    std::thread thread;
    // Touched only on the receiver's thread.
    std::unordered_map<std::string, entry> seen;
    std::uint64_t requests = 0, without_id = 0, duplicates = 0;
    std::unordered_map<std::uint32_t, std::uint64_t> per_run;  // distinct MsgIds per run tag
    struct waiter {
        std::uint32_t run;
        std::uint64_t n;
        asio::steady_timer* timer;
    };
    std::vector<waiter> waiters;
    std::mutex m;
    std::condition_variable cv;
    bool stopped = false;

    std::string stats_json() const {
        return "{\"requests\":" + std::to_string(requests) + ",\"unique\":" + std::to_string(seen.size()) +
               ",\"duplicates\":" + std::to_string(duplicates) + ",\"without_id\":" + std::to_string(without_id) + "}";
    }

    std::string ids_of_run(std::string_view run) const {
        std::string out;
        for (const auto& [id, e] : seen) {
            if (!run.empty() && std::string_view(id).substr(0, run.size()) != run)
                continue;
            out += id;
            out += ' ';
            out += std::to_string(e.count);
            out += ' ';
            out += std::to_string(e.first_us);
            out += '\n';
        }
        return out;
    }

    /// GET /wait: "run=RRRRRRRR&n=N&timeoutMs=T" (in this order).
    asio::awaitable<std::uint64_t> wait_for(std::string_view q) {
        std::uint32_t run = 0;
        std::uint64_t n = 0;
        long long timeout_ms = 0;
        for (std::string_view rest = q; !rest.empty();) {
            auto amp = rest.find('&');
            std::string_view kv = rest.substr(0, amp);
            rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
            auto eq = kv.find('=');
            if (eq == std::string_view::npos)
                continue;
            std::string_view k = kv.substr(0, eq), v = kv.substr(eq + 1);
            if (k == "run")
                std::from_chars(v.data(), v.data() + v.size(), run, 16);
            else if (k == "n")
                std::from_chars(v.data(), v.data() + v.size(), n);
            else if (k == "timeoutMs")
                std::from_chars(v.data(), v.data() + v.size(), timeout_ms);
        }
        if (per_run[run] < n) {
            asio::steady_timer timer(ioc, std::chrono::milliseconds(std::min(timeout_ms, 600000LL)));
            waiters.push_back({run, n, &timer});
            co_await timer.async_wait(use_tuple);
            std::erase_if(waiters, [&](const waiter& w) { return w.timer == &timer; });
        }
        co_return per_run[run];
    }

    asio::awaitable<void> accept_loop() {
        for (;;) {
            auto [ec, sock] = co_await acceptor.async_accept(use_tuple);
            if (ec) {
                if (ec == asio::error::operation_aborted || !acceptor.is_open())
                    co_return;
                continue;
            }
            sock.set_option(tcp::no_delay(true), ec);
            asio::co_spawn(ioc, session(std::move(sock)), asio::detached);
        }
    }

    asio::awaitable<void> session(tcp::socket sock) {
        std::string buf;
        buf.reserve(16384);
        std::size_t have = 0;  // bytes of buf that hold data
        buf.resize(16384);
        std::string out;
        for (;;) {
            // Read until the end of the headers.
            std::size_t hdr_end;
            for (;;) {
                auto p = std::string_view(buf.data(), have).find("\r\n\r\n");
                if (p != std::string_view::npos) {
                    hdr_end = p + 4;
                    break;
                }
                if (have == buf.size()) {
                    if (buf.size() >= (1u << 20))
                        co_return;  // headers over 1 MiB: not a client of ours
                    buf.resize(buf.size() * 2);
                }
                auto [ec, n] = co_await sock.async_read_some(asio::buffer(buf.data() + have, buf.size() - have), use_tuple);
                if (ec)
                    co_return;
                have += n;
            }
            std::string_view head(buf.data(), hdr_end);
            std::string_view request_line = head.substr(0, head.find("\r\n"));
            std::size_t content_length = 0;
            bool close = false;
            for (std::size_t pos = request_line.size() + 2; pos < head.size();) {
                auto eol = head.find("\r\n", pos);
                std::string_view line = head.substr(pos, eol - pos);
                pos = eol + 2;
                if (iequal_prefix(line, "content-length:")) {
                    auto v = trim(line.substr(15));
                    std::from_chars(v.data(), v.data() + v.size(), content_length);
                } else if (iequal_prefix(line, "connection:")) {
                    auto v = trim(line.substr(11));
                    close = v.size() == 5 && iequal_prefix(v, "close");
                }
            }
            // Read the rest of the body (and discard it).
            std::size_t total = hdr_end + content_length;
            if (total > buf.size())
                buf.resize(total);
            while (have < total) {
                auto [ec, n] = co_await sock.async_read_some(asio::buffer(buf.data() + have, buf.size() - have), use_tuple);
                if (ec)
                    co_return;
                have += n;
            }
            head = std::string_view(buf.data(), hdr_end);
            request_line = head.substr(0, head.find("\r\n"));
            out.clear();
            if (request_line.rfind("POST ", 0) == 0) {
                ++requests;
                // The headers again: 'buf' may have moved while the body was read.
                std::string_view msg_id;
                for (std::size_t pos = request_line.size() + 2; pos < head.size();) {
                    auto eol = head.find("\r\n", pos);
                    std::string_view line = head.substr(pos, eol - pos);
                    pos = eol + 2;
                    if (iequal_prefix(line, "x-edibroker-msgid:"))
                        msg_id = trim(line.substr(18));
                }
                if (msg_id.empty()) {
                    ++without_id;
                } else {
                    auto [it, fresh] = seen.try_emplace(std::string(msg_id));
                    if (fresh) {
                        it->second.first_us = mono_us();
                        std::uint32_t run = 0;
                        std::int64_t t = 0;
                        if (parse_msg_id(msg_id, run, t)) {
                            std::uint64_t c = ++per_run[run];
                            for (auto& w : waiters)
                                if (w.run == run && c >= w.n)
                                    w.timer->cancel();
                        }
                    } else {
                        ++duplicates;
                    }
                    ++it->second.count;
                }
                out = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
            } else if (request_line.rfind("GET ", 0) == 0) {
                std::string_view target = request_line.substr(4, request_line.find(' ', 4) - 4);
                std::string body;
                int status = 200;
                if (target == "/stats") {
                    body = stats_json();
                } else if (target.rfind("/wait?", 0) == 0) {
                    body = std::to_string(co_await wait_for(target.substr(6)));
                } else if (target.rfind("/ids", 0) == 0) {
                    auto q = target.find("run=");
                    body = ids_of_run(q == std::string_view::npos ? std::string_view{} : target.substr(q + 4));
                } else {
                    status = 404;
                }
                out = "HTTP/1.1 " + std::to_string(status) + (status == 200 ? " OK" : " Not Found") +
                      "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
            } else {
                out = "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
                close = true;
            }
            auto [wec, wn] = co_await asio::async_write(sock, asio::buffer(out), use_tuple);
            if (wec || close)
                co_return;
            // Keep what followed this request (pipelined bytes).
            std::memmove(buf.data(), buf.data() + total, have - total);
            have -= total;
        }
    }
};

receiver::receiver(unsigned short port) : impl_(std::make_unique<impl>()) {
    boost::system::error_code ec;
    tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), port);
    impl_->acceptor.open(ep.protocol(), ec);
    if (!ec)
        impl_->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec)
        impl_->acceptor.bind(ep, ec);
    if (!ec)
        impl_->acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
        throw std::runtime_error("receiver cannot listen on 127.0.0.1:" + std::to_string(port) + ": " + ec.message());
    impl* p = impl_.get();
    asio::co_spawn(p->ioc, p->accept_loop(), asio::detached);
    p->thread = std::thread([p] {
        pthread_setname_np(pthread_self(), "bench-receiver");
        p->ioc.run();
    });
}

receiver::~receiver() { stop(); }

unsigned short receiver::port() const { return impl_->acceptor.local_endpoint().port(); }

void receiver::wait() {
    std::unique_lock lk(impl_->m);
    impl_->cv.wait(lk, [this] { return impl_->stopped; });
}

void receiver::stop() {
    {
        std::lock_guard lk(impl_->m);
        if (impl_->stopped)
            return;
        impl_->stopped = true;
    }
    impl_->ioc.stop();
    if (impl_->thread.joinable())
        impl_->thread.join();
    impl_->cv.notify_all();
}

} // namespace bench
