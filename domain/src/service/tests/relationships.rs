//! To-many relationships: join rows, linkage as each reader sees it, membership events.

use serde_json::json;

use super::*;
use crate::{query::ListQuery, service::Link};

fn member(n: u64, role: Option<&str>) -> Identifier {
    Identifier {
        meta: role.map(|r| json!({"role": r})),
        ..to("users", &user_id(n))
    }
}

fn members(list: Vec<Identifier>) -> (&'static str, RelInput) {
    ("members", RelInput::Many(list))
}

fn link(n: u64, role: &str) -> Link {
    Link {
        id: user_id(n),
        role: Some(role.into()),
    }
}

#[test]
fn to_many_linkage_is_written_as_join_rows_and_read_back_sorted() {
    run(async {
        let (world, service) = world();
        let written = service
            .create(
                &admin(),
                &Notes,
                write(
                    json!({"title": "team"}),
                    vec![
                        owner(1),
                        members(vec![
                            member(3, Some("editor")),
                            member(2, None),
                            member(3, None),
                        ]),
                    ],
                ),
                &registry,
            )
            .await
            .unwrap();
        let id = text(&written.row, "id").to_owned();
        let joins = world.store.rows("note_members");
        assert_eq!(joins.len(), 2, "duplicates dropped: {joins:?}");
        assert_eq!(joins[0]["note_id"], json!(id));
        assert_eq!(joins[0]["user_id"], json!(user_id(3)));
        assert_eq!(joins[0]["role"], "editor");
        assert_eq!(joins[1]["role"], "member", "the default role");
        let rel = NOTES.relationship("members").unwrap();
        let links = service
            .to_many_links(&admin(), rel, &Users, std::slice::from_ref(&id))
            .await
            .unwrap();
        let mut expected = vec![link(2, "member"), link(3, "editor")];
        expected.sort();
        assert_eq!(links.get(&id), Some(&expected));
        // The linkage shows only targets the reader may see: a user sees their own record.
        let links = service
            .to_many_links(&user(2), rel, &Users, std::slice::from_ref(&id))
            .await
            .unwrap();
        assert_eq!(links.get(&id), Some(&vec![link(2, "member")]));
        // The related rows through the join table.
        let related = service
            .list(
                &admin(),
                &Users,
                ListQuery::all(ResourceService::related_cond(rel, &written.row), 10),
            )
            .await
            .unwrap();
        let mut ids: Vec<&str> = related.items.iter().map(|r| text(r, "id")).collect();
        ids.sort();
        assert_eq!(ids, [user_id(2), user_id(3)]);
    });
}

#[test]
fn replacing_members_rewrites_the_join_rows_and_emits_one_event_per_change() {
    run(async {
        let (world, service) = world();
        let written = service
            .create(
                &admin(),
                &Notes,
                write(
                    json!({"title": "team"}),
                    vec![owner(1), members(vec![member(1, None), member(2, None)])],
                ),
                &registry,
            )
            .await
            .unwrap();
        let id = text(&written.row, "id").to_owned();
        service
            .update(
                &admin(),
                &Notes,
                &id,
                write(
                    json!({}),
                    vec![members(vec![member(2, None), member(3, Some("editor"))])],
                ),
                &registry,
            )
            .await
            .unwrap();
        let mut now: Vec<(String, String)> = world
            .store
            .rows("note_members")
            .iter()
            .map(|j| (text(j, "user_id").to_owned(), text(j, "role").to_owned()))
            .collect();
        now.sort();
        assert_eq!(
            now,
            [
                (user_id(2), "member".to_owned()),
                (user_id(3), "editor".to_owned())
            ]
        );
        assert_eq!(
            event_types(&world),
            [
                "note.created",
                "note.updated",
                "note.member_added",
                "note.member_removed"
            ]
        );
        let events = world.store.rows("events");
        assert_eq!(events[2]["data"]["member"]["id"], json!(user_id(3)));
        assert_eq!(events[2]["data"]["member"]["meta"]["role"], "editor");
        assert_eq!(events[3]["data"]["member"]["id"], json!(user_id(1)));
        // The same set again, in another order: nothing to write.
        let commits = world.store.commits();
        service
            .update(
                &admin(),
                &Notes,
                &id,
                write(
                    json!({}),
                    vec![members(vec![
                        member(3, Some("editor")),
                        member(2, Some("member")),
                    ])],
                ),
                &registry,
            )
            .await
            .unwrap();
        assert_eq!(world.store.commits(), commits);
    });
}

#[test]
fn a_missing_member_is_reported_by_its_index_and_nothing_is_linked() {
    run(async {
        let (world, service) = world();
        let err = service
            .create(
                &admin(),
                &Notes,
                write(
                    json!({"title": "team"}),
                    vec![owner(1), members(vec![member(2, None), member(42, None)])],
                ),
                &registry,
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&err, DomainError::RelatedNotFound { relationship, index: Some(1) } if relationship == "members"),
            "{err:?}"
        );
        assert!(world.store.rows("note_members").is_empty());
        assert!(world.store.rows("notes").is_empty());
    });
}

#[test]
fn linkage_of_the_wrong_shape_or_a_non_string_role_is_invalid() {
    run(async {
        let (_world, service) = world();
        let Err(DomainError::Invalid(problems)) = service
            .create(
                &admin(),
                &Notes,
                write(
                    json!({"title": "t"}),
                    vec![
                        ("owner", RelInput::Many(vec![to("users", &user_id(1))])),
                        (
                            "members",
                            RelInput::Many(vec![Identifier {
                                meta: Some(json!({"role": 5})),
                                ..to("users", &user_id(1))
                            }]),
                        ),
                    ],
                ),
                &registry,
            )
            .await
        else {
            panic!("expected a validation failure");
        };
        let details: Vec<&str> = problems.iter().map(|p| p.detail.as_str()).collect();
        assert_eq!(
            details,
            [
                "owner takes one resource identifier or null",
                "owner is required",
                "meta.role must be a string"
            ]
        );
    });
}
