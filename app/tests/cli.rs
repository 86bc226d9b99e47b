//! The real `tollgate` binary: `admin create`, `serve`, and bootstrap from the environment.

use std::{
    io::{BufRead, BufReader, Write},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use sea_orm::{ConnectionTrait, Database};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_tollgate");

/// A fresh database: SQLite file, or a new PostgreSQL database when the suite runs on it.
async fn fresh_database_url() -> String {
    let name = format!(
        "tg_test_{}",
        ulid::Ulid::generate().to_string().to_lowercase()
    );
    if std::env::var("TOLLGATE_TEST_BACKEND").is_ok_and(|b| b == "postgres") {
        let server = std::env::var("TOLLGATE_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let admin = Database::connect(&server)
            .await
            .expect("PostgreSQL reachable");
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        let base = server.rsplit_once('/').map(|(b, _)| b).unwrap_or(&server);
        format!("{base}/{name}")
    } else {
        format!(
            "sqlite://{}?mode=rwc",
            std::env::temp_dir().join(format!("{name}.db")).display()
        )
    }
}

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
            std::thread::spawn(move || for _ in lines {});
            return Server {
                admin: format!("http://127.0.0.1:{}", port("admin_port")),
                proxy: format!("http://127.0.0.1:{}", port("proxy_port")),
                child,
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
