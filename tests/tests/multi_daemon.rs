//! Three `waybill` daemons on one PostgreSQL database share the work: one is killed with
//! SIGKILL mid-run and started again later, and still every waybill completes, no push is
//! lost, none goes backwards, and a push arrives twice only around the kill (a claim the
//! dead daemon held until its lease ran out), with the same push id.
//!
//! The daemons are `waybill demo --daemon` processes (the production check loop and
//! delivery loop on a fast clock) given the same clock arguments, so they agree on the
//! virtual time; each runs its own sandbox simulator, which starts a number's journey when
//! the number was subscribed (looked up in the shared database), so they agree on every
//! parcel too. Runs when `WAYBILL_TEST_DATABASE_URL` names a PostgreSQL server; the size
//! is `WAYBILL_MULTI_DAEMON_WAYBILLS` (default 400: CI runs it beside every other end-to-end
//! test on two cores, with debug builds of three daemons).

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use waybill_host::receiver::{Flakiness, Receiver};
use waybill_host::store::secrets::SecretKey;
use waybill_host::store::{PgStore, Store};

use crate::crash::{assert_every_push_arrived_in_order, settle, SALT, SIM};
use crate::support::{target_dir, waybill_bin, TestDatabase};

/// Every daemon seals and opens secrets with this key, as daemons on several machines
/// must share one (`WAYBILL_SECRET_KEY`).
const KEY_HEX: &str = "7c3e9a51d2b84f06a1c5e8d3b7f20946c1a8e5d2b9f03c67a4e1d8b5c2f09e73";
/// The push lease of `demo --daemon` (real time): a push the killed daemon had claimed is
/// sent again by another once it runs out.
const PUSH_LEASE: Duration = Duration::from_secs(10);

struct Run {
    database: String,
    callback: String,
    waybills: usize,
    start: Timestamp,
    epoch: Timestamp,
}

impl Run {
    fn spawn(&self, dir: &Path) -> Child {
        Command::new(waybill_bin())
            .args(["demo", "--daemon", "--data-dir"])
            .arg(dir)
            .args(["--database", &self.database])
            .args(["--callback", &self.callback, "--salt", SALT])
            .args(["--waybills", &self.waybills.to_string()])
            .args(["--clock-start", &self.start.to_string()])
            .args(["--clock-epoch", &self.epoch.to_string()])
            .args(["--clock-speed", "20000", "--sim-config", SIM])
            .env("WAYBILL_PLUGIN_DIR", target_dir())
            .env("WAYBILL_SECRET_KEY", KEY_HEX)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start waybill")
    }
}

/// Waits until the first daemon says it subscribed the waybills, so the others find the
/// tenant and the subscriptions instead of racing to create them.
async fn subscribed(child: &mut Child) {
    let stdout = child.stdout.take().expect("piped");
    let mut lines = BufReader::new(stdout).lines();
    let found = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.starts_with("subscribed") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "the first daemon subscribed the waybills");
    // Keep reading so the daemon never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_daemons_on_one_database_with_one_killed_complete_every_waybill_once_in_order() {
    let Ok(server) = std::env::var("WAYBILL_TEST_DATABASE_URL") else {
        eprintln!("multi_daemon: WAYBILL_TEST_DATABASE_URL is not set; skipped");
        return;
    };
    let waybills: usize = std::env::var("WAYBILL_MULTI_DAEMON_WAYBILLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(400);
    let db = TestDatabase::create(&server, "multi").await;
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().expect("dir")).collect();
    let receiver = Receiver::start(SALT, Flakiness::default())
        .await
        .expect("receiver");
    let run = Run {
        database: db.url.clone(),
        callback: receiver.url(),
        waybills,
        start: "2024-03-01T08:00:00+08:00".parse().expect("ts"),
        epoch: Timestamp::now(),
    };
    let began = Instant::now();
    let mut first = run.spawn(dirs[0].path());
    subscribed(&mut first).await;
    let second = run.spawn(dirs[1].path());
    let third = run.spawn(dirs[2].path());

    // Mid-run: some pushes are out (half a push per waybill), most are still to come. The
    // deadline is generous because the daemons share two cores with the other tests.
    let deadline = Instant::now() + Duration::from_secs(300);
    while receiver.inbox(|i| i.accepted) < (waybills as u64).div_ceil(2) {
        assert!(Instant::now() < deadline, "the run makes no progress");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut second = second;
    second.kill().await.expect("SIGKILL");
    let killed_at = Instant::now();
    let at_kill = receiver.inbox(|i| i.accepted);
    eprintln!(
        "killed the second daemon after {:?}, {at_kill} pushes accepted",
        began.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    let restarted = run.spawn(dirs[1].path());
    let restarted_at = Instant::now();

    for child in [first, third, restarted] {
        settle(child, Duration::from_secs(600)).await;
    }
    eprintln!(
        "{waybills} waybills settled in {:?}, {} pushes accepted",
        began.elapsed(),
        receiver.inbox(|i| i.accepted)
    );

    let key = SecretKey::from_hex(KEY_HEX, "test key").expect("key");
    let store = PgStore::open(&db.url, key, 4).await.expect("open");
    assert_every_push_arrived_in_order(&store, &receiver, waybills).await;

    // A push delivered twice was claimed by the killed daemon (sent, not yet recorded) and
    // sent again once its lease ran out: its first delivery lies within a lease of the
    // kill, and never in the healthy part of the run.
    let window_start = killed_at - PUSH_LEASE - Duration::from_secs(1);
    let window_end = restarted_at.max(killed_at + PUSH_LEASE) + PUSH_LEASE;
    let repeated: Vec<(String, Instant)> = receiver.inbox(|inbox| {
        let mut out = Vec::new();
        for got in inbox.by_subscription.values() {
            for pair in got.windows(2) {
                if pair[0].push_id == pair[1].push_id {
                    out.push((pair[0].push_id.clone(), pair[0].at));
                }
            }
        }
        out
    });
    let mut buckets = std::collections::BTreeMap::<u64, usize>::new();
    for (_, at) in &repeated {
        *buckets
            .entry(at.duration_since(began).as_secs() / 5 * 5)
            .or_default() += 1;
    }
    eprintln!("repeats by 5 s of the run: {buckets:?}");
    for (push_id, at) in &repeated {
        // Outside the kill's window a repeat is the delivery worker's own retry (the
        // receiver answered after the push timeout), recorded as a second attempt; a push
        // sent twice by two daemons would show one attempt.
        let push = store.push(push_id).await.expect("read").expect("stored");
        eprintln!(
            "repeat {push_id} at {:?} after start, attempts {}, last error {:?}",
            at.duration_since(began),
            push.attempt,
            push.last_error
        );
        assert!(
            (*at >= window_start && *at <= window_end) || push.attempt > 1,
            "{push_id} was sent twice outside the kill's lease window in one attempt"
        );
    }
    eprintln!("{} pushes delivered twice", repeated.len());
    store.close().await;
}
