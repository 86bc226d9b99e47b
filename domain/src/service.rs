//! The generic use cases over any resource: list, read, create, update, delete. Resource
//! modules add their own rules through [`ResourceRules`] hooks; the flow and the checks
//! every type shares (unknown, read-only, type, range, required, related existence,
//! outbox event in the same transaction) live here once.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use crate::{
    Actor, DomainError, Member, Problem, ProblemKind, Row, Timestamp,
    events::ChangeEvent,
    ports::{Ports, Session},
    query::{Cond, ListQuery, Page},
    schema::{OnCreate, OnUpdate, RelKind, RelSpec, ResourceSchema, ToMany, coerce, to_wire},
};

/// A resource identifier from a request's linkage.
#[derive(Debug, Clone, PartialEq)]
pub struct Identifier {
    pub type_name: String,
    pub id: String,
    pub meta: Option<Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RelInput {
    One(Option<Identifier>),
    Many(Vec<Identifier>),
}

/// The client's intent, already shaped (the JSON:API layer checked the envelope).
#[derive(Debug, Clone, Default)]
pub struct WriteInput {
    /// In document order.
    pub attributes: Vec<(String, Value)>,
    pub relationships: Vec<(String, RelInput)>,
}

/// New membership of a to-many relationship: target id plus an optional role.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Link {
    pub id: String,
    pub role: Option<String>,
}

/// The row being written, with what the request asked for.
#[derive(Debug)]
pub struct Draft {
    pub row: Row,
    /// Names of attributes the request set (validated).
    pub given: Vec<String>,
    /// Validated values of write-only attributes; a hook turns them into stored columns.
    pub write_only: Map<String, Value>,
    /// Replacement linkage of to-many relationships.
    pub links: BTreeMap<&'static str, Vec<Link>>,
    /// Relationships the request set (to-one and to-many).
    pub rels_given: Vec<&'static str>,
    pub problems: Vec<Problem>,
    /// Returned once in the response's resource `meta` (new keys, secrets).
    pub meta: Map<String, Value>,
}

impl Draft {
    fn new(row: Row) -> Self {
        Self {
            row,
            given: Vec::new(),
            write_only: Map::new(),
            links: BTreeMap::new(),
            rels_given: Vec::new(),
            problems: Vec::new(),
            meta: Map::new(),
        }
    }

    pub fn str(&self, column: &str) -> Option<&str> {
        self.row.get(column).and_then(Value::as_str)
    }

    pub fn bool(&self, column: &str) -> Option<bool> {
        self.row.get(column).and_then(Value::as_bool)
    }

    pub fn set(&mut self, column: &str, value: impl Into<Value>) {
        self.row.insert(column.to_owned(), value.into());
    }

    pub fn invalid(&mut self, attribute: &str, detail: impl Into<String>) {
        self.problems.push(Problem::invalid_attr(attribute, detail));
    }

    pub fn invalid_rel(&mut self, relationship: &str, detail: impl Into<String>) {
        self.problems
            .push(Problem::invalid_rel(relationship, detail));
    }

    pub fn was_given(&self, attribute: &str) -> bool {
        self.given.iter().any(|g| g == attribute)
    }
}

/// What a hook may touch: the open transaction, who acts, the time, the ports, events.
pub struct Ctx<'a> {
    pub tx: &'a mut dyn Session,
    pub actor: &'a Actor,
    pub now: Timestamp,
    pub ports: &'a Ports,
    events: Vec<ChangeEvent>,
}

impl Ctx<'_> {
    /// Records an event to be written to the outbox in this transaction; returns its id.
    pub fn emit(
        &mut self,
        event_type: &str,
        schema: &ResourceSchema,
        resource_id: &str,
        data: Value,
    ) -> String {
        let id = self.ports.ids.new_id("evt_");
        self.events.push(ChangeEvent {
            id: id.clone(),
            event_type: event_type.to_owned(),
            resource_type: schema.type_name.to_owned(),
            resource_id: resource_id.to_owned(),
            data,
            actor: self.actor.clone(),
            created_at: self.now,
        });
        id
    }

    /// `<name>.<action>` with the resource as `data.object`.
    pub fn emit_change(
        &mut self,
        schema: &ResourceSchema,
        action: &str,
        row: &Row,
        previous: Option<Map<String, Value>>,
    ) {
        let mut data = json!({"object": schema.public_object(row)});
        if let Some(previous) = previous {
            data["previous_attributes"] = Value::Object(previous);
        }
        data["actor_id"] = json!(self.actor.user_id);
        let id = row
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let event_type = format!("{}.{action}", event_name(schema));
        self.emit(&event_type, schema, &id, data);
    }

    /// Saves a changed row of another resource (a cascade), with its `updated` event.
    pub async fn save_cascade(
        &mut self,
        schema: &ResourceSchema,
        before: &Row,
        mut after: Row,
    ) -> Result<Row, DomainError> {
        let previous = changed_attributes(schema, before, &after);
        if previous.is_empty() {
            return Ok(after);
        }
        after.insert("updated_at".into(), json!(self.now.millis()));
        self.tx.save(schema.type_name, before, &after).await?;
        self.emit_change(schema, "updated", &after, Some(previous));
        Ok(after)
    }
}

