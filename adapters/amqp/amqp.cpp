// amqp adapter: the proton side. Everything below 'core' runs on the instance's one thread (the
// container runs single-threaded), so the connection, links, deliveries and the maps of pending
// work need no locks. Other threads reach it only through the mailbox: a job queued under a
// mutex plus a wake-up of a container-backed work_queue. A job that never runs (the instance
// stopped first) is cancelled, so every 'done' handler is called exactly once.
//
// Delivery guarantees:
//   - inbound: a message is accepted on its queue only after intake reports it stored (accepted,
//     rejected-and-kept, or a duplicate); if the connection or edibroker goes away before that, the
//     AMQP broker hands it out again and intake de-duplicates it on (sender HER-id, MsgId).
//   - outbound: a delivery is 'delivered' only when the AMQP broker accepted the transfer (a
//     publisher confirm); anything else (no connection, link error, released, no answer within
//     send-timeout-ms) is retriable and the engine tries again. The AMQP message-id of a retry is
//     the same (the broker id of the message), so a receiver can tell a resend.
#include "amqp.hpp"

#include "checks.hpp"

#include "broker/log.hpp"
#include "broker/xml.hpp"

#include <proton/binary.hpp>
#include <proton/connection.hpp>
#include <proton/connection_options.hpp>
#include <proton/container.hpp>
#include <proton/delivery.hpp>
#include <proton/duration.hpp>
#include <proton/error.hpp>
#include <proton/error_condition.hpp>
#include <proton/message.hpp>
#include <proton/message_id.hpp>
#include <proton/messaging_handler.hpp>
#include <proton/receiver.hpp>
#include <proton/receiver_options.hpp>
#include <proton/scalar.hpp>
#include <proton/sender.hpp>
#include <proton/sender_options.hpp>
#include <proton/session.hpp>
#include <proton/source_options.hpp>
#include <proton/ssl.hpp>
#include <proton/symbol.hpp>
#include <proton/target_options.hpp>
#include <proton/timestamp.hpp>
#include <proton/tracker.hpp>
#include <proton/transport.hpp>
#include <proton/uuid.hpp>
#include <proton/work_queue.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <deque>
#include <functional>
#include <map>
#include <random>

namespace broker::adapters::amqp {

namespace {

using ms = std::chrono::milliseconds;

std::int64_t now_ms() {
    return std::chrono::duration_cast<ms>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string iso_utc(std::int64_t millis) {
    std::time_t secs = static_cast<std::time_t>(millis / 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(millis % 1000));
    return buf;
}

std::string hex(const proton::binary& b) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (auto c : b) {
        out += digits[(static_cast<unsigned char>(c) >> 4) & 0xf];
        out += digits[static_cast<unsigned char>(c) & 0xf];
    }
    return out;
}

/// A message-id / correlation-id as text ("" when absent).
std::string id_text(const proton::message_id& id) {
    switch (id.type()) {
    case proton::STRING:
        return proton::get<std::string>(id);
    case proton::UUID:
        return proton::get<proton::uuid>(id).str();
    case proton::ULONG:
        return std::to_string(proton::get<std::uint64_t>(id));
    case proton::BINARY:
        return hex(proton::get<proton::binary>(id));
    default:
        return {};
    }
}

/// An application property as text; nullopt when its type cannot carry the field.
std::optional<std::string> scalar_text(const proton::scalar& s) {
    switch (s.type()) {
    case proton::STRING:
        return proton::get<std::string>(s);
    case proton::SYMBOL:
        return std::string(proton::get<proton::symbol>(s));
    case proton::BYTE:
    case proton::UBYTE:
    case proton::SHORT:
    case proton::USHORT:
    case proton::INT:
    case proton::UINT:
    case proton::LONG:
        return std::to_string(proton::coerce<std::int64_t>(s));
    case proton::ULONG:
        return std::to_string(proton::coerce<std::uint64_t>(s));
    case proton::TIMESTAMP:
        return iso_utc(proton::get<proton::timestamp>(s).milliseconds());
    case proton::UUID:
        return proton::get<proton::uuid>(s).str();
    default:
        return std::nullopt;
    }
}

/// HER-ids go on the wire as AMQP int, as Helsenorge.Messaging writes them (an int in .NET).
proton::scalar her_scalar(const std::string& her) {
    if (is_her_id(her))
        return proton::scalar(static_cast<std::int32_t>(std::stol(her)));
    return proton::scalar(her);
}

/// Decode what edibroker reads from a message; the body is copied out as bytes.
envelope decode(const proton::message& m, std::string& body) {
    envelope e;
    e.message_id = id_text(m.id());
    e.to = m.to();
    e.reply_to = m.reply_to();
    e.subject = m.subject();
    e.content_type = m.content_type();
    e.correlation_id = id_text(m.correlation_id());
    auto prop = [&](const char* key, std::string& out) {
        if (!m.properties().exists(key))
            return;
        auto t = scalar_text(m.properties().get(key));
        if (t)
            out = *t;
        else
            e.unusable.push_back(key);
    };
    prop("fromHerId", e.from_her);
    prop("toHerId", e.to_her);
    prop("cpaId", e.cpa_id);
    prop("applicationTimeStamp", e.app_timestamp);
    const proton::value& b = m.body();
    if (b.type() == proton::BINARY) {
        auto bin = proton::get<proton::binary>(b);
        body.assign(bin.begin(), bin.end());
        e.has_body = true;
    } else if (b.type() == proton::STRING) {
        body = proton::get<std::string>(b);
        e.has_body = true;
    }
    e.body_size = body.size();
    return e;
}

proton::binary tag_of(std::uint64_t n) {
    proton::binary b(8, 0);
    for (int i = 0; i < 8; ++i)
        b[i] = static_cast<std::uint8_t>(n >> (8 * i));
    return b;
}

std::uint64_t tag_value(const proton::binary& b) {
    if (b.size() != 8)
        return 0;
    std::uint64_t n = 0;
    for (int i = 0; i < 8; ++i)
        n |= static_cast<std::uint64_t>(static_cast<std::uint8_t>(b[i])) << (8 * i);
    return n;
}

std::string join(const std::vector<std::string>& parts, const char* sep) {
    std::string out;
    for (std::size_t i = 0; i < parts.size(); ++i)
        out += (i ? sep : "") + parts[i];
    return out;
}

template <class F>
void guarded(const char* where, F&& f) noexcept {
    try {
        f();
    } catch (const std::exception& e) {
        log::error("amqp.handler-failed", {{"where", where}, {"what", e.what()}});
    } catch (...) {
        log::error("amqp.handler-failed", {{"where", where}});
    }
}

void call(delivery_handler& done, delivery_result r) noexcept {
    guarded("delivery-callback", [&] {
        if (done)
            done(std::move(r));
    });
    done = nullptr;
}

void call(sync_handler& done, result<sync_reply> r) noexcept {
    guarded("sync-callback", [&] {
        if (done)
            done(std::move(r));
    });
    done = nullptr;
}

} // namespace

/// A piece of work for the adapter thread: run() there, or cancel() if it never gets to run.
struct job {
    std::function<void(core&)> run;
    std::function<void()> cancel;
};

/// Where other threads leave work for the adapter thread. Shared with callbacks the engine holds,
/// so a late callback after stop() finds it closed instead of a destroyed adapter.
struct mailbox {
    std::mutex m;
    bool open = false;
    std::deque<job> jobs;
    proton::work_queue* wq = nullptr;
    std::function<void()> drain;  // runs on the adapter thread

