use super::ValidationError;

/// The URL of a user's avatar image: https only, so the console never loads mixed content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvatarUrl(String);

impl AvatarUrl {
    /// Longest URL accepted, in bytes.
    pub const MAX_LEN: usize = 512;

    /// Validates an avatar URL: absolute `https://` with a host, at most 512 bytes.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let raw = raw.trim();
        if raw.len() > Self::MAX_LEN {
            return Err(ValidationError(format!(
                "avatar_url is longer than {} characters",
                Self::MAX_LEN
            )));
        }
        // The URL parser would silently drop or percent-encode these; refuse them instead.
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ValidationError("avatar_url must not contain spaces".into()));
        }
        let parsed = url::Url::parse(raw)
            .map_err(|_| ValidationError("avatar_url is not a valid URL".into()))?;
        if parsed.scheme() != "https" || parsed.host_str().is_none_or(str::is_empty) {
            return Err(ValidationError("avatar_url must be an https:// URL".into()));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The URL text as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wechat_avatar_url_is_accepted() {
        let url = "https://thirdwx.qlogo.cn/mmopen/vi_32/abc/132";
        assert_eq!(AvatarUrl::parse(url).unwrap().as_str(), url);
    }

    #[test]
    fn http_javascript_and_data_urls_are_refused() {
        for bad in [
            "http://example.com/a.png",
            "javascript:alert(1)",
            "data:image/png;base64,AAAA",
            "//example.com/a.png",
            "https://",
            "not a url",
        ] {
            assert!(AvatarUrl::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn a_url_over_512_bytes_is_refused() {
        let long = format!("https://example.com/{}", "a".repeat(500));
        assert!(AvatarUrl::parse(&long).is_err());
        let fits = format!("https://example.com/{}", "a".repeat(492));
        assert_eq!(fits.len(), 512);
        assert!(AvatarUrl::parse(&fits).is_ok());
    }
}
