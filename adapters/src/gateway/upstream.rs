//! The upstream client: hyper-util's pooled client (HTTP/1.1 keep-alive, HTTPS via rustls).
//! One client per worker thread and connect timeout, so each worker keeps its own warm pool
//! and a request never crosses threads.

use std::{cell::RefCell, collections::HashMap, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};

pub type BodyError = Box<dyn std::error::Error + Send + Sync>;
/// A request body: empty, or chunks pumped from the client connection.
pub type UpstreamBody = UnsyncBoxBody<Bytes, BodyError>;
pub type UpstreamClient = Client<HttpsConnector<HttpConnector>, UpstreamBody>;

thread_local! {
    static CLIENTS: RefCell<HashMap<u64, UpstreamClient>> = RefCell::new(HashMap::new());
}

/// The client of this worker for upstreams with `connect_timeout_ms`.
pub fn client(connect_timeout_ms: u64) -> UpstreamClient {
    CLIENTS.with(|clients| {
        clients
            .borrow_mut()
            .entry(connect_timeout_ms)
            .or_insert_with(|| build(connect_timeout_ms))
            .clone()
    })
}

fn build(connect_timeout_ms: u64) -> UpstreamClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_keepalive(Some(Duration::from_secs(60)));
    http.set_connect_timeout(Some(Duration::from_millis(connect_timeout_ms)));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let https =
        match hyper_rustls::HttpsConnectorBuilder::new().with_provider_and_webpki_roots(provider) {
            Ok(builder) => builder.https_or_http().enable_http1().wrap_connector(http),
            // Only fails when the provider lacks safe defaults, which aws-lc-rs has.
            Err(e) => panic!("TLS client configuration: {e}"),
        };
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(1024)
        .build(https)
}
