//! Subscriptions: what is stored and read back, duplicates, the monthly limit, listing,
//! cancelling, retracking and the native dialect's secrets.

use std::collections::HashSet;

use waybill_core::reminder::Reminder;
use waybill_core::state::State;
use waybill_host::dialect::native;
use waybill_host::store::{
    MonitorStatus, Retrack, SubscribeOptions, SubscribeOutcome, Subscription, SubscriptionFilter,
    DEFAULT_MONTHLY_SUBSCRIBE_LIMIT,
};

use crate::fixtures::{
    created, hours, lease, new_sub, numbers, subscribe_all, subscribe_and_end, t0, tenant,
};
use crate::harness::TestDb;

async fn a_subscription_round_trips_with_all_fields(db: TestDb) {
    let store = db.handle().await;
    let t = tenant(&*store, "KEY1").await;
    let mut params = serde_json::Map::new();
    params.insert("shop".into(), "北京一店".into());
    params.insert("codes".into(), serde_json::json!([1, 2, 3]));
    let new = waybill_host::store::NewSubscription {
        from: Some("广东省深圳市南山区".into()),
        to: Some("北京市朝阳区".into()),
        callback_url: "https://erp.example:8443/cb?shop=1".into(),
        salt: Some("s3cr3t salt".into()),
        dialect: "kdniao".into(),
        dialect_params: params,
        options: SubscribeOptions {
            resultv2: 8,
            auto_com: true,
            inter_com: true,
            departure_country: Some("CN".into()),
            departure_com: Some("ems".into()),
            destination_country: Some("US".into()),
            destination_com: Some("usps".into()),
            reminders: vec![Reminder::OutForDelivery, Reminder::Signed],
        },
        next_check_at: hours(1),
        ..new_sub(t.id, "SB1")
    };
    let id = created(store.subscribe(&new).await.expect("subscribe"));
    let s = store.subscription(id).await.expect("read").expect("exists");
    assert_eq!(
        s,
        Subscription::created(id, store.tracking_id(id, new.tenant_id), new.clone()),
        "what the API answers without reading is what the store holds"
    );
    // Another daemon reads the same row, its salt included.
    let other = db.handle().await;
    assert_eq!(other.subscription(id).await.expect("read"), Some(s));

    // No salt, phone or areas read back as none.
    let bare = waybill_host::store::NewSubscription {
        phone: None,
        from: None,
        to: None,
        salt: None,
        options: SubscribeOptions::default(),
        ..new_sub(t.id, "SB2")
    };
    let id = created(store.subscribe(&bare).await.expect("subscribe"));
    assert_eq!(
        store.subscription(id).await.expect("read"),
        Some(Subscription::created(
            id,
            store.tracking_id(id, bare.tenant_id),
            bare
        ))
    );
    assert_eq!(store.subscription(id + 1000).await.expect("read"), None);
}

async fn a_new_subscription_has_an_empty_trace_and_a_missing_one_none(db: TestDb) {
    let store = db.handle().await;
    let t = tenant(&*store, "KEY1").await;
    let id = created(
        store
            .subscribe(&new_sub(t.id, "SB1"))
            .await
            .expect("subscribe"),
    );
    let trace = store.trace(id).await.expect("trace").expect("exists");
    assert_eq!((trace.com.as_str(), trace.nu.as_str()), ("sandbox", "SB1"));
    assert_eq!(trace.state, State::NoTrace);
    assert!(trace.data.is_empty());
    assert!(!trace.ischeck);
    assert_eq!(store.trace(id + 1000).await.expect("trace"), None);
}

