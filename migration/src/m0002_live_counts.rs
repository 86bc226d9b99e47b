//! Exact live-row counts in O(1): `meta.total` of an unfiltered list reads `live_counts`
//! instead of counting the table. Triggers keep the counts right for every write, including
//! bulk SQL outside Tollgate. Also the index that makes status-filtered user lists cheap.

use sea_orm_migration::{prelude::*, sea_orm::DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Tables with soft delete whose live rows are counted.
pub const COUNTED: [&str; 7] = [
    "users",
    "plans",
    "api_keys",
    "routes",
    "upstreams",
    "groups",
    "webhooks",
];

const PG_FUNCTION: &str = r#"
CREATE OR REPLACE FUNCTION tollgate_live_count() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NEW.deleted_at IS NULL THEN
      UPDATE live_counts SET live = live + 1 WHERE id = TG_TABLE_NAME;
    END IF;
    RETURN NEW;
  ELSIF TG_OP = 'DELETE' THEN
    IF OLD.deleted_at IS NULL THEN
      UPDATE live_counts SET live = live - 1 WHERE id = TG_TABLE_NAME;
    END IF;
    RETURN OLD;
  ELSE
    IF (OLD.deleted_at IS NULL) <> (NEW.deleted_at IS NULL) THEN
      UPDATE live_counts SET live = live + (CASE WHEN NEW.deleted_at IS NULL THEN 1 ELSE -1 END)
        WHERE id = TG_TABLE_NAME;
    END IF;
    RETURN NEW;
  END IF;
END
$$ LANGUAGE plpgsql"#;

fn sqlite_triggers(table: &str) -> Vec<String> {
    vec![
        format!(
            "CREATE TRIGGER IF NOT EXISTS trg_{table}_live_insert AFTER INSERT ON \"{table}\" WHEN NEW.deleted_at IS NULL \
             BEGIN UPDATE live_counts SET live = live + 1 WHERE id = '{table}'; END"
        ),
        format!(
            "CREATE TRIGGER IF NOT EXISTS trg_{table}_live_update AFTER UPDATE OF deleted_at ON \"{table}\" \
             WHEN (OLD.deleted_at IS NULL) <> (NEW.deleted_at IS NULL) \
             BEGIN UPDATE live_counts SET live = live + (CASE WHEN NEW.deleted_at IS NULL THEN 1 ELSE -1 END) WHERE id = '{table}'; END"
        ),
        format!(
            "CREATE TRIGGER IF NOT EXISTS trg_{table}_live_delete AFTER DELETE ON \"{table}\" WHEN OLD.deleted_at IS NULL \
             BEGIN UPDATE live_counts SET live = live - 1 WHERE id = '{table}'; END"
        ),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(crate::builders::table(
                "live_counts",
                vec![crate::builders::id(), crate::builders::int("live")],
            ))
            .await?;
        let db = manager.get_connection();
        let backend = manager.get_database_backend();
        if backend == DbBackend::Postgres {
            db.execute_unprepared(PG_FUNCTION).await?;
        }
        for table in COUNTED {
            db.execute_unprepared(&format!(
                "INSERT INTO live_counts (id, live) SELECT '{table}', COUNT(*) FROM \"{table}\" WHERE deleted_at IS NULL"
            ))
            .await?;
            let statements = match backend {
                DbBackend::Postgres => vec![format!(
                    "CREATE TRIGGER trg_{table}_live AFTER INSERT OR UPDATE OF deleted_at OR DELETE ON \"{table}\" \
                     FOR EACH ROW EXECUTE FUNCTION tollgate_live_count()"
                )],
                _ => sqlite_triggers(table),
            };
            for statement in statements {
                db.execute_unprepared(&statement).await?;
            }
        }
        db.execute_unprepared(
            "CREATE INDEX IF NOT EXISTS ix_users__live_status_created ON users (status, created_at, id) WHERE deleted_at IS NULL",
        )
        .await?;
        db.execute_unprepared(
            "CREATE INDEX IF NOT EXISTS ix_users__live_created ON users (created_at, id) WHERE deleted_at IS NULL",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let backend = manager.get_database_backend();
        for table in COUNTED {
            match backend {
                DbBackend::Postgres => {
                    db.execute_unprepared(&format!(
                        "DROP TRIGGER IF EXISTS trg_{table}_live ON \"{table}\""
                    ))
                    .await?;
                }
                _ => {
                    for suffix in ["insert", "update", "delete"] {
                        db.execute_unprepared(&format!(
                            "DROP TRIGGER IF EXISTS trg_{table}_live_{suffix}"
                        ))
                        .await?;
                    }
                }
            }
        }
        if backend == DbBackend::Postgres {
            db.execute_unprepared("DROP FUNCTION IF EXISTS tollgate_live_count()")
                .await?;
        }
        db.execute_unprepared("DROP INDEX IF EXISTS ix_users__live_status_created")
            .await?;
        db.execute_unprepared("DROP INDEX IF EXISTS ix_users__live_created")
            .await?;
        manager
            .drop_table(
                Table::drop()
                    .table(Alias::new("live_counts"))
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
