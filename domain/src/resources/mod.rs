//! The seven writable resource types and the read-only logs. Each module declares its schema
//! and rules.

pub mod api_keys;
pub mod checks;
pub mod events;
pub mod group_members;
pub mod groups;
pub mod plans;
pub mod routes;
pub mod upstreams;
pub mod usage_records;
pub mod users;
pub mod webhook_deliveries;

/// The `webhooks` resource lives with its delivery in [`crate::webhooks`]; this path stays for
/// the adapters' imports.
pub mod webhooks {
    pub use crate::webhooks::{
        FORBIDDEN_DETAIL, SCHEMA, Webhooks, is_forbidden_host, is_forbidden_ip,
    };
}

use crate::service::ResourceRules;

/// Every writable type, in the order the spec lists them.
pub const ALL: [&'static dyn ResourceRules; 7] = [
    &users::Users,
    &plans::Plans,
    &api_keys::ApiKeys,
    &routes::Routes,
    &upstreams::Upstreams,
    &groups::Groups,
    &webhooks::Webhooks,
];

/// Types written only by Tollgate itself: readable, filterable and includable like the rest.
pub const READ_ONLY: [&'static dyn ResourceRules; 3] = [
    &usage_records::UsageRecords,
    &webhook_deliveries::WebhookDeliveries,
    &events::Events,
];

/// The rules of a JSON:API type (`"api_keys"`).
pub fn by_type(type_name: &str) -> Option<&'static dyn ResourceRules> {
    ALL.into_iter()
        .chain(READ_ONLY)
        .find(|r| r.schema().type_name == type_name)
}

/// The rules behind a path segment (`"api-keys"`).
pub fn by_path(segment: &str) -> Option<&'static dyn ResourceRules> {
    ALL.into_iter().find(|r| r.schema().path == segment)
}
