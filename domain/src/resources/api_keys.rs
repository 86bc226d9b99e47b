//! API keys: `tg_live_…` for the proxy, `tg_admin_…` for the admin API. Only a digest is stored.

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::{
    Actor, DomainError, Row, Timestamp,
    query::{CmpOp, Cond, ListQuery},
    schema::{
        AttrSpec, AttrType, Default, FilterSpec, OnCreate, OnUpdate, RelSpec, ResourceSchema,
    },
    service::{Ctx, Draft, ResourceRules},
};

pub const KINDS: &[&str] = &["live", "admin"];
pub const STATUSES: &[&str] = &["active", "expired", "revoked"];
/// Non-revoked keys one user may hold.
pub const MAX_KEYS_PER_USER: u64 = 100;

const KIND: AttrSpec = AttrSpec::one_of("kind", KINDS)
    .default(Default::Text("live"))
    .create_only();
const PREFIX: AttrSpec = AttrSpec::text("prefix", 0, 16).read_only();

pub static SCHEMA: ResourceSchema = ResourceSchema {
    type_name: "api_keys",
    path: "api-keys",
    id_prefix: "key_",
    soft_delete: true,
    attributes: &[
        AttrSpec::text("name", 1, 100).required(),
        KIND,
        PREFIX,
        AttrSpec::timestamp("expires_at").nullable(),
        AttrSpec::one_of("status", STATUSES).read_only(),
        AttrSpec::timestamp("last_used_at").nullable().read_only(),
        AttrSpec::timestamp("revoked_at").nullable().read_only(),
        AttrSpec::timestamp("rotated_at").nullable().read_only(),
    ],
    relationships: &[
        RelSpec::to_one("user", "users", "user_id").writable(OnCreate::Optional, OnUpdate::Never),
        RelSpec::to_one("group", "groups", "group_id")
            .nullable()
            .writable(OnCreate::Optional, OnUpdate::Never),
    ],
    sorts: &["name", "last_used_at", "expires_at"],
    filters: &[
        FilterSpec::to_one("user", "user_id"),
        FilterSpec::to_one("group", "group_id"),
        FilterSpec::attr(KIND),
        FilterSpec::custom("status", status_filter),
        FilterSpec {
            name: "prefix",
            kind: crate::schema::FilterKind::Attr("prefix", AttrType::Text { min: 0, max: 16 }),
        },
    ],
    search: &["name"],
};

pub struct ApiKeys;

#[async_trait]
impl ResourceRules for ApiKeys {
    fn schema(&self) -> &'static ResourceSchema {
        &SCHEMA
    }

    /// A `user` manages their own keys (visibility narrows to them).
    fn access(&self, _actor: &Actor, _op: crate::service::Op) -> crate::service::Access {
        crate::service::Access::Allow
    }

    /// A `user` sees their own keys.
    /// Own keys, plus the keys of groups where the caller is owner or admin.
    fn visibility(&self, actor: &Actor) -> Cond {
        match (&actor.user_id, actor.is_admin()) {
            (_, true) => Cond::True,
            (Some(me), false) => Cond::Any(vec![
                Cond::eq("user_id", me.clone()),
                Cond::InSelect {
                    column: "group_id".into(),
                    table: "group_members".into(),
                    select: "group_id".into(),
                    cond: Box::new(
                        Cond::eq("user_id", me.clone())
                            .and(Cond::is_in("role", vec![json!("owner"), json!("admin")])),
                    ),
                },
            ]),
            (None, false) => Cond::is_null("id"),
        }
    }

    fn decorate(&self, row: &mut Row, now: Timestamp) {
        let status = status_of(row, now);
        row.insert("status".into(), json!(status));
    }

    async fn before_create(&self, ctx: &mut Ctx<'_>, draft: &mut Draft) -> Result<(), DomainError> {
        if !draft.rels_given.contains(&"user") {
            match (&ctx.actor.user_id, ctx.actor.is_admin()) {
                (Some(me), false) => draft.set("user_id", me.clone()),
                _ => draft.invalid_rel("user", "user is required"),
            }
        }
        check_expiry(ctx.now, draft);
        check_group(ctx, draft).await?;
        let kind = draft.str("kind").unwrap_or("live").to_owned();
        let owner_id = draft.str("user_id").map(str::to_owned);
        if let Some(owner_id) = &owner_id {
            let owner = ctx
                .tx
                .find(
                    "users",
                    Cond::is_null("deleted_at").and(Cond::eq("id", owner_id.clone())),
                )
                .await?;
            if kind == "admin"
                && owner
                    .as_ref()
                    .is_some_and(|o| o.get("role") != Some(&json!("admin")))
            {
                draft.invalid("kind", "admin keys can only belong to admins");
            }
        }
        if !draft.problems.is_empty() {
            return Ok(());
        }
        if let Some(owner_id) = owner_id {
            let held = Cond::All(vec![
                Cond::is_null("deleted_at"),
                Cond::is_null("revoked_at"),
                Cond::eq("user_id", owner_id),
            ]);
            if ctx.tx.count("api_keys", &held).await? >= MAX_KEYS_PER_USER {
                return Err(DomainError::LimitReached(format!(
                    "a user may hold at most {MAX_KEYS_PER_USER} active keys"
                )));
            }
        }
        let key = ctx.ports.secrets.api_key(&kind);
        draft.set("key_digest", ctx.ports.secrets.digest(&key));
        draft.set("prefix", key.chars().take(16).collect::<String>());
        draft.set("previous_key_digest", Value::Null);
        draft.set("previous_key_expires_at", Value::Null);
        draft.meta.insert("key".into(), json!(key));
        Ok(())
    }

    async fn before_update(
        &self,
        ctx: &mut Ctx<'_>,
        before: &Row,
        draft: &mut Draft,
    ) -> Result<(), DomainError> {
        if draft.was_given("expires_at") && draft.row.get("expires_at") != before.get("expires_at")
        {
            check_expiry(ctx.now, draft);
        }
        if draft.problems.is_empty() && !before.get("revoked_at").is_none_or(Value::is_null) {
            return Err(DomainError::KeyRevoked);
        }
        Ok(())
    }

    /// Deleting a key also revokes it.
    async fn before_delete(&self, ctx: &mut Ctx<'_>, row: &mut Row) -> Result<(), DomainError> {
        let id = row.get("id").cloned().unwrap_or(Value::Null);
        revoke_where(ctx, Cond::Eq("id".into(), id)).await?;
        if let Some(fresh) = ctx
            .tx
            .find("api_keys", Cond::Eq("id".into(), row["id"].clone()))
            .await?
        {
            *row = fresh;
        }
        Ok(())
    }
}

