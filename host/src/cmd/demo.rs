//! `waybill demo`: the simulator, the daemon's engine and a local push receiver in one
//! process. It subscribes a few hundred sandbox waybills, runs weeks of monitoring on a
//! virtual clock in seconds, shows progress, and ends with a summary.
//!
//! With `--daemon` it is instead a plain daemon on a fast real-time clock pushing to an
//! outside receiver, resumable on the same data directory (the crash test kills and
//! restarts it).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use jiff::{SignedDuration, Timestamp};
use waybill_core::carrier::Notifier;
use waybill_core::clock::{Clock, ManualClock, ScaledClock};
use waybill_core::state::Phase;
use waybill_host::engine::EngineConfig;
use waybill_host::latency::{quantile, LatencyProbe, VirtualDriver};
use waybill_host::problems::kind_name;
use waybill_host::push::{HttpNotifier, PushConfig, RetryPolicy};
use waybill_host::receiver::{Flakiness, Receiver};
use waybill_host::sandbox::{expected_end, sandbox_numbers, SandboxOptions, SandboxStack};
use waybill_host::store::{
    MonitorStatus, PushPayload, Store, StoreLocation, Subscription, SubscriptionFilter,
};
use waybill_sandbox_sim::journey::{Journey, SimConfig};
use waybill_sandbox_sim::server::SystemClock;

const SALT: &str = "demo-salt";

/// Options of `waybill demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Waybills to subscribe.
    #[arg(long, default_value_t = 300)]
    pub waybills: usize,
    /// Store directory (default: a temporary directory, removed at the end).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Seed of the simulated world (which parcels get which journeys).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Share of pushes the local receiver fails on purpose (half 500s, half hangs past
    /// the timeout), to show retries.
    #[arg(long, default_value_t = 0.05)]
    pub flaky: f64,
    /// Stop after this many real seconds even if waybills are still being watched.
    #[arg(long, default_value_t = 170)]
    pub time_limit: u64,
    /// Run as a daemon on a fast real-time clock, pushing to `--callback` (used by the
    /// crash test).
    #[arg(long, hide = true, requires = "callback")]
    pub daemon: bool,
    /// Daemon mode: where pushes go.
    #[arg(long, hide = true)]
    pub callback: Option<String>,
    /// Daemon mode: push signing salt.
    #[arg(long, hide = true, default_value = SALT)]
    pub salt: String,
    /// Daemon mode: virtual time at `--clock-epoch`.
    #[arg(long, hide = true)]
    pub clock_start: Option<Timestamp>,
    /// Daemon mode: the real instant the virtual clock showed `--clock-start`.
    #[arg(long, hide = true)]
    pub clock_epoch: Option<Timestamp>,
    /// Daemon mode: virtual seconds per real second.
    #[arg(long, hide = true, default_value_t = 20_000.0)]
    pub clock_speed: f64,
    /// Simulator settings as JSON (seed, rates, …).
    #[arg(long, hide = true)]
    pub sim_config: Option<String>,
    /// Daemon mode: the database (`sqlite:PATH` or `postgres://…`; default: in
    /// `--data-dir`). Several daemons on one PostgreSQL database with the same clock
    /// arguments share the work.
    #[arg(long, hide = true)]
    pub database: Option<String>,
}

pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    if args.daemon {
        runtime.block_on(daemon(args))
    } else {
        runtime.block_on(demo(args))
    }
}

fn sim_config(args: &DemoArgs) -> anyhow::Result<SimConfig> {
    let mut sim = match &args.sim_config {
        Some(json) => serde_json::from_str(json).context("bad --sim-config")?,
        None => SimConfig::default(),
    };
    if args.sim_config.is_none() {
        sim.seed = args.seed;
    }
    Ok(sim)
}

async fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    if !(0.0..=1.0).contains(&args.flaky) {
        anyhow::bail!("--flaky must be between 0 and 1, got {}", args.flaky);
    }
    let started = Instant::now();
    let temp;
    let data_dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => {
            temp = tempfile::tempdir().context("cannot create a temporary directory")?;
            temp.path().to_path_buf()
        }
    };
    let receiver = Receiver::start(
        SALT,
        Flakiness {
            fail_rate: args.flaky / 2.0,
            hang_rate: args.flaky / 2.0,
            hang: Duration::from_millis(400),
            seed: args.seed,
        },
    )
    .await
    .context("cannot start the local receiver")?;
    let t0: Timestamp = "2024-11-11T09:00:00+08:00".parse()?;
    let clock = Arc::new(ManualClock::new(t0));
    let probe = LatencyProbe::new();
    let push_timeout = SignedDuration::from_millis(250);
    let http: Arc<dyn Notifier> = Arc::new(HttpNotifier::new(Duration::from_millis(250), true)?);
    let mut options = SandboxOptions::new(&data_dir);
    options.sim = sim_config(&args)?;
    options.engine = EngineConfig {
        push_timeout,
        allow_private_callbacks: true,
        ..EngineConfig::default()
    };
    options.notifier = Some(http);
    options.observer = Some(probe.clone());
    let sim = options.sim.clone();
    let stack = SandboxStack::start(options, clock.clone()).await?;
    println!("waybill demo: sandbox carrier {}", stack.plugin_source);
    println!(
        "  simulator {}  receiver {}  store {}",
        stack.sim.base_url(),
        receiver.url(),
        data_dir.display()
    );
    let tenant = stack.tenant("demo", "demo-key").await?;
    let numbers = sandbox_numbers("SBX", args.waybills);
    stack
        .subscribe(&tenant, &numbers, &receiver.url(), SALT)
        .await?;
    println!(
        "  subscribed {} waybills at {}; simulating on a virtual clock…",
        numbers.len(),
        t0
    );

    let driver = VirtualDriver {
        engine: stack.engine.clone(),
        clock: clock.clone(),
        probe: probe.clone(),
        quantum: SignedDuration::from_mins(5),
    };
    let bar = ProgressBar::new(numbers.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30.cyan/blue} {pos}/{len} ended  {msg}",
        )
        .context("progress template")?
        .progress_chars("=> "),
    );
    let mut total = waybill_host::engine::RoundReport::default();
    let limit = Duration::from_secs(args.time_limit);
    loop {
        let until = clock.now() + SignedDuration::from_hours(6);
        let r = driver.run_until(until).await?;
        total.checks.merge(&r.checks);
        total.deliveries.merge(&r.deliveries);
        let stats = stack.store.stats().await?;
        bar.set_position(stats.shutdown + stats.abort);
        let day = clock.now().duration_since(t0).as_hours() as f64 / 24.0;
        bar.set_message(format!(
            "day {day:5.1}  checks {}  pushes {}  retries {}",
            total.checks.checked, total.deliveries.delivered, total.deliveries.retried
        ));
        if stats.polling == 0 && stats.pending_pushes == 0 {
            break;
        }
        if started.elapsed() > limit {
            bar.println("time limit reached; summarising what has ended so far");
            break;
        }
    }
    bar.finish_and_clear();

    let subs = all_subscriptions(stack.store.as_ref()).await?;
    let latencies = probe.latencies(stack.store.as_ref(), usize::MAX).await?;
    let (order, refused, accepted) =
        receiver.inbox(|i| (i.order_problems(false).len(), i.refused.len(), i.accepted));
    let mut s = Summary::default();
    for sub in &subs {
        match (sub.status, sub.state.phase()) {
            (MonitorStatus::Shutdown, Phase::Returned) => s.returned += 1,
            (MonitorStatus::Shutdown, _) => s.delivered += 1,
            (MonitorStatus::Abort, _) if sub.message.contains("3天") => s.no_trace += 1,
            (MonitorStatus::Abort, _) => s.no_change += 1,
            (MonitorStatus::Polling, _) => s.polling += 1,
        }
        if sub.correction.is_some() {
            s.corrected += 1;
        }
        // A problem parcel: a flag was raised on it, by the carrier's words or by time.
        let mut kinds = std::collections::BTreeSet::new();
        for push in stack.store.pushes_of(sub.id).await? {
            if let PushPayload::Change(change) = &push.payload {
                kinds.extend(change.problems.iter().map(|f| f.kind));
            }
        }
        if !kinds.is_empty() {
            s.problems += 1;
        }
        for kind in kinds {
            *s.by_kind.entry(kind).or_default() += 1;
        }
        if let Ok(j) = Journey::for_number(&sub.number, &sim) {
            if sub.status == expected_end(j.outcome) {
                s.as_journey_says += 1;
            }
        }
    }
    let ms = |d: Option<Duration>| {
        d.map_or("-".to_string(), |d| {
            format!("{:.1} ms", d.as_secs_f64() * 1e3)
        })
    };
    let days = clock.now().duration_since(t0).as_hours() as f64 / 24.0;
    let mut rows: Vec<(String, String)> = vec![
        ("waybills".into(), subs.len().to_string()),
        (
            "problem parcels (any flag raised)".into(),
            s.problems.to_string(),
        ),
    ];
    rows.extend(s.by_kind.iter().map(|(kind, n)| {
        (
            format!("  {} {}", kind.code(), kind_name(*kind)),
            n.to_string(),
        )
    }));
    let more: Vec<(&str, String)> = vec![
        ("delivered (shutdown)", s.delivered.to_string()),
        ("returned to sender (shutdown)", s.returned.to_string()),
        ("no trace in 3 days (abort)", s.no_trace.to_string()),
        ("no change in 60 days (abort)", s.no_change.to_string()),
        ("still polling", s.polling.to_string()),
        (
            "moved to another carrier (autoCheck)",
            s.corrected.to_string(),
        ),
        (
            "ended as their journey says",
            format!("{}/{}", s.as_journey_says, subs.len()),
        ),
        ("carrier checks", total.checks.checked.to_string()),
        ("check errors (retried)", total.checks.errors.to_string()),
        ("pushes delivered", total.deliveries.delivered.to_string()),
        ("push retries", total.deliveries.retried.to_string()),
        ("pushes dead-lettered", total.deliveries.dead.to_string()),
        ("pushes accepted by receiver", accepted.to_string()),
        (
            "out-of-order / bad-sign pushes",
            format!("{order} / {refused}"),
        ),
        ("change→push latency p50", ms(quantile(&latencies, 0.5))),
        ("change→push latency p99", ms(quantile(&latencies, 0.99))),
        ("simulated time", format!("{days:.1} days")),
        (
            "real time",
            format!("{:.1} s", started.elapsed().as_secs_f64()),
        ),
    ];
    rows.extend(more.into_iter().map(|(k, v)| (k.to_owned(), v)));
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    println!();
    for (k, v) in &rows {
        println!("  {k:<width$}  {v:>12}");
    }
    println!(
        "\n  latency: real time from the check that found a change (outbox written) to the \
         receiver's acknowledgement; includes retries after {:.0} % induced receiver failures.",
        args.flaky * 100.0
    );
    stack.shutdown().await?;
    receiver.stop();
    let ok = order == 0 && refused == 0 && s.polling == 0;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[derive(Default)]
