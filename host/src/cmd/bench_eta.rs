//! `waybill bench-eta` (hidden): the ETA measurement of BENCHMARKS.md. Runs thousands of
//! sandbox parcels on a few lanes through the whole daemon (simulator, sandbox plugin,
//! store, engine) on a virtual clock, and scores the estimates the engine stored at each
//! change against when each parcel was really delivered.
//!
//! Every estimate is made before its parcel is delivered, so no parcel is ever scored by
//! lanes that have seen it (prequential scoring: each parcel tests, then trains). Scores
//! are grouped by how many deliveries the answering scope had learned when the estimate
//! was made, so the cold start and the trained lane show side by side.

use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use jiff::tz::{Offset, TimeZone};
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use waybill_core::clock::ManualClock;
use waybill_core::eta::{Basis, Estimate, Milestones, Scope, Stage};
use waybill_core::place::{parse_address, Place};
use waybill_host::engine::EngineConfig;
use waybill_host::sandbox::{sandbox_number, SandboxOptions, SandboxStack, SANDBOX};
use waybill_host::store::{MonitorStatus, Store, Subscription, SubscriptionFilter, SubscriptionId};
use waybill_sandbox_sim::journey::{lane_truth, Journey, SimConfig};

/// Options of `waybill bench-eta`.
#[derive(Debug, clap::Args)]
pub struct BenchEtaArgs {
    /// How many of the busiest domestic lanes to run.
    #[arg(long, default_value_t = 3)]
    pub lanes: usize,
    /// Parcels per lane (about 85 % of them end delivered).
    #[arg(long, default_value_t = 1_400)]
    pub per_lane: usize,
    /// Virtual days over which the parcels are handed in (evenly), so every weekday and
    /// hour is covered.
    #[arg(long, default_value_t = 28)]
    pub days: i64,
    /// Virtual minutes between engine rounds.
    #[arg(long, default_value_t = 15)]
    pub step_minutes: i64,
    /// Write the scores as JSON to this file too.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

pub fn run(args: BenchEtaArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(bench(args))
}

/// The first estimate the engine stored at each stage of one parcel, with the
/// deliveries its lane had taught by then.
#[derive(Default)]
struct Seen {
    by_stage: BTreeMap<&'static str, (Estimate, u64)>,
}

fn stage_name(s: Option<Stage>) -> &'static str {
    s.map_or("subscribed", Stage::name)
}

/// How much the parcel's lane had learned when the estimate was made, as a bucket name.
fn bucket(e: &Estimate, lane_deliveries: u64) -> &'static str {
    match (&e.basis, lane_deliveries) {
        (Basis::ColdStart { .. }, _) => "cold start",
        (_, 0..100) => "lane < 100 delivered",
        (_, 100..1_000) => "lane 100-999",
        _ => "lane >= 1000",
    }
}

#[derive(Default, Serialize)]
struct Score {
    estimates: usize,
    median_abs_error_h: f64,
    mean_abs_error_h: f64,
    on_predicted_day: f64,
    inside_p20_p80: f64,
    #[serde(skip)]
    errors: Vec<f64>,
    #[serde(skip)]
    same_day: usize,
    #[serde(skip)]
    inside: usize,
}

impl Score {
    fn add(&mut self, e: &Estimate, delivered: Timestamp) {
        let china = TimeZone::fixed(Offset::constant(8));
        let day = |t: Timestamp| t.to_zoned(china.clone()).date();
        self.estimates += 1;
        self.errors
            .push((e.arrival.duration_since(delivered)).as_secs_f64().abs() / 3600.0);
        if day(e.arrival) == day(delivered) {
            self.same_day += 1;
        }
        if e.early <= delivered && delivered <= e.late {
            self.inside += 1;
        }
    }

    fn finish(&mut self) {
        let n = self.errors.len().max(1) as f64;
        self.errors.sort_by(f64::total_cmp);
        self.median_abs_error_h = self
            .errors
            .get(self.errors.len() / 2)
            .copied()
            .unwrap_or(f64::NAN);
        self.mean_abs_error_h = self.errors.iter().sum::<f64>() / n;
        self.on_predicted_day = self.same_day as f64 / n;
        self.inside_p20_p80 = self.inside as f64 / n;
    }
}

