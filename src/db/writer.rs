//! The login writer: one thread, one connection, logins committed in groups.
//!
//! SQLite has one writer at a time. With writers on many pooled connections, those that
//! find the lock taken fall into SQLite's busy handler, which sleeps for milliseconds while
//! the lock is held for microseconds: under load most of a login's time went to sleeping.
//! Here logins queue to a single thread that commits whatever has queued up in one
//! transaction, and answers each login only after that commit: an acknowledged login is on
//! disk (in the WAL). Should the batch fail, its logins are retried one transaction each,
//! so one bad login cannot fail the others (a savepoint per login did the same on every
//! batch, at a cost the profile showed).

use std::cell::RefCell;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use diesel::connection::SimpleConnection;
use diesel::{QueryResult, QueryableByName, RunQueryDsl};
use libsqlite3_sys as ffi;

use super::models::User;
use super::nickname_index::{self, Backlog};
use super::users::{LoginAttempt, LoginBatch, LoginOutcome};
use super::writer_statements::WriterConnection;
use super::DbConnection;

/// Most logins committed in one transaction.
const MAX_BATCH: usize = 256;
/// Logins waiting for the writer before callers wait for room (back-pressure).
const QUEUE: usize = 4096;

/// What became of a login.
type Outcome = Result<LoginOutcome, String>;
type Answer = tokio::sync::oneshot::Sender<Outcome>;

/// Where a login's outcome goes: its own channel, through the reply pump of the thread it
/// came from when that thread has one.
struct Reply {
    answer: Answer,
    pump: Option<usize>,
}

/// The reply pumps of one writer, by index.
type Pumps = Arc<Mutex<Vec<tokio::sync::mpsc::UnboundedSender<Vec<(Answer, Outcome)>>>>>;

/// Tells writers apart in [`THREAD_PUMPS`].
static NEXT_WRITER_ID: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// (writer id, pump index) for every writer that has a reply pump on this thread.
    static THREAD_PUMPS: RefCell<Vec<(usize, usize)>> = const { RefCell::new(Vec::new()) };
}

/// Work for the writer thread.
// Nearly every job is a login; boxing it to shrink the rare other kind would cost an
// allocation per login.
#[allow(clippy::large_enum_variant)]
enum Job {
    /// A login to record, and where its outcome goes.
    Login(LoginAttempt, Reply),
    /// Index the nicknames of users created since the last time, and move a slice of new
    /// users into the openid lookup (from the upkeep thread).
    IndexNicknames,
    /// Move every pending new user into the openid lookup, then say so (at a stop, so that
    /// the next start has none to read back).
    Flush(std::sync::mpsc::Sender<()>),
}

/// How often the upkeep thread has new users' nicknames indexed and looks whether the WAL
/// is due a copy into the database file (see [`PassSchedule`]). Often, so that each round
/// has little to do: the writer waits for the nickname indexing. At 100 ms,
/// logins' p99/p50 was 3.0 under the bench's new-users load; at 25 ms, 2.4-2.7.
const UPKEEP_EVERY: Duration = Duration::from_millis(25);

/// Logins between two indexing rounds below which the writer counts as quiet (16 in 25 ms:
/// 640 a second), and so indexes nicknames for one- and two-character search as they come.
const QUIET_LOGINS: usize = 16;

/// Most users the one- and two-character index lets wait while logins keep the writer busy.
/// Indexing a new user there costs the writer about a tenth more per login (callgrind: 7.8k
/// instructions on 69k), and in a burst of new users every login pays it: new-users in the
/// bench went from 10.8k to 10.0k a second. So in a burst the index waits for a quiet round
/// and catches up in batches of [`nickname_index::MOST_AT_ONCE`], larger and cheaper per
/// user; searches read the users it has not reached directly (at most 65,536 nicknames, a
/// fifteenth of the scan that a million took before this index: 90-170 ms).
const MOST_PAIRS_BEHIND: i64 = 65_536;

/// Users a busy round adds to the one- and two-character index once it is
/// [`MOST_PAIRS_BEHIND`]. Logins wait while the writer indexes, and in a long burst these
/// rounds delayed many of the slowest logins: in a minute of the bench's new users, 35% of
/// the logins slower than the p99 overlapped one, against 4% of random 4 ms stretches.
/// Rounds of 4096 users took 4.3 ms (median); rounds of 1024 take 1.6 ms, for 6% more
/// indexing time in all, and keep up with 40k new users a second. That minute's p99/p50,
/// eight runs each way taking turns: 2.6-2.9 (median 2.75) with rounds of 4096, 2.6-2.8
/// (median 2.65) with 1024; lower in five of the eight pairs, equal in three.
const PAIRS_IN_A_BUSY_ROUND: i64 = 1024;

/// How many users this round adds to the one- and two-character index (`backlog` as the
/// last round left it): a full batch when the writer is quiet, a small one when it is busy
/// but the index is as far behind as it may get, none otherwise.
fn pairs_this_round(logins_since_indexing: usize, backlog: Backlog) -> i64 {
    if logins_since_indexing <= QUIET_LOGINS {
        nickname_index::MOST_AT_ONCE
    } else if backlog.pairs >= MOST_PAIRS_BEHIND {
        PAIRS_IN_A_BUSY_ROUND
    } else {
        0
    }
}

/// What the writer and the upkeep thread tell each other.
#[derive(Default)]
struct Signals {
    /// The WAL has grown long: the writer should let it start over.
    wal_long: AtomicBool,
    /// Users exist whose nicknames are not indexed yet, or who are not in the openid lookup.
    indexing_waiting: AtomicBool,
    /// Frames in the WAL after the writer's last commit (SQLite's WAL hook).
    wal_frames: Arc<AtomicI64>,
}

/// Handle to the writer thread; the thread ends when the last handle is dropped, and so does
/// the upkeep thread (or earlier, at [`LoginWriter::close`]).
#[derive(Clone)]
pub struct LoginWriter {
    id: usize,
    queue: tokio::sync::mpsc::Sender<Job>,
    pumps: Pumps,
    upkeep: Upkeep,
}

/// The upkeep thread: it stops when told to or when the last handle goes.
#[derive(Clone)]
struct Upkeep {
    stop: std::sync::mpsc::Sender<()>,
    thread: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
}

impl LoginWriter {
    /// Opens the writer's own connection to `database_url` and starts its thread.
    pub fn start(database_url: &str) -> anyhow::Result<Self> {
        super::wal_file::install()?;
        let mut writer_conn = WriterConnection::establish(database_url)?;
        let conn = writer_conn.conn();
        super::apply_connection_pragmas(conn)
            .and_then(|()| {
                // SQLite checkpoints in the thread whose commit crosses the threshold, fsync
                // included: that stalled every login queued behind it. The upkeep thread
                // does it instead.
                conn.batch_execute("PRAGMA wal_autocheckpoint = 0;")
            })
            .context("setting up the login writer's connection")?;
        let signals = Arc::new(Signals::default());
        writer_conn.report_wal_length(signals.wal_frames.clone());
        let checkpointer = Checkpointer::establish(database_url)?;
        let backlog = nickname_index::backlog(writer_conn.conn())
            .context("reading how far the nickname indexes have got")?;
        writer_conn
            .load_pending_openids()
            .context("reading which users the openid lookup lacks")?;
        signals.indexing_waiting.store(
            backlog.any() || writer_conn.split().1.openids.any(),
            Ordering::Relaxed,
        );
        let (queue, jobs) = tokio::sync::mpsc::channel(QUEUE);
        let (stop, stopped) = std::sync::mpsc::channel();
        let writer_signals = signals.clone();
        let pumps = Pumps::default();
        let writer_pumps = pumps.clone();
        std::thread::Builder::new()
            .name("login-writer".into())
            .spawn(move || run(writer_conn, jobs, &writer_signals, &writer_pumps, backlog))
            .context("starting the login writer")?;
        let upkeep_queue = queue.clone();
        let upkeep_thread = std::thread::Builder::new()
            .name("db-upkeep".into())
            .spawn(move || upkeep(checkpointer, stopped, upkeep_queue, &signals))
            .context("starting the upkeep thread")?;
        Ok(Self {
            id: NEXT_WRITER_ID.fetch_add(1, Ordering::Relaxed),
            queue,
            pumps,
            upkeep: Upkeep {
                stop,
                thread: Arc::new(Mutex::new(Some(upkeep_thread))),
            },
        })
    }

