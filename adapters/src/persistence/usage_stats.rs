//! [`UsageStats`] in SQL: one aggregate query (grouped when asked), the same text on SQLite and
//! PostgreSQL. Sums are cast to BIGINT because PostgreSQL widens `SUM(bigint)` to numeric.

use async_trait::async_trait;
use sea_orm::{
    ConnectionTrait, QueryResult,
    sea_query::{Alias, Expr, Order, Query},
};
use tollgate_domain::{
    error::StoreError,
    proxy::usage::{UsageGroup, UsageStats, UsageTotals},
    query::Cond,
};

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
impl UsageStats for SeaStore {
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
