//! Reliability scenarios against the real binary as a separate process: load, races, crashes
//! (SIGKILL), graceful stop (SIGTERM) and a dead upstream. Shared by the pass/fail tests
//! (`tests/reliability`) and the `reliability` example, which prints the figures.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use serde_json::{json, Value};

use crate::helpers::{CookieClient, FakeWeChat, APPID, SECRET};

/// A running wxlogin process.
pub struct Server {
    child: Child,
    pub base: String,
    log: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `bin` on a free port with the database at `db_path`, talking to `fake`.
    pub fn start(bin: &Path, db_path: &Path, fake: &FakeWeChat, env: &[(&str, String)]) -> Server {
        let mut command = Command::new(bin);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("BIND_ADDR", "127.0.0.1:0")
            .env("DATABASE_URL", db_path)
            .env("WECHAT_APPID", APPID)
            .env("WECHAT_SECRET", SECRET)
            .env("WECHAT_API_BASE", &fake.base_url)
            .env("LOGIN_RATE_PER_MIN", "0")
            .env("RUST_LOG", "info")
            .current_dir(db_path.parent().unwrap())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("the server binary starts");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let address = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                panic!(
                    "the server did not say where it listens:\n{}",
                    log.lock().unwrap()
                )
            });
        Server {
            child,
            base: format!("http://{address}"),
            log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM: the polite stop.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        assert!(status.is_ok_and(|s| s.success()), "kill -TERM failed");
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(128)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// One login through the API; (status, body).
pub async fn login(
    client: &reqwest::Client,
    server_base: &str,
    code: &str,
) -> Result<(u16, Value), reqwest::Error> {
    let response = client
        .post(format!("{server_base}/api/v1/login"))
        .json(&json!({"code": code, "nickname": "负载测试"}))
        .send()
        .await?;
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    Ok((status, body))
}

fn connect(db_path: &Path) -> wxlogin::db::DbConnection {
    wxlogin::db::DbConnection::establish(db_path.to_str().unwrap()).unwrap()
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Check {
    #[diesel(sql_type = diesel::sql_types::Text)]
    integrity_check: String,
}

pub fn count(db_path: &Path, sql: &str) -> i64 {
    diesel::sql_query(sql)
        .get_result::<Count>(&mut connect(db_path))
        .unwrap()
        .n
}

pub fn integrity_check(db_path: &Path) -> String {
    diesel::sql_query("PRAGMA integrity_check")
        .load::<Check>(&mut connect(db_path))
        .unwrap()
        .into_iter()
        .map(|c| c.integrity_check)
        .collect::<Vec<_>>()
        .join("; ")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.1}ms", d.as_secs_f64() * 1000.0)
}

/// Figures of the load scenario.
pub struct LoadReport {
    pub requests: usize,
    pub ok: usize,
    pub errors: usize,
    pub users_stored: i64,
    pub users_expected: usize,
    pub locked_in_log: usize,
    pub elapsed: Duration,
    pub p50: Duration,
    pub p99: Duration,
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "load: requests={} ok={} errors={} users_stored={}/{} database_locked={} time={:.2}s rate={:.0}/s p50={} p99={}",
            self.requests,
            self.ok,
            self.errors,
            self.users_stored,
            self.users_expected,
            self.locked_in_log,
            self.elapsed.as_secs_f64(),
            self.requests as f64 / self.elapsed.as_secs_f64(),
            ms(self.p50),
            ms(self.p99)
        )
    }
}

