// The notifier: planning notifications after intake, the sender threads, read notices, and the
// REST endpoints /Consents/{patientId} and /Messages/{id}/notifications. See notify.hpp.
#include "digihelse/notify.hpp"

#include "broker/log.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <charconv>
#include <random>

namespace broker::digihelse {

namespace asio = boost::asio;
namespace json = boost::json;
namespace http = boost::beast::http;
using store::sql_value;
using store::iso_time;

namespace {

std::vector<std::string> split(std::string_view s, char sep) {
    std::vector<std::string> out;
    while (true) {
        auto p = s.find(sep);
        auto part = s.substr(0, p);
        while (!part.empty() && part.front() == ' ')
            part.remove_prefix(1);
        while (!part.empty() && part.back() == ' ')
            part.remove_suffix(1);
        if (!part.empty())
            out.emplace_back(part);
        if (p == std::string_view::npos)
            break;
        s.remove_prefix(p + 1);
    }
    return out;
}

http_extension::response json_response(unsigned status, std::string body) {
    http_extension::response r{static_cast<http::status>(status), 11};
    r.set(http::field::server, "edibroker");
    if (!body.empty())
        r.set(http::field::content_type, "application/json");
    r.body() = std::move(body);
    return r;
}

http_extension::response error_response(unsigned status, std::string_view code, std::string_view message) {
    return json_response(status, json::serialize(error_body(code, message)));
}

std::string text_of(const sql_value& v) {
    auto* s = std::get_if<std::string>(&v);
    return s ? *s : std::string();
}
std::int64_t int_of(const sql_value& v) {
    auto* n = std::get_if<std::int64_t>(&v);
    return n ? *n : 0;
}

// Planning: one row per consenting person and chosen channel, with the address as stored now.
constexpr const char* plan_email_sql =
    "INSERT OR IGNORE INTO notifications(id, message_id, patient_id, person_id, role, channel, address, subject,"
    " body, state, attempts, next_attempt_at, created_at, updated_at)"
    " SELECT lower(hex(randomblob(16))), ?1, patient_id, person_id, role, 'email', email_address, ?2, ?3,"
    " 'queued', 0, 0, ?4, ?4 FROM consents"
    " WHERE patient_id = ?5 AND consent = 1 AND email = 1 AND email_address IS NOT NULL";
constexpr const char* plan_sms_sql =
    "INSERT OR IGNORE INTO notifications(id, message_id, patient_id, person_id, role, channel, address, subject,"
    " body, state, attempts, next_attempt_at, created_at, updated_at)"
    " SELECT lower(hex(randomblob(16))), ?1, patient_id, person_id, role, 'sms', phone, NULL, ?3,"
    " 'queued', 0, 0, ?4, ?4 FROM consents"
    " WHERE patient_id = ?5 AND consent = 1 AND sms = 1 AND phone IS NOT NULL AND ?2 IS NOT NULL";
constexpr const char* due_sql =
    "SELECT id, message_id, address, subject, body, attempts FROM notifications INDEXED BY ix_notifications_due"
    " WHERE channel = ?1 AND state IN ('queued', 'retrying') AND next_attempt_at <= ?2"
    " ORDER BY next_attempt_at LIMIT 16";
constexpr const char* list_sql =
    "SELECT id, channel, role, state, attempts, next_attempt_at, last_error, created_at, updated_at, sent_at"
    " FROM notifications WHERE message_id = ?1 ORDER BY created_at, channel, role DESC";

} // namespace

notifier::notifier(const config& cfg, store::store& st, engine& eng, asio::any_io_executor ex)
    : cfg_(cfg), store_(st), engine_(eng), ex_(std::move(ex)) {
    for (auto& h : split(cfg_.read_notice_her_ids, ','))
        read_notice_to_.insert(h);
}

notifier::~notifier() { stop(); }

result<void> notifier::init() {
    if (cfg_.consents_file.empty())
        return {};
    auto n = import_consents_file(store_, cfg_.consents_file);
    if (!n)
        return n.error();
    log::info("consents.imported", {{"file", cfg_.consents_file}, {"patients", std::to_string(*n)}});
    return {};
}

void notifier::recover() {
    // Visit notices of the last day that were stored but never planned (a stop in between).
    const store::millis since = store::now_ms() - 24LL * 3600 * 1000;
    auto& rd = store_.thread_reader();
    auto rows = rd.sql_query(
        "SELECT id FROM messages WHERE msg_type = ?1 AND received_at >= ?2"
        " AND state <> 'rejected' AND id NOT IN (SELECT message_id FROM notify_plans) LIMIT 1000",
        {sql_value{std::string(visit_notice_type)}, sql_value{since}});
    if (!rows) {
        log::warn("notify.recover-failed", {{"reason", rows.error().message}});
        return;
    }
    for (auto& r : *rows) {
        const std::string id = text_of(r[0]);
        auto body = rd.body(id);
        if (!body || !*body)
            continue;
        auto row = rd.get(id);
        if (!row || !*row || (*row)->content_ns != visit_notice_ns)
            continue;
        log::info("notify.recover", {{"id", id}});
        plan(id, std::make_shared<const std::string>(std::move(**body)));
    }
}

void notifier::start() {
    recover();
    if (!cfg_.smtp_url.empty())
        threads_.emplace_back([this] { sender_loop("email"); });
    if (!cfg_.sms_gateway_url.empty())
        threads_.emplace_back([this] { sender_loop("sms"); });
}

void notifier::stop() {
    std::vector<std::shared_ptr<asio::steady_timer>> timers;
    {
        std::lock_guard lk(mu_);
        if (stopped_)
            return;
        stopped_ = true;
        stopping_ = true;
        ++wake_seq_;
        for (auto& [id, t] : watchers_)
            timers.push_back(t);
        watchers_.clear();
    }
    cv_.notify_all();
    for (auto& t : threads_)
        t.join();
    threads_.clear();
    for (auto& t : timers)
        asio::post(t->get_executor(), [t] { t->cancel(); });
}

void notifier::wake() {
    {
        std::lock_guard lk(mu_);
        ++wake_seq_;
    }
    cv_.notify_all();
}

void notifier::changed(const std::string& message_id) {
    std::vector<std::shared_ptr<asio::steady_timer>> wake;
    {
        std::lock_guard lk(mu_);
        auto [b, e] = watchers_.equal_range(message_id);
        for (auto it = b; it != e; ++it)
            wake.push_back(it->second);
        watchers_.erase(b, e);
    }
    for (auto& t : wake)
        asio::post(t->get_executor(), [t] { t->cancel(); });
}

store::millis notifier::backoff(int attempt) const {
    thread_local std::mt19937 rng{std::random_device{}()};
    double d = cfg_.notify_retry_base_ms;
    for (int i = 1; i < attempt && d < cfg_.notify_retry_max_ms; ++i)
        d *= 2;
    if (d > cfg_.notify_retry_max_ms)
        d = cfg_.notify_retry_max_ms;
    std::uniform_real_distribution<double> jitter(0.8, 1.2);
    return static_cast<store::millis>(d * jitter(rng));
}

// ------------------------------------------------------------------------------------------------
// visit notices -> notifications

void notifier::stored(const std::string& id, const message_facts& f, const std::shared_ptr<const std::string>& document,
                      std::string_view state) {
    if (state == store::state::rejected || f.content_ns != visit_notice_ns || !document)
        return;
    plan(id, document);
}

void notifier::plan(const std::string& id, const std::shared_ptr<const std::string>& document) {
    auto v = parse_visit_notice(*document);
    if (!v) {
        log::warn("notify.unreadable", {{"id", id}, {"reason", v.error().message}});
        return;
    }
    if (v->status != "carried-out")
        return;
    const bool email_on = !cfg_.smtp_url.empty(), sms_on = !cfg_.sms_gateway_url.empty();
    if (!email_on && !sms_on) {
        log::info("notify.off", {{"id", id}, {"reason", "neither smtp-url nor sms-gateway-url is configured"}});
        return;
    }
    std::string service = v->service_name;
    if (auto rs = engine_.routing(); rs)
        if (const store::party* p = rs->registry.find(v->service_her); p && !p->name.empty())
            service = p->name;
    if (service.empty())
        service = cfg_.notify_language == "en" ? "the home-care service" : "hjemmetjenesten";
    auto when = local_time_text(v->carried_out_at, cfg_.notify_language);
    if (!when) {
        log::warn("notify.unreadable", {{"id", id}, {"reason", when.error().message}});
        return;
    }
    notice_text text = visit_text(service, *when, cfg_.notify_language);
    auto counts = std::make_shared<std::pair<std::int64_t, std::int64_t>>(0, 0);
    store::write_op op = [id, text, patient = v->patient_id, email_on, sms_on,
                          counts](store::write_txn& t) -> result<void> {
        const store::millis now = store::now_ms();
        if (email_on) {
            auto n = t.sql_exec(plan_email_sql,
                                {sql_value{id}, sql_value{text.subject}, sql_value{text.body}, sql_value{now},
                                 sql_value{patient}});
            if (!n)
                return n.error();
            counts->first = *n;
        }
        if (auto m = t.sql_exec("INSERT OR IGNORE INTO notify_plans(message_id, planned_at) VALUES(?1, ?2)",
                                {sql_value{id}, sql_value{now}});
            !m)
            return m.error();
        if (sms_on) {
            auto n = t.sql_exec(plan_sms_sql, {sql_value{id}, sql_value{std::string("on")}, sql_value{text.body},
                                               sql_value{now}, sql_value{patient}});
            if (!n)
                return n.error();
            counts->second = *n;
        }
        return {};
    };
    auto done = [this, id, counts](result<void> r) {
        if (!r) {
            log::error("notify.plan-failed", {{"id", id}, {"reason", r.error().message}});
            return;
        }
        log::info("notify.planned",
                  {{"id", id}, {"email", std::to_string(counts->first)}, {"sms", std::to_string(counts->second)}});
        wake();
        changed(id);
    };
    if (auto s = store_.submit(std::move(op), done); !s)
        log::error("notify.plan-failed", {{"id", id}, {"reason", s.error().message}});
}

void notifier::sender_loop(std::string channel) {
    log::info("notify.sender-started", {{"channel", channel}});
    while (!stopping_) {
        std::uint64_t seq;
        {
            std::lock_guard lk(mu_);
            seq = wake_seq_;
        }
        auto rows = store_.thread_reader().sql_query(due_sql, {sql_value{channel}, sql_value{store::now_ms()}});
        std::size_t n = 0;
        if (!rows) {
            log::warn("notify.scan-failed", {{"channel", channel}, {"reason", rows.error().message}});
        } else {
            n = rows->size();
            for (auto& r : *rows) {
                if (stopping_)
                    break;
                const std::string nid = text_of(r[0]), mid = text_of(r[1]);
                const int attempts = static_cast<int>(int_of(r[5]));
                send_result res = channel == "email"
                                      ? send_email(cfg_, nid, text_of(r[2]), text_of(r[3]), text_of(r[4]), stopping_)
                                      : send_sms(cfg_, nid, text_of(r[2]), text_of(r[4]), stopping_);
                if (stopping_ && res.o != send_result::outcome::sent)
                    break;  // left as it was: sent again after a restart
                record(channel, nid, mid, attempts + 1, res);
            }
        }
        if (n == 16)
            continue;  // more may be due
        std::unique_lock lk(mu_);
        cv_.wait_for(lk, std::chrono::milliseconds(cfg_.notify_scan_ms),
                     [&] { return stopping_.load() || wake_seq_ != seq; });
    }
    log::info("notify.sender-stopped", {{"channel", channel}});
}

void notifier::record(const std::string& channel, const std::string& nid, const std::string& mid, int attempts,
                      const send_result& r) {
    using o = send_result::outcome;
    const store::millis now = store::now_ms();
    const char* what;
    store::write_op op;
    if (r.o == o::sent) {
        what = nstate::sent;
        op = [nid, attempts, now](store::write_txn& t) -> result<void> {
            auto n = t.sql_exec("UPDATE notifications SET state = 'sent', attempts = ?2, sent_at = ?3, updated_at = ?3,"
                                " last_error = NULL, address = '', body = '' WHERE id = ?1",
                                {sql_value{nid}, sql_value{std::int64_t(attempts)}, sql_value{now}});
            if (!n)
                return n.error();
            return {};
        };
    } else if (r.o == o::retriable && attempts < cfg_.notify_max_attempts) {
        what = nstate::retrying;
        store::millis next = now + backoff(attempts);
        std::string detail = "attempt " + std::to_string(attempts) + ": " + r.detail;
        op = [nid, attempts, now, next, detail](store::write_txn& t) -> result<void> {
            auto n = t.sql_exec("UPDATE notifications SET state = 'retrying', attempts = ?2, next_attempt_at = ?3,"
                                " last_error = ?4, updated_at = ?5 WHERE id = ?1",
                                {sql_value{nid}, sql_value{std::int64_t(attempts)}, sql_value{next},
                                 sql_value{detail}, sql_value{now}});
            if (!n)
                return n.error();
            return {};
        };
    } else {
        what = nstate::failed;
        std::string detail = (r.o == o::permanent ? "permanent failure: " + r.detail
                                                  : r.detail + " (gave up after " + std::to_string(attempts) +
                                                        " attempts)");
        op = [nid, attempts, now, detail](store::write_txn& t) -> result<void> {
            auto n = t.sql_exec("UPDATE notifications SET state = 'failed', attempts = ?2, last_error = ?3,"
                                " updated_at = ?4, address = '', body = '' WHERE id = ?1",
                                {sql_value{nid}, sql_value{std::int64_t(attempts)}, sql_value{detail},
                                 sql_value{now}});
            if (!n)
                return n.error();
            return {};
        };
    }
    auto w = store::write_sync(store_, std::move(op));
    if (!w)
        log::error("notify.store-failed", {{"notification", nid}, {"id", mid}, {"reason", w.error().message}});
    log::info("notify", {{"notification", nid},
                         {"id", mid},
                         {"channel", channel},
                         {"outcome", what},
                         {"attempt", std::to_string(attempts)},
                         {"detail", r.detail}});
    changed(mid);
}

// ------------------------------------------------------------------------------------------------
// read notices

void notifier::read(const store::message_row& m, const std::string& her_id) {
    if (read_notice_to_.empty() || m.kind != "msghead" || m.content_ns == read_notice_ns)
        return;
    if (!read_notice_to_.count(m.sender_her) && !read_notice_to_.count(m.sender_lvl1_her))
        return;
    store::millis at = store::now_ms();
    if (auto r = store_.thread_reader().get(m.id); r && *r && (*r)->read_at)
        at = (*r)->read_at;
    auto rs = engine_.routing();
    auto doc = build_read_notice(m, her_id, at, rs->registry);
    if (!doc) {
        log::warn("notify.read-notice-failed", {{"id", m.id}, {"reason", doc.error().message}});
        return;
    }
    std::string original = m.id;
    asio::co_spawn(asio::make_strand(ex_), engine_.intake(std::move(*doc), "internal:read-notice"),
                   [original](std::exception_ptr e, intake_answer a) {
                       if (e || a.status != 201)
                           log::warn("notify.read-notice-failed",
                                     {{"id", original}, {"status", std::to_string(e ? 0 : a.status)}});
                       else
                           log::info("notify.read-notice", {{"id", original}, {"notice", a.id}});
                   });
}

// ------------------------------------------------------------------------------------------------
// REST

asio::awaitable<std::optional<http_extension::response>> notifier::handle(request& req, std::string_view path,
                                                                          std::string_view query) {
    auto parts = split(path, '/');
    if (parts.size() == 2 && iequals(parts[0], "consents"))
        co_return co_await consents(req, parts[1]);
    if (parts.size() == 3 && iequals(parts[0], "messages") && iequals(parts[2], "notifications")) {
        if (req.method() != http::verb::get)
            co_return error_response(405, "method-not-allowed", "use GET");
        co_return co_await notifications(parts[1], query);
    }
    co_return std::nullopt;
}

asio::awaitable<http_extension::response> notifier::consents(request& req, const std::string& patient_id) {
    if (!is_person_id(patient_id))
        co_return error_response(400, "request.invalid", "the patient id must be an 11-digit person id");
    auto method = req.method();
    if (method == http::verb::get) {
        auto pc = load_consents(store_.thread_reader(), patient_id);
        if (!pc)
            co_return error_response(500, pc.error().code, pc.error().message);
        if (pc->persons.empty())
            co_return error_response(404, "not-found", "no consents are stored for this patient");
        co_return json_response(200, json::serialize(to_json(*pc)));
    }
    if (method != http::verb::put && method != http::verb::delete_)
        co_return error_response(405, "method-not-allowed", "use GET, PUT or DELETE");
    patient_consents pc;
    pc.patient_id = patient_id;
    if (method == http::verb::put) {
        std::string_view ct = req[http::field::content_type];
        if (ct.substr(0, ct.find(';')) != "application/json")
            co_return error_response(415, "request.unsupported-media-type", "send application/json");
        boost::system::error_code ec;
        json::value v = json::parse(req.body(), ec);
        if (ec)
            co_return error_response(400, "request.invalid", "the body is not JSON");
        auto parsed = parse_consents(v, patient_id);
        if (!parsed)
            co_return error_response(400, parsed.error().code, parsed.error().message);
        pc = std::move(*parsed);
    }
    auto shared = std::make_shared<patient_consents>(pc);
    store::write_op op = [shared](store::write_txn& t) { return replace_consents(t, *shared, "api"); };
    auto w = co_await store_write(store_, std::move(op));
    if (!w) {
        auto res = error_response(503, w.error().code, "the consents were not stored: " + w.error().message);
        res.set(http::field::retry_after, "1");
        co_return res;
    }
    log::info("consents.updated", {{"persons", std::to_string(pc.persons.size())}});
    if (method == http::verb::delete_ || pc.persons.empty())
        co_return json_response(204, "");
    co_return json_response(200, json::serialize(to_json(pc)));
}

asio::awaitable<http_extension::response> notifier::notifications(const std::string& id, std::string_view query) {
    auto q = parse_query(query);
    std::vector<std::string> wanted;
    if (auto it = q.find("waitforstate"); it != q.end())
        wanted = split(it->second, ',');
    std::string channel;
    if (auto it = q.find("channel"); it != q.end())
        channel = it->second;
    int min_attempts = 0;
    if (auto it = q.find("minattempts"); it != q.end()) {
        auto [p, ec] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), min_attempts);
        if (ec != std::errc{} || min_attempts < 0 || min_attempts > 1000)
            co_return error_response(400, "request.invalid", "minAttempts must be 0..1000");
    }
    int timeout_ms = 10000;
    if (auto it = q.find("timeoutms"); it != q.end()) {
        auto [p, ec] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), timeout_ms);
        if (ec != std::errc{} || timeout_ms < 0 || timeout_ms > 120000)
            co_return error_response(400, "request.invalid", "timeoutMs must be 0..120000");
    }
    {
        auto row = store_.thread_reader().get(id);
        if (!row)
            co_return error_response(500, row.error().code, row.error().message);
        if (!*row)
            co_return error_response(404, "not-found", "no message with id " + id);
    }
    auto read_rows = [&]() -> result<std::vector<store::sql_row>> {
        auto rows = store_.thread_reader().sql_query(list_sql, {sql_value{id}});
        if (!rows || channel.empty())
            return rows;
        std::vector<store::sql_row> out;
        for (auto& r : *rows)
            if (text_of(r[1]) == channel)
                out.push_back(std::move(r));
        return out;
    };
    auto matches = [&](const std::vector<store::sql_row>& rows) {
        if (wanted.empty())
            return true;
        if (rows.empty())
            return false;
        for (auto& r : rows) {
            bool ok = false;
            for (auto& w : wanted)
                ok = ok || text_of(r[3]) == w;
            if (!ok || int_of(r[4]) < min_attempts)
                return false;
        }
        return true;
    };
    auto rows = read_rows();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    auto ex = co_await asio::this_coro::executor;
    while (rows && !matches(*rows) && std::chrono::steady_clock::now() < deadline) {
        auto timer = std::make_shared<asio::steady_timer>(ex, deadline);
        {
            std::lock_guard lk(mu_);
            if (stopped_)
                break;
            watchers_.emplace(id, timer);
        }
        // Registered first, then read: a change in between cancels the timer (posted to this
        // strand, so it runs once we wait).
        rows = read_rows();
        if (rows && !matches(*rows)) {
            auto [ec] = co_await timer->async_wait(asio::as_tuple(asio::use_awaitable));
            (void)ec;
            rows = read_rows();
        }
        std::lock_guard lk(mu_);
        auto [b, e] = watchers_.equal_range(id);
        for (auto it = b; it != e; ++it)
            if (it->second == timer) {
                watchers_.erase(it);
                break;
            }
    }
    if (!rows)
        co_return error_response(500, rows.error().code, rows.error().message);
    json::array list;
    for (auto& r : *rows) {
        json::object o;
        o["id"] = text_of(r[0]);
        o["channel"] = text_of(r[1]);
        o["role"] = text_of(r[2]);
        o["state"] = text_of(r[3]);
        o["attempts"] = int_of(r[4]);
        if (text_of(r[3]) == nstate::retrying)
            o["nextAttemptAt"] = iso_time(int_of(r[5]));
        if (auto e = text_of(r[6]); !e.empty())
            o["lastError"] = e;
        o["createdAt"] = iso_time(int_of(r[7]));
        o["updatedAt"] = iso_time(int_of(r[8]));
        if (auto s = int_of(r[9]))
            o["sentAt"] = iso_time(s);
        list.push_back(std::move(o));
    }
    json::object out;
    out["messageId"] = id;
    out["notifications"] = std::move(list);
    co_return json_response(200, json::serialize(out));
}

} // namespace broker::digihelse
