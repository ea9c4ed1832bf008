//! Reading request bodies the way mini-program clients send them.

use actix_web::http::header;
use actix_web::{web, HttpRequest};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Largest request body the API reads. Real requests are a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Reads the body (refusing it past [`MAX_BODY_BYTES`]) and decodes it as JSON or as a
/// form, by its Content-Type. A missing Content-Type is read as JSON, which is what
/// `wx.request` sends by default.
pub async fn decode_body<T: DeserializeOwned>(
    req: &HttpRequest,
    mut payload: web::Payload,
) -> Result<T, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(ApiError::PayloadTooLarge(MAX_BODY_BYTES));
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::InvalidRequest(format!("reading body: {e}")))?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(ApiError::PayloadTooLarge(MAX_BODY_BYTES));
        }
        body.extend_from_slice(&chunk);
    }

    let mime = req
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("?"))
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    match mime.as_deref() {
        None | Some("application/json") | Some("text/json") => serde_json::from_slice(&body)
            .map_err(|e| {
                ApiError::InvalidRequest(format!("body is not valid JSON for this request: {e}"))
            }),
        Some("application/x-www-form-urlencoded") => serde_urlencoded::from_bytes(&body)
            .map_err(|e| ApiError::InvalidRequest(format!("form body is invalid: {e}"))),
        Some(_) => Err(ApiError::UnsupportedMediaType),
    }
}

/// Decodes the query string into `T`.
pub fn decode_query<T: DeserializeOwned>(req: &HttpRequest) -> Result<T, ApiError> {
    serde_urlencoded::from_str(req.query_string())
        .map_err(|e| ApiError::InvalidRequest(format!("query string is invalid: {e}")))
}

/// `None` for a field that is absent or blank: clients fill unused fields with "".
pub fn non_blank(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}
