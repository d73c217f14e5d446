//! [`Engine`]: the daemon's moving parts in one value — the store, the carriers, the
//! clock, the scheduler and the push worker — so the `waybill` binary, the HTTP API, the
//! demo and the tests all run the same loop.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use std::sync::Arc;
//! use waybill_core::clock::ManualClock;
//! use waybill_host::engine::{Engine, EngineConfig};
//! use waybill_host::store::SqliteStore;
//!
//! let store = Arc::new(SqliteStore::open_dir("./waybill-data".as_ref()).await?);
//! let clock = Arc::new(ManualClock::new("2024-05-01T00:00:00Z".parse()?));
//! let engine = Engine::new(store, vec![], clock.clone(), EngineConfig::default())?;
//! let report = engine.run_once(engine.now()).await?;
//! println!("{report:?}");
//! # Ok(()) }
//! ```

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use waybill_core::carrier::{Carrier, Notifier};
use waybill_core::clock::{Clock, ManualClock};
use waybill_core::eta::Estimate;
use waybill_core::model::{Trace, Waybill};
use waybill_core::policy::{
    self, Decision, LastOutcome, PolicyConfig, SubscriptionFacts, TraceSummary,
};

use crate::eta::LaneBook;
use crate::push::deliver::DEFAULT_TIMEOUT;
use crate::push::{DeliveryReport, HttpNotifier, PushConfig, PushWorker, VerdictObserver};
use crate::scheduler::{CarrierLimits, Carriers, CheckReport, Checker, CompanyGuesser};
use crate::store::{Store, StoreError, StoreResult};

/// How the engine runs. Every field has a default; the daemon reads it from its config
/// file (`[engine]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EngineConfig {
    /// This process's name on leases; must differ between daemons sharing a database.
    pub owner: String,
    /// Subscriptions claimed per round.
    pub batch_size: u32,
    /// How long a claimed subscription stays reserved, on the lease clock (real time even
    /// when the engine's clock runs fast: [`Clock::lease_now`]).
    pub lease: SignedDuration,
    /// Real time to wait between rounds when nothing was due.
    pub idle_wait: SignedDuration,
    /// Polling policy (core).
    pub policy: PolicyConfig,
    /// Push delivery.
    pub push: PushConfig,
    /// HTTP timeout of one push (kuaidi100: 20 s).
    pub push_timeout: SignedDuration,
    /// Per-carrier concurrency and rate limits.
    pub carriers: CarrierLimits,
    /// Accept callback URLs on loopback, private and link-local addresses.
    pub allow_private_callbacks: bool,
    /// Checks pause while at least this many pushes could be sent now and wait for a
    /// delivery slot (pushes queued behind a failing one of the same waybill do not
    /// count): a change already found goes out before more checks look for new ones, so
    /// change→push latency stays bounded when checks find changes faster than receivers
    /// take them. 0 never pauses.
    pub push_backlog: u32,
    /// The aggregator plugin (its code, e.g. `kuaidi100`) that tracks every company the
    /// catalog knows and no plugin of its own serves. `$WAYBILL_UPSTREAM` when unset.
    pub upstream: Option<String>,
    /// Problem thresholds: the daemon's top-level `[problems]` table, copied here at
    /// start-up (`waybill problems` reads the same table).
    #[serde(skip)]
    pub problems: waybill_core::problem::Thresholds,
    /// Arrival estimates: the daemon's top-level `[eta]` table, copied here at start-up.
    #[serde(skip)]
    pub eta: waybill_core::eta::EtaConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            owner: default_owner(),
            batch_size: 500,
            lease: SignedDuration::from_mins(10),
            idle_wait: SignedDuration::from_secs(1),
            policy: PolicyConfig::default(),
            push: PushConfig::default(),
            push_timeout: SignedDuration::from_secs(20),
            carriers: CarrierLimits::default(),
            allow_private_callbacks: false,
            push_backlog: 512,
            upstream: None,
            problems: waybill_core::problem::Thresholds::default(),
            eta: waybill_core::eta::EtaConfig::default(),
        }
    }
}

/// The engine's carriers: each plugin for its codes, and the upstream aggregator for the
/// catalog's other companies when one is configured.
fn carriers_of(carriers: Vec<Arc<dyn Carrier>>, config: &EngineConfig) -> Carriers {
    let own = Carriers::new(carriers, &config.carriers);
    match &config.upstream {
        Some(upstream) => {
            let catalog = waybill_core::guess::Guesser::embedded().catalog();
            own.with_upstream(upstream, catalog.iter().map(|e| e.code.clone()))
        }
        None => own,
    }
}

fn default_owner() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "waybill".into());
    format!("{host}-{}", std::process::id())
}

/// Why the engine could not be built.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The HTTP client for pushes could not be created (TLS setup).
    #[error("cannot create the push HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// What one round did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundReport {
    /// The scheduler's part.
    pub checks: CheckReport,
    /// The push worker's part.
    pub deliveries: DeliveryReport,
}

impl RoundReport {
    /// Nothing was due.
    pub fn is_idle(&self) -> bool {
        self.checks.claimed == 0 && self.deliveries.claimed == 0
    }
}

/// The daemon's engine. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Engine {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    checker: Arc<Checker>,
    pushes: Arc<PushWorker>,
    /// Signalled when checks have queued pushes, so the delivery loop need not poll.
    outbox_written: Arc<Notify>,
    config: Arc<EngineConfig>,
}

impl Engine {
    /// An engine delivering pushes over HTTP.
    pub fn new(
        store: Arc<dyn Store>,
        carriers: Vec<Arc<dyn Carrier>>,
        clock: Arc<dyn Clock>,
        config: EngineConfig,
    ) -> Result<Self, EngineError> {
        let timeout = Duration::try_from(config.push_timeout).unwrap_or(DEFAULT_TIMEOUT);
        let notifier = Arc::new(HttpNotifier::new(timeout, config.allow_private_callbacks)?);
        Ok(Self::with_notifier(
            store, carriers, clock, notifier, config,
        ))
    }

