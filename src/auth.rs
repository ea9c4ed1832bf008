//! Login tokens: how they are made, stored and read from requests.

use actix_web::http::header;
use actix_web::HttpRequest;
use sha2::{Digest, Sha256};

use crate::domain::Secret;

/// Prefix that makes a leaked token easy to recognise in code and logs.
const TOKEN_PREFIX: &str = "wxl_";

/// A fresh token (256 random bits) and the hash under which it is stored. Only the hash is
/// kept, so a copy of the database lets nobody log in.
pub fn new_token() -> (Secret, String) {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes[..]);
    let token = format!("{TOKEN_PREFIX}{}", hex::encode(bytes));
    let hash = hash_token(&token);
    (Secret::new(token), hash)
}

/// The stored form of a token: hex SHA-256.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The token in `Authorization: Bearer …`, if the request carries one.
pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn tokens_are_long_random_and_hashed_to_hex() {
        let (a, hash_a) = new_token();
        let (b, _) = new_token();
        assert_ne!(a.expose(), b.expose());
        assert_eq!(a.expose().len(), TOKEN_PREFIX.len() + 64);
        assert_eq!(hash_a, hash_token(a.expose()));
        assert_eq!(hash_a.len(), 64);
        assert_ne!(hash_a, a.expose());
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_others_are_ignored() {
        let req = TestRequest::default()
            .insert_header((header::AUTHORIZATION, "bearer abc"))
            .to_http_request();
        assert_eq!(bearer_token(&req), Some("abc"));
        let req = TestRequest::default()
            .insert_header((header::AUTHORIZATION, "Basic abc"))
            .to_http_request();
        assert_eq!(bearer_token(&req), None);
        let req = TestRequest::default()
            .insert_header((header::AUTHORIZATION, "Bearer "))
            .to_http_request();
        assert_eq!(bearer_token(&req), None);
    }
}
