//! Tenants: unique keys and customer ids, lookups, access, per-tenant settings.

use jiff::SignedDuration;
use waybill_host::store::{NewTenant, StoreError};

use crate::fixtures::{t0, tenant};
use crate::harness::TestDb;

fn new_tenant(key: &str, customer: Option<&str>) -> NewTenant {
    NewTenant {
        name: format!("shop {key}"),
        key: key.into(),
        customer: customer.map(Into::into),
    }
}

async fn tenant_keys_are_unique(db: TestDb) {
    let store = db.handle().await;
    tenant(&*store, "KEY1").await;
    let err = store
        .create_tenant(&new_tenant("KEY1", None), t0())
        .await
        .expect_err("duplicate key");
    assert!(matches!(err, StoreError::DuplicateTenantKey), "{err}");
    assert_eq!(store.list_tenants().await.expect("list").len(), 1);
}

async fn a_customer_id_belongs_to_one_tenant(db: TestDb) {
    let store = db.handle().await;
    store
        .create_tenant(&new_tenant("KEY1", Some("CUST1")), t0())
        .await
        .expect("tenant");
    let err = store
        .create_tenant(&new_tenant("KEY2", Some("CUST1")), t0())
        .await
        .expect_err("duplicate customer");
    assert!(matches!(err, StoreError::DuplicateCustomer), "{err}");
    assert_eq!(store.list_tenants().await.expect("list").len(), 1);
    // Tenants without a customer id, and with another one, are fine.
    for (key, customer) in [("KEY3", None), ("KEY4", None), ("KEY5", Some("CUST2"))] {
        store
            .create_tenant(&new_tenant(key, customer), t0())
            .await
            .expect("created");
    }
    assert_eq!(store.list_tenants().await.expect("list").len(), 4);
}

async fn a_tenant_reads_back_by_key_by_id_and_in_the_list_by_id(db: TestDb) {
    let store = db.handle().await;
    let made = store
        .create_tenant(&new_tenant("7D3F0C9A51B2E8E4", Some("CUST1")), t0())
        .await
        .expect("tenant");
    assert_eq!(made.key, "7D3F0C9A51B2E8E4");
    assert_eq!(made.customer.as_deref(), Some("CUST1"));
    assert_eq!(made.created_at, t0());
    assert!(!made.disabled);
    assert_eq!(made.expires_at, None);
    assert_eq!(made.kdniao_push_url, None);
    let second = tenant(&*store, "KEY2").await;
    assert_ne!(made.id, second.id);

    assert_eq!(
        store
            .tenant_by_key("7D3F0C9A51B2E8E4")
            .await
            .expect("by key"),
        Some(made.clone())
    );
    assert_eq!(store.tenant_by_key("NOPE").await.expect("by key"), None);
    assert_eq!(
        store.tenant(made.id).await.expect("by id"),
        Some(made.clone())
    );
    assert_eq!(
        store
            .tenant(made.id + second.id + 1000)
            .await
            .expect("by id"),
        None
    );
    let listed: Vec<_> = store
        .list_tenants()
        .await
        .expect("list")
        .into_iter()
        .map(|t| t.id)
        .collect();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(listed, sorted, "by id");
    assert_eq!(listed.len(), 2);

    // Another daemon on the same database finds it by its key too.
    let other = db.handle().await;
    assert_eq!(
        other
            .tenant_by_key("7D3F0C9A51B2E8E4")
            .await
            .expect("by key"),
        Some(made)
    );
}

async fn tenant_access_round_trips_and_decides_activity(db: TestDb) {
    let store = db.handle().await;
    let t = tenant(&*store, "KEY1").await;
    assert!(t.active_at(t0()));
    let end = t0() + SignedDuration::from_hours(1);
    assert!(store
        .set_tenant_access(t.id, false, Some(end))
        .await
        .expect("set"));
    let t = store.tenant(t.id).await.expect("read").expect("exists");
    assert_eq!((t.disabled, t.expires_at), (false, Some(end)));
    assert!(t.active_at(t0()));
    assert!(!t.active_at(end), "expired at the instant itself");
    assert!(store
        .set_tenant_access(t.id, true, None)
        .await
        .expect("set"));
    let t = store
        .tenant_by_key("KEY1")
        .await
        .expect("read")
        .expect("exists");
    assert_eq!((t.disabled, t.expires_at), (true, None));
    assert!(!t.active_at(t0()));
    assert!(!store
        .set_tenant_access(t.id + 1000, true, None)
        .await
        .expect("set"));
}

async fn a_tenants_kdniao_push_url_is_set_and_cleared(db: TestDb) {
    let store = db.handle().await;
    let t = tenant(&*store, "KEY1").await;
    assert!(store
        .set_kdniao_push_url(t.id, Some("https://erp.example/kdniao"))
        .await
        .expect("set"));
    let read = store.tenant(t.id).await.expect("read").expect("exists");
    assert_eq!(
        read.kdniao_push_url.as_deref(),
        Some("https://erp.example/kdniao")
    );
    assert!(store.set_kdniao_push_url(t.id, None).await.expect("clear"));
    let read = store.tenant(t.id).await.expect("read").expect("exists");
    assert_eq!(read.kdniao_push_url, None);
    assert!(!store
        .set_kdniao_push_url(t.id + 1000, Some("x"))
        .await
        .expect("set"));
}

contract! {
    tenant_keys_are_unique,
    a_customer_id_belongs_to_one_tenant,
    a_tenant_reads_back_by_key_by_id_and_in_the_list_by_id,
    tenant_access_round_trips_and_decides_activity,
    a_tenants_kdniao_push_url_is_set_and_cleared,
}