    /// An engine delivering pushes through `notifier`.
    pub fn with_notifier(
        store: Arc<dyn Store>,
        carriers: Vec<Arc<dyn Carrier>>,
        clock: Arc<dyn Clock>,
        notifier: Arc<dyn Notifier>,
        config: EngineConfig,
    ) -> Self {
        let checker = Arc::new(Checker {
            store: store.clone(),
            carriers: Arc::new(carriers_of(carriers, &config)),
            guesser: None,
            policy: config.policy.clone(),
            problems: config.problems.clone(),
            lanes: Arc::new(LaneBook::new(store.clone(), config.eta.clone())),
            owner: config.owner.clone(),
        });
        let pushes = Arc::new(PushWorker::new(
            store.clone(),
            notifier,
            config.push.clone(),
            config.owner.clone(),
        ));
        Self {
            store,
            clock,
            checker,
            pushes,
            outbox_written: Arc::new(Notify::new()),
            config: Arc::new(config),
        }
    }

    /// The same engine with a guesser for the 3-day autoCheck (without one, a waybill
    /// with no trace for 3 days is simply aborted).
    pub fn with_guesser(mut self, guesser: Arc<dyn CompanyGuesser>) -> Self {
        let c = &self.checker;
        self.checker = Arc::new(Checker {
            store: c.store.clone(),
            carriers: c.carriers.clone(),
            guesser: Some(guesser),
            policy: c.policy.clone(),
            problems: c.problems.clone(),
            lanes: c.lanes.clone(),
            owner: c.owner.clone(),
        });
        self
    }

    /// The same engine telling `observer` of every push verdict.
    pub fn with_push_observer(mut self, observer: Arc<dyn VerdictObserver>) -> Self {
        self.pushes = Arc::new((*self.pushes).clone().observed_by(observer));
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Now, by the engine's clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The companies the upstream aggregator answers for (no plugin of their own), sorted.
    pub fn routed_companies(&self) -> Vec<String> {
        self.checker.carriers.routed_codes()
    }

    /// Whether a carrier plugin answers for `company`, its own or the upstream.
    pub fn knows_company(&self, company: &str) -> bool {
        self.checker.carriers.knows(company)
    }

    /// Tracks `waybills` (all of `company`) now, through the same per-carrier gate as the
    /// scheduled checks, so a real-time query counts against the carrier's concurrency and
    /// rate like a poll does. Lines get their place from the waybills' from/to.
    pub async fn track(
        &self,
        company: &str,
        waybills: &[Waybill],
    ) -> Vec<waybill_core::carrier::TrackOutcome> {
        self.checker.carriers.track(company, waybills).await
    }

    /// The arrival estimate for `trace` of `company` to `to` at `now`, from the lanes
    /// learned so far (loaded from the store on first use).
    pub async fn estimate(
        &self,
        company: &str,
        trace: &Trace,
        to: Option<&str>,
        now: Timestamp,
    ) -> StoreResult<Option<Estimate>> {
        self.checker.lanes.ready().await?;
        let m = waybill_core::eta::Milestones::of(trace, to);
        Ok(self.checker.lanes.estimate(company, &m, now))
    }

    /// The problem flags of `trace` at `now` with the engine's thresholds and the lanes
    /// learned so far (lane lateness).
    pub fn flags(
        &self,
        trace: &Trace,
        facts: &SubscriptionFacts<'_>,
        now: Timestamp,
    ) -> Vec<waybill_core::problem::Flag> {
        let m = waybill_core::eta::Milestones::of(trace, facts.to);
        self.checker
            .lanes
            .flags(trace, &m, facts, &self.config.problems, now)
            .0
    }

    /// The lanes learned so far (loaded from the store on first use).
    pub async fn lanes(&self) -> StoreResult<waybill_core::eta::Lanes> {
        self.checker.lanes.ready().await?;
        Ok(self.checker.lanes.snapshot())
    }

    /// Carrier codes a plugin of their own answers for.
    pub fn companies(&self) -> Vec<String> {
        self.checker.carriers.codes()
    }

    /// When a waybill subscribed at `now` should first be checked (the policy's first
    /// check, 15 min ± jitter by default): the `next_check_at` of a new subscription.
    pub fn first_check_at(&self, waybill: &Waybill, now: Timestamp) -> Timestamp {
        let facts = SubscriptionFacts::new(waybill, now);
        match policy::next(
            &facts,
            &TraceSummary::EMPTY,
            &LastOutcome::NeverChecked,
            now,
            &self.config.policy,
        ) {
            Decision::CheckAt { at, .. } => at,
            _ => now,
        }
    }

    /// One scheduling round at `now`: checks the due subscriptions.
    /// Wakes the delivery loop of [`Engine::run`] when the round queued pushes.
    pub async fn check_due(&self, now: Timestamp) -> StoreResult<CheckReport> {
        let report = self
            .checker
            .round(
                now,
                self.config.batch_size,
                self.clock.lease_now(),
                self.config.lease,
            )
            .await?;
        if report.pushes > 0 {
            self.outbox_written.notify_one();
        }
        Ok(report)
    }

    /// One delivery round at `now`: delivers the due pushes.
    pub async fn deliver_due(&self, now: Timestamp) -> StoreResult<DeliveryReport> {
        self.pushes.deliver_due(now, self.clock.lease_now()).await
    }

    /// Checks, then delivers what the checks queued.
    pub async fn run_once(&self, now: Timestamp) -> StoreResult<RoundReport> {
        let checks = self.check_due(now).await?;
        let deliveries = self.deliver_due(now).await?;
        Ok(RoundReport { checks, deliveries })
    }

    /// Runs the engine on its clock until `shutdown` completes: the check loop and the
    /// delivery loop as two tasks side by side, so a queued push never waits for a round
    /// of checks. Returns once both loops have stopped.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        let (stop, stopped) = watch::channel(false);
        let mut loops = JoinSet::new();
        let (engine, until) = (self.clone(), stopped.clone());
        loops.spawn(async move { engine.run_checks(stop_requested(until)).await });
        let engine = self.clone();
        loops.spawn(async move {
            engine.run_deliveries(stop_requested(stopped)).await;
        });
        shutdown.await;
        let _ = stop.send(true);
        while let Some(joined) = loops.join_next().await {
            if let Err(e) = joined {
                tracing::error!(error = %e, "engine loop failed");
            }
        }
    }

