//! The statements of a login, written out for the login writer.
//!
//! diesel runs a query in three walks of its syntax tree: one to ask whether the statement
//! may stay prepared, one for the cache of prepared statements, one to collect the values
//! to bind. For a derived `Insertable` each walk visits every column's value through a
//! generic layer per column, and `update()` builds its SQL anew on every call. Under
//! callgrind those walks were about a third of the login writer's instructions, more than
//! SQLite's own work on the rows. These statements have a fixed text, say once that they
//! may stay prepared, and bind their values directly. Plain SQL that PostgreSQL takes too.

use chrono::NaiveDateTime;
use diesel::expression::SelectableHelper;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};
use diesel::{QueryResult, RunQueryDsl};

use super::models::{NewLogin, NewUser, User};
use super::time::TimeText;
use super::writer_statements::Binder;
use super::{DbBackend, DbConnection};

/// Marks a statement whose text never varies: diesel finds it prepared by its type alone,
/// and need not walk it to learn whether it may stay prepared.
macro_rules! fixed_statement {
    ($name:ident) => {
        impl QueryId for $name<'_> {
            type QueryId = $name<'static>;
            const HAS_STATIC_QUERY_ID: bool = true;
        }

        impl RunQueryDsl<DbConnection> for $name<'_> {}
    };
}

type UserColumns = diesel::helper_types::AsSelect<User, DbBackend>;

/// `SELECT` of a user's columns in the order `User` reads them, for the writer's statements.
macro_rules! select_user_from_users {
    () => {
        "SELECT id, openid, unionid, session_key, nickname, avatar_url, disabled_at, \
         disabled_reason, login_count, created_at, updated_at, last_login_at, last_login_id \
         FROM users"
    };
}

/// `SELECT` the user with an openid.
pub struct UserByOpenid<'a> {
    openid: &'a str,
    columns: UserColumns,
}

impl<'a> UserByOpenid<'a> {
    /// The statement that reads the user whose openid is `openid`.
    pub fn new(openid: &'a str) -> Self {
        Self {
            openid,
            columns: User::as_select(),
        }
    }
}

impl QueryFragment<DbBackend> for UserByOpenid<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DbBackend>) -> QueryResult<()> {
        // The user in the openid lookup, or among the newest users, which may not be there
        // yet (see `openid_index`). UNION: a user can be in both while it is moved over.
        out.push_sql("SELECT ");
        // The columns in the order `User` reads them, from its own selection.
        self.columns.walk_ast(out.reborrow())?;
        out.push_sql(" FROM users WHERE id = (SELECT user_id FROM user_openids WHERE openid = ");
        out.push_bind_param::<Text, _>(&self.openid)?;
        out.push_sql(") UNION SELECT ");
        self.columns.walk_ast(out.reborrow())?;
        out.push_sql(
            " FROM users WHERE id > (SELECT indexed_through FROM user_openids_progress) \
             AND openid = ",
        );
        out.push_bind_param::<Text, _>(&self.openid)?;
        Ok(())
    }

    fn is_safe_to_cache_prepared(&self, _: &DbBackend) -> QueryResult<bool> {
        Ok(true)
    }
}

impl UserByOpenid<'_> {
    /// The login writer's prepared lookup, the columns in the order `User` reads them (a
    /// test reads a user both ways): the user in the openid lookup (`?1` the openid), or
    /// among the users above `?2`, which the writer has not seen (see `openid_index`; the
    /// ones it has seen it finds in memory).
    pub const SQL: &'static str = concat!(
        select_user_from_users!(),
        " WHERE id = (SELECT user_id FROM user_openids WHERE openid = ?1) UNION ALL ",
        select_user_from_users!(),
        " WHERE id > ?2 AND openid = ?1"
    );

    /// Adds a user to the openid lookup unless its openid is there (see `openid_index`).
    pub const ADD_TO_LOOKUP_SQL: &'static str = "INSERT INTO user_openids (openid, user_id) \
        VALUES (?, ?) ON CONFLICT (openid) DO NOTHING";

    /// The login writer's prepared read of a user it knows the id of.
    pub const BY_ID_SQL: &'static str = concat!(select_user_from_users!(), " WHERE id = ?");
}

impl Query for UserByOpenid<'_> {
    type SqlType = diesel::helper_types::SqlTypeOf<UserColumns>;
}

fixed_statement!(UserByOpenid);

/// `INSERT` a new user, every column given (`None` as NULL).
#[derive(Clone)]
pub struct InsertUser<'a> {
    user: &'a NewUser<'a>,
    created_at: TimeText,
    updated_at: TimeText,
    last_login_at: TimeText,
}

