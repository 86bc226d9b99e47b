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

use crate::http::jsonapi::query::MAX_PAGE_SIZE;

use super::SESSION_COOKIE;

/// The JSON:API media type of every `/api` request and response body.
pub const JSONAPI: &str = "application/vnd.api+json";

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

// ---------- schema helpers ----------

fn reference(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

fn ty(t: Type) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(t)
}

fn nullable_type(t: Type, nullable: bool) -> SchemaType {
    if nullable {
        SchemaType::from_iter([t, Type::Null])
    } else {
        SchemaType::new(t)
    }
}

fn string() -> RefOr<Schema> {
    ty(Type::String).into()
}

fn any_object() -> RefOr<Schema> {
    ty(Type::Object).into()
}

fn array_of(item: RefOr<Schema>) -> RefOr<Schema> {
    ArrayBuilder::new().items(item).into()
}

fn nullable_ref(name: &str) -> RefOr<Schema> {
    OneOfBuilder::new()
        .item(reference(name))
        .item(ty(Type::Null))
        .into()
}

fn attribute_schema(attr: &AttrSpec) -> RefOr<Schema> {
    let base = match attr.ty {
        AttrType::Text { min, max } => ObjectBuilder::new()
            .schema_type(nullable_type(Type::String, attr.nullable))
            .min_length(Some(min))
            .max_length(Some(max)),
        AttrType::Int { min, max } => ObjectBuilder::new()
            .schema_type(nullable_type(Type::Integer, attr.nullable))
            .minimum(Some(min as f64))
            .maximum(Some(max as f64)),
        AttrType::Bool => {
            ObjectBuilder::new().schema_type(nullable_type(Type::Boolean, attr.nullable))
        }
        AttrType::Enum(values) => {
            let mut all: Vec<Value> = values.iter().map(|v| json!(v)).collect();
            if attr.nullable {
                all.push(Value::Null);
            }
            ObjectBuilder::new()
                .schema_type(nullable_type(Type::String, attr.nullable))
                .enum_values(Some(all))
        }
        AttrType::Timestamp => ObjectBuilder::new()
            .schema_type(nullable_type(Type::String, attr.nullable))
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::DateTime,
            ))),
        AttrType::TextList { max_items } => {
            let list = ArrayBuilder::new()
                .schema_type(nullable_type(Type::Array, attr.nullable))
                .items(string())
                .max_items(Some(max_items));
            return list.into();
        }
        AttrType::Object => ObjectBuilder::new()
            .schema_type(nullable_type(Type::Object, attr.nullable))
            .additional_properties(Some(AdditionalProperties::FreeForm(true))),
    };
    let read_only = attr.on_create == OnCreate::Never && attr.on_update == OnUpdate::Never;
    let mut notes = Vec::new();
    if attr.private {
        notes.push("Shown to admins only.");
    }
    if attr.on_update == OnUpdate::AdminOnly {
        notes.push("Only admins may change it.");
    }
    if attr.on_create != OnCreate::Never && attr.on_update == OnUpdate::Never {
        notes.push("Set on create only.");
    }
    let base = base.read_only(read_only).write_only(attr.write_only);
    let base = if notes.is_empty() {
        base
    } else {
        base.description(Some(notes.join(" ")))
    };
    base.into()
}

