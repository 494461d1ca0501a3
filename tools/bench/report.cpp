// The report: stage limits of this run → the end-to-end bound (as limits.md derives it), then the
// broker's figures of the same run, each with its ratio to the limit and its target.
//
//   broker's own CPU per message = nginx per request (HTTP in, server side) + Xerces SAX validate
//       + SQLite insert (txn256) + libcurl multi per request (HTTP out, client side) + SQLite update (txn256)
//   everything on this box = that + wrk per request (load generator) + nginx per request under curl (vendor)
//   CPU bound = cores × 1e6 / everything-on-this-box; store ceiling = 1 / (1/insert_rate + 1/update_rate)
//   end-to-end bound = the smaller.
// The same bound again from the stages run.sh measures after the broker phases ("after." rows, a
// full run), with the peak against it in the row under the peak's.
#include "stages.hpp"

#include "bench.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

namespace bench {

namespace json = boost::json;

namespace {

double num(const json::object& o, const char* k, double def = NAN) {
    auto* v = o.if_contains(k);
    if (!v)
        return def;
    if (v->is_double())
        return v->as_double();
    if (v->is_int64())
        return static_cast<double>(v->as_int64());
    if (v->is_uint64())
        return static_cast<double>(v->as_uint64());
    return def;
}

std::string str(const json::object& o, const char* k) {
    auto* v = o.if_contains(k);
    return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

std::string fixed(double v, int prec) {
    if (std::isnan(v))
        return "-";
    char b[64];
    std::snprintf(b, sizeof b, "%.*f", prec, v);
    return b;
}

struct line {
    std::string figure, value, limit, ratio, target, verdict;
};

} // namespace

int report(const std::string& in_path, const std::string& json_out, int cores) {
    std::ifstream in(in_path);
    if (!in) {
        std::cerr << "report: cannot read " << in_path << "\n";
        return 2;
    }
    std::map<std::string, json::object> rows;
    json::array stage_rows;
    std::string text;
    while (std::getline(in, text)) {
        if (text.empty() || text[0] != '{')
            continue;
        boost::system::error_code ec;
        json::value v = json::parse(text, ec);
        if (ec || !v.is_object())
            continue;
        auto& o = v.as_object();
        std::string name = str(o, "name");
        if (name.empty())
            continue;
        if (name.rfind("broker.", 0) != 0 && name.rfind("meta", 0) != 0 && name.rfind("probe.", 0) != 0)
            stage_rows.push_back(o);
        rows[name] = o;
    }
    auto get = [&](const std::string& n, const char* k) {
        auto it = rows.find(n);
        return it == rows.end() ? NAN : num(it->second, k);
    };

    // ---- derived bound, from the stage rows named 'prefix' + stage ("" for the stage phase,
    // "after." for the stages run.sh measures again after the broker phases)
    struct bound_figures {
        double http_in_server, load_gen, validate, insert, update, http_out, vendor;
        double broker_floor, box_floor, cpu_bound_broker, cpu_bound_box, store_ceiling, store_ceiling_txn1, bound;
        const char* binds;
    };
    auto bound_of = [&](const std::string& prefix) {
        bound_figures b{};
        b.http_in_server = get(prefix + "http.wrk.t1c16", "server_cpu_us_per_op");
        b.load_gen = get(prefix + "http.wrk.t1c16", "cpu_us_per_op");
        b.validate = get(prefix + "xerces.sax.validate", "cpu_us_per_op");
        b.insert = get(prefix + "sqlite.insert.full.txn256", "cpu_us_per_op");
        b.update = get(prefix + "sqlite.update.full.txn256", "cpu_us_per_op");
        b.http_out = get(prefix + "curl.multi16", "cpu_us_per_op");
        b.vendor = get(prefix + "curl.multi16", "server_cpu_us_per_op");
        b.broker_floor = b.http_in_server + b.validate + b.insert + b.http_out + b.update;
        b.box_floor = b.broker_floor + b.load_gen + b.vendor;
        b.cpu_bound_broker = cores * 1e6 / b.broker_floor;
        b.cpu_bound_box = cores * 1e6 / b.box_floor;
        const double ins_rate = get(prefix + "sqlite.insert.full.txn256", "value");
        const double upd_rate = get(prefix + "sqlite.update.full.txn256", "value");
        b.store_ceiling = 1 / (1 / ins_rate + 1 / upd_rate);
        b.store_ceiling_txn1 = 1 / (1 / get(prefix + "sqlite.insert.full.txn1", "value") +
                                    1 / get(prefix + "sqlite.update.full.txn1", "value"));
        b.bound = std::fmin(b.cpu_bound_box, b.store_ceiling);
        b.binds = b.cpu_bound_box <= b.store_ceiling ? "CPU (all stages share the cores)" : "the store (one writer)";
        return b;
    };
    const bound_figures first = bound_of("");
    const bound_figures after = bound_of("after.");
    const bool have_after = !std::isnan(after.bound);
    const double bound = first.bound;

    // The machine's speed around the broker phases against the stage phase (run.sh runs the Xerces
    // stage again for a second just before the broker starts and just after it stops): a VM's
    // cores can run slower or faster for minutes, invisible to the guest's load figures, and the
    // ratios compare figures measured minutes apart.
    const double xerces_rate = get("xerces.sax.validate", "value");
    const double speed_before = get("probe.xerces.before", "value") / xerces_rate;
    const double speed_after = get("probe.xerces.after", "value") / xerces_rate;
    // More than this far from 1 and the run's ratios compare figures measured at different speeds.
    constexpr double speed_tolerance = 0.15;
    auto off = [&](double s) { return !std::isnan(s) && std::fabs(s - 1) > speed_tolerance; };
    const bool drifted = off(speed_before) || off(speed_after);

    // Latency floors: the HTTP hop at 64 connections + a group commit of 256.
    const double floor_p50 = get("http.wrk.t1c64", "lat_p50_us") + get("sqlite.insert.full.txn256", "commit_p50_us");
    const double floor_p99 = get("http.wrk.t1c64", "lat_p99_us") + get("sqlite.insert.full.txn256", "commit_p99_us");

    // ---- broker figures
    const double peak_acc = get("broker.peak", "accepted_per_s");
    const double peak_del = get("broker.peak", "delivered_per_s");
    const double half_rate = get("broker.half", "rate");
    double stored = 0;
    double rss_kib = NAN;
    double broker_cpu = get("broker.peak", "watched_cpu_us_per_msg");
    bool all_checked = true;
    std::uint64_t lost = 0, dupes = 0, unexpected = 0;
    for (auto& [n, o] : rows) {
        if (n.rfind("broker.", 0) != 0)
            continue;
        stored += num(o, "accepted", 0);
        double r = num(o, "watched_peak_rss_kib");
        if (!std::isnan(r))
            rss_kib = std::isnan(rss_kib) ? r : std::fmax(rss_kib, r);
        if (auto* c = o.if_contains("checked"); !c || !c->is_bool() || !c->as_bool())
            all_checked = false;
        lost += static_cast<std::uint64_t>(num(o, "lost", 0));
        dupes += static_cast<std::uint64_t>(num(o, "duplicates", 0));
        unexpected += static_cast<std::uint64_t>(num(o, "unexpected", 0));
    }
    const bool have_broker = rows.count("broker.peak") > 0;

    std::vector<line> t;
    auto ratio = [](double v, double lim) { return std::isnan(v) || std::isnan(lim) || lim == 0 ? NAN : v / lim; };
    auto add = [&](std::string fig, double v, int vp, std::string unit, double lim, int lp, std::string target,
                   int ok) {
        line l;
        l.figure = std::move(fig);
        l.value = fixed(v, vp) + " " + unit;
        l.limit = std::isnan(lim) ? "-" : fixed(lim, lp) + " " + unit;
        l.ratio = fixed(ratio(v, lim), 2);
        l.target = std::move(target);
        l.verdict = ok < 0 ? "" : ok ? "ok" : "MISSED";
        t.push_back(std::move(l));
    };
    const std::string conns = have_broker ? fixed(get("broker.peak", "connections"), 0) : "?";
    if (have_broker) {
        double r_del = ratio(peak_del, bound);
        add("delivered durable msg/s, peak (" + conns + " senders)", peak_del, 0, "msg/s", bound, 0,
            ">= 0.60 x bound", r_del >= 0.60);
        if (have_after)
            add("  the same against the stages measured after it", peak_del, 0, "msg/s", after.bound, 0,
                ">= 0.60 x bound", ratio(peak_del, after.bound) >= 0.60);
        add("accepted durable msg/s (201 after commit), peak", peak_acc, 0, "msg/s", bound, 0, "", -1);
        add("POST -> 201 p50, peak", get("broker.peak", "ack_p50_us") / 1000, 2, "ms", floor_p50 / 1000, 2, "", -1);
        add("POST -> 201 p99, peak", get("broker.peak", "ack_p99_us") / 1000, 2, "ms", floor_p99 / 1000, 2, "", -1);
        add("POST -> delivery p50, peak", get("broker.peak", "deliver_p50_us") / 1000, 2, "ms", floor_p50 / 1000, 2, "",
            -1);
        add("POST -> delivery p99, peak", get("broker.peak", "deliver_p99_us") / 1000, 2, "ms", floor_p99 / 1000, 2, "",
            -1);
        // run.sh --sweep tries more numbers of senders for the peak; those not taken stay as
        // broker.peak.cN, shown by number of senders.
        std::vector<const json::object*> levels;
        for (auto& [n, o] : rows)
            if (n.rfind("broker.peak.c", 0) == 0)
                levels.push_back(&o);
        std::sort(levels.begin(), levels.end(), [&](const json::object* a, const json::object* b) {
            return num(*a, "connections", 0) < num(*b, "connections", 0);
        });
        for (const json::object* o : levels)
            add("accepted durable msg/s, closed loop, " + fixed(num(*o, "connections", NAN), 0) + " senders",
                num(*o, "accepted_per_s", NAN), 0, "msg/s", bound, 0, "", -1);
        if (rows.count("broker.half")) {
            double p99 = get("broker.half", "ack_p99_us") / 1000;
            add("offered rate, half of peak accepted (open loop)", half_rate, 0, "msg/s", bound, 0, "", -1);
            add("accepted msg/s at half rate", get("broker.half", "accepted_per_s"), 0, "msg/s", bound, 0, "", -1);
            add("POST -> 201 p50 at half rate", get("broker.half", "ack_p50_us") / 1000, 2, "ms", floor_p50 / 1000, 2,
                "", -1);
            add("POST -> 201 p99 at half rate", p99, 2, "ms", floor_p99 / 1000, 2, "< 20 ms", p99 < 20);
            add("POST -> delivery p99 at half rate", get("broker.half", "deliver_p99_us") / 1000, 2, "ms",
                floor_p99 / 1000, 2, "", -1);
        }
        if (rows.count("broker.fill"))
            add("accepted msg/s while filling the store to " + fixed(get("broker.fill", "accepted"), 0) +
                    " more",
                get("broker.fill", "accepted_per_s"), 0, "msg/s", bound, 0, "", -1);
        add("broker CPU per message (accept + deliver)", broker_cpu, 1, "us", first.broker_floor, 1, "", -1);
        // The same by thread, each against the stages it runs (README, "Design": threads).
        if (auto* th = rows["broker.peak"].if_contains("watched_threads_cpu_us_per_msg"); th && th->is_object()) {
            const json::object& o = th->as_object();
            struct part {
                const char* thread;
                const char* figure;
                double floor;
            };
            const part parts[] = {
                {"edb-io", "  of it: I/O threads (HTTP in, validation, intake)", first.http_in_server + first.validate},
                {"edb-store", "  of it: store writer (insert, update, commit)", first.insert + first.update},
                {"edb-http-push", "  of it: http-push thread (HTTP out)", first.http_out},
                {"edb-checkpoint", "  of it: WAL checkpointer", NAN},
                {"edb-body-sync", "  of it: body log sync thread", NAN},
            };
            double named = 0;
            for (const auto& p : parts) {
                const double v = num(o, p.thread, 0);
                named += v;
                add(p.figure, v, 1, "us", p.floor, 1, "", -1);
            }
            double all = 0;
            for (const auto& kv : o)
                all += kv.value().is_number() ? kv.value().to_number<double>() : 0;
            if (all - named >= 0.05)
                add("  of it: other threads", all - named, 1, "us", NAN, 1, "", -1);
        }
        // The kernel's part (system calls and the TCP and page-cache work they do), where the
        // results have it: the stages' limits are user + kernel alike, so no limit of its own.
        const auto kernel_part = [&](const char* field, const char* figure) {
            const double k = get("broker.peak", field);
            if (!std::isnan(k))
                add(figure, k, 1, "us", NAN, 1, "", -1);
        };
        kernel_part("watched_kernel_cpu_us_per_msg", "  of it: in the kernel (all the broker's threads)");
        add("load generator CPU per request", get("broker.peak", "client_cpu_us_per_msg"), 1, "us", first.load_gen, 1, "",
            -1);
        kernel_part("client_kernel_cpu_us_per_msg", "  of it: in the kernel");
        if (!std::isnan(get("broker.peak", "receiver_cpu_us_per_msg"))) {
            add("receiver (vendor) CPU per request", get("broker.peak", "receiver_cpu_us_per_msg"), 1, "us", first.vendor, 1,
                "", -1);
            kernel_part("receiver_kernel_cpu_us_per_msg", "  of it: in the kernel");
        }
        {
            line l;
            l.figure = "peak RSS of the broker, " + fixed(stored, 0) + " messages stored";
            l.value = fixed(rss_kib / 1024, 1) + " MB";
            l.limit = "200 MB";
            l.ratio = fixed(rss_kib / 1024 / 200, 2);
            l.target = "< 200 MB with >= 100000 stored";
            l.verdict = stored < 100000 ? "(too few stored)" : rss_kib / 1024 < 200 ? "ok" : "MISSED";
            t.push_back(l);
        }
        {
            line l;
            l.figure = "lost / duplicated / unexpected at the receiver";
            l.value = std::to_string(lost) + " / " + std::to_string(dupes) + " / " + std::to_string(unexpected);
            l.limit = "0 / 0 / 0";
            l.ratio = "-";
            l.target = "zero loss, zero duplicates";
            l.verdict = all_checked && lost == 0 && dupes == 0 ? "ok" : "MISSED";
            t.push_back(l);
        }
        // The noise: CPU that other processes took from the same cores during each phase.
        for (const char* ph : {"broker.peak", "broker.half", "broker.fill"}) {
            if (!rows.count(ph) || std::isnan(get(ph, "other_cores")))
                continue;
            line l;
            l.figure = std::string("other work on the cores during ") + (ph + 7) + " (load1 " +
                       fixed(get(ph, "load1_after"), 2) + ")";
            l.value = fixed(get(ph, "other_cores"), 2) + " cores";
            l.limit = fixed(cores, 0) + " cores";
            l.ratio = fixed(get(ph, "other_cores") / cores, 2);
            l.target = "~0 for clean figures";
            l.verdict = "";
            t.push_back(l);
        }
        // Cores left idle at the peak: closed loop, so every core idle is time the pipeline waited
        // on itself (all senders waiting for a commit, the writer for the disk) instead of working.
        if (const double idle = get("broker.peak", "machine_idle_cores"); !std::isnan(idle)) {
            const double iowait = get("broker.peak", "machine_iowait_cores");
            const double all = idle + (std::isnan(iowait) ? 0 : iowait);
            line l;
            l.figure = "cores idle during peak (nothing to run)";
            l.value = fixed(all, 2) + " cores";
            l.limit = fixed(cores, 0) + " cores";
            l.ratio = fixed(all / cores, 2);
            t.push_back(l);
            if (!std::isnan(iowait)) {
                l.figure = "  of it: while the disk had work (iowait)";
                l.value = fixed(iowait, 2) + " cores";
                l.ratio = fixed(iowait / cores, 2);
                t.push_back(l);
            }
        }
        // The group commit (edibroker's /metrics, read by the load generator around each phase): a
        // message is two write operations (its intake, its delivery's state); the writer takes at
        // most group-commit-max (256) per transaction.
        for (const char* ph : {"broker.peak", "broker.half"}) {
            const double per_s = get(ph, "store_commits_per_s");
            const double ops = get(ph, "store_ops_per_commit");
            if (std::isnan(per_s) || std::isnan(ops))
                continue;
            const bool peak = std::string(ph) == "broker.peak";
            line l;
            l.figure = std::string("store commits per second, ") + (peak ? "peak" : "half rate");
            l.value = fixed(per_s, 0) + " /s";
            l.limit = "-";
            l.ratio = "-";
            t.push_back(l);
            l.figure = "  write operations per commit (2 per message)";
            l.value = fixed(ops, 1);
            l.limit = "256";
            l.ratio = fixed(ops / 256, 2);
            t.push_back(l);
        }
        if (!std::isnan(speed_before) || !std::isnan(speed_after)) {
            line l;
            l.figure = "machine speed before / after the broker phases";
            l.value = fixed(speed_before, 2) + " / " + fixed(speed_after, 2);
            l.limit = "1 / 1";
            l.ratio = "-";
            l.target = "0.85-1.15: ratios comparable";
            l.verdict = drifted ? "DRIFTED" : "ok";
            t.push_back(l);
        }
    }

    // ---- print
    std::ostringstream out;
    if (rows.count("meta"))
        out << "\nRun " << str(rows["meta"], "started") << " (" << str(rows["meta"], "mode") << "), load average at start "
            << str(rows["meta"], "load_at_start")
            << (rows.count("meta.end") ? ", at end " + str(rows["meta.end"], "load_at_end") : std::string()) << "\n";
    out << "\nStage limits of this run (median):\n";
    out << "  " << std::string(38, '-') << "\n";
    for (auto& v : stage_rows) {
        auto& o = v.as_object();
        char b[256];
        std::snprintf(b, sizeof b, "  %-34s %10.0f %-6s cpu %6.1f us/op", str(o, "name").c_str(), num(o, "value"),
                      str(o, "unit").c_str(), num(o, "cpu_us_per_op", 0));
        out << b;
        if (!std::isnan(num(o, "server_cpu_us_per_op")))
            out << "  server " << fixed(num(o, "server_cpu_us_per_op"), 1) << " us/op";
        if (!std::isnan(num(o, "commit_p50_us")))
            out << "  commit p50/p99 " << fixed(num(o, "commit_p50_us"), 0) << "/" << fixed(num(o, "commit_p99_us"), 0)
                << " us";
        if (!std::isnan(num(o, "lat_p50_us")))
            out << "  lat p50/p99 " << fixed(num(o, "lat_p50_us"), 0) << "/" << fixed(num(o, "lat_p99_us"), 0) << " us";
        out << "  (spread " << fixed(num(o, "spread", 0) * 100, 1) << "%)\n";
    }
    out << "\nEnd-to-end bound (" << cores << " cores):\n"
        << "  broker's own CPU per message  " << fixed(first.broker_floor, 1) << " us  (http in " << fixed(first.http_in_server, 1)
        << " + validate " << fixed(first.validate, 1) << " + insert " << fixed(first.insert, 1) << " + http out "
        << fixed(first.http_out, 1) << " + update " << fixed(first.update, 1) << ")  -> " << fixed(first.cpu_bound_broker, 0)
        << " msg/s\n"
        << "  everything on this box        " << fixed(first.box_floor, 1) << " us  (+ load generator " << fixed(first.load_gen, 1)
        << " + vendor " << fixed(first.vendor, 1) << ")  -> " << fixed(first.cpu_bound_box, 0) << " msg/s\n"
        << "  store ceiling (1 writer)      " << fixed(first.store_ceiling, 0) << " msg/s with group commit 256, "
        << fixed(first.store_ceiling_txn1, 0) << " msg/s without\n"
        << "  bound                         " << fixed(bound, 0) << " msg/s, bound by " << first.binds << "\n";
    if (have_after)
        out << "  the stages again after the broker phases: CPU " << fixed(after.box_floor, 1) << " us -> "
            << fixed(after.cpu_bound_box, 0) << " msg/s, store " << fixed(after.store_ceiling, 0) << " msg/s; bound "
            << fixed(after.bound, 0) << " msg/s, bound by " << after.binds << "\n";
    if (have_broker) {
        out << "\nedibroker against the bound of the same run:\n";
        std::size_t w0 = 6, w1 = 5, w2 = 5, w3 = 5, w4 = 6;
        for (auto& l : t) {
            w0 = std::max(w0, l.figure.size());
            w1 = std::max(w1, l.value.size());
            w2 = std::max(w2, l.limit.size());
            w3 = std::max(w3, l.ratio.size());
            w4 = std::max(w4, l.target.size());
        }
        auto pad = [](const std::string& s, std::size_t w, bool right) {
            std::string sp(w > s.size() ? w - s.size() : 0, ' ');
            return right ? sp + s : s + sp;
        };
        out << "  | " << pad("figure", w0, false) << " | " << pad("value", w1, true) << " | " << pad("limit", w2, true)
            << " | " << pad("ratio", w3, true) << " | " << pad("target", w4, false) << " |        |\n";
        out << "  |" << std::string(w0 + 2, '-') << "|" << std::string(w1 + 1, '-') << ":|" << std::string(w2 + 1, '-')
            << ":|" << std::string(w3 + 1, '-') << ":|" << std::string(w4 + 2, '-') << "|--------|\n";
        for (auto& l : t)
            out << "  | " << pad(l.figure, w0, false) << " | " << pad(l.value, w1, true) << " | "
                << pad(l.limit, w2, true) << " | " << pad(l.ratio, w3, true) << " | " << pad(l.target, w4, false)
                << " | " << pad(l.verdict, 6, false) << " |\n";
        out << "  ratio = value / limit. Limits: throughput -> the end-to-end bound; latency -> the HTTP hop (wrk, 64\n"
               "  connections) + one group commit of 256 (p50 with p50, p99 with p99); CPU -> the broker's stage floor\n"
               "  (per thread: the stages it runs: wrk's server side + Xerces, SQLite insert + update, libcurl; the\n"
               "  load generator: wrk; the receiver: nginx).\n";
        if (drifted)
            out << "  DRIFTED: the machine ran at a different speed around the broker phases than in the stage phase\n"
                   "  (the Xerces stage measured again just before and after them), so this run's ratios mix speeds;\n"
                   "  run it again for a verdict.\n";
    }
    std::cout << out.str();

    // ---- JSON
    json::object doc;
    if (rows.count("meta"))
        doc["meta"] = rows["meta"];
    if (rows.count("meta.end"))
        doc["meta_end"] = rows["meta.end"];
    doc["stages"] = stage_rows;
    auto jn = [](double v) { return std::isnan(v) || std::isinf(v) ? json::value(nullptr) : json::value(v); };
    json::object d;
    d["cores"] = cores;
    d["broker_cpu_us_per_msg_floor"] = jn(first.broker_floor);
    d["box_cpu_us_per_msg_floor"] = jn(first.box_floor);
    d["cpu_bound_broker_msg_s"] = jn(first.cpu_bound_broker);
    d["cpu_bound_box_msg_s"] = jn(first.cpu_bound_box);
    d["store_ceiling_msg_s"] = jn(first.store_ceiling);
    d["store_ceiling_txn1_msg_s"] = jn(first.store_ceiling_txn1);
    d["bound_msg_s"] = jn(bound);
    d["bound_by"] = first.binds;
    d["bound_after_broker_msg_s"] = jn(after.bound);  // NaN (null) unless the stages ran again after it
    d["box_cpu_us_per_msg_floor_after_broker"] = jn(after.box_floor);
    d["store_ceiling_after_broker_msg_s"] = jn(after.store_ceiling);
    d["latency_floor_p50_us"] = jn(floor_p50);
    d["latency_floor_p99_us"] = jn(floor_p99);
    d["machine_speed_before_broker"] = jn(speed_before);  // Xerces stage rate / the stage phase's
    d["machine_speed_after_broker"] = jn(speed_after);
    d["machine_speed_drifted"] = drifted;
    doc["derived"] = d;
    json::object b;
    for (auto& [n, o] : rows)
        if (n.rfind("broker.", 0) == 0)
            b[n.substr(7)] = o;
    b["messages_stored"] = stored;
    b["peak_rss_mb"] = jn(rss_kib / 1024);
    doc["broker"] = b;
    json::array ta;
    for (auto& l : t) {
        json::object o;
        o["figure"] = l.figure;
        o["value"] = l.value;
        o["limit"] = l.limit;
        o["ratio"] = l.ratio;
        o["target"] = l.target;
        o["verdict"] = l.verdict;
        ta.push_back(o);
    }
    doc["table"] = ta;
    if (!json_out.empty()) {
        std::ofstream f(json_out);
        f << json::serialize(doc) << "\n";
        if (!f) {
            std::cerr << "report: cannot write " << json_out << "\n";
            return 2;
        }
        std::cout << "\nJSON: " << json_out << "\n";
    }
    if (have_broker && (!all_checked || lost || dupes))
        return 1;
    return 0;
}

} // namespace bench
