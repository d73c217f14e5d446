//! Scheduling: claiming due subscriptions under a lease, and writing a check's result
//! (trace, monitor state, pushes, problems, estimate, lessons) only while holding it.

use jiff::{SignedDuration, Timestamp};
use waybill_core::eta::{Basis, Estimate, LaneStats, Lesson, Scope, Stage};
use waybill_core::state::State;
use waybill_host::store::{
    push_endpoint, CompanyCorrection, Lease, MonitorStatus, NewPush, ProblemState, PushPayload,
    PushState, StoreError, SubscriptionFilter,
};

use crate::fixtures::{
    created, hours, lease, mins, new_sub, numbered_change, numbers, outcome, subscribe_all, t0,
    tenant, trace_of,
};
use crate::harness::TestDb;

async fn claimed_rows_are_leased_and_only_reclaimable_after_the_lease_expires(db: TestDb) {
    let store = db.handle().await;
    let t = tenant(&*store, "KEY1").await;
    let id = created(
        store
            .subscribe(&new_sub(t.id, "SB1"))
            .await
            .expect("subscribe"),
    );

    let a = store
        .claim_due(t0(), 10, &Lease::until("a", t0(), mins(5)))
        .await
        .expect("claim");
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].lease_owner.as_deref(), Some("a"));
    assert_eq!(a[0].lease_until, Some(mins(5)));
    let read = store.subscription(id).await.expect("read").expect("exists");
    assert_eq!(
        (read.lease_owner.as_deref(), read.lease_until),
        (Some("a"), Some(mins(5)))
    );
    assert!(store
        .claim_due(t0(), 10, &Lease::until("b", t0(), mins(5)))
        .await
        .expect("claim")
        .is_empty());
    // The lease is timed on the lease clock, not the engine's: a fast engine clock far
    // ahead does not free it.
    assert!(store
        .claim_due(hours(100), 10, &Lease::until("b", mins(4), mins(9)))
        .await
        .expect("claim")
        .is_empty());

    // "a" crashed: once its lease runs out, "b" gets the row, and "a" can no longer
    // write a result for it.
    let later = mins(5) + SignedDuration::from_secs(1);
    let b = store
        .claim_due(
            later,
            10,
            &Lease::new("b", later, SignedDuration::from_mins(5)),
        )
        .await
        .expect("claim");
    assert_eq!(b.iter().map(|s| s.id).collect::<Vec<_>>(), vec![id]);
    assert_eq!(b[0].lease_owner.as_deref(), Some("b"));
    let err = store
        .complete_check(&outcome(id, "a", 1))
        .await
        .expect_err("stale lease");
    assert!(
        matches!(&err, StoreError::LeaseLost { what: "subscription", owner, .. } if owner == "a"),
        "{err}"
    );
    assert!(store.pushes_of(id).await.expect("pushes").is_empty());
    store
        .complete_check(&outcome(id, "b", 0))
        .await
        .expect("complete");
    let s = store.subscription(id).await.expect("read").expect("exists");
    assert_eq!((s.lease_owner, s.lease_until), (None, None));
    assert_eq!(s.checks, 1);
    assert_eq!(s.next_check_at, hours(4));
    assert_eq!(s.last_check_at, Some(t0()));
    // Completed, it is no longer due until its next check.
    assert!(store
        .claim_due(hours(3), 10, &lease("c"))
        .await
        .expect("claim")
        .is_empty());
    assert_eq!(
        store
            .claim_due(hours(4), 10, &lease("c"))
            .await
            .expect("claim")
            .len(),
        1
    );
}

