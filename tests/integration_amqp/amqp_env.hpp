// The AMQP tests' world: the executable's one real RabbitMQ (amqp_broker::shared()), a real
// edibroker in-process (broker_env) whose rules declare the portal as an `amqp` adapter instance,
// a real HTTP receiver as the municipality's EPJ, and qpid-proton peers standing for the portal
// and for an EPJ that answers synchronous requests on its own queues.
//
// Every test case gets its own queue namespace (queue-pattern "<ns>{herid}_{kind}"), so cases
// never see each other's messages on the shared RabbitMQ.
#pragma once

#include "../integration/broker_env.hpp"
#include "amqp_broker.hpp"
#include "amqp_client.hpp"

#include <random>

namespace testing {

inline std::string random_hex(std::size_t n) {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    static const char* d = "0123456789abcdef";
    std::string s;
    for (std::size_t i = 0; i < n; ++i)
        s += d[rng() % 16];
    return s;
}

inline std::string new_uuid() {
    std::string h = random_hex(32);
    return h.substr(0, 8) + "-" + h.substr(8, 4) + "-4" + h.substr(13, 3) + "-a" + h.substr(17, 3) + "-" + h.substr(20, 12);
}

/// The fixture Dialogmelding with its sender and receiver swapped: Oslo's home care answering
/// the portal. 'type' replaces the message function.
inline std::string answer_message(const std::string& msg_id, const std::string& type = "DIALOG_INNBYGGER_EKONTAKT") {
    std::string s = dialog_message(msg_id);
    auto cut = [&](const std::string& tag) {
        auto b = s.find("<" + tag + ">");
        auto e = s.find("</" + tag + ">");
        REQUIRE(b != std::string::npos);
        REQUIRE(e != std::string::npos);
        return std::make_pair(b + tag.size() + 2, e);
    };
    auto [sb, se] = cut("Sender");
    std::string sender = s.substr(sb, se - sb);
    auto [rb, re] = cut("Receiver");
    std::string receiver = s.substr(rb, re - rb);
    s.replace(rb, re - rb, sender);  // Receiver comes after Sender: replace it first
    s.replace(sb, se - sb, receiver);
    return replace_all(s, "DIALOG_INNBYGGER_EKONTAKT", type);
}

struct amqp_world {
    amqp_broker* mq = nullptr;
    std::string ns = "t" + random_hex(8) + ".";
    std::unique_ptr<broker_env> env;

    /// Starts edibroker with the portal instance 'helsenorge' (serving Oslo's home care 9100110
    /// and nurse 9100111), the EPJ behind http-push, and the EPJ's own AMQP queues ('epj-sync',
    /// serving the portal 8093244) answering synchronous requests. 'adapter_opts' are extra
    /// options of the helsenorge instance.
    explicit amqp_world(std::function<void(broker::config&)> tune = {}, const std::string& adapter_opts = "") {
        mq = amqp_broker::shared();
        if (!mq)
            return;
        std::string url = mq->url();
        std::string ns_copy = ns;
        auto rules = [url, ns_copy, adapter_opts](const std::string& vendor_url) {
            return R"(<routing-rules xmlns="urn:edibroker:routing-rules:1">
  <adapter name="helsenorge" type="amqp">
    <option name="url" value=")" + url + R"("/>
    <option name="her-ids" value="9100110, 9100111"/>
    <option name="queue-pattern" value=")" + ns_copy + R"({herid}_{kind}"/>
    <option name="reconnect-min-ms" value="50"/>
    <option name="reconnect-max-ms" value="400"/>
    <option name="send-timeout-ms" value="3000"/>
)" + adapter_opts + R"(  </adapter>
  <adapter name="epj-sync" type="amqp">
    <option name="url" value=")" + url + R"("/>
    <option name="her-ids" value="8093244"/>
    <option name="queue-pattern" value=")" + ns_copy + R"(epj.{herid}_{kind}"/>
    <option name="reconnect-min-ms" value="50"/>
    <option name="reconnect-max-ms" value="400"/>
  </adapter>
  <adapter name="vendor" type="http-push">
    <option name="url" value=")" + vendor_url + R"("/>
    <option name="timeout-ms" value="5000"/>
  </adapter>
  <rule id="oslo-vendor" priority="100">
    <match receiver-or-ancestor="9100100"/>
    <deliver adapter="vendor"/>
    <option name="sync-adapter" value="epj-sync"/>
  </rule>
  <rule id="portal" priority="100">
    <match receiver-or-ancestor="115851"/>
    <deliver adapter="helsenorge"/>
    <option name="apprec-version" value="1.1"/>
  </rule>
</routing-rules>
)";
        };
        env = std::make_unique<broker_env>(rules, test_registry(), tune);
    }

    bool skip() const { return mq == nullptr; }

    /// Queue names and addresses in this case's namespace.
    std::string queue(const std::string& her, const std::string& kind) const { return ns + her + "_" + kind; }
    std::string addr(const std::string& her, const std::string& kind) const { return "/queue/" + queue(her, kind); }
    std::string epj_addr(const std::string& her, const std::string& kind) const {
        return "/queue/" + ns + "epj." + her + "_" + kind;
    }

    /// A message as the portal sends it: every property helsenorge sets.
    amqp_msg portal_message(const std::string& document, const std::string& function = "DIALOG_INNBYGGER_EKONTAKT",
                            const std::string& from = her::portal, const std::string& to = her::oslo_home_care,
                            const std::string& kind = "async") const {
        amqp_msg m;
        m.message_id = new_uuid();
        m.correlation_id = m.message_id;
        m.to = queue(to, kind);
        m.reply_to = queue(from, kind == "sync" ? "syncreply" : kind);
        m.subject = function;
        m.content_type = "text/plain";
        m.body = document;
        m.props["fromHerId"] = amqp_prop::num(std::stoll(from));
        m.props["toHerId"] = amqp_prop::num(std::stoll(to));
        m.props["cpaId"] = amqp_prop::str(new_uuid());
        m.props["applicationTimeStamp"] = amqp_prop::time(epoch_ms());
        return m;
    }
};

/// Skip (with a note) when this machine has no RabbitMQ.
#define AMQP_WORLD_OR_SKIP(w)                                                                       \
    if ((w).skip()) {                                                                               \
        WARN("rabbitmq-server is not installed: skipped (tools/install-deps.sh installs it)");      \
        return;                                                                                     \
    }

} // namespace testing
