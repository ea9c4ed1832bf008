//! The console's read queries: user lists, search, dashboard figures.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::models::User;
use super::schema::{logins, users};
use super::DbConnection;

/// Which users a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatusFilter {
    /// Everyone.
    #[default]
    All,
    /// Users not disabled.
    Active,
    /// Disabled users.
    Disabled,
}

/// The order of a user list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UserSort {
    /// Newest first.
    #[default]
    CreatedDesc,
    /// Oldest first.
    CreatedAsc,
    /// Most recent login first.
    LastLoginDesc,
    /// Least recent login first.
    LastLoginAsc,
}

/// One page of a user list.
#[derive(Debug, Clone)]
pub struct UserListQuery {
    /// Nickname substring, or an exact openid / unionid.
    pub search: Option<String>,
    /// Status filter.
    pub status: StatusFilter,
    /// Order.
    pub sort: UserSort,
    /// 1-based page number.
    pub page: i64,
    /// Rows per page.
    pub per_page: i64,
}

/// Most matches a nickname search counts. Past it the console says "more than" this many:
/// an exact count of a common term would read most of the table on every page view.
pub const SEARCH_COUNT_CAP: i64 = 1000;

/// A page of users and how many match in all.
#[derive(Debug)]
pub struct UserList {
    /// The page's users.
    pub users: Vec<User>,
    /// All matching users, or [`SEARCH_COUNT_CAP`] when `more` is set.
    pub total: i64,
    /// More than `total` users match (a nickname search that hit the count cap).
    pub more: bool,
}

/// `term` as a LIKE pattern that matches it literally anywhere: `%`, `_` and the escape
/// character itself lose their wildcard meaning.
pub fn like_contains(term: &str) -> String {
    let mut pattern = String::with_capacity(term.len() + 2);
    pattern.push('%');
    for c in term.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Which users a search term selects, worked out before the page is read.
enum Matching {
    /// No search.
    Everyone,
    /// Exactly these users (an openid / unionid match, or the nickname index's answer).
    Ids(Vec<i64>),
    /// Nicknames containing the term, read row by row (short or common terms).
    NicknameLike(String),
}

type BoxedUsers<'a> = users::BoxedQuery<'a, diesel::sqlite::Sqlite>;

fn filtered<'a>(matching: &'a Matching, status: StatusFilter) -> BoxedUsers<'a> {
    let q = users::table.into_boxed();
    let q = match matching {
        Matching::Everyone => q,
        Matching::Ids(ids) => q.filter(users::id.eq_any(ids)),
        Matching::NicknameLike(pattern) => q.filter(users::nickname.like(pattern).escape('\\')),
    };
    match status {
        StatusFilter::All => q,
        StatusFilter::Active => q.filter(users::disabled_at.is_null()),
        StatusFilter::Disabled => q.filter(users::disabled_at.is_not_null()),
    }
}

fn ordered<'a>(q: BoxedUsers<'a>, sort: UserSort) -> BoxedUsers<'a> {
    match sort {
        UserSort::CreatedDesc => q.order((users::created_at.desc(), users::id.desc())),
        UserSort::CreatedAsc => q.order((users::created_at.asc(), users::id.asc())),
        UserSort::LastLoginDesc => q.order((users::last_login_at.desc(), users::id.desc())),
        UserSort::LastLoginAsc => q.order((users::last_login_at.asc(), users::id.asc())),
    }
}

/// Users whose openid or unionid is `term`: by openid through the openid lookup, or among
/// the newest users, which may not be in it yet (see `openid_index`).
fn exact_id_matches(conn: &mut DbConnection, term: &str) -> QueryResult<Vec<i64>> {
    use super::schema::{user_openids, user_openids_progress};
    let looked_up = user_openids::table
        .filter(user_openids::openid.eq(term))
        .select(user_openids::user_id);
    let through = user_openids_progress::table
        .select(user_openids_progress::indexed_through)
        .single_value();
    users::table
        .filter(
            users::id
                .eq_any(looked_up)
                .or(users::id.nullable().gt(through).and(users::openid.eq(term)))
                .or(users::unionid.eq(term)),
        )
        .select(users::id)
        .load(conn)
}

