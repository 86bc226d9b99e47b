//! Tollgate's schema. One migration list serves SQLite and PostgreSQL: tables are built with
//! sea-query (portable types), and the partial, case-insensitive unique indexes use the SQL both
//! engines share (`CREATE UNIQUE INDEX … (lower(col)) WHERE deleted_at IS NULL`).
//!
//! Timestamps are BIGINT milliseconds since the epoch (identical ordering on both engines).

pub use sea_orm_migration::prelude::*;

mod builders;

mod m0001_foundation;
mod m0002_live_counts;
mod m0003_usage;
mod m0004_webhook_deliveries;
mod m0005_usage_group_index;
mod m0006_usage_key_index;
mod m0007_config_version;
mod m0008_usage_rollups;
mod m0009_usage_log_partitions;

/// The tables whose live rows migration m0002's triggers count in `live_counts`.
pub use m0002_live_counts::COUNTED as LIVE_COUNTED_TABLES;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_foundation::Migration),
            Box::new(m0002_live_counts::Migration),
            Box::new(m0003_usage::Migration),
            Box::new(m0004_webhook_deliveries::Migration),
            Box::new(m0005_usage_group_index::Migration),
            Box::new(m0006_usage_key_index::Migration),
            Box::new(m0007_config_version::Migration),
            Box::new(m0008_usage_rollups::Migration),
            Box::new(m0009_usage_log_partitions::Migration),
        ]
    }
}