async fn a_second_live_subscription_of_a_waybill_is_a_duplicate_but_counts_usage_once(db: TestDb) {
    let store = db.handle().await;
    let t = tenant(&*store, "KEY1").await;
    let out = store
        .subscribe_many(
            &[
                new_sub(t.id, "SB1"),
                new_sub(t.id, "SB2"),
                new_sub(t.id, "SB1"),
            ],
            DEFAULT_MONTHLY_SUBSCRIBE_LIMIT,
        )
        .await
        .expect("subscribe");
    assert_eq!(out.len(), 3, "one outcome per row");
    let first = created(out[0]);
    assert!(matches!(
        out[0],
        SubscribeOutcome::Created {
            month_subscribes: 1,
            ..
        }
    ));
    assert!(matches!(
        out[1],
        SubscribeOutcome::Created {
            month_subscribes: 1,
            ..
        }
    ));
    assert_eq!(out[2], SubscribeOutcome::Duplicate { existing: first });
    // A later single subscribe of the live waybill is a duplicate too.
    assert_eq!(
        store
            .subscribe(&new_sub(t.id, "SB1"))
            .await
            .expect("subscribe"),
        SubscribeOutcome::Duplicate { existing: first }
    );
    assert_eq!(store.usage(t.id, "2024-05").await.expect("usage"), 2);

    // Once the first has ended, the waybill may be subscribed again (same month).
    assert!(store.cancel(first, "test", t0()).await.expect("cancel"));
    let again = store
        .subscribe(&new_sub(t.id, "SB1"))
        .await
        .expect("subscribe");
    assert!(
        matches!(again, SubscribeOutcome::Created { month_subscribes: 2, id } if id != first),
        "{again:?}"
    );
    assert_eq!(store.usage(t.id, "2024-05").await.expect("usage"), 2);
    // Another company's waybill of the same number is another waybill.
    let other_company = waybill_host::store::NewSubscription {
        company: "other".into(),
        ..new_sub(t.id, "SB1")
    };
    assert!(matches!(
        store.subscribe(&other_company).await.expect("subscribe"),
        SubscribeOutcome::Created {
            month_subscribes: 1,
            ..
        }
    ));
}

async fn the_fifth_subscribe_of_a_waybill_in_a_month_is_refused_and_next_month_allowed(db: TestDb) {
    let store = db.handle().await;
    let t = tenant(&*store, "KEY1").await;
    for n in 1..=4 {
        let out = subscribe_and_end(&*store, t.id, "SB1", t0(), 4).await;
        assert!(
            matches!(out, SubscribeOutcome::Created { month_subscribes, .. } if month_subscribes == n),
            "subscribe {n}: {out:?}"
        );
    }
    // Later in the same billing month (2024-05-31 23:59 at UTC+8).
    let late_may: jiff::Timestamp = "2024-05-31T15:59:00Z".parse().expect("ts");
    let fifth = subscribe_and_end(&*store, t.id, "SB1", late_may, 4).await;
    assert_eq!(
        fifth,
        SubscribeOutcome::MonthlyLimit {
            subscribes: 4,
            limit: 4
        }
    );
    // The refusal wrote nothing: still four subscriptions.
    let all = store
        .list_subscriptions(&SubscriptionFilter::default())
        .await
        .expect("list");
    assert_eq!(all.len(), 4);
    assert_eq!(store.usage(t.id, "2024-05").await.expect("usage"), 1);
    // Another waybill of the same tenant is not affected.
    assert!(matches!(
        subscribe_and_end(&*store, t.id, "SB2", t0(), 4).await,
        SubscribeOutcome::Created {
            month_subscribes: 1,
            ..
        }
    ));
    // 2024-05-31T16:00Z is already June at UTC+8: a new billing month.
    let june: jiff::Timestamp = "2024-05-31T16:00:00Z".parse().expect("ts");
    assert!(matches!(
        subscribe_and_end(&*store, t.id, "SB1", june, 4).await,
        SubscribeOutcome::Created {
            month_subscribes: 1,
            ..
        }
    ));
    assert_eq!(store.usage(t.id, "2024-06").await.expect("usage"), 1);
    // 0 lifts the limit.
    assert!(matches!(
        subscribe_and_end(&*store, t.id, "SB1", t0(), 0).await,
        SubscribeOutcome::Created {
            month_subscribes: 5,
            ..
        }
    ));
    // A lower limit than the count refuses with the count and that limit.
    assert_eq!(
        subscribe_and_end(&*store, t.id, "SB1", t0(), 2).await,
        SubscribeOutcome::MonthlyLimit {
            subscribes: 5,
            limit: 2
        }
    );
}

