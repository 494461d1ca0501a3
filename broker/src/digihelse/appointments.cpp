// The appointment table: checks of the EPJ's appointment messages and the citizen's cancellations,
// the AppRec outcome of a cancellation, and GET /Appointments. See digihelse.hpp for the states.
//
// Refusal codes (kodeverk 8221): T99 for xCal content that breaks the rules (no calendar, not
// exactly one vevent in an appointment message, uid not a UUID, dtend not after dtstart, neither
// location nor an https video url, reason over 400 characters); E30 without a patient ident; E21
// when the contact HER-id is not a party that can receive (cancellations must reach it); X99 when
// a cancellation names an unknown appointment, one of another patient, one owned by another
// service than the receiver, or one that is not planned (or cancel-refused).
#include "digihelse/appointments.hpp"
#include "server/http_api.hpp"

#include "broker/log.hpp"

#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>

#include <charconv>
#include <ctime>
#include <map>
#include <set>

namespace broker::digihelse {

namespace json = boost::json;
using store::iso_time;

namespace {

const char* const columns =
    "seq, uid, message_id, patient_id, contact_her, sender_her, receiver_her, dtstart, dtend, start_ms, end_ms,"
    " summary, description, location, video_url, related_to, sequence, state, cancel_id, cancel_reason,"
    " state_detail, created_at, updated_at";

std::string text_of(const store::sql_value& v) {
    if (auto* s = std::get_if<std::string>(&v))
        return *s;
    if (auto* i = std::get_if<std::int64_t>(&v))
        return std::to_string(*i);
    return {};
}

std::int64_t int_of(const store::sql_value& v) {
    if (auto* i = std::get_if<std::int64_t>(&v))
        return *i;
    if (auto* s = std::get_if<std::string>(&v)) {
        std::int64_t x = 0;
        std::from_chars(s->data(), s->data() + s->size(), x);
        return x;
    }
    return 0;
}

store::sql_value opt(const std::string& s) { return s.empty() ? store::sql_value{} : store::sql_value{s}; }

appointment_row read_row(const store::sql_row& r) {
    appointment_row a;
    if (r.size() < 23)
        return a;
    std::size_t i = 0;
    a.seq = int_of(r[i++]);
    a.uid = text_of(r[i++]);
    a.message_id = text_of(r[i++]);
    a.patient_id = text_of(r[i++]);
    a.contact_her = text_of(r[i++]);
    a.sender_her = text_of(r[i++]);
    a.receiver_her = text_of(r[i++]);
    a.dtstart = text_of(r[i++]);
    a.dtend = text_of(r[i++]);
    a.start_ms = int_of(r[i++]);
    a.end_ms = int_of(r[i++]);
    a.summary = text_of(r[i++]);
    a.description = text_of(r[i++]);
    a.location = text_of(r[i++]);
    a.video_url = text_of(r[i++]);
    a.related_to = text_of(r[i++]);
    a.sequence = int_of(r[i++]);
    a.state = text_of(r[i++]);
    a.cancel_id = text_of(r[i++]);
    a.cancel_reason = text_of(r[i++]);
    a.state_detail = text_of(r[i++]);
    a.created_at = int_of(r[i++]);
    a.updated_at = int_of(r[i++]);
    return a;
}

result<std::vector<appointment_row>> query_rows(store::reader& rd, const std::string& where,
                                                const std::vector<store::sql_value>& params) {
    auto rows = rd.sql_query(std::string("SELECT ") + columns + " FROM appointments " + where, params);
    if (!rows)
        return rows.error();
    std::vector<appointment_row> out;
    out.reserve(rows->size());
    for (auto& r : *rows)
        out.push_back(read_row(r));
    return out;
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

std::string error_json(std::string_view code, std::string_view message) {
    json::object e;
    e["code"] = code;
    e["message"] = message;
    json::object o;
    o["error"] = std::move(e);
    return json::serialize(o);
}

} // namespace

std::optional<std::int64_t> parse_datetime(std::string_view s) {
    // YYYY-MM-DDThh:mm:ss[.f+][Z|(+|-)hh:mm]
    auto num = [&](std::size_t pos, std::size_t len, int& out) {
        if (pos + len > s.size())
            return false;
        auto [p, ec] = std::from_chars(s.data() + pos, s.data() + pos + len, out);
        return ec == std::errc{} && p == s.data() + pos + len;
    };
    int y, mo, d, h, mi, sec;
    if (s.size() < 19 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':')
        return std::nullopt;
    if (!num(0, 4, y) || !num(5, 2, mo) || !num(8, 2, d) || !num(11, 2, h) || !num(14, 2, mi) || !num(17, 2, sec))
        return std::nullopt;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 24 || mi > 59 || sec > 60)
        return std::nullopt;
    std::size_t i = 19;
    int millis = 0;
    if (i < s.size() && s[i] == '.') {
        ++i;
        int scale = 100;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
            millis += (s[i] - '0') * scale;
            scale /= 10;
            ++i;
        }
    }
    int offset_min = 0;
    if (i < s.size()) {
        if (s[i] == 'Z') {
            ++i;
        } else if (s[i] == '+' || s[i] == '-') {
            int oh, om;
            if (!num(i + 1, 2, oh) || s.size() < i + 6 || s[i + 3] != ':' || !num(i + 4, 2, om))
                return std::nullopt;
            offset_min = (s[i] == '-' ? -1 : 1) * (oh * 60 + om);
            i += 6;
        }
    }
    if (i != s.size())
        return std::nullopt;
    std::int64_t days = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
    std::int64_t secs = days * 86400 + h * 3600 + mi * 60 + sec - static_cast<std::int64_t>(offset_min) * 60;
    return secs * 1000 + millis;
}