struct Summary {
    delivered: usize,
    returned: usize,
    no_trace: usize,
    no_change: usize,
    polling: usize,
    corrected: usize,
    problems: usize,
    by_kind: std::collections::BTreeMap<waybill_core::problem::FlagKind, usize>,
    as_journey_says: usize,
}

/// Every subscription, by id.
pub async fn all_subscriptions(store: &dyn Store) -> anyhow::Result<Vec<Subscription>> {
    let mut out: Vec<Subscription> = Vec::new();
    loop {
        let page = store
            .list_subscriptions(&SubscriptionFilter {
                after_id: out.last().map(|s| s.id),
                limit: 10_000,
                ..SubscriptionFilter::default()
            })
            .await?;
        if page.is_empty() {
            return Ok(out);
        }
        out.extend(page);
    }
}

/// Daemon mode: subscribe (idempotently), then run until every subscription has ended
/// and every push has been delivered.
async fn daemon(args: DemoArgs) -> anyhow::Result<ExitCode> {
    // A daemon logs like `serve` does: failed commits and lost leases must be seen.
    super::serve::init_log(super::serve::LogFormat::Text);
    let (Some(callback), Some(start), Some(epoch), Some(dir)) = (
        args.callback.clone(),
        args.clock_start,
        args.clock_epoch,
        args.data_dir.clone(),
    ) else {
        anyhow::bail!("--daemon needs --callback, --clock-start, --clock-epoch and --data-dir");
    };
    let speed = args.clock_speed;
    if !(speed.is_finite() && speed > 0.0) {
        anyhow::bail!("--clock-speed must be a positive number, got {speed}");
    }
    // The same virtual timeline in every run on this data directory.
    let elapsed = Timestamp::now().duration_since(epoch).as_secs_f64() * speed;
    let now = start
        .checked_add(SignedDuration::try_from_secs_f64(elapsed)?)
        .context("clock out of range")?;
    let clock: Arc<dyn Clock> = Arc::new(ScaledClock::new(SystemClock, now, speed));
    // Retry delays are on the virtual clock: keep them long enough in real time. Leases
    // are real time already (`Clock::lease_now`): short, so a restart after a kill takes
    // the dead run's claims over within seconds. The push lease must still outlast a
    // claim-to-commit of a delivery batch on a loaded machine (three debug daemons and
    // PostgreSQL on two cores took over 3 s), or a healthy daemon's push is sent again.
    let virt = |real_ms: f64| SignedDuration::from_millis((real_ms * speed / 1000.0) as i64);
    let mut options = SandboxOptions::new(&dir);
    options.database = args
        .database
        .as_deref()
        .map(StoreLocation::parse)
        .transpose()?;
    options.sim = sim_config(&args)?;
    options.engine = EngineConfig {
        lease: SignedDuration::from_secs(2),
        idle_wait: SignedDuration::from_millis(20),
        push_timeout: SignedDuration::from_secs(2),
        allow_private_callbacks: true,
        push: PushConfig {
            lease: SignedDuration::from_secs(10),
            retry: RetryPolicy::Exponential {
                first: virt(50.0),
                factor: 2.0,
                max_delay: virt(500.0),
                total: SignedDuration::from_hours(24 * 365),
            },
            ..PushConfig::default()
        },
        ..EngineConfig::default()
    };
    let stack = SandboxStack::start(options, clock).await?;
    let tenant = stack.tenant("crash", "crash-key").await?;
    let numbers = sandbox_numbers("SBC", args.waybills);
    // One transaction subscribes them all, so any row means a previous run did; an
    // ended subscription must not be renewed by a restart.
    let earlier = stack
        .store
        .list_subscriptions(&SubscriptionFilter {
            tenant_id: Some(tenant.id),
            limit: 1,
            ..SubscriptionFilter::default()
        })
        .await?;
    if earlier.is_empty() {
        let created = stack
            .subscribe(&tenant, &numbers, &callback, &args.salt)
            .await?;
        println!("subscribed {created} waybills");
    }
    let engine = stack.engine.clone();
    let store = stack.store.clone();
    engine
        .run(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                match store.stats().await {
                    Ok(s) if s.polling == 0 && s.pending_pushes == 0 => return,
                    _ => {}
                }
            }
        })
        .await;
    stack.shutdown().await?;
    println!("settled");
    Ok(ExitCode::SUCCESS)
}
