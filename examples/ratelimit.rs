//! The login rate limiter's cost per check as the number of clients active within a minute
//! grows (every client keeps coming back, so no bucket can be forgotten):
//!
//!     cargo run --release --example ratelimit
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

fn main() {
    for clients in [1_000u32, 20_000, 100_000] {
        let limiter = wxlogin::ratelimit::RateLimiter::new(60);
        let checks = 200_000u32;
        let started = Instant::now();
        for i in 0..checks {
            let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + (i % clients)));
            // The outcome does not matter here, only what deciding it costs.
            let _ = limiter.check(ip);
        }
        println!(
            "{clients:>7} clients: {:.2} us a check",
            started.elapsed().as_secs_f64() * 1e6 / f64::from(checks)
        );
    }
}