/// `total` logins of distinct users from `concurrency` clients.
pub async fn load(bin: &Path, dir: &Path, total: usize, concurrency: usize) -> LoadReport {
    let fake = FakeWeChat::start().await;
    let db = dir.join("load.db");
    let server = Server::start(bin, &db, &fake, &[]);
    let codes: Arc<Vec<String>> = Arc::new(
        (0..total)
            .map(|i| fake.code_for(&format!("oLoad{i:06}")))
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let client = client();
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (codes, next, client, base) = (
                codes.clone(),
                next.clone(),
                client.clone(),
                server.base.clone(),
            );
            tokio::spawn(async move {
                let mut results = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= codes.len() {
                        break;
                    }
                    let t = Instant::now();
                    let status = login(&client, &base, &codes[i])
                        .await
                        .map(|(s, _)| s)
                        .unwrap_or(0);
                    results.push((status, t.elapsed()));
                }
                results
            })
        })
        .collect();
    let mut results = Vec::new();
    for w in workers {
        results.extend(w.await.unwrap());
    }
    let elapsed = started.elapsed();
    let mut latencies: Vec<Duration> = results.iter().map(|r| r.1).collect();
    latencies.sort();
    let ok = results.iter().filter(|r| r.0 == 200).count();
    LoadReport {
        requests: results.len(),
        ok,
        errors: results.len() - ok,
        users_stored: count(
            &db,
            "SELECT COUNT(DISTINCT openid) AS n FROM users WHERE openid LIKE 'oLoad%'",
        ),
        users_expected: total,
        locked_in_log: server.log().matches("database is locked").count(),
        elapsed,
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
    }
}

/// Figures of the race scenario.
pub struct RaceReport {
    pub first_logins: usize,
    pub first_login_ok: usize,
    pub users_stored: i64,
    pub working_tokens: usize,
    pub taps: usize,
    pub taps_ok: usize,
    pub tap_users: usize,
    pub upstream_calls_for_tap: usize,
    pub retap_errcode: String,
}

impl std::fmt::Display for RaceReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "race: first_logins={} ok={} users_stored={}/1 working_tokens={}/{} | double_tap: requests={} ok={} users={} code2session_calls={} reuse_after={}",
            self.first_logins,
            self.first_login_ok,
            self.users_stored,
            self.working_tokens,
            self.first_logins,
            self.taps,
            self.taps_ok,
            self.tap_users,
            self.upstream_calls_for_tap,
            self.retap_errcode
        )
    }
}

/// Concurrent first logins of one openid, then concurrent requests carrying one code.
pub async fn race(bin: &Path, dir: &Path, first_logins: usize, taps: usize) -> RaceReport {
    let fake = FakeWeChat::start().await;
    let db = dir.join("race.db");
    let server = Server::start(bin, &db, &fake, &[]);
    let client = client();

    let codes: Vec<String> = (0..first_logins)
        .map(|_| fake.code_for("oRaceSameUser"))
        .collect();
    let replies =
        futures_util::future::join_all(codes.iter().map(|c| login(&client, &server.base, c))).await;
    let tokens: Vec<String> = replies
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .filter(|(s, _)| *s == 200)
        .filter_map(|(_, b)| b["token"].as_str().map(str::to_owned))
        .collect();
    let me = futures_util::future::join_all(
        tokens
            .iter()
            .map(|t| client.get(server.url("/api/v1/me")).bearer_auth(t).send()),
    )
    .await;
    let working_tokens = me
        .iter()
        .filter(|r| r.as_ref().is_ok_and(|r| r.status() == 200))
        .count();

    fake.set_delay(Duration::from_millis(300));
    let calls_before = fake.calls().len();
    let code = fake.code_for("oRaceDoubleTap");
    let tap_replies =
        futures_util::future::join_all((0..taps).map(|_| login(&client, &server.base, &code)))
            .await;
    let ok: Vec<&Value> = tap_replies
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .filter(|(s, _)| *s == 200)
        .map(|(_, b)| b)
        .collect();
    let tap_users: std::collections::HashSet<i64> =
        ok.iter().filter_map(|b| b["user"]["id"].as_i64()).collect();
    let upstream_calls_for_tap = fake.calls().len() - calls_before;
    let retap = login(&client, &server.base, &code)
        .await
        .map(|(_, b)| b)
        .unwrap_or(Value::Null);
    fake.set_delay(Duration::ZERO);

    RaceReport {
        first_logins,
        first_login_ok: tokens.len(),
        users_stored: count(
            &db,
            "SELECT COUNT(*) AS n FROM users WHERE openid = 'oRaceSameUser'",
        ),
        working_tokens,
        taps,
        taps_ok: ok.len(),
        tap_users: tap_users.len(),
        upstream_calls_for_tap,
        retap_errcode: retap["errcode"].as_str().unwrap_or("none").to_owned(),
    }
}

