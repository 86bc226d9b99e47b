//! `/api/auth/*` and the admin's session recycle: login, logout, me, sign out everywhere.

use actix_session::Session;
use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use serde_json::{Map, Value, json};
use tollgate_domain::{
    Actor, AuthMethod, Problem, Role, Row, Timestamp,
    auth::Login,
    resources::users::{self, Users},
    service::WriteInput,
    session_recycle,
};

use super::{context::AdminState, resources::path_segment};
use crate::http::{
    error::ApiError,
    jsonapi::{
        document::{self, Document, Expect},
        query::{self, Families},
        render,
    },
};

/// The string attributes an auth body must carry (`wanted`) or may carry (`optional`), in
/// document order; 422 for anything else.
fn string_attributes_with(
    input: &WriteInput,
    wanted: &[&str],
    optional: &[&str],
) -> Result<Map<String, Value>, ApiError> {
    let mut problems = Vec::new();
    let mut values = Map::new();
    for (name, value) in &input.attributes {
        if !wanted.contains(&name.as_str()) && !optional.contains(&name.as_str()) {
            problems.push(Problem {
                member: tollgate_domain::Member::Attribute(name.clone()),
                kind: tollgate_domain::ProblemKind::UnknownAttribute,
                detail: format!("{name} is not an attribute here"),
            });
        } else if let Some(text) = value.as_str() {
            values.insert(name.clone(), json!(text));
        } else {
            problems.push(Problem::invalid_attr(
                name,
                format!("{name} must be a string"),
            ));
        }
    }
    for name in wanted {
        if !input.attributes.iter().any(|(n, _)| n == name) {
            problems.push(Problem::invalid_attr(name, format!("{name} is required")));
        }
    }
    if !input.relationships.is_empty() {
        problems.push(Problem {
            member: tollgate_domain::Member::Relationship(input.relationships[0].0.clone()),
            kind: tollgate_domain::ProblemKind::UnknownRelationship,
            detail: "no relationships here".into(),
        });
    }
    if problems.is_empty() {
        Ok(values)
    } else {
        Err(tollgate_domain::DomainError::Invalid(problems).into())
    }
}

/// An auth document of the fixed `type_name` with exactly the named string attributes.
fn fixed_attributes(
    body: &[u8],
    type_name: &str,
    wanted: &[&str],
    optional: &[&str],
) -> Result<Map<String, Value>, ApiError> {
    let input = document::parse_resource(body, Expect::Fixed { type_name })?;
    string_attributes_with(&input, wanted, optional)
}

/// The body of a public auth endpoint: `Accept`, media type, size, no query parameters, then
/// [`fixed_attributes`].
async fn public_body(
    req: &HttpRequest,
    body: web::Payload,
    state: &AdminState,
    type_name: &str,
    wanted: &[&str],
    optional: &[&str],
) -> Result<Map<String, Value>, ApiError> {
    let admitted = state
        .intake(req)
        .body(body)
        .query(&users::SCHEMA, Families::Nothing)
        .admit_public()
        .await?;
    fixed_attributes(&admitted.body, type_name, wanted, optional)
}

fn text<'a>(attrs: &'a Map<String, Value>, name: &str) -> &'a str {
    attrs.get(name).and_then(Value::as_str).unwrap_or_default()
}

/// The `users` resource object of a row, as the caller sees it.
fn user_object(row: &Row, role: Role, now: Timestamp) -> Value {
    let params = query::parse("", &users::SCHEMA, Families::Single, role, now)
        .unwrap_or_else(|_| unreachable!("empty query"));
    render::resource_object(
        &users::SCHEMA,
        row,
        role,
        &params,
        &render::Linkage::default(),
        None,
    )
}

