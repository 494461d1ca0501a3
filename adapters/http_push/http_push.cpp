// http-push delivery: one libcurl multi handle per instance, driven by the instance's own thread.
//
//   deliver() --push--> queue_ (bounded by queue-limit, guarded by m_) --wakeup (if it was empty)--> adapter thread
//   adapter thread: take jobs while running < max-in-flight, add easy handles, curl_multi_perform,
//                   collect finished transfers, call 'done', curl_multi_poll (until I/O, a curl
//                   timer, or curl_multi_wakeup from deliver()/stop()).
//   stop(): stopping_ = true, wakeup, join. The thread's exit path completes every running and
//           queued job with retriable "shutting down".
//
// Invariants: every job's 'done' runs exactly once; no lock is held while it runs; connections are
// kept alive in the multi handle's connection cache and reused; easy handles are pooled.
#include "http_push.hpp"

#include "broker/log.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <curl/curl.h>

#include <cerrno>
#include <memory>

#include <pthread.h>
#include <unordered_map>

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

} // namespace

/// One running transfer. Owns the job (and so the document the POST body points into).
struct adapter::transfer {
    job j;
    CURL* easy = nullptr;
    curl_slist* headers = nullptr;
    std::string body;

    ~transfer() { curl_slist_free_all(headers); }
};

adapter::adapter(std::string name, options opt) : name_(std::move(name)), opt_(std::move(opt)) {}

adapter::~adapter() {
    stop();
    if (multi_)
        curl_multi_cleanup(as_multi(multi_));
}

result<void> adapter::start() {
    ensure_curl_global();
    std::lock_guard lk(m_);
    if (started_ || stopping_)
        return error{"adapter.state", "adapter '" + name_ + "' was already started"};
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
        curl_multi_wakeup(as_multi(multi_));
}

void adapter::stop() {
    std::lock_guard stop_lk(stop_m_);
    {
        std::lock_guard lk(m_);
        stopping_ = true;
    }
    if (!thread_.joinable())
        return;
    curl_multi_wakeup(as_multi(multi_));
    if (thread_.get_id() == std::this_thread::get_id())
        return;  // called from a 'done' callback: the loop sees stopping_ and drains on its own
    thread_.join();
}

void adapter::run() {
    pthread_setname_np(pthread_self(), "edb-http-push");
    CURLM* multi = as_multi(multi_);
    std::unordered_map<CURL*, std::unique_ptr<transfer>> running;
    std::vector<CURL*> idle;  // pooled easy handles: keep their caches, save allocations
    std::vector<job> taken;
    std::vector<std::pair<delivery_handler, delivery_result>> finished;

    auto setup = [&](job&& j) -> std::unique_ptr<transfer> {
        auto t = std::make_unique<transfer>();
        t->j = std::move(j);
        if (!idle.empty()) {
            t->easy = idle.back();
            idle.pop_back();
            curl_easy_reset(t->easy);
        } else {
            t->easy = curl_easy_init();
        }
        if (!t->easy)
            return t;
        const delivery& d = t->j.d;
        std::string ct = "Content-Type: " + header_safe(d.content_type.empty() ? "application/xml" : d.content_type);
        t->headers = curl_slist_append(t->headers, ct.c_str());
        t->headers = curl_slist_append(t->headers, ("X-EDIBroker-Id: " + header_safe(d.id)).c_str());
        if (!d.facts.msg_id.empty())
            t->headers = curl_slist_append(t->headers, ("X-EDIBroker-MsgId: " + header_safe(d.facts.msg_id)).c_str());
        // libcurl adds "Expect: 100-continue" to bodies over 1 KB: one wasted round trip each.
        t->headers = curl_slist_append(t->headers, "Expect:");
        for (const auto& [k, v] : opt_.headers)
            t->headers = curl_slist_append(t->headers, (v.empty() ? k + ";" : k + ": " + v).c_str());

        CURL* e = t->easy;
        curl_easy_setopt(e, CURLOPT_URL, opt_.url.c_str());
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, d.document->data());
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(d.document->size()));
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, opt_.timeout_ms);
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, opt_.connect_timeout_ms);
        curl_easy_setopt(e, CURLOPT_HTTP09_ALLOWED, 0L);
        curl_easy_setopt(e, CURLOPT_USERAGENT, "edibroker");
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &on_body);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &t->body);
        curl_easy_setopt(e, CURLOPT_PRIVATE, t.get());
        if (!opt_.ca_file.empty())
            curl_easy_setopt(e, CURLOPT_CAINFO, opt_.ca_file.c_str());
        if (opt_.insecure) {
            curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
            curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
        }
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
            if (!t->easy || curl_multi_add_handle(multi, t->easy) != CURLM_OK) {
                if (t->easy)
                    curl_easy_cleanup(t->easy);
                finished.emplace_back(std::move(t->j.done), make(outcome::retriable, "cannot start a transfer"));
                continue;
            }
            CURL* key = t->easy;
            running.emplace(key, std::move(t));
        }

        int still_running = 0;
        curl_multi_perform(multi, &still_running);
        int left = 0;
        while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            auto it = running.find(msg->easy_handle);
            if (it == running.end())
                continue;
            std::unique_ptr<transfer> t = std::move(it->second);
            running.erase(it);
            delivery_result r = classify(*t, msg->data.result);
            curl_multi_remove_handle(multi, t->easy);
            idle.push_back(t->easy);
            finished.emplace_back(std::move(t->j.done), std::move(r));
        }

        // No lock is held here: a callback may call deliver() (or stop()) on this adapter.
        bool freed_slots = !finished.empty();
        for (auto& [done, r] : finished)
            complete(done, std::move(r));
        finished.clear();
        if (freed_slots)
            continue;  // queued jobs may start now; poll on the next round

        // Sleeps until socket activity, a curl timer, or curl_multi_wakeup().
        curl_multi_poll(multi, nullptr, 0, 1000, nullptr);
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
    for (auto& [done, r] : finished)
        complete(done, std::move(r));
}

} // namespace broker::adapters::http_push
