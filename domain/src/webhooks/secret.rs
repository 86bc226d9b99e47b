//! Webhook signing secrets: their shape, and their stored (sealed) form.
//!
//! Signing secrets are stored sealed by the [`Vault`] (like upstream credentials): the
//! `secret` and `previous_secret` columns never hold the `whsec_…` text once written by this
//! version. A value that still starts with `whsec_` is a plaintext from an older version
//! (sealed values are standard base64, which has no `_`): it still signs, and
//! [`crate::secrets::seal_plaintext_secrets`] seals it at startup.

use crate::{error::StoreError, ports::Vault};

pub(super) fn is_secret(secret: &str) -> bool {
    let Some(body) = secret.strip_prefix("whsec_") else {
        return false;
    };
    let valid = body.len() % 4 == 0
        && body
            .trim_end_matches('=')
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
        && body.len() - body.trim_end_matches('=').len() <= 2;
    let bytes = body.len() / 4 * 3 - (body.len() - body.trim_end_matches('=').len());
    valid && (24..=64).contains(&bytes)
}

/// Whether a stored secret is still the plaintext `whsec_…` of an older version.
pub fn is_plaintext(stored: &str) -> bool {
    stored.starts_with("whsec_")
}

/// The `whsec_…` secret of a stored (sealed, or older plaintext) value.
pub fn open_secret(vault: &dyn Vault, stored: &str) -> Result<String, StoreError> {
    if is_plaintext(stored) {
        Ok(stored.to_owned())
    } else {
        vault.open(stored)
    }
}

/// The value to store for a secret: sealed, whatever form it came in.
pub fn sealed_secret(vault: &dyn Vault, stored: &str) -> Result<String, StoreError> {
    if is_plaintext(stored) {
        vault.seal(stored)
    } else {
        Ok(stored.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets() {
        assert!(is_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
        assert!(!is_secret("whsec_short"));
        assert!(!is_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
    }
}
