//! Authentication of admin-API callers, login and logout. Credentials are read in a fixed
//! precedence (`Authorization` → `X-API-Key` → session cookie); a present but invalid one
//! never falls back to the next.

use std::sync::OnceLock;

use serde_json::{Value, json};
use thiserror::Error;

use crate::{
    Actor, AuthMethod, Role, Row, Timestamp,
    error::StoreError,
    ports::{Ports, TokenClaims},
    query::{CmpOp, Cond},
    resources::users,
    sessions,
};

/// The state a session cookie carries (loaded and liveness-checked by the session store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieSession {
    pub sid: String,
    pub user_id: String,
    pub role: String,
}

/// What the caller presented, as read from the request.
#[derive(Debug, Clone, Default)]
pub struct Presented {
    /// The `Authorization` header value.
    pub authorization: Option<String>,
    /// The `X-API-Key` header value.
    pub api_key: Option<String>,
    /// A cookie was sent…
    pub session_cookie: bool,
    /// …and it names a live session.
    pub session: Option<CookieSession>,
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

impl From<StoreError> for AuthError {
    fn from(err: StoreError) -> Self {
        AuthError::Unavailable(err.to_string())
    }
}

#[derive(Debug, Error)]
pub enum LoginError {
    #[error("wrong email or password")]
    InvalidCredentials,
    #[error("the account is not active")]
    Inactive,
    #[error("too many failed logins")]
    Throttled { retry_after: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A successful login: the new session and the bearer token bound to it.
#[derive(Debug, Clone)]
pub struct Login {
    pub session_id: String,
    pub user: Row,
    pub token: String,
    pub token_expires_at: Timestamp,
    pub expires_at: Timestamp,
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
            } else if token.starts_with(LIVE_KEY_PREFIX) {
                return Err(AuthError::Invalid("live keys work on the proxy only"));
            } else {
                self.bearer_token(token).await?
            }
        } else if let Some(key) = &presented.api_key {
            self.admin_key(key.trim()).await?
        } else if let Some(session) = &presented.session {
            self.cookie(session).await?
        } else if presented.session_cookie {
            return Err(AuthError::Invalid("the session has ended"));
        } else {
            return Err(AuthError::Missing);
        };
        actor.request_id = presented.request_id.clone();
        Ok(actor)
    }

    /// The user behind a session or token: live, active, role as when the session began.
    async fn principal(
        &self,
        user_id: &str,
        role: &str,
        sid: &str,
        method: AuthMethod,
    ) -> Result<Actor, AuthError> {
        let mut session = self.ports.store.read().await?;
        let user = session
            .find(
                "users",
                Cond::is_null("deleted_at").and(Cond::eq("id", user_id)),
            )
            .await?
            .ok_or(AuthError::Invalid("the user no longer exists"))?;
        if user.get("status") != Some(&json!("active")) {
            return Err(AuthError::Invalid("the account is not active"));
        }
        if user.get("role") != Some(&json!(role)) {
            return Err(AuthError::Invalid("the role changed; sign in again"));
        }
        Ok(Actor {
            user_id: Some(user_id.to_owned()),
            role: Role::parse(role).unwrap_or(Role::User),
            method: Some(method),
            api_key_id: None,
            session_id: Some(sid.to_owned()),
            request_id: None,
        })
    }

    async fn cookie(&self, cookie: &CookieSession) -> Result<Actor, AuthError> {
        self.principal(
            &cookie.user_id,
            &cookie.role,
            &cookie.sid,
            AuthMethod::Session,
        )
        .await
    }

