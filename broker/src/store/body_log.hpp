// The body log: message bodies in append-only segment files beside the database, instead of in
// SQLite (schema 8).
//
// Why: a 4 KB body stored in SQLite is written twice (its WAL frames, then the checkpointer's copy
// into the database file, a pread and a pwrite per page), and was about half the pages a message
// costs. In the body log it is written once, with the rest of its transaction's bodies in one
// write. Measured on the 2-core VM (issue 3): the checkpointer's CPU per message halved, the peak
// 5-9 % higher.
//
// Layout: folder "<database>-bodies", files "00000001.seg", "00000002.seg", ... Each record is a
// header (record_magic, the body's length and CRC-32C, the message id's length, all little-endian;
// then the id) followed by the body, byte-exact as received. The message's row names the body by
// (body_seg, body_off: where the body starts, size: its length, body_crc).
//
// Durability: the store writer appends a transaction's bodies to a buffer while its operations
// run; before COMMIT it writes the buffer with one pwrite (from then on every process reads them)
// and hands the segment's fdatasync to its sync thread (edb-body-sync), so that it runs while
// SQLite syncs the WAL; the commit counts (and its senders are acknowledged) only when both have
// returned. A machine that stops between the two may leave committed rows whose bodies are not on
// the disk; those messages were never acknowledged. To find them without reading the whole log,
// the database keeps a synced mark (table body_log_synced, schema 9): every body that ends before
// it was synced. Each transaction moves it past the bodies of the transactions before it (whose
// syncs have returned), a clean close past all; so only the last transaction's bodies (per
// writer process) lie past it. Opening the store reads those back under the write lock: a
// message whose body is missing or damaged there is removed (warning store.body-lost; the
// sender's retry is a new message), the others' segments are synced and the mark moves past
// them. Nothing is ever written below the mark (position()). The segment and the folder entry of
// a new segment file are synced too. A crash before COMMIT leaves at most an unreferenced tail that
// the next transaction overwrites. Where to append is read from the database at a transaction's
// first append (the highest (body_seg, body_off + size), index ix_messages_body), inside the write
// transaction: so writers of several processes (the broker and `edibroker messages resend`, say)
// take turns under SQLite's write lock and never need a lock of their own.
// With synchronous=OFF or NORMAL nothing is synced, as SQLite's commits are not, and the mark
// only says what was committed; after a power loss a row may then name a body that is not there,
// which reading reports (store.corrupt).
//
// Retention: after a transaction that pruned messages, the writer deletes every segment file no
// row names, holding SQLite's write lock while it looks (so no writer is appending meanwhile). A
// segment's space comes back only when all of its messages are gone.
#pragma once

