// http-push delivery: one libcurl multi handle per instance, driven by the instance's own thread
// through libcurl's socket interface (curl_multi_socket_action) and an epoll set of its own.
//
//   deliver() --push--> queue_ (bounded by queue-limit, guarded by m_) --eventfd (if it was empty)--> adapter thread
//   adapter thread: take jobs while running < max-in-flight, add easy handles, wait in epoll_wait
//                   for the sockets curl asked to watch (socket callback), the eventfd, or curl's
//                   timer (timer callback); hand each ready socket to curl_multi_socket_action;
//                   collect finished transfers, call 'done'.
//   stop(): stopping_ = true, wake, join. The thread's exit path completes every running and
//           queued job with retriable "shutting down".
//
// Why the socket interface (issue 3): driven by curl_multi_perform, libcurl polls every socket
// of a transfer it works on before reading it (about three poll() calls per delivery on top of
// curl_multi_poll's own); told by socket_action which socket is ready and how, it does not.
//
// A kept-alive connection stays in the epoll set between its transfers (issue 3: curl asks to stop
// watching a socket at the end of each transfer and to watch it again at the start of the next,
// two epoll_ctl calls per delivery). That is safe only for sockets whose close the adapter sees:
// the ones curl opens and closes through the adapter's open/close-socket callbacks (the
// connections); any other socket curl names (a resolver's socketpair) is added and removed as
// curl says. An event on a kept socket curl does not watch (the vendor closed the idle
// connection, or wrote to it) removes it from the set there and then; curl finds the connection
// dead when it next picks it, as before.
//
// Invariants: every job's 'done' runs exactly once; no lock is held while it runs; connections are
// kept alive in the multi handle's connection cache and reused; easy handles are pooled and keep
// the options that are the same for every delivery; a socket in the epoll set is one curl has
// not closed.
#include "http_push.hpp"

#include "broker/log.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <curl/curl.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <chrono>
#include <memory>

#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <unordered_map>
#include <vector>

