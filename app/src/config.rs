//! Configuration: defaults → `tollgate.toml` → `TOLLGATE_*` environment → CLI flags.

use std::{
    fmt,
    path::{Path, PathBuf},
};

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

/// A setting's text as written. The environment provider reads `TOLLGATE_USAGE_LOG_SAMPLE=0.01`
/// or `TOLLGATE_WEBHOOK_RETRY_SCHEDULE=60` as a number; these settings are text parsed later
/// (rates, durations, lists), so a number is taken as the text it was written as.
#[derive(Deserialize)]
#[serde(untagged)]
enum TextOrNumber {
    Text(String),
    Unsigned(u64),
    Signed(i64),
    Float(f64),
}

impl From<TextOrNumber> for String {
    fn from(value: TextOrNumber) -> Self {
        match value {
            TextOrNumber::Text(text) => text,
            TextOrNumber::Unsigned(n) => n.to_string(),
            TextOrNumber::Signed(n) => n.to_string(),
            TextOrNumber::Float(n) => n.to_string(),
        }
    }
}

fn text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    TextOrNumber::deserialize(deserializer).map(String::from)
}

fn optional_text<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    Option::<TextOrNumber>::deserialize(deserializer).map(|value| value.map(String::from))
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
    /// Base64 of 32 bytes; generated and kept in the database when neither this nor
    /// `encryption_key_file` is set.
    pub encryption_key: Option<Secret>,
    /// A file holding the encryption key (base64 of 32 bytes), e.g. a mounted secret, so the
    /// key is in neither the environment nor the database.
    pub encryption_key_file: Option<PathBuf>,
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
    #[serde(deserialize_with = "text")]
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
    /// The proxy's access log: `off`, `text` or `json`; empty follows `log_format`.
    pub access_log: String,
    pub shutdown_grace_seconds: u64,
    /// HTTP worker threads per listener (0 = one per core).
    pub workers: usize,
    /// Largest request body the proxy forwards (bytes).
    pub proxy_max_body_bytes: u64,
    /// Comma-separated IPs/CIDRs of load balancers whose `X-Forwarded-For` is trusted.
    pub trusted_proxies: String,
    /// Password hashes (login, password changes) computed at once; 0 = two per core. Up to
    /// three times as many more wait; beyond that requests get 503.
    pub max_concurrent_hashes: usize,
    /// Days the request log (`usage_records`) keeps its records; rollups keep the counts.
    pub usage_retention_days: u64,
    /// The request log's retention as `7d`, `36h` or days (`TOLLGATE_USAGE_LOG_RETENTION`);
    /// when set it wins over `usage_retention_days`.
    #[serde(deserialize_with = "optional_text")]
    pub usage_log_retention: Option<String>,
    /// What the request log keeps: `off`, or the share of 2xx answers (`0.01`, `1%`; default
    /// 1). Refusals and errors are always kept; rollups count every request either way.
    #[serde(deserialize_with = "text")]
    pub usage_log_sample: String,
    /// Days minute rollups are kept (1-minute series, 1 h / 24 h summaries).
    pub usage_rollup_minute_days: u64,
    /// Days hour rollups are kept (longer periods, the billing export).
    pub usage_rollup_hour_days: u64,
    /// One JSON line per proxied request to this file, or `stdout`, for log shippers.
    pub usage_log_file: Option<String>,
    /// Seconds between active health checks of upstreams with a `health_check_path`.
    pub health_check_interval_seconds: u64,
}

impl Config {
    /// The proxy's access-log format: `access_log`, or the log format when unset.
    pub fn access_log_format(&self) -> tollgate_adapters::gateway::access_log::AccessLogFormat {
        use tollgate_adapters::gateway::access_log::AccessLogFormat;
        let chosen = if self.access_log.is_empty() {
            &self.log_format
        } else {
            &self.access_log
        };
        AccessLogFormat::parse(chosen).unwrap_or_default()
    }
}

/// `7d`, `36h` or a number of days → hours.
fn retention_hours(text: &str) -> Option<u64> {
    let text = text.trim();
    let (number, per) = match text.strip_suffix('h') {
        Some(hours) => (hours, 1),
        None => (text.strip_suffix('d').unwrap_or(text), 24),
    };
    number
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .map(|n| n * per)
}

