//! Operations endpoints on the admin listener: `/metrics` (Prometheus text) and `/ready`.
//!
//! Metrics go through the `metrics` facade; the Prometheus recorder is installed once per
//! process (tests start many applications in one process) and its handle is shared.
//! `tollgate_webhook_deliveries_total` is counted by the webhook sender; the queue depth is
//! read from the store at each scrape.

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use actix_web::{HttpResponse, http::header, web};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use migration::{Migrator, MigratorTrait};
use serde_json::json;
use tollgate_adapters::{gateway::Gateway, http::admin, persistence::SeaStore};

/// Latency buckets (seconds) of `tollgate_proxy_request_duration_seconds`.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// How long `/ready` waits for the database before calling it unavailable.
const READY_TIMEOUT: Duration = Duration::from_secs(5);

static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's Prometheus handle, installing the recorder on first use. `None` when another
/// recorder was installed first (then `/metrics` answers 503).
pub fn metrics_handle() -> Option<PrometheusHandle> {
    RECORDER
        .get_or_init(|| {
            let installed = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("tollgate_proxy_request_duration_seconds".into()),
                    LATENCY_BUCKETS,
                )
                .and_then(PrometheusBuilder::install_recorder);
            match installed {
                Ok(handle) => Some(handle),
                Err(error) => {
                    tracing::warn!(%error, "metrics recorder not installed: /metrics disabled");
                    None
                }
            }
        })
        .clone()
}

/// Drains histogram buckets now and then so memory stays flat between scrapes.
pub async fn upkeep(handle: PrometheusHandle) {
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        handle.run_upkeep();
    }
}

pub struct OpsState {
    pub store: SeaStore,
    pub gateway: Arc<Gateway>,
    pub metrics: Option<PrometheusHandle>,
    pub service: tollgate_domain::service::ResourceService,
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    declare(&mut admin::Routes::serving(cfg));
}

fn declare(routes: &mut admin::Routes) {
    routes.add("/metrics", "GET", |r| r.route(web::get().to(metrics)));
    routes.add("/ready", "GET", |r| r.route(web::get().to(ready)));
}

/// Every route of the admin listener: these operations endpoints and the admin API's.
pub fn admin_routes() -> Vec<admin::AdminRoute> {
    let mut routes = admin::Routes::listing();
    declare(&mut routes);
    routes
        .into_list()
        .into_iter()
        .chain(admin::route_table())
        .collect()
}

async fn metrics(state: web::Data<OpsState>) -> HttpResponse {
    let Some(handle) = &state.metrics else {
        return HttpResponse::ServiceUnavailable()
            .content_type("text/plain; charset=utf-8")
            .body("metrics recorder unavailable\n");
    };
    let (in_use, idle) = state.store.pool_connections();
    metrics::gauge!("tollgate_db_pool_connections", "state" => "in_use").set(f64::from(in_use));
    metrics::gauge!("tollgate_db_pool_connections", "state" => "idle").set(f64::from(idle));
    match tollgate_domain::webhooks::queue_depth(&state.service).await {
        Ok(depth) => metrics::gauge!("tollgate_webhook_queue_depth").set(depth as f64),
        Err(error) => tracing::warn!(%error, "metrics: cannot read the webhook queue depth"),
    }
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        ))
        .body(handle.render())
}

/// 200 when the database answers, no migration is pending and the proxy has loaded its
/// configuration; else 503 naming the failed checks.
async fn ready(state: web::Data<OpsState>) -> HttpResponse {
    let database = match tokio::time::timeout(READY_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => {
            tracing::warn!(%error, "readiness: the database does not answer");
            Err("the database does not answer".to_owned())
        }
        Err(_) => Err(format!(
            "the database did not answer within {} s",
            READY_TIMEOUT.as_secs()
        )),
    };
    let migrations = if database.is_ok() {
        match Migrator::get_pending_migrations(state.store.connection()).await {
            Ok(pending) if pending.is_empty() => Ok(()),
            Ok(pending) => Err(format!("{} migration(s) pending", pending.len())),
            Err(error) => {
                tracing::warn!(%error, "readiness: cannot read the migration table");
                Err("cannot read the migration table".to_owned())
            }
        }
    } else {
        Err("not checked: the database does not answer".to_owned())
    };
    let proxy_config = if state.gateway.is_loaded() {
        Ok(())
    } else {
        Err("the proxy configuration is not loaded yet".to_owned())
    };
    let checks = [
        ("database", database),
        ("migrations", migrations),
        ("proxy_config", proxy_config),
    ];
    let ready = checks.iter().all(|(_, result)| result.is_ok());
    let mut body = serde_json::Map::new();
    for (name, result) in checks {
        let check = match result {
            Ok(()) => json!({"status": "ok"}),
            Err(detail) => json!({"status": "failed", "detail": detail}),
        };
        body.insert(name.to_owned(), check);
    }
    let document = json!({"status": if ready { "ready" } else { "not_ready" }, "checks": body});
    if ready {
        HttpResponse::Ok().json(document)
    } else {
        HttpResponse::ServiceUnavailable().json(document)
    }
}
