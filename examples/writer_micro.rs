//! The login writer alone, without HTTP: 64 tasks record logins as fast as the writer
//! commits them, so the figure is the writer's own cost per login. For profiling it:
//!
//!     cargo run --release --example writer_micro [-- --returning]
//!
//! `SETUP_SQL` runs against the fresh database first (to try a schema change, say).
use std::time::Instant;

use wxlogin::db::{LoginAttempt, LoginWriter};

/// Logins a round, unless `LOGINS` says otherwise (fewer, under valgrind).
fn logins_per_round() -> u64 {
    std::env::var("LOGINS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000)
}
const TASKS: u64 = 64;

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
        rt.block_on(async {
            let tasks: Vec<_> = (0..TASKS)
                .map(|task| {
                    let writer = writer.clone();
                    tokio::spawn(async move {
                        for i in 0..logins_per_round() / TASKS {
                            let openid = if returning {
                                format!("oReturning{}", (task * 7919 + i) % 1000)
                            } else {
                                format!("oNew{round}_{task}_{i}")
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
        println!(
            "round {round}: {:.0} logins/s, {:.1} us a login",
            logins_per_round() as f64 / took,
            took * 1e6 / logins_per_round() as f64
        );
    }
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