#include "broker/error.hpp"

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace broker::store::detail {

/// Where a body is: segment number, offset of its first byte, length, CRC-32C.
struct body_ref {
    std::int64_t segment = 0;
    std::int64_t offset = 0;
    std::int64_t length = 0;
    std::uint32_t crc = 0;
};

/// A place in the log: a segment and an offset in it (ordered as the log grows).
struct body_log_pos {
    std::int64_t segment = 0;
    std::int64_t end = 0;
    auto operator<=>(const body_log_pos&) const = default;
};

inline constexpr std::uint32_t record_magic = 0x31424445;  // "EDB1" as little-endian bytes
/// Bytes of a record's header before its id: magic, body length, CRC, id length.
inline constexpr std::int64_t record_fixed_header = 4 + 4 + 4 + 2;

/// CRC-32C (Castagnoli); the CPU's crc32 instruction where it has SSE 4.2, else a table.
std::uint32_t crc32c(std::string_view data);
/// The table version alone (tests compare the two).
std::uint32_t crc32c_portable(std::string_view data);

/// The body log's folder for the database at 'db_path': "<db_path>-bodies".
std::string body_log_dir(const std::string& db_path);
/// A segment's file in 'dir'.
std::string segment_path(const std::string& dir, std::int64_t segment);
/// The segment numbers of the files in 'dir', ascending (none when it does not exist).
std::vector<std::int64_t> list_segments(const std::string& dir);
/// Sync a segment file that any process wrote (opening the store after a crash). Errors: store.io.
result<void> sync_segment(const std::string& dir, std::int64_t segment);
/// Total bytes of the segment files in 'dir'.
std::int64_t body_log_bytes(const std::string& dir);

/// Read message 'id''s body. Errors: store.corrupt when the record is missing, short, another
/// message's or its CRC differs (the message names the file and offset); store.io otherwise.
/// Runs on: any thread (opens the segment file read-only for the call).
result<std::string> read_body(const std::string& dir, std::string_view id, const body_ref& ref);

/// The writer's side. Used by the store writer's thread only (which hands syncs to a thread of its own).
class body_log_writer {
public:
    /// 'segment_bytes': a segment is closed once the next record would pass it (options::body_segment_bytes).
    body_log_writer(std::string dir, bool sync, std::int64_t segment_bytes);
    ~body_log_writer();
    body_log_writer(const body_log_writer&) = delete;
    body_log_writer& operator=(const body_log_writer&) = delete;

    /// A transaction begins: forget what the last one appended and did not write.
    void reset();
    /// Whether this transaction already knows where to append.
    bool positioned() const { return positioned_; }
    /// Append from 'at': the end of the highest body the database names, or {0, 0} when it names
    /// none. Never below 'floor' (how far the log is known to be synced: what lies below it is
    /// never written again): when 'at' is below it, or {0, 0}, a new segment is started after
    /// the highest file present and floor's segment.
    result<void> position(body_log_pos at, body_log_pos floor);
    /// Append a record (buffered until write_and_start_sync). Requires positioned(). When the segment would grow
    /// past its size, what is buffered is written and synced and a new segment begins.
    result<body_ref> append(std::string_view id, std::string_view body);
    /// Take back the last append (its row was not inserted); only the last one, only before it is written.
    void take_back(const body_ref& r);
    /// Before COMMIT: write the buffered records (after this, every process reads them), then
    /// start their sync on the log's sync thread, to run while SQLite commits. Errors: store.io
    /// (nothing started). Every successful call is followed by finish_sync().
    result<void> write_and_start_sync();
    /// After COMMIT (whatever its outcome): wait for the sync write_and_start_sync() started.
    /// Errors: store.io.
    result<void> finish_sync();
    /// Where this transaction's appends end (after its last record); {0, 0} when it appended nothing.
    body_log_pos end() const { return positioned_ ? body_log_pos{segment_, next_} : body_log_pos{}; }

private:
    result<void> open_segment(std::int64_t segment);
    result<void> write_pending();
    result<void> sync_current();
    void run_sync_thread();

    std::string dir_;
    bool sync_;
    std::int64_t segment_bytes_;
    int fd_ = -1;
    std::int64_t segment_ = 0;       ///< segment of fd_
    bool positioned_ = false;
    std::int64_t next_ = 0;          ///< where the next record starts in segment_
    std::int64_t pending_at_ = 0;    ///< file offset of pending_[0]
    std::int64_t last_start_ = -1;   ///< where the last appended record starts (take_back)
    std::string pending_;            ///< records appended and not written yet
    bool unsynced_ = false;          ///< written to fd_ since its last sync
    std::vector<std::int64_t> dir_synced_;  ///< segments whose directory entry this process has synced

    // The sync thread (started at the first write_and_start_sync). Lock: sync_mu_.
    std::thread sync_thread_;
    std::mutex sync_mu_;
    std::condition_variable sync_cv_;
    int sync_fd_ = -1;          ///< the file to sync; -1: nothing asked
    bool sync_done_ = false;    ///< the asked sync has finished, with sync_errno_
    int sync_errno_ = 0;
    bool sync_stop_ = false;
};

} // namespace broker::store::detail
