//! `/api/plans`.

use serde_json::{Value, json};
use tollgate_tests::{link, spawn_app};

#[tokio::test]
async fn crud_happy_path() {
    let app = spawn_app().await;
    let created = app
        .create(
            "plans",
            "plans",
            json!({"name": "Pro", "rate_limit_per_minute": 600, "description": "  For teams  "}),
            Value::Null,
        )
        .await;
    let id = created.id();
    assert!(id.starts_with("pln_") && id.len() == 30, "{id}");
    assert_eq!(
        created.header("location"),
        Some(format!("/api/plans/{id}").as_str())
    );
    assert_eq!(created.body["jsonapi"], json!({"version": "1.1"}));
    let attrs = &created.body["data"]["attributes"];
    assert_eq!(
        attrs["description"],
        json!("For teams"),
        "strings are trimmed"
    );
    assert_eq!(attrs["requests_per_month"], json!(-1));
    assert_eq!(attrs["currency"], json!("USD"));
    assert_eq!(attrs["enabled"], json!(true));
    assert_eq!(attrs["is_default"], json!(false));
    assert_eq!(
        created.body["data"]["links"]["self"],
        json!(format!("/api/plans/{id}"))
    );

    let fetched = app.get(&format!("/api/plans/{id}")).await;
    fetched.expect(200);
    assert_eq!(
        fetched.body["data"]["attributes"],
        created.body["data"]["attributes"]
    );

    let patched = app
        .patch_attributes("plans", "plans", &id, json!({"price_monthly": 4900}))
        .await;
    patched.expect(200);
    assert_eq!(patched.attr("price_monthly"), &json!(4900));
    assert_eq!(patched.attr("name"), &json!("Pro"));
    assert_eq!(patched.attr("rate_limit_per_minute"), &json!(600));
    assert_ne!(patched.attr("updated_at"), created.attr("updated_at"));

    let list = app.get("/api/plans?filter[q]=pro").await;
    assert_eq!(list.body["data"][0]["id"], json!(id));

    let deleted = app.delete(&format!("/api/plans/{id}")).await;
    deleted.expect(204);
    assert!(deleted.header("content-type").is_none());
    app.get(&format!("/api/plans/{id}"))
        .await
        .expect_error(404, "NOT_FOUND", None);
    app.delete(&format!("/api/plans/{id}"))
        .await
        .expect_error(404, "NOT_FOUND", None);
}

#[tokio::test]
async fn every_rule_reports_its_pointer() {
    let app = spawn_app().await;
    for (attrs, pointer) in [
        (json!({}), "/data/attributes/name"),
        (json!({"name": ""}), "/data/attributes/name"),
        (json!({"name": "x".repeat(101)}), "/data/attributes/name"),
        (json!({"name": 5}), "/data/attributes/name"),
        (
            json!({"name": "A", "description": "x".repeat(1001)}),
            "/data/attributes/description",
        ),
        (
            json!({"name": "A", "rate_limit_per_minute": -1}),
            "/data/attributes/rate_limit_per_minute",
        ),
        (
            json!({"name": "A", "rate_limit_per_minute": 1_000_001}),
            "/data/attributes/rate_limit_per_minute",
        ),
        (
            json!({"name": "A", "rate_limit_per_minute": 1.5}),
            "/data/attributes/rate_limit_per_minute",
        ),
        (
            json!({"name": "A", "requests_per_month": -2}),
            "/data/attributes/requests_per_month",
        ),
        (
            json!({"name": "A", "price_monthly": -1}),
            "/data/attributes/price_monthly",
        ),
        (
            json!({"name": "A", "currency": "usd"}),
            "/data/attributes/currency",
        ),
        (
            json!({"name": "A", "currency": "EURO"}),
            "/data/attributes/currency",
        ),
        (
            json!({"name": "A", "overage_price": -5}),
            "/data/attributes/overage_price",
        ),
        (
            json!({"name": "A", "trial_days": 366}),
            "/data/attributes/trial_days",
        ),
        (
            json!({"name": "A", "stripe_price_id": "x".repeat(256)}),
            "/data/attributes/stripe_price_id",
        ),
        (
            json!({"name": "A", "enabled": "yes"}),
            "/data/attributes/enabled",
        ),
        (
            json!({"name": "A", "is_default": true, "enabled": false}),
            "/data/attributes/enabled",
        ),
        (json!({"name": "A", "name_x": 1}), "/data/attributes/name_x"),
        (json!({"name": "A", "id": "pln_x"}), "/data/attributes/id"),
    ] {
        let reply = app
            .post(
                "/api/plans",
                json!({"data": {"type": "plans", "attributes": attrs}}),
            )
            .await;
        reply.expect(422);
        assert!(
            reply.problems().iter().any(|(_, p)| p == pointer),
            "{attrs} should point at {pointer}: {}",
            reply.body
        );
    }
    let many = app
        .post("/api/plans", json!({"data": {"type": "plans", "attributes": {"bogus": 1, "created_at": "2020-01-01T00:00:00Z", "trial_days": -1}}}))
        .await;
    assert_eq!(
        many.problems(),
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
                "/data/attributes/trial_days".to_owned()
            ),
            (
                "VALIDATION_ERROR".to_owned(),
                "/data/attributes/name".to_owned()
            ),
        ],
        "all problems, in document order"
    );
    let unknown_rel = app
        .post("/api/plans", json!({"data": {"type": "plans", "attributes": {"name": "A"}, "relationships": {"owner": {"data": null}}}}))
        .await;
    unknown_rel.expect_error(
        422,
        "UNKNOWN_RELATIONSHIP",
        Some("/data/relationships/owner"),
    );
    let read_only_rel = app
        .post("/api/plans", json!({"data": {"type": "plans", "attributes": {"name": "A"}, "relationships": {"users": {"data": []}}}}))
        .await;
    read_only_rel.expect_error(403, "READ_ONLY_RELATIONSHIP", None);
    // Nothing was written by the rejected requests.
    assert_eq!(app.get("/api/plans").await.body["meta"]["total"], json!(1));
}