    /// Runs check rounds until `shutdown` completes. Idle rounds wait `idle_wait` of real
    /// time; a store error is logged and retried after the same wait. Before each round,
    /// waits while the delivery backlog is full ([`Engine::await_push_backlog`]).
    pub async fn run_checks(&self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            if !self.await_push_backlog(&mut shutdown).await {
                return;
            }
            let busy = match self.check_due(self.now()).await {
                Ok(report) => {
                    if report.claimed > 0 {
                        tracing::debug!(?report, "check round");
                    }
                    report.claimed > 0
                }
                Err(e) => {
                    log_store_error(&e);
                    false
                }
            };
            if !self.pause(busy, &mut shutdown).await {
                return;
            }
        }
    }

    /// Waits until fewer than `push_backlog` pushes are due and unclaimed, checking every
    /// [`BACKLOG_POLL`]. False if `shutdown` completed first. A store error does not hold
    /// the checks back (it is the checks' own round that reports it).
    pub async fn await_push_backlog(
        &self,
        shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> bool {
        let limit = self.config.push_backlog;
        if limit == 0 {
            return true;
        }
        loop {
            let (now, lease_now) = (self.now(), self.clock.lease_now());
            match self.store.waiting_pushes(now, lease_now, limit).await {
                Ok(n) if n >= u64::from(limit) => {}
                _ => return true,
            }
            tokio::select! {
                _ = shutdown.as_mut() => return false,
                _ = tokio::time::sleep(BACKLOG_POLL) => {}
            }
        }
    }

    /// Delivers pushes until `shutdown` completes ([`PushWorker::run`]), woken as soon as
    /// a check round queues pushes, otherwise every `idle_wait` (for retries coming due).
    pub async fn run_deliveries(&self, shutdown: impl Future<Output = ()>) -> DeliveryReport {
        let idle = Duration::try_from(self.config.idle_wait).unwrap_or(Duration::from_secs(1));
        // Pushes another daemon queued (a check it made, a redeliver) wake this loop too,
        // so a free slot here does not wait for the idle poll.
        let watcher = match self.store.watch_pushes(self.outbox_written.clone()).await {
            Ok(watcher) => watcher,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for pushes queued elsewhere; polling");
                None
            }
        };
        let report = self
            .pushes
            .run(self.clock.as_ref(), &self.outbox_written, idle, shutdown)
            .await;
        if let Some(watcher) = watcher {
            watcher.abort();
        }
        report
    }

    /// Between two rounds: yields after a busy one (so shutdown is noticed under load),
    /// otherwise waits `idle_wait`. False on shutdown.
    async fn pause(
        &self,
        busy: bool,
        shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> bool {
        let idle = Duration::try_from(self.config.idle_wait).unwrap_or(Duration::from_secs(1));
        tokio::select! {
            biased;
            _ = shutdown.as_mut() => false,
            _ = tokio::time::sleep(idle), if !busy => true,
            _ = tokio::task::yield_now(), if busy => true,
        }
    }
}

/// How often paused checks look at the delivery backlog again.
pub const BACKLOG_POLL: Duration = Duration::from_millis(5);

