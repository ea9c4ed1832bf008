use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_with, Fault, Options, TestApp};

/// Asserts that nothing was stored by the failed login.
fn assert_nothing_stored(app: &TestApp) {
    assert_eq!(app.count("users"), 0, "a failed login created a user");
    assert_eq!(app.tokens_issued(), 0, "a failed login issued a token");
    assert_eq!(app.count("logins"), 0, "a failed login was recorded");
}

async fn login_failing_with(errcode: i64) -> (TestApp, crate::helpers::Reply) {
    let app = spawn_app().await;
    let code = app.fake.code_failing_with(errcode);
    let reply = app.login_code(&code).await;
    (app, reply)
}

#[tokio::test]
async fn an_unknown_code_is_invalid_code_401() {
    let app = spawn_app().await;
    app.login_code("0unknowncode0000000000000000000000")
        .await
        .assert_error(401, "invalid_code");
    assert_nothing_stored(&app);
}

#[tokio::test]
async fn a_code_used_twice_is_code_used_401_and_the_first_login_stands() {
    let app = spawn_app().await;
    let code = app.fake.code_for("oDoubleTap");
    let first = app.login_code(&code).await;
    assert_eq!(first.status, 200);
    app.login_code(&code).await.assert_error(401, "code_used");
    assert_eq!(app.count("users"), 1);
    assert_eq!(app.tokens_issued(), 1);
}

#[tokio::test]
async fn wechat_rate_limit_is_wechat_rate_limited_429() {
    let (app, reply) = login_failing_with(45011).await;
    reply.assert_error(429, "wechat_rate_limited");
    assert_nothing_stored(&app);
}

#[tokio::test]
async fn a_high_risk_user_is_wechat_blocked_user_403() {
    let (app, reply) = login_failing_with(40226).await;
    reply.assert_error(403, "wechat_blocked_user");
    assert_nothing_stored(&app);
}

#[tokio::test]
async fn wechat_busy_is_wechat_unavailable_502() {
    let (app, reply) = login_failing_with(-1).await;
    reply.assert_error(502, "wechat_unavailable");
    assert_nothing_stored(&app);
}

#[tokio::test]
async fn an_unmapped_wechat_error_is_wechat_unavailable_502() {
    let (app, reply) = login_failing_with(40999).await;
    reply.assert_error(502, "wechat_unavailable");
    assert_nothing_stored(&app);
}

#[tokio::test]
async fn a_wrong_appid_is_server_misconfigured_500() {
    let app = spawn_app_with(Options {
        appid: "wx_wrong_appid".into(),
        ..Default::default()
    })
    .await;
    let code = app.fake.code_for("oMisconfigured");
    let reply = app.login_code(&code).await;
    reply.assert_error(500, "server_misconfigured");
    assert!(!reply.text.contains("wx_wrong_appid"));
    assert_nothing_stored(&app);
}

#[tokio::test]
async fn a_wrong_secret_is_server_misconfigured_500() {
    let app = spawn_app_with(Options {
        secret: "not-the-secret".into(),
        ..Default::default()
    })
    .await;
    let code = app.fake.code_for("oMisconfigured");
    app.login_code(&code)
        .await
        .assert_error(500, "server_misconfigured");
    assert_nothing_stored(&app);
}

#[tokio::test]
async fn an_http_error_status_from_wechat_is_wechat_unavailable_502() {
    let app = spawn_app().await;
    app.fake.set_fault(Some(Fault::Http500));
    let code = app.fake.code_for("oHttp500");
    app.login_code(&code)
        .await
        .assert_error(502, "wechat_unavailable");
    assert_nothing_stored(&app);
}

#[tokio::test]
async fn a_redirect_from_wechat_is_not_followed_and_is_wechat_unavailable_502() {
    let app = spawn_app().await;
    app.fake.set_fault(Some(Fault::Redirect));
    let code = app.fake.code_for("oRedirected");
    app.login_code(&code)
        .await
        .assert_error(502, "wechat_unavailable");
    assert_eq!(
        app.fake.calls().len(),
        1,
        "the redirect, which carries the AppSecret along, was followed"
    );
    assert_nothing_stored(&app);
}

#[tokio::test]
async fn a_reply_that_is_not_json_is_wechat_unavailable_502() {
    let app = spawn_app().await;
    app.fake.set_fault(Some(Fault::NotJson));
    let code = app.fake.code_for("oNotJson");
    app.login_code(&code)
        .await
        .assert_error(502, "wechat_unavailable");
    assert_nothing_stored(&app);
}