fn type_name_pascal(type_name: &str) -> String {
    type_name
        .split('_')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn type_const(type_name: &str) -> RefOr<Schema> {
    ty(Type::String).enum_values(Some([type_name])).into()
}

fn relationship_schema(rel: &RelSpec) -> RefOr<Schema> {
    let target = type_name_pascal(rel.target);
    let data = if rel.is_to_many() {
        array_of(reference(&format!("{target}Identifier")))
    } else {
        nullable_ref(&format!("{target}Identifier"))
    };
    let object = ty(Type::Object)
        .property("data", data)
        .property("links", reference("RelationshipLinks"))
        .property("meta", any_object());
    let object = if rel.private {
        object.description(Some("Shown to admins only."))
    } else {
        object
    };
    object.into()
}

fn linkage_input(rel: &RelSpec) -> RefOr<Schema> {
    let target = type_name_pascal(rel.target);
    let data = if rel.is_to_many() {
        array_of(reference(&format!("{target}Identifier")))
    } else {
        nullable_ref(&format!("{target}Identifier"))
    };
    ty(Type::Object)
        .property("data", data)
        .required("data")
        .into()
}

fn resource_schemas(
    mut components: ComponentsBuilder,
    schema: &ResourceSchema,
    writable: bool,
) -> ComponentsBuilder {
    let name = type_name_pascal(schema.type_name);
    let mut attributes =
        ty(Type::Object).additional_properties(Some(AdditionalProperties::FreeForm(false)));
    for attr in schema.all_attributes().filter(|a| !a.write_only) {
        attributes = attributes.property(attr.name, attribute_schema(attr));
    }
    let mut relationships = ty(Type::Object);
    for rel in schema.relationships {
        relationships = relationships.property(rel.name, relationship_schema(rel));
    }
    let id: RefOr<Schema> = ty(Type::String)
        .pattern(Some(format!(
            "^{}[0-9A-HJKMNP-TV-Z]{{26}}$",
            schema.id_prefix
        )))
        .into();
    let identifier = ty(Type::Object)
        .property("type", type_const(schema.type_name))
        .property("id", id.clone())
        .property("meta", any_object())
        .required("type")
        .required("id");
    let resource = ty(Type::Object)
        .property("type", type_const(schema.type_name))
        .property("id", id.clone())
        .property("attributes", reference(&format!("{name}Attributes")))
        .property("relationships", reference(&format!("{name}Relationships")))
        .property("links", reference("ResourceLinks"))
        .property("meta", any_object())
        .required("type")
        .required("id");
    let single = top_level(
        ty(Type::Object)
            .property("data", reference(&name))
            .required("data"),
    );
    let collection = top_level(
        ty(Type::Object)
            .property("data", array_of(reference(&name)))
            .required("data"),
    );
    components = components
        .schema(format!("{name}Attributes"), attributes)
        .schema(format!("{name}Relationships"), relationships)
        .schema(format!("{name}Identifier"), identifier)
        .schema(name.clone(), resource)
        .schema(format!("{name}Document"), single)
        .schema(format!("{name}CollectionDocument"), collection);
    if !writable {
        return components;
    }
    let mut create =
        ty(Type::Object).additional_properties(Some(AdditionalProperties::FreeForm(false)));
    let mut update =
        ty(Type::Object).additional_properties(Some(AdditionalProperties::FreeForm(false)));
    for attr in schema.attributes {
        if attr.on_create != OnCreate::Never {
            create = create.property(attr.name, attribute_schema(attr));
            if attr.on_create == OnCreate::Required {
                create = create.required(attr.name);
            }
        }
        if attr.on_update != OnUpdate::Never {
            update = update.property(attr.name, attribute_schema(attr));
        }
    }
    let mut create_rels = ty(Type::Object);
    let mut update_rels = ty(Type::Object);
    for rel in schema.relationships {
        if rel.on_create != OnCreate::Never {
            create_rels = create_rels.property(rel.name, linkage_input(rel));
            if rel.on_create == OnCreate::Required {
                create_rels = create_rels.required(rel.name);
            }
        }
        if rel.on_update != OnUpdate::Never {
            update_rels = update_rels.property(rel.name, linkage_input(rel));
        }
    }
    let create_request = ty(Type::Object)
        .property(
            "data",
            ty(Type::Object)
                .property("type", type_const(schema.type_name))
                .property("lid", string())
                .property("attributes", create)
                .property("relationships", create_rels)
                .required("type"),
        )
        .required("data");
    let update_request = ty(Type::Object)
        .property(
            "data",
            ty(Type::Object)
                .property("type", type_const(schema.type_name))
                .property("id", id)
                .property("attributes", update)
                .property("relationships", update_rels)
                .required("type")
                .required("id"),
        )
        .required("data");
    components
        .schema(format!("{name}CreateRequest"), create_request)
        .schema(format!("{name}UpdateRequest"), update_request)
}

/// A top-level document: `data` as given plus `included`, `links`, `meta`, `jsonapi`.
fn top_level(data: ObjectBuilder) -> ObjectBuilder {
    data.property("included", array_of(reference("Resource")))
        .property("links", reference("DocumentLinks"))
        .property("meta", any_object())
        .property("jsonapi", reference("JsonApi"))
}

fn shared_schemas(components: ComponentsBuilder) -> ComponentsBuilder {
    let link: RefOr<Schema> = OneOfBuilder::new()
        .item(ty(Type::String).description(Some("A URI reference.")))
        .item(ty(Type::Null))
        .into();
    let document_links = [
        "self",
        "related",
        "describedby",
        "first",
        "prev",
        "next",
        "last",
    ]
    .into_iter()
    .fold(ty(Type::Object), |o, name| o.property(name, link.clone()));
    let error_object = ty(Type::Object)
        .property("id", string())
        .property("status", ty(Type::String).pattern(Some("^[45][0-9]{2}$")))
        .property(
            "code",
            ty(Type::String)
                .description(Some("Stable machine-readable code (see the errors page).")),
        )
        .property("title", string())
        .property("detail", string())
        .property(
            "source",
            ty(Type::Object)
                .property(
                    "pointer",
                    ty(Type::String).description(Some("JSON Pointer into the request document")),
                )
                .property("parameter", string())
                .property("header", string()),
        )
        .property("links", any_object())
        .property("meta", any_object())
        .required("status")
        .required("code")
        .required("title");
    let error_document = ty(Type::Object)
        .property(
            "errors",
            ArrayBuilder::new()
                .items(reference("ErrorObject"))
                .min_items(Some(1)),
        )
        .property("meta", any_object())
        .property("jsonapi", reference("JsonApi"))
        .required("errors");
    let resource = ty(Type::Object)
        .property("type", string())
        .property("id", string())
        .property("attributes", any_object())
        .property("relationships", any_object())
        .property("links", reference("ResourceLinks"))
        .property("meta", any_object())
        .required("type")
        .required("id");
    let identifier = ty(Type::Object)
        .property("type", string())
        .property("id", string())
        .property("meta", any_object())
        .required("type")
        .required("id");
    let linkage: RefOr<Schema> = OneOfBuilder::new()
        .item(ty(Type::Null))
        .item(reference("ResourceIdentifier"))
        .item(array_of(reference("ResourceIdentifier")))
        .into();
    components
        .schema(
            "JsonApi",
            ty(Type::Object)
                .property("version", string())
                .property("ext", array_of(string()))
                .property("profile", array_of(string())),
        )
        .schema("DocumentLinks", document_links)
        .schema(
            "ResourceLinks",
            ty(Type::Object).property("self", link.clone()),
        )
        .schema(
            "RelationshipLinks",
            ty(Type::Object)
                .property("self", link.clone())
                .property("related", link),
        )
        .schema("ErrorObject", error_object)
        .schema("ErrorDocument", error_document)
        .schema("Resource", resource)
        .schema("ResourceIdentifier", identifier)
        .schema(
            "AnyDocument",
            top_level(
                ty(Type::Object).property(
                    "data",
                    OneOfBuilder::new()
                        .item(ty(Type::Null))
                        .item(reference("Resource"))
                        .item(array_of(reference("Resource"))),
                ),
            ),
        )
        .schema(
            "LinkageDocument",
            top_level(
                ty(Type::Object)
                    .property("data", linkage.clone())
                    .required("data"),
            ),
        )
        .schema(
            "LinkageRequest",
            ty(Type::Object).property("data", linkage).required("data"),
        )
        .schema(
            "AttributesRequest",
            ty(Type::Object)
                .property(
                    "data",
                    ty(Type::Object)
                        .property("type", string())
                        .property("attributes", any_object())
                        .required("type"),
                )
                .required("data"),
        )
}

fn security_schemes(components: ComponentsBuilder) -> ComponentsBuilder {
    components
        .security_scheme(
            "sessionCookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                SESSION_COOKIE,
                "Session cookie set by POST /api/auth/login.",
            ))),
        )
        .security_scheme(
            "bearerJwt",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("Access token returned by POST /api/auth/login."))
                    .build(),
            ),
        )
        .security_scheme(
            "apiKeyHeader",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "An admin API key.",
            ))),
        )
        .security_scheme(
            "bearerApiKey",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("tollgate API key")
                    .description(Some("An admin API key as a bearer token."))
                    .build(),
            ),
        )
}

