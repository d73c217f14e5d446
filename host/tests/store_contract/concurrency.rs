//! Two daemons on one database, racing: the heart of the contract. Each test opens two
//! handles on one [`TestDb`](crate::harness::TestDb) (each with its own connections),
//! starts several tasks on each, and checks what no interleaving may break.
//!
//! A race that hangs is a failure too: every race runs under [`RACE_TIMEOUT`].

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use waybill_host::store::{
    Lease, Retrack, Store, StoreError, SubscribeOutcome, SubscriptionFilter, SubscriptionId,
};

use crate::fixtures::{
    check_all, created, hours, kill_every_push, mins, new_sub, numbers, outcome, subscribe_all, t0,
    tenant,
};
use crate::harness::TestDb;

/// How long a race may take before it counts as hung.
const RACE_TIMEOUT: Duration = Duration::from_secs(120);

/// Rows each race is run over: enough that the tasks meet many times.
const ROWS: usize = 200;

/// Runs every task at once and returns their results in order; panics (naming it) if a
/// task panicked, or if they do not all finish within [`RACE_TIMEOUT`].
async fn race<T: Send + 'static>(
    tasks: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>>,
) -> Vec<T> {
    let handles: Vec<_> = tasks.into_iter().map(tokio::spawn).collect();
    let joined = tokio::time::timeout(RACE_TIMEOUT, async move {
        let mut out = Vec::with_capacity(handles.len());
        for (i, h) in handles.into_iter().enumerate() {
            match h.await {
                Ok(v) => out.push(v),
                Err(e) => panic!("racing task {i} failed: {e}"),
            }
        }
        out
    })
    .await;
    joined.expect("the race did not finish in time (a deadlock?)")
}

/// Boxes a racing task.
fn task<T>(
    f: impl std::future::Future<Output = T> + Send + 'static,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>> {
    Box::pin(f)
}

/// The two handles of a race, each twice: four claimants, two per daemon.
fn claimants(a: &Arc<dyn Store>, b: &Arc<dyn Store>) -> Vec<(Arc<dyn Store>, String)> {
    vec![
        (a.clone(), "a1".to_string()),
        (a.clone(), "a2".to_string()),
        (b.clone(), "b1".to_string()),
        (b.clone(), "b2".to_string()),
    ]
}

