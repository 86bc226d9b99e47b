//! The proxy listener, black-box, against a real upstream server on 127.0.0.1.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tollgate_tests::{TestApp, link, spawn_app, spawn_app_with, spawn_node, upstream::Upstream};

/// What one test needs on the admin side: a plan, a user on it, a key, an upstream, a route.
struct Setup {
    plan: String,
    user: String,
    key: String,
    key_id: String,
    upstream: String,
    route: String,
}

async fn create_key(app: &TestApp, user: &str, relationships: Value) -> (String, String) {
    let mut rels = json!({"user": link("users", user)});
    if let (Some(rels), Some(extra)) = (rels.as_object_mut(), relationships.as_object()) {
        rels.extend(extra.clone());
    }
    let reply = app
        .create("api-keys", "api_keys", json!({"name": "k"}), rels)
        .await;
    let key = reply.body["data"]["meta"]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    (key, reply.id())
}

async fn user_on(app: &TestApp, email: &str, plan: &str) -> String {
    app.create(
        "users",
        "users",
        json!({"email": email}),
        json!({"plan": link("plans", plan)}),
    )
    .await
    .id()
}

async fn setup(app: &TestApp, base_url: &str, plan: Value, route: Value) -> Setup {
    let plan_attrs = merge(json!({"name": "Gold"}), plan);
    let plan = app
        .create("plans", "plans", plan_attrs, Value::Null)
        .await
        .id();
    let user = user_on(app, "caller@example.com", &plan).await;
    let (key, key_id) = create_key(app, &user, Value::Null).await;
    let upstream = app.create_upstream("backend", base_url).await;
    let route_attrs = merge(
        json!({"name": "api", "path_pattern": "/", "match_type": "prefix"}),
        route,
    );
    let route = app
        .create(
            "routes",
            "routes",
            route_attrs,
            json!({"upstream": link("upstreams", &upstream)}),
        )
        .await
        .id();
    Setup {
        plan,
        user,
        key,
        key_id,
        upstream,
        route,
    }
}

fn merge(mut base: Value, extra: Value) -> Value {
    if let (Some(base), Some(extra)) = (base.as_object_mut(), extra.as_object()) {
        base.extend(extra.clone());
    }
    base
}

/// A request to the proxy listener.
fn proxied(app: &TestApp, method: Method, path: &str) -> reqwest::RequestBuilder {
    app.client.request(method, format!("{}{path}", app.proxy))
}

async fn call(app: &TestApp, path: &str, key: &str) -> reqwest::Response {
    proxied(app, Method::GET, path)
        .header("X-API-Key", key)
        .send()
        .await
        .expect("proxy answers")
}

async fn json_of(response: reqwest::Response) -> Value {
    response.json().await.unwrap_or(Value::Null)
}

/// Polls until `check` holds (configuration reaches the proxy within 1 s); returns the wait.
async fn within_a_second<F, Fut>(mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "the change did not reach the proxy within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn routed(app: &TestApp, path: &str, key: &str) {
    let waited =
        within_a_second(|| async { call(app, path, key).await.status() == StatusCode::OK }).await;
    assert!(waited < Duration::from_secs(1));
}

/// Waits until the route reaches the proxy without spending a token or quota: an unknown key
/// is refused before the bucket.
async fn routed_without_spending(app: &TestApp, path: &str) {
    let unknown = format!("tg_live_{}", "B".repeat(40));
    within_a_second(|| async {
        call(app, path, &unknown).await.status() == StatusCode::UNAUTHORIZED
    })
    .await;
}

/// Waits until the change reaches the proxy (the request is refused with `code`), then checks
/// the error document.
async fn until_refused(app: &TestApp, path: &str, key: &str, status: StatusCode, code: &str) {
    within_a_second(|| async {
        let r = call(app, path, key).await;
        let got = r.status();
        got == status && json_of(r).await["error"]["code"] == code
    })
    .await;
    let r = call(app, path, key).await;
    assert_error(r.status(), &json_of(r).await, status, code);
}

