//! Wiring: the store, the ports, the use cases and both listeners. `build` binds first so
//! callers (tests) can ask for port 0 and read the real ports back.

use std::{net::TcpListener, sync::Arc, time::Duration};

use actix_session::{
    SessionMiddleware,
    config::{CookieContentSecurity, PersistentSession},
};
use actix_web::{
    App, HttpServer,
    cookie::{Key, SameSite, time::Duration as CookieDuration},
    dev::Server,
    middleware::from_fn,
    web,
};
use anyhow::Context;
use migration::{Migrator, MigratorTrait};
use serde_json::json;
use tollgate_adapters::{
    gateway::{self, Gateway, GatewaySettings},
    http::{access_log, admin, proxy, request_id},
    login_throttle::RedisThrottle,
    mail::{LogMailer, NoMailer, SmtpMailer},
    persistence::{SeaStore, session_store::DbSessionStore},
    security::{
        AesVault, Argon2Passwords, JwtCodec, MemoryThrottle, RandomSecrets, SystemClock, UlidIds,
    },
    webhooks::{Dispatcher, DispatcherHandle, HttpWebhookSender},
};
use tollgate_domain::{
    auth::Authentication,
    bootstrap,
    ports::{Ports, Settings, Store},
    query::Cond,
    secrets,
    service::ResourceService,
};

use crate::config::{Config, KeySource};

/// Opens the database and applies pending migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<SeaStore> {
    let store = SeaStore::connect(&config.database_url, config.database_max_connections)
        .await
        .with_context(|| "cannot open the database")?;
    Migrator::up(store.connection(), None)
        .await
        .context("cannot apply migrations")?;
    Ok(store)
}

/// The encryption key: configured (value or file), or generated once and kept in the
/// database. Refused when it does not open the values already sealed in this database.
async fn encryption_key(store: &SeaStore, config: &Config) -> anyhow::Result<[u8; 32]> {
    let key = match config.encryption_key_source().map_err(anyhow::Error::msg)? {
        KeySource::Configured(key) => key,
        KeySource::Database => {
            let key = stored_secret(store, "encryption_key", None, AesVault::generate_key).await?;
            AesVault::decode_key(&key)
                .context("the encryption key kept in the database is not base64 of 32 bytes")?
        }
    };
    if let Some(what) = secrets::key_mismatch(store, &AesVault::new(&key)).await? {
        anyhow::bail!(
            "the encryption key does not open {what} stored in this database: configure the key \
             the stored secrets were sealed with (TOLLGATE_ENCRYPTION_KEY or TOLLGATE_ENCRYPTION_KEY_FILE)"
        );
    }
    Ok(key)
}

/// A secret from configuration, or generated once and kept in the `settings` table.
async fn stored_secret(
    store: &SeaStore,
    name: &str,
    configured: Option<&str>,
    generate: fn() -> String,
) -> anyhow::Result<String> {
    if let Some(value) = configured {
        return Ok(value.to_owned());
    }
    let mut session = store.begin().await?;
    if let Some(row) = session.find("settings", Cond::eq("id", name)).await? {
        return Ok(row
            .get("value")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned());
    }
    tracing::warn!(
        setting = name,
        "not configured: generated one and stored it in the database"
    );
    let value = generate();
    let mut row = tollgate_domain::Row::new();
    row.insert("id".into(), json!(name));
    row.insert("value".into(), json!(value));
    session.insert("settings", &row).await?;
    session.commit().await?;
    Ok(value)
}

/// SMTP when configured; else the log (development) or nothing.
fn mailer(config: &Config) -> anyhow::Result<Arc<dyn tollgate_domain::ports::Mailer>> {
    Ok(match (&config.smtp_url, config.dev_mode) {
        (Some(url), _) => {
            Arc::new(SmtpMailer::new(url.expose(), &config.mail_from).map_err(anyhow::Error::msg)?)
        }
        (None, true) => Arc::new(LogMailer),
        (None, false) => Arc::new(NoMailer),
    })
}

