// `edibroker registry ...`, `edibroker messages ...` and `edibroker store ...`: they work on the
// store of --data-dir / --config, like the server (SQLite in WAL mode: safe while it runs).
#include "admin/ops.hpp"
#include "tools/commands.hpp"
#include "tools/common.hpp"

#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>

#include <iostream>

namespace broker::tools {

namespace json = boost::json;

namespace {

constexpr const char* registry_usage =
    R"(usage: edibroker registry import FILE      replace the parties in the store with FILE's
       edibroker registry show HERID       a party with its ancestors and adapter
       edibroker registry search TEXT      parties whose HER-id, name, org. number, municipality,
                                           EDI address or adapter contains TEXT
options: --data-dir DIR | --config FILE | --set KEY=VALUE, and --json (show, search)

The server imports its `registry` file at every start and reload; `registry import` is for a
broker run with `registry` unset (--set registry=), whose registry lives in the store.
)";

constexpr const char* messages_usage =
    R"(usage: edibroker messages list [--sender HERID] [--receiver HERID[,HERID]] [--type TYPE]
                              [--state STATE] [--msg-id MSGID] [--conversation ID]
                              [--from TIME] [--to TIME] [--limit N] [--json]
       edibroker messages show ID [--json]
       edibroker messages resend ID
       edibroker messages dead [--limit N] [--json]
options: --data-dir DIR | --config FILE | --rules DIR | --registry FILE | --set KEY=VALUE
TIME: 2026-11-22, 2026-11-22T08:00:00Z, or relative: -30m, -2h, -7d

resend routes the message again with the rules in force and resets its attempts; a running
broker's delivery scanner sends it within delivery-scan-ms, a stopped one at its next start.
)";

constexpr const char* store_usage =
    R"(usage: edibroker store stats [--json]   size, messages, oldest message, what waits per adapter
       edibroker store prune          run retention now (retention-days, rule option retention-days)
options: --data-dir DIR | --config FILE | --rules DIR | --set KEY=VALUE
)";

std::string s_of(const json::object& o, const char* k) {
    auto* v = o.if_contains(k);
    if (!v)
        return {};
    if (v->is_string())
        return std::string(v->as_string());
    if (v->is_int64())
        return std::to_string(v->as_int64());
    return {};
}

std::string size_text(std::int64_t b) {
    char buf[64];
    if (b >= (1 << 30))
        std::snprintf(buf, sizeof buf, "%.1f GiB", static_cast<double>(b) / (1 << 30));
    else if (b >= (1 << 20))
        std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(b) / (1 << 20));
    else
        std::snprintf(buf, sizeof buf, "%.1f KiB", static_cast<double>(b) / 1024);
    return buf;
}

void print_rows(const std::vector<store::message_row>& rows, bool json_out) {
    if (json_out) {
        json::array a;
        for (auto& r : rows)
            a.push_back(ops::row_json(r));
        std::cout << json::serialize(a) << "\n";
        return;
    }
    std::vector<std::vector<std::string>> t{{"RECEIVED", "ID", "TYPE", "SENDER", "RECEIVER", "STATE", "ROUTE"}};
    for (auto& r : rows) {
        std::string route = r.rule.empty() && r.adapter.empty() ? (r.error_code.empty() ? "-" : r.error_code)
                                                                : (r.rule.empty() ? "-" : r.rule) + " -> " + r.adapter;
        t.push_back({ops::iso_time(r.received_at), r.id, r.msg_type.empty() ? "-" : r.msg_type,
                     r.sender_her.empty() ? "-" : r.sender_her, r.receiver_her.empty() ? "-" : r.receiver_her, r.state,
                     route});
    }
    print_table(std::cout, t);
    std::cout << rows.size() << (rows.size() == 1 ? " message\n" : " messages\n");
}

