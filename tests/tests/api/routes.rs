//! `/api/routes`.

use serde_json::{Value, json};
use tollgate_tests::{Reply, TestApp, link, spawn_app};

/// `POST /api/routes` with the given attributes and an `upstream` linkage (not asserting the status).
async fn post_route(app: &TestApp, attributes: Value, upstream: &str) -> Reply {
    app.post(
        "/api/routes",
        json!({"data": {"type": "routes", "attributes": attributes,
            "relationships": {"upstream": link("upstreams", upstream)}}}),
    )
    .await
}

/// Creates a route (asserting 201) and returns the reply.
async fn create_route(app: &TestApp, attributes: Value, upstream: &str) -> Reply {
    let reply = post_route(app, attributes, upstream).await;
    reply.expect(201);
    reply
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

#[tokio::test]
async fn crud_happy_path() {
    let app = spawn_app().await;
    let upstream = app
        .create_upstream("Backend", "https://api.example.com")
        .await;
    let created = create_route(
        &app,
        json!({"name": "  Public API  ", "path_pattern": "/api"}),
        &upstream,
    )
    .await;
    let id = created.id();
    assert!(id.starts_with("rte_") && id.len() == 30, "{id}");
    assert_eq!(
        created.header("location"),
        Some(format!("/api/routes/{id}").as_str())
    );
    assert_eq!(created.body["jsonapi"], json!({"version": "1.1"}));
    assert_eq!(created.body["data"]["type"], json!("routes"));
    let attrs = created.body["data"]["attributes"].as_object().unwrap();
    for (name, value) in [
        ("name", json!("Public API")),
        ("description", json!("")),
        ("methods", json!([])),
        ("path_pattern", json!("/api")),
        ("match_type", json!("prefix")),
        ("host_pattern", Value::Null),
        ("host_match_type", Value::Null),
        ("strip_path", json!(false)),
        ("path_rewrite", Value::Null),
        ("auth_required", json!(true)),
        ("rate_limit_override", Value::Null),
        ("priority", json!(0)),
        ("enabled", json!(true)),
    ] {
        assert_eq!(attrs.get(name), Some(&value), "{name}: {}", created.body);
    }
    assert!(attrs["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(attrs["updated_at"].as_str().unwrap().ends_with('Z'));
    assert!(attrs.get("upstream_id").is_none(), "no foreign keys");
    let rels = &created.body["data"]["relationships"];
    assert_eq!(
        rels["upstream"]["data"],
        json!({"type": "upstreams", "id": upstream})
    );
    assert_eq!(
        rels["upstream"]["links"],
        json!({"self": format!("/api/routes/{id}/relationships/upstream"),
               "related": format!("/api/routes/{id}/upstream")})
    );
    for to_many in ["allowed_plans", "allowed_groups"] {
        assert!(
            rels[to_many].get("data").is_none(),
            "to-many linkage only when included: {}",
            created.body
        );
        assert_eq!(
            rels[to_many]["links"]["self"],
            json!(format!("/api/routes/{id}/relationships/{to_many}"))
        );
        assert_eq!(
            rels[to_many]["links"]["related"],
            json!(format!("/api/routes/{id}/{to_many}"))
        );
    }
    assert_eq!(
        created.body["data"]["links"]["self"],
        json!(format!("/api/routes/{id}"))
    );

    let fetched = app.get(&format!("/api/routes/{id}")).await;
    fetched.expect(200);
    assert_eq!(fetched.body["data"], created.body["data"]);
    assert_eq!(
        fetched.body["links"]["self"],
        json!(format!("/api/routes/{id}"))
    );

    let list = app.get("/api/routes").await;
    list.expect(200);
    assert_eq!(ids(&list), vec![id.clone()]);
    assert_eq!(list.body["meta"]["total"], json!(1));
    assert_eq!(list.body["data"][0], created.body["data"]);

    let patched = app
        .patch_attributes("routes", "routes", &id, json!({"priority": 10}))
        .await;
    patched.expect(200);
    assert_eq!(patched.attr("priority"), &json!(10));
    for (name, value) in created.body["data"]["attributes"].as_object().unwrap() {
        if name != "priority" && name != "updated_at" {
            assert_eq!(patched.attr(name), value, "{name} is unchanged");
        }
    }
    assert_eq!(
        patched.body["data"]["relationships"]["upstream"]["data"]["id"],
        json!(upstream),
        "relationships are unchanged by an attribute PATCH"
    );
    assert_eq!(
        app.get(&format!("/api/routes/{id}")).await.body["data"],
        patched.body["data"]
    );

    let deleted = app.delete(&format!("/api/routes/{id}")).await;
    deleted.expect(204);
    assert_eq!(deleted.body, Value::Null);
    assert!(deleted.header("content-type").is_none());
    app.get(&format!("/api/routes/{id}"))
        .await
        .expect_error(404, "NOT_FOUND", None);
    app.delete(&format!("/api/routes/{id}"))
        .await
        .expect_error(404, "NOT_FOUND", None);
    app.patch_attributes("routes", "routes", &id, json!({"priority": 1}))
        .await
        .expect_error(404, "NOT_FOUND", None);
    assert_eq!(app.get("/api/routes").await.body["meta"]["total"], json!(0));
}

#[tokio::test]
async fn full_create_round_trips_every_attribute() {
    let app = spawn_app().await;
    let upstream = app
        .create_upstream("Backend", "https://api.example.com")
        .await;
    let attributes = json!({
        "name": "Users",
        "description": "User endpoints",
        "methods": ["GET", "POST"],
        "path_pattern": "/users/{id}",
        "match_type": "exact",
        "host_pattern": "api.example.com",
        "host_match_type": "exact",
        "strip_path": false,
        "path_rewrite": "/v2/users/{id}",
        "auth_required": false,
        "rate_limit_override": 120,
        "priority": -5,
        "enabled": false,
    });
    let created = create_route(&app, attributes.clone(), &upstream).await;
    for (name, value) in attributes.as_object().unwrap() {
        assert_eq!(created.attr(name), value, "{name}");
    }
    let fetched = app.get(&format!("/api/routes/{}", created.id())).await;
    assert_eq!(fetched.body["data"], created.body["data"]);
}

#[tokio::test]
async fn unknown_ids_are_not_found() {
    let app = spawn_app().await;
    let missing = "rte_01JD0Q3W6Y8ZK2X4V5B7N9M1C3";
    app.get(&format!("/api/routes/{missing}"))
        .await
        .expect_error(404, "NOT_FOUND", None);
    app.get("/api/routes/not-a-route")
        .await
        .expect_error(404, "NOT_FOUND", None);
    app.patch_attributes("routes", "routes", missing, json!({"priority": 1}))
        .await
        .expect_error(404, "NOT_FOUND", None);
    app.delete(&format!("/api/routes/{missing}"))
        .await
        .expect_error(404, "NOT_FOUND", None);
    app.get(&format!("/api/routes/{missing}/relationships/upstream"))
        .await
        .expect_error(404, "NOT_FOUND", None);
    app.get(&format!("/api/routes/{missing}/allowed_plans"))
        .await
        .expect_error(404, "NOT_FOUND", None);
    app.patch(
        &format!("/api/routes/{missing}/relationships/allowed_plans"),
        json!({"data": []}),
    )
    .await
    .expect_error(404, "NOT_FOUND", None);
    // An upstream id is not a route id.
    let upstream = app.create_upstream("Backend", "https://x.example").await;
    app.get(&format!("/api/routes/{upstream}"))
        .await
        .expect_error(404, "NOT_FOUND", None);
}

#[tokio::test]
async fn every_rule_reports_its_pointer() {
    let app = spawn_app().await;
    let upstream = app
        .create_upstream("Backend", "https://api.example.com")
        .await;
    let base = |extra: Value| {
        let mut attrs = json!({"name": "R", "path_pattern": "/r"});
        for (k, v) in extra.as_object().unwrap() {
            attrs[k] = v.clone();
        }
        attrs
    };
    let cases: Vec<(Value, &str)> = vec![
        (json!({"path_pattern": "/r"}), "/data/attributes/name"),
        (base(json!({"name": ""})), "/data/attributes/name"),
        (base(json!({"name": "   "})), "/data/attributes/name"),
        (
            base(json!({"name": "x".repeat(101)})),
            "/data/attributes/name",
        ),
        (base(json!({"name": 5})), "/data/attributes/name"),
        (base(json!({"name": null})), "/data/attributes/name"),
        (
            base(json!({"description": "x".repeat(1001)})),
            "/data/attributes/description",
        ),
        (json!({"name": "R"}), "/data/attributes/path_pattern"),
        (
            base(json!({"path_pattern": "r"})),
            "/data/attributes/path_pattern",
        ),
        (
            base(json!({"path_pattern": "api/v1"})),
            "/data/attributes/path_pattern",
        ),
        (
            base(json!({"path_pattern": ""})),
            "/data/attributes/path_pattern",
        ),
        (
            base(json!({"path_pattern": format!("/{}", "x".repeat(1024))})),
            "/data/attributes/path_pattern",
        ),
        (
            base(json!({"path_pattern": 7})),
            "/data/attributes/path_pattern",
        ),
        (
            base(json!({"methods": ["FETCH"]})),
            "/data/attributes/methods",
        ),
        (
            base(json!({"methods": ["GET", "CONNECT"]})),
            "/data/attributes/methods",
        ),
        (
            base(json!({"methods": ["TRACE"]})),
            "/data/attributes/methods",
        ),
        (base(json!({"methods": "GET"})), "/data/attributes/methods"),
        (base(json!({"methods": [1]})), "/data/attributes/methods"),
        (base(json!({"methods": null})), "/data/attributes/methods"),
        (
            base(json!({"match_type": "glob"})),
            "/data/attributes/match_type",
        ),
        (
            base(json!({"match_type": "regex", "path_pattern": "/v1/(unclosed"})),
            "/data/attributes/path_pattern",
        ),
        (
            base(json!({"match_type": "regex", "path_pattern": "/a[z-a]"})),
            "/data/attributes/path_pattern",
        ),
        (
            base(json!({"host_pattern": format!("{}.com", "a".repeat(250))})),
            "/data/attributes/host_pattern",
        ),
        (
            base(json!({"host_match_type": "suffix", "host_pattern": "a.example.com"})),
            "/data/attributes/host_match_type",
        ),
        (
            base(json!({"strip_path": "yes"})),
            "/data/attributes/strip_path",
        ),
        (
            base(json!({"auth_required": 1})),
            "/data/attributes/auth_required",
        ),
        (base(json!({"enabled": "true"})), "/data/attributes/enabled"),
        (base(json!({"priority": 1001})), "/data/attributes/priority"),
        (
            base(json!({"priority": -1001})),
            "/data/attributes/priority",
        ),
        (base(json!({"priority": 1.5})), "/data/attributes/priority"),
        (base(json!({"priority": "1"})), "/data/attributes/priority"),
        (base(json!({"priority": null})), "/data/attributes/priority"),
        (
            base(json!({"rate_limit_override": 0})),
            "/data/attributes/rate_limit_override",
        ),
        (
            base(json!({"rate_limit_override": -1})),
            "/data/attributes/rate_limit_override",
        ),
        (
            base(json!({"rate_limit_override": 1_000_001})),
            "/data/attributes/rate_limit_override",
        ),
        (
            base(json!({"rate_limit_override": 2.5})),
            "/data/attributes/rate_limit_override",
        ),
    ];
    for (attrs, pointer) in cases {
        let reply = post_route(&app, attrs.clone(), &upstream).await;
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
            base(json!({"upstream_id": upstream})),
            "UNKNOWN_ATTRIBUTE",
            "/data/attributes/upstream_id",
        ),
        (
            base(json!({"id": "rte_x"})),
            "UNKNOWN_ATTRIBUTE",
            "/data/attributes/id",
        ),
        (
            base(json!({"bogus": true})),
            "UNKNOWN_ATTRIBUTE",
            "/data/attributes/bogus",
        ),
        (
            base(json!({"created_at": "2020-01-01T00:00:00Z"})),
            "READ_ONLY_ATTRIBUTE",
            "/data/attributes/created_at",
        ),
    ] {
        post_route(&app, attrs, &upstream)
            .await
            .expect_error(422, code, Some(pointer));
    }
    let many = post_route(
        &app,
        json!({"bogus": 1, "priority": 5000, "name": "", "path_pattern": "/ok"}),
        &upstream,
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
                "/data/attributes/priority".to_owned()
            ),
            (
                "VALIDATION_ERROR".to_owned(),
                "/data/attributes/name".to_owned()
            ),
        ],
        "all problems together, in document order: {}",
        many.body
    );
    // Nothing was written by any of the rejected requests.
    assert_eq!(app.get("/api/routes").await.body["meta"]["total"], json!(0));
}

