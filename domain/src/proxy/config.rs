//! The proxy's view of the configuration: everything a request needs, loaded from the store in
//! one go and held in memory, so no request touches the database.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use serde_json::Value;

use crate::{
    Row,
    error::StoreError,
    ports::{Store, Vault},
    query::{Cond, ListQuery},
};

use super::routing::{HostMatcher, PathMatcher, Route, RouteTable};

/// A live API key (revoked, deleted and admin keys are never loaded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    pub prefix: String,
    pub user_id: String,
    pub group_id: Option<String>,
    pub expires_at: Option<i64>,
}

/// A digest the proxy accepts: a key's current secret, or its previous one until `valid_until`.
#[derive(Debug, Clone)]
pub struct KeyEntry {
    pub key: Arc<ApiKey>,
    pub valid_until: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub active: bool,
    pub plan_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub id: String,
    pub rate_limit_per_minute: u64,
    pub requests_per_month: i64,
    pub overage_price: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub active: bool,
    pub plan_id: Option<String>,
    pub owner_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthType {
    None,
    Bearer,
    Basic,
    Header,
}

#[derive(Debug, Clone)]
pub struct Upstream {
    pub id: String,
    pub name: String,
    /// Without a trailing `/`.
    pub base_url: String,
    pub timeout_ms: u64,
    pub connect_timeout_ms: u64,
    pub headers: Vec<(String, String)>,
    pub auth_type: AuthType,
    pub auth_header: Option<String>,
    pub auth_value: Option<String>,
    /// Group id → credential replacing `auth_value` for that group's keys.
    pub group_credentials: HashMap<String, String>,
    pub health_check_path: Option<String>,
    pub enabled: bool,
}

impl Upstream {
    /// The credential for a request: the group's override when it has one.
    pub fn credential(&self, group_id: Option<&str>) -> Option<&str> {
        group_id
            .and_then(|g| self.group_credentials.get(g))
            .or(self.auth_value.as_ref())
            .map(String::as_str)
    }
}

/// The snapshot's lookup maps, read on every proxied request. foldhash instead of SipHash:
/// SipHash showed in the proxy's profiles, and these maps are built from the store, never
/// from request input, so a client can only look up, never fill a bucket (no hash flooding).
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
pub type FastSet<T> = HashSet<T, foldhash::fast::RandomState>;

/// One consistent snapshot; replaced whole on every change.
#[derive(Debug, Default)]
pub struct ProxyConfig {
    /// The configuration version read before this snapshot's tables.
    pub version: i64,
    pub routes: RouteTable,
    pub upstreams: FastMap<String, Arc<Upstream>>,
    pub keys: FastMap<String, KeyEntry>,
    pub users: FastMap<String, User>,
    pub plans: FastMap<String, Plan>,
    pub groups: FastMap<String, Group>,
    /// (group id, user id).
    pub members: FastSet<(String, String)>,
}

const NO_LIMIT: u64 = i64::MAX as u64;

fn live() -> Cond {
    Cond::is_null("deleted_at")
}

fn text(row: &Row, name: &str) -> String {
    row.get(name)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn opt_text(row: &Row, name: &str) -> Option<String> {
    row.get(name).and_then(Value::as_str).map(str::to_owned)
}

fn int(row: &Row, name: &str) -> Option<i64> {
    row.get(name).and_then(Value::as_i64)
}

fn flag(row: &Row, name: &str) -> bool {
    row.get(name).and_then(Value::as_bool).unwrap_or(false)
}

/// Link-table rows: they have no `id` to order by.
fn unordered(cond: Cond) -> ListQuery {
    ListQuery {
        cond,
        sort: Vec::new(),
        offset: 0,
        limit: NO_LIMIT,
    }
}

/// The committed configuration version: the proxy reloads when it moves. Every transaction
/// that changes what the snapshot holds increments it as its last write, under the counter
/// row's lock, so versions follow commit order and no clock is involved.
pub async fn current_version(store: &dyn Store) -> Result<i64, StoreError> {
    store.read().await?.config_version().await
}

/// Reads the whole proxy configuration.
///
/// The version is read first and the tables without a transaction (which on SQLite would take
/// the write lock): a change that commits mid-read has a higher version, so the next poll
/// reloads; a snapshot may hold such a change early, never miss one.
pub async fn load(store: &dyn Store, vault: &dyn Vault) -> Result<ProxyConfig, StoreError> {
    let version = current_version(store).await?;
    let mut db = store.read().await?;
    let all = |cond: Cond| ListQuery::all(cond, NO_LIMIT);
    let route_rows = db
        .list("routes", &all(live().and(Cond::eq("enabled", true))))
        .await?;
    let upstream_rows = db.list("upstreams", &all(live())).await?;
    let live_keys = live()
        .and(Cond::is_null("revoked_at"))
        .and(Cond::eq("kind", "live"));
    let key_rows = db.list("api_keys", &all(live_keys)).await?;
    let user_rows = db.list("users", &all(live())).await?;
    let plan_rows = db.list("plans", &all(live())).await?;
    let group_rows = db.list("groups", &all(live())).await?;
    let route_plans = db.list("route_plans", &unordered(Cond::True)).await?;
    let route_groups = db.list("route_groups", &unordered(Cond::True)).await?;
    let credentials = db
        .list("upstream_credentials", &unordered(Cond::True))
        .await?;
    let member_rows = db.list("group_members", &unordered(Cond::True)).await?;

    let mut links: HashMap<String, (Vec<String>, Vec<String>)> = HashMap::new();
    for row in &route_plans {
        links
            .entry(text(row, "route_id"))
            .or_default()
            .0
            .push(text(row, "plan_id"));
    }
    for row in &route_groups {
        links
            .entry(text(row, "route_id"))
            .or_default()
            .1
            .push(text(row, "group_id"));
    }
    let mut routes = Vec::with_capacity(route_rows.len());
    for row in &route_rows {
        let id = text(row, "id");
        let path_pattern = text(row, "path_pattern");
        // The admin API validated the pattern; a row that no longer compiles never matches.
        let Ok(path) = PathMatcher::compile(&path_pattern, &text(row, "match_type")) else {
            continue;
        };
        let host = match (
            opt_text(row, "host_pattern"),
            opt_text(row, "host_match_type"),
        ) {
            (None, _) => HostMatcher::Any,
            (Some(pattern), Some(kind)) if kind == "regex" => {
                match regex::Regex::new(&format!("^(?:{pattern})$")) {
                    Ok(regex) => HostMatcher::Regex(regex),
                    Err(_) => continue,
                }
            }
            (Some(pattern), _) => match pattern.strip_prefix('*') {
                Some(suffix) => HostMatcher::Wildcard(suffix.to_ascii_lowercase()),
                None => HostMatcher::Exact(pattern.to_ascii_lowercase()),
            },
        };
        let (allowed_plans, allowed_groups) = links.remove(&id).unwrap_or_default();
        routes.push(Route {
            name: text(row, "name"),
            methods: row
                .get("methods")
                .and_then(Value::as_array)
                .map(|m| {
                    m.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            path_pattern,
            path,
            host,
            strip_path: flag(row, "strip_path"),
            path_rewrite: opt_text(row, "path_rewrite"),
            auth_required: flag(row, "auth_required"),
            rate_limit_override: int(row, "rate_limit_override").map(|v| v.max(0) as u64),
            priority: int(row, "priority").unwrap_or(0),
            upstream_id: text(row, "upstream_id"),
            allowed_plans,
            allowed_groups,
            created_at: int(row, "created_at").unwrap_or(0),
            id,
        });
    }

    let mut group_credentials: HashMap<String, HashMap<String, String>> = HashMap::new();
    for row in &credentials {
        if let Ok(value) = vault.open(&text(row, "value_enc")) {
            group_credentials
                .entry(text(row, "upstream_id"))
                .or_default()
                .insert(text(row, "group_id"), value);
        }
    }
    let upstreams = upstream_rows
        .iter()
        .map(|row| {
            let id = text(row, "id");
            let upstream = Upstream {
                name: text(row, "name"),
                base_url: text(row, "base_url").trim_end_matches('/').to_owned(),
                timeout_ms: int(row, "timeout_ms").unwrap_or(30_000).max(1) as u64,
                connect_timeout_ms: int(row, "connect_timeout_ms").unwrap_or(5_000).max(1) as u64,
                headers: row
                    .get("headers")
                    .and_then(Value::as_object)
                    .map(|h| {
                        h.iter()
                            .filter_map(|(k, v)| {
                                Some((k.to_ascii_lowercase(), v.as_str()?.to_owned()))
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                auth_type: match text(row, "auth_type").as_str() {
                    "bearer" => AuthType::Bearer,
                    "basic" => AuthType::Basic,
                    "header" => AuthType::Header,
                    _ => AuthType::None,
                },
                auth_header: opt_text(row, "auth_header"),
                auth_value: opt_text(row, "auth_value_enc").and_then(|v| vault.open(&v).ok()),
                group_credentials: group_credentials.remove(&id).unwrap_or_default(),
                health_check_path: opt_text(row, "health_check_path"),
                enabled: flag(row, "enabled"),
                id: id.clone(),
            };
            (id, Arc::new(upstream))
        })
        .collect();

    let mut keys = FastMap::with_capacity_and_hasher(key_rows.len(), Default::default());
    for row in &key_rows {
        let key = Arc::new(ApiKey {
            id: text(row, "id"),
            prefix: text(row, "prefix"),
            user_id: text(row, "user_id"),
            group_id: opt_text(row, "group_id"),
            expires_at: int(row, "expires_at"),
        });
        if let (Some(previous), Some(until)) = (
            opt_text(row, "previous_key_digest"),
            int(row, "previous_key_expires_at"),
        ) {
            keys.insert(
                previous,
                KeyEntry {
                    key: key.clone(),
                    valid_until: Some(until),
                },
            );
        }
        keys.insert(
            text(row, "key_digest"),
            KeyEntry {
                key,
                valid_until: None,
            },
        );
    }

    Ok(ProxyConfig {
        version,
        routes: RouteTable::new(routes),
        upstreams,
        keys,
        users: user_rows
            .iter()
            .map(|row| {
                let user = User {
                    active: text(row, "status") == "active",
                    plan_id: text(row, "plan_id"),
                };
                (text(row, "id"), user)
            })
            .collect(),
        plans: plan_rows
            .iter()
            .map(|row| {
                let plan = Plan {
                    id: text(row, "id"),
                    rate_limit_per_minute: int(row, "rate_limit_per_minute").unwrap_or(0).max(0)
                        as u64,
                    requests_per_month: int(row, "requests_per_month").unwrap_or(-1),
                    overage_price: int(row, "overage_price").unwrap_or(0),
                };
                (plan.id.clone(), plan)
            })
            .collect(),
        groups: group_rows
            .iter()
            .map(|row| {
                let group = Group {
                    active: text(row, "status") == "active",
                    plan_id: opt_text(row, "plan_id"),
                    owner_id: text(row, "owner_id"),
                };
                (text(row, "id"), group)
            })
            .collect(),
        members: member_rows
            .iter()
            .map(|row| (text(row, "group_id"), text(row, "user_id")))
            .collect(),
    })
}
