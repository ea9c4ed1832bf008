use std::collections::HashSet;

use crate::helpers::spawn_app;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_first_logins_of_one_openid_make_one_user() {
    let app = std::sync::Arc::new(spawn_app().await);
    let codes: Vec<String> = (0..20)
        .map(|_| app.fake.code_for("oRacingFirstLogin"))
        .collect();

    let handles: Vec<_> = codes
        .into_iter()
        .map(|code| {
            let app = app.clone();
            tokio::spawn(async move { app.login_code(&code).await })
        })
        .collect();
    let mut replies = Vec::new();
    for handle in handles {
        replies.push(handle.await.unwrap());
    }

    for reply in &replies {
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    assert_eq!(app.count("users"), 1);
    let ids: HashSet<i64> = replies
        .iter()
        .map(|r| r.body["user"]["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 1);
    let new_count = replies
        .iter()
        .filter(|r| r.body["user"]["is_new"] == true)
        .count();
    assert_eq!(new_count, 1, "exactly one login created the user");
    let tokens: HashSet<String> = replies.iter().map(|r| r.token()).collect();
    assert_eq!(tokens.len(), 20);
    for token in &tokens {
        assert_eq!(app.get_me(token).await.status, 200);
    }
    let user = wxlogin::db::models::User::find_by_openid(&mut app.db(), "oRacingFirstLogin")
        .unwrap()
        .unwrap();
    assert_eq!(user.login_count, 20);
}