async fn two_daemons_claiming_at_once_never_claim_the_same_subscription(db: TestDb) {
    let a = db.handle().await;
    let b = db.handle().await;
    let t = tenant(&*a, "KEY1").await;
    let ids = subscribe_all(&*a, t.id, &numbers(ROWS)).await;
    let all: HashSet<_> = ids.iter().copied().collect();
    // Three rounds: each claims everything due, then checks it, due again next round.
    for round in 0..3 {
        let now = hours(4 * round);
        let tasks = claimants(&a, &b)
            .into_iter()
            .map(|(store, owner)| {
                task(async move {
                    let mut got = Vec::new();
                    loop {
                        let lease = Lease::new(&owner, now, SignedDuration::from_mins(10));
                        let claimed = store.claim_due(now, 7, &lease).await.expect("claim");
                        if claimed.is_empty() {
                            break;
                        }
                        for s in claimed {
                            assert_eq!(s.lease_owner.as_deref(), Some(owner.as_str()));
                            got.push(s.id);
                        }
                    }
                    (store, owner, got)
                })
            })
            .collect();
        let claims = race(tasks).await;
        let mut seen = HashMap::new();
        for (_, owner, got) in &claims {
            for id in got {
                if let Some(first) = seen.insert(*id, owner.clone()) {
                    panic!("round {round}: subscription {id} claimed by {first} and by {owner}");
                }
            }
        }
        assert_eq!(
            seen.keys().copied().collect::<HashSet<_>>(),
            all,
            "round {round}: every due row claimed"
        );
        // Each claimant completes its own, due again next round; all its leases hold.
        let completes = claims
            .into_iter()
            .map(|(store, owner, got)| {
                task(async move {
                    let outcomes: Vec<_> = got
                        .iter()
                        .map(|id| {
                            let mut o = outcome(*id, &owner, 0);
                            o.checked_at = now;
                            o.next_check_at = hours(4 * (round + 1));
                            o
                        })
                        .collect();
                    store.complete_checks(&outcomes).await.expect("complete")
                })
            })
            .collect();
        for written in race(completes).await {
            assert!(
                written.iter().all(|w| *w),
                "round {round}: a held lease was refused"
            );
        }
    }
    let s = a
        .list_subscriptions(&SubscriptionFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("list");
    assert!(s.iter().all(|s| s.checks == 3 && s.lease_owner.is_none()));
}

async fn two_daemons_delivering_at_once_never_send_a_push_twice_nor_two_of_one_waybill(db: TestDb) {
    const WAYBILLS: usize = 50;
    const PER_WAYBILL: usize = 4;
    let a = db.handle().await;
    let b = db.handle().await;
    let t = tenant(&*a, "KEY1").await;
    subscribe_all(&*a, t.id, &numbers(WAYBILLS)).await;
    check_all(&*a, PER_WAYBILL).await;
    let total = WAYBILLS * PER_WAYBILL;

    // Waybills with a push in a worker's hands, and every push sent, in sending order.
    let in_flight: Arc<Mutex<HashSet<SubscriptionId>>> = Arc::default();
    let sent: Arc<Mutex<Vec<(SubscriptionId, i64, String)>>> = Arc::default();
    let tasks = claimants(&a, &b)
        .into_iter()
        .map(|(store, owner)| {
            let (in_flight, sent) = (in_flight.clone(), sent.clone());
            task(async move {
                while sent.lock().expect("lock").len() < total {
                    let lease = Lease::new(&owner, t0(), SignedDuration::from_mins(10));
                    let claimed = store.claim_pushes(t0(), 5, &lease).await.expect("claim");
                    if claimed.is_empty() {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        continue;
                    }
                    for p in &claimed {
                        assert!(
                            in_flight.lock().expect("lock").insert(p.subscription_id),
                            "{owner} got push {} while another push of its waybill is out",
                            p.push_id
                        );
                    }
                    for p in claimed {
                        // Off the in-flight list before the verdict commits: the next push
                        // of the waybill may be claimed the moment it does.
                        in_flight.lock().expect("lock").remove(&p.subscription_id);
                        sent.lock().expect("lock").push((
                            p.subscription_id,
                            p.seq,
                            p.push_id.clone(),
                        ));
                        store
                            .push_delivered(&p.push_id, &owner, t0())
                            .await
                            .expect("delivered");
                    }
                }
            })
        })
        .collect();
    race(tasks).await;

    let sent = sent.lock().expect("lock").clone();
    assert_eq!(sent.len(), total);
    let unique: HashSet<_> = sent.iter().map(|(_, _, id)| id.clone()).collect();
    assert_eq!(unique.len(), total, "a push was handed out twice");
    let mut order: HashMap<SubscriptionId, Vec<i64>> = HashMap::new();
    for (sub, seq, _) in &sent {
        order.entry(*sub).or_default().push(*seq);
    }
    let in_sequence: Vec<i64> = (1..=PER_WAYBILL as i64).collect();
    for (sub, seqs) in order {
        assert_eq!(seqs, in_sequence, "subscription {sub}: pushes out of order");
    }
    let stats = a.stats().await.expect("stats");
    assert_eq!(
        (stats.pending_pushes, stats.delivered_pushes),
        (0, total as u64)
    );
}

async fn a_check_racing_the_takeover_of_its_expired_lease_is_either_written_or_refused_whole(
    db: TestDb,
) {
    let a = db.handle().await;
    let b = db.handle().await;
    let t = tenant(&*a, "KEY1").await;
    let ids = subscribe_all(&*a, t.id, &numbers(ROWS)).await;
    let claimed = a
        .claim_due(t0(), 1000, &Lease::until("a", t0(), mins(1)))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), ROWS);

    // "a" writes its late results one by one while "b", whose lease clock is past a's
    // leases, takes the rows over.
    let finisher = {
        let (a, ids) = (a.clone(), ids.clone());
        task(async move {
            let (mut written, mut refused) = (HashSet::new(), HashSet::new());
            for id in ids {
                let mut o = outcome(id, "a", 1);
                o.new_trace = Some((crate::fixtures::trace_of(2), "hash".into()));
                match a.complete_check(&o).await {
                    Ok(()) => written.insert(id),
                    Err(StoreError::LeaseLost { .. }) => refused.insert(id),
                    Err(e) => panic!("complete {id}: {e}"),
                };
            }
            (written, refused)
        })
    };
    let taker = {
        let b = b.clone();
        task(async move {
            let mut taken = HashSet::new();
            loop {
                let lease = Lease::until("b", mins(2), mins(30));
                let got = b.claim_due(t0(), 5, &lease).await.expect("claim");
                if got.is_empty() {
                    break;
                }
                taken.extend(got.iter().map(|s| s.id));
            }
            (taken, HashSet::new())
        })
    };
    let mut results = race(vec![finisher, taker]).await;
    let (taken, _) = results.pop().expect("taker");
    let (written, refused) = results.pop().expect("finisher");
    assert!(
        written.is_disjoint(&taken),
        "a row was both written by a and taken over by b"
    );
    assert_eq!(refused, taken, "a is refused exactly where b took over");
    assert_eq!(written.len() + taken.len(), ROWS);
    for id in &taken {
        let s = b.subscription(*id).await.expect("read").expect("exists");
        assert_eq!(
            (s.lease_owner.as_deref(), s.checks, s.event_count),
            (Some("b"), 0, 0),
            "{id}"
        );
        assert!(
            b.pushes_of(*id).await.expect("pushes").is_empty(),
            "{id}: a's push was queued"
        );
    }
    for id in &written {
        let s = b.subscription(*id).await.expect("read").expect("exists");
        assert_eq!(
            (s.lease_owner, s.checks, s.event_count, s.push_seq),
            (None, 1, 2, 1),
            "{id}"
        );
    }
    let taken: Vec<_> = taken.into_iter().collect();
    let outcomes: Vec<_> = taken.iter().map(|id| outcome(*id, "b", 0)).collect();
    assert!(b
        .complete_checks(&outcomes)
        .await
        .expect("complete")
        .iter()
        .all(|w| *w));
}