    /// False when closed: the caller completes the job itself.
    bool post(job j) {
        std::lock_guard lk(m);
        if (!open || !wq)
            return false;
        jobs.push_back(std::move(j));
        if (jobs.size() == 1)
            wq->add(drain);
        return true;
    }
    std::deque<job> take() {
        std::lock_guard lk(m);
        std::deque<job> out;
        out.swap(jobs);
        return out;
    }
    void close() {
        std::lock_guard lk(m);
        open = false;
    }
};

class core final : public proton::messaging_handler {
public:
    core(std::string name, options opt, inbound_fn inbound, sync_fn sync)
        : name_(std::move(name)), opt_(std::move(opt)), intake_(std::move(inbound)), sync_(std::move(sync)),
          container_(*this, "edibroker-" + name_ + "-" + proton::uuid::random().str()),
          mb_(std::make_shared<mailbox>()), backoff_(opt_.reconnect_min) {
        container_.auto_stop(false);
        wq_ = std::make_unique<proton::work_queue>(container_);
        mb_->wq = wq_.get();
        mb_->drain = [this] { drain(); };
        mb_->open = true;
    }

    ~core() override {
        mb_->close();
        {
            std::lock_guard lk(mb_->m);
            mb_->wq = nullptr;
        }
    }

    std::shared_ptr<mailbox> box() const { return mb_; }

    /// The adapter thread.
    void run() {
        try {
            container_.run();
        } catch (const std::exception& e) {
            log::error("amqp.container-failed", {{"adapter", name_}, {"what", e.what()}});
        } catch (...) {
            log::error("amqp.container-failed", {{"adapter", name_}});
        }
    }

    /// Any thread but the adapter thread: no new work, close everything, end run().
    void stop() {
        stopping_ = true;
        mb_->close();
        auto wq_stop = [this] { guarded("stop", [this] { shutdown("shutting down"); }); };
        if (!wq_->add(wq_stop))
            container_.stop();
    }

    /// After the adapter thread has ended (or never ran): complete whatever is still pending.
    /// Touches no connection: the container is not running any more.
    void fail_leftovers() {
        for (auto& j : mb_->take())
            if (j.cancel)
                j.cancel();
        lost("shutting down");
        fail_syncs();
    }

    // ---------------------------------------------------------------- jobs (adapter thread)