impl<'a> InsertUser<'a> {
    /// The statement that inserts `user`.
    pub fn new(user: &'a NewUser<'a>) -> Self {
        let created_at = TimeText::new(&user.created_at);
        Self {
            user,
            // A new user's three times are one login's time: formatted once.
            updated_at: same_or_new(&created_at, user.created_at, user.updated_at),
            last_login_at: same_or_new(&created_at, user.created_at, user.last_login_at),
            created_at,
        }
    }
}

/// `text` (the formatting of `time`) again when `other` is the same time, else `other`'s.
fn same_or_new(text: &TimeText, time: NaiveDateTime, other: NaiveDateTime) -> TimeText {
    if other == time {
        text.clone()
    } else {
        TimeText::new(&other)
    }
}

impl InsertUser<'_> {
    const INTO: &'static str = "INSERT INTO users (id, openid, unionid, session_key, nickname, \
        avatar_url, login_count, created_at, updated_at, last_login_at, last_login_id) VALUES ";
    /// Values a row binds.
    const VALUES: usize = 11;

    /// The text of an insert of `rows` users, as [`InsertUsers`] (or, for one, this) has
    /// diesel write it.
    pub fn sql(rows: usize) -> String {
        insert_text(Self::INTO, Self::VALUES, rows)
    }

    /// Binds the row's values, in the order of [`Self::INTO`].
    pub fn bind(&self, to: &mut Binder<'_>) -> QueryResult<()> {
        let user = self.user;
        to.int(user.id)?;
        to.text(user.openid)?;
        to.optional_text(user.unionid)?;
        to.text(user.session_key)?;
        to.optional_text(user.nickname)?;
        to.optional_text(user.avatar_url)?;
        to.int(user.login_count)?;
        to.text(self.created_at.as_str())?;
        to.text(self.updated_at.as_str())?;
        to.text(self.last_login_at.as_str())?;
        to.optional_int(user.last_login_id)
    }

    /// The row's parenthesised values.
    fn walk_values<'b>(&'b self, out: &mut AstPass<'_, 'b, DbBackend>) -> QueryResult<()> {
        let user = self.user;
        out.push_sql("(");
        out.push_bind_param::<BigInt, _>(&user.id)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&user.openid)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&user.unionid)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&user.session_key)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&user.nickname)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&user.avatar_url)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&user.login_count)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamp, _>(&self.created_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamp, _>(&self.updated_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamp, _>(&self.last_login_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<BigInt>, _>(&user.last_login_id)?;
        out.push_sql(")");
        Ok(())
    }
}

impl QueryFragment<DbBackend> for InsertUser<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DbBackend>) -> QueryResult<()> {
        out.push_sql(Self::INTO);
        self.walk_values(&mut out)
    }

    fn is_safe_to_cache_prepared(&self, _: &DbBackend) -> QueryResult<bool> {
        Ok(true)
    }
}

fixed_statement!(InsertUser);

/// `INSERT` a login, every column given (`None` as NULL).
pub struct InsertLogin<'a> {
    login: &'a NewLogin<'a>,
    logged_in_at: TimeText,
    token_expires_at: TimeText,
}

impl<'a> InsertLogin<'a> {
    /// The statement that inserts `login`.
    pub fn new(login: &'a NewLogin<'a>) -> Self {
        Self {
            login,
            logged_in_at: TimeText::new(&login.logged_in_at),
            token_expires_at: TimeText::new(&login.token_expires_at),
        }
    }
}

impl InsertLogin<'_> {
    const INTO: &'static str = "INSERT INTO logins (id, user_id, logged_in_at, ip, user_agent, \
        token_hash, token_expires_at, previous_login_id) VALUES ";
    /// Values a login binds.
    const VALUES: usize = 8;

    /// The text of an insert of `rows` logins: for one, the statement as diesel writes it.
    /// For several (the login writer's), as with [`InsertUsers`], a conflict rolls the whole
    /// transaction back rather than keep a statement journal for it; a login whose user is
    /// missing still ends only the statement, as SQLite checks foreign keys apart from the
    /// conflict clause.
    pub fn sql(rows: usize) -> String {
        insert_text(Self::INTO, Self::VALUES, rows)
    }

    /// Binds the login's values, in the order of [`Self::INTO`].
    pub fn bind(&self, to: &mut Binder<'_>) -> QueryResult<()> {
        let login = self.login;
        to.int(login.id)?;
        to.int(login.user_id)?;
        to.text(self.logged_in_at.as_str())?;
        to.optional_text(login.ip)?;
        to.optional_text(login.user_agent)?;
        to.text(login.token_hash)?;
        to.text(self.token_expires_at.as_str())?;
        to.optional_int(login.previous_login_id)
    }
}

