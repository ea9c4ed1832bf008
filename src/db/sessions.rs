use std::collections::HashMap;

use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use actix_web::cookie::time::Duration;
use anyhow::Context;
use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::*;

use super::schema::admin_sessions;
use super::{DbConnection, DbPool};

/// Console sessions in the database. The cookie carries a random 256-bit key; the table
/// holds only its SHA-256, so a copy of the database cannot be replayed as a cookie.
/// Sign-out deletes the row and an idle session simply expires, whatever the browser keeps.
#[derive(Clone)]
pub struct DbSessionStore {
    pool: DbPool,
}

type State = HashMap<String, String>;

fn expiry(ttl: &Duration) -> NaiveDateTime {
    super::now() + TimeDelta::seconds(ttl.whole_seconds().max(1))
}

fn hash(key: &str) -> String {
    crate::auth::hash_token(key)
}

impl DbSessionStore {
    /// A store on `pool`.
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }

    /// Deletes sessions that have expired; returns how many.
    pub fn purge_expired(conn: &mut DbConnection) -> QueryResult<usize> {
        diesel::delete(admin_sessions::table.filter(admin_sessions::expires_at.le(super::now())))
            .execute(conn)
    }

    async fn insert(&self, state: State, ttl: &Duration) -> anyhow::Result<SessionKey> {
        let json = serde_json::to_string(&state)?;
        let mut bytes = [0u8; 32];
        rand::fill(&mut bytes[..]);
        let key = hex::encode(bytes);
        let key_hash = hash(&key);
        let expires_at = expiry(ttl);
        super::run(&self.pool, move |conn| {
            diesel::insert_into(admin_sessions::table)
                .values((
                    admin_sessions::key_hash.eq(key_hash),
                    admin_sessions::state.eq(json),
                    admin_sessions::expires_at.eq(expires_at),
                ))
                .execute(conn)
                .context("saving a console session")
        })
        .await?;
        SessionKey::try_from(key).map_err(|e| anyhow::anyhow!("{e}"))
    }
}

impl SessionStore for DbSessionStore {
    async fn load(&self, session_key: &SessionKey) -> Result<Option<State>, LoadError> {
        let key_hash = hash(session_key.as_ref());
        let row: Option<(String, NaiveDateTime)> = super::run(&self.pool, move |conn| {
            super::unique(
                admin_sessions::table
                    .find(key_hash)
                    .select((admin_sessions::state, admin_sessions::expires_at))
                    .load(conn),
            )
            .context("loading a console session")
        })
        .await
        .map_err(LoadError::Other)?;
        match row {
            Some((state, expires_at)) if expires_at > super::now() => serde_json::from_str(&state)
                .map(Some)
                .map_err(|e| LoadError::Deserialization(e.into())),
            _ => Ok(None),
        }
    }

    async fn save(&self, session_state: State, ttl: &Duration) -> Result<SessionKey, SaveError> {
        self.insert(session_state, ttl)
            .await
            .map_err(SaveError::Other)
    }

    async fn update(
        &self,
        session_key: SessionKey,
        session_state: State,
        ttl: &Duration,
    ) -> Result<SessionKey, UpdateError> {
        let json = serde_json::to_string(&session_state)
            .map_err(|e| UpdateError::Serialization(e.into()))?;
        let key_hash = hash(session_key.as_ref());
        let expires_at = expiry(ttl);
        let updated = super::run(&self.pool, move |conn| {
            diesel::update(
                admin_sessions::table
                    .find(key_hash)
                    .filter(admin_sessions::expires_at.gt(super::now())),
            )
            .set((
                admin_sessions::state.eq(json),
                admin_sessions::expires_at.eq(expires_at),
            ))
            .execute(conn)
            .context("updating a console session")
        })
        .await
        .map_err(UpdateError::Other)?;
        if updated == 1 {
            Ok(session_key)
        } else {
            // The session expired or was deleted meanwhile: start a new one rather than
            // resurrect the old key.
            self.insert(session_state, ttl)
                .await
                .map_err(UpdateError::Other)
        }
    }

    async fn update_ttl(&self, session_key: &SessionKey, ttl: &Duration) -> anyhow::Result<()> {
        let key_hash = hash(session_key.as_ref());
        let expires_at = expiry(ttl);
        super::run(&self.pool, move |conn| {
            diesel::update(
                admin_sessions::table
                    .find(key_hash)
                    .filter(admin_sessions::expires_at.gt(super::now())),
            )
            .set(admin_sessions::expires_at.eq(expires_at))
            .execute(conn)
            .context("extending a console session")
        })
        .await?;
        Ok(())
    }

    async fn delete(&self, session_key: &SessionKey) -> anyhow::Result<()> {
        let key_hash = hash(session_key.as_ref());
        super::run(&self.pool, move |conn| {
            diesel::delete(admin_sessions::table.find(key_hash))
                .execute(conn)
                .context("deleting a console session")
        })
        .await?;
        Ok(())
    }
}
