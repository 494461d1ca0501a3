// Identifiers and timestamps for new AppRecs: random UUIDs (v4, from OpenSSL's CSPRNG) and the
// current UTC time as xs:dateTime.
#include "broker/apprec.hpp"
#include "broker/log.hpp"

#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <mutex>
#include <pthread.h>

namespace broker::apprec {

namespace {

// Every message gets an id at intake, so RAND_bytes ran once per message (about 15 000
// instructions and a getpid() for OpenSSL's fork check: issue 3's profile). Each thread now draws
// 512 bytes at a time from the same CSPRNG and hands them out 16 at a time. After a fork() the
// child's copy of a buffer would repeat the parent's ids: a fork handler bumps a generation that
// every buffer compares against, so the child draws afresh.
std::atomic<unsigned> fork_generation{0};

void after_fork_in_child() { fork_generation.fetch_add(1, std::memory_order_relaxed); }

std::array<unsigned char, 16> random_bytes() {
    static std::once_flag registered;
    std::call_once(registered, [] { pthread_atfork(nullptr, nullptr, &after_fork_in_child); });
    struct pool {
        std::array<unsigned char, 512> bytes{};
        std::size_t used = 512;  // empty
        unsigned generation = 0;
    };
    thread_local pool p;
    const unsigned gen = fork_generation.load(std::memory_order_relaxed);
    if (p.used + 16 > p.bytes.size() || p.generation != gen) {
        if (RAND_bytes(p.bytes.data(), static_cast<int>(p.bytes.size())) != 1) {
            // The CSPRNG failing is an environment failure we cannot work around (style rule 8).
            log::error("apprec.rand-failed", {{"what", "RAND_bytes"}});
            std::abort();
        }
        p.used = 0;
        p.generation = gen;
    }
    std::array<unsigned char, 16> b{};
    std::copy_n(p.bytes.begin() + static_cast<std::ptrdiff_t>(p.used), b.size(), b.begin());
    std::fill_n(p.bytes.begin() + static_cast<std::ptrdiff_t>(p.used), b.size(), 0);  // handed out once
    p.used += b.size();
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
