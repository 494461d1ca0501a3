// Stage micro-benchmarks, measured the way shared/docs/limits.md describes them, on the same
// 4 KB message the load generator sends:
//   sqlite.{insert,update}.full.txn{1,32,256}  WAL, synchronous=FULL, one writer
//   xerces.sax.validate                        SAX2 + XSD validation, cached locked grammar pool
//   xml.broker.validate                        the broker's own validator (adds fact extraction)
//   curl.multi16                               libcurl multi, 16 POSTs in flight, keep-alive
//   http.wrk.t1c16                             wrk against nginx answering 204 (the driver starts nginx)
// Each prints one JSON line: {"name", "unit", "value" (median), "runs", "spread", "cpu_us_per_op", ...}.
#include "stages.hpp"

#include "bench.hpp"

#include "broker/embedded.hpp"
#include "broker/xml.hpp"

#include <curl/curl.h>
#include <sqlite3.h>

#include <xercesc/framework/MemBufInputSource.hpp>
#include <xercesc/framework/XMLGrammarPoolImpl.hpp>
#include <xercesc/sax/EntityResolver.hpp>
#include <xercesc/sax2/DefaultHandler.hpp>
#include <xercesc/sax2/SAX2XMLReader.hpp>
#include <xercesc/sax2/XMLReaderFactory.hpp>
#include <xercesc/util/PlatformUtils.hpp>
#include <xercesc/util/XMLString.hpp>
#include <xercesc/util/XMLUni.hpp>
#include <xercesc/validators/common/Grammar.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>
#include <sstream>
#include <stdexcept>

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

namespace bench {

namespace {

std::string fmt(double v) {
    std::ostringstream o;
    o.precision(6);
    o << v;
    return o.str();
}

/// Median row over several runs of one measurement.
struct row {
    std::string name, unit, what;
    std::vector<double> values, cpu, extra_a, extra_b, server_cpu;
    std::string extra_a_name, extra_b_name;

    std::string json() const {
        double v = median(values);
        double spread = v > 0 ? (*std::max_element(values.begin(), values.end()) -
                                 *std::min_element(values.begin(), values.end())) / v
                              : 0;
        std::string s = "{\"name\":\"" + name + "\",\"unit\":\"" + unit + "\",\"value\":" + fmt(v) +
                        ",\"spread\":" + fmt(spread) + ",\"runs\":[";
        for (std::size_t i = 0; i < values.size(); ++i)
            s.append(i ? "," : "").append(fmt(values[i]));
        s += "]";
        if (!cpu.empty())
            s += ",\"cpu_us_per_op\":" + fmt(median(cpu));
        if (!server_cpu.empty())
            s += ",\"server_cpu_us_per_op\":" + fmt(median(server_cpu));
        if (!extra_a.empty())
            s += ",\"" + extra_a_name + "\":" + fmt(median(extra_a));
        if (!extra_b.empty())
            s += ",\"" + extra_b_name + "\":" + fmt(median(extra_b));
        s += ",\"what\":\"" + what + "\"}";
        return s;
    }
};

// ------------------------------------------------------------------------------------------------
// SQLite

struct sqlite_db {
    sqlite3* db = nullptr;
    ~sqlite_db() {
        if (db)
            sqlite3_close_v2(db);
    }
    void exec(const char* sql) {
        char* err = nullptr;
        if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
            std::string e = err ? err : "?";
            sqlite3_free(err);
            throw std::runtime_error(std::string("sqlite: ") + sql + ": " + e);
        }
    }
};

struct stmt {
    sqlite3_stmt* s = nullptr;
    stmt(sqlite3* db, const char* sql) {
        if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr) != SQLITE_OK)
            throw std::runtime_error(std::string("sqlite prepare: ") + sqlite3_errmsg(db));
    }
    ~stmt() { sqlite3_finalize(s); }
    void done(sqlite3* db) {
        if (sqlite3_step(s) != SQLITE_DONE)
            throw std::runtime_error(std::string("sqlite step: ") + sqlite3_errmsg(db));
        sqlite3_reset(s);
    }
};

