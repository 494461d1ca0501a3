// Test support: a real SMTP server process (tests/support/smtp_server.py on Debian's
// python3-aiosmtpd) listening on 127.0.0.1. Every accepted message is written as JSON into a
// folder and announced on the process's stdout, which the test reads with poll() and a deadline.
#pragma once

#include "test_paths.hpp"

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace testing {

/// One message the server accepted.
struct received_mail {
    std::string mail_from;               ///< envelope MAIL FROM
    std::vector<std::string> rcpt_tos;   ///< envelope RCPT TO (accepted ones)
    std::string from, to, subject;       ///< headers, decoded (RFC 2047)
    std::string content_type;
    std::string body;                    ///< decoded text (base64/quoted-printable undone)
    std::string raw;                     ///< the message as it came over the wire
};

class smtp_server {
public:
    /// Whether Debian's python3-aiosmtpd can be imported (tests skip with a reason otherwise).
    static bool available();
    /// A free TCP port on 127.0.0.1 right now (for a server to be started later).
    static unsigned short free_port();

    /// Start the server on 'port' (0: any) and wait (at most 15 s) until it accepts connections.
    /// Throws std::runtime_error when it does not come up.
    explicit smtp_server(unsigned short port = 0);
    /// SIGTERM, then waits for the process (SIGKILL after 5 s).
    ~smtp_server();
    smtp_server(const smtp_server&) = delete;
    smtp_server& operator=(const smtp_server&) = delete;

    unsigned short port() const { return port_; }
    /// "smtp://127.0.0.1:PORT"
    std::string url() const;
    /// Wait until at least n messages were accepted; false at the timeout.
    bool wait_for_messages(std::size_t n, std::chrono::milliseconds timeout);
    /// Every message accepted so far, in order.
    std::vector<received_mail> messages() const;

private:
    bool read_lines(std::chrono::steady_clock::time_point deadline);
    void shutdown();
    std::unique_ptr<temp_dir> tmp_;
    std::filesystem::path dir_;
    int pid_ = -1;
    int out_fd_ = -1;
    unsigned short port_ = 0;
    std::string buf_;
    std::size_t announced_ = 0;
};

} // namespace testing
