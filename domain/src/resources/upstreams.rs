//! Upstreams: the APIs behind Tollgate, with the credentials Tollgate adds when forwarding.

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use crate::{
    DomainError, Row,
    query::Cond,
    resources::checks,
    schema::{AttrSpec, AttrType, Default, FilterSpec, RelSpec, ResourceSchema, ToMany},
    service::{Ctx, Draft, ResourceRules},
};

pub const AUTH_TYPES: &[&str] = &["none", "bearer", "basic", "header"];
pub const HEALTH: &[&str] = &["up", "down", "unknown"];

const ENABLED: AttrSpec = AttrSpec::boolean("enabled").default(Default::Bool(true));
const HEALTH_ATTR: AttrSpec = AttrSpec::one_of("health", HEALTH)
    .default(Default::Text("unknown"))
    .read_only();

pub static SCHEMA: ResourceSchema = ResourceSchema {
    type_name: "upstreams",
    path: "upstreams",
    id_prefix: "ups_",
    soft_delete: true,
    attributes: &[
        AttrSpec::text("name", 1, 100).required(),
        AttrSpec::text("description", 0, 1000).default(Default::Text("")),
        AttrSpec::text("base_url", 1, 2048).required(),
        AttrSpec::int("timeout_ms", 100, 300_000).default(Default::Int(30_000)),
        AttrSpec::int("connect_timeout_ms", 100, 60_000).default(Default::Int(5_000)),
        AttrSpec::new("headers", AttrType::Object).default(Default::EmptyObject),
        AttrSpec::one_of("auth_type", AUTH_TYPES).default(Default::Text("none")),
        AttrSpec::text("auth_header", 1, 256).nullable(),
        AttrSpec::text("auth_value", 1, 4096)
            .nullable()
            .write_only(),
        AttrSpec::new("group_credentials", AttrType::Object).write_only(),
        AttrSpec::text("health_check_path", 1, 1024).nullable(),
        HEALTH_ATTR,
        AttrSpec::timestamp("health_checked_at")
            .nullable()
            .read_only(),
        ENABLED,
    ],
    relationships: &[
        RelSpec::to_many(
            "routes",
            "routes",
            ToMany::Reverse {
                column: "upstream_id",
            },
        ),
        RelSpec::to_many(
            "credential_groups",
            "groups",
            ToMany::Join {
                table: "upstream_credentials",
                own: "upstream_id",
                other: "group_id",
                role_column: None,
            },
        ),
    ],
    sorts: &["name"],
    filters: &[FilterSpec::attr(ENABLED), FilterSpec::attr(HEALTH_ATTR)],
    search: &["name"],
};

pub struct Upstreams;

#[async_trait]
impl ResourceRules for Upstreams {
    fn schema(&self) -> &'static ResourceSchema {
        &SCHEMA
    }

    async fn before_create(&self, ctx: &mut Ctx<'_>, draft: &mut Draft) -> Result<(), DomainError> {
        draft.set("auth_value_enc", Value::Null);
        check(ctx, draft, None).await
    }

    async fn before_update(
        &self,
        ctx: &mut Ctx<'_>,
        before: &Row,
        draft: &mut Draft,
    ) -> Result<(), DomainError> {
        check(ctx, draft, Some(before)).await
    }

    /// Group credentials live in their own rows (sealed), one per group.
    async fn after_write(
        &self,
        ctx: &mut Ctx<'_>,
        row: &Row,
        draft: &Draft,
    ) -> Result<(), DomainError> {
        let Some(Value::Object(entries)) = draft.write_only.get("group_credentials") else {
            return Ok(());
        };
        let upstream_id = row["id"].clone();
        for (group_id, value) in entries {
            let this = Cond::All(vec![
                Cond::Eq("upstream_id".into(), upstream_id.clone()),
                Cond::eq("group_id", group_id.clone()),
            ]);
            ctx.tx.delete_where("upstream_credentials", &this).await?;
            if let Some(credential) = value.as_str() {
                let mut link = Row::new();
                link.insert("upstream_id".into(), upstream_id.clone());
                link.insert("group_id".into(), json!(group_id));
                link.insert("value_enc".into(), json!(ctx.ports.vault.seal(credential)?));
                link.insert("created_at".into(), json!(ctx.now.millis()));
                ctx.tx.insert("upstream_credentials", &link).await?;
            }
        }
        Ok(())
    }

    async fn before_delete(&self, ctx: &mut Ctx<'_>, row: &mut Row) -> Result<(), DomainError> {
        let used =
            Cond::is_null("deleted_at").and(Cond::Eq("upstream_id".into(), row["id"].clone()));
        if ctx.tx.count("routes", &used).await? > 0 {
            return Err(DomainError::ResourceInUse(
                "routes use this upstream".into(),
            ));
        }
        ctx.tx
            .delete_where(
                "upstream_credentials",
                &Cond::Eq("upstream_id".into(), row["id"].clone()),
            )
            .await?;
        Ok(())
    }
}

