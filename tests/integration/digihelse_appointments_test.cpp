// Digihelse appointments (issue 6): the EPJ (Oslo, behind the vendor receiver) publishes
// home-visit appointments as Dialogmelding 1.1 + xCal; a change creates a new instance with
// related-to; the portal lists a patient's appointments (GET /Appointments, HentPlanlagteTimer);
// the citizen cancels one or a whole period; the EPJ confirms or refuses with an AppRec and the
// portal sees the outcome. Messages come from samples/digihelse/.
#include "broker_env.hpp"

using namespace testing;

namespace {

std::string sample(const std::string& name) { return read_file(source_dir() / "samples/digihelse" / name); }

std::string replace_once(std::string s, const std::string& from, const std::string& to) {
    auto p = s.find(from);
    REQUIRE(p != std::string::npos);
    s.replace(p, from.size(), to);
    return s;
}

const std::string patient = "01010112345";
const std::string u1 = "3b1f6a2e-7c4d-4e8a-9f10-2a6b8c0d1e21";   // appointment.xml
const std::string u1b = "3b1f6a2e-7c4d-4e8a-9f10-2a6b8c0d1e22";  // appointment-changed.xml (related-to u1)
const std::string u2 = "5d2e7b3f-8d5e-4f9b-a021-3b7c9d1e2f32";   // appointment-2.xml
const std::string u3 = "7f4a9c5b-0e6f-4a1c-b132-4c8d0e2f3a43";   // appointment-3.xml

std::string post_ok(broker_env& env, const std::string& doc) {
    auto r = env.post_xml(doc);
    INFO(r.body);
    REQUIRE(r.status == 201);
    return str(json_of(r), "id");
}

/// GET /Appointments?patientId=... as uid -> appointment.
std::map<std::string, boost::json::object> appointments(broker_env& env, const std::string& extra = "") {
    auto r = env.get("/Appointments?patientId=" + patient + extra);
    INFO(r.body);
    REQUIRE(r.status == 200);
    auto v = boost::json::parse(r.body);
    REQUIRE(v.is_array());
    std::map<std::string, boost::json::object> out;
    for (auto& x : v.as_array())
        out[str(x.as_object(), "uid")] = x.as_object();
    return out;
}

std::string state_of(broker_env& env, const std::string& uid) {
    auto r = env.get("/Appointments/" + uid);
    REQUIRE(r.status == 200);
    auto o = json_of(r);
    return str(o["current"].as_object(), "state");
}

/// The EPJ (Oslo home care) answers message 'id' with an AppRec.
void epj_apprec(broker_env& env, const std::string& id, const std::string& body) {
    auto a = http_request("POST", env.url("/Messages/" + id + "/apprec/" + her::oslo_home_care), body,
                          {"Content-Type: application/json"});
    INFO(a.body);
    REQUIRE(a.status == 201);
}

/// Publish the four sample appointments: u1, then u1b replacing it, then u2 and u3.
void publish_all(broker_env& env) {
    for (auto* f : {"appointment.xml", "appointment-changed.xml", "appointment-2.xml", "appointment-3.xml"})
        post_ok(env, sample(f));
}

boost::json::object refused(broker_env& env, const std::string& doc, const std::string& code, int http = 400) {
    auto r = env.post_xml(doc);
    INFO(r.body);
    REQUIRE(r.status == http);
    auto o = json_of(r);
    CHECK(str(o["error"].as_object(), "code") == code);
    CHECK(!str(o, "appRecId").empty());
    return o;
}

} // namespace

TEST_CASE("digihelse: appointments are published, changed (related-to) and listed", "[integration][digihelse]") {
    broker_env env;
    std::string id1 = post_ok(env, sample("appointment.xml"));
    CHECK(str(env.status(id1, "waiting"), "state") == "waiting");  // in the portal's inbox
    auto list = appointments(env);
    REQUIRE(list.size() == 1);
    CHECK(str(list[u1], "state") == "planned");
    CHECK(str(list[u1], "kind") == "home-visit");
    CHECK(str(list[u1], "contactHerId") == her::oslo_home_care);
    CHECK(str(list[u1], "dtstart") == "2026-12-01T09:00:00+01:00");

    // The change is a new instance pointing at the old one.
    post_ok(env, sample("appointment-changed.xml"));
    list = appointments(env);
    REQUIRE(list.size() == 1);
    CHECK(str(list[u1b], "state") == "planned");
    CHECK(str(list[u1b], "kind") == "video");
    CHECK(str(list[u1b], "videoUrl") == "https://video.example.no/rom/4711");
    CHECK(str(list[u1b], "relatedTo") == u1);
    CHECK(state_of(env, u1) == "replaced");
    auto chain = json_of(env.get("/Appointments/" + u1b));
    REQUIRE(chain["replaces"].as_array().size() == 1);
    CHECK(str(chain["replaces"].as_array()[0].as_object(), "uid") == u1);

    // A change of the same instance (same uid) is one more row; the newest is current.
    std::string moved = replace_once(sample("appointment-2.xml"), "07c6f3e8-7b8c-4d9e-8f0a-1b2c3d4e5f67",
                                     "07c6f3e8-7b8c-4d9e-8f0a-1b2c3d4e5f99");
    post_ok(env, sample("appointment-2.xml"));
    post_ok(env, replace_all(moved, "2026-12-03T09:", "2026-12-03T10:"));
    auto hist = json_of(env.get("/Appointments/" + u2));
    CHECK(hist["history"].as_array().size() == 2);
    CHECK(str(hist["current"].as_object(), "dtstart") == "2026-12-03T10:00:00+01:00");

    post_ok(env, sample("appointment-3.xml"));
    CHECK(appointments(env).size() == 3);
    // A period: 2-5 December holds u2 and u3.
    auto period = appointments(env, "&from=2026-12-02T00:00:00%2B01:00&to=2026-12-05T00:00:00%2B01:00");
    CHECK(period.size() == 2);
    CHECK(period.count(u2) == 1);
    CHECK(period.count(u3) == 1);
    CHECK(env.get("/Appointments").status == 400);  // patientId is required
    CHECK(env.get("/Appointments/00000000-0000-4000-8000-000000000000").status == 404);
}

