//! The usage log's batch append on the real database: a batch larger than one statement is
//! stored whole, and a failing commit reports how many records before it were stored, so the
//! metering writer's retry neither loses nor duplicates records.

use sea_orm::{ConnectionTrait, Database};
use tollgate_adapters::persistence::SeaStore;
use tollgate_domain::proxy::usage::{UsageLog, UsageRecord};
use tollgate_tests::{TestApp, spawn_app};

fn record(id: &str) -> UsageRecord {
    UsageRecord {
        id: id.to_owned(),
        request_id: "req_append".into(),
        created_at: 1_700_000_000_000,
        method: "GET".into(),
        host: "api.example.com".into(),
        path: "/v1/items".into(),
        status_code: 200,
        client_ip: "127.0.0.1".into(),
        api_key_id: Some("key_append".into()),
        user_id: Some("usr_append".into()),
        counted: true,
        ..UsageRecord::default()
    }
}

fn fresh_ids(n: usize) -> Vec<String> {
    (0..n)
        .map(|_| format!("use_{}", ulid::Ulid::generate()))
        .collect()
}

async fn stored(app: &TestApp) -> i64 {
    let db = Database::connect(&app.database_url).await.expect("connect");
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM usage_records WHERE request_id = 'req_append'",
        ))
        .await
        .expect("count")
        .expect("a row");
    row.try_get::<i64>("", "n").expect("n")
}

#[tokio::test]
async fn batches_span_statements_and_a_failure_says_how_far_it_got() {
    let app = spawn_app().await;
    let store = SeaStore::connect(&app.database_url, 2)
        .await
        .expect("store");

    // 3,100 records: more than two statements' worth, one commit.
    let first: Vec<UsageRecord> = fresh_ids(3_100).iter().map(|id| record(id)).collect();
    store.append(&first).await.expect("append");
    assert_eq!(stored(&app).await, 3_100);

    // 7,500 new records (one commit's worth), then a duplicate id in the next commit: the
    // first commit stays stored and the error says so.
    let mut second: Vec<UsageRecord> = fresh_ids(7_500).iter().map(|id| record(id)).collect();
    second.push(record(&first[0].id));
    second.extend(fresh_ids(5).iter().map(|id| record(id)));
    let error = store
        .append(&second)
        .await
        .expect_err("a duplicate id fails its chunk");
    assert_eq!(error.written, 7_500);
    assert_eq!(stored(&app).await, 3_100 + 7_500);

    // The writer retries after what was stored (here: past the duplicate).
    store
        .append(&second[error.written + 1..])
        .await
        .expect("retry");
    assert_eq!(stored(&app).await, 3_100 + 7_500 + 5);
}
