//! Who is signed in, what every page's layout shows, and CSRF protection.

use actix_session::{Session, SessionExt};
use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use anyhow::Context;
use chrono::NaiveDateTime;
use futures_util::future::LocalBoxFuture;

use super::AdminError;
use crate::db::models::Admin;
use crate::i18n::{Lang, Messages, LANG_COOKIE};
use crate::startup::AppState;

const SESSION_ADMIN_ID: &str = "admin_id";
const SESSION_CSRF: &str = "csrf";
const SESSION_FLASH: &str = "flash";
const SESSION_AUTH_TAG: &str = "auth";

/// A short digest of the admin's password hash, kept in the session: when the password
/// changes (in the console or with `wxlogin admin reset-password`), every session made
/// with the old one stops matching and ends.
fn auth_tag(admin: &Admin) -> String {
    crate::auth::hash_token(&admin.password_hash)[..16].to_owned()
}

/// A signed-in admin, extracted from the session. Handlers that take it are only reached
/// by admins; everyone else is sent to the sign-in page.
pub struct Signed {
    /// The admin as stored now.
    pub admin: Admin,
    /// The admin's session.
    pub session: Session,
}

/// Paths an admin with a generated password may still use.
fn allowed_before_password_change(path: &str) -> bool {
    matches!(path, "/admin/password" | "/admin/logout") || path.starts_with("/admin/lang/")
}

impl FromRequest for Signed {
    type Error = AdminError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let session = req.get_session();
            let next = current_path(&req);
            let admin_id = session
                .get::<i64>(SESSION_ADMIN_ID)
                .ok()
                .flatten()
                .ok_or_else(|| AdminError::SignInRequired { next: next.clone() })?;
            let state = req
                .app_data::<web::Data<AppState>>()
                .context("application state missing")?
                .clone();
            let admin = crate::db::run(&state.pool, move |conn| {
                Admin::find(conn, admin_id).context("loading the signed-in admin")
            })
            .await?;
            let tag = session.get::<String>(SESSION_AUTH_TAG).ok().flatten();
            let Some(admin) = admin.filter(|a| tag.as_deref() == Some(auth_tag(a).as_str())) else {
                session.purge();
                return Err(AdminError::SignInRequired { next });
            };
            if admin.must_change_password && !allowed_before_password_change(req.path()) {
                return Err(AdminError::MustChangePassword);
            }
            Ok(Signed { admin, session })
        })
    }
}

impl Signed {
    /// Refuses the request unless `token` is the session's CSRF token.
    pub fn check_csrf(&self, token: &str) -> Result<(), AdminError> {
        check_csrf(&self.session, token)
    }
}

/// Refuses unless `token` is the session's CSRF token (compared in constant time).
pub fn check_csrf(session: &Session, token: &str) -> Result<(), AdminError> {
    let expected = session
        .get::<String>(SESSION_CSRF)
        .ok()
        .flatten()
        .ok_or(AdminError::Csrf)?;
    let same = expected.len() == token.len()
        && expected
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Ok(())
    } else {
        Err(AdminError::Csrf)
    }
}

/// The session's CSRF token, made on first use.
pub fn csrf_token(session: &Session) -> Result<String, AdminError> {
    if let Some(token) = session.get::<String>(SESSION_CSRF).ok().flatten() {
        return Ok(token);
    }
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes[..]);
    let token = hex::encode(bytes);
    session
        .insert(SESSION_CSRF, &token)
        .map_err(|e| AdminError::Internal(anyhow::anyhow!("storing a CSRF token: {e}")))?;
    Ok(token)
}

/// Starts the signed-in session: a new session key (so a key planted before sign-in is
/// worthless), a new CSRF token, the admin's id.
pub fn begin_session(session: &Session, admin: &Admin) -> Result<(), AdminError> {
    session.renew();
    session.remove(SESSION_CSRF);
    session
        .insert(SESSION_ADMIN_ID, admin.id)
        .and_then(|_| session.insert(SESSION_AUTH_TAG, auth_tag(admin)))
        .map_err(|e| AdminError::Internal(anyhow::anyhow!("storing the session: {e}")))?;
    csrf_token(session)?;
    Ok(())
}

/// A one-time message for the next page.
#[derive(Debug, Clone, Copy)]
pub enum Flash {
    /// User disabled.
    Disabled,
    /// User enabled.
    Enabled,
    /// Nothing to change.
    Already,
    /// Password changed.
    PasswordChanged,
}

impl Flash {
    fn code(self) -> &'static str {
        match self {
            Flash::Disabled => "disabled",
            Flash::Enabled => "enabled",
            Flash::Already => "already",
            Flash::PasswordChanged => "password_changed",
        }
    }

    fn view(code: &str, t: &'static Messages) -> Option<FlashView> {
        let (ok, text) = match code {
            "disabled" => (true, t.flash_disabled),
            "enabled" => (true, t.flash_enabled),
            "already" => (false, t.flash_already),
            "password_changed" => (true, t.flash_password_changed),
            _ => return None,
        };
        Some(FlashView { ok, text })
    }
}

