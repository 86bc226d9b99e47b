//! Admin writes under concurrency and faults: no lost update, no revived key, no 500 for a
//! conflict the database resolved, and changes reach every node's proxy in commit order.
//! Races are run with parallel clients over several trials; one lost update fails the test.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use tollgate_tests::{
    Reply, TestApp, backend_is_postgres, link, receiver::Receiver, spawn_app, spawn_app_with,
    spawn_node, upstream::Upstream,
};

const TRIALS: usize = 5;
const CLIENTS: usize = 8;

async fn create_key(app: &TestApp, user: &str, name: &str) -> (String, String) {
    let reply = app
        .create(
            "api-keys",
            "api_keys",
            json!({"name": name}),
            json!({"user": link("users", user)}),
        )
        .await;
    let key = reply.body["data"]["meta"]["key"]
        .as_str()
        .expect("the new key is shown once")
        .to_owned();
    (key, reply.id())
}

/// A route `/` to `upstream` open to every plan, so any live key passes.
async fn route_to(app: &TestApp, upstream: &Upstream) {
    let upstream_id = app.create_upstream("backend", &upstream.url).await;
    app.create(
        "routes",
        "routes",
        json!({"name": "all", "path_pattern": "/", "match_type": "prefix"}),
        json!({"upstream": link("upstreams", &upstream_id)}),
    )
    .await;
}

async fn proxy_status(app: &TestApp, proxy: &str, key: &str) -> StatusCode {
    app.client
        .get(format!("{proxy}/x"))
        .header("X-API-Key", key)
        .send()
        .await
        .expect("proxy answers")
        .status()
}

/// Waits (at most `limit`) until `check` holds; panics with `what` otherwise.
async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "{what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn never_a_server_error(replies: &[Reply], what: &str) {
    for reply in replies {
        assert!(
            reply.status.as_u16() < 500
                || (reply.status == StatusCode::SERVICE_UNAVAILABLE
                    && reply.header("retry-after").is_some()),
            "{what}: {} {}",
            reply.status,
            reply.body
        );
    }
}

/// Issue reproduction: renames of a key racing its revocation revived it on PostgreSQL
/// (every write loaded the row unlocked and wrote all columns back).
#[tokio::test]
async fn a_key_revoked_during_renames_stays_revoked() {
    let app = spawn_app().await;
    let user = app.create_user("racer@example.com").await;
    for trial in 0..TRIALS {
        let (_, key_id) = create_key(&app, &user, "k").await;
        let path = format!("/api/api-keys/{key_id}");
        let renames = (0..CLIENTS).map(|client| {
            let (app, key_id) = (&app, key_id.clone());
            async move {
                let mut replies = Vec::new();
                for round in 0..6 {
                    let name = format!("c{client}-r{round}");
                    replies.push(
                        app.patch_attributes(
                            "api-keys",
                            "api_keys",
                            &key_id,
                            json!({"name": name}),
                        )
                        .await,
                    );
                }
                replies
            }
        });
        let revoke = async {
            tokio::time::sleep(Duration::from_millis(15)).await;
            app.post(&format!("{path}/revoke"), json!({})).await
        };
        let (renamed, revoked) = tokio::join!(join_all(renames), revoke);
        revoked.expect(200);
        let renamed: Vec<Reply> = renamed.into_iter().flatten().collect();
        never_a_server_error(&renamed, "rename");
        let after = app.get(&path).await;
        after.expect(200);
        assert_eq!(
            after.attr("status"),
            "revoked",
            "trial {trial}: the revoke was undone: {}",
            after.body
        );
        assert!(!after.attr("revoked_at").is_null(), "trial {trial}");
    }
}

/// Eight clients each change a different attribute of one plan at once: every change stays.
#[tokio::test]
async fn concurrent_edits_of_different_attributes_all_stay() {
    let app = spawn_app().await;
    let attributes = [
        ("description", json!("described")),
        ("rate_limit_per_minute", json!(77)),
        ("requests_per_month", json!(7777)),
        ("price_monthly", json!(990)),
        ("overage_price", json!(3)),
        ("trial_days", json!(14)),
        ("stripe_price_id", json!("price_77")),
        ("paddle_price_id", json!("pri_77")),
    ];
    assert_eq!(attributes.len(), CLIENTS);
    for trial in 0..TRIALS {
        let plan = app.create_plan(&format!("Plan {trial}")).await;
        let edits = attributes.iter().map(|(name, value)| {
            let (app, plan) = (&app, plan.clone());
            async move {
                app.patch_attributes("plans", "plans", &plan, json!({ *name: value }))
                    .await
            }
        });
        let replies = join_all(edits).await;
        for reply in &replies {
            reply.expect(200);
        }
        let after = app.get(&format!("/api/plans/{plan}")).await;
        for (name, value) in &attributes {
            assert_eq!(
                after.attr(name),
                value,
                "trial {trial}: the change of {name} was lost: {}",
                after.body
            );
        }
    }
}

