// The edibroker executable itself: `serve` and `validate`, run as a child process.
#include "broker_env.hpp"
#include "child_process.hpp"

#include <atomic>
#include <condition_variable>
#include <csignal>
#include <mutex>
#include <thread>

#include <cerrno>
#include <cstddef>

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#endif

using namespace testing;

namespace {

/// Read everything until EOF.
std::string drain(int fd) {
    std::string s;
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        s.append(buf, static_cast<std::size_t>(n));
    close(fd);
    return s;
}

/// Read one line, waiting at most 'ms' (poll, no sleeps).
std::string read_line(int fd, int ms) {
    std::string s;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (true) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0)
            return s;
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, static_cast<int>(left.count())) <= 0)
            return s;
        char c;
        if (read(fd, &c, 1) != 1)
            return s;
        if (c == '\n')
            return s;
        s += c;
    }
}

struct run_result {
    int code;
    std::string out, err;
};

run_result run(const std::vector<std::string>& args) {
    child c = spawn(args);
    std::string out = drain(c.out);
    std::string err = drain(c.err);
    int status = 0;
    waitpid(c.pid, &status, 0);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out, err};
}

/// `edibroker serve` on 127.0.0.1:0 with its data in 'data' (the repo's demo registry and rules),
/// once it prints where it listens; 'url' gets "http://HOST:PORT".
child serve(const std::string& data, std::string& url) {
    child c = spawn({broker_binary().string(), "serve", "--listen", "127.0.0.1:0", "--data-dir", data, "--set",
                     "log-level=warn"});
    std::string line = read_line(c.out, 20000);
    INFO("stdout: " << line);
    REQUIRE(line.rfind("listening on 127.0.0.1:", 0) == 0);
    url = "http://" + line.substr(std::string("listening on ").size());
    return c;
}

#if defined(__x86_64__)
/// In the child before exec: io_uring_setup fails with EPERM, as under Docker's default seccomp
/// profile (since Docker 25) or with the sysctl kernel.io_uring_disabled=2.
void forbid_io_uring() {
    static sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    static sock_fprog program{static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0)
        _exit(126);
}
#endif

} // namespace

TEST_CASE("edibroker validate: exit 0 when valid, 1 with FILE:LINE:COL otherwise", "[integration][cli]") {
    temp_dir dir;
    std::string bin = broker_binary().string();
    auto good = source_dir() / "tests/fixtures/messages/dialog-portal-to-oslo.xml";
    auto ok = run({bin, "validate", good.string()});
    CHECK(ok.code == 0);
    CHECK(ok.out.find("valid") != std::string::npos);

    auto broken = dir.path() / "broken.xml";
    write_file(broken, "<MsgHead xmlns=\"http://www.kith.no/xmlstds/msghead/2006-05-24\">\n  <MsgInfo>\n</MsgHead>\n");
    auto bad = run({bin, "validate", good.string(), broken.string()});
    CHECK(bad.code == 1);
    INFO(bad.err);
    CHECK(bad.err.rfind(broken.string() + ":3:", 0) == 0);  // the mismatched end tag on line 3
    CHECK(bad.err.find("T01") != std::string::npos);

    auto usage = run({bin, "validate"});
    CHECK(usage.code == 2);
}

TEST_CASE("every command answers --help on stdout with exit 0", "[integration][cli]") {
    std::string bin = broker_binary().string();
    for (std::vector<std::string> args : {std::vector<std::string>{"help"}, {"serve", "--help"}, {"validate", "--help"},
                                          {"replay", "--help"}, {"routes", "--help"}, {"registry", "--help"},
                                          {"messages", "--help"}, {"store", "--help"}}) {
        args.insert(args.begin(), bin);
        auto r = run(args);
        INFO(args[1] << " " << (args.size() > 2 ? args[2] : "") << ": " << r.err);
        CHECK(r.code == 0);
        CHECK(r.out.find("usage") != std::string::npos);
        CHECK(r.err.empty());
    }
}

