//! The daemon's HTTP API: every dialect's routes ([`crate::dialect`]) over the
//! dialect-free use cases ([`usecase`]), plus `/healthz` and Prometheus `/metrics`.

pub mod form;
pub mod limit;
pub mod metrics;
pub mod tenants;
pub mod usecase;

use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use waybill_core::model::Trace;

use crate::dialect::Dialects;
use crate::engine::Engine;
use crate::guess::CoreGuesser;
use crate::store::{Store, SubscribeBatcher};

pub use metrics::{CountingCarrier, Metrics};

/// How the API behaves. The daemon reads it from the `[api]` table of its config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Accept callback URLs that resolve to loopback, private or link-local addresses.
    pub allow_private_callbacks: bool,
    /// Largest request body read; a larger one is answered with a kuaidi100 error.
    pub max_body_bytes: usize,
    /// How long a real-time query waits for the carrier.
    #[serde(with = "friendly")]
    pub query_timeout: SignedDuration,
    /// A stored trace younger than this answers a real-time query without asking the
    /// carrier (kuaidi100 locks a waybill queried more often than every 30 minutes).
    #[serde(with = "friendly")]
    pub query_fresh_for: SignedDuration,
    /// Real-time query answers kept in memory.
    pub query_cache_entries: usize,
    /// Most subscriptions written in one transaction (group commit).
    pub subscribe_batch: usize,
    /// Most subscriptions of one waybill per tenant and billing month (kuaidi100: 4); the
    /// next one is answered 501 "重复订阅". 0 means no limit.
    pub monthly_subscribe_limit: u32,
    /// How long a tenant looked up by key is trusted before it is read again.
    #[serde(with = "friendly")]
    pub tenant_cache_ttl: SignedDuration,
    /// Requests per second each tenant key may send, per endpoint.
    pub rate_limit: limit::RateLimitConfig,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            allow_private_callbacks: false,
            max_body_bytes: 64 * 1024,
            query_timeout: SignedDuration::from_secs(3),
            query_fresh_for: SignedDuration::from_mins(30),
            query_cache_entries: 10_000,
            subscribe_batch: 1024,
            monthly_subscribe_limit: crate::store::DEFAULT_MONTHLY_SUBSCRIBE_LIMIT,
            tenant_cache_ttl: SignedDuration::from_secs(10),
            rate_limit: limit::RateLimitConfig::default(),
        }
    }
}

/// `SignedDuration` as friendly text ("3s", "30m") in config files.
pub(crate) mod friendly {
    use jiff::SignedDuration;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &SignedDuration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{d:#}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SignedDuration, D::Error> {
        let text = String::deserialize(d)?;
        let parsed: SignedDuration = text
            .trim()
            .parse()
            .map_err(|e| serde::de::Error::custom(format!("bad duration {text:?}: {e}")))?;
        if parsed.is_negative() {
            return Err(serde::de::Error::custom(format!(
                "duration {text:?} is negative"
            )));
        }
        Ok(parsed)
    }
}

/// Everything the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct Api {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    store: Arc<dyn Store>,
    batcher: SubscribeBatcher,
    guesser: Arc<CoreGuesser>,
    config: ApiConfig,
    metrics: Arc<Metrics>,
    tenants: tenants::TenantCache,
    limits: limit::KeyLimits,
    dialects: Dialects,
    /// Bounded by `query_cache_entries` (moka evicts the least useful); freshness is
    /// judged on the daemon's clock at each read, so no time-to-live here.
    query_cache: moka::sync::Cache<(String, String), Arc<(Trace, Timestamp)>>,
}

impl Api {
    /// The API over `engine`'s store, clock and carriers (a real-time query goes through
    /// the engine's gate like a poll). Must be called inside a tokio runtime (it starts
    /// the group-commit writer).
    pub fn new(engine: Engine, config: ApiConfig, metrics: Arc<Metrics>) -> Self {
        Self::with_guesser(engine, config, metrics, Arc::new(CoreGuesser::embedded()))
    }

