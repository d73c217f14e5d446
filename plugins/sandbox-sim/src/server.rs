//! The simulator: an HTTP server speaking the [`crate::wire`] format on a clock of the
//! caller's choosing, with faults injected on request.
//!
//! Endpoints:
//!
//! - `POST /api/track`: see [`crate::wire`].
//! - `GET /healthz`: `{"status":"ok","now":"<simulated time, wire format>"}`.
//! - `GET /admin/faults`, `POST /admin/faults`: read or replace the [`Faults`] (JSON).
//! - `GET /admin/journey/{number}`: the whole planned [`Journey`] and when it started,
//!   for debugging a demo.
//!
//! A number's journey starts the first time the simulator is asked about it (at that
//! simulated instant), unless [`SimulatorHandle::register`] set a start first. Faults
//! touch only `/api/track`; which request gets which fault follows a seeded sequence, so
//! a test that sends the same requests in the same order sees the same faults.
//!
//! ```no_run
//! # async fn demo() -> Result<(), waybill_sandbox_sim::journey::SimError> {
//! use std::sync::Arc;
//! use jiff::Timestamp;
//! use waybill_core::clock::ManualClock;
//! use waybill_sandbox_sim::journey::SimConfig;
//! use waybill_sandbox_sim::server::{Faults, Simulator};
//! let clock = Arc::new(ManualClock::new(Timestamp::UNIX_EPOCH));
//! let sim = Simulator::start("127.0.0.1:0".parse().unwrap(), clock, SimConfig::default()).await?;
//! println!("sandbox at {}", sim.base_url());
//! sim.set_faults(Faults { error_5xx_rate: 0.2, ..Faults::default() })?;
//! sim.shutdown().await?;
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use waybill_core::clock::Clock;

use crate::journey::{normalize_number, Journey, SimConfig, SimError, SplitMix64};
use crate::wire::{
    format_time, ErrorBody, TrackRequest, TrackResponse, TrackResult, API_KEY_HEADER, MAX_BATCH,
    TRACK_PATH,
};

/// The real clock: the operating system's time. Core has none of its own; the host uses
/// this one.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// Faults the simulator injects into `/api/track`. Rates are probabilities per request;
/// at most one of timeout, 5xx, 429 and malformed happens to a request, so their rates
/// must add up to at most 1.
///
/// ```
/// use waybill_sandbox_sim::server::Faults;
/// let f: Faults = serde_json::from_str(r#"{"rate_limit_rate":0.5}"#).unwrap();
/// assert_eq!(f.retry_after_secs, Faults::default().retry_after_secs);
/// f.validate().unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Added to every `/api/track` response, in real milliseconds.
    pub latency_ms: u64,
    /// Share of requests answered 500, 502 or 503.
    pub error_5xx_rate: f64,
    /// Share of requests answered 429 with `Retry-After`.
    pub rate_limit_rate: f64,
    /// The `Retry-After` of a 429, in seconds.
    pub retry_after_secs: u64,
    /// Share of requests answered 200 with a body that does not parse.
    pub malformed_rate: f64,
    /// Share of requests held open for `timeout_ms` before a 504.
    pub timeout_rate: f64,
    /// How long a timed-out request is held, in real milliseconds.
    pub timeout_ms: u64,
    /// Seed of the sequence that picks which request gets which fault.
    pub seed: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            error_5xx_rate: 0.0,
            rate_limit_rate: 0.0,
            retry_after_secs: 5,
            malformed_rate: 0.0,
            timeout_rate: 0.0,
            timeout_ms: 30_000,
            seed: 0,
        }
    }
}

