// AppRec code tables: status names (EDI 2.0 and kodeverk 8258) and the display names of the
// general error codes of kodeverk 8221 (standards.md §1.3; texts as published with the kodeverk).
#include "broker/apprec.hpp"

#include <algorithm>
#include <array>
#include <cctype>

namespace broker::apprec {

namespace {

struct code_text {
    std::string_view code;
    const char* dn;
};

// Kodeverk 8221 "Feilmeldinger for applikasjonskvittering - Generelle".
constexpr std::array<code_text, 18> errors_8221{{
    {"E10", "Ugyldig meldingsidentifikator"},
    {"E20", "Lege finnes ikke"},
    {"E21", "Mottaker finnes ikke"},
    {"E30", "Pasientens fødselsnummer mangler"},
    {"E31", "Pasientens fødselsnummer er feil"},
    {"E32", "Pasientens navn mangler"},
    {"E35", "Pasienten finnes ikke i mottakersystemet"},
    {"E36", "Pasientopplysninger er utilstrekkelige"},
    {"E53", "Pasientens fødselsnummer eller D-nummer finnes ikke registrert i Folkeregisteret"},
    {"E54", "Pasientens fødselsnummer er ikke registrert i mottagersystemet"},
    {"S01", "Feil på signatur"},
    {"S02", "Ugyldig sertifikat"},
    {"S03", "Tilbaketrukket sertifikat"},
    {"T01", "Ikke XML / ikke 'well formed' / uleselig"},
    {"T02", "XML validerer ikke"},
    {"T10", "Støtter ikke meldingsformatet"},
    {"T99", "Annen feil på format"},
    {"X99", "Annen feil"},
}};

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
}

} // namespace

const char* status_name(status s) noexcept {
    switch (s) {
    case status::ok: return "Ok";
    case status::rejected: return "Rejected";
    case status::ok_error_in_part: return "OkErrorInMessagePart";
    }
    return "";
}

result<status> parse_status_name(std::string_view s) {
    // The EDI 2.0 names, case-insensitively, and the kodeverk 8258 values themselves.
    for (status st : {status::ok, status::rejected, status::ok_error_in_part}) {
        if (iequals(s, status_name(st)) || s == std::to_string(static_cast<int>(st)))
            return st;
    }
    return error{"apprec.status", "unknown AppRec status '" + std::string(s.substr(0, 40)) +
                                      "' (expected Ok, Rejected or OkErrorInMessagePart)"};
}

const char* status_dn(status s) noexcept {
    switch (s) {
    case status::ok: return "OK";
    case status::rejected: return "Avvist";
    case status::ok_error_in_part: return "OK, feil i delmelding";
    }
    return "";
}

const char* error_dn(std::string_view code) noexcept {
    for (const auto& e : errors_8221) {
        if (e.code == code)
            return e.dn;
    }
    return "";
}

} // namespace broker::apprec