/// `user` for `users`, `api_key` for `api_keys`: the event-type stem.
pub fn event_name(schema: &ResourceSchema) -> &'static str {
    schema
        .type_name
        .strip_suffix('s')
        .unwrap_or(schema.type_name)
}

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

fn check_access(access: Access) -> Result<(), DomainError> {
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

/// A created or updated resource plus its one-time `meta`.
#[derive(Debug)]
pub struct Written {
    pub row: Row,
    pub meta: Map<String, Value>,
}

/// The generic use cases; resource rules are passed per call.
#[derive(Clone)]
pub struct ResourceService {
    ports: Ports,
}

impl ResourceService {
    pub fn new(ports: Ports) -> Self {
        Self { ports }
    }

    pub fn ports(&self) -> &Ports {
        &self.ports
    }

    pub fn now(&self) -> Timestamp {
        self.ports.clock.now()
    }

    fn scope(schema: &ResourceSchema, rules: &dyn ResourceRules, actor: &Actor) -> Cond {
        let alive = if schema.soft_delete {
            Cond::is_null("deleted_at")
        } else {
            Cond::True
        };
        alive.and(rules.visibility(actor))
    }

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
                    .list(
                        table,
                        &ListQuery {
                            cond: Cond::is_in(own, owner_values),
                            sort: vec![],
                            offset: 0,
                            limit: 100_000,
                        },
                    )
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
                Some(attr) => match coerce(attr, value) {
                    Ok(v) => {
                        draft.given.push(name.clone());
                        if attr.write_only {
                            draft.write_only.insert(name.clone(), v);
                        } else {
                            draft.row.insert(name.clone(), v);
                        }
                    }
                    Err(detail) => draft.problems.push(Problem::invalid_attr(name, detail)),
                },
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
        let mut ctx = Ctx {
            tx: &mut *tx,
            actor,
            now,
            ports: &self.ports,
            events: Vec::new(),
        };
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
                    match coerce(attr, value) {
                        Ok(v) => {
                            draft.given.push(name.clone());
                            if attr.write_only {
                                draft.write_only.insert(name.clone(), v);
                            } else {
                                draft.row.insert(name.clone(), v);
                            }
                        }
                        Err(detail) => draft.problems.push(Problem::invalid_attr(name, detail)),
                    }
                }
            }
        }
        apply_relationships(schema, actor, &input, &mut draft, Some(&before))?;
        let mut ctx = Ctx {
            tx: &mut *tx,
            actor,
            now,
            ports: &self.ports,
            events: Vec::new(),
        };
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
        let mut ctx = Ctx {
            tx: &mut *tx,
            actor,
            now,
            ports: &self.ports,
            events: Vec::new(),
        };
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

    /// Runs `action` inside one transaction with a context, committing its events with it.
    /// A transaction the store aborted to resolve a conflict runs again (a fresh clone of
    /// `action`), a bounded number of times.
    pub async fn transact<T, F>(&self, actor: &Actor, action: F) -> Result<T, DomainError>
    where
        F: for<'c> FnOnce(
                &'c mut Ctx<'_>,
            ) -> std::pin::Pin<
                Box<dyn Future<Output = Result<T, DomainError>> + Send + 'c>,
            > + Clone,
    {
        retrying(|| self.transact_once(actor, action.clone())).await
    }

    async fn transact_once<T, F>(&self, actor: &Actor, action: F) -> Result<T, DomainError>
    where
        F: for<'c> FnOnce(
            &'c mut Ctx<'_>,
        ) -> std::pin::Pin<
            Box<dyn Future<Output = Result<T, DomainError>> + Send + 'c>,
        >,
    {
        let mut tx = self.ports.store.begin().await?;
        let mut ctx = Ctx {
            tx: &mut *tx,
            actor,
            now: self.now(),
            ports: &self.ports,
            events: Vec::new(),
        };
        let out = action(&mut ctx).await?;
        finish(ctx.events, tx).await?;
        Ok(out)
    }
}

