// http-push adapter: delivers each document with an HTTP POST to one vendor URL. One libcurl multi
// handle, driven by one thread per adapter instance, keeps up to max-in-flight transfers running
// over kept-alive connections. Private to this folder.
#pragma once

#include "broker/adapter.hpp"

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace broker::adapters::http_push {

inline constexpr std::string_view type_name = "http-push";

/// The instance options (README.md lists them with their defaults).
struct options {
    std::string url;
    std::string host_port;   ///< "host:port" of url, for details
    long timeout_ms = 10000;
    long connect_timeout_ms = 3000;
    std::size_t max_in_flight = 16;
    std::size_t queue_limit = 10000;
    std::vector<std::pair<std::string, std::string>> headers;  ///< from header.<Name>
    std::string ca_file;
    bool insecure = false;
};

/// Parse and check the options; every error names the option ("config.invalid").
result<options> parse_options(const std::map<std::string, std::string>& in);

/// Makes sure curl_global_init has run (once per process).
void ensure_curl_global();

class adapter final : public broker::adapter {
public:
    adapter(std::string name, options opt);
    ~adapter() override;
    adapter(const adapter&) = delete;
    adapter& operator=(const adapter&) = delete;

    const std::string& name() const override { return name_; }
    std::string_view type() const override { return type_name; }
    const capabilities& caps() const override { return caps_; }
    /// Runs on: any thread. Creates the multi handle and starts the adapter thread.
    result<void> start() override;
    /// Runs on: any thread (never blocks: queues the job and wakes the adapter thread).
    /// 'done' runs on the adapter thread, or on the caller's thread when the job is refused
    /// at once (queue full, not started, stopping).
    void deliver(delivery d, delivery_handler done) override;
    /// Runs on: any thread except the adapter thread's own callbacks, where it only requests the
    /// stop. Completes every queued and in-flight delivery with retriable "shutting down" and
    /// joins the thread. Idempotent.
    void stop() override;

private:
    struct job {
        delivery d;
        delivery_handler done;
    };
    struct transfer;  // one running easy handle (http_push.cpp)
    struct socket_table;  // what the epoll set holds per socket (http_push.cpp)

    void run();  ///< the adapter thread
    void wake() noexcept;  ///< any thread: makes the adapter thread's wait return
    static void complete(delivery_handler& done, delivery_result r) noexcept;

    std::string name_;
    options opt_;
    capabilities caps_;
    void* multi_ = nullptr;  ///< CURLM*, owned; created by start(), freed by the destructor
    int epoll_fd_ = -1;      ///< the thread's wait: sockets curl names, and wake_fd_; owned
    int wake_fd_ = -1;       ///< eventfd: deliver() and stop() wake the thread; owned
    /// Used by the adapter thread and, once it has ended, by curl_multi_cleanup in the destructor
    /// (curl's close-socket callback): it outlives the multi handle.
    std::unique_ptr<socket_table> sockets_;

    std::mutex m_;
    std::deque<job> queue_;      ///< guarded by m_
    bool started_ = false;       ///< guarded by m_
    bool stopping_ = false;      ///< guarded by m_
    std::thread thread_;
    std::mutex stop_m_;          ///< serialises stop() callers
};

} // namespace broker::adapters::http_push
