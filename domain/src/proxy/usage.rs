//! Metering: one record per proxied request, written in batches off the request path.

use serde_json::json;

use crate::{
    Row, Timestamp,
    error::StoreError,
    ports::Store,
    query::{CmpOp, Cond},
};

/// Longest `path` a usage record keeps: a request line may be far longer (up to the
/// listener's header limit), and the log is no place for 100 kB of attacker-chosen text.
pub const MAX_PATH_BYTES: usize = 2048;
/// Longest `host` a usage record keeps (a DNS name is at most 253 characters).
pub const MAX_HOST_BYTES: usize = 255;

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
pub fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[derive(Debug, Clone, Default)]
pub struct UsageRecord {
    pub id: String,
    pub request_id: String,
    pub created_at: i64,
    pub method: String,
    pub host: String,
    pub path: String,
    pub status_code: u16,
    pub error_code: Option<&'static str>,
    pub duration_ms: u64,
    pub upstream_duration_ms: Option<u64>,
    pub request_bytes: u64,
    pub response_bytes: u64,
    pub client_ip: String,
    pub user_agent: String,
    pub counted: bool,
    pub overage: bool,
    pub route_id: Option<String>,
    pub api_key_id: Option<String>,
    pub user_id: Option<String>,
    pub group_id: Option<String>,
}

impl UsageRecord {
    pub fn to_row(&self) -> Row {
        let json = json!({
            "id": self.id,
            "request_id": self.request_id,
            "created_at": self.created_at,
            "updated_at": self.created_at,
            "method": self.method,
            "host": self.host,
            "path": self.path,
            "status_code": self.status_code,
            "error_code": self.error_code,
            "duration_ms": self.duration_ms,
            "upstream_duration_ms": self.upstream_duration_ms,
            "request_bytes": self.request_bytes,
            "response_bytes": self.response_bytes,
            "client_ip": self.client_ip,
            "user_agent": self.user_agent,
            "counted": self.counted,
            "overage": self.overage,
            "route_id": self.route_id,
            "api_key_id": self.api_key_id,
            "user_id": self.user_id,
            "group_id": self.group_id,
        });
        match json {
            serde_json::Value::Object(row) => row,
            _ => Row::new(),
        }
    }
}

/// Requests already counted against `subject` (a user, or a group for group keys) since `from`.
pub async fn counted_since(
    store: &dyn Store,
    subject: &str,
    from: Timestamp,
) -> Result<u64, StoreError> {
    let owner = if subject.starts_with("grp_") {
        Cond::eq("group_id", subject)
    } else {
        Cond::eq("user_id", subject).and(Cond::is_null("group_id"))
    };
    let cond =
        owner
            .and(Cond::eq("counted", true))
            .and(Cond::cmp("created_at", CmpOp::Ge, from.millis()));
    store.read().await?.count("usage_records", &cond).await
}

/// Deletes records older than the retention window; returns how many.
pub async fn prune(store: &dyn Store, before: Timestamp) -> Result<u64, StoreError> {
    let mut tx = store.begin().await?;
    let removed = tx
        .delete_where(
            "usage_records",
            &Cond::cmp("created_at", CmpOp::Lt, before.millis()),
        )
        .await?;
    tx.commit().await?;
    Ok(removed)
}

/// Aggregates of usage records (`GET /api/usage/summary`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct UsageTotals {
    pub requests: i64,
    /// Status ≥ 400.
    pub errors: i64,
    pub counted: i64,
    pub overage: i64,
    pub request_bytes: i64,
    pub response_bytes: i64,
    pub avg_duration_ms: i64,
}

/// One row of a grouped summary; `key` is null for anonymous traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageGroup {
    pub key: Option<String>,
    pub totals: UsageTotals,
}

/// A batch append that stopped part-way: the first `written` records are stored.
#[derive(Debug, thiserror::Error)]
#[error("{written} usage records stored, then: {source}")]
pub struct AppendError {
    pub written: usize,
    #[source]
    pub source: StoreError,
}

