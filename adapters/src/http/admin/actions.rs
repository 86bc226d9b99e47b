//! Action endpoints: key revocation and rotation, group membership edits.

use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use serde_json::{Value, json};
use tollgate_domain::{
    Actor,
    resources::{
        api_keys,
        group_members::{self, Edit},
        groups,
    },
    service::{RelInput, ResourceRules},
};

use super::{context::AdminState, relationships, resources::path_segment};
use crate::http::{
    error::{ApiError, ErrorCode},
    jsonapi::{
        document::{self, Document},
        query::{Families, Params},
        render,
    },
};

/// `POST /api/api-keys/{id}/revoke`: idempotent; no body needed.
pub async fn revoke_api_key(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, ApiError> {
    let admitted = state
        .intake(&req)
        .body(body)
        .query(api_keys::ApiKeys.schema(), Families::Single)
        .admit()
        .await?;
    let id = path_segment(&req, "id");
    let key_id = id.clone();
    state
        .service
        .transact(&admitted.actor, move |ctx| {
            Box::pin(async move { api_keys::revoke(ctx, &key_id).await })
        })
        .await?;
    let doc = api_key_document(&state, &admitted.actor, &admitted.query, &id).await?;
    Ok(render::json_api(StatusCode::OK, doc))
}

/// The key as the caller now sees it: the answer of the key actions (revoke, rotate).
async fn api_key_document(
    state: &AdminState,
    actor: &Actor,
    params: &Params,
    id: &str,
) -> Result<Value, ApiError> {
    let rules = &api_keys::ApiKeys;
    let row = state.service.get(actor, rules, id).await?;
    let href = render::resource_path(rules.schema(), id);
    render::one_document(
        &state.service,
        actor,
        params,
        rules.schema(),
        row,
        None,
        href,
    )
    .await
}

pub async fn add_members(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, ApiError> {
    edit_members(req, body, state, Edit::Add).await
}

pub async fn remove_members(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, ApiError> {
    edit_members(req, body, state, Edit::Remove).await
}

/// `POST`/`DELETE /api/groups/{id}/relationships/members`: add or remove the listed users
/// (present/absent ones ignored), then answer with the full new linkage.
async fn edit_members(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AdminState>,
    edit: Edit,
) -> Result<HttpResponse, ApiError> {
    let rules: &'static dyn ResourceRules = &groups::Groups;
    if relationships::relationship(rules, &req)?.name != "members" {
        return Err(ApiError::method_not_allowed("GET, PATCH"));
    }
    let admitted = state
        .intake(&req)
        .body(body)
        .query(rules.schema(), Families::Nothing)
        .admit()
        .await?;
    let RelInput::Many(listed) = document::parse_linkage_document(&admitted.body)? else {
        return Err(ApiError::invalid_document(
            "/data",
            "data must be an array of resource identifiers",
        ));
    };
    let id = path_segment(&req, "id");
    let links = group_members::edit_members(&state.service, &admitted.actor, &id, listed, edit)
        .await
        .map_err(|e| ApiError::from(e).repoint_relationship())?;
    let related = format!("{}/members", render::resource_path(rules.schema(), &id));
    let data: Vec<Value> = links
        .iter()
        .map(|l| render::identifier("users", l))
        .collect();
    let doc = Document::new()
        .links(req.path(), Some(related))
        .member("data", data)
        .build();
    Ok(render::json_api(StatusCode::OK, doc))
}

/// The optional rotation document: `{"data":{"type":"api_key_rotations","attributes":
/// {"grace_seconds":3600}}}`.
fn grace_seconds(body: &[u8]) -> Result<i64, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(api_keys::DEFAULT_ROTATION_GRACE_SECONDS);
    }
    let doc: Value = serde_json::from_slice(body).map_err(ApiError::invalid_json)?;
    let data = doc
        .get("data")
        .and_then(Value::as_object)
        .ok_or_else(|| ApiError::invalid_document("/data", "data must be an object"))?;
    match data.get("type").and_then(Value::as_str) {
        Some("api_key_rotations") => {}
        Some(other) => {
            return Err(ApiError::type_mismatch(
                "/data/type",
                format!("expected api_key_rotations, got {other}"),
            ));
        }
        None => {
            return Err(ApiError::invalid_document(
                "/data/type",
                "data.type is required",
            ));
        }
    }
    if let Some(member) = data
        .keys()
        .find(|k| !matches!(k.as_str(), "type" | "attributes"))
    {
        return Err(ApiError::invalid_document(
            format!("/data/{member}"),
            format!("{member} is not allowed here"),
        ));
    }
    let Some(attributes) = data.get("attributes") else {
        return Ok(api_keys::DEFAULT_ROTATION_GRACE_SECONDS);
    };
    let attributes = attributes.as_object().ok_or_else(|| {
        ApiError::invalid_document("/data/attributes", "attributes must be an object")
    })?;
    if let Some(unknown) = attributes.keys().find(|k| *k != "grace_seconds") {
        return Err(ApiError::pointer(
            ErrorCode::UnknownAttribute,
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
                    ErrorCode::ValidationError,
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
    let admitted = state
        .intake(&req)
        .body(body)
        .query(api_keys::ApiKeys.schema(), Families::Single)
        .admit()
        .await?;
    let grace = grace_seconds(&admitted.body)?;
    let id = path_segment(&req, "id");
    let key_id = id.clone();
    let (row, secret) = state
        .service
        .transact(&admitted.actor, move |ctx| {
            Box::pin(async move { api_keys::rotate(ctx, &key_id, grace).await })
        })
        .await?;
    let previous_until = row
        .get("previous_key_expires_at")
        .and_then(Value::as_i64)
        .map(|ms| tollgate_domain::Timestamp::from_millis(ms).to_string());
    let mut doc = api_key_document(&state, &admitted.actor, &admitted.query, &id).await?;
    doc["data"]["meta"] = json!({"key": secret, "previous_key_expires_at": previous_until});
    Ok(render::json_api(StatusCode::OK, doc))
}
