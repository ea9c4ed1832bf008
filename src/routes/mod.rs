//! HTTP handlers, grouped as the URL space is.

pub mod admin;
pub mod api;
pub mod assets;
pub mod health;

/// The client's IP address as this server sees it.
pub fn client_ip(req: &actix_web::HttpRequest) -> Option<String> {
    req.peer_addr().map(|a| a.ip().to_string())
}