    void deliver(delivery d, delivery_handler done) {
        const std::string receiver = d.facts.receiver.lowest_her();
        const std::string sender = d.facts.sender.lowest_her();
        if (!up_) {
            delivery_result r{delivery_result::outcome::retriable, "not connected to the AMQP broker at " + opt_.endpoint, ""};
            call(done, std::move(r));
            return;
        }
        if (!is_her_id(receiver) || !is_her_id(sender)) {
            call(done, delivery_result{delivery_result::outcome::permanent,
                                       "the message has no sender and receiver HER-id to address on the service bus", ""});
            return;
        }
        if (d.document->size() > opt_.max_message_bytes) {
            call(done, delivery_result{delivery_result::outcome::permanent,
                                       "message of " + std::to_string(d.document->size()) + " bytes over max-message-bytes",
                                       ""});
            return;
        }
        outgoing o;
        o.w = outgoing::what::delivery;
        o.done = std::move(done);
        o.queue = opt_.queue(receiver, queue_kind::async);
        o.log_id = d.id;
        // The broker id is stable across retries: a receiver can recognise a resend by message-id.
        o.msg = make_message(d.id, o.queue, opt_.queue(sender, queue_kind::async), d.facts.msg_type, sender, receiver,
                             *d.document, d.content_type == "application/xml" ? opt_.content_type : d.content_type);
        o.msg.durable(true);
        if (opt_.async_ttl.count() > 0)
            o.msg.ttl(proton::duration(opt_.async_ttl.count()));
        send(std::move(o));
    }

    void request(delivery d, ms timeout, sync_handler done) {
        const std::string receiver = d.facts.receiver.lowest_her();
        const std::string sender = d.facts.sender.lowest_her();
        if (!up_) {
            call(done, error{"sync.send-failed", "not connected to the AMQP broker at " + opt_.endpoint});
            return;
        }
        std::string reply_her = opt_.reply_her(sender);
        if (reply_her.empty() || !is_her_id(receiver) || !is_her_id(sender)) {
            call(done, error{"sync.send-failed", reply_her.empty()
                                                     ? "adapter '" + name_ + "' serves no HER-id with a _syncreply queue"
                                                     : "the request has no sender and receiver HER-id"});
            return;
        }
        std::string id = proton::uuid::random().str();
        outgoing o;
        o.w = outgoing::what::sync_request;
        o.queue = opt_.queue(receiver, queue_kind::sync);
        o.sync_id = id;
        o.log_id = d.id;
        o.msg = make_message(id, o.queue, opt_.queue(reply_her, queue_kind::syncreply), d.facts.msg_type, sender,
                             receiver, *d.document, opt_.content_type);
        o.msg.durable(false);
        o.msg.ttl(proton::duration(timeout.count()));
        pending_sync p;
        p.done = std::move(done);
        p.receiver = receiver;
        p.started = std::chrono::steady_clock::now();
        syncs_.emplace(id, std::move(p));
        after(timeout, "sync-timeout", [this, id, timeout] {
            finish_sync(id, error{"sync.timeout", "no reply within " + std::to_string(timeout.count()) + " ms"});
        });
        log::info("amqp.sync-request", {{"adapter", name_}, {"id", d.id}, {"receiver", receiver}, {"queue", o.queue}});
        send(std::move(o));
    }

    /// Intake answered for inbound message 'token' (adapter thread).
    void stored(std::uint64_t token, inbound_result r) {
        auto it = inbound_.find(token);
        if (it == inbound_.end())
            return;  // the connection went away meanwhile: the AMQP broker redelivers, intake de-duplicates
        if (r.stored()) {
            log::info("amqp.received", {{"adapter", name_},
                                        {"id", r.id},
                                        {"queue", it->second.queue},
                                        {"status", std::to_string(r.status)},
                                        {"duplicate", r.duplicate ? "true" : "false"}});
            settle(token, true);
            return;
        }
        if (r.status == 0 || r.status >= 500) {
            // Not stored (the store is busy or failing): keep the message unsettled and try again.
            log::warn("amqp.intake-busy", {{"adapter", name_}, {"queue", it->second.queue}, {"status", std::to_string(r.status)}});
            std::uint64_t gen = gen_;
            after(opt_.intake_retry, "intake-retry", [this, token, gen] {
                auto jt = inbound_.find(token);
                if (jt != inbound_.end() && gen == gen_)
                    hand_to_intake(token);
            });
            return;
        }
        report(token, refusal{condition::internal,
                              "edibroker refused the message (http " + std::to_string(r.status) + ")", {}});
    }

    /// The engine's answer to a synchronous request this instance received (adapter thread).
    struct sync_context {
        std::string reply_queue;
        std::string correlation_id;
        std::string message_id;
        std::string from_her;
        std::string to_her;
        std::string subject;
        std::string cpa_id;
        std::chrono::steady_clock::time_point deadline;
    };

    void answer_sync(const sync_context& c, result<sync_reply> r) {
        if (!up_) {
            log::warn("amqp.sync-answer-lost", {{"adapter", name_}, {"reason", "not connected"}});
            return;
        }
        auto left = std::chrono::duration_cast<ms>(c.deadline - std::chrono::steady_clock::now());
        if (!r) {
            log::warn("amqp.sync-failed", {{"adapter", name_},
                                           {"sender", c.from_her},
                                           {"receiver", c.to_her},
                                           {"code", r.error().code},
                                           {"reason", r.error().message}});
            send_error(c.from_her, c.to_her, c.subject, c.message_id, c.cpa_id,
                       refusal{condition_for_sync_error(r.error().code),
                               "the synchronous request was not answered: " + r.error().message, {r.error().code}},
                       0);
            return;
        }
        outgoing o;
        o.w = outgoing::what::sync_reply;
        o.queue = c.reply_queue;
        o.log_id = c.message_id;
        std::string subject = r->subject;
        if (subject.empty()) {
            auto vr = xml::thread_validator().parse_only(r->document, "sync-reply");
            subject = vr.facts.msg_type.empty() ? c.subject : vr.facts.msg_type;
        }
        o.msg = make_message(proton::uuid::random().str(), c.reply_queue, opt_.queue(c.to_her, queue_kind::syncreply),
                             subject, c.to_her, c.from_her, r->document,
                             r->content_type.empty() ? opt_.content_type : r->content_type);
        o.msg.correlation_id(c.correlation_id);
        o.msg.durable(false);
        if (left.count() > 0)
            o.msg.ttl(proton::duration(left.count()));
        log::info("amqp.sync-answer", {{"adapter", name_}, {"receiver", c.from_her}, {"queue", c.reply_queue}});
        send(std::move(o));
    }