impl Faults {
    /// Checks every rate is a probability and they add up to at most 1.
    pub fn validate(&self) -> Result<(), SimError> {
        let rates = [
            ("error_5xx_rate", self.error_5xx_rate),
            ("rate_limit_rate", self.rate_limit_rate),
            ("malformed_rate", self.malformed_rate),
            ("timeout_rate", self.timeout_rate),
        ];
        for (name, value) in rates {
            if !(0.0..=1.0).contains(&value) {
                return Err(SimError::InvalidConfig(format!(
                    "faults.{name} must be between 0 and 1, is {value}"
                )));
            }
        }
        let sum: f64 = rates.iter().map(|(_, v)| v).sum();
        if sum > 1.0 + 1e-9 {
            return Err(SimError::InvalidConfig(format!(
                "fault rates add up to {sum}, more than 1"
            )));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    None,
    Timeout,
    ServerError(u8),
    RateLimit,
    Malformed(u8),
}

struct FaultState {
    faults: Faults,
    rng: SplitMix64,
}

impl FaultState {
    fn new(faults: Faults) -> Self {
        let rng = SplitMix64::new(faults.seed);
        Self { faults, rng }
    }

    fn draw(&mut self) -> Fault {
        let f = &self.faults;
        let roll = self.rng.unit();
        let variant = (self.rng.next_u64() % 4) as u8;
        let mut edge = 0.0;
        for (rate, fault) in [
            (f.timeout_rate, Fault::Timeout),
            (f.error_5xx_rate, Fault::ServerError(variant % 3)),
            (f.rate_limit_rate, Fault::RateLimit),
            (f.malformed_rate, Fault::Malformed(variant)),
        ] {
            edge += rate;
            if roll < edge {
                return fault;
            }
        }
        Fault::None
    }
}

/// Where a number's journey started when this simulator has not seen it yet: asked once
/// per number (normalized), before the first answer about it; `None` starts it then.
pub type StartLookup = Arc<
    dyn Fn(String) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<Timestamp>> + Send>>
        + Send
        + Sync,
>;

struct Shared {
    clock: Arc<dyn Clock>,
    config: SimConfig,
    first_seen: Mutex<HashMap<String, Timestamp>>,
    starts: Mutex<Option<StartLookup>>,
    faults: Mutex<FaultState>,
    stop: watch::Receiver<bool>,
}

/// Poisoning only means another request panicked mid-update of plain data; keep serving.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn start_of(&self, normalized: &str, now: Timestamp) -> Timestamp {
        *lock(&self.first_seen)
            .entry(normalized.to_string())
            .or_insert(now)
    }

    fn result_for(&self, requested: &str, now: Timestamp) -> TrackResult {
        let journey = normalize_number(requested).and_then(|n| {
            let start = self.start_of(&n, now);
            Journey::for_number_at(&n, &self.config, start).map(|j| (start, j))
        });
        match journey {
            Ok((start, journey)) => TrackResult::from_journey(requested, &journey, start, now),
            Err(e) => TrackResult {
                number: requested.to_string(),
                found: false,
                events: Vec::new(),
                error: Some(e.to_string()),
            },
        }
    }
}

/// Starts simulators.
pub struct Simulator;

impl Simulator {
    /// Listens on `bind` (port 0 picks a free one) and serves until
    /// [`SimulatorHandle::shutdown`]. Must be called inside a tokio runtime.
    pub async fn start(
        bind: SocketAddr,
        clock: Arc<dyn Clock>,
        config: SimConfig,
    ) -> Result<SimulatorHandle, SimError> {
        config.validate()?;
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .map_err(|source| SimError::Bind { addr: bind, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| SimError::Bind { addr: bind, source })?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            clock,
            config,
            first_seen: Mutex::new(HashMap::new()),
            starts: Mutex::new(None),
            faults: Mutex::new(FaultState::new(Faults::default())),
            stop: stop_rx.clone(),
        });
        let app = Router::new()
            .route(TRACK_PATH, post(track))
            .route("/healthz", get(healthz))
            .route("/admin/faults", get(get_faults).post(set_faults))
            .route("/admin/journey/{number}", get(journey))
            .with_state(shared.clone());
        let mut stop = stop_rx;
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    // An error means the handle is gone: stop serving then too.
                    let _ = stop.wait_for(|stopped| *stopped).await;
                })
                .await
        });
        Ok(SimulatorHandle {
            addr,
            shared,
            stop: stop_tx,
            task,
        })
    }
}

/// A running simulator.
pub struct SimulatorHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
}

