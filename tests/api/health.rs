use diesel::connection::SimpleConnection;

use crate::helpers::spawn_app;

#[tokio::test]
async fn healthz_is_ok_when_the_database_answers() {
    let app = spawn_app().await;
    let reply = app.send(app.client.get(app.url("/healthz"))).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, serde_json::json!({"status": "ok"}));
}

#[tokio::test]
async fn healthz_is_503_when_the_database_cannot_answer() {
    let app = spawn_app().await;
    // Take the users table away underneath the running server.
    app.db()
        .batch_execute("ALTER TABLE users RENAME TO users_gone")
        .unwrap();
    let reply = app.send(app.client.get(app.url("/healthz"))).await;
    assert_eq!(reply.status, 503, "{}", reply.text);
    assert_eq!(reply.body["status"], "unavailable");
}
