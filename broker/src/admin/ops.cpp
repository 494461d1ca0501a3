// Operator queries and actions; see ops.hpp.
#include "admin/ops.hpp"

#include "broker/xml.hpp"

#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <ctime>
#include <set>

namespace broker::ops {

namespace json = boost::json;

namespace {

bool read_int(std::string_view s, std::size_t& pos, std::size_t digits, int& out) {
    if (pos + digits > s.size())
        return false;
    auto [p, ec] = std::from_chars(s.data() + pos, s.data() + pos + digits, out);
    if (ec != std::errc{} || p != s.data() + pos + digits)
        return false;
    pos += digits;
    return true;
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

void put_if(json::object& o, const char* key, const std::string& v) {
    if (!v.empty())
        o[key] = v;
}

json::value parse_or_empty_array(const std::string& s) {
    boost::system::error_code ec;
    json::value v = json::parse(s.empty() ? "[]" : s, ec);
    if (ec)
        return json::array{};
    return v;
}

} // namespace

result<store::millis> parse_time(std::string_view s, store::millis now) {
    auto bad = [&] {
        // Appended rather than "'" + std::string(s): GCC 12 warns (-Wrestrict, a false positive)
        // about the inlined insert at the front in optimised builds.
        std::string why(1, '\'');
        why.append(s).append("' is not a time: use 2026-11-22, 2026-11-22T01:00:00Z, -2h, -30m or -7d");
        return error{"request.invalid", std::move(why)};
    };
    if (s.empty())
        return bad();
    if (s[0] == '-') {
        std::int64_t n = 0;
        auto [p, ec] = std::from_chars(s.data() + 1, s.data() + s.size(), n);
        if (ec != std::errc{} || p != s.data() + s.size() - 1 || n < 0)
            return bad();
        std::int64_t unit = 0;
        switch (s.back()) {
        case 's': unit = 1000; break;
        case 'm': unit = 60 * 1000; break;
        case 'h': unit = 3600 * 1000; break;
        case 'd': unit = 86400 * 1000; break;
        default: return bad();
        }
        return now - n * unit;
    }
    if (std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }) && s.size() > 8) {
        std::int64_t v = 0;
        std::from_chars(s.data(), s.data() + s.size(), v);
        return v;
    }
    std::tm tm{};
    std::size_t pos = 0;
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0, ms = 0;
    if (!read_int(s, pos, 4, y) || pos >= s.size() || s[pos++] != '-' || !read_int(s, pos, 2, mo) ||
        pos >= s.size() || s[pos++] != '-' || !read_int(s, pos, 2, d))
        return bad();
    std::int64_t offset_min = 0;
    if (pos < s.size()) {
        if (s[pos] != 'T' && s[pos] != ' ')
            return bad();
        ++pos;
        if (!read_int(s, pos, 2, h) || pos >= s.size() || s[pos++] != ':' || !read_int(s, pos, 2, mi))
            return bad();
        if (pos < s.size() && s[pos] == ':') {
            ++pos;
            if (!read_int(s, pos, 2, sec))
                return bad();
            if (pos < s.size() && s[pos] == '.') {
                ++pos;
                std::size_t start = pos;
                while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos])))
                    ++pos;
                std::string frac(s.substr(start, pos - start));
                frac.resize(3, '0');
                std::from_chars(frac.data(), frac.data() + 3, ms);
            }
        }
        if (pos < s.size()) {
            if (s[pos] == 'Z') {
                ++pos;
            } else if (s[pos] == '+' || s[pos] == '-') {
                int sign = s[pos++] == '-' ? -1 : 1;
                int oh = 0, om = 0;
                if (!read_int(s, pos, 2, oh))
                    return bad();
                if (pos < s.size() && s[pos] == ':')
                    ++pos;
                if (pos < s.size() && !read_int(s, pos, 2, om))
                    return bad();
                offset_min = sign * (oh * 60 + om);
            }
        }
        if (pos != s.size())
            return bad();
    }
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return bad();
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    std::time_t t = timegm(&tm);
    return (static_cast<store::millis>(t) - offset_min * 60) * 1000 + ms;
}

