// Smoke test of the benchmark tools (tools/bench): the load generator and the vendor receiver
// against a real broker for about a second. Correctness of the tools, not speed: every accepted
// message must be counted at the receiver exactly once, and the checker must notice when not.
#include "../integration/broker_env.hpp"

#include "bench.hpp"
#include "stages.hpp"
#include "test_paths.hpp"

#include "broker/xml.hpp"

#include <catch2/catch.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/json.hpp>

#include <chrono>
#include <fstream>
#include <future>
#include <latch>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

namespace {

std::string receiver_address(const bench::receiver& r) { return "127.0.0.1:" + std::to_string(r.port()); }

/// A broker whose Oslo route pushes to 'r'.
std::unique_ptr<testing::broker_env> broker_for(const bench::receiver& r) {
    const std::string url = "http://" + receiver_address(r) + "/vendor";
    return std::make_unique<testing::broker_env>([url](const std::string&) { return testing::test_rules(url); });
}

/// The receiver's GET /stats counts: POSTs, distinct MsgIds, and MsgIds that came again.
void check_stats(const std::string& addr, std::int64_t requests, std::int64_t unique, std::int64_t duplicates) {
    auto stats = bench::http_get(addr, "/stats");
    REQUIRE(stats);
    auto s = boost::json::parse(*stats).as_object();
    CHECK(s.at("requests").as_int64() == requests);
    CHECK(s.at("unique").as_int64() == unique);
    CHECK(s.at("duplicates").as_int64() == duplicates);
}

/// The stage rows the report tests share: a store ceiling of 12 000 msg/s, Xerces at 20 000/s.
constexpr const char* stage_rows =
    R"({"name":"sqlite.insert.full.txn256","unit":"msg/s","value":30000,"cpu_us_per_op":10})" "\n"
    R"({"name":"sqlite.update.full.txn256","unit":"msg/s","value":20000,"cpu_us_per_op":20})" "\n"
    R"({"name":"xerces.sax.validate","unit":"msg/s","value":20000,"cpu_us_per_op":50})" "\n";

/// The report's JSON for a results file of 'lines' (as run.sh writes it).
boost::json::object report_of(const std::string& lines) {
    testing::temp_dir dir;
    const std::string in = (dir.path() / "results.jsonl").string(), out = (dir.path() / "result.json").string();
    std::ofstream(in) << lines;
    REQUIRE(bench::report(in, out, 2) == 0);
    std::ifstream f(out);
    std::stringstream ss;
    ss << f.rdbuf();
    return boost::json::parse(ss.str()).as_object();
}

} // namespace

TEST_CASE("bench: the message is 4 KB, valid, and its MsgId carries run and send time", "[bench]") {
    auto t = bench::dialog_message(4096);
    REQUIRE(t.doc.size() == 4096);
    char id[bench::msg_id_len];
    bench::make_msg_id(id, 0xabcdef01u, 7, 123456, 987654321);
    t.doc.replace(t.msg_id_offset, bench::msg_id_len, id, bench::msg_id_len);
    broker::xml::platform_init();
    auto v = broker::xml::make_validator();
    REQUIRE(v);
    auto r = (*v)->validate(t.doc);
    REQUIRE(r.v == broker::xml::verdict::valid);
    CHECK(r.facts.msg_id == std::string(id, bench::msg_id_len));
    CHECK(r.facts.receiver.lowest_her() == testing::her::oslo_home_care);
    std::uint32_t run = 0;
    std::int64_t t_us = 0;
    REQUIRE(bench::parse_msg_id(std::string_view(id, bench::msg_id_len), run, t_us));
    CHECK(run == 0xabcdef01u);
    CHECK(t_us == 987654321);
    CHECK_FALSE(bench::parse_msg_id("not-a-bench-id", run, t_us));
}

