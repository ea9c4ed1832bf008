//! The nickname search index (FTS5, trigrams), brought up to date in batches.
//!
//! FTS5 writes out a new segment at the end of every statement that changes it, so a
//! trigger that indexed each new user as it was inserted made every login pay for a segment
//! (and for merging them): a third of the login writer's time. Instead, users past
//! `indexed_through` are indexed in one statement every fraction of a second by the login
//! writer ([`index_some`]), and searches read those few users directly
//! ([`nickname_matches`]), so a user is found the moment it exists. Nickname changes of
//! users already indexed still go through a trigger: they are rare.
//!
//! SQLite-only, as FTS5 is; PostgreSQL's counterpart (pg_trgm) needs none of this.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use super::DbConnection;

/// Most users one batch indexes, so that catching up on a large backlog (users imported
/// straight into the table, say) never holds the write lock for long.
pub(crate) const MOST_AT_ONCE: i64 = 4096;

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct RowId {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// How many users may be waiting for the index: the ids past `indexed_through` (ids can
/// have gaps, so this is an upper bound).
pub(crate) fn waiting(conn: &mut DbConnection) -> QueryResult<i64> {
    diesel::sql_query(
        "SELECT MAX(COALESCE((SELECT MAX(id) FROM users), 0) - indexed_through, 0) AS n
         FROM users_nickname_fts_progress",
    )
    .get_result::<Count>(conn)
    .map(|c| c.n)
}

/// Indexes the next [`MOST_AT_ONCE`] users past `indexed_through`, in one transaction; returns
/// how many may still be waiting. Users without a nickname are indexed too (as empty), so
/// that the index matches the table row for row, as FTS5 expects of an external-content
/// index.
pub(crate) fn index_some(conn: &mut DbConnection) -> QueryResult<i64> {
    conn.immediate_transaction(|conn| {
        diesel::sql_query(
            "INSERT INTO users_nickname_fts (rowid, nickname)
             SELECT id, nickname FROM users
             WHERE id > (SELECT indexed_through FROM users_nickname_fts_progress)
               AND id <= (SELECT indexed_through FROM users_nickname_fts_progress) + ?",
        )
        .bind::<BigInt, _>(MOST_AT_ONCE)
        .execute(conn)?;
        diesel::sql_query(
            "UPDATE users_nickname_fts_progress
             SET indexed_through = MAX(indexed_through,
                 MIN(indexed_through + ?, COALESCE((SELECT MAX(id) FROM users), 0)))",
        )
        .bind::<BigInt, _>(MOST_AT_ONCE)
        .execute(conn)?;
        waiting(conn)
    })
}

/// Up to `limit` ids of users whose nickname contains `pattern` (a LIKE pattern without
/// wildcards of the user's, made by [`super::like_contains`] from three or more characters):
/// those the index holds, and those it has not reached yet, read from the same snapshot so
/// that a batch committing meanwhile neither hides nor doubles anyone.
pub(crate) fn nickname_matches(
    conn: &mut DbConnection,
    pattern: &str,
    limit: i64,
) -> QueryResult<Vec<i64>> {
    let ids = diesel::sql_query(
        "SELECT rowid AS id FROM users_nickname_fts WHERE nickname LIKE ?1
         UNION ALL
         SELECT id FROM users
         WHERE id > (SELECT indexed_through FROM users_nickname_fts_progress)
           AND nickname LIKE ?1
         LIMIT ?2",
    )
    .bind::<Text, _>(pattern)
    .bind::<BigInt, _>(limit)
    .load::<RowId>(conn)?;
    Ok(ids.into_iter().map(|r| r.id).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::connection::SimpleConnection;

    fn fresh_database() -> (tempfile::TempDir, crate::db::DbPool) {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("i.db");
        let pool = crate::db::connect(url.to_str().unwrap()).unwrap();
        (dir, pool)
    }

    fn add_users(conn: &mut DbConnection, nicknames: &[&str]) {
        for nickname in nicknames {
            diesel::sql_query(
                "INSERT INTO users (openid, session_key, nickname, login_count, created_at,
                                    updated_at, last_login_at)
                 VALUES ('o' || ?1, 'k', ?1, 1, '2026-01-01', '2026-01-01', '2026-01-01')",
            )
            .bind::<Text, _>(*nickname)
            .execute(conn)
            .unwrap();
        }
    }

    fn indexed(conn: &mut DbConnection, pattern: &str) -> Vec<i64> {
        diesel::sql_query("SELECT rowid AS id FROM users_nickname_fts WHERE nickname LIKE ?")
            .bind::<Text, _>(pattern)
            .load::<RowId>(conn)
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect()
    }

    /// FTS5's own check that the index matches the users table row for row (so only once
    /// every user is indexed).
    fn integrity_check(conn: &mut DbConnection) {
        conn.batch_execute(
            "INSERT INTO users_nickname_fts (users_nickname_fts, rank) VALUES ('integrity-check', 1)",
        )
        .expect("the nickname index matches the users table");
    }

    #[test]
    fn new_users_are_found_before_and_after_they_are_indexed() {
        let (_dir, pool) = fresh_database();
        let conn = &mut pool.get().unwrap();
        add_users(conn, &["Red Panda", "熊猫宝宝", "koala"]);
        assert_eq!(waiting(conn).unwrap(), 3);
        assert!(indexed(conn, "%panda%").is_empty(), "not indexed yet");
        assert_eq!(nickname_matches(conn, "%panda%", 10).unwrap(), [1]);
        assert_eq!(nickname_matches(conn, "%熊猫宝%", 10).unwrap(), [2]);

        assert_eq!(index_some(conn).unwrap(), 0);
        integrity_check(conn);
        assert_eq!(indexed(conn, "%panda%"), [1]);
        assert_eq!(
            nickname_matches(conn, "%panda%", 10).unwrap(),
            [1],
            "not twice"
        );
        add_users(conn, &["giant panda"]);
        assert_eq!(nickname_matches(conn, "%panda%", 10).unwrap(), [1, 4]);
        assert_eq!(nickname_matches(conn, "%panda%", 1).unwrap().len(), 1);
    }

    #[test]
    fn nickname_changes_before_or_after_indexing_leave_the_index_right() {
        let (_dir, pool) = fresh_database();
        let conn = &mut pool.get().unwrap();
        add_users(conn, &["before-index", "after-index", "named-then-not"]);
        conn.batch_execute("UPDATE users SET nickname = NULL WHERE id = 3")
            .unwrap();
        // Changed while waiting: the batch indexes the nickname as it is then.
        conn.batch_execute("UPDATE users SET nickname = 'renamed-early' WHERE id = 1")
            .unwrap();
        index_some(conn).unwrap();
        // Changed once indexed: the trigger keeps the index in step.
        conn.batch_execute(
            "UPDATE users SET nickname = 'renamed-late' WHERE id = 2;
             UPDATE users SET nickname = 'named-again' WHERE id = 3;",
        )
        .unwrap();
        assert!(nickname_matches(conn, "%before-index%", 10)
            .unwrap()
            .is_empty());
        assert!(nickname_matches(conn, "%after-index%", 10)
            .unwrap()
            .is_empty());
        assert_eq!(nickname_matches(conn, "%renamed-early%", 10).unwrap(), [1]);
        assert_eq!(nickname_matches(conn, "%renamed-late%", 10).unwrap(), [2]);
        assert_eq!(nickname_matches(conn, "%named-again%", 10).unwrap(), [3]);
        integrity_check(conn);
    }

    #[test]
    fn a_large_backlog_is_indexed_a_bounded_batch_at_a_time() {
        let (_dir, pool) = fresh_database();
        let conn = &mut pool.get().unwrap();
        let n = MOST_AT_ONCE + 10;
        conn.batch_execute(&format!(
            "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < {n})
             INSERT INTO users (openid, session_key, nickname, login_count, created_at,
                                updated_at, last_login_at)
             SELECT 'o' || n, 'k', CASE WHEN n % 2 = 0 THEN 'even ' || n END, 1,
                    '2026-01-01', '2026-01-01', '2026-01-01' FROM seq"
        ))
        .unwrap();
        assert_eq!(index_some(conn).unwrap(), 10);
        assert_eq!(index_some(conn).unwrap(), 0);
        assert_eq!(indexed(conn, "%even%").len() as i64, n / 2);
        assert_eq!(
            nickname_matches(conn, "%even%", n).unwrap().len() as i64,
            n / 2
        );
        integrity_check(conn);
    }
}
