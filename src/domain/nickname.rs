use super::{is_disallowed_char, ValidationError};

/// The nickname `wx.getUserProfile` returns for every user since late 2022: not a real name.
pub const PLACEHOLDER_NICKNAME: &str = "微信用户";

/// A user's display name as chosen in the mini-program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nickname(String);

impl Nickname {
    /// Most characters (Unicode scalar values, so one emoji may count as two) accepted.
    pub const MAX_CHARS: usize = 64;

    /// Trims the input and validates it: not empty, at most 64 characters, no control
    /// characters or text-direction overrides. Emoji and any script are welcome.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(ValidationError("nickname must not be empty".into()));
        }
        if trimmed.chars().count() > Self::MAX_CHARS {
            return Err(ValidationError(format!(
                "nickname is longer than {} characters",
                Self::MAX_CHARS
            )));
        }
        if trimmed.chars().any(is_disallowed_char) {
            return Err(ValidationError(
                "nickname contains control or text-direction characters".into(),
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// True for WeChat's anonymous placeholder name.
    pub fn is_placeholder(&self) -> bool {
        self.0 == PLACEHOLDER_NICKNAME
    }

    /// The nickname text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn surrounding_whitespace_is_trimmed() {
        assert_eq!(Nickname::parse("  小明 \n").unwrap().as_str(), "小明");
    }

    #[test]
    fn emoji_and_chinese_are_accepted() {
        assert_eq!(Nickname::parse("🐼熊猫🎋").unwrap().as_str(), "🐼熊猫🎋");
    }

    #[test]
    fn emoji_sequences_joined_by_zero_width_joiners_are_accepted() {
        assert!(Nickname::parse("👨\u{200D}👩\u{200D}👧").is_ok());
        assert!(
            Nickname::parse("a\u{200B}b").is_err(),
            "zero-width space hides text"
        );
    }

    #[test]
    fn blank_is_refused() {
        assert!(Nickname::parse("   ").is_err());
    }

    #[test]
    fn sixty_four_characters_are_accepted_and_sixty_five_refused() {
        assert!(Nickname::parse(&"猫".repeat(64)).is_ok());
        assert!(Nickname::parse(&"猫".repeat(65)).is_err());
    }

    #[test]
    fn control_and_bidi_override_characters_are_refused() {
        for bad in [
            "a\0b",
            "a\u{1b}[31mb",
            "evil\u{202E}gnp.exe",
            "a\u{2066}b",
            "a\nb",
        ] {
            assert!(Nickname::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn the_wechat_placeholder_is_recognised() {
        assert!(Nickname::parse("微信用户").unwrap().is_placeholder());
        assert!(!Nickname::parse("微信用户2").unwrap().is_placeholder());
    }
}