namespace broker::adapters::http_push {

namespace {

/// Response bodies are only read for a remote id; more than this is discarded.
constexpr std::size_t max_body = 64 * 1024;

CURLM* as_multi(void* p) { return static_cast<CURLM*>(p); }

/// Header values come from messages: keep them on one line.
std::string header_safe(std::string_view v) {
    std::string out;
    out.reserve(v.size());
    for (char c : v)
        if (static_cast<unsigned char>(c) >= 0x20 && c != 0x7f)
            out += c;
    return out;
}

size_t on_body(char* data, size_t size, size_t n, void* user) {
    auto* body = static_cast<std::string*>(user);
    size_t len = size * n;
    if (body->size() < max_body)
        body->append(data, std::min(len, max_body - body->size()));
    return len;
}

/// The receiver's id for the message from a JSON body {"id": ...}, if there is one.
std::string remote_id_of(const std::string& body) {
    auto first = body.find_first_not_of(" \t\r\n");
    if (first == std::string::npos || body[first] != '{')
        return {};
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(body, ec);
    if (ec || !v.is_object())
        return {};
    const auto* id = v.as_object().if_contains("id");
    if (!id)
        return {};
    if (id->is_string())
        return header_safe(std::string(id->as_string().c_str(), id->as_string().size()).substr(0, 200));
    if (id->is_int64())
        return std::to_string(id->as_int64());
    if (id->is_uint64())
        return std::to_string(id->as_uint64());
    return {};
}

using outcome = delivery_result::outcome;

delivery_result make(outcome o, std::string detail) {
    delivery_result r;
    r.o = o;
    r.detail = std::move(detail);
    return r;
}

/// Per socket descriptor: what the epoll set holds for it and whether curl watches it now.
struct sock_state {
    std::uint32_t registered = 0;  ///< events in the epoll set; 0: not in it
    bool owned = false;            ///< opened through open_socket: its close is seen (close_socket)
    bool watched = false;          ///< curl asked to watch it and has not said stop since
};

struct sock_table {
    std::vector<sock_state> by_fd;
    sock_state& at(curl_socket_t s) {
        auto i = static_cast<std::size_t>(s);
        if (i >= by_fd.size())
            by_fd.resize(i + 1);
        return by_fd[i];
    }
    sock_state* find(int fd) {
        auto i = static_cast<std::size_t>(fd);
        return fd >= 0 && i < by_fd.size() ? &by_fd[i] : nullptr;
    }
};

/// CURLOPT_OPENSOCKETFUNCTION: the socket curl would open, noted as one whose close is seen.
curl_socket_t open_socket(void* clientp, curlsocktype, curl_sockaddr* addr) {
    int fd = ::socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
    if (fd < 0)
        return CURL_SOCKET_BAD;
    static_cast<sock_table*>(clientp)->at(fd) = sock_state{0, true, false};
    return fd;
}

/// CURLOPT_CLOSESOCKETFUNCTION: closing drops the socket from the epoll set (nothing else holds
/// its file), so its entry is cleared for the next socket that gets the number.
int close_socket(void* clientp, curl_socket_t s) {
    static_cast<sock_table*>(clientp)->at(s) = sock_state{};
    return ::close(s);
}

} // namespace

struct adapter::socket_table : sock_table {};

/// One running transfer. Owns the job (and so the document the POST body points into) and its
/// own request headers: nodes that point into its strings and end in one of the thread's constant
/// lists (curl only reads the list), so a delivery allocates no list of its own.
struct adapter::transfer {
    job j;
    CURL* easy = nullptr;
    std::string id_header, msg_id_header, content_type_header;
    curl_slist nodes[3] = {};
    std::string body;
    bool fresh_retry = false;  ///< sent again on a new connection after a kept one died under it
};

adapter::adapter(std::string name, options opt) : name_(std::move(name)), opt_(std::move(opt)) {}

adapter::~adapter() {
    stop();
    if (multi_)
        curl_multi_cleanup(as_multi(multi_));
    if (epoll_fd_ >= 0)
        ::close(epoll_fd_);
    if (wake_fd_ >= 0)
        ::close(wake_fd_);
}

void adapter::wake() noexcept {
    std::uint64_t one = 1;
    // Fails only when the counter would overflow, which means a wake-up is pending anyway.
    [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
}

result<void> adapter::start() {
    ensure_curl_global();
    std::lock_guard lk(m_);
    if (started_ || stopping_)
        return error{"adapter.state", "adapter '" + name_ + "' was already started"};
    if (epoll_fd_ < 0) {
        epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
        wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.fd = wake_fd_;
        if (epoll_fd_ < 0 || wake_fd_ < 0 || ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev) != 0)
            return error{"adapter.thread", "cannot set up the event loop of adapter '" + name_ +
                                               "': " + std::strerror(errno)};
    }
    if (!sockets_)
        sockets_ = std::make_unique<socket_table>();
    CURLM* m = curl_multi_init();
    if (!m)
        return error{"adapter.nomem", "cannot create a curl multi handle for adapter '" + name_ + "'"};
    // Keep one idle connection per possible transfer so the next burst reuses them all.
    curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, static_cast<long>(opt_.max_in_flight));
    multi_ = m;
    try {
        thread_ = std::thread([this] { run(); });
    } catch (const std::system_error& e) {
        return error{"adapter.thread", "cannot start the thread of adapter '" + name_ + "': " + e.what()};
    }
    started_ = true;
    return {};
}

void adapter::complete(delivery_handler& done, delivery_result r) noexcept {
    try {
        if (done)
            done(std::move(r));
    } catch (const std::exception& e) {
        log::error("adapter.callback-threw", {{"adapter", "http-push"}, {"what", e.what()}});
    } catch (...) {
        log::error("adapter.callback-threw", {{"adapter", "http-push"}});
    }
}

