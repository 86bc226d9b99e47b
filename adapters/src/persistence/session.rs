//! One [`Session`]: a transaction or an autocommit connection, with generic table access.

use std::sync::Arc;

use async_trait::async_trait;
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, ConnectionTrait, DatabaseConnection,
    DatabaseTransaction, DbErr, EntityTrait, IdenStatic, IntoActiveModel, Iterable, Order,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, RuntimeErr, SqlErr, TryIntoModel,
    sea_query::{Alias, Expr},
};
use sea_orm::{DbBackend, sea_query::LockBehavior, sea_query::LockType};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use tokio::sync::Notify;
use tollgate_domain::{
    Row,
    error::StoreError,
    ports::Session,
    query::{Cond, ListQuery},
};

use super::{
    condition::{condition, value as value_of},
    tables::{self, dispatch},
};

/// Tables whose live rows `live_counts` keeps: what a list reads instead of counting. It must
/// be the list migration m0002 installed triggers for (`migration::LIVE_COUNTED_TABLES`; the
/// migration's list is frozen with it, and a test in `app` keeps the two equal).
pub const LIVE_COUNTED_TABLES: [&str; 7] = [
    "users",
    "plans",
    "api_keys",
    "routes",
    "upstreams",
    "groups",
    "webhooks",
];

enum Conn {
    Tx(DatabaseTransaction),
    Plain(DatabaseConnection),
}

pub struct SeaSession {
    conn: Conn,
    /// Woken after a commit that wrote to an outbox table.
    signal: Option<Arc<Notify>>,
    queued: bool,
    /// Woken after a commit that wrote a change event (the proxy reloads its configuration).
    change_signal: Option<Arc<Notify>>,
    changed: bool,
}

/// Tables whose new rows are work for the webhook dispatcher.
const OUTBOX: [&str; 2] = ["events", "webhook_jobs"];

impl SeaSession {
    pub fn transaction(tx: DatabaseTransaction) -> Self {
        Self {
            conn: Conn::Tx(tx),
            signal: None,
            queued: false,
            change_signal: None,
            changed: false,
        }
    }

    pub fn autocommit(db: DatabaseConnection) -> Self {
        Self {
            conn: Conn::Plain(db),
            signal: None,
            queued: false,
            change_signal: None,
            changed: false,
        }
    }

    pub fn with_signal(mut self, signal: Arc<Notify>) -> Self {
        self.signal = Some(signal);
        self
    }

    pub fn with_change_signal(mut self, signal: Arc<Notify>) -> Self {
        self.change_signal = Some(signal);
        self
    }
}

/// Runs `$body` with `$c` bound to whichever connection the session holds.
macro_rules! with_conn {
    ($self:ident, $c:ident => $body:expr) => {
        match &$self.conn {
            Conn::Tx($c) => $body,
            Conn::Plain($c) => $body,
        }
    };
}

/// Maps a database error; unique-index violations name the attribute (`uq_<table>__<column>`).
pub fn store_error(err: DbErr) -> StoreError {
    if let Some(SqlErr::UniqueConstraintViolation(message)) = err.sql_err() {
        return StoreError::Unique {
            column: unique_column(&message).unwrap_or_default(),
        };
    }
    match classify(&err) {
        Some(Fault::Busy) => return StoreError::Busy(err.to_string()),
        Some(Fault::Unavailable) => return StoreError::Unavailable(err.to_string()),
        None => {}
    }
    match err {
        DbErr::ConnectionAcquire(e) => StoreError::Unavailable(e.to_string()),
        DbErr::Conn(e) => StoreError::Unavailable(e.to_string()),
        other => StoreError::Other(other.to_string()),
    }
}

/// What kind of transient failure a database error is, if it is one.
enum Fault {
    /// The database aborted this transaction to resolve a conflict: run it again.
    Busy,
    /// The database is not there (connection lost, shutting down, pool exhausted).
    Unavailable,
}

