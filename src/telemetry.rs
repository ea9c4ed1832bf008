//! Logging: the subscriber, a buffered writer for it, and an access log that keeps
//! credentials out of it.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use tracing_subscriber::EnvFilter;

use crate::db::time::{decimal_digits, push_digits};

/// Sends logs to stderr, filtered by `RUST_LOG` (default `info`), through a [`LogBuffer`].
/// Keep the returned guard for as long as the program logs: dropping it writes out what is
/// still buffered.
pub fn init_subscriber() -> LogFlushGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    let (buffer, guard) = LogBuffer::start(std::io::stderr());
    // Colour codes only for a person at a terminal, not in log files and collectors.
    let ansi = std::io::stderr().is_terminal();
    let installed = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(buffer.clone())
        .with_ansi(ansi)
        .try_init()
        .is_ok();
    if installed && !ansi {
        let _ = ACCESS_LINES.set(buffer);
    }
    guard
}

/// Where [`access_log`] writes its lines itself, in the subscriber's plain format: set when
/// the subscriber above writes uncoloured lines into this buffer. Through `tracing`, the
/// access line cost a request about 3.7 µs of CPU (filter, span context, field visitors),
/// a fifth of a token check's; written here it takes a fraction of that.
static ACCESS_LINES: std::sync::OnceLock<LogBuffer> = std::sync::OnceLock::new();

/// How long a log line may wait in the buffer.
const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// A batch this large says lines come faster than the writer thread wakes: it lets the next
/// ones gather (see [`write_out`]).
const BUSY_BATCH_BYTES: usize = 4 * 1024;
/// Buffered bytes past which the writer thread is woken early.
const FLUSH_AT_BYTES: usize = 64 * 1024;
/// Buffered bytes past which new lines are dropped (and counted) instead: the output is
/// stuck, and a login must not wait for a log reader.
const MOST_BUFFERED_BYTES: usize = 8 * 1024 * 1024;

struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
    dropped: AtomicU64,
    stopping: AtomicBool,
}

#[derive(Default)]
struct Pending {
    /// Lines not written yet.
    lines: Vec<u8>,
    /// The writer thread sleeps until a line comes (rather than until its next round).
    writer_idle: bool,
}

/// A `MakeWriter` that appends log lines to memory, from where a thread of its own writes
/// them out a batch at a time. Writing each line to stderr as it came cost a system call
/// and a wake-up of the reading process per request: without it the `me` benchmark served
/// about half as many requests again. A line after a quiet spell is written at once; under
/// load, lines gather for up to [`FLUSH_EVERY`], and those are lost if the process is killed.
#[derive(Clone)]
pub struct LogBuffer {
    shared: Arc<Shared>,
}

/// Writes out what is buffered and stops the writer thread when dropped.
pub struct LogFlushGuard {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LogBuffer {
    /// A buffer whose lines a new thread writes to `out`.
    pub fn start<W: Write + Send + 'static>(out: W) -> (Self, LogFlushGuard) {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            dropped: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
        });
        let writer_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || write_out(&writer_shared, out))
            .ok();
        (
            Self {
                shared: shared.clone(),
            },
            LogFlushGuard { shared, thread },
        )
    }
}

/// The writer thread. Quiet: sleeps until a line comes and writes it at once. Busy (its
/// last batch held [`BUSY_BATCH_BYTES`] or more, so lines came faster than it woke): lets
/// lines gather for up to [`FLUSH_EVERY`] (or [`FLUSH_AT_BYTES`]) whether or not one has
/// come yet, and writes them in one go. Once the guard is dropped, writes what is left and
/// ends.
///
/// A busy writer does not go to sleep until the next line whenever it finds the buffer
/// empty: under load it often is just after a write, and each line after that woke the
/// thread again. In the bench's new-users that made 600-750 writes and about 1,700 context
/// switches a second of this thread (one write for every 40-50 lines, each also waking
/// whatever reads the log), in `me` 1,500 and 3,100; now about 66 and 200, and 216 and 590.
/// Those wake-ups took CPUs from the requests: `me`'s p99/p50 read 2.6-2.8 in six runs
/// against 2.9-3.4. A quiet writer still writes each line at once: the lines of a start
/// (the address it listens on among them) are not held back.
fn write_out<W: Write>(shared: &Shared, mut out: W) {
    let stopping = || shared.stopping.load(Ordering::Acquire);
    let mut batch = Vec::with_capacity(FLUSH_AT_BYTES);
    let mut busy = false;
    loop {
        {
            let mut pending = shared.pending.lock().unwrap_or_else(|e| e.into_inner());
            if busy && !stopping() {
                pending = shared
                    .wake
                    .wait_timeout_while(pending, FLUSH_EVERY, |p| {
                        p.lines.len() < FLUSH_AT_BYTES && !stopping()
                    })
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            if pending.lines.is_empty() && !stopping() {
                pending.writer_idle = true;
                pending = shared
                    .wake
                    .wait_while(pending, |p| p.lines.is_empty() && !stopping())
                    .unwrap_or_else(|e| e.into_inner());
                pending.writer_idle = false;
            }
            std::mem::swap(&mut pending.lines, &mut batch);
        }
        busy = batch.len() >= BUSY_BATCH_BYTES;
        let dropped = shared.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let _ = writeln!(
                batch,
                "wxlogin: {dropped} log lines dropped: the log output was not being read"
            );
        }
        let _ = out.write_all(&batch);
        let _ = out.flush();
        batch.clear();
        if stopping()
            && shared
                .pending
                .lock()
                .map(|p| p.lines.is_empty())
                .unwrap_or(true)
        {
            return;
        }
    }
}

