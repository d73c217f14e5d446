//! Regression: a full disk must never turn into acknowledged writes that are not saved.
//!
//! The data directory sits on a 2 MiB tmpfs that the test fills with a file, then frees.
//! While it is full, subscriptions (through `POST /poll`), check results and push verdicts
//! are written; after it is freed, more of each. Then the daemon's store is closed (as a
//! restart would) and the database is read back: every write that was acknowledged is
//! there, every one that was refused is not, writes came back without a restart, and
//! `PRAGMA integrity_check` passes.
//!
//! Mounting needs root (CAP_SYS_ADMIN); where the mount fails the test prints why and
//! passes without running.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use async_trait::async_trait;
use axum::body::{to_bytes, Body};
use axum::http::{header, Request};
use axum::Router;
use jiff::{SignedDuration, Timestamp};
use serde_json::{json, Value};
use tower::ServiceExt;
use waybill_core::carrier::{Capabilities, Carrier, Delivery, Notifier, Push, Reply, TrackOutcome};
use waybill_core::clock::ManualClock;
use waybill_core::model::{EventTime, Trace, TrackEvent, Waybill, CHINA_OFFSET};
use waybill_core::state::State;
use waybill_host::api::{router, Api, ApiConfig, Metrics};
use waybill_host::engine::{Engine, EngineConfig};
use waybill_host::store::{
    Change, CheckOutcome, Lease, MonitorStatus, NewPush, NewTenant, PushHeader, PushResult,
    PushState, PushVerdict, SqliteStore, Store, SubscriptionFilter, SubscriptionId,
};

const KEY: &str = "DISKFULLKEY1";
const PUBLIC_CB: &str = "http://93.184.216.34/cb";
/// Events in each check's trace.
const EVENTS: usize = 5;

/// A tmpfs mounted on a fresh directory; unmounted and removed on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (a `mount -o size=` value), or says why it cannot.
    fn mount(size: &str) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("no temp dir: {e}"))?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy, so a file still open somewhere cannot keep the mount behind.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Fills the filesystem holding `dir` with one file; returns its path.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).expect("create filler");
    for chunk in [64 * 1024, 4096, 512, 1] {
        let block = vec![0u8; chunk];
        while f.write_all(&block).is_ok() {}
    }
    let _ = f.sync_all();
    path
}

/// The carrier for `sandbox`: never asked here (no check is driven by the engine).
struct Idle;
#[async_trait]
impl Carrier for Idle {
    fn codes(&self) -> &[&str] {
        &["sandbox"]
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }
    async fn track(&self, waybills: &[Waybill]) -> Vec<TrackOutcome> {
        waybills
            .iter()
            .map(|w| Ok(Trace::from_events("sandbox", &w.number, Vec::new())))
            .collect()
    }
}

