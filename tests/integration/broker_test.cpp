// End to end through the real server: HTTP in, SQLite, routing by the registry, delivery to a real
// HTTP receiver standing for the vendor, AppRec back, read receipts, duplicates, bad input.
#include "broker_env.hpp"

#include "broker/apprec.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>

using namespace testing;
namespace json = boost::json;

TEST_CASE("a Dialogmelding from the portal reaches the vendor the registry names", "[integration]") {
    broker_env env;
    std::string doc = dialog_message("a0000000-0000-4000-8000-000000000001");
    auto r = env.post_xml(doc);
    REQUIRE(r.status == 201);
    auto o = json_of(r);
    std::string id = str(o, "id");
    CHECK(str(o, "msgId") == "a0000000-0000-4000-8000-000000000001");
    CHECK(r.headers["Location"] == "/Messages/" + id);

    REQUIRE(env.vendor.wait_for_requests(1, std::chrono::seconds(10)));
    auto req = env.vendor.requests().at(0);
    CHECK(req.method == "POST");
    CHECK(req.target == "/vendor");
    CHECK(req.body == doc);  // byte-exact
    CHECK(req.headers["Content-Type"] == "application/xml");
    CHECK(req.headers["X-EDIBroker-Id"] == id);

    auto st = env.status(id, "delivered");
    CHECK(str(st, "state") == "delivered");
    CHECK(str(st, "transportDeliveryState") == "Acknowledged");
    CHECK(str(st, "receiverHerId") == her::oslo_home_care);
    CHECK(str(st, "senderHerId") == her::portal);
    CHECK(str(st, "adapter") == "vendor");
    CHECK(st.at("appRecStatus").is_null());
    // received → validated → routed → delivered, each with a time
    auto& tr = st.at("transitions").as_array();
    REQUIRE(tr.size() >= 4);
    CHECK(str(tr[0].as_object(), "state") == "received");
    CHECK(str(tr[1].as_object(), "state") == "validated");
    CHECK(str(tr[2].as_object(), "state") == "routed");
    CHECK(str(tr[3].as_object(), "state") == "delivered");

    // The stored document is the bytes as received.
    auto bd = env.get("/Messages/" + id + "/business-document");
    CHECK(bd.status == 200);
    CHECK(bd.body == doc);
    auto meta = json_of(env.get("/Messages/" + id));
    CHECK(str(meta, "type") == "DIALOG_INNBYGGER_EKONTAKT");
    CHECK(str(meta, "contentNamespace") == "http://www.kith.no/xmlstds/dialog/2013-01-23");
}

TEST_CASE("the JSON businessDocument form is accepted like raw XML", "[integration]") {
    broker_env env;
    std::string doc = dialog_message("a0000000-0000-4000-8000-000000000002");
    std::string body = R"({"businessDocument":")" + base64_encode(doc) +
                       R"(","contentType":"application/xml","contentTransferEncoding":"base64"})";
    auto r = http_request("POST", env.url("/Messages"), body, {"Content-Type: application/json"});
    REQUIRE(r.status == 201);
    REQUIRE(env.vendor.wait_for_requests(1, std::chrono::seconds(10)));
    CHECK(env.vendor.requests().at(0).body == doc);
}