    /// For a server that has stopped serving: moves the pending new users into the openid
    /// lookup, then stops the upkeep thread after a last checkpoint that copies the whole WAL
    /// into the database and empties it, and waits for both. It blocks: call it from outside
    /// async code (`spawn_blocking`). A WAL left behind is read back at the next start, whose
    /// upkeep thread copies it all again while that server serves (SQLite removes the WAL itself only when the
    /// process's last connection closes, and a stopping process does not wait for every
    /// pooled one). Logins still work afterwards; nobody checkpoints them until the next start.
    pub fn close(&self) {
        // First the pending new users into the openid lookup, so that the checkpoint below
        // copies them too and the next start reads none back.
        let (done, flushed) = std::sync::mpsc::channel();
        if self.queue.blocking_send(Job::Flush(done)).is_ok() {
            let _ = flushed.recv_timeout(Duration::from_secs(10));
        }
        let _ = self.upkeep.stop.send(());
        let thread = self.upkeep.thread.lock().map(|mut t| t.take());
        if let Ok(Some(thread)) = thread {
            if thread.join().is_err() {
                tracing::warn!("the upkeep thread panicked");
            }
        }
    }

    /// Starts a reply pump on the calling thread, which must run a tokio `LocalSet` (an
    /// actix worker does): a task that hands this writer's answers to the logins that came
    /// from this thread. Waking a task from the writer's thread costs a system call (and
    /// often an interrupt of the other CPU) per login; through the pump it is one per thread
    /// per batch, and the pump wakes the logins' tasks from their own thread, which is free.
    /// Logins from threads without a pump are answered directly.
    pub fn start_reply_pump(&self) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<(Answer, Outcome)>>();
        let index = {
            let mut pumps = self.pumps.lock().unwrap_or_else(|e| e.into_inner());
            pumps.push(tx);
            pumps.len() - 1
        };
        THREAD_PUMPS.with(|p| p.borrow_mut().push((self.id, index)));
        tokio::task::spawn_local(async move {
            while let Some(answers) = rx.recv().await {
                for (answer, outcome) in answers {
                    let _ = answer.send(outcome);
                }
            }
        });
    }

    /// This thread's reply pump for this writer, if it has one.
    fn thread_pump(&self) -> Option<usize> {
        THREAD_PUMPS.with(|p| {
            p.borrow()
                .iter()
                .rev()
                .find(|(writer, _)| *writer == self.id)
                .map(|(_, pump)| *pump)
        })
    }

    /// Records `login` and waits until it is committed.
    pub async fn record(&self, login: LoginAttempt) -> anyhow::Result<LoginOutcome> {
        let (answer, outcome) = tokio::sync::oneshot::channel();
        let reply = Reply {
            answer,
            pump: self.thread_pump(),
        };
        // Waits only when the queue is full (back-pressure), without holding a worker.
        self.queue
            .send(Job::Login(login, reply))
            .await
            .map_err(|_| anyhow::anyhow!("the login writer has stopped"))?;
        outcome
            .await
            .context("the login writer dropped a login")?
            .map_err(|e| anyhow::anyhow!("recording a login: {e}"))
    }
}

fn run(
    mut conn: WriterConnection,
    mut jobs: tokio::sync::mpsc::Receiver<Job>,
    signals: &Signals,
    pumps: &Pumps,
    mut backlog: Backlog,
) {
    {
        let (db, statements) = conn.split();
        if let Err(e) = statements.openids.build_filter(db) {
            // Every lookup then reads the table, as before the filter.
            tracing::warn!(error = %e, "reading the stored openids failed");
        }
        // The read filled the page cache with the whole lookup table, pages that logins
        // rarely read again: 2 MiB more idle RSS after a start on a used database.
        if let Err(e) = db.batch_execute("PRAGMA shrink_memory;") {
            tracing::warn!(error = %e, "emptying the page cache failed");
        }
    }
    // Logins since the nickname indexes last had their turn, and whether they made users.
    let (mut logins_since_indexing, mut created_since_indexing) = (0, false);
    while let Some(first) = jobs.blocking_recv() {
        if signals.wal_long.swap(false, Ordering::Relaxed) {
            // Copies what the upkeep thread has not yet; the next transaction then starts
            // the WAL over.
            if let Err(e) = conn.conn().batch_execute("PRAGMA wal_checkpoint(PASSIVE);") {
                tracing::warn!(error = %e, "checkpointing the WAL failed");
            }
        }
        let mut logins = Vec::new();
        let mut replies = Vec::new();
        let mut index_nicknames = false;
        let mut flushed = Vec::new();
        let mut next = Some(first);
        while let Some(job) = next {
            match job {
                Job::Login(login, reply) => {
                    logins.push(login);
                    replies.push(reply);
                }
                Job::IndexNicknames => index_nicknames = true,
                Job::Flush(done) => flushed.push(done),
            }
            next = (logins.len() < MAX_BATCH)
                .then(|| jobs.try_recv().ok())
                .flatten();
        }
        let mut created_users = false;
        let mut by_pump: Vec<Vec<(Answer, Outcome)>> = Vec::new();
        for (reply, result) in replies.into_iter().zip(record_batch(&mut conn, &logins)) {
            created_users |= matches!(result, Ok(LoginOutcome::LoggedIn { is_new: true, .. }));
            match reply.pump {
                Some(pump) => {
                    if by_pump.len() <= pump {
                        by_pump.resize_with(pump + 1, Vec::new);
                    }
                    by_pump[pump].push((reply.answer, result));
                }
                None => {
                    let _ = reply.answer.send(result);
                }
            }
        }
        answer_through_pumps(pumps, by_pump);
        logins_since_indexing += logins.len();
        created_since_indexing |= created_users;
        if created_users {
            signals.indexing_waiting.store(true, Ordering::Relaxed);
        }
        if index_nicknames || !flushed.is_empty() {
            // Like the nicknames, after the batch's replies; a failure is retried next round,
            // and lookups read the users it left out meanwhile. A stop or a quiet round moves
            // them all.
            let quiet = !flushed.is_empty() || logins_since_indexing == 0;
            let (db, statements) = conn.split();
            if let Err(e) = statements.move_some_openids(db, quiet) {
                tracing::warn!(error = %e, "adding new users to the openid lookup failed");
            }
            for done in flushed {
                let _ = done.send(());
            }
        }
        if index_nicknames {
            let openids_waiting = conn.split().1.openids.any();
            let pairs = pairs_this_round(logins_since_indexing, backlog);
            // Nothing to do for the trigram index, and the pairs index waits: no transaction.
            if pairs > 0 || backlog.trigrams > 0 || created_since_indexing {
                // After the batch's replies: indexing never delays a login already committed.
                match nickname_index::index_some(conn.conn(), pairs) {
                    Ok(left) => {
                        backlog = left;
                        signals
                            .indexing_waiting
                            .store(left.any() || openids_waiting, Ordering::Relaxed);
                    }
                    // Searches still find those users, by reading them; the next round
                    // retries.
                    Err(e) => tracing::warn!(error = %e, "indexing new nicknames failed"),
                }
            } else {
                signals
                    .indexing_waiting
                    .store(backlog.any() || openids_waiting, Ordering::Relaxed);
            }
            (logins_since_indexing, created_since_indexing) = (0, false);
        }
    }
}