    // ---------------------------------------------------------------- proton events

    void on_container_start(proton::container&) override {
        guarded("container-start", [this] { connect(); });
    }

    void on_connection_open(proton::connection& c) override {
        guarded("connection-open", [&] {
            up_ = true;
            ++gen_;
            backoff_ = opt_.reconnect_min;
            warned_down_ = false;
            log::info("amqp.connected", {{"adapter", name_}, {"endpoint", opt_.endpoint}});
            for (auto& her : opt_.her_ids)
                for (auto k : {queue_kind::async, queue_kind::sync, queue_kind::syncreply}) {
                    std::string q = opt_.queue(her, k);
                    proton::receiver_options ro;
                    ro.auto_accept(false).credit_window(0).source(
                        proton::source_options().durability_mode(proton::terminus::CONFIGURATION));
                    proton::receiver r = c.open_receiver(opt_.address(q), ro);
                    consumers_[r.name()] = consumer{q, k, her};
                }
        });
    }

    void on_receiver_open(proton::receiver& r) override {
        guarded("receiver-open", [&] { r.add_credit(opt_.prefetch); });
    }

    void on_sendable(proton::sender& s) override {
        guarded("sendable", [&] { flush(s); });
    }

    void on_message(proton::delivery& d, proton::message& m) override {
        guarded("message", [&] {
            if (!up_ || stopping_) {
                d.release();
                return;
            }
            auto c = consumers_.find(d.receiver().name());
            if (c == consumers_.end()) {
                d.release();
                return;
            }
            std::uint64_t token = next_token_++;
            incoming in;
            in.d = d;
            in.queue = c->second.queue;
            in.kind = c->second.kind;
            in.env = decode(m, in.document);
            in.ttl = m.ttl().milliseconds();
            inbound_.emplace(token, std::move(in));
            receive(token);
        });
    }

    void on_tracker_accept(proton::tracker& t) override {
        guarded("tracker-accept", [&] { confirmed(tag_value(t.tag()), settled::accepted); });
    }
    void on_tracker_reject(proton::tracker& t) override {
        guarded("tracker-reject", [&] { confirmed(tag_value(t.tag()), settled::rejected); });
    }
    void on_tracker_release(proton::tracker& t) override {
        guarded("tracker-release", [&] { confirmed(tag_value(t.tag()), settled::released); });
    }

    void on_transport_error(proton::transport& t) override {
        guarded("transport-error", [&] {
            auto e = t.error();
            // One warning per outage; the reconnect attempts after it log at debug.
            if (!warned_down_ || up_)
                log::warn("amqp.disconnected",
                          {{"adapter", name_}, {"endpoint", opt_.endpoint}, {"condition", e.name()}, {"reason", e.description()}});
            else
                log::debug("amqp.connect-failed", {{"adapter", name_}, {"endpoint", opt_.endpoint}, {"reason", e.description()}});
            warned_down_ = true;
        });
    }

    void on_transport_close(proton::transport&) override {
        guarded("transport-close", [&] {
            bool was_up = up_;
            lost(stopping_ ? "shutting down" : "connection to the AMQP broker at " + opt_.endpoint + " lost");
            if (was_up && !warned_down_)
                log::warn("amqp.disconnected", {{"adapter", name_}, {"endpoint", opt_.endpoint}});
            warned_down_ = true;
            if (stopping_) {
                container_.stop();
                return;
            }
            // Back-off with jitter, doubling up to reconnect-max-ms.
            thread_local std::mt19937 rng{std::random_device{}()};
            std::uniform_real_distribution<double> jitter(0.8, 1.2);
            auto delay = ms(static_cast<long long>(static_cast<double>(backoff_.count()) * jitter(rng)));
            backoff_ = std::min(opt_.reconnect_max, backoff_ * 2);
            after(delay, "reconnect", [this] { connect(); });
        });
    }

