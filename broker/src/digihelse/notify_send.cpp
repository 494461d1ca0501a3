// Sending one notification: e-mail over SMTP (libcurl smtp:// / smtps://) and SMS as a JSON POST
// to an HTTP gateway (libcurl). Blocking, on a sender thread; every request is bounded by
// notify-timeout-ms and aborted when the notifier stops. Details never hold the address or text.
#include "digihelse/notify.hpp"

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <curl/curl.h>

#include <cstring>
#include <ctime>
#include <mutex>

namespace broker::digihelse {

namespace json = boost::json;

namespace {

void curl_global() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct easy {
    CURL* h = nullptr;
    curl_slist* list = nullptr;
    curl_slist* headers = nullptr;
    easy() {
        curl_global();
        h = curl_easy_init();
    }
    ~easy() {
        if (h)
            curl_easy_cleanup(h);
        curl_slist_free_all(list);
        curl_slist_free_all(headers);
    }
    easy(const easy&) = delete;
    easy& operator=(const easy&) = delete;
};

struct upload {
    const std::string* data;
    std::size_t pos = 0;
};

std::size_t read_cb(char* buf, std::size_t size, std::size_t n, void* user) {
    auto* u = static_cast<upload*>(user);
    std::size_t want = size * n;
    std::size_t left = u->data->size() - u->pos;
    std::size_t k = left < want ? left : want;
    std::memcpy(buf, u->data->data() + u->pos, k);
    u->pos += k;
    return k;
}

std::size_t discard_cb(char*, std::size_t size, std::size_t n, void*) { return size * n; }

int progress_cb(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    return static_cast<const std::atomic<bool>*>(user)->load() ? 1 : 0;  // non-zero aborts
}

void common(easy& e, const config& cfg, const std::atomic<bool>& stop) {
    const long total = cfg.notify_timeout_ms;
    curl_easy_setopt(e.h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e.h, CURLOPT_TIMEOUT_MS, total);
    curl_easy_setopt(e.h, CURLOPT_CONNECTTIMEOUT_MS, total < 5000 ? total : 5000L);
    curl_easy_setopt(e.h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(e.h, CURLOPT_XFERINFOFUNCTION, progress_cb);
    curl_easy_setopt(e.h, CURLOPT_XFERINFODATA, const_cast<std::atomic<bool>*>(&stop));
}

std::string base64(std::string_view in) {
    static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    std::size_t i = 0;
    for (; i + 2 < in.size(); i += 3) {
        unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8) |
                     static_cast<unsigned char>(in[i + 2]);
        out += t[(v >> 18) & 63];
        out += t[(v >> 12) & 63];
        out += t[(v >> 6) & 63];
        out += t[v & 63];
    }
    if (i < in.size()) {
        unsigned v = static_cast<unsigned char>(in[i]) << 16;
        if (i + 1 < in.size())
            v |= static_cast<unsigned char>(in[i + 1]) << 8;
        out += t[(v >> 18) & 63];
        out += t[(v >> 12) & 63];
        out += i + 1 < in.size() ? t[(v >> 6) & 63] : '=';
        out += '=';
    }
    return out;
}

std::string rfc5322_date() {
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    return buf;
}

/// The message: UTF-8 text, base64 body (7-bit clean on any relay), RFC 2047 subject.
std::string mail_text(const config& cfg, const std::string& id, const std::string& to, const std::string& subject,
                      const std::string& body) {
    std::string b64 = base64(body);
    std::string wrapped;
    for (std::size_t i = 0; i < b64.size(); i += 76)
        wrapped += b64.substr(i, 76) + "\r\n";
    std::string domain = cfg.smtp_from.substr(cfg.smtp_from.find('@') + 1);
    return "Date: " + rfc5322_date() + "\r\n" + "From: <" + cfg.smtp_from + ">\r\n" + "To: <" + to + ">\r\n" +
           "Subject: =?UTF-8?B?" + base64(subject) + "?=\r\n" + "Message-ID: <" + id + "@" + domain + ">\r\n" +
           "MIME-Version: 1.0\r\n" + "Content-Type: text/plain; charset=UTF-8\r\n" +
           "Content-Transfer-Encoding: base64\r\n" + "Auto-Submitted: auto-generated\r\n" + "\r\n" + wrapped;
}

std::string curl_detail(const char* what, CURLcode rc, long code) {
    std::string d = std::string(what) + ": " + curl_easy_strerror(rc);
    if (code > 0)
        d += " (" + std::string(what) + " " + std::to_string(code) + ")";
    return d;
}

} // namespace

send_result send_email(const config& cfg, const std::string& id, const std::string& to, const std::string& subject,
                       const std::string& body, const std::atomic<bool>& stop) {
    easy e;
    if (!e.h)
        return {send_result::outcome::retriable, "smtp: cannot create a curl handle"};
    const std::string payload = mail_text(cfg, id, to, subject, body);
    upload up{&payload};
    const std::string from = "<" + cfg.smtp_from + ">";
    const std::string rcpt = "<" + to + ">";
    e.list = curl_slist_append(e.list, rcpt.c_str());
    common(e, cfg, stop);
    curl_easy_setopt(e.h, CURLOPT_URL, cfg.smtp_url.c_str());
    curl_easy_setopt(e.h, CURLOPT_MAIL_FROM, from.c_str());
    curl_easy_setopt(e.h, CURLOPT_MAIL_RCPT, e.list);
    curl_easy_setopt(e.h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(e.h, CURLOPT_READFUNCTION, read_cb);
    curl_easy_setopt(e.h, CURLOPT_READDATA, &up);
    curl_easy_setopt(e.h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(payload.size()));
    curl_easy_setopt(e.h, CURLOPT_USE_SSL, cfg.smtp_tls == "required" ? static_cast<long>(CURLUSESSL_ALL)
                                           : cfg.smtp_tls == "try"    ? static_cast<long>(CURLUSESSL_TRY)
                                                                      : static_cast<long>(CURLUSESSL_NONE));
    if (!cfg.smtp_user.empty()) {
        curl_easy_setopt(e.h, CURLOPT_USERNAME, cfg.smtp_user.c_str());
        curl_easy_setopt(e.h, CURLOPT_PASSWORD, cfg.smtp_password.c_str());
    }
    CURLcode rc = curl_easy_perform(e.h);
    long code = 0;
    curl_easy_getinfo(e.h, CURLINFO_RESPONSE_CODE, &code);
    if (rc == CURLE_OK)
        return {send_result::outcome::sent, "smtp " + std::to_string(code)};
    if (rc == CURLE_ABORTED_BY_CALLBACK)
        return {send_result::outcome::retriable, "smtp: stopped"};
    // 550-554: the mailbox or the message is refused for good. Other 5xx (e.g. 530/535, AUTH) are
    // configuration the operator can fix, and 4xx are temporary: retried.
    if (code >= 550 && code <= 554)
        return {send_result::outcome::permanent, curl_detail("smtp", rc, code)};
    return {send_result::outcome::retriable, curl_detail("smtp", rc, code)};
}

send_result send_sms(const config& cfg, const std::string& id, const std::string& to, const std::string& body,
                     const std::atomic<bool>& stop) {
    easy e;
    if (!e.h)
        return {send_result::outcome::retriable, "sms: cannot create a curl handle"};
    json::object o;
    o["to"] = to;
    o["from"] = cfg.sms_sender;
    o["text"] = body;
    o["reference"] = id;
    const std::string payload = json::serialize(o);
    e.headers = curl_slist_append(e.headers, "Content-Type: application/json; charset=utf-8");
    e.headers = curl_slist_append(e.headers, "Expect:");
    std::string auth;
    if (!cfg.sms_gateway_token.empty()) {
        auth = "Authorization: Bearer " + cfg.sms_gateway_token;
        e.headers = curl_slist_append(e.headers, auth.c_str());
    }
    common(e, cfg, stop);
    curl_easy_setopt(e.h, CURLOPT_URL, cfg.sms_gateway_url.c_str());
    curl_easy_setopt(e.h, CURLOPT_HTTPHEADER, e.headers);
    curl_easy_setopt(e.h, CURLOPT_POST, 1L);
    curl_easy_setopt(e.h, CURLOPT_POSTFIELDS, payload.c_str());
    curl_easy_setopt(e.h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(payload.size()));
    curl_easy_setopt(e.h, CURLOPT_WRITEFUNCTION, discard_cb);
    CURLcode rc = curl_easy_perform(e.h);
    long code = 0;
    curl_easy_getinfo(e.h, CURLINFO_RESPONSE_CODE, &code);
    if (rc == CURLE_ABORTED_BY_CALLBACK)
        return {send_result::outcome::retriable, "sms: stopped"};
    if (rc != CURLE_OK)
        return {send_result::outcome::retriable, curl_detail("sms", rc, 0)};
    if (code >= 200 && code < 300)
        return {send_result::outcome::sent, "http " + std::to_string(code)};
    if (code == 408 || code == 429 || code >= 500)
        return {send_result::outcome::retriable, "sms gateway: http " + std::to_string(code)};
    return {send_result::outcome::permanent, "sms gateway: http " + std::to_string(code)};
}

} // namespace broker::digihelse