/// Leaves `flash` for the next page the admin sees.
pub fn set_flash(session: &Session, flash: Flash) {
    let _ = session.insert(SESSION_FLASH, flash.code());
}

/// A flash message as shown.
pub struct FlashView {
    /// Success (green) or not (amber).
    pub ok: bool,
    /// The text.
    pub text: &'static str,
}

/// What the layout of every console page needs.
pub struct PageContext {
    /// The catalog of the page's language.
    pub t: &'static Messages,
    /// The page's language.
    pub lang: Lang,
    /// The language the switch offers.
    pub other_lang: Lang,
    /// The switch's link, returning to this page.
    pub lang_switch_url: String,
    /// The signed-in admin's name.
    pub admin_name: Option<String>,
    /// The session's CSRF token for the page's forms.
    pub csrf: String,
    /// A message left by the previous action.
    pub flash: Option<FlashView>,
    /// Which main navigation entry is current.
    pub nav: &'static str,
    /// Name of the time zone times are shown in.
    pub timezone: String,
    tz: chrono_tz::Tz,
}

impl PageContext {
    /// The context for a page of `req`, with `session` (signed in or not).
    pub fn new(
        req: &HttpRequest,
        state: &AppState,
        session: &Session,
        admin_name: Option<String>,
        nav: &'static str,
    ) -> Result<Self, AdminError> {
        let lang = Lang::of_request(req);
        let other_lang = lang.other();
        let lang_switch_url = format!(
            "/admin/lang/{}?{}",
            other_lang.code(),
            serde_urlencoded::to_string([("next", current_path(req))]).unwrap_or_default()
        );
        let flash = session
            .remove(SESSION_FLASH)
            .and_then(|raw| serde_json::from_str::<String>(&raw).ok())
            .and_then(|code| Flash::view(&code, lang.messages()));
        Ok(Self {
            t: lang.messages(),
            lang,
            other_lang,
            lang_switch_url,
            admin_name,
            csrf: csrf_token(session)?,
            flash,
            nav,
            timezone: state.admin_timezone.name().to_owned(),
            tz: state.admin_timezone,
        })
    }

    /// For a signed-in admin's page.
    pub fn signed(
        req: &HttpRequest,
        state: &AppState,
        signed: &Signed,
        nav: &'static str,
    ) -> Result<Self, AdminError> {
        Self::new(
            req,
            state,
            &signed.session,
            Some(signed.admin.username.clone()),
            nav,
        )
    }

    /// `t` (UTC) as the admin reads it: `2026-11-24 17:05`.
    pub fn time(&self, t: NaiveDateTime) -> String {
        t.and_utc()
            .with_timezone(&self.tz)
            .format("%Y-%m-%d %H:%M")
            .to_string()
    }
}

/// The request's path and query, as a place to come back to.
fn current_path(req: &HttpRequest) -> String {
    match req.query_string() {
        "" => req.path().to_owned(),
        q => format!("{}?{}", req.path(), q),
    }
}

/// `next` if it is a console path on this site, else the dashboard: `next=` must never
/// send an admin to another site (`//evil.example`, `https://…`, `/\evil`).
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if (n == "/admin" || n.starts_with("/admin/") || n.starts_with("/admin?"))
                && !n.contains("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control) =>
        {
            n.to_owned()
        }
        _ => "/admin".to_owned(),
    }
}

#[derive(serde::Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// `GET /admin/lang/{code}?next=…`: remembers the language in a cookie and goes back.
pub async fn switch_language(
    code: web::Path<String>,
    query: web::Query<NextQuery>,
) -> Result<HttpResponse, AdminError> {
    let lang = Lang::from_code(&code).ok_or(AdminError::NotFound)?;
    let cookie = Cookie::build(LANG_COOKIE, lang.code())
        .path("/")
        .same_site(SameSite::Lax)
        .http_only(true)
        .max_age(actix_web::cookie::time::Duration::days(365))
        .finish();
    let mut response = super::see_other(&safe_next(query.next.as_deref()));
    response
        .add_cookie(&cookie)
        .map_err(|e| AdminError::Internal(anyhow::anyhow!("setting the language cookie: {e}")))?;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_stays_inside_the_console() {
        assert_eq!(safe_next(Some("/admin/users?q=a")), "/admin/users?q=a");
        assert_eq!(safe_next(Some("/admin")), "/admin");
        for evil in [
            "https://evil.example/admin",
            "//evil.example/admin",
            "/admin//evil",
            "/\\evil.example",
            "/admin\\..\\x",
            "/administrator",
            "/api/v1/me",
            "",
            "/admin/\r\nSet-Cookie: x",
        ] {
            assert_eq!(safe_next(Some(evil)), "/admin", "{evil:?} was allowed");
        }
        assert_eq!(safe_next(None), "/admin");
    }
}
