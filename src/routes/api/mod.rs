//! The JSON API mini-programs call, under `/api/v1`.

mod input;
mod login;
mod me;

use actix_web::web;
use chrono::{NaiveDateTime, SecondsFormat};
use serde::Serialize;

use crate::db::models::User;
use crate::error::ApiError;

/// Registers the API routes under `/api`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api")
            .service(
                web::resource("/v1/login")
                    .route(web::get().to(login::login_get))
                    .route(web::post().to(login::login_post))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/v1/me")
                    .route(web::get().to(me::get_me))
                    .route(web::patch().to(me::patch_me))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/v1/logout")
                    .route(web::post().to(me::logout))
                    .default_service(web::to(method_not_allowed)),
            )
            .default_service(web::to(not_found)),
    );
}

async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

async fn method_not_allowed() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed)
}

/// RFC 3339 in UTC with a `Z`, as every time in the API is written.
pub(crate) fn rfc3339(t: NaiveDateTime) -> String {
    t.and_utc().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A user as the API shows it: no session_key, no admin-only fields.
#[derive(Serialize)]
struct UserView {
    id: i64,
    openid: String,
    unionid: Option<String>,
    nickname: Option<String>,
    avatar_url: Option<String>,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    is_new: Option<bool>,
}

impl UserView {
    fn new(user: User, is_new: Option<bool>) -> Self {
        Self {
            id: user.id,
            openid: user.openid,
            unionid: user.unionid,
            nickname: user.nickname,
            avatar_url: user.avatar_url,
            created_at: rfc3339(user.created_at),
            is_new,
        }
    }
}
