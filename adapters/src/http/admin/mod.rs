//! The admin listener: routes of every resource, wired to the generic handlers.

mod actions;
mod auth;
pub mod console;
mod context;
pub mod docs;
pub mod openapi;
mod relationships;
pub mod reset_queue;
mod resources;
pub mod usage;
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
    move || std::future::ready(Err(ApiError::method_not_allowed(allow)))
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::no_such_path())
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// One path of the admin listener and the methods it answers (actix `{id}` = OpenAPI `{id}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminRoute {
    pub path: String,
    pub methods: Vec<&'static str>,
}

/// The admin routes, registered and listed by the same code: `configure` serves what this
/// table lists, and the OpenAPI test checks the document covers every entry.
pub struct Routes<'a> {
    cfg: Option<&'a mut web::ServiceConfig>,
    listed: Vec<AdminRoute>,
}

impl<'a> Routes<'a> {
    /// Registers every route added on `cfg`.
    pub fn serving(cfg: &'a mut web::ServiceConfig) -> Self {
        Self {
            cfg: Some(cfg),
            listed: Vec::new(),
        }
    }

    /// Only lists the routes added.
    pub fn listing() -> Self {
        Self {
            cfg: None,
            listed: Vec::new(),
        }
    }

    /// Adds `path` answering `allow` (`"GET, POST"`) through `build`; other methods get a 405.
    pub fn add(
        &mut self,
        path: impl Into<String>,
        allow: &'static str,
        build: impl FnOnce(actix_web::Resource) -> actix_web::Resource,
    ) {
        let path = path.into();
        self.listed.push(AdminRoute {
            path: path.clone(),
            methods: allow.split(", ").collect(),
        });
        if let Some(cfg) = self.cfg.as_deref_mut() {
            cfg.service(build(web::resource(path)).default_service(web::to(not_allowed(allow))));
        }
    }

    pub fn into_list(self) -> Vec<AdminRoute> {
        self.listed
    }
}

/// Every route `configure` registers.
pub fn route_table() -> Vec<AdminRoute> {
    let mut routes = Routes::listing();
    declare(&mut routes);
    routes.into_list()
}

/// Registers `/health`, `/docs` (and its script), every `/api` path, and JSON:API 404s for the rest.
pub fn configure(cfg: &mut web::ServiceConfig) {
    console::configure(cfg);
    declare(&mut Routes::serving(cfg));
    cfg.default_service(web::to(not_found));
}

fn declare(routes: &mut Routes) {
    routes.add("/health", "GET", |r| r.route(web::get().to(health)));
    routes.add("/docs", "GET", |r| {
        r.route(web::get().to(docs::page_handler))
    });
    routes.add(docs::SCALAR_PATH, "GET", |r| {
        r.route(web::get().to(docs::scalar_js))
    });
    routes.add("/docs/openapi.json", "GET", |r| {
        r.route(web::get().to(openapi::json))
    });
    routes.add("/docs/openapi.yaml", "GET", |r| {
        r.route(web::get().to(openapi::yaml))
    });
    let posts = [
        ("/api/auth/login", web::post().to(auth::login)),
        ("/api/auth/logout", web::post().to(auth::logout)),
        (
            "/api/auth/sessions/recycle",
            web::post().to(auth::recycle_own),
        ),
        (
            "/api/users/{id}/sessions/recycle",
            web::post().to(auth::recycle_user),
        ),
        ("/api/auth/password", web::post().to(auth::change_password)),
        ("/api/auth/register", web::post().to(auth::register)),
        (
            "/api/auth/forgot-password",
            web::post().to(auth::forgot_password),
        ),
        (
            "/api/auth/reset-password",
            web::post().to(auth::reset_password),
        ),
    ];
    for (path, route) in posts {
        routes.add(path, "POST", |r| r.route(route));
    }
    routes.add("/api/auth/me", "GET, PATCH", |r| {
        r.route(web::get().to(auth::me))
            .route(web::patch().to(auth::update_me))
    });
    routes.add("/api/usage/summary", "GET", |r| {
        r.route(web::get().to(usage::summary))
    });
    routes.add("/api/usage/series", "GET", |r| {
        r.route(web::get().to(usage::series))
    });
    routes.add("/api/usage/export", "GET", |r| {
        r.route(web::get().to(usage::export))
    });
    for rules in domain_resources::ALL {
        register(routes, rules);
    }
    for rules in domain_resources::READ_ONLY {
        register_read_only(routes, rules);
    }
}

