// amqp options: parsing and checking, used by the factory at rules-load time (check) and when an
// instance is built (create). Every error names the option it is about and never echoes a
// password.
#include "options.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <filesystem>

namespace broker::adapters::amqp {

namespace {

error invalid(std::string_view option, std::string_view what) {
    return error{"config.invalid", "option '" + std::string(option) + "' " + std::string(what)};
}

result<long long> parse_number(std::string_view option, std::string_view v, long long lo, long long hi) {
    long long n = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (v.empty() || ec != std::errc{} || p != v.data() + v.size())
        return invalid(option, "must be a whole number, got " + quoted_value(v));
    if (n < lo || n > hi)
        return invalid(option, "must be between " + std::to_string(lo) + " and " + std::to_string(hi) + ", got " +
                                   quoted_value(v));
    return n;
}

result<bool> parse_bool(std::string_view option, std::string_view v) {
    if (v == "true" || v == "1" || v == "yes")
        return true;
    if (v == "false" || v == "0" || v == "no")
        return false;
    return invalid(option, "must be true or false, got " + quoted_value(v));
}

int hex_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/// RFC 3986 percent-decoding of the user-info part; false on a broken escape.
bool percent_decode(std::string_view in, std::string& out) {
    out.clear();
    for (std::size_t i = 0; i < in.size(); ++i) {
        if (in[i] != '%') {
            out += in[i];
            continue;
        }
        if (i + 2 >= in.size())
            return false;
        int hi = hex_value(in[i + 1]), lo = hex_value(in[i + 2]);
        if (hi < 0 || lo < 0)
            return false;
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
    }
    return true;
}

/// amqp[s]://[user[:password]@]host[:port][/] into opt. The password is never shown in errors.
result<void> parse_url(std::string_view v, options& opt) {
    constexpr std::string_view option = "url";
    if (v.empty())
        return invalid(option, "is required (the AMQP broker, amqp://host:port or amqps://host:port)");
    std::string_view rest;
    if (v.substr(0, 7) == "amqp://") {
        rest = v.substr(7);
        opt.tls = false;
    } else if (v.substr(0, 8) == "amqps://") {
        rest = v.substr(8);
        opt.tls = true;
    } else {
        return invalid(option, "must start with amqp:// or amqps://");
    }
    if (auto slash = rest.find('/'); slash != std::string_view::npos) {
        if (rest.substr(slash) != "/")
            return invalid(option, "must not have a path (queues are named by queue-pattern)");
        rest = rest.substr(0, slash);
    }
    if (auto at = rest.rfind('@'); at != std::string_view::npos) {
        std::string_view info = rest.substr(0, at);
        rest = rest.substr(at + 1);
        std::string_view u = info, p;
        if (auto colon = info.find(':'); colon != std::string_view::npos) {
            u = info.substr(0, colon);
            p = info.substr(colon + 1);
        }
        if (!percent_decode(u, opt.user) || !percent_decode(p, opt.password))
            return invalid(option, "has a broken %-escape in its user or password");
        if (opt.user.empty())
            return invalid(option, "has an empty user name before '@'");
    }
    std::string_view host = rest, port;
    if (!rest.empty() && rest.front() == '[') {
        auto close = rest.find(']');
        if (close == std::string_view::npos)
            return invalid(option, "has an unterminated [IPv6] host");
        host = rest.substr(1, close - 1);
        std::string_view after = rest.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':')
                return invalid(option, "has garbage after the [IPv6] host");
            port = after.substr(1);
        }
    } else if (auto colon = rest.rfind(':'); colon != std::string_view::npos) {
        host = rest.substr(0, colon);
        port = rest.substr(colon + 1);
    }
    if (host.empty())
        return invalid(option, "has no host");
    for (char c : host)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == ':' || c == '_'))
            return invalid(option, "has an invalid host name");
    std::string port_s(port);
    if (port_s.empty())
        port_s = opt.tls ? "5671" : "5672";
    if (auto n = parse_number(option, port_s, 1, 65535); !n)
        return invalid(option, "has an invalid port");
    opt.url = std::string(v);
    const bool v6 = host.find(':') != std::string_view::npos;  // an IPv6 address goes in brackets
    opt.endpoint.clear();
    if (v6)
        opt.endpoint += '[';
    opt.endpoint += host;
    if (v6)
        opt.endpoint += ']';
    opt.endpoint += ':';
    opt.endpoint += port_s;
    return {};
}

result<std::vector<std::string>> parse_her_ids(std::string_view option, std::string_view v) {
    std::vector<std::string> out;
    std::size_t i = 0;
    while (i < v.size()) {
        while (i < v.size() && (v[i] == ',' || v[i] == ' ' || v[i] == '\t'))
            ++i;
        std::size_t j = i;
        while (j < v.size() && v[j] != ',' && v[j] != ' ' && v[j] != '\t')
            ++j;
        if (j > i) {
            std::string_view id = v.substr(i, j - i);
            if (!is_her_id(id))
                return invalid(option, "must list HER-ids (digits), got " + quoted_value(id));
            if (std::find(out.begin(), out.end(), id) == out.end())
                out.emplace_back(id);
        }
        i = j;
    }
    return out;
}

