//! One transaction per use case: its events written and committed with it, retried when
//! the store aborts it to resolve a conflict.

use super::{ResourceService, context::Ctx};
use crate::{Actor, DomainError, events::ChangeEvent, ports::Session};

impl ResourceService {
    /// Runs `action` inside one transaction with a context, committing its events with it.
    /// A transaction the store aborted to resolve a conflict runs again (a fresh clone of
    /// `action`), a bounded number of times.
    pub async fn transact<T, F>(&self, actor: &Actor, action: F) -> Result<T, DomainError>
    where
        F: for<'c> FnOnce(
                &'c mut Ctx<'_>,
            ) -> std::pin::Pin<
                Box<dyn Future<Output = Result<T, DomainError>> + Send + 'c>,
            > + Clone,
    {
        retrying(|| self.transact_once(actor, action.clone())).await
    }

    async fn transact_once<T, F>(&self, actor: &Actor, action: F) -> Result<T, DomainError>
    where
        F: for<'c> FnOnce(
            &'c mut Ctx<'_>,
        ) -> std::pin::Pin<
            Box<dyn Future<Output = Result<T, DomainError>> + Send + 'c>,
        >,
    {
        let mut tx = self.ports.store.begin().await?;
        let mut ctx = Ctx::new(&mut *tx, actor, self.now(), &self.ports);
        let out = action(&mut ctx).await?;
        finish(ctx.events, tx).await?;
        Ok(out)
    }
}

/// How many times a use case runs when the store keeps aborting it to resolve conflicts.
pub const WRITE_ATTEMPTS: usize = 5;

/// Runs `attempt` again while the store answers [`DomainError::Busy`] (a deadlock victim, a
/// serialization failure, a lock wait that timed out), at most [`WRITE_ATTEMPTS`] times. The
/// failed attempt's transaction was rolled back whole, so running it again is safe; the last
/// `Busy` reaches the client as 503 with `Retry-After`.
pub async fn retrying<T, Fut>(mut attempt: impl FnMut() -> Fut) -> Result<T, DomainError>
where
    Fut: Future<Output = Result<T, DomainError>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(DomainError::Busy(_)) if tries < WRITE_ATTEMPTS => tries += 1,
            other => return other,
        }
    }
}

/// Writes the events and commits. A change to anything the proxy reads bumps the
/// configuration version last, so the version row is locked only for the end of the
/// transaction and versions follow commit order.
pub(super) async fn finish(
    events: Vec<ChangeEvent>,
    mut tx: Box<dyn Session>,
) -> Result<(), DomainError> {
    for event in &events {
        tx.insert("events", &event.to_row()).await?;
    }
    if events
        .iter()
        .any(|e| crate::events::changes_proxy_config(&e.event_type))
    {
        tx.bump_config_version().await?;
    }
    tx.commit().await?;
    Ok(())
}
