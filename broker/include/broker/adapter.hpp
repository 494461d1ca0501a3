// The adapter interface: how a message leaves edibroker towards a vendor system (or waits to be
// fetched). Adapters never throw across this interface; every failure is a delivery_result.
#pragma once

#include "broker/error.hpp"
#include "broker/message.hpp"

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace broker {

/// One message handed to an adapter for delivery.
struct delivery {
    std::string id;                  ///< broker id
    message_facts facts;
    std::shared_ptr<const std::string> document;  ///< the business document (MsgHead or AppRec XML)
    std::string content_type = "application/xml";
    int attempt = 1;                 ///< 1 for the first try
    std::map<std::string, std::string> route_options;  ///< options of the matching rule
};

/// How a delivery attempt ended.
struct delivery_result {
    enum class outcome {
        delivered,   ///< the receiver has it (transport acknowledged)
        waiting,     ///< accepted for pick-up (pull): delivered once fetched
        retriable,   ///< try again later (timeouts, 5xx, connection refused, 429)
        permanent,   ///< will never succeed as is (4xx, refused content): dead-letter it
    } o = outcome::retriable;
    std::string detail;     ///< short, no content: "http 503", "connect timeout to host:port"
    std::string remote_id;  ///< id the receiver gave the message, if any
};

using delivery_handler = std::function<void(delivery_result)>;

/// What an adapter can take (like a CPP): message types and payload namespaces.
struct capabilities {
    std::vector<std::string> msg_types;  ///< patterns, '*' suffix = prefix; empty = any
    std::vector<std::string> namespaces; ///< accepted content/root namespaces; empty = any
    bool accepts(const message_facts& f) const;
};

/// What intake answered for a document an adapter brought in (a file it picked up, a message it
/// received): the same answer the REST endpoint gives.
struct inbound_result {
    int status = 0;          ///< 201 accepted; 4xx refused (stored as rejected where it could be); 503 not stored
    std::string body_json;   ///< the JSON answer
    std::string id;          ///< broker id of the stored message ("" if nothing was stored)
    bool duplicate = false;  ///< same sender HER-id + MsgId as a stored message: the first answer again
    /// The broker has the document durably (accepted, rejected-and-kept, or a duplicate): the
    /// adapter may now acknowledge or remove it at its source.
    bool stored() const { return !id.empty(); }
};
using inbound_handler = std::function<void(inbound_result)>;
/// Hand a document to intake. 'done' is called exactly once, from a broker thread, after the
/// document is committed to the store (or refused). Never blocks the caller.
using inbound_fn = std::function<void(std::string document, std::string source, inbound_handler done)>;

/// The answer to a synchronous request (helsenorge's _sync/_syncreply pattern, standards §2.1).
struct sync_reply {
    std::string document;      ///< the receiver's answer (MsgHead XML)
    std::string content_type;  ///< as the receiver sent it ("" = unknown)
    std::string subject;       ///< message function the receiver gave ("" = unknown)
};
/// Called exactly once, from any thread: the answer, or an error (code "T01", "E21", "unroutable",
/// "adapter.no-sync", "sync.timeout", "sync.send-failed", "shutting-down", ...).
using sync_handler = std::function<void(result<sync_reply>)>;
/// Route a synchronous request to its receiver's adapter and hand back the answer within
/// 'timeout' (the engine's hook for adapters that receive sync requests). Never blocks the caller;
/// nothing is stored.
using sync_fn = std::function<void(std::string document, std::string source, std::chrono::milliseconds timeout,
                                   sync_handler done)>;

/// One configured adapter instance (e.g. "visma-oslo" of type "visma").
class adapter {
public:
    virtual ~adapter() = default;
    virtual const std::string& name() const = 0;
    virtual std::string_view type() const = 0;
    virtual const capabilities& caps() const = 0;
    /// Whether this instance can take this document, decided at intake once the route is known, so
    /// a message it cannot take is refused with an AppRec (error code + reason) instead of failing
    /// later. The default checks caps(); adapters that convert (e.g. Dialogmelding 1.1 → 1.0)
    /// override it to say whether the conversion is possible without loss.
    virtual result<void> can_take(const message_facts& f, std::string_view document) const;
    /// Start delivering. Returns an error if the instance cannot start (bad URL, missing folder).
    virtual result<void> start() = 0;
    /// Deliver asynchronously; 'done' is called exactly once, from any thread, within the adapter's
    /// configured timeout. Must not block the caller.
    virtual void deliver(delivery d, delivery_handler done) = 0;
    /// Stop: pending deliveries complete with outcome::retriable ("shutting down").
    virtual void stop() = 0;
    /// Synchronous request/reply: send 'd' to its receiver and hand back the receiver's answer
    /// within 'timeout'. 'done' is called exactly once, from any thread. Must not block the caller.
    /// The default refuses with "adapter.no-sync".
    virtual void request(delivery d, std::chrono::milliseconds timeout, sync_handler done) {
        (void)d;
        (void)timeout;
        if (done)
            done(error{"adapter.no-sync", "adapter type '" + std::string(type()) + "' cannot answer synchronous requests"});
    }
};

using adapter_ptr = std::unique_ptr<adapter>;

/// What a factory gets to build an instance.
struct adapter_config {
    std::string name;                               ///< instance name
    std::string type;
    std::map<std::string, std::string> options;     ///< from the rules file
    boost::asio::any_io_executor executor;          ///< for adapters that use Asio
    inbound_fn inbound;                             ///< for adapters that also receive (files, queues)
    std::string data_dir{};                         ///< the broker's data-dir: base of relative paths in options
    sync_fn sync_request{};                         ///< for adapters that receive synchronous requests (amqp _sync)
};

class adapter_factory {
public:
    virtual ~adapter_factory() = default;
    virtual std::string_view type() const = 0;
    /// Check options without building (used at rules-load time). Errors name the option.
    virtual result<void> check(const adapter_config& cfg) const = 0;
    virtual result<adapter_ptr> create(const adapter_config& cfg) const = 0;
    /// What instances of this type accept.
    virtual capabilities caps(const adapter_config& cfg) const = 0;
};

/// Explicit registration: no static constructors. A duplicate type name is refused.
class adapter_registry {
public:
    result<void> add(std::unique_ptr<adapter_factory> f);
    const adapter_factory* find(std::string_view type) const;
    std::vector<std::string> types() const;

private:
    std::map<std::string, std::unique_ptr<adapter_factory>, std::less<>> factories_;
};

/// Registers every adapter built into this binary (generated from adapters/CMakeLists.txt).
void register_builtin_adapters(adapter_registry& r);

} // namespace broker
