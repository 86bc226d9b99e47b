//! What every admin handler needs: the use cases, authentication, and the request's checks
//! in the order errors.md §3 fixes (auth → Accept → Content-Type → size → query → body).

use actix_web::{HttpMessage, HttpRequest, web};
use futures_util::StreamExt;
use tollgate_domain::{
    Actor,
    auth::{AuthError, Authentication, Presented},
    resources,
    service::{ResourceRules, ResourceService},
};

use crate::http::{error::ApiError, jsonapi::media, request_id::RequestId};

/// Admin request bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

pub const SESSION_COOKIE: &str = "tollgate_session";

#[derive(Clone)]
pub struct AdminState {
    pub service: ResourceService,
    pub auth: Authentication,
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
            session: req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned()),
            request_id: req.extensions().get::<RequestId>().map(|r| r.0.clone()),
        };
        self.auth
            .authenticate(&presented)
            .await
            .map_err(|err| match err {
                AuthError::Missing => ApiError::unauthorized("authentication is required"),
                AuthError::Invalid(detail) => ApiError::unauthorized(detail),
                AuthError::Unavailable(cause) => {
                    tracing::error!(%cause, "authentication store unavailable");
                    ApiError::new("SERVICE_UNAVAILABLE", "the database is unavailable")
                        .with_header("Retry-After", "5")
                }
            })
    }

    pub fn registry(&self) -> impl Fn(&str) -> Option<&'static dyn ResourceRules> {
        resources::by_type
    }
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
            "PAYLOAD_TOO_LARGE",
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
                "INVALID_DOCUMENT",
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
