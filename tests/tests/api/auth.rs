//! Sessions, bearer tokens, logout, rotation, throttling, CSRF and the `user` role.

use reqwest::Method;
use serde_json::{Value, json};
use tollgate_tests::{ADMIN_EMAIL, ADMIN_PASSWORD, MT, Reply, spawn_app};

const PASSWORD: &str = "a long user password";

#[tokio::test]
async fn cookie_login_use_logout_and_replay() {
    let app = spawn_app().await;
    let browser = app.login("Admin@Example.com", ADMIN_PASSWORD).await;
    assert!(
        browser.session_id.starts_with("ses_"),
        "{}",
        browser.session_id
    );
    let me = app
        .send(browser.request(&app, Method::GET, "/api/auth/me"))
        .await;
    me.expect(200);
    assert_eq!(me.attr("email"), &json!(ADMIN_EMAIL));
    assert_eq!(me.body["meta"]["auth_method"], json!("session"));
    assert!(
        me.attr("last_login_at").is_string(),
        "login sets last_login_at"
    );

    let logout = app
        .send(browser.request(&app, Method::POST, "/api/auth/logout"))
        .await;
    logout.expect(204);
    let cleared = logout.header("set-cookie").unwrap_or_default();
    assert!(
        cleared.starts_with("tollgate_session=") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );

    let replay = app
        .with_cookie(Method::GET, "/api/auth/me", &browser.cookie)
        .await;
    replay.expect_error(401, "UNAUTHORIZED", None);
    let token_after = app
        .with_token(Method::GET, "/api/auth/me", &browser.token)
        .await;
    token_after.expect_error(401, "UNAUTHORIZED", None);
}

