//! Webhook delivery end to end: real receivers on 127.0.0.1, signatures checked with an
//! independent Standard Webhooks verifier, retries, auto-disable, test/redeliver, the log.

use std::{collections::BTreeSet, time::Duration};

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;
use tollgate_tests::{
    MT, TestApp, link,
    receiver::{Received, Receiver},
    spawn_app, spawn_app_with,
};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const WAIT: Duration = Duration::from_secs(10);

/// Standard Webhooks verification, written from the spec, not from Tollgate's code.
fn verifies(secret: &str, received: &Received) -> bool {
    let key = STANDARD.decode(&secret["whsec_".len()..]).unwrap();
    let id = received.header("webhook-id");
    let timestamp = received.header("webhook-timestamp");
    let mut signed = format!("{id}.{timestamp}.").into_bytes();
    signed.extend_from_slice(&received.body);
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(&signed);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    received
        .header("webhook-signature")
        .split(' ')
        .any(|s| s == expected)
}

fn hex_verifies(secret: &str, received: &Received) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(&received.body);
    hex::encode(mac.finalize().into_bytes()) == received.header("x-webhook-signature")
}

async fn create_webhook(app: &TestApp, url: &str, events: Value) -> String {
    app.create(
        "webhooks",
        "webhooks",
        json!({"url": url, "events": events, "secret": SECRET}),
        Value::Null,
    )
    .await
    .id()
}

/// Fast retries for tests: four attempts 50 ms apart.
fn fast(config: &mut tollgate::config::Config) {
    config.webhook_retry_schedule = "0ms,50ms,50ms,50ms".into();
    config.webhook_timeout_ms = 2_000;
}

async fn deliveries(app: &TestApp, webhook: &str, query: &str) -> Value {
    let reply = app
        .get(&format!("/api/webhooks/{webhook}/deliveries{query}"))
        .await;
    reply.expect(200);
    reply.body
}