void print_detail(const json::object& d) {
    const auto& m = d.at("message").as_object();
    std::vector<std::vector<std::string>> t;
    auto add = [&](const char* label, const std::string& v) {
        if (!v.empty())
            t.push_back({label, v});
    };
    add("id", s_of(m, "id"));
    add("MsgId", s_of(m, "msgId"));
    add("kind", s_of(m, "kind"));
    add("type", s_of(m, "type"));
    add("sender", s_of(m, "senderHerId") + (s_of(m, "senderLvl1HerId").empty() ? "" : " (organisation " + s_of(m, "senderLvl1HerId") + ")"));
    add("receiver", s_of(m, "receiverHerId") + (s_of(m, "receiverLvl1HerId").empty() ? "" : " (organisation " + s_of(m, "receiverLvl1HerId") + ")"));
    add("conversation", s_of(m, "conversationRef"));
    add("state", s_of(m, "state"));
    add("route", s_of(m, "rule").empty() && s_of(m, "adapter").empty() ? "" : s_of(m, "rule") + " -> " + s_of(m, "adapter"));
    add("error", s_of(m, "errorCode") + (s_of(m, "errorText").empty() ? "" : " " + s_of(m, "errorText")));
    add("transport", s_of(m, "transportDeliveryState"));
    add("attempts", s_of(m, "attempts"));
    add("last error", s_of(m, "lastError"));
    add("next attempt", s_of(m, "nextAttemptAt"));
    add("received", s_of(m, "receivedAt"));
    add("delivered", s_of(m, "deliveredAt"));
    add("size", s_of(m, "size") + " bytes");
    add("source", s_of(m, "source"));
    if (auto* o = d.if_contains("original"); o && o->is_object())
        add("answers", s_of(o->as_object(), "id") + " (MsgId " + s_of(o->as_object(), "msgId") + ", " +
                           s_of(o->as_object(), "state") + ")");
    if (d.at("appRec").is_object()) {
        const auto& a = d.at("appRec").as_object();
        std::string v = s_of(a, "status");
        for (auto& e : a.at("errors").as_array())
            if (e.is_object())
                v += " " + s_of(e.as_object(), "errorCode");
        if (!s_of(a, "id").empty())
            v += " (AppRec " + s_of(a, "id") + ", " + s_of(a, "state") + ")";
        add("AppRec", v);
    } else {
        add("AppRec", "none yet");
    }
    if (d.at("readReceipt").is_object())
        add("read", "by " + s_of(d.at("readReceipt").as_object(), "herId") + " at " + s_of(d.at("readReceipt").as_object(), "at"));
    else
        add("read", "not yet");
    print_table(std::cout, t);
    std::cout << "\ntransitions:\n";
    std::vector<std::vector<std::string>> tr;
    for (auto& x : d.at("transitions").as_array()) {
        const auto& o = x.as_object();
        tr.push_back({"  " + s_of(o, "at"), s_of(o, "state"), s_of(o, "detail")});
    }
    print_table(std::cout, tr);
    const auto& att = d.at("deliveryAttempts").as_array();
    std::cout << "\ndelivery attempts: " << att.size() << "\n";
    for (auto& x : att) {
        const auto& o = x.as_object();
        std::cout << "  " << s_of(o, "at") << "  " << s_of(o, "state") << "  " << s_of(o, "detail") << "\n";
    }
}

std::set<std::string> with_config(std::set<std::string> extra) {
    extra.insert(config_options.begin(), config_options.end());
    return extra;
}

} // namespace

