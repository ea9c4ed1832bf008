//! Runs the reliability scenarios against the release build and prints one line per
//! scenario with its figures:
//!
//!     cargo run --release --example reliability
//!
//! It builds `target/release/wxlogin` first, starts it as a separate process (so it can be
//! killed), and talks to it over loopback only, with a fake WeChat it starts itself.

#[allow(dead_code)]
#[path = "../tests/api/helpers.rs"]
mod helpers;
#[path = "../tests/reliability/scenarios.rs"]
mod scenarios;

use std::path::PathBuf;
use std::process::Command;

fn release_binary() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--bin", "wxlogin"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("running cargo build");
    assert!(status.success(), "cargo build --release failed");
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/wxlogin")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let bin = release_binary();
    let dir = tempfile::tempdir().expect("a temporary folder");
    println!("wxlogin reliability scenarios against {}", bin.display());
    println!("{}", scenarios::load(&bin, dir.path(), 1000, 64).await);
    println!("{}", scenarios::race(&bin, dir.path(), 50, 10).await);
    println!("{}", scenarios::crash(&bin, dir.path(), 5, 64).await);
    println!("{}", scenarios::graceful_stop(&bin, dir.path(), 64).await);
    println!("{}", scenarios::slow_upstream(&bin, dir.path(), 64).await);
    for level in ["info", "debug"] {
        let sub = dir.path().join(level);
        std::fs::create_dir_all(&sub).expect("a temporary folder");
        let report = scenarios::secrets_in_log(&bin, &sub, level).await;
        println!(
            "secrets_in_log: RUST_LOG={level} log_lines={} secrets_checked={} leaks={}",
            report.log_lines,
            report.secrets.len(),
            report.leaks().len()
        );
    }
}