#[tokio::test]
async fn every_admin_event_arrives_signed_by_the_standard_webhooks_algorithm() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let hook = create_webhook(&app, &receiver.url, json!(["*"])).await;

    let plan = app.create_plan("Gold").await;
    app.patch_attributes("plans", "plans", &plan, json!({"description": "shiny"}))
        .await
        .expect(200);
    let user = app.create_user("ada@example.com").await;
    app.patch_attributes("users", "users", &user, json!({"name": "Ada"}))
        .await
        .expect(200);
    let key = app
        .create(
            "api-keys",
            "api_keys",
            json!({"name": "k"}),
            json!({"user": link("users", &user)}),
        )
        .await
        .id();
    app.patch_attributes("api-keys", "api_keys", &key, json!({"name": "k2"}))
        .await
        .expect(200);
    app.send(app.request(Method::POST, &format!("/api/api-keys/{key}/rotate")))
        .await
        .expect(200);
    app.post(&format!("/api/api-keys/{key}/revoke"), Value::Null)
        .await
        .expect(200);
    app.delete(&format!("/api/api-keys/{key}"))
        .await
        .expect(204);
    let upstream = app.create_upstream("backend", "http://127.0.0.1:9").await;
    app.patch_attributes(
        "upstreams",
        "upstreams",
        &upstream,
        json!({"description": "d"}),
    )
    .await
    .expect(200);
    let route = app
        .create(
            "routes",
            "routes",
            json!({"name": "r", "path_pattern": "/r"}),
            json!({"upstream": link("upstreams", &upstream)}),
        )
        .await
        .id();
    app.patch_attributes("routes", "routes", &route, json!({"priority": 5}))
        .await
        .expect(200);
    app.delete(&format!("/api/routes/{route}"))
        .await
        .expect(204);
    app.delete(&format!("/api/upstreams/{upstream}"))
        .await
        .expect(204);
    let group = app
        .create(
            "groups",
            "groups",
            json!({"name": "Team"}),
            json!({"owner": link("users", &app.admin_id)}),
        )
        .await
        .id();
    app.patch_attributes("groups", "groups", &group, json!({"description": "t"}))
        .await
        .expect(200);
    let members = format!("/api/groups/{group}/relationships/members");
    app.post(&members, json!({"data": [{"type": "users", "id": user}]}))
        .await
        .expect(200);
    app.write(
        Method::DELETE,
        &members,
        json!({"data": [{"type": "users", "id": user}]}),
    )
    .await
    .expect(200);
    app.delete(&format!("/api/groups/{group}"))
        .await
        .expect(204);
    app.delete(&format!("/api/users/{user}")).await.expect(204);
    let other = create_webhook(&app, "https://hooks.example.com/x", json!(["user.*"])).await;
    app.patch_attributes("webhooks", "webhooks", &other, json!({"name": "o"}))
        .await
        .expect(200);
    app.delete(&format!("/api/webhooks/{other}"))
        .await
        .expect(204);
    app.delete(&format!("/api/plans/{plan}")).await.expect(204);

    let expected: BTreeSet<&str> = [
        "plan.created",
        "plan.updated",
        "plan.deleted",
        "user.created",
        "user.updated",
        "user.deleted",
        "api_key.created",
        "api_key.updated",
        "api_key.rotated",
        "api_key.revoked",
        "api_key.deleted",
        "upstream.created",
        "upstream.updated",
        "upstream.deleted",
        "route.created",
        "route.updated",
        "route.deleted",
        "group.created",
        "group.updated",
        "group.member_added",
        "group.member_removed",
        "group.deleted",
        "webhook.created",
        "webhook.updated",
        "webhook.deleted",
    ]
    .into();
    let got = receiver
        .wait_until(WAIT, |r| {
            let types: BTreeSet<String> = r
                .iter()
                .map(|x| x.header("x-webhook-event").to_owned())
                .collect();
            expected.iter().all(|t| types.contains(*t))
        })
        .await;
    for received in &got {
        let body = received.json();
        assert!(verifies(SECRET, received), "bad signature: {received:?}");
        assert!(hex_verifies(SECRET, received), "bad hex signature");
        assert_eq!(body["id"], json!(received.header("webhook-id")));
        assert_eq!(body["type"], json!(received.header("x-webhook-event")));
        assert_eq!(received.header("content-type"), "application/json");
        assert_eq!(received.header("user-agent"), "Tollgate-Webhooks/1");
        assert_eq!(received.body, serde_json::to_vec(&body).unwrap(), "compact");
        let sent: i64 = received.header("webhook-timestamp").parse().unwrap();
        let now = tollgate_domain::Timestamp::now().unix_seconds();
        assert!((now - sent).abs() < 300);
        assert!(body["data"].get("actor_id").is_some());
        assert!(!String::from_utf8_lossy(&received.body).contains("whsec_"));
    }
    let find = |t: &str| {
        got.iter()
            .find(|r| r.header("x-webhook-event") == t)
            .unwrap()
            .json()
    };
    let updated = find("plan.updated");
    assert_eq!(
        updated["data"]["previous_attributes"]["description"],
        json!("")
    );
    assert_eq!(
        updated["data"]["object"]["attributes"]["description"],
        json!("shiny")
    );
    assert_eq!(updated["data"]["actor_id"], json!(app.admin_id));
    let added = find("group.member_added");
    assert_eq!(added["data"]["member"]["id"], json!(user));
    assert_eq!(added["data"]["member"]["meta"]["role"], json!("member"));
    assert_eq!(added["data"]["object"]["id"], json!(group));

    // Rotation: the event arrives, and later deliveries carry both signatures.
    let rotated = app
        .post(&format!("/api/webhooks/{hook}/rotate-secret"), Value::Null)
        .await;
    rotated.expect(200);
    let new_secret = rotated.body["data"]["meta"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(new_secret.starts_with("whsec_") && new_secret != SECRET);
    assert!(rotated.attr("secret").is_null());
    let got = receiver
        .wait_until(WAIT, |r| {
            r.iter()
                .any(|x| x.header("x-webhook-event") == "webhook.secret_rotated")
        })
        .await;
    let event = got
        .iter()
        .find(|r| r.header("x-webhook-event") == "webhook.secret_rotated")
        .unwrap();
    assert_eq!(event.header("webhook-signature").split(' ').count(), 2);
    assert!(verifies(&new_secret, event) && verifies(SECRET, event));
    assert!(hex_verifies(&new_secret, event));
    assert!(!String::from_utf8_lossy(&event.body).contains(&new_secret));
}

