//! What every admin handler needs: the use cases, authentication, and the request's checks
//! in the order errors.md §3 fixes (auth → Accept → Content-Type → size → query → body).

use actix_session::SessionExt;
use actix_web::{HttpMessage, HttpRequest, http::Method, web};
use futures_util::StreamExt;
use tollgate_domain::{
    Actor, AuthMethod,
    auth::{Authentication, CookieSession, Presented},
    resources,
    service::{ResourceRules, ResourceService},
};

use crate::http::{
    error::{ApiError, ErrorCode},
    jsonapi::media,
    request_id::RequestId,
};

/// Admin request bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

pub const SESSION_COOKIE: &str = "tollgate_session";

#[derive(Clone)]
pub struct AdminState {
    pub service: ResourceService,
    pub accounts: tollgate_domain::account::Accounts,
    pub auth: Authentication,
    /// Origins besides the admin listener's own that may send cookie-authenticated writes.
    pub allowed_origins: Vec<String>,
    /// Whether the admin origin is `https` (cookies marked `Secure`).
    pub secure: bool,
    /// Aggregates of the request log.
    pub usage: std::sync::Arc<dyn tollgate_domain::proxy::usage::UsageLog>,
    /// Load balancers whose `X-Forwarded-For` names the client (login throttling per IP).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Password-reset requests, handled after the answer.
    pub resets: super::reset_queue::ResetQueue,
}

/// The live session named by the request's cookie, as the session store loaded it.
fn cookie_session(req: &HttpRequest) -> Option<CookieSession> {
    let session = req.get_session();
    let get = |name: &str| session.get::<String>(name).ok().flatten();
    Some(CookieSession {
        sid: get("sid")?,
        user_id: get("user_id")?,
        role: get("role")?,
    })
}

impl AdminState {
    pub async fn authenticate(&self, req: &HttpRequest) -> Result<Actor, ApiError> {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .map(|v| v.to_str().unwrap_or_default().to_owned())
        };
        let presented = Presented {
            authorization: header("authorization"),
            api_key: header("x-api-key"),
            session_cookie: req.cookie(SESSION_COOKIE).is_some(),
            session: cookie_session(req),
            request_id: req.extensions().get::<RequestId>().map(|r| r.0.clone()),
        };
        let actor = self.auth.authenticate(&presented).await?;
        if actor.method == Some(AuthMethod::Session) && is_write(req.method()) {
            self.check_origin(req)?;
        }
        Ok(actor)
    }

    /// CSRF: a cookie-authenticated write must come from the admin origin or an allowed one.
    fn check_origin(&self, req: &HttpRequest) -> Result<(), ApiError> {
        let rejected =
            |detail: &str| ApiError::header_source(ErrorCode::CsrfRejected, "Origin", detail);
        let origin = req
            .headers()
            .get("origin")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| rejected("cookie-authenticated writes need an Origin header"))?;
        let host = req
            .headers()
            .get("host")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let scheme = if self.secure { "https" } else { "http" };
        let own = format!("{scheme}://{host}");
        let allowed = origin.eq_ignore_ascii_case(&own)
            || self
                .allowed_origins
                .iter()
                .any(|o| o.eq_ignore_ascii_case(origin));
        if allowed {
            Ok(())
        } else {
            Err(rejected("the Origin may not write with a session cookie"))
        }
    }

    /// The client's address as the login throttle counts it.
    pub fn client_ip(&self, req: &HttpRequest) -> String {
        let peer = req
            .peer_addr()
            .map(|a| a.ip())
            .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
        let forwarded = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok());
        crate::http::forwarded::client_ip(peer, forwarded, &self.trusted_proxies).to_string()
    }

    pub fn registry(&self) -> impl Fn(&str) -> Option<&'static dyn ResourceRules> {
        resources::by_type
    }
}

fn is_write(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PATCH | Method::PUT | Method::DELETE
    )
}

/// Reads the body after the media-type check: 415 for a body of another type, 413 past 1 MiB.
pub async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
) -> Result<web::Bytes, ApiError> {
    if !media::has_body(req) {
        return Ok(web::Bytes::new());
    }
    media::check_content_type(req)?;
    let too_large = || {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the body exceeds {MAX_BODY_BYTES} bytes"),
        )
    };
    if req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n > MAX_BODY_BYTES)
    {
        return Err(too_large());
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::new(
                ErrorCode::InvalidDocument,
                format!("the body could not be read: {e}"),
            )
        })?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
