// The portal's rules on citizen dialogue, threading by ConversationRef, and the identities of a
// relative writing with power of attorney; plus the intake hook that runs them (and the
// appointment checks) and the status facts.
//
// Which AppRec error code (kodeverk 8221) a refusal carries:
//   T99 "Annen feil på format"         text over 1000 characters, more than 3 attachments, an
//                                      attachment over 4 MB, an external file reference, a
//                                      cancellation reason over 400 characters, xCal content that
//                                      breaks the appointment rules (appointments.cpp)
//   T10 "Støtter ikke meldingsformatet" an attachment that is not JPG, PNG or PDF: by MimeType, or
//                                      bytes whose magic number is not what the MimeType says
//   E10 "Ugyldig meldingsidentifikator" ConversationRef inconsistent with the stored thread
//   E30 "Pasientens fødselsnummer mangler" an appointment or cancellation without patient ident
//   E21 / X99                          appointment contact / cancellation checks (appointments.cpp)
// A reply whose RefToParent the broker does not know (sent before the broker took over, or pruned
// by retention) is accepted and marked thread "parent-unknown", with a warning in the answer:
// refusing it would break real conversations the broker cannot verify.
#include "digihelse/appointments.hpp"
#include "digihelse/digihelse.hpp"
#include "digihelse/scan.hpp"

#include <boost/json/array.hpp>

#include <algorithm>
#include <cctype>