    /// A JWT: signature, issuer, audience and expiry (adapter), then its session must live.
    async fn bearer_token(&self, token: &str) -> Result<Actor, AuthError> {
        const INVALID: AuthError = AuthError::Invalid("the bearer token is not valid");
        let claims = self.ports.tokens.verify(token).ok_or(INVALID)?;
        let now = self.ports.clock.now();
        let mut session = self.ports.store.read().await?;
        let row = session
            .find("sessions", Cond::eq("id", claims.sid.clone()))
            .await?
            .ok_or(INVALID)?;
        if !sessions::is_alive(&row, now) || row.get("user_id") != Some(&json!(claims.sub)) {
            return Err(INVALID);
        }
        drop(session);
        self.principal(&claims.sub, &claims.role, &claims.sid, AuthMethod::Jwt)
            .await
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
            session_id: None,
            request_id: None,
        })
    }

    /// Checks email and password (with throttling) and opens a session: the `sessions` row is
    /// written here, in the same transaction that re-checks the account, and the session store
    /// only attaches the cookie key to it. `previous_sid` is the session the request's cookie
    /// named: it ends (no session fixation).
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        client_ip: &str,
        previous_sid: Option<&str>,
    ) -> Result<Login, LoginError> {
        // No account has a longer address: refused before any other work (and not counted,
        // so the throttle's memory never holds such a key).
        if email.len() > 4 * users::EMAIL_MAX_CHARS
            || email.trim().chars().count() > users::EMAIL_MAX_CHARS
        {
            return Err(LoginError::InvalidCredentials);
        }
        let email = email.trim().to_lowercase();
        let throttle = &self.ports.throttle;
        // The attempt holds a place in the failure budget until its outcome is known.
        throttle
            .reserve(&email, client_ip)
            .await
            .map_err(|retry_after| LoginError::Throttled { retry_after })?;
        let mut hash_changed = false;
        let mut outcome = self
            .check_and_open(&email, password, previous_sid, &mut hash_changed)
            .await;
        if hash_changed {
            // The stored hash changed between reading and stamping it: another login rehashed
            // it (then the password still verifies) or the password was changed (then it no
            // longer does). Verifying once more against the stored hash tells which.
            outcome = self
                .check_and_open(&email, password, previous_sid, &mut hash_changed)
                .await;
        }
        match &outcome {
            Ok(_) => throttle.succeeded(&email, client_ip).await,
            Err(LoginError::InvalidCredentials) => throttle.failed(&email, client_ip).await,
            Err(_) => throttle.release(&email, client_ip).await,
        }
        outcome
    }

    /// Verifies the password and opens the session. Sets `hash_changed` when the password
    /// verified but the stored hash was replaced before the login could be recorded.
    async fn check_and_open(
        &self,
        email: &str,
        password: &str,
        previous_sid: Option<&str>,
        hash_changed: &mut bool,
    ) -> Result<Login, LoginError> {
        *hash_changed = false;
        // Longer than the password policy allows: matches no stored hash, so no hashing.
        if password.len() > 4 * users::PASSWORD_MAX_CHARS
            || password.chars().count() > users::PASSWORD_MAX_CHARS
        {
            return Err(LoginError::InvalidCredentials);
        }
        let mut session = self.ports.store.read().await?;
        let user = session
            .find(
                "users",
                Cond::is_null("deleted_at").and(Cond::eq("email", email)),
            )
            .await?;
        drop(session);
        let hash = user
            .as_ref()
            .and_then(|u| u.get("password_hash"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let verified = match &hash {
            Some(hash) => self.ports.passwords.verify(password, hash).await?,
            None => {
                // Same work for unknown emails, so timing does not reveal which exist.
                let dummy = self.dummy_hash().await?;
                let _ = self.ports.passwords.verify(password, &dummy).await?;
                false
            }
        };
        let (Some(user), Some(hash)) = (user.filter(|_| verified), hash) else {
            return Err(LoginError::InvalidCredentials);
        };
        if user.get("status") != Some(&json!("active")) {
            return Err(LoginError::Inactive);
        }
        let user_id = user.get("id").cloned().unwrap_or(Value::Null);
        // A hash made with older parameters is replaced by one with the current parameters,
        // computed before the transaction so no row stays locked while it runs. It is
        // bookkeeping, not a password change: no event, no session ends. A hasher too busy
        // for it leaves the old hash, which the next login replaces.
        let rehashed = if self.ports.passwords.needs_rehash(&hash) {
            self.ports.passwords.hash(password).await.ok()
        } else {
            None
        };
        let now = self.ports.clock.now();
        let mut tx = self.ports.store.begin().await?;
        // Only `last_login_at` (and a rehashed password) is written, and only while the account
        // is still active with the password just verified: the hash took tens of ms, in which an
        // admin may have suspended the user or the password may have changed. This update also
        // locks the row, so such a change either waits for this login (and then ends its
        // session) or came first.
        let still_valid = Cond::All(vec![
            Cond::Eq("id".into(), user_id.clone()),
            Cond::is_null("deleted_at"),
            Cond::eq("status", "active"),
            Cond::eq("password_hash", hash.as_str()),
        ]);
        let mut stamp = Row::new();
        stamp.insert("last_login_at".into(), json!(now.millis()));
        if let Some(fresh) = rehashed {
            stamp.insert("password_hash".into(), json!(fresh));
        }
        if tx.set_where("users", &still_valid, &stamp).await? == 0 {
            let current = tx
                .find(
                    "users",
                    Cond::is_null("deleted_at").and(Cond::Eq("id".into(), user_id)),
                )
                .await?;
            return Err(match current {
                Some(u) if u.get("status") != Some(&json!("active")) => LoginError::Inactive,
                Some(u) if u.get("password_hash") != Some(&json!(hash)) => {
                    *hash_changed = true;
                    LoginError::InvalidCredentials
                }
                _ => LoginError::InvalidCredentials,
            });
        }
        let user = tx
            .find("users", Cond::Eq("id".into(), user_id.clone()))
            .await?
            .ok_or(LoginError::InvalidCredentials)?;
        if let Some(previous) = previous_sid {
            tx.delete_where("sessions", &Cond::eq("id", previous))
                .await?;
        }
        let session_id = self.ports.ids.new_id("ses_");
        let expires_at = Timestamp::from_millis(now.millis() + sessions::ABSOLUTE_MS);
        let mut row = Row::new();
        row.insert("id".into(), json!(session_id));
        // No cookie key yet: a random digest nobody holds, replaced when the cookie is issued.
        let unclaimed = self.ports.secrets.reset_token();
        row.insert(
            "key_digest".into(),
            json!(self.ports.secrets.digest(&unclaimed)),
        );
        row.insert("user_id".into(), user_id);
        row.insert(
            "role".into(),
            user.get("role").cloned().unwrap_or(json!("user")),
        );
        row.insert("state".into(), json!({}));
        row.insert("created_at".into(), json!(now.millis()));
        row.insert("last_seen_at".into(), json!(now.millis()));
        row.insert("expires_at".into(), json!(expires_at.millis()));
        tx.insert("sessions", &row).await?;
        tx.commit().await?;
        let token_expires_at = now.plus_seconds(sessions::TOKEN_TTL_SECONDS);
        let token = self.issue_token(&user, &session_id, now)?;
        Ok(Login {
            session_id,
            user,
            token,
            token_expires_at,
            expires_at,
        })
    }

    fn issue_token(
        &self,
        user: &Row,
        session_id: &str,
        now: Timestamp,
    ) -> Result<String, StoreError> {
        let text = |c: &str| {
            user.get(c)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        self.ports.tokens.issue(&TokenClaims {
            sub: text("id"),
            role: text("role"),
            sid: session_id.to_owned(),
            jti: self.ports.ids.new_id(""),
            iat: now.unix_seconds(),
            exp: now.unix_seconds() + sessions::TOKEN_TTL_SECONDS,
        })
    }

    async fn dummy_hash(&self) -> Result<String, StoreError> {
        static DUMMY: OnceLock<String> = OnceLock::new();
        if let Some(hash) = DUMMY.get() {
            return Ok(hash.clone());
        }
        let hash = self.ports.passwords.hash("tollgate-dummy-password").await?;
        Ok(DUMMY.get_or_init(|| hash).clone())
    }

    /// Ends the session behind a cookie or token (admin keys have none: no effect).
    pub async fn logout(&self, actor: &Actor) -> Result<(), StoreError> {
        if let Some(sid) = &actor.session_id {
            let mut tx = self.ports.store.begin().await?;
            tx.delete_where("sessions", &Cond::eq("id", sid.clone()))
                .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// Ends every session (and so every token) of `user_id`, except `keep`.
    pub async fn end_sessions(&self, user_id: &str, keep: Option<&str>) -> Result<(), StoreError> {
        let mut cond = Cond::eq("user_id", user_id);
        if let Some(keep) = keep {
            cond = cond.and(Cond::cmp("id", CmpOp::Ne, keep));
        }
        let mut tx = self.ports.store.begin().await?;
        tx.delete_where("sessions", &cond).await?;
        tx.commit().await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{
        ports::PasswordHasher,
        service::tests::{fakes::World, memory_store::MemoryStore, run, user_id},
    };

    /// A world whose one user signs in with `password`, stored as `hash`.
    fn with_user(hash: &str) -> (World, Authentication) {
        let store = MemoryStore::new();
        let mut row = Row::new();
        row.insert("id".into(), json!(user_id(1)));
        row.insert("email".into(), json!("ada@example.com"));
        row.insert("role".into(), json!("user"));
        row.insert("status".into(), json!("active"));
        row.insert("password_hash".into(), json!(hash));
        row.insert("last_login_at".into(), Value::Null);
        row.insert("deleted_at".into(), Value::Null);
        store.seed("users", row);
        let world = World::new(store);
        let auth = Authentication::new(world.ports.clone());
        (world, auth)
    }

    fn stored_hash(world: &World) -> String {
        world.store.rows("users")[0]["password_hash"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    const PASSWORD: &str = "correct horse battery";

    #[test]
    fn a_hash_with_old_parameters_still_signs_in_and_is_replaced_by_a_current_one() {
        run(async {
            let old = format!("m=4096,t=3,p=1${PASSWORD}");
            let (world, auth) = with_user(&old);
            assert!(world.hasher.needs_rehash(&old));
            let login = auth
                .login("Ada@example.com", PASSWORD, "192.0.2.1", None)
                .await
                .unwrap();
            let fresh = stored_hash(&world);
            assert_eq!(fresh, format!("{}${PASSWORD}", world.hasher.params));
            assert!(!world.hasher.needs_rehash(&fresh));
            assert_eq!(login.user["password_hash"], json!(fresh));
            assert!(
                world.store.rows("events").is_empty(),
                "no password change event"
            );
            assert_eq!(world.store.rows("sessions").len(), 1);
            // The new hash signs in, and is kept.
            auth.login("ada@example.com", PASSWORD, "192.0.2.1", None)
                .await
                .unwrap();
            assert_eq!(stored_hash(&world), fresh);
        });
    }

    #[test]
    fn a_current_hash_is_left_alone_and_a_wrong_password_rehashes_nothing() {
        run(async {
            let (world, auth) = with_user("m=19456,t=2,p=1$correct horse battery");
            let current = stored_hash(&world);
            auth.login("ada@example.com", PASSWORD, "192.0.2.1", None)
                .await
                .unwrap();
            assert_eq!(stored_hash(&world), current);
            let made = world.hasher.made.lock().unwrap().len();
            assert_eq!(made, 0, "no hash computed for a current one");

            let (world, auth) = with_user("m=4096,t=3,p=1$correct horse battery");
            let err = auth
                .login("ada@example.com", "wrong horse battery", "192.0.2.1", None)
                .await
                .unwrap_err();
            assert!(matches!(err, LoginError::InvalidCredentials), "{err:?}");
            assert_eq!(stored_hash(&world), "m=4096,t=3,p=1$correct horse battery");
        });
    }
}
