//! Starts the real server on port 0 with a fresh SQLite file and a fake WeChat, and checks
//! every reply it gives for leaked session keys.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use diesel::Connection;
use serde_json::Value;
use wxlogin::config::{AdminConfig, Config, WeChatConfig};
use wxlogin::db::DbConnection;
use wxlogin::domain::Secret;
use wxlogin::startup::Application;

#[path = "../common/cookie_client.rs"]
mod cookie_client;
pub use cookie_client::CookieClient;

pub const APPID: &str = "wx_test_appid_0001";
pub const SECRET: &str = "test-app-secret-9f3b2c";

/// What the fake does with a code it handed out.
#[derive(Clone)]
enum Planned {
    Session {
        openid: String,
        unionid: Option<String>,
    },
    Error(i64),
}

/// How the fake answers every call, whatever the code.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fault {
    /// HTTP 500 with an HTML page.
    Http500,
    /// HTTP 200 with a body that is not JSON.
    NotJson,
    /// Never answers.
    Hang,
    /// HTTP 302 to this same endpoint, which would count a second call if followed.
    Redirect,
}

#[derive(Default)]
struct FakeState {
    planned: HashMap<String, Planned>,
    used: HashSet<String>,
    session_keys: Vec<String>,
    calls: Vec<HashMap<String, String>>,
    fault: Option<Fault>,
    delay: Duration,
}

/// A stand-in for api.weixin.qq.com that answers like WeChat does: JSON as `text/plain`,
/// `errcode` only on failure, each code usable once, AppID and secret checked.
#[derive(Clone)]
pub struct FakeWeChat {
    pub base_url: String,
    state: Arc<Mutex<FakeState>>,
}

async fn jscode2session(req: HttpRequest, state: web::Data<Mutex<FakeState>>) -> HttpResponse {
    let query: HashMap<String, String> =
        serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    let (fault, delay) = {
        let mut s = state.lock().unwrap();
        s.calls.push(query.clone());
        (s.fault, s.delay)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match fault {
        Some(Fault::Http500) => {
            return HttpResponse::InternalServerError()
                .content_type("text/html")
                .body("<html><body>500 Internal Server Error</body></html>")
        }
        Some(Fault::NotJson) => {
            return HttpResponse::Ok()
                .content_type("text/html")
                .body("<html>upgrade in progress</html>")
        }
        Some(Fault::Hang) => {
            tokio::time::sleep(Duration::from_secs(120)).await;
        }
        Some(Fault::Redirect) => {
            return HttpResponse::Found()
                .insert_header(("Location", format!("{}?{}", req.path(), req.query_string())))
                .finish()
        }
        None => {}
    }
    let reply = |v: Value| {
        HttpResponse::Ok()
            .content_type("text/plain")
            .body(v.to_string())
    };
    let error = |errcode: i64, errmsg: &str| {
        reply(
            serde_json::json!({"errcode": errcode, "errmsg": format!("{errmsg}, rid: 6571f3a1-0b2c")}),
        )
    };
    if query.get("appid").map(String::as_str) != Some(APPID) {
        return error(40013, "invalid appid");
    }
    if query.get("secret").map(String::as_str) != Some(SECRET) {
        return error(40125, "invalid appsecret");
    }
    if query.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return error(40002, "invalid grant_type");
    }
    let code = query.get("js_code").cloned().unwrap_or_default();
    let mut s = state.lock().unwrap();
    let Some(planned) = s.planned.get(&code).cloned() else {
        return error(40029, "invalid code");
    };
    if !s.used.insert(code) {
        return error(40163, "code been used");
    }
    match planned {
        Planned::Error(errcode) => error(errcode, "planned error"),
        Planned::Session { openid, unionid } => {
            let key = random_hex(12);
            s.session_keys.push(key.clone());
            let mut body = serde_json::json!({"openid": openid, "session_key": key});
            if let Some(u) = unionid {
                body["unionid"] = Value::String(u);
            }
            reply(body)
        }
    }
}

pub fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::fill(&mut b[..]);
    hex::encode(b)
}

impl FakeWeChat {
    pub async fn start() -> Self {
        let state = web::Data::new(Mutex::new(FakeState::default()));
        let inner = state.clone().into_inner();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .route("/sns/jscode2session", web::get().to(jscode2session))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        FakeWeChat {
            base_url: format!("http://127.0.0.1:{port}"),
            state: inner,
        }
    }

    fn plan(&self, planned: Planned) -> String {
        let code = format!("0{}", random_hex(16)); // 33 characters, like a real code
        self.state
            .lock()
            .unwrap()
            .planned
            .insert(code.clone(), planned);
        code
    }

    /// A fresh code that logs in `openid`.
    pub fn code_for(&self, openid: &str) -> String {
        self.plan(Planned::Session {
            openid: openid.into(),
            unionid: None,
        })
    }

    /// A fresh code that logs in `openid` and reports `unionid`.
    pub fn code_with_unionid(&self, openid: &str, unionid: &str) -> String {
        self.plan(Planned::Session {
            openid: openid.into(),
            unionid: Some(unionid.into()),
        })
    }

