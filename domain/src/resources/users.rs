//! Users: people and services that own API keys and belong to a plan.

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::{
    Actor, DomainError, Row,
    query::{CmpOp, Cond},
    resources::checks,
    schema::{AttrSpec, Default, FilterSpec, OnCreate, OnUpdate, RelSpec, ResourceSchema, ToMany},
    service::{Ctx, Draft, ResourceRules},
};

pub const STATUSES: &[&str] = &["pending", "active", "suspended", "cancelled"];
pub const ROLES: &[&str] = &["admin", "user"];

/// No stored email is longer (characters), so a longer one cannot sign in or get a reset mail.
pub const EMAIL_MAX_CHARS: usize = 254;
/// The password policy's upper bound (characters): a longer password matches no stored hash.
pub const PASSWORD_MAX_CHARS: usize = 128;

const EMAIL: AttrSpec = AttrSpec::text("email", 1, EMAIL_MAX_CHARS)
    .required()
    .admin_only();
const STATUS: AttrSpec = AttrSpec::one_of("status", STATUSES)
    .default(Default::Text("active"))
    .admin_only();
const ROLE: AttrSpec = AttrSpec::one_of("role", ROLES)
    .default(Default::Text("user"))
    .admin_only();

pub static SCHEMA: ResourceSchema = ResourceSchema {
    type_name: "users",
    path: "users",
    id_prefix: "usr_",
    soft_delete: true,
    attributes: &[
        EMAIL,
        AttrSpec::text("name", 0, 100).default(Default::Text("")),
        STATUS,
        ROLE,
        AttrSpec::text("password", 12, PASSWORD_MAX_CHARS)
            .write_only()
            .admin_only(),
        AttrSpec::timestamp("last_login_at").nullable().read_only(),
    ],
    relationships: &[
        RelSpec::to_one("plan", "plans", "plan_id")
            .writable(OnCreate::Optional, OnUpdate::AdminOnly),
        RelSpec::to_many(
            "api_keys",
            "api_keys",
            ToMany::Reverse { column: "user_id" },
        ),
        RelSpec::to_many(
            "groups",
            "groups",
            ToMany::Join {
                table: "group_members",
                own: "user_id",
                other: "group_id",
                role_column: Some("role"),
            },
        ),
    ],
    sorts: &["email", "name", "status"],
    filters: &[
        FilterSpec::custom("email", email_filter),
        FilterSpec::attr(STATUS),
        FilterSpec::attr(ROLE),
        FilterSpec::to_one("plan", "plan_id"),
    ],
    search: &["name", "email"],
};

pub struct Users;

#[async_trait]
impl ResourceRules for Users {
    fn schema(&self) -> &'static ResourceSchema {
        &SCHEMA
    }

    /// A `user` reads and renames their own record; everything else is for admins.
    fn access(&self, actor: &Actor, op: crate::service::Op) -> crate::service::Access {
        use crate::service::{Access, Op};
        match (actor.is_admin(), op) {
            (true, _) | (false, Op::Read | Op::Update) => Access::Allow,
            (false, _) => Access::Forbidden,
        }
    }

    /// A `user` sees only their own record.
    fn visibility(&self, actor: &Actor) -> Cond {
        own_only(actor, "id")
    }

    async fn before_create(&self, ctx: &mut Ctx<'_>, draft: &mut Draft) -> Result<(), DomainError> {
        draft.set("password_hash", Value::Null);
        check_email(draft);
        if !draft.rels_given.contains(&"plan") {
            match default_plan(ctx).await? {
                Some(plan_id) => draft.set("plan_id", plan_id),
                None => draft.invalid_rel("plan", "no plan given and no default plan exists"),
            }
        }
        check_plan_enabled(ctx, draft).await?;
        set_password(ctx, draft).await
    }

    async fn before_update(
        &self,
        ctx: &mut Ctx<'_>,
        before: &Row,
        draft: &mut Draft,
    ) -> Result<(), DomainError> {
        check_email(draft);
        if draft.rels_given.contains(&"plan") && draft.row.get("plan_id") != before.get("plan_id") {
            check_plan_enabled(ctx, draft).await?;
        }
        set_password(ctx, draft).await?;
        if !draft.problems.is_empty() {
            return Ok(());
        }
        let own = ctx.actor.user_id.as_deref() == before.get("id").and_then(Value::as_str);
        let changes = |c: &str| draft.row.get(c) != before.get(c);
        if own && (changes("role") || changes("status")) {
            return Err(DomainError::CannotModifySelf(
                "you cannot change your own role or status".into(),
            ));
        }
        let was_active_admin = is_active_admin(before);
        if was_active_admin && !is_active_admin(&draft.row) {
            ensure_other_admin(ctx, before).await?;
        }
        // Sessions (and their tokens) end when the account stops being active, changes role,
        // or gets a new password. An admin setting their own password keeps the session they
        // did it with (its cookie is rotated by the handler), like any own password change.
        let inactive = draft.row.get("status") != Some(&json!("active"));
        let password_set = draft.write_only.contains_key("password");
        if inactive || changes("role") || password_set {
            let id = before["id"].clone();
            lock_user(ctx.tx, id.clone()).await?;
            let mut doomed = Cond::Eq("user_id".into(), id);
            let keep_current = own && !inactive && !changes("role");
            if keep_current && let Some(sid) = &ctx.actor.session_id {
                doomed = doomed.and(Cond::cmp("id", CmpOp::Ne, sid.clone()));
            }
            ctx.tx.delete_where("sessions", &doomed).await?;
        }
        Ok(())
    }

    async fn before_delete(&self, ctx: &mut Ctx<'_>, row: &mut Row) -> Result<(), DomainError> {
        let id = row.get("id").cloned().unwrap_or(Value::Null);
        if ctx.actor.user_id.as_ref().map(|u| json!(u)) == Some(id.clone()) {
            return Err(DomainError::CannotModifySelf(
                "you cannot delete yourself".into(),
            ));
        }
        if is_active_admin(row) {
            ensure_other_admin(ctx, row).await?;
        }
        let owned = Cond::is_null("deleted_at").and(Cond::Eq("owner_id".into(), id.clone()));
        if ctx.tx.count("groups", &owned).await? > 0 {
            return Err(DomainError::ResourceInUse("the user owns a group".into()));
        }
        super::api_keys::revoke_where(ctx, Cond::Eq("user_id".into(), id.clone())).await?;
        ctx.tx
            .delete_where("group_members", &Cond::Eq("user_id".into(), id.clone()))
            .await?;
        ctx.tx
            .delete_where("sessions", &Cond::Eq("user_id".into(), id))
            .await?;
        Ok(())
    }
}

