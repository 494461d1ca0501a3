// `edibroker replay`: send message files to a running broker (or, with --dry-run, validate and
// route them in this process), summarise what happened, and compare each message's outcome with
// an expected file so testers can keep regression suites of message files.
//
// Expected files (--expect DIR, written by --write-expected DIR): for a message file NAME (its
// path relative to the folder given on the command line) the file DIR/NAME.expected holds
// "key: value" lines; '#' starts a comment. Every key present must match, keys left out are not
// compared:
//
//   status: 201               HTTP status the broker answered (201, 400, 422, ...)
//   state: delivered          the message's state (written only with --wait-for: it moves on)
//   rule: oslo-visma          routing rule that matched, "-" for none
//   adapter: visma-oslo       adapter instance, "-" for none
//   error: E21                rejection code, "-" for none
//   apprec: Rejected E21      AppRec status and error codes, "-" when no AppRec (yet)
#include "tools/commands.hpp"

#include "admin/ops.hpp"
#include "broker/adapter.hpp"
#include "broker/server.hpp"
#include "broker/xml.hpp"
#include "tools/common.hpp"
#include "tools/http_client.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <thread>
#include <unistd.h>

namespace broker::tools {

namespace fs = std::filesystem;
namespace json = boost::json;
using clock = std::chrono::steady_clock;

namespace {

constexpr const char* usage =
    R"(usage: edibroker replay PATH... (--to URL | --dry-run) [options]

Send every message file (PATH: files, or folders searched for *.xml) to a running broker, or with
--dry-run validate and route them here without a server.