impl Config {
    /// The usage retention and the request log's policy, or the problem with them.
    pub fn usage_retention(
        &self,
    ) -> Result<
        (
            tollgate_domain::proxy::usage::Retention,
            tollgate_domain::proxy::rollups::LogPolicy,
        ),
        String,
    > {
        let log_hours = match &self.usage_log_retention {
            Some(text) => retention_hours(text).ok_or_else(|| {
                format!("usage_log_retention: {text:?} is not a duration like 7d or 36h")
            })?,
            None => self.usage_retention_days.max(1) * 24,
        };
        let policy = tollgate_domain::proxy::rollups::LogPolicy::parse(&self.usage_log_sample)
            .ok_or_else(|| {
                format!(
                    "usage_log_sample: {:?} is neither off nor a rate from 0 to 1 (0.01, 1%)",
                    self.usage_log_sample
                )
            })?;
        if self.usage_rollup_minute_days == 0 || self.usage_rollup_hour_days == 0 {
            return Err(
                "usage_rollup_minute_days and usage_rollup_hour_days must be at least 1".into(),
            );
        }
        Ok((
            tollgate_domain::proxy::usage::Retention {
                log_days: log_hours.div_ceil(24),
                minute_days: self.usage_rollup_minute_days,
                hour_days: self.usage_rollup_hour_days,
            },
            policy,
        ))
    }
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
            encryption_key_file: None,
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
            access_log: String::new(),
            shutdown_grace_seconds: 30,
            workers: 0,
            proxy_max_body_bytes: 10 * 1024 * 1024,
            trusted_proxies: String::new(),
            max_concurrent_hashes: 0,
            usage_retention_days: 7,
            usage_log_retention: None,
            usage_log_sample: "1".into(),
            usage_rollup_minute_days: 14,
            usage_rollup_hour_days: 396,
            usage_log_file: None,
            health_check_interval_seconds: 30,
        }
    }
}

/// Where the key that seals stored secrets comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `encryption_key` or `encryption_key_file`: decoded, 32 bytes.
    Configured([u8; 32]),
    /// Neither is set: generated once and kept in the `settings` table, next to the values
    /// it seals (a copy of the database is then a copy of every credential).
    Database,
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Configured(_) => f.write_str("Configured(***)"),
            Self::Database => f.write_str("Database"),
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

impl Config {
    /// The encryption key as configured, read from its file when one is named. The error
    /// names the setting and, for a file, the path and why it cannot be used.
    pub fn encryption_key_source(&self) -> Result<KeySource, String> {
        let decode = tollgate_adapters::security::AesVault::decode_key;
        match (&self.encryption_key, &self.encryption_key_file) {
            (Some(_), Some(_)) => Err(
                "set encryption_key (TOLLGATE_ENCRYPTION_KEY) or encryption_key_file \
                 (TOLLGATE_ENCRYPTION_KEY_FILE), not both"
                    .into(),
            ),
            (Some(key), None) => decode(key.expose())
                .map(KeySource::Configured)
                .ok_or_else(|| {
                    "encryption_key (TOLLGATE_ENCRYPTION_KEY) must be base64 of 32 bytes".into()
                }),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    format!(
                        "encryption_key_file (TOLLGATE_ENCRYPTION_KEY_FILE): cannot read {}: {e}",
                        path.display()
                    )
                })?;
                decode(&text).map(KeySource::Configured).ok_or_else(|| {
                    format!(
                        "encryption_key_file (TOLLGATE_ENCRYPTION_KEY_FILE): {} does not hold \
                         base64 of 32 bytes",
                        path.display()
                    )
                })
            }
            (None, None) => Ok(KeySource::Database),
        }
    }
}

/// Fields holding a [`Secret`]: always printed as `***`.
const SECRET_FIELDS: &[&str] = &[
    "encryption_key",
    "jwt_secret",
    "admin_password",
    "session_secret",
    "smtp_url",
];

/// Fields that are URLs and may carry a password in their user-info part.
const URL_FIELDS: &[&str] = &["database_url", "redis_url"];

/// `scheme://user:***@host…` for a URL with a password; other values unchanged.
pub fn mask_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
        None => url.to_owned(),
    }
}