#[tokio::test]
async fn range_boundaries_are_accepted() {
    let app = spawn_app().await;
    let upstream = app
        .create_upstream("Backend", "https://api.example.com")
        .await;
    for (n, attrs) in [
        json!({"priority": -1000, "rate_limit_override": 1}),
        json!({"priority": 1000, "rate_limit_override": 1_000_000}),
        json!({"rate_limit_override": null, "description": "x".repeat(1000)}),
        json!({"name": "n".repeat(100), "host_pattern": format!("{}.com", "a".repeat(249))}),
        json!({"path_pattern": format!("/{}", "x".repeat(1023))}),
    ]
    .into_iter()
    .enumerate()
    {
        let mut full = json!({"name": format!("Route {n}"), "path_pattern": "/r"});
        for (k, v) in attrs.as_object().unwrap() {
            full[k] = v.clone();
        }
        let created = create_route(&app, full.clone(), &upstream).await;
        for (k, v) in attrs.as_object().unwrap() {
            assert_eq!(created.attr(k), v, "{k}");
        }
    }
}

#[tokio::test]
async fn methods_are_validated_and_deduplicated() {
    let app = spawn_app().await;
    let upstream = app
        .create_upstream("Backend", "https://api.example.com")
        .await;
    let all = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
    let every = create_route(
        &app,
        json!({"name": "All", "path_pattern": "/all", "methods": all}),
        &upstream,
    )
    .await;
    assert_eq!(every.attr("methods"), &json!(all));

    let dup = create_route(
        &app,
        json!({"name": "Dup", "path_pattern": "/dup", "methods": ["GET", "POST", "GET"]}),
        &upstream,
    )
    .await;
    let stored: Vec<String> = dup
        .attr("methods")
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(sorted(stored), vec!["GET".to_owned(), "POST".to_owned()]);
    let id = dup.id();

    // Duplicates are removed, not counted against the set of seven.
    let mut eight: Vec<&str> = all.to_vec();
    eight.push("GET");
    let deduped = create_route(
        &app,
        json!({"name": "Eight", "path_pattern": "/eight", "methods": eight}),
        &upstream,
    )
    .await;
    assert_eq!(deduped.attr("methods").as_array().unwrap().len(), 7);

    let patched = app
        .patch_attributes(
            "routes",
            "routes",
            &id,
            json!({"methods": ["DELETE", "DELETE"]}),
        )
        .await;
    patched.expect(200);
    assert_eq!(patched.attr("methods"), &json!(["DELETE"]));
    let bad = app
        .patch_attributes(
            "routes",
            "routes",
            &id,
            json!({"methods": ["DELETE", "BREW"]}),
        )
        .await;
    bad.expect_error(422, "VALIDATION_ERROR", Some("/data/attributes/methods"));
    let cleared = app
        .patch_attributes("routes", "routes", &id, json!({"methods": []}))
        .await;
    cleared.expect(200);
    assert_eq!(cleared.attr("methods"), &json!([]));
    assert_eq!(
        app.get(&format!("/api/routes/{id}")).await.attr("methods"),
        &json!([])
    );
}

