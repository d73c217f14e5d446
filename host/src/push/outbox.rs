//! The delivery worker: takes due pushes from the outbox, delivers them through a
//! [`Notifier`], and records the verdict: delivered, retried later, or dead-lettered.
//!
//! A waybill's pushes leave strictly in order (the store hands out only the oldest pending
//! push of each subscription), so a receiver never sees its state go backwards.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use waybill_core::carrier::{Notifier, Verdict};

use crate::store::{OutboxPush, PushResult, PushVerdict, Store, StoreResult};

/// When to try a failed push again, and when to give up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RetryPolicy {
    /// Exponential backoff with ±20 % jitter: `first`, `first × factor`, … capped at
    /// `max_delay`, until the nominal delays add up to more than `total`.
    Exponential {
        /// Delay after the first failure.
        first: SignedDuration,
        /// Growth per failure.
        factor: f64,
        /// Longest single delay.
        max_delay: SignedDuration,
        /// Give up once the delays would exceed this.
        total: SignedDuration,
    },
    /// The same delay each time, a fixed number of retries (kuaidi100: 3 × 30 min).
    Fixed {
        /// Delay between attempts.
        delay: SignedDuration,
        /// Retries after the first attempt.
        retries: u32,
    },
}

impl Default for RetryPolicy {
    /// 30 s doubling to at most 6 h, for about 72 h in all (21 attempts).
    fn default() -> Self {
        RetryPolicy::Exponential {
            first: SignedDuration::from_secs(30),
            factor: 2.0,
            max_delay: SignedDuration::from_hours(6),
            total: SignedDuration::from_hours(72),
        }
    }
}

