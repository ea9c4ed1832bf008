//! The API's error type: every failure a client can see, with a stable machine-readable code.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::wechat::WeChatError;

/// A failed API request. The `errcode` strings are part of the API contract.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or a field is invalid.
    #[error("{0}")]
    InvalidRequest(String),
    /// The body is neither JSON nor a form.
    #[error("Content-Type must be application/json or application/x-www-form-urlencoded")]
    UnsupportedMediaType,
    /// The body is over the limit.
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// No such API route.
    #[error("no such API endpoint")]
    NotFound,
    /// The route exists, but not for this method.
    #[error("method not allowed for this endpoint")]
    MethodNotAllowed,
    /// WeChat 40029.
    #[error("the login code is invalid or expired; call wx.login() again")]
    InvalidCode,
    /// WeChat 40163.
    #[error("the login code has been used already; call wx.login() again")]
    CodeUsed,
    /// An admin disabled the user.
    #[error("this user has been disabled")]
    UserDisabled,
    /// WeChat 40226.
    #[error("WeChat blocked this user as high-risk")]
    WeChatBlockedUser,
    /// WeChat 45011.
    #[error("WeChat is limiting login calls; try again shortly")]
    WeChatRateLimited,
    /// WeChat busy, an HTTP error, a reply we could not read, no connection.
    #[error("WeChat could not be reached or gave an unusable answer; try again")]
    WeChatUnavailable,
    /// WeChat did not answer in time.
    #[error("WeChat did not answer in time; try again")]
    WeChatTimeout,
    /// WeChat rejected our AppID or AppSecret.
    #[error("the server's WeChat credentials are misconfigured")]
    ServerMisconfigured,
    /// Missing, unknown, expired or revoked token.
    #[error("a valid login token is required")]
    Unauthorized,
    /// Too many logins from this client; retry after the given seconds.
    #[error("too many login attempts from this client; retry in {0} s")]
    RateLimited(u64),
    /// Anything unexpected; the cause is logged, not shown.
    #[error("internal server error")]
    Internal(#[source] anyhow::Error),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    ret: bool,
    errcode: &'a str,
    errmsg: String,
}

impl ApiError {
    /// The stable code clients branch on.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidRequest(_) => "invalid_request",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::InvalidCode => "invalid_code",
            ApiError::CodeUsed => "code_used",
            ApiError::UserDisabled => "user_disabled",
            ApiError::WeChatBlockedUser => "wechat_blocked_user",
            ApiError::WeChatRateLimited => "wechat_rate_limited",
            ApiError::WeChatUnavailable => "wechat_unavailable",
            ApiError::WeChatTimeout => "wechat_timeout",
            ApiError::ServerMisconfigured => "server_misconfigured",
            ApiError::Unauthorized => "unauthorized",
            ApiError::RateLimited(_) => "rate_limited",
            ApiError::Internal(_) => "internal_error",
        }
    }
}

impl From<WeChatError> for ApiError {
    fn from(e: WeChatError) -> Self {
        match e {
            WeChatError::InvalidCode => ApiError::InvalidCode,
            WeChatError::CodeUsed => ApiError::CodeUsed,
            WeChatError::RateLimited => {
                tracing::warn!("WeChat rate limit (45011) reached");
                ApiError::WeChatRateLimited
            }
            WeChatError::BlockedUser => ApiError::WeChatBlockedUser,
            WeChatError::Misconfigured { errcode, errmsg } => {
                tracing::error!(
                    errcode,
                    errmsg,
                    "WeChat rejected our AppID or AppSecret: check WECHAT_APPID and WECHAT_SECRET"
                );
                ApiError::ServerMisconfigured
            }
            WeChatError::Upstream { errcode, errmsg } => {
                tracing::warn!(
                    errcode,
                    errmsg,
                    "WeChat answered code2Session with an error"
                );
                ApiError::WeChatUnavailable
            }
            WeChatError::Unavailable(why) => {
                tracing::warn!(why, "code2Session failed");
                ApiError::WeChatUnavailable
            }
            WeChatError::Timeout => {
                tracing::warn!("code2Session timed out");
                ApiError::WeChatTimeout
            }
        }
    }
}

impl From<crate::domain::ValidationError> for ApiError {
    fn from(e: crate::domain::ValidationError) -> Self {
        ApiError::InvalidRequest(e.0)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::InvalidCode | ApiError::CodeUsed | ApiError::Unauthorized => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::UserDisabled | ApiError::WeChatBlockedUser => StatusCode::FORBIDDEN,
            ApiError::WeChatRateLimited | ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::WeChatUnavailable => StatusCode::BAD_GATEWAY,
            ApiError::WeChatTimeout => StatusCode::GATEWAY_TIMEOUT,
            ApiError::ServerMisconfigured | ApiError::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(e) = self {
            tracing::error!(error = format!("{e:#}"), "request failed");
        }
        let mut response = HttpResponse::build(self.status_code());
        match self {
            ApiError::Unauthorized => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            ApiError::RateLimited(secs) => {
                response.insert_header((header::RETRY_AFTER, secs.to_string()));
            }
            _ => {}
        }
        response.json(ErrorBody {
            ret: false,
            errcode: self.code(),
            errmsg: self.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    #[test]
    fn the_body_has_ret_errcode_and_errmsg() {
        let response = ApiError::CodeUsed.error_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let bytes = response.into_body().try_into_bytes().unwrap();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["ret"], false);
        assert_eq!(body["errcode"], "code_used");
        assert!(body["errmsg"].as_str().unwrap().contains("used"));
    }

    #[test]
    fn internal_errors_do_not_show_their_cause() {
        let e = ApiError::Internal(anyhow::anyhow!("disk on fire at /var/secret"));
        let bytes = e.error_response().into_body().try_into_bytes().unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("disk on fire"));
    }
}
