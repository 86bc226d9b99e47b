//! Stored secrets as a whole: the startup check that the vault key is the one that sealed
//! them, and the sealing of plaintext webhook secrets left by an older version.
//!
//! Both run at startup, where the key is known: a migration has no key (it may live in the
//! environment or a file), so sealing cannot be a migration.

use serde_json::{Value, json};

use crate::{
    Row,
    error::StoreError,
    ports::{Store, Vault},
    query::{Cond, ListQuery, SortKey},
    webhooks,
};

const PLAINTEXT_PREFIX: &str = "whsec_";

/// Seals every plaintext `secret`/`previous_secret` of the `webhooks` table (deleted rows
/// included); returns how many values it sealed. Each write is conditional on the value
/// still being that plaintext, so a rotation, or another node sealing at the same time, is
/// never overwritten.
pub async fn seal_plaintext_secrets(
    store: &dyn Store,
    vault: &dyn Vault,
) -> Result<u64, StoreError> {
    const COLUMNS: [&str; 2] = ["secret", "previous_secret"];
    let mut tx = store.begin().await?;
    let any_plain = Cond::Any(
        COLUMNS
            .iter()
            .map(|c| Cond::StartsWith((*c).into(), PLAINTEXT_PREFIX.into()))
            .collect(),
    );
    let rows = tx
        .list("webhooks", &ListQuery::all(any_plain, i64::MAX as u64))
        .await?;
    let mut sealed = 0;
    for row in &rows {
        for column in COLUMNS {
            let Some(plain) = row.get(column).and_then(Value::as_str) else {
                continue;
            };
            if !webhooks::is_plaintext(plain) {
                continue;
            }
            let unchanged = Cond::All(vec![
                Cond::Eq("id".into(), row.get("id").cloned().unwrap_or(Value::Null)),
                Cond::eq(column, plain),
            ]);
            let mut values = Row::new();
            values.insert(column.into(), json!(vault.seal(plain)?));
            sealed += tx.set_where("webhooks", &unchanged, &values).await?;
        }
    }
    tx.commit().await?;
    Ok(sealed)
}

/// The newest row of `table` matching `cond`.
async fn newest(
    store: &dyn Store,
    table: &str,
    cond: Cond,
    column: &str,
) -> Result<Option<Row>, StoreError> {
    let query = ListQuery {
        cond,
        sort: vec![SortKey {
            column: column.into(),
            descending: true,
        }],
        offset: 0,
        limit: 1,
    };
    Ok(store
        .read()
        .await?
        .list(table, &query)
        .await?
        .into_iter()
        .next())
}

/// Whether `vault` opens what the store holds sealed: the newest live upstream credential,
/// group credential and webhook secret are tried. `Some(what)` names the first that does not
/// open, i.e. the key is not the one they were sealed with; `None` when all open (or nothing
/// is sealed yet). A process with another key would forward without credentials and fail
/// every delivery, so the caller refuses to start.
pub async fn key_mismatch(
    store: &dyn Store,
    vault: &dyn Vault,
) -> Result<Option<&'static str>, StoreError> {
    let candidates = [
        (
            "an upstream's auth_value",
            "upstreams",
            Cond::is_null("deleted_at").and(Cond::not_null("auth_value_enc")),
            "updated_at",
            "auth_value_enc",
        ),
        (
            "a group credential",
            "upstream_credentials",
            Cond::True,
            "created_at",
            "value_enc",
        ),
        (
            "a webhook secret",
            "webhooks",
            Cond::is_null("deleted_at").and(Cond::Not(Box::new(Cond::StartsWith(
                "secret".into(),
                PLAINTEXT_PREFIX.into(),
            )))),
            "updated_at",
            "secret",
        ),
    ];
    for (what, table, cond, order, column) in candidates {
        let Some(row) = newest(store, table, cond, order).await? else {
            continue;
        };
        let sealed = row.get(column).and_then(Value::as_str).unwrap_or_default();
        if !sealed.is_empty() && vault.open(sealed).is_err() {
            return Ok(Some(what));
        }
    }
    Ok(None)
}
