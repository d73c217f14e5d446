//! The push outbox: a waybill's pushes go out one at a time and in order, verdicts are
//! written only by the claimant, failing receivers are switched off, dead pushes are
//! re-driven without taking a receiver backwards.

use jiff::SignedDuration;
use waybill_host::store::{
    EndpointRoom, Lease, NewSubscription, PushResult, PushState, PushVerdict, StoreError,
};

use crate::fixtures::{
    check_all, claim_pushes, hours, kill_every_push, mins, new_sub, numbers, outcome,
    subscribe_all, t0, tenant, waybill_with_pushes,
};
use crate::harness::TestDb;

async fn only_the_oldest_pending_push_of_a_waybill_is_handed_out(db: TestDb) {
    let store = db.handle().await;
    waybill_with_pushes(&*store, "KEY1", "SB1", 3).await;

    let first = claim_pushes(&*store, t0(), 10, "w").await;
    assert_eq!(first.iter().map(|p| p.seq).collect::<Vec<_>>(), vec![1]);
    // While seq 1 is in flight nothing else of this waybill goes out.
    assert!(claim_pushes(&*store, t0(), 10, "w").await.is_empty());
    // A retry later keeps it at the head: seq 2 must wait for it.
    let retry_at = mins(30);
    store
        .push_retry(&first[0].push_id, "w", "HTTP 500", t0(), retry_at)
        .await
        .expect("retry");
    assert!(claim_pushes(&*store, mins(29), 10, "w").await.is_empty());
    let again = claim_pushes(&*store, retry_at, 10, "w").await;
    assert_eq!(
        again.iter().map(|p| (p.seq, p.attempt)).collect::<Vec<_>>(),
        vec![(1, 1)]
    );
    store
        .push_delivered(&again[0].push_id, "w", retry_at)
        .await
        .expect("delivered");
    let next = claim_pushes(&*store, retry_at, 10, "w").await;
    assert_eq!(next.iter().map(|p| p.seq).collect::<Vec<_>>(), vec![2]);
    // A dead head does not block the queue behind it.
    store
        .push_dead(&next[0].push_id, "w", "gave up", retry_at)
        .await
        .expect("dead");
    let last = claim_pushes(&*store, retry_at, 10, "w").await;
    assert_eq!(last.iter().map(|p| p.seq).collect::<Vec<_>>(), vec![3]);
}

async fn pushes_are_claimed_oldest_due_first_across_waybills_up_to_the_limit(db: TestDb) {
    let store = db.handle().await;
    let t = tenant(&*store, "KEY1").await;
    let ids = subscribe_all(&*store, t.id, &numbers(3)).await;
    store
        .claim_due(t0(), 10, &crate::fixtures::lease("a"))
        .await
        .expect("claim");
    // Queued (and so due) at 2, 0 and 1 minutes past t0.
    for (id, at) in ids.iter().zip([mins(2), t0(), mins(1)]) {
        let mut o = outcome(*id, "a", 1);
        o.checked_at = at;
        store.complete_check(&o).await.expect("complete");
    }
    assert_eq!(store.next_push_due().await.expect("next"), Some(t0()));
    let early = claim_pushes(&*store, mins(1), 10, "w").await;
    assert_eq!(
        early.iter().map(|p| p.subscription_id).collect::<Vec<_>>(),
        vec![ids[1], ids[2]],
        "only those due, oldest first"
    );
    assert!(early.iter().all(|p| p.next_attempt_at <= mins(1)));
    assert_eq!(
        store.next_push_due().await.expect("next"),
        Some(t0()),
        "claimed pushes are still pending"
    );
    // Later on the engine's clock, with the first claim's leases still held.
    let rest = store
        .claim_pushes(hours(1), 1, &Lease::until("w", mins(1), hours(2)))
        .await
        .expect("claim");
    assert_eq!(
        rest.iter().map(|p| p.subscription_id).collect::<Vec<_>>(),
        vec![ids[0]]
    );
}

