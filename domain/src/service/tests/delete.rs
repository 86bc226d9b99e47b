//! Delete: soft delete, a rule refusing it, malformed ids.

use serde_json::{Value, json};

use super::{fakes::START_MS, *};

#[test]
fn a_delete_stamps_deleted_at_and_the_row_is_gone_for_every_reader() {
    run(async {
        let (world, service) = world();
        let id = note(&service, "old", 1).await;
        world.clock.advance(1_000);
        service.delete(&user(1), &Notes, &id).await.unwrap();
        let stored = &world.store.rows("notes")[0];
        assert_eq!(
            stored["deleted_at"],
            json!(START_MS + 1_000),
            "kept, stamped"
        );
        for actor in [admin(), user(1)] {
            let err = service.get(&actor, &Notes, &id).await.unwrap_err();
            assert!(matches!(err, DomainError::NotFound), "{err:?}");
            let page = service
                .list(&actor, &Notes, crate::query::ListQuery::all(Cond::True, 10))
                .await
                .unwrap();
            assert_eq!(page.total, 0);
        }
        let err = service.delete(&admin(), &Notes, &id).await.unwrap_err();
        assert!(
            matches!(err, DomainError::NotFound),
            "deleting twice: {err:?}"
        );
        assert_eq!(event_types(&world), ["note.created", "note.deleted"]);
        let event = &world.store.rows("events")[1];
        assert_eq!(event["data"]["object"]["id"], json!(id));
    });
}

#[test]
fn a_rule_that_refuses_the_delete_leaves_the_row_and_emits_nothing() {
    run(async {
        let (world, service) = world();
        let id = note(&service, "keep", 1).await;
        service
            .update(
                &admin(),
                &Notes,
                &id,
                write(json!({"pinned": true}), vec![]),
                &registry,
            )
            .await
            .unwrap();
        let err = service.delete(&admin(), &Notes, &id).await.unwrap_err();
        assert!(
            matches!(&err, DomainError::ResourceInUse(detail) if detail.contains("pinned")),
            "{err:?}"
        );
        assert_eq!(world.store.rows("notes")[0]["deleted_at"], Value::Null);
        assert_eq!(event_types(&world), ["note.created", "note.updated"]);
    });
}

#[test]
fn an_id_of_another_shape_is_not_found_without_asking_the_store_to_match_it() {
    run(async {
        let (_world, service) = world();
        note(&service, "n", 1).await;
        for id in ["usr_01JD0R8D2S4F6H8K0M2P4R6T8V", "not_123", ""] {
            let err = service.delete(&admin(), &Notes, id).await.unwrap_err();
            assert!(matches!(err, DomainError::NotFound), "{id}: {err:?}");
        }
    });
}
