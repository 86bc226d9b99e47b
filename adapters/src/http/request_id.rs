//! `X-Request-Id` on every response: the client's, if it is 1–128 of `[A-Za-z0-9._-]`,
//! else a fresh `req_<ULID>`. Error documents reuse it as their `id`.

use actix_web::{
    Error, HttpMessage,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::header::{HeaderName, HeaderValue},
    middleware::Next,
};

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The request id stored in request extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

pub fn is_valid(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

pub fn generate() -> String {
    format!("req_{}", ulid::Ulid::generate())
}

/// The id of the request being served (outside a request: a fresh one).
pub fn current() -> String {
    REQUEST_ID
        .try_with(Clone::clone)
        .unwrap_or_else(|_| generate())
}

/// The proxy's form of [`from_header`] (its headers are `http` 1.x values).
pub fn from_text(value: Option<&str>) -> String {
    value
        .filter(|v| is_valid(v))
        .map(str::to_owned)
        .unwrap_or_else(generate)
}

pub fn from_header(value: Option<&HeaderValue>) -> String {
    value
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_valid(v))
        .map(str::to_owned)
        .unwrap_or_else(generate)
}

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = from_header(req.headers().get("x-request-id"));
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut response = REQUEST_ID.scope(id.clone(), next.call(req)).await?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response
            .headers_mut()
            .insert(HeaderName::from_static("x-request-id"), value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_safe_ids() {
        assert!(is_valid("abc-123_x.y"));
        assert!(!is_valid(""));
        assert!(!is_valid("has space"));
        assert!(!is_valid(&"a".repeat(129)));
        assert!(generate().starts_with("req_"));
    }
}