TEST_CASE("the vendor's AppRec gets back to the sender and shows in the status", "[integration]") {
    broker_env env;
    auto r = env.post_xml(dialog_message("a0000000-0000-4000-8000-000000000003"));
    REQUIRE(r.status == 201);
    std::string id = str(json_of(r), "id");
    env.status(id, "delivered");

    SECTION("built by the broker from POST /Messages/{id}/apprec/{herId}") {
        auto a = http_request("POST", env.url("/Messages/" + id + "/apprec/" + her::oslo_home_care),
                              R"({"appRecStatus":"Rejected","appRecErrorList":[{"errorCode":"E35","description":"Pasienten finnes ikke i mottakersystemet"}]})",
                              {"Content-Type: application/json"});
        REQUIRE(a.status == 201);
        std::string apprec_id = str(json_of(a), "id");

        auto st = env.status(id, "apprec-rejected");
        CHECK(str(st, "state") == "apprec-rejected");
        CHECK(str(st, "appRecStatus") == "Rejected");
        CHECK(str(st, "appRecId") == apprec_id);
        auto& errs = st.at("appRecErrorList").as_array();
        REQUIRE(errs.size() == 1);
        CHECK(str(errs[0].as_object(), "errorCode") == "E35");

        // The portal (the original sender) finds the AppRec in its inbox.
        auto inbox = env.get("/Messages?receiverHerIds=" + her::portal);
        REQUIRE(inbox.status == 200);
        auto list = json::parse(inbox.body).as_array();
        REQUIRE(list.size() == 1);
        CHECK(str(list[0].as_object(), "id") == apprec_id);
        CHECK(str(list[0].as_object(), "kind") == "apprec");
        auto xml = env.get("/Messages/" + apprec_id + "/business-document");
        CHECK(xml.body.find("http://www.kith.no/xmlstds/apprec/2012-02-15") != std::string::npos);
        CHECK(xml.body.find("a0000000-0000-4000-8000-000000000003") != std::string::npos);  // OriginalMsgId
        CHECK(xml.body.find("E35") != std::string::npos);
        // Fetching it delivers it (pull).
        CHECK(str(env.status(apprec_id, "delivered"), "state") == "delivered");
        // And GET /Messages/{id}/apprec serves it from the original.
        CHECK(env.get("/Messages/" + id + "/apprec").body == xml.body);

        // A second AppRec for the same message is refused.
        auto again = http_request("POST", env.url("/Messages/" + id + "/apprec/" + her::oslo_home_care),
                                  R"({"appRecStatus":"Ok"})", {"Content-Type: application/json"});
        CHECK(again.status == 409);
        // An AppRec to an AppRec is refused.
        auto on_apprec = http_request("POST", env.url("/Messages/" + apprec_id + "/apprec/" + her::portal),
                                      R"({"appRecStatus":"Ok"})", {"Content-Type: application/json"});
        CHECK(on_apprec.status == 409);
        CHECK(str(json_of(on_apprec).at("error").as_object(), "code") == "apprec.on-apprec");
    }

    SECTION("a full AppRec XML posted to /Messages") {
        broker::apprec::request req;
        req.version = "1.0";
        req.st = broker::apprec::status::ok;
        req.original.msg_id = "a0000000-0000-4000-8000-000000000003";
        req.original.msg_type = "DIALOG_INNBYGGER_EKONTAKT";
        req.original.gen_date = "2026-11-21T10:15:00Z";
        req.original.sender.lvl1_her = her::portal_org;
        req.original.sender.lvl1_name = "Direktoratet for e-helse";
        req.original.sender.lvl2_her = her::portal;
        req.original.sender.lvl2_name = "Helsenorge.no";
        req.original.receiver.lvl1_her = her::oslo_org;
        req.original.receiver.lvl1_name = "Oslo kommune";
        req.original.receiver.lvl2_her = her::oslo_home_care;
        req.original.receiver.lvl2_name = "Hjemmetjenesten";
        auto xml = broker::apprec::build(req);
        REQUIRE(xml);
        auto a = env.post_xml(*xml);
        REQUIRE(a.status == 201);
        CHECK(str(json_of(a), "originalId") == id);
        auto st = env.status(id, "apprec-ok");
        CHECK(str(st, "appRecStatus") == "Ok");
        CHECK(str(st, "state") == "apprec-ok");
    }

    SECTION("an AppRec from a party that did not receive the message is refused") {
        auto a = http_request("POST", env.url("/Messages/" + id + "/apprec/" + her::bergen_home_care),
                              R"({"appRecStatus":"Ok"})", {"Content-Type: application/json"});
        CHECK(a.status == 403);
        CHECK(str(json_of(a).at("error").as_object(), "code") == "apprec.sender-not-receiver");
    }

    SECTION("Rejected without errors is refused, as the standard says") {
        auto a = http_request("POST", env.url("/Messages/" + id + "/apprec/" + her::oslo_home_care),
                              R"({"appRecStatus":"Rejected"})", {"Content-Type: application/json"});
        CHECK(a.status == 400);
        CHECK(str(json_of(a).at("error").as_object(), "code") == "request.invalid");
    }
}

