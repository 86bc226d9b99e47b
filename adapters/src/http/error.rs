//! The HTTP edge's one error type and its single mapping to JSON:API error documents.

use actix_web::{HttpResponse, ResponseError, http::StatusCode};
use serde_json::{Value, json};
use tollgate_domain::{
    DomainError, Member, Problem, ProblemKind,
    auth::{AuthError, LoginError},
    error::StoreError,
    proxy::usage_report::ReportError,
};

use super::{jsonapi::document::Document, request_id};

/// Where in the request an error points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Pointer(String),
    Parameter(String),
    Header(String),
}

#[derive(Debug, Clone)]
pub struct ErrorObject {
    pub code: ErrorCode,
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

/// Declares [`ErrorCode`] from one table: variant = (wire code, status, fixed title).
macro_rules! error_codes {
    ($($variant:ident = ($code:literal, $status:literal, $title:literal),)*) => {
        /// Every admin error code of errors.md §2, with its status and fixed title.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($variant,)*
        }

        impl ErrorCode {
            /// Every code, in catalogue order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The stable UPPER_SNAKE value clients branch on.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                }
            }

            pub fn status(self) -> StatusCode {
                match self {
                    $(ErrorCode::$variant => StatusCode::from_u16($status)
                        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),)*
                }
            }

            /// The fixed English title of the code.
            pub fn title(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $title,)*
                }
            }
        }
    };
}

