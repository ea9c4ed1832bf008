//! The page cache wrapper (src/db/page_cache.rs) at work inside SQLite.
//!
//! Its own test binary: SQLite takes a page cache only before it first initialises, so the
//! first thing this process does with SQLite must be `wxlogin::db::connect`, which installs
//! it. Every test here starts that way.

use std::ffi::{c_int, CStr, CString};
use std::ptr;

use libsqlite3_sys as ffi;

/// A plain SQLite connection, opened after the wrapper is installed, so it uses it.
struct Raw(*mut ffi::sqlite3);

impl Raw {
    /// Opens `name` in `dir`, in WAL mode or with a rollback journal.
    fn open(dir: &tempfile::TempDir, name: &str, wal: bool) -> Raw {
        // Installs the wrapper before SQLite first initialises (and creates a database).
        let first = dir.path().join("first.db");
        wxlogin::db::connect(first.to_str().unwrap()).expect("opening the database");
        let path = CString::new(dir.path().join(name).to_str().unwrap()).unwrap();
        let mut db = ptr::null_mut();
        // SAFETY: a valid path and out-pointer.
        let rc = unsafe {
            ffi::sqlite3_open_v2(
                path.as_ptr(),
                &mut db,
                ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_CREATE,
                ptr::null(),
            )
        };
        assert_eq!(rc, ffi::SQLITE_OK, "opening {path:?}");
        let raw = Raw(db);
        let mode = if wal { "WAL" } else { "DELETE" };
        raw.exec(&format!(
            "PRAGMA journal_mode = {mode}; PRAGMA busy_timeout = 5000;"
        ));
        raw
    }

    fn exec(&self, sql: &str) {
        let sql = CString::new(sql).unwrap();
        let mut error = ptr::null_mut();
        // SAFETY: an open handle, a valid statement string and out-pointer.
        let rc =
            unsafe { ffi::sqlite3_exec(self.0, sql.as_ptr(), None, ptr::null_mut(), &mut error) };
        if rc != ffi::SQLITE_OK {
            // SAFETY: SQLite set the message on failure.
            let message = unsafe { CStr::from_ptr(error) }
                .to_string_lossy()
                .into_owned();
            panic!("{sql:?} failed: {message}");
        }
    }

    /// Bytes this connection's page cache holds (SQLite counts its pages).
    fn cache_used(&self) -> i64 {
        let (mut current, mut highest): (c_int, c_int) = (0, 0);
        // SAFETY: an open handle and valid out-pointers.
        let rc = unsafe {
            ffi::sqlite3_db_status(
                self.0,
                ffi::SQLITE_DBSTATUS_CACHE_USED,
                &mut current,
                &mut highest,
                0,
            )
        };
        assert_eq!(rc, ffi::SQLITE_OK);
        i64::from(current)
    }

    fn single(&self, sql: &str) -> String {
        let sql = CString::new(sql).unwrap();
        let mut stmt = ptr::null_mut();
        // SAFETY: an open handle, a valid statement string and out-pointers; the text is
        // copied before the statement is finalised.
        unsafe {
            assert_eq!(
                ffi::sqlite3_prepare_v2(self.0, sql.as_ptr(), -1, &mut stmt, ptr::null_mut()),
                ffi::SQLITE_OK
            );
            assert_eq!(ffi::sqlite3_step(stmt), ffi::SQLITE_ROW, "{sql:?}");
            let text = CStr::from_ptr(ffi::sqlite3_column_text(stmt, 0).cast())
                .to_string_lossy()
                .into_owned();
            ffi::sqlite3_finalize(stmt);
            text
        }
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        // SAFETY: the handle is open and no statement is left on it.
        unsafe { ffi::sqlite3_close(self.0) };
    }
}

/// Inserts `rows` rows keyed by random 28-character texts (as openids land at random places
/// in their index), in the caller's open transaction or else one of its own.
fn insert_random(raw: &Raw, rows: u32, pad: u32) {
    raw.exec(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
         INSERT INTO t (k, pad) SELECT hex(randomblob(14)), randomblob({pad}) FROM n;"
    ));
}

#[test]
fn a_rolled_back_transaction_s_new_pages_leave_the_page_cache() {
    let dir = tempfile::tempdir().unwrap();
    // With a rollback journal, nothing but the truncate at the end of the rollback drops
    // the pages past the file's old end (in WAL mode the rollback drops them one by one).
    let raw = Raw::open(&dir, "journal.db", false);
    raw.exec("PRAGMA cache_size = -16384; CREATE TABLE t (k TEXT PRIMARY KEY, pad BLOB);");
    insert_random(&raw, 1000, 200);
    raw.exec("BEGIN");
    let before = raw.cache_used();
    // About 2.5 MB of new pages past the file's end, all in the cache.
    insert_random(&raw, 5000, 500);
    let grown = raw.cache_used();
    assert!(
        grown > before + 2_000_000,
        "the transaction should fill the cache: {before} -> {grown}"
    );
    raw.exec("ROLLBACK");
    let after = raw.cache_used();
    assert!(
        after <= before + 64 * 1024,
        "the rolled-back pages stayed in the cache: {before} before, {grown} during, {after} after"
    );
    assert_eq!(raw.single("SELECT COUNT(*) FROM t"), "1000");
    assert_eq!(raw.single("PRAGMA integrity_check"), "ok");
}

#[test]
fn commits_of_random_keys_skip_the_cache_scan_and_keep_the_database_whole() {
    let dir = tempfile::tempdir().unwrap();
    let raw = Raw::open(&dir, "wal.db", true);
    let other = Raw::open(&dir, "wal.db", true);
    raw.exec("CREATE TABLE t (k TEXT PRIMARY KEY, pad BLOB);");
    let skipped_before = wxlogin::db::page_cache_truncates_skipped();
    let mut expected = 0;
    for round in 0..300 {
        raw.exec("BEGIN");
        insert_random(&raw, 20, 50);
        if round % 7 == 3 {
            raw.exec("ROLLBACK");
        } else {
            raw.exec("COMMIT");
            expected += 20;
        }
        if round % 10 == 5 {
            // Another connection grows the file: this one must drop its whole cache (a
            // truncate from page 1) to see it.
            insert_random(&other, 30, 50);
            expected += 30;
        }
    }
    let skipped = wxlogin::db::page_cache_truncates_skipped() - skipped_before;
    assert!(
        skipped >= 200,
        "expected most of the 257 commits to skip the cache scan, {skipped} did"
    );
    assert_eq!(raw.single("SELECT COUNT(*) FROM t"), expected.to_string());
    assert_eq!(other.single("SELECT COUNT(*) FROM t"), expected.to_string());
    assert_eq!(raw.single("PRAGMA integrity_check"), "ok");
}
