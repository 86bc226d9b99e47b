//! `/api/upstreams`.

use serde_json::{Map, Value, json};
use tollgate_tests::{Reply, TestApp, link, spawn_app};

async fn post_upstream(app: &TestApp, attributes: Value) -> Reply {
    app.post(
        "/api/upstreams",
        json!({"data": {"type": "upstreams", "attributes": attributes}}),
    )
    .await
}

async fn create_upstream_with(app: &TestApp, attributes: Value) -> Reply {
    let reply = post_upstream(app, attributes).await;
    reply.expect(201);
    reply
}

async fn create_route(app: &TestApp, name: &str, upstream: &str) -> String {
    app.create(
        "routes",
        "routes",
        json!({"name": name, "path_pattern": format!("/{}", name.to_lowercase())}),
        json!({"upstream": link("upstreams", upstream)}),
    )
    .await
    .id()
}

async fn create_group(app: &TestApp, name: &str) -> String {
    app.create(
        "groups",
        "groups",
        json!({ "name": name }),
        json!({"owner": link("users", &app.admin_id)}),
    )
    .await
    .id()
}

fn ids(reply: &Reply) -> Vec<String> {
    reply.body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("data is an array: {}", reply.body))
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Asserts that no write-only attribute shows up anywhere in a resource object.
#[track_caller]
fn assert_no_secrets(resource: &Value) {
    let attrs = resource["attributes"]
        .as_object()
        .unwrap_or_else(|| panic!("a resource object: {resource}"));
    assert!(
        !attrs.contains_key("auth_value"),
        "auth_value is write-only: {resource}"
    );
    assert!(
        !attrs.contains_key("group_credentials"),
        "group_credentials is write-only: {resource}"
    );
    let text = resource.to_string();
    for secret in ["s3cr3t-token", "group-secret-1", "group-secret-2"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
}

#[tokio::test]
async fn crud_happy_path() {
    let app = spawn_app().await;
    let created = create_upstream_with(
        &app,
        json!({"name": "  Billing  ", "base_url": "https://billing.example.com/v1/"}),
    )
    .await;
    let id = created.id();
    assert!(id.starts_with("ups_") && id.len() == 30, "{id}");
    assert_eq!(
        created.header("location"),
        Some(format!("/api/upstreams/{id}").as_str())
    );
    assert_eq!(created.body["jsonapi"], json!({"version": "1.1"}));
    assert_eq!(created.body["data"]["type"], json!("upstreams"));
    let attrs = created.body["data"]["attributes"].as_object().unwrap();
    for (name, value) in [
        ("name", json!("Billing")),
        ("description", json!("")),
        ("base_url", json!("https://billing.example.com/v1")),
        ("timeout_ms", json!(30_000)),
        ("connect_timeout_ms", json!(5_000)),
        ("headers", json!({})),
        ("auth_type", json!("none")),
        ("auth_header", Value::Null),
        ("health_check_path", Value::Null),
        ("health", json!("unknown")),
        ("health_checked_at", Value::Null),
        ("enabled", json!(true)),
    ] {
        assert_eq!(attrs.get(name), Some(&value), "{name}: {}", created.body);
    }
    assert!(attrs["created_at"].as_str().unwrap().ends_with('Z'));
    assert_no_secrets(&created.body["data"]);
    let rels = &created.body["data"]["relationships"];
    for to_many in ["routes", "credential_groups"] {
        assert!(
            rels[to_many].get("data").is_none(),
            "to-many linkage only when included: {}",
            created.body
        );
        assert_eq!(
            rels[to_many]["links"],
            json!({"self": format!("/api/upstreams/{id}/relationships/{to_many}"),
                   "related": format!("/api/upstreams/{id}/{to_many}")})
        );
    }
    assert_eq!(
        created.body["data"]["links"]["self"],
        json!(format!("/api/upstreams/{id}"))
    );

    let fetched = app.get(&format!("/api/upstreams/{id}")).await;
    fetched.expect(200);
    assert_eq!(fetched.body["data"], created.body["data"]);

    let list = app.get("/api/upstreams").await;
    list.expect(200);
    assert_eq!(ids(&list), vec![id.clone()]);
    assert_eq!(list.body["meta"]["total"], json!(1));
    assert_eq!(list.body["data"][0], created.body["data"]);

    let patched = app
        .patch_attributes("upstreams", "upstreams", &id, json!({"timeout_ms": 1500}))
        .await;
    patched.expect(200);
    assert_eq!(patched.attr("timeout_ms"), &json!(1500));
    for (name, value) in created.body["data"]["attributes"].as_object().unwrap() {
        if name != "timeout_ms" && name != "updated_at" {
            assert_eq!(patched.attr(name), value, "{name} is unchanged");
        }
    }
    assert_eq!(
        app.get(&format!("/api/upstreams/{id}")).await.body["data"],
        patched.body["data"]
    );

    let deleted = app.delete(&format!("/api/upstreams/{id}")).await;
    deleted.expect(204);
    assert_eq!(deleted.body, Value::Null);
    assert!(deleted.header("content-type").is_none());
    app.get(&format!("/api/upstreams/{id}"))
        .await
        .expect_error(404, "NOT_FOUND", None);
    app.delete(&format!("/api/upstreams/{id}"))
        .await
        .expect_error(404, "NOT_FOUND", None);
    app.patch_attributes("upstreams", "upstreams", &id, json!({"timeout_ms": 200}))
        .await
        .expect_error(404, "NOT_FOUND", None);
    assert_eq!(
        app.get("/api/upstreams").await.body["meta"]["total"],
        json!(0)
    );
}

#[tokio::test]
async fn full_create_round_trips_every_attribute() {
    let app = spawn_app().await;
    let attributes = json!({
        "name": "Search",
        "description": "Search backend",
        "base_url": "http://10.0.0.5:8080/search",
        "timeout_ms": 100,
        "connect_timeout_ms": 60_000,
        "headers": {"X-Api-Version": "2", "Accept-Language": "en"},
        "auth_type": "header",
        "auth_header": "X-Api-Key",
        "health_check_path": "/healthz",
        "enabled": false,
    });
    let mut with_secret = attributes.clone();
    with_secret["auth_value"] = json!("s3cr3t-token");
    let created = create_upstream_with(&app, with_secret).await;
    for (name, value) in attributes.as_object().unwrap() {
        assert_eq!(created.attr(name), value, "{name}");
    }
    assert_no_secrets(&created.body["data"]);
    let fetched = app.get(&format!("/api/upstreams/{}", created.id())).await;
    assert_eq!(fetched.body["data"], created.body["data"]);
}

#[tokio::test]
async fn unknown_ids_are_not_found() {
    let app = spawn_app().await;
    let missing = "ups_01JD0Q3W6Y8ZK2X4V5B7N9M1C3";
    app.get(&format!("/api/upstreams/{missing}"))
        .await
        .expect_error(404, "NOT_FOUND", None);
    app.get("/api/upstreams/whatever")
        .await
        .expect_error(404, "NOT_FOUND", None);
    app.patch_attributes("upstreams", "upstreams", missing, json!({"enabled": false}))
        .await
        .expect_error(404, "NOT_FOUND", None);
    app.delete(&format!("/api/upstreams/{missing}"))
        .await
        .expect_error(404, "NOT_FOUND", None);
    app.get(&format!("/api/upstreams/{missing}/routes"))
        .await
        .expect_error(404, "NOT_FOUND", None);
    app.get(&format!("/api/upstreams/{missing}/relationships/routes"))
        .await
        .expect_error(404, "NOT_FOUND", None);
}

#[tokio::test]
async fn every_rule_reports_its_pointer() {
    let app = spawn_app().await;
    let base = |extra: Value| {
        let mut attrs = json!({"name": "U", "base_url": "https://u.example"});
        for (k, v) in extra.as_object().unwrap() {
            attrs[k] = v.clone();
        }
        attrs
    };
    let too_many_headers: Map<String, Value> =
        (0..51).map(|n| (format!("X-H{n}"), json!("v"))).collect();
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"base_url": "https://u.example"}),
            "/data/attributes/name",
        ),
        (base(json!({"name": ""})), "/data/attributes/name"),
        (
            base(json!({"name": "x".repeat(101)})),
            "/data/attributes/name",
        ),
        (base(json!({"name": 1})), "/data/attributes/name"),
        (
            base(json!({"description": "x".repeat(1001)})),
            "/data/attributes/description",
        ),
        (json!({"name": "U"}), "/data/attributes/base_url"),
        (base(json!({"base_url": ""})), "/data/attributes/base_url"),
        (base(json!({"base_url": null})), "/data/attributes/base_url"),
        (
            base(json!({"base_url": "ftp://files.example"})),
            "/data/attributes/base_url",
        ),
        (
            base(json!({"base_url": "ws://u.example"})),
            "/data/attributes/base_url",
        ),
        (
            base(json!({"base_url": "/relative/path"})),
            "/data/attributes/base_url",
        ),
        (
            base(json!({"base_url": "api.example.com"})),
            "/data/attributes/base_url",
        ),
        (
            base(json!({"base_url": "https://user:pass@u.example"})),
            "/data/attributes/base_url",
        ),
        (
            base(json!({"base_url": "https://user@u.example"})),
            "/data/attributes/base_url",
        ),
        (
            base(json!({"base_url": "https://u.example/v1?key=1"})),
            "/data/attributes/base_url",
        ),
        (
            base(json!({"base_url": "https://u.example/v1#top"})),
            "/data/attributes/base_url",
        ),
        (
            base(json!({"base_url": format!("https://u.example/{}", "x".repeat(2040))})),
            "/data/attributes/base_url",
        ),
        (
            base(json!({"timeout_ms": 99})),
            "/data/attributes/timeout_ms",
        ),
        (
            base(json!({"timeout_ms": 300_001})),
            "/data/attributes/timeout_ms",
        ),
        (
            base(json!({"timeout_ms": "1000"})),
            "/data/attributes/timeout_ms",
        ),
        (
            base(json!({"timeout_ms": null})),
            "/data/attributes/timeout_ms",
        ),
        (
            base(json!({"connect_timeout_ms": 99})),
            "/data/attributes/connect_timeout_ms",
        ),
        (
            base(json!({"connect_timeout_ms": 60_001})),
            "/data/attributes/connect_timeout_ms",
        ),
        (
            base(json!({"connect_timeout_ms": 150.5})),
            "/data/attributes/connect_timeout_ms",
        ),
        (
            base(json!({"headers": "X-A: 1"})),
            "/data/attributes/headers",
        ),
        (
            base(json!({"headers": ["X-A"]})),
            "/data/attributes/headers",
        ),
        (base(json!({"headers": null})), "/data/attributes/headers"),
        (
            base(json!({ "headers": too_many_headers })),
            "/data/attributes/headers",
        ),
        (
            base(json!({"headers": {"Bad Header": "v"}})),
            "/data/attributes/headers",
        ),
        (
            base(json!({"headers": {"X-Bad:": "v"}})),
            "/data/attributes/headers",
        ),
        (
            base(json!({"headers": {"": "v"}})),
            "/data/attributes/headers",
        ),
        (
            base(json!({"headers": {"Connection": "close"}})),
            "/data/attributes/headers",
        ),
        (
            base(json!({"headers": {"keep-alive": "timeout=5"}})),
            "/data/attributes/headers",
        ),
        (
            base(json!({"headers": {"Transfer-Encoding": "chunked"}})),
            "/data/attributes/headers",
        ),
        (
            base(json!({"headers": {"Upgrade": "websocket"}})),
            "/data/attributes/headers",
        ),
        (
            base(json!({"headers": {"TE": "trailers"}})),
            "/data/attributes/headers",
        ),
        (
            base(json!({"headers": {"Proxy-Authorization": "x"}})),
            "/data/attributes/headers",
        ),
        (
            base(json!({"headers": {"Host": "evil.example"}})),
            "/data/attributes/headers",
        ),
        (
            base(json!({"headers": {"host": "evil.example"}})),
            "/data/attributes/headers",
        ),
        (
            base(json!({"headers": {"X-Num": 5}})),
            "/data/attributes/headers",
        ),
        (
            base(json!({"headers": {"X-Null": null}})),
            "/data/attributes/headers",
        ),
        (
            base(json!({"headers": {"X-Obj": {"a": "b"}}})),
            "/data/attributes/headers",
        ),
        (
            base(json!({"headers": {"X-Long": "x".repeat(4097)}})),
            "/data/attributes/headers",
        ),
        (
            base(json!({"auth_type": "digest"})),
            "/data/attributes/auth_type",
        ),
        (
            base(json!({"auth_type": "header", "auth_value": "v"})),
            "/data/attributes/auth_header",
        ),
        (
            base(json!({"auth_type": "header", "auth_header": null, "auth_value": "v"})),
            "/data/attributes/auth_header",
        ),
        (
            base(json!({"auth_type": "bearer"})),
            "/data/attributes/auth_value",
        ),
        (
            base(json!({"auth_type": "basic", "auth_value": null})),
            "/data/attributes/auth_value",
        ),
        (
            base(json!({"auth_type": "header", "auth_header": "X-Key"})),
            "/data/attributes/auth_value",
        ),
        (
            base(json!({"auth_type": "bearer", "auth_value": 42})),
            "/data/attributes/auth_value",
        ),
        (
            base(json!({"health_check_path": "healthz"})),
            "/data/attributes/health_check_path",
        ),
        (base(json!({"enabled": "yes"})), "/data/attributes/enabled"),
    ];
    for (attrs, pointer) in cases {
        let reply = post_upstream(&app, attrs.clone()).await;
        reply.expect(422);
        assert!(
            reply
                .problems()
                .iter()
                .any(|(c, p)| c == "VALIDATION_ERROR" && p == pointer),
            "{attrs} should report VALIDATION_ERROR at {pointer}: {}",
            reply.body
        );
    }
    for (attrs, code, pointer) in [
        (
            base(json!({"url": "https://u.example"})),
            "UNKNOWN_ATTRIBUTE",
            "/data/attributes/url",
        ),
        (
            base(json!({"type": "upstreams"})),
            "UNKNOWN_ATTRIBUTE",
            "/data/attributes/type",
        ),
        (
            base(json!({"health": "up"})),
            "READ_ONLY_ATTRIBUTE",
            "/data/attributes/health",
        ),
        (
            base(json!({"health_checked_at": "2024-01-01T00:00:00Z"})),
            "READ_ONLY_ATTRIBUTE",
            "/data/attributes/health_checked_at",
        ),
    ] {
        post_upstream(&app, attrs)
            .await
            .expect_error(422, code, Some(pointer));
    }
    assert_eq!(
        app.get("/api/upstreams").await.body["meta"]["total"],
        json!(0),
        "rejected requests write nothing"
    );
}