  --to URL               the broker's EDI endpoint, e.g. http://127.0.0.1:8080
  --concurrency N        messages in flight at once (default 4)
  --rate N               at most N messages per second (default: no limit)
  --wait-for STATES      after sending, wait until each message reaches one of these states
                         (comma-separated, e.g. delivered,waiting,apprec-ok,apprec-rejected,dead)
  --timeout-ms N         how long to wait for those states (default 10000)
  --expect DIR           compare each outcome with DIR/NAME.expected; exit 1 on any difference
  --write-expected DIR   write DIR/NAME.expected from this run's outcomes
  --dry-run              no server: validate + route with --rules/--registry/--config (or the
                         defaults) and show where each message would go
  --verbose              one line per message, not only for differences
  --no-progress          no progress bar (it is shown only when stdout is a terminal)
)";

struct item {
    fs::path path;
    std::string name;  ///< relative to the PATH argument it came from
};

struct outcome {
    int status = 0;            ///< 0: no HTTP answer
    std::string transport_error;
    bool duplicate = false;
    std::string id, state, rule, adapter, error, reason, apprec;
    double latency_ms = 0;
};

result<std::vector<item>> collect(const std::vector<std::string>& paths) {
    std::vector<item> out;
    for (auto& p : paths) {
        std::error_code ec;
        fs::path base(p);
        if (fs::is_directory(base, ec)) {
            std::vector<item> here;
            for (fs::recursive_directory_iterator it(base, ec), end; it != end && !ec; it.increment(ec)) {
                if (!it->is_regular_file(ec) || it->path().extension() != ".xml")
                    continue;
                here.push_back({it->path(), fs::relative(it->path(), base).generic_string()});
            }
            if (ec)
                return error{"tools.unreadable", "cannot list " + p + ": " + ec.message()};
            std::sort(here.begin(), here.end(), [](const item& a, const item& b) { return a.name < b.name; });
            out.insert(out.end(), here.begin(), here.end());
        } else if (fs::is_regular_file(base, ec)) {
            out.push_back({base, base.filename().generic_string()});
        } else {
            return error{"tools.unreadable", "no such file or folder: " + p};
        }
    }
    return out;
}

std::string str_of(const json::object& o, const char* k) {
    auto* v = o.if_contains(k);
    return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

/// "Rejected E21 E35" from a status answer's appRecStatus + appRecErrorList.
std::string apprec_of(const json::object& st) {
    auto* s = st.if_contains("appRecStatus");
    if (!s || !s->is_string())
        return {};
    std::string out(s->as_string());
    if (auto* el = st.if_contains("appRecErrorList"); el && el->is_array())
        for (auto& e : el->as_array())
            if (e.is_object())
                if (auto c = str_of(e.as_object(), "errorCode"); !c.empty())
                    out += " " + c;
    return out;
}

std::map<std::string, std::string> expectation_of(const outcome& o, bool with_state) {
    auto dash = [](const std::string& s) { return s.empty() ? std::string("-") : s; };
    std::map<std::string, std::string> m;
    m["status"] = std::to_string(o.status);
    if (with_state)
        m["state"] = dash(o.state);
    m["rule"] = dash(o.rule);
    m["adapter"] = dash(o.adapter);
    m["error"] = dash(o.error);
    m["apprec"] = dash(o.apprec);
    return m;
}

result<std::vector<std::pair<std::string, std::string>>> read_expected(const fs::path& p) {
    std::ifstream in(p);
    if (!in)
        return error{"tools.unreadable", "no expected file " + p.string()};
    std::vector<std::pair<std::string, std::string>> out;
    std::string line;
    int n = 0;
    while (std::getline(in, line)) {
        ++n;
        auto hash = line.find('#');
        if (hash != std::string::npos)
            line.resize(hash);
        auto b = line.find_first_not_of(" \t\r");
        if (b == std::string::npos)
            continue;
        auto colon = line.find(':');
        if (colon == std::string::npos)
            return error{"tools.invalid", "expected 'key: value'", p.string(), n, static_cast<int>(b) + 1};
        auto trim = [](std::string s) {
            auto x = s.find_first_not_of(" \t\r"), y = s.find_last_not_of(" \t\r");
            return x == std::string::npos ? std::string() : s.substr(x, y - x + 1);
        };
        std::string k = trim(line.substr(0, colon)), v = trim(line.substr(colon + 1));
        static const std::set<std::string> keys{"status", "state", "rule", "adapter", "error", "apprec"};
        if (!keys.count(k))
            return error{"tools.invalid", "unknown key '" + k + "' (status, state, rule, adapter, error, apprec)",
                         p.string(), n, static_cast<int>(b) + 1};
        out.emplace_back(k, v);
    }
    return out;
}

/// Send one message and find out what became of it.
outcome send_one(http_client& c, const std::string& doc, const std::string& wait_for, int timeout_ms) {
    outcome o;
    auto t0 = clock::now();
    auto r = c.request("POST", "/Messages", doc, "application/xml");
    o.latency_ms = std::chrono::duration<double, std::milli>(clock::now() - t0).count();
    if (!r) {
        o.transport_error = r.error().message;
        return o;
    }
    o.status = r->status;
    o.duplicate = r->header("X-EDIBroker-Duplicate") == "true";
    boost::system::error_code ec;
    json::value v = json::parse(r->body, ec);
    if (!ec && v.is_object()) {
        auto& a = v.as_object();
        o.id = str_of(a, "id");
        o.state = str_of(a, "state");
        if (auto* e = a.if_contains("error"); e && e->is_object()) {
            o.error = str_of(e->as_object(), "code");
            o.reason = str_of(e->as_object(), "message");
        }
    }
    if (o.id.empty())
        return o;
    std::string target = "/Messages/" + o.id + "/status";
    if (!wait_for.empty())
        target += "?waitForState=" + wait_for + "&timeoutMs=" + std::to_string(timeout_ms);
    auto s = c.request("GET", target, "", "", std::chrono::milliseconds(timeout_ms + 30000));
    if (!s || s->status != 200)
        return o;
    json::value sv = json::parse(s->body, ec);
    if (ec || !sv.is_object())
        return o;
    auto& st = sv.as_object();
    o.state = str_of(st, "state");
    o.rule = str_of(st, "rule");
    o.adapter = str_of(st, "adapter");
    o.apprec = apprec_of(st);
    if (auto* e = st.if_contains("error"); e && e->is_object() && o.error.empty())
        o.error = str_of(e->as_object(), "code");
    return o;
}

/// What the broker would do with 'doc', decided here (validation, routing, adapter types).
outcome dry_run_one(xml::validator& v, const routing::rule_set& rules, const routing::address_registry& reg,
                    const adapter_registry& factories, const std::string& doc, const std::string& name) {
    outcome o;
    auto vr = v.validate(doc, name);
    const message_facts& f = vr.facts;
    auto reject = [&](const std::string& code, int status, const std::string& reason) {
        o.status = status;
        o.state = store::state::rejected;
        o.error = code;
        o.reason = reason;
        bool is_8221 = code.size() == 3 && std::string_view("ESTX").find(code[0]) != std::string_view::npos;
        if (is_8221 && !f.is_apprec() && !f.msg_id.empty() && !f.sender.lowest_her().empty())
            o.apprec = "Rejected " + code;
    };
    if (vr.v != xml::verdict::valid) {
        std::string first = vr.diagnostics.empty() ? std::string("the message is not valid")
                                                   : std::to_string(vr.diagnostics[0].line) + ":" +
                                                         std::to_string(vr.diagnostics[0].column) + ": " +
                                                         vr.diagnostics[0].message;
        reject(xml::apprec_code(vr.v), 400, first);
        return o;
    }
    auto d = routing::route(rules, reg, f);
    switch (d.k) {
    case routing::decision::kind::unknown_receiver:
    case routing::decision::kind::cannot_receive:
        reject("E21", 422, d.reason);
        return o;
    case routing::decision::kind::unroutable:
        o.status = 201;
        o.state = store::state::unroutable;
        o.reason = d.reason;
        return o;
    case routing::decision::kind::routed:
        break;
    }
    const routing::adapter_instance* inst = rules.find_adapter(d.adapter);
    const adapter_factory* fac = inst ? factories.find(inst->type) : nullptr;
    if (fac) {
        adapter_config ac;
        ac.name = inst->name;
        ac.type = inst->type;
        ac.options = inst->options;
        if (!fac->caps(ac).accepts(f)) {
            reject("T10", 400, "route '" + (d.matched ? d.matched->id : std::string()) + "': adapter '" + d.adapter +
                                   "' does not take this message type");
            return o;
        }
    }
    o.status = 201;
    o.state = store::state::routed;
    o.rule = d.matched ? d.matched->id : "";
    o.adapter = d.adapter;
    o.reason = d.reason;
    return o;
}

/// A reason for the summary table: the broker's first line of it, at most ~90 characters. The
/// broker's reasons name positions, codes and HER-ids, never values from the document.
std::string short_reason(const std::string& r) {
    std::string s = r.substr(0, r.find('\n'));
    if (s.size() > 90) {
        std::size_t cut = 87;
        while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80)
            --cut;  // not inside a UTF-8 sequence
        s = s.substr(0, cut) + "...";
    }
    return s;
}

double percentile(std::vector<double> v, double p) {
    if (v.empty())
        return 0;
    std::sort(v.begin(), v.end());
    std::size_t k = static_cast<std::size_t>(std::ceil(p * static_cast<double>(v.size())));
    return v[std::min(v.size() - 1, k == 0 ? 0 : k - 1)];
}

std::string fmt(double v, int prec = 1) {
    char b[64];
    std::snprintf(b, sizeof b, "%.*f", prec, v);
    return b;
}

/// Progress bar on a terminal: "[=========>          ] 120/500  34 msg/s".
class progress {
public:
    progress(bool on, std::size_t total) : on_(on), total_(total), t0_(clock::now()) {}
    void tick(std::size_t done) {
        if (!on_)
            return;
        auto now = clock::now();
        if (done != total_ && now - last_ < std::chrono::milliseconds(100))
            return;
        last_ = now;
        const int width = 30;
        int fill = total_ ? static_cast<int>(width * done / total_) : width;
        double secs = std::chrono::duration<double>(now - t0_).count();
        std::string bar(static_cast<std::size_t>(fill), '=');
        if (fill < width)
            bar += '>' + std::string(static_cast<std::size_t>(width - fill - 1), ' ');
        std::cout << "\r[" << bar << "] " << done << "/" << total_ << "  "
                  << fmt(secs > 0 ? static_cast<double>(done) / secs : 0, 0) << " msg/s" << std::flush;
    }
    void finish() {
        if (on_)
            std::cout << "\r\033[K" << std::flush;
    }

private:
    bool on_;
    std::size_t total_;
    clock::time_point t0_, last_{};
};

} // namespace

