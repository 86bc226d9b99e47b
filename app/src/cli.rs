//! The command line: `serve`, `migrate`, `admin create`.

use std::{io::Read, path::PathBuf};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use tollgate_domain::bootstrap::{self, BootstrapError};

use crate::{
    config::{Config, Overrides},
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
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an active admin (and plan "Free" when no plan exists).
    Create {
        #[arg(long)]
        email: String,
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
    crate::telemetry::init(&config.log_format, &config.log_level);
    match cli.command {
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
