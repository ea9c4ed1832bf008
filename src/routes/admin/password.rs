use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use anyhow::Context;
use askama::Template;
use serde::Deserialize;

use super::context::{begin_session, set_flash, Flash, PageContext};
use super::{render, see_other, AdminError, Signed};
use crate::db::models::{Admin, AuditEntry, NewAuditEntry};
use crate::db::AuditAction;
use crate::startup::AppState;

#[derive(Template)]
#[template(path = "password.html")]
struct PasswordPage {
    ctx: PageContext,
    must_change: bool,
    error: Option<&'static str>,
}

/// `GET /admin/password`.
pub async fn password_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    signed: Signed,
) -> Result<HttpResponse, AdminError> {
    let ctx = PageContext::signed(&req, &state, &signed, "password")?;
    render(
        &PasswordPage {
            ctx,
            must_change: signed.admin.must_change_password,
            error: None,
        },
        StatusCode::OK,
    )
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    csrf: String,
    current: String,
    new: String,
    repeat: String,
}

/// `POST /admin/password`: changes the signed-in admin's own password.
pub async fn change_password(
    req: HttpRequest,
    state: web::Data<AppState>,
    signed: Signed,
    form: web::Form<PasswordForm>,
) -> Result<HttpResponse, AdminError> {
    signed.check_csrf(&form.csrf)?;
    let form = form.into_inner();
    let t = crate::i18n::Lang::of_request(&req).messages();
    let refuse = |message: &'static str, status: StatusCode| -> Result<HttpResponse, AdminError> {
        let ctx = PageContext::signed(&req, &state, &signed, "password")?;
        render(
            &PasswordPage {
                ctx,
                must_change: signed.admin.must_change_password,
                error: Some(message),
            },
            status,
        )
    };
    if form.new != form.repeat {
        return refuse(t.passwords_differ, StatusCode::BAD_REQUEST);
    }
    if crate::passwords::validate_new(&form.new).is_err() {
        return refuse(t.password_too_short, StatusCode::BAD_REQUEST);
    }
    if form.new == form.current {
        return refuse(t.password_unchanged, StatusCode::BAD_REQUEST);
    }
    let admin = signed.admin.clone();
    let ip = crate::routes::client_ip(&req);
    let changed = crate::db::run(&state.pool, move |conn| {
        if !crate::passwords::verify(&form.current, Some(&admin.password_hash)) {
            return Ok(None);
        }
        let hash = crate::passwords::hash(&form.new)?;
        let now = crate::db::now();
        Admin::set_password(conn, admin.id, &hash, false, now)?;
        AuditEntry::record(
            conn,
            &NewAuditEntry {
                admin_id: Some(admin.id),
                admin_username: &admin.username,
                action: AuditAction::ChangePassword.as_str(),
                user_id: None,
                reason: None,
                ip: ip.as_deref(),
                created_at: now,
            },
        )?;
        Ok(Admin::find(conn, admin.id)?)
    })
    .await
    .context("changing a password")?;
    let Some(updated) = changed else {
        return refuse(t.wrong_current_password, StatusCode::BAD_REQUEST);
    };
    tracing::info!(admin = %signed.admin.username, "console password changed");
    // A new session key and tag: this session goes on, every other one of this admin ends.
    begin_session(&signed.session, &updated)?;
    set_flash(&signed.session, Flash::PasswordChanged);
    Ok(see_other("/admin"))
}