/// Any one of the four ways in.
fn security_any() -> Vec<SecurityRequirement> {
    SECURITY
        .iter()
        .map(|name| SecurityRequirement::new(*name, Vec::<String>::new()))
        .collect()
}

// ---------- operation helpers ----------

fn query(name: &str, schema: RefOr<Schema>, description: &str) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .schema(Some(schema))
        .description(Some(description))
        .build()
}

/// `fields[type]` for the type and every type it can include, and `include`.
fn fields_and_include(schema: Option<&ResourceSchema>) -> Vec<Parameter> {
    let Some(schema) = schema else {
        return vec![
            query(
                "fields[TYPE]",
                string(),
                "Sparse fieldset: comma-separated members of type TYPE to render (e.g. `fields[users]=email,name`).",
            ),
            query(
                "include",
                string(),
                "Comma-separated relationship paths to include (at most two levels deep).",
            ),
        ];
    };
    let mut types = vec![schema.type_name];
    for rel in schema.relationships {
        if !types.contains(&rel.target) {
            types.push(rel.target);
        }
    }
    let mut params: Vec<Parameter> = types
        .into_iter()
        .map(|type_name| {
            query(
                &format!("fields[{type_name}]"),
                string(),
                &format!("Sparse fieldset: comma-separated members of `{type_name}` to render."),
            )
        })
        .collect();
    params.push(query(
        "include",
        string(),
        &format!(
            "Comma-separated relationship paths to include (at most two levels deep). \
             Relationships of this type: {}.",
            rel_names(schema)
        ),
    ));
    params
}