/// Sends each pump its thread's answers in one message; answers whose pump has gone (its
/// worker stopped) are sent directly.
fn answer_through_pumps(pumps: &Pumps, by_pump: Vec<Vec<(Answer, Outcome)>>) {
    if by_pump.is_empty() {
        return;
    }
    let pumps = pumps.lock().unwrap_or_else(|e| e.into_inner());
    for (pump, answers) in by_pump.into_iter().enumerate() {
        if answers.is_empty() {
            continue;
        }
        let undelivered = match pumps.get(pump) {
            Some(tx) => tx.send(answers).err().map(|e| e.0),
            None => Some(answers),
        };
        for (answer, outcome) in undelivered.into_iter().flatten() {
            let _ = answer.send(outcome);
        }
    }
}

/// Records `logins` in one transaction; should that fail, one transaction each, so each gets
/// its own answer.
fn record_batch(
    conn: &mut WriterConnection,
    logins: &[LoginAttempt],
) -> Vec<Result<LoginOutcome, String>> {
    if logins.is_empty() {
        return Vec::new();
    }
    let results: Vec<_> = match commit_together(conn, logins) {
        Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
        // Rare (a full disk, say): one login's failure rolled the batch back.
        Err(e) => {
            tracing::warn!(error = %e, logins = logins.len(), "a batch of logins failed; committing them one by one");
            logins
                .iter()
                .map(|login| User::record_login(conn.conn(), login).map_err(|e| e.to_string()))
                .collect()
        }
    };
    // Committed: the writer finds these users in memory until they are in the openid lookup.
    let openids = &mut conn.split().1.openids;
    for result in &results {
        if let Ok(LoginOutcome::LoggedIn {
            user, is_new: true, ..
        }) = result
        {
            openids.created(&user.openid, user.id);
        }
    }
    results
}

/// WAL frames (pages) past which the writer is asked to let the WAL start over: 256 MiB.
/// The writer's checkpoint copies and syncs the frames written since the upkeep thread's
/// last one (see [`Checkpointer`] for how little that is kept to), and every login waits
/// meanwhile. At 16384 frames that happened three times a second under the
/// bench's returning-users load, and those stalls made up the slowest one percent of logins
/// (p99/p50 2.9-4.0; 2.4-2.6 at 32768). The logins' writer is faster now, and at 32768 it
/// came every 0.65 s under new-users: p99/p50 2.7-3.2 there, 2.6-2.9 at 65536 (5 alternating
/// pairs; returning-users 2.6-2.7 and 2.4-2.8). Reading the WAL back after a crash stays
/// quick, as a start no longer copies it first (see `connect`): a full 256 MiB one of distinct
/// pages, ready 120-136 ms after start. A quiet second empties it (see
/// `TRUNCATE_WAL_AFTER_IDLE_ROUNDS`).
const RESTART_WAL_AT_FRAMES: i64 = 65536;

#[derive(QueryableByName, Clone, Copy)]
struct CheckpointResult {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    log: i32,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    checkpointed: i32,
}

/// Rounds without a new WAL frame after which the upkeep thread empties the WAL file (a
/// second): a restart reads every frame of it back first (a 25 MB WAL made a start take
/// 60 ms, not 12).
const TRUNCATE_WAL_AFTER_IDLE_ROUNDS: u32 = 40;

/// Upkeep rounds between two checkpoint passes while the writer keeps committing: 400 ms.
/// A pass copies each page once, however often the frames since the last one rewrote it,
/// and new users' logins rewrite random pages of the openid index: over 400 ms more of them
/// are hit twice than over 25 ms. In 5 s rounds of the bench's new users the upkeep
/// thread's CPU per login went from 4.2-5.8 µs to 2.3-3.3 and logins a second rose in 10 of
/// 12 alternating pairs (median +8.7%); in the minute of new users (a larger database) the
/// thread's CPU went from 5.7-5.8 to 4.5-5.0 µs and throughput did not change beyond the noise.
const PASS_EVERY_ROUNDS: u32 = 16;

/// Which upkeep rounds run a checkpoint pass: every [`PASS_EVERY_ROUNDS`]th while the
/// writer keeps committing; at once when a round has seen no commit of the writer's (so a
/// quiet server's WAL is copied, and emptied, as soon as before), and when the WAL is long
/// enough to start over (so the writer is asked on time).
#[derive(Debug, Default)]
struct PassSchedule {
    /// The WAL's length after the writer's last commit, as the previous round saw it.
    frames: i64,
    /// Rounds since the last pass.
    rounds: u32,
}

impl PassSchedule {
    /// Whether this round runs a pass, `frames` being the WAL's length after the writer's
    /// last commit (commits of other connections go unseen here: the regular passes copy
    /// them).
    fn pass_due(&mut self, frames: i64) -> bool {
        let quiet = frames == self.frames;
        self.frames = frames;
        self.rounds += 1;
        let due = quiet || self.rounds >= PASS_EVERY_ROUNDS || frames > RESTART_WAL_AT_FRAMES;
        if due {
            self.rounds = 0;
        }
        due
    }
}

/// Every [`UPKEEP_EVERY`] until every [`LoginWriter`] is gone: copies committed WAL frames
/// into the database file, off the writer's thread (the fsync included), and asks the
/// writer to index new users' nicknames.
///
/// PASSIVE never waits for anyone, but SQLite starts the WAL over only when a write
/// transaction begins with every frame copied, which under constant writes never happens
/// from here: so when the WAL has grown long, `wal_long` asks the writer to copy the little
/// left itself between two batches (without that the WAL grew without end under load; a
/// RESTART checkpoint from here made the writer sleep in its busy handler instead).
fn upkeep(
    mut checkpointer: Checkpointer,
    stopped: std::sync::mpsc::Receiver<()>,
    writer: tokio::sync::mpsc::Sender<Job>,
    signals: &Signals,
) {
    // Each round copies a few milliseconds' worth of pages at once. At normal priority those
    // bursts took a CPU from the HTTP workers and the login writer, and the logins around
    // them waited; at the lowest they run on time the logins leave unused (the login
    // scenarios leave a tenth of the machine idle). Nothing waits for this thread: the
    // writer's own checkpoint gives up at once if this one holds the lock, and a late round
    // copies more. See the README's Performance section for the figures.
    crate::cpu_share::give_way();
    let (mut last_log, mut idle_rounds) = (0, 0);
    let mut schedule = PassSchedule::default();
    loop {
        // Told to stop, or every handle is gone.
        let last = !matches!(
            stopped.recv_timeout(UPKEEP_EVERY),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout)
        );
        let frames = signals.wal_frames.load(Ordering::Relaxed);
        let result = if !last && !schedule.pass_due(frames) {
            Ok(())
        } else {
            checkpointer.pass(false).and_then(|passive| {
                if i64::from(passive.log) > RESTART_WAL_AT_FRAMES {
                    checkpointer.close_in()?;
                    signals.wal_long.store(true, Ordering::Relaxed);
                }
                let copied = passive.log > 0 && passive.checkpointed == passive.log;
                idle_rounds = if copied && passive.log == last_log {
                    idle_rounds + 1
                } else {
                    0
                };
                last_log = passive.log;
                if last || idle_rounds >= TRUNCATE_WAL_AFTER_IDLE_ROUNDS {
                    // Quiet for a while, or the end: a login arriving now waits for this
                    // briefly.
                    idle_rounds = 0;
                    checkpointer
                        .conn()
                        .batch_execute("PRAGMA wal_checkpoint(TRUNCATE);")?;
                }
                Ok(())
            })
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "checkpointing the WAL failed");
        }
        if last {
            return;
        }
        if !signals.indexing_waiting.load(Ordering::Relaxed) {
            // Renames reach the index through a table the triggers fill, whoever made them
            // (a login, the profile API, a tool): looking costs a page read a round.
            match nickname_index::renames_waiting(checkpointer.conn()) {
                Ok(true) => signals.indexing_waiting.store(true, Ordering::Relaxed),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "reading the renamed users failed"),
            }
        }
        if signals.indexing_waiting.load(Ordering::Relaxed) {
            // A full queue means the writer is busy with logins; the next round asks again.
            let _ = writer.try_send(Job::IndexNicknames);
        }
    }
}

