//! `GET /api/usage/summary`, `GET /api/usage/series` and `GET /api/usage/export`: parse the
//! query, call the domain's use case (`tollgate_domain::proxy::usage_report`), render. Every
//! answer comes from the rollups.

use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use serde_json::{Map, Value, json};
use tollgate_domain::proxy::{
    usage::UsageTotals,
    usage_report::{self, EXPORT_COLUMNS, ExportLine, Point, Series, Summary, UsageParams},
};

use super::context::AdminState;
use crate::http::{
    error::ApiError,
    jsonapi::{document::Document, media, render},
};

/// The query string as [`UsageParams`]; `interval` says whether `filter[interval]` is taken.
fn params(raw: &str, interval: bool) -> Result<UsageParams, ApiError> {
    let mut params = UsageParams::default();
    for (name, value) in url::form_urlencoded::parse(raw.as_bytes()) {
        let value = value.into_owned();
        match name.as_ref() {
            "filter[period]" => params.period = Some(value),
            "filter[interval]" if interval => params.interval = Some(value),
            "group_by" => params.group_by = Some(value),
            other => match other
                .strip_prefix("filter[")
                .and_then(|f| f.strip_suffix(']'))
            {
                Some(filter) => params.filters.push((filter.to_owned(), value)),
                None => {
                    return Err(ApiError::invalid_query_parameter(
                        other.to_owned(),
                        if interval {
                            "the series takes filter[period], filter[interval], group_by and filter[user|api_key|route|group]"
                        } else {
                            "the summary takes filter[period], group_by and filter[user|api_key|route|group]"
                        },
                    ));
                }
            },
        }
    }
    Ok(params)
}

fn document(meta: Map<String, Value>) -> HttpResponse {
    render::json_api(StatusCode::OK, Document::new().member("meta", meta).build())
}