fn assert_error(status: StatusCode, body: &Value, expected: StatusCode, code: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["request_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );
}

#[tokio::test]
async fn forwards_method_path_query_headers_and_body() {
    let app = spawn_app().await;
    let upstream = Upstream::start().await;
    let base = format!("{}/internal/", upstream.url);
    let s = setup(
        &app,
        &base,
        json!({}),
        json!({"path_pattern": "/api", "strip_path": true}),
    )
    .await;
    routed(&app, "/api/ping", &s.key).await;

    let response = proxied(&app, Method::POST, "/api/users/7?x=1&y=a%20b")
        .header("X-API-Key", &s.key)
        .header("X-Custom", "kept")
        .header("Connection", "keep-alive, x-hop")
        .header("X-Hop", "dropped")
        .header("X-User-ID", "usr_forged")
        .header("X-Forwarded-For", "10.9.9.9")
        .header("X-Request-Id", "trace-123")
        .header("Content-Type", "text/plain")
        .body("hello upstream")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers["x-upstream"], "echo");
    assert_eq!(headers["x-request-id"], "trace-123");
    // Tollgate's limit headers replace the upstream's copies.
    assert_eq!(headers["x-ratelimit-limit"], "60");
    assert_eq!(headers["ratelimit-limit"], "60");
    assert_eq!(headers["ratelimit-policy"], "60;w=60");
    let seen = json_of(response).await;
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["path"], "/internal/users/7");
    assert_eq!(seen["query"], "x=1&y=a%20b");
    assert_eq!(seen["body"], "hello upstream");
    let sent = &seen["headers"];
    assert_eq!(sent["x-custom"], "kept");
    assert_eq!(sent["content-type"], "text/plain");
    assert!(
        sent.get("x-api-key").is_none(),
        "the key never goes upstream"
    );
    assert!(
        sent.get("x-hop").is_none(),
        "headers named in Connection are hop-by-hop"
    );
    assert_eq!(sent["x-user-id"], s.user.as_str());
    assert_eq!(sent["x-key-id"], s.key_id.as_str());
    assert_eq!(sent["x-plan-id"], s.plan.as_str());
    assert!(sent.get("x-group-id").is_none());
    assert_eq!(
        sent["x-forwarded-for"], "127.0.0.1",
        "untrusted peers' XFF is replaced"
    );
    assert_eq!(sent["x-forwarded-proto"], "http");
    assert!(
        sent["x-forwarded-host"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    assert_eq!(sent["x-request-id"], "trace-123");
    assert_eq!(sent["host"], upstream.url.trim_start_matches("http://"));

    // A bearer key is accepted and not forwarded; other Authorization schemes are.
    let response = proxied(&app, Method::PUT, "/api")
        .header("Authorization", format!("Bearer {}", s.key))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let seen = json_of(response).await;
    assert_eq!(seen["method"], "PUT");
    assert_eq!(
        seen["path"], "/internal/",
        "strip_path of the whole path leaves /"
    );
    assert!(seen["headers"].get("authorization").is_none());
    assert!(!seen["headers"]["x-request-id"].as_str().unwrap().is_empty());
    let _ = (&s.upstream, &s.route);
}

#[tokio::test]
async fn every_refusal_of_the_lifecycle_has_its_code() {
    let app = spawn_app_with(|c| c.proxy_max_body_bytes = 1024).await;
    let upstream = Upstream::start().await;
    let s = setup(
        &app,
        &upstream.url,
        json!({}),
        json!({"path_pattern": "/v1", "methods": ["GET", "POST"]}),
    )
    .await;
    routed(&app, "/v1/x", &s.key).await;
    let hits = upstream.hits();

    let r = call(&app, "/nowhere", &s.key).await;
    let (status, request_id) = (r.status(), r.headers()["x-request-id"].clone());
    let body = json_of(r).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "ROUTE_NOT_FOUND");
    assert_eq!(body["error"]["request_id"], request_id.to_str().unwrap());

    let r = proxied(&app, Method::DELETE, "/v1/x")
        .header("X-API-Key", &s.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["allow"], "GET, POST");
    assert_error(
        r.status(),
        &json_of(r).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
    );

    let r = proxied(&app, Method::GET, "/v1/x").send().await.unwrap();
    assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"tollgate\"");
    assert_error(
        r.status(),
        &json_of(r).await,
        StatusCode::UNAUTHORIZED,
        "MISSING_API_KEY",
    );

    for bad in [
        "nope",
        "tg_live_short",
        &format!("tg_live_{}", "A".repeat(40)),
        &app.admin_key,
    ] {
        let r = call(&app, "/v1/x", bad).await;
        assert_error(
            r.status(),
            &json_of(r).await,
            StatusCode::UNAUTHORIZED,
            "INVALID_API_KEY",
        );
    }

    let r = proxied(&app, Method::POST, "/v1/x")
        .header("X-API-Key", &s.key)
        .body(vec![b'x'; 2048])
        .send()
        .await
        .unwrap();
    assert_error(
        r.status(),
        &json_of(r).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "PAYLOAD_TOO_LARGE",
    );
    // A chunked body crossing the limit is cut off as well.
    let chunks =
        futures_util::stream::iter((0..8).map(|_| Ok::<_, std::io::Error>(vec![b'y'; 512])));
    let r = proxied(&app, Method::POST, "/v1/x")
        .header("X-API-Key", &s.key)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_error(
        r.status(),
        &json_of(r).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "PAYLOAD_TOO_LARGE",
    );
    assert_eq!(
        upstream.hits(),
        hits,
        "no refused request reached the upstream"
    );

    // Owner suspended → 403.
    app.patch_attributes("users", "users", &s.user, json!({"status": "suspended"}))
        .await
        .expect(200);
    until_refused(
        &app,
        "/v1/x",
        &s.key,
        StatusCode::FORBIDDEN,
        "USER_INACTIVE",
    )
    .await;
    app.patch_attributes("users", "users", &s.user, json!({"status": "active"}))
        .await
        .expect(200);

    // Expired key → 401 API_KEY_EXPIRED.
    let expires = tollgate_domain::Timestamp::now()
        .plus_seconds(1)
        .to_string();
    let reply = app
        .create(
            "api-keys",
            "api_keys",
            json!({"name": "short", "expires_at": expires}),
            json!({"user": link("users", &s.user)}),
        )
        .await;
    let short = reply.body["data"]["meta"]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let r = call(&app, "/v1/x", &short).await;
    assert_error(
        r.status(),
        &json_of(r).await,
        StatusCode::UNAUTHORIZED,
        "API_KEY_EXPIRED",
    );

    // Route limited to another plan → 403 PLAN_NOT_ALLOWED.
    let other = app.create_plan("Other").await;
    app.patch(
        &format!("/api/routes/{}", s.route),
        json!({"data": {"type": "routes", "id": s.route,
            "relationships": {"allowed_plans": {"data": [{"type": "plans", "id": other}]}}}}),
    )
    .await
    .expect(200);
    until_refused(
        &app,
        "/v1/x",
        &s.key,
        StatusCode::FORBIDDEN,
        "PLAN_NOT_ALLOWED",
    )
    .await;

    // Allowed plans include ours, but the route is limited to a group we are not in.
    let group = app
        .create(
            "groups",
            "groups",
            json!({"name": "Team"}),
            json!({"owner": link("users", &app.admin_id)}),
        )
        .await
        .id();
    app.patch(
        &format!("/api/routes/{}", s.route),
        json!({"data": {"type": "routes", "id": s.route, "relationships": {
            "allowed_plans": {"data": [{"type": "plans", "id": s.plan}]},
            "allowed_groups": {"data": [{"type": "groups", "id": group}]}}}}),
    )
    .await
    .expect(200);
    within_a_second(|| async {
        json_of(call(&app, "/v1/x", &s.key).await).await["error"]["code"] == "GROUP_NOT_ALLOWED"
    })
    .await;
    app.patch(
        &format!("/api/routes/{}", s.route),
        json!({"data": {"type": "routes", "id": s.route, "relationships": {"allowed_groups": {"data": []}}}}),
    )
    .await
    .expect(200);
    routed(&app, "/v1/x", &s.key).await;

    // Disabled upstream → 503.
    app.patch_attributes(
        "upstreams",
        "upstreams",
        &s.upstream,
        json!({"enabled": false}),
    )
    .await
    .expect(200);
    until_refused(
        &app,
        "/v1/x",
        &s.key,
        StatusCode::SERVICE_UNAVAILABLE,
        "UPSTREAM_DISABLED",
    )
    .await;

    // Unreachable upstream → 502; slow upstream → 504.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    app.patch_attributes(
        "upstreams",
        "upstreams",
        &s.upstream,
        json!({"enabled": true, "base_url": closed_url}),
    )
    .await
    .expect(200);
    until_refused(
        &app,
        "/v1/x",
        &s.key,
        StatusCode::BAD_GATEWAY,
        "BAD_GATEWAY",
    )
    .await;

    app.patch_attributes(
        "upstreams",
        "upstreams",
        &s.upstream,
        json!({"base_url": upstream.url, "timeout_ms": 200}),
    )
    .await
    .expect(200);
    let slow_route = app
        .create(
            "routes",
            "routes",
            json!({"name": "slow", "path_pattern": "/slow", "match_type": "prefix"}),
            json!({"upstream": link("upstreams", &s.upstream)}),
        )
        .await
        .id();
    within_a_second(|| async { call(&app, "/slow/10", &s.key).await.status() == StatusCode::OK })
        .await;
    let started = Instant::now();
    let r = call(&app, "/slow/3000", &s.key).await;
    assert_error(
        r.status(),
        &json_of(r).await,
        StatusCode::GATEWAY_TIMEOUT,
        "GATEWAY_TIMEOUT",
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    let _ = slow_route;
}

