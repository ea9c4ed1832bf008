use serde_json::json;
use wxlogin::db::models::User;

use crate::helpers::{spawn_app, APPID, SECRET};

#[tokio::test]
async fn a_first_login_creates_the_user_and_answers_with_a_token_and_the_user() {
    let app = spawn_app().await;
    let code = app
        .fake
        .code_with_unionid("oFirst_openid_0001", "uUnion_0001");

    let reply = app
        .login_json(json!({"code": code, "nickname": "小明🐼", "avatar_url": "https://thirdwx.qlogo.cn/a/132"}))
        .await;

    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = &reply.body;
    assert_eq!(body["ret"], true);
    assert!(body["token"].as_str().unwrap().len() >= 32);
    let expires = chrono::DateTime::parse_from_rfc3339(body["expires_at"].as_str().unwrap())
        .expect("expires_at is RFC 3339");
    let ttl = expires
        .signed_duration_since(chrono::Utc::now())
        .num_seconds();
    assert!(
        (3590..=3600).contains(&ttl),
        "token lives {ttl}s, configured 3600s"
    );
    let user = &body["user"];
    assert!(user["id"].as_i64().unwrap() > 0);
    assert_eq!(user["openid"], "oFirst_openid_0001");
    assert_eq!(user["unionid"], "uUnion_0001");
    assert_eq!(user["nickname"], "小明🐼");
    assert_eq!(user["avatar_url"], "https://thirdwx.qlogo.cn/a/132");
    assert_eq!(user["is_new"], true);
    chrono::DateTime::parse_from_rfc3339(user["created_at"].as_str().unwrap())
        .expect("created_at is RFC 3339");
    assert_eq!(app.count("users"), 1);
}

#[tokio::test]
async fn replies_that_carry_a_token_or_a_users_data_may_not_be_cached() {
    let app = spawn_app().await;
    let login = app.login_as("oNoStore").await;
    assert_eq!(login.status, 200, "{}", login.text);
    let token = login.body["token"].as_str().unwrap().to_owned();
    let me = app.get_me(&token).await;
    assert_eq!(me.status, 200, "{}", me.text);
    let refused = app.login_code("").await;
    assert_eq!(refused.status, 400, "{}", refused.text);
    for (what, reply) in [
        ("login", &login),
        ("me", &me),
        ("a refused login", &refused),
    ] {
        assert_eq!(
            reply
                .headers
                .get("cache-control")
                .map(|v| v.to_str().unwrap()),
            Some("no-store"),
            "{what}"
        );
    }
    // A response with a caching policy of its own keeps it.
    let css = app.send(app.client.get(app.url("/static/style.css"))).await;
    assert_eq!(css.headers["cache-control"], "public, max-age=3600");
}

#[tokio::test]
async fn the_server_calls_code2session_with_appid_secret_code_and_grant_type() {
    let app = spawn_app().await;
    let code = app.fake.code_for("oParams");
    app.login_code(&code).await;

    let calls = app.fake.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["appid"], APPID);
    assert_eq!(calls[0]["secret"], SECRET);
    assert_eq!(calls[0]["js_code"], code);
    assert_eq!(calls[0]["grant_type"], "authorization_code");
}

#[tokio::test]
async fn the_get_form_with_user_name_logs_in_and_sets_the_nickname() {
    let app = spawn_app().await;
    let code = app.fake.code_for("oGetForm");
    let reply = app
        .send(
            app.client
                .get(app.url("/api/v1/login"))
                .query(&[("code", code.as_str()), ("user_name", "老王")]),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["ret"], true);
    assert_eq!(reply.body["user"]["nickname"], "老王");
}

