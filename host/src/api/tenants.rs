//! Tenant lookups for the API, cached so the subscribe path does not read the database
//! for every request. Only found tenants are cached: a key added by `waybill tenant add`
//! works at once, and a removed one stops working within the cache TTL.

use std::sync::Arc;
use std::time::Duration;

use crate::store::{Store, StoreResult, Tenant};

pub(crate) struct TenantCache {
    store: Arc<dyn Store>,
    by_key: moka::sync::Cache<String, Arc<Tenant>>,
    by_id: moka::sync::Cache<i64, Arc<Tenant>>,
}

impl TenantCache {
    pub fn new(store: Arc<dyn Store>, ttl: Duration) -> Self {
        // Keys are chosen by tenants, not by callers, and only found tenants are cached:
        // the caches stay as small as the tenant table.
        Self {
            store,
            by_key: moka::sync::Cache::builder().time_to_live(ttl).build(),
            by_id: moka::sync::Cache::builder().time_to_live(ttl).build(),
        }
    }

    /// The tenant with this row id (Kdniao's EBusinessID names it), cached like
    /// [`TenantCache::by_key`].
    pub async fn by_id(&self, id: i64) -> StoreResult<Option<Arc<Tenant>>> {
        if let Some(t) = self.by_id.get(&id) {
            return Ok(Some(t));
        }
        let found = self.store.tenant(id).await?.map(Arc::new);
        if let Some(t) = &found {
            self.by_id.insert(id, t.clone());
        }
        Ok(found)
    }

    /// Drops what is cached of tenant `id`, so its next lookup reads the store (after a
    /// change made through this process, such as a new webhook secret).
    pub fn forget(&self, id: i64) {
        self.by_id.invalidate(&id);
        for (key, t) in &self.by_key {
            if t.id == id {
                self.by_key.invalidate(key.as_str());
            }
        }
    }

    /// The tenant with this key (shared: the hot path clones a pointer, not the strings).
    pub async fn by_key(&self, key: &str) -> StoreResult<Option<Arc<Tenant>>> {
        if let Some(t) = self.by_key.get(key) {
            return Ok(Some(t));
        }
        let found = self.store.tenant_by_key(key).await?.map(Arc::new);
        if let Some(t) = &found {
            self.by_key.insert(key.to_owned(), t.clone());
        }
        Ok(found)
    }

    /// The tenant with this kuaidi100 `customer` id (real-time queries; rare enough to
    /// read the tenant table each time).
    pub async fn by_customer(&self, customer: &str) -> StoreResult<Option<Tenant>> {
        Ok(self
            .store
            .list_tenants()
            .await?
            .into_iter()
            .find(|t| t.customer.as_deref() == Some(customer)))
    }
}
