//! `/api/auth/*` and the admin's session recycle: login, logout, me, sign out everywhere.

use actix_session::Session;
use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use serde_json::{Map, Value, json};
use tollgate_domain::{
    AuthMethod, Problem,
    resources::users::{self, Users},
    service::{ResourceRules, WriteInput},
};

use super::context::{AdminState, read_body};
use crate::http::{
    error::ApiError,
    jsonapi::{
        document::{self, Document, Expect},
        media,
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

/// An auth endpoint's body: `Accept`, media type, size, no query parameters, a document of the
/// fixed `type_name`, and exactly the named string attributes.
async fn fixed_body(
    req: &HttpRequest,
    body: web::Payload,
    state: &AdminState,
    type_name: &str,
    wanted: &[&str],
    optional: &[&str],
) -> Result<Map<String, Value>, ApiError> {
    media::check_accept(req)?;
    let body = read_body(req, body).await?;
    query::parse(
        req.query_string(),
        &users::SCHEMA,
        Families::Nothing,
        tollgate_domain::Role::User,
        state.service.now(),
    )?;
    let input = document::parse_resource(&body, Expect::Fixed { type_name })?;
    string_attributes_with(&input, wanted, optional)
}

/// The `users` resource object of a row, as the caller sees it.
fn user_object(row: &tollgate_domain::Row, role: tollgate_domain::Role) -> Value {
    let params = query::parse(
        "",
        &users::SCHEMA,
        Families::Single,
        role,
        tollgate_domain::Timestamp::now(),
    )
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
    let attrs = fixed_body(&req, body, &state, "sessions", &["email", "password"], &[]).await?;
    let email = attrs["email"].as_str().unwrap_or_default();
    let password = attrs["password"].as_str().unwrap_or_default();
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
    let login = state
        .auth
        .login(
            email,
            password,
            &state.client_ip(req),
            previous_sid.as_deref(),
        )
        .await?;
    // A new session id on every login: whatever session came with the request is dropped.
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
    let role = tollgate_domain::Role::parse(&role).unwrap_or(tollgate_domain::Role::User);
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
    let doc = Document::new()
        .links(req.path(), None)
        .member("data", data)
        .member("included", json!([user_object(&login.user, role)]))
        .build();
    let mut response = render::json_api(status, doc);
    if status == StatusCode::CREATED
        && let Ok(location) =
            actix_web::http::header::HeaderValue::from_str(&format!("/api/users/{user_id}"))
    {
        response
            .headers_mut()
            .insert(actix_web::http::header::LOCATION, location);
    }
    Ok(response)
}

/// The caller's own id, or 404 (a system actor has none).
fn own_id(actor: &tollgate_domain::Actor) -> Result<String, ApiError> {
    actor.user_id.clone().ok_or_else(ApiError::not_found)
}

/// `PATCH /api/auth/me`: own `name`, or a password change with the current password.
pub async fn update_me(
    req: HttpRequest,
    body: web::Payload,
    session: Session,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, ApiError> {
    let actor = state.authenticate(&req).await?;
    media::check_accept(&req)?;
    let body = read_body(&req, body).await?;
    let params = query::parse(
        req.query_string(),
        &users::SCHEMA,
        Families::Single,
        actor.role,
        state.service.now(),
    )?;
    let id = own_id(&actor)?;
    let input = document::parse_resource(
        &body,
        Expect::Update {
            type_name: "users",
            id: &id,
        },
    )?;
    let changes_password = input.attributes.iter().any(|(n, _)| n == "password");
    let row = state.accounts.update_me(&actor, input).await?;
    if changes_password && actor.method == Some(AuthMethod::Session) {
        session.renew();
    }
    let self_href = render::self_link(req.path(), req.query_string());
    let doc = render::one_document(
        &state.service,
        &actor,
        &params,
        &users::SCHEMA,
        row,
        None,
        self_href,
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
    let actor = state.authenticate(&req).await?;
    let attrs = fixed_body(
        &req,
        body,
        &state,
        "passwords",
        &["current_password", "password"],
        &[],
    )
    .await?;
    state
        .accounts
        .change_password(
            &actor,
            attrs["current_password"].as_str().unwrap_or_default(),
            attrs["password"].as_str().unwrap_or_default(),
        )
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
    let attrs = fixed_body(
        &req,
        body,
        &state,
        "users",
        &["email", "password"],
        &["name"],
    )
    .await?;
    let email = attrs["email"].as_str().unwrap_or_default();
    let password = attrs["password"].as_str().unwrap_or_default();
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
    let attrs = fixed_body(&req, body, &state, "password_resets", &["email"], &[]).await?;
    // Handled after the answer, which must not depend on what happens (nor take longer).
    state
        .resets
        .submit(attrs["email"].as_str().unwrap_or_default());
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
    let attrs = fixed_body(
        &req,
        body,
        &state,
        "password_resets",
        &["token", "password"],
        &[],
    )
    .await?;
    state
        .accounts
        .reset_password(
            attrs["token"].as_str().unwrap_or_default(),
            attrs["password"].as_str().unwrap_or_default(),
        )
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
    let actor = state.authenticate(&req).await?;
    media::check_accept(&req)?;
    read_body(&req, body).await?;
    state.auth.logout(&actor).await?;
    if actor.method == Some(AuthMethod::Session) {
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
    let actor = state.authenticate(&req).await?;
    media::check_accept(&req)?;
    let params = query::parse(
        req.query_string(),
        &users::SCHEMA,
        Families::Single,
        actor.role,
        state.service.now(),
    )?;
    let id = actor.user_id.clone().ok_or_else(ApiError::not_found)?;
    let rows = [state.service.get(&actor, &Users, &id).await?];
    let compound = render::resolve(&state.service, &actor, &params, &users::SCHEMA, &rows).await?;
    let mut meta = Map::new();
    meta.insert(
        "auth_method".into(),
        json!(actor.method.map(|m| m.as_str())),
    );
    let data = render::resource_object(
        &users::SCHEMA,
        &rows[0],
        actor.role,
        &params,
        &compound.linkage,
        None,
    );
    let mut doc = render::single(
        data,
        Some(&compound),
        actor.role,
        &params,
        render::self_link(req.path(), req.query_string()),
    );
    doc["meta"] = Value::Object(meta);
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
    let actor = state.authenticate(&req).await?;
    media::check_accept(&req)?;
    read_body(&req, body).await?;
    let user_id = actor.user_id.clone().ok_or_else(ApiError::not_found)?;
    state
        .auth
        .end_sessions(&user_id, actor.session_id.as_deref())
        .await?;
    if actor.method == Some(AuthMethod::Session) {
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
    let actor = state.authenticate(&req).await?;
    media::check_accept(&req)?;
    read_body(&req, body).await?;
    let id = req.match_info().get("id").unwrap_or_default().to_owned();
    let user = state.service.get(&actor, &Users, &id).await?;
    if !actor.is_admin() {
        return Err(ApiError::forbidden(
            "only admins can end another user's sessions",
        ));
    }
    let _ = Users.schema();
    state
        .auth
        .end_sessions(user["id"].as_str().unwrap_or_default(), None)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
