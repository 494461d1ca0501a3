// A SQLite VFS that gathers the store writer's WAL writes into one write per commit.
//
// SQLite writes each WAL frame as two pwrite() calls (the 24-byte frame header, then the page),
// so a commit of n pages costs 2n system calls; under load that was about ten per message, a
// quarter of the writer thread's time on this machine (issue 3's profile). This VFS wraps the
// default one: every file but a WAL is the default VFS's own file, untouched; a WAL file collects
// contiguous writes in a buffer (at most 'wal_buffer_bytes') and writes it with one pwrite() before
// anything else touches the file: a sync, a read, a size or truncate, a file control, a close,
// or a write elsewhere.
//
// Why that is safe: SQLite makes new WAL frames visible to other connections (the wal-index
// header) only after the commit's xSync of the WAL (synchronous=FULL or EXTRA), and the buffer is
// written before that sync; so no other connection can read a frame that is still in memory,
// and an acknowledged commit is on disk exactly as without the buffer. With synchronous=NORMAL or
// OFF there is no sync per commit, so the store only uses this VFS with FULL or EXTRA. A failed
// buffered write is reported by the call that flushes (the commit's sync, typically), which fails
// the transaction as a failed write would.
#pragma once

namespace broker::store::detail {

/// Registers the VFS once (thread-safe) and returns its name for sqlite3_open_v2, or nullptr if
/// it cannot be registered (the caller then opens with the default VFS).
const char* wal_write_buffer_vfs();

/// Largest buffered run; a write that does not fit sends the run first. The default (unix) VFS
/// writes at most 0x1ffff bytes per call (its seekAndWrite masks the length with 0x1ffff, since
/// SQLite itself never writes more at once), so a run stays below that: about 31 frames of 4 KB.
inline constexpr int wal_buffer_bytes = 0x1ffff;

} // namespace broker::store::detail
