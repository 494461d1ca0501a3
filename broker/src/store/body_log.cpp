#include "store/body_log.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>

#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

namespace broker::store::detail {
namespace {

// ------------------------------------------------------------------------------------------------
// CRC-32C

constexpr std::uint32_t castagnoli_reflected = 0x82F63B78u;

constexpr std::array<std::uint32_t, 256> make_table() {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
        std::uint32_t c = i;
        for (int k = 0; k < 8; ++k)
            c = (c & 1) ? (c >> 1) ^ castagnoli_reflected : c >> 1;
        t[i] = c;
    }
    return t;
}
constexpr std::array<std::uint32_t, 256> crc_table = make_table();

std::uint32_t crc_bytes(std::uint32_t c, const unsigned char* p, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i)
        c = crc_table[(c ^ p[i]) & 0xFFu] ^ (c >> 8);
    return c;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define EDB_CRC32C_HW 1
__attribute__((target("sse4.2"))) std::uint32_t crc_hw(std::uint32_t c, const unsigned char* p, std::size_t n) {
    std::uint64_t c64 = c;
    for (; n >= 8; n -= 8, p += 8) {
        std::uint64_t w;
        std::memcpy(&w, p, 8);
        c64 = __builtin_ia32_crc32di(c64, w);
    }
    auto c32 = static_cast<std::uint32_t>(c64);
    for (; n > 0; --n, ++p)
        c32 = __builtin_ia32_crc32qi(c32, *p);
    return c32;
}
// __builtin_cpu_init first: this runs as a static initialiser, perhaps before libgcc's own.
const bool have_sse42 = (__builtin_cpu_init(), __builtin_cpu_supports("sse4.2"));
#endif

// ------------------------------------------------------------------------------------------------
// files

error io_error(const std::string& what, int err) {
    return error("store.io", "body log: " + what + ": " + std::strerror(err));
}

void put_u32(std::string& out, std::uint32_t v) {
    for (int i = 0; i < 4; ++i)
        out.push_back(static_cast<char>((v >> (8 * i)) & 0xFFu));
}

std::uint32_t get_u32(const char* p) {
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i)
        v |= static_cast<std::uint32_t>(static_cast<unsigned char>(p[i])) << (8 * i);
    return v;
}

/// fsync a file or folder by name ('what': "folder" or "segment", for the error).
result<void> sync_path(const std::string& path, int flags, const char* what) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | flags);
    if (fd < 0)
        return io_error(std::string("open ") + what + " " + path, errno);
    int rc = ::fsync(fd);
    int err = errno;
    ::close(fd);
    if (rc != 0)
        return io_error(std::string("sync ") + what + " " + path, err);
    return {};
}

/// fsync a folder, so that the entries created in it survive a power loss.
result<void> sync_dir(const std::string& dir) { return sync_path(dir, O_DIRECTORY, "folder"); }

/// The segment number of a file name "NNNNNNNN.seg", or 0.
std::int64_t segment_of(const std::string& name) {
    constexpr std::string_view ext = ".seg";
    if (name.size() <= ext.size() || name.compare(name.size() - ext.size(), ext.size(), ext) != 0)
        return 0;
    std::int64_t n = 0;
    const char* end = name.data() + name.size() - ext.size();
    auto [p, ec] = std::from_chars(name.data(), end, n);
    return ec == std::errc() && p == end && n > 0 ? n : 0;
}

} // namespace

std::uint32_t crc32c_portable(std::string_view data) {
    return ~crc_bytes(~0u, reinterpret_cast<const unsigned char*>(data.data()), data.size());
}

std::uint32_t crc32c(std::string_view data) {
#ifdef EDB_CRC32C_HW
    if (have_sse42)
        return ~crc_hw(~0u, reinterpret_cast<const unsigned char*>(data.data()), data.size());
#endif
    return crc32c_portable(data);
}

std::string body_log_dir(const std::string& db_path) { return db_path + "-bodies"; }

std::string segment_path(const std::string& dir, std::int64_t segment) {
    char name[32];
    std::snprintf(name, sizeof name, "/%08lld.seg", static_cast<long long>(segment));
    return dir + name;
}

std::vector<std::int64_t> list_segments(const std::string& dir) {
    std::vector<std::int64_t> out;
    std::error_code ec;
    for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
        if (std::int64_t n = segment_of(it->path().filename().string()); n > 0)
            out.push_back(n);
    std::sort(out.begin(), out.end());
    return out;
}

result<void> sync_segment(const std::string& dir, std::int64_t segment) {
    return sync_path(segment_path(dir, segment), 0, "segment");
}

std::int64_t body_log_bytes(const std::string& dir) {
    std::int64_t total = 0;
    for (std::int64_t n : list_segments(dir)) {
        std::error_code ec;
        auto sz = std::filesystem::file_size(segment_path(dir, n), ec);
        if (!ec)
            total += static_cast<std::int64_t>(sz);
    }
    return total;
}