result<message_query> make_query(const std::map<std::string, std::string>& params, store::millis now) {
    message_query q;
    auto& f = q.filter;
    for (auto& [k, v] : params) {
        if (v.empty())
            continue;
        if (k == "sender") {
            f.sender = v;
        } else if (k == "receiver") {
            std::string_view s = v;
            while (!s.empty()) {
                auto c = s.find(',');
                if (auto part = s.substr(0, c); !part.empty())
                    f.receivers.emplace_back(part);
                if (c == std::string_view::npos)
                    break;
                s.remove_prefix(c + 1);
            }
        } else if (k == "type") {
            f.msg_type = v;
        } else if (k == "state") {
            f.state = v;
        } else if (k == "msgId" || k == "msgid" || k == "msg-id") {
            f.msg_id = v;
        } else if (k == "conversation") {
            q.conversation = v;
        } else if (k == "from" || k == "to") {
            auto t = parse_time(v, now);
            if (!t)
                return t.error();
            (k == "from" ? f.from : f.to) = *t;
        } else if (k == "limit") {
            int n = 0;
            auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
            if (ec != std::errc{} || p != v.data() + v.size() || n < 1 || n > 10000)
                return error{"request.invalid", "limit must be 1..10000, got '" + v + "'"};
            f.limit = n;
        } else {
            return error{"request.invalid", "unknown filter '" + k +
                                                "' (use sender, receiver, type, state, msgId, conversation, from, "
                                                "to, limit)"};
        }
    }
    return q;
}

result<std::vector<store::message_row>> list_messages(store::reader& rd, const message_query& q) {
    if (q.conversation.empty())
        return rd.list(q.filter);
    // The first message of a conversation carries no ConversationRef: its MsgId is the
    // conversation's id. Two indexed lookups, merged newest first.
    store::message_filter a = q.filter, b = q.filter;
    a.conversation = q.conversation;
    if (!b.msg_id.empty() && b.msg_id != q.conversation)
        b.limit = 0;
    b.msg_id = q.conversation;
    auto ra = rd.list(a);
    if (!ra)
        return ra.error();
    std::vector<store::message_row> out = std::move(*ra);
    if (b.limit != 0) {
        auto rb = rd.list(b);
        if (!rb)
            return rb.error();
        std::set<std::string> seen;
        for (auto& m : out)
            seen.insert(m.id);
        for (auto& m : *rb)
            if (!seen.count(m.id))
                out.push_back(std::move(m));
    }
    std::stable_sort(out.begin(), out.end(),
                     [](const store::message_row& x, const store::message_row& y) { return x.received_at > y.received_at; });
    const std::size_t limit = static_cast<std::size_t>(q.filter.limit <= 0 ? 100 : q.filter.limit);
    if (out.size() > limit)
        out.resize(limit);
    return out;
}

json::object row_json(const store::message_row& m) {
    json::object o;
    o["id"] = m.id;
    put_if(o, "msgId", m.msg_id);
    o["kind"] = m.kind;
    put_if(o, "type", m.msg_type);
    put_if(o, "senderHerId", m.sender_her);
    put_if(o, "senderLvl1HerId", m.sender_lvl1_her);
    put_if(o, "receiverHerId", m.receiver_her);
    put_if(o, "receiverLvl1HerId", m.receiver_lvl1_her);
    put_if(o, "conversationRef", m.conversation_ref);
    o["state"] = m.state;
    put_if(o, "rule", m.rule);
    put_if(o, "adapter", m.adapter);
    put_if(o, "errorCode", m.error_code);
    put_if(o, "originalId", m.original_id);
    put_if(o, "appRecId", m.apprec_id);
    put_if(o, "appRecStatus", m.apprec_status);
    o["attempts"] = m.attempts;
    o["receivedAt"] = iso_time(m.received_at);
    o["updatedAt"] = iso_time(m.updated_at);
    o["size"] = m.size;
    return o;
}

