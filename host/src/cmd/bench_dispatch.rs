//! `waybill bench-dispatch` (hidden): the scale measurement of BENCHMARKS.md. Loads many
//! active sandbox subscriptions, makes them all due, and runs the engine's rounds against
//! the in-process simulator for a while: due checks dispatched per second, pushes, the
//! process's memory, and change→push latency.
//!
//! Several of them share one PostgreSQL database as several daemons would
//! (`bench/postgres/scale.sh`): the first loads the subscriptions and receives every push,
//! the others join with `--subscriptions 0`, and `--gate` makes them measure the same
//! window.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use jiff::{SignedDuration, Timestamp};
use waybill_core::carrier::Notifier;
use waybill_core::clock::{Clock, ManualClock};
use waybill_host::engine::EngineConfig;
use waybill_host::latency::{quantile, LatencyProbe};
use waybill_host::push::HttpNotifier;
use waybill_host::receiver::{Flakiness, Receiver};
use waybill_host::sandbox::{sandbox_number, SandboxOptions, SandboxStack};
use waybill_host::store::StoreLocation;

/// Options of `waybill bench-dispatch`.
#[derive(Debug, clap::Args)]
pub struct BenchDispatchArgs {
    /// Active subscriptions to load.
    #[arg(long, default_value_t = 1_000_000)]
    pub subscriptions: usize,
    /// Real seconds to run rounds for.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Subscriptions claimed per round (the daemon's default: `[engine] batch_size`).
    #[arg(long, default_value_t = EngineConfig::default().batch_size)]
    pub batch: u32,
    /// Requests in flight to the simulator.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Checks pause while this many pushes wait for delivery (0: never).
    #[arg(long, default_value_t = EngineConfig::default().push_backlog)]
    pub push_backlog: u32,
    /// Pushes in flight to the receiver.
    #[arg(long, default_value_t = 64)]
    pub push_concurrency: usize,
    /// The database (`sqlite:PATH` or an EMPTY `postgres://…` database); default: SQLite
    /// in a temporary directory.
    #[arg(long)]
    pub database: Option<String>,
    /// Share of parcels whose carrier never has anything new to say (their checks find no
    /// change and push nothing): 0 is the worst case, every check a change.
    #[arg(long, default_value_t = 0.0)]
    pub unchanged: f64,
    /// A directory shared by the processes of one run: each writes `ready-<pid>` when
    /// loaded, measures once `go` appears, and exits once `done` appears (so the first
    /// process's receiver outlives the others' pushes).
    #[arg(long)]
    pub gate: Option<std::path::PathBuf>,
    /// Also write the figures as one JSON object to this file.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

/// Waits for `name` to appear in the gate directory.
async fn gate_open(dir: &std::path::Path, name: &str) {
    while !dir.join(name).exists() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// CPU seconds (user + system) this process has used so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat(5), 11 and 12 after the name; the
    // kernel counts them in USER_HZ, 100 on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

/// Subscriptions written per transaction while loading.
const LOAD_CHUNK: usize = 10_000;

/// `VmRSS` and `VmHWM` of this process, in MiB.
fn memory() -> (f64, f64) {
    let (rss, hwm, _) = memory_parts();
    (rss, hwm)
}

/// `VmRSS`, `VmHWM` and `RssAnon` (the heap, without the database file's mapped pages,
/// which the kernel may drop at will) of this process, in MiB.
fn memory_parts() -> (f64, f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"), field("RssAnon:"))
}

pub fn run(args: BenchDispatchArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(bench(args))
}

async fn bench(args: BenchDispatchArgs) -> anyhow::Result<ExitCode> {
    let dir = tempfile::tempdir()?;
    // The bench's own bookkeeping stays small, so the RSS below is the daemon's: the
    // receiver counts pushes instead of keeping them, the probe times one push in 8.
    let receiver = Receiver::start_counting("bench", Flakiness::default()).await?;
    let t0: Timestamp = "2024-11-11T09:00:00+08:00".parse()?;
    let clock = Arc::new(ManualClock::new(t0));
    let probe = LatencyProbe::sampling(8);
    let http: Arc<dyn Notifier> = Arc::new(HttpNotifier::new(Duration::from_secs(5), true)?);
    let mut options = SandboxOptions::new(dir.path());
    options.database = args
        .database
        .as_deref()
        .map(StoreLocation::parse)
        .transpose()?;
    let mut engine = EngineConfig {
        batch_size: args.batch,
        allow_private_callbacks: true,
        ..EngineConfig::default()
    };
    engine.carriers.default.concurrency = args.concurrency;
    engine.push.batch = 1_000;
    engine.push.concurrency = args.push_concurrency;
    engine.push_backlog = args.push_backlog;
    options.engine = engine;
    options.notifier = Some(http);
    options.observer = Some(probe.clone());
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.unchanged),
        "--unchanged is a share between 0 and 1"
    );
    if args.unchanged > 0.0 {
        // The other exclusive outcomes shrink so that all of them still add up to at most 1.
        let rates = &mut options.sim.rates;
        let rest = 1.0 - args.unchanged;
        for rate in [
            &mut rates.stuck,
            &mut rates.failed_attempt,
            &mut rates.refused,
            &mut rates.returned,
            &mut rates.lost,
            &mut rates.locker,
        ] {
            *rate *= rest;
        }
        rates.never_trace = args.unchanged;
    }
    let stack = SandboxStack::start(options, clock.clone()).await?;
    println!("sandbox plugin {}", stack.plugin_source);
    let (rss, _) = memory();
    println!("RSS before loading: {rss:.0} MiB");