async fn racing_subscribes_of_one_waybill_create_it_once(db: TestDb) {
    const WAYBILLS: usize = 20;
    let a = db.handle().await;
    let b = db.handle().await;
    let t = tenant(&*a, "KEY1").await;
    let numbers = numbers(WAYBILLS);
    // Eight subscribers, four per daemon: half send every waybill in one batch (each
    // in another order), half one at a time.
    let tasks = (0..8)
        .map(|i| {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            let mut order = numbers.clone();
            order.rotate_left(i * 3 % WAYBILLS);
            task(async move {
                let subs: Vec<_> = order.iter().map(|n| new_sub(t.id, n)).collect();
                let outcomes = if i < 4 {
                    store.subscribe_many(&subs, 4).await.expect("subscribe")
                } else {
                    let mut out = Vec::new();
                    for s in &subs {
                        out.push(store.subscribe(s).await.expect("subscribe"));
                    }
                    out
                };
                order.into_iter().zip(outcomes).collect::<Vec<_>>()
            })
        })
        .collect();
    let mut by_number: HashMap<String, Vec<SubscribeOutcome>> = HashMap::new();
    for outcomes in race(tasks).await {
        for (number, o) in outcomes {
            by_number.entry(number).or_default().push(o);
        }
    }
    for (number, outcomes) in by_number {
        let made: Vec<_> = outcomes
            .iter()
            .filter_map(|o| match o {
                SubscribeOutcome::Created {
                    id,
                    month_subscribes,
                } => Some((*id, *month_subscribes)),
                _ => None,
            })
            .collect();
        assert_eq!(made.len(), 1, "{number}: {outcomes:?}");
        let (id, month_subscribes) = made[0];
        assert_eq!(month_subscribes, 1, "{number}");
        let duplicates = outcomes
            .iter()
            .filter(|o| **o == SubscribeOutcome::Duplicate { existing: id })
            .count();
        assert_eq!(duplicates, 7, "{number}: {outcomes:?}");
        let rows = a
            .list_subscriptions(&SubscriptionFilter {
                number: Some(number.clone()),
                ..Default::default()
            })
            .await
            .expect("list");
        assert_eq!(rows.len(), 1, "{number}");
    }
    assert_eq!(
        a.usage(t.id, "2024-05").await.expect("usage"),
        WAYBILLS as u64
    );
}

