//! Tenant lookups for the API, cached so the subscribe path does not read the database
//! for every request. Only found tenants are cached: a key added by `waybill tenant add`
//! works at once, and a removed one stops working within the cache TTL.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::store::{Store, StoreResult, Tenant};

pub(crate) struct TenantCache {
    store: Arc<dyn Store>,
    ttl: Duration,
    by_key: RwLock<HashMap<String, (Arc<Tenant>, Instant)>>,
    by_id: RwLock<HashMap<i64, (Arc<Tenant>, Instant)>>,
}

impl TenantCache {
    pub fn new(store: Arc<dyn Store>, ttl: Duration) -> Self {
        Self {
            store,
            ttl,
            by_key: RwLock::new(HashMap::new()),
            by_id: RwLock::new(HashMap::new()),
        }
    }

    /// The tenant with this row id (Kdniao's EBusinessID names it), cached like
    /// [`TenantCache::by_key`].
    pub async fn by_id(&self, id: i64) -> StoreResult<Option<Arc<Tenant>>> {
        if let Ok(map) = self.by_id.read() {
            if let Some((t, at)) = map.get(&id) {
                if at.elapsed() < self.ttl {
                    return Ok(Some(t.clone()));
                }
            }
        }
        let found = self.store.tenant(id).await?.map(Arc::new);
        if let (Some(t), Ok(mut map)) = (&found, self.by_id.write()) {
            map.insert(id, (t.clone(), Instant::now()));
        }
        Ok(found)
    }

    /// Drops what is cached of tenant `id`, so its next lookup reads the store (after a
    /// change made through this process, such as a new webhook secret).
    pub fn forget(&self, id: i64) {
        if let Ok(mut map) = self.by_id.write() {
            map.remove(&id);
        }
        if let Ok(mut map) = self.by_key.write() {
            map.retain(|_, (t, _)| t.id != id);
        }
    }

    /// The tenant with this key (shared: the hot path clones a pointer, not the strings).
    pub async fn by_key(&self, key: &str) -> StoreResult<Option<Arc<Tenant>>> {
        if let Ok(map) = self.by_key.read() {
            if let Some((t, at)) = map.get(key) {
                if at.elapsed() < self.ttl {
                    return Ok(Some(t.clone()));
                }
            }
        }
        let found = self.store.tenant_by_key(key).await?.map(Arc::new);
        if let (Some(t), Ok(mut map)) = (&found, self.by_key.write()) {
            // Keys are chosen by tenants, not by callers: the map stays as small as the
            // tenant table, since only found tenants are inserted.
            map.insert(key.to_owned(), (t.clone(), Instant::now()));
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
