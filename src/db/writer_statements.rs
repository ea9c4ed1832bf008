//! The login writer's statements, run through SQLite's own API on the writer's connection.
//!
//! Every login looks its user up by openid, then updates that user or inserts a new one,
//! and inserts a login row. diesel binds each value through several layers: a collector
//! that gathers the values into a vector grown one push at a time, a second walk that hands
//! them to SQLite, and a third pass after the step that binds NULL over each of them again;
//! it reads a row through as many layers, and finds each prepared statement in its cache
//! by a SipHash of its key. Under callgrind (`LOGINS=6400 TASKS=16 valgrind --tool=callgrind
//! --separate-threads=yes target/release/examples/writer_micro [-- --returning]`) all that
//! was a fifth of the writer's instructions: 61.2k a new user's login with diesel, 48.9k
//! through these statements (returning: 59.3k, 47.3k). They are prepared once on the
//! writer's connection and bound and read directly.
//!
//! The statements' texts and the order of their values come from
//! [`login_statements`](super::login_statements), which also runs them through diesel for
//! the one-login path ([`User::record_login`](super::models::User::record_login)); tests
//! check that both read and store the same rows. A row this reader does not take (a time
//! in a form only diesel's parser reads) is read again through diesel.

use std::cell::Cell;
use std::ffi::{c_char, c_int, CStr};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use chrono::NaiveDateTime;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::{Connection, QueryResult};
use libsqlite3_sys as ffi;

use super::login_statements::{
    InsertLogin, InsertUser, ReturningLoginUpdate, UserByOpenid, MOST_ROWS_AT_ONCE,
};
use super::models::User;
use super::openid_index::{PendingOpenids, Slice};
use super::time;
use super::DbConnection;

thread_local! {
    /// The SQLite handle of the connection this thread opened last (see [`note_opened`]).
    static OPENED: Cell<*mut ffi::sqlite3> = const { Cell::new(ptr::null_mut()) };
}

/// Called by SQLite for every connection opened after [`install`], on the opening thread:
/// diesel keeps its handle to itself, and this is how the writer learns it.
unsafe extern "C" fn note_opened(
    db: *mut ffi::sqlite3,
    _error: *mut *mut c_char,
    _api: *const ffi::sqlite3_api_routines,
) -> c_int {
    OPENED.with(|opened| opened.set(db));
    ffi::SQLITE_OK
}

fn install() -> anyhow::Result<()> {
    static INSTALLED: OnceLock<c_int> = OnceLock::new();
    // SAFETY: `note_opened` has the signature SQLite calls an automatic extension with, and
    // only stores the pointer it is given.
    match *INSTALLED.get_or_init(|| unsafe { ffi::sqlite3_auto_extension(Some(note_opened)) }) {
        ffi::SQLITE_OK => Ok(()),
        rc => anyhow::bail!("registering with SQLite for new connections failed (code {rc})"),
    }
}

/// Opens a diesel connection to `database_url`, and returns it with its SQLite handle.
pub(super) fn establish_with_handle(
    database_url: &str,
) -> anyhow::Result<(DbConnection, NonNull<ffi::sqlite3>)> {
    install()?;
    OPENED.with(|opened| opened.set(ptr::null_mut()));
    let conn = DbConnection::establish(database_url)?;
    let db = NonNull::new(OPENED.with(|opened| opened.replace(ptr::null_mut())))
        .context("SQLite did not report the connection it opened")?;
    Ok((conn, db))
}

/// The login writer's connection: diesel's, and a login's statements prepared on its handle.
pub struct WriterConnection {
    // Declared first, so dropped first: its statements are finalized before diesel closes
    // the connection (closing with statements left fails, and diesel panics on that).
    statements: LoginStatements,
    conn: DbConnection,
    /// Where SQLite reports the WAL's length after each commit, once asked to
    /// ([`Self::report_wal_length`]). Declared after `conn`: it outlives the hook.
    wal_length: Option<Arc<AtomicI64>>,
}

impl WriterConnection {
    /// Opens `database_url` for the login writer.
    pub fn establish(database_url: &str) -> anyhow::Result<Self> {
        let (conn, db) = establish_with_handle(database_url)
            .with_context(|| format!("opening the database {database_url} for the login writer"))?;
        Ok(Self {
            statements: LoginStatements {
                db,
                user_by_openid: None,
                user_by_id: None,
                add_to_lookup: None,
                openids: PendingOpenids::default(),
                returning_update: None,
                users: Default::default(),
                logins: Default::default(),
            },
            conn,
            wal_length: None,
        })
    }

