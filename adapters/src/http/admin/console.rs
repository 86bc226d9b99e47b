//! The admin console: a small single-page web UI served at `/` from files compiled into this
//! binary, so running Tollgate needs neither Node.js nor internet access.
//!
//! The source lives in `adapters/console/` and is built into `adapters/assets/console/` by
//! `adapters/console/build.sh`; CI rebuilds it and fails when the committed output differs. The
//! console speaks only the public JSON:API under `/api`, with the session cookie: every write
//! sends `application/vnd.api+json` and the browser adds `Origin`, which is what the CSRF rules
//! for cookie clients ask for. Navigation is by URL fragment, so `/` is the only page.

use actix_web::{
    HttpResponse,
    http::header::{self, CacheControl, CacheDirective},
    web,
};

/// Where the script and stylesheet are served (one prefix, away from `/api` and `/docs`).
pub const SCRIPT_PATH: &str = "/console/console.js";
/// See [`SCRIPT_PATH`].
pub const STYLE_PATH: &str = "/console/console.css";

static INDEX_HTML: &str = include_str!("../../../assets/console/index.html");
static CONSOLE_JS: &str = include_str!("../../../assets/console/console.js");
static CONSOLE_CSS: &str = include_str!("../../../assets/console/console.css");

/// Policy of the console: script, style, fetches and images from this origin only, no inline
/// script or style at all (the console builds its DOM with `createElement`, never `innerHTML`
/// with markup), no framing.
pub const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; \
     style-src 'self'; img-src 'self' data:; font-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// Revalidated on every load: the files change with each release and are small.
fn respond(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CONTENT_SECURITY_POLICY, CONSOLE_CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header(CacheControl(vec![CacheDirective::NoCache]))
        .body(body)
}

/// Makes one asset's answer.
type Asset = fn() -> HttpResponse;

/// Registers `/` and the console's two assets. They stay out of the admin route table on
/// purpose: that table is the API the OpenAPI document describes, and these are not API.
/// Other methods get the API's JSON:API 405.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let files: [(&str, Asset); 3] = [
        ("/", || respond("text/html; charset=utf-8", INDEX_HTML)),
        (SCRIPT_PATH, || {
            respond("text/javascript; charset=utf-8", CONSOLE_JS)
        }),
        (STYLE_PATH, || {
            respond("text/css; charset=utf-8", CONSOLE_CSS)
        }),
    ];
    for (path, handler) in files {
        cfg.service(
            web::resource(path)
                .route(web::get().to(move || async move { handler() }))
                .default_service(web::to(super::not_allowed("GET"))),
        );
    }
}
