// The load generator: 'connections' senders, each a keep-alive HTTP/1.1 connection that POSTs
// 4 KB Dialogmelding messages (application/xml) to the broker, one at a time, each with a fresh
// MsgId. One thread runs them all on one epoll set, the way wrk does: each socket joins the set
// once (level-triggered, for input), a sender writes its request and reads only when epoll says
// the answer is there (no read that finds nothing, no re-arming per request), and the request
// bytes are built once per sender with only the MsgId patched per message. The generator shares
// the cores with the broker it measures, so what it costs per request matters (the report shows
// it next to wrk's).
//
// Closed loop (rate 0): every sender sends its next message as soon as the previous one is
// answered. Open loop (rate R): message i is due at start + i/R; a free sender takes the next due
// message and waits for its time; latency counts from the due time, so a backlog is not hidden
// (no coordinated omission).
//
// Afterwards, with a receiver given, every accepted MsgId (201) must arrive there exactly once:
// the sender waits (GET /wait, bounded) and then compares its list with the receiver's.
#include "bench.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <ctime>
#include <queue>
#include <random>
#include <sstream>
#include <unordered_set>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

namespace bench {

namespace {

/// One parsed response head.
struct response_head {
    int status = 0;
    std::size_t content_length = 0;
    bool duplicate = false;
    bool close = false;
};

bool parse_head(std::string_view head, response_head& r) {
    // "HTTP/1.1 201 Created\r\n..."
    if (head.size() < 12 || head.substr(0, 5) != "HTTP/")
        return false;
    auto sp = head.find(' ');
    if (sp == std::string_view::npos || sp + 4 > head.size())
        return false;
    std::from_chars(head.data() + sp + 1, head.data() + sp + 4, r.status);
    for (std::size_t pos = head.find("\r\n") + 2; pos < head.size();) {
        auto eol = head.find("\r\n", pos);
        if (eol == std::string_view::npos)
            break;
        std::string_view line = head.substr(pos, eol - pos);
        pos = eol + 2;
        if (iequal_prefix(line, "content-length:")) {
            auto v = line.substr(15);
            while (!v.empty() && v.front() == ' ')
                v.remove_prefix(1);
            std::from_chars(v.data(), v.data() + v.size(), r.content_length);
        } else if (iequal_prefix(line, "x-edibroker-duplicate:")) {
            r.duplicate = line.find("true") != std::string_view::npos;
        } else if (iequal_prefix(line, "connection:")) {
            r.close = line.find("close") != std::string_view::npos;
        }
    }
    return true;
}

/// One sender: a keep-alive connection with at most one request out.
struct sender_conn {
    std::uint32_t k = 0;
    int fd = -1;
    std::uint32_t seq = 0;
    std::string req;           ///< the request, built once; only the MsgId changes
    std::size_t id_at = 0;     ///< where the MsgId is in 'req'
    std::string buf = std::string(8192, '\0');
    std::size_t have = 0;      ///< bytes of 'buf' that hold the answer (and what followed it)
    std::size_t written = 0;   ///< bytes of 'req' sent of the request out
    bool busy = false;         ///< a request is out, its answer not read yet
    bool want_out = false;     ///< EPOLLOUT asked for (a write that did not go out at once)
    std::int64_t t0 = 0;       ///< latency counts from here (the due time in the open loop)
    std::int64_t deadline = 0; ///< the answer is given up on after this
};

/// How long a sender waits for an answer before it counts an I/O error and reconnects.
constexpr std::int64_t answer_timeout_us = 120'000'000;

struct run_state {
    explicit run_state(const send_options& opts) : o(opts) {}
    ~run_state() {
        for (auto& c : conns)
            if (c.fd >= 0)
                ::close(c.fd);
        if (ep >= 0)
            ::close(ep);
    }
    run_state(const run_state&) = delete;
    run_state& operator=(const run_state&) = delete;

