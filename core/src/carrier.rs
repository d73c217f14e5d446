//! The three seams of the system: [`Carrier`] (ask a courier), [`Normalizer`] (read a trace
//! line) and [`Notifier`] (deliver a push). Core defines them; the host and plugins
//! implement them; a Rust application may implement them itself.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::model::{Trace, Waybill};
use crate::state::State;

/// What a carrier can do, so the scheduler can plan requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Capabilities {
    /// How many waybills one `track` call may carry.
    pub max_batch: usize,
    /// Whether the carrier needs the phone number (or its last four digits).
    pub needs_phone: bool,
    /// Requests per second the carrier tolerates; `None` when unknown.
    pub rate_limit_per_sec: Option<f64>,
}

impl Default for Capabilities {
    fn default() -> Self {
        Self {
            max_batch: 1,
            needs_phone: false,
            rate_limit_per_sec: None,
        }
    }
}

/// Why a query failed, classified so the caller knows whether and when to retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TrackError {
    /// The carrier does not know the number (yet).
    #[error("not found: {message}")]
    NotFound { message: String },
    /// Credentials are missing or refused.
    #[error("unauthorized: {message}")]
    Unauthorized { message: String },
    /// Too many requests; retry after the given delay when the carrier says one.
    #[error("rate limited{}", retry_after_secs.map(|s| format!(" (retry after {s} s)")).unwrap_or_default())]
    RateLimited { retry_after_secs: Option<u64> },
    /// A passing failure: timeout, connection reset, 5xx.
    #[error("transient: {message}")]
    Transient { message: String },
    /// The carrier answered something we cannot read.
    #[error("bad response: {message}")]
    BadResponse { message: String },
    /// The carrier does not offer this (a service, a number type, a company code).
    #[error("unsupported: {message}")]
    Unsupported { message: String },
    /// The request itself was wrong (malformed number, missing phone).
    #[error("invalid input: {message}")]
    InvalidInput { message: String },
}

impl TrackError {
    /// Whether asking again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            TrackError::RateLimited { .. }
                | TrackError::Transient { .. }
                | TrackError::NotFound { .. }
        )
    }

    /// The delay the carrier asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            TrackError::RateLimited {
                retry_after_secs: Some(s),
            } => Some(Duration::from_secs(*s)),
            _ => None,
        }
    }
}

/// The outcome of tracking one waybill.
pub type TrackOutcome = Result<Trace, TrackError>;

/// A courier (or an aggregator) that can be asked for traces.
///
/// The host implements it over loaded plugins; a Rust application linking core only may
/// implement it in-process:
///
/// ```
/// use async_trait::async_trait;
/// use waybill_core::carrier::{Capabilities, Carrier, TrackOutcome};
/// use waybill_core::model::{Trace, Waybill};
///
/// struct Always;
///
/// #[async_trait]
/// impl Carrier for Always {
///     fn codes(&self) -> &[&str] { &["always"] }
///     fn capabilities(&self) -> Capabilities { Capabilities::default() }
///     async fn track(&self, waybills: &[Waybill]) -> Vec<TrackOutcome> {
///         waybills.iter().map(|w| Ok(Trace::from_events(&w.company, &w.number, vec![]))).collect()
///     }
/// }
/// ```
#[async_trait]
pub trait Carrier: Send + Sync {
    /// The carrier codes this implementation answers for; the first is canonical.
    fn codes(&self) -> &[&str];
    /// Batch size, phone requirement, rate limit.
    fn capabilities(&self) -> Capabilities;
    /// Tracks each waybill; the result has one outcome per waybill, in order.
    async fn track(&self, waybills: &[Waybill]) -> Vec<TrackOutcome>;
}

/// One raw line of a trace as a carrier printed it, before it has a state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawLine<'a> {
    /// The carrier's text.
    pub text: &'a str,
    /// The carrier's code, when the plugin could not map it itself.
    pub carrier: Option<&'a str>,
    /// The carrier's own status code for the line.
    pub raw_code: Option<&'a str>,
}