error_codes! {
    InvalidJson = ("INVALID_JSON", 400, "Invalid JSON"),
    InvalidDocument = ("INVALID_DOCUMENT", 400, "Invalid document"),
    InvalidQueryParameter = ("INVALID_QUERY_PARAMETER", 400, "Invalid query parameter"),
    InvalidInclude = ("INVALID_INCLUDE", 400, "Invalid include"),
    InvalidFields = ("INVALID_FIELDS", 400, "Invalid sparse fieldset"),
    InvalidSort = ("INVALID_SORT", 400, "Invalid sort"),
    InvalidFilter = ("INVALID_FILTER", 400, "Invalid filter"),
    InvalidPageParameter = ("INVALID_PAGE_PARAMETER", 400, "Invalid page parameter"),
    InvalidResetToken = ("INVALID_RESET_TOKEN", 400, "Invalid reset token"),
    Unauthorized = ("UNAUTHORIZED", 401, "Unauthorized"),
    InvalidCredentials = ("INVALID_CREDENTIALS", 401, "Invalid credentials"),
    InvalidCurrentPassword = ("INVALID_CURRENT_PASSWORD", 401, "Invalid current password"),
    Forbidden = ("FORBIDDEN", 403, "Forbidden"),
    CsrfRejected = ("CSRF_REJECTED", 403, "Cross-site request rejected"),
    ClientIdNotAllowed = ("CLIENT_ID_NOT_ALLOWED", 403, "Client-generated id not allowed"),
    ReadOnlyRelationship = ("READ_ONLY_RELATIONSHIP", 403, "Read-only relationship"),
    AccountInactive = ("ACCOUNT_INACTIVE", 403, "Account inactive"),
    NotFound = ("NOT_FOUND", 404, "Not found"),
    RelatedNotFound = ("RELATED_NOT_FOUND", 404, "Related resource not found"),
    MethodNotAllowed = ("METHOD_NOT_ALLOWED", 405, "Method not allowed"),
    NotAcceptable = ("NOT_ACCEPTABLE", 406, "Not acceptable"),
    Conflict = ("CONFLICT", 409, "Conflict"),
    TypeMismatch = ("TYPE_MISMATCH", 409, "Type mismatch"),
    IdMismatch = ("ID_MISMATCH", 409, "Id mismatch"),
    ResourceInUse = ("RESOURCE_IN_USE", 409, "Resource in use"),
    CannotModifySelf = ("CANNOT_MODIFY_SELF", 409, "Cannot modify self"),
    LastAdmin = ("LAST_ADMIN", 409, "Last admin"),
    KeyRevoked = ("KEY_REVOKED", 409, "Key revoked"),
    LimitReached = ("LIMIT_REACHED", 409, "Limit reached"),
    EmailTaken = ("EMAIL_TAKEN", 409, "Email taken"),
    PayloadTooLarge = ("PAYLOAD_TOO_LARGE", 413, "Payload too large"),
    UnsupportedMediaType = ("UNSUPPORTED_MEDIA_TYPE", 415, "Unsupported media type"),
    UnsupportedExtension = ("UNSUPPORTED_EXTENSION", 415, "Unsupported extension"),
    UnknownAttribute = ("UNKNOWN_ATTRIBUTE", 422, "Unknown attribute"),
    ReadOnlyAttribute = ("READ_ONLY_ATTRIBUTE", 422, "Read-only attribute"),
    UnknownRelationship = ("UNKNOWN_RELATIONSHIP", 422, "Unknown relationship"),
    ValidationError = ("VALIDATION_ERROR", 422, "Validation failed"),
    WebhookUrlForbidden = ("WEBHOOK_URL_FORBIDDEN", 422, "Webhook URL forbidden"),
    TooManyLoginAttempts = ("TOO_MANY_LOGIN_ATTEMPTS", 429, "Too many login attempts"),
    InternalError = ("INTERNAL_ERROR", 500, "Internal error"),
    ServiceUnavailable = ("SERVICE_UNAVAILABLE", 503, "Service unavailable"),
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ApiError {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            status: code.status(),
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

    pub fn pointer(code: ErrorCode, pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(code, detail).with_source(Source::Pointer(pointer.into()))
    }

    pub fn parameter(
        code: ErrorCode,
        parameter: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self::new(code, detail).with_source(Source::Parameter(parameter.into()))
    }

    pub fn header_source(code: ErrorCode, header: &str, detail: impl Into<String>) -> Self {
        Self::new(code, detail).with_source(Source::Header(header.to_owned()))
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, detail)
            .with_header("WWW-Authenticate", "Bearer realm=\"tollgate\"")
    }

    pub fn not_found() -> Self {
        Self::new(ErrorCode::NotFound, "no such resource")
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(ErrorCode::InternalError, "internal error")
    }

    /// 404 for a path the admin API does not serve.
    pub fn no_such_path() -> Self {
        Self::new(ErrorCode::NotFound, "no such path")
    }

    /// 405 with the methods the path does support (`Allow`).
    pub fn method_not_allowed(allow: &'static str) -> Self {
        Self::new(
            ErrorCode::MethodNotAllowed,
            format!("this path supports {allow}"),
        )
        .with_header("Allow", allow)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, detail)
    }

    /// 400: the body is not JSON.
    pub fn invalid_json(cause: impl std::fmt::Display) -> Self {
        Self::new(
            ErrorCode::InvalidJson,
            format!("the body is not valid JSON: {cause}"),
        )
    }

    /// 400: the JSON is not the request document the endpoint takes.
    pub fn invalid_document(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::pointer(ErrorCode::InvalidDocument, pointer, detail)
    }

    /// 409: `data.type` (or a linkage type) is not the one the endpoint takes.
    pub fn type_mismatch(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::pointer(ErrorCode::TypeMismatch, pointer, detail)
    }

    /// 400 for an unknown, unsupported or repeated query parameter.
    pub fn invalid_query_parameter(
        parameter: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self::parameter(ErrorCode::InvalidQueryParameter, parameter, detail)
    }

    pub fn invalid_filter(parameter: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::parameter(ErrorCode::InvalidFilter, parameter, detail)
    }

    /// 503 with the seconds after which the client may try again.
    pub fn service_unavailable(detail: impl Into<String>, retry_after: impl ToString) -> Self {
        Self::new(ErrorCode::ServiceUnavailable, detail)
            .with_header("Retry-After", retry_after.to_string())
    }

    /// `Retry-After` as a header and as `meta.retry_after` of the first error.
    pub fn with_retry_after_meta(mut self, retry_after: u64) -> Self {
        if let Some(first) = self.errors.first_mut() {
            first.meta = Some(json!({"retry_after": retry_after}));
        }
        self.with_header("Retry-After", retry_after.to_string())
    }

    /// The code of the first error object.
    pub fn error_code(&self) -> ErrorCode {
        self.errors
            .first()
            .map(|e| e.code)
            .unwrap_or(ErrorCode::InternalError)
    }

    /// The wire value of the first error object's code.
    pub fn code(&self) -> &'static str {
        self.error_code().as_str()
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
                    "code": e.code.as_str(),
                    "title": e.code.title(),
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
        Document::new().member("errors", errors).build()
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

