//! Rules every endpoint shares: media types, documents, auth, errors, query parameters.

use reqwest::Method;
use serde_json::{Value, json};
use tollgate_tests::{MT, Reply, spawn_app};

#[tokio::test]
async fn media_type_negotiation() {
    let app = spawn_app().await;
    let body = json!({"data": {"type": "plans", "attributes": {"name": "Pro"}}}).to_string();
    for (content_type, code) in [
        ("application/json", "UNSUPPORTED_MEDIA_TYPE"),
        (
            "application/vnd.api+json; charset=utf-8",
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            "application/vnd.api+json; version=1",
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            "application/vnd.api+json; ext=\"https://jsonapi.org/ext/atomic\"",
            "UNSUPPORTED_EXTENSION",
        ),
    ] {
        let reply = app
            .send(
                app.request(Method::POST, "/api/plans")
                    .header("Content-Type", content_type)
                    .body(body.clone()),
            )
            .await;
        reply.expect_error(415, code, None);
        assert_eq!(
            reply.body["errors"][0]["source"]["header"],
            json!("Content-Type")
        );
    }
    let no_type = app
        .send(app.request(Method::POST, "/api/plans").body(body.clone()))
        .await;
    no_type.expect_error(415, "UNSUPPORTED_MEDIA_TYPE", None);

    for accept in [
        "application/vnd.api+json; ext=\"x\"",
        "application/vnd.api+json; charset=utf-8",
        "application/vnd.api+json;q=0",
    ] {
        let reply = app
            .send(
                app.bare_request(Method::GET, "/api/plans")
                    .header("Accept", accept),
            )
            .await;
        reply.expect_error(406, "NOT_ACCEPTABLE", None);
        assert_eq!(reply.body["errors"][0]["source"]["header"], json!("Accept"));
    }
    for accept in [
        "application/json",
        "*/*",
        "application/vnd.api+json; profile=\"https://x\"",
        "application/vnd.api+json;q=0.5",
    ] {
        let reply = app
            .send(
                app.bare_request(Method::GET, "/api/plans")
                    .header("Accept", accept),
            )
            .await;
        reply.expect(200);
        assert_eq!(reply.header("content-type"), Some(MT));
    }
    let with_profile = app
        .send(
            app.request(Method::POST, "/api/plans")
                .header(
                    "Content-Type",
                    "application/vnd.api+json; profile=\"https://example.com/p\"",
                )
                .body(body),
        )
        .await;
    with_profile.expect(201);
}