async fn a_live_duplicate_stays_a_duplicate_at_the_limit_and_tenants_count_apart(db: TestDb) {
    let store = db.handle().await;
    let t = tenant(&*store, "KEY1").await;
    let other = tenant(&*store, "KEY2").await;
    for _ in 0..3 {
        subscribe_and_end(&*store, t.id, "SB1", t0(), 4).await;
    }
    let live = created(
        store
            .subscribe_many(&[new_sub(t.id, "SB1")], 4)
            .await
            .expect("subscribe")[0],
    );
    // At its limit and still polling: the duplicate answer wins.
    assert_eq!(
        store
            .subscribe_many(&[new_sub(t.id, "SB1")], 4)
            .await
            .expect("subscribe"),
        vec![SubscribeOutcome::Duplicate { existing: live }]
    );
    // The other tenant has its own four.
    for n in 1..=4 {
        let out = subscribe_and_end(&*store, other.id, "SB1", t0(), 4).await;
        assert!(
            matches!(out, SubscribeOutcome::Created { month_subscribes, .. } if month_subscribes == n),
            "{out:?}"
        );
    }
    assert!(matches!(
        subscribe_and_end(&*store, other.id, "SB1", t0(), 4).await,
        SubscribeOutcome::MonthlyLimit {
            subscribes: 4,
            limit: 4
        }
    ));
}

async fn one_batch_with_many_subscribes_of_an_ended_waybill_creates_one(db: TestDb) {
    let store = db.handle().await;
    let t = tenant(&*store, "KEY1").await;
    for _ in 0..3 {
        subscribe_and_end(&*store, t.id, "SB1", t0(), 4).await;
    }
    let mut subs: Vec<_> = (0..6).map(|_| new_sub(t.id, "SB1")).collect();
    subs.insert(2, new_sub(t.id, "SB2"));
    let out = store.subscribe_many(&subs, 4).await.expect("subscribe");
    assert_eq!(out.len(), 7);
    let id = created(out[0]);
    assert!(matches!(
        out[0],
        SubscribeOutcome::Created {
            month_subscribes: 4,
            ..
        }
    ));
    assert!(matches!(
        out[2],
        SubscribeOutcome::Created {
            month_subscribes: 1,
            ..
        }
    ));
    for (i, o) in out.iter().enumerate().filter(|(i, _)| ![0, 2].contains(i)) {
        assert_eq!(*o, SubscribeOutcome::Duplicate { existing: id }, "row {i}");
    }
    assert!(store.cancel(id, "ended", t0()).await.expect("cancel"));
    assert!(matches!(
        store
            .subscribe_many(&subs[..1], 4)
            .await
            .expect("subscribe")[0],
        SubscribeOutcome::MonthlyLimit { subscribes: 4, .. }
    ));
}

async fn a_batch_at_the_limit_refuses_the_waybill_once_per_row(db: TestDb) {
    let store = db.handle().await;
    let t = tenant(&*store, "KEY1").await;
    for _ in 0..4 {
        subscribe_and_end(&*store, t.id, "SB1", t0(), 4).await;
    }
    let out = store
        .subscribe_many(
            &[
                new_sub(t.id, "SB1"),
                new_sub(t.id, "SB2"),
                new_sub(t.id, "SB1"),
            ],
            4,
        )
        .await
        .expect("subscribe");
    let refused = SubscribeOutcome::MonthlyLimit {
        subscribes: 4,
        limit: 4,
    };
    assert_eq!(out[0], refused);
    assert!(matches!(out[1], SubscribeOutcome::Created { .. }));
    assert_eq!(out[2], refused);
}