/// A group key belongs to a member of the group; a `user` caller must be its owner or admin.
async fn check_group(ctx: &mut Ctx<'_>, draft: &mut Draft) -> Result<(), DomainError> {
    let (Some(group_id), Some(user_id)) = (
        draft.str("group_id").map(str::to_owned),
        draft.str("user_id").map(str::to_owned),
    ) else {
        return Ok(());
    };
    let live = Cond::is_null("deleted_at").and(Cond::eq("id", group_id.clone()));
    if !is_group_id(&group_id) || ctx.tx.find("groups", live).await?.is_none() {
        // Unknown group: the generic existence check answers 404.
        return Ok(());
    }
    let membership =
        |user: String| Cond::eq("group_id", group_id.clone()).and(Cond::eq("user_id", user));
    if !ctx.actor.is_admin() {
        let me = ctx.actor.user_id.clone().unwrap_or_default();
        let Some(mine) = ctx.tx.find("group_members", membership(me)).await? else {
            // Not a member: the group is invisible, and the existence check answers 404.
            return Ok(());
        };
        let role = mine.get("role").and_then(Value::as_str).unwrap_or_default();
        if role != "owner" && role != "admin" {
            return Err(DomainError::Forbidden(
                "only the group's owner or admins create its keys".into(),
            ));
        }
    }
    if ctx
        .tx
        .find("group_members", membership(user_id))
        .await?
        .is_none()
    {
        draft.invalid_rel("group", "the key's user must be a member of the group");
    }
    Ok(())
}

fn is_group_id(id: &str) -> bool {
    crate::ids::is_valid_id("grp_", id)
}

fn check_expiry(now: Timestamp, draft: &mut Draft) {
    if let Some(at) = draft.row.get("expires_at").and_then(Value::as_i64)
        && at <= now.millis()
    {
        draft.invalid("expires_at", "expires_at must be in the future");
    }
}

/// `status` is derived: revoked wins, then expiry.
pub fn status_of(row: &Row, now: Timestamp) -> &'static str {
    if row.get("revoked_at").is_some_and(|v| !v.is_null()) {
        "revoked"
    } else if row
        .get("expires_at")
        .and_then(Value::as_i64)
        .is_some_and(|at| at <= now.millis())
    {
        "expired"
    } else {
        "active"
    }
}

