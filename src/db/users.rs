use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::login_statements::{InsertLogin, InsertUser, ReturningLoginUpdate, UserByOpenid};
use super::models::{IssuedToken, Login, NewLogin, NewUser, User};
use super::schema::{logins, users};
use super::time::DbTime;
use super::DbConnection;
use crate::domain::{AvatarUrl, Nickname, PLACEHOLDER_NICKNAME};

/// Everything a successful code2Session exchange lets us record. Owned, so it can be handed
/// to the login writer's thread. No `Debug`: it holds the session_key.
pub struct LoginAttempt {
    /// From WeChat.
    pub openid: String,
    /// From WeChat, when it sent one.
    pub unionid: Option<String>,
    /// From WeChat.
    pub session_key: String,
    /// From the client, when it sent one.
    pub nickname: Option<Nickname>,
    /// From the client, when it sent one.
    pub avatar_url: Option<AvatarUrl>,
    /// The client's address.
    pub ip: Option<String>,
    /// The client's User-Agent.
    pub user_agent: Option<String>,
    /// Hash of the secret of the token to issue.
    pub token_hash: String,
    /// When the token stops working.
    pub token_expires_at: NaiveDateTime,
    /// The time of the login.
    pub now: NaiveDateTime,
}

/// What a login did.
#[derive(Debug)]
pub enum LoginOutcome {
    /// The user is logged in and the token issued.
    LoggedIn {
        /// The user as stored after the login.
        user: Box<User>,
        /// The login's row, which holds the token and which the token names.
        login_id: i64,
        /// True when this login created the user.
        is_new: bool,
    },
    /// The user is disabled: nothing was changed and no token issued.
    Disabled,
}

/// Changes a profile update makes; `None` fields are left as they are.
#[derive(AsChangeset)]
#[diesel(table_name = users)]
struct ProfileChange<'a> {
    nickname: Option<&'a str>,
    avatar_url: Option<&'a str>,
    updated_at: NaiveDateTime,
}

/// The nickname to store when a client sends `given` and the user has `current`: WeChat's
/// anonymous placeholder never replaces a real name.
fn nickname_to_store<'a>(current: Option<&str>, given: Option<&'a Nickname>) -> Option<&'a str> {
    let given = given?;
    let current_is_real = current.is_some_and(|c| c != PLACEHOLDER_NICKNAME);
    if given.is_placeholder() && current_is_real {
        None
    } else {
        Some(given.as_str())
    }
}

/// The ids the next user and the next login inserted will get, read inside the write
/// transaction that inserts them: its write lock means nobody else inserts meanwhile.
///
/// Giving ids explicitly instead of reading them back (`RETURNING`) is worth it on the
/// login path: SQLite runs `RETURNING` as a trigger, and a statement with a trigger keeps a
/// statement journal, a copy of every page it touches (about a sixth of the login writer's
/// time in the profile). On PostgreSQL, with many writers, `RETURNING id` is the way.
#[derive(Debug)]
pub struct NextIds {
    user: i64,
    login: i64,
}

impl NextIds {
    /// Reads the next free ids; call it inside the write transaction that uses them.
    pub fn read(conn: &mut DbConnection) -> QueryResult<Self> {
        let user: Option<i64> = users::table
            .select(diesel::dsl::max(users::id))
            .get_result(conn)?;
        let login: Option<i64> = logins::table
            .select(diesel::dsl::max(logins::id))
            .get_result(conn)?;
        Ok(Self {
            user: user.unwrap_or(0) + 1,
            login: login.unwrap_or(0) + 1,
        })
    }

    fn take_user(&mut self) -> i64 {
        self.user += 1;
        self.user - 1
    }

    fn take_login(&mut self) -> i64 {
        self.login += 1;
        self.login - 1
    }
}

impl User {
    /// The user with this id.
    pub fn find(conn: &mut DbConnection, id: i64) -> QueryResult<Option<User>> {
        super::unique(users::table.find(id).select(User::as_select()).load(conn))
    }

