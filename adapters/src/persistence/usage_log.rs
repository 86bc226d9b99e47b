//! [`UsageLog`] in SQL: the writer's batches (see `usage_write`: rollups upserted, quota
//! counts added, the request-log records the [`LogPolicy`] keeps, the batch id for
//! idempotency) and the reads, aggregate queries on the rollups, the same text on SQLite and
//! PostgreSQL; sums are cast to BIGINT because PostgreSQL widens `SUM(bigint)` to numeric.

use async_trait::async_trait;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, QueryResult, Statement, Value,
    sea_query::{Alias, Expr, Order, Query, SelectStatement},
};
use tollgate_domain::{
    Timestamp,
    error::StoreError,
    proxy::{
        limits::QuotaPeriod,
        rollups::{LogPolicy, Span},
        usage::{
            AppendError, ExportRow, Pruned, Retention, SeriesRow, TOTAL_FIELDS, UsageGroup,
            UsageLog, UsageRecord, UsageTotals,
        },
    },
    query::Cond,
};

use super::{
    SeaStore,
    condition::condition,
    session::store_error,
    usage_write::{append, arg},
};

/// Request-log records deleted per statement when pruning: SQLite holds its write lock for a
/// statement, so the proxy's writer and admin writes wait at most one small batch.
const DELETE_BATCH: i64 = 5_000;

/// How long applied batch ids are kept: far longer than any retry of the writer.
const BATCH_IDS_KEPT_MS: i64 = 86_400_000;

/// The request log behind the proxy: writes go through `writer` (a connection of its own),
/// reads through `reader` (the shared pool), and `policy` says which records the log keeps.
#[derive(Clone)]
pub struct UsageStore {
    writer: SeaStore,
    reader: SeaStore,
    policy: LogPolicy,
}

impl UsageStore {
    pub fn new(writer: SeaStore, reader: SeaStore, policy: LogPolicy) -> Self {
        Self {
            writer,
            reader,
            policy,
        }
    }
}

/// The SQL of each summed column, in [`TOTAL_FIELDS`] order (the name each answers as).
const AGGREGATES: [&str; 7] = [
    "COALESCE(CAST(SUM(requests) AS BIGINT), 0)",
    "COALESCE(CAST(SUM(errors) AS BIGINT), 0)",
    "COALESCE(CAST(SUM(counted) AS BIGINT), 0)",
    "COALESCE(CAST(SUM(overage) AS BIGINT), 0)",
    "COALESCE(CAST(SUM(request_bytes) AS BIGINT), 0)",
    "COALESCE(CAST(SUM(response_bytes) AS BIGINT), 0)",
    "CASE WHEN SUM(requests) > 0 THEN CAST(ROUND(SUM(duration_ms) * 1.0 / SUM(requests)) AS BIGINT) ELSE 0 END",
];

fn totals(row: &QueryResult) -> Result<UsageTotals, StoreError> {
    let get = |name: &str| row.try_get::<i64>("", name).map_err(store_error);
    Ok(UsageTotals {
        requests: get("requests")?,
        errors: get("errors")?,
        counted: get("counted")?,
        overage: get("overage")?,
        request_bytes: get("request_bytes")?,
        response_bytes: get("response_bytes")?,
        avg_duration_ms: get("avg_duration_ms")?,
    })
}

/// `SELECT <aggregates> FROM usage_rollups WHERE span = … AND from <= bucket < to AND cond`.
fn rollup_select(
    span: Span,
    (from, to): (Timestamp, Timestamp),
    cond: &Cond,
) -> Result<SelectStatement, StoreError> {
    use sea_orm::sea_query::ExprTrait as _;
    let mut query = Query::select();
    query.from(Alias::new("usage_rollups"));
    for (name, sql) in TOTAL_FIELDS.into_iter().zip(AGGREGATES) {
        query.expr_as(Expr::cust(sql), Alias::new(name));
    }
    query
        .and_where(Expr::col(Alias::new("span")).eq(span.as_str()))
        .and_where(Expr::col(Alias::new("bucket")).gte(from.millis()))
        .and_where(Expr::col(Alias::new("bucket")).lt(to.millis()))
        .cond_where(condition(cond)?);
    Ok(query)
}

fn text(row: &QueryResult, column: &str) -> Result<Option<String>, StoreError> {
    row.try_get::<Option<String>>("", column)
        .map_err(store_error)
}

