// The amqp adapter's option checks and receive-side rules, without an AMQP broker.
#include "../../adapters/amqp/checks.hpp"
#include "../../adapters/amqp/options.hpp"

#include "broker/xml.hpp"

#include <catch2/catch.hpp>

using namespace broker::adapters::amqp;

namespace {

std::map<std::string, std::string> base() { return {{"url", "amqp://guest:guest@127.0.0.1:5672"}, {"her-ids", "9100110"}}; }

envelope good_envelope() {
    envelope e;
    e.message_id = "m-1";
    e.to = "9100110_async";
    e.reply_to = "8093244_async";
    e.subject = "DIALOG_INNBYGGER_EKONTAKT";
    e.content_type = "text/plain";
    e.from_her = "8093244";
    e.to_her = "9100110";
    e.cpa_id = "c";
    e.app_timestamp = "2026-11-22T01:00:00.000Z";
    e.has_body = true;
    e.body_size = 100;
    return e;
}

broker::xml::validation_result facts(const std::string& sender2, const std::string& sender1, const std::string& recv2,
                                     const std::string& type, broker::xml::verdict v = broker::xml::verdict::valid) {
    broker::xml::validation_result vr;
    vr.v = v;
    vr.facts.sender.lvl2_her = sender2;
    vr.facts.sender.lvl1_her = sender1;
    vr.facts.receiver.lvl2_her = recv2;
    vr.facts.receiver.lvl1_her = "9100100";
    vr.facts.msg_type = type;
    return vr;
}

} // namespace

TEST_CASE("amqp options: defaults, url forms and queue names", "[amqp][options]") {
    auto o = parse_options(base());
    REQUIRE(o.has_value());
    CHECK(o->endpoint == "127.0.0.1:5672");
    CHECK(o->user == "guest");
    CHECK(o->password == "guest");
    CHECK(!o->tls);
    CHECK(o->sync_timeout == std::chrono::milliseconds(15000));
    CHECK(o->queue("8093244", queue_kind::async) == "8093244_async");
    CHECK(o->queue("8093244", queue_kind::syncreply) == "8093244_syncreply");
    CHECK(o->address("8093244_error") == "/queue/8093244_error");
    CHECK(o->reply_her("9100110") == "9100110");
    CHECK(o->reply_her("9100111") == "9100110");

    auto m = base();
    m["url"] = "amqps://svc%40nhn:p%3Ass@sb.test.nhn.no";
    m["queue-pattern"] = "test.{herid}.{kind}";
    m["address-prefix"] = "";
    m["her-ids"] = "9100110,9100111 9100110";
    o = parse_options(m);
    REQUIRE(o.has_value());
    CHECK(o->tls);
    CHECK(o->endpoint == "sb.test.nhn.no:5671");
    CHECK(o->user == "svc@nhn");
    CHECK(o->password == "p:ss");
    CHECK(o->her_ids == std::vector<std::string>{"9100110", "9100111"});
    CHECK(o->address(o->queue("1", queue_kind::error)) == "test.1.error");
}

TEST_CASE("amqp options: every mistake names its option", "[amqp][options]") {
    auto fails = [](std::map<std::string, std::string> m, const std::string& needle) {
        auto o = parse_options(m);
        INFO(needle);
        REQUIRE(!o.has_value());
        CHECK(o.error().code == "config.invalid");
        CHECK(o.error().message.find(needle) != std::string::npos);
        CHECK(o.error().message.find("s3cret") == std::string::npos);  // never echoes a password
    };
    fails({}, "'url' is required");
    auto m = base();
    m["url"] = "http://127.0.0.1";
    fails(m, "'url'");
    m["url"] = "amqp://u:s3cret@:5672";
    fails(m, "'url' has no host");
    m["url"] = "amqp://u:s3cret@host:99999";
    fails(m, "'url' has an invalid port");
    m["url"] = "amqp://u:s3cret@host/vhost";
    fails(m, "'url' must not have a path");
    m = base();
    m["her-ids"] = "9100110, helsenorge";
    fails(m, "'her-ids'");
    m = base();
    m["queue-pattern"] = "{herid}_async";
    fails(m, "'queue-pattern' must contain {herid} and {kind}");
    m = base();
    m["sync-timeout-ms"] = "15s";
    fails(m, "'sync-timeout-ms' must be a whole number");
    m = base();
    m["prefetch"] = "0";
    fails(m, "'prefetch' must be between");
    m = base();
    m["insecure"] = "true";
    fails(m, "only applies to an amqps:// url");
    m = base();
    m["timeout-ms"] = "5";
    fails(m, "unknown option 'timeout-ms'");
}