impl Drop for LogFlushGuard {
    fn drop(&mut self) {
        {
            // Under the lock, so the writer thread cannot miss it between its check and its
            // wait.
            let _pending = self.shared.pending.lock();
            self.shared.stopping.store(true, Ordering::Release);
        }
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Write for &LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut pending = self
            .shared
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if pending.lines.len() + buf.len() > MOST_BUFFERED_BYTES {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(buf.len());
        }
        let was_below = pending.lines.len() < FLUSH_AT_BYTES;
        pending.lines.extend_from_slice(buf);
        let full = was_below && pending.lines.len() >= FLUSH_AT_BYTES;
        if pending.writer_idle || full {
            pending.writer_idle = false;
            self.shared.wake.notify_one();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = &'a LogBuffer;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

/// Query parameters whose values are credentials.
const REDACTED_PARAMS: &[&str] = &["code", "js_code", "token", "access_token", "secret"];

/// The query string with the values of credential parameters replaced by `[redacted]`.
pub fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| {
            let key = pair.split('=').next().unwrap_or("");
            if REDACTED_PARAMS.iter().any(|p| key.eq_ignore_ascii_case(p)) {
                format!("{key}=[redacted]")
            } else {
                pair.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Middleware writing one line per request: method, path, redacted query, status, time,
/// client address and user agent. Headers (Authorization above all) are never logged.
pub async fn access_log(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    // Every request passes here first, and the clock is read already.
    crate::cpu_share::yield_if_run_too_long(started);
    let response = next.call(req).await?;
    // Read from the request as the response holds it: nothing is copied before the call.
    let req = response.request();
    let path = match req.query_string() {
        "" => std::borrow::Cow::Borrowed(req.path()),
        q => std::borrow::Cow::Owned(format!("{}?{}", req.path(), redact_query(q))),
    };
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // At most 200 characters of it.
    let user_agent = user_agent
        .char_indices()
        .nth(200)
        .map_or(user_agent, |(end, _)| &user_agent[..end]);
    let user = response
        .response()
        .extensions()
        .get::<LoggedUser>()
        .copied();
    let line = AccessLine {
        method: req.method().as_str(),
        path: &path,
        status: response.status().as_u16(),
        ms: Millis::from(started.elapsed()),
        peer: PeerField(req.peer_addr()),
        user_agent,
        user: UserField(user),
    };
    match ACCESS_LINES.get() {
        // `enabled!` asks the subscriber's filter (RUST_LOG), as `info!` would.
        Some(out) if tracing::enabled!(target: "wxlogin::access", tracing::Level::INFO) => {
            let mut text = Vec::with_capacity(256);
            line.write_plain(&mut text, chrono::Utc::now());
            let _ = (&*out).write_all(&text);
        }
        Some(_) => {}
        None => line.log(),
    }
    Ok(response)
}

/// One request's access line.
struct AccessLine<'a> {
    method: &'a str,
    path: &'a str,
    status: u16,
    ms: Millis,
    peer: PeerField,
    user_agent: &'a str,
    user: UserField,
}

impl AccessLine<'_> {
    /// Through `tracing`.
    fn log(&self) {
        tracing::info!(
            target: "wxlogin::access",
            method = %self.method,
            path = %self.path,
            status = self.status,
            ms = %self.ms,
            peer = %self.peer,
            user_agent = %self.user_agent,
            user = %self.user,
            "request"
        );
    }

    /// Exactly as the subscriber's plain format writes what [`AccessLine::log`] logs.
    fn write_plain(&self, out: &mut Vec<u8>, now: chrono::DateTime<chrono::Utc>) {
        use chrono::{Datelike, Timelike};
        // The time's digits by hand: chrono's `format` parses its format string on every
        // call, and `core::fmt`'s padded integers were a quarter of this line's cost.
        let year = u32::try_from(now.year()).unwrap_or(0);
        push_digits(out, year, 4);
        for (separator, value) in [
            (b'-', now.month()),
            (b'-', now.day()),
            (b'T', now.hour()),
            (b':', now.minute()),
            (b':', now.second()),
        ] {
            out.push(separator);
            push_digits(out, value, 2);
        }
        out.push(b'.');
        push_digits(out, now.nanosecond() % 1_000_000_000 / 1000, 6);
        // The rest by hand too: through `writeln!` and the fields' `Display`, this line cost
        // about 7k instructions a login under callgrind, an IPv4 address alone 4k.
        out.extend_from_slice(b"Z  INFO wxlogin::access: request method=");
        out.extend_from_slice(self.method.as_bytes());
        out.extend_from_slice(b" path=");
        out.extend_from_slice(self.path.as_bytes());
        out.extend_from_slice(b" status=");
        push_number(out, u64::from(self.status));
        out.extend_from_slice(b" ms=");
        push_number(out, self.ms.tenths / 10);
        out.push(b'.');
        push_number(out, self.ms.tenths % 10);
        out.extend_from_slice(b" peer=");
        self.peer.write_to(out);
        out.extend_from_slice(b" user_agent=");
        out.extend_from_slice(self.user_agent.as_bytes());
        out.extend_from_slice(b" user=");
        match self.user.0 {
            None => out.push(b'-'),
            Some(LoggedUser { id, is_new }) => {
                if id < 0 {
                    out.push(b'-');
                }
                push_number(out, id.unsigned_abs());
                if is_new {
                    out.extend_from_slice(b" (new)");
                }
            }
        }
        out.push(b'\n');
    }
}

/// `value` in decimal, as many digits as it takes.
fn push_number(out: &mut Vec<u8>, value: u64) {
    let (digits, at) = decimal_digits(value);
    out.extend_from_slice(&digits[at..]);
}

/// A request's duration in milliseconds, shown to a tenth (`1.3`). Kept in whole tenths:
/// formatting an `f64` to one decimal took about a thousand instructions a request.
#[derive(Clone, Copy)]
struct Millis {
    tenths: u64,
}

impl From<Duration> for Millis {
    fn from(elapsed: Duration) -> Self {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        Self {
            tenths: micros.saturating_add(50) / 100,
        }
    }
}

impl std::fmt::Display for Millis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.tenths / 10, self.tenths % 10)
    }
}

