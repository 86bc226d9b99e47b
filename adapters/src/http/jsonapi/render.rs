//! Response documents (jsonapi.md §2–9): resource objects, compound documents, pagination.

use std::collections::{BTreeMap, HashMap, HashSet};

use actix_web::{
    HttpResponse,
    http::{StatusCode, header},
};
use serde_json::{Map, Value, json};
use tollgate_domain::{
    Actor, Role, Row,
    query::Page,
    resources,
    schema::{RelKind, ResourceSchema},
    service::{Link, ResourceService},
};

use super::{
    MEDIA_TYPE,
    document::Document,
    query::{Params, encode_pair},
};
use crate::http::error::ApiError;

type Key = (String, String);

/// To-many linkage computed for the resources of a response: (type, id) → rel → links.
#[derive(Debug, Default)]
pub struct Linkage(HashMap<Key, BTreeMap<String, Vec<Link>>>);

impl Linkage {
    pub fn set(&mut self, type_name: &str, id: &str, rel: &str, links: Vec<Link>) {
        self.0
            .entry((type_name.to_owned(), id.to_owned()))
            .or_default()
            .insert(rel.to_owned(), links);
    }

    fn get(&self, type_name: &str, id: &str, rel: &str) -> Option<&Vec<Link>> {
        self.0
            .get(&(type_name.to_owned(), id.to_owned()))
            .and_then(|m| m.get(rel))
    }
}

fn id_of(row: &Row) -> &str {
    row.get("id").and_then(Value::as_str).unwrap_or_default()
}

pub fn resource_path(schema: &ResourceSchema, id: &str) -> String {
    format!("/api/{}/{id}", schema.path)
}

pub fn identifier(type_name: &str, link: &Link) -> Value {
    let mut obj = json!({"type": type_name, "id": link.id});
    if let Some(role) = &link.role {
        obj["meta"] = json!({"role": role});
    }
    obj
}