#[tokio::test]
async fn path_patterns_and_regex_match_type() {
    let app = spawn_app().await;
    let upstream = app
        .create_upstream("Backend", "https://api.example.com")
        .await;
    let templated = create_route(
        &app,
        json!({"name": "Templated", "path_pattern": "/users/{id}/orders/{order}", "match_type": "exact"}),
        &upstream,
    )
    .await;
    assert_eq!(
        templated.attr("path_pattern"),
        &json!("/users/{id}/orders/{order}")
    );
    let regex = create_route(
        &app,
        json!({"name": "Regex", "path_pattern": "/v[0-9]+/items/(\\d+)", "match_type": "regex"}),
        &upstream,
    )
    .await;
    assert_eq!(regex.attr("match_type"), &json!("regex"));
    assert_eq!(regex.attr("path_pattern"), &json!("/v[0-9]+/items/(\\d+)"));

    // A literal prefix that is not a valid regex cannot become a regex route.
    let literal = create_route(
        &app,
        json!({"name": "Literal", "path_pattern": "/files/(", "match_type": "prefix"}),
        &upstream,
    )
    .await;
    let id = literal.id();
    let to_regex = app
        .patch_attributes("routes", "routes", &id, json!({"match_type": "regex"}))
        .await;
    to_regex.expect(422);
    assert!(
        to_regex
            .problems()
            .iter()
            .all(|(c, _)| c == "VALIDATION_ERROR"),
        "{}",
        to_regex.body
    );
    assert_eq!(
        app.get(&format!("/api/routes/{id}"))
            .await
            .attr("match_type"),
        &json!("prefix"),
        "rejected requests change nothing"
    );
    let bad_regex = app
        .patch_attributes(
            "routes",
            "routes",
            &regex.id(),
            json!({"path_pattern": "/v[0-9+"}),
        )
        .await;
    bad_regex.expect_error(
        422,
        "VALIDATION_ERROR",
        Some("/data/attributes/path_pattern"),
    );
    app.patch_attributes("routes", "routes", &id, json!({"path_pattern": "no-slash"}))
        .await
        .expect_error(
            422,
            "VALIDATION_ERROR",
            Some("/data/attributes/path_pattern"),
        );
    let null_path = app
        .patch_attributes("routes", "routes", &id, json!({"path_pattern": null}))
        .await;
    null_path.expect_error(
        422,
        "VALIDATION_ERROR",
        Some("/data/attributes/path_pattern"),
    );
}

