//! Usage rollups on the real database: equal to the request log for a mixed load (statuses,
//! keys, routes, a minute boundary, retried batches), quotas exact across a restart with the
//! log off, summary / series / export equal to the rollups, a `user` seeing only their own,
//! and retention dropping old log records and rollups.

use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use serde_json::{Value, json};
use tollgate_adapters::persistence::{SeaStore, UsageStore};
use tollgate_domain::{
    Timestamp,
    proxy::{
        limits::QuotaPeriod,
        rollups::LogPolicy,
        usage::{Retention, UsageLog, UsageRecord, counted_since},
    },
};
use tollgate_tests::{TestApp, link, spawn_app, spawn_node, upstream::Upstream};

fn now_ms() -> i64 {
    Timestamp::now().millis()
}

/// The `n`-th record of a mixed load around `at`: three keys of two users (one key of a
/// group), three routes, 2xx/3xx/4xx/5xx and refusals, and anonymous traffic.
fn mixed(n: usize, at: i64) -> UsageRecord {
    let key = n % 3;
    let (status, error) = match n % 7 {
        0 => (302, None),
        1 => (404, None),
        2 => (503, None),
        3 => (429, Some("RATE_LIMITED")),
        _ => (200, None),
    };
    let anonymous = n.is_multiple_of(11);
    UsageRecord {
        id: format!("use_{}", ulid::Ulid::generate()),
        request_id: format!("mixed-{n}"),
        created_at: at + (n as i64 % 20) * 1_000 - 10_000,
        method: "GET".into(),
        host: "api.example.com".into(),
        path: "/v1/x".into(),
        status_code: status,
        error_code: error,
        duration_ms: (n as u64 * 37) % 1_500,
        request_bytes: n as u64 % 100,
        response_bytes: (n as u64 * 13) % 1_000,
        client_ip: "127.0.0.1".into(),
        counted: !anonymous && error.is_none(),
        overage: !anonymous && error.is_none() && n.is_multiple_of(5),
        route_id: Some(format!("rte_{}", n % 3)),
        api_key_id: (!anonymous).then(|| format!("key_{key}")),
        user_id: (!anonymous).then(|| format!("usr_{}", key.min(1))),
        group_id: (!anonymous && key == 2).then(|| "grp_0".to_owned()),
        ..UsageRecord::default()
    }
}

async fn rows(db: &DatabaseConnection, sql: &str) -> Vec<Vec<Value>> {
    let backend = db.get_database_backend();
    db.query_all_raw(Statement::from_string(backend, sql.to_owned()))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|row| {
            (0..)
                .map_while(|i| {
                    row.try_get_by_index::<Option<i64>>(i)
                        .map(|v| json!(v))
                        .or_else(|_| row.try_get_by_index::<Option<String>>(i).map(|v| json!(v)))
                        .ok()
                })
                .collect()
        })
        .collect()
}

/// The request log aggregated as the rollups are, for comparison.
const LOG_BY_MINUTE: &str = "SELECT created_at - (created_at % 60000) AS bucket, \
     COALESCE(api_key_id, '') AS k, COALESCE(user_id, '') AS u, COALESCE(group_id, '') AS g, \
     COALESCE(route_id, '') AS r, \
     CASE WHEN error_code IS NOT NULL THEN error_code WHEN status_code < 300 THEN '2xx' \
     WHEN status_code < 400 THEN '3xx' WHEN status_code < 500 THEN '4xx' ELSE '5xx' END AS c, \
     COUNT(*) AS requests, CAST(SUM(CASE WHEN counted THEN 1 ELSE 0 END) AS BIGINT) AS counted, \
     CAST(SUM(CASE WHEN overage THEN 1 ELSE 0 END) AS BIGINT) AS overage, \
     CAST(SUM(request_bytes) AS BIGINT) AS rb, CAST(SUM(response_bytes) AS BIGINT) AS sb, \
     CAST(SUM(duration_ms) AS BIGINT) AS d \
     FROM usage_records GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6";
const ROLLUPS_BY_MINUTE: &str = "SELECT bucket, api_key_id, user_id, group_id, route_id, \
     status_class, requests, counted, overage, request_bytes, response_bytes, duration_ms \
     FROM usage_rollups WHERE span = 'minute' ORDER BY 1, 2, 3, 4, 5, 6";