/// `<t>.member_added` / `<t>.member_removed` per user whose membership a write changed.
fn emit_membership(
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

/// How many times a use case runs when the store keeps aborting it to resolve conflicts.
pub const WRITE_ATTEMPTS: usize = 5;

/// Runs `attempt` again while the store answers [`DomainError::Busy`] (a deadlock victim, a
/// serialization failure, a lock wait that timed out), at most [`WRITE_ATTEMPTS`] times. The
/// failed attempt's transaction was rolled back whole, so running it again is safe; the last
/// `Busy` reaches the client as 503 with `Retry-After`.
pub async fn retrying<T, Fut>(mut attempt: impl FnMut() -> Fut) -> Result<T, DomainError>
where
    Fut: Future<Output = Result<T, DomainError>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(DomainError::Busy(_)) if tries < WRITE_ATTEMPTS => tries += 1,
            other => return other,
        }
    }
}

/// Writes the events and commits. A change to anything the proxy reads bumps the
/// configuration version last, so the version row is locked only for the end of the
/// transaction and versions follow commit order.
async fn finish(events: Vec<ChangeEvent>, mut tx: Box<dyn Session>) -> Result<(), DomainError> {
    for event in &events {
        tx.insert("events", &event.to_row()).await?;
    }
    if events
        .iter()
        .any(|e| crate::events::changes_proxy_config(&e.event_type))
    {
        tx.bump_config_version().await?;
    }
    tx.commit().await?;
    Ok(())
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

fn str_of<'r>(row: &'r Row, column: &str) -> Option<&'r str> {
    row.get(column).and_then(Value::as_str)
}

/// Problems sorted by where their member stands in the request (absent members last);
/// several problems of one member keep the order they were found in.
fn in_document_order(input: &WriteInput, mut problems: Vec<Problem>) -> Vec<Problem> {
    let position = |problem: &Problem| match &problem.member {
        Member::Attribute(name) => input
            .attributes
            .iter()
            .position(|(n, _)| n == name)
            .map_or((2, 0), |i| (0, i)),
        Member::Relationship(name) => input
            .relationships
            .iter()
            .position(|(n, _)| n == name)
            .map_or((3, 0), |i| (1, i)),
    };
    problems.sort_by_key(position);
    problems
}

fn unknown_attribute(name: &str) -> Problem {
    Problem {
        member: Member::Attribute(name.to_owned()),
        kind: ProblemKind::UnknownAttribute,
        detail: format!("{name} is not an attribute of this type"),
    }
}

fn read_only_attribute(name: &str) -> Problem {
    Problem {
        member: Member::Attribute(name.to_owned()),
        kind: ProblemKind::ReadOnlyAttribute,
        detail: format!("{name} cannot be changed"),
    }
}

/// Old wire values of the attributes that differ between two rows.
pub fn changed_attributes(
    schema: &ResourceSchema,
    before: &Row,
    after: &Row,
) -> Map<String, Value> {
    schema
        .all_attributes()
        .filter(|a| !a.write_only && a.name != "updated_at")
        .filter(|a| before.get(a.name) != after.get(a.name))
        .map(|a| {
            (
                a.name.to_owned(),
                to_wire(a.ty, before.get(a.name).cloned().unwrap_or(Value::Null)),
            )
        })
        .collect()
}

fn check_linkage_types(schema: &ResourceSchema, input: &WriteInput) -> Result<(), DomainError> {
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

fn apply_relationships(
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

async fn current_links(
    ctx: &mut Ctx<'_>,
    schema: &ResourceSchema,
    before: &Row,
    draft: &Draft,
) -> Result<BTreeMap<&'static str, Vec<Link>>, DomainError> {
    let mut out = BTreeMap::new();
    let owner = str_of(before, "id").unwrap_or_default().to_owned();
    for name in draft.links.keys() {
        let Some(RelKind::ToMany(ToMany::Join {
            table,
            own,
            other,
            role_column,
        })) = schema.relationship(name).map(|r| r.kind)
        else {
            continue;
        };
        let rows = ctx
            .tx
            .list(
                table,
                &ListQuery {
                    cond: Cond::eq(own, owner.clone()),
                    sort: vec![],
                    offset: 0,
                    limit: 100_000,
                },
            )
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

async fn check_related_exist(
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

async fn write_links(
    ctx: &mut Ctx<'_>,
    schema: &ResourceSchema,
    draft: &Draft,
) -> Result<(), DomainError> {
    let owner = str_of(&draft.row, "id").unwrap_or_default().to_owned();
    for (name, links) in &draft.links {
        let Some(RelKind::ToMany(ToMany::Join {
            table,
            own,
            other,
            role_column,
        })) = schema.relationship(name).map(|r| r.kind)
        else {
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
