//! The proxy listener (proxy.md): match a route, check the key, owner and plan, take a rate
//! token, count the quota, then stream the request to the upstream and the answer back.
//! Every outcome is metered. hyper 1.x end to end: the request's parts are edited in place
//! and forwarded, so no header map is rebuilt and no header converted.

mod forward;
mod headers;
pub mod server;

use std::{
    cell::RefCell,
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use bytes::Bytes;
use http::{
    HeaderMap, Request, Response, StatusCode,
    header::{self, HeaderName, HeaderValue},
};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use serde_json::json;
use sha2::{Digest, Sha256};
use tollgate_domain::{
    Timestamp,
    proxy::{
        limits::RateDecision,
        path::canonical_path,
        policy::{self, Caller, Refusal},
        routing::{Lookup, forwarded_path},
        usage::{self, UsageRecord},
    },
};

use crate::{
    gateway::{BucketKey, Gateway, QuotaState, access_log::AccessLine},
    http::request_id,
};

/// The `Allow` of a `TRACE` or `CONNECT` refusal: the standard methods the proxy forwards
/// (other extension methods pass too, when a route allows them).
const FORWARDED_METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// What the proxy answers with: a body it made (errors, health), or the upstream's answer
/// streaming through the meter.
// The upstream variant carries the request's usage record; the body is moved into hyper's
// response once and not copied around, so boxing it would only add an allocation a request.
#[allow(clippy::large_enum_variant)]
pub enum ProxyBody {
    Full(Option<Bytes>),
    Upstream(forward::Metered),
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            Self::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Self::Upstream(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Full(bytes) => bytes.is_none(),
            Self::Upstream(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Self::Upstream(body) => body.size_hint(),
        }
    }
}

static APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

/// A JSON answer Tollgate makes itself.
fn json_response(status: StatusCode, body: String, request_id: &str) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::Full(Some(Bytes::from(body))));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, APPLICATION_JSON.clone());
    headers.insert(X_REQUEST_ID.clone(), header_text(request_id));
    response
}

/// A proxy error body (errors.md §4).
pub fn proxy_error(
    status: StatusCode,
    code: &str,
    message: &str,
    request_id: &str,
) -> Response<ProxyBody> {
    let body = json!({
        "error": {"code": code, "message": message, "request_id": request_id}
    });
    json_response(status, body.to_string(), request_id)
}

/// Names set on every answer, made once (parsing a name per answer showed in profiles).
static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
static RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
static RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
static X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
static X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
static X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
static X_QUOTA_LIMIT: HeaderName = HeaderName::from_static("x-quota-limit");
static X_QUOTA_USED: HeaderName = HeaderName::from_static("x-quota-used");
static X_QUOTA_REMAINING: HeaderName = HeaderName::from_static("x-quota-remaining");
static X_QUOTA_RESET: HeaderName = HeaderName::from_static("x-quota-reset");