/// Two admins demote each other at the same moment: one may win, never both.
#[tokio::test]
async fn two_admins_demoting_each_other_leave_one_admin() {
    let app = spawn_app().await;
    for trial in 0..TRIALS {
        let other = app
            .create(
                "users",
                "users",
                json!({"email": format!("admin{trial}@example.com"), "role": "admin"}),
                Value::Null,
            )
            .await
            .id();
        let other_key = app
            .create(
                "api-keys",
                "api_keys",
                json!({"name": "other admin", "kind": "admin"}),
                json!({"user": link("users", &other)}),
            )
            .await
            .body["data"]["meta"]["key"]
            .as_str()
            .expect("key")
            .to_owned();
        // Everyone else is demoted first, so exactly these two admins remain.
        let admins = app
            .get("/api/users?filter[role]=admin&filter[status]=active&page[size]=100")
            .await;
        for row in admins.body["data"].as_array().expect("list") {
            let id = row["id"].as_str().expect("id");
            if id != app.admin_id && id != other {
                app.patch_attributes("users", "users", id, json!({"role": "user"}))
                    .await
                    .expect(200);
            }
        }
        let demote = |by: String, whom: String| {
            let app = &app;
            async move {
                let body =
                    json!({"data": {"type": "users", "id": whom, "attributes": {"role": "user"}}});
                Reply::from(
                    app.client
                        .patch(app.url(&format!("/api/users/{whom}")))
                        .bearer_auth(by)
                        .header("Content-Type", tollgate_tests::MT)
                        .header("Accept", tollgate_tests::MT)
                        .body(body.to_string())
                        .send()
                        .await
                        .expect("answer"),
                )
                .await
            }
        };
        let (first, second) = tokio::join!(
            demote(app.admin_key.clone(), other.clone()),
            demote(other_key.clone(), app.admin_id.clone())
        );
        never_a_server_error(&[first.clone_reply(), second.clone_reply()], "demote");
        let won = [&first, &second]
            .iter()
            .filter(|r| r.status == StatusCode::OK)
            .count();
        // A demoted admin's key sees only its own row: count with both, keep the larger.
        let mut left = 0;
        for key in [&app.admin_key, &other_key] {
            let admins = Reply::from(
                app.client
                    .get(app.url("/api/users?filter[role]=admin&filter[status]=active"))
                    .bearer_auth(key)
                    .header("Accept", tollgate_tests::MT)
                    .send()
                    .await
                    .expect("answer"),
            )
            .await;
            left = left.max(admins.body["data"].as_array().map_or(0, Vec::len));
        }
        assert!(
            won <= 1 && left >= 1,
            "trial {trial}: {won} demotions won, {left} active admins left ({} / {})",
            first.body,
            second.body
        );
        // Put the admin back for the next trial (whichever key still works).
        if left == 1 && won == 1 {
            let restorer = if first.status == StatusCode::OK {
                app.admin_key.clone()
            } else {
                other_key.clone()
            };
            let demoted = if first.status == StatusCode::OK {
                other.clone()
            } else {
                app.admin_id.clone()
            };
            let body =
                json!({"data": {"type": "users", "id": demoted, "attributes": {"role": "admin"}}});
            let status = app
                .client
                .patch(app.url(&format!("/api/users/{demoted}")))
                .bearer_auth(restorer)
                .header("Content-Type", tollgate_tests::MT)
                .body(body.to_string())
                .send()
                .await
                .expect("answer")
                .status();
            assert_eq!(status, StatusCode::OK);
        }
    }
}

trait CloneReply {
    fn clone_reply(&self) -> Reply;
}

impl CloneReply for Reply {
    fn clone_reply(&self) -> Reply {
        Reply {
            status: self.status,
            headers: self.headers.clone(),
            body: self.body.clone(),
        }
    }
}

