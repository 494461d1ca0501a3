// visma adapter: file-catalogue exchange with Visma Profil.
//
//   out/  edibroker writes each outgoing document here, atomically: a hidden temp file
//         (.<name>.tmp-N), fsync, rename to <MsgId>.xml, fsync of the folder. Visma speaks
//         Dialogmelding 1.0 and AppRec 1.0 only, so 1.1 documents are converted on the way
//         (broker/convert.hpp); a Dialogmelding that cannot be converted without loss is refused at
//         intake by can_take() with T10, so the sender gets an AppRec error, never a silent drop.
//   in/   the EPJ drops its outgoing messages and AppRecs here (write elsewhere or under a hidden /
//         .tmp name, then rename into in/). The adapter watches the folder (inotify, plus a rescan
//         every rescan-ms), hands each file to intake, and once intake has answered:
//           stored and accepted (201, or a duplicate of an accepted one) -> done/<name>
//           stored but refused (4xx: T01, T02, E21, ...)                 -> error/<name> + error/<name>.reason
//           not stored (503: the store is busy)                          -> left in in/, tried again later
//
// Threads: one thread per instance owns the folders: it writes out/, reads in/, moves files to
// done/ and error/. deliver() and the intake callbacks only queue work for it and wake it (eventfd).
// Invariants: a file is handed to intake at most once at a time (in_flight_); it leaves in/ only
// after intake has committed it (or refused it for good); every deliver()'s 'done' runs once.
#include "broker/adapter.hpp"
#include "broker/convert.hpp"
#include "broker/log.hpp"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

namespace broker::adapters::visma {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view type_name = "visma";

struct options {
    fs::path out_dir, in_dir, done_dir, error_dir;
    bool create_dirs = false;
    int rescan_ms = 2000;
    std::size_t max_file_bytes = 64u << 20;
    std::size_t max_in_flight = 8;
};

error invalid(std::string_view option, std::string_view what) {
    return error{"config.invalid", "option '" + std::string(option) + "' " + std::string(what)};
}

result<long long> number(std::string_view option, std::string_view v, long long lo, long long hi) {
    long long n = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (v.empty() || ec != std::errc{} || p != v.data() + v.size() || n < lo || n > hi)
        return invalid(option, "must be a whole number from " + std::to_string(lo) + " to " + std::to_string(hi) +
                                   ", got '" + std::string(v.substr(0, 40)) + "'");
    return n;
}

/// Relative paths are relative to the broker's data-dir (itself relative to the working folder).
fs::path resolve(const std::string& v, const std::string& data_dir) {
    fs::path p(v);
    if (p.is_relative() && !data_dir.empty())
        p = fs::path(data_dir) / p;
    return p.lexically_normal();
}

result<options> parse_options(const adapter_config& cfg) {
    options o;
    std::string dir;
    std::map<std::string, std::string> dirs;
    for (const auto& [k, v] : cfg.options) {
        if (k == "dir" || k == "out-dir" || k == "in-dir" || k == "done-dir" || k == "error-dir") {
            if (v.empty())
                return invalid(k, "must name a folder");
            (k == "dir" ? dir : dirs[k]) = v;
        } else if (k == "create-dirs") {
            if (v != "true" && v != "false")
                return invalid(k, "must be true or false, got '" + v.substr(0, 40) + "'");
            o.create_dirs = v == "true";
        } else if (k == "rescan-ms") {
            auto n = number(k, v, 10, 3'600'000);
            if (!n)
                return n.error();
            o.rescan_ms = static_cast<int>(*n);
        } else if (k == "max-file-bytes") {
            auto n = number(k, v, 1, 1ll << 32);
            if (!n)
                return n.error();
            o.max_file_bytes = static_cast<std::size_t>(*n);
        } else if (k == "max-in-flight") {
            auto n = number(k, v, 1, 1024);
            if (!n)
                return n.error();
            o.max_in_flight = static_cast<std::size_t>(*n);
        } else {
            return error{"config.invalid", "unknown option '" + k + "' for adapter type visma"};
        }
    }
    auto pick = [&](const char* key, const char* sub, fs::path& into) -> result<void> {
        if (auto it = dirs.find(key); it != dirs.end())
            into = resolve(it->second, cfg.data_dir);
        else if (!dir.empty())
            into = resolve(dir, cfg.data_dir) / sub;
        else
            return invalid("dir", std::string("is required (the exchange folder; or give ") + key + ")");
        return {};
    };
    for (auto [key, sub, into] : {std::tuple{"out-dir", "out", &o.out_dir}, std::tuple{"in-dir", "in", &o.in_dir},
                                  std::tuple{"done-dir", "done", &o.done_dir},
                                  std::tuple{"error-dir", "error", &o.error_dir}})
        if (auto r = pick(key, sub, *into); !r)
            return r.error();
    return o;
}

capabilities visma_caps() {
    capabilities c;
    c.msg_types = {"DIALOG_*", "APPREC"};
    // 1.1 is accepted because it is converted (can_take decides per message).
    c.namespaces = {ns::dialog_1_0, ns::dialog_1_1, ns::apprec_1_0, ns::apprec_1_1};
    return c;
}

using outcome = delivery_result::outcome;

delivery_result make(outcome o, std::string detail) {
    delivery_result r;
    r.o = o;
    r.detail = std::move(detail);
    return r;
}

void complete(delivery_handler& done, delivery_result r) noexcept {
    try {
        if (done)
            done(std::move(r));
    } catch (...) {
        log::error("adapter.callback-threw", {{"adapter", type_name}});
    }
}

/// A file name from a MsgId: [A-Za-z0-9._-] kept, anything else '_', never hidden, at most 200.
std::string file_name_for(const std::string& msg_id, const std::string& fallback) {
    std::string s;
    for (char c : msg_id.empty() ? fallback : msg_id) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                  c == '-' || c == '_';
        s += ok ? c : '_';
    }
    if (s.empty() || s.front() == '.')
        s.insert(s.begin(), '_');
    return s.substr(0, 200) + ".xml";
}