/// A state and the rule that chose it, so every decision can be explained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    /// The state.
    pub state: State,
    /// Identifier of the rule that decided, or `model` when the statistical model did.
    pub rule: String,
    /// How sure the answer is, 0..=1: a rule's documented confidence, or the model's
    /// (see `waybill_core::normalize`).
    pub confidence: f32,
}

/// Turns a raw trace line into a state, saying which rule decided.
///
/// ```
/// use waybill_core::carrier::{Classification, Normalizer, RawLine};
/// use waybill_core::state::State;
///
/// struct Signed;
/// impl Normalizer for Signed {
///     fn classify(&self, line: &RawLine<'_>) -> Classification {
///         let state = if line.text.contains("签收") { State::Delivered } else { State::InTransit };
///         Classification { state, rule: "demo".into(), confidence: 0.5 }
///     }
/// }
/// assert_eq!(Signed.classify(&RawLine { text: "已签收", ..Default::default() }).state, State::Delivered);
/// ```
pub trait Normalizer: Send + Sync {
    /// Classifies one line.
    fn classify(&self, line: &RawLine<'_>) -> Classification;
}

/// One push to deliver: an HTTP POST to a subscriber.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Push {
    /// Stable id, sent as a header, so receivers can drop duplicates.
    pub id: String,
    /// Where to POST.
    pub url: String,
    /// `Content-Type` of the body.
    pub content_type: String,
    /// The body, already rendered and signed in its dialect.
    pub body: Vec<u8>,
    /// Extra headers (signatures, ids).
    pub headers: Vec<(String, String)>,
}

/// What the receiver made of a push, as its dialect reads the [`Delivery`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Acknowledged as the dialect requires.
    Accepted,
    /// Not acknowledged; try again later, no sooner than `after` when the receiver
    /// asked for a delay (`Retry-After`).
    Retry {
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<Duration>,
    },
    /// Refused for good (e.g. the URL can never be reached); dead-letter it.
    Reject { reason: String },
    /// Refused for good, and the receiver asked for no more pushes to this URL (HTTP 410
    /// Gone in Standard Webhooks): dead-letter it and disable the URL.
    Gone { reason: String },
}

impl Verdict {
    /// A retry at the retry schedule's own pace.
    pub fn retry(reason: impl Into<String>) -> Self {
        Self::Retry {
            reason: reason.into(),
            after: None,
        }
    }
}

/// The receiver's answer to one push: whatever came back, before any dialect judged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// `Retry-After`, when the receiver sent one.
    pub retry_after: Option<Duration>,
    /// The body (its first 64 KiB).
    pub body: Vec<u8>,
}

impl Reply {
    /// A `200` answer with `body` and no `Retry-After`.
    pub fn ok(body: impl Into<Vec<u8>>) -> Self {
        Self {
            status: 200,
            retry_after: None,
            body: body.into(),
        }
    }
}

/// How one delivery attempt went at the transport level. Whether an answer acknowledges
/// the push is the dialect's rule, not the transport's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The receiver answered, with any status.
    Answered(Reply),
    /// No answer (connection refused, timeout, reset): worth another attempt.
    Failed { reason: String },
    /// The push can never go out as addressed (a refused address, a URL that does not
    /// build a request): dead-letter it.
    Refused { reason: String },
}

/// Delivers pushes to subscribers and reports what came back.
///
/// ```
/// use async_trait::async_trait;
/// use waybill_core::carrier::{Delivery, Notifier, Push, Reply};
///
/// struct Discard;
/// #[async_trait]
/// impl Notifier for Discard {
///     async fn deliver(&self, _push: &Push) -> Delivery {
///         Delivery::Answered(Reply::ok(r#"{"result":true,"returnCode":"200"}"#))
///     }
/// }
/// ```
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Sends one push and reports the transport's outcome.
    async fn deliver(&self, push: &Push) -> Delivery;
}