TEST_CASE("read receipts show in the status", "[integration]") {
    broker_env env;
    auto r = env.post_xml(dialog_message("a0000000-0000-4000-8000-000000000004"));
    std::string id = str(json_of(r), "id");
    env.status(id, "delivered");

    auto wrong = http_request("PUT", env.url("/Messages/" + id + "/read/" + her::bergen_home_care));
    CHECK(wrong.status == 403);

    auto ok = http_request("PUT", env.url("/Messages/" + id + "/read/" + her::oslo_home_care));
    CHECK(ok.status == 204);
    auto st = env.status(id, "read");
    CHECK(str(st, "state") == "read");
    REQUIRE(st.at("read").is_object());
    CHECK(str(st.at("read").as_object(), "herId") == her::oslo_home_care);
    CHECK(!str(st.at("timestamps").as_object(), "read").empty());
    int reads = 0;
    for (auto& t : st.at("transitions").as_array())
        reads += str(t.as_object(), "state") == "read";
    CHECK(reads == 1);
    // Idempotent.
    CHECK(http_request("PUT", env.url("/Messages/" + id + "/read/" + her::oslo_home_care)).status == 204);
    CHECK(http_request("PUT", env.url("/Messages/nope/read/" + her::oslo_home_care)).status == 404);
}

TEST_CASE("a duplicate gets the first answer, is stored once and delivered once", "[integration]") {
    broker_env env;
    std::string doc = dialog_message("a0000000-0000-4000-8000-000000000005");
    auto first = env.post_xml(doc);
    REQUIRE(first.status == 201);
    std::string id = str(json_of(first), "id");
    env.status(id, "delivered");
    auto second = env.post_xml(doc);
    CHECK(second.status == 201);
    CHECK(second.body == first.body);
    CHECK(second.headers["X-EDIBroker-Duplicate"] == "true");
    // Also across a restart (it is the store that remembers).
    env.restart();
    auto third = env.post_xml(doc);
    CHECK(third.body == first.body);
    // Delivered once. The status of the one message is still 'delivered' with one attempt path.
    CHECK(env.vendor.request_count() == 1);
    auto list = json::parse(env.get("/Messages?receiverHerIds=" + her::oslo_home_care).body).as_array();
    CHECK(list.size() == 1);
}

