//! Black-box harness: the real application on 127.0.0.1 (random ports) over a fresh database.
//!
//! Backend: SQLite temp file by default; PostgreSQL when `TOLLGATE_TEST_BACKEND=postgres`
//! (server from `TOLLGATE_TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`),
//! one new database per test.

pub mod receiver;

use std::sync::Once;

use tracing_subscriber::Layer;

use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use tollgate::{
    config::Config,
    startup::{self, Application},
};

pub mod upstream;

pub const MT: &str = "application/vnd.api+json";
pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "correct horse battery staple";

static INIT: Once = Once::new();

/// Password-reset tokens the development-mode mailer logged: (email, token).
static RESET_MAILS: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());

/// Keeps what the log-only mailer writes, as a reader of the logs would see it.
struct ResetMailCapture;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for ResetMailCapture {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        struct Fields(Option<String>, Option<String>);
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                let text = format!("{value:?}");
                match field.name() {
                    "email" => self.0 = Some(text),
                    "reset_token" => self.1 = Some(text),
                    _ => {}
                }
            }
        }
        let mut fields = Fields(None, None);
        event.record(&mut fields);
        if let Fields(Some(email), Some(token)) = fields
            && let Ok(mut mails) = RESET_MAILS.lock()
        {
            mails.push((email, token));
        }
    }
}

/// The newest reset token logged for `email` so far. Reset mails go out after the answer:
/// after a request, use [`wait_reset_mails`].
pub fn last_reset_token(email: &str) -> Option<String> {
    RESET_MAILS
        .lock()
        .ok()?
        .iter()
        .rev()
        .find(|(e, _)| e == email)
        .map(|(_, t)| t.clone())
}

