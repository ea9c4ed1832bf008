use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

use super::{Code2Session, WeChatError};
use crate::config::WeChatConfig;
use crate::domain::{LoginCode, OpenId, Secret, UnionId};

/// The code2Session client for the real API.
#[derive(Debug, Clone)]
pub struct HttpWeChat {
    http: reqwest::Client,
    /// Parsed once: parsing it on every call cost a login about 4 µs (host, IDNA, path).
    url: url::Url,
    appid: String,
    secret: Secret,
}

/// Every field WeChat may send, success or failure; what is present decides which it was.
#[derive(Deserialize)]
struct Reply {
    #[serde(default)]
    errcode: i64,
    #[serde(default)]
    errmsg: String,
    openid: Option<String>,
    session_key: Option<String>,
    unionid: Option<String>,
}

impl HttpWeChat {
    /// Builds a client for `config`, with its timeout applied to every call.
    pub fn new(config: &WeChatConfig) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(3)))
            // WeChat answers; it never redirects. Following one would resend the AppSecret
            // in the query to wherever it pointed (and the policy cost a URL parse a call).
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("building the HTTP client for WeChat")?;
        Ok(Self {
            http,
            url: url::Url::parse(&format!("{}/sns/jscode2session", config.api_base))
                .context("the WeChat API base is not a URL")?,
            appid: config.appid.clone(),
            secret: config.secret.clone(),
        })
    }

    /// Calls `GET /sns/jscode2session`.
    pub async fn code2session(&self, code: &LoginCode) -> Result<Code2Session, WeChatError> {
        let response = self
            .http
            .get(self.url.clone())
            .query(&[
                ("appid", self.appid.as_str()),
                ("secret", self.secret.expose()),
                ("js_code", code.as_str()),
                ("grant_type", "authorization_code"),
            ])
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status();
        if !status.is_success() {
            return Err(WeChatError::Unavailable(format!("HTTP status {status}")));
        }
        let body = response.bytes().await.map_err(transport_error)?;
        parse_reply(&body)
    }
}

/// reqwest's errors print the URL, which holds the AppSecret and the code: strip it.
fn transport_error(e: reqwest::Error) -> WeChatError {
    if e.is_timeout() {
        WeChatError::Timeout
    } else {
        WeChatError::Unavailable(e.without_url().to_string())
    }
}

/// Reads a code2Session reply from its bytes. WeChat sends JSON as `text/plain`, so the
/// content type is ignored, and `errcode` is looked at before anything else.
fn parse_reply(body: &[u8]) -> Result<Code2Session, WeChatError> {
    let reply: Reply = serde_json::from_slice(body)
        .map_err(|e| WeChatError::Unavailable(format!("reply is not the expected JSON ({e})")))?;
    match reply.errcode {
        0 => {}
        40029 => return Err(WeChatError::InvalidCode),
        40163 => return Err(WeChatError::CodeUsed),
        45011 => return Err(WeChatError::RateLimited),
        40226 => return Err(WeChatError::BlockedUser),
        errcode @ (40013 | 40125) => {
            return Err(WeChatError::Misconfigured {
                errcode,
                errmsg: reply.errmsg,
            })
        }
        errcode => {
            return Err(WeChatError::Upstream {
                errcode,
                errmsg: reply.errmsg,
            })
        }
    }
    let openid = reply
        .openid
        .as_deref()
        .ok_or_else(|| WeChatError::Unavailable("reply has no openid".into()))?;
    let openid = OpenId::parse(openid)
        .map_err(|e| WeChatError::Unavailable(format!("reply has a malformed openid: {e}")))?;
    let session_key = reply
        .session_key
        .filter(|k| !k.is_empty())
        .ok_or_else(|| WeChatError::Unavailable("reply has no session_key".into()))?;
    let unionid = match reply.unionid.as_deref() {
        None | Some("") => None,
        Some(u) => Some(UnionId::parse(u).map_err(|e| {
            WeChatError::Unavailable(format!("reply has a malformed unionid: {e}"))
        })?),
    };
    Ok(Code2Session {
        openid,
        unionid,
        session_key: Secret::new(session_key),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_success_reply_gives_openid_unionid_and_session_key() {
        let s = parse_reply(
            br#"{"session_key":"tiihtNczf5v6AKRyjwEUhQ==","openid":"oABC","unionid":"uXYZ"}"#,
        )
        .unwrap();
        assert_eq!(s.openid.as_str(), "oABC");
        assert_eq!(s.unionid.unwrap().as_str(), "uXYZ");
        assert_eq!(s.session_key.expose(), "tiihtNczf5v6AKRyjwEUhQ==");
    }

    #[test]
    fn errcode_zero_counts_as_success_and_an_empty_unionid_as_none() {
        let s = parse_reply(
            br#"{"errcode":0,"errmsg":"ok","openid":"o1","session_key":"k","unionid":""}"#,
        )
        .unwrap();
        assert!(s.unionid.is_none());
    }

    #[test]
    fn each_documented_errcode_maps_to_its_own_error() {
        let err = |code: i64| {
            parse_reply(format!(r#"{{"errcode":{code},"errmsg":"x"}}"#).as_bytes()).unwrap_err()
        };
        assert!(matches!(err(40029), WeChatError::InvalidCode));
        assert!(matches!(err(40163), WeChatError::CodeUsed));
        assert!(matches!(err(45011), WeChatError::RateLimited));
        assert!(matches!(err(40226), WeChatError::BlockedUser));
        assert!(matches!(
            err(40013),
            WeChatError::Misconfigured { errcode: 40013, .. }
        ));
        assert!(matches!(
            err(40125),
            WeChatError::Misconfigured { errcode: 40125, .. }
        ));
        assert!(matches!(err(-1), WeChatError::Upstream { errcode: -1, .. }));
    }

    #[test]
    fn an_errcode_wins_even_when_an_openid_is_present() {
        let e = parse_reply(
            br#"{"errcode":40029,"errmsg":"invalid code","openid":"o1","session_key":"k"}"#,
        )
        .unwrap_err();
        assert!(matches!(e, WeChatError::InvalidCode));
    }

    #[test]
    fn html_and_incomplete_replies_are_unavailable() {
        for body in [
            &b"<html>502 Bad Gateway</html>"[..],
            b"",
            b"{}",
            br#"{"openid":"o1"}"#,
            br#"{"openid":"o 1","session_key":"k"}"#,
        ] {
            assert!(matches!(
                parse_reply(body),
                Err(WeChatError::Unavailable(_))
            ));
        }
    }

    #[test]
    fn the_error_text_of_an_unavailable_reply_never_holds_the_session_key() {
        let e = parse_reply(br#"{"openid":"bad id!","session_key":"SECRETKEY"}"#).unwrap_err();
        assert!(!e.to_string().contains("SECRETKEY"));
    }
}