async fn listing_filters_by_tenant_status_company_and_number(db: TestDb) {
    let store = db.handle().await;
    let a = tenant(&*store, "KEY1").await;
    let b = tenant(&*store, "KEY2").await;
    let a_ids = subscribe_all(&*store, a.id, &numbers(4)).await;
    let b_ids = subscribe_all(&*store, b.id, &numbers(2)).await;
    let elsewhere = waybill_host::store::NewSubscription {
        company: "other".into(),
        ..new_sub(a.id, "SB0")
    };
    let other_company = created(store.subscribe(&elsewhere).await.expect("subscribe"));
    assert!(store
        .cancel(a_ids[1], "stopped", t0())
        .await
        .expect("cancel"));

    let ids = |subs: Vec<Subscription>| subs.into_iter().map(|s| s.id).collect::<Vec<_>>();
    let list = |f: SubscriptionFilter| {
        let store = store.clone();
        async move { ids(store.list_subscriptions(&f).await.expect("list")) }
    };
    let mut all: Vec<_> = a_ids.iter().chain(&b_ids).copied().collect();
    all.push(other_company);
    all.sort();
    assert_eq!(
        list(SubscriptionFilter::default()).await,
        all,
        "everything, by id"
    );
    let mut of_a: Vec<_> = a_ids.clone();
    of_a.push(other_company);
    of_a.sort();
    assert_eq!(
        list(SubscriptionFilter {
            tenant_id: Some(a.id),
            ..Default::default()
        })
        .await,
        of_a
    );
    assert_eq!(
        list(SubscriptionFilter {
            tenant_id: Some(b.id),
            ..Default::default()
        })
        .await,
        b_ids
    );
    assert_eq!(
        list(SubscriptionFilter {
            status: Some(MonitorStatus::Abort),
            ..Default::default()
        })
        .await,
        vec![a_ids[1]]
    );
    assert_eq!(
        list(SubscriptionFilter {
            company: Some("other".into()),
            ..Default::default()
        })
        .await,
        vec![other_company]
    );
    let mut sb0 = vec![a_ids[0], b_ids[0], other_company];
    sb0.sort();
    assert_eq!(
        list(SubscriptionFilter {
            number: Some("SB0".into()),
            ..Default::default()
        })
        .await,
        sb0
    );
    assert_eq!(
        list(SubscriptionFilter {
            tenant_id: Some(a.id),
            company: Some("sandbox".into()),
            number: Some("SB0".into()),
            status: Some(MonitorStatus::Polling),
            ..Default::default()
        })
        .await,
        vec![a_ids[0]]
    );
    assert!(list(SubscriptionFilter {
        number: Some("NOPE".into()),
        ..Default::default()
    })
    .await
    .is_empty());
}

async fn listing_pages_by_id_and_defaults_to_a_hundred(db: TestDb) {
    let store = db.handle().await;
    let t = tenant(&*store, "KEY1").await;
    let mut all = subscribe_all(&*store, t.id, &numbers(105)).await;
    all.sort();
    let first = store
        .list_subscriptions(&SubscriptionFilter::default())
        .await
        .expect("list");
    assert_eq!(first.len(), 100, "limit 0 is 100");
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_subscriptions(&SubscriptionFilter {
                after_id: after,
                limit: 40,
                ..Default::default()
            })
            .await
            .expect("page");
        assert!(page.len() <= 40);
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        seen.extend(page.iter().map(|s| s.id));
    }
    assert_eq!(seen, all, "every row once, in id order");
    let tail = store
        .list_subscriptions(&SubscriptionFilter {
            after_id: Some(all[102]),
            ..Default::default()
        })
        .await
        .expect("tail");
    assert_eq!(tail.iter().map(|s| s.id).collect::<Vec<_>>(), all[103..]);
}

async fn subscriptions_by_id_answers_those_that_exist(db: TestDb) {
    let store = db.handle().await;
    let t = tenant(&*store, "KEY1").await;
    let ids = subscribe_all(&*store, t.id, &numbers(3)).await;
    assert!(store
        .subscriptions_by_id(&[])
        .await
        .expect("none")
        .is_empty());
    let missing = ids.iter().max().expect("ids") + 1000;
    let got: HashSet<_> = store
        .subscriptions_by_id(&[ids[2], missing, ids[0]])
        .await
        .expect("by id")
        .into_iter()
        .map(|s| (s.id, s.number))
        .collect();
    assert_eq!(
        got,
        HashSet::from([(ids[0], "SB0".to_string()), (ids[2], "SB2".to_string())])
    );
}

