//! `waybill serve`: the daemon — HTTP API, scheduler and push worker in one process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use jiff::Timestamp;
use tokio::sync::watch;
use waybill_carrier_sandbox::Sandbox;
use waybill_core::carrier::{Carrier, Normalizer};
use waybill_core::clock::{Clock, ScaledClock};
use waybill_core::normalize::TextNormalizer;
use waybill_host::api::{self, Api, CountingCarrier, Metrics};
use waybill_host::config::Config;
use waybill_host::engine::{Engine, EngineConfig};
use waybill_host::guess::{CoreGuesser, LearnedPrior};
use waybill_host::plugin::adapter::AdapterSettings;
use waybill_host::plugin::registry::{
    config_from_table, plugin_dir, settings_from_env, upstream, Registry,
};
use waybill_host::push::HttpNotifier;
use waybill_host::sandbox::{self, keep_clock, linked_sandbox, resume_clock};
use waybill_host::store::{self, Store, StoreLocation};
use waybill_sandbox_sim::journey::SimConfig;
use waybill_sandbox_sim::server::{Simulator, SystemClock};
use waybill_sdk::CarrierPlugin;

/// Where the configuration and the database are (shared by commands that open the store).
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// TOML configuration file (`waybill config --default` prints a documented one).
    #[arg(long, short = 'c', env = "WAYBILL_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory (the database is `<dir>/waybill.db` unless --database is given).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Database: `sqlite:PATH` or a file path (anything else is refused).
    #[arg(long)]
    pub database: Option<PathBuf>,
}

impl StoreArgs {
    /// The configuration: defaults, the file, `WAYBILL_*` variables, then these flags.
    pub fn load(&self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        config.apply_env(|k| std::env::var(k).ok())?;
        if let Some(dir) = &self.data_dir {
            config.server.data_dir = dir.clone();
        }
        if let Some(db) = &self.database {
            config.server.database = db.clone();
        }
        Ok(config)
    }
}

/// Opens (creating it if needed) the configured database: `--database` / `[server]
/// database` as `sqlite:PATH`, a path or `postgres://…`, else `<data_dir>/waybill.db`.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let path = config.database_path();
    let location = StoreLocation::parse(&path.to_string_lossy())?;
    store::open(&location, &config.server.data_dir, config.server.pool_size)
        .await
        .with_context(|| format!("cannot open the database {location}"))
}

/// Options of `waybill serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Address to listen on.
    #[arg(long)]
    pub bind: Option<SocketAddr>,
    /// Run the sandbox simulator in-process and point the sandbox carrier at it.
    #[arg(long)]
    pub sandbox: bool,
    /// Clock speed in sandbox mode (3600: one second is one hour).
    #[arg(long)]
    pub clock_speed: Option<f64>,
    /// Accept callback URLs on loopback, private and link-local addresses.
    #[arg(long)]
    pub allow_private_callbacks: bool,
    /// Log lines as text (coloured only on a terminal) or as JSON objects for collectors.
    #[arg(long, value_enum, env = "WAYBILL_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
}

/// How `serve` writes its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    Text,
    /// One JSON object per event (`timestamp`, `level`, `fields`, `target`).
    Json,
}

/// Logs to stderr; ANSI colours only when stderr is a terminal, so a redirected log stays
/// plain text.
pub fn init_log(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let log = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => log.with_ansi(std::io::stderr().is_terminal()).try_init(),
        LogFormat::Json => log.json().try_init(),
    };
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut config = args.store.load()?;
    if let Some(bind) = args.bind {
        config.server.bind = bind;
    }
    if args.sandbox {
        config.sandbox.enabled = true;
    }
    if let Some(speed) = args.clock_speed {
        if !(speed.is_finite() && speed > 0.0) {
            anyhow::bail!("--clock-speed must be a positive number, got {speed}");
        }
        config.sandbox.clock_speed = speed;
    }
    if args.allow_private_callbacks {
        config.api.allow_private_callbacks = true;
    }
    // Either table's key turns the check off, for subscribing and delivering alike.
    let allow_private = config.allow_private_callbacks();
    config.api.allow_private_callbacks = allow_private;
    config.engine.allow_private_callbacks = allow_private;
    init_log(args.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(config, stop_signal()))?;
    Ok(ExitCode::SUCCESS)
}

