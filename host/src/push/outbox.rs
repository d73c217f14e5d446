//! The delivery worker: takes due pushes from the outbox, has the subscription's dialect
//! render and sign each attempt at send time, sends it through a [`Notifier`], has the
//! dialect judge the answer, and records the verdict: delivered, retried later, or
//! dead-lettered.
//!
//! A waybill's pushes leave strictly in order (the store hands out only the oldest pending
//! push of each subscription), so a receiver never sees its state go backwards.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use waybill_core::carrier::{Delivery, Notifier, Push, Verdict};
use waybill_core::clock::Clock;

use crate::dialect::{kuaidi100, Dialect, Dialects};
use crate::store::{
    DisabledEndpoint, EndpointRoom, Lease, OutboxPush, PushPayload, PushResult, PushVerdict, Store,
    StoreResult, Subscription, SubscriptionId, TenantId,
};

/// When to try a failed push again, and when to give up. In a config file every key but
/// `kind` may be left out: it takes the default schedule's value (exponential) or
/// kuaidi100's (fixed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RetryPolicy {
    /// Exponential backoff with ±20 % jitter: `first`, `first × factor`, … capped at
    /// `max_delay`, until the nominal delays add up to more than `total`.
    Exponential {
        /// Delay after the first failure.
        #[serde(default = "defaults::first")]
        first: SignedDuration,
        /// Growth per failure.
        #[serde(default = "defaults::factor")]
        factor: f64,
        /// Longest single delay.
        #[serde(default = "defaults::max_delay")]
        max_delay: SignedDuration,
        /// Give up once the delays would exceed this.
        #[serde(default = "defaults::total")]
        total: SignedDuration,
    },
    /// The same delay each time, a fixed number of retries (kuaidi100: 3 × 30 min).
    Fixed {
        /// Delay between attempts.
        #[serde(default = "defaults::delay")]
        delay: SignedDuration,
        /// Retries after the first attempt.
        #[serde(default = "defaults::retries")]
        retries: u32,
    },
}

/// The values of [`RetryPolicy::default`] and [`RetryPolicy::kuaidi100`], one place for
/// both the presets and a config file's missing keys.
mod defaults {
    use jiff::SignedDuration;

    pub(super) fn first() -> SignedDuration {
        SignedDuration::from_secs(30)
    }
    pub(super) fn factor() -> f64 {
        2.0
    }
    pub(super) fn max_delay() -> SignedDuration {
        SignedDuration::from_hours(6)
    }
    pub(super) fn total() -> SignedDuration {
        SignedDuration::from_hours(72)
    }
    pub(super) fn delay() -> SignedDuration {
        SignedDuration::from_mins(30)
    }
    pub(super) fn retries() -> u32 {
        3
    }
}

impl Default for RetryPolicy {
    /// 30 s doubling to at most 6 h, for about 72 h in all (21 attempts).
    fn default() -> Self {
        RetryPolicy::Exponential {
            first: defaults::first(),
            factor: defaults::factor(),
            max_delay: defaults::max_delay(),
            total: defaults::total(),
        }
    }
}

impl RetryPolicy {
    /// kuaidi100's own schedule: three more tries, 30 minutes apart.
    pub fn kuaidi100() -> Self {
        RetryPolicy::Fixed {
            delay: defaults::delay(),
            retries: defaults::retries(),
        }
    }

    /// A preset by name: `default` (exponential, ~72 h) or `kuaidi100` (3 × 30 min).
    pub fn preset(name: &str) -> Option<Self> {
        match name {
            "default" | "exponential" => Some(Self::default()),
            "kuaidi100" => Some(Self::kuaidi100()),
            _ => None,
        }
    }

    /// The delay before the next attempt after `failed` failed attempts (1 after the first
    /// failure), or `None` when the push should be dead-lettered. `jitter_key` (the push
    /// id) makes the jitter differ between pushes but repeat for the same push.
    pub fn next_delay(&self, failed: u32, jitter_key: &str) -> Option<SignedDuration> {
        match self {
            RetryPolicy::Fixed { delay, retries } => (failed <= *retries).then_some(*delay),
            RetryPolicy::Exponential {
                first,
                factor,
                max_delay,
                total,
            } => {
                if failed == 0 {
                    return Some(SignedDuration::ZERO);
                }
                let nominal = |n: u32| -> f64 {
                    let d = first.as_secs_f64() * factor.max(1.0).powi(n as i32 - 1);
                    d.min(max_delay.as_secs_f64())
                };
                let spent: f64 = (1..=failed).map(nominal).sum();
                if spent > total.as_secs_f64() {
                    return None;
                }
                let jitter = 0.8 + 0.4 * unit_hash(jitter_key, failed);
                SignedDuration::try_from_secs_f64(nominal(failed) * jitter).ok()
            }
        }
    }

    /// Attempts in all (the first included) before a push is dead-lettered.
    pub fn max_attempts(&self) -> u32 {
        let mut failed = 1;
        while failed < 10_000 && self.next_delay(failed, "").is_some() {
            failed += 1;
        }
        failed
    }
}

/// A number in [0, 1) fixed by `key` and `n` (FNV-1a), so jitter needs no random source.
fn unit_hash(key: &str, n: u32) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.as_bytes().iter().chain(n.to_le_bytes().iter()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// How many more deliveries each receiver endpoint may start, given `slots` in all and
/// `busy` (deliveries in flight per endpoint).
///
/// Fair shares with room kept for a newcomer: with `n` endpoints in flight, each holds at
/// most `slots / n` and an endpoint not yet in flight may take `slots / (n + 1)`; and no
/// endpoint, even alone, holds more than three quarters of the slots. So a receiver that
/// hangs until the timeout or keeps failing fills only its share, and another tenant's
/// receiver always finds a free slot at once.
fn endpoint_room(slots: usize, busy: &HashMap<String, usize>) -> EndpointRoom {
    let most = slots.saturating_sub((slots / 4).max(1)).max(1);
    let share = |endpoints: usize| (slots / endpoints.max(1)).clamp(1, most);
    let own = share(busy.len());
    let to_u32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    EndpointRoom {
        busy: busy
            .iter()
            .map(|(endpoint, n)| (endpoint.clone(), to_u32(own.saturating_sub(*n))))
            .collect(),
        others: to_u32(share(busy.len() + 1)),
    }
}

/// How long a verdict may wait for others to share its commit.
pub const COMMIT_WINDOW: Duration = Duration::from_millis(10);

/// How the delivery worker runs. Every key is optional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PushConfig {
    /// Retry schedule.
    pub retry: RetryPolicy,
    /// Verdicts committed together (at most [`COMMIT_WINDOW`] apart); also the pushes
    /// claimed per round by [`PushWorker::deliver_due`].
    pub batch: u32,
    /// Pushes in flight at once, shared between receiver endpoints (none holds more than
    /// its share); more are claimed as soon as a quarter of the slots is free.
    pub concurrency: usize,
    /// How long a claimed push stays reserved (real time: [`Clock::lease_now`]); longer
    /// than the HTTP timeout so a slow delivery is not handed out twice.
    pub lease: SignedDuration,
    /// A webhook URL whose pushes have all failed for this long is disabled for its
    /// tenant (as a 410 answer disables it); zero: never.
    pub disable_failing_after: SignedDuration,
}

