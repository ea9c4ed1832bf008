//! A minimal W3C WebDriver client over reqwest: Debian's chromedriver started on a free port,
//! one headless Chromium session, and only the commands the browser tests use.

use std::fmt;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

/// Debian's Chromium launcher.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Debian's chromedriver (package `chromium-driver`).
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The key under which WebDriver returns an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
/// Longest wait for chromedriver to answer `/status`.
const DRIVER_STARTUP: Duration = Duration::from_secs(20);
/// Longest wait in [`Browser::wait_for`] and friends.
pub const WAIT: Duration = Duration::from_secs(10);

/// A failed WebDriver command: its HTTP status, error code and message.
#[derive(Debug)]
pub struct WdError {
    pub status: u16,
    pub error: String,
    pub message: String,
}

impl fmt::Display for WdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.error, self.status, self.message)
    }
}

pub type WdResult<T> = Result<T, WdError>;

/// Fails the test (it does not skip it) when Chromium or chromedriver is not installed.
pub fn require_tools() {
    let missing: Vec<String> = [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")]
        .into_iter()
        .filter(|(path, _)| !Path::new(path).exists())
        .map(|(path, package)| format!("{path} (Debian package `{package}`)"))
        .collect();
    assert!(
        missing.is_empty(),
        "the browser tests need headless Chromium and its WebDriver, but {} is missing. \
         Install them with `apt-get install chromium chromium-driver` (as root), or run the \
         other tests with plain `cargo test`.",
        missing.join(" and ")
    );
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("finding a free port")
        .port()
}

/// The end of chromedriver's log, for failure messages.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// The chromedriver process; killed when dropped, also when a test panics.
struct Driver {
    child: Child,
    port: u16,
    log_path: PathBuf,
}

impl Driver {
    /// Starts chromedriver on a free port, logging to `log_path`, and waits until it is ready.
    async fn start(http: &reqwest::Client, log_path: PathBuf) -> Self {
        let port = free_port();
        let log = File::create(&log_path).expect("creating chromedriver's log file");
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("sharing chromedriver's log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {CHROMEDRIVER}: {e}"));
        let mut driver = Driver {
            child,
            port,
            log_path,
        };
        let status_url = format!("http://127.0.0.1:{port}/status");
        let deadline = Instant::now() + DRIVER_STARTUP;
        loop {
            if let Ok(Some(exit)) = driver.child.try_wait() {
                panic!(
                    "chromedriver exited at start ({exit}):\n{}",
                    log_tail(&driver.log_path)
                );
            }
            if let Ok(response) = http.get(&status_url).send().await {
                if let Ok(body) = response.json::<Value>().await {
                    if body["value"]["ready"] == true {
                        return driver;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not answer {status_url} within {DRIVER_STARTUP:?}:\n{}",
                log_tail(&driver.log_path)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One headless Chromium, driven through its own chromedriver.
///
/// Dropping it ends the session (closing Chromium), then stops chromedriver and removes
/// the profile folder, also when a test panics.
pub struct Browser {
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT/session/ID`.
    base: String,
    session_id: String,
    ended: bool,
    // Dropped in this order, after `Drop::drop` has ended the session.
    driver: Driver,
    _dir: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile.
    pub async fn start() -> Self {
        require_tools();
        let dir = tempfile::tempdir().expect("creating the browser's temporary folder");
        let profile = dir.path().join("profile");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("building the WebDriver HTTP client");
        let driver = Driver::start(&http, dir.path().join("chromedriver.log")).await;
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "pageLoadStrategy": "normal",
                    "timeouts": { "pageLoad": 30_000, "script": 10_000, "implicit": 0 },
                    "goog:loggingPrefs": { "browser": "ALL" },
                    "goog:chromeOptions": {
                        "binary": CHROMIUM,
                        "args": [
                            "--headless=new",
                            "--no-sandbox",
                            "--disable-gpu",
                            "--disable-dev-shm-usage",
                            "--disable-background-networking",
                            "--disable-component-update",
                            "--no-first-run",
                            "--window-size=1280,900",
                            format!("--user-data-dir={}", profile.display()),
                        ],
                    },
                },
            },
        });
        let url = format!("http://127.0.0.1:{}/session", driver.port);
        let reply = send(&http, Method::POST, &url, Some(capabilities)).await;
        let value = reply.unwrap_or_else(|e| {
            panic!(
                "chromedriver could not start Chromium: {e}\n{}",
                log_tail(&driver.log_path)
            )
        });
        let session_id = value["sessionId"]
            .as_str()
            .expect("a new session has an id")
            .to_owned();
        Browser {
            base: format!("{url}/{session_id}"),
            http,
            session_id,
            ended: false,
            driver,
            _dir: dir,
        }
    }

    /// The browser's User-Agent, for the log.
    pub async fn user_agent(&self) -> String {
        let value = self.execute("return navigator.userAgent", json!([])).await;
        value.as_str().unwrap_or_default().to_owned()
    }

    async fn command(&self, method: Method, path: &str, body: Option<Value>) -> WdResult<Value> {
        send(&self.http, method, &format!("{}{path}", self.base), body).await
    }

    async fn post(&self, path: &str, body: Value) -> WdResult<Value> {
        self.command(Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> WdResult<Value> {
        self.command(Method::GET, path, None).await
    }

    /// Opens `url` and waits for it to load.
    pub async fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url }))
            .await
            .unwrap_or_else(|e| panic!("navigating to {url}: {e}"));
    }

    /// The address of the page shown.
    pub async fn current_url(&self) -> String {
        let value = self.get("/url").await.expect("reading the current URL");
        value.as_str().unwrap_or_default().to_owned()
    }

    /// The page's DOM, serialised.
    pub async fn page_source(&self) -> String {
        let value = self.get("/source").await.expect("reading the page source");
        value.as_str().unwrap_or_default().to_owned()
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its result.
    pub async fn execute(&self, script: &str, args: Value) -> Value {
        self.post("/execute/sync", json!({ "script": script, "args": args }))
            .await
            .unwrap_or_else(|e| panic!("running script {script:?}: {e}"))
    }

    /// The first element matching `css`, if any.
    pub async fn try_find(&self, css: &str) -> WdResult<Element<'_>> {
        let value = self
            .post("/element", json!({ "using": "css selector", "value": css }))
            .await?;
        Ok(self.element(&value))
    }

    /// The first element matching `css`; fails the test if there is none.
    pub async fn find(&self, css: &str) -> Element<'_> {
        match self.try_find(css).await {
            Ok(element) => element,
            Err(e) => panic!("finding {css:?} on {}: {e}", self.current_url().await),
        }
    }

    /// Every element matching `css`.
    pub async fn find_all(&self, css: &str) -> Vec<Element<'_>> {
        let value = self
            .post(
                "/elements",
                json!({ "using": "css selector", "value": css }),
            )
            .await
            .unwrap_or_else(|e| panic!("finding all {css:?}: {e}"));
        value
            .as_array()
            .map(|items| items.iter().map(|v| self.element(v)).collect())
            .unwrap_or_default()
    }

    fn element(&self, value: &Value) -> Element<'_> {
        Element {
            browser: self,
            id: value[ELEMENT_KEY]
                .as_str()
                .unwrap_or_else(|| panic!("not an element reference: {value}"))
                .to_owned(),
        }
    }

    /// Waits until an element matches `css` and returns it.
    pub async fn wait_for(&self, css: &str) -> Element<'_> {
        let deadline = Instant::now() + WAIT;
        loop {
            match self.try_find(css).await {
                Ok(element) => return element,
                Err(e) if e.error == "no such element" && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(e) => panic!(
                    "no {css:?} appeared within {WAIT:?} on {}: {e}",
                    self.current_url().await
                ),
            }
        }
    }

    /// Waits until the current URL satisfies `done` and returns it.
    pub async fn wait_for_url(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let url = self.current_url().await;
            if done(&url) {
                return url;
            }
            assert!(
                Instant::now() < deadline,
                "the browser did not reach {what} within {WAIT:?}; it is at {url}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The text of the open alert, confirm or prompt; `None` when none is open.
    pub async fn alert_text(&self) -> Option<String> {
        match self.get("/alert/text").await {
            Ok(value) => Some(value.as_str().unwrap_or_default().to_owned()),
            Err(e) if e.error == "no such alert" => None,
            Err(e) => panic!("asking for an alert: {e}"),
        }
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        let value = self.get("/screenshot").await.expect("taking a screenshot");
        let png = decode_base64(value.as_str().expect("a screenshot is base64 text"));
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "a screenshot is not a PNG"
        );
        png
    }

    /// Saves a PNG of the viewport as `target/screenshots/<name>` and returns its path.
    pub async fn save_screenshot(&self, name: &str) -> PathBuf {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
        std::fs::create_dir_all(&dir).expect("creating target/screenshots");
        let path = dir.join(name);
        std::fs::write(&path, self.screenshot().await)
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        path
    }

    /// The browser console's entries since the last call (chromedriver's log extension).
    pub async fn console_log(&self) -> WdResult<Vec<Value>> {
        let value = self.post("/se/log", json!({ "type": "browser" })).await?;
        Ok(value.as_array().cloned().unwrap_or_default())
    }

    /// Ends the session, closing Chromium.
    pub async fn quit(mut self) {
        if let Err(e) = self.command(Method::DELETE, "", None).await {
            panic!("ending the WebDriver session: {e}"); // `Drop` tries once more
        }
        self.ended = true;
    }
}

impl Drop for Browser {
    /// Ends the session with a plain blocking request: `Drop` cannot await, and without it
    /// Chromium would outlive the killed chromedriver.
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        let addr = SocketAddr::from(([127, 0, 0, 1], self.driver.port));
        if let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(15)));
            let _ = write!(
                stream,
                "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\n\
                 Connection: close\r\n\r\n",
                self.session_id, self.driver.port
            );
            let _ = stream.read_to_end(&mut Vec::new());
        }
    }
}

/// An element of the page shown.
pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
}

impl Element<'_> {
    async fn post(&self, what: &str, body: Value) -> Value {
        self.browser
            .post(&format!("/element/{}/{what}", self.id), body)
            .await
            .unwrap_or_else(|e| panic!("element {what}: {e}"))
    }

    async fn get(&self, what: &str) -> Value {
        self.browser
            .get(&format!("/element/{}/{what}", self.id))
            .await
            .unwrap_or_else(|e| panic!("element {what}: {e}"))
    }

    /// Clicks it (scrolling it into view first).
    pub async fn click(&self) {
        self.post("click", json!({})).await;
    }

    /// Empties an input or textarea.
    pub async fn clear(&self) {
        self.post("clear", json!({})).await;
    }

    /// Types `text` into it.
    pub async fn send_keys(&self, text: &str) {
        self.post("value", json!({ "text": text })).await;
    }

    /// Its rendered text.
    pub async fn text(&self) -> String {
        self.get("text")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The value of its attribute `name`, if set.
    pub async fn attribute(&self, name: &str) -> Option<String> {
        self.get(&format!("attribute/{name}"))
            .await
            .as_str()
            .map(str::to_owned)
    }
}

/// Sends one WebDriver command and unwraps its `value`.
async fn send(
    http: &reqwest::Client,
    method: Method,
    url: &str,
    body: Option<Value>,
) -> WdResult<Value> {
    let mut request = http.request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.map_err(|e| WdError {
        status: 0,
        error: "transport".into(),
        message: e.to_string(),
    })?;
    let status = response.status().as_u16();
    let mut body: Value = response.json().await.unwrap_or(Value::Null);
    let value = body["value"].take();
    if (200..300).contains(&status) {
        Ok(value)
    } else {
        Err(WdError {
            status,
            error: value["error"]
                .as_str()
                .unwrap_or("unknown error")
                .to_owned(),
            message: value["message"].as_str().unwrap_or_default().to_owned(),
        })
    }
}

/// Decodes standard base64 (padding and line breaks allowed).
pub fn decode_base64(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' | b'\r' | b'\n' => continue,
            _ => panic!("not base64: byte {c:#04x}"),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}