/// Files the EPJ is still writing, by convention: hidden, or ending in .tmp / .part.
bool ignored_name(const std::string& n) {
    auto ends = [&](std::string_view suf) {
        return n.size() >= suf.size() && n.compare(n.size() - suf.size(), suf.size(), suf) == 0;
    };
    return n.empty() || n.front() == '.' || ends(".tmp") || ends(".part");
}

std::string errno_text(int e) { return std::strerror(e); }

/// Write 'data' to 'path' atomically: temp file in the same folder, fsync, rename, fsync folder.
result<void> write_atomically(const fs::path& dir, const std::string& name, std::string_view data) {
    static std::atomic<unsigned> counter{0};
    fs::path tmp = dir / ("." + name + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT)
            return error{"io", "out folder " + dir.string() + " does not exist"};
        return error{"io", "cannot create a file in " + dir.string() + ": " + errno_text(e)};
    }
    auto fail = [&](const char* what) -> result<void> {
        int e = errno;
        ::close(fd);
        ::unlink(tmp.c_str());
        return error{"io", std::string(what) + " in " + dir.string() + ": " + errno_text(e)};
    };
    std::size_t off = 0;
    while (off < data.size()) {
        ssize_t n = ::write(fd, data.data() + off, data.size() - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return fail("cannot write");
        off += static_cast<std::size_t>(n);
    }
    if (::fsync(fd) != 0)
        return fail("cannot sync");
    if (::close(fd) != 0) {
        int e = errno;
        ::unlink(tmp.c_str());
        return error{"io", "cannot close a file in " + dir.string() + ": " + errno_text(e)};
    }
    if (::rename(tmp.c_str(), (dir / name).c_str()) != 0) {
        int e = errno;
        ::unlink(tmp.c_str());
        return error{"io", "cannot rename into " + dir.string() + ": " + errno_text(e)};
    }
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
    }
    return {};
}

/// A free name in 'dir' for 'name': the name itself, else name.<suffix>.
fs::path free_target(const fs::path& dir, const std::string& name, const std::string& suffix) {
    std::error_code ec;
    fs::path p = dir / name;
    if (!fs::exists(p, ec))
        return p;
    for (int i = 0; i < 1000; ++i) {
        std::string n = name;
        n += '.';
        n += suffix;
        if (i) {
            n += '-';
            n += std::to_string(i);
        }
        fs::path q = dir / n;
        if (!fs::exists(q, ec))
            return q;
    }
    return dir / (name + "." + suffix + "-x");
}

