//! Prometheus metrics: counters kept in memory by the API and by wrappers around the
//! carriers and the notifier, plus gauges read from the store at scrape time.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use waybill_core::carrier::{Capabilities, Carrier, TrackError, TrackOutcome, Verdict};
use waybill_core::model::Waybill;

use super::Api;
use crate::push::VerdictObserver;

/// Counters with labels. Cheap to share; every method takes `&self`.
#[derive(Debug, Default)]
pub struct Metrics {
    /// (endpoint, returnCode) → answers.
    requests: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    /// (carrier, outcome) → waybills checked.
    checks: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// verdict → push attempts.
    pushes: Mutex<BTreeMap<&'static str, u64>>,
    /// source → real-time query answers ("stored", "cache", "carrier").
    queries: Mutex<BTreeMap<&'static str, u64>>,
}

fn bump<K: Ord>(map: &Mutex<BTreeMap<K, u64>>, key: K) {
    if let Ok(mut m) = map.lock() {
        *m.entry(key).or_default() += 1;
    }
}

impl Metrics {
    /// Counts one API answer.
    pub fn request(&self, endpoint: &'static str, code: &'static str) {
        bump(&self.requests, (endpoint, code));
    }

    /// Counts one checked waybill.
    pub fn check(&self, carrier: &str, outcome: &'static str) {
        bump(&self.checks, (carrier.to_owned(), outcome));
    }

    /// Counts one push attempt's verdict.
    pub fn push(&self, verdict: &'static str) {
        bump(&self.pushes, verdict);
    }

    /// Counts one real-time query answer by where it came from.
    pub fn query(&self, source: &'static str) {
        bump(&self.queries, source);
    }

    /// Answers counted for an endpoint and return code.
    pub fn requests_of(&self, endpoint: &str, code: &str) -> u64 {
        self.requests
            .lock()
            .map(|m| {
                m.iter()
                    .filter(|((e, c), _)| *e == endpoint && *c == code)
                    .map(|(_, n)| *n)
                    .sum()
            })
            .unwrap_or(0)
    }

    fn write_counters(&self, out: &mut String) {
        header(
            out,
            "waybill_api_requests_total",
            "counter",
            "API answers by endpoint and kuaidi100 returnCode.",
        );
        if let Ok(m) = self.requests.lock() {
            for ((endpoint, code), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "waybill_api_requests_total{{endpoint=\"{endpoint}\",code=\"{code}\"}} {n}"
                );
            }
        }
        header(
            out,
            "waybill_checks_total",
            "counter",
            "Waybills asked of a carrier, by carrier and outcome.",
        );
        if let Ok(m) = self.checks.lock() {
            for ((carrier, outcome), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "waybill_checks_total{{carrier=\"{}\",outcome=\"{outcome}\"}} {n}",
                    escape(carrier)
                );
            }
        }
        header(
            out,
            "waybill_pushes_total",
            "counter",
            "Push delivery attempts by the receiver's verdict.",
        );
        if let Ok(m) = self.pushes.lock() {
            for (verdict, n) in m.iter() {
                let _ = writeln!(out, "waybill_pushes_total{{outcome=\"{verdict}\"}} {n}");
            }
        }
        header(
            out,
            "waybill_queries_total",
            "counter",
            "Real-time query answers by source (stored trace, memory cache, carrier).",
        );
        if let Ok(m) = self.queries.lock() {
            for (source, n) in m.iter() {
                let _ = writeln!(out, "waybill_queries_total{{source=\"{source}\"}} {n}");
            }
        }
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `GET /metrics`: the Prometheus text exposition.
pub async fn render(State(api): State<Api>) -> impl IntoResponse {
    let mut out = String::new();
    api.metrics().write_counters(&mut out);
    let now = api.now();
    match api.store().stats().await {
        Ok(stats) => {
            header(
                &mut out,
                "waybill_subscriptions",
                "gauge",
                "Subscriptions by monitor status.",
            );
            for (status, n) in [
                ("polling", stats.polling),
                ("shutdown", stats.shutdown),
                ("abort", stats.abort),
            ] {
                let _ = writeln!(out, "waybill_subscriptions{{status=\"{status}\"}} {n}");
            }
            header(
                &mut out,
                "waybill_outbox",
                "gauge",
                "Pushes in the outbox by delivery state.",
            );
            for (state, n) in [
                ("pending", stats.pending_pushes),
                ("delivered", stats.delivered_pushes),
                ("dead", stats.dead_pushes),
            ] {
                let _ = writeln!(out, "waybill_outbox{{state=\"{state}\"}} {n}");
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: store stats failed"),
    }
    if let Ok(next) = api.store().next_due().await {
        // How far behind the scheduler is: the age of the oldest due check (0 if none).
        let lag = next
            .map(|at| now.duration_since(at).as_secs_f64().max(0.0))
            .unwrap_or(0.0);
        header(
            &mut out,
            "waybill_due_lag_seconds",
            "gauge",
            "Engine-clock seconds the oldest due check is overdue.",
        );
        let _ = writeln!(out, "waybill_due_lag_seconds {lag}");
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
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
