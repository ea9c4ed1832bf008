use actix_session::{Session, SessionExt};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use anyhow::Context;
use askama::Template;
use chrono::TimeDelta;
use serde::Deserialize;

use super::context::{begin_session, check_csrf, FlashView, PageContext};
use super::{render, safe_next, see_other, AdminError, Signed};
use crate::db::models::{Admin, AuditEntry, NewAuditEntry};
use crate::db::AuditAction;
use crate::startup::AppState;

/// Failed sign-ins allowed per username and per IP within [`FAILURE_WINDOW`].
pub const MAX_FAILURES: usize = 5;
/// The window failed sign-ins are counted in.
pub const FAILURE_WINDOW: TimeDelta = TimeDelta::minutes(15);

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    ctx: PageContext,
    error: Option<String>,
    username: String,
    next: String,
}

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    signed_out: Option<String>,
}

fn login_page_response(
    req: &HttpRequest,
    state: &AppState,
    session: &Session,
    error: Option<String>,
    username: String,
    next: String,
    status: StatusCode,
) -> Result<HttpResponse, AdminError> {
    let ctx = PageContext::new(req, state, session, None, "login")?;
    render(
        &LoginPage {
            ctx,
            error,
            username,
            next,
        },
        status,
    )
}

/// `GET /admin/login`.
pub async fn login_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<LoginQuery>,
) -> Result<HttpResponse, AdminError> {
    let session = req.get_session();
    if session.get::<i64>("admin_id").ok().flatten().is_some() {
        return Ok(see_other("/admin"));
    }
    let next = safe_next(query.next.as_deref());
    let mut ctx = PageContext::new(&req, &state, &session, None, "login")?;
    if query.signed_out.is_some() {
        ctx.flash = Some(FlashView {
            ok: true,
            text: ctx.t.signed_out,
        });
    }
    render(
        &LoginPage {
            ctx,
            error: None,
            username: String::new(),
            next,
        },
        StatusCode::OK,
    )
}

#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    csrf: String,
    username: String,
    password: String,
    next: Option<String>,
}

/// `POST /admin/login`.
pub async fn sign_in(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<SignInForm>,
) -> Result<HttpResponse, AdminError> {
    let session = req.get_session();
    check_csrf(&session, &form.csrf)?;
    let form = form.into_inner();
    let t = crate::i18n::Lang::of_request(&req).messages();
    let ip = crate::routes::client_ip(&req).unwrap_or_default();
    let username: String = form.username.trim().chars().take(64).collect();
    let next = safe_next(form.next.as_deref());
    let now = crate::db::now();

    let failures = {
        let (username, ip) = (username.clone(), ip.clone());
        crate::db::run(&state.pool, move |conn| {
            Admin::recent_failures(
                conn,
                &username,
                &ip,
                now - FAILURE_WINDOW,
                MAX_FAILURES as i64,
            )
            .context("counting failed sign-ins")
        })
        .await?
    };
    if failures.len() >= MAX_FAILURES {
        let unlock_at = failures[MAX_FAILURES - 1] + FAILURE_WINDOW;
        let minutes = ((unlock_at - now).num_seconds() + 59) / 60;
        tracing::warn!(%username, %ip, "console sign-in refused: too many failures");
        return login_page_response(
            &req,
            &state,
            &session,
            Some(t.wait_minutes(minutes.max(1))),
            username,
            next,
            StatusCode::TOO_MANY_REQUESTS,
        );
    }

    let admin = {
        let (username, password) = (username.clone(), form.password);
        crate::db::run(&state.pool, move |conn| {
            let admin = Admin::find_by_username(conn, &username).context("loading an admin")?;
            // Always run one verification, against a dummy hash for unknown usernames, so
            // timing does not tell which usernames exist.
            let ok = crate::passwords::verify(
                &password,
                admin.as_ref().map(|a| a.password_hash.as_str()),
            );
            Ok(admin.filter(|_| ok))
        })
        .await?
    };

    let Some(admin) = admin else {
        let (u, i) = (username.clone(), ip.clone());
        crate::db::run(&state.pool, move |conn| {
            Admin::record_failed_sign_in(conn, &u, &i, now).context("recording a failed sign-in")
        })
        .await?;
        tracing::warn!(%username, %ip, "console sign-in failed");
        return login_page_response(
            &req,
            &state,
            &session,
            Some(t.bad_credentials.to_owned()),
            username,
            next,
            StatusCode::UNAUTHORIZED,
        );
    };

    begin_session(&session, &admin)?;
    let admin_id = admin.id;
    let admin_name = admin.username.clone();
    crate::db::run(&state.pool, move |conn| {
        Admin::touch_sign_in(conn, admin_id, now)?;
        AuditEntry::record(
            conn,
            &NewAuditEntry {
                admin_id: Some(admin_id),
                admin_username: &admin_name,
                action: AuditAction::SignIn.as_str(),
                user_id: None,
                reason: None,
                ip: Some(&ip),
                created_at: now,
            },
        )?;
        Ok(())
    })
    .await?;
    tracing::info!(admin = %admin.username, "console sign-in");
    if admin.must_change_password {
        return Ok(see_other("/admin/password"));
    }
    Ok(see_other(&next))
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /admin/logout`: ends the session everywhere (the server forgets it).
pub async fn sign_out(
    req: HttpRequest,
    state: web::Data<AppState>,
    signed: Signed,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, AdminError> {
    signed.check_csrf(&form.csrf)?;
    let ip = crate::routes::client_ip(&req);
    let (admin_id, admin_name) = (signed.admin.id, signed.admin.username.clone());
    crate::db::run(&state.pool, move |conn| {
        AuditEntry::record(
            conn,
            &NewAuditEntry {
                admin_id: Some(admin_id),
                admin_username: &admin_name,
                action: AuditAction::SignOut.as_str(),
                user_id: None,
                reason: None,
                ip: ip.as_deref(),
                created_at: crate::db::now(),
            },
        )
        .context("recording a sign-out")
    })
    .await?;
    signed.session.purge();
    Ok(see_other("/admin/login?signed_out=1"))
}