/// The user a request acted for, put in the response's extensions by the handler so that
/// the access log names them: one line per login, not a line of its own besides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoggedUser {
    /// The user's id.
    pub id: i64,
    /// True when the request created the user.
    pub is_new: bool,
}

impl LoggedUser {
    /// `reply`, marked for the access log as acting for this user.
    pub fn mark(self, mut reply: actix_web::HttpResponse) -> actix_web::HttpResponse {
        reply.extensions_mut().insert(self);
        reply
    }
}

/// The client's IP address, or nothing when there is none (a Unix socket, a test).
struct PeerField(Option<std::net::SocketAddr>);

impl PeerField {
    fn write_to(&self, out: &mut Vec<u8>) {
        if let Some(addr) = self.0 {
            push_ip(out, addr.ip());
        }
    }
}

/// `ip` as `Display` shows it, an IPv4 address digit by digit (through `core::fmt` that took
/// about 4k instructions).
fn push_ip(out: &mut Vec<u8>, ip: std::net::IpAddr) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                push_number(out, u64::from(octet));
            }
        }
        std::net::IpAddr::V6(_) => {
            let _ = write!(out, "{ip}");
        }
    }
}

/// `ip` as text, as `to_string` writes it but quicker for IPv4.
pub fn ip_text(ip: std::net::IpAddr) -> String {
    let mut out = Vec::with_capacity(15);
    push_ip(&mut out, ip);
    // Only ASCII digits, dots, colons and hex letters were written.
    String::from_utf8(out).unwrap_or_else(|_| ip.to_string())
}

impl std::fmt::Display for PeerField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(addr) => addr.ip().fmt(f),
            None => Ok(()),
        }
    }
}

/// `7`, `7 (new)`, or `-` for requests without a user.
struct UserField(Option<LoggedUser>);

