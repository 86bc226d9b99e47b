//! Security adapters: clock, ids, random secrets and digests, argon2id passwords, AES-GCM vault.

use std::sync::Mutex;

use aes_gcm::{Aes256Gcm, KeyInit, Nonce, aead::Aead};
use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordVerifier, Version};
use async_trait::async_trait;
use base64::{Engine, engine::general_purpose::STANDARD};
use sha2::{Digest, Sha256};
use tollgate_domain::{
    Timestamp,
    error::StoreError,
    ports::{Clock, IdGenerator, PasswordHasher, SecretMint, Vault},
};

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// Monotonic ULIDs: ids created in the same millisecond still sort in creation order.
pub struct UlidIds(Mutex<ulid::Generator>);

impl Default for UlidIds {
    fn default() -> Self {
        Self(Mutex::new(ulid::Generator::new()))
    }
}

impl IdGenerator for UlidIds {
    fn new_id(&self, prefix: &str) -> String {
        let ulid = self
            .0
            .lock()
            .ok()
            .and_then(|mut g| g.generate().ok())
            .unwrap_or_else(ulid::Ulid::generate);
        format!("{prefix}{ulid}")
    }
}

/// Fills `buf` from the operating system's CSPRNG.
pub fn random_bytes(buf: &mut [u8]) {
    if getrandom::fill(buf).is_err() {
        // The OS generator does not fail on supported platforms; refuse to continue without it.
        panic!("the operating system's random generator is unavailable");
    }
}

const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// `len` characters of `[A-Za-z0-9]`, uniformly (rejection sampling).
pub fn random_alphanumeric(len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        random_bytes(&mut buf);
        for b in buf {
            // 248 = 62 * 4: larger bytes would bias the first characters.
            if b < 248 && out.len() < len {
                out.push(ALPHANUMERIC[(b % 62) as usize] as char);
            }
        }
    }
    out
}

pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

pub struct RandomSecrets;

impl SecretMint for RandomSecrets {
    fn api_key(&self, kind: &str) -> String {
        format!("tg_{kind}_{}", random_alphanumeric(40))
    }

    fn digest(&self, key: &str) -> String {
        sha256_hex(key)
    }

    fn webhook_secret(&self) -> String {
        let mut bytes = [0u8; 32];
        random_bytes(&mut bytes);
        format!("whsec_{}", STANDARD.encode(bytes))
    }

    fn reset_token(&self) -> String {
        let mut bytes = [0u8; 32];
        random_bytes(&mut bytes);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }
}

/// argon2id with the OWASP parameters (m = 19456 KiB, t = 2, p = 1), off the async threads.
///
/// Each hash costs ~19 MiB and tens of ms of a core, so the work is bounded: at most
/// `concurrency` run at once and at most three times as many more wait (for up to
/// [`HASH_WAIT`]); beyond that the call fails at once with [`StoreError::HashingBusy`] (503)
/// instead of queueing without limit.
pub struct Argon2Passwords {
    running: tokio::sync::Semaphore,
    admitted: std::sync::atomic::AtomicUsize,
    max_admitted: usize,
    /// What new hashes are made with; a stored hash made otherwise is rehashed at login.
    params: Params,
}

/// How long a hash may wait for a free slot before the request is turned away.
pub const HASH_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// What a caller turned away is told to wait (seconds).
const HASH_RETRY_AFTER: u64 = 1;

impl Argon2Passwords {
    /// `concurrency` hashes at once; 0 = two per core.
    pub fn new(concurrency: usize) -> Self {
        let concurrency = if concurrency == 0 {
            2 * std::thread::available_parallelism().map_or(2, usize::from)
        } else {
            concurrency
        };
        Self {
            running: tokio::sync::Semaphore::new(concurrency),
            admitted: std::sync::atomic::AtomicUsize::new(0),
            max_admitted: concurrency * 4,
            params: Params::DEFAULT,
        }
    }

    /// Hashes with other argon2id parameters (tests make hashes of an older setting with it).
    pub fn with_params(mut self, params: Params) -> Self {
        self.params = params;
        self
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        use std::sync::atomic::Ordering;
        /// Gives the admission back however the call ends (including a dropped future).
        struct Admission<'a>(&'a std::sync::atomic::AtomicUsize);
        impl Drop for Admission<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let busy = StoreError::HashingBusy {
            retry_after: HASH_RETRY_AFTER,
        };
        let before = self.admitted.fetch_add(1, Ordering::AcqRel);
        let _admission = Admission(&self.admitted);
        if before >= self.max_admitted {
            return Err(busy);
        }
        let _slot = match tokio::time::timeout(HASH_WAIT, self.running.acquire()).await {
            Ok(Ok(permit)) => permit,
            _ => return Err(busy),
        };
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| StoreError::Other(e.to_string()))?
    }
}

