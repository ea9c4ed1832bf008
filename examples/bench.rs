//! The performance benchmark:
//!
//!     cargo run --release --example bench [-- --seconds 5 --runs 3 --console-users 1000000]
//!         [--only new-users,floor-login] [--server PATH/TO/wxlogin]
//!     cargo run --release --example bench -- --callgrind 10   (instructions a login, valgrind)
//!     cargo run --release --example bench -- --callgrind-floor 10   (the same of the floor)
//!     cargo run --release --example bench -- --help
//!
//! Builds the release server and runs it as its own process; this program re-runs itself as
//! two more processes: a fake WeChat (JSON as text/plain, a fresh random-looking openid per
//! new code) and the floor server (a minimal actix app whose `/floor/login` makes only the
//! code2Session call, and `/floor/static` answers fixed JSON). Load comes from 64 keep-alive
//! HTTP/1.1 connections written by hand, so the generator stays cheap. Every scenario runs
//! `--runs` times for `--seconds`, a round of all scenarios at a time; the median run is
//! printed, then the ratios that matter.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[path = "../tests/common/cookie_client.rs"]
mod cookie_client;
use cookie_client::CookieClient;

const CONNECTIONS: usize = 64;
const RETURNING_USERS: usize = 1000;

// ---------------------------------------------------------------- child processes

/// A child process that printed "listening on http://ADDR" first.
struct Proc {
    child: Child,
    addr: String,
}

