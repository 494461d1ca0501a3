// edibroker's benchmark tools: the load generator (many concurrent senders POSTing 4 KB
// Dialogmelding messages), the vendor receiver that counts deliveries by MsgId, the stage
// micro-benchmarks (SQLite, Xerces, libcurl, wrk against nginx) and the report that puts the
// broker's figures next to the limits measured in the same run. See the README's "Benchmark".
//
// Everything here runs on 127.0.0.1 only; every loop is bounded in count and time.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

namespace bench {

// ------------------------------------------------------------------------------------------------
// clocks and statistics

/// Microseconds on CLOCK_MONOTONIC: the same clock in every process of this machine, so the
/// receiver can compare a delivery time with the send time the sender put into the MsgId.
std::int64_t mono_us();

/// user+sys CPU time of the calling process, microseconds.
std::int64_t process_cpu_us();
/// user+sys CPU time of the calling thread, microseconds.
std::int64_t thread_cpu_us();
/// user+sys CPU time of another process from /proc/PID/stat (all its threads), microseconds;
/// -1 if unreadable.
std::int64_t pid_cpu_us(int pid);
/// The kernel's part of it (stime: system calls, and the network and page-cache work they do);
/// -1 if unreadable.
std::int64_t pid_kernel_cpu_us(int pid);
/// The kernel's part of the calling process's CPU time, microseconds.
std::int64_t process_kernel_cpu_us();
/// user+sys CPU time of each of a process's threads (/proc/PID/task/*/stat), microseconds, summed
/// by thread name without a trailing "-N" (edibroker's edb-io-0 and edb-io-1 count as "edb-io").
/// Threads that ended are not in it; empty if unreadable.
std::map<std::string, std::int64_t> pid_thread_cpu_us(int pid);
/// Peak resident set (VmHWM) of a process in KiB from /proc/PID/status; -1 if unreadable.
std::int64_t pid_peak_rss_kib(int pid);
/// The whole machine's CPU time from /proc/stat, microseconds, all CPUs; -1 where unreadable.
/// busy: everything but idle and iowait. Its difference over a phase minus what the benchmark's
/// own processes used is the CPU other work took from the same cores (the noise of the figures).
/// idle: nothing to run; iowait: nothing to run while a task waits for the disk.
struct machine_cpu {
    std::int64_t busy_us = -1, idle_us = -1, iowait_us = -1;
};
machine_cpu machine_cpu_us();
/// The 1-minute load average (/proc/loadavg); -1 if unreadable.
double load_average_1m();
/// The store's group-commit counters from edibroker's Prometheus text (`GET /metrics` on its admin
/// listener at 127.0.0.1:'port'): edibroker_store_commits_total and edibroker_store_write_ops_total.
/// -1 in both when they cannot be read (no answer within 2 s, or the lines are missing).
struct store_counters {
    std::int64_t commits = -1, write_ops = -1;
};
store_counters read_store_counters(unsigned short port);

/// p in [0,100]; sorts a copy. 0 for an empty sample.
double percentile(std::vector<std::uint32_t> v, double p);
double median(std::vector<double> v);

/// Pin the calling thread to one CPU (single-threaded stage rows, as limits.md does).
void pin_to_cpu(int cpu);

// ------------------------------------------------------------------------------------------------
// HTTP on non-blocking sockets on one epoll set (the load generator and the receiver)

/// 'line' starts with 'lower_name' (given in lower case), ignoring the case of ASCII letters:
/// HTTP header names.
bool iequal_prefix(std::string_view line, std::string_view lower_name);

enum class send_result { done, would_block, failed };
/// Sends data[at, end) on a non-blocking socket, advancing 'at': done when all of it went out,
/// would_block when the socket's buffer is full (wait for EPOLLOUT), failed on an error.
send_result send_some(int fd, std::string_view data, std::size_t& at);
/// Changes fd's registration on the epoll set 'ep' to EPOLLIN | EPOLLOUT (on) or EPOLLIN alone
/// (off), keeping 'data' as the event's user data; 'watching' is the caller's record of which.
void want_output(int ep, int fd, std::uint64_t data, bool on, bool& watching);
/// recv() on a blocking socket, tried again (at most 100 times) when EINTR interrupts it: a
/// signal, or io_uring completion work that the kernel runs on a thread that used an io_uring
/// io_context; a recv with SO_RCVTIMEO is not restarted after either.
ssize_t recv_retrying(int fd, char* buf, std::size_t size);

// ------------------------------------------------------------------------------------------------
// the message

/// Length of a MsgId made by make_msg_id (UUID-shaped: 8-4-4-4-12 hex digits).
inline constexpr std::size_t msg_id_len = 36;

/// A MsgId that carries the run tag, the sender, a sequence number and the send time, so the
/// receiver can tell which run a delivery belongs to and how long it took:
///   RRRRRRRR-SSSS-QQQQ-QQQQ-TTTTTTTTTTTT  (run tag, sender, 32-bit sequence, mono_us 48 bits)
void make_msg_id(char* out, std::uint32_t run, std::uint32_t sender, std::uint32_t seq, std::int64_t t_us);
/// The run tag and send time of a MsgId made by make_msg_id; false if it is not one.
bool parse_msg_id(std::string_view id, std::uint32_t& run, std::int64_t& t_us);

/// A valid MsgHead v1.2 + Dialogmelding 1.1 (portal → Oslo home care, HER-id 9100110) of exactly
/// 'size' bytes (padded inside the question text), whose MsgId is 36 characters at offset
/// 'msg_id_offset'.
struct message_template {
    std::string doc;
    std::size_t msg_id_offset = 0;
};
message_template dialog_message(std::size_t size = 4096);

// ------------------------------------------------------------------------------------------------
// the vendor receiver

/// An HTTP/1.1 server on 127.0.0.1 that stands for a vendor endpoint. Every POST is answered
/// 200 with an empty body and counted by its X-EDIBroker-MsgId header, with the time of its first
/// arrival. GET /ids?run=RRRRRRRR lists "MsgId count first_arrival_us" lines of one run;
/// GET /wait?run=RRRRRRRR&n=N&timeoutMs=T answers (the run's count of distinct MsgIds) as soon as
/// it reaches N, or at the timeout; GET /stats gives {"requests", "unique", "duplicates",
/// "without_id"}. One thread.
class receiver {
public:
    /// Listens at once (port 0 = the kernel picks); throws std::runtime_error if it cannot.
    explicit receiver(unsigned short port = 0);
    ~receiver();
    receiver(const receiver&) = delete;
    receiver& operator=(const receiver&) = delete;
    unsigned short port() const;
    /// Block until stop() (used by the command-line mode).
    void wait();
    void stop();

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

// ------------------------------------------------------------------------------------------------
// the load generator

struct send_options {
    std::string host = "127.0.0.1";
    unsigned short port = 0;           ///< the broker's REST endpoint
    std::string path = "/Messages";
    int connections = 64;              ///< concurrent senders, one keep-alive connection each
    double seconds = 10;               ///< how long to send
    std::uint64_t max_messages = 0;    ///< stop after this many requests (0 = no limit)
    double rate = 0;                   ///< total requests/s, open loop; 0 = closed loop, as fast as answered
    std::size_t message_size = 4096;
    /// Receiver to check deliveries against ("" = do not check). host:port.
    std::string receiver;
    double drain_seconds = 60;         ///< how long to wait for every accepted message to arrive
    std::uint32_t run_tag = 0;         ///< 0 = random
};

struct send_report {
    std::uint32_t run_tag = 0;
    std::uint64_t sent = 0, accepted = 0, rejected = 0, busy = 0, other_status = 0, io_errors = 0;
    std::uint64_t duplicate_answers = 0;  ///< X-EDIBroker-Duplicate: true (never expected)
    double send_seconds = 0;              ///< first send to last answer
    double accepted_per_s = 0;            ///< durable accepts (201) per second of sending
    double ack_p50_us = 0, ack_p99_us = 0, ack_max_us = 0;  ///< POST → 201
    double client_cpu_us_per_msg = 0;     ///< the load generator's own CPU per request
    double client_kernel_cpu_us_per_msg = 0;  ///< the kernel's part of it
    // Delivery check (when a receiver was given)
    bool checked = false;
    std::uint64_t delivered = 0;      ///< accepted messages that reached the receiver
    std::uint64_t lost = 0;           ///< accepted, never delivered within the drain time
    std::uint64_t duplicates = 0;     ///< delivered more than once
    std::uint64_t unexpected = 0;     ///< delivered but never accepted
    double delivered_per_s = 0;       ///< delivered / (last delivery - first send)
    double deliver_p50_us = 0, deliver_p99_us = 0, deliver_max_us = 0;  ///< POST → arrival at the receiver
    double drain_seconds = 0;         ///< last answer → last delivery
    std::string error;                ///< why the run could not be done ("" = fine)
    /// Unexpected deliveries are fine only for requests whose answer was lost to an I/O error
    /// (stored, but the sender never heard so).
    bool ok() const {
        return error.empty() && accepted > 0 && (!checked || (lost == 0 && duplicates == 0 && unexpected <= io_errors));
    }
};

send_report run_sender(const send_options& o);
/// One JSON object with every field of the report.
std::string to_json(const send_report& r);

/// Blocking HTTP/1.1 GET on 127.0.0.1; returns the body, nullopt on any failure or non-200.
std::optional<std::string> http_get(const std::string& host_port, const std::string& target, int timeout_ms = 10000);

} // namespace bench