/// A header value from text we made (ids, timestamps); never fails for those.
fn header_text(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// What is known about a request so far; becomes its usage record.
pub(crate) struct Metering {
    pub record: UsageRecord,
    pub started: Instant,
    /// The stored prefix of a well-formed key (never the key itself), for the log line.
    pub key_prefix: Option<String>,
}

impl Metering {
    /// The one place every proxied request passes: metrics, the access log line, the
    /// usage record.
    fn finish(
        mut self,
        gateway: &Gateway,
        status: u16,
        error: Option<&'static str>,
        response_bytes: u64,
    ) {
        let elapsed = self.started.elapsed();
        self.record.status_code = status;
        self.record.error_code = error;
        self.record.response_bytes = response_bytes;
        self.record.duration_ms = elapsed.as_millis() as u64;
        observe(gateway, &self, elapsed.as_secs_f64());
        gateway.meter(self.record);
    }
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
    requests: HashMap<(&'static str, &'static str), metrics::Counter>,
}

thread_local! {
    static ROUTE_METRICS: RefCell<HashMap<String, RouteMetrics>> = RefCell::new(HashMap::new());
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
                        requests: HashMap::new(),
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
fn observe(gateway: &Gateway, metering: &Metering, seconds: f64) {
    let record = &metering.record;
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
    gateway.access_log.record(&AccessLine {
        at: Timestamp::from_millis(record.created_at),
        request_id: &record.request_id,
        method: &record.method,
        path: &record.path,
        route,
        status: record.status_code,
        code,
        latency_ms: seconds * 1000.0,
        key_prefix: metering.key_prefix.as_deref().unwrap_or("-"),
    });
}

/// The limit headers of an answer (§4, §5).
#[derive(Default)]
pub(crate) struct LimitHeaders {
    rate: Option<RateDecision>,
    quota: Option<QuotaState>,
}

impl LimitHeaders {
    fn apply(&self, headers: &mut HeaderMap, now: Timestamp) {
        let mut set = |name: &HeaderName, value: HeaderValue| {
            headers.insert(name.clone(), value);
        };
        if let Some(rate) = &self.rate {
            let reset_at = now.unix_seconds() as u64 + rate.reset_seconds;
            let limit = HeaderValue::from(rate.limit);
            let remaining = HeaderValue::from(rate.remaining);
            set(&RATELIMIT_LIMIT, limit.clone());
            set(&RATELIMIT_REMAINING, remaining.clone());
            set(&RATELIMIT_RESET, HeaderValue::from(rate.reset_seconds));
            set(
                &RATELIMIT_POLICY,
                header_text(&format!("{};w=60", rate.limit)),
            );
            set(&X_RATELIMIT_LIMIT, limit);
            set(&X_RATELIMIT_REMAINING, remaining);
            set(&X_RATELIMIT_RESET, HeaderValue::from(reset_at));
        }
        if let Some(quota) = &self.quota {
            set(&X_QUOTA_LIMIT, HeaderValue::from(quota.limit));
            set(&X_QUOTA_USED, HeaderValue::from(quota.used));
            set(
                &X_QUOTA_REMAINING,
                HeaderValue::from(quota.limit.saturating_sub(quota.used)),
            );
            set(&X_QUOTA_RESET, header_text(&quota.period.next.to_string()));
        }
    }
}

/// Every refusal of the lifecycle: the spec's JSON body, its headers, and the usage record.
fn refuse(
    gateway: &Gateway,
    refusal: Refusal,
    metering: Metering,
    limits: &LimitHeaders,
) -> Response<ProxyBody> {
    let status =
        StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({
        "error": {
            "code": refusal.code(),
            "message": refusal.message(),
            "request_id": metering.record.request_id,
        }
    })
    .to_string();
    let length = body.len() as u64;
    let mut response = json_response(status, body, &metering.record.request_id);
    let headers = response.headers_mut();
    limits.apply(headers, gateway.now());
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
    metering.finish(gateway, refusal.status(), Some(refusal.code()), length);
    response
}

fn ok_health(request_id: &str) -> Response<ProxyBody> {
    json_response(StatusCode::OK, r#"{"status":"ok"}"#.into(), request_id)
}

/// The host the client asked for: `Host` (or the URI authority), port removed, lower-case.
fn request_host(req: &Request<Incoming>) -> String {
    let raw = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or_default();
    let without_port = if raw.starts_with('[') {
        raw.split(']')
            .next()
            .map(|h| format!("{h}]"))
            .unwrap_or_default()
    } else {
        raw.split(':').next().unwrap_or_default().to_owned()
    };
    without_port.to_ascii_lowercase()
}

/// `X-API-Key` first, else `Authorization: Bearer` (§3). Returns the key and whether it came
/// from `Authorization` (which is then not forwarded).
fn presented_key(req: &Request<Incoming>) -> Option<(String, bool)> {
    if let Some(key) = req.headers().get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some((key.trim().to_owned(), false));
    }
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| (token.trim().to_owned(), true))
}

fn digest(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

fn client_ip(
    req: &Request<Incoming>,
    peer: SocketAddr,
    gateway: &Gateway,
) -> (IpAddr, Option<String>) {
    let peer = peer.ip();
    let trusted = gateway
        .settings
        .trusted_proxies
        .iter()
        .any(|net| net.contains(&peer));
    let incoming = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if trusted && let Some(chain) = &incoming {
        let client = chain
            .split(',')
            .map(str::trim)
            .filter_map(|ip| ip.parse::<IpAddr>().ok())
            .next_back()
            .unwrap_or(peer);
        return (client, Some(format!("{chain}, {peer}")));
    }
    (peer, None)
}

/// One request, start to end; the listener's only service.
pub async fn handle(
    req: Request<Incoming>,
    peer: SocketAddr,
    gateway: &Arc<Gateway>,
) -> Response<ProxyBody> {
    let started = Instant::now();
    let now = gateway.now();
    // Matched and forwarded: the canonical path, so the gateway and the upstream read one
    // request as one path.
    let canonical = canonical_path(req.uri().path()).map(std::borrow::Cow::into_owned);
    let method = req.method().as_str().to_owned();
    // The proxy sets `X-Request-Id` itself (no middleware on this listener: it is the hot path).
    let request_id = request_id::from_text(
        req.headers()
            .get(&X_REQUEST_ID)
            .and_then(|v| v.to_str().ok()),
    );
    if canonical.as_deref() == Ok("/_tollgate/health") {
        // Reserved: never routed, whatever the method.
        return if method == "GET" {
            ok_health(&request_id)
        } else {
            let mut response = proxy_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                "GET only",
                &request_id,
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET"));
            response
        };
    }
    let host = request_host(&req);
    let (ip, forwarded_for) = client_ip(&req, peer, gateway);
    let user_agent: String = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .chars()
        .take(256)
        .collect();
    let mut metering = Metering {
        record: UsageRecord {
            id: gateway.ids.new_id("use_"),
            request_id: request_id.clone(),
            created_at: now.millis(),
            method: method.clone(),
            host: usage::truncate(&host, usage::MAX_HOST_BYTES).to_owned(),
            path: usage::truncate(req.uri().path(), usage::MAX_PATH_BYTES).to_owned(),
            client_ip: ip.to_string(),
            user_agent,
            ..UsageRecord::default()
        },
        started,
        key_prefix: None,
    };
    let mut limits = LimitHeaders::default();
    let config = gateway.config();

    // Step 3: route, on the canonical path; `TRACE` and `CONNECT` are never forwarded
    // (`TRACE` would echo the request's credentials back, `CONNECT` would open a tunnel).
    if matches!(method.as_str(), "TRACE" | "CONNECT") {
        let allowed = FORWARDED_METHODS.iter().map(|m| (*m).to_owned()).collect();
        return refuse(
            gateway,
            Refusal::MethodNotAllowed(allowed),
            metering,
            &limits,
        );
    }
    let path = match canonical {
        Ok(path) => path,
        Err(why) => return refuse(gateway, Refusal::InvalidPath(why), metering, &limits),
    };
    let (route, found) = match config.routes.lookup(&method, &host, &path) {
        Lookup::Found(route, found) => (route.clone(), found),
        Lookup::MethodNotAllowed(allowed) => {
            return refuse(
                gateway,
                Refusal::MethodNotAllowed(allowed),
                metering,
                &limits,
            );
        }
        Lookup::NotFound => {
            if path == "/health" && method == "GET" {
                return ok_health(&metering.record.request_id);
            }
            return refuse(gateway, Refusal::RouteNotFound, metering, &limits);
        }
    };
    metering.record.route_id = Some(route.id.clone());

    // Step 4: declared body size.
    let limit = gateway.settings.max_body_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return refuse(
            gateway,
            Refusal::PayloadTooLarge { limit },
            metering,
            &limits,
        );
    }

    // Steps 5–7: key, owner, plan and group.
    let presented = presented_key(&req);
    let mut caller: Option<Caller> = None;
    let mut key_in_authorization = false;
    if route.auth_required {
        let Some((key, in_authorization)) = presented else {
            return refuse(gateway, Refusal::MissingApiKey, metering, &limits);
        };
        key_in_authorization = in_authorization;
        let well_formed = policy::is_well_formed(&key);
        if well_formed {
            metering.key_prefix = Some(key.chars().take(16).collect());
        }
        let digest = well_formed.then(|| digest(&key));
        match policy::admit(&config, &route, digest.as_deref(), now.millis()) {
            Ok(admitted) => {
                metering.record.api_key_id = Some(admitted.key.id.clone());
                metering.record.user_id = Some(admitted.key.user_id.clone());
                metering.record.group_id = admitted.key.group_id.clone();
                caller = Some(admitted);
            }
            Err(refusal) => return refuse(gateway, refusal, metering, &limits),
        }
    } else if let Some((key, in_authorization)) = presented {
        // A key sent to a public route is ignored, and not forwarded either; another bearer
        // token in `Authorization` is the upstream's business and passes.
        key_in_authorization = in_authorization && key.starts_with("tg_");
    }

    // Step 8: upstream.
    let upstream = match policy::upstream_of(&config, &route) {
        Ok(upstream) => upstream.clone(),
        Err(refusal) => return refuse(gateway, refusal, metering, &limits),
    };

    // Step 9: rate limit.
    let mut taken: Option<(BucketKey, u64)> = None;
    if let Some(rpm) = policy::rate_limit(&route, caller.as_ref()) {
        let bucket = match (&caller, route.rate_limit_override.is_some()) {
            (Some(c), false) => BucketKey::Key(c.key.id.as_str().into()),
            (Some(c), true) => {
                BucketKey::KeyOnRoute(c.key.id.as_str().into(), route.id.as_str().into())
            }
            (None, _) => BucketKey::IpOnRoute(ip, route.id.as_str().into()),
        };
        let decision = gateway.take_token(&bucket, rpm, now).await;
        taken = Some((bucket, rpm));
        limits.rate = Some(decision);
        if !decision.allowed {
            let refusal = Refusal::RateLimited {
                limit: rpm,
                retry_after: decision.retry_after,
            };
            return refuse(gateway, refusal, metering, &limits);
        }
    }

    // Step 10: quota.
    if let Some(caller) = &caller {
        match gateway.count_quota(caller, now).await {
            Ok(state) => {
                limits.quota = state;
                metering.record.counted = true;
                metering.record.overage = state.is_some_and(|s| s.overage);
            }
            Err(refusal) => {
                if let Some((bucket, rpm)) = &taken {
                    gateway.give_back_token(bucket, *rpm).await;
                    if let Some(rate) = limits.rate.as_mut() {
                        rate.remaining = (rate.remaining + 1).min(rate.limit);
                    }
                }
                if caller.plan.requests_per_month >= 0 {
                    let limit = caller.plan.requests_per_month as u64;
                    limits.quota = Some(QuotaState {
                        limit,
                        used: limit,
                        period: tollgate_domain::proxy::limits::QuotaPeriod::containing(now),
                        overage: false,
                    });
                }
                return refuse(gateway, refusal, metering, &limits);
            }
        }
    }

    // Step 11: forward.
    let target = forward::Target {
        upstream,
        path: forwarded_path(&route, &path, &found),
        caller,
        key_in_authorization,
        request_id,
        forwarded_for,
        client_ip: ip,
        host,
    };
    let (parts, body) = req.into_parts();
    forward::forward(gateway.clone(), parts, body, target, metering, limits).await
}
