//! The nickname search indexes (FTS5), brought up to date in batches.
//!
//! Two indexes: `users_nickname_fts` holds the nicknames' trigrams and answers terms of
//! three characters or more; `users_nickname_pairs` holds each nickname with a separator
//! after every character, so that its trigrams are the single characters and the pairs of
//! neighbours, and answers terms of one or two (see migration 000008).
//!
//! FTS5 writes out a new segment at the end of every statement that changes it, so a
//! trigger that indexed each new user as it was inserted made every login pay for a segment
//! (and for merging them): a third of the login writer's time. Instead, users past
//! `indexed_through` (and `pairs_indexed_through`) are indexed in one statement each every
//! fraction of a second by the login writer ([`index_some`]), and searches read those few
//! users directly ([`nickname_matches`], [`short_term_matches`]), so a user is found the
//! moment it exists. Nickname changes of users already indexed still go through triggers:
//! they are rare. Searches only filter, never rank, so the trigram index keeps no sizes
//! (`columnsize = 0`, migration 000009): writing them was most of a new user's indexing.
//!
//! SQLite-only, as FTS5 is; PostgreSQL's counterpart (pg_trgm) needs none of this.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use super::DbConnection;

/// Most users one batch indexes, so that catching up on a large backlog (users imported
/// straight into the table, say) never holds the write lock for long.
pub const MOST_AT_ONCE: i64 = 4096;

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

diesel::define_sql_function! {
    /// The pairs index's text of a nickname: "abc" becomes "\x1fa\x1fb\x1fc\x1f".
    fn wxlogin_nickname_chars(nickname: Text) -> Text;
}

/// A nickname with U+001F after every character and before the first, so that its trigrams
/// are its single characters and its pairs of neighbours.
fn separated(nickname: &str) -> String {
    let mut chars = String::with_capacity(2 * nickname.len() + 1);
    chars.push('\u{1f}');
    for c in nickname.chars() {
        chars.push(c);
        chars.push('\u{1f}');
    }
    chars
}

/// Gives `conn` the SQL function [`index_some`] builds the pairs index with. Built in Rust
/// rather than by the triggers (a recursive query cost the login writer 30k instructions a
/// user; triggers cannot run one anyway), so tools without it, such as the sqlite3 shell,
/// can still change users: renamed users wait for the next batch.
pub(crate) fn add_functions(conn: &mut DbConnection) -> QueryResult<()> {
    wxlogin_nickname_chars_utils::register_impl(conn, |nickname: String| separated(&nickname))
}

/// Users waiting for each index.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Backlog {
    /// Users past `indexed_through` (ids can have gaps, so this is an upper bound).
    pub trigrams: i64,
    /// Users past `pairs_indexed_through`, and renamed or deleted users.
    pub pairs: i64,
}

impl Backlog {
    /// Whether anyone waits for either index.
    pub fn any(self) -> bool {
        self.trigrams > 0 || self.pairs > 0
    }
}

/// Users waiting for each index.
pub(crate) fn backlog(conn: &mut DbConnection) -> QueryResult<Backlog> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        trigrams: i64,
        #[diesel(sql_type = BigInt)]
        pairs: i64,
    }
    diesel::sql_query(
        "SELECT MAX(newest - indexed_through, 0) AS trigrams,
                MAX(newest - pairs_indexed_through, 0)
                + (SELECT COUNT(*) FROM users_nickname_pairs_pending) AS pairs
         FROM users_nickname_fts_progress,
              (SELECT COALESCE(MAX(id), 0) AS newest FROM users)",
    )
    .get_result::<Row>(conn)
    .map(|r| Backlog {
        trigrams: r.trigrams,
        pairs: r.pairs,
    })
}

/// Whether renamed or deleted users wait for the pairs index.
pub(crate) fn renames_waiting(conn: &mut DbConnection) -> QueryResult<bool> {
    diesel::sql_query("SELECT EXISTS (SELECT 1 FROM users_nickname_pairs_pending) AS n")
        .get_result::<Count>(conn)
        .map(|c| c.n > 0)
}

