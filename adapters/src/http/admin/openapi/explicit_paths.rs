//! The endpoints that are not generic per resource type: auth, actions, operations, docs.

use super::*;

/// A plain JSON response of any object.
fn any_json(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new().schema(Some(any_object())).build(),
    )
}

/// A GET that needs no authentication.
fn public_get(paths: PathsBuilder, path: &str, mut op: Operation) -> PathsBuilder {
    op.security = Some(vec![SecurityRequirement::default()]);
    paths.path(path, PathItem::new(HttpMethod::Get, op))
}

/// The endpoints that are not generic per resource type.
pub(super) fn explicit_paths(mut paths: PathsBuilder) -> PathsBuilder {
    let text = |paths: PathsBuilder, path: &str, tag: &str, summary: &str, ct: &str| {
        let op = OperationBuilder::new()
            .operation_id(Some(format!("get{}", path.replace(['/', '.', '-'], "_"))))
            .summary(Some(summary))
            .tag(tag)
            .response(
                "200",
                ResponseBuilder::new()
                    .description(summary)
                    // YAML is a structured document (clients parse it); HTML and Prometheus
                    // text are plain strings.
                    .content(
                        ct,
                        ContentBuilder::new()
                            .schema(Some(if ct == "application/yaml" {
                                any_object()
                            } else {
                                string()
                            }))
                            .build(),
                    )
                    .build(),
            )
            .build();
        public_get(paths, path, op)
    };
    let plain_json = |paths: PathsBuilder, path: &str, summary: &str| {
        let op = OperationBuilder::new()
            .operation_id(Some(format!("get{}", path.replace(['/', '.', '-'], "_"))))
            .summary(Some(summary))
            .tag("operations")
            .response(
                "200",
                ResponseBuilder::new()
                    .description(summary)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(ty(Type::Object).property("status", string())))
                            .build(),
                    )
                    .build(),
            )
            .response(
                "503",
                any_json("Not ready (the database or the configuration is unavailable)."),
            )
            .build();
        public_get(paths, path, op)
    };
    paths = plain_json(paths, "/health", "Liveness: the process answers.");
    paths = plain_json(
        paths,
        "/ready",
        "Readiness: database reachable, configuration loaded.",
    );
    paths = text(
        paths,
        "/metrics",
        "operations",
        "Prometheus metrics (text exposition format).",
        "text/plain",
    );
    paths = text(
        paths,
        "/docs",
        "docs",
        "This document as an interactive page (Scalar), served from the binary: it loads \
         nothing from other origins.",
        "text/html",
    );
    paths = text(
        paths,
        crate::http::admin::docs::SCALAR_PATH,
        "docs",
        &format!(
            "The script of the /docs page (Scalar API Reference {}), gzip-encoded when \
             accepted, cacheable for a year.",
            crate::http::admin::docs::SCALAR_VERSION
        ),
        "text/javascript",
    );
    paths = {
        let op = OperationBuilder::new()
            .operation_id(Some("get_docs_openapi_json"))
            .summary(Some("This OpenAPI document (JSON)."))
            .tag("docs")
            .response("200", any_json("The OpenAPI 3.1 document."))
            .build();
        public_get(paths, "/docs/openapi.json", op)
    };
    paths = text(
        paths,
        "/docs/openapi.yaml",
        "docs",
        "This OpenAPI document (YAML).",
        "application/yaml",
    );

    let auth_post = |paths: PathsBuilder,
                     path: &str,
                     summary: &str,
                     public: bool,
                     ok: (&str, &str, Option<&str>)| {
        let op = Op::new("auth", summary)
            .body("AttributesRequest")
            .returns(ok.0, ok.1, ok.2);
        let op = if public { op.public() } else { op };
        add(paths, path, HttpMethod::Post, op)
    };
    paths = auth_post(
        paths,
        "/api/auth/login",
        "Log in with email and password: sets the session cookie and returns an access token (JWT).",
        true,
        ("200", "Logged in.", Some("AnyDocument")),
    );
    paths = auth_post(
        paths,
        "/api/auth/logout",
        "Log out: ends the session.",
        false,
        ("204", "Logged out.", None),
    );
    paths = auth_post(
        paths,
        "/api/auth/sessions/recycle",
        "End every other session of the caller.",
        false,
        ("204", "Recycled.", None),
    );
    paths = auth_post(
        paths,
        "/api/users/{id}/sessions/recycle",
        "End every session of a user (admin).",
        false,
        ("204", "Recycled.", None),
    );
    paths = auth_post(
        paths,
        "/api/auth/password",
        "Change the caller's password (`current_password`, `password`).",
        false,
        ("204", "Changed.", None),
    );
    paths = auth_post(
        paths,
        "/api/auth/register",
        "Self-registration, when enabled.",
        true,
        ("201", "Registered.", Some("UsersDocument")),
    );
    paths = auth_post(
        paths,
        "/api/auth/forgot-password",
        "Ask for a password-reset email (always the same 200).",
        true,
        ("200", "A message in `meta`.", Some("AnyDocument")),
    );
    paths = auth_post(
        paths,
        "/api/auth/reset-password",
        "Set a new password with a reset token.",
        true,
        ("200", "A message in `meta`.", Some("AnyDocument")),
    );
    paths = add(
        paths,
        "/api/auth/me",
        HttpMethod::Get,
        Op::new("auth", "The caller's own user.")
            .params(fields_and_include(None))
            .returns("200", "The caller.", Some("UsersDocument")),
    );
    paths = add(
        paths,
        "/api/auth/me",
        HttpMethod::Patch,
        Op::new("auth", "Update the caller's own profile.")
            .body("UsersUpdateRequest")
            .returns("200", "The caller.", Some("UsersDocument")),
    );
    paths = usage::paths(paths);
    let action = |paths: PathsBuilder,
                  path: &str,
                  tag: &str,
                  summary: &str,
                  ok: (&str, &str, Option<&str>)| {
        add(
            paths,
            path,
            HttpMethod::Post,
            Op::new(tag, summary).returns(ok.0, ok.1, ok.2),
        )
    };
    paths = action(
        paths,
        "/api/api-keys/{id}/revoke",
        "api-keys",
        "Revoke an API key now.",
        ("200", "The revoked key.", Some("ApiKeysDocument")),
    );
    paths = action(
        paths,
        "/api/api-keys/{id}/rotate",
        "api-keys",
        "Issue a new secret for an API key; the response shows it once.",
        (
            "200",
            "The key with its new secret in `meta`.",
            Some("ApiKeysDocument"),
        ),
    );
    paths = action(
        paths,
        "/api/webhooks/{id}/test",
        "webhooks",
        "Send a test event to the webhook.",
        ("200", "The delivery.", Some("WebhookDeliveriesDocument")),
    );
    paths = action(
        paths,
        "/api/webhooks/{id}/rotate-secret",
        "webhooks",
        "Issue a new signing secret; the response shows it once.",
        (
            "200",
            "The webhook with its new secret in `meta`.",
            Some("WebhooksDocument"),
        ),
    );
    paths = action(
        paths,
        "/api/webhooks/{id}/deliveries/{did}/redeliver",
        "webhooks",
        "Queue a delivery again.",
        ("202", "Queued.", Some("WebhookDeliveriesDocument")),
    );
    paths = add(
        paths,
        "/api/webhooks/{id}/deliveries/{did}",
        HttpMethod::Get,
        Op::new("webhooks", "One delivery of the webhook.")
            .params(fields_and_include(None))
            .returns("200", "The delivery.", Some("WebhookDeliveriesDocument")),
    );
    paths
}
