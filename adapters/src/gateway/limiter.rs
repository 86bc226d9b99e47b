//! Rate-limit buckets: in this process, or in Redis so every node draws from the same bucket
//! (proxy.md §4). The Redis script runs the domain's token-bucket refill on Redis's own clock,
//! so nodes with skewed clocks agree. If Redis is unreachable, the node falls back to its own
//! buckets rather than refusing traffic, and says so in the log.

use std::sync::atomic::{AtomicI64, Ordering};

use dashmap::DashMap;
use redis::{Script, aio::ConnectionManager};
use tollgate_domain::{
    Timestamp,
    proxy::limits::{Bucket, RateDecision},
};

use super::BucketKey;

/// `KEYS[1]` the bucket; `ARGV` limit, refund (1 = give a token back). Returns
/// `{allowed, tokens}` with tokens as text (Lua numbers would be truncated to integers).
const TOKEN_BUCKET: &str = r#"
local limit = tonumber(ARGV[1])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 't', 'u')
local tokens = tonumber(state[1])
local updated = tonumber(state[2])
if tokens == nil or updated == nil then
  tokens = limit
  updated = now
end
tokens = math.min(limit, tokens + math.max(0, now - updated) * limit / 60000)
if now > updated then updated = now end
local allowed = 0
if ARGV[2] == '1' then
  tokens = math.min(limit, tokens + 1)
elseif tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'u', tostring(updated))
redis.call('PEXPIRE', KEYS[1], 120000)
return {allowed, tostring(tokens)}
"#;

/// `KEYS[1]` the counter; `ARGV` the count already in the database (used when the counter
/// does not exist yet), its time to live (ms), and the increment (1 or -1). Returns the count
/// before the increment.
const QUOTA_COUNTER: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return redis.call('INCRBY', KEYS[1], ARGV[3]) - tonumber(ARGV[3])
"#;

/// Most buckets kept in this process. Public routes with a `rate_limit_override` get a bucket
/// per client IP, so without a bound a sender of many addresses (or a long-running node)
/// grows the map for ever. About 100 bytes a bucket: 100 000 buckets are ~10 MB.
pub const MAX_LOCAL_BUCKETS: usize = 100_000;

/// `KEYS[1]` the counter; `ARGV` a count it must reach at least, its time to live (ms).
/// Used when a node could not seed the counter from the database at first and has read the
/// database's count since.
const QUOTA_RAISE: &str = r#"
local current = tonumber(redis.call('GET', KEYS[1]) or '-1')
if current < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 1
"#;

pub struct Limiter {
    /// Each bucket with the limit it was last used with (to know when it is full again).
    local: DashMap<BucketKey, (Bucket, u64)>,
    capacity: usize,
    redis: Option<(ConnectionManager, Script)>,
    quota_script: Script,
    raise_script: Script,
    /// When the last Redis failure was logged (ms), so an outage logs once a minute.
    last_warning: AtomicI64,
}

impl BucketKey {
    fn redis_key(&self) -> String {
        match self {
            Self::Key(key) => format!("tollgate:rl:{key}"),
            Self::KeyOnRoute(key, route) => format!("tollgate:rl:{key}:{route}"),
            Self::IpOnRoute(ip, route) => format!("tollgate:rl:ip:{ip}:{route}"),
        }
    }
}

impl Limiter {
    pub fn local() -> Self {
        Self::local_with_capacity(MAX_LOCAL_BUCKETS)
    }

    /// Local buckets, at most about `capacity` of them.
    pub fn local_with_capacity(capacity: usize) -> Self {
        Self {
            local: DashMap::new(),
            capacity: capacity.max(1),
            redis: None,
            quota_script: Script::new(QUOTA_COUNTER),
            raise_script: Script::new(QUOTA_RAISE),
            last_warning: AtomicI64::new(0),
        }
    }

