// The broker process: configuration, and the server that wires store, registry, rules, adapters,
// the intake pipeline, the delivery engine and the EDI REST endpoint together.
#pragma once

#include "broker/error.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace broker {

/// Every setting, with its default. A config file sets them as `key = value` lines (keys as in
/// the comments); command-line options override the file.
struct config {
    std::string listen = "127.0.0.1:8080";  ///< listen: HOST:PORT of the EDI REST endpoint (port 0 = any)
    std::string data_dir = "edibroker-data"; ///< data-dir: holds edibroker.db
    std::string rules_dir;                   ///< rules-dir: routing-rules/*.xml (default: the repo's)
    std::string registry_file;               ///< registry: registry file imported at start (default: the repo's demo)
    std::string schemas_dir;                 ///< schemas-dir: override the embedded XSDs ("" = embedded)
    int threads = 2;                         ///< threads: I/O threads for HTTP + validation
    std::string synchronous = "FULL";        ///< synchronous: SQLite durability (FULL | NORMAL)
    int group_commit_max = 256;              ///< group-commit-max: most messages per transaction
    int group_commit_interval_us = 2000;     ///< group-commit-interval-us: commit pacing under load (0: off)
    bool body_log = true;                    ///< body-log: new bodies in segment files beside the database (on | off)
    std::size_t store_queue_limit = 20000;   ///< store-queue-limit: writer queue bound (beyond: 503)
    std::size_t max_body_bytes = 64u << 20;  ///< max-body-bytes: request body cap
    int http_timeout_ms = 30000;             ///< http-timeout-ms: read/write timeout per request
    int max_connections = 2048;              ///< max-connections: concurrent HTTP connections
    int retry_base_ms = 1000;                ///< retry-base-ms: first retry delay (doubles per attempt)
    int retry_max_ms = 300000;               ///< retry-max-ms: longest retry delay
    int max_attempts = 10;                   ///< max-attempts: delivery attempts before 'dead'
    int delivery_scan_ms = 1000;             ///< delivery-scan-ms: how often due retries are looked up
    int stop_drain_ms = 5000;                ///< stop-drain-ms: at stop, longest wait for deliveries under way
    std::string default_apprec_version = "1.1"; ///< default-apprec-version: when no rule says
    std::string log_level = "info";          ///< log-level: debug | info | warn | error | off
    /// admin-listen: HOST:PORT of the admin API and /metrics, "off" for none. "" (unset) means
    /// 127.0.0.1:8081, or a free port (HOST:0) when 'listen' asks for port 0.
    std::string admin_listen;
    int retention_days = 0;                  ///< retention-days: prune messages older than this (0 = keep all); rule option retention-days overrides per route
    int retention_interval_ms = 60000;       ///< retention-interval-ms: how often retention runs
    int retention_batch = 200;               ///< retention-batch: most messages deleted per write operation

    // Digihelse visit notifications and read notices (issue 6, broker/src/digihelse/notify*).
    std::string smtp_url;                    ///< smtp-url: smtp://host:port or smtps://... ("" = no e-mail)
    std::string smtp_from = "ikke-svar@edibroker.invalid"; ///< smtp-from: envelope and From: address
    std::string smtp_user;                   ///< smtp-user: SMTP AUTH user ("" = no AUTH)
    std::string smtp_password;               ///< smtp-password
    std::string smtp_tls = "required";       ///< smtp-tls: STARTTLS on smtp://: required | try | none
    std::string sms_gateway_url;             ///< sms-gateway-url: HTTP(S) URL of the SMS gateway ("" = no SMS)
    std::string sms_gateway_token;           ///< sms-gateway-token: sent as "Authorization: Bearer ..." ("" = none)
    std::string sms_sender = "Helse";        ///< sms-sender: sender name shown on the phone
    std::string notify_language = "nb";      ///< notify-language: nb | en (text of the notifications)
    int notify_retry_base_ms = 5000;         ///< notify-retry-base-ms: first retry delay (doubles per attempt)
    int notify_retry_max_ms = 600000;        ///< notify-retry-max-ms: longest retry delay
    int notify_max_attempts = 8;             ///< notify-max-attempts: attempts before a notification is 'failed'
    int notify_timeout_ms = 15000;           ///< notify-timeout-ms: bound of one SMTP or SMS request
    int notify_scan_ms = 1000;               ///< notify-scan-ms: how often due retries are looked up
    std::string consents_file;               ///< consents-file: JSON consents imported at start ("" = none)
    std::string read_notice_her_ids;         ///< read-notice-her-ids: senders (the portal) that get read notices, comma-separated ("" = off)

    std::string source;  ///< where the config came from (file path or "defaults")
};

/// Defaults with the repository's demo rules and registry filled in.
config default_config();

/// Read `key = value` lines ('#' comments) over 'base'. Errors are "file:line:col: reason".
result<config> load_config_file(const std::string& path, config base);

/// Set one key (as in the file) from a string; used by the file reader and command-line overrides.
result<void> set_config_value(config& c, const std::string& key, const std::string& value);

class server {
public:
    virtual ~server() = default;
    /// Start listening and delivering. After it returns, port() is valid.
    virtual result<void> start() = 0;
    /// The bound port (useful with port 0).
    virtual unsigned short port() const = 0;
    virtual std::string listen_address() const = 0;
    /// Graceful stop: stop accepting, finish in-flight requests, stop adapters, close the store.
    virtual void stop() = 0;
    /// Block until stop() is called (from a signal handler thread or another thread).
    virtual void wait() = 0;
    /// Re-read the routing rules and the registry file and make them current. A broken file is
    /// refused (file:line:col) and the old rules and registry stay in force. Any thread.
    virtual result<void> reload() { return error{"reload.unsupported", "this server cannot reload"}; }
    /// The admin API's bound address ("" when it is off).
    virtual std::string admin_address() const { return {}; }
};

/// Open the store, import the registry, load and check the rules, build adapters. Every problem
/// is reported with its file:line:col where there is one. Fails first when io_backend_ready() does.
result<std::unique_ptr<server>> make_server(const config& c);

/// The I/O backend this build runs Boost.Asio on: "io_uring" or "epoll" (CMake option
/// EDIBROKER_IO_URING).
const char* io_backend();

/// Whether that backend works on this machine. epoll always does; io_uring can be refused by the
/// kernel (sysctl kernel.io_uring_disabled) or by a container's seccomp profile, and the error
/// ("io.unavailable") then says so and names the way out.
result<void> io_backend_ready();

/// The command-line entry point (`edibroker <command> ...`). Returns the process exit code.
int run_cli(int argc, char** argv);

} // namespace broker
