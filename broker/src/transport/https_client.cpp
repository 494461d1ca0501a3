// https::client: one libcurl multi handle per client, driven by the client's own thread.
//
//   send() --push--> queue_ (bounded, guarded by m_) --curl_multi_wakeup--> client thread
//   client thread: start queued requests while fewer than max-in-flight run, curl_multi_perform,
//                  collect finished transfers, call 'done' with no lock held, curl_multi_poll.
//   stop(): stopping_ = true, wakeup, join; the thread completes what is left as "shutting down".
//
// Invariants: every request's 'done' runs exactly once; easy handles are pooled; the multi
// handle's connection cache keeps up to max-in-flight connections (and their TLS sessions) alive.
#include "broker/https_client.hpp"

#include "broker/log.hpp"

#include <curl/curl.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <filesystem>
#include <unordered_map>

#include <pthread.h>

namespace broker::https {

namespace {

CURLM* as_multi(void* p) { return static_cast<CURLM*>(p); }

size_t on_body(char* data, size_t size, size_t n, void* user) {
    auto* body = static_cast<std::string*>(user);
    size_t len = size * n;
    if (body->size() < max_response_body)
        body->append(data, std::min(len, max_response_body - body->size()));
    return len;
}

response failed(std::string why, bool not_sent = false) {
    response r;
    r.failure = std::move(why);
    r.not_sent = not_sent;
    return r;
}

/// "host:port" of a URL, for failure texts ("" if it cannot be parsed).
std::string host_port_of(const std::string& url) {
    std::string hp;
    if (auto r = parse_url("url", url, false, &hp); r)
        return hp;
    return "the endpoint";
}

} // namespace

void ensure_curl_global() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

/// One running transfer; owns the job (and so the body the POST points into).
struct client::transfer {
    job j;
    CURL* easy = nullptr;
    curl_slist* headers = nullptr;
    std::string body;
    std::string host_port;
    ~transfer() { curl_slist_free_all(headers); }
};

client::client(client_options opt) : opt_(std::move(opt)) {}

client::~client() {
    stop();
    if (multi_)
        curl_multi_cleanup(as_multi(multi_));
}

result<void> client::start() {
    ensure_curl_global();
    std::lock_guard lk(m_);
    if (started_ || stopping_)
        return error{"adapter.state", "client '" + opt_.name + "' was already started"};
    CURLM* m = curl_multi_init();
    if (!m)
        return error{"adapter.nomem", "cannot create a curl multi handle for '" + opt_.name + "'"};
    curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, static_cast<long>(opt_.max_in_flight));
    multi_ = m;
    try {
        thread_ = std::thread([this] { run(); });
    } catch (const std::system_error& e) {
        return error{"adapter.thread", "cannot start the thread of '" + opt_.name + "': " + e.what()};
    }
    started_ = true;
    return {};
}

void client::complete(response_handler& done, response r) noexcept {
    try {
        if (done)
            done(std::move(r));
    } catch (const std::exception& e) {
        log::error("https.callback-threw", {{"what", e.what()}});
    } catch (...) {
        log::error("https.callback-threw", {});
    }
}

void client::send(request r, response_handler done) {
    const char* refusal = nullptr;
    {
        std::lock_guard lk(m_);
        if (stopping_)
            refusal = "shutting down";
        else if (!started_)
            refusal = "client not started";
        else if (queue_.size() >= opt_.queue_limit)
            refusal = "queue full";
        else
            queue_.push_back(job{std::move(r), std::move(done)});
    }
    if (refusal) {
        complete(done, failed(refusal, true));
        return;
    }
    curl_multi_wakeup(as_multi(multi_));
}

void client::stop() {
    std::lock_guard stop_lk(stop_m_);
    {
        std::lock_guard lk(m_);
        stopping_ = true;
    }
    if (!thread_.joinable())
        return;
    curl_multi_wakeup(as_multi(multi_));
    if (thread_.get_id() == std::this_thread::get_id())
        return;  // from a 'done' callback: the loop sees stopping_ and drains on its own
    thread_.join();
}