/// Indexes the next [`MOST_AT_ONCE`] users past `indexed_through` and, for the pairs
/// index, the next `pairs_at_most` users past `pairs_indexed_through` and up to as many
/// renamed users (none when it is 0), in one transaction; returns who still waits. Users
/// without a nickname are in the trigram index too (as empty), so that it matches the table
/// row for row, as FTS5 expects of an external-content index; the contentless pairs index
/// leaves them out.
pub(crate) fn index_some(conn: &mut DbConnection, pairs_at_most: i64) -> QueryResult<Backlog> {
    let pairs = pairs_at_most > 0;
    conn.immediate_transaction(|conn| {
        diesel::sql_query(
            "INSERT INTO users_nickname_fts (rowid, nickname)
             SELECT id, nickname FROM users
             WHERE id > (SELECT indexed_through FROM users_nickname_fts_progress)
               AND id <= (SELECT indexed_through FROM users_nickname_fts_progress) + ?",
        )
        .bind::<BigInt, _>(MOST_AT_ONCE)
        .execute(conn)?;
        if pairs {
            // Out with what the index holds for renamed and deleted users (a contentless index
            // takes a row out by its text), then in with their nicknames as they are now.
            diesel::sql_query(
                "INSERT INTO users_nickname_pairs (users_nickname_pairs, rowid, chars)
                 SELECT 'delete', id, wxlogin_nickname_chars(indexed_as)
                 FROM users_nickname_pairs_pending
                 WHERE id IN (SELECT id FROM users_nickname_pairs_pending ORDER BY id LIMIT ?)
                   AND indexed_as <> ''",
            )
            .bind::<BigInt, _>(pairs_at_most)
            .execute(conn)?;
            diesel::sql_query(
                "INSERT INTO users_nickname_pairs (rowid, chars)
                 SELECT id, wxlogin_nickname_chars(nickname) FROM users
                 WHERE id > (SELECT pairs_indexed_through FROM users_nickname_fts_progress)
                   AND id <= (SELECT pairs_indexed_through FROM users_nickname_fts_progress) + ?1
                   AND nickname <> ''
                 UNION ALL
                 SELECT id, wxlogin_nickname_chars(nickname) FROM users
                 WHERE id IN (SELECT id FROM users_nickname_pairs_pending ORDER BY id LIMIT ?1)
                   AND nickname <> ''",
            )
            .bind::<BigInt, _>(pairs_at_most)
            .execute(conn)?;
            diesel::sql_query(
                "DELETE FROM users_nickname_pairs_pending
                 WHERE id IN (SELECT id FROM users_nickname_pairs_pending ORDER BY id LIMIT ?)",
            )
            .bind::<BigInt, _>(pairs_at_most)
            .execute(conn)?;
        }
        diesel::sql_query(
            "UPDATE users_nickname_fts_progress
             SET indexed_through = MAX(indexed_through, MIN(indexed_through + ?1, newest)),
                 pairs_indexed_through =
                     MAX(pairs_indexed_through, MIN(pairs_indexed_through + ?2, newest))
             FROM (SELECT COALESCE(MAX(id), 0) AS newest FROM users)",
        )
        .bind::<BigInt, _>(MOST_AT_ONCE)
        .bind::<BigInt, _>(pairs_at_most.max(0))
        .execute(conn)?;
        backlog(conn)
    })
}

/// Indexes everyone waiting, a batch at a time, and returns when no one is: what the login
/// writer does in the background, all at once (for tools that load users in bulk).
pub fn index_everyone(conn: &mut DbConnection) -> QueryResult<()> {
    add_functions(conn)?;
    while index_some(conn, MOST_AT_ONCE)?.any() {}
    Ok(())
}