    const send_options& o;
    sockaddr_storage addr{};
    socklen_t addr_len = 0;
    int ep = -1;
    std::vector<sender_conn> conns;
    /// Senders waiting for the due time of their next message (open loop): (due, sender).
    std::priority_queue<std::pair<std::int64_t, std::uint32_t>, std::vector<std::pair<std::int64_t, std::uint32_t>>,
                        std::greater<>>
        due_heap;
    int running = 0;  ///< senders not finished
    message_template msg;
    std::uint32_t run = 0;
    std::int64_t start_us = 0, end_us = 0;  // sending window
    std::uint64_t next = 0;                 // next message index (global)
    std::int64_t last_answer_us = 0;
    send_report rep;
    std::vector<std::uint32_t> ack_lat;
    std::vector<std::string> accepted_ids;

    bool take(std::uint64_t& i, std::int64_t& due_us) {
        if (o.max_messages && next >= o.max_messages)
            return false;
        i = next;
        if (o.rate > 0) {
            due_us = start_us + static_cast<std::int64_t>(static_cast<double>(i) * 1e6 / o.rate);
            if (due_us >= end_us)
                return false;
        } else {
            due_us = mono_us();
            if (due_us >= end_us)
                return false;
        }
        ++next;
        return true;
    }

    void close_conn(sender_conn& c) {
        if (c.fd >= 0)
            ::close(c.fd);  // also leaves the epoll set
        c.fd = -1;
        c.have = 0;
        c.busy = false;
        c.want_out = false;
    }

    /// A blocking connect (bounded by SO_SNDTIMEO; on the loopback it completes at once), then
    /// non-blocking, in the epoll set for input (level-triggered, registered once).
    bool connect_conn(sender_conn& c) {
        int fd = ::socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return false;
        timeval tv{5, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        int one = 1;
        if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), addr_len) != 0 ||
            ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0 ||
            ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
            ::close(fd);
            return false;
        }
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = c.k;
        if (::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
            ::close(fd);
            return false;
        }
        c.fd = fd;
        c.have = 0;
        return true;
    }

    /// Sends what is left of the request; false when the connection failed.
    bool write_some(sender_conn& c) {
        const send_result r = send_some(c.fd, c.req, c.written);
        if (r == send_result::failed)
            return false;
        want_output(ep, c.fd, c.k, r == send_result::would_block, c.want_out);
        return true;
    }

    /// Sends sender c's next message, or parks it until the message's due time, or finishes it.
    void next_step(sender_conn& c) {
        for (;;) {
            if (!rep.error.empty()) {
                finish(c);
                return;
            }
            std::uint64_t i = 0;
            std::int64_t due = 0;
            if (!take(i, due)) {
                finish(c);
                return;
            }
            if (o.rate > 0 && due > mono_us()) {
                c.t0 = due;
                due_heap.emplace(due, c.k);
                return;
            }
            if (send_now(c, o.rate > 0 ? due : mono_us()))
                return;
        }
    }

    /// Sends a message whose latency counts from t0; false if it could not (counted as an I/O
    /// error; the caller takes the next message).
    bool send_now(sender_conn& c, std::int64_t t0) {
        if (c.fd < 0 && !connect_conn(c)) {
            if (++rep.io_errors > 1000)
                rep.error = "cannot connect to the broker: " + std::string(std::strerror(errno));
            return false;
        }
        c.t0 = t0;
        make_msg_id(c.req.data() + c.id_at, run, c.k, c.seq++, t0);
        ++rep.sent;
        c.written = 0;
        c.busy = true;
        c.deadline = mono_us() + answer_timeout_us;
        if (!write_some(c)) {
            ++rep.io_errors;
            close_conn(c);
            return false;
        }
        return true;
    }

    void finish(sender_conn& c) {
        if (c.fd >= 0) {
            ::shutdown(c.fd, SHUT_RDWR);
            close_conn(c);
        }
        --running;
    }

    void fail(sender_conn& c) {
        ++rep.io_errors;
        close_conn(c);
        next_step(c);
    }