TEST_CASE("edibroker serve prints its address, serves, and stops on SIGTERM", "[integration][cli]") {
    temp_dir dir;
    std::string url;
    child c = serve((dir.path() / "data").string(), url);
    auto h = http_request("GET", url + "/healthz");
    CHECK(h.status == 200);
    CHECK(h.body.find("\"status\":\"ok\"") != std::string::npos);
    // The demo registry and rules from the repo were loaded.
    CHECK(h.body.find("\"parties\":0") == std::string::npos);
    // The walk-through message routes with the demo configuration.
    auto doc = read_file(source_dir() / "tests/fixtures/messages/dialog-portal-to-oslo.xml");
    auto r = http_request("POST", url + "/Messages", doc, {"Content-Type: application/xml"});
    CHECK(r.status == 201);
    CHECK(r.body.find("\"state\":\"routed\"") != std::string::npos);
    CHECK(stop(c) == 0);
    CHECK(std::filesystem::exists(dir.path() / "data" / "edibroker.db"));
    // The body went to the body log beside it (body-log = on by default).
    CHECK(std::filesystem::file_size(dir.path() / "data" / "edibroker.db-bodies" / "00000001.seg") > doc.size());
}

TEST_CASE("edibroker serve where io_uring is forbidden: the io_uring build stops and says why and what to do, "
          "the epoll build serves",
          "[integration][cli]") {
    auto version = run({broker_binary().string(), "version"});
    CHECK(version.code == 0);
    CHECK(version.out.find(std::string("(network I/O: ") + broker::io_backend() + ")") != std::string::npos);
#if !defined(__x86_64__)
    WARN("skipped: this test's seccomp filter is written for x86-64");
#else
    temp_dir dir;
    child c = spawn({broker_binary().string(), "serve", "--listen", "127.0.0.1:0", "--data-dir",
                     (dir.path() / "data").string(), "--set", "log-level=warn"},
                    forbid_io_uring);
#if defined(EDIBROKER_IO_URING)
    std::string out = drain(c.out);
    std::string err = drain(c.err);
    int status = 0;
    waitpid(c.pid, &status, 0);
    INFO("stdout: " << out << "\nstderr: " << err);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 1);
    CHECK(out.find("listening on") == std::string::npos);
    CHECK(err.find("io_uring_setup: Operation not permitted") != std::string::npos);
    CHECK(err.find("cmake -DEDIBROKER_IO_URING=OFF") != std::string::npos);
    // The check comes before anything is opened.
    CHECK_FALSE(std::filesystem::exists(dir.path() / "data" / "edibroker.db"));
#else
    std::string line = read_line(c.out, 20000);
    INFO("stdout: " << line);
    CHECK(line.rfind("listening on 127.0.0.1:", 0) == 0);
    CHECK(stop(c) == 0);
#endif
#endif
}

TEST_CASE("edibroker serve refuses a broken rules file with file:line:col", "[integration][cli]") {
    temp_dir dir;
    write_file(dir.path() / "rules/bad.xml",
               "<routing-rules xmlns=\"urn:edibroker:routing-rules:1\">\n  <rule id=\"x\">\n</routing-rules>\n");
    auto r = run({broker_binary().string(), "serve", "--listen", "127.0.0.1:0", "--data-dir",
                  (dir.path() / "data").string(), "--rules", (dir.path() / "rules").string()});
    CHECK(r.code == 1);
    INFO(r.err);
    CHECK(r.err.find((dir.path() / "rules/bad.xml").string() + ":") != std::string::npos);
}

TEST_CASE("edibroker serve refuses a bad config file with file:line:col", "[integration][cli]") {
    temp_dir dir;
    write_file(dir.path() / "edibroker.conf", "# comment\nlisten = 127.0.0.1:0\nthreads = many\n");
    auto r = run({broker_binary().string(), "serve", "--config", (dir.path() / "edibroker.conf").string()});
    CHECK(r.code == 1);
    CHECK(r.err.find("edibroker.conf:3:1: 'threads' needs a whole number") != std::string::npos);
    write_file(dir.path() / "edibroker.conf", "listen = 127.0.0.1:0\nbody-log = yes\n");
    r = run({broker_binary().string(), "serve", "--config", (dir.path() / "edibroker.conf").string()});
    CHECK(r.code == 1);
    CHECK(r.err.find("edibroker.conf:2:1: 'body-log' must be on or off, got 'yes'") != std::string::npos);
}

