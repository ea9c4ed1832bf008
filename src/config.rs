//! Settings read from the environment (and a `.env` file when present).

use std::time::Duration;

use crate::domain::Secret;

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port.
    pub bind_addr: String,
    /// Path of the SQLite database file; its folder is created when missing.
    pub database_url: String,
    /// The real WeChat API, or `None` for development mode, where logins are simulated.
    pub wechat: Option<WeChatConfig>,
    /// How long a login token stays valid.
    pub token_ttl: Duration,
    /// How long a stopping server waits for requests already accepted.
    pub shutdown_timeout: Duration,
    /// The admin console's settings.
    pub admin: AdminConfig,
    /// Logins accepted per client IP per minute; 0 turns the limit off.
    pub login_rate_per_min: u32,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
}

/// An IP network such as `10.0.0.0/8` or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: std::net::IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Parses `1.2.3.4`, `10.0.0.0/8`, `::1` or `fd00::/8`.
    pub fn parse(s: &str) -> Option<Self> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a.parse().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (s.parse().ok()?, None),
        };
        let max = if matches!(addr, std::net::IpAddr::V4(_)) {
            32
        } else {
            128
        };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Self { addr, prefix })
    }

    /// True when `ip` is inside the network.
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Settings of the admin console.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// Mark the session cookie `Secure` (set when served over HTTPS).
    pub cookie_secure: bool,
    /// A session unused this long is over.
    pub session_idle: Duration,
    /// Key that signs and encrypts the session cookie; `None`: generated once and kept in
    /// the data directory.
    pub session_key: Option<Secret>,
    /// Time zone in which the console shows times.
    pub timezone: chrono_tz::Tz,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            cookie_secure: false,
            session_idle: Duration::from_secs(1800),
            session_key: None,
            timezone: chrono_tz::Asia::Shanghai,
        }
    }
}

/// Shortest `SESSION_KEY` accepted, in bytes.
pub const MIN_SESSION_KEY_BYTES: usize = 64;

/// How to reach WeChat's server API.
#[derive(Debug, Clone)]
pub struct WeChatConfig {
    /// The mini-program's AppID.
    pub appid: String,
    /// The mini-program's AppSecret.
    pub secret: Secret,
    /// Base URL of the API, without a trailing slash.
    pub api_base: String,
    /// Limit for one call, connection included.
    pub timeout: Duration,
}

/// A setting that is missing, malformed or inconsistent; the message names it.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(String);

/// Default WeChat API base URL.
pub const DEFAULT_WECHAT_API_BASE: &str = "https://api.weixin.qq.com";

