//! The OpenAPI document: served without authentication, OpenAPI 3.1 in structure, and covering
//! every route the admin listener registers (so none can be added undocumented).
//!
//! Validation is twofold: against the official OpenAPI 3.1 meta-schema
//! (`tests/openapi/oas-3.1-schema-2022-10-07.json`, the schema published at
//! https://spec.openapis.org/oas/3.1/schema/2022-10-07, vendored), and by rules the meta-schema
//! does not express (path templates declared, references resolving, unique operation ids).

use std::collections::{BTreeMap, BTreeSet};

use reqwest::StatusCode;
use serde_json::Value;
use tollgate_tests::{TestApp, spawn_app};

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

async fn fetch(app: &TestApp, path: &str) -> (String, String) {
    let response = app
        .client
        .get(app.url(path))
        .send()
        .await
        .expect("docs answer");
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    (content_type, response.text().await.expect("body"))
}

async fn document(app: &TestApp) -> Value {
    let (content_type, body) = fetch(app, "/docs/openapi.json").await;
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    serde_json::from_str(&body).expect("the document is JSON")
}

/// Every `$ref` in `value`, with where it sits.
fn refs<'a>(value: &'a Value, at: String, out: &mut Vec<(String, &'a str)>) {
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                if key == "$ref" {
                    out.push((at.clone(), item.as_str().expect("$ref is a string")));
                } else {
                    refs(item, format!("{at}/{key}"), out);
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                refs(item, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

/// Every violation of the OpenAPI 3.1 meta-schema.
fn meta_schema_errors(doc: &Value) -> Vec<String> {
    let meta: Value =
        serde_json::from_str(include_str!("../../openapi/oas-3.1-schema-2022-10-07.json"))
            .expect("meta-schema is JSON");
    let validator = jsonschema::validator_for(&meta).expect("the meta-schema compiles");
    validator
        .iter_errors(doc)
        .map(|error| format!("{}: {error}", error.instance_path()))
        .collect()
}

/// The structural rules of OpenAPI 3.1 a generated document could break.
fn check_structure(doc: &Value) {
    let version = doc["openapi"].as_str().expect("openapi is a string");
    assert!(version.starts_with("3.1."), "openapi = {version}");
    assert!(doc["info"]["title"].is_string(), "info.title");
    assert!(doc["info"]["version"].is_string(), "info.version");
    let paths = doc["paths"].as_object().expect("paths is an object");
    assert!(!paths.is_empty());

    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .expect("security schemes");
    for (name, scheme) in schemes {
        match scheme["type"].as_str() {
            Some("apiKey") => {
                assert!(scheme["name"].is_string(), "{name}.name");
                assert!(
                    matches!(scheme["in"].as_str(), Some("query" | "header" | "cookie")),
                    "{name}.in"
                );
            }
            Some("http") => assert!(scheme["scheme"].is_string(), "{name}.scheme"),
            other => panic!("{name}: unexpected scheme type {other:?}"),
        }
    }
    let check_security = |security: &Value, at: &str| {
        for requirement in security.as_array().expect("security is an array") {
            for name in requirement.as_object().expect("requirement object").keys() {
                assert!(schemes.contains_key(name), "{at}: unknown scheme {name}");
            }
        }
    };
    check_security(&doc["security"], "document");

    let mut tags = BTreeSet::new();
    for tag in doc["tags"].as_array().expect("tags") {
        let name = tag["name"].as_str().expect("tag name");
        assert!(tags.insert(name), "duplicate tag {name}");
    }

    let mut operation_ids = BTreeSet::new();
    for (path, item) in paths {
        assert!(path.starts_with('/'), "{path}");
        let item = item.as_object().expect("path item object");
        for key in item.keys() {
            assert!(
                METHODS.contains(&key.as_str())
                    || ["summary", "description", "servers", "parameters", "$ref"]
                        .contains(&key.as_str()),
                "{path}: unexpected member {key}"
            );
        }
        let templated: BTreeSet<&str> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        let path_level: Vec<&Value> = item
            .get("parameters")
            .map(|p| p.as_array().unwrap().iter().collect())
            .unwrap_or_default();
        for (method, operation) in item.iter().filter(|(k, _)| METHODS.contains(&k.as_str())) {
            let at = format!("{method} {path}");
            let id = operation["operationId"].as_str().expect("operationId");
            assert!(
                operation_ids.insert(id.to_owned()),
                "{at}: duplicate operationId {id}"
            );
            let parameters: Vec<&Value> = path_level
                .iter()
                .copied()
                .chain(
                    operation
                        .get("parameters")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten(),
                )
                .collect();
            let mut seen = BTreeSet::new();
            for parameter in &parameters {
                let name = parameter["name"].as_str().expect("parameter name");
                let location = parameter["in"].as_str().expect("parameter in");
                assert!(
                    matches!(location, "query" | "header" | "path" | "cookie"),
                    "{at}: {name} in {location}"
                );
                assert!(
                    parameter.get("schema").is_some() || parameter.get("content").is_some(),
                    "{at}: {name} has neither schema nor content"
                );
                if location == "path" {
                    assert_eq!(parameter["required"], true, "{at}: path parameter {name}");
                    assert!(templated.contains(name), "{at}: {name} not in the template");
                }
                seen.insert((name, location));
            }
            for name in &templated {
                assert!(
                    seen.contains(&(*name, "path")),
                    "{at}: {{{name}}} undeclared"
                );
            }
            let responses = operation["responses"].as_object().expect("responses");
            assert!(!responses.is_empty(), "{at}: no responses");
            for (status, response) in responses {
                let valid = status == "default"
                    || (status.len() == 3
                        && status.starts_with(['1', '2', '3', '4', '5'])
                        && (status[1..].chars().all(|c| c.is_ascii_digit())
                            || &status[1..] == "XX"));
                assert!(valid, "{at}: response key {status}");
                assert!(response["description"].is_string(), "{at} {status}");
            }
            if let Some(body) = operation.get("requestBody") {
                assert!(body["content"].is_object(), "{at}: requestBody.content");
            }
            if let Some(security) = operation.get("security") {
                check_security(security, &at);
            }
        }
    }

    let mut found = Vec::new();
    refs(doc, String::new(), &mut found);
    assert!(!found.is_empty());
    for (at, reference) in found {
        assert!(
            resolve(doc, reference).is_some(),
            "{at}: $ref {reference} does not resolve"
        );
    }
}

#[tokio::test]
async fn the_document_is_openapi_3_1() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let errors = meta_schema_errors(&doc);
    assert!(errors.is_empty(), "{errors:#?}");
    // The validator is not vacuous: a broken copy fails.
    let mut broken = doc.clone();
    broken["info"] = Value::Null;
    broken["paths"]["no-slash"] = serde_json::json!({});
    assert!(meta_schema_errors(&broken).len() >= 2);
    check_structure(&doc);

    // JSON:API specifics: the media type, the error document, the query parameters.
    let list = &doc["paths"]["/api/users"]["get"];
    let names: Vec<&str> = list["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for wanted in [
        "page[number]",
        "page[size]",
        "sort",
        "filter[id]",
        "include",
    ] {
        assert!(names.contains(&wanted), "{wanted} missing from {names:?}");
    }
    assert!(names.iter().any(|n| n.starts_with("fields[")), "{names:?}");
    assert_eq!(
        list["responses"]["200"]["content"]["application/vnd.api+json"]["schema"]["$ref"],
        "#/components/schemas/UsersCollectionDocument"
    );
    assert_eq!(
        list["responses"]["default"]["content"]["application/vnd.api+json"]["schema"]["$ref"],
        "#/components/schemas/ErrorDocument"
    );
    let create = &doc["paths"]["/api/users"]["post"]["requestBody"];
    assert_eq!(
        create["content"]["application/vnd.api+json"]["schema"]["$ref"],
        "#/components/schemas/UsersCreateRequest"
    );
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["ErrorDocument"]["properties"]["errors"]["items"]["$ref"],
        "#/components/schemas/ErrorObject"
    );
    // Write-only attributes are accepted on create but never rendered.
    let user_create =
        &schemas["UsersCreateRequest"]["properties"]["data"]["properties"]["attributes"];
    assert!(
        user_create["properties"]["password"].is_object(),
        "{user_create}"
    );
    assert!(schemas["UsersAttributes"]["properties"]["password"].is_null());
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    assert_eq!(schemes["sessionCookie"]["in"], "cookie");
    assert_eq!(schemes["sessionCookie"]["name"], "tollgate_session");
    assert_eq!(schemes["bearerJwt"]["bearerFormat"], "JWT");
    assert_eq!(schemes["apiKeyHeader"]["name"], "X-API-Key");
    assert_eq!(schemes["bearerApiKey"]["scheme"], "bearer");
}

#[tokio::test]
async fn every_admin_route_is_documented_and_nothing_else() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let documented: BTreeMap<&str, BTreeSet<String>> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(path, item)| {
            let methods = item
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| METHODS.contains(&k.as_str()))
                .cloned()
                .collect();
            (path.as_str(), methods)
        })
        .collect();
    let mut registered: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for route in tollgate::ops::admin_routes() {
        registered
            .entry(route.path)
            .or_default()
            .extend(route.methods.iter().map(|m| m.to_lowercase()));
    }
    assert!(registered.len() > 40, "{registered:?}");
    for (path, methods) in &registered {
        let Some(found) = documented.get(path.as_str()) else {
            panic!("{path} is registered but not in the OpenAPI document");
        };
        assert_eq!(found, methods, "methods of {path}");
    }
    for path in documented.keys() {
        assert!(
            registered.contains_key(*path),
            "{path} is documented but not registered"
        );
    }
}

