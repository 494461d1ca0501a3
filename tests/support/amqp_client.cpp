#include "amqp_client.hpp"

#include <proton/binary.hpp>
#include <proton/connection.hpp>
#include <proton/connection_options.hpp>
#include <proton/container.hpp>
#include <proton/delivery.hpp>
#include <proton/error_condition.hpp>
#include <proton/message.hpp>
#include <proton/message_id.hpp>
#include <proton/messaging_handler.hpp>
#include <proton/receiver.hpp>
#include <proton/receiver_options.hpp>
#include <proton/scalar.hpp>
#include <proton/sender.hpp>
#include <proton/sender_options.hpp>
#include <proton/source_options.hpp>
#include <proton/symbol.hpp>
#include <proton/target_options.hpp>
#include <proton/timestamp.hpp>
#include <proton/tracker.hpp>
#include <proton/codec/map.hpp>
#include <proton/transport.hpp>
#include <proton/uuid.hpp>
#include <proton/work_queue.hpp>

#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace testing {

std::int64_t epoch_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

namespace {

std::string id_text(const proton::message_id& id) {
    switch (id.type()) {
    case proton::STRING:
        return proton::get<std::string>(id);
    case proton::UUID:
        return proton::get<proton::uuid>(id).str();
    case proton::ULONG:
        return std::to_string(proton::get<std::uint64_t>(id));
    default:
        return {};
    }
}

amqp_msg from_proton(const proton::message& m) {
    amqp_msg out;
    out.message_id = id_text(m.id());
    out.correlation_id = id_text(m.correlation_id());
    out.to = m.to();
    out.reply_to = m.reply_to();
    out.subject = m.subject();
    out.content_type = m.content_type();
    out.durable = m.durable();
    out.ttl_ms = m.ttl().milliseconds();
    std::map<std::string, proton::scalar> props;
    if (!m.properties().empty())
        proton::get(m.properties().value(), props);
    for (auto& [k, v] : props) {
        switch (v.type()) {
        case proton::TIMESTAMP:
            out.props[k] = amqp_prop::time(proton::get<proton::timestamp>(v).milliseconds());
            break;
        case proton::INT:
        case proton::LONG:
        case proton::UINT:
        case proton::SHORT:
            out.props[k] = amqp_prop::num(proton::coerce<std::int64_t>(v));
            break;
        case proton::STRING:
            out.props[k] = amqp_prop::str(proton::get<std::string>(v));
            break;
        case proton::SYMBOL:
            out.props[k] = amqp_prop::str(std::string(proton::get<proton::symbol>(v)));
            break;
        default:
            out.props[k] = amqp_prop::str("<" + proton::type_name(v.type()) + ">");
        }
    }
    const proton::value& b = m.body();
    if (b.type() == proton::BINARY) {
        auto bin = proton::get<proton::binary>(b);
        out.body.assign(bin.begin(), bin.end());
    } else if (b.type() == proton::STRING) {
        out.body = proton::get<std::string>(b);
        out.body_as_string = true;
    }
    return out;
}

proton::message to_proton(const amqp_msg& a) {
    proton::message m;
    if (!a.message_id.empty())
        m.id(a.message_id);
    if (!a.correlation_id.empty())
        m.correlation_id(a.correlation_id);
    if (!a.to.empty())
        m.to(a.to);
    if (!a.reply_to.empty())
        m.reply_to(a.reply_to);
    if (!a.subject.empty())
        m.subject(a.subject);
    if (!a.content_type.empty())
        m.content_type(a.content_type);
    m.durable(a.durable);
    if (a.ttl_ms > 0)
        m.ttl(proton::duration(a.ttl_ms));
    for (auto& [k, p] : a.props) {
        switch (p.k) {
        case amqp_prop::kind::text:
            m.properties().put(k, proton::scalar(p.text));
            break;
        case amqp_prop::kind::integer:
            if (p.number >= INT32_MIN && p.number <= INT32_MAX)
                m.properties().put(k, proton::scalar(static_cast<std::int32_t>(p.number)));
            else
                m.properties().put(k, proton::scalar(p.number));
            break;
        case amqp_prop::kind::timestamp:
            m.properties().put(k, proton::scalar(proton::timestamp(p.number)));
            break;
        }
    }
    if (a.body_as_string)
        m.body(a.body);
    else
        m.body(proton::binary(a.body));
    return m;
}

} // namespace