/// `POST /api/auth/login`: email + password → a new session (cookie) and a bearer token.
pub async fn login(
    req: HttpRequest,
    body: web::Payload,
    session: Session,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, ApiError> {
    let attrs = public_body(&req, body, &state, "sessions", &["email", "password"], &[]).await?;
    let (email, password) = (text(&attrs, "email"), text(&attrs, "password"));
    start_session(&req, &session, &state, email, password, StatusCode::OK).await
}

/// Logs in and answers with the session document (login and register share it).
async fn start_session(
    req: &HttpRequest,
    session: &Session,
    state: &AdminState,
    email: &str,
    password: &str,
    status: StatusCode,
) -> Result<HttpResponse, ApiError> {
    let previous_sid = session.get::<String>("sid").ok().flatten();
    let ip = state.client_ip(req);
    let login = state
        .auth
        .login(email, password, &ip, previous_sid.as_deref())
        .await?;
    let (user_id, role) = remember(session, &login)?;
    let doc = session_document(req, &login, &user_id, role, state.service.now());
    let response = render::json_api(status, doc);
    if status == StatusCode::CREATED {
        return Ok(render::with_location(
            response,
            &format!("/api/users/{user_id}"),
        ));
    }
    Ok(response)
}

/// A new session id on every login: whatever session came with the request is dropped, and
/// the cookie names the new session, its user and role.
fn remember(session: &Session, login: &Login) -> Result<(String, Role), ApiError> {
    session.clear();
    session.renew();
    let user_id = login.user["id"].as_str().unwrap_or_default().to_owned();
    let role = login.user["role"].as_str().unwrap_or("user").to_owned();
    for (name, value) in [
        ("sid", &login.session_id),
        ("user_id", &user_id),
        ("role", &role),
    ] {
        session
            .insert(name, value)
            .map_err(|e| ApiError::internal(format!("session state: {e}")))?;
    }
    Ok((user_id, Role::parse(&role).unwrap_or(Role::User)))
}

/// The `sessions` document of a login, its user included.
fn session_document(
    req: &HttpRequest,
    login: &Login,
    user_id: &str,
    role: Role,
    now: Timestamp,
) -> Value {
    let data = json!({
        "type": "sessions",
        "id": login.session_id,
        "attributes": {
            "token": login.token,
            "token_type": "Bearer",
            "token_expires_at": login.token_expires_at.to_string(),
            "expires_at": login.expires_at.to_string(),
        },
        "relationships": {"user": {"data": {"type": "users", "id": user_id}}},
    });
    Document::new()
        .links(req.path(), None)
        .member("data", data)
        .member("included", json!([user_object(&login.user, role, now)]))
        .build()
}

/// The caller's own id, or 404 (a system actor has none).
fn own_id(actor: &Actor) -> Result<String, ApiError> {
    actor.user_id.clone().ok_or_else(ApiError::not_found)
}

/// `PATCH /api/auth/me`: own `name`, or a password change with the current password.
pub async fn update_me(
    req: HttpRequest,
    body: web::Payload,
    session: Session,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, ApiError> {
    let admitted = state
        .intake(&req)
        .body(body)
        .query(&users::SCHEMA, Families::Single)
        .admit()
        .await?;
    let (actor, params) = (&admitted.actor, &admitted.query);
    let id = own_id(actor)?;
    let expect = Expect::Update {
        type_name: "users",
        id: &id,
    };
    let input = document::parse_resource(&admitted.body, expect)?;
    let changes_password = input.attributes.iter().any(|(n, _)| n == "password");
    let row = state.accounts.update_me(actor, input).await?;
    if changes_password && actor.method == Some(AuthMethod::Session) {
        session.renew();
    }
    let href = render::self_link(req.path(), req.query_string());
    let doc = render::one_document(
        &state.service,
        actor,
        params,
        &users::SCHEMA,
        row,
        None,
        href,
    )
    .await?;
    Ok(render::json_api(StatusCode::OK, doc))
}

/// `POST /api/auth/password`: `passwords` with `current_password` and `password`.
pub async fn change_password(
    req: HttpRequest,
    body: web::Payload,
    session: Session,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, ApiError> {
    let admitted = state
        .intake(&req)
        .body(body)
        .query(&users::SCHEMA, Families::Nothing)
        .admit()
        .await?;
    let wanted = ["current_password", "password"];
    let attrs = fixed_attributes(&admitted.body, "passwords", &wanted, &[])?;
    let (current, password) = (text(&attrs, "current_password"), text(&attrs, "password"));
    let actor = &admitted.actor;
    state
        .accounts
        .change_password(actor, current, password)
        .await?;
    if actor.method == Some(AuthMethod::Session) {
        session.renew();
    }
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /api/auth/register` (when enabled): a new `user`, signed in at once.
pub async fn register(
    req: HttpRequest,
    body: web::Payload,
    session: Session,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, ApiError> {
    if !state.service.ports().settings.allow_registration {
        return Err(ApiError::no_such_path());
    }
    let wanted = ["email", "password"];
    let attrs = public_body(&req, body, &state, "users", &wanted, &["name"]).await?;
    let (email, password) = (text(&attrs, "email"), text(&attrs, "password"));
    state
        .accounts
        .register(email, password, attrs.get("name").cloned())
        .await?;
    session.clear();
    start_session(&req, &session, &state, email, password, StatusCode::CREATED).await
}

fn meta_message(message: &str) -> HttpResponse {
    render::json_api(
        StatusCode::OK,
        Document::new()
            .member("meta", json!({"message": message}))
            .build(),
    )
}

/// `POST /api/auth/forgot-password`: always the same 200.
pub async fn forgot_password(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, ApiError> {
    let attrs = public_body(&req, body, &state, "password_resets", &["email"], &[]).await?;
    // Handled after the answer, which must not depend on what happens (nor take longer).
    state.resets.submit(text(&attrs, "email"));
    Ok(meta_message(
        "If that address is registered, a reset link has been sent.",
    ))
}

/// `POST /api/auth/reset-password`: token + new password.
pub async fn reset_password(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, ApiError> {
    let wanted = ["token", "password"];
    let attrs = public_body(&req, body, &state, "password_resets", &wanted, &[]).await?;
    state
        .accounts
        .reset_password(text(&attrs, "token"), text(&attrs, "password"))
        .await?;
    Ok(meta_message("The password has been changed."))
}

/// `POST /api/auth/logout`: the session (cookie or the token's) ends server-side.
pub async fn logout(
    req: HttpRequest,
    body: web::Payload,
    session: Session,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, ApiError> {
    let admitted = state.intake(&req).body(body).admit().await?;
    state.auth.logout(&admitted.actor).await?;
    if admitted.actor.method == Some(AuthMethod::Session) {
        session.purge();
        return Ok(HttpResponse::NoContent().finish());
    }
    Ok(HttpResponse::NoContent()
        .insert_header((
            "Set-Cookie",
            "tollgate_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0",
        ))
        .finish())
}

/// `GET /api/auth/me`: the caller as a `users` resource.
pub async fn me(req: HttpRequest, state: web::Data<AdminState>) -> Result<HttpResponse, ApiError> {
    let admitted = state
        .intake(&req)
        .query(&users::SCHEMA, Families::Single)
        .admit()
        .await?;
    let (actor, params) = (&admitted.actor, &admitted.query);
    let row = state.service.get(actor, &Users, &own_id(actor)?).await?;
    let href = render::self_link(req.path(), req.query_string());
    let mut doc = render::one_document(
        &state.service,
        actor,
        params,
        &users::SCHEMA,
        row,
        None,
        href,
    )
    .await?;
    doc["meta"] = json!({"auth_method": actor.method.map(|m| m.as_str())});
    Ok(render::json_api(StatusCode::OK, doc))
}

/// `POST /api/auth/sessions/recycle`: every other session and token of the caller ends; the
/// current session continues under a new key.
pub async fn recycle_own(
    req: HttpRequest,
    body: web::Payload,
    session: Session,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, ApiError> {
    let admitted = state.intake(&req).body(body).admit().await?;
    session_recycle::recycle_own(&state.auth, &admitted.actor).await?;
    if admitted.actor.method == Some(AuthMethod::Session) {
        session.renew();
    }
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /api/users/{id}/sessions/recycle` (admin): every session and token of that user ends.
pub async fn recycle_user(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, ApiError> {
    let admitted = state.intake(&req).body(body).admit().await?;
    let id = path_segment(&req, "id");
    session_recycle::recycle_user(&state.service, &state.auth, &admitted.actor, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}