async fn claim_due_takes_only_due_rows_oldest_first_up_to_the_limit(db: TestDb) {
    let store = db.handle().await;
    let t = tenant(&*store, "KEY1").await;
    let due_at = [mins(3), mins(1), hours(10), mins(2)];
    let subs: Vec<_> = due_at
        .iter()
        .enumerate()
        .map(|(i, at)| waybill_host::store::NewSubscription {
            next_check_at: *at,
            ..new_sub(t.id, &format!("SB{i}"))
        })
        .collect();
    let ids: Vec<_> = store
        .subscribe_many(&subs, 0)
        .await
        .expect("subscribe")
        .into_iter()
        .map(created)
        .collect();
    assert_eq!(store.next_due().await.expect("next"), Some(mins(1)));

    let now = mins(5);
    let first = store.claim_due(now, 2, &lease("a")).await.expect("claim");
    assert_eq!(
        first.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![ids[1], ids[3]],
        "oldest due first"
    );
    let second = store.claim_due(now, 10, &lease("a")).await.expect("claim");
    assert_eq!(
        second.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![ids[0]],
        "not the one due later"
    );
    assert!(store
        .claim_due(now, 10, &lease("a"))
        .await
        .expect("claim")
        .is_empty());
    assert_eq!(
        store.next_due().await.expect("next"),
        Some(mins(1)),
        "leased rows are still polling and due"
    );
    let last = store
        .claim_due(hours(10), 10, &lease("a"))
        .await
        .expect("claim");
    assert_eq!(
        last.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![ids[2]],
        "due at the instant itself"
    );
}

async fn next_due_is_the_earliest_check_of_a_polling_subscription(db: TestDb) {
    let store = db.handle().await;
    assert_eq!(
        store.next_due().await.expect("next"),
        None,
        "nothing subscribed"
    );
    let t = tenant(&*store, "KEY1").await;
    let early = created(
        store
            .subscribe(&waybill_host::store::NewSubscription {
                next_check_at: mins(1),
                ..new_sub(t.id, "SB1")
            })
            .await
            .expect("subscribe"),
    );
    store
        .subscribe(&waybill_host::store::NewSubscription {
            next_check_at: mins(7),
            ..new_sub(t.id, "SB2")
        })
        .await
        .expect("subscribe");
    assert_eq!(store.next_due().await.expect("next"), Some(mins(1)));
    assert!(store.cancel(early, "stop", t0()).await.expect("cancel"));
    assert_eq!(
        store.next_due().await.expect("next"),
        Some(mins(7)),
        "a stopped one is not due"
    );
}

async fn complete_checks_writes_a_group_and_skips_only_the_lost_lease(db: TestDb) {
    let store = db.handle().await;
    let t = tenant(&*store, "KEY1").await;
    let ids = subscribe_all(&*store, t.id, &numbers(3)).await;
    store
        .claim_due(t0(), 10, &lease("me"))
        .await
        .expect("claim");
    let written = store
        .complete_checks(&[
            outcome(ids[0], "me", 1),
            outcome(ids[1], "someone-else", 1),
            outcome(ids[2], "me", 2),
        ])
        .await
        .expect("complete");
    assert_eq!(written, vec![true, false, true]);
    assert_eq!(store.pushes_of(ids[0]).await.expect("pushes").len(), 1);
    assert!(store.pushes_of(ids[1]).await.expect("pushes").is_empty());
    assert_eq!(store.pushes_of(ids[2]).await.expect("pushes").len(), 2);
    let skipped = store
        .subscription(ids[1])
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(skipped.lease_owner.as_deref(), Some("me"), "untouched");
    assert_eq!(skipped.checks, 0);
    assert!(store
        .complete_checks(&[])
        .await
        .expect("nothing")
        .is_empty());
}

