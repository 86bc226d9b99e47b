//! What is sent: which events a webhook gets, the body bytes, the secrets that sign them.

use serde_json::{Value, json};

use super::{int, secret::open_secret, text};
use crate::{
    DomainError, Row, Timestamp,
    ports::{OutgoingDelivery, Vault},
    service::ResourceService,
};

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

/// The signing secrets of a webhook at `now`, newest first, opened from their stored form.
/// A secret that does not open (another encryption key) is an error, not a delivery with a
/// signature no receiver could check.
pub fn secrets(
    webhook: &Row,
    now: Timestamp,
    vault: &dyn Vault,
) -> Result<Vec<String>, DomainError> {
    let mut out = vec![open_secret(vault, text(webhook, "secret"))?];
    let previous = text(webhook, "previous_secret");
    let until = webhook
        .get("previous_secret_expires_at")
        .and_then(Value::as_i64);
    if !previous.is_empty() && until.is_some_and(|u| u > now.millis()) {
        out.push(open_secret(vault, previous)?);
    }
    Ok(out)
}

pub(super) fn outgoing(
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

#[cfg(test)]
mod tests {
    use super::*;

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
