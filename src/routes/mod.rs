//! HTTP handlers, grouped as the URL space is.

pub mod admin;
pub mod api;
pub mod assets;
pub mod health;

use std::net::IpAddr;

use crate::config::IpNet;

/// The client's IP address as a string (see [`client_addr`]).
pub fn client_ip(req: &actix_web::HttpRequest) -> Option<String> {
    client_addr(req).map(|ip| ip.to_string())
}

/// The client's IP address. `X-Forwarded-For` counts only when the connection comes from a
/// trusted proxy; then the rightmost address not itself a trusted proxy is the client (the
/// left part of the header is whatever the client chose to send).
pub fn client_addr(req: &actix_web::HttpRequest) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let trusted = req
        .app_data::<actix_web::web::Data<crate::startup::AppState>>()
        .map(|s| s.trusted_proxies.as_slice())
        .unwrap_or(&[]);
    Some(forwarded_client(
        peer,
        trusted,
        req.headers().get_all("x-forwarded-for"),
    ))
}

fn forwarded_client<'a>(
    peer: IpAddr,
    trusted: &[IpNet],
    forwarded: impl Iterator<Item = &'a actix_web::http::header::HeaderValue>,
) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let values: Vec<&str> = forwarded.map(|v| v.to_str().unwrap_or("")).collect();
    for hop in values.iter().rev().flat_map(|v| v.rsplit(',')) {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) if is_trusted(ip) => continue,
            Ok(ip) => return ip,
            // Whatever lies left of a malformed entry cannot be trusted.
            Err(_) => return peer,
        }
    }
    peer
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    fn client(peer: &str, trusted: &[&str], xff: &[&str]) -> String {
        let trusted: Vec<IpNet> = trusted.iter().map(|t| IpNet::parse(t).unwrap()).collect();
        let values: Vec<HeaderValue> = xff
            .iter()
            .map(|v| HeaderValue::from_str(v).unwrap())
            .collect();
        forwarded_client(peer.parse().unwrap(), &trusted, values.iter()).to_string()
    }

    #[test]
    fn forwarded_for_is_ignored_from_untrusted_peers() {
        assert_eq!(client("203.0.113.5", &[], &["1.2.3.4"]), "203.0.113.5");
        assert_eq!(
            client("203.0.113.5", &["10.0.0.0/8"], &["1.2.3.4"]),
            "203.0.113.5"
        );
    }

    #[test]
    fn a_trusted_proxy_names_the_client_and_spoofed_hops_are_skipped() {
        assert_eq!(
            client("10.0.0.2", &["10.0.0.0/8"], &["198.51.100.7"]),
            "198.51.100.7"
        );
        // The client sent "1.1.1.1" itself; the proxy appended the real address.
        assert_eq!(
            client("10.0.0.2", &["10.0.0.0/8"], &["1.1.1.1, 198.51.100.7"]),
            "198.51.100.7"
        );
        // Two proxies in a row.
        assert_eq!(
            client("10.0.0.2", &["10.0.0.0/8"], &["198.51.100.7, 10.0.0.9"]),
            "198.51.100.7"
        );
        // No header: the proxy itself.
        assert_eq!(client("10.0.0.2", &["10.0.0.0/8"], &[]), "10.0.0.2");
        // Garbage: stop at it rather than trust what lies left of it.
        assert_eq!(
            client("10.0.0.2", &["10.0.0.0/8"], &["1.1.1.1, junk"]),
            "10.0.0.2"
        );
    }
}
