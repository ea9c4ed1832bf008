use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::models::{LoginToken, User};
use super::schema::{login_tokens, users};
use super::DbConnection;

/// What a presented token turned out to be.
#[derive(Debug)]
pub enum TokenLookup {
    /// Valid, and its user is active.
    Valid(Box<User>),
    /// Its user is disabled (whatever the token's own state).
    UserDisabled,
    /// Unknown, expired or revoked.
    Invalid,
}

impl LoginToken {
    /// Checks the token whose hash is `token_hash` at time `now`.
    pub fn lookup(
        conn: &mut DbConnection,
        token_hash: &str,
        now: NaiveDateTime,
    ) -> QueryResult<TokenLookup> {
        let found: Option<(LoginToken, User)> = super::unique(
            login_tokens::table
                .inner_join(users::table)
                .filter(login_tokens::token_hash.eq(token_hash))
                .select((LoginToken::as_select(), User::as_select()))
                .load(conn),
        )?;
        Ok(match found {
            None => TokenLookup::Invalid,
            // Disabling revokes the tokens too; answering "disabled" rather than "invalid"
            // tells the client why, so it does not just log in again.
            Some((_, user)) if user.is_disabled() => TokenLookup::UserDisabled,
            Some((token, _)) if token.revoked_at.is_some() || token.expires_at <= now => {
                TokenLookup::Invalid
            }
            Some((_, user)) => TokenLookup::Valid(Box::new(user)),
        })
    }

    /// Revokes the token; true when it was valid until now.
    pub fn revoke(
        conn: &mut DbConnection,
        token_hash: &str,
        now: NaiveDateTime,
    ) -> QueryResult<bool> {
        let changed = diesel::update(
            login_tokens::table
                .filter(login_tokens::token_hash.eq(token_hash))
                .filter(login_tokens::revoked_at.is_null()),
        )
        .set(login_tokens::revoked_at.eq(now))
        .execute(conn)?;
        Ok(changed > 0)
    }
}