    /// Input on sender c: one read (the event said there is something to read), then the answer
    /// if it is complete.
    void on_input(sender_conn& c) {
        if (c.have == c.buf.size())
            c.buf.resize(c.buf.size() * 2);
        ssize_t n = ::recv(c.fd, c.buf.data() + c.have, c.buf.size() - c.have, 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        if (n <= 0 || !c.busy) {
            // closed, failed, or bytes nobody asked for
            if (c.busy) {
                fail(c);
            } else {
                close_conn(c);
            }
            return;
        }
        c.have += static_cast<std::size_t>(n);
        auto p = std::string_view(c.buf.data(), c.have).find("\r\n\r\n");
        if (p == std::string_view::npos)
            return;
        const std::size_t head_end = p + 4;
        response_head h;
        if (!parse_head(std::string_view(c.buf.data(), head_end), h)) {
            fail(c);
            return;
        }
        const std::size_t total = head_end + h.content_length;
        if (total > c.buf.size())
            c.buf.resize(total);
        if (c.have < total)
            return;
        const std::int64_t t1 = mono_us();
        last_answer_us = std::max(last_answer_us, t1);
        if (h.duplicate)
            ++rep.duplicate_answers;
        if (h.status == 201) {
            ++rep.accepted;
            ack_lat.push_back(static_cast<std::uint32_t>(std::min<std::int64_t>(t1 - c.t0, UINT32_MAX)));
            accepted_ids.emplace_back(c.req.data() + c.id_at, msg_id_len);
        } else if (h.status == 503) {
            ++rep.busy;
        } else if (h.status >= 400 && h.status < 500) {
            ++rep.rejected;
        } else {
            ++rep.other_status;
        }
        std::memmove(c.buf.data(), c.buf.data() + total, c.have - total);
        c.have -= total;
        c.busy = false;
        // An answer before the whole request went out leaves the stream out of step: start afresh.
        if (h.close || c.written < c.req.size())
            close_conn(c);
        next_step(c);
    }

    /// Senders whose answer is overdue: an I/O error each, and on with the next message.
    void expire(std::int64_t now) {
        for (auto& c : conns)
            if (c.busy && c.deadline < now)
                fail(c);
    }

    void run_all() {
        const int n = std::max(1, o.connections);
        conns.resize(static_cast<std::size_t>(n));
        for (int k = 0; k < n; ++k) {
            sender_conn& c = conns[static_cast<std::size_t>(k)];
            c.k = static_cast<std::uint32_t>(k);
            c.req = "POST " + o.path + " HTTP/1.1\r\nHost: " + o.host + ":" + std::to_string(o.port) +
                    "\r\nContent-Type: application/xml\r\nContent-Length: " + std::to_string(msg.doc.size()) +
                    "\r\nUser-Agent: edibroker-bench\r\n\r\n";
            c.id_at = c.req.size() + msg.msg_id_offset;
            c.req += msg.doc;
        }
        running = n;
        for (auto& c : conns)
            next_step(c);
        std::vector<epoll_event> evs(256);
        std::int64_t next_expiry_check = mono_us() + 1'000'000;
        while (running > 0) {
            std::int64_t now = mono_us();
            // Wake at the next due time to the microsecond (epoll_pwait2; epoll_wait's milliseconds
            // would send an open loop's messages up to 1 ms late, in bunches), at least once a second.
            std::int64_t wait_us = 1'000'000;
            if (!due_heap.empty())
                wait_us = std::clamp<std::int64_t>(due_heap.top().first - now, 0, 1'000'000);
            const timespec timeout{static_cast<time_t>(wait_us / 1'000'000), static_cast<long>(wait_us % 1'000'000) * 1000};
            int m = ::epoll_pwait2(ep, evs.data(), static_cast<int>(evs.size()), &timeout, nullptr);
            if (m < 0 && errno != EINTR) {
                rep.error = std::string("epoll_pwait2: ") + std::strerror(errno);
                break;
            }
            for (int e = 0; e < m; ++e) {
                sender_conn& c = conns[static_cast<std::size_t>(evs[static_cast<std::size_t>(e)].data.u64)];
                if (c.fd < 0)
                    continue;  // closed by an earlier event of this round
                const std::uint32_t what = evs[static_cast<std::size_t>(e)].events;
                if ((what & EPOLLOUT) && c.busy && c.written < c.req.size() && !write_some(c)) {
                    fail(c);
                    continue;
                }
                if (what & (EPOLLIN | EPOLLERR | EPOLLHUP))
                    on_input(c);
            }
            now = mono_us();
            while (!due_heap.empty() && due_heap.top().first <= now) {
                sender_conn& c = conns[due_heap.top().second];
                due_heap.pop();
                if (!send_now(c, c.t0))
                    next_step(c);
            }
            if (now >= next_expiry_check) {
                expire(now);
                next_expiry_check = now + 1'000'000;
            }
        }
    }
};

std::string hex8(std::uint32_t v) {
    char b[9];
    std::snprintf(b, sizeof b, "%08x", v);
    return b;
}

/// Compare the accepted MsgIds with what the receiver got.
void check_deliveries(run_state& s) {
    send_report& r = s.rep;
    r.checked = true;
    const std::string run = hex8(s.run);
    const int wait_ms = static_cast<int>(s.o.drain_seconds * 1000);
    // Long poll: the receiver answers when it has them all, or at the timeout.
    auto n = http_get(s.o.receiver,
                      "/wait?run=" + run + "&n=" + std::to_string(r.accepted) + "&timeoutMs=" + std::to_string(wait_ms),
                      wait_ms + 10000);
    if (!n) {
        r.error = "the receiver at " + s.o.receiver + " does not answer";
        return;
    }
    auto ids = http_get(s.o.receiver, "/ids?run=" + run, 60000);
    if (!ids) {
        r.error = "cannot list the receiver's MsgIds";
        return;
    }
    std::unordered_set<std::string> accepted(s.accepted_ids.begin(), s.accepted_ids.end());
    std::vector<std::uint32_t> lat;
    lat.reserve(accepted.size());
    std::int64_t last_arrival = 0;
    std::istringstream in(*ids);
    std::string id;
    std::uint64_t count = 0;
    std::int64_t first_us = 0;
    while (in >> id >> count >> first_us) {
        if (count > 1)
            ++r.duplicates;
        if (!accepted.count(id)) {
            ++r.unexpected;
            continue;
        }
        ++r.delivered;
        std::uint32_t run_tag = 0;
        std::int64_t t = 0;
        if (parse_msg_id(id, run_tag, t)) {
            // The MsgId holds the low 48 bits of the send time.
            std::int64_t sent = (first_us & ~0xffffffffffffLL) | t;
            if (sent > first_us)
                sent -= 0x1000000000000LL;
            lat.push_back(static_cast<std::uint32_t>(std::clamp<std::int64_t>(first_us - sent, 0, UINT32_MAX)));
        }
        last_arrival = std::max(last_arrival, first_us);
    }
    r.lost = r.accepted > r.delivered ? r.accepted - r.delivered : 0;
    if (!lat.empty()) {
        r.deliver_p50_us = percentile(lat, 50);
        r.deliver_p99_us = percentile(lat, 99);
        r.deliver_max_us = *std::max_element(lat.begin(), lat.end());
    }
    if (last_arrival > s.start_us)
        r.delivered_per_s = static_cast<double>(r.delivered) * 1e6 / static_cast<double>(last_arrival - s.start_us);
    r.drain_seconds = std::max<double>(0, static_cast<double>(last_arrival - s.last_answer_us) / 1e6);
}

} // namespace

