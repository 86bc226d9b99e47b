//! Visibility: what each role lists and reads, and 403 versus 404.

use serde_json::json;

use super::*;
use crate::query::{ListQuery, SortKey};

fn by_title() -> ListQuery {
    ListQuery {
        cond: Cond::True,
        sort: vec![SortKey {
            column: "title".into(),
            descending: false,
        }],
        offset: 0,
        limit: 10,
    }
}

fn titles(rows: &[Row]) -> Vec<&str> {
    rows.iter().map(|r| text(r, "title")).collect()
}

#[test]
fn a_user_lists_only_their_own_rows_and_an_admin_lists_all() {
    run(async {
        let (_world, service) = world();
        for (title, owner) in [("b1", 1), ("a2", 2), ("a1", 1), ("c3", 3)] {
            note(&service, title, owner).await;
        }
        let mine = service.list(&user(1), &Notes, by_title()).await.unwrap();
        assert_eq!(titles(&mine.items), ["a1", "b1"]);
        assert_eq!(mine.total, 2, "the total counts only visible rows");
        let all = service.list(&admin(), &Notes, by_title()).await.unwrap();
        assert_eq!(titles(&all.items), ["a1", "a2", "b1", "c3"]);
        let page = service
            .list(
                &admin(),
                &Notes,
                ListQuery {
                    offset: 3,
                    ..by_title()
                },
            )
            .await
            .unwrap();
        assert_eq!((titles(&page.items), page.total), (vec!["c3"], 4));
        let searched = service
            .list(
                &user(1),
                &Notes,
                ListQuery {
                    cond: Cond::Search(vec!["title".into()], "B".into()),
                    ..by_title()
                },
            )
            .await
            .unwrap();
        assert_eq!(titles(&searched.items), ["b1"]);
    });
}

#[test]
fn another_users_row_is_not_found_for_every_operation() {
    run(async {
        let (world, service) = world();
        let theirs = note(&service, "theirs", 2).await;
        let me = user(1);
        let err = service.get(&me, &Notes, &theirs).await.unwrap_err();
        assert!(matches!(err, DomainError::NotFound), "{err:?}");
        let err = service
            .update(
                &me,
                &Notes,
                &theirs,
                write(json!({"title": "mine"}), vec![]),
                &registry,
            )
            .await
            .unwrap_err();
        assert!(matches!(err, DomainError::NotFound), "{err:?}");
        let err = service.delete(&me, &Notes, &theirs).await.unwrap_err();
        assert!(matches!(err, DomainError::NotFound), "{err:?}");
        assert!(
            service
                .get_many(&me, &Notes, std::slice::from_ref(&theirs))
                .await
                .unwrap()
                .is_empty(),
            "includes leave it out"
        );
        assert_eq!(text(&world.store.rows("notes")[0], "title"), "theirs");
        let owner_reads = service.get(&user(2), &Notes, &theirs).await.unwrap();
        assert_eq!(text(&owner_reads, "title"), "theirs");
    });
}

#[test]
fn role_limits_answer_forbidden_or_not_found_as_the_type_says() {
    run(async {
        let (_world, service) = world();
        // `users` are admin-written: a user may read and edit only their own record.
        let err = service
            .list(&user(1), &Users, by_title())
            .await
            .map(|p| p.total)
            .unwrap_err();
        assert!(matches!(err, DomainError::Forbidden(_)), "{err:?}");
        let err = service
            .delete(&user(1), &Users, &user_id(1))
            .await
            .unwrap_err();
        assert!(matches!(err, DomainError::Forbidden(_)), "{err:?}");
        let err = service
            .get(&user(1), &Users, &user_id(2))
            .await
            .unwrap_err();
        assert!(matches!(err, DomainError::NotFound), "{err:?}");
        let me = service.get(&user(1), &Users, &user_id(1)).await.unwrap();
        assert_eq!(text(&me, "email"), "u1@example.com");
    });
}
