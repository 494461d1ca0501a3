// The load generator: 'connections' senders, each a keep-alive HTTP/1.1 connection that POSTs
// 4 KB Dialogmelding messages (application/xml) to the broker, one at a time, each with a fresh
// MsgId. One thread runs them all (Asio coroutines), with the request bytes built once per
// sender and only the MsgId patched per message, so the generator costs little CPU per request.
//
// Closed loop (rate 0): every sender sends its next message as soon as the previous one is
// answered. Open loop (rate R): message i is due at start + i/R; a free sender takes the next due
// message and waits for its time; latency counts from the due time, so a backlog is not hidden
// (no coordinated omission).
//
// Afterwards, with a receiver given, every accepted MsgId (201) must arrive there exactly once:
// the sender waits (GET /wait, bounded) and then compares its list with the receiver's.
#include "bench.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <random>
#include <sstream>
#include <unordered_set>

#include <sys/socket.h>
#include <sys/time.h>

namespace bench {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

bool iequal_prefix(std::string_view line, std::string_view lower_name) {
    if (line.size() < lower_name.size())
        return false;
    for (std::size_t i = 0; i < lower_name.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(line[i])) != lower_name[i])
            return false;
    return true;
}

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

struct run_state {
    run_state(const send_options& opts, asio::io_context& io) : o(opts), ioc(io) {}
    const send_options& o;
    asio::io_context& ioc;
    tcp::endpoint ep;
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

    asio::awaitable<void> sender(std::uint32_t k) {
        // The request, built once; only the MsgId changes.
        std::string req = "POST " + o.path + " HTTP/1.1\r\nHost: " + o.host + ":" + std::to_string(o.port) +
                          "\r\nContent-Type: application/xml\r\nContent-Length: " + std::to_string(msg.doc.size()) +
                          "\r\nUser-Agent: edibroker-bench\r\n\r\n";
        const std::size_t id_at = req.size() + msg.msg_id_offset;
        req += msg.doc;
        std::string buf(8192, '\0');
        std::size_t have = 0;
        asio::steady_timer timer(ioc);
        std::optional<tcp::socket> sock;
        std::uint32_t seq = 0;
        for (;;) {
            std::uint64_t i = 0;
            std::int64_t due = 0;
            if (!take(i, due))
                break;
            if (o.rate > 0 && due > mono_us()) {
                timer.expires_after(std::chrono::microseconds(due - mono_us()));
                co_await timer.async_wait(use_tuple);
            }
            if (!sock) {
                sock.emplace(ioc);
                auto [ec] = co_await sock->async_connect(ep, use_tuple);
                if (ec) {
                    ++rep.io_errors;
                    sock.reset();
                    if (rep.io_errors > 1000) {
                        rep.error = "cannot connect to the broker: " + ec.message();
                        break;
                    }
                    continue;
                }
                sock->set_option(tcp::no_delay(true), ec);
                have = 0;
            }
            const std::int64_t t0 = o.rate > 0 ? due : mono_us();
            make_msg_id(req.data() + id_at, run, k, seq++, t0);
            ++rep.sent;
            auto [wec, wn] = co_await asio::async_write(*sock, asio::buffer(req), use_tuple);
            if (wec) {
                ++rep.io_errors;
                sock.reset();
                continue;
            }
            // Read the answer: head, then Content-Length bytes of body.
            response_head h;
            std::size_t head_end = 0;
            bool failed = false;
            for (;;) {
                auto p = std::string_view(buf.data(), have).find("\r\n\r\n");
                if (p != std::string_view::npos) {
                    head_end = p + 4;
                    break;
                }
                if (have == buf.size())
                    buf.resize(buf.size() * 2);
                auto [ec, n] = co_await sock->async_read_some(asio::buffer(buf.data() + have, buf.size() - have),
                                                              use_tuple);
                if (ec) {
                    failed = true;
                    break;
                }
                have += n;
            }
            if (failed || !parse_head(std::string_view(buf.data(), head_end), h)) {
                ++rep.io_errors;
                sock.reset();
                continue;
            }
            const std::size_t total = head_end + h.content_length;
            if (total > buf.size())
                buf.resize(total);
            while (have < total) {
                auto [ec, n] = co_await sock->async_read_some(asio::buffer(buf.data() + have, buf.size() - have),
                                                              use_tuple);
                if (ec) {
                    failed = true;
                    break;
                }
                have += n;
            }
            if (failed) {
                ++rep.io_errors;
                sock.reset();
                continue;
            }
            const std::int64_t t1 = mono_us();
            last_answer_us = std::max(last_answer_us, t1);
            if (h.duplicate)
                ++rep.duplicate_answers;
            if (h.status == 201) {
                ++rep.accepted;
                ack_lat.push_back(static_cast<std::uint32_t>(std::min<std::int64_t>(t1 - t0, UINT32_MAX)));
                accepted_ids.emplace_back(req.data() + id_at, msg_id_len);
            } else if (h.status == 503) {
                ++rep.busy;
            } else if (h.status >= 400 && h.status < 500) {
                ++rep.rejected;
            } else {
                ++rep.other_status;
            }
            std::memmove(buf.data(), buf.data() + total, have - total);
            have -= total;
            if (h.close)
                sock.reset();
        }
        if (sock) {
            boost::system::error_code ec;
            sock->shutdown(tcp::socket::shutdown_both, ec);
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
    asio::io_context ioc{1};
    run_state s(o, ioc);
    boost::system::error_code ec;
    auto addr = asio::ip::make_address(o.host, ec);
    if (ec || o.port == 0) {
        s.rep.error = "bad broker address " + o.host + ":" + std::to_string(o.port);
        return s.rep;
    }
    s.ep = tcp::endpoint(addr, o.port);
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
    for (int k = 0; k < std::max(1, o.connections); ++k)
        asio::co_spawn(ioc, s.sender(static_cast<std::uint32_t>(k)), asio::detached);
    ioc.run();
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
    try {
        asio::io_context ioc{1};
        tcp::socket sock(ioc);
        tcp::endpoint ep(asio::ip::make_address(host_port.substr(0, colon)),
                         static_cast<unsigned short>(std::stoi(host_port.substr(colon + 1))));
        sock.connect(ep);
        timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
        setsockopt(sock.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(sock.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        std::string req = "GET " + target + " HTTP/1.1\r\nHost: " + host_port + "\r\nConnection: close\r\n\r\n";
        asio::write(sock, asio::buffer(req));
        std::string resp;
        char chunk[65536];
        boost::system::error_code ec;
        for (;;) {
            std::size_t n = sock.read_some(asio::buffer(chunk), ec);
            resp.append(chunk, n);
            if (ec)
                break;
            // The receiver keeps the connection open: stop once the body is complete.
            auto he = resp.find("\r\n\r\n");
            if (he != std::string::npos) {
                response_head h;
                if (parse_head(std::string_view(resp).substr(0, he + 4), h) && resp.size() >= he + 4 + h.content_length)
                    break;
            }
        }
        auto he = resp.find("\r\n\r\n");
        if (he == std::string::npos)
            return std::nullopt;
        response_head h;
        if (!parse_head(std::string_view(resp).substr(0, he + 4), h) || h.status != 200)
            return std::nullopt;
        return resp.substr(he + 4, h.content_length);
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

} // namespace bench
