use super::ValidationError;

/// A user's identity within one mini-program, as WeChat reports it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OpenId(String);

/// A user's identity across the mini-programs and accounts bound to one Open Platform account.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UnionId(String);

fn parse_wechat_id(raw: &str, what: &str) -> Result<String, ValidationError> {
    // WeChat's ids are 28 URL-safe base64 characters; allow some room but nothing that
    // could break a log line or a page.
    if raw.is_empty() || raw.len() > 128 {
        return Err(ValidationError(format!(
            "{what} must be 1 to 128 characters"
        )));
    }
    if !raw
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ValidationError(format!(
            "{what} may only contain letters, digits, '-' and '_'"
        )));
    }
    Ok(raw.to_owned())
}

impl OpenId {
    /// Validates an openid (from WeChat, or typed into a search box).
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        parse_wechat_id(raw, "openid").map(Self)
    }

    /// The openid text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl UnionId {
    /// Validates a unionid.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        parse_wechat_id(raw, "unionid").map(Self)
    }

    /// The unionid text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_looking_openid_is_accepted() {
        assert!(OpenId::parse("oVBkZ0aYgDMDIywRdgPW8-joxXc4").is_ok());
        assert!(UnionId::parse("oTmHYjg-tElZ68xxxxxxxxhy1Rgk").is_ok());
    }

    #[test]
    fn empty_long_and_odd_ids_are_refused() {
        assert!(OpenId::parse("").is_err());
        assert!(OpenId::parse(&"a".repeat(129)).is_err());
        assert!(OpenId::parse("o' OR 1=1 --").is_err());
        assert!(UnionId::parse("<script>").is_err());
    }
}
