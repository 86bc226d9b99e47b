//! The authorization matrix: every admin endpoint × every kind of caller, from one table.

use reqwest::Method;
use serde_json::{Value, json};
use tollgate_domain::resources;
use tollgate_tests::{MT, Reply, TestApp, link, spawn_app_with};

const PASSWORD: &str = "a long user password";
const JWT_SECRET: &str = "0123456789abcdef0123456789abcdef-matrix";

/// The callers, in column order.
const CALLERS: [&str; 8] = [
    "anonymous",
    "user A",
    "user B",
    "admin (JWT)",
    "admin key",
    "expired JWT",
    "revoked admin key",
    "suspended user",
];

/// One endpoint: method, path and body templates, expected status per caller.
/// Placeholders: `{A}` user A, `{self}` the caller's own user, `{uniq}` a fresh suffix, and
/// fresh resources created for each cell: `{keyA}` (a key of A), `{plan}`, `{route}`,
/// `{upstream}`, `{webhook}`, `{groupA}` (a group A belongs to), `{victim}` (another user).
struct Row {
    method: Method,
    path: &'static str,
    body: Option<&'static str>,
    expect: [u16; 8],
}

fn row(method: Method, path: &'static str, body: Option<&'static str>, expect: [u16; 8]) -> Row {
    Row {
        method,
        path,
        body,
        expect,
    }
}

