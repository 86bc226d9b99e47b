//! `/api/users`: CRUD, value rules, uniqueness, self-protection, plan linkage, delete cascades.

use reqwest::Method;
use serde_json::{Value, json};
use tollgate_tests::{ADMIN_EMAIL, MT, Reply, TestApp, link, spawn_app};

/// The id of the plan flagged `is_default` (the bootstrap `Free`).
async fn default_plan(app: &TestApp) -> String {
    let reply = app.get("/api/plans?filter[is_default]=true").await;
    reply.expect(200);
    reply.body["data"][0]["id"]
        .as_str()
        .expect("a default plan")
        .to_owned()
}

async fn post_user(app: &TestApp, attributes: Value, relationships: Value) -> Reply {
    let mut data = json!({"type": "users", "attributes": attributes});
    if !relationships.is_null() {
        data["relationships"] = relationships;
    }
    app.post("/api/users", json!({ "data": data })).await
}

/// Creates a user with the given role (admin-created users are active by default).
async fn create_with_role(app: &TestApp, email: &str, role: &str) -> String {
    app.create(
        "users",
        "users",
        json!({"email": email, "role": role}),
        Value::Null,
    )
    .await
    .id()
}

/// A live key for `user`; returns its id.
async fn create_key(app: &TestApp, user: &str, kind: &str) -> Reply {
    app.create(
        "api-keys",
        "api_keys",
        json!({"name": "k", "kind": kind}),
        json!({"user": link("users", user)}),
    )
    .await
}

