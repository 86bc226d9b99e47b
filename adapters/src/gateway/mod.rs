//! The proxy's runtime state: the configuration snapshot, rate-limit buckets, quota counters
//! and the metering channel. Everything a request touches is in memory; the database is read
//! only when the configuration changes or a quota subject is first seen.

pub mod health;
pub mod limiter;
pub mod metering;
pub mod reload;
pub mod upstream;

use std::{
    net::IpAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use arc_swap::ArcSwap;
use dashmap::DashMap;
use tokio::sync::{Notify, OnceCell, mpsc};
use tollgate_domain::{
    Timestamp,
    ports::{Clock, IdGenerator, Store, Vault},
    proxy::{
        config::ProxyConfig,
        limits::{QuotaDecision, QuotaPeriod, RateDecision, quota_decision},
        policy::{Caller, Refusal},
        usage::{QuotaMilestone, UsageLog, UsageRecord, counted_since, record_milestone},
    },
};

/// Settings of the proxy listener.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    pub max_body_bytes: u64,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Records waiting to be written; beyond it they are dropped and counted.
    pub usage_buffer: usize,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            max_body_bytes: 10 * 1024 * 1024,
            trusted_proxies: Vec::new(),
            usage_buffer: 100_000,
        }
    }
}

/// Which bucket a request draws from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BucketKey {
    Key(Arc<str>),
    KeyOnRoute(Arc<str>, Arc<str>),
    IpOnRoute(IpAddr, Arc<str>),
}

/// A subject's count for one period, loaded from the store once.
#[derive(Default)]
struct QuotaCounter {
    loaded: OnceCell<()>,
    used: AtomicU64,
    threshold_announced: AtomicBool,
    limit_announced: AtomicBool,
}

/// The quota outcome of an admitted request.
#[derive(Debug, Clone, Copy)]
pub struct QuotaState {
    pub limit: u64,
    /// Including this request.
    pub used: u64,
    pub period: QuotaPeriod,
    pub overage: bool,
}

pub struct Gateway {
    config: ArcSwap<ProxyConfig>,
    limiter: limiter::Limiter,
    quotas: DashMap<(String, i64), Arc<QuotaCounter>>,
    usage: mpsc::Sender<UsageRecord>,
    pub(crate) dropped: AtomicU64,
    loaded: AtomicBool,
    pub(crate) changed: Arc<Notify>,
    pub(crate) stop: Notify,
    pub store: Arc<dyn Store>,
    pub usage_log: Arc<dyn UsageLog>,
    pub vault: Arc<dyn Vault>,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdGenerator>,
    pub settings: GatewaySettings,
}

impl Gateway {
    /// The gateway and the receiving end of its metering channel (for [`metering::run`]).
    pub fn new(
        store: Arc<dyn Store>,
        usage_log: Arc<dyn UsageLog>,
        vault: Arc<dyn Vault>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
        limiter: limiter::Limiter,
        settings: GatewaySettings,
    ) -> (Arc<Self>, mpsc::Receiver<UsageRecord>) {
        let (usage, records) = mpsc::channel(settings.usage_buffer.max(1));
        let gateway = Arc::new(Self {
            config: ArcSwap::from_pointee(ProxyConfig::default()),
            limiter,
            quotas: DashMap::new(),
            usage,
            dropped: AtomicU64::new(0),
            loaded: AtomicBool::new(false),
            changed: Arc::new(Notify::new()),
            stop: Notify::new(),
            store,
            usage_log,
            vault,
            clock,
            ids,
            settings,
        });
        (gateway, records)
    }

    pub fn config(&self) -> arc_swap::Guard<Arc<ProxyConfig>> {
        self.config.load()
    }

    pub fn install(&self, config: ProxyConfig) {
        self.config.store(Arc::new(config));
        self.loaded.store(true, Ordering::Release);
    }

    /// Whether a configuration snapshot from the database has been installed (readiness).
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// Wakes the reloader when `signal` fires (the store's commit signal for change events).
    pub fn reload_on(&self, signal: Arc<Notify>) {
        let changed = self.changed.clone();
        tokio::spawn(async move {
            loop {
                signal.notified().await;
                changed.notify_one();
            }
        });
    }