    void on_connection_error(proton::connection& c) override { link_failed("connection", c.error()); }
    void on_session_error(proton::session& s) override { link_failed("session", s.error()); }
    void on_receiver_error(proton::receiver& r) override { link_failed("receiver", r.error()); }
    void on_sender_error(proton::sender& s) override { link_failed("sender", s.error()); }
    void on_error(const proton::error_condition& e) override {
        log::warn("amqp.error", {{"adapter", name_}, {"condition", e.name()}, {"reason", e.description()}});
    }

private:
    struct outgoing {
        enum class what { delivery, sync_request, sync_reply, error_report } w = what::delivery;
        proton::message msg;
        std::string queue;
        std::string log_id;
        delivery_handler done;        // delivery
        std::string sync_id;          // sync_request
        std::uint64_t settle = 0;     // error_report: the inbound message to accept once it is sent
    };
    struct incoming {
        proton::delivery d;
        std::string queue;
        queue_kind kind = queue_kind::async;
        envelope env;
        std::string document;
        std::int64_t ttl = 0;
    };
    struct consumer {
        std::string queue;
        queue_kind kind = queue_kind::async;
        std::string her;
    };
    struct pending_sync {
        sync_handler done;
        std::string receiver;
        std::chrono::steady_clock::time_point started;
    };

    // Work that runs outside the connection's own events (mailbox jobs, timers) changes the
    // connection's state without making proton write anything: wake the connection afterwards so
    // its output (attach, transfer, disposition, flow) goes out now.
    void kick() {
        if (conn_ && !conn_.closed())
            conn_.wake();
    }

    void drain() {
        guarded("drain", [this] {
            for (auto& j : mb_->take())
                if (j.run)
                    j.run(*this);
        });
        guarded("kick", [this] { kick(); });
    }

    /// Run 'f' on the adapter thread after 'd' (guarded, then kick()).
    template <class F>
    void after(ms d, const char* what, F f) {
        container_.schedule(proton::duration(d.count()), [this, what, f = std::move(f)]() mutable {
            guarded(what, f);
            guarded("kick", [this] { kick(); });
        });
    }

    proton::message make_message(const std::string& id, const std::string& to_queue, const std::string& reply_queue,
                                 const std::string& subject, const std::string& from_her, const std::string& to_her,
                                 const std::string& body, const std::string& content_type) {
        proton::message m;
        m.id(id);
        m.correlation_id(id);  // helsenorge's default: the message-id
        m.to(to_queue);
        m.reply_to(reply_queue);
        m.subject(subject);
        m.content_type(content_type);
        std::int64_t now = now_ms();
        m.creation_time(proton::timestamp(now));
        m.properties().put("fromHerId", her_scalar(from_her));
        m.properties().put("toHerId", her_scalar(to_her));
        m.properties().put("cpaId", proton::scalar(opt_.cpa_id));
        m.properties().put("applicationTimeStamp", proton::scalar(proton::timestamp(now)));
        m.body(proton::binary(body));
        return m;
    }

    void connect() {
        if (stopping_)
            return;
        proton::connection_options co;
        co.container_id(container_.id());
        if (!opt_.user.empty()) {
            co.user(opt_.user);
            co.password(opt_.password);
            co.sasl_allowed_mechs("PLAIN");
            co.sasl_allow_insecure_mechs(!opt_.tls);
        } else {
            co.sasl_allowed_mechs("ANONYMOUS");
        }
        if (opt_.heartbeat.count() > 0)
            co.idle_timeout(proton::duration(opt_.heartbeat.count()));
        if (opt_.tls) {
            if (opt_.insecure)
                co.ssl_client_options(proton::ssl_client_options(proton::ssl::ANONYMOUS_PEER));
            else if (!opt_.ca_file.empty())
                co.ssl_client_options(proton::ssl_client_options(opt_.ca_file, proton::ssl::VERIFY_PEER_NAME));
            else
                co.ssl_client_options(proton::ssl_client_options());
        }
        std::string url = std::string(opt_.tls ? "amqps://" : "amqp://") + opt_.endpoint;
        conn_ = container_.connect(url, co);
    }

    /// A link, session or connection error: log it and start over with a fresh connection (the
    /// AMQP broker may have ended the session, taking every link with it).
    void link_failed(const char* what, const proton::error_condition& e) {
        guarded("link-error", [&] {
            log::warn("amqp.link-error", {{"adapter", name_}, {"what", what}, {"condition", e.name()}, {"reason", e.description()}});
            if (conn_ && conn_.active())
                conn_.close();
        });
    }

    /// The connection is gone: fail what waits on it. Unsettled inbound messages return to their
    /// queues at the AMQP broker; pending sync requests keep waiting for their replies (their
    /// queue is durable) until their own timeout.
    void lost(const std::string& why) {
        up_ = false;
        auto pending = std::move(pending_);
        pending_.clear();
        for (auto& [tag, o] : pending)
            fail(o, why);
        waiting_.clear();
        senders_.clear();
        consumers_.clear();
        inbound_.clear();
        conn_ = proton::connection();
    }

    void fail_syncs() {
        auto syncs = std::move(syncs_);
        syncs_.clear();
        for (auto& [id, p] : syncs)
            call(p.done, error{"shutting-down", "adapter '" + name_ + "' is stopping"});
    }

    /// On the adapter thread: close the connection (unsettled inbound messages go back to their
    /// queues), fail what is pending, and end run() once the close is through.
    void shutdown(const std::string& why) {
        stopping_ = true;
        proton::connection c = conn_;
        bool had_conn = c && !c.closed();
        lost(why);
        fail_syncs();
        if (!had_conn) {
            container_.stop();
            return;
        }
        // on_transport_close stops the container once the close is through; a peer that does not
        // answer the close gets a short grace. This runs outside the connection's events: wake it.
        guarded("close", [&] {
            c.close();
            c.wake();
        });
        container_.schedule(proton::duration(2000), [this] { container_.stop(); });
    }