async fn check(
    ctx: &mut Ctx<'_>,
    draft: &mut Draft,
    before: Option<&Row>,
) -> Result<(), DomainError> {
    if let Some(base) = draft.str("base_url").map(str::to_owned) {
        match checks::check_http_url(&base, false) {
            Ok(_) => draft.set("base_url", base.trim_end_matches('/')),
            Err(reason) => draft.invalid("base_url", format!("base_url {reason}")),
        }
    }
    if let Some(Value::Object(headers)) = draft.row.get("headers").cloned() {
        if headers.len() > 50 {
            draft.invalid("headers", "headers takes at most 50 entries");
        }
        for (name, value) in &headers {
            if !checks::is_token(name) || checks::is_reserved_header(name) {
                draft.invalid("headers", format!("{name:?} is not an allowed header name"));
            } else if !value
                .as_str()
                .is_some_and(|v| v.len() <= 4096 && !v.contains(['\r', '\n']))
            {
                draft.invalid(
                    "headers",
                    format!("header {name} needs a string value of at most 4096 bytes"),
                );
            }
        }
    }
    if let Some(path) = draft.str("health_check_path")
        && !path.starts_with('/')
    {
        draft.invalid("health_check_path", "health_check_path must start with /");
    }
    let auth_type = draft.str("auth_type").unwrap_or("none").to_owned();
    if let Some(header) = draft.str("auth_header")
        && !checks::is_token(header)
    {
        draft.invalid("auth_header", "auth_header must be a header name");
    }
    if auth_type == "header" && draft.str("auth_header").is_none() {
        draft.invalid(
            "auth_header",
            "auth_header is required when auth_type is header",
        );
    }
    match draft.write_only.get("auth_value").cloned() {
        Some(Value::String(value)) => {
            let sealed = ctx.ports.vault.seal(&value)?;
            draft.set("auth_value_enc", sealed);
        }
        Some(_) => draft.set("auth_value_enc", Value::Null),
        None => {}
    }
    if auth_type == "none" {
        draft.set("auth_value_enc", Value::Null);
    } else if draft.row.get("auth_value_enc").is_none_or(Value::is_null) {
        draft.invalid(
            "auth_value",
            "auth_value is required when auth_type is not none",
        );
    }
    if let Some(Value::Object(entries)) = draft.write_only.get("group_credentials").cloned() {
        check_group_credentials(ctx, draft, &entries, &auth_type, before).await?;
    }
    Ok(())
}

async fn check_group_credentials(
    ctx: &mut Ctx<'_>,
    draft: &mut Draft,
    entries: &Map<String, Value>,
    auth_type: &str,
    before: Option<&Row>,
) -> Result<(), DomainError> {
    if auth_type == "none" && entries.values().any(|v| !v.is_null()) {
        draft.invalid(
            "group_credentials",
            "group_credentials need an auth_type other than none",
        );
    }
    for (group_id, value) in entries {
        let ok_value = match value {
            Value::String(s) => !s.is_empty() && s.len() <= 4096,
            Value::Null => before.is_some(),
            _ => false,
        };
        if !ok_value {
            draft.invalid(
                "group_credentials",
                format!("the credential for {group_id} must be a string of 1 to 4096 bytes"),
            );
            continue;
        }
        let exists = crate::ids::is_valid_id("grp_", group_id)
            && ctx
                .tx
                .find(
                    "groups",
                    Cond::is_null("deleted_at").and(Cond::eq("id", group_id.clone())),
                )
                .await?
                .is_some();
        if !exists {
            draft.invalid(
                "group_credentials",
                format!("group {group_id} does not exist"),
            );
        }
    }
    Ok(())
}