/// Most checkpoint passes [`Checkpointer::close_in`] runs back to back.
const CLOSE_IN_PASSES: u32 = 8;

/// Frames written during a pass below which [`Checkpointer::close_in`] stops.
const CLOSE_IN_FRAMES: i32 = 128;

/// The upkeep thread's connection, whose checkpoints sync the database file in the second
/// half of each WAL cycle.
///
/// SQLite syncs the database file only at a checkpoint that copies every frame, which under
/// constant logins is the writer's own before the WAL starts over: that sync wrote out all
/// the pages the upkeep thread had copied since the last restart, about a second's worth,
/// while every login waited. Synced round by round here once the WAL is half its length,
/// the file has little left for it. From the start of each cycle, the rounds wrote pages
/// copied in several of them out several times: 5.2-6.1 µs of this thread's CPU a login in
/// the bench's new-users, against 4.6-4.8 from half way (three rounds each way).
pub(super) struct Checkpointer {
    conn: DbConnection,
    /// SQLite's own handle on the database file (an `fsync` through a second descriptor
    /// would be as good, but closing that descriptor would drop every POSIX lock this
    /// process holds on the file); `None` for a database in memory.
    database_file: Option<NonNull<ffi::sqlite3_file>>,
    /// What the previous pass found.
    last: Option<CheckpointResult>,
    /// WAL length (frames) past which every pass syncs.
    sync_past_frames: i64,
    /// Syncs of the database file so far.
    syncs: u64,
}

// SAFETY: the file handle belongs to `conn`, which lives as long as it and moves with it;
// only the thread that owns both uses either.
unsafe impl Send for Checkpointer {}

impl Checkpointer {
    /// Opens `database_url` for checkpoints.
    pub(super) fn establish(database_url: &str) -> anyhow::Result<Self> {
        let (mut conn, db) = super::writer_statements::establish_with_handle(database_url)
            .with_context(|| format!("opening the database {database_url} for checkpoints"))?;
        super::apply_connection_pragmas(&mut conn)
            .context("setting up the upkeep thread's connection")?;
        let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
        // SAFETY: `db` is the open handle of `conn`; SQLITE_FCNTL_FILE_POINTER writes a
        // `sqlite3_file *` to its argument. The file stays open as long as the connection.
        let rc = unsafe {
            ffi::sqlite3_file_control(
                db.as_ptr(),
                c"main".as_ptr(),
                ffi::SQLITE_FCNTL_FILE_POINTER,
                (&raw mut file).cast(),
            )
        };
        let database_file = NonNull::new(file)
            // SAFETY: a non-null file pointer from SQLite points at an open file.
            .filter(|file| rc == ffi::SQLITE_OK && !unsafe { file.as_ref() }.pMethods.is_null());
        Ok(Self {
            conn,
            database_file,
            last: None,
            sync_past_frames: RESTART_WAL_AT_FRAMES / 2,
            syncs: 0,
        })
    }

    fn conn(&mut self) -> &mut DbConnection {
        &mut self.conn
    }

    /// Copies every committed WAL frame not yet in the database file into it, without
    /// waiting for anyone; then, if that copied anything, syncs the file when `closing_in`
    /// or when the WAL is past half the length at which it starts over.
    fn pass(&mut self, closing_in: bool) -> QueryResult<CheckpointResult> {
        let passive = diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)")
            .get_result::<CheckpointResult>(&mut self.conn)?;
        let copied = passive.checkpointed > 0
            && self.last.is_none_or(|last| {
                (last.log, last.checkpointed) != (passive.log, passive.checkpointed)
            });
        self.last = Some(passive);
        let due = closing_in || i64::from(passive.log) > self.sync_past_frames;
        if let (true, Some(file)) = (copied && due, self.database_file) {
            // SAFETY: the file is open (see `database_file`), and used by this thread only,
            // between statements.
            let rc = unsafe {
                let methods = &*file.as_ref().pMethods;
                methods.xSync.map_or(ffi::SQLITE_OK, |sync| {
                    sync(file.as_ptr(), ffi::SQLITE_SYNC_NORMAL)
                })
            };
            if rc == ffi::SQLITE_OK {
                self.syncs += 1;
            } else {
                tracing::warn!(code = rc, "syncing the database file failed");
            }
        }
        Ok(passive)
    }

    /// Before the writer is asked to let the WAL start over (its checkpoint copies and
    /// syncs what is left, every login waiting): copies and syncs what was committed during
    /// the last pass, and again, until a pass finds little new.
    fn close_in(&mut self) -> QueryResult<()> {
        for _ in 0..CLOSE_IN_PASSES {
            let before = self.last.map_or(0, |last| last.log);
            // Negative when the WAL started over meanwhile: nothing is left to close in on.
            let written_meanwhile = self.pass(true)?.log - before;
            if written_meanwhile < CLOSE_IN_FRAMES {
                break;
            }
        }
        Ok(())
    }
}

/// Records every login of `batch` in one write transaction: one commit (one WAL append) for
/// them all. Any error rolls all of them back.
fn commit_together(
    conn: &mut WriterConnection,
    logins: &[LoginAttempt],
) -> QueryResult<Vec<LoginOutcome>> {
    // Not `immediate_transaction`: diesel runs BEGIN and COMMIT through sqlite3_exec, which
    // compiles them anew every time (about 1 µs a login in the profile); these stay prepared.
    let (conn, prepared) = conn.split();
    Transaction::BeginImmediate.execute(conn)?;
    let outcomes = LoginBatch::begin(conn).and_then(|mut batch| {
        prepared.openids.catch_up(conn, batch.newest_user())?;
        let outcomes = logins
            .iter()
            .map(|login| batch.record(conn, Some(&mut *prepared), login))
            .collect::<QueryResult<Vec<_>>>()?;
        batch.finish(conn, Some(prepared))?;
        // A slice of earlier new users into the openid lookup, in this commit rather than one
        // of its own (a round's larger slices stalled the logins behind them).
        let created = outcomes
            .iter()
            .filter(|o| matches!(o, LoginOutcome::LoggedIn { is_new: true, .. }))
            .count();
        let slice = prepared.openids.slice_for_batch(created);
        if let Some(slice) = &slice {
            prepared.write_openid_slice(conn, slice)?;
        }
        Ok((outcomes, slice))
    });
    match outcomes.and_then(|outcomes| Transaction::Commit.execute(conn).map(|_| outcomes)) {
        Ok((outcomes, slice)) => {
            if let Some(slice) = slice {
                prepared.openids.moved(slice);
            }
            Ok(outcomes)
        }
        Err(e) => {
            // A failed COMMIT can leave the transaction open too. A failed INSERT OR
            // ROLLBACK (see `InsertUsers`) has ended it already.
            match Transaction::Rollback.execute(conn) {
                Err(diesel::result::Error::DatabaseError(_, info))
                    if info.message().contains("no transaction is active") => {}
                Err(rollback) => {
                    tracing::warn!(error = %rollback, "rolling back a failed batch of logins failed")
                }
                Ok(_) => {}
            }
            Err(e)
        }
    }
}

