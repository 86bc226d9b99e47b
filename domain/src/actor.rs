//! Who is acting: every use case takes an [`Actor`], so ownership rules live in the domain.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    User,
}

impl Role {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "admin" => Some(Self::Admin),
            "user" => Some(Self::User),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    Session,
    Jwt,
    AdminKey,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Session => "session",
            Self::Jwt => "jwt",
            Self::AdminKey => "admin_key",
        }
    }
}

/// An authenticated principal, or the system itself (bootstrap, background jobs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub user_id: Option<String>,
    pub role: Role,
    pub method: Option<AuthMethod>,
    /// The admin key used, when `method` is `AdminKey`.
    pub api_key_id: Option<String>,
    /// The login session behind a cookie or bearer token.
    pub session_id: Option<String>,
    pub request_id: Option<String>,
}

impl Actor {
    pub fn system() -> Self {
        Self {
            user_id: None,
            role: Role::Admin,
            method: None,
            api_key_id: None,
            session_id: None,
            request_id: None,
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}
