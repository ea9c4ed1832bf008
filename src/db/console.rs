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

/// Users whose openid or unionid is `term`.
fn exact_id_matches(conn: &mut DbConnection, term: &str) -> QueryResult<Vec<i64>> {
    users::table
        .filter(users::openid.eq(term).or(users::unionid.eq(term)))
        .select(users::id)
        .load(conn)
}

/// Up to `limit` users whose nickname contains `term`, from the trigram index; `None` when
/// the index cannot answer (fewer than three characters, or LIKE wildcards in the term).
fn indexed_nickname_matches(
    conn: &mut DbConnection,
    term: &str,
    limit: i64,
) -> QueryResult<Option<Vec<i64>>> {
    if term.chars().count() < 3 || term.contains(['%', '_', '\\']) {
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
        let page_ids = ordered(filtered(&matching, query.status), query.sort)
            .select(users::id)
            .limit(query.per_page)
            .offset((query.page - 1).max(0) * query.per_page);
        let users = ordered(users::table.into_boxed(), query.sort)
            .filter(users::id.eq_any(page_ids))
            .select(User::as_select())
            .load(conn)?;
        Ok(UserList { users, total, more })
    }
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
    use super::like_contains;

    #[test]
    fn wildcards_in_a_search_term_match_literally() {
        assert_eq!(like_contains("a%b_c\\"), "%a\\%b\\_c\\\\%");
        assert_eq!(like_contains("小明"), "%小明%");
    }
}
