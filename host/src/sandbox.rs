//! The sandbox stack: the simulator, the sandbox carrier plugin pointed at it, a store
//! and the engine, composed in one process. `waybill demo`, the end-to-end tests and the
//! dispatch benchmark all start it the same way.
//!
//! The plugin is loaded from `libwaybill_carrier_sandbox.so` in the plugin directory like
//! any other carrier; when the file is not there (a fresh `cargo run` builds only the
//! binary) the same plugin, linked into the host, is used instead, and
//! [`SandboxStack::plugin_source`] says which.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use std::sync::Arc;
//! use waybill_core::clock::ManualClock;
//! use waybill_host::sandbox::{SandboxOptions, SandboxStack};
//!
//! let clock = Arc::new(ManualClock::new("2024-05-01T00:00:00Z".parse()?));
//! let stack = SandboxStack::start(SandboxOptions::new("./demo-data"), clock).await?;
//! println!("simulator at {}", stack.sim.base_url());
//! stack.shutdown().await?;
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use waybill_core::carrier::{Carrier, Normalizer, Notifier};
use waybill_core::clock::Clock;
use waybill_core::normalize::TextNormalizer;
use waybill_sandbox_sim::journey::SimConfig;
use waybill_sandbox_sim::server::{Simulator, SimulatorHandle, StartLookup};
use waybill_sdk::{CarrierPlugin, Config, InProcess};

use crate::engine::{Engine, EngineConfig};
use crate::guess::CoreGuesser;
use crate::plugin::adapter::{AdapterSettings, PluginCarrier};
use crate::plugin::registry::{plugin_dir, Registry};
use crate::push::{HttpNotifier, VerdictObserver};
use crate::store::{
    MonitorStatus, NewSubscription, NewTenant, Store, StoreLocation, SubscribeOptions,
    SubscribeOutcome, SubscriptionFilter, Tenant, DEFAULT_MONTHLY_SUBSCRIBE_LIMIT,
};

/// The sandbox carrier's code.
pub const SANDBOX: &str = "sandbox";

/// How to start a [`SandboxStack`].
pub struct SandboxOptions {
    /// The store's directory (created if missing).
    pub data_dir: PathBuf,
    /// The database; `None`: `waybill.db` in `data_dir`.
    pub database: Option<StoreLocation>,
    /// Connections to a PostgreSQL database.
    pub pool_size: u32,
    /// Where to look for `libwaybill_carrier_sandbox.so`; `None`: the usual plugin
    /// directory ([`plugin_dir`]).
    pub plugin_dir: Option<PathBuf>,
    /// The simulated carrier's world.
    pub sim: SimConfig,
    /// The engine.
    pub engine: EngineConfig,
    /// Delivers pushes; `None`: HTTP with the engine's push timeout.
    pub notifier: Option<Arc<dyn Notifier>>,
    /// Told of every push verdict (a latency probe).
    pub observer: Option<Arc<dyn VerdictObserver>>,
    /// Adapter settings of the sandbox carrier.
    pub adapter: AdapterSettings,
}

impl SandboxOptions {
    /// Defaults, with the store in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            database: None,
            pool_size: crate::store::postgres::DEFAULT_POOL_SIZE,
            plugin_dir: None,
            sim: SimConfig::default(),
            engine: EngineConfig {
                allow_private_callbacks: true,
                ..EngineConfig::default()
            },
            notifier: None,
            observer: None,
            adapter: AdapterSettings {
                timeout: Duration::from_secs(5),
                ..AdapterSettings::default()
            },
        }
    }
}

/// Starts each sandbox subscription in `store` at its subscription time, as
/// [`SandboxStack::subscribe`] did, so the simulator (which keeps journeys in memory)
/// answers a restarted daemon as it answered the one before. Returns how many journeys
/// were restored.
pub async fn restore_journeys(store: &dyn Store, sim: &SimulatorHandle) -> anyhow::Result<usize> {
    let mut after = None;
    let mut restored = 0;
    loop {
        let page = store
            .list_subscriptions(&SubscriptionFilter {
                company: Some(SANDBOX.into()),
                after_id: after,
                limit: 10_000,
                ..SubscriptionFilter::default()
            })
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for sub in &page {
            // A number the sandbox cannot issue has no journey to restore.
            if sim.register(&sub.number, sub.created_at).is_ok() {
                restored += 1;
            }
        }
    }
    Ok(restored)
}