impl Default for Argon2Passwords {
    fn default() -> Self {
        Self::new(0)
    }
}

#[async_trait]
impl PasswordHasher for Argon2Passwords {
    async fn hash(&self, password: &str) -> Result<String, StoreError> {
        let password = password.to_owned();
        let argon2 = self.argon2();
        self.run(move || {
            argon2::PasswordHasher::hash_password(&argon2, password.as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| StoreError::Other(format!("password hashing failed: {e}")))
        })
        .await
    }

    async fn verify(&self, password: &str, hash: &str) -> Result<bool, StoreError> {
        let (password, hash) = (password.to_owned(), hash.to_owned());
        self.run(move || {
            let parsed = PasswordHash::new(&hash).map_err(|e| StoreError::Other(e.to_string()))?;
            Ok(Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok())
        })
        .await
    }

    /// Another algorithm or version, other memory, time or parallelism costs, or another
    /// output length than [`Self::hash`] would use now.
    fn needs_rehash(&self, hash: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(hash) else {
            return true;
        };
        let output_len = |p: &Params| p.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
        let current = &self.params;
        parsed.algorithm != argon2::ARGON2ID_IDENT
            || parsed.version != Some(u32::from(Version::V0x13))
            || Params::try_from(&parsed).map_or(true, |stored| {
                stored.m_cost() != current.m_cost()
                    || stored.t_cost() != current.t_cost()
                    || stored.p_cost() != current.p_cost()
                    || output_len(&stored) != output_len(current)
            })
    }
}

/// AES-256-GCM; sealed form is base64(nonce ‖ ciphertext).
pub struct AesVault {
    cipher: Aes256Gcm,
}

impl AesVault {
    pub fn new(key: &[u8; 32]) -> Self {
        Self {
            cipher: Aes256Gcm::new(key.into()),
        }
    }

    /// A fresh random key, base64-encoded (the `TOLLGATE_ENCRYPTION_KEY` format).
    pub fn generate_key() -> String {
        let mut key = [0u8; 32];
        random_bytes(&mut key);
        STANDARD.encode(key)
    }

    pub fn decode_key(text: &str) -> Option<[u8; 32]> {
        STANDARD.decode(text.trim()).ok()?.try_into().ok()
    }
}