#[tokio::test]
async fn health_paths_answer_on_the_proxy_listener() {
    let app = spawn_app().await;
    for path in ["/_tollgate/health", "/health"] {
        let r = proxied(&app, Method::GET, path).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(json_of(r).await, json!({"status": "ok"}));
    }
    // A route for /health wins over the built-in answer; the reserved path never routes.
    let upstream = Upstream::start().await;
    let s = setup(
        &app,
        &upstream.url,
        json!({}),
        json!({"path_pattern": "/", "auth_required": false}),
    )
    .await;
    within_a_second(|| async {
        json_of(proxied(&app, Method::GET, "/health").send().await.unwrap())
            .await
            .get("status")
            .is_none()
    })
    .await;
    let r = proxied(&app, Method::GET, "/_tollgate/health")
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(r).await, json!({"status": "ok"}));
    let r = proxied(&app, Method::POST, "/_tollgate/health")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["allow"], "GET");
    let status = r.status();
    assert_error(
        status,
        &json_of(r).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
    );
    let _ = s;
}

#[tokio::test]
async fn public_routes_need_no_key_and_forward_none() {
    let app = spawn_app().await;
    let upstream = Upstream::start().await;
    let s = setup(
        &app,
        &upstream.url,
        json!({}),
        json!({"auth_required": false}),
    )
    .await;
    within_a_second(|| async {
        proxied(&app, Method::GET, "/open")
            .send()
            .await
            .unwrap()
            .status()
            == StatusCode::OK
    })
    .await;
    let r = proxied(&app, Method::GET, "/open")
        .header("Authorization", format!("Bearer {}", s.key))
        .send()
        .await
        .unwrap();
    assert!(
        r.headers().get("ratelimit-limit").is_none(),
        "no limit, no headers"
    );
    let seen = json_of(r).await;
    assert!(seen["headers"].get("authorization").is_none());
    assert!(
        seen["headers"].get("x-user-id").is_none(),
        "public requests are anonymous"
    );
    // A bearer token that is not a Tollgate key belongs to the upstream and passes.
    let r = proxied(&app, Method::GET, "/open")
        .header("Authorization", "Bearer upstream-token")
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_of(r).await["headers"]["authorization"],
        "Bearer upstream-token"
    );
}

