//! The HTTP edge's one error type and its single mapping to JSON:API error documents.

use actix_web::{HttpResponse, ResponseError, http::StatusCode};
use serde_json::{Value, json};
use tollgate_domain::{DomainError, Member, ProblemKind};

use super::request_id;

/// Where in the request an error points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Pointer(String),
    Parameter(String),
    Header(String),
}

#[derive(Debug, Clone)]
pub struct ErrorObject {
    pub code: &'static str,
    pub detail: String,
    pub source: Option<Source>,
    pub meta: Option<Value>,
}

/// A failed admin request: one status, one or more error objects, extra headers.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub errors: Vec<ErrorObject>,
    pub headers: Vec<(&'static str, String)>,
}

/// Status and fixed title of every admin error code (errors.md §2).
pub fn catalogue(code: &str) -> (u16, &'static str) {
    match code {
        "INVALID_JSON" => (400, "Invalid JSON"),
        "INVALID_DOCUMENT" => (400, "Invalid document"),
        "INVALID_QUERY_PARAMETER" => (400, "Invalid query parameter"),
        "INVALID_INCLUDE" => (400, "Invalid include"),
        "INVALID_FIELDS" => (400, "Invalid sparse fieldset"),
        "INVALID_SORT" => (400, "Invalid sort"),
        "INVALID_FILTER" => (400, "Invalid filter"),
        "INVALID_PAGE_PARAMETER" => (400, "Invalid page parameter"),
        "INVALID_RESET_TOKEN" => (400, "Invalid reset token"),
        "UNAUTHORIZED" => (401, "Unauthorized"),
        "INVALID_CREDENTIALS" => (401, "Invalid credentials"),
        "INVALID_CURRENT_PASSWORD" => (401, "Invalid current password"),
        "FORBIDDEN" => (403, "Forbidden"),
        "CSRF_REJECTED" => (403, "Cross-site request rejected"),
        "CLIENT_ID_NOT_ALLOWED" => (403, "Client-generated id not allowed"),
        "READ_ONLY_RELATIONSHIP" => (403, "Read-only relationship"),
        "ACCOUNT_INACTIVE" => (403, "Account inactive"),
        "NOT_FOUND" => (404, "Not found"),
        "RELATED_NOT_FOUND" => (404, "Related resource not found"),
        "METHOD_NOT_ALLOWED" => (405, "Method not allowed"),
        "NOT_ACCEPTABLE" => (406, "Not acceptable"),
        "CONFLICT" => (409, "Conflict"),
        "TYPE_MISMATCH" => (409, "Type mismatch"),
        "ID_MISMATCH" => (409, "Id mismatch"),
        "RESOURCE_IN_USE" => (409, "Resource in use"),
        "CANNOT_MODIFY_SELF" => (409, "Cannot modify self"),
        "LAST_ADMIN" => (409, "Last admin"),
        "KEY_REVOKED" => (409, "Key revoked"),
        "LIMIT_REACHED" => (409, "Limit reached"),
        "EMAIL_TAKEN" => (409, "Email taken"),
        "PAYLOAD_TOO_LARGE" => (413, "Payload too large"),
        "UNSUPPORTED_MEDIA_TYPE" => (415, "Unsupported media type"),
        "UNSUPPORTED_EXTENSION" => (415, "Unsupported extension"),
        "UNKNOWN_ATTRIBUTE" => (422, "Unknown attribute"),
        "READ_ONLY_ATTRIBUTE" => (422, "Read-only attribute"),
        "UNKNOWN_RELATIONSHIP" => (422, "Unknown relationship"),
        "VALIDATION_ERROR" => (422, "Validation failed"),
        "WEBHOOK_URL_FORBIDDEN" => (422, "Webhook URL forbidden"),
        "TOO_MANY_LOGIN_ATTEMPTS" => (429, "Too many login attempts"),
        "SERVICE_UNAVAILABLE" => (503, "Service unavailable"),
        _ => (500, "Internal error"),
    }
}

impl ApiError {
    pub fn new(code: &'static str, detail: impl Into<String>) -> Self {
        let (status, _) = catalogue(code);
        Self {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            errors: vec![ErrorObject {
                code,
                detail: detail.into(),
                source: None,
                meta: None,
            }],
            headers: Vec::new(),
        }
    }

