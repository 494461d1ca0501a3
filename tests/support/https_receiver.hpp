// Test support: a real HTTPS/1.1 server standing in for a vendor endpoint (DIPS, TietoEvry), with
// client-certificate checking. Boost.Beast over asio::ssl; certificates from testing::pki.
// Listens on 127.0.0.1 (port 0 unless one is given, e.g. to come back on the port of a receiver
// that was stopped: "the vendor is up again").
//
// Threads: one thread accepts; each connection gets its own thread doing the TLS handshake and
// blocking Beast I/O, so a handler that blocks stalls only its own connection.
#pragma once

#include "http_receiver.hpp"  // recorded_request, reply, header_map
#include "pki.hpp"

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace testing {

struct https_recorded_request : recorded_request {
    std::string client_cn;  ///< CN of the client certificate the peer presented ("" if none)
};

class https_receiver {
public:
    using reply_handler = std::function<reply(const https_recorded_request&)>;

    struct settings {
        bool require_client_cert = true;  ///< refuse the handshake without a certificate the CA signed
        unsigned short port = 0;          ///< 0: the kernel picks
    };

    /// Starts listening at once with the server certificate of 'pki' and, for client
    /// certificates, its CA. Answers 200 with an empty body by default. Throws std::runtime_error
    /// if it cannot listen or load the certificates.
    explicit https_receiver(const pki::files& pki, settings s);
    explicit https_receiver(const pki::files& pki) : https_receiver(pki, settings{}) {}
    /// Stops accepting, closes every connection and joins all threads.
    ~https_receiver();
    https_receiver(const https_receiver&) = delete;
    https_receiver& operator=(const https_receiver&) = delete;

    unsigned short port() const;
    /// "https://127.0.0.1:<port><path>"
    std::string url(std::string_view path = "/") const;

    void respond_with(int status, std::string body = "");
    void set_reply_handler(reply_handler h);
    /// true: answer each request with bytes that are not HTTP (inside TLS), then close.
    void send_garbage(bool on);

    std::vector<https_recorded_request> requests() const;
    std::size_t request_count() const;
    bool wait_for_requests(std::size_t n, std::chrono::milliseconds timeout) const;
    /// TCP connections accepted, and TLS handshakes that failed (e.g. no or a foreign client certificate).
    std::size_t connections() const;
    std::size_t handshake_failures() const;
    bool wait_for_handshake_failures(std::size_t n, std::chrono::milliseconds timeout) const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

} // namespace testing
