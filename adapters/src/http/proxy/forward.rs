//! Step 11: the request goes to the upstream and the answer comes back, both bodies streamed.
//! The client's request is edited in place and handed to this worker's pooled client; the
//! body passes through a counting wrapper that stops at the size limit, and the upstream's
//! answer streams back through one that meters the request when it ends.

use std::{
    net::IpAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use base64::Engine;
use bytes::Bytes;
use http::{Response, request::Parts};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tollgate_domain::proxy::{
    config::{AuthType, Upstream},
    policy::{Caller, Refusal},
};

use super::{LimitHeaders, Metering, ProxyBody, headers, refuse};
use crate::gateway::{
    Gateway,
    upstream::{self, BodyError, UpstreamBody},
};

/// Where and as whom a request goes.
pub struct Target {
    pub upstream: Arc<Upstream>,
    pub path: String,
    pub caller: Option<Caller>,
    pub key_in_authorization: bool,
    pub request_id: String,
    pub forwarded_for: Option<String>,
    pub client_ip: IpAddr,
    pub host: String,
}

#[derive(Debug, thiserror::Error)]
#[error("request body larger than the limit")]
struct TooLarge;

/// The client's request body on its way upstream: counts the bytes and fails past the limit
/// (a chunked body has no declared length to refuse up front).
struct Limited {
    inner: Incoming,
    limit: u64,
    sent: Arc<AtomicU64>,
    too_large: Arc<AtomicBool>,
}

impl Body for Limited {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    let total = self.sent.fetch_add(len, Ordering::Relaxed) + len;
                    if total > self.limit {
                        self.too_large.store(true, Ordering::Relaxed);
                        return Poll::Ready(Some(Err(Box::new(TooLarge))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(e)))),
            other => other.map(|_| None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Names Tollgate sets on the way out, made once.
mod out_names {
    use http::HeaderName;
    pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
    pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
    pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
    pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
    pub static X_USER_ID: HeaderName = HeaderName::from_static("x-user-id");
    pub static X_KEY_ID: HeaderName = HeaderName::from_static("x-key-id");
    pub static X_PLAN_ID: HeaderName = HeaderName::from_static("x-plan-id");
    pub static X_GROUP_ID: HeaderName = HeaderName::from_static("x-group-id");
}

/// Turns the client's headers into the upstream request's, in place.
fn outgoing_headers(out: &mut http::HeaderMap, target: &Target, authority: &str) {
    use headers::put;
    use out_names::*;
    let original_host = out.get(http::header::HOST).cloned();
    headers::strip_request(out, target.key_in_authorization);
    put(out, &http::header::HOST, authority);
    match &target.forwarded_for {
        Some(chain) => put(out, &X_FORWARDED_FOR, chain),
        None => {
            let mut ip = [0u8; 64];
            let text = format_ip(target.client_ip, &mut ip);
            put(out, &X_FORWARDED_FOR, text);
        }
    }
    out.insert(
        X_FORWARDED_PROTO.clone(),
        http::HeaderValue::from_static("http"),
    );
    if !target.host.is_empty() {
        match original_host {
            Some(original) => {
                out.insert(X_FORWARDED_HOST.clone(), original);
            }
            None => put(out, &X_FORWARDED_HOST, &target.host),
        }
    }
    put(out, &X_REQUEST_ID, &target.request_id);
    if let Some(caller) = &target.caller {
        put(out, &X_USER_ID, &caller.key.user_id);
        put(out, &X_KEY_ID, &caller.key.id);
        put(out, &X_PLAN_ID, &caller.plan.id);
        if let Some(group) = &caller.key.group_id {
            put(out, &X_GROUP_ID, group);
        }
    }
    let upstream = &target.upstream;
    for (name, value) in &upstream.headers {
        headers::set(out, name, value);
    }
    let group = target
        .caller
        .as_ref()
        .and_then(|c| c.key.group_id.as_deref());
    if let Some(credential) = upstream.credential(group) {
        match (upstream.auth_type, &upstream.auth_header) {
            (AuthType::Bearer, _) => {
                let value = format!("Bearer {credential}");
                put(out, &http::header::AUTHORIZATION, &value);
            }
            (AuthType::Basic, _) => {
                let encoded = base64::engine::general_purpose::STANDARD.encode(credential);
                let value = format!("Basic {encoded}");
                put(out, &http::header::AUTHORIZATION, &value);
            }
            (AuthType::Header, Some(name)) => headers::set(out, name, credential),
            _ => {}
        }
    }
}

/// The address as text without a heap allocation.
fn format_ip(ip: IpAddr, buffer: &mut [u8; 64]) -> &str {
    use std::io::Write;
    let mut cursor = std::io::Cursor::new(&mut buffer[..]);
    let _ = write!(cursor, "{ip}");
    let len = cursor.position() as usize;
    std::str::from_utf8(&buffer[..len]).unwrap_or_default()
}

/// `tollgate_upstream_errors_total{upstream,kind}` (the upstream's id: bounded, stable).
fn upstream_error(target: &Target, kind: &'static str) {
    metrics::counter!(
        "tollgate_upstream_errors_total",
        "upstream" => target.upstream.id.clone(),
        "kind" => kind,
    )
    .increment(1);
}

pub async fn forward(
    gateway: Arc<Gateway>,
    mut parts: Parts,
    body: Incoming,
    target: Target,
    mut metering: Metering,
    limits: LimitHeaders,
) -> Response<ProxyBody> {
    let url = match parts.uri.query() {
        Some(query) => format!("{}{}?{query}", target.upstream.base_url, target.path),
        None => format!("{}{}", target.upstream.base_url, target.path),
    };
    let Ok(uri) = url.parse::<http::Uri>() else {
        return refuse(&gateway, Refusal::BadGateway, metering, &limits);
    };
    let authority = uri.authority().map(|a| a.to_string()).unwrap_or_default();
    let sent = Arc::new(AtomicU64::new(0));
    let too_large = Arc::new(AtomicBool::new(false));
    let body: UpstreamBody = Limited {
        inner: body,
        limit: gateway.settings.max_body_bytes,
        sent: sent.clone(),
        too_large: too_large.clone(),
    }
    .boxed_unsync();
    outgoing_headers(&mut parts.headers, &target, &authority);
    parts.uri = uri;
    parts.version = http::Version::HTTP_11;
    let request = http::Request::from_parts(parts, body);

    let client = upstream::client(target.upstream.connect_timeout_ms);
    let upstream_started = Instant::now();
    let timeout = Duration::from_millis(target.upstream.timeout_ms);
    let answer = tokio::time::timeout(timeout, client.request(request)).await;
    let response = match answer {
        Ok(Ok(response)) => {
            metering.record.upstream_duration_ms =
                Some(upstream_started.elapsed().as_millis() as u64);
            response
        }
        Ok(Err(error)) => {
            metering.record.request_bytes = sent.load(Ordering::Relaxed);
            if too_large.load(Ordering::Relaxed) {
                let limit = gateway.settings.max_body_bytes;
                return refuse(
                    &gateway,
                    Refusal::PayloadTooLarge { limit },
                    metering,
                    &limits,
                );
            }
            tracing::warn!(%error, upstream = %target.upstream.name, "upstream request failed");
            let kind = if error.is_connect() {
                "connect"
            } else {
                "invalid_response"
            };
            upstream_error(&target, kind);
            return refuse(&gateway, Refusal::BadGateway, metering, &limits);
        }
        Err(_) => {
            metering.record.request_bytes = sent.load(Ordering::Relaxed);
            upstream_error(&target, "timeout");
            return refuse(&gateway, Refusal::GatewayTimeout, metering, &limits);
        }
    };

    let (mut parts, body) = response.into_parts();
    headers::strip_response(&mut parts.headers);
    parts.headers.insert(
        super::X_REQUEST_ID.clone(),
        super::header_text(&metering.record.request_id),
    );
    limits.apply(&mut parts.headers, gateway.now());
    let status = parts.status.as_u16();
    let body = Metered {
        inner: body,
        bytes: 0,
        done: Some(Done {
            gateway,
            metering,
            sent,
            status,
        }),
    };
    Response::from_parts(parts, ProxyBody::Upstream(body))
}

struct Done {
    gateway: Arc<Gateway>,
    metering: Metering,
    sent: Arc<AtomicU64>,
    status: u16,
}

/// The upstream's answer body on its way to the client; meters the request when it ends
/// (or the client goes away).
pub struct Metered {
    inner: Incoming,
    bytes: u64,
    done: Option<Done>,
}

impl Body for Metered {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.bytes += data.len() as u64;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Metered {
    fn drop(&mut self) {
        if let Some(mut done) = self.done.take() {
            done.metering.record.request_bytes = done.sent.load(Ordering::Relaxed);
            done.metering
                .finish(&done.gateway, done.status, None, self.bytes);
        }
    }
}
