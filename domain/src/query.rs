//! A small, storage-neutral query language: what to select, in which order, which page.
//! Column names are the domain's field names; the persistence adapter translates them.

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Lt,
    Le,
    Gt,
    Ge,
    Ne,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    True,
    All(Vec<Cond>),
    Any(Vec<Cond>),
    Not(Box<Cond>),
    Eq(String, Value),
    In(String, Vec<Value>),
    IsNull(String),
    NotNull(String),
    Cmp(String, CmpOp, Value),
    /// Case-insensitive substring match on any of the columns.
    Search(Vec<String>, String),
    /// Case-sensitive prefix match.
    StartsWith(String, String),
    /// `column IN (SELECT select FROM table WHERE cond)`.
    InSelect {
        column: String,
        table: String,
        select: String,
        cond: Box<Cond>,
    },
}

impl Cond {
    pub fn eq(column: &str, value: impl Into<Value>) -> Self {
        Self::Eq(column.to_owned(), value.into())
    }

    pub fn is_null(column: &str) -> Self {
        Self::IsNull(column.to_owned())
    }

    pub fn not_null(column: &str) -> Self {
        Self::NotNull(column.to_owned())
    }

    pub fn is_in(column: &str, values: Vec<Value>) -> Self {
        Self::In(column.to_owned(), values)
    }

    pub fn cmp(column: &str, op: CmpOp, value: impl Into<Value>) -> Self {
        Self::Cmp(column.to_owned(), op, value.into())
    }

    /// Conjunction that drops `True` operands.
    pub fn and(self, other: Cond) -> Cond {
        match (self, other) {
            (Cond::True, c) | (c, Cond::True) => c,
            (Cond::All(mut a), c) => {
                a.push(c);
                Cond::All(a)
            }
            (a, b) => Cond::All(vec![a, b]),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    pub column: String,
    pub descending: bool,
}

/// One page of a filtered, sorted collection.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    pub cond: Cond,
    pub sort: Vec<SortKey>,
    pub offset: u64,
    pub limit: u64,
}

impl ListQuery {
    /// Every matching row in id order (bounded by `limit`).
    pub fn all(cond: Cond, limit: u64) -> Self {
        Self {
            cond,
            sort: vec![SortKey {
                column: "id".into(),
                descending: false,
            }],
            offset: 0,
            limit,
        }
    }
}

/// A page of rows plus the total number of matches.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
}
