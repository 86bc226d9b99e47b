//! The other ports, as small deterministic stand-ins: a clock the test sets, counting ids,
//! predictable secrets, a reversible "hasher" and vault. Nothing here talks to the outside.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicI64, AtomicU64, Ordering},
};

use async_trait::async_trait;

use super::memory_store::MemoryStore;
use crate::{
    Timestamp,
    error::StoreError,
    ports::{
        AttemptOutcome, Clock, IdGenerator, LoginThrottle, Mailer, OutgoingDelivery,
        PasswordHasher, Ports, SecretMint, Settings, TokenClaims, TokenCodec, Vault, WebhookSender,
    },
};

/// 2025-01-19T10:30:00Z until a test moves it.
pub const START_MS: i64 = 1_737_282_600_000;

#[derive(Clone)]
pub struct TestClock(Arc<AtomicI64>);

impl TestClock {
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.0.load(Ordering::SeqCst))
    }
}

/// `prefix` + a valid ULID made from a counter: ids sort in creation order.
#[derive(Default)]
pub struct CountingIds(AtomicU64);

impl IdGenerator for CountingIds {
    fn new_id(&self, prefix: &str) -> String {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        format!("{prefix}{}", ulid::Ulid::from_parts(n, u128::from(n)))
    }
}

pub struct FixedSecrets;

impl SecretMint for FixedSecrets {
    fn api_key(&self, kind: &str) -> String {
        format!("tg_{kind}_{}", "a".repeat(40))
    }
    fn digest(&self, key: &str) -> String {
        format!("digest:{key}")
    }
    fn webhook_secret(&self) -> String {
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()
    }
    fn reset_token(&self) -> String {
        "reset-token".into()
    }
}

/// `<params>$<password>`: the parameters are the part a real hasher would encode in its
/// PHC string. Hashes made with other parameters verify but need a rehash.
pub struct TextHasher {
    pub params: &'static str,
    /// Every hash made, in order.
    pub made: Mutex<Vec<String>>,
}

impl TextHasher {
    pub fn new(params: &'static str) -> Self {
        Self {
            params,
            made: Mutex::new(Vec::new()),
        }
    }
}

#[async_trait]
impl PasswordHasher for TextHasher {
    async fn hash(&self, password: &str) -> Result<String, StoreError> {
        let hash = format!("{}${password}", self.params);
        self.made.lock().unwrap().push(hash.clone());
        Ok(hash)
    }
    async fn verify(&self, password: &str, hash: &str) -> Result<bool, StoreError> {
        Ok(hash.split_once('$').is_some_and(|(_, p)| p == password))
    }
    fn needs_rehash(&self, hash: &str) -> bool {
        hash.split_once('$')
            .is_none_or(|(params, _)| params != self.params)
    }
}

/// Seals as `[plaintext]`.
pub struct Brackets;

impl Vault for Brackets {
    fn seal(&self, plaintext: &str) -> Result<String, StoreError> {
        Ok(format!("[{plaintext}]"))
    }
    fn open(&self, sealed: &str) -> Result<String, StoreError> {
        sealed
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .map(str::to_owned)
            .ok_or_else(|| StoreError::Other("not sealed".into()))
    }
}

/// Tokens are `token:<sub>:<sid>`; nothing is signed.
pub struct PlainTokens;

impl TokenCodec for PlainTokens {
    fn issue(&self, claims: &TokenClaims) -> Result<String, StoreError> {
        Ok(format!("token:{}:{}", claims.sub, claims.sid))
    }
    fn verify(&self, _token: &str) -> Option<TokenClaims> {
        None
    }
}

pub struct NoThrottle;

#[async_trait]
impl LoginThrottle for NoThrottle {
    async fn reserve(&self, _email: &str, _ip: &str) -> Result<(), u64> {
        Ok(())
    }
    async fn failed(&self, _email: &str, _ip: &str) {}
    async fn succeeded(&self, _email: &str, _ip: &str) {}
    async fn release(&self, _email: &str, _ip: &str) {}
}

pub struct NoMail;

#[async_trait]
impl Mailer for NoMail {
    async fn send_password_reset(&self, _email: &str, _token: &str) -> Result<(), StoreError> {
        Ok(())
    }
}

pub struct Accepting;

#[async_trait]
impl WebhookSender for Accepting {
    async fn send(&self, _delivery: &OutgoingDelivery) -> AttemptOutcome {
        AttemptOutcome {
            status_code: Some(200),
            error: None,
            duration_ms: 1,
            response_body: None,
        }
    }
}

/// Everything wired for a use case under test.
pub struct World {
    pub ports: Ports,
    pub store: Arc<MemoryStore>,
    pub clock: TestClock,
    pub hasher: Arc<TextHasher>,
}

impl World {
    pub fn new(store: MemoryStore) -> Self {
        let store = Arc::new(store);
        let clock = TestClock(Arc::new(AtomicI64::new(START_MS)));
        let hasher = Arc::new(TextHasher::new("m=19456,t=2,p=1"));
        let ports = Ports {
            store: store.clone(),
            clock: Arc::new(clock.clone()),
            ids: Arc::new(CountingIds::default()),
            secrets: Arc::new(FixedSecrets),
            passwords: hasher.clone(),
            vault: Arc::new(Brackets),
            tokens: Arc::new(PlainTokens),
            throttle: Arc::new(NoThrottle),
            mailer: Arc::new(NoMail),
            webhooks: Arc::new(Accepting),
            settings: Settings::default(),
        };
        Self {
            ports,
            store,
            clock,
            hasher,
        }
    }
}
