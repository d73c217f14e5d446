//! `waybill bench-dispatch` (hidden): the scale measurement of BENCHMARKS.md. Loads many
//! active sandbox subscriptions, makes them all due, and runs the engine's rounds against
//! the in-process simulator for a while: due checks dispatched per second, pushes, the
//! process's memory, and change→push latency.

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

    // Half a day later every journey has events, and every first check is due.
    clock.set(t0 + SignedDuration::from_hours(12));
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
    stack.shutdown().await?;
    Ok(ExitCode::SUCCESS)
}