fn list_parameters(schema: &ResourceSchema) -> Vec<Parameter> {
    let mut sorts: Vec<String> = ["created_at", "updated_at"]
        .into_iter()
        .chain(schema.sorts.iter().copied())
        .flat_map(|s| [s.to_owned(), format!("-{s}")])
        .collect();
    sorts.dedup();
    let mut params = vec![
        query(
            "page[number]",
            ty(Type::Integer).minimum(Some(1.0)).into(),
            "Page number, from 1.",
        ),
        query(
            "page[size]",
            ty(Type::Integer)
                .minimum(Some(1.0))
                .maximum(Some(MAX_PAGE_SIZE as f64))
                .into(),
            "Page size.",
        ),
        query(
            "sort",
            ty(Type::String).into(),
            &format!(
                "Comma-separated sort fields, `-` for descending. Allowed: {}.",
                sorts.join(", ")
            ),
        ),
        query("filter[id]", string(), "Comma-separated ids (at most 100)."),
        query(
            "filter[created_after]",
            ty(Type::String)
                .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                    utoipa::openapi::KnownFormat::DateTime,
                )))
                .into(),
            "Created at or after this RFC 3339 time.",
        ),
        query(
            "filter[created_before]",
            ty(Type::String)
                .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                    utoipa::openapi::KnownFormat::DateTime,
                )))
                .into(),
            "Created before this RFC 3339 time.",
        ),
    ];
    if !schema.search.is_empty() {
        params.push(query(
            "filter[q]",
            ty(Type::String)
                .min_length(Some(1))
                .max_length(Some(100))
                .into(),
            &format!("Case-insensitive search in {}.", schema.search.join(", ")),
        ));
    }
    for filter in schema.filters {
        let (param_schema, description) = match filter.kind {
            tollgate_domain::schema::FilterKind::Attr(_, AttrType::Enum(values)) => (
                ty(Type::String).into(),
                format!("Comma-separated values (any of): {}.", values.join(", ")),
            ),
            tollgate_domain::schema::FilterKind::Attr(..) => {
                (string(), "Comma-separated values (any of).".to_owned())
            }
            tollgate_domain::schema::FilterKind::ToOne(_)
            | tollgate_domain::schema::FilterKind::ToOneThroughOwner { .. } => (
                string(),
                "Comma-separated ids of the related resource; `none` = no linkage.".to_owned(),
            ),
            tollgate_domain::schema::FilterKind::Custom(_) => (string(), "Filter.".to_owned()),
        };
        params.push(query(
            &format!("filter[{}]", filter.name),
            param_schema,
            &description,
        ));
    }
    params.extend(fields_and_include(Some(schema)));
    params
}

