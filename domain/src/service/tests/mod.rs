//! Unit tests of the generic use cases on an in-memory store: a small `notes` type exercises
//! every shared rule (defaults, validation, read-only and admin-only members, linkage, related
//! existence, visibility, soft delete, conflicts, events, retries); `users` are the real type.

mod create;
mod delete;
pub mod fakes;
pub mod memory_store;
mod relationships;
mod update;
mod visibility;

use async_trait::async_trait;
use serde_json::{Value, json};

use self::{fakes::World, memory_store::MemoryStore};
use super::{Access, Identifier, Op, RelInput, ResourceRules, ResourceService, WriteInput};
use crate::{
    Actor, AuthMethod, DomainError, Role, Row,
    query::Cond,
    resources::users::{self, Users},
    schema::{AttrSpec, Default, OnCreate, OnUpdate, RelSpec, ResourceSchema, ToMany},
};

pub static NOTES: ResourceSchema = ResourceSchema {
    type_name: "notes",
    path: "notes",
    id_prefix: "not_",
    soft_delete: true,
    attributes: &[
        AttrSpec::text("title", 1, 20).required(),
        AttrSpec::int("stars", 0, 5).default(Default::Int(0)),
        AttrSpec::text("code", 1, 10).nullable(),
        AttrSpec::boolean("pinned")
            .default(Default::Bool(false))
            .admin_only(),
        AttrSpec::text("origin", 1, 20).nullable().create_only(),
    ],
    relationships: &[
        RelSpec::to_one("owner", "users", "owner_id")
            .writable(OnCreate::Required, OnUpdate::AdminOnly),
        RelSpec::to_many(
            "members",
            "users",
            ToMany::Join {
                table: "note_members",
                own: "note_id",
                other: "user_id",
                role_column: Some("role"),
            },
        )
        .writable(OnCreate::Optional, OnUpdate::Yes),
    ],
    sorts: &["title"],
    filters: &[],
    search: &["title"],
};

/// Everyone may work on notes; a `user` sees only the notes they own. A pinned note cannot be
/// deleted.
pub struct Notes;

#[async_trait]
impl ResourceRules for Notes {
    fn schema(&self) -> &'static ResourceSchema {
        &NOTES
    }

    fn access(&self, _actor: &Actor, _op: Op) -> Access {
        Access::Allow
    }

    fn visibility(&self, actor: &Actor) -> Cond {
        users::own_only(actor, "owner_id")
    }

    async fn before_delete(
        &self,
        _ctx: &mut super::Ctx<'_>,
        row: &mut Row,
    ) -> Result<(), DomainError> {
        if row.get("pinned") == Some(&json!(true)) {
            return Err(DomainError::ResourceInUse(
                "a pinned note cannot be deleted".into(),
            ));
        }
        Ok(())
    }
}

pub fn registry(type_name: &str) -> Option<&'static dyn ResourceRules> {
    match type_name {
        "notes" => Some(&Notes),
        "users" => Some(&Users),
        _ => None,
    }
}

/// A valid id of the `users` type, distinct per `n`.
pub fn user_id(n: u64) -> String {
    format!(
        "usr_{}",
        ulid::Ulid::from_parts(1_000_000 + n, u128::from(n))
    )
}

pub fn admin() -> Actor {
    Actor {
        user_id: Some(user_id(0)),
        role: Role::Admin,
        method: Some(AuthMethod::Session),
        api_key_id: None,
        session_id: None,
        request_id: None,
    }
}

pub fn user(n: u64) -> Actor {
    Actor {
        user_id: Some(user_id(n)),
        role: Role::User,
        ..admin()
    }
}

/// A store holding the admin (0) and users 1 to 3.
pub fn world() -> (World, ResourceService) {
    world_with(MemoryStore::new().unique("notes", "code"))
}

pub fn world_with(store: MemoryStore) -> (World, ResourceService) {
    for n in 0..=3 {
        let mut row = Row::new();
        row.insert("id".into(), json!(user_id(n)));
        row.insert("email".into(), json!(format!("u{n}@example.com")));
        row.insert("name".into(), json!(format!("User {n}")));
        row.insert("role".into(), json!(if n == 0 { "admin" } else { "user" }));
        row.insert("status".into(), json!("active"));
        row.insert("password_hash".into(), Value::Null);
        row.insert("created_at".into(), json!(0));
        row.insert("updated_at".into(), json!(0));
        row.insert("deleted_at".into(), Value::Null);
        store.seed("users", row);
    }
    let world = World::new(store);
    let service = ResourceService::new(world.ports.clone());
    (world, service)
}

/// A write with these attributes (in the object's order) and relationships.
pub fn write(attributes: Value, relationships: Vec<(&str, RelInput)>) -> WriteInput {
    WriteInput {
        attributes: attributes
            .as_object()
            .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
        relationships: relationships
            .into_iter()
            .map(|(name, rel)| (name.to_owned(), rel))
            .collect(),
    }
}

pub fn to(type_name: &str, id: &str) -> Identifier {
    Identifier {
        type_name: type_name.into(),
        id: id.into(),
        meta: None,
    }
}

pub fn owner(n: u64) -> (&'static str, RelInput) {
    ("owner", RelInput::One(Some(to("users", &user_id(n)))))
}

/// Creates a note of user `n` as the admin; returns its id.
pub async fn note(service: &ResourceService, title: &str, n: u64) -> String {
    let written = service
        .create(
            &admin(),
            &Notes,
            write(json!({"title": title}), vec![owner(n)]),
            &registry,
        )
        .await
        .unwrap();
    text(&written.row, "id").to_owned()
}

pub fn text<'r>(row: &'r Row, column: &str) -> &'r str {
    row.get(column).and_then(Value::as_str).unwrap_or_default()
}

/// The types of the committed events, oldest first.
pub fn event_types(world: &World) -> Vec<String> {
    world
        .store
        .rows("events")
        .iter()
        .map(|e| text(e, "type").to_owned())
        .collect()
}

/// Runs a future to completion on this thread (the use cases only await the store).
pub fn run<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}