/// Figures of the crash scenario.
pub struct CrashReport {
    pub rounds: usize,
    pub acknowledged: usize,
    pub lost: usize,
    pub integrity: Vec<String>,
    pub served_after_restart: usize,
    pub elapsed: Duration,
}

impl std::fmt::Display for CrashReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let all_ok = self.integrity.iter().all(|i| i == "ok");
        write!(
            f,
            "crash: sigkill_rounds={} acknowledged_logins={} lost_acknowledged={} integrity={} served_after_restart={}/{} time={:.2}s",
            self.rounds,
            self.acknowledged,
            self.lost,
            if all_ok { "ok".to_owned() } else { self.integrity.join(",") },
            self.served_after_restart,
            self.rounds,
            self.elapsed.as_secs_f64()
        )
    }
}

/// `rounds` times: logins from `concurrency` clients, SIGKILL mid-load, restart, check.
pub async fn crash(bin: &Path, dir: &Path, rounds: usize, concurrency: usize) -> CrashReport {
    let fake = FakeWeChat::start().await;
    let db = dir.join("crash.db");
    let client = client();
    let started = Instant::now();
    let mut acknowledged: Vec<(String, String)> = Vec::new();
    let mut integrity = Vec::new();
    let mut served_after_restart = 0;
    let mut server = Server::start(bin, &db, &fake, &[]);
    for round in 0..rounds {
        let counter = Arc::new(AtomicUsize::new(0));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let workers: Vec<_> = (0..concurrency)
            .map(|w| {
                let (fake, client, base, counter, acked) = (
                    fake.clone(),
                    client.clone(),
                    server.base.clone(),
                    counter.clone(),
                    acked.clone(),
                );
                tokio::spawn(async move {
                    loop {
                        let openid = format!(
                            "oCrash{round}w{w}n{}",
                            counter.fetch_add(1, Ordering::Relaxed)
                        );
                        let code = fake.code_for(&openid);
                        match login(&client, &base, &code).await {
                            Ok((200, body)) => {
                                let token = body["token"].as_str().unwrap_or_default().to_owned();
                                acked.lock().unwrap().push((openid, token));
                            }
                            Ok(_) => {}
                            Err(_) => break, // the server is gone
                        }
                    }
                })
            })
            .collect();
        // Kill somewhere in the middle of the load, at a different moment each round.
        tokio::time::sleep(Duration::from_millis(250 + 97 * round as u64)).await;
        server.kill();
        for w in workers {
            let _ = w.await;
        }
        acknowledged.extend(acked.lock().unwrap().drain(..));
        integrity.push(integrity_check(&db));
        server = Server::start(bin, &db, &fake, &[]);
        if client
            .get(server.url("/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            served_after_restart += 1;
        }
    }
    drop(server);
    let mut conn = connect(&db);
    let mut lost = 0;
    for (openid, token) in &acknowledged {
        use wxlogin::db::schema::{logins, users};
        let (login_id, hash) = match wxlogin::auth::PresentedToken::parse(token) {
            wxlogin::auth::PresentedToken::Current {
                login_id,
                secret_hash,
            } => (login_id, secret_hash),
            other => panic!("a token of an unexpected form: {other:?}"),
        };
        let found: i64 = logins::table
            .inner_join(users::table)
            .filter(users::openid.eq(openid))
            .filter(logins::id.eq(login_id))
            .filter(logins::token_hash.eq(&hash))
            .count()
            .get_result(&mut conn)
            .unwrap();
        if found != 1 {
            lost += 1;
        }
    }
    CrashReport {
        rounds,
        acknowledged: acknowledged.len(),
        lost,
        integrity,
        served_after_restart,
        elapsed: started.elapsed(),
    }
}

/// Figures of the graceful-stop scenario.
pub struct StopReport {
    pub in_flight: usize,
    pub finished_ok: usize,
    pub exit_code: Option<i32>,
    pub stop_time: Duration,
    pub shutdown_timeout: Duration,
}

impl std::fmt::Display for StopReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "graceful_stop: in_flight_at_sigterm={} finished_ok={} exit_code={} stop_time={:.2}s shutdown_timeout={}s",
            self.in_flight,
            self.finished_ok,
            self.exit_code.map(|c| c.to_string()).unwrap_or_else(|| "none (still running)".into()),
            self.stop_time.as_secs_f64(),
            self.shutdown_timeout.as_secs()
        )
    }
}

