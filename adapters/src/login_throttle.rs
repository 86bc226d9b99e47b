//! The login throttle in Redis (`TOLLGATE_REDIS_URL`), so every node counts the same failures
//! (auth.md §8). Same rules as [`MemoryThrottle`]: each step is one Lua script (atomic on the
//! Redis server, on Redis's own clock). If Redis fails, this node falls back to its own
//! counters and says so in the log, like the rate limiter.

use std::sync::atomic::{AtomicI64, Ordering};

use async_trait::async_trait;
use redis::{Script, aio::ConnectionManager};
use tollgate_domain::{Timestamp, ports::LoginThrottle};

use crate::security::{EMAIL_LIMIT, IP_LIMIT, MemoryThrottle, WINDOW_MS};

/// A reservation nobody settled within this long (its node died) stops holding a place.
const STALE_PENDING_MS: i64 = 60_000;

/// `KEYS` email and ip counters; `ARGV` their limits, the window, the staleness of pending
/// attempts (ms). Hash fields: `f` failures, `p` pending, `w` window start, `l` locked until,
/// `u` when `p` last grew. Returns 0 (reserved), -1 (budget taken by attempts in flight) or
/// the milliseconds left of a lock.
const RESERVE: &str = r#"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local window = tonumber(ARGV[3])
local stale = tonumber(ARGV[4])
local states = {}
local busy = false
for i = 1, 2 do
  local s = redis.call('HMGET', KEYS[i], 'f', 'p', 'w', 'l', 'u')
  local f = tonumber(s[1]) or 0
  local p = tonumber(s[2]) or 0
  local w = tonumber(s[3]) or now
  local l = tonumber(s[4]) or 0
  local u = tonumber(s[5]) or now
  if l > now then return l - now end
  if w + window <= now then f = 0; w = now end
  if u + stale <= now then p = 0 end
  if f + p >= tonumber(ARGV[i]) then busy = true end
  states[i] = {f, p, w, l}
end
if busy then return -1 end
for i = 1, 2 do
  local s = states[i]
  redis.call('HSET', KEYS[i], 'f', s[1], 'p', s[2] + 1, 'w', s[3], 'l', s[4], 'u', now)
  redis.call('PEXPIRE', KEYS[i], 2 * window)
end
return 0
"#;

/// `KEYS` email and ip counters; `ARGV` the outcome (`failed`, `succeeded`, `release`), the
/// two limits, the window (ms).
const SETTLE: &str = r#"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local window = tonumber(ARGV[4])
for i = 1, 2 do
  local s = redis.call('HMGET', KEYS[i], 'f', 'p', 'w', 'l')
  local f = tonumber(s[1]) or 0
  local p = tonumber(s[2]) or 0
  local w = tonumber(s[3]) or now
  local l = tonumber(s[4]) or 0
  if p > 0 then p = p - 1 end
  if w + window <= now then f = 0; w = now end
  if ARGV[1] == 'failed' then
    f = f + 1
    if f >= tonumber(ARGV[i + 1]) then l = now + window end
  elseif ARGV[1] == 'succeeded' and i == 1 then
    f = 0
    l = 0
  end
  redis.call('HSET', KEYS[i], 'f', f, 'p', p, 'w', w, 'l', l)
  redis.call('PEXPIRE', KEYS[i], 2 * window)
end
return 0
"#;

pub struct RedisThrottle {
    manager: ConnectionManager,
    reserve: Script,
    settle: Script,
    /// Used while Redis fails.
    local: MemoryThrottle,
    /// When the last Redis failure was logged (ms), so an outage logs once a minute.
    last_warning: AtomicI64,
}

fn keys(email: &str, ip: &str) -> [String; 2] {
    [
        format!("tollgate:login:email:{email}"),
        format!("tollgate:login:ip:{ip}"),
    ]
}

impl RedisThrottle {
    /// Connects to Redis (`redis://host:port/db`).
    pub async fn connect(url: &str) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let manager = ConnectionManager::new(client).await?;
        Ok(Self {
            manager,
            reserve: Script::new(RESERVE),
            settle: Script::new(SETTLE),
            local: MemoryThrottle::default(),
            last_warning: AtomicI64::new(0),
        })
    }

    fn warn(&self, error: &redis::RedisError) {
        let now = Timestamp::now().millis();
        let last = self.last_warning.load(Ordering::Relaxed);
        if now - last > 60_000 {
            self.last_warning.store(now, Ordering::Relaxed);
            tracing::warn!(%error, "Redis login throttle unavailable: using this node's counters");
        }
    }

    async fn settle(&self, email: &str, ip: &str, outcome: &str) -> bool {
        let [email_key, ip_key] = keys(email, ip);
        let mut connection = self.manager.clone();
        let result: Result<i64, _> = self
            .settle
            .key(email_key)
            .key(ip_key)
            .arg(outcome)
            .arg(EMAIL_LIMIT)
            .arg(IP_LIMIT)
            .arg(WINDOW_MS)
            .invoke_async(&mut connection)
            .await;
        match result {
            Ok(_) => true,
            Err(error) => {
                self.warn(&error);
                false
            }
        }
    }
}

#[async_trait]
impl LoginThrottle for RedisThrottle {
    async fn reserve(&self, email: &str, ip: &str) -> Result<(), u64> {
        let [email_key, ip_key] = keys(email, ip);
        let mut connection = self.manager.clone();
        let result: Result<i64, _> = self
            .reserve
            .key(email_key)
            .key(ip_key)
            .arg(EMAIL_LIMIT)
            .arg(IP_LIMIT)
            .arg(WINDOW_MS)
            .arg(STALE_PENDING_MS)
            .invoke_async(&mut connection)
            .await;
        match result {
            Ok(0) => Ok(()),
            Ok(left) if left > 0 => Err((left as u64).div_ceil(1000)),
            Ok(_) => Err(1),
            Err(error) => {
                self.warn(&error);
                self.local.reserve(email, ip).await
            }
        }
    }

    async fn failed(&self, email: &str, ip: &str) {
        if !self.settle(email, ip, "failed").await {
            self.local.failed(email, ip).await;
        }
    }

    async fn succeeded(&self, email: &str, ip: &str) {
        if !self.settle(email, ip, "succeeded").await {
            self.local.succeeded(email, ip).await;
        }
    }

    async fn release(&self, email: &str, ip: &str) {
        if !self.settle(email, ip, "release").await {
            self.local.release(email, ip).await;
        }
    }
}
