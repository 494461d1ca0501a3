// Intake, correlation and delivery. See engine.hpp for the contract and store.hpp for the
// lifecycle diagram. Every path persists before it answers: the sender's 201 (or rejection) is
// sent only after the group transaction holding the message is committed.
#include "engine.hpp"

#include "broker/apprec.hpp"
#include "broker/log.hpp"
#include "digihelse/digihelse.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <optional>
#include <random>

namespace broker {

namespace asio = boost::asio;
namespace json = boost::json;

// ------------------------------------------------------------------------------------------------
// helpers

asio::awaitable<result<void>> store_write(store::store& s, store::write_op op) {
    co_return co_await asio::async_initiate<decltype(asio::use_awaitable), void(result<void>)>(
        [&s](auto handler, store::write_op op) {
            using handler_t = decltype(handler);
            auto h = std::make_shared<handler_t>(std::move(handler));
            auto complete = [h](result<void> r) {
                auto ex = asio::get_associated_executor(*h);
                asio::post(ex, [h, r = std::move(r)]() mutable { std::move (*h)(std::move(r)); });
            };
            if (auto r = s.submit(std::move(op), complete); !r)
                complete(r.error());
        },
        asio::use_awaitable, std::move(op));
}

json::object error_body(std::string_view code, std::string_view message) {
    json::object e;
    e["code"] = code;
    e["message"] = message;
    json::object o;
    o["error"] = std::move(e);
    return o;
}

namespace {

const char* status_name_of(std::string_view v) {
    if (v == "1")
        return "Ok";
    if (v == "2")
        return "Rejected";
    if (v == "3")
        return "OkErrorInMessagePart";
    return "Unknown";
}

const char* apprec_state_of(std::string_view v) {
    if (v == "1")
        return store::state::apprec_ok;
    if (v == "2")
        return store::state::apprec_rejected;
    return store::state::apprec_partial;
}

std::string errors_json(const std::vector<apprec_error_entry>& errs) {
    json::array a;
    for (auto& e : errs) {
        json::object o;
        o["errorCode"] = e.code;
        o["description"] = e.description;
        if (!e.code_system.empty())
            o["oid"] = e.code_system;
        if (!e.origin.empty())
            o["details"] = e.origin;
        a.push_back(std::move(o));
    }
    return json::serialize(a);
}

std::string option_or(const std::map<std::string, std::string>& opts, const std::string& key, std::string def) {
    auto it = opts.find(key);
    return it == opts.end() ? def : it->second;
}

/// HTTP status for a rejection code.
int status_for(std::string_view code) {
    if (code == "E21")
        return 422;
    if (code == "apprec.on-apprec" || code == "apprec.exists")
        return 409;
    if (code == "apprec.sender-not-receiver")
        return 403;
    return 400;  // T01, T02, T10, request.*
}

/// The facts of an AppRec the broker is about to build for 'original'.
message_facts apprec_facts(const message_facts& original, const std::string& version, const std::string& id,
                           std::string_view status_v, const std::vector<apprec_error_entry>& errs) {
    message_facts f;
    f.kind = doc_kind::apprec;
    f.root_ns = version == "1.0" ? ns::apprec_1_0 : ns::apprec_1_1;
    f.msg_id = id;
    f.msg_type = "APPREC";
    f.sender = original.receiver;
    f.receiver = original.sender;
    f.apprec_status = std::string(status_v);
    f.apprec_errors = errs;
    f.original_msg_id = original.msg_id;
    f.original_msg_type = original.msg_type;
    f.original_issue_date = original.gen_date;
    return f;
}

/// Whether two message-type patterns ('*' suffix = prefix) can match a common type.
bool patterns_overlap(std::string_view a, std::string_view b) {
    bool ap = !a.empty() && a.back() == '*';
    bool bp = !b.empty() && b.back() == '*';
    std::string_view ab = ap ? a.substr(0, a.size() - 1) : a;
    std::string_view bb = bp ? b.substr(0, b.size() - 1) : b;
    if (ap && bb.substr(0, ab.size()) == ab)
        return true;
    if (bp && ab.substr(0, bb.size()) == bb)
        return true;
    return ab == bb && ap == bp;
}

bool same_party(const party_ref& a, const std::string& lowest, const std::string& lvl1) {
    const std::string& al = a.lowest_her();
    if (al.empty())
        return false;
    return al == lowest || al == lvl1 || (!a.lvl1_her.empty() && (a.lvl1_her == lowest));
}

} // namespace

// ------------------------------------------------------------------------------------------------
// engine: construction and routing state

engine::engine(const config& cfg, store::store& st, adapter_registry& factories, asio::any_io_executor ex)
    : cfg_(cfg), store_(st), factories_(factories), ex_(ex), strand_(asio::make_strand(ex)), scan_timer_(strand_),
      routing_(std::make_shared<routing_state>()) {}

engine::~engine() { stop(); }

std::shared_ptr<const routing_state> engine::routing() const {
    std::lock_guard lk(mu_);
    return routing_;
}

result<void> engine::install(std::shared_ptr<routing_state> rs) {
    // Build every instance first; only swap when all succeed (a broken reload keeps the old set).
    std::map<std::string, std::shared_ptr<adapter>, std::less<>> fresh;
    for (auto& inst : rs->rules.adapters) {
        const adapter_factory* f = factories_.find(inst.type);
        if (!f)
            return error{"rules.invalid", "adapter '" + inst.name + "' has unknown type '" + inst.type + "'",
                         inst.file, inst.line, 1};
        adapter_config ac{inst.name, inst.type, inst.options, ex_,
                          [this](std::string doc, std::string source, inbound_handler done) {
                              asio::co_spawn(asio::make_strand(intake_executor()),
                                             run_inbound(std::move(doc), std::move(source), std::move(done)),
                                             asio::detached);
                          }};
        ac.data_dir = cfg_.data_dir;
        ac.sync_request = [this](std::string doc, std::string source, std::chrono::milliseconds timeout,
                                 sync_handler done) {
            sync_request(std::move(doc), std::move(source), timeout, std::move(done));
        };
        if (auto c = f->check(ac); !c)
            return error{"rules.invalid", "adapter '" + inst.name + "': " + c.error().message, inst.file, inst.line, 1};
        auto a = f->create(ac);
        if (!a)
            return error{"rules.invalid", "adapter '" + inst.name + "': " + a.error().message, inst.file, inst.line, 1};
        std::shared_ptr<adapter> sp(std::move(*a));
        if (auto s = sp->start(); !s)
            return error{"rules.invalid", "adapter '" + inst.name + "' cannot start: " + s.error().message, inst.file,
                         inst.line, 1};
        fresh.emplace(inst.name, std::move(sp));
    }
    // A rule may only send to an adapter that can take what it matches, when the rule narrows the
    // type (a rule for DIALOG_* to an adapter that only takes APPREC can never deliver).
    for (auto& r : rs->rules.rules) {
        if (r.via_registry || r.type.empty())
            continue;
        auto it = fresh.find(r.adapter);
        if (it == fresh.end())
            continue;
        const auto& types = it->second->caps().msg_types;
        if (types.empty())
            continue;
        bool ok = false;
        for (auto& t : types)
            ok = ok || patterns_overlap(t, r.type);
        if (!ok)
            return error{"rules.invalid",
                         "rule '" + r.id + "' sends type '" + r.type + "' to adapter '" + r.adapter +
                             "', which does not accept that message type",
                         r.file, r.line, 1};
    }
    std::map<std::string, std::shared_ptr<adapter>, std::less<>> old;
    {
        std::lock_guard lk(mu_);
        old.swap(adapters_);
        adapters_ = std::move(fresh);
        routing_ = std::move(rs);
    }
    for (auto& [n, a] : old)
        a->stop();
    return {};
}

void engine::set_intake_executors(std::vector<asio::any_io_executor> exs) { intake_executors_ = std::move(exs); }

asio::any_io_executor engine::intake_executor() {
    if (intake_executors_.empty())
        return ex_;
    return intake_executors_[next_intake_.fetch_add(1, std::memory_order_relaxed) % intake_executors_.size()];
}

adapter* engine::find_adapter(const std::string& name) {
    std::lock_guard lk(mu_);
    auto it = adapters_.find(name);
    return it == adapters_.end() ? nullptr : it->second.get();
}

void engine::start() {
    asio::post(strand_, [this] { scan(); });
}

void engine::stop() {
    std::map<std::string, std::shared_ptr<adapter>, std::less<>> adapters;
    {
        std::unique_lock lk(mu_);
        if (stopped_ || draining_)
            return;
        // Drain first: hand nothing new to an adapter, and let the deliveries under way finish
        // and record their outcome (bounded by stop-drain-ms). Stopping the adapters at once
        // would abort requests the receiver may already have taken, and the restarted broker
        // would deliver those a second time. The I/O threads and the store still run here.
        draining_ = true;
        lk.unlock();
        asio::post(strand_, [this] { scan_timer_.cancel(); });
        lk.lock();
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(cfg_.stop_drain_ms);
        if (!drained_.wait_until(lk, deadline, [this] { return in_flight_.empty(); }))
            log::warn("stop.drain-timeout", {{"inFlight", std::to_string(in_flight_.size())},
                                             {"waitedMs", std::to_string(cfg_.stop_drain_ms)}});
        stopped_ = true;
        adapters = adapters_;
    }
    for (auto& [n, a] : adapters)
        a->stop();
    // Release every status request waiting for a change, so the I/O threads can run out of work.
    std::vector<std::shared_ptr<asio::steady_timer>> timers;
    {
        std::lock_guard lk(mu_);
        for (auto& [id, w] : watchers_) {
            w->fired = true;
            timers.push_back(w->timer);
        }
    }
    for (auto& t : timers)
        asio::post(t->get_executor(), [t] { t->cancel(); });
}

// ------------------------------------------------------------------------------------------------
// intake

namespace {

/// Everything intake decided for one inbound document, ready to be written in one transaction.
struct intake_plan {
    store::new_message msg;
    std::vector<store::new_message> extra;  // a rejection AppRec the broker generated
    // AppRec correlation: the original gets this AppRec's outcome.
    std::string link_original;
    std::string link_status;
    std::string link_errors;
    std::string link_state;
    // To deliver after commit.
    std::vector<pending_delivery> deliveries;
    store::write_op digihelse;  // Digihelse table writes (issue 6), for an accepted message
};

} // namespace

asio::awaitable<intake_answer> engine::intake(std::string document, std::string source) {
    auto doc = std::make_shared<const std::string>(std::move(document));
    // A citizen message is read once: the Digihelse rules' scan rides on the validating pass.
    std::optional<digihelse::scan_observer> dh_scan;
    if (digihelse::may_apply(*doc))
        dh_scan.emplace();
    xml::validation_result vr =
        xml::thread_validator().validate_observed(*doc, "message", dh_scan ? dh_scan->handler() : nullptr);
    auto rs = routing();

    intake_plan p;
    p.msg.id = apprec::new_time_ordered_uuid();  // row ids in insertion order: see new_time_ordered_uuid
    p.msg.facts = std::move(vr.facts);  // vr's facts are not read again (issue 3: copies per message)
    p.msg.shared_raw = doc;  // stored from the same buffer that was validated and is delivered
    p.msg.content_type = "application/xml";
    p.msg.source = source;
    const message_facts& f = p.msg.facts;

    json::object answer;
    int status = 201;
    std::string refused_rule, refused_adapter;  // the route of a message its adapter refused (metrics)

    // Reject 'p.msg' with 'code'. A rejection AppRec goes back to the sender where the sender can
    // be identified and the message is not itself an AppRec (never an AppRec on an AppRec).
    auto reject = [&](std::string code, std::string message, const json::array* details,
                      bool reason_in_apprec = false) {
        p.msg.state = store::state::rejected;
        p.msg.initial_states = {store::state::received, store::state::rejected};
        p.msg.error_code = code;
        p.msg.error_text = message;
        status = status_for(code);
        answer = error_body(code, message);
        if (details)
            answer["error"].as_object()["details"] = *details;
        answer["id"] = p.msg.id;
        if (!f.msg_id.empty())
            answer["msgId"] = f.msg_id;

        // AppRec error codes are kodeverk 8221's (E.., S.., T.., X..); request.* and apprec.* are not.
        bool is_8221 = code.size() == 3 && std::string_view("ESTX").find(code[0]) != std::string_view::npos;
        bool can_answer = !f.is_apprec() && !f.msg_id.empty() && !f.sender.lowest_her().empty() && is_8221;
        if (!can_answer)
            return;
        apprec_error_entry e{code, apprec::error_dn(code), oid::apprec_error, reason_in_apprec ? message : ""};
        std::string ap_id = apprec::new_uuid();
        // Route the AppRec first: the rule that carries it decides its version.
        message_facts af = apprec_facts(f, cfg_.default_apprec_version, ap_id, "2", {e});
        routing::decision d = routing::route(rs->rules, rs->registry, af);
        std::string version = cfg_.default_apprec_version;
        if (d.matched)
            version = option_or(d.matched->options, "apprec-version", version);
        af = apprec_facts(f, version, ap_id, "2", {e});
        apprec::request req;
        req.version = version;
        req.st = apprec::status::rejected;
        req.errors = {e};
        req.id = ap_id;
        req.original = f;
        req.software_version = EDIBROKER_VERSION;
        auto xml = apprec::build(req);
        if (!xml) {
            log::error("apprec.build-failed", {{"id", p.msg.id}, {"reason", xml.error().message}});
            return;
        }
        store::new_message a;
        a.id = apprec::new_time_ordered_uuid();
        a.facts = af;
        a.raw = *xml;
        a.content_type = "application/xml";
        a.source = "internal";
        a.original_id = p.msg.id;
        if (d.k == routing::decision::kind::routed) {
            a.state = store::state::routed;
            a.rule = d.matched ? d.matched->id : "";
            a.adapter = d.adapter;
            p.deliveries.emplace_back(a.id, a.adapter, a.rule, af, std::make_shared<const std::string>(*xml));
        } else {
            a.state = store::state::unroutable;
            a.error_text = d.reason;
        }
        a.initial_states = {store::state::validated, a.state};
        p.link_original = p.msg.id;
        p.link_status = "Rejected";
        p.link_errors = errors_json({e});
        p.link_state = "";  // the original stays 'rejected'
        answer["appRecId"] = a.id;
        p.extra.push_back(std::move(a));
    };

    if (vr.v != xml::verdict::valid) {
        json::array details;
        std::string first;
        for (auto& d : vr.diagnostics) {
            json::object o;
            o["line"] = d.line;
            o["column"] = d.column;
            o["message"] = d.message;
            details.push_back(std::move(o));
            if (first.empty())
                first = std::to_string(d.line) + ":" + std::to_string(d.column) + ": " + d.message;
        }
        std::string code = xml::apprec_code(vr.v);
        std::string what = vr.v == xml::verdict::not_well_formed ? "not well-formed XML"
                           : vr.v == xml::verdict::unsupported   ? "unsupported message format or version"
                                                                 : "the message does not validate";
        reject(code, first.empty() ? what : what + " at " + first, &details);
    } else if (f.is_apprec()) {
        // Correlate with the original: sent by this AppRec's receiver with MsgId = OriginalMsgId.
        auto& rd = store_.thread_reader();
        std::optional<store::message_row> orig;
        if (auto r = rd.find_by_msg_id(f.receiver.lowest_her(), f.original_msg_id); r && *r)
            orig = **r;
        if (!orig) {
            if (auto all = rd.find_all_by_msg_id(f.original_msg_id); all) {
                for (auto& row : *all)
                    if (row.sender_her == f.receiver.lowest_her() || row.sender_lvl1_her == f.receiver.lvl1_her ||
                        row.sender_her == f.receiver.lvl1_her) {
                        orig = row;
                        break;
                    }
            }
        }
        routing::decision d = routing::route(rs->rules, rs->registry, f);
        if (orig && orig->kind == "apprec") {
            reject("apprec.on-apprec", "message " + orig->id + " is itself an AppRec; an AppRec is never answered",
                   nullptr);
        } else if (orig && !same_party(f.sender, orig->receiver_her, orig->receiver_lvl1_her)) {
            reject("apprec.sender-not-receiver",
                   "AppRec sender " + f.sender.lowest_her() + " is not a receiver of message " + orig->id, nullptr);
        } else if (d.k == routing::decision::kind::unknown_receiver || d.k == routing::decision::kind::cannot_receive) {
            reject("E21", d.reason, nullptr);
        } else {
            if (orig) {
                p.digihelse = digihelse::on_apprec(*orig, f);  // a cancellation's outcome (issue 6)
                p.msg.original_id = orig->id;
                p.link_original = orig->id;
                p.link_status = status_name_of(f.apprec_status);
                p.link_errors = errors_json(f.apprec_errors);
                p.link_state = apprec_state_of(f.apprec_status);
            }
            if (d.k == routing::decision::kind::routed) {
                p.msg.state = store::state::routed;
                p.msg.rule = d.matched ? d.matched->id : "";
                p.msg.adapter = d.adapter;
                p.deliveries.emplace_back(p.msg.id, d.adapter, p.msg.rule, f, doc);
            } else {
                p.msg.state = store::state::unroutable;
                p.msg.error_text = d.reason;
            }
            p.msg.initial_states = {store::state::received, store::state::validated, p.msg.state};
            answer["id"] = p.msg.id;
            answer["msgId"] = f.msg_id;
            answer["state"] = p.msg.state;
            if (orig)
                answer["originalId"] = orig->id;
            else
                answer["warning"] = "no original message with MsgId " + f.original_msg_id + " from " +
                                    f.receiver.lowest_her() + " is known; the AppRec is routed on its own";
        }
    } else if (auto dh = digihelse::check_intake(f, *doc, p.msg.id, store_.thread_reader(), rs->registry,
                                                    dh_scan ? &dh_scan->result() : nullptr);
               !dh) {
        // Digihelse (issue 6): the portal's rules on citizen dialogue, threading, appointments.
        reject(dh.error().code, dh.error().message, nullptr, true);
    } else {
        p.digihelse = std::move(dh->write);
        if (!dh->warning.empty())
            answer["warning"] = dh->warning;
        routing::decision d = routing::route(rs->rules, rs->registry, f);
        adapter* a = d.k == routing::decision::kind::routed ? find_adapter(d.adapter) : nullptr;
        if (d.k == routing::decision::kind::unknown_receiver || d.k == routing::decision::kind::cannot_receive) {
            reject("E21", d.reason, nullptr);
        } else if (auto take = (d.k == routing::decision::kind::routed && a) ? a->can_take(f, *doc) : result<void>{};
                   !take) {
            reject(take.error().code, "route '" + (d.matched ? d.matched->id : std::string()) + "': " + take.error().message,
                   nullptr);
            refused_rule = d.matched ? d.matched->id : "";
            refused_adapter = d.adapter;
        } else {
            if (d.k == routing::decision::kind::routed && a) {
                p.msg.state = store::state::routed;
                p.msg.rule = d.matched ? d.matched->id : "";
                p.msg.adapter = d.adapter;
                p.deliveries.emplace_back(p.msg.id, d.adapter, p.msg.rule, f, doc);
            } else {
                p.msg.state = store::state::unroutable;
                p.msg.error_text = a ? d.reason : ("adapter '" + d.adapter + "' is not configured");
                if (d.k != routing::decision::kind::routed)
                    p.msg.error_text = d.reason;
            }
            p.msg.initial_states = {store::state::received, store::state::validated, p.msg.state};
            answer["id"] = p.msg.id;
            answer["msgId"] = f.msg_id;
            answer["state"] = p.msg.state;
            if (p.msg.state == std::string_view(store::state::unroutable))
                answer["reason"] = p.msg.error_text;
        }
    }

    p.msg.http_status = status;
    p.msg.response_json = json::serialize(answer);
    std::string answer_json = p.msg.response_json;  // the answer given now and replayed to duplicates

    // Persist, then answer.
    auto outcome = std::make_shared<store::insert_outcome>();
    std::string msg_id_for_log = f.msg_id;
    std::string type_for_log = f.msg_type;
    std::string sender_for_log = f.sender.lowest_her();
    std::string receiver_for_log = f.receiver.lowest_her();
    auto deliveries = std::move(p.deliveries);
    std::string link_original = p.link_original;
    std::string state_for_metrics = p.msg.state, rule_for_metrics = p.msg.rule, adapter_for_metrics = p.msg.adapter,
                code_for_metrics = p.msg.error_code;
    if (rule_for_metrics.empty() && adapter_for_metrics.empty()) {
        rule_for_metrics = refused_rule;
        adapter_for_metrics = refused_adapter;
    }
    message_facts facts_for_listeners = listeners_.empty() ? message_facts{} : f;  // 'f' goes with p
    // The operation is a named local, not a temporary inside the co_await expression: GCC 12
    // destroys lambda temporaries with moved-in captures twice in that position.
    store::write_op op = [p = std::move(p), outcome](store::write_txn& t) mutable -> result<void> {
            auto ins = t.insert_message(p.msg);
            if (!ins)
                return ins.error();
            *outcome = *ins;
            if (outcome->duplicate)
                return {};
            for (auto& x : p.extra)
                if (auto e = t.insert_message(x); !e)
                    return e.error();
            if (!p.link_original.empty()) {
                std::string apprec_id = p.extra.empty() ? p.msg.id : p.extra.front().id;
                if (auto e = t.set_apprec(p.link_original, apprec_id, p.link_status, p.link_errors); !e)
                    return e.error();
                if (!p.link_state.empty())
                    if (auto e = t.set_state(p.link_original, p.link_state, "AppRec " + p.msg.id); !e)
                        return e.error();
            }
            if (p.digihelse && p.msg.state != std::string_view(store::state::rejected))
                if (auto e = p.digihelse(t); !e)
                    return e.error();
            return {};
        };
    // Claim the deliveries before the commit: once the message is on disk the scanner may find
    // it 'routed' and deliver it; without the claim this coroutine would deliver it a second time
    // when it resumes (seen under load by the benchmark's receiver). Beyond max_in_flight nothing
    // is claimed and the scanner hands the message over later.
    std::vector<bool> claimed = claim(deliveries);
    auto r = co_await store_write(store_, std::move(op));

    intake_answer out;
    if (!r || outcome->duplicate)
        release(deliveries, claimed);
    if (!r) {
        log::warn("intake.store-failed", {{"code", r.error().code}, {"reason", r.error().message}});
        out.status = 503;
        out.json = json::serialize(error_body(r.error().code, "the message was not stored: " + r.error().message +
                                                                  "; nothing was accepted, send it again later"));
        co_return out;
    }
    if (outcome->duplicate) {
        log::info("intake.duplicate", {{"id", outcome->id}, {"msgId", msg_id_for_log}, {"sender", sender_for_log}});
        out.status = outcome->http_status;
        out.json = outcome->response_json;
        out.id = outcome->id;
        out.duplicate = true;
        co_return out;
    }
    out.status = status;
    out.json = std::move(answer_json);
    out.id = outcome->id;
    // The line every accepted message writes is debug; a refused one is info (see README, "Logs").
    log::emit(status < 400 ? log::level::debug : log::level::info, "intake",
              {{"id", out.id},
               {"msgId", msg_id_for_log},
               {"type", type_for_log},
               {"sender", sender_for_log},
               {"receiver", receiver_for_log},
               {"status", std::to_string(status)},
               {"state", state_for_metrics},
               {"code", code_for_metrics}});
    notify(out.id);
    if (!link_original.empty())
        notify(link_original);
    if (observer_)
        observer_->intake(state_for_metrics, rule_for_metrics, adapter_for_metrics, code_for_metrics);
    for (auto* l : listeners_)
        l->stored(out.id, facts_for_listeners, doc, state_for_metrics);
    for (std::size_t i = 0; i < deliveries.size(); ++i)
        if (claimed[i]) {
            auto& [id, adapter_name, rule, facts, document] = deliveries[i];
            dispatch(job{std::move(id), std::move(adapter_name), std::move(rule), 1, std::move(facts),
                         std::move(document), store::now_ms(), true});
        }
    co_return out;
}

asio::awaitable<void> engine::run_inbound(std::string document, std::string source, inbound_handler done) {
    intake_answer a = co_await intake(std::move(document), std::move(source));
    inbound_result r;
    r.status = a.status;
    r.body_json = std::move(a.json);
    r.id = std::move(a.id);
    r.duplicate = a.duplicate;
    done(std::move(r));
}

// ------------------------------------------------------------------------------------------------
// AppRec on request, read receipts, pull pick-up

asio::awaitable<intake_answer> engine::apprec_for(std::string id, std::string her_id, std::string body_json) {
    intake_answer out;
    auto fail = [&](int status, std::string code, std::string msg) {
        out.status = status;
        out.json = json::serialize(error_body(code, msg));
        return out;
    };
    boost::system::error_code ec;
    json::value v = json::parse(body_json, ec);
    if (ec || !v.is_object())
        co_return fail(400, "request.invalid", "the body must be a JSON object with appRecStatus");
    auto& o = v.as_object();
    auto* st = o.if_contains("appRecStatus");
    if (!st || !st->is_string())
        co_return fail(400, "request.invalid", "appRecStatus is required: Ok, Rejected or OkErrorInMessagePart");
    auto status = apprec::parse_status_name(st->as_string());
    if (!status)
        co_return fail(400, "request.invalid", status.error().message);
    std::vector<apprec_error_entry> errs;
    if (auto* el = o.if_contains("appRecErrorList")) {
        if (!el->is_array())
            co_return fail(400, "request.invalid", "appRecErrorList must be an array");
        for (auto& x : el->as_array()) {
            if (!x.is_object() || !x.as_object().if_contains("errorCode") ||
                !x.as_object().at("errorCode").is_string())
                co_return fail(400, "request.invalid", "each appRecErrorList entry needs an errorCode string");
            auto& xo = x.as_object();
            apprec_error_entry e;
            e.code = std::string(xo.at("errorCode").as_string());
            auto str = [&](const char* k) {
                auto* p = xo.if_contains(k);
                return p && p->is_string() ? std::string(p->as_string()) : std::string();
            };
            e.description = str("description");
            if (e.description.empty())
                e.description = apprec::error_dn(e.code);
            e.code_system = str("oid");
            if (e.code_system.empty())
                e.code_system = oid::apprec_error;
            e.origin = str("details");
            errs.push_back(std::move(e));
        }
    }
    if (*status != apprec::status::ok && errs.empty())
        co_return fail(400, "request.invalid",
                       "appRecErrorList needs at least one error when appRecStatus is " +
                           std::string(apprec::status_name(*status)));

    auto& rd = store_.thread_reader();
    auto row = rd.get(id);
    if (!row)
        co_return fail(500, row.error().code, row.error().message);
    if (!*row)
        co_return fail(404, "not-found", "no message with id " + id);
    const store::message_row& m = **row;
    if (m.kind == "apprec")
        co_return fail(409, "apprec.on-apprec", "message " + id + " is an AppRec; an AppRec is never answered");
    if (her_id != m.receiver_her && her_id != m.receiver_lvl1_her)
        co_return fail(403, "apprec.sender-not-receiver",
                       "HER-id " + her_id + " is not a receiver of message " + id + " (receiver is " + m.receiver_her +
                           ")");
    if (!m.apprec_id.empty())
        co_return fail(409, "apprec.exists", "message " + id + " already has AppRec " + m.apprec_id);
    if (m.state == std::string_view(store::state::rejected))
        co_return fail(409, "apprec.exists", "message " + id + " was rejected by the broker and has its AppRec");
    auto body = rd.body(id);
    if (!body || !*body)
        co_return fail(500, "store.io", "the stored document of " + id + " cannot be read");
    xml::validation_result vr = xml::thread_validator().parse_only(**body, id);

    auto rs = routing();
    std::string ap_id = apprec::new_uuid();
    const char* sv = *status == apprec::status::ok ? "1" : *status == apprec::status::rejected ? "2" : "3";
    message_facts af = apprec_facts(vr.facts, cfg_.default_apprec_version, ap_id, sv, errs);
    routing::decision d = routing::route(rs->rules, rs->registry, af);
    std::string version = cfg_.default_apprec_version;
    if (d.matched)
        version = option_or(d.matched->options, "apprec-version", version);
    apprec::request req;
    req.version = version;
    req.st = *status;
    req.errors = errs;
    req.id = ap_id;
    req.original = vr.facts;
    req.software_version = EDIBROKER_VERSION;
    auto xml = apprec::build(req);
    if (!xml)
        co_return fail(422, xml.error().code, xml.error().message);
    co_return co_await intake(std::move(*xml), "http:apprec");
}

asio::awaitable<intake_answer> engine::mark_read(std::string id, std::string her_id) {
    intake_answer out;
    auto& rd = store_.thread_reader();
    auto row = rd.get(id);
    if (!row || !*row) {
        out.status = row ? 404 : 500;
        out.json = json::serialize(error_body(row ? "not-found" : row.error().code,
                                              row ? "no message with id " + id : row.error().message));
        co_return out;
    }
    const store::message_row& m = **row;
    if (her_id != m.receiver_her && her_id != m.receiver_lvl1_her) {
        out.status = 403;
        out.json = json::serialize(error_body(
            "read.not-receiver", "HER-id " + her_id + " is not a receiver of message " + id));
        co_return out;
    }
    if (m.state == std::string_view(store::state::rejected)) {
        out.status = 409;
        out.json = json::serialize(error_body("read.rejected", "message " + id + " was rejected and never delivered"));
        co_return out;
    }
    if (m.read_at != 0) {
        out.status = 204;  // already read: idempotent
        co_return out;
    }
    store::write_op op = [id, her_id](store::write_txn& t) -> result<void> {
        return t.set_read(id, her_id);
    };
    auto r = co_await store_write(store_, std::move(op));
    if (!r) {
        out.status = 503;
        out.json = json::serialize(error_body(r.error().code, r.error().message));
        co_return out;
    }
    notify(id);
    log::info("read", {{"id", id}, {"her", her_id}});
    for (auto* l : listeners_)
        l->read(m, her_id);
    out.status = 204;
    co_return out;
}

asio::awaitable<void> engine::fetched(std::string id) {
    auto changed = std::make_shared<bool>(false);
    store::write_op op = [id, changed](store::write_txn& t) -> result<void> {
        // 'routed' too: the receiver can fetch a message in a pull inbox before the adapter's
        // 'waiting' is recorded (which then no longer applies); the caller checks the adapter.
        auto ch = t.set_state_if(id, store::state::delivered, {store::state::waiting, store::state::routed},
                                 "fetched by the receiver");
        if (!ch)
            return ch.error();
        *changed = *ch;
        if (*ch)
            return t.set_delivered(id, "Acknowledged", 0);  // picked up: no attempt of ours
        return {};
    };
    auto r = co_await store_write(store_, std::move(op));
    if (!r)
        log::warn("fetch.store-failed", {{"id", id}, {"reason", r.error().message}});
    else if (*changed && observer_)
        if (auto row = store_.thread_reader().get(id); row && *row)
            observer_->delivery("delivered", (*row)->rule, (*row)->adapter, store::now_ms() - (*row)->received_at);
    notify(id);
}

void engine::unclaim_locked(const std::string& id) {
    in_flight_.erase(id);
    drained_.notify_all();  // stop() may be waiting for in_flight_ to empty
}

bool engine::waits_for_pickup(const std::string& name) const {
    std::lock_guard lk(mu_);
    auto it = adapters_.find(name);
    return it != adapters_.end() && it->second->type() == "pull";
}

asio::awaitable<intake_answer> engine::resend(std::string id) {
    intake_answer out;
    auto fail = [&](int status, std::string code, std::string msg) {
        out.status = status;
        out.json = json::serialize(error_body(code, msg));
        return out;
    };
    auto& rd = store_.thread_reader();
    auto row = rd.get(id);
    if (!row)
        co_return fail(500, row.error().code, row.error().message);
    if (!*row)
        co_return fail(404, "not-found", "no message with id " + id);
    if ((*row)->state == std::string_view(store::state::rejected))
        co_return fail(409, "resend.rejected",
                       "message " + id + " was rejected at intake (" + (*row)->error_code + "); it cannot be resent");
    auto body = rd.body(id);
    if (!body || !*body)
        co_return fail(500, "store.io", "the stored document of " + id + " cannot be read");
    auto doc = std::make_shared<const std::string>(std::move(**body));
    xml::validation_result vr = xml::thread_validator().parse_only(*doc, id);
    auto rs = routing();
    routing::decision d = routing::route(rs->rules, rs->registry, vr.facts);
    if (d.k != routing::decision::kind::routed)
        co_return fail(409, "resend.unroutable", "message " + id + " cannot be routed now: " + d.reason);
    if (!find_adapter(d.adapter))
        co_return fail(409, "resend.unroutable", "adapter '" + d.adapter + "' is not configured");
    std::string rule = d.matched ? d.matched->id : "";
    std::string adapter_name = d.adapter;
    std::string detail = "resend by operator: rule " + rule + ", adapter " + adapter_name + " (was " +
                         (*row)->state + ")";
    store::write_op op = [id, rule, adapter_name, detail](store::write_txn& t) -> result<void> {
        if (auto e = t.set_route(id, rule, adapter_name); !e)
            return e.error();
        if (auto e = t.set_delivery(id, 0, 0, ""); !e)
            return e.error();
        return t.set_state(id, store::state::routed, detail);
    };
    {
        // Not while a delivery of it is under way: its result would overwrite the new state.
        // Claimed now, so that the scanner does not deliver it as well once it is 'routed'.
        std::lock_guard lk(mu_);
        if (in_flight_.count(id))
            co_return fail(409, "resend.in-flight", "message " + id + " is being delivered right now; try again");
        in_flight_.insert(id);
    }
    auto r = co_await store_write(store_, std::move(op));
    if (!r) {
        std::lock_guard lk(mu_);
        unclaim_locked(id);
        co_return fail(503, r.error().code, r.error().message);
    }
    log::info("resend", {{"id", id}, {"rule", rule}, {"adapter", adapter_name}});
    notify(id);
    dispatch(job{id, adapter_name, rule, 1, vr.facts, doc, (*row)->received_at, true});
    json::object o;
    o["id"] = id;
    o["state"] = store::state::routed;
    o["rule"] = rule;
    o["adapter"] = adapter_name;
    out.status = 200;
    out.json = json::serialize(o);
    out.id = id;
    co_return out;
}

std::shared_ptr<engine::watcher> engine::watch(const std::string& id, std::chrono::steady_clock::time_point deadline,
                                               asio::any_io_executor ex) {
    auto w = std::make_shared<watcher>();
    w->id = id;
    w->timer = std::make_shared<asio::steady_timer>(ex, deadline);
    std::lock_guard lk(mu_);
    watchers_.emplace(id, w);
    return w;
}

asio::awaitable<void> engine::wait(std::shared_ptr<watcher> w) {
    bool fired;
    {
        std::lock_guard lk(mu_);
        fired = w->fired;
    }
    if (!fired) {
        auto [ec] = co_await w->timer->async_wait(asio::as_tuple(asio::use_awaitable));
        (void)ec;
    }
    unwatch(w);
}

void engine::unwatch(const std::shared_ptr<watcher>& w) {
    std::lock_guard lk(mu_);
    auto [b, e] = watchers_.equal_range(w->id);
    for (auto it = b; it != e; ++it)
        if (it->second == w) {
            watchers_.erase(it);
            break;
        }
}

void engine::notify(const std::string& id) {
    std::vector<std::shared_ptr<asio::steady_timer>> wake;
    {
        std::lock_guard lk(mu_);
        auto [b, e] = watchers_.equal_range(id);
        for (auto it = b; it != e; ++it) {
            it->second->fired = true;
            wake.push_back(it->second->timer);
        }
    }
    for (auto& t : wake)
        asio::post(t->get_executor(), [t] { t->cancel(); });
}

// ------------------------------------------------------------------------------------------------
// delivery

store::millis engine::backoff(int attempt) const {
    thread_local std::mt19937 rng{std::random_device{}()};
    double d = cfg_.retry_base_ms;
    for (int i = 1; i < attempt && d < cfg_.retry_max_ms; ++i)
        d *= 2;
    if (d > cfg_.retry_max_ms)
        d = cfg_.retry_max_ms;
    std::uniform_real_distribution<double> jitter(0.8, 1.2);
    return static_cast<store::millis>(d * jitter(rng));
}

std::vector<bool> engine::claim(const std::vector<pending_delivery>& ds) {
    std::vector<bool> out(ds.size(), false);
    std::lock_guard lk(mu_);
    for (std::size_t i = 0; i < ds.size(); ++i) {
        if (in_flight_.size() >= max_in_flight)
            break;
        out[i] = in_flight_.insert(std::get<0>(ds[i])).second;
    }
    return out;
}

void engine::release(const std::vector<pending_delivery>& ds, std::vector<bool>& claimed) {
    std::lock_guard lk(mu_);
    for (std::size_t i = 0; i < ds.size(); ++i)
        if (claimed[i]) {
            unclaim_locked(std::get<0>(ds[i]));
            claimed[i] = false;
        }
}

void engine::dispatch(job j) {
    std::shared_ptr<adapter> a;
    std::map<std::string, std::string> options;
    {
        std::lock_guard lk(mu_);
        // Bounded: beyond max_in_flight the message stays 'routed' in the store and the scanner
        // hands it over once deliveries complete (the adapters' own queues never overflow).
        // A job the scanner claimed is already in in_flight_ (and counted in its size).
        if (stopped_ || draining_ ||
            (!j.claimed && (in_flight_.count(j.id) || in_flight_.size() >= max_in_flight))) {
            if (j.claimed) {
                unclaim_locked(j.id);
            }
            return;
        }
        auto it = adapters_.find(j.adapter);
        if (it == adapters_.end()) {
            log::warn("deliver.no-adapter", {{"id", j.id}, {"adapter", j.adapter}});
            if (j.claimed) {
                unclaim_locked(j.id);
            }
            return;
        }
        a = it->second;
        in_flight_.insert(j.id);
        for (auto& r : routing_->rules.rules)
            if (r.id == j.rule) {
                options = r.options;
                break;
            }
    }
    delivery d;
    d.id = j.id;
    d.facts = std::move(j.facts);  // on_result needs only the job's id, route and attempt
    d.document = j.document;
    d.attempt = j.attempt;
    d.route_options = std::move(options);
    // The outcome is handled where the adapter reports it: posting it to the strand first cost an
    // I/O thread's wake-up per message (issue 3's profile) and protected nothing on_result uses.
    a->deliver(std::move(d), [this, j = std::move(j), a](delivery_result r) mutable {
        on_result(std::move(j), std::move(r));
    });
}

void engine::on_result(job j, delivery_result r) {
    {
        std::lock_guard lk(mu_);
        if (stopped_) {
            unclaim_locked(j.id);
            return;  // left as routed/failed: delivered again after a restart (at least once)
        }
    }
    int max_attempts = cfg_.max_attempts;
    if (auto rs = routing(); rs) {
        for (auto& rule : rs->rules.rules)
            if (rule.id == j.rule) {
                auto it = rule.options.find("max-attempts");
                if (it != rule.options.end())
                    max_attempts = std::max(1, std::atoi(it->second.c_str()));
            }
    }
    using o = delivery_result::outcome;
    std::string id = j.id;
    std::string detail = r.detail;
    store::write_op op;
    const char* what = "";
    // Per message: delivered and waiting are debug, a retry info, giving up warn (README, "Logs").
    log::level lv = log::level::debug;
    switch (r.o) {
    case o::delivered:
        what = "delivered";
        op = [id, detail, a = j.adapter, attempt = j.attempt](store::write_txn& t) -> result<void> {
            auto ch = t.set_delivered_state(id, "Acknowledged", attempt, {store::state::routed, store::state::failed},
                                            "delivered by " + a + (detail.empty() ? "" : ": " + detail));
            if (!ch)
                return ch.error();
            return {};
        };
        break;
    case o::waiting:
        what = "waiting";
        op = [id, a = j.adapter](store::write_txn& t) -> result<void> {
            auto ch = t.set_state_if(id, store::state::waiting, {store::state::routed, store::state::failed},
                                     "waiting for pick-up via " + a);
            if (!ch)
                return ch.error();
            return {};
        };
        break;
    case o::retriable:
    case o::permanent: {
        bool dead = r.o == o::permanent || j.attempt >= max_attempts;
        what = dead ? "dead" : "retry";
        lv = dead ? log::level::warn : log::level::info;
        store::millis next = store::now_ms() + backoff(j.attempt);
        int attempts = j.attempt;
        std::string why = (r.o == o::permanent ? "permanent failure: " : "attempt " + std::to_string(attempts) + ": ") +
                          detail;
        if (dead && r.o != o::permanent)
            why += " (gave up after " + std::to_string(attempts) + " attempts)";
        op = [id, attempts, next, why, dead](store::write_txn& t) -> result<void> {
            if (auto e = t.set_delivery(id, attempts, dead ? 0 : next, why); !e)
                return e.error();
            auto ch = t.set_state_if(id, dead ? store::state::dead : store::state::failed,
                                     {store::state::routed, store::state::failed}, why);
            if (!ch)
                return ch.error();
            return {};
        };
        break;
    }
    }
    log::emit(lv, "deliver", {{"id", id}, {"adapter", j.adapter}, {"outcome", what}, {"detail", detail},
                              {"attempt", std::to_string(j.attempt)}});
    store::millis latency = r.o == o::delivered && j.received_at ? store::now_ms() - j.received_at : 0;
    auto done = [this, id, what, rule = j.rule, adapter = j.adapter, latency](result<void> res) {
        if (!res)
            log::error("deliver.store-failed", {{"id", id}, {"reason", res.error().message}});
        else if (observer_)
            observer_->delivery(what, rule, adapter, latency);
        {
            std::lock_guard lk(mu_);
            unclaim_locked(id);
        }
        notify(id);
    };
    if (auto s = store_.submit(std::move(op), done); !s) {
        // The store is saturated or failed: the message keeps its old state and the scanner
        // delivers it again later (at least once; receivers de-duplicate on MsgId).
        log::warn("deliver.store-busy", {{"id", id}, {"reason", s.error().message}});
        std::lock_guard lk(mu_);
        unclaim_locked(id);
    }
}

void engine::scan() {
    {
        std::lock_guard lk(mu_);
        if (stopped_ || draining_)
            return;
    }
    auto& rd = store_.thread_reader();
    auto due = rd.due_for_delivery(store::now_ms(), 2048);
    if (due) {
        const store::millis now = store::now_ms();
        for (auto& stale : *due) {
            // 'due' is a snapshot: a delivery that intake started may have finished (and committed
            // 'delivered', and left in_flight_) since it was read, and would be delivered twice.
            // So claim the id first, then read its row again: any delivery that completed before
            // the claim is in that read; one intake starts after the claim sees the claim and
            // leaves the message to us (found by the benchmark's receiver, issue 3).
            {
                std::lock_guard lk(mu_);
                if (in_flight_.count(stale.id))
                    continue;
                in_flight_.insert(stale.id);
            }
            auto release = [&] {
                std::lock_guard lk(mu_);
                unclaim_locked(stale.id);
            };
            auto fresh = rd.get(stale.id);
            if (!fresh || !*fresh ||
                ((*fresh)->state != std::string_view(store::state::routed) &&
                 (*fresh)->state != std::string_view(store::state::failed)) ||
                (*fresh)->adapter.empty() || (*fresh)->next_attempt_at > now) {
                release();
                continue;
            }
            const store::message_row& row = **fresh;
            auto body = rd.body(row.id);
            if (!body && body.error().code == "store.corrupt") {
                // The stored document is damaged or gone (body log, store/body_log.hpp): no later
                // scan can deliver it, so it goes to the dead letters with the reason, where
                // `messages dead` and the metrics show it (and `resend` once it is repaired).
                // attempts as they were: no new attempt was made.
                job dead{row.id, row.adapter, row.rule, row.attempts, {}, nullptr, row.received_at, true};
                on_result(std::move(dead), delivery_result{delivery_result::outcome::permanent,
                                                           "the stored document cannot be read: " +
                                                               body.error().message,
                                                           {}});
                continue;
            }
            if (!body || !*body) {
                if (!body)
                    log::warn("scan.body-unreadable", {{"id", row.id}, {"reason", body.error().message}});
                release();
                continue;
            }
            auto doc = std::make_shared<const std::string>(std::move(**body));
            xml::validation_result vr = xml::thread_validator().parse_only(*doc, row.id);
            dispatch(job{row.id, row.adapter, row.rule, row.attempts + 1, vr.facts, doc, row.received_at, true});
        }
    } else {
        log::warn("scan.failed", {{"reason", due.error().message}});
    }
    schedule_scan();
}

void engine::schedule_scan() {
    scan_timer_.expires_after(std::chrono::milliseconds(cfg_.delivery_scan_ms));
    scan_timer_.async_wait([this](boost::system::error_code ec) {
        if (!ec)
            scan();
    });
}

// ------------------------------------------------------------------------------------------------
// synchronous requests (helsenorge _sync / _syncreply)

void engine::sync_request(std::string document, std::string source, std::chrono::milliseconds timeout,
                          sync_handler done) {
    auto doc = std::make_shared<const std::string>(std::move(document));
    auto cb = std::make_shared<sync_handler>(std::move(done));
    auto fail = [cb](std::string code, std::string message) {
        if (*cb)
            (*cb)(error{std::move(code), std::move(message)});
    };
    auto route_it = [this, doc, cb, fail, source = std::move(source), timeout]() {
        xml::validation_result vr = xml::thread_validator().parse_only(*doc, "sync");
        if (vr.v != xml::verdict::valid)
            return fail(xml::apprec_code(vr.v), "the synchronous request is not well-formed XML");
        auto rs = routing();
        routing::decision d = routing::route(rs->rules, rs->registry, vr.facts);
        if (d.k == routing::decision::kind::unknown_receiver || d.k == routing::decision::kind::cannot_receive)
            return fail("E21", d.reason);
        if (d.k != routing::decision::kind::routed)
            return fail("unroutable", d.reason);
        // A route may answer synchronous requests through another instance than its async
        // deliveries (rule option sync-adapter), e.g. an EPJ's own AMQP queues next to http-push.
        std::map<std::string, std::string> options = d.matched ? d.matched->options : std::map<std::string, std::string>{};
        std::string name = option_or(options, "sync-adapter", d.adapter);
        std::shared_ptr<adapter> a;
        {
            std::lock_guard lk(mu_);
            if (stopped_)
                return fail("shutting-down", "the broker is stopping");
            auto it = adapters_.find(name);
            if (it != adapters_.end())
                a = it->second;
        }
        if (!a)
            return fail("unroutable", "adapter '" + name + "' is not configured");
        delivery dl;
        dl.id = apprec::new_uuid();
        dl.facts = vr.facts;
        dl.document = doc;
        dl.route_options = std::move(options);
        log::info("sync", {{"id", dl.id},
                           {"type", vr.facts.msg_type},
                           {"sender", vr.facts.sender.lowest_her()},
                           {"receiver", vr.facts.receiver.lowest_her()},
                           {"adapter", name},
                           {"source", source}});
        a->request(std::move(dl), timeout, std::move(*cb));
    };
    asio::post(ex_, std::move(route_it));
}

} // namespace broker