fn problem_code(kind: ProblemKind) -> ErrorCode {
    match kind {
        ProblemKind::UnknownAttribute => ErrorCode::UnknownAttribute,
        ProblemKind::ReadOnlyAttribute => ErrorCode::ReadOnlyAttribute,
        ProblemKind::UnknownRelationship => ErrorCode::UnknownRelationship,
        ProblemKind::Invalid => ErrorCode::ValidationError,
        ProblemKind::ForbiddenDestination => ErrorCode::WebhookUrlForbidden,
    }
}

/// One 422 error object per problem, pointing at its member (all share the status 422).
fn problem_object(problem: Problem) -> ErrorObject {
    let pointer = match &problem.member {
        Member::Attribute(name) => format!("/data/attributes/{name}"),
        Member::Relationship(name) => format!("/data/relationships/{name}"),
    };
    ErrorObject {
        code: problem_code(problem.kind),
        detail: problem.detail,
        source: Some(Source::Pointer(pointer)),
        meta: None,
    }
}

impl From<DomainError> for ApiError {
    fn from(err: DomainError) -> Self {
        match err {
            DomainError::NotFound => ApiError::not_found(),
            DomainError::Invalid(problems) => ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                errors: problems.into_iter().map(problem_object).collect(),
                headers: Vec::new(),
            },
            DomainError::RelatedNotFound {
                relationship,
                index,
            } => ApiError::pointer(
                ErrorCode::RelatedNotFound,
                relationship_pointer(&relationship, index),
                format!("the resource named in {relationship} does not exist"),
            ),
            DomainError::RelationshipTypeMismatch {
                relationship,
                expected,
                index,
            } => ApiError::pointer(
                ErrorCode::TypeMismatch,
                format!("{}/type", relationship_pointer(&relationship, index)),
                format!("{relationship} must reference {expected}"),
            ),
            DomainError::ReadOnlyRelationship(name) => ApiError::pointer(
                ErrorCode::ReadOnlyRelationship,
                format!("/data/relationships/{name}"),
                format!("{name} cannot be changed"),
            ),
            DomainError::Conflict { attribute } => ApiError::pointer(
                ErrorCode::Conflict,
                format!("/data/attributes/{attribute}"),
                format!("{attribute} is already taken"),
            ),
            DomainError::ResourceInUse(detail) => ApiError::new(ErrorCode::ResourceInUse, detail),
            DomainError::CannotModifySelf(detail) => {
                ApiError::new(ErrorCode::CannotModifySelf, detail)
            }
            DomainError::LastAdmin(detail) => ApiError::new(ErrorCode::LastAdmin, detail),
            DomainError::KeyRevoked => {
                ApiError::new(ErrorCode::KeyRevoked, "the API key is revoked")
            }
            DomainError::LimitReached(detail) => ApiError::new(ErrorCode::LimitReached, detail),
            DomainError::Forbidden(detail) => ApiError::forbidden(detail),
            DomainError::Unavailable {
                reason,
                retry_after,
            } => {
                tracing::warn!(%reason, "store unavailable: answered 503");
                ApiError::service_unavailable(
                    "the database cannot take the request now; try again",
                    retry_after,
                )
            }
            DomainError::Busy(reason) => {
                tracing::warn!(%reason, "store conflict after retries: answered 503");
                ApiError::service_unavailable(
                    "the change collided with concurrent changes; try again",
                    tollgate_domain::error::STORE_RETRY_AFTER_SECONDS,
                )
            }
            DomainError::HashingBusy { retry_after } => ApiError::new(
                ErrorCode::ServiceUnavailable,
                "too many password checks are in progress; try again shortly",
            )
            .with_retry_after_meta(retry_after),
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
                ErrorCode::InvalidCurrentPassword,
                "/data/attributes/current_password",
                "the current password is wrong",
            ),
            AccountError::InvalidResetToken => ApiError::pointer(
                ErrorCode::InvalidResetToken,
                "/data/attributes/token",
                "the reset token is unknown, used or expired",
            ),
            AccountError::RegistrationClosed => ApiError::new(ErrorCode::NotFound, "no such path"),
            AccountError::EmailTaken => ApiError::pointer(
                ErrorCode::EmailTaken,
                "/data/attributes/email",
                "the email is already registered",
            ),
            AccountError::Domain(err) => err.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        DomainError::from(err).into()
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::Missing => ApiError::unauthorized("authentication is required"),
            AuthError::Invalid(detail) => ApiError::unauthorized(detail),
            AuthError::Unavailable(cause) => {
                tracing::error!(%cause, "authentication store unavailable");
                ApiError::service_unavailable("the database is unavailable", 5)
            }
        }
    }
}

