//! Rows as they are read from and written to the database.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{login_tokens, logins, users};
use super::time::{DbTime, DbTimeOpt};

/// A mini-program user.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = users)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite))]
pub struct User {
    /// Our id for the user.
    pub id: i64,
    /// WeChat's id for the user in this mini-program.
    pub openid: String,
    /// WeChat's id across the Open Platform account, once WeChat sends one.
    pub unionid: Option<String>,
    /// The session key of the user's latest login. Never sent to anyone.
    pub session_key: String,
    /// Display name, as set by the client.
    pub nickname: Option<String>,
    /// Avatar image URL, as set by the client.
    pub avatar_url: Option<String>,
    /// When an admin disabled the user; `None` while the user is active.
    #[diesel(deserialize_as = DbTimeOpt)]
    pub disabled_at: Option<NaiveDateTime>,
    /// The admin's reason for disabling.
    pub disabled_reason: Option<String>,
    /// Successful logins so far.
    pub login_count: i64,
    /// First login (UTC).
    #[diesel(deserialize_as = DbTime)]
    pub created_at: NaiveDateTime,
    /// Last change to the row (UTC).
    #[diesel(deserialize_as = DbTime)]
    pub updated_at: NaiveDateTime,
    /// Latest successful login (UTC).
    #[diesel(deserialize_as = DbTime)]
    pub last_login_at: NaiveDateTime,
    /// The row of the latest login, where the chain of the user's logins starts (see
    /// [`Login::previous_login_id`]); `None` for a user recorded without one.
    pub last_login_id: Option<i64>,
}

impl User {
    /// True when an admin has disabled the user.
    pub fn is_disabled(&self) -> bool {
        self.disabled_at.is_some()
    }
}

/// A user about to be created by a first login.
#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
// `None` inserts NULL rather than leaving the column out, so the statement is the same for
// every login and diesel prepares it once instead of building its SQL each time.
#[diesel(treat_none_as_default_value = false)]
pub struct NewUser<'a> {
    /// See [`User::id`]; given by the inserter (see [`super::users::NextIds`]).
    pub id: i64,
    /// See [`User::openid`].
    pub openid: &'a str,
    /// See [`User::unionid`].
    pub unionid: Option<&'a str>,
    /// See [`User::session_key`].
    pub session_key: &'a str,
    /// See [`User::nickname`].
    pub nickname: Option<&'a str>,
    /// See [`User::avatar_url`].
    pub avatar_url: Option<&'a str>,
    /// Counts the creating login.
    pub login_count: i64,
    /// See [`User::created_at`].
    #[diesel(serialize_as = DbTime)]
    pub created_at: NaiveDateTime,
    /// See [`User::updated_at`].
    #[diesel(serialize_as = DbTime)]
    pub updated_at: NaiveDateTime,
    /// See [`User::last_login_at`].
    #[diesel(serialize_as = DbTime)]
    pub last_login_at: NaiveDateTime,
    /// See [`User::last_login_id`]: the creating login's, or a later one's in the same batch.
    pub last_login_id: Option<i64>,
}

/// A login token issued before tokens moved onto their login's row (see [`IssuedToken`]),
/// known to us only by the SHA-256 of the whole token. Still honoured until it expires.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = login_tokens)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite))]
pub struct LoginToken {
    /// Row id.
    pub id: i64,
    /// The user the token logs in.
    pub user_id: i64,
    /// Hex SHA-256 of the token.
    pub token_hash: String,
    /// When it was issued (UTC).
    pub created_at: NaiveDateTime,
    /// When it stops working (UTC).
    pub expires_at: NaiveDateTime,
    /// When it was revoked by logout or by disabling the user.
    pub revoked_at: Option<NaiveDateTime>,
}

/// A token in the earlier form. Nothing issues these any more; tests use it to check that
/// tokens issued before the change still work.
#[derive(Debug, Insertable)]
#[diesel(table_name = login_tokens)]
pub struct NewLoginToken<'a> {
    /// See [`LoginToken::user_id`].
    pub user_id: i64,
    /// See [`LoginToken::token_hash`].
    pub token_hash: &'a str,
    /// See [`LoginToken::created_at`].
    pub created_at: NaiveDateTime,
    /// See [`LoginToken::expires_at`].
    pub expires_at: NaiveDateTime,
}

