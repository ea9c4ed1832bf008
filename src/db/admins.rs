use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::models::{Admin, AuditEntry, NewAdmin, NewAuditEntry};
use super::schema::{admin_sign_in_failures, admins, audit_log};
use super::DbConnection;

/// The kinds of admin action the audit log records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    /// Signed in to the console.
    SignIn,
    /// Signed out.
    SignOut,
    /// Changed their own password.
    ChangePassword,
    /// Disabled a user.
    DisableUser,
    /// Re-enabled a user.
    EnableUser,
}

impl AuditAction {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::SignIn => "sign_in",
            AuditAction::SignOut => "sign_out",
            AuditAction::ChangePassword => "change_password",
            AuditAction::DisableUser => "disable_user",
            AuditAction::EnableUser => "enable_user",
        }
    }
}

impl Admin {
    /// The admin with this username.
    pub fn find_by_username(conn: &mut DbConnection, username: &str) -> QueryResult<Option<Admin>> {
        super::unique(
            admins::table
                .filter(admins::username.eq(username))
                .select(Admin::as_select())
                .load(conn),
        )
    }

    /// The admin with this id.
    pub fn find(conn: &mut DbConnection, id: i64) -> QueryResult<Option<Admin>> {
        super::unique(admins::table.find(id).select(Admin::as_select()).load(conn))
    }

    /// How many admins exist.
    pub fn count(conn: &mut DbConnection) -> QueryResult<i64> {
        admins::table.count().get_result(conn)
    }

    /// All admins, by name.
    pub fn all(conn: &mut DbConnection) -> QueryResult<Vec<Admin>> {
        admins::table
            .order(admins::username.asc())
            .select(Admin::as_select())
            .load(conn)
    }

    /// Creates an admin.
    pub fn create(conn: &mut DbConnection, new: &NewAdmin<'_>) -> QueryResult<Admin> {
        diesel::insert_into(admins::table)
            .values(new)
            .returning(Admin::as_returning())
            .get_result(conn)
    }

    /// Replaces the admin's password hash.
    pub fn set_password(
        conn: &mut DbConnection,
        id: i64,
        password_hash: &str,
        must_change_password: bool,
        now: NaiveDateTime,
    ) -> QueryResult<usize> {
        diesel::update(admins::table.find(id))
            .set((
                admins::password_hash.eq(password_hash),
                admins::must_change_password.eq(must_change_password),
                admins::updated_at.eq(now),
            ))
            .execute(conn)
    }

    /// Notes a successful sign-in.
    pub fn touch_sign_in(
        conn: &mut DbConnection,
        id: i64,
        now: NaiveDateTime,
    ) -> QueryResult<usize> {
        diesel::update(admins::table.find(id))
            .set(admins::last_sign_in_at.eq(now))
            .execute(conn)
    }

    /// Records a failed sign-in for the brute-force limit.
    pub fn record_failed_sign_in(
        conn: &mut DbConnection,
        username: &str,
        ip: &str,
        now: NaiveDateTime,
    ) -> QueryResult<usize> {
        diesel::insert_into(admin_sign_in_failures::table)
            .values((
                admin_sign_in_failures::username.eq(username),
                admin_sign_in_failures::ip.eq(ip),
                admin_sign_in_failures::failed_at.eq(now),
            ))
            .execute(conn)
    }

    /// Times of the failures since `since`, newest first, for this username or from this
    /// IP, whichever has more (at most `limit`).
    pub fn recent_failures(
        conn: &mut DbConnection,
        username: &str,
        ip: &str,
        since: NaiveDateTime,
        limit: i64,
    ) -> QueryResult<Vec<NaiveDateTime>> {
        let by_user: Vec<NaiveDateTime> = admin_sign_in_failures::table
            .filter(admin_sign_in_failures::username.eq(username))
            .filter(admin_sign_in_failures::failed_at.gt(since))
            .select(admin_sign_in_failures::failed_at)
            .order(admin_sign_in_failures::failed_at.desc())
            .limit(limit)
            .load(conn)?;
        let by_ip: Vec<NaiveDateTime> = admin_sign_in_failures::table
            .filter(admin_sign_in_failures::ip.eq(ip))
            .filter(admin_sign_in_failures::failed_at.gt(since))
            .select(admin_sign_in_failures::failed_at)
            .order(admin_sign_in_failures::failed_at.desc())
            .limit(limit)
            .load(conn)?;
        Ok(if by_user.len() >= by_ip.len() {
            by_user
        } else {
            by_ip
        })
    }

    /// Forgets failures older than `before`.
    pub fn prune_failures(conn: &mut DbConnection, before: NaiveDateTime) -> QueryResult<usize> {
        diesel::delete(
            admin_sign_in_failures::table.filter(admin_sign_in_failures::failed_at.lt(before)),
        )
        .execute(conn)
    }
}

/// Filters for the audit page.
#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    /// Only this admin's actions.
    pub admin_id: Option<i64>,
    /// Only actions on this user.
    pub user_id: Option<i64>,
}

impl AuditEntry {
    /// Records an action.
    pub fn record(conn: &mut DbConnection, entry: &NewAuditEntry<'_>) -> QueryResult<usize> {
        diesel::insert_into(audit_log::table)
            .values(entry)
            .execute(conn)
    }

    /// Newest entries first, filtered, at most `limit`, older than `before_id` when given.
    pub fn list(
        conn: &mut DbConnection,
        filter: &AuditFilter,
        before_id: Option<i64>,
        limit: i64,
    ) -> QueryResult<Vec<AuditEntry>> {
        let mut query = audit_log::table
            .select(AuditEntry::as_select())
            .into_boxed();
        if let Some(admin_id) = filter.admin_id {
            query = query.filter(audit_log::admin_id.eq(admin_id));
        }
        if let Some(user_id) = filter.user_id {
            query = query.filter(audit_log::user_id.eq(user_id));
        }
        if let Some(before) = before_id {
            query = query.filter(audit_log::id.lt(before));
        }
        query.order(audit_log::id.desc()).limit(limit).load(conn)
    }
}
