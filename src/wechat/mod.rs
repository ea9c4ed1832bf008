//! WeChat's `auth.code2Session`: the real HTTP client, and the simulation used in
//! development mode.

mod client;
mod exchange;
mod simulated;

pub use client::HttpWeChat;
pub use exchange::CodeExchange;
pub use simulated::SimulatedWeChat;

use crate::domain::{LoginCode, OpenId, SessionKey, UnionId};

/// What WeChat tells us about the user behind a login code.
#[derive(Debug, Clone)]
pub struct Code2Session {
    /// The user's id in this mini-program.
    pub openid: OpenId,
    /// The user's id across the Open Platform account, when the app is bound to one.
    pub unionid: Option<UnionId>,
    /// Key for the user's encrypted data; never leaves the server.
    pub session_key: SessionKey,
}

/// Why a code could not be exchanged.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WeChatError {
    /// 40029: the code is wrong, expired or from another AppID.
    #[error("WeChat says the code is invalid (40029)")]
    InvalidCode,
    /// 40163: the code was exchanged already.
    #[error("WeChat says the code has been used (40163)")]
    CodeUsed,
    /// 45011: too many calls.
    #[error("WeChat rate limit reached (45011)")]
    RateLimited,
    /// 40226: WeChat blocks this user as high-risk.
    #[error("WeChat blocked a high-risk user (40226)")]
    BlockedUser,
    /// 40013 / 40125: our AppID or AppSecret is wrong; an operator must act.
    #[error("WeChat rejected our credentials ({errcode}: {errmsg})")]
    Misconfigured {
        /// WeChat's error code.
        errcode: i64,
        /// WeChat's message.
        errmsg: String,
    },
    /// -1 (busy) or an error code we do not map.
    #[error("WeChat answered with error {errcode}: {errmsg}")]
    Upstream {
        /// WeChat's error code.
        errcode: i64,
        /// WeChat's message.
        errmsg: String,
    },
    /// An HTTP error status, a body that is not the expected JSON, or no connection.
    #[error("WeChat could not be used: {0}")]
    Unavailable(String),
    /// No complete answer within the configured timeout.
    #[error("WeChat did not answer in time")]
    Timeout,
}

/// The code2Session implementation in use: the real API, or the development simulation.
#[derive(Debug, Clone)]
pub enum WeChat {
    /// Calls WeChat (or whatever `WECHAT_API_BASE` points at) over HTTP.
    Http(HttpWeChat),
    /// Answers in-process; only when no AppID is configured.
    Simulated(SimulatedWeChat),
}

impl WeChat {
    /// Exchanges a login code for the user's identity and session key.
    pub async fn code2session(&self, code: &LoginCode) -> Result<Code2Session, WeChatError> {
        match self {
            WeChat::Http(client) => client.code2session(code).await,
            WeChat::Simulated(sim) => sim.code2session(code),
        }
    }
}