    /// Like [`Api::new`], recognising numbers (`/autonumber/auto`, `autoCom=1`, Kdniao
    /// 2002, `/v1/detect`) with `guesser`: the daemon's, with the loaded plugins' number
    /// rules and the prior learned from confirmed waybills, the same one the autoCheck
    /// uses.
    pub fn with_guesser(
        engine: Engine,
        config: ApiConfig,
        metrics: Arc<Metrics>,
        guesser: Arc<CoreGuesser>,
    ) -> Self {
        let store = engine.store().clone();
        let batcher = SubscribeBatcher::spawn(
            store.clone(),
            config.subscribe_batch.max(1),
            config.subscribe_batch.max(1) * 8,
            config.monthly_subscribe_limit,
        );
        let ttl = std::time::Duration::try_from(config.tenant_cache_ttl).unwrap_or_default();
        Self {
            inner: Arc::new(Inner {
                engine,
                tenants: tenants::TenantCache::new(store.clone(), ttl),
                store,
                batcher,
                guesser,
                limits: limit::KeyLimits::new(&config.rate_limit),
                dialects: Dialects::standard(),
                query_cache: moka::sync::Cache::new(config.query_cache_entries as u64),
                config,
                metrics,
            }),
        }
    }

    /// The shared metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The configuration.
    pub fn config(&self) -> &ApiConfig {
        &self.inner.config
    }

    /// Now, by the engine's clock.
    pub fn now(&self) -> Timestamp {
        self.inner.engine.now()
    }

    /// The arrival estimate for `trace` of `company` to `to`, now (none once delivered or
    /// on its way back). A store error loading the lanes answers none, logged: an
    /// estimate is never worth failing a query for.
    pub async fn estimate(
        &self,
        company: &str,
        trace: &waybill_core::model::Trace,
        to: Option<&str>,
    ) -> Option<waybill_core::eta::Estimate> {
        let now = self.now();
        match self.inner.engine.estimate(company, trace, to, now).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "cannot load the lanes for an estimate");
                None
            }
        }
    }

    /// The problem flags of `trace` now, with the engine's thresholds and its lanes'
    /// lateness (the lanes as loaded so far: a fresh daemon's first reads may miss 490).
    pub fn flags(
        &self,
        trace: &waybill_core::model::Trace,
        facts: &waybill_core::policy::SubscriptionFacts<'_>,
    ) -> Vec<waybill_core::problem::Flag> {
        self.inner.engine.flags(trace, facts, self.now())
    }

    /// The problem thresholds, the engine's.
    pub fn thresholds(&self) -> &waybill_core::problem::Thresholds {
        &self.inner.engine.config().problems
    }

    /// The codes of the companies a loaded carrier serves, sorted.
    pub fn served_companies(&self) -> Vec<String> {
        self.inner.engine.companies()
    }

    /// The codes of the companies the upstream aggregator serves (no plugin of their own).
    pub fn routed_companies(&self) -> Vec<String> {
        self.inner.engine.routed_companies()
    }

    /// Whether a loaded carrier serves `company` (a canonical code).
    pub fn serves(&self, company: &str) -> bool {
        self.inner.engine.knows_company(company)
    }

    /// The catalog's entry for a company code, if it has one.
    pub fn carrier_entry(&self, code: &str) -> Option<&waybill_core::guess::CarrierEntry> {
        self.inner.guesser.guesser().catalog().get(code)
    }

    /// The canonical code of `company` as given (any alias the catalog knows, any case).
    pub fn company_code(&self, company: &str) -> String {
        let lower = company.trim().to_ascii_lowercase();
        self.inner
            .guesser
            .guesser()
            .catalog()
            .resolve(&lower)
            .map_or(lower, str::to_owned)
    }
}

/// The API's routes.
pub fn router(api: Api) -> Router {
    let mut router = Router::new();
    for name in api.inner.dialects.names() {
        if let Some(d) = api.inner.dialects.get(name) {
            router = router.merge(d.routes());
        }
    }
    router
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics::render))
        .with_state(api)
}

async fn healthz() -> &'static str {
    "ok\n"
}