bool is_uuid(std::string_view s) {
    if (s.size() != 36)
        return false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return false;
        } else if (!std::isxdigit(static_cast<unsigned char>(s[i]))) {
            return false;
        }
    }
    return true;
}

bool is_her_id(std::string_view s) {
    if (s.empty() || s.size() > 12)
        return false;
    for (char c : s)
        if (c < '0' || c > '9')
            return false;
    return true;
}

result<std::optional<appointment_row>> current_appointment(store::reader& rd, const std::string& uid) {
    auto rows = query_rows(rd, "WHERE uid = ?1 ORDER BY seq DESC LIMIT 1", {uid});
    if (!rows)
        return rows.error();
    if (rows->empty())
        return std::optional<appointment_row>{};
    return std::optional<appointment_row>{std::move(rows->front())};
}

result<std::vector<appointment_row>> appointments_of_cancellation(store::reader& rd, const std::string& cancel_id) {
    return query_rows(rd, "WHERE cancel_id = ?1 ORDER BY start_ms, uid", {cancel_id});
}

json::object appointment_json(const appointment_row& a) {
    json::object o;
    o["uid"] = a.uid;
    o["state"] = a.state;
    o["patientId"] = a.patient_id;
    o["contactHerId"] = a.contact_her;
    if (!a.sender_her.empty())
        o["senderHerId"] = a.sender_her;
    o["dtstart"] = a.dtstart;
    o["dtend"] = a.dtend;
    if (!a.summary.empty())
        o["summary"] = a.summary;
    if (!a.description.empty())
        o["description"] = a.description;
    o["kind"] = a.video_url.empty() ? "home-visit" : "video";
    if (!a.location.empty())
        o["location"] = a.location;
    if (!a.video_url.empty())
        o["videoUrl"] = a.video_url;
    if (!a.related_to.empty())
        o["relatedTo"] = a.related_to;
    if (a.sequence)
        o["sequence"] = a.sequence;
    o["messageId"] = a.message_id;
    if (!a.cancel_id.empty()) {
        json::object c;
        c["messageId"] = a.cancel_id;
        if (!a.cancel_reason.empty())
            c["reason"] = a.cancel_reason;
        o["cancellation"] = std::move(c);
    }
    if (!a.state_detail.empty())
        o["detail"] = a.state_detail;
    o["updatedAt"] = iso_time(a.updated_at);
    return o;
}