TEST_CASE("amqp checks: required properties and their shapes", "[amqp][checks]") {
    auto o = *parse_options(base());
    CHECK(!check_envelope(good_envelope(), o));

    auto e = good_envelope();
    e.app_timestamp.clear();
    e.cpa_id.clear();
    auto r = check_envelope(e, o);
    REQUIRE(r);
    CHECK(r->condition == std::string(condition::invalid_field));
    CHECK(r->data == std::vector<std::string>{"missing cpaId", "missing applicationTimeStamp"});

    e = good_envelope();
    e.from_her.clear();
    e.unusable = {"fromHerId"};
    r = check_envelope(e, o);
    REQUIRE(r);
    CHECK(r->data == std::vector<std::string>{"unusable fromHerId"});

    e = good_envelope();
    e.to_her = "0042";
    CHECK(check_envelope(e, o)->description.find("toHerId") != std::string::npos);

    e = good_envelope();
    e.content_type = "application/pkcs7-mime; smime-type=signed-and-enveloped-data";
    CHECK(check_envelope(e, o)->condition == std::string(condition::unsupported));
    e.content_type = "Text/Plain; charset=utf-8";
    CHECK(!check_envelope(e, o));
    e.content_type = "application/json";
    CHECK(check_envelope(e, o)->condition == std::string(condition::invalid_field));

    e = good_envelope();
    e.body_size = o.max_message_bytes + 1;
    CHECK(check_envelope(e, o)->data == std::vector<std::string>{"body"});
    e = good_envelope();
    e.has_body = false;
    CHECK(check_envelope(e, o));
}

TEST_CASE("amqp checks: the document against the envelope", "[amqp][checks]") {
    auto e = good_envelope();
    using broker::xml::verdict;
    CHECK(!check_document(e, facts("8093244", "115851", "9100110", "DIALOG_INNBYGGER_EKONTAKT"), true));
    // fromHerId may be the organisation level of the sender too.
    e.from_her = "115851";
    CHECK(!check_document(e, facts("8093244", "115851", "9100110", "DIALOG_INNBYGGER_EKONTAKT"), true));

    e = good_envelope();
    auto r = check_document(e, facts("9100210", "9100200", "9100110", "DIALOG_INNBYGGER_EKONTAKT"), true);
    REQUIRE(r);
    CHECK(r->condition == std::string(condition::spoofing));
    // Spoofing is reported before schema errors: an invalid document from a spoofed sender is abuse.
    r = check_document(e, facts("9100210", "", "9100110", "X", verdict::invalid), true);
    CHECK(r->condition == std::string(condition::spoofing));

    r = check_document(e, facts("", "", "", "", verdict::not_well_formed), true);
    CHECK(r->condition == std::string(condition::not_well_formed));
    r = check_document(e, facts("8093244", "115851", "9100110", "X", verdict::invalid), true);
    CHECK(r->condition == std::string(condition::not_well_formed));
    CHECK(r->data == std::vector<std::string>{"T02"});
    // Sync requests are parsed, not validated: an 'invalid' verdict is not held against them.
    CHECK(check_document(e, facts("8093244", "115851", "9100110", "DIALOG_INNBYGGER_EKONTAKT", verdict::invalid), false) ==
          std::nullopt);
    r = check_document(e, facts("8093244", "115851", "9100110", "X", verdict::unsupported), true);
    CHECK(r->condition == std::string(condition::unsupported));

    r = check_document(e, facts("8093244", "115851", "9100111", "DIALOG_INNBYGGER_EKONTAKT"), true);
    CHECK(r->condition == std::string(condition::invalid_field));
    CHECK(r->data == std::vector<std::string>{"toHerId"});
    r = check_document(e, facts("8093244", "115851", "9100110", "DIALOG_INNBYGGER_TIMERESERVASJON"), true);
    CHECK(r->data == std::vector<std::string>{"subject"});
    r = check_document(e, facts("", "", "9100110", "DIALOG_INNBYGGER_EKONTAKT"), true);
    CHECK(r->condition == std::string(condition::invalid_field));
}

TEST_CASE("amqp checks: where an error report goes", "[amqp][checks]") {
    auto m = base();
    m["queue-pattern"] = "t1.{herid}_{kind}";
    auto o = *parse_options(m);
    auto e = good_envelope();
    CHECK(error_target_her(e, o) == "8093244");
    e.from_her = "helsenorge";
    e.reply_to = "/queue/t1.8093244_syncreply";
    CHECK(error_target_her(e, o) == "8093244");
    e.reply_to = "8093244_async";  // not this instance's pattern
    CHECK(error_target_her(e, o).empty());
    CHECK(queue_name_of("/queue/8093244_async") == "8093244_async");
    CHECK(queue_name_of("tb.test.nhn.no/NHNTESTServiceBus/8141703_async") == "8141703_async");
    CHECK(std::string(condition_for_sync_error("sync.timeout")) == condition::internal);
    CHECK(std::string(condition_for_sync_error("E21")) == condition::invalid_field);
    CHECK(std::string(condition_for_sync_error("adapter.no-sync")) == condition::unsupported);
}
