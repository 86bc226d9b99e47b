//! The audit trail: every committed change's outbox row, read-only.

use crate::{
    schema::{AttrSpec, AttrType, FilterSpec, RelSpec, ResourceSchema},
    service::ResourceRules,
};

const TYPE: AttrSpec = AttrSpec::text("type", 1, 100).read_only();
const RESOURCE_TYPE: AttrSpec = AttrSpec::text("resource_type", 1, 100).read_only();
const RESOURCE_ID: AttrSpec = AttrSpec::text("resource_id", 1, 100).read_only();

pub static SCHEMA: ResourceSchema = ResourceSchema {
    type_name: "events",
    path: "events",
    id_prefix: "evt_",
    soft_delete: false,
    attributes: &[
        TYPE,
        RESOURCE_TYPE,
        RESOURCE_ID,
        AttrSpec::new("data", AttrType::Object).read_only(),
        AttrSpec::text("request_id", 0, 200).nullable().read_only(),
        AttrSpec::text("auth_method", 0, 20).nullable().read_only(),
    ],
    relationships: &[
        RelSpec::to_one("actor", "users", "actor_id").nullable(),
        RelSpec::to_one("api_key", "api_keys", "api_key_id").nullable(),
    ],
    sorts: &["type"],
    filters: &[
        FilterSpec::attr(TYPE),
        FilterSpec::attr(RESOURCE_TYPE),
        FilterSpec::attr(RESOURCE_ID),
        FilterSpec::to_one("actor", "actor_id"),
    ],
    search: &[],
};

pub struct Events;

impl ResourceRules for Events {
    fn schema(&self) -> &'static ResourceSchema {
        &SCHEMA
    }
}
