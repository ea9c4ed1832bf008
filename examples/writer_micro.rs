//! The login writer alone, without HTTP: 64 tasks record logins as fast as the writer
//! commits them, so the figure is the writer's own cost per login. For profiling it:
//!
//!     cargo run --release --example writer_micro [-- --returning]
//!
//! `SETUP_SQL` runs against the fresh database first (to try a schema change, say). `SEQ=1`
//! makes new users' openids in order instead of random-looking, to see what the randomness
//! costs (before openids went into their lookup in batches, 12 against 6 µs a login).
use std::time::Instant;

use wxlogin::db::{LoginAttempt, LoginWriter};

/// Logins a round, unless `LOGINS` says otherwise (fewer, under valgrind).
fn logins_per_round() -> u64 {
    std::env::var("LOGINS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000)
}
/// Logins in flight at once, unless `TASKS` says otherwise.
fn tasks() -> u64 {
    std::env::var("TASKS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(64)
}

fn main() {
    let returning = std::env::args().any(|a| a == "--returning");
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("writer.db").to_str().unwrap().to_owned();
    drop(wxlogin::db::connect(&url).unwrap());
    if let Ok(sql) = std::env::var("SETUP_SQL") {
        use diesel::connection::SimpleConnection;
        use diesel::Connection;
        let mut conn = wxlogin::db::DbConnection::establish(&url).unwrap();
        conn.batch_execute(&sql).unwrap();
    }
    let writer = LoginWriter::start(&url).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    for round in 0..3 {
        let started = Instant::now();
        let writer_cpu = writer_thread_cpu_secs();
        rt.block_on(async {
            let tasks: Vec<_> = (0..tasks())
                .map(|task| {
                    let writer = writer.clone();
                    tokio::spawn(async move {
                        for i in 0..logins_per_round() / tasks() {
                            let openid = if returning {
                                format!("oReturning{}", (task * 7919 + i) % 1000)
                            } else {
                                new_openid(round, task, i)
                            };
                            writer.record(attempt(openid)).await.unwrap();
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        });
        let took = started.elapsed().as_secs_f64();
        let writer_cpu = writer_thread_cpu_secs() - writer_cpu;
        println!(
            "round {round}: {:.0} logins/s, {:.1} us a login, writer thread CPU {:.1} us a login",
            logins_per_round() as f64 / took,
            took * 1e6 / logins_per_round() as f64,
            writer_cpu * 1e6 / logins_per_round() as f64
        );
    }
}

/// A new user's openid. Random-looking, as WeChat's are, so each new user lands at a random
/// place in the openid index, as in the bench (openids made in order went in at 64 places
/// and made new users look cheaper).
fn new_openid(round: u64, task: u64, i: u64) -> String {
    if std::env::var("SEQ").is_ok() {
        return format!("oMicro{:022}", round * 10_000_000 + i * 64 + task);
    }
    use sha2::Digest;
    let hash = sha2::Sha256::digest(format!("{round}_{task}_{i}"));
    format!("oMicro{}", &hex::encode(hash)[..22])
}

/// CPU time (user and system) the login writer's thread has used so far, from /proc.
fn writer_thread_cpu_secs() -> f64 {
    let mut ticks = 0u64;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != "login-writer" {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Fields after the parenthesised name: utime and stime are the 12th and 13th.
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        ticks += fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
    }
    // Linux reports these in clock ticks of 1/100 s (USER_HZ).
    ticks as f64 / 100.0
}

fn attempt(openid: String) -> LoginAttempt {
    let now = wxlogin::db::now();
    LoginAttempt {
        openid,
        unionid: None,
        session_key: "c2Vzc2lvbmtleXNlc3Npb24=".into(),
        nickname: Some(wxlogin::domain::Nickname::parse("新用户").unwrap()),
        avatar_url: None,
        ip: Some("127.0.0.1".into()),
        user_agent: Some("wxlogin-bench".into()),
        token_hash: wxlogin::auth::TokenSecret::generate().hash().to_owned(),
        token_expires_at: now + chrono::TimeDelta::days(7),
        now,
    }
}