    /// From now on, after every commit of this connection, stores the number of frames in
    /// the WAL in `length` (through SQLite's WAL hook, the one `wal_autocheckpoint` uses, so
    /// that setting takes this report's place).
    pub fn report_wal_length(&mut self, length: Arc<AtomicI64>) {
        let arg = Arc::as_ptr(&length).cast_mut().cast();
        // SAFETY: `wal_committed` takes `arg` as the `AtomicI64` it points at, which
        // `self.wal_length` keeps alive until after the connection has closed (field order).
        unsafe { ffi::sqlite3_wal_hook(self.statements.db.as_ptr(), Some(wal_committed), arg) };
        self.wal_length = Some(length);
    }

    /// Reads which users the openid lookup still lacks (see [`PendingOpenids::load`]).
    pub fn load_pending_openids(&mut self) -> QueryResult<()> {
        self.statements.openids = PendingOpenids::load(&mut self.conn)?;
        Ok(())
    }

    /// The diesel connection, for everything else.
    pub fn conn(&mut self) -> &mut DbConnection {
        &mut self.conn
    }

    /// Both halves at once.
    pub fn split(&mut self) -> (&mut DbConnection, &mut LoginStatements) {
        (&mut self.conn, &mut self.statements)
    }
}

/// SQLite's WAL hook: a commit left `frames` frames in the WAL of `arg`'s connection.
unsafe extern "C" fn wal_committed(
    arg: *mut std::ffi::c_void,
    _db: *mut ffi::sqlite3,
    _database: *const c_char,
    frames: c_int,
) -> c_int {
    // SAFETY: the argument `report_wal_length` registers, alive as long as the connection.
    let length = unsafe { &*arg.cast::<AtomicI64>() };
    length.store(i64::from(frames), Ordering::Relaxed);
    ffi::SQLITE_OK
}

/// The statements of a login, prepared on first use. Only a [`WriterConnection`] makes
/// them, so they never outlive their connection.
pub struct LoginStatements {
    db: NonNull<ffi::sqlite3>,
    user_by_openid: Option<Statement>,
    user_by_id: Option<Statement>,
    add_to_lookup: Option<Statement>,
    /// The users this writer created that may not be in the openid lookup yet.
    pub(super) openids: PendingOpenids,
    returning_update: Option<Statement>,
    /// Inserts of 1, 2, 4 … [`MOST_ROWS_AT_ONCE`] users, by the power of two.
    users: [Option<Statement>; ROW_STATEMENTS],
    /// The same for logins.
    logins: [Option<Statement>; ROW_STATEMENTS],
}

/// Adds `openid` (user `id`) to the openid lookup unless it is there; says whether it did.
fn add_to_lookup(
    db: NonNull<ffi::sqlite3>,
    slot: &mut Option<Statement>,
    openid: &str,
    id: i64,
) -> QueryResult<bool> {
    let statement = Statement::prepared(slot, db, || UserByOpenid::ADD_TO_LOOKUP_SQL.into())?;
    let mut binder = Binder::new(statement);
    binder.text(openid)?;
    binder.int(id)?;
    statement.run(db)?;
    // SAFETY: the connection is open; this reads the count the insert just left.
    Ok(unsafe { ffi::sqlite3_changes(db.as_ptr()) } > 0)
}

/// What looking a user up found.
// Returned once a login and unpacked at once: boxing the user would add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Lookup {
    /// The user.
    Found(User),
    /// Nobody with that openid.
    Missing,
    /// A row whose values this reader does not take (a time stored in another form, say,
    /// by a tool): diesel's reader, which takes every form it writes or reads, should.
    Unreadable,
}

const ROW_STATEMENTS: usize = MOST_ROWS_AT_ONCE.ilog2() as usize + 1;

// SAFETY: the connection is opened in multi-thread mode (see `wal_file`): it may move to
// another thread as long as one thread at a time uses it, which `&mut` ensures, as for
// diesel's own connection beside it.
unsafe impl Send for LoginStatements {}

impl LoginStatements {
    /// The user whose openid is `openid`.
    pub fn user_by_openid(&mut self, openid: &str) -> QueryResult<Lookup> {
        let db = self.db;
        // Most new users stop here: the filter knows every openid the two places below hold.
        if !self.openids.may_exist(openid) {
            return Ok(Lookup::Missing);
        }
        if let Some(id) = self.openids.get(openid) {
            let statement =
                Statement::prepared(&mut self.user_by_id, db, || UserByOpenid::BY_ID_SQL.into())?;
            Binder::new(statement).int(id)?;
            return statement.query_user(db);
        }
        let statement =
            Statement::prepared(&mut self.user_by_openid, db, || UserByOpenid::SQL.into())?;
        let mut binder = Binder::new(statement);
        binder.text(openid)?;
        binder.int(self.openids.seen_through())?;
        statement.query_user(db)
    }