namespace broker::digihelse {

namespace json = boost::json;

namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

/// The media type without parameters, lower-case.
std::string media_type(std::string_view m) {
    auto semi = m.find(';');
    m = m.substr(0, semi);
    while (!m.empty() && (m.back() == ' ' || m.back() == '\t'))
        m.remove_suffix(1);
    return lower(m);
}

enum class file_kind { none, jpeg, png, pdf };

file_kind kind_of_mime(std::string_view mime) {
    std::string m = media_type(mime);
    if (m == "image/jpeg" || m == "image/jpg")
        return file_kind::jpeg;
    if (m == "image/png")
        return file_kind::png;
    if (m == "application/pdf")
        return file_kind::pdf;
    return file_kind::none;
}

file_kind kind_of_bytes(std::string_view head) {
    if (head.size() >= 3 && static_cast<unsigned char>(head[0]) == 0xFF && static_cast<unsigned char>(head[1]) == 0xD8 &&
        static_cast<unsigned char>(head[2]) == 0xFF)
        return file_kind::jpeg;
    if (head.size() >= 8 && head.substr(0, 8) == std::string_view("\x89PNG\r\n\x1a\n", 8))
        return file_kind::png;
    if (head.size() >= 5 && head.substr(0, 5) == "%PDF-")
        return file_kind::pdf;
    return file_kind::none;
}

const char* kind_name(file_kind k) {
    switch (k) {
    case file_kind::jpeg: return "JPG";
    case file_kind::png: return "PNG";
    case file_kind::pdf: return "PDF";
    case file_kind::none: break;
    }
    return "unknown";
}

/// Text length and attachments: what the portal enforces.
result<void> check_portal_rules(const scan_result& s) {
    if (s.text_chars > limits::max_text_chars)
        return error("T99", "digihelse: the message text has " + std::to_string(s.text_chars) +
                                " characters; the portal allows at most " + std::to_string(limits::max_text_chars));
    std::vector<const attachment*> files;
    for (auto& d : s.documents)
        if (d.is_file())
            files.push_back(&d);
    if (files.size() > limits::max_attachments)
        return error("T99", "digihelse: the message has " + std::to_string(files.size()) +
                                " attachments; the portal allows at most " + std::to_string(limits::max_attachments));
    for (const attachment* a : files) {
        const std::string where = "digihelse: attachment in Document " + std::to_string(a->document);
        if (a->external)
            return error("T99", where + " is an external file reference; attachments must be embedded "
                                        "(Base64Container)");
        if (a->content_root != "Base64Container")
            return error("T10", where + " is not a Base64Container; only embedded JPG, PNG or PDF files are accepted");
        if (a->bad_base64)
            return error("T02", where + " is not valid base64");
        file_kind declared = kind_of_mime(a->mime_type);
        if (declared == file_kind::none)
            return error("T10", where + (a->mime_type.empty() ? " has no MimeType" : " has an unsupported MimeType") +
                                    "; only image/jpeg, image/png and application/pdf are accepted");
        file_kind actual = kind_of_bytes(a->head);
        if (actual != declared)
            return error("T10", where + " is declared " + kind_name(declared) + " but its bytes are " +
                                    (actual == file_kind::none ? std::string("not JPG, PNG or PDF")
                                                               : std::string(kind_name(actual))));
        if (a->decoded_size > limits::max_attachment_bytes)
            return error("T99", where + " has " + std::to_string(a->decoded_size) + " bytes; the portal allows at most " +
                                    std::to_string(limits::max_attachment_bytes) + " (4 MB) per attachment");
    }
    return {};
}

bool same_party(std::string_view lowest_a, std::string_view lvl1_a, std::string_view lowest_b, std::string_view lvl1_b) {
    if (!lowest_a.empty() && lowest_a == lowest_b)
        return true;
    return !lvl1_a.empty() && lvl1_a == lvl1_b;
}

std::string text_of(const store::sql_value& v) {
    if (auto* s = std::get_if<std::string>(&v))
        return *s;
    if (auto* i = std::get_if<std::int64_t>(&v))
        return std::to_string(*i);
    return {};
}

store::sql_value opt(const std::string& s) { return s.empty() ? store::sql_value{} : store::sql_value{s}; }

struct thread_facts {
    std::string status;  // first | reply | parent-unknown
    std::string conversation;
    std::string parent_id;
    std::string warning;
};

/// ConversationRef consistency (standards.md §4.8).
result<thread_facts> check_thread(const message_facts& f, store::reader& rd) {
    thread_facts t;
    if (f.ref_to_parent.empty() && f.ref_to_conversation.empty()) {
        t.status = "first";
        return t;
    }
    // The schema requires both elements; an empty one is a broken reference.
    if (f.ref_to_parent.empty() || f.ref_to_conversation.empty())
        return error("E10", "digihelse: ConversationRef needs both RefToParent and RefToConversation");
    if (f.ref_to_parent == f.msg_id || f.ref_to_conversation == f.msg_id)
        return error("E10", "digihelse: ConversationRef refers to the message itself");
    t.conversation = f.ref_to_conversation;
    auto rows = rd.find_all_by_msg_id(f.ref_to_parent);
    if (!rows)
        return rows.error();
    const store::message_row* parent = nullptr;
    for (auto& r : *rows) {
        if (r.kind != "msghead" || r.state == std::string_view(store::state::rejected))
            continue;
        // Prefer the parent between the same parties (a MsgId is unique per sender only).
        bool between = same_party(f.sender.lowest_her(), f.sender.lvl1_her, r.receiver_her, r.receiver_lvl1_her) ||
                       same_party(f.sender.lowest_her(), f.sender.lvl1_her, r.sender_her, r.sender_lvl1_her);
        if (!parent || between)
            parent = &r;
        if (between)
            break;
    }
    if (!parent) {
        t.status = "parent-unknown";
        t.warning = "RefToParent names a message the broker does not know; the reply is accepted and its thread "
                    "is not verified";
        return t;
    }
    const std::string expected = parent->conversation_ref.empty() ? parent->msg_id : parent->conversation_ref;
    if (f.ref_to_conversation != expected)
        return error("E10", "digihelse: RefToConversation does not match the conversation of the message named by "
                            "RefToParent (" + parent->id + ")");
    const bool answer = same_party(f.sender.lowest_her(), f.sender.lvl1_her, parent->receiver_her,
                                   parent->receiver_lvl1_her) &&
                        same_party(f.receiver.lowest_her(), f.receiver.lvl1_her, parent->sender_her,
                                   parent->sender_lvl1_her);
    const bool follow_up = same_party(f.sender.lowest_her(), f.sender.lvl1_her, parent->sender_her,
                                      parent->sender_lvl1_her) &&
                           same_party(f.receiver.lowest_her(), f.receiver.lvl1_her, parent->receiver_her,
                                      parent->receiver_lvl1_her);
    if (!answer && !follow_up)
        return error("E10", "digihelse: the reply is not between the parties of the message it answers (" +
                                parent->id + ")");
    // A thread is about one patient: a reply about someone else is refused (privacy).
    if (!f.patient_id.empty()) {
        auto pr = rd.sql_query("SELECT patient_id FROM dialogue_facts WHERE message_id = ?1", {parent->id});
        if (!pr)
            return pr.error();
        if (!pr->empty() && !(*pr)[0].empty()) {
            std::string parent_patient = text_of((*pr)[0][0]);
            if (!parent_patient.empty() && parent_patient != f.patient_id)
                return error("E10", "digihelse: the reply is about another patient than the message it answers (" +
                                        parent->id + ")");
        }
    }
    t.status = "reply";
    t.parent_id = parent->id;
    return t;
}

} // namespace

