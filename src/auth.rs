//! Login tokens: how they are made, stored and read from requests.
//!
//! A token is `wxl_<login id>_<secret>`: the id of the login that issued it (the row that
//! holds it, so a check is one primary-key read) and 256 random bits. Only the SHA-256 of the
//! secret is stored, so a copy of the database lets nobody log in. Tokens issued before the
//! id was part of them (`wxl_<secret>`) are stored as the SHA-256 of the whole token and
//! still work until they expire.

use actix_web::http::header;
use actix_web::HttpRequest;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::domain::Secret;

/// Prefix that makes a leaked token easy to recognise in code and logs.
const TOKEN_PREFIX: &str = "wxl_";

/// The random half of a token about to be issued, and the hash under which it is stored.
pub struct TokenSecret {
    secret: Secret,
    hash: String,
}

impl TokenSecret {
    /// 256 fresh random bits.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::fill(&mut bytes[..]);
        let secret = hex_string(&bytes);
        let hash = hash_token(&secret);
        Self {
            secret: Secret::new(secret),
            hash,
        }
    }

    /// The stored form: hex SHA-256 of the secret.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The token the client gets once the login that issues it is stored as `login_id`.
    pub fn token(&self, login_id: i64) -> Secret {
        let secret = self.secret.expose();
        // Sized once: a login id has at most 20 characters.
        let mut token = String::with_capacity(TOKEN_PREFIX.len() + 21 + secret.len());
        token.push_str(TOKEN_PREFIX);
        match u64::try_from(login_id) {
            Ok(id) => push_decimal(&mut token, id),
            // Never happens (ids count from 1), but should it, the token still names it.
            Err(_) => token.push_str(&login_id.to_string()),
        }
        token.push('_');
        token.push_str(secret);
        Secret::new(token)
    }
}

/// A token as a client presented it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresentedToken {
    /// `wxl_<login id>_<secret>`.
    Current {
        /// The login that issued it.
        login_id: i64,
        /// Hex SHA-256 of its secret half.
        secret_hash: String,
    },
    /// Any other string: the hex SHA-256 of all of it, looked up among tokens issued in the
    /// earlier form.
    Legacy {
        /// Hex SHA-256 of the whole token.
        hash: String,
    },
}

impl PresentedToken {
    /// Reads a presented token. Never fails: a string of neither form is a legacy token
    /// nobody holds, and the lookup says so.
    pub fn parse(token: &str) -> Self {
        let current = token
            .strip_prefix(TOKEN_PREFIX)
            .and_then(|rest| rest.split_once('_'))
            .and_then(|(id, secret)| {
                // Digits only: i64's parser would also take a sign.
                if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                Some((id.parse::<i64>().ok()?, secret))
            });
        match current {
            Some((login_id, secret)) => Self::Current {
                login_id,
                secret_hash: hash_token(secret),
            },
            None => Self::Legacy {
                hash: hash_token(token),
            },
        }
    }
}

/// Hex SHA-256 of `value`: how token secrets (and console session keys) are stored.
pub fn hash_token(value: &str) -> String {
    hex_string(&Sha256::digest(value.as_bytes()))
}

/// `bytes` as lowercase hex, into a string sized once. `hex::encode` collects `char`s from an
/// iterator into a string that grows as it goes: under callgrind its two calls in a login
/// were 1.9% of the server's instructions for it. Pushing `char`s one at a time still cost
/// about 700 instructions a call; bytes into a buffer take a fraction of that.
fn hex_string(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = vec![0u8; bytes.len() * 2];
    for (pair, &b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0xf)];
    }
    // Hex digits are ASCII.
    String::from_utf8(out).unwrap_or_default()
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut String, n: u64) {
    let (digits, at) = crate::db::time::decimal_digits(n);
    out.extend(digits[at..].iter().map(|&d| char::from(d)));
}

/// True when two stored hashes are equal, compared in constant time so that timing does not
/// tell how much of a guess was right.
pub fn hashes_match(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
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
    fn tokens_name_their_login_and_carry_256_random_bits_stored_only_hashed() {
        let a = TokenSecret::generate();
        let b = TokenSecret::generate();
        let token = a.token(42);
        let (id, secret) = token.expose()["wxl_".len()..].split_once('_').unwrap();
        assert_eq!(id, "42");
        assert_eq!(secret.len(), 64);
        assert!(secret.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a.token(42).expose(), b.token(42).expose());
        assert_eq!(a.hash(), hash_token(secret));
        assert!(!a.hash().contains(secret));
    }

    #[test]
    fn a_presented_token_is_read_back_into_its_login_and_secret_hash() {
        let secret = TokenSecret::generate();
        let token = secret.token(7);
        assert_eq!(
            PresentedToken::parse(token.expose()),
            PresentedToken::Current {
                login_id: 7,
                secret_hash: secret.hash().to_owned()
            }
        );
    }

    #[test]
    fn anything_else_is_looked_up_as_an_earlier_token_by_its_whole_hash() {
        let earlier = format!("wxl_{}", "ab".repeat(32));
        for token in [
            earlier.as_str(),
            "wxl__abc",
            "wxl_-1_abc",
            "wxl_99999999999999999999_abc",
            "garbage",
        ] {
            assert_eq!(
                PresentedToken::parse(token),
                PresentedToken::Legacy {
                    hash: hash_token(token)
                },
                "{token}"
            );
        }
    }

    #[test]
    fn hex_and_decimal_are_written_as_the_standard_library_writes_them() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(hex_string(&bytes), hex::encode(&bytes));
        assert_eq!(hash_token("abc"), hex::encode(Sha256::digest(b"abc")));
        for n in [0, 7, 10, 42, 1_000_000, u64::MAX] {
            let mut s = String::from("x");
            push_decimal(&mut s, n);
            assert_eq!(s, format!("x{n}"));
        }
        assert_eq!(TokenSecret::generate().token(-5).expose()[..7], *"wxl_-5_");
    }

    #[test]
    fn hashes_match_only_when_equal() {
        assert!(hashes_match("abc", "abc"));
        assert!(!hashes_match("abc", "abd"));
        assert!(!hashes_match("abc", "abcd"));
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