void open_db(sqlite_db& d, const std::string& path, const char* sync) {
    std::filesystem::remove(path);
    std::filesystem::remove(path + "-wal");
    std::filesystem::remove(path + "-shm");
    if (sqlite3_open(path.c_str(), &d.db) != SQLITE_OK)
        throw std::runtime_error("cannot open " + path);
    d.exec("PRAGMA journal_mode=WAL");
    d.exec((std::string("PRAGMA synchronous=") + sync).c_str());
    d.exec("CREATE TABLE msg(id TEXT PRIMARY KEY, receiver TEXT NOT NULL, state TEXT NOT NULL, body BLOB NOT NULL)");
}

struct sqlite_result {
    double rate = 0, cpu_us = 0, commit_p50 = 0, commit_p99 = 0;
};

/// Inserts (or updates of 'rows' existing rows) in transactions of 'txn', for 'secs' seconds.
sqlite_result sqlite_run(const std::string& path, bool update, int txn, double secs, const std::string& body) {
    sqlite_db d;
    open_db(d, path, "FULL");
    char id[msg_id_len + 1] = {};
    const int rows = 20000;
    std::uint32_t seq = 0;
    if (update) {
        d.exec("PRAGMA synchronous=OFF");
        d.exec("BEGIN");
        stmt ins(d.db, "INSERT INTO msg(id, receiver, state, body) VALUES(?1, '9100110', 'routed', ?2)");
        for (int i = 0; i < rows; ++i) {
            make_msg_id(id, 1, 0, static_cast<std::uint32_t>(i), 0);
            sqlite3_bind_text(ins.s, 1, id, msg_id_len, SQLITE_STATIC);
            sqlite3_bind_blob(ins.s, 2, body.data(), static_cast<int>(body.size()), SQLITE_STATIC);
            ins.done(d.db);
        }
        d.exec("COMMIT");
        d.exec("PRAGMA wal_checkpoint(TRUNCATE)");
        d.exec("PRAGMA synchronous=FULL");
    }
    stmt begin(d.db, "BEGIN"), commit(d.db, "COMMIT");
    stmt ins(d.db, "INSERT INTO msg(id, receiver, state, body) VALUES(?1, '9100110', 'received', ?2)");
    stmt upd(d.db, "UPDATE msg SET state = ?2 WHERE id = ?1");
    std::vector<std::uint32_t> commit_us;
    std::uint64_t ops = 0;
    const std::int64_t cpu0 = thread_cpu_us(), t0 = mono_us(), end = t0 + static_cast<std::int64_t>(secs * 1e6);
    std::uint32_t rnd = 12345;
    while (mono_us() < end) {
        begin.done(d.db);
        for (int i = 0; i < txn; ++i, ++ops) {
            if (update) {
                rnd = rnd * 1103515245u + 12345u;
                make_msg_id(id, 1, 0, (rnd >> 8) % rows, 0);
                sqlite3_bind_text(upd.s, 1, id, msg_id_len, SQLITE_STATIC);
                sqlite3_bind_text(upd.s, 2, (ops & 1) ? "delivered" : "routed", -1, SQLITE_STATIC);
                upd.done(d.db);
            } else {
                make_msg_id(id, 2, 0, seq++, 0);
                sqlite3_bind_text(ins.s, 1, id, msg_id_len, SQLITE_STATIC);
                sqlite3_bind_blob(ins.s, 2, body.data(), static_cast<int>(body.size()), SQLITE_STATIC);
                ins.done(d.db);
            }
        }
        const std::int64_t c0 = mono_us();
        commit.done(d.db);
        commit_us.push_back(static_cast<std::uint32_t>(mono_us() - c0));
    }
    const std::int64_t t1 = mono_us(), cpu1 = thread_cpu_us();
    sqlite_result r;
    r.rate = static_cast<double>(ops) * 1e6 / static_cast<double>(t1 - t0);
    r.cpu_us = static_cast<double>(cpu1 - cpu0) / static_cast<double>(ops);
    r.commit_p50 = percentile(commit_us, 50);
    r.commit_p99 = percentile(commit_us, 99);
    return r;
}

// ------------------------------------------------------------------------------------------------
// Xerces

