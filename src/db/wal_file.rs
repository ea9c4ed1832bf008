//! Writes each transaction's WAL frames to the file with one system call.
//!
//! SQLite appends a frame to the WAL with two `pwrite`s, one for the 24-byte frame header and
//! one for the page, and a login dirties about two pages. On this kind of machine a `pwrite`
//! costs microseconds of kernel time, most of it fixed per call, whatever its size; the
//! login writer spent a third of its time in them. Handing the frames of a transaction to the
//! kernel as one run of bytes took 8.5 µs a frame down to 0.5 in a measurement of the two
//! write patterns alone.
//!
//! This is a VFS over SQLite's own "unix" one, registered as the default, that differs only
//! in how WAL files take frame writes: it collects them in memory while they arrive in
//! order and writes them out when the frame that commits a transaction is complete. A commit
//! becomes visible to other connections only afterwards (when the writer updates the shared
//! WAL index, which is memory, not this file), so every connection reads exactly what it
//! would have read without this layer. Every other file operation on a WAL file (read,
//! sync, truncate, size, close, file control) writes what is collected first, so the file
//! never looks different from inside either. Any write that does not fit the frame pattern
//! goes straight through. Durability is unchanged: no sync is added or taken away, and
//! nothing collected belongs to a committed transaction.

use std::ffi::{c_int, c_void};
use std::ptr;
use std::sync::OnceLock;

use libsqlite3_sys as ffi;

/// The name this VFS is registered under.
const NAME: &std::ffi::CStr = c"wxlogin-unix";

/// Size of a WAL frame header (the WAL file format).
const FRAME_HEADER: usize = 24;

/// Collected bytes past which they are written out even mid-transaction, so a huge
/// transaction does not hold its whole WAL in memory.
const MAX_PENDING: usize = 1024 * 1024;

/// Most bytes handed to the unix VFS in one write: it writes at most 128 KiB - 1 a call
/// (`seekAndWriteFd` masks the length) and reports a full disk when a whole 128 KiB is
/// asked for.
const MAX_WRITE: usize = 124 * 1024;

/// Makes the WAL-batching VFS SQLite's default, once per process. Connections opened
/// before this call keep the VFS they were opened with.
pub fn install() -> anyhow::Result<()> {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            // SAFETY: registration happens once; the VFS it registers is leaked, so it lives
            // as long as SQLite may call it.
            unsafe { register() }
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// The VFS this one wraps, set once by [`register`].
static REAL: OnceLock<RealVfs> = OnceLock::new();

/// A pointer to the "unix" VFS, which SQLite never frees.
struct RealVfs(*mut ffi::sqlite3_vfs);
// SAFETY: a registered VFS is immutable and SQLite's VFS methods are thread-safe.
unsafe impl Send for RealVfs {}
unsafe impl Sync for RealVfs {}

unsafe fn register() -> Result<(), String> {
    // Multi-thread mode: no mutex around each call on a connection (every bind, step and
    // reset took and left one: 5% of the login writer's instructions). Safe here, as diesel's
    // connections are not `Sync`: one thread at a time uses a connection, which is all this
    // mode asks (rusqlite opens its connections this way too). It must come before SQLite
    // initialises, which the VFS lookup below does; if a connection came first (a test that
    // opens one directly), SQLite refuses and keeps its serialized mode, which is also safe.
    if ffi::sqlite3_config(ffi::SQLITE_CONFIG_MULTITHREAD) != ffi::SQLITE_OK {
        tracing::debug!("SQLite was initialised already; it stays in serialized mode");
    }
    // The page cache, too, is SQLite's to take only before it initialises.
    super::page_cache::install();
    let real = ffi::sqlite3_vfs_find(c"unix".as_ptr());
    if real.is_null() {
        return Err("SQLite has no \"unix\" VFS to build on".into());
    }
    let _ = REAL.set(RealVfs(real));
    // A copy of "unix" with its own name, room for the state of a WAL file in front of the
    // unix file, and its own xOpen. Its other methods are unix's own, which read nothing of
    // the VFS they are given beyond `pAppData` and `mxPathname`, both copied.
    let mut vfs: ffi::sqlite3_vfs = ptr::read(real);
    vfs.zName = NAME.as_ptr();
    vfs.pNext = ptr::null_mut();
    vfs.szOsFile = c_int::try_from(WAL_FILE_HEADER).map_err(|e| e.to_string())? + (*real).szOsFile;
    vfs.xOpen = Some(open);
    let vfs = Box::into_raw(Box::new(vfs));
    match ffi::sqlite3_vfs_register(vfs, 1) {
        ffi::SQLITE_OK => Ok(()),
        rc => Err(format!(
            "registering the WAL-batching VFS failed (SQLite code {rc})"
        )),
    }
}

/// An open WAL file: this state, then (at [`WAL_FILE_HEADER`]) the unix VFS's own file.
#[repr(C)]
struct WalFile {
    /// What SQLite sees; its `pMethods` is [`WAL_METHODS`].
    base: ffi::sqlite3_file,
    /// Frames collected and not yet written, starting at file offset `pending_at`.
    pending: Vec<u8>,
    pending_at: i64,
    /// Where the collected frames stand.
    expect: Expect,
}

#[derive(Clone, Copy, PartialEq)]
enum Expect {
    /// A frame header (or nothing is collected).
    Header,
    /// The page of the frame whose header was just collected; `commits` when that frame
    /// ends a transaction.
    Page { commits: bool },
}

/// Where the unix file starts inside a [`WalFile`] allocation (SQLite aligns it to 8).
const WAL_FILE_HEADER: usize = std::mem::size_of::<WalFile>().next_multiple_of(16);

unsafe fn real_file(file: *mut ffi::sqlite3_file) -> *mut ffi::sqlite3_file {
    file.cast::<u8>().add(WAL_FILE_HEADER).cast()
}

unsafe fn real_methods(real: *mut ffi::sqlite3_file) -> &'static ffi::sqlite3_io_methods {
    &*(*real).pMethods
}