impl RetryPolicy {
    /// kuaidi100's own schedule: three more tries, 30 minutes apart.
    pub fn kuaidi100() -> Self {
        RetryPolicy::Fixed {
            delay: SignedDuration::from_mins(30),
            retries: 3,
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

/// How the delivery worker runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushConfig {
    /// Retry schedule.
    pub retry: RetryPolicy,
    /// Pushes claimed per round.
    pub batch: u32,
    /// Pushes in flight at once.
    pub concurrency: usize,
    /// How long a claimed push stays reserved (on the engine clock); longer than the
    /// HTTP timeout so a slow delivery is not handed out twice.
    pub lease: SignedDuration,
}

impl Default for PushConfig {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            batch: 256,
            concurrency: 32,
            lease: SignedDuration::from_mins(2),
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

/// Delivers due pushes.
pub struct PushWorker {
    store: Arc<dyn Store>,
    notifier: Arc<dyn Notifier>,
    config: PushConfig,
    owner: String,
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
            config,
            owner: owner.into(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &PushConfig {
        &self.config
    }

    /// Claims the pushes due at `now` and delivers them, at most `concurrency` at a time.
    pub async fn deliver_due(&self, now: Timestamp) -> StoreResult<DeliveryReport> {
        let pushes = self
            .store
            .claim_pushes(
                now,
                self.config.batch,
                &self.owner,
                now.checked_add(self.config.lease).unwrap_or(Timestamp::MAX),
            )
            .await?;
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
        for push in pushes {
            let notifier = self.notifier.clone();
            let permits = permits.clone();
            tasks.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let verdict = notifier.deliver(&push.to_push()).await;
                (push, verdict)
            });
        }
        while let Some(joined) = tasks.join_next().await {
            let Ok((push, verdict)) = joined else {
                // A panicking notifier: the push stays leased and is retried after the
                // lease runs out.
                continue;
            };
            results.push(self.judge(&push, verdict, now));
        }
        // One commit for the whole batch: a commit per push (synchronous=FULL) caps
        // delivery at a few hundred per second and starves the checks' commits.
        let written = self.store.push_results(&results).await?;
        for (r, ok) in results.iter().zip(written) {
            match (&r.verdict, ok) {
                (_, false) => report.lease_lost += 1,
                (PushVerdict::Delivered { .. }, true) => report.delivered += 1,
                (PushVerdict::Retry { .. }, true) => report.retried += 1,
                (PushVerdict::Dead { .. }, true) => report.dead += 1,
            }
        }
        Ok(report)
    }

    /// The verdict to record for `push` after an attempt at `now` ended with `verdict`.
    fn judge(&self, push: &OutboxPush, verdict: Verdict, now: Timestamp) -> PushResult {
        let id = &push.push_id;
        let verdict = match verdict {
            Verdict::Accepted => PushVerdict::Delivered { at: now },
            Verdict::Reject { reason } => {
                tracing::warn!(push = %id, %reason, "push refused for good; dead-lettered");
                PushVerdict::Dead {
                    error: reason,
                    at: now,
                }
            }
            Verdict::Retry { reason } => {
                let failed = push.attempt + 1;
                match self.config.retry.next_delay(failed, id) {
                    Some(delay) => {
                        tracing::debug!(push = %id, attempt = failed, %reason, "push failed; retrying");
                        PushVerdict::Retry {
                            error: reason,
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
    use waybill_core::carrier::Push;

    use super::*;
    use crate::store::{
        CheckOutcome, MonitorStatus, NewPush, NewSubscription, NewTenant, PushState, SqliteStore,
        SubscribeOptions, SubscribeOutcome,
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

    struct Scripted {
        verdicts: Mutex<Vec<Verdict>>,
        seen: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl Notifier for Scripted {
        async fn deliver(&self, push: &Push) -> Verdict {
            self.seen.lock().expect("lock").push(push.id.clone());
            let mut v = self.verdicts.lock().expect("lock");
            if v.is_empty() {
                Verdict::Accepted
            } else {
                v.remove(0)
            }
        }
    }

    async fn store_with_pushes(n: usize) -> (tempfile::TempDir, Arc<SqliteStore>, i64, Timestamp) {
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
        let out = store
            .subscribe(&NewSubscription {
                tenant_id: tenant.id,
                company: "sandbox".into(),
                number: "SB1".into(),
                phone: None,
                from: None,
                to: None,
                callback_url: "http://x/cb".into(),
                salt: None,
                options: SubscribeOptions::default(),
                next_check_at: t0,
                created_at: t0,
            })
            .await
            .expect("subscribe");
        let SubscribeOutcome::Created { id, .. } = out else {
            panic!("not created");
        };
        store
            .claim_due(t0, 1, "s", t0 + SignedDuration::from_mins(1))
            .await
            .expect("claim");
        store
            .complete_check(&CheckOutcome {
                subscription_id: id,
                lease_owner: "s".into(),
                checked_at: t0,
                status: MonitorStatus::Polling,
                message: String::new(),
                next_check_at: t0,
                new_trace: None,
                correction: None,
                error: None,
                pushes: (0..n)
                    .map(|i| NewPush {
                        url: "http://x/cb".into(),
                        content_type: "text/plain".into(),
                        body: vec![b'0' + i as u8],
                        headers: vec![],
                    })
                    .collect(),
            })
            .await
            .expect("complete");
        (dir, Arc::new(store), id, t0)
    }

    #[tokio::test]
    async fn a_push_that_keeps_failing_is_dead_lettered_after_the_last_retry_and_the_next_goes_out()
    {
        let (_dir, store, id, t0) = store_with_pushes(2).await;
        let retry = |r: &str| Verdict::Retry { reason: r.into() };
        let notifier = Arc::new(Scripted {
            verdicts: Mutex::new(vec![retry("a"), retry("b"), retry("c"), retry("d")]),
            seen: Mutex::new(vec![]),
        });
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
            reports.push(worker.deliver_due(now).await.expect("deliver"));
            now += SignedDuration::from_mins(30);
        }
        let dead: Vec<u32> = reports.iter().map(|r| r.dead).collect();
        assert_eq!(dead, vec![0, 0, 0, 1, 0]);
        assert_eq!(reports[4].delivered, 1);
        let seen = notifier.seen.lock().expect("lock").clone();
        let first = format!("{id}-1");
        let second = format!("{id}-2");
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
    async fn a_retried_push_waits_for_its_delay() {
        let (_dir, store, _id, t0) = store_with_pushes(1).await;
        let notifier = Arc::new(Scripted {
            verdicts: Mutex::new(vec![Verdict::Retry { reason: "x".into() }]),
            seen: Mutex::new(vec![]),
        });
        let worker = PushWorker::new(
            store.clone(),
            notifier,
            PushConfig {
                retry: RetryPolicy::kuaidi100(),
                ..PushConfig::default()
            },
            "w",
        );
        assert_eq!(worker.deliver_due(t0).await.expect("deliver").retried, 1);
        let early = t0 + SignedDuration::from_mins(29);
        assert_eq!(worker.deliver_due(early).await.expect("deliver").claimed, 0);
        let due = t0 + SignedDuration::from_mins(30);
        assert_eq!(worker.deliver_due(due).await.expect("deliver").delivered, 1);
    }

    #[tokio::test]
    async fn a_batch_of_verdicts_skips_a_push_whose_lease_moved_on_and_writes_the_rest() {
        let (_dir, store, id, t0) = store_with_pushes(1).await;
        let minute = SignedDuration::from_mins(1);
        let first = store
            .claim_pushes(t0, 10, "w", t0 + minute)
            .await
            .expect("claim");
        assert_eq!(first.len(), 1);
        // "w" stalls past its lease; "x" takes the push over.
        let later = t0 + minute * 2;
        let again = store
            .claim_pushes(later, 10, "x", later + minute)
            .await
            .expect("claim");
        assert_eq!(again.len(), 1);
        let verdict = |owner: &str| PushResult {
            push_id: format!("{id}-1"),
            owner: owner.into(),
            verdict: PushVerdict::Delivered { at: later },
        };
        let written = store
            .push_results(&[verdict("w"), verdict("x")])
            .await
            .expect("write");
        assert_eq!(written, vec![false, true]);
        let p = store
            .push(&format!("{id}-1"))
            .await
            .expect("push")
            .expect("exists");
        assert_eq!((p.state, p.attempt), (PushState::Delivered, 1));
    }
}
