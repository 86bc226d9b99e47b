//! The admin actions on one webhook: send a test, rotate its secret, redeliver an event.

use serde_json::{Value, json};

use super::{
    jobs::new_job,
    log::{Slot, delivery_row, unanswered, write_delivery},
    payload::outgoing,
    resource::SCHEMA,
    secret::sealed_secret,
    text,
};
use crate::{
    Actor, DomainError, Row,
    query::Cond,
    resources::webhook_deliveries,
    service::{self, Ctx, Op, ResourceService},
};

/// How long the previous secret keeps signing after a rotation.
pub const ROTATION_GRACE_MS: i64 = 24 * 3600 * 1000;

async fn load_webhook(ctx: &mut Ctx<'_>, id: &str) -> Result<Row, DomainError> {
    if service::admin_only(ctx.actor, Op::Update) != service::Access::Allow {
        return Err(DomainError::NotFound);
    }
    service::load_for_update(&mut *ctx.tx, &SCHEMA, Cond::is_null("deleted_at"), id).await
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
                let event_id = ctx.emit("webhook.test", &SCHEMA, &id, data);
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
                let old = sealed_secret(vault, text(&hook, "secret"))?;
                hook.insert("previous_secret".into(), json!(old));
                hook.insert(
                    "previous_secret_expires_at".into(),
                    json!(ctx.now.millis() + ROTATION_GRACE_MS),
                );
                hook.insert("secret".into(), json!(vault.seal(&secret)?));
                hook.insert("updated_at".into(), json!(ctx.now.millis()));
                ctx.tx.save("webhooks", &before, &hook).await?;
                ctx.emit_change(&SCHEMA, "secret_rotated", &hook, None);
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
                let pending = unanswered(None);
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
                let mut job = new_job(ctx.ports.ids.as_ref(), text(&event, "id"), &id, now);
                job.insert("redelivery".into(), json!(true));
                job.insert(
                    "single_attempt".into(),
                    json!(hook.get("enabled") != Some(&json!(true))),
                );
                job.insert("delivery_id".into(), row["id"].clone());
                ctx.tx.insert("webhook_jobs", &job).await?;
                Ok(row)
            })
        })
        .await
}
