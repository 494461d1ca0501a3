#include "xml/facts_handler.hpp"

#include <xercesc/sax2/Attributes.hpp>

#include <algorithm>
#include <cstddef>
#include <string_view>
#include <utility>

namespace broker::xml::detail {

namespace xc = XERCES_CPP_NAMESPACE;

namespace {

constexpr std::u16string_view u_msghead = u"http://www.kith.no/xmlstds/msghead/2006-05-24";
constexpr std::u16string_view u_apprec10 = u"http://www.kith.no/xmlstds/apprec/2004-11-21";
constexpr std::u16string_view u_apprec11 = u"http://www.kith.no/xmlstds/apprec/2012-02-15";

struct name_entry {
    std::u16string_view name;
    tag t;
};

// Only names whose position the fact extraction looks at.
constexpr name_entry msghead_names[] = {
    {u"MsgHead", tag::MsgHead},
    {u"MsgInfo", tag::MsgInfo},
    {u"Type", tag::Type},
    {u"MIGversion", tag::MIGversion},
    {u"GenDate", tag::GenDate},
    {u"MsgId", tag::MsgId},
    {u"Ack", tag::Ack},
    {u"ConversationRef", tag::ConversationRef},
    {u"RefToParent", tag::RefToParent},
    {u"RefToConversation", tag::RefToConversation},
    {u"Sender", tag::Sender},
    {u"Receiver", tag::Receiver},
    {u"Patient", tag::Patient},
    {u"Organisation", tag::Organisation},
    {u"OrganisationName", tag::OrganisationName},
    {u"Ident", tag::Ident},
    {u"Id", tag::Id},
    {u"TypeId", tag::TypeId},
    {u"HealthcareProfessional", tag::HealthcareProfessional},
    {u"GivenName", tag::GivenName},
    {u"MiddleName", tag::MiddleName},
    {u"FamilyName", tag::FamilyName},
    {u"Document", tag::Document},
    {u"PatientReport", tag::PatientReport},
    {u"RefDoc", tag::RefDoc},
    {u"Content", tag::Content},
};

constexpr name_entry apprec_names[] = {
    {u"AppRec", tag::AppRec},
    {u"MsgType", tag::MsgType},
    {u"MIGversion", tag::MIGversion},
    {u"GenDate", tag::GenDate},
    {u"Id", tag::Id},
    {u"Sender", tag::Sender},
    {u"Receiver", tag::Receiver},
    {u"Status", tag::Status},
    {u"Error", tag::Error},
    {u"OriginalMsgId", tag::OriginalMsgId},
    {u"IssueDate", tag::IssueDate},
    {u"HCP", tag::HCP},
    {u"Inst", tag::Inst},
    {u"HCProf", tag::HCProf},
    {u"Dept", tag::Dept},
    {u"HCPerson", tag::HCPerson},
    {u"AdditionalId", tag::AdditionalId},
    {u"Name", tag::Name},
    {u"TypeId", tag::TypeId},
    {u"Type", tag::Type},
};

template <std::size_t N>
tag lookup(const name_entry (&table)[N], const XMLCh* local) {
    for (const auto& e : table)
        if (e.name[0] == local[0] && eq(local, e.name))
            return e.t;
    return tag::other;
}

const XMLCh* attr(const xc::Attributes& a, const XMLCh* name) { return a.getValue(name); }

std::string attr_utf8(const xc::Attributes& a, const XMLCh* name) { return to_utf8(a.getValue(name)); }

bool is_party(tag t) { return t == tag::Sender || t == tag::Receiver; }

void join_name(std::string& out, const std::string& part) {
    if (part.empty())
        return;
    if (!out.empty())
        out.push_back(' ');
    out.append(part);
}

} // namespace

void facts_handler::begin(validation_result* r) {
    r_ = r;
    stack_.clear();
    fam_ = family::none;
    root_seen_ = false;
    root_uri_.clear();
    last_root_uri_ptr_ = nullptr;
    text_.clear();
    capture_ = nullptr;
    capture_depth_ = 0;
    party_ = nullptr;
    lvl1_.active = false;
    lvl2_.active = false;
    ident_owner_ = nullptr;
    patient_ident_done_ = false;
    in_patient_ident_ = false;
    first_doc_content_ = false;
    base64_depth_ = 0;
    base64_summary_ = false;
    priority_count_ = 0;
    fatal_ = false;
    errors_ = 0;
    bad_root_ns_ = false;
    bad_root_name_ = false;
    bad_content_ns_ = false;
    locator_ = nullptr;
}

void facts_handler::finish() {
    if (capture_ && capture_depth_ > 0) {
        // The parse stopped inside a captured element: keep what was read.
        assign_utf8_trimmed(*capture_, text_.data(), text_.size());
        capture_ = nullptr;
    }
    if (!party_)
        return;
    if (lvl2_.active) {
        lvl2_.take_ident();
        commit_lvl2();
    }
    if (lvl1_.active) {
        lvl1_.take_ident();
        commit_lvl1();
    }
}

int facts_handler::line() const { return locator_ ? static_cast<int>(locator_->getLineNumber()) : 0; }
int facts_handler::column() const { return locator_ ? static_cast<int>(locator_->getColumnNumber()) : 0; }

void facts_handler::add_diagnostic(int line, int column, std::string message) {
    if (r_ && r_->diagnostics.size() < max_diagnostics)
        r_->diagnostics.push_back({line, column, std::move(message)});
}

void facts_handler::add_priority_diagnostic(int line, int column, std::string message) {
    if (!r_ || priority_count_ >= max_diagnostics)
        return;
    auto& d = r_->diagnostics;
    d.insert(d.begin() + static_cast<std::ptrdiff_t>(std::min(priority_count_, d.size())),
             diagnostic{line, column, std::move(message)});
    ++priority_count_;
    if (d.size() > max_diagnostics)
        d.pop_back();
}

void facts_handler::add_fatal(int line, int column, std::string message) {
    // The reason for a T01 goes first: it is the one that matters.
    if (!fatal_ && r_) {
        auto& d = r_->diagnostics;
        d.insert(d.begin(), diagnostic{line, column, std::move(message)});
        ++priority_count_;
        if (d.size() > max_diagnostics)
            d.pop_back();
    }
    fatal_ = true;
}

void facts_handler::diag(const xc::SAXParseException& e) {
    if (r_ && r_->diagnostics.size() < max_diagnostics)
        r_->diagnostics.push_back({static_cast<int>(e.getLineNumber()), static_cast<int>(e.getColumnNumber()),
                                   sanitize_message(e.getMessage())});
}

void facts_handler::error(const xc::SAXParseException& e) {
    ++errors_;
    diag(e);
}

void facts_handler::fatalError(const xc::SAXParseException& e) {
    add_fatal(static_cast<int>(e.getLineNumber()), static_cast<int>(e.getColumnNumber()),
              sanitize_message(e.getMessage()));
}

void facts_handler::startDTD(const XMLCh*, const XMLCh*, const XMLCh*) {
    add_fatal(line(), column(), "a DOCTYPE is not allowed (DTDs and entity declarations are refused)");
    throw stop_parse{};
}

facts_handler::id_kind facts_handler::kind_of(const XMLCh* v) {
    if (!v)
        return id_kind::none;
    if (eq(v, u"HER"))
        return id_kind::her;
    if (eq(v, u"ENH"))
        return id_kind::enh;
    return id_kind::other;
}

tag facts_handler::classify(const XMLCh* local) const {
    switch (fam_) {
    case family::msghead:
        return lookup(msghead_names, local);
    case family::apprec:
        return lookup(apprec_names, local);
    case family::none:
        break;
    }
    return tag::other;
}

bool facts_handler::in_root_ns(const XMLCh* uri) {
    if (uri == last_root_uri_ptr_)
        return true;
    if (!eq(uri, root_uri_))
        return false;
    last_root_uri_ptr_ = uri;
    return true;
}

void facts_handler::commit_lvl1() {
    if (!party_)
        return;
    if (party_->lvl1_name.empty() && !lvl1_.name.empty())
        party_->lvl1_name = lvl1_.name;
    if (party_->lvl1_her.empty() && !lvl1_.her.empty())
        party_->lvl1_her = lvl1_.her;
    if (party_->lvl1_orgnr.empty() && !lvl1_.enh.empty())
        party_->lvl1_orgnr = lvl1_.enh;
}

void facts_handler::commit_lvl2() {
    if (!party_ || !party_->lvl2_her.empty())
        return;  // the first level-2 unit with a HER-id wins
    std::string name = lvl2_.name;
    if (name.empty()) {
        join_name(name, lvl2_.given);
        join_name(name, lvl2_.middle);
        join_name(name, lvl2_.family);
    }
    if (!lvl2_.her.empty()) {
        party_->lvl2_her = lvl2_.her;
        party_->lvl2_name = std::move(name);
        party_->lvl2_is_person = lvl2_.person;
    } else if (party_->lvl2_name.empty() && !name.empty()) {
        party_->lvl2_name = std::move(name);
        party_->lvl2_is_person = lvl2_.person;
    }
}

void facts_handler::startElement(const XMLCh* uri, const XMLCh* localname, const XMLCh* qname,
                                 const xc::Attributes& attrs) {
    if (!root_seen_) {
        root_seen_ = true;
        message_facts& f = r_->facts;
        f.root_ns = to_utf8(uri);
        root_uri_ = uri ? uri : u"";
        bool msghead_ns = eq(uri, u_msghead);
        bool apprec_ns = eq(uri, u_apprec10) || eq(uri, u_apprec11);
        if (msghead_ns && eq(localname, u"MsgHead")) {
            fam_ = family::msghead;
            f.kind = doc_kind::msghead;
        } else if (apprec_ns && eq(localname, u"AppRec")) {
            fam_ = family::apprec;
            f.kind = doc_kind::apprec;
        } else if (msghead_ns || apprec_ns) {
            bad_root_name_ = true;
            add_priority_diagnostic(line(), column(),
                           "root element '" + to_utf8(localname) + "' is not a message root (MsgHead or AppRec)");
        } else {
            bad_root_ns_ = true;
            add_priority_diagnostic(line(), column(),
                           "root element '" + to_utf8(localname) + "' in namespace '" + f.root_ns +
                               "' is not a supported message (MsgHead v1.2, AppRec 1.0 or 1.1)");
        }
    }

    // Children of RefDoc/Content must be in a namespace the broker has a schema for.
    if (!stack_.empty() && stack_.back() == tag::Content) {
        bool known = false;
        if (content_ns_)
            for (const auto& n : *content_ns_)
                known = known || eq(uri, n);
        if (stack_.size() == 4 && first_doc_content_ && r_->facts.content_ns.empty())
            r_->facts.content_ns = to_utf8(uri);
        if (!known) {
            bad_content_ns_ = true;
            add_priority_diagnostic(line(), column(),
                           "RefDoc/Content holds element '" + to_utf8(localname) + "' in namespace '" +
                               to_utf8(uri) + "', which edibroker does not support");
        }
    }

    tag t = (fam_ != family::none && in_root_ns(uri)) ? classify(localname) : tag::other;
    stack_.push_back(t);
    if (check_base64_ && base64_depth_ == 0 && eq(localname, u"Base64Container") && eq(uri, base64container_ns)) {
        base64_depth_ = stack_.size();
        base64_.reset();
    }
    if (fam_ == family::msghead)
        start_msghead(attrs, t);
    else if (fam_ == family::apprec)
        start_apprec(attrs, t);
    if (observer_)
        observer_->startElement(uri, localname, qname, attrs);
    if (base64_depth_ == stack_.size())
        base64_summary_ = attachments_ && attachments_->take_base64_summary();
}

void facts_handler::endElement(const XMLCh* uri, const XMLCh* localname, const XMLCh* qname) {
    if (base64_depth_ != 0 && base64_depth_ == stack_.size()) {
        base64_depth_ = 0;
        // Where Xerces reports a datatype error: at the end tag.
        std::string why;
        const bool valid = base64_.valid(why);
        if (!valid) {
            ++errors_;
            add_diagnostic(line(), column(), "the content of element 'Base64Container' is not valid base64Binary: " + why);
        }
        if (base64_summary_)
            attachments_->base64_text(base64_.digits(), base64_.head(), valid);
        base64_summary_ = false;
    }
    if (observer_)
        observer_->endElement(uri, localname, qname);
    if (capture_ && capture_depth_ == stack_.size()) {
        assign_utf8_trimmed(*capture_, text_.data(), text_.size());
        capture_ = nullptr;
    }
    if (stack_.empty())
        return;
    tag t = stack_.back();
    if (t != tag::other) {
        if (fam_ == family::msghead)
            end_msghead(t);
        else if (fam_ == family::apprec)
            end_apprec(t);
    }
    stack_.pop_back();
}

void facts_handler::characters(const XMLCh* chars, const XMLSize_t length) {
    if (capture_)
        text_.append(chars, length);
    if (base64_depth_ == stack_.size() && base64_depth_ != 0) {
        base64_.feed(chars, length);
        if (base64_summary_)
            return;  // the observer gets the summary at the end
    }
    if (observer_)
        observer_->characters(chars, length);
}

// ---- MsgHead ---------------------------------------------------------------------------------
//
// Depth d of the new element (root = 0):
//   1 MsgInfo | Document | PatientReport
//   2 MsgInfo/{Type,MIGversion,GenDate,MsgId,Ack,ConversationRef,Sender,Receiver,Patient}
//   3 ConversationRef/RefTo*, {Sender,Receiver}/Organisation (level 1), Patient/Ident
//   4 Organisation/{OrganisationName,Ident,Organisation (level 2),HealthcareProfessional (level 2)}
//   5 level-1 Ident/{Id,TypeId}, level-2 {OrganisationName,GivenName,...,Ident}
//   6 level-2 Ident/{Id,TypeId}

void facts_handler::start_msghead(const xc::Attributes& attrs, tag t) {
    if (t == tag::other)
        return;
    const std::size_t d = stack_.size() - 1;
    message_facts& f = r_->facts;
    if (at(0) != tag::MsgHead)
        return;
    if (d == 1) {
        if (t == tag::Document) {
            ++f.document_count;
            first_doc_content_ = f.document_count == 1;
        }
        return;
    }
    if (at(1) == tag::PatientReport) {
        if (d == 2 && t == tag::Document)
            ++f.document_count;
        return;
    }
    if (at(1) != tag::MsgInfo)
        return;
    if (d == 2) {
        switch (t) {
        case tag::Type:
            f.msg_type = attr_utf8(attrs, u"V");
            f.msg_type_dn = attr_utf8(attrs, u"DN");
            break;
        case tag::MIGversion:
            capture(&f.mig_version);
            break;
        case tag::GenDate:
            capture(&f.gen_date);
            break;
        case tag::MsgId:
            capture(&f.msg_id);
            break;
        case tag::Ack:
            f.ack_requested = eq(attr(attrs, u"V"), u"J");
            break;
        case tag::Sender:
            party_ = &f.sender;
            break;
        case tag::Receiver:
            party_ = &f.receiver;
            break;
        default:
            break;
        }
        return;
    }
    const tag p2 = at(2);
    if (p2 == tag::ConversationRef) {
        if (d == 3 && t == tag::RefToParent)
            capture(&f.ref_to_parent);
        else if (d == 3 && t == tag::RefToConversation)
            capture(&f.ref_to_conversation);
        return;
    }
    if (p2 == tag::Patient) {
        if (d == 3 && t == tag::Ident && !patient_ident_done_)
            in_patient_ident_ = true;
        else if (d == 4 && in_patient_ident_ && t == tag::Id)
            capture(&f.patient_id);
        else if (d == 4 && in_patient_ident_ && t == tag::TypeId)
            f.patient_id_type = attr_utf8(attrs, u"V");
        return;
    }
    if (!is_party(p2) || !party_ || at(3) != tag::Organisation)
        return;
    if (d == 3) {
        lvl1_.reset(false);
        return;
    }
    const tag p4 = at(4);
    if (d == 4) {
        switch (t) {
        case tag::OrganisationName:
            capture(&lvl1_.name);
            break;
        case tag::Ident:
            ident_owner_ = &lvl1_;
            lvl1_.id.clear();
            lvl1_.kind = id_kind::none;
            break;
        case tag::Organisation:
            lvl2_.reset(false);
            break;
        case tag::HealthcareProfessional:
            lvl2_.reset(true);
            break;
        default:
            break;
        }
        return;
    }
    if (d == 5 && p4 == tag::Ident && ident_owner_ == &lvl1_) {
        if (t == tag::Id)
            capture(&lvl1_.id);
        else if (t == tag::TypeId)
            lvl1_.kind = kind_of(attr(attrs, u"V"));
        return;
    }
    const bool lvl2_unit = (p4 == tag::Organisation || p4 == tag::HealthcareProfessional) && lvl2_.active;
    if (!lvl2_unit)
        return;
    if (d == 5) {
        switch (t) {
        case tag::OrganisationName:
            if (p4 == tag::Organisation)
                capture(&lvl2_.name);
            break;
        case tag::GivenName:
            capture(&lvl2_.given);
            break;
        case tag::MiddleName:
            capture(&lvl2_.middle);
            break;
        case tag::FamilyName:
            capture(&lvl2_.family);
            break;
        case tag::Ident:
            ident_owner_ = &lvl2_;
            lvl2_.id.clear();
            lvl2_.kind = id_kind::none;
            break;
        default:
            break;
        }
        return;
    }
    if (d == 6 && at(5) == tag::Ident && ident_owner_ == &lvl2_) {
        if (t == tag::Id)
            capture(&lvl2_.id);
        else if (t == tag::TypeId)
            lvl2_.kind = kind_of(attr(attrs, u"V"));
    }
}

void facts_handler::end_msghead(tag t) {
    const std::size_t d = stack_.size() - 1;
    if (at(0) != tag::MsgHead || at(1) != tag::MsgInfo)
        return;
    const tag p2 = at(2);
    if (d == 2 && is_party(t)) {
        party_ = nullptr;
        return;
    }
    if (p2 == tag::Patient) {
        if (d == 3 && t == tag::Ident && in_patient_ident_) {
            in_patient_ident_ = false;
            patient_ident_done_ = true;
        }
        return;
    }
    if (!is_party(p2) || at(3) != tag::Organisation || !party_)
        return;
    if (d == 3) {  // end of level 1
        lvl1_.take_ident();
        commit_lvl1();
        lvl1_.active = false;
        return;
    }
    if (d == 4 && t == tag::Ident && ident_owner_ == &lvl1_) {
        lvl1_.take_ident();
        commit_lvl1();
        ident_owner_ = nullptr;
    } else if (d == 4 && t == tag::OrganisationName) {
        commit_lvl1();
    } else if (d == 4 && (t == tag::Organisation || t == tag::HealthcareProfessional) && lvl2_.active) {
        lvl2_.take_ident();
        commit_lvl2();
        lvl2_.active = false;
    } else if (d == 5 && t == tag::Ident && ident_owner_ == &lvl2_) {
        lvl2_.take_ident();
        commit_lvl2();
        ident_owner_ = nullptr;
    }
}

// ---- AppRec ----------------------------------------------------------------------------------
//
//   1 AppRec/{MsgType,MIGversion,GenDate,Id,Sender,Receiver,Status,Error,OriginalMsgId}
//   2 {Sender,Receiver}/HCP, OriginalMsgId/{MsgType,IssueDate,Id}
//   3 HCP/{Inst,HCProf}                                   (level 1)
//   4 Inst|HCProf/{Name,Id,TypeId,AdditionalId}, Inst/{Dept,HCPerson} (level 2)
//   5 level-1 AdditionalId/{Id,Type}, Dept|HCPerson/{Name,Id,TypeId,AdditionalId}
//   6 level-2 AdditionalId/{Id,Type}

void facts_handler::start_apprec(const xc::Attributes& attrs, tag t) {
    if (t == tag::other || at(0) != tag::AppRec)
        return;
    const std::size_t d = stack_.size() - 1;
    message_facts& f = r_->facts;
    if (d == 1) {
        switch (t) {
        case tag::MsgType:
            f.msg_type = attr_utf8(attrs, u"V");
            f.msg_type_dn = attr_utf8(attrs, u"DN");
            break;
        case tag::MIGversion:
            capture(&f.mig_version);
            break;
        case tag::GenDate:
            capture(&f.gen_date);
            break;
        case tag::Id:
            capture(&f.msg_id);
            break;
        case tag::Sender:
            party_ = &f.sender;
            break;
        case tag::Receiver:
            party_ = &f.receiver;
            break;
        case tag::Status:
            f.apprec_status = attr_utf8(attrs, u"V");
            break;
        case tag::Error:
            f.apprec_errors.push_back({attr_utf8(attrs, u"V"), attr_utf8(attrs, u"DN"), attr_utf8(attrs, u"S"),
                                       attr_utf8(attrs, u"OT")});
            break;
        default:
            break;
        }
        return;
    }
    if (at(1) == tag::OriginalMsgId) {
        if (d != 2)
            return;
        if (t == tag::MsgType)
            f.original_msg_type = attr_utf8(attrs, u"V");
        else if (t == tag::IssueDate)
            capture(&f.original_issue_date);
        else if (t == tag::Id)
            capture(&f.original_msg_id);
        return;
    }
    if (!is_party(at(1)) || !party_ || at(2) != tag::HCP)
        return;
    if (d == 3) {
        if (t == tag::Inst || t == tag::HCProf)
            lvl1_.reset(t == tag::HCProf);
        return;
    }
    const tag p3 = at(3);
    if (p3 != tag::Inst && p3 != tag::HCProf)
        return;
    if (d == 4) {
        switch (t) {
        case tag::Name:
            capture(&lvl1_.name);
            break;
        case tag::Id:
            capture(&lvl1_.id);
            break;
        case tag::TypeId:
            lvl1_.kind = kind_of(attr(attrs, u"V"));
            break;
        case tag::AdditionalId:
            ident_owner_ = &lvl1_;
            lvl1_.take_ident();  // an Inst/Id without TypeId stays unusable
            break;
        case tag::Dept:
        case tag::HCPerson:
            if (p3 == tag::Inst)
                lvl2_.reset(t == tag::HCPerson);
            break;
        default:
            break;
        }
        return;
    }
    const tag p4 = at(4);
    if (d == 5 && p4 == tag::AdditionalId && ident_owner_ == &lvl1_) {
        if (t == tag::Id)
            capture(&lvl1_.id);
        else if (t == tag::Type)
            lvl1_.kind = kind_of(attr(attrs, u"V"));
        return;
    }
    if ((p4 != tag::Dept && p4 != tag::HCPerson) || !lvl2_.active)
        return;
    if (d == 5) {
        switch (t) {
        case tag::Name:
            capture(&lvl2_.name);
            break;
        case tag::Id:
            capture(&lvl2_.id);
            break;
        case tag::TypeId:
            lvl2_.kind = kind_of(attr(attrs, u"V"));
            break;
        case tag::AdditionalId:
            ident_owner_ = &lvl2_;
            lvl2_.take_ident();
            break;
        default:
            break;
        }
        return;
    }
    if (d == 6 && at(5) == tag::AdditionalId && ident_owner_ == &lvl2_) {
        if (t == tag::Id)
            capture(&lvl2_.id);
        else if (t == tag::Type)
            lvl2_.kind = kind_of(attr(attrs, u"V"));
    }
}

void facts_handler::end_apprec(tag t) {
    const std::size_t d = stack_.size() - 1;
    if (at(0) != tag::AppRec)
        return;
    if (d == 1 && is_party(t)) {
        party_ = nullptr;
        return;
    }
    if (!is_party(at(1)) || !party_ || at(2) != tag::HCP || d < 3)
        return;
    const tag p3 = at(3);
    if (d == 3 && (t == tag::Inst || t == tag::HCProf)) {
        lvl1_.take_ident();
        commit_lvl1();
        lvl1_.active = false;
    } else if (d == 4 && (t == tag::TypeId || t == tag::Name) && (p3 == tag::Inst || p3 == tag::HCProf)) {
        if (t == tag::TypeId)
            lvl1_.take_ident();
        commit_lvl1();
    } else if (d == 4 && t == tag::AdditionalId && ident_owner_ == &lvl1_) {
        lvl1_.take_ident();
        commit_lvl1();
        ident_owner_ = nullptr;
    } else if (d == 4 && (t == tag::Dept || t == tag::HCPerson) && lvl2_.active) {
        lvl2_.take_ident();
        commit_lvl2();
        lvl2_.active = false;
    } else if (d == 5 && t == tag::TypeId && lvl2_.active) {
        lvl2_.take_ident();
        commit_lvl2();
    } else if (d == 5 && t == tag::AdditionalId && ident_owner_ == &lvl2_) {
        lvl2_.take_ident();
        commit_lvl2();
        ident_owner_ = nullptr;
    }
}

} // namespace broker::xml::detail
