// Builds AppRec v1.0 / v1.1 documents (standards.md §1.3 and §4 facts 2-4). The output is plain
// text assembled in schema order; every value is XML-escaped. The official KITH schemas accept
// everything this file writes (tests/unit/apprec checks it against them).
#include "broker/apprec.hpp"

#include <cctype>
#include <string>

namespace broker::apprec {

namespace {

/// Appends 's' escaped for element content (attr = false) or a double-quoted attribute.
/// Characters XML 1.0 cannot carry (C0 controls other than TAB, LF, CR) are dropped.
void append_escaped(std::string& out, std::string_view s, bool attr) {
    for (char c : s) {
        switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&quot;"; break;
        case '\'': out += "&apos;"; break;
        case '\t': out += attr ? "&#9;" : "\t"; break;
        case '\n': out += attr ? "&#10;" : "\n"; break;
        case '\r': out += "&#13;"; break;
        default:
            if (static_cast<unsigned char>(c) < 0x20)
                break;
            out += c;
        }
    }
}

bool all_digits(std::string_view s, std::size_t pos, std::size_t n) {
    if (pos + n > s.size())
        return false;
    for (std::size_t i = pos; i < pos + n; ++i)
        if (!std::isdigit(static_cast<unsigned char>(s[i])))
            return false;
    return true;
}

int num(std::string_view s, std::size_t pos, std::size_t n) {
    int v = 0;
    for (std::size_t i = pos; i < pos + n; ++i)
        v = v * 10 + (s[i] - '0');
    return v;
}

/// True if 's' is a lexically valid xs:dateTime (hour 24 is not accepted).
bool is_xs_datetime(std::string_view s) {
    std::size_t p = 0;
    if (p < s.size() && s[p] == '-')
        ++p;
    std::size_t ys = p;
    while (p < s.size() && std::isdigit(static_cast<unsigned char>(s[p])))
        ++p;
    std::size_t ylen = p - ys;
    if (ylen < 4 || (ylen > 4 && s[ys] == '0'))
        return false;
    long long year = 0;
    for (std::size_t i = ys; i < p && i < ys + 9; ++i)
        year = year * 10 + (s[i] - '0');
    if (year == 0 && ylen == 4)
        return false;  // year 0000 is not allowed in XSD 1.0
    // -MM-DDThh:mm:ss
    if (p + 15 > s.size() || s[p] != '-' || !all_digits(s, p + 1, 2) || s[p + 3] != '-' ||
        !all_digits(s, p + 4, 2) || s[p + 6] != 'T' || !all_digits(s, p + 7, 2) || s[p + 9] != ':' ||
        !all_digits(s, p + 10, 2) || s[p + 12] != ':' || !all_digits(s, p + 13, 2))
        return false;
    int month = num(s, p + 1, 2), day = num(s, p + 4, 2);
    int hour = num(s, p + 7, 2), minute = num(s, p + 10, 2), second = num(s, p + 13, 2);
    static constexpr int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (month < 1 || month > 12 || day < 1 || day > mdays[month - 1] || hour > 23 || minute > 59 || second > 59)
        return false;
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (month == 2 && day == 29 && !leap)
        return false;
    p += 15;
    if (p < s.size() && s[p] == '.') {
        std::size_t fs = ++p;
        while (p < s.size() && std::isdigit(static_cast<unsigned char>(s[p])))
            ++p;
        if (p == fs)
            return false;
    }
    if (p == s.size())
        return true;
    if (s[p] == 'Z')
        return p + 1 == s.size();
    if ((s[p] == '+' || s[p] == '-') && p + 6 == s.size() && all_digits(s, p + 1, 2) && s[p + 3] == ':' &&
        all_digits(s, p + 4, 2)) {
        int hh = num(s, p + 1, 2), mm = num(s, p + 4, 2);
        return mm <= 59 && (hh < 14 || (hh == 14 && mm == 0));
    }
    return false;
}

/// The kith:oid pattern "(\d+\.?)*\d+".
bool is_oid(std::string_view s) {
    if (s.empty() || !std::isdigit(static_cast<unsigned char>(s.back())))
        return false;
    char prev = '.';
    for (char c : s) {
        if (c == '.') {
            if (prev == '.')
                return false;
        } else if (!std::isdigit(static_cast<unsigned char>(c))) {
            return false;
        }
        prev = c;
    }
    return true;
}

struct writer {
    std::string out;
    int depth = 0;

