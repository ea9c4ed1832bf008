use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::models::{IssuedToken, LoginToken, User};
use super::schema::{login_tokens, logins, users};
use super::DbConnection;
use crate::auth::{hashes_match, PresentedToken};

/// What a presented token turned out to be.
#[derive(Debug)]
pub enum TokenLookup {
    /// Valid, and its user is active.
    Valid(Box<User>, StoredToken),
    /// Its user is disabled (whatever the token's own state).
    UserDisabled,
    /// Unknown, expired or revoked.
    Invalid,
}

/// Where a valid token is stored, to revoke it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredToken {
    /// On the row of the login that issued it.
    OnLogin(i64),
    /// In `login_tokens`, under this hash (a token issued in the earlier form).
    Legacy(String),
}

/// The verdict on a token found with its user.
fn judge(
    user: User,
    expires_at: Option<NaiveDateTime>,
    revoked_at: Option<NaiveDateTime>,
    now: NaiveDateTime,
    stored: StoredToken,
) -> TokenLookup {
    // Disabling revokes the tokens too; answering "disabled" rather than "invalid" tells
    // the client why, so it does not just log in again.
    if user.is_disabled() {
        TokenLookup::UserDisabled
    } else if revoked_at.is_some() || expires_at.is_none_or(|at| at <= now) {
        TokenLookup::Invalid
    } else {
        TokenLookup::Valid(Box::new(user), stored)
    }
}

impl IssuedToken {
    /// Checks a presented token at time `now`.
    pub fn check(
        conn: &mut DbConnection,
        presented: &PresentedToken,
        now: NaiveDateTime,
    ) -> QueryResult<TokenLookup> {
        match presented {
            PresentedToken::Current {
                login_id,
                secret_hash,
            } => {
                let found: Option<(IssuedToken, User)> = super::unique(
                    logins::table
                        .inner_join(users::table)
                        .filter(logins::id.eq(login_id))
                        .select((IssuedToken::as_select(), User::as_select()))
                        .load(conn),
                )?;
                Ok(match found {
                    Some((token, user))
                        if token
                            .token_hash
                            .as_deref()
                            .is_some_and(|stored| hashes_match(stored, secret_hash)) =>
                    {
                        judge(
                            user,
                            token.token_expires_at,
                            token.token_revoked_at,
                            now,
                            StoredToken::OnLogin(token.id),
                        )
                    }
                    _ => TokenLookup::Invalid,
                })
            }
            PresentedToken::Legacy { hash } => {
                let found: Option<(LoginToken, User)> = super::unique(
                    login_tokens::table
                        .inner_join(users::table)
                        .filter(login_tokens::token_hash.eq(hash))
                        .select((LoginToken::as_select(), User::as_select()))
                        .load(conn),
                )?;
                Ok(match found {
                    None => TokenLookup::Invalid,
                    Some((token, user)) => judge(
                        user,
                        Some(token.expires_at),
                        token.revoked_at,
                        now,
                        StoredToken::Legacy(token.token_hash),
                    ),
                })
            }
        }
    }

    /// Revokes the token; true when it was valid until now.
    pub fn revoke(
        conn: &mut DbConnection,
        token: &StoredToken,
        now: NaiveDateTime,
    ) -> QueryResult<bool> {
        let changed = match token {
            StoredToken::OnLogin(id) => diesel::update(
                logins::table
                    .filter(logins::id.eq(id))
                    .filter(logins::token_revoked_at.is_null()),
            )
            .set(logins::token_revoked_at.eq(now))
            .execute(conn)?,
            StoredToken::Legacy(hash) => diesel::update(
                login_tokens::table
                    .filter(login_tokens::token_hash.eq(hash))
                    .filter(login_tokens::revoked_at.is_null()),
            )
            .set(login_tokens::revoked_at.eq(now))
            .execute(conn)?,
        };
        Ok(changed > 0)
    }

    /// Revokes every token `user_id` holds, of either form.
    pub fn revoke_all_of(
        conn: &mut DbConnection,
        user_id: i64,
        now: NaiveDateTime,
    ) -> QueryResult<()> {
        // The user's logins are found along their chain (see `Login::previous_login_id`),
        // each by id: logins have no index by user.
        diesel::sql_query(
            "WITH RECURSIVE chain(id) AS (
                 SELECT last_login_id FROM users WHERE id = ?1
                 UNION ALL
                 SELECT l.previous_login_id FROM logins l JOIN chain ON l.id = chain.id
                 WHERE l.previous_login_id < l.id
             )
             UPDATE logins SET token_revoked_at = ?2
             WHERE id IN (SELECT id FROM chain) AND user_id = ?1
               AND token_hash IS NOT NULL AND token_revoked_at IS NULL",
        )
        .bind::<diesel::sql_types::BigInt, _>(user_id)
        .bind::<diesel::sql_types::Timestamp, _>(now)
        .execute(conn)?;
        diesel::update(
            login_tokens::table
                .filter(login_tokens::user_id.eq(user_id))
                .filter(login_tokens::revoked_at.is_null()),
        )
        .set(login_tokens::revoked_at.eq(now))
        .execute(conn)?;
        Ok(())
    }
}
