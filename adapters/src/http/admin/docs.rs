//! The `/docs` page: Scalar's API reference UI, served entirely from this binary so the page works
//! on a machine without internet access (no CDN script, no web fonts, no Scalar services).
//!
//! The bundle is vendored in `adapters/assets/scalar/` (see its README for where it came from) and
//! served at a path that carries its version, so it can be cached forever. The page itself is a
//! few lines of HTML without inline script: Scalar reads its configuration from the
//! `data-configuration` attribute of the `#api-reference` element, which lets the Content-Security-
//! Policy allow scripts from `'self'` only.

use std::{io::Write, sync::OnceLock};

use actix_web::{
    HttpRequest, HttpResponse,
    http::header::{
        self, AcceptEncoding, CacheControl, CacheDirective, ContentEncoding, ETag, Encoding,
        EntityTag, Header, IfNoneMatch,
    },
    web,
};
use flate2::{Compression, write::GzEncoder};
use serde_json::json;

/// One place for the version: the asset path and the docs below are built from it.
macro_rules! scalar_version {
    () => {
        "1.76.4"
    };
}

/// Version of `@scalar/api-reference` vendored in `adapters/assets/scalar/standalone.js`.
pub const SCALAR_VERSION: &str = scalar_version!();

/// Where the bundle is served. The version in the path makes the response immutable.
pub const SCALAR_PATH: &str = concat!("/docs/assets/scalar-", scalar_version!(), ".js");

/// SHA-256 of the vendored file, as published in its README (a unit test checks it).
pub const SCALAR_SHA256: &str = "93951f1794b0463b87ab58d0557a6610075af79a9f94c2a3f261c993bc7f3913";

/// The bundle, compiled into the binary.
pub static SCALAR_JS: &[u8] = include_bytes!("../../../assets/scalar/standalone.js");

/// Policy of the `/docs` page. Scripts, fetches (the document and the API client's test
/// requests) and everything else only from this origin. Styles need `'unsafe-inline'`: Scalar
/// injects its stylesheet as a `<style>` element and Vue sets `style` attributes; no script can
/// be injected that way. Images may be `data:`/`blob:` (inline icons, response previews).
pub const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Scalar's configuration. Everything that would reach the internet by itself is off:
/// `withDefaultFonts` (fonts.scalar.com), `proxyUrl` empty (no proxy.scalar.com for test
/// requests), `agent` and `mcp` (Scalar's AI agent and MCP services, which it enables by itself
/// on localhost), `showDeveloperTools` (the toolbar that uploads the document to Scalar's
/// registry), `telemetry`. The connect-src of [`DOCS_CSP`] stops anything this list misses.
fn configuration() -> serde_json::Value {
    json!({
        "url": "/docs/openapi.json",
        "withDefaultFonts": false,
        "telemetry": false,
        "proxyUrl": "",
        "agent": {"disabled": true},
        "mcp": {"disabled": true},
        "showDeveloperTools": "never",
        "persistAuth": false,
    })
}

/// Escapes `text` for a double-quoted HTML attribute.
fn attribute(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

fn page() -> String {
    // The `#api-reference` element must come before the bundle: the bundle mounts the page on
    // load by looking for it. `type="application/json"` makes it a data block, never executed.
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Tollgate admin API</title>
<link rel="icon" href="data:,">
</head>
<body>
<script id="api-reference" type="application/json" data-configuration="{config}"></script>
<script src="{src}"></script>
</body>
</html>
"#,
        config = attribute(&configuration().to_string()),
        src = SCALAR_PATH,
    )
}

/// `GET /docs`.
pub async fn page_handler() -> HttpResponse {
    static BODY: OnceLock<String> = OnceLock::new();
    let body = BODY.get_or_init(page);
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, DOCS_CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header(CacheControl(vec![CacheDirective::NoCache]))
        .body(body.as_str())
}

/// Strong validators, one per representation (RFC 9110 §8.8.3: an encoding is another
/// representation and needs its own tag).
fn etag(gzip: bool) -> EntityTag {
    let digest = &SCALAR_SHA256[..32];
    EntityTag::new_strong(if gzip {
        format!("{digest}-gzip")
    } else {
        digest.to_owned()
    })
}

/// The bundle gzip-compressed, made once (about 4.7 MB in, 1.4 MB out) on a blocking thread at
/// the first request that accepts gzip; `None` if the pool is shutting down or compression
/// failed, and then the plain bytes are served.
async fn gzipped() -> Option<&'static [u8]> {
    static GZIP: OnceLock<Option<Vec<u8>>> = OnceLock::new();
    if let Some(done) = GZIP.get() {
        return done.as_deref();
    }
    let compress = || {
        let mut encoder =
            GzEncoder::new(Vec::with_capacity(SCALAR_JS.len() / 3), Compression::best());
        encoder.write_all(SCALAR_JS).and_then(|()| encoder.finish())
    };
    web::block(move || {
        GZIP.get_or_init(|| {
            compress()
                .inspect_err(|e| tracing::warn!(error = %e, "cannot gzip the Scalar bundle"))
                .ok()
        })
        .as_deref()
    })
    .await
    .ok()
    .flatten()
}

fn wants_gzip(req: &HttpRequest) -> bool {
    AcceptEncoding::parse(req).ok().is_some_and(|accept| {
        accept.negotiate([Encoding::gzip(), Encoding::identity()].iter()) == Some(Encoding::gzip())
    })
}

fn matches(req: &HttpRequest, tag: &EntityTag) -> bool {
    match IfNoneMatch::parse(req) {
        Ok(IfNoneMatch::Any) => true,
        Ok(IfNoneMatch::Items(items)) => items.iter().any(|item| item.weak_eq(tag)),
        Err(_) => false,
    }
}

/// `GET /docs/assets/scalar-<version>.js`: the bundle, gzip-encoded when the client accepts it,
/// cacheable for a year (the path changes with the version).
pub async fn scalar_js(req: HttpRequest) -> HttpResponse {
    let body = if wants_gzip(&req) {
        gzipped().await
    } else {
        None
    };
    let tag = etag(body.is_some());
    let not_modified = matches(&req, &tag);
    let mut response = if not_modified {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header(CacheControl(vec![
            CacheDirective::Public,
            CacheDirective::MaxAge(31_536_000),
            CacheDirective::Extension("immutable".to_owned(), None),
        ]))
        .insert_header((header::VARY, "Accept-Encoding"))
        .insert_header(ETag(tag));
    if not_modified {
        return response.finish();
    }
    if body.is_some() {
        response.insert_header(ContentEncoding::Gzip);
    }
    response
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(body.unwrap_or(SCALAR_JS))
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    #[test]
    fn the_embedded_bundle_is_the_vendored_one() {
        assert_eq!(hex::encode(Sha256::digest(SCALAR_JS)), SCALAR_SHA256);
    }

    #[test]
    fn the_configuration_survives_the_attribute() {
        let html = page();
        let start = html.find("data-configuration=\"").unwrap() + "data-configuration=\"".len();
        let end = start + html[start..].find('"').unwrap();
        let decoded = html[start..end]
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&");
        let parsed: serde_json::Value = serde_json::from_str(&decoded).unwrap();
        assert_eq!(parsed, configuration());
    }
}
