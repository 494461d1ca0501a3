// The Digihelse scan read in the validating pass (scan_observer on validate_observed) finds what
// its own pass (scan) finds, on every sample and on an EI_fellesformat-wrapped one.
#include "digihelse/scan.hpp"

#include "broker/xml.hpp"
#include "test_paths.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <vector>

namespace {

void same(const broker::digihelse::scan_result& a, const broker::digihelse::scan_result& b) {
    CHECK(a.text_chars == b.text_chars);
    CHECK(a.has_reason == b.has_reason);
    CHECK(a.reason_chars == b.reason_chars);
    CHECK(a.reason == b.reason);
    CHECK(a.acting.present == b.acting.present);
    CHECK(a.acting.id == b.acting.id);
    CHECK(a.acting.role == b.acting.role);
    CHECK(a.has_calendar == b.has_calendar);
    CHECK(a.calendar_method == b.calendar_method);
    REQUIRE(a.documents.size() == b.documents.size());
    for (std::size_t i = 0; i < a.documents.size(); ++i) {
        CHECK(a.documents[i].mime_type == b.documents[i].mime_type);
        CHECK(a.documents[i].decoded_size == b.documents[i].decoded_size);
        CHECK(a.documents[i].head == b.documents[i].head);
        CHECK(a.documents[i].bad_base64 == b.documents[i].bad_base64);
    }
    REQUIRE(a.events.size() == b.events.size());
    for (std::size_t i = 0; i < a.events.size(); ++i) {
        CHECK(a.events[i].uid == b.events[i].uid);
        CHECK(a.events[i].dtstart == b.events[i].dtstart);
        CHECK(a.events[i].dtend == b.events[i].dtend);
        CHECK(a.events[i].contact == b.events[i].contact);
        CHECK(a.events[i].related_to == b.events[i].related_to);
    }
}

/// The scan read in the validating pass of 'doc' (which must be valid), checked against the scan's
/// own pass.
broker::digihelse::scan_result observed_as_own(const std::string& doc) {
    broker::digihelse::scan_observer o;
    auto vr = broker::xml::thread_validator().validate_observed(doc, "sample", o.handler());
    REQUIRE(vr.v == broker::xml::verdict::valid);
    auto own = broker::digihelse::scan(doc);
    REQUIRE(own.has_value());
    same(o.result(), *own);
    return o.result();
}

} // namespace

TEST_CASE("digihelse scan: one validating pass finds what a pass of its own finds", "[unit][digihelse]") {
    const auto dir = testing::source_dir() / "samples/digihelse";
    int n = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
        if (e.path().extension() != ".xml")
            continue;
        const std::string doc = testing::read_file(e.path());
        INFO(e.path().filename().string());
        CHECK(broker::digihelse::may_apply(doc) ==
              (doc.find("DIALOG_INNBYGGER_") != std::string::npos));
        observed_as_own(doc);
        ++n;
    }
    CHECK(n >= 10);
}

TEST_CASE("digihelse scan: Base64 inside a text field counts as text in the validating pass too",
          "[unit][digihelse]") {
    // The validator hands an attachment's Base64 to the scan as a count (xml::attachment_observer);
    // a Base64Container inside the citizen's text is text, and must still arrive as such.
    std::string doc = testing::read_file(testing::source_dir() / "samples/digihelse/message-attachments.xml");
    const std::string text = "<Sporsmal>Her er bilder av såret og brevet fra sykehuset.";
    const auto at = doc.find(text);
    REQUIRE(at != std::string::npos);
    doc.insert(at + text.size(),
               "<Base64Container xmlns=\"http://www.kith.no/xmlstds/base64container\">QUJDREVG</Base64Container>");
    const auto observed = observed_as_own(doc);
    // Eight more characters than the sample's text.
    auto plain = broker::digihelse::scan(
        testing::read_file(testing::source_dir() / "samples/digihelse/message-attachments.xml"));
    REQUIRE(plain.has_value());
    CHECK(observed.text_chars == plain->text_chars + 8);
}

TEST_CASE("digihelse scan: the observer sees the MsgHead inside EI_fellesformat, not the envelope",
          "[unit][digihelse]") {
    std::string doc = testing::read_file(testing::source_dir() / "samples/digihelse/message-on-behalf.xml");
    const auto decl_end = doc.find("?>");
    const std::string body = decl_end == std::string::npos ? doc : doc.substr(decl_end + 2);
    const std::string wrapped = "<EI_fellesformat xmlns=\"http://www.nav.no/xml/eiff/2/\">" + body +
                                "</EI_fellesformat>";
    broker::digihelse::scan_observer o;
    auto vr = broker::xml::thread_validator().validate_observed(wrapped, "wrapped", o.handler());
    REQUIRE(vr.v == broker::xml::verdict::valid);
    auto own = broker::digihelse::scan(doc);
    REQUIRE(own.has_value());
    CHECK(o.result().acting.present);
    same(o.result(), *own);
}