/// The included resources and linkage of a response, resolved from `include` paths.
pub struct Compound {
    pub linkage: Linkage,
    pub included: Vec<(&'static ResourceSchema, Row)>,
}

/// Resolves `include` for the primary rows: every path, depth ≤ 2, visibility applied.
pub async fn resolve(
    service: &ResourceService,
    actor: &Actor,
    params: &Params,
    schema: &'static ResourceSchema,
    primary: &[Row],
) -> Result<Compound, ApiError> {
    let mut linkage = Linkage::default();
    let mut included: Vec<(&'static ResourceSchema, Row)> = Vec::new();
    let mut seen: HashSet<Key> = primary
        .iter()
        .map(|r| (schema.type_name.to_owned(), id_of(r).to_owned()))
        .collect();
    let mut cache: HashMap<Key, Row> = primary
        .iter()
        .map(|r| {
            (
                (schema.type_name.to_owned(), id_of(r).to_owned()),
                r.clone(),
            )
        })
        .collect();
    for path in &params.include {
        let mut current_schema = schema;
        let mut current: Vec<Row> = primary.to_vec();
        for segment in path {
            let Some(rel) = current_schema.relationship(segment) else {
                break;
            };
            let Some(target) = resources::by_type(rel.target) else {
                break;
            };
            let owners: Vec<String> = current.iter().map(|r| id_of(r).to_owned()).collect();
            let mut wanted: Vec<String> = Vec::new();
            match rel.kind {
                RelKind::ToOne { column, .. } => {
                    for row in &current {
                        if let Some(id) = row.get(column).and_then(Value::as_str) {
                            wanted.push(id.to_owned());
                        }
                    }
                }
                RelKind::ToMany(_) => {
                    let links = service.to_many_links(actor, rel, target, &owners).await?;
                    for owner in &owners {
                        let list = links.get(owner).cloned().unwrap_or_default();
                        wanted.extend(list.iter().map(|l| l.id.clone()));
                        linkage.set(current_schema.type_name, owner, rel.name, list);
                    }
                }
            }
            wanted.sort();
            wanted.dedup();
            let missing: Vec<String> = wanted
                .iter()
                .filter(|id| !cache.contains_key(&(rel.target.to_owned(), (*id).clone())))
                .cloned()
                .collect();
            for row in service.get_many(actor, target, &missing).await? {
                cache.insert((rel.target.to_owned(), id_of(&row).to_owned()), row);
            }
            let next: Vec<Row> = wanted
                .iter()
                .filter_map(|id| cache.get(&(rel.target.to_owned(), id.clone())).cloned())
                .collect();
            for row in &next {
                let key = (rel.target.to_owned(), id_of(row).to_owned());
                if seen.insert(key) {
                    included.push((target.schema(), row.clone()));
                }
            }
            current_schema = target.schema();
            current = next;
        }
    }
    Ok(Compound { linkage, included })
}

/// One resource object with the caller's view of attributes and relationships.
pub fn resource_object(
    schema: &ResourceSchema,
    row: &Row,
    role: Role,
    params: &Params,
    linkage: &Linkage,
    meta: Option<&Map<String, Value>>,
) -> Value {
    let id = id_of(row);
    let base = resource_path(schema, id);
    let attributes: Map<String, Value> = schema
        .render_attributes(row, role)
        .into_iter()
        .filter(|(name, _)| params.shows(schema.type_name, name))
        .collect();
    let mut relationships = Map::new();
    for rel in schema.relationships {
        if (rel.private && role != Role::Admin) || !params.shows(schema.type_name, rel.name) {
            continue;
        }
        let mut obj = json!({"links": {
            "self": format!("{base}/relationships/{}", rel.name),
            "related": format!("{base}/{}", rel.name),
        }});
        if rel.is_to_many() {
            if let Some(links) = linkage.get(schema.type_name, id, rel.name) {
                obj["data"] =
                    Value::Array(links.iter().map(|l| identifier(rel.target, l)).collect());
            }
        } else {
            obj["data"] = schema.to_one_linkage(rel, row);
        }
        relationships.insert(rel.name.to_owned(), obj);
    }
    let mut obj = json!({
        "type": schema.type_name,
        "id": id,
        "attributes": attributes,
        "relationships": relationships,
        "links": {"self": base},
    });
    if let Some(meta) = meta.filter(|m| !m.is_empty()) {
        obj["meta"] = Value::Object(meta.clone());
    }
    obj
}

fn included_array(compound: &Compound, role: Role, params: &Params) -> Value {
    Value::Array(
        compound
            .included
            .iter()
            .map(|(schema, row)| {
                resource_object(schema, row, role, params, &compound.linkage, None)
            })
            .collect(),
    )
}

/// The request's own path and query, as received.
pub fn self_link(path: &str, raw_query: &str) -> String {
    if raw_query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{raw_query}")
    }
}

/// `response` with a `Location` header naming `location`.
pub fn with_location(mut response: HttpResponse, location: &str) -> HttpResponse {
    if let Ok(value) = header::HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

pub fn json_api(status: StatusCode, body: Value) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header(("Content-Type", MEDIA_TYPE))
        .body(body.to_string())
}

/// A single-resource document.
pub fn single(
    data: Value,
    compound: Option<&Compound>,
    role: Role,
    params: &Params,
    self_href: String,
) -> Value {
    let mut doc = Document::new().links(self_href, None).member("data", data);
    if !params.include.is_empty()
        && let Some(compound) = compound
    {
        doc = doc.member("included", included_array(compound, role, params));
    }
    doc.build()
}

/// Pagination `meta` and the `first`/`last`/`prev`/`next` links for a page of `total` items.
pub fn pagination(path: &str, params: &Params, total: u64) -> (Value, Map<String, Value>) {
    let size = params.page_size;
    let pages = total.div_ceil(size).max(1);
    let page = params.page_number;
    let base: Vec<String> = params
        .passthrough
        .iter()
        .map(|(n, v)| encode_pair(n, v))
        .collect();
    let href = |number: u64| {
        let mut parts = base.clone();
        parts.push(encode_pair("page[number]", &number.to_string()));
        parts.push(encode_pair("page[size]", &size.to_string()));
        format!("{path}?{}", parts.join("&"))
    };
    let mut links = Map::new();
    links.insert("first".into(), json!(href(1)));
    links.insert("last".into(), json!(href(pages)));
    if page > 1 {
        links.insert("prev".into(), json!(href((page - 1).min(pages))));
    }
    if page < pages {
        links.insert("next".into(), json!(href(page + 1)));
    }
    let meta = json!({"total": total, "page": page, "per_page": size, "pages": pages});
    (meta, links)
}

/// A collection document with pagination.
pub fn collection(
    schema: &ResourceSchema,
    page: &Page<Row>,
    compound: &Compound,
    role: Role,
    params: &Params,
    path: &str,
    raw_query: &str,
) -> Value {
    let data: Vec<Value> = page
        .items
        .iter()
        .map(|row| resource_object(schema, row, role, params, &compound.linkage, None))
        .collect();
    let (meta, links) = pagination(path, params, page.total);
    let mut doc = Document::new()
        .member("meta", meta)
        .links_with(self_link(path, raw_query), None, links)
        .member("data", data);
    if !params.include.is_empty() {
        doc = doc.member("included", included_array(compound, role, params));
    }
    doc.build()
}

/// The whole document of one resource: `include` resolved, the caller's view, one-time `meta`.
#[allow(clippy::too_many_arguments)]
pub async fn one_document(
    service: &ResourceService,
    actor: &Actor,
    params: &Params,
    schema: &'static ResourceSchema,
    row: Row,
    meta: Option<&Map<String, Value>>,
    self_href: String,
) -> Result<Value, ApiError> {
    let rows = [row];
    let compound = resolve(service, actor, params, schema, &rows).await?;
    let data = resource_object(
        schema,
        &rows[0],
        actor.role,
        params,
        &compound.linkage,
        meta,
    );
    Ok(single(data, Some(&compound), actor.role, params, self_href))
}
