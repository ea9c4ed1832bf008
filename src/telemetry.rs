//! Logging: the subscriber, and an access log that keeps credentials out of it.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use tracing_subscriber::EnvFilter;

/// Sends logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_subscriber() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in log files and collectors.
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Query parameters whose values are credentials.
const REDACTED_PARAMS: &[&str] = &["code", "js_code", "token", "access_token", "secret"];

/// The query string with the values of credential parameters replaced by `[redacted]`.
pub fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| {
            let key = pair.split('=').next().unwrap_or("");
            if REDACTED_PARAMS.iter().any(|p| key.eq_ignore_ascii_case(p)) {
                format!("{key}=[redacted]")
            } else {
                pair.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Middleware writing one line per request: method, path, redacted query, status, time,
/// client address and user agent. Headers (Authorization above all) are never logged.
pub async fn access_log(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().to_string();
    let path = match req.query_string() {
        "" => req.path().to_owned(),
        q => format!("{}?{}", req.path(), redact_query(q)),
    };
    let peer = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .take(200)
        .collect::<String>();
    let response = next.call(req).await?;
    tracing::info!(
        target: "wxlogin::access",
        %method,
        %path,
        status = response.status().as_u16(),
        ms = %format_args!("{:.1}", started.elapsed().as_secs_f64() * 1000.0),
        %peer,
        %user_agent,
        "request"
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::redact_query;

    #[test]
    fn credential_parameters_are_redacted_and_others_kept() {
        assert_eq!(
            redact_query("code=0a3Xk7&user_name=%E5%B0%8F&CODE=x&page=2"),
            "code=[redacted]&user_name=%E5%B0%8F&CODE=[redacted]&page=2"
        );
        assert_eq!(redact_query("code"), "code=[redacted]");
        assert_eq!(redact_query("a=1"), "a=1");
    }
}
