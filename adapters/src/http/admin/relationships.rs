//! Relationship endpoints: linkage (`…/relationships/{rel}`) and related resources (`…/{rel}`).

use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use serde_json::Value;
use tollgate_domain::{
    Actor, DomainError, Row,
    query::Page,
    resources,
    schema::RelSpec,
    service::{ResourceRules, ResourceService, WriteInput},
};

use super::context::{AdminState, read_body};
use crate::http::{
    error::{ApiError, ErrorCode},
    jsonapi::{
        document::{self, Document},
        media,
        query::{self, Families},
        render,
    },
};

/// The relationship named in the path, or 404 (before authentication: the path does not exist).
pub fn relationship(
    rules: &'static dyn ResourceRules,
    req: &HttpRequest,
) -> Result<&'static RelSpec, ApiError> {
    let name = req.match_info().get("rel").unwrap_or_default();
    rules
        .schema()
        .relationship(name)
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("{name} is not a relationship")))
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

/// The to-many targets of one owner as a page, with `meta.role` where the link has one.
async fn linked_page(
    service: &ResourceService,
    actor: &Actor,
    rel: &RelSpec,
    owner: &Row,
    params: &query::Params,
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
            let link = links.iter().find(|l| l.id == id).cloned().unwrap_or(
                tollgate_domain::service::Link {
                    id: id.to_owned(),
                    role: None,
                },
            );
            render::identifier(rel.target, &link)
        })
        .collect();
    Ok((page, identifiers))
}

/// The linkage document of one relationship.
async fn linkage_document(
    state: &AdminState,
    actor: &Actor,
    rules: &'static dyn ResourceRules,
    rel: &RelSpec,
    owner: &Row,
    req: &HttpRequest,
) -> Result<Value, ApiError> {
    let schema = rules.schema();
    let base = render::resource_path(schema, owner["id"].as_str().unwrap_or_default());
    let doc = Document::new();
    let self_href = render::self_link(req.path(), req.query_string());
    let related = Some(format!("{base}/{}", rel.name));
    if rel.is_to_many() {
        let target = target_of(rel)?;
        let params = query::parse(
            req.query_string(),
            target.schema(),
            Families::PageOnly,
            actor.role,
            state.service.now(),
        )?;
        let (page, identifiers) = linked_page(&state.service, actor, rel, owner, &params).await?;
        let (meta, links) = render::pagination(req.path(), &params, page.total);
        Ok(doc
            .links_with(self_href, related, links)
            .member("data", identifiers)
            .member("meta", meta)
            .build())
    } else {
        query::parse(
            req.query_string(),
            schema,
            Families::Nothing,
            actor.role,
            state.service.now(),
        )?;
        Ok(doc
            .links(self_href, related)
            .member("data", schema.to_one_linkage(rel, owner))
            .build())
    }
}

pub async fn get_linkage(
    rules: &'static dyn ResourceRules,
    req: HttpRequest,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, ApiError> {
    let rel = relationship(rules, &req)?;
    let actor = state.authenticate(&req).await?;
    media::check_accept(&req)?;
    check_private(rel, &actor)?;
    let owner = state
        .service
        .get(
            &actor,
            rules,
            req.match_info().get("id").unwrap_or_default(),
        )
        .await?;
    let doc = linkage_document(&state, &actor, rules, rel, &owner, &req).await?;
    Ok(render::json_api(StatusCode::OK, doc))
}

pub async fn get_related(
    rules: &'static dyn ResourceRules,
    req: HttpRequest,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, ApiError> {
    let rel = relationship(rules, &req)?;
    let actor = state.authenticate(&req).await?;
    media::check_accept(&req)?;
    check_private(rel, &actor)?;
    let target = target_of(rel)?;
    let target_schema = target.schema();
    let owner = state
        .service
        .get(
            &actor,
            rules,
            req.match_info().get("id").unwrap_or_default(),
        )
        .await?;
    let now = state.service.now();
    if rel.is_to_many() {
        let params = query::parse(
            req.query_string(),
            target_schema,
            Families::Collection,
            actor.role,
            now,
        )?;
        let mut list = params.list_query();
        list.cond = ResourceService::related_cond(rel, &owner).and(list.cond);
        let page = state.service.list(&actor, target, list).await?;
        let compound =
            render::resolve(&state.service, &actor, &params, target_schema, &page.items).await?;
        let doc = render::collection(
            target_schema,
            &page,
            &compound,
            actor.role,
            &params,
            req.path(),
            req.query_string(),
        );
        return Ok(render::json_api(StatusCode::OK, doc));
    }
    let params = query::parse(
        req.query_string(),
        target_schema,
        Families::Single,
        actor.role,
        now,
    )?;
    let related = match rules
        .schema()
        .to_one_linkage(rel, &owner)
        .get("id")
        .and_then(Value::as_str)
    {
        // A related resource the actor cannot see reads as absent (`data: null`); any other
        // failure, such as the database being down, is the answer itself.
        Some(id) => match state.service.get(&actor, target, id).await {
            Ok(row) => Some(row),
            Err(DomainError::NotFound) => None,
            Err(other) => return Err(other.into()),
        },
        None => None,
    };
    let self_href = render::self_link(req.path(), req.query_string());
    let doc = match related {
        Some(row) => {
            let rows = [row];
            let compound =
                render::resolve(&state.service, &actor, &params, target_schema, &rows).await?;
            let data = render::resource_object(
                target_schema,
                &rows[0],
                actor.role,
                &params,
                &compound.linkage,
                None,
            );
            render::single(data, Some(&compound), actor.role, &params, self_href)
        }
        None => render::single(Value::Null, None, actor.role, &params, self_href),
    };
    Ok(render::json_api(StatusCode::OK, doc))
}

/// `PATCH …/relationships/{rel}`: full replacement through the normal update use case.
pub async fn replace_linkage(
    rules: &'static dyn ResourceRules,
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, ApiError> {
    let rel = relationship(rules, &req)?;
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
    check_private(rel, &actor)?;
    let linkage = document::parse_linkage_document(&body)?;
    let id = req.match_info().get("id").unwrap_or_default().to_owned();
    let input = WriteInput {
        attributes: Vec::new(),
        relationships: vec![(rel.name.to_owned(), linkage)],
    };
    let written = state
        .service
        .update(&actor, rules, &id, input, &state.registry())
        .await
        .map_err(|e| ApiError::from(e).repoint_relationship())?;
    let doc = linkage_document(&state, &actor, rules, rel, &written.row, &req).await?;
    Ok(render::json_api(StatusCode::OK, doc))
}
