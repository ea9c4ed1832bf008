use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use anyhow::Context;
use askama::Template;
use serde::{Deserialize, Serialize};

use super::context::{set_flash, Flash, PageContext};
use super::{render, see_other, AdminError, Signed};
use crate::db::models::{AuditEntry, NewAuditEntry, User};
use crate::db::{AuditAction, AuditFilter, StatusFilter, UserListQuery, UserSort};
use crate::startup::AppState;

/// Page sizes offered.
const PER_PAGE_CHOICES: [i64; 4] = [10, 20, 50, 100];
/// Longest disable reason.
const MAX_REASON_CHARS: usize = 500;

/// The list's whole state, in the query string so every view is a link.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ListParams {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    q: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    sort: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    per_page: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    page: Option<i64>,
}

fn parse_status(s: &str) -> Result<StatusFilter, AdminError> {
    match s {
        "" | "all" => Ok(StatusFilter::All),
        "active" => Ok(StatusFilter::Active),
        "disabled" => Ok(StatusFilter::Disabled),
        _ => Err(AdminError::BadRequest),
    }
}

fn parse_sort(s: &str) -> Result<UserSort, AdminError> {
    match s {
        "" | "created_desc" => Ok(UserSort::CreatedDesc),
        "created_asc" => Ok(UserSort::CreatedAsc),
        "last_login_desc" => Ok(UserSort::LastLoginDesc),
        "last_login_asc" => Ok(UserSort::LastLoginAsc),
        _ => Err(AdminError::BadRequest),
    }
}

/// A `<select>` choice.
struct Choice {
    value: String,
    label: String,
    selected: bool,
}

/// A numbered page link; `url` is `None` for a gap (`…`).
struct PageLink {
    number: i64,
    url: Option<String>,
    current: bool,
}

/// A user as one row of the list shows it.
struct UserRow {
    id: i64,
    avatar_url: Option<String>,
    nickname: Option<String>,
    openid: String,
    unionid: Option<String>,
    disabled: bool,
    created: String,
    last_login: String,
    login_count: i64,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    ctx: PageContext,
    q: String,
    filtered: bool,
    count_text: String,
    page_text: String,
    pages: i64,
    rows: Vec<UserRow>,
    status_options: Vec<Choice>,
    sort_options: Vec<Choice>,
    per_page_options: Vec<Choice>,
    prev_url: Option<String>,
    next_url: Option<String>,
    page_links: Vec<PageLink>,
    api_example_base: String,
}

fn list_url(params: &ListParams, page: i64) -> String {
    let mut p = params.clone();
    p.page = (page > 1).then_some(page);
    match serde_urlencoded::to_string(&p).unwrap_or_default().as_str() {
        "" => "/admin/users".to_owned(),
        q => format!("/admin/users?{q}"),
    }
}

/// Page numbers to link: the first, the last, and two either side of the current one.
fn page_numbers(page: i64, pages: i64) -> Vec<Option<i64>> {
    let mut out = Vec::new();
    let mut last = 0;
    for n in 1..=pages {
        if n == 1 || n == pages || (n - page).abs() <= 2 {
            if n > last + 1 {
                out.push(None);
            }
            out.push(Some(n));
            last = n;
        }
    }
    out
}