/// The store setting that holds the sandbox clock shared by daemons on one database.
pub const SHARED_CLOCK_SETTING: &str = "sandbox_clock";

/// A fast clock's anchor: at wall instant `wall` it read `virtual_at`, running `speed`
/// times as fast as the wall clock.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClockEpoch {
    /// Wall time of the anchor.
    pub wall: jiff::Timestamp,
    /// The fast clock's reading then.
    pub virtual_at: jiff::Timestamp,
    /// Virtual seconds per wall second.
    pub speed: f64,
}

impl ClockEpoch {
    /// The fast clock's reading at wall instant `wall`.
    pub fn reading_at(&self, wall: jiff::Timestamp) -> jiff::Timestamp {
        let wall_ms = wall.as_millisecond() - self.wall.as_millisecond();
        let virtual_ms = (wall_ms as f64 * self.speed) as i64;
        jiff::Timestamp::from_millisecond(
            self.virtual_at.as_millisecond().saturating_add(virtual_ms),
        )
        .unwrap_or(jiff::Timestamp::MAX)
    }
}

/// Where the fast clock of a daemon sharing its database stands: the epoch stored in the
/// database by the first daemon (or now, `speed`, if this is the first), so every daemon
/// reads the same virtual time. A daemon asking for another speed is refused: its clock
/// would drift from the others' and their answers would go backwards.
pub async fn shared_clock(
    store: &dyn Store,
    wall: jiff::Timestamp,
    speed: f64,
) -> anyhow::Result<jiff::Timestamp> {
    let mine = ClockEpoch {
        wall,
        virtual_at: wall,
        speed,
    };
    let stored = store
        .init_setting(SHARED_CLOCK_SETTING, &serde_json::to_string(&mine)?)
        .await?;
    let epoch: ClockEpoch = serde_json::from_str(&stored)
        .with_context(|| format!("the stored sandbox clock is not readable: {stored}"))?;
    if (epoch.speed - speed).abs() > f64::EPSILON * speed.abs().max(1.0) {
        anyhow::bail!(
            "the daemons on this database run the sandbox clock at x{}; start this one with \
             --clock-speed {} too",
            epoch.speed,
            epoch.speed
        );
    }
    Ok(epoch.reading_at(wall))
}

/// A [`StartLookup`] that starts a sandbox number's journey when it was first subscribed
/// (its oldest subscription in `store`), so simulators in several daemons sharing the
/// database, and one restarted, tell the same journey whichever daemon asks first.
pub fn journeys_from_store(store: Arc<dyn Store>) -> StartLookup {
    Arc::new(move |number: String| {
        let store = store.clone();
        Box::pin(async move {
            let found = store
                .list_subscriptions(&SubscriptionFilter {
                    company: Some(SANDBOX.into()),
                    number: Some(number.clone()),
                    limit: 1,
                    ..SubscriptionFilter::default()
                })
                .await;
            match found {
                Ok(subs) => subs.first().map(|s| s.created_at),
                Err(e) => {
                    tracing::warn!(%number, error = %e, "cannot look up a sandbox journey's start");
                    None
                }
            }
        })
    })
}

/// The file in the data directory where `serve --sandbox` keeps its fast clock's reading.
pub const CLOCK_FILE: &str = "sandbox-clock";

/// Where a restarted `serve --sandbox` resumes its fast clock: the reading saved in
/// `data_dir` by [`keep_clock`], or `wall` when there is none (or it is behind the wall
/// clock). Starting from the wall clock again would put the engine hours or days behind
/// the checks it already stored, and every answer would look like it went backwards.
pub fn resume_clock(data_dir: &Path, wall: jiff::Timestamp) -> anyhow::Result<jiff::Timestamp> {
    let file = data_dir.join(CLOCK_FILE);
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(wall),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
    };
    let saved: jiff::Timestamp = text
        .trim()
        .parse()
        .with_context(|| format!("{} does not hold a timestamp: {text:?}", file.display()))?;
    Ok(saved.max(wall))
}

