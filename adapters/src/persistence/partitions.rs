//! The request log's retention. On PostgreSQL `usage_records` is partitioned by day
//! (migration m0009): a day past retention goes with `DROP TABLE` of its partition, which
//! costs nothing however many rows it held, and days ahead are created before their first
//! record. A default partition takes records of days without one (a node down for days),
//! and is pruned row by row. On SQLite old records are deleted in small batches.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use tollgate_domain::{Timestamp, error::StoreError};

use super::session::store_error;

const DAY_MS: i64 = 86_400_000;
/// Days ahead that get their partition in advance.
const DAYS_AHEAD: i64 = 3;

/// `usage_records_p20261207` for the day starting at `start` (ms).
fn partition_name(start: i64) -> String {
    let at = Timestamp::from_millis(start).to_datetime();
    format!(
        "usage_records_p{:04}{:02}{:02}",
        at.year(),
        u8::from(at.month()),
        at.day()
    )
}

/// The day a partition name stands for (ms), if it is one of ours.
fn partition_day(name: &str) -> Option<i64> {
    let digits = name.strip_prefix("usage_records_p")?;
    if digits.len() != 8 {
        return None;
    }
    let year: i32 = digits[..4].parse().ok()?;
    let month: u8 = digits[4..6].parse().ok()?;
    let day: u8 = digits[6..].parse().ok()?;
    let date =
        time::Date::from_calendar_date(year, time::Month::try_from(month).ok()?, day).ok()?;
    Some(Timestamp::from_datetime(date.midnight().assume_utc()).millis())
}

async fn is_partitioned(db: &DatabaseConnection) -> Result<bool, StoreError> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(false);
    }
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT COUNT(*) AS n FROM pg_partitioned_table t JOIN pg_class c ON c.oid = t.partrelid \
             WHERE c.relname = 'usage_records' AND pg_table_is_visible(c.oid)",
        ))
        .await
        .map_err(store_error)?;
    Ok(row
        .map(|r| r.try_get::<i64>("", "n").unwrap_or(0) > 0)
        .unwrap_or(false))
}

/// Creates the partitions of the days from `now`'s to [`DAYS_AHEAD`] later (PostgreSQL, when
/// partitioned). A day whose records already went to the default partition keeps them there.
pub async fn ensure_ahead(db: &DatabaseConnection, now: Timestamp) -> Result<(), StoreError> {
    if !is_partitioned(db).await? {
        return Ok(());
    }
    let today = now.millis() - now.millis().rem_euclid(DAY_MS);
    for n in 0..=DAYS_AHEAD {
        let start = today + n * DAY_MS;
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {} PARTITION OF usage_records FOR VALUES FROM ({start}) TO ({})",
            partition_name(start),
            start + DAY_MS
        );
        if let Err(e) = db
            .execute_raw(Statement::from_string(DbBackend::Postgres, sql))
            .await
        {
            tracing::debug!(error = %e, "usage_records partition not created");
        }
    }
    Ok(())
}

/// Deletes request-log records created before `before` (ms); returns how many went (for
/// dropped partitions, the rows they held).
pub async fn prune_log(
    db: &DatabaseConnection,
    before: i64,
    batch: i64,
) -> Result<u64, StoreError> {
    let backend = db.get_database_backend();
    let mut removed = 0;
    let mut table = "usage_records".to_owned();
    if is_partitioned(db).await? {
        let rows = db
            .query_all_raw(Statement::from_string(
                backend,
                "SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
                 JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'usage_records' \
                 AND pg_table_is_visible(p.oid)",
            ))
            .await
            .map_err(store_error)?;
        for row in rows {
            let name: String = row.try_get("", "name").map_err(store_error)?;
            let Some(day) = partition_day(&name) else {
                continue;
            };
            if day + DAY_MS <= before {
                let count = db
                    .query_one_raw(Statement::from_string(
                        backend,
                        format!("SELECT COUNT(*) AS n FROM {name}"),
                    ))
                    .await
                    .map_err(store_error)?
                    .and_then(|r| r.try_get::<i64>("", "n").ok())
                    .unwrap_or(0);
                db.execute_raw(Statement::from_string(
                    backend,
                    format!("DROP TABLE IF EXISTS {name}"),
                ))
                .await
                .map_err(store_error)?;
                removed += count as u64;
            }
        }
        ensure_ahead(db, Timestamp::from_millis(before.max(0)))
            .await
            .ok();
        // What the default partition holds is deleted like on SQLite.
        table = "usage_records_default".to_owned();
    }
    loop {
        let done = db
            .execute_raw(Statement::from_string(
                backend,
                format!(
                    "DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE created_at < {before} \
                     ORDER BY created_at LIMIT {batch})"
                ),
            ))
            .await
            .map_err(store_error)?
            .rows_affected();
        removed += done;
        if done < batch as u64 {
            return Ok(removed);
        }
        tokio::task::yield_now().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_round_trip() {
        let day = 1_796_601_600_000; // 2026-12-07
        assert_eq!(partition_name(day), "usage_records_p20261207");
        assert_eq!(partition_day("usage_records_p20261207"), Some(day));
        assert_eq!(partition_day("usage_records_default"), None);
    }
}
