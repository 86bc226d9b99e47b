//! Authentication under hostile and concurrent use: logins racing a suspension, parallel
//! password guessing, forwarded addresses, media-type parameters, reset-mail flooding and
//! session renewal.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use reqwest::{Method, StatusCode};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use tollgate_tests::{ADMIN_EMAIL, ADMIN_PASSWORD, MT, Reply, TestApp, spawn_app, spawn_app_with};

const PASSWORD: &str = "a long user password";
const TRIALS: usize = 5;

fn login_body(email: &str, password: &str) -> String {
    json!({"data": {"type": "sessions", "attributes": {"email": email, "password": password}}})
        .to_string()
}

/// `POST /api/auth/login`, optionally with an `X-Forwarded-For`.
async fn login_from(app: &TestApp, email: &str, password: &str, forwarded: Option<&str>) -> Reply {
    let mut request = app
        .client
        .post(app.url("/api/auth/login"))
        .header("Content-Type", MT)
        .body(login_body(email, password));
    if let Some(ip) = forwarded {
        request = request.header("X-Forwarded-For", ip);
    }
    Reply::from(request.send().await.expect("login sent")).await
}

/// The `tollgate_session=…` pair of a reply's `Set-Cookie`.
fn session_cookie(reply: &Reply) -> String {
    reply
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_owned()
}

/// `GET /api/auth/me` with one credential: `Ok(())` for 200, else the status.
async fn me_with(app: &TestApp, token: Option<&str>, cookie: Option<&str>) -> StatusCode {
    let mut request = app.client.get(app.url("/api/auth/me")).header("Accept", MT);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(cookie) = cookie {
        request = request.header("Cookie", cookie);
    }
    request.send().await.expect("me sent").status()
}

async fn user_status(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/api/users/{id}"))
        .await
        .attr("status")
        .clone()
}

/// Logins in a loop from 8 clients while an admin suspends the user: the suspension holds, and
/// no session or token from any of those logins works afterwards, not even once the user is
/// active again (a login racing the suspension must not leave a session behind).
#[tokio::test]
async fn a_suspension_is_not_undone_by_parallel_logins() {
    for trial in 0..TRIALS {
        let app = Arc::new(spawn_app().await);
        let email = format!("racer{trial}@example.com");
        let user = app
            .create_user_with_password(&email, PASSWORD, "user")
            .await;
        let stop = Arc::new(AtomicBool::new(false));
        let logins = Arc::new(AtomicUsize::new(0));
        let issued: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let mut loops = Vec::new();
        for _ in 0..8 {
            let (app, email, stop, logins, issued) = (
                app.clone(),
                email.clone(),
                stop.clone(),
                logins.clone(),
                issued.clone(),
            );
            loops.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let reply = login_from(&app, &email, PASSWORD, None).await;
                    match reply.status.as_u16() {
                        200 => {
                            let token = reply.attr("token").as_str().unwrap_or_default().to_owned();
                            issued.lock().unwrap().push((token, session_cookie(&reply)));
                            logins.fetch_add(1, Ordering::Relaxed);
                        }
                        403 => assert_eq!(reply.code(), "ACCOUNT_INACTIVE", "{}", reply.body),
                        // More than 5 logins of one email in flight: the rest wait a second.
                        429 => assert_eq!(reply.header("retry-after"), Some("1")),
                        503 => {}
                        other => panic!("login answered {other}: {}", reply.body),
                    }
                }
            }));
        }
        // Suspend while the loops are hashing.
        while logins.load(Ordering::Relaxed) < 8 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        app.patch_attributes("users", "users", &user, json!({"status": "suspended"}))
            .await
            .expect(200);
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, Ordering::Relaxed);
        for l in loops {
            l.await.expect("login loop");
        }
        assert_eq!(
            user_status(&app, &user).await,
            json!("suspended"),
            "trial {trial}: a login wrote the user back to active"
        );
        let issued = issued.lock().unwrap().clone();
        assert!(!issued.is_empty());
        for (token, cookie) in &issued {
            assert_eq!(
                me_with(&app, Some(token), None).await,
                StatusCode::UNAUTHORIZED
            );
            assert_eq!(
                me_with(&app, None, Some(cookie)).await,
                StatusCode::UNAUTHORIZED
            );
        }
        // Reactivated, the user's old sessions stay dead.
        app.patch_attributes("users", "users", &user, json!({"status": "active"}))
            .await
            .expect(200);
        for (token, cookie) in &issued {
            assert_eq!(
                me_with(&app, Some(token), None).await,
                StatusCode::UNAUTHORIZED,
                "trial {trial}: a session opened during the suspension survived it"
            );
            assert_eq!(
                me_with(&app, None, Some(cookie)).await,
                StatusCode::UNAUTHORIZED,
                "trial {trial}: a session cookie survived the suspension"
            );
        }
        app.login_reply(&email, PASSWORD).await.expect(200);
    }
}