    /// A fresh code whose exchange fails with `errcode`.
    pub fn code_failing_with(&self, errcode: i64) -> String {
        self.plan(Planned::Error(errcode))
    }

    /// Makes every answer wait `delay` first.
    pub fn set_delay(&self, delay: Duration) {
        self.state.lock().unwrap().delay = delay;
    }

    pub fn set_fault(&self, fault: Option<Fault>) {
        self.state.lock().unwrap().fault = fault;
    }

    /// Every session_key handed out so far.
    pub fn session_keys(&self) -> Vec<String> {
        self.state.lock().unwrap().session_keys.clone()
    }

    /// The query parameters of every call received.
    pub fn calls(&self) -> Vec<HashMap<String, String>> {
        self.state.lock().unwrap().calls.clone()
    }
}

/// A parsed reply from the server under test.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub body: Value,
}

impl Reply {
    pub fn errcode(&self) -> &str {
        self.body["errcode"].as_str().unwrap_or("<none>")
    }

    pub fn token(&self) -> String {
        self.body["token"]
            .as_str()
            .expect("reply has a token")
            .to_owned()
    }

    /// Asserts a failure in the API's error shape with this status and code.
    #[track_caller]
    pub fn assert_error(&self, status: u16, errcode: &str) {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        assert_eq!(self.body["ret"], false, "body: {}", self.text);
        assert_eq!(self.errcode(), errcode, "body: {}", self.text);
        assert!(
            self.body["errmsg"].as_str().is_some_and(|m| !m.is_empty()),
            "errmsg missing: {}",
            self.text
        );
    }
}

pub struct TestApp {
    pub address: String,
    pub db_path: PathBuf,
    pub fake: FakeWeChat,
    pub client: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// Options for [`spawn_app_with`].
pub struct Options {
    pub development_mode: bool,
    pub appid: String,
    pub secret: String,
    pub api_base: Option<String>,
    pub wechat_timeout: Duration,
    pub token_ttl: Duration,
    pub session_idle: Duration,
    pub login_rate_per_min: u32,
    pub trusted_proxies: Vec<&'static str>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            development_mode: false,
            appid: APPID.into(),
            secret: SECRET.into(),
            api_base: None,
            wechat_timeout: Duration::from_secs(3),
            token_ttl: Duration::from_secs(3600),
            session_idle: Duration::from_secs(1800),
            // Tests log many users in from 127.0.0.1; the limit gets its own tests.
            login_rate_per_min: 0,
            trusted_proxies: Vec::new(),
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub async fn spawn_app_with(options: Options) -> TestApp {
    let fake = FakeWeChat::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("wxlogin.db");
    let wechat = (!options.development_mode).then(|| WeChatConfig {
        appid: options.appid,
        secret: Secret::new(options.secret),
        api_base: options.api_base.unwrap_or_else(|| fake.base_url.clone()),
        timeout: options.wechat_timeout,
    });
    let config = Config {
        bind_addr: "127.0.0.1:0".into(),
        database_url: db_path.to_str().unwrap().into(),
        wechat,
        token_ttl: options.token_ttl,
        shutdown_timeout: Duration::from_secs(1),
        admin: AdminConfig {
            session_idle: options.session_idle,
            ..AdminConfig::default()
        },
        login_rate_per_min: options.login_rate_per_min,
        trusted_proxies: options
            .trusted_proxies
            .iter()
            .map(|p| wxlogin::config::IpNet::parse(p).unwrap())
            .collect(),
    };
    let app = Application::build(config).await.expect("the app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        db_path,
        fake,
        client: reqwest::Client::builder()
            .user_agent("wxlogin-tests/1.0 (MicroMessenger)")
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        _dir: dir,
    }
}

impl TestApp {
    /// Sends a request and reads the reply, failing the test if the body holds any
    /// session_key the fake WeChat has handed out.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        for key in self.fake.session_keys() {
            assert!(!text.contains(&key), "a reply leaked a session_key: {text}");
        }
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            text,
            body,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn login_json(&self, body: Value) -> Reply {
        self.send(self.client.post(self.url("/api/v1/login")).json(&body))
            .await
    }

    pub async fn login_code(&self, code: &str) -> Reply {
        self.login_json(serde_json::json!({ "code": code })).await
    }

    /// Logs `openid` in with a fresh code and returns the reply, asserting success.
    pub async fn login_as(&self, openid: &str) -> Reply {
        let reply = self.login_code(&self.fake.code_for(openid)).await;
        assert_eq!(reply.status, 200, "login failed: {}", reply.text);
        reply
    }

    pub async fn get_me(&self, token: &str) -> Reply {
        self.send(self.client.get(self.url("/api/v1/me")).bearer_auth(token))
            .await
    }

    pub async fn patch_me(&self, token: &str, body: Value) -> Reply {
        self.send(
            self.client
                .patch(self.url("/api/v1/me"))
                .bearer_auth(token)
                .json(&body),
        )
        .await
    }

