//! `usage_records`: the proxy's request log, read-only (`GET /api/usage`). A `user` sees only
//! their own traffic.

use crate::{
    Actor, Timestamp,
    query::{CmpOp, Cond},
    schema::{AttrSpec, FilterSpec, RelSpec, ResourceSchema},
    service::{Access, Op, ResourceRules},
};

const METHOD: AttrSpec = AttrSpec::text("method", 1, 16).read_only();

pub static SCHEMA: ResourceSchema = ResourceSchema {
    type_name: "usage_records",
    path: "usage",
    id_prefix: "use_",
    soft_delete: false,
    attributes: &[
        AttrSpec::text("request_id", 1, 128).read_only(),
        METHOD,
        AttrSpec::text("host", 0, 253).read_only(),
        AttrSpec::text("path", 0, 8192).read_only(),
        AttrSpec::int("status_code", 100, 599).read_only(),
        AttrSpec::text("error_code", 1, 64).nullable().read_only(),
        AttrSpec::int("duration_ms", 0, i64::MAX).read_only(),
        AttrSpec::int("upstream_duration_ms", 0, i64::MAX)
            .nullable()
            .read_only(),
        AttrSpec::int("request_bytes", 0, i64::MAX).read_only(),
        AttrSpec::int("response_bytes", 0, i64::MAX).read_only(),
        AttrSpec::text("client_ip", 0, 64).read_only(),
        AttrSpec::text("user_agent", 0, 256).read_only(),
        AttrSpec::boolean("counted").read_only(),
        AttrSpec::boolean("overage").read_only(),
    ],
    relationships: &[
        RelSpec::to_one("route", "routes", "route_id").nullable(),
        RelSpec::to_one("api_key", "api_keys", "api_key_id").nullable(),
        RelSpec::to_one("user", "users", "user_id").nullable(),
        RelSpec::to_one("group", "groups", "group_id").nullable(),
    ],
    sorts: &["duration_ms", "status_code"],
    filters: &[
        FilterSpec::to_one("user", "user_id"),
        // No index on the key column (a key index cost SQLite more per request than all the
        // other indexes together): a key's records are found through its owner's index.
        FilterSpec::to_one_through_owner("api_key", "api_key_id", "api_keys", "user_id"),
        FilterSpec::to_one("route", "route_id"),
        FilterSpec::to_one("group", "group_id"),
        FilterSpec::attr(METHOD),
        FilterSpec::custom("status_code", status_filter),
        FilterSpec::custom("path", path_filter),
    ],
    search: &[],
};

pub struct UsageRecords;

impl ResourceRules for UsageRecords {
    fn schema(&self) -> &'static ResourceSchema {
        &SCHEMA
    }

    /// Everyone reads; `visibility` narrows a `user` to their own records.
    fn access(&self, _actor: &Actor, op: Op) -> Access {
        match op {
            Op::List | Op::Read => Access::Allow,
            _ => Access::Forbidden,
        }
    }

    fn visibility(&self, actor: &Actor) -> Cond {
        super::users::own_only(actor, "user_id")
    }
}

/// `200,404` or a class `2xx` … `5xx` (comma list = OR).
fn status_filter(values: &[String], _now: Timestamp) -> Result<Cond, String> {
    let mut any = Vec::new();
    for value in values {
        let value = value.trim();
        if let Some(class) = value
            .strip_suffix("xx")
            .and_then(|d| d.parse::<i64>().ok())
            .filter(|d| (1..=5).contains(d))
        {
            any.push(Cond::All(vec![
                Cond::cmp("status_code", CmpOp::Ge, class * 100),
                Cond::cmp("status_code", CmpOp::Lt, class * 100 + 100),
            ]));
        } else if let Ok(code) = value.parse::<i64>()
            && (100..=599).contains(&code)
        {
            any.push(Cond::eq("status_code", code));
        } else {
            return Err(format!(
                "{value:?} is not a status code (100–599) or a class (2xx)"
            ));
        }
    }
    Ok(Cond::Any(any))
}

/// Paths starting with the value.
fn path_filter(values: &[String], _now: Timestamp) -> Result<Cond, String> {
    match values {
        [prefix] if prefix.starts_with('/') => Ok(Cond::StartsWith("path".into(), prefix.clone())),
        _ => Err("path takes one value starting with /".into()),
    }
}