void client::run() {
    std::string tname = ("edb-" + opt_.name).substr(0, 15);
    pthread_setname_np(pthread_self(), tname.c_str());
    CURLM* multi = as_multi(multi_);
    std::unordered_map<CURL*, std::unique_ptr<transfer>> running;
    std::vector<CURL*> idle;
    std::vector<job> taken;
    std::vector<std::pair<response_handler, response>> finished;

    auto setup = [&](job&& j) -> std::unique_ptr<transfer> {
        auto t = std::make_unique<transfer>();
        t->j = std::move(j);
        t->host_port = host_port_of(t->j.r.url);
        if (!idle.empty()) {
            t->easy = idle.back();
            idle.pop_back();
            curl_easy_reset(t->easy);
        } else {
            t->easy = curl_easy_init();
        }
        if (!t->easy)
            return t;
        const request& r = t->j.r;
        for (const auto& h : r.headers)
            t->headers = curl_slist_append(t->headers, h.c_str());
        // libcurl adds "Expect: 100-continue" to bodies over 1 KB: one wasted round trip each.
        t->headers = curl_slist_append(t->headers, "Expect:");
        CURL* e = t->easy;
        curl_easy_setopt(e, CURLOPT_URL, r.url.c_str());
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        if (r.method == "POST" || r.method == "PUT") {
            static const std::string no_body;
            const std::string& b = r.body ? *r.body : no_body;
            curl_easy_setopt(e, CURLOPT_POST, 1L);
            curl_easy_setopt(e, CURLOPT_POSTFIELDS, b.data());
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(b.size()));
            if (r.method == "PUT")
                curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "PUT");
        } else if (r.method != "GET") {
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r.method.c_str());
        }
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, opt_.timeout_ms);
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, opt_.connect_timeout_ms);
        curl_easy_setopt(e, CURLOPT_HTTP09_ALLOWED, 0L);
        curl_easy_setopt(e, CURLOPT_USERAGENT, "edibroker");
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &on_body);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &t->body);
        const tls_options& tls = opt_.tls;
        if (!tls.ca_file.empty())
            curl_easy_setopt(e, CURLOPT_CAINFO, tls.ca_file.c_str());
        if (!tls.client_cert.empty()) {
            curl_easy_setopt(e, CURLOPT_SSLCERT, tls.client_cert.c_str());
            curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
        }
        if (!tls.client_key.empty()) {
            curl_easy_setopt(e, CURLOPT_SSLKEY, tls.client_key.c_str());
            curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
        }
        if (!tls.key_password.empty())
            curl_easy_setopt(e, CURLOPT_KEYPASSWD, tls.key_password.c_str());
        if (tls.insecure) {
            curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
            curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
        }
        return t;
    };

    auto classify = [&](transfer& t, CURLcode rc) -> response {
        const std::string& hp = t.host_port;
        if (rc == CURLE_OK) {
            long status = 0;
            curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &status);
            response r;
            r.status = static_cast<int>(status);
            r.body = std::move(t.body);
            return r;
        }
        long os_errno = 0;
        curl_easy_getinfo(t.easy, CURLINFO_OS_ERRNO, &os_errno);
        curl_off_t connect_us = 0, pretransfer_us = 0;
        curl_easy_getinfo(t.easy, CURLINFO_CONNECT_TIME_T, &connect_us);
        curl_easy_getinfo(t.easy, CURLINFO_PRETRANSFER_TIME_T, &pretransfer_us);
        bool before_send = pretransfer_us == 0;
        switch (rc) {
        case CURLE_OPERATION_TIMEDOUT:
            if (connect_us == 0 && pretransfer_us == 0)
                return failed("connect timeout after " + std::to_string(opt_.connect_timeout_ms) + " ms to " + hp,
                              true);
            return failed("timeout after " + std::to_string(opt_.timeout_ms) + " ms");
        case CURLE_COULDNT_CONNECT:
            return failed((os_errno == ECONNREFUSED ? "connection refused to " : "cannot connect to ") + hp, true);
        case CURLE_COULDNT_RESOLVE_HOST:
            return failed("cannot resolve host of " + hp, true);
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
            if (os_errno == ECONNRESET || os_errno == EPIPE)
                return failed("connection reset by " + hp, before_send);
            return failed(std::string(rc == CURLE_SEND_ERROR ? "send to " : "receive from ") + hp + " failed",
                          before_send);
        case CURLE_GOT_NOTHING:
            return failed("empty reply from " + hp);
        case CURLE_WEIRD_SERVER_REPLY:
        case CURLE_UNSUPPORTED_PROTOCOL:  // "Received HTTP/0.9 when not allowed"
            return failed("invalid http response from " + hp);
        case CURLE_PARTIAL_FILE:
            return failed("truncated response from " + hp);
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_CIPHER:
        case CURLE_SSL_ENGINE_INITFAILED:
            return failed("tls error with " + hp + ": " + curl_easy_strerror(rc), before_send);
        default:
            return failed("transfer to " + hp + " failed: " + curl_easy_strerror(rc), before_send);
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
            auto t = setup(std::move(j));
            if (!t->easy || curl_multi_add_handle(multi, t->easy) != CURLM_OK) {
                if (t->easy)
                    curl_easy_cleanup(t->easy);
                finished.emplace_back(std::move(t->j.done), failed("cannot start a transfer", true));
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
            response r = classify(*t, msg->data.result);
            curl_multi_remove_handle(multi, t->easy);
            idle.push_back(t->easy);
            finished.emplace_back(std::move(t->j.done), std::move(r));
        }

        bool freed = !finished.empty();
        for (auto& [done, r] : finished)
            complete(done, std::move(r));
        finished.clear();
        if (freed)
            continue;
        curl_multi_poll(multi, nullptr, 0, 1000, nullptr);
    }

    for (auto& [easy, t] : running) {
        curl_multi_remove_handle(multi, easy);
        curl_easy_cleanup(easy);
        finished.emplace_back(std::move(t->j.done), failed("shutting down"));
    }
    running.clear();
    std::deque<job> rest;
    {
        std::lock_guard lk(m_);
        rest.swap(queue_);
    }
    for (auto& j : rest)
        finished.emplace_back(std::move(j.done), failed("shutting down", true));
    for (CURL* e : idle)
        curl_easy_cleanup(e);
    for (auto& [done, r] : finished)
        complete(done, std::move(r));
}

