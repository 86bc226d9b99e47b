//! The background task that moves committed events to receivers. It wakes on the store's
//! commit signal (sub-millisecond in one process) and polls as a fallback (other nodes'
//! commits, retries coming due, leases of a crashed dispatcher running out).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::{
    sync::{Notify, Semaphore, watch},
    task::{JoinHandle, JoinSet},
};
use tollgate_domain::{delivery, service::ResourceService};

/// How often delivery-log rows past their retention are removed.
const PURGE_EVERY: Duration = Duration::from_secs(600);

pub struct Dispatcher {
    pub service: ResourceService,
    pub signal: Arc<Notify>,
    pub poll: Duration,
    /// Attempts in flight at most (a slow receiver holds one each).
    pub concurrency: usize,
}

/// Stops the dispatcher: no new claims, in-flight attempts finish (within a grace period).
pub struct DispatcherHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl DispatcherHandle {
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(grace, self.task).await.is_err() {
            tracing::warn!("webhook attempts still running at shutdown; their leases will expire");
        }
    }
}

/// A uniform factor in [0.9, 1.1] for retry delays.
fn jitter() -> f64 {
    let mut bytes = [0u8; 4];
    if getrandom::fill(&mut bytes).is_err() {
        return 1.0;
    }
    0.9 + 0.2 * (u32::from_le_bytes(bytes) as f64 / u32::MAX as f64)
}

impl Dispatcher {
    pub fn spawn(self) -> DispatcherHandle {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(self.run(stopped));
        DispatcherHandle { stop, task }
    }

    async fn run(self, mut stopped: watch::Receiver<bool>) {
        let permits = Arc::new(Semaphore::new(self.concurrency.max(1)));
        let mut tasks = JoinSet::new();
        let mut purged_at: Option<Instant> = None;
        while !*stopped.borrow() {
            while tasks.try_join_next().is_some() {}
            if purged_at.is_none_or(|at| at.elapsed() >= PURGE_EVERY) {
                purged_at = Some(Instant::now());
                if let Err(error) = delivery::purge_log(&self.service).await {
                    tracing::warn!(%error, "purging the webhook delivery log failed");
                }
            }
            let free = permits.available_permits();
            let mut jobs = delivery::fan_out(&self.service, free)
                .await
                .unwrap_or_else(|error| {
                    tracing::warn!(%error, "webhook fan-out failed");
                    Vec::new()
                });
            let rest = free.saturating_sub(jobs.len());
            jobs.extend(
                delivery::claim_due(&self.service, rest)
                    .await
                    .unwrap_or_else(|error| {
                        tracing::warn!(%error, "claiming webhook jobs failed");
                        Vec::new()
                    }),
            );
            let busy = !jobs.is_empty();
            for job in jobs {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let service = self.service.clone();
                tasks.spawn(async move {
                    let _permit = permit;
                    if let Err(error) = delivery::deliver(&service, job, jitter()).await {
                        tracing::warn!(%error, "recording a webhook attempt failed");
                    }
                });
            }
            if busy && permits.available_permits() > 0 {
                continue;
            }
            tokio::select! {
                _ = self.signal.notified() => {}
                _ = tokio::time::sleep(self.poll) => {}
                _ = stopped.changed() => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        while tasks.join_next().await.is_some() {}
    }
}
