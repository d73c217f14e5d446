//! The tenants, subscriptions, checks and pushes the contract tests are made of, built
//! through the trait only.

use jiff::{SignedDuration, Timestamp};
use waybill_core::model::{EventTime, Trace, TrackEvent, CHINA_OFFSET};
use waybill_core::state::State;
use waybill_host::store::{
    Change, CheckOutcome, Lease, MonitorStatus, NewPush, NewSubscription, NewTenant, OutboxPush,
    PushHeader, Store, SubscribeOptions, SubscribeOutcome, SubscriptionId, Tenant, TenantId,
};

/// The instant every test starts at: 2024-05-01 08:00 at UTC+8, early in billing month
/// 2024-05.
pub fn t0() -> Timestamp {
    "2024-05-01T00:00:00Z".parse().expect("valid timestamp")
}

/// `n` minutes after [`t0`].
pub fn mins(n: i64) -> Timestamp {
    t0() + SignedDuration::from_mins(n)
}

/// `n` hours after [`t0`].
pub fn hours(n: i64) -> Timestamp {
    t0() + SignedDuration::from_hours(n)
}

/// A lease for `owner` taken at [`t0`] on the lease clock, for five minutes.
pub fn lease(owner: &str) -> Lease<'_> {
    Lease::new(owner, t0(), SignedDuration::from_mins(5))
}

/// Creates a tenant with key `key` and no customer id.
pub async fn tenant(store: &dyn Store, key: &str) -> Tenant {
    store
        .create_tenant(
            &NewTenant {
                name: format!("shop {key}"),
                key: key.into(),
                customer: None,
            },
            t0(),
        )
        .await
        .expect("tenant")
}

/// A kuaidi100 subscription of sandbox waybill `number`, due at [`t0`].
pub fn new_sub(tenant: TenantId, number: &str) -> NewSubscription {
    NewSubscription {
        tenant_id: tenant,
        company: "sandbox".into(),
        number: number.into(),
        phone: Some("1234".into()),
        from: None,
        to: Some("北京市朝阳区".into()),
        callback_url: "http://example.com/cb".into(),
        salt: Some("SALT".into()),
        dialect: "kuaidi100".into(),
        dialect_params: Default::default(),
        options: SubscribeOptions {
            resultv2: 4,
            ..SubscribeOptions::default()
        },
        next_check_at: t0(),
        created_at: t0(),
    }
}

/// The id of a created subscription; panics on any other outcome.
pub fn created(o: SubscribeOutcome) -> SubscriptionId {
    match o {
        SubscribeOutcome::Created { id, .. } => id,
        other => panic!("expected Created, got {other:?}"),
    }
}

/// Subscribes every number (no monthly limit) and returns their ids, in order.
pub async fn subscribe_all(store: &dyn Store, tenant: TenantId, numbers: &[String]) -> Vec<i64> {
    let subs: Vec<_> = numbers.iter().map(|n| new_sub(tenant, n)).collect();
    store
        .subscribe_many(&subs, 0)
        .await
        .expect("subscribe")
        .into_iter()
        .map(created)
        .collect()
}

/// `SB0`, `SB1`, … `SB<n-1>`.
pub fn numbers(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("SB{i}")).collect()
}

/// Subscribes `number` for `tenant` at `at` and, when created, ends it at once (as an
/// abort or shutdown would), so the next subscribe is not a live duplicate.
pub async fn subscribe_and_end(
    store: &dyn Store,
    tenant: TenantId,
    number: &str,
    at: Timestamp,
    limit: u32,
) -> SubscribeOutcome {
    let mut sub = new_sub(tenant, number);
    sub.created_at = at;
    let out = store
        .subscribe_many(&[sub], limit)
        .await
        .expect("subscribe")
        .remove(0);
    if let SubscribeOutcome::Created { id, .. } = out {
        assert!(store.cancel(id, "ended", at).await.expect("cancel"));
    }
    out
}

