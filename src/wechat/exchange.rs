use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use tokio::sync::oneshot;

use super::{Code2Session, WeChat, WeChatError};
use crate::domain::LoginCode;

/// How long a code exchanged here answers `code_used` without asking WeChat again (between
/// one and two of these). A double tap arrives within a second or two; later reuse WeChat
/// refuses by itself (40163).
const REMEMBER_EXCHANGED: Duration = Duration::from_secs(30);

/// Most codes a generation holds: a full one rotates early, so memory stays bounded however
/// fast logins come. Remembering by time alone held every login of the last 30 to 60
/// seconds: under the bench's 22k logins a second the server's peak RSS climbed from 30 MiB
/// (a 5-second run) to 58 MiB (75 seconds), near the 64 MiB target. Two generations of
/// this many take about 2.5 MiB, and at that rate still remember a code for 3 to 6
/// seconds, longer than a double tap takes; at a hundred logins a second, the full period.
const MOST_REMEMBERED_PER_GENERATION: usize = 65_536;

type Outcome = Result<Code2Session, WeChatError>;

struct State {
    /// Exchanges under way, by the keyed hash of their code, with the code itself (two codes
    /// may share a hash: only the same code joins) and the requests waiting to share the
    /// outcome.
    inflight: HashMap<u64, Inflight, KeyHasher>,
    /// Codes exchanged with success, by a keyed hash of the code (a code is a credential,
    /// and eight bytes keep the sets small under load), in two generations: `recent` since
    /// `recent_since`, `older` the period before. Rotating drops the oldest generation at
    /// once, so remembering costs O(1) per login however many logins a period sees (a
    /// sweep of one big map on every login had made logins slower the more there were).
    recent: HashSet<u64, KeyHasher>,
    older: HashSet<u64, KeyHasher>,
    recent_since: Instant,
}

/// An exchange under way.
struct Inflight {
    code: String,
    waiting: Vec<oneshot::Sender<Outcome>>,
}

/// Hashes the keys above, which are keyed hashes already, by taking them as they are:
/// hashing them again (SipHash, as `HashMap` does by default) was most of the cost of
/// looking a code up.
#[derive(Clone, Copy, Default)]
struct KeyHasher;

impl BuildHasher for KeyHasher {
    type Hasher = KeyHash;
    fn build_hasher(&self) -> KeyHash {
        KeyHash(0)
    }
}

/// The hasher [`KeyHasher`] builds: the last `u64` written is the hash.
struct KeyHash(u64);

impl std::hash::Hasher for KeyHash {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed here; anything else still gets a usable hash.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, key: u64) {
        self.0 = key;
    }
}

impl Default for State {
    fn default() -> Self {
        Self {
            inflight: HashMap::default(),
            recent: HashSet::default(),
            older: HashSet::default(),
            recent_since: Instant::now(),
        }
    }
}

