//! Rollup figures for `bench/usage-rollups.sh`.
//!
//!   usage_rollups write <database url> <records> <off|0.01|1>
//!     appends synthetic proxy records (1,000 keys × 10 routes, 5,000 a second of traffic)
//!     through the writer's `UsageLog::append` with that request-log policy, in batches of a
//!     second, and prints the process's CPU per record.
//!   usage_rollups query <database url> <rounds>
//!     on a PostgreSQL database holding a month of hour rollups (loaded by the script), runs
//!     the month summary and the 7-day series at 1 h through the domain's use cases and
//!     prints p50 / p99 in ms.

use std::time::Instant;

use migration::{Migrator, MigratorTrait};
use tollgate_adapters::persistence::{SeaStore, UsageStore};
use tollgate_domain::{
    Actor, Timestamp,
    proxy::{
        rollups::LogPolicy,
        usage::{UsageLog, UsageRecord},
        usage_report::{self, UsageParams},
    },
};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

const PER_SECOND: usize = 5_000;

fn second(from: usize, start: i64, ids: &mut ulid::Generator) -> Vec<UsageRecord> {
    (from..from + PER_SECOND)
        .map(|n| {
            let key = n * 7919 % 1000;
            let status = if n % 50 == 0 { 500 } else { 200 };
            UsageRecord {
                id: format!("use_{}", ids.generate().expect("ulid")),
                request_id: format!("{n:032x}"),
                created_at: start + (n / PER_SECOND) as i64 * 1_000 + (n % 1_000) as i64,
                method: "GET".into(),
                host: "127.0.0.1".into(),
                path: "/bench".into(),
                status_code: status,
                duration_ms: (n % 40) as u64,
                upstream_duration_ms: Some(1),
                response_bytes: 11,
                client_ip: "127.0.0.1".into(),
                user_agent: "wrk".into(),
                counted: true,
                route_id: Some(format!("rte_01KAAAAAAAAAAAAAAAAAAAAA{:02}", n % 10)),
                api_key_id: Some(format!("key_01KAAAAAAAAAAAAAAAAAAA{key:04}")),
                user_id: Some(format!("usr_01KAAAAAAAAAAAAAAAAAAAAA{:02}", key / 100)),
                ..UsageRecord::default()
            }
        })
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.as_slice() {
        [_, mode, url, total, policy] if mode == "write" => {
            let total: usize = total.parse()?;
            let policy = LogPolicy::parse(policy)
                .ok_or_else(|| anyhow::anyhow!("policy is off or a rate"))?;
            let store = SeaStore::connect(url, 1).await?;
            Migrator::up(store.connection(), None).await?;
            let log = UsageStore::new(store.clone(), store, policy);
            let start = Timestamp::now().millis() - 3_600_000;
            let mut ids = ulid::Generator::new();
            let batches: Vec<Vec<UsageRecord>> = (0..total)
                .step_by(PER_SECOND)
                .map(|from| second(from, start, &mut ids))
                .collect();
            let (cpu_before, started) = (cpu_seconds(), Instant::now());
            for records in &batches {
                log.append(records).await?;
            }
            let (cpu, wall) = (cpu_seconds() - cpu_before, started.elapsed().as_secs_f64());
            let written = batches.len() * PER_SECOND;
            println!(
                "RESULT records={written} wall_s={wall:.2} cpu_s={cpu:.2} cpu_us_per_record={:.2}",
                cpu * 1e6 / written as f64
            );
        }
        [_, mode, url, rounds] if mode == "query" => {
            let rounds: usize = rounds.parse()?;
            let store = SeaStore::connect(url, 2).await?;
            let now = Timestamp::now();
            let admin = Actor::system();
            let cases = [
                ("summary month", "month", None),
                ("series 7d at 1h", "7d", Some("1h")),
            ];
            for (name, period, interval) in cases {
                let params = UsageParams {
                    period: Some(period.into()),
                    interval: interval.map(str::to_owned),
                    ..UsageParams::default()
                };
                let mut times = Vec::with_capacity(rounds);
                let mut requests = 0;
                for _ in 0..rounds {
                    let t = Instant::now();
                    if interval.is_some() {
                        let s = usage_report::series(&store, &admin, now, &params).await?;
                        requests = s.points.iter().map(|p| p.totals.requests).sum();
                    } else {
                        let s = usage_report::summary(&store, &admin, now, &params).await?;
                        requests = s.totals.requests;
                    }
                    times.push(t.elapsed().as_secs_f64() * 1e3);
                }
                times.sort_by(f64::total_cmp);
                println!(
                    "RESULT case=\"{name}\" requests={requests} p50_ms={:.1} p99_ms={:.1}",
                    percentile(&times, 0.5),
                    percentile(&times, 0.99)
                );
            }
        }
        _ => anyhow::bail!(
            "usage: usage_rollups write <url> <records> <off|rate> | query <url> <rounds>"
        ),
    }
    Ok(())
}
