//! One request's context, carried through every phase: what is known about the request so
//! far (its usage record), the limit headers decided, and the clock reading all phases share.
//! It ends exactly once, in [`Exchange::finish`]: metrics, the access-log line and the usage
//! record — for a refusal when the refusal is rendered, for a forwarded request when the
//! answer's body ends (or the client goes away).

use std::{
    cell::RefCell,
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Instant,
};

use http::{
    Response, StatusCode,
    header::{self, HeaderValue},
    request::Parts,
};
use tollgate_domain::{
    Timestamp,
    proxy::{
        config::FastMap,
        policy::Refusal,
        usage::{self, UsageRecord},
    },
};

use super::answer::{LimitHeaders, ProxyBody, error_response, header_text};
use crate::gateway::{Gateway, access_log::AccessLine};

pub(crate) struct Exchange {
    pub gateway: Arc<Gateway>,
    pub started: Instant,
    /// The one clock reading of the request: limits, quota period and record agree on it.
    pub now: Timestamp,
    pub record: UsageRecord,
    /// The stored prefix of a well-formed key (never the key itself), for the log line.
    pub key_prefix: Option<String>,
    pub limits: LimitHeaders,
    /// The client's address as the proxy believes it (see [`client_ip`]).
    pub client_ip: IpAddr,
    /// The `X-Forwarded-For` chain to send on, when a trusted proxy sent one.
    pub forwarded_for: Option<String>,
    /// The host the client asked for, port removed, lower-case.
    pub host: String,
}

impl Exchange {
    /// The context of a request that is to be routed.
    pub fn begin(
        gateway: &Arc<Gateway>,
        parts: &Parts,
        peer: SocketAddr,
        request_id: String,
        started: Instant,
    ) -> Self {
        let now = gateway.now();
        let host = request_host(parts);
        let (client_ip, forwarded_for) = client_ip(parts, peer, gateway);
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        // The first 256 characters, copied once (not collected char by char).
        let user_agent = user_agent
            .char_indices()
            .nth(256)
            .map_or(user_agent, |(end, _)| &user_agent[..end])
            .to_owned();
        let record = UsageRecord {
            id: gateway.ids.new_id("use_"),
            request_id,
            created_at: now.millis(),
            method: parts.method.as_str().to_owned(),
            host: usage::truncate(&host, usage::MAX_HOST_BYTES).to_owned(),
            path: usage::truncate(parts.uri.path(), usage::MAX_PATH_BYTES).to_owned(),
            client_ip: client_ip.to_string(),
            user_agent,
            ..UsageRecord::default()
        };
        Self {
            gateway: gateway.clone(),
            started,
            now,
            record,
            key_prefix: None,
            limits: LimitHeaders::default(),
            client_ip,
            forwarded_for,
            host,
        }
    }

    pub fn request_id(&self) -> &str {
        &self.record.request_id
    }

    /// The one place every routed request ends: metrics, the access-log line, the usage
    /// record.
    pub fn finish(mut self, status: u16, error: Option<&'static str>, response_bytes: u64) {
        let elapsed = self.started.elapsed();
        self.record.status_code = status;
        self.record.error_code = error;
        self.record.response_bytes = response_bytes;
        self.record.duration_ms = elapsed.as_millis() as u64;
        observe(&self, elapsed.as_secs_f64());
        let gateway = self.gateway;
        gateway.meter(self.record);
    }

    /// Every refusal of the lifecycle: the spec's JSON body, its headers, and the record.
    pub fn refuse(self, refusal: Refusal) -> Response<ProxyBody> {
        let status =
            StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = error_response(
            status,
            refusal.code(),
            &refusal.message(),
            self.request_id(),
        );
        let length = hyper::body::Body::size_hint(response.body())
            .exact()
            .unwrap_or(0);
        let headers = response.headers_mut();
        self.limits.apply(headers, self.gateway.now());
        match &refusal {
            Refusal::MissingApiKey => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"tollgate\""),
                );
            }
            Refusal::MethodNotAllowed(allowed) => {
                headers.insert(header::ALLOW, header_text(&allowed.join(", ")));
            }
            Refusal::RateLimited { retry_after, .. } | Refusal::QuotaExceeded { retry_after } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            _ => {}
        }
        self.finish(refusal.status(), Some(refusal.code()), length);
        response
    }
}