result<std::string> read_body(const std::string& dir, std::string_view id, const body_ref& ref) {
    const std::string path = segment_path(dir, ref.segment);
    const std::int64_t header = record_fixed_header + static_cast<std::int64_t>(id.size());
    const std::string where = path + " at offset " + std::to_string(ref.offset);
    if (ref.offset < header || ref.length < 0)
        return error("store.corrupt", "the row of message " + std::string(id) + " names no record (" + where + ")");
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        if (err == ENOENT)
            return error("store.corrupt", "the body of message " + std::string(id) + " is missing: no file " + path);
        return io_error("open " + path, err);
    }
    // A row that names more than the file holds is answered before anything is allocated for it.
    struct stat st {};
    if (::fstat(fd, &st) == 0 && ref.offset + ref.length > static_cast<std::int64_t>(st.st_size)) {
        ::close(fd);
        return error("store.corrupt", "the body of message " + std::string(id) + " is cut short (" + where + ")");
    }
    std::string rec(static_cast<std::size_t>(header + ref.length), '\0');
    std::size_t got = 0;
    while (got < rec.size()) {
        ssize_t n = ::pread(fd, rec.data() + got, rec.size() - got, ref.offset - header + static_cast<off_t>(got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int err = errno;
            ::close(fd);
            return io_error("read " + where, err);
        }
        if (n == 0)
            break;
        got += static_cast<std::size_t>(n);
    }
    ::close(fd);
    if (got < rec.size())
        return error("store.corrupt", "the body of message " + std::string(id) + " is cut short (" + where + ")");
    const char* h = rec.data();
    const std::size_t id_len = static_cast<unsigned char>(h[12]) | (static_cast<std::size_t>(static_cast<unsigned char>(h[13])) << 8);
    if (get_u32(h) != record_magic || get_u32(h + 4) != static_cast<std::uint32_t>(ref.length) ||
        get_u32(h + 8) != ref.crc || id_len != id.size() ||
        std::string_view(h + record_fixed_header, id_len) != id)
        return error("store.corrupt", "the body of message " + std::string(id) + " is not where its row says (" + where + ")");
    rec.erase(0, static_cast<std::size_t>(header));
    if (crc32c(rec) != ref.crc)
        return error("store.corrupt", "the body of message " + std::string(id) + " fails its CRC (" + where + ")");
    return rec;
}

// ------------------------------------------------------------------------------------------------
// body_log_writer

body_log_writer::body_log_writer(std::string dir, bool sync, std::int64_t segment_bytes)
    : dir_(std::move(dir)), sync_(sync), segment_bytes_(segment_bytes) {}

body_log_writer::~body_log_writer() {
    if (sync_thread_.joinable()) {
        {
            std::lock_guard lk(sync_mu_);
            sync_stop_ = true;
        }
        sync_cv_.notify_all();
        sync_thread_.join();
    }
    if (fd_ >= 0)
        ::close(fd_);
}

void body_log_writer::run_sync_thread() {
    ::pthread_setname_np(::pthread_self(), "edb-body-sync");
    std::unique_lock lk(sync_mu_);
    for (;;) {
        sync_cv_.wait(lk, [&] { return sync_stop_ || (sync_fd_ >= 0 && !sync_done_); });
        if (sync_fd_ < 0 || sync_done_)
            return;  // stopping with nothing asked
        const int fd = sync_fd_;
        lk.unlock();
        const int rc = ::fdatasync(fd);
        const int err = rc == 0 ? 0 : errno;
        lk.lock();
        sync_errno_ = err;
        sync_done_ = true;
        sync_cv_.notify_all();
    }
}

result<void> body_log_writer::write_and_start_sync() {
    if (fd_ < 0)
        return {};
    if (auto r = write_pending(); !r)
        return r;
    if (!sync_ || !unsynced_)
        return {};
    {
        std::lock_guard lk(sync_mu_);
        sync_fd_ = fd_;
        sync_done_ = false;
    }
    if (!sync_thread_.joinable())
        sync_thread_ = std::thread([this] { run_sync_thread(); });
    sync_cv_.notify_all();
    return {};
}

result<void> body_log_writer::finish_sync() {
    std::unique_lock lk(sync_mu_);
    if (sync_fd_ < 0)
        return {};  // nothing was started
    sync_cv_.wait(lk, [&] { return sync_done_; });
    sync_fd_ = -1;
    if (sync_errno_ != 0)
        return io_error("sync " + segment_path(dir_, segment_), sync_errno_);
    unsynced_ = false;
    return {};
}

void body_log_writer::reset() {
    pending_.clear();
    positioned_ = false;
    last_start_ = -1;
}

