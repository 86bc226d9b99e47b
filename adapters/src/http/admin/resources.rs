//! The five generic handlers every resource shares: parse, call one use case, render.

use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use tollgate_domain::{
    Actor, AuthMethod, ResourceSchema,
    service::{ResourceRules, WriteInput},
};

use super::context::AdminState;
use crate::http::{
    error::ApiError,
    jsonapi::{
        document::{self, Expect},
        query::Families,
        render,
    },
};

pub(super) fn path_segment(req: &HttpRequest, name: &str) -> String {
    req.match_info().get(name).unwrap_or_default().to_owned()
}

fn path_id(req: &HttpRequest) -> String {
    path_segment(req, "id")
}

pub async fn list(
    rules: &'static dyn ResourceRules,
    req: HttpRequest,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, ApiError> {
    let schema = rules.schema();
    let admitted = state
        .intake(&req)
        .query(schema, Families::Collection)
        .admit()
        .await?;
    let (actor, params) = (&admitted.actor, &admitted.query);
    let page = state
        .service
        .list(actor, rules, params.list_query())
        .await?;
    let compound = render::resolve(&state.service, actor, params, schema, &page.items).await?;
    let doc = render::collection(
        schema,
        &page,
        &compound,
        actor.role,
        params,
        req.path(),
        req.query_string(),
    );
    Ok(render::json_api(StatusCode::OK, doc))
}

pub async fn get(
    rules: &'static dyn ResourceRules,
    req: HttpRequest,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, ApiError> {
    let schema = rules.schema();
    let admitted = state
        .intake(&req)
        .query(schema, Families::Single)
        .admit()
        .await?;
    let (actor, params) = (&admitted.actor, &admitted.query);
    let row = state.service.get(actor, rules, &path_id(&req)).await?;
    let href = render::self_link(req.path(), req.query_string());
    let doc = render::one_document(&state.service, actor, params, schema, row, None, href).await?;
    Ok(render::json_api(StatusCode::OK, doc))
}

pub async fn create(
    rules: &'static dyn ResourceRules,
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, ApiError> {
    let schema = rules.schema();
    let admitted = state
        .intake(&req)
        .body(body)
        .query(schema, Families::Single)
        .admit()
        .await?;
    let (actor, params) = (&admitted.actor, &admitted.query);
    let expect = Expect::Create {
        type_name: schema.type_name,
    };
    let input = document::parse_resource(&admitted.body, expect)?;
    let written = state
        .service
        .create(actor, rules, input, &state.registry())
        .await?;
    let location = render::resource_path(schema, written.row["id"].as_str().unwrap_or_default());
    let doc = render::one_document(
        &state.service,
        actor,
        params,
        schema,
        written.row,
        Some(&written.meta),
        location.clone(),
    )
    .await?;
    Ok(render::with_location(
        render::json_api(StatusCode::CREATED, doc),
        &location,
    ))
}

pub async fn update(
    rules: &'static dyn ResourceRules,
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AdminState>,
    session: actix_session::Session,
) -> Result<HttpResponse, ApiError> {
    let schema = rules.schema();
    let admitted = state
        .intake(&req)
        .body(body)
        .query(schema, Families::Single)
        .admit()
        .await?;
    let (actor, params) = (&admitted.actor, &admitted.query);
    let id = path_id(&req);
    let input = document::parse_resource(
        &admitted.body,
        Expect::Update {
            type_name: schema.type_name,
            id: &id,
        },
    )?;
    let own_password = sets_own_password(schema, actor, &id, &input);
    let written = state
        .service
        .update(actor, rules, &id, input, &state.registry())
        .await?;
    if own_password && actor.method == Some(AuthMethod::Session) {
        session.renew();
    }
    let href = render::self_link(req.path(), req.query_string());
    let (row, meta) = (written.row, Some(&written.meta));
    let doc = render::one_document(&state.service, actor, params, schema, row, meta, href).await?;
    Ok(render::json_api(StatusCode::OK, doc))
}

/// Setting one's own password ends the other sessions (domain) and rotates this cookie.
fn sets_own_password(schema: &ResourceSchema, actor: &Actor, id: &str, input: &WriteInput) -> bool {
    schema.type_name == "users"
        && actor.user_id.as_deref() == Some(id)
        && input.attributes.iter().any(|(name, _)| name == "password")
}

pub async fn delete(
    rules: &'static dyn ResourceRules,
    req: HttpRequest,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, ApiError> {
    let admitted = state
        .intake(&req)
        .query(rules.schema(), Families::Nothing)
        .admit()
        .await?;
    let id = path_id(&req);
    state.service.delete(&admitted.actor, rules, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}