    // -------------------------------------------------------------- sending

    void send(outgoing o) {
        if (!up_ || !conn_) {
            fail(o, "not connected to the AMQP broker at " + opt_.endpoint);
            return;
        }
        std::string address = opt_.address(o.queue);
        auto it = senders_.find(address);
        if (it == senders_.end()) {
            proton::sender_options so;
            so.target(proton::target_options().durability_mode(proton::terminus::CONFIGURATION));
            it = senders_.emplace(address, conn_.open_sender(address, so)).first;
        }
        std::uint64_t tag = next_tag_++;
        pending_.emplace(tag, std::move(o));
        waiting_[address].push_back(tag);
        std::uint64_t gen = gen_;
        after(opt_.send_timeout, "send-timeout", [this, tag, gen] {
            if (gen != gen_)
                return;
            auto p = pending_.find(tag);
            if (p == pending_.end())
                return;
            outgoing o = std::move(p->second);
            pending_.erase(p);
            fail(o, "no confirmation from the AMQP broker within " + std::to_string(opt_.send_timeout.count()) + " ms");
        });
        flush(it->second);
    }

    void flush(proton::sender& s) {
        auto w = waiting_.find(s.target().address());
        if (w == waiting_.end())
            return;
        while (!w->second.empty() && s.active() && s.credit() > 0) {
            std::uint64_t tag = w->second.front();
            w->second.pop_front();
            auto p = pending_.find(tag);
            if (p == pending_.end())
                continue;  // timed out while waiting for credit
            s.send(p->second.msg, tag_of(tag));
        }
    }

    enum class settled { accepted, rejected, released };

    /// The AMQP broker settled transfer 'tag'.
    void confirmed(std::uint64_t tag, settled how) {
        auto p = pending_.find(tag);
        if (p == pending_.end())
            return;  // timed out already (the engine retries; the message-id tells the receiver)
        outgoing o = std::move(p->second);
        pending_.erase(p);
        if (how == settled::rejected) {
            fail(o, "rejected by the AMQP broker on queue " + o.queue, true);
            return;
        }
        if (how == settled::released) {
            fail(o, "released by the AMQP broker on queue " + o.queue);
            return;
        }
        switch (o.w) {
        case outgoing::what::delivery:
            call(o.done, delivery_result{delivery_result::outcome::delivered, "accepted on queue " + o.queue,
                                         id_text(o.msg.id())});
            break;
        case outgoing::what::sync_request:
        case outgoing::what::sync_reply:
            break;
        case outgoing::what::error_report:
            if (o.settle)
                settle(o.settle, true);
            break;
        }
    }

    void fail(outgoing& o, const std::string& why, bool rejected = false) {
        switch (o.w) {
        case outgoing::what::delivery: {
            // A rejection is the AMQP broker refusing this message (too large, not permitted):
            // sending it again as is will not help.
            auto outcome = rejected ? delivery_result::outcome::permanent : delivery_result::outcome::retriable;
            call(o.done, delivery_result{outcome, why, ""});
            break;
        }
        case outgoing::what::sync_request:
            finish_sync(o.sync_id, error{"sync.send-failed", why});
            break;
        case outgoing::what::sync_reply:
            log::warn("amqp.sync-answer-lost", {{"adapter", name_}, {"queue", o.queue}, {"reason", why}});
            break;
        case outgoing::what::error_report:
            // The refused message stays unsettled if the connection is gone (it comes back and
            // is refused again); if the AMQP broker refused the error message, settle anyway.
            log::warn("amqp.error-report-failed", {{"adapter", name_}, {"queue", o.queue}, {"reason", why}});
            if (o.settle && rejected)
                settle(o.settle, true);
            break;
        }
    }

    void finish_sync(const std::string& id, result<sync_reply> r) {
        auto it = syncs_.find(id);
        if (it == syncs_.end())
            return;
        pending_sync p = std::move(it->second);
        syncs_.erase(it);
        auto took = std::chrono::duration_cast<ms>(std::chrono::steady_clock::now() - p.started).count();
        log::info("amqp.sync-done", {{"adapter", name_},
                                     {"receiver", p.receiver},
                                     {"outcome", r ? "answered" : r.error().code},
                                     {"ms", std::to_string(took)}});
        call(p.done, std::move(r));
    }

    // -------------------------------------------------------------- receiving

    void settle(std::uint64_t token, bool accept) {
        auto it = inbound_.find(token);
        if (it == inbound_.end())
            return;
        proton::delivery d = it->second.d;
        inbound_.erase(it);
        if (accept)
            d.accept();
        else
            d.reject();
        proton::receiver r = d.receiver();
        if (r.active())
            r.add_credit(1);
    }