/// Types only Tollgate writes: GET of the collection, one resource, its relationships and
/// related resources. Deliveries have no collection of their own: they are listed per webhook.
fn register_read_only(routes: &mut Routes, rules: &'static dyn ResourceRules) {
    let path = rules.schema().path;
    if path != "webhook-deliveries" {
        routes.add(format!("/api/{path}"), "GET", |r| {
            r.route(web::get().to(move |req, state| resources::list(rules, req, state)))
        });
    }
    routes.add(format!("/api/{path}/{{id}}"), "GET", |r| {
        r.route(web::get().to(move |req, state| resources::get(rules, req, state)))
    });
    routes.add(
        format!("/api/{path}/{{id}}/relationships/{{rel}}"),
        "GET",
        |r| r.route(web::get().to(move |req, state| relationships::get_linkage(rules, req, state))),
    );
    routes.add(format!("/api/{path}/{{id}}/{{rel}}"), "GET", |r| {
        r.route(web::get().to(move |req, state| relationships::get_related(rules, req, state)))
    });
}

fn register(routes: &mut Routes, rules: &'static dyn ResourceRules) {
    let path = rules.schema().path;
    if path == "webhooks" {
        let posts = [
            ("test", web::post().to(webhooks::test)),
            ("rotate-secret", web::post().to(webhooks::rotate_secret)),
            (
                "deliveries/{did}/redeliver",
                web::post().to(webhooks::redeliver),
            ),
        ];
        for (suffix, route) in posts {
            routes.add(format!("/api/{path}/{{id}}/{suffix}"), "POST", |r| {
                r.route(route)
            });
        }
        routes.add(
            format!("/api/{path}/{{id}}/deliveries/{{did}}"),
            "GET",
            |r| r.route(web::get().to(webhooks::get_delivery)),
        );
    }
    if path == "api-keys" {
        routes.add(format!("/api/{path}/{{id}}/revoke"), "POST", |r| {
            r.route(web::post().to(actions::revoke_api_key))
        });
        routes.add(format!("/api/{path}/{{id}}/rotate"), "POST", |r| {
            r.route(web::post().to(actions::rotate_api_key))
        });
    }
    routes.add(format!("/api/{path}"), "GET, POST", |r| {
        r.route(web::get().to(move |req, state| resources::list(rules, req, state)))
            .route(
                web::post().to(move |req, body, state| resources::create(rules, req, body, state)),
            )
    });
    routes.add(format!("/api/{path}/{{id}}"), "GET, PATCH, DELETE", |r| {
        r.route(web::get().to(move |req, state| resources::get(rules, req, state)))
            .route(web::patch().to(move |req, body, state, session| {
                resources::update(rules, req, body, state, session)
            }))
            .route(web::delete().to(move |req, state| resources::delete(rules, req, state)))
    });
    let linkage = move |r: actix_web::Resource| {
        r.route(web::get().to(move |req, state| relationships::get_linkage(rules, req, state)))
            .route(web::patch().to(move |req, body, state| {
                relationships::replace_linkage(rules, req, body, state)
            }))
    };
    let linkage_path = format!("/api/{path}/{{id}}/relationships/{{rel}}");
    if path == "groups" {
        routes.add(linkage_path, "GET, PATCH, POST, DELETE", |r| {
            linkage(r)
                .route(web::post().to(actions::add_members))
                .route(web::delete().to(actions::remove_members))
        });
    } else {
        routes.add(linkage_path, "GET, PATCH", linkage);
    }
    routes.add(format!("/api/{path}/{{id}}/{{rel}}"), "GET", |r| {
        r.route(web::get().to(move |req, state| relationships::get_related(rules, req, state)))
    });
}