/// Up to `limit` users whose nickname contains `term`, from the nickname indexes; `None`
/// when they cannot answer (a term of three characters or more with LIKE wildcards in it).
fn indexed_nickname_matches(
    conn: &mut DbConnection,
    term: &str,
    limit: i64,
) -> QueryResult<Option<Vec<i64>>> {
    if term.chars().count() < 3 {
        return super::nickname_index::short_term_matches(conn, term, limit);
    }
    if term.contains(['%', '_', '\\']) {
        return Ok(None);
    }
    super::nickname_index::nickname_matches(conn, &like_contains(term), limit).map(Some)
}

impl User {
    /// A page of users for the console list.
    ///
    /// Built to stay fast at a million users: an openid / unionid is found through its
    /// index; a nickname term through the trigram index when it can, and its count stops
    /// at [`SEARCH_COUNT_CAP`]; a page deep in the list is found on the sort column's index
    /// alone (it holds the row id), so skipping half a million rows reads no table rows.
    pub fn list(conn: &mut DbConnection, query: &UserListQuery) -> QueryResult<UserList> {
        let matching = match query.search.as_deref() {
            None => Matching::Everyone,
            Some(term) => {
                let exact = exact_id_matches(conn, term)?;
                if !exact.is_empty() {
                    Matching::Ids(exact)
                } else {
                    match indexed_nickname_matches(conn, term, SEARCH_COUNT_CAP + 1)? {
                        Some(ids) if ids.len() as i64 <= SEARCH_COUNT_CAP => Matching::Ids(ids),
                        // A common term: its matches are dense, so reading rows in the
                        // page's order finds a page quickly.
                        _ => Matching::NicknameLike(like_contains(term)),
                    }
                }
            }
        };
        let (total, more, matching) = match (matching, query.status) {
            (Matching::Everyone, StatusFilter::Active) => {
                let all: i64 = users::table.count().get_result(conn)?;
                let disabled: i64 = filtered(&Matching::Everyone, StatusFilter::Disabled)
                    .count()
                    .get_result(conn)?;
                (all - disabled, false, Matching::Everyone)
            }
            (matching @ (Matching::Everyone | Matching::Ids(_)), status) => {
                let total = filtered(&matching, status).count().get_result(conn)?;
                (total, false, matching)
            }
            (matching @ Matching::NicknameLike(_), status) => {
                let seen: Vec<i64> = filtered(&matching, status)
                    .select(users::id)
                    .limit(SEARCH_COUNT_CAP + 1)
                    .load(conn)?;
                if seen.len() as i64 > SEARCH_COUNT_CAP {
                    (SEARCH_COUNT_CAP, true, matching)
                } else {
                    // Every match is known now: the page need not read the table again.
                    (seen.len() as i64, false, Matching::Ids(seen))
                }
            }
        };
        let offset = (query.page - 1).max(0) * query.per_page;
        let page_ids = match (&matching, query.status) {
            (Matching::Everyone, StatusFilter::Active) => {
                active_page_ids(conn, query.sort, offset, query.per_page)?
            }
            _ => page_ids(
                conn,
                &matching,
                query.status,
                query.sort,
                offset,
                query.per_page,
            )?,
        };
        let users = ordered(users::table.into_boxed(), query.sort)
            .filter(users::id.eq_any(page_ids))
            .select(User::as_select())
            .load(conn)?;
        Ok(UserList { users, total, more })
    }
}

/// The ids of a page of the list, read the plain way: the rows it skips are read and checked
/// against the filter.
fn page_ids(
    conn: &mut DbConnection,
    matching: &Matching,
    status: StatusFilter,
    sort: UserSort,
    offset: i64,
    limit: i64,
) -> QueryResult<Vec<i64>> {
    ordered(filtered(matching, status), sort)
        .select(users::id)
        .limit(limit)
        .offset(offset)
        .load(conn)
}

impl UserSort {
    /// The column the list is sorted on (ties go by id, the same way), and whether the
    /// order is descending.
    fn key(self) -> (&'static str, bool) {
        match self {
            UserSort::CreatedDesc => ("created_at", true),
            UserSort::CreatedAsc => ("created_at", false),
            UserSort::LastLoginDesc => ("last_login_at", true),
            UserSort::LastLoginAsc => ("last_login_at", false),
        }
    }
}

