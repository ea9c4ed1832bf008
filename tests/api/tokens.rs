use std::time::Duration;

use diesel::prelude::*;
use wxlogin::db::models::{IssuedToken, NewLoginToken, User};
use wxlogin::db::schema::{login_tokens, logins};

use crate::helpers::{spawn_app, spawn_app_with, Options, TestApp};

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
async fn tokens_are_stored_only_as_the_sha256_of_their_secret() {
    let app = spawn_app().await;
    let token = app.login_as("oHashed").await.token();
    let (login_id, secret) = split_token(&token);

    let stored: Vec<IssuedToken> = logins::table
        .select(IssuedToken::as_select())
        .load(&mut app.db())
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].id, login_id, "the token names its login");
    assert_eq!(
        stored[0].token_hash.as_deref(),
        Some(wxlogin::auth::hash_token(secret).as_str())
    );
    let file = std::fs::read(&app.db_path).unwrap();
    let wal = std::fs::read(app.db_path.with_extension("db-wal")).unwrap_or_default();
    for bytes in [file, wal] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "the token's secret is in the database files"
        );
    }
}

/// A token's login id and secret.
fn split_token(token: &str) -> (i64, &str) {
    let (id, secret) = token
        .strip_prefix("wxl_")
        .and_then(|rest| rest.split_once('_'))
        .unwrap_or_else(|| panic!("not wxl_<id>_<secret>: {token}"));
    (id.parse().unwrap(), secret)
}

#[tokio::test]
async fn tokens_carry_at_least_128_random_bits() {
    let app = spawn_app().await;
    let a = app.login_as("oRandom").await.token();
    let b = app.login_as("oRandom").await.token();
    let (_, secret_a) = split_token(&a);
    let (_, secret_b) = split_token(&b);
    assert_ne!(secret_a, secret_b);
    assert!(secret_a.len() * 4 >= 128, "{a}");
    assert!(secret_a.chars().all(|c| c.is_ascii_hexdigit()));
}

#[tokio::test]
async fn a_token_with_its_login_id_but_another_secret_is_unauthorized() {
    let app = spawn_app().await;
    let token = app.login_as("oGuessed").await.token();
    let (login_id, secret) = split_token(&token);
    let mut wrong = secret.to_owned();
    wrong.replace_range(..1, if secret.starts_with('0') { "1" } else { "0" });
    app.get_me(&format!("wxl_{login_id}_{wrong}"))
        .await
        .assert_error(401, "unauthorized");
    app.get_me(&format!("wxl_{}_{secret}", login_id + 1))
        .await
        .assert_error(401, "unauthorized");
    app.logout(&format!("wxl_{login_id}_{wrong}"))
        .await
        .assert_error(401, "unauthorized");
    assert_eq!(
        app.get_me(&token).await.status,
        200,
        "the real one still works"
    );
}

/// Stores a token of the earlier form (`wxl_<64 hex>`, kept as the SHA-256 of all of it)
/// for `user_id`, as releases before tokens named their login issued them.
fn issue_earlier_token(app: &TestApp, user_id: i64) -> String {
    let token = format!("wxl_{}", crate::helpers::random_hex(32));
    let now = wxlogin::db::now();
    diesel::insert_into(login_tokens::table)
        .values(NewLoginToken {
            user_id,
            token_hash: &wxlogin::auth::hash_token(&token),
            created_at: now,
            expires_at: now + chrono::TimeDelta::days(7),
        })
        .execute(&mut app.db())
        .unwrap();
    token
}

#[tokio::test]
async fn tokens_issued_in_the_earlier_form_keep_working_until_logout() {
    let app = spawn_app().await;
    let login = app.login_as("oUpgraded").await;
    let id = login.body["user"]["id"].as_i64().unwrap();
    let earlier = issue_earlier_token(&app, id);

    let me = app.get_me(&earlier).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.body["user"]["openid"], "oUpgraded");
    assert_eq!(app.logout(&earlier).await.status, 200);
    app.get_me(&earlier).await.assert_error(401, "unauthorized");
    assert_eq!(app.get_me(&login.token()).await.status, 200);
}

#[tokio::test]
async fn disabling_a_user_revokes_tokens_of_both_forms() {
    let app = spawn_app().await;
    let login = app.login_as("oBothForms").await;
    let id = login.body["user"]["id"].as_i64().unwrap();
    let earlier = issue_earlier_token(&app, id);
    User::disable(&mut app.db(), id, "spam", wxlogin::db::now()).unwrap();
    User::enable(&mut app.db(), id, wxlogin::db::now()).unwrap();
    app.get_me(&earlier).await.assert_error(401, "unauthorized");
    app.get_me(&login.token())
        .await
        .assert_error(401, "unauthorized");
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
    let tokens_before = app.tokens_issued();
    let logins_before = app.count("logins");
    let code = app.fake.code_for("oDisabled");
    app.login_code(&code)
        .await
        .assert_error(403, "user_disabled");
    assert_eq!(
        app.tokens_issued(),
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