async fn racing_subscribe_and_end_cycles_never_pass_the_monthly_limit(db: TestDb) {
    const WAYBILLS: usize = 5;
    const LIMIT: u32 = 4;
    let a = db.handle().await;
    let b = db.handle().await;
    let t = tenant(&*a, "KEY1").await;
    let numbers = numbers(WAYBILLS);
    let tasks = claimants(&a, &b)
        .into_iter()
        .map(|(store, _)| {
            let numbers = numbers.clone();
            task(async move {
                let mut made = Vec::new();
                for _ in 0..4 {
                    for n in &numbers {
                        let out = store
                            .subscribe_many(&[new_sub(t.id, n)], LIMIT)
                            .await
                            .expect("subscribe");
                        if let SubscribeOutcome::Created {
                            id,
                            month_subscribes,
                        } = out[0]
                        {
                            made.push((n.clone(), month_subscribes));
                            assert!(store.cancel(id, "ended", t0()).await.expect("cancel"));
                        }
                    }
                }
                made
            })
        })
        .collect();
    let mut counts: HashMap<String, Vec<u32>> = HashMap::new();
    for made in race(tasks).await {
        for (n, month_subscribes) in made {
            counts.entry(n).or_default().push(month_subscribes);
        }
    }
    for n in &numbers {
        let mut seen = counts.remove(n).unwrap_or_default();
        seen.sort();
        let expected: Vec<u32> = (1..=seen.len() as u32).collect();
        assert!(
            seen.len() as u32 <= LIMIT,
            "{n}: {} subscribes in one month",
            seen.len()
        );
        assert_eq!(seen, expected, "{n}: each subscribe counted once, in turn");
        // Fill the month up by hand: it must stop at exactly the limit.
        let mut total = seen.len() as u32;
        loop {
            match crate::fixtures::subscribe_and_end(&*a, t.id, n, t0(), LIMIT).await {
                SubscribeOutcome::Created { .. } => total += 1,
                SubscribeOutcome::MonthlyLimit { subscribes, limit } => {
                    assert_eq!((subscribes, limit), (LIMIT, LIMIT), "{n}");
                    break;
                }
                other => panic!("{n}: {other:?}"),
            }
            assert!(total <= LIMIT, "{n}: past the limit");
        }
        let rows = a
            .list_subscriptions(&SubscriptionFilter {
                number: Some(n.clone()),
                ..Default::default()
            })
            .await
            .expect("list");
        assert_eq!(rows.len() as u32, LIMIT, "{n}");
    }
}

/// Re-drives the dead pushes from four claimants at once, three times each, naming
/// `push_ids` (or, empty, all dead); the sums of (re-driven, superseded).
async fn race_redeliver(
    a: &Arc<dyn Store>,
    b: &Arc<dyn Store>,
    push_ids: Vec<String>,
    now: Timestamp,
) -> (u64, u64) {
    let tasks = claimants(a, b)
        .into_iter()
        .map(|(store, _)| {
            let push_ids = push_ids.clone();
            task(async move {
                let mut sum = (0, 0);
                for _ in 0..3 {
                    let (r, s) = store
                        .redeliver(&push_ids, None, now)
                        .await
                        .expect("redeliver");
                    sum = (sum.0 + r, sum.1 + s);
                }
                sum
            })
        })
        .collect();
    race(tasks)
        .await
        .into_iter()
        .fold((0, 0), |acc, (r, s)| (acc.0 + r, acc.1 + s))
}

async fn racing_redelivers_redrive_each_dead_push_once(db: TestDb) {
    const WAYBILLS: usize = 40;
    let a = db.handle().await;
    let b = db.handle().await;
    let t = tenant(&*a, "KEY1").await;
    subscribe_all(&*a, t.id, &numbers(WAYBILLS)).await;
    check_all(&*a, 1).await;
    assert_eq!(kill_every_push(&*a, t0()).await, WAYBILLS);

    // Every dead push, from both daemons at once.
    assert_eq!(
        race_redeliver(&a, &b, Vec::new(), mins(1)).await,
        (WAYBILLS as u64, 0)
    );
    let stats = a.stats().await.expect("stats");
    assert_eq!(
        (stats.pending_pushes, stats.dead_pushes),
        (WAYBILLS as u64, 0)
    );

    // The same pushes by name, dead again.
    assert_eq!(kill_every_push(&*a, mins(1)).await, WAYBILLS);
    let named: Vec<_> = a
        .dead_letters(1000)
        .await
        .expect("dead")
        .into_iter()
        .map(|p| p.push_id)
        .collect();
    assert_eq!(named.len(), WAYBILLS);
    assert_eq!(
        race_redeliver(&a, &b, named, mins(2)).await,
        (WAYBILLS as u64, 0)
    );
    let stats = b.stats().await.expect("stats");
    assert_eq!(
        (stats.pending_pushes, stats.dead_pushes),
        (WAYBILLS as u64, 0)
    );
    assert_eq!(
        a.waiting_pushes(mins(2), mins(2), 1000)
            .await
            .expect("count"),
        WAYBILLS as u64
    );
}