#[tokio::test]
async fn a_failing_receiver_gets_the_same_event_until_it_answers_2xx() {
    let app = spawn_app_with(fast).await;
    let receiver = Receiver::scripted(vec![500, 500], 200, Duration::ZERO).await;
    // Bootstrap events (user, plan, admin key) may still be undispatched: stay clear of them.
    let hook = create_webhook(&app, &receiver.url, json!(["upstream.*"])).await;
    app.create_upstream("retry", "http://127.0.0.1:9").await;
    let got = receiver.wait_for(3, WAIT).await;
    let ids: BTreeSet<&str> = got.iter().map(|r| r.header("webhook-id")).collect();
    assert_eq!(ids.len(), 1, "one event, three attempts");
    assert!(got.iter().all(|r| r.body == got[0].body), "identical bytes");
    assert!(got.iter().all(|r| verifies(SECRET, r)));

    let log = receiver_log_settles(&app, &hook, 3).await;
    let rows = log["data"].as_array().unwrap();
    let by_attempt = |n: i64| {
        rows.iter()
            .find(|r| r["attributes"]["attempt"] == json!(n))
            .unwrap()["attributes"]
            .clone()
    };
    for (attempt, status, ok) in [(1, 500, false), (2, 500, false), (3, 200, true)] {
        let row = by_attempt(attempt);
        assert_eq!(row["status_code"], json!(status));
        assert_eq!(row["succeeded"], json!(ok));
        assert_eq!(row["event_type"], json!("upstream.created"));
        assert_eq!(row["event_id"], json!(ids.iter().next().unwrap()));
        assert_eq!(row["next_attempt_at"].is_null(), ok);
        assert_eq!(row["response_body"], json!("received"));
        assert!(row["duration_ms"].is_u64());
    }
    let webhook = app.get(&format!("/api/webhooks/{hook}")).await;
    assert_eq!(webhook.attr("consecutive_failures"), &json!(0));
    assert!(webhook.attr("last_success_at").is_string());
    assert!(webhook.attr("last_failure_at").is_string());
}

