//! Change→push latency, in real time, for runs on a virtual clock.
//!
//! A change is detected when the scheduler's round writes the new trace and its push to
//! the outbox (one transaction); it has been pushed when the receiver acknowledges it.
//! [`VirtualDriver`] runs the engine in rounds on a [`ManualClock`] and notes the real
//! instant each round's checks were written (keyed by the round's virtual instant, which
//! the store stamps on the pushes it queued); the probe, as the delivery worker's
//! [`VerdictObserver`], notes the real instant each push was acknowledged. [`LatencyProbe::latencies`] joins the two.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use waybill_core::carrier::Verdict;
use waybill_core::clock::{Clock, ManualClock};

use crate::engine::{Engine, RoundReport};
use crate::push::VerdictObserver;
use crate::store::{Store, StoreResult};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Real instants of detections and acknowledgements.
pub struct LatencyProbe {
    /// Virtual instant of a round (ms) → real instant its checks were written.
    rounds: Mutex<HashMap<i64, Instant>>,
    /// Push id → real instant of its first acknowledgement (sampled pushes only).
    acks: Mutex<HashMap<String, Instant>>,
    /// Every acknowledgement, sampled or not.
    acked: AtomicU64,
    /// One push in `stride` (chosen by a hash of its id) is timed.
    stride: u64,
}

impl LatencyProbe {
    /// A probe timing every push.
    pub fn new() -> Arc<Self> {
        Self::sampling(1)
    }

    /// A probe timing one push in `stride`, picked by a hash of the push id (so the
    /// sample is spread over the whole run), to keep its memory small on long runs.
    pub fn sampling(stride: u64) -> Arc<Self> {
        Arc::new(Self {
            rounds: Mutex::default(),
            acks: Mutex::default(),
            acked: AtomicU64::new(0),
            stride: stride.max(1),
        })
    }

    /// The round at virtual `at` has written its checks now.
    pub fn detected(&self, at: Timestamp) {
        lock(&self.rounds).insert(at.as_millisecond(), Instant::now());
    }

    /// Push `id` was acknowledged now (only the first acknowledgement counts).
    pub fn acked(&self, id: &str) {
        self.acked.fetch_add(1, Ordering::Relaxed);
        if self.stride > 1 && fnv1a(id) % self.stride != 0 {
            return;
        }
        lock(&self.acks)
            .entry(id.to_string())
            .or_insert_with(Instant::now);
    }

    /// Acknowledgements so far (repeats of a push included).
    pub fn acked_count(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }

    /// The latency of every acknowledged push (at most `limit`, an arbitrary sample when
    /// there are more) whose round was driven by a [`VirtualDriver`], sorted.
    pub async fn latencies(&self, store: &dyn Store, limit: usize) -> StoreResult<Vec<Duration>> {
        let acks: Vec<(String, Instant)> = lock(&self.acks)
            .iter()
            .take(limit)
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        let mut out = Vec::with_capacity(acks.len());
        for (id, acked) in acks {
            let Some(push) = store.push(&id).await? else {
                continue;
            };
            let detected = lock(&self.rounds)
                .get(&push.created_at.as_millisecond())
                .copied();
            if let Some(detected) = detected {
                out.push(acked.saturating_duration_since(detected));
            }
        }
        out.sort();
        Ok(out)
    }
}

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The `q`-quantile (0..=1) of sorted durations.
pub fn quantile(sorted: &[Duration], q: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted.get(rank).copied()
}

/// An acknowledged push is noted.
impl VerdictObserver for LatencyProbe {
    fn judged(&self, push_id: &str, verdict: &Verdict) {
        if *verdict == Verdict::Accepted {
            self.acked(push_id);
        }
    }
}

/// Runs an engine on a [`ManualClock`] in rounds a `quantum` apart, skipping quiet
/// stretches, so weeks of monitoring pass in seconds while due work is still batched.
/// Each round runs at its own virtual millisecond so its pushes can be told apart.
pub struct VirtualDriver {
    /// The engine.
    pub engine: Engine,
    /// Its clock.
    pub clock: Arc<ManualClock>,
    /// Where detections are noted.
    pub probe: Arc<LatencyProbe>,
    /// Virtual time between rounds.
    pub quantum: SignedDuration,
}

impl VirtualDriver {
    /// Runs until the clock reaches `until` or nothing is due any more.
    pub async fn run_until(&self, until: Timestamp) -> StoreResult<RoundReport> {
        let mut total = RoundReport::default();
        let store = self.engine.store().clone();
        loop {
            // Work through everything due now, one round at a time.
            loop {
                let now = self.clock.now();
                let checks = self.engine.check_due(now).await?;
                self.probe.detected(now);
                let deliveries = self.engine.deliver_due(now).await?;
                let idle = checks.claimed == 0 && deliveries.claimed == 0;
                total.checks.merge(&checks);
                total.deliveries.merge(&deliveries);
                self.clock.advance(SignedDuration::from_millis(1));
                if idle {
                    break;
                }
            }
            let next = [store.next_due().await?, store.next_push_due().await?]
                .into_iter()
                .flatten()
                .min();
            let Some(next) = next else {
                return Ok(total);
            };
            let now = self.clock.now();
            let step = (now + self.quantum).max(next);
            if step > until {
                if until > now {
                    self.clock.set(until);
                }
                return Ok(total);
            }
            self.clock.set(step);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sampling_probe_counts_every_ack_and_times_about_one_in_stride() {
        let probe = LatencyProbe::sampling(8);
        for i in 0..8_000 {
            probe.acked(&format!("{i}-1"));
        }
        assert_eq!(probe.acked_count(), 8_000);
        let timed = lock(&probe.acks).len();
        assert!((800..=1_200).contains(&timed), "{timed}");
    }

    #[test]
    fn quantiles_pick_by_rank() {
        let d: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&d, 0.5), Some(Duration::from_millis(51)));
        assert_eq!(quantile(&d, 0.99), Some(Duration::from_millis(99)));
        assert_eq!(quantile(&d, 1.0), Some(Duration::from_millis(100)));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
