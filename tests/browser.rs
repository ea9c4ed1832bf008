//! The admin console in a real browser: headless Chromium driven through WebDriver against
//! the real server (port 0, a fresh SQLite file, the fake WeChat of the API tests).
//!
//! Opt-in, as it needs Debian's `chromium` and `chromium-driver`:
//! `cargo test --features browser-tests --test browser`. Without them the tests fail with a
//! message saying what to install. Screenshots go to `target/screenshots/`.

#[path = "api/helpers.rs"]
#[allow(dead_code)]
mod helpers;
#[path = "browser/webdriver.rs"]
mod webdriver;

use std::time::Instant;

use serde_json::{json, Value};
use wxlogin::db::models::{Admin, NewAdmin};
use wxlogin::i18n::{Messages, EN, ZH};

use helpers::{spawn_app, TestApp};
use webdriver::Browser;

const ADMIN: &str = "ops";
const PASSWORD: &str = "browser-test-password";
const IMG_XSS: &str = "<img src=x onerror=alert(1)>";
const SCRIPT_XSS: &str = "<script>alert(2)</script>";
/// The user the scenario searches for and disables; no other nickname contains it.
const TARGET: &str = "王小明";

/// Nicknames of the seeded users, oldest first. The XSS ones come last so that they are on
/// the first page of the list (newest first).
const NICKNAMES: [&str; 25] = [
    "张伟",
    "李娜",
    "王芳",
    "刘洋🐼",
    "陈静",
    "杨帆⛵",
    "赵磊",
    "黄敏",
    "周杰",
    "吴婷🌸",
    "Alice",
    "Bob 🚀",
    "Ming Li",
    "🐱🐶🐰",
    "小红书爱好者",
    "Ünïcödé Ñame",
    "O'Brien & \"Sons\"",
    "孙悟空🐒",
    "猪八戒",
    "微信用户",
    TARGET,
    "唐僧",
    "👨\u{200D}👩\u{200D}👧 一家人",
    IMG_XSS,
    SCRIPT_XSS,
];

/// A user logged in through the API.
struct Seeded {
    id: i64,
    nickname: &'static str,
    token: String,
}

/// Creates the admin `ops` straight in the test's database.
fn create_admin(app: &TestApp) {
    let now = wxlogin::db::now();
    Admin::create(
        &mut app.db(),
        &NewAdmin {
            username: ADMIN,
            password_hash: &wxlogin::passwords::hash(PASSWORD).unwrap(),
            must_change_password: false,
            created_at: now,
            updated_at: now,
        },
    )
    .expect("creating the admin");
}

/// Logs every nickname of [`NICKNAMES`] in through the API with the fake WeChat.
async fn seed_users(app: &TestApp) -> Vec<Seeded> {
    let mut users = Vec::new();
    for (i, nickname) in NICKNAMES.into_iter().enumerate() {
        let code = app.fake.code_for(&format!("o_browser_{i:02}"));
        let reply = app
            .login_json(json!({ "code": code, "nickname": nickname }))
            .await;
        assert_eq!(reply.status, 200, "seeding {nickname:?}: {}", reply.text);
        assert_eq!(reply.body["user"]["nickname"], nickname, "{}", reply.text);
        users.push(Seeded {
            id: reply.body["user"]["id"].as_i64().expect("a user id"),
            nickname,
            token: reply.token(),
        });
    }
    users
}

/// The `lang` of the page shown.
async fn page_lang(browser: &Browser) -> String {
    let lang = browser
        .execute("return document.documentElement.lang", json!([]))
        .await;
    lang.as_str().unwrap_or_default().to_owned()
}

/// The message catalog for a page `lang`.
fn catalog(lang: &str) -> &'static Messages {
    match lang {
        "zh-CN" => &ZH,
        "en" => &EN,
        other => panic!("unexpected page language {other:?}"),
    }
}

