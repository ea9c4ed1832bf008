//! The admin console over HTTP, with a cookie-keeping client per browser.

use std::time::Duration;

use diesel::prelude::*;
use serde_json::json;
use wxlogin::db::models::{Admin, User};

use crate::helpers::{extract_csrf, spawn_app, spawn_app_with, Options, TestApp, ADMIN_PASSWORD};

/// Logs a user in through the API with a nickname and returns (id, token).
async fn seed_user(app: &TestApp, openid: &str, nickname: &str) -> (i64, String) {
    let code = app.fake.code_for(openid);
    let reply = app
        .login_json(json!({"code": code, "nickname": nickname}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    (reply.body["user"]["id"].as_i64().unwrap(), reply.token())
}

fn audit_rows(app: &TestApp) -> Vec<(String, String, Option<i64>, Option<String>)> {
    use wxlogin::db::schema::audit_log::dsl::*;
    audit_log
        .order(id.asc())
        .select((admin_username, action, user_id, reason))
        .load(&mut app.db())
        .unwrap()
}

#[tokio::test]
async fn console_pages_need_a_signed_in_admin() {
    let app = spawn_app().await;
    let browser = app.browser();
    browser.get("/admin").await.assert_redirect("/admin/login");
    browser
        .get("/admin/users?q=x")
        .await
        .assert_redirect("/admin/login?next=%2Fadmin%2Fusers%3Fq%3Dx");
    let login = browser.get("/admin/login").await;
    assert_eq!(login.status, 200);
    assert!(login.text.contains(r#"name="password""#));
}

#[tokio::test]
async fn an_admin_signs_in_sees_the_dashboard_and_signs_out() {
    let app = spawn_app().await;
    app.create_admin("ops", ADMIN_PASSWORD, false);
    let browser = app.browser();

    browser
        .sign_in("ops", ADMIN_PASSWORD)
        .await
        .assert_redirect("/admin");
    let dashboard = browser.get("/admin").await;
    assert_eq!(dashboard.status, 200);
    assert!(dashboard.text.contains("Dashboard"));
    assert!(
        dashboard.text.contains(">ops<"),
        "the admin's name is shown"
    );

    let out = browser.submit("/admin", "/admin/logout", &[]).await;
    out.assert_redirect("/admin/login?signed_out=1");
    assert!(browser
        .get("/admin/login?signed_out=1")
        .await
        .text
        .contains("You have signed out."));
    browser.get("/admin").await.assert_redirect("/admin/login");
    let rows = audit_rows(&app);
    let actions: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(actions, ["sign_in", "sign_out"]);
}

#[tokio::test]
async fn a_session_cookie_is_worthless_after_sign_out() {
    let app = spawn_app().await;
    app.create_admin("ops", ADMIN_PASSWORD, false);
    let browser = app.browser();
    let signed_in = browser.sign_in("ops", ADMIN_PASSWORD).await;
    let cookie = signed_in
        .session_cookie()
        .expect("sign-in sets the session cookie");
    browser.submit("/admin", "/admin/logout", &[]).await;

    // Replaying the cookie a copy of the browser kept does not get back in.
    let replay = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(app.url("/admin"))
        .header("cookie", format!("wxlogin_session={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 303);
    assert_eq!(replay.headers()["location"], "/admin/login");
}

#[tokio::test]
async fn the_session_is_renewed_at_sign_in_so_a_planted_session_is_useless() {
    let app = spawn_app().await;
    app.create_admin("ops", ADMIN_PASSWORD, false);
    let browser = app.browser();
    let before = browser
        .get("/admin/login")
        .await
        .session_cookie()
        .expect("a session for the form");
    let csrf = browser.csrf("/admin/login").await;
    let after = browser
        .post(
            "/admin/login",
            &[
                ("csrf", &csrf),
                ("username", "ops"),
                ("password", ADMIN_PASSWORD),
            ],
        )
        .await
        .session_cookie()
        .expect("a new session cookie at sign-in");
    assert_ne!(before, after, "the session key did not change at sign-in");

    let replay = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(app.url("/admin"))
        .header("cookie", format!("wxlogin_session={before}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        replay.status(),
        303,
        "the pre-sign-in session must not be signed in"
    );
}

#[tokio::test]
async fn the_session_cookie_is_httponly_strict_and_secure_only_when_configured() {
    let app = spawn_app().await;
    let page = app.browser().get("/admin/login").await;
    let cookie = page.set_cookie_header().unwrap();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains("Secure"), "{cookie}");
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_username_get_the_same_answer() {
    let app = spawn_app().await;
    app.create_admin("ops", ADMIN_PASSWORD, false);
    let browser = app.browser();
    let wrong = browser.sign_in("ops", "not the password").await;
    let unknown = browser.sign_in("nobody", "not the password").await;
    for page in [&wrong, &unknown] {
        assert_eq!(page.status, 401);
        assert!(page.text.contains("Wrong username or password."));
    }
    browser.get("/admin").await.assert_redirect("/admin/login");
}

/// Medians of `n` failed sign-ins as each of `usernames`, taken in turns so that whatever else
/// the machine is doing (the other tests, in parallel) slows each alike. Failures are cleared
/// before every try so the brute-force limit does not answer first.
async fn median_failed_sign_ins<const N: usize>(
    app: &TestApp,
    usernames: [&str; N],
    n: usize,
) -> [Duration; N] {
    let browser = app.browser();
    let csrf = browser.csrf("/admin/login").await;
    let mut times = [(); N].map(|()| Vec::new());
    for _ in 0..n {
        for (username, times) in usernames.iter().zip(&mut times) {
            diesel::delete(wxlogin::db::schema::admin_sign_in_failures::table)
                .execute(&mut app.db())
                .unwrap();
            let started = std::time::Instant::now();
            let page = browser
                .post(
                    "/admin/login",
                    &[
                        ("csrf", &csrf),
                        ("username", username),
                        ("password", "wrong-password"),
                    ],
                )
                .await;
            times.push(started.elapsed());
            assert_eq!(page.status, 401);
        }
    }
    times.map(|mut times| {
        times.sort();
        times[n / 2]
    })
}

#[tokio::test]
async fn an_unknown_username_costs_a_password_hash_like_a_known_one() {
    let app = spawn_app().await;
    app.create_admin("ops", ADMIN_PASSWORD, false);
    let [known, unknown] = median_failed_sign_ins(&app, ["ops", "nobody-here"], 7).await;
    // Without the dummy hash an unknown name answered eight times faster (4 ms against 35 in
    // a debug build); a loose bound keeps this meaningful on a noisy machine.
    assert!(
        unknown * 3 >= known,
        "unknown username answered in {unknown:?}, known in {known:?}: usernames can be probed"
    );
}

#[tokio::test]
async fn five_failures_for_one_username_lock_it_for_fifteen_minutes() {
    let app = spawn_app().await;
    app.create_admin("ops", ADMIN_PASSWORD, false);
    // Five failures for `ops` from another address: the username limit, not the IP limit.
    let now = wxlogin::db::now();
    for _ in 0..5 {
        Admin::record_failed_sign_in(&mut app.db(), "ops", "203.0.113.9", now).unwrap();
    }
    let browser = app.browser();
    let page = browser.sign_in("ops", ADMIN_PASSWORD).await;
    assert_eq!(page.status, 429, "{}", page.text);
    assert!(
        page.text
            .contains("Too many failed sign-ins. Try again in 15 minutes."),
        "{}",
        page.text
    );
    browser.get("/admin").await.assert_redirect("/admin/login");
}

#[tokio::test]
async fn five_failures_from_one_ip_lock_that_ip_for_every_username() {
    let app = spawn_app().await;
    app.create_admin("ops", ADMIN_PASSWORD, false);
    let browser = app.browser();
    for name in ["a1", "a2", "a3", "a4", "a5"] {
        assert_eq!(browser.sign_in(name, "guess").await.status, 401);
    }
    let page = browser.sign_in("ops", ADMIN_PASSWORD).await;
    assert_eq!(page.status, 429);
    assert!(page.text.contains("Try again in"), "{}", page.text);
}

#[tokio::test]
async fn failures_older_than_fifteen_minutes_do_not_count() {
    let app = spawn_app().await;
    app.create_admin("ops", ADMIN_PASSWORD, false);
    let long_ago = wxlogin::db::now() - chrono::TimeDelta::minutes(16);
    for _ in 0..5 {
        Admin::record_failed_sign_in(&mut app.db(), "ops", "127.0.0.1", long_ago).unwrap();
    }
    app.browser()
        .sign_in("ops", ADMIN_PASSWORD)
        .await
        .assert_redirect("/admin");
}

#[tokio::test]
async fn forms_without_a_valid_csrf_token_are_refused_with_403() {
    let app = spawn_app().await;
    let (user_id, _) = seed_user(&app, "oCsrf", "target").await;
    let browser = app.signed_in_browser().await;
    let disable = format!("/admin/users/{user_id}/disable");

    let missing = browser.post(&disable, &[("reason", "spam")]).await;
    assert_eq!(missing.status, 403);
    let forged = browser
        .post(
            &disable,
            &[("csrf", "0123456789abcdef"), ("reason", "spam")],
        )
        .await;
    assert_eq!(forged.status, 403);
    assert!(forged.text.contains("This form has expired"));

    // A token from another session does not work either.
    let other = app.browser();
    let foreign = other.csrf("/admin/login").await;
    let cross = browser
        .post(&disable, &[("csrf", &foreign), ("reason", "spam")])
        .await;
    assert_eq!(cross.status, 403);

    assert!(!User::find(&mut app.db(), user_id)
        .unwrap()
        .unwrap()
        .is_disabled());
    let signed_out = browser.post("/admin/logout", &[]).await;
    assert_eq!(signed_out.status, 403);
    let sign_in = app
        .browser()
        .post(
            "/admin/login",
            &[("username", "ops"), ("password", ADMIN_PASSWORD)],
        )
        .await;
    assert_eq!(sign_in.status, 403);
}

#[tokio::test]
async fn disabling_needs_a_reason_and_revokes_the_users_tokens() {
    let app = spawn_app().await;
    let (user_id, token) = seed_user(&app, "oToDisable", "troublemaker").await;
    let browser = app.signed_in_browser().await;
    let page = format!("/admin/users/{user_id}");
    let action = format!("/admin/users/{user_id}/disable");

    let no_reason = browser.submit(&page, &action, &[("reason", "   ")]).await;
    assert_eq!(no_reason.status, 400);
    assert!(no_reason.text.contains("Give a reason to disable a user."));
    assert!(!User::find(&mut app.db(), user_id)
        .unwrap()
        .unwrap()
        .is_disabled());
    assert_eq!(app.get_me(&token).await.status, 200);

    let done = browser
        .submit(&page, &action, &[("reason", "spam & abuse <b>")])
        .await;
    done.assert_redirect(&page);
    let detail = browser.get(&page).await;
    assert!(detail
        .text
        .contains("User disabled; all their tokens are revoked."));
    assert!(detail.text.contains("badge-disabled"));
    assert!(
        detail.text.contains("spam &#38; abuse &#60;b&#62;"),
        "the reason is shown escaped"
    );
    let user = User::find(&mut app.db(), user_id).unwrap().unwrap();
    assert_eq!(user.disabled_reason.as_deref(), Some("spam & abuse <b>"));

    app.get_me(&token).await.assert_error(403, "user_disabled");
    let code = app.fake.code_for("oToDisable");
    app.login_code(&code)
        .await
        .assert_error(403, "user_disabled");
}

#[tokio::test]
async fn enabling_lets_the_user_log_in_again_and_both_actions_are_audited() {
    let app = spawn_app().await;
    let (user_id, _) = seed_user(&app, "oRoundTrip", "roundtrip").await;
    let browser = app.signed_in_browser().await;
    let page = format!("/admin/users/{user_id}");
    browser
        .submit(
            &page,
            &format!("/admin/users/{user_id}/disable"),
            &[("reason", "checking")],
        )
        .await;
    let enabled = browser
        .submit(&page, &format!("/admin/users/{user_id}/enable"), &[])
        .await;
    enabled.assert_redirect(&page);
    let detail = browser.get(&page).await;
    assert!(detail.text.contains("User enabled."));
    assert!(detail.text.contains("badge-active"));
    assert!(!User::find(&mut app.db(), user_id)
        .unwrap()
        .unwrap()
        .is_disabled());
    let code = app.fake.code_for("oRoundTrip");
    assert_eq!(app.login_code(&code).await.status, 200);

    let rows: Vec<_> = audit_rows(&app)
        .into_iter()
        .filter(|r| r.2 == Some(user_id))
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[0],
        (
            "ops".into(),
            "disable_user".into(),
            Some(user_id),
            Some("checking".into())
        )
    );
    assert_eq!(
        rows[1],
        ("ops".into(), "enable_user".into(), Some(user_id), None)
    );
    assert!(detail.text.contains("Disabled user") && detail.text.contains("Enabled user"));
}

#[tokio::test]
async fn the_audit_page_lists_actions_and_filters_by_admin_and_user() {
    let app = spawn_app().await;
    let (alice, _) = seed_user(&app, "oAuditA", "alice").await;
    let (bob, _) = seed_user(&app, "oAuditB", "bob").await;
    let ops = app.signed_in_browser().await;
    app.create_admin("second", ADMIN_PASSWORD, false);
    let second = app.browser();
    second
        .sign_in("second", ADMIN_PASSWORD)
        .await
        .assert_redirect("/admin");

    ops.submit(
        &format!("/admin/users/{alice}"),
        &format!("/admin/users/{alice}/disable"),
        &[("reason", "reason-for-alice")],
    )
    .await;
    second
        .submit(
            &format!("/admin/users/{bob}"),
            &format!("/admin/users/{bob}/disable"),
            &[("reason", "reason-for-bob")],
        )
        .await;

    let all = ops.get("/admin/audit").await;
    assert_eq!(all.status, 200);
    assert!(all.text.contains("reason-for-alice") && all.text.contains("reason-for-bob"));
    assert!(all.text.contains("127.0.0.1"), "the IP is shown");

    let second_id = Admin::find_by_username(&mut app.db(), "second")
        .unwrap()
        .unwrap()
        .id;
    let by_admin = ops.get(&format!("/admin/audit?admin={second_id}")).await;
    assert!(
        by_admin.text.contains("reason-for-bob") && !by_admin.text.contains("reason-for-alice")
    );
    let by_user = ops.get(&format!("/admin/audit?user={alice}")).await;
    assert!(by_user.text.contains("reason-for-alice") && !by_user.text.contains("reason-for-bob"));
    let empty_fields = ops.get("/admin/audit?admin=&user=").await;
    assert_eq!(empty_fields.status, 200);
    assert_eq!(ops.get("/admin/audit?user=abc").await.status, 400);
}

/// The nicknames in the users table of a page, in order.
fn listed_nicknames(html: &str) -> Vec<String> {
    html.split(r#"class="nickname">"#)
        .skip(1)
        .map(|rest| rest.split('<').next().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test]
async fn search_matches_nickname_substrings_and_exact_openids_and_unionids() {
    let app = spawn_app().await;
    seed_user(&app, "oSearchOne", "张三丰").await;
    seed_user(&app, "oSearchTwo", "李四").await;
    seed_user(&app, "oPercent", "100%_sure").await;
    seed_user(&app, "oPlain", "100 percent").await;
    let code = app.fake.code_with_unionid("oWithUnion", "uSearchUnion");
    app.login_json(json!({"code": code, "nickname": "has-union"}))
        .await;
    let browser = app.signed_in_browser().await;

    let by_nick = browser.get("/admin/users?q=%E4%B8%89").await; // 三
    assert_eq!(listed_nicknames(&by_nick.text), ["张三丰"]);
    let by_openid = browser.get("/admin/users?q=oSearchTwo").await;
    assert_eq!(listed_nicknames(&by_openid.text), ["李四"]);
    let partial_openid = browser.get("/admin/users?q=oSearch").await;
    assert!(
        listed_nicknames(&partial_openid.text).is_empty(),
        "openids match exactly only"
    );
    let by_union = browser.get("/admin/users?q=uSearchUnion").await;
    assert_eq!(listed_nicknames(&by_union.text), ["has-union"]);
    let literal = browser.get("/admin/users?q=%25_").await; // "%_"
    assert_eq!(listed_nicknames(&literal.text), ["100%_sure"]);
    let sql = browser.get("/admin/users?q=%27%20OR%201%3D1%20--").await;
    assert_eq!(sql.status, 200);
    assert!(listed_nicknames(&sql.text).is_empty());
    assert!(sql.text.contains("No users match these filters."));
}

#[tokio::test]
async fn a_nickname_search_follows_nickname_changes_and_ignores_case() {
    let app = spawn_app().await;
    let (_, token) = seed_user(&app, "oRename", "Old Panda Name").await;
    seed_user(&app, "oOther", "someone else").await;
    let browser = app.signed_in_browser().await;

    let found = browser.get("/admin/users?q=panda").await;
    assert_eq!(listed_nicknames(&found.text), ["Old Panda Name"]);
    assert!(found.text.contains("1 user"), "{}", found.text);

    let patched = app
        .patch_me(&token, json!({"nickname": "新名字 Koala"}))
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    let old = browser.get("/admin/users?q=Panda").await;
    assert!(
        listed_nicknames(&old.text).is_empty(),
        "the old nickname is no longer found: {:?}",
        listed_nicknames(&old.text)
    );
    let new = browser.get("/admin/users?q=KOALA").await;
    assert_eq!(listed_nicknames(&new.text), ["新名字 Koala"]);
    let cjk = browser
        .get("/admin/users?q=%E6%96%B0%E5%90%8D%E5%AD%97")
        .await; // 新名字
    assert_eq!(listed_nicknames(&cjk.text), ["新名字 Koala"]);

    // A returning login without a nickname leaves the indexed one alone.
    let again = app.login_code(&app.fake.code_for("oRename")).await;
    assert_eq!(again.status, 200, "{}", again.text);
    let still = browser.get("/admin/users?q=koala").await;
    assert_eq!(listed_nicknames(&still.text), ["新名字 Koala"]);
}

/// Waits until the login writer has indexed every user's nickname for one- and
/// two-character terms, renamed users included.
async fn wait_for_the_short_term_index(app: &TestApp) {
    #[derive(QueryableByName)]
    struct Behind {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let started = std::time::Instant::now();
    loop {
        let behind = diesel::sql_query(
            "SELECT (SELECT COALESCE(MAX(id), 0) FROM users) - pairs_indexed_through
                    + (SELECT COUNT(*) FROM users_nickname_pairs_pending) AS n
             FROM users_nickname_fts_progress",
        )
        .get_result::<Behind>(&mut app.db())
        .unwrap();
        if behind.n == 0 {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the short-term index never caught up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn one_and_two_character_searches_find_users_before_and_after_indexing_and_follow_renames() {
    let app = spawn_app().await;
    let (_, token) = seed_user(&app, "oShortOne", "熊猫").await;
    seed_user(&app, "oShortTwo", "小熊").await;
    seed_user(&app, "oShortThree", "ab%c").await;
    let browser = app.signed_in_browser().await;
    let search = |term: &'static str| {
        let browser = &browser;
        async move {
            let page = browser
                .get(&format!(
                    "/admin/users?{}",
                    serde_urlencoded::to_string([("q", term)]).unwrap()
                ))
                .await;
            assert_eq!(page.status, 200, "{}", page.text);
            let mut names = listed_nicknames(&page.text);
            names.sort();
            names
        }
    };
    for round in ["as they may still wait for the index", "once indexed"] {
        assert_eq!(search("熊").await, ["小熊", "熊猫"], "{round}");
        assert_eq!(search("熊猫").await, ["熊猫"], "{round}");
        assert!(search("猫熊").await.is_empty(), "{round}");
        assert_eq!(search("b%").await, ["ab%c"], "{round}");
        assert_eq!(search("A").await, ["ab%c"], "{round}");
        wait_for_the_short_term_index(&app).await;
    }

    let patched = app.patch_me(&token, json!({"nickname": "Koala"})).await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    for round in ["just renamed", "renamed and indexed again"] {
        assert_eq!(search("熊").await, ["小熊"], "{round}");
        assert!(search("猫").await.is_empty(), "{round}");
        assert_eq!(search("ko").await, ["Koala"], "{round}");
        wait_for_the_short_term_index(&app).await;
    }
}

#[tokio::test]
async fn a_search_matching_more_users_than_it_counts_says_more_than_and_still_pages_in_order() {
    let app = spawn_app().await;
    let cap = wxlogin::db::SEARCH_COUNT_CAP;
    // Straight into the database: 1,200 users called "common-N", created a second apart,
    // and one "rare-common" that is not among the newest.
    diesel::sql_query(format!(
        "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < {n})
         INSERT INTO users (openid, session_key, nickname, login_count, created_at, updated_at, last_login_at)
         SELECT 'oCommon' || n, 'k', CASE WHEN n = 7 THEN 'rare-common' ELSE 'common-' || n END, 1,
                datetime('2026-01-01', '+' || n || ' seconds'), datetime('2026-01-01'), datetime('2026-01-01')
         FROM seq",
        n = 1200
    ))
    .execute(&mut app.db())
    .unwrap();
    let browser = app.signed_in_browser().await;

    let common = browser.get("/admin/users?q=common").await;
    assert_eq!(common.status, 200);
    assert!(
        common.text.contains(&format!("More than {cap} users")),
        "{}",
        common.text
    );
    let expected: Vec<String> = (1181..=1200).rev().map(|n| format!("common-{n}")).collect();
    assert_eq!(listed_nicknames(&common.text), expected, "newest first");
    let third = browser.get("/admin/users?q=common&page=3").await;
    let expected: Vec<String> = (1141..=1160).rev().map(|n| format!("common-{n}")).collect();
    assert_eq!(listed_nicknames(&third.text), expected);

    let rare = browser.get("/admin/users?q=rare-").await;
    assert_eq!(listed_nicknames(&rare.text), ["rare-common"]);
    assert!(rare.text.contains("1 user"), "{}", rare.text);
    let old = browser
        .get("/admin/users?q=common&sort=created_asc&per_page=10")
        .await;
    let expected: Vec<String> = (1..=10)
        .map(|n| match n {
            7 => "rare-common".to_owned(),
            n => format!("common-{n}"),
        })
        .collect();
    assert_eq!(listed_nicknames(&old.text), expected, "oldest first");
}

#[tokio::test]
async fn the_list_filters_by_status_sorts_and_pages_with_the_total() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for i in 0..25 {
        ids.push(
            seed_user(&app, &format!("oPage{i:02}"), &format!("user-{i:02}"))
                .await
                .0,
        );
    }
    let browser = app.signed_in_browser().await;
    // Disable two users and log one old user in again so "recent login" differs from "newest".
    for id in &ids[..2] {
        User::disable(&mut app.db(), *id, "test", wxlogin::db::now()).unwrap();
    }
    seed_user(&app, "oPage05", "user-05").await;

    let first = browser.get("/admin/users?per_page=10").await;
    assert!(first.text.contains("25 users"));
    assert_eq!(
        listed_nicknames(&first.text)[0],
        "user-24",
        "newest first by default"
    );
    assert_eq!(listed_nicknames(&first.text).len(), 10);
    assert!(first.text.contains("Page 1 of 3"));
    assert!(
        first
            .text
            .contains(r#"href="/admin/users?per_page=10&#38;page=2""#),
        "{}",
        first.text
    );

    let third = browser.get("/admin/users?per_page=10&page=3").await;
    assert_eq!(
        listed_nicknames(&third.text),
        ["user-04", "user-03", "user-02", "user-01", "user-00"]
    );

    let oldest = browser
        .get("/admin/users?sort=created_asc&per_page=10")
        .await;
    assert_eq!(listed_nicknames(&oldest.text)[0], "user-00");
    let recent = browser.get("/admin/users?sort=last_login_desc").await;
    assert_eq!(listed_nicknames(&recent.text)[0], "user-05");

    let disabled = browser.get("/admin/users?status=disabled").await;
    assert_eq!(listed_nicknames(&disabled.text), ["user-01", "user-00"]);
    assert!(disabled.text.contains("2 users"));
    let active = browser.get("/admin/users?status=active&per_page=50").await;
    assert!(active.text.contains("23 users"));
    assert!(!listed_nicknames(&active.text).contains(&"user-00".to_owned()));

    for bad in [
        "status=gone",
        "sort=random",
        "per_page=7",
        "page=0",
        "page=abc",
    ] {
        assert_eq!(
            browser.get(&format!("/admin/users?{bad}")).await.status,
            400,
            "{bad}"
        );
    }
}

#[tokio::test]
async fn an_empty_console_explains_how_to_log_a_user_in() {
    let app = spawn_app().await;
    let browser = app.signed_in_browser().await;
    let page = browser.get("/admin/users").await;
    assert!(page.text.contains("No users yet"));
    assert!(page.text.contains("/api/v1/login"));
}

#[tokio::test]
async fn user_data_is_escaped_everywhere() {
    let app = spawn_app().await;
    let (id, _) = seed_user(&app, "oXss", "<img src=x onerror=alert(1)>").await;
    let code = app.fake.code_for("oXss2");
    app.login_json(json!({"code": code, "nickname": "\"><script>alert(2)</script>"}))
        .await;
    let browser = app.signed_in_browser().await;
    for path in ["/admin/users".to_owned(), format!("/admin/users/{id}")] {
        let page = browser.get(&path).await;
        assert!(
            !page.text.contains("<img src=x"),
            "{path} renders the nickname as markup"
        );
        assert!(
            !page.text.contains("<script>alert"),
            "{path} renders a script"
        );
        assert!(
            page.text.contains("&#60;img src=x onerror=alert(1)&#62;"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn the_user_page_shows_every_field_and_the_last_logins() {
    let app = spawn_app().await;
    let code = app.fake.code_with_unionid("oDetail", "uDetail");
    let first = app
        .login_json(
            json!({"code": code, "nickname": "详情", "avatar_url": "https://img.example/d.png"}),
        )
        .await;
    let id = first.body["user"]["id"].as_i64().unwrap();
    for _ in 0..2 {
        seed_user(&app, "oDetail", "详情").await;
    }
    let browser = app.signed_in_browser().await;
    let page = browser.get(&format!("/admin/users/{id}")).await;
    assert_eq!(page.status, 200);
    for expected in [
        "oDetail",
        "uDetail",
        "详情",
        "https://img.example/d.png",
        "wxlogin-tests/1.0 (MicroMessenger)",
    ] {
        assert!(page.text.contains(expected), "missing {expected}");
    }
    assert_eq!(
        page.text.matches("wxlogin-tests/1.0").count(),
        3,
        "three logins listed"
    );
    assert_eq!(browser.get("/admin/users/999999").await.status, 404);
    assert_eq!(browser.get("/admin/users/abc").await.status, 404);
}

#[tokio::test]
async fn the_dashboard_counts_users_and_draws_the_sign_up_chart() {
    let app = spawn_app().await;
    for i in 0..3 {
        seed_user(&app, &format!("oDash{i}"), "x").await;
    }
    let (id, _) = seed_user(&app, "oDash9", "y").await;
    User::disable(&mut app.db(), id, "t", wxlogin::db::now()).unwrap();
    let browser = app.signed_in_browser().await;
    let page = browser.get("/admin").await;
    let stat = |label: &str| -> i64 {
        let at = page
            .text
            .find(&format!(r#"<span class="label">{label}</span>"#))
            .unwrap();
        let before = &page.text[..at];
        let value_start =
            before.rfind(r#"<span class="value">"#).unwrap() + r#"<span class="value">"#.len();
        before[value_start..]
            .split('<')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(stat("Users"), 4);
    assert_eq!(stat("Active"), 3);
    assert_eq!(stat("Disabled"), 1);
    assert_eq!(stat("New today"), 4);
    assert_eq!(stat("New in 7 days"), 4);
    assert_eq!(stat("Logins in 24 hours"), 4);
    assert_eq!(page.text.matches(r#"<rect class="bar""#).count(), 30);
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .format("%Y-%m-%d: 4");
    assert!(page.text.contains(&today.to_string()), "today's bar says 4");
}

#[tokio::test]
async fn a_generated_password_must_be_changed_before_anything_else() {
    let app = spawn_app().await;
    app.create_admin("fresh", "generated-password-1", true);
    let browser = app.browser();
    browser
        .sign_in("fresh", "generated-password-1")
        .await
        .assert_redirect("/admin/password");
    browser
        .get("/admin")
        .await
        .assert_redirect("/admin/password");
    browser
        .get("/admin/users")
        .await
        .assert_redirect("/admin/password");
    let page = browser.get("/admin/password").await;
    assert!(page.text.contains("This password was generated for you"));

    let short = browser
        .submit(
            "/admin/password",
            "/admin/password",
            &[
                ("current", "generated-password-1"),
                ("new", "short"),
                ("repeat", "short"),
            ],
        )
        .await;
    assert_eq!(short.status, 400);
    let wrong = browser
        .submit(
            "/admin/password",
            "/admin/password",
            &[
                ("current", "nope-nope-nope"),
                ("new", "a-new-password"),
                ("repeat", "a-new-password"),
            ],
        )
        .await;
    assert_eq!(wrong.status, 400);
    assert!(wrong.text.contains("The current password is wrong."));
    let differ = browser
        .submit(
            "/admin/password",
            "/admin/password",
            &[
                ("current", "generated-password-1"),
                ("new", "a-new-password"),
                ("repeat", "another-password"),
            ],
        )
        .await;
    assert_eq!(differ.status, 400);

    browser
        .submit(
            "/admin/password",
            "/admin/password",
            &[
                ("current", "generated-password-1"),
                ("new", "a-new-password"),
                ("repeat", "a-new-password"),
            ],
        )
        .await
        .assert_redirect("/admin");
    let dashboard = browser.get("/admin").await;
    assert_eq!(dashboard.status, 200);
    assert!(dashboard.text.contains("Your password has been changed."));
    let admin = Admin::find_by_username(&mut app.db(), "fresh")
        .unwrap()
        .unwrap();
    assert!(!admin.must_change_password);
    assert!(wxlogin::passwords::verify(
        "a-new-password",
        Some(&admin.password_hash)
    ));
}

#[tokio::test]
async fn changing_the_password_ends_the_admins_other_sessions() {
    let app = spawn_app().await;
    let laptop = app.signed_in_browser().await;
    let phone = app.browser();
    phone
        .sign_in("ops", ADMIN_PASSWORD)
        .await
        .assert_redirect("/admin");
    laptop
        .submit(
            "/admin/password",
            "/admin/password",
            &[
                ("current", ADMIN_PASSWORD),
                ("new", "brand-new-password"),
                ("repeat", "brand-new-password"),
            ],
        )
        .await
        .assert_redirect("/admin");
    assert_eq!(laptop.get("/admin").await.status, 200);
    phone.get("/admin").await.assert_redirect("/admin/login");
}

#[tokio::test]
async fn an_idle_session_ends_after_the_idle_timeout() {
    let app = spawn_app_with(Options {
        session_idle: Duration::from_secs(2),
        ..Default::default()
    })
    .await;
    let browser = app.signed_in_browser().await;
    // Activity keeps the session alive past the timeout...
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert_eq!(browser.get("/admin").await.status, 200);
    }
    // ...and idleness ends it.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    browser.get("/admin").await.assert_redirect("/admin/login");
}

#[tokio::test]
async fn the_language_follows_accept_language_and_the_switch_sticks() {
    let app = spawn_app().await;
    app.create_admin("ops", ADMIN_PASSWORD, false);
    let zh = app.browser_with_language("zh-CN,zh;q=0.9");
    let page = zh.get("/admin/login").await;
    assert!(page.text.contains(r#"<html lang="zh-CN">"#));
    assert!(page.text.contains("用户名"));
    let en = app.browser_with_language("en-GB");
    assert!(en.get("/admin/login").await.text.contains("Username"));
    let none = app.browser_with_language("fr-FR");
    assert!(
        none.get("/admin/login").await.text.contains("用户名"),
        "Chinese by default"
    );

    zh.sign_in("ops", ADMIN_PASSWORD)
        .await
        .assert_redirect("/admin");
    let users_zh = zh.get("/admin/users").await;
    assert!(users_zh.text.contains("还没有用户"));
    let switch = zh.get("/admin/lang/en?next=%2Fadmin%2Fusers").await;
    switch.assert_redirect("/admin/users");
    assert!(switch.headers["set-cookie"]
        .to_str()
        .unwrap()
        .starts_with("wxlogin_lang=en"));
    let users_en = zh.get("/admin/users").await;
    assert!(users_en.text.contains(r#"<html lang="en">"#));
    assert!(users_en.text.contains("No users yet"));
    assert!(
        zh.get("/admin").await.text.contains("Dashboard"),
        "the choice sticks"
    );
    zh.get("/admin/lang/zh").await.assert_redirect("/admin");
    assert!(zh.get("/admin").await.text.contains("概览"));
    assert_eq!(zh.get("/admin/lang/fr").await.status, 404);
}

#[tokio::test]
async fn next_never_redirects_to_another_site() {
    let app = spawn_app().await;
    app.create_admin("ops", ADMIN_PASSWORD, false);
    for (next, expected) in [
        ("https://evil.example/", "/admin"),
        ("//evil.example/admin", "/admin"),
        ("/\\evil.example", "/admin"),
        ("/admin/users?q=a", "/admin/users?q=a"),
    ] {
        let browser = app.browser();
        let csrf = browser.csrf("/admin/login").await;
        let page = browser
            .post(
                "/admin/login",
                &[
                    ("csrf", &csrf),
                    ("username", "ops"),
                    ("password", ADMIN_PASSWORD),
                    ("next", next),
                ],
            )
            .await;
        page.assert_redirect(expected);
    }
    let browser = app.browser();
    browser
        .get("/admin/lang/en?next=https://evil.example")
        .await
        .assert_redirect("/admin");
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = spawn_app().await;
    let browser = app.browser();
    for path in [
        "/admin/login",
        "/admin",
        "/static/style.css",
        "/healthz",
        "/api/v1/me",
        "/nope",
        "/admin/nope",
    ] {
        let page = browser.get(path).await;
        let h = |name: &str| {
            page.headers
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        assert!(
            h("content-security-policy")
                .unwrap_or_default()
                .starts_with("default-src 'self'"),
            "{path}"
        );
        assert_eq!(h("x-frame-options").as_deref(), Some("DENY"), "{path}");
        assert_eq!(
            h("x-content-type-options").as_deref(),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(
            h("referrer-policy").as_deref(),
            Some("same-origin"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn static_files_are_served_from_the_binary_and_nothing_else_is() {
    let app = spawn_app().await;
    let browser = app.browser();
    let css = browser.get("/static/style.css").await;
    assert_eq!(css.status, 200);
    assert!(css.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
    assert_eq!(
        css.text.as_bytes(),
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/static/style.css")).unwrap()
    );
    assert_eq!(
        browser.get("/static/favicon.svg").await.headers["content-type"],
        "image/svg+xml"
    );
    for path in [
        "/static/../Cargo.toml",
        "/static/%2e%2e/Cargo.toml",
        "/static/..%2fCargo.toml",
        "/static/nope.css",
    ] {
        let page = browser.get(path).await;
        assert_eq!(page.status, 404, "{path}");
        assert!(!page.text.contains("[package]"), "{path}");
    }
}

#[tokio::test]
async fn error_pages_are_html_in_both_languages() {
    let app = spawn_app().await;
    let browser = app.signed_in_browser().await;
    let page = browser.get("/admin/nope").await;
    assert_eq!(page.status, 404);
    assert!(page.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(page.text.contains("页面不存在") && page.text.contains("There is no such page."));
    assert!(extract_csrf(&page.text).is_none());
}
