//! The OpenAPI 3.1 document of the admin API, generated from the resource schemas (the same
//! declarations the generic handlers enforce) plus the hand-described non-generic endpoints.
//! Served at `/docs/openapi.json`, `/docs/openapi.yaml` and as a Scalar page at `/docs` (see
//! [`super::docs`]).

use std::sync::OnceLock;

use actix_web::HttpResponse;
use serde_json::{Value, json};
use tollgate_domain::{
    resources as domain_resources,
    schema::{AttrSpec, AttrType, OnCreate, OnUpdate, RelSpec, ResourceSchema},
};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, HttpMethod, InfoBuilder, OpenApi, OpenApiBuilder, PathItem,
    Paths, PathsBuilder, Ref, RefOr, Required, ResponseBuilder, Schema, Tag,
    path::{Operation, OperationBuilder, Parameter, ParameterBuilder, ParameterIn},
    request_body::RequestBodyBuilder,
    schema::{AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, SchemaType, Type},
    security::{
        ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
    },
};

use crate::http::jsonapi::{self, query::MAX_PAGE_SIZE};

use super::SESSION_COOKIE;

mod components;
mod explicit_paths;
mod operation;
mod parameters;
mod path_parameters;
mod resource_paths;
mod schemas;
mod usage;

use components::*;
use explicit_paths::*;
use operation::*;
use parameters::*;
use path_parameters::*;
use resource_paths::*;
use schemas::*;

/// The JSON:API media type of every `/api` request and response body.
pub const JSONAPI: &str = jsonapi::MEDIA_TYPE;

const SECURITY: [&str; 4] = ["sessionCookie", "bearerJwt", "apiKeyHeader", "bearerApiKey"];

/// The document, built once.
pub fn document() -> &'static OpenApi {
    static DOC: OnceLock<OpenApi> = OnceLock::new();
    DOC.get_or_init(build)
}

pub async fn json() -> HttpResponse {
    static BODY: OnceLock<String> = OnceLock::new();
    let body = BODY.get_or_init(|| document().to_pretty_json().expect("document serializes"));
    HttpResponse::Ok()
        .content_type("application/json")
        .body(body.as_str())
}

pub async fn yaml() -> HttpResponse {
    static BODY: OnceLock<String> = OnceLock::new();
    let body = BODY.get_or_init(|| document().to_yaml().expect("document serializes"));
    HttpResponse::Ok()
        .content_type("application/yaml")
        .body(body.as_str())
}

fn build() -> OpenApi {
    let mut components = ComponentsBuilder::new();
    components = shared_schemas(components);
    components = security_schemes(components);
    let mut paths = PathsBuilder::new();
    let mut tags = Vec::new();
    for rules in domain_resources::ALL {
        let schema = rules.schema();
        components = resource_schemas(components, schema, true);
        paths = writable_paths(paths, schema);
        tags.push(Tag::new(schema.path));
    }
    for rules in domain_resources::READ_ONLY {
        let schema = rules.schema();
        components = resource_schemas(components, schema, false);
        paths = read_only_paths(paths, schema);
        tags.push(Tag::new(schema.path));
    }
    paths = explicit_paths(paths);
    for name in ["auth", "usage", "operations", "docs"] {
        if !tags.iter().any(|t: &Tag| t.name == name) {
            tags.push(Tag::new(name));
        }
    }
    let mut paths: Paths = paths.build();
    declare_path_parameters(&mut paths);
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Tollgate admin API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "JSON:API 1.1 admin API of the Tollgate gateway. Generated from the resource \
                     schemas the handlers enforce.",
                ))
                .build(),
        )
        .paths(paths)
        .components(Some(components.build()))
        .security(Some(security_any()))
        .tags(Some(tags))
        .build()
}