/// State the intake callbacks share with the adapter thread; outlives the adapter if need be.
struct shared_state {
    std::mutex m;
    int wake_fd = -1;  ///< eventfd
    struct finished_file {
        std::string name;
        inbound_result r;
    };
    std::vector<finished_file> finished;  ///< guarded by m
    void wake() const {
        uint64_t one = 1;
        if (wake_fd >= 0)
            (void)!::write(wake_fd, &one, sizeof one);
    }
    ~shared_state() {
        if (wake_fd >= 0)
            ::close(wake_fd);
    }
};

class adapter final : public broker::adapter {
public:
    adapter(std::string name, options o, inbound_fn inbound)
        : name_(std::move(name)), opt_(std::move(o)), inbound_(std::move(inbound)),
          shared_(std::make_shared<shared_state>()) {}
    ~adapter() override { stop(); }
    adapter(const adapter&) = delete;
    adapter& operator=(const adapter&) = delete;

    const std::string& name() const override { return name_; }
    std::string_view type() const override { return type_name; }
    const capabilities& caps() const override { return caps_; }

    /// At intake: a Dialogmelding 1.1 is taken only if it converts to 1.0 without loss.
    result<void> can_take(const message_facts& f, std::string_view document) const override {
        if (auto r = broker::adapter::can_take(f, document); !r)
            return r;
        if (!f.is_apprec() && f.content_ns == ns::dialog_1_1) {
            if (auto c = convert::check_dialog_1_1_to_1_0(document); !c)
                return error{"T10", "adapter '" + name_ + "' (visma) speaks Dialogmelding 1.0 only: " +
                                        c.error().message};
        }
        return {};
    }

    result<void> start() override {
        for (const fs::path* d : {&opt_.out_dir, &opt_.in_dir, &opt_.done_dir, &opt_.error_dir}) {
            std::error_code ec;
            if (opt_.create_dirs)
                fs::create_directories(*d, ec);
            if (!fs::is_directory(*d, ec))
                return error{"adapter.folder", "folder " + d->string() + " does not exist" +
                                                   (opt_.create_dirs ? " and cannot be created" : "")};
        }
        shared_->wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (shared_->wake_fd < 0)
            return error{"adapter.fd", "cannot create an eventfd: " + errno_text(errno)};
        std::lock_guard lk(m_);
        try {
            thread_ = std::thread([this] { run(); });
        } catch (const std::system_error& e) {
            return error{"adapter.thread", std::string("cannot start the thread: ") + e.what()};
        }
        started_ = true;
        return {};
    }

    /// Runs on: any thread; queues the write for the adapter thread and returns.
    void deliver(delivery d, delivery_handler done) override {
        const char* refusal = nullptr;
        {
            std::lock_guard lk(m_);
            if (stopping_)
                refusal = "shutting down";
            else if (!started_)
                refusal = "adapter not started";
            else
                out_.push_back(job{std::move(d), std::move(done)});
        }
        if (refusal) {
            complete(done, make(outcome::retriable, refusal));
            return;
        }
        shared_->wake();
    }

    void stop() override {
        {
            std::lock_guard lk(m_);
            stopping_ = true;
        }
        shared_->wake();
        if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id())
            thread_.join();
    }

