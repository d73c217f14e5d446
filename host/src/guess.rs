//! The autoCheck's guesser over core's carrier guesser, and the prior it learns from the
//! store: when a subscription has had no trace for three days, the scheduler asks
//! [`CompanyGuesser::candidates`] which other carriers the number could belong to, and
//! tries those it has a plugin for, in the order the rules and the confirmed waybills
//! ([`LearnedPrior`]) give.
//!
//! ```
//! use waybill_host::guess::CoreGuesser;
//! use waybill_host::scheduler::CompanyGuesser;
//! let g = CoreGuesser::embedded();
//! // A China Post / EMS style S10 number: several carriers are possible, best first,
//! // each named once.
//! let c = g.candidates("EA123456785CN");
//! assert!(!c.is_empty());
//! let mut unique = c.clone();
//! unique.sort();
//! unique.dedup();
//! assert_eq!(unique.len(), c.len());
//! ```

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use waybill_core::guess::{Guesser, Prior};

use crate::scheduler::CompanyGuesser;
use crate::store::{Store, StoreResult};

/// [`CompanyGuesser`] backed by a [`waybill_core::guess::Guesser`] (the embedded rules,
/// or rules extended with those of loaded plugins), re-ranked by a [`LearnedPrior`] when
/// it has one.
#[derive(Clone)]
pub struct CoreGuesser {
    guesser: Arc<Guesser>,
    prior: Option<Arc<LearnedPrior>>,
}

impl CoreGuesser {
    /// Uses `guesser`.
    pub fn new(guesser: Arc<Guesser>) -> Self {
        Self {
            guesser,
            prior: None,
        }
    }

    /// Uses core's embedded rules.
    pub fn embedded() -> Self {
        Self::new(Arc::new(Guesser::embedded().clone()))
    }

    /// The same guesser, re-ranking by `prior` (as it is at each call).
    #[must_use]
    pub fn with_prior(mut self, prior: Arc<LearnedPrior>) -> Self {
        self.prior = Some(prior);
        self
    }

    /// The rules.
    pub fn guesser(&self) -> &Arc<Guesser> {
        &self.guesser
    }

    /// The ranked candidates for `number`, re-ranked by the prior as it is now.
    ///
    /// # Errors
    ///
    /// As [`Guesser::guess`]: a number no format can read.
    pub fn ranked(
        &self,
        number: &str,
    ) -> Result<Vec<waybill_core::guess::Candidate<'_>>, waybill_core::guess::GuessError> {
        let prior = self.prior.as_ref().map(|p| p.current());
        let mut found = Vec::new();
        self.guesser
            .guess_into_with(number, prior.as_deref(), &mut found)?;
        Ok(found)
    }
}

impl CompanyGuesser for CoreGuesser {
    fn candidates(&self, number: &str) -> Vec<String> {
        let prior = self.prior.as_ref().map(|p| p.current());
        // A number the guesser refuses (empty, too long, control characters) simply has
        // no other carrier to try.
        let mut found = Vec::new();
        if self
            .guesser
            .guess_into_with(number, prior.as_deref(), &mut found)
            .is_err()
        {
            return Vec::new();
        }
        let mut out: Vec<String> = Vec::with_capacity(found.len());
        for c in found {
            if !out.iter().any(|o| o == c.carrier) {
                out.push(c.carrier.to_string());
            }
        }
        out
    }
}

/// The prior learned from the store's confirmed waybills, replaced whole at each refresh
/// so a guess never sees half of one.
#[derive(Debug)]
pub struct LearnedPrior {
    current: RwLock<Arc<Prior>>,
    min_samples: u64,
}

impl LearnedPrior {
    /// An empty prior that will only re-rank where a bucket has `min_samples` numbers.
    pub fn new(min_samples: u64) -> Self {
        Self {
            current: RwLock::new(Arc::new(Prior::default().with_min_samples(min_samples))),
            min_samples,
        }
    }

