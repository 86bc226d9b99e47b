//! The five generic handlers every resource shares: parse, call one use case, render.

use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use tollgate_domain::service::ResourceRules;

use super::context::{AdminState, read_body};
use crate::http::{
    error::ApiError,
    jsonapi::{
        document::{self, Expect},
        media,
        query::{self, Families},
        render,
    },
};

fn path_id(req: &HttpRequest) -> String {
    req.match_info().get("id").unwrap_or_default().to_owned()
}

pub async fn list(
    rules: &'static dyn ResourceRules,
    req: HttpRequest,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, ApiError> {
    let schema = rules.schema();
    let actor = state.authenticate(&req).await?;
    media::check_accept(&req)?;
    let params = query::parse(
        req.query_string(),
        schema,
        Families::Collection,
        actor.role,
        state.service.now(),
    )?;
    let page = state
        .service
        .list(&actor, rules, params.list_query())
        .await?;
    let compound = render::resolve(&state.service, &actor, &params, schema, &page.items).await?;
    let doc = render::collection(
        schema,
        &page,
        &compound,
        actor.role,
        &params,
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
    let actor = state.authenticate(&req).await?;
    media::check_accept(&req)?;
    let params = query::parse(
        req.query_string(),
        schema,
        Families::Single,
        actor.role,
        state.service.now(),
    )?;
    let row = state.service.get(&actor, rules, &path_id(&req)).await?;
    let self_href = render::self_link(req.path(), req.query_string());
    let doc = render::one_document(
        &state.service,
        &actor,
        &params,
        schema,
        row,
        None,
        self_href,
    )
    .await?;
    Ok(render::json_api(StatusCode::OK, doc))
}

pub async fn create(
    rules: &'static dyn ResourceRules,
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, ApiError> {
    let schema = rules.schema();
    let actor = state.authenticate(&req).await?;
    media::check_accept(&req)?;
    let body = read_body(&req, body).await?;
    let params = query::parse(
        req.query_string(),
        schema,
        Families::Single,
        actor.role,
        state.service.now(),
    )?;
    let input = document::parse_resource(
        &body,
        Expect::Create {
            type_name: schema.type_name,
        },
    )?;
    let written = state
        .service
        .create(&actor, rules, input, &state.registry())
        .await?;
    let location = render::resource_path(schema, written.row["id"].as_str().unwrap_or_default());
    let doc = render::one_document(
        &state.service,
        &actor,
        &params,
        schema,
        written.row,
        Some(&written.meta),
        location.clone(),
    )
    .await?;
    let mut response = render::json_api(StatusCode::CREATED, doc);
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&location) {
        response
            .headers_mut()
            .insert(actix_web::http::header::LOCATION, value);
    }
    Ok(response)
}

pub async fn update(
    rules: &'static dyn ResourceRules,
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AdminState>,
    session: actix_session::Session,
) -> Result<HttpResponse, ApiError> {
    let schema = rules.schema();
    let actor = state.authenticate(&req).await?;
    media::check_accept(&req)?;
    let body = read_body(&req, body).await?;
    let params = query::parse(
        req.query_string(),
        schema,
        Families::Single,
        actor.role,
        state.service.now(),
    )?;
    let id = path_id(&req);
    let input = document::parse_resource(
        &body,
        Expect::Update {
            type_name: schema.type_name,
            id: &id,
        },
    )?;
    // Setting one's own password ends the other sessions (domain) and rotates this cookie.
    let own_password = schema.type_name == "users"
        && actor.user_id.as_deref() == Some(id.as_str())
        && input.attributes.iter().any(|(name, _)| name == "password");
    let written = state
        .service
        .update(&actor, rules, &id, input, &state.registry())
        .await?;
    if own_password && actor.method == Some(tollgate_domain::AuthMethod::Session) {
        session.renew();
    }
    let self_href = render::self_link(req.path(), req.query_string());
    let doc = render::one_document(
        &state.service,
        &actor,
        &params,
        schema,
        written.row,
        Some(&written.meta),
        self_href,
    )
    .await?;
    Ok(render::json_api(StatusCode::OK, doc))
}

pub async fn delete(
    rules: &'static dyn ResourceRules,
    req: HttpRequest,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, ApiError> {
    let schema = rules.schema();
    let actor = state.authenticate(&req).await?;
    media::check_accept(&req)?;
    query::parse(
        req.query_string(),
        schema,
        Families::Nothing,
        actor.role,
        state.service.now(),
    )?;
    state.service.delete(&actor, rules, &path_id(&req)).await?;
    Ok(HttpResponse::NoContent().finish())
}
