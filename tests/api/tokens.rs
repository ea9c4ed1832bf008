use std::time::Duration;

use diesel::prelude::*;
use wxlogin::db::models::{LoginToken, User};
use wxlogin::db::schema::login_tokens;

use crate::helpers::{spawn_app, spawn_app_with, Options};

#[tokio::test]
async fn a_token_from_login_opens_me() {
    let app = spawn_app().await;
    let login = app.login_as("oMe").await;
    let me = app.get_me(&login.token()).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.body["ret"], true);
    assert_eq!(me.body["user"]["openid"], "oMe");
    assert_eq!(me.body["user"]["id"], login.body["user"]["id"]);
}

#[tokio::test]
async fn tokens_are_stored_only_as_their_sha256() {
    let app = spawn_app().await;
    let token = app.login_as("oHashed").await.token();

    let stored: Vec<LoginToken> = login_tokens::table
        .select(LoginToken::as_select())
        .load(&mut app.db())
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].token_hash, wxlogin::auth::hash_token(&token));
    assert_ne!(stored[0].token_hash, token);
    let file = std::fs::read(&app.db_path).unwrap();
    let wal = std::fs::read(app.db_path.with_extension("db-wal")).unwrap_or_default();
    for bytes in [file, wal] {
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
            "the plain token is in the database files"
        );
    }
}

#[tokio::test]
async fn tokens_carry_at_least_128_random_bits() {
    let app = spawn_app().await;
    let a = app.login_as("oRandom").await.token();
    let b = app.login_as("oRandom").await.token();
    assert_ne!(a, b);
    let hex_part = a.trim_start_matches("wxl_");
    assert!(hex_part.len() * 4 >= 128, "{a}");
    assert!(hex_part.chars().all(|c| c.is_ascii_hexdigit()));
}

#[tokio::test]
async fn a_missing_unknown_or_malformed_token_is_unauthorized() {
    let app = spawn_app().await;
    app.login_as("oSomeone").await;
    let no_header = app.send(app.client.get(app.url("/api/v1/me"))).await;
    no_header.assert_error(401, "unauthorized");
    assert_eq!(no_header.headers["www-authenticate"], "Bearer");
    app.get_me("wxl_0000000000000000000000000000000000000000000000000000000000000000")
        .await
        .assert_error(401, "unauthorized");
    app.send(
        app.client
            .get(app.url("/api/v1/me"))
            .header("authorization", "Basic dXNlcjpwYXNz"),
    )
    .await
    .assert_error(401, "unauthorized");
}

#[tokio::test]
async fn an_expired_token_is_unauthorized() {
    let app = spawn_app_with(Options {
        token_ttl: Duration::from_secs(1),
        ..Default::default()
    })
    .await;
    let token = app.login_as("oExpires").await.token();
    assert_eq!(app.get_me(&token).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.get_me(&token).await.assert_error(401, "unauthorized");
}

#[tokio::test]
async fn logout_revokes_the_token_and_only_that_token() {
    let app = spawn_app().await;
    let phone = app.login_as("oTwoDevices").await.token();
    let tablet = app.login_as("oTwoDevices").await.token();

    let out = app.logout(&phone).await;
    assert_eq!(out.status, 200, "{}", out.text);
    assert_eq!(out.body["ret"], true);

    app.get_me(&phone).await.assert_error(401, "unauthorized");
    app.logout(&phone).await.assert_error(401, "unauthorized");
    assert_eq!(app.get_me(&tablet).await.status, 200);
}

#[tokio::test]
async fn a_disabled_user_cannot_use_an_earlier_token_or_log_in() {
    let app = spawn_app().await;
    let login = app.login_as("oDisabled").await;
    let token = login.token();
    let id = login.body["user"]["id"].as_i64().unwrap();

    User::disable(&mut app.db(), id, "spam", wxlogin::db::now()).unwrap();

    app.get_me(&token).await.assert_error(403, "user_disabled");
    app.patch_me(&token, serde_json::json!({"nickname": "x"}))
        .await
        .assert_error(403, "user_disabled");
    let tokens_before = app.count("login_tokens");
    let logins_before = app.count("logins");
    let code = app.fake.code_for("oDisabled");
    app.login_code(&code)
        .await
        .assert_error(403, "user_disabled");
    assert_eq!(
        app.count("login_tokens"),
        tokens_before,
        "a disabled user got a token"
    );
    assert_eq!(app.count("logins"), logins_before);
}

#[tokio::test]
async fn an_enabled_user_logs_in_again_but_old_tokens_stay_revoked() {
    let app = spawn_app().await;
    let login = app.login_as("oReEnabled").await;
    let old = login.token();
    let id = login.body["user"]["id"].as_i64().unwrap();
    User::disable(&mut app.db(), id, "mistake", wxlogin::db::now()).unwrap();
    User::enable(&mut app.db(), id, wxlogin::db::now()).unwrap();

    app.get_me(&old).await.assert_error(401, "unauthorized");
    let fresh = app.login_as("oReEnabled").await.token();
    assert_eq!(app.get_me(&fresh).await.status, 200);
}