fn classify(err: &DbErr) -> Option<Fault> {
    let (DbErr::Exec(RuntimeErr::SqlxError(e))
    | DbErr::Query(RuntimeErr::SqlxError(e))
    | DbErr::Conn(RuntimeErr::SqlxError(e))) = err
    else {
        return matches!(err, DbErr::ConnectionAcquire(_)).then_some(Fault::Unavailable);
    };
    match e.as_ref() {
        sea_orm::sqlx::Error::Database(db) => {
            let code = db.code()?;
            busy_code(&code)
                .then_some(Fault::Busy)
                .or_else(|| unavailable_code(&code).then_some(Fault::Unavailable))
        }
        sea_orm::sqlx::Error::Io(_)
        | sea_orm::sqlx::Error::Tls(_)
        | sea_orm::sqlx::Error::PoolTimedOut
        | sea_orm::sqlx::Error::PoolClosed
        | sea_orm::sqlx::Error::WorkerCrashed => Some(Fault::Unavailable),
        _ => None,
    }
}

/// PostgreSQL: serialization failure, deadlock, lock not available. SQLite: `SQLITE_BUSY`
/// and `SQLITE_LOCKED` with their extended codes (the primary code is the low byte).
fn busy_code(code: &str) -> bool {
    if matches!(code, "40001" | "40P01" | "55P03") {
        return true;
    }
    // SQLite's codes are decimal numbers of at most four digits; SQLSTATEs have five.
    code.len() <= 4 && code.parse::<u32>().is_ok_and(|n| matches!(n & 0xff, 5 | 6))
}

/// PostgreSQL: connection exceptions (08…), shutting down or not accepting connections (57P…),
/// too many connections (53300).
fn unavailable_code(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("57P") || code == "53300"
}

