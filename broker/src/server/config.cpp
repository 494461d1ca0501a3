#include "broker/server.hpp"

#include <charconv>
#include <fstream>
#include <sstream>

#ifndef EDIBROKER_DEFAULT_SOURCE_DIR
#define EDIBROKER_DEFAULT_SOURCE_DIR "."
#endif

namespace broker {

config default_config() {
    config c;
    c.rules_dir = std::string(EDIBROKER_DEFAULT_SOURCE_DIR) + "/routing-rules";
    c.registry_file = std::string(EDIBROKER_DEFAULT_SOURCE_DIR) + "/config/registry.xml";
    c.source = "defaults";
    return c;
}

namespace {

template <class T>
result<void> parse_number(const std::string& key, const std::string& v, T& out, T min, T max) {
    T x{};
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
    if (ec != std::errc{} || p != v.data() + v.size())
        return error{"config.invalid", "'" + key + "' needs a whole number, got '" + v + "'"};
    if (x < min || x > max)
        return error{"config.invalid", "'" + key + "' must be between " + std::to_string(min) + " and " +
                                           std::to_string(max) + ", got " + v};
    out = x;
    return {};
}

std::string trim(std::string s) {
    auto b = s.find_first_not_of(" \t\r");
    if (b == std::string::npos)
        return {};
    auto e = s.find_last_not_of(" \t\r");
    return s.substr(b, e - b + 1);
}

} // namespace

result<void> set_config_value(config& c, const std::string& key, const std::string& v) {
    if (key == "listen") {
        if (v.rfind(':') == std::string::npos)
            return error{"config.invalid", "'listen' needs HOST:PORT, got '" + v + "'"};
        c.listen = v;
        return {};
    }
    if (key == "data-dir") { c.data_dir = v; return {}; }
    if (key == "rules-dir") { c.rules_dir = v; return {}; }
    if (key == "registry") { c.registry_file = v; return {}; }
    if (key == "schemas-dir") { c.schemas_dir = v; return {}; }
    if (key == "threads") return parse_number(key, v, c.threads, 1, 64);
    if (key == "synchronous") {
        if (v != "FULL" && v != "NORMAL" && v != "EXTRA")
            return error{"config.invalid", "'synchronous' must be FULL, EXTRA or NORMAL, got '" + v + "'"};
        c.synchronous = v;
        return {};
    }
    if (key == "group-commit-max") return parse_number(key, v, c.group_commit_max, 1, 10000);
    if (key == "group-commit-interval-us") return parse_number(key, v, c.group_commit_interval_us, 0, 1000000);
    if (key == "body-log") {
        if (v != "on" && v != "off")
            return error{"config.invalid", "'body-log' must be on or off, got '" + v + "'"};
        c.body_log = v == "on";
        return {};
    }
    if (key == "store-queue-limit") return parse_number<std::size_t>(key, v, c.store_queue_limit, 1, 10000000);
    if (key == "max-body-bytes") return parse_number<std::size_t>(key, v, c.max_body_bytes, 1024, std::size_t(1) << 31);
    if (key == "http-timeout-ms") return parse_number(key, v, c.http_timeout_ms, 100, 3600000);
    if (key == "max-connections") return parse_number(key, v, c.max_connections, 1, 1000000);
    if (key == "retry-base-ms") return parse_number(key, v, c.retry_base_ms, 1, 86400000);
    if (key == "retry-max-ms") return parse_number(key, v, c.retry_max_ms, 1, 86400000);
    if (key == "max-attempts") return parse_number(key, v, c.max_attempts, 1, 1000);
    if (key == "delivery-scan-ms") return parse_number(key, v, c.delivery_scan_ms, 10, 3600000);
    if (key == "stop-drain-ms") return parse_number(key, v, c.stop_drain_ms, 0, 600000);
    if (key == "default-apprec-version") {
        if (v != "1.0" && v != "1.1")
            return error{"config.invalid", "'default-apprec-version' must be 1.0 or 1.1, got '" + v + "'"};
        c.default_apprec_version = v;
        return {};
    }
    if (key == "log-level") {
        if (v != "debug" && v != "info" && v != "warn" && v != "error" && v != "off")
            return error{"config.invalid", "'log-level' must be debug, info, warn, error or off"};
        c.log_level = v;
        return {};
    }
    if (key == "admin-listen") {
        if (v != "off" && v.rfind(':') == std::string::npos)
            return error{"config.invalid", "'admin-listen' needs HOST:PORT or off, got '" + v + "'"};
        c.admin_listen = v;
        return {};
    }
    if (key == "retention-days") return parse_number(key, v, c.retention_days, 0, 36500);
    if (key == "retention-interval-ms") return parse_number(key, v, c.retention_interval_ms, 10, 86400000);
    if (key == "retention-batch") return parse_number(key, v, c.retention_batch, 1, 100000);
    // Digihelse visit notifications and read notices (issue 6).
    if (key == "smtp-url") {
        if (!v.empty() && v.rfind("smtp://", 0) != 0 && v.rfind("smtps://", 0) != 0)
            return error{"config.invalid", "'smtp-url' must start with smtp:// or smtps://"};
        c.smtp_url = v;
        return {};
    }
    if (key == "smtp-from") { c.smtp_from = v; return {}; }
    if (key == "smtp-user") { c.smtp_user = v; return {}; }
    if (key == "smtp-password") { c.smtp_password = v; return {}; }
    if (key == "smtp-tls") {
        if (v != "required" && v != "try" && v != "none")
            return error{"config.invalid", "'smtp-tls' must be required, try or none, got '" + v + "'"};
        c.smtp_tls = v;
        return {};
    }
    if (key == "sms-gateway-url") {
        if (!v.empty() && v.rfind("http://", 0) != 0 && v.rfind("https://", 0) != 0)
            return error{"config.invalid", "'sms-gateway-url' must start with http:// or https://"};
        c.sms_gateway_url = v;
        return {};
    }
    if (key == "sms-gateway-token") { c.sms_gateway_token = v; return {}; }
    if (key == "sms-sender") { c.sms_sender = v; return {}; }
    if (key == "notify-language") {
        if (v != "nb" && v != "en")
            return error{"config.invalid", "'notify-language' must be nb or en, got '" + v + "'"};
        c.notify_language = v;
        return {};
    }
    if (key == "notify-retry-base-ms") return parse_number(key, v, c.notify_retry_base_ms, 1, 86400000);
    if (key == "notify-retry-max-ms") return parse_number(key, v, c.notify_retry_max_ms, 1, 86400000);
    if (key == "notify-max-attempts") return parse_number(key, v, c.notify_max_attempts, 1, 1000);
    if (key == "notify-timeout-ms") return parse_number(key, v, c.notify_timeout_ms, 100, 600000);
    if (key == "notify-scan-ms") return parse_number(key, v, c.notify_scan_ms, 10, 3600000);
    if (key == "consents-file") { c.consents_file = v; return {}; }
    if (key == "read-notice-her-ids") { c.read_notice_her_ids = v; return {}; }
    return error{"config.invalid", "unknown key '" + key + "'"};
}

result<config> load_config_file(const std::string& path, config c) {
    std::ifstream in(path);
    if (!in)
        return error{"config.unreadable", "cannot read the file", path, 0, 0};
    std::string line;
    int n = 0;
    while (std::getline(in, line)) {
        ++n;
        std::string t = trim(line);
        if (t.empty() || t[0] == '#')
            continue;
        auto eq = t.find('=');
        if (eq == std::string::npos) {
            int col = static_cast<int>(line.find_first_not_of(" \t")) + 1;
            return error{"config.invalid", "expected 'key = value'", path, n, col};
        }
        std::string key = trim(t.substr(0, eq));
        std::string value = trim(t.substr(eq + 1));
        // Relative paths in a config file are relative to the file's folder.
        if ((key == "data-dir" || key == "rules-dir" || key == "registry" || key == "schemas-dir" ||
             key == "consents-file") &&
            !value.empty() && value[0] != '/') {
            auto slash = path.rfind('/');
            if (slash != std::string::npos)
                value = path.substr(0, slash + 1) + value;
        }
        if (auto r = set_config_value(c, key, value); !r) {
            auto e = r.error();
            int col = static_cast<int>(line.find(key)) + 1;
            return error{e.code, e.message, path, n, col};
        }
    }
    c.source = path;
    return c;
}

} // namespace broker
