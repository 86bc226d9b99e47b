//! Rate limit and monthly quota arithmetic (proxy.md §4–5). Pure: the adapters keep the state
//! (one bucket per key in memory, or the same arithmetic as a Redis script).

use time::{Date, Month, OffsetDateTime, Time, UtcOffset};

use crate::Timestamp;

/// A token bucket: capacity `limit`, refilled at `limit / 60` tokens per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    tokens: f64,
    updated_ms: i64,
}

/// What one request got from its bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    pub allowed: bool,
    pub limit: u64,
    /// Whole tokens left after this request.
    pub remaining: u64,
    /// Seconds until the bucket is full again.
    pub reset_seconds: u64,
    /// Seconds until one token exists (only meaningful when refused), ≥ 1.
    pub retry_after: u64,
}

impl Bucket {
    /// A new bucket starts full.
    pub fn full(limit: u64, now: Timestamp) -> Self {
        Self {
            tokens: limit as f64,
            updated_ms: now.millis(),
        }
    }

    /// Refills, then takes one token if there is one. A refusal takes nothing.
    pub fn take(&mut self, limit: u64, now: Timestamp) -> RateDecision {
        let capacity = limit as f64;
        let per_ms = capacity / 60_000.0;
        let elapsed = (now.millis() - self.updated_ms).max(0) as f64;
        self.tokens = (self.tokens + elapsed * per_ms).min(capacity);
        self.updated_ms = now.millis().max(self.updated_ms);
        let allowed = self.tokens >= 1.0;
        if allowed {
            self.tokens -= 1.0;
        }
        RateDecision::after(limit, self.tokens, allowed)
    }
}

impl RateDecision {
    /// The decision once the bucket holds `tokens` (after taking one, if `allowed`); shared by
    /// the in-memory bucket and the Redis script, which runs the same refill arithmetic.
    pub fn after(limit: u64, tokens: f64, allowed: bool) -> Self {
        let per_second = limit as f64 / 60.0;
        let seconds_for = |missing: f64| (missing / per_second).ceil().max(0.0) as u64;
        Self {
            allowed,
            limit,
            remaining: tokens.floor().max(0.0) as u64,
            reset_seconds: seconds_for(limit as f64 - tokens),
            retry_after: seconds_for(1.0 - tokens).max(1),
        }
    }
}

impl Bucket {
    /// Returns a token taken by a request that was refused later (quota), so a refusal never
    /// costs a token.
    pub fn give_back(&mut self, limit: u64) {
        self.tokens = (self.tokens + 1.0).min(limit as f64);
    }

    /// When (ms) the bucket is full again if nothing takes from it. From then on it is the same
    /// as a new bucket, so a store of buckets may forget it (and should forget the ones full
    /// soonest first: they are the least limited).
    pub fn full_at_ms(&self, limit: u64) -> i64 {
        if limit == 0 {
            return self.updated_ms;
        }
        let missing = (limit as f64 - self.tokens).max(0.0);
        let per_ms = limit as f64 / 60_000.0;
        self.updated_ms + (missing / per_ms).ceil() as i64
    }
}

/// The quota period holding `now`: the calendar month in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaPeriod {
    pub start: Timestamp,
    pub next: Timestamp,
}

impl QuotaPeriod {
    pub fn containing(now: Timestamp) -> Self {
        let at = now.to_datetime();
        let first = |year: i32, month: Month| {
            let date = Date::from_calendar_date(year, month, 1).unwrap_or(Date::MIN);
            Timestamp::from_datetime(OffsetDateTime::new_in_offset(
                date,
                Time::MIDNIGHT,
                UtcOffset::UTC,
            ))
        };
        let (next_year, next_month) = match at.month() {
            Month::December => (at.year() + 1, Month::January),
            month => (at.year(), month.next()),
        };
        Self {
            start: first(at.year(), at.month()),
            next: first(next_year, next_month),
        }
    }

    /// Seconds from `now` to the next period, rounded up.
    pub fn seconds_left(&self, now: Timestamp) -> u64 {
        ((self.next.millis() - now.millis()).max(0) as u64).div_ceil(1000)
    }
}

/// What the quota says about a request that would be the `used + 1`-th of the period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaDecision {
    /// Within the plan (or unlimited).
    Within,
    /// Beyond the plan, but the plan bills overage.
    Overage,
    Exceeded,
}

/// `limit` < 0 is unlimited; `0` blocks everything, overage or not.
pub fn quota_decision(limit: i64, used_before: u64, overage_price: i64) -> QuotaDecision {
    if limit < 0 || used_before < limit as u64 {
        QuotaDecision::Within
    } else if overage_price > 0 && limit > 0 {
        QuotaDecision::Overage
    } else {
        QuotaDecision::Exceeded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_admits_exactly_its_capacity_then_refills() {
        let t0 = Timestamp::from_millis(1_000_000);
        let mut bucket = Bucket::full(3, t0);
        for left in [2, 1, 0] {
            let d = bucket.take(3, t0);
            assert!(d.allowed);
            assert_eq!(d.remaining, left);
        }
        let refused = bucket.take(3, t0);
        assert!(!refused.allowed);
        assert_eq!(refused.remaining, 0);
        // 3 per minute = one token every 20 s.
        assert_eq!(refused.retry_after, 20);
        assert_eq!(refused.reset_seconds, 60);
        let later = bucket.take(3, Timestamp::from_millis(1_020_000));
        assert!(later.allowed);
        assert!(!bucket.take(3, Timestamp::from_millis(1_020_000)).allowed);
    }

    #[test]
    fn a_bucket_is_full_again_after_its_refill_time() {
        let t0 = Timestamp::from_millis(1_000_000);
        let mut bucket = Bucket::full(60, t0);
        assert_eq!(bucket.full_at_ms(60), t0.millis());
        bucket.take(60, t0);
        // 60 per minute: one token a second.
        assert_eq!(bucket.full_at_ms(60), t0.millis() + 1_000);
        let mut empty = Bucket::full(1, t0);
        empty.take(1, t0);
        assert_eq!(empty.full_at_ms(1), t0.millis() + 60_000);
    }

    #[test]
    fn refusals_take_nothing() {
        let t0 = Timestamp::from_millis(0);
        let mut bucket = Bucket::full(1, t0);
        assert!(bucket.take(1, t0).allowed);
        for _ in 0..5 {
            assert!(!bucket.take(1, Timestamp::from_millis(30_000)).allowed);
        }
        assert!(bucket.take(1, Timestamp::from_millis(60_000)).allowed);
    }

    #[test]
    fn quota_period_is_the_utc_calendar_month() {
        let now = Timestamp::parse_rfc3339("2026-12-31T23:59:59.500Z").unwrap();
        let period = QuotaPeriod::containing(now);
        assert_eq!(period.start.to_string(), "2026-12-01T00:00:00.000Z");
        assert_eq!(period.next.to_string(), "2027-01-01T00:00:00.000Z");
        assert_eq!(period.seconds_left(now), 1);
    }

    #[test]
    fn quota_decisions() {
        assert_eq!(quota_decision(-1, 10_000, 0), QuotaDecision::Within);
        assert_eq!(quota_decision(2, 1, 0), QuotaDecision::Within);
        assert_eq!(quota_decision(2, 2, 0), QuotaDecision::Exceeded);
        assert_eq!(quota_decision(2, 2, 5), QuotaDecision::Overage);
        assert_eq!(quota_decision(0, 0, 0), QuotaDecision::Exceeded);
        assert_eq!(quota_decision(0, 0, 5), QuotaDecision::Exceeded);
    }
}