unsafe extern "C" fn open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let Some(RealVfs(real_vfs)) = REAL.get() else {
        return ffi::SQLITE_ERROR;
    };
    let real_open = (**real_vfs).xOpen.expect("the unix VFS opens files");
    if flags & ffi::SQLITE_OPEN_WAL == 0 {
        // Not a WAL file: the unix file itself, with unix's methods.
        return real_open(*real_vfs, name, file, flags, out_flags);
    }
    let real = real_file(file);
    let rc = real_open(*real_vfs, name, real, flags, out_flags);
    if rc != ffi::SQLITE_OK {
        // SQLite calls xClose only on files whose pMethods is set.
        (*file).pMethods = ptr::null();
        return rc;
    }
    ptr::write(
        file.cast::<WalFile>(),
        WalFile {
            base: ffi::sqlite3_file {
                pMethods: &WAL_METHODS,
            },
            pending: Vec::new(),
            pending_at: 0,
            expect: Expect::Header,
        },
    );
    ffi::SQLITE_OK
}

/// Only the version-1 methods: SQLite uses no others on a WAL file (no locks of the
/// shared-memory kind, no memory mapping).
static WAL_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 1,
    xClose: Some(close),
    xRead: Some(read),
    xWrite: Some(write),
    xTruncate: Some(truncate),
    xSync: Some(sync),
    xFileSize: Some(file_size),
    xLock: Some(lock),
    xUnlock: Some(unlock),
    xCheckReservedLock: Some(check_reserved_lock),
    xFileControl: Some(file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: None,
    xShmLock: None,
    xShmBarrier: None,
    xShmUnmap: None,
    xFetch: None,
    xUnfetch: None,
};

/// Writes what is collected. Collected frames belong to the transaction under way, so when
/// this fails the transaction fails with the error, and its frames are dropped.
unsafe fn flush(file: *mut ffi::sqlite3_file) -> c_int {
    let wal = &mut *file.cast::<WalFile>();
    wal.expect = Expect::Header;
    if wal.pending.is_empty() {
        return ffi::SQLITE_OK;
    }
    let real = real_file(file);
    let write = real_methods(real).xWrite.expect("unix writes");
    let mut rc = ffi::SQLITE_OK;
    let mut at = wal.pending_at;
    for chunk in wal.pending.chunks(MAX_WRITE) {
        // A chunk is at most MAX_WRITE bytes, so its length fits a C int.
        let len = c_int::try_from(chunk.len()).unwrap_or(c_int::MAX);
        rc = write(real, chunk.as_ptr().cast(), len, at);
        if rc != ffi::SQLITE_OK {
            break;
        }
        at += i64::from(len);
        #[cfg(test)]
        tests::count_write();
    }
    wal.pending.clear();
    rc
}