async fn a_claimed_push_is_reclaimable_only_once_its_lease_expires(db: TestDb) {
    let store = db.handle().await;
    waybill_with_pushes(&*store, "KEY1", "SB1", 1).await;
    let a = store
        .claim_pushes(t0(), 10, &Lease::until("a", t0(), mins(1)))
        .await
        .expect("claim");
    assert_eq!(a.len(), 1);
    assert!(
        store
            .claim_pushes(
                hours(5),
                10,
                &Lease::until("b", mins(1) - SignedDuration::from_secs(1), mins(5))
            )
            .await
            .expect("claim")
            .is_empty(),
        "the lease runs on the lease clock"
    );
    let b = store
        .claim_pushes(t0(), 10, &Lease::until("b", mins(2), mins(5)))
        .await
        .expect("claim");
    assert_eq!(
        b.iter().map(|p| &p.push_id).collect::<Vec<_>>(),
        vec![&a[0].push_id]
    );
    let err = store
        .push_delivered(&a[0].push_id, "a", mins(2))
        .await
        .expect_err("lease lost");
    assert!(
        matches!(&err, StoreError::LeaseLost { what: "push", .. }),
        "{err}"
    );
    store
        .push_delivered(&b[0].push_id, "b", mins(2))
        .await
        .expect("delivered");
    assert_eq!(
        store
            .push(&a[0].push_id)
            .await
            .expect("push")
            .expect("exists")
            .state,
        PushState::Delivered
    );
}

async fn a_shared_claim_gives_each_endpoint_at_most_its_room(db: TestDb) {
    let store = db.handle().await;
    let t = tenant(&*store, "KEY1").await;
    let subs: Vec<_> = ["X1", "X2", "X3", "Y1", "Y2"]
        .iter()
        .map(|n| NewSubscription {
            callback_url: format!("http://{}.example/cb?n={n}", &n[..1].to_lowercase()),
            ..new_sub(t.id, n)
        })
        .collect();
    store.subscribe_many(&subs, 0).await.expect("subscribe");
    check_all(&*store, 1).await;
    let claim = |owner: &'static str, room: EndpointRoom| {
        let store = store.clone();
        async move {
            let mut got: Vec<String> = store
                .claim_pushes_shared(t0(), 10, &Lease::until(owner, t0(), mins(1)), &room)
                .await
                .expect("claim")
                .into_iter()
                .map(|p| p.endpoint)
                .collect();
            got.sort();
            got
        }
    };
    // x.example already has its share in flight: only y.example's go.
    let full_x = EndpointRoom {
        busy: vec![("http://x.example".into(), 0)],
        others: 5,
    };
    assert_eq!(
        claim("a", full_x).await,
        ["http://y.example", "http://y.example"]
    );
    // One more for x.example, none for the others.
    let one_x = EndpointRoom {
        busy: vec![("http://x.example".into(), 1)],
        others: 0,
    };
    assert_eq!(claim("b", one_x).await, ["http://x.example"]);
    // Every endpoint one at most.
    let one_each = EndpointRoom {
        busy: Vec::new(),
        others: 1,
    };
    assert_eq!(claim("c", one_each).await, ["http://x.example"]);
    let last: Vec<_> = claim_pushes(&*store, t0(), 10, "d")
        .await
        .into_iter()
        .map(|p| p.endpoint)
        .collect();
    assert_eq!(last, ["http://x.example"]);
    assert!(
        claim_pushes(&*store, t0(), 10, "e").await.is_empty(),
        "every push was handed out once"
    );
}

