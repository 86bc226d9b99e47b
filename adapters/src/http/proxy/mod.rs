//! The proxy listener (proxy.md): match a route, check the key, owner and plan, take a rate
//! token, count the quota, then stream the request to the upstream and the answer back.
//! Every outcome is metered.

mod forward;
mod headers;

use std::{net::IpAddr, sync::Arc, time::Instant};

use actix_web::{
    HttpMessage, HttpRequest, HttpResponse, HttpResponseBuilder,
    http::{StatusCode, header},
    web,
};
use serde_json::json;
use sha2::{Digest, Sha256};
use tollgate_domain::{
    Timestamp,
    proxy::{
        limits::RateDecision,
        policy::{self, Caller, Refusal},
        routing::{Lookup, forwarded_path},
        usage::UsageRecord,
    },
};

use crate::{
    gateway::{BucketKey, Gateway, QuotaState},
    http::request_id::{self, RequestId},
};

/// A proxy error body (errors.md §4).
pub fn proxy_error(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({
        "error": {"code": code, "message": message, "request_id": request_id::current()}
    }))
}

/// What is known about a request so far; becomes its usage record.
pub(crate) struct Metering {
    pub record: UsageRecord,
    pub started: Instant,
}

impl Metering {
    fn finish(
        mut self,
        gateway: &Gateway,
        status: u16,
        error: Option<&'static str>,
        response_bytes: u64,
    ) {
        self.record.status_code = status;
        self.record.error_code = error;
        self.record.response_bytes = response_bytes;
        self.record.duration_ms = self.started.elapsed().as_millis() as u64;
        gateway.meter(self.record);
    }
}

/// The limit headers of an answer (§4, §5).
#[derive(Default)]
pub(crate) struct LimitHeaders {
    rate: Option<RateDecision>,
    quota: Option<QuotaState>,
}

impl LimitHeaders {
    fn apply(&self, response: &mut HttpResponseBuilder, now: Timestamp) {
        if let Some(rate) = &self.rate {
            let reset_at = now.unix_seconds() as u64 + rate.reset_seconds;
            response
                .insert_header(("RateLimit-Limit", rate.limit))
                .insert_header(("RateLimit-Remaining", rate.remaining))
                .insert_header(("RateLimit-Reset", rate.reset_seconds))
                .insert_header(("RateLimit-Policy", format!("{};w=60", rate.limit)))
                .insert_header(("X-RateLimit-Limit", rate.limit))
                .insert_header(("X-RateLimit-Remaining", rate.remaining))
                .insert_header(("X-RateLimit-Reset", reset_at));
        }
        if let Some(quota) = &self.quota {
            response
                .insert_header(("X-Quota-Limit", quota.limit))
                .insert_header(("X-Quota-Used", quota.used))
                .insert_header(("X-Quota-Remaining", quota.limit.saturating_sub(quota.used)))
                .insert_header(("X-Quota-Reset", quota.period.next.to_string()));
        }
    }
}

fn refuse(
    gateway: &Gateway,
    refusal: Refusal,
    metering: Metering,
    limits: &LimitHeaders,
) -> HttpResponse {
    let status =
        StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::build(status);
    limits.apply(&mut response, gateway.now());
    match &refusal {
        Refusal::MissingApiKey => {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"tollgate\""));
        }
        Refusal::MethodNotAllowed(allowed) => {
            response.insert_header((header::ALLOW, allowed.join(", ")));
        }
        Refusal::RateLimited { retry_after, .. } | Refusal::QuotaExceeded { retry_after } => {
            response.insert_header((header::RETRY_AFTER, *retry_after));
        }
        _ => {}
    }
    let body = json!({
        "error": {
            "code": refusal.code(),
            "message": refusal.message(),
            "request_id": metering.record.request_id,
        }
    })
    .to_string();
    let response = response.content_type("application/json").body(body.clone());
    metering.finish(
        gateway,
        refusal.status(),
        Some(refusal.code()),
        body.len() as u64,
    );
    response
}

/// The host the client asked for: `Host` (or the URI authority), port removed, lower-case.
fn request_host(req: &HttpRequest) -> String {
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
fn presented_key(req: &HttpRequest) -> Option<(String, bool)> {
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

fn client_ip(req: &HttpRequest, gateway: &Gateway) -> (IpAddr, Option<String>) {
    let peer = req
        .peer_addr()
        .map(|a| a.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
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

async fn handle(
    req: HttpRequest,
    payload: web::Payload,
    gateway: web::Data<Arc<Gateway>>,
) -> HttpResponse {
    let gateway: &Arc<Gateway> = &gateway;
    let started = Instant::now();
    let now = gateway.now();
    let path = req.path().to_owned();
    let method = req.method().as_str().to_owned();
    if path == "/_tollgate/health" {
        // Reserved: never routed, whatever the method.
        return if method == "GET" {
            HttpResponse::Ok().json(json!({"status": "ok"}))
        } else {
            let mut response = proxy_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                "GET only",
            );
            response
                .headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static("GET"));
            response
        };
    }
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_else(request_id::generate);
    let host = request_host(&req);
    let (ip, forwarded_for) = client_ip(&req, gateway);
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
            host: host.clone(),
            path: path.clone(),
            client_ip: ip.to_string(),
            user_agent,
            ..UsageRecord::default()
        },
        started,
    };
    let mut limits = LimitHeaders::default();
    let config = gateway.config();

    // Step 3: route.
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
                return HttpResponse::Ok().json(json!({"status": "ok"}));
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
        let digest = policy::is_well_formed(&key).then(|| digest(&key));
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
    forward::forward(gateway.clone(), req, payload, target, metering, limits).await
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.default_service(web::to(handle));
}
