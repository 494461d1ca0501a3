// The admin HTTP API and /metrics, on their own listener (config admin-listen, default
// 127.0.0.1:8081), apart from the EDI endpoint so it can be firewalled or bound to loopback on its
// own. JSON in and out; errors are {"error": {"code", "message"}} like the EDI endpoint's.
//
//   GET  /metrics                          Prometheus text format
//   GET  /admin                            this list
//   GET  /admin/messages?sender=&receiver=&type=&state=&msgId=&conversation=&from=&to=&limit=
//   GET  /admin/messages/{id}              transitions, delivery attempts, AppRec, read receipt
//   POST /admin/messages/{id}/resend       route again with the rules in force and deliver now
//   GET  /admin/dead?limit=                the dead-letter list
//   GET  /admin/store                      size, message count, oldest message, pending per adapter
//   POST /admin/retention/run              prune now what retention allows
//   POST /admin/reload                     re-read rules + registry; a broken file is refused (422)
//   GET  /admin/registry?q=TEXT            search the registry in force
//   GET  /admin/registry/{herId}           a party with its ancestors and adapter
//   GET  /admin/routes                     the rules and adapters in force
//   POST /admin/routes/explain             body: a message; which rule matches and why not the others
//
// No endpoint returns message content (patient data): metadata only.
#pragma once

#include "admin/metrics.hpp"
#include "admin/retention.hpp"
#include "server/engine.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <atomic>
#include <functional>
#include <map>
#include <mutex>

namespace broker::admin {

class admin_api {
public:
    using reload_fn = std::function<result<void>()>;
    admin_api(engine& e, boost::asio::io_context& ioc, const config& cfg, metrics& m, retention& r, reload_fn reload);

    /// Bind and listen (port 0 = any free port).
    result<void> listen(const std::string& host_port);
    unsigned short port() const { return port_; }
    std::string address() const { return address_; }
    void start();
    /// Stop accepting and close every connection. Any thread.
    void stop();

    using request = boost::beast::http::request<boost::beast::http::string_body>;
    using response = boost::beast::http::response<boost::beast::http::string_body>;

private:
    boost::asio::awaitable<void> accept_loop();
    boost::asio::awaitable<void> session(boost::asio::ip::tcp::socket sock, std::uint64_t sid);
    /// Route one request. Never throws.
    boost::asio::awaitable<response> handle(request& req);

    engine& engine_;
    boost::asio::io_context& ioc_;
    config cfg_;
    metrics& metrics_;
    retention& retention_;
    reload_fn reload_;
    boost::asio::ip::tcp::acceptor acceptor_;
    unsigned short port_ = 0;
    std::string address_;
    std::atomic<bool> stopping_{false};
    std::mutex mu_;  // guards open_, next_sid_
    std::map<std::uint64_t, boost::asio::ip::tcp::socket*> open_;
    std::uint64_t next_sid_ = 0;
};

} // namespace broker::admin
