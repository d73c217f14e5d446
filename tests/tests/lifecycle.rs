//! 1,000 sandbox waybills watched to their end on a virtual clock.

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use waybill_core::clock::ManualClock;
use waybill_host::engine::EngineConfig;
use waybill_host::latency::{LatencyProbe, VirtualDriver};
use waybill_host::push::{PushConfig, RetryPolicy};
use waybill_host::receiver::{Flakiness, Receiver};
use waybill_host::sandbox::{expected_end, sandbox_numbers, SandboxOptions, SandboxStack};
use waybill_host::store::{MonitorStatus, Store, Subscription, SubscriptionFilter};
use waybill_sandbox_sim::journey::{Journey, SimConfig};

use crate::support::target_dir;

const HEALTHY: usize = 1_000;
const FLAKY: usize = 300;

async fn subscriptions_of(store: &dyn Store, tenant: i64) -> Vec<Subscription> {
    let mut out: Vec<Subscription> = Vec::new();
    loop {
        let page = store
            .list_subscriptions(&SubscriptionFilter {
                tenant_id: Some(tenant),
                after_id: out.last().map(|s| s.id),
                limit: 1_000,
                ..SubscriptionFilter::default()
            })
            .await
            .expect("list");
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

fn end_word(status: MonitorStatus) -> &'static str {
    match status {
        MonitorStatus::Shutdown => "shutdown",
        MonitorStatus::Abort => "abort",
        MonitorStatus::Polling => "polling",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_waybill_ends_as_its_journey_says_and_every_change_reaches_the_receivers_in_order() {
    let dir = tempfile::tempdir().expect("dir");
    let healthy = Receiver::start("salt-h", Flakiness::default())
        .await
        .expect("receiver");
    let flaky = Receiver::start(
        "salt-f",
        Flakiness {
            fail_rate: 0.25,
            hang_rate: 0.25,
            // Longer than the push timeout below, so these requests time out at the sender.
            hang: Duration::from_millis(700),
            seed: 9,
        },
    )
    .await
    .expect("receiver");

    let t0: Timestamp = "2024-06-18T08:00:00+08:00".parse().expect("ts");
    let clock = Arc::new(ManualClock::new(t0));
    let sim = SimConfig {
        seed: 42,
        ..SimConfig::default()
    };
    let mut options = SandboxOptions::new(dir.path());
    options.plugin_dir = Some(target_dir());
    options.sim = sim.clone();
    options.engine = EngineConfig {
        // Generous enough that a healthy receiver never times out on a loaded CI machine
        // (a timed-out push that did arrive is re-sent, which would break exactly-once).
        push_timeout: SignedDuration::from_millis(500),
        allow_private_callbacks: true,
        push: PushConfig {
            // Never give up: with half the requests failing, a push must still arrive.
            retry: RetryPolicy::Exponential {
                first: SignedDuration::from_secs(30),
                factor: 2.0,
                max_delay: SignedDuration::from_mins(10),
                total: SignedDuration::from_hours(24 * 365),
            },
            ..PushConfig::default()
        },
        ..EngineConfig::default()
    };
    let stack = SandboxStack::start(options, clock.clone())
        .await
        .expect("stack");
    eprintln!("sandbox plugin {}", stack.plugin_source);
    let th = stack.tenant("healthy", "kh").await.expect("tenant");
    let tf = stack.tenant("flaky", "kf").await.expect("tenant");
    let hn = sandbox_numbers("SBH", HEALTHY);
    let fnum = sandbox_numbers("SBF", FLAKY);
    assert_eq!(
        stack
            .subscribe(&th, &hn, &healthy.url(), "salt-h")
            .await
            .expect("subscribe"),
        HEALTHY
    );
    assert_eq!(
        stack
            .subscribe(&tf, &fnum, &flaky.url(), "salt-f")
            .await
            .expect("subscribe"),
        FLAKY
    );

    let driver = VirtualDriver {
        engine: stack.engine.clone(),
        clock: clock.clone(),
        probe: LatencyProbe::new(),
        quantum: SignedDuration::from_mins(30),
    };
    // Long enough for the 60-day rule to end the parcels that never arrive.
    let report = driver
        .run_until(t0 + SignedDuration::from_hours(24 * 70))
        .await
        .expect("run");
    let stats = stack.store.stats().await.expect("stats");
    assert_eq!(
        (stats.polling, stats.pending_pushes, stats.dead_pushes),
        (0, 0, 0),
        "{stats:?} {report:?}"
    );
    assert!(
        report.deliveries.retried > 0,
        "the flaky receiver caused retries"
    );

    for (tenant, receiver, exactly_once, count) in
        [(&th, &healthy, true, HEALTHY), (&tf, &flaky, false, FLAKY)]
    {
        let subs = subscriptions_of(stack.store.as_ref(), tenant.id).await;
        assert_eq!(subs.len(), count, "no subscription lost");
        receiver.inbox(|inbox| {
            assert!(inbox.refused.is_empty(), "bad pushes: {:?}", inbox.refused);
            let problems = inbox.order_problems(exactly_once);
            assert!(problems.is_empty(), "{}: {problems:?}", tenant.name);
            if !exactly_once {
                assert!(inbox.failed > 0, "the flaky receiver did fail requests");
            }
            for sub in &subs {
                let journey = Journey::for_number(&sub.number, &sim).expect("journey");
                assert_eq!(
                    sub.status,
                    expected_end(journey.outcome),
                    "{} ({:?}) ended {:?}: {}",
                    sub.number,
                    journey.outcome,
                    sub.status,
                    sub.message
                );
                let got = inbox
                    .by_subscription
                    .get(&stack.store.push_prefix(sub.id))
                    .cloned()
                    .unwrap_or_default();
                let mut seqs: Vec<i64> = got.iter().map(|r| r.seq).collect();
                seqs.dedup();
                let want: Vec<i64> = (1..=sub.push_seq).collect();
                assert_eq!(seqs, want, "{}: every push, in order", sub.number);
                let last = got.last().expect("at least the final push");
                assert_eq!(last.status, end_word(sub.status), "{}", sub.number);
                assert_eq!(last.number, sub.number);
            }
        });
    }
    stack.shutdown().await.expect("shutdown");
}