    /// Send an error message to 'to_her's _error queue (helsenorge's error-queue protocol). With
    /// 'settle', the refused inbound message is accepted once the error message is on its queue.
    void send_error(const std::string& to_her, const std::string& from_her, const std::string& subject,
                    const std::string& original_id, const std::string& cpa_id, const refusal& why, std::uint64_t settle_token) {
        outgoing o;
        o.w = outgoing::what::error_report;
        o.queue = opt_.queue(to_her, queue_kind::error);
        o.settle = settle_token;
        o.log_id = original_id;
        proton::message m;
        std::string id = proton::uuid::random().str();
        m.id(id);
        m.correlation_id(original_id.empty() ? id : original_id);
        m.to(o.queue);
        m.subject(subject);
        m.content_type(opt_.content_type);
        m.durable(true);
        std::int64_t now = now_ms();
        m.creation_time(proton::timestamp(now));
        if (is_her_id(from_her))
            m.properties().put("fromHerId", her_scalar(from_her));
        m.properties().put("toHerId", her_scalar(to_her));
        m.properties().put("cpaId", proton::scalar(cpa_id.empty() ? opt_.cpa_id : cpa_id));
        m.properties().put("applicationTimeStamp", proton::scalar(proton::timestamp(now)));
        m.properties().put("originalMessageId", proton::scalar(original_id));
        m.properties().put("receiverTimeStamp", proton::scalar(proton::timestamp(now)));
        m.properties().put("errorCondition", proton::scalar(why.condition));
        m.properties().put("errorDescription", proton::scalar(why.description));
        m.properties().put("errorConditionData", proton::scalar(join(why.data, ";")));
        m.body(proton::binary());
        o.msg = std::move(m);
        send(std::move(o));
    }

    /// Refuse inbound message 'token' on its sender's _error queue; accept it once that is sent.
    void report(std::uint64_t token, const refusal& why) {
        auto it = inbound_.find(token);
        if (it == inbound_.end())
            return;
        const incoming& in = it->second;
        std::string target = error_target_her(in.env, opt_);
        log::warn("amqp.refused", {{"adapter", name_},
                                   {"queue", in.queue},
                                   {"messageId", in.env.message_id.substr(0, 100)},
                                   {"fromHerId", in.env.from_her.substr(0, 20)},
                                   {"condition", why.condition},
                                   {"reason", why.description}});
        if (target.empty()) {
            // Nobody to tell: reject it (the AMQP broker dead-letters or drops it).
            settle(token, false);
            return;
        }
        send_error(target, in.env.to_her, in.env.subject, in.env.message_id, in.env.cpa_id, why, token);
    }

    void receive(std::uint64_t token) {
        incoming& in = inbound_.at(token);
        if (in.kind == queue_kind::syncreply) {
            sync_reply_arrived(token);
            return;
        }
        if (auto r = check_envelope(in.env, opt_)) {
            report(token, *r);
            return;
        }
        bool is_async = in.kind == queue_kind::async;
        // Async messages are validated against the schemas here so that a schema error is
        // answered on the _error queue (transport), not with an AppRec; intake validates again.
        // Sync requests carry content edibroker has no schemas for (iCalendar, ...): parse only.
        xml::validation_result vr = is_async ? xml::thread_validator().validate(in.document, "amqp")
                                             : xml::thread_validator().parse_only(in.document, "amqp");
        if (auto r = check_document(in.env, vr, is_async)) {
            report(token, *r);
            return;
        }
        if (is_async)
            hand_to_intake(token);
        else
            sync_request_arrived(token);
    }

    void hand_to_intake(std::uint64_t token) {
        incoming& in = inbound_.at(token);
        if (!inbound_fn_ok()) {
            report(token, refusal{condition::internal, "this endpoint cannot take messages in", {}});
            return;
        }
        auto box = mb_;
        auto done = [box, token](inbound_result r) {
            auto res = std::make_shared<inbound_result>(std::move(r));
            box->post(job{[token, res](core& c) { c.stored(token, std::move(*res)); }, {}});
        };
        intake_(in.document, "amqp:" + name_ + "/" + in.queue, std::move(done));
    }

    bool inbound_fn_ok() const { return static_cast<bool>(intake_); }

    void sync_request_arrived(std::uint64_t token) {
        incoming& in = inbound_.at(token);
        if (!sync_) {
            report(token, refusal{condition::unsupported, "synchronous requests are not routed by this endpoint", {}});
            return;
        }
        ms timeout = opt_.sync_timeout;
        if (in.ttl > 0 && in.ttl < timeout.count())
            timeout = ms(in.ttl);
        auto ctx = std::make_shared<sync_context>();
        ctx->reply_queue = queue_name_of(in.env.reply_to);
        ctx->correlation_id = in.env.correlation_id.empty() ? in.env.message_id : in.env.correlation_id;
        ctx->message_id = in.env.message_id;
        ctx->from_her = in.env.from_her;
        ctx->to_her = in.env.to_her;
        ctx->subject = in.env.subject;
        ctx->cpa_id = in.env.cpa_id;
        ctx->deadline = std::chrono::steady_clock::now() + timeout;
        std::string document = in.document;
        std::string source = "amqp:" + name_ + "/" + in.queue;
        // A sync request is not stored: it is answered within its bound or not at all, so it is
        // accepted at once (a redelivery after a crash would come too late to be useful).
        settle(token, true);
        log::info("amqp.sync-received", {{"adapter", name_}, {"sender", ctx->from_her}, {"receiver", ctx->to_her}});
        auto box = mb_;
        auto done = [box, ctx](result<sync_reply> r) {
            auto res = std::make_shared<result<sync_reply>>(std::move(r));
            box->post(job{[ctx, res](core& c) { c.answer_sync(*ctx, std::move(*res)); }, {}});
        };
        sync_(std::move(document), std::move(source), timeout, std::move(done));
    }

