//! Update: changed columns only, no-op updates, read-only and admin-only members, conflicts.

use serde_json::json;

use super::{fakes::START_MS, *};
use crate::{Member, ProblemKind, Timestamp};

#[test]
fn an_update_writes_the_changed_columns_and_tells_what_they_were() {
    run(async {
        let (world, service) = world();
        let id = note(&service, "Draft", 1).await;
        world.clock.advance(5_000);
        let written = service
            .update(
                &user(1),
                &Notes,
                &id,
                write(json!({"title": "Final", "stars": 3}), vec![]),
                &registry,
            )
            .await
            .unwrap();
        assert_eq!(written.row["title"], "Final");
        assert_eq!(written.row["stars"], 3);
        assert_eq!(written.row["created_at"], json!(START_MS));
        assert_eq!(written.row["updated_at"], json!(START_MS + 5_000));
        let stored = &world.store.rows("notes")[0];
        assert_eq!(stored, &written.row);
        assert_eq!(event_types(&world), ["note.created", "note.updated"]);
        let event = &world.store.rows("events")[1];
        assert_eq!(
            event["data"]["previous_attributes"],
            json!({"title": "Draft", "stars": 0}),
            "only what changed, updated_at left out"
        );
        assert_eq!(event["actor_id"], json!(user_id(1)));
    });
}

#[test]
fn an_update_that_changes_nothing_writes_nothing() {
    run(async {
        let (world, service) = world();
        let id = note(&service, "Same", 1).await;
        let commits = world.store.commits();
        world.clock.advance(5_000);
        let written = service
            .update(
                &admin(),
                &Notes,
                &id,
                write(json!({"title": "Same", "pinned": false}), vec![owner(1)]),
                &registry,
            )
            .await
            .unwrap();
        assert_eq!(written.row["updated_at"], json!(START_MS));
        assert_eq!(world.store.commits(), commits);
        assert_eq!(event_types(&world), ["note.created"]);
    });
}

#[test]
fn read_only_and_create_only_attributes_may_be_sent_unchanged_only() {
    run(async {
        let (world, service) = world();
        let written = service
            .create(
                &admin(),
                &Notes,
                write(json!({"title": "t", "origin": "import"}), vec![owner(1)]),
                &registry,
            )
            .await
            .unwrap();
        let id = text(&written.row, "id").to_owned();
        let created = Timestamp::from_millis(START_MS).to_string();
        service
            .update(
                &admin(),
                &Notes,
                &id,
                write(json!({"origin": "import", "created_at": created}), vec![]),
                &registry,
            )
            .await
            .expect("unchanged values are accepted");
        let Err(DomainError::Invalid(problems)) = service
            .update(
                &admin(),
                &Notes,
                &id,
                write(json!({"origin": "api", "stars": 2}), vec![]),
                &registry,
            )
            .await
        else {
            panic!("expected a validation failure");
        };
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].member, Member::Attribute("origin".into()));
        assert_eq!(problems[0].kind, ProblemKind::ReadOnlyAttribute);
        assert_eq!(
            world.store.rows("notes")[0]["stars"],
            0,
            "a refused update changes nothing"
        );
    });
}

#[test]
fn admin_only_members_are_forbidden_to_users_unless_unchanged() {
    run(async {
        let (world, service) = world();
        let id = note(&service, "t", 1).await;
        service
            .update(
                &user(1),
                &Notes,
                &id,
                write(json!({"pinned": false}), vec![owner(1)]),
                &registry,
            )
            .await
            .expect("sending the current values is allowed");
        let err = service
            .update(
                &user(1),
                &Notes,
                &id,
                write(json!({"pinned": true}), vec![]),
                &registry,
            )
            .await
            .unwrap_err();
        assert!(matches!(err, DomainError::Forbidden(_)), "{err:?}");
        let err = service
            .update(
                &user(1),
                &Notes,
                &id,
                write(json!({}), vec![owner(2)]),
                &registry,
            )
            .await
            .unwrap_err();
        assert!(matches!(err, DomainError::Forbidden(_)), "{err:?}");
        let stored = &world.store.rows("notes")[0];
        assert_eq!(stored["pinned"], false);
        assert_eq!(stored["owner_id"], json!(user_id(1)));
        service
            .update(
                &admin(),
                &Notes,
                &id,
                write(json!({"pinned": true}), vec![owner(2)]),
                &registry,
            )
            .await
            .expect("an admin may");
        let stored = &world.store.rows("notes")[0];
        assert_eq!(stored["pinned"], true);
        assert_eq!(stored["owner_id"], json!(user_id(2)));
    });
}

#[test]
fn a_unique_value_taken_by_another_row_is_a_conflict() {
    run(async {
        let (world, service) = world();
        let first = note(&service, "a", 1).await;
        let second = note(&service, "b", 1).await;
        for (id, code) in [(&first, "A"), (&second, "B")] {
            service
                .update(
                    &admin(),
                    &Notes,
                    id,
                    write(json!({"code": code}), vec![]),
                    &registry,
                )
                .await
                .unwrap();
        }
        let err = service
            .update(
                &admin(),
                &Notes,
                &second,
                write(json!({"code": "A"}), vec![]),
                &registry,
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&err, DomainError::Conflict { attribute } if attribute == "code"),
            "{err:?}"
        );
        assert_eq!(world.store.rows("notes")[1]["code"], "B");
        assert_eq!(
            event_types(&world).len(),
            4,
            "two creates, two updates, nothing for the conflict"
        );
    });
}
