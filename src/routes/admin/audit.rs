use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use anyhow::Context;
use askama::Template;
use serde::{Deserialize, Serialize};

use super::context::PageContext;
use super::users::ActionRow;
use super::{render, AdminError, Signed};
use crate::db::models::{Admin, AuditEntry};
use crate::db::AuditFilter;
use crate::startup::AppState;

/// Entries per page.
const PAGE_SIZE: i64 = 50;

/// Filters, in the query string. Empty fields (as a form sends them) mean "any".
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct AuditParams {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    admin: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    before: Option<i64>,
}

fn optional_id(s: &str) -> Result<Option<i64>, AdminError> {
    match s.trim() {
        "" => Ok(None),
        v => v.parse().map(Some).map_err(|_| AdminError::BadRequest),
    }
}

struct Choice {
    value: i64,
    label: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    ctx: PageContext,
    admin_options: Vec<Choice>,
    user_filter: String,
    rows: Vec<ActionRow>,
    older_url: Option<String>,
}

/// `GET /admin/audit`: every admin action, newest first, filterable by admin and user.
pub async fn audit(
    req: HttpRequest,
    state: web::Data<AppState>,
    signed: Signed,
    params: web::Query<AuditParams>,
) -> Result<HttpResponse, AdminError> {
    let params = params.into_inner();
    let filter = AuditFilter {
        admin_id: optional_id(&params.admin)?,
        user_id: optional_id(&params.user)?,
    };
    let before = params.before;
    let query_filter = filter.clone();
    let (admins, entries) = crate::db::run(&state.pool, move |conn| {
        let admins = Admin::all(conn)?;
        // One extra row tells whether there is an older page.
        let entries = AuditEntry::list(conn, &query_filter, before, PAGE_SIZE + 1)?;
        Ok((admins, entries))
    })
    .await
    .context("loading the audit log")?;
    let ctx = PageContext::signed(&req, &state, &signed, "audit")?;
    let has_older = entries.len() as i64 > PAGE_SIZE;
    let entries: Vec<AuditEntry> = entries.into_iter().take(PAGE_SIZE as usize).collect();
    let older_url = has_older
        .then(|| entries.last().map(|e| e.id))
        .flatten()
        .map(|last_id| {
            let mut p = params.clone();
            p.before = Some(last_id);
            format!(
                "/admin/audit?{}",
                serde_urlencoded::to_string(&p).unwrap_or_default()
            )
        });
    let rows = entries
        .into_iter()
        .map(|e| ActionRow::new(e, &ctx))
        .collect();
    let admin_options = admins
        .into_iter()
        .map(|a| Choice {
            selected: Some(a.id) == filter.admin_id,
            value: a.id,
            label: a.username,
        })
        .collect();
    render(
        &AuditPage {
            ctx,
            admin_options,
            user_filter: filter.user_id.map(|u| u.to_string()).unwrap_or_default(),
            rows,
            older_url,
        },
        StatusCode::OK,
    )
}
