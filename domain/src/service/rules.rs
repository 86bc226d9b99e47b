//! Who may do what ([`Op`], [`Access`]) and the hooks a resource plugs into the flow.

use async_trait::async_trait;

use super::{context::Ctx, input::Draft};
use crate::{Actor, DomainError, Row, Timestamp, query::Cond, schema::ResourceSchema};

/// What a caller wants to do with a resource type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    List,
    Read,
    Create,
    Update,
    Delete,
}

/// The answer of [`ResourceRules::access`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Allow,
    /// 403: the caller may know the resource exists.
    Forbidden,
    /// 404: the caller may not even know (ids never leak across users).
    Hidden,
}

/// Admin-only types: a `user` gets 403 on collections and writes, 404 on ids.
pub fn admin_only(actor: &Actor, op: Op) -> Access {
    match (actor.is_admin(), op) {
        (true, _) => Access::Allow,
        (false, Op::List | Op::Create) => Access::Forbidden,
        (false, _) => Access::Hidden,
    }
}

/// Readable by every signed-in caller (within [`ResourceRules::visibility`]), written by admins.
pub fn admin_writes(actor: &Actor, op: Op) -> Access {
    match (actor.is_admin(), op) {
        (true, _) | (false, Op::List | Op::Read) => Access::Allow,
        (false, _) => Access::Forbidden,
    }
}

pub(super) fn check_access(access: Access) -> Result<(), DomainError> {
    match access {
        Access::Allow => Ok(()),
        Access::Forbidden => Err(DomainError::Forbidden(
            "your role does not allow this".into(),
        )),
        Access::Hidden => Err(DomainError::NotFound),
    }
}

/// Resource-specific behaviour plugged into the generic flow.
#[async_trait]
pub trait ResourceRules: Send + Sync + 'static {
    fn schema(&self) -> &'static ResourceSchema;

    /// Whether the actor's role allows `op` on this type at all (rows are then narrowed by
    /// [`Self::visibility`]).
    fn access(&self, actor: &Actor, op: Op) -> Access {
        admin_only(actor, op)
    }

    /// Rows of this type the actor may see, beyond "not deleted".
    fn visibility(&self, actor: &Actor) -> Cond {
        let _ = actor;
        Cond::True
    }

    /// Fills attributes computed at read time (e.g. an API key's `status`).
    fn decorate(&self, row: &mut Row, now: Timestamp) {
        let _ = (row, now);
    }

    /// Cross-field rules and derived columns on create; push problems, or fail outright.
    async fn before_create(&self, ctx: &mut Ctx<'_>, draft: &mut Draft) -> Result<(), DomainError> {
        let _ = (ctx, draft);
        Ok(())
    }

    async fn before_update(
        &self,
        ctx: &mut Ctx<'_>,
        before: &Row,
        draft: &mut Draft,
    ) -> Result<(), DomainError> {
        let _ = (ctx, before, draft);
        Ok(())
    }

    /// Runs after the row is written (join rows, side effects on other resources).
    async fn after_write(
        &self,
        ctx: &mut Ctx<'_>,
        row: &Row,
        draft: &Draft,
    ) -> Result<(), DomainError> {
        let _ = (ctx, row, draft);
        Ok(())
    }

    /// Conflicts (409) and cascades before the soft delete.
    async fn before_delete(&self, ctx: &mut Ctx<'_>, row: &mut Row) -> Result<(), DomainError> {
        let _ = (ctx, row);
        Ok(())
    }
}
