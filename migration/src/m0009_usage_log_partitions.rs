//! On PostgreSQL the request log becomes a table partitioned by day (`created_at`, ms), so
//! retention drops whole days (`DROP TABLE` of a partition) instead of deleting rows one by
//! one. The primary key has to include the partition key: `(id, created_at)`. Records of days
//! without a partition go to `usage_records_default`; the server creates the partitions of
//! the coming days. SQLite keeps its table (retention deletes in small batches there).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

const INDEXES: [&[&str]; 4] = [
    &["created_at"],
    &["user_id", "created_at"],
    &["group_id", "created_at"],
    &["route_id", "created_at"],
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if db.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        db.execute_unprepared("ALTER TABLE usage_records RENAME TO usage_records_unpartitioned")
            .await?;
        db.execute_unprepared(
            "CREATE TABLE usage_records (\
             id TEXT NOT NULL, request_id TEXT NOT NULL, created_at BIGINT NOT NULL, \
             updated_at BIGINT NOT NULL, method TEXT NOT NULL, host TEXT NOT NULL, \
             path TEXT NOT NULL, status_code BIGINT NOT NULL, error_code TEXT NULL, \
             duration_ms BIGINT NOT NULL, upstream_duration_ms BIGINT NULL, \
             request_bytes BIGINT NOT NULL, response_bytes BIGINT NOT NULL, \
             client_ip TEXT NOT NULL, user_agent TEXT NOT NULL, counted BOOLEAN NOT NULL, \
             overage BOOLEAN NOT NULL, route_id TEXT NULL, api_key_id TEXT NULL, \
             user_id TEXT NULL, group_id TEXT NULL, PRIMARY KEY (id, created_at)) \
             PARTITION BY RANGE (created_at)",
        )
        .await?;
        db.execute_unprepared(
            "CREATE TABLE usage_records_default PARTITION OF usage_records DEFAULT",
        )
        .await?;
        db.execute_unprepared(
            "INSERT INTO usage_records SELECT * FROM usage_records_unpartitioned",
        )
        .await?;
        db.execute_unprepared("DROP TABLE usage_records_unpartitioned")
            .await?;
        for columns in INDEXES {
            db.execute_unprepared(&format!(
                "CREATE INDEX IF NOT EXISTS ix_usage_records__{} ON usage_records ({})",
                columns.join("_"),
                columns.join(", ")
            ))
            .await?;
        }
        Ok(())
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        // Partitions back into one table would copy the whole log: not undone.
        Ok(())
    }
}