impl Vault for AesVault {
    fn seal(&self, plaintext: &str) -> Result<String, StoreError> {
        let mut nonce = [0u8; 12];
        random_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext.as_bytes())
            .map_err(|_| StoreError::Other("encryption failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend(sealed);
        Ok(STANDARD.encode(out))
    }

    fn open(&self, sealed: &str) -> Result<String, StoreError> {
        let bytes = STANDARD
            .decode(sealed)
            .map_err(|_| StoreError::Other("sealed value is not base64".into()))?;
        if bytes.len() < 12 {
            return Err(StoreError::Other("sealed value is too short".into()));
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .map_err(|_| StoreError::Other("sealed value does not decrypt with this key".into()))?;
        String::from_utf8(plain).map_err(|_| StoreError::Other("sealed value is not UTF-8".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_have_the_documented_shape() {
        let key = RandomSecrets.api_key("live");
        assert!(
            tollgate_domain::auth::is_key_shaped(&key, "tg_live_"),
            "{key}"
        );
        assert_ne!(key, RandomSecrets.api_key("live"));
        assert_eq!(RandomSecrets.digest(&key).len(), 64);
    }

    #[test]
    fn webhook_secrets_are_32_bytes_of_base64() {
        let secret = RandomSecrets.webhook_secret();
        let body = secret.strip_prefix("whsec_").unwrap();
        assert_eq!(STANDARD.decode(body).unwrap().len(), 32);
    }

    #[test]
    fn vault_round_trips_and_detects_another_key() {
        let vault = AesVault::new(&[7u8; 32]);
        let sealed = vault.seal("s3cret").unwrap();
        assert_ne!(sealed, vault.seal("s3cret").unwrap());
        assert_eq!(vault.open(&sealed).unwrap(), "s3cret");
        assert!(AesVault::new(&[8u8; 32]).open(&sealed).is_err());
    }

    #[tokio::test]
    async fn argon2id_hashes_verify() {
        let hasher = Argon2Passwords::default();
        let hash = hasher.hash("correct horse battery").await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(hasher.verify("correct horse battery", &hash).await.unwrap());
        assert!(!hasher.verify("wrong horse battery", &hash).await.unwrap());
    }

    #[tokio::test]
    async fn hashes_of_older_parameters_verify_and_ask_for_a_rehash() {
        let current = Argon2Passwords::default();
        let older = Argon2Passwords::default().with_params(Params::new(4096, 3, 1, None).unwrap());
        let old_hash = older.hash("correct horse battery").await.unwrap();
        assert!(old_hash.starts_with("$argon2id$v=19$m=4096,t=3,p=1$"));
        assert!(
            current
                .verify("correct horse battery", &old_hash)
                .await
                .unwrap()
        );
        assert!(current.needs_rehash(&old_hash));
        let fresh = current.hash("correct horse battery").await.unwrap();
        assert!(!current.needs_rehash(&fresh));
        assert!(older.needs_rehash(&fresh), "the other way round too");
        // Another argon2 variant, or no PHC string at all.
        let argon2i = argon2::PasswordHasher::hash_password(
            &Argon2::new(Algorithm::Argon2i, Version::V0x13, Params::DEFAULT),
            b"correct horse battery",
        )
        .unwrap()
        .to_string();
        assert!(current.needs_rehash(&argon2i));
        assert!(current.needs_rehash("not a hash"));
    }

    #[tokio::test]
    async fn hashing_beyond_the_bound_is_refused_not_queued() {
        let hasher = std::sync::Arc::new(Argon2Passwords::new(1));
        let calls: Vec<_> = (0..12)
            .map(|_| {
                let hasher = hasher.clone();
                tokio::spawn(async move { hasher.hash("correct horse battery").await })
            })
            .collect();
        let (mut done, mut busy) = (0, 0);
        for call in calls {
            match call.await.unwrap() {
                Ok(_) => done += 1,
                Err(StoreError::HashingBusy { .. }) => busy += 1,
                Err(other) => panic!("{other}"),
            }
        }
        // One runs, three wait; the other eight are turned away at once.
        assert_eq!((done, busy), (4, 8));
    }

    #[tokio::test]
    async fn the_throttle_counts_before_the_verdict() {
        use tollgate_domain::ports::LoginThrottle;
        let throttle = MemoryThrottle::default();
        for _ in 0..EMAIL_LIMIT {
            throttle.reserve("a@b.c", "10.0.0.1").await.unwrap();
        }
        // Five in flight fill the budget: the sixth waits a second, it is no lock yet.
        assert_eq!(throttle.reserve("a@b.c", "10.0.0.1").await, Err(1));
        // An undecided attempt gives its place back; a success clears the failures.
        throttle.release("a@b.c", "10.0.0.1").await;
        throttle.reserve("a@b.c", "10.0.0.1").await.unwrap();
        throttle.succeeded("a@b.c", "10.0.0.1").await;
        for _ in 0..EMAIL_LIMIT - 1 {
            throttle.failed("a@b.c", "10.0.0.1").await;
        }
        throttle.reserve("a@b.c", "10.0.0.1").await.unwrap();
        // Five failures lock the email for the window.
        throttle.failed("a@b.c", "10.0.0.1").await;
        let locked = throttle.reserve("a@b.c", "10.0.0.1").await.unwrap_err();
        assert!((890..=900).contains(&locked), "{locked}");
        // The IP counts failures across emails.
        for i in 0..IP_LIMIT {
            throttle
                .reserve(&format!("x{i}@b.c"), "10.0.0.2")
                .await
                .unwrap();
            throttle.failed(&format!("x{i}@b.c"), "10.0.0.2").await;
        }
        assert!(throttle.reserve("other@b.c", "10.0.0.2").await.unwrap_err() > 1);
        assert!(throttle.reserve("other@b.c", "10.0.0.3").await.is_ok());
    }

    #[test]
    fn the_throttle_map_is_bounded() {
        let now = 1_000_000;
        let lock = |throttle: &MemoryThrottle, email: &str, ip: &str| {
            for _ in 0..EMAIL_LIMIT {
                throttle.reserve_at(email, ip, now).unwrap();
                throttle.failed_at(email, ip, now);
            }
        };
        // Full: unlocked counters make room, locks stay.
        let throttle = MemoryThrottle::with_capacity(4);
        lock(&throttle, "victim", "a");
        throttle.reserve_at("x", "b", now).unwrap();
        throttle.failed_at("x", "b", now);
        throttle.reserve_at("y", "c", now).unwrap();
        throttle.failed_at("y", "c", now);
        assert!(throttle.len() <= 4, "{}", throttle.len());
        assert!(throttle.reserve_at("victim", "d", now + 1).unwrap_err() > 1);
        // Entries past their window and lock are swept when room is needed.
        throttle.reserve_at("z", "e", now + WINDOW_MS + 1).unwrap();
        assert_eq!(throttle.len(), 2);
        // Only locks left and no room: new keys are refused, not let through.
        let full = MemoryThrottle::with_capacity(2);
        lock(&full, "v1", "a");
        assert!(full.reserve_at("v2", "b", now).is_err());
    }
}

/// HS256 JWTs with `iss: "tollgate"`, `aud: "tollgate-admin"`, 30 s leeway; nothing else accepted.
pub struct JwtCodec {
    encoding: jsonwebtoken::EncodingKey,
    decoding: jsonwebtoken::DecodingKey,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct JwtClaims {
    iss: String,
    aud: String,
    sub: String,
    role: String,
    sid: String,
    jti: String,
    iat: i64,
    exp: i64,
}

impl JwtCodec {
    pub const ISSUER: &'static str = "tollgate";
    pub const AUDIENCE: &'static str = "tollgate-admin";

    pub fn new(secret: &[u8]) -> Self {
        Self {
            encoding: jsonwebtoken::EncodingKey::from_secret(secret),
            decoding: jsonwebtoken::DecodingKey::from_secret(secret),
        }
    }
}

impl tollgate_domain::ports::TokenCodec for JwtCodec {
    fn issue(&self, claims: &tollgate_domain::ports::TokenClaims) -> Result<String, StoreError> {
        let body = JwtClaims {
            iss: Self::ISSUER.into(),
            aud: Self::AUDIENCE.into(),
            sub: claims.sub.clone(),
            role: claims.role.clone(),
            sid: claims.sid.clone(),
            jti: claims.jti.clone(),
            iat: claims.iat,
            exp: claims.exp,
        };
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &body,
            &self.encoding,
        )
        .map_err(|e| StoreError::Other(format!("token signing failed: {e}")))
    }

    fn verify(&self, token: &str) -> Option<tollgate_domain::ports::TokenClaims> {
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.set_issuer(&[Self::ISSUER]);
        validation.set_audience(&[Self::AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        validation.leeway = 30;
        let data = jsonwebtoken::decode::<JwtClaims>(token, &self.decoding, &validation).ok()?;
        let c = data.claims;
        Some(tollgate_domain::ports::TokenClaims {
            sub: c.sub,
            role: c.role,
            sid: c.sid,
            jti: c.jti,
            iat: c.iat,
            exp: c.exp,
        })
    }
}

/// Failed-login counters in process memory: 5 per email and 20 per IP within 15 minutes lock
/// that email or IP for 15 minutes. Attempts in flight hold their place: while failures plus
/// pending attempts fill the budget, a further attempt gets 429 with `Retry-After: 1`.
///
/// The map is bounded: entries whose window and lock have passed (and with nothing pending)
/// are swept, and when it is full of live entries the unlocked ones are dropped to make room;
/// locked ones are kept. If locks alone fill it, new keys are refused (fail closed, with a
/// retry after one window) rather than evicting a lock an attacker has earned.
pub struct MemoryThrottle {
    state: Mutex<ThrottleState>,
    capacity: usize,
}

#[derive(Default)]
struct ThrottleState {
    entries: std::collections::HashMap<String, Counter>,
    last_sweep: i64,
}

/// One key's failures in the current window, attempts in flight, and the end of its lock.
#[derive(Clone, Copy)]
struct Counter {
    failures: u32,
    pending: u32,
    window_start: i64,
    locked_until: i64,
}

impl Counter {
    fn new(now: i64) -> Self {
        Self {
            failures: 0,
            pending: 0,
            window_start: now,
            locked_until: 0,
        }
    }

    /// A window over: its failures no longer count.
    fn roll(&mut self, now: i64) {
        if self.window_start + WINDOW_MS <= now {
            self.failures = 0;
            self.window_start = now;
        }
    }

    fn expired(&self, now: i64) -> bool {
        self.pending == 0 && self.window_start + WINDOW_MS <= now && self.locked_until <= now
    }
}

/// Entries kept at most (a few MB: keys are ≤ 260 bytes).
pub const THROTTLE_CAPACITY: usize = 100_000;

impl Default for MemoryThrottle {
    fn default() -> Self {
        Self::with_capacity(THROTTLE_CAPACITY)
    }
}

/// The throttle's window and lock length, and its limits (auth.md §8).
pub const WINDOW_MS: i64 = 15 * 60 * 1000;
pub const EMAIL_LIMIT: u32 = 5;
pub const IP_LIMIT: u32 = 20;

fn seconds_left(until: i64, now: i64) -> u64 {
    ((until - now).max(1) as u64).div_ceil(1000)
}

fn keys(email: &str, ip: &str) -> [(String, u32); 2] {
    [
        (format!("email:{email}"), EMAIL_LIMIT),
        (format!("ip:{ip}"), IP_LIMIT),
    ]
}

impl MemoryThrottle {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            state: Mutex::new(ThrottleState::default()),
            capacity: capacity.max(2),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.state.lock().map(|s| s.entries.len()).unwrap_or(0)
    }

    /// Makes room for `needed` new keys; false when only locks and pending attempts are left.
    fn make_room(&self, state: &mut ThrottleState, needed: usize, now: i64) -> bool {
        if state.entries.len() + needed <= self.capacity {
            return true;
        }
        // Sweeping is O(n): at most once a second when the map stays full.
        if state.last_sweep + 1000 <= now {
            state.last_sweep = now;
            state.entries.retain(|_, c| !c.expired(now));
            if state.entries.len() + needed <= self.capacity {
                return true;
            }
        }
        state
            .entries
            .retain(|_, c| c.locked_until > now || c.pending > 0);
        state.entries.len() + needed <= self.capacity
    }

    fn reserve_at(&self, email: &str, ip: &str, now: i64) -> Result<(), u64> {
        let keys = keys(email, ip);
        let Ok(mut state) = self.state.lock() else {
            return Err(seconds_left(now + WINDOW_MS, now));
        };
        let mut busy = false;
        for (key, limit) in &keys {
            if let Some(counter) = state.entries.get_mut(key) {
                if counter.locked_until > now {
                    return Err(seconds_left(counter.locked_until, now));
                }
                counter.roll(now);
                busy |= counter.failures + counter.pending >= *limit;
            }
        }
        if busy {
            return Err(1);
        }
        let needed = keys
            .iter()
            .filter(|(key, _)| !state.entries.contains_key(key))
            .count();
        if !self.make_room(&mut state, needed, now) {
            return Err(seconds_left(now + WINDOW_MS, now));
        }
        for (key, _) in keys {
            state
                .entries
                .entry(key)
                .or_insert(Counter::new(now))
                .pending += 1;
        }
        Ok(())
    }

    fn failed_at(&self, email: &str, ip: &str, now: i64) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        for (key, limit) in keys(email, ip) {
            let counter = state.entries.entry(key).or_insert(Counter::new(now));
            counter.pending = counter.pending.saturating_sub(1);
            counter.roll(now);
            counter.failures += 1;
            // The lock lasts 15 minutes from the failure that reached the limit.
            if counter.failures >= limit {
                counter.locked_until = now + WINDOW_MS;
            }
        }
    }

    /// Ends one pending attempt of `key`; `clear` also forgets its failures.
    fn settle(state: &mut ThrottleState, key: &str, clear: bool) {
        if let Some(counter) = state.entries.get_mut(key) {
            counter.pending = counter.pending.saturating_sub(1);
            if clear {
                counter.failures = 0;
                counter.locked_until = 0;
                if counter.pending == 0 {
                    state.entries.remove(key);
                }
            }
        }
    }
}

#[async_trait]
impl tollgate_domain::ports::LoginThrottle for MemoryThrottle {
    async fn reserve(&self, email: &str, ip: &str) -> Result<(), u64> {
        self.reserve_at(email, ip, Timestamp::now().millis())
    }

    async fn failed(&self, email: &str, ip: &str) {
        self.failed_at(email, ip, Timestamp::now().millis());
    }

    async fn succeeded(&self, email: &str, ip: &str) {
        if let Ok(mut state) = self.state.lock() {
            Self::settle(&mut state, &format!("email:{email}"), true);
            Self::settle(&mut state, &format!("ip:{ip}"), false);
        }
    }

    async fn release(&self, email: &str, ip: &str) {
        if let Ok(mut state) = self.state.lock() {
            Self::settle(&mut state, &format!("email:{email}"), false);
            Self::settle(&mut state, &format!("ip:{ip}"), false);
        }
    }
}
