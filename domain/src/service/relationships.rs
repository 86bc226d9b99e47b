//! Relationship input: linkage types, who may change what, related rows existing, join rows
//! written, membership events.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::{
    ResourceService,
    context::{Ctx, event_name},
    input::{Draft, Identifier, Link, RelInput, WriteInput},
    rules::ResourceRules,
    str_of,
};
use crate::{
    Actor, DomainError, Member, Problem, ProblemKind, Row,
    query::{Cond, ListQuery},
    schema::{OnCreate, OnUpdate, RelKind, ResourceSchema, ToMany},
};

/// `<t>.member_added` / `<t>.member_removed` per user whose membership a write changed.
pub(super) fn emit_membership(
    ctx: &mut Ctx<'_>,
    schema: &ResourceSchema,
    draft: &Draft,
    before: &BTreeMap<&'static str, Vec<Link>>,
) {
    let Some(now) = draft.links.get("members") else {
        return;
    };
    let Some(rel) = schema.relationship("members") else {
        return;
    };
    let old = before.get("members").cloned().unwrap_or_default();
    let id = str_of(&draft.row, "id").unwrap_or_default().to_owned();
    let object = schema.public_object(&draft.row);
    let changes = now
        .iter()
        .filter(|l| !old.iter().any(|o| o.id == l.id))
        .map(|l| ("member_added", l))
        .chain(
            old.iter()
                .filter(|o| !now.iter().any(|l| l.id == o.id))
                .map(|l| ("member_removed", l)),
        );
    let mut events = Vec::new();
    for (action, link) in changes {
        let role = link.role.clone().unwrap_or_else(|| "member".into());
        let data = json!({
            "object": object,
            "member": {"type": rel.target, "id": link.id, "meta": {"role": role}},
            "actor_id": ctx.actor.user_id,
        });
        events.push((format!("{}.{action}", event_name(schema)), data));
    }
    for (event_type, data) in events {
        ctx.emit(&event_type, schema, &id, data);
    }
}

pub(super) fn check_linkage_types(
    schema: &ResourceSchema,
    input: &WriteInput,
) -> Result<(), DomainError> {
    for (name, rel_input) in &input.relationships {
        let Some(rel) = schema.relationship(name) else {
            continue;
        };
        let identifiers: Vec<(Option<usize>, &Identifier)> = match rel_input {
            RelInput::One(Some(i)) => vec![(None, i)],
            RelInput::One(None) => vec![],
            RelInput::Many(items) => items
                .iter()
                .enumerate()
                .map(|(n, i)| (Some(n), i))
                .collect(),
        };
        for (index, identifier) in identifiers {
            if identifier.type_name != rel.target {
                return Err(DomainError::RelationshipTypeMismatch {
                    relationship: name.clone(),
                    expected: rel.target,
                    index,
                });
            }
        }
    }
    Ok(())
}

pub(super) fn apply_relationships(
    schema: &ResourceSchema,
    actor: &Actor,
    input: &WriteInput,
    draft: &mut Draft,
    before: Option<&Row>,
) -> Result<(), DomainError> {
    for (name, rel_input) in &input.relationships {
        let Some(rel) = schema.relationship(name) else {
            draft.problems.push(Problem {
                member: Member::Relationship(name.clone()),
                kind: ProblemKind::UnknownRelationship,
                detail: format!("{name} is not a relationship of this type"),
            });
            continue;
        };
        let allowed = match before {
            None => rel.on_create != OnCreate::Never,
            Some(_) => match rel.on_update {
                OnUpdate::Yes => true,
                OnUpdate::AdminOnly => actor.is_admin(),
                OnUpdate::Never => false,
            },
        };
        // A role limit is 403 FORBIDDEN; a relationship nobody may change is READ_ONLY.
        let refusal = || {
            if rel.on_update == OnUpdate::AdminOnly && before.is_some() {
                DomainError::Forbidden(format!("only an admin may change {name}"))
            } else {
                DomainError::ReadOnlyRelationship(name.clone())
            }
        };
        match (rel.kind, rel_input) {
            (RelKind::ToOne { column, nullable }, RelInput::One(target)) => {
                let value = target.as_ref().map(|t| json!(t.id)).unwrap_or(Value::Null);
                if !allowed {
                    let unchanged = before.is_some_and(|b| b.get(column) == Some(&value));
                    if !unchanged {
                        return Err(refusal());
                    }
                    continue;
                }
                if value.is_null() && !nullable {
                    draft.invalid_rel(rel.name, format!("{name} must not be null"));
                    continue;
                }
                draft.row.insert(column.into(), value);
                draft.rels_given.push(rel.name);
            }
            (RelKind::ToMany(_), RelInput::Many(items)) => {
                if !allowed {
                    return Err(refusal());
                }
                let roles_ok = items.iter().all(|i| {
                    i.meta
                        .as_ref()
                        .and_then(|m| m.get("role"))
                        .is_none_or(Value::is_string)
                });
                if !roles_ok {
                    draft.invalid_rel(rel.name, "meta.role must be a string");
                }
                let mut links: Vec<Link> = items
                    .iter()
                    .map(|i| Link {
                        id: i.id.clone(),
                        role: i
                            .meta
                            .as_ref()
                            .and_then(|m| m.get("role"))
                            .and_then(Value::as_str)
                            .map(str::to_owned),
                    })
                    .collect();
                // Document order is kept (error pointers index into it); duplicates dropped.
                let mut seen = BTreeSet::new();
                links.retain(|l| seen.insert(l.id.clone()));
                draft.links.insert(rel.name, links);
                draft.rels_given.push(rel.name);
            }
            _ => draft.invalid_rel(
                rel.name,
                if rel.is_to_many() {
                    format!("{name} takes an array of resource identifiers")
                } else {
                    format!("{name} takes one resource identifier or null")
                },
            ),
        }
    }
    Ok(())
}