namespace xc = XERCES_CPP_NAMESPACE;

std::string to_utf8(const XMLCh* s) {
    if (!s)
        return {};
    char* c = xc::XMLString::transcode(s);
    std::string out = c ? c : "";
    xc::XMLString::release(&c);
    return out;
}

/// Serves the embedded XSDs by file name.
class embedded_resolver : public xc::EntityResolver {
public:
    xc::InputSource* resolveEntity(const XMLCh* const, const XMLCh* const system_id) override {
        std::string want = to_utf8(system_id);
        auto slash = want.find_last_of('/');
        if (slash != std::string::npos)
            want = want.substr(slash + 1);
        for (const auto& f : broker::schemas::files())
            if (f.name == want) {
                auto* src = new xc::MemBufInputSource(reinterpret_cast<const XMLByte*>(f.content.data()),
                                                      f.content.size(), want.c_str(), false);
                return src;
            }
        return nullptr;
    }
};

class counting_handler : public xc::DefaultHandler {
public:
    void error(const xc::SAXParseException&) override { ++errors; }
    void fatalError(const xc::SAXParseException&) override { ++errors; }
    void warning(const xc::SAXParseException&) override {}
    void startElement(const XMLCh* const, const XMLCh* const, const XMLCh* const, const xc::Attributes&) override {
        ++elements;
    }
    int errors = 0;
    int elements = 0;
};

/// A SAX2 reader over a locked pool with the message schemas, validating, as the broker's.
struct sax_validator {
    std::unique_ptr<xc::XMLGrammarPoolImpl> pool;
    std::unique_ptr<xc::SAX2XMLReader> reader;
    embedded_resolver resolver;
    counting_handler handler;

    sax_validator() {
        pool = std::make_unique<xc::XMLGrammarPoolImpl>(xc::XMLPlatformUtils::fgMemoryManager);
        reader.reset(xc::XMLReaderFactory::createXMLReader(xc::XMLPlatformUtils::fgMemoryManager, pool.get()));
        reader->setFeature(xc::XMLUni::fgSAX2CoreNameSpaces, true);
        reader->setFeature(xc::XMLUni::fgSAX2CoreValidation, true);
        reader->setFeature(xc::XMLUni::fgXercesDynamic, false);
        reader->setFeature(xc::XMLUni::fgXercesSchema, true);
        reader->setFeature(xc::XMLUni::fgXercesLoadSchema, false);
        reader->setFeature(xc::XMLUni::fgXercesHandleMultipleImports, true);
        reader->setFeature(xc::XMLUni::fgXercesDisableDefaultEntityResolution, true);
        reader->setFeature(xc::XMLUni::fgXercesCacheGrammarFromParse, true);
        reader->setFeature(xc::XMLUni::fgXercesUseCachedGrammarInParse, true);
        reader->setEntityResolver(&resolver);
        reader->setErrorHandler(&handler);
        for (const char* name : {"MsgHead-v1_2.xsd", "dialogmelding-v1.0.xsd", "dialogmelding-v1.1.xsd",
                                 "kith-base64.xsd"}) {
            const broker::embedded_file* f = nullptr;
            for (const auto& e : broker::schemas::files())
                if (e.name == name)
                    f = &e;
            if (!f)
                throw std::runtime_error(std::string("schema ") + name + " is not embedded");
            xc::MemBufInputSource src(reinterpret_cast<const XMLByte*>(f->content.data()), f->content.size(), name,
                                      false);
            if (!reader->loadGrammar(src, xc::Grammar::SchemaGrammarType, true) || handler.errors)
                throw std::runtime_error(std::string("schema ") + name + " does not load");
        }
        pool->lockPool();
        reader->setFeature(xc::XMLUni::fgXercesCacheGrammarFromParse, false);
        reader->setContentHandler(&handler);
    }
    ~sax_validator() {
        reader.reset();
        pool.reset();
    }
    /// Number of errors.
    int parse(const std::string& doc) {
        handler.errors = 0;
        handler.elements = 0;
        xc::MemBufInputSource src(reinterpret_cast<const XMLByte*>(doc.data()), doc.size(), "message", false);
        try {
            reader->parse(src);
        } catch (...) {
            return handler.errors + 1;
        }
        return handler.errors;
    }
};

