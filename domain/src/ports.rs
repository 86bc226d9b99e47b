//! Ports: what the domain needs from the outside world. Adapters implement them; `app` wires them.

use std::sync::Arc;

use async_trait::async_trait;

use crate::{
    Row, Timestamp,
    error::StoreError,
    query::{Cond, ListQuery},
};

pub use crate::error::StoreError as PortError;

/// The database. Every write goes through a transaction; reads may use an autocommit session.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// A transaction: nothing is visible to others before [`Session::commit`].
    async fn begin(&self) -> Result<Box<dyn Session>, StoreError>;
    /// An autocommit session for reads.
    async fn read(&self) -> Result<Box<dyn Session>, StoreError>;
}

/// Table-level access. Tables and columns carry the domain's names; rows are canonical
/// [`Row`]s (timestamps as epoch milliseconds, lists and objects as JSON).
#[async_trait]
pub trait Session: Send {
    async fn list(&mut self, table: &str, query: &ListQuery) -> Result<Vec<Row>, StoreError>;
    async fn count(&mut self, table: &str, cond: &Cond) -> Result<u64, StoreError>;
    async fn insert(&mut self, table: &str, row: &Row) -> Result<(), StoreError>;
    /// Replaces the row with the same `id`.
    async fn update(&mut self, table: &str, row: &Row) -> Result<(), StoreError>;
    /// Sets some columns (non-null values) of every row matching `cond`, leaving the others:
    /// background bookkeeping (`last_used_at`, upstream health) must not overwrite admin edits.
    async fn set_where(
        &mut self,
        table: &str,
        cond: &Cond,
        values: &Row,
    ) -> Result<u64, StoreError>;
    /// Hard delete (join rows, expired records).
    async fn delete_where(&mut self, table: &str, cond: &Cond) -> Result<u64, StoreError>;
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

impl dyn Session + '_ {
    /// A row matching `cond` (callers make `cond` select at most one). No ordering: link
    /// tables have no `id` column.
    pub async fn find(&mut self, table: &str, cond: Cond) -> Result<Option<Row>, StoreError> {
        let query = ListQuery {
            cond,
            sort: Vec::new(),
            offset: 0,
            limit: 1,
        };
        Ok(self.list(table, &query).await?.into_iter().next())
    }
}

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

pub trait IdGenerator: Send + Sync + 'static {
    /// `prefix` + a fresh, time-ordered 26-character ULID.
    fn new_id(&self, prefix: &str) -> String;
}

/// Random secrets and their digests (API keys, webhook secrets).
pub trait SecretMint: Send + Sync + 'static {
    /// `tg_<kind>_` followed by 40 random alphanumerics.
    fn api_key(&self, kind: &str) -> String;
    /// The stored form of an API key (hex SHA-256).
    fn digest(&self, key: &str) -> String;
    /// `whsec_` + base64 of 32 random bytes.
    fn webhook_secret(&self) -> String;
    /// 32 random bytes, base64url (password-reset tokens).
    fn reset_token(&self) -> String;
}

/// Outgoing mail (password resets).
#[async_trait]
pub trait Mailer: Send + Sync + 'static {
    async fn send_password_reset(&self, email: &str, token: &str) -> Result<(), StoreError>;
}

#[async_trait]
pub trait PasswordHasher: Send + Sync + 'static {
    async fn hash(&self, password: &str) -> Result<String, StoreError>;
    async fn verify(&self, password: &str, hash: &str) -> Result<bool, StoreError>;
}

/// Symmetric encryption of stored credentials (upstream `auth_value`, group credentials).
pub trait Vault: Send + Sync + 'static {
    fn seal(&self, plaintext: &str) -> Result<String, StoreError>;
    fn open(&self, sealed: &str) -> Result<String, StoreError>;
}

/// The claims of an admin-API bearer token (JWT), `iss`/`aud` aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    /// User id.
    pub sub: String,
    pub role: String,
    /// The session the token is bound to: it dies with it.
    pub sid: String,
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
}

/// Signs and checks bearer tokens (HS256 JWT in production).
pub trait TokenCodec: Send + Sync + 'static {
    fn issue(&self, claims: &TokenClaims) -> Result<String, StoreError>;
    /// `None` for a bad signature, algorithm, issuer, audience or an expired token.
    fn verify(&self, token: &str) -> Option<TokenClaims>;
}

/// Failed-login counters (process memory, or Redis when clustered).
#[async_trait]
pub trait LoginThrottle: Send + Sync + 'static {
    /// Seconds until `email` or `ip` may try again, if locked.
    async fn retry_after(&self, email: &str, ip: &str) -> Option<u64>;
    async fn record_failure(&self, email: &str, ip: &str);
    async fn clear(&self, email: &str);
}

/// Everything the use cases need, bundled for wiring.
#[derive(Clone)]
pub struct Ports {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdGenerator>,
    pub secrets: Arc<dyn SecretMint>,
    pub passwords: Arc<dyn PasswordHasher>,
    pub vault: Arc<dyn Vault>,
    pub tokens: Arc<dyn TokenCodec>,
    pub throttle: Arc<dyn LoginThrottle>,
    pub mailer: Arc<dyn Mailer>,
    pub settings: Settings,
}

/// Switches the domain's rules read from configuration.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Allow webhook URLs on loopback/private/link-local addresses (development, tests).
    pub webhook_allow_private: bool,
    /// `POST /api/auth/register` is open (off by default).
    pub allow_registration: bool,
}