#[tokio::test]
async fn malformed_and_misshapen_documents() {
    let app = spawn_app().await;
    let send_raw = |raw: &'static str| {
        app.send(
            app.request(Method::POST, "/api/plans")
                .header("Content-Type", MT)
                .body(raw),
        )
    };
    send_raw("{\"data\": ")
        .await
        .expect_error(400, "INVALID_JSON", None);
    send_raw("\u{0}\u{1}")
        .await
        .expect_error(400, "INVALID_JSON", None);
    send_raw("[1,2]")
        .await
        .expect_error(400, "INVALID_DOCUMENT", Some(""));
    send_raw("{\"meta\": {}}")
        .await
        .expect_error(400, "INVALID_DOCUMENT", Some(""));
    send_raw("{\"data\": []}")
        .await
        .expect_error(400, "INVALID_DOCUMENT", Some("/data"));
    send_raw("{\"data\": {\"attributes\": {}}}")
        .await
        .expect_error(400, "INVALID_DOCUMENT", Some("/data/type"));
    send_raw("{\"data\": {\"type\": \"plans\"}, \"included\": []}")
        .await
        .expect_error(400, "INVALID_DOCUMENT", Some("/included"));
    send_raw("{\"data\": {\"type\": \"plans\", \"attributes\": []}}")
        .await
        .expect_error(400, "INVALID_DOCUMENT", Some("/data/attributes"));
    send_raw("{\"data\": {\"type\": \"users\", \"attributes\": {\"name\": \"x\"}}}")
        .await
        .expect_error(409, "TYPE_MISMATCH", Some("/data/type"));
    send_raw(
        "{\"data\": {\"type\": \"plans\", \"id\": \"pln_x\", \"attributes\": {\"name\": \"x\"}}}",
    )
    .await
    .expect_error(403, "CLIENT_ID_NOT_ALLOWED", Some("/data/id"));
    send_raw("{\"data\": {\"type\": \"plans\", \"lid\": 7, \"attributes\": {\"name\": \"x\"}}}")
        .await
        .expect_error(400, "INVALID_DOCUMENT", Some("/data/lid"));
    // An empty POST where a document is required.
    let empty = app
        .send(
            app.request(Method::POST, "/api/plans")
                .header("Content-Type", MT),
        )
        .await;
    empty.expect_error(400, "INVALID_DOCUMENT", Some(""));

    let id = app.create_plan("Pro").await;
    let path = format!("/api/plans/{id}");
    app.patch(
        &path,
        json!({"data": {"type": "plans", "attributes": {"name": "x"}}}),
    )
    .await
    .expect_error(400, "INVALID_DOCUMENT", Some("/data/id"));
    app.patch(&path, json!({"data": {"type": "plans", "id": "pln_01JD0Q3W6Y8ZK2X4V5B7N9M1C3", "attributes": {}}}))
        .await
        .expect_error(409, "ID_MISMATCH", Some("/data/id"));
    app.patch(
        &path,
        json!({"data": {"type": "users", "id": id, "attributes": {}}}),
    )
    .await
    .expect_error(409, "TYPE_MISMATCH", Some("/data/type"));
    let huge = format!(
        "{{\"data\":{{\"type\":\"plans\",\"attributes\":{{\"description\":\"{}\"}}}}}}",
        "x".repeat(1024 * 1024 + 10)
    );
    app.send(
        app.request(Method::POST, "/api/plans")
            .header("Content-Type", MT)
            .body(huge),
    )
    .await
    .expect_error(413, "PAYLOAD_TOO_LARGE", None);
}