TEST_CASE("digihelse: cancelling one appointment, confirmed by the EPJ", "[integration][digihelse]") {
    broker_env env;
    publish_all(env);
    std::string cancel_id = post_ok(env, sample("cancel-one.xml"));
    // Routed to the appointment's contact: the EPJ (vendor receiver) gets the cancellation.
    CHECK(str(env.status(cancel_id, "delivered"), "state") == "delivered");
    REQUIRE(env.vendor.wait_for_requests(1, std::chrono::seconds(5)));
    CHECK(env.vendor.requests().back().body.find("DIALOG_INNBYGGER_AVTALEAVBESTILLING") != std::string::npos);
    CHECK(state_of(env, u1b) == "cancel-requested");
    CHECK(str(appointments(env)[u1b]["cancellation"].as_object(), "reason") == "Jeg er på sykehuset den dagen.");

    epj_apprec(env, cancel_id, R"({"appRecStatus":"Ok"})");
    auto st = env.status(cancel_id, "apprec-ok");
    CHECK(str(st, "state") == "apprec-ok");
    auto apps = st["digihelse"].as_object()["appointments"].as_array();
    REQUIRE(apps.size() == 1);
    CHECK(str(apps[0].as_object(), "state") == "cancelled");
    // The portal sees the outcome: the appointment and the AppRec in its inbox.
    CHECK(str(appointments(env)[u1b], "state") == "cancelled");
    CHECK(str(appointments(env)[u2], "state") == "planned");
    auto inbox = env.get("/Messages?receiverHerIds=" + her::portal);
    CHECK(inbox.body.find("\"originalId\":\"" + cancel_id + "\"") != std::string::npos);

    SECTION("a cancelled appointment cannot be cancelled again (X99)") {
        std::string again = replace_once(sample("cancel-one.xml"), "29e8b5a0-9d0e-4f1a-8b2c-3d4e5f6a7b89",
                                         "29e8b5a0-9d0e-4f1a-8b2c-3d4e5f6a7b00");
        refused(env, again, "X99");
    }
}

TEST_CASE("digihelse: cancelling a whole period, refused by the EPJ", "[integration][digihelse]") {
    broker_env env;
    publish_all(env);
    std::string cancel_id = post_ok(env, sample("cancel-period.xml"));
    CHECK(state_of(env, u2) == "cancel-requested");
    CHECK(state_of(env, u3) == "cancel-requested");
    CHECK(state_of(env, u1b) == "planned");

    epj_apprec(env, cancel_id,
               R"({"appRecStatus":"Rejected","appRecErrorList":[{"errorCode":"X99","description":"Besøkene kan ikke avlyses"}]})");
    auto st = env.status(cancel_id, "apprec-rejected");
    CHECK(str(st, "state") == "apprec-rejected");
    auto list = appointments(env);
    CHECK(str(list[u2], "state") == "cancel-refused");
    CHECK(str(list[u3], "state") == "cancel-refused");
    CHECK(str(list[u2], "detail").find("refused by the EPJ: X99") != std::string::npos);
    CHECK(str(list[u1b], "state") == "planned");

    SECTION("after a refusal the citizen may ask again; this time the EPJ confirms") {
        std::string again = replace_once(sample("cancel-period.xml"), "3af9c6b1-0e1f-4a2b-9c3d-4e5f6a7b8c90",
                                         "3af9c6b1-0e1f-4a2b-9c3d-4e5f6a7b8c91");
        std::string id2 = post_ok(env, again);
        epj_apprec(env, id2, R"({"appRecStatus":"Ok"})");
        env.status(id2, "apprec-ok");
        CHECK(state_of(env, u2) == "cancelled");
        CHECK(state_of(env, u3) == "cancelled");
    }
}