/// Runs the daemon until `stop` completes, then drains: the listener stops accepting,
/// in-flight requests and the engine's current round finish (releasing their leases),
/// and the database is closed.
pub async fn serve(
    config: Config,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let location = StoreLocation::parse(&config.database_path().to_string_lossy())?;
    let store = open_store(&config).await?;
    let metrics = Arc::new(Metrics::default());
    // Daemons sharing a PostgreSQL database share one running sandbox clock, anchored in
    // the database; a lone SQLite daemon pauses its clock while it is down instead, so a
    // restart continues where it stopped.
    let shared_clock = matches!(location, StoreLocation::Postgres(_));
    let clock: Arc<dyn Clock> = if config.sandbox.enabled {
        let speed = config.sandbox.clock_speed;
        let start = if shared_clock {
            sandbox::shared_clock(store.as_ref(), Timestamp::now(), speed).await?
        } else {
            resume_clock(&config.server.data_dir, Timestamp::now())?
        };
        Arc::new(ScaledClock::new(SystemClock, start, speed))
    } else {
        Arc::new(SystemClock)
    };
    let mut carrier_tables = config.carriers.clone();
    let sim = if config.sandbox.enabled {
        let sim = Simulator::start(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            clock.clone(),
            SimConfig::default(),
        )
        .await
        .context("cannot start the sandbox simulator")?;
        // Journeys start when their number was first subscribed, looked up on demand:
        // the same story in every daemon and after a restart.
        sim.look_up_starts(sandbox::journeys_from_store(store.clone()));
        carrier_tables
            .entry("sandbox".into())
            .or_default()
            .insert("base_url".into(), sim.base_url());
        Some(sim)
    } else {
        None
    };
    let (carriers, guesser, upstream) = load_carriers(&config, &carrier_tables, &metrics, &clock)?;
    // The autoCheck's order learns from the confirmed waybills, recounted periodically.
    let learn_every = Duration::try_from(config.guess.prior_refresh)
        .ok()
        .filter(|d| !d.is_zero());
    let prior = Arc::new(LearnedPrior::new(config.guess.prior_min_samples));
    let rules = guesser.guesser().clone();
    let guesser = match learn_every {
        Some(_) => guesser.with_prior(prior.clone()),
        None => guesser,
    };

    let timeout = Duration::try_from(config.engine.push_timeout).unwrap_or(Duration::from_secs(20));
    let http = HttpNotifier::new(timeout, config.engine.allow_private_callbacks)?;
    let engine = Engine::with_notifier(
        store.clone() as Arc<dyn Store>,
        carriers.clone(),
        clock.clone(),
        Arc::new(http),
        EngineConfig {
            problems: config.problems.clone(),
            eta: config.eta.clone(),
            upstream,
            ..config.engine.clone()
        },
    )
    .with_guesser(Arc::new(guesser.clone()))
    .with_push_observer(metrics.clone());
    // One guesser on every path: the autoCheck's, with the plugins' rules and the prior.
    let api = Api::with_guesser(
        engine.clone(),
        config.api.clone(),
        metrics,
        Arc::new(guesser),
    );
    let listener = tokio::net::TcpListener::bind(config.server.bind)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.bind))?;
    let addr = listener.local_addr()?;
    let routed = engine.routed_companies().len();
    let carriers = match (engine.companies().is_empty(), routed) {
        (true, 0) => "none".to_string(),
        (_, 0) => engine.companies().join(", "),
        (_, n) => format!(
            "{} (+{n} through the upstream)",
            engine.companies().join(", ")
        ),
    };
    let simulator = sim
        .as_ref()
        .map(|s| format!("{} (clock x{})", s.base_url(), config.sandbox.clock_speed));
    tracing::info!(
        url = %format!("http://{addr}"),
        carriers,
        database = %location,
        simulator,
        "Listening"
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let engine_task = tokio::spawn({
        let engine = engine.clone();
        let rx = stop_rx.clone();
        async move { engine.run(stopped(rx)).await }
    });
    let clock_task = (sim.is_some() && !shared_clock).then(|| {
        tokio::spawn(keep_clock(
            config.server.data_dir.clone(),
            clock.clone(),
            Duration::from_secs(1),
            stopped(stop_rx.clone()),
        ))
    });
    if config.retention.keep_ended > jiff::SignedDuration::ZERO {
        tokio::spawn(waybill_host::retention::run(
            store.clone(),
            config.retention.clone(),
            clock.clone(),
            stopped(stop_rx.clone()),
        ));
    }
    if let Some(every) = learn_every {
        let store = store.clone() as Arc<dyn Store>;
        tokio::spawn(prior.run(store, rules, every, stopped(stop_rx.clone())));
    }
    let server = waybill_host::listen::serve(
        listener,
        api::router(api),
        config.server.limits(),
        stopped(stop_rx),
    );
    let server_task = tokio::spawn(server);
    stop.await;
    tracing::info!("Stopping; finishing in-flight work");
    let _ = stop_tx.send(true);
    let grace = Duration::try_from(config.server.shutdown_grace).unwrap_or(Duration::from_secs(30));
    let drained = tokio::time::timeout(grace, async {
        let served = server_task.await;
        let _ = engine_task.await;
        served
    })
    .await;
    match drained {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "HTTP server task failed"),
        Err(_) => tracing::warn!(
            "in-flight work did not finish within {grace:?}; leases expire by themselves"
        ),
    }
    if let Some(task) = clock_task {
        let _ = task.await;
    }
    if let Some(sim) = sim {
        let _ = sim.shutdown().await;
    }
    store.close().await;
    tracing::info!("Stopped");
    Ok(())
}