struct run_opts {
    int runs = 3;
    double secs = 2;
};

void self_check(bool ok, const std::string& what) {
    if (!ok)
        throw std::runtime_error("self-check failed: " + what);
}

template <class F>
void timed_runs(row& r, const run_opts& o, F&& one) {
    for (int i = 0; i < o.runs; ++i) {
        std::uint64_t ops = 0;
        const std::int64_t cpu0 = thread_cpu_us(), t0 = mono_us(), end = t0 + static_cast<std::int64_t>(o.secs * 1e6);
        while (mono_us() < end) {
            for (int k = 0; k < 16; ++k)
                one();
            ops += 16;
        }
        const std::int64_t t1 = mono_us(), cpu1 = thread_cpu_us();
        r.values.push_back(static_cast<double>(ops) * 1e6 / static_cast<double>(t1 - t0));
        r.cpu.push_back(static_cast<double>(cpu1 - cpu0) / static_cast<double>(ops));
    }
}

// ------------------------------------------------------------------------------------------------
// libcurl multi

struct curl_result {
    double rate = 0, cpu_us = 0, server_cpu_us = 0;
    std::uint64_t bad = 0;
};

size_t discard(char*, size_t size, size_t n, void*) { return size * n; }

curl_result curl_multi_run(const std::string& url, int inflight, double secs, const std::string& body, int server_pid) {
    CURLM* multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, static_cast<long>(inflight));
    curl_slist* headers = nullptr;
    headers = curl_slist_append(headers, "Content-Type: application/xml");
    headers = curl_slist_append(headers, "Expect:");
    std::vector<CURL*> easy(static_cast<std::size_t>(inflight));
    auto start = [&](CURL* e) {
        curl_easy_setopt(e, CURLOPT_URL, url.c_str());
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body.data());
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &discard);
        curl_multi_add_handle(multi, e);
    };
    for (auto& e : easy) {
        e = curl_easy_init();
        start(e);
    }
    curl_result r;
    std::uint64_t done = 0;
    const std::int64_t scpu0 = server_pid > 0 ? pid_cpu_us(server_pid) : 0;
    const std::int64_t cpu0 = process_cpu_us(), t0 = mono_us(), end = t0 + static_cast<std::int64_t>(secs * 1e6);
    int running = inflight;
    bool stopping = false;
    while (running > 0) {
        curl_multi_perform(multi, &running);
        int left = 0;
        while (CURLMsg* m = curl_multi_info_read(multi, &left)) {
            if (m->msg != CURLMSG_DONE)
                continue;
            long status = 0;
            curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
            if (m->data.result != CURLE_OK || status < 200 || status >= 300)
                ++r.bad;
            ++done;
            CURL* e = m->easy_handle;
            curl_multi_remove_handle(multi, e);
            if (!stopping && mono_us() < end) {
                curl_multi_add_handle(multi, e);
                ++running;
            }
        }
        stopping = stopping || mono_us() >= end;
        if (running > 0)
            curl_multi_poll(multi, nullptr, 0, 100, nullptr);
    }
    const std::int64_t t1 = mono_us(), cpu1 = process_cpu_us();
    const std::int64_t scpu1 = server_pid > 0 ? pid_cpu_us(server_pid) : 0;
    for (auto* e : easy)
        curl_easy_cleanup(e);
    curl_slist_free_all(headers);
    curl_multi_cleanup(multi);
    r.rate = static_cast<double>(done) * 1e6 / static_cast<double>(t1 - t0);
    r.cpu_us = static_cast<double>(cpu1 - cpu0) / static_cast<double>(std::max<std::uint64_t>(done, 1));
    r.server_cpu_us = static_cast<double>(scpu1 - scpu0) / static_cast<double>(std::max<std::uint64_t>(done, 1));
    return r;
}

// ------------------------------------------------------------------------------------------------
// wrk

