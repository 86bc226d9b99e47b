//! Webhook signing secrets at rest: sealed in the database (the raw rows are read directly),
//! still signing with the values the API returned; plaintext rows of an older version sealed
//! at startup; a node with another encryption key refuses to start.

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::{Value, json};
use sha2::Sha256;
use tollgate::{config::Secret, startup::Application};
use tollgate_tests::{
    TestApp,
    receiver::{Received, Receiver},
    spawn_app, spawn_node, test_config,
};

/// Standard Webhooks verification, written from the spec, not from Tollgate's code.
fn verifies(secret: &str, received: &Received) -> bool {
    let key = STANDARD.decode(&secret["whsec_".len()..]).unwrap();
    let mut signed = format!(
        "{}.{}.",
        received.header("webhook-id"),
        received.header("webhook-timestamp")
    )
    .into_bytes();
    signed.extend_from_slice(&received.body);
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(&signed);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    received
        .header("webhook-signature")
        .split(' ')
        .any(|s| s == expected)
}

/// `X-Webhook-Signature`: HMAC keyed with the whole secret string.
fn hex_verifies(secret: &str, received: &Received) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(&received.body);
    hex::encode(mac.finalize().into_bytes()) == received.header("x-webhook-signature")
}

/// `(id, secret, previous_secret)` of every `webhooks` row, straight from the database.
async fn raw_rows(database_url: &str) -> Vec<(String, String, Option<String>)> {
    let db = Database::connect(database_url).await.expect("connect");
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT id, secret, previous_secret FROM webhooks ORDER BY id",
        ))
        .await
        .expect("read webhooks");
    rows.iter()
        .map(|row| {
            (
                row.try_get("", "id").unwrap(),
                row.try_get("", "secret").unwrap(),
                row.try_get("", "previous_secret").unwrap(),
            )
        })
        .collect()
}

async fn execute(database_url: &str, sql: String) {
    let db = Database::connect(database_url).await.expect("connect");
    db.execute_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .expect("raw write");
}

/// No stored column holds a secret, whole or its base64 body.
#[track_caller]
fn assert_sealed(rows: &[(String, String, Option<String>)], secrets: &[&str]) {
    for (id, secret, previous) in rows {
        for stored in std::iter::once(secret).chain(previous) {
            assert!(
                !stored.contains("whsec_"),
                "{id} stores plaintext: {stored}"
            );
            for plain in secrets {
                assert!(
                    !stored.contains(&plain["whsec_".len()..]),
                    "{id} stores {plain}"
                );
            }
        }
    }
}

/// `POST /api/webhooks/{id}/test` (one synchronous attempt): what the receiver got.
async fn test_delivery(app: &TestApp, hook: &str, receiver: &Receiver) -> Received {
    let before = receiver.received().len();
    let reply = app
        .post(&format!("/api/webhooks/{hook}/test"), Value::Null)
        .await;
    reply.expect(200);
    assert_eq!(reply.attr("succeeded"), &json!(true), "{}", reply.body);
    let got = receiver.received();
    assert_eq!(got.len(), before + 1);
    got[before].clone()
}

async fn create_webhook(app: &TestApp, url: &str, secret: Option<&str>) -> (String, String) {
    let mut attributes = json!({"url": url, "events": ["upstream.created"]});
    if let Some(secret) = secret {
        attributes["secret"] = json!(secret);
    }
    let reply = app
        .create("webhooks", "webhooks", attributes, Value::Null)
        .await;
    let shown = reply.body["data"]["meta"]["secret"]
        .as_str()
        .expect("secret shown on create")
        .to_owned();
    (reply.id(), shown)
}

