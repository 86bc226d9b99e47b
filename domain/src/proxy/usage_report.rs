//! Reading usage: the summary (`GET /api/usage/summary`), the time series
//! (`GET /api/usage/series`) and the billing export, all answered from the rollups. The rules
//! live here (which periods, intervals, groupings and filters, what a `user` may see); the
//! handlers only parse the query, call one of these and render.

use super::{
    limits::QuotaPeriod,
    rollups::Span,
    usage::{SeriesRow, UsageGroup, UsageLog, UsageTotals},
};
use crate::{
    Actor, Timestamp, error::StoreError, query::Cond, resources::usage_records,
    service::ResourceRules,
};

/// Filters the summary and the series accept besides `filter[period]` / `filter[interval]`.
pub const FILTERS: [&str; 4] = ["user", "api_key", "route", "group"];
pub const PERIODS: [&str; 5] = ["1h", "24h", "7d", "30d", "month"];
pub const INTERVALS: [&str; 3] = ["1m", "1h", "1d"];
pub const GROUP_BY: [&str; 5] = ["key", "user", "route", "group", "status"];
/// Most buckets a series answers with.
pub const MAX_POINTS: i64 = 1_500;
/// Most groups of a summary, and of a grouped series.
pub const MAX_GROUPS: u64 = 100;
pub const MAX_SERIES: u64 = 20;

/// The query of a summary or a series, as received (names without `filter[…]`).
#[derive(Debug, Clone, Default)]
pub struct UsageParams {
    pub period: Option<String>,
    pub interval: Option<String>,
    pub group_by: Option<String>,
    /// (`user`, `usr_1,usr_2`) …
    pub filters: Vec<(String, String)>,
}

