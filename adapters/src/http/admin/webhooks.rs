//! Webhook actions (test, rotate-secret, redeliver) and one delivery under its webhook.

use actix_web::{
    HttpRequest, HttpResponse,
    http::{StatusCode, header},
    web,
};
use serde_json::{Map, Value, json};
use tollgate_domain::{
    delivery,
    resources::{webhook_deliveries, webhooks},
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

fn segment(req: &HttpRequest, name: &str) -> String {
    req.match_info().get(name).unwrap_or_default().to_owned()
}

/// The shared preamble of a body-less action: auth, `Accept`, an optional body of the right
/// media type, and the query parameters a single document allows.
async fn preamble(
    req: &HttpRequest,
    body: web::Payload,
    state: &AdminState,
    schema: &'static tollgate_domain::ResourceSchema,
) -> Result<(tollgate_domain::Actor, query::Params), ApiError> {
    let actor = state.authenticate(req).await?;
    media::check_accept(req)?;
    read_body(req, body).await?;
    let params = query::parse(
        req.query_string(),
        schema,
        Families::Single,
        actor.role,
        state.service.now(),
    )?;
    Ok((actor, params))
}

/// `POST /api/webhooks/{id}/test`: one synchronous attempt; 200 whatever the receiver said.
pub async fn test(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, ApiError> {
    let schema = &webhook_deliveries::SCHEMA;
    let (actor, params) = preamble(&req, body, &state, schema).await?;
    let row = delivery::send_test(&state.service, &actor, &segment(&req, "id")).await?;
    let href = render::resource_path(schema, row["id"].as_str().unwrap_or_default());
    let doc =
        render::one_document(&state.service, &actor, &params, schema, row, None, href).await?;
    Ok(render::json_api(StatusCode::OK, doc))
}

/// `POST /api/webhooks/{id}/rotate-secret`: the new secret once in `data.meta.secret`.
pub async fn rotate_secret(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, ApiError> {
    let schema = &webhooks::SCHEMA;
    let (actor, params) = preamble(&req, body, &state, schema).await?;
    let id = segment(&req, "id");
    let (mut row, secret) = delivery::rotate_secret(&state.service, &actor, &id).await?;
    webhooks::Webhooks.decorate(&mut row, state.service.now());
    let mut meta = Map::new();
    meta.insert("secret".into(), json!(secret));
    let href = render::resource_path(schema, &id);
    let doc = render::one_document(
        &state.service,
        &actor,
        &params,
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
    let (actor, params) = preamble(&req, body, &state, schema).await?;
    let row = delivery::redeliver(
        &state.service,
        &actor,
        &segment(&req, "id"),
        &segment(&req, "did"),
    )
    .await?;
    let location = render::resource_path(schema, row["id"].as_str().unwrap_or_default());
    let doc = render::one_document(
        &state.service,
        &actor,
        &params,
        schema,
        row,
        None,
        location.clone(),
    )
    .await?;
    let mut response = render::json_api(StatusCode::ACCEPTED, doc);
    if let Ok(value) = header::HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// `GET /api/webhooks/{id}/deliveries/{did}`: a delivery of another webhook is 404 here.
pub async fn get_delivery(
    req: HttpRequest,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, ApiError> {
    let schema = &webhook_deliveries::SCHEMA;
    let actor = state.authenticate(&req).await?;
    media::check_accept(&req)?;
    let params = query::parse(
        req.query_string(),
        schema,
        Families::Single,
        actor.role,
        state.service.now(),
    )?;
    let id = segment(&req, "id");
    state.service.get(&actor, &webhooks::Webhooks, &id).await?;
    let row = state
        .service
        .get(
            &actor,
            &webhook_deliveries::WebhookDeliveries,
            &segment(&req, "did"),
        )
        .await?;
    if row.get("webhook_id") != Some(&Value::String(id)) {
        return Err(ApiError::not_found());
    }
    let href = render::self_link(req.path(), req.query_string());
    let doc =
        render::one_document(&state.service, &actor, &params, schema, row, None, href).await?;
    Ok(render::json_api(StatusCode::OK, doc))
}