fn ids(reply: &Reply) -> Vec<String> {
    reply.body["data"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|i| i["id"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn attr_names(resource: &Value) -> Vec<String> {
    let mut names: Vec<String> = resource["attributes"]
        .as_object()
        .map(|a| a.keys().cloned().collect())
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn crud_happy_path() {
    let app = spawn_app().await;
    let free = default_plan(&app).await;
    let created = app
        .create(
            "users",
            "users",
            json!({"email": "  Ada@Example.COM ", "name": "  Ada Lovelace ", "password": "correct horse 1"}),
            Value::Null,
        )
        .await;
    let id = created.id();
    assert!(id.starts_with("usr_") && id.len() == 30, "{id}");
    assert_eq!(
        created.header("location"),
        Some(format!("/api/users/{id}").as_str())
    );
    assert_eq!(created.header("content-type"), Some(MT));
    assert_eq!(created.body["jsonapi"], json!({"version": "1.1"}));
    assert_eq!(created.body["data"]["type"], json!("users"));
    assert_eq!(
        attr_names(&created.body["data"]),
        [
            "created_at",
            "email",
            "last_login_at",
            "name",
            "role",
            "status",
            "updated_at"
        ],
        "exactly the documented attributes; never the password"
    );
    assert_eq!(created.attr("email"), &json!("ada@example.com"));
    assert_eq!(created.attr("name"), &json!("Ada Lovelace"));
    assert_eq!(created.attr("status"), &json!("active"));
    assert_eq!(created.attr("role"), &json!("user"));
    assert_eq!(created.attr("last_login_at"), &Value::Null);
    let created_at = created.attr("created_at").as_str().unwrap();
    assert!(created_at.ends_with('Z'), "{created_at}");
    let rels = &created.body["data"]["relationships"];
    assert_eq!(
        rels["plan"]["data"],
        json!({"type": "plans", "id": free}),
        "omitted plan ⇒ the default plan"
    );
    assert_eq!(
        rels["plan"]["links"],
        json!({"self": format!("/api/users/{id}/relationships/plan"), "related": format!("/api/users/{id}/plan")})
    );
    for to_many in ["api_keys", "groups"] {
        assert_eq!(
            rels[to_many]["links"]["related"],
            json!(format!("/api/users/{id}/{to_many}"))
        );
        assert!(
            rels[to_many].get("data").is_none(),
            "to-many linkage only when included: {rels}"
        );
    }
    assert_eq!(
        created.body["data"]["links"]["self"],
        json!(format!("/api/users/{id}"))
    );

    let fetched = app.get(&format!("/api/users/{id}")).await;
    fetched.expect(200);
    assert_eq!(
        fetched.body["data"]["attributes"],
        created.body["data"]["attributes"]
    );
    assert_eq!(
        fetched.body["data"]["relationships"]["plan"]["data"]["id"],
        json!(free)
    );

    let list = app.get("/api/users").await;
    list.expect(200);
    assert_eq!(list.body["meta"]["total"], json!(2));
    assert_eq!(ids(&list)[0], id, "newest first by default");
    for item in list.body["data"].as_array().unwrap() {
        assert!(item["attributes"].get("password").is_none());
    }

    let patched = app
        .patch_attributes("users", "users", &id, json!({"name": "Countess"}))
        .await;
    patched.expect(200);
    assert_eq!(patched.attr("name"), &json!("Countess"));
    for unchanged in ["email", "status", "role", "last_login_at", "created_at"] {
        assert_eq!(
            patched.attr(unchanged),
            created.attr(unchanged),
            "{unchanged} kept"
        );
    }
    assert_eq!(
        patched.body["data"]["relationships"]["plan"]["data"]["id"],
        json!(free)
    );
    assert_eq!(
        app.get(&format!("/api/users/{id}")).await.attr("name"),
        &json!("Countess")
    );

    let session = app.login("ada@example.com", "correct horse 1").await;
    app.with_token(Method::GET, "/api/auth/me", &session.token)
        .await
        .expect(200);
    let deleted = app.delete(&format!("/api/users/{id}")).await;
    deleted.expect(204);
    assert!(deleted.header("content-type").is_none());
    assert_eq!(deleted.body, Value::Null);
    app.with_token(Method::GET, "/api/auth/me", &session.token)
        .await
        .expect_error(401, "UNAUTHORIZED", None);
    app.login_reply("ada@example.com", "correct horse 1")
        .await
        .expect_error(401, "INVALID_CREDENTIALS", None);
    app.get(&format!("/api/users/{id}"))
        .await
        .expect_error(404, "NOT_FOUND", None);
    app.delete(&format!("/api/users/{id}"))
        .await
        .expect_error(404, "NOT_FOUND", None);
    app.patch_attributes("users", "users", &id, json!({"name": "Ghost"}))
        .await
        .expect_error(404, "NOT_FOUND", None);
    assert_eq!(app.get("/api/users").await.body["meta"]["total"], json!(1));
}

#[tokio::test]
async fn unknown_ids_are_not_found() {
    let app = spawn_app().await;
    let plan = default_plan(&app).await;
    for id in [
        "usr_01JD0R0000000000000000000Z",
        "usr_nope",
        plan.as_str(),
        "x",
    ] {
        app.get(&format!("/api/users/{id}"))
            .await
            .expect_error(404, "NOT_FOUND", None);
        app.patch_attributes("users", "users", id, json!({"name": "x"}))
            .await
            .expect_error(404, "NOT_FOUND", None);
        app.delete(&format!("/api/users/{id}"))
            .await
            .expect_error(404, "NOT_FOUND", None);
        app.get(&format!("/api/users/{id}/relationships/plan"))
            .await
            .expect_error(404, "NOT_FOUND", None);
        app.get(&format!("/api/users/{id}/api_keys"))
            .await
            .expect_error(404, "NOT_FOUND", None);
    }
}

#[tokio::test]
async fn every_rule_reports_its_pointer() {
    let app = spawn_app().await;
    let long_email = format!("{}@example.com", "a".repeat(243));
    assert_eq!(long_email.chars().count(), 255);
    for (attrs, code, pointer) in [
        (
            json!({"name": "No Email"}),
            "VALIDATION_ERROR",
            "/data/attributes/email",
        ),
        (
            json!({"email": "ada"}),
            "VALIDATION_ERROR",
            "/data/attributes/email",
        ),
        (
            json!({"email": "ada@"}),
            "VALIDATION_ERROR",
            "/data/attributes/email",
        ),
        (
            json!({"email": "@example.com"}),
            "VALIDATION_ERROR",
            "/data/attributes/email",
        ),
        (
            json!({"email": ""}),
            "VALIDATION_ERROR",
            "/data/attributes/email",
        ),
        (
            json!({"email": 42}),
            "VALIDATION_ERROR",
            "/data/attributes/email",
        ),
        (
            json!({"email": null}),
            "VALIDATION_ERROR",
            "/data/attributes/email",
        ),
        (
            json!({"email": long_email}),
            "VALIDATION_ERROR",
            "/data/attributes/email",
        ),
        (
            json!({"email": "a@example.com", "name": "x".repeat(101)}),
            "VALIDATION_ERROR",
            "/data/attributes/name",
        ),
        (
            json!({"email": "a@example.com", "name": 7}),
            "VALIDATION_ERROR",
            "/data/attributes/name",
        ),
        (
            json!({"email": "a@example.com", "name": null}),
            "VALIDATION_ERROR",
            "/data/attributes/name",
        ),
        (
            json!({"email": "a@example.com", "status": "banned"}),
            "VALIDATION_ERROR",
            "/data/attributes/status",
        ),
        (
            json!({"email": "a@example.com", "status": "Active"}),
            "VALIDATION_ERROR",
            "/data/attributes/status",
        ),
        (
            json!({"email": "a@example.com", "role": "root"}),
            "VALIDATION_ERROR",
            "/data/attributes/role",
        ),
        (
            json!({"email": "a@example.com", "password": "x".repeat(11)}),
            "VALIDATION_ERROR",
            "/data/attributes/password",
        ),
        (
            json!({"email": "a@example.com", "password": "x".repeat(129)}),
            "VALIDATION_ERROR",
            "/data/attributes/password",
        ),
        (
            json!({"email": "a@example.com", "password": 123_456_789_012_i64}),
            "VALIDATION_ERROR",
            "/data/attributes/password",
        ),
        (
            json!({"email": "long.enough@example.com", "password": "long.enough@example.com"}),
            "VALIDATION_ERROR",
            "/data/attributes/password",
        ),
        (
            json!({"email": "Long.Enough@Example.com", "password": "LONG.ENOUGH@example.COM"}),
            "VALIDATION_ERROR",
            "/data/attributes/password",
        ),
        (
            json!({"email": "a@example.com", "nickname": "x"}),
            "UNKNOWN_ATTRIBUTE",
            "/data/attributes/nickname",
        ),
        (
            json!({"email": "a@example.com", "id": "usr_x"}),
            "UNKNOWN_ATTRIBUTE",
            "/data/attributes/id",
        ),
        (
            json!({"email": "a@example.com", "plan_id": "pln_x"}),
            "UNKNOWN_ATTRIBUTE",
            "/data/attributes/plan_id",
        ),
        (
            json!({"email": "a@example.com", "password_hash": "x"}),
            "UNKNOWN_ATTRIBUTE",
            "/data/attributes/password_hash",
        ),
        (
            json!({"email": "a@example.com", "last_login_at": "2025-01-01T00:00:00Z"}),
            "READ_ONLY_ATTRIBUTE",
            "/data/attributes/last_login_at",
        ),
        (
            json!({"email": "a@example.com", "created_at": "2025-01-01T00:00:00Z"}),
            "READ_ONLY_ATTRIBUTE",
            "/data/attributes/created_at",
        ),
    ] {
        let reply = post_user(&app, attrs.clone(), Value::Null).await;
        reply.expect(422);
        assert!(
            reply
                .problems()
                .iter()
                .any(|(c, p)| c == code && p == pointer),
            "{attrs} should be {code} at {pointer}: {}",
            reply.body
        );
    }
    let many = post_user(
        &app,
        json!({"bogus": 1, "email": "nope", "last_login_at": null, "password": "short"}),
        Value::Null,
    )
    .await;
    assert_eq!(
        many.problems(),
        [
            ("UNKNOWN_ATTRIBUTE", "/data/attributes/bogus"),
            ("VALIDATION_ERROR", "/data/attributes/email"),
            ("READ_ONLY_ATTRIBUTE", "/data/attributes/last_login_at"),
            ("VALIDATION_ERROR", "/data/attributes/password"),
        ]
        .iter()
        .map(|(c, p)| ((*c).to_owned(), (*p).to_owned()))
        .collect::<Vec<_>>(),
        "all problems, in document order: {}",
        many.body
    );
    post_user(
        &app,
        json!({"email": "a@example.com"}),
        json!({"owner": {"data": null}}),
    )
    .await
    .expect_error(
        422,
        "UNKNOWN_RELATIONSHIP",
        Some("/data/relationships/owner"),
    );
    post_user(
        &app,
        json!({"email": "a@example.com"}),
        json!({"api_keys": {"data": []}}),
    )
    .await
    .expect_error(403, "READ_ONLY_RELATIONSHIP", None);
    post_user(
        &app,
        json!({"email": "a@example.com"}),
        json!({"groups": {"data": []}}),
    )
    .await
    .expect_error(403, "READ_ONLY_RELATIONSHIP", None);
    // Nothing was written by the rejected requests.
    assert_eq!(app.get("/api/users").await.body["meta"]["total"], json!(1));

    // Boundaries that are allowed.
    let edge = app
        .create(
            "users",
            "users",
            json!({"email": "edge@example.com", "name": "é".repeat(100), "password": "p".repeat(12)}),
            Value::Null,
        )
        .await;
    assert_eq!(edge.attr("name"), &json!("é".repeat(100)));
    app.create(
        "users",
        "users",
        json!({"email": "edge2@example.com", "password": "p".repeat(128), "status": "pending", "role": "admin"}),
        Value::Null,
    )
    .await;
    let max_email = format!(
        "{}@{}.{}.{}.com",
        "a".repeat(64),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(57)
    );
    assert_eq!(max_email.len(), 254);
    app.create("users", "users", json!({"email": max_email}), Value::Null)
        .await;
}

#[tokio::test]
async fn email_is_unique_case_insensitively_and_freed_by_delete() {
    let app = spawn_app().await;
    let ada = app.create_user("ada@example.com").await;
    for email in ["ada@example.com", "ADA@Example.Com", " ada@example.com "] {
        post_user(&app, json!({ "email": email }), Value::Null)
            .await
            .expect_error(409, "CONFLICT", Some("/data/attributes/email"));
    }
    post_user(
        &app,
        json!({ "email": ADMIN_EMAIL.to_uppercase() }),
        Value::Null,
    )
    .await
    .expect_error(409, "CONFLICT", Some("/data/attributes/email"));
    let bob = app.create_user("bob@example.com").await;
    app.patch_attributes("users", "users", &bob, json!({"email": "Ada@EXAMPLE.com"}))
        .await
        .expect_error(409, "CONFLICT", Some("/data/attributes/email"));
    assert_eq!(
        app.get(&format!("/api/users/{bob}")).await.attr("email"),
        &json!("bob@example.com"),
        "rejected requests change nothing"
    );
    // Changing the case of one's own email is no conflict; it is stored lower-case.
    let same = app
        .patch_attributes("users", "users", &ada, json!({"email": "ADA@example.com"}))
        .await;
    same.expect(200);
    assert_eq!(same.attr("email"), &json!("ada@example.com"));
    let renamed = app
        .patch_attributes(
            "users",
            "users",
            &bob,
            json!({"email": "Robert@Example.com"}),
        )
        .await;
    renamed.expect(200);
    assert_eq!(renamed.attr("email"), &json!("robert@example.com"));
    let found = app.get("/api/users?filter[email]=robert@example.com").await;
    assert_eq!(ids(&found), vec![bob.clone()]);

    app.delete(&format!("/api/users/{ada}")).await.expect(204);
    let again = app
        .create(
            "users",
            "users",
            json!({"email": "Ada@Example.com"}),
            Value::Null,
        )
        .await;
    assert_ne!(again.id(), ada, "a new record");
    assert_eq!(again.attr("email"), &json!("ada@example.com"));
}

#[tokio::test]
async fn password_is_write_only_and_follows_the_policy() {
    let app = spawn_app().await;
    let created = app
        .create(
            "users",
            "users",
            json!({"email": "ada@example.com", "password": "correct horse 1"}),
            Value::Null,
        )
        .await;
    let id = created.id();
    let hidden = |reply: &Reply| {
        let text = reply.body.to_string();
        assert!(!text.contains("password"), "{text}");
        assert!(!text.contains("correct horse"), "{text}");
    };
    hidden(&created);
    hidden(&app.get(&format!("/api/users/{id}")).await);
    hidden(&app.get("/api/users").await);
    let changed = app
        .patch_attributes(
            "users",
            "users",
            &id,
            json!({"password": "another long secret"}),
        )
        .await;
    changed.expect(200);
    hidden(&changed);
    app.get(&format!("/api/users/{id}?fields[users]=password"))
        .await
        .expect_error(400, "INVALID_FIELDS", None);
    // The stored password is the new one (checked through login).
    app.login_reply("ada@example.com", "another long secret")
        .await
        .expect(200);
    app.login_reply("ada@example.com", "correct horse 1")
        .await
        .expect_error(401, "INVALID_CREDENTIALS", None);
    // Without a password a user cannot log in.
    app.create_user("nopass@example.com").await;
    app.login_reply("nopass@example.com", "whatever it may be")
        .await
        .expect_error(401, "INVALID_CREDENTIALS", None);
    for (password, why) in [
        (json!("x".repeat(11)), "too short"),
        (json!("x".repeat(129)), "too long"),
        (json!("ADA@EXAMPLE.COM"), "equals the email"),
        (json!(null), "not a string"),
        (json!(true), "not a string"),
    ] {
        let reply = app
            .patch_attributes("users", "users", &id, json!({ "password": password }))
            .await;
        assert_eq!(reply.status.as_u16(), 422, "{why}: {}", reply.body);
        assert_eq!(
            reply.problems(),
            vec![(
                "VALIDATION_ERROR".to_owned(),
                "/data/attributes/password".to_owned()
            )],
            "{why}"
        );
    }
    // The password must differ from the email the user ends up with.
    app.patch_attributes(
        "users",
        "users",
        &id,
        json!({"email": "new.address@example.com", "password": "New.Address@Example.com"}),
    )
    .await
    .expect_error(422, "VALIDATION_ERROR", Some("/data/attributes/password"));
    assert_eq!(
        app.get(&format!("/api/users/{id}")).await.attr("email"),
        &json!("ada@example.com")
    );
}

#[tokio::test]
async fn patch_semantics_read_only_and_no_op() {
    let app = spawn_app().await;
    let created = app
        .create(
            "users",
            "users",
            json!({"email": "ada@example.com", "name": "Ada"}),
            Value::Null,
        )
        .await;
    let id = created.id();
    // Whole record sent back (as admin UIs do): read-only values equal to the stored ones pass.
    let whole = app
        .patch(
            &format!("/api/users/{id}"),
            json!({"data": {"type": "users", "id": id, "attributes": created.body["data"]["attributes"]}}),
        )
        .await;
    whole.expect(200);
    assert_eq!(
        whole.attr("updated_at"),
        created.attr("updated_at"),
        "a PATCH that changes nothing keeps updated_at"
    );
    for (attrs, code, pointer) in [
        (
            json!({"last_login_at": "2025-01-01T00:00:00Z"}),
            "READ_ONLY_ATTRIBUTE",
            "/data/attributes/last_login_at",
        ),
        (
            json!({"created_at": "2020-01-01T00:00:00Z"}),
            "READ_ONLY_ATTRIBUTE",
            "/data/attributes/created_at",
        ),
        (
            json!({"updated_at": "2020-01-01T00:00:00Z"}),
            "READ_ONLY_ATTRIBUTE",
            "/data/attributes/updated_at",
        ),
        (
            json!({"nickname": "x"}),
            "UNKNOWN_ATTRIBUTE",
            "/data/attributes/nickname",
        ),
        (
            json!({"email": "nope"}),
            "VALIDATION_ERROR",
            "/data/attributes/email",
        ),
        (
            json!({"email": null}),
            "VALIDATION_ERROR",
            "/data/attributes/email",
        ),
        (
            json!({"name": null}),
            "VALIDATION_ERROR",
            "/data/attributes/name",
        ),
        (
            json!({"status": "gone"}),
            "VALIDATION_ERROR",
            "/data/attributes/status",
        ),
        (
            json!({"role": null}),
            "VALIDATION_ERROR",
            "/data/attributes/role",
        ),
    ] {
        app.patch_attributes("users", "users", &id, attrs)
            .await
            .expect_error(422, code, Some(pointer));
    }
    let after = app.get(&format!("/api/users/{id}")).await;
    assert_eq!(
        after.body["data"]["attributes"], created.body["data"]["attributes"],
        "rejected PATCHes changed nothing"
    );
    let suspended = app
        .patch_attributes(
            "users",
            "users",
            &id,
            json!({"status": "suspended", "role": "admin"}),
        )
        .await;
    suspended.expect(200);
    assert_eq!(suspended.attr("status"), &json!("suspended"));
    assert_eq!(suspended.attr("role"), &json!("admin"));
    assert_eq!(suspended.attr("name"), &json!("Ada"));
    let cleared = app
        .patch_attributes("users", "users", &id, json!({"name": ""}))
        .await;
    cleared.expect(200);
    assert_eq!(cleared.attr("name"), &json!(""));
    app.patch(
        &format!("/api/users/{id}"),
        json!({"data": {"type": "users", "id": ADMIN_EMAIL, "attributes": {}}}),
    )
    .await
    .expect_error(409, "ID_MISMATCH", Some("/data/id"));
    app.patch(
        &format!("/api/users/{id}"),
        json!({"data": {"type": "plans", "id": id, "attributes": {}}}),
    )
    .await
    .expect_error(409, "TYPE_MISMATCH", None);
}

#[tokio::test]
async fn plan_defaults_and_assignment_rules() {
    let app = spawn_app().await;
    let free = default_plan(&app).await;
    let pro = app.create_plan("Pro").await;
    let explicit = app
        .create(
            "users",
            "users",
            json!({"email": "pro@example.com"}),
            json!({"plan": link("plans", &pro)}),
        )
        .await;
    assert_eq!(
        explicit.body["data"]["relationships"]["plan"]["data"],
        json!({"type": "plans", "id": pro})
    );
    // A new default plan is used from then on.
    app.patch_attributes("plans", "plans", &pro, json!({"is_default": true}))
        .await
        .expect(200);
    let defaulted = app.create_user("later@example.com").await;
    assert_eq!(
        app.get(&format!("/api/users/{defaulted}/relationships/plan"))
            .await
            .body["data"],
        json!({"type": "plans", "id": pro})
    );
    assert_eq!(
        ids(&app.get(&format!("/api/users?filter[plan]={free}")).await),
        vec![app.admin_id.clone()]
    );

    let legacy = app.create_plan("Legacy").await;
    let subscriber = app
        .create(
            "users",
            "users",
            json!({"email": "legacy@example.com"}),
            json!({"plan": link("plans", &legacy)}),
        )
        .await
        .id();
    app.patch_attributes("plans", "plans", &legacy, json!({"enabled": false}))
        .await
        .expect(200);
    // A disabled plan cannot be newly assigned ...
    post_user(
        &app,
        json!({"email": "new@example.com"}),
        json!({"plan": link("plans", &legacy)}),
    )
    .await
    .expect_error(422, "VALIDATION_ERROR", Some("/data/relationships/plan"));
    app.patch(
        &format!("/api/users/{defaulted}"),
        json!({"data": {"type": "users", "id": defaulted, "relationships": {"plan": link("plans", &legacy)}}}),
    )
    .await
    .expect_error(422, "VALIDATION_ERROR", Some("/data/relationships/plan"));
    // ... but current subscribers keep it and can still be edited.
    let kept = app
        .patch(
            &format!("/api/users/{subscriber}"),
            json!({"data": {"type": "users", "id": subscriber, "attributes": {"name": "Old"},
                "relationships": {"plan": link("plans", &legacy)}}}),
        )
        .await;
    kept.expect(200);
    assert_eq!(kept.attr("name"), &json!("Old"));
    assert_eq!(
        kept.body["data"]["relationships"]["plan"]["data"]["id"],
        json!(legacy)
    );
    // Never null.
    post_user(
        &app,
        json!({"email": "null@example.com"}),
        json!({"plan": {"data": null}}),
    )
    .await
    .expect_error(422, "VALIDATION_ERROR", Some("/data/relationships/plan"));
    app.patch(
        &format!("/api/users/{subscriber}"),
        json!({"data": {"type": "users", "id": subscriber, "relationships": {"plan": {"data": null}}}}),
    )
    .await
    .expect_error(422, "VALIDATION_ERROR", Some("/data/relationships/plan"));
    // Linkage checks.
    let missing = "pln_01JD0Q3W6Y8ZK2X4V5B7N9M1C3";
    post_user(
        &app,
        json!({"email": "x@example.com"}),
        json!({"plan": link("plans", missing)}),
    )
    .await
    .expect_error(
        404,
        "RELATED_NOT_FOUND",
        Some("/data/relationships/plan/data"),
    );
    post_user(
        &app,
        json!({"email": "x@example.com"}),
        json!({"plan": link("users", &subscriber)}),
    )
    .await
    .expect_error(409, "TYPE_MISMATCH", None);
    let gone = app.create_plan("Gone").await;
    app.delete(&format!("/api/plans/{gone}")).await.expect(204);
    app.patch(
        &format!("/api/users/{subscriber}"),
        json!({"data": {"type": "users", "id": subscriber, "relationships": {"plan": link("plans", &gone)}}}),
    )
    .await
    .expect_error(
        404,
        "RELATED_NOT_FOUND",
        Some("/data/relationships/plan/data"),
    );
    // No default plan at all: the plan must be given.
    app.patch_attributes("plans", "plans", &pro, json!({"is_default": false}))
        .await
        .expect(200);
    post_user(&app, json!({"email": "orphan@example.com"}), Value::Null)
        .await
        .expect_error(422, "VALIDATION_ERROR", Some("/data/relationships/plan"));
    let with_plan = app
        .create(
            "users",
            "users",
            json!({"email": "orphan@example.com"}),
            json!({"plan": link("plans", &free)}),
        )
        .await;
    assert_eq!(
        with_plan.body["data"]["relationships"]["plan"]["data"]["id"],
        json!(free)
    );
}

#[tokio::test]
async fn relationship_endpoints() {
    let app = spawn_app().await;
    let free = default_plan(&app).await;
    let pro = app.create_plan("Pro").await;
    let user = app.create_user("ada@example.com").await;
    let other = app.create_user("bob@example.com").await;

    let linkage = app
        .get(&format!("/api/users/{user}/relationships/plan"))
        .await;
    linkage.expect(200);
    assert_eq!(linkage.body["data"], json!({"type": "plans", "id": free}));
    assert_eq!(
        linkage.body["links"]["self"],
        json!(format!("/api/users/{user}/relationships/plan"))
    );
    assert_eq!(
        linkage.body["links"]["related"],
        json!(format!("/api/users/{user}/plan"))
    );

    let related = app.get(&format!("/api/users/{user}/plan")).await;
    related.expect(200);
    assert_eq!(related.body["data"]["type"], json!("plans"));
    assert_eq!(related.body["data"]["id"], json!(free));
    assert_eq!(related.attr("name"), &json!("Free"));

    let included = app.get(&format!("/api/users/{user}?include=plan")).await;
    included.expect(200);
    assert_eq!(included.body["included"][0]["id"], json!(free));

    let replaced = app
        .patch(
            &format!("/api/users/{user}/relationships/plan"),
            link("plans", &pro),
        )
        .await;
    replaced.expect(200);
    assert_eq!(replaced.body["data"], json!({"type": "plans", "id": pro}));
    assert_eq!(
        app.get(&format!("/api/users/{user}/plan")).await.body["data"]["id"],
        json!(pro)
    );
    assert_eq!(
        app.get(&format!("/api/users/{user}/relationships/plan"))
            .await
            .body["data"]["id"],
        json!(pro)
    );

    let rel_path = format!("/api/users/{user}/relationships/plan");
    app.patch(&rel_path, link("users", &other))
        .await
        .expect_error(409, "TYPE_MISMATCH", None);
    app.patch(&rel_path, link("plans", "pln_01JD0Q3W6Y8ZK2X4V5B7N9M1C3"))
        .await
        .expect_error(404, "RELATED_NOT_FOUND", Some("/data"));
    app.patch(&rel_path, json!({"data": null}))
        .await
        .expect_error(422, "VALIDATION_ERROR", Some("/data"));
    let disabled = app.create_plan("Disabled").await;
    app.patch_attributes("plans", "plans", &disabled, json!({"enabled": false}))
        .await
        .expect(200);
    app.patch(&rel_path, link("plans", &disabled))
        .await
        .expect_error(422, "VALIDATION_ERROR", Some("/data"));
    assert_eq!(
        app.get(&rel_path).await.body["data"]["id"],
        json!(pro),
        "rejected replacements change nothing"
    );
    app.patch(
        &format!("/api/users/{user}/relationships/api_keys"),
        json!({"data": []}),
    )
    .await
    .expect_error(403, "READ_ONLY_RELATIONSHIP", None);
    app.patch(
        &format!("/api/users/{user}/relationships/groups"),
        json!({"data": []}),
    )
    .await
    .expect_error(403, "READ_ONLY_RELATIONSHIP", None);
    app.get(&format!("/api/users/{user}/relationships/nope"))
        .await
        .expect_error(404, "NOT_FOUND", None);
    app.get(&format!("/api/users/{user}/nope"))
        .await
        .expect_error(404, "NOT_FOUND", None);

    // api_keys: the user's own keys only.
    let mine = [
        create_key(&app, &user, "live").await.id(),
        create_key(&app, &user, "live").await.id(),
    ];
    create_key(&app, &other, "live").await;
    let keys = app.get(&format!("/api/users/{user}/api_keys")).await;
    keys.expect(200);
    assert_eq!(keys.body["meta"]["total"], json!(2));
    let mut got = ids(&keys);
    got.sort();
    let mut want = mine.to_vec();
    want.sort();
    assert_eq!(got, want);
    for item in keys.body["data"].as_array().unwrap() {
        assert_eq!(item["type"], json!("api_keys"));
        assert_eq!(
            item["relationships"]["user"]["data"],
            json!({"type": "users", "id": user})
        );
        assert!(
            item.get("meta").is_none(),
            "the secret is never shown again"
        );
    }
    let key_linkage = app
        .get(&format!("/api/users/{user}/relationships/api_keys"))
        .await;
    key_linkage.expect(200);
    let mut linked: Vec<String> = key_linkage.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            assert_eq!(i["type"], json!("api_keys"));
            i["id"].as_str().unwrap().to_owned()
        })
        .collect();
    linked.sort();
    assert_eq!(linked, want);
    let with_keys = app
        .get(&format!("/api/users/{user}?include=api_keys"))
        .await;
    with_keys.expect(200);
    assert_eq!(
        with_keys.body["data"]["relationships"]["api_keys"]["data"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    let none = app.get(&format!("/api/users/{other}/groups")).await;
    none.expect(200);
    assert_eq!(none.body["data"], json!([]));
}

#[tokio::test]
async fn admin_cannot_modify_own_role_or_status_or_delete_self() {
    let app = spawn_app().await;
    let me = app.admin_id.clone();
    for attrs in [
        json!({"role": "user"}),
        json!({"status": "suspended"}),
        json!({"status": "pending"}),
        json!({"name": "Boss", "status": "cancelled"}),
    ] {
        app.patch_attributes("users", "users", &me, attrs)
            .await
            .expect_error(409, "CANNOT_MODIFY_SELF", None);
    }
    app.delete(&format!("/api/users/{me}"))
        .await
        .expect_error(409, "CANNOT_MODIFY_SELF", None);
    let still = app.get(&format!("/api/users/{me}")).await;
    still.expect(200);
    assert_eq!(still.attr("role"), &json!("admin"));
    assert_eq!(still.attr("status"), &json!("active"));
    assert_eq!(still.attr("name"), &json!("Admin"));
    // Own role/status with the stored values, and other own attributes, are fine.
    let renamed = app
        .patch_attributes(
            "users",
            "users",
            &me,
            json!({"name": "Boss", "role": "admin", "status": "active"}),
        )
        .await;
    renamed.expect(200);
    assert_eq!(renamed.attr("name"), &json!("Boss"));
    // Even with a second admin around, the own record stays protected.
    let other = create_with_role(&app, "second@example.com", "admin").await;
    app.patch_attributes("users", "users", &me, json!({"role": "user"}))
        .await
        .expect_error(409, "CANNOT_MODIFY_SELF", None);
    // While another admin may be demoted, suspended or deleted by this one.
    let demoted = app
        .patch_attributes("users", "users", &other, json!({"role": "user"}))
        .await;
    demoted.expect(200);
    assert_eq!(demoted.attr("role"), &json!("user"));
    app.patch_attributes(
        "users",
        "users",
        &other,
        json!({"role": "admin", "status": "suspended"}),
    )
    .await
    .expect(200);
    app.delete(&format!("/api/users/{other}")).await.expect(204);
}

#[tokio::test]
async fn the_last_active_admin_cannot_be_demoted_suspended_or_deleted() {
    use tollgate_domain::{
        Actor,
        resources::{by_type, users::Users},
        service::WriteInput,
    };
    let app = spawn_app().await;
    // Over HTTP the caller is itself an active admin, so the only way to reach the last one is
    // through a caller that is not a user: the system actor (CLI/bootstrap), in process.
    let config = tollgate_tests::test_config(&app.database_url);
    let store = tollgate::startup::open_store(&config).await.expect("store");
    let (service, _) = tollgate::startup::services(store, &config)
        .await
        .expect("services");
    let system = Actor::system();
    for (name, value) in [("role", "user"), ("status", "suspended")] {
        let input = WriteInput {
            attributes: vec![(name.into(), json!(value))],
            relationships: vec![],
        };
        let err = service
            .update(&system, &Users, &app.admin_id, input, &by_type)
            .await
            .expect_err("the last admin stays");
        let api: tollgate_adapters::http::error::ApiError = err.into();
        assert_eq!(api.code(), "LAST_ADMIN");
        assert_eq!(api.status.as_u16(), 409);
    }
    let err = service
        .delete(&system, &Users, &app.admin_id)
        .await
        .expect_err("the last admin stays");
    let api: tollgate_adapters::http::error::ApiError = err.into();
    assert_eq!((api.status.as_u16(), api.code()), (409, "LAST_ADMIN"));
    // The admin API still works: nothing changed.
    let me = app.get(&format!("/api/users/{}", app.admin_id)).await;
    me.expect(200);
    assert_eq!(me.attr("role"), &json!("admin"));
    assert_eq!(me.attr("status"), &json!("active"));

    // With a second active admin, the first one may go (over HTTP: the second admin acts).
    let second = create_with_role(&app, "second@example.com", "admin").await;
    let suspended_admin = create_with_role(&app, "third@example.com", "admin").await;
    app.patch_attributes(
        "users",
        "users",
        &suspended_admin,
        json!({"status": "suspended"}),
    )
    .await
    .expect(200);
    let key = create_key(&app, &second, "admin").await.body["data"]["meta"]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let as_second = app
        .send(
            app.client
                .request(
                    Method::DELETE,
                    app.url(&format!("/api/users/{}", app.admin_id)),
                )
                .header("Authorization", format!("Bearer {key}")),
        )
        .await;
    as_second.expect(204);
    // Now `second` is the only active admin (a suspended admin does not count).
    let input = WriteInput {
        attributes: vec![("role".into(), json!("user"))],
        relationships: vec![],
    };
    let err = service
        .update(&system, &Users, &second, input, &by_type)
        .await
        .expect_err("the last active admin stays");
    let api: tollgate_adapters::http::error::ApiError = err.into();
    assert_eq!(api.code(), "LAST_ADMIN");
}

#[tokio::test]
async fn delete_revokes_keys_ends_memberships_and_is_blocked_by_owned_groups() {
    let app = spawn_app().await;
    let user = app.create_user("owner@example.com").await;
    let key = create_key(&app, &user, "live").await.id();
    let group = app
        .create(
            "groups",
            "groups",
            json!({"name": "Team"}),
            json!({"owner": link("users", &user)}),
        )
        .await
        .id();
    app.delete(&format!("/api/users/{user}"))
        .await
        .expect_error(409, "RESOURCE_IN_USE", None);
    let untouched = app.get(&format!("/api/api-keys/{key}")).await;
    untouched.expect(200);
    assert_eq!(
        untouched.attr("status"),
        &json!("active"),
        "a refused delete changes nothing"
    );
    app.get(&format!("/api/users/{user}")).await.expect(200);

    // Membership (not ownership) does not block, and is removed.
    let member = app.create_user("member@example.com").await;
    let member_key = create_key(&app, &member, "live").await.id();
    let team = app
        .create(
            "groups",
            "groups",
            json!({"name": "Crew"}),
            json!({"owner": link("users", &app.admin_id), "members": {"data": [{"type": "users", "id": member}]}}),
        )
        .await
        .id();
    app.delete(&format!("/api/users/{member}"))
        .await
        .expect(204);
    app.get(&format!("/api/users/{member}"))
        .await
        .expect_error(404, "NOT_FOUND", None);
    let revoked = app.get(&format!("/api/api-keys/{member_key}")).await;
    revoked.expect(200);
    assert_eq!(revoked.attr("status"), &json!("revoked"));
    assert!(revoked.attr("revoked_at").is_string(), "{}", revoked.body);
    let members = app
        .get(&format!("/api/groups/{team}/relationships/members"))
        .await;
    members.expect(200);
    let member_ids: Vec<&str> = members.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(member_ids, vec![app.admin_id.as_str()]);

    // Once the group is gone, the owner can be deleted, and its keys are revoked.
    app.delete(&format!("/api/groups/{group}"))
        .await
        .expect(204);
    app.delete(&format!("/api/users/{user}")).await.expect(204);
    let after = app.get(&format!("/api/api-keys/{key}")).await;
    after.expect(200);
    assert_eq!(after.attr("status"), &json!("revoked"));

    // A deleted admin's admin key stops authenticating.
    let admin = create_with_role(&app, "other.admin@example.com", "admin").await;
    let secret = create_key(&app, &admin, "admin").await.body["data"]["meta"]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let as_other = |secret: String| {
        app.send(
            app.client
                .get(app.url("/api/users"))
                .header("Authorization", format!("Bearer {secret}")),
        )
    };
    as_other(secret.clone()).await.expect(200);
    app.delete(&format!("/api/users/{admin}")).await.expect(204);
    as_other(secret)
        .await
        .expect_error(401, "UNAUTHORIZED", None);
}

#[tokio::test]
async fn list_filters_and_sorting() {
    let app = spawn_app().await;
    let pro = app.create_plan("Pro").await;
    let carol = app
        .create(
            "users",
            "users",
            json!({"email": "carol@example.com", "name": "Carol", "status": "suspended"}),
            json!({"plan": link("plans", &pro)}),
        )
        .await
        .id();
    let bob = app
        .create(
            "users",
            "users",
            json!({"email": "bob@example.com", "name": "Bob", "role": "admin"}),
            Value::Null,
        )
        .await
        .id();
    let dave = app
        .create(
            "users",
            "users",
            json!({"email": "dave@sample.org", "name": "Zed", "status": "pending"}),
            Value::Null,
        )
        .await
        .id();
    let admin = app.admin_id.clone();

    let by_email = app.get("/api/users?sort=email").await;
    by_email.expect(200);
    assert_eq!(
        ids(&by_email),
        vec![admin.clone(), bob.clone(), carol.clone(), dave.clone()]
    );
    let by_name_desc = app.get("/api/users?sort=-name").await;
    assert_eq!(
        ids(&by_name_desc),
        vec![dave.clone(), carol.clone(), bob.clone(), admin.clone()]
    );
    let by_status = app.get("/api/users?sort=status,email").await;
    assert_eq!(
        ids(&by_status),
        vec![admin.clone(), bob.clone(), dave.clone(), carol.clone()],
        "active < pending < suspended, then email"
    );
    let admins = app.get("/api/users?filter[role]=admin&sort=email").await;
    assert_eq!(ids(&admins), vec![admin.clone(), bob.clone()]);
    let statuses = app
        .get("/api/users?filter[status]=suspended,pending&sort=email")
        .await;
    assert_eq!(ids(&statuses), vec![carol.clone(), dave.clone()]);
    let on_pro = app.get(&format!("/api/users?filter[plan]={pro}")).await;
    assert_eq!(ids(&on_pro), vec![carol.clone()]);
    let by_mail = app.get("/api/users?filter[email]=bob@example.com").await;
    assert_eq!(ids(&by_mail), vec![bob.clone()]);
    let q_email = app.get("/api/users?filter[q]=SAMPLE").await;
    assert_eq!(ids(&q_email), vec![dave.clone()], "q searches email too");
    let q_name = app.get("/api/users?filter[q]=aro").await;
    assert_eq!(ids(&q_name), vec![carol.clone()]);
    let combined = app
        .get("/api/users?filter[role]=user&filter[status]=active")
        .await;
    assert_eq!(
        combined.body["meta"]["total"],
        json!(0),
        "filters AND together"
    );
    let paged = app
        .get("/api/users?sort=email&page[size]=2&page[number]=2")
        .await;
    assert_eq!(ids(&paged), vec![carol.clone(), dave.clone()]);
    assert_eq!(paged.body["meta"]["total"], json!(4));

    for (query, code, parameter) in [
        ("filter[status]=gone", "INVALID_FILTER", "filter[status]"),
        ("filter[role]=root", "INVALID_FILTER", "filter[role]"),
        ("filter[password]=x", "INVALID_FILTER", "filter[password]"),
        ("filter[name]=Bob", "INVALID_FILTER", "filter[name]"),
        ("sort=role", "INVALID_SORT", "sort"),
        ("sort=password", "INVALID_SORT", "sort"),
        ("sort=plan", "INVALID_SORT", "sort"),
        ("include=owner", "INVALID_INCLUDE", "include"),
    ] {
        let reply = app.get(&format!("/api/users?{query}")).await;
        reply.expect_error(400, code, None);
        assert_eq!(reply.parameter(), parameter, "{query}");
    }
}

#[tokio::test]
async fn wrong_methods_are_not_allowed() {
    let app = spawn_app().await;
    let user = app.create_user("ada@example.com").await;
    for (method, path, allow) in [
        (
            Method::PUT,
            format!("/api/users/{user}"),
            "GET, PATCH, DELETE",
        ),
        (Method::DELETE, "/api/users".to_owned(), "GET, POST"),
        (Method::POST, format!("/api/users/{user}/plan"), "GET"),
    ] {
        let reply = app.send(app.request(method, &path)).await;
        reply.expect_error(405, "METHOD_NOT_ALLOWED", None);
        assert_eq!(reply.header("allow"), Some(allow), "{path}");
    }
}