int cmd_registry(int argc, char** argv) {
    auto a = parse_args(argc, argv, with_config({}), {"--json", "--help"});
    if (!a)
        return std::cerr << "edibroker registry: " << a.error().message << "\n\n" << registry_usage, 2;
    if (a->flags.count("--help"))
        return std::cout << registry_usage, 0;
    if (a->positional.size() != 2)
        return std::cerr << registry_usage, 2;
    auto c = load_config(*a);
    if (!c)
        return fail(c.error());
    auto st = open_store(*c);
    if (!st)
        return fail(st.error());
    const std::string& sub = a->positional[0];
    const std::string& arg = a->positional[1];
    if (sub == "import") {
        auto parties = routing::parse_registry_file(arg);
        if (!parties) {
            std::cerr << parties.error().where() << "\n";
            return 1;
        }
        auto before = (*st)->thread_reader().all_parties();
        auto list = std::make_shared<std::vector<store::party>>(*parties);
        auto w = store::write_sync(**st, [list](store::write_txn& t) -> result<void> {
            if (auto e = t.delete_all_parties(); !e)
                return e.error();
            for (auto& p : *list)
                if (auto e = t.upsert_party(p); !e)
                    return e.error();
            return {};
        });
        if (!w)
            return fail(w.error());
        std::cout << "imported " << parties->size() << " parties from " << arg << " into "
                  << c->data_dir << "/edibroker.db (replacing " << (before ? before->size() : 0) << ")\n";
        return 0;
    }
    // show/search: the registry as stored (what the server imported last).
    auto parties = (*st)->thread_reader().all_parties();
    if (!parties)
        return fail(parties.error());
    routing::address_registry reg(std::move(*parties));
    if (sub == "show") {
        const store::party* p = reg.find(arg);
        if (!p)
            return fail("HER-id " + arg + " is not in the registry (" + std::to_string(reg.size()) + " parties in " +
                        c->data_dir + "/edibroker.db)");
        json::object d = ops::party_detail(reg, *p);
        if (a->flags.count("--json")) {
            std::cout << json::serialize(d) << "\n";
            return 0;
        }
        std::vector<std::vector<std::string>> t;
        auto add = [&](const char* k, const std::string& v) {
            if (!v.empty())
                t.push_back({k, v});
        };
        add("HER-id", p->her_id);
        add("name", p->name);
        add("type", p->type + (p->active ? "" : " (inactive)") +
                        (p->can_receive() ? ", receives messages" : ", does not receive messages"));
        add("org. number", p->org_number);
        add("municipality", p->municipality);
        add("EDI address", p->edi_address);
        add("adapter", p->adapter.empty() ? "(none in the registry)" : p->adapter);
        auto line = reg.lineage(p->her_id);
        std::string anc;
        for (std::size_t i = 1; i < line.size(); ++i)
            anc += (anc.empty() ? "" : " < ") + line[i]->her_id + " " + line[i]->name + " (" + line[i]->type + ")";
        add("ancestors", anc.empty() ? "(none)" : anc);
        print_table(std::cout, t);
        return 0;
    }
    if (sub == "search") {
        auto found = ops::search_parties(reg, arg);
        if (a->flags.count("--json")) {
            json::array arr;
            for (auto* p : found)
                arr.push_back(ops::party_json(*p));
            std::cout << json::serialize(arr) << "\n";
            return found.empty() ? 1 : 0;
        }
        std::vector<std::vector<std::string>> t{{"HER-ID", "TYPE", "NAME", "PARENT", "MUNICIPALITY", "ADAPTER"}};
        for (auto* p : found)
            t.push_back({p->her_id, p->type, p->name, p->parent_her_id.empty() ? "-" : p->parent_her_id,
                         p->municipality.empty() ? "-" : p->municipality, p->adapter.empty() ? "-" : p->adapter});
        print_table(std::cout, t);
        std::cout << found.size() << (found.size() == 1 ? " party\n" : " parties\n");
        return found.empty() ? 1 : 0;
    }
    return std::cerr << "edibroker registry: unknown subcommand '" << sub << "'\n\n" << registry_usage, 2;
}

int cmd_messages(int argc, char** argv) {
    auto a = parse_args(argc, argv,
                        with_config({"--sender", "--receiver", "--type", "--state", "--msg-id", "--conversation",
                                     "--from", "--to", "--limit"}),
                        {"--json", "--help"});
    if (!a)
        return std::cerr << "edibroker messages: " << a.error().message << "\n\n" << messages_usage, 2;
    if (a->flags.count("--help"))
        return std::cout << messages_usage, 0;
    if (a->positional.empty())
        return std::cerr << messages_usage, 2;
    const std::string sub = a->positional[0];
    const bool json_out = a->flags.count("--json") != 0;
    auto c = load_config(*a);
    if (!c)
        return fail(c.error());
    auto st = open_store(*c);
    if (!st)
        return fail(st.error());
    auto& rd = (*st)->thread_reader();
    if (sub == "list" || sub == "dead") {
        if (a->positional.size() != 1)
            return std::cerr << messages_usage, 2;
        std::map<std::string, std::string> params;
        for (auto [opt, key] : {std::pair{"--sender", "sender"}, {"--receiver", "receiver"}, {"--type", "type"},
                                {"--state", "state"}, {"--msg-id", "msgId"}, {"--conversation", "conversation"},
                                {"--from", "from"}, {"--to", "to"}, {"--limit", "limit"}})
            if (a->values.count(opt))
                params[key] = a->get(opt);
        if (sub == "dead")
            params["state"] = store::state::dead;
        auto q = ops::make_query(params, store::now_ms());
        if (!q)
            return fail(q.error().message, 2);
        auto rows = ops::list_messages(rd, *q);
        if (!rows)
            return fail(rows.error());
        print_rows(*rows, json_out);
        return 0;
    }
    if (a->positional.size() != 2)
        return std::cerr << messages_usage, 2;
    const std::string& id = a->positional[1];
    if (sub == "show") {
        auto d = ops::message_detail(rd, id);
        if (!d)
            return fail(d.error());
        if (!*d)
            return fail("no message with id " + id);
        if (json_out)
            std::cout << json::serialize(**d) << "\n";
        else
            print_detail(**d);
        return 0;
    }
    if (sub == "resend") {
        auto rules = routing::load_rules(c->rules_dir);
        if (!rules)
            return fail(rules.error());
        auto reg = load_registry(*c, st->get());
        if (!reg)
            return fail(reg.error());
        auto r = ops::resend_in_store(**st, *rules, *reg, id);
        if (!r)
            return fail(r.error());
        std::cout << "message " << id << " is routed again: rule " << r->first << ", adapter " << r->second
                  << "; a running broker delivers it at its next delivery scan, a stopped one when it starts\n";
        return 0;
    }
    return std::cerr << "edibroker messages: unknown subcommand '" << sub << "'\n\n" << messages_usage, 2;
}

