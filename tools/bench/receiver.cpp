// The vendor receiver: a small HTTP/1.1 server (one thread, keep-alive) that counts POSTs by
// X-EDIBroker-MsgId. It parses only what it needs (request line, Content-Length, the MsgId
// header) and runs on one epoll set the way nginx does (each socket joins it once, for input; a
// read only when epoll says there is something), so that it costs the machine little next to the
// broker it measures.
#include "bench.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <unordered_map>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

namespace bench {

namespace {

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
    /// One client connection.
    struct conn {
        int fd = -1;
        std::string buf = std::string(16384, '\0');
        std::size_t have = 0;     ///< bytes of buf that hold data
        std::string out;          ///< answers not yet written
        std::size_t out_at = 0;   ///< bytes of 'out' written
        bool close_after = false; ///< close once 'out' is written
        bool want_out = false;    ///< EPOLLOUT asked for
        // A GET /wait that waits for its count
        bool parked = false;
        std::uint32_t wait_run = 0;
        std::uint64_t wait_n = 0;
        std::int64_t wait_deadline = 0;
        std::size_t wait_total = 0;  ///< the length of the parked request in buf
        bool wait_close = false;     ///< it said "Connection: close"
    };

    int ep = -1, listen_fd = -1, wake_fd = -1;
    unsigned short bound_port = 0;
    std::thread thread;
    // Touched only on the receiver's thread.
    std::unordered_map<int, conn> conns;
    std::unordered_map<std::string, entry> seen;
    std::uint64_t requests = 0, without_id = 0, duplicates = 0;
    std::unordered_map<std::uint32_t, std::uint64_t> per_run;  // distinct MsgIds per run tag
    std::size_t parked = 0;
    std::mutex m;
    std::condition_variable cv;
    bool stopped = false;

    ~impl() {
        for (auto& [fd, c] : conns)
            ::close(fd);
        for (int fd : {listen_fd, wake_fd, ep})
            if (fd >= 0)
                ::close(fd);
    }

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

    static void add_answer(conn& c, int status, std::string_view body) {
        c.out += "HTTP/1.1 " + std::to_string(status) + (status == 200 ? " OK" : " Not Found") +
                 "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n";
        c.out += body;
    }

    void close_conn(conn& c) {
        if (c.parked)
            --parked;
        ::close(c.fd);  // also leaves the epoll set
        conns.erase(c.fd);
    }

    /// Writes what is queued; false when the connection is gone (closed here).
    bool flush(conn& c) {
        const send_result r = send_some(c.fd, c.out, c.out_at);
        if (r == send_result::failed) {
            close_conn(c);
            return false;
        }
        if (r == send_result::would_block) {
            want_output(ep, c.fd, static_cast<std::uint64_t>(c.fd), true, c.want_out);
            return true;
        }
        c.out.clear();
        c.out_at = 0;
        want_output(ep, c.fd, static_cast<std::uint64_t>(c.fd), false, c.want_out);
        if (c.close_after) {
            close_conn(c);
            return false;
        }
        return true;
    }

    /// GET /wait: "run=RRRRRRRR&n=N&timeoutMs=T" (in this order). Answers at once when the run
    /// has its count, else parks the connection until it has or the time is up.
    void wait_for(conn& c, std::string_view q, std::size_t total, bool close) {
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
        if (per_run[run] >= n) {
            add_answer(c, 200, std::to_string(per_run[run]));
            return;
        }
        c.parked = true;
        c.wait_run = run;
        c.wait_n = n;
        c.wait_deadline = mono_us() + std::clamp(timeout_ms, 0LL, 600000LL) * 1000;
        c.wait_total = total;
        c.wait_close = close;
        ++parked;
    }

