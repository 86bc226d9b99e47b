//! The domain's one error type. The HTTP edge maps each variant to a JSON:API error once.

use thiserror::Error;

/// Which member of the request document a problem is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Member {
    Attribute(String),
    Relationship(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    UnknownAttribute,
    ReadOnlyAttribute,
    UnknownRelationship,
    Invalid,
    /// A destination URL whose host is or resolves to a loopback, private or link-local
    /// address while private destinations are not allowed (webhooks.md §5a).
    ForbiddenDestination,
}

/// One 422 problem; all problems of a request are reported together, in document order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub member: Member,
    pub kind: ProblemKind,
    pub detail: String,
}

impl Problem {
    pub fn invalid_attr(name: &str, detail: impl Into<String>) -> Self {
        Self {
            member: Member::Attribute(name.to_owned()),
            kind: ProblemKind::Invalid,
            detail: detail.into(),
        }
    }

    pub fn forbidden_destination(name: &str, detail: impl Into<String>) -> Self {
        Self {
            member: Member::Attribute(name.to_owned()),
            kind: ProblemKind::ForbiddenDestination,
            detail: detail.into(),
        }
    }

    pub fn invalid_rel(name: &str, detail: impl Into<String>) -> Self {
        Self {
            member: Member::Relationship(name.to_owned()),
            kind: ProblemKind::Invalid,
            detail: detail.into(),
        }
    }
}

#[derive(Debug, Error)]
pub enum DomainError {
    #[error("not found")]
    NotFound,
    #[error("validation failed")]
    Invalid(Vec<Problem>),
    /// A relationship names a resource that does not exist (or is not visible).
    #[error("related resource not found: {relationship}")]
    RelatedNotFound {
        relationship: String,
        /// Index inside a to-many linkage array.
        index: Option<usize>,
    },
    #[error("{relationship} must reference {expected}")]
    RelationshipTypeMismatch {
        relationship: String,
        expected: &'static str,
        index: Option<usize>,
    },
    #[error("relationship {0} cannot be changed")]
    ReadOnlyRelationship(String),
    #[error("{attribute} is already taken")]
    Conflict { attribute: String },
    #[error("{0}")]
    ResourceInUse(String),
    #[error("{0}")]
    CannotModifySelf(String),
    #[error("{0}")]
    LastAdmin(String),
    #[error("the API key is revoked")]
    KeyRevoked,
    #[error("{0}")]
    LimitReached(String),
    #[error("{0}")]
    Forbidden(String),
    /// The store cannot take the change now (database down, or a conflict that stayed after
    /// the retries): the client may try again after `retry_after` seconds.
    #[error("service unavailable: {reason}")]
    Unavailable { reason: String, retry_after: u64 },
    /// The store aborted the transaction to resolve a conflict (deadlock, serialization
    /// failure, lock wait): the use case runs it again a few times, then answers 503.
    #[error("store busy: {0}")]
    Busy(String),
    /// Too many password hashes are in flight; the caller may retry after `retry_after` seconds.
    #[error("password hashing is busy")]
    HashingBusy { retry_after: u64 },
    #[error("internal error: {0}")]
    Internal(String),
}

/// Seconds a client is asked to wait after a 503 from the store.
pub const STORE_RETRY_AFTER_SECONDS: u64 = 1;

/// Failures of a driven adapter (database, hasher, …).
#[derive(Debug, Error)]
pub enum StoreError {
    /// A unique index rejected the write; `column` names the attribute when known.
    #[error("unique value taken: {column}")]
    Unique { column: String },
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The transaction lost a race the database resolved by aborting it (deadlock,
    /// serialization failure, lock timeout, SQLite busy): running it again may succeed.
    #[error("store busy: {0}")]
    Busy(String),
    #[error("store error: {0}")]
    Other(String),
    /// The password hasher has no capacity left (bounded work instead of an endless queue).
    #[error("password hashing is busy")]
    HashingBusy { retry_after: u64 },
}

impl From<StoreError> for DomainError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unique { column } => DomainError::Conflict { attribute: column },
            StoreError::Unavailable(reason) => DomainError::Unavailable {
                reason,
                retry_after: STORE_RETRY_AFTER_SECONDS,
            },
            StoreError::Busy(reason) => DomainError::Busy(reason),
            StoreError::HashingBusy { retry_after } => DomainError::HashingBusy { retry_after },
            other => DomainError::Internal(other.to_string()),
        }
    }
}
