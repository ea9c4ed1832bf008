use chrono::NaiveDateTime;
use diesel::prelude::*;

use std::collections::HashMap;
use std::sync::Arc;

use super::login_statements::{
    insert_users, InsertLogin, InsertUser, ReturningLoginUpdate, UserByOpenid,
};
use super::models::{IssuedToken, Login, NewLogin, NewUser, User};
use super::schema::{logins, users};
use super::time::TimeText;
use super::writer_statements::{LoginStatements, Lookup};
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
        /// The user as stored after the login. Shared with the batch that inserts it, for a
        /// new user: a copy of every text column cost the login writer an allocation each.
        user: Arc<User>,
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

    /// Returns `id`, the last taken, unused.
    fn give_back_login(&mut self, id: i64) {
        debug_assert_eq!(id + 1, self.login, "only the last id taken goes back");
        self.login = id;
    }
}

/// The logins of one write transaction. The new users are inserted together when the batch
/// finishes, a few statements for all of them (see
/// [`insert_users`](super::login_statements::insert_users)), and the logins after them; a user
/// created earlier in the batch is updated in memory until then.
pub struct LoginBatch<'a> {
    ids: NextIds,
    /// Users this batch creates, as they will be stored.
    new_users: Vec<Arc<User>>,
    /// Where each of `new_users` is, by openid.
    new_user_at: HashMap<&'a str, usize>,
    logins: Vec<NewLogin<'a>>,
}

impl<'a> LoginBatch<'a> {
    /// Starts a batch; call it inside the write transaction that [`Self::finish`]es it.
    pub fn begin(conn: &mut DbConnection) -> QueryResult<Self> {
        Ok(Self {
            ids: NextIds::read(conn)?,
            new_users: Vec::new(),
            new_user_at: HashMap::new(),
            logins: Vec::new(),
        })
    }

    /// The highest user id in the database when the batch began.
    pub fn newest_user(&self) -> i64 {
        self.ids.user - 1
    }

    /// Records `attempt`: reads its user and updates it when it exists, leaves the user
    /// (when new) and the login for [`Self::finish`]. On error the caller must roll back.
    /// With `prepared` (the login writer's), its statements read and update the user.
    pub fn record(
        &mut self,
        conn: &mut DbConnection,
        mut prepared: Option<&mut LoginStatements>,
        attempt: &'a LoginAttempt,
    ) -> QueryResult<LoginOutcome> {
        // Taken before the user is known: the user's row names its latest login.
        let login_id = self.ids.take_login();
        let (user, previous_login_id, is_new) = if let Some(&at) =
            self.new_user_at.get(attempt.openid.as_str())
        {
            // Logged in twice in one batch (two codes, say): the row is not written yet.
            let previous = self.new_users[at].last_login_id;
            let (user, _) = User::after_login(User::clone(&self.new_users[at]), attempt, login_id);
            let user = Arc::new(user);
            self.new_users[at] = user.clone();
            (user, previous, false)
        } else {
            let lookup = prepared
                .as_deref_mut()
                .map(|prepared| prepared.user_by_openid(&attempt.openid))
                .transpose()?;
            let existing = match lookup {
                Some(Lookup::Found(user)) => Some(user),
                Some(Lookup::Missing) => None,
                // No prepared statements, or a row they do not read: diesel reads it.
                None | Some(Lookup::Unreadable) => {
                    super::unique(UserByOpenid::new(&attempt.openid).load::<User>(conn))?
                }
            };
            match existing {
                Some(existing) if existing.is_disabled() => {
                    // Nothing recorded: the login's id goes back for the next one.
                    self.ids.give_back_login(login_id);
                    return Ok(LoginOutcome::Disabled);
                }
                Some(existing) => {
                    let previous = existing.last_login_id;
                    let user = User::update_on_login(conn, prepared, existing, attempt, login_id)?;
                    (Arc::new(user), previous, false)
                }
                None => {
                    let user = Arc::new(new_user(attempt, self.ids.take_user(), login_id));
                    self.new_user_at
                        .insert(&attempt.openid, self.new_users.len());
                    self.new_users.push(user.clone());
                    (user, None, true)
                }
            }
        };
        self.logins.push(NewLogin {
            id: login_id,
            user_id: user.id,
            logged_in_at: attempt.now,
            ip: attempt.ip.as_deref(),
            user_agent: attempt.user_agent.as_deref(),
            token_hash: &attempt.token_hash,
            token_expires_at: attempt.token_expires_at,
            previous_login_id,
        });
        Ok(LoginOutcome::LoggedIn {
            user,
            login_id,
            is_new,
        })
    }

