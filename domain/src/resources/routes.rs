//! Routes: which requests the proxy accepts and which upstream serves them.

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::{
    DomainError, Row,
    schema::{AttrSpec, Default, FilterSpec, OnCreate, OnUpdate, RelSpec, ResourceSchema, ToMany},
    service::{Ctx, Draft, ResourceRules},
};

pub const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
pub const MATCH_TYPES: &[&str] = &["exact", "prefix", "regex"];
pub const HOST_MATCH_TYPES: &[&str] = &["exact", "wildcard", "regex"];

const ENABLED: AttrSpec = AttrSpec::boolean("enabled").default(Default::Bool(true));
const MATCH_TYPE: AttrSpec =
    AttrSpec::one_of("match_type", MATCH_TYPES).default(Default::Text("prefix"));
const AUTH_REQUIRED: AttrSpec = AttrSpec::boolean("auth_required").default(Default::Bool(true));

pub static SCHEMA: ResourceSchema = ResourceSchema {
    type_name: "routes",
    path: "routes",
    id_prefix: "rte_",
    soft_delete: true,
    attributes: &[
        AttrSpec::text("name", 1, 100).required(),
        AttrSpec::text("description", 0, 1000).default(Default::Text("")),
        // Duplicates are removed (below), not counted against the seven methods.
        AttrSpec::new(
            "methods",
            crate::schema::AttrType::TextList { max_items: 100 },
        )
        .default(Default::EmptyList),
        AttrSpec::text("path_pattern", 1, 1024).required(),
        MATCH_TYPE,
        AttrSpec::text("host_pattern", 1, 253).nullable(),
        AttrSpec::one_of("host_match_type", HOST_MATCH_TYPES).nullable(),
        AttrSpec::boolean("strip_path").default(Default::Bool(false)),
        AttrSpec::text("path_rewrite", 1, 1024).nullable(),
        AUTH_REQUIRED,
        AttrSpec::int("rate_limit_override", 1, 1_000_000).nullable(),
        AttrSpec::int("priority", -1000, 1000).default(Default::Int(0)),
        ENABLED,
    ],
    relationships: &[
        RelSpec::to_one("upstream", "upstreams", "upstream_id")
            .writable(OnCreate::Required, OnUpdate::Yes),
        RelSpec::to_many(
            "allowed_plans",
            "plans",
            ToMany::Join {
                table: "route_plans",
                own: "route_id",
                other: "plan_id",
                role_column: None,
            },
        )
        .writable(OnCreate::Optional, OnUpdate::Yes),
        RelSpec::to_many(
            "allowed_groups",
            "groups",
            ToMany::Join {
                table: "route_groups",
                own: "route_id",
                other: "group_id",
                role_column: None,
            },
        )
        .writable(OnCreate::Optional, OnUpdate::Yes),
    ],
    sorts: &["name", "priority", "path_pattern"],
    filters: &[
        FilterSpec::attr(ENABLED),
        FilterSpec::attr(MATCH_TYPE),
        FilterSpec::attr(AUTH_REQUIRED),
        FilterSpec::to_one("upstream", "upstream_id"),
    ],
    search: &["name"],
};

pub struct Routes;

#[async_trait]
impl ResourceRules for Routes {
    fn schema(&self) -> &'static ResourceSchema {
        &SCHEMA
    }

    async fn before_create(
        &self,
        _ctx: &mut Ctx<'_>,
        draft: &mut Draft,
    ) -> Result<(), DomainError> {
        check(draft);
        Ok(())
    }

    async fn before_update(
        &self,
        _ctx: &mut Ctx<'_>,
        _before: &Row,
        draft: &mut Draft,
    ) -> Result<(), DomainError> {
        check(draft);
        Ok(())
    }
}

fn check(draft: &mut Draft) {
    if let Some(Value::Array(methods)) = draft.row.get("methods").cloned() {
        let mut normalised: Vec<String> = Vec::new();
        for method in methods.iter().filter_map(Value::as_str) {
            if !METHODS.contains(&method) {
                draft.invalid(
                    "methods",
                    format!("methods must be among {}", METHODS.join(", ")),
                );
                break;
            }
            if !normalised.iter().any(|m| m == method) {
                normalised.push(method.to_owned());
            }
        }
        draft.set("methods", json!(normalised));
    }
    let match_type = draft.str("match_type").unwrap_or("prefix").to_owned();
    if let Some(pattern) = draft.str("path_pattern").map(str::to_owned) {
        if !pattern.starts_with('/') {
            draft.invalid("path_pattern", "path_pattern must start with /");
        } else if match_type == "regex" && regex::Regex::new(&format!("^(?:{pattern})$")).is_err() {
            draft.invalid(
                "path_pattern",
                "path_pattern is not a valid regular expression",
            );
        }
    }
    match draft.str("host_pattern").map(str::to_owned) {
        None => {
            if draft.was_given("host_match_type") && !draft.row["host_match_type"].is_null() {
                draft.invalid("host_match_type", "host_match_type needs a host_pattern");
            }
            draft.set("host_match_type", Value::Null);
        }
        Some(host) => {
            let inferred = if host.starts_with("*.") {
                "wildcard"
            } else {
                "exact"
            };
            let unset = draft.row.get("host_match_type").is_none_or(Value::is_null);
            let stale = draft.was_given("host_pattern")
                && !draft.was_given("host_match_type")
                && draft.str("host_match_type") != Some("regex");
            if unset || stale {
                draft.set("host_match_type", inferred);
            }
            if draft.str("host_match_type") == Some("regex") && regex::Regex::new(&host).is_err() {
                draft.invalid(
                    "host_pattern",
                    "host_pattern is not a valid regular expression",
                );
            }
        }
    }
    if draft.bool("strip_path") == Some(true) && draft.str("path_rewrite").is_some() {
        let attribute = if draft.was_given("path_rewrite") {
            "path_rewrite"
        } else {
            "strip_path"
        };
        draft.invalid(attribute, "path_rewrite and strip_path cannot be combined");
    }
}
