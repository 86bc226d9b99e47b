//! Change propagation (proxy.md §8): every transaction that changes proxy configuration bumps
//! the configuration version (one counter row, so commit order is version order). Poll it every
//! 250 ms (or at once when this node's admin API signals a commit) and swap in a freshly loaded
//! snapshot when it moved.

use std::{sync::Arc, time::Duration};

use tollgate_domain::proxy::config::{current_version, load};

use super::Gateway;

pub const POLL: Duration = Duration::from_millis(250);

/// Loads the first snapshot; the server should not route before it exists.
pub async fn initial(gateway: &Gateway) -> Result<(), tollgate_domain::error::StoreError> {
    let config = load(gateway.store.as_ref(), gateway.vault.as_ref()).await?;
    gateway.install(config);
    Ok(())
}

/// Runs forever (the task is dropped at shutdown).
pub async fn run(gateway: Arc<Gateway>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = gateway.changed.notified() => {}
        }
        match current_version(gateway.store.as_ref()).await {
            Ok(version) if version == gateway.config().version => continue,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot poll for configuration changes");
                continue;
            }
        }
        match load(gateway.store.as_ref(), gateway.vault.as_ref()).await {
            Ok(config) => {
                tracing::debug!(
                    routes = config.routes.len(),
                    keys = config.keys.len(),
                    "proxy configuration reloaded"
                );
                gateway.install(config);
            }
            Err(e) => tracing::warn!(error = %e, "cannot reload the proxy configuration"),
        }
    }
}
