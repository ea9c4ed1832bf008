//! Building the application: database, WeChat client, HTTP server bound to its port.

use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use actix_session::config::{BrowserSession, TtlExtensionPolicy};
use actix_session::SessionMiddleware;
use actix_web::cookie::{Key, SameSite};
use actix_web::dev::Server;
use actix_web::middleware::{from_fn, DefaultHeaders};
use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::Context;

use crate::config::Config;
use crate::config::IpNet;
use crate::db::models::{Admin, NewAdmin};
use crate::db::{DbPool, DbSessionStore, LoginWriter};
use crate::ratelimit::RateLimiter;
use crate::routes;
use crate::wechat::{CodeExchange, HttpWeChat, SimulatedWeChat, WeChat};

/// What every handler can reach.
pub struct AppState {
    /// The database.
    pub pool: DbPool,
    /// The single writer that commits logins in groups.
    pub login_writer: LoginWriter,
    /// code2Session, real or simulated, with double taps merged.
    pub wechat: CodeExchange,
    /// Logins per client IP.
    pub login_limiter: RateLimiter,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Lifetime of a new login token.
    pub token_ttl: chrono::TimeDelta,
    /// Time zone the console shows times in.
    pub admin_timezone: chrono_tz::Tz,
}

/// A server bound to its port, ready to run.
pub struct Application {
    port: u16,
    server: Server,
    login_writer: LoginWriter,
}

/// Username of the admin created on first start.
pub const FIRST_ADMIN: &str = "admin";

/// Headers on every response. `img-src https:` lets the console show avatars, which live
/// on WeChat's and the app's own image hosts; everything else comes from this server.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' https: data:; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

impl Application {
    /// Opens the database (running migrations), binds `config.bind_addr` and builds the
    /// server. With port 0 the OS picks a free port; [`Application::port`] tells which.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let pool = crate::db::connect(&config.database_url)?;
        ensure_an_admin_exists(&pool)?;
        let session_key = load_session_key(&config)?;
        let wechat = match &config.wechat {
            Some(wechat) => {
                tracing::info!(appid = %wechat.appid, api_base = %wechat.api_base, "using the WeChat API");
                WeChat::Http(HttpWeChat::new(wechat)?)
            }
            None => {
                for line in [
                    "DEVELOPMENT MODE: WECHAT_APPID is not set, so WeChat logins are SIMULATED.",
                    "Any code logs in: `alice` and `alice#2` are the same user; codes starting with `bad` fail.",
                    "Never expose this server to real users: set WECHAT_APPID and WECHAT_SECRET.",
                ] {
                    tracing::warn!("{line}");
                }
                WeChat::Simulated(SimulatedWeChat)
            }
        };
        let login_writer = LoginWriter::start(&config.database_url)?;
        let state = web::Data::new(AppState {
            pool: pool.clone(),
            login_writer: login_writer.clone(),
            wechat: CodeExchange::new(wechat),
            login_limiter: RateLimiter::new(config.login_rate_per_min),
            trusted_proxies: config.trusted_proxies.clone(),
            token_ttl: chrono::TimeDelta::from_std(config.token_ttl)
                .context("TOKEN_TTL_SECS is too large")?,
            admin_timezone: config.admin.timezone,
        });
        let session_store = DbSessionStore::new(pool.clone());
        let idle = actix_web::cookie::time::Duration::seconds(
            config
                .admin
                .session_idle
                .as_secs()
                .try_into()
                .unwrap_or(i64::MAX),
        );
        let cookie_secure = config.admin.cookie_secure;