TEST_CASE("each kind of bad input gets its error", "[integration]") {
    broker_env env;

    SECTION("not well-formed XML: T01, no AppRec (the sender cannot be identified)") {
        auto r = env.post_xml("<MsgHead xmlns=\"http://www.kith.no/xmlstds/msghead/2006-05-24\"><MsgInfo>");
        CHECK(r.status == 400);
        auto o = json_of(r);
        auto& e = o.at("error").as_object();
        CHECK(e.at("code") == "T01");
        REQUIRE(e.at("details").as_array().size() >= 1);
        CHECK(e.at("details").as_array()[0].as_object().at("line").as_int64() >= 1);
        CHECK(o.if_contains("appRecId") == nullptr);
        // Kept, visible, rejected.
        auto st = env.status(str(o, "id"));
        CHECK(str(st, "state") == "rejected");
        CHECK(str(st.at("error").as_object(), "code") == "T01");
    }

    SECTION("schema-invalid: T02 and an AppRec (status 2, error T02) back to the sender") {
        std::string doc = dialog_message("a0000000-0000-4000-8000-000000000006");
        doc = replace_all(doc, "<MIGversion>v1.2 2006-05-24</MIGversion>", "");
        auto r = env.post_xml(doc);
        CHECK(r.status == 400);
        auto o = json_of(r);
        CHECK(str(o.at("error").as_object(), "code") == "T02");
        std::string apprec_id = str(o, "appRecId");
        REQUIRE(!apprec_id.empty());
        auto st = env.status(str(o, "id"));
        CHECK(str(st, "state") == "rejected");
        CHECK(str(st, "appRecStatus") == "Rejected");
        CHECK(str(st.at("appRecErrorList").as_array()[0].as_object(), "errorCode") == "T02");
        // The AppRec waits in the portal's inbox, addressed to the sender.
        auto inbox = json::parse(env.get("/Messages?receiverHerIds=" + her::portal).body).as_array();
        REQUIRE(inbox.size() == 1);
        CHECK(str(inbox[0].as_object(), "id") == apprec_id);
        auto xml = env.get("/Messages/" + apprec_id + "/business-document").body;
        CHECK(xml.find("<Status V=\"2\"") != std::string::npos);
        CHECK(xml.find("V=\"T02\"") != std::string::npos);
    }

    SECTION("unsupported content namespace: T10") {
        std::string doc = replace_all(dialog_message("a0000000-0000-4000-8000-000000000007"),
                                      "http://www.kith.no/xmlstds/dialog/2013-01-23",
                                      "http://www.kith.no/xmlstds/dialog/2099-01-01");
        auto r = env.post_xml(doc);
        CHECK(r.status == 400);
        CHECK(str(json_of(r).at("error").as_object(), "code") == "T10");
    }

    SECTION("unknown root namespace: T10") {
        auto r = env.post_xml("<Foo xmlns=\"urn:something:else\"/>");
        CHECK(r.status == 400);
        CHECK(str(json_of(r).at("error").as_object(), "code") == "T10");
    }

    SECTION("unknown receiver HER-id: E21 with an AppRec") {
        std::string doc = replace_all(dialog_message("a0000000-0000-4000-8000-000000000008"), "9100110", "9999999");
        auto r = env.post_xml(doc);
        CHECK(r.status == 422);
        auto o = json_of(r);
        CHECK(str(o.at("error").as_object(), "code") == "E21");
        CHECK(!str(o, "appRecId").empty());
        CHECK(env.vendor.request_count() == 0);
    }

    SECTION("a message addressed to an organisation only: E21") {
        // Drop the receiver's level 2: the message now goes to Oslo kommune itself.
        std::string doc = dialog_message("a0000000-0000-4000-8000-000000000009");
        auto b = doc.find("<Organisation>\n          <OrganisationName>Hjemmetjenesten");
        auto e = doc.find("</Organisation>", b) + std::string("</Organisation>").size();
        REQUIRE(b != std::string::npos);
        doc.erase(b, e - b);
        auto r = env.post_xml(doc);
        CHECK(r.status == 422);
        CHECK(str(json_of(r).at("error").as_object(), "code") == "E21");
    }

    SECTION("transport-level mistakes") {
        CHECK(http_request("POST", env.url("/Messages"), "{", {"Content-Type: application/json"}).status == 400);
        CHECK(http_request("POST", env.url("/Messages"), R"({"businessDocument":"***"})",
                           {"Content-Type: application/json"})
                  .status == 400);
        CHECK(http_request("POST", env.url("/Messages"), "x", {"Content-Type: image/png"}).status == 415);
        CHECK(http_request("POST", env.url("/Messages"), "", {"Content-Type: application/xml"}).status == 400);
        auto nf = env.get("/Messages/does-not-exist");
        CHECK(nf.status == 404);
        CHECK(str(json_of(nf).at("error").as_object(), "code") == "not-found");
        CHECK(env.get("/nothing-here").status == 404);
        CHECK(http_request("DELETE", env.url("/Messages")).status == 405);
        CHECK(env.get("/Messages").status == 400);  // receiverHerIds missing
        CHECK(env.get("/Messages?receiverHerIds=abc").status == 400);
    }

    // Whatever was refused, nothing reached the vendor.
    CHECK(env.vendor.request_count() == 0);
}

TEST_CASE("a message no rule matches is kept as unroutable and visible", "[integration]") {
    broker_env env;
    std::string doc = replace_all(replace_all(dialog_message("a0000000-0000-4000-8000-00000000000a"), "9100110",
                                              her::bergen_home_care),
                                  "9100100", her::bergen_org);
    auto r = env.post_xml(doc);
    REQUIRE(r.status == 201);
    auto o = json_of(r);
    CHECK(str(o, "state") == "unroutable");
    CHECK(!str(o, "reason").empty());
    auto st = env.status(str(o, "id"));
    CHECK(str(st, "state") == "unroutable");
}

