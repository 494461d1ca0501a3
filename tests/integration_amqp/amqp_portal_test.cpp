// The portal on a real AMQP 1.0 broker (RabbitMQ): a citizen's Dialogmelding from the portal's
// queue through edibroker to the EPJ (http-push), the EPJ's answer and AppRec back to the
// portal's queue; every refusal on the sender's _error queue; a synchronous request answered
// within its bound.
#include "amqp_env.hpp"

#include <catch2/catch.hpp>

#include <set>
#include <iostream>

using namespace testing;
using namespace std::chrono_literals;

namespace {

std::string header(const recorded_request& r, const std::string& name) {
    auto it = r.headers.find(name);
    return it == r.headers.end() ? std::string() : it->second;
}

void require_helsenorge_properties(const amqp_msg& m, const amqp_world& w, const std::string& from,
                                   const std::string& to, const std::string& kind) {
    INFO("subject " << m.subject << ", to " << m.to);
    CHECK(!m.message_id.empty());
    CHECK(m.to == w.queue(to, kind));
    CHECK(m.content_type == "text/plain");
    CHECK(!m.correlation_id.empty());
    REQUIRE(m.props.count("fromHerId"));
    CHECK(m.props.at("fromHerId").k == amqp_prop::kind::integer);
    CHECK(m.prop("fromHerId") == from);
    REQUIRE(m.props.count("toHerId"));
    CHECK(m.props.at("toHerId").k == amqp_prop::kind::integer);
    CHECK(m.prop("toHerId") == to);
    CHECK(!m.prop("cpaId").empty());
    REQUIRE(m.props.count("applicationTimeStamp"));
    CHECK(m.props.at("applicationTimeStamp").k == amqp_prop::kind::timestamp);
    CHECK(std::llabs(m.props.at("applicationTimeStamp").number - epoch_ms()) < 60000);
}

} // namespace

TEST_CASE("amqp: a citizen's Dialogmelding from the portal's queue reaches the EPJ; answer and AppRec go back",
          "[amqp]") {
    amqp_world w;
    AMQP_WORLD_OR_SKIP(w);
    amqp_client portal(w.mq->url());

    std::string msg_id = new_uuid();
    std::string doc = dialog_message(msg_id);
    amqp_msg in = w.portal_message(doc);
    REQUIRE(portal.send(w.addr(her::oslo_home_care, "async"), in));

    // The EPJ receives the document exactly as the portal sent it.
    REQUIRE(w.env->vendor.wait_for_requests(1, 15s));
    auto req = w.env->vendor.requests().front();
    CHECK(req.body == doc);
    CHECK(header(req, "X-EDIBroker-MsgId") == msg_id);
    std::string id = header(req, "X-EDIBroker-Id");
    REQUIRE(!id.empty());
    auto st = w.env->status(id, "delivered");
    CHECK(str(st, "state") == "delivered");
    auto meta = json_of(w.env->get("/Messages/" + id));
    CHECK(str(meta, "senderHerId") == her::portal);
    CHECK(str(meta, "receiverHerId") == her::oslo_home_care);

    // The EPJ answers the citizen, then sends its AppRec for the citizen's message.
    std::string answer_id = new_uuid();
    auto r = w.env->post_xml(answer_message(answer_id));
    REQUIRE(r.status == 201);
    std::string answer_broker_id = str(json_of(r), "id");
    auto ap = http_request("POST", w.env->url("/Messages/" + id + "/apprec/" + her::oslo_home_care),
                           R"({"appRecStatus":"Ok"})", {"Content-Type: application/json"});
    REQUIRE(ap.status == 201);
    std::string apprec_broker_id = str(json_of(ap), "id");

    // Both land on the portal's _async queue with helsenorge's properties.
    std::map<std::string, amqp_msg> got;  // by subject
    for (int i = 0; i < 2; ++i) {
        auto m = portal.receive(w.addr(her::portal, "async"), 15s);
        REQUIRE(m);
        got[m->subject] = *m;
    }
    REQUIRE(got.count("DIALOG_INNBYGGER_EKONTAKT"));
    REQUIRE(got.count("APPREC"));
    const amqp_msg& answer = got["DIALOG_INNBYGGER_EKONTAKT"];
    require_helsenorge_properties(answer, w, her::oslo_home_care, her::portal, "async");
    CHECK(answer.reply_to == w.queue(her::oslo_home_care, "async"));
    CHECK(answer.message_id == answer_broker_id);  // stable across retries: the broker id
    CHECK(answer.body.find("<MsgId>" + answer_id + "</MsgId>") != std::string::npos);
    CHECK(answer.durable);
    const amqp_msg& apprec = got["APPREC"];
    require_helsenorge_properties(apprec, w, her::oslo_home_care, her::portal, "async");
    CHECK(apprec.body.find("http://www.kith.no/xmlstds/apprec/2012-02-15") != std::string::npos);
    CHECK(apprec.body.find(msg_id) != std::string::npos);  // OriginalMsgId

    // edibroker's view: both were accepted by the AMQP broker, the citizen's message has its AppRec.
    CHECK(str(w.env->status(answer_broker_id, "delivered"), "transportDeliveryState") == "Acknowledged");
    CHECK(str(w.env->status(apprec_broker_id, "delivered"), "state") == "delivered");
    CHECK(str(w.env->status(id, "apprec-ok"), "state") == "apprec-ok");

    // The same AMQP message again (a redelivery) is de-duplicated: the EPJ gets it once.
    REQUIRE(portal.send(w.addr(her::oslo_home_care, "async"), in));
    std::string barrier_id = new_uuid();
    REQUIRE(portal.send(w.addr(her::oslo_home_care, "async"), w.portal_message(dialog_message(barrier_id))));
    REQUIRE(w.env->vendor.wait_for_requests(2, 15s));
    auto reqs = w.env->vendor.requests();
    REQUIRE(reqs.size() == 2);
    CHECK(header(reqs[1], "X-EDIBroker-MsgId") == barrier_id);
}