impl State {
    fn rotate(&mut self, now: Instant) {
        if now.duration_since(self.recent_since) >= REMEMBER_EXCHANGED
            || self.recent.len() >= MOST_REMEMBERED_PER_GENERATION
        {
            // The dropped generation's table is emptied and reused: once both have grown,
            // remembering allocates nothing and never rehashes on a login's path.
            std::mem::swap(&mut self.older, &mut self.recent);
            self.recent.clear();
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
    state: Arc<Mutex<State>>,
    hasher: std::collections::hash_map::RandomState,
}

impl CodeExchange {
    /// Wraps `wechat`.
    pub fn new(wechat: WeChat) -> Self {
        Self {
            wechat,
            state: Arc::default(),
            hasher: Default::default(),
        }
    }

    /// True in development mode.
    pub fn is_simulated(&self) -> bool {
        matches!(self.wechat, WeChat::Simulated(_))
    }

    /// Exchanges `code`, joining an exchange of the same code already under way.
    pub async fn exchange(&self, code: &LoginCode) -> Outcome {
        // The simulation accepts a code again and again, by design.
        if let WeChat::Simulated(sim) = &self.wechat {
            return sim.code2session(code);
        }
        let key = self.hasher.hash_one(code.as_str());
        let role = {
            let mut state = lock(&self.state);
            // Joins this code's exchange if one is under way; `Some(None)`: another code's
            // is, under the same hash.
            let joined = state.inflight.get_mut(&key).map(|inflight| {
                (inflight.code == code.as_str()).then(|| {
                    let (tx, rx) = oneshot::channel();
                    inflight.waiting.push(tx);
                    rx
                })
            });
            match joined {
                Some(Some(rx)) => Role::Joiner(rx),
                _ if state.was_exchanged(key, Instant::now()) => return Err(WeChatError::CodeUsed),
                taken => {
                    // Another code with the same hash under way (all but impossible): this
                    // one is exchanged on its own, and not offered to others to join.
                    let registered = taken.is_none();
                    if registered {
                        state.inflight.insert(
                            key,
                            Inflight {
                                code: code.as_str().to_owned(),
                                waiting: Vec::new(),
                            },
                        );
                    }
                    let wechat = self.wechat.clone();
                    let owned = code.clone();
                    Role::Leader(Leader {
                        call: Some(Box::pin(async move { wechat.code2session(&owned).await })),
                        finish: Finish {
                            state: self.state.clone(),
                            key,
                            registered,
                        },
                    })
                }
            }
        };
        let leader = match role {
            Role::Leader(leader) => leader,
            Role::Joiner(answer) => {
                return answer.await.unwrap_or_else(|_| {
                    Err(WeChatError::Unavailable(
                        "the exchange this request joined ended without an answer".into(),
                    ))
                })
            }
        };
        leader.run().await
    }
}

/// What a request does for its code: make the call, or wait for the one under way.
enum Role {
    Leader(Leader),
    Joiner(oneshot::Receiver<Outcome>),
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// The request that makes the upstream call for a code. The call runs in the request's own
/// task: a task of its own per login (with a shared future for the others) cost a login
/// about 5 µs of CPU, a tenth of the worker's share. Should the request go away before the
/// call has answered (its client disconnected), the call is handed to a task then, so the
/// requests that joined it still get its answer and the code is remembered as used.
struct Leader {
    call: Option<BoxFuture<'static, Outcome>>,
    finish: Finish,
}

/// What to do with a call's outcome.
struct Finish {
    state: Arc<Mutex<State>>,
    key: u64,
    /// Whether the exchange is in `inflight` (under `key`), where others may have joined.
    registered: bool,
}

impl Leader {
    async fn run(mut self) -> Outcome {
        let call = self
            .call
            .as_mut()
            .expect("a leader's call is taken only once");
        let outcome = call.await;
        self.call = None;
        self.finish.share(&outcome);
        outcome
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        let Some(call) = self.call.take() else {
            return;
        };
        let finish = Finish {
            state: self.finish.state.clone(),
            key: self.finish.key,
            registered: self.finish.registered,
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    let outcome = call.await;
                    finish.share(&outcome);
                });
            }
            // No runtime left: the process is stopping. The code is let go, not left to
            // a call that will never answer.
            Err(_) => finish.share(&Err(WeChatError::Unavailable(
                "the server is stopping".into(),
            ))),
        }
    }
}

