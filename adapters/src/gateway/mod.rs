//! The proxy's runtime state: the configuration snapshot, rate-limit buckets, quota counters
//! and the metering channel. Everything a request touches is in memory; the database is read
//! only when the configuration changes or a quota subject is first seen.

pub mod access_log;
pub mod health;
pub mod limiter;
pub mod metering;
pub mod reload;
pub mod upstream;
pub mod usage_lines;

use std::{
    net::IpAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering},
    },
    time::Duration,
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
    /// The proxy's access log (`TOLLGATE_ACCESS_LOG`).
    pub access_log: access_log::AccessLogFormat,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            max_body_bytes: 10 * 1024 * 1024,
            trusted_proxies: Vec::new(),
            usage_buffer: 100_000,
            access_log: access_log::AccessLogFormat::default(),
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

/// A subject's count for one period, seeded from the usage log on first use and reconciled
/// with it afterwards (see [`Gateway::reconcile_quotas`]).
#[derive(Default)]
struct QuotaCounter {
    /// Set once the first seed attempt is over, whether it worked or not.
    loaded: OnceCell<()>,
    /// Whether `used` includes the usage log's count; false while the database could not be
    /// read, the node then counts from 0 until a reconciliation adds the log's count.
    seeded: AtomicBool,
    used: AtomicU64,
    /// Requests this node counted in the period, and how many of their records the usage
    /// writer has stored: the difference is what the usage log cannot show yet.
    local: AtomicU64,
    written: AtomicU64,
    /// When this node last counted a request against it (ms).
    last_used_ms: AtomicI64,
    threshold_announced: AtomicBool,
    limit_announced: AtomicBool,
}

impl QuotaCounter {
    fn unwritten(&self) -> u64 {
        self.local
            .load(Ordering::SeqCst)
            .saturating_sub(self.written.load(Ordering::SeqCst))
    }
}

/// How long the first count of a subject may wait for the database before the node counts
/// from 0 (the request must not wait for the pool's 10 s acquire timeout).
const SEED_TIMEOUT: Duration = Duration::from_secs(2);
/// How often counters are reconciled with the usage log: unseeded ones every round, counters
/// in use (without Redis) every [`ACTIVE_RECONCILE_ROUNDS`] rounds.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(1);
const ACTIVE_RECONCILE_ROUNDS: u64 = 2;
/// A counter not used for this long is not reconciled (the next request is, at most a round
/// late).
const ACTIVE_FOR_MS: i64 = 60_000;
/// Most counts read per round, so a node with many active subjects spreads the reads.
const RECONCILE_PER_ROUND: usize = 500;

/// Records a worker collects before it hands them to the usage writer in one message: a
/// channel send per request (an atomic slot claim and a cross-thread cache line) showed in
/// profiles; per batch it is noise.
pub const METER_BATCH: usize = 256;