    /// The prior as of the last refresh.
    pub fn current(&self) -> Arc<Prior> {
        // A poisoned lock still holds a whole prior (it is only ever swapped).
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Rebuilds the prior from the store with one aggregate query, resolving carrier names
    /// through `guesser`'s catalogue. Returns how many confirmed numbers it holds.
    ///
    /// # Errors
    ///
    /// The store's error; the previous prior is kept.
    pub async fn refresh(&self, store: &dyn Store, guesser: &Guesser) -> StoreResult<u64> {
        let prior = load_prior(store, guesser, self.min_samples).await?;
        let confirmed = prior.confirmed();
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(prior);
        Ok(confirmed)
    }

    /// Refreshes now and then every `every` until `stop` completes. A failed refresh is
    /// logged and retried at the next tick.
    pub async fn run(
        self: Arc<Self>,
        store: Arc<dyn Store>,
        guesser: Arc<Guesser>,
        every: Duration,
        stop: impl Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        let mut tick = tokio::time::interval(every.max(Duration::from_secs(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = tick.tick() => {}
            }
            match self.refresh(store.as_ref(), &guesser).await {
                Ok(confirmed) => tracing::debug!(confirmed, "Learned guesser prior refreshed."),
                Err(e) => tracing::warn!(error = %e, "Cannot refresh the learned guesser prior."),
            }
        }
    }
}

/// The prior of the store's confirmed waybills (see [`Store::confirmed_number_counts`]).
///
/// # Errors
///
/// The store's error.
pub async fn load_prior(
    store: &dyn Store,
    guesser: &Guesser,
    min_samples: u64,
) -> StoreResult<Prior> {
    let counts = store.confirmed_number_counts().await?;
    Ok(Prior::from_counts(counts, guesser.catalog()).with_min_samples(min_samples))
}

#[cfg(test)]
mod tests {
    use super::*;

    use jiff::{SignedDuration, Timestamp};
    use waybill_core::clock::ManualClock;
    use waybill_core::guess::DEFAULT_MIN_SAMPLES;
    use waybill_sdk::CarrierPlugin;

    use crate::latency::{LatencyProbe, VirtualDriver};
    use crate::sandbox::{sandbox_numbers, SandboxOptions, SandboxStack, SANDBOX};

    #[test]
    fn a_number_no_format_fits_has_no_candidates() {
        assert!(CoreGuesser::embedded().candidates("").is_empty());
        assert!(CoreGuesser::embedded().candidates("\u{7}").is_empty());
    }

    #[test]
    fn an_sf_number_names_shunfeng_first() {
        let c = CoreGuesser::embedded().candidates("SF1234567890123");
        assert_eq!(c.first().map(String::as_str), Some("shunfeng"), "{c:?}");
    }

    /// The embedded rules plus the sandbox carrier's catch-all rule, as the daemon has them.
    fn with_sandbox_rules() -> Guesser {
        let mut g = Guesser::default();
        waybill_carrier_sandbox::Sandbox::manifest()
            .add_rules_to(&mut g)
            .expect("sandbox rules");
        g
    }

    #[tokio::test]
    async fn confirmed_sandbox_waybills_become_a_prior_that_reranks_and_explains() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t0: Timestamp = "2024-06-18T08:00:00+08:00".parse().expect("ts");
        let clock = Arc::new(ManualClock::new(t0));
        let stack = SandboxStack::start(SandboxOptions::new(dir.path()), clock.clone())
            .await
            .expect("stack");
        let tenant = stack.tenant("shop", "k").await.expect("tenant");
        // 14 digits starting 7730: STO's format by the rules, the sandbox's by the traces.
        let numbers = sandbox_numbers("77301", 40);
        stack
            .subscribe(&tenant, &numbers, "http://127.0.0.1:9/push", "salt")
            .await
            .expect("subscribe");
        let guesser = Arc::new(with_sandbox_rules());
        let rules_only = CoreGuesser::new(guesser.clone());
        assert_eq!(rules_only.candidates("77301000000999")[0], "shentong");

        let prior = Arc::new(LearnedPrior::new(DEFAULT_MIN_SAMPLES));
        let learned = rules_only.clone().with_prior(prior.clone());
        // Nothing confirmed yet: the rules' order.
        assert_eq!(
            prior.refresh(stack.store.as_ref(), &guesser).await.unwrap(),
            0
        );
        assert_eq!(learned.candidates("77301000000999")[0], "shentong");

        // A few days of checks bring the first traces back.
        let driver = VirtualDriver {
            engine: stack.engine.clone(),
            clock: clock.clone(),
            probe: LatencyProbe::new(),
            quantum: SignedDuration::from_mins(30),
        };
        driver
            .run_until(t0 + SignedDuration::from_hours(72))
            .await
            .expect("run");
        let confirmed = prior.refresh(stack.store.as_ref(), &guesser).await.unwrap();
        assert!(confirmed >= DEFAULT_MIN_SAMPLES, "{confirmed}");
        assert!(confirmed <= 40);
        assert_eq!(learned.candidates("77301000000999")[0], SANDBOX);
        // Another length has no evidence: still the rules.
        assert_eq!(
            learned.candidates("773010000009"),
            rules_only.candidates("773010000009")
        );

        let current = prior.current();
        let found = guesser
            .guess_with_prior("77301000000999", &current)
            .unwrap();
        let reason = found[0].reason.to_string();
        assert!(
            reason.ends_with(&format!(
                "learned: {confirmed} confirmed 14-digit numbers starting 7730: 100 % sandbox"
            )),
            "{reason}"
        );
        let sto = found.iter().find(|c| c.carrier == "shentong").unwrap();
        assert!(
            sto.reason.to_string().ends_with(": 0 % shentong"),
            "{}",
            sto.reason
        );
        stack.shutdown().await.expect("shutdown");
    }
}
