// An asynchronous HTTP(S) client for adapters that push to a vendor endpoint: one libcurl multi
// handle driven by one thread per client, kept-alive connections, TLS with an optional client
// certificate (mutual TLS, OpenSSL through libcurl). It only moves bytes: what an answer means
// (delivered, retriable, permanent) is the adapter's decision. Used by the dips and tieto adapters;
// a new HTTP-based adapter takes it as is (see "Writing an adapter" in the README).
//
// Threads: post() from any thread never blocks; 'done' runs on the client's thread (or, for a
// refusal, on the caller's thread before post() returns), exactly once, with no lock held.
#pragma once

#include "broker/error.hpp"

#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace broker::https {

/// TLS settings of one client. Files are PEM.
struct tls_options {
    std::string ca_file;       ///< CA bundle to verify the server; "" = the system store
    std::string client_cert;   ///< certificate (chain) presented to the server; "" = none
    std::string client_key;    ///< private key of client_cert; "" = in client_cert's file
    std::string key_password;  ///< passphrase of an encrypted client_key
    bool insecure = false;     ///< no peer/host verification (test setups only)
};

struct client_options {
    std::string name = "https";    ///< for logs and the thread name
    long timeout_ms = 10000;       ///< whole request, from the moment it is sent
    long connect_timeout_ms = 3000;  ///< TCP + TLS handshake
    std::size_t max_in_flight = 8;   ///< concurrent requests (and kept-alive connections)
    std::size_t queue_limit = 10000; ///< requests waiting for a slot; beyond it post() refuses
    tls_options tls;
};

struct request {
    std::string url;
    std::string method = "POST";
    std::vector<std::string> headers;  ///< "Name: value" lines (values must be one line)
    std::shared_ptr<const std::string> body;
};

/// How a request ended.
struct response {
    int status = 0;            ///< HTTP status; 0 when no HTTP answer came
    std::string body;          ///< at most max_response_body bytes of the answer's body
    /// When status == 0: what failed, short and without content ("connection refused to
    /// 127.0.0.1:8443", "tls error with host:port: ...", "invalid http response from host:port",
    /// "timeout after 10000 ms", "queue full", "shutting down").
    std::string failure;
    /// When status == 0: whether the request was never sent (the receiver surely has nothing).
    bool not_sent = false;
};

inline constexpr std::size_t max_response_body = 64 * 1024;

using response_handler = std::function<void(response)>;

/// Make sure curl_global_init has run (once per process; thread-safe).
void ensure_curl_global();

class client {
public:
    explicit client(client_options opt);
    ~client();  ///< stops
    client(const client&) = delete;
    client& operator=(const client&) = delete;

    /// Creates the multi handle and starts the thread.
    result<void> start();
    /// Queue one request. 'done' is called exactly once.
    void send(request r, response_handler done);
    /// Completes every queued and running request with failure "shutting down" and joins the
    /// thread. Idempotent; from inside a 'done' callback it only requests the stop.
    void stop();

    const client_options& options() const { return opt_; }

private:
    struct job {
        request r;
        response_handler done;
    };
    struct transfer;
    void run();
    static void complete(response_handler& done, response r) noexcept;

    client_options opt_;
    void* multi_ = nullptr;  ///< CURLM*

    std::mutex m_;
    std::deque<job> queue_;   ///< guarded by m_
    bool started_ = false;    ///< guarded by m_
    bool stopping_ = false;   ///< guarded by m_
    std::thread thread_;
    std::mutex stop_m_;
};

// ------------------------------------------------------------------ option helpers
// Shared by adapters so every option error reads the same: "option 'timeout-ms' must be ...".

/// error{"config.invalid", "option '<option>' <what>"}
error invalid_option(std::string_view option, std::string_view what);
/// A whole number in [lo, hi], nothing else.
result<long long> parse_number(std::string_view option, std::string_view v, long long lo, long long hi);
result<bool> parse_bool(std::string_view option, std::string_view v);
/// An http:// or https:// URL (https only when 'https_only'); sets *host_port ("host:port").
result<std::string> parse_url(std::string_view option, std::string_view v, bool https_only,
                              std::string* host_port = nullptr);
/// An existing regular file.
result<std::string> existing_file(std::string_view option, std::string_view v);
/// A path from an option: absolute as given, relative ones against 'base_dir' (the data-dir).
std::string resolve_path(std::string_view value, std::string_view base_dir);

/// One of the options every HTTP adapter shares, parsed into 'o' and 'headers':
///   timeout-ms, connect-timeout-ms, max-in-flight, queue-limit, ca-file, client-cert, client-key,
///   client-key-password, insecure, header.<Name> (added to 'headers' as "Name: value").
/// Files must exist; relative paths are resolved against 'base_dir'. Returns false (and no
/// error) when 'key' is none of them.
result<bool> parse_common_option(const std::string& key, const std::string& value, std::string_view base_dir,
                                 client_options& o, std::vector<std::string>& headers);

/// Whether 'name' is an HTTP token (header names).
bool is_header_name(std::string_view name);
/// Keep a header value on one line (drops control characters).
std::string header_safe(std::string_view v);

} // namespace broker::https