/// Login counters in Redis when `TOLLGATE_REDIS_URL` is set (shared by every node), else in
/// this process. Redis unreachable at start: this node's own counters, with a WARN.
async fn login_throttle(config: &Config) -> Arc<dyn tollgate_domain::ports::LoginThrottle> {
    match &config.redis_url {
        Some(url) if !url.is_empty() => match RedisThrottle::connect(url).await {
            Ok(throttle) => return Arc::new(throttle),
            Err(error) => tracing::warn!(
                %error,
                "cannot connect to Redis for the login throttle: using this node's counters"
            ),
        },
        _ => {}
    }
    Arc::new(MemoryThrottle::default())
}

/// The use cases over a store, with the production adapters.
pub async fn services(
    store: SeaStore,
    config: &Config,
) -> anyhow::Result<(ResourceService, Authentication)> {
    let key = encryption_key(&store, config).await?;
    let jwt_secret = stored_secret(
        &store,
        "jwt_secret",
        config.jwt_secret.as_ref().map(|s| s.expose()),
        || tollgate_adapters::security::random_alphanumeric(64),
    )
    .await?;
    if jwt_secret.len() < 32 {
        anyhow::bail!("TOLLGATE_JWT_SECRET must be at least 32 bytes");
    }
    let ports = Ports {
        store: Arc::new(store),
        clock: Arc::new(SystemClock),
        ids: Arc::new(UlidIds::default()),
        secrets: Arc::new(RandomSecrets),
        passwords: Arc::new(Argon2Passwords::new(config.max_concurrent_hashes)),
        vault: Arc::new(AesVault::new(&key)),
        tokens: Arc::new(JwtCodec::new(jwt_secret.as_bytes())),
        throttle: login_throttle(config).await,
        mailer: mailer(config)?,
        webhooks: Arc::new(
            HttpWebhookSender::new().context("cannot build the webhook HTTP client")?,
        ),
        settings: Settings {
            webhook_allow_private: config.webhook_allow_private,
            allow_registration: config.allow_registration,
            webhook_retry_schedule_ms: tollgate_domain::webhooks::parse_schedule(
                &config.webhook_retry_schedule,
            )
            .map_err(|e| anyhow::anyhow!("TOLLGATE_WEBHOOK_RETRY_SCHEDULE: {e}"))?,
            webhook_disable_after: config.webhook_disable_after.max(1),
            webhook_timeout_ms: config.webhook_timeout_ms.max(1),
        },
    };
    Ok((
        ResourceService::new(ports.clone()),
        Authentication::new(ports),
    ))
}

/// Seals webhook secrets an older version stored in plaintext, before anything signs with
/// them; warns when the key that seals them lives in the database.
async fn seal_stored_secrets(service: &ResourceService, config: &Config) -> anyhow::Result<()> {
    if config.encryption_key_source().ok() == Some(KeySource::Database) {
        tracing::warn!(
            "{}",
            crate::cli::DATABASE_KEY_WARNING.trim_start_matches("warning: ")
        );
    }
    let ports = service.ports();
    let sealed = secrets::seal_plaintext_secrets(ports.store.as_ref(), ports.vault.as_ref())
        .await
        .context("cannot seal the webhook secrets stored in plaintext")?;
    if sealed > 0 {
        tracing::info!(
            sealed,
            "sealed webhook secrets stored in plaintext by an older version"
        );
    }
    Ok(())
}

/// Creates the admin named by `TOLLGATE_ADMIN_EMAIL`/`_PASSWORD` when no active admin exists.
async fn bootstrap_from_env(service: &ResourceService, config: &Config) -> anyhow::Result<()> {
    if bootstrap::has_active_admin(service).await? {
        return Ok(());
    }
    match (&config.admin_email, &config.admin_password) {
        (Some(email), Some(password)) => {
            let name = config.admin_name.clone().unwrap_or_default();
            bootstrap::create_admin(service, email, &name, password.expose(), false)
                .await
                .context("cannot create the admin from TOLLGATE_ADMIN_EMAIL")?;
            tracing::info!(%email, "created the first admin");
        }
        _ => tracing::warn!(
            "no active admin exists: run `tollgate admin create` or set TOLLGATE_ADMIN_EMAIL and TOLLGATE_ADMIN_PASSWORD"
        ),
    }
    Ok(())
}

pub struct Application {
    admin_port: u16,
    proxy_port: u16,
    admin: Server,
    proxy: proxy::server::ProxyServer,
    dispatcher: DispatcherHandle,
    grace: Duration,
    gateway: Arc<Gateway>,
    metering: tokio::task::JoinHandle<()>,
    background: Vec<tokio::task::JoinHandle<()>>,
}

