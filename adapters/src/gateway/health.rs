//! Active health checks (seed 003): every upstream with a `health_check_path` gets a GET each
//! interval; a 2xx within its `timeout_ms` is `up`, anything else `down`. The result is shown
//! on the upstream resource; it does not change routing and emits no event.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use serde_json::json;
use tollgate_domain::{Row, query::Cond};

use super::{Gateway, upstream};

/// Runs forever (the task is dropped at shutdown).
pub async fn run(gateway: Arc<Gateway>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let upstreams: Vec<_> = gateway
            .config()
            .upstreams
            .values()
            .filter(|u| u.health_check_path.is_some())
            .cloned()
            .collect();
        let probes = upstreams.into_iter().map(|upstream| {
            let gateway = gateway.clone();
            async move {
                let path = upstream.health_check_path.clone().unwrap_or_default();
                let up = probe(
                    &upstream.base_url,
                    &path,
                    upstream.connect_timeout_ms,
                    upstream.timeout_ms,
                )
                .await;
                record(&gateway, &upstream.id, up).await;
            }
        });
        futures_util::future::join_all(probes).await;
    }
}

async fn probe(base_url: &str, path: &str, connect_timeout_ms: u64, timeout_ms: u64) -> bool {
    let Ok(uri) = format!("{base_url}{path}").parse::<http::Uri>() else {
        return false;
    };
    let mut request = http::Request::new(
        Empty::<Bytes>::new()
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *request.uri_mut() = uri;
    let answer = tokio::time::timeout(
        Duration::from_millis(timeout_ms),
        upstream::client(connect_timeout_ms).request(request),
    )
    .await;
    matches!(answer, Ok(Ok(response)) if response.status().is_success())
}

async fn record(gateway: &Gateway, upstream_id: &str, up: bool) {
    let mut values = Row::new();
    values.insert("health".into(), json!(if up { "up" } else { "down" }));
    values.insert("health_checked_at".into(), json!(gateway.now().millis()));
    let result = async {
        let mut tx = gateway.store.begin().await?;
        tx.set_where("upstreams", &Cond::eq("id", upstream_id), &values)
            .await?;
        tx.commit().await
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, upstream = upstream_id, "cannot record upstream health");
    }
}