    /// Moves new users into the openid lookup in a round of the writer's own (see
    /// [`PendingOpenids::move_some`]), through a prepared insert.
    pub fn move_some_openids(&mut self, conn: &mut DbConnection, quiet: bool) -> QueryResult<()> {
        let (db, slot) = (self.db, &mut self.add_to_lookup);
        self.openids.move_some(conn, quiet, |openid, id| {
            add_to_lookup(db, slot, openid, id)
        })
    }

    /// Writes `slice` inside the transaction under way (a login batch's).
    pub fn write_openid_slice(
        &mut self,
        conn: &mut DbConnection,
        slice: &Slice,
    ) -> QueryResult<()> {
        let (db, slot) = (self.db, &mut self.add_to_lookup);
        slice.write(conn, |openid, id| add_to_lookup(db, slot, openid, id))
    }

    /// Stores a returning login's changes to its user.
    pub fn update_returning(&mut self, update: &ReturningLoginUpdate<'_>) -> QueryResult<()> {
        let db = self.db;
        let statement = Statement::prepared(&mut self.returning_update, db, || {
            ReturningLoginUpdate::SQL.into()
        })?;
        update.bind(&mut Binder::new(statement))?;
        statement.run(db)
    }

    /// Inserts every login of `rows` as [`Self::insert_users`] inserts users. Where several
    /// logins go in one statement, a failure ends the statement or the whole transaction
    /// (see [`InsertLogin::sql`]): the login writer rolls the batch back either way.
    pub fn insert_logins(&mut self, rows: &[InsertLogin<'_>]) -> QueryResult<()> {
        insert_rows(
            self.db,
            &mut self.logins,
            rows,
            InsertLogin::sql,
            InsertLogin::bind,
        )
    }

    /// Inserts every user of `rows`, in statements of a power-of-two number of rows, the
    /// largest that fit, up to [`MOST_ROWS_AT_ONCE`] (37 rows: 32, 4, 1). Where several users
    /// go in one statement, a failure rolls the whole transaction back (see
    /// [`InsertUsers`](super::login_statements::InsertUsers)).
    pub fn insert_users(&mut self, rows: &[InsertUser<'_>]) -> QueryResult<()> {
        insert_rows(
            self.db,
            &mut self.users,
            rows,
            InsertUser::sql,
            InsertUser::bind,
        )
    }
}

/// Inserts `rows` in statements of a power-of-two number of rows, the largest that fit, up to
/// [`MOST_ROWS_AT_ONCE`]: each size's statement (text `sql(rows)`) is prepared once, in
/// `statements` at the power of two.
fn insert_rows<R>(
    db: NonNull<ffi::sqlite3>,
    statements: &mut [Option<Statement>; ROW_STATEMENTS],
    mut rows: &[R],
    sql: fn(usize) -> String,
    bind: fn(&R, &mut Binder<'_>) -> QueryResult<()>,
) -> QueryResult<()> {
    while !rows.is_empty() {
        let power = rows.len().min(MOST_ROWS_AT_ONCE).ilog2();
        let (chunk, rest) = rows.split_at(1 << power);
        let statement = Statement::prepared(&mut statements[power as usize], db, || {
            sql(chunk.len()).into()
        })?;
        let mut binder = Binder::new(statement);
        for row in chunk {
            bind(row, &mut binder)?;
        }
        statement.run(db)?;
        rows = rest;
    }
    Ok(())
}

/// A prepared statement, finalized when dropped.
struct Statement(NonNull<ffi::sqlite3_stmt>);

impl Statement {
    /// The statement in `slot`, prepared from `sql` on first use.
    fn prepared(
        slot: &mut Option<Self>,
        db: NonNull<ffi::sqlite3>,
        sql: impl FnOnce() -> std::borrow::Cow<'static, str>,
    ) -> QueryResult<&mut Self> {
        match slot {
            Some(statement) => Ok(statement),
            None => Ok(slot.insert(Self::prepare(db, &sql())?)),
        }
    }

    fn prepare(db: NonNull<ffi::sqlite3>, sql: &str) -> QueryResult<Self> {
        let mut statement = ptr::null_mut();
        let length = c_int::try_from(sql.len()).map_err(|_| {
            DieselError::QueryBuilderError("a statement longer than SQLite takes".into())
        })?;
        // SAFETY: `db` is an open connection (see `LoginStatements`), `sql` is valid for
        // `length` bytes, and `statement` receives the result.
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                db.as_ptr(),
                sql.as_ptr().cast(),
                length,
                ffi::SQLITE_PREPARE_PERSISTENT,
                &mut statement,
                ptr::null_mut(),
            )
        };
        match NonNull::new(statement) {
            Some(statement) if rc == ffi::SQLITE_OK => Ok(Self(statement)),
            _ => Err(last_error(db, rc)),
        }
    }

    /// Steps the bound statement once, then resets it.
    fn run(&mut self, db: NonNull<ffi::sqlite3>) -> QueryResult<()> {
        // SAFETY: the statement is prepared and every value bound is alive until the
        // bindings are cleared below.
        let rc = unsafe { ffi::sqlite3_step(self.0.as_ptr()) };
        let outcome = match rc {
            ffi::SQLITE_DONE => Ok(()),
            rc => Err(last_error(db, rc)),
        };
        self.reset();
        outcome
    }

    /// Steps the bound statement for its first row and reads it as a user, then resets it
    /// and clears its values.
    fn query_user(&mut self, db: NonNull<ffi::sqlite3>) -> QueryResult<Lookup> {
        // SAFETY: as in `run`; the row is read before the reset below.
        let outcome = match unsafe { ffi::sqlite3_step(self.0.as_ptr()) } {
            ffi::SQLITE_ROW => Ok(read_user(&Row(self)).map_or(Lookup::Unreadable, Lookup::Found)),
            ffi::SQLITE_DONE => Ok(Lookup::Missing),
            rc => Err(last_error(db, rc)),
        };
        self.reset();
        outcome
    }

    /// Readies the statement for its next run and clears its values, so it holds no pointer
    /// to them (they are bound without a copy).
    fn reset(&mut self) {
        // SAFETY: a prepared statement; reset repeats the step's error, already taken.
        unsafe {
            ffi::sqlite3_reset(self.0.as_ptr());
            ffi::sqlite3_clear_bindings(self.0.as_ptr());
        }
    }
}

/// The current row of a stepped statement.
struct Row<'s>(&'s Statement);

