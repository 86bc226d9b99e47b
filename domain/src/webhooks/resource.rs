//! The `webhooks` resource: subscribers to change events, each with its own signing secret.

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{destination::is_forbidden_host, secret::is_secret};
use crate::{
    DomainError, Row,
    query::Cond,
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
        forget_jobs(ctx, id).await
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
                    draft.problems.push(crate::Problem::forbidden_destination(
                        "url",
                        FORBIDDEN_DETAIL,
                    ));
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

/// Deleting a webhook drops its queued jobs (the log stays).
pub async fn forget_jobs(ctx: &mut Ctx<'_>, hook_id: &str) -> Result<(), DomainError> {
    ctx.tx
        .delete_where("webhook_jobs", &Cond::eq("webhook_id", hook_id))
        .await?;
    Ok(())
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
}