TEST_CASE("pull delivery: the receiver fetches, then reads", "[integration]") {
    broker_env env;
    // Oslo's home care writes back to the portal: the portal is served by a pull inbox.
    std::string doc = dialog_message("a0000000-0000-4000-8000-00000000000b");
    doc = replace_all(doc, "<Id>8093244</Id>", "<Id>SWAP_A</Id>");
    doc = replace_all(doc, "<Id>9100110</Id>", "<Id>8093244</Id>");
    doc = replace_all(doc, "<Id>SWAP_A</Id>", "<Id>9100110</Id>");
    doc = replace_all(doc, "<Id>115851</Id>", "<Id>SWAP_B</Id>");
    doc = replace_all(doc, "<Id>9100100</Id>", "<Id>115851</Id>");
    doc = replace_all(doc, "<Id>SWAP_B</Id>", "<Id>9100100</Id>");
    auto r = env.post_xml(doc);
    REQUIRE(r.status == 201);
    std::string id = str(json_of(r), "id");
    CHECK(str(env.status(id, "waiting"), "state") == "waiting");

    auto list = json::parse(env.get("/Messages?receiverHerIds=" + her::portal + "," + her::oslo_nurse).body).as_array();
    REQUIRE(list.size() == 1);
    CHECK(str(list[0].as_object(), "id") == id);
    auto doc_json = http_request("GET", env.url("/Messages/" + id + "/business-document"), "",
                                 {"Accept: application/json"});
    auto dj = json_of(doc_json);
    CHECK(base64_decode(str(dj, "businessDocument")) == doc);
    CHECK(str(env.status(id, "delivered"), "transportDeliveryState") == "Acknowledged");
    CHECK(http_request("PUT", env.url("/Messages/" + id + "/read/" + her::portal)).status == 204);
    // Read messages leave the unread list.
    CHECK(json::parse(env.get("/Messages?receiverHerIds=" + her::portal).body).as_array().empty());
}

TEST_CASE("a vendor that is down is retried, visible in the status, until it answers", "[integration]") {
    broker_env env;
    std::atomic<int> calls{0};
    env.vendor.set_handler([&](const recorded_request&) -> std::pair<int, std::string> {
        return ++calls <= 2 ? std::pair<int, std::string>{503, "down"} : std::pair<int, std::string>{201, "{}"};
    });
    auto r = env.post_xml(dialog_message("a0000000-0000-4000-8000-00000000000c"));
    std::string id = str(json_of(r), "id");
    auto st = env.status(id, "delivered");
    CHECK(str(st, "state") == "delivered");
    CHECK(st.at("attempts").as_int64() == 3);  // two failed attempts, then the one that succeeded
    int failed = 0;
    for (auto& t : st.at("transitions").as_array())
        if (str(t.as_object(), "state") == "failed")
            ++failed;
    CHECK(failed == 2);
    CHECK(env.vendor.request_count() == 3);
}

TEST_CASE("a vendor refusing permanently puts the message in the dead letters", "[integration]") {
    broker_env env;
    env.vendor.respond_with(400, "bad");
    auto r = env.post_xml(dialog_message("a0000000-0000-4000-8000-00000000000d"));
    std::string id = str(json_of(r), "id");
    auto st = env.status(id, "dead");
    CHECK(str(st, "state") == "dead");
    CHECK(str(st, "lastError").find("400") != std::string::npos);
}

namespace {

/// Posts a message whose delivery hangs at the vendor (until 'hold' opens), then stops the broker
/// while it hangs: the message stays 'routed' in the store. Returns its id.
std::string stop_while_delivering(broker_env& env, gate& hold, const std::string& msg_id) {
    env.vendor.set_handler([&hold](const recorded_request&) -> std::pair<int, std::string> {
        hold.wait();
        return {503, "down"};
    });
    auto r = env.post_xml(dialog_message(msg_id));
    std::string id = str(json_of(r), "id");
    REQUIRE(env.vendor.wait_for_requests(1, std::chrono::seconds(10)));
    hold.open();
    env.server->stop();
    env.server.reset();
    return id;
}

} // namespace

TEST_CASE("delivery resumes after a restart", "[integration]") {
    broker_env env;
    gate hold;
    const std::string id = stop_while_delivering(env, hold, "a0000000-0000-4000-8000-00000000000e");
    env.vendor.respond_with(201, "{}");
    env.start();
    auto st = env.status(id, "delivered");
    CHECK(str(st, "state") == "delivered");
}

