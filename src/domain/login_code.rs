use super::ValidationError;

/// The one-time code a mini-program gets from `wx.login()`.
///
/// WeChat's codes are 32 printable ASCII characters today; we accept up to 128 so a format
/// change on their side does not lock users out, and refuse anything else before it costs
/// an upstream call.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct LoginCode(String);

impl LoginCode {
    /// Longest code accepted.
    pub const MAX_LEN: usize = 128;

    /// Validates a code as sent by a client.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        if raw.is_empty() {
            return Err(ValidationError("code is required".into()));
        }
        if raw.len() > Self::MAX_LEN {
            return Err(ValidationError(format!(
                "code is longer than {} characters",
                Self::MAX_LEN
            )));
        }
        if !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ValidationError(
                "code must be printable ASCII without spaces".into(),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The code as sent to WeChat.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

// A code is a credential for five minutes: keep it out of logs and panics.
impl std::fmt::Debug for LoginCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginCode([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typical_wechat_code_is_accepted() {
        let code = LoginCode::parse("0a3Xk7000Fq2dR1vZ4200hF3Xk7Xk70Y").unwrap();
        assert_eq!(code.as_str(), "0a3Xk7000Fq2dR1vZ4200hF3Xk7Xk70Y");
    }

    #[test]
    fn an_empty_code_is_refused() {
        assert!(LoginCode::parse("").is_err());
    }

    #[test]
    fn a_code_of_128_characters_is_accepted_and_129_refused() {
        assert!(LoginCode::parse(&"a".repeat(128)).is_ok());
        assert!(LoginCode::parse(&"a".repeat(129)).is_err());
    }

    #[test]
    fn spaces_controls_and_non_ascii_are_refused() {
        for bad in ["ab cd", "ab\0cd", "ab\ncd", "码码", "abc\u{202E}"] {
            assert!(LoginCode::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn debug_output_does_not_show_the_code() {
        let code = LoginCode::parse("secretcode123").unwrap();
        assert!(!format!("{code:?}").contains("secretcode123"));
    }
}
