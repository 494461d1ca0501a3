// Consents: parsing and checking the JSON, and reading/writing the `consents` table.
#include "digihelse/consent.hpp"

#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>

#include <fstream>
#include <set>
#include <sstream>

namespace broker::digihelse {

namespace json = boost::json;

namespace {

error invalid(std::string m) { return error{"request.invalid", std::move(m)}; }

std::string at(std::size_t i) { return "persons[" + std::to_string(i) + "]"; }

/// "+47 912 34 567" -> "+4791234567"; empty when it is not a phone number.
std::string normalise_phone(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        char c = s[i];
        if (c == ' ' || c == '-')
            continue;
        if (c == '+' && out.empty())
            out += c;
        else if (c >= '0' && c <= '9')
            out += c;
        else
            return {};
    }
    std::size_t digits = out.size() - (out.rfind('+', 0) == 0 ? 1 : 0);
    if (digits < 8 || digits > 15)
        return {};
    return out;
}

/// A plain addr-spec: one '@', no white space, controls, brackets, quotes or commas (these would
/// let a value escape the SMTP envelope or the To: header).
bool plausible_email(std::string_view s) {
    if (s.size() < 3 || s.size() > 254)
        return false;
    auto atp = s.find('@');
    if (atp == std::string_view::npos || atp == 0 || atp + 1 >= s.size() || s.find('@', atp + 1) != std::string_view::npos)
        return false;
    for (unsigned char c : s)
        if (c <= 0x20 || c == 0x7f || c == '<' || c == '>' || c == '"' || c == ',' || c == ';' || c == '(' ||
            c == ')' || c == '\\')
            return false;
    return s.find('.', atp) != std::string_view::npos;
}

std::string str_of(const json::object& o, const char* k) {
    auto* v = o.if_contains(k);
    return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

result<consent_person> parse_person(const json::value& v, std::size_t i, std::string_view patient_id) {
    if (!v.is_object())
        return invalid(at(i) + " must be an object");
    const auto& o = v.as_object();
    static const std::set<std::string, std::less<>> known = {"personId", "role",  "name",   "channels",
                                                             "phone",    "email", "consent"};
    for (auto& kv : o)
        if (!known.count(kv.key()))
            return invalid(at(i) + ": unknown field '" + std::string(kv.key()) + "'");
    consent_person p;
    for (const char* k : {"personId", "role", "name", "phone", "email"})
        if (auto* x = o.if_contains(k); x && !x->is_string())
            return invalid(at(i) + "." + k + " must be a string");
    p.role = str_of(o, "role");
    if (p.role != "self" && p.role != "relative")
        return invalid(at(i) + ".role must be \"self\" or \"relative\" (a relative with power of attorney)");
    p.person_id = str_of(o, "personId");
    if (p.role == "self" && p.person_id.empty())
        p.person_id = std::string(patient_id);
    if (!is_person_id(p.person_id))
        return invalid(at(i) + ".personId must be an 11-digit person id");
    if (p.role == "self" && p.person_id != patient_id)
        return invalid(at(i) + ": role \"self\" must be the patient (personId = patientId)");
    if (p.role == "relative" && p.person_id == patient_id)
        return invalid(at(i) + ": a relative cannot be the patient");
    p.name = str_of(o, "name");
    if (p.name.size() > 200)
        return invalid(at(i) + ".name is longer than 200 characters");
    auto* consent = o.if_contains("consent");
    if (!consent || !consent->is_bool())
        return invalid(at(i) + ".consent (true or false) is required");
    p.consent = consent->as_bool();
    if (auto* ch = o.if_contains("channels")) {
        if (!ch->is_array())
            return invalid(at(i) + ".channels must be an array of \"sms\" and/or \"email\"");
        for (auto& c : ch->as_array()) {
            if (c.is_string() && c.as_string() == "sms")
                p.sms = true;
            else if (c.is_string() && c.as_string() == "email")
                p.email = true;
            else
                return invalid(at(i) + ".channels may hold only \"sms\" and \"email\"");
        }
    }
    if (auto raw = str_of(o, "phone"); !raw.empty()) {
        p.phone = normalise_phone(raw);
        if (p.phone.empty())
            return invalid(at(i) + ".phone is not a phone number (8 to 15 digits, optional leading +)");
    }
    if (auto raw = str_of(o, "email"); !raw.empty()) {
        if (!plausible_email(raw))
            return invalid(at(i) + ".email is not an e-mail address");
        p.email_address = raw;
    }
    if (p.sms && p.phone.empty())
        return invalid(at(i) + ": channel \"sms\" needs a phone");
    if (p.email && p.email_address.empty())
        return invalid(at(i) + ": channel \"email\" needs an email");
    return p;
}

} // namespace

bool is_person_id(std::string_view s) {
    if (s.size() != 11)
        return false;
    for (char c : s)
        if (c < '0' || c > '9')
            return false;
    return true;
}

result<patient_consents> parse_consents(const json::value& body, std::string_view patient_id) {
    if (!is_person_id(patient_id))
        return invalid("the patient id must be an 11-digit person id");
    if (!body.is_object())
        return invalid("the body must be a JSON object {\"persons\": [...]}");
    const auto& o = body.as_object();
    for (auto& kv : o)
        if (kv.key() != "persons" && kv.key() != "patientId")
            return invalid("unknown field '" + std::string(kv.key()) + "'");
    if (auto* pid = o.if_contains("patientId"); pid && (!pid->is_string() || pid->as_string() != patient_id))
        return invalid("patientId in the body differs from the one in the path");
    auto* persons = o.if_contains("persons");
    if (!persons || !persons->is_array())
        return invalid("persons (an array) is required; an empty array removes the patient's consents");
    if (persons->as_array().size() > max_persons)
        return invalid("at most " + std::to_string(max_persons) + " persons per patient");
    patient_consents pc;
    pc.patient_id = std::string(patient_id);
    std::set<std::string> seen;
    int selves = 0;
    for (std::size_t i = 0; i < persons->as_array().size(); ++i) {
        auto p = parse_person(persons->as_array()[i], i, patient_id);
        if (!p)
            return p.error();
        if (!seen.insert(p->person_id).second)
            return invalid(at(i) + ": the same person is listed twice");
        if (p->role == "self" && ++selves > 1)
            return invalid(at(i) + ": only one person can be \"self\"");
        pc.persons.push_back(std::move(*p));
    }
    return pc;
}

result<std::vector<patient_consents>> parse_consents_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        return error{"config.unreadable", "cannot read the consents file", path, 0, 0};
    std::stringstream ss;
    ss << in.rdbuf();
    boost::system::error_code ec;
    json::value v = json::parse(ss.str(), ec);
    if (ec)
        return error{"config.invalid", "the consents file is not JSON: " + ec.message(), path, 0, 0};
    if (!v.is_object() || !v.as_object().if_contains("patients") || !v.as_object().at("patients").is_array())
        return error{"config.invalid", "the consents file must be {\"patients\": [...]}", path, 0, 0};
    std::vector<patient_consents> out;
    std::set<std::string> seen;
    const auto& patients = v.as_object().at("patients").as_array();
    for (std::size_t i = 0; i < patients.size(); ++i) {
        const std::string where = "patients[" + std::to_string(i) + "]";
        if (!patients[i].is_object())
            return error{"config.invalid", where + " must be an object", path, 0, 0};
        const auto& po = patients[i].as_object();
        std::string pid = str_of(po, "patientId");
        if (!is_person_id(pid))
            return error{"config.invalid", where + ".patientId must be an 11-digit person id", path, 0, 0};
        if (!seen.insert(pid).second)
            return error{"config.invalid", where + ": the same patient is listed twice", path, 0, 0};
        auto pc = parse_consents(patients[i], pid);
        if (!pc)
            return error{"config.invalid", where + ": " + pc.error().message, path, 0, 0};
        out.push_back(std::move(*pc));
    }
    return out;
}