TEST_CASE("amqp: refused messages go to the sender's _error queue with helsenorge's errorCondition", "[amqp]") {
    amqp_world w;
    AMQP_WORLD_OR_SKIP(w);
    amqp_client portal(w.mq->url());
    const std::string to = w.addr(her::oslo_home_care, "async");

    struct refusal_case {
        const char* name;
        std::function<void(amqp_msg&)> spoil;
        const char* condition;
        std::string error_her = her::portal;
    };
    std::vector<refusal_case> cases = {
        {"no applicationTimeStamp", [](amqp_msg& m) { m.props.erase("applicationTimeStamp"); },
         "transport:invalid-field-value"},
        {"no subject", [](amqp_msg& m) { m.subject.clear(); }, "transport:invalid-field-value"},
        {"no cpaId", [](amqp_msg& m) { m.props.erase("cpaId"); }, "transport:invalid-field-value"},
        {"fromHerId not a HER-id", [](amqp_msg& m) { m.props["fromHerId"] = amqp_prop::str("helsenorge"); },
         "transport:invalid-field-value"},
        {"not XML", [](amqp_msg& m) { m.body = "this is <not xml"; }, "transport:not-well-formed-xml"},
        {"not valid (no MIGversion)",
         [](amqp_msg& m) { m.body = replace_all(m.body, "<MIGversion>v1.2 2006-05-24</MIGversion>", ""); },
         "transport:not-well-formed-xml"},
        {"MsgHead sender is not fromHerId",
         [](amqp_msg& m) { m.props["fromHerId"] = amqp_prop::num(std::stoll(her::bergen_home_care)); },
         "abuse:spoofing-attack", her::bergen_home_care},
        {"subject is not the message function", [](amqp_msg& m) { m.subject = "DIALOG_INNBYGGER_TIMERESERVASJON"; },
         "transport:invalid-field-value"},
        {"toHerId is not the receiver", [](amqp_msg& m) { m.props["toHerId"] = amqp_prop::num(9100111); },
         "transport:invalid-field-value"},
        {"signed and encrypted payload", [](amqp_msg& m) { m.content_type = "application/pkcs7-mime; smime-type=signed-and-enveloped-data"; },
         "transport:unsupported-message"},
    };

    std::map<std::string, const refusal_case*> by_message_id;
    std::set<std::string> error_queues;
    for (auto& c : cases) {
        amqp_msg m = w.portal_message(dialog_message(new_uuid()));
        c.spoil(m);
        by_message_id[m.message_id] = &c;
        error_queues.insert(w.addr(c.error_her, "error"));
        INFO(c.name);
        REQUIRE(portal.send(to, m));
    }
    // A valid message behind them: it reaches the EPJ, the refused ones never do.
    std::string good_id = new_uuid();
    REQUIRE(portal.send(to, w.portal_message(dialog_message(good_id))));

    std::set<std::string> seen;
    for (auto& q : error_queues) {
        std::size_t expected = 0;
        for (auto& c : cases)
            expected += w.addr(c.error_her, "error") == q;
        for (std::size_t i = 0; i < expected; ++i) {
            auto e = portal.receive(q, 15s);
            INFO("error queue " << q << ", message " << i);
            REQUIRE(e);
            std::string original = e->prop("originalMessageId");
            REQUIRE(by_message_id.count(original));
            const refusal_case& c = *by_message_id[original];
            INFO(c.name << ": " << e->prop("errorDescription"));
            CHECK(e->prop("errorCondition") == c.condition);
            CHECK(!e->prop("errorDescription").empty());
            CHECK(e->props.count("errorConditionData"));
            CHECK(e->props.at("receiverTimeStamp").k == amqp_prop::kind::timestamp);
            CHECK(e->body.empty());
            CHECK(e->to == w.queue(c.error_her, "error"));
            CHECK(e->prop("toHerId") == c.error_her);
            CHECK(e->prop("fromHerId") == (std::string(c.name) == "toHerId is not the receiver" ? "9100111" : her::oslo_home_care));
            // Descriptions name fields and HER-ids, never the document's text.
            CHECK(e->prop("errorDescription").find("Kan hjemmesykepleien") == std::string::npos);
            seen.insert(original);
        }
    }
    CHECK(seen.size() == cases.size());

    REQUIRE(w.env->vendor.wait_for_requests(1, 15s));
    CHECK(w.env->vendor.request_count() == 1);
    CHECK(header(w.env->vendor.requests().front(), "X-EDIBroker-MsgId") == good_id);

    // Every message was settled: nothing is left (or held unacknowledged) on the portal's way in.
    auto depths = w.mq->queue_depths();
    REQUIRE(depths.count(w.queue(her::oslo_home_care, "async")));
    CHECK(depths[w.queue(her::oslo_home_care, "async")] == 0);
}

