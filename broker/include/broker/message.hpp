// The facts edibroker extracts from a message: enough to route, de-duplicate, correlate AppRecs and
// answer status queries, without keeping a parsed tree around.
#pragma once

#include <string>
#include <vector>

namespace broker {

/// Namespaces of the formats edibroker understands (standards.md §1).
namespace ns {
inline constexpr const char* msghead = "http://www.kith.no/xmlstds/msghead/2006-05-24";
inline constexpr const char* dialog_1_0 = "http://www.kith.no/xmlstds/dialog/2006-10-11";
inline constexpr const char* dialog_1_1 = "http://www.kith.no/xmlstds/dialog/2013-01-23";
inline constexpr const char* apprec_1_0 = "http://www.kith.no/xmlstds/apprec/2004-11-21";
inline constexpr const char* apprec_1_1 = "http://www.kith.no/xmlstds/apprec/2012-02-15";
inline constexpr const char* base64container = "http://www.kith.no/xmlstds/base64container";
inline constexpr const char* fellesformat = "http://www.nav.no/xml/eiff/2/";
} // namespace ns

/// OIDs of the code systems the broker writes.
namespace oid {
inline constexpr const char* apprec_status = "2.16.578.1.12.4.1.1.8258";
inline constexpr const char* apprec_error = "2.16.578.1.12.4.1.1.8221";
inline constexpr const char* org_id_type = "2.16.578.1.12.4.1.1.9051";
inline constexpr const char* person_id_type = "2.16.578.1.12.4.1.1.8116";
} // namespace oid

enum class doc_kind { msghead, apprec };

/// A party at up to two levels (standards.md §1.1: level 1 = organisation, level 2 = department,
/// service or person). Empty strings where absent.
struct party_ref {
    std::string lvl1_her;   ///< HER-id of the organisation (Ident with TypeId V="HER")
    std::string lvl1_name;  ///< OrganisationName / Inst/Name
    std::string lvl1_orgnr; ///< ENH organisation number, if given
    std::string lvl2_her;   ///< HER-id of the service/department/person, if given
    std::string lvl2_name;
    bool lvl2_is_person = false; ///< level 2 is a HealthcareProfessional / HCPerson

    /// The HER-id to route on: level 2 when present, else level 1.
    const std::string& lowest_her() const { return lvl2_her.empty() ? lvl1_her : lvl2_her; }
};

struct apprec_error_entry {
    std::string code;         ///< Error/@V, e.g. "E21"
    std::string description;  ///< Error/@DN
    std::string code_system;  ///< Error/@S
    std::string origin;       ///< Error/@OT (sub-message id), may be empty
};

/// What the SAX pass extracts. Strings are empty where the element was absent.
struct message_facts {
    doc_kind kind = doc_kind::msghead;
    std::string root_ns;       ///< namespace of the root element (msghead or an apprec ns)
    std::string content_ns;    ///< MsgHead: namespace of the first Document's RefDoc/Content child
    std::string msg_id;        ///< MsgHead: MsgInfo/MsgId; AppRec: Id
    std::string msg_type;      ///< MsgHead: MsgInfo/Type/@V (kodeverk 8279); AppRec: "APPREC"
    std::string msg_type_dn;   ///< MsgInfo/Type/@DN
    std::string mig_version;
    std::string gen_date;      ///< as written
    bool ack_requested = false;   ///< MsgInfo/Ack/@V == "J"
    party_ref sender;
    party_ref receiver;
    std::string patient_id;       ///< Patient/Ident/Id (first)
    std::string patient_id_type;  ///< its TypeId/@V (FNR, DNR, ...)
    std::string ref_to_parent;        ///< ConversationRef/RefToParent
    std::string ref_to_conversation;  ///< ConversationRef/RefToConversation
    int document_count = 0;           ///< number of Document elements
    bool from_fellesformat = false;   ///< the message came wrapped in NAV's EI_fellesformat

    // AppRec only
    std::string apprec_status;            ///< Status/@V: "1" OK, "2" Avvist, "3" OK feil i delmelding
    std::vector<apprec_error_entry> apprec_errors;
    std::string original_msg_id;          ///< OriginalMsgId/Id
    std::string original_msg_type;        ///< OriginalMsgId/MsgType/@V
    std::string original_issue_date;      ///< OriginalMsgId/IssueDate

    bool is_apprec() const { return kind == doc_kind::apprec; }
    /// "1.0" / "1.1" for AppRec and Dialogmelding content, "" otherwise.
    std::string apprec_version() const;
    std::string dialog_version() const;
};

} // namespace broker
