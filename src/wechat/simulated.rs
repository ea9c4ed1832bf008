use sha2::{Digest, Sha256};

use super::{Code2Session, WeChatError};
use crate::domain::{LoginCode, OpenId, Secret};

/// Development mode's stand-in for WeChat, so the product can be tried with curl.
///
/// The part of the code before `#` names the user: `alice` and `alice#7` both log in the
/// same user, whose openid is derived from the name. Codes starting with `bad` fail as
/// WeChat's 40029 does. Codes are not single use here, so one command can be repeated.
#[derive(Debug, Clone, Default)]
pub struct SimulatedWeChat;

impl SimulatedWeChat {
    /// Answers like code2Session would for a user named by `code`.
    pub fn code2session(&self, code: &LoginCode) -> Result<Code2Session, WeChatError> {
        let code = code.as_str();
        if code.starts_with("bad") {
            return Err(WeChatError::InvalidCode);
        }
        let name = code.split('#').next().unwrap_or(code);
        let digest = Sha256::digest(format!("wxlogin-dev-user:{name}").as_bytes());
        let openid = format!("dev_{}", &hex::encode(digest)[..24]);
        let mut key = [0u8; 16];
        rand::fill(&mut key[..]);
        Ok(Code2Session {
            openid: OpenId::parse(&openid).expect("a dev openid is hex with a prefix"),
            unionid: None,
            session_key: Secret::new(hex::encode(key)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn openid(code: &str) -> String {
        SimulatedWeChat
            .code2session(&LoginCode::parse(code).unwrap())
            .unwrap()
            .openid
            .as_str()
            .to_owned()
    }

    #[test]
    fn the_same_name_always_gives_the_same_openid() {
        assert_eq!(openid("alice"), openid("alice"));
        assert_eq!(openid("alice"), openid("alice#7"));
        assert_ne!(openid("alice"), openid("bob"));
    }

    #[test]
    fn codes_starting_with_bad_fail_as_invalid() {
        let r = SimulatedWeChat.code2session(&LoginCode::parse("bad-code").unwrap());
        assert!(matches!(r, Err(WeChatError::InvalidCode)));
    }
}