async fn a_completed_check_stores_the_trace_newest_first_and_numbers_pushes_per_subscription(
    db: TestDb,
) {
    let store = db.handle().await;
    let t = tenant(&*store, "KEY1").await;
    let ids = subscribe_all(&*store, t.id, &numbers(2)).await;
    let id = ids[0];
    store.claim_due(t0(), 10, &lease("a")).await.expect("claim");
    let trace = trace_of(3);
    assert!(
        trace.data[0].time.at > trace.data[2].time.at,
        "the fixture is newest first"
    );
    let mut o = outcome(id, "a", 2);
    o.checked_at = mins(1);
    o.new_trace = Some((trace.clone(), "hash-3".into()));
    o.pushes[1].url = "https://Erp.Example:8443/cb?x=1".into();
    store.complete_check(&o).await.expect("complete");
    store
        .complete_check(&outcome(ids[1], "a", 1))
        .await
        .expect("complete");

    let stored = store.trace(id).await.expect("trace").expect("exists");
    assert_eq!(
        stored.data, trace.data,
        "every field of every event, newest first"
    );
    assert_eq!(stored.state, State::InTransit);
    let s = store.subscription(id).await.expect("read").expect("exists");
    assert_eq!(s.state, State::InTransit);
    assert_eq!(s.trace_hash.as_deref(), Some("hash-3"));
    assert_eq!(s.event_count, 3);
    assert_eq!(s.last_event_at, Some(trace.data[0].time.at));
    assert_eq!(
        (s.last_check_at, s.last_change_at),
        (Some(mins(1)), Some(mins(1)))
    );
    assert_eq!((s.checks, s.changes, s.failures, s.push_seq), (1, 1, 0, 2));

    let pushes = store.pushes_of(id).await.expect("pushes");
    assert_eq!(pushes.iter().map(|p| p.seq).collect::<Vec<_>>(), vec![1, 2]);
    for p in &pushes {
        assert!(p.push_id.ends_with(&format!("-{}", p.seq)), "{}", p.push_id);
        assert_eq!(p.subscription_id, id);
        assert_eq!(
            (p.state, p.attempt, p.last_error.as_deref()),
            (PushState::Pending, 0, None)
        );
        assert_eq!(
            (p.next_attempt_at, p.created_at, p.finished_at),
            (mins(1), mins(1), None)
        );
        assert_eq!(p.endpoint, push_endpoint(&p.url));
    }
    assert_eq!(pushes[0].payload, PushPayload::Change(numbered_change(0)));
    assert_eq!(pushes[1].payload, PushPayload::Change(numbered_change(1)));
    assert_eq!(pushes[1].url, "https://Erp.Example:8443/cb?x=1");
    assert_eq!(pushes[1].endpoint, "https://erp.example:8443");
    assert_ne!(pushes[0].push_id, pushes[1].push_id);
    // Each subscription numbers its own pushes, and ids do not collide across them.
    let theirs = store.pushes_of(ids[1]).await.expect("pushes");
    assert_eq!(theirs.iter().map(|p| p.seq).collect::<Vec<_>>(), vec![1]);
    assert!(pushes.iter().all(|p| p.push_id != theirs[0].push_id));
    // Another daemon finds a push by the id this one gave it.
    let other = db.handle().await;
    assert_eq!(
        other.push(&pushes[1].push_id).await.expect("push"),
        Some(pushes[1].clone())
    );
    assert_eq!(other.push("no-such-push").await.expect("push"), None);

    // The next check goes on with 3, and a new trace replaces the stored events.
    store
        .claim_due(hours(4), 10, &lease("a"))
        .await
        .expect("claim");
    let mut o = outcome(id, "a", 1);
    o.checked_at = hours(4);
    o.new_trace = Some((trace_of(2), "hash-2".into()));
    store.complete_check(&o).await.expect("complete");
    let pushes = store.pushes_of(id).await.expect("pushes");
    assert_eq!(
        pushes.iter().map(|p| p.seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(
        store.trace(id).await.expect("trace").expect("exists").data,
        trace_of(2).data
    );
    let s = store.subscription(id).await.expect("read").expect("exists");
    assert_eq!(
        (s.event_count, s.changes, s.checks, s.push_seq),
        (2, 2, 2, 3)
    );
    // A check without a new trace keeps the stored one.
    store
        .claim_due(hours(8), 10, &lease("a"))
        .await
        .expect("claim");
    let mut o = outcome(id, "a", 0);
    o.checked_at = hours(8);
    store.complete_check(&o).await.expect("complete");
    assert_eq!(
        store.trace(id).await.expect("trace").expect("exists").data,
        trace_of(2).data
    );
    let s = store.subscription(id).await.expect("read").expect("exists");
    assert_eq!(
        (s.changes, s.checks, s.last_change_at),
        (2, 3, Some(hours(4)))
    );
}

/// An estimate that says the parcel arrives at `arrival`.
fn estimate(arrival: Timestamp) -> Estimate {
    Estimate {
        arrival,
        early: arrival - SignedDuration::from_hours(6),
        late: arrival + SignedDuration::from_hours(6),
        stage: Some(Stage::Collected),
        stage_since: Some(t0()),
        typical_total: SignedDuration::from_hours(48),
        basis: Basis::Learned {
            scope: "carrier".into(),
            samples: 12,
            entry_hours: Some("08-12".into()),
        },
        fallback: true,
        explanation: "about two days".into(),
    }
}

/// What one delivery taught: `hours` from collection to delivery, on the Shenzhen to
/// Beijing lane and the carrier as a whole.
pub fn lesson(hours: i64) -> Lesson {
    // Index 0 is the collected stage, the first of `Stage::ALL`.
    let mut stats = LaneStats {
        deliveries: 1,
        ..LaneStats::default()
    };
    stats.from_stage[0].add(SignedDuration::from_hours(hours));
    stats.by_entry_hour[0][0].add(SignedDuration::from_hours(hours));
    Lesson {
        scopes: vec![
            Scope::Lane {
                from: 440300,
                to: 110100,
            },
            Scope::Carrier,
        ],
        stats,
    }
}

async fn a_check_by_a_lease_that_was_taken_over_writes_nothing(db: TestDb) {
    let store = db.handle().await;
    let t = tenant(&*store, "KEY1").await;
    let id = created(
        store
            .subscribe(&new_sub(t.id, "SB1"))
            .await
            .expect("subscribe"),
    );
    store
        .claim_due(t0(), 10, &Lease::until("a", t0(), mins(1)))
        .await
        .expect("claim");
    let takeover = store
        .claim_due(t0(), 10, &Lease::until("b", mins(2), mins(7)))
        .await
        .expect("claim");
    assert_eq!(takeover.len(), 1);
    let before = store.subscription(id).await.expect("read").expect("exists");

    let mut late = outcome(id, "a", 2);
    late.status = MonitorStatus::Shutdown;
    late.message = "signed".into();
    late.new_trace = Some((trace_of(3), "hash".into()));
    late.correction = Some(CompanyCorrection {
        com_old: "sandbox".into(),
        com_new: "other".into(),
    });
    late.error = Some("timeout".into());
    late.problems = Some(ProblemState {
        codes: vec![403],
        due_at: Some(hours(1)),
    });
    late.eta = Some(Some(estimate(hours(48))));
    late.lesson = Some(("sandbox".into(), lesson(30)));
    let err = store.complete_check(&late).await.expect_err("lease lost");
    assert!(matches!(err, StoreError::LeaseLost { .. }), "{err}");
    assert_eq!(
        store
            .complete_checks(std::slice::from_ref(&late))
            .await
            .expect("complete"),
        vec![false]
    );

    assert_eq!(
        store.subscription(id).await.expect("read"),
        Some(before),
        "the row is untouched"
    );
    assert!(store
        .trace(id)
        .await
        .expect("trace")
        .expect("exists")
        .data
        .is_empty());
    assert!(store.pushes_of(id).await.expect("pushes").is_empty());
    assert!(
        store.lanes().await.expect("lanes").is_empty(),
        "the lesson was not learned"
    );
    // The new holder's result goes in.
    store
        .complete_check(&outcome(id, "b", 1))
        .await
        .expect("complete");
    assert_eq!(store.pushes_of(id).await.expect("pushes")[0].seq, 1);
}

async fn failed_checks_are_counted_until_one_succeeds(db: TestDb) {
    let store = db.handle().await;
    let t = tenant(&*store, "KEY1").await;
    let id = created(
        store
            .subscribe(&new_sub(t.id, "SB1"))
            .await
            .expect("subscribe"),
    );
    for (n, error) in [(1, Some("timeout")), (2, Some("HTTP 502")), (0, None)] {
        store
            .claim_due(hours(10), 10, &lease("a"))
            .await
            .expect("claim");
        let mut o = outcome(id, "a", 0);
        o.error = error.map(Into::into);
        o.next_check_at = t0();
        store.complete_check(&o).await.expect("complete");
        let s = store.subscription(id).await.expect("read").expect("exists");
        assert_eq!((s.failures, s.last_error.as_deref()), (n, error));
    }
    let s = store.subscription(id).await.expect("read").expect("exists");
    assert_eq!(s.checks, 3);
}

async fn a_company_correction_moves_the_subscription_to_the_new_company(db: TestDb) {
    let store = db.handle().await;
    let t = tenant(&*store, "KEY1").await;
    let id = created(
        store
            .subscribe(&new_sub(t.id, "SB1"))
            .await
            .expect("subscribe"),
    );
    store.claim_due(t0(), 10, &lease("a")).await.expect("claim");
    let mut o = outcome(id, "a", 0);
    let correction = CompanyCorrection {
        com_old: "sandbox".into(),
        com_new: "zhongtong".into(),
    };
    o.correction = Some(correction.clone());
    store.complete_check(&o).await.expect("complete");
    let s = store.subscription(id).await.expect("read").expect("exists");
    assert_eq!(s.company, "zhongtong");
    assert_eq!(s.correction, Some(correction));
    let found = store
        .list_subscriptions(&SubscriptionFilter {
            company: Some("zhongtong".into()),
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(found.len(), 1);
}

async fn a_check_that_ends_monitoring_stops_claims_and_keeps_its_message(db: TestDb) {
    let store = db.handle().await;
    let t = tenant(&*store, "KEY1").await;
    let ids = subscribe_all(&*store, t.id, &numbers(2)).await;
    store.claim_due(t0(), 10, &lease("a")).await.expect("claim");
    let mut signed = outcome(ids[0], "a", 1);
    signed.status = MonitorStatus::Shutdown;
    signed.message = "已签收".into();
    let mut stale = outcome(ids[1], "a", 0);
    stale.status = MonitorStatus::Abort;
    stale.message = "60天无变化".into();
    store
        .complete_checks(&[signed, stale])
        .await
        .expect("complete");
    let s = store
        .subscription(ids[0])
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(
        (s.status, s.message.as_str()),
        (MonitorStatus::Shutdown, "已签收")
    );
    let s = store
        .subscription(ids[1])
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(
        (s.status, s.message.as_str()),
        (MonitorStatus::Abort, "60天无变化")
    );
    assert!(store
        .claim_due(hours(100), 10, &lease("b"))
        .await
        .expect("claim")
        .is_empty());
    assert_eq!(store.next_due().await.expect("next"), None);
    let stats = store.stats().await.expect("stats");
    assert_eq!((stats.polling, stats.shutdown, stats.abort), (0, 1, 1));
    assert_eq!(stats.pending_pushes, 1, "the last change is still pushed");
}

async fn the_estimate_is_stored_kept_when_not_evaluated_and_cleared_when_gone(db: TestDb) {
    let store = db.handle().await;
    let t = tenant(&*store, "KEY1").await;
    let id = created(
        store
            .subscribe(&new_sub(t.id, "SB1"))
            .await
            .expect("subscribe"),
    );
    let check = |eta: Option<Option<Estimate>>| {
        let store = store.clone();
        async move {
            store
                .claim_due(hours(100), 10, &lease("a"))
                .await
                .expect("claim");
            let mut o = outcome(id, "a", 0);
            o.eta = eta;
            store.complete_check(&o).await.expect("complete");
            store
                .subscription(id)
                .await
                .expect("read")
                .expect("exists")
                .eta
        }
    };
    assert_eq!(check(None).await, None);
    assert_eq!(
        check(Some(Some(estimate(hours(48))))).await,
        Some(estimate(hours(48)))
    );
    assert_eq!(
        check(None).await,
        Some(estimate(hours(48))),
        "None keeps it"
    );
    assert_eq!(
        check(Some(Some(estimate(hours(50))))).await,
        Some(estimate(hours(50))),
        "replaced"
    );
    assert_eq!(check(Some(None)).await, None, "Some(None) clears it");
}

async fn problem_flags_are_stored_kept_when_not_evaluated_and_cleared(db: TestDb) {
    let store = db.handle().await;
    let t = tenant(&*store, "KEY1").await;
    let id = created(
        store
            .subscribe(&new_sub(t.id, "SB1"))
            .await
            .expect("subscribe"),
    );
    let check = |problems: Option<ProblemState>| {
        let store = store.clone();
        async move {
            store
                .claim_due(hours(100), 10, &lease("a"))
                .await
                .expect("claim");
            let mut o = outcome(id, "a", 0);
            o.problems = problems;
            store.complete_check(&o).await.expect("complete");
            store
                .subscription(id)
                .await
                .expect("read")
                .expect("exists")
                .problems
        }
    };
    let flagged = ProblemState {
        codes: vec![403, 412],
        due_at: Some(hours(30)),
    };
    assert_eq!(check(None).await, ProblemState::default());
    assert_eq!(check(Some(flagged.clone())).await, flagged);
    assert_eq!(check(None).await, flagged, "None keeps them");
    assert_eq!(
        check(Some(ProblemState::default())).await,
        ProblemState::default()
    );
}

async fn lessons_of_delivered_parcels_add_up_in_the_lanes_whichever_daemon_learns_them(db: TestDb) {
    let store = db.handle().await;
    let other = db.handle().await;
    let t = tenant(&*store, "KEY1").await;
    let ids = subscribe_all(&*store, t.id, &numbers(3)).await;
    store.claim_due(t0(), 10, &lease("a")).await.expect("claim");
    let learned = |id, hours, carrier: &str| {
        let mut o = outcome(id, "a", 0);
        o.status = MonitorStatus::Shutdown;
        o.lesson = Some((carrier.into(), lesson(hours)));
        o
    };
    store
        .complete_check(&learned(ids[0], 30, "sandbox"))
        .await
        .expect("complete");
    other
        .complete_checks(&[
            learned(ids[1], 50, "sandbox"),
            learned(ids[2], 20, "zhongtong"),
        ])
        .await
        .expect("complete");

    let mut both = lesson(30).stats;
    both.merge(&lesson(50).stats);
    assert_eq!(both.deliveries, 2);
    let mut lanes = store.lanes().await.expect("lanes");
    lanes.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    let lane = Scope::Lane {
        from: 440300,
        to: 110100,
    };
    assert_eq!(
        lanes,
        vec![
            ("sandbox".to_string(), lane, both.clone()),
            ("sandbox".to_string(), Scope::Carrier, both),
            ("zhongtong".to_string(), lane, lesson(20).stats),
            ("zhongtong".to_string(), Scope::Carrier, lesson(20).stats),
        ]
    );
}

async fn a_push_queued_by_a_check_keeps_its_own_url(db: TestDb) {
    let store = db.handle().await;
    let t = tenant(&*store, "KEY1").await;
    let id = created(
        store
            .subscribe(&new_sub(t.id, "SB1"))
            .await
            .expect("subscribe"),
    );
    store.claim_due(t0(), 10, &lease("a")).await.expect("claim");
    let mut o = outcome(id, "a", 0);
    o.pushes = vec![
        NewPush {
            url: "http://one.example/a".into(),
            change: numbered_change(0),
        },
        NewPush {
            url: "http://two.example/b".into(),
            change: numbered_change(1),
        },
    ];
    store.complete_check(&o).await.expect("complete");
    let urls: Vec<_> = store
        .pushes_of(id)
        .await
        .expect("pushes")
        .into_iter()
        .map(|p| p.url)
        .collect();
    assert_eq!(urls, ["http://one.example/a", "http://two.example/b"]);
}

contract! {
    claimed_rows_are_leased_and_only_reclaimable_after_the_lease_expires,
    claim_due_takes_only_due_rows_oldest_first_up_to_the_limit,
    next_due_is_the_earliest_check_of_a_polling_subscription,
    complete_checks_writes_a_group_and_skips_only_the_lost_lease,
    a_completed_check_stores_the_trace_newest_first_and_numbers_pushes_per_subscription,
    a_check_by_a_lease_that_was_taken_over_writes_nothing,
    failed_checks_are_counted_until_one_succeeds,
    a_company_correction_moves_the_subscription_to_the_new_company,
    a_check_that_ends_monitoring_stops_claims_and_keeps_its_message,
    the_estimate_is_stored_kept_when_not_evaluated_and_cleared_when_gone,
    problem_flags_are_stored_kept_when_not_evaluated_and_cleared,
    lessons_of_delivered_parcels_add_up_in_the_lanes_whichever_daemon_learns_them,
    a_push_queued_by_a_check_keeps_its_own_url,
}