/// Saves `clock`'s reading in `data_dir` every `every` (wall time) and once more when
/// `stop` resolves, replacing the file atomically so a crash leaves the previous reading.
pub async fn keep_clock(
    data_dir: PathBuf,
    clock: Arc<dyn Clock>,
    every: Duration,
    stop: impl std::future::Future<Output = ()>,
) {
    let save = || {
        let file = data_dir.join(CLOCK_FILE);
        let tmp = data_dir.join(format!("{CLOCK_FILE}.tmp"));
        let written = std::fs::write(&tmp, format!("{}\n", clock.now()))
            .and_then(|()| std::fs::rename(&tmp, &file));
        if let Err(e) = written {
            tracing::warn!(file = %file.display(), error = %e, "Cannot save the sandbox clock.");
        }
    };
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => save(),
            () = &mut stop => break,
        }
    }
    save();
}

/// Where the sandbox plugin came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginSource {
    /// Loaded from this file.
    Loaded(PathBuf),
    /// Linked into the host: no plugin file in this directory.
    Linked {
        /// The directory searched.
        searched: PathBuf,
    },
}

impl std::fmt::Display for PluginSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PluginSource::Loaded(file) => write!(f, "loaded from {}", file.display()),
            PluginSource::Linked { searched } => write!(
                f,
                "linked in (no libwaybill_carrier_sandbox.so in {})",
                searched.display()
            ),
        }
    }
}

/// A running simulator, store and engine.
pub struct SandboxStack {
    /// The engine (not running: drive it with [`Engine::run`] or rounds of your own).
    pub engine: Engine,
    /// The store.
    pub store: Arc<dyn Store>,
    /// The simulator.
    pub sim: SimulatorHandle,
    /// Where the sandbox plugin came from.
    pub plugin_source: PluginSource,
    /// The simulated carrier's world (to know a number's journey ahead).
    pub sim_config: SimConfig,
}

impl SandboxStack {
    /// Starts the simulator on 127.0.0.1 (a free port) on `clock`, opens the store, and
    /// builds the engine on the same clock with core's guesser for the autoCheck. Every
    /// sandbox subscription already in the store gets its journey back (see
    /// [`SandboxStack::restore_journeys`]), so a restarted daemon sees the same parcels.
    pub async fn start(options: SandboxOptions, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let sim_config = options.sim.clone();
        let sim = Simulator::start(
            "127.0.0.1:0".parse().context("loopback address")?,
            clock.clone(),
            options.sim,
        )
        .await
        .context("cannot start the sandbox simulator")?;
        let dir = options.plugin_dir.unwrap_or_else(|| plugin_dir(None));
        let adapter = AdapterSettings {
            clock: clock.clone(),
            ..options.adapter
        };
        let (carrier, plugin_source) = sandbox_carrier(&dir, &sim.base_url(), adapter)?;
        std::fs::create_dir_all(&options.data_dir).with_context(|| {
            format!(
                "cannot create data directory {}",
                options.data_dir.display()
            )
        })?;
        let location = options.database.clone().unwrap_or_else(|| {
            StoreLocation::Sqlite(options.data_dir.join(crate::store::sqlite::DB_FILE))
        });
        let store = crate::store::open(&location, &options.data_dir, options.pool_size)
            .await
            .with_context(|| format!("cannot open the store {location}"))?;
        let carriers: Vec<Arc<dyn Carrier>> = vec![Arc::new(carrier)];
        let notifier: Arc<dyn Notifier> = match options.notifier {
            Some(n) => n,
            None => Arc::new(HttpNotifier::new(
                Duration::try_from(options.engine.push_timeout).unwrap_or(Duration::from_secs(20)),
                options.engine.allow_private_callbacks,
            )?),
        };
        let mut engine =
            Engine::with_notifier(store.clone(), carriers, clock, notifier, options.engine)
                .with_guesser(Arc::new(CoreGuesser::embedded()));
        if let Some(observer) = options.observer {
            engine = engine.with_push_observer(observer);
        }
        // Numbers subscribed through another daemon on the same database start when they
        // were subscribed, not when this simulator first hears of them.
        sim.look_up_starts(journeys_from_store(store.clone()));
        let stack = Self {
            engine,
            store,
            sim,
            plugin_source,
            sim_config,
        };
        stack.restore_journeys().await?;
        Ok(stack)
    }

