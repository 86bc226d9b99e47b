//! Webhooks: subscribers to change events, each with its own signing secret.
//!
//! Signing secrets are stored sealed by the [`Vault`] (like upstream credentials): the
//! `secret` and `previous_secret` columns never hold the `whsec_…` text once written by this
//! version. A value that still starts with `whsec_` is a plaintext from an older version
//! (sealed values are standard base64, which has no `_`): it still signs, and
//! [`crate::secrets::seal_plaintext_secrets`] seals it at startup.

use std::net::IpAddr;

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::{
    DomainError, Row,
    error::StoreError,
    ports::Vault,
    resources::checks,
    schema::{AttrSpec, AttrType, Default, FilterSpec, RelSpec, ResourceSchema, ToMany},
    service::{Ctx, Draft, ResourceRules},
};

/// Event types a webhook may subscribe to (`webhook.test` is always delivered to its target).
pub const EVENT_TYPES: &[&str] = &[
    "user.created",
    "user.updated",
    "user.deleted",
    "plan.created",
    "plan.updated",
    "plan.deleted",
    "api_key.created",
    "api_key.updated",
    "api_key.deleted",
    "api_key.revoked",
    "api_key.rotated",
    "route.created",
    "route.updated",
    "route.deleted",
    "upstream.created",
    "upstream.updated",
    "upstream.deleted",
    "group.created",
    "group.updated",
    "group.deleted",
    "group.member_added",
    "group.member_removed",
    "webhook.created",
    "webhook.updated",
    "webhook.deleted",
    "webhook.secret_rotated",
    "webhook.disabled",
    "usage.threshold",
    "usage.limit",
];

const ENABLED: AttrSpec = AttrSpec::boolean("enabled").default(Default::Bool(true));

pub static SCHEMA: ResourceSchema = ResourceSchema {
    type_name: "webhooks",
    path: "webhooks",
    id_prefix: "whk_",
    soft_delete: true,
    attributes: &[
        AttrSpec::text("name", 0, 100).default(Default::Text("")),
        AttrSpec::text("description", 0, 1000).default(Default::Text("")),
        AttrSpec::text("url", 1, 2048).required(),
        AttrSpec::new("events", AttrType::TextList { max_items: 50 }).required(),
        AttrSpec::text("secret", 1, 200).write_only().create_only(),
        ENABLED,
        AttrSpec::int("consecutive_failures", 0, i64::MAX)
            .default(Default::Int(0))
            .read_only(),
        AttrSpec::timestamp("last_success_at")
            .nullable()
            .read_only(),
        AttrSpec::timestamp("last_failure_at")
            .nullable()
            .read_only(),
        AttrSpec::text("disabled_reason", 0, 100)
            .nullable()
            .read_only(),
    ],
    relationships: &[RelSpec::to_many(
        "deliveries",
        "webhook_deliveries",
        ToMany::Reverse {
            column: "webhook_id",
        },
    )],
    sorts: &["name"],
    filters: &[FilterSpec::attr(ENABLED)],
    search: &["name"],
};

pub struct Webhooks;

#[async_trait]
impl ResourceRules for Webhooks {
    fn schema(&self) -> &'static ResourceSchema {
        &SCHEMA
    }

    async fn before_create(&self, ctx: &mut Ctx<'_>, draft: &mut Draft) -> Result<(), DomainError> {
        check(ctx, draft);
        let secret = match draft.write_only.get("secret").and_then(Value::as_str) {
            Some(secret) if is_secret(secret) => Some(secret.to_owned()),
            Some(_) => {
                draft.invalid(
                    "secret",
                    "secret must be whsec_ followed by base64 of 24 to 64 bytes",
                );
                None
            }
            None => Some(ctx.ports.secrets.webhook_secret()),
        };
        draft.set("previous_secret", Value::Null);
        draft.set("previous_secret_expires_at", Value::Null);
        if let Some(secret) = secret {
            draft.set("secret", ctx.ports.vault.seal(&secret)?);
            draft.meta.insert("secret".into(), json!(secret));
        }
        Ok(())
    }

    async fn before_update(
        &self,
        ctx: &mut Ctx<'_>,
        before: &Row,
        draft: &mut Draft,
    ) -> Result<(), DomainError> {
        check(ctx, draft);
        if before.get("enabled") == Some(&json!(false)) && draft.bool("enabled") == Some(true) {
            draft.set("consecutive_failures", 0);
            draft.set("disabled_reason", Value::Null);
        }
        Ok(())
    }

    async fn before_delete(&self, ctx: &mut Ctx<'_>, row: &mut Row) -> Result<(), DomainError> {
        let id = row.get("id").and_then(Value::as_str).unwrap_or_default();
        crate::delivery::forget_jobs(ctx, id).await
    }
}