/// `(?, ?, …)` with `n` parameters: a row of values as diesel writes it for SQLite.
fn values_text(n: usize) -> String {
    format!("({})", vec!["?"; n].join(", "))
}

/// The text of `into` (an `INSERT INTO … VALUES `) with `rows` rows of `values` parameters:
/// a plain `INSERT` for one row, `INSERT OR ROLLBACK` for several (see [`InsertUsers`]).
fn insert_text(into: &str, values: usize, rows: usize) -> String {
    let head = if rows > 1 {
        format!("INSERT OR ROLLBACK{}", &into["INSERT".len()..])
    } else {
        into.to_owned()
    };
    head + &vec![values_text(values); rows].join(", ")
}

impl QueryFragment<DbBackend> for InsertLogin<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DbBackend>) -> QueryResult<()> {
        let login = self.login;
        out.push_sql(Self::INTO);
        out.push_sql("(");
        out.push_bind_param::<BigInt, _>(&login.id)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&login.user_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamp, _>(&self.logged_in_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&login.ip)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&login.user_agent)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&login.token_hash)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamp, _>(&self.token_expires_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<BigInt>, _>(&login.previous_login_id)?;
        out.push_sql(")");
        Ok(())
    }

    fn is_safe_to_cache_prepared(&self, _: &DbBackend) -> QueryResult<bool> {
        Ok(true)
    }
}

fixed_statement!(InsertLogin);

/// One `INSERT` of exactly `N` users (two or more), for the login writer: a batch's new
/// users in a few statements rather than one each. Each statement cost the writer its own
/// binding, step, reset and cache lookup (callgrind, `writer_micro` with `TASKS=16`: the writer's
/// instructions per new user 69.4k -> 61.6k with this and the formatting of times once).
/// `N` is part of the type, so each size is prepared once and found by its type; a batch is
/// cut into sizes that are powers of two (see [`insert_users`]), so at most
/// [`MOST_ROWS_AT_ONCE`]`.ilog2()` of these are ever prepared. (The login writer inserts
/// logins the same way, through [`InsertLogin::sql`]: see `LoginBatch::finish`.)
pub struct InsertUsers<'a, const N: usize> {
    rows: &'a [InsertUser<'a>],
}

/// Rows one statement inserts at most.
pub const MOST_ROWS_AT_ONCE: usize = 64;

impl<const N: usize> QueryFragment<DbBackend> for InsertUsers<'_, N> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DbBackend>) -> QueryResult<()> {
        debug_assert_eq!(
            self.rows.len(),
            N,
            "the statement's text is cached by its size"
        );
        // A statement that may fail after inserting some of its rows keeps a statement
        // journal to undo just those: a temporary file, opened, written and deleted by
        // every such statement (sys time per login up by half). OR ROLLBACK undoes the
        // whole transaction instead, which needs no journal, and the writer rolls a failed
        // batch back anyway. (PostgreSQL ends a transaction on an error by itself; there
        // the plain INSERT is the same.) A single user goes in as an [`InsertUser`], a plain
        // INSERT, which needs no journal: so a one-login transaction run by diesel's
        // transaction manager, which would not expect SQLite to have ended it, never sees
        // this.
        out.push_sql("INSERT OR ROLLBACK");
        out.push_sql(&InsertUser::INTO["INSERT".len()..]);
        for (i, row) in self.rows.iter().enumerate() {
            if i > 0 {
                out.push_sql(", ");
            }
            row.walk_values(&mut out)?;
        }
        Ok(())
    }

    fn is_safe_to_cache_prepared(&self, _: &DbBackend) -> QueryResult<bool> {
        Ok(true)
    }
}

impl<const N: usize> QueryId for InsertUsers<'_, N> {
    type QueryId = InsertUsers<'static, N>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<const N: usize> RunQueryDsl<DbConnection> for InsertUsers<'_, N> {}