impl Default for PushConfig {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            batch: 256,
            concurrency: 32,
            lease: SignedDuration::from_mins(2),
            disable_failing_after: SignedDuration::from_hours(5 * 24),
        }
    }
}

/// What one delivery round did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryReport {
    /// Pushes claimed.
    pub claimed: u32,
    /// Acknowledged.
    pub delivered: u32,
    /// Failed, to be retried.
    pub retried: u32,
    /// Dead-lettered.
    pub dead: u32,
    /// Results not written because the lease moved on.
    pub lease_lost: u32,
}

impl DeliveryReport {
    /// Adds another round's counts.
    pub fn merge(&mut self, other: &DeliveryReport) {
        self.claimed += other.claimed;
        self.delivered += other.delivered;
        self.retried += other.retried;
        self.dead += other.dead;
        self.lease_lost += other.lease_lost;
    }
}

/// Told of every verdict the delivery worker reaches (metrics, latency probes): the
/// verdict is the dialect's reading of the answer, which the notifier cannot see.
pub trait VerdictObserver: Send + Sync {
    /// Push `push_id` was judged `verdict` just now.
    fn judged(&self, push_id: &str, verdict: &Verdict);
}

/// Delivers due pushes.
#[derive(Clone)]
pub struct PushWorker {
    store: Arc<dyn Store>,
    notifier: Arc<dyn Notifier>,
    observer: Option<Arc<dyn VerdictObserver>>,
    dialects: Dialects,
    config: PushConfig,
    owner: String,
}

/// A claimed push ready to go: the request and the dialect that judges the answer, or why
/// it can never be sent.
type Prepared = (OutboxPush, Result<(Push, Arc<dyn Dialect>), String>);

/// One attempt: sends `prepared` (unless it could not be rendered) and has its dialect
/// judge what came back.
async fn attempt(notifier: Arc<dyn Notifier>, prepared: Prepared) -> (OutboxPush, Verdict) {
    let (push, ready) = prepared;
    let verdict = match ready {
        Err(reason) => Verdict::Reject { reason },
        Ok((request, dialect)) => match notifier.deliver(&request).await {
            Delivery::Answered(reply) => dialect.judge(&reply),
            Delivery::Failed { reason } => Verdict::retry(reason),
            Delivery::Refused { reason } => Verdict::Reject { reason },
        },
    };
    (push, verdict)
}

impl PushWorker {
    /// A worker claiming pushes as `owner`.
    pub fn new(
        store: Arc<dyn Store>,
        notifier: Arc<dyn Notifier>,
        config: PushConfig,
        owner: impl Into<String>,
    ) -> Self {
        Self {
            store,
            notifier,
            observer: None,
            dialects: Dialects::standard(),
            config,
            owner: owner.into(),
        }
    }