    /// Tells the usage writer to flush what it holds and end (graceful shutdown).
    pub fn stop_metering(&self) {
        self.stop.notify_one();
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Takes a token; `limit` is requests per minute (> 0).
    pub async fn take_token(&self, key: &BucketKey, limit: u64, now: Timestamp) -> RateDecision {
        self.limiter.take(key, limit, now).await
    }

    /// Returns a token to a bucket (the request was refused after taking it).
    pub async fn give_back_token(&self, key: &BucketKey, limit: u64) {
        self.limiter.give_back(key, limit).await;
    }

    /// Counts the request against its subject's monthly quota, or refuses it.
    pub async fn count_quota(
        &self,
        caller: &Caller,
        now: Timestamp,
    ) -> Result<Option<QuotaState>, Refusal> {
        let limit = caller.plan.requests_per_month;
        if limit < 0 {
            return Ok(None);
        }
        let period = QuotaPeriod::containing(now);
        let counter = self
            .quotas
            .entry((caller.quota_subject.clone(), period.start.millis()))
            .or_default()
            .clone();
        counter
            .loaded
            .get_or_try_init(|| async {
                let used = counted_since(self.store.as_ref(), &caller.quota_subject, period.start)
                    .await
                    .map_err(|e| {
                        tracing::error!(error = %e, "cannot read quota usage");
                        Refusal::Internal
                    })?;
                counter.used.fetch_add(used, Ordering::SeqCst);
                Ok::<(), Refusal>(())
            })
            .await?;
        // Shared across nodes in Redis when configured, else this process's count.
        let ttl_ms = period.next.millis() - now.millis() + 86_400_000;
        let seed = counter.used.load(Ordering::SeqCst);
        let subject = &caller.quota_subject;
        let shared = self
            .limiter
            .count_quota(subject, period.start, ttl_ms, seed, 1, now)
            .await;
        let before = match shared {
            Some(before) => before,
            None => counter.used.fetch_add(1, Ordering::SeqCst),
        };
        let limit = limit as u64;
        let decision = quota_decision(limit as i64, before, caller.plan.overage_price);
        let milestone = |event_type| QuotaMilestone {
            event_type,
            subject: caller.quota_subject.clone(),
            period_start: period.start,
            used: before.min(limit) + u64::from(decision != QuotaDecision::Exceeded),
            limit,
        };
        // 80 % is reached by the request that makes `used` cross it.
        if limit > 0
            && (before + 1) * 5 >= limit * 4
            && !counter.threshold_announced.swap(true, Ordering::SeqCst)
        {
            self.announce(milestone("usage.threshold"), now);
        }
        if decision != QuotaDecision::Within
            && !counter.limit_announced.swap(true, Ordering::SeqCst)
        {
            self.announce(milestone("usage.limit"), now);
        }
        match decision {
            QuotaDecision::Exceeded => {
                if shared.is_some() {
                    self.limiter
                        .count_quota(subject, period.start, ttl_ms, seed, -1, now)
                        .await;
                } else {
                    counter.used.fetch_sub(1, Ordering::SeqCst);
                }
                Err(Refusal::QuotaExceeded {
                    retry_after: period.seconds_left(now).max(1),
                })
            }
            decision => Ok(Some(QuotaState {
                limit,
                used: before + 1,
                period,
                overage: decision == QuotaDecision::Overage,
            })),
        }
    }

    /// Writes a quota milestone event off the request path.
    fn announce(&self, milestone: QuotaMilestone, now: Timestamp) {
        let store = self.store.clone();
        let ids = self.ids.clone();
        tokio::spawn(async move {
            if let Err(e) = record_milestone(store.as_ref(), ids.as_ref(), now, &milestone).await {
                tracing::warn!(error = %e, event = milestone.event_type, "cannot record a usage event");
            }
        });
    }

    /// Hands a record to the writer; never waits. A full buffer drops the record.
    pub fn meter(&self, record: UsageRecord) {
        if self.usage.try_send(record).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("tollgate_usage_dropped_total").increment(1);
        }
    }

    /// Records dropped because the writer fell behind.
    pub fn dropped_records(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Forgets counters of past periods.
    pub fn forget_old_periods(&self, now: Timestamp) {
        let current = QuotaPeriod::containing(now).start.millis();
        self.quotas.retain(|(_, start), _| *start >= current);
        self.limiter.forget_full(now);
    }
}
