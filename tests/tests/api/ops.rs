//! Operating Tollgate: `/metrics` moves with proxied traffic, `/ready` answers.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tollgate_tests::{TestApp, link, spawn_app, upstream::Upstream};

/// The sum of the samples of `name` whose labels include every `(label, value)` pair.
fn sample(metrics: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = match series.split_once('{') {
                Some((metric, rest)) => (metric, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if metric != name {
                return None;
            }
            let pairs: Vec<&str> = rest.split(',').collect();
            labels
                .iter()
                .all(|(label, wanted)| pairs.contains(&format!("{label}=\"{wanted}\"").as_str()))
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

async fn scrape(app: &TestApp) -> String {
    let response = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics answer");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    response.text().await.expect("metrics text")
}

/// Scrapes until `check` holds (records are metered when the response body ends).
async fn eventually(app: &TestApp, check: impl Fn(&str) -> bool) -> String {
    let started = Instant::now();
    loop {
        let text = scrape(app).await;
        if check(&text) {
            return text;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "metrics did not move:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn route_to(app: &TestApp, name: &str, path: &str, base_url: &str) -> (String, String) {
    let upstream = app.create_upstream(name, base_url).await;
    let route = app
        .create(
            "routes",
            "routes",
            json!({"name": name, "path_pattern": path, "match_type": "prefix"}),
            json!({"upstream": link("upstreams", &upstream)}),
        )
        .await
        .id();
    (upstream, route)
}

/// Calls `path` until the route is live (≠ 404); returns the first answer's status.
async fn until_routed(app: &TestApp, path: &str, key: &str) -> StatusCode {
    let started = Instant::now();
    loop {
        let response = app
            .client
            .get(format!("{}{path}", app.proxy))
            .header("X-API-Key", key)
            .send()
            .await
            .expect("proxy answers");
        let status = response.status();
        let _ = response.bytes().await;
        if status != StatusCode::NOT_FOUND {
            return status;
        }
        assert!(started.elapsed() < Duration::from_secs(2), "route not live");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn proxy_traffic_moves_the_metrics() {
    let app = spawn_app().await;
    let upstream = Upstream::start().await;
    let plan = app
        .create("plans", "plans", json!({"name": "Metered"}), Value::Null)
        .await
        .id();
    let user = app
        .create(
            "users",
            "users",
            json!({"email": "metrics@example.com"}),
            json!({"plan": link("plans", &plan)}),
        )
        .await
        .id();
    let key = app
        .create(
            "api-keys",
            "api_keys",
            json!({"name": "k"}),
            json!({"user": link("users", &user)}),
        )
        .await
        .body["data"]["meta"]["key"]
        .as_str()
        .expect("key")
        .to_owned();
    let (_, route) = route_to(&app, "backend", "/v1", &upstream.url).await;
    // An upstream nobody listens on: connection refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let (dead, dead_route) = route_to(&app, "gone", "/dead", &dead_url).await;

    assert_eq!(until_routed(&app, "/v1/a", &key).await, StatusCode::OK);
    for _ in 0..2 {
        let response = app
            .client
            .get(format!("{}/v1/b", app.proxy))
            .header("X-API-Key", &key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let _ = response.bytes().await;
    }
    let unknown = format!("tg_live_{}", "Z".repeat(40));
    let refused = app
        .client
        .get(format!("{}/v1/c", app.proxy))
        .header("X-API-Key", &unknown)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let refused: Value = refused.json().await.unwrap();
    let refused_code = refused["error"]["code"].as_str().unwrap().to_owned();
    assert_eq!(
        until_routed(&app, "/dead/x", &key).await,
        StatusCode::BAD_GATEWAY
    );

    let text = eventually(&app, |text| {
        sample(
            text,
            "tollgate_proxy_requests_total",
            &[("route", &route), ("status", "2xx"), ("code", "OK")],
        ) >= 3.0
    })
    .await;
    assert_eq!(
        sample(
            &text,
            "tollgate_proxy_requests_total",
            &[("route", &route), ("status", "2xx")]
        ),
        3.0,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "tollgate_proxy_requests_total",
            &[
                ("route", &route),
                ("status", "4xx"),
                ("code", &refused_code)
            ]
        ),
        1.0
    );
    assert!(
        sample(
            &text,
            "tollgate_proxy_rejected_total",
            &[("code", &refused_code)]
        ) >= 1.0
    );
    assert_eq!(
        sample(
            &text,
            "tollgate_proxy_request_duration_seconds_count",
            &[("route", &route)]
        ),
        4.0
    );
    assert!(text.contains("tollgate_proxy_request_duration_seconds_bucket{"));
    assert_eq!(
        sample(
            &text,
            "tollgate_proxy_requests_total",
            &[
                ("route", &dead_route),
                ("status", "5xx"),
                ("code", "BAD_GATEWAY")
            ]
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            "tollgate_upstream_errors_total",
            &[("upstream", &dead), ("kind", "connect")]
        ),
        1.0
    );
    assert!(
        sample(
            &text,
            "tollgate_admin_requests_total",
            &[("endpoint", "/api/routes")]
        ) >= 2.0
    );
    assert!(text.contains("tollgate_db_pool_connections{state=\"idle\"}"));
    // Never a key or user id in a label.
    assert!(!text.contains(&user) && !text.contains("key_"));
}

#[tokio::test]
async fn ready_reports_each_check() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    for check in ["database", "migrations", "proxy_config"] {
        assert_eq!(body["checks"][check]["status"], "ok", "{body}");
    }
    let health = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

/// A migration the database has not applied makes `/ready` answer 503 and name the check,
/// and applying it makes it ready again.
#[tokio::test]
async fn ready_fails_while_a_migration_is_pending() {
    use sea_orm::{ConnectionTrait, Database, Statement};
    let app = spawn_app().await;
    let db = Database::connect(&app.database_url).await.expect("connect");
    let backend = db.get_database_backend();
    let newest = db
        .query_one_raw(Statement::from_string(
            backend,
            "SELECT version, applied_at FROM seaql_migrations ORDER BY version DESC LIMIT 1",
        ))
        .await
        .expect("read the migration table")
        .expect("a migration row");
    let version: String = newest.try_get("", "version").expect("version");
    let applied_at: i64 = newest.try_get("", "applied_at").expect("applied_at");
    db.execute_raw(Statement::from_string(
        backend,
        format!("DELETE FROM seaql_migrations WHERE version = '{version}'"),
    ))
    .await
    .expect("forget the newest migration");

    let response = app.client.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["checks"]["migrations"]["status"], "failed", "{body}");
    assert_eq!(
        body["checks"]["migrations"]["detail"],
        "1 migration(s) pending"
    );
    assert_eq!(body["checks"]["database"]["status"], "ok");
    assert_eq!(body["checks"]["proxy_config"]["status"], "ok");

    db.execute_raw(Statement::from_string(
        backend,
        format!(
            "INSERT INTO seaql_migrations (version, applied_at) VALUES ('{version}', {applied_at})"
        ),
    ))
    .await
    .expect("put the migration back");
    let response = app.client.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn webhook_deliveries_and_queue_depth_are_exported() {
    let app = spawn_app().await;
    let receiver = tollgate_tests::receiver::Receiver::start().await;
    let before = scrape(&app).await;
    assert!(
        before.contains("tollgate_webhook_queue_depth "),
        "queue depth gauge:\n{before}"
    );
    let delivered = sample(
        &before,
        "tollgate_webhook_deliveries_total",
        &[("outcome", "success")],
    );
    let hook = app
        .create(
            "webhooks",
            "webhooks",
            json!({"url": receiver.url, "events": ["plan.created"]}),
            Value::Null,
        )
        .await
        .id();
    app.create_plan("Metered").await;
    receiver.wait_for(1, Duration::from_secs(5)).await;
    eventually(&app, |text| {
        sample(
            text,
            "tollgate_webhook_deliveries_total",
            &[("outcome", "success")],
        ) > delivered
    })
    .await;
    let _ = hook;
}
