//! Turns an instantiated plugin into core's [`Carrier`]: drives its step machine and does
//! the HTTP with the host's client (rustls), with a timeout per request and retries of
//! transient failures that honour `Retry-After`. How many queries reach a carrier at once
//! and how often is decided in one place, the scheduler's gate (`[engine.carriers]`),
//! which every path to a carrier (polls and real-time queries) goes through; the adapter
//! only reports the carrier's rate hint in its capabilities.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use waybill_core::carrier::{Capabilities, Carrier, Normalizer, RawLine, TrackError, TrackOutcome};
use waybill_core::clock::Clock;
use waybill_core::model::{EventTime, Trace, TrackEvent, Waybill, CHINA_OFFSET};
use waybill_sdk::{
    HttpRequest, HttpResponse, Manifest, PluginError, Query, QueryWaybill, RawEvent, Step,
    StepMachine, WaybillOutcome, MAX_STEPS,
};

/// How the host treats one carrier's traffic.
#[derive(Clone)]
pub struct AdapterSettings {
    /// Timeout of one HTTP exchange.
    pub timeout: Duration,
    /// The carrier's rate in requests per second, reported in its capabilities for the
    /// scheduler's gate; `None` reports the manifest's hint.
    pub rate_limit_per_sec: Option<f64>,
    /// The clock queries are stamped with (the plugin signs with it): the engine's, so a
    /// sandbox on a fast clock and its simulator agree on the time.
    pub clock: Arc<dyn Clock>,
    /// Extra attempts after a transient failure (connection error, timeout, 429, 502-504).
    pub max_retries: u32,
    /// The longest `Retry-After` the host waits for before handing the answer to the plugin.
    pub max_retry_wait: Duration,
}

impl Default for AdapterSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(15),
            rate_limit_per_sec: None,
            clock: Arc::new(waybill_sandbox_sim::server::SystemClock),
            max_retries: 2,
            max_retry_wait: Duration::from_secs(10),
        }
    }
}

impl std::fmt::Debug for AdapterSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdapterSettings")
            .field("timeout", &self.timeout)
            .field("rate_limit_per_sec", &self.rate_limit_per_sec)
            .field("max_retries", &self.max_retries)
            .field("max_retry_wait", &self.max_retry_wait)
            .finish_non_exhaustive()
    }
}

/// A loaded (or in-process) plugin seen as a core [`Carrier`].
pub struct PluginCarrier {
    codes: Vec<&'static str>,
    manifest: Manifest,
    machine: Arc<dyn StepMachine>,
    client: reqwest::Client,
    normalizer: Arc<dyn Normalizer>,
    settings: AdapterSettings,
}

impl PluginCarrier {
    /// Wraps an instance. `normalizer` classifies events the plugin left without a state.
    pub fn new(
        manifest: Manifest,
        machine: Arc<dyn StepMachine>,
        normalizer: Arc<dyn Normalizer>,
        settings: AdapterSettings,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(settings.timeout)
            .user_agent(concat!("waybill/", env!("CARGO_PKG_VERSION")))
            .build()?;
        // Plugins are never unloaded, and codes are few and short: leaking them lets
        // `codes()` hand out `&str`s without self-borrowing.
        let codes = manifest
            .codes
            .iter()
            .map(|c| &*Box::leak(c.clone().into_boxed_str()))
            .collect();
        Ok(Self {
            codes,
            manifest,
            machine,
            client,
            normalizer,
            settings,
        })
    }

    async fn run_query(&self, query: &Query) -> Result<Vec<WaybillOutcome>, PluginError> {
        let mut step = self.machine.start(query);
        for _ in 0..MAX_STEPS {
            match step {
                Step::Done(outcomes) => return Ok(outcomes),
                Step::Failed(e) => return Err(e),
                Step::Send(req) => {
                    let resp = self.exchange(&req).await?;
                    step = self.machine.resume(&req.state, &resp);
                }
            }
        }
        match step {
            Step::Done(outcomes) => Ok(outcomes),
            Step::Failed(e) => Err(e),
            Step::Send(_) => Err(PluginError::internal(format!(
                "no result after {MAX_STEPS} requests"
            ))),
        }
    }

