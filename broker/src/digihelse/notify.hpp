// Digihelse visit notifications and read notices (issue 6).
//
// Visit notifications: an EPJ reports a home visit as carried out with a VisitNotice (our own
// content format, schemas/visit-notice.xsd) in a MsgHead to the portal. Once intake has stored it,
// the notifier looks up the patient's consents (consent.hpp) and writes one row per (person,
// channel) into the `notifications` table, in one store write: the patient and every relative
// with power of attorney who consented and chose SMS and/or e-mail. Two sender threads (e-mail,
// SMS) take due rows from that table and send them: e-mail over SMTP with libcurl, SMS as a JSON
// POST to the configured gateway; each request is bounded (notify-timeout-ms), failures are
// retried with exponential back-off until notify-max-attempts, and every step is visible in
// GET /Messages/{id}/notifications. The text names only the service and the time.
//
// Read notices: when the receiver of a message marks it read (PUT /Messages/{id}/read/{herId}) and
// the message's sender is one of `read-notice-her-ids` (the portal), the notifier writes a
// ReadNotice (schemas/read-notice.xsd) from the reader to that sender and takes it in like any
// message, so it travels over the portal's own route.
//
// Contact data (addresses, phone numbers) and texts are never logged; log lines carry ids, states
// and counts.
#pragma once

#include "digihelse/consent.hpp"
#include "server/engine.hpp"
#include "server/http_api.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace broker::digihelse {

inline constexpr const char* visit_notice_ns = "urn:edibroker:xmlstds:visit-notice:2026-11-22";
inline constexpr const char* read_notice_ns = "urn:edibroker:xmlstds:read-notice:2026-11-22";
inline constexpr const char* visit_notice_type = "EDIBROKER_BESOK_UTFORT";
inline constexpr const char* read_notice_type = "EDIBROKER_LEST";

/// Notification states (text in the store).
namespace nstate {
inline constexpr const char* queued = "queued";
inline constexpr const char* retrying = "retrying";
inline constexpr const char* sent = "sent";
inline constexpr const char* failed = "failed";
} // namespace nstate

/// What a VisitNotice says (see schemas/visit-notice.xsd).
struct visit_notice {
    std::string visit_id;
    std::string status;          ///< "carried-out"
    std::string patient_id;
    std::string service_her;
    std::string service_name;    ///< as written in the notice ("" if absent)
    std::string carried_out_at;  ///< xs:dateTime with zone, as written
};

/// Read the VisitNotice in a (validated) MsgHead document. Error: notify.not-a-visit-notice.
result<visit_notice> parse_visit_notice(std::string_view document);

/// "2026-11-22T09:15:00Z" -> Norwegian local time (CET/CEST, EU rules) as "22.11.2026 kl. 10:15"
/// (nb) or "22.11.2026 10:15" (en). Error when the text is not a zoned xs:dateTime.
result<std::string> local_time_text(std::string_view xs_datetime, std::string_view language);

/// The notification text: "Et besøk fra <service> ble utført <time>." (nb) or
/// "A visit from <service> was carried out at <time>." (en). Nothing else.
struct notice_text {
    std::string subject;
    std::string body;
};
notice_text visit_text(std::string_view service, std::string_view time_text, std::string_view language);

/// Outcome of one send attempt.
struct send_result {
    enum class outcome { sent, retriable, permanent } o = outcome::retriable;
    std::string detail;  ///< short, never the address or the text: "smtp 550", "connect failed", "http 503"
};

/// Send one e-mail / SMS (blocking, bounded by cfg.notify_timeout_ms; 'stop' aborts).
send_result send_email(const config& cfg, const std::string& notification_id, const std::string& to,
                       const std::string& subject, const std::string& body, const std::atomic<bool>& stop);
send_result send_sms(const config& cfg, const std::string& notification_id, const std::string& to,
                     const std::string& body, const std::atomic<bool>& stop);

/// A ReadNotice MsgHead from the reader (the original's receiver) to the original's sender.
result<std::string> build_read_notice(const store::message_row& original, const std::string& read_by,
                                      store::millis read_at, const routing::address_registry& registry);

class notifier final : public message_listener, public http_extension {
public:
    notifier(const config& cfg, store::store& st, engine& eng, boost::asio::any_io_executor ex);
    ~notifier() override;

    /// Import the consents file, if configured. Errors name the file.
    result<void> init();
    /// Plan what an earlier run left unplanned, then start the sender threads (one per configured
    /// channel).
    void start();
    /// Stop the senders (an SMTP/SMS request under way is aborted and retried after a restart)
    /// and release every request waiting on a notification state. Idempotent.
    void stop();

    // message_listener
    void stored(const std::string& id, const message_facts& f, const std::shared_ptr<const std::string>& document,
                std::string_view state) override;
    void read(const store::message_row& m, const std::string& her_id) override;

    // http_extension: /Consents/{patientId} (GET, PUT, DELETE), /Messages/{id}/notifications (GET)
    boost::asio::awaitable<std::optional<response>> handle(request& req, std::string_view path,
                                                           std::string_view query) override;

private:
    void plan(const std::string& id, const std::shared_ptr<const std::string>& document);
    /// Plan the visit notices a stopped broker stored but did not plan (start()).
    void recover();
    void sender_loop(std::string channel);
    void record(const std::string& channel, const std::string& notification_id, const std::string& message_id,
                int attempts, const send_result& r);
    store::millis backoff(int attempt) const;
    void wake();
    /// Wake the HTTP requests waiting on 'message_id's notifications.
    void changed(const std::string& message_id);
    boost::asio::awaitable<response> consents(request& req, const std::string& patient_id);
    boost::asio::awaitable<response> notifications(const std::string& message_id, std::string_view query);

    config cfg_;
    store::store& store_;
    engine& engine_;
    boost::asio::any_io_executor ex_;
    std::set<std::string, std::less<>> read_notice_to_;

    std::atomic<bool> stopping_{false};
    std::mutex mu_;  // guards wake_seq_, watchers_, stopped_
    std::condition_variable cv_;
    std::uint64_t wake_seq_ = 0;
    bool stopped_ = false;
    std::multimap<std::string, std::shared_ptr<boost::asio::steady_timer>> watchers_;
    std::vector<std::thread> threads_;
};

} // namespace broker::digihelse