/// `GET /admin/users`: search, filter, sort, page.
pub async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    signed: Signed,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, AdminError> {
    let mut params = params.into_inner();
    params.q = params.q.trim().chars().take(128).collect();
    let status = parse_status(&params.status)?;
    let sort = parse_sort(&params.sort)?;
    let per_page = params.per_page.unwrap_or(20);
    if !PER_PAGE_CHOICES.contains(&per_page) {
        return Err(AdminError::BadRequest);
    }
    let page = params.page.unwrap_or(1);
    if page < 1 {
        return Err(AdminError::BadRequest);
    }
    let query = UserListQuery {
        search: (!params.q.is_empty()).then(|| params.q.clone()),
        status,
        sort,
        page,
        per_page,
    };
    let filtered = query.search.is_some() || status != StatusFilter::All;
    let list = crate::db::run(&state.pool, move |conn| {
        User::list(conn, &query).context("listing users")
    })
    .await?;
    let ctx = PageContext::signed(&req, &state, &signed, "users")?;
    let t = ctx.t;
    let pages = ((list.total + per_page - 1) / per_page).max(1);
    let rows = list
        .users
        .into_iter()
        .map(|u| UserRow {
            id: u.id,
            avatar_url: u.avatar_url,
            nickname: u.nickname,
            openid: u.openid,
            unionid: u.unionid,
            disabled: u.disabled_at.is_some(),
            created: ctx.time(u.created_at),
            last_login: ctx.time(u.last_login_at),
            login_count: u.login_count,
        })
        .collect();
    let choices = |items: &[(&str, &str)], current: &str| {
        items
            .iter()
            .map(|(value, label)| Choice {
                value: (*value).to_owned(),
                label: (*label).to_owned(),
                selected: *value == current,
            })
            .collect::<Vec<_>>()
    };
    let status_value = match status {
        StatusFilter::All => "all",
        StatusFilter::Active => "active",
        StatusFilter::Disabled => "disabled",
    };
    let sort_value = match sort {
        UserSort::CreatedDesc => "created_desc",
        UserSort::CreatedAsc => "created_asc",
        UserSort::LastLoginDesc => "last_login_desc",
        UserSort::LastLoginAsc => "last_login_asc",
    };
    let page_links = page_numbers(page, pages)
        .into_iter()
        .map(|n| match n {
            Some(n) => PageLink {
                number: n,
                url: Some(list_url(&params, n)),
                current: n == page,
            },
            None => PageLink {
                number: 0,
                url: None,
                current: false,
            },
        })
        .collect();
    let host = req.connection_info().host().to_owned();
    let page_view = UsersPage {
        q: params.q.clone(),
        filtered,
        count_text: if list.more {
            t.user_count_more(list.total)
        } else {
            t.user_count(list.total)
        },
        page_text: t.page_of(page, pages),
        pages,
        rows,
        status_options: choices(
            &[
                ("all", t.status_all),
                ("active", t.status_active),
                ("disabled", t.status_disabled),
            ],
            status_value,
        ),
        sort_options: choices(
            &[
                ("created_desc", t.sort_created_desc),
                ("created_asc", t.sort_created_asc),
                ("last_login_desc", t.sort_last_login_desc),
                ("last_login_asc", t.sort_last_login_asc),
            ],
            sort_value,
        ),
        per_page_options: PER_PAGE_CHOICES
            .iter()
            .map(|n| Choice {
                value: n.to_string(),
                label: n.to_string(),
                selected: *n == per_page,
            })
            .collect(),
        prev_url: (page > 1).then(|| list_url(&params, page - 1)),
        next_url: (page < pages).then(|| list_url(&params, page + 1)),
        page_links,
        api_example_base: format!("http://{host}"),
        ctx,
    };
    render(&page_view, StatusCode::OK)
}

/// A user as the detail page shows it.
struct UserView {
    id: i64,
    openid: String,
    unionid: Option<String>,
    nickname: Option<String>,
    avatar_url: Option<String>,
    disabled: bool,
    disabled_at: Option<String>,
    disabled_reason: Option<String>,
    created: String,
    last_login: String,
    updated: String,
    login_count: i64,
}

struct LoginRow {
    time: String,
    ip: String,
    user_agent: String,
}

/// An audit entry as shown in a table.
pub struct ActionRow {
    pub time: String,
    pub admin: String,
    pub action: &'static str,
    pub user_id: Option<i64>,
    pub reason: String,
    pub ip: String,
}