/// The delivery log once `count` attempts are recorded (the receiver sees them first).
async fn receiver_log_settles(app: &TestApp, hook: &str, count: u64) -> Value {
    for _ in 0..200 {
        let log = deliveries(app, hook, "").await;
        let settled = log["data"].as_array().unwrap().iter().all(|r| {
            !r["attributes"]["status_code"].is_null() || !r["attributes"]["error"].is_null()
        });
        if log["meta"]["total"] == json!(count) && settled {
            return log;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the delivery log never reached {count} rows");
}

#[tokio::test]
async fn final_answers_are_not_retried() {
    let app = spawn_app_with(fast).await;
    let receiver = Receiver::scripted(vec![410], 200, Duration::ZERO).await;
    let hook = create_webhook(&app, &receiver.url, json!(["upstream.created"])).await;
    app.create_upstream("gone", "http://127.0.0.1:9").await;
    receiver.wait_for(1, WAIT).await;
    let log = receiver_log_settles(&app, &hook, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received().len(), 1);
    let row = &log["data"][0]["attributes"];
    assert_eq!(row["status_code"], json!(410));
    assert_eq!(row["next_attempt_at"], Value::Null);
}

#[tokio::test]
async fn repeated_failures_disable_the_webhook_and_say_so() {
    let app = spawn_app_with(|c| {
        fast(c);
        c.webhook_retry_schedule = "0ms,10ms,10ms,10ms,10ms,10ms".into();
        c.webhook_disable_after = 3;
    })
    .await;
    let failing = Receiver::scripted(Vec::new(), 503, Duration::ZERO).await;
    let watcher = Receiver::start().await;
    let hook = create_webhook(&app, &failing.url, json!(["upstream.*"])).await;
    create_webhook(
        &app,
        &watcher.url,
        json!(["webhook.updated", "webhook.disabled"]),
    )
    .await;
    app.create_upstream("doomed", "http://127.0.0.1:9").await;
    failing.wait_for(3, WAIT).await;
    // Both events, in either order: deliveries are not ordered (webhooks.md, Ordering).
    let got = watcher
        .wait_until(WAIT, |r| {
            ["webhook.disabled", "webhook.updated"]
                .iter()
                .all(|event| r.iter().any(|x| x.header("x-webhook-event") == *event))
        })
        .await;
    assert!(
        got.iter()
            .all(|r| verifies(SECRET, r) && hex_verifies(SECRET, r))
    );
    let disabled = got
        .iter()
        .find(|r| r.header("x-webhook-event") == "webhook.disabled")
        .unwrap()
        .json();
    assert_eq!(disabled["data"]["object"]["id"], json!(hook));
    assert_eq!(
        disabled["data"]["object"]["attributes"]["enabled"],
        json!(false)
    );
    assert_eq!(
        disabled["data"]["object"]["attributes"]["disabled_reason"],
        json!("too_many_failures")
    );
    assert_eq!(disabled["data"]["actor_id"], Value::Null);
    let updated = got
        .iter()
        .map(Received::json)
        .find(|b| b["type"] == json!("webhook.updated") && b["data"]["object"]["id"] == json!(hook))
        .expect("webhook.updated for the disable");
    assert_eq!(
        updated["data"]["previous_attributes"]["enabled"],
        json!(true)
    );

    let webhook = app.get(&format!("/api/webhooks/{hook}")).await;
    assert_eq!(webhook.attr("enabled"), &json!(false));
    assert_eq!(webhook.attr("disabled_reason"), &json!("too_many_failures"));
    assert_eq!(webhook.attr("consecutive_failures"), &json!(3));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(failing.received().len(), 3, "no attempt after the disable");
    let audit = app
        .get(&format!(
            "/api/events?filter[type]=webhook.disabled&filter[resource_id]={hook}"
        ))
        .await;
    assert_eq!(audit.body["meta"]["total"], json!(1));
    assert!(audit.body["data"][0]["relationships"]["actor"]["data"].is_null());

    // New events skip a disabled webhook; re-enabling resets the counter.
    app.create_upstream("later", "http://127.0.0.1:9").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(failing.received().len(), 3);
    let enabled = app
        .patch_attributes("webhooks", "webhooks", &hook, json!({"enabled": true}))
        .await;
    enabled.expect(200);
    assert_eq!(enabled.attr("consecutive_failures"), &json!(0));
    assert_eq!(enabled.attr("disabled_reason"), &Value::Null);
}

#[tokio::test]
async fn the_test_endpoint_makes_one_synchronous_attempt_to_that_webhook_only() {
    let app = spawn_app().await;
    let receiver = Receiver::scripted(vec![200, 500], 200, Duration::ZERO).await;
    let bystander = Receiver::start().await;
    let hook = create_webhook(&app, &receiver.url, json!(["upstream.created"])).await;
    create_webhook(&app, &bystander.url, json!(["*"])).await;

    let reply = app
        .post(&format!("/api/webhooks/{hook}/test"), Value::Null)
        .await;
    reply.expect(200);
    assert_eq!(reply.body["data"]["type"], json!("webhook_deliveries"));
    assert_eq!(reply.attr("succeeded"), &json!(true));
    assert_eq!(reply.attr("status_code"), &json!(200));
    assert_eq!(reply.attr("attempt"), &json!(1));
    assert_eq!(reply.attr("event_type"), &json!("webhook.test"));
    assert!(reply.attr("duration_ms").is_u64());
    assert_eq!(
        reply.body["data"]["relationships"]["webhook"]["data"]["id"],
        json!(hook)
    );
    let got = receiver.received();
    assert_eq!(got.len(), 1, "synchronous: already there");
    let body = got[0].json();
    assert_eq!(body["type"], json!("webhook.test"));
    assert_eq!(body["data"], json!({"webhook_id": hook, "message": "test"}));
    assert!(verifies(SECRET, &got[0]));

    let failed = app
        .post(&format!("/api/webhooks/{hook}/test"), Value::Null)
        .await;
    failed.expect(200);
    assert_eq!(failed.attr("succeeded"), &json!(false));
    assert_eq!(failed.attr("status_code"), &json!(500));
    assert_eq!(failed.attr("next_attempt_at"), &Value::Null);
    let webhook = app.get(&format!("/api/webhooks/{hook}")).await;
    assert_eq!(webhook.attr("consecutive_failures"), &json!(0));

    // Even a disabled webhook gets its test.
    app.patch_attributes("webhooks", "webhooks", &hook, json!({"enabled": false}))
        .await
        .expect(200);
    app.post(&format!("/api/webhooks/{hook}/test"), Value::Null)
        .await
        .expect(200);
    assert_eq!(receiver.received().len(), 3);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        bystander
            .received()
            .iter()
            .all(|r| r.header("x-webhook-event") != "webhook.test"),
        "webhook.test goes to its target only"
    );

    // Unhappy paths.
    app.post(
        "/api/webhooks/whk_01JD0W3X5Z7B9D1F3H5K7M9P1R/test",
        Value::Null,
    )
    .await
    .expect_error(404, "NOT_FOUND", None);
    app.post("/api/webhooks/nonsense/test", Value::Null)
        .await
        .expect_error(404, "NOT_FOUND", None);
    let wrong_type = app
        .send(
            app.request(Method::POST, &format!("/api/webhooks/{hook}/test"))
                .header("Content-Type", "application/json")
                .body("{}"),
        )
        .await;
    wrong_type.expect_error(415, "UNSUPPORTED_MEDIA_TYPE", None);
    let get = app.get(&format!("/api/webhooks/{hook}/test")).await;
    get.expect_error(405, "METHOD_NOT_ALLOWED", None);
    assert_eq!(get.header("allow"), Some("POST"));
}

#[tokio::test]
async fn redelivery_resends_the_same_event_with_the_same_id() {
    let app = spawn_app_with(fast).await;
    let receiver = Receiver::start().await;
    let hook = create_webhook(&app, &receiver.url, json!(["upstream.created"])).await;
    app.create_upstream("again", "http://127.0.0.1:9").await;
    receiver.wait_for(1, WAIT).await;
    let log = receiver_log_settles(&app, &hook, 1).await;
    let original = log["data"][0]["id"].as_str().unwrap().to_owned();

    let reply = app
        .post(
            &format!("/api/webhooks/{hook}/deliveries/{original}/redeliver"),
            Value::Null,
        )
        .await;
    reply.expect(202);
    let queued = reply.id();
    assert!(queued.starts_with("dlv_") && queued != original);
    assert_eq!(
        reply.header("location"),
        Some(format!("/api/webhook-deliveries/{queued}").as_str())
    );
    assert_eq!(reply.attr("attempt"), &json!(1));
    assert_eq!(reply.attr("redelivery"), &json!(true));
    assert_eq!(reply.attr("status_code"), &Value::Null);
    assert_eq!(reply.attr("duration_ms"), &Value::Null);
    assert_eq!(reply.attr("succeeded"), &json!(false));
    assert!(reply.attr("next_attempt_at").is_string());
    assert_eq!(
        reply.attr("event_id"),
        &log["data"][0]["attributes"]["event_id"]
    );

    let got = receiver.wait_for(2, Duration::from_secs(5)).await;
    assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"));
    assert_eq!(got[0].body, got[1].body);
    assert!(verifies(SECRET, &got[1]));
    let mut done = Value::Null;
    for _ in 0..100 {
        let row = app
            .get(&format!("/api/webhooks/{hook}/deliveries/{queued}"))
            .await;
        row.expect(200);
        if row.attr("succeeded") == &json!(true) {
            done = row.body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(done["data"]["attributes"]["status_code"], json!(200));
    assert_eq!(done["data"]["attributes"]["redelivery"], json!(true));
    assert_eq!(done["data"]["attributes"]["next_attempt_at"], Value::Null);
    let first = app
        .get(&format!("/api/webhooks/{hook}/deliveries/{original}"))
        .await;
    assert_eq!(
        first.attr("redelivery"),
        &json!(false),
        "original unchanged"
    );

    // Unknown webhook, unknown delivery, a delivery of another webhook: 404.
    let other = create_webhook(&app, &receiver.url, json!(["user.created"])).await;
    for path in [
        format!("/api/webhooks/whk_01JD0W3X5Z7B9D1F3H5K7M9P1R/deliveries/{original}/redeliver"),
        format!("/api/webhooks/{hook}/deliveries/dlv_01JD0W3X5Z7B9D1F3H5K7M9P1R/redeliver"),
        format!("/api/webhooks/{other}/deliveries/{original}/redeliver"),
        format!("/api/webhooks/{hook}/deliveries/bogus/redeliver"),
    ] {
        app.post(&path, Value::Null)
            .await
            .expect_error(404, "NOT_FOUND", None);
    }
    app.get(&format!("/api/webhooks/{other}/deliveries/{original}"))
        .await
        .expect_error(404, "NOT_FOUND", None);
    let wrong = app
        .get(&format!(
            "/api/webhooks/{hook}/deliveries/{original}/redeliver"
        ))
        .await;
    wrong.expect_error(405, "METHOD_NOT_ALLOWED", None);
}

#[tokio::test]
async fn the_delivery_log_pages_sorts_filters_and_includes() {
    let app = spawn_app_with(fast).await;
    let receiver = Receiver::scripted(vec![500], 200, Duration::ZERO).await;
    let hook = create_webhook(&app, &receiver.url, json!(["upstream.*"])).await;
    let upstream = app.create_upstream("logged", "http://127.0.0.1:9").await;
    app.patch_attributes(
        "upstreams",
        "upstreams",
        &upstream,
        json!({"description": "x"}),
    )
    .await
    .expect(200);
    receiver.wait_for(3, WAIT).await;
    let log = receiver_log_settles(&app, &hook, 3).await;
    let times: Vec<&str> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["attributes"]["created_at"].as_str().unwrap())
        .collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted, "newest first by default");

    let total = |v: &Value| v["meta"]["total"].clone();
    assert_eq!(
        total(&deliveries(&app, &hook, "?filter[succeeded]=true").await),
        json!(2)
    );
    assert_eq!(
        total(&deliveries(&app, &hook, "?filter[succeeded]=false").await),
        json!(1)
    );
    assert_eq!(
        total(&deliveries(&app, &hook, "?filter[status_code]=500").await),
        json!(1)
    );
    // Which of the two events met the 500 is a race: count from the full log.
    let updates = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["attributes"]["event_type"] == json!("upstream.updated"))
        .count();
    assert!(updates >= 1);
    assert_eq!(
        total(&deliveries(&app, &hook, "?filter[event_type]=upstream.updated").await),
        json!(updates)
    );
    let event = log["data"][0]["attributes"]["event_id"].as_str().unwrap();
    let by_event = deliveries(
        &app,
        &hook,
        &format!("?filter[event]={event}&include=event"),
    )
    .await;
    assert!(by_event["meta"]["total"].as_u64().unwrap() >= 1);
    assert_eq!(by_event["included"][0]["type"], json!("events"));
    assert_eq!(by_event["included"][0]["id"], json!(event));
    let paged = deliveries(&app, &hook, "?page[size]=1&sort=attempt").await;
    assert_eq!(paged["data"].as_array().unwrap().len(), 1);
    assert_eq!(paged["meta"]["total"], json!(3));
    assert_eq!(paged["data"][0]["attributes"]["attempt"], json!(1));

    let one = log["data"][0]["id"].as_str().unwrap();
    let direct = app.get(&format!("/api/webhook-deliveries/{one}")).await;
    direct.expect(200);
    assert_eq!(
        direct.body["data"]["links"]["self"],
        json!(format!("/api/webhook-deliveries/{one}"))
    );
    let owner = app
        .get(&format!("/api/webhook-deliveries/{one}/webhook"))
        .await;
    owner.expect(200);
    assert_eq!(owner.id(), hook);

    for (query, code) in [
        ("?filter[succeeded]=maybe", "INVALID_FILTER"),
        ("?filter[status_code]=abc", "INVALID_FILTER"),
        ("?filter[nope]=1", "INVALID_FILTER"),
        ("?sort=response_body", "INVALID_SORT"),
    ] {
        let reply = app
            .get(&format!("/api/webhooks/{hook}/deliveries{query}"))
            .await;
        reply.expect(400);
        assert_eq!(reply.code(), code, "{query}: {}", reply.body);
    }
    app.get("/api/webhooks/whk_01JD0W3X5Z7B9D1F3H5K7M9P1R/deliveries")
        .await
        .expect_error(404, "NOT_FOUND", None);
    app.get("/api/webhook-deliveries/dlv_01JD0W3X5Z7B9D1F3H5K7M9P1R")
        .await
        .expect_error(404, "NOT_FOUND", None);
    app.get("/api/webhook-deliveries")
        .await
        .expect_error(404, "NOT_FOUND", None);
    let write = app
        .patch(
            &format!("/api/webhook-deliveries/{one}"),
            json!({"data": {"type": "webhook_deliveries", "id": one, "attributes": {}}}),
        )
        .await;
    write.expect_error(405, "METHOD_NOT_ALLOWED", None);
    // Deleting the webhook cancels what is queued; its log stays readable by id.
    app.delete(&format!("/api/webhooks/{hook}"))
        .await
        .expect(204);
    app.get(&format!("/api/webhooks/{hook}/deliveries"))
        .await
        .expect_error(404, "NOT_FOUND", None);
}

