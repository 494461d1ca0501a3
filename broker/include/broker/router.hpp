// Address registry (HER-id → party) and routing rules (routing-rules/*.xml).
#pragma once

#include "broker/error.hpp"
#include "broker/message.hpp"
#include "broker/store.hpp"

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace broker::routing {

// ---------------------------------------------------------------- address registry

/// Parse a registry file. The format mirrors the Adresseregister's CommunicationPartyDetails: a
/// root <Registry> (or <CommunicationParties>) holding CommunicationParty elements, each with
/// HerId, Name, Type (Organization|Department|Service|Person), ParentHerId, ParentName,
/// OrganizationNumber / ParentOrganizationNumber, Municipality, Active, ElectronicAddresses, plus
/// an edibroker element <Adapter> naming the adapter instance that serves the party. A bare AR
/// SOAP GetCommunicationPartyDetailsResponse (samples in shared/interop) is accepted too.
/// Errors carry file:line:col.
result<std::vector<store::party>> parse_registry_file(const std::string& path);
result<std::vector<store::party>> parse_registry(std::string_view xml, const std::string& name);

/// In-memory view of the registry, rebuilt on import. Thread-safe for concurrent readers once
/// built (immutable; swap the whole object to reload).
class address_registry {
public:
    explicit address_registry(std::vector<store::party> parties);
    const store::party* find(std::string_view her_id) const;
    /// Parties that can receive and carry this organisation number (ENH), for messages that name
    /// their receiver by organisation number only (no HER-id at any level).
    std::vector<const store::party*> receivers_with_orgnr(std::string_view orgnr) const;
    /// The party and its ancestors, nearest first (stops at a cycle or a missing parent).
    std::vector<const store::party*> lineage(std::string_view her_id) const;
    std::size_t size() const { return parties_.size(); }
    const std::map<std::string, store::party, std::less<>>& all() const { return parties_; }

private:
    std::map<std::string, store::party, std::less<>> parties_;
};

// ---------------------------------------------------------------- routing rules

/// An adapter instance as declared in the rules files:
///   <adapter name="visma-oslo" type="http-push"><option name="url" value="..."/></adapter>
struct adapter_instance {
    std::string name;
    std::string type;
    std::map<std::string, std::string> options;
    std::string file;  ///< where it was declared
    int line = 0;
};

/// One rule:
///   <rule id="..." priority="100">
///     <match receiver="HERID" receiver-or-ancestor="HERID" sender="HERID" type="DIALOG_*"
///            municipality="0301"/>   (all attributes optional; all given must hold)
///     <deliver adapter="visma-oslo"/> | <deliver via="registry"/>
///     <option name="apprec-version" value="1.1"/>
///   </rule>
/// 'type' matches MsgInfo/Type exactly or, with a trailing '*', as a prefix.
struct rule {
    std::string id;
    int priority = 0;                 ///< higher wins; ties: earlier file/position wins
    std::string receiver;             ///< exact lowest-level receiver HER-id
    std::string receiver_ancestor;    ///< receiver or any ancestor has this HER-id
    std::string sender;               ///< lowest-level or level-1 sender HER-id
    std::string type;                 ///< message type pattern
    std::string municipality;         ///< receiver's municipality (from the registry)
    std::string adapter;              ///< destination instance; empty when via_registry
    bool via_registry = false;        ///< deliver through the adapter the registry names for the receiver
    std::map<std::string, std::string> options;  ///< e.g. apprec-version
    std::string file;
    int line = 0;
};

struct rule_set {
    std::vector<adapter_instance> adapters;
    std::vector<rule> rules;  ///< sorted by priority descending, then declaration order
    const adapter_instance* find_adapter(std::string_view name) const;
};

/// Load every *.xml in 'dir' (sorted by name), validate each against schemas/routing-rules.xsd
/// (embedded), and check references (unknown adapter, duplicate rule id or adapter name). Errors
/// are "file:line:col: reason".
result<rule_set> load_rules(const std::string& dir);
result<rule_set> load_rules_files(const std::vector<std::string>& files);

/// The outcome of routing one message.
struct decision {
    enum class kind {
        routed,            ///< rule + adapter found
        unknown_receiver,  ///< E21: receiver HER-id not in the registry
        cannot_receive,    ///< E21: receiver is an organisation/department, or inactive
        unroutable,        ///< no rule matched (kept and visible, never dropped)
    } k = kind::unroutable;
    const rule* matched = nullptr;
    std::string adapter;   ///< resolved adapter instance name
    std::string reason;    ///< human explanation (ids and HER-ids only)
};

/// The HER-id to route on: the lowest-level receiver HER-id; when the message names none but gives
/// an organisation number (ENH) that exactly one receiving party in the registry carries, that
/// party's HER-id. Empty if neither; 'why' then says why.
std::string receiver_her(const address_registry& reg, const message_facts& f, std::string* why = nullptr);

/// Decide where a message goes: look up the lowest-level receiver in the registry, then the
/// first rule (by priority) whose conditions all hold.
decision route(const rule_set& rules, const address_registry& reg, const message_facts& f);

/// Per-rule explanation of why it did or did not match (for `routes explain`).
std::vector<std::pair<const rule*, std::string>> explain(const rule_set& rules, const address_registry& reg,
                                                         const message_facts& f);

} // namespace broker::routing