#[derive(Serialize)]
struct LaneReport {
    origin: String,
    destination: String,
    parcels: usize,
    truth_line_haul_h: f64,
    truth_spread_h: f64,
    truth_departure_hour: u8,
}

#[derive(Serialize)]
struct Report {
    lanes: Vec<LaneReport>,
    delivered: usize,
    virtual_days: f64,
    wall_seconds: f64,
    /// stage → bucket → score
    scores: BTreeMap<String, BTreeMap<String, Score>>,
}

/// The `per_lane` first numbers on each of the `lanes` busiest domestic lanes.
fn pick_numbers(
    config: &SimConfig,
    lanes: usize,
    per_lane: usize,
) -> (Vec<(String, String)>, Vec<String>) {
    // Rank lanes by how often the first 20,000 numbers travel them.
    let mut freq: HashMap<(String, String), usize> = HashMap::new();
    for i in 0..20_000 {
        if let Ok(j) = Journey::for_number(&sandbox_number("SBE", i), config) {
            if !j.international && j.origin != j.destination {
                *freq.entry((j.origin, j.destination)).or_default() += 1;
            }
        }
    }
    let mut ranked: Vec<_> = freq.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let chosen: Vec<(String, String)> = ranked.into_iter().take(lanes).map(|(l, _)| l).collect();
    let mut count: HashMap<&(String, String), usize> = HashMap::new();
    let mut numbers = Vec::new();
    let mut i = 0;
    while count.values().sum::<usize>() < lanes * per_lane && i < 50_000_000 {
        let n = sandbox_number("SBE", i);
        i += 1;
        let Ok(j) = Journey::for_number(&n, config) else {
            continue;
        };
        if let Some(lane) = chosen
            .iter()
            .find(|l| l.0 == j.origin && l.1 == j.destination)
        {
            let c = count.entry(lane).or_default();
            if *c < per_lane {
                *c += 1;
                numbers.push(n);
            }
        }
    }
    (chosen, numbers)
}

async fn bench(args: BenchEtaArgs) -> anyhow::Result<ExitCode> {
    let dir = tempfile::tempdir()?;
    // A Monday at midnight in China.
    let t0: Timestamp = "2026-01-05T00:00:00+08:00".parse()?;
    let clock = Arc::new(ManualClock::new(t0));
    let mut options = SandboxOptions::new(dir.path());
    options.engine = EngineConfig {
        allow_private_callbacks: true,
        ..EngineConfig::default()
    };
    let started = Instant::now();
    let (lanes, numbers) = pick_numbers(&options.sim, args.lanes, args.per_lane);
    let mut lane_of: HashMap<String, (Place, Place)> = HashMap::new();
    for n in &numbers {
        let j = Journey::for_number(n, &options.sim)?;
        if let (Some(o), Some(d)) = (parse_address(&j.origin), parse_address(&j.destination)) {
            lane_of.insert(n.clone(), (o.place, d.place));
        }
    }
    let stack = SandboxStack::start(options, clock.clone()).await?;
    let tenant = stack.tenant("bench", "bench-key").await?;
    println!(
        "{} parcels on {} lanes, handed in over {} virtual days; sandbox plugin {}",
        numbers.len(),
        lanes.len(),
        args.days,
        stack.plugin_source
    );

    let step = SignedDuration::from_mins(args.step_minutes.max(1));
    let window = SignedDuration::from_hours(24 * args.days.max(1));
    let mut handed = 0usize;
    let mut seen: HashMap<SubscriptionId, Seen> = HashMap::new();
    let mut now = t0;
    loop {
        // Hand in the parcels due by now, evenly over the window.
        let due = ((now.duration_since(t0).as_secs_f64() / window.as_secs_f64())
            * numbers.len() as f64)
            .ceil() as usize;
        let due = due.min(numbers.len());
        if due > handed {
            stack
                .subscribe(&tenant, &numbers[handed..due], "", "")
                .await?;
            handed = due;
        }
        loop {
            let r = stack.engine.run_once(now).await?;
            if r.checks.claimed < stack.engine.config().batch_size {
                break;
            }
        }
        let lanes = stack.engine.lanes().await?;
        let learned = |sub: &Subscription| {
            let scope = Scope::chain(
                lane_of.get(&sub.number).map(|l| &l.0),
                lane_of.get(&sub.number).map(|l| &l.1),
            )[0];
            lanes.get(SANDBOX, &scope).map_or(0, |s| s.deliveries)
        };
        record(stack.store.as_ref(), &mut seen, learned).await?;
        // Lost and stuck parcels poll until the policy gives up on them (weeks); every
        // delivery is over well within ten days of the last hand-in.
        let tail = now.duration_since(t0) > window + SignedDuration::from_hours(24 * 10);
        if handed == numbers.len() && (tail || stack.polling().await? == 0) {
            break;
        }
        now += step;
        clock.set(now);
    }

    // Score every parcel that was delivered, against its real delivery time.
    let mut scores: BTreeMap<String, BTreeMap<String, Score>> = BTreeMap::new();
    let mut delivered = 0;
    for (id, s) in &seen {
        let Some(sub) = stack.store.subscription(*id).await? else {
            continue;
        };
        let Some(trace) = stack.store.trace(*id).await? else {
            continue;
        };
        let Some(at) = Milestones::of(&trace, sub.to.as_deref()).delivered else {
            continue;
        };
        delivered += 1;
        for (stage, (e, learned)) in &s.by_stage {
            for b in [bucket(e, *learned), "all"] {
                scores
                    .entry((*stage).to_string())
                    .or_default()
                    .entry(b.to_string())
                    .or_default()
                    .add(e, at);
            }
        }
    }
    for by_bucket in scores.values_mut() {
        for score in by_bucket.values_mut() {
            score.finish();
        }
    }
    let lane_reports = lanes
        .iter()
        .map(|(o, d)| {
            let truth = lane_truth(o, d);
            LaneReport {
                origin: o.clone(),
                destination: d.clone(),
                parcels: args.per_lane,
                truth_line_haul_h: truth.map_or(f64::NAN, |t| t.line_haul.as_secs_f64() / 3600.0),
                truth_spread_h: truth.map_or(f64::NAN, |t| t.spread.as_secs_f64() / 3600.0),
                truth_departure_hour: truth.map_or(0, |t| t.departure_hour),
            }
        })
        .collect();
    let report = Report {
        lanes: lane_reports,
        delivered,
        virtual_days: now.duration_since(t0).as_secs_f64() / 86_400.0,
        wall_seconds: started.elapsed().as_secs_f64(),
        scores,
    };
    print_report(&report);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    stack.shutdown().await?;
    Ok(ExitCode::SUCCESS)
}

