// Helpers shared by the routing tests.
#pragma once

#include "broker/router.hpp"
#include "test_paths.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>

namespace routing_test {

inline std::filesystem::path write(const std::filesystem::path& dir, const std::string& name, const std::string& text) {
    auto p = dir / name;
    std::ofstream out(p, std::ios::binary);
    out << text;
    return p;
}

inline broker::store::party party(std::string her, std::string type, std::string parent = {},
                                  std::string municipality = {}, std::string adapter = {}) {
    broker::store::party p;
    p.her_id = std::move(her);
    p.name = "party " + p.her_id;
    p.type = std::move(type);
    p.parent_her_id = std::move(parent);
    p.municipality = std::move(municipality);
    p.adapter = std::move(adapter);
    return p;
}

/// Facts of a message from sender (lvl1, lvl2) to receiver (lvl1, lvl2) of 'type'.
inline broker::message_facts facts(std::string sender1, std::string sender2, std::string receiver1,
                                   std::string receiver2, std::string type = "DIALOG_INNBYGGER_EKONTAKT") {
    broker::message_facts f;
    f.msg_id = "6f2d5b1e-0000-4000-8000-000000000001";
    f.msg_type = std::move(type);
    f.sender.lvl1_her = std::move(sender1);
    f.sender.lvl2_her = std::move(sender2);
    f.receiver.lvl1_her = std::move(receiver1);
    f.receiver.lvl2_her = std::move(receiver2);
    return f;
}

/// A rules document in the rules namespace around 'body'.
inline std::string rules_doc(const std::string& body) {
    return "<?xml version=\"1.0\"?>\n<routing-rules xmlns=\"urn:edibroker:routing-rules:1\">\n" + body +
           "</routing-rules>\n";
}

/// Load rules from (file name, text) pairs written to a fresh directory.
inline broker::result<broker::routing::rule_set> load(const testing::temp_dir& dir,
                                                      std::initializer_list<std::pair<std::string, std::string>> files) {
    for (auto& [n, t] : files)
        write(dir.path(), n, t);
    return broker::routing::load_rules(dir.path().string());
}

} // namespace routing_test