    pub async fn logout(&self, token: &str) -> Reply {
        self.send(
            self.client
                .post(self.url("/api/v1/logout"))
                .bearer_auth(token),
        )
        .await
    }

    /// A direct connection to the server's database, for checks and for the data-layer
    /// operations that have no endpoint yet. It waits for the app's writes as the app's own
    /// connections do: without a busy timeout it failed with "database is locked" whenever
    /// the app's login writer was mid-commit.
    pub fn db(&self) -> DbConnection {
        use diesel::connection::SimpleConnection;
        let mut conn = DbConnection::establish(self.db_path.to_str().unwrap()).unwrap();
        conn.batch_execute("PRAGMA busy_timeout = 5000;").unwrap();
        conn
    }

    /// Tokens issued so far, of either form.
    pub fn tokens_issued(&self) -> i64 {
        self.count("logins WHERE token_hash IS NOT NULL") + self.count("login_tokens")
    }

    pub fn count(&self, table: &str) -> i64 {
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}"))
            .get_result::<Count>(&mut self.db())
            .unwrap()
            .n
    }
}

/// A console page as fetched.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Page {
    pub fn location(&self) -> Option<&str> {
        self.headers.get("location").and_then(|v| v.to_str().ok())
    }

    /// The value of the session cookie this response set, if any.
    pub fn session_cookie(&self) -> Option<String> {
        self.headers.get_all("set-cookie").iter().find_map(|v| {
            let v = v.to_str().ok()?;
            let pair = v.split(';').next()?;
            pair.strip_prefix("wxlogin_session=").map(str::to_owned)
        })
    }

    pub fn set_cookie_header(&self) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("wxlogin_session="))
            .map(str::to_owned)
    }

    #[track_caller]
    pub fn assert_redirect(&self, to: &str) {
        assert_eq!(
            self.status, 303,
            "expected a redirect to {to}: {}",
            self.text
        );
        assert_eq!(self.location(), Some(to));
    }
}

/// The CSRF token in a page's first form.
pub fn extract_csrf(html: &str) -> Option<String> {
    let start = html.find(r#"name="csrf" value=""#)? + r#"name="csrf" value=""#.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

/// A cookie-keeping client: one browser, one console session.
pub struct Browser<'a> {
    app: &'a TestApp,
    client: CookieClient,
}

pub const ADMIN_PASSWORD: &str = "correct horse battery staple";

impl TestApp {
    /// A new browser that prefers `accept_language`.
    pub fn browser_with_language(&self, accept_language: &str) -> Browser<'_> {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("accept-language", accept_language.parse().unwrap());
        Browser {
            app: self,
            client: CookieClient::new(
                reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .default_headers(headers),
            ),
        }
    }

    /// A new English-speaking browser.
    pub fn browser(&self) -> Browser<'_> {
        self.browser_with_language("en-US,en;q=0.9")
    }

    /// Creates an admin straight in the database.
    pub fn create_admin(&self, username: &str, password: &str, must_change_password: bool) -> i64 {
        let now = wxlogin::db::now();
        wxlogin::db::models::Admin::create(
            &mut self.db(),
            &wxlogin::db::models::NewAdmin {
                username,
                password_hash: &wxlogin::passwords::hash(password).unwrap(),
                must_change_password,
                created_at: now,
                updated_at: now,
            },
        )
        .unwrap()
        .id
    }

    /// A browser signed in as a fresh admin `ops`.
    pub async fn signed_in_browser(&self) -> Browser<'_> {
        self.create_admin("ops", ADMIN_PASSWORD, false);
        let browser = self.browser();
        let page = browser.sign_in("ops", ADMIN_PASSWORD).await;
        page.assert_redirect("/admin");
        browser
    }
}

impl Browser<'_> {
    async fn page(&self, request: reqwest::RequestBuilder) -> Page {
        let response = self.client.send(request).await.expect("the server answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        for key in self.app.fake.session_keys() {
            assert!(!text.contains(&key), "a page leaked a session_key");
        }
        Page {
            status,
            headers,
            text,
        }
    }

    pub async fn get(&self, path: &str) -> Page {
        self.page(self.client.get(self.app.url(path))).await
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        self.page(self.client.post(self.app.url(path)).form(form))
            .await
    }

    /// The CSRF token of the form on `path`.
    pub async fn csrf(&self, path: &str) -> String {
        let page = self.get(path).await;
        extract_csrf(&page.text).unwrap_or_else(|| panic!("no CSRF token on {path}: {}", page.text))
    }

    pub async fn sign_in(&self, username: &str, password: &str) -> Page {
        let csrf = self.csrf("/admin/login").await;
        self.post(
            "/admin/login",
            &[
                ("csrf", &csrf),
                ("username", username),
                ("password", password),
            ],
        )
        .await
    }

    /// Posts a form on `page_path`'s CSRF token.
    pub async fn submit(&self, page_path: &str, action: &str, fields: &[(&str, &str)]) -> Page {
        let csrf = self.csrf(page_path).await;
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend_from_slice(fields);
        self.post(action, &form).await
    }
}