#[tokio::test]
async fn names_are_unique_case_insensitively_among_live_plans() {
    let app = spawn_app().await;
    let id = app.create_plan("Pro").await;
    let duplicate = app
        .post(
            "/api/plans",
            json!({"data": {"type": "plans", "attributes": {"name": "PRO"}}}),
        )
        .await;
    duplicate.expect_error(409, "CONFLICT", Some("/data/attributes/name"));
    let other = app.create_plan("Team").await;
    app.patch_attributes("plans", "plans", &other, json!({"name": "pro"}))
        .await
        .expect_error(409, "CONFLICT", Some("/data/attributes/name"));
    app.delete(&format!("/api/plans/{id}")).await.expect(204);
    app.create_plan("Pro").await;
}

#[tokio::test]
async fn patch_semantics_read_only_and_no_op() {
    let app = spawn_app().await;
    let created = app
        .create("plans", "plans", json!({"name": "Pro"}), Value::Null)
        .await;
    let id = created.id();
    let same = app
        .patch_attributes(
            "plans",
            "plans",
            &id,
            json!({"name": "Pro", "created_at": created.attr("created_at")}),
        )
        .await;
    same.expect(200);
    assert_eq!(
        same.attr("updated_at"),
        created.attr("updated_at"),
        "a no-op PATCH keeps updated_at"
    );
    let changed = app
        .patch_attributes(
            "plans",
            "plans",
            &id,
            json!({"created_at": "2020-01-01T00:00:00Z"}),
        )
        .await;
    changed.expect_error(
        422,
        "READ_ONLY_ATTRIBUTE",
        Some("/data/attributes/created_at"),
    );
    let null_name = app
        .patch_attributes("plans", "plans", &id, json!({"name": null}))
        .await;
    null_name.expect_error(422, "VALIDATION_ERROR", Some("/data/attributes/name"));
    let cleared = app
        .patch_attributes("plans", "plans", &id, json!({"stripe_price_id": "price_1"}))
        .await;
    assert_eq!(cleared.attr("stripe_price_id"), &json!("price_1"));
    let cleared = app
        .patch_attributes("plans", "plans", &id, json!({"stripe_price_id": null}))
        .await;
    assert_eq!(cleared.attr("stripe_price_id"), &Value::Null);
}

#[tokio::test]
async fn one_default_plan_and_delete_rules() {
    let app = spawn_app().await;
    let free = app.get("/api/plans?filter[is_default]=true").await.body["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let pro = app
        .create(
            "plans",
            "plans",
            json!({"name": "Pro", "is_default": true}),
            Value::Null,
        )
        .await
        .id();
    let defaults = app.get("/api/plans?filter[is_default]=true").await;
    assert_eq!(defaults.body["meta"]["total"], json!(1));
    assert_eq!(defaults.body["data"][0]["id"], json!(pro));
    app.patch_attributes("plans", "plans", &pro, json!({"enabled": false}))
        .await
        .expect_error(422, "VALIDATION_ERROR", Some("/data/attributes/enabled"));
    app.delete(&format!("/api/plans/{pro}"))
        .await
        .expect_error(409, "RESOURCE_IN_USE", None);
    // The bootstrap admin is on Free: in use.
    app.delete(&format!("/api/plans/{free}"))
        .await
        .expect_error(409, "RESOURCE_IN_USE", None);
    let spare = app.create_plan("Spare").await;
    let user = app
        .create(
            "users",
            "users",
            json!({"email": "u@example.com"}),
            json!({"plan": link("plans", &spare)}),
        )
        .await
        .id();
    app.delete(&format!("/api/plans/{spare}"))
        .await
        .expect_error(409, "RESOURCE_IN_USE", None);
    app.delete(&format!("/api/users/{user}")).await.expect(204);
    app.delete(&format!("/api/plans/{spare}")).await.expect(204);
}