    let tenant = stack.tenant("bench", "bench-key").await?;
    let loading = Instant::now();
    // Numbers made a chunk at a time (as an import streams its file): a million of them
    // at once would add ~40 MiB to the peak that the daemon itself never needs.
    let mut loaded = 0;
    for start in (0..args.subscriptions).step_by(LOAD_CHUNK) {
        let end = (start + LOAD_CHUNK).min(args.subscriptions);
        let chunk: Vec<String> = (start..end).map(|i| sandbox_number("SBB", i)).collect();
        loaded += stack
            .subscribe(&tenant, &chunk, &receiver.url(), "bench")
            .await?;
    }
    let load_s = loading.elapsed().as_secs_f64();
    let (rss, hwm) = memory();
    println!(
        "loaded {loaded} subscriptions in {load_s:.1} s ({:.0}/s); RSS {rss:.0} MiB, peak {hwm:.0} MiB",
        loaded as f64 / load_s
    );

    if let Some(gate) = &args.gate {
        std::fs::write(gate.join(format!("ready-{}", std::process::id())), b"")?;
        gate_open(gate, "go").await;
    }
    // Half a day later every journey has events, and every first check is due.
    clock.set(t0 + SignedDuration::from_hours(12));
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let mut checked = 0u64;
    let mut pushes = 0u64;
    let mut errors = 0u64;
    let mut next_report = Duration::from_secs(10);
    // Pushes go out from the engine's own delivery loop (as in `Engine::run`), beside the
    // checks and woken by them: a push waits for the push worker, never for a round.
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let pusher = {
        let engine = stack.engine.clone();
        tokio::spawn(async move {
            engine
                .run_deliveries(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await
        })
    };
    let mut paused = Duration::ZERO;
    let never = std::future::pending::<()>();
    tokio::pin!(never);
    while started.elapsed() < Duration::from_secs(args.seconds) {
        let waiting = Instant::now();
        stack.engine.await_push_backlog(&mut never).await;
        paused += waiting.elapsed();
        let now = clock.now();
        let c = stack.engine.check_due(now).await?;
        probe.detected(now);
        clock.advance(SignedDuration::from_millis(1));
        checked += u64::from(c.checked);
        pushes += u64::from(c.pushes);
        errors += u64::from(c.errors);
        if c.claimed == 0 {
            break;
        }
        if started.elapsed() >= next_report {
            let (rss, _) = memory();
            println!(
                "  {:>4.0} s: {checked} checks ({:.0}/s), {} pushes acknowledged, RSS {rss:.0} MiB",
                started.elapsed().as_secs_f64(),
                checked as f64 / started.elapsed().as_secs_f64(),
                probe.acked_count()
            );
            next_report += Duration::from_secs(10);
        }
    }
    // Memory now, before the latency sample below reads 20,000 pushes back through the
    // readers' memory map (which would count those database pages as resident).
    let (rss, hwm, anon) = memory_parts();
    let cpu = cpu_seconds() - cpu_before;
    let _ = stop.send(true);
    let delivery = pusher.await.context("the delivery loop failed")?;
    let delivered = stack.store.stats().await?.delivered_pushes;
    let secs = started.elapsed().as_secs_f64();
    let lat = probe.latencies(stack.store.as_ref(), 20_000).await?;
    let ms = |d: Option<Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1e3);
    println!("\nactive subscriptions      {loaded}");
    println!(
        "due checks dispatched     {checked} in {secs:.1} s = {:.0}/s",
        checked as f64 / secs
    );
    println!("check errors              {errors}");
    println!(
        "checks paused for backlog {:.1} s (limit {} waiting pushes)",
        paused.as_secs_f64(),
        args.push_backlog
    );
    println!(
        "delivery worker           {} claimed, {} delivered, {} retried, {} dead",
        delivery.claimed, delivery.delivered, delivery.retried, delivery.dead
    );
    let accepted = receiver.inbox(|i| i.accepted);
    println!("pushes queued / delivered {pushes} / {delivered} (receiver accepted {accepted})");
    println!(
        "RSS end / peak / anon     {rss:.0} MiB / {hwm:.0} MiB / {anon:.0} MiB (simulator and receiver included)"
    );
    println!(
        "change→push latency       p50 {:.1} ms, p99 {:.1} ms (sample of {})",
        ms(quantile(&lat, 0.5)),
        ms(quantile(&lat, 0.99)),
        lat.len()
    );
    println!(
        "CPU in the run            {cpu:.1} s ({:.0} % of one core; simulator included)",
        cpu / secs * 100.0
    );
    if let Some(path) = &args.json {
        let figures = serde_json::json!({
            "subscriptions": loaded,
            "seconds": secs,
            "checks": checked,
            "checks_per_s": checked as f64 / secs,
            "errors": errors,
            "paused_s": paused.as_secs_f64(),
            "pushes_queued": pushes,
            "pushes_delivered_by_this_process": delivery.delivered,
            "receiver_accepted": accepted,
            "rss_mib": rss,
            "peak_rss_mib": hwm,
            "cpu_s": cpu,
            "latency_p50_ms": ms(quantile(&lat, 0.5)),
            "latency_p99_ms": ms(quantile(&lat, 0.99)),
            "latency_samples": lat.len(),
        });
        std::fs::write(path, serde_json::to_vec_pretty(&figures)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(gate) = &args.gate {
        gate_open(gate, "done").await;
    }
    stack.shutdown().await?;
    Ok(ExitCode::SUCCESS)
}
