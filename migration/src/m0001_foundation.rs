//! Resources, their links, the event outbox, sessions and settings.

use sea_orm_migration::prelude::*;

use crate::builders::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

fn with_lifecycle(mut columns: Vec<ColumnDef>) -> Vec<ColumnDef> {
    columns.extend(lifecycle());
    columns
}

fn link_table(
    name: &str,
    own: (&str, &str),
    other: (&str, &str),
    extra: Vec<ColumnDef>,
) -> TableCreateStatement {
    let mut columns = vec![text(own.0), text(other.0)];
    columns.extend(extra);
    columns.push(int("created_at"));
    let mut stmt = table(name, columns);
    stmt.primary_key(
        Index::create()
            .col(Alias::new(own.0))
            .col(Alias::new(other.0)),
    )
    .foreign_key(&mut fk(name, own.0, own.1))
    .foreign_key(&mut fk(name, other.0, other.1));
    stmt
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut tables = Vec::new();
        tables.push(table(
            "plans",
            with_lifecycle(vec![
                id(),
                text("name"),
                text("description"),
                int("rate_limit_per_minute"),
                int("requests_per_month"),
                int("price_monthly"),
                text("currency"),
                int("overage_price"),
                int("trial_days"),
                text_null("stripe_price_id"),
                text_null("paddle_price_id"),
                text_null("lemon_variant_id"),
                boolean("is_default"),
                boolean("enabled"),
            ]),
        ));
        let mut users = table(
            "users",
            with_lifecycle(vec![
                id(),
                text("email"),
                text("name"),
                text("status"),
                text("role"),
                text_null("password_hash"),
                int_null("last_login_at"),
                text("plan_id"),
            ]),
        );
        users.foreign_key(&mut fk("users", "plan_id", "plans"));
        tables.push(users);
        let mut groups = table(
            "groups",
            with_lifecycle(vec![
                id(),
                text("name"),
                text("slug"),
                text("description"),
                text_null("billing_email"),
                text("status"),
                text("owner_id"),
                text_null("plan_id"),
            ]),
        );
        groups
            .foreign_key(&mut fk("groups", "owner_id", "users"))
            .foreign_key(&mut fk("groups", "plan_id", "plans"));
        tables.push(groups);
        let mut api_keys = table(
            "api_keys",
            with_lifecycle(vec![
                id(),
                text("name"),
                text("kind"),
                text("prefix"),
                text("key_digest"),
                text_null("previous_key_digest"),
                int_null("previous_key_expires_at"),
                int_null("expires_at"),
                int_null("last_used_at"),
                int_null("revoked_at"),
                int_null("rotated_at"),
                text("user_id"),
                text_null("group_id"),
            ]),
        );
        api_keys
            .foreign_key(&mut fk("api_keys", "user_id", "users"))
            .foreign_key(&mut fk("api_keys", "group_id", "groups"));
        tables.push(api_keys);
        tables.push(table(
            "upstreams",
            with_lifecycle(vec![
                id(),
                text("name"),
                text("description"),
                text("base_url"),
                int("timeout_ms"),
                int("connect_timeout_ms"),
                json("headers"),
                text("auth_type"),
                text_null("auth_header"),
                text_null("auth_value_enc"),
                text_null("health_check_path"),
                text("health"),
                int_null("health_checked_at"),
                boolean("enabled"),
            ]),
        ));
        let mut routes = table(
            "routes",
            with_lifecycle(vec![
                id(),
                text("name"),
                text("description"),
                json("methods"),
                text("path_pattern"),
                text("match_type"),
                text_null("host_pattern"),
                text_null("host_match_type"),
                boolean("strip_path"),
                text_null("path_rewrite"),
                boolean("auth_required"),
                int_null("rate_limit_override"),
                int("priority"),
                boolean("enabled"),
                text("upstream_id"),
            ]),
        );
        routes.foreign_key(&mut fk("routes", "upstream_id", "upstreams"));
        tables.push(routes);
        tables.push(table(
            "webhooks",
            with_lifecycle(vec![
                id(),
                text("name"),
                text("description"),
                text("url"),
                json("events"),
                text("secret"),
                text_null("previous_secret"),
                int_null("previous_secret_expires_at"),
                boolean("enabled"),
                int("consecutive_failures"),
                int_null("last_success_at"),
                int_null("last_failure_at"),
                text_null("disabled_reason"),
            ]),
        ));
        tables.push(link_table(
            "group_members",
            ("group_id", "groups"),
            ("user_id", "users"),
            vec![text("role")],
        ));
        tables.push(link_table(
            "route_plans",
            ("route_id", "routes"),
            ("plan_id", "plans"),
            vec![],
        ));
        tables.push(link_table(
            "route_groups",
            ("route_id", "routes"),
            ("group_id", "groups"),
            vec![],
        ));
        tables.push(link_table(
            "upstream_credentials",
            ("upstream_id", "upstreams"),
            ("group_id", "groups"),
            vec![text("value_enc")],
        ));
        tables.push(table(
            "events",
            vec![
                id(),
                text("type"),
                text("resource_type"),
                text("resource_id"),
                json("data"),
                text_null("actor_id"),
                text_null("api_key_id"),
                text_null("auth_method"),
                text_null("request_id"),
                int("created_at"),
                int_null("dispatched_at"),
            ],
        ));
        tables.push(table(
            "sessions",
            vec![
                id(),
                text("key_digest"),
                text("user_id"),
                text("role"),
                json("state"),
                int("created_at"),
                int("last_seen_at"),
                int("expires_at"),
            ],
        ));
        tables.push(table(
            "password_resets",
            vec![
                id(),
                text("user_id"),
                text("token_digest"),
                int("created_at"),
                int("expires_at"),
                int_null("used_at"),
            ],
        ));
        tables.push(table("settings", vec![id(), text("value")]));
        for stmt in tables {
            manager.create_table(stmt).await?;
        }

        let indexes = [
            ("users", &["created_at"][..]),
            ("users", &["plan_id"]),
            ("users", &["status"]),
            ("users", &["email"]),
            ("plans", &["created_at"]),
            ("api_keys", &["created_at"]),
            ("api_keys", &["user_id"]),
            ("api_keys", &["group_id"]),
            ("api_keys", &["prefix"]),
            ("api_keys", &["previous_key_digest"]),
            ("routes", &["created_at"]),
            ("routes", &["upstream_id"]),
            ("upstreams", &["created_at"]),
            ("groups", &["created_at"]),
            ("groups", &["owner_id"]),
            ("groups", &["plan_id"]),
            ("webhooks", &["created_at"]),
            ("group_members", &["user_id"]),
            ("route_plans", &["plan_id"]),
            ("route_groups", &["group_id"]),
            ("upstream_credentials", &["group_id"]),
            ("events", &["created_at"]),
            ("events", &["dispatched_at"]),
            ("events", &["resource_id"]),
            ("sessions", &["user_id"]),
            ("password_resets", &["user_id"]),
        ];
        for (table_name, columns) in indexes {
            manager.create_index(index(table_name, columns)).await?;
        }
        for (table_name, column) in [
            ("api_keys", "key_digest"),
            ("sessions", "key_digest"),
            ("password_resets", "token_digest"),
        ] {
            let mut unique = index(table_name, &[column]);
            unique.unique().name(format!("uq_{table_name}__{column}"));
            manager.create_index(unique).await?;
        }
        let db = manager.get_connection();
        for (table_name, column) in [
            ("users", "email"),
            ("plans", "name"),
            ("routes", "name"),
            ("upstreams", "name"),
            ("groups", "slug"),
        ] {
            db.execute_unprepared(&unique_live_lower(table_name, column))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for name in [
            "password_resets",
            "settings",
            "sessions",
            "events",
            "upstream_credentials",
            "route_groups",
            "route_plans",
            "group_members",
            "webhooks",
            "routes",
            "upstreams",
            "api_keys",
            "groups",
            "users",
            "plans",
        ] {
            manager
                .drop_table(Table::drop().table(Alias::new(name)).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