    /// One HTTP exchange with retries. A final non-2xx answer is returned to the plugin,
    /// which classifies it; only network failures become errors here.
    async fn exchange(&self, req: &HttpRequest) -> Result<HttpResponse, PluginError> {
        let mut attempt = 0;
        loop {
            let result = self.send_once(req).await;
            let wait = match &result {
                Err(PluginError::Transient { .. }) => Some(backoff(attempt)),
                Ok(resp) if matches!(resp.status, 429 | 502 | 503 | 504) => {
                    match retry_after(resp) {
                        Some(d) if d > self.settings.max_retry_wait => None,
                        Some(d) => Some(d),
                        None => Some(backoff(attempt)),
                    }
                }
                _ => None,
            };
            match wait {
                Some(d) if attempt < self.settings.max_retries => {
                    attempt += 1;
                    tokio::time::sleep(d).await;
                }
                _ => return result,
            }
        }
    }

    async fn send_once(&self, req: &HttpRequest) -> Result<HttpResponse, PluginError> {
        let method = reqwest::Method::from_bytes(req.method.as_bytes()).map_err(|_| {
            PluginError::internal(format!("plugin asked for HTTP method {:?}", req.method))
        })?;
        let mut builder = self.client.request(method, &req.url);
        for (k, v) in &req.headers {
            builder = builder.header(k, v);
        }
        if !req.body.is_empty() {
            builder = builder.body(req.body.clone());
        }
        // Errors name the host only: URLs may carry keys in their query strings.
        let host = reqwest::Url::parse(&req.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| "the carrier".to_owned());
        let resp = builder.send().await.map_err(|e| network_error(&host, &e))?;
        let status = resp.status().as_u16();
        let headers: Vec<(String, String)> = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = resp.bytes().await.map_err(|e| network_error(&host, &e))?;
        let mut out = HttpResponse::new(status, body.to_vec());
        for (k, v) in headers {
            out = out.with_header(k, v);
        }
        Ok(out)
    }

    fn to_trace(&self, waybill: &Waybill, events: Vec<RawEvent>) -> TrackOutcome {
        // An aggregator relays the real carrier's text, so classify it as that carrier's.
        let carrier = if self.manifest.aggregator {
            Some(waybill.company.as_str())
        } else {
            self.codes.first().copied()
        };
        let mut out = Vec::with_capacity(events.len());
        for ev in events {
            let offset = match ev.offset_minutes {
                None => CHINA_OFFSET,
                Some(m) => jiff::tz::Offset::from_seconds(m.saturating_mul(60)).map_err(|_| {
                    TrackError::BadResponse {
                        message: format!("event offset {m} minutes is out of range"),
                    }
                })?,
            };
            let time = EventTime::parse(&ev.time, offset).map_err(|e| TrackError::BadResponse {
                message: e.to_string(),
            })?;
            let (state, rule) = match ev.state {
                Some(s) => (
                    s,
                    format!(
                        "plugin:{}:{}",
                        carrier.unwrap_or(""),
                        ev.raw_code.as_deref().unwrap_or("")
                    ),
                ),
                None => {
                    let c = self.normalizer.classify(&RawLine {
                        text: &ev.text,
                        carrier,
                        raw_code: ev.raw_code.as_deref(),
                    });
                    (c.state, c.rule)
                }
            };
            let mut event = TrackEvent::new(time, ev.text, state).with_rule(rule);
            event.location = ev.location;
            event.raw_code = ev.raw_code;
            out.push(event);
        }
        Ok(Trace::from_events(&waybill.company, &waybill.number, out))
    }
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(200u64.saturating_mul(1 << attempt.min(6)))
}

