/// A value that must never be printed: the AppSecret, a session_key, a login token.
///
/// `Debug` shows a fixed mask and there is no `Display` or `Serialize`, so the value can
/// only leave through an explicit `expose()`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the few places that must send or store it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The `session_key` WeChat gives for a user: kept server-side to decrypt the user's data later.
pub type SessionKey = Secret;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_masks_the_value() {
        let s = Secret::new("tiihtNczf5v6AKRyjwEUhQ==");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(s.expose(), "tiihtNczf5v6AKRyjwEUhQ==");
    }
}