// ------------------------------------------------------------------ option helpers

namespace {

struct url_deleter {
    void operator()(CURLU* u) const { curl_url_cleanup(u); }
};
struct curl_string {
    char* p = nullptr;
    ~curl_string() { curl_free(p); }
};

} // namespace

error invalid_option(std::string_view option, std::string_view what) {
    return error{"config.invalid", "option '" + std::string(option) + "' " + std::string(what)};
}

result<long long> parse_number(std::string_view option, std::string_view v, long long lo, long long hi) {
    long long n = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (v.empty() || ec != std::errc{} || p != v.data() + v.size())
        return invalid_option(option, "must be a whole number, got " + quoted_value(v));
    if (n < lo || n > hi)
        return invalid_option(option, "must be between " + std::to_string(lo) + " and " + std::to_string(hi) +
                                           ", got " + quoted_value(v));
    return n;
}

result<bool> parse_bool(std::string_view option, std::string_view v) {
    if (v == "true" || v == "1" || v == "yes")
        return true;
    if (v == "false" || v == "0" || v == "no")
        return false;
    return invalid_option(option, "must be true or false, got " + quoted_value(v));
}

result<std::string> parse_url(std::string_view option, std::string_view v, bool https_only, std::string* host_port) {
    ensure_curl_global();
    if (v.empty())
        return invalid_option(option, https_only ? "is required (an https:// URL)" : "is required (an http(s):// URL)");
    std::unique_ptr<CURLU, url_deleter> u(curl_url());
    if (!u)
        return error{"adapter.nomem", "cannot allocate a URL handle"};
    std::string s(v);
    if (curl_url_set(u.get(), CURLUPART_URL, s.c_str(), 0) != CURLUE_OK)
        return invalid_option(option, "is not a valid URL: " + quoted_value(v));
    curl_string scheme, host, port;
    if (curl_url_get(u.get(), CURLUPART_SCHEME, &scheme.p, 0) != CURLUE_OK || !scheme.p)
        return invalid_option(option, "has no scheme: " + quoted_value(v));
    std::string sch(scheme.p);
    if (https_only && sch != "https")
        return invalid_option(option, "must be an https:// URL, got " + quoted_value(v));
    if (sch != "http" && sch != "https")
        return invalid_option(option, "must be http or https, got " + quoted_value(sch));
    if (curl_url_get(u.get(), CURLUPART_HOST, &host.p, 0) != CURLUE_OK || !host.p || !*host.p)
        return invalid_option(option, "has no host: " + quoted_value(v));
    if (curl_url_get(u.get(), CURLUPART_PORT, &port.p, CURLU_DEFAULT_PORT) != CURLUE_OK || !port.p)
        return invalid_option(option, "has no usable port: " + quoted_value(v));
    if (host_port)
        *host_port = std::string(host.p) + ":" + port.p;
    return s;
}