#[tokio::test]
async fn the_audit_log_lists_every_committed_change() {
    let app = spawn_app().await;
    let plan = app.create_plan("Audited").await;
    app.patch_attributes("plans", "plans", &plan, json!({"description": "x"}))
        .await
        .expect(200);
    let events = app
        .get(&format!(
            "/api/events?filter[resource_id]={plan}&sort=created_at"
        ))
        .await;
    events.expect(200);
    let data = events.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[0]["attributes"]["type"], json!("plan.created"));
    assert_eq!(data[1]["attributes"]["type"], json!("plan.updated"));
    assert_eq!(data[1]["attributes"]["resource_type"], json!("plans"));
    assert_eq!(data[1]["attributes"]["auth_method"], json!("admin_key"));
    assert_eq!(
        data[1]["attributes"]["data"]["previous_attributes"]["description"],
        json!("")
    );
    assert_eq!(
        data[1]["relationships"]["actor"]["data"]["id"],
        json!(app.admin_id)
    );
    assert!(data[1]["relationships"]["api_key"]["data"]["id"].is_string());
    let id = data[0]["id"].as_str().unwrap();
    let one = app.get(&format!("/api/events/{id}?include=actor")).await;
    one.expect(200);
    assert_eq!(one.body["included"][0]["id"], json!(app.admin_id));
    let typed = app
        .get(&format!(
            "/api/events?filter[type]=plan.created&filter[resource_type]=plans&filter[resource_id]={plan}"
        ))
        .await;
    assert_eq!(typed.body["meta"]["total"], json!(1));
    let by_actor = app
        .get(&format!("/api/events?filter[actor]={}", app.admin_id))
        .await;
    assert!(by_actor.body["meta"]["total"].as_u64().unwrap() >= 2);
    app.get("/api/events/evt_01JD0W3X5Z7B9D1F3H5K7M9P1R")
        .await
        .expect_error(404, "NOT_FOUND", None);
    app.get("/api/events?filter[bogus]=1")
        .await
        .expect_error(400, "INVALID_FILTER", None);
    let post = app
        .post(
            "/api/events",
            json!({"data": {"type": "events", "attributes": {}}}),
        )
        .await;
    post.expect_error(405, "METHOD_NOT_ALLOWED", None);
    app.delete(&format!("/api/events/{id}"))
        .await
        .expect_error(405, "METHOD_NOT_ALLOWED", None);
}

