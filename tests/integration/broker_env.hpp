// A real edibroker server (in this process, on 127.0.0.1 port 0, real SQLite file in a temp
// folder) with a real HTTP receiver standing for a vendor's EPJ endpoint.
#pragma once

#include "http_client.hpp"
#include "http_receiver.hpp"
#include "test_paths.hpp"

#include "broker/server.hpp"

#include <boost/json.hpp>

#include <catch2/catch.hpp>

#include <fstream>
#include <functional>
#include <memory>
#include <string>

namespace testing {

/// HER-ids of the test registry (a subset of the demo's shape).
namespace her {
inline const std::string portal_org = "115851";
inline const std::string portal = "8093244";
inline const std::string oslo_org = "9100100";
inline const std::string oslo_home_care = "9100110";
inline const std::string oslo_nurse = "9100111";
inline const std::string bergen_org = "9100200";
inline const std::string bergen_home_care = "9100210";
} // namespace her

inline void write_file(const std::filesystem::path& p, const std::string& content) {
    std::filesystem::create_directories(p.parent_path());
    std::ofstream out(p, std::ios::binary);
    out << content;
}

inline std::string party_xml(const std::string& her, const std::string& name, const std::string& type,
                             const std::string& parent, const std::string& adapter, const std::string& municipality,
                             const std::string& orgnr = "") {
    std::string s = "<CommunicationParty><HerId>" + her + "</HerId><Name>" + name + "</Name><Type>" + type + "</Type>";
    if (!orgnr.empty())
        s += "<OrganizationNumber>" + orgnr + "</OrganizationNumber>";
    if (!parent.empty())
        s += "<ParentHerId>" + parent + "</ParentHerId>";
    s += "<Municipality><CodeValue>" + municipality + "</CodeValue></Municipality>";
    if (!adapter.empty())
        s += "<Adapter>" + adapter + "</Adapter>";
    return s + "</CommunicationParty>\n";
}

inline std::string test_registry(const std::string& extra = "") {
    return "<Registry xmlns=\"urn:edibroker:registry:1\">\n" +
           party_xml(her::portal_org, "Direktoratet for e-helse", "Organization", "", "", "0301") +
           party_xml(her::portal, "Helsenorge.no", "Service", her::portal_org, "portal-inbox", "0301") +
           party_xml(her::oslo_org, "Oslo kommune", "Organization", "", "", "0301") +
           party_xml(her::oslo_home_care, "Hjemmetjenesten Grünerløkka", "Service", her::oslo_org, "vendor", "0301") +
           party_xml(her::oslo_nurse, "Kari Nordmann", "Person", her::oslo_home_care, "vendor", "0301") +
           party_xml(her::bergen_org, "Bergen kommune", "Organization", "", "", "4601") +
           party_xml(her::bergen_home_care, "Hjemmetjenesten Bergenhus", "Service", her::bergen_org, "", "4601") +
           extra + "</Registry>\n";
}

/// Rules: the municipality of Oslo goes to the vendor (http-push to the receiver), the portal's
/// services to a pull inbox. Bergen has no rule: its messages are unroutable.
inline std::string test_rules(const std::string& vendor_url, const std::string& extra_rules = "") {
    return R"(<routing-rules xmlns="urn:edibroker:routing-rules:1">
  <adapter name="portal-inbox" type="pull"/>
  <adapter name="vendor" type="http-push">
    <option name="url" value=")" +
           vendor_url + R"("/>
    <option name="timeout-ms" value="5000"/>
  </adapter>
  <rule id="oslo-vendor" priority="100">
    <match receiver-or-ancestor="9100100"/>
    <deliver adapter="vendor"/>
  </rule>
  <rule id="portal" priority="100">
    <match receiver-or-ancestor="115851"/>
    <deliver adapter="portal-inbox"/>
    <option name="apprec-version" value="1.1"/>
  </rule>
)" + extra_rules +
           "</routing-rules>\n";
}

/// The fixture Dialogmelding (portal → Oslo home care) with its MsgId replaced.
inline std::string dialog_message(const std::string& msg_id) {
    std::string s = read_file(source_dir() / "tests/fixtures/messages/dialog-portal-to-oslo.xml");
    const std::string old_id = "6f1c2f3e-5d4b-4a39-9c1e-0b7a8d2e4f10";
    auto p = s.find(old_id);
    REQUIRE(p != std::string::npos);
    s.replace(p, old_id.size(), msg_id);
    return s;
}

/// Replace every occurrence of 'from' by 'to'.
inline std::string replace_all(std::string s, const std::string& from, const std::string& to) {
    for (auto p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size()))
        s.replace(p, from.size(), to);
    return s;
}

inline boost::json::object json_of(const http_response& r) {
    INFO("body: " << r.body);
    auto v = boost::json::parse(r.body);
    REQUIRE(v.is_object());
    return v.as_object();
}

inline std::string str(const boost::json::object& o, const char* key) {
    auto* v = o.if_contains(key);
    return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

struct broker_env {
    temp_dir dir;
    http_receiver vendor;
    broker::config cfg;
    std::unique_ptr<broker::server> server;

    /// 'rules' builds the rules file from the vendor's URL; 'registry' is the registry file.
    explicit broker_env(std::function<std::string(const std::string&)> rules = {},
                        const std::string& registry = test_registry(),
                        std::function<void(broker::config&)> tune = {}) {
        write_file(dir.path() / "registry.xml", registry);
        write_file(dir.path() / "rules/rules.xml",
                   rules ? rules(vendor.url("/vendor")) : test_rules(vendor.url("/vendor")));
        vendor.respond_with(201, R"({"id":"vendor-1"})");
        cfg = broker::default_config();
        cfg.listen = "127.0.0.1:0";
        cfg.data_dir = (dir.path() / "data").string();
        cfg.rules_dir = (dir.path() / "rules").string();
        cfg.registry_file = (dir.path() / "registry.xml").string();
        cfg.retry_base_ms = 20;
        cfg.retry_max_ms = 50;
        cfg.delivery_scan_ms = 20;
        cfg.log_level = "warn";
        if (tune)
            tune(cfg);
        start();
    }

    void start() {
        auto s = broker::make_server(cfg);
        if (!s)
            FAIL(s.error().where());
        server = std::move(*s);
        auto r = server->start();
        if (!r)
            FAIL(r.error().where());
    }

    void restart() {
        server->stop();
        server.reset();
        start();
    }

    ~broker_env() {
        if (server)
            server->stop();
    }

    std::string url(const std::string& path) const { return "http://" + server->listen_address() + path; }

    http_response post_xml(const std::string& doc) {
        return http_request("POST", url("/Messages"), doc, {"Content-Type: application/xml"});
    }
    http_response get(const std::string& path) { return http_request("GET", url(path), ""); }

    /// GET /Messages/{id}/status, waiting (server-side, no sleeps) until one of 'states' holds.
    boost::json::object status(const std::string& id, const std::string& wait_for = "", int timeout_ms = 10000) {
        std::string path = "/Messages/" + id + "/status";
        if (!wait_for.empty())
            path += "?waitForState=" + wait_for + "&timeoutMs=" + std::to_string(timeout_ms);
        auto r = get(path);
        REQUIRE(r.status == 200);
        return json_of(r);
    }
};

} // namespace testing