impl Row<'_> {
    fn int(&self, column: c_int) -> i64 {
        // SAFETY: the statement has a current row (see `query_user`).
        unsafe { ffi::sqlite3_column_int64(self.0 .0.as_ptr(), column) }
    }

    /// The column's integer, `Some(None)` for NULL; `None` for anything else.
    fn optional_int(&self, column: c_int) -> Option<Option<i64>> {
        // SAFETY: the statement has a current row (see `query_user`).
        match unsafe { ffi::sqlite3_column_type(self.0 .0.as_ptr(), column) } {
            ffi::SQLITE_NULL => Some(None),
            ffi::SQLITE_INTEGER => Some(Some(self.int(column))),
            _ => None,
        }
    }

    /// The column's text, `Some(None)` for NULL; `None` for anything else.
    fn optional_text(&self, column: c_int) -> Option<Option<String>> {
        let statement = self.0 .0.as_ptr();
        // SAFETY: the statement has a current row; the text is copied before the next call
        // on the statement, as SQLite asks.
        unsafe {
            match ffi::sqlite3_column_type(statement, column) {
                ffi::SQLITE_NULL => Some(None),
                ffi::SQLITE_TEXT => {
                    let text = ffi::sqlite3_column_text(statement, column);
                    let length =
                        usize::try_from(ffi::sqlite3_column_bytes(statement, column)).ok()?;
                    let bytes = if text.is_null() {
                        &[][..]
                    } else {
                        std::slice::from_raw_parts(text, length)
                    };
                    Some(Some(String::from_utf8(bytes.to_vec()).ok()?))
                }
                _ => None,
            }
        }
    }

    fn text(&self, column: c_int) -> Option<String> {
        self.optional_text(column).flatten()
    }

    fn optional_time(&self, column: c_int) -> Option<Option<NaiveDateTime>> {
        match self.optional_text(column)? {
            None => Some(None),
            Some(text) => Some(Some(time::parse(&text)?)),
        }
    }

    fn time(&self, column: c_int) -> Option<NaiveDateTime> {
        self.optional_time(column).flatten()
    }
}

