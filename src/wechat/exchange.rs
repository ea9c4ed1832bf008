use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::future::{BoxFuture, FutureExt, Shared};

use super::{Code2Session, WeChat, WeChatError};
use crate::domain::LoginCode;

/// How long a code exchanged here answers `code_used` without asking WeChat again (between
/// one and two of these). A double tap arrives within a second or two; later reuse WeChat
/// refuses by itself (40163).
const REMEMBER_EXCHANGED: Duration = Duration::from_secs(30);

type Exchange = Shared<BoxFuture<'static, Result<Code2Session, WeChatError>>>;

struct State {
    /// Exchanges under way, by code.
    inflight: HashMap<String, Exchange>,
    /// Codes exchanged with success, by a keyed hash of the code (a code is a credential,
    /// and eight bytes keep the sets small under load), in two generations: `recent` since
    /// `recent_since`, `older` the period before. Rotating drops the oldest generation at
    /// once, so remembering costs O(1) per login however many logins a period sees (a
    /// sweep of one big map on every login had made logins slower the more there were).
    recent: HashSet<u64>,
    older: HashSet<u64>,
    recent_since: Instant,
}

impl Default for State {
    fn default() -> Self {
        Self {
            inflight: HashMap::new(),
            recent: HashSet::new(),
            older: HashSet::new(),
            recent_since: Instant::now(),
        }
    }
}

impl State {
    fn rotate(&mut self, now: Instant) {
        if now.duration_since(self.recent_since) >= REMEMBER_EXCHANGED {
            self.older = std::mem::take(&mut self.recent);
            self.recent_since = now;
        }
    }

    fn was_exchanged(&mut self, key: u64, now: Instant) -> bool {
        self.rotate(now);
        self.recent.contains(&key) || self.older.contains(&key)
    }

    fn remember(&mut self, key: u64, now: Instant) {
        self.rotate(now);
        self.recent.insert(key);
    }
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
                if state.was_exchanged(key, Instant::now()) {
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
            state.remember(key, Instant::now());
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exchanged_code_is_remembered_for_one_to_two_periods_then_forgotten() {
        let start = Instant::now();
        let mut state = State {
            recent_since: start,
            ..State::default()
        };
        state.remember(7, start);
        assert!(state.was_exchanged(7, start + Duration::from_secs(1)));
        assert!(!state.was_exchanged(8, start + Duration::from_secs(1)));
        // One rotation: still remembered, in the older generation.
        assert!(state.was_exchanged(7, start + REMEMBER_EXCHANGED));
        // A second rotation drops it.
        assert!(!state.was_exchanged(7, start + REMEMBER_EXCHANGED * 2));
    }
}