const GIVEN: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[tokio::test]
async fn webhook_secrets_are_sealed_at_rest_and_sign_with_what_the_api_returned() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let (given, shown) = create_webhook(&app, &receiver.url, Some(GIVEN)).await;
    assert_eq!(shown, GIVEN);
    let (generated, generated_secret) = create_webhook(&app, &receiver.url, None).await;
    assert!(generated_secret.starts_with("whsec_"));
    assert_sealed(
        &raw_rows(&app.database_url).await,
        &[GIVEN, &generated_secret],
    );

    let got = test_delivery(&app, &generated, &receiver).await;
    assert!(verifies(&generated_secret, &got) && hex_verifies(&generated_secret, &got));

    // Rotation: the new secret and the previous one (kept for the grace period) are both
    // sealed, and both sign.
    let rotated = app
        .post(&format!("/api/webhooks/{given}/rotate-secret"), Value::Null)
        .await;
    rotated.expect(200);
    let new_secret = rotated.body["data"]["meta"]["secret"]
        .as_str()
        .expect("new secret shown once")
        .to_owned();
    assert_ne!(new_secret, GIVEN);
    let rows = raw_rows(&app.database_url).await;
    assert_sealed(&rows, &[GIVEN, &new_secret, &generated_secret]);
    let row = rows.iter().find(|(id, ..)| *id == given).expect("row");
    assert!(
        row.2.as_deref().is_some_and(|p| !p.is_empty()),
        "previous kept"
    );

    let got = test_delivery(&app, &given, &receiver).await;
    assert_eq!(got.header("webhook-signature").split(' ').count(), 2);
    assert!(verifies(&new_secret, &got) && verifies(GIVEN, &got));
    assert!(hex_verifies(&new_secret, &got));

    // A second rotation inside the window: the first rotation's secret becomes the previous.
    let again = app
        .post(&format!("/api/webhooks/{given}/rotate-secret"), Value::Null)
        .await;
    again.expect(200);
    let newest = again.body["data"]["meta"]["secret"].as_str().unwrap();
    assert_sealed(
        &raw_rows(&app.database_url).await,
        &[GIVEN, &new_secret, newest, &generated_secret],
    );
    let got = test_delivery(&app, &given, &receiver).await;
    assert!(verifies(newest, &got) && verifies(&new_secret, &got));
    assert!(!verifies(GIVEN, &got), "the oldest secret is dropped");

    // Never readable back.
    let read = app.get(&format!("/api/webhooks/{given}")).await;
    read.expect(200);
    assert!(!read.body.to_string().contains("whsec_"), "{}", read.body);
}

#[tokio::test]
async fn plaintext_secrets_of_an_older_version_sign_and_are_sealed_at_startup() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let (hook, _) = create_webhook(&app, &receiver.url, None).await;
    let old = "whsec_9JQb8qmSSIXF3z6VqQW0mbbNsXfZPt7mPNjoH7kiGjE=";
    let older = "whsec_oYc2bxq+h1F6ArqTjW2kRe1b5cXoBKIxFpMf6m5E9Ss=";
    // As an older version left it: both values plaintext, the previous one still in its grace.
    execute(
        &app.database_url,
        format!(
            "UPDATE webhooks SET secret = '{old}', previous_secret = '{older}', \
             previous_secret_expires_at = 99999999999999 WHERE id = '{hook}'"
        ),
    )
    .await;

    // Still signs (a row written by an older node during a rolling upgrade keeps working).
    let got = test_delivery(&app, &hook, &receiver).await;
    assert!(verifies(old, &got) && verifies(older, &got));

    // The next start seals them, and they still sign.
    let (admin, _) = spawn_node(&app.database_url, |_| {}).await;
    assert_sealed(&raw_rows(&app.database_url).await, &[old, older]);
    let node = TestApp {
        admin,
        proxy: String::new(),
        client: app.client.clone(),
        admin_key: app.admin_key.clone(),
        admin_id: app.admin_id.clone(),
        database_url: app.database_url.clone(),
    };
    let got = test_delivery(&node, &hook, &receiver).await;
    assert!(verifies(old, &got) && verifies(older, &got) && hex_verifies(old, &got));
}

/// What starting one more node with another key says (it must not start).
async fn start_with_another_key(database_url: &str) -> String {
    let mut config = test_config(database_url);
    config.encryption_key = Some(Secret::from(STANDARD.encode([9u8; 32])));
    match Application::build(config).await {
        Ok(_) => panic!("a node with another key started"),
        Err(error) => format!("{error:#}"),
    }
}

/// Another key would sign every delivery with garbage and forward without the upstream's
/// credentials: the node stops at startup and says which stored value does not open.
#[tokio::test]
async fn a_node_with_another_encryption_key_refuses_to_start() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    create_webhook(&app, &receiver.url, None).await;
    let error = start_with_another_key(&app.database_url).await;
    assert!(
        error.contains("does not open a webhook secret"),
        "names what does not open: {error}"
    );
    assert!(error.contains("TOLLGATE_ENCRYPTION_KEY"), "{error}");

    let app = spawn_app().await;
    app.create(
        "upstreams",
        "upstreams",
        json!({"name": "billing", "base_url": "http://127.0.0.1:9",
               "auth_type": "bearer", "auth_value": "upstream-token"}),
        Value::Null,
    )
    .await;
    let error = start_with_another_key(&app.database_url).await;
    assert!(
        error.contains("does not open an upstream's auth_value"),
        "{error}"
    );
    // The right key (the one kept in the database here) still starts.
    spawn_node(&app.database_url, |_| {}).await;
}