impl UsageStore {
    async fn quota_used_on(
        &self,
        subject: &str,
        period_start: Timestamp,
        recent: Timestamp,
    ) -> Result<u64, StoreError> {
        let db = self.reader.connection();
        let backend = db.get_database_backend();
        let next = QuotaPeriod::containing(period_start).next.millis();
        let scalar = |sql: String, values: Vec<Value>| async move {
            let row = db
                .query_one_raw(Statement::from_sql_and_values(backend, sql, values))
                .await
                .map_err(store_error)?;
            Ok::<i64, StoreError>(match row {
                Some(row) => row.try_get::<i64>("", "n").map_err(store_error)?,
                None => 0,
            })
        };
        let (a1, a2, a3) = (arg(backend, 1), arg(backend, 2), arg(backend, 3));
        let period = scalar(
            format!(
                "SELECT counted AS n FROM usage_quota_counts WHERE subject = {a1} AND period_start = {a2}"
            ),
            vec![subject.into(), period_start.millis().into()],
        )
        .await?;
        let group = subject.starts_with("grp_");
        // The log first, then the rollups: a batch committing in between then makes the
        // difference smaller, never larger.
        let owner_log = if group {
            format!("group_id = {a1}")
        } else {
            format!("user_id = {a1} AND group_id IS NULL")
        };
        let logged = scalar(
            format!(
                "SELECT COUNT(*) AS n FROM usage_records WHERE {owner_log} AND counted \
                 AND created_at >= {a2} AND created_at < {a3}"
            ),
            vec![subject.into(), recent.millis().into(), next.into()],
        )
        .await?;
        let owner_rollup = if group {
            format!("group_id = {a1}")
        } else {
            format!("user_id = {a1} AND group_id = ''")
        };
        let rolled = scalar(
            format!(
                "SELECT COALESCE(CAST(SUM(counted) AS BIGINT), 0) AS n FROM usage_rollups \
                 WHERE {owner_rollup} AND span = 'minute' AND bucket >= {a2} AND bucket < {a3}"
            ),
            vec![subject.into(), recent.millis().into(), next.into()],
        )
        .await?;
        Ok((period + (logged - rolled).max(0)).max(0) as u64)
    }

    async fn totals_on(
        &self,
        span: Span,
        range: (Timestamp, Timestamp),
        cond: &Cond,
        group_by: Option<&'static str>,
        limit: u64,
    ) -> Result<(UsageTotals, Vec<UsageGroup>), StoreError> {
        let db = self.reader.connection();
        let backend = db.get_database_backend();
        let all = db
            .query_one_raw(backend.build(&rollup_select(span, range, cond)?))
            .await
            .map_err(store_error)?;
        let overall = match all {
            Some(row) => totals(&row)?,
            None => UsageTotals::default(),
        };
        let mut groups = Vec::new();
        if let Some(column) = group_by {
            let mut query = rollup_select(span, range, cond)?;
            query
                .expr_as(Expr::col(Alias::new(column)), Alias::new("group_key"))
                .group_by_col(Alias::new(column))
                .order_by_expr(Expr::cust("SUM(requests)"), Order::Desc)
                .order_by(Alias::new(column), Order::Asc)
                .limit(limit);
            for row in db
                .query_all_raw(backend.build(&query))
                .await
                .map_err(store_error)?
            {
                groups.push(UsageGroup {
                    key: text(&row, "group_key")?,
                    totals: totals(&row)?,
                });
            }
        }
        Ok((overall, groups))
    }

    async fn series_on(
        &self,
        span: Span,
        range: (Timestamp, Timestamp),
        cond: &Cond,
        interval_ms: i64,
        group_by: Option<&'static str>,
    ) -> Result<Vec<SeriesRow>, StoreError> {
        let db = self.reader.connection();
        let backend = db.get_database_backend();
        let slot = format!("bucket - (bucket % {})", interval_ms.max(1));
        let mut query = rollup_select(span, range, cond)?;
        query
            .expr_as(Expr::cust(slot.clone()), Alias::new("slot"))
            .add_group_by([Expr::cust(slot.clone())])
            .order_by_expr(Expr::cust(slot), Order::Asc);
        if let Some(column) = group_by {
            query
                .expr_as(Expr::col(Alias::new(column)), Alias::new("group_key"))
                .group_by_col(Alias::new(column));
        }
        let mut out = Vec::new();
        for row in db
            .query_all_raw(backend.build(&query))
            .await
            .map_err(store_error)?
        {
            out.push(SeriesRow {
                key: match group_by {
                    Some(_) => text(&row, "group_key")?,
                    None => None,
                },
                at: row.try_get::<i64>("", "slot").map_err(store_error)?,
                totals: totals(&row)?,
            });
        }
        Ok(out)
    }

    async fn export_on(&self, range: (Timestamp, Timestamp)) -> Result<Vec<ExportRow>, StoreError> {
        let db = self.reader.connection();
        let backend = db.get_database_backend();
        let mut query = rollup_select(Span::Hour, range, &Cond::True)?;
        for column in ["api_key_id", "user_id", "group_id"] {
            query
                .column(Alias::new(column))
                .group_by_col(Alias::new(column));
        }
        for column in ["group_id", "user_id", "api_key_id"] {
            query.order_by(Alias::new(column), Order::Asc);
        }
        let present = |v: Option<String>| v.filter(|v| !v.is_empty());
        let mut out = Vec::new();
        for row in db
            .query_all_raw(backend.build(&query))
            .await
            .map_err(store_error)?
        {
            out.push((
                present(text(&row, "api_key_id")?),
                present(text(&row, "user_id")?),
                present(text(&row, "group_id")?),
                totals(&row)?,
            ));
        }
        Ok(out)
    }