result<store::write_op> check_appointment(const message_facts& f, const scan_result& s, const std::string& id,
                                          store::reader& rd, const routing::address_registry& registry) {
    if (!s.has_calendar)
        return error("T99", "digihelse: an appointment message needs an xCal icalendar in a Document after the "
                            "Dialogmelding");
    if (s.events.size() != 1)
        return error("T99", "digihelse: an appointment message carries exactly one vevent (one message per "
                            "appointment change), this one has " + std::to_string(s.events.size()));
    if (f.patient_id.empty())
        return error("E30", "digihelse: an appointment message needs the patient's ident (MsgHead Patient/Ident)");
    const vevent& e = s.events.front();
    if (!is_uuid(e.uid))
        return error("T99", "digihelse: the vevent uid is not a UUID");
    auto start = parse_datetime(e.dtstart);
    auto end = parse_datetime(e.dtend);
    if (!start || !end)
        return error("T99", "digihelse: dtstart and dtend must be date-times");
    if (*end <= *start)
        return error("T99", "digihelse: dtend is not after dtstart");
    if (!is_her_id(e.contact))
        return error("T99", "digihelse: the vevent contact must be the HER-id of the service owning the appointment");
    const store::party* owner = registry.find(e.contact);
    if (!owner || !owner->can_receive())
        return error("E21", "digihelse: the appointment's contact HER-id " + e.contact +
                                " is not a service or person in the registry; cancellations could not reach it");
    if (e.location.empty() && e.url.empty())
        return error("T99", "digihelse: the appointment needs a location (home visit) or a url (video link)");
    if (!e.url.empty() && e.url.rfind("https://", 0) != 0)
        return error("T99", "digihelse: the video link (url) must be an https URL");
    if (!e.related_to.empty() && !is_uuid(e.related_to))
        return error("T99", "digihelse: related-to is not a UUID");

    auto cur = current_appointment(rd, e.uid);
    if (!cur)
        return cur.error();
    if (*cur && (*cur)->patient_id != f.patient_id)
        return error("X99", "digihelse: the appointment uid is already used for another patient");
    std::optional<appointment_row> old;
    if (!e.related_to.empty() && e.related_to != e.uid) {
        auto r = current_appointment(rd, e.related_to);
        if (!r)
            return r.error();
        if (*r && (*r)->patient_id != f.patient_id)
            return error("X99", "digihelse: related-to names an appointment of another patient");
        old = *r;
    }

    std::string state = e.status == "CANCELLED" ? appointment_state::cancelled : appointment_state::planned;
    std::string detail = e.status == "CANCELLED" ? "cancelled by the EPJ" : (*cur ? "changed by the EPJ" : "");
    std::string cancel_id, reason;
    // A change while the citizen's cancellation waits for the EPJ keeps that request open.
    if (*cur && (*cur)->state == appointment_state::cancel_requested && state == appointment_state::planned) {
        state = appointment_state::cancel_requested;
        cancel_id = (*cur)->cancel_id;
        reason = (*cur)->cancel_reason;
    }
    std::int64_t seqno = 0;
    if (!e.sequence.empty())
        std::from_chars(e.sequence.data(), e.sequence.data() + e.sequence.size(), seqno);
    const std::int64_t now = store::now_ms();
    std::vector<store::sql_value> row = {
        e.uid, id, f.patient_id, e.contact, opt(f.sender.lowest_her()), opt(f.receiver.lowest_her()), e.dtstart,
        e.dtend, *start, *end, opt(e.summary), opt(e.description), opt(e.location), opt(e.url), opt(e.related_to),
        seqno, state, opt(cancel_id), opt(reason), opt(detail), now};
    std::string replaced = old ? e.related_to : std::string();
    std::string replaced_detail = "replaced by " + e.uid;
    return store::write_op([row = std::move(row), replaced, replaced_detail, now](store::write_txn& t) -> result<void> {
        auto r = t.sql_exec("INSERT INTO appointments(uid, message_id, patient_id, contact_her, sender_her, receiver_her,"
                            " dtstart, dtend, start_ms, end_ms, summary, description, location, video_url, related_to,"
                            " sequence, state, cancel_id, cancel_reason, state_detail, created_at, updated_at)"
                            " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,"
                            " ?19, ?20, ?21, ?21)",
                            row);
        if (!r)
            return r.error();
        if (!replaced.empty()) {
            auto u = t.sql_exec("UPDATE appointments SET state = 'replaced', state_detail = ?2, updated_at = ?3"
                                " WHERE seq = (SELECT MAX(seq) FROM appointments WHERE uid = ?1)",
                                {replaced, replaced_detail, now});
            if (!u)
                return u.error();
        }
        return {};
    });
}

