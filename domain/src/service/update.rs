//! Update: locked read, only changed columns written, `updated` and membership events.

use serde_json::{Value, json};

use super::{
    ResourceService, Written,
    attributes::{changed_attributes, in_document_order, read_only_attribute, unknown_attribute},
    context::Ctx,
    input::{Draft, WriteInput},
    read::load_for_update,
    relationships::{
        apply_relationships, check_linkage_types, check_related_exist, current_links,
        emit_membership, write_links,
    },
    rules::{Access, Op, ResourceRules, check_access},
    transaction::{finish, retrying},
};
use crate::{
    Actor, DomainError,
    schema::{OnCreate, OnUpdate, coerce},
};

impl ResourceService {
    /// Loads the row locked, applies the input, and writes only the columns that changed, so
    /// two concurrent edits of one row take turns and neither undoes the other.
    pub async fn update(
        &self,
        actor: &Actor,
        rules: &dyn ResourceRules,
        id: &str,
        input: WriteInput,
        registry: &dyn Fn(&str) -> Option<&'static dyn ResourceRules>,
    ) -> Result<Written, DomainError> {
        retrying(|| self.update_once(actor, rules, id, input.clone(), registry)).await
    }

    async fn update_once(
        &self,
        actor: &Actor,
        rules: &dyn ResourceRules,
        id: &str,
        input: WriteInput,
        registry: &dyn Fn(&str) -> Option<&'static dyn ResourceRules>,
    ) -> Result<Written, DomainError> {
        let schema = rules.schema();
        let mut tx = self.ports.store.begin().await?;
        if rules.access(actor, Op::Update) == Access::Hidden {
            return Err(DomainError::NotFound);
        }
        let before =
            load_for_update(&mut *tx, schema, Self::scope(schema, rules, actor), id).await?;
        check_linkage_types(schema, &input)?;
        check_access(rules.access(actor, Op::Update))?;
        let now = self.now();
        let mut draft = Draft::new(before.clone());
        // Computed attributes (an API key's `status`) compare against what a GET shows.
        let mut shown = before.clone();
        rules.decorate(&mut shown, now);
        for (name, value) in &input.attributes {
            match schema.attribute(name) {
                None => draft.problems.push(unknown_attribute(name)),
                Some(attr)
                    if attr.on_update == OnUpdate::Never || attr.on_create == OnCreate::Never =>
                {
                    let same = !attr.write_only
                        && coerce(attr, value).ok().as_ref()
                            == Some(shown.get(attr.name).unwrap_or(&Value::Null));
                    if !same {
                        draft.problems.push(read_only_attribute(name));
                    }
                }
                Some(attr) => {
                    if attr.on_update == OnUpdate::AdminOnly && !actor.is_admin() {
                        let same = coerce(attr, value).ok().as_ref() == before.get(attr.name);
                        if !same {
                            return Err(DomainError::Forbidden(format!(
                                "only an admin may change {name}"
                            )));
                        }
                    }
                    draft.accept(attr, name, value);
                }
            }
        }
        apply_relationships(schema, actor, &input, &mut draft, Some(&before))?;
        let mut ctx = Ctx::new(&mut *tx, actor, now, &self.ports);
        let links_before = current_links(&mut ctx, schema, &before, &draft).await?;
        rules.before_update(&mut ctx, &before, &mut draft).await?;
        if !draft.problems.is_empty() {
            return Err(DomainError::Invalid(in_document_order(
                &input,
                draft.problems,
            )));
        }
        check_related_exist(&mut ctx, schema, &draft, registry).await?;
        let mut previous = changed_attributes(schema, &before, &draft.row);
        let links_changed = draft.links.iter().any(|(name, links)| {
            let mut sorted = links.clone();
            sorted.sort();
            links_before.get(name) != Some(&sorted)
        });
        let columns_changed = draft.row != before;
        if !columns_changed && !links_changed && draft.write_only.is_empty() {
            let mut before = before;
            rules.decorate(&mut before, now);
            return Ok(Written {
                row: before,
                meta: draft.meta,
            });
        }
        draft.row.insert("updated_at".into(), json!(now.millis()));
        ctx.tx.save(schema.type_name, &before, &draft.row).await?;
        write_links(&mut ctx, schema, &draft).await?;
        rules.after_write(&mut ctx, &draft.row, &draft).await?;
        previous.remove("updated_at");
        rules.decorate(&mut draft.row, now);
        ctx.emit_change(schema, "updated", &draft.row, Some(previous));
        emit_membership(&mut ctx, schema, &draft, &links_before);
        finish(ctx.events, tx).await?;
        Ok(Written {
            row: draft.row,
            meta: draft.meta,
        })
    }
}
