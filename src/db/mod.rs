//! The database: connection pool, SQLite settings, embedded migrations, models and queries.

mod admins;
mod console;
mod login_statements;
pub mod models;
mod nickname_index;
mod openid_index;
mod page_cache;
mod quick_reads;
pub mod schema;
mod sessions;
pub mod time;
mod tokens;
mod users;
mod wal_file;
mod writer;
mod writer_statements;

pub use admins::{AuditAction, AuditFilter};
pub use console::{
    like_contains, DashboardStats, StatusFilter, UserList, UserListQuery, UserSort,
    SEARCH_COUNT_CAP,
};
pub use nickname_index::{
    index_everyone as index_nicknames_now, MOST_AT_ONCE as NICKNAMES_PER_BATCH,
};
pub use page_cache::truncates_skipped as page_cache_truncates_skipped;
pub use quick_reads::batch_on_this_thread as batch_quick_reads_on_this_thread;
pub use sessions::DbSessionStore;
pub use tokens::{StoredToken, TokenLookup};
pub use users::{LoginAttempt, LoginOutcome};
pub use writer::LoginWriter;

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};
use diesel::Connection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

/// The connection type every query takes. A type alias, so moving to PostgreSQL changes
/// this line and the few SQLite-specific calls, not every signature.
pub type DbConnection = diesel::sqlite::SqliteConnection;
/// The backend [`DbConnection`] talks to, for statements written out by hand.
pub type DbBackend = diesel::sqlite::Sqlite;

/// A pool of connections to the database.
pub type DbPool = Pool<ConnectionManager<DbConnection>>;

/// The schema migrations, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// How long a writer waits for another writer before SQLite gives up with "database is
/// locked". Writes here are short transactions, so waiting is always better than failing.
const BUSY_TIMEOUT_MS: u32 = 5_000;

/// Connections in the pool. SQLite runs one writer at a time however many there are; more
/// connections only let reads (health checks, token checks, the console) run beside writes.
pub const POOL_SIZE: u32 = 8;

/// Per-connection settings, applied whenever the pool opens a connection.
#[derive(Debug)]
struct SqlitePragmas;

impl CustomizeConnection<DbConnection, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut DbConnection) -> Result<(), diesel::r2d2::Error> {
        apply_connection_pragmas(conn).map_err(diesel::r2d2::Error::QueryError)
    }
}

/// The settings (and SQL functions) every connection needs.
pub(crate) fn apply_connection_pragmas(conn: &mut DbConnection) -> diesel::QueryResult<()> {
    // synchronous=NORMAL in WAL mode: a commit survives a crash of the process (the WAL is
    // written before the reply), and only an OS crash or power cut can undo the last
    // transactions; FULL would fsync on every commit for that rare case.
    conn.batch_execute(&format!(
        "PRAGMA busy_timeout = {BUSY_TIMEOUT_MS};
         PRAGMA synchronous = NORMAL;
         PRAGMA foreign_keys = ON;"
    ))?;
    nickname_index::add_functions(conn)
}

/// Opens (creating when missing) the database at `database_url`, brings its schema up to
/// date and returns a pool of connections to it.
pub fn connect(database_url: &str) -> anyhow::Result<DbPool> {
    wal_file::install()?;
    if let Some(dir) = Path::new(database_url).parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the database folder {}", dir.display()))?;
        }
    }
    // WAL is a property of the file, set once here: setting it from every new pooled
    // connection races on a fresh file and fails with "database is locked".
    let mut first = DbConnection::establish(database_url)
        .with_context(|| format!("opening the database {database_url}"))?;
    first
        .batch_execute(&format!(
            "PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}; PRAGMA journal_mode = WAL;"
        ))
        .context("switching the database to WAL mode")?;
    first
        .run_pending_migrations(MIGRATIONS)
        .map_err(|e| anyhow::anyhow!("running database migrations: {e}"))?;

    let pool = Pool::builder()
        .max_size(POOL_SIZE)
        // A SQLite file connection does not go stale; r2d2's default check ran a `SELECT 1`
        // (parsed anew each time) before every piece of work.
        .test_on_check_out(false)
        .connection_timeout(Duration::from_secs(10))
        .connection_customizer(Box::new(SqlitePragmas))
        .build(ConnectionManager::new(database_url))
        .context("building the database pool")?;
    // Closed only once the pool's connections are open (`build` waits for them): SQLite
    // copies the whole WAL into the database when its last connection closes, and after a
    // crash under load the WAL holds up to a full WAL's worth of frames (128 MiB of distinct
    // pages: 0.37 s before the server answered). The upkeep thread copies it in the
    // background instead.
    drop(first);
    Ok(pool)
}