#[tokio::test]
async fn private_destinations_are_refused_after_dns_resolution() {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let resolved: Vec<std::net::IpAddr> = tokio::net::lookup_host((host.as_str(), 80))
        .await
        .map(|a| a.map(|s| s.ip()).collect())
        .unwrap_or_default();
    assert!(
        !resolved.is_empty()
            && resolved
                .iter()
                .all(|ip| tollgate_domain::resources::webhooks::is_forbidden_ip(*ip)),
        "this test needs the machine's hostname ({host:?}) to resolve to a private or loopback address, got {resolved:?}"
    );
    let app = spawn_app_with(|c| c.webhook_allow_private = false).await;
    let receiver = Receiver::start().await;
    // A name passes the creation check; only resolution tells where it points.
    let hook = create_webhook(
        &app,
        &format!("http://{host}:{}/hook", receiver.port),
        json!(["plan.*"]),
    )
    .await;
    let reply = app
        .post(&format!("/api/webhooks/{hook}/test"), Value::Null)
        .await;
    reply.expect(200);
    assert_eq!(reply.attr("error"), &json!("destination_forbidden"));
    assert_eq!(reply.attr("status_code"), &Value::Null);
    assert_eq!(reply.attr("succeeded"), &json!(false));
    assert!(receiver.received().is_empty());
    app.send(
        app.request(Method::POST, "/api/webhooks")
            .header("Content-Type", MT)
            .body(
                json!({"data": {"type": "webhooks", "attributes": {"url": format!("http://127.0.0.1:{}/", receiver.port), "events": ["*"]}}})
                    .to_string(),
            ),
    )
    .await
    .expect_error(422, "WEBHOOK_URL_FORBIDDEN", Some("/data/attributes/url"));
}