pub async fn summary(
    req: HttpRequest,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, ApiError> {
    let admitted = state
        .intake(&req)
        .query_with(|raw, _, _| params(raw, false))
        .admit()
        .await?;
    let now = state.service.now();
    let summary =
        usage_report::summary(state.usage.as_ref(), &admitted.actor, now, &admitted.query).await?;
    Ok(document(summary_meta(summary)))
}

fn summary_meta(summary: Summary) -> Map<String, Value> {
    let mut meta = Map::new();
    meta.insert("period".into(), json!(summary.period));
    meta.insert("from".into(), json!(summary.from.to_string()));
    meta.insert("to".into(), json!(summary.to.to_string()));
    if let Some((name, type_name)) = &summary.group_by {
        meta.insert("group_by".into(), json!(name));
        meta.insert("totals".into(), json!(summary.totals));
        let items: Vec<Value> = summary
            .groups
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
        meta.insert("totals".into(), json!(summary.totals));
    }
    meta
}

/// `2026-12-07T10:00:00Z`: buckets start on whole minutes.
fn bucket_time(point: &Point) -> String {
    let text = point.at.to_string();
    match text.strip_suffix(".000Z") {
        Some(whole) => format!("{whole}Z"),
        None => text,
    }
}

fn points(points: &[Point]) -> Value {
    Value::Array(
        points
            .iter()
            .map(|p| {
                let UsageTotals {
                    requests,
                    errors,
                    counted,
                    overage,
                    request_bytes,
                    response_bytes,
                    avg_duration_ms,
                } = p.totals;
                json!({
                    "at": bucket_time(p),
                    "requests": requests,
                    "errors": errors,
                    "counted": counted,
                    "overage": overage,
                    "request_bytes": request_bytes,
                    "response_bytes": response_bytes,
                    "avg_duration_ms": avg_duration_ms,
                })
            })
            .collect(),
    )
}

pub async fn series(
    req: HttpRequest,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, ApiError> {
    let admitted = state
        .intake(&req)
        .query_with(|raw, _, _| params(raw, true))
        .admit()
        .await?;
    let now = state.service.now();
    let series =
        usage_report::series(state.usage.as_ref(), &admitted.actor, now, &admitted.query).await?;
    Ok(document(series_meta(&series)))
}

fn series_meta(series: &Series) -> Map<String, Value> {
    let mut meta = Map::new();
    meta.insert("period".into(), json!(series.period));
    meta.insert("interval".into(), json!(series.interval));
    meta.insert("from".into(), json!(series.from.to_string()));
    meta.insert("to".into(), json!(series.to.to_string()));
    meta.insert("points".into(), points(&series.points));
    if let Some((name, type_name)) = &series.group_by {
        meta.insert("group_by".into(), json!(name));
        let items: Vec<Value> = series
            .series
            .iter()
            .map(|(key, p)| json!({"type": type_name, "id": key, "points": points(p)}))
            .collect();
        meta.insert("series".into(), Value::Array(items));
    }
    meta
}

/// The export as CSV: a header of [`EXPORT_COLUMNS`], then one line per row (the CLI prints
/// the same text).
pub fn export_csv(lines: &[ExportLine]) -> String {
    let mut out = EXPORT_COLUMNS.join(",");
    out.push('\n');
    for line in lines {
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        // Ids and the month are `[A-Za-z0-9_-]`: nothing to quote.
        let fields = [
            line.month.clone(),
            line.subject_type.to_owned(),
            opt(&line.subject_id),
            opt(&line.api_key_id),
            opt(&line.user_id),
            opt(&line.group_id),
            line.requests.to_string(),
            line.counted.to_string(),
            line.overage.to_string(),
            line.errors.to_string(),
            line.request_bytes.to_string(),
            line.response_bytes.to_string(),
        ];
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

/// The export as JSON: `{"month": …, "columns": […], "rows": [{…}, …]}` (the CLI prints the
/// same object; the admin API puts it in `meta`).
pub fn export_json(month: &str, lines: &[ExportLine]) -> Value {
    json!({"month": month, "columns": EXPORT_COLUMNS, "rows": lines})
}

/// The export's query: `filter[month]` (checked once present) and `format` (`json` unless
/// `csv`).
fn export_params(raw: &str) -> Result<(Option<String>, String), ApiError> {
    let mut month = None;
    let mut format = "json".to_owned();
    for (name, value) in url::form_urlencoded::parse(raw.as_bytes()) {
        match name.as_ref() {
            "filter[month]" => month = Some(value.into_owned()),
            "format" if matches!(value.as_ref(), "csv" | "json") => format = value.into_owned(),
            "format" => {
                return Err(ApiError::invalid_query_parameter(
                    "format",
                    "format is csv or json",
                ));
            }
            other => {
                return Err(ApiError::invalid_query_parameter(
                    other.to_owned(),
                    "the export takes filter[month] (YYYY-MM) and format (csv or json)",
                ));
            }
        }
    }
    Ok((month, format))
}

/// `GET /api/usage/export?filter[month]=2026-11&format=csv|json` (administrators).
pub async fn export(
    req: HttpRequest,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, ApiError> {
    // `Accept` matters only for the JSON:API answer, so it is checked once the format is known.
    let admitted = state
        .intake(&req)
        .any_accept()
        .query_with(|raw, _, _| export_params(raw))
        .admit()
        .await?;
    let (month, format) = admitted.query;
    if format == "json" {
        media::check_accept(&req)?;
    }
    let Some(month) = month else {
        return Err(ApiError::invalid_filter(
            "filter[month]",
            "filter[month] (YYYY-MM) is required",
        ));
    };
    let lines = usage_report::export(state.usage.as_ref(), &admitted.actor, &month).await?;
    if format == "csv" {
        return Ok(HttpResponse::Ok()
            .insert_header(("Content-Type", "text/csv; charset=utf-8"))
            .body(export_csv(&lines)));
    }
    let meta = match export_json(&month, &lines) {
        Value::Object(body) => body,
        _ => Map::new(),
    };
    Ok(document(meta))
}