/// SIGTERM while `in_flight` logins wait on a slow upstream.
pub async fn graceful_stop(bin: &Path, dir: &Path, in_flight: usize) -> StopReport {
    let fake = FakeWeChat::start().await;
    fake.set_delay(Duration::from_millis(1500));
    let db = dir.join("stop.db");
    let shutdown_timeout = Duration::from_secs(10);
    let mut server = Server::start(
        bin,
        &db,
        &fake,
        &[(
            "SHUTDOWN_TIMEOUT_SECS",
            shutdown_timeout.as_secs().to_string(),
        )],
    );
    let client = client();
    let requests: Vec<_> = (0..in_flight)
        .map(|i| {
            let (client, base, code) = (
                client.clone(),
                server.base.clone(),
                fake.code_for(&format!("oStop{i}")),
            );
            tokio::spawn(async move {
                login(&client, &base, &code)
                    .await
                    .map(|(s, _)| s)
                    .unwrap_or(0)
            })
        })
        .collect();
    // Every request has reached the server (and WeChat) before the signal.
    let deadline = Instant::now() + Duration::from_secs(10);
    while fake.calls().len() < in_flight && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stopped_at = Instant::now();
    server.terminate();
    let mut finished_ok = 0;
    for r in requests {
        if r.await.unwrap() == 200 {
            finished_ok += 1;
        }
    }
    let status = server.wait_exit(shutdown_timeout + Duration::from_secs(5));
    StopReport {
        in_flight,
        finished_ok,
        exit_code: status.and_then(|s| s.code()),
        stop_time: stopped_at.elapsed(),
        shutdown_timeout,
    }
}

/// Figures of the dead-upstream scenario.
pub struct SlowUpstreamReport {
    pub stuck: usize,
    pub ended_in_timeout: usize,
    pub probes: usize,
    pub probes_ok: usize,
    pub probes_while_stuck: usize,
    pub probe_p50: Duration,
    pub probe_max: Duration,
    pub stuck_time: Duration,
}

impl std::fmt::Display for SlowUpstreamReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "slow_upstream: stuck_logins={} ended_wechat_timeout={} probes(healthz,me,console)={} ok={} answered_while_stuck={} probe_p50={} probe_max={} stuck_for={:.2}s",
            self.stuck,
            self.ended_in_timeout,
            self.probes,
            self.probes_ok,
            self.probes_while_stuck,
            ms(self.probe_p50),
            ms(self.probe_max),
            self.stuck_time.as_secs_f64()
        )
    }
}