#[tokio::test]
async fn host_match_type_is_inferred() {
    let app = spawn_app().await;
    let upstream = app
        .create_upstream("Backend", "https://api.example.com")
        .await;
    let none = create_route(
        &app,
        json!({"name": "Any", "path_pattern": "/a"}),
        &upstream,
    )
    .await;
    assert_eq!(none.attr("host_pattern"), &Value::Null);
    assert_eq!(none.attr("host_match_type"), &Value::Null);

    let wildcard = create_route(
        &app,
        json!({"name": "Wild", "path_pattern": "/w", "host_pattern": "*.example.com"}),
        &upstream,
    )
    .await;
    assert_eq!(wildcard.attr("host_match_type"), &json!("wildcard"));

    let exact = create_route(
        &app,
        json!({"name": "Exact", "path_pattern": "/e", "host_pattern": "api.example.com"}),
        &upstream,
    )
    .await;
    assert_eq!(exact.attr("host_match_type"), &json!("exact"));

    let regex = create_route(
        &app,
        json!({"name": "Regex", "path_pattern": "/x",
               "host_pattern": "^api[0-9]+\\.example\\.com$", "host_match_type": "regex"}),
        &upstream,
    )
    .await;
    assert_eq!(regex.attr("host_match_type"), &json!("regex"));
    assert_eq!(
        regex.attr("host_pattern"),
        &json!("^api[0-9]+\\.example\\.com$")
    );

    // Setting a host later infers the type; removing it clears the type.
    let id = none.id();
    let with_host = app
        .patch_attributes(
            "routes",
            "routes",
            &id,
            json!({"host_pattern": "*.tenant.example"}),
        )
        .await;
    with_host.expect(200);
    assert_eq!(with_host.attr("host_match_type"), &json!("wildcard"));
    let changed = app
        .patch_attributes(
            "routes",
            "routes",
            &id,
            json!({"host_pattern": "one.tenant.example"}),
        )
        .await;
    changed.expect(200);
    assert_eq!(changed.attr("host_match_type"), &json!("exact"));
    let cleared = app
        .patch_attributes("routes", "routes", &id, json!({"host_pattern": null}))
        .await;
    cleared.expect(200);
    assert_eq!(cleared.attr("host_pattern"), &Value::Null);
    assert_eq!(cleared.attr("host_match_type"), &Value::Null);
    assert_eq!(
        app.get(&format!("/api/routes/{id}"))
            .await
            .attr("host_match_type"),
        &Value::Null
    );
}

#[tokio::test]
async fn strip_path_and_path_rewrite_exclude_each_other() {
    let app = spawn_app().await;
    let upstream = app
        .create_upstream("Backend", "https://api.example.com")
        .await;
    let both = post_route(
        &app,
        json!({"name": "Both", "path_pattern": "/b", "strip_path": true, "path_rewrite": "/x"}),
        &upstream,
    )
    .await;
    both.expect(422);
    let problems = both.problems();
    assert!(
        !problems.is_empty()
            && problems.iter().all(|(c, p)| c == "VALIDATION_ERROR"
                && (p == "/data/attributes/path_rewrite" || p == "/data/attributes/strip_path")),
        "{}",
        both.body
    );

    let stripping = create_route(
        &app,
        json!({"name": "Strip", "path_pattern": "/s", "strip_path": true}),
        &upstream,
    )
    .await;
    assert_eq!(stripping.attr("strip_path"), &json!(true));
    let add_rewrite = app
        .patch_attributes(
            "routes",
            "routes",
            &stripping.id(),
            json!({"path_rewrite": "/v2"}),
        )
        .await;
    add_rewrite.expect(422);
    assert_eq!(add_rewrite.code(), "VALIDATION_ERROR");

    let rewriting = create_route(
        &app,
        json!({"name": "Rewrite", "path_pattern": "/items/{id}", "match_type": "exact",
               "path_rewrite": "/v2/items/{id}"}),
        &upstream,
    )
    .await;
    let add_strip = app
        .patch_attributes(
            "routes",
            "routes",
            &rewriting.id(),
            json!({"strip_path": true}),
        )
        .await;
    add_strip.expect(422);
    assert_eq!(add_strip.code(), "VALIDATION_ERROR");
    assert_eq!(
        app.get(&format!("/api/routes/{}", rewriting.id()))
            .await
            .attr("strip_path"),
        &json!(false)
    );
    // Swapping one for the other in one request is fine.
    let swapped = app
        .patch_attributes(
            "routes",
            "routes",
            &rewriting.id(),
            json!({"strip_path": true, "path_rewrite": null}),
        )
        .await;
    swapped.expect(200);
    assert_eq!(swapped.attr("strip_path"), &json!(true));
    assert_eq!(swapped.attr("path_rewrite"), &Value::Null);
}

#[tokio::test]
async fn patch_semantics_read_only_and_no_op() {
    let app = spawn_app().await;
    let upstream = app
        .create_upstream("Backend", "https://api.example.com")
        .await;
    let created = create_route(
        &app,
        json!({"name": "R", "path_pattern": "/r", "rate_limit_override": 50}),
        &upstream,
    )
    .await;
    let id = created.id();
    let same = app
        .patch_attributes(
            "routes",
            "routes",
            &id,
            json!({"name": "R", "created_at": created.attr("created_at"),
                   "updated_at": created.attr("updated_at")}),
        )
        .await;
    same.expect(200);
    assert_eq!(
        same.attr("updated_at"),
        created.attr("updated_at"),
        "a no-op PATCH keeps updated_at"
    );
    app.patch_attributes(
        "routes",
        "routes",
        &id,
        json!({"created_at": "2020-01-01T00:00:00Z"}),
    )
    .await
    .expect_error(
        422,
        "READ_ONLY_ATTRIBUTE",
        Some("/data/attributes/created_at"),
    );
    app.patch_attributes("routes", "routes", &id, json!({"upstream_id": upstream}))
        .await
        .expect_error(
            422,
            "UNKNOWN_ATTRIBUTE",
            Some("/data/attributes/upstream_id"),
        );
    for (attrs, pointer) in [
        (json!({"name": null}), "/data/attributes/name"),
        (json!({"priority": 1001}), "/data/attributes/priority"),
        (
            json!({"rate_limit_override": 0}),
            "/data/attributes/rate_limit_override",
        ),
        (json!({"enabled": null}), "/data/attributes/enabled"),
        (json!({"match_type": "glob"}), "/data/attributes/match_type"),
    ] {
        app.patch_attributes("routes", "routes", &id, attrs)
            .await
            .expect_error(422, "VALIDATION_ERROR", Some(pointer));
    }
    let cleared = app
        .patch_attributes(
            "routes",
            "routes",
            &id,
            json!({"rate_limit_override": null}),
        )
        .await;
    cleared.expect(200);
    assert_eq!(cleared.attr("rate_limit_override"), &Value::Null);
    assert_eq!(cleared.attr("name"), &json!("R"));
}