#[tokio::test]
async fn a_form_encoded_post_logs_in() {
    let app = spawn_app().await;
    let code = app.fake.code_for("oFormPost");
    let reply = app
        .send(
            app.client
                .post(app.url("/api/v1/login"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("code={code}&nickname=%E5%B0%8F%E7%BA%A2")),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["user"]["nickname"], "小红");
}

#[tokio::test]
async fn a_returning_user_keeps_its_id_and_counts_logins() {
    let app = spawn_app().await;
    let first = app.login_as("oReturning").await;
    let first_login_at = {
        let user = User::find_by_openid(&mut app.db(), "oReturning")
            .unwrap()
            .unwrap();
        assert_eq!(user.login_count, 1);
        user.last_login_at
    };

    let second = app.login_as("oReturning").await;

    assert_eq!(second.body["user"]["is_new"], false);
    assert_eq!(second.body["user"]["id"], first.body["user"]["id"]);
    assert_ne!(second.token(), first.token());
    let user = User::find_by_openid(&mut app.db(), "oReturning")
        .unwrap()
        .unwrap();
    assert_eq!(user.login_count, 2);
    assert!(user.last_login_at > first_login_at);
    assert_eq!(app.count("users"), 1);
}

#[tokio::test]
async fn a_returning_login_fills_in_the_unionid_once_wechat_sends_it() {
    let app = spawn_app().await;
    let first = app.login_as("oUnionLater").await;
    assert_eq!(first.body["user"]["unionid"], serde_json::Value::Null);

    let code = app.fake.code_with_unionid("oUnionLater", "uBoundNow");
    let second = app.login_code(&code).await;
    assert_eq!(second.body["user"]["unionid"], "uBoundNow");

    // A later reply without unionid does not erase it.
    let third = app.login_as("oUnionLater").await;
    assert_eq!(third.body["user"]["unionid"], "uBoundNow");
}

#[tokio::test]
async fn nickname_and_avatar_change_only_when_given() {
    let app = spawn_app().await;
    let code = app.fake.code_for("oProfileKeep");
    app.login_json(
        json!({"code": code, "nickname": "阿强", "avatar_url": "https://a.example/1.png"}),
    )
    .await;

    let plain = app.login_as("oProfileKeep").await;
    assert_eq!(plain.body["user"]["nickname"], "阿强");
    assert_eq!(plain.body["user"]["avatar_url"], "https://a.example/1.png");

    let code = app.fake.code_for("oProfileKeep");
    let changed = app
        .login_json(
            json!({"code": code, "nickname": "强哥", "avatar_url": "https://a.example/2.png"}),
        )
        .await;
    assert_eq!(changed.body["user"]["nickname"], "强哥");
    assert_eq!(
        changed.body["user"]["avatar_url"],
        "https://a.example/2.png"
    );
}

#[tokio::test]
async fn the_wechat_placeholder_nickname_never_replaces_a_real_one() {
    let app = spawn_app().await;
    let code = app.fake.code_for("oPlaceholder");
    app.login_json(json!({"code": code, "nickname": "真名"}))
        .await;

    let code = app.fake.code_for("oPlaceholder");
    let reply = app
        .login_json(json!({"code": code, "nickname": "微信用户"}))
        .await;

    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["user"]["nickname"], "真名");
}

#[tokio::test]
async fn the_placeholder_is_stored_when_there_is_no_real_nickname_and_a_real_one_replaces_it() {
    let app = spawn_app().await;
    let code = app.fake.code_for("oPlaceholderFirst");
    let first = app
        .login_json(json!({"code": code, "user_name": "微信用户"}))
        .await;
    assert_eq!(first.body["user"]["nickname"], "微信用户");

    let code = app.fake.code_for("oPlaceholderFirst");
    let second = app
        .login_json(json!({"code": code, "user_name": "小李"}))
        .await;
    assert_eq!(second.body["user"]["nickname"], "小李");
}

#[tokio::test]
async fn blank_nickname_and_avatar_fields_are_treated_as_not_given() {
    let app = spawn_app().await;
    let code = app.fake.code_for("oBlank");
    app.login_json(json!({"code": code, "nickname": "保留"}))
        .await;
    let code = app.fake.code_for("oBlank");
    let reply = app
        .login_json(json!({"code": code, "nickname": "  ", "avatar_url": ""}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["user"]["nickname"], "保留");
}

#[tokio::test]
async fn every_login_is_recorded_with_time_ip_and_user_agent() {
    let app = spawn_app().await;
    let before = wxlogin::db::now();
    let reply = app.login_as("oRecorded").await;
    app.login_as("oRecorded").await;

    let id = reply.body["user"]["id"].as_i64().unwrap();
    let logins = User::recent_logins(&mut app.db(), id, 50).unwrap();
    assert_eq!(logins.len(), 2);
    for login in &logins {
        assert!(login.logged_in_at >= before);
        assert_eq!(login.ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(
            login.user_agent.as_deref(),
            Some("wxlogin-tests/1.0 (MicroMessenger)")
        );
    }
}

#[tokio::test]
async fn the_session_key_is_stored_server_side_and_never_sent_to_the_client() {
    let app = spawn_app().await;
    let reply = app.login_as("oSessionKey").await;

    let keys = app.fake.session_keys();
    assert_eq!(keys.len(), 1);
    let user = User::find_by_openid(&mut app.db(), "oSessionKey")
        .unwrap()
        .unwrap();
    assert_eq!(user.session_key, keys[0]);
    assert!(!reply.text.contains(&keys[0]));
    assert!(!reply.text.contains("session_key"), "{}", reply.text);

    // The key rotates with each login, and the newest is kept.
    app.login_as("oSessionKey").await;
    let user = User::find_by_openid(&mut app.db(), "oSessionKey")
        .unwrap()
        .unwrap();
    assert_eq!(user.session_key, app.fake.session_keys()[1]);
}

#[tokio::test]
async fn development_mode_simulates_wechat_by_name() {
    let app = crate::helpers::spawn_app_with(crate::helpers::Options {
        development_mode: true,
        ..Default::default()
    })
    .await;
    let a1 = app.login_code("alice").await;
    let a2 = app.login_code("alice#7").await;
    let bob = app.login_code("bob").await;
    assert_eq!(a1.status, 200, "{}", a1.text);
    assert_eq!(a1.body["user"]["id"], a2.body["user"]["id"]);
    assert_ne!(a1.body["user"]["id"], bob.body["user"]["id"]);
    app.login_code("bad-code")
        .await
        .assert_error(401, "invalid_code");
    assert!(
        app.fake.calls().is_empty(),
        "development mode must not call WeChat"
    );
}
