//! An in-memory [`Store`]: tables of [`Row`]s evaluated with the domain's own [`Cond`]s, so
//! the use cases run without a database.
//!
//! A transaction works on a copy of the tables and replaces them on commit; one dropped
//! without commit leaves nothing behind (a rollback). Tests run one use case at a time, so
//! the last commit simply wins. Unique columns are declared per table and answer
//! [`StoreError::Unique`] like a database index; [`MemoryStore::fail_commits`] makes the next
//! commits answer [`StoreError::Busy`], as a deadlock victim would.

use std::{
    cmp::Ordering,
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering as AtomicOrdering},
    },
};

use async_trait::async_trait;
use serde_json::Value;

use crate::{
    Row,
    error::StoreError,
    ports::{Session, Store},
    query::{CmpOp, Cond, ListQuery, SortKey},
};

#[derive(Debug, Clone, Default)]
struct Tables {
    rows: BTreeMap<String, Vec<Row>>,
    config_version: i64,
}

#[derive(Default)]
pub struct MemoryStore {
    state: Arc<Mutex<Tables>>,
    unique: Vec<(&'static str, &'static str)>,
    busy_commits: Arc<AtomicUsize>,
    commits: Arc<AtomicUsize>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Rejects a second row of `table` with the same non-null `column`.
    pub fn unique(mut self, table: &'static str, column: &'static str) -> Self {
        self.unique.push((table, column));
        self
    }

    /// The next `n` commits fail with [`StoreError::Busy`] (and roll back).
    pub fn fail_commits(&self, n: usize) {
        self.busy_commits.store(n, AtomicOrdering::SeqCst);
    }

    /// Commits that went through.
    pub fn commits(&self) -> usize {
        self.commits.load(AtomicOrdering::SeqCst)
    }

    /// The committed rows of `table`, in insertion order.
    pub fn rows(&self, table: &str) -> Vec<Row> {
        let state = self.state.lock().unwrap();
        state.rows.get(table).cloned().unwrap_or_default()
    }

    /// Writes a row directly (test fixtures).
    pub fn seed(&self, table: &str, row: Row) {
        let mut state = self.state.lock().unwrap();
        state.rows.entry(table.to_owned()).or_default().push(row);
    }

    pub fn config_version(&self) -> i64 {
        self.state.lock().unwrap().config_version
    }

    fn session(&self, autocommit: bool) -> Box<dyn Session> {
        let work = self.state.lock().unwrap().clone();
        Box::new(MemorySession {
            shared: Arc::clone(&self.state),
            work,
            unique: self.unique.clone(),
            autocommit,
            busy_commits: Arc::clone(&self.busy_commits),
            commits: Arc::clone(&self.commits),
        })
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn begin(&self) -> Result<Box<dyn Session>, StoreError> {
        Ok(self.session(false))
    }

    async fn read(&self) -> Result<Box<dyn Session>, StoreError> {
        Ok(self.session(true))
    }
}

struct MemorySession {
    shared: Arc<Mutex<Tables>>,
    work: Tables,
    unique: Vec<(&'static str, &'static str)>,
    autocommit: bool,
    busy_commits: Arc<AtomicUsize>,
    commits: Arc<AtomicUsize>,
}

impl MemorySession {
    fn table(&mut self, table: &str) -> &mut Vec<Row> {
        self.work.rows.entry(table.to_owned()).or_default()
    }

    fn select(&self, table: &str, cond: &Cond) -> Vec<Row> {
        let rows = self.work.rows.get(table).map(Vec::as_slice).unwrap_or(&[]);
        rows.iter()
            .filter(|row| matches(&self.work, cond, row))
            .cloned()
            .collect()
    }

    /// A unique column of `table` whose value `row` would share with another row.
    fn taken(&self, table: &str, row: &Row) -> Option<&'static str> {
        let rows = self.work.rows.get(table).map(Vec::as_slice).unwrap_or(&[]);
        self.unique
            .iter()
            .filter(|(t, _)| *t == table)
            .map(|(_, column)| *column)
            .find(|column| {
                let value = row.get(*column).filter(|v| !v.is_null());
                value.is_some()
                    && rows.iter().any(|other| {
                        other.get("id") != row.get("id") && other.get(*column) == value
                    })
            })
    }

    fn written(&mut self) {
        if self.autocommit {
            *self.shared.lock().unwrap() = self.work.clone();
        }
    }

    fn replace(&mut self, table: &str, row: Row) -> Result<(), StoreError> {
        if let Some(column) = self.taken(table, &row) {
            return Err(StoreError::Unique {
                column: column.into(),
            });
        }
        let id = row.get("id").cloned();
        let rows = self.table(table);
        let Some(slot) = rows.iter_mut().find(|r| r.get("id") == id.as_ref()) else {
            return Err(StoreError::Other(format!("no {table} row {id:?}")));
        };
        *slot = row;
        self.written();
        Ok(())
    }
}

#[async_trait]
impl Session for MemorySession {
    async fn list(&mut self, table: &str, query: &ListQuery) -> Result<Vec<Row>, StoreError> {
        let mut rows = self.select(table, &query.cond);
        rows.sort_by(|a, b| by_keys(&query.sort, a, b));
        Ok(rows
            .into_iter()
            .skip(query.offset as usize)
            .take(query.limit as usize)
            .collect())
    }

