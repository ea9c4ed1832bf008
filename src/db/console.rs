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

/// A page of users and how many match in all.
#[derive(Debug)]
pub struct UserList {
    /// The page's users.
    pub users: Vec<User>,
    /// All matching users.
    pub total: i64,
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

type BoxedUsers<'a> = users::BoxedQuery<'a, diesel::sqlite::Sqlite>;

fn filtered(query: &UserListQuery) -> BoxedUsers<'_> {
    let mut q = users::table.into_boxed();
    if let Some(term) = query.search.as_deref() {
        q = q.filter(
            users::nickname
                .like(like_contains(term))
                .escape('\\')
                .or(users::openid.eq(term))
                .or(users::unionid.eq(term)),
        );
    }
    match query.status {
        StatusFilter::All => q,
        StatusFilter::Active => q.filter(users::disabled_at.is_null()),
        StatusFilter::Disabled => q.filter(users::disabled_at.is_not_null()),
    }
}

impl User {
    /// A page of users for the console list.
    pub fn list(conn: &mut DbConnection, query: &UserListQuery) -> QueryResult<UserList> {
        let total = filtered(query).count().get_result(conn)?;
        let ordered = match query.sort {
            UserSort::CreatedDesc => {
                filtered(query).order((users::created_at.desc(), users::id.desc()))
            }
            UserSort::CreatedAsc => {
                filtered(query).order((users::created_at.asc(), users::id.asc()))
            }
            UserSort::LastLoginDesc => {
                filtered(query).order((users::last_login_at.desc(), users::id.desc()))
            }
            UserSort::LastLoginAsc => {
                filtered(query).order((users::last_login_at.asc(), users::id.asc()))
            }
        };
        let users = ordered
            .limit(query.per_page)
            .offset((query.page - 1).max(0) * query.per_page)
            .select(User::as_select())
            .load(conn)?;
        Ok(UserList { users, total })
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
