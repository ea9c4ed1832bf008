use actix_web::{web, HttpRequest, HttpResponse};
use anyhow::Context;
use serde::Deserialize;

use super::input::decode_body;
use super::UserView;
use crate::db::models::{IssuedToken, User};
use crate::db::{StoredToken, TokenLookup};
use crate::domain::{AvatarUrl, Nickname};
use crate::error::ApiError;
use crate::startup::AppState;
use crate::telemetry::LoggedUser;

/// Profile fields a client may change. Unknown fields are refused, so a typo such as
/// `nickName` gets an error instead of silently changing nothing.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileInput {
    #[serde(alias = "user_name")]
    nickname: Option<String>,
    avatar_url: Option<String>,
}

/// The user behind the request's bearer token, and where the token is stored.
async fn authenticate(
    req: &HttpRequest,
    state: &AppState,
) -> Result<(User, StoredToken), ApiError> {
    let token = crate::auth::bearer_token(req).ok_or(ApiError::Unauthorized)?;
    let presented = crate::auth::PresentedToken::parse(token);
    let lookup = crate::db::run_quick_read(&state.pool, move |conn| {
        IssuedToken::check(conn, &presented, crate::db::now()).context("checking a token")
    })
    .await
    .map_err(ApiError::Internal)?;
    match lookup {
        TokenLookup::Valid(user, stored) => Ok((*user, stored)),
        TokenLookup::UserDisabled => Err(ApiError::UserDisabled),
        TokenLookup::Invalid => Err(ApiError::Unauthorized),
    }
}

/// `GET /api/v1/me`: the logged-in user.
pub async fn get_me(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (user, _) = authenticate(&req, &state).await?;
    Ok(user_reply(user))
}

/// The reply carrying `user`, with the user named in the access log.
fn user_reply(user: User) -> HttpResponse {
    let logged = LoggedUser {
        id: user.id,
        is_new: false,
    };
    // A struct rather than `json!`, which builds a map of values first.
    #[derive(serde::Serialize)]
    struct UserReply {
        ret: bool,
        user: UserView,
    }
    logged.mark(HttpResponse::Ok().json(UserReply {
        ret: true,
        user: UserView::new(user, None),
    }))
}

/// `PATCH /api/v1/me`: sets nickname and/or avatar_url.
pub async fn patch_me(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (user, _) = authenticate(&req, &state).await?;
    let input: ProfileInput = decode_body(&req, payload).await?;
    let nickname = input.nickname.map(|n| Nickname::parse(&n)).transpose()?;
    let avatar_url = input.avatar_url.map(|a| AvatarUrl::parse(&a)).transpose()?;
    if nickname.is_none() && avatar_url.is_none() {
        return Err(ApiError::InvalidRequest(
            "give nickname and/or avatar_url to change".into(),
        ));
    }
    let id = user.id;
    let user = crate::db::run(&state.pool, move |conn| {
        User::update_profile(
            conn,
            id,
            nickname.as_ref(),
            avatar_url.as_ref(),
            crate::db::now(),
        )
        .context("updating a profile")
    })
    .await
    .map_err(ApiError::Internal)?;
    Ok(user_reply(user))
}

/// `POST /api/v1/logout`: revokes the token the request carries.
pub async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (user, stored) = authenticate(&req, &state).await?;
    crate::db::run(&state.pool, move |conn| {
        IssuedToken::revoke(conn, &stored, crate::db::now()).context("revoking a token")
    })
    .await
    .map_err(ApiError::Internal)?;
    let logged = LoggedUser {
        id: user.id,
        is_new: false,
    };
    Ok(logged.mark(HttpResponse::Ok().json(serde_json::json!({"ret": true}))))
}