int cmd_store(int argc, char** argv) {
    auto a = parse_args(argc, argv, with_config({}), {"--json", "--help"});
    if (!a)
        return std::cerr << "edibroker store: " << a.error().message << "\n\n" << store_usage, 2;
    if (a->flags.count("--help"))
        return std::cout << store_usage, 0;
    if (a->positional.size() != 1)
        return std::cerr << store_usage, 2;
    auto c = load_config(*a);
    if (!c)
        return fail(c.error());
    auto st = open_store(*c);
    if (!st)
        return fail(st.error());
    if (a->positional[0] == "stats") {
        auto s = ops::store_json(**st);
        if (!s)
            return fail(s.error());
        if (a->flags.count("--json")) {
            std::cout << json::serialize(*s) << "\n";
            return 0;
        }
        std::vector<std::vector<std::string>> t;
        t.push_back({"store", c->data_dir + "/edibroker.db (schema " + s_of(*s, "schemaVersion") + ")"});
        t.push_back({"size", size_text(s->at("sizeBytes").as_int64())});
        t.push_back({"body log", size_text(s->at("bodyLogBytes").as_int64())});
        t.push_back({"messages", s_of(*s, "messages")});
        std::string oldest = s_of(*s, "oldestReceivedAt");
        t.push_back({"oldest message", oldest.empty() ? "-" : oldest + " (" + s_of(*s, "oldestAgeSeconds") + " s ago)"});
        std::string retention = c->retention_days ? std::to_string(c->retention_days) + " days (global)"
                                                  : std::string("keep everything (retention-days = 0)");
        // Routes with their own retention-days (rule option) override the global value.
        if (auto rules = routing::load_rules(c->rules_dir); rules) {
            for (const auto& r : rules->rules)
                if (auto it = r.options.find("retention-days"); it != r.options.end())
                    retention += "; rule " + r.id + ": " +
                                 (it->second == "0" ? std::string("keep everything") : it->second + " days");
        } else {
            retention += "; rules not readable: " + rules.error().message;
        }
        t.push_back({"retention", retention});
        print_table(std::cout, t);
        std::vector<std::vector<std::string>> p{{"ADAPTER", "STATE", "COUNT", "OLDEST"}};
        for (auto& x : s->at("pending").as_array()) {
            const auto& o = x.as_object();
            p.push_back({s_of(o, "adapter"), s_of(o, "state"), std::to_string(o.at("count").as_int64()),
                         s_of(o, "oldestReceivedAt")});
        }
        std::cout << "\non their way:\n";
        if (p.size() == 1)
            std::cout << "  nothing\n";
        else
            print_table(std::cout, p);
        return 0;
    }
    if (a->positional[0] == "prune") {
        auto rules = routing::load_rules(c->rules_dir);
        if (!rules)
            return fail(rules.error());
        auto n = ops::prune_sync(**st, *rules, c->retention_days, c->retention_batch);
        if (!n)
            return fail(n.error());
        std::cout << "pruned " << *n << " messages\n";
        return 0;
    }
    return std::cerr << "edibroker store: unknown subcommand '" << a->positional[0] << "'\n\n" << store_usage, 2;
}

} // namespace broker::tools
