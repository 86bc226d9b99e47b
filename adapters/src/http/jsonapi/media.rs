//! Media-type negotiation (jsonapi.md §1): 406 for unusable `Accept`, 415 for bodies.

use actix_web::{HttpRequest, http::header};

use super::MEDIA_TYPE;
use crate::http::error::{ApiError, ErrorCode};

/// Splits `text` at every `sep` outside a double-quoted string (RFC 9110 §5.6.4), so a quoted
/// `profile="a;b, c"` stays one piece.
fn split_unquoted(text: &str, sep: char) -> Vec<&str> {
    let mut pieces = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                pieces.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    pieces.push(&text[start..]);
    pieces
}

/// One media type: the type and its parameters. In an `Accept` range (`weighted`), `q` and
/// everything after it are weight and extensions, not media-type parameters (RFC 9110 §12.5.1);
/// the flag says whether `q=0` excludes the range. In a `Content-Type` there is no weight, so
/// a `q` is a parameter like any other.
fn split_media(range: &str, weighted: bool) -> (String, Vec<(String, String)>, bool) {
    let mut parts = split_unquoted(range, ';').into_iter();
    let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    let mut params = Vec::new();
    let mut excluded = false;
    for part in parts {
        let (name, value) = part.split_once('=').unwrap_or((part, ""));
        let name = name.trim().to_ascii_lowercase();
        let value = value.trim().trim_matches('"').to_owned();
        if weighted && name == "q" {
            excluded = value.parse::<f32>().map(|q| q <= 0.0).unwrap_or(false);
            break;
        }
        params.push((name, value));
    }
    (media, params, excluded)
}

/// 406 when `Accept` names the JSON:API type only in forms we cannot serve.
pub fn check_accept(req: &HttpRequest) -> Result<(), ApiError> {
    // Several Accept headers count as one comma-separated list (RFC 9110 §5.3).
    let accept = req
        .headers()
        .get_all(header::ACCEPT)
        .map(|v| v.to_str().unwrap_or_default())
        .collect::<Vec<_>>()
        .join(",");
    let instances: Vec<bool> = split_unquoted(&accept, ',')
        .into_iter()
        .map(|range| split_media(range, true))
        .filter(|(media, _, _)| media == MEDIA_TYPE)
        .map(|(_, params, excluded)| !excluded && params.iter().all(|(n, _)| n == "profile"))
        .collect();
    if !instances.is_empty() && !instances.iter().any(|usable| *usable) {
        return Err(ApiError::header_source(
            ErrorCode::NotAcceptable,
            "Accept",
            format!("Accept must allow {MEDIA_TYPE} without parameters other than profile"),
        ));
    }
    Ok(())
}

/// Whether the request carries a body (`Content-Length` > 0, or chunked).
pub fn has_body(req: &HttpRequest) -> bool {
    let headers = req.headers();
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|n| n > 0)
}

/// 415 unless a body comes as plain `application/vnd.api+json` (or with `profile` only).
pub fn check_content_type(req: &HttpRequest) -> Result<(), ApiError> {
    let unsupported = |detail: &str| {
        ApiError::header_source(ErrorCode::UnsupportedMediaType, "Content-Type", detail)
    };
    let Some(value) = req.headers().get(header::CONTENT_TYPE) else {
        return Err(unsupported("Content-Type must be application/vnd.api+json"));
    };
    let (media, params, _) = split_media(value.to_str().unwrap_or_default(), false);
    if media != MEDIA_TYPE {
        return Err(unsupported("Content-Type must be application/vnd.api+json"));
    }
    for (name, _) in params {
        match name.as_str() {
            "ext" => {
                return Err(ApiError::header_source(
                    ErrorCode::UnsupportedExtension,
                    "Content-Type",
                    "no JSON:API extension is supported",
                ));
            }
            "profile" => {}
            other => {
                return Err(unsupported(&format!(
                    "media type parameter {other} is not allowed"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn accept(value: &str) -> Result<(), ApiError> {
        check_accept(
            &TestRequest::default()
                .insert_header(("Accept", value))
                .to_http_request(),
        )
    }

    fn content_type(value: &str) -> Option<&'static str> {
        check_content_type(
            &TestRequest::default()
                .insert_header(("Content-Type", value))
                .to_http_request(),
        )
        .err()
        .map(|e| e.code())
    }

    #[test]
    fn accept_rules() {
        assert!(accept("application/vnd.api+json").is_ok());
        assert!(accept("*/*").is_ok());
        assert!(accept("application/json").is_ok());
        assert!(accept("application/vnd.api+json; profile=\"https://x\"").is_ok());
        assert!(accept("application/vnd.api+json;q=0.9").is_ok());
        assert!(
            accept("application/vnd.api+json; charset=utf-8, application/vnd.api+json").is_ok()
        );
        assert!(accept("application/vnd.api+json; ext=\"https://x\"").is_err());
        assert!(accept("application/vnd.api+json; version=1").is_err());
        assert!(accept("application/vnd.api+json;q=0").is_err());
    }

    #[test]
    fn content_type_rules() {
        assert_eq!(content_type("application/vnd.api+json"), None);
        assert_eq!(
            content_type("application/vnd.api+json; profile=\"x\""),
            None
        );
        assert_eq!(
            content_type("application/json"),
            Some("UNSUPPORTED_MEDIA_TYPE")
        );
        assert_eq!(
            content_type("application/vnd.api+json; charset=utf-8"),
            Some("UNSUPPORTED_MEDIA_TYPE")
        );
        assert_eq!(
            content_type("application/vnd.api+json; ext=\"x\""),
            Some("UNSUPPORTED_EXTENSION")
        );
        assert_eq!(
            content_type("application/vnd.api+json; q=0.5"),
            Some("UNSUPPORTED_MEDIA_TYPE")
        );
        assert_eq!(
            content_type("application/vnd.api+json; profile=\"a;b, c\""),
            None
        );
    }

    #[test]
    fn quoted_separators_stay_inside_their_parameter() {
        assert!(accept("application/vnd.api+json; profile=\"https://x;charset=y\"").is_ok());
        assert!(accept("application/vnd.api+json; profile=\"a, b\"; foo=1").is_err());
        assert!(accept("application/vnd.api+json; q=0.9; foo=bar").is_ok());
        assert_eq!(
            split_unquoted(r#"a="x\"y;z";b"#, ';'),
            vec![r#"a="x\"y;z""#, "b"]
        );
    }
}
