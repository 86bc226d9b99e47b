//! Authentication of admin-API callers: one use case, credentials in a fixed precedence
//! (`Authorization` → `X-API-Key` → session cookie; a present but invalid one never falls back).

use serde_json::{Value, json};
use thiserror::Error;

use crate::{
    Actor, AuthMethod, Role,
    ports::Ports,
    query::{CmpOp, Cond},
};

/// What the caller presented, as read from the request.
#[derive(Debug, Clone, Default)]
pub struct Presented {
    /// The `Authorization` header value.
    pub authorization: Option<String>,
    /// The `X-API-Key` header value.
    pub api_key: Option<String>,
    /// The session cookie value.
    pub session: Option<String>,
    pub request_id: Option<String>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("authentication required")]
    Missing,
    #[error("{0}")]
    Invalid(&'static str),
    #[error("authentication unavailable: {0}")]
    Unavailable(String),
}

impl From<crate::error::StoreError> for AuthError {
    fn from(err: crate::error::StoreError) -> Self {
        AuthError::Unavailable(err.to_string())
    }
}

pub const ADMIN_KEY_PREFIX: &str = "tg_admin_";
pub const LIVE_KEY_PREFIX: &str = "tg_live_";

/// `tg_<kind>_` + 40 alphanumerics.
pub fn is_key_shaped(key: &str, prefix: &str) -> bool {
    key.strip_prefix(prefix)
        .is_some_and(|rest| rest.len() == 40 && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

#[derive(Clone)]
pub struct Authentication {
    ports: Ports,
}

impl Authentication {
    pub fn new(ports: Ports) -> Self {
        Self { ports }
    }

    pub async fn authenticate(&self, presented: &Presented) -> Result<Actor, AuthError> {
        let mut actor = if let Some(header) = &presented.authorization {
            let token = header
                .split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, token)| token.trim())
                .ok_or(AuthError::Invalid(
                    "Authorization must be a Bearer credential",
                ))?;
            if token.starts_with(ADMIN_KEY_PREFIX) {
                self.admin_key(token).await?
            } else {
                return Err(AuthError::Invalid("the bearer token is not valid"));
            }
        } else if let Some(key) = &presented.api_key {
            self.admin_key(key.trim()).await?
        } else if presented.session.is_some() {
            return Err(AuthError::Invalid("the session is not valid"));
        } else {
            return Err(AuthError::Missing);
        };
        actor.request_id = presented.request_id.clone();
        Ok(actor)
    }

    /// An admin-kind key, live, not revoked or expired, owned by an active admin.
    async fn admin_key(&self, key: &str) -> Result<Actor, AuthError> {
        const INVALID: AuthError = AuthError::Invalid("the API key is not valid for the admin API");
        if !is_key_shaped(key, ADMIN_KEY_PREFIX) {
            return Err(INVALID);
        }
        let now = self.ports.clock.now();
        let digest = self.ports.secrets.digest(key);
        let mut session = self.ports.store.read().await?;
        let cond = Cond::All(vec![
            Cond::is_null("deleted_at"),
            Cond::is_null("revoked_at"),
            Cond::eq("kind", "admin"),
            Cond::Any(vec![
                Cond::eq("key_digest", digest.clone()),
                Cond::All(vec![
                    Cond::eq("previous_key_digest", digest),
                    Cond::cmp("previous_key_expires_at", CmpOp::Gt, now.millis()),
                ]),
            ]),
        ]);
        let key_row = session.find("api_keys", cond).await?.ok_or(INVALID)?;
        if key_row
            .get("expires_at")
            .and_then(Value::as_i64)
            .is_some_and(|at| at <= now.millis())
        {
            return Err(AuthError::Invalid("the API key has expired"));
        }
        let owner_id = key_row.get("user_id").cloned().unwrap_or(Value::Null);
        let owner = session
            .find(
                "users",
                Cond::is_null("deleted_at").and(Cond::Eq("id".into(), owner_id.clone())),
            )
            .await?
            .ok_or(INVALID)?;
        if owner.get("status") != Some(&json!("active"))
            || owner.get("role") != Some(&json!("admin"))
        {
            return Err(AuthError::Invalid("the key's owner is not an active admin"));
        }
        Ok(Actor {
            user_id: owner_id.as_str().map(str::to_owned),
            role: Role::Admin,
            method: Some(AuthMethod::AdminKey),
            api_key_id: key_row.get("id").and_then(Value::as_str).map(str::to_owned),
            request_id: None,
        })
    }
}
