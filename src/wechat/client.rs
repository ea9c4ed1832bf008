use std::cell::RefCell;
use std::sync::{Arc, Weak};
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

use super::{Code2Session, WeChatError};
use crate::config::WeChatConfig;
use crate::domain::{LoginCode, OpenId, Secret, UnionId};

/// The code2Session client for the real API. Cloning it is cheap (one shared allocation):
/// every login's exchange takes a clone.
#[derive(Debug, Clone)]
pub struct HttpWeChat {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    timeout: Duration,
    /// For a thread whose own client could not be built (it never happened; reqwest builds
    /// one from the same settings here first).
    shared: reqwest::Client,
    /// Parsed once: parsing it on every call cost a login about 4 µs (host, IDNA, path).
    url: url::Url,
    appid: String,
    secret: Secret,
}

thread_local! {
    /// Each thread's own HTTP client per [`HttpWeChat`] (the `Weak` tells which, and when it
    /// is gone). A pooled connection is driven by a task on the thread that opened it; a
    /// client shared by the server's workers hands a login's request to the connection on
    /// another worker and its answer back, which cost about 5 µs a login in wake-ups
    /// between threads (the bench's floor-login went from 31-37k to 37-41k req/s with a
    /// client per worker).
    static THREAD_CLIENTS: RefCell<Vec<(Weak<Inner>, reqwest::Client)>> =
        const { RefCell::new(Vec::new()) };
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

fn build_client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(3)))
        // WeChat answers; it never redirects. Following one would resend the AppSecret in
        // the query to wherever it pointed. It saves no work: reqwest 0.13's redirect layer
        // parses each call's URL whatever the policy (callgrind shows it with this one).
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

impl HttpWeChat {
    /// Builds a client for `config`, with its timeout applied to every call.
    pub fn new(config: &WeChatConfig) -> anyhow::Result<Self> {
        Ok(Self {
            inner: Arc::new(Inner {
                timeout: config.timeout,
                shared: build_client(config.timeout)
                    .context("building the HTTP client for WeChat")?,
                url: url::Url::parse(&format!("{}/sns/jscode2session", config.api_base))
                    .context("the WeChat API base is not a URL")?,
                appid: config.appid.clone(),
                secret: config.secret.clone(),
            }),
        })
    }

    /// The calling thread's own client, built on its first call.
    fn http(&self) -> reqwest::Client {
        THREAD_CLIENTS.with(|clients| {
            let mut clients = clients.borrow_mut();
            let mine = Arc::as_ptr(&self.inner);
            if let Some((_, client)) = clients.iter().find(|(owner, _)| owner.as_ptr() == mine) {
                return client.clone();
            }
            // Clients of servers that have stopped (tests start many) go with their pools.
            clients.retain(|(owner, _)| owner.strong_count() > 0);
            let client = build_client(self.inner.timeout).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "building this thread's HTTP client for WeChat failed; sharing one");
                self.inner.shared.clone()
            });
            clients.push((Arc::downgrade(&self.inner), client.clone()));
            client
        })
    }

    /// Calls `GET /sns/jscode2session`.
    pub async fn code2session(&self, code: &LoginCode) -> Result<Code2Session, WeChatError> {
        let inner = &self.inner;
        let response = self
            .http()
            .get(inner.url.clone())
            .query(&[
                ("appid", inner.appid.as_str()),
                ("secret", inner.secret.expose()),
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
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A WeChat that keeps connections open and answers every request on them; counts the
    /// connections it accepted.
    async fn keep_alive_wechat() -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 4096];
                    loop {
                        let Ok(n @ 1..) = socket.read(&mut buf).await else {
                            return;
                        };
                        request.extend_from_slice(&buf[..n]);
                        while let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                            request.drain(..end + 4);
                            let body = r#"{"openid":"oKept","session_key":"k"}"#;
                            let reply = format!(
                                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                                body.len()
                            );
                            if socket.write_all(reply.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (base, connections)
    }

    fn client_for(api_base: String) -> HttpWeChat {
        HttpWeChat::new(&WeChatConfig {
            appid: "wx_appid".into(),
            secret: Secret::new("secret"),
            api_base,
            timeout: Duration::from_secs(5),
        })
        .unwrap()
    }

    /// hyper puts a connection back in the pool from the connection's own task, a moment
    /// after the answer: a call made before that opens another connection.
    async fn settle() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    fn clients_on_this_thread() -> usize {
        THREAD_CLIENTS.with(|c| c.borrow().len())
    }

    // Multi-threaded so that the fake keeps answering while this thread waits for the other.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn calls_from_one_thread_share_a_connection_and_another_thread_opens_its_own() {
        let (base, connections) = keep_alive_wechat().await;
        let wechat = client_for(base);
        let code = LoginCode::parse("code-1").unwrap();
        for _ in 0..3 {
            assert_eq!(
                wechat.code2session(&code).await.unwrap().openid.as_str(),
                "oKept"
            );
            settle().await;
        }
        assert_eq!(connections.load(Ordering::SeqCst), 1);

        let elsewhere = wechat.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let code = LoginCode::parse("code-2").unwrap();
                for _ in 0..3 {
                    elsewhere.code2session(&code).await.unwrap();
                    settle().await;
                }
            });
        })
        .join()
        .unwrap();
        assert_eq!(connections.load(Ordering::SeqCst), 2);

        // Back on the first thread: its own connection is still there.
        wechat.code2session(&code).await.unwrap();
        assert_eq!(connections.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_thread_keeps_no_client_of_a_server_that_has_stopped() {
        let (base, _) = keep_alive_wechat().await;
        let code = LoginCode::parse("code-1").unwrap();
        let before = clients_on_this_thread();
        for _ in 0..3 {
            let wechat = client_for(base.clone());
            wechat.code2session(&code).await.unwrap();
            assert_eq!(clients_on_this_thread(), before + 1);
        }
    }

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