#[tokio::test]
async fn rollups_equal_the_log_for_a_mixed_load_and_retried_batches() {
    let app = spawn_app().await;
    let store = SeaStore::connect(&app.database_url, 2).await.unwrap();
    let db = Database::connect(&app.database_url).await.unwrap();
    // Around a minute boundary.
    let boundary = now_ms() - now_ms() % 60_000;
    let load: Vec<UsageRecord> = (0..2_000).map(|n| mixed(n, boundary)).collect();
    let (first, second) = load.split_at(800);
    store.append(first).await.unwrap();
    // A retry of a stored batch (its commit's answer lost) stores nothing twice …
    store
        .append(first)
        .await
        .expect("a retried batch is recognised");
    // … and a retry that grew since (new records behind it) stores only the new ones.
    let grown: Vec<UsageRecord> = first.iter().chain(second).cloned().collect();
    store.append(&grown).await.unwrap();
    store.append(second).await.unwrap();

    let log = rows(&db, LOG_BY_MINUTE).await;
    let rolled = rows(&db, ROLLUPS_BY_MINUTE).await;
    assert!(log.len() > 20, "a mixed load: {} groups", log.len());
    assert_eq!(rolled, log, "minute rollups equal the request log");
    let total = rows(&db, "SELECT COUNT(*) FROM usage_records").await;
    assert_eq!(total[0][0], json!(2_000));
    for span in ["minute", "hour"] {
        let sum = rows(
            &db,
            &format!(
                "SELECT CAST(SUM(requests) AS BIGINT), CAST(SUM(errors) AS BIGINT) FROM usage_rollups WHERE span = '{span}'"
            ),
        )
        .await;
        let errors = load.iter().filter(|r| r.status_code >= 400).count();
        assert_eq!(sum[0], vec![json!(2_000), json!(errors)], "{span} rows");
    }
    let buckets = rows(
        &db,
        "SELECT COUNT(DISTINCT bucket) FROM usage_rollups WHERE span = 'minute'",
    )
    .await;
    assert_eq!(buckets[0][0], json!(2), "the load spans a minute boundary");

    // With the log off nothing guards against a duplicate but the batch id.
    let off = UsageStore::new(
        store.clone(),
        store.clone(),
        LogPolicy::parse("off").unwrap(),
    );
    let more: Vec<UsageRecord> = (0..500).map(|n| mixed(n, boundary)).collect();
    off.append(&more).await.unwrap();
    off.append(&more).await.unwrap();
    let sum = rows(
        &db,
        "SELECT CAST(SUM(requests) AS BIGINT) FROM usage_rollups WHERE span = 'hour'",
    )
    .await;
    assert_eq!(sum[0][0], json!(2_500), "the retried batch counted once");
    let total = rows(&db, "SELECT COUNT(*) FROM usage_records").await;
    assert_eq!(total[0][0], json!(2_000), "the log kept none of them");

    // Quota counts: exact per subject (a group's keys count for the group).
    let period = QuotaPeriod::containing(Timestamp::from_millis(boundary)).start;
    let now = Timestamp::now();
    let all: Vec<&UsageRecord> = load.iter().chain(&more).collect();
    for subject in ["usr_0", "usr_1", "grp_0"] {
        let expected = all
            .iter()
            .filter(|r| r.counted && r.created_at >= period.millis())
            .filter(|r| r.group_id.as_deref().or(r.user_id.as_deref()) == Some(subject))
            .count() as u64;
        assert!(expected > 0);
        let counted = counted_since(&store, subject, period, now).await.unwrap();
        assert_eq!(counted, expected, "{subject}");
    }
}