TEST_CASE("bench: a second of closed-loop load, every accepted message delivered exactly once",
          "[integration][bench]") {
    bench::receiver rcv;
    auto env = broker_for(rcv);
    bench::send_options o;
    o.port = env->server->port();
    o.connections = 8;
    o.seconds = 1;
    o.receiver = receiver_address(rcv);
    o.drain_seconds = 20;
    // The store's group-commit counters from the broker's /metrics (its admin listener), around the load.
    const std::string admin = env->server->admin_address();
    REQUIRE(admin.rfind("127.0.0.1:", 0) == 0);
    const auto admin_port = static_cast<unsigned short>(std::stoi(admin.substr(admin.find(':') + 1)));
    const bench::store_counters c0 = bench::read_store_counters(admin_port);
    auto r = bench::run_sender(o);
    // Every delivery has reached the receiver; its delivered state is the store's next write
    // and may still be in the writer's queue: read the counters until both writes of every
    // message are in (at most 10 s; each read is a request to the broker's /metrics).
    bench::store_counters c1 = bench::read_store_counters(admin_port);
    for (const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
         c1.write_ops - c0.write_ops < 2 * static_cast<std::int64_t>(r.delivered) &&
         std::chrono::steady_clock::now() < until;)
        c1 = bench::read_store_counters(admin_port);
    INFO(bench::to_json(r));
    CHECK(c0.commits >= 0);
    CHECK(c1.commits > c0.commits);
    CHECK(c1.write_ops - c0.write_ops >= 2 * static_cast<std::int64_t>(r.delivered));  // intake + delivered state
    CHECK(r.error.empty());
    CHECK(r.accepted > 0);
    CHECK(r.sent == r.accepted);
    CHECK(r.io_errors == 0);
    CHECK(r.checked);
    CHECK(r.delivered == r.accepted);
    CHECK(r.lost == 0);
    CHECK(r.duplicates == 0);
    CHECK(r.unexpected == 0);
    CHECK(r.ack_p50_us > 0);
    CHECK(r.ack_p99_us >= r.ack_p50_us);
    CHECK(r.deliver_p99_us >= r.deliver_p50_us);
    CHECK(r.delivered_per_s > 0);
    CHECK(r.ok());
    // The report is one JSON object.
    auto j = boost::json::parse(bench::to_json(r));
    CHECK(j.as_object().at("ok").as_bool());
}

TEST_CASE("bench: open loop sends rate x seconds messages on schedule", "[integration][bench]") {
    bench::receiver rcv;
    auto env = broker_for(rcv);
    bench::send_options o;
    o.port = env->server->port();
    o.connections = 4;
    o.seconds = 0.5;
    o.rate = 200;  // message i is due at i/200 s: 100 messages in half a second
    o.receiver = receiver_address(rcv);
    o.drain_seconds = 20;
    auto r = bench::run_sender(o);
    INFO(bench::to_json(r));
    CHECK(r.sent == 100);
    CHECK(r.accepted == 100);
    CHECK(r.delivered == 100);
    CHECK(r.ok());
}

TEST_CASE("bench: the checker sees duplicates and losses at the receiver", "[integration][bench]") {
    bench::receiver rcv;
    const std::string addr = receiver_address(rcv);
    char id[bench::msg_id_len];
    bench::make_msg_id(id, 0x00c0ffeeu, 1, 1, bench::mono_us());
    const std::string header = "X-EDIBroker-MsgId: " + std::string(id, bench::msg_id_len);
    for (int i = 0; i < 2; ++i) {
        auto resp = testing::http_request("POST", "http://" + addr + "/vendor", "<x/>", {header});
        REQUIRE(resp.status == 200);
    }
    check_stats(addr, 2, 1, 1);
    auto ids = bench::http_get(addr, "/ids?run=00c0ffee");
    REQUIRE(ids);
    CHECK(ids->find(std::string(id, bench::msg_id_len) + " 2 ") == 0);
    // Waiting for more than arrived ends at the timeout with what is there.
    auto n = bench::http_get(addr, "/wait?run=00c0ffee&n=5&timeoutMs=50");
    REQUIRE(n);
    CHECK(*n == "1");

    // A sender whose broker is gone: nothing accepted, and the report says so.
    bench::send_options o;
    o.port = bench::receiver(0).port();  // a port nobody listens on any more
    o.connections = 1;
    o.max_messages = 3;
    o.seconds = 1;
    auto r = bench::run_sender(o);
    CHECK_FALSE(r.ok());
    CHECK(r.accepted == 0);
}