    /// The same worker telling `observer` of every verdict.
    pub fn observed_by(mut self, observer: Arc<dyn VerdictObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &PushConfig {
        &self.config
    }

    /// Claims the pushes due at `now` (leased from `lease_now` on the lease clock) and
    /// delivers them, at most `concurrency` at a time, then records every verdict in one
    /// commit. One round, for virtual-clock drivers and tests; the daemon runs
    /// [`PushWorker::run`], which never waits for a whole batch.
    pub async fn deliver_due(
        &self,
        now: Timestamp,
        lease_now: Timestamp,
    ) -> StoreResult<DeliveryReport> {
        let pushes = self.claim(now, lease_now, self.config.batch).await?;
        let pushes = self.prepare(pushes, now).await?;
        let mut report = DeliveryReport {
            claimed: u32::try_from(pushes.len()).unwrap_or(u32::MAX),
            ..DeliveryReport::default()
        };
        if pushes.is_empty() {
            return Ok(report);
        }
        let mut results = Vec::with_capacity(pushes.len());
        let permits = Arc::new(Semaphore::new(self.config.concurrency.max(1)));
        let mut tasks = JoinSet::new();
        for prepared in pushes {
            let notifier = self.notifier.clone();
            let permits = permits.clone();
            tasks.spawn(async move {
                let _permit = permits.acquire_owned().await;
                attempt(notifier, prepared).await
            });
        }
        while let Some(joined) = tasks.join_next().await {
            // A panicking notifier: the push stays leased and is retried after the lease
            // runs out.
            if let Ok((push, verdict)) = joined {
                results.push(self.judge(&push, verdict, now));
            }
        }
        report.merge(&self.record(&results).await?);
        Ok(report)
    }

    /// Delivers pushes as they come due until `shutdown` completes, on `clock`: keeps up to
    /// `concurrency` deliveries in flight and claims more as soon as a quarter of the slots
    /// is free, so one slow push (up to the 20 s timeout) holds one slot, not a batch; and a receiver
    /// endpoint holds at most its share of the slots (see `endpoint_room`), so one that
    /// hangs or fails leaves the others their latency.
    /// Verdicts are committed in groups (`batch` of them, or whatever arrived within
    /// [`COMMIT_WINDOW`]): a commit per push would cap delivery at the disk's fsync rate.
    /// Claims again when `wake` is signalled (pushes were queued), after each commit (a
    /// delivered push lets its waybill's next one go) and every `idle` otherwise (retries
    /// coming due). On shutdown, stops claiming, finishes the deliveries in flight and
    /// records them. Returns the summed counts.
    pub async fn run(
        &self,
        clock: &dyn Clock,
        wake: &Notify,
        idle: Duration,
        shutdown: impl Future<Output = ()>,
    ) -> DeliveryReport {
        tokio::pin!(shutdown);
        let slots = self.config.concurrency.max(1);
        let mut total = DeliveryReport::default();
        let mut in_flight: JoinSet<(OutboxPush, Verdict)> = JoinSet::new();
        // Deliveries in flight per receiver endpoint, and the endpoint of each task (to
        // free its slot even when the task panicked).
        let mut busy: HashMap<String, usize> = HashMap::new();
        let mut task_endpoint: HashMap<tokio::task::Id, String> = HashMap::new();
        let mut verdicts: Vec<PushResult> = Vec::new();
        let mut commit_by: Option<Instant> = None;
        // Whether the outbox may hold claimable pushes (the last claim was not short).
        let mut more = true;
        let mut stopping = false;
        let mut poll_at = Instant::now() + idle;
        loop {
            // Claims wait for a quarter of the slots to be free (one claim query serves
            // several deliveries under load), but never for a slow push to come back.
            if more && !stopping && in_flight.len() + (slots / 4).max(1) <= slots {
                let want = slots - in_flight.len();
                let want_u32 = u32::try_from(want).unwrap_or(u32::MAX);
                let room = endpoint_room(slots, &busy);
                let claimed = match self
                    .claim_shared(clock.now(), clock.lease_now(), want_u32, &room)
                    .await
                {
                    Ok(pushes) => {
                        more = pushes.len() == want;
                        total.claimed += u32::try_from(pushes.len()).unwrap_or(u32::MAX);
                        self.prepare(pushes, clock.now()).await
                    }
                    Err(e) => Err(e),
                };
                match claimed {
                    Ok(pushes) => {
                        for prepared in pushes {
                            let notifier = self.notifier.clone();
                            let endpoint = prepared.0.endpoint.clone();
                            *busy.entry(endpoint.clone()).or_default() += 1;
                            let task = in_flight.spawn(attempt(notifier, prepared));
                            task_endpoint.insert(task.id(), endpoint);
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "claiming pushes failed; retrying");
                        more = false;
                    }
                }
                poll_at = Instant::now() + idle;
            }
            if stopping && in_flight.is_empty() {
                self.flush(&mut verdicts, &mut total).await;
                return total;
            }
            let commit_at = commit_by.unwrap_or(poll_at);
            tokio::select! {
                biased;
                _ = shutdown.as_mut(), if !stopping => stopping = true,
                Some(joined) = in_flight.join_next_with_id(), if !in_flight.is_empty() => {
                    let task = match &joined {
                        Ok((id, _)) => *id,
                        Err(e) => e.id(),
                    };
                    if let Some(endpoint) = task_endpoint.remove(&task) {
                        if let Some(n) = busy.get_mut(&endpoint) {
                            *n = n.saturating_sub(1);
                            if *n == 0 {
                                busy.remove(&endpoint);
                            }
                        }
                        // A slot of this endpoint came free: its next push may go.
                        more = true;
                    }
                    // A panicking notifier: the push stays leased and is retried after
                    // the lease runs out.
                    if let Ok((_, (push, verdict))) = joined {
                        verdicts.push(self.judge(&push, verdict, clock.now()));
                        commit_by.get_or_insert_with(|| Instant::now() + COMMIT_WINDOW);
                    }
                    if verdicts.len() >= self.config.batch as usize {
                        self.flush(&mut verdicts, &mut total).await;
                        commit_by = None;
                        more = true;
                    }
                }
                _ = tokio::time::sleep_until(commit_at.into()), if commit_by.is_some() => {
                    self.flush(&mut verdicts, &mut total).await;
                    commit_by = None;
                    more = true;
                }
                _ = wake.notified() => more = true,
                _ = tokio::time::sleep_until(poll_at.into()) => {
                    more = true;
                    poll_at = Instant::now() + idle;
                }
            }
        }
    }

    /// [`PushWorker::claim`], each endpoint taking at most its `room`.
    async fn claim_shared(
        &self,
        now: Timestamp,
        lease_now: Timestamp,
        limit: u32,
        room: &EndpointRoom,
    ) -> StoreResult<Vec<OutboxPush>> {
        let lease = Lease::new(&self.owner, lease_now, self.config.lease);
        self.store
            .claim_pushes_shared(now, limit, &lease, room)
            .await
    }

    /// Renders each claimed push for this attempt at `now`, in its subscription's dialect
    /// and with the subscription's current salt and options. A push whose subscription or
    /// dialect is gone cannot be rendered; it is dead-lettered with the reason. A store
    /// error leaves the claimed pushes leased: they go out once the lease runs out.
    async fn prepare(&self, pushes: Vec<OutboxPush>, now: Timestamp) -> StoreResult<Vec<Prepared>> {
        let mut ids: Vec<SubscriptionId> = pushes.iter().map(|p| p.subscription_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let subs: HashMap<SubscriptionId, Subscription> = self
            .store
            .subscriptions_by_id(&ids)
            .await?
            .into_iter()
            .map(|s| (s.id, s))
            .collect();
        // Usually empty; read per claim so an enable takes effect at the next one.
        let disabled: HashMap<(TenantId, String), DisabledEndpoint> = self
            .store
            .disabled_endpoints(None)
            .await?
            .into_iter()
            .map(|d| ((d.tenant_id, d.url.clone()), d))
            .collect();
        Ok(pushes
            .into_iter()
            .map(|push| {
                let sub = subs.get(&push.subscription_id);
                let off = sub.and_then(|s| disabled.get(&(s.tenant_id, push.url.clone())));
                let ready = match off {
                    Some(d) => Err(format!(
                        "not sent: {} is disabled since {} ({}); enable it (POST \
                         /v1/webhook-endpoints/enable) and re-drive the dead letters \
                         (`waybill redeliver --since`)",
                        d.url, d.disabled_at, d.reason
                    )),
                    None => self.render(&push, sub, now),
                };
                (push, ready)
            })
            .collect())
    }

    fn render(
        &self,
        push: &OutboxPush,
        sub: Option<&Subscription>,
        now: Timestamp,
    ) -> Result<(Push, Arc<dyn Dialect>), String> {
        match &push.payload {
            PushPayload::Change(change) => {
                let sub = sub.ok_or_else(|| {
                    format!("subscription {} no longer exists", push.subscription_id)
                })?;
                let dialect = self.dialects.get(&sub.dialect).ok_or_else(|| {
                    format!(
                        "subscription {} speaks {:?}, which this daemon does not (it speaks {:?})",
                        sub.id, sub.dialect, self.dialects
                    )
                })?;
                let rendered = dialect.render(sub, change, &push.push_id, now);
                Ok((
                    rendered.into_push(&push.push_id, &push.url),
                    dialect.clone(),
                ))
            }
            // Queued by a daemon that rendered at queue time, which spoke only kuaidi100.
            PushPayload::Rendered {
                content_type,
                body,
                headers,
            } => {
                let dialect = self
                    .dialects
                    .get(kuaidi100::NAME)
                    .ok_or("the kuaidi100 dialect is missing")?;
                let request = Push {
                    id: push.push_id.clone(),
                    url: push.url.clone(),
                    content_type: content_type.clone(),
                    body: body.clone(),
                    headers: headers.clone(),
                };
                Ok((request, dialect.clone()))
            }
        }
    }

    /// Claims up to `limit` pushes due at `now`, leased from `lease_now` on the lease
    /// clock ([`Clock::lease_now`]).
    async fn claim(
        &self,
        now: Timestamp,
        lease_now: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<OutboxPush>> {
        let lease = Lease::new(&self.owner, lease_now, self.config.lease);
        self.store.claim_pushes(now, limit, &lease).await
    }

    /// Commits `verdicts` (emptying it) and adds the counts to `total`. A failed commit is
    /// logged: those pushes stay leased and go out again once the lease runs out, so a
    /// receiver may see one twice (it dedupes on the push id) but none is lost.
    async fn flush(&self, verdicts: &mut Vec<PushResult>, total: &mut DeliveryReport) {
        if verdicts.is_empty() {
            return;
        }
        match self.record(verdicts).await {
            Ok(report) => {
                if report.lease_lost > 0 {
                    // Sent, but another worker holds the push now: the receiver will see
                    // it again (with the same push id). A lease shorter than a delivery
                    // and its commit take shows up here first.
                    tracing::warn!(
                        pushes = report.lease_lost,
                        "push verdicts not written: their lease had moved on"
                    );
                }
                total.merge(&report)
            }
            Err(e) => {
                tracing::error!(error = %e, pushes = verdicts.len(), "recording push verdicts failed")
            }
        }
        verdicts.clear();
    }

    /// Writes `results` in one commit; the counts by verdict (`claimed` left 0).
    async fn record(&self, results: &[PushResult]) -> StoreResult<DeliveryReport> {
        let written = self.store.push_results(results).await?;
        let mut report = DeliveryReport::default();
        for (r, ok) in results.iter().zip(written) {
            match (&r.verdict, ok) {
                (_, false) => report.lease_lost += 1,
                (PushVerdict::Delivered { .. }, true) => report.delivered += 1,
                (PushVerdict::Retry { .. }, true) => report.retried += 1,
                (PushVerdict::Dead { .. } | PushVerdict::Gone { .. }, true) => report.dead += 1,
            }
        }
        let last_failure = results
            .iter()
            .filter_map(|r| match &r.verdict {
                PushVerdict::Retry { at, .. }
                | PushVerdict::Dead { at, .. }
                | PushVerdict::Gone { at, .. } => Some(*at),
                PushVerdict::Delivered { .. } => None,
            })
            .max();
        let window = self.config.disable_failing_after;
        if let (Some(now), true) = (last_failure, window.is_positive()) {
            let before = now.checked_sub(window).unwrap_or(Timestamp::MIN);
            for d in self.store.disable_failing_endpoints(before, now).await? {
                tracing::warn!(tenant = d.tenant_id, url = %d.url, reason = %d.reason,
                    "webhook URL disabled: its pushes kept failing");
            }
        }
        Ok(report)
    }

    /// The verdict to record for `push` after an attempt at `now` ended with `verdict`.
    fn judge(&self, push: &OutboxPush, verdict: Verdict, now: Timestamp) -> PushResult {
        let id = &push.push_id;
        if let Some(o) = &self.observer {
            o.judged(id, &verdict);
        }
        let verdict = match verdict {
            Verdict::Accepted => PushVerdict::Delivered { at: now },
            Verdict::Reject { reason } => {
                tracing::warn!(push = %id, %reason, "push refused for good; dead-lettered");
                PushVerdict::Dead {
                    error: reason,
                    at: now,
                }
            }
            Verdict::Gone { reason } => {
                tracing::warn!(push = %id, url = %push.url, %reason,
                    "the receiver wants no more pushes; push dead-lettered, URL disabled");
                PushVerdict::Gone {
                    error: reason,
                    at: now,
                }
            }
            Verdict::Retry { reason, after } => {
                let failed = push.attempt + 1;
                match self.config.retry.next_delay(failed, id) {
                    Some(delay) => {
                        // The receiver's Retry-After, when longer than our schedule's wait.
                        let asked = after
                            .and_then(|a| SignedDuration::try_from(a).ok())
                            .unwrap_or(SignedDuration::ZERO);
                        let delay = delay.max(asked);
                        tracing::debug!(push = %id, attempt = failed, %reason, "push failed; retrying");
                        PushVerdict::Retry {
                            error: reason,
                            at: now,
                            next_attempt_at: now.checked_add(delay).unwrap_or(Timestamp::MAX),
                        }
                    }
                    None => {
                        tracing::warn!(push = %id, attempts = failed, %reason, "push out of attempts; dead-lettered");
                        PushVerdict::Dead {
                            error: format!("{reason} (after {failed} attempts)"),
                            at: now,
                        }
                    }
                }
            }
        };
        PushResult {
            push_id: id.clone(),
            owner: self.owner.clone(),
            verdict,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use waybill_core::clock::{ManualClock, ScaledClock};
    use waybill_sandbox_sim::server::SystemClock;

    use super::*;
    use waybill_core::carrier::Reply;
    use waybill_core::model::Trace;

    use crate::store::{
        Change, CheckOutcome, Lease, MonitorStatus, NewPush, NewSubscription, NewTenant,
        PushHeader, PushState, SqliteStore, SubscribeOptions, SubscribeOutcome,
    };

    #[test]
    fn the_kuaidi100_preset_retries_three_times_half_an_hour_apart() {
        let p = RetryPolicy::kuaidi100();
        let delays: Vec<_> = (1..=4).map(|n| p.next_delay(n, "x")).collect();
        let half = Some(SignedDuration::from_mins(30));
        assert_eq!(delays, vec![half, half, half, None]);
        assert_eq!(p.max_attempts(), 4);
    }

    #[test]
    fn the_default_schedule_grows_with_jitter_and_ends_after_about_72_hours() {
        let p = RetryPolicy::default();
        let first = p.next_delay(1, "7-1").expect("retry").as_secs_f64();
        assert!((24.0..=36.0).contains(&first), "{first}");
        let fifth = p.next_delay(5, "7-1").expect("retry").as_secs_f64();
        assert!((384.0..=576.0).contains(&fifth), "{fifth}");
        let capped = p.next_delay(15, "7-1").expect("retry").as_secs_f64();
        assert!(capped <= 6.0 * 3600.0 * 1.2, "{capped}");
        // Same push, same attempt: same delay; another push differs.
        assert_eq!(p.next_delay(3, "7-1"), p.next_delay(3, "7-1"));
        assert_ne!(p.next_delay(3, "7-1"), p.next_delay(3, "8-1"));

        let attempts = p.max_attempts();
        let total: f64 = (1..attempts)
            .map(|n| p.next_delay(n, "7-1").expect("retry").as_secs_f64())
            .sum();
        assert_eq!(attempts, 21);
        assert!(
            (60.0 * 3600.0..=80.0 * 3600.0).contains(&total),
            "total {} h",
            total / 3600.0
        );
    }

    /// A kuaidi100 acknowledgement.
    const ACK: &str = r#"{"result":true,"returnCode":"200","message":"成功"}"#;

    fn acked() -> Delivery {
        Delivery::Answered(Reply::ok(ACK))
    }

    /// Answers with `deliveries` in turn, then acknowledges; keeps what it was sent.
    struct Scripted {
        verdicts: Mutex<Vec<Delivery>>,
        seen: Mutex<Vec<String>>,
        sent: Mutex<Vec<Push>>,
    }

    impl Scripted {
        fn new(deliveries: Vec<Delivery>) -> Self {
            Self {
                verdicts: Mutex::new(deliveries),
                seen: Mutex::default(),
                sent: Mutex::default(),
            }
        }
    }

    #[async_trait]
    impl Notifier for Scripted {
        async fn deliver(&self, push: &Push) -> Delivery {
            self.seen.lock().expect("lock").push(push.id.clone());
            self.sent.lock().expect("lock").push(push.clone());
            let mut v = self.verdicts.lock().expect("lock");
            if v.is_empty() {
                acked()
            } else {
                v.remove(0)
            }
        }
    }

    fn failed(reason: &str) -> Delivery {
        Delivery::Failed {
            reason: reason.into(),
        }
    }

    /// A change with an empty trace.
    fn polling_push(url: &str) -> NewPush {
        NewPush {
            url: url.into(),
            change: Change::new(
                PushHeader::new(MonitorStatus::Polling, ""),
                Trace::from_events("sandbox", "SB", vec![]),
            ),
        }
    }

    async fn store_with_pushes(n: usize) -> (tempfile::TempDir, Arc<SqliteStore>, i64, Timestamp) {
        let (dir, store, ids, t0) = store_with_waybills(1, n).await;
        (dir, store, ids[0], t0)
    }

    /// A store holding `waybills` subscriptions with `n` pending pushes each, due at t0.
    async fn store_with_waybills(
        waybills: usize,
        n: usize,
    ) -> (tempfile::TempDir, Arc<SqliteStore>, Vec<i64>, Timestamp) {
        store_with_waybills_pushing_to(&vec!["http://x/cb"; waybills], n).await
    }

    /// A store holding one subscription per entry of `urls` with `n` pending pushes to
    /// that URL each, due at t0, in that order.
    async fn store_with_waybills_pushing_to(
        urls: &[&str],
        n: usize,
    ) -> (tempfile::TempDir, Arc<SqliteStore>, Vec<i64>, Timestamp) {
        store_with_subscriptions(urls, n, kuaidi100::NAME, None).await
    }

    /// [`store_with_waybills_pushing_to`], the subscriptions made in `dialect` with `salt`.
    async fn store_with_subscriptions(
        urls: &[&str],
        n: usize,
        dialect: &str,
        salt: Option<&str>,
    ) -> (tempfile::TempDir, Arc<SqliteStore>, Vec<i64>, Timestamp) {
        let waybills = urls.len();
        let dir = tempfile::tempdir().expect("dir");
        let store = SqliteStore::open_dir(dir.path()).await.expect("open");
        let t0: Timestamp = "2024-05-01T00:00:00Z".parse().expect("ts");
        let tenant = store
            .create_tenant(
                &NewTenant {
                    name: "t".into(),
                    key: "k".into(),
                    customer: None,
                },
                t0,
            )
            .await
            .expect("tenant");
        let mut ids = vec![];
        for w in 0..waybills {
            let out = store
                .subscribe(&NewSubscription {
                    tenant_id: tenant.id,
                    company: "sandbox".into(),
                    number: format!("SB{w}"),
                    phone: None,
                    from: None,
                    to: None,
                    callback_url: "http://x/cb".into(),
                    salt: salt.map(str::to_owned),
                    dialect: dialect.into(),
                    dialect_params: Default::default(),
                    options: SubscribeOptions::default(),
                    next_check_at: t0,
                    created_at: t0,
                })
                .await
                .expect("subscribe");
            let SubscribeOutcome::Created { id, .. } = out else {
                panic!("not created");
            };
            ids.push(id);
        }
        let claimed = store
            .claim_due(
                t0,
                10_000,
                &Lease::until("s", t0, t0 + SignedDuration::from_mins(1)),
            )
            .await
            .expect("claim");
        assert_eq!(claimed.len(), waybills);
        for (w, &id) in ids.iter().enumerate() {
            store
                .complete_check(&CheckOutcome {
                    subscription_id: id,
                    lease_owner: "s".into(),
                    checked_at: t0,
                    status: MonitorStatus::Polling,
                    message: String::new(),
                    next_check_at: t0 + SignedDuration::from_hours(4),
                    new_trace: None,
                    correction: None,
                    error: None,
                    pushes: (0..n).map(|_| polling_push(urls[w])).collect(),
                    problems: None,
                    eta: None,
                    lesson: None,
                })
                .await
                .expect("complete");
        }
        (dir, Arc::new(store), ids, t0)
    }

    /// Accepts every push at once except those of `slow`, which take `delay` of real time.
    struct SlowFor {
        slow: String,
        delay: std::time::Duration,
        acked: Mutex<Vec<(String, Instant)>>,
    }

    #[async_trait]
    impl Notifier for SlowFor {
        async fn deliver(&self, push: &Push) -> Delivery {
            if push.id.starts_with(&self.slow) {
                tokio::time::sleep(self.delay).await;
            }
            self.acked
                .lock()
                .expect("lock")
                .push((push.id.clone(), Instant::now()));
            acked()
        }
    }

    /// A worker with four delivery slots whose notifier holds the pushes with ids starting
    /// with `slow` (every push for "") for `delay_ms` of real time.
    fn four_slots(
        store: &Arc<SqliteStore>,
        slow: &str,
        delay_ms: u64,
    ) -> (Arc<SlowFor>, PushWorker) {
        let notifier = Arc::new(SlowFor {
            slow: slow.into(),
            delay: std::time::Duration::from_millis(delay_ms),
            acked: Mutex::new(vec![]),
        });
        let config = PushConfig {
            concurrency: 4,
            ..PushConfig::default()
        };
        let worker = PushWorker::new(store.clone(), notifier.clone(), config, "w");
        (notifier, worker)
    }

    /// Runs `worker` until every push in `store` is finished, then stops it.
    async fn run_until_drained(
        worker: &PushWorker,
        store: &SqliteStore,
        clock: &dyn Clock,
    ) -> DeliveryReport {
        let wake = Notify::new();
        let stop = async {
            while store.next_push_due().await.expect("due").is_some() {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(
            std::time::Duration::from_secs(30),
            worker.run(clock, &wake, std::time::Duration::from_millis(20), stop),
        )
        .await
        .expect("the worker drained the outbox in time")
    }

    #[tokio::test]
    async fn a_slow_receiver_holds_one_slot_while_the_others_are_delivered() {
        let (_dir, store, ids, t0) = store_with_waybills(40, 1).await;
        let (notifier, worker) =
            four_slots(&store, &format!("{}-", store.push_prefix(ids[0])), 1_500);
        let started = Instant::now();
        let report = run_until_drained(&worker, &store, &ManualClock::new(t0)).await;
        assert_eq!((report.claimed, report.delivered), (40, 40));
        let acked = notifier.acked.lock().expect("lock").clone();
        let slow = acked
            .iter()
            .find(|(id, _)| id.starts_with(&format!("{}-", store.push_prefix(ids[0]))))
            .expect("slow push acknowledged")
            .1;
        // The 39 others went through the three remaining slots long before the slow one
        // came back (in rounds, all 39 behind it would have waited for it).
        let others_done = acked
            .iter()
            .filter(|(id, _)| !id.starts_with(&format!("{}-", store.push_prefix(ids[0]))))
            .map(|(_, at)| *at)
            .max()
            .expect("others");
        assert!(
            others_done < slow,
            "others finished {:?} after the start, the slow one {:?}",
            others_done - started,
            slow - started
        );
    }

    #[test]
    fn each_endpoint_holds_its_share_and_a_newcomer_always_finds_room() {
        let busy = |pairs: &[(&str, usize)]| -> HashMap<String, usize> {
            pairs.iter().map(|(e, n)| (e.to_string(), *n)).collect()
        };
        let room = |slots, b: &HashMap<String, usize>| {
            let mut r = endpoint_room(slots, b);
            r.busy.sort();
            r
        };
        let of = |pairs: &[(&str, u32)], others| EndpointRoom {
            busy: pairs.iter().map(|(e, n)| (e.to_string(), *n)).collect(),
            others,
        };
        // Alone, an endpoint may take three quarters of the slots, no more.
        assert_eq!(room(32, &busy(&[])), of(&[], 24));
        assert_eq!(room(32, &busy(&[("x", 24)])), of(&[("x", 0)], 16));
        // Two in flight: each up to half, a third may take a third.
        assert_eq!(
            room(32, &busy(&[("x", 24), ("y", 3)])),
            of(&[("x", 0), ("y", 13)], 10)
        );
        // Many endpoints: at least one slot each; one slot in all still serves.
        let many: Vec<(String, usize)> = (0..40).map(|i| (format!("e{i}"), 1)).collect();
        let many: HashMap<String, usize> = many.into_iter().collect();
        assert!(endpoint_room(32, &many).busy.iter().all(|(_, n)| *n == 0));
        assert_eq!(endpoint_room(32, &many).others, 1);
        assert_eq!(room(1, &busy(&[])), of(&[], 1));
    }

    #[tokio::test]
    async fn a_hanging_receiver_holds_at_most_its_share_of_the_slots() {
        // 8 waybills push to a receiver that hangs for a second, then 10 to one that
        // answers at once; the hanging receiver's pushes are the oldest. With four slots,
        // the hanging one must leave room: the other's pushes all go out while it hangs.
        let mut urls = vec!["http://hangs.example/cb"; 8];
        urls.extend(vec!["http://fast.example/cb?shop=2"; 10]);
        let (_dir, store, ids, t0) = store_with_waybills_pushing_to(&urls, 1).await;
        let slow: Vec<String> = ids[..8].iter().map(|id| store.push_id(*id, 1)).collect();
        let notifier = Arc::new(SlowList {
            slow: slow.clone(),
            delay: std::time::Duration::from_millis(1_000),
            acked: Mutex::new(vec![]),
            in_flight: Mutex::new((0, 0)),
        });
        let config = PushConfig {
            concurrency: 4,
            ..PushConfig::default()
        };
        let worker = PushWorker::new(store.clone(), notifier.clone(), config, "w");
        let started = Instant::now();
        let report = run_until_drained(&worker, &store, &ManualClock::new(t0)).await;
        assert_eq!((report.claimed, report.delivered), (18, 18));
        let acked = notifier.acked.lock().expect("lock").clone();
        let first_slow = acked
            .iter()
            .filter(|(id, _)| slow.contains(id))
            .map(|(_, at)| *at)
            .min()
            .expect("slow");
        let fast_done = acked
            .iter()
            .filter(|(id, _)| !slow.contains(id))
            .map(|(_, at)| *at)
            .max()
            .expect("fast");
        assert!(
            fast_done < first_slow,
            "the fast receiver's pushes finished {:?} after the start, the first hanging \
             one {:?}",
            fast_done - started,
            first_slow - started
        );
        let most = notifier.in_flight.lock().expect("lock").1;
        assert!(most < 4, "the hanging receiver held {most} of 4 slots");
    }

    /// Accepts every push at once except those listed in `slow`, which take `delay` of
    /// real time; counts how many of those were in flight at most at once.
    struct SlowList {
        slow: Vec<String>,
        delay: std::time::Duration,
        acked: Mutex<Vec<(String, Instant)>>,
        /// (now, most) of the slow pushes in flight.
        in_flight: Mutex<(usize, usize)>,
    }

    #[async_trait]
    impl Notifier for SlowList {
        async fn deliver(&self, push: &Push) -> Delivery {
            if self.slow.contains(&push.id) {
                {
                    let mut n = self.in_flight.lock().expect("lock");
                    n.0 += 1;
                    n.1 = n.1.max(n.0);
                }
                tokio::time::sleep(self.delay).await;
                self.in_flight.lock().expect("lock").0 -= 1;
            }
            self.acked
                .lock()
                .expect("lock")
                .push((push.id.clone(), Instant::now()));
            acked()
        }
    }

    #[tokio::test]
    async fn a_fast_clock_does_not_cut_the_lease_of_a_push_in_flight() {
        // One real millisecond is an hour of the engine's clock, so every 50 ms delivery
        // outlasts the 2-minute lease many times over in engine time; leases are timed on
        // the real clock, so no push in flight is claimed (and sent) a second time.
        let (_dir, store, _ids, t0) = store_with_waybills(12, 1).await;
        let (notifier, worker) = four_slots(&store, "", 50);
        let clock = ScaledClock::new(SystemClock, t0, 3_600_000.0);
        let report = run_until_drained(&worker, &store, &clock).await;
        assert_eq!((report.claimed, report.delivered), (12, 12));
        let mut sent: Vec<String> = notifier
            .acked
            .lock()
            .expect("lock")
            .iter()
            .map(|(id, _)| id.clone())
            .collect();
        sent.sort();
        sent.dedup();
        assert_eq!(sent.len(), 12);
        assert_eq!(notifier.acked.lock().expect("lock").len(), 12, "none twice");
    }

    #[tokio::test]
    async fn streaming_delivery_keeps_each_waybills_pushes_in_order() {
        let (_dir, store, ids, t0) = store_with_waybills(5, 4).await;
        let notifier = Arc::new(Scripted::new(vec![]));
        let worker = PushWorker::new(store.clone(), notifier.clone(), PushConfig::default(), "w");
        let report = run_until_drained(&worker, &store, &ManualClock::new(t0)).await;
        assert_eq!(report.delivered, 20);
        let seen = notifier.seen.lock().expect("lock").clone();
        for id in ids {
            let of: Vec<&String> = seen
                .iter()
                .filter(|p| p.starts_with(&format!("{}-", store.push_prefix(id))))
                .collect();
            let want: Vec<String> = (1..=4).map(|seq| store.push_id(id, seq)).collect();
            assert_eq!(of, want.iter().collect::<Vec<_>>());
        }
    }

    #[tokio::test]
    async fn on_shutdown_the_deliveries_in_flight_are_finished_and_recorded() {
        let (_dir, store, ids, t0) = store_with_waybills(3, 1).await;
        let notifier = Arc::new(SlowFor {
            slow: String::new(), // every push is slow
            delay: std::time::Duration::from_millis(300),
            acked: Mutex::new(vec![]),
        });
        let worker = PushWorker::new(store.clone(), notifier, PushConfig::default(), "w");
        let wake = Notify::new();
        // Shut down while all three are in flight.
        let stop = tokio::time::sleep(std::time::Duration::from_millis(100));
        let report = worker
            .run(
                &ManualClock::new(t0),
                &wake,
                std::time::Duration::from_millis(20),
                stop,
            )
            .await;
        assert_eq!((report.claimed, report.delivered), (3, 3));
        for id in ids {
            let push = store.push_id(id, 1);
            assert_eq!(state_of(&store, &push).await, (PushState::Delivered, 1));
        }
    }

    #[tokio::test]
    async fn a_push_that_keeps_failing_is_dead_lettered_after_the_last_retry_and_the_next_goes_out()
    {
        let (_dir, store, id, t0) = store_with_pushes(2).await;
        let notifier = Arc::new(Scripted::new(vec![
            failed("a"),
            failed("b"),
            failed("c"),
            failed("d"),
        ]));
        let worker = PushWorker::new(
            store.clone(),
            notifier.clone(),
            PushConfig {
                retry: RetryPolicy::kuaidi100(),
                ..PushConfig::default()
            },
            "w",
        );
        let mut now = t0;
        let mut reports = vec![];
        for _ in 0..5 {
            reports.push(worker.deliver_due(now, now).await.expect("deliver"));
            now += SignedDuration::from_mins(30);
        }
        let dead: Vec<u32> = reports.iter().map(|r| r.dead).collect();
        assert_eq!(dead, vec![0, 0, 0, 1, 0]);
        assert_eq!(reports[4].delivered, 1);
        let seen = notifier.seen.lock().expect("lock").clone();
        let first = store.push_id(id, 1);
        let second = store.push_id(id, 2);
        assert_eq!(
            seen,
            vec![
                first.clone(),
                first.clone(),
                first.clone(),
                first.clone(),
                second
            ]
        );
        let p = store.push(&first).await.expect("push").expect("exists");
        assert_eq!((p.state, p.attempt), (PushState::Dead, 4));
        assert!(p
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("after 4 attempts"));
    }

    #[tokio::test]
    async fn a_change_is_rendered_and_signed_in_the_subscriptions_dialect_at_send_time() {
        let (_dir, store, ids, t0) =
            store_with_subscriptions(&["http://x/cb"], 1, kuaidi100::NAME, Some("SALT")).await;
        let notifier = Arc::new(Scripted::new(vec![]));
        let worker = PushWorker::new(store.clone(), notifier.clone(), PushConfig::default(), "w");
        let report = worker.deliver_due(t0, t0).await.expect("deliver");
        assert_eq!(report.delivered, 1);
        let sent = notifier.sent.lock().expect("lock").clone();
        assert_eq!(sent[0].id, store.push_id(ids[0], 1));
        assert_eq!(sent[0].url, "http://x/cb");
        assert_eq!(sent[0].content_type, "application/x-www-form-urlencoded");
        let form: HashMap<String, String> = url::form_urlencoded::parse(&sent[0].body)
            .into_owned()
            .collect();
        let param: serde_json::Value = serde_json::from_str(&form["param"]).expect("json");
        assert_eq!(param["status"], "polling");
        assert_eq!(param["lastResult"]["nu"], "SB");
        waybill_core::sign::verify_kuaidi100_push(&form["param"], "SALT", &form["sign"])
            .expect("signed with the subscription's salt");
    }

    #[tokio::test]
    async fn a_push_of_a_dialect_the_daemon_does_not_speak_is_dead_lettered_unsent() {
        let (_dir, store, ids, t0) =
            store_with_subscriptions(&["http://x/cb"], 1, "carrier-pigeon", None).await;
        let notifier = Arc::new(Scripted::new(vec![]));
        let worker = PushWorker::new(store.clone(), notifier.clone(), PushConfig::default(), "w");
        let report = worker.deliver_due(t0, t0).await.expect("deliver");
        assert_eq!((report.delivered, report.dead), (0, 1));
        assert!(notifier.sent.lock().expect("lock").is_empty());
        let p = store
            .push(&store.push_id(ids[0], 1))
            .await
            .expect("read")
            .expect("exists");
        assert!(
            p.last_error
                .as_deref()
                .unwrap_or("")
                .contains("carrier-pigeon"),
            "{:?}",
            p.last_error
        );
    }

    #[tokio::test]
    async fn a_410_disables_the_url_until_it_is_enabled_and_nothing_is_lost() {
        let (_dir, store, ids, t0) =
            store_with_subscriptions(&["http://x/cb"], 2, crate::dialect::native::NAME, None).await;
        let gone = Delivery::Answered(Reply {
            status: 410,
            retry_after: None,
            body: Vec::new(),
        });
        let notifier = Arc::new(Scripted::new(vec![gone]));
        let worker = PushWorker::new(store.clone(), notifier.clone(), PushConfig::default(), "w");
        let report = worker.deliver_due(t0, t0).await.expect("deliver");
        assert_eq!((report.delivered, report.dead), (0, 1));
        let off = store.disabled_endpoints(None).await.expect("read");
        assert_eq!(off.len(), 1);
        assert_eq!(off[0].url, "http://x/cb");
        assert!(off[0].reason.contains("410"), "{}", off[0].reason);

        // The next push to the URL is dead-lettered without being sent, saying why.
        let report = worker.deliver_due(t0, t0).await.expect("deliver");
        assert_eq!((report.delivered, report.dead), (0, 1));
        assert_eq!(notifier.sent.lock().expect("lock").len(), 1, "not sent");
        let second = store
            .push(&store.push_id(ids[0], 2))
            .await
            .expect("read")
            .expect("exists");
        let why = second.last_error.unwrap_or_default();
        assert!(why.contains("disabled"), "{why}");

        // Enabled again and re-driven: both arrive, in order.
        assert!(store
            .enable_endpoint(off[0].tenant_id, "http://x/cb")
            .await
            .expect("enable"));
        assert!(!store
            .enable_endpoint(off[0].tenant_id, "http://x/cb")
            .await
            .expect("again"));
        assert_eq!(
            store.redeliver(&[], None, t0).await.expect("redrive"),
            (2, 0)
        );
        for _ in 0..2 {
            let report = worker.deliver_due(t0, t0).await.expect("deliver");
            assert_eq!(report.delivered, 1);
        }
        let sent: Vec<String> = notifier.seen.lock().expect("lock").clone();
        assert_eq!(
            sent[1..],
            [store.push_id(ids[0], 1), store.push_id(ids[0], 2)]
        );
    }

    #[tokio::test]
    async fn a_url_failing_for_five_days_is_disabled_and_a_delivery_clears_its_record() {
        let (_dir, store, _ids, t0) =
            store_with_waybills_pushing_to(&["http://x/a", "http://x/b"], 1).await;
        let notifier = Arc::new(Scripted::new(vec![failed("refused"), failed("refused")]));
        let worker = PushWorker::new(store.clone(), notifier, PushConfig::default(), "w");
        let report = worker.deliver_due(t0, t0).await.expect("deliver");
        assert_eq!(report.retried, 2);
        assert!(store
            .disabled_endpoints(None)
            .await
            .expect("read")
            .is_empty());
        // b gets through on its retry; a keeps failing past five days.
        let day = SignedDuration::from_hours(24);
        let b = store
            .claim_pushes(t0 + day, 10, &Lease::until("w", t0, t0 + day))
            .await
            .expect("claim");
        for p in &b {
            if p.url == "http://x/b" {
                store
                    .push_delivered(&p.push_id, "w", t0 + day)
                    .await
                    .expect("ok");
            } else {
                store
                    .push_retry(&p.push_id, "w", "refused", t0 + day, t0 + day * 6)
                    .await
                    .expect("retry");
            }
        }
        let later = t0 + day * 6;
        let a = store
            .claim_pushes(later, 10, &Lease::until("w", later, later + day))
            .await
            .expect("claim");
        assert_eq!(a.len(), 1);
        let result = worker.judge(&a[0], Verdict::retry("refused"), later);
        worker.record(&[result]).await.expect("record");
        let off = store.disabled_endpoints(None).await.expect("read");
        assert_eq!(off.len(), 1, "{off:?}");
        assert_eq!(off[0].url, "http://x/a");
        assert!(
            off[0].reason.contains("since 2024-05-01"),
            "{}",
            off[0].reason
        );
    }

    #[tokio::test]
    async fn an_answer_the_dialect_does_not_accept_is_retried() {
        let (_dir, store, _id, t0) = store_with_pushes(1).await;
        let refused = Delivery::Answered(Reply::ok(r#"{"result":false,"returnCode":"500"}"#));
        let notifier = Arc::new(Scripted::new(vec![refused]));
        let worker = PushWorker::new(store.clone(), notifier, PushConfig::default(), "w");
        let report = worker.deliver_due(t0, t0).await.expect("deliver");
        assert_eq!((report.delivered, report.retried), (0, 1));
    }

    #[tokio::test]
    async fn a_receivers_retry_after_longer_than_the_schedule_is_honoured() {
        let (_dir, store, id, t0) = store_with_pushes(1).await;
        let worker = PushWorker::new(
            store.clone(),
            Arc::new(Scripted::new(vec![])),
            PushConfig::default(),
            "w",
        );
        let push = store.pushes_of(id).await.expect("pushes").remove(0);
        let asked = Verdict::Retry {
            reason: "HTTP 503".into(),
            after: Some(Duration::from_secs(7200)),
        };
        let PushVerdict::Retry {
            next_attempt_at, ..
        } = worker.judge(&push, asked, t0).verdict
        else {
            panic!("expected a retry");
        };
        assert_eq!(next_attempt_at, t0 + SignedDuration::from_hours(2));
        let PushVerdict::Retry {
            next_attempt_at, ..
        } = worker.judge(&push, Verdict::retry("x"), t0).verdict
        else {
            panic!("expected a retry");
        };
        assert!(next_attempt_at < t0 + SignedDuration::from_mins(1));
    }

    #[tokio::test]
    async fn a_retried_push_waits_for_its_delay() {
        let (_dir, store, _id, t0) = store_with_pushes(1).await;
        let notifier = Arc::new(Scripted::new(vec![failed("x")]));
        let worker = PushWorker::new(
            store.clone(),
            notifier,
            PushConfig {
                retry: RetryPolicy::kuaidi100(),
                ..PushConfig::default()
            },
            "w",
        );
        assert_eq!(
            worker.deliver_due(t0, t0).await.expect("deliver").retried,
            1
        );
        let early = t0 + SignedDuration::from_mins(29);
        assert_eq!(
            worker
                .deliver_due(early, early)
                .await
                .expect("deliver")
                .claimed,
            0
        );
        let due = t0 + SignedDuration::from_mins(30);
        assert_eq!(
            worker
                .deliver_due(due, due)
                .await
                .expect("deliver")
                .delivered,
            1
        );
    }

    #[tokio::test]
    async fn a_batch_of_verdicts_skips_a_push_whose_lease_moved_on_and_writes_the_rest() {
        let (_dir, store, id, t0) = store_with_pushes(1).await;
        let minute = SignedDuration::from_mins(1);
        let first = store
            .claim_pushes(t0, 10, &Lease::until("w", t0, t0 + minute))
            .await
            .expect("claim");
        assert_eq!(first.len(), 1);
        // "w" stalls past its lease; "x" takes the push over.
        let later = t0 + minute * 2;
        let again = store
            .claim_pushes(later, 10, &Lease::until("x", later, later + minute))
            .await
            .expect("claim");
        assert_eq!(again.len(), 1);
        let verdict = |owner: &str| PushResult {
            push_id: store.push_id(id, 1),
            owner: owner.into(),
            verdict: PushVerdict::Delivered { at: later },
        };
        let written = store
            .push_results(&[verdict("w"), verdict("x")])
            .await
            .expect("write");
        assert_eq!(written, vec![false, true]);
        let push = store.push_id(id, 1);
        assert_eq!(state_of(&store, &push).await, (PushState::Delivered, 1));
    }

    /// A stored push's state and attempts.
    async fn state_of(store: &SqliteStore, push_id: &str) -> (PushState, u32) {
        let p = store.push(push_id).await.expect("push").expect("exists");
        (p.state, p.attempt)
    }
}