void adapter::deliver(delivery d, delivery_handler done) {
    const char* refusal = nullptr;
    bool wake = false;
    {
        std::lock_guard lk(m_);
        if (stopping_) {
            refusal = "shutting down";
        } else if (!started_) {
            refusal = "adapter not started";
        } else if (queue_.size() >= opt_.queue_limit) {
            refusal = "queue full";
        } else {
            // Only the job that makes the queue non-empty wakes the thread: while jobs wait, either
            // that wake-up is still pending or the thread is at max-in-flight and takes more as
            // transfers finish. (A wake-up per job cost a write and a poll per message: issue 3.)
            wake = queue_.empty();
            queue_.push_back(job{std::move(d), std::move(done)});
        }
    }
    if (refusal) {
        complete(done, make(outcome::retriable, refusal));
        return;
    }
    // multi_ lives until the destructor, and the thread is running or will drain the queue.
    if (wake)
        this->wake();
}

void adapter::stop() {
    std::lock_guard stop_lk(stop_m_);
    {
        std::lock_guard lk(m_);
        stopping_ = true;
    }
    if (!thread_.joinable())
        return;
    wake();
    if (thread_.get_id() == std::this_thread::get_id())
        return;  // called from a 'done' callback: the loop sees stopping_ and drains on its own
    thread_.join();
}

namespace {

/// What curl's socket and timer callbacks tell the adapter thread (socket_action interface).
struct event_loop {
    int epoll_fd = -1;
    sock_table* sockets = nullptr;
    bool timer_armed = false;
    std::chrono::steady_clock::time_point due;
};

/// Sets what the epoll set holds for 's' to 'events' (0: removes it). What the table says is in
/// the set is trusted only for owned sockets: for any other, the call is made. An ADD of a socket
/// already in the set, or a MOD of one no longer in it, is retried as the other.
bool set_events(int epoll_fd, curl_socket_t s, sock_state& st, std::uint32_t events) {
    if (st.owned && st.registered == events)
        return true;
    if (events == 0) {
        // curl may already have closed it (epoll then dropped it): nothing to undo.
        ::epoll_ctl(epoll_fd, EPOLL_CTL_DEL, s, nullptr);
        st.registered = 0;
        return true;
    }
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = s;
    int op = st.registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (::epoll_ctl(epoll_fd, op, s, &ev) != 0) {
        int retry = op == EPOLL_CTL_ADD && errno == EEXIST   ? EPOLL_CTL_MOD
                    : op == EPOLL_CTL_MOD && errno == ENOENT ? EPOLL_CTL_ADD
                                                             : -1;
        if (retry < 0 || ::epoll_ctl(epoll_fd, retry, s, &ev) != 0) {
            st.registered = 0;
            return false;
        }
    }
    st.registered = events;
    return true;
}

/// CURLMOPT_SOCKETFUNCTION: watch 's' for what curl waits for, or stop watching it. A connection
/// curl stops watching stays in the epoll set while it is only waiting for input (see the top of
/// this file); one that was waiting to write leaves it, or every wait would return at once.
int on_socket(CURL*, curl_socket_t s, int what, void* userp, void*) {
    auto* loop = static_cast<event_loop*>(userp);
    sock_state& st = loop->sockets->at(s);
    if (what == CURL_POLL_REMOVE) {
        st.watched = false;
        if (!st.owned || (st.registered & EPOLLOUT))
            set_events(loop->epoll_fd, s, st, 0);
        return 0;
    }
    const std::uint32_t events = (what & CURL_POLL_IN ? EPOLLIN : 0u) | (what & CURL_POLL_OUT ? EPOLLOUT : 0u);
    st.watched = true;
    return set_events(loop->epoll_fd, s, st, events) ? 0 : -1;  // -1: curl fails its transfers
}

/// CURLMOPT_TIMERFUNCTION: curl wants CURL_SOCKET_TIMEOUT after 'ms' (-1: no timer).
int on_timer(CURLM*, long ms, void* userp) {
    auto* loop = static_cast<event_loop*>(userp);
    loop->timer_armed = ms >= 0;
    if (ms >= 0)
        loop->due = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    return 0;
}

/// How long epoll_wait may sleep: until curl's timer, at most a second.
int wait_ms(const event_loop& loop) {
    if (!loop.timer_armed)
        return 1000;
    auto left = loop.due - std::chrono::steady_clock::now();
    if (left <= std::chrono::steady_clock::duration::zero())
        return 0;
    auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
    return static_cast<int>(std::min<decltype(ms)>(ms, 1000));
}

} // namespace

