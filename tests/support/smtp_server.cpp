// testing::smtp_server: python3 smtp_server.py as a child process, its stdout on a pipe.
#include "smtp_server.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace testing {

namespace {

/// Debian's interpreter (where python3-aiosmtpd is installed), else whatever python3 is first.
std::string python() {
    if (::access("/usr/bin/python3", X_OK) == 0)
        return "/usr/bin/python3";
    return "python3";
}

std::string script() { return (source_dir() / "tests/support/smtp_server.py").string(); }

std::string str(const boost::json::object& o, const char* k) {
    auto* v = o.if_contains(k);
    return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

} // namespace

bool smtp_server::available() {
    std::string cmd = python() + " -c 'import aiosmtpd' >/dev/null 2>&1";
    return std::system(cmd.c_str()) == 0;
}

unsigned short smtp_server::free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        throw std::runtime_error("socket failed");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof a;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
        ::close(fd);
        throw std::runtime_error("bind failed");
    }
    ::close(fd);
    return ntohs(a.sin_port);
}

smtp_server::smtp_server(unsigned short port) : tmp_(std::make_unique<temp_dir>()), dir_(tmp_->path() / "mail") {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0)
        throw std::runtime_error("pipe failed");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    std::string py = python(), sc = script(), d = dir_.string(), p = std::to_string(port);
    std::vector<char*> argv = {py.data(), sc.data(), const_cast<char*>("--dir"), d.data(),
                               const_cast<char*>("--port"), p.data(), nullptr};
    pid_t pid = -1;
    int rc = ::posix_spawnp(&pid, py.c_str(), &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(fds[1]);
    if (rc != 0) {
        ::close(fds[0]);
        throw std::runtime_error("cannot start " + py + ": " + std::to_string(rc));
    }
    pid_ = pid;
    out_fd_ = fds[0];
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    while (port_ == 0) {
        auto nl = buf_.find('\n');
        if (nl != std::string::npos) {
            std::string line = buf_.substr(0, nl);
            buf_.erase(0, nl + 1);
            if (line.rfind("listening ", 0) == 0)
                port_ = static_cast<unsigned short>(std::stoi(line.substr(10)));
            continue;
        }
        if (!read_lines(deadline)) {
            shutdown();
            throw std::runtime_error("the SMTP server did not start (python3-aiosmtpd installed?)");
        }
    }
}

smtp_server::~smtp_server() { shutdown(); }

void smtp_server::shutdown() {
    if (pid_ > 0) {
        ::kill(pid_, SIGTERM);
        int status = 0;
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (::waitpid(pid_, &status, WNOHANG) == 0) {
            if (std::chrono::steady_clock::now() > deadline) {
                ::kill(pid_, SIGKILL);
                ::waitpid(pid_, &status, 0);
                break;
            }
            // Wait for the child's exit on its stdout pipe closing (bounded poll, no sleep loop).
            pollfd p{out_fd_, POLLIN, 0};
            if (out_fd_ >= 0) {
                if (::poll(&p, 1, 100) > 0) {
                    char b[256];
                    if (::read(out_fd_, b, sizeof b) <= 0) {
                        ::close(out_fd_);
                        out_fd_ = -1;
                    }
                }
            } else {
                ::poll(nullptr, 0, 10);
            }
        }
        pid_ = -1;
    }
    if (out_fd_ >= 0) {
        ::close(out_fd_);
        out_fd_ = -1;
    }
}

std::string smtp_server::url() const { return "smtp://127.0.0.1:" + std::to_string(port_); }

bool smtp_server::read_lines(std::chrono::steady_clock::time_point deadline) {
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0 || out_fd_ < 0)
            return false;
        pollfd p{out_fd_, POLLIN, 0};
        int n = ::poll(&p, 1, static_cast<int>(left.count()));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        char b[4096];
        ssize_t k = ::read(out_fd_, b, sizeof b);
        if (k <= 0)
            return false;
        buf_.append(b, static_cast<std::size_t>(k));
        return true;
    }
}

bool smtp_server::wait_for_messages(std::size_t n, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        std::size_t nl;
        while ((nl = buf_.find('\n')) != std::string::npos) {
            if (buf_.rfind("message ", 0) == 0)
                ++announced_;
            buf_.erase(0, nl + 1);
        }
        if (announced_ >= n)
            return true;
        if (!read_lines(deadline))
            return false;
    }
}

std::vector<received_mail> smtp_server::messages() const {
    std::vector<std::filesystem::path> files;
    std::error_code ec;
    for (auto& e : std::filesystem::directory_iterator(dir_, ec))
        if (e.path().extension() == ".json")
            files.push_back(e.path());
    std::sort(files.begin(), files.end());
    std::vector<received_mail> out;
    for (auto& f : files) {
        auto v = boost::json::parse(read_file(f));
        auto& o = v.as_object();
        received_mail m;
        m.mail_from = str(o, "mailFrom");
        for (auto& r : o.at("rcptTos").as_array())
            m.rcpt_tos.emplace_back(r.as_string());
        m.from = str(o, "from");
        m.to = str(o, "to");
        m.subject = str(o, "subject");
        m.content_type = str(o, "contentType");
        m.body = str(o, "body");
        m.raw = str(o, "raw");
        out.push_back(std::move(m));
    }
    return out;
}

} // namespace testing