fn retry_after(resp: &HttpResponse) -> Option<Duration> {
    resp.header("retry-after")?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

fn network_error(host: &str, e: &reqwest::Error) -> PluginError {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    PluginError::Transient {
        message: format!("{what} talking to {host}"),
    }
}

#[async_trait]
impl Carrier for PluginCarrier {
    fn codes(&self) -> &[&str] {
        &self.codes
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::from(&self.manifest.capabilities);
        if let Some(r) = self.settings.rate_limit_per_sec {
            caps.rate_limit_per_sec = Some(r);
        }
        caps
    }

    async fn track(&self, waybills: &[Waybill]) -> Vec<TrackOutcome> {
        let caps = &self.manifest.capabilities;
        let mut results: Vec<Option<TrackOutcome>> = waybills.iter().map(|_| None).collect();
        for chunk in plan_batches(waybills, caps.max_batch, caps.needs_phone) {
            let query = Query::new(
                chunk
                    .iter()
                    .map(|&i| {
                        let w = &waybills[i];
                        let q = QueryWaybill::new(&w.company, &w.number);
                        match &w.phone {
                            Some(p) => q.with_phone(p),
                            None => q,
                        }
                    })
                    .collect(),
            )
            .at(self.settings.clock.now().as_millisecond())
            .with_nonce(nonce());
            match self.run_query(&query).await {
                Err(e) => {
                    let e = TrackError::from(e);
                    for &i in &chunk {
                        results[i] = Some(Err(e.clone()));
                    }
                }
                Ok(mut outcomes) => {
                    for &i in &chunk {
                        let w = &waybills[i];
                        let found = outcomes
                            .iter()
                            .position(|o| o.number.eq_ignore_ascii_case(&w.number))
                            .map(|i| outcomes.swap_remove(i));
                        results[i] = Some(match found {
                            Some(WaybillOutcome {
                                result: Ok(events), ..
                            }) => self.to_trace(w, events),
                            Some(WaybillOutcome { result: Err(e), .. }) => Err(e.into()),
                            None => Err(TrackError::BadResponse {
                                message: format!("the plugin gave no outcome for {}", w.number),
                            }),
                        });
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(TrackError::BadResponse {
                        message: "the waybill was in no request".into(),
                    })
                })
            })
            .collect()
    }
}

/// Splits waybills into requests of at most `max_batch`, as indexes into `waybills`.
///
/// When the carrier needs the phone, it checks one phone per request (SF's
/// `checkPhoneNo`), so waybills are grouped by the last four digits of their phone
/// (no phone is a group of its own) before chunking: a mixed batch becomes several
/// requests instead of a refusal. Groups keep the order of their first waybill.
pub fn plan_batches(waybills: &[Waybill], max_batch: usize, by_phone: bool) -> Vec<Vec<usize>> {
    let max_batch = max_batch.max(1);
    let mut groups: Vec<(Option<String>, Vec<usize>)> = Vec::new();
    for (i, w) in waybills.iter().enumerate() {
        let key = if by_phone {
            w.phone.as_deref().map(last4)
        } else {
            None
        };
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(i),
            None => groups.push((key, vec![i])),
        }
    }
    groups
        .into_iter()
        .flat_map(|(_, members)| {
            members
                .chunks(max_batch)
                .map(<[usize]>::to_vec)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The last four digits the way the SDK's `QueryWaybill::phone_last4` reads them.
fn last4(phone: &str) -> String {
    QueryWaybill::new("", "")
        .with_phone(phone)
        .phone_last4()
        .unwrap_or_default()
        .to_owned()
}

/// A nonce per query: std's randomly keyed hasher over a counter and the clock, so no
/// extra dependency is needed for a value that only has to differ between queries.
fn nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_i128(jiff::Timestamp::now().as_nanosecond());
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use waybill_core::carrier::Classification;
    use waybill_core::state::State;
    use waybill_sdk::{CarrierPlugin, Config, InProcess};

    struct Fixed;
    impl Normalizer for Fixed {
        fn classify(&self, _line: &RawLine<'_>) -> Classification {
            Classification {
                state: State::InTransit,
                rule: "test:fixed".into(),
                confidence: 1.0,
            }
        }
    }

    /// Answers at once, without HTTP: one mapped and one unmapped event per number.
    struct Instant2;
    impl CarrierPlugin for Instant2 {
        fn manifest() -> Manifest {
            Manifest {
                codes: vec!["instant".into()],
                capabilities: waybill_sdk::Capabilities {
                    max_batch: 2,
                    ..Default::default()
                },
                ..Default::default()
            }
        }
        fn new(_: &Config) -> Result<Self, PluginError> {
            Ok(Instant2)
        }
        fn start(&self, q: &Query) -> Step {
            Step::Done(
                q.waybills
                    .iter()
                    .rev()
                    .map(|w| {
                        if w.number == "CLOCK" {
                            let at = format!("stamped {}", q.now_ms.unwrap_or(-1));
                            return WaybillOutcome::events(
                                &w.number,
                                vec![RawEvent::new("2024-05-01 10:00", &at)],
                            );
                        }
                        if w.number == "MISSING" {
                            return WaybillOutcome::error(
                                &w.number,
                                PluginError::NotFound {
                                    message: "unknown".into(),
                                },
                            );
                        }
                        WaybillOutcome::events(
                            &w.number,
                            vec![
                                RawEvent::new("2024-05-01 10:00", "picked up")
                                    .with_state(State::Collected)
                                    .with_code("10"),
                                RawEvent::new("2024-05-02 10:00", "moving"),
                            ],
                        )
                    })
                    .collect(),
            )
        }
        fn resume(&self, _: &str, _: &HttpResponse) -> Step {
            Step::Failed(PluginError::internal("no request was sent"))
        }
    }

    fn carrier() -> PluginCarrier {
        PluginCarrier::new(
            Instant2::manifest(),
            Arc::new(InProcess::<Instant2>::new(&Config::new()).unwrap()),
            Arc::new(Fixed),
            AdapterSettings::default(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn outcomes_come_back_in_waybill_order_across_batches() {
        let c = carrier();
        let wbs = ["A1", "MISSING", "C3"].map(|n| Waybill::new("instant", n));
        let out = c.track(&wbs).await;
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].as_ref().unwrap().nu, "A1");
        assert!(matches!(out[1], Err(TrackError::NotFound { .. })));
        assert_eq!(out[2].as_ref().unwrap().nu, "C3");
    }

    #[tokio::test]
    async fn events_without_state_go_to_the_normalizer_and_keep_the_rule() {
        let trace = carrier()
            .track(&[Waybill::new("instant", "A1")])
            .await
            .remove(0)
            .unwrap();
        assert_eq!(trace.data[0].state, State::InTransit);
        assert_eq!(trace.data[0].rule.as_deref(), Some("test:fixed"));
        assert_eq!(trace.data[1].state, State::Collected);
        assert_eq!(trace.data[1].rule.as_deref(), Some("plugin:instant:10"));
    }

    #[tokio::test]
    async fn queries_are_stamped_with_the_injected_clock_not_the_system_clock() {
        let at: jiff::Timestamp = "2031-01-02T03:04:05Z".parse().unwrap();
        let c = PluginCarrier::new(
            Instant2::manifest(),
            Arc::new(InProcess::<Instant2>::new(&Config::new()).unwrap()),
            Arc::new(Fixed),
            AdapterSettings {
                clock: Arc::new(waybill_core::clock::ManualClock::new(at)),
                ..AdapterSettings::default()
            },
        )
        .unwrap();
        let trace = c
            .track(&[Waybill::new("instant", "CLOCK")])
            .await
            .remove(0)
            .unwrap();
        assert_eq!(
            trace.data[0].context,
            format!("stamped {}", at.as_millisecond())
        );
    }

    /// One GET to `base_url` per waybill, answered after a pause by the test's server.
    struct Slow {
        base_url: String,
    }
    impl CarrierPlugin for Slow {
        fn manifest() -> Manifest {
            Manifest {
                codes: vec!["slow".into()],
                capabilities: waybill_sdk::Capabilities {
                    max_batch: 1,
                    ..Default::default()
                },
                ..Default::default()
            }
        }
        fn new(config: &Config) -> Result<Self, PluginError> {
            Ok(Slow {
                base_url: config.get("base_url").unwrap_or_default().to_owned(),
            })
        }
        fn start(&self, q: &Query) -> Step {
            Step::Send(HttpRequest::get(&self.base_url).state(&q.waybills[0].number))
        }
        fn resume(&self, number: &str, _: &HttpResponse) -> Step {
            Step::Done(vec![WaybillOutcome::events(
                number,
                vec![RawEvent::new("2024-05-01 10:00", "moving")],
            )])
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_engine_concurrency_is_the_only_cap_on_a_plugin_carrier() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let in_flight = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let app = axum::Router::new().route(
            "/",
            axum::routing::get({
                let (in_flight, peak) = (in_flight.clone(), peak.clone());
                move || async move {
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    "ok"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });

        let config = Config::from_pairs([("base_url", url.as_str())]);
        let carrier = PluginCarrier::new(
            Slow::manifest(),
            Arc::new(InProcess::<Slow>::new(&config).unwrap()),
            Arc::new(Fixed),
            AdapterSettings::default(),
        )
        .unwrap();
        let limit = crate::scheduler::CarrierLimit {
            concurrency: 12,
            rate_per_sec: None,
        };
        let carriers = crate::scheduler::Carriers::new(
            vec![Arc::new(carrier)],
            &crate::scheduler::CarrierLimits {
                default: limit,
                ..Default::default()
            },
        );
        let waybills: Vec<Waybill> = (0..24)
            .map(|i| Waybill::new("slow", format!("N{i}")))
            .collect();
        let out = carriers.track("slow", &waybills).await;
        assert!(out.iter().all(Result::is_ok));
        assert_eq!(
            peak.load(Ordering::SeqCst),
            12,
            "[engine.carriers] concurrency = 12 reaches the carrier, no cap below it"
        );
    }

    fn with_phone(n: &str, phone: Option<&str>) -> Waybill {
        let mut w = Waybill::new("shunfeng", n);
        w.phone = phone.map(str::to_owned);
        w
    }

    #[test]
    fn a_phone_checking_carrier_gets_one_phone_per_request() {
        let wbs = [
            with_phone("A", Some("13800005678")),
            with_phone("B", Some("13900001111")),
            with_phone("C", Some("5678")),
            with_phone("D", None),
            with_phone("E", Some("13900001111")),
            with_phone("F", Some("13700005678")),
        ];
        assert_eq!(
            plan_batches(&wbs, 2, true),
            vec![vec![0, 2], vec![5], vec![1, 4], vec![3]]
        );
    }

    #[test]
    fn other_carriers_are_chunked_in_order() {
        let wbs = [
            with_phone("A", Some("13800005678")),
            with_phone("B", Some("13900001111")),
            with_phone("C", None),
        ];
        assert_eq!(plan_batches(&wbs, 2, false), vec![vec![0, 1], vec![2]]);
        assert_eq!(
            plan_batches(&wbs, 0, false),
            vec![vec![0], vec![1], vec![2]]
        );
    }

    #[test]
    fn retry_after_reads_seconds() {
        let r = HttpResponse::new(429, "").with_header("Retry-After", " 3 ");
        assert_eq!(retry_after(&r), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(&HttpResponse::new(429, "")), None);
    }
}