struct Discard;
#[async_trait]
impl Notifier for Discard {
    async fn deliver(&self, _push: &Push) -> Delivery {
        Delivery::Answered(Reply::ok(r#"{"result":true,"returnCode":"200"}"#))
    }
}

fn t0() -> Timestamp {
    "2024-05-10T04:00:00Z".parse().expect("ts")
}

async fn subscribe(app: &Router, number: &str) -> String {
    let param = json!({
        "company": "sandbox", "number": number, "key": KEY,
        "parameters": {"callbackurl": PUBLIC_CB, "salt": "S"}
    })
    .to_string();
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("schema", "json")
        .append_pair("param", &param)
        .finish();
    let resp = app
        .clone()
        .oneshot(
            Request::post("/poll")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(body))
                .expect("request"),
        )
        .await
        .expect("answer");
    let bytes = to_bytes(resp.into_body(), usize::MAX).await.expect("body");
    let v: Value = serde_json::from_slice(&bytes).expect("json");
    v["returnCode"].as_str().unwrap_or("<none>").to_owned()
}

/// Subscribes `numbers` concurrently (so they share write batches); (number, code) each.
async fn subscribe_all(app: &Router, numbers: Vec<String>) -> Vec<(String, String)> {
    let mut tasks = tokio::task::JoinSet::new();
    for n in numbers {
        let app = app.clone();
        tasks.spawn(async move {
            let code = subscribe(&app, &n).await;
            (n, code)
        });
    }
    let mut out = Vec::new();
    while let Some(r) = tasks.join_next().await {
        out.push(r.expect("task"));
    }
    out
}

/// A check that found `EVENTS` events and queues one push.
fn check(id: SubscriptionId, number: &str) -> CheckOutcome {
    let data = (0..EVENTS)
        .map(|i| TrackEvent {
            time: EventTime::new(t0() + SignedDuration::from_mins(i as i64), CHINA_OFFSET),
            context: format!("{number} 快件在【北京转运中心】完成分拣，准备发往下一站 {i}"),
            location: Some("北京".into()),
            area_code: Some("110000000000".into()),
            area_name: Some("北京市".into()),
            state: State::InTransit,
            raw_code: None,
            rule: None,
        })
        .collect();
    let trace = Trace::from_events("sandbox", number, data);
    CheckOutcome {
        subscription_id: id,
        lease_owner: "w".into(),
        checked_at: t0(),
        status: MonitorStatus::Polling,
        message: String::new(),
        next_check_at: t0() + SignedDuration::from_hours(4),
        new_trace: Some((trace.clone(), format!("hash-{number}"))),
        correction: None,
        error: None,
        pushes: vec![NewPush {
            url: PUBLIC_CB.into(),
            change: Change::new(PushHeader::new(MonitorStatus::Polling, ""), trace),
        }],
        problems: None,
        eta: None,
        lesson: None,
    }
}

/// What one round of writes returned.
#[derive(Default)]
struct Round {
    /// Subscriptions by the returnCode they got.
    subscribed: Vec<(String, String)>,
    /// Checks: (subscription, written).
    checks: Vec<(SubscriptionId, bool)>,
    /// Push verdicts: (push id, written).
    verdicts: Vec<(String, bool)>,
}

/// Subscribes `numbers`, completes a check of each of `to_check` (one transaction each),
/// records `Delivered` for each of `to_deliver` and then for every push that can be
/// claimed, recording what each call answered.
async fn round(
    app: &Router,
    store: &SqliteStore,
    numbers: Vec<String>,
    to_check: &[(SubscriptionId, String)],
    mut to_deliver: Vec<String>,
) -> Round {
    let mut r = Round {
        subscribed: subscribe_all(app, numbers).await,
        ..Round::default()
    };
    for (id, number) in to_check {
        let ok = matches!(
            store
                .complete_checks(&[check(*id, number)])
                .await
                .as_deref(),
            Ok([true])
        );
        r.checks.push((*id, ok));
    }
    to_deliver.extend(claim_pushes(store).await);
    for push_id in to_deliver {
        let result = PushResult {
            push_id: push_id.clone(),
            owner: "w".into(),
            verdict: PushVerdict::Delivered { at: t0() },
        };
        let ok = matches!(store.push_results(&[result]).await.as_deref(), Ok([true]));
        r.verdicts.push((push_id, ok));
    }
    r
}

/// Leases every due push to "w" (none when the claim itself cannot be written).
async fn claim_pushes(store: &SqliteStore) -> Vec<String> {
    let lease = Lease::new("w", t0(), SignedDuration::from_hours(1));
    match store.claim_pushes(t0(), 1000, &lease).await {
        Ok(pushes) => pushes.into_iter().map(|p| p.push_id).collect(),
        Err(_) => Vec::new(),
    }
}

fn numbers(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:06}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_never_acknowledges_a_write_it_did_not_save() {
    let fs = match Tmpfs::mount("2m") {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!("SKIPPED a_full_disk_never_acknowledges_a_write_it_did_not_save: {why}");
            return;
        }
    };
    let data = fs.path().join("data");
    let store = Arc::new(SqliteStore::open_dir(&data).await.expect("open store"));
    store
        .create_tenant(
            &NewTenant {
                name: "shop".into(),
                key: KEY.into(),
                customer: None,
            },
            t0(),
        )
        .await
        .expect("tenant");
    let carriers: Vec<Arc<dyn Carrier>> = vec![Arc::new(Idle)];
    let engine = Engine::with_notifier(
        store.clone(),
        carriers.clone(),
        Arc::new(ManualClock::new(t0())),
        Arc::new(Discard),
        EngineConfig::default(),
    );
    let app = router(Api::new(
        engine,
        ApiConfig::default(),
        Arc::new(Metrics::default()),
    ));

    // Before: 60 waybills, all leased to "w" for the checks to come; the first 10 checked,
    // their pushes leased for the verdicts to come.
    let before = subscribe_all(&app, numbers("SBA", 60)).await;
    assert!(before.iter().all(|(_, c)| c == "200"), "{before:?}");
    let lease = Lease::new("w", t0(), SignedDuration::from_hours(1));
    let claimed: Vec<(SubscriptionId, String)> = store
        .claim_due(t0() + SignedDuration::from_hours(1), 100, &lease)
        .await
        .expect("claim")
        .into_iter()
        .map(|s| (s.id, s.number))
        .collect();
    assert_eq!(claimed.len(), 60);
    for (id, number) in &claimed[..10] {
        store
            .complete_checks(&[check(*id, number)])
            .await
            .expect("check");
    }
    let pushes = claim_pushes(&store).await;
    assert_eq!(pushes.len(), 10);