/// A user from a row of [`UserByOpenid::SQL`]'s columns.
fn read_user(row: &Row<'_>) -> Option<User> {
    Some(User {
        id: row.int(0),
        openid: row.text(1)?,
        unionid: row.optional_text(2)?,
        session_key: row.text(3)?,
        nickname: row.optional_text(4)?,
        avatar_url: row.optional_text(5)?,
        disabled_at: row.optional_time(6)?,
        disabled_reason: row.optional_text(7)?,
        login_count: row.int(8),
        created_at: row.time(9)?,
        updated_at: row.time(10)?,
        last_login_at: row.time(11)?,
        last_login_id: row.optional_int(12)?,
    })
}

impl Drop for Statement {
    fn drop(&mut self) {
        // SAFETY: prepared by `prepare`, finalized only here.
        unsafe { ffi::sqlite3_finalize(self.0.as_ptr()) };
    }
}

/// Binds values to a statement's parameters in order.
pub struct Binder<'s> {
    statement: &'s mut Statement,
    next: c_int,
}

impl<'s> Binder<'s> {
    fn new(statement: &'s mut Statement) -> Self {
        Self { statement, next: 1 }
    }

    fn check(&mut self, rc: c_int) -> QueryResult<()> {
        self.next += 1;
        if rc == ffi::SQLITE_OK {
            return Ok(());
        }
        // SAFETY: the statement belongs to an open connection.
        let db = unsafe { ffi::sqlite3_db_handle(self.statement.0.as_ptr()) };
        let error = last_error(NonNull::new(db).expect("a statement has a connection"), rc);
        Err(self.fail(error))
    }

    /// Clears what was bound so far, as a run would have: a later use leaves a value it has
    /// no text for unbound, which must then be NULL, not a pointer into freed rows.
    fn fail(&mut self, error: DieselError) -> DieselError {
        // SAFETY: clearing the bindings of a prepared statement.
        unsafe { ffi::sqlite3_clear_bindings(self.statement.0.as_ptr()) };
        error
    }

    /// Binds an integer.
    pub fn int(&mut self, value: i64) -> QueryResult<()> {
        // SAFETY: binding a plain value to a prepared statement.
        let rc = unsafe { ffi::sqlite3_bind_int64(self.statement.0.as_ptr(), self.next, value) };
        self.check(rc)
    }

    /// Binds a text without copying it: it must live until the statement runs, which the
    /// borrow of the rows being inserted ensures (see [`LoginStatements`]).
    pub fn text(&mut self, value: &str) -> QueryResult<()> {
        let Ok(length) = c_int::try_from(value.len()) else {
            let error = DieselError::SerializationError("a text longer than SQLite takes".into());
            return Err(self.fail(error));
        };
        // SAFETY: `value` stays alive and unchanged until `Statement::run` clears the
        // bindings (the rows are borrowed across it); SQLITE_STATIC tells SQLite not to
        // free it.
        let rc = unsafe {
            ffi::sqlite3_bind_text(
                self.statement.0.as_ptr(),
                self.next,
                value.as_ptr().cast(),
                length,
                ffi::SQLITE_STATIC(),
            )
        };
        self.check(rc)
    }

    /// Binds a text, or leaves the parameter NULL.
    pub fn optional_text(&mut self, value: Option<&str>) -> QueryResult<()> {
        match value {
            Some(value) => self.text(value),
            None => self.null(),
        }
    }

    /// Binds an integer, or leaves the parameter NULL.
    pub fn optional_int(&mut self, value: Option<i64>) -> QueryResult<()> {
        match value {
            Some(value) => self.int(value),
            None => self.null(),
        }
    }

    /// Leaves the parameter NULL: cleared after every run, so it is already.
    fn null(&mut self) -> QueryResult<()> {
        self.next += 1;
        Ok(())
    }
}

