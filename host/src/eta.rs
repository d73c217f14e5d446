//! The daemon's side of arrival estimates: the learned lanes held in memory, loaded from
//! the store once, and kept in step with every delivery this process writes.
//!
//! The store is the truth: a delivery's lesson is merged into the `lanes` table in the
//! same transaction as the check that saw it ([`crate::store::CheckOutcome::lesson`]),
//! and only then into memory. With several daemons on one database, each one's memory
//! lacks the others' deliveries since it started; estimates then lean on slightly fewer
//! samples, never on wrong ones.

use std::sync::{Arc, RwLock, RwLockReadGuard};

use jiff::Timestamp;
use tokio::sync::OnceCell;
use waybill_core::eta::{Estimate, EtaConfig, Lanes, Lesson, Milestones};
use waybill_core::model::Trace;
use waybill_core::policy::SubscriptionFacts;
use waybill_core::problem::{Flag, Thresholds};

use crate::store::{Store, StoreResult};

/// The learned lanes of every carrier, shared by the checks and the API.
pub struct LaneBook {
    store: Arc<dyn Store>,
    lanes: RwLock<Lanes>,
    loaded: OnceCell<()>,
}

impl LaneBook {
    /// An empty book over `store`, loaded on first use.
    pub fn new(store: Arc<dyn Store>, config: EtaConfig) -> Self {
        Self {
            store,
            lanes: RwLock::new(Lanes::new(config)),
            loaded: OnceCell::new(),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Lanes> {
        // A poisoned lock only means a panic mid-merge of plain counters; keep serving.
        self.lanes.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Loads what the store has learned, once; later calls return at once.
    pub async fn ready(&self) -> StoreResult<()> {
        self.loaded
            .get_or_try_init(|| async {
                let rows = self.store.lanes().await?;
                let mut lanes = self.lanes.write().unwrap_or_else(|e| e.into_inner());
                for (carrier, scope, stats) in rows {
                    lanes.insert(&carrier, scope, stats);
                }
                tracing::debug!(records = lanes.len(), "lanes loaded");
                Ok(())
            })
            .await
            .map(|_| ())
    }

    /// The estimate for a parcel of `carrier` with milestones `m` at `now` (the book must
    /// be [`LaneBook::ready`]; before that it answers from the cold-start defaults).
    pub fn estimate(&self, carrier: &str, m: &Milestones, now: Timestamp) -> Option<Estimate> {
        self.read().estimate(carrier, m, now)
    }

    /// The problem flags of `trace` (milestones `m`) at `now`, lane lateness included
    /// ([`Lanes::flags`]), and when the next timed one is due if nothing changes.
    pub fn flags(
        &self,
        trace: &Trace,
        m: &Milestones,
        facts: &SubscriptionFacts<'_>,
        thresholds: &Thresholds,
        now: Timestamp,
    ) -> (Vec<Flag>, Option<Timestamp>) {
        self.read().flags(trace, m, facts, thresholds, now)
    }

    /// Applies a lesson the store has written.
    pub fn apply(&self, carrier: &str, lesson: &Lesson) {
        self.lanes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .apply(carrier, lesson);
    }

    /// The lanes as held now.
    pub fn snapshot(&self) -> Lanes {
        self.read().clone()
    }
}
