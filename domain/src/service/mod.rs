//! The generic use cases over any resource: list, read, create, update, delete. Resource
//! modules add their own rules through [`ResourceRules`] hooks; the flow and the checks
//! every type shares (unknown, read-only, type, range, required, related existence,
//! outbox event in the same transaction) live here once.

mod attributes;
mod context;
mod create;
mod delete;
mod input;
mod read;
mod relationships;
mod rules;
#[cfg(test)]
pub(crate) mod tests;
mod transaction;
mod update;

use serde_json::{Map, Value};

use crate::{Actor, Row, Timestamp, ports::Ports, query::Cond, schema::ResourceSchema};

pub use attributes::changed_attributes;
pub use context::{Ctx, event_name};
pub use input::{Draft, Identifier, Link, RelInput, WriteInput};
pub use read::{load, load_for_update};
pub use rules::{Access, Op, ResourceRules, admin_only, admin_writes};
pub use transaction::{WRITE_ATTEMPTS, retrying};

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
}

fn str_of<'r>(row: &'r Row, column: &str) -> Option<&'r str> {
    row.get(column).and_then(Value::as_str)
}
