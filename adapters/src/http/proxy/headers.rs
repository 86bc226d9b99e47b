//! Header rules of proxy.md §6: hop-by-hop headers never cross, the consumer's key and
//! identity headers never reach the upstream. The maps are edited in place: the client's
//! request headers become the upstream request's, the upstream's answer headers become the
//! client's, with no map rebuilt and no header converted.

use http::{HeaderMap, HeaderName, HeaderValue};

/// Names made once: removing by `&str` parses and validates the name on every call, which
/// showed in the proxy's instruction profile (`bench/proxy-instructions.sh`).
const fn name(text: &'static str) -> HeaderName {
    HeaderName::from_static(text)
}

/// The hop-by-hop headers of RFC 9110 §7.6.1 (the domain's `HOP_BY_HOP`; a test keeps the
/// two lists equal).
static HOP_BY_HOP_NAMES: [HeaderName; 8] = [
    name("connection"),
    name("keep-alive"),
    name("proxy-authenticate"),
    name("proxy-authorization"),
    name("te"),
    name("trailer"),
    name("transfer-encoding"),
    name("upgrade"),
];

/// Removed from the client's request on its way upstream:
/// - identity headers, set by Tollgate only (a client's copy is dropped);
/// - headers Tollgate replaces (`Host`, `X-Forwarded-*`, `X-Request-Id`);
/// - spoofable ones: an upstream (or the framework in front of it) may believe them about the
///   client's address (`Forwarded`, `X-Real-IP`) or about the path it should serve
///   (`X-Original-URL`, `X-Rewrite-URL`, read by some IIS and Symfony set-ups, which would
///   undo the route's path checks);
/// - the consumer's key (`X-API-Key`).
static REQUEST_STRIPPED: [HeaderName; 14] = [
    name("x-user-id"),
    name("x-key-id"),
    name("x-plan-id"),
    name("x-group-id"),
    name("host"),
    name("x-forwarded-for"),
    name("x-forwarded-proto"),
    name("x-forwarded-host"),
    name("x-request-id"),
    name("forwarded"),
    name("x-real-ip"),
    name("x-original-url"),
    name("x-rewrite-url"),
    name("x-api-key"),
];

/// Removes the hop-by-hop headers, including the ones `Connection` names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // No allocation when no `Connection` header lists extra names (the usual request).
    let listed: Vec<HeaderName> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in &HOP_BY_HOP_NAMES {
        headers.remove(name);
    }
}

/// The client's headers, made fit to go upstream: hop-by-hop, identity, replaced, spoofable
/// and key headers removed.
pub fn strip_request(headers: &mut HeaderMap, key_in_authorization: bool) {
    strip_hop_by_hop(headers);
    for name in &REQUEST_STRIPPED {
        headers.remove(name);
    }
    if key_in_authorization {
        headers.remove(http::header::AUTHORIZATION);
    }
}

/// The upstream's headers, made fit to go back to the client.
pub fn strip_response(headers: &mut HeaderMap) {
    strip_hop_by_hop(headers);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn incoming() -> HeaderMap {
        let mut headers = HeaderMap::new();
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
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static(value),
            );
        }
        headers
    }

    #[test]
    fn strips_hop_by_hop_key_and_identity_headers() {
        let mut out = incoming();
        strip_request(&mut out, true);
        let names: Vec<&str> = out.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, vec!["accept"]);
        let mut kept = incoming();
        strip_request(&mut kept, false);
        assert!(kept.contains_key("authorization"));
    }

    #[test]
    fn hop_by_hop_names_are_the_domains_list() {
        let names: Vec<&str> = HOP_BY_HOP_NAMES.iter().map(HeaderName::as_str).collect();
        assert_eq!(names, tollgate_domain::resources::checks::HOP_BY_HOP);
    }

    #[test]
    fn answers_lose_hop_by_hop_headers_only() {
        let mut answer = HeaderMap::new();
        answer.insert("connection", HeaderValue::from_static("x-hop"));
        answer.insert("x-hop", HeaderValue::from_static("1"));
        answer.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        answer.insert("content-length", HeaderValue::from_static("5"));
        answer.insert("x-kept", HeaderValue::from_static("1"));
        strip_response(&mut answer);
        let mut names: Vec<&str> = answer.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, vec!["content-length", "x-kept"]);
    }
}
