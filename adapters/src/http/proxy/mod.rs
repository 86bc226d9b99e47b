//! The proxy listener. Until routing lands it answers its reserved health paths and
//! `ROUTE_NOT_FOUND` for everything else, in the proxy's plain-JSON error format.

use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use serde_json::json;

use crate::http::request_id;

/// A proxy error body (errors.md §4).
pub fn proxy_error(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({
        "error": {"code": code, "message": message, "request_id": request_id::current()}
    }))
}

async fn handle(req: HttpRequest) -> HttpResponse {
    let path = req.path();
    if req.method() == actix_web::http::Method::GET
        && (path == "/_tollgate/health" || path == "/health")
    {
        return HttpResponse::Ok().json(json!({"status": "ok"}));
    }
    proxy_error(
        StatusCode::NOT_FOUND,
        "ROUTE_NOT_FOUND",
        "no route matches this request",
    )
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.default_service(web::to(handle));
}