fn check(ctx: &Ctx<'_>, draft: &mut Draft) {
    if let Some(url) = draft.str("url").map(str::to_owned) {
        match checks::check_http_url(&url, true) {
            Err(reason) => draft.invalid("url", format!("url {reason}")),
            Ok(parsed) if !ctx.ports.settings.webhook_allow_private => {
                if parsed
                    .host()
                    .is_some_and(|h| is_forbidden_host(&h.to_string()))
                {
                    draft.problems.push(crate::Problem {
                        member: crate::Member::Attribute("url".into()),
                        kind: crate::ProblemKind::Invalid,
                        detail: FORBIDDEN_DETAIL.into(),
                    });
                }
            }
            Ok(_) => {}
        }
    }
    if let Some(Value::Array(events)) = draft.row.get("events").cloned() {
        if events.is_empty() {
            draft.invalid("events", "events needs at least one entry");
        }
        for event in events.iter().filter_map(Value::as_str) {
            if !is_subscription(event) {
                draft.invalid("events", format!("{event:?} is not a known event type"));
            }
        }
    }
}

/// The detail that marks a forbidden destination (mapped to `WEBHOOK_URL_FORBIDDEN`).
pub const FORBIDDEN_DETAIL: &str = "url points to a loopback, private or link-local address";

/// `*`, an exact type, or `<prefix>.*` of a known type.
pub fn is_subscription(pattern: &str) -> bool {
    pattern == "*"
        || EVENT_TYPES.contains(&pattern)
        || pattern
            .strip_suffix(".*")
            .is_some_and(|p| EVENT_TYPES.iter().any(|t| t.split('.').next() == Some(p)))
}

fn is_secret(secret: &str) -> bool {
    let Some(body) = secret.strip_prefix("whsec_") else {
        return false;
    };
    let valid = body.len() % 4 == 0
        && body
            .trim_end_matches('=')
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
        && body.len() - body.trim_end_matches('=').len() <= 2;
    let bytes = body.len() / 4 * 3 - (body.len() - body.trim_end_matches('=').len());
    valid && (24..=64).contains(&bytes)
}

/// Whether a stored secret is still the plaintext `whsec_…` of an older version.
pub fn is_plaintext(stored: &str) -> bool {
    stored.starts_with("whsec_")
}

/// The `whsec_…` secret of a stored (sealed, or older plaintext) value.
pub fn open_secret(vault: &dyn Vault, stored: &str) -> Result<String, StoreError> {
    if is_plaintext(stored) {
        Ok(stored.to_owned())
    } else {
        vault.open(stored)
    }
}

/// The value to store for a secret: sealed, whatever form it came in.
pub fn sealed_secret(vault: &dyn Vault, stored: &str) -> Result<String, StoreError> {
    if is_plaintext(stored) {
        vault.seal(stored)
    } else {
        Ok(stored.to_owned())
    }
}

/// Loopback, private, link-local, unspecified and multicast addresses, and `localhost`.
pub fn is_forbidden_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") || host.to_ascii_lowercase().ends_with(".localhost") {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(ip) => is_forbidden_ip(ip),
        Err(_) => false,
    }
}

pub fn is_forbidden_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| is_forbidden_ip(IpAddr::V4(v4)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions() {
        assert!(is_subscription("*"));
        assert!(is_subscription("api_key.*"));
        assert!(is_subscription("user.created"));
        assert!(!is_subscription("user.exploded"));
        assert!(!is_subscription("nothing.*"));
    }

    #[test]
    fn secrets() {
        assert!(is_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
        assert!(!is_secret("whsec_short"));
        assert!(!is_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
    }

    #[test]
    fn forbidden_hosts() {
        for host in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "169.254.1.1",
            "[::1]",
            "localhost",
            "0.0.0.0",
            "[fe80::1]",
            "[fd00::1]",
        ] {
            assert!(is_forbidden_host(host), "{host}");
        }
        for host in ["93.184.216.34", "example.com", "[2606:4700::1111]"] {
            assert!(!is_forbidden_host(host), "{host}");
        }
    }
}