fn json_body(schema: &str) -> ContentBuilder {
    ContentBuilder::new().schema(Some(reference(schema)))
}

fn ok(
    status: &str,
    description: &str,
    schema: Option<&str>,
) -> (String, RefOr<utoipa::openapi::Response>) {
    let response = ResponseBuilder::new().description(description);
    let response = match schema {
        Some(schema) => response.content(JSONAPI, json_body(schema).build()),
        None => response,
    };
    (status.to_owned(), RefOr::T(response.build()))
}

fn error_response() -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description("A JSON:API error document.")
            .content(JSONAPI, json_body("ErrorDocument").build())
            .build(),
    )
}

struct Op {
    summary: String,
    tag: String,
    params: Vec<Parameter>,
    body: Option<String>,
    responses: Vec<(String, RefOr<utoipa::openapi::Response>)>,
    public: bool,
}

impl Op {
    fn new(tag: &str, summary: impl Into<String>) -> Self {
        Self {
            summary: summary.into(),
            tag: tag.to_owned(),
            params: Vec::new(),
            body: None,
            responses: Vec::new(),
            public: false,
        }
    }
    fn params(mut self, params: Vec<Parameter>) -> Self {
        self.params = params;
        self
    }
    fn body(mut self, schema: &str) -> Self {
        self.body = Some(schema.to_owned());
        self
    }
    fn returns(mut self, status: &str, description: &str, schema: Option<&str>) -> Self {
        self.responses.push(ok(status, description, schema));
        self
    }
    fn public(mut self) -> Self {
        self.public = true;
        self
    }
    fn build(self, operation_id: String) -> Operation {
        let mut op = OperationBuilder::new()
            .operation_id(Some(operation_id))
            .summary(Some(self.summary))
            .tag(self.tag)
            .parameters(Some(self.params));
        if let Some(body) = self.body {
            op = op.request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .content(JSONAPI, json_body(&body).build())
                    .build(),
            ));
        }
        for (status, response) in self.responses {
            op = op.response(status, response);
        }
        op = op.response("default", error_response());
        if self.public {
            op = op.securities(Some([SecurityRequirement::default()]));
        }
        op.build()
    }
}

/// Adds one operation; the operation id is `method` + path.
fn add(paths: PathsBuilder, path: &str, method: HttpMethod, op: Op) -> PathsBuilder {
    let verb = match method {
        HttpMethod::Get => "get",
        HttpMethod::Post => "post",
        HttpMethod::Patch => "patch",
        HttpMethod::Delete => "delete",
        HttpMethod::Put => "put",
        _ => "other",
    };
    let id = format!(
        "{verb}{}",
        path.replace(['{', '}'], "")
            .split(['/', '-'])
            .filter(|p| !p.is_empty())
            .map(|p| p.replace('.', "_"))
            .map(|p| format!("_{p}"))
            .collect::<String>()
    );
    paths.path(path, PathItem::new(method, op.build(id)))
}

fn writable_paths(mut paths: PathsBuilder, schema: &ResourceSchema) -> PathsBuilder {
    let p = schema.path;
    let name = type_name_pascal(schema.type_name);
    let tag = p;
    paths = add(
        paths,
        &format!("/api/{p}"),
        HttpMethod::Get,
        Op::new(tag, format!("List {p}"))
            .params(list_parameters(schema))
            .returns(
                "200",
                "A page of resources.",
                Some(&format!("{name}CollectionDocument")),
            ),
    );
    paths = add(
        paths,
        &format!("/api/{p}"),
        HttpMethod::Post,
        Op::new(tag, format!("Create one of {p}"))
            .params(fields_and_include(Some(schema)))
            .body(&format!("{name}CreateRequest"))
            .returns("201", "Created.", Some(&format!("{name}Document"))),
    );
    paths = one_paths(paths, schema, true);
    paths
}

fn read_only_paths(mut paths: PathsBuilder, schema: &ResourceSchema) -> PathsBuilder {
    let p = schema.path;
    let name = type_name_pascal(schema.type_name);
    if p != "webhook-deliveries" {
        paths = add(
            paths,
            &format!("/api/{p}"),
            HttpMethod::Get,
            Op::new(p, format!("List {p}"))
                .params(list_parameters(schema))
                .returns(
                    "200",
                    "A page of resources.",
                    Some(&format!("{name}CollectionDocument")),
                ),
        );
    }
    one_paths(paths, schema, false)
}

