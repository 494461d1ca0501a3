// Prometheus text exposition format 0.0.4: "# HELP", "# TYPE", then name{labels} value lines.
#include "admin/metrics.hpp"

#include <cstdio>
#include <sstream>

namespace broker::admin {

namespace {

/// Label values escaped as the format asks (backslash, double quote, newline).
std::string esc(std::string_view v) {
    std::string out;
    out.reserve(v.size());
    for (char c : v) {
        if (c == '\\' || c == '"')
            out += '\\', out += c;
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
    return out;
}

std::string num(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.9g", v);
    return buf;
}

void head(std::ostringstream& o, const char* name, const char* type, const char* help) {
    o << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n';
}

} // namespace

void metrics::intake(std::string_view state, std::string_view rule, std::string_view adapter,
                     std::string_view code) {
    std::lock_guard lk(mu_);
    if (state == store::state::rejected)
        ++rejected_[{std::string(rule), std::string(adapter), std::string(code.empty() ? "unknown" : code)}];
    else if (state == store::state::unroutable)
        ++unroutable_;
    else
        ++routes_[{std::string(rule), std::string(adapter)}].in;
}

void metrics::delivery(std::string_view outcome, std::string_view rule, std::string_view adapter,
                       store::millis latency_ms) {
    std::lock_guard lk(mu_);
    auto& c = routes_[{std::string(rule), std::string(adapter)}];
    if (outcome == "delivered") {
        ++c.out;
        double s = static_cast<double>(latency_ms < 0 ? 0 : latency_ms) / 1000.0;
        for (std::size_t i = 0; i < latency_buckets.size(); ++i)
            if (s <= latency_buckets[i]) {
                ++c.buckets[i];
                break;
            }
        ++c.latency_count;
        c.latency_sum += s;
    } else if (outcome == "waiting") {
        ++c.waiting;
    } else if (outcome == "retry") {
        ++c.retries;
    } else if (outcome == "dead") {
        ++c.dead;
    }
}

std::string metrics::render(store::store& st, std::size_t parties, std::size_t rules) const {
    std::ostringstream o;
    std::map<key, route_counters> routes;
    std::map<std::tuple<std::string, std::string, std::string>, std::uint64_t> rejected;
    std::uint64_t unroutable;
    {
        std::lock_guard lk(mu_);
        routes = routes_;
        rejected = rejected_;
        unroutable = unroutable_;
    }
    auto labels = [](const key& k) { return "rule=\"" + esc(k.first) + "\",adapter=\"" + esc(k.second) + "\""; };
    auto per_route = [&](const char* name, const char* help, std::uint64_t route_counters::*field) {
        head(o, name, "counter", help);
        for (auto& [k, c] : routes)
            o << name << '{' << labels(k) << "} " << c.*field << '\n';
    };
    per_route("edibroker_messages_in_total", "Messages accepted at intake and routed, per route and adapter.",
              &route_counters::in);
    per_route("edibroker_messages_out_total", "Messages delivered (transport acknowledged or fetched), per route and adapter.",
              &route_counters::out);
    per_route("edibroker_messages_waiting_total", "Messages put in a pull inbox to wait for pick-up.",
              &route_counters::waiting);
    per_route("edibroker_delivery_retries_total", "Delivery attempts that failed and will be retried.",
              &route_counters::retries);
    per_route("edibroker_messages_dead_total", "Messages given up (permanent failure or attempts exhausted).",
              &route_counters::dead);
    head(o, "edibroker_messages_rejected_total", "counter",
         "Messages rejected at intake, per route and adapter (empty when refused before routing) and error code.");
    for (auto& [k, n] : rejected)
        o << "edibroker_messages_rejected_total{" << labels({std::get<0>(k), std::get<1>(k)}) << ",code=\""
          << esc(std::get<2>(k)) << "\"} " << n << '\n';
    head(o, "edibroker_messages_unroutable_total", "counter", "Valid messages no routing rule matched.");
    o << "edibroker_messages_unroutable_total " << unroutable << '\n';

    head(o, "edibroker_delivery_latency_seconds", "histogram",
         "Time from receipt to delivery, per route and adapter.");
    for (auto& [k, c] : routes) {
        if (c.latency_count == 0)
            continue;
        std::uint64_t cum = 0;
        for (std::size_t i = 0; i < latency_buckets.size(); ++i) {
            cum += c.buckets[i];
            o << "edibroker_delivery_latency_seconds_bucket{" << labels(k) << ",le=\"" << num(latency_buckets[i])
              << "\"} " << cum << '\n';
        }
        o << "edibroker_delivery_latency_seconds_bucket{" << labels(k) << ",le=\"+Inf\"} " << c.latency_count
          << '\n';
        o << "edibroker_delivery_latency_seconds_sum{" << labels(k) << "} " << num(c.latency_sum) << '\n';
        o << "edibroker_delivery_latency_seconds_count{" << labels(k) << "} " << c.latency_count << '\n';
    }

    const store::millis now = store::now_ms();
    auto& rd = st.thread_reader();
    head(o, "edibroker_queue_depth", "gauge",
         "Messages on their way per adapter and state (routed: to deliver, failed: to retry, waiting: in a pull inbox).");
    std::map<std::string, store::millis> oldest;
    if (auto p = rd.pending(); p) {
        for (auto& c : *p) {
            o << "edibroker_queue_depth{adapter=\"" << esc(c.adapter) << "\",state=\"" << esc(c.state) << "\"} "
              << c.count << '\n';
            auto& m = oldest[c.adapter];
            if (m == 0 || (c.oldest_received_at && c.oldest_received_at < m))
                m = c.oldest_received_at;
        }
    }
    head(o, "edibroker_oldest_waiting_message_age_seconds", "gauge",
         "Age of the oldest message not yet delivered, per adapter.");
    for (auto& [a, t] : oldest)
        o << "edibroker_oldest_waiting_message_age_seconds{adapter=\"" << esc(a) << "\"} "
          << num(static_cast<double>(now - t) / 1000.0) << '\n';
    head(o, "edibroker_store_write_queue_depth", "gauge", "Operations queued for the store's writer thread.");
    o << "edibroker_store_write_queue_depth " << st.queue_depth() << '\n';
    const store::writer_stats ws = st.writer_counters();
    head(o, "edibroker_store_commits_total", "counter",
         "Group transactions the store's writer committed (with every write operation of the batch).");
    o << "edibroker_store_commits_total " << ws.commits << '\n';
    head(o, "edibroker_store_write_ops_total", "counter",
         "Write operations in committed transactions (divided by the commits: operations per commit).");
    o << "edibroker_store_write_ops_total " << ws.ops << '\n';
    head(o, "edibroker_store_failed_batches_total", "counter",
         "Group transactions whose BEGIN or COMMIT failed (every operation in them was answered with the error).");
    o << "edibroker_store_failed_batches_total " << ws.failed_batches << '\n';
    head(o, "edibroker_store_largest_batch", "gauge", "Most write operations in one transaction since the start.");
    o << "edibroker_store_largest_batch " << ws.largest_batch << '\n';
    if (auto s = rd.stats(); s) {
        head(o, "edibroker_store_size_bytes", "gauge", "Size of the SQLite database (pages in use).");
        o << "edibroker_store_size_bytes " << s->size_bytes << '\n';
        head(o, "edibroker_store_body_log_bytes", "gauge", "Size of the body log's segment files.");
        o << "edibroker_store_body_log_bytes " << s->body_log_bytes << '\n';
        head(o, "edibroker_store_messages", "gauge", "Messages in the store.");
        o << "edibroker_store_messages " << s->messages << '\n';
        head(o, "edibroker_store_oldest_message_age_seconds", "gauge", "Age of the oldest stored message.");
        o << "edibroker_store_oldest_message_age_seconds "
          << num(s->oldest_received_at ? static_cast<double>(now - s->oldest_received_at) / 1000.0 : 0.0) << '\n';
    }
    head(o, "edibroker_retention_pruned_total", "counter", "Messages deleted by retention.");
    o << "edibroker_retention_pruned_total " << pruned_.load() << '\n';
    head(o, "edibroker_reloads_total", "counter", "Reloads of the rules and registry, by result.");
    o << "edibroker_reloads_total{result=\"ok\"} " << reloads_ok_.load() << '\n';
    o << "edibroker_reloads_total{result=\"refused\"} " << reloads_failed_.load() << '\n';
    head(o, "edibroker_registry_parties", "gauge", "Parties in the address registry in force.");
    o << "edibroker_registry_parties " << parties << '\n';
    head(o, "edibroker_routing_rules", "gauge", "Routing rules in force.");
    o << "edibroker_routing_rules " << rules << '\n';
    return o.str();
}

} // namespace broker::admin
