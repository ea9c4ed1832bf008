//! The admin console under `/admin`: server-rendered pages, signed in with a session.

mod audit;
mod context;
mod dashboard;
mod login;
mod password;
mod users;

pub use context::{safe_next, Signed};

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse, ResponseError};
use askama::Template;

use crate::i18n::{EN, ZH};

/// Registers the console's routes (the session middleware wraps them in `startup`).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::FormConfig::default()
            .limit(16 * 1024)
            .error_handler(|_, _| AdminError::BadRequest.into()),
    )
    .app_data(web::QueryConfig::default().error_handler(|_, _| AdminError::BadRequest.into()))
    .app_data(web::PathConfig::default().error_handler(|_, _| AdminError::NotFound.into()))
    .route("", web::get().to(dashboard::dashboard))
    .route("/", web::get().to(dashboard::dashboard))
    .route("/login", web::get().to(login::login_page))
    .route("/login", web::post().to(login::sign_in))
    .route("/logout", web::post().to(login::sign_out))
    .route("/lang/{code}", web::get().to(context::switch_language))
    .route("/users", web::get().to(users::list))
    .route("/users/{id}", web::get().to(users::detail))
    .route("/users/{id}/disable", web::post().to(users::disable))
    .route("/users/{id}/enable", web::post().to(users::enable))
    .route("/audit", web::get().to(audit::audit))
    .route("/password", web::get().to(password::password_page))
    .route("/password", web::post().to(password::change_password))
    .default_service(web::to(not_found));
}

async fn not_found() -> Result<HttpResponse, AdminError> {
    Err(AdminError::NotFound)
}

/// A console request that cannot be served as asked. Error pages show both languages, as
/// the error may come before the request's language is known.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Not signed in (or the session ended): go to the sign-in page, then back to `next`.
    #[error("sign-in required")]
    SignInRequired {
        /// Where to return after signing in.
        next: String,
    },
    /// The admin must replace a generated password first.
    #[error("password change required")]
    MustChangePassword,
    /// A state-changing form without a valid CSRF token.
    #[error("invalid CSRF token")]
    Csrf,
    /// No such page or user.
    #[error("not found")]
    NotFound,
    /// A malformed query or form.
    #[error("bad request")]
    BadRequest,
    /// Anything unexpected; logged, not shown.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl From<anyhow::Error> for AdminError {
    fn from(e: anyhow::Error) -> Self {
        AdminError::Internal(e)
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    status: u16,
    zh_title: &'static str,
    zh_message: &'static str,
    zh_back: &'static str,
    en_title: &'static str,
    en_message: &'static str,
    en_back: &'static str,
}

impl ResponseError for AdminError {
    fn status_code(&self) -> StatusCode {
        match self {
            AdminError::SignInRequired { .. } | AdminError::MustChangePassword => {
                StatusCode::SEE_OTHER
            }
            AdminError::Csrf => StatusCode::FORBIDDEN,
            AdminError::NotFound => StatusCode::NOT_FOUND,
            AdminError::BadRequest => StatusCode::BAD_REQUEST,
            AdminError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let message = |t: &'static crate::i18n::Messages| match self {
            AdminError::Csrf => t.error_csrf,
            AdminError::NotFound => t.error_not_found,
            AdminError::BadRequest => t.error_bad_request,
            _ => t.error_internal,
        };
        match self {
            AdminError::SignInRequired { next } => {
                let location = if next == "/admin" {
                    "/admin/login".to_owned()
                } else {
                    format!(
                        "/admin/login?{}",
                        serde_urlencoded::to_string([("next", next)]).unwrap_or_default()
                    )
                };
                return see_other(&location);
            }
            AdminError::MustChangePassword => return see_other("/admin/password"),
            AdminError::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "console request failed")
            }
            _ => {}
        }
        let page = ErrorPage {
            status: self.status_code().as_u16(),
            zh_title: ZH.error_title,
            zh_message: message(&ZH),
            zh_back: ZH.back_home,
            en_title: EN.error_title,
            en_message: message(&EN),
            en_back: EN.back_home,
        };
        match page.render() {
            Ok(html) => HttpResponse::build(self.status_code())
                .content_type("text/html; charset=utf-8")
                .body(html),
            Err(_) => HttpResponse::build(self.status_code()).body(self.to_string()),
        }
    }
}

/// A 303 redirect: after a form, the browser follows with a GET.
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// Renders a page into a response with `status`.
pub fn render<T: Template>(page: &T, status: StatusCode) -> Result<HttpResponse, AdminError> {
    let html = page
        .render()
        .map_err(|e| AdminError::Internal(anyhow::anyhow!("rendering a page: {e}")))?;
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(html))
}
