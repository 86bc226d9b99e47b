//! Relationship endpoints: linkage (`…/relationships/{rel}`) and related resources (`…/{rel}`).

use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use serde_json::Value;
use tollgate_domain::{
    Actor, DomainError, Row,
    query::Page,
    resources,
    schema::{RelSpec, ResourceSchema},
    service::{Link, ResourceRules, ResourceService, WriteInput},
};

use super::context::AdminState;
use crate::http::{
    error::ApiError,
    jsonapi::{
        document::{self, Document},
        query::{Families, Params},
        render,
    },
};

/// The relationship named in the path, or 404 (before authentication: the path does not exist).
pub fn relationship(
    rules: &'static dyn ResourceRules,
    req: &HttpRequest,
) -> Result<&'static RelSpec, ApiError> {
    let name = req.match_info().get("rel").unwrap_or_default();
    rules.schema().relationship(name).ok_or_else(|| {
        ApiError::new(
            crate::http::ErrorCode::NotFound,
            format!("{name} is not a relationship"),
        )
    })
}

fn target_of(rel: &RelSpec) -> Result<&'static dyn ResourceRules, ApiError> {
    resources::by_type(rel.target).ok_or_else(ApiError::not_found)
}

fn check_private(rel: &RelSpec, actor: &Actor) -> Result<(), ApiError> {
    if rel.private && !actor.is_admin() {
        return Err(ApiError::not_found());
    }
    Ok(())
}

fn owner_id(req: &HttpRequest) -> String {
    super::resources::path_segment(req, "id")
}

/// The query a linkage document takes: pages of a to-many linkage, nothing for a to-one.
fn linkage_query(
    rules: &'static dyn ResourceRules,
    rel: &RelSpec,
) -> Result<(&'static ResourceSchema, Families), ApiError> {
    Ok(if rel.is_to_many() {
        (target_of(rel)?.schema(), Families::PageOnly)
    } else {
        (rules.schema(), Families::Nothing)
    })
}

/// The to-many targets of one owner as a page, with `meta.role` where the link has one.
async fn linked_page(
    service: &ResourceService,
    actor: &Actor,
    rel: &RelSpec,
    owner: &Row,
    params: &Params,
) -> Result<(Page<Row>, Vec<Value>), ApiError> {
    let target = target_of(rel)?;
    let mut list = params.list_query();
    list.cond = ResourceService::related_cond(rel, owner).and(list.cond);
    let page = service.list(actor, target, list).await?;
    let owner_id = owner["id"].as_str().unwrap_or_default().to_owned();
    let links = service
        .to_many_links(actor, rel, target, std::slice::from_ref(&owner_id))
        .await?
        .remove(&owner_id)
        .unwrap_or_default();
    let identifiers = page
        .items
        .iter()
        .map(|row| {
            let id = row["id"].as_str().unwrap_or_default();
            let link = links.iter().find(|l| l.id == id).cloned().unwrap_or(Link {
                id: id.to_owned(),
                role: None,
            });
            render::identifier(rel.target, &link)
        })
        .collect();
    Ok((page, identifiers))
}

/// The linkage document of one relationship (`params` pages a to-many linkage).
async fn linkage_document(
    state: &AdminState,
    actor: &Actor,
    rules: &'static dyn ResourceRules,
    rel: &RelSpec,
    owner: &Row,
    params: &Params,
    req: &HttpRequest,
) -> Result<Value, ApiError> {
    let schema = rules.schema();
    let base = render::resource_path(schema, owner["id"].as_str().unwrap_or_default());
    let doc = Document::new();
    let self_href = render::self_link(req.path(), req.query_string());
    let related = Some(format!("{base}/{}", rel.name));
    if !rel.is_to_many() {
        return Ok(doc
            .links(self_href, related)
            .member("data", schema.to_one_linkage(rel, owner))
            .build());
    }
    let (page, identifiers) = linked_page(&state.service, actor, rel, owner, params).await?;
    let (meta, links) = render::pagination(req.path(), params, page.total);
    Ok(doc
        .links_with(self_href, related, links)
        .member("data", identifiers)
        .member("meta", meta)
        .build())
}

