use std::sync::Arc;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::input::{decode_body, decode_query, non_blank};
use super::{rfc3339, UserView};
use crate::db::{LoginAttempt, LoginOutcome};
use crate::domain::{AvatarUrl, LoginCode, Nickname};
use crate::error::ApiError;
use crate::startup::AppState;
use crate::telemetry::LoggedUser;

/// Login fields, as JSON, form or query string. Unknown fields are ignored: clients send
/// whatever `wx.getUserProfile` gave them.
#[derive(Deserialize)]
struct LoginInput {
    code: Option<String>,
    #[serde(alias = "user_name")]
    nickname: Option<String>,
    avatar_url: Option<String>,
}

#[derive(Serialize)]
struct LoginReply {
    ret: bool,
    token: String,
    expires_at: String,
    user: UserView,
}

/// Longest User-Agent kept for a login record.
const MAX_USER_AGENT_BYTES: usize = 512;

/// `GET /api/v1/login?code=…&user_name=…`: the classic `wx.request({url, data})` form.
pub async fn login_get(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let input = decode_query(&req)?;
    login(&req, &state, input).await
}

/// `POST /api/v1/login` with a JSON or form body.
pub async fn login_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let input = decode_body(&req, payload).await?;
    login(&req, &state, input).await
}

async fn login(
    req: &HttpRequest,
    state: &AppState,
    input: LoginInput,
) -> Result<HttpResponse, ApiError> {
    let client = crate::routes::client_addr(req);
    if let Some(ip) = client {
        // Counted before anything else: every attempt costs WeChat quota or our time.
        state
            .login_limiter
            .check(ip)
            .map_err(|wait| ApiError::RateLimited(wait.as_secs_f64().ceil().max(1.0) as u64))?;
    }
    // Validate everything before spending a code (and WeChat quota) on a doomed request.
    let code = LoginCode::parse(input.code.as_deref().unwrap_or(""))?;
    let nickname = non_blank(input.nickname)
        .map(|n| Nickname::parse(&n))
        .transpose()?;
    let avatar_url = non_blank(input.avatar_url)
        .map(|a| AvatarUrl::parse(&a))
        .transpose()?;

    let session = state.wechat.exchange(&code).await?;

    let token_secret = crate::auth::TokenSecret::generate();
    let now = crate::db::now();
    let expires_at = now + state.token_ttl;
    let ip = client.map(crate::telemetry::ip_text);
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .map(|v| truncate(&String::from_utf8_lossy(v.as_bytes()), MAX_USER_AGENT_BYTES));

    let outcome = state
        .login_writer
        .record(LoginAttempt {
            openid: session.openid.as_str().to_owned(),
            unionid: session.unionid.as_ref().map(|u| u.as_str().to_owned()),
            session_key: session.session_key.expose().to_owned(),
            nickname,
            avatar_url,
            ip,
            user_agent,
            token_hash: token_secret.hash().to_owned(),
            token_expires_at: expires_at,
            now,
        })
        .await
        .map_err(ApiError::Internal)?;

    match outcome {
        LoginOutcome::Disabled => Err(ApiError::UserDisabled),
        LoginOutcome::LoggedIn {
            user,
            login_id,
            is_new,
        } => {
            let logged = LoggedUser {
                id: user.id,
                is_new,
            };
            Ok(logged.mark(HttpResponse::Ok().json(LoginReply {
                ret: true,
                token: token_secret.token(login_id).expose().to_owned(),
                expires_at: rfc3339(expires_at),
                user: UserView::new(Arc::unwrap_or_clone(user), Some(is_new)),
            })))
        }
    }
}

/// `s` cut to at most `max` bytes, on a character boundary.
fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn truncation_never_splits_a_character() {
        assert_eq!(truncate("abc", 10), "abc");
        assert_eq!(truncate("微信用户", 4), "微");
        assert_eq!(truncate("微信用户", 6), "微信");
    }
}