/// Signs in as `ops` through the form and waits for the dashboard.
async fn sign_in(browser: &Browser, app: &TestApp) {
    browser.goto(&app.url("/admin/login")).await;
    browser
        .wait_for("input[name=username]")
        .await
        .send_keys(ADMIN)
        .await;
    browser
        .find("input[name=password]")
        .await
        .send_keys(PASSWORD)
        .await;
    browser
        .find("main form button[type=submit]")
        .await
        .click()
        .await;
    let dashboard = app.url("/admin");
    browser
        .wait_for_url("the dashboard", |url| url == dashboard)
        .await;
}

/// Prints the browser console and fails on errors in it (CSP violations, failed loads).
async fn check_console(browser: &Browser, page: &str) {
    let entries = match browser.console_log().await {
        Ok(entries) => entries,
        Err(e) => {
            eprintln!("[console] not available: {e}");
            return;
        }
    };
    for entry in &entries {
        eprintln!(
            "[console {page}] {} {}",
            entry["level"].as_str().unwrap_or("?"),
            entry["message"].as_str().unwrap_or("?")
        );
    }
    let severe: Vec<&Value> = entries.iter().filter(|e| e["level"] == "SEVERE").collect();
    assert!(
        severe.is_empty(),
        "the browser console has errors on {page}: {severe:#?}"
    );
}

#[tokio::test]
async fn an_admin_signs_in_finds_a_user_disables_them_and_sees_xss_as_text() {
    let started = Instant::now();
    let app = spawn_app().await;
    create_admin(&app);
    let users = seed_users(&app).await;
    let target = users.iter().find(|u| u.nickname == TARGET).unwrap();
    let browser = Browser::start().await;
    eprintln!("browser: {}", browser.user_agent().await);

    // Sign in and land on the dashboard.
    sign_in(&browser, &app).await;
    browser.wait_for(".stats").await;
    let total = browser.find(".stats .stat .value").await.text().await;
    assert_eq!(total, NICKNAMES.len().to_string(), "the users figure");
    let t = catalog(&page_lang(&browser).await);
    let shot = browser.save_screenshot("dashboard.png").await;
    eprintln!("saved {}", shot.display());
    check_console(&browser, "/admin").await;

    // The user list shows hostile nicknames as text.
    browser.goto(&app.url("/admin/users")).await;
    browser.wait_for("table.users").await;
    let shot = browser.save_screenshot("users.png").await;
    eprintln!("saved {}", shot.display());
    let mut shown = Vec::new();
    for link in browser.find_all("table.users a.nickname").await {
        shown.push(link.text().await);
    }
    for xss in [IMG_XSS, SCRIPT_XSS] {
        assert!(
            shown.iter().any(|n| n == xss),
            "{xss:?} is not shown as text; the nicknames shown: {shown:?}"
        );
    }
    assert_eq!(browser.alert_text().await, None, "an alert is open");
    let injected = browser
        .execute(
            "return {
                imgs: document.querySelectorAll('img[src=\"x\"]').length,
                scripts: document.scripts.length,
                xss: typeof window.__xss,
            }",
            json!([]),
        )
        .await;
    assert_eq!(
        injected,
        json!({ "imgs": 0, "scripts": 0, "xss": "undefined" }),
        "a nickname became markup"
    );
    let source = browser.page_source().await;
    assert!(
        source.contains("&lt;img src=x onerror=alert(1)&gt;")
            && source.contains("&lt;script&gt;alert(2)&lt;/script&gt;"),
        "the page source lacks the escaped nicknames"
    );
    check_console(&browser, "/admin/users").await;

    // Search by nickname: exactly that user is listed.
    let search = browser.find("input[name=q]").await;
    search.clear().await;
    search.send_keys(TARGET).await;
    browser
        .find("form.filters button[type=submit]")
        .await
        .click()
        .await;
    browser
        .wait_for_url("the search results", |url| url.contains("q="))
        .await;
    browser.wait_for("table.users").await;
    let rows = browser.find_all("table.users tbody tr").await;
    assert_eq!(rows.len(), 1, "rows listed for {TARGET:?}");
    let link = browser.find("table.users tbody tr a.nickname").await;
    assert_eq!(link.text().await, TARGET);
    assert_eq!(
        link.attribute("href").await.as_deref(),
        Some(format!("/admin/users/{}", target.id).as_str())
    );

    // Through to the user's page, then disable them.
    link.click().await;
    let detail = app.url(&format!("/admin/users/{}", target.id));
    browser
        .wait_for_url("the user's page", |url| url == detail)
        .await;
    assert_eq!(browser.wait_for("h1.nickname").await.text().await, TARGET);
    let badge = browser.find("#status-badge").await;
    assert_eq!(badge.text().await, t.status_active);
    assert_eq!(app.get_me(&target.token).await.status, 200, "token works");

    browser
        .find("textarea[name=reason]")
        .await
        .send_keys("Spam reported by several users / 多名用户举报")
        .await;
    browser.find("#disable-button").await.click().await;
    let badge = browser.wait_for("#status-badge.badge-disabled").await;
    let class = badge.attribute("class").await.unwrap_or_default();
    assert!(class.contains("badge-disabled"), "badge class: {class:?}");
    assert_eq!(badge.text().await, t.status_disabled);
    assert_eq!(
        browser.find(".flash").await.text().await,
        t.flash_disabled,
        "the flash message"
    );
    assert_eq!(browser.current_url().await, detail);
    assert!(browser.try_find("#disable-button").await.is_err());
    browser.find("#enable-button").await;

    let me = app.get_me(&target.token).await;
    me.assert_error(403, "user_disabled");
    let shot = browser.save_screenshot("user-disabled.png").await;
    eprintln!("saved {}", shot.display());
    check_console(&browser, "the user's page").await;

    // The other users keep working.
    let other = users.iter().find(|u| u.nickname == IMG_XSS).unwrap();
    assert_eq!(app.get_me(&other.token).await.status, 200);

    browser.quit().await;
    eprintln!("scenario took {:.1?}", started.elapsed());
}

