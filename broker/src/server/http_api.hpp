// The EDI-2.0-style REST endpoint (Boost.Beast on Asio, one coroutine per connection on its own
// strand). Routes requests to the engine; every error is a status code + JSON error body.
#pragma once

#include "engine.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <vector>

namespace broker {

/// ASCII case-insensitive equality (path segments, header values).
bool iequals(std::string_view a, std::string_view b);
/// 'text' with %XX sequences decoded and '+' as a space (a malformed % sequence stays as it is).
std::string percent_decode(std::string_view text);
/// The parameters of a query string: names lower-cased (the EDI 2.0 API's names are
/// case-insensitive: ReceiverHerIds = receiverHerIds), names and values percent-decoded, '+' a
/// space, empty pairs skipped; a repeated name keeps its last value.
std::map<std::string, std::string> parse_query(std::string_view q);

/// A feature's own endpoints on the REST listener (issue 6: /Consents, /Messages/{id}/notifications).
/// Asked first, in the order added; answers nullopt for requests it does not own. Never throws.
class http_extension {
public:
    using request = boost::beast::http::request<boost::beast::http::string_body>;
    using response = boost::beast::http::response<boost::beast::http::string_body>;
    virtual ~http_extension() = default;
    virtual boost::asio::awaitable<std::optional<response>> handle(request& req, std::string_view path,
                                                                   std::string_view query) = 0;
};

class http_api {
public:
    /// 'ioc' holds the acceptor. Each accepted connection goes to one of 'contexts' in turn, each
    /// an io_context that exactly one thread runs: a connection's handlers then never need a strand
    /// and no two I/O threads share a scheduler (see server.cpp). Empty: every connection on 'ioc',
    /// on a strand of its own (any number of threads may run it).
    http_api(engine& e, boost::asio::io_context& ioc, const config& cfg,
             std::vector<boost::asio::io_context*> contexts = {});

    /// Bind and listen (port 0 = any free port).
    result<void> listen(const std::string& host_port);
    unsigned short port() const { return port_; }
    std::string address() const { return address_; }

    /// Add a feature's endpoints (before start(); not owned).
    void add_extension(http_extension* e) { extensions_.push_back(e); }

    /// Start the accept loop.
    void start();
    /// Stop accepting and close every connection. Runs on any thread.
    void stop();

private:
    boost::asio::awaitable<void> accept_loop();
    boost::asio::awaitable<void> session(boost::asio::ip::tcp::socket sock, std::uint64_t sid);
    using request = boost::beast::http::request<boost::beast::http::string_body>;
    using response = boost::beast::http::response<boost::beast::http::string_body>;
    /// Route one request. Never throws.
    boost::asio::awaitable<response> handle(request& req);
    boost::asio::awaitable<response> post_message(request& req);

    engine& engine_;
    boost::asio::io_context& ioc_;
    std::vector<boost::asio::io_context*> contexts_;  ///< not owned; see the constructor
    std::size_t next_context_ = 0;                    ///< accept_loop's only
    config cfg_;
    boost::asio::ip::tcp::acceptor acceptor_;
    unsigned short port_ = 0;
    std::string address_;
    std::atomic<int> sessions_{0};
    std::atomic<bool> stopping_{false};
    std::mutex mu_;  // guards open_
    std::map<std::uint64_t, boost::asio::ip::tcp::socket*> open_;
    std::uint64_t next_sid_ = 0;
    std::vector<http_extension*> extensions_;
};

} // namespace broker