/// Shared buckets in Redis when `TOLLGATE_REDIS_URL` is set, else this process's own.
async fn limiter(config: &Config) -> anyhow::Result<gateway::limiter::Limiter> {
    match &config.redis_url {
        Some(url) if !url.is_empty() => gateway::limiter::Limiter::redis(url)
            .await
            .with_context(|| "cannot connect to Redis (TOLLGATE_REDIS_URL)"),
        _ => Ok(gateway::limiter::Limiter::local()),
    }
}

fn trusted_proxies(list: &str) -> anyhow::Result<Vec<ipnet::IpNet>> {
    list.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            entry
                .parse::<ipnet::IpNet>()
                .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .with_context(|| {
                    format!("TOLLGATE_TRUSTED_PROXIES: {entry:?} is not an IP or CIDR")
                })
        })
        .collect()
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let store = open_store(&config).await?;
        let session_secret = stored_secret(
            &store,
            "session_secret",
            config.session_secret.as_ref().map(|s| s.expose()),
            || tollgate_adapters::security::random_alphanumeric(64),
        )
        .await?;
        if session_secret.len() < 64 {
            anyhow::bail!("TOLLGATE_SESSION_SECRET must be at least 64 bytes");
        }
        let session_key = Key::from(session_secret.as_bytes());
        let outbox_signal = store.outbox_signal();
        let change_signal = store.change_signal();
        let usage_stats = store.clone();
        // The usage writer keeps a connection of its own: on SQLite a connection's page cache
        // is dropped whenever another connection commits, and a pool hands out its connections
        // in turn, so every batch read its index pages back from disk.
        let usage_writer = SeaStore::connect(&config.database_url, 1)
            .await
            .context("cannot open the usage writer's database connection")?;
        let (service, auth) = services(store, &config).await?;
        seal_stored_secrets(&service, &config).await?;
        let dispatcher = Dispatcher {
            service: service.clone(),
            signal: outbox_signal,
            poll: Duration::from_millis(config.webhook_poll_ms.max(10)),
            concurrency: config.webhook_concurrency.max(1),
        }
        .spawn();
        let sessions =
            DbSessionStore::new(service.ports().store.clone(), service.ports().clock.clone());
        let cookie_secure = config.cookie_secure;
        bootstrap_from_env(&service, &config).await?;
        let ports = service.ports().clone();
        let (retention, log_policy) = config.usage_retention().map_err(anyhow::Error::msg)?;
        tollgate_adapters::persistence::ensure_usage_partitions(
            usage_writer.connection(),
            ports.clock.now(),
        )
        .await
        .context("cannot prepare the request log's partitions")?;
        let usage_log = Arc::new(tollgate_adapters::persistence::UsageStore::new(
            usage_writer,
            usage_stats.clone(),
            log_policy,
        ));
        let (gateway, usage_records) = Gateway::new(
            ports.store.clone(),
            usage_log.clone(),
            ports.vault.clone(),
            ports.clock.clone(),
            ports.ids.clone(),
            limiter(&config).await?,
            GatewaySettings {
                max_body_bytes: config.proxy_max_body_bytes,
                trusted_proxies: trusted_proxies(&config.trusted_proxies)?,
                access_log: config.access_log_format(),
                ..GatewaySettings::default()
            },
        );
        gateway.reload_on(change_signal);
        gateway::reload::initial(&gateway)
            .await
            .context("cannot load the proxy configuration")?;
        let metering = tokio::spawn(gateway::metering::run(
            gateway.clone(),
            usage_records,
            gateway::metering::MeteringOptions {
                retention,
                lines: match &config.usage_log_file {
                    Some(target) if !target.is_empty() => Some(
                        gateway::usage_lines::UsageLines::open(target).with_context(|| {
                            format!("cannot open TOLLGATE_USAGE_LOG_FILE {target}")
                        })?,
                    ),
                    _ => None,
                },
            },
        ));
        let metrics = crate::ops::metrics_handle();
        let mut background = vec![
            tokio::spawn(gateway::reload::run(gateway.clone())),
            tokio::spawn(gateway::reconcile(gateway.clone())),
            tokio::spawn(gateway::health::run(
                gateway.clone(),
                Duration::from_secs(config.health_check_interval_seconds.max(1)),
            )),
        ];
        if let Some(handle) = metrics.clone() {
            background.push(tokio::spawn(crate::ops::upkeep(handle)));
        }
        let ops_state = web::Data::new(crate::ops::OpsState {
            store: usage_stats.clone(),
            gateway: gateway.clone(),
            metrics,
            service: service.clone(),
        });
        let admin_listener = TcpListener::bind(&config.admin_addr)
            .with_context(|| format!("cannot bind the admin listener {}", config.admin_addr))?;
        let workers = if config.workers == 0 {
            std::thread::available_parallelism()
                .map(usize::from)
                .unwrap_or(2)
        } else {
            config.workers
        };
        let proxy_listeners = proxy::server::ProxyListeners::bind(&config.proxy_addr, workers)
            .with_context(|| format!("cannot bind the proxy listener {}", config.proxy_addr))?;
        let admin_port = admin_listener.local_addr()?.port();
        let proxy_port = proxy_listeners.port();
        let grace = config.shutdown_grace_seconds;
        let accounts = tollgate_domain::account::Accounts::new(service.clone());
        let state = web::Data::new(admin::AdminState {
            resets: admin::reset_queue::ResetQueue::start(accounts.clone()),
            accounts,
            trusted_proxies: trusted_proxies(&config.trusted_proxies)?,
            service,
            auth,
            allowed_origins: config
                .allowed_origins
                .split(',')
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .map(str::to_owned)
                .collect(),
            secure: cookie_secure,
            usage: usage_log,
        });
        let admin = HttpServer::new(move || {
            let session = SessionMiddleware::builder(sessions.clone(), session_key.clone())
                .cookie_name(admin::SESSION_COOKIE.to_owned())
                .cookie_http_only(true)
                .cookie_same_site(SameSite::Lax)
                .cookie_secure(cookie_secure)
                .cookie_path("/".to_owned())
                .cookie_content_security(CookieContentSecurity::Signed)
                .session_lifecycle(
                    PersistentSession::default().session_ttl(CookieDuration::days(7)),
                )
                .build();
            App::new()
                .app_data(state.clone())
                .app_data(ops_state.clone())
                .wrap(session)
                .wrap(from_fn(access_log::admin))
                .wrap(from_fn(request_id::middleware))
                .configure(crate::ops::configure)
                .configure(admin::configure)
        })
        .workers(workers)
        .shutdown_timeout(grace)
        .client_request_timeout(Duration::from_secs(30))
        .listen(admin_listener)?
        .run();
        let proxy = proxy::server::ProxyServer::start(
            proxy_listeners,
            gateway.clone(),
            Duration::from_secs(grace),
        )
        .context("cannot start the proxy workers")?;
        tracing::info!(admin_port, proxy_port, "listening");
        Ok(Self {
            admin_port,
            proxy_port,
            admin,
            proxy,
            dispatcher,
            grace: Duration::from_secs(grace),
            gateway,
            metering,
            background,
        })
    }

    pub fn admin_port(&self) -> u16 {
        self.admin_port
    }

    pub fn proxy_port(&self) -> u16 {
        self.proxy_port
    }

    /// Serves until both listeners stop (SIGINT/SIGTERM stop them gracefully). Then flushes
    /// the usage records still in memory (their events included) and lets the webhook
    /// attempts in flight finish.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        // actix stops the admin listener on SIGINT/SIGTERM by itself; the proxy workers stop
        // on the same signals: they stop accepting and finish the requests in flight.
        let proxy = self.proxy;
        let stopping = async move {
            shutdown_signal().await;
            proxy.stop().await;
        };
        let (served, ()) = tokio::join!(self.admin, stopping);
        for task in &self.background {
            task.abort();
        }
        self.gateway.stop_metering();
        if tokio::time::timeout(Duration::from_secs(10), self.metering)
            .await
            .is_err()
        {
            tracing::warn!("usage records not flushed within 10 s");
        }
        self.dispatcher.shutdown(self.grace).await;
        served?;
        Ok(())
    }
}

/// SIGINT or SIGTERM (on Unix; Ctrl-C elsewhere).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
