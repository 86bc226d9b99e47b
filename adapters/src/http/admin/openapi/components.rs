//! The shared component schemas (links, identifiers, errors, documents) and the security
//! schemes.

use super::*;

pub(super) fn shared_schemas(components: ComponentsBuilder) -> ComponentsBuilder {
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

pub(super) fn security_schemes(components: ComponentsBuilder) -> ComponentsBuilder {
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
pub(super) fn security_any() -> Vec<SecurityRequirement> {
    SECURITY
        .iter()
        .map(|name| SecurityRequirement::new(*name, Vec::<String>::new()))
        .collect()
}