json::object to_json(const patient_consents& pc) {
    json::object o;
    o["patientId"] = pc.patient_id;
    json::array persons;
    for (auto& p : pc.persons) {
        json::object x;
        x["personId"] = p.person_id;
        x["role"] = p.role;
        if (!p.name.empty())
            x["name"] = p.name;
        json::array ch;
        if (p.sms)
            ch.emplace_back("sms");
        if (p.email)
            ch.emplace_back("email");
        x["channels"] = std::move(ch);
        if (!p.phone.empty())
            x["phone"] = p.phone;
        if (!p.email_address.empty())
            x["email"] = p.email_address;
        x["consent"] = p.consent;
        persons.push_back(std::move(x));
    }
    o["persons"] = std::move(persons);
    return o;
}

result<void> replace_consents(store::write_txn& t, const patient_consents& pc, std::string_view source) {
    using store::sql_value;
    if (auto r = t.sql_exec("DELETE FROM consents WHERE patient_id = ?1", {sql_value{pc.patient_id}}); !r)
        return r.error();
    const store::millis now = store::now_ms();
    for (auto& p : pc.persons) {
        auto opt = [](const std::string& s) { return s.empty() ? sql_value{} : sql_value{s}; };
        auto r = t.sql_exec(
            "INSERT INTO consents(patient_id, person_id, role, name, sms, email, phone, email_address, consent,"
            " source, updated_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            {sql_value{pc.patient_id}, sql_value{p.person_id}, sql_value{p.role}, opt(p.name),
             sql_value{std::int64_t(p.sms ? 1 : 0)}, sql_value{std::int64_t(p.email ? 1 : 0)}, opt(p.phone),
             opt(p.email_address), sql_value{std::int64_t(p.consent ? 1 : 0)}, sql_value{std::string(source)},
             sql_value{now}});
        if (!r)
            return r.error();
    }
    return {};
}

result<patient_consents> load_consents(store::reader& rd, std::string_view patient_id) {
    using store::sql_value;
    auto rows = rd.sql_query(
        "SELECT person_id, role, name, sms, email, phone, email_address, consent FROM consents"
        " WHERE patient_id = ?1 ORDER BY role DESC, person_id",
        {sql_value{std::string(patient_id)}});
    if (!rows)
        return rows.error();
    auto text = [](const sql_value& v) {
        auto* s = std::get_if<std::string>(&v);
        return s ? *s : std::string();
    };
    auto flag = [](const sql_value& v) {
        auto* n = std::get_if<std::int64_t>(&v);
        return n && *n != 0;
    };
    patient_consents pc;
    pc.patient_id = std::string(patient_id);
    for (auto& r : *rows) {
        consent_person p;
        p.person_id = text(r[0]);
        p.role = text(r[1]);
        p.name = text(r[2]);
        p.sms = flag(r[3]);
        p.email = flag(r[4]);
        p.phone = text(r[5]);
        p.email_address = text(r[6]);
        p.consent = flag(r[7]);
        pc.persons.push_back(std::move(p));
    }
    return pc;
}

result<std::size_t> import_consents_file(store::store& st, const std::string& path) {
    auto all = parse_consents_file(path);
    if (!all)
        return all.error();
    auto list = std::make_shared<std::vector<patient_consents>>(std::move(*all));
    auto w = store::write_sync(st, [list](store::write_txn& t) -> result<void> {
        for (auto& pc : *list)
            if (auto r = replace_consents(t, pc, "file"); !r)
                return r.error();
        return {};
    });
    if (!w)
        return w.error();
    return list->size();
}

} // namespace broker::digihelse