    void indent() { out.append(static_cast<std::size_t>(depth) * 2, ' '); }
    void open(std::string_view name) {
        indent();
        out += '<';
        out += name;
        out += ">\n";
        ++depth;
    }
    void close(std::string_view name) {
        --depth;
        indent();
        out += "</";
        out += name;
        out += ">\n";
    }
    void text(std::string_view name, std::string_view value) {
        indent();
        out += '<';
        out += name;
        out += '>';
        append_escaped(out, value, false);
        out += "</";
        out += name;
        out += ">\n";
    }
    /// An empty element with attributes; attributes with an empty value are left out.
    void empty(std::string_view name, std::initializer_list<std::pair<std::string_view, std::string_view>> attrs) {
        indent();
        out += '<';
        out += name;
        for (auto& [k, v] : attrs) {
            if (v.empty())
                continue;
            out += ' ';
            out += k;
            out += "=\"";
            append_escaped(out, v, true);
            out += '"';
        }
        out += "/>\n";
    }
};

/// HCP/Inst for one party: level 1 as Inst (Name, Id + TypeId HER), level 2 as Dept (service or
/// department) or HCPerson (person), each with Name, Id + TypeId HER.
void write_party(writer& w, std::string_view element, const party_ref& p) {
    w.open(element);
    w.open("HCP");
    w.open("Inst");
    if (!p.lvl1_name.empty())
        w.text("Name", p.lvl1_name);
    if (!p.lvl1_her.empty()) {
        w.text("Id", p.lvl1_her);
        w.empty("TypeId", {{"V", "HER"}, {"DN", "HER-id"}});
    } else if (!p.lvl1_orgnr.empty()) {
        w.text("Id", p.lvl1_orgnr);
        w.empty("TypeId", {{"V", "ENH"}, {"DN", "Organisasjonsnummeret i Enhetsregisteret"}});
    }
    if (!p.lvl2_her.empty() || !p.lvl2_name.empty()) {
        const char* l2 = p.lvl2_is_person ? "HCPerson" : "Dept";
        w.open(l2);
        if (!p.lvl2_name.empty())
            w.text("Name", p.lvl2_name);
        if (!p.lvl2_her.empty()) {
            w.text("Id", p.lvl2_her);
            w.empty("TypeId", {{"V", "HER"}, {"DN", "HER-id"}});
        }
        w.close(l2);
    }
    w.close("Inst");
    w.close("HCP");
    w.close(element);
}

bool has_party(const party_ref& p) {
    return !p.lvl1_her.empty() || !p.lvl1_name.empty() || !p.lvl1_orgnr.empty() || !p.lvl2_her.empty() ||
           !p.lvl2_name.empty();
}

} // namespace

result<std::string> build(const request& r) {
    const char* ns_uri = nullptr;
    const char* mig = nullptr;
    if (r.version == "1.0") {
        ns_uri = ns::apprec_1_0;
        mig = "1.0 2004-11-21";
    } else if (r.version == "1.1") {
        ns_uri = ns::apprec_1_1;
        mig = "v1.1 2012-02-15";
    } else {
        return error{"apprec.version", "unknown AppRec version '" + r.version.substr(0, 20) + "' (expected 1.0 or 1.1)"};
    }

    const message_facts& o = r.original;
    // Never an AppRec for an AppRec (EDI 2.0 error 1100).
    if (o.is_apprec() || o.msg_type == "APPREC" || o.root_ns == ns::apprec_1_0 || o.root_ns == ns::apprec_1_1)
        return error{"apprec.on-apprec", "the original message is itself an AppRec; an AppRec is never answered"};
    if (o.msg_id.empty())
        return error{"apprec.no-msgid", "the original message has no MsgId for OriginalMsgId/Id"};
    if (o.sender.lowest_her().empty())
        return error{"apprec.no-sender-her", "the original message has no sender HER-id to address the AppRec to"};

    int sv = static_cast<int>(r.st);
    if (sv < 1 || sv > 3)
        return error{"apprec.status", "AppRec status must be 1, 2 or 3"};
    if (r.st == status::rejected && r.errors.empty())
        return error{"apprec.no-error", "status 2 (Avvist) needs at least one Error"};
    for (const auto& e : r.errors) {
        if (e.code.empty())
            return error{"apprec.error-code", "an AppRec Error needs a code (V)"};
        if (!e.code_system.empty() && !is_oid(e.code_system))
            return error{"apprec.error-system",
                         "Error/@S '" + e.code_system.substr(0, 60) + "' is not an OID for code " + e.code.substr(0, 20)};
    }

    std::string gen_date = r.gen_date.empty() ? now_datetime() : r.gen_date;
    if (!is_xs_datetime(gen_date))
        return error{"apprec.gen-date", "GenDate '" + gen_date.substr(0, 40) + "' is not an xs:dateTime"};
    // IssueDate must be the original's GenDate. Should that be missing or not an xs:dateTime
    // (we may be rejecting exactly that message), use our own GenDate so the AppRec stays valid.
    const std::string& issue_date = is_xs_datetime(o.gen_date) ? o.gen_date : gen_date;
    std::string id = r.id.empty() ? new_uuid() : r.id;
    const party_ref& sender = has_party(r.sender_override) ? r.sender_override : o.receiver;

    writer w;
    w.out.reserve(2048);
    w.out += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<AppRec xmlns=\"";
    w.out += ns_uri;
    w.out += "\">\n";
    w.depth = 1;
    w.empty("MsgType", {{"V", "APPREC"}, {"DN", "Applikasjonskvittering"}});
    w.text("MIGversion", mig);
    if (!r.software_name.empty())
        w.text("SoftwareName", r.software_name);
    if (!r.software_version.empty())
        w.text("SoftwareVersion", r.software_version);
    w.text("GenDate", gen_date);
    w.text("Id", id);
    write_party(w, "Sender", sender);
    write_party(w, "Receiver", o.sender);
    std::string sv_text = std::to_string(sv);
    w.empty("Status", {{"V", sv_text}, {"DN", status_dn(r.st)}});
    for (const auto& e : r.errors) {
        std::string_view dn = e.description.empty() ? std::string_view(error_dn(e.code)) : e.description;
        std::string_view s = e.code_system.empty() ? std::string_view(oid::apprec_error) : e.code_system;
        w.empty("Error", {{"V", e.code}, {"S", s}, {"DN", dn}, {"OT", e.origin}});
    }
    w.open("OriginalMsgId");
    w.empty("MsgType", {{"V", o.msg_type}, {"DN", o.msg_type_dn}});
    w.text("IssueDate", issue_date);
    w.text("Id", o.msg_id);
    w.close("OriginalMsgId");
    w.out += "</AppRec>\n";
    return std::move(w.out);
}

} // namespace broker::apprec