namespace {

/// The Base64Container texts of a document, in order.
std::vector<std::string> base64_texts(const std::string& doc) {
    std::vector<std::string> out;
    for (std::size_t p = 0; (p = doc.find("<Base64Container", p)) != std::string::npos;) {
        const std::size_t b = doc.find('>', p) + 1, e = doc.find("</Base64Container>", b);
        out.push_back(doc.substr(b, e - b));
        p = e;
    }
    return out;
}

/// Decoded bytes of Base64 text, skipping XML white space and '=' (a reference for the scan).
std::string decode(const std::string& t) {
    static const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    unsigned acc = 0;
    int bits = 0;
    for (char c : t) {
        const auto v = alphabet.find(c);
        if (v == std::string::npos)
            continue;
        acc = (acc << 6) | static_cast<unsigned>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((acc >> bits) & 0xFF);
        }
    }
    return out;
}

} // namespace

TEST_CASE("digihelse scan: attachment sizes, heads and bad Base64, against a plain decoder",
          "[unit][digihelse]") {
    const std::string doc =
        testing::read_file(testing::source_dir() / "samples/digihelse/message-attachments.xml");
    const auto texts = base64_texts(doc);
    REQUIRE(texts.size() == 3);
    auto r = broker::digihelse::scan(doc);
    REQUIRE(r.has_value());
    std::vector<const broker::digihelse::attachment*> files;
    for (const auto& a : r->documents)
        if (a.content_root == "Base64Container")
            files.push_back(&a);
    REQUIRE(files.size() == 3);
    for (std::size_t i = 0; i < 3; ++i) {
        const std::string bytes = decode(texts[i]);
        INFO("attachment " << i);
        CHECK(files[i]->decoded_size == bytes.size());
        CHECK(files[i]->head == bytes.substr(0, 16));
        CHECK_FALSE(files[i]->bad_base64);
    }

    // A character outside the alphabet (a '*', then a non-ASCII 'ø') anywhere in the text, also
    // among the first characters that make the head, is reported; the rest is still counted.
    for (std::size_t at : {std::size_t{3}, std::size_t{40}, texts[1].size() / 2}) {
        for (const char* bad : {"*", "\xC3\xB8"}) {
            std::string t = texts[1];
            while (at < t.size() && (t[at] == ' ' || t[at] == '\n' || t[at] == '\r' || t[at] == '\t'))
                ++at;
            t.replace(at, 1, bad);
            std::string d = doc;
            d.replace(d.find(texts[1]), texts[1].size(), t);
            auto b = broker::digihelse::scan(d);
            REQUIRE(b.has_value());
            INFO("bad character at " << at);
            std::size_t n = 0;
            for (const auto& a : b->documents)
                if (a.content_root == "Base64Container") {
                    CHECK(a.bad_base64 == (n == 1));
                    if (n == 1)
                        CHECK(a.decoded_size == decode(t).size());
                    ++n;
                }
        }
    }
}

TEST_CASE("digihelse scan: rules match by namespace, with more namespaces than the scan remembers",
          "[unit][digihelse]") {
    // The scan classifies a namespace once per parse and then finds it by Xerces' pooled pointer
    // (it remembers four). Here six namespaces take turns, the dialog one comes back after the
    // others have pushed it out, a namespace that only looks like it (".../dialogue/") does not
    // count, and the same dialog namespace under two prefixes is one namespace.
    const std::string doc = R"(<?xml version="1.0" encoding="UTF-8"?>
<MsgHead xmlns="http://www.kith.no/xmlstds/msghead/2006-05-24"
         xmlns:a="urn:test:a" xmlns:b="urn:test:b" xmlns:c="urn:test:c"
         xmlns:x="http://www.kith.no/xmlstds/dialogue/2013-01-23"
         xmlns:d="http://www.kith.no/xmlstds/dialog/2013-01-23">
  <a:One/><b:Two/><c:Three/>
  <d:Sporsmal>abc</d:Sporsmal>
  <a:One/><b:Two/><c:Three/><x:Sporsmal>not counted</x:Sporsmal>
  <Sporsmal>nor this</Sporsmal>
  <a:One/><b:Two/><c:Three/>
  <Foresporsel xmlns="http://www.kith.no/xmlstds/dialog/2013-01-23"><Begrunnelse> why </Begrunnelse></Foresporsel>
  <x:Begrunnelse>not a reason</x:Begrunnelse>
  <d:EmneSporsmal>de</d:EmneSporsmal>
  <icalendar xmlns="urn:ietf:params:xml:ns:icalendar-2.0"><vcalendar><components><vevent><properties>
    <uid><text>u-1</text></uid><a:One/><b:Two/><c:Three/><x:Sporsmal/>
    <dtstart><date-time>2026-12-07T10:00:00</date-time></dtstart>
  </properties></vevent></components></vcalendar></icalendar>
  <x:icalendar><x:vevent/></x:icalendar>
</MsgHead>)";
    auto r = broker::digihelse::scan(doc);
    REQUIRE(r.has_value());
    CHECK(r->text_chars == 5);  // "abc" + "de"
    CHECK(r->has_reason);
    CHECK(r->reason == "why");
    CHECK(r->reason_chars == 3);
    CHECK(r->has_calendar);
    REQUIRE(r->events.size() == 1);
    CHECK(r->events[0].uid == "u-1");
    CHECK(r->events[0].dtstart == "2026-12-07T10:00:00");
}
