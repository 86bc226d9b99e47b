//! Create: defaults, attribute and relationship checks, rule hooks, the `created` event.

use serde_json::{Value, json};

use super::{
    ResourceService, Written,
    attributes::{in_document_order, read_only_attribute, unknown_attribute},
    context::Ctx,
    input::{Draft, WriteInput},
    relationships::{apply_relationships, check_linkage_types, check_related_exist, write_links},
    rules::{Op, ResourceRules, check_access},
    transaction::{finish, retrying},
};
use crate::{
    Actor, DomainError, Problem, Row,
    schema::{OnCreate, RelKind},
};

impl ResourceService {
    pub async fn create(
        &self,
        actor: &Actor,
        rules: &dyn ResourceRules,
        input: WriteInput,
        registry: &dyn Fn(&str) -> Option<&'static dyn ResourceRules>,
    ) -> Result<Written, DomainError> {
        retrying(|| self.create_once(actor, rules, input.clone(), registry)).await
    }

    async fn create_once(
        &self,
        actor: &Actor,
        rules: &dyn ResourceRules,
        input: WriteInput,
        registry: &dyn Fn(&str) -> Option<&'static dyn ResourceRules>,
    ) -> Result<Written, DomainError> {
        let schema = rules.schema();
        check_linkage_types(schema, &input)?;
        check_access(rules.access(actor, Op::Create))?;
        let now = self.now();
        let mut row = Row::new();
        row.insert("id".into(), json!(self.ports.ids.new_id(schema.id_prefix)));
        for attr in schema.attributes {
            if !attr.write_only {
                row.insert(attr.name.into(), attr.default.value());
            }
        }
        for rel in schema.relationships {
            if let RelKind::ToOne { column, .. } = rel.kind {
                row.insert(column.into(), Value::Null);
            }
        }
        row.insert("created_at".into(), json!(now.millis()));
        row.insert("updated_at".into(), json!(now.millis()));
        if schema.soft_delete {
            row.insert("deleted_at".into(), Value::Null);
        }
        let mut draft = Draft::new(row);
        for (name, value) in &input.attributes {
            match schema.attribute(name) {
                None => draft.problems.push(unknown_attribute(name)),
                Some(attr) if attr.on_create == OnCreate::Never => {
                    draft.problems.push(read_only_attribute(name))
                }
                Some(attr) => draft.accept(attr, name, value),
            }
        }
        for attr in schema.attributes {
            if attr.on_create == OnCreate::Required
                && !input.attributes.iter().any(|(n, _)| n == attr.name)
            {
                draft.problems.push(Problem::invalid_attr(
                    attr.name,
                    format!("{} is required", attr.name),
                ));
            }
        }
        apply_relationships(schema, actor, &input, &mut draft, None)?;
        for rel in schema.relationships {
            if rel.on_create == OnCreate::Required && !draft.rels_given.contains(&rel.name) {
                draft.invalid_rel(rel.name, format!("{} is required", rel.name));
            }
        }
        let mut tx = self.ports.store.begin().await?;
        let mut ctx = Ctx::new(&mut *tx, actor, now, &self.ports);
        rules.before_create(&mut ctx, &mut draft).await?;
        if !draft.problems.is_empty() {
            return Err(DomainError::Invalid(in_document_order(
                &input,
                draft.problems,
            )));
        }
        check_related_exist(&mut ctx, schema, &draft, registry).await?;
        ctx.tx.insert(schema.type_name, &draft.row).await?;
        write_links(&mut ctx, schema, &draft).await?;
        rules.after_write(&mut ctx, &draft.row, &draft).await?;
        rules.decorate(&mut draft.row, now);
        ctx.emit_change(schema, "created", &draft.row, None);
        finish(ctx.events, tx).await?;
        Ok(Written {
            row: draft.row,
            meta: draft.meta,
        })
    }
}