/// The pairs index's search text for a term of one or two characters: the trigram that
/// holds them (a quoted FTS5 phrase), or `None` for a longer or empty term.
fn pairs_phrase(term: &str) -> Option<String> {
    let mut chars = term.chars();
    let trigram = match (chars.next(), chars.next(), chars.next()) {
        (Some(c), None, None) => format!("\u{1f}{c}\u{1f}"),
        (Some(a), Some(b), None) => format!("{a}\u{1f}{b}"),
        _ => return None,
    };
    Some(format!("\"{}\"", trigram.replace('"', "\"\"")))
}

/// Up to `limit` ids of users whose nickname contains `term` (one or two characters; `None`
/// for others): those the pairs index holds, but for renamed users it has not caught up
/// with, which are read directly, as are the users it has not reached yet; all from one
/// snapshot.
pub(crate) fn short_term_matches(
    conn: &mut DbConnection,
    term: &str,
    limit: i64,
) -> QueryResult<Option<Vec<i64>>> {
    let Some(phrase) = pairs_phrase(term) else {
        return Ok(None);
    };
    let ids = diesel::sql_query(
        "SELECT rowid AS id FROM users_nickname_pairs
         WHERE users_nickname_pairs MATCH ?1
           AND rowid NOT IN (SELECT id FROM users_nickname_pairs_pending)
         UNION ALL
         SELECT id FROM users
         WHERE id > (SELECT pairs_indexed_through FROM users_nickname_fts_progress)
           AND nickname LIKE ?2 ESCAPE '\\'
         UNION ALL
         SELECT id FROM users
         WHERE id IN (SELECT id FROM users_nickname_pairs_pending)
           AND nickname LIKE ?2 ESCAPE '\\'
         LIMIT ?3",
    )
    .bind::<Text, _>(phrase)
    .bind::<Text, _>(super::like_contains(term))
    .bind::<BigInt, _>(limit)
    .load::<RowId>(conn)?;
    Ok(Some(ids.into_iter().map(|r| r.id).collect()))
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
    fn upgrading_to_the_index_without_sizes_keeps_every_user_findable() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("old.db");
        let url = url.to_str().unwrap();
        let mut conn = DbConnection::establish(url).unwrap();
        add_functions(&mut conn).unwrap();
        // Every migration before the one that drops the sizes.
        crate::db::migrate_to_just_before(&mut conn, "2026-12-01-000009");
        // One user indexed under the earlier index, one still waiting for its batch.
        add_users(&mut conn, &["Old Panda"]);
        index_some(&mut conn, MOST_AT_ONCE).unwrap();
        add_users(&mut conn, &["Late Panda"]);
        drop(conn);

        let pool = crate::db::connect(url).unwrap();
        let conn = &mut pool.get().unwrap();
        assert_eq!(
            indexed(conn, "%panda%"),
            [1, 2],
            "both in the index at once"
        );
        assert_eq!(
            nickname_matches(conn, "%panda%", 10).unwrap(),
            [1, 2],
            "once each"
        );
        assert_eq!(backlog(conn).unwrap().trigrams, 0);
        integrity_check(conn);
        let sizes: i64 = diesel::sql_query(
            "SELECT COUNT(*) AS n FROM sqlite_schema WHERE name = 'users_nickname_fts_docsize'",
        )
        .get_result::<Count>(conn)
        .unwrap()
        .n;
        assert_eq!(sizes, 0, "the sizes table is gone");
        // Later users go on in batches.
        add_users(conn, &["New Panda"]);
        assert!(!index_some(conn, MOST_AT_ONCE).unwrap().any());
        integrity_check(conn);
        assert_eq!(indexed(conn, "%panda%"), [1, 2, 3]);
    }

    #[test]
    fn new_users_are_found_before_and_after_they_are_indexed() {
        let (_dir, pool) = fresh_database();
        let conn = &mut pool.get().unwrap();
        add_users(conn, &["Red Panda", "熊猫宝宝", "koala"]);
        assert_eq!(
            backlog(conn).unwrap(),
            Backlog {
                trigrams: 3,
                pairs: 3
            }
        );
        assert!(indexed(conn, "%panda%").is_empty(), "not indexed yet");
        assert_eq!(nickname_matches(conn, "%panda%", 10).unwrap(), [1]);
        assert_eq!(nickname_matches(conn, "%熊猫宝%", 10).unwrap(), [2]);

        assert!(!index_some(conn, MOST_AT_ONCE).unwrap().any());
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
        index_some(conn, MOST_AT_ONCE).unwrap();
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
        let ten = Backlog {
            trigrams: 10,
            pairs: 10,
        };
        assert_eq!(index_some(conn, MOST_AT_ONCE).unwrap(), ten);
        assert!(!index_some(conn, MOST_AT_ONCE).unwrap().any());
        assert_eq!(indexed(conn, "%even%").len() as i64, n / 2);
        assert_eq!(
            nickname_matches(conn, "%even%", n).unwrap().len() as i64,
            n / 2
        );
        integrity_check(conn);
    }

    /// Every user whose nickname contains `term`, read the slow way.
    fn by_like(conn: &mut DbConnection, term: &str) -> Vec<i64> {
        diesel::sql_query("SELECT id FROM users WHERE nickname LIKE ? ESCAPE '\\' ORDER BY id")
            .bind::<Text, _>(crate::db::like_contains(term))
            .load::<RowId>(conn)
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect()
    }

    fn short(conn: &mut DbConnection, term: &str) -> Vec<i64> {
        let mut ids = short_term_matches(conn, term, 1000)
            .unwrap()
            .expect("a term of one or two characters");
        ids.sort_unstable();
        ids
    }

    fn pending(conn: &mut DbConnection) -> i64 {
        diesel::sql_query("SELECT COUNT(*) AS n FROM users_nickname_pairs_pending")
            .get_result::<Count>(conn)
            .unwrap()
            .n
    }

    #[test]
    fn a_round_adds_to_the_pairs_index_no_more_users_than_it_is_given() {
        let (_dir, pool) = fresh_database();
        let conn = &mut pool.get().unwrap();
        conn.batch_execute(
            "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 250)
             INSERT INTO users (openid, session_key, nickname, login_count, created_at,
                                updated_at, last_login_at)
             SELECT 'o' || n, 'k', '新用户' || n, 1, '2026-01-01', '2026-01-01', '2026-01-01'
             FROM seq",
        )
        .unwrap();
        let behind = |pairs| Backlog { trigrams: 0, pairs };
        assert_eq!(
            index_some(conn, 100).unwrap(),
            behind(150),
            "the trigrams all at once"
        );
        assert_eq!(short(conn, "用户").len(), 250, "found, indexed or not");
        assert_eq!(index_some(conn, 100).unwrap(), behind(50));
        assert_eq!(
            index_some(conn, 0).unwrap(),
            behind(50),
            "0: the pairs index waits"
        );
        assert_eq!(index_some(conn, 100).unwrap(), behind(0));
        assert_eq!(short(conn, "用户").len(), 250);
        integrity_check(conn);
    }

    #[test]
    fn short_terms_find_what_a_like_scan_finds_before_and_after_indexing() {
        let (_dir, pool) = fresh_database();
        let conn = &mut pool.get().unwrap();
        let nicknames = [
            "ab",
            "ba",
            "aab",
            "abc",
            "cab",
            "b",
            "ABBA",
            "熊猫",
            "大熊猫",
            "猫",
            "a\"b",
            "a%b",
            "x_y",
            "a b",
        ];
        add_users(conn, &nicknames);
        conn.batch_execute(
            "INSERT INTO users (openid, session_key, login_count, created_at, updated_at,
                                last_login_at)
             VALUES ('oNoName', 'k', 1, '2026-01-01', '2026-01-01', '2026-01-01')",
        )
        .unwrap();
        // Every character and pair of neighbours that occurs, and some that do not.
        let mut terms: Vec<String> = vec!["ac".into(), "zz".into(), "猫熊".into(), "q".into()];
        for nickname in nicknames {
            let chars: Vec<char> = nickname.chars().collect();
            terms.extend(chars.iter().map(|c| c.to_string()));
            terms.extend(chars.windows(2).map(|w| w.iter().collect()));
        }
        for round in ["before indexing", "after indexing"] {
            for term in &terms {
                assert_eq!(short(conn, term), by_like(conn, term), "{term:?} {round}");
            }
            assert!(!index_some(conn, MOST_AT_ONCE).unwrap().any());
        }
        assert_eq!(
            short(conn, "ab"),
            [1, 3, 4, 5, 7],
            "ASCII case folds as LIKE's does"
        );
        assert!(short(conn, "ac").is_empty(), "only neighbours make a pair");
        assert_eq!(short(conn, "熊"), [8, 9]);
        assert_eq!(short_term_matches(conn, "abc", 10).unwrap(), None);
        assert_eq!(short_term_matches(conn, "", 10).unwrap(), None);
        assert_eq!(short_term_matches(conn, "a", 2).unwrap().unwrap().len(), 2);
    }

    #[test]
    fn renamed_and_deleted_users_are_found_by_short_terms_as_they_are_now() {
        let (_dir, pool) = fresh_database();
        let conn = &mut pool.get().unwrap();
        add_users(conn, &["熊猫", "koala", "panda", "emu", "twice", "back"]);
        conn.batch_execute("UPDATE users SET nickname = NULL WHERE id = 4")
            .unwrap();
        index_some(conn, MOST_AT_ONCE).unwrap();
        conn.batch_execute(
            "UPDATE users SET nickname = '小熊' WHERE id = 2;
             UPDATE users SET nickname = NULL WHERE id = 1;
             UPDATE users SET nickname = 'emu again' WHERE id = 4;
             DELETE FROM users WHERE id = 3;
             UPDATE users SET nickname = 'once' WHERE id = 5;
             UPDATE users SET nickname = 'more' WHERE id = 5;
             UPDATE users SET nickname = 'gone' WHERE id = 6;
             UPDATE users SET nickname = 'back' WHERE id = 6;",
        )
        .unwrap();
        assert_eq!(pending(conn), 6, "every change, each user once");
        assert_eq!(
            backlog(conn).unwrap(),
            Backlog {
                trigrams: 0,
                pairs: 6
            }
        );
        let terms = [
            "熊", "猫", "熊猫", "ko", "pa", "mu", "m", "tw", "on", "mo", "re", "go", "ba", "ck",
        ];
        for round in ["while they wait", "once indexed again"] {
            for term in terms {
                assert_eq!(short(conn, term), by_like(conn, term), "{term:?} {round}");
            }
            assert_eq!(short(conn, "熊"), [2], "{round}");
            assert_eq!(short(conn, "ba"), [6], "{round}");
            index_some(conn, MOST_AT_ONCE).unwrap();
        }
        assert_eq!(pending(conn), 0);
        assert!(!backlog(conn).unwrap().any());
        integrity_check(conn);
        conn.batch_execute(
            "INSERT INTO users_nickname_pairs (users_nickname_pairs, rank)
             VALUES ('integrity-check', 0)",
        )
        .expect("the pairs index is sound");
    }

    #[test]
    fn the_pairs_index_can_wait_while_the_trigram_index_goes_on() {
        let (_dir, pool) = fresh_database();
        let conn = &mut pool.get().unwrap();
        add_users(conn, &["熊猫宝宝", "koala"]);
        let left = index_some(conn, 0).unwrap();
        assert_eq!(
            left,
            Backlog {
                trigrams: 0,
                pairs: 2
            }
        );
        assert_eq!(indexed(conn, "%熊猫宝%"), [1]);
        assert_eq!(short(conn, "宝宝"), [1], "read from the table meanwhile");
        assert!(!index_some(conn, MOST_AT_ONCE).unwrap().any());
        assert_eq!(short(conn, "宝宝"), [1]);
        assert_eq!(short(conn, "k"), [2]);
    }
}