TEST_CASE("a message whose stored document is damaged goes to the dead letters with the reason", "[integration]") {
    broker_env env;
    gate hold;
    const std::string id = stop_while_delivering(env, hold, "a0000000-0000-4000-8000-00000000000f");
    // The last byte of the body log's only record (the message's body) flipped on the disk.
    const auto seg = env.dir.path() / "data" / "edibroker.db-bodies" / "00000001.seg";
    {
        std::fstream f(seg, std::ios::binary | std::ios::in | std::ios::out);
        f.seekg(-1, std::ios::end);
        const char c = static_cast<char>(f.get());
        f.seekp(-1, std::ios::end);
        f.put(static_cast<char>(c ^ 0x20));
    }
    env.vendor.respond_with(201, "{}");
    env.start();
    auto st = env.status(id, "dead");
    CHECK(str(st, "state") == "dead");
    INFO(str(st, "lastError"));
    CHECK(str(st, "lastError").find("the stored document cannot be read") != std::string::npos);
    CHECK(str(st, "lastError").find("fails its CRC") != std::string::npos);
    CHECK(env.vendor.request_count() == 1);  // never sent again
}

namespace {

/// Nanoseconds the thread named 'name' of this process has run (/proc/self/task/*/schedstat);
/// -1 when there is no such thread.
long long thread_run_ns(const std::string& name) {
    for (const auto& t : std::filesystem::directory_iterator("/proc/self/task")) {
        std::ifstream comm(t.path() / "comm");
        std::string n;
        std::getline(comm, n);
        if (n != name)
            continue;
        std::ifstream st(t.path() / "schedstat");
        long long ns = -1;
        st >> ns;
        return ns;
    }
    return -1;
}

} // namespace

TEST_CASE("kept-alive connections are served by every I/O thread, and stop closes them all", "[integration]") {
    namespace asio = boost::asio;
    namespace beast = boost::beast;
    namespace http = beast::http;
    using tcp = asio::ip::tcp;
    broker_env env({}, test_registry(), [](broker::config& c) { c.threads = 3; });
    auto colon = env.server->listen_address().rfind(':');
    const auto port = static_cast<unsigned short>(std::stoi(env.server->listen_address().substr(colon + 1)));
    asio::io_context io;
    std::vector<tcp::socket> conns;
    for (int i = 0; i < 3; ++i) {
        conns.emplace_back(io);
        conns.back().connect({asio::ip::make_address("127.0.0.1"), port});
    }
    int n = 0;
    auto post = [&](tcp::socket& s) {
        char id[40];
        std::snprintf(id, sizeof id, "a0000000-0000-4000-8000-%012d", 900 + n++);
        http::request<http::string_body> req{http::verb::post, "/Messages", 11};
        req.set(http::field::host, "127.0.0.1");
        req.set(http::field::content_type, "application/xml");
        req.body() = dialog_message(id);
        req.prepare_payload();
        http::write(s, req);
        beast::flat_buffer b;
        http::response<http::string_body> res;
        http::read(s, b, res);
        INFO(res.body());
        CHECK(res.result_int() == 201);
        CHECK(res.keep_alive());
    };
    // One message on each connection: each I/O thread has served one (and built its validator).
    for (auto& s : conns)
        post(s);
    const long long before1 = thread_run_ns("edb-io-1"), before2 = thread_run_ns("edb-io-2");
    REQUIRE(before1 >= 0);
    REQUIRE(before2 >= 0);
    for (int round = 0; round < 20; ++round)
        for (auto& s : conns)
            post(s);
    // Threads 1 and 2 run nothing but HTTP connections and intake: both did work for these.
    CHECK(thread_run_ns("edb-io-1") > before1);
    CHECK(thread_run_ns("edb-io-2") > before2);
    CHECK(env.vendor.wait_for_requests(63, std::chrono::seconds(20)));
    // Stopping with the connections still open returns, and each connection is closed.
    env.server->stop();
    for (auto& s : conns) {
        char c;
        boost::system::error_code ec;
        s.read_some(asio::buffer(&c, 1), ec);
        CHECK(ec == asio::error::eof);
    }
    env.server.reset();
}
