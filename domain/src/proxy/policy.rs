//! Who may pass (proxy.md §1 steps 5–8): key, owner, plan and group gates, upstream state.
//! Pure decisions over a [`ProxyConfig`] snapshot; the adapter supplies the key's digest.

use std::sync::Arc;

use super::config::{ApiKey, Plan, ProxyConfig, Upstream};
use super::routing::Route;

/// Every way Tollgate itself answers a proxied request (errors.md §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The path has no canonical form (wiki/proxying.md, "Canonical path").
    InvalidPath(super::path::PathError),
    RouteNotFound,
    MethodNotAllowed(Vec<String>),
    PayloadTooLarge {
        limit: u64,
    },
    MissingApiKey,
    InvalidApiKey,
    ApiKeyExpired,
    UserInactive,
    GroupSuspended,
    PlanNotAllowed,
    GroupNotAllowed,
    UpstreamDisabled,
    RateLimited {
        limit: u64,
        retry_after: u64,
    },
    QuotaExceeded {
        retry_after: u64,
    },
    BadGateway,
    GatewayTimeout,
    Internal,
}

impl Refusal {
    pub fn status(&self) -> u16 {
        match self {
            Self::InvalidPath(_) => 400,
            Self::RouteNotFound => 404,
            Self::MethodNotAllowed(_) => 405,
            Self::PayloadTooLarge { .. } => 413,
            Self::MissingApiKey | Self::InvalidApiKey | Self::ApiKeyExpired => 401,
            Self::UserInactive
            | Self::GroupSuspended
            | Self::PlanNotAllowed
            | Self::GroupNotAllowed => 403,
            Self::UpstreamDisabled => 503,
            Self::RateLimited { .. } | Self::QuotaExceeded { .. } => 429,
            Self::BadGateway => 502,
            Self::GatewayTimeout => 504,
            Self::Internal => 500,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidPath(_) => "INVALID_PATH",
            Self::RouteNotFound => "ROUTE_NOT_FOUND",
            Self::MethodNotAllowed(_) => "METHOD_NOT_ALLOWED",
            Self::PayloadTooLarge { .. } => "PAYLOAD_TOO_LARGE",
            Self::MissingApiKey => "MISSING_API_KEY",
            Self::InvalidApiKey => "INVALID_API_KEY",
            Self::ApiKeyExpired => "API_KEY_EXPIRED",
            Self::UserInactive => "USER_INACTIVE",
            Self::GroupSuspended => "GROUP_SUSPENDED",
            Self::PlanNotAllowed => "PLAN_NOT_ALLOWED",
            Self::GroupNotAllowed => "GROUP_NOT_ALLOWED",
            Self::UpstreamDisabled => "UPSTREAM_DISABLED",
            Self::RateLimited { .. } => "RATE_LIMITED",
            Self::QuotaExceeded { .. } => "QUOTA_EXCEEDED",
            Self::BadGateway => "BAD_GATEWAY",
            Self::GatewayTimeout => "GATEWAY_TIMEOUT",
            Self::Internal => "INTERNAL_ERROR",
        }
    }

    pub fn message(&self) -> String {
        match self {
            Self::InvalidPath(why) => format!("The request path is refused: {why}"),
            Self::RouteNotFound => "No route matches this request".into(),
            Self::MethodNotAllowed(_) => "The route does not allow this method".into(),
            Self::PayloadTooLarge { limit } => {
                format!("The request body is larger than {limit} bytes")
            }
            Self::MissingApiKey => {
                "An API key is required (X-API-Key or Authorization: Bearer)".into()
            }
            Self::InvalidApiKey => "The API key is not valid".into(),
            Self::ApiKeyExpired => "The API key has expired".into(),
            Self::UserInactive => "The key's owner is not active".into(),
            Self::GroupSuspended => "The key's group is suspended or its creator left it".into(),
            Self::PlanNotAllowed => "This route is not available on the key's plan".into(),
            Self::GroupNotAllowed => "This route is not available to the key's group".into(),
            Self::UpstreamDisabled => "The upstream of this route is disabled".into(),
            Self::RateLimited { limit, .. } => {
                format!("Rate limit of {limit} requests per minute exceeded")
            }
            Self::QuotaExceeded { .. } => "The monthly request quota is used up".into(),
            Self::BadGateway => "The upstream could not be reached".into(),
            Self::GatewayTimeout => "The upstream did not answer in time".into(),
            Self::Internal => "Unexpected error inside Tollgate".into(),
        }
    }
}