struct amqp_client::impl : proton::messaging_handler {
    std::string url;
    std::string user, password, hostport;
    proton::container container;
    std::thread thread;
    proton::work_queue* cwq = nullptr;  // the connection's: work touching it must run there

    // Guarded by m.
    mutable std::mutex m;
    std::condition_variable cv;
    bool open = false;
    bool closed = false;
    std::string failure;
    std::map<std::string, std::deque<amqp_msg>> inbox;   // by address
    std::map<std::string, bool> attached;                // receivers by address

    // Container thread only.
    proton::connection conn;
    std::map<std::string, proton::sender> senders;
    std::map<std::string, std::deque<std::pair<proton::message, std::shared_ptr<std::promise<bool>>>>> waiting;
    std::map<std::string, std::shared_ptr<std::promise<bool>>> unsettled;  // by tag text
    std::map<std::string, std::string> receiver_address;                   // link name -> address
    std::uint64_t next_tag = 1;

    explicit impl(const std::string& u) : url(u), container(*this) {
        // amqp://user:password@host:port
        std::string rest = url.substr(url.find("://") + 3);
        if (auto at = rest.rfind('@'); at != std::string::npos) {
            std::string info = rest.substr(0, at);
            rest = rest.substr(at + 1);
            auto colon = info.find(':');
            user = info.substr(0, colon);
            password = colon == std::string::npos ? "" : info.substr(colon + 1);
        }
        hostport = rest;
        container.auto_stop(false);
    }

    void on_container_start(proton::container& c) override {
        proton::connection_options co;
        if (!user.empty()) {
            co.user(user);
            co.password(password);
            co.sasl_allowed_mechs("PLAIN");
            co.sasl_allow_insecure_mechs(true);
        }
        conn = c.connect("amqp://" + hostport, co);
    }
    void on_connection_open(proton::connection& c) override {
        std::lock_guard lk(m);
        cwq = &c.work_queue();
        open = true;
        cv.notify_all();
    }
    void on_receiver_open(proton::receiver& r) override {
        std::lock_guard lk(m);
        attached[receiver_address[r.name()]] = true;
        cv.notify_all();
    }
    void on_sendable(proton::sender& s) override { flush(s); }
    void on_message(proton::delivery& d, proton::message& msg) override {
        amqp_msg a = from_proton(msg);
        std::string addr = receiver_address[d.receiver().name()];
        d.accept();
        std::lock_guard lk(m);
        inbox[addr].push_back(std::move(a));
        cv.notify_all();
    }
    void settle(const proton::tracker& t, bool ok) {
        auto b = t.tag();
        std::string key(b.begin(), b.end());
        auto it = unsettled.find(key);
        if (it == unsettled.end())
            return;
        it->second->set_value(ok);
        unsettled.erase(it);
    }
    void on_tracker_accept(proton::tracker& t) override { settle(t, true); }
    void on_tracker_reject(proton::tracker& t) override { settle(t, false); }
    void on_tracker_release(proton::tracker& t) override { settle(t, false); }
    void on_transport_close(proton::transport& t) override {
        for (auto& [k, p] : unsettled)
            p->set_value(false);
        unsettled.clear();
        for (auto& [addr, q] : waiting)
            for (auto& [msg, p] : q)
                p->set_value(false);
        waiting.clear();
        senders.clear();
        // 'conn' stays: it keeps the connection (and cwq) alive until the client is destroyed.
        std::lock_guard lk(m);
        closed = true;
        failure = t.error().what();
        cv.notify_all();
    }
    void on_error(const proton::error_condition& e) override {
        std::lock_guard lk(m);
        failure = e.what();
    }

