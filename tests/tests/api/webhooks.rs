//! `/api/webhooks`: CRUD, URL and event rules, the secret, read-only delivery state.

use serde_json::{Value, json};
use tollgate_tests::{Reply, TestApp, spawn_app, spawn_app_with};

const SECRET_32: &str = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

async fn post_webhook(app: &TestApp, attributes: Value) -> Reply {
    app.post(
        "/api/webhooks",
        json!({"data": {"type": "webhooks", "attributes": attributes}}),
    )
    .await
}

async fn create_webhook(app: &TestApp, attributes: Value) -> Reply {
    app.create("webhooks", "webhooks", attributes, Value::Null)
        .await
}

/// Attributes without the delivery counters: the dispatcher may already have tried to reach
/// the (unreachable) test URLs with events the setup emitted.
fn settled(attributes: &Value) -> Value {
    let mut attributes = attributes.clone();
    if let Some(map) = attributes.as_object_mut() {
        for name in ["consecutive_failures", "last_success_at", "last_failure_at"] {
            map.remove(name);
        }
    }
    attributes
}

fn ids(reply: &Reply) -> Vec<String> {
    reply.body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("collection expected: {}", reply.body))
        .iter()
        .map(|r| r["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Decodes standard, padded base64 (enough to check a secret's length).
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if text.is_empty() || !text.len().is_multiple_of(4) {
        return None;
    }
    let body = text.trim_end_matches('=');
    if text.len() - body.len() > 2 {
        return None;
    }
    let mut bits: u32 = 0;
    let mut count = 0;
    let mut out = Vec::new();
    for byte in body.bytes() {
        let value = ALPHABET.iter().position(|&a| a == byte)? as u32;
        bits = (bits << 6) | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    Some(out)
}

#[tokio::test]
async fn crud_happy_path() {
    let app = spawn_app().await;
    let created = create_webhook(
        &app,
        json!({
            "name": "  Billing  ",
            "description": "to billing",
            "url": "https://hooks.example.com/tollgate?src=1",
            "events": ["user.created", "api_key.*"]
        }),
    )
    .await;
    let id = created.id();
    assert!(id.starts_with("whk_") && id.len() == 30, "{id}");
    assert_eq!(
        created.header("location"),
        Some(format!("/api/webhooks/{id}").as_str())
    );
    assert_eq!(created.body["jsonapi"], json!({"version": "1.1"}));
    assert_eq!(created.body["data"]["type"], json!("webhooks"));
    let attrs = &created.body["data"]["attributes"];
    assert_eq!(attrs["name"], json!("Billing"), "trimmed");
    assert_eq!(attrs["description"], json!("to billing"));
    assert_eq!(
        attrs["url"],
        json!("https://hooks.example.com/tollgate?src=1")
    );
    assert_eq!(attrs["events"], json!(["user.created", "api_key.*"]));
    assert_eq!(attrs["enabled"], json!(true));
    assert_eq!(attrs["consecutive_failures"], json!(0));
    assert_eq!(attrs["last_success_at"], Value::Null);
    assert_eq!(attrs["last_failure_at"], Value::Null);
    assert_eq!(attrs["disabled_reason"], Value::Null);
    assert!(attrs["created_at"].is_string());
    assert!(attrs["updated_at"].is_string());
    assert!(
        attrs.get("secret").is_none(),
        "the secret is never an attribute: {attrs}"
    );
    assert_eq!(
        created.body["data"]["links"]["self"],
        json!(format!("/api/webhooks/{id}"))
    );
    let deliveries = &created.body["data"]["relationships"]["deliveries"];
    assert_eq!(
        deliveries["links"]["self"],
        json!(format!("/api/webhooks/{id}/relationships/deliveries"))
    );
    assert_eq!(
        deliveries["links"]["related"],
        json!(format!("/api/webhooks/{id}/deliveries"))
    );

    let fetched = app.get(&format!("/api/webhooks/{id}")).await;
    fetched.expect(200);
    assert_eq!(settled(&fetched.body["data"]["attributes"]), settled(attrs));

    let second = create_webhook(
        &app,
        json!({"url": "https://b.example.com/", "events": ["*"]}),
    )
    .await;
    assert_eq!(second.attr("name"), &json!(""), "name defaults to empty");
    assert_eq!(second.attr("description"), &json!(""));
    let list = app.get("/api/webhooks").await;
    list.expect(200);
    assert_eq!(list.body["meta"]["total"], json!(2));
    assert_eq!(ids(&list), vec![second.id(), id.clone()], "newest first");
    for item in list.body["data"].as_array().unwrap() {
        assert!(item["attributes"].get("secret").is_none());
        assert!(item.get("meta").is_none_or(|m| m.get("secret").is_none()));
    }

    let patched = app
        .patch_attributes("webhooks", "webhooks", &id, json!({"events": ["group.*"]}))
        .await;
    patched.expect(200);
    assert_eq!(patched.attr("events"), &json!(["group.*"]));
    assert_eq!(patched.attr("name"), &json!("Billing"));
    assert_eq!(patched.attr("description"), &json!("to billing"));
    assert_eq!(
        patched.attr("url"),
        &json!("https://hooks.example.com/tollgate?src=1")
    );
    assert_eq!(patched.attr("enabled"), &json!(true));
    assert_eq!(patched.attr("created_at"), created.attr("created_at"));
    assert_ne!(patched.attr("updated_at"), created.attr("updated_at"));
    assert!(
        patched.body["data"]
            .get("meta")
            .is_none_or(|m| m.get("secret").is_none()),
        "no secret on PATCH: {}",
        patched.body
    );
    let url = app
        .patch_attributes(
            "webhooks",
            "webhooks",
            &id,
            json!({"url": "http://other.example.com/in", "name": "Renamed"}),
        )
        .await;
    url.expect(200);
    assert_eq!(url.attr("url"), &json!("http://other.example.com/in"));
    assert_eq!(url.attr("name"), &json!("Renamed"));
    assert_eq!(url.attr("events"), &json!(["group.*"]));

    let deleted = app.delete(&format!("/api/webhooks/{id}")).await;
    deleted.expect(204);
    assert!(deleted.header("content-type").is_none());
    assert_eq!(deleted.body, Value::Null);
    app.get(&format!("/api/webhooks/{id}"))
        .await
        .expect_error(404, "NOT_FOUND", None);
    app.delete(&format!("/api/webhooks/{id}"))
        .await
        .expect_error(404, "NOT_FOUND", None);
    app.patch_attributes("webhooks", "webhooks", &id, json!({"name": "x"}))
        .await
        .expect_error(404, "NOT_FOUND", None);
    assert_eq!(
        app.get("/api/webhooks").await.body["meta"]["total"],
        json!(1)
    );
}

#[tokio::test]
async fn every_rule_reports_its_pointer() {
    let app = spawn_app().await;
    let ok_url = "https://hooks.example.com/x";
    for (attrs, pointer) in [
        (json!({"events": ["*"]}), "/data/attributes/url"),
        (json!({"url": "", "events": ["*"]}), "/data/attributes/url"),
        (
            json!({"url": null, "events": ["*"]}),
            "/data/attributes/url",
        ),
        (json!({"url": 5, "events": ["*"]}), "/data/attributes/url"),
        (
            json!({"url": "hooks.example.com/x", "events": ["*"]}),
            "/data/attributes/url",
        ),
        (
            json!({"url": "/relative", "events": ["*"]}),
            "/data/attributes/url",
        ),
        (
            json!({"url": "ftp://hooks.example.com/x", "events": ["*"]}),
            "/data/attributes/url",
        ),
        (
            json!({"url": "ws://hooks.example.com/x", "events": ["*"]}),
            "/data/attributes/url",
        ),
        (
            json!({"url": "https://user:pass@hooks.example.com/x", "events": ["*"]}),
            "/data/attributes/url",
        ),
        (
            json!({"url": "https://user@hooks.example.com/x", "events": ["*"]}),
            "/data/attributes/url",
        ),
        (
            json!({"url": format!("https://hooks.example.com/{}", "x".repeat(2030)), "events": ["*"]}),
            "/data/attributes/url",
        ),
        (json!({"url": ok_url}), "/data/attributes/events"),
        (
            json!({"url": ok_url, "events": []}),
            "/data/attributes/events",
        ),
        (
            json!({"url": ok_url, "events": null}),
            "/data/attributes/events",
        ),
        (
            json!({"url": ok_url, "events": "*"}),
            "/data/attributes/events",
        ),
        (
            json!({"url": ok_url, "events": [1]}),
            "/data/attributes/events",
        ),
        (
            json!({"url": ok_url, "events": ["user.exploded"]}),
            "/data/attributes/events",
        ),
        (
            json!({"url": ok_url, "events": ["user.created", "nothing.*"]}),
            "/data/attributes/events",
        ),
        (
            json!({"url": ok_url, "events": ["user"]}),
            "/data/attributes/events",
        ),
        (
            json!({"url": ok_url, "events": ["USER.CREATED"]}),
            "/data/attributes/events",
        ),
        (
            json!({"url": ok_url, "events": ["*.created"]}),
            "/data/attributes/events",
        ),
        (
            json!({"url": ok_url, "events": vec!["user.created"; 51]}),
            "/data/attributes/events",
        ),
        (
            json!({"url": ok_url, "events": ["*"], "name": "x".repeat(101)}),
            "/data/attributes/name",
        ),
        (
            json!({"url": ok_url, "events": ["*"], "name": 3}),
            "/data/attributes/name",
        ),
        (
            json!({"url": ok_url, "events": ["*"], "description": "x".repeat(1001)}),
            "/data/attributes/description",
        ),
        (
            json!({"url": ok_url, "events": ["*"], "enabled": "yes"}),
            "/data/attributes/enabled",
        ),
        (
            json!({"url": ok_url, "events": ["*"], "enabled": null}),
            "/data/attributes/enabled",
        ),
        (
            json!({"url": ok_url, "events": ["*"], "secret": "not-a-secret"}),
            "/data/attributes/secret",
        ),
        (
            json!({"url": ok_url, "events": ["*"], "secret": "whsec_short"}),
            "/data/attributes/secret",
        ),
        (
            // 16 bytes: too short.
            json!({"url": ok_url, "events": ["*"], "secret": "whsec_MDEyMzQ1Njc4OWFiY2RlZg=="}),
            "/data/attributes/secret",
        ),
        (
            // 65 bytes: too long.
            json!({"url": ok_url, "events": ["*"], "secret": format!("whsec_{}", "QUFB".repeat(21) + "QUE=")}),
            "/data/attributes/secret",
        ),
        (
            // Not base64.
            json!({"url": ok_url, "events": ["*"], "secret": "whsec_!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"}),
            "/data/attributes/secret",
        ),
        (
            json!({"url": ok_url, "events": ["*"], "secret": 42}),
            "/data/attributes/secret",
        ),
    ] {
        let reply = post_webhook(&app, attrs.clone()).await;
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
    assert_eq!(
        app.get("/api/webhooks").await.body["meta"]["total"],
        json!(0),
        "nothing written by rejected requests"
    );

    // Boundaries that are accepted.
    let max = create_webhook(
        &app,
        json!({
            "url": format!("https://hooks.example.com/{}", "x".repeat(2048 - 26)),
            "events": vec!["user.created"; 50],
            "name": "n".repeat(100),
            "description": "d".repeat(1000),
        }),
    )
    .await;
    assert_eq!(
        max.attr("url").as_str().unwrap().chars().count(),
        2048,
        "2048 characters is allowed"
    );
    assert_eq!(max.attr("events").as_array().unwrap().len(), 50);
}

#[tokio::test]
async fn event_catalogue_and_patterns() {
    let app = spawn_app().await;
    // Every catalogue entry of webhooks.md §1 (webhook.test is implicit, never subscribed to).
    let catalogue = [
        "user.created",
        "user.updated",
        "user.deleted",
        "plan.created",
        "plan.updated",
        "plan.deleted",
        "api_key.created",
        "api_key.updated",
        "api_key.deleted",
        "api_key.revoked",
        "api_key.rotated",
        "route.created",
        "route.updated",
        "route.deleted",
        "upstream.created",
        "upstream.updated",
        "upstream.deleted",
        "group.created",
        "group.updated",
        "group.deleted",
        "group.member_added",
        "group.member_removed",
        "webhook.created",
        "webhook.updated",
        "webhook.deleted",
        "webhook.secret_rotated",
        "webhook.disabled",
        "usage.threshold",
        "usage.limit",
    ];
    let all = create_webhook(
        &app,
        json!({"url": "https://a.example.com/", "events": catalogue}),
    )
    .await;
    assert_eq!(all.attr("events"), &json!(catalogue));
    let prefixes = [
        "*",
        "user.*",
        "plan.*",
        "api_key.*",
        "route.*",
        "upstream.*",
        "group.*",
        "webhook.*",
        "usage.*",
    ];
    let wild = create_webhook(
        &app,
        json!({"url": "https://b.example.com/", "events": prefixes}),
    )
    .await;
    assert_eq!(wild.attr("events"), &json!(prefixes));
    let bad = post_webhook(
        &app,
        json!({"url": "https://c.example.com/", "events": ["user.created", "bogus.*", "plan.exploded"]}),
    )
    .await;
    bad.expect(422);
    assert!(
        bad.problems()
            .iter()
            .all(|(c, p)| c == "VALIDATION_ERROR" && p == "/data/attributes/events"),
        "{}",
        bad.body
    );
    // Patch keeps validating events.
    let id = wild.id();
    app.patch_attributes("webhooks", "webhooks", &id, json!({"events": []}))
        .await
        .expect_error(422, "VALIDATION_ERROR", Some("/data/attributes/events"));
    app.patch_attributes("webhooks", "webhooks", &id, json!({"events": ["nope"]}))
        .await
        .expect_error(422, "VALIDATION_ERROR", Some("/data/attributes/events"));
    app.patch_attributes("webhooks", "webhooks", &id, json!({"events": null}))
        .await
        .expect_error(422, "VALIDATION_ERROR", Some("/data/attributes/events"));
    assert_eq!(
        app.get(&format!("/api/webhooks/{id}")).await.attr("events"),
        &json!(prefixes)
    );
}

#[tokio::test]
async fn private_addresses_are_refused_unless_allowed() {
    let app = spawn_app_with(|c| c.webhook_allow_private = false).await;
    for url in [
        "http://127.0.0.1/x",
        "http://localhost/x",
        "http://LOCALHOST:8080/x",
        "http://10.0.0.1/x",
        "http://172.16.5.4/x",
        "http://192.168.1.1/x",
        "http://169.254.169.254/latest/meta-data",
        "http://0.0.0.0/x",
        "http://[::1]/x",
        "http://[fe80::1]/x",
        "http://[fd00::1]/x",
        "https://224.0.0.1/x",
        // Other spellings of loopback.
        "http://[::ffff:127.0.0.1]/x",
        "http://2130706433/x",
        "http://127.1/x",
        "http://sub.localhost/x",
    ] {
        let reply = post_webhook(&app, json!({"url": url, "events": ["*"]})).await;
        reply.expect_error(422, "WEBHOOK_URL_FORBIDDEN", Some("/data/attributes/url"));
    }
    assert_eq!(
        app.get("/api/webhooks").await.body["meta"]["total"],
        json!(0)
    );
    // Public destinations are fine; PATCH to a private one is refused too.
    let public = create_webhook(
        &app,
        json!({"url": "https://93.184.216.34/hook", "events": ["*"]}),
    )
    .await;
    let id = public.id();
    app.patch_attributes(
        "webhooks",
        "webhooks",
        &id,
        json!({"url": "http://10.0.0.1/x"}),
    )
    .await
    .expect_error(422, "WEBHOOK_URL_FORBIDDEN", Some("/data/attributes/url"));
    assert_eq!(
        app.get(&format!("/api/webhooks/{id}")).await.attr("url"),
        &json!("https://93.184.216.34/hook")
    );
    // Collected with other 422s of the same request.
    let both = post_webhook(&app, json!({"url": "http://127.0.0.1/x", "events": []})).await;
    both.expect(422);
    let problems = both.problems();
    assert!(problems.contains(&(
        "WEBHOOK_URL_FORBIDDEN".to_owned(),
        "/data/attributes/url".to_owned()
    )));
    assert!(problems.contains(&(
        "VALIDATION_ERROR".to_owned(),
        "/data/attributes/events".to_owned()
    )));

    // With private addresses allowed (the test default) the same URLs are accepted.
    let open = spawn_app().await;
    for url in [
        "http://127.0.0.1/x",
        "http://localhost/x",
        "http://10.0.0.1/x",
    ] {
        let created = create_webhook(&open, json!({"url": url, "events": ["*"]})).await;
        assert_eq!(created.attr("url"), &json!(url));
    }
}

#[tokio::test]
async fn generated_secret_is_shown_once() {
    let app = spawn_app().await;
    let created = create_webhook(
        &app,
        json!({"url": "https://a.example.com/", "events": ["*"]}),
    )
    .await;
    let secret = created.body["data"]["meta"]["secret"]
        .as_str()
        .unwrap_or_else(|| panic!("data.meta.secret: {}", created.body))
        .to_owned();
    let encoded = secret
        .strip_prefix("whsec_")
        .unwrap_or_else(|| panic!("whsec_ prefix: {secret}"));
    assert_eq!(
        base64_decode(encoded).map(|b| b.len()),
        Some(32),
        "base64 of 32 bytes: {secret}"
    );
    assert!(created.attr("secret").is_null());
    let id = created.id();
    let fetched = app.get(&format!("/api/webhooks/{id}")).await;
    fetched.expect(200);
    assert!(
        !fetched.body.to_string().contains(encoded),
        "never on GET: {}",
        fetched.body
    );
    let listed = app.get("/api/webhooks").await;
    assert!(!listed.body.to_string().contains(encoded));
    let patched = app
        .patch_attributes("webhooks", "webhooks", &id, json!({"name": "n"}))
        .await;
    patched.expect(200);
    assert!(!patched.body.to_string().contains(encoded));
    // Every webhook gets its own secret.
    let other = create_webhook(
        &app,
        json!({"url": "https://b.example.com/", "events": ["*"]}),
    )
    .await;
    let other_secret = other.body["data"]["meta"]["secret"].as_str().unwrap();
    assert!(other_secret.starts_with("whsec_"));
    assert_ne!(other_secret, secret);
}

#[tokio::test]
async fn client_secret_is_used() {
    let app = spawn_app().await;
    // The worked example's 24-byte secret and a 32-byte one are both valid.
    for secret in ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", SECRET_32] {
        let created = create_webhook(
            &app,
            json!({"url": "https://a.example.com/", "events": ["*"], "secret": secret}),
        )
        .await;
        assert_eq!(created.body["data"]["meta"]["secret"], json!(secret));
        assert!(created.attr("secret").is_null(), "write-only");
        let fetched = app.get(&format!("/api/webhooks/{}", created.id())).await;
        assert!(!fetched.body.to_string().contains(secret));
    }
    // 64 bytes is the upper bound.
    let max = format!("whsec_{}", "QUFB".repeat(21) + "QQ==");
    assert_eq!(base64_decode(&max[6..]).map(|b| b.len()), Some(64));
    let created = create_webhook(
        &app,
        json!({"url": "https://a.example.com/", "events": ["*"], "secret": max}),
    )
    .await;
    assert_eq!(created.body["data"]["meta"]["secret"], json!(max));
}

#[tokio::test]
async fn read_only_attributes() {
    let app = spawn_app().await;
    let created = create_webhook(
        &app,
        // Nothing the test does emits usage events: the counters stay as created.
        json!({"url": "https://a.example.com/", "events": ["usage.*"], "secret": SECRET_32}),
    )
    .await;
    let id = created.id();
    // secret is create-only and write-only: any value in PATCH is refused, even the same one.
    for secret in [
        json!(SECRET_32),
        json!("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
    ] {
        app.patch_attributes("webhooks", "webhooks", &id, json!({ "secret": secret }))
            .await
            .expect_error(422, "READ_ONLY_ATTRIBUTE", Some("/data/attributes/secret"));
    }
    for (attr, value) in [
        ("consecutive_failures", json!(5)),
        ("disabled_reason", json!("too_many_failures")),
        ("last_success_at", json!("2020-01-01T00:00:00Z")),
        ("last_failure_at", json!("2020-01-01T00:00:00Z")),
        ("created_at", json!("2020-01-01T00:00:00Z")),
    ] {
        app.patch_attributes("webhooks", "webhooks", &id, json!({ attr: value.clone() }))
            .await
            .expect_error(
                422,
                "READ_ONLY_ATTRIBUTE",
                Some(&format!("/data/attributes/{attr}")),
            );
        let create = post_webhook(
            &app,
            json!({"url": "https://b.example.com/", "events": ["*"], attr: value}),
        )
        .await;
        create.expect_error(
            422,
            "READ_ONLY_ATTRIBUTE",
            Some(&format!("/data/attributes/{attr}")),
        );
    }
    // The stored value is accepted and ignored (react-admin sends the record back).
    let same = app
        .patch_attributes(
            "webhooks",
            "webhooks",
            &id,
            json!({"consecutive_failures": 0, "disabled_reason": null, "last_success_at": null}),
        )
        .await;
    same.expect(200);
    assert_eq!(same.attr("updated_at"), created.attr("updated_at"));
    // Unknown attributes never are; all problems collected in document order.
    let many = app
        .patch_attributes(
            "webhooks",
            "webhooks",
            &id,
            json!({"bogus": 1, "consecutive_failures": 3, "id": id, "url": "ftp://x"}),
        )
        .await;
    many.expect(422);
    assert_eq!(
        many.problems(),
        vec![
            (
                "UNKNOWN_ATTRIBUTE".to_owned(),
                "/data/attributes/bogus".to_owned()
            ),
            (
                "READ_ONLY_ATTRIBUTE".to_owned(),
                "/data/attributes/consecutive_failures".to_owned()
            ),
            (
                "UNKNOWN_ATTRIBUTE".to_owned(),
                "/data/attributes/id".to_owned()
            ),
            (
                "VALIDATION_ERROR".to_owned(),
                "/data/attributes/url".to_owned()
            ),
        ]
    );
    // Non-nullable attributes cannot be cleared.
    for attr in ["url", "name", "description", "enabled"] {
        app.patch_attributes("webhooks", "webhooks", &id, json!({ attr: null }))
            .await
            .expect_error(
                422,
                "VALIDATION_ERROR",
                Some(&format!("/data/attributes/{attr}")),
            );
    }
    // Bad url forms in PATCH.
    for url in [
        "ftp://a.example.com/",
        "https://u:p@a.example.com/",
        "not a url",
    ] {
        app.patch_attributes("webhooks", "webhooks", &id, json!({ "url": url }))
            .await
            .expect_error(422, "VALIDATION_ERROR", Some("/data/attributes/url"));
    }
    let after = app.get(&format!("/api/webhooks/{id}")).await;
    assert_eq!(
        after.body["data"]["attributes"], created.body["data"]["attributes"],
        "rejected PATCHes change nothing"
    );
    // The deliveries relationship is read-only.
    let rel = app
        .patch(
            &format!("/api/webhooks/{id}"),
            json!({"data": {"type": "webhooks", "id": id, "relationships": {"deliveries": {"data": []}}}}),
        )
        .await;
    rel.expect_error(403, "READ_ONLY_RELATIONSHIP", None);
    let unknown_rel = app
        .post(
            "/api/webhooks",
            json!({"data": {"type": "webhooks", "attributes": {"url": "https://b.example.com/", "events": ["*"]},
                "relationships": {"owner": {"data": null}}}}),
        )
        .await;
    unknown_rel.expect_error(
        422,
        "UNKNOWN_RELATIONSHIP",
        Some("/data/relationships/owner"),
    );
}

#[tokio::test]
async fn disabling_and_re_enabling() {
    let app = spawn_app().await;
    let created = create_webhook(
        &app,
        json!({"url": "https://a.example.com/", "events": ["*"], "enabled": false}),
    )
    .await;
    assert_eq!(created.attr("enabled"), &json!(false));
    let id = created.id();
    let enabled = app
        .patch_attributes("webhooks", "webhooks", &id, json!({"enabled": true}))
        .await;
    enabled.expect(200);
    assert_eq!(enabled.attr("enabled"), &json!(true));
    assert_eq!(enabled.attr("consecutive_failures"), &json!(0));
    assert_eq!(enabled.attr("disabled_reason"), &Value::Null);
    let disabled = app
        .patch_attributes("webhooks", "webhooks", &id, json!({"enabled": false}))
        .await;
    disabled.expect(200);
    assert_eq!(disabled.attr("enabled"), &json!(false));
    assert_eq!(
        disabled.attr("disabled_reason"),
        &Value::Null,
        "a manual disable is not too_many_failures"
    );
    let again = app
        .patch_attributes("webhooks", "webhooks", &id, json!({"enabled": true}))
        .await;
    again.expect(200);
    assert_eq!(again.attr("enabled"), &json!(true));
    assert_eq!(again.attr("consecutive_failures"), &json!(0));
    assert_eq!(again.attr("disabled_reason"), &Value::Null);
    let fetched = app.get(&format!("/api/webhooks/{id}")).await;
    assert_eq!(
        settled(&fetched.body["data"]["attributes"]),
        settled(&again.body["data"]["attributes"])
    );
}

#[tokio::test]
async fn filters_and_sorts() {
    let app = spawn_app().await;
    let bravo = create_webhook(
        &app,
        json!({"name": "Bravo", "url": "https://a.example.com/", "events": ["*"]}),
    )
    .await
    .id();
    let alpha = create_webhook(
        &app,
        json!({"name": "Alpha", "url": "https://b.example.com/", "events": ["*"], "enabled": false}),
    )
    .await
    .id();
    let charlie = create_webhook(
        &app,
        json!({"name": "Charlie", "url": "https://c.example.com/", "events": ["user.*"]}),
    )
    .await
    .id();
    let on = app.get("/api/webhooks?filter[enabled]=true").await;
    on.expect(200);
    assert_eq!(on.body["meta"]["total"], json!(2));
    let mut on_ids = ids(&on);
    on_ids.sort();
    let mut want = vec![bravo.clone(), charlie.clone()];
    want.sort();
    assert_eq!(on_ids, want);
    let off = app.get("/api/webhooks?filter[enabled]=false").await;
    assert_eq!(ids(&off), vec![alpha.clone()]);
    let q = app.get("/api/webhooks?filter[q]=ALPH").await;
    assert_eq!(ids(&q), vec![alpha.clone()]);
    let by_id = app
        .get(&format!("/api/webhooks?filter[id]={bravo}&sort=name"))
        .await;
    assert_eq!(ids(&by_id), vec![bravo.clone()]);

    let by_name = app.get("/api/webhooks?sort=name").await;
    by_name.expect(200);
    let names: Vec<String> = by_name.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["attributes"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, vec!["Alpha", "Bravo", "Charlie"]);
    let desc = app.get("/api/webhooks?sort=-name").await;
    assert_eq!(desc.body["data"][0]["id"], json!(charlie));
    assert_eq!(desc.body["data"][2]["id"], json!(alpha));
    let oldest = app.get("/api/webhooks?sort=created_at").await;
    assert_eq!(
        ids(&oldest),
        vec![bravo.clone(), alpha.clone(), charlie.clone()]
    );
    let paged = app
        .get("/api/webhooks?sort=created_at&page[size]=2&page[number]=2")
        .await;
    assert_eq!(ids(&paged), vec![charlie]);
    assert_eq!(paged.body["meta"]["pages"], json!(2));
}

#[tokio::test]
async fn bad_query_parameters() {
    let app = spawn_app().await;
    let id = create_webhook(
        &app,
        json!({"url": "https://a.example.com/", "events": ["*"]}),
    )
    .await
    .id();
    for (query, code, parameter) in [
        ("sort=url", "INVALID_SORT", "sort"),
        ("sort=events", "INVALID_SORT", "sort"),
        ("sort=consecutive_failures", "INVALID_SORT", "sort"),
        ("sort=secret", "INVALID_SORT", "sort"),
        ("filter[enabled]=yes", "INVALID_FILTER", "filter[enabled]"),
        (
            "filter[url]=https://a.example.com/",
            "INVALID_FILTER",
            "filter[url]",
        ),
        ("filter[events]=*", "INVALID_FILTER", "filter[events]"),
        ("filter[bogus]=1", "INVALID_FILTER", "filter[bogus]"),
        ("include=owner", "INVALID_INCLUDE", "include"),
        ("include=deliveries.bogus", "INVALID_INCLUDE", "include"),
        (
            "fields[webhooks]=secret",
            "INVALID_FIELDS",
            "fields[webhooks]",
        ),
        ("page[number]=0", "INVALID_PAGE_PARAMETER", "page[number]"),
        ("Sort=name", "INVALID_QUERY_PARAMETER", "Sort"),
    ] {
        let reply = app.get(&format!("/api/webhooks?{query}")).await;
        reply.expect_error(400, code, None);
        assert_eq!(reply.parameter(), parameter, "{query}: {}", reply.body);
    }
    let single = app
        .get(&format!("/api/webhooks/{id}?filter[enabled]=true"))
        .await;
    single.expect_error(400, "INVALID_QUERY_PARAMETER", None);
    assert_eq!(single.parameter(), "filter[enabled]");
    let sparse = app
        .get(&format!("/api/webhooks/{id}?fields[webhooks]=url,enabled"))
        .await;
    sparse.expect(200);
    assert_eq!(
        sparse.body["data"]["attributes"],
        json!({"url": "https://a.example.com/", "enabled": true})
    );
    let create_with_sort = app
        .post(
            "/api/webhooks?sort=name",
            json!({"data": {"type": "webhooks", "attributes": {"url": "https://a.example.com/", "events": ["*"]}}}),
        )
        .await;
    create_with_sort.expect_error(400, "INVALID_QUERY_PARAMETER", None);
    assert_eq!(create_with_sort.parameter(), "sort");
}

#[tokio::test]
async fn unknown_ids_and_documents() {
    let app = spawn_app().await;
    for path in [
        "/api/webhooks/whk_01JD0Q3W6Y8ZK2X4V5B7N9M1C3",
        "/api/webhooks/nonsense",
        "/api/webhooks/grp_01JD0Q3W6Y8ZK2X4V5B7N9M1C3",
    ] {
        app.get(path).await.expect_error(404, "NOT_FOUND", None);
        app.delete(path).await.expect_error(404, "NOT_FOUND", None);
    }
    app.patch_attributes(
        "webhooks",
        "webhooks",
        "whk_01JD0Q3W6Y8ZK2X4V5B7N9M1C3",
        json!({"name": "x"}),
    )
    .await
    .expect_error(404, "NOT_FOUND", None);
    app.post(
        "/api/webhooks",
        json!({"data": {"type": "groups", "attributes": {"url": "https://a.example.com/", "events": ["*"]}}}),
    )
    .await
    .expect_error(409, "TYPE_MISMATCH", Some("/data/type"));
    app.post(
        "/api/webhooks",
        json!({"data": {"type": "webhooks", "id": "whk_01JD0Q3W6Y8ZK2X4V5B7N9M1C3", "attributes": {"url": "https://a.example.com/", "events": ["*"]}}}),
    )
    .await
    .expect_error(403, "CLIENT_ID_NOT_ALLOWED", Some("/data/id"));
    let put = app
        .write(
            reqwest::Method::PUT,
            "/api/webhooks/whk_01JD0Q3W6Y8ZK2X4V5B7N9M1C3",
            json!({}),
        )
        .await;
    put.expect_error(405, "METHOD_NOT_ALLOWED", None);
    assert_eq!(put.header("allow"), Some("GET, PATCH, DELETE"));
}

#[tokio::test]
async fn urls_are_stored_as_given_and_names_are_not_unique() {
    let app = spawn_app().await;
    let first = create_webhook(
        &app,
        json!({"name": "Same", "url": "https://a.example.com/in", "events": ["*"]}),
    )
    .await;
    let second = create_webhook(
        &app,
        json!({"name": "Same", "url": "https://a.example.com/in", "events": ["*"]}),
    )
    .await;
    assert_ne!(first.id(), second.id());
    assert_eq!(
        app.get("/api/webhooks").await.body["meta"]["total"],
        json!(2)
    );
    let trimmed = create_webhook(
        &app,
        json!({"url": "  https://a.example.com/x  ", "events": [" user.created "]}),
    )
    .await;
    assert_eq!(trimmed.attr("url"), &json!("https://a.example.com/x"));
    assert_eq!(trimmed.attr("events"), &json!(["user.created"]));
}
