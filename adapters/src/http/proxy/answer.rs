//! What the proxy answers with, and the answers it makes itself: the one builder of proxy
//! error bodies (errors.md §4), the health answers, and the limit headers (proxy.md §4, §5).

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{
    HeaderMap, Method, Response, StatusCode,
    header::{self, HeaderName, HeaderValue},
};
use hyper::body::{Body, Frame, SizeHint};
use tollgate_domain::{Timestamp, proxy::limits::RateDecision};

use super::respond::Metered;
use crate::gateway::QuotaState;

/// What the proxy answers with: a body it made (errors, health), or the upstream's answer
/// streaming through the meter.
// The upstream variant carries the request's usage record; the body is moved into hyper's
// response once and not copied around, so boxing it would only add an allocation a request.
#[allow(clippy::large_enum_variant)]
pub enum ProxyBody {
    Full(Option<Bytes>),
    Upstream(Metered),
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

/// Names set on every answer, made once (parsing a name per answer showed in profiles).
pub(super) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
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
pub(super) fn header_text(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A JSON answer Tollgate makes itself.
fn json_response(status: StatusCode, body: Bytes, request_id: &str) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::Full(Some(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, APPLICATION_JSON.clone());
    headers.insert(X_REQUEST_ID.clone(), header_text(request_id));
    response
}

/// Every proxy error answer (errors.md §4): `{"error": {"code", "message", "request_id"}}`.
/// The one place such a body is made, for refusals and for the reserved paths alike.
pub fn error_response(
    status: StatusCode,
    code: &str,
    message: &str,
    request_id: &str,
) -> Response<ProxyBody> {
    let body = serde_json::json!({
        "error": {"code": code, "message": message, "request_id": request_id}
    });
    json_response(status, Bytes::from(body.to_string()), request_id)
}

/// `{"status":"ok"}`: the reserved `/_tollgate/health`, and `/health` when no route takes it.
pub fn health(request_id: &str) -> Response<ProxyBody> {
    json_response(
        StatusCode::OK,
        Bytes::from_static(br#"{"status":"ok"}"#),
        request_id,
    )
}

/// `/_tollgate/health` is never routed, whatever the method: `GET` answers, the rest 405.
pub fn reserved_health(method: &Method, request_id: &str) -> Response<ProxyBody> {
    if method == Method::GET {
        return health(request_id);
    }
    let mut response = error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        "GET only",
        request_id,
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET"));
    response
}

/// The limit headers of an answer (§4, §5): what the rate and quota phases decided.
#[derive(Default)]
pub(crate) struct LimitHeaders {
    pub rate: Option<RateDecision>,
    pub quota: Option<QuotaState>,
}

impl LimitHeaders {
    pub fn apply(&self, headers: &mut HeaderMap, now: Timestamp) {
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