/// The host the client asked for: `Host` (or the URI authority), port removed, lower-case.
fn request_host(parts: &Parts) -> String {
    let raw = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
        .unwrap_or_default();
    if raw.starts_with('[') {
        let address = raw.split(']').next().unwrap_or_default();
        return format!("{address}]").to_ascii_lowercase();
    }
    raw.split(':')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// The client's address: the peer, or — when the peer is a trusted proxy — the last address
/// of its `X-Forwarded-For` chain, which is then sent on with the peer appended.
fn client_ip(parts: &Parts, peer: SocketAddr, gateway: &Gateway) -> (IpAddr, Option<String>) {
    let peer = peer.ip();
    let trusted = gateway
        .settings
        .trusted_proxies
        .iter()
        .any(|net| net.contains(&peer));
    if !trusted {
        return (peer, None);
    }
    let Some(chain) = parts
        .headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
    else {
        return (peer, None);
    };
    let client = chain
        .split(',')
        .map(str::trim)
        .filter_map(|ip| ip.parse::<IpAddr>().ok())
        .next_back()
        .unwrap_or(peer);
    (client, Some(format!("{chain}, {peer}")))
}

/// `2xx`, `4xx`, …: the status label (bounded, unlike the status itself).
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// A route's metric handles, kept per worker thread: looking a labelled metric up in the
/// registry on every request (building its key, hashing the labels) showed in profiles.
struct RouteMetrics {
    duration: metrics::Histogram,
    requests: FastMap<(&'static str, &'static str), metrics::Counter>,
}

thread_local! {
    static ROUTE_METRICS: RefCell<FastMap<String, RouteMetrics>> = RefCell::default();
}

impl RouteMetrics {
    fn with(route: &str, f: impl FnOnce(&mut RouteMetrics)) {
        ROUTE_METRICS.with(|all| {
            let mut all = all.borrow_mut();
            if !all.contains_key(route) {
                let duration = metrics::histogram!(
                    "tollgate_proxy_request_duration_seconds",
                    "route" => route.to_owned()
                );
                all.insert(
                    route.to_owned(),
                    RouteMetrics {
                        duration,
                        requests: FastMap::default(),
                    },
                );
            }
            if let Some(metrics) = all.get_mut(route) {
                f(metrics);
            }
        });
    }
}

/// Metrics and the per-request log line. Labels are route ids, status classes and error
/// codes only — never key or user ids.
fn observe(exchange: &Exchange, seconds: f64) {
    let record = &exchange.record;
    let route = record.route_id.as_deref().unwrap_or("none");
    let code = record.error_code.unwrap_or("OK");
    let class = status_class(record.status_code);
    RouteMetrics::with(route, |metrics| {
        metrics.duration.record(seconds);
        metrics
            .requests
            .entry((class, code))
            .or_insert_with(|| {
                metrics::counter!(
                    "tollgate_proxy_requests_total",
                    "route" => route.to_owned(),
                    "status" => class,
                    "code" => code,
                )
            })
            .increment(1);
    });
    if record.error_code.is_some() && record.status_code < 500 {
        metrics::counter!("tollgate_proxy_rejected_total", "code" => code).increment(1);
    }
    exchange.gateway.access_log.record(&AccessLine {
        at: Timestamp::from_millis(record.created_at),
        request_id: &record.request_id,
        method: &record.method,
        path: &record.path,
        route,
        status: record.status_code,
        code,
        latency_ms: seconds * 1000.0,
        key_prefix: exchange.key_prefix.as_deref().unwrap_or("-"),
    });
}