async fn cancel_stops_a_polling_subscription_once_and_it_is_no_longer_due(db: TestDb) {
    let store = db.handle().await;
    let t = tenant(&*store, "KEY1").await;
    let ids = subscribe_all(&*store, t.id, &numbers(2)).await;
    assert!(store
        .cancel(ids[0], "取消订阅", hours(1))
        .await
        .expect("cancel"));
    assert!(
        !store
            .cancel(ids[0], "again", hours(2))
            .await
            .expect("cancel"),
        "not polling any more"
    );
    assert!(!store
        .cancel(ids[1] + 1000, "nobody", t0())
        .await
        .expect("cancel"));
    let s = store
        .subscription(ids[0])
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(s.status, MonitorStatus::Abort);
    assert_eq!(s.message, "取消订阅");
    assert_eq!(s.updated_at, hours(1));
    let due = store.claim_due(t0(), 10, &lease("a")).await.expect("claim");
    assert_eq!(due.iter().map(|s| s.id).collect::<Vec<_>>(), vec![ids[1]]);
    assert!(
        store.pushes_of(ids[0]).await.expect("pushes").is_empty(),
        "no push"
    );
    // A leased subscription can be cancelled too.
    assert!(store.cancel(ids[1], "stop", t0()).await.expect("cancel"));
    let s = store
        .subscription(ids[1])
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(s.status, MonitorStatus::Abort);
    assert_eq!(store.next_due().await.expect("next"), None);
}

async fn retrack_resumes_a_stopped_subscription_unless_another_of_its_waybill_is_polling(
    db: TestDb,
) {
    let store = db.handle().await;
    let t = tenant(&*store, "KEY1").await;
    let id = created(
        store
            .subscribe(&new_sub(t.id, "SB1"))
            .await
            .expect("subscribe"),
    );
    assert!(store
        .cancel(id, "3天查询无记录", t0())
        .await
        .expect("cancel"));
    assert_eq!(
        store.retrack(id + 1000, t0()).await.expect("retrack"),
        Retrack::Missing
    );

    assert_eq!(
        store.retrack(id, hours(2)).await.expect("retrack"),
        Retrack::Resumed
    );
    let s = store.subscription(id).await.expect("read").expect("exists");
    assert_eq!(s.status, MonitorStatus::Polling);
    assert_eq!(s.message, "");
    assert_eq!(s.next_check_at, hours(2));
    assert_eq!((s.lease_owner, s.lease_until), (None, None));
    assert_eq!(store.next_due().await.expect("next"), Some(hours(2)));

    // Stopped again, and the waybill subscribed anew: the old one may not come back.
    assert!(store.cancel(id, "stop", hours(2)).await.expect("cancel"));
    let live = created(
        store
            .subscribe(&new_sub(t.id, "SB1"))
            .await
            .expect("subscribe"),
    );
    assert_eq!(
        store.retrack(id, hours(3)).await.expect("retrack"),
        Retrack::Busy(live)
    );
    let s = store.subscription(id).await.expect("read").expect("exists");
    assert_eq!(
        (s.status, s.message.as_str()),
        (MonitorStatus::Abort, "stop"),
        "nothing changed"
    );
    // Another tenant's subscription of the same waybill does not make it busy.
    let other = tenant(&*store, "KEY2").await;
    let theirs = created(
        store
            .subscribe(&new_sub(other.id, "SB1"))
            .await
            .expect("subscribe"),
    );
    assert!(store
        .cancel(theirs, "stop", hours(2))
        .await
        .expect("cancel"));
    assert_eq!(
        store.retrack(theirs, hours(3)).await.expect("retrack"),
        Retrack::Resumed
    );
}

