//! Step 11: the request goes to the upstream and the answer comes back, both bodies streamed.
//! actix's request payload is `!Send`, hyper's body must be `Send`: a local task pumps chunks
//! through a small bounded channel, so a slow upstream slows the client down instead of
//! filling memory.

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

use actix_web::{HttpRequest, HttpResponse, body::SizedStream, http::StatusCode, web};
use base64::Engine;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http_body_util::{BodyDataStream, BodyExt, Empty, StreamBody};
use hyper::body::{Frame, Incoming};
use tollgate_domain::proxy::{
    config::{AuthType, Upstream},
    policy::{Caller, Refusal},
};

use super::{LimitHeaders, Metering, headers, refuse};
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
enum PumpError {
    #[error("request body larger than the limit")]
    TooLarge,
    #[error("client body: {0}")]
    Client(String),
}

/// The request body: nothing, or a stream pumped from the client connection.
fn request_body(
    req: &HttpRequest,
    payload: web::Payload,
    limit: u64,
    sent: Arc<AtomicU64>,
    too_large: Arc<AtomicBool>,
) -> UpstreamBody {
    let declared = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let chunked = req.headers().contains_key("transfer-encoding");
    if declared.unwrap_or(0) == 0 && !chunked {
        return Empty::<Bytes>::new()
            .map_err(|never| match never {})
            .boxed_unsync();
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BodyError>>(16);
    actix_web::rt::spawn(async move {
        let mut payload = payload;
        while let Some(chunk) = payload.next().await {
            let item = match chunk {
                Ok(bytes) => {
                    let total =
                        sent.fetch_add(bytes.len() as u64, Ordering::Relaxed) + bytes.len() as u64;
                    if total > limit {
                        too_large.store(true, Ordering::Relaxed);
                        let _ = tx.send(Err(Box::new(PumpError::TooLarge))).await;
                        return;
                    }
                    Ok(Frame::data(bytes))
                }
                Err(e) => Err(Box::new(PumpError::Client(e.to_string())) as BodyError),
            };
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                return;
            }
        }
    });
    let chunks = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    StreamBody::new(chunks).boxed_unsync()
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

fn outgoing_headers(req: &HttpRequest, target: &Target, authority: &str) -> http::HeaderMap {
    use headers::put;
    use out_names::*;
    let mut out = headers::request_headers(req.headers(), target.key_in_authorization);
    put(&mut out, &http::header::HOST, authority);
    match &target.forwarded_for {
        Some(chain) => put(&mut out, &X_FORWARDED_FOR, chain),
        None => {
            let mut ip = [0u8; 64];
            let text = format_ip(target.client_ip, &mut ip);
            put(&mut out, &X_FORWARDED_FOR, text);
        }
    }
    out.insert(
        X_FORWARDED_PROTO.clone(),
        http::HeaderValue::from_static("http"),
    );
    if !target.host.is_empty() {
        let original = req
            .headers()
            .get("host")
            .and_then(|v| v.to_str().ok())
            .unwrap_or(&target.host);
        put(&mut out, &X_FORWARDED_HOST, original);
    }
    put(&mut out, &X_REQUEST_ID, &target.request_id);
    if let Some(caller) = &target.caller {
        put(&mut out, &X_USER_ID, &caller.key.user_id);
        put(&mut out, &X_KEY_ID, &caller.key.id);
        put(&mut out, &X_PLAN_ID, &caller.plan.id);
        if let Some(group) = &caller.key.group_id {
            put(&mut out, &X_GROUP_ID, group);
        }
    }
    let upstream = &target.upstream;
    for (name, value) in &upstream.headers {
        headers::set(&mut out, name, value);
    }
    let group = target
        .caller
        .as_ref()
        .and_then(|c| c.key.group_id.as_deref());
    if let Some(credential) = upstream.credential(group) {
        match (upstream.auth_type, &upstream.auth_header) {
            (AuthType::Bearer, _) => {
                let value = format!("Bearer {credential}");
                put(&mut out, &http::header::AUTHORIZATION, &value);
            }
            (AuthType::Basic, _) => {
                let encoded = base64::engine::general_purpose::STANDARD.encode(credential);
                let value = format!("Basic {encoded}");
                put(&mut out, &http::header::AUTHORIZATION, &value);
            }
            (AuthType::Header, Some(name)) => headers::set(&mut out, name, credential),
            _ => {}
        }
    }
    out
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
    req: HttpRequest,
    payload: web::Payload,
    target: Target,
    mut metering: Metering,
    limits: LimitHeaders,
) -> HttpResponse {
    let query = req
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let url = format!("{}{}{}", target.upstream.base_url, target.path, query);
    let Ok(uri) = url.parse::<http::Uri>() else {
        return refuse(&gateway, Refusal::BadGateway, metering, &limits);
    };
    let authority = uri.authority().map(|a| a.to_string()).unwrap_or_default();
    let Ok(method) = http::Method::from_bytes(req.method().as_str().as_bytes()) else {
        return refuse(&gateway, Refusal::BadGateway, metering, &limits);
    };
    let sent = Arc::new(AtomicU64::new(0));
    let too_large = Arc::new(AtomicBool::new(false));
    let body = request_body(
        &req,
        payload,
        gateway.settings.max_body_bytes,
        sent.clone(),
        too_large.clone(),
    );
    let mut request = http::Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = outgoing_headers(&req, &target, &authority);

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

    let (parts, body) = response.into_parts();
    let status = StatusCode::from_u16(parts.status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut builder = HttpResponse::build(status);
    headers::response_headers(&parts.headers, &mut builder);
    builder.insert_header((
        super::X_REQUEST_ID.clone(),
        super::header_text(&metering.record.request_id),
    ));
    limits.apply(&mut builder, gateway.now());
    let length = parts
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let stream = Metered {
        inner: BodyDataStream::new(body),
        bytes: 0,
        done: Some(Done {
            gateway,
            metering,
            sent,
            status: status.as_u16(),
        }),
    };
    match length {
        Some(length) if req.method() != actix_web::http::Method::HEAD => {
            builder.body(SizedStream::new(length, stream))
        }
        _ => builder.streaming(stream),
    }
}

struct Done {
    gateway: Arc<Gateway>,
    metering: Metering,
    sent: Arc<AtomicU64>,
    status: u16,
}

/// The response body on its way to the client; meters the request when it ends (or the
/// client goes away).
struct Metered {
    inner: BodyDataStream<Incoming>,
    bytes: u64,
    done: Option<Done>,
}

impl Stream for Metered {
    type Item = Result<Bytes, hyper::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = Pin::new(&mut self.inner).poll_next(cx);
        if let Poll::Ready(Some(Ok(chunk))) = &polled {
            self.bytes += chunk.len() as u64;
        }
        polled
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
