//! [`UsageLog`] in SQL. Appends are multi-row `INSERT`s built straight from the records (no
//! per-row model conversion: this runs for every proxied request). The summary is one
//! aggregate query (grouped when asked), the same text on SQLite and PostgreSQL; sums are cast
//! to BIGINT because PostgreSQL widens `SUM(bigint)` to numeric.

use async_trait::async_trait;
use sea_orm::{
    ConnectionTrait, QueryResult, TransactionTrait,
    sea_query::{Alias, Expr, Order, Query},
};
use tollgate_domain::{
    error::StoreError,
    proxy::usage::{UsageGroup, UsageLog, UsageRecord, UsageTotals},
    query::Cond,
};

/// Rows per `INSERT` (21 columns: well under SQLite's 32,766 bound parameters).
const ROWS_PER_INSERT: usize = 500;

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

fn values(r: &UsageRecord) -> [Expr; 21] {
    let int = |v: u64| Expr::val(v.min(i64::MAX as u64) as i64);
    let text = |v: &str| Expr::val(v.to_owned());
    let opt = |v: &Option<String>| Expr::val(v.clone());
    [
        text(&r.id),
        text(&r.request_id),
        Expr::val(r.created_at),
        Expr::val(r.created_at),
        text(&r.method),
        text(&r.host),
        text(&r.path),
        int(u64::from(r.status_code)),
        Expr::val(r.error_code.map(str::to_owned)),
        int(r.duration_ms),
        Expr::val(r.upstream_duration_ms.map(|v| v as i64)),
        int(r.request_bytes),
        int(r.response_bytes),
        text(&r.client_ip),
        text(&r.user_agent),
        Expr::val(r.counted),
        Expr::val(r.overage),
        opt(&r.route_id),
        opt(&r.api_key_id),
        opt(&r.user_id),
        opt(&r.group_id),
    ]
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
    async fn append(&self, records: &[UsageRecord]) -> Result<(), StoreError> {
        let db = self.connection();
        let backend = db.get_database_backend();
        let tx = db.begin().await.map_err(store_error)?;
        for chunk in records.chunks(ROWS_PER_INSERT) {
            let mut insert = Query::insert();
            insert
                .into_table(Alias::new("usage_records"))
                .columns(COLUMNS.map(Alias::new));
            for record in chunk {
                insert
                    .values(values(record))
                    .map_err(|e| StoreError::Other(e.to_string()))?;
            }
            tx.execute_raw(backend.build(&insert))
                .await
                .map_err(store_error)?;
        }
        tx.commit().await.map_err(store_error)
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