/// Issue reproduction: deleting a webhook while the dispatcher records an attempt for it
/// deadlocked on PostgreSQL and answered 500. Now the deadlock victim runs again.
#[tokio::test]
async fn deleting_webhooks_while_they_are_delivered_never_answers_500() {
    let app = spawn_app_with(|c| {
        c.webhook_retry_schedule = "0ms,5ms,5ms,5ms,5ms,5ms,5ms,5ms".into();
        c.webhook_disable_after = 1000;
    })
    .await;
    let receiver = Receiver::scripted(Vec::new(), 500, Duration::ZERO).await;
    for trial in 0..TRIALS {
        let hooks: Vec<String> = join_all((0..CLIENTS).map(|i| {
            let (app, url) = (&app, receiver.url.clone());
            async move {
                app.create(
                    "webhooks",
                    "webhooks",
                    json!({"name": format!("hook {trial}-{i}"), "url": url, "events": ["*"]}),
                    Value::Null,
                )
                .await
                .id()
            }
        }))
        .await;
        // Events for all of them, then the deletes while their failed attempts are recorded.
        join_all((0..CLIENTS).map(|i| {
            let app = &app;
            async move { app.create_plan(&format!("Trigger {trial}-{i}")).await }
        }))
        .await;
        let before = receiver.received().len();
        eventually(Duration::from_secs(5), "attempts under way", || async {
            receiver.received().len() > before
        })
        .await;
        let replies = join_all(hooks.iter().map(|id| {
            let app = &app;
            async move { app.delete(&format!("/api/webhooks/{id}")).await }
        }))
        .await;
        never_a_server_error(&replies, "delete webhook");
        for reply in &replies {
            reply.expect(204);
        }
    }
}

/// Sixteen writers race on one user and one key (PATCH, revoke, suspend, logins): afterwards
/// every acknowledged change is in the rows and in the proxy's behaviour.
#[tokio::test]
async fn sixteen_writers_on_one_user_and_key_lose_nothing() {
    let app = spawn_app().await;
    let upstream = Upstream::start().await;
    route_to(&app, &upstream).await;
    let password = "a perfectly long password";
    for trial in 0..3 {
        let email = format!("target{trial}@example.com");
        let user = app
            .create(
                "users",
                "users",
                json!({"email": email, "password": password}),
                Value::Null,
            )
            .await
            .id();
        let (key, key_id) = create_key(&app, &user, "target").await;
        eventually(Duration::from_secs(2), "the new key is live", || async {
            proxy_status(&app, &app.proxy, &key).await == StatusCode::OK
        })
        .await;
        let writers = (0..16).map(|w| {
            let (app, user, key_id, email) = (&app, user.clone(), key_id.clone(), email.clone());
            async move {
                let mut acknowledged: Vec<(&'static str, String)> = Vec::new();
                for round in 0..4 {
                    let reply = match (w + round) % 4 {
                        0 => {
                            let name = format!("user w{w} r{round}");
                            let r = app
                                .patch_attributes("users", "users", &user, json!({"name": name}))
                                .await;
                            if r.status == StatusCode::OK {
                                acknowledged.push(("user-name", name));
                            }
                            r
                        }
                        1 => {
                            let name = format!("key w{w} r{round}");
                            let r = app
                                .patch_attributes("api-keys", "api_keys", &key_id, json!({"name": name}))
                                .await;
                            if r.status == StatusCode::OK {
                                acknowledged.push(("key-name", name));
                            }
                            r
                        }
                        2 if w % 8 == 0 => {
                            let r = app
                                .post(&format!("/api/api-keys/{key_id}/revoke"), json!({}))
                                .await;
                            if r.status == StatusCode::OK {
                                acknowledged.push(("revoked", String::new()));
                            }
                            r
                        }
                        3 if w % 8 == 1 => {
                            let r = app
                                .patch_attributes("users", "users", &user, json!({"status": "suspended"}))
                                .await;
                            if r.status == StatusCode::OK {
                                acknowledged.push(("suspended", String::new()));
                            }
                            r
                        }
                        _ => {
                            let body = json!({"data": {"type": "users", "attributes": {"email": email, "password": password}}});
                            let r = Reply::from(
                                app.client
                                    .post(app.url("/api/auth/login"))
                                    .header("Content-Type", tollgate_tests::MT)
                                    .body(body.to_string())
                                    .send()
                                    .await
                                    .expect("login answers"),
                            )
                            .await;
                            // Logins may be refused (suspended, throttled); they never write
                            // anything a reader could miss.
                            r
                        }
                    };
                    assert!(
                        reply.status.as_u16() < 500
                            || reply.status == StatusCode::SERVICE_UNAVAILABLE,
                        "writer {w}: {} {}",
                        reply.status,
                        reply.body
                    );
                }
                acknowledged
            }
        });
        let acknowledged: Vec<(&str, String)> =
            join_all(writers).await.into_iter().flatten().collect();
        assert!(
            acknowledged.iter().any(|(what, _)| *what == "revoked")
                && acknowledged.iter().any(|(what, _)| *what == "suspended"),
            "trial {trial}: the revoke and the suspension were acknowledged: {acknowledged:?}"
        );
        let user_row = app.get(&format!("/api/users/{user}")).await;
        let key_row = app.get(&format!("/api/api-keys/{key_id}")).await;
        assert_eq!(
            user_row.attr("status"),
            "suspended",
            "trial {trial}: {}",
            user_row.body
        );
        assert_eq!(
            key_row.attr("status"),
            "revoked",
            "trial {trial}: {}",
            key_row.body
        );
        let names: Vec<&String> = acknowledged
            .iter()
            .filter(|(what, _)| *what == "user-name")
            .map(|(_, n)| n)
            .collect();
        let shown = user_row
            .attr("name")
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            names.iter().any(|n| **n == shown),
            "trial {trial}: the user's name {shown:?} is none of the acknowledged ones"
        );
        let key_names: Vec<&String> = acknowledged
            .iter()
            .filter(|(what, _)| *what == "key-name")
            .map(|(_, n)| n)
            .collect();
        let shown = key_row.attr("name").as_str().unwrap_or_default().to_owned();
        assert!(
            key_names.iter().any(|n| **n == shown),
            "trial {trial}: the key's name {shown:?} is none of the acknowledged ones"
        );
        eventually(
            Duration::from_secs(2),
            "the proxy refuses the revoked key",
            || async { proxy_status(&app, &app.proxy, &key).await == StatusCode::UNAUTHORIZED },
        )
        .await;
        let body = json!({"data": {"type": "users", "attributes": {"email": email, "password": password}}});
        let login = app
            .client
            .post(app.url("/api/auth/login"))
            .header("Content-Type", tollgate_tests::MT)
            .body(body.to_string())
            .send()
            .await
            .expect("login answers")
            .status();
        assert_ne!(
            login,
            StatusCode::OK,
            "trial {trial}: a suspended user logged in"
        );
    }
}

