//! Signatures receivers check (webhooks.md §4): Standard Webhooks `v1` and the hex digest
//! APIGate-style verifiers expect.

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// `None` only if the HMAC implementation refused the key (it takes any length).
fn hmac(key: &[u8], parts: &[&[u8]]) -> Option<Vec<u8>> {
    let mut mac = HmacSha256::new_from_slice(key).ok()?;
    for part in parts {
        mac.update(part);
    }
    Some(mac.finalize().into_bytes().to_vec())
}

/// `v1,<base64 HMAC-SHA256("id.timestamp.body")>` keyed with the base64-decoded part of a
/// `whsec_` secret; `None` for a secret that does not decode.
pub fn standard_signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .ok()?;
    let timestamp = timestamp.to_string();
    let mac = hmac(
        &key,
        &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body],
    )?;
    Some(format!("v1,{}", STANDARD.encode(mac)))
}

/// The `webhook-signature` header: one `v1,…` per secret, space-separated, newest first.
pub fn signature_header(secrets: &[String], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .filter_map(|s| standard_signature(s, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `X-Webhook-Signature`: lower-case hex HMAC-SHA256 of the body keyed with the whole secret.
pub fn hex_signature(secret: &str, body: &[u8]) -> Option<String> {
    hmac(secret.as_bytes(), &[body]).map(hex::encode)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const BODY: &str = r#"{"id":"evt_01JD0W3X5Z7B9D1F3H5K7M9P1R","type":"api_key.revoked","timestamp":"2025-01-19T10:30:00Z","data":{"object":{"type":"api_keys","id":"key_01JD0S2B4D6F8H0K2M4P6R8T0V","attributes":{"name":"prod","prefix":"tg_live_7Qm2xK9a","revoked_at":"2025-01-19T10:30:00Z"}},"actor_id":"usr_01JD0R8D2S4F6H8K0M2P4R6T8V"}}"#;

    #[test]
    fn matches_the_worked_example_of_the_spec() {
        assert_eq!(BODY.len(), 312);
        assert_eq!(
            standard_signature(
                SECRET,
                "evt_01JD0W3X5Z7B9D1F3H5K7M9P1R",
                1_737_282_600,
                BODY.as_bytes()
            )
            .as_deref(),
            Some("v1,R8eyQ6D+Ptp58OMFc6iZMFRC/Qhf6WBFbXSCy6NZsT0=")
        );
        assert_eq!(
            hex_signature(SECRET, BODY.as_bytes()).as_deref(),
            Some("33fb8190a61ea30153a5e7c509251604f3db143d63723a3f34ff17d0955dab5d")
        );
    }

    #[test]
    fn signs_with_every_secret_during_a_rotation() {
        let header = signature_header(
            &[
                SECRET.to_owned(),
                "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned(),
            ],
            "evt_1",
            1,
            b"{}",
        );
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.starts_with("v1,")));
        assert_ne!(parts[0], parts[1]);
    }
}