#[tokio::test]
async fn server_sent_events_reach_the_client_event_by_event() {
    let app = spawn_app().await;
    let upstream = Upstream::start().await;
    let s = setup(&app, &upstream.url, json!({}), json!({})).await;
    routed(&app, "/ping", &s.key).await;
    let response = call(&app, "/sse", &s.key).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.bytes_stream();
    let first = tokio::time::timeout(Duration::from_secs(2), body.next())
        .await
        .expect("the first event arrives while the upstream is still open")
        .unwrap()
        .unwrap();
    assert_eq!(&first[..], b"data: one\n\n");
    upstream.state.release.notify_one();
    let second = tokio::time::timeout(Duration::from_secs(2), body.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(&second[..], b"data: two\n\n");
}

#[tokio::test]
async fn rate_limit_is_exact_under_concurrent_requests() {
    let app = spawn_app().await;
    let upstream = Upstream::start().await;
    let s = setup(
        &app,
        &upstream.url,
        json!({"rate_limit_per_minute": 10}),
        json!({}),
    )
    .await;
    routed_without_spending(&app, "/x").await;
    let requests = (0..30).map(|_| call(&app, "/x", &s.key));
    let responses = futures_util::future::join_all(requests).await;
    let mut allowed = 0;
    let mut limited = 0;
    for r in responses {
        match r.status() {
            StatusCode::OK => allowed += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                limited += 1;
                assert_eq!(r.headers()["ratelimit-remaining"], "0");
                let retry: u64 = r.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((1..=6).contains(&retry), "one token per 6 s: {retry}");
                assert_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    &json_of(r).await,
                    StatusCode::TOO_MANY_REQUESTS,
                    "RATE_LIMITED",
                );
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((allowed, limited), (10, 20));
    assert_eq!(upstream.hits(), 10);
}

#[tokio::test]
async fn monthly_quota_refuses_or_bills_overage() {
    let app = spawn_app().await;
    let upstream = Upstream::start().await;
    let s = setup(
        &app,
        &upstream.url,
        json!({"requests_per_month": 3}),
        json!({}),
    )
    .await;
    routed_without_spending(&app, "/x").await;
    for used in 1..=3 {
        let r = call(&app, "/x", &s.key).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["x-quota-limit"], "3");
        assert_eq!(r.headers()["x-quota-used"], used.to_string().as_str());
        assert_eq!(
            r.headers()["x-quota-remaining"],
            (3 - used).to_string().as_str()
        );
    }
    let r = call(&app, "/x", &s.key).await;
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=31 * 86_400).contains(&retry));
    assert!(
        r.headers()["x-quota-reset"]
            .to_str()
            .unwrap()
            .ends_with("-01T00:00:00.000Z")
    );
    assert_error(
        r.status(),
        &json_of(r).await,
        StatusCode::TOO_MANY_REQUESTS,
        "QUOTA_EXCEEDED",
    );
    assert_eq!(upstream.hits(), 3);
    call(&app, "/x", &s.key).await;

    // 80 % and the first refusal are announced once each, for the user, in the outbox.
    let started = Instant::now();
    let events = loop {
        let events = usage_events(&app).await;
        if events.len() >= 2 || started.elapsed() > Duration::from_secs(3) {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(events.len(), 2, "{events:?}");
    let threshold = events
        .iter()
        .find(|(t, _, _)| t == "usage.threshold")
        .unwrap();
    assert_eq!(threshold.1, s.user);
    assert_eq!(threshold.2["used"], 3);
    assert_eq!(threshold.2["limit"], 3);
    assert_eq!(
        threshold.2["subject"],
        json!({"type": "users", "id": s.user})
    );
    let limit = events.iter().find(|(t, _, _)| t == "usage.limit").unwrap();
    assert_eq!(limit.2["percent"], 100);

    // With an overage price the plan lets requests through beyond the quota.
    app.patch_attributes("plans", "plans", &s.plan, json!({"overage_price": 2}))
        .await
        .expect(200);
    within_a_second(|| async { call(&app, "/x", &s.key).await.status() == StatusCode::OK }).await;
    let r = call(&app, "/x", &s.key).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-quota-remaining"], "0");
}

#[tokio::test]
async fn admin_changes_reach_the_proxy_within_one_second() {
    let app = spawn_app().await;
    let upstream = Upstream::start().await;
    let s = setup(
        &app,
        &upstream.url,
        json!({"rate_limit_per_minute": 1000}),
        json!({}),
    )
    .await;
    routed(&app, "/x", &s.key).await;

    // A plan limit change.
    app.patch_attributes(
        "plans",
        "plans",
        &s.plan,
        json!({"rate_limit_per_minute": 1}),
    )
    .await
    .expect(200);
    within_a_second(|| async {
        let r = call(&app, "/x", &s.key).await;
        r.headers().get("ratelimit-limit").is_some_and(|v| v == "1")
    })
    .await;
    let r = call(&app, "/x", &s.key).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);

    app.patch_attributes(
        "plans",
        "plans",
        &s.plan,
        json!({"rate_limit_per_minute": 0}),
    )
    .await
    .expect(200);
    routed(&app, "/x", &s.key).await;

    // A revoked key.
    app.send(app.request(Method::POST, &format!("/api/api-keys/{}/revoke", s.key_id)))
        .await
        .expect(200);
    within_a_second(|| async {
        call(&app, "/x", &s.key).await.status() == StatusCode::UNAUTHORIZED
    })
    .await;

    // A disabled route.
    let (key, _) = create_key(&app, &s.user, Value::Null).await;
    routed(&app, "/x", &key).await;
    app.patch_attributes("routes", "routes", &s.route, json!({"enabled": false}))
        .await
        .expect(200);
    within_a_second(|| async { call(&app, "/x", &key).await.status() == StatusCode::NOT_FOUND })
        .await;
}