/// Why a query is refused; `parameter` names the query parameter.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{detail}")]
    InvalidFilter { parameter: String, detail: String },
    #[error("{detail}")]
    InvalidParameter { parameter: String, detail: String },
    /// The actor may not read this at all.
    #[error("{0}")]
    Forbidden(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid_filter(parameter: &str, detail: impl Into<String>) -> ReportError {
    ReportError::InvalidFilter {
        parameter: parameter.to_owned(),
        detail: detail.into(),
    }
}

/// `group_by` → (the rollup column, the JSON:API type of its ids).
pub fn group_column(group_by: &str) -> Option<(&'static str, &'static str)> {
    match group_by {
        "key" => Some(("api_key_id", "api_keys")),
        "user" => Some(("user_id", "users")),
        "route" => Some(("route_id", "routes")),
        "group" => Some(("group_id", "groups")),
        "status" => Some(("status_class", "status_classes")),
        _ => None,
    }
}

/// `filter[period]`: rolling windows ending now, or `month` (the quota period).
pub fn period_start(period: &str, now: Timestamp) -> Option<Timestamp> {
    match period {
        "1h" => Some(now.plus_seconds(-3_600)),
        "24h" => Some(now.plus_seconds(-86_400)),
        "7d" => Some(now.plus_seconds(-7 * 86_400)),
        "30d" => Some(now.plus_seconds(-30 * 86_400)),
        "month" => Some(QuotaPeriod::containing(now).start),
        _ => None,
    }
}

fn interval_ms(interval: &str) -> Option<i64> {
    match interval {
        "1m" => Some(60_000),
        "1h" => Some(3_600_000),
        "1d" => Some(86_400_000),
        _ => None,
    }
}

/// The rows a query reads: minute rows for short windows and 1-minute buckets, hour rows
/// otherwise (a month is 720 of them per key and route).
fn span_for(period: &str, interval: Option<i64>) -> Span {
    match interval {
        Some(ms) if ms < 3_600_000 => Span::Minute,
        Some(_) => Span::Hour,
        None if matches!(period, "1h" | "24h") => Span::Minute,
        None => Span::Hour,
    }
}

/// The filters as a condition on rollup columns, narrowed to what `actor` may see.
fn condition(
    actor: &Actor,
    filters: &[(String, String)],
    now: Timestamp,
) -> Result<Cond, ReportError> {
    let schema = usage_records::UsageRecords.schema();
    let mut cond = usage_records::UsageRecords.visibility(actor);
    for (name, value) in filters {
        let parameter = format!("filter[{name}]");
        if !FILTERS.contains(&name.as_str()) {
            return Err(invalid_filter(
                &parameter,
                format!("usage filters by period, {}", FILTERS.join(", ")),
            ));
        }
        let values: Vec<String> = value.split(',').map(str::to_owned).collect();
        let filtered = schema
            .filter(name, &values, now)
            .map_err(|detail| invalid_filter(&parameter, detail))?;
        cond = cond.and(filtered);
    }
    Ok(on_rollups(cond))
}

/// The request log's conditions as rollup conditions: an absent relationship is '' there,
/// and a condition on a column rollups lack (`id IS NULL`, the "sees nothing" of an actor
/// without a user) matches no row.
fn on_rollups(cond: Cond) -> Cond {
    const SUBJECTS: [&str; 4] = ["api_key_id", "user_id", "group_id", "route_id"];
    match cond {
        Cond::IsNull(column) if SUBJECTS.contains(&column.as_str()) => Cond::eq(&column, ""),
        Cond::IsNull(_) => Cond::is_null("bucket"),
        Cond::NotNull(column) if SUBJECTS.contains(&column.as_str()) => {
            Cond::Not(Box::new(Cond::eq(&column, "")))
        }
        Cond::All(items) => Cond::All(items.into_iter().map(on_rollups).collect()),
        Cond::Any(items) => Cond::Any(items.into_iter().map(on_rollups).collect()),
        Cond::Not(inner) => Cond::Not(Box::new(on_rollups(*inner))),
        other => other,
    }
}

fn group_of(params: &UsageParams) -> Result<Option<(&'static str, &'static str)>, ReportError> {
    match params.group_by.as_deref() {
        None => Ok(None),
        Some(g) => group_column(g)
            .map(Some)
            .ok_or_else(|| ReportError::InvalidParameter {
                parameter: "group_by".into(),
                detail: format!("group_by is one of {}", GROUP_BY.join(", ")),
            }),
    }
}

fn period_of(params: &UsageParams, now: Timestamp) -> Result<(String, Timestamp), ReportError> {
    let period = params.period.clone().unwrap_or_else(|| "24h".to_owned());
    let from = period_start(&period, now).ok_or_else(|| {
        invalid_filter(
            "filter[period]",
            format!("period is one of {}", PERIODS.join(", ")),
        )
    })?;
    Ok((period, from))
}

/// A group's id as the API shows it: null for anonymous traffic (stored as '').
fn shown(key: Option<String>) -> Option<String> {
    key.filter(|k| !k.is_empty())
}

#[derive(Debug, Clone)]
pub struct Summary {
    pub period: String,
    pub from: Timestamp,
    pub to: Timestamp,
    /// (`group_by` as asked, the JSON:API type of the group ids).
    pub group_by: Option<(String, &'static str)>,
    pub totals: UsageTotals,
    pub groups: Vec<UsageGroup>,
}

/// `GET /api/usage/summary`: totals over the period (from the start of its first minute, or
/// hour for periods read from hour rows), grouped when asked.
pub async fn summary(
    log: &dyn UsageLog,
    actor: &Actor,
    now: Timestamp,
    params: &UsageParams,
) -> Result<Summary, ReportError> {
    let (period, from) = period_of(params, now)?;
    let grouping = group_of(params)?;
    let cond = condition(actor, &params.filters, now)?;
    let span = span_for(&period, None);
    let start = Timestamp::from_millis(span.floor(from.millis()));
    let end = Timestamp::from_millis(now.millis() + 1);
    let (totals, groups) = log
        .rollup_totals(
            span,
            (start, end),
            &cond,
            grouping.map(|(c, _)| c),
            MAX_GROUPS,
        )
        .await?;
    Ok(Summary {
        period,
        from: start,
        to: now,
        group_by: params
            .group_by
            .clone()
            .zip(grouping.map(|(_, type_name)| type_name)),
        totals,
        groups: groups
            .into_iter()
            .map(|g| UsageGroup {
                key: shown(g.key),
                totals: g.totals,
            })
            .collect(),
    })
}

/// One bucket of a series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Point {
    pub at: Timestamp,
    pub totals: UsageTotals,
}

#[derive(Debug, Clone)]
pub struct Series {
    pub period: String,
    pub interval: String,
    pub from: Timestamp,
    pub to: Timestamp,
    pub points: Vec<Point>,
    /// (`group_by` as asked, the JSON:API type of the group ids).
    pub group_by: Option<(String, &'static str)>,
    /// The largest groups by requests, each with every bucket.
    pub series: Vec<(Option<String>, Vec<Point>)>,
}

/// `GET /api/usage/series`: every bucket from the one holding the period's start to the one
/// holding now, oldest first, empty ones as zeros.
pub async fn series(
    log: &dyn UsageLog,
    actor: &Actor,
    now: Timestamp,
    params: &UsageParams,
) -> Result<Series, ReportError> {
    let (period, from) = period_of(params, now)?;
    let interval = params.interval.clone().unwrap_or_else(|| {
        match period.as_str() {
            "1h" => "1m",
            "24h" | "7d" => "1h",
            _ => "1d",
        }
        .to_owned()
    });
    let step = interval_ms(&interval).ok_or_else(|| {
        invalid_filter(
            "filter[interval]",
            format!("interval is one of {}", INTERVALS.join(", ")),
        )
    })?;
    let first = from.millis() - from.millis().rem_euclid(step);
    let last = now.millis() - now.millis().rem_euclid(step);
    let buckets = (last - first) / step + 1;
    if buckets > MAX_POINTS {
        return Err(invalid_filter(
            "filter[interval]",
            format!(
                "{period} at {interval} is {buckets} buckets, more than {MAX_POINTS}: choose a longer interval"
            ),
        ));
    }
    let grouping = group_of(params)?;
    let cond = condition(actor, &params.filters, now)?;
    let span = span_for(&period, Some(step));
    let range = (
        Timestamp::from_millis(first),
        Timestamp::from_millis(last + step),
    );
    let fill = |rows: &mut dyn Iterator<Item = &SeriesRow>| -> Vec<Point> {
        let mut points: Vec<Point> = (0..buckets)
            .map(|n| Point {
                at: Timestamp::from_millis(first + n * step),
                totals: UsageTotals::default(),
            })
            .collect();
        for row in rows {
            let slot = (row.at - first) / step;
            if let Some(point) = usize::try_from(slot).ok().and_then(|s| points.get_mut(s)) {
                point.totals = row.totals.clone();
            }
        }
        points
    };
    let overall = log.rollup_series(span, range, &cond, step, None).await?;
    let points = fill(&mut overall.iter());
    let mut series = Vec::new();
    if let Some((column, _)) = grouping {
        let (_, top) = log
            .rollup_totals(span, range, &cond, Some(column), MAX_SERIES)
            .await?;
        let keys: Vec<String> = top.iter().filter_map(|g| g.key.clone()).collect();
        let rows = if keys.is_empty() {
            Vec::new()
        } else {
            let only = Cond::is_in(column, keys.iter().map(|k| k.clone().into()).collect());
            log.rollup_series(span, range, &cond.clone().and(only), step, Some(column))
                .await?
        };
        for key in keys {
            let mut mine = rows
                .iter()
                .filter(|r| r.key.as_deref() == Some(key.as_str()));
            series.push((shown(Some(key.clone())), fill(&mut mine)));
        }
    }
    Ok(Series {
        period,
        interval,
        from: range.0,
        to: now,
        points,
        group_by: params
            .group_by
            .clone()
            .zip(grouping.map(|(_, type_name)| type_name)),
        series,
    })
}

/// One line of the billing export: a key's traffic in the month, with its owner and group.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExportLine {
    pub month: String,
    /// Who the requests are billed to: the group for group keys, else the user.
    pub subject_type: &'static str,
    pub subject_id: Option<String>,
    pub api_key_id: Option<String>,
    pub user_id: Option<String>,
    pub group_id: Option<String>,
    pub requests: i64,
    /// Requests counted toward the quota (overage included).
    pub counted: i64,
    /// Of those, requests beyond the quota (billed at the plan's overage price).
    pub overage: i64,
    pub errors: i64,
    pub request_bytes: i64,
    pub response_bytes: i64,
}

/// The export's columns, in [`ExportLine`] order (CSV header and JSON member names).
pub const EXPORT_COLUMNS: [&str; 12] = [
    "month",
    "subject_type",
    "subject_id",
    "api_key_id",
    "user_id",
    "group_id",
    "requests",
    "counted",
    "overage",
    "errors",
    "request_bytes",
    "response_bytes",
];

/// `2026-11` → the month's bounds (UTC).
pub fn month_bounds(month: &str) -> Option<(Timestamp, Timestamp)> {
    let (year, number) = month.split_once('-')?;
    if year.len() != 4 || number.len() != 2 {
        return None;
    }
    let year: i32 = year.parse().ok()?;
    let number: u8 = number.parse().ok()?;
    let month = time::Month::try_from(number).ok()?;
    let date = time::Date::from_calendar_date(year, month, 1).ok()?;
    let start = Timestamp::from_datetime(date.midnight().assume_utc());
    Some((start, QuotaPeriod::containing(start).next))
}

/// The billing export of `month` (`YYYY-MM`): one line per key (and per user and group, for
/// traffic without a key), from the hour rollups. Only administrators export.
pub async fn export(
    log: &dyn UsageLog,
    actor: &Actor,
    month: &str,
) -> Result<Vec<ExportLine>, ReportError> {
    if !actor.is_admin() {
        return Err(ReportError::Forbidden(
            "the billing export is for administrators",
        ));
    }
    let (from, to) = month_bounds(month)
        .ok_or_else(|| invalid_filter("filter[month]", "month is YYYY-MM, for example 2026-11"))?;
    let rows = log.rollup_export((from, to)).await?;
    Ok(rows
        .into_iter()
        .map(|(api_key_id, user_id, group_id, t)| {
            let (subject_type, subject_id) = match (&group_id, &user_id) {
                (Some(g), _) => ("groups", Some(g.clone())),
                (None, Some(u)) => ("users", Some(u.clone())),
                (None, None) => ("anonymous", None),
            };
            ExportLine {
                month: month.to_owned(),
                subject_type,
                subject_id,
                api_key_id,
                user_id,
                group_id,
                requests: t.requests,
                counted: t.counted,
                overage: t.overage,
                errors: t.errors,
                request_bytes: t.request_bytes,
                response_bytes: t.response_bytes,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_calendar_months() {
        let (from, to) = month_bounds("2026-11").unwrap();
        assert_eq!(from.to_string(), "2026-11-01T00:00:00.000Z");
        assert_eq!(to.to_string(), "2026-12-01T00:00:00.000Z");
        let (_, to) = month_bounds("2026-12").unwrap();
        assert_eq!(to.to_string(), "2027-01-01T00:00:00.000Z");
        for bad in ["2026-13", "2026-1", "26-11", "2026/11", ""] {
            assert_eq!(month_bounds(bad), None, "{bad}");
        }
    }

    #[test]
    fn absent_relationships_are_empty_on_rollups() {
        let cond = on_rollups(Cond::is_null("user_id").and(Cond::is_null("id")));
        assert_eq!(cond, Cond::eq("user_id", "").and(Cond::is_null("bucket")));
    }
}