    /// Inserts the batch's new users, then its logins (which refer to them).
    ///
    /// Where several users go in one statement, a failure has SQLite roll back the whole
    /// transaction at once (see [`InsertUsers`](super::login_statements::InsertUsers)):
    /// batches of several logins belong in a transaction whose owner expects that, as the
    /// login writer's does. A batch of one login, as in [`User::record_login`], inserts at
    /// most one user, which fails like any statement.
    ///
    /// With `prepared` (the login writer's), the rows go in through its statements; without,
    /// through diesel.
    pub fn finish(
        self,
        conn: &mut DbConnection,
        mut prepared: Option<&mut LoginStatements>,
    ) -> QueryResult<()> {
        let users: Vec<NewUser> = self
            .new_users
            .iter()
            .map(|user| NewUser {
                id: user.id,
                openid: &user.openid,
                unionid: user.unionid.as_deref(),
                session_key: &user.session_key,
                nickname: user.nickname.as_deref(),
                avatar_url: user.avatar_url.as_deref(),
                login_count: user.login_count,
                created_at: user.created_at,
                updated_at: user.updated_at,
                last_login_at: user.last_login_at,
                last_login_id: user.last_login_id,
            })
            .collect();
        let users: Vec<InsertUser> = users.iter().map(InsertUser::new).collect();
        match prepared.as_deref_mut() {
            Some(prepared) => prepared.insert_users(&users)?,
            None => insert_users(conn, &users)?,
        }
        // The login writer inserts the logins several to a statement. A login's row refers
        // to its user, and SQLite checks that reference by statement: a statement of several
        // rows may then fail after some of them, so it keeps a journal of every page it
        // changes to undo just those. While logins were indexed by user, each returning
        // user's login changed a page of its own there, the journal outgrew memory and went
        // to a temporary file on most batches (bench, returning-users: the writer's CPU per
        // login 20 µs one row a statement, 26.5 µs together). Logins only append now: the
        // journal holds a page or two and stays in memory (no temporary file under the
        // bench's returning-users), and callgrind counts 3% fewer instructions in the writer
        // per returning login than one row a statement. The one-login path keeps one.
        match prepared {
            Some(prepared) => {
                let rows: Vec<InsertLogin> = self.logins.iter().map(InsertLogin::new).collect();
                prepared.insert_logins(&rows)?
            }
            None => {
                for login in &self.logins {
                    InsertLogin::new(login).execute(conn).map(drop)?;
                }
            }
        }
        Ok(())
    }
}

/// The user a first login (row `login_id`) creates, with id `id`. The row is built here from
/// what is inserted rather than read back: reading it back cost more than writing it.
fn new_user(attempt: &LoginAttempt, id: i64, login_id: i64) -> User {
    User {
        id,
        openid: attempt.openid.clone(),
        unionid: attempt.unionid.clone(),
        session_key: attempt.session_key.clone(),
        nickname: attempt.nickname.as_ref().map(|n| n.as_str().to_owned()),
        avatar_url: attempt.avatar_url.as_ref().map(|a| a.as_str().to_owned()),
        disabled_at: None,
        disabled_reason: None,
        login_count: 1,
        created_at: attempt.now,
        updated_at: attempt.now,
        last_login_at: attempt.now,
        last_login_id: Some(login_id),
    }
}

impl User {
    /// The user with this id.
    pub fn find(conn: &mut DbConnection, id: i64) -> QueryResult<Option<User>> {
        super::unique(users::table.find(id).select(User::as_select()).load(conn))
    }

