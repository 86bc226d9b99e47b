//! Usage rollups: the billing truth. Each flush of the usage writer is aggregated in memory
//! into one row per (span, bucket, api key, user, group, route, status class) and added to the
//! stored rows, together with each quota subject's monthly count. Rollups are exact whatever
//! the request log keeps (sampled, off, pruned), and a month of them is small enough to sum
//! on every summary.

use super::config::FastMap;

use super::{limits::QuotaPeriod, usage::UsageRecord};
use crate::Timestamp;

/// Upper bounds (ms, inclusive) of the latency histogram's buckets; a last bucket takes the
/// rest. Fixed, so rows of any age and any node add up.
pub const LATENCY_BOUNDS_MS: [u64; 6] = [10, 50, 100, 250, 1_000, 5_000];
/// The histogram's columns, one more than [`LATENCY_BOUNDS_MS`].
pub const LATENCY_COLUMNS: [&str; 7] = [
    "latency_le_10",
    "latency_le_50",
    "latency_le_100",
    "latency_le_250",
    "latency_le_1000",
    "latency_le_5000",
    "latency_over_5000",
];

/// A rollup row's granularity. The writer adds every flush to both: hour rows need no
/// compaction pass (that could miss records arriving late, after an outage), and minute rows
/// are dropped after their own, shorter retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Span {
    Minute,
    Hour,
}

impl Span {
    pub const ALL: [Span; 2] = [Span::Minute, Span::Hour];

    pub fn as_str(self) -> &'static str {
        match self {
            Span::Minute => "minute",
            Span::Hour => "hour",
        }
    }

    pub fn millis(self) -> i64 {
        match self {
            Span::Minute => 60_000,
            Span::Hour => 3_600_000,
        }
    }

    /// The start of the bucket holding `at` (ms).
    pub fn floor(self, at: i64) -> i64 {
        at - at.rem_euclid(self.millis())
    }
}

/// What a rollup row is about. Absent relationships are empty strings (a unique key over
/// nullable columns would never conflict); readers turn them back into null.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RollupKey {
    pub span: Span,
    pub bucket: i64,
    pub api_key_id: String,
    pub user_id: String,
    pub group_id: String,
    pub route_id: String,
    pub status_class: String,
}

/// The key's columns in the order the adapter writes them.
pub const KEY_COLUMNS: [&str; 7] = [
    "span",
    "bucket",
    "api_key_id",
    "user_id",
    "group_id",
    "route_id",
    "status_class",
];

/// The summed columns, in [`RollupCounts::values`] order.
pub const COUNT_COLUMNS: [&str; 14] = [
    "requests",
    "errors",
    "counted",
    "overage",
    "request_bytes",
    "response_bytes",
    "duration_ms",
    LATENCY_COLUMNS[0],
    LATENCY_COLUMNS[1],
    LATENCY_COLUMNS[2],
    LATENCY_COLUMNS[3],
    LATENCY_COLUMNS[4],
    LATENCY_COLUMNS[5],
    LATENCY_COLUMNS[6],
];

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RollupCounts {
    pub requests: i64,
    /// Status ≥ 400.
    pub errors: i64,
    pub counted: i64,
    pub overage: i64,
    pub request_bytes: i64,
    pub response_bytes: i64,
    /// Summed, so averages over any set of rows are exact.
    pub duration_ms: i64,
    pub latency: [i64; 7],
}

impl RollupCounts {
    fn add(&mut self, record: &UsageRecord) {
        let int = |v: u64| v.min(i64::MAX as u64) as i64;
        self.requests += 1;
        self.errors += i64::from(record.status_code >= 400);
        self.counted += i64::from(record.counted);
        self.overage += i64::from(record.overage);
        self.request_bytes = self.request_bytes.saturating_add(int(record.request_bytes));
        self.response_bytes = self
            .response_bytes
            .saturating_add(int(record.response_bytes));
        self.duration_ms = self.duration_ms.saturating_add(int(record.duration_ms));
        let slot = LATENCY_BOUNDS_MS
            .iter()
            .position(|bound| record.duration_ms <= *bound)
            .unwrap_or(LATENCY_BOUNDS_MS.len());
        self.latency[slot] += 1;
    }

    /// The values in [`COUNT_COLUMNS`] order.
    pub fn values(&self) -> [i64; 14] {
        let l = self.latency;
        [
            self.requests,
            self.errors,
            self.counted,
            self.overage,
            self.request_bytes,
            self.response_bytes,
            self.duration_ms,
            l[0],
            l[1],
            l[2],
            l[3],
            l[4],
            l[5],
            l[6],
        ]
    }
}

/// `2xx` … `5xx` for answers of the upstream (or the proxy's own forwarding errors, which
/// carry a code too: the code then), or the proxy's refusal code (`RATE_LIMITED`,
/// `QUOTA_EXCEEDED`, `INVALID_API_KEY`, …) when it answered itself.
pub fn status_class(record: &UsageRecord) -> String {
    status_class_of(record).to_owned()
}