/// 50 parallel wrong passwords for one email: 5 are checked (401), the rest are refused (429).
#[tokio::test]
async fn parallel_wrong_passwords_stop_at_the_limit() {
    for trial in 0..TRIALS {
        let app = Arc::new(spawn_app().await);
        let attempts: Vec<_> = (0..50)
            .map(|i| {
                let app = app.clone();
                tokio::spawn(async move {
                    login_from(&app, ADMIN_EMAIL, &format!("wrong password {i:04}"), None).await
                })
            })
            .collect();
        let (mut rejected, mut throttled) = (0, 0);
        for attempt in attempts {
            let reply = attempt.await.expect("attempt");
            match reply.status.as_u16() {
                401 => {
                    reply.expect_error(401, "INVALID_CREDENTIALS", None);
                    rejected += 1;
                }
                429 => {
                    reply.expect_error(429, "TOO_MANY_LOGIN_ATTEMPTS", None);
                    let retry: u64 = reply.header("retry-after").unwrap().parse().unwrap();
                    assert!((1..=900).contains(&retry), "{retry}");
                    throttled += 1;
                }
                other => panic!("trial {trial}: {other}: {}", reply.body),
            }
        }
        assert_eq!(
            (rejected, throttled),
            (5, 45),
            "trial {trial}: at most 5 guesses are checked"
        );
        login_from(&app, ADMIN_EMAIL, ADMIN_PASSWORD, None)
            .await
            .expect_error(429, "TOO_MANY_LOGIN_ATTEMPTS", None);
    }
}

/// An email longer than any stored one (254) is refused before anything else: no hashing, and
/// no failure counted against the caller's address (no account can be guessed with it).
#[tokio::test]
async fn an_oversized_email_is_refused_without_work() {
    let app = spawn_app().await;
    let long = format!("{}@example.com", "a".repeat(100_000));
    for _ in 0..25 {
        login_from(&app, &long, PASSWORD, None).await.expect_error(
            401,
            "INVALID_CREDENTIALS",
            None,
        );
    }
    login_from(&app, ADMIN_EMAIL, ADMIN_PASSWORD, None)
        .await
        .expect(200);
    // A password longer than the policy allows cannot match: refused, and counted.
    let long_password = "p".repeat(200_000);
    for _ in 0..5 {
        login_from(&app, ADMIN_EMAIL, &long_password, None)
            .await
            .expect_error(401, "INVALID_CREDENTIALS", None);
    }
    login_from(&app, ADMIN_EMAIL, ADMIN_PASSWORD, None)
        .await
        .expect_error(429, "TOO_MANY_LOGIN_ATTEMPTS", None);
}

/// Failures from 127.0.0.1 count per forwarded address only when 127.0.0.1 is a trusted proxy.
#[tokio::test]
async fn the_ip_limit_believes_forwarded_for_only_from_trusted_proxies() {
    // Trusted: 20 failures from 10.0.0.1 lock 10.0.0.1, not 10.0.0.2.
    let app = spawn_app_with(|c| c.trusted_proxies = "127.0.0.1".into()).await;
    for i in 0..20 {
        login_from(
            &app,
            &format!("nobody{i}@example.com"),
            PASSWORD,
            Some("10.0.0.1"),
        )
        .await
        .expect_error(401, "INVALID_CREDENTIALS", None);
    }
    login_from(&app, "nobody-else@example.com", PASSWORD, Some("10.0.0.1"))
        .await
        .expect_error(429, "TOO_MANY_LOGIN_ATTEMPTS", None);
    login_from(&app, "nobody-else@example.com", PASSWORD, Some("10.0.0.2"))
        .await
        .expect_error(401, "INVALID_CREDENTIALS", None);
    login_from(
        &app,
        ADMIN_EMAIL,
        ADMIN_PASSWORD,
        Some("192.168.1.1, 10.0.0.3"),
    )
    .await
    .expect(200);

    // Not trusted: the header is ignored, the peer (127.0.0.1) is counted.
    let app = spawn_app().await;
    for i in 0..20 {
        let forwarded = format!("10.0.1.{i}");
        login_from(
            &app,
            &format!("nobody{i}@example.com"),
            PASSWORD,
            Some(&forwarded),
        )
        .await
        .expect_error(401, "INVALID_CREDENTIALS", None);
    }
    login_from(&app, "nobody-else@example.com", PASSWORD, Some("10.0.2.1"))
        .await
        .expect_error(429, "TOO_MANY_LOGIN_ATTEMPTS", None);
}

