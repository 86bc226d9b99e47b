//! First-admin bootstrap (auth.md §10): used by `tollgate admin create` and the
//! `TOLLGATE_ADMIN_*` variables on start.

use serde_json::{Value, json};
use thiserror::Error;

use crate::{
    Actor, DomainError,
    query::Cond,
    resources::{api_keys::ApiKeys, plans::Plans, users::Users},
    service::{RelInput, ResourceService, WriteInput},
};

#[derive(Debug, Error)]
pub enum BootstrapError {
    #[error("a user with the email {0} already exists")]
    EmailTaken(String),
    #[error(transparent)]
    Domain(#[from] DomainError),
}

impl From<crate::error::StoreError> for BootstrapError {
    fn from(err: crate::error::StoreError) -> Self {
        Self::Domain(err.into())
    }
}

/// The admin created, and the admin key when one was asked for.
#[derive(Debug)]
pub struct CreatedAdmin {
    pub user_id: String,
    pub admin_key: Option<String>,
}

/// Whether any active admin exists.
pub async fn has_active_admin(service: &ResourceService) -> Result<bool, DomainError> {
    let mut session = service.ports().store.read().await?;
    let cond = Cond::All(vec![
        Cond::is_null("deleted_at"),
        Cond::eq("role", "admin"),
        Cond::eq("status", "active"),
    ]);
    Ok(session.count("users", &cond).await? > 0)
}

/// Creates plan `Free` (default) when there is no plan, then an active admin, then
/// optionally an admin-kind API key for it.
pub async fn create_admin(
    service: &ResourceService,
    email: &str,
    name: &str,
    password: &str,
    with_key: bool,
) -> Result<CreatedAdmin, BootstrapError> {
    let system = Actor::system();
    let registry = crate::resources::by_type;
    let plans = {
        let mut session = service.ports().store.read().await?;
        session.count("plans", &Cond::is_null("deleted_at")).await?
    };
    if plans == 0 {
        let input = WriteInput {
            attributes: vec![
                ("name".into(), json!("Free")),
                ("is_default".into(), json!(true)),
            ],
            relationships: vec![],
        };
        service.create(&system, &Plans, input, &registry).await?;
    }
    let input = WriteInput {
        attributes: vec![
            ("email".into(), json!(email)),
            ("name".into(), json!(name)),
            ("role".into(), json!("admin")),
            ("status".into(), json!("active")),
            ("password".into(), json!(password)),
        ],
        relationships: vec![],
    };
    let user = match service.create(&system, &Users, input, &registry).await {
        Ok(user) => user,
        Err(DomainError::Conflict { .. }) => {
            return Err(BootstrapError::EmailTaken(email.to_owned()));
        }
        Err(other) => return Err(other.into()),
    };
    let user_id = user.row["id"].as_str().unwrap_or_default().to_owned();
    let admin_key = if with_key {
        let input = WriteInput {
            attributes: vec![
                ("name".into(), json!("bootstrap")),
                ("kind".into(), json!("admin")),
            ],
            relationships: vec![(
                "user".into(),
                RelInput::One(Some(crate::service::Identifier {
                    type_name: "users".into(),
                    id: user_id.clone(),
                    meta: None,
                })),
            )],
        };
        let key = service.create(&system, &ApiKeys, input, &registry).await?;
        key.meta
            .get("key")
            .and_then(Value::as_str)
            .map(str::to_owned)
    } else {
        None
    };
    Ok(CreatedAdmin { user_id, admin_key })
}