TEST_CASE("digihelse: appointment and cancellation input is checked", "[integration][digihelse]") {
    broker_env env;
    publish_all(env);
    const std::string cancel_msg = "3af9c6b1-0e1f-4a2b-9c3d-4e5f6a7b8c90";
    auto cancel_with_id = [&](const std::string& suffix) {
        return replace_once(sample("cancel-period.xml"), cancel_msg, cancel_msg.substr(0, 34) + suffix);
    };
    SECTION("a reason over 400 characters (T99); 400 is fine") {
        std::string reason = "Jeg er bortreist 1. til 5. desember.";
        std::string s400(400, 'x');
        std::string ok = replace_once(cancel_with_id("01"), reason, s400);
        post_ok(env, ok);
        std::string over = replace_once(sample("cancel-one.xml"), "Jeg er på sykehuset den dagen.", std::string(401, 'x'));
        auto o = refused(env, over, "T99");
        CHECK(str(o["error"].as_object(), "message").find("401 characters") != std::string::npos);
    }
    SECTION("an unknown appointment (X99)") {
        refused(env, replace_once(cancel_with_id("02"), u2, "99999999-9999-4999-8999-999999999999"), "X99");
    }
    SECTION("a cancellation not sent to the appointment's contact (X99)") {
        std::string wrong = replace_all(cancel_with_id("03"), "<Id>9100110</Id>", "<Id>9100210</Id>");
        wrong = replace_all(wrong, "<Id>9100100</Id>", "<Id>9100200</Id>");
        auto o = refused(env, wrong, "X99");
        CHECK(str(o["error"].as_object(), "message").find("owned by HER-id 9100110") != std::string::npos);
    }
    SECTION("appointments of another patient (X99)") {
        refused(env, replace_once(cancel_with_id("04"), "<Id>01010112345</Id>", "<Id>03030312345</Id>"), "X99");
    }
    const std::string appt_msg = "e5a4d1c6-5f6a-4b7c-8d8e-9f0a1b2c3d45";
    auto appointment_with = [&](const std::string& suffix, const std::string& from, const std::string& to) {
        std::string s = replace_once(sample("appointment.xml"), appt_msg, appt_msg.substr(0, 34) + suffix);
        return replace_once(s, from, to);
    };
    SECTION("an appointment ending before it starts (T99)") {
        refused(env,
                appointment_with("11", "<dtend><date-time>2026-12-01T09:30:00+01:00",
                                 "<dtend><date-time>2026-12-01T08:30:00+01:00"),
                "T99");
    }
    SECTION("an appointment whose contact is not in the registry (E21)") {
        refused(env, appointment_with("12", "<contact><text>9100110", "<contact><text>9999999"), "E21", 422);
    }
    SECTION("an appointment with neither location nor video link (T99)") {
        refused(env, appointment_with("13", "<location><text>Hjemmebesøk</text></location>", ""), "T99");
    }
    SECTION("an appointment with a uid that is not a UUID (T99)") {
        refused(env, appointment_with("14", "<uid><text>" + u1, "<uid><text>not-a-uuid"), "T99");
    }
    SECTION("xCal that does not validate is refused by the schema (T02)") {
        refused(env, appointment_with("15", "<version><text>2.0</text></version>", "<version><text>1.0</text></version>"),
                "T02");
    }
}

TEST_CASE("digihelse: every sample goes through the demo configuration (the repository's rules and registry)",
          "[integration][digihelse]") {
    // The other tests route Oslo to a test receiver; here Oslo (9100110) is what the demo makes it:
    // Visma Profil, a file catalogue that takes Dialogmelding 1.0 only.
    broker_env env({}, test_registry(), [](broker::config& c) {
        c.rules_dir = (source_dir() / "routing-rules").string();
        c.registry_file = (source_dir() / "config/registry.xml").string();
    });
    std::map<std::string, std::string> ids;
    for (const char* f : {"message-first.xml", "message-reply.xml", "message-on-behalf.xml", "message-attachments.xml",
                          "appointment.xml", "appointment-changed.xml", "appointment-2.xml", "appointment-3.xml",
                          "cancel-one.xml", "cancel-period.xml", "visit-carried-out.xml"}) {
        INFO(f);
        ids[f] = post_ok(env, sample(f));
    }
    // The cancellation reached Visma as Dialogmelding 1.0 with its reason and its xCal event (the
    // uid the EPJ cancels by).
    auto st = env.status(ids["cancel-one.xml"], "delivered");
    REQUIRE(str(st, "state") == "delivered");
    const std::string written =
        read_file(std::filesystem::path(env.cfg.data_dir) / "visma-oslo/out/29e8b5a0-9d0e-4f1a-8b2c-3d4e5f6a7b89.xml");
    CHECK(written.find("http://www.kith.no/xmlstds/dialog/2006-10-11") != std::string::npos);
    CHECK(written.find("http://www.kith.no/xmlstds/dialog/2013-01-23") == std::string::npos);
    CHECK(written.find("Jeg er p\xC3\xA5 sykehuset den dagen.") != std::string::npos);
    CHECK(written.find(u1b) != std::string::npos);
    // Visma confirms with an AppRec: the appointment is cancelled, the others are still asked about.
    epj_apprec(env, ids["cancel-one.xml"], R"({"appRecStatus":"Ok"})");
    CHECK(state_of(env, u1b) == "cancelled");
    CHECK(state_of(env, u2) == "cancel-requested");
}