    /// Answers a parked GET /wait (its count reached, or its time up) and goes on with what the
    /// client sent after it; false when the connection is gone.
    bool unpark(conn& c) {
        c.parked = false;
        --parked;
        add_answer(c, 200, std::to_string(per_run[c.wait_run]));
        std::memmove(c.buf.data(), c.buf.data() + c.wait_total, c.have - c.wait_total);
        c.have -= c.wait_total;
        c.close_after = c.wait_close;
        return serve(c);
    }

    void wake_waiters(std::uint32_t run, std::uint64_t count) {
        if (parked == 0)
            return;
        std::vector<int> ready;
        for (auto& [fd, c] : conns)
            if (c.parked && c.wait_run == run && count >= c.wait_n)
                ready.push_back(fd);
        for (int fd : ready)
            if (auto it = conns.find(fd); it != conns.end())
                unpark(it->second);
    }

    void expire_waiters(std::int64_t now) {
        if (parked == 0)
            return;
        std::vector<int> ready;
        for (auto& [fd, c] : conns)
            if (c.parked && c.wait_deadline <= now)
                ready.push_back(fd);
        for (int fd : ready)
            if (auto it = conns.find(fd); it != conns.end())
                unpark(it->second);
    }

    /// Answers every complete request in c's buffer (stopping at a parked GET /wait), then writes
    /// the answers; false when the connection is gone.
    bool serve(conn& c) {
        while (!c.parked && !c.close_after) {
            auto p = std::string_view(c.buf.data(), c.have).find("\r\n\r\n");
            if (p == std::string_view::npos) {
                if (c.have == c.buf.size()) {
                    if (c.buf.size() >= (1u << 20)) {
                        close_conn(c);  // headers over 1 MiB: not a client of ours
                        return false;
                    }
                    c.buf.resize(c.buf.size() * 2);
                }
                break;
            }
            const std::size_t hdr_end = p + 4;
            std::string_view head(c.buf.data(), hdr_end);
            std::string_view request_line = head.substr(0, head.find("\r\n"));
            std::size_t content_length = 0;
            bool close = false;
            std::string_view msg_id;
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
                } else if (iequal_prefix(line, "x-edibroker-msgid:")) {
                    msg_id = trim(line.substr(18));
                }
            }
            const std::size_t total = hdr_end + content_length;
            if (total > c.buf.size()) {
                // The body is not all here and does not fit: make room (the views above die here).
                c.buf.resize(total);
                break;
            }
            if (c.have < total)
                break;
            if (request_line.rfind("POST ", 0) == 0) {
                ++requests;
                if (msg_id.empty()) {
                    ++without_id;
                } else {
                    auto [it, fresh] = seen.try_emplace(std::string(msg_id));
                    ++it->second.count;
                    if (fresh) {
                        it->second.first_us = mono_us();
                        std::uint32_t run = 0;
                        std::int64_t t = 0;
                        if (parse_msg_id(msg_id, run, t))
                            wake_later.emplace_back(run, ++per_run[run]);
                    } else {
                        ++duplicates;
                    }
                }
                c.out += "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
            } else if (request_line.rfind("GET ", 0) == 0) {
                std::string_view target = request_line.substr(4, request_line.find(' ', 4) - 4);
                if (target == "/stats") {
                    add_answer(c, 200, stats_json());
                } else if (target.rfind("/wait?", 0) == 0) {
                    wait_for(c, target.substr(6), total, close);
                    if (c.parked)
                        break;  // the request stays in buf until it is answered
                } else if (target.rfind("/ids", 0) == 0) {
                    auto q = target.find("run=");
                    add_answer(c, 200, ids_of_run(q == std::string_view::npos ? std::string_view{} : target.substr(q + 4)));
                } else {
                    add_answer(c, 404, "");
                }
            } else {
                c.out += "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
                close = true;
            }
            c.close_after = close;
            // Keep what followed this request (pipelined bytes).
            std::memmove(c.buf.data(), c.buf.data() + total, c.have - total);
            c.have -= total;
        }
        return c.out.size() == c.out_at ? true : flush(c);
    }

    /// Input on c: one read (epoll said there is something), then the complete requests.
    void on_input(conn& c) {
        if (c.have == c.buf.size()) {
            // Only a parked client that keeps sending gets here (serve() makes room otherwise).
            if (c.buf.size() >= (1u << 20)) {
                close_conn(c);
                return;
            }
            c.buf.resize(c.buf.size() * 2);
        }
        ssize_t n = ::recv(c.fd, c.buf.data() + c.have, c.buf.size() - c.have, 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        if (n <= 0) {
            close_conn(c);
            return;
        }
        c.have += static_cast<std::size_t>(n);
        if (!c.parked)
            serve(c);
    }

    void accept_all() {
        for (;;) {
            int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0)
                return;  // EAGAIN (all taken), or an error the next event retries
            int one = 1;
            ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            epoll_event ev{};
            ev.events = EPOLLIN;
            ev.data.u64 = static_cast<std::uint64_t>(fd);
            if (::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
                ::close(fd);
                continue;
            }
            conns[fd].fd = fd;
        }
    }

    /// Counts that moved while serving (the waiters are woken after, so that no connection is
    /// closed under the loop that serves it).
    std::vector<std::pair<std::uint32_t, std::uint64_t>> wake_later;

    void run() {
        std::vector<epoll_event> evs(256);
        for (;;) {
            const int timeout_ms = parked ? 100 : -1;
            int m = ::epoll_wait(ep, evs.data(), static_cast<int>(evs.size()), timeout_ms);
            if (m < 0 && errno != EINTR)
                return;
            for (int e = 0; e < m; ++e) {
                const int fd = static_cast<int>(evs[static_cast<std::size_t>(e)].data.u64);
                const std::uint32_t what = evs[static_cast<std::size_t>(e)].events;
                if (fd == wake_fd)
                    return;
                if (fd == listen_fd) {
                    accept_all();
                    continue;
                }
                auto it = conns.find(fd);
                if (it == conns.end())
                    continue;  // closed by an earlier event of this round
                if ((what & EPOLLOUT) && !flush(it->second))
                    continue;
                if (what & (EPOLLIN | EPOLLERR | EPOLLHUP))
                    on_input(it->second);
            }
            for (auto [run, count] : wake_later)
                wake_waiters(run, count);
            wake_later.clear();
            if (parked)
                expire_waiters(mono_us());
        }
    }
};