send_report run_sender(const send_options& o) {
    run_state s(o);
    {
        auto* v4 = reinterpret_cast<sockaddr_in*>(&s.addr);
        auto* v6 = reinterpret_cast<sockaddr_in6*>(&s.addr);
        if (::inet_pton(AF_INET, o.host.c_str(), &v4->sin_addr) == 1) {
            v4->sin_family = AF_INET;
            v4->sin_port = htons(o.port);
            s.addr_len = sizeof(sockaddr_in);
        } else if (::inet_pton(AF_INET6, o.host.c_str(), &v6->sin6_addr) == 1) {
            v6->sin6_family = AF_INET6;
            v6->sin6_port = htons(o.port);
            s.addr_len = sizeof(sockaddr_in6);
        }
    }
    if (s.addr_len == 0 || o.port == 0) {
        s.rep.error = "bad broker address " + o.host + ":" + std::to_string(o.port);
        return s.rep;
    }
    s.ep = ::epoll_create1(EPOLL_CLOEXEC);
    if (s.ep < 0) {
        s.rep.error = std::string("epoll_create1: ") + std::strerror(errno);
        return s.rep;
    }
    try {
        s.msg = dialog_message(o.message_size);
    } catch (const std::exception& e) {
        s.rep.error = e.what();
        return s.rep;
    }
    s.run = o.run_tag ? o.run_tag : std::random_device{}();
    s.rep.run_tag = s.run;
    const std::size_t expect = o.rate > 0 ? static_cast<std::size_t>(o.rate * o.seconds) + 16 : 1 << 20;
    s.ack_lat.reserve(std::min<std::size_t>(expect, 1 << 22));
    s.accepted_ids.reserve(std::min<std::size_t>(expect, 1 << 22));

    const std::int64_t cpu0 = process_cpu_us(), kcpu0 = process_kernel_cpu_us();
    s.start_us = mono_us();
    s.end_us = s.start_us + static_cast<std::int64_t>(o.seconds * 1e6);
    s.run_all();
    const std::int64_t cpu1 = process_cpu_us(), kcpu1 = process_kernel_cpu_us();

    send_report& r = s.rep;
    const std::int64_t last = s.last_answer_us > 0 ? s.last_answer_us : mono_us();
    r.send_seconds = static_cast<double>(last - s.start_us) / 1e6;
    if (r.send_seconds > 0)
        r.accepted_per_s = static_cast<double>(r.accepted) / r.send_seconds;
    if (r.sent) {
        r.client_cpu_us_per_msg = static_cast<double>(cpu1 - cpu0) / static_cast<double>(r.sent);
        r.client_kernel_cpu_us_per_msg = static_cast<double>(kcpu1 - kcpu0) / static_cast<double>(r.sent);
    }
    if (!s.ack_lat.empty()) {
        r.ack_p50_us = percentile(s.ack_lat, 50);
        r.ack_p99_us = percentile(s.ack_lat, 99);
        r.ack_max_us = *std::max_element(s.ack_lat.begin(), s.ack_lat.end());
    }
    if (r.error.empty() && r.accepted == 0)
        r.error = "no message was accepted (sent " + std::to_string(r.sent) + ", io errors " +
                  std::to_string(r.io_errors) + ", rejected " + std::to_string(r.rejected) + ", busy " +
                  std::to_string(r.busy) + ")";
    if (!o.receiver.empty() && r.accepted > 0 && r.error.empty())
        check_deliveries(s);
    return r;
}

