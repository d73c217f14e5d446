//! Prometheus metrics: counters kept in memory by the API and by wrappers around the
//! carriers and the notifier, plus gauges read from the store at scrape time.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use waybill_core::carrier::{Capabilities, Carrier, TrackError, TrackOutcome, Verdict};
use waybill_core::model::Waybill;

use super::Api;
use crate::push::VerdictObserver;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    endpoint: &'static str,
    code: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CheckLabels {
    carrier: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SourceLabel {
    source: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

/// Counters with labels. Cheap to share; every method takes `&self`.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    checks: Family<CheckLabels, Counter>,
    pushes: Family<OutcomeLabel, Counter>,
    queries: Family<SourceLabel, Counter>,
}

impl Metrics {
    /// Counts one API answer.
    pub fn request(&self, endpoint: &'static str, code: &'static str) {
        self.requests
            .get_or_create(&RequestLabels { endpoint, code })
            .inc();
    }

    /// Counts one checked waybill.
    pub fn check(&self, carrier: &str, outcome: &'static str) {
        self.checks
            .get_or_create(&CheckLabels {
                carrier: carrier.to_owned(),
                outcome,
            })
            .inc();
    }

    /// Counts one push attempt's verdict.
    pub fn push(&self, verdict: &'static str) {
        self.pushes
            .get_or_create(&OutcomeLabel { outcome: verdict })
            .inc();
    }

    /// Counts one real-time query answer by where it came from.
    pub fn query(&self, source: &'static str) {
        self.queries.get_or_create(&SourceLabel { source }).inc();
    }

    /// Answers counted for an endpoint and return code.
    pub fn requests_of(&self, endpoint: &'static str, code: &'static str) -> u64 {
        self.requests
            .get(&RequestLabels { endpoint, code })
            .map_or(0, |c| c.get())
    }

    /// A registry holding the counters (the families are shared handles, so what the API
    /// counts later still shows).
    fn registry(&self) -> Registry {
        let mut r = Registry::default();
        r.register(
            "waybill_api_requests",
            "API answers by endpoint and kuaidi100 returnCode",
            self.requests.clone(),
        );
        r.register(
            "waybill_checks",
            "Waybills asked of a carrier, by carrier and outcome",
            self.checks.clone(),
        );
        r.register(
            "waybill_pushes",
            "Push delivery attempts by the receiver's verdict",
            self.pushes.clone(),
        );
        r.register(
            "waybill_queries",
            "Real-time query answers by source (stored trace, memory cache, carrier)",
            self.queries.clone(),
        );
        r
    }
}

/// `GET /metrics`: the OpenMetrics text exposition (counters ending in `_total`).
pub async fn render(State(api): State<Api>) -> impl IntoResponse {
    let mut registry = api.metrics().registry();
    let now = api.now();
    match api.store().stats().await {
        Ok(stats) => {
            let subscriptions = Family::<StatusLabel, Gauge>::default();
            for (status, n) in [
                ("polling", stats.polling),
                ("shutdown", stats.shutdown),
                ("abort", stats.abort),
            ] {
                subscriptions
                    .get_or_create(&StatusLabel { status })
                    .set(n as i64);
            }
            registry.register(
                "waybill_subscriptions",
                "Subscriptions by monitor status",
                subscriptions,
            );
            let outbox = Family::<StateLabel, Gauge>::default();
            for (state, n) in [
                ("pending", stats.pending_pushes),
                ("delivered", stats.delivered_pushes),
                ("dead", stats.dead_pushes),
            ] {
                outbox.get_or_create(&StateLabel { state }).set(n as i64);
            }
            registry.register(
                "waybill_outbox",
                "Pushes in the outbox by delivery state",
                outbox,
            );
        }
        Err(e) => tracing::warn!(error = %e, "metrics: store stats failed"),
    }
    if let Ok(next) = api.store().next_due().await {
        // How far behind the scheduler is: the age of the oldest due check (0 if none).
        let lag = Gauge::<f64, AtomicU64>::default();
        lag.set(
            next.map(|at| now.duration_since(at).as_secs_f64().max(0.0))
                .unwrap_or(0.0),
        );
        registry.register(
            "waybill_due_lag_seconds",
            "Engine-clock seconds the oldest due check is overdue",
            lag,
        );
    }
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
        tracing::warn!(error = %e, "metrics: encoding failed");
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            String::new(),
        );
    }
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    )
}

/// The metric label of a check outcome.
pub fn outcome_label(outcome: &TrackOutcome) -> &'static str {
    match outcome {
        Ok(_) => "ok",
        Err(TrackError::NotFound { .. }) => "not_found",
        Err(TrackError::Unauthorized { .. }) => "unauthorized",
        Err(TrackError::RateLimited { .. }) => "rate_limited",
        Err(TrackError::Transient { .. }) => "transient",
        Err(TrackError::BadResponse { .. }) => "bad_response",
        Err(TrackError::Unsupported { .. }) => "unsupported",
        Err(TrackError::InvalidInput { .. }) => "invalid_input",
    }
}

/// A carrier that counts its outcomes into [`Metrics`].
pub struct CountingCarrier {
    inner: Arc<dyn Carrier>,
    metrics: Arc<Metrics>,
}

impl CountingCarrier {
    /// Wraps `inner`.
    pub fn wrap(inner: Arc<dyn Carrier>, metrics: Arc<Metrics>) -> Arc<dyn Carrier> {
        Arc::new(Self { inner, metrics })
    }
}

#[async_trait]
impl Carrier for CountingCarrier {
    fn codes(&self) -> &[&str] {
        self.inner.codes()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn track(&self, waybills: &[Waybill]) -> Vec<TrackOutcome> {
        let out = self.inner.track(waybills).await;
        let code = self.inner.codes().first().copied().unwrap_or("unknown");
        for o in &out {
            self.metrics.check(code, outcome_label(o));
        }
        out
    }
}

/// Push verdicts are counted by kind.
impl VerdictObserver for Metrics {
    fn judged(&self, _push_id: &str, verdict: &Verdict) {
        self.push(match verdict {
            Verdict::Accepted => "accepted",
            Verdict::Retry { .. } => "retry",
            Verdict::Reject { .. } => "reject",
            Verdict::Gone { .. } => "gone",
        });
    }
}
