//! Action endpoints: key revocation and rotation, group membership edits.

use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use serde_json::{Value, json};
use tollgate_domain::{
    DomainError,
    resources::{api_keys, groups},
    service::{Identifier, Link, RelInput, ResourceRules, WriteInput},
};

use super::{
    context::{AdminState, read_body},
    relationships,
};
use crate::http::{
    error::{ApiError, ErrorCode},
    jsonapi::{
        document::{self, Document},
        media,
        query::{self, Families},
        render,
    },
};

/// `POST /api/api-keys/{id}/revoke`: idempotent; no body needed.
pub async fn revoke_api_key(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, ApiError> {
    let rules = &api_keys::ApiKeys;
    let schema = rules.schema();
    let actor = state.authenticate(&req).await?;
    media::check_accept(&req)?;
    read_body(&req, body).await?;
    let params = query::parse(
        req.query_string(),
        schema,
        Families::Single,
        actor.role,
        state.service.now(),
    )?;
    let id = req.match_info().get("id").unwrap_or_default().to_owned();
    let key_id = id.clone();
    state
        .service
        .transact(&actor, move |ctx| {
            Box::pin(async move { api_keys::revoke(ctx, &key_id).await })
        })
        .await?;
    let doc = api_key_document(&state, &actor, &params, &id).await?;
    Ok(render::json_api(StatusCode::OK, doc))
}

/// The key as the caller now sees it: the answer of the key actions (revoke, rotate).
pub(super) async fn api_key_document(
    state: &AdminState,
    actor: &tollgate_domain::Actor,
    params: &query::Params,
    id: &str,
) -> Result<serde_json::Value, ApiError> {
    let rules = &api_keys::ApiKeys;
    let row = state.service.get(actor, rules, id).await?;
    let self_href = render::resource_path(rules.schema(), id);
    render::one_document(
        &state.service,
        actor,
        params,
        rules.schema(),
        row,
        None,
        self_href,
    )
    .await
}

pub async fn add_members(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, ApiError> {
    edit_members(req, body, state, true).await
}

pub async fn remove_members(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, ApiError> {
    edit_members(req, body, state, false).await
}

/// `POST`/`DELETE /api/groups/{id}/relationships/members`: add or remove the listed users
/// (present/absent ones ignored), then answer with the full new linkage.
async fn edit_members(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AdminState>,
    add: bool,
) -> Result<HttpResponse, ApiError> {
    let rules: &'static dyn ResourceRules = &groups::Groups;
    let rel = relationships::relationship(rules, &req)?;
    if rel.name != "members" {
        return Err(ApiError::method_not_allowed("GET, PATCH"));
    }
    let actor = state.authenticate(&req).await?;
    media::check_accept(&req)?;
    let body = read_body(&req, body).await?;
    query::parse(
        req.query_string(),
        rules.schema(),
        Families::Nothing,
        actor.role,
        state.service.now(),
    )?;
    let RelInput::Many(listed) = document::parse_linkage_document(&body)? else {
        return Err(ApiError::pointer(
            ErrorCode::InvalidDocument,
            "/data",
            "data must be an array of resource identifiers",
        ));
    };
    let id = req.match_info().get("id").unwrap_or_default().to_owned();
    // The group must exist and be visible before its members are read.
    state.service.get(&actor, rules, &id).await?;
    let users: &'static dyn ResourceRules = &tollgate_domain::resources::users::Users;
    let current: Vec<Link> = state
        .service
        .to_many_links(&actor, rel, users, std::slice::from_ref(&id))
        .await?
        .remove(&id)
        .unwrap_or_default();
    let mut next: Vec<Identifier> = current
        .iter()
        .filter(|link| add || !listed.iter().any(|l| l.id == link.id))
        .map(|link| Identifier {
            type_name: "users".into(),
            id: link.id.clone(),
            meta: link.role.as_ref().map(|r| serde_json::json!({"role": r})),
        })
        .collect();
    for (index, identifier) in listed.iter().enumerate() {
        if identifier.type_name != "users" {
            return Err(ApiError::pointer(
                ErrorCode::TypeMismatch,
                format!("/data/{index}/type"),
                "members are users",
            ));
        }
    }
    if add {
        for (index, identifier) in listed.iter().enumerate() {
            // Only an absent user is RELATED_NOT_FOUND; a store failure keeps its own answer.
            match state.service.get(&actor, users, &identifier.id).await {
                Ok(_) => {}
                Err(DomainError::NotFound) => {
                    return Err(ApiError::pointer(
                        ErrorCode::RelatedNotFound,
                        format!("/data/{index}"),
                        "no such user",
                    ));
                }
                Err(other) => return Err(other.into()),
            }
        }
    }
    if add {
        next.extend(
            listed
                .into_iter()
                .filter(|l| !current.iter().any(|c| c.id == l.id)),
        );
    }
    let input = WriteInput {
        attributes: Vec::new(),
        relationships: vec![("members".into(), RelInput::Many(next))],
    };
    let written = state
        .service
        .update(&actor, rules, &id, input, &state.registry())
        .await
        .map_err(|e| ApiError::from(e).repoint_relationship())?;
    let rows = [written.row];
    let params = query::parse(
        "",
        rules.schema(),
        Families::Single,
        actor.role,
        state.service.now(),
    )?;
    let mut compound =
        render::resolve(&state.service, &actor, &params, rules.schema(), &rows).await?;
    let links = state
        .service
        .to_many_links(&actor, rel, users, std::slice::from_ref(&id))
        .await?
        .remove(&id)
        .unwrap_or_default();
    compound
        .linkage
        .set("groups", &id, "members", links.clone());
    let doc = Document::new()
        .links(
            req.path(),
            Some(format!(
                "{}/members",
                render::resource_path(rules.schema(), &id)
            )),
        )
        .member(
            "data",
            links
                .iter()
                .map(|l| render::identifier("users", l))
                .collect::<Vec<_>>(),
        )
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
    let mut doc = api_key_document(&state, &actor, &params, &id).await?;
    doc["data"]["meta"] = json!({"key": secret, "previous_key_expires_at": previous_until});
    Ok(render::json_api(StatusCode::OK, doc))
}
