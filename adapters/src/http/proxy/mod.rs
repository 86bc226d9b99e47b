//! The proxy listener (proxy.md): one request runs as phases over one context
//! ([`Exchange`]): route → body size → authenticate → upstream → rate limit → quota →
//! forward → respond. Each phase is a small function that either passes or answers early
//! with a [`Refusal`]; whichever way the request goes, it is recorded exactly once. hyper 1.x
//! end to end: the request's parts are edited in place and forwarded, so no header map is
//! rebuilt and no header converted.

mod answer;
mod exchange;
mod forward;
mod headers;
mod respond;
pub mod server;

use std::{borrow::Cow, net::SocketAddr, sync::Arc, time::Instant};

use http::{Request, Response, header, request::Parts};
use hyper::body::Incoming;
use tollgate_domain::proxy::{
    config::{ProxyConfig, Upstream},
    limits::QuotaPeriod,
    path::{PathError, canonical_path},
    policy::{self, Caller, Refusal},
    routing::{Lookup, Route, forwarded_path},
};

pub use answer::ProxyBody;
pub use exchange::status_class;

use self::{answer::X_REQUEST_ID, exchange::Exchange};
use crate::{
    gateway::{BucketKey, Gateway, QuotaState},
    http::request_id,
};

/// The `Allow` of a `TRACE` or `CONNECT` refusal: the standard methods the proxy forwards
/// (other extension methods pass too, when a route allows them).
const FORWARDED_METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// One request, start to end; the listener's only service.
pub async fn handle(
    req: Request<Incoming>,
    peer: SocketAddr,
    gateway: &Arc<Gateway>,
) -> Response<ProxyBody> {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    // The proxy sets `X-Request-Id` itself (no middleware on this listener: it is the hot path).
    let request_id = request_id::from_text(
        parts
            .headers
            .get(&X_REQUEST_ID)
            .and_then(|v| v.to_str().ok()),
    );
    // Matched and forwarded: the canonical path, so the gateway and the upstream read one
    // request as one path.
    let canonical = canonical_path(parts.uri.path());
    if canonical.as_deref() == Ok("/_tollgate/health") {
        return answer::reserved_health(&parts.method, &request_id);
    }
    let mut exchange = Exchange::begin(gateway, &parts, peer, request_id, started);
    let config = gateway.config();
    let routed = match route(&parts, canonical, &exchange.host, &config) {
        Ok(routed) => routed,
        Err(Routing::Health) => return answer::health(exchange.request_id()),
        Err(Routing::Refused(refusal)) => return exchange.refuse(refusal),
    };
    exchange.record.route_id = Some(routed.route.id.clone());
    match admit_and_forward(&mut exchange, &config, parts, body, routed).await {
        Ok((upstream, sent)) => respond::respond(exchange, upstream, sent),
        Err(refusal) => exchange.refuse(refusal),
    }
}

/// A request that found its route.
struct Routed {
    route: Arc<Route>,
    /// The path the upstream is asked for (the route's rewrite applied).
    forwarded_path: String,
}

enum Routing {
    /// `GET /health` that no route takes: the gateway's own health answer, not metered.
    Health,
    Refused(Refusal),
}

/// Step 3: the route, on the canonical path. `TRACE` and `CONNECT` are never forwarded
/// (`TRACE` would echo the request's credentials back, `CONNECT` would open a tunnel).
fn route(
    parts: &Parts,
    canonical: Result<Cow<'_, str>, PathError>,
    host: &str,
    config: &ProxyConfig,
) -> Result<Routed, Routing> {
    let method = parts.method.as_str();
    if matches!(method, "TRACE" | "CONNECT") {
        let allowed = FORWARDED_METHODS.iter().map(|m| (*m).to_owned()).collect();
        return Err(Routing::Refused(Refusal::MethodNotAllowed(allowed)));
    }
    let path = canonical.map_err(|why| Routing::Refused(Refusal::InvalidPath(why)))?;
    match config.routes.lookup(method, host, &path) {
        Lookup::Found(route, found) => Ok(Routed {
            forwarded_path: forwarded_path(route, &path, &found),
            route: route.clone(),
        }),
        Lookup::MethodNotAllowed(allowed) => {
            Err(Routing::Refused(Refusal::MethodNotAllowed(allowed)))
        }
        Lookup::NotFound if path == "/health" && method == "GET" => Err(Routing::Health),
        Lookup::NotFound => Err(Routing::Refused(Refusal::RouteNotFound)),
    }
}

/// Steps 4–11 for a routed request: body size, key, upstream, rate limit, quota, forward.
async fn admit_and_forward(
    exchange: &mut Exchange,
    config: &ProxyConfig,
    parts: Parts,
    body: Incoming,
    routed: Routed,
) -> Result<(Response<Incoming>, Arc<forward::SentBytes>), Refusal> {
    let route = &routed.route;
    check_declared_size(exchange, &parts)?;
    let (caller, key_in_authorization) = authenticate(exchange, config, route, &parts)?;
    let upstream: Arc<Upstream> = policy::upstream_of(config, route)?.clone();
    let taken = take_rate_token(exchange, route, caller.as_ref()).await?;
    if let Some(caller) = &caller {
        count_quota(exchange, caller, taken).await?;
    }
    let request_id = exchange.record.request_id.clone();
    let forwarded_for = exchange.forwarded_for.take();
    let host = std::mem::take(&mut exchange.host);
    let target = forward::Target {
        upstream,
        path: routed.forwarded_path,
        caller: caller.as_ref(),
        key_in_authorization,
        request_id: &request_id,
        forwarded_for: forwarded_for.as_deref(),
        client_ip: exchange.client_ip,
        host: &host,
    };
    forward::forward(exchange, parts, body, target).await
}

