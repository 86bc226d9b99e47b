//! Group membership edits (`POST`/`DELETE /api/groups/{id}/relationships/members`): add or
//! remove the listed users, keeping everyone else and their roles, through the normal update.

use serde_json::json;

use crate::{
    Actor, DomainError,
    resources::{self, groups::Groups, users::Users},
    service::{Identifier, Link, RelInput, ResourceRules, ResourceService, WriteInput},
};

const MEMBERS: &str = "members";

/// Whether the listed users join the group or leave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edit {
    Add,
    Remove,
}

/// Applies `edit` for the `listed` users (members already present, or absent ones, are
/// ignored) and returns the group's members afterwards. The group must be visible; every
/// listed identifier must be a `users` one (409), and an added user must exist (404).
pub async fn edit_members(
    service: &ResourceService,
    actor: &Actor,
    group_id: &str,
    listed: Vec<Identifier>,
    edit: Edit,
) -> Result<Vec<Link>, DomainError> {
    service.get(actor, &Groups, group_id).await?;
    let current = members(service, actor, group_id).await?;
    check_listed(service, actor, &listed, edit).await?;
    let next = match edit {
        Edit::Add => {
            let mut next: Vec<Identifier> = current.iter().map(identifier).collect();
            next.extend(
                listed
                    .into_iter()
                    .filter(|l| !current.iter().any(|c| c.id == l.id)),
            );
            next
        }
        Edit::Remove => current
            .iter()
            .filter(|link| !listed.iter().any(|l| l.id == link.id))
            .map(identifier)
            .collect(),
    };
    let input = WriteInput {
        attributes: Vec::new(),
        relationships: vec![(MEMBERS.into(), RelInput::Many(next))],
    };
    service
        .update(actor, &Groups, group_id, input, &resources::by_type)
        .await?;
    members(service, actor, group_id).await
}

/// The members of a group as the actor sees them, with their `role`.
pub async fn members(
    service: &ResourceService,
    actor: &Actor,
    group_id: &str,
) -> Result<Vec<Link>, DomainError> {
    let rel = Groups
        .schema()
        .relationship(MEMBERS)
        .ok_or_else(|| DomainError::Internal("groups have no members relationship".into()))?;
    Ok(service
        .to_many_links(actor, rel, &Users, &[group_id.to_owned()])
        .await?
        .remove(group_id)
        .unwrap_or_default())
}

/// Every listed identifier names a user; on `Add` each one exists. Only an absent user is
/// `RelatedNotFound`: any other failure keeps its own answer.
async fn check_listed(
    service: &ResourceService,
    actor: &Actor,
    listed: &[Identifier],
    edit: Edit,
) -> Result<(), DomainError> {
    for (index, identifier) in listed.iter().enumerate() {
        if identifier.type_name != "users" {
            return Err(DomainError::RelationshipTypeMismatch {
                relationship: MEMBERS.into(),
                expected: "users",
                index: Some(index),
            });
        }
    }
    if edit == Edit::Remove {
        return Ok(());
    }
    for (index, identifier) in listed.iter().enumerate() {
        match service.get(actor, &Users, &identifier.id).await {
            Ok(_) => {}
            Err(DomainError::NotFound) => {
                return Err(DomainError::RelatedNotFound {
                    relationship: MEMBERS.into(),
                    index: Some(index),
                });
            }
            Err(other) => return Err(other),
        }
    }
    Ok(())
}

fn identifier(link: &Link) -> Identifier {
    Identifier {
        type_name: "users".into(),
        id: link.id.clone(),
        meta: link.role.as_ref().map(|r| json!({"role": r})),
    }
}