TEST_CASE("bench: the receiver answers pipelined and large requests, and wakes a waiting /wait",
          "[integration][bench]") {
    namespace asio = boost::asio;
    bench::receiver rcv;
    const std::string addr = receiver_address(rcv);
    asio::io_context ioc;
    const asio::ip::tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), rcv.port());
    auto post = [](std::uint32_t seq, const std::string& body) {
        char id[bench::msg_id_len];
        bench::make_msg_id(id, 0x0b1e55edu, 2, seq, bench::mono_us());
        return "POST /vendor HTTP/1.1\r\nHost: x\r\nX-EDIBroker-MsgId: " + std::string(id, bench::msg_id_len) +
               "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    };
    // Plain recv, bounded by SO_RCVTIMEO (Asio's blocking read would wait on in poll()), tried
    // again on EINTR (bench::recv_retrying).
    auto read_answers = [](asio::ip::tcp::socket& s, int n) {
        timeval tv{30, 0};
        setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        std::string got;
        char chunk[4096];
        int answers = 0;
        while (answers < n) {
            const ssize_t k = bench::recv_retrying(s.native_handle(), chunk, sizeof chunk);
            REQUIRE(k > 0);
            got.append(chunk, static_cast<std::size_t>(k));
            answers = 0;
            for (std::size_t at = got.find("HTTP/1.1 200 OK"); at != std::string::npos;
                 at = got.find("HTTP/1.1 200 OK", at + 1))
                ++answers;
        }
        return answers;
    };

    // A GET /wait for the run's three messages, sent before any arrives: it waits.
    asio::ip::tcp::socket waiting(ioc);
    waiting.connect(ep);
    asio::write(waiting, asio::buffer(std::string("GET /wait?run=0b1e55ed&n=3&timeoutMs=600000 HTTP/1.1\r\n"
                                                  "Host: x\r\nConnection: close\r\n\r\n")));

    // Three POSTs in one write (pipelined), the last with a 100 KB body (more than the receiver's
    // first buffer): three answers, in order, on the same connection.
    asio::ip::tcp::socket s(ioc);
    s.connect(ep);
    asio::write(s, asio::buffer(post(1, "<a/>") + post(2, "") + post(3, std::string(100000, 'x'))));
    CHECK(read_answers(s, 3) == 3);

    // The waiting /wait was answered when the third message came, long before its ten minutes
    // (30 s at most here, then the test fails).
    timeval tv{30, 0};
    setsockopt(waiting.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string got;
    char chunk[512];
    while (got.find("\r\n\r\n") == std::string::npos || got.back() != '3') {
        const ssize_t n = bench::recv_retrying(waiting.native_handle(), chunk, sizeof chunk);
        REQUIRE(n > 0);
        got.append(chunk, static_cast<std::size_t>(n));
    }
    CHECK(got.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
    // It asked for "Connection: close": the receiver closes after the answer.
    CHECK(bench::recv_retrying(waiting.native_handle(), chunk, sizeof chunk) == 0);

    check_stats(addr, 3, 3, 0);
}

TEST_CASE("bench: CPU per thread is read from /proc and summed by name without the trailing -N", "[bench]") {
    // Two threads named like edibroker's I/O threads burn CPU, then wait until they are read.
    constexpr std::int64_t burn_us = 60000;
    std::promise<void> release;
    std::shared_future<void> released = release.get_future().share();
    std::latch burnt(2);
    std::vector<std::thread> ts;
    for (int i = 0; i < 2; ++i)
        ts.emplace_back([&, i] {
            pthread_setname_np(pthread_self(), ("benchtest-" + std::to_string(i)).c_str());
            const std::int64_t t0 = bench::thread_cpu_us();
            volatile std::uint64_t x = 0;
            while (bench::thread_cpu_us() - t0 < burn_us)
                x = x + 1;
            burnt.count_down();
            released.wait();
        });
    burnt.wait();
    const auto cpu = bench::pid_thread_cpu_us(static_cast<int>(getpid()));
    release.set_value();
    for (auto& t : ts)
        t.join();
    REQUIRE(cpu.count("benchtest"));
    CHECK_FALSE(cpu.count("benchtest-0"));
    // /proc counts in clock ticks: allow one tick per thread below what each burnt.
    const long hz = sysconf(_SC_CLK_TCK);
    CHECK(cpu.at("benchtest") >= 2 * (burn_us - 1000000 / (hz > 0 ? hz : 100)));
    CHECK(bench::pid_thread_cpu_us(-1).empty());
}

TEST_CASE("bench: the kernel's part of a process's CPU is read from /proc and getrusage", "[bench]") {
    // This thread spends at least 50 ms in system calls (writes to /dev/null).
    constexpr std::int64_t in_kernel_us = 50000;
    const int fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    const std::int64_t pid_k0 = bench::pid_kernel_cpu_us(static_cast<int>(getpid()));
    const std::int64_t own_k0 = bench::process_kernel_cpu_us();
    const std::vector<char> block(65536, 'x');
    rusage ru{};
    auto thread_kernel_us = [&] {
        getrusage(RUSAGE_THREAD, &ru);
        return static_cast<std::int64_t>(ru.ru_stime.tv_sec) * 1000000 + ru.ru_stime.tv_usec;
    };
    const std::int64_t t0 = thread_kernel_us();
    while (thread_kernel_us() - t0 < in_kernel_us)
        REQUIRE(::write(fd, block.data(), block.size()) == static_cast<ssize_t>(block.size()));
    ::close(fd);
    const std::int64_t pid_k1 = bench::pid_kernel_cpu_us(static_cast<int>(getpid()));
    const std::int64_t own_k1 = bench::process_kernel_cpu_us();
    // The kernel splits a thread's run time into user and system time by sampling at clock ticks,
    // and /proc counts in ticks: so at least half of what was spent, not all of it to the tick.
    INFO("kernel us from /proc " << pid_k1 - pid_k0 << ", from getrusage " << own_k1 - own_k0);
    CHECK(pid_k1 - pid_k0 >= in_kernel_us / 2);
    CHECK(own_k1 - own_k0 >= in_kernel_us / 2);
    // The kernel's part is part of the whole.
    CHECK(pid_k1 <= bench::pid_cpu_us(static_cast<int>(getpid())));
    CHECK(bench::pid_kernel_cpu_us(-1) == -1);
}

TEST_CASE("bench: no answer from /metrics reads as unknown counters", "[bench]") {
    // A port nothing listens on: bound, noted, closed.
    boost::asio::io_context ioc;
    boost::asio::ip::tcp::acceptor acc(ioc, {boost::asio::ip::make_address("127.0.0.1"), 0});
    const unsigned short port = acc.local_endpoint().port();
    acc.close();
    const bench::store_counters c = bench::read_store_counters(port);
    CHECK(c.commits == -1);
    CHECK(c.write_ops == -1);
}

TEST_CASE("bench: the report compares the machine's speed around the broker phases with the stages'",
          "[bench]") {
    // A results file as run.sh writes it, with the Xerces stage measured again just before the
    // broker phases (a fifth slower) and just after them (as fast as in the stage phase).
    const auto doc = report_of(
        std::string(R"({"name":"meta","mode":"full","started":"2026-12-06T18:00:00Z","connections":64})" "\n") +
        stage_rows +
        R"({"name":"probe.xerces.before","unit":"msg/s","value":16000,"cpu_us_per_op":62.5})" "\n"
        R"({"name":"broker.peak","connections":64,"accepted_per_s":6000,"delivered_per_s":6000,)"
        R"("accepted":1000,"checked":true,"lost":0,"duplicates":0,"watched_cpu_us_per_msg":200,)"
        R"("watched_kernel_cpu_us_per_msg":43.3,"client_cpu_us_per_msg":12,)"
        R"("client_kernel_cpu_us_per_msg":9.5,"machine_idle_cores":0.14,"machine_iowait_cores":0.08,)"
        R"("store_commits":1280,"store_commits_per_s":160,"store_ops_per_commit":79.4})" "\n"
        R"({"name":"probe.xerces.after","unit":"msg/s","value":20000,"cpu_us_per_op":50})" "\n");
    CHECK(doc.at("derived").at("machine_speed_before_broker").as_double() == Approx(0.8));
    CHECK(doc.at("derived").at("machine_speed_after_broker").as_double() == Approx(1.0));
    bool row = false;
    for (const auto& r : doc.at("table").as_array())
        if (r.at("figure").as_string() == "machine speed before / after the broker phases") {
            row = true;
            CHECK(r.at("value").as_string() == "0.80 / 1.00");
            CHECK(r.at("verdict").as_string() == "DRIFTED");  // a fifth slower: beyond 15 %
        }
    CHECK(row);
    CHECK(doc.at("derived").at("machine_speed_drifted").as_bool());
    CHECK(doc.at("derived").at("bound_after_broker_msg_s").is_null());  // no stages after the broker
    // The kernel's parts of the broker's and the load generator's CPU, each after its whole.
    std::vector<std::pair<std::string, std::string>> rows;
    for (const auto& r : doc.at("table").as_array())
        rows.emplace_back(r.at("figure").as_string(), r.at("value").as_string());
    auto at = [&](const std::string& figure) {
        for (std::size_t i = 0; i < rows.size(); ++i)
            if (rows[i].first == figure)
                return static_cast<int>(i);
        return -1;
    };
    const int broker_kernel = at("  of it: in the kernel (all the broker's threads)");
    REQUIRE(broker_kernel >= 0);
    CHECK(rows[static_cast<std::size_t>(broker_kernel)].second == "43.3 us");
    // A row and the one under it (its part, or its detail), each with its value.
    auto check_pair = [&](const std::string& figure, const std::string& value, const std::string& next,
                          const std::string& next_value) {
        const int i = at(figure);
        REQUIRE(i >= 0);
        const auto k = static_cast<std::size_t>(i);
        CHECK(rows[k].second == value);
        REQUIRE(k + 1 < rows.size());
        CHECK(rows[k + 1].first == next);
        CHECK(rows[k + 1].second == next_value);
    };
    check_pair("load generator CPU per request", "12.0 us", "  of it: in the kernel", "9.5 us");
    // Idle cores at the peak: idle and iowait together, then the iowait part on its own.
    check_pair("cores idle during peak (nothing to run)", "0.22 cores", "  of it: while the disk had work (iowait)",
               "0.08 cores");
    // The group commit at the peak: commits per second, then write operations per commit against
    // the largest batch; no half-rate phase in this file, so no half-rate rows.
    check_pair("store commits per second, peak", "160 /s", "  write operations per commit (2 per message)", "79.4");
    CHECK(at("store commits per second, half rate") < 0);
    // No receiver figures in this file: no receiver rows.
    CHECK(at("receiver (vendor) CPU per request") < 0);
    // The probes are not stage limits: they do not enter the bound.
    for (const auto& s : doc.at("stages").as_array())
        CHECK(std::string(s.at("name").as_string()).rfind("probe.", 0) != 0);
    CHECK(doc.at("stages").as_array().size() == 3);
}

TEST_CASE("bench: a run whose machine speed stayed within 15 % of the stage phase's is not drifted", "[bench]") {
    const auto doc = report_of(
        std::string(R"({"name":"meta","mode":"full","started":"2026-12-07T08:00:00Z","connections":64})" "\n") +
        stage_rows +
        R"({"name":"probe.xerces.before","unit":"msg/s","value":17400,"cpu_us_per_op":57.5})" "\n"
        R"({"name":"broker.peak","connections":64,"accepted_per_s":6000,"delivered_per_s":6000,)"
        R"("accepted":1000,"checked":true,"lost":0,"duplicates":0,"watched_cpu_us_per_msg":200})" "\n"
        R"({"name":"probe.xerces.after","unit":"msg/s","value":22800,"cpu_us_per_op":43.9})" "\n"
        // The stages again after the broker phases (run.sh, full run): the store slower then.
        R"({"name":"after.sqlite.insert.full.txn256","unit":"msg/s","value":24000,"cpu_us_per_op":10})" "\n"
        R"({"name":"after.sqlite.update.full.txn256","unit":"msg/s","value":16000,"cpu_us_per_op":20})" "\n");
    CHECK_FALSE(doc.at("derived").at("machine_speed_drifted").as_bool());
    bool row = false;
    for (const auto& r : doc.at("table").as_array())
        if (r.at("figure").as_string() == "machine speed before / after the broker phases") {
            row = true;
            CHECK(r.at("value").as_string() == "0.87 / 1.14");
            CHECK(r.at("verdict").as_string() == "ok");
        }
    CHECK(row);
    // The peak against both bounds: the stage phase's store ceiling 12 000 msg/s, the one measured
    // after the broker 9 600 msg/s.
    CHECK(doc.at("derived").at("bound_msg_s").as_double() == Approx(12000));
    CHECK(doc.at("derived").at("bound_after_broker_msg_s").as_double() == Approx(9600));
    const auto& table = doc.at("table").as_array();
    REQUIRE(table.size() >= 2);
    CHECK(table[0].at("ratio").as_string() == "0.50");
    CHECK(table[0].at("verdict").as_string() == "MISSED");
    CHECK(table[1].at("figure").as_string() == "  the same against the stages measured after it");
    CHECK(table[1].at("limit").as_string() == "9600 msg/s");
    CHECK(table[1].at("ratio").as_string() == "0.62");
    CHECK(table[1].at("verdict").as_string() == "ok");
    // Stage rows of both phases are listed.
    CHECK(doc.at("stages").as_array().size() == 5);
}