/// `stuck` logins on an upstream that never answers, while health, API and console are probed.
pub async fn slow_upstream(bin: &Path, dir: &Path, stuck: usize) -> SlowUpstreamReport {
    let fake = FakeWeChat::start().await;
    let db = dir.join("slow.db");
    let server = Server::start(bin, &db, &fake, &[("WECHAT_TIMEOUT_MS", "3000".into())]);
    let client = client();
    let code = fake.code_for("oSlowProbe");
    let (_, body) = login(&client, &server.base, &code).await.unwrap();
    let token = body["token"].as_str().unwrap().to_owned();

    fake.set_fault(Some(crate::helpers::Fault::Hang));
    let started = Instant::now();
    let pending = Arc::new(AtomicUsize::new(stuck));
    let logins: Vec<_> = (0..stuck)
        .map(|i| {
            let (client, base, code, pending) = (
                client.clone(),
                server.base.clone(),
                fake.code_for(&format!("oStuck{i}")),
                pending.clone(),
            );
            tokio::spawn(async move {
                let reply = login(&client, &base, &code).await;
                pending.fetch_sub(1, Ordering::SeqCst);
                reply
                    .map(|(_, b)| b["errcode"].as_str().unwrap_or("").to_owned())
                    .unwrap_or_default()
            })
        })
        .collect();
    while fake.calls().len() < stuck + 1 && started.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut latencies = Vec::new();
    let (mut probes_ok, mut probes_while_stuck) = (0, 0);
    for round in 0..10 {
        let _ = round;
        for request in [
            client.get(server.url("/healthz")),
            client.get(server.url("/api/v1/me")).bearer_auth(&token),
            client.get(server.url("/admin/login")),
        ] {
            let t = Instant::now();
            let ok = request.send().await.is_ok_and(|r| r.status() == 200);
            latencies.push(t.elapsed());
            if ok {
                probes_ok += 1;
            }
            if pending.load(Ordering::SeqCst) == stuck {
                probes_while_stuck += 1;
            }
        }
    }
    let mut ended_in_timeout = 0;
    for l in logins {
        if l.await.unwrap() == "wechat_timeout" {
            ended_in_timeout += 1;
        }
    }
    latencies.sort();
    SlowUpstreamReport {
        stuck,
        ended_in_timeout,
        probes: latencies.len(),
        probes_ok,
        probes_while_stuck,
        probe_p50: percentile(&latencies, 0.5),
        probe_max: latencies.last().copied().unwrap_or_default(),
        stuck_time: started.elapsed(),
    }
}

/// Runs `wxlogin admin …` on the database at `db_path` with `password` on stdin.
pub fn admin_command(
    bin: &Path,
    db_path: &Path,
    args: &[&str],
    password: &str,
) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(bin)
        .args(args)
        .arg("--password-stdin")
        .env_clear()
        .env("DATABASE_URL", db_path)
        .current_dir(db_path.parent().unwrap())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// A cookie-keeping client that does not follow redirects.
pub fn browser() -> CookieClient {
    CookieClient::new(reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()))
}

