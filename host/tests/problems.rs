//! `waybill problems` from a real store: time-based problems appear without a new carrier
//! event, reported ones at once, each with its reason; filters by kind, carrier and age.

use jiff::{SignedDuration, Timestamp};
use waybill_core::eta::Lanes;
use waybill_core::model::{EventTime, Trace, TrackEvent, CHINA_OFFSET};
use waybill_core::problem::{FlagKind, Thresholds};
use waybill_core::state::State;
use waybill_host::problems::{problem_parcels, ProblemFilter};
use waybill_host::store::{
    CheckOutcome, Lease, MonitorStatus, NewSubscription, NewTenant, SqliteStore, Store,
    SubscribeOptions, SubscribeOutcome,
};

fn t0() -> Timestamp {
    "2026-05-01T00:00:00Z".parse().unwrap()
}

fn h(n: i64) -> SignedDuration {
    SignedDuration::from_hours(n)
}

async fn subscribe(store: &SqliteStore, tenant: i64, company: &str, number: &str) -> i64 {
    let outcome = store
        .subscribe(&NewSubscription {
            tenant_id: tenant,
            company: company.into(),
            number: number.into(),
            phone: None,
            from: None,
            to: None,
            callback_url: "http://203.0.113.9/cb".into(),
            salt: None,
            dialect: "kuaidi100".into(),
            dialect_params: Default::default(),
            options: SubscribeOptions::default(),
            next_check_at: t0(),
            created_at: t0(),
        })
        .await
        .unwrap();
    match outcome {
        SubscribeOutcome::Created { id, .. } => id,
        other => panic!("not created: {other:?}"),
    }
}

/// Stores `events` (hours after t0, text, state) as the subscription's trace.
/// `round` keeps each claim's lease clock past the leases the previous rounds left.
async fn record(
    store: &SqliteStore,
    round: i64,
    company: &str,
    number: &str,
    events: &[(i64, &str, State)],
) {
    let claimed = store
        .claim_due(
            t0() + h(1),
            100,
            &Lease::new("w", t0() + h(2 * round), h(1)),
        )
        .await
        .unwrap();
    let sub = claimed
        .iter()
        .find(|s| s.number == number)
        .expect("claimed");
    let data = events
        .iter()
        .map(|&(at, text, state)| {
            TrackEvent::new(EventTime::new(t0() + h(at), CHINA_OFFSET), text, state)
        })
        .collect();
    let trace = Trace::from_events(company, number, data);
    store
        .complete_check(&CheckOutcome {
            subscription_id: sub.id,
            lease_owner: "w".into(),
            checked_at: t0() + h(1),
            status: MonitorStatus::Polling,
            message: String::new(),
            next_check_at: t0() + h(400),
            new_trace: Some((trace, format!("hash-{number}"))),
            correction: None,
            error: None,
            pushes: Vec::new(),
            problems: None,
            eta: None,
            lesson: None,
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn problem_parcels_carry_their_reasons_and_filters_apply() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_dir(dir.path()).await.unwrap();
    let tenant = store
        .create_tenant(
            &NewTenant {
                name: "shop".into(),
                key: "PROBLEMKEY".into(),
                customer: None,
            },
            t0(),
        )
        .await
        .unwrap()
        .id;
    subscribe(&store, tenant, "sandbox", "SB-SILENT").await;
    subscribe(&store, tenant, "sandbox", "SB-LOCKER").await;
    subscribe(&store, tenant, "shunfeng", "SF-REFUSED").await;
    subscribe(&store, tenant, "sandbox", "SB-FINE").await;
    record(
        &store,
        0,
        "sandbox",
        "SB-LOCKER",
        &[
            (0, "快件已揽收", State::Collected),
            (2, "快件已存放至丰巢智能柜，请凭取件码取件", State::InLocker),
        ],
    )
    .await;
    record(
        &store,
        1,
        "shunfeng",
        "SF-REFUSED",
        &[
            (0, "快件已揽收", State::Collected),
            (3, "收件人拒收，快件将退回", State::Refused),
        ],
    )
    .await;
    record(
        &store,
        2,
        "sandbox",
        "SB-FINE",
        &[(0, "快件已揽收", State::Collected)],
    )
    .await;

    let thresholds = Thresholds::default();
    let lanes = Lanes::default();
    let all = ProblemFilter::default();
    // 21 h after t0: the locker parcel has waited 19 h (threshold 18 h); the silent one
    // is still inside its 24 h; the refusal counts at once.
    let now = t0() + h(21);
    let found = problem_parcels(&store, &lanes, &thresholds, &all, now)
        .await
        .unwrap();
    let kinds: Vec<(&str, FlagKind)> = found
        .iter()
        .flat_map(|p| p.flags.iter().map(|f| (p.number.as_str(), f.kind)))
        .collect();
    assert_eq!(
        kinds,
        [
            ("SB-LOCKER", FlagKind::LockerTimeout),
            ("SF-REFUSED", FlagKind::Refused)
        ]
    );
    let locker = &found[0].flags[0];
    assert_eq!(locker.since, t0() + h(20));
    assert!(
        locker.reason.contains("19 h") && locker.reason.contains("18 h"),
        "{}",
        locker.reason
    );

    // 26 h after subscribing the silent parcel is a 401; the fine one is no 403 before 5 d.
    let later = t0() + h(26);
    let found = problem_parcels(&store, &lanes, &thresholds, &all, later)
        .await
        .unwrap();
    assert!(found
        .iter()
        .any(|p| p.number == "SB-SILENT" && p.flags[0].kind == FlagKind::NoShippingInfo));
    assert!(!found.iter().any(|p| p.number == "SB-FINE"));
    let week = t0() + h(24 * 6);
    let found = problem_parcels(&store, &lanes, &thresholds, &all, week)
        .await
        .unwrap();
    assert!(found
        .iter()
        .any(|p| p.number == "SB-FINE" && p.flags[0].kind == FlagKind::NotUpdatedInTime));

    // Filters: kind, carrier, age.
    let only = |f: ProblemFilter| {
        let store = &store;
        let thresholds = &thresholds;
        async move {
            problem_parcels(store, &Lanes::default(), thresholds, &f, now)
                .await
                .unwrap()
                .into_iter()
                .map(|p| p.number)
                .collect::<Vec<_>>()
        }
    };
    let by_kind = ProblemFilter {
        kinds: vec![FlagKind::Refused],
        ..ProblemFilter::default()
    };
    assert_eq!(only(by_kind).await, ["SF-REFUSED"]);
    let by_carrier = ProblemFilter {
        carrier: Some("sandbox".into()),
        ..ProblemFilter::default()
    };
    assert_eq!(only(by_carrier).await, ["SB-LOCKER"]);
    // The locker flag is 1 h old at `now`, the refusal 18 h.
    let old = ProblemFilter {
        older_than: Some(h(2)),
        ..ProblemFilter::default()
    };
    assert_eq!(only(old).await, ["SF-REFUSED"]);
}