/// The one row a query on a unique key found, if any: `query.load(conn)` passed through this
/// instead of diesel's `first()`. `first()` adds a bound `LIMIT ?`, and the bundled SQLite
/// (built with STAT4) compiles such a statement anew on every run: a token check took 25 µs
/// instead of 5 (measured with diesel on this schema).
pub(crate) fn unique<T>(rows: diesel::QueryResult<Vec<T>>) -> diesel::QueryResult<Option<T>> {
    rows.map(|rows| rows.into_iter().next())
}

/// Current time as stored in the database: UTC, microsecond precision.
pub fn now() -> chrono::NaiveDateTime {
    use chrono::{DurationRound, TimeDelta};
    let now = chrono::Utc::now();
    now.duration_trunc(TimeDelta::microseconds(1))
        .unwrap_or(now)
        .naive_utc()
}

/// Runs `work`, a single indexed read that takes microseconds (a token check), right on the
/// async worker when a pooled connection is free at once; otherwise as [`run`] does. Handing
/// such a read to the blocking pool and back cost several times the read itself. Reads never
/// wait for SQLite's write lock in WAL mode, so this does not stall the worker. On a thread
/// set up with [`batch_quick_reads_on_this_thread`], reads asked for together share one
/// read transaction.
pub async fn run_quick_read<T, F>(pool: &DbPool, work: F) -> anyhow::Result<T>
where
    F: FnOnce(&mut DbConnection) -> anyhow::Result<T> + Send + 'static,
    T: Send + 'static,
{
    if quick_reads::batching() {
        return quick_reads::run_batched(work).await;
    }
    match pool.try_get() {
        Some(mut conn) => work(&mut conn),
        None => run(pool, work).await,
    }
}

/// Runs `work` on a pooled connection on the blocking thread pool, so a slow query or a
/// wait for SQLite's write lock never stalls the async workers.
pub async fn run<T, F>(pool: &DbPool, work: F) -> anyhow::Result<T>
where
    F: FnOnce(&mut DbConnection) -> anyhow::Result<T> + Send + 'static,
    T: Send + 'static,
{
    let pool = pool.clone();
    actix_web::web::block(move || {
        let mut conn = pool
            .get()
            .context("taking a database connection from the pool")?;
        work(&mut conn)
    })
    .await
    .context("running database work on the blocking pool")?
}