async fn racing_retracks_of_one_waybill_resume_one_subscription(db: TestDb) {
    const WAYBILLS: usize = 30;
    let a = db.handle().await;
    let b = db.handle().await;
    let t = tenant(&*a, "KEY1").await;
    // Two ended subscriptions of each waybill.
    let mut pairs = Vec::new();
    for n in numbers(WAYBILLS) {
        let first = created(crate::fixtures::subscribe_and_end(&*a, t.id, &n, t0(), 0).await);
        let second = created(crate::fixtures::subscribe_and_end(&*a, t.id, &n, t0(), 0).await);
        pairs.push((first, second));
    }
    let retracker = |store: Arc<dyn Store>, ids: Vec<SubscriptionId>| {
        task(async move {
            let mut out = Vec::new();
            for id in ids {
                out.push(
                    store
                        .retrack(id, mins(1))
                        .await
                        .unwrap_or_else(|e| panic!("retrack {id}: {e}")),
                );
            }
            out
        })
    };
    let firsts = pairs.iter().map(|p| p.0).collect();
    let seconds = pairs.iter().map(|p| p.1).collect();
    let mut results = race(vec![
        retracker(a.clone(), firsts),
        retracker(b.clone(), seconds),
    ])
    .await;
    let of_b = results.pop().expect("b");
    let of_a = results.pop().expect("a");
    for (((first, second), ra), rb) in pairs.iter().zip(of_a).zip(of_b) {
        match (ra, rb) {
            (Retrack::Resumed, Retrack::Busy(other)) => assert_eq!(other, *first),
            (Retrack::Busy(other), Retrack::Resumed) => assert_eq!(other, *second),
            other => panic!("{first}/{second}: {other:?}"),
        }
    }
    assert_eq!(a.stats().await.expect("stats").polling, WAYBILLS as u64);
}

/// Lessons learned by both daemons at once all count: merging into the stored lanes
/// must not lose an update to a concurrent one.
async fn lessons_learned_at_once_by_two_daemons_all_add_up(db: TestDb) {
    const PER_CLAIMANT: usize = 25;
    let a = db.handle().await;
    let b = db.handle().await;
    let t = tenant(&*a, "KEY1").await;
    subscribe_all(&*a, t.id, &numbers(4 * PER_CLAIMANT)).await;
    let tasks = claimants(&a, &b)
        .into_iter()
        .map(|(store, owner)| {
            task(async move {
                let lease = Lease::new(&owner, t0(), SignedDuration::from_mins(10));
                let mut learned = 0;
                loop {
                    let claimed = store.claim_due(t0(), 5, &lease).await.expect("claim");
                    if claimed.is_empty() {
                        return learned;
                    }
                    // One check at a time, so the claimants' merges interleave.
                    for s in claimed {
                        let mut o = outcome(s.id, &owner, 0);
                        o.status = waybill_host::store::MonitorStatus::Shutdown;
                        o.lesson = Some(("sandbox".into(), crate::scheduling::lesson(30)));
                        store.complete_check(&o).await.expect("complete");
                        learned += 1;
                    }
                }
            })
        })
        .collect();
    let learned: u64 = race(tasks).await.into_iter().sum();
    assert_eq!(learned, (4 * PER_CLAIMANT) as u64);
    let lanes = a.lanes().await.expect("lanes");
    assert_eq!(lanes.len(), 2, "the lane and the carrier");
    for (carrier, scope, stats) in lanes {
        assert_eq!(
            stats.deliveries,
            (4 * PER_CLAIMANT) as u64,
            "{carrier} {scope:?}: an update was lost"
        );
    }
}

/// Real-time queries of the same waybills counted by both daemons at once: each waybill
/// once, and no write refused for meeting the other's.
async fn usage_recorded_at_once_by_two_daemons_counts_each_waybill_once(db: TestDb) {
    const WAYBILLS: usize = 30;
    let a = db.handle().await;
    let b = db.handle().await;
    let t = tenant(&*a, "KEY1").await;
    let tasks = claimants(&a, &b)
        .into_iter()
        .map(|(store, _)| {
            task(async move {
                for n in numbers(WAYBILLS) {
                    store
                        .record_usage(t.id, "sandbox", &n, t0())
                        .await
                        .expect("record usage");
                }
            })
        })
        .collect();
    race(tasks).await;
    assert_eq!(
        b.usage(t.id, "2024-05").await.expect("usage"),
        WAYBILLS as u64
    );
}

contract! {
    lessons_learned_at_once_by_two_daemons_all_add_up,
    usage_recorded_at_once_by_two_daemons_counts_each_waybill_once,
    two_daemons_claiming_at_once_never_claim_the_same_subscription,
    two_daemons_delivering_at_once_never_send_a_push_twice_nor_two_of_one_waybill,
    a_check_racing_the_takeover_of_its_expired_lease_is_either_written_or_refused_whole,
    racing_subscribes_of_one_waybill_create_it_once,
    racing_subscribe_and_end_cycles_never_pass_the_monthly_limit,
    racing_redelivers_redrive_each_dead_push_once,
    racing_retracks_of_one_waybill_resume_one_subscription,
}
