use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn patch_me_sets_nickname_and_avatar() {
    let app = spawn_app().await;
    let token = app.login_as("oPatch").await.token();

    let reply = app
        .patch_me(
            &token,
            json!({"nickname": " 新名字🎉 ", "avatar_url": "https://cdn.example/a.jpg"}),
        )
        .await;

    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["user"]["nickname"], "新名字🎉");
    assert_eq!(
        reply.body["user"]["avatar_url"],
        "https://cdn.example/a.jpg"
    );
    let me = app.get_me(&token).await;
    assert_eq!(me.body["user"]["nickname"], "新名字🎉");
}

#[tokio::test]
async fn patch_me_changes_only_the_fields_given() {
    let app = spawn_app().await;
    let token = app.login_as("oPatchOne").await.token();
    app.patch_me(
        &token,
        json!({"nickname": "甲", "avatar_url": "https://cdn.example/1.jpg"}),
    )
    .await;
    let reply = app
        .patch_me(&token, json!({"avatar_url": "https://cdn.example/2.jpg"}))
        .await;
    assert_eq!(reply.body["user"]["nickname"], "甲");
    assert_eq!(
        reply.body["user"]["avatar_url"],
        "https://cdn.example/2.jpg"
    );
}

#[tokio::test]
async fn patch_me_validates_like_login() {
    let app = spawn_app().await;
    let token = app.login_as("oPatchBad").await.token();
    app.patch_me(&token, json!({"nickname": "ok"})).await;
    for body in [
        json!({}),
        json!({"nickname": ""}),
        json!({"nickname": "a".repeat(65)}),
        json!({"nickname": "a\u{0}b"}),
        json!({"avatar_url": "http://cdn.example/a.jpg"}),
        json!({"nickName": "typo"}),
        json!({"nickname": ["array"]}),
    ] {
        let reply = app.patch_me(&token, body.clone()).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.text);
        reply.assert_error(400, "invalid_request");
    }
    assert_eq!(app.get_me(&token).await.body["user"]["nickname"], "ok");
}

#[tokio::test]
async fn patch_me_never_replaces_a_real_nickname_with_the_placeholder() {
    let app = spawn_app().await;
    let token = app.login_as("oPatchPlaceholder").await.token();
    app.patch_me(&token, json!({"nickname": "真名"})).await;
    let reply = app.patch_me(&token, json!({"nickname": "微信用户"})).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["user"]["nickname"], "真名");
}

#[tokio::test]
async fn patch_me_needs_a_token() {
    let app = spawn_app().await;
    let reply = app
        .send(
            app.client
                .patch(app.url("/api/v1/me"))
                .json(&json!({"nickname": "x"})),
        )
        .await;
    reply.assert_error(401, "unauthorized");
}
