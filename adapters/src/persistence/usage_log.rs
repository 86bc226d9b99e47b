//! [`UsageLog`] in SQL. Each commit of the writer holds one batch: its rollups (aggregated in
//! memory, then `INSERT … ON CONFLICT … DO UPDATE SET requests = usage_rollups.requests +
//! excluded.requests, …`), its quota subjects' monthly counts, the request-log records the
//! [`LogPolicy`] keeps (multi-row `INSERT`s built straight from the records: no per-row model
//! conversion on this path), and the batch's id. A batch whose id is already stored is not
//! applied again, so a commit that succeeded but whose answer was lost is never counted twice.
//! Reads are aggregate queries on the rollups, the same text on SQLite and PostgreSQL; sums
//! are cast to BIGINT because PostgreSQL widens `SUM(bigint)` to numeric.

use async_trait::async_trait;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, QueryResult, SqliteTransactionMode,
    Statement, TransactionOptions, TransactionTrait, Value,
    sea_query::{Alias, Expr, Order, Query, SelectStatement},
};
use tollgate_domain::{
    Timestamp,
    error::StoreError,
    proxy::{
        limits::QuotaPeriod,
        rollups::{self, BatchId, COUNT_COLUMNS, KEY_COLUMNS, LogPolicy, Span},
        usage::{
            AppendError, ExportRow, Field, Pruned, RECORD_COLUMNS, Retention, SeriesRow,
            UsageGroup, UsageLog, UsageRecord, UsageTotals,
        },
    },
    query::Cond,
};

use super::{SeaStore, condition::condition, session::store_error};

/// Rows per `INSERT`, measured with `bench/usage-writer.sh`. SQLite: 100 rows cost 7 µs of
/// CPU per record, 30 rows 8, 300 rows 8–9.5, 1,500 rows 9–10; short statements also let the
/// database thread give its core back to the proxy more often. PostgreSQL: 100-row statements
/// took ten times as long as 1,500-row ones (1,500 × 21 values stays under its 65,535 bound
/// parameters).
fn rows_per_insert(backend: DbBackend) -> usize {
    match backend {
        DbBackend::Postgres => 1_500,
        _ => 100,
    }
}

/// Rows per transaction. A commit writes every page it changed, and with many subjects in an
/// index (1,000 keys in the old key index, or many users in the user index) that is one page
/// per subject however few rows each got: with the key index, SQLite spent 24 µs of CPU per
/// record at 1,500 rows per commit and 15 µs at 7,500 (`bench/usage-writer.sh`). 7,500 rows
/// hold SQLite's write lock well under a tenth of a second, so admin writes never wait long.
const ROWS_PER_COMMIT: usize = 7_500;

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

fn value(field: Field<'_>) -> Value {
    match field {
        Field::Text(text) => Value::from(text.to_owned()),
        Field::OptText(text) => Value::from(text.map(str::to_owned)),
        Field::Int(n) => Value::from(n),
        Field::OptInt(n) => Value::from(n),
        Field::Bool(b) => Value::from(b),
    }
}

/// `(?, ?, …), (?, ?, …)` for `rows` rows of `columns` values, numbered from `first` on
/// PostgreSQL.
fn placeholders(backend: DbBackend, rows: usize, columns: usize, sql: &mut String) {
    let mut n = 0;
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for column in 0..columns {
            if column > 0 {
                sql.push_str(", ");
            }
            n += 1;
            match backend {
                DbBackend::Postgres => {
                    sql.push('$');
                    sql.push_str(&n.to_string());
                }
                _ => sql.push('?'),
            }
        }
        sql.push(')');
    }
}

/// `INSERT INTO usage_records (…) VALUES (…), …` for `rows` rows. Written out directly: the
/// statement is the same for every full chunk, so the driver prepares it once per connection
/// and reuses it, and building an expression tree per value cost more than the insert.
fn insert_sql(backend: DbBackend, rows: usize) -> String {
    let mut sql = String::with_capacity(64 + rows * RECORD_COLUMNS.len() * 5);
    sql.push_str("INSERT INTO usage_records (");
    sql.push_str(&RECORD_COLUMNS.join(", "));
    sql.push_str(") VALUES ");
    placeholders(backend, rows, RECORD_COLUMNS.len(), &mut sql);
    sql
}

/// The rollup upsert for `rows` rows.
fn rollup_sql(backend: DbBackend, rows: usize) -> String {
    let mut sql = String::from("INSERT INTO usage_rollups (");
    sql.push_str(&KEY_COLUMNS.join(", "));
    sql.push_str(", ");
    sql.push_str(&COUNT_COLUMNS.join(", "));
    sql.push_str(") VALUES ");
    placeholders(
        backend,
        rows,
        KEY_COLUMNS.len() + COUNT_COLUMNS.len(),
        &mut sql,
    );
    sql.push_str(" ON CONFLICT (");
    sql.push_str(&KEY_COLUMNS.join(", "));
    sql.push_str(") DO UPDATE SET ");
    let sets: Vec<String> = COUNT_COLUMNS
        .iter()
        .map(|c| format!("{c} = usage_rollups.{c} + excluded.{c}"))
        .collect();
    sql.push_str(&sets.join(", "));
    sql
}

fn quota_sql(backend: DbBackend, rows: usize) -> String {
    let mut sql =
        String::from("INSERT INTO usage_quota_counts (subject, period_start, counted) VALUES ");
    placeholders(backend, rows, 3, &mut sql);
    sql.push_str(
        " ON CONFLICT (subject, period_start) DO UPDATE SET counted = usage_quota_counts.counted + excluded.counted",
    );
    sql
}

