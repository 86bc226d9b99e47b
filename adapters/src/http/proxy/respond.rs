//! The respond phase: the upstream's answer goes back to the client with its hop-by-hop
//! headers removed and the request id and limit headers set, its body streaming through a
//! counting wrapper that ends the exchange (meters the request) when the body ends or the
//! client goes away.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::Response;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use super::{
    answer::{ProxyBody, X_REQUEST_ID, header_text},
    exchange::Exchange,
    forward::SentBytes,
    headers,
};

/// The answer to a forwarded request.
pub fn respond(
    exchange: Exchange,
    upstream: Response<Incoming>,
    sent: Arc<SentBytes>,
) -> Response<ProxyBody> {
    let (mut parts, body) = upstream.into_parts();
    headers::strip_response(&mut parts.headers);
    parts
        .headers
        .insert(X_REQUEST_ID.clone(), header_text(exchange.request_id()));
    exchange
        .limits
        .apply(&mut parts.headers, exchange.gateway.now());
    let status = parts.status.as_u16();
    let body = Metered {
        inner: body,
        bytes: 0,
        done: Some(Done {
            exchange,
            sent,
            status,
        }),
    };
    Response::from_parts(parts, ProxyBody::Upstream(body))
}

struct Done {
    exchange: Exchange,
    sent: Arc<SentBytes>,
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
            done.exchange.record.request_bytes = done.sent.bytes();
            done.exchange.finish(done.status, None, self.bytes);
        }
    }
}
