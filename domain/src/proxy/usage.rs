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

/// One column value of a record, as the adapters store it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Field<'a> {
    Text(&'a str),
    OptText(Option<&'a str>),
    Int(i64),
    OptInt(Option<i64>),
    Bool(bool),
}

/// The request log's columns: the one list the SQL writer, the row form and the JSON-lines
/// log are built from (in [`UsageRecord::fields`] order).
pub const RECORD_COLUMNS: [&str; 21] = [
    "id",
    "request_id",
    "created_at",
    "updated_at",
    "method",
    "host",
    "path",
    "status_code",
    "error_code",
    "duration_ms",
    "upstream_duration_ms",
    "request_bytes",
    "response_bytes",
    "client_ip",
    "user_agent",
    "counted",
    "overage",
    "route_id",
    "api_key_id",
    "user_id",
    "group_id",
];

impl UsageRecord {
    /// The values in [`RECORD_COLUMNS`] order (`updated_at` is `created_at`: records never change).
    pub fn fields(&self) -> [Field<'_>; 21] {
        let int = |v: u64| Field::Int(v.min(i64::MAX as u64) as i64);
        [
            Field::Text(&self.id),
            Field::Text(&self.request_id),
            Field::Int(self.created_at),
            Field::Int(self.created_at),
            Field::Text(&self.method),
            Field::Text(&self.host),
            Field::Text(&self.path),
            int(u64::from(self.status_code)),
            Field::OptText(self.error_code),
            int(self.duration_ms),
            Field::OptInt(
                self.upstream_duration_ms
                    .map(|v| v.min(i64::MAX as u64) as i64),
            ),
            int(self.request_bytes),
            int(self.response_bytes),
            Field::Text(&self.client_ip),
            Field::Text(&self.user_agent),
            Field::Bool(self.counted),
            Field::Bool(self.overage),
            Field::OptText(self.route_id.as_deref()),
            Field::OptText(self.api_key_id.as_deref()),
            Field::OptText(self.user_id.as_deref()),
            Field::OptText(self.group_id.as_deref()),
        ]
    }

    pub fn to_row(&self) -> Row {
        let mut row = Row::new();
        for (column, field) in RECORD_COLUMNS.iter().zip(self.fields()) {
            let value = match field {
                Field::Text(text) => json!(text),
                Field::OptText(text) => json!(text),
                Field::Int(n) => json!(n),
                Field::OptInt(n) => json!(n),
                Field::Bool(b) => json!(b),
            };
            row.insert((*column).to_owned(), value);
        }
        row
    }
}

/// How far back the quota count also reads the request log: records written without their
/// rollups (by a node of an earlier version during a rolling upgrade, or by hand) still count
/// while they are this recent. Rollups and log records of this version are written in one
/// transaction, so for them the log never holds more than the rollups.
pub const LOG_OVERLAP_MS: i64 = 120_000;

/// Requests counted against `subject` (a user, or a group for group keys) in the quota period
/// starting at `period_start`: the period's rollup count, plus what the recent request log
/// holds beyond the recent rollups (see [`LOG_OVERLAP_MS`]). One row and two small range
/// reads, whatever the history.
pub async fn counted_since(
    log: &dyn UsageLog,
    subject: &str,
    period_start: Timestamp,
    now: Timestamp,
) -> Result<u64, StoreError> {
    let recent = super::rollups::Span::Minute
        .floor(now.millis() - LOG_OVERLAP_MS)
        .max(period_start.millis());
    log.quota_used(subject, period_start, Timestamp::from_millis(recent))
        .await
}

/// How long each kind of usage data is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// The request log (`usage_records`), in days.
    pub log_days: u64,
    /// Minute rollups (the 1-minute series, rolling 1 h / 24 h summaries).
    pub minute_days: u64,
    /// Hour rollups (everything else, and the billing export).
    pub hour_days: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            log_days: 7,
            minute_days: 14,
            hour_days: 396,
        }
    }
}

/// What a pruning pass removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    pub records: u64,
    pub rollups: u64,
}

/// [`UsageTotals`]' fields in declaration order: the names the summary and series show,
/// the columns the store's aggregate queries answer with, and the OpenAPI schema's
/// properties (a test keeps it equal to the serialized struct).
pub const TOTAL_FIELDS: [&str; 7] = [
    "requests",
    "errors",
    "counted",
    "overage",
    "request_bytes",
    "response_bytes",
    "avg_duration_ms",
];

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

    /// The quota count of [`counted_since`]: the subject's count for the period starting at
    /// `period_start`, plus the log's counted records since `recent` beyond the minute
    /// rollups' count since then.
    async fn quota_used(
        &self,
        subject: &str,
        period_start: Timestamp,
        recent: Timestamp,
    ) -> Result<u64, StoreError>;

    /// Rollup totals of `span` rows with `from <= bucket < to` matching `cond` (a condition
    /// on `api_key_id`, `user_id`, `group_id`, `route_id`, `status_class`, absent ones being
    /// ''), and with `group_by` the `limit` largest groups by requests.
    async fn rollup_totals(
        &self,
        span: super::rollups::Span,
        range: (Timestamp, Timestamp),
        cond: &Cond,
        group_by: Option<&'static str>,
        limit: u64,
    ) -> Result<(UsageTotals, Vec<UsageGroup>), StoreError>;

    /// Per `interval_ms` bucket (aligned to the epoch): totals of the rows as in
    /// [`UsageLog::rollup_totals`], with `group_by` per group too. Only non-empty buckets.
    async fn rollup_series(
        &self,
        span: super::rollups::Span,
        range: (Timestamp, Timestamp),
        cond: &Cond,
        interval_ms: i64,
        group_by: Option<&'static str>,
    ) -> Result<Vec<SeriesRow>, StoreError>;

    /// Hour-rollup totals with `from <= bucket < to` per (api key, user, group), ordered by
    /// group, user and key (the billing export); None for absent relationships.
    async fn rollup_export(
        &self,
        range: (Timestamp, Timestamp),
    ) -> Result<Vec<ExportRow>, StoreError>;

    /// Deletes log records and rollups past their retention.
    async fn prune(&self, now: Timestamp, retention: &Retention) -> Result<Pruned, StoreError>;
}

/// (api key, user, group, totals) of the billing export.
pub type ExportRow = (Option<String>, Option<String>, Option<String>, UsageTotals);

/// One bucket of a series; `key` is the group (None without `group_by`, or anonymous).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesRow {
    pub key: Option<String>,
    pub at: i64,
    pub totals: UsageTotals,
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
    fn total_fields_are_the_serialized_totals() {
        let value = serde_json::to_value(UsageTotals::default()).expect("serializes");
        let names: Vec<&str> = value
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(names, TOTAL_FIELDS);
    }

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