/// `?` or `$n`.
fn arg(backend: DbBackend, n: usize) -> String {
    match backend {
        DbBackend::Postgres => format!("${n}"),
        _ => "?".to_owned(),
    }
}

/// Appends `records` in commits of [`ROWS_PER_COMMIT`]; see [`UsageLog::append`].
async fn append(
    db: &DatabaseConnection,
    policy: LogPolicy,
    records: &[UsageRecord],
) -> Result<(), AppendError> {
    let backend = db.get_database_backend();
    let mut written = 0;
    for commit in records.chunks(ROWS_PER_COMMIT) {
        apply(db, backend, policy, commit)
            .await
            .map_err(|e| AppendError {
                written,
                source: store_error(e),
            })?;
        written += commit.len();
    }
    Ok(())
}

/// One batch in one transaction.
async fn apply(
    db: &DatabaseConnection,
    backend: DbBackend,
    policy: LogPolicy,
    mut batch: &[UsageRecord],
) -> Result<(), DbErr> {
    let options = TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    };
    let tx = db.begin_with_options(options).await?;
    let Some(id) = BatchId::of(batch) else {
        return tx.commit().await;
    };
    let applied = tx
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "SELECT last_id, records FROM usage_batches WHERE id = {}",
                arg(backend, 1)
            ),
            [Value::from(id.first.clone())],
        ))
        .await?;
    if let Some(row) = applied {
        let earlier = BatchId {
            first: id.first.clone(),
            last: row.try_get("", "last_id")?,
            records: usize::try_from(row.try_get::<i64>("", "records")?).unwrap_or(usize::MAX),
        };
        if earlier.is_prefix_of(batch) {
            // Stored before (its commit's answer was lost): only what follows is new.
            batch = &batch[earlier.records..];
            if batch.is_empty() {
                return tx.commit().await;
            }
        }
    }
    let id = BatchId::of(batch).unwrap_or(id);
    let aggregate = rollups::aggregate(batch);
    let per_row = KEY_COLUMNS.len() + COUNT_COLUMNS.len();
    for chunk in aggregate.rollups.chunks(rows_per_insert(backend)) {
        let mut values = Vec::with_capacity(chunk.len() * per_row);
        for (key, counts) in chunk {
            values.extend([
                Value::from(key.span.as_str()),
                Value::from(key.bucket),
                Value::from(key.api_key_id.clone()),
                Value::from(key.user_id.clone()),
                Value::from(key.group_id.clone()),
                Value::from(key.route_id.clone()),
                Value::from(key.status_class.clone()),
            ]);
            values.extend(counts.values().map(Value::from));
        }
        tx.execute_raw(Statement::from_sql_and_values(
            backend,
            rollup_sql(backend, chunk.len()),
            values,
        ))
        .await?;
    }
    for chunk in aggregate.quotas.chunks(rows_per_insert(backend)) {
        let mut values = Vec::with_capacity(chunk.len() * 3);
        for count in chunk {
            values.extend([
                Value::from(count.subject.clone()),
                Value::from(count.period_start),
                Value::from(count.counted),
            ]);
        }
        tx.execute_raw(Statement::from_sql_and_values(
            backend,
            quota_sql(backend, chunk.len()),
            values,
        ))
        .await?;
    }
    let kept: Vec<&UsageRecord> = batch.iter().filter(|r| policy.keeps(r)).collect();
    for chunk in kept.chunks(rows_per_insert(backend)) {
        let mut values = Vec::with_capacity(chunk.len() * RECORD_COLUMNS.len());
        for record in chunk {
            values.extend(record.fields().into_iter().map(value));
        }
        tx.execute_raw(Statement::from_sql_and_values(
            backend,
            insert_sql(backend, chunk.len()),
            values,
        ))
        .await?;
    }
    let applied_at = batch.iter().map(|r| r.created_at).max().unwrap_or(0);
    tx.execute_raw(Statement::from_sql_and_values(
        backend,
        format!(
            "INSERT INTO usage_batches (id, last_id, records, applied_at) VALUES ({}, {}, {}, {}) \
             ON CONFLICT (id) DO UPDATE SET last_id = excluded.last_id, records = excluded.records, \
             applied_at = excluded.applied_at",
            arg(backend, 1),
            arg(backend, 2),
            arg(backend, 3),
            arg(backend, 4)
        ),
        [
            Value::from(id.first),
            Value::from(id.last),
            Value::from(id.records as i64),
            Value::from(applied_at),
        ],
    ))
    .await?;
    tx.commit().await
}

/// The summed columns as the API shows them.
const AGGREGATES: [(&str, &str); 7] = [
    ("requests", "COALESCE(CAST(SUM(requests) AS BIGINT), 0)"),
    ("errors", "COALESCE(CAST(SUM(errors) AS BIGINT), 0)"),
    ("counted", "COALESCE(CAST(SUM(counted) AS BIGINT), 0)"),
    ("overage", "COALESCE(CAST(SUM(overage) AS BIGINT), 0)"),
    (
        "request_bytes",
        "COALESCE(CAST(SUM(request_bytes) AS BIGINT), 0)",
    ),
    (
        "response_bytes",
        "COALESCE(CAST(SUM(response_bytes) AS BIGINT), 0)",
    ),
    (
        "avg_duration_ms",
        "CASE WHEN SUM(requests) > 0 THEN CAST(ROUND(SUM(duration_ms) * 1.0 / SUM(requests)) AS BIGINT) ELSE 0 END",
    ),
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
    for (name, sql) in AGGREGATES {
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
