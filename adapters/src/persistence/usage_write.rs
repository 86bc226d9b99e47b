//! The usage writer's SQL: one batch in one transaction — its rollups upserted, its quota
//! subjects' monthly counts added, the request-log records the [`LogPolicy`] keeps inserted
//! in multi-row statements, and the batch's id stored so a retried batch is never counted
//! twice. Statements are written out directly (the same text for every full chunk, so the
//! driver prepares each once per connection).

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, SqliteTransactionMode, Statement,
    TransactionOptions, TransactionTrait, Value,
};
use tollgate_domain::proxy::{
    rollups::{self, BatchId, COUNT_COLUMNS, KEY_COLUMNS, LogPolicy},
    usage::{AppendError, Field, RECORD_COLUMNS, UsageRecord},
};

use super::session::store_error;

/// Rows per `INSERT`, measured with `bench/usage-writer.sh`. SQLite: 100 rows cost 7 µs of
/// CPU per record, 30 rows 8, 300 rows 8–9.5, 1,500 rows 9–10; short statements also let the
/// database thread give its core back to the proxy more often. PostgreSQL: 100-row statements
/// took ten times as long as 1,500-row ones (1,500 × 21 values stays under its 65,535 bound
/// parameters).
fn rows_per_insert(backend: DbBackend) -> usize {
    match backend {
        DbBackend::Postgres => 1_500,
        _ => 100,
    }
}

/// Rows per transaction. A commit writes every page it changed, and with many subjects in an
/// index (1,000 keys in the old key index, or many users in the user index) that is one page
/// per subject however few rows each got: with the key index, SQLite spent 24 µs of CPU per
/// record at 1,500 rows per commit and 15 µs at 7,500 (`bench/usage-writer.sh`). 7,500 rows
/// hold SQLite's write lock well under a tenth of a second, so admin writes never wait long.
const ROWS_PER_COMMIT: usize = 7_500;

fn value(field: Field<'_>) -> Value {
    match field {
        Field::Text(text) => Value::from(text.to_owned()),
        Field::OptText(text) => Value::from(text.map(str::to_owned)),
        Field::Int(n) => Value::from(n),
        Field::OptInt(n) => Value::from(n),
        Field::Bool(b) => Value::from(b),
    }
}

/// `(?, ?, …), (?, ?, …)` for `rows` rows of `columns` values, numbered from `first` on
/// PostgreSQL.
fn placeholders(backend: DbBackend, rows: usize, columns: usize, sql: &mut String) {
    let mut n = 0;
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for column in 0..columns {
            if column > 0 {
                sql.push_str(", ");
            }
            n += 1;
            match backend {
                DbBackend::Postgres => {
                    sql.push('$');
                    sql.push_str(&n.to_string());
                }
                _ => sql.push('?'),
            }
        }
        sql.push(')');
    }
}

/// `INSERT INTO usage_records (…) VALUES (…), …` for `rows` rows. Written out directly: the
/// statement is the same for every full chunk, so the driver prepares it once per connection
/// and reuses it, and building an expression tree per value cost more than the insert.
fn insert_sql(backend: DbBackend, rows: usize) -> String {
    let mut sql = String::with_capacity(64 + rows * RECORD_COLUMNS.len() * 5);
    sql.push_str("INSERT INTO usage_records (");
    sql.push_str(&RECORD_COLUMNS.join(", "));
    sql.push_str(") VALUES ");
    placeholders(backend, rows, RECORD_COLUMNS.len(), &mut sql);
    sql
}

/// The rollup upsert for `rows` rows.
fn rollup_sql(backend: DbBackend, rows: usize) -> String {
    let mut sql = String::from("INSERT INTO usage_rollups (");
    sql.push_str(&KEY_COLUMNS.join(", "));
    sql.push_str(", ");
    sql.push_str(&COUNT_COLUMNS.join(", "));
    sql.push_str(") VALUES ");
    placeholders(
        backend,
        rows,
        KEY_COLUMNS.len() + COUNT_COLUMNS.len(),
        &mut sql,
    );
    sql.push_str(" ON CONFLICT (");
    sql.push_str(&KEY_COLUMNS.join(", "));
    sql.push_str(") DO UPDATE SET ");
    let sets: Vec<String> = COUNT_COLUMNS
        .iter()
        .map(|c| format!("{c} = usage_rollups.{c} + excluded.{c}"))
        .collect();
    sql.push_str(&sets.join(", "));
    sql
}

fn quota_sql(backend: DbBackend, rows: usize) -> String {
    let mut sql =
        String::from("INSERT INTO usage_quota_counts (subject, period_start, counted) VALUES ");
    placeholders(backend, rows, 3, &mut sql);
    sql.push_str(
        " ON CONFLICT (subject, period_start) DO UPDATE SET counted = usage_quota_counts.counted + excluded.counted",
    );
    sql
}