    async fn prune_on(&self, now: Timestamp, retention: &Retention) -> Result<Pruned, StoreError> {
        let db = self.writer.connection();
        let backend = db.get_database_backend();
        let day = 86_400_000_i64;
        let before = |days: u64| now.millis() - (days.min(100_000) as i64) * day;
        let mut pruned = Pruned {
            records: super::partitions::prune_log(db, before(retention.log_days), DELETE_BATCH)
                .await?,
            ..Pruned::default()
        };
        for (span, cutoff) in [
            (Span::Minute, before(retention.minute_days)),
            (Span::Hour, before(retention.hour_days)),
        ] {
            pruned.rollups += delete_in_batches(
                db,
                &format!(
                    "DELETE FROM usage_rollups WHERE span = '{}' AND bucket < {cutoff}",
                    span.as_str()
                ),
            )
            .await?;
        }
        let quota_cutoff =
            QuotaPeriod::containing(Timestamp::from_millis(before(retention.hour_days)))
                .start
                .millis();
        for sql in [
            format!(
                "DELETE FROM usage_batches WHERE applied_at < {}",
                now.millis() - BATCH_IDS_KEPT_MS
            ),
            format!("DELETE FROM usage_quota_counts WHERE period_start < {quota_cutoff}"),
        ] {
            db.execute_raw(Statement::from_string(backend, sql))
                .await
                .map_err(store_error)?;
        }
        Ok(pruned)
    }
}

/// Runs a `DELETE` over old rollups. Rollups are few (per minute and combination, not per
/// request), so one statement is short.
async fn delete_in_batches(db: &DatabaseConnection, sql: &str) -> Result<u64, StoreError> {
    let backend = db.get_database_backend();
    let done = db
        .execute_raw(Statement::from_string(backend, sql.to_owned()))
        .await
        .map_err(store_error)?;
    Ok(done.rows_affected())
}

#[async_trait]
impl UsageLog for UsageStore {
    async fn append(&self, records: &[UsageRecord]) -> Result<(), AppendError> {
        append(self.writer.connection(), self.policy, records).await
    }

    async fn quota_used(
        &self,
        subject: &str,
        period_start: Timestamp,
        recent: Timestamp,
    ) -> Result<u64, StoreError> {
        self.quota_used_on(subject, period_start, recent).await
    }

    async fn rollup_totals(
        &self,
        span: Span,
        range: (Timestamp, Timestamp),
        cond: &Cond,
        group_by: Option<&'static str>,
        limit: u64,
    ) -> Result<(UsageTotals, Vec<UsageGroup>), StoreError> {
        self.totals_on(span, range, cond, group_by, limit).await
    }

    async fn rollup_series(
        &self,
        span: Span,
        range: (Timestamp, Timestamp),
        cond: &Cond,
        interval_ms: i64,
        group_by: Option<&'static str>,
    ) -> Result<Vec<SeriesRow>, StoreError> {
        self.series_on(span, range, cond, interval_ms, group_by)
            .await
    }

    async fn rollup_export(
        &self,
        range: (Timestamp, Timestamp),
    ) -> Result<Vec<ExportRow>, StoreError> {
        self.export_on(range).await
    }

    async fn prune(&self, now: Timestamp, retention: &Retention) -> Result<Pruned, StoreError> {
        self.prune_on(now, retention).await
    }
}

/// A store as its own usage log, keeping every record (tools and tests; the server builds a
/// [`UsageStore`] with a writer connection of its own and the configured policy).
#[async_trait]
impl UsageLog for SeaStore {
    async fn append(&self, records: &[UsageRecord]) -> Result<(), AppendError> {
        append(self.connection(), LogPolicy::default(), records).await
    }

    async fn quota_used(
        &self,
        subject: &str,
        period_start: Timestamp,
        recent: Timestamp,
    ) -> Result<u64, StoreError> {
        self.as_usage()
            .quota_used(subject, period_start, recent)
            .await
    }

    async fn rollup_totals(
        &self,
        span: Span,
        range: (Timestamp, Timestamp),
        cond: &Cond,
        group_by: Option<&'static str>,
        limit: u64,
    ) -> Result<(UsageTotals, Vec<UsageGroup>), StoreError> {
        self.as_usage()
            .rollup_totals(span, range, cond, group_by, limit)
            .await
    }

    async fn rollup_series(
        &self,
        span: Span,
        range: (Timestamp, Timestamp),
        cond: &Cond,
        interval_ms: i64,
        group_by: Option<&'static str>,
    ) -> Result<Vec<SeriesRow>, StoreError> {
        self.as_usage()
            .rollup_series(span, range, cond, interval_ms, group_by)
            .await
    }

    async fn rollup_export(
        &self,
        range: (Timestamp, Timestamp),
    ) -> Result<Vec<ExportRow>, StoreError> {
        self.as_usage().rollup_export(range).await
    }

    async fn prune(&self, now: Timestamp, retention: &Retention) -> Result<Pruned, StoreError> {
        self.as_usage().prune(now, retention).await
    }
}

impl SeaStore {
    fn as_usage(&self) -> UsageStore {
        UsageStore::new(self.clone(), self.clone(), LogPolicy::default())
    }
}
