// edibroker-bench: the command-line front of the benchmark (tools/bench/run.sh drives it).
#include "bench.hpp"
#include "stages.hpp"

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

namespace {

const char* usage = R"(usage: edibroker-bench COMMAND [--option value]...

  send          --port P [--host 127.0.0.1] [--connections 64] [--seconds 10] [--rate 0] [--max 0]
                [--size 4096] [--receiver HOST:PORT] [--drain 60] [--name broker.peak] [--watch-pid PID]
                [--receiver-pid PID] [--metrics-port P]
                Load the broker with Dialogmelding POSTs; with --receiver, check every accepted
                message arrived there exactly once; with --metrics-port (edibroker's admin
                listener), its commits and write operations per commit over the phase. Prints one
                JSON line; exit 0 when all is well.
  receive       [--port 0]   The vendor receiver; prints "receiving on 127.0.0.1:PORT", runs until SIGTERM.
  stage-sqlite  --dir DIR [--runs 3] [--secs 2]
  stage-xml     [--runs 3] [--secs 2] [--probe NAME]
                With --probe: only the Xerces SAX stage, its row named NAME.
  stage-curl    --url URL [--runs 3] [--secs 2] [--server-pid PID]
  stage-wrk     --url URL --script LUA [--wrk wrk] [--runs 3] [--secs 5] [--server-pid PID]
  message       [--size 4096]  Print the benchmark message (its MsgId is zeros).
  free-port     Print a TCP port free on 127.0.0.1 now.
  report        --in RESULTS.jsonl [--json OUT.json] [--cores N]
)";

using args = std::map<std::string, std::string>;

bool parse(int argc, char** argv, args& a) {
    for (int i = 2; i < argc; ++i) {
        std::string k = argv[i];
        if (k.rfind("--", 0) != 0 || i + 1 >= argc) {
            std::cerr << "edibroker-bench: unexpected '" << k << "'\n" << usage;
            return false;
        }
        a[k.substr(2)] = argv[++i];
    }
    return true;
}

std::string opt(const args& a, const std::string& k, const std::string& def = "") {
    auto it = a.find(k);
    return it == a.end() ? def : it->second;
}
double optd(const args& a, const std::string& k, double def) {
    auto it = a.find(k);
    return it == a.end() ? def : std::atof(it->second.c_str());
}
int opti(const args& a, const std::string& k, int def) { return static_cast<int>(optd(a, k, def)); }

