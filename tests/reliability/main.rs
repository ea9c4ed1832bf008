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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_session_key_secret_token_password_or_code_reaches_the_log() {
    for level in ["info", "debug"] {
        let dir = tempfile::tempdir().unwrap();
        let report = scenarios::secrets_in_log(bin(), dir.path(), level).await;
        assert!(
            report.log.contains("code=[redacted]"),
            "the access log did not run at {level}:\n{}",
            report.log
        );
        assert!(
            report.log.contains("user disabled"),
            "the console's actions are logged"
        );
        assert!(report.secrets.iter().any(|(k, _)| k == "session_key"));
        let leaks = report.leaks();
        assert!(
            leaks.is_empty(),
            "at RUST_LOG={level}, {} of {} log lines leak:\n{}",
            leaks.len(),
            report.log_lines,
            leaks.join("\n")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_first_start_creates_an_admin_whose_logged_password_must_be_changed() {
    let dir = tempfile::tempdir().unwrap();
    let fake = helpers::FakeWeChat::start().await;
    let server = scenarios::Server::start(bin(), &dir.path().join("first.db"), &fake, &[]);
    let log = server.log();
    let password = log
        .split("with password `")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
        .unwrap_or_else(|| panic!("no generated password in the log:\n{log}"))
        .to_owned();
    let browser = scenarios::browser();
    assert_eq!(
        scenarios::console_sign_in(&browser, &server, "admin", &password).await,
        303
    );
    let dashboard = browser
        .send(browser.get(server.url("/admin")))
        .await
        .unwrap();
    assert_eq!(dashboard.status(), 303);
    assert_eq!(dashboard.headers()["location"], "/admin/password");
    // A restart with an admin present creates no other and logs no password.
    drop(server);
    let again = scenarios::Server::start(bin(), &dir.path().join("first.db"), &fake, &[]);
    assert!(!again.log().contains("with password `"), "{}", again.log());
}

#[tokio::test]
async fn admin_commands_create_and_reset_accounts_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cli.db");
    let created =
        scenarios::admin_command(bin(), &db, &["admin", "create", "ops"], "first-password-1");
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let again =
        scenarios::admin_command(bin(), &db, &["admin", "create", "ops"], "first-password-1");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
    let short = scenarios::admin_command(bin(), &db, &["admin", "create", "dev"], "short");
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 10"));
    let missing = scenarios::admin_command(
        bin(),
        &db,
        &["admin", "reset-password", "nobody"],
        "second-password-2",
    );
    assert!(!missing.status.success());
    let reset = scenarios::admin_command(
        bin(),
        &db,
        &["admin", "reset-password", "ops"],
        "second-password-2",
    );
    assert!(
        reset.status.success(),
        "{}",
        String::from_utf8_lossy(&reset.stderr)
    );

    let fake = helpers::FakeWeChat::start().await;
    let server = scenarios::Server::start(bin(), &db, &fake, &[]);
    assert!(
        !server.log().contains("with password `"),
        "an admin exists, so none is generated"
    );
    assert_eq!(
        scenarios::console_sign_in(&scenarios::browser(), &server, "ops", "first-password-1").await,
        401
    );
    assert_eq!(
        scenarios::console_sign_in(&scenarios::browser(), &server, "ops", "second-password-2")
            .await,
        303
    );
}

#[test]
fn bad_configuration_stops_the_server_with_a_message_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    for (name, value, needle) in [
        ("WECHAT_APPID", "wx123", "WECHAT_SECRET"),
        ("SESSION_KEY", "too-short", "SESSION_KEY"),
        ("ADMIN_TIMEZONE", "Mars/Base", "ADMIN_TIMEZONE"),
    ] {
        let output = std::process::Command::new(bin())
            .env_clear()
            .env("DATABASE_URL", dir.path().join("x.db"))
            .env("BIND_ADDR", "127.0.0.1:0")
            .env(name, value)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(!output.status.success(), "{name}={value} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(needle), "{name}={value}: {stderr}");
    }
}