async fn verdicts_are_written_only_for_the_claimant_of_a_pending_push(db: TestDb) {
    let store = db.handle().await;
    let t = tenant(&*store, "KEY1").await;
    let ids = subscribe_all(&*store, t.id, &numbers(3)).await;
    check_all(&*store, 1).await;
    let claimed = claim_pushes(&*store, t0(), 10, "w").await;
    assert_eq!(claimed.len(), 3);
    let push_of = |id| {
        claimed
            .iter()
            .find(|p| p.subscription_id == id)
            .expect("claimed")
            .push_id
            .clone()
    };
    let (ok, retry, dead) = (push_of(ids[0]), push_of(ids[1]), push_of(ids[2]));
    let results = [
        PushResult {
            push_id: ok.clone(),
            owner: "w".into(),
            verdict: PushVerdict::Delivered { at: mins(1) },
        },
        PushResult {
            push_id: retry.clone(),
            owner: "w".into(),
            verdict: PushVerdict::Retry {
                error: "HTTP 500".into(),
                at: mins(1),
                next_attempt_at: mins(10),
            },
        },
        PushResult {
            push_id: dead.clone(),
            owner: "intruder".into(),
            verdict: PushVerdict::Delivered { at: mins(1) },
        },
        PushResult {
            push_id: "no-such-push".into(),
            owner: "w".into(),
            verdict: PushVerdict::Delivered { at: mins(1) },
        },
    ];
    assert_eq!(
        store.push_results(&results).await.expect("results"),
        vec![true, true, false, false]
    );
    let read = |id: String| {
        let store = store.clone();
        async move { store.push(&id).await.expect("push").expect("exists") }
    };
    let p = read(ok.clone()).await;
    assert_eq!(
        (p.state, p.attempt, p.finished_at, p.last_error),
        (PushState::Delivered, 1, Some(mins(1)), None)
    );
    let p = read(retry.clone()).await;
    assert_eq!(
        (p.state, p.attempt, p.next_attempt_at),
        (PushState::Pending, 1, mins(10))
    );
    assert_eq!(
        (p.last_error.as_deref(), p.finished_at),
        (Some("HTTP 500"), None)
    );
    let p = read(dead.clone()).await;
    assert_eq!(
        (p.state, p.attempt),
        (PushState::Pending, 0),
        "another owner's verdict is not written"
    );

    // A verdict on a push that is finished, or no longer held, is refused.
    assert!(store.push_delivered(&ok, "w", mins(2)).await.is_err());
    assert!(
        store.push_delivered(&retry, "w", mins(2)).await.is_err(),
        "released by the retry"
    );
    store
        .push_dead(&dead, "w", "HTTP 410", mins(3))
        .await
        .expect("dead");
    let p = read(dead.clone()).await;
    assert_eq!(
        (p.state, p.attempt, p.finished_at),
        (PushState::Dead, 1, Some(mins(3)))
    );
    assert_eq!(p.last_error.as_deref(), Some("HTTP 410"));
    assert_eq!(
        store
            .dead_letters(0)
            .await
            .expect("dead")
            .iter()
            .map(|p| &p.push_id)
            .collect::<Vec<_>>(),
        vec![&dead]
    );
    let stats = store.stats().await.expect("stats");
    assert_eq!(
        (
            stats.pending_pushes,
            stats.delivered_pushes,
            stats.dead_pushes
        ),
        (1, 1, 1)
    );
}

async fn dead_letters_are_listed_oldest_first_up_to_the_limit(db: TestDb) {
    let store = db.handle().await;
    let t = tenant(&*store, "KEY1").await;
    subscribe_all(&*store, t.id, &numbers(3)).await;
    check_all(&*store, 1).await;
    let claimed = claim_pushes(&*store, t0(), 10, "w").await;
    // Given up in the order they were queued, a minute apart: oldest is oldest
    // whether it is counted from queueing or from giving up.
    for (p, at) in claimed.iter().zip([mins(1), mins(2), mins(3)]) {
        store
            .push_dead(&p.push_id, "w", "gave up", at)
            .await
            .expect("dead");
    }
    let dead = store.dead_letters(2).await.expect("dead");
    assert_eq!(
        dead.iter().map(|p| &p.push_id).collect::<Vec<_>>(),
        vec![&claimed[0].push_id, &claimed[1].push_id]
    );
    assert_eq!(
        store.dead_letters(0).await.expect("dead").len(),
        3,
        "0 is the default, not none"
    );
}