/// The rows before the user `id` in `sort`'s order, or (`from`) that user and the rows after.
///
/// The user's sort key is read in SQL rather than bound from Rust, so the comparison is with
/// the stored text itself, whatever form it was written in.
fn around(q: BoxedUsers<'_>, sort: UserSort, id: i64, from: bool) -> BoxedUsers<'_> {
    use diesel::dsl::sql;
    use diesel::sql_types::{BigInt, Bool};
    let (column, descending) = sort.key();
    let (loose, strict, by_id) = match (descending != from, from) {
        (true, true) => (">=", ">", ">="),
        (true, false) => (">=", ">", ">"),
        (false, true) => ("<=", "<", "<="),
        (false, false) => ("<=", "<", "<"),
    };
    let anchor = format!("(SELECT {column} FROM users WHERE id = ");
    q.filter(
        sql::<Bool>(&format!("{column} {loose} {anchor}"))
            .bind::<BigInt, _>(id)
            .sql(&format!(") AND ({column} {strict} {anchor}"))
            .bind::<BigInt, _>(id)
            .sql(&format!(") OR id {by_id} "))
            .bind::<BigInt, _>(id)
            .sql(")"),
    )
}

/// The id of the row `n` places on from the user `from` (from the top of the list when
/// `None`), if the list goes that far. Reads the sort column's index alone.
fn nth_row(
    conn: &mut DbConnection,
    sort: UserSort,
    from: Option<i64>,
    n: i64,
) -> QueryResult<Option<i64>> {
    let q = users::table.into_boxed();
    let q = match from {
        Some(id) => around(q, sort, id, true),
        None => q,
    };
    ordered(q, sort)
        .select(users::id)
        .offset(n)
        .limit(1)
        .first(conn)
        .optional()
}

/// Disabled users before the user `to` (and from the user `from` on, when given).
fn disabled_between(
    conn: &mut DbConnection,
    sort: UserSort,
    from: Option<i64>,
    to: i64,
) -> QueryResult<i64> {
    let q = filtered(&Matching::Everyone, StatusFilter::Disabled);
    let q = match from {
        Some(id) => around(q, sort, id, true),
        None => q,
    };
    around(q, sort, to, false).count().get_result(conn)
}

/// A page of the active users' list without checking the rows it skips.
///
/// Skipping `offset` active users the plain way reads each skipped row for its
/// `disabled_at` (page 25,000 at a million users: 66 ms). Instead: go `offset` rows down the
/// sort column's index, which holds the row ids and is read alone; count the disabled users
/// passed on the partial index that holds only them; go on by as many rows as that count
/// fell short, and again until no disabled user was among the rows just passed. With few
/// disabled users that is a step or two. One read transaction, so every step sees the
/// same list.
fn active_page_ids(
    conn: &mut DbConnection,
    sort: UserSort,
    offset: i64,
    limit: i64,
) -> QueryResult<Vec<i64>> {
    conn.transaction(|conn| {
        let Some(mut at) = nth_row(conn, sort, None, offset)? else {
            return Ok(Vec::new());
        };
        // `position` rows come before `at`, `disabled` of them disabled.
        let mut position = offset;
        let mut disabled = disabled_between(conn, sort, None, at)?;
        loop {
            let short = offset - (position - disabled);
            if short == 0 {
                break;
            }
            let Some(next) = nth_row(conn, sort, Some(at), short)? else {
                return Ok(Vec::new());
            };
            disabled += disabled_between(conn, sort, Some(at), next)?;
            position += short;
            at = next;
        }
        let from_here = around(
            filtered(&Matching::Everyone, StatusFilter::Active),
            sort,
            at,
            true,
        );
        ordered(from_here, sort)
            .select(users::id)
            .limit(limit)
            .load(conn)
    })
}

/// Figures for the dashboard.
#[derive(Debug, Clone)]
pub struct DashboardStats {
    /// All users.
    pub users: i64,
    /// Users not disabled.
    pub active: i64,
    /// Disabled users.
    pub disabled: i64,
    /// Users created since the start of today in the admin's time zone.
    pub new_today: i64,
    /// Users created in the last 7 days.
    pub new_7_days: i64,
    /// Logins in the last 24 hours.
    pub logins_24h: i64,
    /// Sign-ups per day, oldest first.
    pub daily_signups: Vec<i64>,
}

impl DashboardStats {
    /// Computes the figures. `day_starts` are the UTC instants at which each of the last
    /// days began in the admin's time zone, oldest first; the last one is today's.
    pub fn load(
        conn: &mut DbConnection,
        now: NaiveDateTime,
        day_starts: &[NaiveDateTime],
    ) -> QueryResult<Self> {
        let total: i64 = users::table.count().get_result(conn)?;
        let disabled: i64 = users::table
            .filter(users::disabled_at.is_not_null())
            .count()
            .get_result(conn)?;
        let count_since = |conn: &mut DbConnection, from: NaiveDateTime, to: NaiveDateTime| {
            users::table
                .filter(users::created_at.ge(from))
                .filter(users::created_at.lt(to))
                .count()
                .get_result::<i64>(conn)
        };
        let mut daily_signups = Vec::with_capacity(day_starts.len());
        for (i, start) in day_starts.iter().enumerate() {
            let end = day_starts
                .get(i + 1)
                .copied()
                .unwrap_or(now + chrono::TimeDelta::seconds(1));
            daily_signups.push(count_since(conn, *start, end)?);
        }
        let new_today = daily_signups.last().copied().unwrap_or(0);
        let new_7_days = count_since(
            conn,
            now - chrono::TimeDelta::days(7),
            now + chrono::TimeDelta::seconds(1),
        )?;
        let logins_24h: i64 = logins::table
            .filter(logins::logged_in_at.gt(now - chrono::TimeDelta::hours(24)))
            .count()
            .get_result(conn)?;
        Ok(Self {
            users: total,
            active: total - disabled,
            disabled,
            new_today,
            new_7_days,
            logins_24h,
            daily_signups,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::connection::SimpleConnection;

    #[test]
    fn the_active_list_skips_to_the_same_page_as_checking_every_row() {
        let dir = tempfile::tempdir().unwrap();
        let pool = crate::db::connect(dir.path().join("c.db").to_str().unwrap()).unwrap();
        let conn = &mut pool.get().unwrap();
        // Ties in both sort columns, so the order by id counts; disabled users scattered,
        // in runs, first and last, so a skip can land on one and pass several.
        conn.batch_execute(
            "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 240)
             INSERT INTO users (id, openid, session_key, created_at, updated_at, last_login_at,
                                disabled_at)
             SELECT n, 'o' || n, 'k', datetime('2026-01-01', '+' || (n / 3) || ' seconds'),
                    '2026-01-01 00:00:00',
                    datetime('2026-01-01', '+' || ((n * 7) % 50) || ' seconds'),
                    CASE WHEN n % 7 = 0 OR n BETWEEN 40 AND 60 OR n <= 3 OR n >= 230
                         THEN '2026-02-01 00:00:00' END
             FROM seq;",
        )
        .unwrap();
        let active: i64 = users::table
            .filter(users::disabled_at.is_null())
            .count()
            .get_result(conn)
            .unwrap();
        assert!(active > 150 && active < 200, "{active} active users");
        for sort in [
            UserSort::CreatedDesc,
            UserSort::CreatedAsc,
            UserSort::LastLoginDesc,
            UserSort::LastLoginAsc,
        ] {
            for per_page in [1, 7, 20] {
                for offset in (0..=active + per_page).step_by(per_page as usize) {
                    let checked = page_ids(
                        conn,
                        &Matching::Everyone,
                        StatusFilter::Active,
                        sort,
                        offset,
                        per_page,
                    )
                    .unwrap();
                    let skipped = active_page_ids(conn, sort, offset, per_page).unwrap();
                    assert_eq!(
                        skipped, checked,
                        "{sort:?}, offset {offset}, {per_page} a page"
                    );
                    assert_eq!(checked.is_empty(), offset >= active);
                }
            }
        }
    }

    #[test]
    fn wildcards_in_a_search_term_match_literally() {
        assert_eq!(like_contains("a%b_c\\"), "%a\\%b\\_c\\\\%");
        assert_eq!(like_contains("小明"), "%小明%");
    }
}