/// `tg_live_` + 40 alphanumerics, checked before any lookup.
pub fn is_well_formed(key: &str) -> bool {
    crate::auth::is_key_shaped(key, crate::auth::LIVE_KEY_PREFIX)
}

/// A request that passed the key, owner and plan gates.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key: Arc<ApiKey>,
    pub plan: Plan,
    /// Whose monthly quota this request counts against (the group for group keys).
    pub quota_subject: String,
}

/// Steps 5–7 for an auth-required route. `digest` is the SHA-256 of a well-formed key.
pub fn admit(
    config: &ProxyConfig,
    route: &Route,
    digest: Option<&str>,
    now_ms: i64,
) -> Result<Caller, Refusal> {
    let digest = digest.ok_or(Refusal::InvalidApiKey)?;
    let entry = config.keys.get(digest).ok_or(Refusal::InvalidApiKey)?;
    if entry.valid_until.is_some_and(|until| until <= now_ms) {
        return Err(Refusal::InvalidApiKey);
    }
    let key = &entry.key;
    if key.expires_at.is_some_and(|at| at <= now_ms) {
        return Err(Refusal::ApiKeyExpired);
    }
    let user = config
        .users
        .get(&key.user_id)
        .ok_or(Refusal::InvalidApiKey)?;
    if !user.active {
        return Err(Refusal::UserInactive);
    }
    let group = match &key.group_id {
        Some(group_id) => {
            let group = config.groups.get(group_id).ok_or(Refusal::GroupSuspended)?;
            let member = config
                .members
                .contains(&(group_id.clone(), key.user_id.clone()));
            if !group.active || !member {
                return Err(Refusal::GroupSuspended);
            }
            Some((group_id, group))
        }
        None => None,
    };
    let plan_id = match group {
        Some((_, group)) => match &group.plan_id {
            Some(plan) => plan.clone(),
            None => config
                .users
                .get(&group.owner_id)
                .map(|owner| owner.plan_id.clone())
                .unwrap_or_else(|| user.plan_id.clone()),
        },
        None => user.plan_id.clone(),
    };
    if !route.allowed_plans.is_empty() && !route.allowed_plans.contains(&plan_id) {
        return Err(Refusal::PlanNotAllowed);
    }
    if !route.allowed_groups.is_empty() {
        let qualifies = match group {
            Some((group_id, _)) => route.allowed_groups.contains(group_id),
            None => route
                .allowed_groups
                .iter()
                .any(|g| config.members.contains(&(g.clone(), key.user_id.clone()))),
        };
        if !qualifies {
            return Err(Refusal::GroupNotAllowed);
        }
    }
    let plan = config.plans.get(&plan_id).cloned().unwrap_or(Plan {
        id: plan_id,
        rate_limit_per_minute: 0,
        requests_per_month: -1,
        overage_price: 0,
    });
    Ok(Caller {
        quota_subject: key.group_id.clone().unwrap_or_else(|| key.user_id.clone()),
        key: key.clone(),
        plan,
    })
}

/// Step 8.
pub fn upstream_of<'a>(
    config: &'a ProxyConfig,
    route: &Route,
) -> Result<&'a Arc<Upstream>, Refusal> {
    let upstream = config
        .upstreams
        .get(&route.upstream_id)
        .ok_or(Refusal::UpstreamDisabled)?;
    if upstream.enabled {
        Ok(upstream)
    } else {
        Err(Refusal::UpstreamDisabled)
    }
}

/// The requests-per-minute limit that applies, `None` = unlimited (§4: `L = 0`).
pub fn rate_limit(route: &Route, caller: Option<&Caller>) -> Option<u64> {
    let limit = route
        .rate_limit_override
        .or_else(|| caller.map(|c| c.plan.rate_limit_per_minute))?;
    (limit > 0).then_some(limit)
}