/// Many concurrent revocations through one node reach a second node's proxy, all of them:
/// the second node follows the configuration version, which counts commits in order.
#[tokio::test]
async fn every_concurrent_revoke_reaches_the_other_node() {
    let app = spawn_app().await;
    let (_, other_proxy) = spawn_node(&app.database_url, |_| {}).await;
    let upstream = Upstream::start().await;
    route_to(&app, &upstream).await;
    let user = app.create_user("many@example.com").await;
    for trial in 0..TRIALS {
        let keys: Vec<(String, String)> = join_all((0..16).map(|i| {
            let (app, user) = (&app, &user);
            async move { create_key(app, user, &format!("k{trial}-{i}")).await }
        }))
        .await;
        for (key, _) in &keys {
            eventually(
                Duration::from_secs(2),
                "the key reaches the other node",
                || async { proxy_status(&app, &other_proxy, key).await == StatusCode::OK },
            )
            .await;
        }
        let revokes = join_all(keys.iter().map(|(_, id)| {
            let app = &app;
            async move {
                app.post(&format!("/api/api-keys/{id}/revoke"), json!({}))
                    .await
            }
        }))
        .await;
        for reply in &revokes {
            reply.expect(200);
        }
        for (key, id) in &keys {
            eventually(
                Duration::from_secs(2),
                &format!("trial {trial}: the revoke of {id} reaches the other node"),
                || async {
                    proxy_status(&app, &other_proxy, key).await == StatusCode::UNAUTHORIZED
                },
            )
            .await;
        }
    }
}

/// Connects to the test's own PostgreSQL database through the server's maintenance database.
async fn maintenance(app: &TestApp) -> (sea_orm::DatabaseConnection, String) {
    let (base, name) = app
        .database_url
        .rsplit_once('/')
        .expect("a database URL names its database");
    let server = Database::connect(format!("{base}/postgres"))
        .await
        .expect("maintenance connection");
    (server, name.to_owned())
}

/// PostgreSQL refuses connections to the database: admin writes answer 503 with
/// `Retry-After` (never 500), and work again once it is back.
#[tokio::test]
async fn admin_writes_answer_503_while_the_database_is_unreachable() {
    if !backend_is_postgres() {
        // SQLite is a file in this process: there is no server to lose.
        return;
    }
    let app = spawn_app().await;
    let plan = app.create_plan("Reachable").await;
    let (server, name) = maintenance(&app).await;
    server
        .execute_unprepared(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        .await
        .expect("close the database");
    server
        .execute_unprepared(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        ))
        .await
        .expect("end its connections");
    let mut replies = Vec::new();
    for attempt in 0..3 {
        replies.push(
            app.patch_attributes(
                "plans",
                "plans",
                &plan,
                json!({"description": format!("while down {attempt}")}),
            )
            .await,
        );
    }
    server
        .execute_unprepared(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .await
        .expect("reopen the database");
    for reply in &replies {
        reply.expect_error(503, "SERVICE_UNAVAILABLE", None);
        assert!(reply.header("retry-after").is_some(), "{}", reply.body);
    }
    let mut back = None;
    for _ in 0..50 {
        let reply = app
            .patch_attributes("plans", "plans", &plan, json!({"description": "back"}))
            .await;
        if reply.status == StatusCode::OK {
            back = Some(reply);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let back = back.expect("writes work again once the database is back");
    assert_eq!(back.attr("description"), "back");
}