fn rel_names(schema: &ResourceSchema) -> String {
    schema
        .relationships
        .iter()
        .map(|r| r.name)
        .collect::<Vec<_>>()
        .join(", ")
}

fn one_paths(mut paths: PathsBuilder, schema: &ResourceSchema, writable: bool) -> PathsBuilder {
    let p = schema.path;
    let name = type_name_pascal(schema.type_name);
    let one = format!("/api/{p}/{{id}}");
    paths = add(
        paths,
        &one,
        HttpMethod::Get,
        Op::new(p, format!("Fetch one of {p}"))
            .params(fields_and_include(Some(schema)))
            .returns("200", "The resource.", Some(&format!("{name}Document"))),
    );
    let linkage = format!("/api/{p}/{{id}}/relationships/{{rel}}");
    let related = format!("/api/{p}/{{id}}/{{rel}}");
    let rels = rel_names(schema);
    paths = add(
        paths,
        &linkage,
        HttpMethod::Get,
        Op::new(p, format!("Linkage of a relationship ({rels})")).returns(
            "200",
            "The linkage.",
            Some("LinkageDocument"),
        ),
    );
    paths = add(
        paths,
        &related,
        HttpMethod::Get,
        Op::new(p, format!("Related resources of a relationship ({rels})"))
            .params(
                [
                    query(
                        "page[number]",
                        ty(Type::Integer).minimum(Some(1.0)).into(),
                        "Page number (to-many relationships).",
                    ),
                    query(
                        "page[size]",
                        ty(Type::Integer)
                            .minimum(Some(1.0))
                            .maximum(Some(MAX_PAGE_SIZE as f64))
                            .into(),
                        "Page size (to-many relationships).",
                    ),
                    query("sort", string(), "Sort fields (to-many relationships)."),
                ]
                .into_iter()
                .chain(fields_and_include(None))
                .collect(),
            )
            .returns(
                "200",
                "The related resource or resources.",
                Some("AnyDocument"),
            ),
    );
    if !writable {
        return paths;
    }
    paths = add(
        paths,
        &one,
        HttpMethod::Patch,
        Op::new(p, format!("Update one of {p}"))
            .params(fields_and_include(Some(schema)))
            .body(&format!("{name}UpdateRequest"))
            .returns(
                "200",
                "The updated resource.",
                Some(&format!("{name}Document")),
            ),
    );
    paths = add(
        paths,
        &one,
        HttpMethod::Delete,
        Op::new(p, format!("Delete one of {p}")).returns("204", "Deleted.", None),
    );
    paths = add(
        paths,
        &linkage,
        HttpMethod::Patch,
        Op::new(p, "Replace the linkage of a writable relationship")
            .body("LinkageRequest")
            .returns("200", "The new linkage.", Some("LinkageDocument"))
            .returns("204", "Replaced.", None),
    );
    if p == "groups" {
        paths = add(
            paths,
            &linkage,
            HttpMethod::Post,
            Op::new(p, "Add members (`members` relationship)")
                .body("LinkageRequest")
                .returns("200", "The new linkage.", Some("LinkageDocument"))
                .returns("204", "Added.", None),
        );
        paths = add(
            paths,
            &linkage,
            HttpMethod::Delete,
            Op::new(p, "Remove members (`members` relationship)")
                .body("LinkageRequest")
                .returns("200", "The new linkage.", Some("LinkageDocument"))
                .returns("204", "Removed.", None),
        );
    }
    paths
}

