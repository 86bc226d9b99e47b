//! The command line: `serve`, `migrate`, `admin create`, `config check`, `keys create|revoke`.

use std::{io::Read, path::PathBuf};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::json;
use tollgate_domain::{
    Actor, DomainError,
    bootstrap::{self, BootstrapError},
    query::Cond,
    resources::api_keys::{self, ApiKeys},
    service::{Identifier, RelInput, ResourceService, WriteInput},
};

use crate::{
    config::{Config, KeySource, Overrides},
    startup::{self, Application},
};

#[derive(Debug, Parser)]
#[command(
    name = "tollgate",
    version,
    about = "Tollgate API gateway: a JSON:API admin service and a fast key-checking proxy"
)]
pub struct Cli {
    /// Configuration file (TOML); defaults to ./tollgate.toml when present.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Database URL: sqlite://FILE?mode=rwc or postgres://… [env: TOLLGATE_DATABASE_URL]
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the admin API and the proxy (applies pending migrations first).
    Serve {
        /// Proxy listener address [env: TOLLGATE_PROXY_ADDR] [default: 0.0.0.0:8080]
        #[arg(long, value_name = "ADDR")]
        proxy_addr: Option<String>,
        /// Admin listener address [env: TOLLGATE_ADMIN_ADDR] [default: 127.0.0.1:8081]
        #[arg(long, value_name = "ADDR")]
        admin_addr: Option<String>,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage administrators.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Create and revoke proxy API keys without the admin API (for scripts).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Usage data for billing.
    Usage {
        #[command(subcommand)]
        command: UsageCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum UsageCommand {
    /// Print a month's billing export (per key, user and group: requests, requests counted
    /// toward the quota, overage, errors, bytes), the same content as
    /// `GET /api/usage/export`. Columns: wiki/usage.md.
    Export {
        /// The month, YYYY-MM (UTC), e.g. 2026-11.
        #[arg(long, value_name = "YYYY-MM")]
        month: String,
        #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
        format: ExportFormat,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    Csv,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration (file, TOLLGATE_* environment, flags) and print the
    /// effective values with every secret masked. Exits non-zero and names each problem when
    /// the configuration is invalid. Connects to nothing.
    Check {
        /// Output format of the effective configuration.
        #[arg(long, value_enum, default_value_t = OutputFormat::Toml)]
        format: OutputFormat,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OutputFormat {
    Toml,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a proxy API key for a user and print it once, alone on the last line of
    /// standard output (it cannot be shown again).
    Create {
        /// The key's owner: a user id (usr_…) or an email address.
        #[arg(long, value_name = "ID|EMAIL")]
        user: String,
        /// A name for the key (1 to 100 characters), e.g. what uses it.
        #[arg(long, value_name = "NAME")]
        name: String,
        /// When the key stops working, RFC 3339 (e.g. 2027-01-01T00:00:00Z); never when absent.
        #[arg(long, value_name = "RFC3339")]
        expires_at: Option<String>,
    },
    /// Revoke a key by id (key_…); the proxy refuses it from its next configuration reload.
    /// Revoking a revoked key succeeds and changes nothing.
    Revoke {
        /// The key id (key_…), as shown by the admin API.
        #[arg(value_name = "KEY_ID")]
        key_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an active admin (and plan "Free" when no plan exists).
    Create {
        /// The admin's email address (used to log in; stored lower-case).
        #[arg(long)]
        email: String,
        /// The admin's display name.
        #[arg(long, default_value = "")]
        name: String,
        /// Read the password from standard input (required).
        #[arg(long)]
        password_stdin: bool,
        /// Also create an admin API key and print it alone on the last line.
        #[arg(long)]
        with_key: bool,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut overrides = Overrides {
        database_url: cli.database_url.clone(),
        ..Overrides::default()
    };
    if let Command::Serve {
        proxy_addr,
        admin_addr,
    } = &cli.command
    {
        overrides.proxy_addr = proxy_addr.clone();
        overrides.admin_addr = admin_addr.clone();
    }
    let config =
        Config::load(cli.config.as_deref(), &overrides).context("invalid configuration")?;
    if let Command::Config {
        command: ConfigCommand::Check { format },
    } = cli.command
    {
        return config_check(&config, format);
    }
    crate::telemetry::init(&config.log_format, &config.log_level);
    match cli.command {
        Command::Config { .. } => Ok(()),
        Command::Keys {
            command:
                KeysCommand::Create {
                    user,
                    name,
                    expires_at,
                },
        } => {
            let service = open_service(&config).await?;
            let created = create_key(&service, &user, &name, expires_at.as_deref()).await?;
            println!("created key {} for user {}", created.id, created.user_id);
            println!("{}", created.key);
            Ok(())
        }
        Command::Keys {
            command: KeysCommand::Revoke { key_id },
        } => {
            let service = open_service(&config).await?;
            let id = key_id.clone();
            let revoked = service
                .transact(&Actor::system(), move |ctx| {
                    Box::pin(async move { api_keys::revoke(ctx, &id).await })
                })
                .await;
            match revoked {
                Ok(_) => {
                    println!("revoked key {key_id}");
                    Ok(())
                }
                Err(DomainError::NotFound) => bail!("no API key with the id {key_id}"),
                Err(other) => Err(explain(other)),
            }
        }
        Command::Usage {
            command: UsageCommand::Export { month, format },
        } => {
            let store = startup::open_store(&config).await?;
            let lines =
                tollgate_domain::proxy::usage_report::export(&store, &Actor::system(), &month)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot export {month}: {e}"))?;
            use tollgate_adapters::http::admin::usage::{export_csv, export_json};
            match format {
                ExportFormat::Csv => print!("{}", export_csv(&lines)),
                ExportFormat::Json => println!("{}", export_json(&month, &lines)),
            }
            Ok(())
        }
        Command::Serve { .. } => Application::build(config).await?.run_until_stopped().await,
        Command::Migrate => {
            startup::open_store(&config).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Admin {
            command:
                AdminCommand::Create {
                    email,
                    name,
                    password_stdin,
                    with_key,
                },
        } => {
            if !password_stdin {
                bail!("pass the password on standard input with --password-stdin");
            }
            let mut password = String::new();
            std::io::stdin().read_to_string(&mut password)?;
            let password = password.trim_end_matches(['\n', '\r']);
            let store = startup::open_store(&config).await?;
            let (service, _) = startup::services(store, &config).await?;
            match bootstrap::create_admin(&service, &email, &name, password, with_key).await {
                Ok(created) => {
                    println!("created admin {} ({email})", created.user_id);
                    if let Some(key) = created.admin_key {
                        println!("{key}");
                    }
                    Ok(())
                }
                Err(BootstrapError::EmailTaken(email)) => {
                    bail!("a user with the email {email} already exists")
                }
                Err(BootstrapError::Domain(tollgate_domain::DomainError::Invalid(problems))) => {
                    let details: Vec<String> = problems.into_iter().map(|p| p.detail).collect();
                    bail!("{}", details.join("; "))
                }
                Err(other) => Err(other.into()),
            }
        }
    }
}

/// Said by `config check` (and logged by `serve`) when no encryption key is configured.
pub const DATABASE_KEY_WARNING: &str = "warning: neither TOLLGATE_ENCRYPTION_KEY nor \
TOLLGATE_ENCRYPTION_KEY_FILE is set: the key that seals stored secrets (upstream credentials, \
webhook secrets) is generated and kept in the database, next to the values it protects";

/// `config check`: validate, then print the masked effective configuration.
fn config_check(config: &Config, format: OutputFormat) -> anyhow::Result<()> {
    if let Err(problems) = config.validate() {
        bail!("invalid configuration:\n  {}", problems.join("\n  "));
    }
    let masked = config.masked();
    let printed = match format {
        OutputFormat::Json => serde_json::to_string_pretty(&masked)?,
        OutputFormat::Toml => toml::to_string(&masked).context("cannot render TOML")?,
    };
    println!("{}", printed.trim_end());
    if config.encryption_key_source() == Ok(KeySource::Database) {
        eprintln!("{}", DATABASE_KEY_WARNING);
    }
    eprintln!("configuration is valid");
    Ok(())
}

async fn open_service(config: &Config) -> anyhow::Result<ResourceService> {
    let store = startup::open_store(config).await?;
    let (service, _) = startup::services(store, config).await?;
    Ok(service)
}

/// A domain error as one readable message.
fn explain(error: DomainError) -> anyhow::Error {
    match error {
        DomainError::Invalid(problems) => {
            let details: Vec<String> = problems.into_iter().map(|p| p.detail).collect();
            anyhow::anyhow!("{}", details.join("; "))
        }
        other => other.into(),
    }
}

pub struct CreatedKey {
    pub id: String,
    pub user_id: String,
    pub key: String,
}

/// Creates a proxy key through the same use case as `POST /api/api-keys`, as the system.
pub async fn create_key(
    service: &ResourceService,
    user: &str,
    name: &str,
    expires_at: Option<&str>,
) -> anyhow::Result<CreatedKey> {
    let cond = if user.starts_with("usr_") {
        Cond::eq("id", user)
    } else if user.contains('@') {
        Cond::eq("email", user.trim().to_lowercase())
    } else {
        bail!("--user must be a user id (usr_…) or an email address, not {user:?}");
    };
    let cond = Cond::All(vec![Cond::is_null("deleted_at"), cond]);
    let owner = {
        let mut session = service.ports().store.read().await?;
        session.find("users", cond).await?
    };
    let Some(owner) = owner else {
        bail!("no user {user}");
    };
    let user_id = owner
        .get("id")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned();
    let mut attributes = vec![("name".into(), json!(name))];
    if let Some(expires_at) = expires_at {
        attributes.push(("expires_at".into(), json!(expires_at)));
    }
    let input = WriteInput {
        attributes,
        relationships: vec![(
            "user".into(),
            RelInput::One(Some(Identifier {
                type_name: "users".into(),
                id: user_id.clone(),
                meta: None,
            })),
        )],
    };
    let registry = tollgate_domain::resources::by_type;
    let created = service
        .create(&Actor::system(), &ApiKeys, input, &registry)
        .await
        .map_err(explain)?;
    let id = created
        .row
        .get("id")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned();
    let Some(key) = created.meta.get("key").and_then(|v| v.as_str()) else {
        bail!("the key was created ({id}) but its secret was not returned");
    };
    Ok(CreatedKey {
        id,
        user_id,
        key: key.to_owned(),
    })
}
