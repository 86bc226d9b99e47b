//! Security adapters: clock, ids, random secrets and digests, argon2id passwords, AES-GCM vault.

use std::sync::Mutex;

use aes_gcm::{Aes256Gcm, KeyInit, Nonce, aead::Aead};
use argon2::{Argon2, PasswordHash, PasswordVerifier};
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
pub struct Argon2Passwords;

#[async_trait]
impl PasswordHasher for Argon2Passwords {
    async fn hash(&self, password: &str) -> Result<String, StoreError> {
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || {
            argon2::PasswordHasher::hash_password(&Argon2::default(), password.as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| StoreError::Other(format!("password hashing failed: {e}")))
        })
        .await
        .map_err(|e| StoreError::Other(e.to_string()))?
    }

    async fn verify(&self, password: &str, hash: &str) -> Result<bool, StoreError> {
        let (password, hash) = (password.to_owned(), hash.to_owned());
        tokio::task::spawn_blocking(move || {
            let parsed = PasswordHash::new(&hash).map_err(|e| StoreError::Other(e.to_string()))?;
            Ok(Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok())
        })
        .await
        .map_err(|e| StoreError::Other(e.to_string()))?
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
        let hash = Argon2Passwords.hash("correct horse battery").await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(
            Argon2Passwords
                .verify("correct horse battery", &hash)
                .await
                .unwrap()
        );
        assert!(
            !Argon2Passwords
                .verify("wrong horse battery", &hash)
                .await
                .unwrap()
        );
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
/// that email or IP for 15 minutes.
pub struct MemoryThrottle {
    entries: Mutex<std::collections::HashMap<String, (u32, i64)>>,
}

impl Default for MemoryThrottle {
    fn default() -> Self {
        Self {
            entries: Mutex::new(std::collections::HashMap::new()),
        }
    }
}

const WINDOW_MS: i64 = 15 * 60 * 1000;
const EMAIL_LIMIT: u32 = 5;
const IP_LIMIT: u32 = 20;

impl MemoryThrottle {
    fn locked(&self, key: &str, limit: u32, now: i64) -> Option<u64> {
        let entries = self.entries.lock().ok()?;
        let (count, since) = entries.get(key)?;
        let left = since + WINDOW_MS - now;
        (*count >= limit && left > 0).then(|| (left as u64).div_ceil(1000))
    }

    fn bump(&self, key: String, now: i64) {
        if let Ok(mut entries) = self.entries.lock() {
            let entry = entries.entry(key).or_insert((0, now));
            if entry.1 + WINDOW_MS <= now {
                *entry = (0, now);
            }
            entry.0 += 1;
            // The lock lasts 15 minutes from the failure that triggered it.
            if entry.0 == EMAIL_LIMIT || entry.0 == IP_LIMIT {
                entry.1 = now;
            }
        }
    }
}

#[async_trait]
impl tollgate_domain::ports::LoginThrottle for MemoryThrottle {
    async fn retry_after(&self, email: &str, ip: &str) -> Option<u64> {
        let now = Timestamp::now().millis();
        self.locked(&format!("email:{email}"), EMAIL_LIMIT, now)
            .or_else(|| self.locked(&format!("ip:{ip}"), IP_LIMIT, now))
    }

    async fn record_failure(&self, email: &str, ip: &str) {
        let now = Timestamp::now().millis();
        self.bump(format!("email:{email}"), now);
        self.bump(format!("ip:{ip}"), now);
    }

    async fn clear(&self, email: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(&format!("email:{email}"));
        }
    }
}