impl ActionRow {
    /// The row for `entry`, in the page's language and time zone.
    pub fn new(entry: AuditEntry, ctx: &PageContext) -> Self {
        Self {
            time: ctx.time(entry.created_at),
            admin: entry.admin_username,
            action: ctx.t.action_name(&entry.action),
            user_id: entry.user_id,
            reason: entry.reason.unwrap_or_default(),
            ip: entry.ip.unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "user.html")]
struct UserPage {
    ctx: PageContext,
    user: UserView,
    logins: Vec<LoginRow>,
    actions: Vec<ActionRow>,
    error: Option<&'static str>,
    reason: String,
}

async fn user_page(
    req: &HttpRequest,
    state: &AppState,
    signed: &Signed,
    id: i64,
    error: Option<&'static str>,
    reason: String,
    status: StatusCode,
) -> Result<HttpResponse, AdminError> {
    let found = crate::db::run(&state.pool, move |conn| {
        let Some(user) = User::find(conn, id)? else {
            return Ok(None);
        };
        let logins = User::recent_logins(conn, id, 50)?;
        let actions = AuditEntry::list(
            conn,
            &AuditFilter {
                admin_id: None,
                user_id: Some(id),
            },
            None,
            50,
        )?;
        Ok(Some((user, logins, actions)))
    })
    .await?;
    let (user, logins, actions) = found.ok_or(AdminError::NotFound)?;
    let ctx = PageContext::signed(req, state, signed, "users")?;
    let view = UserView {
        id: user.id,
        disabled: user.is_disabled(),
        disabled_at: user.disabled_at.map(|t| ctx.time(t)),
        disabled_reason: user.disabled_reason,
        created: ctx.time(user.created_at),
        last_login: ctx.time(user.last_login_at),
        updated: ctx.time(user.updated_at),
        login_count: user.login_count,
        openid: user.openid,
        unionid: user.unionid,
        nickname: user.nickname,
        avatar_url: user.avatar_url,
    };
    let logins = logins
        .into_iter()
        .map(|l| LoginRow {
            time: ctx.time(l.logged_in_at),
            ip: l.ip.unwrap_or_default(),
            user_agent: l.user_agent.unwrap_or_default(),
        })
        .collect();
    let actions = actions
        .into_iter()
        .map(|a| ActionRow::new(a, &ctx))
        .collect();
    render(
        &UserPage {
            ctx,
            user: view,
            logins,
            actions,
            error,
            reason,
        },
        status,
    )
}

/// `GET /admin/users/{id}`.
pub async fn detail(
    req: HttpRequest,
    state: web::Data<AppState>,
    signed: Signed,
    id: web::Path<i64>,
) -> Result<HttpResponse, AdminError> {
    user_page(
        &req,
        &state,
        &signed,
        id.into_inner(),
        None,
        String::new(),
        StatusCode::OK,
    )
    .await
}

#[derive(Deserialize)]
pub struct DisableForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

fn audit_user_action(
    conn: &mut crate::db::DbConnection,
    signed_admin: (i64, &str),
    action: AuditAction,
    user_id: i64,
    reason: Option<&str>,
    ip: Option<&str>,
    now: chrono::NaiveDateTime,
) -> diesel::QueryResult<usize> {
    AuditEntry::record(
        conn,
        &NewAuditEntry {
            admin_id: Some(signed_admin.0),
            admin_username: signed_admin.1,
            action: action.as_str(),
            user_id: Some(user_id),
            reason,
            ip,
            created_at: now,
        },
    )
}

/// `POST /admin/users/{id}/disable`: needs a reason; revokes every token at once.
pub async fn disable(
    req: HttpRequest,
    state: web::Data<AppState>,
    signed: Signed,
    id: web::Path<i64>,
    form: web::Form<DisableForm>,
) -> Result<HttpResponse, AdminError> {
    signed.check_csrf(&form.csrf)?;
    let id = id.into_inner();
    let reason = form.reason.trim().to_owned();
    let t = crate::i18n::Lang::of_request(&req).messages();
    let invalid = if reason.is_empty() {
        Some(t.reason_required)
    } else if reason.chars().count() > MAX_REASON_CHARS {
        Some(t.reason_too_long)
    } else {
        None
    };
    if let Some(message) = invalid {
        return user_page(
            &req,
            &state,
            &signed,
            id,
            Some(message),
            reason,
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    let ip = crate::routes::client_ip(&req);
    let (admin_id, admin_name) = (signed.admin.id, signed.admin.username.clone());
    let outcome = crate::db::run(&state.pool, move |conn| {
        let Some(user) = User::find(conn, id)? else {
            return Ok(None);
        };
        if user.is_disabled() {
            return Ok(Some(false));
        }
        let now = crate::db::now();
        User::disable(conn, id, &reason, now)?;
        audit_user_action(
            conn,
            (admin_id, &admin_name),
            AuditAction::DisableUser,
            id,
            Some(&reason),
            ip.as_deref(),
            now,
        )?;
        Ok(Some(true))
    })
    .await?;
    match outcome {
        None => Err(AdminError::NotFound),
        Some(changed) => {
            if changed {
                tracing::info!(admin = %signed.admin.username, user_id = id, "user disabled");
            }
            set_flash(
                &signed.session,
                if changed {
                    Flash::Disabled
                } else {
                    Flash::Already
                },
            );
            Ok(see_other(&format!("/admin/users/{id}")))
        }
    }
}

/// `POST /admin/users/{id}/enable`.
pub async fn enable(
    req: HttpRequest,
    state: web::Data<AppState>,
    signed: Signed,
    id: web::Path<i64>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, AdminError> {
    signed.check_csrf(&form.csrf)?;
    let id = id.into_inner();
    let ip = crate::routes::client_ip(&req);
    let (admin_id, admin_name) = (signed.admin.id, signed.admin.username.clone());
    let outcome = crate::db::run(&state.pool, move |conn| {
        let Some(user) = User::find(conn, id)? else {
            return Ok(None);
        };
        if !user.is_disabled() {
            return Ok(Some(false));
        }
        let now = crate::db::now();
        User::enable(conn, id, now)?;
        audit_user_action(
            conn,
            (admin_id, &admin_name),
            AuditAction::EnableUser,
            id,
            None,
            ip.as_deref(),
            now,
        )?;
        Ok(Some(true))
    })
    .await?;
    match outcome {
        None => Err(AdminError::NotFound),
        Some(changed) => {
            if changed {
                tracing::info!(admin = %signed.admin.username, user_id = id, "user enabled");
            }
            set_flash(
                &signed.session,
                if changed {
                    Flash::Enabled
                } else {
                    Flash::Already
                },
            );
            Ok(see_other(&format!("/admin/users/{id}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_numbers_show_ends_and_a_window_with_gaps() {
        assert_eq!(page_numbers(1, 1), vec![Some(1)]);
        assert_eq!(
            page_numbers(5, 10),
            vec![
                Some(1),
                None,
                Some(3),
                Some(4),
                Some(5),
                Some(6),
                Some(7),
                None,
                Some(10)
            ]
        );
        assert_eq!(page_numbers(1, 4), vec![Some(1), Some(2), Some(3), Some(4)]);
    }

    #[test]
    fn list_urls_keep_the_filters_and_drop_page_one() {
        let p = ListParams {
            q: "小 明&x".into(),
            status: "disabled".into(),
            ..Default::default()
        };
        assert_eq!(
            list_url(&p, 1),
            "/admin/users?q=%E5%B0%8F+%E6%98%8E%26x&status=disabled"
        );
        assert_eq!(
            list_url(&p, 3),
            "/admin/users?q=%E5%B0%8F+%E6%98%8E%26x&status=disabled&page=3"
        );
        assert_eq!(list_url(&ListParams::default(), 1), "/admin/users");
    }
}