impl std::fmt::Display for UserField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            None => f.write_str("-"),
            Some(LoggedUser { id, is_new: false }) => write!(f, "{id}"),
            Some(LoggedUser { id, is_new: true }) => write!(f, "{id} (new)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Write` into shared memory, to read what the log writer wrote, and how many writes
    /// it took.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>, Arc<AtomicU64>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            self.1.fetch_add(1, Ordering::Relaxed);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn buffered_lines_come_out_in_order_soon_and_all_of_them_on_drop() {
        let out = Captured::default();
        let (buffer, guard) = LogBuffer::start(out.clone());
        (&buffer).write_all(b"one\n").unwrap();
        (&buffer).write_all(b"two\n").unwrap();
        let started = Instant::now();
        while out.0.lock().unwrap().is_empty() {
            assert!(started.elapsed() < Duration::from_secs(2), "never written");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(out.0.lock().unwrap().as_slice(), b"one\ntwo\n");
        (&buffer).write_all(b"three\n").unwrap();
        drop(guard);
        assert_eq!(out.0.lock().unwrap().as_slice(), b"one\ntwo\nthree\n");
    }

    #[test]
    fn a_steady_stream_of_lines_is_written_once_per_flush_period_not_line_by_line() {
        let out = Captured::default();
        let (buffer, guard) = LogBuffer::start(out.clone());
        let mut line = vec![b'x'; 99];
        line.push(b'\n');
        let started = Instant::now();
        // 50 lines a millisecond for 200 ms: the pace of the bench's access lines.
        let bursts = 200;
        for _ in 0..bursts {
            for _ in 0..50 {
                (&buffer).write_all(&line).unwrap();
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let elapsed = started.elapsed();
        drop(guard);
        assert_eq!(out.0.lock().unwrap().len(), bursts * 50 * line.len());
        let writes = out.1.load(Ordering::Relaxed);
        // One write for each period the lines took or each FLUSH_AT_BYTES they filled, the
        // first few before the writer knows it is busy, one at the end, and slack for a slow
        // machine; waking whenever the buffer was empty wrote about one burst a write.
        let periods = (elapsed.as_millis() / FLUSH_EVERY.as_millis()) as u64;
        let fills = (bursts * 50 * line.len() / FLUSH_AT_BYTES) as u64;
        assert!(
            writes <= periods + fills + 6,
            "{writes} writes for {bursts} bursts in {elapsed:?}"
        );
    }

    #[test]
    fn after_a_quiet_spell_the_writer_sleeps_until_a_line_and_the_line_wakes_it() {
        let out = Captured::default();
        let (buffer, _guard) = LogBuffer::start(out.clone());
        let started = Instant::now();
        while !buffer.shared.pending.lock().unwrap().writer_idle {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "never went to sleep"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        (&buffer).write_all(b"after a while\n").unwrap();
        // The line woke it: it no longer waits for a line.
        assert!(!buffer.shared.pending.lock().unwrap().writer_idle);
        let started = Instant::now();
        while out.0.lock().unwrap().is_empty() {
            assert!(started.elapsed() < Duration::from_secs(2), "never written");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(out.0.lock().unwrap().as_slice(), b"after a while\n");
    }

    /// A `Write` that never returns from its first write, like a pipe nobody reads, and
    /// says when it got there.
    struct Stuck(std::sync::mpsc::Sender<()>);

    impl Write for Stuck {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            let _ = self.0.send(());
            loop {
                std::thread::park();
            }
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stuck_output_drops_lines_instead_of_blocking_or_growing() {
        let (stuck, got_stuck) = std::sync::mpsc::channel();
        let (buffer, guard) = LogBuffer::start(Stuck(stuck));
        // The guard would wait for the stuck thread for ever, and dropped by a failing
        // assertion it turned that failure into a hang.
        std::mem::forget(guard);
        let line = vec![b'x'; 1024];
        // Only once the writer is stuck: a writer slow to take the first lines (on a loaded
        // machine) could otherwise take a full buffer's worth and reset the dropped count.
        (&buffer).write_all(&line).unwrap();
        got_stuck
            .recv_timeout(Duration::from_secs(10))
            .expect("the writer thread reaches its output");
        let started = Instant::now();
        for _ in 0..2 * MOST_BUFFERED_BYTES / line.len() + 10 {
            (&buffer).write_all(&line).unwrap();
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(buffer.shared.dropped.load(Ordering::Relaxed) > 0);
        assert!(buffer.shared.pending.lock().unwrap().lines.len() <= MOST_BUFFERED_BYTES);
    }

    #[test]
    fn the_access_log_names_the_user_a_request_acted_for() {
        assert_eq!(UserField(None).to_string(), "-");
        let user = LoggedUser {
            id: 7,
            is_new: false,
        };
        assert_eq!(UserField(Some(user)).to_string(), "7");
        let user = LoggedUser {
            is_new: true,
            ..user
        };
        assert_eq!(UserField(Some(user)).to_string(), "7 (new)");
    }

    #[test]
    fn an_access_line_written_directly_reads_as_the_subscriber_writes_it() {
        let line = AccessLine {
            method: "GET",
            path: "/api/v1/login?code=[redacted]&lang=zh",
            status: 200,
            ms: Millis::from(Duration::from_micros(1260)),
            peer: PeerField(Some("10.1.2.3:5555".parse().unwrap())),
            user_agent: "Mozilla/5.0 (iPhone) MicroMessenger/8.0",
            user: UserField(Some(LoggedUser {
                id: 7,
                is_new: true,
            })),
        };
        let direct_rest = written_both_ways(&line);
        assert!(direct_rest.ends_with("user=7 (new)\n"), "{direct_rest}");
        // Every other shape of field: addresses of each family and none, large and zero
        // figures, no user and a returning one.
        for (peer, status, micros, user) in [
            (Some("0.0.0.0:1"), 404, 0, None),
            (
                Some("255.255.255.255:80"),
                500,
                12_345_678,
                Some((0, false)),
            ),
            (Some("[::1]:8080"), 302, 99_950, Some((i64::MAX, false))),
            (Some("[2001:db8::a:1]:1"), 200, 1_000_000, Some((-3, true))),
            (None, 201, 49, Some((123_456_789, false))),
        ] {
            let line = AccessLine {
                method: "POST",
                path: "/api/v1/login",
                status,
                ms: Millis::from(Duration::from_micros(micros)),
                peer: PeerField(peer.map(|p| p.parse().unwrap())),
                user_agent: "",
                user: UserField(user.map(|(id, is_new)| LoggedUser { id, is_new })),
            };
            written_both_ways(&line);
        }
    }

    /// Writes `line` through `tracing` and directly, checks that they read alike, and returns
    /// the direct one after its time.
    fn written_both_ways(line: &AccessLine<'_>) -> String {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer({
                let captured = captured.clone();
                move || captured.clone()
            })
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || line.log());
        let by_tracing = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();

        let now = chrono::Utc::now();
        let mut direct = Vec::new();
        line.write_plain(&mut direct, now);
        let direct = String::from_utf8(direct).unwrap();

        let (tracing_time, tracing_rest) = by_tracing.split_once(' ').unwrap();
        let (direct_time, direct_rest) = direct.split_once(' ').unwrap();
        assert_eq!(direct_rest, tracing_rest);
        assert_eq!(
            direct_time.len(),
            tracing_time.len(),
            "{direct_time} vs {tracing_time}"
        );
        let parsed = chrono::DateTime::parse_from_rfc3339(direct_time).unwrap();
        use chrono::DurationRound;
        assert_eq!(
            parsed,
            now.duration_trunc(chrono::TimeDelta::microseconds(1))
                .unwrap()
        );
        direct_rest.to_owned()
    }

    #[test]
    fn addresses_read_as_their_own_display_writes_them() {
        for ip in [
            "0.0.0.0",
            "10.1.2.3",
            "255.255.255.255",
            "::1",
            "::ffff:10.1.2.3",
            "2001:db8::a:1",
        ] {
            let ip: std::net::IpAddr = ip.parse().unwrap();
            assert_eq!(ip_text(ip), ip.to_string());
        }
    }

    #[test]
    fn durations_are_shown_in_milliseconds_to_a_tenth() {
        let shown = |micros| Millis::from(Duration::from_micros(micros)).to_string();
        assert_eq!(shown(0), "0.0");
        assert_eq!(shown(49), "0.0");
        assert_eq!(shown(50), "0.1");
        assert_eq!(shown(1260), "1.3");
        assert_eq!(shown(12_345_678), "12345.7");
    }

    #[test]
    fn credential_parameters_are_redacted_and_others_kept() {
        assert_eq!(
            redact_query("code=0a3Xk7&user_name=%E5%B0%8F&CODE=x&page=2"),
            "code=[redacted]&user_name=%E5%B0%8F&CODE=[redacted]&page=2"
        );
        assert_eq!(redact_query("code"), "code=[redacted]");
        assert_eq!(redact_query("a=1"), "a=1");
    }
}
