//! The proxy under hostile input and faults (issue 16): paths that mean two things, headers an
//! upstream might believe, methods that are never forwarded, a database that stops answering.
//! Requests whose exact bytes matter go over a raw TCP connection: an HTTP client library
//! normalises `..` and `%2e` before sending.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tollgate_tests::{TestApp, link, spawn_app, upstream::Upstream};

/// A response read off a raw connection.
struct Raw {
    status: u16,
    body: Value,
}

/// Sends `request_line` and `headers` as written, with `Connection: close`, and reads the
/// whole answer.
async fn raw(app: &TestApp, request_line: &str, headers: &[(&str, &str)]) -> Raw {
    let address = app.proxy.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("proxy accepts");
    let mut request = format!("{request_line} HTTP/1.1\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        request.push_str(&format!("Host: {address}\r\n"));
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("sent");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Raw {
        status,
        body: serde_json::from_str(&body).unwrap_or(Value::String(body)),
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

struct Site {
    upstream: Upstream,
    key: String,
    user: String,
}

/// One upstream behind two routes: `/public` (no key) and `/private` (key required); a user
/// on a plan with `plan` attributes and a key. Waits until both routes reach the proxy.
async fn site(app: &TestApp, plan: Value) -> Site {
    let upstream = Upstream::start().await;
    let mut attributes = json!({"name": "Hostile"});
    if let (Some(a), Some(extra)) = (attributes.as_object_mut(), plan.as_object()) {
        a.extend(extra.clone());
    }
    let plan = app
        .create("plans", "plans", attributes, Value::Null)
        .await
        .id();
    let user = app
        .create(
            "users",
            "users",
            json!({"email": "hostile@example.com"}),
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
        .unwrap()
        .to_owned();
    let ups = app.create_upstream("backend", &upstream.url).await;
    for (name, pattern, auth) in [("public", "/public", false), ("private", "/private", true)] {
        app.create(
            "routes",
            "routes",
            json!({"name": name, "path_pattern": pattern, "match_type": "prefix",
                   "auth_required": auth}),
            json!({"upstream": link("upstreams", &ups)}),
        )
        .await;
    }
    let started = Instant::now();
    let unknown = format!("tg_live_{}", "Q".repeat(40));
    loop {
        let public = raw(app, "GET /public/warm", &[]).await.status;
        let private = raw(app, "GET /private/warm", &[("X-API-Key", &unknown)])
            .await
            .status;
        if public == 200 && private == 401 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "routes did not reach the proxy"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Site {
        upstream,
        key,
        user,
    }
}

#[tokio::test]
async fn a_path_has_one_meaning_at_the_gateway_and_upstream() {
    let app = spawn_app().await;
    let s = site(&app, json!({})).await;
    let hits = s.upstream.hits();

    // Each would reach `/private` through the public route if the gateway matched the path
    // as written and the upstream resolved it.
    let refused = [
        ("/public/../private/x", 401),
        ("/public/%2e%2e/private/x", 401),
        ("/public/%2E%2e/private/x", 401),
        ("/public/.%2e/private/x", 401),
        ("/public//../private/x", 401),
        ("/public/./../private/x", 401),
        ("/public/..%2fprivate/x", 400),
        ("/public/..%2Fprivate/x", 400),
        ("/public/..%5cprivate/x", 400),
        ("/public/..\\private/x", 400),
        ("/public/%00/../../private/x", 400),
        ("/public/%zz/x", 400),
        ("/public/x%", 400),
        ("/../private/x", 400),
        ("/public/../../private/x", 400),
        ("/%2e%2e/private/x", 400),
    ];
    for (path, status) in refused {
        let r = raw(&app, &format!("GET {path}"), &[]).await;
        assert_eq!(r.status, status, "{path}: {}", r.body);
        let code = if status == 400 {
            "INVALID_PATH"
        } else {
            "MISSING_API_KEY"
        };
        assert_eq!(r.body["error"]["code"], code, "{path}: {}", r.body);
        assert!(r.body["error"]["request_id"].is_string());
    }
    assert_eq!(
        s.upstream.hits(),
        hits,
        "no refused path reached the upstream"
    );

    // With a key the canonical path is what gets forwarded, query untouched.
    let forwarded = [
        ("/public/../private/x?a=%2e%2e&b=../c", "/private/x"),
        ("/public/%2e%2e/private/x", "/private/x"),
        ("/private//y//z", "/private/y/z"),
        ("/public/./x", "/public/x"),
        ("/public/%7Euser", "/public/~user"),
        ("/public/%41b%2dc", "/public/Ab-c"),
        ("/public/a%2fb", ""),
    ];
    for (path, upstream_path) in forwarded {
        let r = raw(&app, &format!("GET {path}"), &[("X-API-Key", &s.key)]).await;
        if upstream_path.is_empty() {
            assert_eq!(r.status, 400, "{path}: {}", r.body);
            continue;
        }
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert_eq!(r.body["path"], upstream_path, "{path}");
        if let Some((_, query)) = path.split_once('?') {
            assert_eq!(r.body["query"], query, "the query is forwarded as received");
        }
    }
}

/// Usage records of the app, newest first (up to 100).
async fn usage(app: &TestApp) -> Vec<Value> {
    let reply = app.get("/api/usage?page[size]=100").await;
    reply.expect(200);
    reply.body["data"].as_array().cloned().unwrap_or_default()
}

/// Polls the request log until `check` holds for the record with `request_id` (≤ 3 s).
async fn record_of(app: &TestApp, request_id: &str) -> Value {
    let started = Instant::now();
    loop {
        if let Some(record) = usage(app)
            .await
            .into_iter()
            .find(|r| r["attributes"]["request_id"] == request_id)
        {
            return record;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "no usage record for {request_id}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn long_paths_and_hosts_are_cut_in_the_usage_log() {
    let app = spawn_app().await;
    let _s = site(&app, json!({})).await;
    // 60 kB: the listener's HTTP parser refuses a request target of 64 KiB or more with a
    // bare 400 before Tollgate sees it.
    let path = format!("/public/{}", "a".repeat(60_000));
    let host = format!("{}.example.com", "h".repeat(300));
    let r = raw(
        &app,
        &format!("GET {path}"),
        &[("X-Request-Id", "long-path"), ("Host", &host)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["path"].as_str().map(str::len),
        Some(path.len()),
        "the upstream gets the whole path"
    );
    let record = record_of(&app, "long-path").await;
    let a = &record["attributes"];
    let stored = a["path"].as_str().unwrap();
    assert!(
        stored.len() <= 2048,
        "path of {} bytes stored",
        stored.len()
    );
    assert!(path.starts_with(stored));
    let stored = a["host"].as_str().unwrap();
    assert!(stored.len() <= 255, "host of {} bytes stored", stored.len());
    assert!(host.starts_with(stored));
}

#[tokio::test]
async fn address_and_path_override_headers_never_reach_the_upstream() {
    let app = spawn_app().await;
    let s = site(&app, json!({})).await;
    let spoofed = [
        ("Forwarded", "for=10.0.0.1;proto=https"),
        ("X-Real-IP", "10.0.0.1"),
        ("X-Original-URL", "/private/admin"),
        ("X-Rewrite-URL", "/private/admin"),
    ];
    for route in ["/public/x", "/private/x"] {
        let mut headers = spoofed.to_vec();
        headers.push(("X-API-Key", &s.key));
        headers.push(("X-Custom", "kept"));
        let r = raw(&app, &format!("GET {route}"), &headers).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let seen = &r.body["headers"];
        for (name, _) in spoofed {
            assert!(
                seen.get(name.to_ascii_lowercase()).is_none(),
                "{name} reached the upstream on {route}: {seen}"
            );
        }
        assert_eq!(seen["x-custom"], "kept");
        assert_eq!(seen["x-forwarded-for"], "127.0.0.1");
    }
}

#[tokio::test]
async fn trace_and_connect_are_refused_and_never_forwarded() {
    let app = spawn_app().await;
    let s = site(&app, json!({})).await;
    let hits = s.upstream.hits();
    for request_line in [
        "TRACE /public/x",
        "TRACE /private/x",
        "CONNECT 127.0.0.1:443",
        "CONNECT /public/x",
    ] {
        let r = raw(&app, request_line, &[("X-API-Key", &s.key)]).await;
        assert_eq!(r.status, 405, "{request_line}: {}", r.body);
        assert_eq!(r.body["error"]["code"], "METHOD_NOT_ALLOWED");
    }
    assert_eq!(s.upstream.hits(), hits, "nothing reached the upstream");
    // Other methods still pass.
    let r = raw(&app, "OPTIONS /public/x", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["method"], "OPTIONS");
}

/// Runs `sql` on the app's database over a connection of the test's own.
async fn sql(app: &TestApp, sql: &str) {
    use sea_orm::{ConnectionTrait, Database};
    let db = Database::connect(&app.database_url)
        .await
        .expect("test connection");
    db.execute_unprepared(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    db.close().await.ok();
}

/// Five counted records of `user` in this month, as another node would have written them.
async fn earlier_traffic(app: &TestApp, user: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 1_000;
    let mut rows = Vec::new();
    for n in 0..5 {
        rows.push(format!(
            "('use_earlier{n}', 'earlier-{n}', {now}, {now}, 'GET', 'h', '/private/x', 200, \
             NULL, 1, 1, 0, 0, '127.0.0.1', '', TRUE, FALSE, NULL, NULL, '{user}', NULL)"
        ));
    }
    sql(
        app,
        &format!(
            "INSERT INTO usage_records (id, request_id, created_at, updated_at, method, host, \
             path, status_code, error_code, duration_ms, upstream_duration_ms, request_bytes, \
             response_bytes, client_ip, user_agent, counted, overage, route_id, api_key_id, \
             user_id, group_id) VALUES {}",
            rows.join(", ")
        ),
    )
    .await;
}

/// The usage log is out of reach (its table renamed away, on SQLite and PostgreSQL alike:
/// every read and write of it fails while the rest of the database answers, so the test can
/// still use the admin API) when a quota-plan key is first used. The node counts from 0,
/// answers 200, keeps the records, and once the log is back writes them and adds its count.
#[tokio::test]
async fn a_usage_log_out_of_reach_costs_no_request_and_no_record() {
    let app = spawn_app().await;
    let s = site(&app, json!({"requests_per_month": 1000})).await;
    earlier_traffic(&app, &s.user).await;
    sql(
        &app,
        "ALTER TABLE usage_records RENAME TO usage_records_away",
    )
    .await;

    let mut ids = Vec::new();
    for n in 1..=3 {
        let id = format!("outage-{n}");
        let r = raw(
            &app,
            "GET /private/x",
            &[("X-API-Key", &s.key), ("X-Request-Id", &id)],
        )
        .await;
        assert_eq!(
            r.status, 200,
            "request {n} while the log is away: {}",
            r.body
        );
        ids.push(id);
    }
    let metrics = app
        .send(app.bare_request(reqwest::Method::GET, "/metrics"))
        .await;
    let text = metrics.body.as_str().unwrap_or_default().to_owned();
    assert!(
        text.lines()
            .any(|l| l.starts_with("tollgate_quota_seed_failures_total") && !l.ends_with(" 0")),
        "the failed seed is counted: {text}"
    );
    // Long enough for the writer to fail at least twice (it writes once a second): the old
    // writer dropped a batch after its second failure.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    sql(
        &app,
        "ALTER TABLE usage_records_away RENAME TO usage_records",
    )
    .await;

    // The records made during the outage arrive.
    for id in &ids {
        record_of(&app, id).await;
    }
    // And the counter now holds the log's count too: 5 earlier + every request of this node.
    let started = Instant::now();
    let mut sent = 3;
    loop {
        sent += 1;
        let response = app
            .client
            .get(format!("{}/private/x", app.proxy))
            .header("X-API-Key", &s.key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let used: u64 = response.headers()["x-quota-used"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        if used == 5 + sent {
            break;
        }
        assert!(
            used <= 5 + sent,
            "counted twice: {used} after {sent} requests"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the counter was not reconciled: {used} after {sent} requests"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `GET {proxy}/private/x` with the key: (status, `X-Quota-Used`).
async fn quota_call(app: &TestApp, proxy: &str, key: &str) -> (StatusCode, Option<u64>) {
    let r = app
        .client
        .get(format!("{proxy}/private/x"))
        .header("X-API-Key", key)
        .send()
        .await
        .expect("proxy answers");
    let used = r
        .headers()
        .get("x-quota-used")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    (r.status(), used)
}

/// Without Redis each node counts a quota in memory; the nodes learn of each other's
/// requests through the usage log they share, within a few seconds.
#[tokio::test]
async fn nodes_without_redis_learn_each_others_quota_use() {
    let app = spawn_app().await;
    let (_, second) = tollgate_tests::spawn_node(&app.database_url, |_| {}).await;
    let s = site(&app, json!({"requests_per_month": 60})).await;
    let unknown = format!("tg_live_{}", "R".repeat(40));
    let started = Instant::now();
    while quota_call(&app, &second, &unknown).await.0 != StatusCode::UNAUTHORIZED {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "second node has no route"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first = app.proxy.clone();
    // Both nodes hold a counter, then the first one takes 10 more.
    let mut sent = 0_u64;
    for proxy in [&first, &second] {
        assert_eq!(quota_call(&app, proxy, &s.key).await.0, StatusCode::OK);
        sent += 1;
    }
    for _ in 0..10 {
        assert_eq!(quota_call(&app, &first, &s.key).await.0, StatusCode::OK);
        sent += 1;
    }
    // The second node catches up: its count becomes the total of both nodes.
    let started = Instant::now();
    loop {
        let (status, used) = quota_call(&app, &second, &s.key).await;
        assert_eq!(status, StatusCode::OK);
        sent += 1;
        let used = used.unwrap();
        assert!(used <= sent, "counted more than was sent: {used} > {sent}");
        if used == sent {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "second node still at {used} of {sent}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // From there the second node lets through exactly what is left of the 60.
    let mut allowed = 0;
    while quota_call(&app, &second, &s.key).await.0 == StatusCode::OK {
        allowed += 1;
        assert!(allowed <= 60, "never refused");
    }
    assert_eq!(allowed, 60 - sent, "sent {sent} before");
    // And the first node learns that the quota is used up.
    let started = Instant::now();
    let mut overshoot = 0;
    while quota_call(&app, &first, &s.key).await.0 == StatusCode::OK {
        overshoot += 1;
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "first node never refused ({overshoot} over)"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Records of requests that need no database read (a public route) wait while the usage log
/// cannot be written, and are stored once it can.
#[tokio::test]
async fn usage_records_wait_for_the_log_to_come_back() {
    let app = spawn_app().await;
    let _s = site(&app, json!({})).await;
    sql(
        &app,
        "ALTER TABLE usage_records RENAME TO usage_records_away",
    )
    .await;
    let ids: Vec<String> = (1..=5).map(|n| format!("spooled-{n}")).collect();
    for id in &ids {
        let r = raw(&app, "GET /public/x", &[("X-Request-Id", id)]).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // Long enough for the writer to fail at least twice (it writes once a second).
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    sql(
        &app,
        "ALTER TABLE usage_records_away RENAME TO usage_records",
    )
    .await;
    for id in &ids {
        record_of(&app, id).await;
    }
}
