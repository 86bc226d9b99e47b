//! Delete: soft (a `deleted_at` stamp) or hard, after the type's conflict checks.

use serde_json::json;

use super::{
    ResourceService,
    context::Ctx,
    read::load_for_update,
    rules::{Access, Op, ResourceRules, check_access},
    transaction::{finish, retrying},
};
use crate::{Actor, DomainError, query::Cond};

impl ResourceService {
    pub async fn delete(
        &self,
        actor: &Actor,
        rules: &dyn ResourceRules,
        id: &str,
    ) -> Result<(), DomainError> {
        retrying(|| self.delete_once(actor, rules, id)).await
    }

    async fn delete_once(
        &self,
        actor: &Actor,
        rules: &dyn ResourceRules,
        id: &str,
    ) -> Result<(), DomainError> {
        let schema = rules.schema();
        let mut tx = self.ports.store.begin().await?;
        if rules.access(actor, Op::Delete) == Access::Hidden {
            return Err(DomainError::NotFound);
        }
        let mut row =
            load_for_update(&mut *tx, schema, Self::scope(schema, rules, actor), id).await?;
        let loaded = row.clone();
        check_access(rules.access(actor, Op::Delete))?;
        let now = self.now();
        let mut ctx = Ctx::new(&mut *tx, actor, now, &self.ports);
        rules.before_delete(&mut ctx, &mut row).await?;
        rules.decorate(&mut row, now);
        if schema.soft_delete {
            let mut gone = row.clone();
            gone.insert("deleted_at".into(), json!(now.millis()));
            ctx.tx.save(schema.type_name, &loaded, &gone).await?;
        } else {
            ctx.tx
                .delete_where(schema.type_name, &Cond::eq("id", id))
                .await?;
        }
        ctx.emit_change(schema, "deleted", &row, None);
        finish(ctx.events, tx).await
    }
}
