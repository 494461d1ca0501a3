#include "amqp_broker.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <netinet/in.h>
#include <stdexcept>
#include <string_view>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace testing {

namespace {

const char* const server_script = "/usr/lib/rabbitmq/bin/rabbitmq-server";
const char* const epmd_binary = "/usr/bin/epmd";
const char* const ctl_script = "/usr/lib/rabbitmq/bin/rabbitmqctl";

/// A port the kernel says is free on 127.0.0.1 right now.
unsigned short free_port() {
    int s = ::socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0)
        throw std::runtime_error("socket: " + std::string(std::strerror(errno)));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof a;
    if (::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
        ::close(s);
        throw std::runtime_error("cannot find a free port: " + std::string(std::strerror(errno)));
    }
    ::close(s);
    return ntohs(a.sin_port);
}

void write_text(const std::filesystem::path& p, const std::string& s) {
    std::ofstream out(p);
    out << s;
    if (!out)
        throw std::runtime_error("cannot write " + p.string());
}

/// What a child process execs, built before fork(): in a process with threads, the child of fork()
/// may only make async-signal-safe calls until it execs, and putenv() or a vector's growth
/// allocate (under AddressSanitizer such a child spun forever on an allocator lock that another
/// thread held at the fork).
struct exec_image {
    std::vector<std::string> arg_text, env_text;
    std::vector<char*> argv, envp;  ///< pointers into the texts above, each ending with nullptr
};

/// 'argv' and this process's environment with 'env' ("NAME=value" each) set over it.
std::unique_ptr<exec_image> make_image(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
    auto im = std::make_unique<exec_image>();
    im->arg_text = argv;
    for (char** e = environ; e && *e; ++e) {
        const std::string_view kv(*e);
        const std::string_view name = kv.substr(0, kv.find('=') + 1);  // "NAME="
        if (std::none_of(env.begin(), env.end(), [&](const std::string& x) { return x.rfind(name, 0) == 0; }))
            im->env_text.emplace_back(kv);
    }
    im->env_text.insert(im->env_text.end(), env.begin(), env.end());
    for (auto& a : im->arg_text)
        im->argv.push_back(a.data());
    im->argv.push_back(nullptr);
    for (auto& e : im->env_text)
        im->envp.push_back(e.data());
    im->envp.push_back(nullptr);
    return im;
}

/// Run a program to its end (bounded by the program itself); returns its exit status.
int run_program(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
    const auto im = make_image(argv, env);
    pid_t pid = ::fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int devnull = ::open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            ::dup2(devnull, 0);
            ::dup2(devnull, 1);
            ::dup2(devnull, 2);
        }
        ::execve(im->argv[0], im->argv.data(), im->envp.data());
        ::_exit(127);
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return status;
}

} // namespace

bool amqp_broker::available() { return ::access(server_script, X_OK) == 0; }

amqp_broker* amqp_broker::shared() {
    static std::unique_ptr<amqp_broker> broker;
    static std::once_flag once;
    std::call_once(once, [] {
        if (!available()) {
            std::cerr << "SKIP: " << server_script
                      << " is not installed (Debian package rabbitmq-server, tools/install-deps.sh); "
                         "the AMQP tests are skipped\n";
            return;
        }
        broker = std::make_unique<amqp_broker>();
    });
    return broker.get();
}

amqp_broker::amqp_broker() {
    port_ = free_port();
    dist_port_ = free_port();
    epmd_port_ = free_port();
    static int counter = 0;
    node_ = "edibroker-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "@localhost";
    std::filesystem::create_directories(dir_.path() / "home");
    std::filesystem::create_directories(dir_.path() / "log");
    write_text(dir_.path() / "rabbitmq.conf",
               "listeners.tcp.1 = 127.0.0.1:" + std::to_string(port_) +
                   "\n"
                   "loopback_users = none\n"
                   "log.console = true\n"
                   "log.console.level = info\n"
                   "log.file = false\n");
    write_text(dir_.path() / "enabled_plugins", "[rabbitmq_amqp1_0].\n");
    start();
}

amqp_broker::~amqp_broker() {
    try {
        stop();
    } catch (...) {
    }
    kill_epmd();
}

std::string amqp_broker::url() const { return "amqp://guest:guest@127.0.0.1:" + std::to_string(port_); }

bool amqp_broker::running() const {
    std::lock_guard lk(m_);
    return pid_ > 0 && started_ && !exited_;
}

std::string amqp_broker::log_tail() const {
    std::lock_guard lk(m_);
    return tail_;
}

std::vector<std::string> amqp_broker::environment() const {
    const auto& d = dir_.path();
    return {
        "HOME=" + (d / "home").string(),
        "RABBITMQ_NODENAME=" + node_,
        "RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
        "RABBITMQ_NODE_PORT=" + std::to_string(port_),
        "RABBITMQ_DIST_PORT=" + std::to_string(dist_port_),
        "ERL_EPMD_PORT=" + std::to_string(epmd_port_),
        "ERL_EPMD_ADDRESS=127.0.0.1",
        "RABBITMQ_MNESIA_BASE=" + (d / "mnesia").string(),
        "RABBITMQ_LOG_BASE=" + (d / "log").string(),
        "RABBITMQ_LOGS=-",
        "RABBITMQ_CONFIG_FILE=" + (d / "rabbitmq.conf").string(),
        "RABBITMQ_ENABLED_PLUGINS_FILE=" + (d / "enabled_plugins").string(),
        "RABBITMQ_PID_FILE=" + (d / "rabbitmq.pid").string(),
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}",
    };
}