fn status_filter(values: &[String], now: Timestamp) -> Result<Cond, String> {
    let mut any = Vec::new();
    for value in values {
        any.push(match value.as_str() {
            "revoked" => Cond::not_null("revoked_at"),
            "expired" => Cond::All(vec![
                Cond::is_null("revoked_at"),
                Cond::cmp("expires_at", CmpOp::Le, now.millis()),
            ]),
            "active" => Cond::All(vec![
                Cond::is_null("revoked_at"),
                Cond::Any(vec![
                    Cond::is_null("expires_at"),
                    Cond::cmp("expires_at", CmpOp::Gt, now.millis()),
                ]),
            ]),
            other => return Err(format!("{other:?} is not one of {}", STATUSES.join(", "))),
        });
    }
    Ok(Cond::Any(any))
}

/// Revokes every live, un-revoked key matching `cond`, each with `api_key.revoked`.
pub async fn revoke_where(ctx: &mut Ctx<'_>, cond: Cond) -> Result<(), DomainError> {
    let cond = Cond::All(vec![
        Cond::is_null("deleted_at"),
        Cond::is_null("revoked_at"),
        cond,
    ]);
    let keys = ctx
        .tx
        .list("api_keys", &ListQuery::all(cond, 100_000))
        .await?;
    for before in keys {
        revoke_row(ctx, &before).await?;
    }
    Ok(())
}

/// Revokes one key row (no-op if already revoked); returns the new row.
pub async fn revoke_row(ctx: &mut Ctx<'_>, before: &Row) -> Result<Row, DomainError> {
    if before.get("revoked_at").is_some_and(|v| !v.is_null()) {
        return Ok(before.clone());
    }
    let mut after = before.clone();
    after.insert("revoked_at".into(), json!(ctx.now.millis()));
    after.insert("updated_at".into(), json!(ctx.now.millis()));
    ctx.tx.save("api_keys", before, &after).await?;
    let previous = crate::service::changed_attributes(&SCHEMA, before, &after);
    let mut shown = after.clone();
    shown.insert("status".into(), json!("revoked"));
    let mut data = json!({"object": SCHEMA.public_object(&shown), "previous_attributes": previous});
    data["actor_id"] = json!(ctx.actor.user_id);
    let id = after["id"].as_str().unwrap_or_default().to_owned();
    ctx.emit("api_key.revoked", &SCHEMA, &id, data);
    Ok(after)
}

/// `POST /api/api-keys/{id}/revoke`: idempotent.
pub async fn revoke(ctx: &mut Ctx<'_>, id: &str) -> Result<Row, DomainError> {
    let scope = ApiKeys
        .visibility(ctx.actor)
        .and(Cond::is_null("deleted_at"));
    let before = crate::service::load_for_update(ctx.tx, &SCHEMA, scope, id).await?;
    revoke_row(ctx, &before).await
}

/// Longest grace a rotated-out secret may keep (7 days).
pub const MAX_ROTATION_GRACE_SECONDS: i64 = 604_800;
pub const DEFAULT_ROTATION_GRACE_SECONDS: i64 = 86_400;

/// `POST /api/api-keys/{id}/rotate`: a new secret for the same key; the previous secret keeps
/// working for `grace_seconds` (0 = ends now). Rotating again ends the older secret at once.
/// Returns the row and the new secret (shown once).
pub async fn rotate(
    ctx: &mut Ctx<'_>,
    id: &str,
    grace_seconds: i64,
) -> Result<(Row, String), DomainError> {
    let scope = ApiKeys
        .visibility(ctx.actor)
        .and(Cond::is_null("deleted_at"));
    let before = crate::service::load_for_update(ctx.tx, &SCHEMA, scope, id).await?;
    if !before.get("revoked_at").is_none_or(Value::is_null) {
        return Err(DomainError::KeyRevoked);
    }
    let kind = before
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("live")
        .to_owned();
    let key = ctx.ports.secrets.api_key(&kind);
    let mut after = before.clone();
    after.insert("previous_key_digest".into(), before["key_digest"].clone());
    after.insert(
        "previous_key_expires_at".into(),
        json!(ctx.now.plus_seconds(grace_seconds).millis()),
    );
    after.insert("key_digest".into(), json!(ctx.ports.secrets.digest(&key)));
    after.insert(
        "prefix".into(),
        json!(key.chars().take(16).collect::<String>()),
    );
    after.insert("rotated_at".into(), json!(ctx.now.millis()));
    after.insert("updated_at".into(), json!(ctx.now.millis()));
    ctx.tx.save("api_keys", &before, &after).await?;
    let previous = crate::service::changed_attributes(&SCHEMA, &before, &after);
    let mut shown = after.clone();
    ApiKeys.decorate(&mut shown, ctx.now);
    let mut data = json!({"object": SCHEMA.public_object(&shown), "previous_attributes": previous});
    data["actor_id"] = json!(ctx.actor.user_id);
    ctx.emit("api_key.rotated", &SCHEMA, id, data);
    Ok((after, key))
}
