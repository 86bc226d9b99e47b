//! Webhook actions (test, rotate-secret, redeliver) and one delivery under its webhook.

use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use serde_json::{Map, Value, json};
use tollgate_domain::{
    delivery,
    resources::{webhook_deliveries, webhooks},
    schema::ResourceSchema,
    service::ResourceRules,
};

use super::{
    context::{AdminState, Admitted},
    resources::path_segment,
};
use crate::http::{
    error::ApiError,
    jsonapi::{
        query::{Families, Params},
        render,
    },
};

/// The checks of a webhook action: auth, `Accept`, an optional body of the right media type,
/// and the query parameters a single document allows.
async fn admit_action(
    req: &HttpRequest,
    body: web::Payload,
    state: &AdminState,
    schema: &'static ResourceSchema,
) -> Result<Admitted<tollgate_domain::Actor, Params>, ApiError> {
    state
        .intake(req)
        .body(body)
        .query(schema, Families::Single)
        .admit()
        .await
}

/// `POST /api/webhooks/{id}/test`: one synchronous attempt; 200 whatever the receiver said.
pub async fn test(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, ApiError> {
    let schema = &webhook_deliveries::SCHEMA;
    let Admitted { actor, query, .. } = admit_action(&req, body, &state, schema).await?;
    let row = delivery::send_test(&state.service, &actor, &path_segment(&req, "id")).await?;
    let href = render::resource_path(schema, row["id"].as_str().unwrap_or_default());
    let doc = render::one_document(&state.service, &actor, &query, schema, row, None, href).await?;
    Ok(render::json_api(StatusCode::OK, doc))
}

/// `POST /api/webhooks/{id}/rotate-secret`: the new secret once in `data.meta.secret`.
pub async fn rotate_secret(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, ApiError> {
    let schema = &webhooks::SCHEMA;
    let Admitted { actor, query, .. } = admit_action(&req, body, &state, schema).await?;
    let id = path_segment(&req, "id");
    let (mut row, secret) = delivery::rotate_secret(&state.service, &actor, &id).await?;
    webhooks::Webhooks.decorate(&mut row, state.service.now());
    let mut meta = Map::new();
    meta.insert("secret".into(), json!(secret));
    let href = render::resource_path(schema, &id);
    let doc = render::one_document(
        &state.service,
        &actor,
        &query,
        schema,
        row,
        Some(&meta),
        href,
    )
    .await?;
    Ok(render::json_api(StatusCode::OK, doc))
}

/// `POST /api/webhooks/{id}/deliveries/{did}/redeliver`: 202 with the queued delivery.
pub async fn redeliver(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, ApiError> {
    let schema = &webhook_deliveries::SCHEMA;
    let Admitted { actor, query, .. } = admit_action(&req, body, &state, schema).await?;
    let (id, did) = (path_segment(&req, "id"), path_segment(&req, "did"));
    let row = delivery::redeliver(&state.service, &actor, &id, &did).await?;
    let location = render::resource_path(schema, row["id"].as_str().unwrap_or_default());
    let href = location.clone();
    let doc = render::one_document(&state.service, &actor, &query, schema, row, None, href).await?;
    Ok(render::with_location(
        render::json_api(StatusCode::ACCEPTED, doc),
        &location,
    ))
}

/// `GET /api/webhooks/{id}/deliveries/{did}`: a delivery of another webhook is 404 here.
pub async fn get_delivery(
    req: HttpRequest,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, ApiError> {
    let schema = &webhook_deliveries::SCHEMA;
    let Admitted { actor, query, .. } = state
        .intake(&req)
        .query(schema, Families::Single)
        .admit()
        .await?;
    let id = path_segment(&req, "id");
    state.service.get(&actor, &webhooks::Webhooks, &id).await?;
    let did = path_segment(&req, "did");
    let deliveries = &webhook_deliveries::WebhookDeliveries;
    let row = state.service.get(&actor, deliveries, &did).await?;
    if row.get("webhook_id") != Some(&Value::String(id)) {
        return Err(ApiError::not_found());
    }
    let href = render::self_link(req.path(), req.query_string());
    let doc = render::one_document(&state.service, &actor, &query, schema, row, None, href).await?;
    Ok(render::json_api(StatusCode::OK, doc))
}
