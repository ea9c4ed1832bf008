//! Admin passwords: argon2id hashing, verification that costs the same for unknown users.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;

use crate::domain::ValidationError;

/// Shortest password accepted.
pub const MIN_LEN: usize = 10;
/// Longest password accepted: hashing is costly, and no one types more.
pub const MAX_LEN: usize = 256;

/// Checks a new password against the policy.
pub fn validate_new(password: &str) -> Result<(), ValidationError> {
    let chars = password.chars().count();
    if chars < MIN_LEN {
        return Err(ValidationError(format!(
            "the password needs at least {MIN_LEN} characters"
        )));
    }
    if password.len() > MAX_LEN {
        return Err(ValidationError(format!(
            "the password must be at most {MAX_LEN} bytes"
        )));
    }
    Ok(())
}

/// The argon2id PHC string of `password`, with a fresh salt and the crate's default
/// (OWASP-recommended) parameters.
pub fn hash(password: &str) -> anyhow::Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
}

/// True when `password` matches `phc`. With `phc` = `None` (unknown username) a fixed
/// dummy hash is checked instead, so the answer takes as long as for a real admin.
pub fn verify(password: &str, phc: Option<&str>) -> bool {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash("dummy password for timing").expect("hashing works"));
    let (phc, real) = match phc {
        Some(p) => (p, true),
        None => (dummy.as_str(), false),
    };
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
        && real
}

/// A random password for a generated admin: 20 characters from an unambiguous alphabet.
pub fn generate() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 20];
    rand::fill(&mut bytes[..]);
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_and_nothing_else() {
        let h = hash("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse battery", Some(&h)));
        assert!(!verify("wrong horse battery", Some(&h)));
    }

    #[test]
    fn an_unknown_user_never_verifies() {
        assert!(!verify("dummy password for timing", None));
    }

    #[test]
    fn the_policy_wants_ten_characters() {
        assert!(validate_new("short").is_err());
        assert!(validate_new("ten chars!").is_ok());
        assert!(validate_new(&"x".repeat(300)).is_err());
    }

    #[test]
    fn generated_passwords_are_long_and_differ() {
        let a = generate();
        assert_eq!(a.len(), 20);
        assert_ne!(a, generate());
        assert!(validate_new(&a).is_ok());
    }
}