result<store::write_op> check_cancellation(const message_facts& f, const scan_result& s, const std::string& id,
                                           store::reader& rd) {
    if (s.reason_chars > limits::max_reason_chars)
        return error("T99", "digihelse: the cancellation reason has " + std::to_string(s.reason_chars) +
                                " characters; the portal allows at most " + std::to_string(limits::max_reason_chars));
    if (!s.has_calendar || s.events.empty())
        return error("T99", "digihelse: a cancellation needs an xCal icalendar with a vevent per appointment");
    if (f.patient_id.empty())
        return error("E30", "digihelse: a cancellation needs the patient's ident (MsgHead Patient/Ident)");
    std::set<std::string> uids;
    int n = 0;
    for (const vevent& e : s.events) {
        ++n;
        const std::string where = "digihelse: vevent " + std::to_string(n);
        if (!is_uuid(e.uid))
            return error("T99", where + ": uid is not a UUID");
        if (!uids.insert(e.uid).second)
            continue;
        auto cur = current_appointment(rd, e.uid);
        if (!cur)
            return cur.error();
        if (!*cur)
            return error("X99", where + ": no appointment with this uid is known");
        const appointment_row& a = **cur;
        if (a.patient_id != f.patient_id)
            return error("X99", where + ": the appointment belongs to another patient");
        if (a.contact_her != f.receiver.lowest_her() && a.contact_her != f.receiver.lvl1_her)
            return error("X99", where + ": the appointment is owned by HER-id " + a.contact_her +
                                    "; a cancellation goes to the appointment's contact");
        if (a.state != appointment_state::planned && a.state != appointment_state::cancel_refused)
            return error("X99", where + ": the appointment is " + a.state + " and cannot be cancelled");
    }
    std::vector<std::string> list(uids.begin(), uids.end());
    std::string reason = s.reason;
    return store::write_op([list, reason, id](store::write_txn& t) -> result<void> {
        const std::int64_t now = store::now_ms();
        for (auto& uid : list) {
            auto r = t.sql_exec("UPDATE appointments SET state = 'cancel-requested', cancel_id = ?2, cancel_reason = ?3,"
                                " state_detail = 'cancellation sent to the contact', updated_at = ?4"
                                " WHERE seq = (SELECT MAX(seq) FROM appointments WHERE uid = ?1)",
                                {uid, id, opt(reason), now});
            if (!r)
                return r.error();
        }
        return {};
    });
}

store::write_op on_apprec(const store::message_row& original, const message_facts& apprec) {
    if (original.msg_type != msg_type::cancellation)
        return {};
    const std::string& st = apprec.apprec_status;
    if (st != "1" && st != "2" && st != "3")
        return {};
    std::string detail = "AppRec " + apprec.msg_id + ": ";
    std::vector<std::string> refused;  // status 3: the parts named in Error/@OT are refused
    if (st == "1") {
        detail += "confirmed by the EPJ";
    } else {
        std::string why;
        for (auto& e : apprec.apprec_errors) {
            if (!why.empty())
                why += "; ";
            why += e.code + (e.description.empty() ? "" : " " + e.description);
            if (st == "3" && !e.origin.empty())
                refused.push_back(e.origin);
        }
        detail += (st == "2" ? "refused by the EPJ" : "partly refused by the EPJ") + (why.empty() ? "" : ": " + why);
    }
    std::string id = original.id;
    std::string all_state = st == "2" ? appointment_state::cancel_refused : appointment_state::cancelled;
    log::info("digihelse.cancellation-outcome", {{"id", id}, {"apprecStatus", st}});
    return [id, all_state, refused, detail](store::write_txn& t) -> result<void> {
        const std::int64_t now = store::now_ms();
        for (auto& uid : refused) {
            auto r = t.sql_exec("UPDATE appointments SET state = 'cancel-refused', state_detail = ?3, updated_at = ?4"
                                " WHERE cancel_id = ?1 AND uid = ?2 AND state = 'cancel-requested'",
                                {id, uid, detail, now});
            if (!r)
                return r.error();
        }
        auto r = t.sql_exec("UPDATE appointments SET state = ?2, state_detail = ?3, updated_at = ?4"
                            " WHERE cancel_id = ?1 AND state = 'cancel-requested'",
                            {id, all_state, detail, now});
        if (!r)
            return r.error();
        return {};
    };
}

