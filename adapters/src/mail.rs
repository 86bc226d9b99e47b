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

/// Mails through an SMTP server (`TOLLGATE_SMTP_URL`, e.g. `smtps://user:pass@mail.example.com`
/// or `smtp://mail.example.com:587?tls=required`).
pub struct SmtpMailer {
    transport: lettre::AsyncSmtpTransport<lettre::Tokio1Executor>,
    from: lettre::message::Mailbox,
}

impl SmtpMailer {
    pub fn new(url: &str, from: &str) -> Result<Self, String> {
        let transport = lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(url)
            .map_err(|e| format!("invalid SMTP URL: {e}"))?
            .build();
        let from = from
            .parse()
            .map_err(|e| format!("invalid sender address {from:?}: {e}"))?;
        Ok(Self { transport, from })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send_password_reset(&self, email: &str, token: &str) -> Result<(), StoreError> {
        use lettre::AsyncTransport;
        let to = email
            .parse()
            .map_err(|e| StoreError::Other(format!("invalid recipient: {e}")))?;
        let body = format!(
            "Someone asked to reset the password of this Tollgate account.\n\n\
             Reset token (valid for 60 minutes, usable once):\n\n    {token}\n\n\
             Send it with a new password to POST /api/auth/reset-password.\n\
             If you did not ask for this, ignore this message.\n"
        );
        let message = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject("Reset your Tollgate password")
            .body(body)
            .map_err(|e| StoreError::Other(format!("cannot build the message: {e}")))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| StoreError::Unavailable(format!("SMTP: {e}")))
    }
}