#[tokio::test]
async fn names_are_unique_case_insensitively_among_live_routes() {
    let app = spawn_app().await;
    let upstream = app
        .create_upstream("Backend", "https://api.example.com")
        .await;
    let first = create_route(
        &app,
        json!({"name": "Public API", "path_pattern": "/a"}),
        &upstream,
    )
    .await
    .id();
    post_route(
        &app,
        json!({"name": "PUBLIC api", "path_pattern": "/b"}),
        &upstream,
    )
    .await
    .expect_error(409, "CONFLICT", Some("/data/attributes/name"));
    let other = create_route(
        &app,
        json!({"name": "Other", "path_pattern": "/c"}),
        &upstream,
    )
    .await
    .id();
    app.patch_attributes("routes", "routes", &other, json!({"name": "public API"}))
        .await
        .expect_error(409, "CONFLICT", Some("/data/attributes/name"));
    assert_eq!(app.get("/api/routes").await.body["meta"]["total"], json!(2));
    // Renaming itself with another case is not a conflict.
    app.patch_attributes("routes", "routes", &first, json!({"name": "Public Api"}))
        .await
        .expect(200);
    app.delete(&format!("/api/routes/{first}"))
        .await
        .expect(204);
    create_route(
        &app,
        json!({"name": "public api", "path_pattern": "/a"}),
        &upstream,
    )
    .await;
}

#[tokio::test]
async fn upstream_relationship_is_required_and_checked() {
    let app = spawn_app().await;
    let upstream = app
        .create_upstream("Backend", "https://api.example.com")
        .await;
    let attrs = json!({"name": "R", "path_pattern": "/r"});
    let post = |relationships: Value| {
        let mut data = json!({"type": "routes", "attributes": attrs});
        if !relationships.is_null() {
            data["relationships"] = relationships;
        }
        app.post("/api/routes", json!({ "data": data }))
    };
    post(Value::Null).await.expect_error(
        422,
        "VALIDATION_ERROR",
        Some("/data/relationships/upstream"),
    );
    post(json!({})).await.expect_error(
        422,
        "VALIDATION_ERROR",
        Some("/data/relationships/upstream"),
    );
    post(json!({"upstream": {"data": null}}))
        .await
        .expect_error(
            422,
            "VALIDATION_ERROR",
            Some("/data/relationships/upstream"),
        );
    post(json!({"upstream": link("upstreams", "ups_01JD0Q3W6Y8ZK2X4V5B7N9M1C3")}))
        .await
        .expect_error(
            404,
            "RELATED_NOT_FOUND",
            Some("/data/relationships/upstream/data"),
        );
    post(json!({"upstream": link("upstreams", "nonsense")}))
        .await
        .expect_error(
            404,
            "RELATED_NOT_FOUND",
            Some("/data/relationships/upstream/data"),
        );
    let plan = app.create_plan("Pro").await;
    post(json!({"upstream": link("plans", &plan)}))
        .await
        .expect_error(409, "TYPE_MISMATCH", None);
    post(json!({"upstream": link("upstreams", &upstream), "owner": {"data": null}}))
        .await
        .expect_error(
            422,
            "UNKNOWN_RELATIONSHIP",
            Some("/data/relationships/owner"),
        );
    // A deleted upstream no longer exists.
    let gone = app.create_upstream("Gone", "https://gone.example").await;
    app.delete(&format!("/api/upstreams/{gone}"))
        .await
        .expect(204);
    post(json!({"upstream": link("upstreams", &gone)}))
        .await
        .expect_error(
            404,
            "RELATED_NOT_FOUND",
            Some("/data/relationships/upstream/data"),
        );
    assert_eq!(app.get("/api/routes").await.body["meta"]["total"], json!(0));

    // A disabled upstream is allowed.
    let disabled = app
        .create(
            "upstreams",
            "upstreams",
            json!({"name": "Off", "base_url": "https://off.example", "enabled": false}),
            Value::Null,
        )
        .await
        .id();
    let route = create_route(&app, attrs.clone(), &disabled).await;
    assert_eq!(
        route.body["data"]["relationships"]["upstream"]["data"],
        json!({"type": "upstreams", "id": disabled})
    );
}

#[tokio::test]
async fn upstream_relationship_can_be_read_and_replaced() {
    let app = spawn_app().await;
    let first = app.create_upstream("First", "https://one.example").await;
    let second = app.create_upstream("Second", "https://two.example").await;
    let id = create_route(&app, json!({"name": "R", "path_pattern": "/r"}), &first)
        .await
        .id();
    let linkage = app
        .get(&format!("/api/routes/{id}/relationships/upstream"))
        .await;
    linkage.expect(200);
    assert_eq!(
        linkage.body["data"],
        json!({"type": "upstreams", "id": first})
    );
    assert_eq!(
        linkage.body["links"]["self"],
        json!(format!("/api/routes/{id}/relationships/upstream"))
    );
    assert_eq!(
        linkage.body["links"]["related"],
        json!(format!("/api/routes/{id}/upstream"))
    );
    let related = app.get(&format!("/api/routes/{id}/upstream")).await;
    related.expect(200);
    assert_eq!(related.body["data"]["type"], json!("upstreams"));
    assert_eq!(related.body["data"]["id"], json!(first));
    assert_eq!(related.attr("name"), &json!("First"));

    // Through the resource's relationships member.
    let moved = app
        .patch(
            &format!("/api/routes/{id}"),
            json!({"data": {"type": "routes", "id": id,
                "relationships": {"upstream": link("upstreams", &second)}}}),
        )
        .await;
    moved.expect(200);
    assert_eq!(
        moved.body["data"]["relationships"]["upstream"]["data"]["id"],
        json!(second)
    );
    // Through the relationship endpoint.
    let back = app
        .patch(
            &format!("/api/routes/{id}/relationships/upstream"),
            link("upstreams", &first),
        )
        .await;
    back.expect(200);
    assert_eq!(back.body["data"], json!({"type": "upstreams", "id": first}));
    assert_eq!(
        app.get(&format!("/api/routes/{id}")).await.body["data"]["relationships"]["upstream"]["data"]
            ["id"],
        json!(first)
    );
    // Bad replacements change nothing.
    app.patch(
        &format!("/api/routes/{id}/relationships/upstream"),
        link("upstreams", "ups_01JD0Q3W6Y8ZK2X4V5B7N9M1C3"),
    )
    .await
    .expect_error(404, "RELATED_NOT_FOUND", Some("/data"));
    let plan = app.create_plan("Pro").await;
    app.patch(
        &format!("/api/routes/{id}/relationships/upstream"),
        link("plans", &plan),
    )
    .await
    .expect_error(409, "TYPE_MISMATCH", None);
    app.patch(
        &format!("/api/routes/{id}/relationships/upstream"),
        json!({"data": null}),
    )
    .await
    .expect(422);
    app.patch(
        &format!("/api/routes/{id}"),
        json!({"data": {"type": "routes", "id": id,
            "relationships": {"upstream": link("upstreams", "ups_01JD0Q3W6Y8ZK2X4V5B7N9M1C3")}}}),
    )
    .await
    .expect_error(
        404,
        "RELATED_NOT_FOUND",
        Some("/data/relationships/upstream/data"),
    );
    assert_eq!(
        app.get(&format!("/api/routes/{id}/relationships/upstream"))
            .await
            .body["data"]["id"],
        json!(first)
    );
}