int cmd_send(const args& a) {
    bench::send_options o;
    o.host = opt(a, "host", o.host);
    o.port = static_cast<unsigned short>(opti(a, "port", 0));
    o.connections = opti(a, "connections", o.connections);
    o.seconds = optd(a, "seconds", o.seconds);
    o.rate = optd(a, "rate", 0);
    o.max_messages = static_cast<std::uint64_t>(optd(a, "max", 0));
    o.message_size = static_cast<std::size_t>(opti(a, "size", 4096));
    o.receiver = opt(a, "receiver");
    o.drain_seconds = optd(a, "drain", o.drain_seconds);
    const int watch = opti(a, "watch-pid", 0);
    const int receiver_pid = opti(a, "receiver-pid", 0);
    const std::int64_t cpu0 = watch ? bench::pid_cpu_us(watch) : 0;
    const std::int64_t kcpu0 = watch ? bench::pid_kernel_cpu_us(watch) : 0;
    const std::int64_t rkcpu0 = receiver_pid ? bench::pid_kernel_cpu_us(receiver_pid) : 0;
    const auto threads0 = watch ? bench::pid_thread_cpu_us(watch) : std::map<std::string, std::int64_t>{};
    const std::int64_t rcpu0 = receiver_pid ? bench::pid_cpu_us(receiver_pid) : 0;
    const bench::machine_cpu m0 = bench::machine_cpu_us();
    const std::int64_t own0 = bench::process_cpu_us(), busy0 = m0.busy_us, t0 = bench::mono_us();
    const double load0 = bench::load_average_1m();
    const int metrics_port = opti(a, "metrics-port", 0);
    const bench::store_counters sc0 =
        metrics_port ? bench::read_store_counters(static_cast<unsigned short>(metrics_port)) : bench::store_counters{};
    bench::send_report r = bench::run_sender(o);
    const bench::store_counters sc1 =
        metrics_port ? bench::read_store_counters(static_cast<unsigned short>(metrics_port)) : bench::store_counters{};
    // The machine over the phase (sending and draining): what every process used, and what was
    // left after the broker, the load generator and the receiver: other work on the same cores.
    const bench::machine_cpu m1 = bench::machine_cpu_us();
    const std::int64_t t1 = bench::mono_us(), busy1 = m1.busy_us, own1 = bench::process_cpu_us();
    const std::int64_t cpu_end = watch ? bench::pid_cpu_us(watch) : 0;
    const std::int64_t kcpu1 = watch ? bench::pid_kernel_cpu_us(watch) : 0;
    const std::int64_t rkcpu1 = receiver_pid ? bench::pid_kernel_cpu_us(receiver_pid) : 0;
    const auto threads1 = watch ? bench::pid_thread_cpu_us(watch) : std::map<std::string, std::int64_t>{};
    const std::int64_t rcpu1 = receiver_pid ? bench::pid_cpu_us(receiver_pid) : 0;
    const double wall = static_cast<double>(t1 - t0);
    std::string extra = "\"name\":\"" + opt(a, "name", "send") + "\",\"connections\":" + std::to_string(o.connections) +
                        ",\"rate\":" + std::to_string(o.rate) + ",\"seconds\":" + std::to_string(o.seconds) + ",";
    if (busy0 >= 0 && busy1 >= 0 && wall > 0) {
        const double machine = static_cast<double>(busy1 - busy0) / wall;
        const double ours = static_cast<double>((cpu_end - cpu0) + (rcpu1 - rcpu0) + (own1 - own0)) / wall;
        extra += "\"machine_busy_cores\":" + std::to_string(machine) + ",\"bench_cores\":" + std::to_string(ours) +
                 ",\"other_cores\":" + std::to_string(std::max(0.0, machine - ours)) + ",";
    }
    // Cores with nothing to run: at a closed-loop peak, time the pipeline waited on itself (every
    // sender waiting for a commit, the writer for the disk) instead of working.
    if (m0.idle_us >= 0 && m1.idle_us >= 0 && wall > 0)
        extra += "\"machine_idle_cores\":" + std::to_string(static_cast<double>(m1.idle_us - m0.idle_us) / wall) +
                 ",\"machine_iowait_cores\":" +
                 std::to_string(static_cast<double>(m1.iowait_us - m0.iowait_us) / wall) + ",";
    // The broker's group commit over the phase: how many transactions, how many write operations
    // each (a message costs two: its intake and its delivery's state).
    if (sc0.commits >= 0 && sc1.commits > sc0.commits && wall > 0) {
        const double commits = static_cast<double>(sc1.commits - sc0.commits);
        extra += "\"store_commits\":" + std::to_string(sc1.commits - sc0.commits) + ",\"store_commits_per_s\":" +
                 std::to_string(commits * 1e6 / wall) + ",\"store_ops_per_commit\":" +
                 std::to_string(static_cast<double>(sc1.write_ops - sc0.write_ops) / commits) + ",";
    }
    extra += "\"load1_before\":" + std::to_string(load0) + ",\"load1_after\":" +
             std::to_string(bench::load_average_1m()) + ",";
    if (watch) {
        const std::int64_t cpu1 = cpu_end;
        if (r.accepted) {
            const auto per_msg = [&](std::int64_t us) {
                return std::to_string(static_cast<double>(us) / static_cast<double>(r.accepted));
            };
            extra += "\"watched_cpu_us_per_msg\":" + per_msg(cpu1 - cpu0) + ",";
            // The kernel's part of the broker's CPU (and below, of the receiver's).
            extra += "\"watched_kernel_cpu_us_per_msg\":" + per_msg(kcpu1 - kcpu0) + ",";
            // Per thread (by name: edb-io, edb-store, ...), to set each against its stage's limit.
            std::string th;
            for (const auto& [name, us] : threads1) {
                auto before = threads0.find(name);
                const std::int64_t d = us - (before == threads0.end() ? 0 : before->second);
                if (d > 0 && name.find_first_of("\"\\") == std::string::npos)
                    th += (th.empty() ? "\"" : ",\"") + name + "\":" + per_msg(d);
            }
            extra += "\"watched_threads_cpu_us_per_msg\":{" + th + "},";
            if (receiver_pid)
                extra += "\"receiver_cpu_us_per_msg\":" + per_msg(rcpu1 - rcpu0) +
                         ",\"receiver_kernel_cpu_us_per_msg\":" + per_msg(rkcpu1 - rkcpu0) + ",";
        }
        extra += "\"watched_peak_rss_kib\":" + std::to_string(bench::pid_peak_rss_kib(watch)) + ",";
    }
    std::string line = bench::to_json(r);
    line.insert(1, extra);
    std::cout << line << std::endl;
    std::fprintf(stderr,
                 "sent %llu, accepted %llu (%.0f/s), busy %llu, rejected %llu, io errors %llu; POST->201 p50 %.2f ms "
                 "p99 %.2f ms",
                 static_cast<unsigned long long>(r.sent), static_cast<unsigned long long>(r.accepted), r.accepted_per_s,
                 static_cast<unsigned long long>(r.busy), static_cast<unsigned long long>(r.rejected),
                 static_cast<unsigned long long>(r.io_errors), r.ack_p50_us / 1000, r.ack_p99_us / 1000);
    if (r.checked)
        std::fprintf(stderr, "; delivered %llu (%.0f/s), lost %llu, duplicates %llu, unexpected %llu; POST->delivery "
                             "p50 %.2f ms p99 %.2f ms",
                     static_cast<unsigned long long>(r.delivered), r.delivered_per_s,
                     static_cast<unsigned long long>(r.lost), static_cast<unsigned long long>(r.duplicates),
                     static_cast<unsigned long long>(r.unexpected), r.deliver_p50_us / 1000, r.deliver_p99_us / 1000);
    std::fprintf(stderr, "%s%s\n", r.error.empty() ? "" : "; error: ", r.error.c_str());
    return r.ok() ? 0 : 1;
}

