use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::future::{BoxFuture, FutureExt, Shared};

use super::{Code2Session, WeChat, WeChatError};
use crate::domain::LoginCode;

/// How long a code exchanged here answers `code_used` without asking WeChat again. A double
/// tap arrives within a second or two; later reuse WeChat refuses by itself (40163).
const REMEMBER_EXCHANGED: Duration = Duration::from_secs(60);

type Exchange = Shared<BoxFuture<'static, Result<Code2Session, WeChatError>>>;

#[derive(Default)]
struct State {
    /// Exchanges under way, by code.
    inflight: HashMap<String, Exchange>,
    /// Codes recently exchanged with success, by a keyed hash of the code (a code is a
    /// credential, and eight bytes keep the map small under load).
    exchanged: HashMap<u64, Instant>,
}

/// code2Session with double taps merged: requests carrying the same code at the same time
/// share one upstream call and its answer; a code presented again after a successful
/// exchange gets `code_used` at once.
pub struct CodeExchange {
    wechat: WeChat,
    state: Mutex<State>,
    hasher: std::collections::hash_map::RandomState,
}

impl CodeExchange {
    /// Wraps `wechat`.
    pub fn new(wechat: WeChat) -> Self {
        Self {
            wechat,
            state: Mutex::default(),
            hasher: Default::default(),
        }
    }

    /// True in development mode.
    pub fn is_simulated(&self) -> bool {
        matches!(self.wechat, WeChat::Simulated(_))
    }

    /// Exchanges `code`, joining an exchange of the same code already under way.
    pub async fn exchange(&self, code: &LoginCode) -> Result<Code2Session, WeChatError> {
        // The simulation accepts a code again and again, by design.
        if let WeChat::Simulated(sim) = &self.wechat {
            return sim.code2session(code);
        }
        let key = self.hasher.hash_one(code.as_str());
        let exchange = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(running) = state.inflight.get(code.as_str()) {
                running.clone()
            } else {
                if state
                    .exchanged
                    .get(&key)
                    .is_some_and(|at| at.elapsed() < REMEMBER_EXCHANGED)
                {
                    return Err(WeChatError::CodeUsed);
                }
                // A task of its own, so the exchange completes (and its result is seen by
                // the others) even if the request that started it goes away.
                let wechat = self.wechat.clone();
                let owned = code.clone();
                let task = tokio::spawn(async move { wechat.code2session(&owned).await });
                let exchange = async move {
                    task.await.unwrap_or_else(|e| {
                        Err(WeChatError::Unavailable(format!(
                            "the exchange task failed: {e}"
                        )))
                    })
                }
                .boxed()
                .shared();
                state
                    .inflight
                    .insert(code.as_str().to_owned(), exchange.clone());
                exchange
            }
        };
        let result = exchange.await;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.inflight.remove(code.as_str()).is_some() && result.is_ok() {
            let now = Instant::now();
            if state.exchanged.len() >= 10_000 {
                state
                    .exchanged
                    .retain(|_, at| now.duration_since(*at) < REMEMBER_EXCHANGED);
            }
            state.exchanged.insert(key, now);
        }
        result
    }
}
