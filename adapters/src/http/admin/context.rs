//! What every admin handler needs: the use cases, authentication, and the request's checks
//! in the order errors.md §3 fixes (auth → Accept → Content-Type → size → query → body).

use actix_session::SessionExt;
use actix_web::{HttpMessage, HttpRequest, http::Method, web};
use futures_util::StreamExt;
use tollgate_domain::{
    Actor, AuthMethod, ResourceSchema, Role, Timestamp,
    auth::{Authentication, CookieSession, Presented},
    resources,
    service::{ResourceRules, ResourceService},
};

use crate::http::{
    error::{ApiError, ErrorCode},
    jsonapi::{
        media,
        query::{self, Families, Params},
    },
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

/// What an admin request carries once its checks passed (errors.md §3 order): who acts, the
/// parsed query and the body of the right media type and size.
pub struct Admitted<A, Q> {
    pub actor: A,
    pub query: Q,
    pub body: web::Bytes,
}

type QueryParser<'a, Q> = Box<dyn FnOnce(&str, Role, Timestamp) -> Result<Q, ApiError> + 'a>;

/// The one admin request extractor: authentication (unless public) → `Accept` → body
/// (`Content-Type`, size) → query parameters. Document checks follow in the handler, which
/// knows the document it takes.
pub struct Intake<'a, Q> {
    req: &'a HttpRequest,
    state: &'a AdminState,
    accept: bool,
    payload: Option<web::Payload>,
    parse: QueryParser<'a, Q>,
}

impl AdminState {
    /// Starts the checks of `req`; without `.query(…)` no query parameter is looked at.
    pub fn intake<'a>(&'a self, req: &'a HttpRequest) -> Intake<'a, ()> {
        Intake {
            req,
            state: self,
            accept: true,
            payload: None,
            parse: Box::new(|_, _, _| Ok(())),
        }
    }
}

impl<'a, Q> Intake<'a, Q> {
    /// The request may carry a body: 415 for another media type, 413 past [`MAX_BODY_BYTES`].
    pub fn body(mut self, payload: web::Payload) -> Self {
        self.payload = Some(payload);
        self
    }

    /// `Accept` is left to the handler (an answer that is not JSON:API, such as CSV).
    pub fn any_accept(mut self) -> Self {
        self.accept = false;
        self
    }

    /// The JSON:API query parameters of `families` for `schema`.
    pub fn query(self, schema: &'static ResourceSchema, families: Families) -> Intake<'a, Params> {
        self.query_with(move |raw, role, now| query::parse(raw, schema, families, role, now))
    }

    /// Query parameters read by an endpoint's own parser.
    pub fn query_with<R>(
        self,
        parse: impl FnOnce(&str, Role, Timestamp) -> Result<R, ApiError> + 'a,
    ) -> Intake<'a, R> {
        Intake {
            req: self.req,
            state: self.state,
            accept: self.accept,
            payload: self.payload,
            parse: Box::new(parse),
        }
    }

    /// Runs the checks for an authenticated caller.
    pub async fn admit(self) -> Result<Admitted<Actor, Q>, ApiError> {
        let actor = self.state.authenticate(self.req).await?;
        let role = actor.role;
        self.rest(actor, role).await
    }

    /// Runs the checks of a public endpoint (login, register, password resets).
    pub async fn admit_public(self) -> Result<Admitted<(), Q>, ApiError> {
        self.rest((), Role::User).await
    }

    async fn rest<A>(self, actor: A, role: Role) -> Result<Admitted<A, Q>, ApiError> {
        if self.accept {
            media::check_accept(self.req)?;
        }
        let body = match self.payload {
            Some(payload) => read_body(self.req, payload).await?,
            None => web::Bytes::new(),
        };
        let query = (self.parse)(self.req.query_string(), role, self.state.service.now())?;
        Ok(Admitted { actor, query, body })
    }
}

fn is_write(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PATCH | Method::PUT | Method::DELETE
    )
}

/// Reads the body after the media-type check: 415 for a body of another type, 413 past 1 MiB.
async fn read_body(req: &HttpRequest, mut payload: web::Payload) -> Result<web::Bytes, ApiError> {
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