#[tokio::test]
async fn group_keys_reach_the_upstream_with_the_group_credential() {
    let app = spawn_app().await;
    let upstream = Upstream::start().await;
    let s = setup(&app, &upstream.url, json!({}), json!({})).await;
    let group = app
        .create(
            "groups",
            "groups",
            json!({"name": "Acme"}),
            json!({"owner": link("users", &s.user)}),
        )
        .await
        .id();
    app.patch_attributes(
        "upstreams",
        "upstreams",
        &s.upstream,
        json!({"auth_type": "bearer", "auth_value": "default-secret",
               "group_credentials": { group.clone(): "acme-secret" }}),
    )
    .await
    .expect(200);
    let (group_key, _) = create_key(&app, &s.user, json!({"group": link("groups", &group)})).await;
    routed(&app, "/x", &group_key).await;

    let seen = json_of(call(&app, "/x", &group_key).await).await;
    assert_eq!(seen["headers"]["authorization"], "Bearer acme-secret");
    assert_eq!(seen["headers"]["x-group-id"], group.as_str());
    let seen = json_of(call(&app, "/x", &s.key).await).await;
    assert_eq!(seen["headers"]["authorization"], "Bearer default-secret");
    assert!(seen["headers"].get("x-group-id").is_none());

    // Suspending the group stops its keys, not the owner's personal key.
    app.patch_attributes("groups", "groups", &group, json!({"status": "suspended"}))
        .await
        .expect(200);
    until_refused(
        &app,
        "/x",
        &group_key,
        StatusCode::FORBIDDEN,
        "GROUP_SUSPENDED",
    )
    .await;
    assert_eq!(call(&app, "/x", &s.key).await.status(), StatusCode::OK);
}

/// `usage.*` events in the outbox: (type, subject, data).
async fn usage_events(app: &TestApp) -> Vec<(String, String, Value)> {
    use sea_orm::{ConnectionTrait, Database, Statement};
    let db = Database::connect(&app.database_url).await.unwrap();
    let backend = db.get_database_backend();
    let rows = db
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT type, resource_id, data FROM events WHERE type LIKE 'usage.%'",
        ))
        .await
        .unwrap();
    rows.iter()
        .map(|row| {
            let data: Value = row.try_get("", "data").unwrap();
            (
                row.try_get::<String>("", "type").unwrap(),
                row.try_get::<String>("", "resource_id").unwrap(),
                data,
            )
        })
        .collect()
}