result<void> check_pattern(std::string_view option, std::string_view v) {
    if (v.find("{herid}") == std::string_view::npos || v.find("{kind}") == std::string_view::npos)
        return invalid(option, "must contain {herid} and {kind}, got " + quoted_value(v));
    for (char c : v)
        if (std::isspace(static_cast<unsigned char>(c)) || c == '/' || static_cast<unsigned char>(c) < 0x20)
            return invalid(option, "must be a queue name without spaces or '/', got " + quoted_value(v));
    return {};
}

} // namespace

std::string_view kind_name(queue_kind k) {
    switch (k) {
    case queue_kind::async:
        return "async";
    case queue_kind::sync:
        return "sync";
    case queue_kind::syncreply:
        return "syncreply";
    case queue_kind::error:
        return "error";
    }
    return "async";
}

bool is_her_id(std::string_view s) {
    if (s.empty() || s.size() > 9 || s.front() == '0')
        return false;
    return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string options::queue(std::string_view her_id, queue_kind k) const {
    std::string out = queue_pattern;
    auto replace = [&out](std::string_view what, std::string_view with) {
        for (auto p = out.find(what); p != std::string::npos; p = out.find(what, p + with.size()))
            out.replace(p, what.size(), with);
    };
    replace("{herid}", her_id);
    replace("{kind}", kind_name(k));
    return out;
}

bool options::serves(std::string_view her_id) const {
    return std::find(her_ids.begin(), her_ids.end(), her_id) != her_ids.end();
}

std::string options::reply_her(std::string_view sender_her) const {
    if (serves(sender_her))
        return std::string(sender_her);
    return her_ids.empty() ? std::string() : her_ids.front();
}

result<options> parse_options(const std::map<std::string, std::string>& in) {
    options opt;
    bool have_url = false;
    auto millis = [](std::string_view k, std::string_view v, long long lo,
                     std::chrono::milliseconds& out) -> result<void> {
        auto n = parse_number(k, v, lo, 86'400'000);
        if (!n)
            return n.error();
        out = std::chrono::milliseconds(*n);
        return {};
    };
    for (const auto& [k, v] : in) {
        result<void> r;
        if (k == "url") {
            r = parse_url(v, opt);
            have_url = true;
        } else if (k == "her-ids") {
            auto ids = parse_her_ids(k, v);
            if (!ids)
                return ids.error();
            opt.her_ids = std::move(*ids);
        } else if (k == "queue-pattern") {
            r = check_pattern(k, v);
            opt.queue_pattern = v;
        } else if (k == "address-prefix") {
            for (char c : v)
                if (std::isspace(static_cast<unsigned char>(c)))
                    return invalid(k, "must not contain spaces");
            opt.address_prefix = v;
        } else if (k == "sync-timeout-ms") {
            r = millis(k, v, 1, opt.sync_timeout);
        } else if (k == "send-timeout-ms") {
            r = millis(k, v, 1, opt.send_timeout);
        } else if (k == "reconnect-min-ms") {
            r = millis(k, v, 1, opt.reconnect_min);
        } else if (k == "reconnect-max-ms") {
            r = millis(k, v, 1, opt.reconnect_max);
        } else if (k == "heartbeat-ms") {
            r = millis(k, v, 0, opt.heartbeat);
        } else if (k == "async-ttl-ms") {
            r = millis(k, v, 0, opt.async_ttl);
        } else if (k == "intake-retry-ms") {
            r = millis(k, v, 1, opt.intake_retry);
        } else if (k == "prefetch") {
            auto n = parse_number(k, v, 1, 10000);
            if (!n)
                return n.error();
            opt.prefetch = static_cast<unsigned>(*n);
        } else if (k == "max-message-bytes") {
            auto n = parse_number(k, v, 1024, 1LL << 30);
            if (!n)
                return n.error();
            opt.max_message_bytes = static_cast<std::size_t>(*n);
        } else if (k == "content-type") {
            if (v.empty() || v.find_first_of("\r\n") != std::string::npos)
                return invalid(k, "must be one non-empty line");
            opt.content_type = v;
        } else if (k == "cpa-id") {
            if (v.empty() || v.size() > 100 || v.find_first_of("\r\n") != std::string::npos)
                return invalid(k, "must be one non-empty line of at most 100 characters");
            opt.cpa_id = v;
        } else if (k == "ca-file") {
            std::error_code ec;
            if (v.empty() || !std::filesystem::is_regular_file(v, ec))
                return invalid(k, "must name a readable CA bundle file, got " + quoted_value(v));
            opt.ca_file = v;
        } else if (k == "insecure") {
            auto b = parse_bool(k, v);
            if (!b)
                return b.error();
            opt.insecure = *b;
        } else {
            return error{"config.invalid", "unknown option '" + k + "' for adapter type amqp"};
        }
        if (!r)
            return r.error();
    }
    if (!have_url)
        return invalid("url", "is required (the AMQP broker, amqp://host:port or amqps://host:port)");
    if (opt.reconnect_max < opt.reconnect_min)
        return invalid("reconnect-max-ms", "must not be below reconnect-min-ms");
    if ((!opt.ca_file.empty() || opt.insecure) && !opt.tls)
        return invalid(opt.insecure ? "insecure" : "ca-file", "only applies to an amqps:// url");
    return opt;
}

} // namespace broker::adapters::amqp
