//! The forward phase (step 11): the client's request is edited in place — hop-by-hop, key
//! and identity headers removed, `X-Forwarded-*`, `X-Request-Id`, identity and credential
//! headers added — and handed to this worker's pooled client; its body streams through a
//! counting wrapper that stops at the size limit. Answers the upstream's response, or the
//! refusal (502, 504, 413) that replaces it.

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

use super::{exchange::Exchange, headers};
use crate::gateway::upstream::{self, BodyError, UpstreamBody};

/// Where and as whom a request goes.
pub struct Target<'a> {
    pub upstream: Arc<Upstream>,
    pub path: String,
    pub caller: Option<&'a Caller>,
    pub key_in_authorization: bool,
    pub request_id: &'a str,
    pub forwarded_for: Option<&'a str>,
    pub client_ip: IpAddr,
    pub host: &'a str,
}

/// What the client's body has sent upstream so far, read when the request ends.
#[derive(Default)]
pub struct SentBytes {
    bytes: AtomicU64,
    too_large: AtomicBool,
}

impl SentBytes {
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    fn too_large(&self) -> bool {
        self.too_large.load(Ordering::Relaxed)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("request body larger than the limit")]
struct TooLarge;

/// The client's request body on its way upstream: counts the bytes and fails past the limit
/// (a chunked body has no declared length to refuse up front).
struct Limited {
    inner: Incoming,
    limit: u64,
    sent: Arc<SentBytes>,
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
                    let total = self.sent.bytes.fetch_add(len, Ordering::Relaxed) + len;
                    if total > self.limit {
                        self.sent.too_large.store(true, Ordering::Relaxed);
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
fn outgoing_headers(out: &mut http::HeaderMap, target: &Target<'_>, authority: &str) {
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
            None => put(out, &X_FORWARDED_HOST, target.host),
        }
    }
    put(out, &X_REQUEST_ID, target.request_id);
    if let Some(caller) = target.caller {
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
    let group = target.caller.and_then(|c| c.key.group_id.as_deref());
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
fn upstream_error(upstream: &Upstream, kind: &'static str) {
    metrics::counter!(
        "tollgate_upstream_errors_total",
        "upstream" => upstream.id.clone(),
        "kind" => kind,
    )
    .increment(1);
}

/// Sends the request upstream and waits for the answer's head (its body streams later).
/// On a refusal the bytes the client's body sent are already on the exchange's record.
pub async fn forward(
    exchange: &mut Exchange,
    mut parts: Parts,
    body: Incoming,
    target: Target<'_>,
) -> Result<(Response<Incoming>, Arc<SentBytes>), Refusal> {
    let url = match parts.uri.query() {
        Some(query) => format!("{}{}?{query}", target.upstream.base_url, target.path),
        None => format!("{}{}", target.upstream.base_url, target.path),
    };
    let uri = url.parse::<http::Uri>().map_err(|_| Refusal::BadGateway)?;
    let authority = uri.authority().map(|a| a.to_string()).unwrap_or_default();
    let max_body_bytes = exchange.gateway.settings.max_body_bytes;
    let sent = Arc::new(SentBytes::default());
    let body: UpstreamBody = Limited {
        inner: body,
        limit: max_body_bytes,
        sent: sent.clone(),
    }
    .boxed_unsync();
    outgoing_headers(&mut parts.headers, &target, &authority);
    parts.uri = uri;
    parts.version = http::Version::HTTP_11;
    let request = http::Request::from_parts(parts, body);

    let upstream = &target.upstream;
    let client = upstream::client(upstream.connect_timeout_ms);
    let upstream_started = Instant::now();
    let timeout = Duration::from_millis(upstream.timeout_ms);
    let answer = tokio::time::timeout(timeout, client.request(request)).await;
    match answer {
        Ok(Ok(response)) => {
            exchange.record.upstream_duration_ms =
                Some(upstream_started.elapsed().as_millis() as u64);
            Ok((response, sent))
        }
        Ok(Err(error)) => {
            exchange.record.request_bytes = sent.bytes();
            if sent.too_large() {
                return Err(Refusal::PayloadTooLarge {
                    limit: max_body_bytes,
                });
            }
            tracing::warn!(%error, upstream = %upstream.name, "upstream request failed");
            let kind = if error.is_connect() {
                "connect"
            } else {
                "invalid_response"
            };
            upstream_error(upstream, kind);
            Err(Refusal::BadGateway)
        }
        Err(_) => {
            exchange.record.request_bytes = sent.bytes();
            upstream_error(upstream, "timeout");
            Err(Refusal::GatewayTimeout)
        }
    }
}
