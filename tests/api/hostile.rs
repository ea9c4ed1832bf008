//! Hostile and malformed input: always a clear 4xx in the API's JSON shape, never a 5xx.

use proptest::prelude::*;
use serde_json::json;

use crate::helpers::{spawn_app, Options, TestApp};

async fn post_raw(app: &TestApp, content_type: &str, body: Vec<u8>) -> crate::helpers::Reply {
    app.send(
        app.client
            .post(app.url("/api/v1/login"))
            .header("content-type", content_type)
            .body(body),
    )
    .await
}

#[track_caller]
fn assert_clear_client_error(reply: &crate::helpers::Reply, what: &str) {
    assert!(
        (400..500).contains(&reply.status),
        "{what}: status {} body {}",
        reply.status,
        reply.text
    );
    assert_eq!(reply.body["ret"], false, "{what}: {}", reply.text);
    assert!(reply.body["errcode"].is_string(), "{what}: {}", reply.text);
}

#[tokio::test]
async fn malformed_bodies_get_a_clear_4xx_in_the_json_shape() {
    let app = spawn_app().await;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("nul in code", br#"{"code":"ab\u0000cd"}"#.to_vec()),
        ("invalid utf-8", b"{\"code\":\"\xff\xfe\"}".to_vec()),
        (
            "deep nesting",
            format!("{}{}", "[".repeat(5000), "]".repeat(5000)).into_bytes(),
        ),
        ("number code", br#"{"code": 1e400}"#.to_vec()),
        ("object code", br#"{"code": {"$ne": null}}"#.to_vec()),
        ("array body", br#"["code"]"#.to_vec()),
        ("duplicate keys", br#"{"code":"a","code":"b"}"#.to_vec()),
        ("bom", b"\xef\xbb\xbf{\"code\":\"a\"}".to_vec()),
        (
            "rtl nickname",
            "{\"code\":\"abc\",\"nickname\":\"\u{202E}gnp.exe\"}"
                .as_bytes()
                .to_vec(),
        ),
        (
            "nul nickname",
            br#"{"code":"abc","nickname":"a\u0000b"}"#.to_vec(),
        ),
        (
            "lone surrogate",
            br#"{"code":"abc","nickname":"\ud800"}"#.to_vec(),
        ),
    ];
    for (what, body) in cases {
        let reply = post_raw(&app, "application/json", body).await;
        assert_clear_client_error(&reply, what);
    }
    let form = post_raw(
        &app,
        "application/x-www-form-urlencoded",
        b"code=%00%ff&nickname=%E2%80%AE".to_vec(),
    )
    .await;
    assert_clear_client_error(&form, "form with NUL");
    assert!(app.fake.calls().is_empty(), "hostile input reached WeChat");
    assert_eq!(app.count("users"), 0);
}

#[tokio::test]
async fn four_byte_emoji_nicknames_are_stored_intact() {
    let app = spawn_app().await;
    let code = app.fake.code_for("oEmoji");
    let nickname = "👨‍👩‍👧‍👦🀄𝕏";
    let reply = app
        .login_json(json!({"code": code, "nickname": nickname}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["user"]["nickname"], nickname);
    let me = app.get_me(&reply.token()).await;
    assert_eq!(me.body["user"]["nickname"], nickname);
}

#[tokio::test]
async fn very_long_headers_and_tokens_get_a_4xx() {
    let app = spawn_app().await;
    let huge = "a".repeat(64 * 1024);
    let reply = app
        .send(
            app.client
                .get(app.url("/api/v1/me"))
                .header("x-filler", huge.as_str()),
        )
        .await;
    assert!(
        (400..500).contains(&reply.status),
        "long header: {}",
        reply.status
    );
    let reply = app.get_me(&"t".repeat(8 * 1024)).await;
    reply.assert_error(401, "unauthorized");
    let reply = app
        .send(app.client.get(app.url("/api/v1/me")).header(
            "authorization",
            reqwest::header::HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap(),
        ))
        .await;
    assert!((400..500).contains(&reply.status));
}

#[tokio::test]
async fn a_body_streamed_past_the_limit_without_a_length_is_refused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    let addr = app.address.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = "POST /api/v1/login HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
                Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    let _ = stream.write_all(head.as_bytes()).await;
    for _ in 0..40 {
        let chunk = format!("400\r\n{}\r\n", " ".repeat(1024));
        // The server may answer and close before the last chunk: that is the point.
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(
        response.contains(r#""errcode":"payload_too_large""#),
        "{response}"
    );
}

#[tokio::test]
async fn a_tampered_console_cookie_is_treated_as_signed_out() {
    let app = spawn_app().await;
    let browser = app.signed_in_browser().await;
    assert_eq!(browser.get("/admin").await.status, 200);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for cookie in [
        "wxlogin_session=AAAA",
        "wxlogin_session=%00%ff",
        "wxlogin_session=\"x\"; wxlogin_session=y",
    ] {
        let response = client
            .get(app.url("/admin"))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303, "{cookie}");
        assert_eq!(response.headers()["location"], "/admin/login");
    }
}

/// Generated login requests: arbitrary strings and JSON values in every field, arbitrary
/// bytes, and odd content types.
fn login_request() -> impl Strategy<Value = (String, Vec<u8>)> {
    let text = prop_oneof![
        any::<String>(),
        "[ -~]{0,140}",
        "\\PC{0,80}",
        Just(String::new()),
        Just("微信用户".to_owned()),
    ];
    let value = prop_oneof![
        text.clone().prop_map(serde_json::Value::String),
        any::<i64>().prop_map(|n| json!(n)),
        any::<bool>().prop_map(|b| json!(b)),
        Just(serde_json::Value::Null),
        Just(json!([1, "a"])),
        Just(json!({"nested": true})),
    ];
    let json_body = (value.clone(), value.clone(), value, any::<bool>()).prop_map(
        |(code, nickname, avatar, alias)| {
            let name_key = if alias { "user_name" } else { "nickname" };
            let body = json!({"code": code, name_key: nickname, "avatar_url": avatar});
            ("application/json".to_owned(), body.to_string().into_bytes())
        },
    );
    let raw = (
        prop_oneof![
            Just("application/json".to_owned()),
            Just("application/x-www-form-urlencoded".to_owned()),
            Just("text/plain".to_owned()),
            "[a-z/+.;= -]{0,40}",
        ],
        proptest::collection::vec(any::<u8>(), 0..600),
    );
    let form = (text.clone(), text).prop_map(|(code, nick)| {
        let body = serde_urlencoded::to_string([("code", code), ("user_name", nick)]).unwrap();
        (
            "application/x-www-form-urlencoded".to_owned(),
            body.into_bytes(),
        )
    });
    prop_oneof![json_body, raw, form]
}

#[test]
fn generated_login_and_profile_input_never_gets_a_5xx() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let app = runtime.block_on(crate::helpers::spawn_app_with(Options::default()));
    let token = runtime.block_on(app.login_as("oProfileTarget")).token();
    let config = ProptestConfig {
        cases: 300,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |((content_type, body) in login_request())| {
        let login = runtime.block_on(async {
            app.send(app.client.post(app.url("/api/v1/login")).header("content-type", content_type.as_str()).body(body.clone())).await
        });
        prop_assert!(login.status < 500, "login {} -> {} {}", String::from_utf8_lossy(&body), login.status, login.text);
        prop_assert!(login.body["ret"].is_boolean(), "login answer is not the JSON shape: {}", login.text);
        let profile = runtime.block_on(async {
            app.send(app.client.patch(app.url("/api/v1/me")).bearer_auth(&token).header("content-type", content_type.as_str()).body(body.clone())).await
        });
        prop_assert!(profile.status < 500, "profile {} -> {} {}", String::from_utf8_lossy(&body), profile.status, profile.text);
        prop_assert!(profile.body["ret"].is_boolean(), "profile answer is not the JSON shape: {}", profile.text);
    });
    // Whatever was accepted left the stored profile valid.
    let me = runtime.block_on(app.get_me(&token));
    assert_eq!(me.status, 200);
    let nickname = me.body["user"]["nickname"].as_str().map(str::to_owned);
    if let Some(n) = nickname {
        assert!(
            wxlogin::domain::Nickname::parse(&n).is_ok(),
            "stored an invalid nickname {n:?}"
        );
    }
    drop(app);
    runtime.shutdown_background();
}