std::string to_json(const send_report& r) {
    std::ostringstream o;
    o.precision(10);
    o << "{\"run_tag\":\"" << hex8(r.run_tag) << "\",\"sent\":" << r.sent << ",\"accepted\":" << r.accepted
      << ",\"rejected\":" << r.rejected << ",\"busy\":" << r.busy << ",\"other_status\":" << r.other_status
      << ",\"io_errors\":" << r.io_errors << ",\"duplicate_answers\":" << r.duplicate_answers
      << ",\"send_seconds\":" << r.send_seconds << ",\"accepted_per_s\":" << r.accepted_per_s
      << ",\"ack_p50_us\":" << r.ack_p50_us << ",\"ack_p99_us\":" << r.ack_p99_us << ",\"ack_max_us\":" << r.ack_max_us
      << ",\"client_cpu_us_per_msg\":" << r.client_cpu_us_per_msg
      << ",\"client_kernel_cpu_us_per_msg\":" << r.client_kernel_cpu_us_per_msg
      << ",\"checked\":" << (r.checked ? "true" : "false")
      << ",\"delivered\":" << r.delivered << ",\"lost\":" << r.lost << ",\"duplicates\":" << r.duplicates
      << ",\"unexpected\":" << r.unexpected << ",\"delivered_per_s\":" << r.delivered_per_s
      << ",\"deliver_p50_us\":" << r.deliver_p50_us << ",\"deliver_p99_us\":" << r.deliver_p99_us
      << ",\"deliver_max_us\":" << r.deliver_max_us << ",\"drain_seconds\":" << r.drain_seconds
      << ",\"ok\":" << (r.ok() ? "true" : "false") << ",\"error\":\"";
    for (char c : r.error)
        o << (c == '"' || c == '\\' ? '\'' : c);
    o << "\"}";
    return o.str();
}