/// Every reset token mailed to `email` so far, oldest first.
pub fn reset_mails(email: &str) -> Vec<String> {
    RESET_MAILS
        .lock()
        .map(|mails| {
            mails
                .iter()
                .filter(|(e, _)| e == email)
                .map(|(_, t)| t.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// Waits (at most 10 s) until `count` reset mails went to `email`; returns the `count`-th token.
/// Reset mails go out after the answer, so a test cannot read them right after the 200.
pub async fn wait_reset_mails(email: &str, count: usize) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let mails = reset_mails(email);
        if mails.len() >= count {
            return mails[count - 1].clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{count} reset mails to {email} expected, got {}",
            mails.len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

fn init() {
    INIT.call_once(|| {
        use tracing_subscriber::layer::SubscriberExt;
        tollgate::install_crypto_provider();
        let level = if std::env::var_os("TEST_LOG").is_some() {
            "debug"
        } else {
            "off"
        };
        let subscriber = tracing_subscriber::registry().with(ResetMailCapture).with(
            tracing_subscriber::fmt::layer()
                .with_test_writer()
                .with_filter(tracing_subscriber::EnvFilter::new(level)),
        );
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
}

/// Which database the suite runs against.
pub fn backend_is_postgres() -> bool {
    std::env::var("TOLLGATE_TEST_BACKEND").is_ok_and(|b| b == "postgres")
}

/// A fresh, empty database URL for one test.
pub async fn fresh_database_url() -> String {
    let name = format!(
        "tg_test_{}",
        ulid::Ulid::generate().to_string().to_lowercase()
    );
    if backend_is_postgres() {
        let server = std::env::var("TOLLGATE_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let admin = Database::connect(&server)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {server} is not reachable: {e}"));
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        let base = server.rsplit_once('/').map(|(b, _)| b).unwrap_or(&server);
        format!("{base}/{name}")
    } else {
        let path = std::env::temp_dir().join(format!("{name}.db"));
        format!("sqlite://{}?mode=rwc", path.display())
    }
}

pub struct TestApp {
    pub admin: String,
    pub proxy: String,
    pub client: Client,
    pub admin_key: String,
    pub admin_id: String,
    pub database_url: String,
}

/// The configuration every test app starts from.
pub fn test_config(database_url: &str) -> Config {
    Config {
        admin_addr: "127.0.0.1:0".into(),
        proxy_addr: "127.0.0.1:0".into(),
        database_url: database_url.to_owned(),
        database_max_connections: 5,
        webhook_allow_private: true,
        workers: 1,
        shutdown_grace_seconds: 1,
        // The black-box tests share one process's standard error; app/tests/cli.rs reads the
        // access log of a real `tollgate serve`.
        access_log: "off".into(),
        ..Config::default()
    }
}

/// Starts the application with a fresh database and a bootstrapped admin (with an admin key).
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    init();
    let database_url = fresh_database_url().await;
    let mut config = test_config(&database_url);
    adjust(&mut config);
    let app = Application::build(config.clone())
        .await
        .expect("application starts");
    let (admin_port, proxy_port) = (app.admin_port(), app.proxy_port());
    tokio::spawn(app.run_until_stopped());
    let store = startup::open_store(&config).await.expect("store");
    let (service, _) = startup::services(store, &config).await.expect("services");
    let created = tollgate_domain::bootstrap::create_admin(
        &service,
        ADMIN_EMAIL,
        "Admin",
        ADMIN_PASSWORD,
        true,
    )
    .await
    .expect("bootstrap admin");
    TestApp {
        admin: format!("http://127.0.0.1:{admin_port}"),
        proxy: format!("http://127.0.0.1:{proxy_port}"),
        client: Client::builder().no_proxy().build().expect("client"),
        admin_key: created.admin_key.expect("admin key"),
        admin_id: created.user_id,
        database_url,
    }
}

/// Starts one more node on an existing database (no bootstrap): (admin URL, proxy URL).
pub async fn spawn_node(database_url: &str, adjust: impl FnOnce(&mut Config)) -> (String, String) {
    init();
    let mut config = test_config(database_url);
    adjust(&mut config);
    let app = Application::build(config).await.expect("node starts");
    let urls = (
        format!("http://127.0.0.1:{}", app.admin_port()),
        format!("http://127.0.0.1:{}", app.proxy_port()),
    );
    tokio::spawn(app.run_until_stopped());
    urls
}

/// A response read whole: status, headers and JSON body (`Null` when empty).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub async fn from(response: Response) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Self {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The first error's code.
    pub fn code(&self) -> &str {
        self.body["errors"][0]["code"].as_str().unwrap_or_default()
    }

    pub fn pointer(&self) -> &str {
        self.body["errors"][0]["source"]["pointer"]
            .as_str()
            .unwrap_or_default()
    }

    pub fn parameter(&self) -> &str {
        self.body["errors"][0]["source"]["parameter"]
            .as_str()
            .unwrap_or_default()
    }

    /// Every error as `(code, pointer)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        self.body["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .map(|e| {
                        (
                            e["code"].as_str().unwrap_or_default().to_owned(),
                            e["source"]["pointer"]
                                .as_str()
                                .unwrap_or_default()
                                .to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn id(&self) -> String {
        self.body["data"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn attr(&self, name: &str) -> &Value {
        &self.body["data"]["attributes"][name]
    }

    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.body
        );
        self
    }

    /// Asserts a JSON:API error: status, code and (when given) pointer.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str, pointer: Option<&str>) -> &Self {
        self.expect(status);
        assert_eq!(self.code(), code, "body: {}", self.body);
        if let Some(pointer) = pointer {
            assert_eq!(self.pointer(), pointer, "body: {}", self.body);
        }
        assert_eq!(
            self.header("content-type"),
            Some(MT),
            "errors are JSON:API documents"
        );
        assert_eq!(self.body["errors"][0]["status"], json!(status.to_string()));
        self
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.admin)
    }

    /// A request with the admin key and the JSON:API `Accept`.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.bare_request(method, path).header("Accept", MT)
    }

    /// A request with the admin key only (no `Accept`).
    pub fn bare_request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .header("Authorization", format!("Bearer {}", self.admin_key))
    }

    pub async fn send(&self, builder: RequestBuilder) -> Reply {
        Reply::from(builder.send().await.expect("request sent")).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.request(Method::GET, path)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(self.request(Method::DELETE, path)).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.write(Method::POST, path, body).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.write(Method::PATCH, path, body).await
    }

    pub async fn write(&self, method: Method, path: &str, body: Value) -> Reply {
        self.send(
            self.request(method, path)
                .header("Content-Type", MT)
                .body(body.to_string()),
        )
        .await
    }

    /// Creates a resource and returns the reply (asserting 201).
    pub async fn create(
        &self,
        path: &str,
        type_name: &str,
        attributes: Value,
        relationships: Value,
    ) -> Reply {
        let mut data = json!({"type": type_name, "attributes": attributes});
        if !relationships.is_null() {
            data["relationships"] = relationships;
        }
        let reply = self
            .post(&format!("/api/{path}"), json!({ "data": data }))
            .await;
        reply.expect(201);
        reply
    }

    /// `PATCH /api/{path}/{id}` with the given attributes.
    pub async fn patch_attributes(
        &self,
        path: &str,
        type_name: &str,
        id: &str,
        attributes: Value,
    ) -> Reply {
        self.patch(
            &format!("/api/{path}/{id}"),
            json!({"data": {"type": type_name, "id": id, "attributes": attributes}}),
        )
        .await
    }

    pub async fn create_plan(&self, name: &str) -> String {
        self.create("plans", "plans", json!({ "name": name }), Value::Null)
            .await
            .id()
    }

    pub async fn create_user(&self, email: &str) -> String {
        self.create(
            "users",
            "users",
            json!({ "email": email, "name": "Someone" }),
            Value::Null,
        )
        .await
        .id()
    }

    pub async fn create_upstream(&self, name: &str, base_url: &str) -> String {
        self.create(
            "upstreams",
            "upstreams",
            json!({ "name": name, "base_url": base_url }),
            Value::Null,
        )
        .await
        .id()
    }
}

/// `{"data": {"type": t, "id": id}}` linkage.
pub fn link(type_name: &str, id: &str) -> Value {
    json!({"data": {"type": type_name, "id": id}})
}

/// A signed-in browser: a cookie jar holding `tollgate_session`, plus the login's bearer token.
pub struct Browser {
    pub client: Client,
    pub jar: std::sync::Arc<reqwest::cookie::Jar>,
    pub token: String,
    pub session_id: String,
    /// The raw `Set-Cookie` value of the login (`tollgate_session=…`).
    pub cookie: String,
    pub origin: String,
}

impl TestApp {
    /// Creates a user with a password (role `user` unless given) and returns its id.
    pub async fn create_user_with_password(
        &self,
        email: &str,
        password: &str,
        role: &str,
    ) -> String {
        self.create(
            "users",
            "users",
            json!({"email": email, "password": password, "role": role, "name": email}),
            Value::Null,
        )
        .await
        .id()
    }

    /// `POST /api/auth/login` with a fresh client of its own (no stored cookie).
    pub async fn login_reply(&self, email: &str, password: &str) -> Reply {
        let body = json!({"data": {"type": "sessions", "attributes": {"email": email, "password": password}}});
        Reply::from(
            self.client
                .post(self.url("/api/auth/login"))
                .header("Content-Type", MT)
                .body(body.to_string())
                .send()
                .await
                .expect("login sent"),
        )
        .await
    }

    /// Signs in through a cookie-keeping client.
    pub async fn login(&self, email: &str, password: &str) -> Browser {
        let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
        let client = Client::builder()
            .no_proxy()
            .cookie_provider(jar.clone())
            .build()
            .expect("client");
        let body = json!({"data": {"type": "sessions", "attributes": {"email": email, "password": password}}});
        let response = client
            .post(self.url("/api/auth/login"))
            .header("Content-Type", MT)
            .body(body.to_string())
            .send()
            .await
            .expect("login sent");
        let reply = Reply::from(response).await;
        reply.expect(200);
        let cookie = reply
            .header("set-cookie")
            .and_then(|c| c.split(';').next())
            .expect("a session cookie")
            .to_owned();
        Browser {
            client,
            jar,
            token: reply.body["data"]["attributes"]["token"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            session_id: reply.id(),
            cookie,
            origin: self.admin.clone(),
        }
    }

    /// A request with only the given `Cookie` header (a replayed cookie).
    pub async fn with_cookie(&self, method: Method, path: &str, cookie: &str) -> Reply {
        self.send(
            self.client
                .request(method, self.url(path))
                .header("Cookie", cookie)
                .header("Origin", &self.admin),
        )
        .await
    }

    /// A request with only the given bearer token.
    pub async fn with_token(&self, method: Method, path: &str, token: &str) -> Reply {
        self.send(
            self.client
                .request(method, self.url(path))
                .bearer_auth(token),
        )
        .await
    }
}

impl Browser {
    /// A request through the cookie jar, with the admin origin (as a browser sends it).
    pub fn request(&self, app: &TestApp, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, app.url(path))
            .header("Accept", MT)
            .header("Origin", &self.origin)
    }
}

/// A minimal SMTP server on 127.0.0.1 that accepts every message and keeps its DATA.
pub struct SmtpSink {
    pub port: u16,
    messages: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl SmtpSink {
    pub async fn start() -> Self {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind SMTP sink");
        let port = listener.local_addr().expect("addr").port();
        let messages = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let store = messages.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let store = store.clone();
                tokio::spawn(async move {
                    let (read, mut write) = socket.into_split();
                    let mut lines = BufReader::new(read).lines();
                    let _ = write.write_all(b"220 sink ESMTP\r\n").await;
                    let mut data: Option<String> = None;
                    while let Ok(Some(line)) = lines.next_line().await {
                        if let Some(body) = data.as_mut() {
                            if line == "." {
                                if let Ok(mut all) = store.lock() {
                                    all.push(std::mem::take(body));
                                }
                                data = None;
                                let _ = write.write_all(b"250 queued\r\n").await;
                            } else {
                                body.push_str(&line);
                                body.push('\n');
                            }
                            continue;
                        }
                        let verb = line
                            .split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_ascii_uppercase();
                        let reply: &[u8] = match verb.as_str() {
                            "EHLO" | "HELO" => b"250 sink\r\n",
                            "DATA" => {
                                data = Some(String::new());
                                b"354 go ahead\r\n"
                            }
                            "QUIT" => {
                                let _ = write.write_all(b"221 bye\r\n").await;
                                break;
                            }
                            _ => b"250 OK\r\n",
                        };
                        let _ = write.write_all(reply).await;
                    }
                });
            }
        });
        Self { port, messages }
    }

    /// The messages received so far (headers and body as sent).
    pub fn messages(&self) -> Vec<String> {
        self.messages.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// The messages once at least `count` arrived (at most 10 s).
    pub async fn wait_messages(&self, count: usize) -> Vec<String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let messages = self.messages();
            if messages.len() >= count || std::time::Instant::now() >= deadline {
                return messages;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}
