// amqp adapter: instance options and the queue naming they imply. No qpid-proton here, so the
// option checks are unit-tested without an AMQP broker.
#pragma once

#include "broker/error.hpp"

#include <chrono>
#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace broker::adapters::amqp {

inline constexpr std::string_view type_name = "amqp";

/// The four queues a party has on the helsenorge service bus (AR kodeverk 9044: E_SB_ASYNC,
/// E_SB_SYNC, E_SB_SYNCREPLY, E_SB_ERROR).
enum class queue_kind { async, sync, syncreply, error };
std::string_view kind_name(queue_kind k);

/// The instance options (README.md lists them with their defaults).
struct options {
    std::string url;        ///< amqp[s]://[user[:password]@]host[:port], as given
    std::string endpoint;   ///< "host:port" without credentials, for logs and details
    std::string user;       ///< from the URL ("" = SASL ANONYMOUS)
    std::string password;   ///< from the URL
    bool tls = false;       ///< amqps
    std::vector<std::string> her_ids;  ///< served HER-ids: their async/sync/syncreply queues are consumed
    std::string queue_pattern = "{herid}_{kind}";
    std::string address_prefix = "/queue/";
    std::chrono::milliseconds sync_timeout{15000};
    std::chrono::milliseconds send_timeout{10000};
    std::chrono::milliseconds reconnect_min{200};
    std::chrono::milliseconds reconnect_max{10000};
    std::chrono::milliseconds heartbeat{30000};   ///< AMQP idle-timeout offered to the peer (0 = none)
    std::chrono::milliseconds async_ttl{0};       ///< header TTL of async messages (0 = none)
    std::chrono::milliseconds intake_retry{1000}; ///< wait before handing a message to a busy store again
    unsigned prefetch = 64;                       ///< unsettled messages per consumed queue
    std::size_t max_message_bytes = 20u << 20;    ///< helsenorge's limit (standards §4.12)
    std::string content_type = "text/plain";
    std::string cpa_id = "00000000-0000-0000-0000-000000000000";
    std::string ca_file;     ///< amqps: PEM CA bundle ("" = the system's)
    bool insecure = false;   ///< amqps: do not verify the peer (test setups only)

    /// The queue name of 'her_id' for 'k' ("8093244_async" with the default pattern).
    std::string queue(std::string_view her_id, queue_kind k) const;
    /// The AMQP address of a queue name (address-prefix + name).
    std::string address(std::string_view queue_name) const { return address_prefix + std::string(queue_name); }
    /// The served HER-id whose _syncreply queue answers synchronous requests sent by 'sender_her'
    /// (the sender itself when served, else the first served HER-id; "" when none is served).
    std::string reply_her(std::string_view sender_her) const;
    bool serves(std::string_view her_id) const;
};

/// Parse and check the options; every error names the option ("config.invalid").
result<options> parse_options(const std::map<std::string, std::string>& in);

/// A HER-id as the AR hands them out: 1 to 9 digits, no sign, no leading zero.
bool is_her_id(std::string_view s);

} // namespace broker::adapters::amqp