/// The statements that begin and end the writer's transactions.
#[derive(Clone, Copy)]
enum Transaction {
    BeginImmediate,
    Commit,
    Rollback,
}

impl diesel::query_builder::QueryFragment<super::DbBackend> for Transaction {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, super::DbBackend>,
    ) -> QueryResult<()> {
        out.push_sql(match self {
            Transaction::BeginImmediate => "BEGIN IMMEDIATE",
            Transaction::Commit => "COMMIT",
            Transaction::Rollback => "ROLLBACK",
        });
        Ok(())
    }
}

// Not a static id: there are three texts, so diesel keys its cache of prepared statements by
// the text, which is cheap for texts this short.
impl diesel::query_builder::QueryId for Transaction {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl RunQueryDsl<DbConnection> for Transaction {}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::prelude::*;

    fn login(openid: &str, token_hash: &str) -> LoginAttempt {
        let now = crate::db::now();
        LoginAttempt {
            openid: openid.to_owned(),
            unionid: None,
            session_key: "k".to_owned(),
            nickname: None,
            avatar_url: None,
            ip: None,
            user_agent: None,
            token_hash: token_hash.to_owned(),
            token_expires_at: now + chrono::TimeDelta::hours(1),
            now,
        }
    }

    /// A migrated database in a folder that lives as long as the returned guard.
    fn fresh_database() -> (tempfile::TempDir, crate::db::DbPool) {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("w.db");
        let pool = crate::db::connect(url.to_str().unwrap()).unwrap();
        (dir, pool)
    }

