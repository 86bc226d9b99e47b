//! Create: defaults, validation problems, related rows, unique conflicts, retries.

use serde_json::{Value, json};

use super::{fakes::START_MS, *};
use crate::{Member, Problem, ProblemKind, service::WRITE_ATTEMPTS};

#[test]
fn create_fills_defaults_and_timestamps_and_commits_its_event() {
    run(async {
        let (world, service) = world();
        let written = service
            .create(
                &admin(),
                &Notes,
                write(json!({"title": "  Groceries "}), vec![owner(1)]),
                &registry,
            )
            .await
            .unwrap();
        let row = &written.row;
        assert!(crate::ids::is_valid_id("not_", text(row, "id")));
        assert_eq!(row["title"], json!("Groceries"), "strings are trimmed");
        assert_eq!(row["stars"], json!(0));
        assert_eq!(row["pinned"], json!(false));
        assert_eq!(row["code"], Value::Null);
        assert_eq!(row["owner_id"], json!(user_id(1)));
        assert_eq!(row["created_at"], json!(START_MS));
        assert_eq!(row["updated_at"], json!(START_MS));
        assert_eq!(row["deleted_at"], Value::Null);
        assert_eq!(world.store.rows("notes"), vec![row.clone()]);
        let events = world.store.rows("events");
        assert_eq!(event_types(&world), ["note.created"]);
        assert_eq!(events[0]["resource_id"], row["id"]);
        assert_eq!(
            events[0]["data"]["object"]["attributes"]["title"],
            "Groceries"
        );
        assert_eq!(events[0]["actor_id"], json!(user_id(0)));
        assert_eq!(
            world.store.config_version(),
            0,
            "notes are not proxy configuration"
        );
    });
}

#[test]
fn every_problem_of_a_create_is_reported_in_document_order_and_nothing_is_written() {
    run(async {
        let (world, service) = world();
        let input = write(
            json!({
                "stars": 9,
                "colour": "red",
                "created_at": "2025-01-01T00:00:00Z",
                "code": 7,
            }),
            vec![("tags", RelInput::Many(vec![]))],
        );
        let Err(DomainError::Invalid(problems)) =
            service.create(&admin(), &Notes, input, &registry).await
        else {
            panic!("expected a validation failure");
        };
        let members: Vec<(&Member, ProblemKind)> =
            problems.iter().map(|p| (&p.member, p.kind)).collect();
        assert_eq!(
            members,
            vec![
                (&Member::Attribute("stars".into()), ProblemKind::Invalid),
                (
                    &Member::Attribute("colour".into()),
                    ProblemKind::UnknownAttribute
                ),
                (
                    &Member::Attribute("created_at".into()),
                    ProblemKind::ReadOnlyAttribute
                ),
                (&Member::Attribute("code".into()), ProblemKind::Invalid),
                (
                    &Member::Relationship("tags".into()),
                    ProblemKind::UnknownRelationship
                ),
                (&Member::Attribute("title".into()), ProblemKind::Invalid),
                (&Member::Relationship("owner".into()), ProblemKind::Invalid),
            ]
        );
        assert_eq!(problems[0].detail, "stars must be between 0 and 5");
        assert_eq!(
            problems[5],
            Problem::invalid_attr("title", "title is required")
        );
        assert!(world.store.rows("notes").is_empty());
        assert!(world.store.rows("events").is_empty());
        assert_eq!(world.store.commits(), 0);
    });
}

#[test]
fn a_related_resource_must_exist_and_be_visible() {
    run(async {
        let (world, service) = world();
        let ghost = user_id(99);
        let err = service
            .create(
                &admin(),
                &Notes,
                write(
                    json!({"title": "x"}),
                    vec![("owner", RelInput::One(Some(to("users", &ghost))))],
                ),
                &registry,
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&err, DomainError::RelatedNotFound { relationship, index: None } if relationship == "owner"),
            "{err:?}"
        );
        // A user sees only their own `users` row: another user is "not found" to them.
        let err = service
            .create(
                &user(1),
                &Notes,
                write(json!({"title": "x"}), vec![owner(2)]),
                &registry,
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, DomainError::RelatedNotFound { .. }),
            "{err:?}"
        );
        assert!(world.store.rows("notes").is_empty());
    });
}

#[test]
fn linkage_of_the_wrong_type_is_refused_before_anything_else() {
    run(async {
        let (_world, service) = world();
        let err = service
            .create(
                &admin(),
                &Notes,
                write(
                    json!({"stars": 99}),
                    vec![(
                        "members",
                        RelInput::Many(vec![to("users", &user_id(1)), to("plans", "pln_x")]),
                    )],
                ),
                &registry,
            )
            .await
            .unwrap_err();
        assert!(
            matches!(
                &err,
                DomainError::RelationshipTypeMismatch { relationship, expected: "users", index: Some(1) }
                    if relationship == "members"
            ),
            "{err:?}"
        );
    });
}

#[test]
fn a_taken_unique_value_is_a_conflict_and_rolls_the_create_back() {
    run(async {
        let (world, service) = world();
        let first = write(json!({"title": "a", "code": "K1"}), vec![owner(1)]);
        service
            .create(&admin(), &Notes, first.clone(), &registry)
            .await
            .unwrap();
        let err = service
            .create(&admin(), &Notes, first, &registry)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, DomainError::Conflict { attribute } if attribute == "code"),
            "{err:?}"
        );
        assert_eq!(world.store.rows("notes").len(), 1);
        assert_eq!(event_types(&world), ["note.created"]);
    });
}

#[test]
fn a_busy_store_is_retried_a_bounded_number_of_times() {
    run(async {
        let (world, service) = world();
        world.store.fail_commits(WRITE_ATTEMPTS - 1);
        service
            .create(
                &admin(),
                &Notes,
                write(json!({"title": "a"}), vec![owner(1)]),
                &registry,
            )
            .await
            .unwrap();
        assert_eq!(
            world.store.rows("notes").len(),
            1,
            "one row, not one per try"
        );
        world.store.fail_commits(WRITE_ATTEMPTS);
        let err = service
            .create(
                &admin(),
                &Notes,
                write(json!({"title": "b"}), vec![owner(1)]),
                &registry,
            )
            .await
            .unwrap_err();
        assert!(matches!(err, DomainError::Busy(_)), "{err:?}");
        assert_eq!(world.store.rows("notes").len(), 1);
    });
}