/// [`status_class`] without a copy: the refusal's code or a fixed class name.
fn status_class_of(record: &UsageRecord) -> &'static str {
    const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
    match record.error_code {
        Some(code) => code,
        None => CLASSES[usize::from((record.status_code / 100).clamp(1, 5)) - 1],
    }
}

/// A quota subject's count for one period: the requests counted toward its quota.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct QuotaCount {
    /// A user, or a group for group keys (the proxy's quota subject).
    pub subject: String,
    pub period_start: i64,
    pub counted: i64,
}

/// The quota subject a record was counted against, if any.
pub fn quota_subject(record: &UsageRecord) -> Option<&str> {
    record.group_id.as_deref().or(record.user_id.as_deref())
}

/// One flush aggregated: rollup rows in key order (two nodes upserting the same rows take
/// their locks in the same order, so they never deadlock) and the quota counts.
#[derive(Debug, Default)]
pub struct Aggregate {
    pub rollups: Vec<(RollupKey, RollupCounts)>,
    pub quotas: Vec<QuotaCount>,
}

pub fn aggregate(records: &[UsageRecord]) -> Aggregate {
    // Keyed by borrowed columns: a batch has far fewer distinct rows than records, so the
    // key's strings are copied once per row instead of twice per record (profiles showed
    // the copies and SipHash of the owned keys as a twentieth of the proxy's instructions).
    type Borrowed<'a> = (Span, i64, &'a str, &'a str, &'a str, &'a str, &'static str);
    let mut rows: FastMap<Borrowed<'_>, RollupCounts> = FastMap::default();
    let mut quotas: FastMap<(&str, i64), i64> = FastMap::default();
    let mut period: Option<QuotaPeriod> = None;
    for record in records {
        let class = status_class_of(record);
        for span in Span::ALL {
            let key = (
                span,
                span.floor(record.created_at),
                record.api_key_id.as_deref().unwrap_or_default(),
                record.user_id.as_deref().unwrap_or_default(),
                record.group_id.as_deref().unwrap_or_default(),
                record.route_id.as_deref().unwrap_or_default(),
                class,
            );
            rows.entry(key).or_default().add(record);
        }
        if record.counted
            && let Some(subject) = quota_subject(record)
        {
            let current = match period {
                Some(p) if (p.start.millis()..p.next.millis()).contains(&record.created_at) => p,
                _ => QuotaPeriod::containing(Timestamp::from_millis(record.created_at)),
            };
            period = Some(current);
            *quotas.entry((subject, current.start.millis())).or_default() += 1;
        }
    }
    let mut rollups: Vec<(RollupKey, RollupCounts)> = rows
        .into_iter()
        .map(|((span, bucket, key, user, group, route, class), counts)| {
            let key = RollupKey {
                span,
                bucket,
                api_key_id: key.to_owned(),
                user_id: user.to_owned(),
                group_id: group.to_owned(),
                route_id: route.to_owned(),
                status_class: class.to_owned(),
            };
            (key, counts)
        })
        .collect();
    rollups.sort_by(|a, b| a.0.cmp(&b.0));
    let mut quotas: Vec<QuotaCount> = quotas
        .into_iter()
        .map(|((subject, period_start), counted)| QuotaCount {
            subject: subject.to_owned(),
            period_start,
            counted,
        })
        .collect();
    quotas.sort();
    Aggregate { rollups, quotas }
}

/// A batch's identity for idempotency: its first record's id (unique) and, to tell a retry
/// of the same batch from a later batch that happens to start with that record (after a
/// partial failure), its last record's id and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchId {
    pub first: String,
    pub last: String,
    pub records: usize,
}

impl BatchId {
    pub fn of(records: &[UsageRecord]) -> Option<Self> {
        Some(Self {
            first: records.first()?.id.clone(),
            last: records.last()?.id.clone(),
            records: records.len(),
        })
    }

    /// Whether `records` start with this batch (it was applied already, maybe with fewer
    /// records than a retry now holds).
    pub fn is_prefix_of(&self, records: &[UsageRecord]) -> bool {
        records.first().map(|r| r.id.as_str()) == Some(self.first.as_str())
            && records
                .get(self.records.wrapping_sub(1))
                .map(|r| r.id.as_str())
                == Some(self.last.as_str())
    }
}

/// What the request log keeps (`TOLLGATE_USAGE_LOG_SAMPLE`): rollups count every request;
/// the log keeps refusals, errors and non-2xx answers always, and 2xx answers at `sample`
/// (0 = none, 1 = all). `off` keeps nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogPolicy {
    pub off: bool,
    pub sample: f64,
}

impl Default for LogPolicy {
    fn default() -> Self {
        Self {
            off: false,
            sample: 1.0,
        }
    }
}

