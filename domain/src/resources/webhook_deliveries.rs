//! The delivery log: one read-only row per attempt, written by the dispatcher.

use crate::{
    schema::{AttrSpec, AttrType, FilterSpec, RelSpec, ResourceSchema},
    service::ResourceRules,
};

const SUCCEEDED: AttrSpec = AttrSpec::boolean("succeeded").read_only();
const EVENT_TYPE: AttrSpec = AttrSpec::text("event_type", 1, 100).read_only();
const STATUS_CODE: AttrSpec = AttrSpec::int("status_code", 100, 599)
    .nullable()
    .read_only();

pub static SCHEMA: ResourceSchema = ResourceSchema {
    type_name: "webhook_deliveries",
    path: "webhook-deliveries",
    id_prefix: "dlv_",
    soft_delete: false,
    attributes: &[
        AttrSpec::text("event_id", 1, 100).read_only(),
        EVENT_TYPE,
        AttrSpec::int("attempt", 1, i64::MAX).read_only(),
        AttrSpec::text("url", 1, 2048).read_only(),
        STATUS_CODE,
        AttrSpec::text("response_body", 0, 1024)
            .nullable()
            .read_only(),
        AttrSpec::text("error", 0, 100).nullable().read_only(),
        AttrSpec::int("duration_ms", 0, i64::MAX)
            .nullable()
            .read_only(),
        SUCCEEDED,
        AttrSpec::boolean("redelivery").read_only(),
        AttrSpec::timestamp("next_attempt_at")
            .nullable()
            .read_only(),
    ],
    relationships: &[
        RelSpec::to_one("webhook", "webhooks", "webhook_id"),
        RelSpec::to_one("event", "events", "event_id"),
    ],
    sorts: &["attempt", "status_code", "duration_ms"],
    filters: &[
        FilterSpec::attr(SUCCEEDED),
        FilterSpec {
            name: "event_type",
            kind: crate::schema::FilterKind::Attr(
                "event_type",
                AttrType::Text { min: 1, max: 100 },
            ),
        },
        FilterSpec::attr(STATUS_CODE),
        FilterSpec::to_one("event", "event_id"),
    ],
    search: &[],
};

pub struct WebhookDeliveries;

impl ResourceRules for WebhookDeliveries {
    fn schema(&self) -> &'static ResourceSchema {
        &SCHEMA
    }
}
