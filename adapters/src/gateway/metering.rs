//! The usage writer: drains the metering channel once a second and writes what it found as
//! one batch (its rollups, quota counts and the records the request log keeps, in one
//! transaction), so requests never wait for the database. Also keeps `api_keys.last_used_at`
//! (at most once a minute per key) and prunes log records and rollups past retention.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::Duration,
};

use serde_json::json;
use tokio::sync::mpsc;
use tollgate_domain::{
    Row, Timestamp,
    proxy::usage::{Retention, UsageRecord},
    query::{CmpOp, Cond},
};

use super::Gateway;

/// How often the writer drains the channel. Waking per record would cost more CPU than the
/// write itself at proxy rates; a timer tick drains everything that arrived since. A second's
/// records per batch, because records of many users touch as many index pages per commit, so
/// larger commits make each record cheaper (`bench/usage-writer.sh`).
const FLUSH_EVERY: Duration = Duration::from_secs(1);
const LAST_USED_EVERY_MS: i64 = 60_000;

/// What the writer does besides storing batches.
#[derive(Clone, Default)]
pub struct MeteringOptions {
    pub retention: Retention,
    /// Every stored record also as a JSON line (`TOLLGATE_USAGE_LOG_FILE`).
    pub lines: Option<super::usage_lines::UsageLines>,
}

/// Runs until told to stop (or every sender is gone), then writes what is left.
pub async fn run(
    gateway: Arc<Gateway>,
    mut records: mpsc::Receiver<Vec<UsageRecord>>,
    options: MeteringOptions,
) {
    let retention = options.retention;
    let mut spool = Spool::default();
    let mut last_used: HashMap<String, i64> = HashMap::new();
    let mut last_prune = 0_i64;
    let mut ticker = tokio::time::interval(FLUSH_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = ticker.tick() => false,
            _ = gateway.stop.notified() => true,
        };
        let open = loop {
            match records.try_recv() {
                Ok(batch) => spool.records.extend(batch),
                Err(mpsc::error::TryRecvError::Empty) => break true,
                Err(mpsc::error::TryRecvError::Disconnected) => break false,
            }
        };
        if !spool.records.is_empty() {
            flush(&gateway, &mut spool, &mut last_used, options.lines.as_ref()).await;
        }
        let now = gateway.now();
        if now.millis() - last_prune > 3_600_000 {
            last_prune = now.millis();
            gateway.forget_old_periods(now);
            match gateway.usage_log.prune(now, &retention).await {
                Ok(pruned) => tracing::debug!(
                    records = pruned.records,
                    rollups = pruned.rollups,
                    "usage data past retention pruned"
                ),
                Err(e) => tracing::warn!(error = %e, "cannot prune usage data"),
            }
        }
        if stopping || !open {
            if !spool.records.is_empty() {
                lose(&gateway, spool.records.len());
            }
            return;
        }
    }
}

/// Records waiting for the database. While it cannot be written they stay here and are
/// retried every tick; beyond the buffer size the oldest are dropped (and counted), so an
/// outage costs bounded memory.
#[derive(Default)]
struct Spool {
    records: VecDeque<UsageRecord>,
    /// Since when (ms) writes fail, and when the last warning was logged.
    failing_since: Option<i64>,
    warned_at: i64,
}

const WARN_EVERY_MS: i64 = 30_000;

fn lose(gateway: &Gateway, lost: usize) {
    gateway
        .dropped
        .fetch_add(lost as u64, std::sync::atomic::Ordering::Relaxed);
    metrics::counter!("tollgate_usage_dropped_total").increment(lost as u64);
}

async fn flush(
    gateway: &Gateway,
    spool: &mut Spool,
    last_used: &mut HashMap<String, i64>,
    lines: Option<&super::usage_lines::UsageLines>,
) {
    use std::sync::atomic::Ordering::SeqCst;
    let records = spool.records.make_contiguous();
    // Chunks commit on their own: what failed is retried next tick from the first unstored
    // record, so none is written twice. The generation is odd while records are on their way
    // into the log, so a quota reconciliation never reads the log half-way.
    gateway.write_generation.fetch_add(1, SeqCst);
    let result = gateway.usage_log.append(records).await;
    let stored = match &result {
        Ok(()) => records.len(),
        Err(e) => e.written.min(records.len()),
    };
    gateway.note_written(&records[..stored]);
    if let Some(lines) = lines {
        lines.send(&records[..stored]);
    }
    gateway.write_generation.fetch_add(1, SeqCst);
    let now = gateway.now();
    let mut due: Vec<(String, i64)> = Vec::new();
    for record in &records[..stored] {
        if let Some(key) = &record.api_key_id
            && record.counted
        {
            let recent = last_used
                .get(key)
                .is_some_and(|previous| record.created_at - previous < LAST_USED_EVERY_MS);
            if !recent {
                last_used.insert(key.clone(), record.created_at);
                due.push((key.clone(), record.created_at));
            }
        }
    }
    spool.records.drain(..stored);
    match result {
        Ok(()) => {
            if let Some(since) = spool.failing_since.take() {
                tracing::info!(
                    outage_ms = now.millis() - since,
                    records = stored,
                    "usage records written again"
                );
            }
        }
        Err(e) => {
            let first = spool.failing_since.is_none();
            spool.failing_since.get_or_insert(now.millis());
            if first || now.millis() - spool.warned_at >= WARN_EVERY_MS {
                spool.warned_at = now.millis();
                tracing::warn!(error = %e, waiting = spool.records.len(), "cannot write usage records: keeping them to retry");
            }
        }
    }
    let limit = gateway.settings.usage_buffer.max(1);
    if spool.records.len() > limit {
        let lost = spool.records.len() - limit;
        spool.records.drain(..lost);
        lose(gateway, lost);
    }
    metrics::gauge!("tollgate_usage_spooled").set(spool.records.len() as f64);
    if !due.is_empty() {
        touch_keys(gateway, &due, now).await;
    }
}

async fn touch_keys(gateway: &Gateway, due: &[(String, i64)], _now: Timestamp) {
    let result = async {
        let mut tx = gateway.store.begin().await?;
        for (key, at) in due {
            let mut values = Row::new();
            values.insert("last_used_at".into(), json!(at));
            let cond = Cond::eq("id", key.as_str()).and(Cond::Any(vec![
                Cond::is_null("last_used_at"),
                Cond::cmp("last_used_at", CmpOp::Lt, *at),
            ]));
            tx.set_where("api_keys", &cond, &values).await?;
        }
        tx.commit().await
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "cannot update last_used_at");
    }
}