    pub fn with_source(mut self, source: Source) -> Self {
        if let Some(first) = self.errors.first_mut() {
            first.source = Some(source);
        }
        self
    }

    pub fn pointer(
        code: &'static str,
        pointer: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self::new(code, detail).with_source(Source::Pointer(pointer.into()))
    }

    pub fn parameter(
        code: &'static str,
        parameter: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self::new(code, detail).with_source(Source::Parameter(parameter.into()))
    }

    pub fn header_source(code: &'static str, header: &str, detail: impl Into<String>) -> Self {
        Self::new(code, detail).with_source(Source::Header(header.to_owned()))
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new("UNAUTHORIZED", detail)
            .with_header("WWW-Authenticate", "Bearer realm=\"tollgate\"")
    }

    pub fn not_found() -> Self {
        Self::new("NOT_FOUND", "no such resource")
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new("INTERNAL_ERROR", "internal error")
    }

    pub fn code(&self) -> &'static str {
        self.errors
            .first()
            .map(|e| e.code)
            .unwrap_or("INTERNAL_ERROR")
    }

    /// The JSON:API error document.
    pub fn document(&self) -> Value {
        let id = request_id::current();
        let errors: Vec<Value> = self
            .errors
            .iter()
            .map(|e| {
                let mut obj = json!({
                    "id": id,
                    "status": self.status.as_u16().to_string(),
                    "code": e.code,
                    "title": catalogue(e.code).1,
                    "detail": e.detail,
                });
                match &e.source {
                    Some(Source::Pointer(p)) => obj["source"] = json!({"pointer": p}),
                    Some(Source::Parameter(p)) => obj["source"] = json!({"parameter": p}),
                    Some(Source::Header(h)) => obj["source"] = json!({"header": h}),
                    None => {}
                }
                if let Some(meta) = &e.meta {
                    obj["meta"] = meta.clone();
                }
                obj
            })
            .collect();
        json!({"jsonapi": {"version": "1.1"}, "errors": errors})
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.code())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        response.insert_header(("Content-Type", super::jsonapi::MEDIA_TYPE));
        for (name, value) in &self.headers {
            response.insert_header((*name, value.as_str()));
        }
        response.body(self.document().to_string())
    }
}

fn relationship_pointer(relationship: &str, index: Option<usize>) -> String {
    match index {
        Some(i) => format!("/data/relationships/{relationship}/data/{i}"),
        None => format!("/data/relationships/{relationship}/data"),
    }
}