std::optional<std::string> http_get(const std::string& host_port, const std::string& target, int timeout_ms) {
    auto colon = host_port.rfind(':');
    if (colon == std::string::npos)
        return std::nullopt;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    int port = 0;
    std::from_chars(host_port.data() + colon + 1, host_port.data() + host_port.size(), port);
    if (port <= 0 || port > 65535 || ::inet_pton(AF_INET, host_port.substr(0, colon).c_str(), &a.sin_addr) != 1)
        return std::nullopt;
    a.sin_port = htons(static_cast<unsigned short>(port));
    // Plain blocking calls, so that SO_RCVTIMEO/SO_SNDTIMEO bound every wait (Asio's blocking
    // reads wait on in poll() when a timed-out recv says EAGAIN).
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return std::nullopt;
    struct closer {
        int fd;
        ~closer() { ::close(fd); }
    } guard{fd};
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0)
        return std::nullopt;
    // A send or recv with a timeout that a signal interrupts fails with EINTR instead of going on;
    // so does one on a thread that used an io_uring-backed io_context (the kernel runs the ring's
    // completion work on that thread). Such a call is tried again until the deadline.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    auto interrupted = [&] { return errno == EINTR && std::chrono::steady_clock::now() < deadline; };
    const std::string req = "GET " + target + " HTTP/1.1\r\nHost: " + host_port + "\r\nConnection: close\r\n\r\n";
    for (std::size_t off = 0; off < req.size();) {
        ssize_t n = ::send(fd, req.data() + off, req.size() - off, MSG_NOSIGNAL);
        if (n < 0 && interrupted())
            continue;
        if (n <= 0)
            return std::nullopt;
        off += static_cast<std::size_t>(n);
    }
    std::string resp;
    char chunk[65536];
    for (;;) {
        ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
        if (n < 0 && interrupted())
            continue;
        if (n < 0)
            return std::nullopt;  // the time is up, or the connection failed
        resp.append(chunk, static_cast<std::size_t>(n));
        // The receiver keeps the connection open: stop once the body is complete.
        auto he = resp.find("\r\n\r\n");
        if (he != std::string::npos) {
            response_head h;
            if (parse_head(std::string_view(resp).substr(0, he + 4), h) && resp.size() >= he + 4 + h.content_length)
                break;
        }
        if (n == 0)
            break;
    }
    auto he = resp.find("\r\n\r\n");
    if (he == std::string::npos)
        return std::nullopt;
    response_head h;
    if (!parse_head(std::string_view(resp).substr(0, he + 4), h) || h.status != 200 ||
        resp.size() < he + 4 + h.content_length)
        return std::nullopt;
    return resp.substr(he + 4, h.content_length);
}

} // namespace bench