/// One successful login.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = logins)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite))]
pub struct Login {
    /// Row id.
    pub id: i64,
    /// Who logged in.
    pub user_id: i64,
    /// When (UTC).
    #[diesel(deserialize_as = DbTime)]
    pub logged_in_at: NaiveDateTime,
    /// The client's IP address.
    pub ip: Option<String>,
    /// The client's User-Agent header, cut to 512 bytes.
    pub user_agent: Option<String>,
    /// The same user's login before this one; `None` for the first.
    pub previous_login_id: Option<i64>,
}

/// The token a login issued, as kept on the login's row. The columns are empty on logins
/// recorded before tokens moved there.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = logins)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite))]
pub struct IssuedToken {
    /// The login's row id, which the token names.
    pub id: i64,
    /// The user the token logs in.
    pub user_id: i64,
    /// Hex SHA-256 of the token's secret half.
    pub token_hash: Option<String>,
    /// When the token stops working (UTC).
    #[diesel(deserialize_as = DbTimeOpt)]
    pub token_expires_at: Option<NaiveDateTime>,
    /// When it was revoked by logout or by disabling the user.
    #[diesel(deserialize_as = DbTimeOpt)]
    pub token_revoked_at: Option<NaiveDateTime>,
}

/// A login about to be recorded.
#[derive(Debug, Insertable)]
#[diesel(table_name = logins)]
// As for [`NewUser`]: one statement for every login.
#[diesel(treat_none_as_default_value = false)]
pub struct NewLogin<'a> {
    /// See [`Login::id`]; given by the inserter (see [`super::users::NextIds`]).
    pub id: i64,
    /// See [`Login::user_id`].
    pub user_id: i64,
    /// See [`Login::logged_in_at`].
    #[diesel(serialize_as = DbTime)]
    pub logged_in_at: NaiveDateTime,
    /// See [`Login::ip`].
    pub ip: Option<&'a str>,
    /// See [`Login::user_agent`].
    pub user_agent: Option<&'a str>,
    /// See [`IssuedToken::token_hash`].
    pub token_hash: &'a str,
    /// See [`IssuedToken::token_expires_at`].
    #[diesel(serialize_as = DbTime)]
    pub token_expires_at: NaiveDateTime,
    /// See [`Login::previous_login_id`].
    pub previous_login_id: Option<i64>,
}

use super::schema::{admins, audit_log};

/// A console user.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = admins)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite))]
pub struct Admin {
    /// Row id.
    pub id: i64,
    /// Sign-in name.
    pub username: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// True until the admin replaces a generated password.
    pub must_change_password: bool,
    /// Created (UTC).
    pub created_at: NaiveDateTime,
    /// Last change (UTC).
    pub updated_at: NaiveDateTime,
    /// Latest successful sign-in (UTC).
    pub last_sign_in_at: Option<NaiveDateTime>,
}

/// An admin about to be created.
#[derive(Debug, Insertable)]
#[diesel(table_name = admins)]
pub struct NewAdmin<'a> {
    /// See [`Admin::username`].
    pub username: &'a str,
    /// See [`Admin::password_hash`].
    pub password_hash: &'a str,
    /// See [`Admin::must_change_password`].
    pub must_change_password: bool,
    /// See [`Admin::created_at`].
    pub created_at: NaiveDateTime,
    /// See [`Admin::updated_at`].
    pub updated_at: NaiveDateTime,
}

/// One admin action.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = audit_log)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite))]
pub struct AuditEntry {
    /// Row id.
    pub id: i64,
    /// Who (None if that admin was deleted).
    pub admin_id: Option<i64>,
    /// Who, by name at the time.
    pub admin_username: String,
    /// What: one of the [`crate::db::AuditAction`] names.
    pub action: String,
    /// On whom, for actions on a user.
    pub user_id: Option<i64>,
    /// The reason given.
    pub reason: Option<String>,
    /// From which address.
    pub ip: Option<String>,
    /// When (UTC).
    pub created_at: NaiveDateTime,
}

/// An admin action about to be recorded.
#[derive(Debug, Insertable)]
#[diesel(table_name = audit_log)]
pub struct NewAuditEntry<'a> {
    /// See [`AuditEntry::admin_id`].
    pub admin_id: Option<i64>,
    /// See [`AuditEntry::admin_username`].
    pub admin_username: &'a str,
    /// See [`AuditEntry::action`].
    pub action: &'a str,
    /// See [`AuditEntry::user_id`].
    pub user_id: Option<i64>,
    /// See [`AuditEntry::reason`].
    pub reason: Option<&'a str>,
    /// See [`AuditEntry::ip`].
    pub ip: Option<&'a str>,
    /// See [`AuditEntry::created_at`].
    pub created_at: NaiveDateTime,
}
