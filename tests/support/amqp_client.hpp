// Test support: an AMQP 1.0 peer (qpid-proton C++) standing for the helsenorge portal or for an
// EPJ on the service bus. Blocking, thread-safe calls with bounded waits; the proton container runs
// on the client's own thread. A client does not reconnect: after an AMQP broker restart a test
// makes a new one.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

namespace testing {

/// An application property: text, an AMQP int/long, or an AMQP timestamp (ms since the epoch).
struct amqp_prop {
    enum class kind { text, integer, timestamp } k = kind::text;
    std::string text;
    std::int64_t number = 0;

    static amqp_prop str(std::string s) { return {kind::text, std::move(s), 0}; }
    static amqp_prop num(std::int64_t n) { return {kind::integer, std::to_string(n), n}; }
    static amqp_prop time(std::int64_t ms) { return {kind::timestamp, std::to_string(ms), ms}; }
};

/// One AMQP message as the tests see it. Properties left empty are not sent.
struct amqp_msg {
    std::string message_id;
    std::string correlation_id;
    std::string to;
    std::string reply_to;
    std::string subject;
    std::string content_type;
    std::string body;             ///< sent as one data section (binary)
    bool body_as_string = false;  ///< send as an amqp-value string instead
    bool durable = true;
    std::int64_t ttl_ms = 0;      ///< 0 = none
    std::map<std::string, amqp_prop> props;  ///< application-properties (received: kind as on the wire)

    std::string prop(const std::string& k) const {
        auto it = props.find(k);
        return it == props.end() ? std::string() : it->second.text;
    }
};

class amqp_client {
public:
    /// Connects to 'url' (amqp://user:password@host:port) and waits for the open. Throws
    /// std::runtime_error when that does not happen within 'timeout'.
    explicit amqp_client(const std::string& url, std::chrono::milliseconds timeout = std::chrono::seconds(10));
    ~amqp_client();
    amqp_client(const amqp_client&) = delete;
    amqp_client& operator=(const amqp_client&) = delete;

    /// Send to 'address' (e.g. "/queue/8093244_async"; the queue is declared durable on first
    /// use) and wait for the AMQP broker's accept. False when refused, disconnected or timed out.
    bool send(const std::string& address, const amqp_msg& m, std::chrono::milliseconds timeout = std::chrono::seconds(10));

    /// Start consuming 'address' (declaring it); each message is accepted as it arrives and
    /// kept in arrival order. Waits until the link is attached (bounded).
    bool subscribe(const std::string& address, std::chrono::milliseconds timeout = std::chrono::seconds(10));
    /// The next message from 'address' (subscribing first if needed), or nullopt at the timeout.
    std::optional<amqp_msg> receive(const std::string& address, std::chrono::milliseconds timeout);

    bool connected() const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

/// Now, in ms since the epoch (for applicationTimeStamp).
std::int64_t epoch_ms();

} // namespace testing