/// Locks the user row until the transaction ends (PostgreSQL; SQLite transactions exclude each
/// other anyway). A login opens its session in a transaction that first updates this row while
/// it is still active, so the two serialise: either the login commits first and its session is
/// among those ended after the lock, or it waits and then finds the account changed.
pub async fn lock_user(tx: &mut dyn crate::ports::Session, id: Value) -> Result<(), DomainError> {
    let query = crate::query::ListQuery {
        cond: Cond::Eq("id".into(), id),
        sort: Vec::new(),
        offset: 0,
        limit: 1,
    };
    tx.lock("users", &query, false).await?;
    Ok(())
}

/// Emails are stored lower-case, so the filter compares lower-case too.
fn email_filter(values: &[String], _now: crate::Timestamp) -> Result<Cond, String> {
    Ok(Cond::is_in(
        "email",
        values
            .iter()
            .map(|v| json!(v.trim().to_lowercase()))
            .collect(),
    ))
}

/// For `user` callers: only rows whose `column` is their own id.
pub fn own_only(actor: &Actor, column: &str) -> Cond {
    match (&actor.user_id, actor.is_admin()) {
        (_, true) => Cond::True,
        (Some(me), false) => Cond::eq(column, me.clone()),
        (None, false) => Cond::is_null("id"),
    }
}

fn is_active_admin(row: &Row) -> bool {
    row.get("role") == Some(&json!("admin")) && row.get("status") == Some(&json!("active"))
}

async fn ensure_other_admin(ctx: &mut Ctx<'_>, row: &Row) -> Result<(), DomainError> {
    let others = Cond::All(vec![
        Cond::is_null("deleted_at"),
        Cond::eq("role", "admin"),
        Cond::eq("status", "active"),
        Cond::Cmp(
            "id".into(),
            CmpOp::Ne,
            row.get("id").cloned().unwrap_or(Value::Null),
        ),
    ]);
    // The other admins' rows are locked, not counted: two admins demoting each other at once
    // then take turns (or one is the deadlock victim and runs again), and the second sees
    // the first's change instead of both seeing one admin left.
    let query = crate::query::ListQuery::all(others, u64::from(u32::MAX));
    if ctx.tx.lock("users", &query, false).await?.is_empty() {
        return Err(DomainError::LastAdmin(
            "this would leave no active admin".into(),
        ));
    }
    Ok(())
}

fn check_email(draft: &mut Draft) {
    if let Some(email) = draft.str("email").map(str::to_lowercase) {
        if !checks::is_email(&email) {
            draft.invalid("email", "email must be a valid address");
        }
        draft.set("email", email);
    }
}

/// The enabled default plan, if any.
pub async fn default_plan(ctx: &mut Ctx<'_>) -> Result<Option<String>, DomainError> {
    let cond = Cond::All(vec![
        Cond::is_null("deleted_at"),
        Cond::eq("is_default", true),
        Cond::eq("enabled", true),
    ]);
    Ok(ctx
        .tx
        .find("plans", cond)
        .await?
        .and_then(|p| p.get("id").and_then(Value::as_str).map(str::to_owned)))
}

async fn check_plan_enabled(ctx: &mut Ctx<'_>, draft: &mut Draft) -> Result<(), DomainError> {
    let Some(plan_id) = draft.str("plan_id").map(str::to_owned) else {
        return Ok(());
    };
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
    Ok(())
}

/// Password rule: 12–128 characters (checked by the schema) and not the email.
async fn set_password(ctx: &mut Ctx<'_>, draft: &mut Draft) -> Result<(), DomainError> {
    let Some(password) = draft
        .write_only
        .get("password")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return Ok(());
    };
    if draft
        .str("email")
        .is_some_and(|e| e.eq_ignore_ascii_case(&password))
    {
        draft.invalid("password", "password must not equal the email");
        return Ok(());
    }
    if draft.problems.is_empty() {
        let hash = ctx.ports.passwords.hash(&password).await?;
        draft.set("password_hash", hash);
    }
    Ok(())
}

/// Checks a password against the policy; `Err` is the 422 detail.
pub fn check_password_policy(password: &str, email: &str) -> Result<(), String> {
    let len = password.chars().count();
    if !(12..=128).contains(&len) {
        return Err("password must be 12 to 128 characters".into());
    }
    if password.eq_ignore_ascii_case(email) {
        return Err("password must not equal the email".into());
    }
    Ok(())
}