/// The endpoints that are not generic per resource type.
fn explicit_paths(mut paths: PathsBuilder) -> PathsBuilder {
    let text = |paths: PathsBuilder, path: &str, tag: &str, summary: &str, ct: &str| {
        let op = OperationBuilder::new()
            .operation_id(Some(format!("get{}", path.replace(['/', '.', '-'], "_"))))
            .summary(Some(summary))
            .tag(tag)
            .response(
                "200",
                ResponseBuilder::new()
                    .description(summary)
                    // YAML is a structured document (clients parse it); HTML and Prometheus
                    // text are plain strings.
                    .content(
                        ct,
                        ContentBuilder::new()
                            .schema(Some(if ct == "application/yaml" {
                                any_object()
                            } else {
                                string()
                            }))
                            .build(),
                    )
                    .build(),
            )
            .securities(Some([SecurityRequirement::default()]))
            .build();
        paths.path(path, PathItem::new(HttpMethod::Get, op))
    };
    let plain_json = |paths: PathsBuilder, path: &str, summary: &str| {
        let op = OperationBuilder::new()
            .operation_id(Some(format!("get{}", path.replace(['/', '.', '-'], "_"))))
            .summary(Some(summary))
            .tag("operations")
            .response(
                "200",
                ResponseBuilder::new()
                    .description(summary)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(ty(Type::Object).property("status", string())))
                            .build(),
                    )
                    .build(),
            )
            .response(
                "503",
                ResponseBuilder::new()
                    .description("Not ready (the database or the configuration is unavailable).")
                    .content(
                        "application/json",
                        ContentBuilder::new().schema(Some(any_object())).build(),
                    )
                    .build(),
            )
            .securities(Some([SecurityRequirement::default()]))
            .build();
        paths.path(path, PathItem::new(HttpMethod::Get, op))
    };
    paths = plain_json(paths, "/health", "Liveness: the process answers.");
    paths = plain_json(
        paths,
        "/ready",
        "Readiness: database reachable, configuration loaded.",
    );
    paths = text(
        paths,
        "/metrics",
        "operations",
        "Prometheus metrics (text exposition format).",
        "text/plain",
    );
    paths = text(
        paths,
        "/docs",
        "docs",
        "This document as an interactive page (Scalar), served from the binary: it loads \
         nothing from other origins.",
        "text/html",
    );
    paths = text(
        paths,
        super::docs::SCALAR_PATH,
        "docs",
        &format!(
            "The script of the /docs page (Scalar API Reference {}), gzip-encoded when \
             accepted, cacheable for a year.",
            super::docs::SCALAR_VERSION
        ),
        "text/javascript",
    );
    paths = {
        let op = OperationBuilder::new()
            .operation_id(Some("get_docs_openapi_json"))
            .summary(Some("This OpenAPI document (JSON)."))
            .tag("docs")
            .response(
                "200",
                ResponseBuilder::new()
                    .description("The OpenAPI 3.1 document.")
                    .content(
                        "application/json",
                        ContentBuilder::new().schema(Some(any_object())).build(),
                    )
                    .build(),
            )
            .securities(Some([SecurityRequirement::default()]))
            .build();
        paths.path("/docs/openapi.json", PathItem::new(HttpMethod::Get, op))
    };
    paths = text(
        paths,
        "/docs/openapi.yaml",
        "docs",
        "This OpenAPI document (YAML).",
        "application/yaml",
    );

    let auth_post = |paths: PathsBuilder,
                     path: &str,
                     summary: &str,
                     public: bool,
                     ok: (&str, &str, Option<&str>)| {
        let op = Op::new("auth", summary)
            .body("AttributesRequest")
            .returns(ok.0, ok.1, ok.2);
        let op = if public { op.public() } else { op };
        add(paths, path, HttpMethod::Post, op)
    };
    paths = auth_post(
        paths,
        "/api/auth/login",
        "Log in with email and password: sets the session cookie and returns an access token (JWT).",
        true,
        ("200", "Logged in.", Some("AnyDocument")),
    );
    paths = auth_post(
        paths,
        "/api/auth/logout",
        "Log out: ends the session.",
        false,
        ("204", "Logged out.", None),
    );
    paths = auth_post(
        paths,
        "/api/auth/sessions/recycle",
        "End every other session of the caller.",
        false,
        ("204", "Recycled.", None),
    );
    paths = auth_post(
        paths,
        "/api/users/{id}/sessions/recycle",
        "End every session of a user (admin).",
        false,
        ("204", "Recycled.", None),
    );
    paths = auth_post(
        paths,
        "/api/auth/password",
        "Change the caller's password (`current_password`, `password`).",
        false,
        ("204", "Changed.", None),
    );
    paths = auth_post(
        paths,
        "/api/auth/register",
        "Self-registration, when enabled.",
        true,
        ("201", "Registered.", Some("UsersDocument")),
    );
    paths = auth_post(
        paths,
        "/api/auth/forgot-password",
        "Ask for a password-reset email (always the same 200).",
        true,
        ("200", "A message in `meta`.", Some("AnyDocument")),
    );
    paths = auth_post(
        paths,
        "/api/auth/reset-password",
        "Set a new password with a reset token.",
        true,
        ("200", "A message in `meta`.", Some("AnyDocument")),
    );
    paths = add(
        paths,
        "/api/auth/me",
        HttpMethod::Get,
        Op::new("auth", "The caller's own user.")
            .params(fields_and_include(None))
            .returns("200", "The caller.", Some("UsersDocument")),
    );
    paths = add(
        paths,
        "/api/auth/me",
        HttpMethod::Patch,
        Op::new("auth", "Update the caller's own profile.")
            .body("UsersUpdateRequest")
            .returns("200", "The caller.", Some("UsersDocument")),
    );
    paths = super::usage_openapi::paths(paths);
    let action = |paths: PathsBuilder,
                  path: &str,
                  tag: &str,
                  summary: &str,
                  ok: (&str, &str, Option<&str>)| {
        add(
            paths,
            path,
            HttpMethod::Post,
            Op::new(tag, summary).returns(ok.0, ok.1, ok.2),
        )
    };
    paths = action(
        paths,
        "/api/api-keys/{id}/revoke",
        "api-keys",
        "Revoke an API key now.",
        ("200", "The revoked key.", Some("ApiKeysDocument")),
    );
    paths = action(
        paths,
        "/api/api-keys/{id}/rotate",
        "api-keys",
        "Issue a new secret for an API key; the response shows it once.",
        (
            "200",
            "The key with its new secret in `meta`.",
            Some("ApiKeysDocument"),
        ),
    );
    paths = action(
        paths,
        "/api/webhooks/{id}/test",
        "webhooks",
        "Send a test event to the webhook.",
        ("200", "The delivery.", Some("WebhookDeliveriesDocument")),
    );
    paths = action(
        paths,
        "/api/webhooks/{id}/rotate-secret",
        "webhooks",
        "Issue a new signing secret; the response shows it once.",
        (
            "200",
            "The webhook with its new secret in `meta`.",
            Some("WebhooksDocument"),
        ),
    );
    paths = action(
        paths,
        "/api/webhooks/{id}/deliveries/{did}/redeliver",
        "webhooks",
        "Queue a delivery again.",
        ("202", "Queued.", Some("WebhookDeliveriesDocument")),
    );
    paths = add(
        paths,
        "/api/webhooks/{id}/deliveries/{did}",
        HttpMethod::Get,
        Op::new("webhooks", "One delivery of the webhook.")
            .params(fields_and_include(None))
            .returns("200", "The delivery.", Some("WebhookDeliveriesDocument")),
    );
    paths
}

