//! Store throughput: subscriptions per durable commit (group commit) and a scheduler
//! claim + complete cycle, on a temp-dir SQLite file with synchronous=FULL.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use jiff::{SignedDuration, Timestamp};
use waybill_host::store::{
    CheckOutcome, Lease, MonitorStatus, NewSubscription, NewTenant, SqliteStore, Store,
    SubscribeOptions,
};

fn t0() -> Timestamp {
    "2024-05-01T00:00:00Z".parse().expect("ts")
}

fn sub(tenant: i64, n: u64, at: Timestamp) -> NewSubscription {
    NewSubscription {
        tenant_id: tenant,
        company: "sandbox".into(),
        number: format!("SB{n:012}"),
        phone: None,
        from: None,
        to: Some("北京市-北京市-朝阳区".into()),
        callback_url: "http://receiver.example/cb".into(),
        salt: Some("SALT".into()),
        dialect: "kuaidi100".into(),
        dialect_params: Default::default(),
        options: SubscribeOptions::default(),
        next_check_at: at,
        created_at: at,
    }
}

fn setup(rt: &tokio::runtime::Runtime) -> (tempfile::TempDir, Arc<SqliteStore>, i64) {
    let dir = tempfile::tempdir().expect("dir");
    let store = rt
        .block_on(SqliteStore::open_dir(dir.path()))
        .expect("store");
    let tenant = rt
        .block_on(store.create_tenant(
            &NewTenant {
                name: "bench".into(),
                key: "KEY".into(),
                customer: None,
            },
            t0(),
        ))
        .expect("tenant");
    (dir, Arc::new(store), tenant.id)
}

fn subscribe(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (_dir, store, tenant) = setup(&rt);
    let next = AtomicU64::new(0);
    let mut group = c.benchmark_group("subscribe_many");
    group.sample_size(20);
    for batch in [1u64, 100, 1000] {
        group.throughput(Throughput::Elements(batch));
        group.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, &batch| {
            b.iter(|| {
                let start = next.fetch_add(batch, Ordering::Relaxed);
                let subs: Vec<_> = (start..start + batch)
                    .map(|n| sub(tenant, n, t0()))
                    .collect();
                rt.block_on(store.subscribe_many(&subs, 4))
                    .expect("subscribe")
            })
        });
    }
    group.finish();
}

fn check_cycle(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (_dir, store, tenant) = setup(&rt);
    let subs: Vec<_> = (0..20_000).map(|n| sub(tenant, n, t0())).collect();
    for chunk in subs.chunks(1000) {
        rt.block_on(store.subscribe_many(chunk, 4))
            .expect("subscribe");
    }
    let mut round = 0i64;
    let mut group = c.benchmark_group("scheduler");
    group.sample_size(20);
    group.throughput(Throughput::Elements(100));
    group.bench_function("claim_100_and_complete_each", |b| {
        b.iter(|| {
            round += 1;
            // Completed rows fall due again at once, so every round finds 100 due rows.
            let now = t0() + SignedDuration::from_secs(round);
            rt.block_on(async {
                let claimed = store
                    .claim_due(
                        now,
                        100,
                        &Lease::new("bench", now, SignedDuration::from_mins(5)),
                    )
                    .await
                    .expect("claim");
                for s in claimed {
                    store
                        .complete_check(&CheckOutcome {
                            subscription_id: s.id,
                            lease_owner: "bench".into(),
                            checked_at: now,
                            status: MonitorStatus::Polling,
                            message: String::new(),
                            next_check_at: now,
                            new_trace: None,
                            correction: None,
                            error: None,
                            pushes: vec![],
                            problems: None,
                            eta: None,
                            lesson: None,
                        })
                        .await
                        .expect("complete");
                }
            })
        })
    });
    group.bench_function("claim_100_and_complete_in_one_transaction", |b| {
        b.iter(|| {
            round += 1;
            // Completed rows fall due again at once, so every round finds 100 due rows.
            let now = t0() + SignedDuration::from_secs(round);
            rt.block_on(async {
                let claimed = store
                    .claim_due(
                        now,
                        100,
                        &Lease::new("bench", now, SignedDuration::from_mins(5)),
                    )
                    .await
                    .expect("claim");
                let outcomes: Vec<_> = claimed
                    .iter()
                    .map(|s| CheckOutcome {
                        subscription_id: s.id,
                        lease_owner: "bench".into(),
                        checked_at: now,
                        status: MonitorStatus::Polling,
                        message: String::new(),
                        next_check_at: now,
                        new_trace: None,
                        correction: None,
                        error: None,
                        pushes: vec![],
                        problems: None,
                        eta: None,
                        lesson: None,
                    })
                    .collect();
                store.complete_checks(&outcomes).await.expect("complete");
            })
        })
    });
    group.finish();
}

criterion_group!(benches, subscribe, check_cycle);
criterion_main!(benches);
