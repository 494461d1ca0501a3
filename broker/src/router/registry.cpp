// The address registry: our own registry file (schemas/registry.xsd) or a raw Adresseregister
// SOAP GetCommunicationPartyDetailsResponse, and the in-memory view routing uses.
#include "broker/router.hpp"
#include "router/sax.hpp"

#include <algorithm>
#include <map>
#include <set>
#include <unordered_set>

namespace broker::routing {

namespace {

using detail::position;

constexpr const char* code_invalid = "registry.invalid";
constexpr char16_t ns_registry[] = u"urn:edibroker:registry:1";
constexpr char16_t ns_ar[] = u"http://register.nhn.no/CommunicationParty";
constexpr char16_t ns_ar_common[] = u"http://register.nhn.no/Common";
constexpr char16_t ns_soap12[] = u"http://www.w3.org/2003/05/soap-envelope";
constexpr char16_t ns_soap11[] = u"http://schemas.xmlsoap.org/soap/envelope/";
constexpr char16_t ns_xsi[] = u"http://www.w3.org/2001/XMLSchema-instance";

bool eq(const XMLCh* a, const char16_t* b) { return std::u16string_view(a) == std::u16string_view(b); }

/// AR type name (Type element or i:type) → store::party::type; "" if unknown.
std::string map_type(std::string_view t) {
    if (auto c = t.find(':'); c != std::string_view::npos)  // i:type may carry a prefix
        t = t.substr(c + 1);
    if (t == "Organization")
        return "organisation";
    if (t == "Department")
        return "department";
    if (t == "Service")
        return "service";
    if (t == "Person" || t == "OrganizationPerson")
        return "person";
    return {};
}

bool all_digits(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

/// AR sometimes drops the leading zero of a municipality number ("301" for Oslo, 0301).
std::string normalise_municipality(std::string m) {
    if (all_digits(m) && m.size() < 4)
        m.insert(0, 4 - m.size(), '0');
    return m;
}

/// An "id" field where AR writes -1 for none.
std::string none_if_minus_one(std::string v) { return v == "-1" ? std::string() : v; }

// ------------------------------------------------------------------------------------------------
// sniff: what is the root element?

class root_sniffer : public detail::sax_handler {
public:
    using sax_handler::sax_handler;
    std::u16string ns, local;
    position pos;
    void startElement(const XMLCh* const uri, const XMLCh* const localname, const XMLCh* const,
                      const xercesc::Attributes&) override {
        ns = uri;
        local = localname;
        pos = element_start();
        throw detail::stop_parse{};
    }
};

// ------------------------------------------------------------------------------------------------
// our own format (validated against registry.xsd, so the structure is known)

class own_handler : public detail::sax_handler {
public:
    using sax_handler::sax_handler;
    std::vector<store::party> parties;

    void startElement(const XMLCh* const, const XMLCh* const localname, const XMLCh* const,
                      const xercesc::Attributes&) override {
        path_.emplace_back(localname);
        text_.clear();
        if (path_.size() == 2 && path_[1] == u"CommunicationParty") {
            cur_ = store::party{};
            parent_org_.clear();
            in_ea_ = {};
            cur_pos_ = element_start();
        }
    }

    void characters(const XMLCh* const chars, const XMLSize_t length) override {
        text_ += detail::utf8(chars, length);
    }

    void endElement(const XMLCh* const, const XMLCh* const, const XMLCh* const) override {
        const std::u16string name = path_.back();
        const std::string v = detail::trim(text_);
        text_.clear();
        const std::size_t depth = path_.size();
        if (depth == 3) {
            if (name == u"HerId") cur_.her_id = v;
            else if (name == u"Name") { if (cur_.name.empty()) cur_.name = v; }
            else if (name == u"DisplayName") { if (!v.empty()) cur_.name = v; }
            else if (name == u"Type") cur_.type = map_type(v);
            else if (name == u"Active") cur_.active = (v == "true" || v == "1");
            else if (name == u"ParentHerId") cur_.parent_her_id = none_if_minus_one(v);
            else if (name == u"OrganizationNumber") cur_.org_number = v;
            else if (name == u"ParentOrganizationNumber") parent_org_ = none_if_minus_one(v);
            else if (name == u"Adapter") cur_.adapter = v;
        } else if (depth == 4 && path_[2] == u"Municipality" && name == u"CodeValue") {
            cur_.municipality = v;
        } else if (depth == 5 && path_[3] == u"ElectronicAddress") {
            if (name == u"Address") in_ea_.address = v;
            else if (name == u"TypeCodeValue") in_ea_.type = v;
        } else if (depth == 4 && name == u"ElectronicAddress") {
            if (in_ea_.type == "E_EDI" && cur_.edi_address.empty())
                cur_.edi_address = in_ea_.address;
            in_ea_ = {};
        } else if (depth == 2 && name == u"CommunicationParty") {
            finish_party();
        }
        path_.pop_back();
    }

private:
    struct ea {
        std::string address, type;
    };

    void finish_party() {
        // DisplayName wins over Name when given (see endElement).
        if (cur_.org_number.empty())
            cur_.org_number = parent_org_;
        if (cur_.parent_her_id == cur_.her_id)
            fail(cur_pos_, "communication party " + cur_.her_id + " names itself as its parent");
        if (auto [it, fresh] = seen_.emplace(cur_.her_id, cur_pos_); !fresh)
            fail(cur_pos_, "duplicate HerId " + cur_.her_id + " (first at line " + std::to_string(it->second.line) +
                               ")");
        parties.push_back(std::move(cur_));
        cur_ = store::party{};
    }

    std::vector<std::u16string> path_;
    std::string text_;
    store::party cur_;
    std::string parent_org_;
    ea in_ea_;
    position cur_pos_;
    std::map<std::string, position> seen_;
};

// ------------------------------------------------------------------------------------------------
// a raw Adresseregister answer (SOAP GetCommunicationPartyDetailsResponse or a bare
// CommunicationParty). Not validated; every element in the CommunicationParty namespace that has
// a HerId child is a party (the result itself and nested Organizations/Services/... entries).

class ar_handler : public detail::sax_handler {
public:
    using sax_handler::sax_handler;

    struct found {
        store::party p;
        position pos;
        int seq = 0;
    };
    std::vector<found> parties;
    bool saw_fault = false;
    position fault_pos;
    std::string fault_code, fault_text;

    void startElement(const XMLCh* const uri, const XMLCh* const localname, const XMLCh* const,
                      const xercesc::Attributes& attrs) override {
        frame f;
        f.kind = classify(uri);
        f.local = localname;
        f.pos = element_start();
        f.seq = seq_++;
        if (const XMLCh* t = attrs.getValue(ns_xsi, u"type"))
            f.xsi_type = detail::utf8(t);
        if ((f.kind == ns_kind::soap) && f.local == u"Fault" && !saw_fault) {
            saw_fault = true;
            fault_pos = f.pos;
        }
        stack_.push_back(std::move(f));
    }

    void characters(const XMLCh* const chars, const XMLSize_t length) override {
        if (!stack_.empty())
            stack_.back().text += detail::utf8(chars, length);
    }

    void endElement(const XMLCh* const, const XMLCh* const, const XMLCh* const) override {
        frame f = std::move(stack_.back());
        stack_.pop_back();
        const std::string v = detail::trim(f.text);
        frame* parent = stack_.empty() ? nullptr : &stack_.back();

        if (f.fields.count("HerId"))
            emit(f);

        if (!parent)
            return;
        if (f.kind == ns_kind::ar && !f.has_children) {
            static const std::set<std::u16string> leafs = {u"HerId",      u"Name",
                                                           u"DisplayName", u"Type",
                                                           u"Active",      u"ParentHerId",
                                                           u"ParentName",  u"OrganizationNumber",
                                                           u"ParentOrganizationNumber"};
            if (leafs.count(f.local))
                parent->fields[detail::utf8(f.local.c_str())] = v;
        }
        if (f.local == u"CodeValue" && !f.has_children)
            parent->code_value = v;
        if (f.kind == ns_kind::ar && f.local == u"Municipality")
            parent->fields["Municipality"] = f.code_value;
        if (f.kind == ns_kind::common && (f.local == u"Address" || f.local == u"TypeCodeValue"))
            parent->fields[detail::utf8(f.local.c_str())] = v;
        if (f.kind == ns_kind::common && f.local == u"Type" && !parent->fields.count("TypeCodeValue"))
            parent->fields["TypeCodeValue"] = f.code_value;  // fallback when TypeCodeValue is absent
        if (f.kind == ns_kind::common && f.local == u"ElectronicAddress") {
            if (f.fields["TypeCodeValue"] == "E_EDI" && !parent->fields.count("edi"))
                parent->fields["edi"] = f.fields["Address"];
        }
        if (f.kind == ns_kind::ar && f.local == u"ElectronicAddresses" && f.fields.count("edi"))
            parent->fields["EdiAddress"] = f.fields["edi"];
        // SOAP fault details
        if (saw_fault) {
            if ((f.local == u"Text" && f.kind == ns_kind::soap) || f.local == u"faultstring")
                fault_text = v;
            if (f.local == u"ErrorCode" && f.kind == ns_kind::common)
                fault_code = v;
        }
        parent->has_children = true;
    }

private:
    enum class ns_kind { other, ar, common, soap };
    struct frame {
        ns_kind kind = ns_kind::other;
        std::u16string local;
        std::string text;
        std::string xsi_type;
        std::string code_value;
        std::map<std::string, std::string> fields;
        bool has_children = false;
        position pos;
        int seq = 0;
    };

    static ns_kind classify(const XMLCh* uri) {
        if (eq(uri, ns_ar))
            return ns_kind::ar;
        if (eq(uri, ns_ar_common))
            return ns_kind::common;
        if (eq(uri, ns_soap12) || eq(uri, ns_soap11))
            return ns_kind::soap;
        return ns_kind::other;
    }

    void emit(frame& f) {
        auto get = [&](const char* k) {
            auto it = f.fields.find(k);
            return it == f.fields.end() ? std::string() : it->second;
        };
        store::party p;
        p.her_id = get("HerId");
        if (!all_digits(p.her_id))
            fail(f.pos, "invalid HerId '" + p.her_id + "'");
        const std::string type_text = f.fields.count("Type") ? get("Type") : f.xsi_type;
        p.type = map_type(type_text);
        if (p.type.empty())
            fail(f.pos, type_text.empty() ? "communication party " + p.her_id + " has no Type"
                                          : "communication party " + p.her_id + " has unknown type '" +
                                                type_text + "'");
        p.name = get("DisplayName").empty() ? get("Name") : get("DisplayName");
        p.parent_her_id = none_if_minus_one(get("ParentHerId"));
        if (!p.parent_her_id.empty() && !all_digits(p.parent_her_id))
            fail(f.pos, "communication party " + p.her_id + " has an invalid ParentHerId");
        p.org_number = none_if_minus_one(get("OrganizationNumber"));
        if (p.org_number.empty())
            p.org_number = none_if_minus_one(get("ParentOrganizationNumber"));
        p.municipality = normalise_municipality(get("Municipality"));
        p.edi_address = get("EdiAddress");
        const std::string active = get("Active");
        p.active = active.empty() || active == "true" || active == "1";
        parties.push_back({std::move(p), f.pos, f.seq});
    }

    std::vector<frame> stack_;
    int seq_ = 0;
};

} // namespace

// ------------------------------------------------------------------------------------------------

result<std::vector<store::party>> parse_registry(std::string_view xml, const std::string& name) {
    root_sniffer sniff(xml, name, code_invalid);
    if (auto r = detail::run_sax(xml, sniff, {}); !r)
        return r.error();
    if (sniff.local.empty())
        return broker::error{code_invalid, "no root element", name, 1, 1};

    if (sniff.ns == ns_registry) {
        own_handler h(xml, name, code_invalid);
        if (auto r = detail::run_sax(xml, h, "registry.xsd"); !r)
            return r.error();
        return std::move(h.parties);
    }

    const bool soap = (sniff.ns == ns_soap12 || sniff.ns == ns_soap11) && sniff.local == u"Envelope";
    const bool bare = sniff.ns == ns_ar && sniff.local == u"CommunicationParty";
    if (!soap && !bare)
        return broker::error{code_invalid,
                             "unknown registry format: root element '" + detail::utf8(sniff.local.c_str()) +
                                 "' in namespace '" + detail::utf8(sniff.ns.c_str()) +
                                 "'; expected <Registry xmlns=\"urn:edibroker:registry:1\"> or an address "
                                 "registry GetCommunicationPartyDetailsResponse",
                             name, sniff.pos.line, sniff.pos.column};

    ar_handler h(xml, name, code_invalid);
    if (auto r = detail::run_sax(xml, h, {}); !r)
        return r.error();
    if (h.saw_fault) {
        std::string why = h.fault_code.empty() ? std::string() : h.fault_code;
        if (!h.fault_text.empty())
            why += (why.empty() ? "" : ": ") + h.fault_text;
        return broker::error{code_invalid,
                             "the address registry answered with a soap fault" + (why.empty() ? "" : " (" + why + ")"),
                             name, h.fault_pos.line, h.fault_pos.column};
    }
    if (h.parties.empty())
        return broker::error{code_invalid, "no communication party (no element with a HerId) in the address "
                                           "registry response",
                             name, sniff.pos.line, sniff.pos.column};
    // Outer party first, nested ones (its organisation, services, ...) in document order; a HER-id
    // that occurs twice keeps its first (outermost) entry.
    std::stable_sort(h.parties.begin(), h.parties.end(), [](auto& a, auto& b) { return a.seq < b.seq; });
    std::vector<store::party> out;
    std::unordered_set<std::string> seen;
    for (auto& f : h.parties)
        if (seen.insert(f.p.her_id).second)
            out.push_back(std::move(f.p));
    return out;
}

result<std::vector<store::party>> parse_registry_file(const std::string& path) {
    auto text = detail::read_whole_file(path, "registry.unreadable", "registry file");
    if (!text)
        return text.error();
    return parse_registry(*text, path);
}

// ------------------------------------------------------------------------------------------------

address_registry::address_registry(std::vector<store::party> parties) {
    for (auto& p : parties) {
        std::string key = p.her_id;
        parties_.emplace(std::move(key), std::move(p));  // first entry for a HER-id wins
    }
}

const store::party* address_registry::find(std::string_view her_id) const {
    auto it = parties_.find(her_id);
    return it == parties_.end() ? nullptr : &it->second;
}

std::vector<const store::party*> address_registry::receivers_with_orgnr(std::string_view orgnr) const {
    std::vector<const store::party*> out;
    if (orgnr.empty())
        return out;
    for (const auto& [her, p] : parties_)
        if (p.org_number == orgnr && p.can_receive())
            out.push_back(&p);
    return out;
}

std::vector<const store::party*> address_registry::lineage(std::string_view her_id) const {
    std::vector<const store::party*> out;
    std::set<std::string_view> seen;
    const store::party* p = find(her_id);
    while (p && seen.insert(p->her_id).second) {
        out.push_back(p);
        if (p->parent_her_id.empty())
            break;
        p = find(p->parent_her_id);
    }
    return out;
}

} // namespace broker::routing