pub async fn get_linkage(
    rules: &'static dyn ResourceRules,
    req: HttpRequest,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, ApiError> {
    let rel = relationship(rules, &req)?;
    let (schema, families) = linkage_query(rules, rel)?;
    let admitted = state.intake(&req).query(schema, families).admit().await?;
    let actor = &admitted.actor;
    check_private(rel, actor)?;
    let owner = state.service.get(actor, rules, &owner_id(&req)).await?;
    let doc = linkage_document(&state, actor, rules, rel, &owner, &admitted.query, &req).await?;
    Ok(render::json_api(StatusCode::OK, doc))
}

pub async fn get_related(
    rules: &'static dyn ResourceRules,
    req: HttpRequest,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, ApiError> {
    let rel = relationship(rules, &req)?;
    let target = target_of(rel)?;
    let families = if rel.is_to_many() {
        Families::Collection
    } else {
        Families::Single
    };
    let admitted = state
        .intake(&req)
        .query(target.schema(), families)
        .admit()
        .await?;
    let (actor, params) = (&admitted.actor, &admitted.query);
    check_private(rel, actor)?;
    let owner = state.service.get(actor, rules, &owner_id(&req)).await?;
    let doc = if rel.is_to_many() {
        related_collection(&state.service, actor, params, rel, target, &owner, &req).await?
    } else {
        let id = rules.schema().to_one_linkage(rel, &owner);
        let id = id.get("id").and_then(Value::as_str);
        related_one(&state.service, actor, params, target, id, &req).await?
    };
    Ok(render::json_api(StatusCode::OK, doc))
}

/// The related resources of a to-many relationship as a collection.
async fn related_collection(
    service: &ResourceService,
    actor: &Actor,
    params: &Params,
    rel: &RelSpec,
    target: &'static dyn ResourceRules,
    owner: &Row,
    req: &HttpRequest,
) -> Result<Value, ApiError> {
    let schema = target.schema();
    let mut list = params.list_query();
    list.cond = ResourceService::related_cond(rel, owner).and(list.cond);
    let page = service.list(actor, target, list).await?;
    let compound = render::resolve(service, actor, params, schema, &page.items).await?;
    Ok(render::collection(
        schema,
        &page,
        &compound,
        actor.role,
        params,
        req.path(),
        req.query_string(),
    ))
}

/// The related resource of a to-one relationship, or `data: null`.
async fn related_one(
    service: &ResourceService,
    actor: &Actor,
    params: &Params,
    target: &'static dyn ResourceRules,
    id: Option<&str>,
    req: &HttpRequest,
) -> Result<Value, ApiError> {
    let href = render::self_link(req.path(), req.query_string());
    let related = match id {
        // A related resource the actor cannot see reads as absent (`data: null`); any other
        // failure, such as the database being down, is the answer itself.
        Some(id) => match service.get(actor, target, id).await {
            Ok(row) => Some(row),
            Err(DomainError::NotFound) => None,
            Err(other) => return Err(other.into()),
        },
        None => None,
    };
    match related {
        Some(row) => {
            render::one_document(service, actor, params, target.schema(), row, None, href).await
        }
        None => Ok(render::single(Value::Null, None, actor.role, params, href)),
    }
}

/// `PATCH …/relationships/{rel}`: full replacement through the normal update use case.
pub async fn replace_linkage(
    rules: &'static dyn ResourceRules,
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, ApiError> {
    let rel = relationship(rules, &req)?;
    let admitted = state
        .intake(&req)
        .body(body)
        .query(rules.schema(), Families::Nothing)
        .admit()
        .await?;
    let actor = &admitted.actor;
    check_private(rel, actor)?;
    let linkage = document::parse_linkage_document(&admitted.body)?;
    let input = WriteInput {
        attributes: Vec::new(),
        relationships: vec![(rel.name.to_owned(), linkage)],
    };
    let written = state
        .service
        .update(actor, rules, &owner_id(&req), input, &state.registry())
        .await
        .map_err(|e| ApiError::from(e).repoint_relationship())?;
    let params = &admitted.query;
    let doc = linkage_document(&state, actor, rules, rel, &written.row, params, &req).await?;
    Ok(render::json_api(StatusCode::OK, doc))
}
