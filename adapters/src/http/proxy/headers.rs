//! Header rules of proxy.md §6: hop-by-hop headers never cross, the consumer's key and
//! identity headers never reach the upstream, and actix's `http` 0.2 types become hyper's 1.x
//! types here, in one place.

use actix_web::http::header::HeaderMap as ActixHeaders;
use http::{HeaderMap, HeaderName, HeaderValue};

use tollgate_domain::resources::checks::HOP_BY_HOP;

/// Set by Tollgate only: a client's copy is dropped.
const IDENTITY: [&str; 4] = ["x-user-id", "x-key-id", "x-plan-id", "x-group-id"];

/// Never forwarded: an upstream (or the framework in front of it) may believe them about the
/// client's address (`Forwarded`, `X-Real-IP`) or about the path it should serve
/// (`X-Original-URL`, `X-Rewrite-URL`, read by some IIS and Symfony set-ups, which would undo
/// the route's path checks). Tollgate sets `X-Forwarded-*` itself.
const SPOOFABLE: [&str; 4] = ["forwarded", "x-real-ip", "x-original-url", "x-rewrite-url"];

/// Replaced by Tollgate on the way out.
const REPLACED: [&str; 5] = [
    "host",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-request-id",
];

/// Header names listed in `Connection` (they are hop-by-hop too).
fn connection_listed(connection: Option<&str>) -> Vec<String> {
    connection
        .map(|v| {
            v.split(',')
                .map(|name| name.trim().to_ascii_lowercase())
                .filter(|name| !name.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

pub fn is_hop_by_hop(name: &str, listed: &[String]) -> bool {
    HOP_BY_HOP.contains(&name) || listed.iter().any(|l| l == name)
}

/// The client's headers that may go upstream.
pub fn request_headers(incoming: &ActixHeaders, key_in_authorization: bool) -> HeaderMap {
    let listed = connection_listed(incoming.get("connection").and_then(|v| v.to_str().ok()));
    let mut out = HeaderMap::with_capacity(incoming.len() + 8);
    for (name, value) in incoming {
        let name = name.as_str();
        if is_hop_by_hop(name, &listed)
            || IDENTITY.contains(&name)
            || REPLACED.contains(&name)
            || SPOOFABLE.contains(&name)
            || name == "x-api-key"
            || (key_in_authorization && name == "authorization")
        {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            out.append(name, value);
        }
    }
    out
}

/// Sets a header whose name is known, skipping values that are not valid header text.
pub fn put(headers: &mut HeaderMap, name: &HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name.clone(), value);
    }
}

/// Sets a header from text, skipping values that are not valid header text.
pub fn set(headers: &mut HeaderMap, name: &str, value: &str) {
    if let (Ok(name), Ok(value)) = (
        HeaderName::from_bytes(name.as_bytes()),
        HeaderValue::from_str(value),
    ) {
        headers.insert(name, value);
    }
}

/// The upstream's headers that may go back to the client (`Content-Length` is set by the body).
pub fn response_headers(upstream: &HeaderMap, response: &mut actix_web::HttpResponseBuilder) {
    let listed = connection_listed(upstream.get("connection").and_then(|v| v.to_str().ok()));
    for (name, value) in upstream {
        let name = name.as_str();
        if is_hop_by_hop(name, &listed) || name == "content-length" {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            actix_web::http::header::HeaderName::from_bytes(name.as_bytes()),
            actix_web::http::header::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            response.append_header((name, value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName as AName, HeaderValue as AValue};

    #[test]
    fn strips_hop_by_hop_key_and_identity_headers() {
        let mut incoming = ActixHeaders::new();
        for (name, value) in [
            ("connection", "keep-alive, x-secret-hop"),
            ("x-secret-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("x-api-key", "tg_live_x"),
            ("authorization", "Bearer tg_live_x"),
            ("x-user-id", "usr_forged"),
            ("forwarded", "for=10.0.0.1"),
            ("x-real-ip", "10.0.0.1"),
            ("x-original-url", "/admin"),
            ("x-rewrite-url", "/admin"),
            ("accept", "application/json"),
        ] {
            incoming.append(
                AName::from_bytes(name.as_bytes()).unwrap(),
                AValue::from_static(value),
            );
        }
        let out = request_headers(&incoming, true);
        let names: Vec<&str> = out.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, vec!["accept"]);
        let kept = request_headers(&incoming, false);
        assert!(kept.contains_key("authorization"));
    }
}