result<std::optional<json::object>> message_detail(store::reader& rd, std::string_view id) {
    auto row = rd.get(id);
    if (!row)
        return row.error();
    if (!*row)
        return std::optional<json::object>{};
    const store::message_row& m = **row;
    auto ts = rd.transitions(id);
    if (!ts)
        return ts.error();
    json::object o;
    json::object msg = row_json(m);
    put_if(msg, "namespace", m.root_ns);
    put_if(msg, "contentNamespace", m.content_ns);
    put_if(msg, "parentRef", m.parent_ref);
    put_if(msg, "genDate", m.gen_date);
    put_if(msg, "source", m.source);
    put_if(msg, "errorText", m.error_text);
    put_if(msg, "originalMsgId", m.original_msg_id);
    msg["transportDeliveryState"] = m.transport_state.empty() ? "Unconfirmed" : m.transport_state;
    put_if(msg, "lastError", m.last_error);
    if (m.next_attempt_at && m.state == std::string_view(store::state::failed))
        msg["nextAttemptAt"] = iso_time(m.next_attempt_at);
    if (m.delivered_at)
        msg["deliveredAt"] = iso_time(m.delivered_at);
    o["message"] = std::move(msg);

    json::array tr, attempts;
    for (auto& t : *ts) {
        json::object x;
        x["state"] = t.state;
        x["at"] = iso_time(t.at);
        put_if(x, "detail", t.detail);
        // Each delivery attempt ends in one of these transitions (see engine::on_result).
        if (t.state == store::state::failed || t.state == store::state::dead || t.state == store::state::delivered ||
            t.state == store::state::waiting)
            attempts.push_back(x);
        tr.push_back(std::move(x));
    }
    o["transitions"] = std::move(tr);
    o["deliveryAttempts"] = std::move(attempts);

    if (!m.apprec_status.empty() || !m.apprec_id.empty()) {
        json::object a;
        put_if(a, "id", m.apprec_id);
        put_if(a, "status", m.apprec_status);
        a["errors"] = parse_or_empty_array(m.apprec_errors_json);
        if (!m.apprec_id.empty()) {
            if (auto ar = rd.get(m.apprec_id); ar && *ar) {
                a["msgId"] = (*ar)->msg_id;
                a["state"] = (*ar)->state;
                a["receivedAt"] = iso_time((*ar)->received_at);
                put_if(a, "namespace", (*ar)->root_ns);
            }
        }
        o["appRec"] = std::move(a);
    } else {
        o["appRec"] = nullptr;
    }
    if (m.read_at) {
        json::object r;
        r["herId"] = m.read_by;
        r["at"] = iso_time(m.read_at);
        o["readReceipt"] = std::move(r);
    } else {
        o["readReceipt"] = nullptr;
    }
    if (!m.original_id.empty()) {
        json::object orig;
        orig["id"] = m.original_id;
        if (auto r = rd.get(m.original_id); r && *r) {
            put_if(orig, "msgId", (*r)->msg_id);
            orig["state"] = (*r)->state;
        }
        o["original"] = std::move(orig);
    }
    return std::optional<json::object>{std::move(o)};
}

json::object party_json(const store::party& p) {
    json::object o;
    o["herId"] = p.her_id;
    put_if(o, "name", p.name);
    put_if(o, "type", p.type);
    put_if(o, "parentHerId", p.parent_her_id);
    put_if(o, "organizationNumber", p.org_number);
    put_if(o, "municipality", p.municipality);
    put_if(o, "ediAddress", p.edi_address);
    put_if(o, "adapter", p.adapter);
    o["active"] = p.active;
    o["canReceive"] = p.can_receive();
    return o;
}

json::object party_detail(const routing::address_registry& reg, const store::party& p) {
    json::object o = party_json(p);
    json::array anc;
    auto line = reg.lineage(p.her_id);
    for (std::size_t i = 1; i < line.size(); ++i) {  // lineage()[0] is the party itself
        json::object a;
        a["herId"] = line[i]->her_id;
        put_if(a, "name", line[i]->name);
        put_if(a, "type", line[i]->type);
        anc.push_back(std::move(a));
    }
    o["ancestors"] = std::move(anc);
    return o;
}

std::vector<const store::party*> search_parties(const routing::address_registry& reg, std::string_view text) {
    std::vector<const store::party*> out;
    const std::string needle = lower(text);
    auto matches = [&](const store::party& p) {
        for (const std::string* field : {&p.her_id, &p.name, &p.org_number, &p.municipality, &p.edi_address, &p.adapter})
            if (lower(*field).find(needle) != std::string::npos)
                return true;
        return false;
    };
    for (auto& [her, p] : reg.all()) {
        // A party matches on its own fields or on an ancestor's ("oslo" finds every service and
        // person under "Oslo kommune"). The walk up is bounded: a registry may hold a cycle.
        const store::party* q = &p;
        for (int depth = 0; q && depth < 16; ++depth, q = q->parent_her_id.empty() ? nullptr : reg.find(q->parent_her_id))
            if (matches(*q)) {
                out.push_back(&p);
                break;
            }
    }
    return out;
}