/// JSON:API 1.1: `Content-Type` carries no parameter but `profile` (`ext` → its own code); in
/// `Accept`, `q` ends the media-type parameters.
#[tokio::test]
async fn media_type_parameters_are_refused() {
    let app = spawn_app().await;
    let body = json!({"data": {"type": "plans", "attributes": {"name": "Pro"}}}).to_string();
    for content_type in [
        "application/vnd.api+json; q=0.5",
        "application/vnd.api+json;q=1",
        "application/vnd.api+json; profile=\"https://x\"; q=0.5",
        "application/vnd.api+json; profile=\"https://x;charset=y\"; foo=bar",
    ] {
        let reply = app
            .send(
                app.request(Method::POST, "/api/plans")
                    .header("Content-Type", content_type)
                    .body(body.clone()),
            )
            .await;
        reply.expect_error(415, "UNSUPPORTED_MEDIA_TYPE", None);
        assert_eq!(
            reply.body["errors"][0]["source"]["header"],
            json!("Content-Type")
        );
    }
    for accept in [
        "application/vnd.api+json; foo=bar; q=0.9",
        "application/vnd.api+json; charset=utf-8, application/vnd.api+json; version=2",
        "application/vnd.api+json; profile=\"https://x\"; ext=\"https://y\"",
    ] {
        app.send(
            app.bare_request(Method::GET, "/api/plans")
                .header("Accept", accept),
        )
        .await
        .expect_error(406, "NOT_ACCEPTABLE", None);
    }
    for accept in [
        "application/vnd.api+json; q=0.9; foo=bar",
        "application/vnd.api+json; profile=\"https://x;charset=y\"",
        "application/vnd.api+json; version=2, application/vnd.api+json",
    ] {
        app.send(
            app.bare_request(Method::GET, "/api/plans")
                .header("Accept", accept),
        )
        .await
        .expect(200);
    }
    app.send(
        app.request(Method::POST, "/api/plans")
            .header(
                "Content-Type",
                "application/vnd.api+json; profile=\"https://x;y\"",
            )
            .body(body),
    )
    .await
    .expect(201);
}

async fn forgot(app: &TestApp, email: &str) -> Reply {
    let body = json!({"data": {"type": "password_resets", "attributes": {"email": email}}});
    Reply::from(
        app.client
            .post(app.url("/api/auth/forgot-password"))
            .header("Content-Type", MT)
            .body(body.to_string())
            .send()
            .await
            .expect("forgot sent"),
    )
    .await
}