async fn a_gone_verdict_disables_the_url_for_the_tenant_until_enabled_again(db: TestDb) {
    let store = db.handle().await;
    waybill_with_pushes(&*store, "KEY1", "SB1", 2).await;
    let other = waybill_with_pushes(&*store, "KEY2", "SB1", 1).await;
    let other_tenant = store
        .subscription(other)
        .await
        .expect("read")
        .expect("exists")
        .tenant_id;
    let claimed = claim_pushes(&*store, t0(), 10, "w").await;
    let mine = claimed
        .iter()
        .find(|p| p.subscription_id != other)
        .expect("claimed");
    let tenant_id = store
        .subscription(mine.subscription_id)
        .await
        .expect("read")
        .expect("exists")
        .tenant_id;
    assert!(store
        .disabled_endpoints(None)
        .await
        .expect("disabled")
        .is_empty());

    store
        .push_result(
            &mine.push_id,
            "w",
            PushVerdict::Gone {
                error: "HTTP 410 Gone".into(),
                at: mins(1),
            },
        )
        .await
        .expect("gone");
    assert_eq!(
        store
            .push(&mine.push_id)
            .await
            .expect("push")
            .expect("exists")
            .state,
        PushState::Dead
    );
    let off = store
        .disabled_endpoints(Some(tenant_id))
        .await
        .expect("disabled");
    assert_eq!(off.len(), 1);
    assert_eq!(
        (
            off[0].tenant_id,
            off[0].url.as_str(),
            off[0].reason.as_str(),
            off[0].disabled_at
        ),
        (tenant_id, "http://example.com/cb", "HTTP 410 Gone", mins(1))
    );
    assert!(
        store
            .disabled_endpoints(Some(other_tenant))
            .await
            .expect("disabled")
            .is_empty(),
        "per tenant"
    );
    assert_eq!(store.disabled_endpoints(None).await.expect("disabled"), off);
    // Another daemon sees it off too.
    assert_eq!(
        db.handle()
            .await
            .disabled_endpoints(None)
            .await
            .expect("disabled"),
        off
    );

    assert!(!store
        .enable_endpoint(other_tenant, "http://example.com/cb")
        .await
        .expect("enable"));
    assert!(store
        .enable_endpoint(tenant_id, "http://example.com/cb")
        .await
        .expect("enable"));
    assert!(
        !store
            .enable_endpoint(tenant_id, "http://example.com/cb")
            .await
            .expect("enable"),
        "once"
    );
    assert!(store
        .disabled_endpoints(None)
        .await
        .expect("disabled")
        .is_empty());
}

