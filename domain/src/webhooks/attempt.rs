//! One attempt of a leased job, and recording it: the log row, the retry, the webhook's
//! counters and the auto-disable.

use serde_json::{Value, json};

use super::{
    int,
    log::{Slot, delivery_row, unanswered, write_delivery},
    payload::outgoing,
    resource::SCHEMA,
    schedule::{Verdict, classify, jittered},
    text,
};
use crate::{
    Actor, DomainError, Row,
    ports::{AttemptOutcome, DeliveryError},
    query::{Cond, ListQuery},
    service::{Ctx, ResourceService},
};

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
        unanswered(Some(DeliveryError::WebhookDisabled))
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
                    let off = ctx.save_cascade(&SCHEMA, &counted, off).await?;
                    ctx.emit_change(&SCHEMA, "disabled", &off, None);
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
    let cancelled = unanswered(Some(DeliveryError::WebhookDisabled));
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