/// Inserts every user of `rows`, in statements of a power-of-two number of rows, the
/// largest that fit, up to [`MOST_ROWS_AT_ONCE`] (37 rows: 32, 4, 1).
pub fn insert_users(conn: &mut DbConnection, mut rows: &[InsertUser<'_>]) -> QueryResult<()> {
    while !rows.is_empty() {
        let n = 1 << rows.len().min(MOST_ROWS_AT_ONCE).ilog2();
        let (chunk, rest) = rows.split_at(n);
        match n {
            64 => InsertUsers::<64> { rows: chunk }.execute(conn),
            32 => InsertUsers::<32> { rows: chunk }.execute(conn),
            16 => InsertUsers::<16> { rows: chunk }.execute(conn),
            8 => InsertUsers::<8> { rows: chunk }.execute(conn),
            4 => InsertUsers::<4> { rows: chunk }.execute(conn),
            2 => InsertUsers::<2> { rows: chunk }.execute(conn),
            // The single-row statement the one-login path prepares anyway.
            _ => chunk[0].clone().execute(conn),
        }?;
        rows = rest;
    }
    Ok(())
}

/// The `UPDATE` of a returning login. Every column is always set, what the login did not
/// bring to its stored value; the nickname, which a login rarely changes, has a statement
/// of its own, so the trigger on it is compiled into only that one (diesel's `update()`
/// prepared this anew on every login, the trigger with it: a fifth of the writer's time).
pub struct ReturningLoginUpdate<'a> {
    /// The user's id.
    pub id: i64,
    /// The unionid to store.
    pub unionid: Option<&'a str>,
    /// The new session_key.
    pub session_key: &'a str,
    /// The avatar to store.
    pub avatar_url: Option<&'a str>,
    /// The count, this login included.
    pub login_count: i64,
    /// The time of the login.
    pub now: TimeText,
    /// The login's row (see [`User::last_login_id`]).
    pub last_login_id: i64,
}

impl QueryFragment<DbBackend> for ReturningLoginUpdate<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DbBackend>) -> QueryResult<()> {
        out.push_sql("UPDATE users SET unionid = ");
        out.push_bind_param::<Nullable<Text>, _>(&self.unionid)?;
        out.push_sql(", session_key = ");
        out.push_bind_param::<Text, _>(&self.session_key)?;
        out.push_sql(", avatar_url = ");
        out.push_bind_param::<Nullable<Text>, _>(&self.avatar_url)?;
        out.push_sql(", login_count = ");
        out.push_bind_param::<BigInt, _>(&self.login_count)?;
        out.push_sql(", updated_at = ");
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        out.push_sql(", last_login_at = ");
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        out.push_sql(", last_login_id = ");
        out.push_bind_param::<BigInt, _>(&self.last_login_id)?;
        out.push_sql(" WHERE id = ");
        out.push_bind_param::<BigInt, _>(&self.id)?;
        Ok(())
    }

    fn is_safe_to_cache_prepared(&self, _: &DbBackend) -> QueryResult<bool> {
        Ok(true)
    }
}

fixed_statement!(ReturningLoginUpdate);