        let listener = TcpListener::bind(&config.bind_addr)
            .with_context(|| format!("binding {}", config.bind_addr))?;
        let address = listener.local_addr().context("reading the bound address")?;
        let port = address.port();

        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let blocking_threads = (crate::db::POOL_SIZE as usize / workers).max(1);
        let server = HttpServer::new(move || {
            // Runs on each worker thread, in its task set.
            state.login_writer.start_reply_pump();
            crate::db::batch_quick_reads_on_this_thread(state.pool.clone());
            let sessions = SessionMiddleware::builder(session_store.clone(), session_key.clone())
                .cookie_name("wxlogin_session".to_owned())
                .cookie_path("/admin".to_owned())
                .cookie_http_only(true)
                .cookie_same_site(SameSite::Strict)
                .cookie_secure(cookie_secure)
                .session_lifecycle(
                    BrowserSession::default()
                        .state_ttl(idle)
                        .state_ttl_extension_policy(TtlExtensionPolicy::OnEveryRequest),
                )
                .build();
            App::new()
                .wrap(
                    DefaultHeaders::new()
                        .add(("Content-Security-Policy", CONTENT_SECURITY_POLICY))
                        .add(("X-Frame-Options", "DENY"))
                        .add(("X-Content-Type-Options", "nosniff"))
                        .add(("Referrer-Policy", "same-origin"))
                        // Login replies carry a token and API replies a user's data: no cache
                        // may keep them (RFC 6749 §5.1 asks this of token replies). A response
                        // with a policy of its own (static files) keeps it.
                        .add(("Cache-Control", "no-store")),
                )
                .wrap(from_fn(crate::telemetry::access_log))
                .app_data(state.clone())
                // The API first: actix tries routes in order, and matching a request against
                // `/static/{name}` ran a regex on every login.
                .configure(routes::api::configure)
                .route("/healthz", web::get().to(routes::health::healthz))
                .route("/static/{name}", web::get().to(routes::assets::static_file))
                .route(
                    "/",
                    web::get().to(|| async { routes::admin::see_other("/admin") }),
                )
                .service(
                    web::scope("/admin")
                        .wrap(sessions)
                        .configure(routes::admin::configure),
                )
                .default_service(web::to(|| async {
                    HttpResponse::NotFound()
                        .content_type("text/plain; charset=utf-8")
                        .body("not found")
                }))
        })
        .shutdown_timeout(config.shutdown_timeout.as_secs())
        // Database work runs on blocking threads; more of them than pooled connections only
        // queue on the pool's lock (the default allows hundreds): under load that futex
        // traffic cost more than the queries.
        .worker_max_blocking_threads(blocking_threads)
        .listen(listener)
        .context("listening")?
        .run();

        spawn_housekeeping(pool);
        tracing::info!(
            %address,
            database = %config.database_url,
            development_mode = config.is_development_mode(),
            "wxlogin listening on http://{address}"
        );
        Ok(Self {
            port,
            server,
            login_writer,
        })
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until the process is told to stop, then copies the WAL into the database
    /// (see [`LoginWriter::close`]).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await?;
        let writer = self.login_writer;
        tokio::task::spawn_blocking(move || writer.close())
            .await
            .map_err(std::io::Error::other)
    }
}

/// On a database without admins, creates `admin` with a random password, shown once in the
/// log, which must be changed at the first sign-in.
fn ensure_an_admin_exists(pool: &DbPool) -> anyhow::Result<()> {
    let mut conn = pool.get().context("taking a database connection")?;
    if Admin::count(&mut conn)? > 0 {
        return Ok(());
    }
    let password = crate::passwords::generate();
    let hash = crate::passwords::hash(&password)?;
    let now = crate::db::now();
    Admin::create(
        &mut conn,
        &NewAdmin {
            username: FIRST_ADMIN,
            password_hash: &hash,
            must_change_password: true,
            created_at: now,
            updated_at: now,
        },
    )
    .context("creating the first admin")?;
    tracing::warn!(
        "No admin existed, so one was created. Sign in at /admin/login as `{FIRST_ADMIN}` with \
         password `{password}` (shown only this once; you will be asked to change it)."
    );
    Ok(())
}

/// The key that signs and encrypts session cookies: `SESSION_KEY`, or one generated on
/// first start and kept beside the database, so a restart does not sign everyone out.
fn load_session_key(config: &Config) -> anyhow::Result<Key> {
    if let Some(key) = &config.admin.session_key {
        return Key::try_from(key.expose().as_bytes()).context("SESSION_KEY is unusable");
    }
    let dir = Path::new(&config.database_url)
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let path = dir.join("session.key");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let bytes = hex::decode(text.trim()).with_context(|| {
                format!(
                    "{} is not a hex key: delete it to make a new one",
                    path.display()
                )
            })?;
            Key::try_from(bytes.as_slice()).with_context(|| {
                format!(
                    "{} is too short: delete it to make a new one",
                    path.display()
                )
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = Key::generate();
            write_private(&path, &hex::encode(key.master()))?;
            tracing::info!(path = %path.display(), "generated the session key");
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// Every ten minutes: forget expired console sessions and old failed sign-ins.
fn spawn_housekeeping(pool: DbPool) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(600));
        loop {
            tick.tick().await;
            let result = crate::db::run(&pool, |conn| {
                let sessions = DbSessionStore::purge_expired(conn)?;
                let failures =
                    Admin::prune_failures(conn, crate::db::now() - chrono::TimeDelta::days(1))?;
                Ok((sessions, failures))
            })
            .await;
            match result {
                Ok((sessions, failures)) if sessions + failures > 0 => {
                    tracing::debug!(sessions, failures, "housekeeping removed expired rows")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = format!("{e:#}"), "housekeeping failed"),
            }
        }
    });
}
