// Test support: a real HTTP/1.1 server standing in for a vendor endpoint, and a gate to hold its
// handler (a slow vendor) until the test lets go. Listens on 127.0.0.1, port 0 (the kernel picks).
//
// Threads: one thread accepts; each connection gets its own thread doing blocking Beast I/O, so a
// handler that blocks stalls only its own connection. Connections are kept alive as the client asks.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace testing {

/// Case-insensitive ordering for HTTP header names.
struct ci_less {
    bool operator()(std::string_view a, std::string_view b) const;
    using is_transparent = void;
};
/// Header name -> value; lookups ignore case ("content-type" finds "Content-Type"). A repeated
/// header keeps its values joined with ", ".
using header_map = std::map<std::string, std::string, ci_less>;

/// One request as the receiver read it.
struct recorded_request {
    std::string method;   ///< "POST"
    std::string target;   ///< "/inbox?x=1"
    std::string body;
    header_map headers;
    std::size_t connection = 0;  ///< 1-based number of the connection it came on
};

/// What the handler answers. Content-Type defaults to application/json when the body starts
/// with '{' or '[', else text/plain.
struct reply {
    int status = 200;
    std::string body;
    header_map headers;
};

/// A gate threads can wait at until it is opened, once. The destructor opens it, so a test that
/// fails early does not leave a handler blocked (declare it AFTER the receiver it blocks, so it is
/// destroyed, and opened, first).
class gate {
public:
    gate() = default;
    ~gate() { open(); }
    gate(const gate&) = delete;
    gate& operator=(const gate&) = delete;
    void open();
    bool is_open() const;
    void wait();
    /// False if still closed after 'timeout'.
    bool wait_for(std::chrono::milliseconds timeout);

private:
    mutable std::mutex m_;
    std::condition_variable cv_;
    bool open_ = false;
};

class http_receiver {
public:
    using handler = std::function<std::pair<int, std::string>(const recorded_request&)>;
    using reply_handler = std::function<reply(const recorded_request&)>;

    /// Starts listening on 127.0.0.1 (port 0) at once; answers 200 with an empty body by default.
    /// Throws std::runtime_error if it cannot listen.
    http_receiver();
    /// Stops accepting, closes every connection and joins all threads. A handler still blocked
    /// (on a gate) is waited for: release it first.
    ~http_receiver();
    http_receiver(const http_receiver&) = delete;
    http_receiver& operator=(const http_receiver&) = delete;

    unsigned short port() const;
    /// "http://127.0.0.1:<port><path>"
    std::string url(std::string_view path = "/") const;

    /// Answer every request with 'status' and 'body' (replaces any handler).
    void respond_with(int status, std::string body = "");
    /// Decide per request; the handler runs on the connection's thread, may block, and may be
    /// called from several connections at once.
    void set_handler(handler h);
    void set_reply_handler(reply_handler h);
    /// true: answer each request with bytes that are not HTTP, then close the connection.
    void send_garbage(bool on);
    /// What follows each answer: the connection is kept (the default), closed with
    /// "Connection: close" in the answer, or dropped without a word (keep-alive announced, as a
    /// vendor whose proxy closes kept-alive connections does).
    enum class after_answer { keep, close, drop };
    void set_after_answer(after_answer a);

    /// Every request received so far (recorded before the handler runs), in arrival order.
    std::vector<recorded_request> requests() const;
    std::size_t request_count() const;
    /// Wait until at least n requests were received; false on timeout.
    bool wait_for_requests(std::size_t n, std::chrono::milliseconds timeout) const;
    /// Number of TCP connections accepted so far (keep-alive checks).
    std::size_t connections() const;
    /// Forget the recorded requests (the connection count stays).
    void clear();

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

} // namespace testing
