//! Building the application: database, WeChat client, HTTP server bound to its port.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use anyhow::Context;

use crate::config::Config;
use crate::db::DbPool;
use crate::routes;
use crate::wechat::{HttpWeChat, SimulatedWeChat, WeChat};

/// What every handler can reach.
pub struct AppState {
    /// The database.
    pub pool: DbPool,
    /// code2Session, real or simulated.
    pub wechat: WeChat,
    /// Lifetime of a new login token.
    pub token_ttl: chrono::TimeDelta,
}

/// A server bound to its port, ready to run.
pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    /// Opens the database (running migrations), binds `config.bind_addr` and builds the
    /// server. With port 0 the OS picks a free port; [`Application::port`] tells which.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let pool = crate::db::connect(&config.database_url)?;
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
        let state = web::Data::new(AppState {
            pool,
            wechat,
            token_ttl: chrono::TimeDelta::from_std(config.token_ttl)
                .context("TOKEN_TTL_SECS is too large")?,
        });

        let listener = TcpListener::bind(&config.bind_addr)
            .with_context(|| format!("binding {}", config.bind_addr))?;
        let address = listener.local_addr().context("reading the bound address")?;
        let port = address.port();

        let server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(crate::telemetry::access_log))
                .app_data(state.clone())
                .route("/healthz", web::get().to(routes::health::healthz))
                .configure(routes::api::configure)
        })
        .shutdown_timeout(config.shutdown_timeout.as_secs())
        .listen(listener)
        .context("listening")?
        .run();

        tracing::info!(
            %address,
            database = %config.database_url,
            development_mode = config.is_development_mode(),
            "wxlogin listening on http://{address}"
        );
        Ok(Self { port, server })
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until the process is told to stop.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
