//! The job queue: fan-out of committed events into jobs, leases, the log's retention, the
//! queue's depth.

use serde_json::{Value, json};

use super::{payload::subscribed, text};
use crate::{
    DomainError, Row, Timestamp,
    ports::IdGenerator,
    query::{CmpOp, Cond, ListQuery, SortKey},
    service::ResourceService,
};

/// How long the delivery log keeps an attempt (webhooks.md §6).
pub const LOG_RETENTION_MS: i64 = 30 * 24 * 3600 * 1000;

/// Events one fan-out transaction moves at most.
const FAN_OUT_BATCH: u64 = 200;

/// How long a claimed job belongs to its dispatcher: one attempt plus slack.
fn lease_ms(service: &ResourceService) -> i64 {
    service.ports().settings.webhook_timeout_ms as i64 + 5_000
}

fn oldest_first(column: &str) -> Vec<SortKey> {
    vec![
        SortKey {
            column: column.into(),
            descending: false,
        },
        SortKey {
            column: "id".into(),
            descending: false,
        },
    ]
}

/// A first attempt, due `now`.
pub(super) fn new_job(
    ids: &dyn IdGenerator,
    event_id: &str,
    webhook_id: &str,
    now: Timestamp,
) -> Row {
    let mut job = Row::new();
    job.insert("id".into(), json!(ids.new_id("job_")));
    job.insert("event_id".into(), json!(event_id));
    job.insert("webhook_id".into(), json!(webhook_id));
    job.insert("attempt".into(), json!(1));
    job.insert("due_at".into(), json!(now.millis()));
    job.insert("claimed_until".into(), Value::Null);
    job.insert("redelivery".into(), json!(false));
    job.insert("single_attempt".into(), json!(false));
    job.insert("delivery_id".into(), Value::Null);
    job.insert("created_at".into(), json!(now.millis()));
    job
}

/// Turns committed, undispatched events into jobs (one per enabled, subscribed webhook) and
/// marks them dispatched, in one transaction. Up to `claim` of the new jobs come back
/// already leased to the caller, so a fresh event needs no second round trip.
pub async fn fan_out(service: &ResourceService, claim: usize) -> Result<Vec<Row>, DomainError> {
    let store = &service.ports().store;
    let pending = store
        .read()
        .await?
        .find("events", Cond::is_null("dispatched_at"))
        .await?;
    if pending.is_none() {
        return Ok(Vec::new());
    }
    let mut tx = store.begin().await?;
    let query = ListQuery {
        cond: Cond::is_null("dispatched_at"),
        sort: oldest_first("created_at"),
        offset: 0,
        limit: FAN_OUT_BATCH,
    };
    let events = tx.lock("events", &query, true).await?;
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let hooks = tx
        .list(
            "webhooks",
            &ListQuery::all(
                Cond::is_null("deleted_at").and(Cond::eq("enabled", true)),
                100_000,
            ),
        )
        .await?;
    let now = service.now();
    let lease = now.millis() + lease_ms(service);
    let mut claimed = Vec::new();
    for mut event in events {
        let event_type = text(&event, "type").to_owned();
        let event_id = text(&event, "id").to_owned();
        for hook in hooks
            .iter()
            .filter(|h| subscribed(h.get("events").unwrap_or(&Value::Null), &event_type))
        {
            let mut job = new_job(
                service.ports().ids.as_ref(),
                &event_id,
                text(hook, "id"),
                now,
            );
            if claimed.len() < claim {
                job.insert("claimed_until".into(), json!(lease));
                claimed.push(job.clone());
            }
            tx.insert("webhook_jobs", &job).await?;
        }
        event.insert("dispatched_at".into(), json!(now.millis()));
        tx.update("events", &event).await?;
    }
    tx.commit().await?;
    Ok(claimed)
}

/// Leases up to `limit` due jobs (first attempts left over by [`fan_out`], retries, redeliveries,
/// and jobs whose dispatcher died).
pub async fn claim_due(service: &ResourceService, limit: usize) -> Result<Vec<Row>, DomainError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let now = service.now();
    let due = Cond::cmp("due_at", CmpOp::Le, now.millis()).and(Cond::Any(vec![
        Cond::is_null("claimed_until"),
        Cond::cmp("claimed_until", CmpOp::Lt, now.millis()),
    ]));
    let store = &service.ports().store;
    if store
        .read()
        .await?
        .find("webhook_jobs", due.clone())
        .await?
        .is_none()
    {
        return Ok(Vec::new());
    }
    let mut tx = store.begin().await?;
    let query = ListQuery {
        cond: due,
        sort: oldest_first("due_at"),
        offset: 0,
        limit: limit as u64,
    };
    let mut jobs = tx.lock("webhook_jobs", &query, true).await?;
    let lease = now.millis() + lease_ms(service);
    for job in &mut jobs {
        job.insert("claimed_until".into(), json!(lease));
        tx.update("webhook_jobs", job).await?;
    }
    tx.commit().await?;
    Ok(jobs)
}

/// Drops delivery-log rows older than [`LOG_RETENTION_MS`]; returns how many.
pub async fn purge_log(service: &ResourceService) -> Result<u64, DomainError> {
    let cutoff = service.now().millis() - LOG_RETENTION_MS;
    let mut tx = service.ports().store.begin().await?;
    let gone = tx
        .delete_where(
            "webhook_deliveries",
            &Cond::cmp("created_at", CmpOp::Lt, cutoff),
        )
        .await?;
    tx.commit().await?;
    Ok(gone)
}

/// Work waiting for the dispatcher: committed events not yet fanned out plus queued delivery
/// jobs (first attempts, retries, redeliveries).
pub async fn queue_depth(service: &ResourceService) -> Result<u64, DomainError> {
    let mut session = service.ports().store.read().await?;
    let events = session
        .count("events", &Cond::is_null("dispatched_at"))
        .await?;
    let jobs = session.count("webhook_jobs", &Cond::True).await?;
    Ok(events + jobs)
}