    /// Starts each stored sandbox subscription's journey at its subscription time; see
    /// [`restore_journeys`]. Returns how many journeys were restored.
    pub async fn restore_journeys(&self) -> anyhow::Result<usize> {
        restore_journeys(self.store.as_ref(), &self.sim).await
    }

    /// The tenant named `name` with key `key`, created if missing.
    pub async fn tenant(&self, name: &str, key: &str) -> anyhow::Result<Tenant> {
        if let Some(t) = self.store.tenant_by_key(key).await? {
            return Ok(t);
        }
        Ok(self
            .store
            .create_tenant(
                &NewTenant {
                    name: name.into(),
                    key: key.into(),
                    customer: None,
                },
                self.engine.now(),
            )
            .await?)
    }

    /// Subscribes sandbox `numbers` for `tenant` with pushes to `callback_url` signed
    /// with `salt`, in one transaction, and starts their journeys now. Each domestic
    /// subscription gives its journey's destination city as `to`, as a shop that knows
    /// where it ships would. A number the tenant already watches is left as it is
    /// (kuaidi100's duplicate rule), so this is safe to repeat after a restart; so is one
    /// it subscribed 4 times this month (kuaidi100's monthly limit). Returns how many were
    /// new.
    pub async fn subscribe(
        &self,
        tenant: &Tenant,
        numbers: &[String],
        callback_url: &str,
        salt: &str,
    ) -> anyhow::Result<usize> {
        let now = self.engine.now();
        let subs: Vec<NewSubscription> = numbers
            .iter()
            .map(|n| NewSubscription {
                tenant_id: tenant.id,
                company: SANDBOX.into(),
                number: n.clone(),
                phone: None,
                from: None,
                to: waybill_sandbox_sim::journey::Journey::for_number(n, &self.sim_config)
                    .ok()
                    .filter(|j| !j.international)
                    .map(|j| j.destination),
                callback_url: callback_url.into(),
                salt: Some(salt.into()),
                dialect: crate::dialect::kuaidi100::NAME.into(),
                dialect_params: Default::default(),
                options: SubscribeOptions::default(),
                next_check_at: self
                    .engine
                    .first_check_at(&waybill_core::model::Waybill::new(SANDBOX, n), now),
                created_at: now,
            })
            .collect();
        let mut created = 0;
        for chunk in subs.chunks(5_000) {
            for (sub, outcome) in chunk.iter().zip(
                self.store
                    .subscribe_many(chunk, DEFAULT_MONTHLY_SUBSCRIBE_LIMIT)
                    .await?,
            ) {
                if let SubscribeOutcome::Created { .. } = outcome {
                    created += 1;
                    self.sim
                        .register(&sub.number, now)
                        .with_context(|| format!("the sandbox cannot issue {}", sub.number))?;
                }
            }
        }
        Ok(created)
    }

    /// Whether every subscription has ended and every push has been delivered or given up.
    pub async fn settled(&self) -> anyhow::Result<bool> {
        let s = self.store.stats().await?;
        Ok(s.polling == 0 && s.pending_pushes == 0)
    }

    /// Subscriptions still polling.
    pub async fn polling(&self) -> anyhow::Result<u64> {
        Ok(self.store.stats().await?.polling)
    }

    /// Stops the simulator.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.sim.shutdown().await?;
        Ok(())
    }
}

