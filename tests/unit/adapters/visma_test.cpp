// visma adapter on a real folder tree: atomic writes to out/ (converted to 1.0), pick-up from in/
// of files another process writes (fork/exec of /bin/sh: cp + mv), done/ and error/ + reason file,
// a store that could not take a file (left in in/, taken again), an out/ folder that is gone.
// The inbound side talks to a recording intake stand-in here; the integration test
// (vendor_visma_test.cpp) runs the same against the real broker. Waits are inotify + poll() with a
// deadline, never sleeps.
#include "broker/adapter.hpp"
#include "broker/message.hpp"
#include "broker/xml.hpp"

#include "test_paths.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>

#include <poll.h>
#include <sys/inotify.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace broker;
using namespace std::chrono_literals;
using outcome = delivery_result::outcome;
namespace fs = std::filesystem;

namespace {

adapter_registry& registry() {
    static adapter_registry r = [] {
        adapter_registry x;
        register_builtin_adapters(x);
        return x;
    }();
    return r;
}

/// Runs 'cmd' with /bin/sh in a child process (fork/exec) and returns its exit status.
int run_sh(const std::string& cmd) {
    pid_t pid = ::fork();
    if (pid == 0) {
        ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
        ::_exit(127);
    }
    REQUIRE(pid > 0);
    int st = 0;
    REQUIRE(::waitpid(pid, &st, 0) == pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

std::string q(const fs::path& p) { return "'" + p.string() + "'"; }

/// Wait until 'p' exists: inotify on its folder, poll() with a deadline.
bool wait_for_file(const fs::path& p, std::chrono::milliseconds timeout = 10s) {
    int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    REQUIRE(fd >= 0);
    ::inotify_add_watch(fd, p.parent_path().c_str(), IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE);
    auto deadline = std::chrono::steady_clock::now() + timeout;
    bool ok = false;
    for (;;) {
        std::error_code ec;
        if (fs::exists(p, ec)) {
            ok = true;
            break;
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0)
            break;
        pollfd pfd{fd, POLLIN, 0};
        if (::poll(&pfd, 1, static_cast<int>(left.count())) > 0) {
            char buf[4096];
            while (::read(fd, buf, sizeof buf) > 0) {
            }
        }
    }
    ::close(fd);
    return ok;
}

std::string fixture() {
    return testing::read_file(testing::source_dir() / "tests/fixtures/messages/dialog-portal-to-oslo.xml");
}

/// Stands in for the broker's intake: records each document and answers as told.
struct intake_stub {
    std::mutex m;
    std::condition_variable cv;
    std::vector<std::pair<std::string, std::string>> got;  // (source, document)
    std::function<inbound_result(const std::string&)> answer = [](const std::string&) {
        inbound_result r;
        r.status = 201;
        r.id = "stored-1";
        r.body_json = R"({"id":"stored-1","state":"routed"})";
        return r;
    };
    inbound_fn fn() {
        return [this](std::string doc, std::string source, inbound_handler done) {
            inbound_result r;
            {
                std::lock_guard lk(m);
                r = answer(doc);
                got.emplace_back(std::move(source), std::move(doc));
                cv.notify_all();
            }
            done(std::move(r));  // as the broker does: from another thread than the caller's would be fine too
        };
    }
    bool wait_for(std::size_t n, std::chrono::milliseconds t = 10s) {
        std::unique_lock lk(m);
        return cv.wait_for(lk, t, [&] { return got.size() >= n; });
    }
    std::size_t count() {
        std::lock_guard lk(m);
        return got.size();
    }
};

struct visma_fixture {
    testing::temp_dir dir;
    intake_stub intake;
    fs::path root = dir.path() / "data" / "visma-oslo";
    adapter_ptr a;

    explicit visma_fixture(std::map<std::string, std::string> extra = {}) {
        adapter_config c;
        c.name = "visma-oslo";
        c.type = "visma";
        c.options = {{"dir", "visma-oslo"}, {"create-dirs", "true"}, {"rescan-ms", "50"}};
        for (auto& [k, v] : extra)
            c.options[k] = v;
        c.data_dir = (dir.path() / "data").string();  // "visma-oslo" is relative to it
        c.inbound = intake.fn();
        const adapter_factory* f = registry().find("visma");
        REQUIRE(f);
        auto made = f->create(c);
        INFO((made ? std::string() : made.error().message));
        REQUIRE(made.has_value());
        a = std::move(*made);
        auto s = a->start();
        INFO((s ? std::string() : s.error().message));
        REQUIRE(s.has_value());
    }
    ~visma_fixture() {
        if (a)
            a->stop();
    }

    delivery_result deliver(const std::string& doc, const std::string& id = "b-1") {
        delivery d;
        d.id = id;
        d.facts = xml::thread_validator().validate(doc).facts;
        d.document = std::make_shared<const std::string>(doc);
        std::mutex m;
        std::condition_variable cv;
        std::optional<delivery_result> got;
        a->deliver(std::move(d), [&](delivery_result r) {
            std::lock_guard lk(m);
            got = std::move(r);
            cv.notify_all();
        });
        std::unique_lock lk(m);
        REQUIRE(cv.wait_for(lk, 10s, [&] { return got.has_value(); }));
        return *got;
    }

    /// The EPJ (another process) drops 'content' into in/ as 'name': write aside, then rename in.
    void epj_writes(const std::string& name, const std::string& content) {
        fs::path src = dir.path() / ("epj-" + name);
        std::ofstream(src, std::ios::binary) << content;
        REQUIRE(run_sh("cp " + q(src) + " " + q(root / "in" / ("." + name + ".tmp")) + " && mv " +
                       q(root / "in" / ("." + name + ".tmp")) + " " + q(root / "in" / name)) == 0);
    }
};

std::vector<std::string> names_in(const fs::path& d) {
    std::vector<std::string> out;
    for (auto& e : fs::directory_iterator(d))
        out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
}

} // namespace

TEST_CASE("visma: an outgoing Dialogmelding 1.1 lands in out/ as 1.0, atomically, named by its MsgId",
          "[unit][adapters][visma]") {
    visma_fixture fx;
    for (auto* d : {"out", "in", "done", "error"})
        CHECK(fs::is_directory(fx.root / d));  // created under the data-dir (create-dirs)
    auto r = fx.deliver(fixture());
    CHECK(r.o == outcome::delivered);
    CHECK(r.detail == "written to out/6f1c2f3e-5d4b-4a39-9c1e-0b7a8d2e4f10.xml");
    CHECK(names_in(fx.root / "out") == std::vector<std::string>{"6f1c2f3e-5d4b-4a39-9c1e-0b7a8d2e4f10.xml"});
    auto written = testing::read_file(fx.root / "out/6f1c2f3e-5d4b-4a39-9c1e-0b7a8d2e4f10.xml");
    auto vr = xml::thread_validator().validate(written);
    CHECK(vr.v == xml::verdict::valid);
    CHECK(vr.facts.content_ns == ns::dialog_1_0);
    // Delivered again (a retry after a crash): the same file, still one.
    CHECK(fx.deliver(fixture()).o == outcome::delivered);
    CHECK(names_in(fx.root / "out").size() == 1);
}

TEST_CASE("visma: can_take refuses a Dialogmelding 1.1 that 1.0 cannot carry (T10), takes the rest",
          "[unit][adapters][visma]") {
    visma_fixture fx;
    std::string ok = fixture();
    CHECK(fx.a->can_take(xml::thread_validator().validate(ok).facts, ok).has_value());
    std::string lossy = ok;
    lossy.replace(lossy.find("<Sporsmal>"), 10, "<EmneSporsmal>Besøk</EmneSporsmal><Sporsmal>");
    auto f = xml::thread_validator().validate(lossy).facts;
    auto r = fx.a->can_take(f, lossy);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == "T10");
    CHECK(r.error().message.find("EmneSporsmal") != std::string::npos);
    CHECK(r.error().message.find("Dialogmelding 1.0 only") != std::string::npos);
    // Not a type it takes at all.
    auto other = f;
    other.msg_type = "EPIKRISE";
    CHECK_FALSE(fx.a->can_take(other, ok).has_value());
}

TEST_CASE("visma: files another process writes into in/ go to intake, then to done/ or error/ + reason",
          "[unit][adapters][visma]") {
    visma_fixture fx;
    fx.intake.answer = [](const std::string& doc) {
        inbound_result r;
        if (doc.find("<MsgHead") == std::string::npos) {
            r.status = 400;
            r.id = "rejected-1";
            r.body_json = R"({"error":{"code":"T01","message":"not well-formed XML"},"id":"rejected-1"})";
        } else {
            r.status = 201;
            r.id = "stored-1";
            r.body_json = R"({"id":"stored-1"})";
        }
        return r;
    };
    fx.epj_writes("reply-1.xml", fixture());
    REQUIRE(wait_for_file(fx.root / "done/reply-1.xml"));
    fx.epj_writes("junk.xml", "this is not XML at all");
    REQUIRE(wait_for_file(fx.root / "error/junk.xml.reason"));
    REQUIRE(wait_for_file(fx.root / "error/junk.xml"));
    std::string reason = testing::read_file(fx.root / "error/junk.xml.reason");
    CHECK(reason.rfind("400\n", 0) == 0);
    CHECK(reason.find("\"T01\"") != std::string::npos);
    CHECK(names_in(fx.root / "in").empty());
    REQUIRE(fx.intake.count() == 2);
    std::lock_guard lk(fx.intake.m);
    CHECK(fx.intake.got[0].first == "visma:visma-oslo");
    CHECK(fx.intake.got[0].second == fixture());
}

TEST_CASE("visma: a file the store could not take stays in in/ and is handed over again", "[unit][adapters][visma]") {
    visma_fixture fx;
    std::atomic<int> calls{0};
    fx.intake.answer = [&](const std::string&) {
        inbound_result r;
        if (++calls < 3) {
            r.status = 503;  // store busy: nothing stored
            r.body_json = R"({"error":{"code":"store.busy"}})";
        } else {
            r.status = 201;
            r.id = "stored-2";
        }
        return r;
    };
    fx.epj_writes("apprec-1.xml", "<AppRec/>");
    REQUIRE(wait_for_file(fx.root / "done/apprec-1.xml"));
    CHECK(calls == 3);
    CHECK(names_in(fx.root / "in").empty());
}

TEST_CASE("visma: files already in in/ at start are taken; files being written are not", "[unit][adapters][visma]") {
    testing::temp_dir pre;
    fs::create_directories(pre.path() / "x/in");
    std::ofstream(pre.path() / "x/in/early.xml") << fixture();
    std::ofstream(pre.path() / "x/in/.partial.xml") << "<Msg";
    std::ofstream(pre.path() / "x/in/writing.xml.tmp") << "<Msg";
    visma_fixture fx({{"dir", (pre.path() / "x").string()}});  // an absolute dir is taken as it is
    REQUIRE(wait_for_file(pre.path() / "x/done/early.xml"));
    CHECK(fx.intake.count() == 1);
    CHECK(fs::exists(pre.path() / "x/in/.partial.xml"));
    CHECK(fs::exists(pre.path() / "x/in/writing.xml.tmp"));
}

TEST_CASE("visma: an out/ folder that is gone is a retriable failure; options are checked", "[unit][adapters][visma]") {
    visma_fixture fx;
    fs::rename(fx.root / "out", fx.root / "out.unmounted");
    auto r = fx.deliver(fixture());
    CHECK(r.o == outcome::retriable);
    CHECK(r.detail.find("does not exist") != std::string::npos);
    fs::rename(fx.root / "out.unmounted", fx.root / "out");
    CHECK(fx.deliver(fixture()).o == outcome::delivered);

    const adapter_factory* f = registry().find("visma");
    adapter_config c;
    c.type = "visma";
    auto msg = [&](std::map<std::string, std::string> o) {
        c.options = std::move(o);
        auto e = f->check(c);
        return e ? std::string() : e.error().message;
    };
    CHECK(msg({}).find("option 'dir' is required") == 0);
    CHECK(msg({{"in-dir", "a"}, {"out-dir", "b"}}).find("option 'dir' is required") == 0);  // done/error too
    CHECK(msg({{"in-dir", "a"}, {"out-dir", "b"}, {"done-dir", "c"}, {"error-dir", "d"}}).empty());
    CHECK(msg({{"dir", "x"}, {"rescan-ms", "0"}}).find("option 'rescan-ms'") == 0);
    CHECK(msg({{"dir", "x"}, {"folder", "y"}}) == "unknown option 'folder' for adapter type visma");

    // Without create-dirs a missing folder stops the instance from starting.
    c.name = "visma-x";
    c.options = {{"dir", (fx.dir.path() / "nowhere").string()}};
    auto a = f->create(c);
    REQUIRE(a.has_value());
    auto s = (*a)->start();
    REQUIRE_FALSE(s.has_value());
    CHECK(s.error().message.find("does not exist") != std::string::npos);
}