    /// Connects to Redis (`redis://host:port/db`).
    pub async fn redis(url: &str) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let manager = ConnectionManager::new(client).await?;
        Ok(Self {
            redis: Some((manager, Script::new(TOKEN_BUCKET))),
            ..Self::local()
        })
    }

    pub fn is_shared(&self) -> bool {
        self.redis.is_some()
    }

    pub async fn take(&self, key: &BucketKey, limit: u64, now: Timestamp) -> RateDecision {
        if let Some((manager, script)) = &self.redis {
            match Self::run(manager, script, key, limit, false).await {
                Ok(decision) => return decision,
                Err(error) => self.warn(&error, now),
            }
        }
        self.take_local(key, limit, now)
    }

    fn take_local(&self, key: &BucketKey, limit: u64, now: Timestamp) -> RateDecision {
        if let Some(mut entry) = self.local.get_mut(key) {
            entry.1 = limit;
            return entry.0.take(limit, now);
        }
        if self.local.len() >= self.capacity {
            self.evict(now);
        }
        let mut entry = self
            .local
            .entry(key.clone())
            .or_insert_with(|| (Bucket::full(limit, now), limit));
        entry.1 = limit;
        entry.0.take(limit, now)
    }

    /// Makes room: first forgets the buckets that are full again (forgetting them changes
    /// nothing: a new bucket starts full), then, if that is not enough, the ones that will be
    /// full soonest, down to 90 % of the capacity so the next sweep is far off (each sweep
    /// reads the whole map).
    fn evict(&self, now: Timestamp) {
        let before = self.local.len();
        self.local
            .retain(|_, (bucket, limit)| bucket.full_at_ms(*limit) > now.millis());
        let target = self.capacity - self.capacity / 10;
        let len = self.local.len();
        if len > target {
            let excess = len - target;
            let mut full_at: Vec<i64> = self
                .local
                .iter()
                .map(|entry| entry.0.full_at_ms(entry.1))
                .collect();
            let cutoff = if excess >= full_at.len() {
                i64::MAX
            } else {
                *full_at.select_nth_unstable(excess - 1).1
            };
            let mut left = excess;
            self.local.retain(|_, (bucket, limit)| {
                if left > 0 && bucket.full_at_ms(*limit) <= cutoff {
                    left -= 1;
                    false
                } else {
                    true
                }
            });
        }
        let evicted = before.saturating_sub(self.local.len());
        metrics::counter!("tollgate_rate_buckets_evicted_total").increment(evicted as u64);
    }

    /// Forgets every bucket that is full again (hourly, with the old quota periods).
    pub fn forget_full(&self, now: Timestamp) {
        self.local
            .retain(|_, (bucket, limit)| bucket.full_at_ms(*limit) > now.millis());
    }

    /// Buckets held in this process.
    pub fn local_buckets(&self) -> usize {
        self.local.len()
    }

    /// Gives back a token a later check refused.
    pub async fn give_back(&self, key: &BucketKey, limit: u64) {
        if let Some((manager, script)) = &self.redis
            && Self::run(manager, script, key, limit, true).await.is_ok()
        {
            return;
        }
        if let Some(mut entry) = self.local.get_mut(key) {
            entry.0.give_back(limit);
        }
    }

    async fn run(
        manager: &ConnectionManager,
        script: &Script,
        key: &BucketKey,
        limit: u64,
        refund: bool,
    ) -> Result<RateDecision, redis::RedisError> {
        let mut connection = manager.clone();
        let (allowed, tokens): (i64, String) = script
            .key(key.redis_key())
            .arg(limit)
            .arg(if refund { "1" } else { "0" })
            .invoke_async(&mut connection)
            .await?;
        let tokens = tokens.parse::<f64>().unwrap_or(0.0);
        Ok(RateDecision::after(limit, tokens, allowed == 1))
    }

    /// With Redis, counts one request against a subject's shared monthly counter (seeded from
    /// the database count `seed`) and returns the count before it; `None` without Redis (or
    /// when Redis fails), so the caller counts in this process.
    pub async fn count_quota(
        &self,
        subject: &str,
        period_start: Timestamp,
        ttl_ms: i64,
        seed: u64,
        delta: i64,
        now: Timestamp,
    ) -> Option<u64> {
        let (manager, _) = self.redis.as_ref()?;
        let mut connection = manager.clone();
        let result: Result<i64, _> = self
            .quota_script
            .key(format!(
                "tollgate:quota:{subject}:{}",
                period_start.millis()
            ))
            .arg(seed)
            .arg(ttl_ms.max(1))
            .arg(delta)
            .invoke_async(&mut connection)
            .await;
        match result {
            Ok(before) => Some(before.max(0) as u64),
            Err(error) => {
                self.warn(&error, now);
                None
            }
        }
    }

    /// With Redis, raises a subject's shared counter to at least `count` (no-op without).
    pub async fn raise_quota(
        &self,
        subject: &str,
        period_start: Timestamp,
        ttl_ms: i64,
        count: u64,
        now: Timestamp,
    ) {
        let Some((manager, _)) = self.redis.as_ref() else {
            return;
        };
        let mut connection = manager.clone();
        let result: Result<i64, _> = self
            .raise_script
            .key(format!(
                "tollgate:quota:{subject}:{}",
                period_start.millis()
            ))
            .arg(count)
            .arg(ttl_ms.max(1))
            .invoke_async(&mut connection)
            .await;
        if let Err(error) = result {
            self.warn(&error, now);
        }
    }

    fn warn(&self, error: &redis::RedisError, now: Timestamp) {
        let last = self.last_warning.load(Ordering::Relaxed);
        if now.millis() - last > 60_000 {
            self.last_warning.store(now.millis(), Ordering::Relaxed);
            tracing::warn!(%error, "Redis rate limiting unavailable: using this node's buckets");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;

    fn ip_bucket(n: u32) -> BucketKey {
        BucketKey::IpOnRoute(IpAddr::V4(Ipv4Addr::from(n)), "rte_1".into())
    }

    #[tokio::test]
    async fn many_client_ips_do_not_grow_the_map_without_bound() {
        let limiter = Limiter::local_with_capacity(1_000);
        let t0 = Timestamp::from_millis(10_000_000);
        // A limited key, emptied first: it must outlive the flood of one-request addresses.
        let key = BucketKey::Key("key_limited".into());
        assert!(limiter.take(&key, 1, t0).await.allowed);
        for n in 0..50_000_u32 {
            let now = Timestamp::from_millis(t0.millis() + i64::from(n / 100));
            let decision = limiter.take(&ip_bucket(n), 60, now).await;
            assert!(decision.allowed, "a new address starts with a full bucket");
            assert!(
                limiter.local_buckets() <= 1_000,
                "{}",
                limiter.local_buckets()
            );
        }
        let later = Timestamp::from_millis(t0.millis() + 1_000);
        assert!(
            !limiter.take(&key, 1, later).await.allowed,
            "the emptied bucket was kept: its limit still holds"
        );
    }

    #[tokio::test]
    async fn buckets_full_again_are_forgotten_first() {
        let limiter = Limiter::local_with_capacity(10);
        let t0 = Timestamp::from_millis(0);
        for n in 0..10 {
            limiter.take(&ip_bucket(n), 60, t0).await;
        }
        // A minute later all ten have refilled: the eleventh address makes them go.
        limiter
            .take(&ip_bucket(99), 60, Timestamp::from_millis(61_000))
            .await;
        assert_eq!(limiter.local_buckets(), 1);
    }
}
