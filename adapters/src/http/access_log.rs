//! One log line and one metric per admin request: request id, method, matched route pattern,
//! path (never the query string), status and latency. No header or body is logged.

use std::time::Instant;

use actix_web::{
    Error, HttpMessage,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    middleware::Next,
};

use super::request_id::RequestId;

/// `endpoint` label for requests that matched no resource (bounded: never the raw path).
const UNMATCHED: &str = "unmatched";

pub async fn admin(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let method = req.method().to_string();
    let path = req.path().to_owned();
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let result = next.call(req).await;
    let (status, endpoint) = match &result {
        Ok(response) => (
            response.status().as_u16(),
            response.request().match_pattern(),
        ),
        Err(error) => (error.as_response_error().status_code().as_u16(), None),
    };
    let endpoint = endpoint.unwrap_or_else(|| UNMATCHED.to_owned());
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    metrics::counter!(
        "tollgate_admin_requests_total",
        "endpoint" => endpoint.clone(),
        "status" => status.to_string(),
    )
    .increment(1);
    tracing::info!(
        target: "tollgate::access",
        listener = "admin",
        request_id = %request_id,
        method = %method,
        path = %path,
        route = %endpoint,
        status,
        latency_ms,
        "request"
    );
    result
}
