//! The usage log's write cost: appends synthetic proxy records (1,000 keys over 10 users, one
//! route, like `bench/proxy.sh`) in batches of the given size to a migrated database and
//! prints the CPU time of the whole process per record. Run by `bench/usage-writer.sh`.
//!
//!   usage_append <database url> <records per batch> <records> [with-key-index]
//!
//! `with-key-index` puts back the `(api_key_id, created_at)` index that migration m0006
//! removed, to measure what it cost.

use std::time::Instant;

use migration::{Migrator, MigratorTrait};
use sea_orm::ConnectionTrait;
use tollgate_adapters::persistence::SeaStore;
use tollgate_domain::proxy::usage::{UsageLog, UsageRecord};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// User + system CPU seconds of this process, all threads (the database driver writes on its
/// own thread).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn batch(from: usize, size: usize, ids: &mut ulid::Generator) -> Vec<UsageRecord> {
    (from..from + size)
        .map(|n| {
            let key = n * 7919 % 1000;
            UsageRecord {
                id: format!("use_{}", ids.generate().expect("ulid")),
                request_id: format!("{n:032x}"),
                created_at: 1_700_000_000_000 + (n / 16) as i64,
                method: "GET".into(),
                host: "127.0.0.1".into(),
                path: "/bench".into(),
                status_code: 200,
                duration_ms: 1,
                upstream_duration_ms: Some(1),
                response_bytes: 11,
                client_ip: "127.0.0.1".into(),
                user_agent: "wrk".into(),
                counted: true,
                route_id: Some("rte_01KAAAAAAAAAAAAAAAAAAAAAAA".into()),
                api_key_id: Some(format!("key_01KAAAAAAAAAAAAAAAAAAA{key:04}")),
                user_id: Some(format!("usr_01KAAAAAAAAAAAAAAAAAAAAA{:02}", key / 100)),
                ..UsageRecord::default()
            }
        })
        .collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (url, per_batch, total, key_index) = match args.as_slice() {
        [_, url, per_batch, total] => (url, per_batch, total, false),
        [_, url, per_batch, total, flag] if flag == "with-key-index" => {
            (url, per_batch, total, true)
        }
        _ => anyhow::bail!(
            "usage: usage_append <database url> <records per batch> <records> [with-key-index]"
        ),
    };
    let per_batch: usize = per_batch.parse()?;
    let total: usize = total.parse()?;
    let store = SeaStore::connect(url, 1).await?;
    Migrator::up(store.connection(), None).await?;
    if key_index {
        store
            .connection()
            .execute_unprepared(
                "CREATE INDEX ix_usage_key ON usage_records (api_key_id, created_at)",
            )
            .await?;
    }
    // Made before the clock starts: only the appends are measured.
    let mut ids = ulid::Generator::new();
    let batches: Vec<Vec<UsageRecord>> = (0..total)
        .step_by(per_batch)
        .map(|from| batch(from, per_batch.min(total - from), &mut ids))
        .collect();
    let (cpu_before, started) = (cpu_seconds(), Instant::now());
    for records in &batches {
        store.append(records).await?;
    }
    let (cpu, wall) = (cpu_seconds() - cpu_before, started.elapsed().as_secs_f64());
    let written = total;
    println!(
        "RESULT per_batch={per_batch} records={written} wall_s={wall:.2} cpu_s={cpu:.2} cpu_us_per_record={:.1}",
        cpu * 1e6 / written as f64
    );
    Ok(())
}