/// Usage records appear within the writer's flush interval (≤ 1 s).
async fn usage_records(app: &TestApp, query: &str, at_least: usize) -> Value {
    let started = Instant::now();
    loop {
        let reply = app.get(&format!("/api/usage?{query}")).await;
        reply.expect(200);
        if reply.body["data"].as_array().unwrap().len() >= at_least
            || started.elapsed() > Duration::from_secs(3)
        {
            return reply.body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `filter[api_key]` on the request log and the summary: the key's records only, not those of
/// its owner's other keys nor of another user's (the log has no key index; the filter goes
/// through the owner's).
#[tokio::test]
async fn usage_filters_by_key() {
    let app = spawn_app().await;
    let upstream = Upstream::start().await;
    let s = setup(&app, &upstream.url, json!({}), json!({})).await;
    let (second_key, second_id) = create_key(&app, &s.user, Value::Null).await;
    let stranger = user_on(&app, "stranger@example.com", &s.plan).await;
    let (stranger_key, stranger_id) = create_key(&app, &stranger, Value::Null).await;
    routed(&app, "/a", &s.key).await;
    routed(&app, "/b", &second_key).await;
    routed(&app, "/c", &stranger_key).await;
    for _ in 0..2 {
        call(&app, "/a", &s.key).await;
        call(&app, "/b", &second_key).await;
    }
    call(&app, "/unkeyed", "tg_live_bad").await;
    // `routed` stops at the first answer with the key: 3 records for each of the owner's keys
    // (a key the proxy does not know yet is refused without a key id), 1 for the stranger's.
    let keys_listed = |body: &Value| -> Vec<String> {
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r["relationships"]["api_key"]["data"]["id"]
                    .as_str()
                    .unwrap_or("none")
                    .to_owned()
            })
            .collect()
    };
    let query = format!("page[size]=100&filter[api_key]={}", s.key_id);
    let keys = keys_listed(&usage_records(&app, &query, 3).await);
    assert_eq!(keys, vec![s.key_id.clone(); 3]);

    let query = format!("page[size]=100&filter[api_key]={second_id},{stranger_id}");
    let mut keys = keys_listed(&usage_records(&app, &query, 4).await);
    keys.sort();
    let mut expected = vec![second_id.clone(); 3];
    expected.push(stranger_id.clone());
    expected.sort();
    assert_eq!(keys, expected);

    let keys = keys_listed(&usage_records(&app, "page[size]=100&filter[api_key]=none", 1).await);
    assert!(keys.iter().all(|k| k == "none"), "{keys:?}");

    let unknown = app
        .get("/api/usage?filter[api_key]=key_00000000000000000000000000")
        .await;
    unknown.expect(200);
    assert_eq!(unknown.body["data"].as_array().unwrap().len(), 0);

    let summary = app
        .get(&format!(
            "/api/usage/summary?filter[period]=1h&filter[api_key]={}",
            s.key_id
        ))
        .await;
    summary.expect(200);
    assert_eq!(summary.body["meta"]["totals"]["requests"], 3);

    // A `user` filtering by someone else's key sees nothing of it.
    app.create_user_with_password("viewer@example.com", "a long user password", "user")
        .await;
    let viewer = app
        .login("viewer@example.com", "a long user password")
        .await;
    let foreign = app
        .with_token(
            Method::GET,
            &format!("/api/usage?filter[api_key]={}", s.key_id),
            &viewer.token,
        )
        .await;
    foreign.expect(200);
    assert_eq!(foreign.body["data"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn every_outcome_is_metered_and_summarised() {
    let app = spawn_app().await;
    let upstream = Upstream::start().await;
    let s = setup(
        &app,
        &upstream.url,
        json!({}),
        json!({"path_pattern": "/v1"}),
    )
    .await;
    routed(&app, "/v1/warm", &s.key).await;
    let r = proxied(&app, Method::POST, "/v1/items?x=1")
        .header("X-API-Key", &s.key)
        .header("User-Agent", "metering-test")
        .header("X-Request-Id", "metered-1")
        .body("12345")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let response_len = r.bytes().await.unwrap().len() as i64;
    call(&app, "/v1/x", "tg_live_bad").await;
    proxied(&app, Method::GET, "/elsewhere")
        .send()
        .await
        .unwrap();

    let body = usage_records(&app, "filter[path]=/v1/items", 1).await;
    let record = &body["data"][0];
    assert_eq!(record["type"], "usage_records");
    let a = &record["attributes"];
    assert_eq!(a["request_id"], "metered-1");
    assert_eq!(a["method"], "POST");
    assert_eq!(
        a["path"], "/v1/items",
        "the path is stored without its query"
    );
    assert_eq!(a["status_code"], 200);
    assert_eq!(a["error_code"], Value::Null);
    assert_eq!(a["request_bytes"], 5);
    assert_eq!(a["response_bytes"], response_len);
    assert_eq!(a["user_agent"], "metering-test");
    assert_eq!(a["client_ip"], "127.0.0.1");
    assert_eq!(a["counted"], true);
    assert!(a["upstream_duration_ms"].as_i64().is_some());
    assert_eq!(
        record["relationships"]["api_key"]["data"]["id"],
        s.key_id.as_str()
    );
    assert_eq!(
        record["relationships"]["user"]["data"]["id"],
        s.user.as_str()
    );
    assert_eq!(
        record["relationships"]["route"]["data"]["id"],
        s.route.as_str()
    );

    // Refusals are metered too, with their code and without a key.
    let body = usage_records(&app, "filter[status_code]=401", 1).await;
    let refused = &body["data"][0];
    assert_eq!(refused["attributes"]["error_code"], "INVALID_API_KEY");
    assert_eq!(refused["attributes"]["counted"], false);
    assert_eq!(refused["relationships"]["api_key"]["data"], Value::Null);
    let body = usage_records(&app, "filter[path]=/elsewhere", 1).await;
    let unrouted = &body["data"][0]["attributes"];
    assert_eq!(unrouted["error_code"], "ROUTE_NOT_FOUND");
    assert_eq!(unrouted["status_code"], 404);
    assert_eq!(
        body["data"][0]["relationships"]["route"]["data"],
        Value::Null
    );
    let bad = app.get("/api/usage?filter[status_code]=7xx").await;
    bad.expect_error(400, "INVALID_FILTER", None);
    assert_eq!(bad.parameter(), "filter[status_code]");

    let summary = app
        .get("/api/usage/summary?filter[period]=1h&group_by=key")
        .await;
    summary.expect(200);
    let meta = &summary.body["meta"];
    assert_eq!(meta["period"], "1h");
    assert_eq!(meta["group_by"], "key");
    assert!(meta["totals"]["requests"].as_i64().unwrap() >= 4);
    assert!(meta["totals"]["errors"].as_i64().unwrap() >= 2);
    let by_key = meta["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == s.key_id.as_str())
        .expect("a group for the key");
    assert_eq!(by_key["type"], "api_keys");
    assert!(by_key["requests"].as_i64().unwrap() >= 2);
    assert!(by_key["counted"].as_i64().unwrap() >= 2);
    for (query, parameter) in [
        ("filter[period]=2y", "filter[period]"),
        ("group_by=colour", "group_by"),
        ("filter[status]=200", "filter[status]"),
        ("page[size]=1", "page[size]"),
    ] {
        let reply = app.get(&format!("/api/usage/summary?{query}")).await;
        assert_eq!(reply.status, 400, "{query}: {}", reply.body);
        assert_eq!(reply.parameter(), parameter);
    }

    // A `user` sees only their own traffic.
    let other = app
        .create_user_with_password("other@example.com", "a long user password", "user")
        .await;
    let browser = app.login("other@example.com", "a long user password").await;
    let own = app
        .with_token(
            Method::GET,
            "/api/usage/summary?filter[period]=1h",
            &browser.token,
        )
        .await;
    own.expect(200);
    assert_eq!(own.body["meta"]["totals"]["requests"], 0);
    let list = app
        .with_token(Method::GET, "/api/usage", &browser.token)
        .await;
    assert_eq!(list.body["data"], json!([]));
    let _ = other;
}

#[tokio::test]
async fn rotation_keeps_the_old_secret_for_its_grace() {
    let app = spawn_app().await;
    let upstream = Upstream::start().await;
    let s = setup(&app, &upstream.url, json!({}), json!({})).await;
    routed(&app, "/x", &s.key).await;

    let rotate = |grace: Value| {
        let body = if grace.is_null() {
            String::new()
        } else {
            json!({"data": {"type": "api_key_rotations", "attributes": {"grace_seconds": grace}}})
                .to_string()
        };
        app.send(
            app.request(Method::POST, &format!("/api/api-keys/{}/rotate", s.key_id))
                .header("Content-Type", tollgate_tests::MT)
                .body(body),
        )
    };
    let reply = rotate(json!(3600)).await;
    reply.expect(200);
    assert_eq!(reply.id(), s.key_id);
    let fresh = reply.body["data"]["meta"]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(fresh, s.key);
    assert_eq!(reply.attr("prefix"), &json!(&fresh[..16]));
    assert!(reply.attr("rotated_at").is_string());
    assert!(reply.body["data"]["meta"]["previous_key_expires_at"].is_string());
    routed(&app, "/x", &fresh).await;
    assert_eq!(
        call(&app, "/x", &s.key).await.status(),
        StatusCode::OK,
        "old secret in grace"
    );
    let secret_shown = app.get(&format!("/api/api-keys/{}", s.key_id)).await;
    assert!(
        secret_shown.body["data"]
            .get("meta")
            .is_none_or(|m| m.get("key").is_none())
    );

    // Rotating again with no grace ends both older secrets within a second.
    let newest = rotate(json!(0)).await;
    newest.expect(200);
    let newest = newest.body["data"]["meta"]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    within_a_second(|| async {
        call(&app, "/x", &fresh).await.status() == StatusCode::UNAUTHORIZED
    })
    .await;
    assert_eq!(
        call(&app, "/x", &s.key).await.status(),
        StatusCode::UNAUTHORIZED
    );
    routed(&app, "/x", &newest).await;

    // Bad bodies and revoked keys.
    rotate(json!(604_801)).await.expect_error(
        422,
        "VALIDATION_ERROR",
        Some("/data/attributes/grace_seconds"),
    );
    let wrong_type = app
        .send(
            app.request(Method::POST, &format!("/api/api-keys/{}/rotate", s.key_id))
                .header("Content-Type", tollgate_tests::MT)
                .body(r#"{"data":{"type":"api_keys","attributes":{}}}"#),
        )
        .await;
    wrong_type.expect_error(409, "TYPE_MISMATCH", Some("/data/type"));
    let unknown = app
        .send(
            app.request(Method::POST, &format!("/api/api-keys/{}/rotate", s.key_id))
                .header("Content-Type", tollgate_tests::MT)
                .body(r#"{"data":{"type":"api_key_rotations","attributes":{"colour":1}}}"#),
        )
        .await;
    unknown.expect_error(422, "UNKNOWN_ATTRIBUTE", Some("/data/attributes/colour"));
    let malformed = app
        .send(
            app.request(Method::POST, &format!("/api/api-keys/{}/rotate", s.key_id))
                .header("Content-Type", tollgate_tests::MT)
                .body("{"),
        )
        .await;
    malformed.expect_error(400, "INVALID_JSON", None);
    let wrong_media = app
        .send(
            app.request(Method::POST, &format!("/api/api-keys/{}/rotate", s.key_id))
                .header("Content-Type", "application/json")
                .body("{}"),
        )
        .await;
    wrong_media.expect_error(415, "UNSUPPORTED_MEDIA_TYPE", None);
    app.send(app.request(
        Method::POST,
        "/api/api-keys/key_01JD0R8D2S4F6H8K0M2P4R6T8V/rotate",
    ))
    .await
    .expect_error(404, "NOT_FOUND", None);
    app.send(app.request(Method::POST, &format!("/api/api-keys/{}/revoke", s.key_id)))
        .await
        .expect(200);
    rotate(Value::Null)
        .await
        .expect_error(409, "KEY_REVOKED", None);
}

#[tokio::test]
async fn upstream_health_is_probed_and_shown() {
    let app = spawn_app_with(|c| c.health_check_interval_seconds = 1).await;
    let upstream = Upstream::start().await;
    let id = app
        .create(
            "upstreams",
            "upstreams",
            json!({"name": "probed", "base_url": upstream.url, "health_check_path": "/health"}),
            Value::Null,
        )
        .await
        .id();
    let health = || async {
        app.get(&format!("/api/upstreams/{id}"))
            .await
            .attr("health")
            .clone()
    };
    assert_eq!(health().await, "unknown");
    let started = Instant::now();
    while health().await != "up" {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "never probed up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        app.get(&format!("/api/upstreams/{id}"))
            .await
            .attr("health_checked_at")
            .is_string()
    );
    upstream
        .state
        .healthy
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let started = Instant::now();
    while health().await != "down" {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "never probed down"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const REDIS: &str = "redis://127.0.0.1:6379";

#[tokio::test]
async fn nodes_sharing_redis_share_one_bucket_per_key() {
    let app = spawn_app_with(|c| c.redis_url = Some(REDIS.into())).await;
    let (_, second_proxy) =
        spawn_node(&app.database_url, |c| c.redis_url = Some(REDIS.into())).await;
    let upstream = Upstream::start().await;
    let s = setup(
        &app,
        &upstream.url,
        json!({"rate_limit_per_minute": 12}),
        json!({}),
    )
    .await;
    let unknown = format!("tg_live_{}", "D".repeat(40));
    for proxy in [app.proxy.clone(), second_proxy.clone()] {
        let unknown = unknown.clone();
        within_a_second(|| {
            let (proxy, unknown) = (proxy.clone(), unknown.clone());
            let client = app.client.clone();
            async move {
                client
                    .get(format!("{proxy}/x"))
                    .header("X-API-Key", unknown)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    == StatusCode::UNAUTHORIZED
            }
        })
        .await;
    }
    let requests = (0..36).map(|i| {
        let proxy = if i % 2 == 0 {
            &app.proxy
        } else {
            &second_proxy
        };
        app.client
            .get(format!("{proxy}/x"))
            .header("X-API-Key", &s.key)
            .send()
    });
    let statuses: Vec<StatusCode> = futures_util::future::join_all(requests)
        .await
        .into_iter()
        .map(|r| r.unwrap().status())
        .collect();
    let allowed = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(
        (allowed, limited),
        (12, 24),
        "two nodes, one bucket: {statuses:?}"
    );

    // The monthly quota is one counter across the nodes too.
    let plan = app
        .create(
            "plans",
            "plans",
            json!({"name": "Quota", "rate_limit_per_minute": 0, "requests_per_month": 7}),
            Value::Null,
        )
        .await
        .id();
    let user = user_on(&app, "quota@example.com", &plan).await;
    let (key, _) = create_key(&app, &user, Value::Null).await;
    // One warm-up request per node proves the key has reached it (and counts: 2 of 7).
    for proxy in [app.proxy.clone(), second_proxy.clone()] {
        let client = app.client.clone();
        let key = key.clone();
        within_a_second(|| {
            let (client, proxy, key) = (client.clone(), proxy.clone(), key.clone());
            async move {
                let r = client
                    .get(format!("{proxy}/x"))
                    .header("X-API-Key", key)
                    .send()
                    .await
                    .unwrap();
                r.status() == StatusCode::OK
            }
        })
        .await;
    }
    let requests = (0..20).map(|i| {
        let proxy = if i % 2 == 0 {
            &app.proxy
        } else {
            &second_proxy
        };
        app.client
            .get(format!("{proxy}/x"))
            .header("X-API-Key", &key)
            .send()
    });
    let statuses: Vec<StatusCode> = futures_util::future::join_all(requests)
        .await
        .into_iter()
        .map(|r| r.unwrap().status())
        .collect();
    let allowed = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(allowed, 5, "two nodes, one quota: {statuses:?}");
}