    /// Nice values of this process's threads called `name`.
    #[cfg(target_os = "linux")]
    fn nice_of_threads(name: &str) -> Vec<i32> {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .flatten()
            .filter_map(|task| {
                let tid: i32 = task.file_name().to_str()?.parse().ok()?;
                let comm = std::fs::read_to_string(task.path().join("comm")).ok()?;
                (comm.trim() == name).then(|| crate::cpu_share::thread_nice(tid))?
            })
            .collect()
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_upkeep_thread_runs_at_the_lowest_priority_and_the_writer_at_its_starters() {
        let (dir, _pool) = fresh_database();
        let writer = LoginWriter::start(dir.path().join("w.db").to_str().unwrap()).unwrap();
        // Other tests start writers too: wait until every upkeep thread has lowered itself
        // (each does as it starts).
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let upkeep = loop {
            let nice = nice_of_threads("db-upkeep");
            if (!nice.is_empty() && nice.iter().all(|&n| n == 19))
                || std::time::Instant::now() > deadline
            {
                break nice;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        assert!(!upkeep.is_empty(), "no upkeep thread found");
        assert!(
            upkeep.iter().all(|&n| n == 19),
            "upkeep threads' nice values: {upkeep:?}"
        );
        // The writer keeps the priority it was started with, this thread's.
        // SAFETY: gettid has no preconditions.
        let normal = crate::cpu_share::thread_nice(unsafe { libc::gettid() }).unwrap();
        let writers = nice_of_threads("login-writer");
        assert!(!writers.is_empty(), "no login writer thread found");
        assert!(
            writers.iter().all(|&n| n == normal),
            "login writers' nice values: {writers:?}, this thread's: {normal}"
        );
        writer.close();
    }

    #[test]
    fn while_the_writer_keeps_committing_the_upkeep_thread_copies_every_sixteenth_round() {
        let mut schedule = PassSchedule::default();
        let mut frames = 0;
        // The first round finds the WAL as a fresh schedule expects it: a quiet one.
        assert!(schedule.pass_due(frames));
        let passes: Vec<u32> = (1..=3 * PASS_EVERY_ROUNDS)
            .filter(|_| {
                frames += 40;
                schedule.pass_due(frames)
            })
            .collect();
        assert_eq!(
            passes,
            [
                PASS_EVERY_ROUNDS,
                2 * PASS_EVERY_ROUNDS,
                3 * PASS_EVERY_ROUNDS
            ]
        );
    }

    #[test]
    fn a_round_without_a_commit_copies_at_once() {
        let mut schedule = PassSchedule::default();
        assert!(schedule.pass_due(0));
        assert!(!schedule.pass_due(7), "a commit since the last round");
        assert!(schedule.pass_due(7), "none since");
        assert!(schedule.pass_due(7), "still none");
        assert!(!schedule.pass_due(9));
    }

    #[test]
    fn a_wal_long_enough_to_start_over_is_copied_in_the_round_that_sees_it() {
        let mut schedule = PassSchedule::default();
        assert!(schedule.pass_due(0));
        assert!(!schedule.pass_due(RESTART_WAL_AT_FRAMES - 100));
        assert!(!schedule.pass_due(RESTART_WAL_AT_FRAMES));
        assert!(schedule.pass_due(RESTART_WAL_AT_FRAMES + 1));
        // Until the writer starts it over, every round asks again.
        assert!(schedule.pass_due(RESTART_WAL_AT_FRAMES + 30));
        assert!(!schedule.pass_due(12), "started over");
    }

    #[test]
    fn the_writers_connection_reports_the_wal_length_after_each_commit() {
        let (dir, _pool) = fresh_database();
        let mut writer = writer_connection(&dir);
        let length = Arc::new(AtomicI64::new(-1));
        writer.report_wal_length(length.clone());
        let mut frames = Vec::new();
        for (openid, hash) in [("oA", "h1"), ("oB", "h2")] {
            record_batch(&mut writer, &[login(openid, hash)])[0]
                .as_ref()
                .unwrap();
            frames.push(length.load(Ordering::Relaxed));
        }
        assert!(
            0 < frames[0] && frames[0] < frames[1],
            "frames after each commit: {frames:?}"
        );
        // Copied and started over: the next commit's frames are the WAL's first.
        writer
            .conn()
            .batch_execute("PRAGMA wal_checkpoint(RESTART);")
            .unwrap();
        record_batch(&mut writer, &[login("oC", "h3")])[0]
            .as_ref()
            .unwrap();
        let after = length.load(Ordering::Relaxed);
        assert!(
            0 < after && after < frames[1],
            "{after} frames after starting over, {frames:?} before"
        );
    }

    /// The login writer's connection to the database `fresh_database` made in `dir`.
    fn writer_connection(dir: &tempfile::TempDir) -> WriterConnection {
        WriterConnection::establish(dir.path().join("w.db").to_str().unwrap()).unwrap()
    }

    fn users(conn: &mut DbConnection) -> Vec<String> {
        use crate::db::schema::users::dsl::*;
        users.order(id).select(openid).load(conn).unwrap()
    }

    #[test]
    fn a_batch_commits_every_login_together() {
        let (dir, _pool) = fresh_database();
        let mut writer = writer_connection(&dir);
        let results = record_batch(
            &mut writer,
            &[login("oA", "h1"), login("oB", "h2"), login("oA", "h3")],
        );
        let new: Vec<bool> = results
            .into_iter()
            .map(|r| match r.unwrap() {
                LoginOutcome::LoggedIn { is_new, .. } => is_new,
                LoginOutcome::Disabled => panic!("nobody is disabled"),
            })
            .collect();
        assert_eq!(
            new,
            [true, true, false],
            "the second oA is a returning login"
        );
        assert_eq!(users(writer.conn()), ["oA", "oB"]);
        let oa = User::find_by_openid(writer.conn(), "oA").unwrap().unwrap();
        assert_eq!(
            oa.login_count, 2,
            "oA's row is written once, with both logins"
        );
        let oa_logins: i64 = crate::db::schema::logins::table
            .filter(crate::db::schema::logins::user_id.eq(oa.id))
            .count()
            .get_result(writer.conn())
            .unwrap();
        assert_eq!(oa_logins, 2);
    }

    #[test]
    fn a_users_logins_are_listed_newest_first_across_batches_and_within_one() {
        let (dir, pool) = fresh_database();
        let mut writer = writer_connection(&dir);
        record_batch(&mut writer, &[login("oOff", "h0")]);
        let off = User::find_by_openid(writer.conn(), "oOff")
            .unwrap()
            .unwrap();
        User::disable(&mut pool.get().unwrap(), off.id, "spam", crate::db::now()).unwrap();
        let login_ids = |results: Vec<Result<LoginOutcome, String>>| -> Vec<Option<i64>> {
            results
                .into_iter()
                .map(|r| match r.unwrap() {
                    LoginOutcome::LoggedIn { login_id, .. } => Some(login_id),
                    LoginOutcome::Disabled => None,
                })
                .collect()
        };
        // oA is new in the first batch and logs in twice there; a disabled user's refused
        // login in between records nothing.
        let first = login_ids(record_batch(
            &mut writer,
            &[
                login("oA", "h1"),
                login("oOff", "h2"),
                login("oB", "h3"),
                login("oA", "h4"),
            ],
        ));
        assert_eq!(first, [Some(2), None, Some(3), Some(4)], "no id is skipped");
        let second = login_ids(record_batch(
            &mut writer,
            &[login("oA", "h5"), login("oB", "h6"), login("oA", "h7")],
        ));
        assert_eq!(second, [Some(5), Some(6), Some(7)]);

        let conn = &mut pool.get().unwrap();
        let listed = |conn: &mut DbConnection, openid: &str, limit: i64| -> Vec<i64> {
            let user = User::find_by_openid(conn, openid).unwrap().unwrap();
            User::recent_logins(conn, user.id, limit)
                .unwrap()
                .iter()
                .map(|l| l.id)
                .collect()
        };
        assert_eq!(listed(conn, "oA", 50), [7, 5, 4, 2]);
        assert_eq!(listed(conn, "oB", 50), [6, 3]);
        assert_eq!(listed(conn, "oA", 3), [7, 5, 4], "at most the limit");
        assert_eq!(listed(conn, "oOff", 50), [1]);
        assert_eq!(
            User::find_by_openid(conn, "oA")
                .unwrap()
                .unwrap()
                .last_login_id,
            Some(7)
        );
    }

    #[test]
    fn a_batch_whose_rows_conflict_is_undone_whole_and_then_committed_login_by_login() {
        let (dir, _pool) = fresh_database();
        let mut writer = writer_connection(&dir);
        record_batch(&mut writer, &[login("oOld", "h0")])[0]
            .as_ref()
            .unwrap();
        // Two new users that cannot both be stored: the batch's INSERT of them fails after
        // the batch has already updated oOld.
        writer
            .conn()
            .batch_execute("CREATE UNIQUE INDEX one_per_key ON users (session_key)")
            .unwrap();
        let mut second = login("oP2", "h3");
        second.session_key = "shared".into();
        let mut first = login("oP1", "h2");
        first.session_key = "shared".into();
        let results = record_batch(&mut writer, &[login("oOld", "h1"), first, second]);
        assert!(results[0].is_ok() && results[1].is_ok());
        assert!(
            results[2].as_ref().is_err_and(|e| e.contains("UNIQUE")),
            "{:?}",
            results[2].as_ref().err()
        );
        assert_eq!(users(writer.conn()), ["oOld", "oP1"]);
        let old = User::find_by_openid(writer.conn(), "oOld")
            .unwrap()
            .unwrap();
        assert_eq!(
            old.login_count, 2,
            "the failed batch's update of oOld was undone with it, so it counts once"
        );
        let logins: i64 = crate::db::schema::logins::table
            .count()
            .get_result(writer.conn())
            .unwrap();
        assert_eq!(logins, 3, "oOld twice and oP1");
        // The connection still works, outside any transaction.
        let mut after = login("oAfter", "h4");
        after.session_key = "another".into();
        let after = record_batch(&mut writer, &[after]);
        assert!(after[0].is_ok(), "{:?}", after[0].as_ref().err());
    }

    #[tokio::test]
    async fn new_users_nicknames_are_indexed_soon_after_their_login() {
        let (dir, pool) = fresh_database();
        let writer = LoginWriter::start(dir.path().join("w.db").to_str().unwrap()).unwrap();
        let mut attempt = login("oIndexed", "h1");
        attempt.nickname = Some(crate::domain::Nickname::parse("Indexed Panda").unwrap());
        writer.record(attempt).await.unwrap();
        let mut conn = pool.get().unwrap();
        let started = std::time::Instant::now();
        while nickname_index::backlog(&mut conn).unwrap().any() {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "the new user was never indexed"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let indexed: i64 = diesel::sql_query(
            "SELECT COUNT(*) AS n FROM users_nickname_fts WHERE nickname LIKE '%d Pan%'",
        )
        .get_result::<Count>(&mut conn)
        .unwrap()
        .n;
        assert_eq!(indexed, 1);
    }

    #[tokio::test]
    async fn a_quiet_writer_empties_the_wal_file() {
        let (dir, _pool) = fresh_database();
        let db = dir.path().join("w.db");
        let writer = LoginWriter::start(db.to_str().unwrap()).unwrap();
        for i in 0..50 {
            writer
                .record(login(&format!("oQuiet{i}"), &format!("h{i}")))
                .await
                .unwrap();
        }
        let wal = db.with_extension("db-wal");
        assert!(std::fs::metadata(&wal).unwrap().len() > 0);
        let started = std::time::Instant::now();
        while std::fs::metadata(&wal).map_or(0, |m| m.len()) > 0 {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the WAL file was never emptied"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Commits `rows` new users through a connection of its own.
    fn commit_users(url: &str, from: i64, rows: i64) {
        let mut conn = crate::db::DbConnection::establish(url).unwrap();
        conn.batch_execute(&format!(
            "WITH RECURSIVE n(v) AS (SELECT {from} UNION ALL SELECT v + 1 FROM n WHERE v < {})
             INSERT INTO users (id, openid, session_key, created_at, updated_at, last_login_at)
             SELECT v, 'oSync' || v, 'k', '2026-12-02 00:00:00', '2026-12-02 00:00:00',
                    '2026-12-02 00:00:00'
             FROM n",
            from + rows - 1
        ))
        .unwrap();
    }

    /// A fresh database, its path, and the upkeep thread's checkpoints on it.
    fn fresh_checkpointer() -> (tempfile::TempDir, String, Checkpointer) {
        let (dir, _pool) = fresh_database();
        let url = dir.path().join("w.db").to_str().unwrap().to_owned();
        let checkpointer = Checkpointer::establish(&url).unwrap();
        (dir, url, checkpointer)
    }

    #[test]
    fn a_checkpoint_syncs_what_it_copied_once_the_wal_is_long_and_an_idle_one_does_not() {
        let (_dir, url, mut checkpointer) = fresh_checkpointer();
        let url = url.as_str();
        assert!(checkpointer.database_file.is_some());
        commit_users(url, 1, 500);
        let copied = checkpointer.pass(false).unwrap();
        assert!(copied.log > 0 && copied.checkpointed == copied.log);
        assert_eq!(checkpointer.syncs, 0, "a short WAL: copied, not synced");
        checkpointer.sync_past_frames = 0;
        commit_users(url, 501, 500);
        checkpointer.pass(false).unwrap();
        assert_eq!(checkpointer.syncs, 1, "a long WAL: copied and synced");
        checkpointer.pass(false).unwrap();
        assert_eq!(
            checkpointer.syncs, 1,
            "nothing new was copied, nothing to sync"
        );
    }

    #[test]
    fn closing_in_syncs_what_it_copies_however_short_the_wal() {
        let (_dir, url, mut checkpointer) = fresh_checkpointer();
        let url = url.as_str();
        commit_users(url, 1, 500);
        checkpointer.pass(true).unwrap();
        assert_eq!(checkpointer.syncs, 1);
        checkpointer.pass(true).unwrap();
        assert_eq!(checkpointer.syncs, 1, "nothing new was copied");
    }

    #[test]
    fn a_database_in_memory_has_no_file_to_sync() {
        let mut checkpointer = Checkpointer::establish(":memory:").unwrap();
        assert!(checkpointer.database_file.is_none());
        checkpointer.pass(true).unwrap();
        assert_eq!(checkpointer.syncs, 0);
    }

    #[test]
    fn closing_in_copies_whatever_was_committed_since_the_last_pass() {
        let (_dir, url, mut checkpointer) = fresh_checkpointer();
        let url = url.as_str();
        commit_users(url, 1, 100);
        checkpointer.pass(false).unwrap();
        commit_users(url, 101, 2000);
        checkpointer.close_in().unwrap();
        let after = checkpointer.last.unwrap();
        // The WAL may have started over after the first pass copied all of it.
        assert!(after.log > 0, "the second commit is in the WAL");
        assert_eq!(after.checkpointed, after.log, "and copied by closing in");
        assert_eq!(checkpointer.syncs, 1, "closing in synced what it copied");
        let mut other = crate::db::DbConnection::establish(url).unwrap();
        let left = diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)")
            .get_result::<CheckpointResult>(&mut other)
            .unwrap();
        assert_eq!(
            (left.log, left.checkpointed),
            (after.log, after.log),
            "nothing was left for anyone else to copy"
        );
    }

    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }

    #[test]
    fn a_user_whose_row_the_prepared_reader_does_not_take_still_logs_in() {
        let (dir, _pool) = fresh_database();
        let mut writer = writer_connection(&dir);
        record_batch(&mut writer, &[login("oOdd", "h1")])[0]
            .as_ref()
            .unwrap();
        // A time in a form only diesel's reader takes, as a tool might write it.
        writer
            .conn()
            .batch_execute("UPDATE users SET created_at = '2026-11-25T01:02:03'")
            .unwrap();
        let again = record_batch(&mut writer, &[login("oOdd", "h2")]);
        match again[0].as_ref().unwrap() {
            LoginOutcome::LoggedIn { user, is_new, .. } => {
                assert!(!is_new);
                assert_eq!(user.login_count, 2);
            }
            LoginOutcome::Disabled => panic!("nobody is disabled"),
        }
    }

    #[test]
    fn a_failing_login_fails_alone_and_the_rest_of_its_batch_is_kept() {
        let (dir, _pool) = fresh_database();
        let mut writer = writer_connection(&dir);
        // Something only one login of the batch runs into (a full disk would be another).
        writer
            .conn()
            .batch_execute(
                "CREATE TRIGGER refuse_ob BEFORE INSERT ON users WHEN new.openid = 'oB'
             BEGIN SELECT RAISE(ABORT, 'oB refused'); END;",
            )
            .unwrap();
        let results = record_batch(
            &mut writer,
            &[login("oA", "h1"), login("oB", "h2"), login("oC", "h3")],
        );
        assert!(results[0].is_ok());
        assert!(
            results[1].as_ref().is_err_and(|e| e.contains("oB refused")),
            "{:?}",
            results[1].as_ref().err()
        );
        assert!(results[2].is_ok());
        assert_eq!(users(writer.conn()), ["oA", "oC"]);
        let logins: i64 = crate::db::schema::logins::table
            .count()
            .get_result(writer.conn())
            .unwrap();
        assert_eq!(logins, 2, "oB's login is not recorded");
    }

    #[test]
    fn the_short_term_index_waits_while_logins_keep_the_writer_busy_but_not_for_ever() {
        let behind = |pairs| Backlog { trigrams: 0, pairs };
        let all = nickname_index::MOST_AT_ONCE;
        assert_eq!(pairs_this_round(0, behind(10)), all, "quiet");
        assert_eq!(
            pairs_this_round(QUIET_LOGINS, behind(10)),
            all,
            "a trickle of logins"
        );
        assert_eq!(pairs_this_round(QUIET_LOGINS + 1, behind(10)), 0, "busy");
        assert_eq!(
            pairs_this_round(10_000, behind(MOST_PAIRS_BEHIND - 1)),
            0,
            "busy, and not too far behind"
        );
        assert_eq!(
            pairs_this_round(10_000, behind(MOST_PAIRS_BEHIND)),
            PAIRS_IN_A_BUSY_ROUND,
            "busy, but as far behind as it may get: a small batch, so logins wait less"
        );
        assert_eq!(
            pairs_this_round(QUIET_LOGINS, behind(MOST_PAIRS_BEHIND)),
            all,
            "quiet and far behind: a full batch"
        );
    }

    /// The writer's connection as [`LoginWriter::start`] readies it: pending openids read,
    /// the filter of stored ones built.
    fn started_writer(dir: &tempfile::TempDir, pool: &crate::db::DbPool) -> WriterConnection {
        let mut writer = writer_connection(dir);
        writer.load_pending_openids().unwrap();
        writer
            .split()
            .1
            .openids
            .build_filter(&mut pool.get().unwrap())
            .unwrap();
        writer
    }

    /// The openids in the openid lookup, in its order.
    fn looked_up(conn: &mut DbConnection) -> Vec<(String, i64)> {
        use crate::db::schema::user_openids::dsl::*;
        user_openids.select((openid, user_id)).load(conn).unwrap()
    }

    fn new_user_ids(results: Vec<Result<LoginOutcome, String>>) -> Vec<(i64, bool)> {
        results
            .into_iter()
            .map(|r| match r.unwrap() {
                LoginOutcome::LoggedIn { user, is_new, .. } => (user.id, is_new),
                LoginOutcome::Disabled => panic!("nobody is disabled"),
            })
            .collect()
    }

    #[test]
    fn past_the_pending_they_keep_login_batches_move_new_users_into_the_lookup_lowest_openids_first(
    ) {
        let (dir, pool) = fresh_database();
        let mut writer = started_writer(&dir, &pool);
        writer.split().1.openids.keep_at_most(1000);
        let openids: Vec<String> = (0..1500)
            .map(|n| format!("o{:04}", (n * 7919) % 10_000))
            .collect();
        let attempts: Vec<_> = openids.iter().map(|o| login(o, "h")).collect();
        let created = new_user_ids(record_batch(&mut writer, &attempts));
        assert!(created.iter().all(|&(_, new)| new));
        let reader = &mut pool.get().unwrap();
        assert!(
            looked_up(reader).is_empty(),
            "none pending before this batch"
        );
        // 500 past the 1000 kept: the batch's one new user, 500 / 64 and one more.
        let more: Vec<_> = (0..3).map(|n| login(&format!("oMore{n}"), "h")).collect();
        record_batch(&mut writer, &more[..1]);
        let first = looked_up(reader);
        let mut sorted = openids.clone();
        sorted.sort();
        let firsts: Vec<&str> = first.iter().map(|(o, _)| o.as_str()).collect();
        assert_eq!(firsts, sorted[..9], "the lowest openids first");
        record_batch(&mut writer, &more[1..]);
        let firsts: Vec<String> = looked_up(reader).into_iter().map(|(o, _)| o).collect();
        assert_eq!(firsts, sorted[..19], "the sweep goes on where it stopped");
        // Moved over or not: found by the writer and by everyone else, the same user.
        for (openid, (id, _)) in openids.iter().zip(&created).step_by(97) {
            let again = new_user_ids(record_batch(&mut writer, &[login(openid, "h2")]));
            assert_eq!(again, [(*id, false)], "{openid} logging in again");
            let found = User::find_by_openid(reader, openid).unwrap().unwrap();
            assert_eq!(found.id, *id);
        }
        let through = || -> i64 {
            use crate::db::schema::user_openids_progress::dsl::*;
            user_openids_progress
                .select(indexed_through)
                .get_result(&mut pool.get().unwrap())
                .unwrap()
        };
        assert_eq!(through(), 0, "the sweep has not ended");
        let before = looked_up(reader).len();
        let (db, statements) = writer.split();
        statements.move_some_openids(db, false).unwrap();
        assert_eq!(
            looked_up(reader).len(),
            before,
            "a busy round leaves them to the batches"
        );
        statements.move_some_openids(db, true).unwrap();
        assert!(!statements.openids.any(), "a quiet round moves them all");
        assert_eq!(through(), 1503);
        let mut all = looked_up(reader);
        all.sort_by_key(|&(_, id)| id);
        let mut expected: Vec<(String, i64)> = openids
            .iter()
            .zip(&created)
            .map(|(o, &(id, _))| (o.clone(), id))
            .collect();
        expected.extend((0..3).map(|n| (format!("oMore{n}"), 1501 + n)));
        assert_eq!(all, expected);
        assert_eq!(users(reader).len(), 1503, "no user twice");
    }

    #[test]
    fn a_quiet_round_moves_every_pending_openid_over_at_once() {
        let (dir, pool) = fresh_database();
        let mut writer = writer_connection(&dir);
        writer.load_pending_openids().unwrap();
        let attempts: Vec<_> = (0..2000).map(|n| login(&format!("oQ{n}"), "h")).collect();
        record_batch(&mut writer, &attempts);
        let (db, statements) = writer.split();
        statements.move_some_openids(db, true).unwrap();
        assert!(!statements.openids.any());
        assert_eq!(looked_up(&mut pool.get().unwrap()).len(), 2000);
    }

    #[test]
    fn after_a_restart_mid_sweep_the_users_not_moved_over_are_found_and_not_created_again() {
        let (dir, pool) = fresh_database();
        let mut writer = writer_connection(&dir);
        writer.load_pending_openids().unwrap();
        let openids: Vec<String> = (0..1200).map(|n| format!("oR{n}")).collect();
        let attempts: Vec<_> = openids.iter().map(|o| login(o, "h")).collect();
        let created = new_user_ids(record_batch(&mut writer, &attempts));
        // Some moved over by the next batch, the rest not.
        writer.split().1.openids.keep_at_most(600);
        record_batch(&mut writer, &[login(&openids[0], "h1")]);
        assert_eq!(
            looked_up(&mut pool.get().unwrap()).len(),
            10,
            "600 / 64 and one more"
        );
        drop(writer);

        let mut writer = started_writer(&dir, &pool);
        let attempts: Vec<_> = openids.iter().map(|o| login(o, "h2")).collect();
        let again = new_user_ids(record_batch(&mut writer, &attempts));
        let expected: Vec<(i64, bool)> = created.iter().map(|&(id, _)| (id, false)).collect();
        assert_eq!(again, expected);
        let (db, statements) = writer.split();
        statements.move_some_openids(db, true).unwrap();
        assert_eq!(looked_up(&mut pool.get().unwrap()).len(), 1200);
        assert_eq!(users(&mut pool.get().unwrap()).len(), 1200);
    }

    #[test]
    fn a_user_stored_by_someone_else_is_found_by_the_writer_whose_filter_never_saw_it() {
        let (dir, pool) = fresh_database();
        let mut writer = started_writer(&dir, &pool);
        record_batch(&mut writer, &[login("oMine", "h")]);
        pool.get()
            .unwrap()
            .batch_execute(
                "INSERT INTO users (id, openid, session_key, created_at, updated_at, last_login_at)
                 VALUES (7, 'oImported', 'k', '2026-01-01 00:00:00', '2026-01-01 00:00:00',
                         '2026-01-01 00:00:00')",
            )
            .unwrap();
        let outcome = new_user_ids(record_batch(&mut writer, &[login("oImported", "h2")]));
        assert_eq!(outcome, [(7, false)]);
        let (db, statements) = writer.split();
        statements.move_some_openids(db, true).unwrap();
        let mut lookup = looked_up(&mut pool.get().unwrap());
        lookup.sort();
        assert_eq!(
            lookup,
            [("oImported".to_owned(), 7), ("oMine".to_owned(), 1)]
        );
    }

    #[test]
    fn a_large_import_goes_into_the_openid_lookup_at_start_instead_of_into_memory() {
        let (_dir, pool) = fresh_database();
        pool.get()
            .unwrap()
            .batch_execute(
                "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 300)
                 INSERT INTO users (id, openid, session_key, created_at, updated_at, last_login_at)
                 SELECT n, 'oBulk' || n, 'k', '2026-01-01 00:00:00', '2026-01-01 00:00:00',
                        '2026-01-01 00:00:00' FROM seq;",
            )
            .unwrap();
        let conn = &mut pool.get().unwrap();
        let held =
            crate::db::openid_index::PendingOpenids::load_holding_at_most(conn, 100).unwrap();
        assert!(!held.any(), "all moved over in SQL");
        assert_eq!(looked_up(conn).len(), 300);
        let small =
            crate::db::openid_index::PendingOpenids::load_holding_at_most(conn, 100).unwrap();
        assert!(!small.any());
    }

    #[test]
    fn a_stop_moves_every_pending_new_user_into_the_openid_lookup() {
        let (dir, pool) = fresh_database();
        let url = dir.path().join("w.db");
        let writer = LoginWriter::start(url.to_str().unwrap()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            for n in 0..200 {
                writer
                    .record(login(&format!("oStop{n}"), "h"))
                    .await
                    .unwrap();
            }
        });
        // Far fewer than a login batch leaves pending: only a quiet round, 25 ms or more
        // from now, or the stop moves them.
        writer.close();
        let conn = &mut pool.get().unwrap();
        assert_eq!(looked_up(conn).len(), 200);
        let through: i64 = crate::db::schema::user_openids_progress::table
            .select(crate::db::schema::user_openids_progress::indexed_through)
            .get_result(conn)
            .unwrap();
        assert_eq!(through, 200);
    }
}