/// A sandbox trace of `n` events an hour apart from [`t0`] (collected, then in transit),
/// in the order a carrier would list them.
pub fn trace_of(n: usize) -> Trace {
    let events = (0..n)
        .map(|i| TrackEvent {
            time: EventTime::new(hours(i as i64), CHINA_OFFSET),
            context: format!("line {i}"),
            location: Some(format!("站点 {i}")),
            area_code: Some("110000000000".into()),
            area_name: Some("北京市".into()),
            state: if i == 0 {
                State::Collected
            } else {
                State::InTransit
            },
            raw_code: Some(format!("{i}")),
            rule: Some("test".into()),
        })
        .collect();
    Trace::from_events("sandbox", "SB1", events)
}

/// A change told apart from others by its message.
pub fn numbered_change(i: usize) -> Change {
    Change::new(
        PushHeader::new(MonitorStatus::Polling, format!("push {i}")),
        Trace::from_events("sandbox", "SB1", vec![]),
    )
}

/// A plain check of subscription `id` by `owner` at [`t0`]: still polling, next check in
/// four hours, no new trace, and `pushes` pushes to the default callback.
pub fn outcome(id: SubscriptionId, owner: &str, pushes: usize) -> CheckOutcome {
    CheckOutcome {
        subscription_id: id,
        lease_owner: owner.into(),
        checked_at: t0(),
        status: MonitorStatus::Polling,
        message: String::new(),
        next_check_at: hours(4),
        new_trace: None,
        correction: None,
        error: None,
        pushes: (0..pushes)
            .map(|i| NewPush {
                url: "http://example.com/cb".into(),
                change: numbered_change(i),
            })
            .collect(),
        problems: None,
        eta: None,
        lesson: None,
    }
}

/// Claims (as "setup") and checks every due subscription, queueing `pushes` pushes for
/// each to its own callback URL.
pub async fn check_all(store: &dyn Store, pushes: usize) {
    loop {
        let claimed = store
            .claim_due(t0(), 500, &lease("setup"))
            .await
            .expect("claim");
        if claimed.is_empty() {
            return;
        }
        let outcomes: Vec<_> = claimed
            .iter()
            .map(|s| {
                let mut o = outcome(s.id, "setup", pushes);
                for p in &mut o.pushes {
                    p.url = s.callback_url.clone();
                }
                o
            })
            .collect();
        let written = store.complete_checks(&outcomes).await.expect("complete");
        assert!(written.iter().all(|w| *w));
    }
}

/// A new waybill `number` of a new tenant `key`, checked once and left with `pushes`
/// pending pushes.
pub async fn waybill_with_pushes(
    store: &dyn Store,
    key: &str,
    number: &str,
    pushes: usize,
) -> SubscriptionId {
    let t = tenant(store, key).await;
    let id = created(
        store
            .subscribe(&new_sub(t.id, number))
            .await
            .expect("subscribe"),
    );
    check_all(store, pushes).await;
    id
}

/// Claims every push due at `now` (as `owner`), one claim of up to `limit`.
pub async fn claim_pushes(
    store: &dyn Store,
    now: Timestamp,
    limit: u32,
    owner: &str,
) -> Vec<OutboxPush> {
    store
        .claim_pushes(
            now,
            limit,
            &Lease::new(owner, now, SignedDuration::from_mins(1)),
        )
        .await
        .expect("claim pushes")
}

/// Claims and dead-letters every push pending at `now`, each in turn.
pub async fn kill_every_push(store: &dyn Store, now: Timestamp) -> usize {
    let mut killed = 0;
    loop {
        let claimed = claim_pushes(store, now, 100, "killer").await;
        if claimed.is_empty() {
            return killed;
        }
        for p in claimed {
            store
                .push_dead(&p.push_id, "killer", "gave up", now)
                .await
                .expect("dead");
            killed += 1;
        }
    }
}