/// The connection's last error as diesel reports one, so callers handle both alike.
fn last_error(db: NonNull<ffi::sqlite3>, rc: c_int) -> DieselError {
    // SAFETY: `db` is an open connection; its message is copied before any other call.
    let (code, message) = unsafe {
        let message = ffi::sqlite3_errmsg(db.as_ptr());
        let message = if message.is_null() {
            format!("SQLite error {rc}")
        } else {
            CStr::from_ptr(message).to_string_lossy().into_owned()
        };
        (ffi::sqlite3_extended_errcode(db.as_ptr()), message)
    };
    let kind = match code {
        ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
            DatabaseErrorKind::UniqueViolation
        }
        ffi::SQLITE_CONSTRAINT_FOREIGNKEY => DatabaseErrorKind::ForeignKeyViolation,
        ffi::SQLITE_CONSTRAINT_NOTNULL => DatabaseErrorKind::NotNullViolation,
        ffi::SQLITE_CONSTRAINT_CHECK => DatabaseErrorKind::CheckViolation,
        _ => DatabaseErrorKind::Unknown,
    };
    DieselError::DatabaseError(kind, Box::new(message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::login_statements::tests::{assert_login_stored, at, new_user};
    use crate::db::login_statements::{insert_users, ReturningLoginUpdate, UserByOpenid};
    use crate::db::models::{NewLogin, NewUser, User};
    use crate::db::schema::{logins, users};
    use diesel::prelude::*;

    /// Inserts `users` through the writer's prepared statements.
    fn store_users(writer: &mut WriterConnection, users: &[NewUser<'_>]) {
        let rows: Vec<_> = users.iter().map(InsertUser::new).collect();
        writer.split().1.insert_users(&rows).unwrap();
    }

    /// A migrated database, and the writer's connection to it.
    fn writer_database() -> (tempfile::TempDir, WriterConnection) {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("w.db");
        let url = url.to_str().unwrap();
        drop(crate::db::connect(url).unwrap());
        let writer = WriterConnection::establish(url).unwrap();
        (dir, writer)
    }

    fn stored_users(conn: &mut DbConnection, from_id: i64) -> Vec<User> {
        users::table
            .filter(users::id.ge(from_id))
            .order(users::id)
            .select(User::as_select())
            .load(conn)
            .unwrap()
    }

    #[test]
    fn users_inserted_through_the_prepared_statements_are_stored_as_diesel_stores_them() {
        let (_dir, mut writer) = writer_database();
        // 1, a power of two, and sizes that need several statements, each size once through
        // diesel (ids from 1) and once prepared (ids from 1001).
        for (count, first) in [(1, 0), (2, 10), (37, 100), (135, 300)] {
            let openids: Vec<String> = (0..count).map(|i| format!("o{}", first + i)).collect();
            let rows = |offset: i64| -> Vec<NewUser> {
                openids
                    .iter()
                    .zip(first + offset..)
                    .map(|(openid, id)| new_user(id, openid, (id % 2 == 0).then_some("even")))
                    .collect()
            };
            let (by_diesel, prepared) = (rows(1), rows(1001));
            let (conn, inserts) = writer.split();
            conn.transaction(|conn| {
                let rows: Vec<_> = by_diesel.iter().map(InsertUser::new).collect();
                insert_users(conn, &rows)?;
                // The same openids would collide: these rows differ only by id and openid.
                diesel::update(users::table)
                    .filter(users::id.lt(1001))
                    .set(users::openid.eq(users::openid.concat("-diesel")))
                    .execute(conn)
                    .map(drop)
            })
            .unwrap();
            let rows: Vec<_> = prepared.iter().map(InsertUser::new).collect();
            inserts.insert_users(&rows).unwrap();
            let conn = writer.conn();
            let diesel_rows = stored_users(conn, first + 1);
            let prepared_rows = stored_users(conn, first + 1001);
            assert_eq!(prepared_rows.len(), count as usize);
            for (d, p) in diesel_rows.iter().zip(&prepared_rows) {
                assert_eq!(p.id, d.id + 1000);
                assert_eq!(format!("{}-diesel", p.openid), d.openid);
                let (mut d, mut p) = (d.clone(), p.clone());
                (d.id, d.openid, p.id, p.openid) = (0, String::new(), 0, String::new());
                assert_eq!(p, d, "every other column is the same");
            }
            diesel::delete(users::table).execute(conn).unwrap();
        }
    }

    #[test]
    fn a_login_inserted_through_the_prepared_statement_keeps_every_column() {
        let (_dir, mut writer) = writer_database();
        let (_, inserts) = writer.split();
        inserts
            .insert_users(&[InsertUser::new(&new_user(7, "oLogin", None))])
            .unwrap();
        for (id, ip, user_agent) in [(40, Some("203.0.113.9"), None), (41, None, Some("UA"))] {
            let login = NewLogin {
                id,
                user_id: 7,
                logged_in_at: at("2026-11-25 10:11:12.131415"),
                ip,
                user_agent,
                token_hash: "ab12",
                token_expires_at: at("2026-12-02 10:11:12"),
                previous_login_id: (id > 40).then_some(id - 1),
            };
            writer
                .split()
                .1
                .insert_logins(&[InsertLogin::new(&login)])
                .unwrap();
            assert_login_stored(writer.conn(), &login);
        }
    }

    #[test]
    fn logins_inserted_several_to_a_statement_keep_every_column() {
        let (_dir, mut writer) = writer_database();
        let users = [new_user(7, "oSeven", None), new_user(8, "oEight", None)];
        store_users(&mut writer, &users);
        // 1, a power of two, and sizes that need several statements.
        let mut next = 1;
        for count in [1, 2, 3, 37] {
            let logins: Vec<NewLogin> = (next..next + count)
                .map(|id| NewLogin {
                    id,
                    user_id: 7 + id % 2,
                    logged_in_at: at("2026-11-25 10:11:12.131415"),
                    ip: (id % 3 == 0).then_some("203.0.113.9"),
                    user_agent: (id % 3 == 1).then_some("UA"),
                    token_hash: "ab12",
                    token_expires_at: at("2026-12-02 10:11:12"),
                    previous_login_id: (id > 2).then_some(id - 2),
                })
                .collect();
            let rows: Vec<_> = logins.iter().map(InsertLogin::new).collect();
            writer.split().1.insert_logins(&rows).unwrap();
            for login in &logins {
                assert_login_stored(writer.conn(), login);
            }
            next += count;
        }
        let stored: i64 = logins::table.count().get_result(writer.conn()).unwrap();
        assert_eq!(stored, next - 1);
    }

    #[test]
    fn a_refused_insert_reports_its_kind_and_leaves_the_statement_reusable() {
        let (_dir, mut writer) = writer_database();
        let (_, inserts) = writer.split();
        let taken = new_user(1, "oTaken", None);
        inserts.insert_users(&[InsertUser::new(&taken)]).unwrap();
        // Several rows at once, one of them an id already stored.
        let again = [new_user(2, "oFresh", None), new_user(1, "oOther", None)];
        let rows: Vec<_> = again.iter().map(InsertUser::new).collect();
        match inserts.insert_users(&rows) {
            Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info)) => {
                assert!(info.message().contains("users.id"), "{}", info.message())
            }
            other => panic!("expected a unique violation, got {other:?}"),
        }
        // A login of a user who does not exist.
        let orphan = NewLogin {
            id: 1,
            user_id: 99,
            logged_in_at: at("2026-11-25 10:11:12"),
            ip: None,
            user_agent: None,
            token_hash: "h",
            token_expires_at: at("2026-12-02 10:11:12"),
            previous_login_id: None,
        };
        assert!(matches!(
            inserts.insert_logins(&[InsertLogin::new(&orphan)]),
            Err(DieselError::DatabaseError(
                DatabaseErrorKind::ForeignKeyViolation,
                _
            ))
        ));
        // Several logins at once, one of them of a user who does not exist.
        let fine_and_orphan = [
            NewLogin {
                id: 2,
                user_id: 1,
                ..orphan
            },
            NewLogin { id: 3, ..orphan },
        ];
        let rows: Vec<_> = fine_and_orphan.iter().map(InsertLogin::new).collect();
        assert!(matches!(
            inserts.insert_logins(&rows),
            Err(DieselError::DatabaseError(
                DatabaseErrorKind::ForeignKeyViolation,
                _
            ))
        ));
        // The same statements work afterwards.
        let fine = [
            new_user(4, "oFine1", Some("x")),
            new_user(5, "oFine2", None),
        ];
        let rows: Vec<_> = fine.iter().map(InsertUser::new).collect();
        inserts.insert_users(&rows).unwrap();
        let stored: Vec<String> = users::table
            .order(users::id)
            .select(users::openid)
            .load(writer.conn())
            .unwrap();
        assert_eq!(stored, ["oTaken", "oFine1", "oFine2"]);
    }

    #[test]
    fn each_statement_binds_exactly_the_parameters_its_text_has() {
        let (_dir, writer) = writer_database();
        let db = writer.statements.db;
        let users = [new_user(1, "oA", Some("x")), new_user(2, "oB", None)];
        let rows: Vec<_> = users.iter().map(InsertUser::new).collect();
        let login = NewLogin {
            id: 1,
            user_id: 1,
            logged_in_at: at("2026-11-25 10:11:12"),
            ip: None,
            user_agent: Some("UA"),
            token_hash: "h",
            token_expires_at: at("2026-12-02 10:11:12"),
            previous_login_id: None,
        };
        let two_logins = [NewLogin { id: 2, ..login }, NewLogin { id: 3, ..login }];
        let two_logins: Vec<_> = two_logins.iter().map(InsertLogin::new).collect();
        let login = InsertLogin::new(&login);
        let update = ReturningLoginUpdate {
            id: 1,
            unionid: None,
            session_key: "k",
            avatar_url: Some("a"),
            login_count: 2,
            now: crate::db::time::TimeText::new(&at("2026-11-27 09:10:11")),
            last_login_id: 5,
        };
        type Bind<'r> = &'r dyn Fn(&mut Binder<'_>) -> QueryResult<()>;
        let cases: [(String, Bind); 4] = [
            (ReturningLoginUpdate::SQL.to_owned(), &|b: &mut Binder<
                '_,
            >| {
                update.bind(b)
            }),
            (InsertUser::sql(rows.len()), &|b: &mut Binder<'_>| {
                rows.iter().try_for_each(|row| row.bind(b))
            }),
            (InsertLogin::sql(1), &|b: &mut Binder<'_>| login.bind(b)),
            (InsertLogin::sql(2), &|b: &mut Binder<'_>| {
                two_logins.iter().try_for_each(|row| row.bind(b))
            }),
        ];
        for (sql, bind) in cases {
            let mut statement = Statement::prepare(db, &sql).unwrap();
            // SAFETY: a prepared statement.
            let parameters = unsafe { ffi::sqlite3_bind_parameter_count(statement.0.as_ptr()) };
            let mut binder = Binder::new(&mut statement);
            bind(&mut binder).unwrap();
            assert_eq!(binder.next - 1, parameters, "{sql}");
        }
    }

    #[test]
    fn a_user_read_through_the_prepared_statement_is_the_user_diesel_reads() {
        let (_dir, mut writer) = writer_database();
        let users = [new_user(1, "oAll", Some("x")), new_user(2, "oNone", None)];
        store_users(&mut writer, &users);
        diesel::update(users::table.find(2))
            .set((
                users::disabled_at.eq(at("2026-11-26 08:00:00.25")),
                users::disabled_reason.eq("spam"),
            ))
            .execute(writer.conn())
            .unwrap();
        for openid in ["oAll", "oNone"] {
            let by_diesel = UserByOpenid::new(openid)
                .load::<User>(writer.conn())
                .unwrap();
            match writer.split().1.user_by_openid(openid).unwrap() {
                Lookup::Found(user) => assert_eq!(std::slice::from_ref(&user), by_diesel),
                _ => panic!("{openid} was not read"),
            }
        }
        assert!(matches!(
            writer.split().1.user_by_openid("oNobody").unwrap(),
            Lookup::Missing
        ));
    }

    #[test]
    fn a_time_stored_in_another_form_is_left_to_diesels_reader() {
        let (_dir, mut writer) = writer_database();
        let users = [new_user(1, "oOdd", None)];
        writer
            .split()
            .1
            .insert_users(&[InsertUser::new(&users[0])])
            .unwrap();
        // The form with a `T`, as a tool might write it.
        diesel::sql_query("UPDATE users SET created_at = '2026-11-25T01:02:03'")
            .execute(writer.conn())
            .unwrap();
        assert!(matches!(
            writer.split().1.user_by_openid("oOdd").unwrap(),
            Lookup::Unreadable
        ));
        let by_diesel = UserByOpenid::new("oOdd")
            .load::<User>(writer.conn())
            .unwrap();
        assert_eq!(by_diesel[0].created_at, at("2026-11-25 01:02:03"));
    }

    #[test]
    fn a_returning_login_is_stored_as_diesels_update_stores_it() {
        let (_dir, mut writer) = writer_database();
        let users = [new_user(1, "oD", Some("x")), new_user(2, "oP", Some("x"))];
        store_users(&mut writer, &users);
        let update = |id| ReturningLoginUpdate {
            id,
            unionid: None,
            session_key: "new key",
            avatar_url: Some("https://example.com/a.png"),
            login_count: 9,
            now: crate::db::time::TimeText::new(&at("2026-11-27 09:10:11.123456")),
            last_login_id: 77,
        };
        assert_eq!(
            diesel::debug_query::<diesel::sqlite::Sqlite, _>(&update(1))
                .to_string()
                .split(" -- binds")
                .next(),
            Some(ReturningLoginUpdate::SQL),
            "the prepared statement is diesel's"
        );
        update(1).execute(writer.conn()).unwrap();
        writer.split().1.update_returning(&update(2)).unwrap();
        let stored = stored_users(writer.conn(), 1);
        let (mut d, mut p) = (stored[0].clone(), stored[1].clone());
        assert_eq!((p.session_key.as_str(), p.login_count), ("new key", 9));
        (d.id, d.openid, p.id, p.openid) = (0, String::new(), 0, String::new());
        assert_eq!(p, d);
    }

    #[test]
    fn the_connection_closes_cleanly_with_its_statements_prepared() {
        let (_dir, mut writer) = writer_database();
        let users = [new_user(1, "oA", None), new_user(2, "oB", None)];
        store_users(&mut writer, &users);
        // diesel panics when SQLite refuses to close a connection with statements left.
        drop(writer);
    }
}