/// The request log's storage. Appends come in batches off the request path; a summary is
/// aggregated in the database, never by reading every record into memory.
#[async_trait::async_trait]
pub trait UsageLog: Send + Sync + 'static {
    /// Appends a batch in order, in chunks that each commit on their own (large enough that a
    /// commit's page writes are shared by many records, small enough that the database's
    /// write lock is never held long). On failure it reports how many leading records were
    /// stored, so a retry neither loses nor duplicates any.
    async fn append(&self, records: &[UsageRecord]) -> Result<(), AppendError>;

    /// Totals over `cond`, and with `group_by` (a column) the 100 largest groups by requests.
    async fn summarize(
        &self,
        cond: &Cond,
        group_by: Option<&'static str>,
    ) -> Result<(UsageTotals, Vec<UsageGroup>), StoreError>;
}

/// `filter[period]`: `1h`, `24h`, `7d` (rolling, ending now) or `month` (the quota period).
pub fn period_start(period: &str, now: Timestamp) -> Option<Timestamp> {
    match period {
        "1h" => Some(now.plus_seconds(-3_600)),
        "24h" => Some(now.plus_seconds(-86_400)),
        "7d" => Some(now.plus_seconds(-7 * 86_400)),
        "month" => Some(super::limits::QuotaPeriod::containing(now).start),
        _ => None,
    }
}

/// `group_by` → (the column, the JSON:API type of its ids).
pub fn group_column(group_by: &str) -> Option<(&'static str, &'static str)> {
    match group_by {
        "key" => Some(("api_key_id", "api_keys")),
        "user" => Some(("user_id", "users")),
        "route" => Some(("route_id", "routes")),
        _ => None,
    }
}

/// A quota milestone of one subject in one period (webhooks.md: `usage.threshold` at 80 %,
/// `usage.limit` at the first refusal or overage).
#[derive(Debug, Clone)]
pub struct QuotaMilestone {
    pub event_type: &'static str,
    /// A user or a group id.
    pub subject: String,
    pub period_start: Timestamp,
    pub used: u64,
    pub limit: u64,
}

/// Records the milestone's event once per subject and period (a restarted node may see the
/// crossing again: the outbox is checked first).
pub async fn record_milestone(
    store: &dyn Store,
    ids: &dyn crate::ports::IdGenerator,
    now: Timestamp,
    milestone: &QuotaMilestone,
) -> Result<(), StoreError> {
    let mut tx = store.begin().await?;
    let seen = Cond::eq("type", milestone.event_type)
        .and(Cond::eq("resource_id", milestone.subject.as_str()))
        .and(Cond::cmp(
            "created_at",
            CmpOp::Ge,
            milestone.period_start.millis(),
        ));
    if tx.count("events", &seen).await? > 0 {
        return Ok(());
    }
    let resource_type = if milestone.subject.starts_with("grp_") {
        "groups"
    } else {
        "users"
    };
    let percent = (milestone.used * 100)
        .checked_div(milestone.limit)
        .unwrap_or(100);
    let event = crate::events::ChangeEvent {
        id: ids.new_id("evt_"),
        event_type: milestone.event_type.to_owned(),
        resource_type: resource_type.to_owned(),
        resource_id: milestone.subject.clone(),
        data: json!({
            "subject": {"type": resource_type, "id": milestone.subject},
            "period_start": milestone.period_start.to_string(),
            "used": milestone.used,
            "limit": milestone.limit,
            "percent": percent,
        }),
        actor: crate::Actor::system(),
        created_at: now,
    };
    tx.insert("events", &event.to_row()).await?;
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_keeps_whole_characters() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("abcdef", 3), "abc");
        // `é` is two bytes: cutting inside it keeps the text before it.
        assert_eq!(truncate("aé", 2), "a");
        assert_eq!(truncate("aé", 3), "aé");
        let long = "x".repeat(100_000);
        assert_eq!(truncate(&long, MAX_PATH_BYTES).len(), MAX_PATH_BYTES);
    }
}