#[tokio::test]
async fn a_refused_connection_is_wechat_unavailable_502() {
    let closed_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let app = spawn_app_with(Options {
        api_base: Some(format!("http://127.0.0.1:{closed_port}")),
        ..Default::default()
    })
    .await;
    app.login_code("0somecode")
        .await
        .assert_error(502, "wechat_unavailable");
    assert_nothing_stored(&app);
}

#[tokio::test]
async fn a_wechat_that_does_not_answer_in_time_is_wechat_timeout_504() {
    let app = spawn_app_with(Options {
        wechat_timeout: std::time::Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    app.fake.set_fault(Some(Fault::Hang));
    let code = app.fake.code_for("oSlow");
    let started = std::time::Instant::now();
    app.login_code(&code)
        .await
        .assert_error(504, "wechat_timeout");
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    assert_nothing_stored(&app);
}

#[tokio::test]
async fn invalid_codes_are_refused_before_calling_wechat() {
    let app = spawn_app().await;
    let too_long = "a".repeat(129);
    for body in [
        json!({}),
        json!({"code": ""}),
        json!({"code": too_long}),
        json!({"code": "has space"}),
        json!({"code": "控制"}),
        json!({"code": "nul\u{0}byte"}),
    ] {
        let reply = app.login_json(body.clone()).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.text);
        reply.assert_error(400, "invalid_request");
    }
    assert!(
        app.fake.calls().is_empty(),
        "an invalid code reached WeChat"
    );
    assert_nothing_stored(&app);
}

#[tokio::test]
async fn a_code_of_128_printable_characters_is_sent_to_wechat() {
    let app = spawn_app().await;
    let reply = app.login_code(&"A".repeat(128)).await;
    reply.assert_error(401, "invalid_code"); // the fake does not know it
    assert_eq!(app.fake.calls().len(), 1);
}

#[tokio::test]
async fn invalid_nicknames_and_avatars_are_refused_without_spending_the_code() {
    let app = spawn_app().await;
    let code = app.fake.code_for("oInvalidProfile");
    for body in [
        json!({"code": code, "nickname": "猫".repeat(65)}),
        json!({"code": code, "nickname": "evil\u{202E}txt.exe"}),
        json!({"code": code, "avatar_url": "http://insecure.example/a.png"}),
        json!({"code": code, "avatar_url": "javascript:alert(1)"}),
        json!({"code": code, "avatar_url": format!("https://a.example/{}", "x".repeat(500))}),
        json!({"code": code, "nickname": 42}),
    ] {
        app.login_json(body)
            .await
            .assert_error(400, "invalid_request");
    }
    assert!(app.fake.calls().is_empty());
    // The code is still good.
    assert_eq!(app.login_code(&code).await.status, 200);
}

#[tokio::test]
async fn malformed_json_gets_the_json_error_shape() {
    let app = spawn_app().await;
    for raw in ["{\"code\": ", "not json", "[1,2]", "{\"code\": 12345}", ""] {
        let reply = app
            .send(
                app.client
                    .post(app.url("/api/v1/login"))
                    .header("content-type", "application/json")
                    .body(raw),
            )
            .await;
        reply.assert_error(400, "invalid_request");
        assert!(
            reply.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{raw:?} answered as {:?}",
            reply.headers["content-type"]
        );
    }
}

#[tokio::test]
async fn an_unsupported_content_type_is_refused_in_the_json_shape() {
    let app = spawn_app().await;
    let reply = app
        .send(
            app.client
                .post(app.url("/api/v1/login"))
                .header("content-type", "text/xml")
                .body("<code>x</code>"),
        )
        .await;
    reply.assert_error(415, "unsupported_media_type");
}

#[tokio::test]
async fn a_body_over_16_kib_is_refused_with_413_in_the_json_shape() {
    let app = spawn_app().await;
    let big = json!({"code": "x", "padding": "p".repeat(17 * 1024)});
    app.login_json(big)
        .await
        .assert_error(413, "payload_too_large");
}

#[tokio::test]
async fn unknown_api_paths_and_methods_get_json_errors() {
    let app = spawn_app().await;
    app.send(app.client.get(app.url("/api/v1/nope")))
        .await
        .assert_error(404, "not_found");
    app.send(app.client.delete(app.url("/api/v1/login")))
        .await
        .assert_error(405, "method_not_allowed");
    app.send(app.client.get(app.url("/api/v1/logout")))
        .await
        .assert_error(405, "method_not_allowed");
}

#[tokio::test]
async fn wechat_code_been_used_is_code_used_401() {
    let (app, reply) = login_failing_with(40163).await;
    reply.assert_error(401, "code_used");
    assert_nothing_stored(&app);
}