std::map<std::string, long> amqp_broker::queue_depths() const {
    std::map<std::string, long> out;
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0)
        return out;
    const auto im = make_image({ctl_script, "-q", "-n", node_, "--timeout", "20", "list_queues", "name", "messages"},
                               environment());
    pid_t pid = ::fork();
    if (pid < 0) {
        ::close(fds[0]);
        ::close(fds[1]);
        return out;
    }
    if (pid == 0) {
        int devnull = ::open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            ::dup2(devnull, 0);
            ::dup2(devnull, 2);
        }
        ::dup2(fds[1], 1);
        ::execve(im->argv[0], im->argv.data(), im->envp.data());
        ::_exit(127);
    }
    ::close(fds[1]);
    std::string text;
    char buf[4096];
    for (;;) {
        ssize_t n = ::read(fds[0], buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        text.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fds[0]);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    std::size_t pos = 0;
    while (pos < text.size()) {
        std::size_t nl = text.find('\n', pos);
        std::string line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
        pos = nl == std::string::npos ? text.size() : nl + 1;
        auto tab = line.find('\t');
        if (tab == std::string::npos)
            continue;
        try {
            out[line.substr(0, tab)] = std::stol(line.substr(tab + 1));
        } catch (...) {
        }
    }
    return out;
}

void amqp_broker::start() {
    if (pid_ > 0)
        return;
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0)
        throw std::runtime_error("pipe: " + std::string(std::strerror(errno)));
    const auto im = make_image({server_script}, environment());
    {
        std::lock_guard lk(m_);
        started_ = false;
        exited_ = false;
        // The readiness line is searched for in tail_: a previous run's must not count.
        tail_.clear();
    }
    pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid < 0) {
        ::close(fds[0]);
        ::close(fds[1]);
        throw std::runtime_error("fork: " + std::string(std::strerror(errno)));
    }
    if (pid == 0) {
        // The script traps SIGTERM and stops RabbitMQ properly; if the test process dies first,
        // the kernel sends it that SIGTERM.
        ::prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (::getppid() != parent)
            ::_exit(1);
        ::setpgid(0, 0);
        int devnull = ::open("/dev/null", O_RDONLY);
        if (devnull >= 0)
            ::dup2(devnull, 0);
        ::dup2(fds[1], 1);
        ::dup2(fds[1], 2);
        ::execve(im->argv[0], im->argv.data(), im->envp.data());
        ::_exit(127);
    }
    ::close(fds[1]);
    pid_ = pid;
    reader_ = std::thread([this, fd = fds[0]] { reader(fd); });

    std::unique_lock lk(m_);
    bool ok = cv_.wait_for(lk, std::chrono::seconds(90), [this] { return started_ || exited_; });
    if (ok && started_)
        return;
    std::string tail = tail_;
    lk.unlock();
    stop();
    throw std::runtime_error(std::string("RabbitMQ did not start") + (ok ? " (it exited)" : " within 90 s") +
                             "; its last output:\n" + tail);
}

void amqp_broker::reader(int fd) {
    std::ofstream log(dir_.path() / "log" / "server.log", std::ios::app);
    std::string line;
    char buf[4096];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        log.write(buf, n);
        std::lock_guard lk(m_);
        tail_.append(buf, static_cast<std::size_t>(n));
        if (tail_.size() > 16384)
            tail_.erase(0, tail_.size() - 16384);
        if (!started_ && tail_.find("Server startup complete") != std::string::npos) {
            started_ = true;
            cv_.notify_all();
        }
    }
    ::close(fd);
    std::lock_guard lk(m_);
    exited_ = true;
    cv_.notify_all();
}

void amqp_broker::stop() {
    if (pid_ <= 0)
        return;
    ::kill(pid_, SIGTERM);
    {
        // The output ends when RabbitMQ and its shell have exited.
        std::unique_lock lk(m_);
        if (!cv_.wait_for(lk, std::chrono::seconds(30), [this] { return exited_; })) {
            lk.unlock();
            std::cerr << "amqp_broker: RabbitMQ did not stop within 30 s; killing it\n";
            ::kill(-pid_, SIGKILL);
        }
    }
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    if (reader_.joinable())
        reader_.join();
    pid_ = -1;
    std::lock_guard lk(m_);
    started_ = false;
}

void amqp_broker::kill_epmd() {
    if (epmd_port_ == 0 || ::access(epmd_binary, X_OK) != 0)
        return;
    // The port mapper RabbitMQ started on our private port; asks only that one to end.
    run_program({epmd_binary, "-port", std::to_string(epmd_port_), "-kill"}, {});
}

} // namespace testing
