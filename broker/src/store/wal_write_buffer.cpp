// See wal_write_buffer.hpp. The wrapper follows SQLite's VFS interface (sqlite3_vfs,
// sqlite3_io_methods): a wrapped file is this struct followed by the default VFS's own file.
#include "store/wal_write_buffer.hpp"

#include <sqlite3.h>

#include <cstring>
#include <mutex>
#include <new>
#include <vector>

namespace broker::store::detail {
namespace {

constexpr const char* vfs_name = "edibroker-wal-buffer";

sqlite3_vfs* g_real = nullptr;  // the default VFS at registration
sqlite3_vfs g_vfs{};
sqlite3_io_methods g_methods{};

struct wal_file {
    sqlite3_file base;               // pMethods = &g_methods
    sqlite3_file* real;              // the default VFS's file, right after this struct
    std::vector<char>* buf;          // pending bytes, written at 'buf_off'
    sqlite3_int64 buf_off;
};

constexpr int wal_file_size = (sizeof(wal_file) + 7) / 8 * 8;

wal_file* as_wal(sqlite3_file* f) { return reinterpret_cast<wal_file*>(f); }

/// Writes the pending run (if any) and empties the buffer, also when the write fails: SQLite
/// fails the transaction and writes those frames again.
int flush(wal_file* w) {
    if (w->buf->empty())
        return SQLITE_OK;
    int rc = w->real->pMethods->xWrite(w->real, w->buf->data(), static_cast<int>(w->buf->size()), w->buf_off);
    w->buf->clear();
    return rc;
}

int x_close(sqlite3_file* f) {
    wal_file* w = as_wal(f);
    int rc = flush(w);
    int rc2 = w->real->pMethods ? w->real->pMethods->xClose(w->real) : SQLITE_OK;
    delete w->buf;
    w->buf = nullptr;
    return rc != SQLITE_OK ? rc : rc2;
}

int x_read(sqlite3_file* f, void* out, int n, sqlite3_int64 off) {
    wal_file* w = as_wal(f);
    if (int rc = flush(w); rc != SQLITE_OK)
        return rc;
    return w->real->pMethods->xRead(w->real, out, n, off);
}

int x_write(sqlite3_file* f, const void* in, int n, sqlite3_int64 off) {
    wal_file* w = as_wal(f);
    auto& b = *w->buf;
    const bool follows = !b.empty() && off == w->buf_off + static_cast<sqlite3_int64>(b.size());
    if (!follows || b.size() + static_cast<std::size_t>(n) > static_cast<std::size_t>(wal_buffer_bytes)) {
        if (int rc = flush(w); rc != SQLITE_OK)
            return rc;
        if (n >= wal_buffer_bytes)
            return w->real->pMethods->xWrite(w->real, in, n, off);
        w->buf_off = off;
    }
    const char* p = static_cast<const char*>(in);
    b.insert(b.end(), p, p + n);
    return SQLITE_OK;
}

int x_truncate(sqlite3_file* f, sqlite3_int64 size) {
    wal_file* w = as_wal(f);
    if (int rc = flush(w); rc != SQLITE_OK)
        return rc;
    return w->real->pMethods->xTruncate(w->real, size);
}

int x_sync(sqlite3_file* f, int flags) {
    wal_file* w = as_wal(f);
    if (int rc = flush(w); rc != SQLITE_OK)
        return rc;
    return w->real->pMethods->xSync(w->real, flags);
}

int x_file_size(sqlite3_file* f, sqlite3_int64* size) {
    wal_file* w = as_wal(f);
    if (int rc = flush(w); rc != SQLITE_OK)
        return rc;
    return w->real->pMethods->xFileSize(w->real, size);
}

int x_lock(sqlite3_file* f, int l) { return as_wal(f)->real->pMethods->xLock(as_wal(f)->real, l); }
int x_unlock(sqlite3_file* f, int l) { return as_wal(f)->real->pMethods->xUnlock(as_wal(f)->real, l); }
int x_check_reserved(sqlite3_file* f, int* out) {
    return as_wal(f)->real->pMethods->xCheckReservedLock(as_wal(f)->real, out);
}

int x_file_control(sqlite3_file* f, int op, void* arg) {
    wal_file* w = as_wal(f);
    if (int rc = flush(w); rc != SQLITE_OK)
        return rc;
    return w->real->pMethods->xFileControl(w->real, op, arg);
}

int x_sector_size(sqlite3_file* f) { return as_wal(f)->real->pMethods->xSectorSize(as_wal(f)->real); }
int x_device(sqlite3_file* f) {
    return as_wal(f)->real->pMethods->xDeviceCharacteristics(as_wal(f)->real);
}

// A WAL file is never memory-mapped nor used for shared memory; these forward for completeness.
int x_shm_map(sqlite3_file* f, int pg, int sz, int extend, void volatile** pp) {
    const sqlite3_io_methods* m = as_wal(f)->real->pMethods;
    return m->iVersion >= 2 ? m->xShmMap(as_wal(f)->real, pg, sz, extend, pp) : SQLITE_IOERR_SHMMAP;
}
int x_shm_lock(sqlite3_file* f, int off, int n, int flags) {
    const sqlite3_io_methods* m = as_wal(f)->real->pMethods;
    return m->iVersion >= 2 ? m->xShmLock(as_wal(f)->real, off, n, flags) : SQLITE_IOERR_SHMLOCK;
}
void x_shm_barrier(sqlite3_file* f) {
    const sqlite3_io_methods* m = as_wal(f)->real->pMethods;
    if (m->iVersion >= 2)
        m->xShmBarrier(as_wal(f)->real);
}
int x_shm_unmap(sqlite3_file* f, int del) {
    const sqlite3_io_methods* m = as_wal(f)->real->pMethods;
    return m->iVersion >= 2 ? m->xShmUnmap(as_wal(f)->real, del) : SQLITE_OK;
}
int x_fetch(sqlite3_file* f, sqlite3_int64 off, int n, void** pp) {
    wal_file* w = as_wal(f);
    *pp = nullptr;  // "no mapping": SQLite reads instead
    if (int rc = flush(w); rc != SQLITE_OK)
        return rc;
    return w->real->pMethods->iVersion >= 3 ? w->real->pMethods->xFetch(w->real, off, n, pp) : SQLITE_OK;
}
int x_unfetch(sqlite3_file* f, sqlite3_int64 off, void* p) {
    const sqlite3_io_methods* m = as_wal(f)->real->pMethods;
    return m->iVersion >= 3 ? m->xUnfetch(as_wal(f)->real, off, p) : SQLITE_OK;
}

int x_open(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* f, int flags, int* out_flags) {
    if (!(flags & SQLITE_OPEN_WAL))
        return g_real->xOpen(g_real, name, f, flags, out_flags);  // the default VFS's file as it is
    wal_file* w = as_wal(f);
    w->base.pMethods = nullptr;
    w->real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(f) + wal_file_size);
    w->buf = new (std::nothrow) std::vector<char>();
    if (!w->buf)
        return SQLITE_NOMEM;
    w->buf_off = 0;
    int rc = g_real->xOpen(g_real, name, w->real, flags, out_flags);
    if (rc != SQLITE_OK) {
        // SQLite calls xClose only if pMethods is set; the default VFS cleans up its own file.
        delete w->buf;
        w->buf = nullptr;
        return rc;
    }
    w->base.pMethods = &g_methods;
    return SQLITE_OK;
}

int v_delete(sqlite3_vfs*, const char* n, int sync) { return g_real->xDelete(g_real, n, sync); }
int v_access(sqlite3_vfs*, const char* n, int flags, int* out) { return g_real->xAccess(g_real, n, flags, out); }
int v_full(sqlite3_vfs*, const char* n, int sz, char* out) { return g_real->xFullPathname(g_real, n, sz, out); }
void* v_dlopen(sqlite3_vfs*, const char* n) { return g_real->xDlOpen(g_real, n); }
void v_dlerror(sqlite3_vfs*, int n, char* out) { g_real->xDlError(g_real, n, out); }
void (*v_dlsym(sqlite3_vfs*, void* h, const char* s))(void) { return g_real->xDlSym(g_real, h, s); }
void v_dlclose(sqlite3_vfs*, void* h) { g_real->xDlClose(g_real, h); }
int v_random(sqlite3_vfs*, int n, char* out) { return g_real->xRandomness(g_real, n, out); }
int v_sleep(sqlite3_vfs*, int us) { return g_real->xSleep(g_real, us); }
int v_time(sqlite3_vfs*, double* out) { return g_real->xCurrentTime(g_real, out); }
int v_last_error(sqlite3_vfs*, int n, char* out) { return g_real->xGetLastError(g_real, n, out); }
int v_time64(sqlite3_vfs*, sqlite3_int64* out) { return g_real->xCurrentTimeInt64(g_real, out); }

bool register_vfs() {
    g_real = sqlite3_vfs_find(nullptr);
    if (!g_real || g_real->iVersion < 2)
        return false;
    g_methods.iVersion = 3;
    g_methods.xClose = x_close;
    g_methods.xRead = x_read;
    g_methods.xWrite = x_write;
    g_methods.xTruncate = x_truncate;
    g_methods.xSync = x_sync;
    g_methods.xFileSize = x_file_size;
    g_methods.xLock = x_lock;
    g_methods.xUnlock = x_unlock;
    g_methods.xCheckReservedLock = x_check_reserved;
    g_methods.xFileControl = x_file_control;
    g_methods.xSectorSize = x_sector_size;
    g_methods.xDeviceCharacteristics = x_device;
    g_methods.xShmMap = x_shm_map;
    g_methods.xShmLock = x_shm_lock;
    g_methods.xShmBarrier = x_shm_barrier;
    g_methods.xShmUnmap = x_shm_unmap;
    g_methods.xFetch = x_fetch;
    g_methods.xUnfetch = x_unfetch;

    g_vfs.iVersion = 2;
    g_vfs.szOsFile = wal_file_size + g_real->szOsFile;
    g_vfs.mxPathname = g_real->mxPathname;
    g_vfs.zName = vfs_name;
    g_vfs.xOpen = x_open;
    g_vfs.xDelete = v_delete;
    g_vfs.xAccess = v_access;
    g_vfs.xFullPathname = v_full;
    g_vfs.xDlOpen = v_dlopen;
    g_vfs.xDlError = v_dlerror;
    g_vfs.xDlSym = v_dlsym;
    g_vfs.xDlClose = v_dlclose;
    g_vfs.xRandomness = v_random;
    g_vfs.xSleep = v_sleep;
    g_vfs.xCurrentTime = v_time;
    g_vfs.xGetLastError = v_last_error;
    g_vfs.xCurrentTimeInt64 = v_time64;
    return sqlite3_vfs_register(&g_vfs, 0) == SQLITE_OK;
}

} // namespace

const char* wal_write_buffer_vfs() {
    static std::once_flag once;
    static bool ok = false;
    std::call_once(once, [] { ok = register_vfs(); });
    return ok ? vfs_name : nullptr;
}

} // namespace broker::store::detail