/// `?` or `$n`.
pub(super) fn arg(backend: DbBackend, n: usize) -> String {
    match backend {
        DbBackend::Postgres => format!("${n}"),
        _ => "?".to_owned(),
    }
}

/// Appends `records` in commits of [`ROWS_PER_COMMIT`]; see [`UsageLog::append`].
pub(super) async fn append(
    db: &DatabaseConnection,
    policy: LogPolicy,
    records: &[UsageRecord],
) -> Result<(), AppendError> {
    let backend = db.get_database_backend();
    let mut written = 0;
    for commit in records.chunks(ROWS_PER_COMMIT) {
        apply(db, backend, policy, commit)
            .await
            .map_err(|e| AppendError {
                written,
                source: store_error(e),
            })?;
        written += commit.len();
    }
    Ok(())
}

/// One batch in one transaction.
async fn apply(
    db: &DatabaseConnection,
    backend: DbBackend,
    policy: LogPolicy,
    mut batch: &[UsageRecord],
) -> Result<(), DbErr> {
    let options = TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    };
    let tx = db.begin_with_options(options).await?;
    let Some(id) = BatchId::of(batch) else {
        return tx.commit().await;
    };
    let applied = tx
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "SELECT last_id, records FROM usage_batches WHERE id = {}",
                arg(backend, 1)
            ),
            [Value::from(id.first.clone())],
        ))
        .await?;
    if let Some(row) = applied {
        let earlier = BatchId {
            first: id.first.clone(),
            last: row.try_get("", "last_id")?,
            records: usize::try_from(row.try_get::<i64>("", "records")?).unwrap_or(usize::MAX),
        };
        if earlier.is_prefix_of(batch) {
            // Stored before (its commit's answer was lost): only what follows is new.
            batch = &batch[earlier.records..];
            if batch.is_empty() {
                return tx.commit().await;
            }
        }
    }
    let id = BatchId::of(batch).unwrap_or(id);
    let aggregate = rollups::aggregate(batch);
    let per_row = KEY_COLUMNS.len() + COUNT_COLUMNS.len();
    for chunk in aggregate.rollups.chunks(rows_per_insert(backend)) {
        let mut values = Vec::with_capacity(chunk.len() * per_row);
        for (key, counts) in chunk {
            values.extend([
                Value::from(key.span.as_str()),
                Value::from(key.bucket),
                Value::from(key.api_key_id.clone()),
                Value::from(key.user_id.clone()),
                Value::from(key.group_id.clone()),
                Value::from(key.route_id.clone()),
                Value::from(key.status_class.clone()),
            ]);
            values.extend(counts.values().map(Value::from));
        }
        tx.execute_raw(Statement::from_sql_and_values(
            backend,
            rollup_sql(backend, chunk.len()),
            values,
        ))
        .await?;
    }
    for chunk in aggregate.quotas.chunks(rows_per_insert(backend)) {
        let mut values = Vec::with_capacity(chunk.len() * 3);
        for count in chunk {
            values.extend([
                Value::from(count.subject.clone()),
                Value::from(count.period_start),
                Value::from(count.counted),
            ]);
        }
        tx.execute_raw(Statement::from_sql_and_values(
            backend,
            quota_sql(backend, chunk.len()),
            values,
        ))
        .await?;
    }
    let kept: Vec<&UsageRecord> = batch.iter().filter(|r| policy.keeps(r)).collect();
    for chunk in kept.chunks(rows_per_insert(backend)) {
        let mut values = Vec::with_capacity(chunk.len() * RECORD_COLUMNS.len());
        for record in chunk {
            values.extend(record.fields().into_iter().map(value));
        }
        tx.execute_raw(Statement::from_sql_and_values(
            backend,
            insert_sql(backend, chunk.len()),
            values,
        ))
        .await?;
    }
    let applied_at = batch.iter().map(|r| r.created_at).max().unwrap_or(0);
    tx.execute_raw(Statement::from_sql_and_values(
        backend,
        format!(
            "INSERT INTO usage_batches (id, last_id, records, applied_at) VALUES ({}, {}, {}, {}) \
             ON CONFLICT (id) DO UPDATE SET last_id = excluded.last_id, records = excluded.records, \
             applied_at = excluded.applied_at",
            arg(backend, 1),
            arg(backend, 2),
            arg(backend, 3),
            arg(backend, 4)
        ),
        [
            Value::from(id.first),
            Value::from(id.last),
            Value::from(id.records as i64),
            Value::from(applied_at),
        ],
    ))
    .await?;
    tx.commit().await
}
