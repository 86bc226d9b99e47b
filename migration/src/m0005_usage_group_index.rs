//! Most proxied requests come from keys without a group, and every index entry is paid on the
//! proxy's hot write: the group index of `usage_records` covers only rows that have a group.
//! Queries by `group_id = ?` imply `group_id IS NOT NULL`, so both engines still use it.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const FULL: &str = "ix_usage_records__group_id_created_at";
const PARTIAL: &str = "ix_usage_records__group_id_created_at_grouped";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(&format!("DROP INDEX IF EXISTS \"{FULL}\""))
            .await?;
        db.execute_unprepared(&format!(
            "CREATE INDEX IF NOT EXISTS \"{PARTIAL}\" ON \"usage_records\" (\"group_id\", \"created_at\") WHERE \"group_id\" IS NOT NULL"
        ))
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(&format!("DROP INDEX IF EXISTS \"{PARTIAL}\""))
            .await?;
        db.execute_unprepared(&format!(
            "CREATE INDEX IF NOT EXISTS \"{FULL}\" ON \"usage_records\" (\"group_id\", \"created_at\")"
        ))
        .await?;
        Ok(())
    }
}