thread_local! {
    static METER_BUFFER: std::cell::RefCell<Vec<UsageRecord>> = const { std::cell::RefCell::new(Vec::new()) };
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
    /// Keyed by subjects of the configuration (users, groups), never by request input, so
    /// the faster hasher is safe here (unlike the limiter's buckets, keyed by client address).
    quotas: DashMap<(String, i64), Arc<QuotaCounter>, foldhash::fast::RandomState>,
    usage: mpsc::Sender<Vec<UsageRecord>>,
    pub(crate) dropped: AtomicU64,
    /// Odd while the usage writer is appending: a count read from the log then cannot be
    /// split into "stored" and "not yet stored" (see [`Gateway::reconcile_quotas`]).
    pub(crate) write_generation: AtomicU64,
    reconcile_round: AtomicU64,
    loaded: AtomicBool,
    pub(crate) changed: Arc<Notify>,
    pub(crate) stop: Notify,
    pub store: Arc<dyn Store>,
    pub usage_log: Arc<dyn UsageLog>,
    pub vault: Arc<dyn Vault>,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdGenerator>,
    pub settings: GatewaySettings,
    pub access_log: access_log::AccessLog,
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
    ) -> (Arc<Self>, mpsc::Receiver<Vec<UsageRecord>>) {
        // Bounded in batches: with the batches a worker hands over, about `usage_buffer` records.
        let batches = settings.usage_buffer.div_ceil(METER_BATCH).max(1);
        let (usage, records) = mpsc::channel(batches);
        let gateway = Arc::new(Self {
            config: ArcSwap::from_pointee(ProxyConfig::default()),
            limiter,
            quotas: DashMap::default(),
            usage,
            dropped: AtomicU64::new(0),
            write_generation: AtomicU64::new(0),
            reconcile_round: AtomicU64::new(0),
            loaded: AtomicBool::new(false),
            changed: Arc::new(Notify::new()),
            stop: Notify::new(),
            store,
            usage_log,
            vault,
            clock,
            ids,
            access_log: access_log::AccessLog::start(settings.access_log),
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
            .get_or_init(|| async {
                // A database that cannot answer must not turn traffic into 500s: the node
                // counts from 0 and the reconciler adds the log's count when it answers.
                let read = counted_since(
                    self.usage_log.as_ref(),
                    &caller.quota_subject,
                    period.start,
                    now,
                );
                match tokio::time::timeout(SEED_TIMEOUT, read).await {
                    Ok(Ok(used)) => {
                        counter.used.fetch_add(used, Ordering::SeqCst);
                        counter.seeded.store(true, Ordering::SeqCst);
                    }
                    Ok(Err(error)) => seed_failed(&error.to_string()),
                    Err(_) => seed_failed("timed out"),
                }
            })
            .await;
        counter.last_used_ms.store(now.millis(), Ordering::Relaxed);
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
        if decision != QuotaDecision::Exceeded {
            counter.local.fetch_add(1, Ordering::SeqCst);
        }
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

    /// The usage writer stored `records`: their counted ones are now visible in the log.
    pub(crate) fn note_written(&self, records: &[UsageRecord]) {
        let mut per_counter: std::collections::HashMap<(&str, i64), u64> =
            std::collections::HashMap::new();
        let mut period: Option<QuotaPeriod> = None;
        for record in records.iter().filter(|r| r.counted) {
            let Some(subject) = record.group_id.as_deref().or(record.user_id.as_deref()) else {
                continue;
            };
            let current = match period {
                Some(p) if (p.start.millis()..p.next.millis()).contains(&record.created_at) => p,
                _ => QuotaPeriod::containing(Timestamp::from_millis(record.created_at)),
            };
            period = Some(current);
            *per_counter
                .entry((subject, current.start.millis()))
                .or_default() += 1;
        }
        for ((subject, start), n) in per_counter {
            if let Some(counter) = self.quotas.get(&(subject.to_owned(), start)) {
                counter.written.fetch_add(n, Ordering::SeqCst);
            }
        }
    }

    /// One reconciliation round: counters whose seed failed, and (without Redis, every few
    /// rounds) the counters in use, are set to at least the usage log's count plus what this
    /// node counted but has not stored yet. Without Redis that is how a node learns of the
    /// requests other nodes let through; counts only go up, so a stale read is harmless.
    pub async fn reconcile_quotas(&self) {
        let now = self.now();
        let round = self.reconcile_round.fetch_add(1, Ordering::Relaxed);
        let active_round =
            !self.limiter.is_shared() && round.is_multiple_of(ACTIVE_RECONCILE_ROUNDS);
        let mut due: Vec<((String, i64), Arc<QuotaCounter>)> = self
            .quotas
            .iter()
            .filter(|entry| {
                let counter = entry.value();
                counter.loaded.initialized()
                    && (!counter.seeded.load(Ordering::SeqCst)
                        || (active_round
                            && now.millis() - counter.last_used_ms.load(Ordering::Relaxed)
                                < ACTIVE_FOR_MS))
            })
            .map(|entry| (entry.key().clone(), entry.value().clone()))
            .collect();
        // Unseeded first, then the most recently used.
        due.sort_by_key(|(_, c)| {
            (
                c.seeded.load(Ordering::SeqCst),
                -c.last_used_ms.load(Ordering::Relaxed),
            )
        });
        due.truncate(RECONCILE_PER_ROUND);
        for ((subject, start), counter) in due {
            let Some(total) = self.logged_and_unwritten(&subject, start, &counter).await else {
                // The database does not answer (or the writer kept writing): next round.
                return;
            };
            counter.used.fetch_max(total, Ordering::SeqCst);
            if !counter.seeded.swap(true, Ordering::SeqCst) {
                tracing::info!(
                    subject,
                    used = total,
                    "quota counter reconciled with the usage log"
                );
                let period = QuotaPeriod::containing(Timestamp::from_millis(start));
                let ttl_ms = period.next.millis() - now.millis() + 86_400_000;
                self.limiter
                    .raise_quota(&subject, period.start, ttl_ms, total, now)
                    .await;
            }
        }
    }

    /// The usage log's count of a counter plus this node's records not yet in it, read while
    /// the writer is not appending (a few tries: the writer runs once a second).
    async fn logged_and_unwritten(
        &self,
        subject: &str,
        start: i64,
        counter: &QuotaCounter,
    ) -> Option<u64> {
        for _ in 0..5 {
            let generation = self.write_generation.load(Ordering::SeqCst);
            if generation.is_multiple_of(2) {
                let unwritten = counter.unwritten();
                let read = counted_since(
                    self.usage_log.as_ref(),
                    subject,
                    Timestamp::from_millis(start),
                    self.now(),
                );
                let logged = tokio::time::timeout(SEED_TIMEOUT, read).await.ok()?.ok()?;
                if self.write_generation.load(Ordering::SeqCst) == generation {
                    return Some(logged + unwritten);
                }
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        None
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

    /// Keeps a record in this thread's batch; the batch goes to the writer (one channel
    /// message, never waiting) when it holds [`METER_BATCH`] records or at the worker's next
    /// tick ([`Gateway::flush_metering`]). A full channel drops the batch, counted.
    pub fn meter(&self, record: UsageRecord) {
        let full = METER_BUFFER.with(|buffer| {
            let mut buffer = buffer.borrow_mut();
            if buffer.capacity() == 0 {
                // A batch's room at once: growing by doubling copied the records
                // (hundreds of bytes each) several times per batch.
                buffer.reserve_exact(METER_BATCH);
            }
            buffer.push(record);
            buffer.len() >= METER_BATCH
        });
        if full {
            self.flush_metering();
        }
    }

    /// Hands this thread's batch of records to the writer (each proxy worker calls it on its
    /// tick and when it stops).
    pub fn flush_metering(&self) {
        let batch = METER_BUFFER.with(|buffer| std::mem::take(&mut *buffer.borrow_mut()));
        if batch.is_empty() {
            return;
        }
        if let Err(error) = self.usage.try_send(batch) {
            let lost = match error {
                mpsc::error::TrySendError::Full(batch)
                | mpsc::error::TrySendError::Closed(batch) => batch.len() as u64,
            };
            self.dropped.fetch_add(lost, Ordering::Relaxed);
            metrics::counter!("tollgate_usage_dropped_total").increment(lost);
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

/// Runs [`Gateway::reconcile_quotas`] every [`RECONCILE_EVERY`].
pub async fn reconcile(gateway: Arc<Gateway>) {
    // Half a period out of step with the usage writer, which ticks at the same rate.
    let first = tokio::time::Instant::now() + RECONCILE_EVERY / 2;
    let mut ticker = tokio::time::interval_at(first, RECONCILE_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        gateway.reconcile_quotas().await;
    }
}

/// The first count of a subject could not be read: counted from 0 on this node for now.
fn seed_failed(error: &str) {
    metrics::counter!("tollgate_quota_seed_failures_total").increment(1);
    tracing::warn!(
        error,
        "cannot read the quota count from the usage log: counting from 0 on this node until it answers"
    );
}