#[tokio::test]
async fn the_language_switch_in_the_header_changes_the_page_language_and_it_sticks() {
    let started = Instant::now();
    let app = spawn_app().await;
    create_admin(&app);
    let browser = Browser::start().await;
    sign_in(&browser, &app).await;

    let first = page_lang(&browser).await;
    let second = if first == "zh-CN" { "en" } else { "zh-CN" };
    let switch = browser.find("header a.lang").await;
    assert_eq!(switch.attribute("hreflang").await.as_deref(), Some(second));
    assert_eq!(switch.text().await, catalog(second).language_name);

    // Switch on the dashboard: the same page comes back in the other language.
    switch.click().await;
    browser.wait_for(&format!("html[lang=\"{second}\"]")).await;
    assert_eq!(browser.current_url().await, app.url("/admin"));
    assert_eq!(
        browser.find("h1").await.text().await,
        catalog(second).dashboard_title
    );

    // It sticks: following a link, and opening a page afresh.
    browser
        .find("nav.mainnav a[href=\"/admin/users\"]")
        .await
        .click()
        .await;
    let users = app.url("/admin/users");
    browser
        .wait_for_url("the user list", |url| url == users)
        .await;
    assert_eq!(page_lang(&browser).await, second);
    assert_eq!(
        browser.find("h1").await.text().await,
        catalog(second).users_title
    );
    browser.goto(&app.url("/admin/audit")).await;
    assert_eq!(page_lang(&browser).await, second);
    assert_eq!(
        browser.find("h1").await.text().await,
        catalog(second).audit_title
    );

    // And back.
    browser.find("header a.lang").await.click().await;
    browser.wait_for(&format!("html[lang=\"{first}\"]")).await;
    assert_eq!(browser.current_url().await, app.url("/admin/audit"));
    assert_eq!(
        browser.find("h1").await.text().await,
        catalog(&first).audit_title
    );
    check_console(&browser, "the language switch").await;

    browser.quit().await;
    eprintln!("language switch took {:.1?}", started.elapsed());
}

#[test]
fn base64_decodes_like_the_standard_says() {
    use webdriver::decode_base64;
    assert_eq!(decode_base64("TWFu"), b"Man");
    assert_eq!(decode_base64("TWE="), b"Ma");
    assert_eq!(decode_base64("TQ=="), b"M");
    assert_eq!(decode_base64("iVBORw0KGgo="), b"\x89PNG\r\n\x1a\n");
    assert_eq!(decode_base64(""), b"");
}
