//! Reads: list, get, includes, relationship linkage, and loading one row (locked or not).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::{
    ResourceService,
    input::Link,
    relationships::join_rows,
    rules::{Access, Op, ResourceRules, check_access},
    str_of,
};
use crate::{
    Actor, DomainError, Row,
    ports::Session,
    query::{Cond, ListQuery, Page},
    schema::{RelKind, RelSpec, ResourceSchema, ToMany},
};

impl ResourceService {
    pub async fn list(
        &self,
        actor: &Actor,
        rules: &dyn ResourceRules,
        mut query: ListQuery,
    ) -> Result<Page<Row>, DomainError> {
        let schema = rules.schema();
        check_access(rules.access(actor, Op::List))?;
        query.cond = Self::scope(schema, rules, actor).and(query.cond);
        let mut session = self.ports.store.read().await?;
        let total = session.count(schema.type_name, &query.cond).await?;
        let items = if query.offset >= total {
            Vec::new()
        } else {
            session.list(schema.type_name, &query).await?
        };
        let mut items = items;
        let now = self.now();
        items.iter_mut().for_each(|r| rules.decorate(r, now));
        Ok(Page { items, total })
    }

    pub async fn get(
        &self,
        actor: &Actor,
        rules: &dyn ResourceRules,
        id: &str,
    ) -> Result<Row, DomainError> {
        let schema = rules.schema();
        if rules.access(actor, Op::Read) == Access::Hidden {
            return Err(DomainError::NotFound);
        }
        let mut session = self.ports.store.read().await?;
        let mut row = load(&mut *session, schema, Self::scope(schema, rules, actor), id).await?;
        check_access(rules.access(actor, Op::Read))?;
        rules.decorate(&mut row, self.now());
        Ok(row)
    }

    /// Rows by id that the actor may see (for `include`); missing ones are left out.
    pub async fn get_many(
        &self,
        actor: &Actor,
        rules: &dyn ResourceRules,
        ids: &[String],
    ) -> Result<Vec<Row>, DomainError> {
        if ids.is_empty() || rules.access(actor, Op::Read) != Access::Allow {
            return Ok(Vec::new());
        }
        let schema = rules.schema();
        let cond = Self::scope(schema, rules, actor)
            .and(Cond::is_in("id", ids.iter().map(|i| json!(i)).collect()));
        let mut session = self.ports.store.read().await?;
        let mut rows = session
            .list(schema.type_name, &ListQuery::all(cond, ids.len() as u64))
            .await?;
        let now = self.now();
        rows.iter_mut().for_each(|r| rules.decorate(r, now));
        Ok(rows)
    }

    /// Linkage of a to-many relationship for several owners at once: owner id → identifiers
    /// (only targets the actor may see).
    pub async fn to_many_links(
        &self,
        actor: &Actor,
        rel: &RelSpec,
        target: &dyn ResourceRules,
        owners: &[String],
    ) -> Result<BTreeMap<String, Vec<Link>>, DomainError> {
        let mut out: BTreeMap<String, Vec<Link>> = BTreeMap::new();
        let RelKind::ToMany(via) = rel.kind else {
            return Ok(out);
        };
        if owners.is_empty() {
            return Ok(out);
        }
        let owner_values: Vec<Value> = owners.iter().map(|o| json!(o)).collect();
        let target_scope = Self::scope(target.schema(), target, actor);
        let mut session = self.ports.store.read().await?;
        match via {
            ToMany::Reverse { column } => {
                let cond = target_scope.and(Cond::is_in(column, owner_values));
                let rows = session
                    .list(rel.target, &ListQuery::all(cond, 100_000))
                    .await?;
                for row in rows {
                    if let (Some(owner), Some(id)) = (str_of(&row, column), str_of(&row, "id")) {
                        out.entry(owner.to_owned()).or_default().push(Link {
                            id: id.to_owned(),
                            role: None,
                        });
                    }
                }
            }
            ToMany::Join {
                table,
                own,
                other,
                role_column,
            } => {
                let joins = session
                    .list(table, &join_rows(Cond::is_in(own, owner_values)))
                    .await?;
                let target_ids: BTreeSet<String> = joins
                    .iter()
                    .filter_map(|j| str_of(j, other).map(str::to_owned))
                    .collect();
                let visible: BTreeSet<String> = if target_ids.is_empty() {
                    BTreeSet::new()
                } else {
                    let cond = target_scope.and(Cond::is_in(
                        "id",
                        target_ids.iter().map(|i| json!(i)).collect(),
                    ));
                    session
                        .list(rel.target, &ListQuery::all(cond, target_ids.len() as u64))
                        .await?
                        .iter()
                        .filter_map(|r| str_of(r, "id").map(str::to_owned))
                        .collect()
                };
                for join in joins {
                    let (Some(owner), Some(id)) = (str_of(&join, own), str_of(&join, other)) else {
                        continue;
                    };
                    if visible.contains(id) {
                        out.entry(owner.to_owned()).or_default().push(Link {
                            id: id.to_owned(),
                            role: role_column
                                .and_then(|c| str_of(&join, c))
                                .map(str::to_owned),
                        });
                    }
                }
                for links in out.values_mut() {
                    links.sort();
                }
            }
        }
        Ok(out)
    }

    /// The condition selecting the targets of `rel` for one owner.
    pub fn related_cond(rel: &RelSpec, owner: &Row) -> Cond {
        let owner_id = str_of(owner, "id").unwrap_or_default().to_owned();
        match rel.kind {
            RelKind::ToOne { column, .. } => match owner.get(column) {
                Some(Value::String(id)) => Cond::eq("id", id.clone()),
                _ => Cond::is_null("id"),
            },
            RelKind::ToMany(ToMany::Reverse { column }) => Cond::eq(column, owner_id),
            RelKind::ToMany(ToMany::Join {
                table, own, other, ..
            }) => Cond::InSelect {
                column: "id".into(),
                table: table.into(),
                select: other.into(),
                cond: Box::new(Cond::eq(own, owner_id)),
            },
        }
    }
}

/// Like [`load`], but the row stays locked until the transaction ends: what the use case
/// checks (revoked, suspended, last admin) is still true when it writes.
pub async fn load_for_update(
    session: &mut dyn Session,
    schema: &ResourceSchema,
    scope: Cond,
    id: &str,
) -> Result<Row, DomainError> {
    load_row(session, schema, scope, id, true).await
}

/// Loads a live, visible row or answers `NotFound`.
pub async fn load(
    session: &mut dyn Session,
    schema: &ResourceSchema,
    scope: Cond,
    id: &str,
) -> Result<Row, DomainError> {
    load_row(session, schema, scope, id, false).await
}

async fn load_row(
    session: &mut dyn Session,
    schema: &ResourceSchema,
    scope: Cond,
    id: &str,
    locked: bool,
) -> Result<Row, DomainError> {
    if !crate::ids::is_valid_id(schema.id_prefix, id) {
        return Err(DomainError::NotFound);
    }
    let cond = scope.and(Cond::eq("id", id));
    let row = if locked {
        session.find_for_update(schema.type_name, cond).await?
    } else {
        session.find(schema.type_name, cond).await?
    };
    row.ok_or(DomainError::NotFound)
}