    /// The user with this openid.
    pub fn find_by_openid(conn: &mut DbConnection, openid: &str) -> QueryResult<Option<User>> {
        super::unique(
            users::table
                .filter(users::openid.eq(openid))
                .select(User::as_select())
                .load(conn),
        )
    }

    /// Creates or updates the user behind `attempt`, issues its token and records the
    /// login, all in one transaction; changes nothing for a disabled user.
    pub fn record_login(
        conn: &mut DbConnection,
        attempt: &LoginAttempt,
    ) -> QueryResult<LoginOutcome> {
        // IMMEDIATE takes the write lock up front. A deferred transaction that reads and
        // then writes can fail at once with "database is locked" when another writer got
        // in between; taking the lock first makes concurrent logins wait their turn (the
        // busy timeout), and makes "look up, then insert" atomic for racing first logins.
        conn.immediate_transaction(|conn| {
            let mut ids = NextIds::read(conn)?;
            Self::record_login_in_transaction(conn, attempt, &mut ids)
        })
    }

    /// [`User::record_login`]'s work, for a caller that already holds a write transaction
    /// (the login writer's batch) and read `ids` in it. On error the caller must roll back
    /// what this did.
    pub fn record_login_in_transaction(
        conn: &mut DbConnection,
        attempt: &LoginAttempt,
        ids: &mut NextIds,
    ) -> QueryResult<LoginOutcome> {
        let existing = super::unique(UserByOpenid::new(&attempt.openid).load::<User>(conn))?;
        let (user, is_new) = match existing {
            Some(existing) if existing.is_disabled() => return Ok(LoginOutcome::Disabled),
            Some(existing) => (Self::update_on_login(conn, &existing, attempt)?, false),
            None => (Self::insert_on_login(conn, attempt, ids.take_user())?, true),
        };
        let login_id = ids.take_login();
        InsertLogin::new(&NewLogin {
            id: login_id,
            user_id: user.id,
            logged_in_at: attempt.now,
            ip: attempt.ip.as_deref(),
            user_agent: attempt.user_agent.as_deref(),
            token_hash: &attempt.token_hash,
            token_expires_at: attempt.token_expires_at,
        })
        .execute(conn)?;
        Ok(LoginOutcome::LoggedIn {
            user: Box::new(user),
            login_id,
            is_new,
        })
    }

    /// Creates the user with id `id`. The row is built here from what was inserted rather
    /// than read back: reading it back cost more than writing it.
    fn insert_on_login(
        conn: &mut DbConnection,
        attempt: &LoginAttempt,
        id: i64,
    ) -> QueryResult<User> {
        let nickname = attempt.nickname.as_ref().map(Nickname::as_str);
        let avatar_url = attempt.avatar_url.as_ref().map(AvatarUrl::as_str);
        InsertUser::new(&NewUser {
            id,
            openid: &attempt.openid,
            unionid: attempt.unionid.as_deref(),
            session_key: &attempt.session_key,
            nickname,
            avatar_url,
            login_count: 1,
            created_at: attempt.now,
            updated_at: attempt.now,
            last_login_at: attempt.now,
        })
        .execute(conn)?;
        Ok(User {
            id,
            openid: attempt.openid.clone(),
            unionid: attempt.unionid.clone(),
            session_key: attempt.session_key.clone(),
            nickname: nickname.map(str::to_owned),
            avatar_url: avatar_url.map(str::to_owned),
            disabled_at: None,
            disabled_reason: None,
            login_count: 1,
            created_at: attempt.now,
            updated_at: attempt.now,
            last_login_at: attempt.now,
        })
    }