#[tokio::test]
async fn authentication_is_required_and_checked() {
    let app = spawn_app().await;
    let anonymous = Reply::from(app.client.get(app.url("/api/plans")).send().await.unwrap()).await;
    anonymous.expect_error(401, "UNAUTHORIZED", None);
    assert_eq!(
        anonymous.header("www-authenticate"),
        Some("Bearer realm=\"tollgate\"")
    );
    for header in [
        (
            "Authorization",
            "Bearer tg_admin_0000000000000000000000000000000000000000".to_owned(),
        ),
        ("Authorization", format!("Basic {}", app.admin_key)),
        (
            "X-API-Key",
            "tg_live_0000000000000000000000000000000000000000".to_owned(),
        ),
        ("Authorization", "Bearer not-a-jwt".to_owned()),
    ] {
        let reply = Reply::from(
            app.client
                .get(app.url("/api/plans"))
                .header(header.0, header.1)
                .send()
                .await
                .unwrap(),
        )
        .await;
        reply.expect_error(401, "UNAUTHORIZED", None);
    }
    // X-API-Key works as well as the bearer form.
    let via_header = Reply::from(
        app.client
            .get(app.url("/api/plans"))
            .header("X-API-Key", &app.admin_key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    via_header.expect(200);
    // A present but invalid Authorization never falls back to X-API-Key.
    let no_fallback = Reply::from(
        app.client
            .get(app.url("/api/plans"))
            .header(
                "Authorization",
                "Bearer tg_admin_0000000000000000000000000000000000000000",
            )
            .header("X-API-Key", &app.admin_key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    no_fallback.expect_error(401, "UNAUTHORIZED", None);
    // Auth is checked before media types and bodies.
    let unauth_write = Reply::from(
        app.client
            .post(app.url("/api/plans"))
            .header("Content-Type", "text/plain")
            .body("x")
            .send()
            .await
            .unwrap(),
    )
    .await;
    unauth_write.expect_error(401, "UNAUTHORIZED", None);
}

#[tokio::test]
async fn unknown_paths_methods_and_ids() {
    let app = spawn_app().await;
    app.get("/api/nothing")
        .await
        .expect_error(404, "NOT_FOUND", None);
    app.get("/api/plans/pln_01JD0Q3W6Y8ZK2X4V5B7N9M1C3")
        .await
        .expect_error(404, "NOT_FOUND", None);
    app.get("/api/plans/not-an-id")
        .await
        .expect_error(404, "NOT_FOUND", None);
    app.get("/api/users/pln_01JD0Q3W6Y8ZK2X4V5B7N9M1C3")
        .await
        .expect_error(404, "NOT_FOUND", None);
    let put = app.send(app.request(Method::PUT, "/api/plans")).await;
    put.expect_error(405, "METHOD_NOT_ALLOWED", None);
    assert_eq!(put.header("allow"), Some("GET, POST"));
    let put_one = app
        .send(app.request(Method::PUT, "/api/plans/pln_01JD0Q3W6Y8ZK2X4V5B7N9M1C3"))
        .await;
    assert_eq!(put_one.header("allow"), Some("GET, PATCH, DELETE"));
    let revoke_get = app
        .get("/api/api-keys/key_01JD0Q3W6Y8ZK2X4V5B7N9M1C3/revoke")
        .await;
    revoke_get.expect_error(405, "METHOD_NOT_ALLOWED", None);
    app.get("/api/plans/pln_01JD0Q3W6Y8ZK2X4V5B7N9M1C3/relationships/nothing")
        .await
        .expect_error(404, "NOT_FOUND", None);
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let app = spawn_app().await;
    let echoed = app
        .send(
            app.request(Method::GET, "/api/nothing")
                .header("X-Request-Id", "trace-42.a_b"),
        )
        .await;
    assert_eq!(echoed.header("x-request-id"), Some("trace-42.a_b"));
    assert_eq!(echoed.body["errors"][0]["id"], json!("trace-42.a_b"));
    let replaced = app
        .send(
            app.request(Method::GET, "/api/plans")
                .header("X-Request-Id", "bad id!"),
        )
        .await;
    assert!(replaced.header("x-request-id").unwrap().starts_with("req_"));
    let health = Reply::from(app.client.get(app.url("/health")).send().await.unwrap()).await;
    assert_eq!(health.body, json!({"status": "ok"}));
}

#[tokio::test]
async fn query_parameters_are_validated_with_their_name() {
    let app = spawn_app().await;
    for (query, code, parameter) in [
        ("foo=1", "INVALID_QUERY_PARAMETER", "foo"),
        ("Sort=name", "INVALID_QUERY_PARAMETER", "Sort"),
        ("page[offset]=1", "INVALID_QUERY_PARAMETER", "page[offset]"),
        ("per_page=5", "INVALID_QUERY_PARAMETER", "per_page"),
        ("sort=name&sort=name", "INVALID_QUERY_PARAMETER", "sort"),
        ("page[number]=0", "INVALID_PAGE_PARAMETER", "page[number]"),
        ("page[size]=101", "INVALID_PAGE_PARAMETER", "page[size]"),
        ("page[size]=ten", "INVALID_PAGE_PARAMETER", "page[size]"),
        ("sort=description", "INVALID_SORT", "sort"),
        ("sort=users", "INVALID_SORT", "sort"),
        ("filter[name]=x", "INVALID_FILTER", "filter[name]"),
        ("filter[enabled]=maybe", "INVALID_FILTER", "filter[enabled]"),
        (
            "filter[created_after]=yesterday",
            "INVALID_FILTER",
            "filter[created_after]",
        ),
        ("include=owner", "INVALID_INCLUDE", "include"),
        ("include=users.plan.users", "INVALID_INCLUDE", "include"),
        ("fields[plans]=secret", "INVALID_FIELDS", "fields[plans]"),
        (
            "fields[unicorns]=name",
            "INVALID_FIELDS",
            "fields[unicorns]",
        ),
    ] {
        let reply = app.get(&format!("/api/plans?{query}")).await;
        reply.expect_error(400, code, None);
        assert_eq!(reply.parameter(), parameter, "{query}: {}", reply.body);
    }
    let id = app.create_plan("Pro").await;
    let single = app.get(&format!("/api/plans/{id}?sort=name")).await;
    single.expect_error(400, "INVALID_QUERY_PARAMETER", None);
    let delete = app.delete(&format!("/api/plans/{id}?include=users")).await;
    delete.expect_error(400, "INVALID_QUERY_PARAMETER", None);
}

#[tokio::test]
async fn pagination_meta_and_links() {
    let app = spawn_app().await;
    for n in 0..24 {
        app.create_plan(&format!("Plan {n:02}")).await;
    }
    // 24 + the bootstrap plan "Free" = 25.
    let page = app
        .get("/api/plans?page[number]=2&page[size]=10&sort=name")
        .await;
    page.expect(200);
    assert_eq!(
        page.body["meta"],
        json!({"total": 25, "page": 2, "per_page": 10, "pages": 3})
    );
    let links = &page.body["links"];
    assert_eq!(
        links["self"],
        json!("/api/plans?page[number]=2&page[size]=10&sort=name")
    );
    assert_eq!(
        links["first"],
        json!("/api/plans?sort=name&page%5Bnumber%5D=1&page%5Bsize%5D=10")
    );
    assert_eq!(
        links["prev"],
        json!("/api/plans?sort=name&page%5Bnumber%5D=1&page%5Bsize%5D=10")
    );
    assert_eq!(
        links["next"],
        json!("/api/plans?sort=name&page%5Bnumber%5D=3&page%5Bsize%5D=10")
    );
    assert_eq!(
        links["last"],
        json!("/api/plans?sort=name&page%5Bnumber%5D=3&page%5Bsize%5D=10")
    );
    let names: Vec<&str> = page.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["attributes"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        (9..19).map(|n| format!("Plan {n:02}")).collect::<Vec<_>>()
    );

    let beyond = app.get("/api/plans?page[number]=9&page[size]=10").await;
    assert_eq!(beyond.body["data"], json!([]));
    assert_eq!(
        beyond.body["links"]["prev"],
        json!("/api/plans?page%5Bnumber%5D=3&page%5Bsize%5D=10")
    );
    assert!(beyond.body["links"].get("next").is_none());

    let empty = app.get("/api/plans?filter[q]=nothing-matches").await;
    assert_eq!(
        empty.body["meta"],
        json!({"total": 0, "page": 1, "per_page": 20, "pages": 1})
    );
    assert!(empty.body["links"].get("prev").is_none() && empty.body["links"].get("next").is_none());

    let default_page = app.get("/api/plans").await;
    assert_eq!(default_page.body["data"].as_array().unwrap().len(), 20);
    // Default order: newest first.
    assert_eq!(
        default_page.body["data"][0]["attributes"]["name"],
        json!("Plan 23")
    );
}

#[tokio::test]
async fn sorting_filtering_fieldsets_and_include() {
    let app = spawn_app().await;
    let cheap = app
        .create(
            "plans",
            "plans",
            json!({"name": "Cheap", "price_monthly": 100, "enabled": false}),
            Value::Null,
        )
        .await
        .id();
    let dear = app
        .create(
            "plans",
            "plans",
            json!({"name": "Dear", "price_monthly": 900}),
            Value::Null,
        )
        .await
        .id();
    let ids = |reply: &Reply| -> Vec<String> {
        reply.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let by_price = app.get("/api/plans?sort=-price_monthly&filter[q]=ea").await;
    assert_eq!(ids(&by_price), vec![dear.clone(), cheap.clone()]);
    let disabled = app.get("/api/plans?filter[enabled]=false").await;
    assert_eq!(ids(&disabled), vec![cheap.clone()]);
    let both = app
        .get(&format!("/api/plans?filter[id]={cheap},{dear}&sort=name"))
        .await;
    assert_eq!(ids(&both), vec![cheap.clone(), dear.clone()]);
    let react_admin = app
        .get(&format!(
            "/api/plans?filter[id][]={cheap}&filter[id][]={dear}&sort=name"
        ))
        .await;
    assert_eq!(ids(&react_admin), vec![cheap.clone(), dear.clone()]);

    let sparse = app
        .get(&format!("/api/plans/{dear}?fields[plans]=name"))
        .await;
    assert_eq!(sparse.body["data"]["attributes"], json!({"name": "Dear"}));
    assert!(
        sparse.body["data"]["relationships"]
            .as_object()
            .unwrap()
            .is_empty()
    );
    let nothing = app.get(&format!("/api/plans/{dear}?fields[plans]=")).await;
    assert_eq!(nothing.body["data"]["attributes"], json!({}));
    assert_eq!(nothing.body["data"]["id"], json!(dear));

    // Users: filter by plan, include the plan and its users (depth 2), sparse included plans.
    let user = app
        .create(
            "users",
            "users",
            json!({"email": "ada@example.com", "name": "Ada"}),
            json!({"plan": tollgate_tests::link("plans", &dear)}),
        )
        .await
        .id();
    let on_dear = app
        .get(&format!(
            "/api/users?filter[plan]={dear}&include=plan.users&fields[plans]=name,users"
        ))
        .await;
    on_dear.expect(200);
    assert_eq!(ids(&on_dear), vec![user.clone()]);
    let included = on_dear.body["included"].as_array().unwrap();
    assert_eq!(
        included.len(),
        1,
        "the user itself is primary data, not included: {}",
        on_dear.body
    );
    assert_eq!(included[0]["id"], json!(dear));
    assert_eq!(included[0]["attributes"], json!({"name": "Dear"}));
    assert_eq!(
        included[0]["relationships"]["users"]["data"],
        json!([{"type": "users", "id": user}])
    );
    let by_email = app
        .get("/api/users?filter[email]=Ada@Example.com&filter[q]=ADA")
        .await;
    assert_eq!(ids(&by_email), vec![user.clone()]);
    let none_yet = app
        .get(&format!("/api/users/{user}?include=api_keys"))
        .await;
    assert_eq!(none_yet.body["included"], json!([]));
    assert_eq!(
        none_yet.body["data"]["relationships"]["api_keys"]["data"],
        json!([])
    );
    let without_include = app.get(&format!("/api/users/{user}")).await;
    assert!(
        without_include.body["data"]["relationships"]["api_keys"]
            .get("data")
            .is_none()
    );
    assert!(without_include.body.get("included").is_none());
    assert_eq!(
        without_include.body["links"]["describedby"],
        json!("/docs/openapi.json")
    );
}

#[tokio::test]
async fn concurrent_writes_all_succeed() {
    let app = std::sync::Arc::new(spawn_app().await);
    let id = app.create_plan("Shared").await;
    let mut tasks = Vec::new();
    for n in 0..16 {
        let app = app.clone();
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            let created = app
                .post(
                    "/api/plans",
                    json!({"data": {"type": "plans", "attributes": {"name": format!("P{n}")}}}),
                )
                .await;
            let patched = app
                .patch_attributes("plans", "plans", &id, json!({"price_monthly": n}))
                .await;
            (created.status.as_u16(), patched.status.as_u16())
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), (201, 200));
    }
    assert_eq!(app.get("/api/plans").await.body["meta"]["total"], json!(18));
}

#[tokio::test]
async fn totals_stay_exact_through_creates_and_deletes() {
    let app = spawn_app().await;
    let total = |reply: Reply| reply.body["meta"]["total"].as_u64().unwrap();
    let ids: Vec<String> = create_plans(&app, 5).await;
    assert_eq!(total(app.get("/api/plans").await), 6);
    app.delete(&format!("/api/plans/{}", ids[0]))
        .await
        .expect(204);
    app.delete(&format!("/api/plans/{}", ids[1]))
        .await
        .expect(204);
    assert_eq!(total(app.get("/api/plans").await), 4);
    assert_eq!(total(app.get("/api/plans?filter[q]=counted").await), 3);
    // A failed create changes nothing.
    app.post(
        "/api/plans",
        json!({"data": {"type": "plans", "attributes": {"name": "counted 2"}}}),
    )
    .await
    .expect_error(409, "CONFLICT", None);
    assert_eq!(total(app.get("/api/plans").await), 4);
}

async fn create_plans(app: &tollgate_tests::TestApp, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(app.create_plan(&format!("counted {i}")).await);
    }
    ids
}
