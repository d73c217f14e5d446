//! The `waybill` daemon as it runs in production (its check loop and its streaming
//! delivery loop side by side, on a fast clock): killed with SIGKILL at random moments and
//! restarted on the same data directory, or pushing to a receiver that fails and hangs,
//! no subscription is lost, no push lost, none backwards.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use tokio::process::{Child, Command};
use waybill_host::receiver::{Flakiness, Receiver};
use waybill_host::store::{MonitorStatus, SqliteStore, Store, Subscription, SubscriptionFilter};

use crate::support::{target_dir, waybill_bin};

const WAYBILLS: usize = 200;
pub const SALT: &str = "crash-salt";
/// Domestic parcels that all end within days, so a run takes seconds at this speed.
pub const SIM: &str =
    r#"{"seed":7,"international_rate":0.0,"rates":{"stuck":0.0,"lost":0.0,"never_trace":0.05}}"#;

struct Run<'a> {
    dir: &'a Path,
    callback: String,
    start: Timestamp,
    epoch: Timestamp,
}

impl Run<'_> {
    fn spawn(&self) -> Child {
        Command::new(waybill_bin())
            .args(["demo", "--daemon", "--data-dir"])
            .arg(self.dir)
            .args(["--callback", &self.callback, "--salt", SALT])
            .args(["--waybills", &WAYBILLS.to_string()])
            .args(["--clock-start", &self.start.to_string()])
            .args(["--clock-epoch", &self.epoch.to_string()])
            .args(["--clock-speed", "20000", "--sim-config", SIM])
            .env("WAYBILL_PLUGIN_DIR", target_dir())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start waybill")
    }
}

/// xorshift64*, seeded from the clock: each run kills at different moments, and the
/// seed is printed so a failure can be replayed.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

async fn all_subscriptions(store: &dyn Store) -> Vec<Subscription> {
    let mut out: Vec<Subscription> = Vec::new();
    loop {
        let page = store
            .list_subscriptions(&SubscriptionFilter {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_daemon_at_random_moments_loses_no_subscription_and_no_push() {
    let dir = tempfile::tempdir().expect("dir");
    let receiver = Receiver::start(SALT, Flakiness::default())
        .await
        .expect("receiver");
    let seed = Timestamp::now().as_nanosecond() as u64 | 1;
    eprintln!("kill schedule seed {seed}");
    let mut rng = Rng(seed);
    let run = Run {
        dir: dir.path(),
        callback: receiver.url(),
        start: "2024-03-01T08:00:00+08:00".parse().expect("ts"),
        epoch: Timestamp::now(),
    };

    let mut kills = 0;
    while kills < 6 {
        let mut child = run.spawn();
        let wait = Duration::from_millis(200 + rng.below(2_500));
        tokio::time::sleep(wait).await;
        if child.try_wait().expect("poll child").is_some() {
            break; // it finished before this kill: fine, but count only real kills
        }
        child.kill().await.expect("SIGKILL");
        kills += 1;
        let seen = receiver.inbox(|i| i.accepted);
        eprintln!("killed after {wait:?}; {seen} pushes accepted so far");
    }
    assert!(
        kills >= 5,
        "only {kills} kills landed before the run finished"
    );

    settle(run.spawn(), Duration::from_secs(240)).await;
    let store = SqliteStore::open_dir(dir.path()).await.expect("store");
    assert_every_push_arrived_in_order(&store, &receiver, WAYBILLS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flaky_receiver_gets_every_push_of_the_running_daemon_in_order() {
    let dir = tempfile::tempdir().expect("dir");
    // A quarter of the requests fail, one in ten hangs past the 2 s push timeout.
    let flaky = Flakiness {
        fail_rate: 0.25,
        hang_rate: 0.1,
        hang: Duration::from_millis(2_500),
        seed: 11,
    };
    let receiver = Receiver::start(SALT, flaky).await.expect("receiver");
    let run = Run {
        dir: dir.path(),
        callback: receiver.url(),
        start: "2024-03-01T08:00:00+08:00".parse().expect("ts"),
        epoch: Timestamp::now(),
    };
    settle(run.spawn(), Duration::from_secs(240)).await;
    assert!(
        receiver.inbox(|i| i.failed) > 0,
        "the receiver failed some requests"
    );
    let store = SqliteStore::open_dir(dir.path()).await.expect("store");
    assert_every_push_arrived_in_order(&store, &receiver, WAYBILLS).await;
}

/// Waits for a run to end by itself (every waybill ended, every push acknowledged).
pub async fn settle(mut child: Child, within: Duration) {
    let deadline = Instant::now() + within;
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll child") {
            break status;
        }
        assert!(Instant::now() < deadline, "the run did not settle");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "the run exited with {status}");
}

/// Every subscription ended, and the receiver got each of its pushes, in order, the last
/// one saying how it ended (repeats of a push allowed: delivery is at least once).
pub async fn assert_every_push_arrived_in_order(
    store: &dyn Store,
    receiver: &Receiver,
    waybills: usize,
) {
    let subs = all_subscriptions(store).await;
    assert_eq!(subs.len(), waybills, "no subscription lost");
    let stats = store.stats().await.expect("stats");
    assert_eq!(
        (stats.polling, stats.pending_pushes, stats.dead_pushes),
        (0, 0, 0)
    );
    receiver.inbox(|inbox| {
        assert!(inbox.refused.is_empty(), "{:?}", inbox.refused);
        let problems = inbox.order_problems(false);
        assert!(problems.is_empty(), "{problems:?}");
        for sub in &subs {
            assert_ne!(sub.status, MonitorStatus::Polling);
            let got = inbox
                .by_subscription
                .get(&store.push_prefix(sub.id))
                .cloned()
                .unwrap_or_default();
            let mut seqs: Vec<i64> = got.iter().map(|r| r.seq).collect();
            seqs.dedup();
            let want: Vec<i64> = (1..=sub.push_seq).collect();
            assert_eq!(seqs, want, "{}: every push, in order", sub.number);
            let last = got.last().expect("a final push");
            let word = if sub.status == MonitorStatus::Shutdown {
                "shutdown"
            } else {
                "abort"
            };
            assert_eq!(last.status, word, "{}", sub.number);
        }
    });
}
