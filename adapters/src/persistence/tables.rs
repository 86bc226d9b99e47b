//! sea-orm entities, one per table. Field names are the domain's column names, so a
//! [`tollgate_domain::Row`] converts to and from a model through serde.

macro_rules! table {
    ($module:ident, $name:literal, keys: { $($key:ident : $key_ty:ty),+ $(,)? }, columns: { $($field:ident : $ty:ty),* $(,)? }) => {
        pub mod $module {
            use sea_orm::entity::prelude::*;
            use serde::{Deserialize, Serialize};

            #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
            #[sea_orm(table_name = $name)]
            pub struct Model {
                $(
                    #[sea_orm(primary_key, auto_increment = false)]
                    pub $key: $key_ty,
                )+
                $(pub $field: $ty,)*
            }

            #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
            pub enum Relation {}

            impl ActiveModelBehavior for ActiveModel {}
        }
    };
}

table!(plans, "plans", keys: { id: String }, columns: {
    name: String, description: String, rate_limit_per_minute: i64, requests_per_month: i64,
    price_monthly: i64, currency: String, overage_price: i64, trial_days: i64,
    stripe_price_id: Option<String>, paddle_price_id: Option<String>, lemon_variant_id: Option<String>,
    is_default: bool, enabled: bool, created_at: i64, updated_at: i64, deleted_at: Option<i64>,
});

table!(users, "users", keys: { id: String }, columns: {
    email: String, name: String, status: String, role: String, password_hash: Option<String>,
    last_login_at: Option<i64>, plan_id: String, created_at: i64, updated_at: i64, deleted_at: Option<i64>,
});

table!(groups, "groups", keys: { id: String }, columns: {
    name: String, slug: String, description: String, billing_email: Option<String>, status: String,
    owner_id: String, plan_id: Option<String>, created_at: i64, updated_at: i64, deleted_at: Option<i64>,
});

table!(api_keys, "api_keys", keys: { id: String }, columns: {
    name: String, kind: String, prefix: String, key_digest: String, previous_key_digest: Option<String>,
    previous_key_expires_at: Option<i64>, expires_at: Option<i64>, last_used_at: Option<i64>,
    revoked_at: Option<i64>, rotated_at: Option<i64>, user_id: String, group_id: Option<String>,
    created_at: i64, updated_at: i64, deleted_at: Option<i64>,
});

table!(upstreams, "upstreams", keys: { id: String }, columns: {
    name: String, description: String, base_url: String, timeout_ms: i64, connect_timeout_ms: i64,
    headers: Json, auth_type: String, auth_header: Option<String>, auth_value_enc: Option<String>,
    health_check_path: Option<String>, health: String, health_checked_at: Option<i64>, enabled: bool,
    created_at: i64, updated_at: i64, deleted_at: Option<i64>,
});

table!(routes, "routes", keys: { id: String }, columns: {
    name: String, description: String, methods: Json, path_pattern: String, match_type: String,
    host_pattern: Option<String>, host_match_type: Option<String>, strip_path: bool,
    path_rewrite: Option<String>, auth_required: bool, rate_limit_override: Option<i64>, priority: i64,
    enabled: bool, upstream_id: String, created_at: i64, updated_at: i64, deleted_at: Option<i64>,
});

table!(webhooks, "webhooks", keys: { id: String }, columns: {
    name: String, description: String, url: String, events: Json, secret: String,
    previous_secret: Option<String>, previous_secret_expires_at: Option<i64>, enabled: bool,
    consecutive_failures: i64, last_success_at: Option<i64>, last_failure_at: Option<i64>,
    disabled_reason: Option<String>, created_at: i64, updated_at: i64, deleted_at: Option<i64>,
});

table!(group_members, "group_members", keys: { group_id: String, user_id: String }, columns: {
    role: String, created_at: i64,
});

table!(route_plans, "route_plans", keys: { route_id: String, plan_id: String }, columns: {
    created_at: i64,
});

table!(route_groups, "route_groups", keys: { route_id: String, group_id: String }, columns: {
    created_at: i64,
});

table!(upstream_credentials, "upstream_credentials", keys: { upstream_id: String, group_id: String }, columns: {
    value_enc: String, created_at: i64,
});