/// jsonapi.md §13: every 422 problem of one request, one object each, in document order —
/// also when a problem comes from a cross-field rule (here the `base_url` format).
#[tokio::test]
async fn all_problems_are_reported_in_document_order() {
    let app = spawn_app().await;
    let many = post_upstream(
        &app,
        json!({"name": "U", "bogus": 1, "base_url": "ftp://x", "health": "down"}),
    )
    .await;
    assert_eq!(
        many.problems(),
        vec![
            (
                "UNKNOWN_ATTRIBUTE".to_owned(),
                "/data/attributes/bogus".to_owned()
            ),
            (
                "VALIDATION_ERROR".to_owned(),
                "/data/attributes/base_url".to_owned()
            ),
            (
                "READ_ONLY_ATTRIBUTE".to_owned(),
                "/data/attributes/health".to_owned()
            ),
        ],
        "all problems together, in document order: {}",
        many.body
    );
}

#[tokio::test]
async fn accepted_values_and_normalisation() {
    let app = spawn_app().await;
    let fifty: Map<String, Value> = (0..50).map(|n| (format!("X-H{n}"), json!("v"))).collect();
    for (n, (attrs, expect)) in [
        (
            json!({"base_url": "https://api.example.com/"}),
            json!({"base_url": "https://api.example.com"}),
        ),
        (
            json!({"base_url": "http://localhost:3000/v2/"}),
            json!({"base_url": "http://localhost:3000/v2"}),
        ),
        (
            json!({"base_url": "https://api.example.com/a/b"}),
            json!({"base_url": "https://api.example.com/a/b"}),
        ),
        (
            json!({"timeout_ms": 100, "connect_timeout_ms": 100}),
            json!({"timeout_ms": 100, "connect_timeout_ms": 100}),
        ),
        (
            json!({"timeout_ms": 300_000, "connect_timeout_ms": 60_000}),
            json!({"timeout_ms": 300_000, "connect_timeout_ms": 60_000}),
        ),
        (json!({ "headers": fifty }), json!({ "headers": fifty })),
        (
            json!({"headers": {"X-Long": "x".repeat(4096), "x_tok!en": ""}}),
            json!({"headers": {"X-Long": "x".repeat(4096), "x_tok!en": ""}}),
        ),
        (
            json!({"auth_type": "bearer", "auth_value": "s3cr3t-token"}),
            json!({"auth_type": "bearer", "auth_header": null}),
        ),
        (
            json!({"auth_type": "basic", "auth_value": "user:s3cr3t-token"}),
            json!({"auth_type": "basic"}),
        ),
        (
            json!({"auth_type": "none", "auth_value": null}),
            json!({"auth_type": "none"}),
        ),
        (
            json!({"health_check_path": "/status", "description": "x".repeat(1000)}),
            json!({"health_check_path": "/status", "health": "unknown"}),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let mut full = json!({"name": format!("U{n}"), "base_url": "https://u.example"});
        for (k, v) in attrs.as_object().unwrap() {
            full[k] = v.clone();
        }
        let created = create_upstream_with(&app, full).await;
        for (k, v) in expect.as_object().unwrap() {
            assert_eq!(created.attr(k), v, "{k}: {}", created.body);
        }
        assert_no_secrets(&created.body["data"]);
    }
}

#[tokio::test]
async fn auth_value_is_write_only_and_required_unless_none() {
    let app = spawn_app().await;
    let plain = create_upstream_with(
        &app,
        json!({"name": "Plain", "base_url": "https://p.example"}),
    )
    .await
    .id();
    // Switching to an auth type needs a credential.
    let no_value = app
        .patch_attributes(
            "upstreams",
            "upstreams",
            &plain,
            json!({"auth_type": "bearer"}),
        )
        .await;
    no_value.expect_error(422, "VALIDATION_ERROR", Some("/data/attributes/auth_value"));
    assert_eq!(
        app.get(&format!("/api/upstreams/{plain}"))
            .await
            .attr("auth_type"),
        &json!("none")
    );
    let with_value = app
        .patch_attributes(
            "upstreams",
            "upstreams",
            &plain,
            json!({"auth_type": "bearer", "auth_value": "s3cr3t-token"}),
        )
        .await;
    with_value.expect(200);
    assert_eq!(with_value.attr("auth_type"), &json!("bearer"));
    assert_no_secrets(&with_value.body["data"]);
    // The stored credential keeps satisfying the rule for later PATCHes.
    let renamed = app
        .patch_attributes("upstreams", "upstreams", &plain, json!({"name": "Plain 2"}))
        .await;
    renamed.expect(200);
    let basic = app
        .patch_attributes(
            "upstreams",
            "upstreams",
            &plain,
            json!({"auth_type": "basic"}),
        )
        .await;
    basic.expect(200);
    assert_eq!(basic.attr("auth_type"), &json!("basic"));
    // Clearing it while an auth type is set is refused.
    app.patch_attributes(
        "upstreams",
        "upstreams",
        &plain,
        json!({"auth_value": null}),
    )
    .await
    .expect_error(422, "VALIDATION_ERROR", Some("/data/attributes/auth_value"));
    // `header` also needs the header name.
    app.patch_attributes(
        "upstreams",
        "upstreams",
        &plain,
        json!({"auth_type": "header"}),
    )
    .await
    .expect_error(
        422,
        "VALIDATION_ERROR",
        Some("/data/attributes/auth_header"),
    );
    let header = app
        .patch_attributes(
            "upstreams",
            "upstreams",
            &plain,
            json!({"auth_type": "header", "auth_header": "X-Api-Key"}),
        )
        .await;
    header.expect(200);
    assert_eq!(header.attr("auth_header"), &json!("X-Api-Key"));
    app.patch_attributes(
        "upstreams",
        "upstreams",
        &plain,
        json!({"auth_header": null}),
    )
    .await
    .expect_error(
        422,
        "VALIDATION_ERROR",
        Some("/data/attributes/auth_header"),
    );
    // Back to none: no credential needed.
    let none = app
        .patch_attributes(
            "upstreams",
            "upstreams",
            &plain,
            json!({"auth_type": "none"}),
        )
        .await;
    none.expect(200);
    assert_eq!(none.attr("auth_type"), &json!("none"));

    // The secret never appears in any representation.
    for reply in [
        app.get(&format!("/api/upstreams/{plain}")).await,
        app.get("/api/upstreams").await,
    ] {
        reply.expect(200);
        let text = reply.body.to_string();
        assert!(!text.contains("s3cr3t-token"), "{text}");
        assert!(!text.contains("auth_value"), "{text}");
    }
    // A write-only attribute sent again is still a write, never an echo.
    let again = app
        .patch_attributes(
            "upstreams",
            "upstreams",
            &plain,
            json!({"auth_type": "bearer", "auth_value": "s3cr3t-token"}),
        )
        .await;
    again.expect(200);
    assert_no_secrets(&again.body["data"]);
}

#[tokio::test]
async fn read_only_health_attributes() {
    let app = spawn_app().await;
    let created =
        create_upstream_with(&app, json!({"name": "U", "base_url": "https://u.example"})).await;
    let id = created.id();
    for (attrs, pointer) in [
        (json!({"health": "up"}), "/data/attributes/health"),
        (json!({"health": "down"}), "/data/attributes/health"),
        (
            json!({"health_checked_at": "2024-01-01T00:00:00Z"}),
            "/data/attributes/health_checked_at",
        ),
        (
            json!({"created_at": "2020-01-01T00:00:00Z"}),
            "/data/attributes/created_at",
        ),
    ] {
        app.patch_attributes("upstreams", "upstreams", &id, attrs)
            .await
            .expect_error(422, "READ_ONLY_ATTRIBUTE", Some(pointer));
    }
    // The stored values, sent back, are accepted and ignored.
    let same = app
        .patch_attributes(
            "upstreams",
            "upstreams",
            &id,
            json!({"health": "unknown", "health_checked_at": null,
                   "created_at": created.attr("created_at"), "name": "U"}),
        )
        .await;
    same.expect(200);
    assert_eq!(same.attr("health"), &json!("unknown"));
    assert_eq!(same.attr("health_checked_at"), &Value::Null);
    assert_eq!(
        same.attr("updated_at"),
        created.attr("updated_at"),
        "a no-op PATCH keeps updated_at"
    );
    // Along with a real change, the same values are still fine.
    let with_change = app
        .patch_attributes(
            "upstreams",
            "upstreams",
            &id,
            json!({"health": "unknown", "description": "changed"}),
        )
        .await;
    with_change.expect(200);
    assert_eq!(with_change.attr("description"), &json!("changed"));
    // Mixed with a read-only change, nothing is written.
    app.patch_attributes(
        "upstreams",
        "upstreams",
        &id,
        json!({"description": "again", "health": "up"}),
    )
    .await
    .expect_error(422, "READ_ONLY_ATTRIBUTE", Some("/data/attributes/health"));
    assert_eq!(
        app.get(&format!("/api/upstreams/{id}"))
            .await
            .attr("description"),
        &json!("changed")
    );
}

#[tokio::test]
async fn patch_rules_and_nulls() {
    let app = spawn_app().await;
    let created = create_upstream_with(
        &app,
        json!({"name": "U", "base_url": "https://u.example", "headers": {"X-A": "1"},
               "health_check_path": "/health"}),
    )
    .await;
    let id = created.id();
    for (attrs, pointer) in [
        (json!({"name": null}), "/data/attributes/name"),
        (json!({"base_url": null}), "/data/attributes/base_url"),
        (
            json!({"base_url": "https://u.example?x=1"}),
            "/data/attributes/base_url",
        ),
        (json!({"timeout_ms": 50}), "/data/attributes/timeout_ms"),
        (
            json!({"connect_timeout_ms": 60_001}),
            "/data/attributes/connect_timeout_ms",
        ),
        (
            json!({"headers": {"Host": "x"}}),
            "/data/attributes/headers",
        ),
        (json!({"auth_type": null}), "/data/attributes/auth_type"),
        (
            json!({"health_check_path": "no-slash"}),
            "/data/attributes/health_check_path",
        ),
        (json!({"enabled": null}), "/data/attributes/enabled"),
    ] {
        app.patch_attributes("upstreams", "upstreams", &id, attrs)
            .await
            .expect_error(422, "VALIDATION_ERROR", Some(pointer));
    }
    app.patch_attributes("upstreams", "upstreams", &id, json!({"upstream_url": "x"}))
        .await
        .expect_error(
            422,
            "UNKNOWN_ATTRIBUTE",
            Some("/data/attributes/upstream_url"),
        );
    assert_eq!(
        app.get(&format!("/api/upstreams/{id}")).await.body["data"],
        created.body["data"],
        "rejected PATCHes change nothing"
    );
    let moved = app
        .patch_attributes(
            "upstreams",
            "upstreams",
            &id,
            json!({"base_url": "http://new.example:8080/base/", "health_check_path": null,
                   "headers": {"X-B": "2"}}),
        )
        .await;
    moved.expect(200);
    assert_eq!(
        moved.attr("base_url"),
        &json!("http://new.example:8080/base")
    );
    assert_eq!(moved.attr("health_check_path"), &Value::Null);
    assert_eq!(moved.attr("headers"), &json!({"X-B": "2"}));
    assert_eq!(moved.attr("name"), &json!("U"));
}

#[tokio::test]
async fn names_are_unique_case_insensitively_among_live_upstreams() {
    let app = spawn_app().await;
    let first = app.create_upstream("Billing", "https://b.example").await;
    post_upstream(
        &app,
        json!({"name": "BILLING", "base_url": "https://c.example"}),
    )
    .await
    .expect_error(409, "CONFLICT", Some("/data/attributes/name"));
    let other = app.create_upstream("Search", "https://s.example").await;
    app.patch_attributes("upstreams", "upstreams", &other, json!({"name": "billing"}))
        .await
        .expect_error(409, "CONFLICT", Some("/data/attributes/name"));
    assert_eq!(
        app.get("/api/upstreams").await.body["meta"]["total"],
        json!(2)
    );
    app.patch_attributes("upstreams", "upstreams", &first, json!({"name": "BILLING"}))
        .await
        .expect(200);
    app.delete(&format!("/api/upstreams/{first}"))
        .await
        .expect(204);
    app.create_upstream("billing", "https://b.example").await;
}

#[tokio::test]
async fn delete_is_refused_while_routes_use_it() {
    let app = spawn_app().await;
    let used = app.create_upstream("Used", "https://used.example").await;
    let spare = app.create_upstream("Spare", "https://spare.example").await;
    let route = create_route(&app, "Alpha", &used).await;
    let in_use = app.delete(&format!("/api/upstreams/{used}")).await;
    in_use.expect_error(409, "RESOURCE_IN_USE", None);
    app.get(&format!("/api/upstreams/{used}")).await.expect(200);
    // A disabled route still references it.
    app.patch_attributes("routes", "routes", &route, json!({"enabled": false}))
        .await
        .expect(200);
    app.delete(&format!("/api/upstreams/{used}"))
        .await
        .expect_error(409, "RESOURCE_IN_USE", None);
    // Moving the route away frees it.
    app.patch(
        &format!("/api/routes/{route}/relationships/upstream"),
        link("upstreams", &spare),
    )
    .await
    .expect(200);
    app.delete(&format!("/api/upstreams/{used}"))
        .await
        .expect(204);
    // Deleting the route frees the other one.
    app.delete(&format!("/api/upstreams/{spare}"))
        .await
        .expect_error(409, "RESOURCE_IN_USE", None);
    app.delete(&format!("/api/routes/{route}"))
        .await
        .expect(204);
    app.delete(&format!("/api/upstreams/{spare}"))
        .await
        .expect(204);
}

#[tokio::test]
async fn routes_relationship_is_read_only() {
    let app = spawn_app().await;
    let id = app.create_upstream("Backend", "https://b.example").await;
    let other = app.create_upstream("Other", "https://o.example").await;
    let alpha = create_route(&app, "Alpha", &id).await;
    let beta = create_route(&app, "Beta", &id).await;
    let elsewhere = create_route(&app, "Elsewhere", &other).await;
    let gone = create_route(&app, "Gone", &id).await;
    app.delete(&format!("/api/routes/{gone}")).await.expect(204);

    let related = app
        .get(&format!("/api/upstreams/{id}/routes?sort=name"))
        .await;
    related.expect(200);
    assert_eq!(ids(&related), vec![alpha.clone(), beta.clone()]);
    assert_eq!(related.body["data"][0]["type"], json!("routes"));
    assert_eq!(
        related.body["data"][0]["attributes"]["name"],
        json!("Alpha")
    );
    assert_eq!(related.body["meta"]["total"], json!(2));
    let filtered = app
        .get(&format!("/api/upstreams/{id}/routes?filter[q]=bet"))
        .await;
    assert_eq!(ids(&filtered), vec![beta.clone()]);

    let linkage = app
        .get(&format!("/api/upstreams/{id}/relationships/routes"))
        .await;
    linkage.expect(200);
    let linked: Vec<String> = linkage.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            assert_eq!(i["type"], json!("routes"));
            i["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(sorted(linked), sorted(vec![alpha.clone(), beta.clone()]));
    assert_eq!(linkage.body["meta"]["total"], json!(2));
    assert_eq!(
        linkage.body["links"]["self"],
        json!(format!("/api/upstreams/{id}/relationships/routes"))
    );

    let included = app
        .get(&format!("/api/upstreams/{id}?include=routes"))
        .await;
    included.expect(200);
    let rel_ids: Vec<String> = included.body["data"]["relationships"]["routes"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(sorted(rel_ids), sorted(vec![alpha.clone(), beta.clone()]));
    assert_eq!(
        sorted(ids(&Reply {
            status: included.status,
            headers: included.headers.clone(),
            body: json!({"data": included.body["included"].clone()}),
        })),
        sorted(vec![alpha.clone(), beta.clone()])
    );
    assert!(!included.body.to_string().contains(&elsewhere));

    // Changing it in any way is refused.
    let patch_rel = app
        .patch(
            &format!("/api/upstreams/{id}/relationships/routes"),
            json!({"data": [{"type": "routes", "id": elsewhere}]}),
        )
        .await;
    patch_rel.expect_error(403, "READ_ONLY_RELATIONSHIP", None);
    app.patch(
        &format!("/api/upstreams/{id}/relationships/routes"),
        json!({"data": []}),
    )
    .await
    .expect_error(403, "READ_ONLY_RELATIONSHIP", None);
    app.patch(
        &format!("/api/upstreams/{id}"),
        json!({"data": {"type": "upstreams", "id": id,
            "relationships": {"routes": {"data": [{"type": "routes", "id": elsewhere}]}}}}),
    )
    .await
    .expect_error(403, "READ_ONLY_RELATIONSHIP", None);
    app.post(
        "/api/upstreams",
        json!({"data": {"type": "upstreams",
            "attributes": {"name": "New", "base_url": "https://n.example"},
            "relationships": {"routes": {"data": [{"type": "routes", "id": alpha}]}}}}),
    )
    .await
    .expect_error(403, "READ_ONLY_RELATIONSHIP", None);
    app.patch(
        &format!("/api/upstreams/{id}/relationships/credential_groups"),
        json!({"data": []}),
    )
    .await
    .expect_error(403, "READ_ONLY_RELATIONSHIP", None);
    assert_eq!(
        app.get(&format!("/api/routes/{elsewhere}/relationships/upstream"))
            .await
            .body["data"]["id"],
        json!(other),
        "nothing moved"
    );
    assert_eq!(
        app.get("/api/upstreams?filter[q]=new").await.body["meta"]["total"],
        json!(0)
    );
}

#[tokio::test]
async fn group_credentials_are_write_only_checked_and_merged() {
    let app = spawn_app().await;
    let acme = create_group(&app, "Acme").await;
    let globex = create_group(&app, "Globex").await;
    let missing_group = "grp_01JD0Q3W6Y8ZK2X4V5B7N9M1C3";

    // Validation.
    let base = json!({"name": "U", "base_url": "https://u.example",
                      "auth_type": "bearer", "auth_value": "s3cr3t-token"});
    let with = |credentials: Value| {
        let mut attrs = base.clone();
        attrs["group_credentials"] = credentials;
        attrs
    };
    for attrs in [
        with(json!({ missing_group: "group-secret-1" })),
        with(json!({"not-a-group": "group-secret-1"})),
        with(json!({ acme.clone(): 5 })),
        with(json!({ acme.clone(): "" })),
        with(json!({ acme.clone(): "x".repeat(4097) })),
        with(json!("group-secret-1")),
        json!({"name": "U", "base_url": "https://u.example",
               "group_credentials": { acme.clone(): "group-secret-1" }}),
    ] {
        post_upstream(&app, attrs.clone()).await.expect_error(
            422,
            "VALIDATION_ERROR",
            Some("/data/attributes/group_credentials"),
        );
    }
    assert_eq!(
        app.get("/api/upstreams").await.body["meta"]["total"],
        json!(0)
    );

    let created = create_upstream_with(&app, with(json!({ acme.clone(): "group-secret-1" }))).await;
    let id = created.id();
    assert_no_secrets(&created.body["data"]);
    let app = &app;
    let credential_groups = || {
        let path = format!("/api/upstreams/{id}/relationships/credential_groups");
        async move {
            let reply = app.get(&path).await;
            reply.expect(200);
            sorted(
                reply.body["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| {
                        assert_eq!(i["type"], json!("groups"));
                        i["id"].as_str().unwrap().to_owned()
                    })
                    .collect(),
            )
        }
    };
    assert_eq!(credential_groups().await, vec![acme.clone()]);

    // PATCH merges per entry...
    let merged = app
        .patch_attributes(
            "upstreams",
            "upstreams",
            &id,
            json!({"group_credentials": { globex.clone(): "group-secret-2" }}),
        )
        .await;
    merged.expect(200);
    assert_no_secrets(&merged.body["data"]);
    assert_eq!(
        credential_groups().await,
        sorted(vec![acme.clone(), globex.clone()])
    );
    let related = app
        .get(&format!("/api/upstreams/{id}/credential_groups?sort=name"))
        .await;
    assert_eq!(ids(&related), vec![acme.clone(), globex.clone()]);
    // ...and `null` removes one entry.
    app.patch_attributes(
        "upstreams",
        "upstreams",
        &id,
        json!({"group_credentials": { acme.clone(): null }}),
    )
    .await
    .expect(200);
    assert_eq!(credential_groups().await, vec![globex.clone()]);
    // Unknown groups are still refused on PATCH, and nothing changes.
    app.patch_attributes(
        "upstreams",
        "upstreams",
        &id,
        json!({"group_credentials": { acme.clone(): "group-secret-1", missing_group: "x" }}),
    )
    .await
    .expect_error(
        422,
        "VALIDATION_ERROR",
        Some("/data/attributes/group_credentials"),
    );
    assert_eq!(credential_groups().await, vec![globex.clone()]);
    for reply in [
        app.get(&format!("/api/upstreams/{id}")).await,
        app.get("/api/upstreams").await,
        app.get(&format!("/api/upstreams/{id}?include=credential_groups"))
            .await,
    ] {
        reply.expect(200);
        let text = reply.body.to_string();
        for secret in ["s3cr3t-token", "group-secret-1", "group-secret-2"] {
            assert!(!text.contains(secret), "{text}");
        }
        assert!(!text.contains("group_credentials"), "{text}");
    }

    // Deleting a group removes its entry.
    app.delete(&format!("/api/groups/{globex}"))
        .await
        .expect(204);
    assert_eq!(credential_groups().await, Vec::<String>::new());
}

#[tokio::test]
async fn filters_and_sorts() {
    let app = spawn_app().await;
    let beta = app.create_upstream("Beta", "https://b.example").await;
    let alpha = create_upstream_with(
        &app,
        json!({"name": "Alpha", "base_url": "https://a.example", "enabled": false}),
    )
    .await
    .id();
    let gamma = app.create_upstream("Gamma", "https://g.example").await;
    let app = &app;
    let list = |query: &'static str| {
        let path = format!("/api/upstreams?{query}");
        async move {
            let reply = app.get(&path).await;
            reply.expect(200);
            ids(&reply)
        }
    };
    assert_eq!(
        list("").await,
        vec![gamma.clone(), alpha.clone(), beta.clone()],
        "newest first by default"
    );
    assert_eq!(
        list("sort=name").await,
        vec![alpha.clone(), beta.clone(), gamma.clone()]
    );
    assert_eq!(
        list("sort=-name").await,
        vec![gamma.clone(), beta.clone(), alpha.clone()]
    );
    assert_eq!(list("filter[enabled]=false").await, vec![alpha.clone()]);
    assert_eq!(
        list("filter[enabled]=true&sort=name").await,
        vec![beta.clone(), gamma.clone()]
    );
    assert_eq!(
        list("filter[health]=unknown&sort=name").await,
        vec![alpha.clone(), beta.clone(), gamma.clone()],
        "health defaults to unknown"
    );
    assert_eq!(list("filter[health]=up,down").await, Vec::<String>::new());
    assert_eq!(
        list("filter[health]=unknown&filter[enabled]=false").await,
        vec![alpha.clone()]
    );
    assert_eq!(list("filter[q]=AMM").await, vec![gamma.clone()]);

    for (query, code, parameter) in [
        ("sort=base_url", "INVALID_SORT", "sort"),
        ("sort=timeout_ms", "INVALID_SORT", "sort"),
        ("sort=health", "INVALID_SORT", "sort"),
        ("sort=routes", "INVALID_SORT", "sort"),
        ("filter[health]=sick", "INVALID_FILTER", "filter[health]"),
        ("filter[enabled]=1", "INVALID_FILTER", "filter[enabled]"),
        (
            "filter[auth_type]=none",
            "INVALID_FILTER",
            "filter[auth_type]",
        ),
        ("filter[name]=Beta", "INVALID_FILTER", "filter[name]"),
        ("filter[routes]=x", "INVALID_FILTER", "filter[routes]"),
        ("include=upstream", "INVALID_INCLUDE", "include"),
        ("include=routes.plans", "INVALID_INCLUDE", "include"),
        (
            "include=routes.upstream.routes",
            "INVALID_INCLUDE",
            "include",
        ),
        (
            "fields[upstreams]=auth_token",
            "INVALID_FIELDS",
            "fields[upstreams]",
        ),
    ] {
        let reply = app.get(&format!("/api/upstreams?{query}")).await;
        reply.expect_error(400, code, None);
        assert_eq!(reply.parameter(), parameter, "{query}: {}", reply.body);
    }
    let sparse = app
        .get(&format!(
            "/api/upstreams/{beta}?fields[upstreams]=name,health"
        ))
        .await;
    sparse.expect(200);
    assert_eq!(
        sparse.body["data"]["attributes"],
        json!({"name": "Beta", "health": "unknown"})
    );
}
