//! A signed-in user's own account: name, password, self sign-up and password reset.

use serde_json::{Value, json};
use thiserror::Error;

use crate::{
    Actor, AuthMethod, DomainError, Member, Problem, ProblemKind, Row, Timestamp,
    error::StoreError,
    query::{CmpOp, Cond},
    resources::users::{self, Users},
    service::{ResourceService, WriteInput},
};

/// Reset tokens live this long.
pub const RESET_TTL_MS: i64 = 60 * 60 * 1000;
/// At most this many reset mails per email per hour.
pub const RESETS_PER_HOUR: u64 = 5;

#[derive(Debug, Error)]
pub enum AccountError {
    #[error("the current password is wrong")]
    WrongCurrentPassword,
    #[error("the reset token is unknown, used or expired")]
    InvalidResetToken,
    #[error("registration is disabled")]
    RegistrationClosed,
    #[error("the email is already registered")]
    EmailTaken,
    #[error(transparent)]
    Domain(#[from] DomainError),
}

impl From<StoreError> for AccountError {
    fn from(err: StoreError) -> Self {
        Self::Domain(err.into())
    }
}

fn attr_problem(name: &str, kind: ProblemKind, detail: impl Into<String>) -> Problem {
    Problem {
        member: Member::Attribute(name.to_owned()),
        kind,
        detail: detail.into(),
    }
}

fn text(row: &Row, column: &str) -> String {
    row.get(column)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

#[derive(Clone)]
pub struct Accounts {
    service: ResourceService,
}

impl Accounts {
    pub fn new(service: ResourceService) -> Self {
        Self { service }
    }

    async fn own_row(&self, actor: &Actor) -> Result<Row, AccountError> {
        let id = actor.user_id.clone().ok_or(DomainError::NotFound)?;
        let mut session = self.service.ports().store.read().await?;
        Ok(session
            .find("users", Cond::is_null("deleted_at").and(Cond::eq("id", id)))
            .await?
            .ok_or(DomainError::NotFound)?)
    }

    /// `PATCH /api/auth/me`: `name`, or `current_password` + `password` together.
    pub async fn update_me(&self, actor: &Actor, input: WriteInput) -> Result<Row, AccountError> {
        let mut problems = Vec::new();
        let mut name = None;
        let (mut current, mut new) = (None, None);
        for (attr, value) in &input.attributes {
            match attr.as_str() {
                "name" => name = Some(value.clone()),
                "current_password" => {
                    current = value.as_str().map(str::to_owned).or(Some(String::new()))
                }
                "password" => new = value.as_str().map(str::to_owned).or(Some(String::new())),
                other if users::SCHEMA.attribute(other).is_some() => problems.push(attr_problem(
                    other,
                    ProblemKind::ReadOnlyAttribute,
                    format!("{other} cannot be changed here"),
                )),
                other => problems.push(attr_problem(
                    other,
                    ProblemKind::UnknownAttribute,
                    format!("{other} is not an attribute here"),
                )),
            }
        }
        if current.is_some() != new.is_some() {
            let missing = if current.is_none() {
                "current_password"
            } else {
                "password"
            };
            problems.push(attr_problem(
                missing,
                ProblemKind::Invalid,
                "current_password and password go together",
            ));
        }
        if let Some((_, rel)) = input.relationships.first() {
            let _ = rel;
            problems.push(Problem {
                member: Member::Relationship(input.relationships[0].0.clone()),
                kind: ProblemKind::ReadOnlyAttribute,
                detail: "relationships cannot be changed here".into(),
            });
        }
        if !problems.is_empty() {
            return Err(DomainError::Invalid(problems).into());
        }
        if let (Some(current), Some(new)) = (current, new) {
            self.change_password(actor, &current, &new).await?;
        }
        let id = actor.user_id.clone().ok_or(DomainError::NotFound)?;
        if let Some(name) = name {
            let input = WriteInput {
                attributes: vec![("name".into(), name)],
                relationships: vec![],
            };
            let registry = crate::resources::by_type;
            self.service
                .update(actor, &Users, &id, input, &registry)
                .await?;
        }
        Ok(self.service.get(actor, &Users, &id).await?)
    }

    /// Checks the current password, sets the new one, and ends every other session.
    pub async fn change_password(
        &self,
        actor: &Actor,
        current: &str,
        new: &str,
    ) -> Result<(), AccountError> {
        if actor.method == Some(AuthMethod::AdminKey) {
            return Err(
                DomainError::Forbidden("an admin key cannot change a password".into()).into(),
            );
        }
        let user = self.own_row(actor).await?;
        let ports = self.service.ports();
        let hash = text(&user, "password_hash");
        if hash.is_empty() || !ports.passwords.verify(current, &hash).await? {
            return Err(AccountError::WrongCurrentPassword);
        }
        users::check_password_policy(new, &text(&user, "email")).map_err(|detail| {
            DomainError::Invalid(vec![attr_problem("password", ProblemKind::Invalid, detail)])
        })?;
        let new_hash = ports.passwords.hash(new).await?;
        let user_id = text(&user, "id");
        let mut tx = ports.store.begin().await?;
        // Only the hash is written, and only over the one just verified: the row read before
        // hashing is stale by now (an admin may have suspended the user meanwhile).
        let mut values = Row::new();
        values.insert("password_hash".into(), json!(new_hash));
        let unchanged = Cond::All(vec![
            Cond::eq("id", user_id.clone()),
            Cond::is_null("deleted_at"),
            Cond::eq("password_hash", hash),
        ]);
        if tx.set_where("users", &unchanged, &values).await? == 0 {
            return Err(AccountError::WrongCurrentPassword);
        }
        let mut others = Cond::eq("user_id", user_id);
        if let Some(sid) = &actor.session_id {
            others = others.and(Cond::cmp("id", CmpOp::Ne, sid.clone()));
        }
        tx.delete_where("sessions", &others).await?;
        tx.commit().await?;
        Ok(())
    }

    /// `POST /api/auth/register`: an active `user` on the default plan.
    pub async fn register(
        &self,
        email: &str,
        password: &str,
        name: Option<Value>,
    ) -> Result<Row, AccountError> {
        if !self.service.ports().settings.allow_registration {
            return Err(AccountError::RegistrationClosed);
        }
        let mut attributes = vec![
            ("email".to_owned(), json!(email)),
            ("password".to_owned(), json!(password)),
        ];
        if let Some(name) = name {
            attributes.push(("name".into(), name));
        }
        let input = WriteInput {
            attributes,
            relationships: vec![],
        };
        let registry = crate::resources::by_type;
        match self
            .service
            .create(&Actor::system(), &Users, input, &registry)
            .await
        {
            Ok(written) => Ok(written.row),
            Err(DomainError::Conflict { .. }) => Err(AccountError::EmailTaken),
            Err(other) => Err(other.into()),
        }
    }

    /// `POST /api/auth/forgot-password` (run after the answer): mails a token when the address
    /// belongs to a user and fewer than [`RESETS_PER_HOUR`] were requested for it in the last
    /// hour. Never tells the caller whether it did.
    pub async fn forgot_password(&self, email: &str) -> Result<(), AccountError> {
        let Some(email) = reset_address(email) else {
            return Ok(());
        };
        let ports = self.service.ports();
        let now = ports.clock.now();
        let mut tx = ports.store.begin().await?;
        let Some(user) = tx
            .find(
                "users",
                Cond::is_null("deleted_at").and(Cond::eq("email", email.clone())),
            )
            .await?
        else {
            return Ok(());
        };
        let user_id = text(&user, "id");
        // One request per user at a time (nodes share the database), so the count is exact.
        users::lock_user(&mut *tx, json!(user_id)).await?;
        // Every request of the hour counts, replaced tokens included: they are kept (expired)
        // rather than deleted, so the limit does not depend on how many are still live.
        let recent = Cond::eq("user_id", user_id.clone()).and(Cond::cmp(
            "created_at",
            CmpOp::Gt,
            now.millis() - 3_600_000,
        ));
        if tx.count("password_resets", &recent).await? >= RESETS_PER_HOUR {
            return Ok(());
        }
        // A new request invalidates the older tokens.
        let mut expire = Row::new();
        expire.insert("expires_at".into(), json!(now.millis()));
        let live = Cond::All(vec![
            Cond::eq("user_id", user_id.clone()),
            Cond::is_null("used_at"),
            Cond::cmp("expires_at", CmpOp::Gt, now.millis()),
        ]);
        tx.set_where("password_resets", &live, &expire).await?;
        let token = ports.secrets.reset_token();
        let mut row = Row::new();
        row.insert("id".into(), json!(ports.ids.new_id("rst_")));
        row.insert("user_id".into(), json!(user_id));
        row.insert("token_digest".into(), json!(ports.secrets.digest(&token)));
        row.insert("created_at".into(), json!(now.millis()));
        row.insert("expires_at".into(), json!(now.millis() + RESET_TTL_MS));
        row.insert("used_at".into(), Value::Null);
        tx.insert("password_resets", &row).await?;
        tx.commit().await?;
        ports.mailer.send_password_reset(&email, &token).await?;
        Ok(())
    }

    /// `POST /api/auth/reset-password`: single use, 60 minutes; ends every session.
    pub async fn reset_password(&self, token: &str, password: &str) -> Result<(), AccountError> {
        let ports = self.service.ports();
        let now: Timestamp = ports.clock.now();
        let digest = ports.secrets.digest(token);
        let live = Cond::All(vec![
            Cond::eq("token_digest", digest),
            Cond::is_null("used_at"),
            Cond::cmp("expires_at", CmpOp::Gt, now.millis()),
        ]);
        let mut session = ports.store.read().await?;
        let reset = session
            .find("password_resets", live.clone())
            .await?
            .ok_or(AccountError::InvalidResetToken)?;
        let user_id = text(&reset, "user_id");
        let user = session
            .find(
                "users",
                Cond::is_null("deleted_at").and(Cond::eq("id", user_id.clone())),
            )
            .await?
            .ok_or(AccountError::InvalidResetToken)?;
        drop(session);
        users::check_password_policy(password, &text(&user, "email")).map_err(|detail| {
            DomainError::Invalid(vec![attr_problem("password", ProblemKind::Invalid, detail)])
        })?;
        let hash = ports.passwords.hash(password).await?;
        let mut tx = ports.store.begin().await?;
        // Spending the token is the check: two requests with it cannot both succeed.
        let mut used = Row::new();
        used.insert("used_at".into(), json!(now.millis()));
        if tx.set_where("password_resets", &live, &used).await? == 0 {
            return Err(AccountError::InvalidResetToken);
        }
        let mut values = Row::new();
        values.insert("password_hash".into(), json!(hash));
        let alive = Cond::eq("id", user_id.clone()).and(Cond::is_null("deleted_at"));
        if tx.set_where("users", &alive, &values).await? == 0 {
            return Err(AccountError::InvalidResetToken);
        }
        tx.delete_where("sessions", &Cond::eq("user_id", user_id))
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// The normalised address of a reset request, or `None` when no account can have it.
pub fn reset_address(email: &str) -> Option<String> {
    let email = email.trim();
    (email.len() <= 4 * users::EMAIL_MAX_CHARS && email.chars().count() <= users::EMAIL_MAX_CHARS)
        .then(|| email.to_lowercase())
}