/// Keeps the first estimate stored at each stage of every polling parcel, with what its
/// lane had learned then (`learned`).
async fn record(
    store: &dyn Store,
    seen: &mut HashMap<SubscriptionId, Seen>,
    learned: impl Fn(&Subscription) -> u64,
) -> anyhow::Result<()> {
    let mut after = None;
    loop {
        let page = store
            .list_subscriptions(&SubscriptionFilter {
                status: Some(MonitorStatus::Polling),
                after_id: after,
                limit: 1_000,
                ..SubscriptionFilter::default()
            })
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for sub in page {
            if let Some(e) = &sub.eta {
                let n = learned(&sub);
                seen.entry(sub.id)
                    .or_default()
                    .by_stage
                    .entry(stage_name(e.stage))
                    .or_insert_with(|| (e.clone(), n));
            }
        }
    }
    Ok(())
}

fn print_report(r: &Report) {
    println!();
    for l in &r.lanes {
        println!(
            "lane {} → {}: {} parcels; truth: line haul at {:02}:00 daily, {:.1} h ± {:.1} h",
            l.origin,
            l.destination,
            l.parcels,
            l.truth_departure_hour,
            l.truth_line_haul_h,
            l.truth_spread_h
        );
    }
    println!(
        "{} delivered; {:.1} virtual days in {:.0} s\n",
        r.delivered, r.virtual_days, r.wall_seconds
    );
    println!(
        "{:<18} {:<20} {:>9} {:>10} {:>10} {:>10} {:>10}",
        "stage", "basis", "estimates", "median |e|", "mean |e|", "same day", "in p20-p80"
    );
    for (stage, by_bucket) in &r.scores {
        for (b, s) in by_bucket {
            println!(
                "{stage:<18} {b:<20} {:>9} {:>8.1} h {:>8.1} h {:>9.1}% {:>9.1}%",
                s.estimates,
                s.median_abs_error_h,
                s.mean_abs_error_h,
                s.on_predicted_day * 100.0,
                s.inside_p20_p80 * 100.0
            );
        }
    }
}
