//! `GET /api/usage/summary` (proxy.md §7) and `POST /api/api-keys/{id}/rotate`.

use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use serde_json::{Map, Value, json};
use tollgate_domain::{
    query::{CmpOp, Cond},
    resources::{api_keys, usage_records},
    service::ResourceRules,
};

use super::context::{AdminState, read_body};
use crate::http::{
    error::ApiError,
    jsonapi::{
        media,
        query::{self, Families},
        render,
    },
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

/// The optional rotation document: `{"data":{"type":"api_key_rotations","attributes":
/// {"grace_seconds":3600}}}`.
fn grace_seconds(body: &[u8]) -> Result<i64, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(api_keys::DEFAULT_ROTATION_GRACE_SECONDS);
    }
    let doc: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::new("INVALID_JSON", format!("the body is not JSON: {e}")))?;
    let data = doc
        .get("data")
        .and_then(Value::as_object)
        .ok_or_else(|| ApiError::pointer("INVALID_DOCUMENT", "/data", "data must be an object"))?;
    match data.get("type").and_then(Value::as_str) {
        Some("api_key_rotations") => {}
        Some(other) => {
            return Err(ApiError::pointer(
                "TYPE_MISMATCH",
                "/data/type",
                format!("expected api_key_rotations, got {other}"),
            ));
        }
        None => {
            return Err(ApiError::pointer(
                "INVALID_DOCUMENT",
                "/data/type",
                "data.type is required",
            ));
        }
    }
    if let Some(member) = data
        .keys()
        .find(|k| !matches!(k.as_str(), "type" | "attributes"))
    {
        return Err(ApiError::pointer(
            "INVALID_DOCUMENT",
            format!("/data/{member}"),
            format!("{member} is not allowed here"),
        ));
    }
    let Some(attributes) = data.get("attributes") else {
        return Ok(api_keys::DEFAULT_ROTATION_GRACE_SECONDS);
    };
    let attributes = attributes.as_object().ok_or_else(|| {
        ApiError::pointer(
            "INVALID_DOCUMENT",
            "/data/attributes",
            "attributes must be an object",
        )
    })?;
    if let Some(unknown) = attributes.keys().find(|k| *k != "grace_seconds") {
        return Err(ApiError::pointer(
            "UNKNOWN_ATTRIBUTE",
            format!("/data/attributes/{unknown}"),
            format!("{unknown} is not an attribute of api_key_rotations"),
        ));
    }
    match attributes.get("grace_seconds") {
        None => Ok(api_keys::DEFAULT_ROTATION_GRACE_SECONDS),
        Some(value) => value
            .as_i64()
            .filter(|g| (0..=api_keys::MAX_ROTATION_GRACE_SECONDS).contains(g))
            .ok_or_else(|| {
                ApiError::pointer(
                    "VALIDATION_ERROR",
                    "/data/attributes/grace_seconds",
                    "grace_seconds must be an integer from 0 to 604800",
                )
            }),
    }
}

/// `POST /api/api-keys/{id}/rotate`.
pub async fn rotate_api_key(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, ApiError> {
    let rules = &api_keys::ApiKeys;
    let schema = rules.schema();
    let actor = state.authenticate(&req).await?;
    media::check_accept(&req)?;
    let body = read_body(&req, body).await?;
    let grace = grace_seconds(&body)?;
    let params = query::parse(
        req.query_string(),
        schema,
        Families::Single,
        actor.role,
        state.service.now(),
    )?;
    let id = req.match_info().get("id").unwrap_or_default().to_owned();
    let key_id = id.clone();
    let (row, secret) = state
        .service
        .transact(&actor, move |ctx| {
            Box::pin(async move { api_keys::rotate(ctx, &key_id, grace).await })
        })
        .await?;
    let previous_until = row
        .get("previous_key_expires_at")
        .and_then(Value::as_i64)
        .map(|ms| tollgate_domain::Timestamp::from_millis(ms).to_string());
    let mut doc = super::actions::api_key_document(&state, &actor, &params, &id).await?;
    doc["data"]["meta"] = json!({"key": secret, "previous_key_expires_at": previous_until});
    Ok(render::json_api(StatusCode::OK, doc))
}
