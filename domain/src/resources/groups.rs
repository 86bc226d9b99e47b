//! Groups: teams sharing a plan and a quota; their keys may carry group-specific upstream credentials.

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::{
    Actor, DomainError, Row,
    query::{Cond, ListQuery},
    resources::checks,
    schema::{AttrSpec, Default, FilterSpec, OnCreate, OnUpdate, RelSpec, ResourceSchema, ToMany},
    service::{Ctx, Draft, Link, ResourceRules},
};

pub const STATUSES: &[&str] = &["active", "suspended"];
pub const MEMBER_ROLES: &[&str] = &["admin", "member"];

const STATUS: AttrSpec = AttrSpec::one_of("status", STATUSES).default(Default::Text("active"));

pub static SCHEMA: ResourceSchema = ResourceSchema {
    type_name: "groups",
    path: "groups",
    id_prefix: "grp_",
    soft_delete: true,
    attributes: &[
        AttrSpec::text("name", 1, 100).required(),
        AttrSpec::text("slug", 1, 63),
        AttrSpec::text("description", 0, 1000).default(Default::Text("")),
        AttrSpec::text("billing_email", 1, 254).nullable(),
        STATUS,
    ],
    relationships: &[
        RelSpec::to_one("owner", "users", "owner_id").writable(OnCreate::Required, OnUpdate::Yes),
        RelSpec::to_one("plan", "plans", "plan_id")
            .nullable()
            .writable(OnCreate::Optional, OnUpdate::Yes),
        RelSpec::to_many(
            "members",
            "users",
            ToMany::Join {
                table: "group_members",
                own: "group_id",
                other: "user_id",
                role_column: Some("role"),
            },
        )
        .writable(OnCreate::Optional, OnUpdate::Yes),
    ],
    sorts: &["name", "slug"],
    filters: &[
        FilterSpec::attr(STATUS),
        FilterSpec::to_one("owner", "owner_id"),
        FilterSpec::to_one("plan", "plan_id"),
        FilterSpec::custom("member", member_filter),
    ],
    search: &["name"],
};

pub struct Groups;

#[async_trait]
impl ResourceRules for Groups {
    fn schema(&self) -> &'static ResourceSchema {
        &SCHEMA
    }

    /// Users read the groups they belong to; only admins write (our choice, resources.md).
    fn access(&self, actor: &Actor, op: crate::service::Op) -> crate::service::Access {
        crate::service::admin_writes(actor, op)
    }

    /// A `user` sees the groups they belong to.
    fn visibility(&self, actor: &Actor) -> Cond {
        match (&actor.user_id, actor.is_admin()) {
            (_, true) => Cond::True,
            (Some(me), false) => member_cond(me),
            (None, false) => Cond::is_null("id"),
        }
    }

    async fn before_create(&self, ctx: &mut Ctx<'_>, draft: &mut Draft) -> Result<(), DomainError> {
        if draft.str("slug").is_none() {
            let slug = checks::slugify(draft.str("name").unwrap_or_default());
            draft.set("slug", slug);
        }
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

    /// The owner is always a member, with the role `owner`.
    async fn after_write(
        &self,
        ctx: &mut Ctx<'_>,
        row: &Row,
        _draft: &Draft,
    ) -> Result<(), DomainError> {
        let group = row["id"].clone();
        let owner = row["owner_id"].clone();
        let stale_owner = Cond::All(vec![
            Cond::Eq("group_id".into(), group.clone()),
            Cond::eq("role", "owner"),
            Cond::Cmp("user_id".into(), crate::query::CmpOp::Ne, owner.clone()),
        ]);
        // `group_members` has no `id` column: no `find` (which orders by id).
        let stale = ctx
            .tx
            .list(
                "group_members",
                &ListQuery {
                    cond: stale_owner.clone(),
                    sort: vec![],
                    offset: 0,
                    limit: 1,
                },
            )
            .await?;
        if let Some(mut previous) = stale.into_iter().next() {
            ctx.tx.delete_where("group_members", &stale_owner).await?;
            previous.insert("role".into(), json!("admin"));
            ctx.tx.insert("group_members", &previous).await?;
        }
        let owner_row = Cond::All(vec![
            Cond::Eq("group_id".into(), group.clone()),
            Cond::Eq("user_id".into(), owner.clone()),
        ]);
        ctx.tx.delete_where("group_members", &owner_row).await?;
        let mut member = Row::new();
        member.insert("group_id".into(), group);
        member.insert("user_id".into(), owner);
        member.insert("role".into(), json!("owner"));
        member.insert("created_at".into(), json!(ctx.now.millis()));
        ctx.tx.insert("group_members", &member).await?;
        Ok(())
    }

    async fn before_delete(&self, ctx: &mut Ctx<'_>, row: &mut Row) -> Result<(), DomainError> {
        let id = row["id"].clone();
        super::api_keys::revoke_where(ctx, Cond::Eq("group_id".into(), id.clone())).await?;
        for table in ["group_members", "upstream_credentials", "route_groups"] {
            ctx.tx
                .delete_where(table, &Cond::Eq("group_id".into(), id.clone()))
                .await?;
        }
        Ok(())
    }
}