/// Step 4: a declared body over the limit is refused before anything is read.
fn check_declared_size(exchange: &Exchange, parts: &Parts) -> Result<(), Refusal> {
    let limit = exchange.gateway.settings.max_body_bytes;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match declared {
        Some(length) if length > limit => Err(Refusal::PayloadTooLarge { limit }),
        _ => Ok(()),
    }
}

/// Steps 5–7: key, owner, plan and group. Returns the caller (auth-required routes) and
/// whether the key came in `Authorization`, which is then not forwarded.
fn authenticate(
    exchange: &mut Exchange,
    config: &ProxyConfig,
    route: &Route,
    parts: &Parts,
) -> Result<(Option<Caller>, bool), Refusal> {
    let presented = presented_key(parts);
    if !route.auth_required {
        // A key sent to a public route is ignored, and not forwarded either; another bearer
        // token in `Authorization` is the upstream's business and passes.
        let strip = presented.is_some_and(|(key, in_auth)| in_auth && key.starts_with("tg_"));
        return Ok((None, strip));
    }
    let (key, in_authorization) = presented.ok_or(Refusal::MissingApiKey)?;
    let well_formed = policy::is_well_formed(key);
    if well_formed {
        // Well-formed keys are ASCII: the first 16 bytes are the first 16 characters.
        exchange.key_prefix = Some(key[..16].to_owned());
    }
    let digest = well_formed.then(|| crate::security::sha256_hex(key));
    let admitted = policy::admit(config, route, digest.as_deref(), exchange.now.millis())?;
    exchange.record.api_key_id = Some(admitted.key.id.clone());
    exchange.record.user_id = Some(admitted.key.user_id.clone());
    exchange.record.group_id = admitted.key.group_id.clone();
    Ok((Some(admitted), in_authorization))
}

/// `X-API-Key` first, else `Authorization: Bearer` (§3). Returns the key and whether it came
/// from `Authorization`.
fn presented_key(parts: &Parts) -> Option<(&str, bool)> {
    if let Some(key) = parts.headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some((key.trim(), false));
    }
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| (token.trim(), true))
}

/// Step 9: a rate token from the key's bucket (or the key's bucket on this route when the
/// route overrides the limit; the client address's on public routes). Returns the bucket a
/// token was taken from, so a quota refusal can give it back.
async fn take_rate_token(
    exchange: &mut Exchange,
    route: &Route,
    caller: Option<&Caller>,
) -> Result<Option<(BucketKey, u64)>, Refusal> {
    let Some(rpm) = policy::rate_limit(route, caller) else {
        return Ok(None);
    };
    let bucket = match (caller, route.rate_limit_override.is_some()) {
        (Some(c), false) => BucketKey::Key(c.key.id.as_str().into()),
        (Some(c), true) => {
            BucketKey::KeyOnRoute(c.key.id.as_str().into(), route.id.as_str().into())
        }
        (None, _) => BucketKey::IpOnRoute(exchange.client_ip, route.id.as_str().into()),
    };
    let decision = exchange
        .gateway
        .take_token(&bucket, rpm, exchange.now)
        .await;
    exchange.limits.rate = Some(decision);
    if !decision.allowed {
        return Err(Refusal::RateLimited {
            limit: rpm,
            retry_after: decision.retry_after,
        });
    }
    Ok(Some((bucket, rpm)))
}

/// Step 10: the request counts against its subject's monthly quota. A refusal gives the rate
/// token back (the request did not happen) and shows the quota as used up.
async fn count_quota(
    exchange: &mut Exchange,
    caller: &Caller,
    taken: Option<(BucketKey, u64)>,
) -> Result<(), Refusal> {
    let gateway = exchange.gateway.clone();
    match gateway.count_quota(caller, exchange.now).await {
        Ok(state) => {
            exchange.limits.quota = state;
            exchange.record.counted = true;
            exchange.record.overage = state.is_some_and(|s| s.overage);
            Ok(())
        }
        Err(refusal) => {
            if let Some((bucket, rpm)) = &taken {
                gateway.give_back_token(bucket, *rpm).await;
                if let Some(rate) = exchange.limits.rate.as_mut() {
                    rate.remaining = (rate.remaining + 1).min(rate.limit);
                }
            }
            if caller.plan.requests_per_month >= 0 {
                let limit = caller.plan.requests_per_month as u64;
                exchange.limits.quota = Some(QuotaState {
                    limit,
                    used: limit,
                    period: QuotaPeriod::containing(exchange.now),
                    overage: false,
                });
            }
            Err(refusal)
        }
    }
}
