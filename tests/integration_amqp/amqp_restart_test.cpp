// Restarts mid-stream: the AMQP broker (RabbitMQ) goes away and comes back, and edibroker itself
// restarts, while messages flow both ways. Nothing is lost and nothing is duplicated: inbound
// messages are settled only after they are stored (a redelivery is de-duplicated on sender
// HER-id + MsgId), outbound deliveries fail as retriable while the AMQP broker is away and are
// retried by the engine with the same AMQP message-id.
#include "amqp_env.hpp"

#include <catch2/catch.hpp>

#include <set>

using namespace testing;
using namespace std::chrono_literals;

namespace {

std::string header(const recorded_request& r, const std::string& name) {
    auto it = r.headers.find(name);
    return it == r.headers.end() ? std::string() : it->second;
}

/// OriginalMsgId of an AppRec document (the citizen's MsgId it answers).
std::string original_msg_id(const std::string& apprec) {
    auto b = apprec.find("<OriginalMsgId>");
    if (b == std::string::npos)
        return {};
    auto id = apprec.find("<Id>", b);
    auto e = apprec.find("</Id>", id);
    if (id == std::string::npos || e == std::string::npos)
        return {};
    return apprec.substr(id + 4, e - id - 4);
}

} // namespace

TEST_CASE("amqp: a restart of the AMQP broker mid-stream loses and duplicates nothing", "[amqp][restart]") {
    amqp_world w([](broker::config& c) {
        c.max_attempts = 100000;  // retried for as long as the AMQP broker is away
        c.retry_base_ms = 20;
        c.retry_max_ms = 250;
    });
    AMQP_WORLD_OR_SKIP(w);
    const std::string in_q = w.addr(her::oslo_home_care, "async");
    const std::string out_q = w.addr(her::portal, "async");
    constexpr int per_phase = 30;

    std::vector<std::string> msg_ids;
    auto send_batch = [&](amqp_client& portal, int n) {
        for (int i = 0; i < n; ++i) {
            std::string id = new_uuid();
            msg_ids.push_back(id);
            REQUIRE(portal.send(in_q, w.portal_message(dialog_message(id))));
        }
    };
    std::map<std::string, std::string> broker_id;  // MsgId -> edibroker id
    std::set<std::string> apprec_sent;
    auto send_apprecs = [&](std::size_t from, std::size_t to) {
        for (std::size_t i = from; i < to; ++i) {
            const std::string& id = broker_id.at(msg_ids[i]);
            auto r = http_request("POST", w.env->url("/Messages/" + id + "/apprec/" + her::oslo_home_care),
                                  R"({"appRecStatus":"Ok"})", {"Content-Type: application/json"});
            REQUIRE(r.status == 201);
            apprec_sent.insert(str(json_of(r), "id"));
        }
    };
    auto learn_ids = [&] {
        for (auto& r : w.env->vendor.requests())
            broker_id[header(r, "X-EDIBroker-MsgId")] = header(r, "X-EDIBroker-Id");
    };

    auto portal = std::make_unique<amqp_client>(w.mq->url());
    REQUIRE(portal->subscribe(out_q));

    // Phase 1: messages in; the EPJ has them all.
    send_batch(*portal, per_phase);
    REQUIRE(w.env->vendor.wait_for_requests(per_phase, 30s));
    learn_ids();

    // Phase 2: more in, AppRecs for phase 1 out, and the AMQP broker stops while they flow.
    send_batch(*portal, per_phase);
    send_apprecs(0, per_phase);
    w.mq->stop();
    // The portal client accepted what reached it before the stop: count those before it goes.
    std::map<std::string, int> by_message_id;
    std::map<std::string, std::string> original_of;
    while (auto m = portal->receive(out_q, 0ms)) {
        ++by_message_id[m->message_id];
        original_of[m->message_id] = original_msg_id(m->body);
    }
    portal.reset();
    w.mq->start();
    portal = std::make_unique<amqp_client>(w.mq->url());
    REQUIRE(portal->subscribe(out_q));

    // Phase 3: more in, and edibroker itself restarts in the middle of it.
    send_batch(*portal, per_phase / 2);
    w.env->restart();
    send_batch(*portal, per_phase - per_phase / 2);

    // Every message reaches the EPJ exactly once.
    const std::size_t total = msg_ids.size();
    REQUIRE(w.env->vendor.wait_for_requests(total, 60s));
    learn_ids();
    for (std::size_t i = 0; i < total; ++i) {
        const std::string& id = msg_ids[i];
        INFO("MsgId " << id);
        CHECK(broker_id.count(id));
        if (!broker_id.count(id))
            continue;
        // Phase 1's messages have their AppRec already; the others are delivered and wait for one.
        const char* want = i < static_cast<std::size_t>(per_phase) ? "apprec-ok" : "delivered";
        CHECK(str(w.env->status(broker_id[id], want), "state") == want);
    }
    send_apprecs(per_phase, total);

    // Every AppRec reaches the portal's queue; a resend (if a confirm was lost in the restart)
    // carries the same message-id, so the portal's de-duplication sees each once.
    for (auto& id : apprec_sent) {
        INFO("AppRec " << id);
        CHECK(str(w.env->status(id, "delivered", 60000), "state") == "delivered");
    }
    while (by_message_id.size() < apprec_sent.size()) {
        auto m = portal->receive(out_q, 20s);
        if (!m)
            break;
        ++by_message_id[m->message_id];
        original_of[m->message_id] = original_msg_id(m->body);
    }
    // Everything is settled at the AMQP broker: the queues are empty, so every message that was
    // ever put on the portal's queue is in the client's hands now. Count the raw copies too.
    auto depths = w.mq->queue_depths();
    CHECK(depths[w.queue(her::oslo_home_care, "async")] == 0);
    CHECK(depths[w.queue(her::portal, "async")] == 0);
    while (auto extra = portal->receive(out_q, 0ms))
        ++by_message_id[extra->message_id];

    CHECK(by_message_id.size() == total);
    std::set<std::string> answered;
    int raw_duplicates = 0;
    for (auto& [mid, n] : by_message_id) {
        CHECK(apprec_sent.count(mid) == 1);  // the AMQP message-id is edibroker's id of the AppRec
        raw_duplicates += n - 1;
        answered.insert(original_of[mid]);
    }
    CHECK(answered == std::set<std::string>(msg_ids.begin(), msg_ids.end()));
    if (raw_duplicates)
        WARN(raw_duplicates << " AppRec(s) were resent after a confirm was lost in the restart (same message-id)");

    auto reqs = w.env->vendor.requests();
    CHECK(reqs.size() == total);
    std::set<std::string> delivered;
    for (auto& r : reqs)
        delivered.insert(header(r, "X-EDIBroker-MsgId"));
    CHECK(delivered.size() == total);
}
