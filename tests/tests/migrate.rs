//! `waybill migrate`: the SQLite store of a sandbox run (tenants, finished and running
//! subscriptions with traces, delivered, pending and dead pushes, usage, lanes, a cached
//! query, an idempotent answer, a disabled endpoint, a legacy push without an endpoint)
//! copied into a fresh PostgreSQL database reads the same there, with the same key, the
//! same tenant keys and the same push ids; a second copy into it is refused.
//!
//! Runs only when `WAYBILL_TEST_DATABASE_URL` names a PostgreSQL server (CI sets it); the
//! test creates its own database there and drops it whichever way the test ends.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use sqlx::{Connection, SqliteConnection};
use tokio::process::Command;
use waybill_core::clock::{Clock, ManualClock};
use waybill_host::engine::EngineConfig;
use waybill_host::latency::{LatencyProbe, VirtualDriver};
use waybill_host::push::{PushConfig, RetryPolicy};
use waybill_host::receiver::{Flakiness, Receiver};
use waybill_host::sandbox::{sandbox_numbers, SandboxOptions, SandboxStack};
use waybill_host::store::copy::TABLES;
use waybill_host::store::secrets::{key_file, SecretKey, SECRET_KEY_ENV};
use waybill_host::store::{
    IdempotentAnswer, NewTenant, PgStore, SqliteStore, Store, Subscription, SubscriptionFilter,
    POSTGRES_KEY_FILE,
};

use crate::support::{free_port, target_dir, waybill_bin, TestDatabase};

const DATABASE_URL_ENV: &str = "WAYBILL_TEST_DATABASE_URL";

/// Fills the store in `data_dir` with a sandbox run: healthy, flaky and unreachable
/// receivers, stopped part way so some parcels are still travelling.
async fn sandbox_run(data_dir: &Path) {
    let healthy = Receiver::start("salt-h", Flakiness::default())
        .await
        .expect("receiver");
    let flaky = Receiver::start(
        "salt-f",
        Flakiness {
            fail_rate: 0.5,
            hang_rate: 0.0,
            hang: Duration::ZERO,
            seed: 3,
        },
    )
    .await
    .expect("receiver");
    // Nothing listens at these: every push to them fails until it is dead. The first is
    // disabled at the end, the second (failing for a shorter time) stays a failing one.
    let gone = format!("http://127.0.0.1:{}/push", free_port());
    let gone_later = format!("http://127.0.0.1:{}/push", free_port());

    let t0: Timestamp = "2024-06-18T08:00:00+08:00".parse().expect("ts");
    let clock = Arc::new(ManualClock::new(t0));
    let mut options = SandboxOptions::new(data_dir);
    options.plugin_dir = Some(target_dir());
    options.sim.seed = 11;
    options.engine = EngineConfig {
        push_timeout: SignedDuration::from_secs(2),
        allow_private_callbacks: true,
        push: PushConfig {
            retry: RetryPolicy::Exponential {
                first: SignedDuration::from_mins(30),
                factor: 2.0,
                max_delay: SignedDuration::from_hours(4),
                total: SignedDuration::from_hours(12),
            },
            ..PushConfig::default()
        },
        ..EngineConfig::default()
    };
    let stack = SandboxStack::start(options, clock.clone())
        .await
        .expect("stack");
    let th = stack
        .tenant("healthy", "KEY-HEALTHY")
        .await
        .expect("tenant");
    let tf = stack.tenant("flaky", "KEY-FLAKY").await.expect("tenant");
    let tg = stack.tenant("gone", "KEY-GONE").await.expect("tenant");
    for (tenant, prefix, n, url, salt) in [
        (&th, "SBMH", 400, healthy.url(), "salt-h"),
        (&tf, "SBMF", 150, flaky.url(), "salt-f"),
        (&tg, "SBMG", 50, gone.clone(), "salt-g"),
    ] {
        let numbers = sandbox_numbers(prefix, n);
        assert_eq!(
            stack
                .subscribe(tenant, &numbers, &url, salt)
                .await
                .expect("subscribe"),
            n
        );
    }
    let driver = VirtualDriver {
        engine: stack.engine.clone(),
        clock: clock.clone(),
        probe: LatencyProbe::new(),
        quantum: SignedDuration::from_mins(30),
    };
    driver
        .run_until(t0 + SignedDuration::from_hours(24 * 2))
        .await
        .expect("run");
    let numbers = sandbox_numbers("SBMX", 30);
    assert_eq!(
        stack
            .subscribe(&tg, &numbers, &gone_later, "salt-g")
            .await
            .expect("subscribe"),
        30
    );
    driver
        .run_until(t0 + SignedDuration::from_hours(24 * 4))
        .await
        .expect("run");

    // The tables a sandbox run leaves empty, one row each through the store.
    let store = stack.store.clone();
    let now = clock.now();
    store
        .set_webhook_secrets(
            th.id,
            r#"[{"secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}]"#,
        )
        .await
        .expect("webhook secrets");
    store
        .set_kdniao_push_url(tf.id, Some("https://shop.example/kdniao"))
        .await
        .expect("kdniao url");
    store
        .create_tenant(
            &NewTenant {
                name: "with customer".into(),
                key: "KEY-CUSTOMER".into(),
                customer: Some("CUSTOMER-1".into()),
            },
            now,
        )
        .await
        .expect("tenant");
    let first = store
        .list_subscriptions(&Default::default())
        .await
        .expect("list");
    let trace = store
        .trace(first[0].id)
        .await
        .expect("trace")
        .expect("a trace");
    store
        .save_query("sandbox", "SBMQ000000001", &trace, now)
        .await
        .expect("save query");
    store
        .save_idempotent_answer(
            th.id,
            "idem-1",
            &IdempotentAnswer {
                fingerprint: "f1".into(),
                status: 200,
                body: r#"{"result":true}"#.into(),
            },
            now,
            now - SignedDuration::from_hours(24),
        )
        .await
        .expect("idempotent answer");
    store
        .disable_failing_endpoints(t0 + SignedDuration::from_hours(36), now)
        .await
        .expect("disable");
    let stats = store.stats().await.expect("stats");
    eprintln!("migrate: sandbox store {stats:?}");
    assert!(
        stats.polling > 0 && stats.shutdown + stats.abort > 0,
        "running and ended subscriptions: {stats:?}"
    );
    assert!(
        stats.delivered_pushes > 0 && stats.pending_pushes > 0 && stats.dead_pushes > 0,
        "delivered, pending and dead pushes: {stats:?}"
    );
    stack.shutdown().await.expect("shutdown");
    store.close().await;
    healthy.stop();
    flaky.stop();
}