impl From<DomainError> for ApiError {
    fn from(err: DomainError) -> Self {
        match err {
            DomainError::NotFound => ApiError::not_found(),
            DomainError::Invalid(problems) => {
                let errors = problems
                    .into_iter()
                    .map(|p| {
                        let pointer = match &p.member {
                            Member::Attribute(name) => format!("/data/attributes/{name}"),
                            Member::Relationship(name) => format!("/data/relationships/{name}"),
                        };
                        let code = match p.kind {
                            ProblemKind::UnknownAttribute => "UNKNOWN_ATTRIBUTE",
                            ProblemKind::ReadOnlyAttribute => "READ_ONLY_ATTRIBUTE",
                            ProblemKind::UnknownRelationship => "UNKNOWN_RELATIONSHIP",
                            ProblemKind::Invalid
                                if p.detail
                                    == tollgate_domain::resources::webhooks::FORBIDDEN_DETAIL =>
                            {
                                "WEBHOOK_URL_FORBIDDEN"
                            }
                            ProblemKind::Invalid => "VALIDATION_ERROR",
                        };
                        ErrorObject {
                            code,
                            detail: p.detail,
                            source: Some(Source::Pointer(pointer)),
                            meta: None,
                        }
                    })
                    .collect();
                // A forbidden webhook URL is its own code but still a 422 like its siblings.
                ApiError {
                    status: StatusCode::UNPROCESSABLE_ENTITY,
                    errors,
                    headers: Vec::new(),
                }
            }
            DomainError::RelatedNotFound {
                relationship,
                index,
            } => ApiError::pointer(
                "RELATED_NOT_FOUND",
                relationship_pointer(&relationship, index),
                format!("the resource named in {relationship} does not exist"),
            ),
            DomainError::RelationshipTypeMismatch {
                relationship,
                expected,
                index,
            } => ApiError::pointer(
                "TYPE_MISMATCH",
                format!("{}/type", relationship_pointer(&relationship, index)),
                format!("{relationship} must reference {expected}"),
            ),
            DomainError::ReadOnlyRelationship(name) => ApiError::pointer(
                "READ_ONLY_RELATIONSHIP",
                format!("/data/relationships/{name}"),
                format!("{name} cannot be changed"),
            ),
            DomainError::Conflict { attribute } => ApiError::pointer(
                "CONFLICT",
                format!("/data/attributes/{attribute}"),
                format!("{attribute} is already taken"),
            ),
            DomainError::ResourceInUse(detail) => ApiError::new("RESOURCE_IN_USE", detail),
            DomainError::CannotModifySelf(detail) => ApiError::new("CANNOT_MODIFY_SELF", detail),
            DomainError::LastAdmin(detail) => ApiError::new("LAST_ADMIN", detail),
            DomainError::KeyRevoked => ApiError::new("KEY_REVOKED", "the API key is revoked"),
            DomainError::LimitReached(detail) => ApiError::new("LIMIT_REACHED", detail),
            DomainError::Forbidden(detail) => ApiError::new("FORBIDDEN", detail),
            DomainError::Unavailable {
                reason,
                retry_after,
            } => {
                tracing::warn!(%reason, "store unavailable: answered 503");
                ApiError::new(
                    "SERVICE_UNAVAILABLE",
                    "the database cannot take the request now; try again",
                )
                .with_header("Retry-After", retry_after.to_string())
            }
            DomainError::Busy(reason) => {
                tracing::warn!(%reason, "store conflict after retries: answered 503");
                ApiError::new(
                    "SERVICE_UNAVAILABLE",
                    "the change collided with concurrent changes; try again",
                )
                .with_header(
                    "Retry-After",
                    tollgate_domain::error::STORE_RETRY_AFTER_SECONDS.to_string(),
                )
            }
            DomainError::HashingBusy { retry_after } => {
                let mut error = ApiError::new(
                    "SERVICE_UNAVAILABLE",
                    "too many password checks are in progress; try again shortly",
                )
                .with_header("Retry-After", retry_after.to_string());
                error.errors[0].meta = Some(json!({"retry_after": retry_after}));
                error
            }
            DomainError::Internal(cause) => ApiError::internal(cause),
        }
    }
}

impl ApiError {
    /// On a relationship endpoint the document's `data` is the linkage itself, so pointers
    /// into `/data/relationships/<name>/data…` become `/data…`.
    pub fn repoint_relationship(mut self) -> Self {
        for error in &mut self.errors {
            if let Some(Source::Pointer(pointer)) = &error.source
                && let Some(rest) = pointer.strip_prefix("/data/relationships/")
            {
                let after_name = rest.find('/').map(|i| &rest[i..]).unwrap_or("");
                let tail = after_name.strip_prefix("/data").unwrap_or(after_name);
                error.source = Some(Source::Pointer(format!("/data{tail}")));
            }
        }
        self
    }
}

impl From<tollgate_domain::account::AccountError> for ApiError {
    fn from(err: tollgate_domain::account::AccountError) -> Self {
        use tollgate_domain::account::AccountError;
        match err {
            AccountError::WrongCurrentPassword => ApiError::pointer(
                "INVALID_CURRENT_PASSWORD",
                "/data/attributes/current_password",
                "the current password is wrong",
            ),
            AccountError::InvalidResetToken => ApiError::pointer(
                "INVALID_RESET_TOKEN",
                "/data/attributes/token",
                "the reset token is unknown, used or expired",
            ),
            AccountError::RegistrationClosed => ApiError::new("NOT_FOUND", "no such path"),
            AccountError::EmailTaken => ApiError::pointer(
                "EMAIL_TAKEN",
                "/data/attributes/email",
                "the email is already registered",
            ),
            AccountError::Domain(err) => err.into(),
        }
    }
}
