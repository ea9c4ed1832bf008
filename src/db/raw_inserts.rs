//! The login writer's inserts, run through SQLite's own API on the writer's connection.
//!
//! Every login inserts a login row, and every first login a user row. diesel binds each
//! value through several layers: a collector that gathers the values into a vector grown
//! one push at a time, a second walk that hands them to SQLite, and a third pass after the
//! step that binds NULL over each of them again. Under callgrind (`writer_micro`,
//! `TASKS=16`) that binding was 15.7% of the writer's instructions, about 9k a login, and
//! finding the prepared statements in diesel's cache (a SipHash of each key) another 1.5k;
//! SQLite's own binding of the same values is about 2.5k. Here the two statements are
//! prepared once on the writer's connection and bound directly.
//!
//! The statements' texts and the order of their values come from
//! [`login_statements`](super::login_statements), which also runs them through diesel for
//! the one-login path ([`User::record_login`](super::models::User::record_login)); a test
//! checks that both store the same rows.

use std::cell::Cell;
use std::ffi::{c_char, c_int, CStr};
use std::ptr::{self, NonNull};
use std::sync::OnceLock;

use anyhow::Context;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::{Connection, QueryResult};
use libsqlite3_sys as ffi;

use super::login_statements::{InsertLogin, InsertUser, MOST_ROWS_AT_ONCE};
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

/// The login writer's connection: diesel's, and the inserts prepared on its handle.
pub struct WriterConnection {
    // Declared first, so dropped first: its statements are finalized before diesel closes
    // the connection (closing with statements left fails, and diesel panics on that).
    inserts: LoginInserts,
    conn: DbConnection,
}

impl WriterConnection {
    /// Opens `database_url` for the login writer.
    pub fn establish(database_url: &str) -> anyhow::Result<Self> {
        install()?;
        OPENED.with(|opened| opened.set(ptr::null_mut()));
        let conn = DbConnection::establish(database_url)
            .with_context(|| format!("opening the database {database_url} for the login writer"))?;
        let db = NonNull::new(OPENED.with(|opened| opened.replace(ptr::null_mut())))
            .context("SQLite did not report the login writer's connection")?;
        Ok(Self {
            inserts: LoginInserts {
                db,
                login: None,
                users: Default::default(),
            },
            conn,
        })
    }

    /// The diesel connection, for everything but the inserts.
    pub fn conn(&mut self) -> &mut DbConnection {
        &mut self.conn
    }

    /// Both halves at once.
    pub fn split(&mut self) -> (&mut DbConnection, &mut LoginInserts) {
        (&mut self.conn, &mut self.inserts)
    }
}

/// The login and user inserts, prepared on first use. Only a [`WriterConnection`] makes one,
/// so it never outlives its connection.
pub struct LoginInserts {
    db: NonNull<ffi::sqlite3>,
    login: Option<Statement>,
    /// Inserts of 1, 2, 4 … [`MOST_ROWS_AT_ONCE`] users, by the power of two.
    users: [Option<Statement>; USER_STATEMENTS],
}

const USER_STATEMENTS: usize = MOST_ROWS_AT_ONCE.ilog2() as usize + 1;

// SAFETY: the connection is opened in multi-thread mode (see `wal_file`): it may move to
// another thread as long as one thread at a time uses it, which `&mut` ensures, as for
// diesel's own connection beside it.
unsafe impl Send for LoginInserts {}

impl LoginInserts {
    /// Inserts `login`.
    pub fn insert_login(&mut self, login: &InsertLogin<'_>) -> QueryResult<()> {
        let db = self.db;
        let statement = match &mut self.login {
            Some(statement) => statement,
            slot => slot.insert(Statement::prepare(db, &InsertLogin::sql())?),
        };
        let mut binder = Binder::new(statement);
        login.bind(&mut binder)?;
        statement.run(db)
    }

