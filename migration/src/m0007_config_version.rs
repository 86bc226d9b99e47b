//! The proxy configuration's version: one counter row that every transaction changing proxy
//! configuration increments. The row's lock makes those transactions commit one after another
//! in version order, so a node that has loaded version `n` has seen every change up to `n`.
//! (Before this, the newest event id was the version; ids are made before commit, so a change
//! committing after a later-numbered one, or made on a node whose clock is behind, was missed.)

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(crate::builders::table(
                "counters",
                vec![crate::builders::id(), crate::builders::int("value")],
            ))
            .await?;
        manager
            .get_connection()
            .execute_unprepared("INSERT INTO counters (id, value) VALUES ('config_version', 0)")
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Alias::new("counters")).to_owned())
            .await
    }
}