    /// Records a returning login on `existing` (read in this transaction) and returns the row
    /// as it is now, built here rather than read back.
    fn update_on_login(
        conn: &mut DbConnection,
        existing: &User,
        attempt: &LoginAttempt,
    ) -> QueryResult<User> {
        let mut user = existing.clone();
        if let Some(unionid) = &attempt.unionid {
            user.unionid = Some(unionid.clone());
        }
        if let Some(avatar_url) = &attempt.avatar_url {
            user.avatar_url = Some(avatar_url.as_str().to_owned());
        }
        user.session_key = attempt.session_key.clone();
        // Exact: this transaction holds the write lock since it read `existing`.
        user.login_count += 1;
        user.updated_at = attempt.now;
        user.last_login_at = attempt.now;
        ReturningLoginUpdate {
            id: user.id,
            unionid: user.unionid.as_deref(),
            session_key: &user.session_key,
            avatar_url: user.avatar_url.as_deref(),
            login_count: user.login_count,
            now: DbTime(attempt.now),
        }
        .execute(conn)?;
        let nickname = nickname_to_store(existing.nickname.as_deref(), attempt.nickname.as_ref());
        if let Some(nickname) = nickname.filter(|n| existing.nickname.as_deref() != Some(*n)) {
            diesel::update(users::table.find(user.id))
                .set(users::nickname.eq(nickname))
                .execute(conn)?;
            user.nickname = Some(nickname.to_owned());
        }
        Ok(user)
    }

    /// Sets the nickname and/or avatar given; the placeholder nickname never replaces a
    /// real one. Returns the user as stored afterwards.
    pub fn update_profile(
        conn: &mut DbConnection,
        id: i64,
        nickname: Option<&Nickname>,
        avatar_url: Option<&AvatarUrl>,
        now: NaiveDateTime,
    ) -> QueryResult<User> {
        conn.immediate_transaction(|conn| {
            let existing = Self::find(conn, id)?.ok_or(diesel::result::Error::NotFound)?;
            diesel::update(users::table.find(id))
                .set(ProfileChange {
                    nickname: nickname_to_store(existing.nickname.as_deref(), nickname),
                    avatar_url: avatar_url.map(AvatarUrl::as_str),
                    updated_at: now,
                })
                .returning(User::as_returning())
                .get_result(conn)
        })
    }

    /// Disables the user and revokes every token it holds, at once.
    pub fn disable(
        conn: &mut DbConnection,
        id: i64,
        reason: &str,
        now: NaiveDateTime,
    ) -> QueryResult<User> {
        conn.immediate_transaction(|conn| {
            let user = diesel::update(users::table.find(id))
                .set((
                    users::disabled_at.eq(now),
                    users::disabled_reason.eq(reason),
                    users::updated_at.eq(now),
                ))
                .returning(User::as_returning())
                .get_result(conn)?;
            IssuedToken::revoke_all_of(conn, id, now)?;
            Ok(user)
        })
    }

    /// Makes a disabled user active again; they log in anew to get a token.
    pub fn enable(conn: &mut DbConnection, id: i64, now: NaiveDateTime) -> QueryResult<User> {
        diesel::update(users::table.find(id))
            .set((
                users::disabled_at.eq(None::<NaiveDateTime>),
                users::disabled_reason.eq(None::<String>),
                users::updated_at.eq(now),
            ))
            .returning(User::as_returning())
            .get_result(conn)
    }

    /// The user's most recent logins, newest first.
    pub fn recent_logins(conn: &mut DbConnection, id: i64, limit: i64) -> QueryResult<Vec<Login>> {
        logins::table
            .filter(logins::user_id.eq(id))
            .order(logins::id.desc())
            .limit(limit)
            .select(Login::as_select())
            .load(conn)
    }

