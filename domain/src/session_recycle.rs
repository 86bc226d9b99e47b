//! Who may end whose sessions: the caller their own other sessions, an administrator every
//! session and token of any user.

use crate::{
    Actor, DomainError, auth::Authentication, resources::users::Users, service::ResourceService,
};

/// `POST /api/auth/sessions/recycle`: every other session and token of the caller ends; the
/// current session (if any) continues. A caller without a user (the system) has none: 404.
pub async fn recycle_own(auth: &Authentication, actor: &Actor) -> Result<(), DomainError> {
    let user_id = actor.user_id.as_deref().ok_or(DomainError::NotFound)?;
    auth.end_sessions(user_id, actor.session_id.as_deref())
        .await?;
    Ok(())
}

/// `POST /api/users/{id}/sessions/recycle`: every session and token of that user ends. The user
/// must be visible to the actor (404), and only an administrator may do it (403).
pub async fn recycle_user(
    service: &ResourceService,
    auth: &Authentication,
    actor: &Actor,
    user_id: &str,
) -> Result<(), DomainError> {
    service.get(actor, &Users, user_id).await?;
    if !actor.is_admin() {
        return Err(DomainError::Forbidden(
            "only admins can end another user's sessions".into(),
        ));
    }
    auth.end_sessions(user_id, None).await?;
    Ok(())
}