#[tokio::test]
async fn allowed_plans_and_groups_are_set_read_and_replaced() {
    let app = spawn_app().await;
    let upstream = app
        .create_upstream("Backend", "https://api.example.com")
        .await;
    let pro = app.create_plan("Pro").await;
    let team = app.create_plan("Team").await;
    let enterprise = app.create_plan("Enterprise").await;
    let group = create_group(&app, "Acme").await;
    let created = app
        .create(
            "routes",
            "routes",
            json!({"name": "R", "path_pattern": "/r"}),
            json!({
                "upstream": link("upstreams", &upstream),
                "allowed_plans": {"data": [
                    {"type": "plans", "id": pro}, {"type": "plans", "id": team}]},
                "allowed_groups": {"data": [{"type": "groups", "id": group}]},
            }),
        )
        .await;
    let id = created.id();

    let plans_linkage = app
        .get(&format!("/api/routes/{id}/relationships/allowed_plans"))
        .await;
    plans_linkage.expect(200);
    let linked: Vec<String> = plans_linkage.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            assert_eq!(i["type"], json!("plans"));
            i["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(sorted(linked), sorted(vec![pro.clone(), team.clone()]));
    assert_eq!(plans_linkage.body["meta"]["total"], json!(2));
    assert_eq!(
        plans_linkage.body["links"]["related"],
        json!(format!("/api/routes/{id}/allowed_plans"))
    );
    let groups_linkage = app
        .get(&format!("/api/routes/{id}/relationships/allowed_groups"))
        .await;
    assert_eq!(
        groups_linkage.body["data"],
        json!([{"type": "groups", "id": group}])
    );

    // Linkage pages like a collection, `page[*]` only.
    let paged = app
        .get(&format!(
            "/api/routes/{id}/relationships/allowed_plans?page[size]=1&page[number]=2"
        ))
        .await;
    paged.expect(200);
    assert_eq!(paged.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        paged.body["meta"],
        json!({"total": 2, "page": 2, "per_page": 1, "pages": 2})
    );
    assert!(paged.body["links"]["prev"].is_string());
    assert!(paged.body["links"].get("next").is_none());
    let first_page = app
        .get(&format!(
            "/api/routes/{id}/relationships/allowed_plans?page[size]=1"
        ))
        .await;
    let both_pages = sorted(vec![
        first_page.body["data"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned(),
        paged.body["data"][0]["id"].as_str().unwrap().to_owned(),
    ]);
    assert_eq!(both_pages, sorted(vec![pro.clone(), team.clone()]));
    let sorted_linkage = app
        .get(&format!(
            "/api/routes/{id}/relationships/allowed_plans?sort=name"
        ))
        .await;
    sorted_linkage.expect_error(400, "INVALID_QUERY_PARAMETER", None);
    assert_eq!(sorted_linkage.parameter(), "sort");

    // The related collection: full plan resources, with all query families.
    let related = app
        .get(&format!("/api/routes/{id}/allowed_plans?sort=name"))
        .await;
    related.expect(200);
    assert_eq!(ids(&related), vec![pro.clone(), team.clone()]);
    assert_eq!(related.body["data"][0]["attributes"]["name"], json!("Pro"));
    assert_eq!(related.body["meta"]["total"], json!(2));
    let related_groups = app.get(&format!("/api/routes/{id}/allowed_groups")).await;
    assert_eq!(ids(&related_groups), vec![group.clone()]);

    // Included: the upstream and the plans, with full linkage on the primary resource.
    let included = app
        .get(&format!("/api/routes/{id}?include=upstream,allowed_plans"))
        .await;
    included.expect(200);
    let rels = &included.body["data"]["relationships"];
    let plan_ids: Vec<String> = rels["allowed_plans"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(sorted(plan_ids), sorted(vec![pro.clone(), team.clone()]));
    assert!(rels["allowed_groups"].get("data").is_none());
    let mut included_keys: Vec<(String, String)> = included.body["included"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["type"].as_str().unwrap().to_owned(),
                r["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    included_keys.sort();
    let mut expected = vec![
        ("plans".to_owned(), pro.clone()),
        ("plans".to_owned(), team.clone()),
        ("upstreams".to_owned(), upstream.clone()),
    ];
    expected.sort();
    assert_eq!(included_keys, expected);
    let listed = app.get("/api/routes?include=allowed_groups").await;
    listed.expect(200);
    assert_eq!(
        listed.body["data"][0]["relationships"]["allowed_groups"]["data"],
        json!([{"type": "groups", "id": group}])
    );
    assert_eq!(listed.body["included"][0]["id"], json!(group));

    // Full replacement through the relationship endpoint.
    let replaced = app
        .patch(
            &format!("/api/routes/{id}/relationships/allowed_plans"),
            json!({"data": [{"type": "plans", "id": enterprise}]}),
        )
        .await;
    replaced.expect(200);
    assert_eq!(
        replaced.body["data"],
        json!([{"type": "plans", "id": enterprise}])
    );
    assert_eq!(
        app.get(&format!("/api/routes/{id}/relationships/allowed_plans"))
            .await
            .body["data"],
        json!([{"type": "plans", "id": enterprise}])
    );
    // ...and through the resource's relationships member.
    let via_resource = app
        .patch(
            &format!("/api/routes/{id}?include=allowed_plans"),
            json!({"data": {"type": "routes", "id": id, "relationships": {
                "allowed_plans": {"data": [{"type": "plans", "id": pro}]}}}}),
        )
        .await;
    via_resource.expect(200);
    assert_eq!(
        via_resource.body["data"]["relationships"]["allowed_plans"]["data"],
        json!([{"type": "plans", "id": pro}])
    );
    let emptied = app
        .patch(
            &format!("/api/routes/{id}/relationships/allowed_groups"),
            json!({"data": []}),
        )
        .await;
    emptied.expect(200);
    assert_eq!(emptied.body["data"], json!([]));
    assert_eq!(
        app.get(&format!("/api/routes/{id}/allowed_groups"))
            .await
            .body["meta"]["total"],
        json!(0)
    );
}

#[tokio::test]
async fn allowed_plans_linkage_is_checked() {
    let app = spawn_app().await;
    let upstream = app
        .create_upstream("Backend", "https://api.example.com")
        .await;
    let pro = app.create_plan("Pro").await;
    // The linkage type is checked before existence: any groups identifier mismatches.
    let group = "grp_01JD0Q3W6Y8ZK2X4V5B7N9M1C3";
    let post = |relationships: Value| {
        let mut relationships = relationships;
        relationships["upstream"] = link("upstreams", &upstream);
        app.post(
            "/api/routes",
            json!({"data": {"type": "routes",
                "attributes": {"name": "R", "path_pattern": "/r"},
                "relationships": relationships}}),
        )
    };
    let missing = post(json!({"allowed_plans": {"data": [
        {"type": "plans", "id": pro},
        {"type": "plans", "id": "pln_01JD0Q3W6Y8ZK2X4V5B7N9M1C3"}]}}))
    .await;
    missing.expect_error(404, "RELATED_NOT_FOUND", None);
    assert!(
        missing
            .pointer()
            .starts_with("/data/relationships/allowed_plans/data/"),
        "{}",
        missing.body
    );
    post(json!({"allowed_plans": {"data": [{"type": "groups", "id": group}]}}))
        .await
        .expect_error(409, "TYPE_MISMATCH", None);
    post(json!({"allowed_groups": {"data": [{"type": "plans", "id": pro}]}}))
        .await
        .expect_error(409, "TYPE_MISMATCH", None);
    let missing_group = post(json!({"allowed_groups": {"data": [
        {"type": "groups", "id": "grp_01JD0Q3W6Y8ZK2X4V5B7N9M1C3"}]}}))
    .await;
    missing_group.expect_error(
        404,
        "RELATED_NOT_FOUND",
        Some("/data/relationships/allowed_groups/data/0"),
    );
    assert_eq!(app.get("/api/routes").await.body["meta"]["total"], json!(0));

    let id = create_route(&app, json!({"name": "R", "path_pattern": "/r"}), &upstream)
        .await
        .id();
    app.patch(
        &format!("/api/routes/{id}/relationships/allowed_plans"),
        json!({"data": [{"type": "plans", "id": "pln_01JD0Q3W6Y8ZK2X4V5B7N9M1C3"}]}),
    )
    .await
    .expect_error(404, "RELATED_NOT_FOUND", None);
    app.patch(
        &format!("/api/routes/{id}/relationships/allowed_plans"),
        json!({"data": [{"type": "upstreams", "id": upstream}]}),
    )
    .await
    .expect_error(409, "TYPE_MISMATCH", None);
    app.patch(
        &format!("/api/routes/{id}/relationships/allowed_plans"),
        json!({"data": [{"type": "plans"}]}),
    )
    .await
    .expect_error(400, "INVALID_DOCUMENT", None);
    assert_eq!(
        app.get(&format!("/api/routes/{id}/relationships/allowed_plans"))
            .await
            .body["data"],
        json!([]),
        "rejected replacements change nothing"
    );
}

#[tokio::test]
async fn a_plan_allowed_on_a_route_cannot_be_deleted() {
    let app = spawn_app().await;
    let upstream = app
        .create_upstream("Backend", "https://api.example.com")
        .await;
    let pro = app.create_plan("Pro").await;
    let id = app
        .create(
            "routes",
            "routes",
            json!({"name": "R", "path_pattern": "/r"}),
            json!({"upstream": link("upstreams", &upstream),
                   "allowed_plans": {"data": [{"type": "plans", "id": pro}]}}),
        )
        .await
        .id();
    app.delete(&format!("/api/plans/{pro}"))
        .await
        .expect_error(409, "RESOURCE_IN_USE", None);
    app.get(&format!("/api/plans/{pro}")).await.expect(200);
    app.patch(
        &format!("/api/routes/{id}/relationships/allowed_plans"),
        json!({"data": []}),
    )
    .await
    .expect(200);
    app.delete(&format!("/api/plans/{pro}")).await.expect(204);

    // A deleted route no longer holds its plans.
    let team = app.create_plan("Team").await;
    let other = app
        .create(
            "routes",
            "routes",
            json!({"name": "Other", "path_pattern": "/o"}),
            json!({"upstream": link("upstreams", &upstream),
                   "allowed_plans": {"data": [{"type": "plans", "id": team}]}}),
        )
        .await
        .id();
    app.delete(&format!("/api/plans/{team}"))
        .await
        .expect_error(409, "RESOURCE_IN_USE", None);
    app.delete(&format!("/api/routes/{other}"))
        .await
        .expect(204);
    app.delete(&format!("/api/plans/{team}")).await.expect(204);
}

#[tokio::test]
async fn filters_and_sorts() {
    let app = spawn_app().await;
    let one = app.create_upstream("One", "https://one.example").await;
    let two = app.create_upstream("Two", "https://two.example").await;
    let alpha = create_route(
        &app,
        json!({"name": "Alpha", "path_pattern": "/c", "priority": 5, "match_type": "exact"}),
        &one,
    )
    .await
    .id();
    let beta = create_route(
        &app,
        json!({"name": "Beta", "path_pattern": "/a", "priority": -3, "enabled": false,
               "auth_required": false}),
        &two,
    )
    .await
    .id();
    let gamma = create_route(
        &app,
        json!({"name": "Gamma", "path_pattern": "/b.*", "priority": 100, "match_type": "regex"}),
        &one,
    )
    .await
    .id();
    let app = &app;
    let list = |query: &'static str| {
        let path = format!("/api/routes?{query}");
        async move { app.get(&path).await }
    };
    assert_eq!(
        ids(&list("").await),
        vec![gamma.clone(), beta.clone(), alpha.clone()],
        "newest first by default"
    );
    assert_eq!(
        ids(&list("sort=name").await),
        vec![alpha.clone(), beta.clone(), gamma.clone()]
    );
    assert_eq!(
        ids(&list("sort=-name").await),
        vec![gamma.clone(), beta.clone(), alpha.clone()]
    );
    assert_eq!(
        ids(&list("sort=priority").await),
        vec![beta.clone(), alpha.clone(), gamma.clone()]
    );
    assert_eq!(
        ids(&list("sort=-priority").await),
        vec![gamma.clone(), alpha.clone(), beta.clone()]
    );
    assert_eq!(
        ids(&list("sort=path_pattern").await),
        vec![beta.clone(), gamma.clone(), alpha.clone()]
    );
    assert_eq!(
        ids(&list("filter[enabled]=false").await),
        vec![beta.clone()]
    );
    assert_eq!(
        ids(&list("filter[enabled]=true&sort=name").await),
        vec![alpha.clone(), gamma.clone()]
    );
    assert_eq!(
        ids(&list("filter[match_type]=regex").await),
        vec![gamma.clone()]
    );
    assert_eq!(
        ids(&list("filter[match_type]=exact,prefix&sort=name").await),
        vec![alpha.clone(), beta.clone()]
    );
    assert_eq!(
        ids(&list("filter[auth_required]=false").await),
        vec![beta.clone()]
    );
    assert_eq!(
        ids(&app
            .get(&format!("/api/routes?filter[upstream]={one}&sort=name"))
            .await),
        vec![alpha.clone(), gamma.clone()]
    );
    assert_eq!(
        ids(&app
            .get(&format!("/api/routes?filter[upstream]={two}"))
            .await),
        vec![beta.clone()]
    );
    assert_eq!(
        ids(&app
            .get(&format!(
                "/api/routes?filter[upstream]={one}&filter[match_type]=exact"
            ))
            .await),
        vec![alpha.clone()],
        "filters AND together"
    );
    assert_eq!(ids(&list("filter[q]=AMM").await), vec![gamma.clone()]);
    let all = list("filter[upstream]=none").await;
    all.expect(200);
    assert_eq!(
        all.body["meta"]["total"],
        json!(0),
        "every route has an upstream"
    );
}

#[tokio::test]
async fn bad_query_parameters_name_the_parameter() {
    let app = spawn_app().await;
    let upstream = app
        .create_upstream("Backend", "https://api.example.com")
        .await;
    let id = create_route(&app, json!({"name": "R", "path_pattern": "/r"}), &upstream)
        .await
        .id();
    for (query, code, parameter) in [
        ("sort=description", "INVALID_SORT", "sort"),
        ("sort=methods", "INVALID_SORT", "sort"),
        ("sort=upstream", "INVALID_SORT", "sort"),
        ("sort=upstream.name", "INVALID_SORT", "sort"),
        ("sort=name,-bogus", "INVALID_SORT", "sort"),
        ("filter[name]=R", "INVALID_FILTER", "filter[name]"),
        ("filter[priority]=0", "INVALID_FILTER", "filter[priority]"),
        (
            "filter[host_pattern]=x",
            "INVALID_FILTER",
            "filter[host_pattern]",
        ),
        (
            "filter[match_type]=glob",
            "INVALID_FILTER",
            "filter[match_type]",
        ),
        ("filter[enabled]=yes", "INVALID_FILTER", "filter[enabled]"),
        (
            "filter[auth_required]=1",
            "INVALID_FILTER",
            "filter[auth_required]",
        ),
        (
            "filter[allowed_plans]=x",
            "INVALID_FILTER",
            "filter[allowed_plans]",
        ),
        ("include=plans", "INVALID_INCLUDE", "include"),
        ("include=upstream,owner", "INVALID_INCLUDE", "include"),
        ("include=upstream.nothing", "INVALID_INCLUDE", "include"),
        (
            "include=upstream.routes.upstream",
            "INVALID_INCLUDE",
            "include",
        ),
        (
            "fields[routes]=upstream_id",
            "INVALID_FIELDS",
            "fields[routes]",
        ),
    ] {
        let reply = app.get(&format!("/api/routes?{query}")).await;
        reply.expect_error(400, code, None);
        assert_eq!(reply.parameter(), parameter, "{query}: {}", reply.body);
    }
    let single = app
        .get(&format!("/api/routes/{id}?include=allowed_groups.bogus"))
        .await;
    single.expect_error(400, "INVALID_INCLUDE", None);
    assert_eq!(single.parameter(), "include");
    let filter_one = app
        .get(&format!("/api/routes/{id}?filter[enabled]=true"))
        .await;
    filter_one.expect_error(400, "INVALID_QUERY_PARAMETER", None);
    // Valid includes of depth 2 and sparse fieldsets work.
    let deep = app
        .get(&format!(
            "/api/routes/{id}?include=upstream.routes&fields[routes]=name,upstream"
        ))
        .await;
    deep.expect(200);
    assert_eq!(deep.body["data"]["attributes"], json!({"name": "R"}));
    assert_eq!(deep.body["included"][0]["id"], json!(upstream));
}

/// The RELATED_NOT_FOUND pointer is RFC 6901 into the request body (jsonapi.md §4, errors.md §1):
/// for a to-many linkage it names the offending identifier by its position in the document.
#[tokio::test]
async fn related_not_found_points_at_the_identifier_in_document_order() {
    let app = spawn_app().await;
    let upstream = app
        .create_upstream("Backend", "https://api.example.com")
        .await;
    let pro = app.create_plan("Pro").await;
    // The unknown id sorts before `pro` (older ULID) but comes second in the document.
    let reply = app
        .post(
            "/api/routes",
            json!({"data": {"type": "routes",
                "attributes": {"name": "R", "path_pattern": "/r"},
                "relationships": {
                    "upstream": link("upstreams", &upstream),
                    "allowed_plans": {"data": [
                        {"type": "plans", "id": pro},
                        {"type": "plans", "id": "pln_01JD0Q3W6Y8ZK2X4V5B7N9M1C3"}]}}}}),
        )
        .await;
    reply.expect_error(
        404,
        "RELATED_NOT_FOUND",
        Some("/data/relationships/allowed_plans/data/1"),
    );
}