async fn urls_failing_since_before_the_cutoff_with_no_delivery_are_disabled(db: TestDb) {
    let store = db.handle().await;
    let t = tenant(&*store, "KEY1").await;
    let subs: Vec<_> = ["A", "B", "C"]
        .iter()
        .map(|n| NewSubscription {
            callback_url: format!("http://{n}.example/cb"),
            ..new_sub(t.id, n)
        })
        .collect();
    store.subscribe_many(&subs, 0).await.expect("subscribe");
    check_all(&*store, 2).await;
    let claimed = claim_pushes(&*store, t0(), 10, "w").await;
    let by_url = |host: &str| {
        claimed
            .iter()
            .find(|p| p.url.contains(host))
            .expect("claimed")
            .push_id
            .clone()
    };
    // A fails and stays failing; B fails, then gets one through; C fails later.
    store
        .push_retry(&by_url("//A."), "w", "HTTP 503", t0(), mins(1))
        .await
        .expect("retry");
    store
        .push_retry(&by_url("//B."), "w", "HTTP 503", t0(), mins(1))
        .await
        .expect("retry");
    store
        .push_dead(&by_url("//C."), "w", "HTTP 500", hours(3))
        .await
        .expect("dead");
    let again = claim_pushes(&*store, mins(1), 10, "w").await;
    let b = again
        .iter()
        .find(|p| p.url.contains("//B."))
        .expect("claimed");
    store
        .push_delivered(&b.push_id, "w", mins(1))
        .await
        .expect("delivered");

    assert!(store
        .disable_failing_endpoints(t0() - SignedDuration::from_hours(1), hours(2))
        .await
        .expect("disable")
        .is_empty());
    let off = store
        .disable_failing_endpoints(hours(1), hours(2))
        .await
        .expect("disable");
    assert_eq!(off.len(), 1, "{off:?}");
    assert_eq!(
        (off[0].tenant_id, off[0].url.as_str(), off[0].disabled_at),
        (t.id, "http://A.example/cb", hours(2))
    );
    assert!(!off[0].reason.is_empty());
    assert_eq!(
        store
            .disabled_endpoints(Some(t.id))
            .await
            .expect("disabled"),
        off
    );
    assert!(
        store
            .disable_failing_endpoints(hours(1), hours(3))
            .await
            .expect("disable")
            .is_empty(),
        "once"
    );
    // Enabled again, it starts with a clean slate.
    assert!(store
        .enable_endpoint(t.id, "http://A.example/cb")
        .await
        .expect("enable"));
    assert!(store
        .disable_failing_endpoints(hours(1), hours(4))
        .await
        .expect("disable")
        .is_empty());
    // C has been failing since 3 h.
    let off = store
        .disable_failing_endpoints(hours(4), hours(4))
        .await
        .expect("disable");
    assert_eq!(
        off.iter().map(|d| d.url.as_str()).collect::<Vec<_>>(),
        ["http://C.example/cb"]
    );
}

async fn waiting_pushes_counts_only_the_pushes_that_could_be_sent_now(db: TestDb) {
    let s = db.handle().await;
    let t = tenant(&*s, "KEY1").await;
    let ids = subscribe_all(&*s, t.id, &numbers(3)).await;
    s.claim_due(t0(), 10, &crate::fixtures::lease("w"))
        .await
        .expect("claim");
    s.complete_checks(&[
        outcome(ids[0], "w", 3),
        outcome(ids[1], "w", 2),
        outcome(ids[2], "w", 1),
    ])
    .await
    .expect("complete");
    // Six pending, but only the head of each waybill could go out now.
    assert_eq!(s.waiting_pushes(t0(), t0(), 100).await.expect("count"), 3);
    assert_eq!(
        s.waiting_pushes(t0(), t0(), 2).await.expect("count"),
        2,
        "capped"
    );
    // Not yet due a minute earlier.
    let before = t0() - SignedDuration::from_mins(1);
    assert_eq!(
        s.waiting_pushes(before, before, 100).await.expect("count"),
        0
    );
    // A claimed push is in a worker's hands, not waiting; nor is the push queued
    // behind it.
    let claimed = s
        .claim_pushes(t0(), 1, &Lease::until("d", t0(), mins(1)))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    assert_eq!(s.waiting_pushes(t0(), t0(), 100).await.expect("count"), 2);
    // Once its lease has run out on the lease clock it is waiting again.
    assert_eq!(
        s.waiting_pushes(t0(), mins(2), 100).await.expect("count"),
        3
    );
    // A failed head waiting for its retry holds back its waybill's queue: none of it
    // counts until the retry is due.
    let retry_at = mins(30);
    s.push_retry(&claimed[0].push_id, "d", "HTTP 500", t0(), retry_at)
        .await
        .expect("retry");
    assert_eq!(s.waiting_pushes(t0(), t0(), 100).await.expect("count"), 2);
    assert_eq!(
        s.waiting_pushes(retry_at, t0(), 100).await.expect("count"),
        3
    );
}

