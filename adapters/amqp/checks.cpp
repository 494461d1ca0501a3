// amqp adapter: the receive-side checks and the errorCondition each failure maps to.
#include "checks.hpp"

#include <algorithm>
#include <array>
#include <cctype>

namespace broker::adapters::amqp {

namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
    return out;
}

/// The media type without parameters, lower-case: "Text/Plain; charset=utf-8" -> "text/plain".
std::string media_type(std::string_view ct) {
    auto semi = ct.find(';');
    std::string_view t = ct.substr(0, semi);
    while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back())))
        t.remove_suffix(1);
    while (!t.empty() && std::isspace(static_cast<unsigned char>(t.front())))
        t.remove_prefix(1);
    return lower(t);
}

std::string first_diagnostic(const xml::validation_result& vr) {
    if (vr.diagnostics.empty())
        return {};
    const auto& d = vr.diagnostics.front();
    return std::to_string(d.line) + ":" + std::to_string(d.column) + ": " + d.message;
}

} // namespace

std::optional<refusal> check_envelope(const envelope& e, const options& o) {
    // Presence first: everything helsenorge sets on every message.
    const std::array<std::pair<const char*, const std::string*>, 9> required{{
        {"message-id", &e.message_id},
        {"to", &e.to},
        {"reply-to", &e.reply_to},
        {"subject", &e.subject},
        {"content-type", &e.content_type},
        {"fromHerId", &e.from_her},
        {"toHerId", &e.to_her},
        {"cpaId", &e.cpa_id},
        {"applicationTimeStamp", &e.app_timestamp},
    }};
    refusal r{condition::invalid_field, "", {}};
    for (auto& [name, value] : required)
        if (value->empty() &&
            std::find(e.unusable.begin(), e.unusable.end(), std::string(name)) == e.unusable.end())
            r.data.push_back(std::string("missing ") + name);
    for (auto& u : e.unusable)
        r.data.push_back("unusable " + u);
    if (!r.data.empty()) {
        r.description = "the message lacks required properties: ";
        for (std::size_t i = 0; i < r.data.size(); ++i)
            r.description += (i ? ", " : "") + r.data[i];
        return r;
    }
    if (!is_her_id(e.from_her))
        return refusal{condition::invalid_field, "application property fromHerId is not a HER-id", {"fromHerId"}};
    if (!is_her_id(e.to_her))
        return refusal{condition::invalid_field, "application property toHerId is not a HER-id", {"toHerId"}};

    std::string mt = media_type(e.content_type);
    if (mt == "application/pkcs7-mime")
        return refusal{condition::unsupported,
                       "signed and encrypted (application/pkcs7-mime) payloads are not accepted by this endpoint; "
                       "send text/plain",
                       {"content-type"}};
    if (mt != "text/plain" && mt != "application/xml" && mt != "text/xml" && mt != "application/soap+xml")
        return refusal{condition::invalid_field,
                       "content-type must be text/plain, application/xml or application/soap+xml",
                       {"content-type"}};
    if (!e.has_body)
        return refusal{condition::invalid_field, "the message has no body (one data section expected)", {"body"}};
    if (e.body_size > o.max_message_bytes)
        return refusal{condition::invalid_field,
                       "the message body has " + std::to_string(e.body_size) + " bytes, more than the " +
                           std::to_string(o.max_message_bytes) + " this endpoint takes",
                       {"body"}};
    return std::nullopt;
}

std::optional<refusal> check_document(const envelope& e, const xml::validation_result& vr, bool schema_checked) {
    const message_facts& f = vr.facts;
    if (vr.v == xml::verdict::not_well_formed) {
        std::string where = first_diagnostic(vr);
        return refusal{condition::not_well_formed,
                       "the body is not well-formed XML" + (where.empty() ? std::string() : " at " + where),
                       {"T01"}};
    }
    // Anti-spoofing before anything else the document says: the transport sender must be the
    // sender the document names, at either level (standards §4.6).
    const std::string& s2 = f.sender.lvl2_her;
    const std::string& s1 = f.sender.lvl1_her;
    if (!s2.empty() || !s1.empty()) {
        if (e.from_her != s2 && e.from_her != s1)
            return refusal{condition::spoofing,
                           "the document's sender HER-id " + (s2.empty() ? s1 : s2) + " is not fromHerId " + e.from_her,
                           {"fromHerId=" + e.from_her, "sender=" + (s2.empty() ? s1 : s2)}};
    }
    if (schema_checked && vr.v == xml::verdict::invalid) {
        std::string where = first_diagnostic(vr);
        return refusal{condition::not_well_formed,
                       "the document does not validate" + (where.empty() ? std::string() : " at " + where),
                       {"T02"}};
    }
    if (schema_checked && vr.v == xml::verdict::unsupported) {
        std::string where = first_diagnostic(vr);
        return refusal{condition::unsupported,
                       "unsupported message format or version" + (where.empty() ? std::string() : ": " + where),
                       {"T10"}};
    }
    if (s2.empty() && s1.empty())
        return refusal{condition::invalid_field, "the document names no sender HER-id to check fromHerId against",
                       {"fromHerId"}};
    const std::string& r2 = f.receiver.lvl2_her;
    const std::string& r1 = f.receiver.lvl1_her;
    if (e.to_her != r2 && e.to_her != r1)
        return refusal{condition::invalid_field,
                       "toHerId " + e.to_her + " is not the document's receiver " +
                           (r2.empty() ? (r1.empty() ? std::string("(none)") : r1) : r2),
                       {"toHerId"}};
    if (e.subject != f.msg_type)
        return refusal{condition::invalid_field,
                       "subject '" + e.subject.substr(0, 80) + "' is not the message function '" + f.msg_type + "'",
                       {"subject"}};
    return std::nullopt;
}

std::string queue_name_of(std::string_view address) {
    auto slash = address.rfind('/');
    return std::string(slash == std::string_view::npos ? address : address.substr(slash + 1));
}

std::string error_target_her(const envelope& e, const options& o) {
    if (is_her_id(e.from_her))
        return e.from_her;
    std::string q = queue_name_of(e.reply_to);
    // Try every run of digits in the queue name as the HER-id the pattern was filled with.
    for (std::size_t i = 0; i < q.size();) {
        if (!std::isdigit(static_cast<unsigned char>(q[i]))) {
            ++i;
            continue;
        }
        std::size_t j = i;
        while (j < q.size() && std::isdigit(static_cast<unsigned char>(q[j])))
            ++j;
        std::string cand = q.substr(i, j - i);
        if (is_her_id(cand))
            for (auto k : {queue_kind::async, queue_kind::sync, queue_kind::syncreply, queue_kind::error})
                if (o.queue(cand, k) == q)
                    return cand;
        i = j;
    }
    return {};
}

const char* condition_for_sync_error(std::string_view code) {
    if (code == "T01" || code == "T02")
        return condition::not_well_formed;
    if (code == "T10" || code == "adapter.no-sync")
        return condition::unsupported;
    if (code == "E21")
        return condition::invalid_field;
    return condition::internal;
}

} // namespace broker::adapters::amqp
