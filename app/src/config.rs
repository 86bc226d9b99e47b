//! Configuration: defaults → `tollgate.toml` → `TOLLGATE_*` environment → CLI flags.

use std::{fmt, path::Path};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};

/// A secret that never prints.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Proxy listener address.
    pub proxy_addr: String,
    /// Admin API listener address.
    pub admin_addr: String,
    /// `sqlite://file?mode=rwc` (embedded default) or `postgres://…`.
    pub database_url: String,
    pub database_max_connections: u32,
    pub redis_url: Option<String>,
    /// Base64 of 32 bytes; generated and kept in the database when unset.
    pub encryption_key: Option<Secret>,
    /// HS256 key for bearer tokens (≥ 32 bytes); generated and kept in the database when unset.
    pub jwt_secret: Option<Secret>,
    pub admin_email: Option<String>,
    pub admin_password: Option<Secret>,
    pub admin_name: Option<String>,
    /// Signs session cookies (≥ 64 bytes); generated and kept in the database when unset.
    pub session_secret: Option<Secret>,
    /// Mark the session cookie `Secure` (set when the admin API is served over HTTPS).
    pub cookie_secure: bool,
    /// Comma-separated origins that may send cookie-authenticated writes besides the admin's own.
    pub allowed_origins: String,
    /// Open `POST /api/auth/register` (self sign-up).
    pub allow_registration: bool,
    /// SMTP server for password-reset mail (`smtps://user:pass@host`, `smtp://host:587?tls=required`).
    pub smtp_url: Option<Secret>,
    /// Sender of Tollgate's mail.
    pub mail_from: String,
    /// Development conveniences: without SMTP, password-reset links are logged at WARN.
    pub dev_mode: bool,
    /// Allow webhook URLs on loopback/private addresses (development only).
    pub webhook_allow_private: bool,
    /// Delays before each delivery attempt, e.g. `0s,1m,5m,30m,2h,8h` (units ms, s, m, h);
    /// the number of entries is the number of attempts.
    pub webhook_retry_schedule: String,
    /// Consecutive failed attempts after which a webhook is disabled.
    pub webhook_disable_after: u32,
    /// Per-attempt timeout in milliseconds (connect, headers, body).
    pub webhook_timeout_ms: u64,
    /// How often the dispatcher looks for work besides being woken by commits.
    pub webhook_poll_ms: u64,
    /// Delivery attempts in flight at most.
    pub webhook_concurrency: usize,
    /// `text` or `json`.
    pub log_format: String,
    pub log_level: String,
    pub shutdown_grace_seconds: u64,
    /// HTTP worker threads per listener (0 = one per core).
    pub workers: usize,
    /// Largest request body the proxy forwards (bytes).
    pub proxy_max_body_bytes: u64,
    /// Comma-separated IPs/CIDRs of load balancers whose `X-Forwarded-For` is trusted.
    pub trusted_proxies: String,
    /// Usage records older than this are deleted.
    pub usage_retention_days: u64,
    /// Seconds between active health checks of upstreams with a `health_check_path`.
    pub health_check_interval_seconds: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            proxy_addr: "0.0.0.0:8080".into(),
            admin_addr: "127.0.0.1:8081".into(),
            database_url: "sqlite://tollgate.db?mode=rwc".into(),
            database_max_connections: 16,
            redis_url: None,
            encryption_key: None,
            jwt_secret: None,
            session_secret: None,
            cookie_secure: false,
            allow_registration: false,
            smtp_url: None,
            mail_from: "Tollgate <no-reply@tollgate.invalid>".into(),
            dev_mode: false,
            allowed_origins: String::new(),
            admin_email: None,
            admin_password: None,
            admin_name: None,
            webhook_allow_private: false,
            webhook_retry_schedule: "0s,1m,5m,30m,2h,8h".into(),
            webhook_disable_after: 20,
            webhook_timeout_ms: 10_000,
            webhook_poll_ms: 250,
            webhook_concurrency: 32,
            log_format: "text".into(),
            log_level: "info".into(),
            shutdown_grace_seconds: 30,
            workers: 0,
            proxy_max_body_bytes: 10 * 1024 * 1024,
            trusted_proxies: String::new(),
            usage_retention_days: 90,
            health_check_interval_seconds: 30,
        }
    }
}

/// Values given as CLI flags (highest precedence); `None` = not given.
#[derive(Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_addr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_addr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
}

impl Config {
    /// Loads the layered configuration; `file` defaults to `tollgate.toml` (optional).
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self, Box<figment::Error>> {
        let file = file.unwrap_or(Path::new("tollgate.toml"));
        Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file(file))
            .merge(Env::prefixed("TOLLGATE_"))
            .merge(Serialized::globals(overrides))
            .extract()
            .map_err(Box::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail closure signature
    fn precedence_is_flag_over_env_over_file_over_default() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "t.toml",
                "admin_addr = \"127.0.0.1:1\"\nproxy_addr = \"127.0.0.1:2\"\nlog_level = \"debug\"",
            )?;
            jail.set_env("TOLLGATE_PROXY_ADDR", "127.0.0.1:3");
            jail.set_env("TOLLGATE_DATABASE_URL", "postgres://env");
            let overrides = Overrides {
                database_url: Some("postgres://flag".into()),
                ..Overrides::default()
            };
            let config = Config::load(Some(Path::new("t.toml")), &overrides).expect("loads");
            assert_eq!(config.admin_addr, "127.0.0.1:1");
            assert_eq!(config.proxy_addr, "127.0.0.1:3");
            assert_eq!(config.database_url, "postgres://flag");
            assert_eq!(config.log_level, "debug");
            assert_eq!(config.shutdown_grace_seconds, 30);
            Ok(())
        });
    }

    #[test]
    fn secrets_do_not_print() {
        let config = Config {
            admin_password: Some(Secret::from("hunter2hunter2".to_owned())),
            ..Config::default()
        };
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