    /// Inserts every user of `rows`, in statements of a power-of-two number of rows, the
    /// largest that fit, up to [`MOST_ROWS_AT_ONCE`] (37 rows: 32, 4, 1). Where several users
    /// go in one statement, a failure rolls the whole transaction back (see
    /// [`InsertUsers`](super::login_statements::InsertUsers)).
    pub fn insert_users(&mut self, mut rows: &[InsertUser<'_>]) -> QueryResult<()> {
        let db = self.db;
        while !rows.is_empty() {
            let power = rows.len().min(MOST_ROWS_AT_ONCE).ilog2();
            let (chunk, rest) = rows.split_at(1 << power);
            let statement = match &mut self.users[power as usize] {
                Some(statement) => statement,
                slot => slot.insert(Statement::prepare(db, &InsertUser::sql(chunk.len()))?),
            };
            let mut binder = Binder::new(statement);
            for row in chunk {
                row.bind(&mut binder)?;
            }
            statement.run(db)?;
            rows = rest;
        }
        Ok(())
    }
}

/// A prepared statement, finalized when dropped.
struct Statement(NonNull<ffi::sqlite3_stmt>);

impl Statement {
    fn prepare(db: NonNull<ffi::sqlite3>, sql: &str) -> QueryResult<Self> {
        let mut statement = ptr::null_mut();
        let length = c_int::try_from(sql.len()).map_err(|_| {
            DieselError::QueryBuilderError("a statement longer than SQLite takes".into())
        })?;
        // SAFETY: `db` is an open connection (see `LoginInserts`), `sql` is valid for
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

    /// Steps the bound statement once, then resets it and clears its values, so it holds no
    /// pointer to them (they are bound without a copy).
    fn run(&mut self, db: NonNull<ffi::sqlite3>) -> QueryResult<()> {
        // SAFETY: the statement is prepared and every value bound is alive until the
        // bindings are cleared below.
        let rc = unsafe { ffi::sqlite3_step(self.0.as_ptr()) };
        let outcome = match rc {
            ffi::SQLITE_DONE => Ok(()),
            rc => Err(last_error(db, rc)),
        };
        // SAFETY: as above; reset repeats the step's error, already taken.
        unsafe {
            ffi::sqlite3_reset(self.0.as_ptr());
            ffi::sqlite3_clear_bindings(self.0.as_ptr());
        }
        outcome
    }
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
    /// borrow of the rows being inserted ensures (see [`LoginInserts`]).
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
            // Cleared after every run, so already NULL.
            None => {
                self.next += 1;
                Ok(())
            }
        }
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
    use crate::db::login_statements::insert_users;
    use crate::db::login_statements::tests::{assert_login_stored, at, new_user};
    use crate::db::models::{NewLogin, NewUser, User};
    use crate::db::schema::users;
    use diesel::prelude::*;

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
            };
            writer
                .split()
                .1
                .insert_login(&InsertLogin::new(&login))
                .unwrap();
            assert_login_stored(writer.conn(), &login);
        }
    }

    #[test]
    fn a_refused_insert_reports_its_kind_and_leaves_the_statement_reusable() {
        let (_dir, mut writer) = writer_database();
        let (_, inserts) = writer.split();
        let taken = new_user(1, "oTaken", None);
        inserts.insert_users(&[InsertUser::new(&taken)]).unwrap();
        // Several rows at once, one of them an openid already stored.
        let again = [new_user(2, "oFresh", None), new_user(3, "oTaken", None)];
        let rows: Vec<_> = again.iter().map(InsertUser::new).collect();
        match inserts.insert_users(&rows) {
            Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info)) => {
                assert!(
                    info.message().contains("users.openid"),
                    "{}",
                    info.message()
                )
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
        };
        assert!(matches!(
            inserts.insert_login(&InsertLogin::new(&orphan)),
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
        let db = writer.inserts.db;
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
        };
        let login = InsertLogin::new(&login);
        type Bind<'r> = &'r dyn Fn(&mut Binder<'_>) -> QueryResult<()>;
        let cases: [(String, Bind); 2] = [
            (InsertUser::sql(rows.len()), &|b: &mut Binder<'_>| {
                rows.iter().try_for_each(|row| row.bind(b))
            }),
            (InsertLogin::sql(), &|b: &mut Binder<'_>| login.bind(b)),
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
    fn the_connection_closes_cleanly_with_its_statements_prepared() {
        let (_dir, mut writer) = writer_database();
        let users = [new_user(1, "oA", None), new_user(2, "oB", None)];
        let rows: Vec<_> = users.iter().map(InsertUser::new).collect();
        writer.split().1.insert_users(&rows).unwrap();
        // diesel panics when SQLite refuses to close a connection with statements left.
        drop(writer);
    }
}
