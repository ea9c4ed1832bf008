//! The compiled `wxlogin` binary as a black box: started as a child process with a clean
//! environment, a temporary folder as its working directory (so no `.env` is read) and,
//! where it needs one, the fake WeChat of the API tests.

#[allow(dead_code)]
#[path = "api/helpers.rs"]
mod helpers;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use helpers::{FakeWeChat, APPID, SECRET};

/// Longest wait for the server to say where it listens (debug builds start slowly).
const STARTUP_LIMIT: Duration = Duration::from_secs(20);
/// Longest wait for a process to exit once it should.
const EXIT_LIMIT: Duration = Duration::from_secs(15);

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_wxlogin"))
}

/// The binary with an empty environment but for `PATH` and `HOME`, run from `dir`.
fn command_in(dir: &Path) -> Command {
    let mut command = Command::new(bin());
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// `text` without ANSI escape sequences (`ESC [ … letter`), in case colours are on.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// A running server process. Dropping it kills the process, so a failing test leaves no
/// server behind.
struct Server {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
    port: u16,
}

impl Server {
    /// Starts `command` and waits until the log names the port it listens on.
    fn start(mut command: Command) -> Server {
        let mut child = command.spawn().expect("the server binary starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        let stderr = child.stderr.take().expect("stderr is piped");
        readers.push(collect_lines(stderr, lines.clone()));
        let stdout = child.stdout.take().expect("stdout is piped");
        readers.push(collect_lines(stdout, lines.clone()));
        let mut server = Server {
            child,
            lines,
            readers,
            port: 0,
        };
        server.port = server.wait_for_port();
        server
    }

    fn wait_for_port(&mut self) -> u16 {
        let started = Instant::now();
        loop {
            let found = self.lines.lock().unwrap().iter().find_map(|line| {
                let rest = line.split("listening on http://127.0.0.1:").nth(1)?;
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits.parse::<u16>().ok()
            });
            if let Some(port) = found {
                return port;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                self.join_readers();
                panic!(
                    "the server exited ({status}) before listening:\n{}",
                    self.log()
                );
            }
            if started.elapsed() > STARTUP_LIMIT {
                panic!(
                    "the server did not say where it listens within {STARTUP_LIMIT:?}:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Everything the process wrote so far, colours removed.
    fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// SIGTERM, then waits for the exit (SIGKILL if it takes too long) and for the readers
    /// to reach the end of the output, so [`Server::log`] holds all of it.
    fn stop(&mut self) -> Option<ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let started = Instant::now();
        let status = loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                break Some(status);
            }
            if started.elapsed() > EXIT_LIMIT {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        self.join_readers();
        status
    }

    fn join_readers(&mut self) {
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A thread appending every line of `pipe` to `lines`, colours removed.
fn collect_lines(
    pipe: impl Read + Send + 'static,
    lines: Arc<Mutex<Vec<String>>>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            lines.lock().unwrap().push(strip_ansi(&line));
        }
    })
}

/// The command for a server using `fake` with its database at `db_path`.
fn server_command(dir: &Path, db_path: &Path, fake: &FakeWeChat, rust_log: &str) -> Command {
    let mut command = command_in(dir);
    command
        .env("BIND_ADDR", "127.0.0.1:0")
        .env("DATABASE_URL", db_path)
        .env("WECHAT_APPID", APPID)
        .env("WECHAT_SECRET", SECRET)
        .env("WECHAT_API_BASE", &fake.base_url)
        .env("LOGIN_RATE_PER_MIN", "0")
        .env("SHUTDOWN_TIMEOUT_SECS", "2")
        .env("RUST_LOG", rust_log);
    command
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent("wxlogin-binary-tests/1.0 (MicroMessenger)")
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Status and JSON body (`Null` when the body is not JSON).
async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[test]
fn an_appid_without_a_secret_stops_the_server_with_a_message_naming_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = command_in(dir.path())
        .env("DATABASE_URL", dir.path().join("wxlogin.db"))
        .env("BIND_ADDR", "127.0.0.1:0")
        .env("WECHAT_APPID", APPID)
        .spawn()
        .expect("the binary starts");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server kept running without WECHAT_SECRET");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let stderr = strip_ansi(&stderr);
    assert!(!status.success(), "exited with {status}; stderr: {stderr}");
    assert!(stderr.contains("WECHAT_SECRET"), "stderr: {stderr}");
    assert!(
        !dir.path().join("wxlogin.db").exists(),
        "a database was created before the configuration was checked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_creates_its_database_and_logs_where_it_listens() {
    let fake = FakeWeChat::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("nested").join("dir").join("wxlogin.db");
    let mut server = Server::start(server_command(dir.path(), &db_path, &fake, "info"));

    let (status, body) = send(client().get(server.url("/healthz"))).await;
    assert_eq!(status, 200, "{body}\n{}", server.log());
    assert_eq!(body, json!({"status": "ok"}));
    assert!(db_path.is_file(), "no database at {}", db_path.display());

    let exit = server.stop();
    assert!(
        exit.is_some_and(|s| s.success()),
        "SIGTERM gave {exit:?}:\n{}",
        server.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_stopped_with_sigterm_copies_its_wal_into_the_database_and_keeps_every_login() {
    let fake = FakeWeChat::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("wxlogin.db");
    let wal = dir.path().join("wxlogin.db-wal");
    let mut server = Server::start(server_command(dir.path(), &db_path, &fake, "info"));
    let mut tokens = Vec::new();
    for i in 0..20 {
        let body = log_in(&server, &fake.code_for(&format!("o_binary_stop_{i}"))).await;
        tokens.push(body["token"].as_str().unwrap().to_owned());
    }
    assert!(wal.is_file(), "a running server writes through a WAL");

    let exit = server.stop();
    assert!(
        exit.is_some_and(|s| s.success()),
        "SIGTERM gave {exit:?}:\n{}",
        server.log()
    );
    // A WAL left behind is read back by the next start and copied again while it serves.
    // SQLite removes the file only when the last connection closes; emptied is as good.
    let left = std::fs::metadata(&wal).map_or(0, |m| m.len());
    assert_eq!(left, 0, "a stopped server left {left} bytes of WAL behind");

    let server = Server::start(server_command(dir.path(), &db_path, &fake, "info"));
    for token in &tokens {
        let (status, body) = send(client().get(server.url("/api/v1/me")).bearer_auth(token)).await;
        assert_eq!(status, 200, "a token from before the stop: {body}");
    }
    let body = log_in(&server, &fake.code_for("o_binary_stop_0")).await;
    assert_eq!(body["user"]["is_new"], json!(false), "{body}");
}

/// Logs in with `code`, which must succeed; the reply's body.
async fn log_in(server: &Server, code: &str) -> Value {
    let request = client().post(server.url("/api/v1/login"));
    let (status, body) = send(request.json(&json!({ "code": code }))).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_never_contains_a_session_key_secret_token_or_code() {
    let fake = FakeWeChat::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("wxlogin.db");
    let mut server = Server::start(server_command(dir.path(), &db_path, &fake, "debug"));
    let client = client();
    let login_url = server.url("/api/v1/login");
    let me_url = server.url("/api/v1/me");
    let mut codes = Vec::new();
    let mut tokens = Vec::new();

    // JSON body.
    let code = fake.code_for("o_binary_alice");
    codes.push(code.clone());
    let (status, body) = send(
        client
            .post(&login_url)
            .json(&json!({"code": code, "nickname": "Alice"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let first_code = code;
    tokens.push(body["token"].as_str().unwrap().to_owned());

    // Query string, as `wx.request` sends a GET.
    let code = fake.code_for("o_binary_bob");
    codes.push(code.clone());
    let (status, body) = send(
        client
            .get(&login_url)
            .query(&[("code", code.as_str()), ("user_name", "小明")]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    tokens.push(body["token"].as_str().unwrap().to_owned());

    // Form body.
    let code = fake.code_for("o_binary_carol");
    codes.push(code.clone());
    let (status, body) = send(
        client
            .post(&login_url)
            .form(&[("code", code.as_str()), ("nickname", "Carol")]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    tokens.push(body["token"].as_str().unwrap().to_owned());

    let (status, body) = send(client.get(&me_url).bearer_auth(&tokens[0])).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["openid"], "o_binary_alice");
    let (status, body) = send(
        client
            .patch(&me_url)
            .bearer_auth(&tokens[0])
            .json(&json!({"nickname": "Alice 2"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(
        client
            .post(server.url("/api/v1/logout"))
            .bearer_auth(&tokens[0]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = send(client.get(&me_url).bearer_auth(&tokens[0])).await;
    assert_eq!(status, 401, "a logged-out token still works");

    // WeChat refuses the code: 40029.
    let code = fake.code_failing_with(40029);
    codes.push(code.clone());
    let (status, body) = send(client.post(&login_url).json(&json!({"code": code}))).await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (401, Some("invalid_code"))
    );

    // The same code again: the server remembers it exchanged it.
    let (status, body) = send(client.post(&login_url).json(&json!({"code": first_code}))).await;
    assert_eq!((status, body["errcode"].as_str()), (401, Some("code_used")));

    // A code another instance already spent: WeChat itself answers 40163.
    let code = fake.code_for("o_binary_dave");
    codes.push(code.clone());
    let spent = client
        .get(format!("{}/sns/jscode2session", fake.base_url))
        .query(&[
            ("appid", APPID),
            ("secret", SECRET),
            ("js_code", code.as_str()),
            ("grant_type", "authorization_code"),
        ])
        .send()
        .await
        .unwrap();
    assert!(spent.status().is_success());
    let (status, body) = send(client.post(&login_url).json(&json!({"code": code}))).await;
    assert_eq!((status, body["errcode"].as_str()), (401, Some("code_used")));

    let exit = server.stop();
    let log = server.log();
    assert!(exit.is_some(), "the server did not stop on SIGTERM:\n{log}");

    let session_keys = fake.session_keys();
    assert_eq!(session_keys.len(), 4, "one key per successful exchange");
    let mut secrets: Vec<(&str, String)> = vec![("AppSecret", SECRET.to_owned())];
    secrets.extend(session_keys.into_iter().map(|k| ("session_key", k)));
    // A token's secret half is what must not leak (its login id is no secret).
    secrets.extend(
        tokens
            .into_iter()
            .map(|t| ("token", t.rsplit('_').next().unwrap().to_owned())),
    );
    secrets.extend(codes.into_iter().map(|c| ("code", c)));

    assert!(
        log.contains("code=[redacted]"),
        "the access log did not show the redacted GET login:\n{log}"
    );
    let access = |path: &str, user: &str| {
        log.lines()
            .any(|l| l.contains(&format!("path={path}")) && l.ends_with(&format!("user={user}")))
    };
    assert!(
        access("/api/v1/login", "1 (new)") && access("/api/v1/me", "1"),
        "the access log does not name the users of logins and profile reads:\n{log}"
    );
    assert!(
        log.lines().any(|l| l.contains("path=/api/v1/me")
            && l.contains("method=GET")
            && l.contains("status=200")
            && l.contains("peer=127.0.0.1")
            && l.contains("user_agent=wxlogin-binary-tests/1.0 (MicroMessenger)")),
        "the access log lacks the method, status, client or user agent of a request:\n{log}"
    );
    let leaks: Vec<String> = log
        .lines()
        .flat_map(|line| {
            secrets
                .iter()
                .filter(|(_, secret)| line.contains(secret.as_str()))
                .map(move |(kind, _)| format!("{kind} in: {line}"))
        })
        .collect();
    assert!(
        leaks.is_empty(),
        "{} log line(s) leak a secret:\n{}",
        leaks.len(),
        leaks.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn development_mode_logs_a_loud_warning_and_simulates_logins() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = command_in(dir.path());
    command
        .env("BIND_ADDR", "127.0.0.1:0")
        .env("DATABASE_URL", dir.path().join("wxlogin.db"))
        .env("LOGIN_RATE_PER_MIN", "0")
        .env("RUST_LOG", "info");
    let server = Server::start(command);
    assert!(
        server.log().contains("DEVELOPMENT MODE"),
        "no warning about development mode:\n{}",
        server.log()
    );

    let client = client();
    let login = |code: &str| {
        send(
            client
                .post(server.url("/api/v1/login"))
                .json(&json!({ "code": code })),
        )
    };
    let (status, alice) = login("alice").await;
    assert_eq!(status, 200, "{alice}");
    let (status, alice_again) = login("alice#7").await;
    assert_eq!(status, 200, "{alice_again}");
    let (status, bob) = login("bob").await;
    assert_eq!(status, 200, "{bob}");

    assert_eq!(alice["user"]["id"], alice_again["user"]["id"]);
    assert_eq!(alice["user"]["openid"], alice_again["user"]["openid"]);
    assert_ne!(alice["user"]["id"], bob["user"]["id"]);
    assert_ne!(alice["user"]["openid"], bob["user"]["openid"]);
    assert_ne!(alice["token"], alice_again["token"]);

    let (status, bad) = login("bad123").await;
    assert_eq!(status, 401, "{bad}");
    assert_eq!(bad["errcode"], "invalid_code", "{bad}");
}
