//! [`UsageLog`] in SQL. Appends are multi-row `INSERT`s built straight from the records (no
//! per-row model conversion: this runs for every proxied request). The summary is one
//! aggregate query (grouped when asked), the same text on SQLite and PostgreSQL; sums are cast
//! to BIGINT because PostgreSQL widens `SUM(bigint)` to numeric.

use async_trait::async_trait;
use sea_orm::{
    ConnectionTrait, DbBackend, QueryResult, SqliteTransactionMode, Statement, TransactionOptions,
    TransactionTrait, Value,
    sea_query::{Alias, Expr, Order, Query},
};
use tollgate_domain::{
    error::StoreError,
    proxy::usage::{AppendError, UsageGroup, UsageLog, UsageRecord, UsageTotals},
    query::Cond,
};

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

const COLUMNS: [&str; 21] = [
    "id",
    "request_id",
    "created_at",
    "updated_at",
    "method",
    "host",
    "path",
    "status_code",
    "error_code",
    "duration_ms",
    "upstream_duration_ms",
    "request_bytes",
    "response_bytes",
    "client_ip",
    "user_agent",
    "counted",
    "overage",
    "route_id",
    "api_key_id",
    "user_id",
    "group_id",
];

/// The record's values in [`COLUMNS`] order.
fn push_values(r: &UsageRecord, out: &mut Vec<Value>) {
    let int = |v: u64| Value::from(v.min(i64::MAX as u64) as i64);
    out.extend([
        Value::from(r.id.clone()),
        Value::from(r.request_id.clone()),
        Value::from(r.created_at),
        Value::from(r.created_at),
        Value::from(r.method.clone()),
        Value::from(r.host.clone()),
        Value::from(r.path.clone()),
        int(u64::from(r.status_code)),
        Value::from(r.error_code.map(str::to_owned)),
        int(r.duration_ms),
        Value::from(
            r.upstream_duration_ms
                .map(|v| v.min(i64::MAX as u64) as i64),
        ),
        int(r.request_bytes),
        int(r.response_bytes),
        Value::from(r.client_ip.clone()),
        Value::from(r.user_agent.clone()),
        Value::from(r.counted),
        Value::from(r.overage),
        Value::from(r.route_id.clone()),
        Value::from(r.api_key_id.clone()),
        Value::from(r.user_id.clone()),
        Value::from(r.group_id.clone()),
    ]);
}

/// `INSERT INTO usage_records (…) VALUES (…), …` for `rows` rows, in the backend's placeholder
/// style. Written out directly: the statement is the same for every full chunk (so the driver
/// reuses its prepared form), and building an expression tree per value cost more than the
/// insert.
fn insert_sql(backend: DbBackend, rows: usize) -> String {
    let mut sql = String::with_capacity(64 + rows * COLUMNS.len() * 5);
    sql.push_str("INSERT INTO usage_records (");
    sql.push_str(&COLUMNS.join(", "));
    sql.push_str(") VALUES ");
    let mut n = 0;
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for column in 0..COLUMNS.len() {
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
    sql
}

use super::{SeaStore, condition::condition, session::store_error};

const AGGREGATES: [(&str, &str); 7] = [
    ("requests", "COUNT(*)"),
    (
        "errors",
        "COALESCE(CAST(SUM(CASE WHEN status_code >= 400 THEN 1 ELSE 0 END) AS BIGINT), 0)",
    ),
    (
        "counted",
        "COALESCE(CAST(SUM(CASE WHEN counted THEN 1 ELSE 0 END) AS BIGINT), 0)",
    ),
    (
        "overage",
        "COALESCE(CAST(SUM(CASE WHEN overage THEN 1 ELSE 0 END) AS BIGINT), 0)",
    ),
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
        "COALESCE(CAST(ROUND(AVG(duration_ms)) AS BIGINT), 0)",
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

#[async_trait]
impl UsageLog for SeaStore {
    async fn append(&self, records: &[UsageRecord]) -> Result<(), AppendError> {
        let db = self.connection();
        let backend = db.get_database_backend();
        let mut written = 0;
        for commit in records.chunks(ROWS_PER_COMMIT) {
            let failed = |e| AppendError {
                written,
                source: store_error(e),
            };
            let options = TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            };
            let tx = db.begin_with_options(options).await.map_err(failed)?;
            for chunk in commit.chunks(rows_per_insert(backend)) {
                let mut values = Vec::with_capacity(chunk.len() * COLUMNS.len());
                for record in chunk {
                    push_values(record, &mut values);
                }
                let sql = insert_sql(backend, chunk.len());
                let insert = Statement::from_sql_and_values(backend, sql, values);
                tx.execute_raw(insert).await.map_err(failed)?;
            }
            tx.commit().await.map_err(failed)?;
            written += commit.len();
        }
        Ok(())
    }

    async fn summarize(
        &self,
        cond: &Cond,
        group_by: Option<&'static str>,
    ) -> Result<(UsageTotals, Vec<UsageGroup>), StoreError> {
        let db = self.connection();
        let backend = db.get_database_backend();
        let select = |group: Option<&'static str>| -> Result<_, StoreError> {
            let mut query = Query::select();
            query.from(Alias::new("usage_records"));
            for (name, sql) in AGGREGATES {
                query.expr_as(Expr::cust(sql), Alias::new(name));
            }
            query.cond_where(condition(cond)?);
            if let Some(column) = group {
                query
                    .expr_as(Expr::col(Alias::new(column)), Alias::new("group_key"))
                    .group_by_col(Alias::new(column))
                    .order_by_expr(Expr::cust("COUNT(*)"), Order::Desc)
                    .order_by(Alias::new(column), Order::Asc)
                    .limit(100);
            }
            Ok(backend.build(&query))
        };
        let all = db.query_one_raw(select(None)?).await.map_err(store_error)?;
        let overall = match all {
            Some(row) => totals(&row)?,
            None => UsageTotals::default(),
        };
        let mut groups = Vec::new();
        if let Some(column) = group_by {
            for row in db
                .query_all_raw(select(Some(column))?)
                .await
                .map_err(store_error)?
            {
                groups.push(UsageGroup {
                    key: row
                        .try_get::<Option<String>>("", "group_key")
                        .map_err(store_error)?,
                    totals: totals(&row)?,
                });
            }
        }
        Ok((overall, groups))
    }
}