impl From<LoginError> for ApiError {
    fn from(err: LoginError) -> Self {
        match err {
            LoginError::InvalidCredentials => {
                ApiError::new(ErrorCode::InvalidCredentials, "wrong email or password")
            }
            LoginError::Inactive => {
                ApiError::new(ErrorCode::AccountInactive, "the account is not active")
            }
            LoginError::Throttled { retry_after } => ApiError::new(
                ErrorCode::TooManyLoginAttempts,
                "too many failed logins; try again later",
            )
            .with_retry_after_meta(retry_after),
            LoginError::Store(cause) => cause.into(),
        }
    }
}

impl From<ReportError> for ApiError {
    fn from(err: ReportError) -> Self {
        match err {
            ReportError::InvalidFilter { parameter, detail } => {
                ApiError::invalid_filter(parameter, detail)
            }
            ReportError::InvalidParameter { parameter, detail } => {
                ApiError::invalid_query_parameter(parameter, detail)
            }
            ReportError::Forbidden(detail) => ApiError::forbidden(detail),
            ReportError::Store(cause) => cause.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_code_is_distinct_upper_snake_with_an_error_status() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            let text = code.as_str();
            assert!(seen.insert(text), "{text} twice");
            assert!(
                text.chars().all(|c| c.is_ascii_uppercase() || c == '_'),
                "{text}"
            );
            assert!(code.status().is_client_error() || code.status().is_server_error());
            assert!(!code.title().is_empty());
        }
        assert_eq!(ErrorCode::ALL.len(), 41);
        assert_eq!(
            ErrorCode::WebhookUrlForbidden.status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(ErrorCode::ServiceUnavailable.status().as_u16(), 503);
    }

    #[test]
    fn the_problem_kind_chooses_the_422_code() {
        let err: ApiError = DomainError::Invalid(vec![
            Problem::forbidden_destination("url", "url points to a private address"),
            Problem::invalid_attr("events", "events needs at least one entry"),
        ])
        .into();
        assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY);
        let codes: Vec<ErrorCode> = err.errors.iter().map(|e| e.code).collect();
        assert_eq!(
            codes,
            [ErrorCode::WebhookUrlForbidden, ErrorCode::ValidationError]
        );
        let document = err.document();
        assert_eq!(document["errors"][0]["code"], "WEBHOOK_URL_FORBIDDEN");
        assert_eq!(document["errors"][0]["title"], "Webhook URL forbidden");
        assert_eq!(
            document["errors"][1]["source"]["pointer"],
            "/data/attributes/events"
        );
    }

    #[test]
    fn login_throttling_carries_retry_after_twice() {
        let err: ApiError = LoginError::Throttled { retry_after: 12 }.into();
        assert_eq!(err.code(), "TOO_MANY_LOGIN_ATTEMPTS");
        assert_eq!(err.status.as_u16(), 429);
        assert_eq!(err.errors[0].meta, Some(json!({"retry_after": 12})));
        assert!(err.headers.contains(&("Retry-After", "12".to_owned())));
    }
}