result<std::string> existing_file(std::string_view option, std::string_view v) {
    std::error_code ec;
    if (v.empty() || !std::filesystem::is_regular_file(std::filesystem::path(v), ec))
        return invalid_option(option, "must name an existing file, got " + quoted_value(v));
    return std::string(v);
}

std::string resolve_path(std::string_view value, std::string_view base_dir) {
    std::filesystem::path p{std::string(value)};
    if (p.is_absolute() || base_dir.empty())
        return p.lexically_normal().string();
    return (std::filesystem::path(std::string(base_dir)) / p).lexically_normal().string();
}

namespace {
/// Headers the adapters set themselves (or that only libcurl may set).
constexpr std::string_view reserved_headers[] = {"Content-Type", "Content-Length", "Transfer-Encoding", "Host",
                                                 "Expect",       "Connection",     "X-EDIBroker-Id",    "X-EDIBroker-MsgId"};

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size())
        return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
            return false;
    return true;
}
} // namespace

result<bool> parse_common_option(const std::string& k, const std::string& v, std::string_view base_dir,
                                 client_options& o, std::vector<std::string>& headers) {
    auto number = [&](long long lo, long long hi) { return parse_number(k, v, lo, hi); };
    auto file = [&]() { return existing_file(k, v.empty() ? v : resolve_path(v, base_dir)); };
    if (k == "timeout-ms" || k == "connect-timeout-ms") {
        auto n = number(1, 86'400'000);
        if (!n)
            return n.error();
        (k == "timeout-ms" ? o.timeout_ms : o.connect_timeout_ms) = static_cast<long>(*n);
    } else if (k == "max-in-flight") {
        auto n = number(1, 1024);
        if (!n)
            return n.error();
        o.max_in_flight = static_cast<std::size_t>(*n);
    } else if (k == "queue-limit") {
        auto n = number(1, 10'000'000);
        if (!n)
            return n.error();
        o.queue_limit = static_cast<std::size_t>(*n);
    } else if (k == "ca-file" || k == "client-cert" || k == "client-key") {
        auto f = file();
        if (!f)
            return f.error();
        (k == "ca-file" ? o.tls.ca_file : k == "client-cert" ? o.tls.client_cert : o.tls.client_key) = *f;
    } else if (k == "client-key-password") {
        o.tls.key_password = v;
    } else if (k == "insecure") {
        auto b = parse_bool(k, v);
        if (!b)
            return b.error();
        o.tls.insecure = *b;
    } else if (k.rfind("header.", 0) == 0) {
        std::string_view name = std::string_view(k).substr(7);
        if (!is_header_name(name))
            return invalid_option(k, "needs a valid HTTP header name after 'header.'");
        for (auto r : reserved_headers)
            if (iequals(name, r))
                return invalid_option(k, "sets a header the adapter sets itself");
        for (char c : v)
            if (c == '\r' || c == '\n' || c == '\0')
                return invalid_option(k, "must not contain line breaks");
        headers.push_back(v.empty() ? std::string(name) + ";" : std::string(name) + ": " + v);
    } else {
        return false;
    }
    return true;
}

bool is_header_name(std::string_view name) {
    if (name.empty())
        return false;
    for (char c : name)
        if (!std::isalnum(static_cast<unsigned char>(c)) &&
            std::string_view("!#$%&'*+-.^_`|~").find(c) == std::string_view::npos)
            return false;
    return true;
}

std::string header_safe(std::string_view v) {
    std::string out;
    out.reserve(v.size());
    for (char c : v)
        if (static_cast<unsigned char>(c) >= 0x20 && c != 0x7f)
            out += c;
    return out;
}

} // namespace broker::https
