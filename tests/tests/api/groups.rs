//! `/api/groups`: CRUD, owner and plan rules, slug, members and their endpoints, cascades.

use reqwest::Method;
use serde_json::{Value, json};
use tollgate_tests::{Reply, TestApp, link, spawn_app};

/// `POST /api/groups` with the given attributes and relationships (no status assertion).
async fn post_group(app: &TestApp, attributes: Value, relationships: Value) -> Reply {
    let mut data = json!({"type": "groups", "attributes": attributes});
    if !relationships.is_null() {
        data["relationships"] = relationships;
    }
    app.post("/api/groups", json!({ "data": data })).await
}

/// Creates a group owned by `owner` and returns its id.
async fn create_group(app: &TestApp, name: &str, owner: &str) -> String {
    app.create(
        "groups",
        "groups",
        json!({ "name": name }),
        json!({"owner": link("users", owner)}),
    )
    .await
    .id()
}

/// `(id, role)` of every identifier in a linkage array, sorted by id.
fn roles(data: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = data
        .as_array()
        .unwrap_or_else(|| panic!("linkage array expected: {data}"))
        .iter()
        .map(|i| {
            assert_eq!(i["type"], json!("users"), "{i}");
            (
                i["id"].as_str().unwrap_or_default().to_owned(),
                i["meta"]["role"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

fn expected(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = pairs
        .iter()
        .map(|(id, role)| ((*id).to_owned(), (*role).to_owned()))
        .collect();
    out.sort();
    out
}

async fn members_of(app: &TestApp, group: &str) -> Vec<(String, String)> {
    let reply = app
        .get(&format!("/api/groups/{group}/relationships/members"))
        .await;
    reply.expect(200);
    roles(&reply.body["data"])
}

fn ids(reply: &Reply) -> Vec<String> {
    let mut out: Vec<String> = reply.body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("collection expected: {}", reply.body))
        .iter()
        .map(|r| r["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    out.sort();
    out
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test]
async fn crud_happy_path() {
    let app = spawn_app().await;
    let owner = app.create_user("owner@example.com").await;
    let plan = app.create_plan("Team").await;
    let created = app
        .create(
            "groups",
            "groups",
            json!({"name": "  Acme Corp!  ", "description": "Our team", "billing_email": "Billing@Example.com"}),
            json!({"owner": link("users", &owner), "plan": link("plans", &plan)}),
        )
        .await;
    let id = created.id();
    assert!(id.starts_with("grp_") && id.len() == 30, "{id}");
    assert_eq!(
        created.header("location"),
        Some(format!("/api/groups/{id}").as_str())
    );
    assert_eq!(created.body["jsonapi"], json!({"version": "1.1"}));
    assert_eq!(created.body["data"]["type"], json!("groups"));
    assert_eq!(created.attr("name"), &json!("Acme Corp!"), "trimmed");
    assert_eq!(created.attr("slug"), &json!("acme-corp"), "slug from name");
    assert_eq!(created.attr("description"), &json!("Our team"));
    assert_eq!(created.attr("status"), &json!("active"));
    assert!(created.attr("created_at").is_string());
    assert!(created.attr("updated_at").is_string());
    let rels = &created.body["data"]["relationships"];
    assert_eq!(rels["owner"]["data"], json!({"type": "users", "id": owner}));
    assert_eq!(rels["plan"]["data"], json!({"type": "plans", "id": plan}));
    assert_eq!(
        rels["members"]["links"]["self"],
        json!(format!("/api/groups/{id}/relationships/members"))
    );
    assert_eq!(
        rels["members"]["links"]["related"],
        json!(format!("/api/groups/{id}/members"))
    );
    assert!(
        rels["members"].get("data").is_none(),
        "to-many linkage only when included: {rels}"
    );
    assert_eq!(
        created.body["data"]["links"]["self"],
        json!(format!("/api/groups/{id}"))
    );

    let fetched = app.get(&format!("/api/groups/{id}")).await;
    fetched.expect(200);
    assert_eq!(
        fetched.body["data"]["attributes"],
        created.body["data"]["attributes"]
    );
    assert_eq!(
        fetched.body["data"]["relationships"]["owner"]["data"]["id"],
        json!(owner)
    );

    let other = create_group(&app, "Other", &owner).await;
    let list = app.get("/api/groups").await;
    list.expect(200);
    assert_eq!(list.body["meta"]["total"], json!(2));
    assert_eq!(
        list.body["data"][0]["id"],
        json!(other),
        "newest first by default"
    );
    assert_eq!(list.body["data"][1]["id"], json!(id));

    let patched = app
        .patch_attributes("groups", "groups", &id, json!({"description": "Changed"}))
        .await;
    patched.expect(200);
    assert_eq!(patched.attr("description"), &json!("Changed"));
    assert_eq!(patched.attr("name"), &json!("Acme Corp!"));
    assert_eq!(patched.attr("slug"), &json!("acme-corp"));
    assert_eq!(patched.attr("status"), &json!("active"));
    assert_eq!(patched.attr("billing_email"), created.attr("billing_email"));
    assert_eq!(patched.attr("created_at"), created.attr("created_at"));
    assert_ne!(patched.attr("updated_at"), created.attr("updated_at"));
    assert_eq!(
        patched.body["data"]["relationships"]["plan"]["data"]["id"],
        json!(plan)
    );

    let renamed = app
        .patch_attributes("groups", "groups", &id, json!({"name": "Acme Inc"}))
        .await;
    renamed.expect(200);
    assert_eq!(
        renamed.attr("slug"),
        &json!("acme-corp"),
        "renaming keeps the slug"
    );

    let deleted = app.delete(&format!("/api/groups/{id}")).await;
    deleted.expect(204);
    assert!(deleted.header("content-type").is_none());
    assert_eq!(deleted.body, Value::Null);
    app.get(&format!("/api/groups/{id}"))
        .await
        .expect_error(404, "NOT_FOUND", None);
    app.delete(&format!("/api/groups/{id}"))
        .await
        .expect_error(404, "NOT_FOUND", None);
    app.patch_attributes("groups", "groups", &id, json!({"name": "X"}))
        .await
        .expect_error(404, "NOT_FOUND", None);
    assert_eq!(app.get("/api/groups").await.body["meta"]["total"], json!(1));
}

#[tokio::test]
async fn defaults_and_optional_attributes() {
    let app = spawn_app().await;
    let owner = app.create_user("o@example.com").await;
    let created = app
        .create(
            "groups",
            "groups",
            json!({"name": "Plain"}),
            json!({"owner": link("users", &owner)}),
        )
        .await;
    assert_eq!(created.attr("slug"), &json!("plain"));
    assert_eq!(created.attr("description"), &json!(""));
    assert_eq!(created.attr("billing_email"), &Value::Null);
    assert_eq!(created.attr("status"), &json!("active"));
    assert_eq!(
        created.body["data"]["relationships"]["plan"]["data"],
        Value::Null,
        "plan defaults to null (use the owner's plan)"
    );
    let explicit = app
        .create(
            "groups",
            "groups",
            json!({"name": "Explicit", "slug": "my-team-2", "status": "suspended", "billing_email": null}),
            json!({"owner": link("users", &owner), "plan": {"data": null}}),
        )
        .await;
    assert_eq!(explicit.attr("slug"), &json!("my-team-2"));
    assert_eq!(explicit.attr("status"), &json!("suspended"));
    assert_eq!(explicit.attr("billing_email"), &Value::Null);
    assert_eq!(
        explicit.body["data"]["relationships"]["plan"]["data"],
        Value::Null
    );
    // Every attribute of the spec is present.
    let attrs = explicit.body["data"]["attributes"].as_object().unwrap();
    let mut names: Vec<&str> = attrs.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        vec![
            "billing_email",
            "created_at",
            "description",
            "name",
            "slug",
            "status",
            "updated_at"
        ]
    );
}

#[tokio::test]
async fn every_attribute_rule_reports_its_pointer() {
    let app = spawn_app().await;
    let owner = app.create_user("o@example.com").await;
    let owner_rel = json!({"owner": link("users", &owner)});
    for (attrs, pointer) in [
        (json!({}), "/data/attributes/name"),
        (json!({"name": ""}), "/data/attributes/name"),
        (json!({"name": "   "}), "/data/attributes/name"),
        (json!({"name": "x".repeat(101)}), "/data/attributes/name"),
        (json!({"name": 7}), "/data/attributes/name"),
        (json!({"name": null}), "/data/attributes/name"),
        (
            json!({"name": "A", "slug": "Acme"}),
            "/data/attributes/slug",
        ),
        (
            json!({"name": "A", "slug": "acme--corp"}),
            "/data/attributes/slug",
        ),
        (
            json!({"name": "A", "slug": "-acme"}),
            "/data/attributes/slug",
        ),
        (
            json!({"name": "A", "slug": "acme-"}),
            "/data/attributes/slug",
        ),
        (
            json!({"name": "A", "slug": "acme_corp"}),
            "/data/attributes/slug",
        ),
        (json!({"name": "A", "slug": "a b"}), "/data/attributes/slug"),
        (json!({"name": "A", "slug": ""}), "/data/attributes/slug"),
        (
            json!({"name": "A", "slug": "a".repeat(64)}),
            "/data/attributes/slug",
        ),
        (json!({"name": "A", "slug": 5}), "/data/attributes/slug"),
        (
            json!({"name": "A", "description": "x".repeat(1001)}),
            "/data/attributes/description",
        ),
        (
            json!({"name": "A", "billing_email": "not-an-email"}),
            "/data/attributes/billing_email",
        ),
        (
            json!({"name": "A", "billing_email": "a@"}),
            "/data/attributes/billing_email",
        ),
        (
            json!({"name": "A", "billing_email": 12}),
            "/data/attributes/billing_email",
        ),
        (
            json!({"name": "A", "status": "closed"}),
            "/data/attributes/status",
        ),
        (
            json!({"name": "A", "status": "ACTIVE"}),
            "/data/attributes/status",
        ),
        (
            json!({"name": "A", "status": null}),
            "/data/attributes/status",
        ),
    ] {
        let reply = post_group(&app, attrs.clone(), owner_rel.clone()).await;
        reply.expect(422);
        assert!(
            reply
                .problems()
                .iter()
                .any(|(code, p)| code == "VALIDATION_ERROR" && p == pointer),
            "{attrs} should point at {pointer}: {}",
            reply.body
        );
    }
    // Boundaries that are accepted.
    let long = app
        .create(
            "groups",
            "groups",
            json!({"name": "x".repeat(100), "slug": "a".repeat(63), "description": "d".repeat(1000)}),
            owner_rel.clone(),
        )
        .await;
    assert_eq!(long.attr("slug"), &json!("a".repeat(63)));
    let single = app
        .create(
            "groups",
            "groups",
            json!({"name": "S", "slug": "a1-b2-c3"}),
            owner_rel.clone(),
        )
        .await;
    assert_eq!(single.attr("slug"), &json!("a1-b2-c3"));
    // Nothing else was written.
    assert_eq!(app.get("/api/groups").await.body["meta"]["total"], json!(2));
}

#[tokio::test]
async fn unknown_and_read_only_attributes_are_collected_in_order() {
    let app = spawn_app().await;
    let owner = app.create_user("o@example.com").await;
    let reply = post_group(
        &app,
        json!({"bogus": 1, "created_at": "2020-01-01T00:00:00Z", "status": "gone", "owner_id": owner}),
        json!({"owner": link("users", &owner)}),
    )
    .await;
    assert_eq!(
        reply.problems(),
        vec![
            (
                "UNKNOWN_ATTRIBUTE".to_owned(),
                "/data/attributes/bogus".to_owned()
            ),
            (
                "READ_ONLY_ATTRIBUTE".to_owned(),
                "/data/attributes/created_at".to_owned()
            ),
            (
                "VALIDATION_ERROR".to_owned(),
                "/data/attributes/status".to_owned()
            ),
            (
                "UNKNOWN_ATTRIBUTE".to_owned(),
                "/data/attributes/owner_id".to_owned()
            ),
            (
                "VALIDATION_ERROR".to_owned(),
                "/data/attributes/name".to_owned()
            ),
        ],
        "{}",
        reply.body
    );
    reply.expect(422);
    let unknown_rel = post_group(
        &app,
        json!({"name": "A"}),
        json!({"owner": link("users", &owner), "users": {"data": []}}),
    )
    .await;
    unknown_rel.expect_error(
        422,
        "UNKNOWN_RELATIONSHIP",
        Some("/data/relationships/users"),
    );

    let group = create_group(&app, "A", &owner).await;
    let before = app.get(&format!("/api/groups/{group}")).await;
    app.patch_attributes("groups", "groups", &group, json!({"nope": true}))
        .await
        .expect_error(422, "UNKNOWN_ATTRIBUTE", Some("/data/attributes/nope"));
    app.patch_attributes("groups", "groups", &group, json!({"id": group}))
        .await
        .expect_error(422, "UNKNOWN_ATTRIBUTE", Some("/data/attributes/id"));
    app.patch_attributes(
        "groups",
        "groups",
        &group,
        json!({"updated_at": "2020-01-01T00:00:00Z"}),
    )
    .await
    .expect_error(
        422,
        "READ_ONLY_ATTRIBUTE",
        Some("/data/attributes/updated_at"),
    );
    // The stored value of a read-only attribute is accepted and ignored.
    let same = app
        .patch_attributes(
            "groups",
            "groups",
            &group,
            json!({"created_at": before.attr("created_at"), "name": "A"}),
        )
        .await;
    same.expect(200);
    assert_eq!(same.attr("updated_at"), before.attr("updated_at"), "no-op");
    // Non-nullable attributes cannot be cleared.
    for attr in ["name", "slug", "status", "description"] {
        app.patch_attributes("groups", "groups", &group, json!({ attr: null }))
            .await
            .expect_error(
                422,
                "VALIDATION_ERROR",
                Some(&format!("/data/attributes/{attr}")),
            );
    }
    // A rejected PATCH changes nothing, even its valid parts.
    let mixed = app
        .patch_attributes(
            "groups",
            "groups",
            &group,
            json!({"description": "new", "status": "paused"}),
        )
        .await;
    mixed.expect_error(422, "VALIDATION_ERROR", Some("/data/attributes/status"));
    let after = app.get(&format!("/api/groups/{group}")).await;
    assert_eq!(
        after.body["data"]["attributes"],
        before.body["data"]["attributes"]
    );
}

#[tokio::test]
async fn patch_validation_and_nullable_billing_email() {
    let app = spawn_app().await;
    let owner = app.create_user("o@example.com").await;
    let group = create_group(&app, "Team", &owner).await;
    for (attrs, pointer) in [
        (json!({"name": ""}), "/data/attributes/name"),
        (json!({"slug": "Bad Slug"}), "/data/attributes/slug"),
        (
            json!({"billing_email": "nope"}),
            "/data/attributes/billing_email",
        ),
        (json!({"status": "deleted"}), "/data/attributes/status"),
        (
            json!({"description": "x".repeat(1001)}),
            "/data/attributes/description",
        ),
    ] {
        app.patch_attributes("groups", "groups", &group, attrs)
            .await
            .expect_error(422, "VALIDATION_ERROR", Some(pointer));
    }
    let set = app
        .patch_attributes(
            "groups",
            "groups",
            &group,
            json!({"billing_email": "pay@example.com", "status": "suspended", "slug": "new-slug"}),
        )
        .await;
    set.expect(200);
    assert_eq!(set.attr("billing_email"), &json!("pay@example.com"));
    assert_eq!(set.attr("status"), &json!("suspended"));
    assert_eq!(set.attr("slug"), &json!("new-slug"));
    let cleared = app
        .patch_attributes("groups", "groups", &group, json!({"billing_email": null}))
        .await;
    cleared.expect(200);
    assert_eq!(cleared.attr("billing_email"), &Value::Null);
    assert_eq!(cleared.attr("status"), &json!("suspended"));
    let back = app
        .patch_attributes("groups", "groups", &group, json!({"status": "active"}))
        .await;
    assert_eq!(back.attr("status"), &json!("active"));
    assert_eq!(back.attr("slug"), &json!("new-slug"));
}

#[tokio::test]
async fn slug_is_unique_case_insensitively_and_freed_by_delete() {
    let app = spawn_app().await;
    let owner = app.create_user("o@example.com").await;
    let first = app
        .create(
            "groups",
            "groups",
            json!({"name": "Acme Corp!"}),
            json!({"owner": link("users", &owner)}),
        )
        .await
        .id();
    // Same derived slug.
    post_group(
        &app,
        json!({"name": "ACME corp"}),
        json!({"owner": link("users", &owner)}),
    )
    .await
    .expect_error(409, "CONFLICT", Some("/data/attributes/slug"));
    // Same explicit slug.
    post_group(
        &app,
        json!({"name": "Other", "slug": "acme-corp"}),
        json!({"owner": link("users", &owner)}),
    )
    .await
    .expect_error(409, "CONFLICT", Some("/data/attributes/slug"));
    // Via PATCH.
    let second = create_group(&app, "Second", &owner).await;
    app.patch_attributes("groups", "groups", &second, json!({"slug": "acme-corp"}))
        .await
        .expect_error(409, "CONFLICT", Some("/data/attributes/slug"));
    assert_eq!(
        app.get(&format!("/api/groups/{second}")).await.attr("slug"),
        &json!("second")
    );
    // Names are not unique: a different slug is fine.
    app.create(
        "groups",
        "groups",
        json!({"name": "Acme Corp!", "slug": "acme-two"}),
        json!({"owner": link("users", &owner)}),
    )
    .await;
    app.delete(&format!("/api/groups/{first}"))
        .await
        .expect(204);
    let reused = app
        .create(
            "groups",
            "groups",
            json!({"name": "Acme Corp!"}),
            json!({"owner": link("users", &owner)}),
        )
        .await;
    assert_eq!(reused.attr("slug"), &json!("acme-corp"));
}

#[tokio::test]
async fn owner_is_required_must_exist_and_be_active() {
    let app = spawn_app().await;
    post_group(&app, json!({"name": "A"}), Value::Null)
        .await
        .expect_error(422, "VALIDATION_ERROR", Some("/data/relationships/owner"));
    post_group(&app, json!({"name": "A"}), json!({"owner": {"data": null}}))
        .await
        .expect_error(422, "VALIDATION_ERROR", Some("/data/relationships/owner"));
    // Problems with attributes and the missing owner are reported together.
    let both = post_group(&app, json!({"name": ""}), Value::Null).await;
    both.expect(422);
    let problems = both.problems();
    assert!(problems.contains(&(
        "VALIDATION_ERROR".to_owned(),
        "/data/attributes/name".to_owned()
    )));
    assert!(problems.contains(&(
        "VALIDATION_ERROR".to_owned(),
        "/data/relationships/owner".to_owned()
    )));

    post_group(
        &app,
        json!({"name": "A"}),
        json!({"owner": link("users", "usr_01JD0Q3W6Y8ZK2X4V5B7N9M1C3")}),
    )
    .await
    .expect_error(
        404,
        "RELATED_NOT_FOUND",
        Some("/data/relationships/owner/data"),
    );
    post_group(
        &app,
        json!({"name": "A"}),
        json!({"owner": link("users", "nonsense")}),
    )
    .await
    .expect_error(
        404,
        "RELATED_NOT_FOUND",
        Some("/data/relationships/owner/data"),
    );
    post_group(
        &app,
        json!({"name": "A"}),
        json!({"owner": link("plans", "pln_01JD0Q3W6Y8ZK2X4V5B7N9M1C3")}),
    )
    .await
    .expect_error(409, "TYPE_MISMATCH", None);

    let suspended = app
        .create(
            "users",
            "users",
            json!({"email": "s@example.com", "status": "suspended"}),
            Value::Null,
        )
        .await
        .id();
    post_group(
        &app,
        json!({"name": "A"}),
        json!({"owner": link("users", &suspended)}),
    )
    .await
    .expect_error(422, "VALIDATION_ERROR", Some("/data/relationships/owner"));
    let pending = app
        .create(
            "users",
            "users",
            json!({"email": "p@example.com", "status": "pending"}),
            Value::Null,
        )
        .await
        .id();
    post_group(
        &app,
        json!({"name": "A"}),
        json!({"owner": link("users", &pending)}),
    )
    .await
    .expect_error(422, "VALIDATION_ERROR", Some("/data/relationships/owner"));
    // A deleted user does not exist any more.
    let gone = app.create_user("gone@example.com").await;
    app.delete(&format!("/api/users/{gone}")).await.expect(204);
    post_group(
        &app,
        json!({"name": "A"}),
        json!({"owner": link("users", &gone)}),
    )
    .await
    .expect_error(
        404,
        "RELATED_NOT_FOUND",
        Some("/data/relationships/owner/data"),
    );
    assert_eq!(app.get("/api/groups").await.body["meta"]["total"], json!(0));

    // An admin may own a group too.
    let admin_group = create_group(&app, "Admins", &app.admin_id).await;
    assert!(admin_group.starts_with("grp_"));
}

#[tokio::test]
async fn changing_the_owner() {
    let app = spawn_app().await;
    let alice = app.create_user("alice@example.com").await;
    let bob = app.create_user("bob@example.com").await;
    let group = create_group(&app, "Team", &alice).await;
    let path = format!("/api/groups/{group}");
    let to_bob = app
        .patch(
            &path,
            json!({"data": {"type": "groups", "id": group, "relationships": {"owner": link("users", &bob)}}}),
        )
        .await;
    to_bob.expect(200);
    assert_eq!(
        to_bob.body["data"]["relationships"]["owner"]["data"],
        json!({"type": "users", "id": bob})
    );
    let members = members_of(&app, &group).await;
    assert!(
        members.contains(&(bob.clone(), "owner".to_owned())),
        "the new owner is a member with role owner: {members:?}"
    );
    assert_eq!(
        members.iter().filter(|(_, r)| r == "owner").count(),
        1,
        "exactly one owner: {members:?}"
    );
    // The owner cannot be null, missing or inactive.
    app.patch(
        &path,
        json!({"data": {"type": "groups", "id": group, "relationships": {"owner": {"data": null}}}}),
    )
    .await
    .expect_error(
        422,
        "VALIDATION_ERROR",
        Some("/data/relationships/owner"),
    );
    app.patch(
        &path,
        json!({"data": {"type": "groups", "id": group, "relationships": {"owner": link("users", "usr_01JD0Q3W6Y8ZK2X4V5B7N9M1C3")}}}),
    )
    .await
    .expect_error(
        404,
        "RELATED_NOT_FOUND",
        Some("/data/relationships/owner/data"),
    );
    let suspended = app
        .create(
            "users",
            "users",
            json!({"email": "s@example.com", "status": "suspended"}),
            Value::Null,
        )
        .await
        .id();
    app.patch(
        &path,
        json!({"data": {"type": "groups", "id": group, "relationships": {"owner": link("users", &suspended)}}}),
    )
    .await
    .expect_error(
        422,
        "VALIDATION_ERROR",
        Some("/data/relationships/owner"),
    );
    // Through the relationship endpoint as well.
    let via_endpoint = app
        .patch(
            &format!("{path}/relationships/owner"),
            link("users", &alice),
        )
        .await;
    via_endpoint.expect(200);
    assert_eq!(
        via_endpoint.body["data"],
        json!({"type": "users", "id": alice})
    );
    let linkage = app.get(&format!("{path}/relationships/owner")).await;
    linkage.expect(200);
    assert_eq!(linkage.body["data"], json!({"type": "users", "id": alice}));
    let related = app.get(&format!("{path}/owner")).await;
    related.expect(200);
    assert_eq!(related.body["data"]["id"], json!(alice));
    assert_eq!(related.body["data"]["type"], json!("users"));
    let members = members_of(&app, &group).await;
    assert!(members.contains(&(alice.clone(), "owner".to_owned())));
    assert_eq!(members.iter().filter(|(_, r)| r == "owner").count(), 1);
    // Alice owns the group again: she cannot be deleted; bob (no longer an owner) can.
    app.delete(&format!("/api/users/{alice}"))
        .await
        .expect_error(409, "RESOURCE_IN_USE", None);
    app.delete(&format!("/api/users/{bob}")).await.expect(204);
}

#[tokio::test]
async fn plan_is_nullable_must_exist_and_be_enabled() {
    let app = spawn_app().await;
    let owner = app.create_user("o@example.com").await;
    let plan = app.create_plan("Team").await;
    let disabled = app
        .create(
            "plans",
            "plans",
            json!({"name": "Old", "enabled": false}),
            Value::Null,
        )
        .await
        .id();
    post_group(
        &app,
        json!({"name": "A"}),
        json!({"owner": link("users", &owner), "plan": link("plans", &disabled)}),
    )
    .await
    .expect_error(422, "VALIDATION_ERROR", Some("/data/relationships/plan"));
    post_group(
        &app,
        json!({"name": "A"}),
        json!({"owner": link("users", &owner), "plan": link("plans", "pln_01JD0Q3W6Y8ZK2X4V5B7N9M1C3")}),
    )
    .await
    .expect_error(
        404,
        "RELATED_NOT_FOUND",
        Some("/data/relationships/plan/data"),
    );
    post_group(
        &app,
        json!({"name": "A"}),
        json!({"owner": link("users", &owner), "plan": link("users", &owner)}),
    )
    .await
    .expect_error(409, "TYPE_MISMATCH", None);

    let group = app
        .create(
            "groups",
            "groups",
            json!({"name": "A"}),
            json!({"owner": link("users", &owner), "plan": link("plans", &plan)}),
        )
        .await
        .id();
    let path = format!("/api/groups/{group}");
    // A plan used by a group cannot be deleted.
    app.delete(&format!("/api/plans/{plan}"))
        .await
        .expect_error(409, "RESOURCE_IN_USE", None);
    app.patch(
        &path,
        json!({"data": {"type": "groups", "id": group, "relationships": {"plan": link("plans", &disabled)}}}),
    )
    .await
    .expect_error(422, "VALIDATION_ERROR", Some("/data/relationships/plan"));
    app.patch(
        &format!("{path}/relationships/plan"),
        link("plans", &disabled),
    )
    .await
    .expect(422);
    let cleared = app
        .patch(
            &path,
            json!({"data": {"type": "groups", "id": group, "relationships": {"plan": {"data": null}}}}),
        )
        .await;
    cleared.expect(200);
    assert_eq!(
        cleared.body["data"]["relationships"]["plan"]["data"],
        Value::Null
    );
    let linkage = app.get(&format!("{path}/relationships/plan")).await;
    linkage.expect(200);
    assert_eq!(linkage.body["data"], Value::Null);
    let set = app
        .patch(&format!("{path}/relationships/plan"), link("plans", &plan))
        .await;
    set.expect(200);
    assert_eq!(set.body["data"], json!({"type": "plans", "id": plan}));
    let fetched = app.get(&path).await;
    assert_eq!(
        fetched.body["data"]["relationships"]["plan"]["data"]["id"],
        json!(plan)
    );
    // Disabling the plan later does not affect the group (existing assignment).
    app.patch_attributes("plans", "plans", &plan, json!({"enabled": false}))
        .await
        .expect(200);
    let renamed = app
        .patch_attributes("groups", "groups", &group, json!({"name": "B"}))
        .await;
    renamed.expect(200);
    assert_eq!(
        renamed.body["data"]["relationships"]["plan"]["data"]["id"],
        json!(plan)
    );
}

#[tokio::test]
async fn owner_is_always_a_member_with_role_owner() {
    let app = spawn_app().await;
    let owner = app.create_user("o@example.com").await;
    let group = create_group(&app, "Team", &owner).await;
    let linkage = app
        .get(&format!("/api/groups/{group}/relationships/members"))
        .await;
    linkage.expect(200);
    assert_eq!(
        linkage.body["data"],
        json!([{"type": "users", "id": owner, "meta": {"role": "owner"}}])
    );
    assert_eq!(linkage.body["meta"]["total"], json!(1));
    assert_eq!(
        linkage.body["links"]["related"],
        json!(format!("/api/groups/{group}/members"))
    );

    let included = app
        .get(&format!("/api/groups/{group}?include=members"))
        .await;
    included.expect(200);
    assert_eq!(
        included.body["data"]["relationships"]["members"]["data"],
        json!([{"type": "users", "id": owner, "meta": {"role": "owner"}}])
    );
    let inc = included.body["included"].as_array().unwrap();
    assert_eq!(inc.len(), 1, "{}", included.body);
    assert_eq!(inc[0]["type"], json!("users"));
    assert_eq!(inc[0]["id"], json!(owner));
    assert_eq!(inc[0]["attributes"]["email"], json!("o@example.com"));

    let related = app.get(&format!("/api/groups/{group}/members")).await;
    related.expect(200);
    assert_eq!(related.body["meta"]["total"], json!(1));
    assert_eq!(related.body["data"][0]["id"], json!(owner));

    // The user side shows the membership (read-only).
    let user_groups = app
        .get(&format!("/api/users/{owner}/relationships/groups"))
        .await;
    user_groups.expect(200);
    assert_eq!(user_groups.body["data"][0]["id"], json!(group));

    // Naming the owner as a plain member on create still keeps role owner.
    let bob = app.create_user("bob@example.com").await;
    let with_members = app
        .create(
            "groups",
            "groups",
            json!({"name": "Listed"}),
            json!({
                "owner": link("users", &owner),
                "members": {"data": [
                    {"type": "users", "id": owner},
                    {"type": "users", "id": bob, "meta": {"role": "admin"}}
                ]}
            }),
        )
        .await
        .id();
    assert_eq!(
        members_of(&app, &with_members).await,
        expected(&[(&owner, "owner"), (&bob, "admin")])
    );
}

#[tokio::test]
async fn members_on_create_and_include_in_list() {
    let app = spawn_app().await;
    let owner = app.create_user("o@example.com").await;
    let ann = app.create_user("ann@example.com").await;
    let ben = app.create_user("ben@example.com").await;
    let created = app
        .post(
            "/api/groups?include=members",
            json!({"data": {"type": "groups", "attributes": {"name": "Team"}, "relationships": {
                "owner": link("users", &owner),
                "members": {"data": [
                    {"type": "users", "id": ann, "meta": {"role": "admin"}},
                    {"type": "users", "id": ben}
                ]}
            }}}),
        )
        .await;
    created.expect(201);
    let group = created.id();
    assert_eq!(
        roles(&created.body["data"]["relationships"]["members"]["data"]),
        expected(&[(&owner, "owner"), (&ann, "admin"), (&ben, "member")]),
        "role defaults to member; include works on POST"
    );
    assert_eq!(created.body["included"].as_array().unwrap().len(), 3);

    let list = app.get("/api/groups?include=members").await;
    list.expect(200);
    assert_eq!(
        roles(&list.body["data"][0]["relationships"]["members"]["data"]),
        expected(&[(&owner, "owner"), (&ann, "admin"), (&ben, "member")])
    );
    assert_eq!(
        members_of(&app, &group).await,
        expected(&[(&owner, "owner"), (&ann, "admin"), (&ben, "member")])
    );
    // include=owner,plan
    let with_owner = app
        .get(&format!("/api/groups/{group}?include=owner,plan"))
        .await;
    with_owner.expect(200);
    let inc = with_owner.body["included"].as_array().unwrap();
    assert_eq!(inc.len(), 1, "plan is null: only the owner");
    assert_eq!(inc[0]["id"], json!(owner));

    // Unknown member → 404 with its index; bad role → 422; wrong type → 409.
    let unknown = app
        .post(
            "/api/groups",
            json!({"data": {"type": "groups", "attributes": {"name": "X"}, "relationships": {
                "owner": link("users", &owner),
                "members": {"data": [{"type": "users", "id": "usr_01JD0Q3W6Y8ZK2X4V5B7N9M1C3"}]}
            }}}),
        )
        .await;
    unknown.expect_error(404, "RELATED_NOT_FOUND", None);
    assert!(
        unknown
            .pointer()
            .starts_with("/data/relationships/members/data"),
        "{}",
        unknown.body
    );
    let bad_role = app
        .post(
            "/api/groups",
            json!({"data": {"type": "groups", "attributes": {"name": "X"}, "relationships": {
                "owner": link("users", &owner),
                "members": {"data": [{"type": "users", "id": ann, "meta": {"role": "boss"}}]}
            }}}),
        )
        .await;
    bad_role.expect_error(422, "VALIDATION_ERROR", Some("/data/relationships/members"));
    let owner_role = app
        .post(
            "/api/groups",
            json!({"data": {"type": "groups", "attributes": {"name": "X"}, "relationships": {
                "owner": link("users", &owner),
                "members": {"data": [{"type": "users", "id": ann, "meta": {"role": "owner"}}]}
            }}}),
        )
        .await;
    owner_role.expect_error(422, "VALIDATION_ERROR", Some("/data/relationships/members"));
    app.post(
        "/api/groups",
        json!({"data": {"type": "groups", "attributes": {"name": "X"}, "relationships": {
            "owner": link("users", &owner),
            "members": {"data": [{"type": "plans", "id": "pln_01JD0Q3W6Y8ZK2X4V5B7N9M1C3"}]}
        }}}),
    )
    .await
    .expect_error(409, "TYPE_MISMATCH", None);
    assert_eq!(app.get("/api/groups").await.body["meta"]["total"], json!(1));
}

#[tokio::test]
async fn add_and_remove_members() {
    let app = spawn_app().await;
    let owner = app.create_user("o@example.com").await;
    let ann = app.create_user("ann@example.com").await;
    let ben = app.create_user("ben@example.com").await;
    let cid = app.create_user("cid@example.com").await;
    let group = create_group(&app, "Team", &owner).await;
    let path = format!("/api/groups/{group}/relationships/members");

    let added = app
        .post(
            &path,
            json!({"data": [
                {"type": "users", "id": ann, "meta": {"role": "admin"}},
                {"type": "users", "id": ben}
            ]}),
        )
        .await;
    added.expect(200);
    assert_eq!(added.header("content-type"), Some(tollgate_tests::MT));
    assert_eq!(
        roles(&added.body["data"]),
        expected(&[(&owner, "owner"), (&ann, "admin"), (&ben, "member")]),
        "200 with the full new linkage"
    );
    assert_eq!(members_of(&app, &group).await, roles(&added.body["data"]));

    // Adding someone already present is ignored (role unchanged), new ones are added.
    let again = app
        .post(
            &path,
            json!({"data": [
                {"type": "users", "id": ann, "meta": {"role": "member"}},
                {"type": "users", "id": owner},
                {"type": "users", "id": cid, "meta": {"role": "member"}}
            ]}),
        )
        .await;
    again.expect(200);
    assert_eq!(
        roles(&again.body["data"]),
        expected(&[
            (&owner, "owner"),
            (&ann, "admin"),
            (&ben, "member"),
            (&cid, "member")
        ])
    );

    // Removing: absent ids are ignored.
    let outsider = app.create_user("out@example.com").await;
    let removed = app
        .send(
            app.request(Method::DELETE, &path)
                .header("Content-Type", tollgate_tests::MT)
                .body(
                    json!({"data": [
                        {"type": "users", "id": ben},
                        {"type": "users", "id": outsider}
                    ]})
                    .to_string(),
                ),
        )
        .await;
    removed.expect(200);
    assert_eq!(
        roles(&removed.body["data"]),
        expected(&[(&owner, "owner"), (&ann, "admin"), (&cid, "member")])
    );
    assert_eq!(
        members_of(&app, &group).await,
        expected(&[(&owner, "owner"), (&ann, "admin"), (&cid, "member")])
    );
    // Removing the same member again is a no-op.
    let twice = app
        .write(
            Method::DELETE,
            &path,
            json!({"data": [{"type": "users", "id": ben}]}),
        )
        .await;
    twice.expect(200);
    assert_eq!(
        roles(&twice.body["data"]),
        expected(&[(&owner, "owner"), (&ann, "admin"), (&cid, "member")])
    );
    // An empty list changes nothing.
    let empty = app.post(&path, json!({"data": []})).await;
    empty.expect(200);
    assert_eq!(roles(&empty.body["data"]).len(), 3);

    // filter[member] sees the membership.
    let anns = app.get(&format!("/api/groups?filter[member]={ann}")).await;
    assert_eq!(ids(&anns), vec![group.clone()]);
    let bens = app.get(&format!("/api/groups?filter[member]={ben}")).await;
    assert_eq!(bens.body["meta"]["total"], json!(0));
}

#[tokio::test]
async fn member_edit_errors() {
    let app = spawn_app().await;
    let owner = app.create_user("o@example.com").await;
    let ann = app.create_user("ann@example.com").await;
    let group = create_group(&app, "Team", &owner).await;
    let path = format!("/api/groups/{group}/relationships/members");
    app.post(&path, json!({"data": [{"type": "users", "id": ann}]}))
        .await
        .expect(200);

    // Removing the owner.
    let remove_owner = app
        .write(
            Method::DELETE,
            &path,
            json!({"data": [{"type": "users", "id": owner}]}),
        )
        .await;
    remove_owner.expect_error(422, "VALIDATION_ERROR", Some("/data"));
    assert_eq!(
        members_of(&app, &group).await,
        expected(&[(&owner, "owner"), (&ann, "member")]),
        "rejected request changes nothing"
    );
    // Bad role.
    let cid = app.create_user("cid@example.com").await;
    let bad_role = app
        .post(
            &path,
            json!({"data": [{"type": "users", "id": cid, "meta": {"role": "superuser"}}]}),
        )
        .await;
    bad_role.expect_error(422, "VALIDATION_ERROR", Some("/data"));
    let owner_role = app
        .post(
            &path,
            json!({"data": [{"type": "users", "id": cid, "meta": {"role": "owner"}}]}),
        )
        .await;
    owner_role.expect_error(422, "VALIDATION_ERROR", Some("/data"));
    // Unknown user.
    let unknown = app
        .post(
            &path,
            json!({"data": [{"type": "users", "id": "usr_01JD0Q3W6Y8ZK2X4V5B7N9M1C3"}]}),
        )
        .await;
    unknown.expect_error(404, "RELATED_NOT_FOUND", None);
    assert!(unknown.pointer().starts_with("/data/"), "{}", unknown.body);
    // Wrong type.
    app.post(
        &path,
        json!({"data": [{"type": "plans", "id": "pln_01JD0Q3W6Y8ZK2X4V5B7N9M1C3"}]}),
    )
    .await
    .expect_error(409, "TYPE_MISMATCH", None);
    // Not an array.
    app.post(&path, link("users", &cid))
        .await
        .expect_error(400, "INVALID_DOCUMENT", None);
    app.post(&path, json!({"data": [{"id": cid}]}))
        .await
        .expect_error(400, "INVALID_DOCUMENT", None);
    // Unknown group.
    app.post(
        "/api/groups/grp_01JD0Q3W6Y8ZK2X4V5B7N9M1C3/relationships/members",
        json!({"data": [{"type": "users", "id": cid}]}),
    )
    .await
    .expect_error(404, "NOT_FOUND", None);
    app.get("/api/groups/grp_01JD0Q3W6Y8ZK2X4V5B7N9M1C3/relationships/members")
        .await
        .expect_error(404, "NOT_FOUND", None);
    // Only members can be added/removed this way.
    let on_owner = app
        .post(
            &format!("/api/groups/{group}/relationships/owner"),
            json!({"data": [{"type": "users", "id": cid}]}),
        )
        .await;
    on_owner.expect_error(405, "METHOD_NOT_ALLOWED", None);
    assert!(on_owner.header("allow").is_some());
    // Unknown relationship path.
    app.get(&format!("/api/groups/{group}/relationships/bogus"))
        .await
        .expect_error(404, "NOT_FOUND", None);
    assert_eq!(
        members_of(&app, &group).await,
        expected(&[(&owner, "owner"), (&ann, "member")])
    );
}

#[tokio::test]
async fn replace_members_with_patch() {
    let app = spawn_app().await;
    let owner = app.create_user("o@example.com").await;
    let ann = app.create_user("ann@example.com").await;
    let ben = app.create_user("ben@example.com").await;
    let group = create_group(&app, "Team", &owner).await;
    let path = format!("/api/groups/{group}/relationships/members");
    app.post(&path, json!({"data": [{"type": "users", "id": ann}]}))
        .await
        .expect(200);

    let replaced = app
        .patch(
            &path,
            json!({"data": [
                {"type": "users", "id": owner, "meta": {"role": "owner"}},
                {"type": "users", "id": ben, "meta": {"role": "admin"}}
            ]}),
        )
        .await;
    replaced.expect(200);
    assert_eq!(
        roles(&replaced.body["data"]),
        expected(&[(&owner, "owner"), (&ben, "admin")]),
        "full replacement: ann is gone"
    );
    assert_eq!(
        members_of(&app, &group).await,
        expected(&[(&owner, "owner"), (&ben, "admin")])
    );
    // Changing a role through replacement.
    let demoted = app
        .patch(
            &path,
            json!({"data": [
                {"type": "users", "id": owner},
                {"type": "users", "id": ben, "meta": {"role": "member"}}
            ]}),
        )
        .await;
    demoted.expect(200);
    assert_eq!(
        roles(&demoted.body["data"]),
        expected(&[(&owner, "owner"), (&ben, "member")])
    );
    // Leaving out the owner removes the owner: refused.
    let without_owner = app
        .patch(&path, json!({"data": [{"type": "users", "id": ben}]}))
        .await;
    without_owner.expect_error(422, "VALIDATION_ERROR", Some("/data"));
    app.patch(&path, json!({"data": []})).await.expect_error(
        422,
        "VALIDATION_ERROR",
        Some("/data"),
    );
    let bad_role = app
        .patch(
            &path,
            json!({"data": [
                {"type": "users", "id": owner},
                {"type": "users", "id": ben, "meta": {"role": "root"}}
            ]}),
        )
        .await;
    bad_role.expect_error(422, "VALIDATION_ERROR", Some("/data"));
    assert_eq!(
        members_of(&app, &group).await,
        expected(&[(&owner, "owner"), (&ben, "member")])
    );
    // The same replacement inside a resource PATCH.
    let via_resource = app
        .patch(
            &format!("/api/groups/{group}?include=members"),
            json!({"data": {"type": "groups", "id": group, "relationships": {"members": {"data": [
                {"type": "users", "id": owner},
                {"type": "users", "id": ann, "meta": {"role": "admin"}}
            ]}}}}),
        )
        .await;
    via_resource.expect(200);
    assert_eq!(
        roles(&via_resource.body["data"]["relationships"]["members"]["data"]),
        expected(&[(&owner, "owner"), (&ann, "admin")])
    );
    app.patch(
        &format!("/api/groups/{group}"),
        json!({"data": {"type": "groups", "id": group, "relationships": {"members": {"data": [
            {"type": "users", "id": ann}
        ]}}}}),
    )
    .await
    .expect_error(422, "VALIDATION_ERROR", Some("/data/relationships/members"));
    // A to-one body on a to-many relationship is not valid linkage for it.
    let single = app.patch(&path, link("users", &ann)).await;
    assert!(
        single.status.as_u16() == 400 || single.status.as_u16() == 422,
        "{}",
        single.body
    );
    assert_eq!(
        members_of(&app, &group).await,
        expected(&[(&owner, "owner"), (&ann, "admin")])
    );
}

#[tokio::test]
async fn filters_and_sorts() {
    let app = spawn_app().await;
    let alice = app.create_user("alice@example.com").await;
    let bob = app.create_user("bob@example.com").await;
    let plan = app.create_plan("Team").await;
    let a = app
        .create(
            "groups",
            "groups",
            json!({"name": "Bravo", "slug": "zulu"}),
            json!({"owner": link("users", &alice), "plan": link("plans", &plan)}),
        )
        .await
        .id();
    let b = app
        .create(
            "groups",
            "groups",
            json!({"name": "Alpha", "slug": "yankee", "status": "suspended"}),
            json!({"owner": link("users", &bob)}),
        )
        .await
        .id();
    let c = app
        .create(
            "groups",
            "groups",
            json!({"name": "Charlie", "slug": "xray"}),
            json!({
                "owner": link("users", &bob),
                "members": {"data": [{"type": "users", "id": alice}]}
            }),
        )
        .await
        .id();

    let by_owner = app.get(&format!("/api/groups?filter[owner]={bob}")).await;
    by_owner.expect(200);
    assert_eq!(ids(&by_owner), sorted(vec![b.clone(), c.clone()]));
    let by_member = app
        .get(&format!("/api/groups?filter[member]={alice}"))
        .await;
    assert_eq!(
        ids(&by_member),
        sorted(vec![a.clone(), c.clone()]),
        "owners are members"
    );
    let both = app
        .get(&format!("/api/groups?filter[member]={alice},{bob}"))
        .await;
    assert_eq!(both.body["meta"]["total"], json!(3), "comma list = OR");
    let and = app
        .get(&format!(
            "/api/groups?filter[member]={alice}&filter[owner]={bob}"
        ))
        .await;
    assert_eq!(ids(&and), vec![c.clone()], "filters AND together");
    let suspended = app.get("/api/groups?filter[status]=suspended").await;
    assert_eq!(ids(&suspended), vec![b.clone()]);
    let active = app.get("/api/groups?filter[status]=active").await;
    assert_eq!(ids(&active), sorted(vec![a.clone(), c.clone()]));
    let either = app.get("/api/groups?filter[status]=active,suspended").await;
    assert_eq!(either.body["meta"]["total"], json!(3));
    let by_plan = app.get(&format!("/api/groups?filter[plan]={plan}")).await;
    assert_eq!(ids(&by_plan), vec![a.clone()]);
    let no_plan = app.get("/api/groups?filter[plan]=none").await;
    assert_eq!(ids(&no_plan), sorted(vec![b.clone(), c.clone()]));
    let q = app.get("/api/groups?filter[q]=ALP").await;
    assert_eq!(ids(&q), vec![b.clone()]);
    let by_id = app.get(&format!("/api/groups?filter[id]={a},{c}")).await;
    assert_eq!(ids(&by_id), sorted(vec![a.clone(), c.clone()]));

    let by_name = app.get("/api/groups?sort=name").await;
    let order: Vec<&Value> = by_name.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| &g["id"])
        .collect();
    assert_eq!(order, vec![&json!(b), &json!(a), &json!(c)]);
    let by_slug = app.get("/api/groups?sort=-slug").await;
    let order: Vec<&Value> = by_slug.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| &g["id"])
        .collect();
    assert_eq!(order, vec![&json!(a), &json!(b), &json!(c)]);
    let by_slug_asc = app.get("/api/groups?sort=slug").await;
    assert_eq!(by_slug_asc.body["data"][0]["id"], json!(c));
    let oldest = app.get("/api/groups?sort=created_at&page[size]=1").await;
    assert_eq!(oldest.body["data"][0]["id"], json!(a));
    assert_eq!(oldest.body["meta"]["pages"], json!(3));
}

#[tokio::test]
async fn bad_query_parameters() {
    let app = spawn_app().await;
    let owner = app.create_user("o@example.com").await;
    let group = create_group(&app, "Team", &owner).await;
    for (query, code, parameter) in [
        ("sort=description", "INVALID_SORT", "sort"),
        ("sort=billing_email", "INVALID_SORT", "sort"),
        ("sort=owner", "INVALID_SORT", "sort"),
        ("sort=owner.name", "INVALID_SORT", "sort"),
        ("filter[name]=Team", "INVALID_FILTER", "filter[name]"),
        ("filter[slug]=team", "INVALID_FILTER", "filter[slug]"),
        ("filter[status]=closed", "INVALID_FILTER", "filter[status]"),
        ("filter[bogus]=1", "INVALID_FILTER", "filter[bogus]"),
        (
            "filter[created_after]=yesterday",
            "INVALID_FILTER",
            "filter[created_after]",
        ),
        ("include=owners", "INVALID_INCLUDE", "include"),
        ("include=members.bogus", "INVALID_INCLUDE", "include"),
        ("include=members.plan.users", "INVALID_INCLUDE", "include"),
        ("fields[groups]=bogus", "INVALID_FIELDS", "fields[groups]"),
        ("page[size]=0", "INVALID_PAGE_PARAMETER", "page[size]"),
        ("foo=1", "INVALID_QUERY_PARAMETER", "foo"),
    ] {
        let reply = app.get(&format!("/api/groups?{query}")).await;
        reply.expect_error(400, code, None);
        assert_eq!(reply.parameter(), parameter, "{query}: {}", reply.body);
    }
    // Collection families on a single resource.
    let single = app.get(&format!("/api/groups/{group}?sort=name")).await;
    single.expect_error(400, "INVALID_QUERY_PARAMETER", None);
    assert_eq!(single.parameter(), "sort");
    let bad_include = app.get(&format!("/api/groups/{group}?include=nope")).await;
    bad_include.expect_error(400, "INVALID_INCLUDE", None);
    assert_eq!(bad_include.parameter(), "include");
    // Valid two-level include: members and their plans.
    let deep = app
        .get(&format!("/api/groups/{group}?include=members.plan"))
        .await;
    deep.expect(200);
    let types: Vec<&str> = deep.body["included"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    assert!(
        types.contains(&"users") && types.contains(&"plans"),
        "{types:?}"
    );
    // Sparse fieldset.
    let sparse = app
        .get(&format!("/api/groups/{group}?fields[groups]=slug"))
        .await;
    sparse.expect(200);
    assert_eq!(sparse.body["data"]["attributes"], json!({"slug": "team"}));
}

#[tokio::test]
async fn unknown_ids() {
    let app = spawn_app().await;
    for path in [
        "/api/groups/grp_01JD0Q3W6Y8ZK2X4V5B7N9M1C3",
        "/api/groups/nonsense",
        "/api/groups/usr_01JD0Q3W6Y8ZK2X4V5B7N9M1C3",
    ] {
        app.get(path).await.expect_error(404, "NOT_FOUND", None);
        app.delete(path).await.expect_error(404, "NOT_FOUND", None);
    }
    let id = "grp_01JD0Q3W6Y8ZK2X4V5B7N9M1C3";
    app.patch_attributes("groups", "groups", id, json!({"name": "x"}))
        .await
        .expect_error(404, "NOT_FOUND", None);
}

#[tokio::test]
async fn owner_cannot_be_deleted_but_a_member_can() {
    let app = spawn_app().await;
    let owner = app.create_user("o@example.com").await;
    let member = app.create_user("m@example.com").await;
    let group = app
        .create(
            "groups",
            "groups",
            json!({"name": "Team"}),
            json!({
                "owner": link("users", &owner),
                "members": {"data": [{"type": "users", "id": member}]}
            }),
        )
        .await
        .id();
    app.delete(&format!("/api/users/{owner}"))
        .await
        .expect_error(409, "RESOURCE_IN_USE", None);
    app.get(&format!("/api/users/{owner}")).await.expect(200);
    // A plain member's deletion removes the membership.
    app.delete(&format!("/api/users/{member}"))
        .await
        .expect(204);
    assert_eq!(
        members_of(&app, &group).await,
        expected(&[(&owner, "owner")])
    );
    // Once the group is gone the owner may be deleted.
    app.delete(&format!("/api/groups/{group}"))
        .await
        .expect(204);
    app.delete(&format!("/api/users/{owner}")).await.expect(204);
}

#[tokio::test]
async fn delete_revokes_group_keys_and_memberships() {
    let app = spawn_app().await;
    let owner = app.create_user("o@example.com").await;
    let member = app.create_user("m@example.com").await;
    let group = app
        .create(
            "groups",
            "groups",
            json!({"name": "Team"}),
            json!({
                "owner": link("users", &owner),
                "members": {"data": [{"type": "users", "id": member}]}
            }),
        )
        .await
        .id();
    let other_group = create_group(&app, "Other", &owner).await;
    let group_key = app
        .create(
            "api-keys",
            "api_keys",
            json!({"name": "team key"}),
            json!({"user": link("users", &owner), "group": link("groups", &group)}),
        )
        .await;
    assert_eq!(group_key.attr("status"), &json!("active"));
    assert_eq!(
        group_key.body["data"]["relationships"]["group"]["data"]["id"],
        json!(group)
    );
    let group_key = group_key.id();
    let member_key = app
        .create(
            "api-keys",
            "api_keys",
            json!({"name": "member team key"}),
            json!({"user": link("users", &member), "group": link("groups", &group)}),
        )
        .await
        .id();
    let other_key = app
        .create(
            "api-keys",
            "api_keys",
            json!({"name": "other team key"}),
            json!({"user": link("users", &owner), "group": link("groups", &other_group)}),
        )
        .await
        .id();
    let personal = app
        .create(
            "api-keys",
            "api_keys",
            json!({"name": "personal"}),
            json!({"user": link("users", &owner)}),
        )
        .await
        .id();
    let keyed = app
        .get(&format!("/api/api-keys?filter[group]={group}"))
        .await;
    assert_eq!(keyed.body["meta"]["total"], json!(2));

    app.delete(&format!("/api/groups/{group}"))
        .await
        .expect(204);

    for key in [&group_key, &member_key] {
        let reply = app.get(&format!("/api/api-keys/{key}")).await;
        reply.expect(200);
        assert_eq!(reply.attr("status"), &json!("revoked"), "{}", reply.body);
        assert!(reply.attr("revoked_at").is_string());
    }
    for key in [&other_key, &personal] {
        let reply = app.get(&format!("/api/api-keys/{key}")).await;
        assert_eq!(
            reply.attr("status"),
            &json!("active"),
            "keys of other groups and personal keys stay"
        );
    }
    // Memberships are gone.
    let member_groups = app
        .get(&format!("/api/groups?filter[member]={member}"))
        .await;
    assert_eq!(member_groups.body["meta"]["total"], json!(0));
    let user_side = app
        .get(&format!("/api/users/{member}/relationships/groups"))
        .await;
    user_side.expect(200);
    assert_eq!(user_side.body["data"], json!([]));
    // The member (no longer in any group) and the owner's other group stay.
    let owner_groups = app.get(&format!("/api/groups?filter[owner]={owner}")).await;
    assert_eq!(ids(&owner_groups), vec![other_group]);
}

#[tokio::test]
async fn no_op_patch_keeps_updated_at() {
    let app = spawn_app().await;
    let owner = app.create_user("o@example.com").await;
    let created = app
        .create(
            "groups",
            "groups",
            json!({"name": "Team", "description": "d"}),
            json!({"owner": link("users", &owner)}),
        )
        .await;
    let id = created.id();
    let same = app
        .patch(
            &format!("/api/groups/{id}"),
            json!({"data": {"type": "groups", "id": id,
                "attributes": {"name": "Team", "slug": "team", "description": "d", "status": "active"},
                "relationships": {"owner": link("users", &owner), "plan": {"data": null}}}}),
        )
        .await;
    same.expect(200);
    assert_eq!(same.attr("updated_at"), created.attr("updated_at"));
    // Re-adding an existing member is a no-op too.
    let readd = app
        .post(
            &format!("/api/groups/{id}/relationships/members"),
            json!({"data": [{"type": "users", "id": owner}]}),
        )
        .await;
    readd.expect(200);
    assert_eq!(
        app.get(&format!("/api/groups/{id}"))
            .await
            .attr("updated_at"),
        created.attr("updated_at")
    );
}

/// `^[a-z0-9](-?[a-z0-9])*$`, at most 63 characters.
fn is_valid_slug(slug: &str) -> bool {
    !slug.is_empty()
        && slug.len() <= 63
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
        && !slug.ends_with('-')
        && !slug.contains("--")
}

#[tokio::test]
async fn derived_slugs_obey_the_slug_rule() {
    let app = spawn_app().await;
    let owner = app.create_user("o@example.com").await;
    for (name, want) in [
        ("Acme Corp!", Some("acme-corp")),
        ("  Hello,   World  ", Some("hello-world")),
        ("Team 42", Some("team-42")),
        ("--Dashes--", Some("dashes")),
        ("!!!", None),
        ("Ünïcode Team", None),
    ] {
        let created = app
            .create(
                "groups",
                "groups",
                json!({ "name": name }),
                json!({"owner": link("users", &owner)}),
            )
            .await;
        let slug = created.attr("slug").as_str().unwrap().to_owned();
        assert!(is_valid_slug(&slug), "{name:?} → {slug:?}");
        if let Some(want) = want {
            assert_eq!(slug, want, "{name:?}");
        }
        app.delete(&format!("/api/groups/{}", created.id()))
            .await
            .expect(204);
    }
    let long = app
        .create(
            "groups",
            "groups",
            json!({"name": format!("{} {}", "a".repeat(60), "b".repeat(39))}),
            json!({"owner": link("users", &owner)}),
        )
        .await;
    let slug = long.attr("slug").as_str().unwrap();
    assert!(is_valid_slug(slug), "{slug:?}");
    assert!(slug.starts_with(&"a".repeat(60)), "{slug:?}");
}

#[tokio::test]
async fn member_linkage_is_paginated() {
    let app = spawn_app().await;
    let owner = app.create_user("o@example.com").await;
    let ann = app.create_user("ann@example.com").await;
    let ben = app.create_user("ben@example.com").await;
    let group = app
        .create(
            "groups",
            "groups",
            json!({"name": "Team"}),
            json!({
                "owner": link("users", &owner),
                "members": {"data": [
                    {"type": "users", "id": ann, "meta": {"role": "admin"}},
                    {"type": "users", "id": ben}
                ]}
            }),
        )
        .await
        .id();
    let path = format!("/api/groups/{group}/relationships/members");
    let mut seen = Vec::new();
    for number in 1..=3 {
        let page = app
            .get(&format!("{path}?page[size]=1&page[number]={number}"))
            .await;
        page.expect(200);
        assert_eq!(page.body["meta"]["total"], json!(3));
        assert_eq!(page.body["meta"]["pages"], json!(3));
        assert_eq!(page.body["data"].as_array().unwrap().len(), 1);
        assert_eq!(page.body["links"]["next"].is_string(), number < 3);
        assert_eq!(page.body["links"]["prev"].is_string(), number > 1);
        seen.extend(roles(&page.body["data"]));
    }
    seen.sort();
    assert_eq!(
        seen,
        expected(&[(&owner, "owner"), (&ann, "admin"), (&ben, "member")])
    );
    // Only page[*] is allowed on a linkage endpoint.
    let sorted_linkage = app.get(&format!("{path}?sort=email")).await;
    sorted_linkage.expect_error(400, "INVALID_QUERY_PARAMETER", None);
    assert_eq!(sorted_linkage.parameter(), "sort");
}
