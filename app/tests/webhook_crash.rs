//! The outbox survives SIGKILL: the real binary is killed while concurrent clients write and
//! a slow receiver lags behind; after a restart on the same database every committed change's
//! event reaches the receiver, and nothing else does.

mod common;
#[path = "../../tests/src/receiver.rs"]
#[allow(dead_code)]
mod receiver;

use std::{
    collections::BTreeSet,
    io::{BufRead, BufReader, Write},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use common::fresh_database_url;
use receiver::Receiver;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_tollgate");
const MT: &str = "application/vnd.api+json";
const CHANGES: usize = 1_000;
const CLIENTS: usize = 8;

fn tollgate(database_url: &str) -> Command {
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TOLLGATE_DATABASE_URL", database_url)
        .env("TOLLGATE_LOG_FORMAT", "json")
        .env("TOLLGATE_WEBHOOK_ALLOW_PRIVATE", "true")
        .env("TOLLGATE_WEBHOOK_TIMEOUT_MS", "2000")
        .env("TOLLGATE_WEBHOOK_CONCURRENCY", "16")
        .env(
            "TOLLGATE_WEBHOOK_RETRY_SCHEDULE",
            "0ms,200ms,200ms,200ms,200ms,200ms",
        )
        .current_dir(std::env::temp_dir());
    command
}

fn admin_key(database_url: &str) -> String {
    let mut child = tollgate(database_url)
        .args(["admin", "create", "--email", "ops@example.com"])
        .args(["--password-stdin", "--with-key"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tollgate");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"a long admin password\n")
        .expect("password");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .expect("key")
        .trim()
        .to_owned()
}

/// `tollgate serve` on random ports: (process, admin base URL).
fn serve(database_url: &str) -> (Child, String) {
    let mut child = tollgate(database_url)
        .args(["serve", "--admin-addr", "127.0.0.1:0"])
        .args(["--proxy-addr", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        let Ok(log) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if log["fields"]["message"] == "listening" {
            let port = log["fields"]["admin_port"].as_u64().expect("port");
            std::thread::spawn(move || for _ in lines {});
            return (child, format!("http://127.0.0.1:{port}"));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("tollgate serve did not report its ports");
}

/// Writers that create upstreams until `target` changes succeeded or `stop` is set.
async fn write_until(
    base: String,
    key: String,
    done: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    target: usize,
    round: usize,
) {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut writers = Vec::new();
    for writer in 0..CLIENTS {
        let (client, base, key) = (client.clone(), base.clone(), key.clone());
        let (done, stop) = (done.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) && done.load(Ordering::SeqCst) < target {
                n += 1;
                let body = json!({"data": {"type": "upstreams", "attributes": {
                    "name": format!("u-{round}-{writer}-{n}"), "base_url": "http://127.0.0.1:9"}}});
                let sent = client
                    .post(format!("{base}/api/upstreams"))
                    .bearer_auth(&key)
                    .header("Content-Type", MT)
                    .header("Accept", MT)
                    .body(body.to_string())
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 201 => {
                        done.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(r) => panic!("unexpected {}", r.status()),
                    // The server was killed under this request: it may or may not have committed.
                    Err(_) => return,
                }
            }
        }));
    }
    for writer in writers {
        let _ = writer.await;
    }
}

/// Every event id in the audit log, with its type and creation time.
async fn all_events(base: &str, key: &str) -> Vec<(String, String, String)> {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut out = Vec::new();
    for page in 1.. {
        let doc: Value = client
            .get(format!(
                "{base}/api/events?sort=created_at&page[size]=100&page[number]={page}"
            ))
            .bearer_auth(key)
            .header("Accept", MT)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let data = doc["data"].as_array().cloned().unwrap_or_default();
        if data.is_empty() {
            break;
        }
        for event in data {
            out.push((
                event["id"].as_str().unwrap_or_default().to_owned(),
                event["attributes"]["type"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                event["attributes"]["created_at"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            ));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_committed_change_loses_its_event_across_sigkill() {
    let started = Instant::now();
    let db = fresh_database_url().await;
    let key = admin_key(&db);
    let receiver = Receiver::scripted(Vec::new(), 200, Duration::from_millis(60)).await;
    let (mut first, base) = serve(&db);
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let created: Value = client
        .post(format!("{base}/api/webhooks"))
        .bearer_auth(&key)
        .header("Content-Type", MT)
        .body(
            json!({"data": {"type": "webhooks", "attributes": {"url": receiver.url, "events": ["upstream.*"]}}})
                .to_string(),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(created["data"]["id"].is_string(), "{created}");

    let done = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writing = tokio::spawn(write_until(
        base.clone(),
        key.clone(),
        done.clone(),
        stop.clone(),
        CHANGES,
        1,
    ));
    while done.load(Ordering::SeqCst) < CHANGES / 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let acknowledged = done.load(Ordering::SeqCst);
    let arrived = receiver.received().len();
    first.kill().expect("SIGKILL"); // `Child::kill` is SIGKILL on Unix.
    first.wait().expect("reaped");
    stop.store(true, Ordering::SeqCst);
    writing.await.unwrap();
    let before_restart = receiver.received().len();
    // The kill must hit a backlog, or the test proves nothing.
    assert!(
        arrived < acknowledged,
        "the receiver had kept up ({arrived} of {acknowledged}) when the process was killed"
    );
    eprintln!("killed with {acknowledged} changes acknowledged, {arrived} delivered");

    let (mut second, base) = serve(&db);
    stop.store(false, Ordering::SeqCst);
    write_until(
        base.clone(),
        key.clone(),
        done.clone(),
        stop.clone(),
        CHANGES,
        2,
    )
    .await;
    assert!(done.load(Ordering::SeqCst) >= CHANGES);

    let events = all_events(&base, &key).await;
    let expected: BTreeSet<String> = events
        .iter()
        .filter(|(_, t, _)| t.starts_with("upstream."))
        .map(|(id, _, _)| id.clone())
        .collect();
    assert!(
        expected.len() >= CHANGES,
        "{} upstream events for {CHANGES} acknowledged changes",
        expected.len()
    );
    let deadline = Instant::now() + Duration::from_secs(45);
    let received: BTreeSet<String> = loop {
        let got: BTreeSet<String> = receiver
            .received()
            .iter()
            .map(|r| r.header("webhook-id").to_owned())
            .collect();
        if expected.is_subset(&got) || Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let missing: Vec<&String> = expected.difference(&received).collect();
    assert!(
        missing.is_empty(),
        "{} of {} events never arrived (first: {:?}); {before_restart} had arrived before the kill",
        missing.len(),
        expected.len(),
        missing.first()
    );
    let known: BTreeSet<&String> = events.iter().map(|(id, _, _)| id).collect();
    let invented: Vec<&String> = received.iter().filter(|id| !known.contains(id)).collect();
    assert!(invented.is_empty(), "events nobody committed: {invented:?}");
    let _ = second.kill();
    let _ = second.wait();
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "took {:?}",
        started.elapsed()
    );
}
