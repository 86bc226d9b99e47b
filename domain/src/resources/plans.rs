//! Plans: what a subscriber may do (rate limit, monthly quota) and what it costs.

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::{
    Actor, DomainError, Row,
    query::{CmpOp, Cond},
    schema::{AttrSpec, Default, FilterSpec, OnCreate, OnUpdate, RelSpec, ResourceSchema, ToMany},
    service::{Ctx, Draft, ResourceRules},
};

const ENABLED: AttrSpec = AttrSpec::boolean("enabled").default(Default::Bool(true));
const IS_DEFAULT: AttrSpec = AttrSpec::boolean("is_default").default(Default::Bool(false));

pub static SCHEMA: ResourceSchema = ResourceSchema {
    type_name: "plans",
    path: "plans",
    id_prefix: "pln_",
    soft_delete: true,
    attributes: &[
        AttrSpec::text("name", 1, 100).required(),
        AttrSpec::text("description", 0, 1000).default(Default::Text("")),
        AttrSpec::int("rate_limit_per_minute", 0, 1_000_000).default(Default::Int(60)),
        AttrSpec::int("requests_per_month", -1, 1_000_000_000_000).default(Default::Int(-1)),
        AttrSpec::int("price_monthly", 0, i64::MAX).default(Default::Int(0)),
        AttrSpec::text("currency", 3, 3).default(Default::Text("USD")),
        AttrSpec::int("overage_price", 0, i64::MAX).default(Default::Int(0)),
        AttrSpec::int("trial_days", 0, 365).default(Default::Int(0)),
        AttrSpec::text("stripe_price_id", 0, 255)
            .nullable()
            .private(),
        AttrSpec::text("paddle_price_id", 0, 255)
            .nullable()
            .private(),
        AttrSpec::text("lemon_variant_id", 0, 255)
            .nullable()
            .private(),
        IS_DEFAULT,
        ENABLED,
    ],
    relationships: &[
        RelSpec::to_many("users", "users", ToMany::Reverse { column: "plan_id" })
            .writable(OnCreate::Never, OnUpdate::Never)
            .private(),
    ],
    sorts: &["name", "price_monthly", "rate_limit_per_minute"],
    filters: &[FilterSpec::attr(ENABLED), FilterSpec::attr(IS_DEFAULT)],
    search: &["name"],
};

pub struct Plans;

#[async_trait]
impl ResourceRules for Plans {
    fn schema(&self) -> &'static ResourceSchema {
        &SCHEMA
    }

    fn access(&self, actor: &Actor, op: crate::service::Op) -> crate::service::Access {
        crate::service::admin_writes(actor, op)
    }

    /// Users see enabled plans only.
    fn visibility(&self, actor: &Actor) -> Cond {
        if actor.is_admin() {
            Cond::True
        } else {
            Cond::eq("enabled", true)
        }
    }

    async fn before_create(
        &self,
        _ctx: &mut Ctx<'_>,
        draft: &mut Draft,
    ) -> Result<(), DomainError> {
        check(draft);
        Ok(())
    }

    async fn before_update(
        &self,
        _ctx: &mut Ctx<'_>,
        _before: &Row,
        draft: &mut Draft,
    ) -> Result<(), DomainError> {
        check(draft);
        Ok(())
    }

    /// A new default plan takes the flag from the previous one, in the same transaction.
    async fn after_write(
        &self,
        ctx: &mut Ctx<'_>,
        row: &Row,
        _draft: &Draft,
    ) -> Result<(), DomainError> {
        if row.get("is_default") != Some(&json!(true)) {
            return Ok(());
        }
        let id = row.get("id").cloned().unwrap_or(Value::Null);
        let others = Cond::All(vec![
            Cond::is_null("deleted_at"),
            Cond::eq("is_default", true),
            Cond::Cmp("id".into(), CmpOp::Ne, id),
        ]);
        while let Some(previous) = ctx.tx.find("plans", others.clone()).await? {
            let mut cleared = previous.clone();
            cleared.insert("is_default".into(), json!(false));
            ctx.save_cascade(&SCHEMA, &previous, cleared).await?;
        }
        Ok(())
    }

    async fn before_delete(&self, ctx: &mut Ctx<'_>, row: &mut Row) -> Result<(), DomainError> {
        if row.get("is_default") == Some(&json!(true)) {
            return Err(DomainError::ResourceInUse(
                "the default plan cannot be deleted".into(),
            ));
        }
        let id = row.get("id").cloned().unwrap_or(Value::Null);
        let on_plan = Cond::is_null("deleted_at").and(Cond::Eq("plan_id".into(), id.clone()));
        for (table, what) in [("users", "users"), ("groups", "groups")] {
            if ctx.tx.count(table, &on_plan).await? > 0 {
                return Err(DomainError::ResourceInUse(format!(
                    "{what} are on this plan"
                )));
            }
        }
        let routes = Cond::is_null("deleted_at").and(Cond::InSelect {
            column: "id".into(),
            table: "route_plans".into(),
            select: "route_id".into(),
            cond: Box::new(Cond::Eq("plan_id".into(), id)),
        });
        if ctx.tx.count("routes", &routes).await? > 0 {
            return Err(DomainError::ResourceInUse("routes allow this plan".into()));
        }
        Ok(())
    }
}

fn check(draft: &mut Draft) {
    if let Some(currency) = draft.str("currency")
        && !currency.bytes().all(|b| b.is_ascii_uppercase())
    {
        draft.invalid(
            "currency",
            "currency must be three upper-case letters (ISO 4217)",
        );
    }
    if draft.bool("is_default") == Some(true) && draft.bool("enabled") == Some(false) {
        let attribute = if draft.was_given("enabled") {
            "enabled"
        } else {
            "is_default"
        };
        draft.invalid(attribute, "the default plan must be enabled");
    }
}