/// "151.00us" / "1.11ms" / "2.00s" → microseconds.
double wrk_time_us(const std::string& s) {
    double v = std::atof(s.c_str());
    if (s.find("us") != std::string::npos)
        return v;
    if (s.find("ms") != std::string::npos)
        return v * 1000;
    if (s.find('m') != std::string::npos)
        return v * 60e6;
    return v * 1e6;
}

struct wrk_result {
    double rate = 0, cpu_us = 0, server_cpu_us = 0, p50 = 0, p99 = 0;
    std::uint64_t non2xx = 0;
};

wrk_result wrk_run(const std::string& wrk, const std::string& script, const std::string& url, int threads, int conns,
                   double secs, int server_pid) {
    int fds[2];
    if (pipe(fds) != 0)
        throw std::runtime_error("pipe failed");
    const std::int64_t scpu0 = server_pid > 0 ? pid_cpu_us(server_pid) : 0;
    // wrk's arguments are built before fork(): the child may only make async-signal-safe calls.
    const std::string t = "-t" + std::to_string(threads), c = "-c" + std::to_string(conns),
                      d = "-d" + std::to_string(static_cast<int>(secs + 0.5)) + "s", s = "-s";
    pid_t pid = fork();
    if (pid < 0)
        throw std::runtime_error("fork failed");
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execlp(wrk.c_str(), wrk.c_str(), t.c_str(), c.c_str(), d.c_str(), "--latency", s.c_str(), script.c_str(),
               url.c_str(), static_cast<char*>(nullptr));
        _exit(127);
    }
    close(fds[1]);
    std::string out;
    char buf[4096];
    for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR);)
        if (n > 0)
            out.append(buf, static_cast<std::size_t>(n));
    close(fds[0]);
    int status = 0;
    rusage ru{};
    wait4(pid, &status, 0, &ru);
    const std::int64_t scpu1 = server_pid > 0 ? pid_cpu_us(server_pid) : 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        throw std::runtime_error("wrk failed: " + out);
    wrk_result r;
    std::istringstream in(out);
    std::string line;
    std::uint64_t requests = 0;
    while (std::getline(in, line)) {
        std::istringstream ls(line);
        std::string a, b;
        ls >> a >> b;
        if (a == "Requests/sec:")
            r.rate = std::atof(b.c_str());
        else if (a == "50%")
            r.p50 = wrk_time_us(b);
        else if (a == "99%")
            r.p99 = wrk_time_us(b);
        else if (a == "Non-2xx")
            r.non2xx = std::strtoull(line.substr(line.find(':') + 1).c_str(), nullptr, 10);
        else if (line.find("requests in") != std::string::npos)
            requests = std::strtoull(a.c_str(), nullptr, 10);
    }
    if (requests == 0 || r.rate <= 0)
        throw std::runtime_error("cannot read wrk's output: " + out);
    auto us = [](const timeval& tv) { return static_cast<double>(tv.tv_sec) * 1e6 + static_cast<double>(tv.tv_usec); };
    r.cpu_us = (us(ru.ru_utime) + us(ru.ru_stime)) / static_cast<double>(requests);
    r.server_cpu_us = static_cast<double>(scpu1 - scpu0) / static_cast<double>(requests);
    return r;
}

} // namespace

// ------------------------------------------------------------------------------------------------

int stage_sqlite(const std::string& dir, int runs, double secs) {
    const std::string body = dialog_message(4096).doc;
    const std::string path = dir + "/bench-sqlite.db";
    pin_to_cpu(0);
    for (bool update : {false, true}) {
        for (int txn : {1, 32, 256}) {
            row r;
            r.name = std::string("sqlite.") + (update ? "update" : "insert") + ".full.txn" + std::to_string(txn);
            r.unit = "msg/s";
            r.what = update ? "UPDATE state WHERE id on a 20k-row table, WAL, synchronous=FULL, " + std::to_string(txn) +
                                  " per transaction"
                            : "INSERT id/receiver/state/4 KB blob, WAL, synchronous=FULL, " + std::to_string(txn) +
                                  " per transaction";
            r.extra_a_name = "commit_p50_us";
            r.extra_b_name = "commit_p99_us";
            for (int i = 0; i < runs; ++i) {
                auto x = sqlite_run(path, update, txn, secs, body);
                r.values.push_back(x.rate);
                r.cpu.push_back(x.cpu_us);
                r.extra_a.push_back(x.commit_p50);
                r.extra_b.push_back(x.commit_p99);
            }
            std::cout << r.json() << std::endl;
        }
    }
    for (const char* suffix : {"", "-wal", "-shm"})
        std::filesystem::remove(path + suffix);
    return 0;
}