/// A user on a quota plan with a key, one route, and the route live on the proxy.
async fn quota_site(app: &TestApp, upstream: &Upstream) -> (String, String) {
    let plan = app
        .create(
            "plans",
            "plans",
            json!({"name": "Metered", "requests_per_month": 1000}),
            Value::Null,
        )
        .await
        .id();
    let user = app
        .create(
            "users",
            "users",
            json!({"email": "metered@example.com"}),
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
    app.create(
        "routes",
        "routes",
        json!({"name": "metered", "path_pattern": "/m", "match_type": "prefix", "auth_required": true}),
        json!({"upstream": link("upstreams", &ups)}),
    )
    .await;
    (user, key)
}

async fn used(client: &reqwest::Client, proxy: &str, key: &str) -> Option<u64> {
    let r = client
        .get(format!("{proxy}/m/x"))
        .header("X-API-Key", key)
        .send()
        .await
        .ok()?;
    if r.status() != 200 {
        return None;
    }
    r.headers().get("x-quota-used")?.to_str().ok()?.parse().ok()
}

/// With the request log off the quota is seeded from the rollups alone: a node started later
/// on the same database (a restart) continues the count exactly.
#[tokio::test]
async fn the_quota_is_exact_across_a_restart_with_the_log_off() {
    let app = tollgate_tests::spawn_app_with(|c| c.usage_log_sample = "off".into()).await;
    let upstream = Upstream::start().await;
    let (_, key) = quota_site(&app, &upstream).await;
    let started = Instant::now();
    while used(&app.client, &app.proxy, &key).await.is_none() {
        assert!(started.elapsed() < Duration::from_secs(3), "route not live");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..9 {
        used(&app.client, &app.proxy, &key).await.expect("admitted");
    }
    // Ten requests; wait until the writer stored them.
    let db = Database::connect(&app.database_url).await.unwrap();
    let started = Instant::now();
    loop {
        let n = rows(
            &db,
            "SELECT COALESCE(CAST(SUM(counted) AS BIGINT), 0) FROM usage_quota_counts",
        )
        .await;
        if n[0][0] == json!(10) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "not written: {n:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let logged = rows(&db, "SELECT COUNT(*) FROM usage_records").await;
    assert_eq!(logged[0][0], json!(0), "the log is off");
    let (_, restarted) = spawn_node(&app.database_url, |c| c.usage_log_sample = "off".into()).await;
    let started = Instant::now();
    let first = loop {
        if let Some(n) = used(&app.client, &restarted, &key).await {
            break n;
        }
        assert!(started.elapsed() < Duration::from_secs(3), "route not live");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        first, 11,
        "the restarted node continues at the stored count"
    );
}

/// Summary, series and export of records appended straight to the database, compared with
/// what was appended; a `user` sees only their own.
#[tokio::test]
async fn summary_series_and_export_equal_the_rollups() {
    let app = spawn_app().await;
    let store = SeaStore::connect(&app.database_url, 2).await.unwrap();
    let mine = app
        .create_user_with_password("mine@example.com", "a long user password", "user")
        .await;
    let now = now_ms();
    let minute = now - now % 60_000;
    let mut load: Vec<UsageRecord> = (0..300)
        .map(|n| {
            let mut r = mixed(n, minute - 120_000);
            r.created_at = minute - 120_000 + (n as i64 % 3) * 60_000 + 1_000;
            r
        })
        .collect();
    for r in load.iter_mut().take(30) {
        r.user_id = Some(mine.clone());
        r.group_id = None;
        r.api_key_id = Some("key_mine".into());
    }
    store.append(&load).await.unwrap();
    let sum = |f: &dyn Fn(&UsageRecord) -> bool| load.iter().filter(|r| f(r)).count() as i64;

    let summary = app
        .get("/api/usage/summary?filter[period]=1h&group_by=route")
        .await;
    summary.expect(200);
    let totals = &summary.body["meta"]["totals"];
    assert_eq!(totals["requests"], 300);
    assert_eq!(totals["errors"], sum(&|r| r.status_code >= 400));
    assert_eq!(totals["counted"], sum(&|r| r.counted));
    assert_eq!(totals["overage"], sum(&|r| r.overage));
    let groups = summary.body["meta"]["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 3);
    for g in groups {
        let route = g["id"].as_str().unwrap().to_owned();
        assert_eq!(g["type"], "routes");
        assert_eq!(
            g["requests"],
            sum(&|r| r.route_id.as_deref() == Some(route.as_str()))
        );
    }
    let by_status = app
        .get("/api/usage/summary?filter[period]=24h&group_by=status")
        .await;
    by_status.expect(200);
    let limited = by_status.body["meta"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == "RATE_LIMITED")
        .expect("refusals by their code")
        .clone();
    assert_eq!(
        limited["requests"],
        sum(&|r| r.error_code == Some("RATE_LIMITED"))
    );

    // The series: 1 h at 1 min is 61 buckets, every one present, and adds up to the summary.
    let series = app.get("/api/usage/series?filter[period]=1h").await;
    series.expect(200);
    let meta = &series.body["meta"];
    assert_eq!(meta["interval"], "1m");
    let points = meta["points"].as_array().unwrap();
    assert_eq!(points.len(), 61);
    assert!(
        points
            .windows(2)
            .all(|w| w[0]["at"].as_str() < w[1]["at"].as_str())
    );
    let total: i64 = points.iter().map(|p| p["requests"].as_i64().unwrap()).sum();
    assert_eq!(total, 300);
    assert_eq!(points.iter().filter(|p| p["requests"] != 0).count(), 3);
    assert_eq!(points[0]["requests"], 0, "empty buckets are zeros");
    assert!(points[0]["at"].as_str().unwrap().ends_with(":00Z"));
    let week = app
        .get("/api/usage/series?filter[period]=7d&filter[interval]=1h&group_by=key")
        .await;
    week.expect(200);
    assert_eq!(week.body["meta"]["points"].as_array().unwrap().len(), 169);
    let series = week.body["meta"]["series"].as_array().unwrap();
    let ids: Vec<&Value> = series.iter().map(|s| &s["id"]).collect();
    assert!(
        ids.contains(&&Value::Null),
        "anonymous traffic is a series with a null id"
    );
    let per_series: i64 = series
        .iter()
        .flat_map(|s| s["points"].as_array().unwrap())
        .map(|p| p["requests"].as_i64().unwrap())
        .sum();
    assert_eq!(per_series, 300, "the few keys are all among the top 20");
    for (query, parameter) in [
        ("filter[period]=7d&filter[interval]=1m", "filter[interval]"),
        ("filter[interval]=2m", "filter[interval]"),
        ("filter[period]=1y", "filter[period]"),
        ("group_by=colour", "group_by"),
        ("filter[status]=200", "filter[status]"),
        ("page[size]=1", "page[size]"),
    ] {
        let reply = app.get(&format!("/api/usage/series?{query}")).await;
        assert_eq!(reply.status, 400, "{query}: {}", reply.body);
        assert_eq!(reply.parameter(), parameter, "{query}");
    }

    // A `user` sees only their own traffic, in both.
    let browser = app.login("mine@example.com", "a long user password").await;
    let own = app
        .with_token(
            reqwest::Method::GET,
            "/api/usage/summary?filter[period]=1h",
            &browser.token,
        )
        .await;
    own.expect(200);
    assert_eq!(own.body["meta"]["totals"]["requests"], 30);
    let own = app
        .with_token(
            reqwest::Method::GET,
            "/api/usage/series?filter[period]=1h&group_by=user",
            &browser.token,
        )
        .await;
    own.expect(200);
    let series = own.body["meta"]["series"].as_array().unwrap();
    assert_eq!(series.len(), 1);
    assert_eq!(series[0]["id"], mine.as_str());
    let export = app
        .with_token(
            reqwest::Method::GET,
            "/api/usage/export?filter[month]=2026-11",
            &browser.token,
        )
        .await;
    assert_eq!(export.status, 403, "{}", export.body);

    // The export of this month matches the summary per key.
    let month = Timestamp::from_millis(minute).to_string()[..7].to_owned();
    let export = app
        .get(&format!("/api/usage/export?filter[month]={month}"))
        .await;
    export.expect(200);
    let lines = export.body["meta"]["rows"].as_array().unwrap();
    let by_key = app
        .get("/api/usage/summary?filter[period]=month&group_by=key")
        .await;
    for group in by_key.body["meta"]["groups"].as_array().unwrap() {
        let of_key: Vec<&Value> = lines
            .iter()
            .filter(|l| l["api_key_id"] == group["id"])
            .collect();
        for column in [
            "requests",
            "counted",
            "overage",
            "errors",
            "request_bytes",
            "response_bytes",
        ] {
            let exported: i64 = of_key.iter().map(|l| l[column].as_i64().unwrap()).sum();
            assert_eq!(
                json!(exported),
                group[column],
                "{column} of {}",
                group["id"]
            );
        }
    }
    let csv = app
        .send(
            app.request(
                reqwest::Method::GET,
                &format!("/api/usage/export?filter[month]={month}&format=csv"),
            )
            .header("Accept", "text/csv"),
        )
        .await;
    assert_eq!(csv.status, 200);
    // The CLI (`tollgate usage export`) prints the same text.
    let lines = tollgate_domain::proxy::usage_report::export(
        &store,
        &tollgate_domain::Actor::system(),
        &month,
    )
    .await
    .unwrap();
    let printed = tollgate_adapters::http::admin::usage::export_csv(&lines);
    assert_eq!(csv.body.as_str(), Some(printed.as_str()));
    assert!(printed.starts_with(
        "month,subject_type,subject_id,api_key_id,user_id,group_id,requests,counted,overage,errors,request_bytes,response_bytes\n"
    ));
    let bad = app.get("/api/usage/export?filter[month]=2026-13").await;
    bad.expect_error(400, "INVALID_FILTER", None);
    assert_eq!(bad.parameter(), "filter[month]");
}

/// Retention: log records, minute and hour rollups past their age go; newer ones stay. On
/// PostgreSQL the log's old days go as whole partitions.
#[tokio::test]
async fn retention_drops_old_rows_and_partitions() {
    let app = spawn_app().await;
    let store = SeaStore::connect(&app.database_url, 2).await.unwrap();
    let db = Database::connect(&app.database_url).await.unwrap();
    let day = 86_400_000;
    let now = now_ms();
    let ages = [0, 3 * day, 10 * day, 20 * day, 500 * day];
    // Partitions (PostgreSQL) of the days from 10 days ago, as a server running then made.
    tollgate_adapters::persistence::ensure_usage_partitions(
        store.connection(),
        Timestamp::from_millis(now - 10 * day),
    )
    .await
    .unwrap();
    let partition = format!(
        "SELECT COUNT(*) FROM pg_class WHERE relname = 'usage_records_p{}'",
        Timestamp::from_millis(now - 10 * day).to_string()[..10].replace('-', "")
    );
    if tollgate_tests::backend_is_postgres() {
        assert_eq!(rows(&db, &partition).await[0][0], json!(1));
    }
    let load: Vec<UsageRecord> = ages
        .iter()
        .flat_map(|age| {
            // The middle of that day (of today: a minute ago), clear of day boundaries.
            let at = match age {
                0 => now - 60_000,
                age => (now - age) - (now - age) % day + day / 2,
            };
            (0..50).map(move |n| mixed(n, at))
        })
        .collect();
    store.append(&load).await.unwrap();
    let retention = Retention {
        log_days: 7,
        minute_days: 14,
        hour_days: 396,
    };
    let pruned = store
        .prune(Timestamp::from_millis(now), &retention)
        .await
        .unwrap();
    assert_eq!(pruned.records, 150, "the records older than 7 days");
    let count = |sql: &'static str| {
        let db = db.clone();
        async move { rows(&db, sql).await[0][0].clone() }
    };
    assert_eq!(
        count("SELECT COUNT(*) FROM usage_records").await,
        json!(100)
    );
    assert_eq!(
        count("SELECT CAST(SUM(requests) AS BIGINT) FROM usage_rollups WHERE span = 'minute'")
            .await,
        json!(150)
    );
    assert_eq!(
        count("SELECT CAST(SUM(requests) AS BIGINT) FROM usage_rollups WHERE span = 'hour'").await,
        json!(200)
    );
    if tollgate_tests::backend_is_postgres() {
        let partitions = rows(
            &db,
            "SELECT COUNT(*) FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent \
             WHERE p.relname = 'usage_records'",
        )
        .await;
        assert!(
            partitions[0][0].as_i64().unwrap() >= 2,
            "partitioned: {partitions:?}"
        );
        assert_eq!(
            rows(&db, &partition).await[0][0],
            json!(0),
            "the partition of 10 days ago is gone"
        );
    }
}

/// `TOLLGATE_USAGE_LOG_FILE`: one JSON line per request, with the request log's columns, even
/// when the database log keeps none of them.
#[tokio::test]
async fn every_request_is_a_json_line_for_shippers() {
    let file =
        std::env::temp_dir().join(format!("tollgate-lines-{}.jsonl", ulid::Ulid::generate()));
    let path = file.to_string_lossy().into_owned();
    let app = tollgate_tests::spawn_app_with(|c| {
        c.usage_log_file = Some(path.clone());
        c.usage_log_sample = "off".into();
    })
    .await;
    let upstream = Upstream::start().await;
    let (user, key) = quota_site(&app, &upstream).await;
    let started = Instant::now();
    while used(&app.client, &app.proxy, &key).await.is_none() {
        assert!(started.elapsed() < Duration::from_secs(3), "route not live");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..4 {
        used(&app.client, &app.proxy, &key).await.expect("admitted");
    }
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is JSON"))
            .collect();
        let mine: Vec<&Value> = lines
            .iter()
            .filter(|l| l["user_id"] == user.as_str())
            .collect();
        if mine.len() == 5 {
            assert!(
                mine.iter()
                    .all(|l| l["status_code"] == 200 && l["counted"] == true)
            );
            assert!(mine[0]["id"].as_str().unwrap().starts_with("use_"));
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{} lines: {text}",
            mine.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    std::fs::remove_file(&file).ok();
}
