//! Webhook delivery: the per-(event, webhook) job queue the dispatcher claims from, and the
//! delivery log (one row per attempt). `events.updated_at` lets the audit log sort and render
//! like every other type.

use sea_orm_migration::prelude::*;

use crate::builders::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(table(
                "webhook_deliveries",
                vec![
                    id(),
                    text("webhook_id"),
                    text("event_id"),
                    text("event_type"),
                    int("attempt"),
                    text("url"),
                    int_null("status_code"),
                    text_null("response_body"),
                    text_null("error"),
                    int_null("duration_ms"),
                    boolean("succeeded"),
                    boolean("redelivery"),
                    int_null("next_attempt_at"),
                    int("created_at"),
                    int("updated_at"),
                ],
            ))
            .await?;
        // A job is due at `due_at`; a dispatcher owns it until `claimed_until` (a lease that
        // a crashed dispatcher's jobs fall out of).
        manager
            .create_table(table(
                "webhook_jobs",
                vec![
                    id(),
                    text("event_id"),
                    text("webhook_id"),
                    int("attempt"),
                    int("due_at"),
                    int_null("claimed_until"),
                    boolean("redelivery"),
                    boolean("single_attempt"),
                    text_null("delivery_id"),
                    int("created_at"),
                ],
            ))
            .await?;
        for (table_name, columns) in [
            ("webhook_deliveries", &["webhook_id", "created_at"][..]),
            ("webhook_deliveries", &["event_id"][..]),
            ("webhook_deliveries", &["created_at"][..]),
            ("webhook_jobs", &["due_at"][..]),
            ("webhook_jobs", &["webhook_id"][..]),
            ("events", &["type"][..]),
        ] {
            manager.create_index(index(table_name, columns)).await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("events"))
                    .add_column(int_null("updated_at"))
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        db.execute_unprepared("UPDATE events SET updated_at = created_at")
            .await?;
        // Events older than the dispatcher were never meant for delivery: webhooks
        // subscribed today must not receive the whole history.
        db.execute_unprepared(
            "UPDATE events SET dispatched_at = created_at WHERE dispatched_at IS NULL",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for name in ["webhook_jobs", "webhook_deliveries"] {
            manager
                .drop_table(Table::drop().table(Alias::new(name)).if_exists().to_owned())
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("events"))
                    .drop_column(Alias::new("updated_at"))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}