json::object routes_json(const routing::rule_set& rules) {
    json::object o;
    json::array rs;
    for (auto& r : rules.rules) {
        json::object x;
        x["id"] = r.id;
        x["priority"] = r.priority;
        json::object m;
        put_if(m, "receiver", r.receiver);
        put_if(m, "receiverOrAncestor", r.receiver_ancestor);
        put_if(m, "sender", r.sender);
        put_if(m, "type", r.type);
        put_if(m, "municipality", r.municipality);
        x["match"] = std::move(m);
        if (r.via_registry)
            x["deliver"] = "via registry";
        else
            x["adapter"] = r.adapter;
        json::object opts;
        for (auto& [k, v] : r.options)
            opts[k] = v;
        x["options"] = std::move(opts);
        x["file"] = r.file + ":" + std::to_string(r.line);
        rs.push_back(std::move(x));
    }
    json::array as;
    for (auto& a : rules.adapters) {
        json::object x;
        x["name"] = a.name;
        x["type"] = a.type;
        x["file"] = a.file + ":" + std::to_string(a.line);
        as.push_back(std::move(x));
    }
    o["rules"] = std::move(rs);
    o["adapters"] = std::move(as);
    return o;
}

json::object explain_json(const routing::rule_set& rules, const routing::address_registry& reg,
                          const xml::validation_result& vr) {
    const message_facts& f = vr.facts;
    json::object o;
    o["verdict"] = vr.v == xml::verdict::valid ? "valid" : xml::apprec_code(vr.v);
    if (vr.v != xml::verdict::valid) {
        json::array ds;
        for (auto& d : vr.diagnostics)
            ds.push_back(json::string(std::to_string(d.line) + ":" + std::to_string(d.column) + ": " + d.message));
        o["diagnostics"] = std::move(ds);
    }
    json::object m;
    put_if(m, "msgId", f.msg_id);
    put_if(m, "type", f.msg_type);
    put_if(m, "senderHerId", f.sender.lowest_her());
    put_if(m, "senderLvl1HerId", f.sender.lvl1_her);
    put_if(m, "receiverHerId", f.receiver.lowest_her());
    put_if(m, "receiverLvl1HerId", f.receiver.lvl1_her);
    o["message"] = std::move(m);
    std::string her = routing::receiver_her(reg, f);
    if (const store::party* p = her.empty() ? nullptr : reg.find(her))
        o["receiver"] = party_detail(reg, *p);
    else
        o["receiver"] = nullptr;
    routing::decision d = routing::route(rules, reg, f);
    json::object dj;
    switch (d.k) {
    case routing::decision::kind::routed: dj["outcome"] = "routed"; break;
    case routing::decision::kind::unknown_receiver:
    case routing::decision::kind::cannot_receive: dj["outcome"] = "rejected"; dj["code"] = "E21"; break;
    case routing::decision::kind::unroutable: dj["outcome"] = "unroutable"; break;
    }
    if (d.matched)
        dj["rule"] = d.matched->id;
    put_if(dj, "adapter", d.adapter);
    dj["reason"] = d.reason;
    o["decision"] = std::move(dj);
    json::array rs;
    for (auto& [r, why] : routing::explain(rules, reg, f)) {
        json::object x;
        x["rule"] = r->id;
        x["priority"] = r->priority;
        x["file"] = r->file + ":" + std::to_string(r->line);
        x["matched"] = r == d.matched;
        x["why"] = why;
        rs.push_back(std::move(x));
    }
    o["rules"] = std::move(rs);
    return o;
}