fn unique_column(message: &str) -> Option<String> {
    let start = message.find("uq_")?;
    let name: String = message[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    name.split_once("__").map(|(_, column)| column.to_owned())
}

fn row_of<M: Serialize>(model: M) -> Result<Row, StoreError> {
    match serde_json::to_value(model) {
        Ok(Value::Object(row)) => Ok(row),
        Ok(_) => Err(StoreError::Other("model is not an object".into())),
        Err(e) => Err(StoreError::Other(e.to_string())),
    }
}

/// The active model of a complete row, every column `Set` (missing optional columns → NULL).
fn active_model<E>(row: &Row) -> Result<E::ActiveModel, StoreError>
where
    E: EntityTrait,
    E::Model: DeserializeOwned + IntoActiveModel<E::ActiveModel>,
    E::ActiveModel: ActiveModelTrait<Entity = E>,
{
    let mut full = row.clone();
    for column in E::Column::iter() {
        full.entry(column.as_str().to_owned())
            .or_insert(Value::Null);
    }
    let model: E::Model = serde_json::from_value(Value::Object(full)).map_err(|e| {
        StoreError::Other(format!(
            "row does not fit {}: {e}",
            E::default().table_name()
        ))
    })?;
    Ok(model.into_active_model().reset_all())
}

async fn list<E>(db: &impl ConnectionTrait, query: &ListQuery) -> Result<Vec<Row>, StoreError>
where
    E: EntityTrait,
    E::Model: Serialize,
{
    select::<E>(db, query, None).await
}

/// PostgreSQL row locks; SQLite transactions are `IMMEDIATE` (the whole database is locked
/// for writing), so there a lock is a plain read.
async fn lock<E>(
    db: &impl ConnectionTrait,
    query: &ListQuery,
    skip_locked: bool,
) -> Result<Vec<Row>, StoreError>
where
    E: EntityTrait,
    E::Model: Serialize,
{
    let lock = (db.get_database_backend() == DbBackend::Postgres).then_some(skip_locked);
    select::<E>(db, query, lock).await
}

async fn select<E>(
    db: &impl ConnectionTrait,
    query: &ListQuery,
    lock: Option<bool>,
) -> Result<Vec<Row>, StoreError>
where
    E: EntityTrait,
    E::Model: Serialize,
{
    let mut select = E::find().filter(condition(&query.cond)?);
    match lock {
        Some(true) => {
            select = select.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
        }
        Some(false) => select = select.lock(LockType::Update),
        None => {}
    }
    for key in &query.sort {
        let order = if key.descending {
            Order::Desc
        } else {
            Order::Asc
        };
        select = select.order_by(Expr::col(Alias::new(key.column.as_str())), order);
    }
    let models = select
        .limit(query.limit)
        .offset(query.offset)
        .all(db)
        .await
        .map_err(store_error)?;
    models.into_iter().map(row_of).collect()
}

async fn count<E>(db: &impl ConnectionTrait, cond: &Cond) -> Result<u64, StoreError>
where
    E: EntityTrait,
    E::Model: Sync,
{
    E::find()
        .filter(condition(cond)?)
        .count(db)
        .await
        .map_err(store_error)
}

async fn insert<E>(db: &impl ConnectionTrait, row: &Row) -> Result<(), StoreError>
where
    E: EntityTrait,
    E::Model: DeserializeOwned + IntoActiveModel<E::ActiveModel>,
    E::ActiveModel: ActiveModelTrait<Entity = E> + ActiveModelBehavior + Send,
{
    E::insert(active_model::<E>(row)?)
        .exec_without_returning(db)
        .await
        .map_err(store_error)?;
    Ok(())
}

async fn update<E>(db: &impl ConnectionTrait, row: &Row) -> Result<(), StoreError>
where
    E: EntityTrait,
    E::Model: DeserializeOwned + IntoActiveModel<E::ActiveModel>,
    E::ActiveModel: ActiveModelTrait<Entity = E> + ActiveModelBehavior + Send,
{
    E::update(active_model::<E>(row)?)
        .exec(db)
        .await
        .map_err(store_error)?;
    Ok(())
}

/// An `UPDATE … SET <these columns> WHERE id = ?`: the active model has only them `Set`.
async fn update_columns<E>(
    db: &impl ConnectionTrait,
    id: &str,
    columns: &Row,
) -> Result<(), StoreError>
where
    E: EntityTrait,
    E::Model: DeserializeOwned + Serialize + IntoActiveModel<E::ActiveModel>,
    E::ActiveModel:
        ActiveModelTrait<Entity = E> + ActiveModelBehavior + TryIntoModel<E::Model> + Send,
{
    let mut set = columns.clone();
    set.insert("id".into(), Value::String(id.to_owned()));
    let model = E::ActiveModel::from_json(Value::Object(set)).map_err(|e| {
        StoreError::Other(format!(
            "columns do not fit {}: {e}",
            E::default().table_name()
        ))
    })?;
    E::update(model).exec(db).await.map_err(store_error)?;
    Ok(())
}

/// The counter row of [`CONFIG_VERSION`]; migration m0007 creates it with 0.
const CONFIG_VERSION: &str = "config_version";

async fn set_where<E>(
    db: &impl ConnectionTrait,
    cond: &Cond,
    values: &Row,
) -> Result<u64, StoreError>
where
    E: EntityTrait,
{
    let mut update = E::update_many().filter(condition(cond)?);
    for (column, value) in values {
        update = update.col_expr(Alias::new(column.as_str()), Expr::val(value_of(value)?));
    }
    Ok(update.exec(db).await.map_err(store_error)?.rows_affected)
}

async fn delete_where<E>(db: &impl ConnectionTrait, cond: &Cond) -> Result<u64, StoreError>
where
    E: EntityTrait,
{
    Ok(E::delete_many()
        .filter(condition(cond)?)
        .exec(db)
        .await
        .map_err(store_error)?
        .rows_affected)
}

#[async_trait]
impl Session for SeaSession {
    async fn list(&mut self, table: &str, query: &ListQuery) -> Result<Vec<Row>, StoreError> {
        with_conn!(self, c => dispatch!(table, list(c, query)))
    }

    /// "All live rows" comes from the trigger-maintained `live_counts` (O(1)); anything
    /// narrower is counted.
    async fn count(&mut self, table: &str, cond: &Cond) -> Result<u64, StoreError> {
        if matches!(cond, Cond::IsNull(c) if c == "deleted_at")
            && LIVE_COUNTED_TABLES.contains(&table)
        {
            let query = ListQuery {
                cond: Cond::eq("id", table),
                sort: Vec::new(),
                offset: 0,
                limit: 1,
            };
            let rows = with_conn!(self, c => list::<tables::live_counts::Entity>(c, &query).await)?;
            if let Some(live) = rows
                .first()
                .and_then(|r| r.get("live"))
                .and_then(Value::as_i64)
            {
                return Ok(live.max(0) as u64);
            }
        }
        with_conn!(self, c => dispatch!(table, count(c, cond)))
    }

    async fn insert(&mut self, table: &str, row: &Row) -> Result<(), StoreError> {
        with_conn!(self, c => dispatch!(table, insert(c, row)))?;
        self.queued |= OUTBOX.contains(&table);
        self.changed |= table == "events";
        Ok(())
    }

    async fn update(&mut self, table: &str, row: &Row) -> Result<(), StoreError> {
        with_conn!(self, c => dispatch!(table, update(c, row)))
    }

    async fn update_columns(
        &mut self,
        table: &str,
        id: &str,
        columns: &Row,
    ) -> Result<(), StoreError> {
        with_conn!(self, c => dispatch!(table, update_columns(c, id, columns)))
    }

    async fn bump_config_version(&mut self) -> Result<(), StoreError> {
        let sql = format!("UPDATE counters SET value = value + 1 WHERE id = '{CONFIG_VERSION}'");
        let result =
            with_conn!(self, c => c.execute_unprepared(&sql).await).map_err(store_error)?;
        if result.rows_affected() != 1 {
            return Err(StoreError::Other(
                "the config_version counter is missing".into(),
            ));
        }
        Ok(())
    }

    async fn config_version(&mut self) -> Result<i64, StoreError> {
        let query = ListQuery {
            cond: Cond::eq("id", CONFIG_VERSION),
            sort: Vec::new(),
            offset: 0,
            limit: 1,
        };
        let rows = with_conn!(self, c => list::<tables::counters::Entity>(c, &query).await)?;
        Ok(rows
            .first()
            .and_then(|r| r.get("value"))
            .and_then(Value::as_i64)
            .unwrap_or(0))
    }

    async fn set_where(
        &mut self,
        table: &str,
        cond: &Cond,
        values: &Row,
    ) -> Result<u64, StoreError> {
        with_conn!(self, c => dispatch!(table, set_where(c, cond, values)))
    }

    async fn delete_where(&mut self, table: &str, cond: &Cond) -> Result<u64, StoreError> {
        with_conn!(self, c => dispatch!(table, delete_where(c, cond)))
    }

    async fn lock(
        &mut self,
        table: &str,
        query: &ListQuery,
        skip_locked: bool,
    ) -> Result<Vec<Row>, StoreError> {
        with_conn!(self, c => dispatch!(table, lock(c, query, skip_locked)))
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        match self.conn {
            Conn::Tx(tx) => tx.commit().await.map_err(store_error)?,
            Conn::Plain(_) => {}
        }
        if self.queued
            && let Some(signal) = &self.signal
        {
            signal.notify_one();
        }
        if self.changed
            && let Some(signal) = &self.change_signal
        {
            signal.notify_one();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::unique_column;

    #[test]
    fn names_the_column_of_a_unique_index() {
        assert_eq!(
            unique_column("duplicate key value violates unique constraint \"uq_users__email\"")
                .as_deref(),
            Some("email")
        );
        assert_eq!(
            unique_column("UNIQUE constraint failed: index 'uq_plans__name'").as_deref(),
            Some("name")
        );
        assert_eq!(unique_column("UNIQUE constraint failed: users.id"), None);
    }
}
