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

/// The state a cookie carries, from the row's own columns: the session id, its user and the
/// role it began with. Nothing else is kept in a session.
fn state_of(row: &Row) -> SessionState {
    ["id", "user_id", "role"]
        .iter()
        .filter_map(|column| {
            let value = row.get(*column)?.as_str()?;
            let name = if *column == "id" { "sid" } else { column };
            Some((name.to_owned(), serde_json::to_string(value).ok()?))
        })
        .collect()
}

fn by_id(sid: &str) -> Cond {
    Cond::eq("id", sid)
}

impl DbSessionStore {
    /// Attaches a fresh cookie key to the session named by the state's `sid` (a login's new
    /// session, or a rotation). Only `key_digest` and `last_seen_at` are written: the absolute
    /// expiry stays what the login set, whatever is renewed. Sessions are created by the login
    /// use case alone, so when the row is gone (ended meanwhile: logout, sign out everywhere, a
    /// suspension) none is made: the new key opens nothing.
    async fn attach_new_key(&self, state: SessionState) -> anyhow::Result<SessionKey> {
        let key = new_key();
        if let Some(sid) = text(&state, "sid") {
            let mut values = Row::new();
            values.insert("key_digest".into(), json!(sha256_hex(&key)));
            values.insert("last_seen_at".into(), json!(self.clock.now().millis()));
            let mut tx = self.store.begin().await.map_err(other)?;
            tx.set_where("sessions", &by_id(&sid), &values)
                .await
                .map_err(other)?;
            tx.commit().await.map_err(other)?;
        }
        SessionKey::try_from(key).map_err(other)
    }
}

impl SessionStore for DbSessionStore {
    async fn load(&self, session_key: &SessionKey) -> Result<Option<SessionState>, LoadError> {
        let digest = sha256_hex(session_key.as_ref());
        let fail = |e: tollgate_domain::error::StoreError| LoadError::Other(other(e));
        let mut session = self.store.read().await.map_err(fail)?;
        let Some(row) = session
            .find("sessions", Cond::eq("key_digest", digest))
            .await
            .map_err(fail)?
        else {
            return Ok(None);
        };
        drop(session);
        let now = self.clock.now();
        let sid = row.get("id").and_then(Value::as_str).unwrap_or_default();
        if !sessions::is_alive(&row, now) {
            let mut tx = self.store.begin().await.map_err(fail)?;
            tx.delete_where("sessions", &by_id(sid))
                .await
                .map_err(fail)?;
            tx.commit().await.map_err(fail)?;
            return Ok(None);
        }
        if sessions::needs_touch(&row, now) {
            // Only `last_seen_at`: a whole-row write could put back a key rotated meanwhile.
            let mut values = Row::new();
            values.insert("last_seen_at".into(), json!(now.millis()));
            let mut tx = self.store.begin().await.map_err(fail)?;
            tx.set_where("sessions", &by_id(sid), &values)
                .await
                .map_err(fail)?;
            tx.commit().await.map_err(fail)?;
        }
        Ok(Some(state_of(&row)))
    }

    async fn save(
        &self,
        session_state: SessionState,
        _ttl: &Duration,
    ) -> Result<SessionKey, SaveError> {
        self.attach_new_key(session_state)
            .await
            .map_err(SaveError::Other)
    }

    /// The state is the row's own columns, so an unchanged key keeps working as it is.
    async fn update(
        &self,
        session_key: SessionKey,
        session_state: SessionState,
        _ttl: &Duration,
    ) -> Result<SessionKey, UpdateError> {
        let digest = sha256_hex(session_key.as_ref());
        let found: anyhow::Result<bool> = async {
            let mut session = self.store.read().await.map_err(other)?;
            let row = session
                .find("sessions", Cond::eq("key_digest", digest))
                .await
                .map_err(other)?;
            Ok(row.is_some())
        }
        .await;
        match found {
            Ok(true) => Ok(session_key),
            Ok(false) => self
                .attach_new_key(session_state)
                .await
                .map_err(UpdateError::Other),
            Err(e) => Err(UpdateError::Other(e)),
        }
    }

    /// Lifetimes are fixed at login (absolute) and enforced on load (idle).
    async fn update_ttl(&self, _session_key: &SessionKey, _ttl: &Duration) -> anyhow::Result<()> {
        Ok(())
    }

    /// actix-session calls this on logout (purge) and before every rotation (renew, followed
    /// by [`SessionStore::save`] with the same state). So the key is detached, not the row
    /// deleted: a rotation keeps the session (its id, its tokens, its absolute expiry) under the
    /// new key. Logout has already ended the session itself (the use case deletes it by id).
    async fn delete(&self, session_key: &SessionKey) -> anyhow::Result<()> {
        let digest = sha256_hex(session_key.as_ref());
        let mut values = Row::new();
        values.insert("key_digest".into(), json!(sha256_hex(&new_key())));
        let mut tx = self.store.begin().await.map_err(other)?;
        tx.set_where("sessions", &Cond::eq("key_digest", digest), &values)
            .await
            .map_err(other)?;
        tx.commit().await.map_err(other)
    }
}