async fn migrate(from: &Path, to: &str, data_dir: &Path) -> std::process::Output {
    Command::new(waybill_bin())
        .arg("migrate")
        .arg("--from")
        .arg(from)
        .args(["--to", to])
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove(SECRET_KEY_ENV)
        .output()
        .await
        .expect("waybill migrate runs")
}

async fn counts_sqlite(store: &SqliteStore) -> Vec<(&'static str, i64)> {
    let mut out = Vec::new();
    for table in TABLES {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(store.read_pool())
            .await
            .expect("count");
        out.push((table, n));
    }
    out
}

async fn counts_pg(store: &PgStore) -> Vec<(&'static str, i64)> {
    let mut out = Vec::new();
    for table in TABLES {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(store.pool())
            .await
            .expect("count");
        out.push((table, n));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migrated_store_reads_the_same_in_postgres_with_the_same_keys_and_push_ids_and_a_second_migrate_is_refused(
) {
    let Ok(server_url) = std::env::var(DATABASE_URL_ENV) else {
        eprintln!("migrate: {DATABASE_URL_ENV} is not set; skipped");
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let sqlite_dir = dir.path().join("sqlite");
    let db_file = sqlite_dir.join("waybill.db");
    sandbox_run(&sqlite_dir).await;
    // A push queued before outbox.endpoint existed (migration 0005) keeps NULL there.
    let legacy_push: i64 = {
        let mut conn = SqliteConnection::connect(&format!("sqlite:{}", db_file.display()))
            .await
            .expect("sqlite");
        let id = sqlx::query_scalar(
            "UPDATE outbox SET endpoint = NULL WHERE id = (SELECT min(id) FROM outbox) \
             RETURNING id",
        )
        .fetch_one(&mut conn)
        .await
        .expect("a legacy push");
        conn.close().await.expect("close");
        id
    };

    let db = TestDatabase::create(&server_url, "migrate").await;
    let pg_dir = dir.path().join("pg");
    let started = Instant::now();
    let out = migrate(&db_file, &db.url, &pg_dir).await;
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "migrate: took {took:?}\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "waybill migrate failed");
    assert!(stdout.contains("TABLE") && stdout.contains("subscriptions"));
    assert!(stdout.contains(POSTGRES_KEY_FILE), "says where the key is");

    // The key file is the SQLite store's key, private.
    let pg_key = pg_dir.join(POSTGRES_KEY_FILE);
    assert_eq!(
        std::fs::read_to_string(&pg_key).expect("postgres.key written"),
        std::fs::read_to_string(key_file(&db_file)).expect("the SQLite key")
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&pg_key)
            .expect("key")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }

    let source = SqliteStore::open_file(&db_file).await.expect("source");
    let key = SecretKey::from_hex(
        &std::fs::read_to_string(&pg_key).expect("key"),
        "postgres.key",
    )
    .expect("key");
    let target = PgStore::open(&db.url, key, 2)
        .await
        .expect("the copy opens with the written key");

    let before = counts_sqlite(&source).await;
    assert_eq!(counts_pg(&target).await, before, "rows per table");
    for (table, n) in &before {
        assert!(*n > 0, "the sandbox data has rows in {table}");
    }
    assert_eq!(
        source.stats().await.expect("stats"),
        target.stats().await.expect("stats")
    );

    // Every subscription, not a sample: the data is small enough.
    let mut subs: Vec<Subscription> = Vec::new();
    loop {
        let page = source
            .list_subscriptions(&SubscriptionFilter {
                after_id: subs.last().map(|s| s.id),
                limit: 1_000,
                ..SubscriptionFilter::default()
            })
            .await
            .expect("list");
        if page.is_empty() {
            break;
        }
        subs.extend(page);
    }
    assert_eq!(subs.len() as i64, before[1].1);
    for sub in &subs {
        assert_eq!(
            target.subscription(sub.id).await.expect("read").as_ref(),
            Some(sub)
        );
        assert_eq!(
            target.trace(sub.id).await.expect("trace"),
            source.trace(sub.id).await.expect("trace"),
            "trace of {}",
            sub.id
        );
        let pushes = source.pushes_of(sub.id).await.expect("pushes");
        assert_eq!(target.pushes_of(sub.id).await.expect("pushes"), pushes);
        assert_eq!(target.push_prefix(sub.id), source.push_prefix(sub.id));
        for push in &pushes {
            assert!(
                push.push_id.starts_with(&target.push_prefix(sub.id)),
                "{} is the id PostgreSQL would give it",
                push.push_id
            );
        }
    }
    for tenant in source.list_tenants().await.expect("tenants") {
        let found = target.tenant_by_key(&tenant.key).await.expect("by key");
        assert_eq!(found.as_ref(), Some(&tenant), "tenant {}", tenant.name);
    }
    let healthy = target
        .tenant_by_key("KEY-HEALTHY")
        .await
        .expect("by key")
        .expect("the tenant's key still authenticates");
    assert!(healthy.webhook_secrets.is_some(), "sealed secrets open");
    let endpoint: Option<String> = sqlx::query_scalar("SELECT endpoint FROM outbox WHERE id = $1")
        .bind(legacy_push)
        .fetch_one(target.pool())
        .await
        .expect("legacy push");
    assert_eq!(endpoint, None, "a NULL endpoint stays NULL");

    // The identity sequences start past the copied ids.
    let max_tenant = sqlx::query_scalar::<_, i64>("SELECT max(id) FROM tenants")
        .fetch_one(target.pool())
        .await
        .expect("max");
    let created = target
        .create_tenant(
            &NewTenant {
                name: "after the move".into(),
                key: "KEY-AFTER".into(),
                customer: None,
            },
            Timestamp::now(),
        )
        .await
        .expect("a new tenant gets a fresh id");
    assert_eq!(created.id, max_tenant + 1);

    // Into a database that now has rows: refused, nothing added.
    let after_first = counts_pg(&target).await;
    let again = migrate(&db_file, &db.url, &pg_dir).await;
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success(), "a second migrate must fail");
    assert!(stderr.contains("not empty"), "{stderr}");
    assert_eq!(counts_pg(&target).await, after_first, "nothing copied");

    target.close().await;
    source.close().await;
    let rows: i64 = before.iter().map(|(_, n)| n).sum();
    eprintln!("migrate: {rows} rows copied and checked in {took:?}");
}
