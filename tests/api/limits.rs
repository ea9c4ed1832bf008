//! The per-IP login rate limit, trusted proxies, and merged double taps.

use std::time::Duration;

use serde_json::json;
use wxlogin::db::models::User;

use crate::helpers::{spawn_app, spawn_app_with, Options};

#[tokio::test]
async fn logins_past_the_per_ip_limit_get_429_rate_limited_with_retry_after() {
    let app = spawn_app_with(Options {
        login_rate_per_min: 3,
        ..Default::default()
    })
    .await;
    for i in 0..3 {
        app.login_as(&format!("oRate{i}")).await;
    }
    let code = app.fake.code_for("oRateX");
    let refused = app.login_code(&code).await;
    refused.assert_error(429, "rate_limited");
    let retry: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&retry), "Retry-After {retry}");
    assert_eq!(
        app.fake.calls().len(),
        3,
        "a refused login must not reach WeChat"
    );
    let get = app
        .send(
            app.client
                .get(app.url("/api/v1/login"))
                .query(&[("code", code.as_str())]),
        )
        .await;
    get.assert_error(429, "rate_limited");
    // Other endpoints are not limited.
    assert_eq!(
        app.send(app.client.get(app.url("/healthz"))).await.status,
        200
    );
}

#[tokio::test]
async fn x_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy() {
    let app = spawn_app_with(Options {
        login_rate_per_min: 2,
        ..Default::default()
    })
    .await;
    for i in 0..2 {
        let code = app.fake.code_for(&format!("oSpoof{i}"));
        let reply = app
            .send(
                app.client
                    .post(app.url("/api/v1/login"))
                    .header("x-forwarded-for", format!("198.51.100.{i}"))
                    .json(&json!({"code": code})),
            )
            .await;
        assert_eq!(reply.status, 200);
    }
    // Changing the header does not buy a new allowance...
    let code = app.fake.code_for("oSpoof9");
    app.send(
        app.client
            .post(app.url("/api/v1/login"))
            .header("x-forwarded-for", "198.51.100.99")
            .json(&json!({"code": code})),
    )
    .await
    .assert_error(429, "rate_limited");
    // ...and the login records the real peer.
    let user = User::find_by_openid(&mut app.db(), "oSpoof0")
        .unwrap()
        .unwrap();
    let logins = User::recent_logins(&mut app.db(), user.id, 1).unwrap();
    assert_eq!(logins[0].ip.as_deref(), Some("127.0.0.1"));
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_allowance() {
    let app = spawn_app_with(Options {
        login_rate_per_min: 1,
        trusted_proxies: vec!["127.0.0.1"],
        ..Default::default()
    })
    .await;
    for client in ["198.51.100.1", "198.51.100.2"] {
        let code = app
            .fake
            .code_for(&format!("oProxied-{}", client.replace('.', "-")));
        let reply = app
            .send(
                app.client
                    .post(app.url("/api/v1/login"))
                    .header("x-forwarded-for", client)
                    .json(&json!({"code": code})),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    let code = app.fake.code_for("oProxiedAgain");
    app.send(
        app.client
            .post(app.url("/api/v1/login"))
            .header("x-forwarded-for", "198.51.100.1")
            .json(&json!({"code": code})),
    )
    .await
    .assert_error(429, "rate_limited");
    let user = User::find_by_openid(&mut app.db(), "oProxied-198-51-100-2")
        .unwrap()
        .unwrap();
    let logins = User::recent_logins(&mut app.db(), user.id, 1).unwrap();
    assert_eq!(
        logins[0].ip.as_deref(),
        Some("198.51.100.2"),
        "the forwarded client is recorded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_double_tap_is_one_code2session_call_and_every_request_succeeds() {
    let app = std::sync::Arc::new(spawn_app().await);
    app.fake.set_delay(Duration::from_millis(300));
    let code = app.fake.code_for("oDoubleTapped");

    let taps: Vec<_> = (0..5)
        .map(|_| {
            let (app, code) = (app.clone(), code.clone());
            tokio::spawn(async move { app.login_code(&code).await })
        })
        .collect();
    let mut replies = Vec::new();
    for tap in taps {
        replies.push(tap.await.unwrap());
    }

    assert_eq!(app.fake.calls().len(), 1, "the taps were not merged");
    for reply in &replies {
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.body["user"]["openid"], "oDoubleTapped");
        assert_eq!(app.get_me(&reply.token()).await.status, 200);
    }
    assert_eq!(app.count("users"), 1);

    // Presented again after the exchange finished: code_used, without asking WeChat.
    app.login_code(&code).await.assert_error(401, "code_used");
    assert_eq!(app.fake.calls().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn merged_taps_share_a_failure_too() {
    let app = std::sync::Arc::new(spawn_app().await);
    app.fake.set_delay(Duration::from_millis(300));
    let code = app.fake.code_failing_with(40226);
    let taps: Vec<_> = (0..3)
        .map(|_| {
            let (app, code) = (app.clone(), code.clone());
            tokio::spawn(async move { app.login_code(&code).await })
        })
        .collect();
    for tap in taps {
        tap.await.unwrap().assert_error(403, "wechat_blocked_user");
    }
    assert_eq!(app.fake.calls().len(), 1);
}

#[tokio::test]
async fn a_new_code_for_the_same_user_is_not_mistaken_for_a_reused_one() {
    let app = spawn_app().await;
    app.login_as("oTwice").await;
    app.login_as("oTwice").await;
    assert_eq!(app.fake.calls().len(), 2);
}