    void flush(proton::sender& s) {
        auto w = waiting.find(s.target().address());
        if (w == waiting.end())
            return;
        while (!w->second.empty() && s.credit() > 0) {
            auto [msg, p] = std::move(w->second.front());
            w->second.pop_front();
            std::uint64_t n = next_tag++;
            proton::binary tag(8, 0);
            for (int i = 0; i < 8; ++i)
                tag[i] = static_cast<std::uint8_t>(n >> (8 * i));
            unsettled[std::string(tag.begin(), tag.end())] = p;
            s.send(msg, tag);
        }
    }

    void send(const std::string& address, proton::message msg, std::shared_ptr<std::promise<bool>> p) {
        if (!conn || closed) {
            p->set_value(false);
            return;
        }
        auto it = senders.find(address);
        if (it == senders.end()) {
            proton::sender_options so;
            so.target(proton::target_options().durability_mode(proton::terminus::CONFIGURATION));
            it = senders.emplace(address, conn.open_sender(address, so)).first;
        }
        waiting[address].emplace_back(std::move(msg), std::move(p));
        flush(it->second);
    }

    void subscribe(const std::string& address) {
        if (!conn || closed)
            return;
        proton::receiver_options ro;
        ro.auto_accept(false).credit_window(200).source(
            proton::source_options().durability_mode(proton::terminus::CONFIGURATION));
        proton::receiver r = conn.open_receiver(address, ro);
        receiver_address[r.name()] = address;
    }
};

amqp_client::amqp_client(const std::string& url, std::chrono::milliseconds timeout) : impl_(std::make_unique<impl>(url)) {
    impl_->thread = std::thread([i = impl_.get()] {
        try {
            i->container.run();
        } catch (const std::exception& e) {
            std::lock_guard lk(i->m);
            i->failure = e.what();
            i->closed = true;
            i->cv.notify_all();
        }
    });
    std::unique_lock lk(impl_->m);
    if (!impl_->cv.wait_for(lk, timeout, [this] { return impl_->open || impl_->closed; }) || !impl_->open) {
        std::string why = impl_->failure.empty() ? "timeout" : impl_->failure;
        lk.unlock();
        impl_->container.stop();
        impl_->thread.join();
        throw std::runtime_error("amqp_client: cannot connect to the AMQP broker: " + why);
    }
}

amqp_client::~amqp_client() {
    auto* i = impl_.get();
    auto close = [i] {
        if (i->conn && i->conn.active())
            i->conn.close();
        i->container.stop();
    };
    if (!i->cwq || !i->cwq->add(close))
        i->container.stop();
    if (i->thread.joinable())
        i->thread.join();
}

bool amqp_client::connected() const {
    std::lock_guard lk(impl_->m);
    return impl_->open && !impl_->closed;
}

bool amqp_client::send(const std::string& address, const amqp_msg& msg, std::chrono::milliseconds timeout) {
    auto p = std::make_shared<std::promise<bool>>();
    auto f = p->get_future();
    auto m = std::make_shared<proton::message>(to_proton(msg));
    auto* i = impl_.get();
    auto job = [i, address, m, p] { i->send(address, std::move(*m), p); };
    if (!i->cwq->add(job))
        return false;
    if (f.wait_for(timeout) != std::future_status::ready)
        return false;
    return f.get();
}

bool amqp_client::subscribe(const std::string& address, std::chrono::milliseconds timeout) {
    auto* i = impl_.get();
    {
        std::lock_guard lk(i->m);
        if (i->attached.count(address))
            return i->attached[address];
        i->attached[address] = false;
    }
    auto job = [i, address] { i->subscribe(address); };
    if (!i->cwq->add(job))
        return false;
    std::unique_lock lk(i->m);
    return i->cv.wait_for(lk, timeout, [&] { return i->attached[address] || i->closed; }) && i->attached[address];
}

std::optional<amqp_msg> amqp_client::receive(const std::string& address, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    if (!subscribe(address, timeout))
        return std::nullopt;
    auto* i = impl_.get();
    std::unique_lock lk(i->m);
    if (!i->cv.wait_until(lk, deadline, [&] { return !i->inbox[address].empty(); }))
        return std::nullopt;
    amqp_msg out = std::move(i->inbox[address].front());
    i->inbox[address].pop_front();
    return out;
}

} // namespace testing