async fn webhook_secrets_become_the_salt_of_the_tenants_native_subscriptions_only(db: TestDb) {
    let store = db.handle().await;
    let t = tenant(&*store, "KEY1").await;
    let other = tenant(&*store, "KEY2").await;
    let native_sub = |tenant, number: &str| waybill_host::store::NewSubscription {
        dialect: native::NAME.into(),
        salt: Some("old".into()),
        ..new_sub(tenant, number)
    };
    let mine = created(
        store
            .subscribe(&native_sub(t.id, "SB1"))
            .await
            .expect("subscribe"),
    );
    let kuaidi100 = created(
        store
            .subscribe(&new_sub(t.id, "SB2"))
            .await
            .expect("subscribe"),
    );
    let theirs = created(
        store
            .subscribe(&native_sub(other.id, "SB1"))
            .await
            .expect("subscribe"),
    );
    assert_eq!(
        store
            .tenant(t.id)
            .await
            .expect("read")
            .expect("exists")
            .webhook_secrets,
        None
    );

    let secrets = r#"{"current":"whsec_abc","previous":null}"#;
    assert!(store.set_webhook_secrets(t.id, secrets).await.expect("set"));
    assert_eq!(
        store
            .tenant(t.id)
            .await
            .expect("read")
            .expect("exists")
            .webhook_secrets
            .as_deref(),
        Some(secrets)
    );
    let salt = |id| {
        let store = store.clone();
        async move {
            store
                .subscription(id)
                .await
                .expect("read")
                .expect("exists")
                .salt
        }
    };
    assert_eq!(salt(mine).await.as_deref(), Some(secrets));
    assert_eq!(
        salt(kuaidi100).await.as_deref(),
        Some("SALT"),
        "another dialect keeps its salt"
    );
    assert_eq!(
        salt(theirs).await.as_deref(),
        Some("old"),
        "another tenant keeps its salt"
    );
    assert_eq!(
        store
            .tenant(other.id)
            .await
            .expect("read")
            .expect("exists")
            .webhook_secrets,
        None
    );
    assert!(!store
        .set_webhook_secrets(other.id + t.id + 1000, secrets)
        .await
        .expect("set"));
}

async fn public_ids_are_the_same_on_every_handle_and_name_rows_only_for_their_tenant(db: TestDb) {
    let store = db.handle().await;
    let (a, b) = (tenant(&*store, "KEY1").await, tenant(&*store, "KEY2").await);
    let id = created(
        store
            .subscribe(&new_sub(a.id, "SB1"))
            .await
            .expect("subscribe"),
    );
    let public = store.tracking_id(id, a.id);
    assert!(public.starts_with("trk_") && public.len() == 26, "{public}");
    let read = store.subscription(id).await.expect("read").expect("exists");
    assert_eq!(read.public_id, public, "the row read back carries it");
    // Another daemon on the same database names the row alike.
    let other = db.handle().await;
    assert_eq!(other.tracking_id(id, a.id), public);
    assert_eq!(other.tracking_row(&public, a.id), Some(id));
    assert_eq!(store.tracking_row(&public, b.id), None, "another tenant's");
    assert_eq!(store.tracking_row(&id.to_string(), a.id), None, "a row id");
}

contract! {
    a_subscription_round_trips_with_all_fields,
    public_ids_are_the_same_on_every_handle_and_name_rows_only_for_their_tenant,
    a_new_subscription_has_an_empty_trace_and_a_missing_one_none,
    a_second_live_subscription_of_a_waybill_is_a_duplicate_but_counts_usage_once,
    the_fifth_subscribe_of_a_waybill_in_a_month_is_refused_and_next_month_allowed,
    a_live_duplicate_stays_a_duplicate_at_the_limit_and_tenants_count_apart,
    one_batch_with_many_subscribes_of_an_ended_waybill_creates_one,
    a_batch_at_the_limit_refuses_the_waybill_once_per_row,
    listing_filters_by_tenant_status_company_and_number,
    listing_pages_by_id_and_defaults_to_a_hundred,
    subscriptions_by_id_answers_those_that_exist,
    cancel_stops_a_polling_subscription_once_and_it_is_no_longer_due,
    retrack_resumes_a_stopped_subscription_unless_another_of_its_waybill_is_polling,
    webhook_secrets_become_the_salt_of_the_tenants_native_subscriptions_only,
}