/// Signs `browser` in and returns the status of the sign-in form's answer.
pub async fn console_sign_in(
    browser: &CookieClient,
    server: &Server,
    username: &str,
    password: &str,
) -> u16 {
    let page = browser
        .send(browser.get(server.url("/admin/login")))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = crate::helpers::extract_csrf(&page).expect("a CSRF token on the sign-in page");
    browser
        .send(browser.post(server.url("/admin/login")).form(&[
            ("csrf", csrf.as_str()),
            ("username", username),
            ("password", password),
        ]))
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Every secret a full scenario handled, and the log the server wrote meanwhile.
pub struct SecretsReport {
    pub log: String,
    pub secrets: Vec<(String, String)>,
    pub log_lines: usize,
}

impl SecretsReport {
    /// The secrets that appear in the log, with the line they appear on.
    pub fn leaks(&self) -> Vec<String> {
        let mut found = Vec::new();
        for (kind, secret) in &self.secrets {
            for line in self.log.lines().filter(|l| l.contains(secret.as_str())) {
                found.push(format!("{kind} in: {line}"));
            }
        }
        found
    }
}

/// Logins (JSON, form, query string, errors), profile changes, logout and a console session
/// with a user disabled, with the server logging at `rust_log`.
pub async fn secrets_in_log(bin: &Path, dir: &Path, rust_log: &str) -> SecretsReport {
    let fake = FakeWeChat::start().await;
    let db = dir.join("secrets.db");
    let admin_password = "console-password-4417";
    let created = admin_command(bin, &db, &["admin", "create", "ops"], admin_password);
    assert!(
        created.status.success(),
        "admin create failed: {}",
        String::from_utf8_lossy(&created.stderr)
    );
    let server = Server::start(bin, &db, &fake, &[("RUST_LOG", rust_log.to_owned())]);
    let client = client();
    let mut secrets: Vec<(String, String)> = vec![
        ("AppSecret".into(), SECRET.into()),
        ("admin password".into(), admin_password.into()),
    ];
    let mut tokens = Vec::new();

    let code = fake.code_for("oSecretJson");
    secrets.push(("code".into(), code.clone()));
    let (_, body) = login(&client, &server.base, &code).await.unwrap();
    tokens.push(body["token"].as_str().unwrap().to_owned());

    let code = fake.code_with_unionid("oSecretQuery", "uSecretUnion");
    secrets.push(("code".into(), code.clone()));
    let body: Value = client
        .get(server.url("/api/v1/login"))
        .query(&[("code", code.as_str()), ("user_name", "查询")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    tokens.push(body["token"].as_str().unwrap().to_owned());

    let code = fake.code_for("oSecretForm");
    secrets.push(("code".into(), code.clone()));
    let body: Value = client
        .post(server.url("/api/v1/login"))
        .form(&[("code", code.as_str())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let user_id = body["user"]["id"].as_i64().unwrap();
    tokens.push(body["token"].as_str().unwrap().to_owned());

    // Failures: an unknown code, a used one, a malformed one.
    for bad in ["0unknownCodeXYZ123", &code, "has space"] {
        secrets.push(("code".into(), bad.to_owned()));
        let _ = client
            .get(server.url("/api/v1/login"))
            .query(&[("code", bad)])
            .send()
            .await;
    }

    let token = tokens[0].clone();
    for request in [
        client.get(server.url("/api/v1/me")).bearer_auth(&token),
        client
            .patch(server.url("/api/v1/me"))
            .bearer_auth(&token)
            .json(&json!({"nickname": "改名"})),
        client
            .get(server.url("/api/v1/me"))
            .bearer_auth("wxl_notARealTokenButLooksLikeOne0000"),
        client
            .post(server.url("/api/v1/logout"))
            .bearer_auth(&token),
        client.get(server.url("/api/v1/me")).bearer_auth(&token),
    ] {
        let _ = request.send().await;
    }

    let signed_in = browser();
    assert_eq!(
        console_sign_in(&signed_in, &server, "ops", admin_password).await,
        303
    );
    assert_eq!(
        console_sign_in(&browser(), &server, "ops", "wrong-password-xyz").await,
        401
    );
    secrets.push(("wrong admin password".into(), "wrong-password-xyz".into()));
    let page = signed_in
        .send(signed_in.get(server.url(&format!("/admin/users/{user_id}"))))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = crate::helpers::extract_csrf(&page).unwrap();
    secrets.push(("CSRF token".into(), csrf.clone()));
    let disabled = signed_in
        .send(
            signed_in
                .post(server.url(&format!("/admin/users/{user_id}/disable")))
                .form(&[("csrf", csrf.as_str()), ("reason", "log test")]),
        )
        .await
        .unwrap();
    assert_eq!(disabled.status(), 303);
    let _ = client
        .get(server.url("/api/v1/me"))
        .bearer_auth(&tokens[2])
        .send()
        .await;
    let _ = signed_in
        .send(signed_in.get(server.url("/admin/users?q=oSecretForm")))
        .await;

    for key in fake.session_keys() {
        secrets.push(("session_key".into(), key));
    }
    for t in tokens {
        // The secret half is what must not leak (a token's login id is no secret).
        let secret = t.rsplit('_').next().unwrap_or(&t).to_owned();
        secrets.push(("token".into(), secret));
    }
    server_log_settle().await;
    let log = server.log();
    SecretsReport {
        log_lines: log.lines().count(),
        log,
        secrets,
    }
}

/// Lets the last access-log lines reach the pipe.
async fn server_log_settle() {
    tokio::time::sleep(Duration::from_millis(200)).await;
}