impl ReturningLoginUpdate<'_> {
    /// The text diesel writes for this statement (a test compares them).
    pub const SQL: &'static str = "UPDATE users SET unionid = ?, session_key = ?, \
        avatar_url = ?, login_count = ?, updated_at = ?, last_login_at = ?, last_login_id = ? \
        WHERE id = ?";

    /// Binds the values, in the order of [`Self::SQL`].
    pub fn bind(&self, to: &mut Binder<'_>) -> QueryResult<()> {
        to.optional_text(self.unionid)?;
        to.text(self.session_key)?;
        to.optional_text(self.avatar_url)?;
        to.int(self.login_count)?;
        to.text(self.now.as_str())?;
        to.text(self.now.as_str())?;
        to.int(self.last_login_id)?;
        to.int(self.id)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::db::models::{IssuedToken, Login};
    use crate::db::schema::{logins, users};
    use chrono::NaiveDateTime;
    use diesel::prelude::*;

    fn fresh_database() -> (tempfile::TempDir, crate::db::DbPool) {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("s.db");
        let pool = crate::db::connect(url.to_str().unwrap()).unwrap();
        (dir, pool)
    }

    /// The time `text` (`%Y-%m-%d %H:%M:%S%.f`).
    pub(crate) fn at(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").unwrap()
    }

    /// A user to insert, with `optional` in every optional text column.
    pub(crate) fn new_user<'a>(id: i64, openid: &'a str, optional: Option<&'a str>) -> NewUser<'a> {
        NewUser {
            id,
            openid,
            unionid: optional,
            session_key: "sk",
            nickname: optional,
            avatar_url: optional,
            login_count: 3,
            created_at: at("2026-11-25 01:02:03.456789"),
            updated_at: at("2026-11-25 04:05:06"),
            last_login_at: at("2026-11-25 07:08:09.5"),
            last_login_id: optional.map(|_| 4242),
        }
    }

    #[test]
    fn a_user_inserted_here_reads_back_as_diesel_reads_it_column_for_column() {
        let (_dir, pool) = fresh_database();
        let conn = &mut pool.get().unwrap();
        for (id, openid, optional) in [(1, "oAll", Some("x")), (2, "oNone", None)] {
            let inserted = new_user(id, openid, optional);
            InsertUser::new(&inserted).execute(conn).unwrap();
            let by_dsl = users::table
                .filter(users::openid.eq(openid))
                .select(User::as_select())
                .first::<User>(conn)
                .unwrap();
            let read = UserByOpenid::new(openid).load::<User>(conn).unwrap();
            assert_eq!(read, std::slice::from_ref(&by_dsl));
            assert_eq!(
                (
                    by_dsl.id,
                    by_dsl.unionid.as_deref(),
                    by_dsl.nickname.as_deref()
                ),
                (id, optional, optional)
            );
            assert_eq!(by_dsl.avatar_url.as_deref(), optional);
            assert_eq!(by_dsl.session_key, "sk");
            assert_eq!(by_dsl.login_count, 3);
            assert_eq!(
                (by_dsl.created_at, by_dsl.updated_at, by_dsl.last_login_at),
                (
                    inserted.created_at,
                    inserted.updated_at,
                    inserted.last_login_at
                )
            );
        }
        assert!(UserByOpenid::new("oNobody")
            .load::<User>(conn)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn rows_inserted_together_are_all_stored_whatever_their_number() {
        let (_dir, pool) = fresh_database();
        let conn = &mut pool.get().unwrap();
        // 1, a power of two, the most at once and past it, and sizes that need every size.
        let mut next: i64 = 1;
        for count in [1, 2, 37, MOST_ROWS_AT_ONCE, MOST_ROWS_AT_ONCE * 2 + 7] {
            let count = count as i64;
            let openids: Vec<String> = (next..next + count).map(|i| format!("o{i}")).collect();
            let users: Vec<NewUser> = openids
                .iter()
                .zip(next..)
                .map(|(openid, id)| new_user(id, openid, (id % 2 == 0).then_some("even")))
                .collect();
            let rows: Vec<InsertUser> = users.iter().map(InsertUser::new).collect();
            insert_users(conn, &rows).unwrap();
            for user in &users {
                let stored = UserByOpenid::new(user.openid).load::<User>(conn).unwrap();
                assert_eq!(stored.len(), 1, "{} is stored once", user.openid);
                assert_eq!(
                    (stored[0].id, stored[0].nickname.as_deref()),
                    (user.id, user.nickname)
                );
                assert_eq!(stored[0].created_at, user.created_at);
            }
            next += count;
        }
        let stored: i64 = users::table.count().get_result(conn).unwrap();
        assert_eq!(stored, next - 1);
    }

    #[test]
    fn a_login_inserted_here_keeps_every_column() {
        let (_dir, pool) = fresh_database();
        let conn = &mut pool.get().unwrap();
        InsertUser::new(&new_user(7, "oLogin", None))
            .execute(conn)
            .unwrap();
        let login = NewLogin {
            id: 40,
            user_id: 7,
            logged_in_at: at("2026-11-25 10:11:12.131415"),
            ip: Some("203.0.113.9"),
            user_agent: None,
            token_hash: "ab12",
            token_expires_at: at("2026-12-02 10:11:12.131415"),
            previous_login_id: Some(39),
        };
        InsertLogin::new(&login).execute(conn).unwrap();
        assert_login_stored(conn, &login);
    }

    /// Asserts that `login` is stored, every column as given and its token not revoked.
    pub(crate) fn assert_login_stored(conn: &mut DbConnection, login: &NewLogin) {
        let stored = logins::table
            .find(login.id)
            .select(Login::as_select())
            .first::<Login>(conn)
            .unwrap();
        assert_eq!(
            (
                stored.user_id,
                stored.logged_in_at,
                stored.previous_login_id
            ),
            (login.user_id, login.logged_in_at, login.previous_login_id)
        );
        assert_eq!(
            (stored.ip.as_deref(), stored.user_agent.as_deref()),
            (login.ip, login.user_agent)
        );
        let token = logins::table
            .find(login.id)
            .select(IssuedToken::as_select())
            .first::<IssuedToken>(conn)
            .unwrap();
        assert_eq!(token.token_hash.as_deref(), Some(login.token_hash));
        assert_eq!(token.token_expires_at, Some(login.token_expires_at));
        assert_eq!(token.token_revoked_at, None);
    }
}
