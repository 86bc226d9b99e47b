//! `GET /api/usage/summary` (proxy.md §7): totals of the request log, aggregated in the database.

use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use serde_json::{Map, Value, json};
use tollgate_domain::{
    query::{CmpOp, Cond},
    resources::usage_records,
    service::ResourceRules,
};

use super::context::AdminState;
use crate::http::{
    error::ApiError,
    jsonapi::{media, render},
};

/// Filters the summary accepts besides `filter[period]`.
pub(super) const SUMMARY_FILTERS: [&str; 4] = ["user", "api_key", "route", "group"];

pub async fn summary(
    req: HttpRequest,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, ApiError> {
    let actor = state.authenticate(&req).await?;
    media::check_accept(&req)?;
    let now = state.service.now();
    let schema = usage_records::UsageRecords.schema();
    let mut period = None;
    let mut group_by = None;
    let mut cond = usage_records::UsageRecords.visibility(&actor);
    for (name, value) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
        let name = name.into_owned();
        if name == "filter[period]" {
            period = Some(value.into_owned());
        } else if name == "group_by" {
            group_by = Some(value.into_owned());
        } else if let Some(filter) = name
            .strip_prefix("filter[")
            .and_then(|f| f.strip_suffix(']'))
        {
            if !SUMMARY_FILTERS.contains(&filter) {
                return Err(ApiError::parameter(
                    "INVALID_FILTER",
                    name.clone(),
                    format!(
                        "the summary filters by period, {}",
                        SUMMARY_FILTERS.join(", ")
                    ),
                ));
            }
            let values: Vec<String> = value.split(',').map(str::to_owned).collect();
            let filtered = schema
                .filter(filter, &values, now)
                .map_err(|detail| ApiError::parameter("INVALID_FILTER", name.clone(), detail))?;
            cond = cond.and(filtered);
        } else {
            return Err(ApiError::parameter(
                "INVALID_QUERY_PARAMETER",
                name,
                "the summary takes filter[period], group_by and filter[user|api_key|route|group]",
            ));
        }
    }
    let period = period.unwrap_or_else(|| "24h".to_owned());
    let from = tollgate_domain::proxy::usage::period_start(&period, now).ok_or_else(|| {
        ApiError::parameter(
            "INVALID_FILTER",
            "filter[period]",
            "period is one of 1h, 24h, 7d, month",
        )
    })?;
    let grouping = match group_by.as_deref() {
        None => None,
        Some(g) => Some(
            tollgate_domain::proxy::usage::group_column(g).ok_or_else(|| {
                ApiError::parameter(
                    "INVALID_QUERY_PARAMETER",
                    "group_by",
                    "group_by is one of key, user, route",
                )
            })?,
        ),
    };
    cond = cond
        .and(Cond::cmp("created_at", CmpOp::Ge, from.millis()))
        .and(Cond::cmp("created_at", CmpOp::Le, now.millis()));
    let (totals, groups) = state
        .usage
        .summarize(&cond, grouping.map(|(column, _)| column))
        .await
        .map_err(ApiError::internal)?;
    let mut meta = Map::new();
    meta.insert("period".into(), json!(period));
    meta.insert("from".into(), json!(from.to_string()));
    meta.insert("to".into(), json!(now.to_string()));
    if let (Some(name), Some((_, type_name))) = (&group_by, grouping) {
        meta.insert("group_by".into(), json!(name));
        meta.insert("totals".into(), json!(totals));
        let items: Vec<Value> = groups
            .into_iter()
            .map(|group| {
                let mut item = json!(group.totals);
                item["type"] = json!(type_name);
                item["id"] = json!(group.key);
                item
            })
            .collect();
        meta.insert("groups".into(), Value::Array(items));
    } else {
        meta.insert("totals".into(), json!(totals));
    }
    Ok(render::json_api(
        StatusCode::OK,
        json!({"jsonapi": {"version": "1.1"}, "meta": meta}),
    ))
}
