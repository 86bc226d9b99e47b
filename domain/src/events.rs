//! Change events: written to the outbox in the same transaction as the change they announce.

use serde_json::{Value, json};

use crate::{Actor, Timestamp};

/// One committed change, as stored in the `events` outbox and later delivered to webhooks.
#[derive(Debug, Clone)]
pub struct ChangeEvent {
    pub id: String,
    pub event_type: String,
    pub resource_type: String,
    pub resource_id: String,
    /// The webhook payload's `data` object.
    pub data: Value,
    pub actor: Actor,
    pub created_at: Timestamp,
}

impl ChangeEvent {
    /// The outbox row (`events` table).
    pub fn to_row(&self) -> crate::Row {
        let mut row = crate::Row::new();
        row.insert("id".into(), json!(self.id));
        row.insert("type".into(), json!(self.event_type));
        row.insert("resource_type".into(), json!(self.resource_type));
        row.insert("resource_id".into(), json!(self.resource_id));
        row.insert("data".into(), self.data.clone());
        row.insert("actor_id".into(), json!(self.actor.user_id));
        row.insert("api_key_id".into(), json!(self.actor.api_key_id));
        row.insert(
            "auth_method".into(),
            json!(self.actor.method.map(|m| m.as_str())),
        );
        row.insert("request_id".into(), json!(self.actor.request_id));
        row.insert("created_at".into(), json!(self.created_at.millis()));
        row.insert("updated_at".into(), json!(self.created_at.millis()));
        row.insert("dispatched_at".into(), serde_json::Value::Null);
        row
    }
}

/// Whether an event of this type records a change to something the proxy's snapshot holds
/// (users, plans, keys, routes, upstreams, groups and their links). Webhook, usage and test
/// events do not: they leave the proxy configuration version alone.
pub fn changes_proxy_config(event_type: &str) -> bool {
    let stem = event_type.split('.').next().unwrap_or_default();
    matches!(
        stem,
        "user" | "plan" | "api_key" | "route" | "upstream" | "group"
    )
}
