//! Webhook delivery: committed events fan out into one job per subscribed webhook, jobs are
//! claimed under a lease, every attempt is recorded, failures are retried on a schedule, and
//! a webhook that keeps failing is disabled.
//!
//! Why a job table next to the `events` outbox: the fan-out (marking events dispatched and
//! creating their jobs) is one transaction, and so is recording an attempt with its
//! rescheduling. A crash anywhere leaves either the old state or the new one, so nothing
//! is lost; a crash between sending and recording repeats the attempt once the lease runs
//! out (at-least-once, receivers dedupe on `webhook-id`).

use serde_json::{Value, json};

use crate::{
    Actor, DomainError, Row, Timestamp,
    ports::{AttemptOutcome, DeliveryError, OutgoingDelivery, Vault},
    query::{CmpOp, Cond, ListQuery, SortKey},
    resources::{webhook_deliveries, webhooks},
    service::{self, Ctx, Op, ResourceService},
};

/// 0 s, 1 min, 5 min, 30 min, 2 h, 8 h (webhooks.md §5).
pub const DEFAULT_SCHEDULE_MS: [u64; 6] = [0, 60_000, 300_000, 1_800_000, 7_200_000, 28_800_000];

/// How long the previous secret keeps signing after a rotation.
pub const ROTATION_GRACE_MS: i64 = 24 * 3600 * 1000;

/// How long the delivery log keeps an attempt (webhooks.md §6).
pub const LOG_RETENTION_MS: i64 = 30 * 24 * 3600 * 1000;

/// Stored bytes of a receiver's answer.
pub const RESPONSE_SNIPPET_BYTES: usize = 1024;

/// Events one fan-out transaction moves at most.
const FAN_OUT_BATCH: u64 = 200;

/// Reads a schedule like `0s,1m,5m,30m,2h,8h` (units `ms`, `s`, `m`, `h`) into milliseconds.
pub fn parse_schedule(text: &str) -> Result<Vec<u64>, String> {
    let delays = text
        .split(',')
        .map(str::trim)
        .map(|part| {
            let split = part
                .find(|c: char| !c.is_ascii_digit())
                .ok_or_else(|| format!("{part:?} needs a unit (ms, s, m, h)"))?;
            let (number, unit) = part.split_at(split);
            let number: u64 = number
                .parse()
                .map_err(|_| format!("{part:?} is not a number with a unit"))?;
            let scale = match unit {
                "ms" => 1,
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                _ => return Err(format!("{part:?}: unknown unit {unit:?}")),
            };
            Ok(number.saturating_mul(scale))
        })
        .collect::<Result<Vec<u64>, String>>()?;
    if delays.is_empty() || delays.len() > 20 {
        return Err("the schedule needs 1 to 20 attempts".into());
    }
    Ok(delays)
}

/// What a finished attempt means for the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Success,
    /// Timeout, connection or TLS error, 408, 429, 5xx.
    Retry,
    /// Any other answer, or a destination that may never be reached.
    Final,
}

pub fn classify(outcome: &AttemptOutcome) -> Verdict {
    match (outcome.status_code, outcome.error) {
        (_, Some(DeliveryError::DestinationForbidden | DeliveryError::WebhookDisabled)) => {
            Verdict::Final
        }
        (_, Some(_)) | (None, None) => Verdict::Retry,
        (Some(status), None) if (200..300).contains(&status) => Verdict::Success,
        (Some(408 | 429), None) => Verdict::Retry,
        (Some(status), None) if status >= 500 => Verdict::Retry,
        (Some(_), None) => Verdict::Final,
    }
}

/// `*` (all but `webhook.test`), an exact type, or `<prefix>.*`.
pub fn subscribed(patterns: &Value, event_type: &str) -> bool {
    if event_type == "webhook.test" {
        return false;
    }
    let stem = event_type.split('.').next().unwrap_or_default();
    patterns
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|p| p == "*" || p == event_type || p.strip_suffix(".*") == Some(stem))
}

/// A non-zero delay scaled by the jitter factor (drawn by the caller from [0.9, 1.1]).
pub fn jittered(delay_ms: u64, factor: f64) -> u64 {
    if delay_ms == 0 {
        0
    } else {
        (delay_ms as f64 * factor.clamp(0.9, 1.1)).round() as u64
    }
}

