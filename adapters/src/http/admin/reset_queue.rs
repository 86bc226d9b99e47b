//! Password-reset requests are handled after the answer: `POST /api/auth/forgot-password`
//! answers the same 200 at once for every address, and one background worker looks the address
//! up, applies the hourly limit, stores the token and mails it. So neither the database work nor
//! the mail (SMTP can take seconds) shows in the response time of a known address.

use std::time::Duration;

use tokio::sync::mpsc;
use tollgate_domain::account::Accounts;

/// Requests waiting at most; beyond it new ones are dropped (logged), never queued unbounded.
pub const RESET_QUEUE_CAPACITY: usize = 1024;

/// One request may take this long (lookup, token, mail) before the worker moves on.
const PER_REQUEST: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct ResetQueue {
    sender: mpsc::Sender<String>,
}

impl ResetQueue {
    /// Starts the worker on the current tokio runtime. One worker, in order: requests for one
    /// address are decided one after the other (the hourly limit counts exactly), and a flood
    /// cannot occupy more than one database connection.
    pub fn start(accounts: Accounts) -> Self {
        let (sender, mut receiver) = mpsc::channel::<String>(RESET_QUEUE_CAPACITY);
        tokio::spawn(async move {
            while let Some(email) = receiver.recv().await {
                match tokio::time::timeout(PER_REQUEST, accounts.forgot_password(&email)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(err)) => tracing::error!(error = %err, "password reset request failed"),
                    Err(_) => tracing::error!("password reset request timed out"),
                }
            }
        });
        Self { sender }
    }

    /// Queues a request for `email` (addresses no account can have are not queued).
    pub fn submit(&self, email: &str) {
        let Some(email) = tollgate_domain::account::reset_address(email) else {
            return;
        };
        if self.sender.try_send(email).is_err() {
            tracing::warn!("password reset queue full: request dropped");
        }
    }
}