unsafe extern "C" fn write(
    file: *mut ffi::sqlite3_file,
    data: *const c_void,
    amount: c_int,
    offset: i64,
) -> c_int {
    let wal = &mut *file.cast::<WalFile>();
    let Ok(len) = usize::try_from(amount) else {
        return ffi::SQLITE_IOERR_WRITE;
    };
    let bytes = std::slice::from_raw_parts(data.cast::<u8>(), len);
    let follows = wal.pending.is_empty()
        || i64::try_from(wal.pending.len()).is_ok_and(|n| wal.pending_at + n == offset);
    let next = match wal.expect {
        _ if !follows => None,
        Expect::Header if len == FRAME_HEADER => Some(Expect::Page {
            // A frame header's second field is the database size for the frame that
            // commits a transaction, zero for every other frame.
            commits: bytes[4..8] != [0; 4],
        }),
        Expect::Page { commits } if len > FRAME_HEADER => {
            wal.pending.extend_from_slice(bytes);
            wal.expect = Expect::Header;
            return if commits || wal.pending.len() >= MAX_PENDING {
                flush(file)
            } else {
                ffi::SQLITE_OK
            };
        }
        _ => None,
    };
    match next {
        Some(expect) => {
            if wal.pending.is_empty() {
                wal.pending_at = offset;
            }
            wal.pending.extend_from_slice(bytes);
            wal.expect = expect;
            ffi::SQLITE_OK
        }
        // Not the next part of a frame (the WAL header, say): straight through, after what
        // came before it.
        None => {
            let rc = flush(file);
            if rc != ffi::SQLITE_OK {
                return rc;
            }
            let real = real_file(file);
            #[cfg(test)]
            tests::count_write();
            (real_methods(real).xWrite.expect("unix writes"))(real, data, amount, offset)
        }
    }
}

unsafe extern "C" fn close(file: *mut ffi::sqlite3_file) -> c_int {
    let flushed = flush(file);
    let real = real_file(file);
    let closed = (real_methods(real).xClose.expect("unix closes"))(real);
    ptr::drop_in_place(ptr::addr_of_mut!((*file.cast::<WalFile>()).pending));
    (*file).pMethods = ptr::null();
    if flushed != ffi::SQLITE_OK {
        flushed
    } else {
        closed
    }
}