#[tokio::test]
async fn login_sets_a_hardened_cookie_and_rotates_the_session() {
    let app = spawn_app().await;
    let reply = app.login_reply(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    reply.expect(200);
    let cookie = reply.header("set-cookie").unwrap().to_owned();
    for part in [
        "tollgate_session=",
        "HttpOnly",
        "SameSite=Lax",
        "Path=/",
        "Max-Age=604800",
    ] {
        assert!(cookie.contains(part), "{part} missing in {cookie}");
    }
    assert_eq!(reply.body["data"]["type"], json!("sessions"));
    assert_eq!(reply.attr("token_type"), &json!("Bearer"));
    assert!(reply.attr("token_expires_at").is_string() && reply.attr("expires_at").is_string());
    assert_eq!(reply.body["included"][0]["type"], json!("users"));
    assert!(
        reply.body["included"][0]["attributes"]
            .get("password")
            .is_none()
    );

    // Logging in again with the old cookie replaces that session with a new one.
    let first = cookie.split(';').next().unwrap().to_owned();
    let body = json!({"data": {"type": "sessions", "attributes": {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}}});
    let again = Reply::from(
        app.client
            .post(app.url("/api/auth/login"))
            .header("Content-Type", MT)
            .header("Cookie", &first)
            .body(body.to_string())
            .send()
            .await
            .unwrap(),
    )
    .await;
    again.expect(200);
    let second = again
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert_ne!(first, second, "the session id changes at login");
    app.with_cookie(Method::GET, "/api/auth/me", &first)
        .await
        .expect_error(401, "UNAUTHORIZED", None);
    app.with_cookie(Method::GET, "/api/auth/me", &second)
        .await
        .expect(200);
}

#[tokio::test]
async fn bearer_tokens_are_checked_and_bound_to_their_session() {
    let app = spawn_app().await;
    let browser = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let me = app
        .with_token(Method::GET, "/api/auth/me", &browser.token)
        .await;
    me.expect(200);
    assert_eq!(me.body["meta"]["auth_method"], json!("jwt"));
    let tampered = format!("{}x", browser.token);
    app.with_token(Method::GET, "/api/auth/me", &tampered)
        .await
        .expect_error(401, "UNAUTHORIZED", None);
    // alg "none" with the same claims.
    let claims = browser.token.split('.').nth(1).unwrap();
    let unsigned = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{claims}.");
    app.with_token(Method::GET, "/api/auth/me", &unsigned)
        .await
        .expect_error(401, "UNAUTHORIZED", None);
    // A live key is no admin credential.
    app.with_token(
        Method::GET,
        "/api/auth/me",
        "tg_live_0000000000000000000000000000000000000000",
    )
    .await
    .expect_error(401, "UNAUTHORIZED", None);
    let logout = app
        .with_token(Method::POST, "/api/auth/logout", &browser.token)
        .await;
    logout.expect(204);
    app.with_token(Method::GET, "/api/auth/me", &browser.token)
        .await
        .expect_error(401, "UNAUTHORIZED", None);
    // The cookie of that session died with it.
    app.with_cookie(Method::GET, "/api/auth/me", &browser.cookie)
        .await
        .expect_error(401, "UNAUTHORIZED", None);
    // An admin key's logout changes nothing.
    app.send(app.request(Method::POST, "/api/auth/logout"))
        .await
        .expect(204);
    app.get("/api/auth/me").await.expect(200);
}

#[tokio::test]
async fn wrong_credentials_and_inactive_accounts() {
    let app = spawn_app().await;
    let wrong = app
        .login_reply(ADMIN_EMAIL, "not the password at all")
        .await;
    wrong.expect_error(401, "INVALID_CREDENTIALS", None);
    let unknown = app
        .login_reply("nobody@example.com", "not the password at all")
        .await;
    unknown.expect_error(401, "INVALID_CREDENTIALS", None);
    assert_eq!(
        wrong.body["errors"][0]["detail"], unknown.body["errors"][0]["detail"],
        "no hint which emails exist"
    );
    let no_password = app.create_user("nopass@example.com").await;
    let _ = no_password;
    app.login_reply("nopass@example.com", "anything at all here")
        .await
        .expect_error(401, "INVALID_CREDENTIALS", None);
    let suspended = app
        .create_user_with_password("sus@example.com", PASSWORD, "user")
        .await;
    app.patch_attributes("users", "users", &suspended, json!({"status": "suspended"}))
        .await
        .expect(200);
    app.login_reply("sus@example.com", PASSWORD)
        .await
        .expect_error(403, "ACCOUNT_INACTIVE", None);
    // Malformed login bodies.
    let bad = Reply::from(
        app.client
            .post(app.url("/api/auth/login"))
            .header("Content-Type", MT)
            .body(json!({"data": {"type": "users", "attributes": {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}}}).to_string())
            .send()
            .await
            .unwrap(),
    )
    .await;
    bad.expect_error(409, "TYPE_MISMATCH", Some("/data/type"));
    let extra = Reply::from(
        app.client
            .post(app.url("/api/auth/login"))
            .header("Content-Type", MT)
            .body(json!({"data": {"type": "sessions", "attributes": {"email": ADMIN_EMAIL, "password": 5, "remember": true}}}).to_string())
            .send()
            .await
            .unwrap(),
    )
    .await;
    extra.expect(422);
    assert_eq!(
        extra.problems(),
        vec![
            (
                "VALIDATION_ERROR".to_owned(),
                "/data/attributes/password".to_owned()
            ),
            (
                "UNKNOWN_ATTRIBUTE".to_owned(),
                "/data/attributes/remember".to_owned()
            ),
        ]
    );
    let json_body = Reply::from(
        app.client
            .post(app.url("/api/auth/login"))
            .header("Content-Type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap(),
    )
    .await;
    json_body.expect_error(415, "UNSUPPORTED_MEDIA_TYPE", None);
}

#[tokio::test]
async fn failed_logins_are_throttled_per_email() {
    let app = spawn_app().await;
    for _ in 0..5 {
        app.login_reply(ADMIN_EMAIL, "not the password at all")
            .await
            .expect(401);
    }
    let locked = app.login_reply(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    locked.expect_error(429, "TOO_MANY_LOGIN_ATTEMPTS", None);
    let retry: u64 = locked.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
    // Other accounts are not locked by it.
    let other = app
        .create_user_with_password("other@example.com", PASSWORD, "user")
        .await;
    let _ = other;
    app.login_reply("other@example.com", PASSWORD)
        .await
        .expect(200);
}

#[tokio::test]
async fn cookie_writes_need_the_admin_origin() {
    let app = spawn_app().await;
    let browser = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let body = json!({"data": {"type": "plans", "attributes": {"name": "Pro"}}}).to_string();
    let no_origin = app
        .send(
            browser
                .client
                .post(app.url("/api/plans"))
                .header("Content-Type", MT)
                .body(body.clone()),
        )
        .await;
    no_origin.expect_error(403, "CSRF_REJECTED", None);
    let foreign = app
        .send(
            browser
                .client
                .post(app.url("/api/plans"))
                .header("Content-Type", MT)
                .header("Origin", "https://evil.example")
                .body(body.clone()),
        )
        .await;
    foreign.expect_error(403, "CSRF_REJECTED", None);
    // Reads need no Origin; a write from the admin origin passes.
    app.send(browser.client.get(app.url("/api/plans")))
        .await
        .expect(200);
    let own = app
        .send(
            browser
                .request(&app, Method::POST, "/api/plans")
                .header("Content-Type", MT)
                .body(body),
        )
        .await;
    own.expect(201);
    // Bearer writes are not subject to the Origin rule.
    let bearer = app
        .send(
            app.client
                .post(app.url("/api/plans"))
                .bearer_auth(&browser.token)
                .header("Content-Type", MT)
                .body(
                    json!({"data": {"type": "plans", "attributes": {"name": "Team"}}}).to_string(),
                ),
        )
        .await;
    bearer.expect(201);
}

#[tokio::test]
async fn recycling_ends_other_sessions() {
    let app = spawn_app().await;
    let user = app
        .create_user_with_password("ada@example.com", PASSWORD, "user")
        .await;
    let laptop = app.login("ada@example.com", PASSWORD).await;
    let phone = app.login("ada@example.com", PASSWORD).await;
    let recycle = app
        .send(laptop.request(&app, Method::POST, "/api/auth/sessions/recycle"))
        .await;
    recycle.expect(204);
    app.with_cookie(Method::GET, "/api/auth/me", &phone.cookie)
        .await
        .expect_error(401, "UNAUTHORIZED", None);
    app.with_token(Method::GET, "/api/auth/me", &phone.token)
        .await
        .expect_error(401, "UNAUTHORIZED", None);
    // The current session continues (under a new cookie in the jar).
    app.send(laptop.request(&app, Method::GET, "/api/auth/me"))
        .await
        .expect(200);
    app.with_token(Method::GET, "/api/auth/me", &laptop.token)
        .await
        .expect(200);

    // An admin ends every session of the user.
    app.send(app.request(Method::POST, &format!("/api/users/{user}/sessions/recycle")))
        .await
        .expect(204);
    app.send(laptop.request(&app, Method::GET, "/api/auth/me"))
        .await
        .expect_error(401, "UNAUTHORIZED", None);
    app.with_token(Method::GET, "/api/auth/me", &laptop.token)
        .await
        .expect_error(401, "UNAUTHORIZED", None);
    // A user cannot do that to anyone.
    let again = app.login("ada@example.com", PASSWORD).await;
    let admin_id = app.admin_id.clone();
    app.with_token(
        Method::POST,
        &format!("/api/users/{admin_id}/sessions/recycle"),
        &again.token,
    )
    .await
    .expect(404);
    app.with_token(
        Method::POST,
        &format!("/api/users/{user}/sessions/recycle"),
        &again.token,
    )
    .await
    .expect_error(403, "FORBIDDEN", None);
}

#[tokio::test]
async fn the_user_role_sees_only_what_is_theirs() {
    let app = spawn_app().await;
    let ada = app
        .create_user_with_password("ada@example.com", PASSWORD, "user")
        .await;
    let bob = app
        .create_user_with_password("bob@example.com", PASSWORD, "user")
        .await;
    let upstream = app.create_upstream("Backend", "http://127.0.0.1:9").await;
    let hidden_plan = app
        .create(
            "plans",
            "plans",
            json!({"name": "Secret", "enabled": false, "stripe_price_id": "price_1"}),
            Value::Null,
        )
        .await
        .id();
    let token = app.login("ada@example.com", PASSWORD).await.token;
    let get = |path: String| {
        let app = &app;
        let token = token.clone();
        async move { app.with_token(Method::GET, &path, &token).await }
    };
    get("/api/users".into())
        .await
        .expect_error(403, "FORBIDDEN", None);
    get(format!("/api/users/{ada}")).await.expect(200);
    get(format!("/api/users/{bob}"))
        .await
        .expect_error(404, "NOT_FOUND", None);
    get("/api/upstreams".into())
        .await
        .expect_error(403, "FORBIDDEN", None);
    get(format!("/api/upstreams/{upstream}"))
        .await
        .expect_error(404, "NOT_FOUND", None);
    get("/api/routes".into())
        .await
        .expect_error(403, "FORBIDDEN", None);
    get("/api/webhooks".into())
        .await
        .expect_error(403, "FORBIDDEN", None);
    let plans = get("/api/plans".into()).await;
    plans.expect(200);
    let listed: Vec<&Value> = plans.body["data"].as_array().unwrap().iter().collect();
    assert!(
        listed.iter().all(|p| p["id"] != json!(hidden_plan)),
        "disabled plans are hidden"
    );
    assert!(
        listed
            .iter()
            .all(|p| p["attributes"].get("stripe_price_id").is_none()),
        "private fields are hidden"
    );
    assert!(
        listed
            .iter()
            .all(|p| p["relationships"].get("users").is_none())
    );
    get(format!("/api/plans/{hidden_plan}"))
        .await
        .expect_error(404, "NOT_FOUND", None);
    let create_plan = app
        .send(
            app.client
                .post(app.url("/api/plans"))
                .bearer_auth(&token)
                .header("Content-Type", MT)
                .body(
                    json!({"data": {"type": "plans", "attributes": {"name": "Mine"}}}).to_string(),
                ),
        )
        .await;
    create_plan.expect_error(403, "FORBIDDEN", None);
    // Own name: yes; own role: no.
    let rename = app
        .send(
            app.client
                .patch(app.url(&format!("/api/users/{ada}")))
                .bearer_auth(&token)
                .header("Content-Type", MT)
                .body(
                    json!({"data": {"type": "users", "id": ada, "attributes": {"name": "Ada L."}}})
                        .to_string(),
                ),
        )
        .await;
    rename.expect(200);
    assert_eq!(rename.attr("name"), &json!("Ada L."));
    let promote = app
        .send(
            app.client
                .patch(app.url(&format!("/api/users/{ada}")))
                .bearer_auth(&token)
                .header("Content-Type", MT)
                .body(
                    json!({"data": {"type": "users", "id": ada, "attributes": {"role": "admin"}}})
                        .to_string(),
                ),
        )
        .await;
    promote.expect_error(403, "FORBIDDEN", None);
}

#[tokio::test]
async fn own_profile_and_password_changes() {
    let app = spawn_app().await;
    let ada = app
        .create_user_with_password("ada@example.com", PASSWORD, "user")
        .await;
    let here = app.login("ada@example.com", PASSWORD).await;
    let there = app.login("ada@example.com", PASSWORD).await;
    let patch_me = |browser: &tollgate_tests::Browser, attributes: Value| {
        let body =
            json!({"data": {"type": "users", "id": ada, "attributes": attributes}}).to_string();
        app.send(
            browser
                .request(&app, Method::PATCH, "/api/auth/me")
                .header("Content-Type", MT)
                .body(body),
        )
    };
    let renamed = patch_me(&here, json!({"name": "Ada L."})).await;
    renamed.expect(200);
    assert_eq!(renamed.attr("name"), &json!("Ada L."));
    patch_me(&here, json!({"role": "admin"}))
        .await
        .expect_error(422, "READ_ONLY_ATTRIBUTE", Some("/data/attributes/role"));
    patch_me(&here, json!({"password": "a brand new password"}))
        .await
        .expect_error(
            422,
            "VALIDATION_ERROR",
            Some("/data/attributes/current_password"),
        );
    patch_me(
        &here,
        json!({"current_password": "not my password", "password": "a brand new password"}),
    )
    .await
    .expect_error(401, "INVALID_CURRENT_PASSWORD", None);
    patch_me(
        &here,
        json!({"current_password": PASSWORD, "password": "short"}),
    )
    .await
    .expect_error(422, "VALIDATION_ERROR", Some("/data/attributes/password"));
    patch_me(
        &here,
        json!({"current_password": PASSWORD, "password": "a brand new password"}),
    )
    .await
    .expect(200);
    // The other session ended; this one goes on; the new password works, the old does not.
    app.with_token(Method::GET, "/api/auth/me", &there.token)
        .await
        .expect_error(401, "UNAUTHORIZED", None);
    app.send(here.request(&app, Method::GET, "/api/auth/me"))
        .await
        .expect(200);
    app.login_reply("ada@example.com", PASSWORD)
        .await
        .expect_error(401, "INVALID_CREDENTIALS", None);
    app.login_reply("ada@example.com", "a brand new password")
        .await
        .expect(200);

    // POST /api/auth/password does the same; admin keys cannot use it.
    let body = json!({"data": {"type": "passwords", "attributes": {"current_password": "a brand new password", "password": "yet another password"}}});
    let changed = app
        .send(
            here.request(&app, Method::POST, "/api/auth/password")
                .header("Content-Type", MT)
                .body(body.to_string()),
        )
        .await;
    changed.expect(204);
    let by_key = app.post("/api/auth/password", json!({"data": {"type": "passwords", "attributes": {"current_password": "x", "password": "yet another password"}}})).await;
    by_key.expect_error(403, "FORBIDDEN", None);
}

#[tokio::test]
async fn registration_is_off_unless_enabled() {
    let closed = spawn_app().await;
    let body = json!({"data": {"type": "users", "attributes": {"email": "new@example.com", "password": PASSWORD}}});
    let reply = Reply::from(
        closed
            .client
            .post(closed.url("/api/auth/register"))
            .header("Content-Type", MT)
            .body(body.to_string())
            .send()
            .await
            .unwrap(),
    )
    .await;
    reply.expect_error(404, "NOT_FOUND", None);

    let open = tollgate_tests::spawn_app_with(|c| c.allow_registration = true).await;
    let register = |body: Value| {
        let open = &open;
        async move {
            Reply::from(
                open.client
                    .post(open.url("/api/auth/register"))
                    .header("Content-Type", MT)
                    .body(body.to_string())
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    let created = register(json!({"data": {"type": "users", "attributes": {"email": "New@Example.com", "password": PASSWORD, "name": "New"}}})).await;
    created.expect(201);
    let user_id = created.body["data"]["relationships"]["user"]["data"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        created.header("location"),
        Some(format!("/api/users/{user_id}").as_str())
    );
    assert!(
        created
            .header("set-cookie")
            .unwrap()
            .starts_with("tollgate_session=")
    );
    let user = &created.body["included"][0]["attributes"];
    assert_eq!(
        (
            user["role"].clone(),
            user["status"].clone(),
            user["email"].clone()
        ),
        (json!("user"), json!("active"), json!("new@example.com"))
    );
    register(json!({"data": {"type": "users", "attributes": {"email": "new@example.com", "password": PASSWORD}}}))
        .await
        .expect_error(409, "EMAIL_TAKEN", None);
    register(json!({"data": {"type": "users", "attributes": {"email": "weak@example.com", "password": "short"}}}))
        .await
        .expect_error(422, "VALIDATION_ERROR", Some("/data/attributes/password"));
    register(json!({"data": {"type": "users", "attributes": {"email": "x@example.com", "password": PASSWORD, "role": "admin"}}}))
        .await
        .expect_error(422, "UNKNOWN_ATTRIBUTE", Some("/data/attributes/role"));
}

#[tokio::test]
async fn password_reset_tokens_are_single_use_and_expire() {
    let app = tollgate_tests::spawn_app_with(|c| c.dev_mode = true).await;
    let email = format!("reset-{}@example.com", app.admin_id.to_lowercase());
    app.create_user_with_password(&email, PASSWORD, "user")
        .await;
    let session = app.login(&email, PASSWORD).await;
    let forgot = |address: String| {
        let app = &app;
        async move {
            let body =
                json!({"data": {"type": "password_resets", "attributes": {"email": address}}});
            Reply::from(
                app.client
                    .post(app.url("/api/auth/forgot-password"))
                    .header("Content-Type", MT)
                    .body(body.to_string())
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    let reset = |token: String, password: &'static str| {
        let app = &app;
        async move {
            let body = json!({"data": {"type": "password_resets", "attributes": {"token": token, "password": password}}});
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
    let unknown = forgot("nobody-here@example.com".into()).await;
    unknown.expect(200);
    let known = forgot(email.clone()).await;
    known.expect(200);
    assert_eq!(
        known.body, unknown.body,
        "the same answer whether or not the address exists"
    );
    assert!(known.body.get("data").is_none() && known.body["meta"]["message"].is_string());
    let first = tollgate_tests::wait_reset_mails(&email, 1).await;
    forgot(email.clone()).await.expect(200);
    let second = tollgate_tests::wait_reset_mails(&email, 2).await;
    assert_ne!(first, second);
    reset(first, "the reset password 1")
        .await
        .expect_error(400, "INVALID_RESET_TOKEN", None);
    reset(second.clone(), "short").await.expect_error(
        422,
        "VALIDATION_ERROR",
        Some("/data/attributes/password"),
    );
    reset(second.clone(), "the reset password 1")
        .await
        .expect(200);
    reset(second, "the reset password 2")
        .await
        .expect_error(400, "INVALID_RESET_TOKEN", None);
    app.with_token(Method::GET, "/api/auth/me", &session.token)
        .await
        .expect_error(401, "UNAUTHORIZED", None);
    app.login_reply(&email, "the reset password 1")
        .await
        .expect(200);

    // An expired token is refused.
    forgot(email.clone()).await.expect(200);
    let third = tollgate_tests::wait_reset_mails(&email, 3).await;
    let db = sea_orm::Database::connect(&app.database_url).await.unwrap();
    sea_orm::ConnectionTrait::execute_unprepared(&db, "UPDATE password_resets SET expires_at = 0")
        .await
        .unwrap();
    reset(third, "the reset password 3")
        .await
        .expect_error(400, "INVALID_RESET_TOKEN", None);
}

#[tokio::test]
async fn group_owners_and_admins_manage_the_group_keys() {
    let app = spawn_app().await;
    let owner = app
        .create_user_with_password("owner@example.com", PASSWORD, "user")
        .await;
    let deputy = app
        .create_user_with_password("deputy@example.com", PASSWORD, "user")
        .await;
    let member = app
        .create_user_with_password("member@example.com", PASSWORD, "user")
        .await;
    let outsider = app
        .create_user_with_password("outsider@example.com", PASSWORD, "user")
        .await;
    let members = json!({"data": [
        {"type": "users", "id": deputy, "meta": {"role": "admin"}},
        {"type": "users", "id": member},
    ]});
    let group = app
        .create(
            "groups",
            "groups",
            json!({"name": "Team"}),
            json!({"owner": tollgate_tests::link("users", &owner), "members": members}),
        )
        .await
        .id();
    let token = |email: &'static str| {
        let app = &app;
        async move { app.login(email, PASSWORD).await.token }
    };
    let (owner_token, deputy_token, member_token, outsider_token) = (
        token("owner@example.com").await,
        token("deputy@example.com").await,
        token("member@example.com").await,
        token("outsider@example.com").await,
    );
    let create_key = |bearer: String, name: &'static str| {
        let app = &app;
        let group = group.clone();
        async move {
            let body = json!({"data": {"type": "api_keys", "attributes": {"name": name}, "relationships": {"group": tollgate_tests::link("groups", &group)}}});
            app.send(
                app.client
                    .post(app.url("/api/api-keys"))
                    .bearer_auth(bearer)
                    .header("Content-Type", MT)
                    .body(body.to_string()),
            )
            .await
        }
    };
    let owners_key = create_key(owner_token.clone(), "owner's").await;
    owners_key.expect(201);
    assert_eq!(
        owners_key.body["data"]["relationships"]["group"]["data"]["id"],
        json!(group)
    );
    let deputys_key = create_key(deputy_token.clone(), "deputy's").await;
    deputys_key.expect(201);
    create_key(member_token, "member's")
        .await
        .expect_error(403, "FORBIDDEN", None);
    create_key(outsider_token, "outsider's").await.expect_error(
        404,
        "RELATED_NOT_FOUND",
        Some("/data/relationships/group/data"),
    );

    // The owner sees and revokes the deputy's group key; a plain member's view stays their own.
    let listed = app
        .with_token(
            Method::GET,
            &format!("/api/api-keys?filter[group]={group}"),
            &owner_token,
        )
        .await;
    assert_eq!(listed.body["meta"]["total"], json!(2), "{}", listed.body);
    let owner_view = app
        .with_token(
            Method::GET,
            &format!("/api/api-keys/{}", deputys_key.id()),
            &owner_token,
        )
        .await;
    owner_view.expect(200);
    let revoked = app
        .with_token(
            Method::POST,
            &format!("/api/api-keys/{}/revoke", deputys_key.id()),
            &owner_token,
        )
        .await;
    revoked.expect(200);
    assert_eq!(revoked.attr("status"), &json!("revoked"));
    let member_view = app
        .with_token(
            Method::GET,
            &format!("/api/api-keys/{}", owners_key.id()),
            &app.login("member@example.com", PASSWORD).await.token,
        )
        .await;
    member_view.expect_error(404, "NOT_FOUND", None);

    // An admin cannot hand a group key to someone outside the group.
    let stray = app
        .post(
            "/api/api-keys",
            json!({"data": {"type": "api_keys", "attributes": {"name": "stray"}, "relationships": {
                "user": tollgate_tests::link("users", &outsider), "group": tollgate_tests::link("groups", &group)}}}),
        )
        .await;
    stray.expect_error(422, "VALIDATION_ERROR", Some("/data/relationships/group"));
    let _ = member;
}

#[tokio::test]
async fn reset_tokens_are_mailed_over_smtp() {
    let sink = tollgate_tests::SmtpSink::start().await;
    let smtp_url = format!("smtp://127.0.0.1:{}", sink.port);
    let app = tollgate_tests::spawn_app_with(|c| {
        c.smtp_url = Some(smtp_url.into());
        c.mail_from = "Tollgate <ops@example.com>".into();
    })
    .await;
    app.create_user_with_password("mail@example.com", PASSWORD, "user")
        .await;
    let body =
        json!({"data": {"type": "password_resets", "attributes": {"email": "mail@example.com"}}});
    let reply = Reply::from(
        app.client
            .post(app.url("/api/auth/forgot-password"))
            .header("Content-Type", MT)
            .body(body.to_string())
            .send()
            .await
            .unwrap(),
    )
    .await;
    reply.expect(200);
    // The mail goes out after the answer.
    let messages = sink.wait_messages(1).await;
    assert_eq!(messages.len(), 1, "one mail: {messages:?}");
    let mail = &messages[0];
    assert!(
        mail.contains("To: mail@example.com") && mail.contains("From: Tollgate <ops@example.com>"),
        "{mail}"
    );
    let token = mail
        .lines()
        .map(str::trim)
        .find(|l| {
            l.len() == 43
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .expect("the token line")
        .to_owned();
    let reset = json!({"data": {"type": "password_resets", "attributes": {"token": token, "password": "mailed reset password"}}});
    let done = Reply::from(
        app.client
            .post(app.url("/api/auth/reset-password"))
            .header("Content-Type", MT)
            .body(reset.to_string())
            .send()
            .await
            .unwrap(),
    )
    .await;
    done.expect(200);
    app.login_reply("mail@example.com", "mailed reset password")
        .await
        .expect(200);
}

/// `PASSWORD` hashed with argon2 parameters older than the current ones (m = 4096 KiB, t = 3).
const OLDER_PARAMETERS_HASH: &str = "$argon2id$v=19$m=4096,t=3,p=1$8YjEKK/UFdzEqc2YhZOnPA$lVXeOQ8WJApLLchVnZFStwqSMAB5RGSZWjQZetZ6drk";

async fn stored_password_hash(app: &tollgate_tests::TestApp, id: &str) -> String {
    let db = sea_orm::Database::connect(&app.database_url).await.unwrap();
    let row = sea_orm::ConnectionTrait::query_one_raw(
        &db,
        sea_orm::Statement::from_string(
            sea_orm::ConnectionTrait::get_database_backend(&db),
            format!("SELECT password_hash AS h FROM users WHERE id = '{id}'"),
        ),
    )
    .await
    .unwrap()
    .expect("the user row");
    row.try_get::<String>("", "h").unwrap()
}

/// A user whose hash was made with older parameters still signs in, and from then on has a hash
/// with the current ones (which signs in too).
#[tokio::test]
async fn a_hash_with_older_parameters_signs_in_and_is_rehashed() {
    let app = spawn_app().await;
    let id = app
        .create_user_with_password("older@example.com", PASSWORD, "user")
        .await;
    let db = sea_orm::Database::connect(&app.database_url).await.unwrap();
    sea_orm::ConnectionTrait::execute_unprepared(
        &db,
        &format!("UPDATE users SET password_hash = '{OLDER_PARAMETERS_HASH}' WHERE id = '{id}'"),
    )
    .await
    .unwrap();
    app.login_reply("older@example.com", "not the password at all")
        .await
        .expect_error(401, "INVALID_CREDENTIALS", None);
    assert_eq!(
        stored_password_hash(&app, &id).await,
        OLDER_PARAMETERS_HASH,
        "a failed login changes nothing"
    );
    app.login_reply("older@example.com", PASSWORD)
        .await
        .expect(200);
    let fresh = stored_password_hash(&app, &id).await;
    assert!(
        fresh.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{fresh}"
    );
    app.login_reply("older@example.com", PASSWORD)
        .await
        .expect(200);
    assert_eq!(
        stored_password_hash(&app, &id).await,
        fresh,
        "a current hash is kept"
    );
}

/// Logins at once on a hash of older parameters: the first one rehashes it, and the others,
/// which verified the old hash, must still sign in (not 401 because the hash moved under them).
#[tokio::test]
async fn parallel_logins_on_an_outdated_hash_all_sign_in() {
    // The most logins one email may have in flight at once (auth.md §8: the throttle counts
    // attempts in flight against the 5 failures it allows).
    const CLIENTS: usize = 5;
    let app = spawn_app().await;
    let id = app
        .create_user_with_password("racing@example.com", PASSWORD, "user")
        .await;
    let db = sea_orm::Database::connect(&app.database_url).await.unwrap();
    for trial in 0..5 {
        sea_orm::ConnectionTrait::execute_unprepared(
            &db,
            &format!(
                "UPDATE users SET password_hash = '{OLDER_PARAMETERS_HASH}' WHERE id = '{id}'"
            ),
        )
        .await
        .unwrap();
        let logins = (0..CLIENTS).map(|_| app.login_reply("racing@example.com", PASSWORD));
        for reply in futures_util::future::join_all(logins).await {
            assert_eq!(
                reply.status.as_u16(),
                200,
                "trial {trial}: {:?}",
                reply.body
            );
        }
        let fresh = stored_password_hash(&app, &id).await;
        assert!(
            fresh.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "trial {trial}: {fresh}"
        );
    }
}