/// Groups the user belongs to.
pub fn member_cond(user_id: &str) -> Cond {
    Cond::InSelect {
        column: "id".into(),
        table: "group_members".into(),
        select: "group_id".into(),
        cond: Box::new(Cond::eq("user_id", user_id)),
    }
}

fn member_filter(values: &[String], _now: crate::Timestamp) -> Result<Cond, String> {
    Ok(Cond::Any(values.iter().map(|v| member_cond(v)).collect()))
}

async fn check(
    ctx: &mut Ctx<'_>,
    draft: &mut Draft,
    before: Option<&Row>,
) -> Result<(), DomainError> {
    if let Some(slug) = draft.str("slug")
        && !checks::is_slug(slug)
    {
        draft.invalid(
            "slug",
            "slug must be lower-case letters, digits and single dashes",
        );
    }
    if let Some(email) = draft.str("billing_email").map(str::to_lowercase) {
        if !checks::is_email(&email) {
            draft.invalid("billing_email", "billing_email must be a valid address");
        }
        draft.set("billing_email", email);
    }
    let owner = draft.str("owner_id").map(str::to_owned);
    if let Some(owner_id) = &owner
        && before.is_none_or(|b| b.get("owner_id") != draft.row.get("owner_id"))
    {
        let user = ctx
            .tx
            .find(
                "users",
                Cond::is_null("deleted_at").and(Cond::eq("id", owner_id.clone())),
            )
            .await?;
        if user.is_some_and(|u| u.get("status") != Some(&json!("active"))) {
            draft.invalid_rel("owner", "the owner must be an active user");
        }
    }
    if let Some(plan_id) = draft.str("plan_id").map(str::to_owned)
        && before.is_none_or(|b| b.get("plan_id") != draft.row.get("plan_id"))
    {
        let plan = ctx
            .tx
            .find(
                "plans",
                Cond::is_null("deleted_at").and(Cond::eq("id", plan_id)),
            )
            .await?;
        if plan.is_some_and(|p| p.get("enabled") == Some(&json!(false))) {
            draft.invalid_rel("plan", "a disabled plan cannot be assigned");
        }
    }
    if let Some(links) = draft.links.get("members").cloned() {
        let mut kept: Vec<Link> = Vec::new();
        let mut has_owner = false;
        for link in links {
            let is_owner = owner.as_deref() == Some(link.id.as_str());
            has_owner |= is_owner;
            match link.role.as_deref() {
                None | Some("admin" | "member") => {}
                Some("owner") if is_owner => {}
                Some(_) => {
                    draft.invalid_rel("members", "meta.role must be admin or member");
                    continue;
                }
            }
            // The owner's membership is kept as-is (role `owner`, rewritten by `after_write`),
            // so that naming it again is not seen as a change.
            kept.push(if is_owner {
                Link {
                    id: link.id,
                    role: Some("owner".into()),
                }
            } else {
                link
            });
        }
        if before.is_some() && !has_owner {
            draft.invalid_rel("members", "the owner cannot be removed from the group");
        }
        draft.links.insert("members", kept);
    }
    Ok(())
}

/// Whether `value` is a JSON string (helper for other modules' rows).
pub fn is_str(value: Option<&Value>) -> bool {
    value.is_some_and(Value::is_string)
}