table!(events, "events", keys: { id: String }, columns: {
    r#type: String, resource_type: String, resource_id: String, data: Json, actor_id: Option<String>,
    api_key_id: Option<String>, auth_method: Option<String>, request_id: Option<String>, created_at: i64,
    dispatched_at: Option<i64>, updated_at: Option<i64>,
});

table!(webhook_deliveries, "webhook_deliveries", keys: { id: String }, columns: {
    webhook_id: String, event_id: String, event_type: String, attempt: i64, url: String,
    status_code: Option<i64>, response_body: Option<String>, error: Option<String>,
    duration_ms: Option<i64>, succeeded: bool, redelivery: bool, next_attempt_at: Option<i64>,
    created_at: i64, updated_at: i64,
});

table!(webhook_jobs, "webhook_jobs", keys: { id: String }, columns: {
    event_id: String, webhook_id: String, attempt: i64, due_at: i64, claimed_until: Option<i64>,
    redelivery: bool, single_attempt: bool, delivery_id: Option<String>, created_at: i64,
});

table!(sessions, "sessions", keys: { id: String }, columns: {
    key_digest: String, user_id: String, role: String, state: Json, created_at: i64, last_seen_at: i64,
    expires_at: i64,
});

table!(password_resets, "password_resets", keys: { id: String }, columns: {
    user_id: String, token_digest: String, created_at: i64, expires_at: i64, used_at: Option<i64>,
});

table!(usage_records, "usage_records", keys: { id: String }, columns: {
    request_id: String, created_at: i64, updated_at: i64, method: String, host: String, path: String,
    status_code: i64, error_code: Option<String>, duration_ms: i64, upstream_duration_ms: Option<i64>,
    request_bytes: i64, response_bytes: i64, client_ip: String, user_agent: String, counted: bool,
    overage: bool, route_id: Option<String>, api_key_id: Option<String>, user_id: Option<String>,
    group_id: Option<String>,
});

table!(live_counts, "live_counts", keys: { id: String }, columns: {
    live: i64,
});

table!(settings, "settings", keys: { id: String }, columns: {
    value: String,
});

table!(counters, "counters", keys: { id: String }, columns: {
    value: i64,
});

/// Calls `$f::<Entity>(args…)` for the entity behind a table name.
macro_rules! dispatch {
    ($table:expr, $f:ident ( $($arg:expr),* )) => {{
        use $crate::persistence::tables::*;
        match $table {
            "plans" => $f::<plans::Entity>($($arg),*).await,
            "users" => $f::<users::Entity>($($arg),*).await,
            "groups" => $f::<groups::Entity>($($arg),*).await,
            "api_keys" => $f::<api_keys::Entity>($($arg),*).await,
            "upstreams" => $f::<upstreams::Entity>($($arg),*).await,
            "routes" => $f::<routes::Entity>($($arg),*).await,
            "webhooks" => $f::<webhooks::Entity>($($arg),*).await,
            "group_members" => $f::<group_members::Entity>($($arg),*).await,
            "route_plans" => $f::<route_plans::Entity>($($arg),*).await,
            "route_groups" => $f::<route_groups::Entity>($($arg),*).await,
            "upstream_credentials" => $f::<upstream_credentials::Entity>($($arg),*).await,
            "events" => $f::<events::Entity>($($arg),*).await,
            "webhook_deliveries" => $f::<webhook_deliveries::Entity>($($arg),*).await,
            "webhook_jobs" => $f::<webhook_jobs::Entity>($($arg),*).await,
            "sessions" => $f::<sessions::Entity>($($arg),*).await,
            "settings" => $f::<settings::Entity>($($arg),*).await,
            "usage_records" => $f::<usage_records::Entity>($($arg),*).await,
            "live_counts" => $f::<live_counts::Entity>($($arg),*).await,
            "counters" => $f::<counters::Entity>($($arg),*).await,
            "password_resets" => $f::<password_resets::Entity>($($arg),*).await,
            other => Err(tollgate_domain::error::StoreError::Other(format!("unknown table {other}"))),
        }
    }};
}
pub(crate) use dispatch;
