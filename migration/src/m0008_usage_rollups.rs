//! Usage rollups, the billing truth: per minute and per hour, per (api key, user, group,
//! route, status class), the requests and their sums; each quota subject's monthly count;
//! and the ids of the writer's applied batches, so a retried batch is never counted twice.
//! Absent relationships are '' (a unique key over NULLs never conflicts, so the writer's
//! `ON CONFLICT … DO UPDATE` could not add to a row). Existing request-log records are rolled
//! up once here, so quotas and summaries carry on across the upgrade.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

const COUNTS: [&str; 14] = [
    "requests",
    "errors",
    "counted",
    "overage",
    "request_bytes",
    "response_bytes",
    "duration_ms",
    "latency_le_10",
    "latency_le_50",
    "latency_le_100",
    "latency_le_250",
    "latency_le_1000",
    "latency_le_5000",
    "latency_over_5000",
];

/// The aggregate of each count column over `usage_records`, in [`COUNTS`] order.
const SUMS: [&str; 14] = [
    "COUNT(*)",
    "SUM(CASE WHEN status_code >= 400 THEN 1 ELSE 0 END)",
    "SUM(CASE WHEN counted THEN 1 ELSE 0 END)",
    "SUM(CASE WHEN overage THEN 1 ELSE 0 END)",
    "SUM(request_bytes)",
    "SUM(response_bytes)",
    "SUM(duration_ms)",
    "SUM(CASE WHEN duration_ms <= 10 THEN 1 ELSE 0 END)",
    "SUM(CASE WHEN duration_ms > 10 AND duration_ms <= 50 THEN 1 ELSE 0 END)",
    "SUM(CASE WHEN duration_ms > 50 AND duration_ms <= 100 THEN 1 ELSE 0 END)",
    "SUM(CASE WHEN duration_ms > 100 AND duration_ms <= 250 THEN 1 ELSE 0 END)",
    "SUM(CASE WHEN duration_ms > 250 AND duration_ms <= 1000 THEN 1 ELSE 0 END)",
    "SUM(CASE WHEN duration_ms > 1000 AND duration_ms <= 5000 THEN 1 ELSE 0 END)",
    "SUM(CASE WHEN duration_ms > 5000 THEN 1 ELSE 0 END)",
];

const CLASS: &str = "CASE WHEN error_code IS NOT NULL THEN error_code \
     WHEN status_code < 200 THEN '1xx' WHEN status_code < 300 THEN '2xx' \
     WHEN status_code < 400 THEN '3xx' WHEN status_code < 500 THEN '4xx' ELSE '5xx' END";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let counts: Vec<String> = COUNTS
            .iter()
            .map(|c| format!("{c} BIGINT NOT NULL DEFAULT 0"))
            .collect();
        db.execute_unprepared(&format!(
            "CREATE TABLE IF NOT EXISTS usage_rollups (\
             span TEXT NOT NULL, bucket BIGINT NOT NULL, api_key_id TEXT NOT NULL, \
             user_id TEXT NOT NULL, group_id TEXT NOT NULL, route_id TEXT NOT NULL, \
             status_class TEXT NOT NULL, {}, \
             PRIMARY KEY (span, bucket, api_key_id, user_id, group_id, route_id, status_class))",
            counts.join(", ")
        ))
        .await?;
        // Summaries filter by one relationship over a time range.
        for column in ["api_key_id", "user_id", "group_id", "route_id"] {
            db.execute_unprepared(&format!(
                "CREATE INDEX IF NOT EXISTS ix_usage_rollups__span_{column}_bucket \
                 ON usage_rollups (span, {column}, bucket)"
            ))
            .await?;
        }
        db.execute_unprepared(
            "CREATE TABLE IF NOT EXISTS usage_quota_counts (\
             subject TEXT NOT NULL, period_start BIGINT NOT NULL, counted BIGINT NOT NULL, \
             PRIMARY KEY (subject, period_start))",
        )
        .await?;
        db.execute_unprepared(
            "CREATE TABLE IF NOT EXISTS usage_batches (\
             id TEXT NOT NULL PRIMARY KEY, last_id TEXT NOT NULL, records BIGINT NOT NULL, \
             applied_at BIGINT NOT NULL)",
        )
        .await?;
        db.execute_unprepared(
            "CREATE INDEX IF NOT EXISTS ix_usage_batches__applied_at ON usage_batches (applied_at)",
        )
        .await?;
        let sums = SUMS.join(", ");
        let columns = COUNTS.join(", ");
        for (span, ms) in [("minute", 60_000), ("hour", 3_600_000)] {
            db.execute_unprepared(&format!(
                "INSERT INTO usage_rollups (span, bucket, api_key_id, user_id, group_id, \
                 route_id, status_class, {columns}) \
                 SELECT '{span}', created_at - (created_at % {ms}), COALESCE(api_key_id, ''), \
                 COALESCE(user_id, ''), COALESCE(group_id, ''), COALESCE(route_id, ''), \
                 {CLASS}, {sums} FROM usage_records \
                 GROUP BY created_at - (created_at % {ms}), COALESCE(api_key_id, ''), \
                 COALESCE(user_id, ''), COALESCE(group_id, ''), COALESCE(route_id, ''), {CLASS}"
            ))
            .await?;
        }
        let month = match db.get_database_backend() {
            DbBackend::Postgres => {
                "CAST(EXTRACT(EPOCH FROM date_trunc('month', to_timestamp(created_at / 1000) AT TIME ZONE 'UTC')) AS BIGINT) * 1000"
            }
            _ => {
                "CAST(strftime('%s', created_at / 1000, 'unixepoch', 'start of month') AS INTEGER) * 1000"
            }
        };
        db.execute_unprepared(&format!(
            "INSERT INTO usage_quota_counts (subject, period_start, counted) \
             SELECT COALESCE(group_id, user_id), {month}, COUNT(*) FROM usage_records \
             WHERE counted AND COALESCE(group_id, user_id) IS NOT NULL \
             GROUP BY COALESCE(group_id, user_id), {month}"
        ))
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["usage_batches", "usage_quota_counts", "usage_rollups"] {
            manager
                .drop_table(
                    Table::drop()
                        .table(Alias::new(table))
                        .if_exists()
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