/// The sandbox carrier pointed at `base_url`: loaded from `dir` if the plugin file is
/// there, else the linked-in plugin.
pub fn sandbox_carrier(
    dir: &Path,
    base_url: &str,
    settings: AdapterSettings,
) -> anyhow::Result<(PluginCarrier, PluginSource)> {
    let mut config = Config::new();
    config.set("base_url", base_url);
    let normalizer = Arc::new(TextNormalizer::builtin().clone());
    let file = dir.join("libwaybill_carrier_sandbox.so");
    if file.is_file() {
        let registry = Registry::load(dir)?;
        if registry.find(SANDBOX).is_some() {
            let carrier = registry.carrier(SANDBOX, &config, normalizer, settings)?;
            return Ok((carrier, PluginSource::Loaded(file)));
        }
        let why: Vec<String> = registry.refused.iter().map(|r| r.to_string()).collect();
        anyhow::bail!(
            "{} is there but did not load: {}",
            file.display(),
            why.join("; ")
        );
    }
    Ok((
        linked_sandbox(&config, normalizer, settings)?,
        PluginSource::Linked {
            searched: dir.to_path_buf(),
        },
    ))
}

/// The sandbox carrier linked into the host, for when no plugin file is installed (a fresh
/// clone that built only the binary).
pub fn linked_sandbox(
    config: &Config,
    normalizer: Arc<dyn Normalizer>,
    settings: AdapterSettings,
) -> anyhow::Result<PluginCarrier> {
    type Sandbox = waybill_carrier_sandbox::Sandbox;
    let machine = InProcess::<Sandbox>::new(config)
        .map_err(|e| anyhow::anyhow!("the sandbox plugin refused its configuration: {e}"))?;
    PluginCarrier::new(Sandbox::manifest(), Arc::new(machine), normalizer, settings)
}

/// The monitor status a sandbox parcel's journey should end its subscription in:
/// delivered and returned parcels end `shutdown`, the rest `abort` (no trace in 3 days;
/// lost or stuck: 60 days without change).
pub fn expected_end(outcome: waybill_sandbox_sim::journey::Outcome) -> MonitorStatus {
    use waybill_sandbox_sim::journey::Outcome as O;
    match outcome {
        O::Delivered
        | O::DeliveredByProxy
        | O::DeliveredFromLocker
        | O::DeliveredAfterFailure
        | O::RefusedAndReturned
        | O::Returned => MonitorStatus::Shutdown,
        O::Lost | O::Stuck | O::NeverTrace => MonitorStatus::Abort,
    }
}

/// `n` distinct sandbox numbers: `prefix` and nine digits.
pub fn sandbox_numbers(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| sandbox_number(prefix, i)).collect()
}

/// The `i`-th number of [`sandbox_numbers`].
pub fn sandbox_number(prefix: &str, i: usize) -> String {
    format!("{prefix}{i:09}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::{SignedDuration, Timestamp};
    use waybill_core::clock::ManualClock;

    #[tokio::test]
    async fn the_clock_is_saved_at_stop_and_resumed_never_behind_the_wall() {
        let dir = tempfile::tempdir().unwrap();
        let wall: Timestamp = "2026-12-02T10:00:00Z".parse().unwrap();
        assert_eq!(resume_clock(dir.path(), wall).unwrap(), wall, "no file yet");

        let ahead = wall + SignedDuration::from_hours(30);
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(ahead));
        keep_clock(
            dir.path().to_path_buf(),
            clock,
            Duration::from_secs(3600),
            async {},
        )
        .await;
        assert_eq!(resume_clock(dir.path(), wall).unwrap(), ahead);
        let later_wall = ahead + SignedDuration::from_hours(1);
        assert_eq!(resume_clock(dir.path(), later_wall).unwrap(), later_wall);

        std::fs::write(dir.path().join(CLOCK_FILE), "yesterday").unwrap();
        let err = resume_clock(dir.path(), wall).unwrap_err();
        assert!(
            format!("{err:#}").contains("does not hold a timestamp"),
            "{err:#}"
        );
    }
}
