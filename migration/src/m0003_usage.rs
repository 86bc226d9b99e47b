//! Metered proxy requests. No foreign keys: a record outlives its key, user or route.

use sea_orm_migration::prelude::*;

use crate::builders::{boolean, id, index, int, int_null, table, text, text_null};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(table(
                "usage_records",
                vec![
                    id(),
                    text("request_id"),
                    int("created_at"),
                    int("updated_at"),
                    text("method"),
                    text("host"),
                    text("path"),
                    int("status_code"),
                    text_null("error_code"),
                    int("duration_ms"),
                    int_null("upstream_duration_ms"),
                    int("request_bytes"),
                    int("response_bytes"),
                    text("client_ip"),
                    text("user_agent"),
                    boolean("counted"),
                    boolean("overage"),
                    text_null("route_id"),
                    text_null("api_key_id"),
                    text_null("user_id"),
                    text_null("group_id"),
                ],
            ))
            .await?;
        for columns in [
            &["created_at"][..],
            &["user_id", "created_at"],
            &["group_id", "created_at"],
            &["api_key_id", "created_at"],
            &["route_id", "created_at"],
        ] {
            manager
                .create_index(index("usage_records", columns))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Alias::new("usage_records")).to_owned())
            .await
    }
}