async fn next_push_due_is_the_earliest_attempt_of_a_pending_push(db: TestDb) {
    let store = db.handle().await;
    assert_eq!(store.next_push_due().await.expect("next"), None);
    waybill_with_pushes(&*store, "KEY1", "SB1", 1).await;
    assert_eq!(store.next_push_due().await.expect("next"), Some(t0()));
    let p = claim_pushes(&*store, t0(), 10, "w").await;
    store
        .push_retry(&p[0].push_id, "w", "HTTP 500", t0(), mins(20))
        .await
        .expect("retry");
    assert_eq!(store.next_push_due().await.expect("next"), Some(mins(20)));
    let p = claim_pushes(&*store, mins(20), 10, "w").await;
    store
        .push_delivered(&p[0].push_id, "w", mins(20))
        .await
        .expect("delivered");
    assert_eq!(
        store.next_push_due().await.expect("next"),
        None,
        "nothing pending"
    );
}

async fn redeliver_redrives_the_newest_dead_push_and_supersedes_older_ones(db: TestDb) {
    let store = db.handle().await;
    let id = waybill_with_pushes(&*store, "KEY1", "SB1", 2).await;
    assert_eq!(kill_every_push(&*store, t0()).await, 2);
    assert_eq!(store.dead_letters(0).await.expect("dead").len(), 2);
    // Made before the range asked for: left dead.
    let later = Some(t0() + SignedDuration::from_secs(1));
    assert_eq!(
        store.redeliver(&[], later, t0()).await.expect("redeliver"),
        (0, 0)
    );
    // Both dead: re-driving all re-sends both in order (nothing newer was delivered).
    assert_eq!(
        store
            .redeliver(&[], Some(t0()), mins(5))
            .await
            .expect("redeliver"),
        (2, 0)
    );
    let pushes = store.pushes_of(id).await.expect("pushes");
    for p in &pushes {
        assert_eq!(
            (p.state, p.attempt, p.next_attempt_at, p.finished_at),
            (PushState::Pending, 0, mins(5), None)
        );
    }
    assert!(
        claim_pushes(&*store, mins(4), 10, "w").await.is_empty(),
        "due from now on"
    );
    let p = claim_pushes(&*store, mins(5), 10, "w").await;
    assert_eq!(p[0].seq, 1);
    store
        .push_dead(&p[0].push_id, "w", "again", mins(5))
        .await
        .expect("dead");
    let p = claim_pushes(&*store, mins(5), 10, "w").await;
    assert_eq!(p[0].seq, 2);
    store
        .push_delivered(&p[0].push_id, "w", mins(5))
        .await
        .expect("ok");
    // seq 1 is dead but seq 2 reached the receiver: re-sending 1 would go backwards.
    assert_eq!(
        store
            .redeliver(&[], None, mins(6))
            .await
            .expect("redeliver"),
        (0, 1)
    );
    assert_eq!(
        store
            .push(&pushes[0].push_id)
            .await
            .expect("push")
            .map(|p| p.state),
        Some(PushState::Superseded)
    );
    let stats = store.stats().await.expect("stats");
    assert_eq!(
        (
            stats.pending_pushes,
            stats.delivered_pushes,
            stats.dead_pushes
        ),
        (0, 1, 0)
    );
    assert!(store.dead_letters(0).await.expect("dead").is_empty());
    // A superseded push is never re-driven, not even by name.
    assert_eq!(
        store
            .redeliver(&[pushes[0].push_id.clone()], None, mins(7))
            .await
            .expect("redeliver"),
        (0, 0)
    );
}

