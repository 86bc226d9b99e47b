//! Webhooks: the `webhooks` resource ([`Webhooks`]) and the delivery of change events to them.
//!
//! Delivery: committed events fan out into one job per subscribed webhook, jobs are
//! claimed under a lease, every attempt is recorded, failures are retried on a schedule, and
//! a webhook that keeps failing is disabled.
//!
//! Why a job table next to the `events` outbox: the fan-out (marking events dispatched and
//! creating their jobs) is one transaction, and so is recording an attempt with its
//! rescheduling. A crash anywhere leaves either the old state or the new one, so nothing
//! is lost; a crash between sending and recording repeats the attempt once the lease runs
//! out (at-least-once, receivers dedupe on `webhook-id`).

mod actions;
mod attempt;
mod destination;
mod jobs;
mod log;
mod payload;
mod resource;
mod schedule;
mod secret;

use serde_json::Value;

use crate::Row;

pub use actions::{ROTATION_GRACE_MS, redeliver, rotate_secret, send_test};
pub use attempt::deliver;
pub use destination::{is_forbidden_host, is_forbidden_ip};
pub use jobs::{LOG_RETENTION_MS, claim_due, fan_out, purge_log, queue_depth};
pub use log::RESPONSE_SNIPPET_BYTES;
pub use payload::{payload, secrets, subscribed};
pub use resource::{EVENT_TYPES, FORBIDDEN_DETAIL, SCHEMA, Webhooks, forget_jobs, is_subscription};
pub use schedule::{DEFAULT_SCHEDULE_MS, Verdict, classify, jittered, parse_schedule};
pub use secret::{is_plaintext, open_secret, sealed_secret};

fn int(row: &Row, column: &str) -> i64 {
    row.get(column).and_then(Value::as_i64).unwrap_or_default()
}

fn text<'r>(row: &'r Row, column: &str) -> &'r str {
    row.get(column).and_then(Value::as_str).unwrap_or_default()
}
