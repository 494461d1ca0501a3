// http-push options: parsing and checking. Used by the factory at rules-load time (check) and
// when an instance is built (create). Every error names the option it is about.
#include "http_push.hpp"

#include <curl/curl.h>

#include <cctype>
#include <charconv>
#include <filesystem>
#include <memory>

namespace broker::adapters::http_push {

namespace {

error invalid(std::string_view option, std::string_view what) {
    return error{"config.invalid", "option '" + std::string(option) + "' " + std::string(what)};
}

/// A whole number in [lo, hi], nothing else (no sign, no spaces, no units).
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

bool is_token_char(char c) {
    if (std::isalnum(static_cast<unsigned char>(c)))
        return true;
    return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size())
        return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
            return false;
    return true;
}

struct url_deleter {
    void operator()(CURLU* u) const { curl_url_cleanup(u); }
};
struct curl_string {
    char* p = nullptr;
    ~curl_string() { curl_free(p); }
};

/// Checks the URL and fills opt.url and opt.host_port.
result<void> parse_url(std::string_view v, options& opt) {
    if (v.empty())
        return invalid("url", "is required (the vendor endpoint, http:// or https://)");
    std::unique_ptr<CURLU, url_deleter> u(curl_url());
    if (!u)
        return error{"adapter.nomem", "cannot allocate a URL handle"};
    std::string s(v);
    if (curl_url_set(u.get(), CURLUPART_URL, s.c_str(), 0) != CURLUE_OK)
        return invalid("url", "is not a valid URL: " + quoted_value(v));
    curl_string scheme, host, port;
    if (curl_url_get(u.get(), CURLUPART_SCHEME, &scheme.p, 0) != CURLUE_OK || !scheme.p)
        return invalid("url", "has no scheme: " + quoted_value(v));
    std::string sch(scheme.p);
    if (sch != "http" && sch != "https")
        return invalid("url", "must be http or https, got " + quoted_value(sch));
    if (curl_url_get(u.get(), CURLUPART_HOST, &host.p, 0) != CURLUE_OK || !host.p || !*host.p)
        return invalid("url", "has no host: " + quoted_value(v));
    if (curl_url_get(u.get(), CURLUPART_PORT, &port.p, CURLU_DEFAULT_PORT) != CURLUE_OK || !port.p)
        return invalid("url", "has no usable port: " + quoted_value(v));
    opt.url = s;
    opt.host_port = std::string(host.p) + ":" + port.p;
    return {};
}

/// Headers the adapter sets itself (or that only libcurl may set).
constexpr std::string_view reserved_headers[] = {"Content-Type", "Content-Length", "Transfer-Encoding", "Host",
                                                 "Expect", "Connection", "X-EDIBroker-Id", "X-EDIBroker-MsgId"};

} // namespace

void ensure_curl_global() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

result<options> parse_options(const std::map<std::string, std::string>& in) {
    ensure_curl_global();
    options opt;
    bool have_url = false;
    for (const auto& [k, v] : in) {
        if (k == "url") {
            if (auto r = parse_url(v, opt); !r)
                return r.error();
            have_url = true;
        } else if (k == "timeout-ms") {
            auto n = parse_number(k, v, 1, 86'400'000);
            if (!n)
                return n.error();
            opt.timeout_ms = static_cast<long>(*n);
        } else if (k == "connect-timeout-ms") {
            auto n = parse_number(k, v, 1, 86'400'000);
            if (!n)
                return n.error();
            opt.connect_timeout_ms = static_cast<long>(*n);
        } else if (k == "max-in-flight") {
            auto n = parse_number(k, v, 1, 1024);
            if (!n)
                return n.error();
            opt.max_in_flight = static_cast<std::size_t>(*n);
        } else if (k == "queue-limit") {
            auto n = parse_number(k, v, 1, 10'000'000);
            if (!n)
                return n.error();
            opt.queue_limit = static_cast<std::size_t>(*n);
        } else if (k == "insecure") {
            auto b = parse_bool(k, v);
            if (!b)
                return b.error();
            opt.insecure = *b;
        } else if (k == "ca-file") {
            std::error_code ec;
            if (v.empty() || !std::filesystem::is_regular_file(v, ec))
                return invalid(k, "must name a readable CA bundle file, got " + quoted_value(v));
            opt.ca_file = v;
        } else if (k.rfind("header.", 0) == 0) {
            std::string_view name = std::string_view(k).substr(7);
            if (name.empty())
                return invalid(k, "needs a header name after 'header.'");
            for (char c : name)
                if (!is_token_char(c))
                    return invalid(k, "is not a valid HTTP header name");
            for (auto r : reserved_headers)
                if (iequals(name, r))
                    return invalid(k, "sets a header the adapter sets itself");
            for (char c : v)
                if (c == '\r' || c == '\n' || c == '\0')
                    return invalid(k, "must not contain line breaks");
            opt.headers.emplace_back(std::string(name), v);
        } else {
            return error{"config.invalid", "unknown option '" + k + "' for adapter type http-push"};
        }
    }
    if (!have_url)
        return invalid("url", "is required (the vendor endpoint, http:// or https://)");
    return opt;
}

} // namespace broker::adapters::http_push
