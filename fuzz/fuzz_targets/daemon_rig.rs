//! What the request-parsing targets share: a daemon whose carriers and subscribers are
//! stand-ins, so a fuzzer never reaches a real courier or receiver.

use async_trait::async_trait;
use axum::body::{to_bytes, Body};
use axum::http::{Request, StatusCode};
use axum::Router;
use tower::ServiceExt;
use waybill_core::carrier::{
    Capabilities, Carrier, Delivery, Notifier, Push, TrackError, TrackOutcome,
};
use waybill_core::model::Waybill;

/// Stands in for the courier's servers, which a fuzzer must not call: every number is
/// unknown there.
pub struct Unknown;

#[async_trait]
impl Carrier for Unknown {
    fn codes(&self) -> &[&str] {
        &["sandbox", "shunfeng", "yuantong", "zhongtong", "ems"]
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }
    async fn track(&self, waybills: &[Waybill]) -> Vec<TrackOutcome> {
        waybills
            .iter()
            .map(|_| {
                Err(TrackError::NotFound {
                    message: "unknown".into(),
                })
            })
            .collect()
    }
}

/// Pushes are not sent: the engine never runs its loops here.
pub struct Nowhere;

#[async_trait]
impl Notifier for Nowhere {
    async fn deliver(&self, _push: &Push) -> Delivery {
        Delivery::Failed {
            reason: "pushes are not sent while fuzzing".into(),
        }
    }
}

/// Sends `request` to `app` and returns its answer, which must be HTTP 200 with a JSON
/// body: every dialect answers a bad request in its own codes, never with an HTTP error.
pub async fn answer(app: &Router, route: &str, request: Request<Body>) -> serde_json::Value {
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let bytes = to_bytes(response.into_body(), 1 << 20).await.expect("body");
    assert_eq!(
        status,
        StatusCode::OK,
        "{route}: {}",
        String::from_utf8_lossy(&bytes)
    );
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{route}: not JSON ({e})"))
}