int cmd_replay(int argc, char** argv) {
    std::set<std::string> with_value{"--to", "--concurrency", "--rate", "--wait-for", "--timeout-ms", "--expect",
                                     "--write-expected"};
    with_value.insert(config_options.begin(), config_options.end());
    auto a = parse_args(argc, argv, with_value, {"--dry-run", "--verbose", "--no-progress", "--help"});
    if (!a)
        return std::cerr << "edibroker replay: " << a.error().message << "\n\n" << usage, 2;
    if (a->flags.count("--help"))
        return std::cout << usage, 0;
    const bool dry = a->flags.count("--dry-run") != 0;
    if (a->positional.empty() || (dry == a->has("--to")))
        return std::cerr << "edibroker replay: give message files or folders, and either --to URL or --dry-run\n\n"
                         << usage,
               2;
    int concurrency = 4, timeout_ms = 10000;
    double rate = 0;
    try {
        concurrency = std::stoi(a->get("--concurrency", "4"));
        timeout_ms = std::stoi(a->get("--timeout-ms", "10000"));
        rate = std::stod(a->get("--rate", "0"));
    } catch (const std::exception&) {
        return fail("--concurrency, --timeout-ms and --rate take numbers", 2);
    }
    if (concurrency < 1 || concurrency > 256 || timeout_ms < 0 || timeout_ms > 120000 || rate < 0)
        return fail("--concurrency must be 1..256, --timeout-ms 0..120000, --rate >= 0", 2);
    const std::string wait_for = a->get("--wait-for");

    auto files = collect(a->positional);
    if (!files)
        return fail(files.error());
    if (files->empty())
        return fail("no message files (*.xml) found");

    std::vector<outcome> results(files->size());
    std::vector<std::string> unreadable;
    const auto t0 = clock::now();
    std::string where;

    if (dry) {
        auto c = load_config(*a);
        if (!c)
            return fail(c.error());
        auto rules = routing::load_rules(c->rules_dir);
        if (!rules)
            return fail(rules.error());
        auto reg = load_registry(*c, nullptr);
        if (!reg)
            return fail(reg.error());
        adapter_registry factories;
        register_builtin_adapters(factories);
        xml::platform_init();
        auto v = xml::make_validator();
        if (!v)
            return fail(v.error());
        for (std::size_t i = 0; i < files->size(); ++i) {
            auto doc = read_file((*files)[i].path.string());
            if (!doc) {
                results[i].transport_error = doc.error().message;
                continue;
            }
            results[i] = dry_run_one(**v, *rules, *reg, factories, *doc, (*files)[i].path.string());
        }
        where = "dry run (rules " + c->rules_dir + ")";
    } else {
        auto url = parse_url(a->get("--to"));
        if (!url)
            return fail(url.error(), 2);
        if (auto r = io_backend_ready(); !r)
            return fail(r.error(), 1);
        where = a->get("--to");
        std::atomic<std::size_t> next{0}, done{0};
        std::mutex rate_mu;
        clock::time_point next_slot = clock::now();
        progress bar(isatty(STDOUT_FILENO) && !a->flags.count("--no-progress"), files->size());
        std::mutex bar_mu;
        auto worker = [&] {
            http_client client(*url);
            for (;;) {
                std::size_t i = next++;
                if (i >= files->size())
                    return;
                auto doc = read_file((*files)[i].path.string());
                if (!doc) {
                    results[i].transport_error = doc.error().message;
                } else {
                    if (rate > 0) {
                        clock::time_point slot;
                        {
                            std::lock_guard lk(rate_mu);
                            slot = std::max(next_slot, clock::now());
                            next_slot = slot + std::chrono::duration_cast<clock::duration>(
                                                   std::chrono::duration<double>(1.0 / rate));
                        }
                        std::this_thread::sleep_until(slot);  // pacing the load, not synchronisation
                    }
                    results[i] = send_one(client, *doc, wait_for, timeout_ms);
                }
                std::size_t d = ++done;
                std::lock_guard lk(bar_mu);
                bar.tick(d);
            }
        };
        std::vector<std::thread> threads;
        for (int t = 0; t < std::min<int>(concurrency, static_cast<int>(files->size())); ++t)
            threads.emplace_back(worker);
        for (auto& t : threads)
            t.join();
        bar.finish();
    }
    const double secs = std::chrono::duration<double>(clock::now() - t0).count();

    // Expectations.
    const std::string expect_dir = a->get("--expect"), write_dir = a->get("--write-expected");
    std::vector<std::string> differences;
    std::size_t compared = 0, matched = 0;
    for (std::size_t i = 0; i < files->size(); ++i) {
        const outcome& o = results[i];
        const std::string& name = (*files)[i].name;
        if (!write_dir.empty()) {
            fs::path p = fs::path(write_dir) / (name + ".expected");
            std::error_code ec;
            fs::create_directories(p.parent_path(), ec);
            std::ofstream out(p);
            if (!out)
                return fail("cannot write " + p.string());
            out << "# edibroker replay expectation for " << name << "\n";
            auto m = expectation_of(o, !wait_for.empty());
            for (const char* k : {"status", "state", "rule", "adapter", "error", "apprec"})
                if (m.count(k))
                    out << k << ": " << m[k] << "\n";
        }
        if (!expect_dir.empty()) {
            ++compared;
            auto exp = read_expected(fs::path(expect_dir) / (name + ".expected"));
            if (!exp) {
                differences.push_back(name + ": " + exp.error().where());
                continue;
            }
            auto actual = expectation_of(o, true);
            bool same = true;
            for (auto& [k, v] : *exp)
                if (actual[k] != v) {
                    same = false;
                    differences.push_back(name + ": " + k + ": expected '" + v + "', got '" + actual[k] + "'");
                }
            matched += same;
        }
    }

    // Per-message lines, then the summary.
    std::map<std::string, std::size_t> reject_codes;
    std::map<std::string, std::string> reject_reason;  // code -> the first reason given for it
    std::size_t accepted = 0, rejected = 0, duplicates = 0, unanswered = 0, apprecs = 0, unroutable = 0;
    std::vector<double> lat;
    for (std::size_t i = 0; i < results.size(); ++i) {
        const outcome& o = results[i];
        if (o.status == 0) {
            ++unanswered;
            std::cout << (*files)[i].name << ": not sent: " << o.transport_error << "\n";
            continue;
        }
        lat.push_back(o.latency_ms);
        duplicates += o.duplicate;
        apprecs += !o.apprec.empty();
        if (o.state == store::state::unroutable)
            ++unroutable;
        if (o.status >= 200 && o.status < 300) {
            ++accepted;
        } else {
            ++rejected;
            std::string code = o.error.empty() ? "http " + std::to_string(o.status) : o.error;
            ++reject_codes[code];
            if (!reject_reason.count(code))
                reject_reason[code] = short_reason(o.reason);
        }
        if (a->flags.count("--verbose")) {
            std::string line = (*files)[i].name + ": " + std::to_string(o.status) + " " + o.state;
            if (!o.rule.empty() || !o.adapter.empty())
                line += " rule " + (o.rule.empty() ? "-" : o.rule) + " -> " + (o.adapter.empty() ? "-" : o.adapter);
            if (!o.error.empty())
                line += " " + o.error;
            if (!o.reason.empty() && (o.status >= 300 || o.state == store::state::unroutable))
                line += ": " + o.reason;
            if (!o.apprec.empty())
                line += " (AppRec " + o.apprec + ")";
            if (o.duplicate)
                line += " [duplicate]";
            std::cout << line << "\n";
        }
    }
    std::vector<std::vector<std::string>> t;
    t.push_back({dry ? "checked" : "sent", std::to_string(results.size() - unanswered)});
    t.push_back({"accepted", std::to_string(accepted)});
    if (unroutable)
        t.push_back({"  unroutable", std::to_string(unroutable)});
    t.push_back({"rejected", std::to_string(rejected)});
    for (auto& [code, n] : reject_codes)
        t.push_back({"  " + code, std::to_string(n), reject_reason[code]});
    if (!dry)
        t.push_back({"duplicates", std::to_string(duplicates)});
    if (unanswered)
        t.push_back({"not sent", std::to_string(unanswered)});
    t.push_back({dry ? "AppRecs it would send" : "AppRecs received", std::to_string(apprecs)});
    if (!dry) {
        t.push_back({"latency p50", fmt(percentile(lat, 0.50)) + " ms"});
        t.push_back({"latency p99", fmt(percentile(lat, 0.99)) + " ms"});
    }
    std::cout << "replay: " << results.size() << " files, " << where << ", " << fmt(secs, 2) << " s";
    if (!dry && secs > 0) {
        std::cout << " (" << fmt(static_cast<double>(results.size()) / secs) << " msg/s, concurrency " << concurrency;
        if (rate > 0)
            std::cout << ", rate limit " << fmt(rate, rate < 10 ? 1 : 0) << " msg/s";
        std::cout << ")";
    }
    std::cout << "\n";
    print_table(std::cout, t);
    if (!write_dir.empty())
        std::cout << "wrote " << results.size() << " expected files to " << write_dir << "\n";
    if (!expect_dir.empty()) {
        std::cout << "expectations: " << compared << " compared, " << matched << " match, " << compared - matched
                  << " differ\n";
        for (auto& d : differences)
            std::cout << "  " << d << "\n";
    }
    return (!differences.empty() || unanswered) ? 1 : 0;
}

} // namespace broker::tools