/// The carriers started, the guesser with their rules, the upstream aggregator's code.
type LoadedCarriers = (Vec<Arc<dyn Carrier>>, CoreGuesser, Option<String>);

/// Instantiates every loaded plugin with its `[carriers.<code>]` table (and environment);
/// a plugin whose configuration is refused is left out with a warning. In sandbox mode
/// the sandbox carrier runs in-process when no sandbox plugin file is installed. The third
/// value is the upstream (`[engine] upstream`, else `$WAYBILL_UPSTREAM`) when it names a
/// loaded aggregator plugin; otherwise it is refused with a warning.
fn load_carriers(
    config: &Config,
    tables: &std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
    metrics: &Arc<Metrics>,
    clock: &Arc<dyn Clock>,
) -> anyhow::Result<LoadedCarriers> {
    let settings = |base: AdapterSettings| AdapterSettings {
        clock: clock.clone(),
        ..base
    };
    let configured = (!config.server.plugin_dir.as_os_str().is_empty())
        .then_some(config.server.plugin_dir.as_path());
    let registry = Registry::load(&plugin_dir(configured))?;
    for r in &registry.refused {
        tracing::warn!("plugin refused: {r}");
    }
    let normalizer: Arc<dyn Normalizer> = Arc::new(TextNormalizer::builtin().clone());
    let empty = Default::default();
    let mut carriers: Vec<Arc<dyn Carrier>> = Vec::new();
    for plugin in &registry.loaded {
        let manifest = plugin.manifest();
        let Some(code) = manifest.canonical_code() else {
            continue;
        };
        let table = tables.get(code).unwrap_or(&empty);
        match registry.carrier(
            code,
            &config_from_table(manifest, table),
            normalizer.clone(),
            settings(settings_from_env(manifest)),
        ) {
            Ok(c) => carriers.push(CountingCarrier::wrap(Arc::new(c), metrics.clone())),
            Err(e) => tracing::warn!("carrier {code} not started: {e:#}"),
        }
    }
    let has_sandbox = carriers.iter().any(|c| c.codes().contains(&"sandbox"));
    if config.sandbox.enabled && !has_sandbox {
        let cfg = config_from_table(
            &Sandbox::manifest(),
            tables.get("sandbox").unwrap_or(&empty),
        );
        let carrier = linked_sandbox(&cfg, normalizer, settings(AdapterSettings::default()))?;
        carriers.push(CountingCarrier::wrap(Arc::new(carrier), metrics.clone()));
    }
    // The 3-day autoCheck guesses with the embedded rules plus every loaded plugin's.
    let guesser = CoreGuesser::new(Arc::new(registry.guesser()?));
    let upstream = upstream(config.engine.upstream.as_deref()).filter(|u| {
        let aggregator = registry.loaded.iter().any(|p| {
            let m = p.manifest();
            m.aggregator && m.codes.iter().any(|c| c == u)
        });
        if !aggregator {
            tracing::warn!(
                upstream = %u,
                "the upstream is not a loaded aggregator plugin; companies without a plugin \
                 stay untracked"
            );
        }
        aggregator
    });
    Ok((carriers, guesser, upstream))
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_database_that_cannot_be_opened_is_refused_and_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.server.data_dir = dir.path().to_path_buf();
        // A backend we do not have, and a PostgreSQL server nobody listens for (port 1).
        for url in [
            "mysql://root@localhost/w",
            "postgres://postgres@127.0.0.1:1/waybill",
        ] {
            config.server.database = url.into();
            let err = open_store(&config).await.err().expect("refused");
            assert!(
                err.to_string().contains(url.split(':').next().unwrap()),
                "{err}"
            );
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        // The SQLite forms open the same file.
        config.server.database = format!("sqlite:{}", dir.path().join("w.db").display()).into();
        open_store(&config)
            .await
            .expect("sqlite: URL")
            .close()
            .await;
        assert!(dir.path().join("w.db").is_file());
    }
}
