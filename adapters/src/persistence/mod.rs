//! The sea-orm adapter for [`Store`]: SQLite (embedded default) or PostgreSQL, chosen by URL.

mod condition;
mod partitions;
mod session;
pub mod session_store;
pub(crate) mod tables;
mod usage_log;
mod usage_write;

pub use partitions::ensure_ahead as ensure_usage_partitions;
pub use usage_log::UsageStore;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use sea_orm::{
    ConnectOptions, Database, DatabaseConnection, DbBackend, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};
use tollgate_domain::{
    error::StoreError,
    ports::{Session, Store},
};

pub use session::{LIVE_COUNTED_TABLES, SeaSession};

/// The database behind every port that persists something.
#[derive(Clone)]
pub struct SeaStore {
    db: DatabaseConnection,
    outbox: Arc<tokio::sync::Notify>,
    changes: Arc<tokio::sync::Notify>,
}

impl SeaStore {
    /// Connects; SQLite gets WAL, foreign keys and a busy timeout.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let mut options = ConnectOptions::new(url.to_owned());
        let sqlite = url.starts_with("sqlite:");
        options
            .max_connections(if sqlite {
                max_connections.min(8)
            } else {
                max_connections
            })
            .min_connections(1)
            .connect_timeout(Duration::from_secs(5))
            .acquire_timeout(Duration::from_secs(10))
            .sqlx_logging(false);
        if sqlite {
            options.map_sqlx_sqlite_opts(|o| {
                o.foreign_keys(true)
                    .journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                    .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(5))
                    // 16 MiB of page cache (default 2 MiB): a usage batch's index pages stay
                    // in memory instead of spilling and being read back.
                    .pragma("cache_size", "-16384")
                    .pragma("temp_store", "memory")
            });
        }
        let db = Database::connect(options)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(Self {
            db,
            outbox: Arc::new(tokio::sync::Notify::new()),
            changes: Arc::new(tokio::sync::Notify::new()),
        })
    }

    /// Signalled after every commit that queued webhook work (events or delivery jobs), so
    /// the dispatcher in this process starts at once instead of at its next poll.
    pub fn outbox_signal(&self) -> Arc<tokio::sync::Notify> {
        self.outbox.clone()
    }

    /// Signalled after every commit that wrote a change event, so this node's proxy reloads its
    /// configuration at once instead of at its next poll.
    pub fn change_signal(&self) -> Arc<tokio::sync::Notify> {
        self.changes.clone()
    }

    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    pub fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    /// Pool connections `(in use, idle)`; cheap (atomics in sqlx's pool).
    pub fn pool_connections(&self) -> (u32, u32) {
        let (size, idle) = match self.db.get_database_backend() {
            DbBackend::Postgres => {
                let pool = self.db.get_postgres_connection_pool();
                (pool.size(), pool.num_idle())
            }
            DbBackend::Sqlite => {
                let pool = self.db.get_sqlite_connection_pool();
                (pool.size(), pool.num_idle())
            }
            _ => return (0, 0),
        };
        let idle = u32::try_from(idle).unwrap_or(u32::MAX).min(size);
        (size - idle, idle)
    }

    /// Checks the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db
            .ping()
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }
}

#[async_trait]
impl Store for SeaStore {
    /// On SQLite the write lock is taken at `BEGIN` (IMMEDIATE): a deferred transaction that
    /// reads, then writes, fails with `SQLITE_BUSY` when another writer got there first.
    async fn begin(&self) -> Result<Box<dyn Session>, StoreError> {
        let options = TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        };
        let tx = self
            .db
            .begin_with_options(options)
            .await
            .map_err(session::store_error)?;
        Ok(Box::new(
            SeaSession::transaction(tx)
                .with_signal(self.outbox.clone())
                .with_change_signal(self.changes.clone()),
        ))
    }

    async fn read(&self) -> Result<Box<dyn Session>, StoreError> {
        Ok(Box::new(SeaSession::autocommit(self.db.clone())))
    }
}
