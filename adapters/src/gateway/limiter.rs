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

pub struct Limiter {
    local: DashMap<BucketKey, Bucket>,
    redis: Option<(ConnectionManager, Script)>,
    quota_script: Script,
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
        Self {
            local: DashMap::new(),
            redis: None,
            quota_script: Script::new(QUOTA_COUNTER),
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
        self.local
            .entry(key.clone())
            .or_insert_with(|| Bucket::full(limit, now))
            .take(limit, now)
    }

    /// Gives back a token a later check refused.
    pub async fn give_back(&self, key: &BucketKey, limit: u64) {
        if let Some((manager, script)) = &self.redis
            && Self::run(manager, script, key, limit, true).await.is_ok()
        {
            return;
        }
        if let Some(mut bucket) = self.local.get_mut(key) {
            bucket.give_back(limit);
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

    fn warn(&self, error: &redis::RedisError, now: Timestamp) {
        let last = self.last_warning.load(Ordering::Relaxed);
        if now.millis() - last > 60_000 {
            self.last_warning.store(now.millis(), Ordering::Relaxed);
            tracing::warn!(%error, "Redis rate limiting unavailable: using this node's buckets");
        }
    }
}