TEST_CASE("the example config file in config/ loads and names the demo", "[integration][cli]") {
    auto c = broker::load_config_file((source_dir() / "config/edibroker.conf").string(), broker::default_config());
    INFO((c ? std::string() : c.error().where()));
    REQUIRE(c.has_value());
    CHECK(c->listen == "127.0.0.1:8080");
    CHECK(c->synchronous == "FULL");
    CHECK(c->body_log);
    CHECK(std::filesystem::equivalent(c->rules_dir, source_dir() / "routing-rules"));
    CHECK(std::filesystem::equivalent(c->registry_file, source_dir() / "config/registry.xml"));
}

TEST_CASE("serve killed (SIGKILL) while senders post: every acknowledged message is there after the restart, "
          "byte for byte",
          "[integration][cli]") {
    temp_dir dir;
    const std::string data = (dir.path() / "data").string();
    std::string url;
    child c = serve(data, url);
    const std::string doc = read_file(source_dir() / "tests/fixtures/messages/dialog-portal-to-oslo.xml");
    const std::string msg_id = "6f1c2f3e-5d4b-4a39-9c1e-0b7a8d2e4f10";
    REQUIRE(doc.find(msg_id) != std::string::npos);

    // Four senders post distinct messages (own MsgIds) until the broker dies under them; what got
    // a 201 is recorded with the document sent.
    std::mutex mu;
    std::condition_variable cv;
    std::vector<std::pair<std::string, std::string>> acked;  // broker id, document
    std::atomic<bool> dead{false};
    std::vector<std::thread> senders;
    for (int t = 0; t < 4; ++t)
        senders.emplace_back([&, t] {
            for (int i = 0; !dead; ++i) {
                char suffix[13];
                std::snprintf(suffix, sizeof suffix, "%02d%010d", t, i);
                std::string d = doc;
                d.replace(d.find(msg_id), msg_id.size(), msg_id.substr(0, 24) + suffix);
                auto r = http_request("POST", url + "/Messages", d, {"Content-Type: application/xml"});
                if (r.status != 201)
                    continue;  // the broker is gone (status 0) or refused; not acknowledged
                std::string loc = r.headers.count("Location") ? r.headers.at("Location") : "";
                std::lock_guard lk(mu);
                acked.emplace_back(loc.substr(loc.rfind('/') + 1), std::move(d));
                cv.notify_all();
            }
        });
    {
        std::unique_lock lk(mu);
        REQUIRE(cv.wait_for(lk, std::chrono::seconds(60), [&] { return acked.size() >= 200; }));
    }
    ::kill(c.pid, SIGKILL);  // no clean close: the synced mark is where the last commit left it
    int status = 0;
    waitpid(c.pid, &status, 0);
    CHECK(WIFSIGNALED(status));
    dead = true;
    for (auto& s : senders)
        s.join();
    close(c.out);
    close(c.err);

    std::string url2;
    child c2 = serve(data, url2);
    INFO(acked.size() << " acknowledged before the kill");
    std::size_t whole = 0;
    for (const auto& [id, d] : acked) {
        auto r = http_request("GET", url2 + "/Messages/" + id + "/business-document");
        if (r.status == 200 && r.body == d)
            ++whole;
        else
            UNSCOPED_INFO("message " << id << ": " << r.status << " " << r.body.substr(0, 200));
    }
    CHECK(whole == acked.size());
    kill(c2.pid, SIGTERM);
    waitpid(c2.pid, &status, 0);
    close(c2.out);
    // A killed process leaves its writes in the page cache: opening found every body whole.
    const std::string err = drain(c2.err);
    CHECK(err.find("store.body-lost") == std::string::npos);
    CHECK(WIFEXITED(status));
}