impl Config {
    /// Reads the configuration from the process environment, after loading `.env` if present.
    pub fn from_env() -> Result<Self, ConfigError> {
        // A missing .env is normal; a malformed one is worth refusing to start over.
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(e) if e.not_found() => {}
            Err(e) => return Err(ConfigError(format!(".env could not be read: {e}"))),
        }
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup`, so tests need not touch the environment.
    /// Empty values count as unset, as they do in most `.env` files.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());

        let appid = get("WECHAT_APPID");
        let secret = get("WECHAT_SECRET");
        let wechat = match (appid, secret) {
            (Some(appid), Some(secret)) => {
                let api_base =
                    get("WECHAT_API_BASE").unwrap_or_else(|| DEFAULT_WECHAT_API_BASE.to_owned());
                let parsed = url::Url::parse(&api_base).map_err(|e| {
                    ConfigError(format!("WECHAT_API_BASE {api_base:?} is not a URL: {e}"))
                })?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(ConfigError(format!(
                        "WECHAT_API_BASE {api_base:?} must be an http or https URL"
                    )));
                }
                Some(WeChatConfig {
                    appid: appid.trim().to_owned(),
                    secret: Secret::new(secret.trim()),
                    api_base: api_base.trim_end_matches('/').to_owned(),
                    timeout: Duration::from_millis(parse_number(
                        "WECHAT_TIMEOUT_MS",
                        get("WECHAT_TIMEOUT_MS"),
                        5000,
                    )?),
                })
            }
            (Some(_), None) => {
                return Err(ConfigError(
                    "WECHAT_APPID is set but WECHAT_SECRET is not: set both to use WeChat, \
                     or neither for development mode"
                        .into(),
                ))
            }
            // A secret alone most likely means a typo in the AppID's name; starting in
            // development mode would let anyone log in as anyone.
            (None, Some(_)) => {
                return Err(ConfigError(
                    "WECHAT_SECRET is set but WECHAT_APPID is not: set both to use WeChat, \
                     or neither for development mode"
                        .into(),
                ))
            }
            (None, None) => None,
        };

        let database_url = get("DATABASE_URL").unwrap_or_else(|| "data/wxlogin.db".to_owned());
        let database_url = database_url
            .strip_prefix("sqlite://")
            .unwrap_or(&database_url)
            .to_owned();

        let token_ttl = parse_number("TOKEN_TTL_SECS", get("TOKEN_TTL_SECS"), 604_800)?;
        if token_ttl == 0 {
            return Err(ConfigError("TOKEN_TTL_SECS must be at least 1".into()));
        }

        let cookie_secure = match get("COOKIE_SECURE").map(|v| v.trim().to_ascii_lowercase()) {
            None => false,
            Some(v) if matches!(v.as_str(), "true" | "1" | "yes") => true,
            Some(v) if matches!(v.as_str(), "false" | "0" | "no") => false,
            Some(v) => {
                return Err(ConfigError(format!(
                    "COOKIE_SECURE must be true or false, not {v:?}"
                )))
            }
        };
        let session_key = get("SESSION_KEY").map(Secret::new);
        if let Some(key) = &session_key {
            if key.expose().len() < MIN_SESSION_KEY_BYTES {
                return Err(ConfigError(format!(
                    "SESSION_KEY must be at least {MIN_SESSION_KEY_BYTES} bytes (it has {}); \
                     generate one with: openssl rand -hex 64",
                    key.expose().len()
                )));
            }
        }
        let session_idle = parse_number(
            "ADMIN_SESSION_IDLE_SECS",
            get("ADMIN_SESSION_IDLE_SECS"),
            1800,
        )?;
        if session_idle == 0 {
            return Err(ConfigError(
                "ADMIN_SESSION_IDLE_SECS must be at least 1".into(),
            ));
        }
        let timezone = match get("ADMIN_TIMEZONE") {
            None => chrono_tz::Asia::Shanghai,
            Some(name) => name.trim().parse().map_err(|_| {
                ConfigError(format!(
                    "ADMIN_TIMEZONE {name:?} is not a time zone name such as Asia/Shanghai or UTC"
                ))
            })?,
        };

        let login_rate_per_min = parse_number("LOGIN_RATE_PER_MIN", get("LOGIN_RATE_PER_MIN"), 60)?;
        let login_rate_per_min = u32::try_from(login_rate_per_min)
            .map_err(|_| ConfigError("LOGIN_RATE_PER_MIN is too large".into()))?;
        let trusted_proxies = get("TRUSTED_PROXIES")
            .map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| {
                        IpNet::parse(s).ok_or_else(|| {
                            ConfigError(format!(
                                "TRUSTED_PROXIES: {s:?} is not an IP address or network such as 10.0.0.0/8"
                            ))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();

        Ok(Self {
            login_rate_per_min,
            trusted_proxies,
            admin: AdminConfig {
                cookie_secure,
                session_idle: Duration::from_secs(session_idle),
                session_key,
                timezone,
            },
            bind_addr: get("BIND_ADDR").unwrap_or_else(|| "127.0.0.1:8080".to_owned()),
            database_url,
            wechat,
            token_ttl: Duration::from_secs(token_ttl),
            shutdown_timeout: Duration::from_secs(parse_number(
                "SHUTDOWN_TIMEOUT_SECS",
                get("SHUTDOWN_TIMEOUT_SECS"),
                10,
            )?),
        })
    }

    /// True when logins are simulated instead of sent to WeChat.
    pub fn is_development_mode(&self) -> bool {
        self.wechat.is_none()
    }
}

fn parse_number(name: &str, value: Option<String>, default: u64) -> Result<u64, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| ConfigError(format!("{name} must be a whole number, not {v:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn nothing_set_means_development_mode_with_documented_defaults() {
        let c = config(&[]).unwrap();
        assert!(c.is_development_mode());
        assert_eq!(c.bind_addr, "127.0.0.1:8080");
        assert_eq!(c.database_url, "data/wxlogin.db");
        assert_eq!(c.token_ttl, Duration::from_secs(604_800));
    }

    #[test]
    fn appid_and_secret_select_the_real_api_with_default_base_and_timeout() {
        let c = config(&[("WECHAT_APPID", "wx123"), ("WECHAT_SECRET", "s3cr3t")]).unwrap();
        let w = c.wechat.unwrap();
        assert_eq!(w.appid, "wx123");
        assert_eq!(w.api_base, DEFAULT_WECHAT_API_BASE);
        assert_eq!(w.timeout, Duration::from_millis(5000));
    }

    #[test]
    fn an_appid_without_a_secret_is_an_error_that_names_the_secret() {
        let err = config(&[("WECHAT_APPID", "wx123")]).unwrap_err();
        assert!(err.to_string().contains("WECHAT_SECRET"), "{err}");
    }

    #[test]
    fn a_secret_without_an_appid_is_an_error() {
        assert!(config(&[("WECHAT_SECRET", "s")]).is_err());
    }

    #[test]
    fn malformed_numbers_are_errors_that_name_the_setting() {
        let err = config(&[("TOKEN_TTL_SECS", "a week")]).unwrap_err();
        assert!(err.to_string().contains("TOKEN_TTL_SECS"), "{err}");
        let err = config(&[
            ("WECHAT_APPID", "wx"),
            ("WECHAT_SECRET", "s"),
            ("WECHAT_TIMEOUT_MS", "-5"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("WECHAT_TIMEOUT_MS"), "{err}");
    }

    #[test]
    fn the_api_base_loses_its_trailing_slash_and_must_be_http() {
        let c = config(&[
            ("WECHAT_APPID", "wx"),
            ("WECHAT_SECRET", "s"),
            ("WECHAT_API_BASE", "http://127.0.0.1:9000/"),
        ])
        .unwrap();
        assert_eq!(c.wechat.unwrap().api_base, "http://127.0.0.1:9000");
        assert!(config(&[
            ("WECHAT_APPID", "wx"),
            ("WECHAT_SECRET", "s"),
            ("WECHAT_API_BASE", "ftp://x"),
        ])
        .is_err());
    }

    #[test]
    fn console_settings_have_defaults_and_are_validated() {
        let c = config(&[]).unwrap();
        assert!(!c.admin.cookie_secure);
        assert_eq!(c.admin.session_idle, Duration::from_secs(1800));
        assert_eq!(c.admin.timezone, chrono_tz::Asia::Shanghai);
        let c = config(&[
            ("COOKIE_SECURE", "true"),
            ("ADMIN_TIMEZONE", "Europe/Berlin"),
        ])
        .unwrap();
        assert!(c.admin.cookie_secure);
        assert_eq!(c.admin.timezone, chrono_tz::Europe::Berlin);
        for (name, value) in [
            ("COOKIE_SECURE", "maybe"),
            ("ADMIN_TIMEZONE", "Mars/Olympus"),
            ("ADMIN_SESSION_IDLE_SECS", "0"),
        ] {
            let err = config(&[(name, value)]).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn a_session_key_under_64_bytes_is_an_error() {
        let err = config(&[("SESSION_KEY", &"k".repeat(63))]).unwrap_err();
        assert!(err.to_string().contains("SESSION_KEY"), "{err}");
        assert!(config(&[("SESSION_KEY", &"k".repeat(64))]).is_ok());
    }

    #[test]
    fn rate_and_trusted_proxies_are_read_and_validated() {
        let c = config(&[]).unwrap();
        assert_eq!(c.login_rate_per_min, 60);
        assert!(c.trusted_proxies.is_empty());
        let c = config(&[
            ("TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1,::1"),
            ("LOGIN_RATE_PER_MIN", "0"),
        ])
        .unwrap();
        assert_eq!(c.login_rate_per_min, 0);
        assert_eq!(c.trusted_proxies.len(), 3);
        let err = config(&[("TRUSTED_PROXIES", "10.0.0.0/33")]).unwrap_err();
        assert!(err.to_string().contains("TRUSTED_PROXIES"), "{err}");
        assert!(config(&[("TRUSTED_PROXIES", "proxy.local")]).is_err());
    }

    #[test]
    fn networks_contain_what_their_prefix_says() {
        let net = IpNet::parse("10.1.0.0/16").unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(
            net.contains("::ffff:10.1.0.9".parse().unwrap()),
            "IPv4-mapped IPv6"
        );
        let one = IpNet::parse("127.0.0.1").unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        assert!(IpNet::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(IpNet::parse("fd00::/8")
            .unwrap()
            .contains("fd12::1".parse().unwrap()));
    }

    #[test]
    fn debug_output_does_not_show_the_secret() {
        let c = config(&[("WECHAT_APPID", "wx"), ("WECHAT_SECRET", "topsecretvalue")]).unwrap();
        assert!(!format!("{c:?}").contains("topsecretvalue"));
    }
}
