//! The shape of a write: what the client asked for, and the row being built from it.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::{
    Problem, Row,
    schema::{AttrSpec, coerce},
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
    pub(super) fn new(row: Row) -> Self {
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

    /// Takes a settable attribute's value from the request: coerced into the row (or kept
    /// aside when write-only), or a problem.
    pub(super) fn accept(&mut self, attr: &AttrSpec, name: &str, value: &Value) {
        match coerce(attr, value) {
            Ok(v) => {
                self.given.push(name.to_owned());
                if attr.write_only {
                    self.write_only.insert(name.to_owned(), v);
                } else {
                    self.row.insert(name.to_owned(), v);
                }
            }
            Err(detail) => self.problems.push(Problem::invalid_attr(name, detail)),
        }
    }

    pub fn was_given(&self, attribute: &str) -> bool {
        self.given.iter().any(|g| g == attribute)
    }
}