/// Completes once `stop` says true (or its sender is gone).
async fn stop_requested(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

impl Engine {
    /// Runs the engine on a virtual clock up to `until`, jumping straight from one due
    /// instant to the next (the earliest due check or push), so months of monitoring pass
    /// in as long as the checks themselves take. Returns the summed reports.
    pub async fn fast_forward(
        &self,
        clock: &ManualClock,
        until: Timestamp,
    ) -> StoreResult<RoundReport> {
        let mut total = RoundReport::default();
        loop {
            let next_check = self.store.next_due().await?;
            let next_push = self.store.next_push_due().await?;
            let Some(next) = [next_check, next_push].into_iter().flatten().min() else {
                break;
            };
            let now = clock.now();
            if next > until {
                break;
            }
            if next > now {
                clock.set(next);
            }
            let r = self.run_once(clock.now()).await?;
            if r.is_idle() {
                // Due rows that cannot be claimed (leased elsewhere): step past them.
                clock.set(clock.now() + SignedDuration::from_secs(1));
            }
            total.checks.merge(&r.checks);
            total.deliveries.merge(&r.deliveries);
        }
        if clock.now() < until {
            clock.set(until);
        }
        Ok(total)
    }
}

fn log_store_error(e: &StoreError) {
    tracing::error!(error = %e, "engine round failed; retrying");
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use async_trait::async_trait;
    use waybill_core::carrier::{Capabilities, Delivery, Push, Reply, TrackOutcome};
    use waybill_core::model::{EventTime, Trace, TrackEvent, CHINA_OFFSET};
    use waybill_core::reminder::Reminder;
    use waybill_core::state::State;

    use super::*;
    use crate::store::{
        Lease, MonitorStatus, NewSubscription, NewTenant, SqliteStore, SubscribeOptions,
        SubscribeOutcome, SubscriptionId,
    };

    /// A test double of an external carrier: answers each number with the events the
    /// test put there, and records the batches it was asked.
    struct Scripted {
        codes: Vec<&'static str>,
        max_batch: usize,
        events: Mutex<HashMap<String, Vec<TrackEvent>>>,
        batches: Mutex<Vec<usize>>,
    }

    impl Scripted {
        fn new(code: &'static str, max_batch: usize) -> Arc<Self> {
            Arc::new(Self {
                codes: vec![code],
                max_batch,
                events: Mutex::default(),
                batches: Mutex::default(),
            })
        }

        fn add(&self, number: &str, at: Timestamp, text: &str, state: State) {
            self.events
                .lock()
                .expect("lock")
                .entry(number.into())
                .or_default()
                .push(TrackEvent::new(
                    EventTime::new(at, CHINA_OFFSET),
                    text,
                    state,
                ));
        }
    }

    #[async_trait]
    impl Carrier for Scripted {
        fn codes(&self) -> &[&str] {
            &self.codes
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities {
                max_batch: self.max_batch,
                ..Capabilities::default()
            }
        }
        async fn track(&self, waybills: &[Waybill]) -> Vec<TrackOutcome> {
            self.batches.lock().expect("lock").push(waybills.len());
            let events = self.events.lock().expect("lock");
            waybills
                .iter()
                .map(|w| {
                    let ev = events.get(&w.number).cloned().unwrap_or_default();
                    Ok(Trace::from_events(&w.company, &w.number, ev))
                })
                .collect()
        }
    }

    /// Keeps every push it is given and accepts it.
    /// A kuaidi100 acknowledgement.
    const ACK: &str = r#"{"result":true,"returnCode":"200","message":"成功"}"#;

    #[derive(Default)]
    struct Inbox(Mutex<Vec<Push>>);

    impl Inbox {
        fn params(&self) -> Vec<serde_json::Value> {
            self.0
                .lock()
                .expect("lock")
                .iter()
                .map(|p| {
                    let (_, param) = url::form_urlencoded::parse(&p.body)
                        .find(|(k, _)| k == "param")
                        .expect("param field");
                    serde_json::from_str(&param).expect("param json")
                })
                .collect()
        }
    }

    #[async_trait]
    impl Notifier for Inbox {
        async fn deliver(&self, push: &Push) -> Delivery {
            self.0.lock().expect("lock").push(push.clone());
            Delivery::Answered(Reply::ok(ACK))
        }
    }

    struct Fixed(Vec<String>);
    impl CompanyGuesser for Fixed {
        fn candidates(&self, _number: &str) -> Vec<String> {
            self.0.clone()
        }
    }

    fn t0() -> Timestamp {
        "2024-05-01T00:00:00Z".parse().expect("ts")
    }

    fn hours(h: i64) -> SignedDuration {
        SignedDuration::from_hours(h)
    }

    struct Rig {
        _dir: tempfile::TempDir,
        store: Arc<SqliteStore>,
        clock: Arc<ManualClock>,
        inbox: Arc<Inbox>,
        engine: Engine,
        tenant: i64,
    }

    async fn rig(carriers: Vec<Arc<dyn Carrier>>, config: EngineConfig) -> Rig {
        let dir = tempfile::tempdir().expect("dir");
        let store = Arc::new(SqliteStore::open_dir(dir.path()).await.expect("store"));
        let clock = Arc::new(ManualClock::new(t0()));
        let inbox = Arc::new(Inbox::default());
        let engine = Engine::with_notifier(
            store.clone(),
            carriers,
            clock.clone(),
            inbox.clone(),
            config,
        );
        let tenant = store
            .create_tenant(
                &NewTenant {
                    name: "shop".into(),
                    key: "KEY".into(),
                    customer: None,
                },
                t0(),
            )
            .await
            .expect("tenant")
            .id;
        Rig {
            _dir: dir,
            store,
            clock,
            inbox,
            engine,
            tenant,
        }
    }

    impl Rig {
        async fn subscribe(&self, company: &str, number: &str) -> SubscriptionId {
            self.subscribe_with(company, number, SubscribeOptions::default())
                .await
        }

        async fn subscribe_with(
            &self,
            company: &str,
            number: &str,
            options: SubscribeOptions,
        ) -> SubscriptionId {
            let now = self.clock.now();
            let w = Waybill::new(company, number);
            let out = self
                .store
                .subscribe(&NewSubscription {
                    tenant_id: self.tenant,
                    company: company.into(),
                    number: number.into(),
                    phone: None,
                    from: None,
                    to: None,
                    callback_url: "http://receiver.example/cb".into(),
                    salt: Some("SALT".into()),
                    dialect: "kuaidi100".into(),
                    dialect_params: Default::default(),
                    options,
                    next_check_at: self.engine.first_check_at(&w, now),
                    created_at: now,
                })
                .await
                .expect("subscribe");
            match out {
                SubscribeOutcome::Created { id, .. } => id,
                other => panic!("{other:?}"),
            }
        }

        async fn forward(&self, by: SignedDuration) -> RoundReport {
            let until = self.clock.now() + by;
            self.engine
                .fast_forward(&self.clock, until)
                .await
                .expect("fast forward")
        }
    }

    #[tokio::test]
    async fn checks_wait_while_the_delivery_backlog_is_full() {
        let sandbox = Scripted::new("sandbox", 10);
        let config = EngineConfig {
            push_backlog: 3,
            ..EngineConfig::default()
        };
        let r = rig(vec![sandbox.clone()], config).await;
        for n in ["SB1", "SB2", "SB3"] {
            sandbox.add(n, t0(), "已揽收", State::Collected);
            r.subscribe("sandbox", n).await;
        }
        r.clock.set(t0() + hours(1));
        let report = r.engine.check_due(r.clock.now()).await.expect("checks");
        assert_eq!(report.pushes, 3);
        assert_eq!(
            r.store
                .waiting_pushes(r.clock.now(), r.clock.now(), 10)
                .await
                .expect("count"),
            3
        );

        // Three pushes wait: the checks hold back until the shutdown below ends the wait.
        let waited = std::time::Instant::now();
        let shutdown = tokio::time::sleep(Duration::from_millis(150));
        tokio::pin!(shutdown);
        assert!(!r.engine.await_push_backlog(&mut shutdown).await);
        assert!(waited.elapsed() >= Duration::from_millis(150));

        // Once they are delivered the checks go on at once.
        let delivered = r.engine.deliver_due(r.clock.now()).await.expect("deliver");
        assert_eq!(delivered.delivered, 3);
        let never = std::future::pending::<()>();
        tokio::pin!(never);
        let resumed = tokio::time::timeout(
            Duration::from_secs(5),
            r.engine.await_push_backlog(&mut never),
        )
        .await;
        assert_eq!(resumed.ok(), Some(true));
    }

    #[tokio::test]
    async fn only_changes_are_pushed_and_signing_ends_with_a_shutdown_push() {
        let sandbox = Scripted::new("sandbox", 10);
        let r = rig(vec![sandbox.clone()], EngineConfig::default()).await;
        sandbox.add("SB1", t0(), "已揽收", State::Collected);
        let id = r.subscribe("sandbox", "SB1").await;

        // First check ~15 min later: the trace is new, so it is pushed.
        let report = r.forward(hours(1)).await;
        assert_eq!((report.checks.checked, report.deliveries.delivered), (1, 1));
        // A day of checks with nothing new: no more pushes.
        let report = r.forward(hours(24)).await;
        assert!(report.checks.checked >= 5, "{report:?}");
        assert_eq!(report.checks.pushes, 0);

        sandbox.add("SB1", t0() + hours(26), "运输中", State::InTransit);
        r.forward(hours(5)).await;
        sandbox.add("SB1", t0() + hours(31), "已签收", State::Delivered);
        let report = r.forward(hours(5)).await;
        assert_eq!(report.checks.shutdown, 1);

        let params = r.inbox.params();
        let statuses: Vec<_> = params.iter().map(|p| p["status"].clone()).collect();
        assert_eq!(statuses, ["polling", "polling", "shutdown"]);
        let last = &params[2]["lastResult"];
        assert_eq!(
            (&last["ischeck"], &last["state"]),
            (&"1".into(), &"3".into())
        );
        assert_eq!(last["data"].as_array().map(Vec::len), Some(3), "full trace");
        assert_eq!(last["data"][0]["context"], "已签收", "newest first");

        let sub = r
            .store
            .subscription(id)
            .await
            .expect("read")
            .expect("exists");
        assert_eq!(sub.status, MonitorStatus::Shutdown);
        // Ended: a month later nothing more is checked or pushed.
        let report = r.forward(hours(24 * 30)).await;
        assert!(report.is_idle());
        assert_eq!(r.inbox.params().len(), 3);
    }

    #[tokio::test]
    async fn no_trace_for_three_days_aborts_with_the_kuaidi100_message() {
        let sandbox = Scripted::new("sandbox", 10);
        let r = rig(vec![sandbox.clone()], EngineConfig::default()).await;
        let id = r.subscribe("sandbox", "NOPE1").await;
        let report = r.forward(hours(71)).await;
        assert_eq!(
            report.checks.pushes, 1,
            "before the deadline only the 401 problem (no trace after 24 h) is pushed"
        );
        r.forward(hours(6)).await;
        let params = r.inbox.params();
        assert_eq!(params.len(), 2);
        assert_eq!(params[0]["status"], "polling");
        assert_eq!(
            params[0]["message"],
            "no trace 24 h after subscribing; threshold 24 h"
        );
        assert_eq!(params[1]["status"], "abort");
        assert_eq!(params[1]["message"], "3天查询无记录");
        assert_eq!(params[1]["comNew"], "");
        let sub = r
            .store
            .subscription(id)
            .await
            .expect("read")
            .expect("exists");
        assert_eq!(sub.status, MonitorStatus::Abort);
    }

    #[tokio::test]
    async fn the_auto_check_moves_a_silent_waybill_to_the_carrier_that_has_it() {
        let wrong = Scripted::new("wrong", 10);
        let right = Scripted::new("right", 10);
        right.add("X1", t0() + hours(1), "已揽收", State::Collected);
        let r = rig(vec![wrong.clone(), right.clone()], EngineConfig::default()).await;
        let r = Rig {
            engine: r.engine.clone().with_guesser(Arc::new(Fixed(vec![
                "wrong".into(),
                "unknown".into(),
                "right".into(),
            ]))),
            ..r
        };
        let id = r.subscribe("wrong", "X1").await;
        r.forward(hours(80)).await;

        // The 401 problem at 24 h, the move, the trace from the right carrier.
        let params = r.inbox.params();
        assert_eq!(params.len(), 3, "{params:?}");
        assert!(params[0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("no trace"));
        let params = &params[1..];
        assert_eq!(
            (
                &params[0]["status"],
                &params[0]["autoCheck"],
                &params[0]["comOld"],
                &params[0]["comNew"]
            ),
            (&"abort".into(), &"0".into(), &"".into(), &"right".into())
        );
        assert_eq!(
            (
                &params[1]["status"],
                &params[1]["autoCheck"],
                &params[1]["comOld"],
                &params[1]["comNew"]
            ),
            (
                &"polling".into(),
                &"1".into(),
                &"wrong".into(),
                &"right".into()
            )
        );
        assert_eq!(params[1]["lastResult"]["com"], "right");
        let sub = r
            .store
            .subscription(id)
            .await
            .expect("read")
            .expect("exists");
        assert_eq!(
            (sub.status, sub.company.as_str()),
            (MonitorStatus::Polling, "right")
        );
    }

    /// A whole journey: collected at `at`, in the destination city 20 h later, out for
    /// delivery at 26 h, signed at 28 h.
    fn journey(carrier: &Scripted, number: &str, at: Timestamp) {
        carrier.add(number, at, "已揽收", State::Collected);
        carrier.add(
            number,
            at + hours(20),
            "快件到达【北京转运中心】",
            State::ArrivedDestinationCity,
        );
        carrier.add(number, at + hours(26), "派件中", State::OutForDelivery);
        carrier.add(number, at + hours(28), "已签收", State::Delivered);
    }

    #[tokio::test]
    async fn deliveries_teach_the_lanes_and_a_resultv2_8_push_carries_the_estimate() {
        let sandbox = Scripted::new("sandbox", 10);
        let mut config = EngineConfig::default();
        config.eta.min_samples = 3;
        let r = rig(vec![sandbox.clone()], config.clone()).await;
        for i in 0..4 {
            let number = format!("SBL{i}");
            journey(&sandbox, &number, t0() - hours(40));
            r.subscribe("sandbox", &number).await;
        }
        r.forward(hours(2)).await;
        let lanes = r.store.lanes().await.expect("lanes");
        let carrier = lanes
            .iter()
            .find(|(c, scope, _)| c == "sandbox" && *scope == waybill_core::eta::Scope::Carrier)
            .expect("the carrier-wide lane is stored");
        assert_eq!(carrier.2.deliveries, 4, "one lesson per delivered parcel");

        // A new parcel collected now: its push says when it should arrive (28 h on).
        let collected = r.clock.now();
        sandbox.add("SBX", collected, "已揽收", State::Collected);
        let options = SubscribeOptions {
            resultv2: 8,
            ..SubscribeOptions::default()
        };
        let id = r.subscribe_with("sandbox", "SBX", options).await;
        r.forward(hours(1)).await;
        let params = r.inbox.params();
        let last = &params.last().expect("a push")["lastResult"];
        let china = jiff::tz::TimeZone::fixed(CHINA_OFFSET);
        let hour = |t: Timestamp| {
            t.to_zoned(china.clone())
                .strftime("%Y-%m-%d %H")
                .to_string()
        };
        let expected = collected + hours(28);
        let said = last["arrivalTime"].as_str().expect("arrivalTime");
        assert!(
            said == hour(expected)
                || said == hour(expected + hours(1))
                || said == hour(expected - hours(1)),
            "{said} vs {}",
            hour(expected)
        );
        assert_eq!(last["totalTime"], "1天4小时");
        assert!(
            last["remainTime"]
                .as_str()
                .is_some_and(|t| t.starts_with("1天")),
            "{last}"
        );
        let sub = r.store.subscription(id).await.expect("read").expect("sub");
        let eta = sub.eta.expect("the estimate is stored with the change");
        assert!(
            matches!(&eta.basis, waybill_core::eta::Basis::Learned { scope, samples: 4, .. } if scope == "carrier"),
            "{eta:?}"
        );

        // Another engine on the same store starts from what was learned.
        let again = Engine::with_notifier(
            r.store.clone(),
            vec![sandbox.clone() as Arc<dyn Carrier>],
            r.clock.clone(),
            r.inbox.clone(),
            config,
        );
        let trace = r.store.trace(id).await.expect("read").expect("trace");
        let fresh = again
            .estimate("sandbox", &trace, None, r.clock.now())
            .await
            .expect("lanes load")
            .expect("an estimate");
        assert_eq!(fresh.basis, eta.basis);
    }

    #[tokio::test]
    async fn a_parcel_slower_than_its_lane_gets_the_490_push_without_a_new_line() {
        let sandbox = Scripted::new("sandbox", 10);
        let mut config = EngineConfig::default();
        config.eta.min_samples = 3;
        let r = rig(vec![sandbox.clone()], config).await;
        for i in 0..4 {
            let number = format!("SBL{i}");
            journey(&sandbox, &number, t0() - hours(40));
            r.subscribe("sandbox", &number).await;
        }
        r.forward(hours(2)).await;
        let collected = r.clock.now();
        sandbox.add("SBS", collected, "已揽收", State::Collected);
        let id = r.subscribe("sandbox", "SBS").await;
        r.forward(hours(26)).await;
        let before = r.inbox.params().len();
        let sub = r.store.subscription(id).await.expect("read").expect("sub");
        assert!(sub.problems.codes.is_empty(), "{:?}", sub.problems);
        let due = sub.problems.due_at.expect("lateness is due");
        assert!(
            (due.duration_since(collected) - hours(28)).abs() < SignedDuration::from_mins(40),
            "due {due}, collected {collected}"
        );
        r.forward(hours(4)).await;
        let params = r.inbox.params();
        assert_eq!(params.len(), before + 1, "one push for the flag");
        let message = params.last().expect("push")["message"]
            .as_str()
            .unwrap_or("")
            .to_string();
        assert!(
            message.starts_with("in transit")
                && message.contains("95 % of 4 deliveries on carrier"),
            "{message}"
        );
        let sub = r.store.subscription(id).await.expect("read").expect("sub");
        assert_eq!(sub.problems.codes, [490]);
    }

    #[tokio::test]
    async fn a_subscription_with_reminders_hears_only_of_the_moments_it_chose() {
        let sandbox = Scripted::new("sandbox", 10);
        let r = rig(vec![sandbox.clone()], EngineConfig::default()).await;
        let options = SubscribeOptions {
            reminders: vec![Reminder::OutForDelivery],
            ..SubscribeOptions::default()
        };
        let start = r.clock.now();
        sandbox.add("SBR", start, "已揽收", State::Collected);
        r.subscribe_with("sandbox", "SBR", options).await;
        r.forward(hours(5)).await;
        sandbox.add("SBR", start + hours(6), "运输中", State::InTransit);
        r.forward(hours(5)).await;
        assert!(
            r.inbox.params().is_empty(),
            "collected and in transit were not asked for"
        );
        sandbox.add("SBR", start + hours(12), "派件中", State::OutForDelivery);
        r.forward(hours(5)).await;
        sandbox.add("SBR", start + hours(14), "已签收", State::Delivered);
        r.forward(hours(5)).await;
        let params = r.inbox.params();
        let told: Vec<_> = params
            .iter()
            .map(|p| {
                (
                    p["status"].clone(),
                    p["lastResult"]["data"][0]["context"].clone(),
                )
            })
            .collect();
        assert_eq!(
            told,
            [
                ("polling".into(), "派件中".into()),
                ("shutdown".into(), "已签收".into())
            ],
            "out for delivery, then the end of monitoring"
        );
    }

    #[tokio::test]
    async fn a_parcel_left_in_a_locker_gets_its_412_push_with_no_new_carrier_line() {
        let sandbox = Scripted::new("sandbox", 10);
        sandbox.add("SB7", t0(), "已揽收", State::Collected);
        sandbox.add(
            "SB7",
            t0() + hours(1),
            "已存放至丰巢智能柜，请凭取件码取件",
            State::InLocker,
        );
        let r = rig(vec![sandbox.clone()], EngineConfig::default()).await;
        let id = r.subscribe("sandbox", "SB7").await;
        r.forward(hours(18)).await;
        let before = r.inbox.params();
        assert!(
            before.iter().all(|p| p["message"] == ""),
            "no problem before 18 h in the locker: {before:?}"
        );
        r.forward(hours(3)).await;
        let params = r.inbox.params();
        assert_eq!(params.len(), before.len() + 1, "{params:?}");
        let flagged = params.last().expect("a push");
        assert_eq!(flagged["status"], "polling");
        let message = flagged["message"].as_str().unwrap_or("");
        assert!(
            message.starts_with("in a locker for 18 h") && message.ends_with("threshold 18 h"),
            "{message}"
        );
        assert_eq!(
            flagged["lastResult"]["data"],
            before.last().expect("trace push")["lastResult"]["data"],
            "the same lines: no new carrier event"
        );
        let sub = r
            .store
            .subscription(id)
            .await
            .expect("read")
            .expect("exists");
        assert_eq!(sub.problems.codes, [412]);
        // Five days after the last line, 403 joins it.
        r.forward(hours(24 * 5)).await;
        let params = r.inbox.params();
        let last = params.last().expect("a push");
        assert!(
            last["message"]
                .as_str()
                .unwrap_or("")
                .contains("threshold 5 d"),
            "{last}"
        );
        let sub = r
            .store
            .subscription(id)
            .await
            .expect("read")
            .expect("exists");
        assert_eq!(sub.problems.codes, [403, 412]);
    }

    #[tokio::test]
    async fn sixty_days_without_change_aborts_with_the_full_trace() {
        let sandbox = Scripted::new("sandbox", 10);
        sandbox.add("SB2", t0(), "已揽收", State::Collected);
        let r = rig(vec![sandbox.clone()], EngineConfig::default()).await;
        let id = r.subscribe("sandbox", "SB2").await;
        r.forward(hours(24 * 59)).await;
        // The trace, then the 403 problem (not updated for 5 days) with no new line.
        let params = r.inbox.params();
        assert_eq!(params.len(), 2, "{params:?}");
        assert!(
            params[1]["message"]
                .as_str()
                .unwrap_or("")
                .contains("threshold"),
            "{}",
            params[1]
        );
        r.forward(hours(24 * 2)).await;
        let params = r.inbox.params();
        assert_eq!(params.len(), 3);
        assert_eq!(params[2]["status"], "abort");
        assert_eq!(params[2]["message"], "60天无变化");
        assert_eq!(params[2]["lastResult"]["data"][0]["context"], "已揽收");
        let sub = r
            .store
            .subscription(id)
            .await
            .expect("read")
            .expect("exists");
        assert_eq!(sub.status, MonitorStatus::Abort);
    }

    #[tokio::test]
    async fn an_answer_that_would_go_backwards_is_not_pushed() {
        let sandbox = Scripted::new("sandbox", 10);
        sandbox.add("SB1", t0(), "已揽收", State::Collected);
        sandbox.add("SB1", t0() + hours(2), "派送中", State::OutForDelivery);
        let r = rig(vec![sandbox.clone()], EngineConfig::default()).await;
        let id = r.subscribe("sandbox", "SB1").await;
        r.forward(hours(3)).await;
        assert_eq!(r.inbox.params().len(), 1);

        // The carrier's next answers lose the newest line (a lagging replica).
        sandbox
            .events
            .lock()
            .expect("lock")
            .get_mut("SB1")
            .expect("events")
            .pop();
        r.forward(hours(12)).await;
        assert_eq!(r.inbox.params().len(), 1, "no push of the shorter trace");
        let stored = r.store.trace(id).await.expect("trace").expect("exists");
        assert_eq!(stored.data.len(), 2);
        assert_eq!(stored.state, State::OutForDelivery);
    }

    #[tokio::test]
    async fn run_works_through_due_work_and_stops_on_shutdown() {
        let sandbox = Scripted::new("sandbox", 10);
        sandbox.add("SB1", t0(), "已揽收", State::Collected);
        let config = EngineConfig {
            idle_wait: SignedDuration::from_millis(5),
            ..EngineConfig::default()
        };
        let r = rig(vec![sandbox.clone()], config).await;
        r.subscribe("sandbox", "SB1").await;
        r.clock.advance(hours(1));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let engine = r.engine.clone();
        let task = tokio::spawn(async move {
            engine
                .run(async {
                    let _ = stopped.await;
                })
                .await
        });
        for _ in 0..500 {
            if !r.inbox.params().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(r.inbox.params().len(), 1);
        stop.send(()).expect("engine still running");
        task.await.expect("run returned");
    }

    #[tokio::test]
    async fn due_waybills_of_one_carrier_are_asked_in_batches_of_its_size() {
        let sandbox = Scripted::new("sandbox", 2);
        let r = rig(vec![sandbox.clone()], EngineConfig::default()).await;
        for i in 0..5 {
            r.subscribe("sandbox", &format!("SB{i}")).await;
        }
        let report = r.engine.check_due(t0() + hours(1)).await.expect("round");
        assert_eq!(report.checked, 5);
        let mut batches = sandbox.batches.lock().expect("lock").clone();
        batches.sort();
        assert_eq!(batches, vec![1, 2, 2]);
    }

    #[tokio::test]
    async fn a_crashed_engines_claims_are_checked_by_another_after_the_lease() {
        let sandbox = Scripted::new("sandbox", 10);
        sandbox.add("SB1", t0(), "已揽收", State::Collected);
        let r = rig(vec![sandbox.clone()], EngineConfig::default()).await;
        let id = r.subscribe("sandbox", "SB1").await;
        let now = t0() + hours(1);
        // Another daemon claims the row and dies before writing anything.
        let taken = r
            .store
            .claim_due(
                now,
                10,
                &Lease::until("crashed", now, now + SignedDuration::from_mins(10)),
            )
            .await
            .expect("claim");
        assert_eq!(taken.len(), 1);
        r.clock.set(now);
        assert_eq!(r.engine.check_due(now).await.expect("round").claimed, 0);
        // The engine's clock (here also its lease clock) passes the end of the lease.
        let after = now + SignedDuration::from_mins(11);
        r.clock.set(after);
        let report = r.engine.check_due(after).await.expect("round");
        assert_eq!((report.claimed, report.checked, report.pushes), (1, 1, 1));
        let sub = r
            .store
            .subscription(id)
            .await
            .expect("read")
            .expect("exists");
        assert_eq!(sub.lease_owner, None);
        assert_eq!(sub.checks, 1);
    }

    #[tokio::test]
    async fn an_unknown_company_backs_off_instead_of_failing_the_round() {
        let r = rig(vec![], EngineConfig::default()).await;
        let id = r.subscribe("nobody", "N1").await;
        let report = r.engine.check_due(t0() + hours(1)).await.expect("round");
        assert_eq!((report.checked, report.errors), (1, 1));
        let sub = r
            .store
            .subscription(id)
            .await
            .expect("read")
            .expect("exists");
        assert!(sub.last_error.as_deref().unwrap_or("").contains("nobody"));
        assert!(sub.next_check_at > t0() + hours(1));
    }

    #[tokio::test]
    async fn pushes_reach_a_real_receiver_signed_and_with_the_push_id_header() {
        use crate::push::deliver::tests::{receiver, ACK};
        let (addr, seen) = receiver(ACK, 200, Duration::ZERO).await;
        let sandbox = Scripted::new("sandbox", 10);
        sandbox.add("SB1", t0(), "已揽收", State::Collected);
        let dir = tempfile::tempdir().expect("dir");
        let store = Arc::new(SqliteStore::open_dir(dir.path()).await.expect("store"));
        let clock = Arc::new(ManualClock::new(t0()));
        let engine = Engine::new(
            store.clone(),
            vec![sandbox.clone()],
            clock.clone(),
            // The receiver is on 127.0.0.1.
            EngineConfig {
                allow_private_callbacks: true,
                ..EngineConfig::default()
            },
        )
        .expect("engine");
        let tenant = store
            .create_tenant(
                &NewTenant {
                    name: "t".into(),
                    key: "k".into(),
                    customer: None,
                },
                t0(),
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
                callback_url: format!("http://{addr}/cb"),
                salt: Some("SALT".into()),
                dialect: "kuaidi100".into(),
                dialect_params: Default::default(),
                options: SubscribeOptions::default(),
                next_check_at: t0(),
                created_at: t0(),
            })
            .await
            .expect("subscribe");
        let SubscribeOutcome::Created { id, .. } = out else {
            panic!("{out:?}");
        };
        let report = engine.run_once(t0()).await.expect("round");
        assert_eq!(report.deliveries.delivered, 1);
        let seen = seen.lock().expect("lock").clone();
        assert_eq!(seen[0].0, store.push_id(id, 1));
        let form: HashMap<String, String> = url::form_urlencoded::parse(seen[0].1.as_bytes())
            .into_owned()
            .collect();
        waybill_core::sign::verify_kuaidi100_push(&form["param"], "SALT", &form["sign"])
            .expect("valid sign");
    }

    /// A carrier whose every answer has one more event than the last (stamped on
    /// `clock`): each check of each waybill is a change, so each queues a push.
    struct Ticking {
        clock: Arc<dyn Clock>,
        events: Mutex<HashMap<String, Vec<TrackEvent>>>,
    }

    #[async_trait]
    impl Carrier for Ticking {
        fn codes(&self) -> &[&str] {
            &["sandbox"]
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities::default()
        }
        async fn track(&self, waybills: &[Waybill]) -> Vec<TrackOutcome> {
            let mut events = self.events.lock().expect("lock");
            waybills
                .iter()
                .map(|w| {
                    let trace = events.entry(w.number.clone()).or_default();
                    trace.push(TrackEvent {
                        time: EventTime::new(self.clock.now(), CHINA_OFFSET),
                        context: format!("到达第 {} 站", trace.len() + 1),
                        location: None,
                        area_code: None,
                        area_name: None,
                        state: State::InTransit,
                        raw_code: None,
                        rule: None,
                    });
                    Ok(Trace::from_events(&w.company, &w.number, trace.clone()))
                })
                .collect()
        }
    }

    /// Answers HTTP 500 for every push to `failing`, accepts the others and counts them.
    struct OneDeadReceiver {
        failing: &'static str,
        accepted: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl Notifier for OneDeadReceiver {
        async fn deliver(&self, push: &Push) -> Delivery {
            if push.url.starts_with(self.failing) {
                return Delivery::Answered(Reply {
                    status: 500,
                    retry_after: None,
                    body: Vec::new(),
                });
            }
            self.accepted.lock().expect("lock").push(push.url.clone());
            Delivery::Answered(Reply::ok(ACK))
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_tenants_dead_receiver_does_not_stop_the_pushes_of_another() {
        // The daemon's two loops on a fast clock (one real millisecond is about three
        // minutes): tenant X's 12 waybills push to a receiver that always answers 500,
        // tenant Y's 3 to one that accepts. Every check finds a change. X's pushes pile up
        // behind their failing heads, far past the backlog limit of 8; they cannot be sent,
        // so they must not pause the checks, and Y keeps getting a push per check.
        let dir = tempfile::tempdir().expect("dir");
        let store = Arc::new(SqliteStore::open_dir(dir.path()).await.expect("store"));
        let clock: Arc<dyn Clock> = Arc::new(waybill_core::clock::ScaledClock::new(
            waybill_sandbox_sim::server::SystemClock,
            t0(),
            200_000.0,
        ));
        let carrier = Arc::new(Ticking {
            clock: clock.clone(),
            events: Mutex::default(),
        });
        let receivers = Arc::new(OneDeadReceiver {
            failing: "http://x.example/",
            accepted: Mutex::default(),
        });
        let config = EngineConfig {
            push_backlog: 8,
            idle_wait: SignedDuration::from_millis(5),
            ..EngineConfig::default()
        };
        let engine = Engine::with_notifier(
            store.clone(),
            vec![carrier],
            clock.clone(),
            receivers.clone(),
            config,
        );
        for (tenant, waybills) in [("x", 12), ("y", 3)] {
            let t = store
                .create_tenant(
                    &NewTenant {
                        name: tenant.into(),
                        key: format!("KEY-{tenant}"),
                        customer: None,
                    },
                    t0(),
                )
                .await
                .expect("tenant");
            for i in 0..waybills {
                store
                    .subscribe(&NewSubscription {
                        tenant_id: t.id,
                        company: "sandbox".into(),
                        number: format!("{tenant}{i}"),
                        phone: None,
                        from: None,
                        to: None,
                        callback_url: format!("http://{tenant}.example/cb"),
                        salt: None,
                        dialect: "kuaidi100".into(),
                        dialect_params: Default::default(),
                        options: SubscribeOptions::default(),
                        next_check_at: t0(),
                        created_at: t0(),
                    })
                    .await
                    .expect("subscribe");
            }
        }
        let until = t0() + hours(100);
        let done = {
            let clock = clock.clone();
            async move {
                while clock.now() < until {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(60), engine.run(done))
            .await
            .expect("the engine stopped");
        // One push per check: the first at once, then one every ~4 h for 100 h.
        let to_y = receivers.accepted.lock().expect("lock").len();
        assert!(to_y >= 3 * 15, "tenant Y got {to_y} pushes in 100 h");
        let stats = store.stats().await.expect("stats");
        assert!(
            stats.pending_pushes > 12 * 8,
            "X's pushes piled up: {stats:?}"
        );
    }

    /// Refuses every number as invalid input, counting the calls.
    struct RefusesEveryNumber(std::sync::atomic::AtomicUsize);

    #[async_trait]
    impl Carrier for RefusesEveryNumber {
        fn codes(&self) -> &[&str] {
            &["sandbox"]
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities::default()
        }
        async fn track(&self, waybills: &[Waybill]) -> Vec<TrackOutcome> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            waybills
                .iter()
                .map(|_| {
                    Err(waybill_core::carrier::TrackError::InvalidInput {
                        message: "number must be 12 digits".into(),
                    })
                })
                .collect()
        }
    }

    #[tokio::test]
    async fn a_number_the_carrier_calls_invalid_is_stopped_with_the_reason_not_retried() {
        let carrier = Arc::new(RefusesEveryNumber(Default::default()));
        let r = rig(vec![carrier.clone()], EngineConfig::default()).await;
        let id = r.subscribe("sandbox", "SB12").await;
        r.forward(hours(1)).await;
        let sub = r.store.subscription(id).await.expect("read").expect("row");
        assert_eq!(sub.status, MonitorStatus::Abort);
        assert!(
            sub.message.contains("number must be 12 digits"),
            "{:?}",
            sub.message
        );
        let params = r.inbox.params();
        assert_eq!(params.len(), 1, "one abort push");
        assert_eq!(params[0]["status"], "abort");
        assert!(params[0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("number must be 12 digits"));
        // Three days later it was asked once, not again and again.
        r.forward(hours(72)).await;
        assert_eq!(carrier.0.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
