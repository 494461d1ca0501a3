// Digihelse citizen dialogue (issue 6): the portal's rules (text length, attachments: number,
// size, type by MimeType and magic number), threading by ConversationRef, and both identities of
// a relative acting with power of attorney. A real broker on port 0; the vendor receiver stands
// for Oslo's EPJ, the pull inbox for the portal. Messages come from samples/digihelse/.
#include "broker_env.hpp"

#include <cstdio>
#include <sys/wait.h>

using namespace testing;

namespace {

std::string sample(const std::string& name) { return read_file(source_dir() / "samples/digihelse" / name); }

/// Replace the first occurrence of 'from' (which must be there).
std::string replace_once(std::string s, const std::string& from, const std::string& to) {
    auto p = s.find(from);
    REQUIRE(p != std::string::npos);
    s.replace(p, from.size(), to);
    return s;
}

const std::string first_msg_id = "a1c0f7e2-1b2c-4d3e-8f4a-5b6c7d8e9f01";
const std::string question = "Kan hjemmesykepleien komme litt senere på torsdag?";

/// A citizen message with its MsgId and text replaced.
std::string citizen_message(const std::string& msg_id, const std::string& text) {
    return replace_once(replace_once(sample("message-first.xml"), first_msg_id, msg_id), question, text);
}

std::string repeat(const std::string& unit, std::size_t n) {
    std::string s;
    s.reserve(unit.size() * n);
    for (std::size_t i = 0; i < n; ++i)
        s += unit;
    return s;
}

/// A Document with one Base64Container attachment.
std::string attachment_doc(const std::string& mime, const std::string& bytes) {
    return "<Document><RefDoc><MsgType V=\"A\" DN=\"Vedlegg\"/><MimeType>" + mime +
           "</MimeType><Content><Base64Container xmlns=\"http://www.kith.no/xmlstds/base64container\">" +
           base64_encode(bytes) + "</Base64Container></Content></RefDoc></Document>";
}

/// The first citizen message with these attachments after its Dialogmelding.
std::string with_attachments(const std::string& msg_id, const std::vector<std::string>& docs) {
    std::string s = citizen_message(msg_id, "Se vedlegg.");
    std::string all;
    for (auto& d : docs)
        all += d;
    return replace_once(s, "</MsgHead>", all + "</MsgHead>");
}

const std::string png_head = std::string("\x89PNG\r\n\x1a\n", 8);
const std::string jpg_head = std::string("\xFF\xD8\xFF\xE0", 4);
const std::string pdf_head = "%PDF-1.4\n";

/// The AppRec the broker sent the portal for a refused message, as XML.
std::string refusal_apprec(broker_env& env, const boost::json::object& answer) {
    std::string apprec_id = str(answer, "appRecId");
    REQUIRE(!apprec_id.empty());
    auto doc = env.get("/Messages/" + apprec_id + "/business-document");
    REQUIRE(doc.status == 200);
    return doc.body;
}

/// Post and expect a refusal with 'code'; checks the AppRec carries the code and the reason.
boost::json::object expect_refused(broker_env& env, const std::string& doc, const std::string& code, int http = 400) {
    auto r = env.post_xml(doc);
    INFO(r.body);
    REQUIRE(r.status == http);
    auto o = json_of(r);
    CHECK(str(o["error"].as_object(), "code") == code);
    std::string xml = refusal_apprec(env, o);
    CHECK(xml.find("V=\"" + code + "\"") != std::string::npos);
    CHECK(xml.find("OT=\"digihelse:") != std::string::npos);  // the rule's reason, in Error/@OT
    CHECK(xml.find("<Status V=\"2\"") != std::string::npos);
    return o;
}

} // namespace

