// amqp adapter: edibroker as a participant on a helsenorge-style AMQP 1.0 service bus. One
// instance is one connection to one AMQP broker, with qpid-proton's C++ binding driven by the
// instance's own thread. It
//   - consumes the _async, _sync and _syncreply queues of the HER-ids it serves and hands what
//     arrives to intake, accepting (settling) a message only once edibroker has stored it;
//   - sends what the rules route to it to the receiver's _async queue (deliver) and synchronous
//     requests to the receiver's _sync queue (request), with helsenorge's properties;
//   - refuses malformed or spoofed messages on the sender's _error queue;
//   - reconnects with back-off when the AMQP broker goes away.
// Private to this folder; README.md documents the behaviour.
#pragma once

#include "options.hpp"

#include "broker/adapter.hpp"

#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace broker::adapters::amqp {

class core;  // amqp.cpp: the proton side (handler, connection, links, state)

class adapter final : public broker::adapter {
public:
    adapter(std::string name, options opt, inbound_fn inbound, sync_fn sync);
    ~adapter() override;
    adapter(const adapter&) = delete;
    adapter& operator=(const adapter&) = delete;

    const std::string& name() const override { return name_; }
    std::string_view type() const override { return type_name; }
    const capabilities& caps() const override { return caps_; }
    /// Runs on: any thread. Starts the adapter thread, which connects (and keeps reconnecting);
    /// an AMQP broker that is down at start is not an error.
    result<void> start() override;
    /// Runs on: any thread; never blocks. 'done' runs on the adapter thread, or on the caller's
    /// when the instance is not running.
    void deliver(delivery d, delivery_handler done) override;
    /// Runs on: any thread; never blocks. Sends 'd' to the receiver's _sync queue with reply-to
    /// the served HER-id's _syncreply queue and waits for the reply with the same correlation-id.
    void request(delivery d, std::chrono::milliseconds timeout, sync_handler done) override;
    /// Runs on: any thread except the adapter thread. Completes everything pending (retriable
    /// "shutting down"), closes the connection (unsettled messages go back to their queues) and
    /// joins the thread. Idempotent.
    void stop() override;

private:
    std::string name_;
    capabilities caps_;  // any type, any namespace
    std::unique_ptr<core> core_;
    std::thread thread_;
    std::mutex stop_m_;
    bool started_ = false;  // guarded by stop_m_
    bool stopped_ = false;  // guarded by stop_m_
};

} // namespace broker::adapters::amqp
