//! Pass/fail reliability tests against the compiled binary: load, races, SIGKILL crashes,
//! SIGTERM during load, and a dead upstream. `cargo run --release --example reliability`
//! runs the same scenarios against the release build and prints their figures.

#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;
mod scenarios;

use std::path::Path;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_wxlogin"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_distinct_logins_from_64_clients_all_succeed_without_database_locks() {
    let dir = tempfile::tempdir().unwrap();
    let report = scenarios::load(bin(), dir.path(), 1000, 64).await;
    println!("{report}");
    assert_eq!(report.ok, 1000, "{report}");
    assert_eq!(report.users_stored, 1000, "{report}");
    assert_eq!(report.locked_in_log, 0, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_racing_first_logins_make_one_user_and_fifty_working_tokens_and_taps_merge() {
    let dir = tempfile::tempdir().unwrap();
    let report = scenarios::race(bin(), dir.path(), 50, 10).await;
    println!("{report}");
    assert_eq!(report.first_login_ok, 50, "{report}");
    assert_eq!(report.users_stored, 1, "{report}");
    assert_eq!(report.working_tokens, 50, "{report}");
    assert_eq!(report.taps_ok, 10, "{report}");
    assert_eq!(report.tap_users, 1, "{report}");
    assert_eq!(report.upstream_calls_for_tap, 1, "{report}");
    assert_eq!(report.retap_errcode, "code_used", "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_sigkills_mid_load_lose_no_acknowledged_login_and_keep_the_database_intact() {
    let dir = tempfile::tempdir().unwrap();
    let report = scenarios::crash(bin(), dir.path(), 5, 16).await;
    println!("{report}");
    assert!(
        report.acknowledged > 0,
        "no login was acknowledged before the kills: {report}"
    );
    assert_eq!(report.lost, 0, "{report}");
    assert!(report.integrity.iter().all(|i| i == "ok"), "{report}");
    assert_eq!(report.served_after_restart, 5, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_lets_accepted_logins_finish_then_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let report = scenarios::graceful_stop(bin(), dir.path(), 32).await;
    println!("{report}");
    assert_eq!(report.finished_ok, report.in_flight, "{report}");
    assert_eq!(report.exit_code, Some(0), "{report}");
    assert!(
        report.stop_time < report.shutdown_timeout + std::time::Duration::from_secs(2),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_upstream_leaves_health_api_and_console_answering_and_logins_time_out() {
    let dir = tempfile::tempdir().unwrap();
    let report = scenarios::slow_upstream(bin(), dir.path(), 64).await;
    println!("{report}");
    assert_eq!(report.probes_ok, report.probes, "{report}");
    assert_eq!(
        report.probes_while_stuck, report.probes,
        "every probe answered while logins were stuck: {report}"
    );
    assert_eq!(report.ended_in_timeout, 64, "{report}");
}