pub(super) async fn current_links(
    ctx: &mut Ctx<'_>,
    schema: &ResourceSchema,
    before: &Row,
    draft: &Draft,
) -> Result<BTreeMap<&'static str, Vec<Link>>, DomainError> {
    let mut out = BTreeMap::new();
    let owner = str_of(before, "id").unwrap_or_default().to_owned();
    for name in draft.links.keys() {
        let Some((table, own, other, role_column)) = join_of(schema, name) else {
            continue;
        };
        let rows = ctx
            .tx
            .list(table, &join_rows(Cond::eq(own, owner.clone())))
            .await?;
        let mut links: Vec<Link> = rows
            .iter()
            .filter_map(|r| {
                Some(Link {
                    id: str_of(r, other)?.to_owned(),
                    role: role_column.and_then(|c| str_of(r, c)).map(str::to_owned),
                })
            })
            .collect();
        links.sort();
        out.insert(*name, links);
    }
    Ok(out)
}

pub(super) async fn check_related_exist(
    ctx: &mut Ctx<'_>,
    schema: &ResourceSchema,
    draft: &Draft,
    registry: &dyn Fn(&str) -> Option<&'static dyn ResourceRules>,
) -> Result<(), DomainError> {
    for name in &draft.rels_given {
        let Some(rel) = schema.relationship(name) else {
            continue;
        };
        let Some(target) = registry(rel.target) else {
            continue;
        };
        let scope = ResourceService::scope(target.schema(), target, ctx.actor);
        let wanted: Vec<(Option<usize>, String)> = match rel.kind {
            RelKind::ToOne { column, .. } => match draft.row.get(column) {
                Some(Value::String(id)) => vec![(None, id.clone())],
                _ => vec![],
            },
            RelKind::ToMany(_) => draft
                .links
                .get(rel.name)
                .map(|l| {
                    l.iter()
                        .enumerate()
                        .map(|(n, l)| (Some(n), l.id.clone()))
                        .collect()
                })
                .unwrap_or_default(),
        };
        for (index, id) in wanted {
            let found = crate::ids::is_valid_id(target.schema().id_prefix, &id)
                && ctx
                    .tx
                    .find(rel.target, scope.clone().and(Cond::eq("id", id.clone())))
                    .await?
                    .is_some();
            if !found {
                return Err(DomainError::RelatedNotFound {
                    relationship: rel.name.to_owned(),
                    index,
                });
            }
        }
    }
    Ok(())
}

pub(super) async fn write_links(
    ctx: &mut Ctx<'_>,
    schema: &ResourceSchema,
    draft: &Draft,
) -> Result<(), DomainError> {
    let owner = str_of(&draft.row, "id").unwrap_or_default().to_owned();
    for (name, links) in &draft.links {
        let Some((table, own, other, role_column)) = join_of(schema, name) else {
            continue;
        };
        ctx.tx
            .delete_where(table, &Cond::eq(own, owner.clone()))
            .await?;
        for link in links {
            let mut row = Row::new();
            row.insert(own.into(), json!(owner));
            row.insert(other.into(), json!(link.id));
            if let Some(column) = role_column {
                row.insert(
                    column.into(),
                    json!(link.role.clone().unwrap_or_else(|| "member".into())),
                );
            }
            row.insert("created_at".into(), json!(ctx.now.millis()));
            ctx.tx.insert(table, &row).await?;
        }
    }
    Ok(())
}

/// The join table of a to-many relationship: `(table, own, other, role_column)`.
fn join_of(
    schema: &ResourceSchema,
    name: &str,
) -> Option<(
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
)> {
    match schema.relationship(name)?.kind {
        RelKind::ToMany(ToMany::Join {
            table,
            own,
            other,
            role_column,
        }) => Some((table, own, other, role_column)),
        _ => None,
    }
}

/// Every join row matching `cond`, unordered (join tables have no `id` to sort by).
pub(super) fn join_rows(cond: Cond) -> ListQuery {
    ListQuery {
        cond,
        sort: vec![],
        offset: 0,
        limit: 100_000,
    }
}