/// The request body: compact JSON, the same bytes on every attempt of one event.
pub fn payload(event: &Row) -> Vec<u8> {
    let timestamp = Timestamp::from_millis(int(event, "created_at")).to_string();
    let body = json!({
        "id": event.get("id").cloned().unwrap_or(Value::Null),
        "type": event.get("type").cloned().unwrap_or(Value::Null),
        "timestamp": timestamp,
        "data": event.get("data").cloned().unwrap_or(Value::Null),
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

fn int(row: &Row, column: &str) -> i64 {
    row.get(column).and_then(Value::as_i64).unwrap_or_default()
}

fn text<'r>(row: &'r Row, column: &str) -> &'r str {
    row.get(column).and_then(Value::as_str).unwrap_or_default()
}

/// The signing secrets of a webhook at `now`, newest first, opened from their stored form.
/// A secret that does not open (another encryption key) is an error, not a delivery with a
/// signature no receiver could check.
pub fn secrets(
    webhook: &Row,
    now: Timestamp,
    vault: &dyn Vault,
) -> Result<Vec<String>, DomainError> {
    let mut out = vec![webhooks::open_secret(vault, text(webhook, "secret"))?];
    let previous = text(webhook, "previous_secret");
    let until = webhook
        .get("previous_secret_expires_at")
        .and_then(Value::as_i64);
    if !previous.is_empty() && until.is_some_and(|u| u > now.millis()) {
        out.push(webhooks::open_secret(vault, previous)?);
    }
    Ok(out)
}

fn outgoing(
    service: &ResourceService,
    webhook: &Row,
    event: &Row,
) -> Result<OutgoingDelivery, DomainError> {
    let ports = service.ports();
    Ok(OutgoingDelivery {
        url: text(webhook, "url").to_owned(),
        event_id: text(event, "id").to_owned(),
        event_type: text(event, "type").to_owned(),
        body: payload(event),
        secrets: secrets(webhook, service.now(), ports.vault.as_ref())?,
        timeout_ms: ports.settings.webhook_timeout_ms,
        allow_private: ports.settings.webhook_allow_private,
    })
}

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

fn new_job(service: &ResourceService, event_id: &str, webhook_id: &str, now: Timestamp) -> Row {
    let mut job = Row::new();
    job.insert("id".into(), json!(service.ports().ids.new_id("job_")));
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
            let mut job = new_job(service, &event_id, text(hook, "id"), now);
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

/// Makes one attempt of a leased job and records it.
pub async fn deliver(service: &ResourceService, job: Row, jitter: f64) -> Result<(), DomainError> {
    let (event, hook) = {
        let mut session = service.ports().store.read().await?;
        let event = session
            .find("events", Cond::eq("id", text(&job, "event_id")))
            .await?;
        let hook = session
            .find("webhooks", Cond::eq("id", text(&job, "webhook_id")))
            .await?;
        (event, hook)
    };
    let (Some(event), Some(hook)) = (event, hook) else {
        return drop_job(service, &job).await;
    };
    if !hook.get("deleted_at").is_none_or(Value::is_null) {
        return drop_job(service, &job).await;
    }
    let single = job.get("single_attempt") == Some(&json!(true));
    let outcome = if hook.get("enabled") == Some(&json!(false)) && !single {
        AttemptOutcome {
            status_code: None,
            error: Some(DeliveryError::WebhookDisabled),
            duration_ms: 0,
            response_body: None,
        }
    } else {
        let request = outgoing(service, &hook, &event)?;
        service.ports().webhooks.send(&request).await
    };
    record(service, job, event, outcome, jitter).await
}

async fn drop_job(service: &ResourceService, job: &Row) -> Result<(), DomainError> {
    let mut tx = service.ports().store.begin().await?;
    tx.delete_where("webhook_jobs", &Cond::eq("id", text(job, "id")))
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Where an attempt stands in its delivery.
struct Slot {
    attempt: i64,
    redelivery: bool,
    next_attempt_at: Option<i64>,
}

fn delivery_row(
    id: String,
    hook: &Row,
    event: &Row,
    slot: Slot,
    outcome: &AttemptOutcome,
    now: Timestamp,
) -> Row {
    let Slot {
        attempt,
        redelivery,
        next_attempt_at,
    } = slot;
    let mut row = Row::new();
    row.insert("id".into(), json!(id));
    row.insert("webhook_id".into(), json!(text(hook, "id")));
    row.insert("event_id".into(), json!(text(event, "id")));
    row.insert("event_type".into(), json!(text(event, "type")));
    row.insert("attempt".into(), json!(attempt));
    row.insert("url".into(), json!(text(hook, "url")));
    row.insert("status_code".into(), json!(outcome.status_code));
    row.insert("response_body".into(), json!(outcome.response_body));
    row.insert(
        "error".into(),
        json!(outcome.error.map(DeliveryError::as_str)),
    );
    let attempted = outcome.error != Some(DeliveryError::WebhookDisabled);
    row.insert(
        "duration_ms".into(),
        if attempted {
            json!(outcome.duration_ms)
        } else {
            Value::Null
        },
    );
    row.insert(
        "succeeded".into(),
        json!(classify(outcome) == Verdict::Success),
    );
    row.insert("redelivery".into(), json!(redelivery));
    row.insert("next_attempt_at".into(), json!(next_attempt_at));
    row.insert("created_at".into(), json!(now.millis()));
    row.insert("updated_at".into(), json!(now.millis()));
    row
}

/// Writes a delivery row: a queued redelivery's row is completed in place, else a new row.
async fn write_delivery(
    ctx: &mut Ctx<'_>,
    in_place: Option<&str>,
    mut row: Row,
) -> Result<Row, DomainError> {
    if let Some(id) = in_place
        && let Some(existing) = ctx
            .tx
            .find("webhook_deliveries", Cond::eq("id", id))
            .await?
    {
        row.insert("id".into(), json!(id));
        row.insert(
            "created_at".into(),
            existing.get("created_at").cloned().unwrap_or(Value::Null),
        );
        ctx.tx.update("webhook_deliveries", &row).await?;
        return Ok(row);
    }
    ctx.tx.insert("webhook_deliveries", &row).await?;
    Ok(row)
}

/// Records an attempt: the delivery row, the job's next step, the webhook's counters, and
/// the auto-disable with its events, all in one transaction.
async fn record(
    service: &ResourceService,
    job: Row,
    event: Row,
    outcome: AttemptOutcome,
    jitter: f64,
) -> Result<(), DomainError> {
    service
        .transact(&Actor::system(), move |ctx| {
            Box::pin(async move {
                let now = ctx.now;
                let settings = &ctx.ports.settings;
                let schedule = settings.webhook_retry_schedule_ms.clone();
                let disable_after = i64::from(settings.webhook_disable_after.max(1));
                let job_id = text(&job, "id").to_owned();
                let hook_id = text(&job, "webhook_id").to_owned();
                let attempt = int(&job, "attempt").max(1);
                let single = job.get("single_attempt") == Some(&json!(true));
                let redelivery = job.get("redelivery") == Some(&json!(true));
                let verdict = classify(&outcome);
                let Some(hook) = ctx
                    .tx
                    .lock(
                        "webhooks",
                        &ListQuery::all(Cond::eq("id", hook_id.as_str()), 1),
                        false,
                    )
                    .await?
                    .into_iter()
                    .next()
                else {
                    ctx.tx
                        .delete_where("webhook_jobs", &Cond::eq("id", job_id.as_str()))
                        .await?;
                    return Ok(());
                };
                let counts = !single && outcome.error != Some(DeliveryError::WebhookDisabled);
                let failures = match verdict {
                    Verdict::Success => 0,
                    _ => int(&hook, "consecutive_failures") + 1,
                };
                let disable = counts
                    && verdict != Verdict::Success
                    && hook.get("enabled") == Some(&json!(true))
                    && failures >= disable_after;
                let next_due = match verdict {
                    Verdict::Retry
                        if !single && !disable && (attempt as usize) < schedule.len() =>
                    {
                        let delay = jittered(schedule[attempt as usize], jitter);
                        Some(now.millis() + delay as i64)
                    }
                    _ => None,
                };
                let in_place = if attempt == 1 {
                    job.get("delivery_id")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                } else {
                    None
                };
                let row = delivery_row(
                    ctx.ports.ids.new_id("dlv_"),
                    &hook,
                    &event,
                    Slot {
                        attempt,
                        redelivery,
                        next_attempt_at: next_due,
                    },
                    &outcome,
                    now,
                );
                write_delivery(ctx, in_place.as_deref(), row).await?;
                let still_queued = ctx
                    .tx
                    .find("webhook_jobs", Cond::eq("id", job_id.as_str()))
                    .await?;
                match (next_due, still_queued) {
                    (Some(due), Some(mut next)) => {
                        next.insert("attempt".into(), json!(attempt + 1));
                        next.insert("due_at".into(), json!(due));
                        next.insert("claimed_until".into(), Value::Null);
                        next.insert("delivery_id".into(), Value::Null);
                        ctx.tx.update("webhook_jobs", &next).await?;
                    }
                    (_, Some(_)) => {
                        ctx.tx
                            .delete_where("webhook_jobs", &Cond::eq("id", job_id.as_str()))
                            .await?;
                    }
                    (_, None) => {}
                }
                if !counts {
                    return Ok(());
                }
                let mut counted = hook.clone();
                counted.insert("consecutive_failures".into(), json!(failures));
                let stamp = if verdict == Verdict::Success {
                    "last_success_at"
                } else {
                    "last_failure_at"
                };
                counted.insert(stamp.into(), json!(now.millis()));
                // Counters are bookkeeping, not a change anyone asked for: no event.
                ctx.tx.save("webhooks", &hook, &counted).await?;
                if disable {
                    let mut off = counted.clone();
                    off.insert("enabled".into(), json!(false));
                    off.insert("disabled_reason".into(), json!("too_many_failures"));
                    let off = ctx.save_cascade(&webhooks::SCHEMA, &counted, off).await?;
                    ctx.emit_change(&webhooks::SCHEMA, "disabled", &off, None);
                    cancel_jobs(ctx, &off).await?;
                }
                Ok(())
            })
        })
        .await
}

/// Cancels a webhook's queued jobs, leaving a `webhook_disabled` row for each in the log.
async fn cancel_jobs(ctx: &mut Ctx<'_>, hook: &Row) -> Result<(), DomainError> {
    let hook_id = text(hook, "id").to_owned();
    let jobs = ctx
        .tx
        .list(
            "webhook_jobs",
            &ListQuery::all(Cond::eq("webhook_id", hook_id.as_str()), 100_000),
        )
        .await?;
    let cancelled = AttemptOutcome {
        status_code: None,
        error: Some(DeliveryError::WebhookDisabled),
        duration_ms: 0,
        response_body: None,
    };
    for job in &jobs {
        let Some(event) = ctx
            .tx
            .find("events", Cond::eq("id", text(job, "event_id")))
            .await?
        else {
            continue;
        };
        let attempt = int(job, "attempt");
        let row = delivery_row(
            ctx.ports.ids.new_id("dlv_"),
            hook,
            &event,
            Slot {
                attempt,
                redelivery: job.get("redelivery") == Some(&json!(true)),
                next_attempt_at: None,
            },
            &cancelled,
            ctx.now,
        );
        let in_place = if attempt == 1 {
            job.get("delivery_id").and_then(Value::as_str)
        } else {
            None
        };
        write_delivery(ctx, in_place, row).await?;
    }
    ctx.tx
        .delete_where("webhook_jobs", &Cond::eq("webhook_id", hook_id.as_str()))
        .await?;
    Ok(())
}

/// Deleting a webhook drops its queued jobs (the log stays).
pub async fn forget_jobs(ctx: &mut Ctx<'_>, hook_id: &str) -> Result<(), DomainError> {
    ctx.tx
        .delete_where("webhook_jobs", &Cond::eq("webhook_id", hook_id))
        .await?;
    Ok(())
}

async fn load_webhook(ctx: &mut Ctx<'_>, id: &str) -> Result<Row, DomainError> {
    if service::admin_only(ctx.actor, Op::Update) != service::Access::Allow {
        return Err(DomainError::NotFound);
    }
    service::load_for_update(
        &mut *ctx.tx,
        &webhooks::SCHEMA,
        Cond::is_null("deleted_at"),
        id,
    )
    .await
}

/// `POST /api/webhooks/{id}/test`: emits `webhook.test` and makes one attempt to this webhook
/// only (even when disabled; no retry, counters untouched). Returns the delivery row.
pub async fn send_test(
    service: &ResourceService,
    actor: &Actor,
    id: &str,
) -> Result<Row, DomainError> {
    let id = id.to_owned();
    let (hook, event_id) = service
        .transact(actor, move |ctx| {
            Box::pin(async move {
                let hook = load_webhook(ctx, &id).await?;
                let data = json!({"webhook_id": id, "message": "test"});
                let event_id = ctx.emit("webhook.test", &webhooks::SCHEMA, &id, data);
                Ok((hook, event_id))
            })
        })
        .await?;
    let event = service
        .ports()
        .store
        .read()
        .await?
        .find("events", Cond::eq("id", event_id.as_str()))
        .await?
        .ok_or_else(|| DomainError::Internal("the test event vanished".into()))?;
    let outcome = service
        .ports()
        .webhooks
        .send(&outgoing(service, &hook, &event)?)
        .await;
    service
        .transact(&Actor::system(), move |ctx| {
            Box::pin(async move {
                let row = delivery_row(
                    ctx.ports.ids.new_id("dlv_"),
                    &hook,
                    &event,
                    Slot {
                        attempt: 1,
                        redelivery: false,
                        next_attempt_at: None,
                    },
                    &outcome,
                    ctx.now,
                );
                write_delivery(ctx, None, row).await
            })
        })
        .await
}

/// `POST /api/webhooks/{id}/rotate-secret`: a new secret; the old one keeps signing for
/// [`ROTATION_GRACE_MS`]. Returns the webhook row and the new secret.
pub async fn rotate_secret(
    service: &ResourceService,
    actor: &Actor,
    id: &str,
) -> Result<(Row, String), DomainError> {
    let id = id.to_owned();
    service
        .transact(actor, move |ctx| {
            Box::pin(async move {
                let before = load_webhook(ctx, &id).await?;
                let mut hook = before.clone();
                let secret = ctx.ports.secrets.webhook_secret();
                let vault = ctx.ports.vault.as_ref();
                let old = webhooks::sealed_secret(vault, text(&hook, "secret"))?;
                hook.insert("previous_secret".into(), json!(old));
                hook.insert(
                    "previous_secret_expires_at".into(),
                    json!(ctx.now.millis() + ROTATION_GRACE_MS),
                );
                hook.insert("secret".into(), json!(vault.seal(&secret)?));
                hook.insert("updated_at".into(), json!(ctx.now.millis()));
                ctx.tx.save("webhooks", &before, &hook).await?;
                ctx.emit_change(&webhooks::SCHEMA, "secret_rotated", &hook, None);
                Ok((hook, secret))
            })
        })
        .await
}

/// `POST /api/webhooks/{id}/deliveries/{did}/redeliver`: queues the delivery's event again
/// for this webhook; returns the new, pending delivery row.
pub async fn redeliver(
    service: &ResourceService,
    actor: &Actor,
    id: &str,
    delivery_id: &str,
) -> Result<Row, DomainError> {
    let (id, delivery_id) = (id.to_owned(), delivery_id.to_owned());
    service
        .transact(actor, move |ctx| {
            Box::pin(async move {
                let hook = load_webhook(ctx, &id).await?;
                let original = service::load(
                    &mut *ctx.tx,
                    &webhook_deliveries::SCHEMA,
                    Cond::eq("webhook_id", id.as_str()),
                    &delivery_id,
                )
                .await?;
                let event = ctx
                    .tx
                    .find("events", Cond::eq("id", text(&original, "event_id")))
                    .await?
                    .ok_or(DomainError::NotFound)?;
                let now = ctx.now;
                let pending = AttemptOutcome {
                    status_code: None,
                    error: None,
                    duration_ms: 0,
                    response_body: None,
                };
                let mut row = delivery_row(
                    ctx.ports.ids.new_id("dlv_"),
                    &hook,
                    &event,
                    Slot {
                        attempt: 1,
                        redelivery: true,
                        next_attempt_at: Some(now.millis()),
                    },
                    &pending,
                    now,
                );
                row.insert("duration_ms".into(), Value::Null);
                row.insert("succeeded".into(), json!(false));
                ctx.tx.insert("webhook_deliveries", &row).await?;
                let service_ids = ctx.ports.ids.new_id("job_");
                let mut job = Row::new();
                job.insert("id".into(), json!(service_ids));
                job.insert("event_id".into(), json!(text(&event, "id")));
                job.insert("webhook_id".into(), json!(id));
                job.insert("attempt".into(), json!(1));
                job.insert("due_at".into(), json!(now.millis()));
                job.insert("claimed_until".into(), Value::Null);
                job.insert("redelivery".into(), json!(true));
                job.insert(
                    "single_attempt".into(),
                    json!(hook.get("enabled") != Some(&json!(true))),
                );
                job.insert("delivery_id".into(), row["id"].clone());
                job.insert("created_at".into(), json!(now.millis()));
                ctx.tx.insert("webhook_jobs", &job).await?;
                Ok(row)
            })
        })
        .await
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

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(status: Option<u16>, error: Option<DeliveryError>) -> AttemptOutcome {
        AttemptOutcome {
            status_code: status,
            error,
            duration_ms: 1,
            response_body: None,
        }
    }

    #[test]
    fn classifies_answers_as_the_spec_lists_them() {
        for status in [200, 201, 204, 299] {
            assert_eq!(classify(&outcome(Some(status), None)), Verdict::Success);
        }
        for status in [408, 429, 500, 502, 503, 599] {
            assert_eq!(classify(&outcome(Some(status), None)), Verdict::Retry);
        }
        for status in [301, 302, 400, 401, 404, 410, 422] {
            assert_eq!(classify(&outcome(Some(status), None)), Verdict::Final);
        }
        for error in [
            DeliveryError::Timeout,
            DeliveryError::Connect,
            DeliveryError::Tls,
        ] {
            assert_eq!(classify(&outcome(None, Some(error))), Verdict::Retry);
        }
        assert_eq!(
            classify(&outcome(None, Some(DeliveryError::DestinationForbidden))),
            Verdict::Final
        );
    }

    #[test]
    fn subscriptions_match_exact_prefix_and_star_but_never_test() {
        let patterns = json!(["api_key.*", "user.created"]);
        assert!(subscribed(&patterns, "api_key.revoked"));
        assert!(subscribed(&patterns, "user.created"));
        assert!(!subscribed(&patterns, "user.updated"));
        assert!(!subscribed(&patterns, "api.key"));
        assert!(subscribed(&json!(["*"]), "group.member_added"));
        assert!(!subscribed(&json!(["*"]), "webhook.test"));
        assert!(!subscribed(&json!(["webhook.*"]), "webhook.test"));
    }

    #[test]
    fn schedules_read_with_units() {
        assert_eq!(
            parse_schedule("0s,1m,5m,30m,2h,8h").unwrap(),
            DEFAULT_SCHEDULE_MS.to_vec()
        );
        assert_eq!(parse_schedule("0ms, 50ms").unwrap(), vec![0, 50]);
        assert!(parse_schedule("1").is_err());
        assert!(parse_schedule("1d").is_err());
        assert!(parse_schedule("").is_err());
    }

    #[test]
    fn jitter_stays_within_ten_percent_and_spares_zero() {
        assert_eq!(jittered(0, 1.1), 0);
        assert_eq!(jittered(60_000, 0.9), 54_000);
        assert_eq!(jittered(60_000, 1.1), 66_000);
        assert_eq!(jittered(60_000, 5.0), 66_000);
    }

    #[test]
    fn payload_is_compact_and_carries_the_commit_time() {
        let mut event = Row::new();
        event.insert("id".into(), json!("evt_1"));
        event.insert("type".into(), json!("user.created"));
        event.insert("created_at".into(), json!(1_737_282_600_000_i64));
        event.insert("data".into(), json!({"actor_id": null}));
        assert_eq!(
            String::from_utf8(payload(&event)).unwrap(),
            r#"{"id":"evt_1","type":"user.created","timestamp":"2025-01-19T10:30:00.000Z","data":{"actor_id":null}}"#
        );
    }

    /// Marks sealed values visibly; enough to tell sealed from plaintext.
    struct Brackets;

    impl Vault for Brackets {
        fn seal(&self, plaintext: &str) -> Result<String, crate::error::StoreError> {
            Ok(format!("[{plaintext}]"))
        }
        fn open(&self, sealed: &str) -> Result<String, crate::error::StoreError> {
            sealed
                .strip_prefix('[')
                .and_then(|s| s.strip_suffix(']'))
                .map(str::to_owned)
                .ok_or_else(|| crate::error::StoreError::Other("not sealed".into()))
        }
    }

    #[test]
    fn the_previous_secret_signs_only_until_it_expires() {
        let mut hook = Row::new();
        hook.insert("secret".into(), json!("[whsec_new]"));
        hook.insert("previous_secret".into(), json!("whsec_old"));
        hook.insert("previous_secret_expires_at".into(), json!(2_000));
        assert_eq!(
            secrets(&hook, Timestamp::from_millis(1_000), &Brackets).unwrap(),
            vec!["whsec_new", "whsec_old"],
            "sealed values open; an older plaintext still signs"
        );
        assert_eq!(
            secrets(&hook, Timestamp::from_millis(2_000), &Brackets).unwrap(),
            vec!["whsec_new"]
        );
        hook.insert("secret".into(), json!("garbage"));
        assert!(secrets(&hook, Timestamp::from_millis(2_000), &Brackets).is_err());
    }
}
