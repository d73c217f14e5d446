//! What the store keeps besides subscriptions and pushes: idempotent answers, cached
//! carrier answers, monthly usage, counts, and the facts the number guesser learns from.

use waybill_core::guess::PriorCount;
use waybill_host::store::{IdempotentAnswer, MonitorStatus, NewSubscription, SubscribeOutcome};

use crate::fixtures::{
    check_all, claim_pushes, created, hours, lease, mins, new_sub, numbers, outcome, subscribe_all,
    t0, tenant, trace_of,
};
use crate::harness::TestDb;

fn answer(status: u16, body: &str) -> IdempotentAnswer {
    IdempotentAnswer {
        fingerprint: format!("POST /v1/subscriptions {body}"),
        status,
        body: body.into(),
    }
}

async fn the_first_idempotent_answer_is_kept_and_old_ones_are_forgotten(db: TestDb) {
    let store = db.handle().await;
    let a = tenant(&*store, "KEY1").await;
    let b = tenant(&*store, "KEY2").await;
    assert_eq!(
        store.idempotent_answer(a.id, "k1").await.expect("read"),
        None
    );
    let first = answer(201, r#"{"id":1}"#);
    store
        .save_idempotent_answer(
            a.id,
            "k1",
            &first,
            t0(),
            t0() - jiff::SignedDuration::from_hours(24),
        )
        .await
        .expect("save");
    store
        .save_idempotent_answer(a.id, "k1", &answer(500, "{}"), mins(1), t0())
        .await
        .expect("save");
    assert_eq!(
        store.idempotent_answer(a.id, "k1").await.expect("read"),
        Some(first.clone()),
        "first save wins"
    );
    assert_eq!(
        store.idempotent_answer(b.id, "k1").await.expect("read"),
        None,
        "keys are per tenant"
    );
    store
        .save_idempotent_answer(b.id, "k1", &answer(202, "b"), mins(2), t0())
        .await
        .expect("save");
    assert_eq!(
        store.idempotent_answer(b.id, "k1").await.expect("read"),
        Some(answer(202, "b"))
    );
    assert_eq!(
        db.handle()
            .await
            .idempotent_answer(a.id, "k1")
            .await
            .expect("read"),
        Some(first)
    );

    // Two days on, answers from before yesterday are dropped on the way.
    store
        .save_idempotent_answer(a.id, "k2", &answer(200, "later"), hours(48), hours(24))
        .await
        .expect("save");
    assert_eq!(
        store.idempotent_answer(a.id, "k1").await.expect("read"),
        None
    );
    assert_eq!(
        store.idempotent_answer(b.id, "k1").await.expect("read"),
        None
    );
    assert_eq!(
        store.idempotent_answer(a.id, "k2").await.expect("read"),
        Some(answer(200, "later"))
    );
    // A forgotten key may be answered anew.
    store
        .save_idempotent_answer(a.id, "k1", &answer(409, "new"), hours(49), hours(24))
        .await
        .expect("save");
    assert_eq!(
        store.idempotent_answer(a.id, "k1").await.expect("read"),
        Some(answer(409, "new"))
    );
}

async fn a_saved_query_answer_is_read_back_and_replaced_by_a_newer_one(db: TestDb) {
    let store = db.handle().await;
    assert_eq!(
        store.cached_query("sandbox", "SB1\n").await.expect("read"),
        None
    );
    store
        .save_query("sandbox", "SB1\n", &trace_of(2), t0())
        .await
        .expect("save");
    assert_eq!(
        store.cached_query("sandbox", "SB1\n").await.expect("read"),
        Some((trace_of(2), t0()))
    );
    store
        .save_query("sandbox", "SB1\n", &trace_of(3), mins(1))
        .await
        .expect("save");
    assert_eq!(
        store.cached_query("sandbox", "SB1\n").await.expect("read"),
        Some((trace_of(3), mins(1)))
    );
    assert_eq!(
        store.cached_query("other", "SB1\n").await.expect("read"),
        None,
        "per company"
    );
    assert_eq!(
        store
            .cached_query("sandbox", "SB1\n1234")
            .await
            .expect("read"),
        None,
        "per key"
    );
    assert_eq!(
        db.handle()
            .await
            .cached_query("sandbox", "SB1\n")
            .await
            .expect("read"),
        Some((trace_of(3), mins(1)))
    );
}

async fn usage_counts_each_waybill_once_per_tenant_and_billing_month(db: TestDb) {
    let store = db.handle().await;
    let a = tenant(&*store, "KEY1").await;
    let b = tenant(&*store, "KEY2").await;
    // 2024-04-30T17:00Z is already May 1st at UTC+8.
    let late_april_utc: jiff::Timestamp = "2024-04-30T17:00:00Z".parse().expect("ts");
    store
        .record_usage(a.id, "sandbox", "SB1", late_april_utc)
        .await
        .expect("usage");
    store
        .record_usage(a.id, "sandbox", "SB1", t0())
        .await
        .expect("usage");
    store
        .record_usage(a.id, "sandbox", "SB2", t0())
        .await
        .expect("usage");
    store
        .record_usage(a.id, "other", "SB2", t0())
        .await
        .expect("usage");
    store
        .record_usage(b.id, "sandbox", "SB1", t0())
        .await
        .expect("usage");
    assert_eq!(store.usage(a.id, "2024-05").await.expect("usage"), 3);
    assert_eq!(store.usage(a.id, "2024-04").await.expect("usage"), 0);
    assert_eq!(store.usage(b.id, "2024-05").await.expect("usage"), 1);
    // A query does not use up a subscribe of the month, and subscribing a queried
    // waybill does not count it twice.
    let out = store
        .subscribe(&new_sub(a.id, "SB1"))
        .await
        .expect("subscribe");
    assert!(
        matches!(
            out,
            SubscribeOutcome::Created {
                month_subscribes: 1,
                ..
            }
        ),
        "{out:?}"
    );
    assert_eq!(store.usage(a.id, "2024-05").await.expect("usage"), 3);
    // A subscription made in June counts in June.
    let june: jiff::Timestamp = "2024-06-02T00:00:00Z".parse().expect("ts");
    store
        .subscribe(&NewSubscription {
            created_at: june,
            ..new_sub(a.id, "SB9")
        })
        .await
        .expect("subscribe");
    assert_eq!(store.usage(a.id, "2024-06").await.expect("usage"), 1);
    assert_eq!(store.usage(a.id, "2024-05").await.expect("usage"), 3);
}

async fn stats_count_subscriptions_by_status_and_pushes_by_state(db: TestDb) {
    let store = db.handle().await;
    assert_eq!(store.stats().await.expect("stats"), Default::default());
    let t = tenant(&*store, "KEY1").await;
    let ids = subscribe_all(&*store, t.id, &numbers(5)).await;
    check_all(&*store, 1).await;
    let pushes = claim_pushes(&*store, t0(), 10, "w").await;
    store
        .push_delivered(&pushes[0].push_id, "w", t0())
        .await
        .expect("delivered");
    store
        .push_delivered(&pushes[1].push_id, "w", t0())
        .await
        .expect("delivered");
    store
        .push_dead(&pushes[2].push_id, "w", "gave up", t0())
        .await
        .expect("dead");
    assert!(store.cancel(ids[0], "stop", t0()).await.expect("cancel"));
    store
        .claim_due(hours(4), 10, &lease("a"))
        .await
        .expect("claim");
    let mut signed = outcome(ids[1], "a", 0);
    signed.status = MonitorStatus::Shutdown;
    store.complete_check(&signed).await.expect("complete");
    let stats = store.stats().await.expect("stats");
    assert_eq!((stats.polling, stats.shutdown, stats.abort), (3, 1, 1));
    assert_eq!(
        (
            stats.pending_pushes,
            stats.delivered_pushes,
            stats.dead_pushes
        ),
        (2, 2, 1)
    );
    assert_eq!(db.handle().await.stats().await.expect("stats"), stats);
}

async fn confirmed_numbers_are_counted_by_company_length_and_prefix(db: TestDb) {
    let store = db.handle().await;
    let a = tenant(&*store, "KEY1").await;
    let b = tenant(&*store, "KEY2").await;
    // Spaces and dashes do not count and case does not matter: these are one number.
    let subs = vec![
        new_sub(a.id, "sf1234-5678"),
        new_sub(b.id, "SF12345678"),
        new_sub(a.id, "SF1234 9999"),
        new_sub(a.id, "YT99"),
        new_sub(a.id, "SF1200000000"),
        // Never confirmed: no event came back.
        new_sub(a.id, "SF1299999999"),
    ];
    let out = store.subscribe_many(&subs, 0).await.expect("subscribe");
    let ids: Vec<_> = out.into_iter().map(created).collect();
    store.claim_due(t0(), 10, &lease("a")).await.expect("claim");
    let outcomes: Vec<_> = ids[..5]
        .iter()
        .map(|id| {
            let mut o = outcome(*id, "a", 0);
            o.new_trace = Some((trace_of(1), "hash".into()));
            o
        })
        .collect();
    store.complete_checks(&outcomes).await.expect("complete");
    let mut counts = store.confirmed_number_counts().await.expect("counts");
    counts
        .sort_by(|x, y| (&x.carrier, x.length, &x.prefix).cmp(&(&y.carrier, y.length, &y.prefix)));
    let count = |length, prefix: &str, count| PriorCount {
        carrier: "sandbox".into(),
        length,
        prefix: prefix.into(),
        count,
    };
    assert_eq!(
        counts,
        vec![
            count(4, "YT99", 1),
            count(10, "SF12", 2),
            count(12, "SF12", 1)
        ]
    );
}

async fn the_first_value_of_a_setting_wins_and_every_handle_sees_it(db: TestDb) {
    let (one, two) = (db.handle().await, db.handle().await);
    assert_eq!(one.setting("sandbox_clock").await.expect("read"), None);
    // Two daemons starting at once both offer a value; both are told the same one.
    let (a, b) = tokio::join!(
        one.init_setting("sandbox_clock", "from one"),
        two.init_setting("sandbox_clock", "from two")
    );
    let (a, b) = (a.expect("init one"), b.expect("init two"));
    assert_eq!(a, b);
    assert!(a == "from one" || a == "from two", "{a}");
    assert_eq!(
        two.init_setting("sandbox_clock", "later")
            .await
            .expect("init"),
        a
    );
    assert_eq!(
        one.setting("sandbox_clock").await.expect("read"),
        Some(a.clone())
    );
    assert_eq!(one.setting("other").await.expect("read"), None);
}

async fn retention_deletes_ended_subscriptions_without_waiting_pushes_and_keeps_usage(db: TestDb) {
    let store = db.handle().await;
    let t = tenant(&*store, "KEY1").await;
    // Four waybills: two end at t0 with nothing to push, one ends with a push still
    // waiting, and the newest ends too but is kept (its id must never come back).
    let ids = subscribe_all(&*store, t.id, &numbers(4)).await;
    check_all(&*store, 0).await;
    let ended = |id| {
        let mut o = outcome(id, "end", 0);
        o.status = MonitorStatus::Shutdown;
        o
    };
    let claimed = store
        .claim_due(hours(4), 10, &lease("end"))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 4);
    let mut outcomes: Vec<_> = ids.iter().map(|&id| ended(id)).collect();
    outcomes[2].pushes = outcome(ids[2], "end", 1).pushes;
    assert!(store
        .complete_checks(&outcomes)
        .await
        .expect("end")
        .iter()
        .all(|w| *w));
    let before = t0() + jiff::SignedDuration::from_hours(1);
    assert_eq!(
        store.ended_before(t0(), 10).await.expect("list"),
        Vec::<i64>::new(),
        "nothing ended before t0"
    );
    let due = store.ended_before(before, 10).await.expect("list");
    assert_eq!(due, vec![ids[0], ids[1]]);
    assert_eq!(
        store.ended_before(before, 1).await.expect("list"),
        vec![ids[0]]
    );
    // A subscription resumed in between is not deleted.
    assert!(matches!(
        store.retrack(ids[1], hours(5)).await.expect("retrack"),
        waybill_host::store::Retrack::Resumed
    ));
    assert_eq!(store.delete_subscriptions(&due).await.expect("delete"), 1);
    assert!(store.subscription(ids[0]).await.expect("read").is_none());
    assert!(store.trace(ids[0]).await.expect("read").is_none());
    assert!(store.pushes_of(ids[0]).await.expect("read").is_empty());
    for &kept in &ids[1..] {
        assert!(store.subscription(kept).await.expect("read").is_some());
    }
    let month = waybill_host::store::billing_month(t0());
    assert_eq!(store.usage(t.id, &month).await.expect("usage"), 4);
}

contract! {
    retention_deletes_ended_subscriptions_without_waiting_pushes_and_keeps_usage,
    the_first_value_of_a_setting_wins_and_every_handle_sees_it,
    the_first_idempotent_answer_is_kept_and_old_ones_are_forgotten,
    a_saved_query_answer_is_read_back_and_replaced_by_a_newer_one,
    usage_counts_each_waybill_once_per_tenant_and_billing_month,
    stats_count_subscriptions_by_status_and_pushes_by_state,
    confirmed_numbers_are_counted_by_company_length_and_prefix,
}