int stage_xml(int runs, double secs, const std::string& probe) {
    xc::XMLPlatformUtils::Initialize();
    const std::string doc = dialog_message(4096).doc;
    pin_to_cpu(0);
    {
        sax_validator v;
        // Self-checks: the message validates; an unknown element in the Dialogmelding body does not.
        self_check(v.parse(doc) == 0, "the 4 KB message does not validate");
        std::string bad = doc;
        auto p = bad.find("<Sporsmal>");
        bad.insert(p, "<Unknown/>");
        self_check(v.parse(bad) > 0, "an unknown element in the Dialogmelding body is not rejected");
        row r;
        r.name = probe.empty() ? "xerces.sax.validate" : probe;
        r.unit = "msg/s";
        r.what = "SAX2 + XSD validation (MsgHead + Dialogmelding 1.1), locked cached grammar pool, one reused parser, one core";
        timed_runs(r, run_opts{runs, secs}, [&] { (void)v.parse(doc); });
        std::cout << r.json() << std::endl;
    }
    if (!probe.empty())
        return 0;
    {
        broker::xml::platform_init();
        auto v = broker::xml::make_validator();
        if (!v)
            throw std::runtime_error("broker validator: " + v.error().message);
        self_check((*v)->validate(doc).v == broker::xml::verdict::valid, "the broker's validator rejects the message");
        row r;
        r.name = "xml.broker.validate";
        r.unit = "msg/s";
        r.what = "the broker's validator: SAX2 + XSD + fact extraction (what intake runs), one core";
        timed_runs(r, run_opts{runs, secs}, [&] { (void)(*v)->validate(doc); });
        std::cout << r.json() << std::endl;
    }
    return 0;
}

int stage_curl(const std::string& url, int runs, double secs, int server_pid) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const std::string body = dialog_message(4096).doc;
    row r;
    r.name = "curl.multi16";
    r.unit = "req/s";
    r.what = "libcurl multi, 16 POSTs of 4 KB in flight over kept-alive connections to the loopback nginx (204)";
    for (int i = 0; i < runs; ++i) {
        auto x = curl_multi_run(url, 16, secs, body, server_pid);
        if (x.bad)
            throw std::runtime_error("curl: " + std::to_string(x.bad) + " requests failed against " + url);
        r.values.push_back(x.rate);
        r.cpu.push_back(x.cpu_us);
        r.server_cpu.push_back(x.server_cpu_us);
    }
    std::cout << r.json() << std::endl;
    return 0;
}

int stage_wrk(const std::string& wrk, const std::string& script, const std::string& url, int runs, double secs,
              int server_pid) {
    for (auto [threads, conns] : {std::pair{1, 16}, std::pair{1, 64}}) {
        row r;
        r.name = "http.wrk.t" + std::to_string(threads) + "c" + std::to_string(conns);
        r.unit = "req/s";
        r.what = "wrk " + std::to_string(threads) + " thread, " + std::to_string(conns) +
                 " keep-alive connections, 4 KB POST -> nginx 1 worker 'return 204'";
        r.extra_a_name = "lat_p50_us";
        r.extra_b_name = "lat_p99_us";
        for (int i = 0; i < runs; ++i) {
            auto x = wrk_run(wrk, script, url, threads, conns, secs, server_pid);
            if (x.non2xx)
                throw std::runtime_error("wrk: non-2xx answers from nginx");
            r.values.push_back(x.rate);
            r.cpu.push_back(x.cpu_us);
            r.server_cpu.push_back(x.server_cpu_us);
            r.extra_a.push_back(x.p50);
            r.extra_b.push_back(x.p99);
        }
        std::cout << r.json() << std::endl;
    }
    return 0;
}

} // namespace bench
