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
    /// Replaces the row with the same `id`. Only for rows this transaction holds locked (see
    /// [`Session::lock`]) or owns alone; use cases write with [`Session::save`], which sends
    /// only the changed columns.
    async fn update(&mut self, table: &str, row: &Row) -> Result<(), StoreError>;
    /// Sets exactly the given columns (`null` included) of the row with this `id`.
    async fn update_columns(
        &mut self,
        table: &str,
        id: &str,
        columns: &Row,
    ) -> Result<(), StoreError>;
    /// Adds one to the proxy configuration's version inside this transaction. The counter is
    /// one row, so concurrent changes queue on its lock and commit in version order: a reader
    /// that sees version `n` sees every change numbered up to `n`, whatever the clocks say.
    async fn bump_config_version(&mut self) -> Result<(), StoreError>;
    /// The committed configuration version (0 before the first change).
    async fn config_version(&mut self) -> Result<i64, StoreError>;
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
    /// Like [`Session::list`], but the rows stay locked until the transaction ends, so several
    /// dispatchers never claim the same work. With `skip_locked`, rows another transaction
    /// holds are passed over instead of waited for. Stores whose transactions already
    /// exclude each other (SQLite) may answer with a plain read.
    async fn lock(
        &mut self,
        table: &str,
        query: &ListQuery,
        skip_locked: bool,
    ) -> Result<Vec<Row>, StoreError> {
        let _ = skip_locked;
        self.list(table, query).await
    }
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

impl dyn Session + '_ {
    /// Writes the columns of `after` that differ from `before` (the row with `before`'s id):
    /// an edit never writes back a column it did not change, so a concurrent writer of another
    /// column (a login's `last_login_at`, the metering's `last_used_at`) keeps its value.
    pub async fn save(&mut self, table: &str, before: &Row, after: &Row) -> Result<(), StoreError> {
        let id = before
            .get("id")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| StoreError::Other(format!("a {table} row without id")))?;
        let changed: Row = after
            .iter()
            .filter(|(column, value)| before.get(*column) != Some(*value))
            .map(|(column, value)| (column.clone(), value.clone()))
            .collect();
        if changed.is_empty() {
            return Ok(());
        }
        self.update_columns(table, id, &changed).await
    }

    /// The row matching `cond`, locked until this transaction ends (PostgreSQL `FOR UPDATE`;
    /// SQLite write transactions already exclude each other). Read-modify-write use cases load
    /// with this so that two writers of one row take turns instead of overwriting each other.
    pub async fn find_for_update(
        &mut self,
        table: &str,
        cond: Cond,
    ) -> Result<Option<Row>, StoreError> {
        let query = ListQuery {
            cond,
            sort: Vec::new(),
            offset: 0,
            limit: 1,
        };
        Ok(self.lock(table, &query, false).await?.into_iter().next())
    }

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
    /// Whether a stored hash was made with other parameters (or another algorithm) than
    /// [`Self::hash`] uses now; the login that has just verified it stores a fresh one.
    fn needs_rehash(&self, hash: &str) -> bool;
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
///
/// An attempt takes its place in the budget *before* its password is checked:
/// [`LoginThrottle::reserve`] checks and counts in one atomic step, so parallel guesses cannot
/// all pass the check before any of them is counted. Failures plus attempts still in flight
/// never exceed the limit. The caller then settles the reservation with exactly one of
/// `failed`, `succeeded` or `release`.
#[async_trait]
pub trait LoginThrottle: Send + Sync + 'static {
    /// Takes one attempt for `email` and `ip`; `Err(seconds until retry)` when either is locked,
    /// or its budget is taken by attempts in flight (nothing is counted then).
    async fn reserve(&self, email: &str, ip: &str) -> Result<(), u64>;
    /// The reserved attempt was a wrong password (or unknown email): a failure for both.
    async fn failed(&self, email: &str, ip: &str);
    /// The reserved attempt had the right password: the email's failures are cleared and the
    /// attempt is given back to `ip`.
    async fn succeeded(&self, email: &str, ip: &str);
    /// The reserved attempt ended without a verdict on the password (store failure, busy
    /// hasher, inactive account): given back to both.
    async fn release(&self, email: &str, ip: &str);
}

/// Why a delivery attempt got no usable answer (the `error` of a `webhook_deliveries` row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryError {
    Timeout,
    Connect,
    Tls,
    InvalidResponse,
    DestinationForbidden,
    WebhookDisabled,
}

impl DeliveryError {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::Tls => "tls",
            Self::InvalidResponse => "invalid_response",
            Self::DestinationForbidden => "destination_forbidden",
            Self::WebhookDisabled => "webhook_disabled",
        }
    }
}

/// One signed POST to make: the body bytes are fixed per event, the signatures per attempt.
#[derive(Debug, Clone)]
pub struct OutgoingDelivery {
    pub url: String,
    pub event_id: String,
    pub event_type: String,
    pub body: Vec<u8>,
    /// Signing secrets, newest first (two during a rotation's grace period).
    pub secrets: Vec<String>,
    pub timeout_ms: u64,
    /// Whether loopback/private destinations may be reached (checked after DNS resolution).
    pub allow_private: bool,
}

/// What one attempt got back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptOutcome {
    pub status_code: Option<u16>,
    pub error: Option<DeliveryError>,
    pub duration_ms: u64,
    /// The first bytes of the response body (UTF-8, lossy).
    pub response_body: Option<String>,
}

/// Signs and POSTs webhook deliveries. Never fails: every failure is an outcome to record.
#[async_trait]
pub trait WebhookSender: Send + Sync + 'static {
    async fn send(&self, delivery: &OutgoingDelivery) -> AttemptOutcome;
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
    pub webhooks: Arc<dyn WebhookSender>,
    pub settings: Settings,
}

/// The default delay before each webhook delivery attempt: 0 s, 1 min, 5 min, 30 min, 2 h,
/// 8 h (webhooks.md §5).
pub const DEFAULT_WEBHOOK_SCHEDULE_MS: [u64; 6] =
    [0, 60_000, 300_000, 1_800_000, 7_200_000, 28_800_000];

/// Switches the domain's rules read from configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Allow webhook URLs on loopback/private/link-local addresses (development, tests).
    pub webhook_allow_private: bool,
    /// `POST /api/auth/register` is open (off by default).
    pub allow_registration: bool,
    /// Delay before each delivery attempt (milliseconds; the first is normally 0); its
    /// length is the number of attempts.
    pub webhook_retry_schedule_ms: Vec<u64>,
    /// Consecutive failed attempts after which a webhook is disabled.
    pub webhook_disable_after: u32,
    /// Per-attempt timeout (connect, headers and body).
    pub webhook_timeout_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            webhook_allow_private: false,
            allow_registration: false,
            webhook_retry_schedule_ms: DEFAULT_WEBHOOK_SCHEDULE_MS.to_vec(),
            webhook_disable_after: 20,
            webhook_timeout_ms: 10_000,
        }
    }
}