TEST_CASE("amqp: a synchronous request is answered by the EPJ's _sync queue within its bound", "[amqp]") {
    amqp_world w;
    AMQP_WORLD_OR_SKIP(w);
    amqp_client portal(w.mq->url());
    amqp_client epj(w.mq->url());
    REQUIRE(epj.subscribe(w.epj_addr(her::oslo_home_care, "sync")));
    REQUIRE(portal.subscribe(w.addr(her::portal, "syncreply")));

    const std::string function = "DIALOG_INNBYGGER_TIMERESERVASJON";
    amqp_msg request = w.portal_message(replace_all(dialog_message(new_uuid()), "DIALOG_INNBYGGER_EKONTAKT", function),
                                        function, her::portal, her::oslo_home_care, "sync");
    request.ttl_ms = 15000;
    auto t0 = std::chrono::steady_clock::now();
    REQUIRE(portal.send(w.addr(her::oslo_home_care, "sync"), request));

    // The EPJ stand-in gets it on its own _sync queue, reply-to edibroker's _syncreply there.
    auto fwd = epj.receive(w.epj_addr(her::oslo_home_care, "sync"), 10s);
    REQUIRE(fwd);
    CHECK(fwd->subject == function);
    CHECK(fwd->prop("fromHerId") == her::portal);
    CHECK(fwd->prop("toHerId") == her::oslo_home_care);
    CHECK(fwd->reply_to == w.ns + "epj." + her::portal + "_syncreply");
    CHECK(fwd->ttl_ms > 0);
    CHECK(fwd->ttl_ms <= 15000);
    CHECK(fwd->body == request.body);

    amqp_msg reply;
    reply.message_id = new_uuid();
    reply.correlation_id = fwd->correlation_id;
    reply.to = fwd->reply_to;
    reply.reply_to = w.ns + "epj." + her::oslo_home_care + "_async";
    reply.subject = function;
    reply.content_type = "text/plain";
    reply.durable = false;
    reply.body = answer_message(new_uuid(), function);
    reply.props["fromHerId"] = amqp_prop::num(9100110);
    reply.props["toHerId"] = amqp_prop::num(8093244);
    reply.props["cpaId"] = amqp_prop::str(new_uuid());
    reply.props["applicationTimeStamp"] = amqp_prop::time(epoch_ms());
    REQUIRE(epj.send("/queue/" + fwd->reply_to, reply));

    auto answer = portal.receive(w.addr(her::portal, "syncreply"), 15s);
    auto took = std::chrono::steady_clock::now() - t0;
    REQUIRE(answer);
    CHECK(took < 15s);
    CHECK(answer->correlation_id == request.message_id);
    CHECK(answer->subject == function);
    CHECK(answer->body == reply.body);
    CHECK(answer->prop("fromHerId") == her::oslo_home_care);
    CHECK(answer->prop("toHerId") == her::portal);
    CHECK(answer->to == w.queue(her::portal, "syncreply"));

    // Nothing of it was stored: a sync request is not a message in edibroker's store.
    auto list = w.env->get("/Messages?receiverHerIds=" + her::oslo_home_care);
    REQUIRE(list.status == 200);
    CHECK(list.body == "[]");

    // A request the EPJ does not answer: after its bound (the request's TTL, here 800 ms) the
    // portal hears so on its _error queue; the EPJ's late reply is dropped.
    amqp_msg late = request;
    late.message_id = new_uuid();
    late.correlation_id = late.message_id;
    late.ttl_ms = 800;
    t0 = std::chrono::steady_clock::now();
    REQUIRE(portal.send(w.addr(her::oslo_home_care, "sync"), late));
    auto fwd2 = epj.receive(w.epj_addr(her::oslo_home_care, "sync"), 10s);
    REQUIRE(fwd2);
    auto err = portal.receive(w.addr(her::portal, "error"), 10s);
    REQUIRE(err);
    CHECK(std::chrono::steady_clock::now() - t0 < 5s);
    CHECK(err->prop("originalMessageId") == late.message_id);
    CHECK(err->prop("errorCondition") == "transport:internal-error");
    CHECK(err->prop("errorConditionData").find("sync.timeout") != std::string::npos);
    reply.correlation_id = fwd2->correlation_id;
    REQUIRE(epj.send("/queue/" + fwd2->reply_to, reply));
    // A third request still works (the late reply did not disturb anything).
    amqp_msg again = request;
    again.message_id = new_uuid();
    again.correlation_id = again.message_id;
    REQUIRE(portal.send(w.addr(her::oslo_home_care, "sync"), again));
    auto fwd3 = epj.receive(w.epj_addr(her::oslo_home_care, "sync"), 10s);
    REQUIRE(fwd3);
    reply.correlation_id = fwd3->correlation_id;
    REQUIRE(epj.send("/queue/" + fwd3->reply_to, reply));
    std::cerr << "T before answer3\n";
    auto answer3 = portal.receive(w.addr(her::portal, "syncreply"), 15s);
    std::cerr << "T after answer3\n";
    REQUIRE(answer3);
    CHECK(answer3->correlation_id == again.message_id);
    std::cerr << "T end of body\n";
}