async fn redeliver_by_name_redrives_only_the_named_dead_pushes(db: TestDb) {
    let store = db.handle().await;
    let t = tenant(&*store, "KEY1").await;
    subscribe_all(&*store, t.id, &numbers(3)).await;
    check_all(&*store, 1).await;
    assert_eq!(kill_every_push(&*store, t0()).await, 3);
    let dead = store.dead_letters(0).await.expect("dead");
    let named = vec![
        dead[0].push_id.clone(),
        dead[2].push_id.clone(),
        "no-such-push".to_string(),
    ];
    assert_eq!(
        store
            .redeliver(&named, None, mins(1))
            .await
            .expect("redeliver"),
        (2, 0)
    );
    assert_eq!(
        store
            .dead_letters(0)
            .await
            .expect("dead")
            .iter()
            .map(|p| &p.push_id)
            .collect::<Vec<_>>(),
        vec![&dead[1].push_id]
    );
    // Pending now, so naming them again does nothing.
    assert_eq!(
        store
            .redeliver(&named, None, mins(2))
            .await
            .expect("redeliver"),
        (0, 0)
    );
    assert_eq!(
        store
            .waiting_pushes(mins(1), mins(1), 100)
            .await
            .expect("count"),
        2
    );
}

async fn pushes_queued_by_another_handle_wake_a_watcher_once_per_batch(db: TestDb) {
    let (watcher, writer) = (db.handle().await, db.handle().await);
    let wake = std::sync::Arc::new(tokio::sync::Notify::new());
    let watch = watcher.watch_pushes(wake.clone()).await.expect("watch");
    let Some(task) = watch else {
        // One SQLite file has one daemon: nothing to watch, and nothing claims otherwise.
        assert_eq!(db.backend(), crate::harness::Backend::Sqlite);
        return;
    };
    let within = std::time::Duration::from_secs(10);
    // A check that queues no push says nothing.
    let t = tenant(&*writer, "KEY1").await;
    subscribe_all(&*writer, t.id, &numbers(3)).await;
    let quiet = tokio::time::timeout(std::time::Duration::from_millis(500), wake.notified());
    assert!(quiet.await.is_err(), "woken without a push");
    // One batch of three waybills with two pushes each: woken, and only once.
    check_all(&*writer, 2).await;
    tokio::time::timeout(within, wake.notified())
        .await
        .expect("woken by the other handle's pushes");
    let again = tokio::time::timeout(std::time::Duration::from_millis(500), wake.notified());
    assert!(again.await.is_err(), "one batch, one wake-up");
    // Dead pushes made pending again wake it too.
    assert!(kill_every_push(&*writer, hours(5)).await > 0);
    let _ = tokio::time::timeout(std::time::Duration::from_millis(200), wake.notified()).await;
    let (redriven, _) = writer
        .redeliver(&[], None, hours(6))
        .await
        .expect("redeliver");
    assert!(redriven > 0);
    tokio::time::timeout(within, wake.notified())
        .await
        .expect("woken by the redelivery");
    task.abort();
}

contract! {
    pushes_queued_by_another_handle_wake_a_watcher_once_per_batch,
    only_the_oldest_pending_push_of_a_waybill_is_handed_out,
    pushes_are_claimed_oldest_due_first_across_waybills_up_to_the_limit,
    a_claimed_push_is_reclaimable_only_once_its_lease_expires,
    a_shared_claim_gives_each_endpoint_at_most_its_room,
    verdicts_are_written_only_for_the_claimant_of_a_pending_push,
    dead_letters_are_listed_oldest_first_up_to_the_limit,
    a_gone_verdict_disables_the_url_for_the_tenant_until_enabled_again,
    urls_failing_since_before_the_cutoff_with_no_delivery_are_disabled,
    waiting_pushes_counts_only_the_pushes_that_could_be_sent_now,
    next_push_due_is_the_earliest_attempt_of_a_pending_push,
    redeliver_redrives_the_newest_dead_push_and_supersedes_older_ones,
    redeliver_by_name_redrives_only_the_named_dead_pushes,
}
