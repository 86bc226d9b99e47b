//! actix-session's [`SessionStore`] over the `sessions` table: server-side state, so logout
//! and "sign out everywhere" really end sessions. Only the SHA-256 of the cookie key is stored.

use std::{collections::HashMap, sync::Arc};

use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use actix_web::cookie::time::Duration;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use tollgate_domain::{
    Row,
    ports::{Clock, Store},
    query::Cond,
    sessions,
};

use crate::security::{random_bytes, sha256_hex};

type SessionState = HashMap<String, String>;

#[derive(Clone)]
pub struct DbSessionStore {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
}

impl DbSessionStore {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }
}

fn other(err: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("session store: {err}")
}

/// 32 random bytes, base64url without padding: 43 characters.
fn new_key() -> String {
    let mut bytes = [0u8; 32];
    random_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A state value as actix-session stores it: a JSON-encoded string.
fn text(state: &SessionState, name: &str) -> Option<String> {
    state
        .get(name)
        .and_then(|v| serde_json::from_str::<String>(v).ok())
}

fn state_json(state: &SessionState) -> Value {
    Value::Object(state.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
}

fn state_of(row: &Row) -> SessionState {
    row.get("state")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

impl DbSessionStore {
    /// Writes the session named by the state's `sid` under a fresh key (new or rotated).
    async fn store_under_new_key(&self, state: SessionState) -> anyhow::Result<SessionKey> {
        let sid = text(&state, "sid").ok_or_else(|| other("a session needs a sid"))?;
        let user_id = text(&state, "user_id").ok_or_else(|| other("a session needs a user"))?;
        let role = text(&state, "role").unwrap_or_else(|| "user".into());
        let key = new_key();
        let now = self.clock.now().millis();
        let mut tx = self.store.begin().await.map_err(other)?;
        let existing = tx
            .find("sessions", Cond::eq("id", sid.clone()))
            .await
            .map_err(other)?;
        let mut row = existing.clone().unwrap_or_else(|| {
            let mut row = Row::new();
            row.insert("id".into(), json!(sid));
            row.insert("created_at".into(), json!(now));
            row.insert("expires_at".into(), json!(now + sessions::ABSOLUTE_MS));
            row
        });
        row.insert("key_digest".into(), json!(sha256_hex(&key)));
        row.insert("user_id".into(), json!(user_id));
        row.insert("role".into(), json!(role));
        row.insert("state".into(), state_json(&state));
        row.insert("last_seen_at".into(), json!(now));
        if existing.is_some() {
            tx.update("sessions", &row).await.map_err(other)?;
        } else {
            tx.insert("sessions", &row).await.map_err(other)?;
        }
        tx.commit().await.map_err(other)?;
        SessionKey::try_from(key).map_err(other)
    }
}

impl SessionStore for DbSessionStore {
    async fn load(&self, session_key: &SessionKey) -> Result<Option<SessionState>, LoadError> {
        let digest = sha256_hex(session_key.as_ref());
        let mut tx = self
            .store
            .begin()
            .await
            .map_err(|e| LoadError::Other(other(e)))?;
        let Some(mut row) = tx
            .find("sessions", Cond::eq("key_digest", digest))
            .await
            .map_err(|e| LoadError::Other(other(e)))?
        else {
            return Ok(None);
        };
        let now = self.clock.now();
        if !sessions::is_alive(&row, now) {
            tx.delete_where("sessions", &Cond::Eq("id".into(), row["id"].clone()))
                .await
                .map_err(|e| LoadError::Other(other(e)))?;
            tx.commit().await.map_err(|e| LoadError::Other(other(e)))?;
            return Ok(None);
        }
        if sessions::needs_touch(&row, now) {
            row.insert("last_seen_at".into(), json!(now.millis()));
            tx.update("sessions", &row)
                .await
                .map_err(|e| LoadError::Other(other(e)))?;
            tx.commit().await.map_err(|e| LoadError::Other(other(e)))?;
        }
        Ok(Some(state_of(&row)))
    }

    async fn save(
        &self,
        session_state: SessionState,
        _ttl: &Duration,
    ) -> Result<SessionKey, SaveError> {
        self.store_under_new_key(session_state)
            .await
            .map_err(SaveError::Other)
    }

    async fn update(
        &self,
        session_key: SessionKey,
        session_state: SessionState,
        _ttl: &Duration,
    ) -> Result<SessionKey, UpdateError> {
        let digest = sha256_hex(session_key.as_ref());
        let result: anyhow::Result<bool> = async {
            let mut tx = self.store.begin().await.map_err(other)?;
            let Some(mut row) = tx
                .find("sessions", Cond::eq("key_digest", digest))
                .await
                .map_err(other)?
            else {
                return Ok(false);
            };
            row.insert("state".into(), state_json(&session_state));
            tx.update("sessions", &row).await.map_err(other)?;
            tx.commit().await.map_err(other)?;
            Ok(true)
        }
        .await;
        match result {
            Ok(true) => Ok(session_key),
            Ok(false) => self
                .store_under_new_key(session_state)
                .await
                .map_err(UpdateError::Other),
            Err(e) => Err(UpdateError::Other(e)),
        }
    }

    /// Lifetimes are fixed at login (absolute) and enforced on load (idle).
    async fn update_ttl(&self, _session_key: &SessionKey, _ttl: &Duration) -> anyhow::Result<()> {
        Ok(())
    }

    async fn delete(&self, session_key: &SessionKey) -> anyhow::Result<()> {
        let digest = sha256_hex(session_key.as_ref());
        let mut tx = self.store.begin().await.map_err(other)?;
        tx.delete_where("sessions", &Cond::eq("key_digest", digest))
            .await
            .map_err(other)?;
        tx.commit().await.map_err(other)
    }
}