void adapter::run() {
    pthread_setname_np(pthread_self(), "edb-http-push");
    CURLM* multi = as_multi(multi_);
    event_loop loop;
    loop.epoll_fd = epoll_fd_;
    loop.sockets = sockets_.get();
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, &on_socket);
    curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, &loop);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, &on_timer);
    curl_multi_setopt(multi, CURLMOPT_TIMERDATA, &loop);

    std::unordered_map<CURL*, std::unique_ptr<transfer>> running;
    std::vector<CURL*> idle;  // pooled easy handles: keep their options and caches
    std::vector<job> taken;
    std::vector<std::pair<delivery_handler, delivery_result>> finished;

    // The headers every request ends with (the configured ones last), with and without the
    // default Content-Type. A transfer links its own headers in front of one of them. "Expect:"
    // because libcurl adds "Expect: 100-continue" to bodies over 1 KB: one wasted round trip each.
    curl_slist* tail = curl_slist_append(nullptr, "Expect:");
    for (const auto& [k, v] : opt_.headers)
        tail = curl_slist_append(tail, (v.empty() ? k + ";" : k + ": " + v).c_str());
    curl_slist* tail_xml = curl_slist_append(nullptr, "Content-Type: application/xml");
    if (tail_xml)
        tail_xml->next = tail;

    // The options that are the same for every delivery, set once per pooled handle.
    auto configure = [&](CURL* e) {
        curl_easy_setopt(e, CURLOPT_URL, opt_.url.c_str());
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, opt_.timeout_ms);
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, opt_.connect_timeout_ms);
        curl_easy_setopt(e, CURLOPT_HTTP09_ALLOWED, 0L);
        curl_easy_setopt(e, CURLOPT_USERAGENT, "edibroker");
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &on_body);
        curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, &open_socket);
        curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, static_cast<sock_table*>(sockets_.get()));
        curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, &close_socket);
        curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, static_cast<sock_table*>(sockets_.get()));
        if (!opt_.ca_file.empty())
            curl_easy_setopt(e, CURLOPT_CAINFO, opt_.ca_file.c_str());
        if (opt_.insecure) {
            curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
            curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
        }
    };

    auto setup = [&](job&& j) -> std::unique_ptr<transfer> {
        auto t = std::make_unique<transfer>();
        t->j = std::move(j);
        if (!idle.empty()) {
            t->easy = idle.back();
            idle.pop_back();
        } else if ((t->easy = curl_easy_init())) {
            configure(t->easy);
        }
        if (!t->easy || !tail || !tail_xml)
            return t;
        const delivery& d = t->j.d;
        curl_slist* next = tail_xml;
        std::size_t n = 0;
        auto link = [&](std::string& storage) {
            t->nodes[n].data = storage.data();
            ++n;
        };
        t->id_header = "X-EDIBroker-Id: " + header_safe(d.id);
        link(t->id_header);
        if (!d.facts.msg_id.empty()) {
            t->msg_id_header = "X-EDIBroker-MsgId: " + header_safe(d.facts.msg_id);
            link(t->msg_id_header);
        }
        if (!d.content_type.empty() && d.content_type != "application/xml") {
            t->content_type_header = "Content-Type: " + header_safe(d.content_type);
            link(t->content_type_header);
            next = tail;
        }
        for (std::size_t i = n; i-- > 0;) {
            t->nodes[i].next = next;
            next = &t->nodes[i];
        }

        CURL* e = t->easy;
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(d.document->size()));
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, d.document->data());
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, next);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &t->body);
        curl_easy_setopt(e, CURLOPT_PRIVATE, t.get());
        return t;
    };

    auto classify = [&](transfer& t, CURLcode rc) -> delivery_result {
        const std::string& hp = opt_.host_port;
        if (rc == CURLE_OK) {
            long status = 0;
            curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &status);
            std::string detail = "http " + std::to_string(status);
            if (status >= 200 && status < 300) {
                delivery_result r = make(outcome::delivered, std::move(detail));
                r.remote_id = remote_id_of(t.body);
                return r;
            }
            if (status == 408 || status == 425 || status == 429 || status >= 500)
                return make(outcome::retriable, std::move(detail));
            if (status >= 400)
                return make(outcome::permanent, std::move(detail));
            if (status >= 300)  // redirects are not followed: the configured URL is wrong
                return make(outcome::permanent, detail + " redirect not followed");
            return make(outcome::retriable, detail + " unexpected");
        }
        long os_errno = 0;
        curl_easy_getinfo(t.easy, CURLINFO_OS_ERRNO, &os_errno);
        switch (rc) {
        case CURLE_OPERATION_TIMEDOUT: {
            // Connected (or on a reused connection) once the request could be sent.
            curl_off_t connect_us = 0, pretransfer_us = 0;
            curl_easy_getinfo(t.easy, CURLINFO_CONNECT_TIME_T, &connect_us);
            curl_easy_getinfo(t.easy, CURLINFO_PRETRANSFER_TIME_T, &pretransfer_us);
            if (connect_us == 0 && pretransfer_us == 0)
                return make(outcome::retriable,
                            "connect timeout after " + std::to_string(opt_.connect_timeout_ms) + " ms to " + hp);
            return make(outcome::retriable, "timeout after " + std::to_string(opt_.timeout_ms) + " ms");
        }
        case CURLE_COULDNT_CONNECT:
            if (os_errno == ECONNREFUSED)
                return make(outcome::retriable, "connection refused to " + hp);
            return make(outcome::retriable, "cannot connect to " + hp);
        case CURLE_COULDNT_RESOLVE_HOST:
            return make(outcome::retriable, "cannot resolve host of " + hp);
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
            if (os_errno == ECONNRESET || os_errno == EPIPE)
                return make(outcome::retriable, "connection reset by " + hp);
            return make(outcome::retriable, std::string(rc == CURLE_SEND_ERROR ? "send to " : "receive from ") + hp +
                                                " failed");
        case CURLE_GOT_NOTHING:
            return make(outcome::retriable, "empty reply from " + hp);
        case CURLE_WEIRD_SERVER_REPLY:
        case CURLE_UNSUPPORTED_PROTOCOL:  // "Received HTTP/0.9 when not allowed"
            return make(outcome::retriable, "invalid http response from " + hp);
        case CURLE_PARTIAL_FILE:
            return make(outcome::retriable, "truncated response from " + hp);
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_CERTPROBLEM:
            return make(outcome::retriable, "tls error with " + hp + ": " + curl_easy_strerror(rc));
        default:
            return make(outcome::retriable, std::string("transfer to ") + hp + " failed: " + curl_easy_strerror(rc));
        }
    };

    int still_running = 0;
    std::vector<epoll_event> events(64);
    for (;;) {
        taken.clear();
        bool stopping = false;
        {
            std::lock_guard lk(m_);
            stopping = stopping_;
            while (!stopping && !queue_.empty() && running.size() + taken.size() < opt_.max_in_flight) {
                taken.push_back(std::move(queue_.front()));
                queue_.pop_front();
            }
        }
        if (stopping)
            break;

        for (auto& j : taken) {
            if (!j.d.document) {
                finished.emplace_back(std::move(j.done), make(outcome::permanent, "no document to deliver"));
                continue;
            }
            auto t = setup(std::move(j));
            // Adding a handle sets curl's timer to 0: the wait below returns at once and the
            // timeout action starts the transfer.
            if (!t->easy || !tail || !tail_xml || curl_multi_add_handle(multi, t->easy) != CURLM_OK) {
                if (t->easy)
                    curl_easy_cleanup(t->easy);
                finished.emplace_back(std::move(t->j.done), make(outcome::retriable, "cannot start a transfer"));
                continue;
            }
            CURL* key = t->easy;
            running.emplace(key, std::move(t));
        }

        // Sleeps until a socket curl watches is ready, curl's timer is due, or wake().
        int n = finished.empty() ? ::epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()),
                                                wait_ms(loop))
                                 : 0;
        for (int i = 0; i < n; ++i) {
            const epoll_event& ev = events[static_cast<std::size_t>(i)];
            if (ev.data.fd == wake_fd_) {
                std::uint64_t count;
                [[maybe_unused]] auto r = ::read(wake_fd_, &count, sizeof count);
                continue;
            }
            if (sock_state* st = loop.sockets->find(ev.data.fd); st && st->owned && !st->watched) {
                // A kept connection between transfers: the vendor closed it or wrote to it.
                set_events(epoll_fd_, ev.data.fd, *st, 0);
                continue;
            }
            int mask = (ev.events & EPOLLIN ? CURL_CSELECT_IN : 0) | (ev.events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
                       (ev.events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
            curl_multi_socket_action(multi, ev.data.fd, mask, &still_running);
        }
        if (loop.timer_armed && std::chrono::steady_clock::now() >= loop.due) {
            loop.timer_armed = false;  // curl sets it again from inside the call if it needs to
            curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &still_running);
        }

        int left = 0;
        while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            auto it = running.find(msg->easy_handle);
            if (it == running.end())
                continue;
            std::unique_ptr<transfer> t = std::move(it->second);
            running.erase(it);
            const CURLcode rc = msg->data.result;
            curl_multi_remove_handle(multi, t->easy);
            // A kept connection the vendor closed just as it was taken again: the request's send
            // failed on the closed socket, so the vendor cannot have taken it. libcurl 7.88 sends
            // again on a new connection when a read fails that way, not when the send does; here the
            // send gets that too, once (CURLINFO_NUM_CONNECTS 0: the transfer opened no connection).
            // Nothing is sent again once the request may have reached the vendor.
            long connects = -1;
            curl_easy_getinfo(t->easy, CURLINFO_NUM_CONNECTS, &connects);
            if (rc == CURLE_SEND_ERROR && connects == 0 && !t->fresh_retry) {
                t->fresh_retry = true;
                t->body.clear();
                curl_easy_setopt(t->easy, CURLOPT_FRESH_CONNECT, 1L);
                if (curl_multi_add_handle(multi, t->easy) == CURLM_OK) {
                    CURL* key = t->easy;
                    running.emplace(key, std::move(t));
                    continue;
                }
            }
            delivery_result r = classify(*t, rc);
            if (t->fresh_retry)
                curl_easy_setopt(t->easy, CURLOPT_FRESH_CONNECT, 0L);
            idle.push_back(t->easy);
            finished.emplace_back(std::move(t->j.done), std::move(r));
        }

        // No lock is held here: a callback may call deliver() (or stop()) on this adapter.
        for (auto& [done, r] : finished)
            complete(done, std::move(r));
        finished.clear();
    }

    // Shutting down: every running and queued job completes once, as retriable.
    for (auto& [easy, t] : running) {
        curl_multi_remove_handle(multi, easy);
        curl_easy_cleanup(easy);
        finished.emplace_back(std::move(t->j.done), make(outcome::retriable, "shutting down"));
    }
    running.clear();
    std::deque<job> rest;
    {
        std::lock_guard lk(m_);
        rest.swap(queue_);
    }
    for (auto& j : rest)
        finished.emplace_back(std::move(j.done), make(outcome::retriable, "shutting down"));
    for (CURL* e : idle)
        curl_easy_cleanup(e);
    // 'loop' ends with this function; the connections the multi handle still caches are closed
    // by curl_multi_cleanup later, without callbacks.
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, static_cast<curl_socket_callback>(nullptr));
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, static_cast<curl_multi_timer_callback>(nullptr));
    curl_slist_free_all(tail_xml ? tail_xml : tail);  // tail_xml continues with tail
    for (auto& [done, r] : finished)
        complete(done, std::move(r));
}

} // namespace broker::adapters::http_push