    let filler = fill(fs.path());
    let full = round(&app, &store, numbers("SBF", 400), &claimed[10..30], pushes).await;
    std::fs::remove_file(&filler).expect("free the disk");
    let retry: Vec<String> = full
        .verdicts
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(id, _)| id.clone())
        .collect();
    let freed = round(&app, &store, numbers("SBR", 50), &claimed[30..40], retry).await;

    // The disk was really full: some writes of each kind were refused.
    let refused = |r: &Round| r.subscribed.iter().filter(|(_, c)| c != "200").count();
    eprintln!(
        "while full: {} of {} subscriptions refused, {} of {} checks, {} of {} verdicts",
        refused(&full),
        full.subscribed.len(),
        full.checks.iter().filter(|(_, ok)| !ok).count(),
        full.checks.len(),
        full.verdicts.iter().filter(|(_, ok)| !ok).count(),
        full.verdicts.len(),
    );
    assert!(refused(&full) > 0, "the full disk refused no subscription");
    assert!(
        full.checks.iter().any(|(_, ok)| !ok),
        "the full disk refused no check"
    );
    assert!(
        full.verdicts.iter().any(|(_, ok)| !ok),
        "the full disk refused no push verdict"
    );
    for (n, c) in full.subscribed.iter().chain(&freed.subscribed) {
        assert!(c == "200" || c == "500", "{n} answered {c}");
    }
    // Writes resumed without a restart.
    assert_eq!(refused(&freed), 0, "after freeing: {:?}", freed.subscribed);
    assert!(freed.checks.iter().all(|(_, ok)| *ok), "{:?}", freed.checks);
    assert!(
        !freed.verdicts.is_empty(),
        "no push to deliver after freeing"
    );
    assert!(
        freed.verdicts.iter().all(|(_, ok)| *ok),
        "{:?}",
        freed.verdicts
    );

    // A restart: what was acknowledged is exactly what is there.
    store.close().await;
    drop(app);
    let store = SqliteStore::open_dir(&data).await.expect("reopen");
    let stored: BTreeSet<String> = store
        .list_subscriptions(&SubscriptionFilter {
            limit: 10_000,
            ..SubscriptionFilter::default()
        })
        .await
        .expect("list")
        .into_iter()
        .map(|s| s.number)
        .collect();
    let acknowledged: BTreeSet<String> = before
        .iter()
        .chain(&full.subscribed)
        .chain(&freed.subscribed)
        .filter(|(_, c)| c == "200")
        .map(|(n, _)| n.clone())
        .collect();
    let lost: Vec<_> = acknowledged.difference(&stored).collect();
    let phantom: Vec<_> = stored.difference(&acknowledged).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged subscriptions lost: {lost:?}",
        lost.len()
    );
    assert!(
        phantom.is_empty(),
        "refused subscriptions stored: {phantom:?}"
    );
    for (id, ok) in full.checks.iter().chain(&freed.checks) {
        let events = store
            .trace(*id)
            .await
            .expect("trace")
            .expect("row")
            .data
            .len();
        assert_eq!(
            events,
            if *ok { EVENTS } else { 0 },
            "check of {id} (written: {ok})"
        );
    }
    // A verdict refused while full was recorded again after freeing: the last one counts.
    let verdicts: BTreeMap<&String, bool> = full
        .verdicts
        .iter()
        .chain(&freed.verdicts)
        .map(|(id, ok)| (id, *ok))
        .collect();
    assert!(verdicts.values().all(|ok| *ok), "{verdicts:?}");
    for (push_id, ok) in verdicts {
        let state = store.push(push_id).await.expect("push").expect("row").state;
        let want = if ok {
            PushState::Delivered
        } else {
            PushState::Pending
        };
        assert_eq!(state, want, "push {push_id} (written: {ok})");
    }
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(
            &sqlx::SqlitePool::connect_with(
                sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(store.path())
                    .read_only(true),
            )
            .await
            .expect("connect"),
        )
        .await
        .expect("integrity_check");
    assert_eq!(check, "ok");
    store.close().await;
}
