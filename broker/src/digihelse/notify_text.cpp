// Reading a VisitNotice, the notification text (with Norwegian local time), and building a
// ReadNotice MsgHead.
#include "digihelse/notify.hpp"
#include "digihelse/scan.hpp"

#include "broker/apprec.hpp"
#include "xml/detail.hpp"

#include <xercesc/framework/MemBufInputSource.hpp>
#include <xercesc/sax/SAXParseException.hpp>
#include <xercesc/sax2/Attributes.hpp>
#include <xercesc/sax2/DefaultHandler.hpp>
#include <xercesc/sax2/SAX2XMLReader.hpp>
#include <xercesc/sax2/XMLReaderFactory.hpp>
#include <xercesc/util/OutOfMemoryException.hpp>
#include <xercesc/util/SecurityManager.hpp>
#include <xercesc/util/XMLException.hpp>
#include <xercesc/util/XMLUni.hpp>

#include <charconv>
#include <cstdio>
#include <ctime>

namespace broker::digihelse {

namespace xc = xercesc;

// ------------------------------------------------------------------------------------------------
// VisitNotice

namespace {

constexpr std::u16string_view visit_ns_u = u"urn:edibroker:xmlstds:visit-notice:2026-11-22";

/// Collects the VisitNotice's fields: the path below VisitNotice decides which field text goes to.
class visit_handler final : public xc::DefaultHandler {
public:
    explicit visit_handler(visit_notice& v) : v_(v) {}
    bool found = false;