impl Proc {
    /// Starts `command` and waits for "listening on http://ADDR" on stdout or stderr.
    fn spawn(mut command: Command) -> Proc {
        command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        let mut child = command.spawn().expect("a benchmark process starts");
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let out: Box<dyn std::io::Read + Send> = Box::new(child.stdout.take().unwrap());
        let err: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().unwrap());
        for stream in [out, err] {
            let tx = tx.clone();
            // Reads to the end, so the child never blocks on a full pipe: line by line until
            // the address, then in bulk. Read as lines all along, the server's access log
            // cost this process a string and a search per request, which the load
            // generator's CPU figure counted against the login scenarios.
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                    if let Some(rest) = line.split("listening on http://").nth(1) {
                        let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
                        break;
                    }
                    line.clear();
                }
                let _ = std::io::copy(&mut reader, &mut std::io::sink());
            });
        }
        // Wrapped at once, so a process that never says where it listens is stopped too.
        let mut proc = Proc {
            child,
            addr: String::new(),
        };
        proc.addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("a benchmark process did not start listening");
        proc
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    /// Stops the process as a deployment does, with SIGTERM, and SIGKILL only if it is still
    /// running 20 s later. Killed outright, a server left its WAL behind, so the next run's
    /// server read it back at start and its upkeep thread copied it all into the database
    /// again while that run was being measured: each scenario with a database paid for the
    /// run before it (three benches of each way, taking turns: CPU per request of new-users
    /// 103-114 us against 97-105 with graceful stops, of returning-users 92-104 against
    /// 90-93; `me`'s peak RSS 20.2 MiB against 17.0).
    fn drop(&mut self) {
        // SAFETY: kill(2) with a child's pid, which we have not reaped yet, so it is ours.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let asked = Instant::now();
        while asked.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A kB figure from /proc/PID/status (`VmRSS`, `VmHWM`), in MiB.
fn proc_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// The wxlogin server on `db`, and how long after spawning it answered `/healthz`.
fn start_server(bin: &Path, db: &Path, wechat_base: &str) -> (Proc, Duration) {
    let mut command = Command::new(bin);
    configure_server(&mut command, db, wechat_base);
    let started = Instant::now();
    let proc = Proc::spawn(command);
    wait_ready(&proc.addr);
    (proc, started.elapsed())
}

/// The environment the server runs in, on `db`, against the WeChat at `wechat_base`.
fn configure_server(command: &mut Command, db: &Path, wechat_base: &str) {
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("BIND_ADDR", "127.0.0.1:0")
        .env("DATABASE_URL", db)
        .env("WECHAT_APPID", "wxbenchappid")
        .env("WECHAT_SECRET", "bench-secret")
        .env("WECHAT_API_BASE", wechat_base)
        .env("LOGIN_RATE_PER_MIN", "0")
        // The access log costs a line per request; a deployment keeps it, so does the bench.
        .env("RUST_LOG", "info")
        .current_dir(db.parent().unwrap());
}

fn wait_ready(addr: &str) {
    let started = Instant::now();
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
            let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n");
            let mut buf = String::new();
            let _ = std::io::Read::read_to_string(&mut s, &mut buf);
            if buf.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the server never became ready"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

// ---------------------------------------------------------------- fake WeChat and floor

/// code2Session as WeChat answers it: a code `rK_…` logs in returning user K, any other
/// code a user of its own.
fn fake_reply(query: &str) -> String {
    let code = query
        .split('&')
        .find_map(|p| p.strip_prefix("js_code="))
        .unwrap_or("");
    let openid = match code.strip_prefix('r') {
        Some(rest) => format!("oReturning{}", rest.split('_').next().unwrap_or("0")),
        None => wechat_like_openid(code),
    };
    format!(r#"{{"openid":"{openid}","session_key":"c2Vzc2lvbmtleXNlc3Npb24="}}"#)
}

/// The openid of the user that `code` logs in, shaped like WeChat's: 28 URL-safe base64
/// characters, six shared by every user of the mini-program and 22 that look random (a hash
/// of the code). Real openids come in no order, so each new user goes into the openid index
/// at a random place. Openids made from the codes (`oNew_nu{run}_{connection}_{n}`) went in
/// at 64 places, one per connection, and flattered the insert path: in a minute of new users
/// the login writer's CPU per login read 23-27 µs and the upkeep thread's 4.4-5.4 with them,
/// against 29-31 and 8.6-9.6 with random-looking ones, and logins a second 14.3k against
/// 12.0k (medians of three runs each way).
fn wechat_like_openid(code: &str) -> String {
    use sha2::{Digest, Sha256};
    const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let hash = Sha256::digest(code.as_bytes());
    let mut openid = String::with_capacity(28);
    openid.push_str("oBench");
    // 22 characters of 6 bits: the hash's first 132 bits.
    for i in 0..22 {
        let bit = i * 6;
        let pair = u16::from_be_bytes([hash[bit / 8], hash[bit / 8 + 1]]);
        let sextet = (pair >> (10 - bit % 8)) & 63;
        openid.push(URL_SAFE[usize::from(sextet)] as char);
    }
    openid
}

async fn serve_fake() -> std::io::Result<()> {
    use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
    let server = HttpServer::new(|| {
        App::new().route(
            "/sns/jscode2session",
            web::get().to(|req: HttpRequest| async move {
                HttpResponse::Ok()
                    .content_type("text/plain")
                    .body(fake_reply(req.query_string()))
            }),
        )
    })
    .workers(1)
    .bind("127.0.0.1:0")?;
    println!("listening on http://{}", server.addrs()[0]);
    server.run().await
}

/// The floor's login request: only the code.
#[derive(serde::Deserialize)]
struct FloorLogin {
    code: String,
}

/// What the floor reads of the code2Session reply.
#[derive(serde::Deserialize)]
struct FloorSession {
    openid: Option<String>,
}

/// The floor's login reply.
#[derive(serde::Serialize)]
struct FloorReply {
    ret: bool,
    openid: Option<String>,
}

async fn serve_floor(wechat_base: String) -> std::io::Result<()> {
    use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
    // Built as the product builds its client: no redirects, and one client per worker, so
    // that a pooled connection is always used by the thread that drives it; and with
    // reqwest's features as the product has them (no cookie layer: see
    // tests/common/cookie_client.rs). The URL is parsed once and JSON goes through typed
    // structs, as the product does: the floor should not pay for work the product avoids.
    let url = reqwest::Url::parse(&format!("{wechat_base}/sns/jscode2session")).unwrap();
    let server = HttpServer::new(move || {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let url = url.clone();
        App::new()
            .route(
                "/floor/login",
                web::post().to(move |body: web::Bytes| {
                    let (http, url) = (http.clone(), url.clone());
                    async move {
                        let code = serde_json::from_slice::<FloorLogin>(&body)
                            .map(|login| login.code)
                            .unwrap_or_default();
                        let reply = http
                            .get(url)
                            .query(&[
                                ("appid", "wx"),
                                ("secret", "s"),
                                ("js_code", &code),
                                ("grant_type", "authorization_code"),
                            ])
                            .send()
                            .await;
                        match reply {
                            Ok(r) => {
                                let bytes = r.bytes().await.unwrap_or_default();
                                let openid = serde_json::from_slice::<FloorSession>(&bytes)
                                    .ok()
                                    .and_then(|session| session.openid);
                                HttpResponse::Ok().json(FloorReply { ret: true, openid })
                            }
                            Err(_) => HttpResponse::BadGateway().finish(),
                        }
                    }
                }),
            )
            .route(
                "/floor/static",
                // Fixed bytes: building a JSON value per request would be work of its own.
                web::get().to(|_: HttpRequest| async {
                    HttpResponse::Ok()
                        .content_type("application/json")
                        .body(r#"{"ret":true,"user":{"id":1,"openid":"o"}}"#)
                }),
            )
    })
    .bind("127.0.0.1:0")?;
    println!("listening on http://{}", server.addrs()[0]);
    server.run().await
}

// ---------------------------------------------------------------- load generator

/// Builds request `seq` of connection `conn`.
type MakeRequest = Arc<dyn Fn(usize, u64) -> Vec<u8> + Send + Sync>;

fn post_json(path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\nUser-Agent: wxlogin-bench\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn get(path: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: bench\r\nUser-Agent: wxlogin-bench\r\n{extra}\r\n")
        .into_bytes()
}

/// Reads one response; returns its status and body.
async fn read_response(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> std::io::Result<(u16, Vec<u8>)> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).unwrap_or("");
            let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            let total = end + 4 + length;
            while buf.len() < total {
                let mut chunk = [0u8; 16384];
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = buf[end + 4..total].to_vec();
            buf.drain(..total);
            return Ok((status, body));
        }
        let mut chunk = [0u8; 16384];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A scenario's name and what runs it once.
type Scenario<'a> = (&'static str, Box<dyn Fn() -> Run + 'a>);

/// Figures of one run.
#[derive(Clone, Debug)]
struct Run {
    errors: u64,
    requests: u64,
    rps: f64,
    p50: Duration,
    p99: Duration,
    peak_rss_mib: f64,
    /// CPU time (user + system) the serving process spent per request answered.
    cpu_us_per_request: f64,
    /// Share of the machine's CPU time nobody used during the run (idle or waiting for the
    /// disk): above a few percent, something waited rather than computed.
    idle_share: f64,
    /// That CPU time per request by thread name (the kernel's first 15 characters, so the
    /// workers share one), most first: which stage a change moved.
    threads: Vec<(String, f64)>,
    /// CPU per request of the rest of the machine's work: the load generator (this
    /// process) and the fake WeChat.
    others: Vec<(&'static str, f64)>,
}

/// The fake WeChat's process, for its CPU figure.
static FAKE_PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();

async fn drive(addr: &str, make: MakeRequest, seconds: f64) -> Run {
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|conn| {
            let (addr, make, stop, errors) =
                (addr.to_owned(), make.clone(), stop.clone(), errors.clone());
            tokio::spawn(async move {
                let mut latencies: Vec<u32> = Vec::with_capacity(100_000);
                let mut stream = TcpStream::connect(&addr).await.expect("connect");
                stream.set_nodelay(true).ok();
                let mut buf = Vec::with_capacity(16384);
                let mut seq = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let request = make(conn, seq);
                    seq += 1;
                    let t = Instant::now();
                    let ok = match stream.write_all(&request).await {
                        Ok(()) => {
                            matches!(read_response(&mut stream, &mut buf).await, Ok((200, _)))
                        }
                        Err(_) => false,
                    };
                    latencies.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    if !ok {
                        errors.fetch_add(1, Ordering::Relaxed);
                        stream = TcpStream::connect(&addr).await.expect("reconnect");
                        buf.clear();
                    }
                }
                latencies
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let pick = |p: f64| {
        Duration::from_micros(
            all.get(((all.len() as f64 - 1.0) * p) as usize)
                .copied()
                .unwrap_or(0) as u64,
        )
    };
    Run {
        errors: errors.load(Ordering::Relaxed),
        requests: all.len() as u64,
        rps: all.len() as f64 / elapsed,
        p50: pick(0.5),
        p99: pick(0.99),
        peak_rss_mib: f64::NAN,
        cpu_us_per_request: f64::NAN,
        idle_share: f64::NAN,
        threads: Vec::new(),
        others: Vec::new(),
    }
}

/// CPU seconds (user + system) process `pid` has used so far, from /proc (in clock ticks,
/// which Linux gives user space at 100 a second).
fn proc_cpu_secs(pid: u32) -> f64 {
    stat_cpu_secs(&format!("/proc/{pid}/stat"))
}

/// CPU seconds so far of each of process `pid`'s threads, summed by thread name.
fn thread_cpu_secs(pid: u32) -> std::collections::BTreeMap<String, f64> {
    let mut by_name = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return by_name;
    };
    for task in tasks.flatten() {
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let secs = stat_cpu_secs(&task.path().join("stat").to_string_lossy());
        if secs.is_finite() {
            *by_name.entry(name.trim().to_owned()).or_insert(0.0) += secs;
        }
    }
    by_name
}

/// User + system CPU seconds in a /proc `stat` file.
fn stat_cpu_secs(path: &str) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // The command name, in parentheses, may hold spaces: count fields after it.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    // utime and stime are the 14th and 15th fields; the 3rd is the first after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// The machine's (idle + iowait, total) CPU time so far, from the first line of /proc/stat.
fn machine_idle_and_total() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let times: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...: guests are counted in user already.
    let total = times.iter().take(8).sum();
    (
        times.get(3).unwrap_or(&0.0) + times.get(4).unwrap_or(&0.0),
        total,
    )
}

/// Drives `make` against `target` and adds that process's peak RSS and CPU per request: the
/// CPU figure holds far better than throughput on a shared machine, and tells a change to
/// the product apart from a change in the machine's speed.
fn measured(rt: &tokio::runtime::Runtime, target: &Proc, make: MakeRequest, seconds: f64) -> Run {
    let cpu_before = proc_cpu_secs(target.pid());
    let threads_before = thread_cpu_secs(target.pid());
    let (idle_before, total_before) = machine_idle_and_total();
    let others = |target: u32| {
        let mut pids = vec![("load generator", std::process::id())];
        pids.extend(
            FAKE_PID
                .get()
                .filter(|&&p| p != target)
                .map(|&p| ("fake WeChat", p)),
        );
        pids
    };
    let others_before: Vec<f64> = others(target.pid())
        .iter()
        .map(|(_, pid)| proc_cpu_secs(*pid))
        .collect();
    let mut r = rt.block_on(drive(&target.addr, make, seconds));
    let (idle_after, total_after) = machine_idle_and_total();
    r.idle_share = (idle_after - idle_before) / (total_after - total_before).max(1.0);
    let per_request = 1e6 / (r.requests.max(1) as f64);
    r.cpu_us_per_request = (proc_cpu_secs(target.pid()) - cpu_before) * per_request;
    r.others = others(target.pid())
        .into_iter()
        .zip(others_before)
        .map(|((name, pid), before)| (name, (proc_cpu_secs(pid) - before) * per_request))
        .collect();
    // Threads that ended during the run are missing here (the process figure has them).
    r.threads = thread_cpu_secs(target.pid())
        .into_iter()
        .map(|(name, after)| {
            let before = threads_before.get(&name).copied().unwrap_or(0.0);
            (name, (after - before) * per_request)
        })
        .filter(|(_, us)| *us >= 0.5)
        .collect();
    r.threads.sort_by(|a, b| b.1.total_cmp(&a.1));
    r.peak_rss_mib = proc_mib(target.pid(), "VmHWM");
    r
}

/// How long the `sustained` scenario keeps new users logging in.
const SUSTAINED_SECONDS: f64 = 60.0;

/// Logins at the floor's `/floor/login`, each with a fresh code, run `id` of them.
fn floor_logins(id: u64) -> MakeRequest {
    Arc::new(move |c, s| post_json("/floor/login", &format!(r#"{{"code":"fl{id}_{c}_{s}"}}"#)))
}

/// Logins of new users (a code never seen before), run `id` of them.
fn new_user_logins(id: u64) -> MakeRequest {
    Arc::new(move |c, s| {
        post_json(
            "/api/v1/login",
            &format!(r#"{{"code":"nu{id}_{c}_{s}","nickname":"新用户"}}"#),
        )
    })
}

fn median_run(mut runs: Vec<Run>) -> Run {
    runs.sort_by(|a, b| a.rps.total_cmp(&b.rps));
    let mut m = runs[runs.len() / 2].clone();
    m.errors = runs.iter().map(|r| r.errors).sum();
    m.peak_rss_mib = runs.iter().map(|r| r.peak_rss_mib).fold(f64::NAN, f64::max);
    m
}

fn print_run(name: &str, run: &Run) {
    println!(
        "{name:<16} {:>9.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  p99/p50 {:>4.1}  errors {:>3}  peak RSS {:>6.1} MiB  CPU {:>5.1} us/req  idle {:>3.0}%",
        run.rps,
        run.p50.as_secs_f64() * 1000.0,
        run.p99.as_secs_f64() * 1000.0,
        run.p99.as_secs_f64() / run.p50.as_secs_f64().max(1e-9),
        run.errors,
        run.peak_rss_mib,
        run.cpu_us_per_request,
        run.idle_share * 100.0
    );
    // CPU per request by part, on a line of its own: `what` names the parts.
    let parts = |what: &str, parts: Vec<(&str, f64)>| {
        let each: Vec<String> = parts
            .iter()
            .map(|(name, us)| format!("{name} {us:.1}"))
            .collect();
        println!("{:<16} {what}: {}", "", each.join(", "));
    };
    if run.threads.len() > 1 {
        parts(
            "CPU us/req by thread",
            run.threads
                .iter()
                .map(|(n, us)| (n.as_str(), *us))
                .collect(),
        );
    }
    if !run.others.is_empty() {
        parts("other CPU us/req", run.others.clone());
    }
}

// ---------------------------------------------------------------- instructions per login

/// What `--callgrind` counts the instructions of.
#[derive(Clone, Copy)]
enum Counted<'a> {
    /// The server (its new users' logins).
    Server(&'a Path),
    /// The floor server, this program re-run (its logins): how many of the server's
    /// instructions any login would need.
    Floor(&'a Path),
}

/// `--callgrind SECONDS` (or `--callgrind-floor SECONDS`): runs the server (or the floor)
/// under valgrind's callgrind, warms it up with three seconds of logins (new users' for the
/// server), then counts the instructions each of its threads runs during `seconds` more of
/// them, and prints them per login. Unlike time, instruction counts hold
/// still on a noisy machine, so they show changes of a percent or two; but they leave out
/// what the kernel does and how threads wait for each other.
fn callgrind_logins(
    rt: &tokio::runtime::Runtime,
    target: Counted,
    dir: &Path,
    wechat_base: &str,
    seconds: f64,
) {
    let out = dir.join("callgrind.out");
    let mut command = Command::new("valgrind");
    command
        .args(["--tool=callgrind", "--separate-threads=yes"])
        .arg(format!("--callgrind-out-file={}", out.display()));
    let logins: fn(u64) -> MakeRequest = match target {
        Counted::Server(bin) => {
            command.arg(bin);
            configure_server(&mut command, &dir.join("callgrind.db"), wechat_base);
            new_user_logins
        }
        Counted::Floor(me) => {
            command.arg(me).args(["--serve-floor", wechat_base]);
            floor_logins
        }
    };
    if Command::new("valgrind").arg("--version").output().is_err() {
        panic!("--callgrind needs valgrind (Debian: apt-get install valgrind)");
    }
    let server = Proc::spawn(command);
    if let Counted::Server(_) = target {
        wait_ready(&server.addr);
    }
    rt.block_on(drive(&server.addr, logins(u64::MAX - 1), 3.0));
    let control = |what: &str| {
        let done = Command::new("callgrind_control")
            .args([what, &server.pid().to_string()])
            .output()
            .expect("callgrind_control (valgrind's) runs");
        assert!(done.status.success(), "callgrind_control {what} failed");
    };
    control("-z");
    let run = rt.block_on(drive(&server.addr, logins(u64::MAX), seconds));
    control("-d");
    // The threads' names, in the order they were started (valgrind numbers threads so).
    let mut tasks: Vec<u32> = std::fs::read_dir(format!("/proc/{}/task", server.pid()))
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    tasks.sort_unstable();
    let name = |thread: usize| {
        tasks
            .get(thread.wrapping_sub(1))
            .map_or(String::new(), |tid| {
                std::fs::read_to_string(format!("/proc/{}/task/{tid}/comm", server.pid()))
                    .unwrap_or_default()
                    .trim()
                    .to_owned()
            })
    };
    println!(
        "callgrind: {} {} in {seconds} s (after 3 s of warm-up); instructions a login by thread:",
        run.requests,
        match target {
            Counted::Server(_) => "new users' logins",
            Counted::Floor(_) => "floor logins",
        }
    );
    let prefix = format!("{}.1-", out.file_name().unwrap().to_string_lossy());
    let mut dumps: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
        })
        .collect();
    dumps.sort();
    for dump in dumps {
        let text = std::fs::read_to_string(&dump).unwrap_or_default();
        let field = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let (Some(thread), Some(instructions)) = (field("thread:"), field("summary:")) else {
            continue;
        };
        if instructions > 0 {
            println!(
                "  thread {thread:>2} {:<16} {:>10.0}",
                name(thread as usize),
                instructions as f64 / run.requests.max(1) as f64
            );
        }
    }
}

// ---------------------------------------------------------------- console at scale

fn seed(db: &Path, users: u64, logins_per_user: u64) -> Duration {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let started = Instant::now();
    // The server's own migrations make the schema.
    drop(wxlogin::db::connect(db.to_str().unwrap()).expect("the database opens"));
    let mut conn = wxlogin::db::DbConnection::establish(db.to_str().unwrap()).unwrap();
    conn.batch_execute(&format!(
        "PRAGMA synchronous = OFF;
         BEGIN;
         WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < {users})
         INSERT INTO users (id, openid, unionid, session_key, nickname, avatar_url, disabled_at,
                            disabled_reason, login_count, created_at, updated_at, last_login_at,
                            last_login_id)
         SELECT n, 'oSeed' || printf('%07d', n), CASE WHEN n % 3 = 0 THEN 'uSeed' || n END,
                'c2Vzc2lvbmtleQ==', '用户' || n || CASE n % 4 WHEN 0 THEN '猫' WHEN 1 THEN 'panda' WHEN 2 THEN '🐼' ELSE 'x' END,
                'https://thirdwx.qlogo.cn/mmopen/' || n || '/132',
                CASE WHEN n % 50 = 0 THEN datetime('now') END, CASE WHEN n % 50 = 0 THEN 'seeded' END,
                {logins_per_user},
                datetime('now', '-' || ((({users} - n) * 400) / {users}) || ' days', '-' || (n % 86400) || ' seconds'),
                datetime('now'),
                datetime('now', '-' || (n % 90) || ' days', '-' || (n % 3600) || ' seconds'),
                -- Login n is user (n % users) + 1's (below): each user's latest.
                CASE WHEN n = 1 THEN {users} * {logins_per_user}
                     ELSE n - 1 + ({logins_per_user} - 1) * {users} END
         FROM seq;
         WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < {users} * {logins_per_user})
         INSERT INTO logins (id, user_id, logged_in_at, ip, user_agent, previous_login_id)
         SELECT n, (n % {users}) + 1, datetime('now', '-' || (n % 720) || ' hours'), '10.0.' || (n % 250) || '.' || (n % 200),
                'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) MicroMessenger/8.0.50',
                CASE WHEN n > {users} THEN n - {users} END
         FROM seq;
         COMMIT;
         -- What the login writer's batches would have built as these users arrived.
         INSERT INTO users_nickname_fts (users_nickname_fts) VALUES ('rebuild');
         UPDATE users_nickname_fts_progress SET indexed_through = (SELECT MAX(id) FROM users);
         INSERT INTO user_openids (openid, user_id) SELECT openid, id FROM users ORDER BY openid;
         UPDATE user_openids_progress SET indexed_through = (SELECT MAX(id) FROM users);"
    ))
    .expect("seeding");
    // The short-term index, as a server catching up after the upgrade that added it would.
    let pairs = Instant::now();
    wxlogin::db::index_nicknames_now(&mut conn).expect("indexing the seeded nicknames");
    println!(
        "console: one- and two-character index of {users} nicknames built in {:.1} s, \
         {} users per batch",
        pairs.elapsed().as_secs_f64(),
        wxlogin::db::NICKNAMES_PER_BATCH
    );
    conn.batch_execute("PRAGMA wal_checkpoint(TRUNCATE);")
        .expect("checkpointing the seeded database");
    started.elapsed()
}

async fn console(bin: &Path, dir: &Path, wechat_base: &str, users: u64, samples: usize) {
    let db = dir.join("console.db");
    println!(
        "console: seeding {users} users and {} logins ...",
        users * 5
    );
    let took = seed(&db, users, 5);
    println!(
        "console: seeded in {:.1} s ({:.0} MiB file)",
        took.as_secs_f64(),
        std::fs::metadata(&db)
            .map(|m| m.len() as f64 / 1048576.0)
            .unwrap_or(0.0)
    );
    let mut create = Command::new(bin);
    create
        .args(["admin", "create", "bench", "--password-stdin"])
        .env_clear()
        .env("DATABASE_URL", &db)
        .stdin(Stdio::piped())
        .stdout(Stdio::null());
    let mut child = create.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"bench-password-123\n")
        .unwrap();
    assert!(child.wait().unwrap().success(), "admin create failed");

    let (server, ready) = start_server(bin, &db, wechat_base);
    println!(
        "console: ready {:.0} ms after start on the seeded database",
        ready.as_secs_f64() * 1000.0
    );
    let base = format!("http://{}", server.addr);
    let browser =
        CookieClient::new(reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()));
    let page = browser
        .send(browser.get(format!("{base}/admin/login")))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = page
        .split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    let signed = browser
        .send(browser.post(format!("{base}/admin/login")).form(&[
            ("csrf", csrf.as_str()),
            ("username", "bench"),
            ("password", "bench-password-123"),
        ]))
        .await
        .unwrap();
    assert_eq!(signed.status(), 303, "signing in to the console failed");
    let deep = users / 20 / 2;
    // The issue's pages at `samples` requests each, then the harder cases an admin can also
    // reach (fewer requests, as some are slow on purpose: they show the limits).
    let few = (samples / 5).max(5);
    let pages = [
        ("users first page", "/admin/users".to_owned(), samples),
        (
            "users deep page",
            format!("/admin/users?page={deep}"),
            samples,
        ),
        (
            "nickname search",
            "/admin/users?q=panda".to_owned(),
            samples,
        ),
        (
            "openid lookup",
            format!("/admin/users?q=oSeed{:07}", users / 2),
            samples,
        ),
        (
            "user detail",
            format!("/admin/users/{}", users / 3),
            samples,
        ),
        ("dashboard", "/admin".to_owned(), samples),
        (
            "rare nickname",
            format!("/admin/users?q=%E7%94%A8%E6%88%B7{}", users / 7),
            few,
        ),
        (
            "short term (1 char)",
            "/admin/users?q=%E7%8C%AB".to_owned(),
            few,
        ),
        ("short absent term", "/admin/users?q=zz".to_owned(), few),
        (
            "deep page, active",
            format!("/admin/users?status=active&page={deep}"),
            few,
        ),
        (
            "deep, last login",
            format!("/admin/users?sort=last_login_desc&page={deep}"),
            few,
        ),
    ];
    for (name, path, samples) in pages {
        let mut times = Vec::new();
        let mut errors = 0;
        for _ in 0..samples {
            let t = Instant::now();
            let ok = browser
                .send(browser.get(format!("{base}{path}")))
                .await
                .is_ok_and(|r| r.status() == 200);
            times.push(t.elapsed());
            if !ok {
                errors += 1;
            }
        }
        times.sort();
        println!(
            "console {name:<19} p50 {:>8.2} ms  p99 {:>8.2} ms  errors {errors}  ({samples} requests, {path})",
            times[samples / 2].as_secs_f64() * 1000.0,
            times[(samples * 99) / 100].as_secs_f64() * 1000.0
        );
    }
    println!(
        "console: server peak RSS {:.1} MiB",
        proc_mib(server.pid(), "VmHWM")
    );
}

// ---------------------------------------------------------------- main

fn release_binary() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--bin", "wxlogin"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("running cargo build");
    assert!(status.success(), "cargo build --release failed");
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("release/wxlogin")
}

/// The scenarios `--only` may name: those of a round, in its order, then the rest.
const SCENARIOS: [&str; 9] = [
    "fake-wechat",
    "floor-static",
    "floor-login",
    "new-users",
    "returning-users",
    "me",
    "startup",
    "sustained",
    "console",
];

/// Options that take a value; there are no others.
const OPTIONS: [&str; 7] = [
    "--seconds",
    "--runs",
    "--console-users",
    "--only",
    "--server",
    "--callgrind",
    "--callgrind-floor",
];

/// Exits with `message` and the usage: a typo must not start a bench of several minutes
/// with the defaults.
fn usage_error(message: &str) -> ! {
    eprintln!("bench: {message}\n\n{}", usage());
    std::process::exit(2)
}

/// The options, and the scenarios `--only` takes.
fn usage() -> String {
    format!(
        "usage: bench [--seconds S] [--runs N] [--console-users N] [--only SCENARIO,...]\n\
         \x20            [--server PATH/TO/wxlogin]\n\
         \x20      bench --callgrind SECONDS | --callgrind-floor SECONDS\n\
         scenarios: {}",
        SCENARIOS.join(", ")
    )
}

/// What the command line asks for, once checked.
#[derive(Debug, PartialEq)]
enum Invocation {
    Help,
    Run,
}

/// Checks the command line: every option known, each with a value, `--only` naming
/// scenarios that exist.
fn check_args(args: &[String]) -> Result<Invocation, String> {
    let mut rest = args.iter().skip(1);
    while let Some(a) = rest.next() {
        if a == "--help" || a == "-h" {
            return Ok(Invocation::Help);
        }
        if !OPTIONS.contains(&a.as_str()) {
            return Err(format!("unknown argument {a:?}"));
        }
        let value = rest.next().ok_or_else(|| format!("{a} needs a value"))?;
        if a == "--only" {
            if let Some(name) = value.split(',').find(|n| !SCENARIOS.contains(n)) {
                return Err(format!("--only: no scenario is called {name:?}"));
            }
        }
    }
    Ok(Invocation::Run)
}

/// The value of option `name`, or `default` when `name` is absent; a value that does not
/// parse is an error. Reads the arguments as [`check_args`] does, option and value in turn,
/// so a value that looks like an option (`--server --runs`) is not taken for one.
fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> Result<T, String> {
    let mut pairs = args.get(1..).unwrap_or_default().chunks(2);
    match pairs.find(|pair| pair[0] == name) {
        None => Ok(default),
        Some(pair) => {
            let value = pair.get(1).ok_or_else(|| format!("{name} needs a value"))?;
            value
                .parse()
                .map_err(|_| format!("{name} {value:?} is not a valid value"))
        }
    }
}

/// [`arg`], exiting with the usage when the value is bad.
fn arg_or_exit<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    arg(args, name, default).unwrap_or_else(|e| usage_error(&e))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    if args.get(1).map(String::as_str) == Some("--serve-fake") {
        return actix_web::rt::System::new().block_on(serve_fake()).unwrap();
    }
    if args.get(1).map(String::as_str) == Some("--serve-floor") {
        return actix_web::rt::System::new()
            .block_on(serve_floor(args[2].clone()))
            .unwrap();
    }
    match check_args(&args) {
        Ok(Invocation::Help) => {
            println!("{}", usage());
            return;
        }
        Ok(Invocation::Run) => {}
        Err(e) => usage_error(&e),
    }
    let seconds: f64 = arg_or_exit(&args, "--seconds", 5.0);
    let runs: usize = arg_or_exit(&args, "--runs", 3);
    if !(seconds.is_finite() && seconds > 0.0) {
        usage_error("--seconds must be more than 0");
    }
    if runs == 0 {
        usage_error("--runs must be at least 1");
    }
    let console_users: u64 = arg_or_exit(&args, "--console-users", 1_000_000);
    let only: String = arg_or_exit(&args, "--only", String::new());
    // Another build of the server (a copy of an earlier commit's, say) instead of this tree's.
    let server: String = arg_or_exit(&args, "--server", String::new());
    let bin = if server.is_empty() {
        release_binary()
    } else {
        // Absolute: the server runs in the database's folder.
        std::fs::canonicalize(&server).unwrap_or_else(|e| panic!("--server {server}: {e}"))
    };
    let me = std::env::current_exe().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fake = Proc::spawn({
        let mut c = Command::new(&me);
        c.arg("--serve-fake");
        c
    });
    let _ = FAKE_PID.set(fake.pid());
    let wechat_base = format!("http://{}", fake.addr);
    // A fresh floor process for every run, as the product gets: a process settles into one
    // speed for its life (floor-login's CPU per request was 72 us in one bench and 60 in the
    // next), so one floor for the whole bench tied every ratio to a single draw.
    let start_floor = || {
        Proc::spawn({
            let mut c = Command::new(&me);
            c.args(["--serve-floor", &wechat_base]);
            c
        })
    };
    let rt = runtime();
    let callgrind: f64 = arg_or_exit(&args, "--callgrind", 0.0);
    if callgrind > 0.0 {
        let target = Counted::Server(&bin);
        return callgrind_logins(&rt, target, dir.path(), &wechat_base, callgrind);
    }
    let callgrind_floor: f64 = arg_or_exit(&args, "--callgrind-floor", 0.0);
    if callgrind_floor > 0.0 {
        let target = Counted::Floor(&me);
        return callgrind_logins(&rt, target, dir.path(), &wechat_base, callgrind_floor);
    }
    println!(
        "wxlogin benchmark: {CONNECTIONS} connections, {runs} runs x {seconds} s per scenario (median run shown), {} cores",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    let want = |name: &str| only.is_empty() || only.split(',').any(|o| o == name);
    let run_id = Arc::new(AtomicU64::new(0));
    let mut results: Vec<(&str, Run)> = Vec::new();

    let mut idle_rss = f64::NAN;
    let mut ready_ms = Vec::new();
    let login_db = dir.path().join("login.db");
    // Tokens of the 1000 returning users (which this creates), for `me`.
    let me_tokens: Option<Arc<Vec<String>>> = want("me").then(|| {
        let (server, ready) = start_server(&bin, &login_db, &wechat_base);
        ready_ms.push(ready.as_secs_f64() * 1000.0);
        idle_rss = proc_mib(server.pid(), "VmRSS");
        let tokens: Arc<Vec<String>> = Arc::new(rt.block_on(async {
            let client = reqwest::Client::new();
            let mut tokens = Vec::new();
            for u in 0..RETURNING_USERS {
                let v: serde_json::Value = client
                    .post(format!("http://{}/api/v1/login", server.addr))
                    .json(&serde_json::json!({"code": format!("r{u}_tok")}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                tokens.push(v["token"].as_str().unwrap().to_owned());
            }
            tokens
        }));
        drop(server);
        tokens
    });

    // Every round runs each scenario once, so that a machine whose speed drifts over the
    // minutes (a shared one does) moves a scenario and its floor alike.
    let mut scenarios: Vec<Scenario> = Vec::new();
    scenarios.push(("fake-wechat", Box::new(|| {
        let make: MakeRequest = Arc::new(|c, s| {
            get(&format!("/sns/jscode2session?appid=a&secret=s&js_code=f{c}_{s}&grant_type=authorization_code"), "")
        });
        measured(&rt, &fake, make, seconds)
    })));
    scenarios.push((
        "floor-static",
        Box::new(|| {
            let floor = start_floor();
            let make: MakeRequest = Arc::new(|_, _| get("/floor/static", ""));
            measured(&rt, &floor, make, seconds)
        }),
    ));
    scenarios.push((
        "floor-login",
        Box::new(|| {
            let floor = start_floor();
            let id = run_id.fetch_add(1, Ordering::Relaxed);
            measured(&rt, &floor, floor_logins(id), seconds)
        }),
    ));

    scenarios.push((
        "new-users",
        Box::new(|| {
            let (server, _) = start_server(&bin, &login_db, &wechat_base);
            let make = new_user_logins(run_id.fetch_add(1, Ordering::Relaxed));
            measured(&rt, &server, make, seconds)
        }),
    ));
    scenarios.push((
        "returning-users",
        Box::new(|| {
            let (server, _) = start_server(&bin, &login_db, &wechat_base);
            let make: MakeRequest = Arc::new(|c, s| {
                let user = (c as u64 * 7919 + s) % RETURNING_USERS as u64;
                post_json("/api/v1/login", &format!(r#"{{"code":"r{user}_{c}_{s}"}}"#))
            });
            measured(&rt, &server, make, seconds)
        }),
    ));
    scenarios.push((
        "me",
        Box::new(|| {
            let (server, ready) = start_server(&bin, &login_db, &wechat_base);
            let _ = ready;
            let tokens = me_tokens.clone().unwrap_or_default();
            let make: MakeRequest = Arc::new(move |c, s| {
                let t = &tokens[(c * 131 + s as usize) % tokens.len()];
                get("/api/v1/me", &format!("Authorization: Bearer {t}\r\n"))
            });
            measured(&rt, &server, make, seconds)
        }),
    ));
    scenarios.retain(|(name, _)| want(name));
    let mut rounds: Vec<Vec<Run>> = vec![Vec::new(); scenarios.len()];
    for _ in 0..runs {
        for ((_, scenario), runs) in scenarios.iter().zip(&mut rounds) {
            runs.push(scenario());
        }
    }
    // Each round's throughputs, by scenario, for the ratios round by round.
    let mut per_round: Vec<(&str, Vec<f64>)> = Vec::new();
    for ((name, _), runs) in scenarios.iter().zip(rounds) {
        per_round.push((name, runs.iter().map(|r| r.rps).collect()));
        let r = median_run(runs);
        print_run(name, &r);
        results.push((name, r));
    }
    // Start-up on an existing database, measured a few times.
    if want("me") || want("startup") {
        if !login_db.exists() {
            // `--only startup`: the first start makes the database the timed ones start on.
            drop(start_server(&bin, &login_db, &wechat_base));
        }
        for _ in 0..5 {
            let (server, ready) = start_server(&bin, &login_db, &wechat_base);
            ready_ms.push(ready.as_secs_f64() * 1000.0);
            if idle_rss.is_nan() {
                idle_rss = proc_mib(server.pid(), "VmRSS");
            }
            drop(server);
        }
        ready_ms.sort_by(f64::total_cmp);
        println!(
            "startup          ready after {:.0} ms (median of {}, spawn to first /healthz 200 on an existing database); idle RSS {:.1} MiB",
            ready_ms[ready_ms.len() / 2],
            ready_ms.len(),
            idle_rss
        );
    }

    let find = |n: &str| {
        results
            .iter()
            .find(|(name, _)| *name == n)
            .map(|(_, r)| r.rps)
    };
    for (a, b) in [
        ("new-users", "floor-login"),
        ("returning-users", "floor-login"),
        ("me", "floor-static"),
        ("floor-login", "fake-wechat"),
    ] {
        if let (Some(x), Some(y)) = (find(a), find(b)) {
            // Also each round's own ratio: a scenario and its floor ran minutes apart at
            // most, so these show how far the machine's drift moves the ratio.
            let rounds = |n: &str| per_round.iter().find(|(name, _)| *name == n);
            let spread = match (rounds(a), rounds(b)) {
                (Some((_, xs)), Some((_, ys))) if xs.len() > 1 => {
                    let mut each: Vec<f64> = xs.iter().zip(ys).map(|(x, y)| x / y).collect();
                    let listed: Vec<String> = each.iter().map(|r| format!("{r:.2}")).collect();
                    // A second estimate beside the headline's median over median: each
                    // process draws a speed for its life, so a round's two draws can set its
                    // ratio far off, and only many rounds settle either figure.
                    each.sort_by(f64::total_cmp);
                    format!(
                        "  (round by round: {}; their median {:.2})",
                        listed.join(" "),
                        (each[(each.len() - 1) / 2] + each[each.len() / 2]) / 2.0
                    )
                }
                _ => String::new(),
            };
            println!("ratio {a}/{b}: {:.2}{spread}", x / y);
        }
    }
    // A minute of new users, for memory: a round lasts seconds, too short for memory that
    // grows with the logins of the last minute to show (the remembered codes once did:
    // peak RSS 30 MiB after 5 s, 58 MiB after 75 s).
    if want("sustained") {
        let (server, _) = start_server(&bin, &login_db, &wechat_base);
        let make = new_user_logins(run_id.fetch_add(1, Ordering::Relaxed));
        print_run(
            "new-users 60 s",
            &measured(&rt, &server, make, SUSTAINED_SECONDS),
        );
    }
    if want("console") {
        rt.block_on(console(&bin, dir.path(), &wechat_base, console_users, 50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        std::iter::once("bench")
            .chain(line.split_whitespace())
            .map(String::from)
            .collect()
    }

    #[test]
    fn known_options_with_values_and_known_scenarios_are_accepted() {
        let line = args("--seconds 2.5 --runs 4 --only new-users,floor-login --server ./x");
        assert_eq!(check_args(&line), Ok(Invocation::Run));
        assert_eq!(arg(&line, "--seconds", 5.0), Ok(2.5));
        assert_eq!(arg(&line, "--runs", 3), Ok(4));
        assert_eq!(
            arg(&line, "--console-users", 7),
            Ok(7),
            "absent: the default"
        );
    }

    #[test]
    fn a_value_that_looks_like_an_option_is_still_a_value() {
        let line = args("--server --runs --runs 4");
        assert_eq!(check_args(&line), Ok(Invocation::Run));
        assert_eq!(arg(&line, "--server", String::new()).unwrap(), "--runs");
        assert_eq!(arg(&line, "--runs", 3), Ok(4));
    }

    #[test]
    fn a_new_users_openid_looks_like_wechats_and_belongs_to_its_code_alone() {
        let openid = wechat_like_openid("nu0_3_17");
        assert_eq!(openid.len(), 28);
        assert!(openid.starts_with("oBench"));
        assert!(openid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(
            openid,
            wechat_like_openid("nu0_3_17"),
            "a code's user is always the same"
        );
        let others: std::collections::HashSet<String> = (0..10_000)
            .map(|n| wechat_like_openid(&format!("nu0_3_{n}")))
            .collect();
        assert_eq!(others.len(), 10_000, "every code a user of its own");
        // Random-looking: the first character after the shared six, which decides where an
        // openid goes in the index, is spread evenly over all 64 (about 156 each).
        let mut firsts = std::collections::HashMap::new();
        for openid in &others {
            *firsts.entry(openid.as_bytes()[6]).or_insert(0) += 1;
        }
        assert_eq!(firsts.len(), 64);
        assert!(
            firsts.values().all(|&n| (100..220).contains(&n)),
            "{firsts:?}"
        );
        assert_eq!(
            fake_reply("appid=a&js_code=r42_7&grant_type=authorization_code"),
            r#"{"openid":"oReturning42","session_key":"c2Vzc2lvbmtleXNlc3Npb24="}"#
        );
    }

    #[test]
    fn help_is_recognised_anywhere() {
        assert_eq!(check_args(&args("--runs 2 --help")), Ok(Invocation::Help));
        assert_eq!(check_args(&args("-h")), Ok(Invocation::Help));
    }

    #[test]
    fn a_misspelt_option_or_scenario_or_a_missing_or_bad_value_is_refused() {
        let refused = |line: &str| check_args(&args(line)).unwrap_err();
        assert!(refused("--run 2").contains("unknown argument \"--run\""));
        assert!(refused("--only new-user").contains("no scenario is called \"new-user\""));
        assert!(refused("--only me,").contains("no scenario is called \"\""));
        assert!(refused("--seconds").contains("--seconds needs a value"));
        assert!(arg(&args("--runs x"), "--runs", 3)
            .unwrap_err()
            .contains("--runs \"x\" is not a valid value"));
    }
}