    /// How many users there are.
    pub fn count(conn: &mut DbConnection) -> QueryResult<i64> {
        users::table.count().get_result(conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(openid: &str, unionid: Option<&str>, nickname: Option<&str>) -> LoginAttempt {
        let now = crate::db::now();
        LoginAttempt {
            openid: openid.to_owned(),
            unionid: unionid.map(str::to_owned),
            session_key: format!("key-{}", now.and_utc().timestamp_micros()),
            nickname: nickname.map(|n| Nickname::parse(n).unwrap()),
            avatar_url: Some(AvatarUrl::parse("https://img.example/a.png").unwrap()),
            ip: None,
            user_agent: None,
            token_hash: "h".into(),
            token_expires_at: now,
            now,
        }
    }

    #[test]
    fn the_user_a_login_returns_is_the_row_as_stored() {
        let dir = tempfile::tempdir().unwrap();
        let pool = crate::db::connect(dir.path().join("u.db").to_str().unwrap()).unwrap();
        let conn = &mut pool.get().unwrap();
        let mut without_avatar = attempt("oRow", None, None);
        without_avatar.avatar_url = None;
        let logins = [
            attempt("oRow", None, Some("小明")),
            attempt("oRow", Some("uRow"), Some(PLACEHOLDER_NICKNAME)),
            without_avatar,
            attempt("oRow", None, Some("小红")),
        ];
        for login in &logins {
            let LoginOutcome::LoggedIn { user, .. } = User::record_login(conn, login).unwrap()
            else {
                panic!("nobody is disabled");
            };
            let stored = User::find(conn, user.id).unwrap().unwrap();
            assert_eq!(*user, stored);
        }
        let stored = User::find_by_openid(conn, "oRow").unwrap().unwrap();
        assert_eq!(stored.login_count, 4);
        assert_eq!(stored.unionid.as_deref(), Some("uRow"));
        assert_eq!(stored.nickname.as_deref(), Some("小红"));
        assert_eq!(
            stored.avatar_url.as_deref(),
            Some("https://img.example/a.png"),
            "a login without an avatar keeps the stored one"
        );
    }

    #[test]
    fn new_users_and_logins_get_the_ids_after_rows_others_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let pool = crate::db::connect(dir.path().join("u.db").to_str().unwrap()).unwrap();
        let conn = &mut pool.get().unwrap();
        let LoginOutcome::LoggedIn { user: first, .. } =
            User::record_login(conn, &attempt("oFirst", None, None)).unwrap()
        else {
            panic!("nobody is disabled");
        };
        // Rows another writer inserted with ids of its own (an import, say).
        diesel::sql_query(
            "INSERT INTO users (id, openid, session_key, login_count, created_at, updated_at,
                                last_login_at)
             VALUES (41, 'oImported', 'k', 0, '2026-01-01 00:00:00', '2026-01-01 00:00:00',
                     '2026-01-01 00:00:00');
             ",
        )
        .execute(conn)
        .unwrap();
        diesel::sql_query(
            "INSERT INTO logins (id, user_id, logged_in_at) VALUES (90, 41, '2026-01-01 00:00:00')",
        )
        .execute(conn)
        .unwrap();
        let outcomes: Vec<(i64, i64)> = ["oSecond", "oThird"]
            .iter()
            .map(
                |openid| match User::record_login(conn, &attempt(openid, None, None)).unwrap() {
                    LoginOutcome::LoggedIn { user, login_id, .. } => (user.id, login_id),
                    LoginOutcome::Disabled => panic!("nobody is disabled"),
                },
            )
            .collect();
        assert_eq!(first.id, 1);
        assert_eq!(outcomes, [(42, 91), (43, 92)]);
        assert_eq!(User::find(conn, 42).unwrap().unwrap().openid, "oSecond");
    }

    #[test]
    fn the_placeholder_never_replaces_a_real_nickname() {
        let placeholder = Nickname::parse(PLACEHOLDER_NICKNAME).unwrap();
        assert_eq!(nickname_to_store(Some("小明"), Some(&placeholder)), None);
    }

    #[test]
    fn the_placeholder_fills_an_empty_or_placeholder_nickname() {
        let placeholder = Nickname::parse(PLACEHOLDER_NICKNAME).unwrap();
        assert_eq!(
            nickname_to_store(None, Some(&placeholder)),
            Some(PLACEHOLDER_NICKNAME)
        );
        assert_eq!(
            nickname_to_store(Some(PLACEHOLDER_NICKNAME), Some(&placeholder)),
            Some(PLACEHOLDER_NICKNAME)
        );
    }

    #[test]
    fn a_real_nickname_replaces_anything_and_none_keeps_what_is_there() {
        let real = Nickname::parse("小红").unwrap();
        assert_eq!(nickname_to_store(Some("小明"), Some(&real)), Some("小红"));
        assert_eq!(
            nickname_to_store(Some(PLACEHOLDER_NICKNAME), Some(&real)),
            Some("小红")
        );
        assert_eq!(nickname_to_store(Some("小明"), None), None);
    }
}
