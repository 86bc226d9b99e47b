//! `/api/api-keys`: the secret shown once, admin keys, expiry, revocation, filters.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tollgate_domain::Timestamp;
use tollgate_tests::{MT, Reply, TestApp, link, spawn_app};

async fn post_key(app: &TestApp, attributes: Value, relationships: Value) -> Reply {
    let mut data = json!({"type": "api_keys", "attributes": attributes});
    if !relationships.is_null() {
        data["relationships"] = relationships;
    }
    app.post("/api/api-keys", json!({ "data": data })).await
}

/// Creates a key for `user` (asserting 201).
async fn create_key(app: &TestApp, user: &str, attributes: Value) -> Reply {
    app.create(
        "api-keys",
        "api_keys",
        attributes,
        json!({"user": link("users", user)}),
    )
    .await
}

fn secret(reply: &Reply) -> String {
    reply.body["data"]["meta"]["key"]
        .as_str()
        .expect("the key in data.meta.key")
        .to_owned()
}

async fn admin_user(app: &TestApp, email: &str) -> String {
    app.create(
        "users",
        "users",
        json!({"email": email, "role": "admin"}),
        Value::Null,
    )
    .await
    .id()
}

/// `GET /api/users` authenticated with `key` as a Bearer token.
async fn call_with(app: &TestApp, key: &str) -> Reply {
    app.send(
        app.client
            .get(app.url("/api/users"))
            .header("Accept", MT)
            .header("Authorization", format!("Bearer {key}")),
    )
    .await
}