    /// The user with this openid.
    pub fn find_by_openid(conn: &mut DbConnection, openid: &str) -> QueryResult<Option<User>> {
        super::unique(UserByOpenid::new(openid).load(conn))
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
            let mut batch = LoginBatch::begin(conn)?;
            let outcome = batch.record(conn, None, attempt)?;
            batch.finish(conn, None)?;
            Ok(outcome)
        })
    }

    /// The user a returning login (row `login_id`) leaves, from `user` as stored before it,
    /// and the nickname to set when the login changes it. Takes the row it updates: a copy of
    /// it cost the login writer a string allocation per text column on every returning login.
    fn after_login(mut user: User, attempt: &LoginAttempt, login_id: i64) -> (User, Option<&str>) {
        let nickname = nickname_to_store(user.nickname.as_deref(), attempt.nickname.as_ref())
            .filter(|n| user.nickname.as_deref() != Some(*n));
        if let Some(unionid) = &attempt.unionid {
            user.unionid = Some(unionid.clone());
        }
        if let Some(avatar_url) = &attempt.avatar_url {
            user.avatar_url = Some(avatar_url.as_str().to_owned());
        }
        user.session_key.clone_from(&attempt.session_key);
        // Exact: the write transaction holds the lock since the row was read.
        user.login_count += 1;
        user.updated_at = attempt.now;
        user.last_login_at = attempt.now;
        user.last_login_id = Some(login_id);
        if let Some(nickname) = nickname {
            user.nickname = Some(nickname.to_owned());
        }
        (user, nickname)
    }

    /// Records a returning login on `existing` (read in this transaction) and returns the row
    /// as it is now, built here rather than read back.
    fn update_on_login(
        conn: &mut DbConnection,
        prepared: Option<&mut LoginStatements>,
        existing: User,
        attempt: &LoginAttempt,
        login_id: i64,
    ) -> QueryResult<User> {
        let (user, nickname) = Self::after_login(existing, attempt, login_id);
        let update = ReturningLoginUpdate {
            id: user.id,
            unionid: user.unionid.as_deref(),
            session_key: &user.session_key,
            avatar_url: user.avatar_url.as_deref(),
            login_count: user.login_count,
            now: TimeText::new(&attempt.now),
            last_login_id: login_id,
        };
        match prepared {
            Some(prepared) => prepared.update_returning(&update)?,
            None => update.execute(conn).map(drop)?,
        }
        if let Some(nickname) = nickname {
            diesel::update(users::table.find(user.id))
                .set(users::nickname.eq(nickname))
                .execute(conn)?;
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

    /// The user's most recent logins (at most `limit`), newest first: the chain from the
    /// user's latest login back, one row read by id a login.
    pub fn recent_logins(conn: &mut DbConnection, id: i64, limit: i64) -> QueryResult<Vec<Login>> {
        let limit = usize::try_from(limit).unwrap_or(0);
        let mut next: Option<i64> = users::table
            .find(id)
            .select(users::last_login_id)
            .first(conn)
            .optional()?
            .flatten();
        let mut logins = Vec::new();
        while let Some(login_id) = next.filter(|_| logins.len() < limit) {
            let Some(login) = logins::table
                .find(login_id)
                .select(Login::as_select())
                .first(conn)
                .optional()?
            else {
                break;
            };
            if login.user_id != id {
                break;
            }
            // Ids only go down along a chain, so a damaged one cannot send this round a loop.
            next = login
                .previous_login_id
                .filter(|previous| *previous < login.id);
            logins.push(login);
        }
        Ok(logins)
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
    fn disabling_revokes_the_token_of_every_login_of_the_user_and_of_nobody_else() {
        let dir = tempfile::tempdir().unwrap();
        let pool = crate::db::connect(dir.path().join("u.db").to_str().unwrap()).unwrap();
        let conn = &mut pool.get().unwrap();
        let mut ids = Vec::new();
        for openid in ["oBad", "oGood", "oBad", "oBad", "oGood"] {
            match User::record_login(conn, &attempt(openid, None, None)).unwrap() {
                LoginOutcome::LoggedIn { user, login_id, .. } => ids.push((user.id, login_id)),
                LoginOutcome::Disabled => panic!("nobody is disabled yet"),
            }
        }
        let bad = ids[0].0;
        User::disable(conn, bad, "spam", crate::db::now()).unwrap();
        for (user_id, login_id) in ids {
            let revoked = logins::table
                .find(login_id)
                .select(logins::token_revoked_at)
                .first::<Option<NaiveDateTime>>(conn)
                .unwrap()
                .is_some();
            assert_eq!(
                revoked,
                user_id == bad,
                "login {login_id} of user {user_id}"
            );
        }
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