fn table() -> Vec<Row> {
    use Method as M;
    const DENIED: [u16; 3] = [401, 401, 401];
    let e = |anon: u16, a: u16, b: u16, admin: u16, key: u16| -> [u16; 8] {
        [anon, a, b, admin, key, DENIED[0], DENIED[1], DENIED[2]]
    };
    vec![
        row(M::GET, "/api/users", None, e(401, 403, 403, 200, 200)),
        row(
            M::POST,
            "/api/users",
            Some(r#"{"data":{"type":"users","attributes":{"email":"new{uniq}@example.com"}}}"#),
            e(401, 403, 403, 201, 201),
        ),
        row(M::GET, "/api/users/{A}", None, e(401, 200, 404, 200, 200)),
        row(
            M::PATCH,
            "/api/users/{A}",
            Some(r#"{"data":{"type":"users","id":"{A}","attributes":{"name":"Renamed"}}}"#),
            e(401, 200, 404, 200, 200),
        ),
        row(
            M::DELETE,
            "/api/users/{victim}",
            None,
            e(401, 404, 404, 204, 204),
        ),
        row(
            M::DELETE,
            "/api/users/{self}",
            None,
            e(401, 403, 403, 409, 409),
        ),
        row(
            M::GET,
            "/api/users/{A}/relationships/plan",
            None,
            e(401, 200, 404, 200, 200),
        ),
        row(
            M::GET,
            "/api/users/{A}/api_keys",
            None,
            e(401, 200, 404, 200, 200),
        ),
        row(M::GET, "/api/plans", None, e(401, 200, 200, 200, 200)),
        row(
            M::POST,
            "/api/plans",
            Some(r#"{"data":{"type":"plans","attributes":{"name":"Plan {uniq}"}}}"#),
            e(401, 403, 403, 201, 201),
        ),
        row(
            M::GET,
            "/api/plans/{plan}",
            None,
            e(401, 200, 200, 200, 200),
        ),
        row(
            M::PATCH,
            "/api/plans/{plan}",
            Some(r#"{"data":{"type":"plans","id":"{plan}","attributes":{"price_monthly":5}}}"#),
            e(401, 403, 403, 200, 200),
        ),
        row(
            M::DELETE,
            "/api/plans/{plan}",
            None,
            e(401, 403, 403, 204, 204),
        ),
        row(M::GET, "/api/api-keys", None, e(401, 200, 200, 200, 200)),
        row(
            M::POST,
            "/api/api-keys",
            Some(
                r#"{"data":{"type":"api_keys","attributes":{"name":"k"},"relationships":{"user":{"data":{"type":"users","id":"{A}"}}}}}"#,
            ),
            e(401, 201, 404, 201, 201),
        ),
        row(
            M::GET,
            "/api/api-keys/{keyA}",
            None,
            e(401, 200, 404, 200, 200),
        ),
        row(
            M::PATCH,
            "/api/api-keys/{keyA}",
            Some(r#"{"data":{"type":"api_keys","id":"{keyA}","attributes":{"name":"renamed"}}}"#),
            e(401, 200, 404, 200, 200),
        ),
        row(
            M::POST,
            "/api/api-keys/{keyA}/revoke",
            None,
            e(401, 200, 404, 200, 200),
        ),
        row(
            M::POST,
            "/api/api-keys/{keyA}/rotate",
            None,
            e(401, 200, 404, 200, 200),
        ),
        row(M::GET, "/api/usage", None, e(401, 200, 200, 200, 200)),
        row(
            M::GET,
            "/api/usage/use_01JD0R8D2S4F6H8K0M2P4R6T8V",
            None,
            e(401, 404, 404, 404, 404),
        ),
        row(
            M::GET,
            "/api/usage/summary?group_by=key",
            None,
            e(401, 200, 200, 200, 200),
        ),
        row(
            M::DELETE,
            "/api/api-keys/{keyA}",
            None,
            e(401, 204, 404, 204, 204),
        ),
        row(M::GET, "/api/routes", None, e(401, 403, 403, 200, 200)),
        row(
            M::POST,
            "/api/routes",
            Some(
                r#"{"data":{"type":"routes","attributes":{"name":"r{uniq}","path_pattern":"/r{uniq}"},"relationships":{"upstream":{"data":{"type":"upstreams","id":"{upstream}"}}}}}"#,
            ),
            e(401, 403, 403, 201, 201),
        ),
        row(
            M::GET,
            "/api/routes/{route}",
            None,
            e(401, 404, 404, 200, 200),
        ),
        row(
            M::PATCH,
            "/api/routes/{route}",
            Some(r#"{"data":{"type":"routes","id":"{route}","attributes":{"priority":5}}}"#),
            e(401, 404, 404, 200, 200),
        ),
        row(
            M::DELETE,
            "/api/routes/{route}",
            None,
            e(401, 404, 404, 204, 204),
        ),
        row(M::GET, "/api/upstreams", None, e(401, 403, 403, 200, 200)),
        row(
            M::POST,
            "/api/upstreams",
            Some(
                r#"{"data":{"type":"upstreams","attributes":{"name":"u{uniq}","base_url":"http://127.0.0.1:9"}}}"#,
            ),
            e(401, 403, 403, 201, 201),
        ),
        row(
            M::GET,
            "/api/upstreams/{upstream}",
            None,
            e(401, 404, 404, 200, 200),
        ),
        row(
            M::PATCH,
            "/api/upstreams/{upstream}",
            Some(
                r#"{"data":{"type":"upstreams","id":"{upstream}","attributes":{"timeout_ms":1000}}}"#,
            ),
            e(401, 404, 404, 200, 200),
        ),
        row(
            M::DELETE,
            "/api/upstreams/{upstream}",
            None,
            e(401, 404, 404, 204, 204),
        ),
        row(M::GET, "/api/groups", None, e(401, 200, 200, 200, 200)),
        row(
            M::POST,
            "/api/groups",
            Some(
                r#"{"data":{"type":"groups","attributes":{"name":"g{uniq}"},"relationships":{"owner":{"data":{"type":"users","id":"{A}"}}}}}"#,
            ),
            e(401, 403, 403, 201, 201),
        ),
        row(
            M::GET,
            "/api/groups/{groupA}",
            None,
            e(401, 200, 404, 200, 200),
        ),
        row(
            M::PATCH,
            "/api/groups/{groupA}",
            Some(r#"{"data":{"type":"groups","id":"{groupA}","attributes":{"description":"x"}}}"#),
            e(401, 403, 404, 200, 200),
        ),
        row(
            M::DELETE,
            "/api/groups/{groupA}",
            None,
            e(401, 403, 404, 204, 204),
        ),
        row(M::GET, "/api/webhooks", None, e(401, 403, 403, 200, 200)),
        row(
            M::POST,
            "/api/webhooks",
            Some(
                r#"{"data":{"type":"webhooks","attributes":{"url":"https://hooks.example.com/{uniq}","events":["*"]}}}"#,
            ),
            e(401, 403, 403, 201, 201),
        ),
        row(
            M::GET,
            "/api/webhooks/{webhook}",
            None,
            e(401, 404, 404, 200, 200),
        ),
        row(
            M::PATCH,
            "/api/webhooks/{webhook}",
            Some(r#"{"data":{"type":"webhooks","id":"{webhook}","attributes":{"name":"w"}}}"#),
            e(401, 404, 404, 200, 200),
        ),
        row(
            M::DELETE,
            "/api/webhooks/{webhook}",
            None,
            e(401, 404, 404, 204, 204),
        ),
        row(
            M::POST,
            "/api/webhooks/{localhook}/test",
            None,
            e(401, 404, 404, 200, 200),
        ),
        row(
            M::POST,
            "/api/webhooks/{webhook}/rotate-secret",
            None,
            e(401, 404, 404, 200, 200),
        ),
        row(
            M::GET,
            "/api/webhooks/{webhook}/deliveries",
            None,
            e(401, 404, 404, 200, 200),
        ),
        row(
            M::GET,
            "/api/webhooks/{hookdlv}",
            None,
            e(401, 404, 404, 200, 200),
        ),
        row(
            M::POST,
            "/api/webhooks/{hookdlv}/redeliver",
            None,
            e(401, 404, 404, 202, 202),
        ),
        // Deliveries are listed per webhook: there is no collection of them all.
        row(M::GET, "/api/webhook-deliveries", None, [404; 8]),
        row(
            M::GET,
            "/api/webhook-deliveries/{delivery}",
            None,
            e(401, 404, 404, 200, 200),
        ),
        row(M::GET, "/api/events", None, e(401, 403, 403, 200, 200)),
        row(
            M::GET,
            "/api/events/{event}",
            None,
            e(401, 404, 404, 200, 200),
        ),
        row(M::GET, "/api/auth/me", None, e(401, 200, 200, 200, 200)),
        // Last: it ends A's sessions.
        row(
            M::POST,
            "/api/users/{A}/sessions/recycle",
            None,
            e(401, 403, 404, 204, 204),
        ),
    ]
}

/// A caller: the credential header it sends (if any) and its own user id (if any).
type Caller = (Option<(&'static str, String)>, Option<String>);

struct World {
    app: TestApp,
    user_a: String,
    callers: Vec<Caller>,
}

async fn world() -> World {
    let app = spawn_app_with(|c| c.jwt_secret = Some(JWT_SECRET.to_owned().into())).await;
    let user_a = app
        .create_user_with_password("a@example.com", PASSWORD, "user")
        .await;
    let user_b = app
        .create_user_with_password("b@example.com", PASSWORD, "user")
        .await;
    let user_c = app
        .create_user_with_password("c@example.com", PASSWORD, "user")
        .await;
    let token_a = app.login("a@example.com", PASSWORD).await.token;
    let token_b = app.login("b@example.com", PASSWORD).await.token;
    let token_c = app.login("c@example.com", PASSWORD).await.token;
    let admin_token = app
        .login(tollgate_tests::ADMIN_EMAIL, tollgate_tests::ADMIN_PASSWORD)
        .await
        .token;
    app.patch_attributes("users", "users", &user_c, json!({"status": "suspended"}))
        .await
        .expect(200);
    let revoked = app
        .create(
            "api-keys",
            "api_keys",
            json!({"name": "old", "kind": "admin"}),
            json!({"user": link("users", &app.admin_id)}),
        )
        .await;
    let revoked_key = revoked.body["data"]["meta"]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post(
        &format!("/api/api-keys/{}/revoke", revoked.id()),
        Value::Null,
    )
    .await
    .expect(200);
    let now = tollgate_domain::Timestamp::now().unix_seconds();
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"iss": "tollgate", "aud": "tollgate-admin", "sub": app.admin_id, "role": "admin", "sid": "ses_x", "jti": "x", "iat": now - 7200, "exp": now - 3600}),
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap();
    let bearer = |t: &str| Some(("Authorization", format!("Bearer {t}")));
    let callers = vec![
        (None, None),
        (bearer(&token_a), Some(user_a.clone())),
        (bearer(&token_b), Some(user_b)),
        (bearer(&admin_token), Some(app.admin_id.clone())),
        (
            Some(("X-API-Key", app.admin_key.clone())),
            Some(app.admin_id.clone()),
        ),
        (bearer(&expired), None),
        (bearer(&revoked_key), None),
        (bearer(&token_c), Some(user_c)),
    ];
    World {
        app,
        user_a,
        callers,
    }
}

/// Replaces the placeholders, creating fresh resources (as the admin) where named.
async fn fill(world: &World, template: &str, caller_self: Option<&str>, uniq: &str) -> String {
    let app = &world.app;
    let mut text = template
        .replace("{A}", &world.user_a)
        .replace("{uniq}", uniq)
        .replace(
            "{self}",
            caller_self.unwrap_or("usr_01JD0R8D2S4F6H8K0M2P4R6T8V"),
        );
    if text.contains("{keyA}") {
        let key = app
            .create(
                "api-keys",
                "api_keys",
                json!({"name": "a key"}),
                json!({"user": link("users", &world.user_a)}),
            )
            .await
            .id();
        text = text.replace("{keyA}", &key);
    }
    if text.contains("{plan}") {
        text = text.replace("{plan}", &app.create_plan(&format!("P{uniq}")).await);
    }
    if text.contains("{upstream}") {
        text = text.replace(
            "{upstream}",
            &app.create_upstream(&format!("U{uniq}"), "http://127.0.0.1:9")
                .await,
        );
    }
    if text.contains("{route}") {
        let upstream = app
            .create_upstream(&format!("RU{uniq}"), "http://127.0.0.1:9")
            .await;
        let route = app
            .create(
                "routes",
                "routes",
                json!({"name": format!("R{uniq}"), "path_pattern": format!("/x{uniq}")}),
                json!({"upstream": link("upstreams", &upstream)}),
            )
            .await
            .id();
        text = text.replace("{route}", &route);
    }
    if text.contains("{webhook}") {
        let webhook = app
            .create(
                "webhooks",
                "webhooks",
                json!({"url": "https://hooks.example.com/x", "events": ["*"]}),
                Value::Null,
            )
            .await
            .id();
        text = text.replace("{webhook}", &webhook);
    }
    if text.contains("{localhook}") || text.contains("{hookdlv}") || text.contains("{delivery}") {
        // A closed local port: tests and redeliveries fail fast.
        let hook = app
            .create(
                "webhooks",
                "webhooks",
                json!({"url": "http://127.0.0.1:9/", "events": ["upstream.deleted"]}),
                Value::Null,
            )
            .await
            .id();
        let delivery = app
            .post(&format!("/api/webhooks/{hook}/test"), Value::Null)
            .await
            .id();
        text = text
            .replace("{localhook}", &hook)
            .replace("{hookdlv}", &format!("{hook}/deliveries/{delivery}"))
            .replace("{delivery}", &delivery);
    }
    if text.contains("{event}") {
        let events = app.get("/api/events?page[size]=1").await;
        text = text.replace(
            "{event}",
            events.body["data"][0]["id"].as_str().unwrap_or_default(),
        );
    }
    if text.contains("{groupA}") {
        let group = app
            .create(
                "groups",
                "groups",
                json!({"name": format!("G{uniq}")}),
                json!({"owner": link("users", &world.user_a)}),
            )
            .await
            .id();
        text = text.replace("{groupA}", &group);
    }
    if text.contains("{victim}") {
        text = text.replace(
            "{victim}",
            &app.create_user(&format!("victim{uniq}@example.com")).await,
        );
    }
    text
}

#[tokio::test]
async fn every_endpoint_for_every_caller() {
    let world = world().await;
    let app = &world.app;
    let mut failures = Vec::new();
    let mut counter = 0;
    for row in table() {
        for (column, (credential, caller_self)) in world.callers.iter().enumerate() {
            counter += 1;
            let uniq = format!("{counter}");
            // Path and body share the resources created for this cell.
            let template = format!("{}\n{}", row.path, row.body.unwrap_or_default());
            let filled = fill(&world, &template, caller_self.as_deref(), &uniq).await;
            let (path, body) = filled.split_once('\n').unwrap_or((&filled, ""));
            let mut request = app
                .client
                .request(row.method.clone(), app.url(path))
                .header("Accept", MT);
            if let Some((name, value)) = credential {
                request = request.header(*name, value);
            }
            if row.body.is_some() {
                request = request.header("Content-Type", MT).body(body.to_owned());
            }
            let reply = Reply::from(request.send().await.unwrap()).await;
            let expected = row.expect[column];
            if reply.status.as_u16() != expected {
                failures.push(format!(
                    "{} {} as {}: expected {expected}, got {} {}",
                    row.method,
                    row.path,
                    CALLERS[column],
                    reply.status.as_u16(),
                    reply.body
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} cells differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_resource_has_its_rows() {
    let rows = table();
    for rules in resources::ALL {
        let base = format!("/api/{}", rules.schema().path);
        for (method, one) in [
            (Method::GET, false),
            (Method::POST, false),
            (Method::GET, true),
            (Method::PATCH, true),
            (Method::DELETE, true),
        ] {
            let found = rows.iter().any(|r| {
                r.method == method
                    && r.path.starts_with(&base)
                    && (r.path.len() > base.len()) == one
                    && r.path[base.len()..].matches('/').count() == usize::from(one)
            });
            assert!(
                found,
                "no authorization row for {method} {base}{}",
                if one { "/{id}" } else { "" }
            );
        }
    }
    for rules in resources::READ_ONLY {
        let base = format!("/api/{}", rules.schema().path);
        for one in [false, true] {
            let found = rows.iter().any(|r| {
                r.method == Method::GET
                    && r.path.starts_with(&base)
                    && r.path[base.len()..].matches('/').count() == usize::from(one)
            });
            assert!(found, "no authorization row for GET {base} (one: {one})");
        }
    }
}