http_answer appointments_endpoint(store::reader& rd, std::string_view method, const std::vector<std::string>& parts,
                                  std::string_view query) {
    http_answer out;
    if (method != "GET") {
        out.status = 405;
        out.json = error_json("method-not-allowed", "use GET");
        return out;
    }
    if (parts.size() == 2) {
        // GET /Appointments/{uid}: the appointment's every version, and the instances it replaced.
        const std::string& uid = parts[1];
        auto rows = query_rows(rd, "WHERE uid = ?1 ORDER BY seq", {uid});
        if (!rows) {
            out.status = 500;
            out.json = error_json(rows.error().code, rows.error().message);
            return out;
        }
        if (rows->empty()) {
            out.status = 404;
            out.json = error_json("not-found", "no appointment with uid " + uid);
            return out;
        }
        json::object o;
        o["uid"] = uid;
        o["current"] = appointment_json(rows->back());
        json::array h;
        for (auto& r : *rows)
            h.push_back(appointment_json(r));
        o["history"] = std::move(h);
        json::array chain;  // related-to, newest first, at most 32 steps (a cycle stops it)
        std::set<std::string> seen{uid};
        std::string next = rows->back().related_to;
        while (!next.empty() && seen.insert(next).second && chain.size() < 32) {
            auto prev = current_appointment(rd, next);
            if (!prev || !*prev)
                break;
            chain.push_back(appointment_json(**prev));
            next = (*prev)->related_to;
        }
        o["replaces"] = std::move(chain);
        out.json = json::serialize(o);
        return out;
    }
    if (parts.size() != 1) {
        out.status = 404;
        out.json = error_json("not-found", "no such endpoint");
        return out;
    }
    auto q = parse_query(query);
    auto patient = q.find("patientid");
    if (patient == q.end() || patient->second.empty()) {
        out.status = 400;
        out.json = error_json("request.invalid", "patientId is required");
        return out;
    }
    std::optional<std::int64_t> from, to;
    if (auto it = q.find("from"); it != q.end()) {
        from = parse_datetime(it->second);
        if (!from) {
            out.status = 400;
            out.json = error_json("request.invalid", "from must be an xs:dateTime");
            return out;
        }
    }
    if (auto it = q.find("to"); it != q.end()) {
        to = parse_datetime(it->second);
        if (!to) {
            out.status = 400;
            out.json = error_json("request.invalid", "to must be an xs:dateTime");
            return out;
        }
    }
    std::set<std::string> states;
    if (auto it = q.find("state"); it != q.end()) {
        std::string_view v = it->second;
        while (!v.empty()) {
            auto c = v.find(',');
            if (!v.substr(0, c).empty())
                states.emplace(v.substr(0, c));
            if (c == std::string_view::npos)
                break;
            v.remove_prefix(c + 1);
        }
    }
    std::string contact;
    if (auto it = q.find("contactherid"); it != q.end())
        contact = it->second;
    // The current version of each of the patient's appointments (the newest row of each uid).
    auto rows = query_rows(rd,
                           "WHERE patient_id = ?1 AND seq = (SELECT MAX(b.seq) FROM appointments b"
                           " WHERE b.uid = appointments.uid) ORDER BY start_ms, uid",
                           {patient->second});
    if (!rows) {
        out.status = 500;
        out.json = error_json(rows.error().code, rows.error().message);
        return out;
    }
    json::array a;
    for (auto& r : *rows) {
        if (states.empty() ? r.state == appointment_state::replaced : !states.count(r.state))
            continue;
        if (from && r.end_ms <= *from)
            continue;
        if (to && r.start_ms >= *to)
            continue;
        if (!contact.empty() && r.contact_her != contact)
            continue;
        a.push_back(appointment_json(r));
    }
    out.json = json::serialize(a);
    return out;
}

} // namespace broker::digihelse