impl Config {
    /// Checks what can be checked without connecting anywhere; one message per problem.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        for (name, addr) in [
            ("proxy_addr", &self.proxy_addr),
            ("admin_addr", &self.admin_addr),
        ] {
            let port = addr.rsplit_once(':').map(|(_, port)| port.parse::<u16>());
            if !matches!(port, Some(Ok(_))) {
                problems.push(format!("{name}: {addr:?} is not HOST:PORT"));
            }
        }
        if !(self.database_url.starts_with("sqlite:")
            || self.database_url.starts_with("postgres://")
            || self.database_url.starts_with("postgresql://"))
        {
            problems.push(format!(
                "database_url: {:?} is neither sqlite:… nor postgres://…",
                mask_url_password(&self.database_url)
            ));
        }
        if self.database_max_connections == 0 {
            problems.push("database_max_connections must be at least 1".into());
        }
        if !matches!(self.log_format.as_str(), "text" | "json") {
            problems.push(format!(
                "log_format: {:?} is neither \"text\" nor \"json\"",
                self.log_format
            ));
        }
        if !self.access_log.is_empty()
            && tollgate_adapters::gateway::access_log::AccessLogFormat::parse(&self.access_log)
                .is_none()
        {
            problems.push(format!(
                "access_log: {:?} is none of \"off\", \"text\", \"json\"",
                self.access_log
            ));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log_level).is_err() {
            problems.push(format!(
                "log_level: {:?} is not a level or filter",
                self.log_level
            ));
        }
        if self.usage_retention_days == 0 {
            problems.push("usage_retention_days must be at least 1".into());
        }
        if let Err(problem) = self.usage_retention() {
            problems.push(problem);
        }
        if let Err(problem) =
            tollgate_domain::webhooks::parse_schedule(&self.webhook_retry_schedule)
        {
            problems.push(format!("webhook_retry_schedule: {problem}"));
        }
        if self.proxy_max_body_bytes == 0 {
            problems.push("proxy_max_body_bytes must be at least 1".into());
        }
        for entry in self
            .trusted_proxies
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            let ok =
                entry.parse::<ipnet::IpNet>().is_ok() || entry.parse::<std::net::IpAddr>().is_ok();
            if !ok {
                problems.push(format!("trusted_proxies: {entry:?} is not an IP or CIDR"));
            }
        }
        let short = |secret: &Option<Secret>, min: usize| {
            secret.as_ref().is_some_and(|s| s.expose().len() < min)
        };
        if let Err(problem) = self.encryption_key_source() {
            problems.push(problem);
        }
        if short(&self.jwt_secret, 32) {
            problems.push("jwt_secret must be at least 32 bytes".into());
        }
        if short(&self.session_secret, 64) {
            problems.push("session_secret must be at least 64 bytes".into());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// The effective configuration as a JSON object with every secret masked (`***`) and
    /// passwords in URLs masked; unset values are left out.
    pub fn masked(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut map = match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        };
        map.retain(|_, value| !value.is_null());
        for field in SECRET_FIELDS {
            if let Some(value) = map.get_mut(*field) {
                *value = serde_json::Value::String("***".into());
            }
        }
        for field in URL_FIELDS {
            if let Some(serde_json::Value::String(url)) = map.get_mut(*field) {
                *url = mask_url_password(url);
            }
        }
        map
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
    #[allow(clippy::result_large_err)] // figment's Jail closure signature
    fn numbers_in_the_environment_are_taken_as_written_for_text_settings() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("TOLLGATE_USAGE_LOG_SAMPLE", "0.01");
            jail.set_env("TOLLGATE_USAGE_LOG_RETENTION", "7");
            jail.set_env("TOLLGATE_WEBHOOK_RETRY_SCHEDULE", "60");
            let config = Config::load(None, &Overrides::default()).expect("loads");
            assert_eq!(config.usage_log_sample, "0.01");
            assert_eq!(config.usage_log_retention.as_deref(), Some("7"));
            assert_eq!(config.webhook_retry_schedule, "60");
            jail.set_env("TOLLGATE_USAGE_LOG_SAMPLE", "1");
            let config = Config::load(None, &Overrides::default()).expect("loads");
            assert_eq!(config.usage_log_sample, "1");
            Ok(())
        });
    }

    /// Not configuration, but the one place that sees both the schema and the adapters: the
    /// counts the session reads must be the ones the migration's triggers keep.
    #[test]
    fn live_counts_cover_exactly_the_tables_the_session_reads() {
        assert_eq!(
            migration::LIVE_COUNTED_TABLES,
            tollgate_adapters::persistence::LIVE_COUNTED_TABLES
        );
    }

    #[test]
    fn masked_hides_secrets_and_url_passwords() {
        let config = Config {
            jwt_secret: Some(Secret::from("j".repeat(40))),
            smtp_url: Some(Secret::from("smtps://u:mailpass@mail".to_owned())),
            database_url: "postgres://tg:dbpass@db:5432/tollgate".into(),
            ..Config::default()
        };
        let printed = serde_json::to_string(&config.masked()).expect("json");
        assert!(!printed.contains("jjjj") && !printed.contains("mailpass"));
        assert!(!printed.contains("dbpass"), "{printed}");
        assert!(printed.contains("postgres://tg:***@db:5432/tollgate"));
        assert!(!printed.contains("null"));
        assert_eq!(
            mask_url_password("sqlite://t.db?mode=rwc"),
            "sqlite://t.db?mode=rwc"
        );
    }

    #[test]
    fn validate_names_each_problem() {
        let config = Config {
            log_format: "xml".into(),
            admin_addr: "nowhere".into(),
            usage_retention_days: 0,
            trusted_proxies: "10.0.0.0/8, bogus".into(),
            ..Config::default()
        };
        let problems = config.validate().expect_err("invalid");
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(Config::default().validate().is_ok());
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