impl Finish {
    /// Ends the exchange: remembers a successful code and answers the requests that joined.
    fn share(&self, outcome: &Outcome) {
        let waiting = {
            let mut state = lock(&self.state);
            let waiting = if self.registered {
                state
                    .inflight
                    .remove(&self.key)
                    .map(|inflight| inflight.waiting)
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            if outcome.is_ok() {
                state.remember(self.key, Instant::now());
            }
            waiting
        };
        for tx in waiting {
            let _ = tx.send(outcome.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A WeChat that answers every call with a fresh openid after `delay`; counts the calls.
    async fn slow_wechat(delay: Duration) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                let n = counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut request = [0u8; 4096];
                    let _ = socket.read(&mut request).await;
                    tokio::time::sleep(delay).await;
                    let body = format!(r#"{{"openid":"oSlow{n}","session_key":"k{n}"}}"#);
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(reply.as_bytes()).await;
                });
            }
        });
        (base, calls)
    }

    /// Exchanges through the real HTTP client against the WeChat at `api_base`.
    fn exchange_with(api_base: String) -> CodeExchange {
        let client = crate::wechat::HttpWeChat::new(&crate::config::WeChatConfig {
            appid: "wx_appid".into(),
            secret: crate::domain::Secret::new("secret"),
            api_base,
            timeout: Duration::from_secs(5),
        })
        .unwrap();
        CodeExchange::new(WeChat::Http(client))
    }

    #[tokio::test]
    async fn a_tap_that_goes_away_leaves_its_call_to_finish_for_the_taps_that_joined_it() {
        let (api_base, calls) = slow_wechat(Duration::from_millis(300)).await;
        let exchange = Arc::new(exchange_with(api_base));
        let code = LoginCode::parse("code-tapped-twice").unwrap();

        let first = tokio::spawn({
            let (exchange, code) = (exchange.clone(), code.clone());
            async move { exchange.exchange(&code).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let second = tokio::spawn({
            let (exchange, code) = (exchange.clone(), code.clone());
            async move { exchange.exchange(&code).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        // The first request's client disconnects: its handler is dropped mid-call.
        first.abort();
        assert!(first.await.unwrap_err().is_cancelled());

        let joined = tokio::time::timeout(Duration::from_secs(5), second)
            .await
            .expect("the joined tap never got an answer")
            .unwrap()
            .expect("the joined tap gets the call's answer");
        assert_eq!(joined.openid.as_str(), "oSlow0");
        assert_eq!(calls.load(Ordering::SeqCst), 1, "one call for both taps");
        assert!(
            matches!(exchange.exchange(&code).await, Err(WeChatError::CodeUsed)),
            "the code is remembered as used"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_code_whose_hash_another_codes_exchange_holds_is_exchanged_on_its_own() {
        let (api_base, calls) = slow_wechat(Duration::from_millis(10)).await;
        let exchange = exchange_with(api_base);
        let code = LoginCode::parse("code-with-a-twin").unwrap();
        // Another code under way under the same hash: a collision, made by hand.
        let key = exchange.hasher.hash_one(code.as_str());
        let (other_tx, mut other_rx) = oneshot::channel();
        lock(&exchange.state).inflight.insert(
            key,
            Inflight {
                code: "the-other-code".into(),
                waiting: vec![other_tx],
            },
        );

        let session = tokio::time::timeout(Duration::from_secs(5), exchange.exchange(&code))
            .await
            .expect("the code waited for the other code's exchange")
            .expect("the code gets its own call's answer");
        assert_eq!(session.openid.as_str(), "oSlow0");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // The other code's exchange is left as it was: still under way, nobody answered.
        let state = lock(&exchange.state);
        assert_eq!(state.inflight[&key].code, "the-other-code");
        assert!(other_rx.try_recv().is_err());
    }

    /// An empty state whose current generation began at `start`.
    fn state_since(start: Instant) -> State {
        State {
            recent_since: start,
            ..State::default()
        }
    }

    #[test]
    fn an_exchanged_code_is_remembered_for_one_to_two_periods_then_forgotten() {
        let start = Instant::now();
        let mut state = state_since(start);
        state.remember(7, start);
        assert!(state.was_exchanged(7, start + Duration::from_secs(1)));
        assert!(!state.was_exchanged(8, start + Duration::from_secs(1)));
        // One rotation: still remembered, in the older generation.
        assert!(state.was_exchanged(7, start + REMEMBER_EXCHANGED));
        // A second rotation drops it.
        assert!(!state.was_exchanged(7, start + REMEMBER_EXCHANGED * 2));
    }

    #[test]
    fn a_burst_of_codes_rotates_early_so_memory_stays_bounded_and_the_latest_are_remembered() {
        let start = Instant::now();
        let mut state = state_since(start);
        let codes = MOST_REMEMBERED_PER_GENERATION as u64 * 5 + 17;
        for key in 0..codes {
            // All within one second: time alone would never rotate.
            state.remember(key, start + Duration::from_micros(key));
            assert!(state.recent.len() + state.older.len() <= 2 * MOST_REMEMBERED_PER_GENERATION);
        }
        let at = start + Duration::from_secs(1);
        // The last generation's worth of codes, at least, is still remembered ...
        let latest = codes - MOST_REMEMBERED_PER_GENERATION as u64;
        assert!((latest..codes).all(|key| state.was_exchanged(key, at)));
        // ... and the first ones are gone.
        assert!(!state.was_exchanged(0, at));
        assert!(state.recent.capacity() < 4 * MOST_REMEMBERED_PER_GENERATION);
    }
}
