//! The delivery log: one `webhook_deliveries` row per attempt.

use serde_json::{Value, json};

use super::{
    schedule::{Verdict, classify},
    text,
};
use crate::{
    DomainError, Row, Timestamp,
    ports::{AttemptOutcome, DeliveryError},
    query::Cond,
    service::Ctx,
};

/// Stored bytes of a receiver's answer.
pub const RESPONSE_SNIPPET_BYTES: usize = 1024;

/// The outcome of an attempt that sent nothing: queued (`None`), or not made (`error`).
pub(super) fn unanswered(error: Option<DeliveryError>) -> AttemptOutcome {
    AttemptOutcome {
        status_code: None,
        error,
        duration_ms: 0,
        response_body: None,
    }
}

/// Where an attempt stands in its delivery.
pub(super) struct Slot {
    pub(super) attempt: i64,
    pub(super) redelivery: bool,
    pub(super) next_attempt_at: Option<i64>,
}

pub(super) fn delivery_row(
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
pub(super) async fn write_delivery(
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
