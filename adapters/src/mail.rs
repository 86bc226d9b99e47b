//! Mail adapters. Without SMTP, development mode logs the reset link at WARN; otherwise
//! nothing is sent (and the API still answers 200, so nothing leaks either way).

use async_trait::async_trait;
use tollgate_domain::{error::StoreError, ports::Mailer};

/// Logs reset tokens instead of mailing them (`TOLLGATE_DEV_MODE=true` without SMTP).
pub struct LogMailer;

#[async_trait]
impl Mailer for LogMailer {
    async fn send_password_reset(&self, email: &str, token: &str) -> Result<(), StoreError> {
        tracing::warn!(%email, reset_token = %token, "password reset requested (development mode: not mailed)");
        Ok(())
    }
}

/// Sends nothing: no mail transport is configured.
pub struct NoMailer;

#[async_trait]
impl Mailer for NoMailer {
    async fn send_password_reset(&self, email: &str, _token: &str) -> Result<(), StoreError> {
        tracing::info!(%email, "password reset requested, but no mail transport is configured");
        Ok(())
    }
}