result<void> body_log_writer::open_segment(std::int64_t segment) {
    if (fd_ >= 0 && segment_ == segment) {
        // Still the file of that name? (A sweep never deletes a segment a writer appends to; this
        // guards against anything else that removed it.)
        struct stat st {};
        if (::fstat(fd_, &st) == 0 && st.st_nlink > 0)
            return {};
    }
    if (fd_ >= 0) {
        ::close(fd_);
        fd_ = -1;
    }
    std::error_code ec;
    if (std::filesystem::create_directory(dir_, ec) && sync_) {
        std::string parent = std::filesystem::path(dir_).parent_path().string();
        if (auto r = sync_dir(parent.empty() ? "." : parent); !r)
            return r;
    }
    if (ec)
        return error("store.io", "body log: cannot create folder " + dir_ + ": " + ec.message());
    const std::string path = segment_path(dir_, segment);
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0)
        return io_error("open " + path, errno);
    segment_ = segment;
    unsynced_ = false;
    // The file's entry in the folder must be on the disk before a commit names it: once per
    // segment and process (a file another process created is synced again: cheap, and safe).
    if (sync_ && std::find(dir_synced_.begin(), dir_synced_.end(), segment) == dir_synced_.end()) {
        if (auto r = sync_dir(dir_); !r)
            return r;
        dir_synced_.push_back(segment);
    }
    return {};
}

result<void> body_log_writer::position(body_log_pos at, body_log_pos floor) {
    std::int64_t segment = at.segment;
    std::int64_t end = at.end;
    if (segment <= 0 || at < floor) {
        // The database names no body (or none up to the synced mark: the newest were deleted): a
        // new segment after every file present, so that nothing appended now can land in a file
        // that a finished prune is about to delete, nor below the mark.
        auto present = list_segments(dir_);
        segment = std::max(present.empty() ? 0 : present.back(), floor.segment) + 1;
        end = 0;
    }
    if (auto r = open_segment(segment); !r)
        return r;
    next_ = end;
    pending_at_ = end;
    pending_.clear();
    positioned_ = true;
    return {};
}

result<body_ref> body_log_writer::append(std::string_view id, std::string_view body) {
    if (id.size() > 0xFFFF || body.size() > 0xFFFFFFFFu)
        return error("store.invalid", "body log: message id or body too long for a record");
    const std::int64_t header = record_fixed_header + static_cast<std::int64_t>(id.size());
    const std::int64_t size = header + static_cast<std::int64_t>(body.size());
    if (next_ > 0 && next_ + size > segment_bytes_) {
        // This segment is full: what it holds of this transaction goes out now, then a new one.
        if (auto r = write_pending(); !r)
            return r.error();
        if (auto r = sync_current(); !r)
            return r.error();
        if (auto r = open_segment(segment_ + 1); !r)
            return r.error();
        next_ = 0;
        pending_at_ = 0;
    }
    last_start_ = next_;
    body_ref ref;
    ref.segment = segment_;
    ref.offset = next_ + header;
    ref.length = static_cast<std::int64_t>(body.size());
    ref.crc = crc32c(body);
    pending_.reserve(pending_.size() + static_cast<std::size_t>(size));
    put_u32(pending_, record_magic);
    put_u32(pending_, static_cast<std::uint32_t>(body.size()));
    put_u32(pending_, ref.crc);
    pending_.push_back(static_cast<char>(id.size() & 0xFFu));
    pending_.push_back(static_cast<char>(id.size() >> 8));
    pending_.append(id);
    pending_.append(body);
    next_ += size;
    return ref;
}

void body_log_writer::take_back(const body_ref& r) {
    // Only the last record, while it is still in the buffer; anything else stays in the file as
    // a record that nothing names (harmless).
    if (r.segment != segment_ || r.offset + r.length != next_ || last_start_ < pending_at_)
        return;
    pending_.resize(static_cast<std::size_t>(last_start_ - pending_at_));
    next_ = last_start_;
}

result<void> body_log_writer::write_pending() {
    std::size_t done = 0;
    while (done < pending_.size()) {
        ssize_t n = ::pwrite(fd_, pending_.data() + done, pending_.size() - done,
                             static_cast<off_t>(pending_at_) + static_cast<off_t>(done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return io_error("write " + segment_path(dir_, segment_), errno);
        done += static_cast<std::size_t>(n);
    }
    if (done > 0)
        unsynced_ = true;
    pending_at_ += static_cast<std::int64_t>(done);
    pending_.clear();
    return {};
}

result<void> body_log_writer::sync_current() {
    if (!sync_ || !unsynced_)
        return {};
    if (::fdatasync(fd_) != 0)
        return io_error("sync " + segment_path(dir_, segment_), errno);
    unsynced_ = false;
    return {};
}

} // namespace broker::store::detail