TEST_CASE("digihelse: a citizen message and its reply are threaded by ConversationRef", "[integration][digihelse]") {
    broker_env env;
    auto first = env.post_xml(sample("message-first.xml"));
    REQUIRE(first.status == 201);
    std::string first_id = str(json_of(first), "id");
    auto st = env.status(first_id, "delivered");
    CHECK(str(st, "state") == "delivered");
    CHECK(str(st["digihelse"].as_object()["thread"].as_object(), "status") == "first");

    // The EPJ answers (Oslo → portal): RefToParent and RefToConversation name the first message.
    auto reply = env.post_xml(sample("message-reply.xml"));
    REQUIRE(reply.status == 201);
    auto ro = json_of(reply);
    CHECK(!ro.contains("warning"));
    std::string reply_id = str(ro, "id");
    auto rs = env.status(reply_id, "waiting");
    CHECK(str(rs, "state") == "waiting");  // in the portal's inbox
    auto thread = rs["digihelse"].as_object()["thread"].as_object();
    CHECK(str(thread, "status") == "reply");
    CHECK(str(thread, "parentId") == first_id);
    CHECK(str(thread, "conversation") == first_msg_id);

    // The portal finds the reply with its conversation.
    auto inbox = env.get("/Messages?receiverHerIds=" + her::portal);
    REQUIRE(inbox.status == 200);
    CHECK(inbox.body.find("\"conversationRef\":\"" + first_msg_id + "\"") != std::string::npos);

    SECTION("a reply whose RefToConversation is not the parent's conversation is refused (E10)") {
        std::string bad = replace_once(sample("message-reply.xml"), "b2d1a8f3-2c3d-4e4f-9a5b-6c7d8e9f0a12",
                                       "b2d1a8f3-2c3d-4e4f-9a5b-6c7d8e9f0a99");
        bad = replace_once(bad, "<RefToConversation>" + first_msg_id,
                           "<RefToConversation>00000000-0000-4000-8000-000000000000");
        expect_refused(env, bad, "E10");
    }
    SECTION("a reply about another patient is refused (E10)") {
        std::string bad = replace_once(sample("message-reply.xml"), "b2d1a8f3-2c3d-4e4f-9a5b-6c7d8e9f0a12",
                                       "b2d1a8f3-2c3d-4e4f-9a5b-6c7d8e9f0a98");
        bad = replace_once(bad, "<Id>01010112345</Id>", "<Id>03030312345</Id>");
        expect_refused(env, bad, "E10");
    }
    SECTION("a reply to a message the broker does not know is accepted with a warning") {
        std::string orphan = replace_once(sample("message-reply.xml"), "b2d1a8f3-2c3d-4e4f-9a5b-6c7d8e9f0a12",
                                          "b2d1a8f3-2c3d-4e4f-9a5b-6c7d8e9f0a97");
        orphan = replace_all(orphan, first_msg_id, "11111111-2222-4333-8444-555555555555");
        auto r = env.post_xml(orphan);
        REQUIRE(r.status == 201);
        auto o = json_of(r);
        CHECK(!str(o, "warning").empty());
        auto s = env.status(str(o, "id"));
        CHECK(str(s["digihelse"].as_object()["thread"].as_object(), "status") == "parent-unknown");
    }
}

TEST_CASE("digihelse: a relative with power of attorney keeps both identities", "[integration][digihelse]") {
    broker_env env;
    auto r = env.post_xml(sample("message-on-behalf.xml"));
    REQUIRE(r.status == 201);
    auto st = env.status(str(json_of(r), "id"), "delivered");
    REQUIRE(st.contains("digihelse"));
    auto d = st["digihelse"].as_object();
    CHECK(str(d["patient"].as_object(), "id") == "01010112345");
    CHECK(str(d["patient"].as_object(), "idType") == "FNR");
    CHECK(d["onBehalfOfPatient"].as_bool());
    auto acting = d["actingPerson"].as_object();
    CHECK(str(acting, "id") == "02029054321");
    CHECK(str(acting, "idType") == "FNR");
    CHECK(str(acting["roleToPatient"].as_object(), "code") == "FULLMEKTIG");

    // The patient writing for themself has no acting person.
    auto own = env.post_xml(sample("message-first.xml"));
    REQUIRE(own.status == 201);
    auto s2 = env.status(str(json_of(own), "id"));
    CHECK(!s2["digihelse"].as_object()["onBehalfOfPatient"].as_bool());
    CHECK(s2["digihelse"].as_object()["actingPerson"].is_null());
}