#[tokio::test]
async fn the_docs_page_and_the_yaml_form_are_served() {
    let app = spawn_app().await;
    let json = document(&app).await;

    let (content_type, html) = fetch(&app, "/docs").await;
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(
        html.contains("<html") || html.contains("<!doctype html"),
        "{html}"
    );
    assert!(html.to_lowercase().contains("scalar"), "{html}");

    let (content_type, yaml) = fetch(&app, "/docs/openapi.yaml").await;
    assert!(
        content_type.starts_with("application/yaml"),
        "{content_type}"
    );
    let parsed: Value = yaml_serde::from_str(&yaml).expect("the YAML parses");
    assert_eq!(parsed["openapi"], json["openapi"]);
    let keys = |doc: &Value| -> Vec<String> {
        doc["paths"].as_object().unwrap().keys().cloned().collect()
    };
    assert_eq!(keys(&parsed), keys(&json));
    assert_eq!(
        parsed["components"]["schemas"].as_object().unwrap().len(),
        json["components"]["schemas"].as_object().unwrap().len()
    );
}

#[tokio::test]
async fn resource_documents_point_at_the_served_document() {
    let app = spawn_app().await;
    let path = format!("/api/users/{}/relationships/plan", app.admin_id);
    let reply = app.send(app.request(reqwest::Method::GET, &path)).await;
    reply.expect(200);
    let describedby = reply.body["links"]["describedby"]
        .as_str()
        .expect("describedby link");
    assert!(describedby.ends_with("/docs/openapi.json"), "{describedby}");
    let path = describedby
        .strip_prefix(&app.admin)
        .unwrap_or(describedby)
        .to_owned();
    fetch(&app, &path).await;
}