/// Defines a method that writes what is collected, then calls unix's own.
macro_rules! after_flush {
    ($name:ident, $method:ident ( $($arg:ident : $ty:ty),* )) => {
        unsafe extern "C" fn $name(file: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> c_int {
            let rc = flush(file);
            if rc != ffi::SQLITE_OK {
                return rc;
            }
            let real = real_file(file);
            (real_methods(real).$method.expect(concat!("unix has ", stringify!($method))))(real $(, $arg)*)
        }
    };
}

/// Defines a method that only calls unix's own.
macro_rules! forward {
    ($name:ident, $method:ident ( $($arg:ident : $ty:ty),* )) => {
        unsafe extern "C" fn $name(file: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> c_int {
            let real = real_file(file);
            (real_methods(real).$method.expect(concat!("unix has ", stringify!($method))))(real $(, $arg)*)
        }
    };
}

after_flush!(read, xRead(data: *mut c_void, amount: c_int, offset: i64));
after_flush!(truncate, xTruncate(size: i64));
after_flush!(sync, xSync(flags: c_int));
after_flush!(file_size, xFileSize(size: *mut i64));
after_flush!(file_control, xFileControl(op: c_int, arg: *mut c_void));
forward!(lock, xLock(level: c_int));
forward!(unlock, xUnlock(level: c_int));
forward!(check_reserved_lock, xCheckReservedLock(out: *mut c_int));
forward!(sector_size, xSectorSize());
forward!(device_characteristics, xDeviceCharacteristics());

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use diesel::connection::SimpleConnection;
    use diesel::{Connection, QueryableByName, RunQueryDsl};

    use crate::db::DbConnection;

    thread_local! {
        /// Writes to WAL files made by this thread.
        static WRITES: Cell<u64> = const { Cell::new(0) };
    }

    pub(super) fn count_write() {
        WRITES.with(|w| w.set(w.get() + 1));
    }

    fn writes() -> u64 {
        WRITES.with(Cell::get)
    }

    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        total: i64,
    }

    fn open(path: &std::path::Path) -> DbConnection {
        super::install().unwrap();
        let mut conn = DbConnection::establish(path.to_str().unwrap()).unwrap();
        conn.batch_execute(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;",
        )
        .unwrap();
        conn
    }

    fn count(conn: &mut DbConnection) -> (i64, i64) {
        let row = diesel::sql_query("SELECT COUNT(*) AS n, COALESCE(SUM(v), 0) AS total FROM t")
            .get_result::<Row>(conn)
            .unwrap();
        (row.n, row.total)
    }

    /// Inserts `rows` rows of `size` bytes in one transaction; returns the WAL writes it took.
    fn insert(conn: &mut DbConnection, rows: i64, size: usize) -> u64 {
        let before = writes();
        conn.batch_execute(&format!(
            "BEGIN IMMEDIATE;
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
             INSERT INTO t (v, pad) SELECT 1, randomblob({size}) FROM n;
             COMMIT;"
        ))
        .unwrap();
        writes() - before
    }

    #[test]
    fn a_transaction_s_frames_reach_the_wal_in_one_write() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open(&dir.path().join("one.db"));
        conn.batch_execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER, pad BLOB)")
            .unwrap();
        // About 25 pages of rows: 100 KiB of frames.
        let took = insert(&mut conn, 100, 1000);
        assert_eq!(took, 1, "25 frames took {took} writes");
        // About 250 pages: 1 MiB of frames, written 124 KiB at a time.
        let took = insert(&mut conn, 1000, 1000);
        assert!(took <= 10, "250 frames took {took} writes");
    }

    #[test]
    fn other_connections_see_every_commit_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seen.db");
        let mut writer = open(&path);
        writer
            .batch_execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER, pad BLOB)")
            .unwrap();
        let mut reader = open(&path);
        let mut expected = 0;
        // Small and large transactions, the large ones past the collecting limit.
        for (rows, size) in [(1, 10), (3, 3000), (700, 1000), (2, 100), (1500, 1000)] {
            insert(&mut writer, rows, size);
            expected += rows;
            assert_eq!(count(&mut reader), (expected, expected));
        }
        // A transaction rolled back after writing frames (a tiny cache spills to the WAL).
        writer
            .batch_execute(
                "PRAGMA cache_size = 2;
                 BEGIN IMMEDIATE;
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
                 INSERT INTO t (v, pad) SELECT 1, randomblob(1000) FROM n;",
            )
            .unwrap();
        assert_eq!(count(&mut reader), (expected, expected));
        writer.batch_execute("ROLLBACK;").unwrap();
        insert(&mut writer, 10, 1000);
        expected += 10;
        assert_eq!(count(&mut reader), (expected, expected));
        assert_eq!(count(&mut writer), (expected, expected));
        writer.batch_execute("PRAGMA integrity_check;").unwrap();
    }

    #[test]
    fn a_wal_written_this_way_is_recovered_by_plain_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kept.db");
        let mut conn = open(&path);
        conn.batch_execute(
            "PRAGMA wal_autocheckpoint = 0;
             CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER, pad BLOB);",
        )
        .unwrap();
        for _ in 0..20 {
            insert(&mut conn, 50, 500);
        }
        // As a crash leaves them: the database file and its WAL, no shared-memory index.
        let copy = tempfile::tempdir().unwrap();
        for suffix in ["", "-wal"] {
            std::fs::copy(
                format!("{}{suffix}", path.display()),
                format!("{}{suffix}", copy.path().join("kept.db").display()),
            )
            .unwrap();
        }
        drop(conn);
        let mut recovered = DbConnection::establish(&format!(
            "file:{}?vfs=unix",
            copy.path().join("kept.db").display()
        ))
        .unwrap();
        assert_eq!(count(&mut recovered), (1000, 1000));
    }
}