/// Brings the database of `conn` up to just before the migration whose name starts with
/// `name`, for tests of what that migration does to data an earlier release left.
#[cfg(test)]
pub(crate) fn migrate_to_just_before(conn: &mut DbConnection, name: &str) {
    use diesel::migration::MigrationSource;
    let before = MigrationSource::<DbBackend>::migrations(&MIGRATIONS)
        .unwrap()
        .iter()
        .position(|m| m.name().to_string().starts_with(name))
        .unwrap_or_else(|| panic!("no migration is called {name}"));
    for _ in 0..before {
        conn.run_next_migration(MIGRATIONS).unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::PresentedToken;
    use crate::db::models::IssuedToken;
    use diesel::RunQueryDsl;

    #[derive(diesel::QueryableByName)]
    struct CompileOption {
        #[diesel(sql_type = diesel::sql_types::Text)]
        compile_options: String,
    }

    #[test]
    fn opening_a_database_left_with_a_full_wal_does_not_copy_the_wal_first() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("w.db");
        let url = url.to_str().unwrap();
        let pool = connect(url).unwrap();
        let mut conn = pool.get().unwrap();
        conn.batch_execute(
            "PRAGMA wal_autocheckpoint = 0;
             CREATE TABLE filler (x BLOB);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
             INSERT INTO filler SELECT randomblob(3000) FROM n;",
        )
        .unwrap();
        // The files as a crash leaves them: the WAL still holds what was committed.
        let crashed = dir.path().join("crashed.db");
        for suffix in ["", "-wal"] {
            std::fs::copy(
                format!("{url}{suffix}"),
                format!("{}{suffix}", crashed.display()),
            )
            .unwrap();
        }
        let wal =
            |path: &Path| std::fs::metadata(format!("{}-wal", path.display())).map(|m| m.len());
        let left = wal(&crashed).unwrap();
        assert!(left > 200 * 3000, "the copy has its WAL ({left} bytes)");
        let reopened = connect(crashed.to_str().unwrap()).unwrap();
        assert_eq!(
            wal(&crashed).ok(),
            Some(left),
            "opening copied the WAL into the database before serving"
        );
        let rows: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
            "(SELECT count(*) FROM filler)",
        ))
        .get_result(&mut reopened.get().unwrap())
        .unwrap();
        assert_eq!(rows, 200, "what the WAL held is there");
    }

    #[test]
    fn sqlite_is_built_without_the_locks_this_server_never_needs() {
        // The options come from .cargo/config.toml; a build that lost them still works,
        // only slower, so nothing else would notice.
        let mut conn = DbConnection::establish(":memory:").unwrap();
        let options: Vec<String> = diesel::sql_query("PRAGMA compile_options")
            .load::<CompileOption>(&mut conn)
            .unwrap()
            .into_iter()
            .map(|o| o.compile_options)
            .collect();
        for wanted in [
            "DEFAULT_MEMSTATUS=0",
            "OMIT_SHARED_CACHE",
            "OMIT_PROGRESS_CALLBACK",
        ] {
            assert!(
                options.iter().any(|o| o == wanted),
                "SQLite was built without {wanted}: {options:?}"
            );
        }
        assert!(
            !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
            "SQLite was built with one page cache for all connections: {options:?}"
        );
        // Still the features the schema needs.
        assert!(options.iter().any(|o| o == "ENABLE_FTS5"), "{options:?}");
    }

    #[test]
    fn upgrading_keeps_users_their_earlier_tokens_and_their_place_in_search() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("old.db");
        let url = url.to_str().unwrap();
        let mut conn = DbConnection::establish(url).unwrap();
        // As before tokens moved onto logins and nicknames were indexed in batches.
        migrate_to_just_before(&mut conn, "2026-11-25-000004");
        // As the earlier release left them: one user renamed, one named late, one never, and a
        // token stored as the hash of the whole token.
        conn.batch_execute(
            "INSERT INTO users (openid, session_key, nickname, login_count, created_at,
                                updated_at, last_login_at)
             VALUES ('oOld1', 'k', 'Old Panda', 1, '2026-01-01 00:00:00', '2026-01-01 00:00:00', '2026-01-01 00:00:00'),
                    ('oOld2', 'k', NULL, 1, '2026-01-01 00:00:00', '2026-01-01 00:00:00', '2026-01-01 00:00:00'),
                    ('oOld3', 'k', NULL, 1, '2026-01-01 00:00:00', '2026-01-01 00:00:00', '2026-01-01 00:00:00');
             UPDATE users SET nickname = 'Renamed Koala' WHERE id = 1;
             UPDATE users SET nickname = 'Late Name' WHERE id = 2;",
        )
        .unwrap();
        let token = format!("wxl_{}", "5a".repeat(32));
        diesel::sql_query(
            "INSERT INTO login_tokens (user_id, token_hash, created_at, expires_at)
             VALUES (1, ?, '2026-01-01 00:00:00', '2999-01-01 00:00:00')",
        )
        .bind::<diesel::sql_types::Text, _>(crate::auth::hash_token(&token))
        .execute(&mut conn)
        .unwrap();
        drop(conn);

        let pool = connect(url).unwrap();
        let mut conn = pool.get().unwrap();
        match IssuedToken::check(&mut conn, &PresentedToken::parse(&token), now()).unwrap() {
            TokenLookup::Valid(user, _) => assert_eq!(user.openid, "oOld1"),
            other => panic!("the earlier token no longer works: {other:?}"),
        }
        let query = |term: &str| UserListQuery {
            search: Some(term.to_owned()),
            status: StatusFilter::All,
            sort: UserSort::CreatedAsc,
            page: 1,
            per_page: 10,
        };
        let found = |conn: &mut DbConnection, term: &str| -> Vec<String> {
            crate::db::models::User::list(conn, &query(term))
                .unwrap()
                .users
                .into_iter()
                .map(|u| u.openid)
                .collect()
        };
        assert_eq!(found(&mut conn, "Koala"), ["oOld1"]);
        assert!(found(&mut conn, "Old Panda").is_empty());
        assert_eq!(found(&mut conn, "Late Name"), ["oOld2"]);
        conn.batch_execute(
            "INSERT INTO users_nickname_fts (users_nickname_fts, rank) VALUES ('integrity-check', 1)",
        )
        .expect("the rebuilt nickname index matches the table");
        // The one- and two-character index starts from nobody and catches up in batches:
        // the same answers before and after.
        for round in ["before the short-term index", "after it"] {
            assert_eq!(found(&mut conn, "ko"), ["oOld1"], "{round}");
            assert_eq!(found(&mut conn, "e"), ["oOld1", "oOld2"], "{round}");
            nickname_index::index_everyone(&mut conn).unwrap();
        }
    }

    #[test]
    fn upgrading_chains_each_users_stored_logins_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("chain.db");
        let url = url.to_str().unwrap();
        let mut conn = DbConnection::establish(url).unwrap();
        migrate_to_just_before(&mut conn, "2026-12-01-000010");
        conn.batch_execute(
            "INSERT INTO users (id, openid, session_key, login_count, created_at, updated_at,
                                last_login_at)
             VALUES (1, 'oOne', 'k', 3, '2026-01-01 00:00:00', '2026-01-01 00:00:00', '2026-01-01 00:00:00'),
                    (2, 'oTwo', 'k', 1, '2026-01-01 00:00:00', '2026-01-01 00:00:00', '2026-01-01 00:00:00'),
                    (3, 'oNone', 'k', 0, '2026-01-01 00:00:00', '2026-01-01 00:00:00', '2026-01-01 00:00:00');
             INSERT INTO logins (id, user_id, logged_in_at)
             VALUES (10, 1, '2026-01-01 00:00:00'), (11, 2, '2026-01-01 00:00:00'),
                    (12, 1, '2026-01-01 00:00:00'), (15, 1, '2026-01-01 00:00:00');",
        )
        .unwrap();
        drop(conn);

        let pool = connect(url).unwrap();
        let mut conn = pool.get().unwrap();
        let listed = |conn: &mut DbConnection, id: i64| -> Vec<i64> {
            models::User::recent_logins(conn, id, 50)
                .unwrap()
                .iter()
                .map(|l| l.id)
                .collect()
        };
        assert_eq!(listed(&mut conn, 1), [15, 12, 10]);
        assert_eq!(listed(&mut conn, 2), [11]);
        assert!(listed(&mut conn, 3).is_empty());
        let last = |conn: &mut DbConnection, id: i64| {
            models::User::find(conn, id).unwrap().unwrap().last_login_id
        };
        assert_eq!(
            [1, 2, 3].map(|id| last(&mut conn, id)),
            [Some(15), Some(11), None]
        );
        let indexes: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
            "(SELECT count(*) FROM sqlite_schema WHERE name = 'logins_user_id')",
        ))
        .get_result(&mut conn)
        .unwrap();
        assert_eq!(indexes, 0, "logins are no longer indexed by user");
    }

    #[test]
    fn upgrading_moves_every_openid_into_the_lookup_keeping_users_logins_and_uniqueness() {
        use diesel::QueryDsl;
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("openids.db");
        let url = url.to_str().unwrap();
        let mut conn = DbConnection::establish(url).unwrap();
        migrate_to_just_before(&mut conn, "2026-12-03-000011");
        conn.batch_execute(
            "INSERT INTO users (id, openid, session_key, nickname, login_count, created_at,
                                updated_at, last_login_at, last_login_id)
             VALUES (4, 'oFour', 'k', 'Koala', 1, '2026-01-01 00:00:00', '2026-01-01 00:00:00', '2026-01-01 00:00:00', 20),
                    (9, 'oNine', 'k', NULL, 0, '2026-01-02 00:00:00', '2026-01-02 00:00:00', '2026-01-02 00:00:00', NULL);
             INSERT INTO logins (id, user_id, logged_in_at) VALUES (20, 4, '2026-01-01 00:00:00');",
        )
        .unwrap();
        drop(conn);

        let pool = connect(url).unwrap();
        let mut conn = pool.get().unwrap();
        let stored = models::User::find(&mut conn, 4).unwrap().unwrap();
        assert_eq!(
            (
                stored.openid.as_str(),
                stored.nickname.as_deref(),
                stored.last_login_id
            ),
            ("oFour", Some("Koala"), Some(20))
        );
        assert_eq!(
            models::User::find_by_openid(&mut conn, "oNine")
                .unwrap()
                .unwrap()
                .id,
            9
        );
        let lookup: Vec<(String, i64)> = schema::user_openids::table
            .select((schema::user_openids::openid, schema::user_openids::user_id))
            .load(&mut conn)
            .unwrap();
        assert_eq!(lookup, [("oFour".to_owned(), 4), ("oNine".to_owned(), 9)]);
        let through: i64 = schema::user_openids_progress::table
            .select(schema::user_openids_progress::indexed_through)
            .get_result(&mut conn)
            .unwrap();
        assert_eq!(through, 9);
        let broken: Vec<i64> = diesel::sql_query("PRAGMA foreign_key_check")
            .load::<ForeignKeyProblem>(&mut conn)
            .unwrap()
            .into_iter()
            .map(|p| p.rowid)
            .collect();
        assert!(
            broken.is_empty(),
            "logins refer to users that are gone: {broken:?}"
        );
        // The lookup's key refuses a second user with a stored openid.
        let refused =
            conn.batch_execute("INSERT INTO user_openids (openid, user_id) VALUES ('oNine', 10)");
        assert!(refused.is_err());
    }

    #[derive(diesel::QueryableByName)]
    struct ForeignKeyProblem {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        rowid: i64,
    }

    #[test]
    fn every_migration_reverts_and_applies_again_keeping_the_users() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("down.db");
        let url = url.to_str().unwrap();
        drop(connect(url).unwrap());
        let mut conn = DbConnection::establish(url).unwrap();
        conn.batch_execute(
            "INSERT INTO users (openid, session_key, nickname, login_count, created_at,
                                updated_at, last_login_at)
             VALUES ('oKept', 'k', '熊猫', 1, '2026-01-01 00:00:00', '2026-01-01 00:00:00',
                     '2026-01-01 00:00:00')",
        )
        .unwrap();
        nickname_index::index_everyone(&mut conn).unwrap();
        // Down to the first migration (the users table itself stays), then up again.
        let applied = conn.applied_migrations().unwrap().len();
        for _ in 1..applied {
            conn.revert_last_migration(MIGRATIONS).unwrap();
        }
        conn.run_pending_migrations(MIGRATIONS).unwrap();
        let pool = connect(url).unwrap();
        let mut conn = pool.get().unwrap();
        nickname_index::index_everyone(&mut conn).unwrap();
        let list = crate::db::models::User::list(
            &mut conn,
            &UserListQuery {
                search: Some("猫".into()),
                status: StatusFilter::All,
                sort: UserSort::CreatedAsc,
                page: 1,
                per_page: 10,
            },
        )
        .unwrap();
        let openids: Vec<_> = list.users.into_iter().map(|u| u.openid).collect();
        assert_eq!(openids, ["oKept"]);
    }
}