/// Declares every `{name}` of each path template as a required path parameter.
fn declare_path_parameters(paths: &mut Paths) {
    for (path, item) in paths.paths.iter_mut() {
        let names: Vec<&str> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        if names.is_empty() {
            continue;
        }
        let parameters = names
            .into_iter()
            .map(|name| {
                let description = match name {
                    "id" => "Id of the resource.",
                    "rel" => "Name of a relationship of the type.",
                    "did" => "Id of the delivery.",
                    _ => "Path segment.",
                };
                let schema = match (name, rels_of_path(path)) {
                    ("rel", Some(rels)) if !rels.is_empty() => {
                        ty(Type::String).enum_values(Some(rels)).into()
                    }
                    _ => string(),
                };
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(schema))
                    .description(Some(description))
                    .build()
            })
            .map(RefOr::T)
            .collect();
        item.parameters = Some(parameters);
    }
}

/// The relationship names of the type behind `/api/{path}/...`.
fn rels_of_path(path: &str) -> Option<Vec<&'static str>> {
    let segment = path.strip_prefix("/api/")?.split('/').next()?;
    let rules = domain_resources::ALL
        .into_iter()
        .chain(domain_resources::READ_ONLY)
        .find(|r| r.schema().path == segment)?;
    Some(
        rules
            .schema()
            .relationships
            .iter()
            .map(|r| r.name)
            .collect(),
    )
}