receiver::receiver(unsigned short port) : impl_(std::make_unique<impl>()) {
    impl& r = *impl_;
    auto fail = [&](const char* what) {
        throw std::runtime_error("receiver cannot listen on 127.0.0.1:" + std::to_string(port) + ": " + what + ": " +
                                 std::strerror(errno));
    };
    r.ep = ::epoll_create1(EPOLL_CLOEXEC);
    r.wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    r.listen_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (r.ep < 0 || r.wake_fd < 0 || r.listen_fd < 0)
        fail("socket");
    int one = 1;
    ::setsockopt(r.listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(r.listen_fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
        fail("bind");
    if (::listen(r.listen_fd, SOMAXCONN) != 0)
        fail("listen");
    if (::getsockname(r.listen_fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
        fail("getsockname");
    r.bound_port = ntohs(a.sin_port);
    for (int fd : {r.listen_fd, r.wake_fd}) {
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = static_cast<std::uint64_t>(fd);
        if (::epoll_ctl(r.ep, EPOLL_CTL_ADD, fd, &ev) != 0)
            fail("epoll_ctl");
    }
    impl* p = impl_.get();
    p->thread = std::thread([p] {
        pthread_setname_np(pthread_self(), "bench-receiver");
        p->run();
    });
}

receiver::~receiver() { stop(); }

unsigned short receiver::port() const { return impl_->bound_port; }

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
    const std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(impl_->wake_fd, &one, sizeof one);
    if (impl_->thread.joinable())
        impl_->thread.join();
    impl_->cv.notify_all();
}

} // namespace bench