result<std::vector<prune_target>> retention_plan(const routing::rule_set& rules,
                                                 const std::vector<std::string>& stored_rules, int global_days,
                                                 store::millis now) {
    std::map<std::string, int> days;  // rule -> days
    for (auto& r : rules.rules) {
        auto it = r.options.find("retention-days");
        if (it == r.options.end())
            continue;
        int d = 0;
        auto [p, ec] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), d);
        if (ec != std::errc{} || p != it->second.data() + it->second.size() || d < 0 || d > 36500)
            return error{"rules.invalid", "rule '" + r.id + "': option retention-days must be 0..36500 days, got '" +
                                              it->second + "'",
                         r.file, r.line, 1};
        days[r.id] = d;
    }
    std::vector<prune_target> out;
    auto add = [&](const std::string& rule, int d) {
        if (d > 0)
            out.push_back({rule, now - static_cast<store::millis>(d) * 86400000, d});
    };
    add("", global_days);
    for (auto& r : stored_rules) {
        auto it = days.find(r);
        add(r, it == days.end() ? global_days : it->second);
    }
    return out;
}

result<std::int64_t> prune_sync(store::store& st, const routing::rule_set& rules, int global_days, int batch) {
    auto stored = st.thread_reader().stored_rules();
    if (!stored)
        return stored.error();
    auto plan = retention_plan(rules, *stored, global_days, store::now_ms());
    if (!plan)
        return plan.error();
    std::int64_t total = 0;
    for (auto& t : *plan) {
        for (;;) {
            auto n = std::make_shared<int>(0);
            auto r = store::write_sync(st, [t, n, batch](store::write_txn& w) -> result<void> {
                auto k = w.prune(t.rule, t.before, batch);
                if (!k)
                    return k.error();
                *n = *k;
                return {};
            });
            if (!r)
                return r.error();
            total += *n;
            if (*n < batch)
                break;
        }
    }
    return total;
}

result<json::object> store_json(store::store& st) {
    auto& rd = st.thread_reader();
    auto s = rd.stats();
    if (!s)
        return s.error();
    auto p = rd.pending();
    if (!p)
        return p.error();
    json::object o;
    o["messages"] = s->messages;
    o["sizeBytes"] = s->size_bytes;
    o["bodyLogBytes"] = s->body_log_bytes;
    if (s->oldest_received_at) {
        o["oldestReceivedAt"] = iso_time(s->oldest_received_at);
        o["oldestAgeSeconds"] = (store::now_ms() - s->oldest_received_at) / 1000;
    } else {
        o["oldestReceivedAt"] = nullptr;
    }
    o["schemaVersion"] = st.schema_version();
    o["writeQueueDepth"] = st.queue_depth();
    json::array pend;
    for (auto& c : *p) {
        json::object x;
        x["adapter"] = c.adapter;
        x["state"] = c.state;
        x["count"] = c.count;
        x["oldestReceivedAt"] = iso_time(c.oldest_received_at);
        pend.push_back(std::move(x));
    }
    o["pending"] = std::move(pend);
    return o;
}

result<std::pair<std::string, std::string>> resend_in_store(store::store& st, const routing::rule_set& rules,
                                                            const routing::address_registry& reg, std::string_view id) {
    auto& rd = st.thread_reader();
    auto row = rd.get(id);
    if (!row)
        return row.error();
    if (!*row)
        return error{"not-found", "no message with id " + std::string(id)};
    if ((*row)->state == std::string_view(store::state::rejected))
        return error{"resend.rejected", "message " + std::string(id) + " was rejected at intake (" +
                                            (*row)->error_code + "); it cannot be resent"};
    auto body = rd.body(id);
    if (!body || !*body)
        return error{"store.io", "the stored document of " + std::string(id) + " cannot be read"};
    xml::platform_init();
    auto vr = xml::thread_validator().parse_only(**body, std::string(id));
    auto d = routing::route(rules, reg, vr.facts);
    if (d.k != routing::decision::kind::routed)
        return error{"resend.unroutable", "message " + std::string(id) + " cannot be routed now: " + d.reason};
    std::string rule = d.matched ? d.matched->id : "";
    std::string adapter = d.adapter;
    std::string detail = "resend by operator: rule " + rule + ", adapter " + adapter + " (was " + (*row)->state + ")";
    std::string sid(id);
    auto w = store::write_sync(st, [sid, rule, adapter, detail](store::write_txn& t) -> result<void> {
        if (auto e = t.set_route(sid, rule, adapter); !e)
            return e.error();
        if (auto e = t.set_delivery(sid, 0, 0, ""); !e)
            return e.error();
        return t.set_state(sid, store::state::routed, detail);
    });
    if (!w)
        return w.error();
    return std::make_pair(rule, adapter);
}

} // namespace broker::ops
