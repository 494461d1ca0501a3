// A small blocking HTTP/1.1 client for the command line (replay, --admin): one keep-alive
// connection, Beast on its own io_context, every operation bounded by a timeout.
#pragma once

#include "broker/error.hpp"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace broker::tools {

/// "http://HOST:PORT[/prefix]" split up. Only plain http (the broker listens on loopback or
/// behind a TLS terminator).
struct http_url {
    std::string host;
    std::string port = "80";
    std::string prefix;  ///< path prefix without a trailing '/', "" for none
};
result<http_url> parse_url(const std::string& url);

struct http_reply {
    int status = 0;
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string header(const std::string& name) const;  ///< case-insensitive, "" if absent
};

class http_client {
public:
    explicit http_client(http_url url);
    ~http_client();
    http_client(const http_client&) = delete;
    http_client& operator=(const http_client&) = delete;

    /// Send one request on the kept-alive connection (connecting first when needed; one retry on
    /// a fresh connection when a kept-alive one turns out closed). 'target' is appended to the
    /// URL's prefix. Errors: http.connect, http.io, http.timeout.
    result<http_reply> request(const std::string& method, const std::string& target, const std::string& body = "",
                               const std::string& content_type = "", std::chrono::milliseconds timeout =
                                                                         std::chrono::seconds(60));

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

} // namespace broker::tools