async fn revoke(app: &TestApp, id: &str) -> Reply {
    app.send(app.request(Method::POST, &format!("/api/api-keys/{id}/revoke")))
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

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

/// Ids of `user`'s keys with the given `filter[status]`, sorted.
async fn keys_with_status(app: &TestApp, user: &str, status: &str) -> Vec<String> {
    let reply = app
        .get(&format!(
            "/api/api-keys?filter[user]={user}&filter[status]={status}"
        ))
        .await;
    reply.expect(200);
    sorted(ids(&reply))
}

fn in_seconds(seconds: i64) -> String {
    Timestamp::now().plus_seconds(seconds).to_string()
}

fn is_key(key: &str, prefix: &str) -> bool {
    key.strip_prefix(prefix)
        .is_some_and(|rest| rest.len() == 40 && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

#[tokio::test]
async fn crud_happy_path_and_the_secret_shown_once() {
    let app = spawn_app().await;
    let user = app.create_user("ada@example.com").await;
    let created = create_key(&app, &user, json!({"name": "  prod  "})).await;
    let id = created.id();
    assert!(id.starts_with("key_") && id.len() == 30, "{id}");
    assert_eq!(
        created.header("location"),
        Some(format!("/api/api-keys/{id}").as_str())
    );
    assert_eq!(created.body["data"]["type"], json!("api_keys"));
    let key = secret(&created);
    assert!(is_key(&key, "tg_live_"), "{key}");
    let mut names: Vec<&str> = created.body["data"]["attributes"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "created_at",
            "expires_at",
            "kind",
            "last_used_at",
            "name",
            "prefix",
            "revoked_at",
            "rotated_at",
            "status",
            "updated_at"
        ]
    );
    assert_eq!(created.attr("name"), &json!("prod"));
    assert_eq!(created.attr("kind"), &json!("live"));
    assert_eq!(created.attr("prefix"), &json!(key[..16]));
    assert_eq!(created.attr("status"), &json!("active"));
    for null in ["expires_at", "last_used_at", "revoked_at", "rotated_at"] {
        assert_eq!(created.attr(null), &Value::Null, "{null}");
    }
    let rels = &created.body["data"]["relationships"];
    assert_eq!(rels["user"]["data"], json!({"type": "users", "id": user}));
    assert_eq!(rels["group"]["data"], Value::Null);
    assert_eq!(
        rels["user"]["links"]["self"],
        json!(format!("/api/api-keys/{id}/relationships/user"))
    );
    assert_eq!(
        created.body["data"]["links"]["self"],
        json!(format!("/api/api-keys/{id}"))
    );

    // Never again: not on GET, list, PATCH, include, nor any digest of it.
    let fetched = app.get(&format!("/api/api-keys/{id}")).await;
    fetched.expect(200);
    assert!(
        fetched.body["data"].get("meta").is_none(),
        "{}",
        fetched.body
    );
    assert_eq!(
        fetched.body["data"]["attributes"],
        created.body["data"]["attributes"]
    );
    let list = app.get(&format!("/api/api-keys?filter[user]={user}")).await;
    assert_eq!(ids(&list), vec![id.clone()]);
    let patched = app
        .patch_attributes("api-keys", "api_keys", &id, json!({"name": "production"}))
        .await;
    patched.expect(200);
    assert_eq!(patched.attr("name"), &json!("production"));
    for unchanged in [
        "kind",
        "prefix",
        "status",
        "expires_at",
        "revoked_at",
        "created_at",
    ] {
        assert_eq!(
            patched.attr(unchanged),
            created.attr(unchanged),
            "{unchanged}"
        );
    }
    assert_eq!(
        patched.body["data"]["relationships"]["user"]["data"]["id"],
        json!(user)
    );
    let included = app
        .get(&format!("/api/users/{user}?include=api_keys"))
        .await;
    for reply in [&fetched, &list, &patched, &included] {
        let text = reply.body.to_string();
        assert!(!text.contains(&key[16..]), "secret leaked: {text}");
        assert!(!text.contains("digest"), "{text}");
        assert!(!text.contains("\"key\""), "{text}");
    }
    app.get(&format!("/api/api-keys/{id}?fields[api_keys]=key_digest"))
        .await
        .expect_error(400, "INVALID_FIELDS", None);

    // A live key never works on the admin API.
    let refused = call_with(&app, &key).await;
    refused.expect_error(401, "UNAUTHORIZED", None);
    assert_eq!(
        refused.header("www-authenticate"),
        Some("Bearer realm=\"tollgate\"")
    );

    let deleted = app.delete(&format!("/api/api-keys/{id}")).await;
    deleted.expect(204);
    assert!(deleted.header("content-type").is_none());
    app.get(&format!("/api/api-keys/{id}"))
        .await
        .expect_error(404, "NOT_FOUND", None);
    app.delete(&format!("/api/api-keys/{id}"))
        .await
        .expect_error(404, "NOT_FOUND", None);
    revoke(&app, &id).await.expect_error(404, "NOT_FOUND", None);
    let after = app.get(&format!("/api/users/{user}/api_keys")).await;
    assert_eq!(after.body["meta"]["total"], json!(0));
}

#[tokio::test]
async fn unknown_ids_are_not_found() {
    let app = spawn_app().await;
    for id in [
        "key_01JD0S0000000000000000000Z",
        "key_x",
        app.admin_id.as_str(),
    ] {
        app.get(&format!("/api/api-keys/{id}"))
            .await
            .expect_error(404, "NOT_FOUND", None);
        app.patch_attributes("api-keys", "api_keys", id, json!({"name": "x"}))
            .await
            .expect_error(404, "NOT_FOUND", None);
        app.delete(&format!("/api/api-keys/{id}"))
            .await
            .expect_error(404, "NOT_FOUND", None);
        revoke(&app, id).await.expect_error(404, "NOT_FOUND", None);
        app.get(&format!("/api/api-keys/{id}/user"))
            .await
            .expect_error(404, "NOT_FOUND", None);
    }
}

#[tokio::test]
async fn every_rule_reports_its_pointer() {
    let app = spawn_app().await;
    let user = app.create_user("ada@example.com").await;
    let owner = json!({"user": link("users", &user)});
    for (attrs, code, pointer) in [
        (json!({}), "VALIDATION_ERROR", "/data/attributes/name"),
        (
            json!({"name": ""}),
            "VALIDATION_ERROR",
            "/data/attributes/name",
        ),
        (
            json!({"name": "   "}),
            "VALIDATION_ERROR",
            "/data/attributes/name",
        ),
        (
            json!({"name": "x".repeat(101)}),
            "VALIDATION_ERROR",
            "/data/attributes/name",
        ),
        (
            json!({"name": null}),
            "VALIDATION_ERROR",
            "/data/attributes/name",
        ),
        (
            json!({"name": 3}),
            "VALIDATION_ERROR",
            "/data/attributes/name",
        ),
        (
            json!({"name": "k", "kind": "test"}),
            "VALIDATION_ERROR",
            "/data/attributes/kind",
        ),
        (
            json!({"name": "k", "kind": null}),
            "VALIDATION_ERROR",
            "/data/attributes/kind",
        ),
        (
            json!({"name": "k", "kind": "admin"}),
            "VALIDATION_ERROR",
            "/data/attributes/kind",
        ),
        (
            json!({"name": "k", "expires_at": "2020-01-01T00:00:00Z"}),
            "VALIDATION_ERROR",
            "/data/attributes/expires_at",
        ),
        (
            json!({"name": "k", "expires_at": in_seconds(-5)}),
            "VALIDATION_ERROR",
            "/data/attributes/expires_at",
        ),
        (
            json!({"name": "k", "expires_at": "tomorrow"}),
            "VALIDATION_ERROR",
            "/data/attributes/expires_at",
        ),
        (
            json!({"name": "k", "expires_at": 1_900_000_000}),
            "VALIDATION_ERROR",
            "/data/attributes/expires_at",
        ),
        (
            json!({"name": "k", "prefix": "tg_live_aaaaaaaa"}),
            "READ_ONLY_ATTRIBUTE",
            "/data/attributes/prefix",
        ),
        (
            json!({"name": "k", "status": "active"}),
            "READ_ONLY_ATTRIBUTE",
            "/data/attributes/status",
        ),
        (
            json!({"name": "k", "revoked_at": null}),
            "READ_ONLY_ATTRIBUTE",
            "/data/attributes/revoked_at",
        ),
        (
            json!({"name": "k", "last_used_at": null}),
            "READ_ONLY_ATTRIBUTE",
            "/data/attributes/last_used_at",
        ),
        (
            json!({"name": "k", "rotated_at": null}),
            "READ_ONLY_ATTRIBUTE",
            "/data/attributes/rotated_at",
        ),
        (
            json!({"name": "k", "key": "tg_live_x"}),
            "UNKNOWN_ATTRIBUTE",
            "/data/attributes/key",
        ),
        (
            json!({"name": "k", "scopes": ["read"]}),
            "UNKNOWN_ATTRIBUTE",
            "/data/attributes/scopes",
        ),
        (
            json!({"name": "k", "user_id": user}),
            "UNKNOWN_ATTRIBUTE",
            "/data/attributes/user_id",
        ),
    ] {
        let reply = post_key(&app, attrs.clone(), owner.clone()).await;
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
    // The owner is required for an admin caller.
    post_key(&app, json!({"name": "k"}), Value::Null)
        .await
        .expect_error(422, "VALIDATION_ERROR", Some("/data/relationships/user"));
    post_key(&app, json!({"name": "k"}), json!({"user": {"data": null}}))
        .await
        .expect_error(422, "VALIDATION_ERROR", Some("/data/relationships/user"));
    post_key(&app, json!({"name": "k"}), json!({"scope": {"data": null}}))
        .await
        .expect_error(
            422,
            "UNKNOWN_RELATIONSHIP",
            Some("/data/relationships/scope"),
        );
    // Linkage checks.
    let plan = app.get("/api/plans").await.body["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    post_key(
        &app,
        json!({"name": "k"}),
        json!({"user": link("plans", &plan)}),
    )
    .await
    .expect_error(409, "TYPE_MISMATCH", None);
    post_key(
        &app,
        json!({"name": "k"}),
        json!({"user": link("users", "usr_01JD0R0000000000000000000Z")}),
    )
    .await
    .expect_error(
        404,
        "RELATED_NOT_FOUND",
        Some("/data/relationships/user/data"),
    );
    post_key(
        &app,
        json!({"name": "k"}),
        json!({"user": link("users", &user), "group": link("groups", "grp_01JD0R0000000000000000000Z")}),
    )
    .await
    .expect_error(
        404,
        "RELATED_NOT_FOUND",
        Some("/data/relationships/group/data"),
    );
    let gone = app.create_user("gone@example.com").await;
    app.delete(&format!("/api/users/{gone}")).await.expect(204);
    post_key(
        &app,
        json!({"name": "k"}),
        json!({"user": link("users", &gone)}),
    )
    .await
    .expect_error(
        404,
        "RELATED_NOT_FOUND",
        Some("/data/relationships/user/data"),
    );
    post_key(
        &app,
        json!({"name": "k", "id": "key_x"}),
        json!({"user": link("users", &user)}),
    )
    .await
    .expect_error(422, "UNKNOWN_ATTRIBUTE", Some("/data/attributes/id"));
    let many = post_key(
        &app,
        json!({"kind": "nope", "bogus": 1, "prefix": "x", "expires_at": "2001-01-01T00:00:00Z"}),
        owner.clone(),
    )
    .await;
    assert_eq!(
        many.problems(),
        [
            ("VALIDATION_ERROR", "/data/attributes/kind"),
            ("UNKNOWN_ATTRIBUTE", "/data/attributes/bogus"),
            ("READ_ONLY_ATTRIBUTE", "/data/attributes/prefix"),
            ("VALIDATION_ERROR", "/data/attributes/expires_at"),
            ("VALIDATION_ERROR", "/data/attributes/name"),
        ]
        .iter()
        .map(|(c, p)| ((*c).to_owned(), (*p).to_owned()))
        .collect::<Vec<_>>(),
        "all 422 problems together: {}",
        many.body
    );
    // Nothing was written: only the bootstrap admin's key exists.
    assert_eq!(
        app.get("/api/api-keys").await.body["meta"]["total"],
        json!(1)
    );

    // Boundaries that are allowed.
    let edge = create_key(
        &app,
        &user,
        json!({"name": "n".repeat(100), "expires_at": in_seconds(3600), "kind": "live"}),
    )
    .await;
    assert_eq!(edge.attr("name"), &json!("n".repeat(100)));
    assert!(edge.attr("expires_at").as_str().unwrap().ends_with('Z'));
    assert_eq!(edge.attr("status"), &json!("active"));
    // Names are not unique.
    create_key(&app, &user, json!({"name": "n".repeat(100)})).await;
}

#[tokio::test]
async fn admin_keys_authenticate_until_revoked_or_their_owner_is_no_admin() {
    let app = spawn_app().await;
    let created = create_key(
        &app,
        &app.admin_id,
        json!({"name": "automation", "kind": "admin"}),
    )
    .await;
    let key = secret(&created);
    assert!(is_key(&key, "tg_admin_"), "{key}");
    assert_eq!(created.attr("kind"), &json!("admin"));
    assert_eq!(created.attr("prefix"), &json!(key[..16]));

    let as_new = call_with(&app, &key).await;
    as_new.expect(200);
    let via_header = app
        .send(
            app.client
                .get(app.url("/api/plans"))
                .header("X-API-Key", key.clone()),
        )
        .await;
    via_header.expect(200);
    // It acts as its owner: the owner still may not demote themself with it.
    let own = app
        .send(
            app.client
                .patch(app.url(&format!("/api/users/{}", app.admin_id)))
                .header("Authorization", format!("Bearer {key}"))
                .header("Content-Type", MT)
                .body(
                    json!({"data": {"type": "users", "id": app.admin_id, "attributes": {"role": "user"}}})
                        .to_string(),
                ),
        )
        .await;
    own.expect_error(409, "CANNOT_MODIFY_SELF", None);

    // A non-admin owner cannot hold one; the rule follows the owner's role.
    let user = app.create_user("ada@example.com").await;
    post_key(
        &app,
        json!({"name": "k", "kind": "admin"}),
        json!({"user": link("users", &user)}),
    )
    .await
    .expect_error(422, "VALIDATION_ERROR", Some("/data/attributes/kind"));
    let other_admin = admin_user(&app, "root@example.com").await;
    let other_key =
        secret(&create_key(&app, &other_admin, json!({"name": "k", "kind": "admin"})).await);
    call_with(&app, &other_key).await.expect(200);
    // Its owner stops being an active admin → 401; back → works again.
    app.patch_attributes("users", "users", &other_admin, json!({"role": "user"}))
        .await
        .expect(200);
    call_with(&app, &other_key)
        .await
        .expect_error(401, "UNAUTHORIZED", None);
    app.patch_attributes(
        "users",
        "users",
        &other_admin,
        json!({"role": "admin", "status": "suspended"}),
    )
    .await
    .expect(200);
    call_with(&app, &other_key)
        .await
        .expect_error(401, "UNAUTHORIZED", None);
    app.patch_attributes("users", "users", &other_admin, json!({"status": "active"}))
        .await
        .expect(200);
    call_with(&app, &other_key).await.expect(200);

    // Revoked → 401, and the revocation is visible.
    let id = created.id();
    revoke(&app, &id).await.expect(200);
    call_with(&app, &key)
        .await
        .expect_error(401, "UNAUTHORIZED", None);
    // Deleted → 401 too.
    let doomed = create_key(&app, &app.admin_id, json!({"name": "d", "kind": "admin"})).await;
    let doomed_key = secret(&doomed);
    call_with(&app, &doomed_key).await.expect(200);
    app.delete(&format!("/api/api-keys/{}", doomed.id()))
        .await
        .expect(204);
    call_with(&app, &doomed_key)
        .await
        .expect_error(401, "UNAUTHORIZED", None);
    // A malformed or unknown admin key is refused alike.
    call_with(&app, &format!("tg_admin_{}", "A".repeat(40)))
        .await
        .expect_error(401, "UNAUTHORIZED", None);
    call_with(&app, &key[..30])
        .await
        .expect_error(401, "UNAUTHORIZED", None);
}

#[tokio::test]
async fn patch_rules_create_only_and_read_only_members() {
    let app = spawn_app().await;
    let user = app.create_user("ada@example.com").await;
    let other = app.create_user("bob@example.com").await;
    let created = create_key(&app, &user, json!({"name": "k"})).await;
    let id = created.id();

    // Create-only `kind` and read-only attributes: same value accepted, another value refused.
    let same = app
        .patch_attributes(
            "api-keys",
            "api_keys",
            &id,
            json!({"kind": "live", "prefix": created.attr("prefix"), "revoked_at": null,
                   "last_used_at": null, "rotated_at": null, "created_at": created.attr("created_at")}),
        )
        .await;
    same.expect(200);
    assert_eq!(
        same.attr("updated_at"),
        created.attr("updated_at"),
        "no-op PATCH"
    );
    for (attrs, code, pointer) in [
        (
            json!({"kind": "admin"}),
            "READ_ONLY_ATTRIBUTE",
            "/data/attributes/kind",
        ),
        (
            json!({"prefix": "tg_live_00000000"}),
            "READ_ONLY_ATTRIBUTE",
            "/data/attributes/prefix",
        ),
        (
            json!({"status": "revoked"}),
            "READ_ONLY_ATTRIBUTE",
            "/data/attributes/status",
        ),
        (
            json!({"revoked_at": "2025-01-01T00:00:00Z"}),
            "READ_ONLY_ATTRIBUTE",
            "/data/attributes/revoked_at",
        ),
        (
            json!({"key": "x"}),
            "UNKNOWN_ATTRIBUTE",
            "/data/attributes/key",
        ),
        (
            json!({"name": ""}),
            "VALIDATION_ERROR",
            "/data/attributes/name",
        ),
        (
            json!({"name": null}),
            "VALIDATION_ERROR",
            "/data/attributes/name",
        ),
        (
            json!({"expires_at": "2020-01-01T00:00:00Z"}),
            "VALIDATION_ERROR",
            "/data/attributes/expires_at",
        ),
        (
            json!({"expires_at": "soon"}),
            "VALIDATION_ERROR",
            "/data/attributes/expires_at",
        ),
    ] {
        app.patch_attributes("api-keys", "api_keys", &id, attrs)
            .await
            .expect_error(422, code, Some(pointer));
    }
    let later = in_seconds(86_400);
    let expiring = app
        .patch_attributes("api-keys", "api_keys", &id, json!({"expires_at": later}))
        .await;
    expiring.expect(200);
    assert_eq!(
        Timestamp::parse_rfc3339(expiring.attr("expires_at").as_str().unwrap()),
        Timestamp::parse_rfc3339(&later)
    );
    assert_eq!(expiring.attr("name"), &json!("k"));
    assert_eq!(expiring.attr("status"), &json!("active"));
    let cleared = app
        .patch_attributes("api-keys", "api_keys", &id, json!({"expires_at": null}))
        .await;
    cleared.expect(200);
    assert_eq!(cleared.attr("expires_at"), &Value::Null);

    // The `user` relationship is create-only.
    let path = format!("/api/api-keys/{id}");
    app.patch(
        &path,
        json!({"data": {"type": "api_keys", "id": id, "relationships": {"user": link("users", &other)}}}),
    )
    .await
    .expect_error(403, "READ_ONLY_RELATIONSHIP", None);
    app.patch(
        &format!("/api/api-keys/{id}/relationships/user"),
        link("users", &other),
    )
    .await
    .expect_error(403, "READ_ONLY_RELATIONSHIP", None);
    let group = app
        .create(
            "groups",
            "groups",
            json!({"name": "Team"}),
            json!({"owner": link("users", &user)}),
        )
        .await
        .id();
    app.patch(
        &format!("/api/api-keys/{id}/relationships/group"),
        link("groups", &group),
    )
    .await
    .expect_error(403, "READ_ONLY_RELATIONSHIP", None);
    let unchanged_owner = app
        .patch(
            &path,
            json!({"data": {"type": "api_keys", "id": id, "attributes": {"name": "same owner"},
                "relationships": {"user": link("users", &user)}}}),
        )
        .await;
    unchanged_owner.expect(200);
    assert_eq!(unchanged_owner.attr("name"), &json!("same owner"));
    let linkage = app
        .get(&format!("/api/api-keys/{id}/relationships/user"))
        .await;
    linkage.expect(200);
    assert_eq!(linkage.body["data"], json!({"type": "users", "id": user}));
    let owner = app.get(&format!("/api/api-keys/{id}/user")).await;
    owner.expect(200);
    assert_eq!(owner.body["data"]["id"], json!(user));
    assert_eq!(owner.attr("email"), &json!("ada@example.com"));
    let with_user = app.get(&format!("/api/api-keys/{id}?include=user")).await;
    assert_eq!(with_user.body["included"][0]["id"], json!(user));
    assert!(
        !with_user.body.to_string().contains("password"),
        "{}",
        with_user.body
    );
}

#[tokio::test]
async fn patch_accepts_the_record_sent_back_whole() {
    // react-admin sends the record it read back on save; read-only values that equal what
    // the server shows (including the computed `status`) are accepted and ignored.
    let app = spawn_app().await;
    let user = app.create_user("ada@example.com").await;
    let created = create_key(&app, &user, json!({"name": "k"})).await;
    let id = created.id();
    let fetched = app.get(&format!("/api/api-keys/{id}")).await;
    let mut attributes = fetched.body["data"]["attributes"].clone();
    attributes["name"] = json!("renamed");
    let saved = app
        .patch_attributes("api-keys", "api_keys", &id, attributes)
        .await;
    saved.expect(200);
    assert_eq!(saved.attr("name"), &json!("renamed"));
    assert_eq!(saved.attr("status"), &json!("active"));
}

#[tokio::test]
async fn revoke_is_idempotent_and_final() {
    let app = spawn_app().await;
    let user = app.create_user("ada@example.com").await;
    let created = create_key(&app, &user, json!({"name": "k"})).await;
    let id = created.id();

    let first = revoke(&app, &id).await;
    first.expect(200);
    assert_eq!(first.header("content-type"), Some(MT));
    assert_eq!(first.body["data"]["id"], json!(id));
    assert_eq!(first.attr("status"), &json!("revoked"));
    let revoked_at = first.attr("revoked_at").clone();
    assert!(revoked_at.is_string(), "{}", first.body);
    assert_eq!(first.attr("name"), &json!("k"));
    assert_eq!(first.attr("prefix"), created.attr("prefix"));
    assert!(first.body["data"].get("meta").is_none());

    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = revoke(&app, &id).await;
    second.expect(200);
    assert_eq!(
        second.attr("revoked_at"),
        &revoked_at,
        "revoked_at unchanged"
    );
    assert_eq!(second.attr("updated_at"), first.attr("updated_at"));
    assert_eq!(second.attr("status"), &json!("revoked"));
    // With an (empty) JSON:API document body it works alike.
    let with_type = app
        .send(
            app.request(Method::POST, &format!("/api/api-keys/{id}/revoke"))
                .header("Content-Length", "0"),
        )
        .await;
    with_type.expect(200);
    assert_eq!(with_type.attr("revoked_at"), &revoked_at);

    let fetched = app.get(&format!("/api/api-keys/{id}")).await;
    assert_eq!(fetched.attr("status"), &json!("revoked"));
    assert_eq!(fetched.attr("revoked_at"), &revoked_at);

    // A revoked key cannot be changed any more ...
    for attrs in [
        json!({"name": "again"}),
        json!({"expires_at": in_seconds(3600)}),
        json!({"expires_at": null}),
    ] {
        app.patch_attributes("api-keys", "api_keys", &id, attrs)
            .await
            .expect_error(409, "KEY_REVOKED", None);
    }
    assert_eq!(
        app.get(&format!("/api/api-keys/{id}")).await.attr("name"),
        &json!("k")
    );
    // ... but it can still be deleted.
    app.delete(&format!("/api/api-keys/{id}")).await.expect(204);
    app.get(&format!("/api/api-keys/{id}"))
        .await
        .expect_error(404, "NOT_FOUND", None);

    let get_revoke = app
        .send(app.request(Method::GET, &format!("/api/api-keys/{id}/revoke")))
        .await;
    get_revoke.expect_error(405, "METHOD_NOT_ALLOWED", None);
    assert_eq!(get_revoke.header("allow"), Some("POST"));
}

#[tokio::test]
async fn expiry_drives_the_computed_status_and_its_filter() {
    let app = spawn_app().await;
    let user = app.create_user("ada@example.com").await;
    let soon = create_key(
        &app,
        &user,
        json!({"name": "soon", "expires_at": in_seconds(4)}),
    )
    .await
    .id();
    let forever = create_key(&app, &user, json!({"name": "forever"}))
        .await
        .id();
    let later = create_key(
        &app,
        &user,
        json!({"name": "later", "expires_at": in_seconds(3600)}),
    )
    .await
    .id();
    let gone = create_key(&app, &user, json!({"name": "gone"})).await.id();
    revoke(&app, &gone).await.expect(200);
    let admin_created = create_key(
        &app,
        &app.admin_id,
        json!({"name": "short admin", "kind": "admin", "expires_at": in_seconds(4)}),
    )
    .await;
    let admin_key = secret(&admin_created);
    call_with(&app, &admin_key).await.expect(200);

    assert_eq!(
        keys_with_status(&app, &user, "active").await,
        sorted(vec![soon.clone(), forever.clone(), later.clone()])
    );
    assert_eq!(
        keys_with_status(&app, &user, "revoked").await,
        vec![gone.clone()]
    );
    assert_eq!(
        keys_with_status(&app, &user, "expired").await,
        Vec::<String>::new()
    );

    // Wait until both short-lived keys have passed their expiry.
    let expiry = Timestamp::parse_rfc3339(admin_created.attr("expires_at").as_str().unwrap())
        .unwrap()
        .millis();
    let wait = expiry + 300 - Timestamp::now().millis();
    tokio::time::sleep(Duration::from_millis(wait.max(0) as u64)).await;
    let expired = app.get(&format!("/api/api-keys/{soon}")).await;
    assert_eq!(expired.attr("status"), &json!("expired"));
    assert_eq!(
        keys_with_status(&app, &user, "active").await,
        sorted(vec![forever.clone(), later.clone()])
    );
    assert_eq!(
        keys_with_status(&app, &user, "expired").await,
        vec![soon.clone()]
    );
    assert_eq!(
        keys_with_status(&app, &user, "expired,revoked").await,
        sorted(vec![soon.clone(), gone.clone()])
    );
    // Revocation wins over expiry.
    revoke(&app, &soon).await.expect(200);
    assert_eq!(
        app.get(&format!("/api/api-keys/{soon}"))
            .await
            .attr("status"),
        &json!("revoked")
    );
    assert_eq!(
        keys_with_status(&app, &user, "expired").await,
        Vec::<String>::new()
    );
    // An expired admin key no longer authenticates.
    call_with(&app, &admin_key)
        .await
        .expect_error(401, "UNAUTHORIZED", None);
    let reply = app.get("/api/api-keys?filter[status]=stale").await;
    reply.expect_error(400, "INVALID_FILTER", None);
    assert_eq!(reply.parameter(), "filter[status]");
}

#[tokio::test]
async fn filters_and_sorting() {
    let app = spawn_app().await;
    let ada = app.create_user("ada@example.com").await;
    let bob = admin_user(&app, "bob@example.com").await;
    let charlie = create_key(&app, &ada, json!({"name": "charlie"})).await;
    let alpha = create_key(&app, &ada, json!({"name": "Alpha"})).await;
    let bravo = create_key(&app, &bob, json!({"name": "bravo", "kind": "admin"})).await;
    let delta = create_key(&app, &bob, json!({"name": "delta"})).await;
    let bootstrap = app.get("/api/api-keys?filter[kind]=admin").await;

    let of_ada = app.get(&format!("/api/api-keys?filter[user]={ada}")).await;
    of_ada.expect(200);
    assert_eq!(sorted(ids(&of_ada)), sorted(vec![charlie.id(), alpha.id()]));
    let of_both = app
        .get(&format!("/api/api-keys?filter[user]={ada},{bob}"))
        .await;
    assert_eq!(of_both.body["meta"]["total"], json!(4));
    let admins = sorted(ids(&bootstrap));
    assert_eq!(admins.len(), 2, "the bootstrap key and bravo");
    assert!(admins.contains(&bravo.id()));
    let live = app
        .get(&format!(
            "/api/api-keys?filter[kind]=live&filter[user]={bob}"
        ))
        .await;
    assert_eq!(ids(&live), vec![delta.id()]);
    let prefix = alpha.attr("prefix").as_str().unwrap().to_owned();
    let by_prefix = app
        .get(&format!("/api/api-keys?filter[prefix]={prefix}"))
        .await;
    assert_eq!(ids(&by_prefix), vec![alpha.id()]);
    let by_q = app.get("/api/api-keys?filter[q]=ALP").await;
    assert_eq!(ids(&by_q), vec![alpha.id()]);

    let by_name = app
        .get(&format!("/api/api-keys?filter[user]={ada},{bob}&sort=name"))
        .await;
    let names: Vec<&str> = by_name.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["attributes"]["name"].as_str().unwrap())
        .collect();
    // (Upper- and lower-case orderings agree on these names.)
    assert_eq!(names, ["Alpha", "bravo", "charlie", "delta"]);
    let desc = app
        .get(&format!("/api/api-keys?filter[user]={bob}&sort=-name"))
        .await;
    assert_eq!(ids(&desc), vec![delta.id(), bravo.id()]);
    let asc = app
        .get(&format!("/api/api-keys?filter[user]={bob}&sort=name"))
        .await;
    assert_eq!(ids(&asc), vec![bravo.id(), delta.id()]);

    // Group keys: linkage set at creation, `filter[group]` (and `none`).
    let group = app
        .create(
            "groups",
            "groups",
            json!({"name": "Team"}),
            json!({"owner": link("users", &ada)}),
        )
        .await
        .id();
    let team_key = app
        .create(
            "api-keys",
            "api_keys",
            json!({"name": "team"}),
            json!({"user": link("users", &ada), "group": link("groups", &group)}),
        )
        .await;
    assert_eq!(
        team_key.body["data"]["relationships"]["group"]["data"],
        json!({"type": "groups", "id": group})
    );
    let of_group = app
        .get(&format!("/api/api-keys?filter[group]={group}"))
        .await;
    assert_eq!(ids(&of_group), vec![team_key.id()]);
    let ungrouped = app
        .get(&format!(
            "/api/api-keys?filter[user]={ada}&filter[group]=none"
        ))
        .await;
    assert_eq!(
        sorted(ids(&ungrouped)),
        sorted(vec![charlie.id(), alpha.id()])
    );

    for (query, code, parameter) in [
        ("filter[kind]=test", "INVALID_FILTER", "filter[kind]"),
        ("filter[name]=x", "INVALID_FILTER", "filter[name]"),
        ("filter[key]=x", "INVALID_FILTER", "filter[key]"),
        ("sort=kind", "INVALID_SORT", "sort"),
        ("sort=prefix", "INVALID_SORT", "sort"),
        ("sort=user", "INVALID_SORT", "sort"),
    ] {
        let reply = app.get(&format!("/api/api-keys?{query}")).await;
        reply.expect_error(400, code, None);
        assert_eq!(reply.parameter(), parameter, "{query}");
    }
}

#[tokio::test]
async fn at_most_one_hundred_unrevoked_keys_per_user() {
    let app = spawn_app().await;
    let user = app.create_user("ada@example.com").await;
    let mut first = String::new();
    for n in 0..100 {
        let id = create_key(&app, &user, json!({"name": format!("k{n}")}))
            .await
            .id();
        if n == 0 {
            first = id;
        }
    }
    post_key(
        &app,
        json!({"name": "one too many"}),
        json!({"user": link("users", &user)}),
    )
    .await
    .expect_error(409, "LIMIT_REACHED", None);
    // Other users are not affected.
    let other = app.create_user("bob@example.com").await;
    create_key(&app, &other, json!({"name": "fine"})).await;
    // Revoking one frees a slot.
    revoke(&app, &first).await.expect(200);
    create_key(&app, &user, json!({"name": "replacement"})).await;
    post_key(
        &app,
        json!({"name": "again too many"}),
        json!({"user": link("users", &user)}),
    )
    .await
    .expect_error(409, "LIMIT_REACHED", None);
}
