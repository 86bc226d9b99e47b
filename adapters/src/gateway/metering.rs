//! The usage writer: drains the metering channel once a second and writes what it found as
//! one batch, so requests never wait for the database. Also keeps `api_keys.last_used_at` (at
//! most once a minute per key) and prunes records past retention.

use std::{collections::HashMap, sync::Arc, time::Duration};

use serde_json::json;
use tokio::sync::mpsc;
use tollgate_domain::{
    Row, Timestamp,
    proxy::usage::{UsageRecord, prune},
    query::{CmpOp, Cond},
};

use super::Gateway;

/// How often the writer drains the channel. Waking per record would cost more CPU than the
/// write itself at proxy rates; a timer tick drains everything that arrived since. A second's
/// records per batch, because records of many users touch as many index pages per commit, so
/// larger commits make each record cheaper (`bench/usage-writer.sh`).
const FLUSH_EVERY: Duration = Duration::from_secs(1);
const LAST_USED_EVERY_MS: i64 = 60_000;

/// Runs until told to stop (or every sender is gone), then writes what is left.
pub async fn run(
    gateway: Arc<Gateway>,
    mut records: mpsc::Receiver<UsageRecord>,
    retention_days: u64,
) {
    let mut batch = Vec::new();
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
                Ok(record) => batch.push(record),
                Err(mpsc::error::TryRecvError::Empty) => break true,
                Err(mpsc::error::TryRecvError::Disconnected) => break false,
            }
        };
        if !batch.is_empty() {
            flush(&gateway, &mut batch, &mut last_used).await;
        }
        let now = gateway.now();
        if now.millis() - last_prune > 3_600_000 {
            last_prune = now.millis();
            gateway.forget_old_periods(now);
            let cutoff = now.plus_seconds(-(retention_days as i64) * 86_400);
            if let Err(e) = prune(gateway.store.as_ref(), cutoff).await {
                tracing::warn!(error = %e, "cannot prune usage records");
            }
        }
        if stopping || !open {
            return;
        }
    }
}

async fn flush(
    gateway: &Gateway,
    batch: &mut Vec<UsageRecord>,
    last_used: &mut HashMap<String, i64>,
) {
    // One retry: a busy database gets a second chance before the rest of the batch is
    // dropped. Chunks commit on their own, so the retry starts after the stored ones.
    let mut stored = 0;
    for attempt in 0..2 {
        match gateway.usage_log.append(&batch[stored..]).await {
            Ok(()) => {
                stored = batch.len();
                break;
            }
            Err(e) => {
                stored += e.written;
                tracing::warn!(error = %e, attempt, records = batch.len() - stored, "cannot write usage records");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    if stored < batch.len() {
        let lost = (batch.len() - stored) as u64;
        gateway
            .dropped
            .fetch_add(lost, std::sync::atomic::Ordering::Relaxed);
        metrics::counter!("tollgate_usage_dropped_total").increment(lost);
    }
    let now = gateway.now();
    let mut due: Vec<(String, i64)> = Vec::new();
    for record in batch.iter() {
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
    batch.clear();
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