impl SimulatorHandle {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`, the `base_url` for the sandbox plugin.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The simulated time now.
    pub fn now(&self) -> Timestamp {
        self.shared.clock.now()
    }

    /// The faults in force.
    pub fn faults(&self) -> Faults {
        lock(&self.shared.faults).faults.clone()
    }

    /// Replaces the faults and restarts the fault sequence from their seed.
    pub fn set_faults(&self, faults: Faults) -> Result<(), SimError> {
        faults.validate()?;
        *lock(&self.shared.faults) = FaultState::new(faults);
        Ok(())
    }

    /// Starts `number`'s journey at `at` (instead of when it is first asked about).
    pub fn register(&self, number: &str, at: Timestamp) -> Result<(), SimError> {
        let normalized = normalize_number(number)?;
        lock(&self.shared.first_seen).insert(normalized, at);
        Ok(())
    }

    /// Asks `lookup` where the journey of a number not seen yet started, instead of
    /// starting it at the first question: simulators in several processes that share the
    /// lookup (and the clock) then tell the same story about every number.
    pub fn look_up_starts(&self, lookup: StartLookup) {
        *lock(&self.shared.starts) = Some(lookup);
    }

    /// When `number`'s journey started, if it has.
    pub fn first_seen(&self, number: &str) -> Option<Timestamp> {
        let normalized = normalize_number(number).ok()?;
        lock(&self.shared.first_seen).get(&normalized).copied()
    }

    /// Stops accepting requests, ends requests held by a timeout fault, and waits for the
    /// server to finish.
    pub async fn shutdown(self) -> Result<(), SimError> {
        let _ = self.stop.send(true);
        match self.task.await {
            Ok(result) => result.map_err(SimError::Serve),
            Err(join) => Err(SimError::Serve(std::io::Error::other(join.to_string()))),
        }
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = ErrorBody {
        code: status.as_u16(),
        message: message.into(),
    };
    (status, Json(body)).into_response()
}

async fn track(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let (fault, faults) = {
        let mut state = lock(&shared.faults);
        (state.draw(), state.faults.clone())
    };
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    match fault {
        Fault::Timeout => {
            let mut stop = shared.stop.clone();
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(faults.timeout_ms)) => {}
                _ = stop.wait_for(|stopped| *stopped) => {}
            }
            return error(StatusCode::GATEWAY_TIMEOUT, "upstream timed out");
        }
        Fault::ServerError(0) => {
            return error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
        Fault::ServerError(1) => {
            return (
                StatusCode::BAD_GATEWAY,
                [(header::CONTENT_TYPE, "text/html")],
                "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>",
            )
                .into_response()
        }
        Fault::ServerError(_) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "service temporarily unavailable",
            )
        }
        Fault::RateLimit => {
            let mut response = error(StatusCode::TOO_MANY_REQUESTS, "too many requests");
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(faults.retry_after_secs),
            );
            return response;
        }
        Fault::None | Fault::Malformed(_) => {}
    }

    if !shared.config.api_key.is_empty() {
        let given = headers
            .get(API_KEY_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if given != shared.config.api_key {
            return error(StatusCode::UNAUTHORIZED, "bad api key");
        }
    }
    let request: TrackRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("body is not a track request: {e}"),
            )
        }
    };
    if request.numbers.len() > MAX_BATCH {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "too many numbers: {}, at most {MAX_BATCH} per request",
                request.numbers.len()
            ),
        );
    }
    let lookup = lock(&shared.starts).clone();
    if let Some(lookup) = lookup {
        for n in request
            .numbers
            .iter()
            .filter_map(|n| normalize_number(n).ok())
        {
            if lock(&shared.first_seen).contains_key(&n) {
                continue;
            }
            if let Some(start) = lookup(n.clone()).await {
                lock(&shared.first_seen).entry(n).or_insert(start);
            }
        }
    }
    let now = shared.clock.now();
    let response = TrackResponse {
        code: 0,
        results: request
            .numbers
            .iter()
            .map(|n| shared.result_for(n, now))
            .collect(),
    };
    match fault {
        Fault::Malformed(variant) => malformed(variant, &response),
        _ => Json(response).into_response(),
    }
}

/// A 200 whose body a client cannot use, in one of the ways real gateways produce.
fn malformed(variant: u8, response: &TrackResponse) -> Response {
    let json = serde_json::to_string(response).unwrap_or_default();
    let body = match variant {
        0 => json[..json.len() / 2].to_string(),
        1 => "<html><body>系统繁忙，请稍后再试</body></html>".to_string(),
        2 => r#"{"code":0,"results":"unavailable"}"#.to_string(),
        _ => String::new(),
    };
    let kind = if variant == 1 {
        "text/html; charset=utf-8"
    } else {
        "application/json"
    };
    (StatusCode::OK, [(header::CONTENT_TYPE, kind)], body).into_response()
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    now: String,
}

async fn healthz(State(shared): State<Arc<Shared>>) -> Json<Health> {
    Json(Health {
        status: "ok",
        now: format_time(shared.clock.now()),
    })
}

async fn get_faults(State(shared): State<Arc<Shared>>) -> Json<Faults> {
    Json(lock(&shared.faults).faults.clone())
}

async fn set_faults(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let faults: Faults = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("bad faults: {e}")),
    };
    if let Err(e) = faults.validate() {
        return error(StatusCode::BAD_REQUEST, e.to_string());
    }
    *lock(&shared.faults) = FaultState::new(faults.clone());
    Json(faults).into_response()
}

#[derive(Serialize)]
struct JourneyView {
    started: Option<String>,
    journey: Journey,
}

async fn journey(State(shared): State<Arc<Shared>>, Path(number): Path<String>) -> Response {
    let journey = normalize_number(&number).and_then(|n| {
        let started = lock(&shared.first_seen).get(&n).copied();
        let start = started.unwrap_or(crate::journey::REFERENCE_START);
        Journey::for_number_at(&n, &shared.config, start).map(|j| (started, j))
    });
    match journey {
        Ok((started, journey)) => Json(JourneyView {
            started: started.map(format_time),
            journey,
        })
        .into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::SignedDuration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use waybill_core::clock::ManualClock;

    use crate::wire::{decode, Reply};

    struct HttpReply {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl HttpReply {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    /// A bare HTTP/1.1 client: enough for these tests without pulling in a client crate.
    async fn http(addr: SocketAddr, method: &str, path: &str, key: &str, body: &str) -> HttpReply {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let key_line = if key.is_empty() {
            String::new()
        } else {
            format!("{API_KEY_HEADER}: {key}\r\n")
        };
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: sandbox\r\nContent-Type: application/json\r\n{key_line}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8(raw[..split].to_vec()).unwrap();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers = lines
            .filter_map(|l| l.split_once(": "))
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        HttpReply {
            status,
            headers,
            body: raw[split + 4..].to_vec(),
        }
    }

    async fn track_one(addr: SocketAddr, key: &str, number: &str) -> HttpReply {
        let body = format!(r#"{{"numbers":["{number}"]}}"#);
        http(addr, "POST", TRACK_PATH, key, &body).await
    }

    fn t0() -> Timestamp {
        "2024-05-01T00:00:00Z".parse().unwrap()
    }

    async fn start(config: SimConfig) -> (Arc<ManualClock>, SimulatorHandle) {
        let clock = Arc::new(ManualClock::new(t0()));
        let sim = Simulator::start("127.0.0.1:0".parse().unwrap(), clock.clone(), config)
            .await
            .unwrap();
        (clock, sim)
    }

    fn ok(reply: &HttpReply) -> TrackResponse {
        match decode(reply.status, &reply.body) {
            Reply::Ok(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn events_appear_as_the_simulated_clock_passes_them() {
        let (clock, sim) = start(SimConfig::default()).await;
        let number = "SB20240501001";
        let journey = Journey::for_number_at(number, &SimConfig::default(), t0()).unwrap();
        assert!(journey.events.len() > 5);

        let first = ok(&track_one(sim.addr(), "", number).await);
        assert_eq!(first.results[0].number, number);
        assert!(!first.results[0].found, "nothing before the pickup");
        assert_eq!(sim.first_seen(number), Some(t0()));

        let mut seen = 0;
        for _ in 0..30 {
            clock.advance(SignedDuration::from_hours(6));
            let r = ok(&track_one(sim.addr(), "", number).await);
            let events = &r.results[0].events;
            assert!(events.len() >= seen, "events never disappear");
            seen = events.len();
            let expected = journey.visible_at(clock.now().duration_since(t0())).len();
            assert_eq!(seen, expected);
            if let Some(newest) = events.first() {
                assert!(crate::wire::parse_time(&newest.time).unwrap() <= clock.now());
            }
        }
        assert_eq!(seen, journey.events.len());
        let done = ok(&track_one(sim.addr(), "", number).await);
        assert_eq!(done.results[0].events[0].code, "SIGNED");
        assert_eq!(done.results[0].events.last().unwrap().code, "PICKUP");
        sim.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn a_registered_start_sets_the_journey_clock() {
        let (_clock, sim) = start(SimConfig::default()).await;
        sim.register("sb20240501001", t0() - SignedDuration::from_hours(24 * 20))
            .unwrap();
        let r = ok(&track_one(sim.addr(), "", "SB20240501001").await);
        assert_eq!(r.results[0].events[0].code, "SIGNED");
        sim.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn invalid_numbers_get_an_error_result_beside_valid_ones() {
        let (_clock, sim) = start(SimConfig::default()).await;
        let reply = http(
            sim.addr(),
            "POST",
            TRACK_PATH,
            "",
            r#"{"numbers":["SB-1","SB123456"]}"#,
        )
        .await;
        let r = ok(&reply);
        assert!(r.results[0].error.as_deref().unwrap().contains("SB-1"));
        assert!(r.results[1].error.is_none());
        sim.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn bad_requests_get_400_with_the_reason() {
        let (_clock, sim) = start(SimConfig::default()).await;
        let reply = http(sim.addr(), "POST", TRACK_PATH, "", "{not json").await;
        assert_eq!(reply.status, 400);
        let numbers: Vec<String> = (0..51).map(|i| format!("\"SB{i:06}\"")).collect();
        let body = format!(r#"{{"numbers":[{}]}}"#, numbers.join(","));
        let reply = http(sim.addr(), "POST", TRACK_PATH, "", &body).await;
        assert_eq!(
            decode(reply.status, &reply.body),
            Reply::BadRequest("too many numbers: 51, at most 50 per request".into())
        );
        sim.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn a_configured_api_key_is_required() {
        let config = SimConfig {
            api_key: "s3cret".into(),
            ..SimConfig::default()
        };
        let (_clock, sim) = start(config).await;
        for wrong in ["", "guess"] {
            let reply = track_one(sim.addr(), wrong, "SB123456").await;
            assert_eq!(
                decode(reply.status, &reply.body),
                Reply::Unauthorized("bad api key".into())
            );
        }
        let reply = track_one(sim.addr(), "s3cret", "SB123456").await;
        assert_eq!(reply.status, 200);
        sim.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn rate_limit_faults_answer_429_with_retry_after() {
        let (_clock, sim) = start(SimConfig::default()).await;
        sim.set_faults(Faults {
            rate_limit_rate: 1.0,
            retry_after_secs: 17,
            ..Faults::default()
        })
        .unwrap();
        let reply = track_one(sim.addr(), "", "SB123456").await;
        assert_eq!(reply.status, 429);
        assert_eq!(reply.header("retry-after"), Some("17"));
        assert_eq!(
            sim.first_seen("SB123456"),
            None,
            "a refused request starts nothing"
        );
        sim.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn server_error_faults_answer_5xx_in_json_and_html() {
        let (_clock, sim) = start(SimConfig::default()).await;
        sim.set_faults(Faults {
            error_5xx_rate: 1.0,
            ..Faults::default()
        })
        .unwrap();
        let mut statuses = std::collections::BTreeSet::new();
        for _ in 0..30 {
            let reply = track_one(sim.addr(), "", "SB123456").await;
            assert!(matches!(
                decode(reply.status, &reply.body),
                Reply::ServerError { .. }
            ));
            statuses.insert(reply.status);
        }
        assert_eq!(
            statuses.into_iter().collect::<Vec<_>>(),
            vec![500, 502, 503]
        );
        sim.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn malformed_faults_answer_200_with_unusable_bodies() {
        let (_clock, sim) = start(SimConfig::default()).await;
        sim.set_faults(Faults {
            malformed_rate: 1.0,
            ..Faults::default()
        })
        .unwrap();
        for _ in 0..20 {
            let reply = track_one(sim.addr(), "", "SB123456").await;
            assert_eq!(reply.status, 200);
            assert!(
                matches!(decode(reply.status, &reply.body), Reply::Malformed { .. }),
                "{:?}",
                String::from_utf8_lossy(&reply.body)
            );
        }
        sim.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn fault_choice_is_reproducible_for_a_seed() {
        async fn pattern(sim: &SimulatorHandle, seed: u64) -> Vec<u16> {
            sim.set_faults(Faults {
                error_5xx_rate: 0.3,
                rate_limit_rate: 0.3,
                seed,
                ..Faults::default()
            })
            .unwrap();
            let mut out = Vec::new();
            for _ in 0..40 {
                out.push(track_one(sim.addr(), "", "SB123456").await.status);
            }
            out
        }
        let (_clock, sim) = start(SimConfig::default()).await;
        let a = pattern(&sim, 1).await;
        let b = pattern(&sim, 1).await;
        let c = pattern(&sim, 2).await;
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.contains(&200) && a.contains(&429));
        sim.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn timeout_faults_hold_the_request_and_shutdown_releases_it() {
        let (_clock, sim) = start(SimConfig::default()).await;
        sim.set_faults(Faults {
            timeout_rate: 1.0,
            timeout_ms: 60_000,
            ..Faults::default()
        })
        .unwrap();
        let addr = sim.addr();
        let held =
            tokio::time::timeout(Duration::from_millis(300), track_one(addr, "", "SB123456")).await;
        assert!(held.is_err(), "the request must still be open");
        // A short hold ends in a 504.
        sim.set_faults(Faults {
            timeout_rate: 1.0,
            timeout_ms: 50,
            ..Faults::default()
        })
        .unwrap();
        assert_eq!(track_one(addr, "", "SB123456").await.status, 504);
        sim.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn admin_endpoint_sets_and_reports_faults() {
        let (_clock, sim) = start(SimConfig::default()).await;
        let reply = http(
            sim.addr(),
            "POST",
            "/admin/faults",
            "",
            r#"{"rate_limit_rate":1.0,"retry_after_secs":3}"#,
        )
        .await;
        assert_eq!(reply.status, 200);
        assert_eq!(sim.faults().rate_limit_rate, 1.0);
        let reply = track_one(sim.addr(), "", "SB123456").await;
        assert_eq!(reply.header("retry-after"), Some("3"));

        let reply = http(
            sim.addr(),
            "POST",
            "/admin/faults",
            "",
            r#"{"timeout_rate":2}"#,
        )
        .await;
        assert_eq!(reply.status, 400);
        let reply = http(sim.addr(), "POST", "/admin/faults", "", r#"{"latency":2}"#).await;
        assert_eq!(reply.status, 400, "unknown fields are typos, not ignored");

        let reply = http(sim.addr(), "GET", "/admin/faults", "", "").await;
        let faults: Faults = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(faults.retry_after_secs, 3);
        sim.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn healthz_reports_the_simulated_time() {
        let (clock, sim) = start(SimConfig::default()).await;
        clock.advance(SignedDuration::from_hours(2));
        let reply = http(sim.addr(), "GET", "/healthz", "", "").await;
        let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(body["now"], "2024-05-01 10:00:00");
        sim.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn admin_journey_shows_the_plan() {
        let (_clock, sim) = start(SimConfig::default()).await;
        let reply = http(sim.addr(), "GET", "/admin/journey/SB20240501001", "", "").await;
        let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(body["journey"]["origin"], "昆明市");
        assert_eq!(body["started"], serde_json::Value::Null);
        let reply = http(sim.addr(), "GET", "/admin/journey/SB1", "", "").await;
        assert_eq!(reply.status, 400);
        sim.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn a_taken_port_is_a_bind_error_naming_the_address() {
        let (_clock, sim) = start(SimConfig::default()).await;
        let clock = Arc::new(ManualClock::new(t0()));
        let err = Simulator::start(sim.addr(), clock, SimConfig::default())
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains(&sim.addr().to_string()), "{err}");
        sim.shutdown().await.unwrap();
    }
}