bool applies(const message_facts& f) {
    return !f.is_apprec() && std::string_view(f.msg_type).substr(0, msg_type::citizen_prefix.size()) ==
                                 msg_type::citizen_prefix;
}

result<intake_effect> check_intake(const message_facts& f, std::string_view document, const std::string& id,
                                   store::reader& rd, const routing::address_registry& registry,
                                   const scan_result* scanned) {
    intake_effect out;
    if (!applies(f))
        return out;
    result<scan_result> s = scanned ? result<scan_result>(*scanned) : scan(document);
    if (!s)
        return s.error();
    if (auto r = check_portal_rules(*s); !r)
        return r.error();
    auto t = check_thread(f, rd);
    if (!t)
        return t.error();

    store::write_op extra;
    if (f.msg_type == msg_type::appointment) {
        auto op = check_appointment(f, *s, id, rd, registry);
        if (!op)
            return op.error();
        extra = std::move(*op);
    } else if (f.msg_type == msg_type::cancellation) {
        auto op = check_cancellation(f, *s, id, rd);
        if (!op)
            return op.error();
        extra = std::move(*op);
    }

    // Both identities: the patient the message is about, and the person acting for them (a
    // relative with power of attorney) when that is someone else.
    std::vector<store::sql_value> facts = {id, opt(f.patient_id), opt(f.patient_id_type)};
    const acting_person& a = s->acting;
    const bool on_behalf = a.present && !(a.id.empty() ? false : a.id == f.patient_id);
    if (on_behalf) {
        facts.insert(facts.end(), {opt(a.id), opt(a.id_type), opt(a.role), opt(a.role_system), opt(a.role_name)});
    } else {
        facts.insert(facts.end(), {store::sql_value{}, store::sql_value{}, store::sql_value{}, store::sql_value{},
                                   store::sql_value{}});
    }
    facts.insert(facts.end(), {opt(t->status), opt(t->conversation), opt(t->parent_id)});
    out.warning = t->warning;
    out.write = [facts = std::move(facts), extra = std::move(extra)](store::write_txn& w) -> result<void> {
        auto r = w.sql_exec("INSERT INTO dialogue_facts(message_id, patient_id, patient_id_type, acting_id,"
                            " acting_id_type, acting_role, acting_role_system, acting_role_name, thread, conversation,"
                            " parent_id) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
                            " ON CONFLICT(message_id) DO NOTHING",
                            facts);
        if (!r)
            return r.error();
        if (extra)
            return extra(w);
        return {};
    };
    return out;
}

void add_status(store::reader& rd, const std::string& id, json::object& status) {
    auto rows = rd.sql_query("SELECT patient_id, patient_id_type, acting_id, acting_id_type, acting_role,"
                             " acting_role_system, acting_role_name, thread, conversation, parent_id"
                             " FROM dialogue_facts WHERE message_id = ?1",
                             {id});
    if (!rows || rows->empty())
        return;
    const store::sql_row& r = (*rows)[0];
    auto col = [&](std::size_t i) { return i < r.size() ? text_of(r[i]) : std::string(); };
    json::object d;
    json::object patient;
    patient["id"] = col(0);
    patient["idType"] = col(1);
    d["patient"] = std::move(patient);
    if (!col(2).empty() || !col(4).empty()) {
        json::object acting;
        acting["id"] = col(2);
        acting["idType"] = col(3);
        json::object role;
        role["code"] = col(4);
        role["codeSystem"] = col(5);
        role["name"] = col(6);
        acting["roleToPatient"] = std::move(role);
        d["actingPerson"] = std::move(acting);
        d["onBehalfOfPatient"] = true;
    } else {
        d["actingPerson"] = nullptr;
        d["onBehalfOfPatient"] = false;
    }
    json::object thread;
    thread["status"] = col(7);
    if (!col(8).empty())
        thread["conversation"] = col(8);
    if (!col(9).empty())
        thread["parentId"] = col(9);
    d["thread"] = std::move(thread);
    if (auto apps = appointments_of_cancellation(rd, id); apps && !apps->empty()) {
        json::array a;
        for (auto& x : *apps)
            a.push_back(appointment_json(x));
        d["appointments"] = std::move(a);
    }
    status["digihelse"] = std::move(d);
}

} // namespace broker::digihelse