    async fn count(&mut self, table: &str, cond: &Cond) -> Result<u64, StoreError> {
        Ok(self.select(table, cond).len() as u64)
    }

    async fn insert(&mut self, table: &str, row: &Row) -> Result<(), StoreError> {
        if let Some(column) = self.taken(table, row) {
            return Err(StoreError::Unique {
                column: column.into(),
            });
        }
        self.table(table).push(row.clone());
        self.written();
        Ok(())
    }

    async fn update(&mut self, table: &str, row: &Row) -> Result<(), StoreError> {
        self.replace(table, row.clone())
    }

    async fn update_columns(
        &mut self,
        table: &str,
        id: &str,
        columns: &Row,
    ) -> Result<(), StoreError> {
        let current = self
            .select(table, &Cond::eq("id", id))
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::Other(format!("no {table} row {id}")))?;
        let mut row = current;
        row.extend(columns.clone());
        self.replace(table, row)
    }

    async fn bump_config_version(&mut self) -> Result<(), StoreError> {
        self.work.config_version += 1;
        self.written();
        Ok(())
    }

    async fn config_version(&mut self) -> Result<i64, StoreError> {
        Ok(self.shared.lock().unwrap().config_version)
    }

    async fn set_where(
        &mut self,
        table: &str,
        cond: &Cond,
        values: &Row,
    ) -> Result<u64, StoreError> {
        let targets = self.select(table, cond);
        for mut row in targets.iter().cloned() {
            for (column, value) in values.iter().filter(|(_, v)| !v.is_null()) {
                row.insert(column.clone(), value.clone());
            }
            self.replace(table, row)?;
        }
        Ok(targets.len() as u64)
    }

    async fn delete_where(&mut self, table: &str, cond: &Cond) -> Result<u64, StoreError> {
        let snapshot = self.work.clone();
        let rows = self.table(table);
        let before = rows.len();
        rows.retain(|row| !matches(&snapshot, cond, row));
        let gone = (before - rows.len()) as u64;
        self.written();
        Ok(gone)
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        let busy = self
            .busy_commits
            .fetch_update(AtomicOrdering::SeqCst, AtomicOrdering::SeqCst, |n| {
                n.checked_sub(1)
            })
            .is_ok();
        if busy {
            return Err(StoreError::Busy("deadlock victim".into()));
        }
        *self.shared.lock().unwrap() = self.work;
        self.commits.fetch_add(1, AtomicOrdering::SeqCst);
        Ok(())
    }
}

fn field<'r>(row: &'r Row, column: &str) -> &'r Value {
    row.get(column).unwrap_or(&Value::Null)
}

/// SQL's three-valued logic reduced to what the domain asks: `NULL` equals nothing.
fn matches(tables: &Tables, cond: &Cond, row: &Row) -> bool {
    match cond {
        Cond::True => true,
        Cond::All(all) => all.iter().all(|c| matches(tables, c, row)),
        Cond::Any(any) => any.iter().any(|c| matches(tables, c, row)),
        Cond::Not(inner) => !matches(tables, inner, row),
        Cond::Eq(column, value) => !value.is_null() && field(row, column) == value,
        Cond::In(column, values) => {
            let value = field(row, column);
            !value.is_null() && values.contains(value)
        }
        Cond::IsNull(column) => field(row, column).is_null(),
        Cond::NotNull(column) => !field(row, column).is_null(),
        Cond::Cmp(column, op, value) => {
            let value_here = field(row, column);
            if value_here.is_null() || value.is_null() {
                return false;
            }
            let order = compare(value_here, value);
            match op {
                CmpOp::Lt => order == Ordering::Less,
                CmpOp::Le => order != Ordering::Greater,
                CmpOp::Gt => order == Ordering::Greater,
                CmpOp::Ge => order != Ordering::Less,
                CmpOp::Ne => order != Ordering::Equal,
            }
        }
        Cond::Search(columns, text) => {
            let needle = text.to_lowercase();
            columns.iter().any(|c| {
                field(row, c)
                    .as_str()
                    .is_some_and(|s| s.to_lowercase().contains(&needle))
            })
        }
        Cond::StartsWith(column, prefix) => field(row, column)
            .as_str()
            .is_some_and(|s| s.starts_with(prefix.as_str())),
        Cond::InSelect {
            column,
            table,
            select,
            cond,
        } => {
            let value = field(row, column);
            !value.is_null()
                && tables
                    .rows
                    .get(table)
                    .into_iter()
                    .flatten()
                    .any(|other| matches(tables, cond, other) && field(other, select) == value)
        }
    }
}

/// Nulls first, then numbers, then strings, then the rest by their JSON text.
fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => a.to_string().cmp(&b.to_string()),
    }
}

fn by_keys(keys: &[SortKey], a: &Row, b: &Row) -> Ordering {
    keys.iter()
        .map(|key| {
            let order = compare(field(a, &key.column), field(b, &key.column));
            if key.descending {
                order.reverse()
            } else {
                order
            }
        })
        .find(|o| *o != Ordering::Equal)
        .unwrap_or(Ordering::Equal)
}
