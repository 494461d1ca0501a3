// Identifiers and timestamps for new AppRecs: random UUIDs (v4, from OpenSSL's CSPRNG) and the
// current UTC time as xs:dateTime.
#include "broker/apprec.hpp"
#include "broker/log.hpp"

#include <openssl/rand.h>

#include <array>
#include <cstdint>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>

namespace broker::apprec {

namespace {

std::array<unsigned char, 16> random_bytes() {
    std::array<unsigned char, 16> b{};
    if (RAND_bytes(b.data(), static_cast<int>(b.size())) != 1) {
        // The CSPRNG failing is an environment failure we cannot work around (style rule 8).
        log::error("apprec.rand-failed", {{"what", "RAND_bytes"}});
        std::abort();
    }
    return b;
}

std::string uuid_text(const std::array<unsigned char, 16>& b) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    out.reserve(36);
    for (std::size_t i = 0; i < b.size(); ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out += '-';
        out += hex[b[i] >> 4];
        out += hex[b[i] & 0x0f];
    }
    return out;
}

} // namespace

std::string new_uuid() {
    std::array<unsigned char, 16> b = random_bytes();
    b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);  // version 4
    b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);  // RFC 4122 variant
    return uuid_text(b);
}

std::string new_time_ordered_uuid() {
    std::array<unsigned char, 16> b = random_bytes();
    const auto ms = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count());
    for (int i = 0; i < 6; ++i)
        b[static_cast<std::size_t>(i)] = static_cast<unsigned char>(ms >> (40 - 8 * i));
    b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x70);  // version 7
    b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);  // RFC 4122 variant
    return uuid_text(b);
}

std::string now_datetime() {
    using namespace std::chrono;
    auto now = system_clock::now();
    std::time_t t = system_clock::to_time_t(now);
    auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
    if (ms < 0)
        ms += 1000;
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
    return buf;
}

} // namespace broker::apprec