    void sync_reply_arrived(std::uint64_t token) {
        incoming& in = inbound_.at(token);
        std::string corr = in.env.correlation_id;
        auto it = syncs_.find(corr);
        if (it == syncs_.end()) {
            // Too late (timed out) or not ours: Helsenorge.Messaging logs these as MUG-000031.
            log::warn("amqp.sync-late-reply", {{"adapter", name_}, {"queue", in.queue}, {"fromHerId", in.env.from_her.substr(0, 20)}});
            settle(token, true);
            return;
        }
        if (auto r = check_envelope(in.env, opt_)) {
            report(token, *r);
            return;
        }
        auto vr = xml::thread_validator().parse_only(in.document, "amqp");
        std::optional<refusal> bad = check_document(in.env, vr, false);
        if (!bad && in.env.from_her != it->second.receiver)
            bad = refusal{condition::spoofing,
                          "the reply comes from " + in.env.from_her + ", the request went to " + it->second.receiver,
                          {"fromHerId=" + in.env.from_her}};
        if (bad) {
            report(token, *bad);  // the request keeps waiting for a proper reply
            return;
        }
        sync_reply reply{std::move(in.document), in.env.content_type, in.env.subject};
        settle(token, true);
        finish_sync(corr, std::move(reply));
    }

    std::string name_;
    options opt_;
    inbound_fn intake_;
    sync_fn sync_;
    proton::container container_;
    std::unique_ptr<proton::work_queue> wq_;
    std::shared_ptr<mailbox> mb_;
    std::atomic<bool> stopping_{false};

    // Adapter thread only.
    proton::connection conn_;
    bool up_ = false;
    bool warned_down_ = false;
    std::uint64_t gen_ = 0;
    ms backoff_;
    std::map<std::string, proton::sender> senders_;                 // by address
    std::map<std::string, std::deque<std::uint64_t>> waiting_;      // by address: tags waiting for credit
    std::map<std::uint64_t, outgoing> pending_;                     // by delivery tag
    std::uint64_t next_tag_ = 1;
    std::map<std::string, consumer> consumers_;                     // by receiver link name
    std::map<std::uint64_t, incoming> inbound_;                     // by token
    std::uint64_t next_token_ = 1;
    std::map<std::string, pending_sync> syncs_;                     // by correlation id
};

// ------------------------------------------------------------------------------------------------
// adapter

adapter::adapter(std::string name, options opt, inbound_fn inbound, sync_fn sync)
    : name_(std::move(name)),
      core_(std::make_unique<core>(name_, std::move(opt), std::move(inbound), std::move(sync))) {}

adapter::~adapter() { stop(); }

result<void> adapter::start() {
    std::lock_guard lk(stop_m_);
    if (stopped_)
        return error{"adapter.stopped", "adapter '" + name_ + "' was stopped"};
    if (started_)
        return {};
    try {
        thread_ = std::thread([c = core_.get()] { c->run(); });
    } catch (const std::exception& e) {
        return error{"adapter.start", std::string("cannot start the adapter thread: ") + e.what()};
    }
    started_ = true;
    return {};
}

void adapter::deliver(delivery d, delivery_handler done) {
    auto shared_done = std::make_shared<delivery_handler>(std::move(done));
    auto dd = std::make_shared<delivery>(std::move(d));
    job j{[dd, shared_done](core& c) { c.deliver(std::move(*dd), std::move(*shared_done)); },
          [shared_done] { call(*shared_done, delivery_result{delivery_result::outcome::retriable, "shutting down", ""}); }};
    bool running;
    {
        std::lock_guard lk(stop_m_);
        running = started_ && !stopped_;
    }
    if (!running || !core_->box()->post(std::move(j)))
        call(*shared_done, delivery_result{delivery_result::outcome::retriable,
                                           running ? "shutting down" : "adapter not running", ""});
}

void adapter::request(delivery d, std::chrono::milliseconds timeout, sync_handler done) {
    auto shared_done = std::make_shared<sync_handler>(std::move(done));
    auto dd = std::make_shared<delivery>(std::move(d));
    job j{[dd, shared_done, timeout](core& c) { c.request(std::move(*dd), timeout, std::move(*shared_done)); },
          [shared_done] { call(*shared_done, error{"shutting-down", "the adapter is stopping"}); }};
    bool running;
    {
        std::lock_guard lk(stop_m_);
        running = started_ && !stopped_;
    }
    if (!running || !core_->box()->post(std::move(j)))
        call(*shared_done, error{"shutting-down", "adapter '" + name_ + "' is not running"});
}

void adapter::stop() {
    std::lock_guard lk(stop_m_);
    if (stopped_)
        return;
    stopped_ = true;
    if (!started_) {
        core_->box()->close();
        core_->fail_leftovers();
        return;
    }
    core_->stop();
    if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id())
        thread_.join();
    core_->fail_leftovers();
    log::info("amqp.stopped", {{"adapter", name_}});
}

} // namespace broker::adapters::amqp