TEST_CASE("digihelse: the message text is at most 1000 characters", "[integration][digihelse]") {
    broker_env env;
    // 1000 two-byte characters are 1000 characters, not 2000 bytes.
    auto ok = env.post_xml(citizen_message("c0000000-0000-4000-8000-000000001000", repeat("ø", 1000)));
    CHECK(ok.status == 201);
    auto o = expect_refused(env, citizen_message("c0000000-0000-4000-8000-000000001001", repeat("ø", 1001)), "T99");
    CHECK(str(o["error"].as_object(), "message").find("1001 characters") != std::string::npos);
}

TEST_CASE("digihelse: attachments: at most 3, at most 4 MB each, JPG/PNG/PDF only", "[integration][digihelse]") {
    broker_env env;
    SECTION("three attachments of the allowed kinds are accepted (the sample)") {
        auto r = env.post_xml(sample("message-attachments.xml"));
        CHECK(r.status == 201);
    }
    SECTION("a fourth attachment is refused (T99)") {
        auto o = expect_refused(env,
                                with_attachments("c0000000-0000-4000-8000-000000000004",
                                                 {attachment_doc("image/png", png_head + "a"),
                                                  attachment_doc("image/png", png_head + "b"),
                                                  attachment_doc("image/jpeg", jpg_head + "c"),
                                                  attachment_doc("application/pdf", pdf_head + "d")}),
                                "T99");
        CHECK(str(o["error"].as_object(), "message").find("4 attachments") != std::string::npos);
    }
    SECTION("4 MB is the most per attachment (T99 beyond)") {
        const std::size_t limit = 4u << 20;
        auto ok = env.post_xml(with_attachments("c0000000-0000-4000-8000-000000000005",
                                                {attachment_doc("application/pdf",
                                                                pdf_head + std::string(limit - pdf_head.size(), 'x'))}));
        CHECK(ok.status == 201);
        expect_refused(env,
                       with_attachments("c0000000-0000-4000-8000-000000000006",
                                        {attachment_doc("application/pdf",
                                                        pdf_head + std::string(limit + 1 - pdf_head.size(), 'x'))}),
                       "T99");
    }
    SECTION("a type other than JPG/PNG/PDF is refused (T10)") {
        expect_refused(env,
                       with_attachments("c0000000-0000-4000-8000-000000000007",
                                        {attachment_doc("image/gif", std::string("GIF89a") + "xyz")}),
                       "T10");
    }
    SECTION("bytes that are not what the MimeType says are refused (T10)") {
        auto o = expect_refused(env,
                                with_attachments("c0000000-0000-4000-8000-000000000008",
                                                 {attachment_doc("image/png", pdf_head + "not a png")}),
                                "T10");
        CHECK(str(o["error"].as_object(), "message").find("declared PNG but its bytes are PDF") != std::string::npos);
        expect_refused(env,
                       with_attachments("c0000000-0000-4000-8000-000000000009",
                                        {attachment_doc("application/pdf", std::string("MZ\x90\x00", 4) + "exe")}),
                       "T10");
    }
}

TEST_CASE("digihelse: every sample validates with `edibroker validate`", "[integration][digihelse]") {
    std::string cmd = broker_binary().string() + " validate";
    for (auto* f : {"message-first.xml", "message-reply.xml", "message-on-behalf.xml", "message-attachments.xml",
                    "appointment.xml", "appointment-changed.xml", "appointment-2.xml", "appointment-3.xml",
                    "cancel-one.xml", "cancel-period.xml"})
        cmd += " '" + (source_dir() / "samples/digihelse" / f).string() + "'";
    cmd += " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    REQUIRE(p != nullptr);
    std::string out;
    char buf[4096];
    while (std::size_t n = fread(buf, 1, sizeof buf, p))
        out.append(buf, n);
    int rc = pclose(p);
    INFO(out);
    CHECK(WIFEXITED(rc));
    CHECK(WEXITSTATUS(rc) == 0);
    CHECK(out.find("valid (DIALOG_INNBYGGER_AVTALEUTSENDING") != std::string::npos);
}