private:
    struct job {
        delivery d;
        delivery_handler done;
    };

    /// The document in Visma's dialect.
    result<std::string> for_visma(const delivery& d) const {
        const message_facts& f = d.facts;
        if (f.is_apprec() && f.root_ns == ns::apprec_1_1)
            return convert::apprec_1_1_to_1_0(*d.document);
        if (!f.is_apprec() && f.content_ns == ns::dialog_1_1)
            return convert::dialog_1_1_to_1_0(*d.document);
        return *d.document;
    }

    delivery_result write_out(const delivery& d) {
        if (!d.document)
            return make(outcome::permanent, "no document to deliver");
        auto doc = for_visma(d);
        if (!doc)
            return make(outcome::permanent, "cannot convert for Visma (" + doc.error().code + "): " + doc.error().message);
        std::string name = file_name_for(d.facts.msg_id, d.id);
        if (auto w = write_atomically(opt_.out_dir, name, *doc); !w)
            return make(outcome::retriable, w.error().message);
        return make(outcome::delivered, "written to out/" + name);
    }

    void run() {
        std::string tname = ("edb-" + name_).substr(0, 15);
        pthread_setname_np(pthread_self(), tname.c_str());
        int ino = inbound_ ? ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC) : -1;
        int wd = -1;
        auto watch = [&] {
            if (ino >= 0 && wd < 0)
                wd = ::inotify_add_watch(ino, opt_.in_dir.c_str(),
                                         IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR);
        };
        watch();
        if (inbound_ && wd < 0)
            log::warn("visma.watch-failed", {{"adapter", name_}, {"reason", errno_text(errno)}});
        using clock = std::chrono::steady_clock;
        auto next_scan = clock::now();  // scan at once: files left from before a restart
        std::vector<job> jobs;
        std::vector<shared_state::finished_file> finished;

        for (;;) {
            jobs.clear();
            finished.clear();
            bool stopping;
            {
                std::lock_guard lk(m_);
                stopping = stopping_;
                while (!out_.empty()) {
                    jobs.push_back(std::move(out_.front()));
                    out_.pop_front();
                }
            }
            if (stopping) {
                for (auto& j : jobs)
                    complete(j.done, make(outcome::retriable, "shutting down"));
                break;
            }
            for (auto& j : jobs)
                complete(j.done, write_out(j.d));
            {
                std::lock_guard lk(shared_->m);
                finished.swap(shared_->finished);
            }
            for (auto& f : finished)
                finish_file(f.name, f.r);

            if (inbound_ && clock::now() >= next_scan) {
                watch();
                scan_in();
                next_scan = clock::now() + std::chrono::milliseconds(opt_.rescan_ms);
            }
            submit_candidates();

            pollfd fds[2] = {{shared_->wake_fd, POLLIN, 0}, {ino, POLLIN, 0}};
            auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next_scan - clock::now()).count();
            if (!inbound_)
                wait = -1;
            int n = ::poll(fds, ino >= 0 ? 2 : 1, static_cast<int>(std::max<long long>(0, wait)));
            if (n <= 0)
                continue;
            if (fds[0].revents & POLLIN) {
                uint64_t v;
                (void)!::read(shared_->wake_fd, &v, sizeof v);
            }
            if (ino >= 0 && (fds[1].revents & POLLIN))
                read_events(ino, wd);
        }
        if (ino >= 0)
            ::close(ino);
    }

    void read_events(int ino, int& wd) {
        alignas(inotify_event) char buf[16 * 1024];
        for (;;) {
            ssize_t n = ::read(ino, buf, sizeof buf);
            if (n <= 0)
                return;
            for (char* p = buf; p < buf + n;) {
                auto* ev = reinterpret_cast<inotify_event*>(p);
                if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) {
                    if (ev->wd == wd)
                        wd = -1;  // the folder went away; the next rescan watches it again
                } else if (ev->len > 0 && !(ev->mask & IN_ISDIR)) {
                    std::string name(ev->name);
                    if (!ignored_name(name))
                        candidates_.insert(name);
                }
                p += sizeof(inotify_event) + ev->len;
            }
        }
    }

    void scan_in() {
        std::error_code ec;
        fs::directory_iterator it(opt_.in_dir, ec), end;
        if (ec) {
            log::warn("visma.scan-failed", {{"adapter", name_}, {"reason", ec.message()}});
            return;
        }
        for (; it != end; it.increment(ec)) {
            if (ec)
                break;
            std::string name = it->path().filename().string();
            if (!ignored_name(name) && it->is_regular_file(ec))
                candidates_.insert(name);
        }
    }

    void submit_candidates() {
        for (auto it = candidates_.begin(); it != candidates_.end() && in_flight_.size() < opt_.max_in_flight;) {
            std::string name = *it;
            it = candidates_.erase(it);
            if (in_flight_.count(name))
                continue;
            submit_file(name);
        }
    }

    void submit_file(const std::string& name) {
        fs::path p = opt_.in_dir / name;
        struct stat st{};
        if (::lstat(p.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
            return;  // gone (already moved), or not a plain file
        if (static_cast<std::size_t>(st.st_size) > opt_.max_file_bytes) {
            to_error(name, "413\n{\"error\":{\"code\":\"file.too-large\",\"message\":\"the file has " +
                               std::to_string(st.st_size) + " bytes; max-file-bytes is " +
                               std::to_string(opt_.max_file_bytes) + "\"}}\n", "");
            return;
        }
        std::ifstream in(p, std::ios::binary);
        if (!in)
            return;
        std::ostringstream s;
        s << in.rdbuf();
        in_flight_.insert(name);
        log::debug("visma.picked-up", {{"adapter", name_}, {"file", name}});
        std::weak_ptr<shared_state> w = shared_;
        inbound_(s.str(), "visma:" + name_, [w, name](inbound_result r) {
            auto sh = w.lock();
            if (!sh)
                return;  // the adapter is gone: the file stays in in/ and is taken again after a restart
            {
                std::lock_guard lk(sh->m);
                sh->finished.push_back({name, std::move(r)});
            }
            sh->wake();
        });
    }

    void finish_file(const std::string& name, const inbound_result& r) {
        in_flight_.erase(name);
        if (!r.stored()) {
            // Nothing was committed (store busy): leave it in in/ for the next rescan.
            log::warn("visma.not-stored", {{"adapter", name_}, {"file", name}, {"status", std::to_string(r.status)}});
            return;
        }
        if (r.status >= 200 && r.status < 300) {
            fs::path target = free_target(opt_.done_dir, name, r.id);
            std::error_code ec;
            fs::rename(opt_.in_dir / name, target, ec);
            if (ec)
                log::error("visma.move-failed", {{"adapter", name_}, {"file", name}, {"reason", ec.message()}});
            else
                log::info("visma.taken", {{"adapter", name_}, {"file", name}, {"id", r.id},
                                          {"duplicate", r.duplicate ? "true" : "false"}});
            return;
        }
        to_error(name, std::to_string(r.status) + "\n" + r.body_json + "\n", r.id);
    }

    /// Move in/<name> to error/ with a reason file beside it: first line the HTTP status intake
    /// answered, then intake's JSON answer (error code, reason, broker id, AppRec id).
    void to_error(const std::string& name, const std::string& reason, const std::string& id) {
        fs::path target = free_target(opt_.error_dir, name, id.empty() ? "refused" : id);
        std::string reason_name = target.filename().string() + ".reason";
        if (auto w = write_atomically(opt_.error_dir, reason_name, reason); !w)
            log::error("visma.reason-failed", {{"adapter", name_}, {"file", name}, {"reason", w.error().message}});
        std::error_code ec;
        fs::rename(opt_.in_dir / name, target, ec);
        if (ec)
            log::error("visma.move-failed", {{"adapter", name_}, {"file", name}, {"reason", ec.message()}});
        else
            log::info("visma.refused", {{"adapter", name_}, {"file", name}, {"id", id}});
    }

    std::string name_;
    options opt_;
    inbound_fn inbound_;
    capabilities caps_ = visma_caps();
    std::shared_ptr<shared_state> shared_;

    std::mutex m_;
    std::deque<job> out_;   ///< guarded by m_
    bool started_ = false;  ///< guarded by m_
    bool stopping_ = false; ///< guarded by m_
    std::thread thread_;

    // Adapter thread only.
    std::set<std::string> candidates_;  ///< names in in/ to hand to intake
    std::set<std::string> in_flight_;   ///< handed to intake, no answer yet
};

class factory final : public adapter_factory {
public:
    std::string_view type() const override { return type_name; }
    result<void> check(const adapter_config& cfg) const override {
        auto o = parse_options(cfg);
        if (!o)
            return o.error();
        return {};
    }
    result<adapter_ptr> create(const adapter_config& cfg) const override {
        auto o = parse_options(cfg);
        if (!o)
            return o.error();
        return adapter_ptr(std::make_unique<adapter>(cfg.name, std::move(*o), cfg.inbound));
    }
    capabilities caps(const adapter_config&) const override { return visma_caps(); }
};

} // namespace

} // namespace broker::adapters::visma

namespace broker::adapters {

void register_visma(adapter_registry& r) {
    if (auto e = r.add(std::make_unique<visma::factory>()); !e)
        log::error("adapter.register-failed", {{"type", visma::type_name}, {"reason", e.error().message}});
}

} // namespace broker::adapters