int cmd_receive(const args& a) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    bench::receiver r(static_cast<unsigned short>(opti(a, "port", 0)));
    std::cout << "receiving on 127.0.0.1:" << r.port() << std::endl;
    int sig = 0;
    sigwait(&set, &sig);
    r.stop();
    return 0;
}

int cmd_free_port() {
    boost::asio::io_context ioc;
    boost::asio::ip::tcp::acceptor acc(ioc, {boost::asio::ip::make_address("127.0.0.1"), 0});
    std::cout << acc.local_endpoint().port() << "\n";
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::cerr << usage;
        return 2;
    }
    std::string cmd = argv[1];
    args a;
    if (cmd == "help" || cmd == "--help") {
        std::cout << usage;
        return 0;
    }
    if (!parse(argc, argv, a))
        return 2;
    std::signal(SIGPIPE, SIG_IGN);
    try {
        if (cmd == "send")
            return cmd_send(a);
        if (cmd == "receive")
            return cmd_receive(a);
        if (cmd == "stage-sqlite")
            return bench::stage_sqlite(opt(a, "dir", "."), opti(a, "runs", 3), optd(a, "secs", 2));
        if (cmd == "stage-xml")
            return bench::stage_xml(opti(a, "runs", 3), optd(a, "secs", 2), opt(a, "probe"));
        if (cmd == "stage-curl")
            return bench::stage_curl(opt(a, "url"), opti(a, "runs", 3), optd(a, "secs", 2), opti(a, "server-pid", 0));
        if (cmd == "stage-wrk")
            return bench::stage_wrk(opt(a, "wrk", "wrk"), opt(a, "script"), opt(a, "url"), opti(a, "runs", 3),
                                    optd(a, "secs", 5), opti(a, "server-pid", 0));
        if (cmd == "message") {
            std::cout << bench::dialog_message(static_cast<std::size_t>(opti(a, "size", 4096))).doc;
            return 0;
        }
        if (cmd == "free-port")
            return cmd_free_port();
        if (cmd == "report")
            return bench::report(opt(a, "in"), opt(a, "json"),
                                 opti(a, "cores", static_cast<int>(std::thread::hardware_concurrency())));
    } catch (const std::exception& e) {
        std::cerr << "edibroker-bench " << cmd << ": " << e.what() << "\n";
        return 1;
    }
    std::cerr << "edibroker-bench: unknown command '" << cmd << "'\n" << usage;
    return 2;
}
