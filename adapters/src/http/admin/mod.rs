//! The admin listener: routes of every resource, wired to the generic handlers.

mod actions;
mod auth;
mod context;
mod relationships;
mod resources;
mod usage;
mod webhooks;

use actix_web::{HttpResponse, web};
use serde_json::json;
use tollgate_domain::{resources as domain_resources, service::ResourceRules};

pub use context::{AdminState, SESSION_COOKIE};

use crate::http::error::ApiError;

/// 405 with the methods the path does support.
fn not_allowed(
    allow: &'static str,
) -> impl Fn() -> std::future::Ready<Result<HttpResponse, ApiError>> + Clone {
    move || {
        std::future::ready(Err(ApiError::new(
            "METHOD_NOT_ALLOWED",
            format!("this path supports {allow}"),
        )
        .with_header("Allow", allow)))
    }
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::new("NOT_FOUND", "no such path"))
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Registers `/health`, every `/api` path, and JSON:API 404s for the rest.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/health")
            .route(web::get().to(health))
            .default_service(web::to(not_allowed("GET"))),
    );
    let post = |path: &str, handler| {
        web::resource(path.to_owned())
            .route(handler)
            .default_service(web::to(not_allowed("POST")))
    };
    cfg.service(post("/api/auth/login", web::post().to(auth::login)));
    cfg.service(post("/api/auth/logout", web::post().to(auth::logout)));
    cfg.service(post(
        "/api/auth/sessions/recycle",
        web::post().to(auth::recycle_own),
    ));
    cfg.service(post(
        "/api/users/{id}/sessions/recycle",
        web::post().to(auth::recycle_user),
    ));
    cfg.service(post(
        "/api/auth/password",
        web::post().to(auth::change_password),
    ));
    cfg.service(post("/api/auth/register", web::post().to(auth::register)));
    cfg.service(post(
        "/api/auth/forgot-password",
        web::post().to(auth::forgot_password),
    ));
    cfg.service(post(
        "/api/auth/reset-password",
        web::post().to(auth::reset_password),
    ));
    cfg.service(
        web::resource("/api/auth/me")
            .route(web::get().to(auth::me))
            .route(web::patch().to(auth::update_me))
            .default_service(web::to(not_allowed("GET, PATCH"))),
    );
    cfg.service(
        web::resource("/api/usage/summary")
            .route(web::get().to(usage::summary))
            .default_service(web::to(not_allowed("GET"))),
    );
    for rules in domain_resources::ALL {
        register(cfg, rules);
    }
    for rules in domain_resources::READ_ONLY {
        register_read_only(cfg, rules);
    }
    cfg.default_service(web::to(not_found));
}

/// Types only Tollgate writes: GET of the collection, one resource, its relationships and
/// related resources. Deliveries have no collection of their own: they are listed per webhook.
fn register_read_only(cfg: &mut web::ServiceConfig, rules: &'static dyn ResourceRules) {
    let path = rules.schema().path;
    if path != "webhook-deliveries" {
        cfg.service(
            web::resource(format!("/api/{path}"))
                .route(web::get().to(move |req, state| resources::list(rules, req, state)))
                .default_service(web::to(not_allowed("GET"))),
        );
    }
    cfg.service(
        web::resource(format!("/api/{path}/{{id}}"))
            .route(web::get().to(move |req, state| resources::get(rules, req, state)))
            .default_service(web::to(not_allowed("GET"))),
    );
    cfg.service(
        web::resource(format!("/api/{path}/{{id}}/relationships/{{rel}}"))
            .route(web::get().to(move |req, state| relationships::get_linkage(rules, req, state)))
            .default_service(web::to(not_allowed("GET"))),
    );
    cfg.service(
        web::resource(format!("/api/{path}/{{id}}/{{rel}}"))
            .route(web::get().to(move |req, state| relationships::get_related(rules, req, state)))
            .default_service(web::to(not_allowed("GET"))),
    );
}

fn register(cfg: &mut web::ServiceConfig, rules: &'static dyn ResourceRules) {
    let path = rules.schema().path;
    if path == "webhooks" {
        let post = |suffix: &str, handler| {
            web::resource(format!("/api/{path}/{{id}}/{suffix}"))
                .route(handler)
                .default_service(web::to(not_allowed("POST")))
        };
        cfg.service(post("test", web::post().to(webhooks::test)));
        cfg.service(post(
            "rotate-secret",
            web::post().to(webhooks::rotate_secret),
        ));
        cfg.service(post(
            "deliveries/{did}/redeliver",
            web::post().to(webhooks::redeliver),
        ));
        cfg.service(
            web::resource(format!("/api/{path}/{{id}}/deliveries/{{did}}"))
                .route(web::get().to(webhooks::get_delivery))
                .default_service(web::to(not_allowed("GET"))),
        );
    }
    if path == "api-keys" {
        cfg.service(
            web::resource(format!("/api/{path}/{{id}}/revoke"))
                .route(web::post().to(actions::revoke_api_key))
                .default_service(web::to(not_allowed("POST"))),
        );
        cfg.service(
            web::resource(format!("/api/{path}/{{id}}/rotate"))
                .route(web::post().to(usage::rotate_api_key))
                .default_service(web::to(not_allowed("POST"))),
        );
    }
    cfg.service(
        web::resource(format!("/api/{path}"))
            .route(web::get().to(move |req, state| resources::list(rules, req, state)))
            .route(
                web::post().to(move |req, body, state| resources::create(rules, req, body, state)),
            )
            .default_service(web::to(not_allowed("GET, POST"))),
    );
    cfg.service(
        web::resource(format!("/api/{path}/{{id}}"))
            .route(web::get().to(move |req, state| resources::get(rules, req, state)))
            .route(
                web::patch().to(move |req, body, state| resources::update(rules, req, body, state)),
            )
            .route(web::delete().to(move |req, state| resources::delete(rules, req, state)))
            .default_service(web::to(not_allowed("GET, PATCH, DELETE"))),
    );
    let linkage =
        web::resource(format!("/api/{path}/{{id}}/relationships/{{rel}}"))
            .route(web::get().to(move |req, state| relationships::get_linkage(rules, req, state)))
            .route(web::patch().to(move |req, body, state| {
                relationships::replace_linkage(rules, req, body, state)
            }));
    let linkage = if path == "groups" {
        linkage
            .route(web::post().to(actions::add_members))
            .route(web::delete().to(actions::remove_members))
            .default_service(web::to(not_allowed("GET, PATCH, POST, DELETE")))
    } else {
        linkage.default_service(web::to(not_allowed("GET, PATCH")))
    };
    cfg.service(linkage);
    cfg.service(
        web::resource(format!("/api/{path}/{{id}}/{{rel}}"))
            .route(web::get().to(move |req, state| relationships::get_related(rules, req, state)))
            .default_service(web::to(not_allowed("GET"))),
    );
}