impl LogPolicy {
    /// `off`, or a rate in [0, 1] (`0.01` or `1%`).
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("off") {
            return Some(Self {
                off: true,
                sample: 0.0,
            });
        }
        let rate = match text.strip_suffix('%') {
            Some(percent) => percent.trim().parse::<f64>().ok()? / 100.0,
            None => text.parse::<f64>().ok()?,
        };
        (0.0..=1.0).contains(&rate).then_some(Self {
            off: false,
            sample: rate,
        })
    }

    /// Whether the log keeps `record`. Decided from the record's id, so a retried batch keeps
    /// the same records.
    pub fn keeps(&self, record: &UsageRecord) -> bool {
        if self.off {
            return false;
        }
        let success = (200..300).contains(&record.status_code) && record.error_code.is_none();
        if !success || self.sample >= 1.0 {
            return true;
        }
        // FNV-1a of the id (its ULID's random part makes it uniform).
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in record.id.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        ((hash >> 11) as f64 / (1_u64 << 53) as f64) < self.sample
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, at: i64, status: u16) -> UsageRecord {
        UsageRecord {
            id: id.into(),
            created_at: at,
            status_code: status,
            duration_ms: 42,
            request_bytes: 3,
            response_bytes: 5,
            user_id: Some("usr_a".into()),
            api_key_id: Some("key_a".into()),
            counted: status < 400,
            ..UsageRecord::default()
        }
    }

    #[test]
    fn a_flush_adds_up_per_minute_hour_and_subject() {
        let minute = 1_764_547_200_000; // 2025-12-01T00:00:00Z
        let records = vec![
            record("use_1", minute + 1, 200),
            record("use_2", minute + 59_999, 200),
            record("use_3", minute + 60_000, 200),
            record("use_4", minute + 2, 503),
        ];
        let agg = aggregate(&records);
        let minutes: Vec<_> = agg
            .rollups
            .iter()
            .filter(|(k, _)| k.span == Span::Minute)
            .collect();
        assert_eq!(minutes.len(), 3, "two minutes of 2xx, one of 5xx");
        assert_eq!(minutes[0].0.bucket, minute);
        assert_eq!(minutes[0].0.status_class, "2xx");
        assert_eq!(minutes[0].1.requests, 2);
        assert_eq!(minutes[0].1.duration_ms, 84);
        assert_eq!(minutes[0].1.latency[1], 2, "42 ms is in the ≤ 50 ms bucket");
        let hours: i64 = agg
            .rollups
            .iter()
            .filter(|(k, _)| k.span == Span::Hour)
            .map(|(_, c)| c.requests)
            .sum();
        assert_eq!(hours, 4);
        let errors: i64 = agg.rollups.iter().map(|(_, c)| c.errors).sum();
        assert_eq!(errors, 2, "the 503 in its minute and its hour");
        assert_eq!(
            agg.quotas,
            vec![QuotaCount {
                subject: "usr_a".into(),
                period_start: minute,
                counted: 3
            }]
        );
    }

    #[test]
    fn refusals_are_classed_by_their_code() {
        let mut refused = record("use_1", 0, 429);
        refused.error_code = Some("RATE_LIMITED");
        assert_eq!(status_class(&refused), "RATE_LIMITED");
        assert_eq!(status_class(&record("use_2", 0, 302)), "3xx");
    }

    #[test]
    fn a_batch_is_recognised_only_when_the_records_start_with_it() {
        let records: Vec<_> = (0..5)
            .map(|n| record(&format!("use_{n}"), 0, 200))
            .collect();
        let batch = BatchId::of(&records[..3]).unwrap();
        assert!(batch.is_prefix_of(&records));
        assert!(batch.is_prefix_of(&records[..3]));
        assert!(!batch.is_prefix_of(&records[..2]));
        assert!(!batch.is_prefix_of(&records[1..]));
    }

    #[test]
    fn sampling_keeps_refusals_and_about_the_rate_of_successes() {
        let policy = LogPolicy::parse("1%").unwrap();
        let kept = (0..100_000)
            .filter(|n| policy.keeps(&record(&format!("use_{}", ulid_like(*n)), 0, 200)))
            .count();
        assert!(
            (700..1_300).contains(&kept),
            "{kept} of 100,000 kept at 1 %"
        );
        assert!(policy.keeps(&record("use_x", 0, 500)));
        let mut refused = record("use_y", 0, 200);
        refused.error_code = Some("X");
        assert!(policy.keeps(&refused));
        assert!(
            !LogPolicy::parse("off")
                .unwrap()
                .keeps(&record("use_z", 0, 500))
        );
        assert_eq!(LogPolicy::parse("2"), None);
        assert_eq!(LogPolicy::parse("x"), None);
    }

    fn ulid_like(n: u64) -> String {
        format!("01JD{:022}", n.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }
}
