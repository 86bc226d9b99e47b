//! The real `tollgate` binary: `admin create`, `serve`, and bootstrap from the environment.

use std::{
    io::{BufRead, BufReader, Write},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

mod common;

use common::fresh_database_url;

const BIN: &str = env!("CARGO_BIN_EXE_tollgate");

fn tollgate(database_url: &str) -> Command {
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TOLLGATE_DATABASE_URL", database_url)
        .env("TOLLGATE_LOG_FORMAT", "json")
        .current_dir(std::env::temp_dir());
    command
}

/// Runs `admin create` with the password on stdin: (exit ok, stdout, stderr).
fn admin_create(
    database_url: &str,
    email: &str,
    password: &str,
    with_key: bool,
) -> (bool, String, String) {
    let mut command = tollgate(database_url);
    command.args([
        "admin",
        "create",
        "--email",
        email,
        "--name",
        "Ops",
        "--password-stdin",
    ]);
    if with_key {
        command.arg("--with-key");
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tollgate");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("write password");
    let out = child.wait_with_output().expect("wait");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A running `tollgate serve` on random ports; killed on drop.
struct Server {
    child: Child,
    admin: String,
    proxy: String,
    /// Every line the server wrote to standard error after it reported its ports.
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(database_url: &str, env: &[(&str, &str)]) -> Server {
    let mut command = tollgate(database_url);
    command
        .args([
            "serve",
            "--admin-addr",
            "127.0.0.1:0",
            "--proxy-addr",
            "127.0.0.1:0",
        ])
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn serve");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        let Ok(log) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if log["fields"]["message"] == "listening" {
            let port = |name: &str| log["fields"][name].as_u64().expect("port logged");
            // Keep draining stderr so the server never blocks on a full pipe.
            let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let kept = log.clone();
            std::thread::spawn(move || {
                for line in lines.map_while(Result::ok) {
                    if let Ok(mut kept) = kept.lock() {
                        kept.push(line);
                    }
                }
            });
            return Server {
                admin: format!("http://127.0.0.1:{}", port("admin_port")),
                proxy: format!("http://127.0.0.1:{}", port("proxy_port")),
                child,
                log,
            };
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("tollgate serve did not report its ports");
}

#[tokio::test]
async fn admin_create_prints_a_working_key_and_refuses_duplicates() {
    let db = fresh_database_url().await;
    let (ok, stdout, stderr) = admin_create(&db, "Ops@Example.com", "a long admin password", true);
    assert!(ok, "admin create failed: {stderr}");
    let key = stdout.lines().last().expect("key line").trim().to_owned();
    assert!(
        key.starts_with("tg_admin_") && key.len() == 49,
        "last line is the key: {stdout:?}"
    );

    let (ok, _, stderr) = admin_create(&db, "ops@example.com", "another long password", false);
    assert!(!ok, "a second admin with the same email must fail");
    assert!(stderr.contains("already exists"), "{stderr}");
    let (ok, _, stderr) = admin_create(&db, "short@example.com", "too short", false);
    assert!(!ok);
    assert!(stderr.contains("12 to 128"), "{stderr}");

    let server = serve(&db, &[]);
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let users: Value = client
        .get(format!("{}/api/users", server.admin))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(users["meta"]["total"], 1);
    assert_eq!(users["data"][0]["attributes"]["email"], "ops@example.com");
    assert_eq!(users["data"][0]["attributes"]["role"], "admin");
    let plans: Value = client
        .get(format!("{}/api/plans", server.admin))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(plans["data"][0]["attributes"]["name"], "Free");
    assert_eq!(plans["data"][0]["attributes"]["is_default"], true);
    let anonymous = client
        .get(format!("{}/api/users", server.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let health = client
        .get(format!("{}/_tollgate/health", server.proxy))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let unrouted = client
        .get(format!("{}/v1/anything", server.proxy))
        .send()
        .await
        .unwrap();
    assert_eq!(unrouted.status(), 404);
    let body: Value = unrouted.json().await.unwrap();
    assert_eq!(body["error"]["code"], "ROUTE_NOT_FOUND");
}

#[tokio::test]
async fn the_first_admin_comes_from_the_environment_once() {
    let db = fresh_database_url().await;
    {
        let _server = serve(
            &db,
            &[
                ("TOLLGATE_ADMIN_EMAIL", "env@example.com"),
                ("TOLLGATE_ADMIN_PASSWORD", "a long admin password"),
            ],
        );
    }
    let (ok, _, stderr) = admin_create(&db, "env@example.com", "a long admin password", false);
    assert!(
        !ok && stderr.contains("already exists"),
        "the env admin exists: {stderr}"
    );
    // A second start with other variables does not create another admin.
    {
        let _server = serve(
            &db,
            &[
                ("TOLLGATE_ADMIN_EMAIL", "other@example.com"),
                ("TOLLGATE_ADMIN_PASSWORD", "a long admin password"),
            ],
        );
    }
    let (ok, _, stderr) = admin_create(&db, "other@example.com", "a long admin password", false);
    assert!(
        ok,
        "other@example.com was not created on the second start: {stderr}"
    );
}

#[test]
fn migrate_and_version() {
    let version = Command::new(BIN).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("tollgate "));
    let db = format!(
        "sqlite://{}?mode=rwc",
        std::env::temp_dir()
            .join(format!("tg_test_{}.db", ulid::Ulid::generate()))
            .display()
    );
    let out = tollgate(&db).arg("migrate").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = tollgate("mysql://nowhere").arg("migrate").output().unwrap();
    assert!(!bad.status.success());
}

/// Runs the binary with `args` (and extra environment): (exit ok, stdout, stderr).
fn run(database_url: &str, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = tollgate(database_url)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run tollgate");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn config_check_prints_the_effective_configuration_with_secrets_masked() {
    let db = "postgres://tollgate:dbsecretpw@127.0.0.1:5432/tollgate";
    let jwt = "a-jwt-secret-that-is-long-enough-to-pass-0123456789";
    let (ok, stdout, stderr) = run(
        db,
        &["config", "check", "--format", "json"],
        &[
            ("TOLLGATE_JWT_SECRET", jwt),
            ("TOLLGATE_ADMIN_PASSWORD", "adminpassword123"),
            ("TOLLGATE_WORKERS", "3"),
        ],
    );
    assert!(ok, "{stderr}");
    let config: Value = serde_json::from_str(&stdout).expect("JSON on stdout");
    assert_eq!(config["workers"], 3);
    assert_eq!(config["jwt_secret"], "***");
    assert_eq!(config["admin_password"], "***");
    assert_eq!(
        config["database_url"],
        "postgres://tollgate:***@127.0.0.1:5432/tollgate"
    );
    assert!(
        !stdout.contains(jwt)
            && !stdout.contains("dbsecretpw")
            && !stdout.contains("adminpassword123")
    );

    let (ok, stdout, stderr) = run(db, &["config", "check"], &[("TOLLGATE_JWT_SECRET", jwt)]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("jwt_secret = \"***\""),
        "TOML by default: {stdout}"
    );
    assert!(stdout.contains("shutdown_grace_seconds = 30"));

    let (ok, _, stderr) = run(
        db,
        &["config", "check"],
        &[
            ("TOLLGATE_LOG_FORMAT", "xml"),
            ("TOLLGATE_USAGE_RETENTION_DAYS", "0"),
        ],
    );
    assert!(!ok);
    assert!(
        stderr.contains("log_format") && stderr.contains("usage_retention_days"),
        "{stderr}"
    );
    let (ok, _, stderr) = run(db, &["config", "check"], &[("TOLLGATE_WORKERS", "many")]);
    assert!(!ok);
    assert!(stderr.to_lowercase().contains("workers"), "{stderr}");
    let (ok, _, stderr) = run(db, &["config", "check", "--format", "yaml"], &[]);
    assert!(!ok && stderr.contains("yaml"), "{stderr}");
}

#[tokio::test]
async fn keys_create_and_revoke_through_the_use_cases() {
    let db = fresh_database_url().await;
    let (ok, _, stderr) = admin_create(&db, "keys@example.com", "a long admin password", false);
    assert!(ok, "{stderr}");
    let (ok, stdout, stderr) = run(
        &db,
        &[
            "keys",
            "create",
            "--user",
            "Keys@Example.com",
            "--name",
            "ci",
            "--expires-at",
            "2999-01-01T00:00:00Z",
        ],
        &[],
    );
    assert!(ok, "{stderr}");
    let key = stdout.lines().last().expect("key line").trim().to_owned();
    assert!(key.starts_with("tg_live_") && key.len() == 48, "{stdout}");
    let key_id = stdout
        .split_whitespace()
        .find(|w| w.starts_with("key_"))
        .expect("key id printed")
        .to_owned();
    let user_id = stdout
        .split_whitespace()
        .find(|w| w.starts_with("usr_"))
        .expect("user id printed")
        .to_owned();
    // By id too.
    let (ok, stdout, stderr) = run(
        &db,
        &["keys", "create", "--user", &user_id, "--name", "two"],
        &[],
    );
    assert!(ok && stdout.contains("tg_live_"), "{stderr}");

    let (ok, _, stderr) = run(
        &db,
        &[
            "keys",
            "create",
            "--user",
            "nobody@example.com",
            "--name",
            "x",
        ],
        &[],
    );
    assert!(
        !ok && stderr.contains("no user nobody@example.com"),
        "{stderr}"
    );
    let (ok, _, stderr) = run(
        &db,
        &["keys", "create", "--user", "bob", "--name", "x"],
        &[],
    );
    assert!(!ok && stderr.contains("--user"), "{stderr}");
    let (ok, _, stderr) = run(
        &db,
        &[
            "keys",
            "create",
            "--user",
            &user_id,
            "--name",
            "x",
            "--expires-at",
            "tomorrow",
        ],
        &[],
    );
    assert!(
        !ok && stderr.contains("error: expires_at must be an RFC 3339 timestamp"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    let (ok, stdout, stderr) = run(&db, &["keys", "revoke", &key_id], &[]);
    assert!(ok && stdout.contains(&key_id), "{stderr}");
    let (ok, _, stderr) = run(&db, &["keys", "revoke", &key_id], &[]);
    assert!(ok, "revoking twice succeeds: {stderr}");
    let (ok, _, stderr) = run(&db, &["keys", "revoke", "key_nope"], &[]);
    assert!(!ok && stderr.contains("no API key"), "{stderr}");

    let server = serve(&db, &[]);
    let status = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("{}/anything", server.proxy))
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(
        status, 404,
        "no route: the proxy answers before checking keys"
    );
}

#[test]
fn help_explains_every_command() {
    for args in [
        vec!["--help"],
        vec!["keys", "create", "--help"],
        vec!["keys", "revoke", "--help"],
        vec!["config", "check", "--help"],
    ] {
        let out = Command::new(BIN).args(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        let help = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(help.contains("Usage:"), "{help}");
    }
    let out = Command::new(BIN)
        .args(["keys", "create", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("RFC 3339") && help.contains("usr_"), "{help}");
}

/// A tiny HTTP/1.1 upstream: `/slow…` answers after 1.5 s (and says when it got one), the
/// rest at once.
fn slow_upstream() -> (String, std::sync::mpsc::Receiver<()>) {
    use std::io::Read;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind upstream");
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let slow = String::from_utf8_lossy(&head).contains(" /slow");
                if slow {
                    let _ = tx.send(());
                    std::thread::sleep(Duration::from_millis(1500));
                }
                let body = if slow { "slow" } else { "fast" };
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    (url, rx)
}

#[tokio::test]
async fn sigterm_lets_the_request_in_flight_finish_and_exits_zero() {
    let db = fresh_database_url().await;
    let (ok, stdout, stderr) = admin_create(&db, "term@example.com", "a long admin password", true);
    assert!(ok, "{stderr}");
    let admin_key = stdout.lines().last().unwrap().trim().to_owned();
    let admin_id = stdout
        .split_whitespace()
        .find(|w| w.starts_with("usr_"))
        .expect("admin id printed")
        .to_owned();
    let (upstream_url, slow_started) = slow_upstream();
    let mut server = serve(&db, &[("TOLLGATE_SHUTDOWN_GRACE_SECONDS", "10")]);
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let create = |path: &str, body: Value| {
        client
            .post(format!("{}/api/{path}", server.admin))
            .bearer_auth(&admin_key)
            .header("Content-Type", "application/vnd.api+json")
            .header("Accept", "application/vnd.api+json")
            .body(body.to_string())
            .send()
    };
    let upstream: Value = create(
        "upstreams",
        serde_json::json!({"data": {"type": "upstreams",
            "attributes": {"name": "slow", "base_url": upstream_url}}}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let upstream_id = upstream["data"]["id"]
        .as_str()
        .expect("upstream")
        .to_owned();
    let route = create(
        "routes",
        serde_json::json!({"data": {"type": "routes",
            "attributes": {"name": "all", "path_pattern": "/", "match_type": "prefix"},
            "relationships": {"upstream": {"data": {"type": "upstreams", "id": upstream_id}}}}}),
    )
    .await
    .unwrap();
    assert_eq!(route.status(), 201);
    let key: Value = create(
        "api-keys",
        serde_json::json!({"data": {"type": "api_keys", "attributes": {"name": "term"},
            "relationships": {"user": {"data": {"type": "users", "id": admin_id}}}}}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let key = key["data"]["meta"]["key"]
        .as_str()
        .unwrap_or_else(|| panic!("proxy key: {key}"))
        .to_owned();

    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let status = client
            .get(format!("{}/fast", server.proxy))
            .header("X-API-Key", &key)
            .send()
            .await
            .unwrap()
            .status();
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "route not live: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let in_flight = tokio::spawn({
        let request = client
            .get(format!("{}/slow", server.proxy))
            .header("X-API-Key", &key);
        async move {
            let response = request.send().await.expect("answered");
            (response.status(), response.text().await.unwrap_or_default())
        }
    });
    tokio::task::spawn_blocking(move || slow_started.recv_timeout(Duration::from_secs(5)))
        .await
        .unwrap()
        .expect("the slow request reached the upstream");
    let killed = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let (status, body) = tokio::time::timeout(Duration::from_secs(10), in_flight)
        .await
        .expect("the request in flight completes")
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, "slow");
    let deadline = Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(exit) = server.child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "tollgate did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "exit status {exit:?}");
}

/// One request a receiver got: headers (lower-case names) and body.
type Delivery = (std::collections::HashMap<String, String>, Vec<u8>);

/// A webhook receiver: answers 200 to each request and hands it over.
fn webhook_receiver() -> (String, std::sync::mpsc::Receiver<Delivery>) {
    use std::io::Read;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind receiver");
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                match stream.read(&mut byte) {
                    Ok(1) => head.push(byte[0]),
                    _ => break,
                }
            }
            let headers: std::collections::HashMap<String, String> = String::from_utf8_lossy(&head)
                .lines()
                .skip(1)
                .filter_map(|line| line.split_once(':'))
                .map(|(n, v)| (n.trim().to_lowercase(), v.trim().to_owned()))
                .collect();
            let length = headers
                .get("content-length")
                .and_then(|l| l.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0u8; length];
            if stream.read_exact(&mut body).is_err() {
                continue;
            }
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = tx.send((headers, body));
        }
    });
    (url, rx)
}

/// A key file in the temp directory holding `content`.
fn key_file(content: &str) -> String {
    let path = std::env::temp_dir().join(format!("tg_key_{}", ulid::Ulid::generate()));
    std::fs::write(&path, content).expect("write key file");
    path.display().to_string()
}

/// A fresh key: base64 of 32 bytes (two ULIDs, whose random parts differ per call).
fn random_key() -> String {
    use base64::Engine;
    let bytes: Vec<u8> = (0..2)
        .flat_map(|_| ulid::Ulid::generate().0.to_le_bytes())
        .collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Rows of the `settings` table named `id`.
async fn settings_rows(database_url: &str, id: &str) -> usize {
    use sea_orm::{ConnectionTrait, Database, Statement};
    let db = Database::connect(database_url).await.expect("connect");
    db.query_all_raw(Statement::from_string(
        db.get_database_backend(),
        format!("SELECT id FROM settings WHERE id = '{id}'"),
    ))
    .await
    .expect("read settings")
    .len()
}

#[tokio::test]
async fn a_key_file_seals_secrets_that_open_after_a_restart_with_the_same_file() {
    use hmac::{Hmac, Mac};
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let db = fresh_database_url().await;
    let file = key_file(&format!("{}\n", random_key()));
    let env = [
        ("TOLLGATE_ENCRYPTION_KEY_FILE", file.as_str()),
        ("TOLLGATE_WEBHOOK_ALLOW_PRIVATE", "true"),
    ];
    let mut create = tollgate(&db);
    create
        .args([
            "admin",
            "create",
            "--email",
            "k@example.com",
            "--password-stdin",
            "--with-key",
        ])
        .envs(env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = create.spawn().expect("spawn");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"a long admin password\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let key = stdout.lines().last().unwrap().trim().to_owned();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let (url, deliveries) = webhook_receiver();
    let hook = {
        let server = serve(&db, &env);
        let created: Value = client
            .post(format!("{}/api/webhooks", server.admin))
            .bearer_auth(&key)
            .header("Content-Type", "application/vnd.api+json")
            .body(
                serde_json::json!({"data": {"type": "webhooks", "attributes": {
                    "url": url, "events": ["upstream.created"], "secret": SECRET}}})
                .to_string(),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        created["data"]["id"].as_str().expect("created").to_owned()
    };
    assert_eq!(
        settings_rows(&db, "encryption_key").await,
        0,
        "the key came from the file, none was generated into the database"
    );

    // Restarted with the same file: the sealed secret opens and signs the test delivery.
    let server = serve(&db, &env);
    let test = client
        .post(format!("{}/api/webhooks/{hook}/test", server.admin))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(test.status(), 200, "{}", test.text().await.unwrap());
    let (headers, body) = deliveries
        .recv_timeout(Duration::from_secs(5))
        .expect("delivery arrived");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(&body);
    assert_eq!(
        headers.get("x-webhook-signature").map(String::as_str),
        Some(hex::encode(mac.finalize().into_bytes()).as_str()),
        "signed with the secret given on create"
    );
    drop(server);

    // Another key file: refused, naming what does not open.
    let other = key_file(&random_key());
    let (ok, _, stderr) = run(
        &db,
        &[
            "serve",
            "--admin-addr",
            "127.0.0.1:0",
            "--proxy-addr",
            "127.0.0.1:0",
        ],
        &[("TOLLGATE_ENCRYPTION_KEY_FILE", other.as_str())],
    );
    assert!(!ok, "another key must not start");
    assert!(
        stderr.contains("does not open a webhook secret"),
        "{stderr}"
    );
}

#[test]
fn a_bad_key_file_is_a_clear_error() {
    let db = format!(
        "sqlite://{}?mode=rwc",
        std::env::temp_dir()
            .join(format!("tg_test_{}.db", ulid::Ulid::generate()))
            .display()
    );
    let missing = std::env::temp_dir()
        .join(format!("tg_no_such_key_{}", ulid::Ulid::generate()))
        .display()
        .to_string();
    let short = key_file("c2hvcnQ=\n");
    let garbage = key_file("not base64 at all!");
    let serve = [
        "serve",
        "--admin-addr",
        "127.0.0.1:0",
        "--proxy-addr",
        "127.0.0.1:0",
    ];
    for (path, why) in [
        (&missing, "cannot read"),
        (&short, "does not hold base64 of 32 bytes"),
        (&garbage, "does not hold base64 of 32 bytes"),
    ] {
        for args in [&["config", "check"][..], &serve[..]] {
            let (ok, _, stderr) = run(&db, args, &[("TOLLGATE_ENCRYPTION_KEY_FILE", path)]);
            assert!(!ok, "{args:?} with {path} must fail");
            assert!(
                stderr.contains("TOLLGATE_ENCRYPTION_KEY_FILE")
                    && stderr.contains(path.as_str())
                    && stderr.contains(why),
                "{args:?}: {stderr}"
            );
            assert!(!stderr.contains("panicked"), "{stderr}");
        }
    }
    let good = key_file(&random_key());
    let (ok, _, stderr) = run(
        &db,
        &["config", "check"],
        &[
            ("TOLLGATE_ENCRYPTION_KEY_FILE", good.as_str()),
            ("TOLLGATE_ENCRYPTION_KEY", random_key().as_str()),
        ],
    );
    assert!(!ok && stderr.contains("not both"), "{stderr}");
}

#[test]
fn config_check_warns_when_the_key_would_live_in_the_database() {
    let db = "sqlite://tollgate.db?mode=rwc";
    let warning = "warning: neither TOLLGATE_ENCRYPTION_KEY nor TOLLGATE_ENCRYPTION_KEY_FILE";
    let (ok, stdout, stderr) = run(db, &["config", "check", "--format", "json"], &[]);
    assert!(ok, "a warning, not an error: {stderr}");
    assert!(stderr.contains(warning), "{stderr}");
    assert!(
        serde_json::from_str::<Value>(&stdout).is_ok(),
        "stdout stays the document: {stdout}"
    );
    let file = key_file(&random_key());
    let key = random_key();
    for env in [
        ("TOLLGATE_ENCRYPTION_KEY_FILE", file.as_str()),
        ("TOLLGATE_ENCRYPTION_KEY", key.as_str()),
    ] {
        let (ok, stdout, stderr) = run(db, &["config", "check"], &[env]);
        assert!(ok, "{stderr}");
        assert!(!stderr.contains("warning"), "{env:?}: {stderr}");
        assert!(!stdout.contains(&key), "{stdout}");
    }
    let (ok, _, stderr) = run(
        db,
        &["config", "check"],
        &[("TOLLGATE_ENCRYPTION_KEY", "c2hvcnQ=")],
    );
    assert!(!ok && stderr.contains("base64 of 32 bytes"), "{stderr}");
}

/// The proxy writes one access-log line per request through its own buffered writer: JSON
/// when asked, text by default in text mode, nothing when off.
#[tokio::test]
async fn the_proxy_writes_one_access_log_line_per_request() {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    for (setting, expect) in [
        ("json", Some("json")),
        ("text", Some("text")),
        ("off", None),
    ] {
        let db = fresh_database_url().await;
        let server = serve(&db, &[("TOLLGATE_ACCESS_LOG", setting)]);
        let ids: Vec<String> = (0..3).map(|i| format!("access-{setting}-{i}")).collect();
        for id in &ids {
            let status = client
                .get(format!("{}/nowhere", server.proxy))
                .header("X-Request-Id", id)
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(status, 404);
        }
        let lines_for = |id: &str| -> Vec<String> {
            server
                .log
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l.contains(id) && l.contains("tollgate::access"))
                .cloned()
                .collect()
        };
        match expect {
            Some(format) => {
                let deadline = Instant::now() + Duration::from_secs(5);
                while ids.iter().any(|id| lines_for(id).is_empty()) {
                    assert!(Instant::now() < deadline, "{setting}: access lines missing");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                for id in &ids {
                    let lines = lines_for(id);
                    assert_eq!(lines.len(), 1, "{setting}: one line per request: {lines:?}");
                    let line = &lines[0];
                    assert!(!line.contains('\u{1b}'), "no colour codes: {line}");
                    if format == "json" {
                        let value: Value = serde_json::from_str(line).expect("a JSON line");
                        assert_eq!(value["fields"]["request_id"], id.as_str());
                        assert_eq!(value["fields"]["status"], 404);
                        assert_eq!(value["fields"]["code"], "ROUTE_NOT_FOUND");
                        assert_eq!(value["fields"]["path"], "/nowhere");
                    } else {
                        assert!(serde_json::from_str::<Value>(line).is_err(), "{line}");
                        assert!(line.contains(&format!("request_id={id} ")), "{line}");
                        assert!(line.contains("status=404 code=ROUTE_NOT_FOUND"), "{line}");
                    }
                }
            }
            None => {
                // Long enough for two flush ticks of the workers.
                tokio::time::sleep(Duration::from_millis(600)).await;
                for id in &ids {
                    assert!(lines_for(id).is_empty(), "off writes nothing");
                }
            }
        }
    }
}