    void startElement(const XMLCh* const uri, const XMLCh* const local, const XMLCh* const,
                      const xc::Attributes&) override {
        bool ours = xml::detail::eq(uri, visit_ns_u);
        if (ours && xml::detail::eq(local, u"VisitNotice") && depth_ == 0) {
            found = true;
            depth_ = 1;
            return;
        }
        if (depth_ > 0) {
            path_.push_back(ours ? xml::detail::to_utf8(local) : std::string("?"));
            ++depth_;
            text_.clear();
        }
    }
    void endElement(const XMLCh* const, const XMLCh* const, const XMLCh* const) override {
        if (depth_ == 0)
            return;
        if (depth_ == 1) {
            depth_ = 0;
            return;
        }
        std::string p;
        for (auto& s : path_)
            p += (p.empty() ? "" : "/") + s;
        std::string t = trim(text_);
        if (p == "VisitId")
            v_.visit_id = t;
        else if (p == "Status")
            v_.status = t;
        else if (p == "Patient/Id")
            v_.patient_id = t;
        else if (p == "Service/HerId")
            v_.service_her = t;
        else if (p == "Service/Name")
            v_.service_name = t;
        else if (p == "CarriedOutAt")
            v_.carried_out_at = t;
        path_.pop_back();
        --depth_;
        text_.clear();
    }
    void characters(const XMLCh* const chars, const XMLSize_t length) override {
        if (depth_ > 1 && text_.size() < 4096)
            xml::detail::append_utf8(text_, chars, length);
    }
    void fatalError(const xc::SAXParseException& e) override { throw e; }

private:
    static std::string trim(const std::string& s) {
        auto b = s.find_first_not_of(" \t\r\n");
        if (b == std::string::npos)
            return {};
        auto e = s.find_last_not_of(" \t\r\n");
        return s.substr(b, e - b + 1);
    }
    visit_notice& v_;
    int depth_ = 0;
    std::vector<std::string> path_;
    std::string text_;
};


} // namespace

result<visit_notice> parse_visit_notice(std::string_view document) {
    visit_notice v;
    xc::SAX2XMLReader& reader = plain_reader();
    visit_handler h(v);
    bool ok = true;
    try {
        reader.setContentHandler(&h);
        reader.setErrorHandler(&h);
        xc::MemBufInputSource src(reinterpret_cast<const XMLByte*>(document.data()), document.size(), u"visit",
                                  false);
        src.setCopyBufToStream(false);
        reader.parse(src);
    } catch (const xc::SAXParseException&) {
        ok = false;
    } catch (const xc::XMLException&) {
        ok = false;
    } catch (const xc::OutOfMemoryException&) {
        ok = false;
    } catch (const std::bad_alloc&) {
        ok = false;
    }
    reader.setContentHandler(nullptr);
    reader.setErrorHandler(nullptr);
    if (!ok || !h.found)
        return error("notify.not-a-visit-notice", "the message holds no readable VisitNotice");
    if (v.patient_id.empty() || v.service_her.empty() || v.carried_out_at.empty())
        return error("notify.not-a-visit-notice", "the VisitNotice lacks the patient, the service or the time");
    return v;
}

// ------------------------------------------------------------------------------------------------
// time and text

namespace {

bool num(std::string_view s, std::size_t pos, std::size_t len, int& out) {
    if (pos + len > s.size())
        return false;
    auto [p, ec] = std::from_chars(s.data() + pos, s.data() + pos + len, out);
    return ec == std::errc{} && p == s.data() + pos + len;
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
std::int64_t days_from_civil(int y, unsigned m, unsigned d) {
    y -= m <= 2;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

/// UTC seconds of the last Sunday of 'month' in 'year' at 01:00 UTC (EU summer-time switch).
std::int64_t eu_switch(int year, unsigned month) {
    std::int64_t last = days_from_civil(year, month, 31);
    // 1970-01-01 was a Thursday (weekday 4, Sunday = 0).
    std::int64_t wd = ((last % 7) + 7 + 4) % 7;
    return (last - wd) * 86400 + 3600;
}

} // namespace

result<std::string> local_time_text(std::string_view s, std::string_view language) {
    // YYYY-MM-DDThh:mm:ss[.fff](Z|+hh:mm|-hh:mm)
    int y, mo, d, h, mi, sec;
    if (s.size() < 20 || !num(s, 0, 4, y) || s[4] != '-' || !num(s, 5, 2, mo) || s[7] != '-' || !num(s, 8, 2, d) ||
        s[10] != 'T' || !num(s, 11, 2, h) || s[13] != ':' || !num(s, 14, 2, mi) || s[16] != ':' ||
        !num(s, 17, 2, sec) || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 24 || mi > 59 || sec > 60)
        return error("notify.bad-time", "the time is not an xs:dateTime");
    std::size_t p = 19;
    if (p < s.size() && s[p] == '.') {
        ++p;
        while (p < s.size() && s[p] >= '0' && s[p] <= '9')
            ++p;
    }
    int offset_min = 0;
    std::string_view zone = s.substr(p);
    if (zone == "Z") {
        offset_min = 0;
    } else if (zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') && zone[3] == ':') {
        int oh, om;
        if (!num(zone, 1, 2, oh) || !num(zone, 4, 2, om))
            return error("notify.bad-time", "the time zone is not +hh:mm");
        offset_min = (oh * 60 + om) * (zone[0] == '-' ? -1 : 1);
    } else {
        return error("notify.bad-time", "the time has no zone (Z or +hh:mm)");
    }
    std::int64_t utc = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d)) * 86400 + h * 3600 +
                       mi * 60 + sec - offset_min * 60;
    // Europe/Oslo: CET (+1), CEST (+2) from the last Sunday of March to the last Sunday of October.
    std::time_t t = static_cast<std::time_t>(utc);
    std::tm tm{};
    gmtime_r(&t, &tm);
    const int year = tm.tm_year + 1900;
    const bool summer = utc >= eu_switch(year, 3) && utc < eu_switch(year, 10);
    t = static_cast<std::time_t>(utc + (summer ? 7200 : 3600));
    gmtime_r(&t, &tm);
    char buf[64];
    if (language == "en")
        std::snprintf(buf, sizeof buf, "%02d.%02d.%04d %02d:%02d", tm.tm_mday, tm.tm_mon + 1, tm.tm_year + 1900,
                      tm.tm_hour, tm.tm_min);
    else
        std::snprintf(buf, sizeof buf, "%02d.%02d.%04d kl. %02d:%02d", tm.tm_mday, tm.tm_mon + 1,
                      tm.tm_year + 1900, tm.tm_hour, tm.tm_min);
    return std::string(buf);
}

notice_text visit_text(std::string_view service, std::string_view time_text, std::string_view language) {
    notice_text t;
    if (language == "en") {
        t.subject = "Home visit carried out";
        t.body = "A visit from " + std::string(service) + " was carried out at " + std::string(time_text) + ".";
    } else {
        t.subject = "Hjemmebes\xC3\xB8k utf\xC3\xB8rt";
        t.body = "Et bes\xC3\xB8k fra " + std::string(service) + " ble utf\xC3\xB8rt " + std::string(time_text) + ".";
    }
    return t;
}

// ------------------------------------------------------------------------------------------------
// ReadNotice

namespace {

std::string esc(std::string_view s) {
    std::string o;
    o.reserve(s.size());
    for (char c : s) {
        switch (c) {
        case '&': o += "&amp;"; break;
        case '<': o += "&lt;"; break;
        case '>': o += "&gt;"; break;
        case '"': o += "&quot;"; break;
        default: o += c;
        }
    }
    return o;
}

std::string iso_utc(store::millis ms) {
    std::time_t t = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
    return buf;
}

/// MsgHead Organisation for a party given by its lowest HER-id and its organisation's HER-id.
std::string party(const std::string& lowest, const std::string& lvl1, const routing::address_registry& reg) {
    auto name = [&](const std::string& her) {
        const store::party* p = reg.find(her);
        return p && !p->name.empty() ? p->name : "HER-id " + her;
    };
    auto ident = [](const std::string& her) {
        return "<Ident><Id>" + esc(her) +
               "</Id><TypeId V=\"HER\" DN=\"HER-id\" S=\"2.16.578.1.12.4.1.1.9051\"/></Ident>";
    };
    std::string top = lvl1.empty() ? lowest : lvl1;
    std::string s = "<Organisation><OrganisationName>" + esc(name(top)) + "</OrganisationName>" + ident(top);
    if (!lowest.empty() && lowest != top)
        s += "<Organisation><OrganisationName>" + esc(name(lowest)) + "</OrganisationName>" + ident(lowest) +
             "</Organisation>";
    return s + "</Organisation>";
}

} // namespace

result<std::string> build_read_notice(const store::message_row& m, const std::string& read_by, store::millis read_at,
                                      const routing::address_registry& registry) {
    if (m.sender_her.empty() || m.receiver_her.empty() || m.msg_id.empty())
        return error("notify.read-notice", "the message has no sender, receiver or MsgId to answer");
    const std::string now = iso_utc(store::now_ms());
    std::string x;
    x.reserve(2048);
    x += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
    x += "<MsgHead xmlns=\"http://www.kith.no/xmlstds/msghead/2006-05-24\">";
    x += "<MsgInfo><Type V=\"";
    x += read_notice_type;
    x += "\" DN=\"Lesekvittering (edibroker)\"/><MIGversion>v1.2 2006-05-24</MIGversion>";
    x += "<GenDate>" + now + "</GenDate><MsgId>" + apprec::new_uuid() + "</MsgId><Ack V=\"N\" DN=\"Nei\"/>";
    x += "<Sender>" + party(m.receiver_her, m.receiver_lvl1_her, registry) + "</Sender>";
    x += "<Receiver>" + party(m.sender_her, m.sender_lvl1_her, registry) + "</Receiver>";
    x += "</MsgInfo><Document><RefDoc><IssueDate V=\"" + now + "\"/><MsgType V=\"XML\" DN=\"XML-instans\"/><Content>";
    x += "<ReadNotice xmlns=\"";
    x += read_notice_ns;
    x += "\"><OriginalMsgId>" + esc(m.msg_id) + "</OriginalMsgId>";
    if (!m.msg_type.empty())
        x += "<OriginalMsgType>" + esc(m.msg_type) + "</OriginalMsgType>";
    x += "<BrokerId>" + esc(m.id) + "</BrokerId>";
    x += "<ReadBy>" + esc(read_by) + "</ReadBy><ReadAt>" + iso_utc(read_at ? read_at : store::now_ms()) +
         "</ReadAt></ReadNotice>";
    x += "</Content></RefDoc></Document></MsgHead>\n";
    return x;
}

} // namespace broker::digihelse