/// The vendored Scalar bundle, read from the repository (what the binary must serve verbatim).
fn vendored_bundle() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../adapters/assets/scalar/standalone.js"
    );
    std::fs::read(path).expect("the vendored bundle is in the repository")
}

/// Values of every `name="…"` attribute in `html`.
fn attribute_values<'a>(html: &'a str, name: &str) -> Vec<&'a str> {
    let needle = format!("{name}=\"");
    let mut values = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find(&needle) {
        let after = &rest[at + needle.len()..];
        let end = after.find('"').expect("attribute closed");
        values.push(&after[..end]);
        rest = &after[end..];
    }
    values
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

async fn docs_page(app: &TestApp) -> (reqwest::header::HeaderMap, String) {
    let response = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    (headers, response.text().await.unwrap())
}

/// The script the page loads, by its `src`.
fn script_path(html: &str) -> String {
    let sources = attribute_values(html, "src");
    assert_eq!(sources.len(), 1, "one script with a src: {html}");
    sources[0].to_owned()
}

#[tokio::test]
async fn the_docs_page_loads_nothing_from_another_origin() {
    let app = spawn_app().await;
    let (headers, html) = docs_page(&app).await;
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");

    let mut urls = attribute_values(&html, "src");
    urls.extend(attribute_values(&html, "href"));
    assert!(!urls.is_empty(), "{html}");
    for url in &urls {
        let lower = url.to_ascii_lowercase();
        assert!(
            !lower.starts_with("http:") && !lower.starts_with("https:") && !lower.starts_with("//"),
            "{url} is on another origin"
        );
    }
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "{html}"
    );
    let script = script_path(&html);
    assert!(script.starts_with("/docs/assets/"), "{script}");

    // Scalar's own configuration: the local document, no web fonts, no Scalar services.
    let config = attribute_values(&html, "data-configuration");
    assert_eq!(config.len(), 1, "{html}");
    let config: Value = serde_json::from_str(&config[0].replace("&quot;", "\"")).unwrap();
    assert_eq!(config["url"], "/docs/openapi.json");
    assert_eq!(config["withDefaultFonts"], false);
    assert_eq!(config["proxyUrl"], "");
    assert_eq!(config["telemetry"], false);
    assert_eq!(config["agent"]["disabled"], true);
    assert_eq!(config["mcp"]["disabled"], true);
    assert_eq!(config["showDeveloperTools"], "never");
    // No inline script: the only script element without src is a JSON data block.
    assert_eq!(html.matches("<script").count(), 2, "{html}");
    assert!(html.contains(r#"<script id="api-reference" type="application/json""#));

    let csp = headers["content-security-policy"].to_str().unwrap();
    let directives: BTreeMap<&str, &str> = csp
        .split(';')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.split_once(' ').unwrap_or((d, "")))
        .collect();
    assert_eq!(directives["default-src"], "'none'", "{csp}");
    assert_eq!(directives["script-src"], "'self'", "{csp}");
    assert_eq!(directives["connect-src"], "'self'", "{csp}");
    assert_eq!(directives["font-src"], "'self'", "{csp}");
    assert!(!csp.contains("http"), "{csp}");
    assert!(!csp.contains("unsafe-eval"), "{csp}");

    // What the page names is served.
    fetch(&app, "/docs/openapi.json").await;
    let reply = app.client.get(app.url(&script)).send().await.unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_docs_script_is_the_vendored_bundle_cached_forever() {
    let app = spawn_app().await;
    let (_, html) = docs_page(&app).await;
    let script = script_path(&html);
    assert!(
        script.contains("1.76.4"),
        "the path names the version: {script}"
    );
    let vendored = vendored_bundle();

    // Without Accept-Encoding: the file as vendored.
    let reply = app.client.get(app.url(&script)).send().await.unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    let headers = reply.headers().clone();
    assert_eq!(headers["content-type"], "text/javascript; charset=utf-8");
    assert_eq!(
        headers["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert!(headers.get("content-encoding").is_none(), "{headers:?}");
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let body = reply.bytes().await.unwrap();
    assert_eq!(body.len(), vendored.len());
    assert_eq!(sha256(&body), sha256(&vendored));

    // With gzip: a compressed body that inflates to the same file, under its own tag.
    // (The tests' reqwest has no gzip feature: bodies arrive as sent.)
    let reply = app
        .client
        .get(app.url(&script))
        .header("Accept-Encoding", "gzip, deflate, br")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    let headers = reply.headers().clone();
    assert_eq!(headers["content-encoding"], "gzip");
    assert_eq!(headers["content-type"], "text/javascript; charset=utf-8");
    assert_eq!(headers["vary"], "Accept-Encoding");
    assert_eq!(
        headers["cache-control"],
        "public, max-age=31536000, immutable"
    );
    let gzip_etag = headers["etag"].to_str().unwrap().to_owned();
    assert_ne!(gzip_etag, etag);
    let compressed = reply.bytes().await.unwrap();
    assert!(
        compressed.len() < vendored.len() / 2,
        "{} bytes",
        compressed.len()
    );
    let mut inflated = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&compressed[..]),
        &mut inflated,
    )
    .expect("a gzip body");
    assert_eq!(sha256(&inflated), sha256(&vendored));

    // gzip refused explicitly: the plain file.
    let reply = app
        .client
        .get(app.url(&script))
        .header("Accept-Encoding", "gzip;q=0, identity")
        .send()
        .await
        .unwrap();
    assert!(reply.headers().get("content-encoding").is_none());
    assert_eq!(reply.bytes().await.unwrap().len(), vendored.len());

    // Revalidation by tag: 304 without a body, per representation.
    for (tag, encoding) in [(&etag, None), (&gzip_etag, Some("gzip"))] {
        let mut request = app
            .client
            .get(app.url(&script))
            .header("If-None-Match", tag.as_str());
        if let Some(encoding) = encoding {
            request = request.header("Accept-Encoding", encoding);
        }
        let reply = request.send().await.unwrap();
        assert_eq!(reply.status(), StatusCode::NOT_MODIFIED, "{tag}");
        assert_eq!(reply.headers()["etag"].to_str().unwrap(), tag.as_str());
        assert!(reply.bytes().await.unwrap().is_empty());
    }
    // The plain tag does not validate the gzip representation.
    let reply = app
        .client
        .get(app.url(&script))
        .header("If-None-Match", etag.as_str())
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_docs_script_answers_concurrent_first_requests_alike() {
    // The gzip copy is made once, at the first request: parallel first requests all get it.
    let app = spawn_app().await;
    let (_, html) = docs_page(&app).await;
    let script = script_path(&html);
    let vendored = sha256(&vendored_bundle());
    let requests = (0..8).map(|_| {
        let request = app
            .client
            .get(app.url(&script))
            .header("Accept-Encoding", "gzip");
        async move {
            let reply = request.send().await.unwrap();
            assert_eq!(reply.status(), StatusCode::OK);
            assert_eq!(reply.headers()["content-encoding"], "gzip");
            let body = reply.bytes().await.unwrap();
            let mut inflated = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut inflated)
                .unwrap();
            sha256(&inflated)
        }
    });
    for digest in futures_util::future::join_all(requests).await {
        assert_eq!(digest, vendored);
    }
}