/// The 6th reset request within the hour mails nothing, though older tokens are replaced;
/// known and unknown addresses get the same answer.
#[tokio::test]
async fn reset_mails_are_limited_per_hour() {
    let app = spawn_app_with(|c| c.dev_mode = true).await;
    let email = format!("limit-{}@example.com", app.admin_id.to_lowercase());
    let marker = format!("marker-{}@example.com", app.admin_id.to_lowercase());
    app.create_user_with_password(&email, PASSWORD, "user")
        .await;
    app.create_user_with_password(&marker, PASSWORD, "user")
        .await;
    let unknown = forgot(&app, &format!("unknown-{}@example.com", app.admin_id)).await;
    unknown.expect(200);
    for _ in 0..6 {
        let known = forgot(&app, &email).await;
        known.expect(200);
        assert_eq!(known.body, unknown.body, "known and unknown look alike");
    }
    // Requests are handled in order: once the marker's mail is out, all six were decided.
    forgot(&app, &marker).await.expect(200);
    tollgate_tests::wait_reset_mails(&marker, 1).await;
    assert_eq!(
        tollgate_tests::reset_mails(&email).len(),
        5,
        "at most 5 mails per address per hour"
    );
    // Only the newest mailed token works.
    let tokens = tollgate_tests::reset_mails(&email);
    let reset = |token: String| {
        let app = &app;
        async move {
            let body = json!({"data": {"type": "password_resets", "attributes": {"token": token, "password": "a brand new password"}}});
            Reply::from(
                app.client
                    .post(app.url("/api/auth/reset-password"))
                    .header("Content-Type", MT)
                    .body(body.to_string())
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    reset(tokens[3].clone())
        .await
        .expect_error(400, "INVALID_RESET_TOKEN", None);
    reset(tokens[4].clone()).await.expect(200);
}

async fn session_expiry(app: &TestApp, sid: &str) -> i64 {
    let db = Database::connect(&app.database_url).await.unwrap();
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            format!("SELECT expires_at AS e FROM sessions WHERE id = '{sid}'"),
        ))
        .await
        .unwrap()
        .expect("the session row");
    row.try_get::<i64>("", "e").unwrap()
}

async fn set_session_expiry(app: &TestApp, sid: &str, at: i64) {
    let db = Database::connect(&app.database_url).await.unwrap();
    db.execute_unprepared(&format!(
        "UPDATE sessions SET expires_at = {at} WHERE id = '{sid}'"
    ))
    .await
    .unwrap();
}

/// Recycling and password changes rotate the cookie but keep the session's absolute end.
#[tokio::test]
async fn renewal_keeps_the_absolute_expiry() {
    let app = spawn_app().await;
    app.create_user_with_password("renew@example.com", PASSWORD, "user")
        .await;
    let browser = app.login("renew@example.com", PASSWORD).await;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let soon = now_ms + 3_600_000;
    set_session_expiry(&app, &browser.session_id, soon).await;
    app.send(browser.request(&app, Method::POST, "/api/auth/sessions/recycle"))
        .await
        .expect(204);
    assert_eq!(session_expiry(&app, &browser.session_id).await, soon);
    app.send(browser.request(&app, Method::GET, "/api/auth/me"))
        .await
        .expect(200);
    let change = json!({"data": {"type": "passwords", "attributes": {"current_password": PASSWORD, "password": "another long password"}}});
    app.send(
        browser
            .request(&app, Method::POST, "/api/auth/password")
            .header("Content-Type", MT)
            .body(change.to_string()),
    )
    .await
    .expect(204);
    assert_eq!(session_expiry(&app, &browser.session_id).await, soon);
    app.send(browser.request(&app, Method::GET, "/api/auth/me"))
        .await
        .expect(200);
    // Past the absolute end the session is gone, renewed or not.
    set_session_expiry(&app, &browser.session_id, 1).await;
    app.send(browser.request(&app, Method::GET, "/api/auth/me"))
        .await
        .expect_error(401, "UNAUTHORIZED", None);
}

/// Two sign-ins of one user: `a` changes the password, `b` must be signed out everywhere.
async fn assert_others_end(app: &TestApp, email: &str, password: &str, change: &str) {
    let a = app.login(email, password).await;
    let b = app.login(email, password).await;
    let (path, method, body) = match change {
        "me" => (
            "/api/auth/me".to_owned(),
            Method::PATCH,
            json!({"data": {"type": "users", "id": me_id(app, &a).await, "attributes": {"current_password": password, "password": "changed password 1"}}}),
        ),
        "password" => (
            "/api/auth/password".to_owned(),
            Method::POST,
            json!({"data": {"type": "passwords", "attributes": {"current_password": password, "password": "changed password 1"}}}),
        ),
        "users" => {
            let id = me_id(app, &a).await;
            (
                format!("/api/users/{id}"),
                Method::PATCH,
                json!({"data": {"type": "users", "id": id, "attributes": {"password": "changed password 1"}}}),
            )
        }
        other => unreachable!("{other}"),
    };
    let reply = app
        .send(
            a.request(app, method, &path)
                .header("Content-Type", MT)
                .body(body.to_string()),
        )
        .await;
    assert!(reply.status.is_success(), "{change}: {}", reply.body);
    assert_eq!(
        me_with(app, Some(&b.token), None).await,
        StatusCode::UNAUTHORIZED,
        "{change}: the other token still works"
    );
    assert_eq!(
        me_with(app, None, Some(&b.cookie)).await,
        StatusCode::UNAUTHORIZED,
        "{change}: the other cookie still works"
    );
    // The current session continues under a new cookie; its token too.
    app.send(a.request(app, Method::GET, "/api/auth/me"))
        .await
        .expect(200);
    assert_eq!(me_with(app, Some(&a.token), None).await, StatusCode::OK);
    assert_eq!(
        me_with(app, None, Some(&a.cookie)).await,
        StatusCode::UNAUTHORIZED,
        "{change}: the pre-change cookie value is rotated away"
    );
}

async fn me_id(app: &TestApp, browser: &tollgate_tests::Browser) -> String {
    app.send(browser.request(app, Method::GET, "/api/auth/me"))
        .await
        .id()
}

#[tokio::test]
async fn every_password_change_ends_the_other_sessions() {
    let app = spawn_app_with(|c| c.dev_mode = true).await;
    app.create_user_with_password("changer@example.com", PASSWORD, "user")
        .await;
    assert_others_end(&app, "changer@example.com", PASSWORD, "me").await;
    assert_others_end(
        &app,
        "changer@example.com",
        "changed password 1",
        "password",
    )
    .await;
    // An admin setting their own password through /api/users/{id}.
    assert_others_end(&app, ADMIN_EMAIL, ADMIN_PASSWORD, "users").await;

    // A reset ends every session, the requester's included.
    let email = format!("resetter-{}@example.com", app.admin_id.to_lowercase());
    app.create_user_with_password(&email, PASSWORD, "user")
        .await;
    let a = app.login(&email, PASSWORD).await;
    forgot(&app, &email).await.expect(200);
    let token = tollgate_tests::wait_reset_mails(&email, 1).await;
    let body = json!({"data": {"type": "password_resets", "attributes": {"token": token, "password": "reset password 123"}}});
    Reply::from(
        app.client
            .post(app.url("/api/auth/reset-password"))
            .header("Content-Type", MT)
            .body(body.to_string())
            .send()
            .await
            .unwrap(),
    )
    .await
    .expect(200);
    assert_eq!(
        me_with(&app, Some(&a.token), None).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        me_with(&app, None, Some(&a.cookie)).await,
        StatusCode::UNAUTHORIZED
    );
}

/// With Redis the counters are shared: failures on one node lock the email on the other.
#[tokio::test]
async fn with_redis_every_node_counts_the_same_failures() {
    let redis = std::env::var("TOLLGATE_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    // Redis outlives the test: a fresh address and client IP per run keep runs apart.
    let run = ulid::Ulid::generate().to_string().to_lowercase();
    let forwarded = format!(
        "10.{}.{}.{}",
        run.as_bytes()[20],
        run.as_bytes()[23],
        run.as_bytes()[25]
    );
    let configure = |c: &mut tollgate::config::Config| {
        c.redis_url = Some(redis.clone());
        c.trusted_proxies = "127.0.0.1".into();
    };
    let app = spawn_app_with(configure).await;
    let (other_node, _) = tollgate_tests::spawn_node(&app.database_url, configure).await;
    let email = format!("shared-{run}@example.com");
    app.create_user_with_password(&email, PASSWORD, "user")
        .await;
    for _ in 0..5 {
        login_from(&app, &email, "not the password at all", Some(&forwarded))
            .await
            .expect_error(401, "INVALID_CREDENTIALS", None);
    }
    let elsewhere = Reply::from(
        app.client
            .post(format!("{other_node}/api/auth/login"))
            .header("Content-Type", MT)
            .header("X-Forwarded-For", &forwarded)
            .body(login_body(&email, PASSWORD))
            .send()
            .await
            .unwrap(),
    )
    .await;
    elsewhere.expect_error(429, "TOO_MANY_LOGIN_ATTEMPTS", None);
    let retry: u64 = elsewhere.header("retry-after").unwrap().parse().unwrap();
    assert!((800..=900).contains(&retry), "{retry}");

    // 50 parallel guesses spread over both nodes: still at most 5 are checked.
    let app = Arc::new(app);
    for trial in 0..TRIALS {
        let email = format!("spread{trial}-{run}@example.com");
        app.create_user_with_password(&email, PASSWORD, "user")
            .await;
        let forwarded = format!("11.{}.{}.{trial}", run.as_bytes()[20], run.as_bytes()[23]);
        let attempts: Vec<_> = (0..50)
            .map(|i| {
                let (app, email, forwarded) = (app.clone(), email.clone(), forwarded.clone());
                let node = if i % 2 == 0 {
                    app.admin.clone()
                } else {
                    other_node.clone()
                };
                tokio::spawn(async move {
                    let reply = app
                        .client
                        .post(format!("{node}/api/auth/login"))
                        .header("Content-Type", MT)
                        .header("X-Forwarded-For", forwarded.as_str())
                        .body(login_body(&email, &format!("wrong password {i:04}")))
                        .send()
                        .await
                        .unwrap();
                    reply.status().as_u16()
                })
            })
            .collect();
        let mut statuses = Vec::new();
        for attempt in attempts {
            statuses.push(attempt.await.unwrap());
        }
        let rejected = statuses.iter().filter(|s| **s == 401).count();
        let throttled = statuses.iter().filter(|s| **s == 429).count();
        assert_eq!(
            (rejected, throttled),
            (5, 45),
            "trial {trial}: {statuses:?}"
        );
    }
}
