//! The sandbox carrier plugin: 沙箱快递 / Sandbox Express, a simulated courier.
//!
//! It tracks parcels on the sandbox simulator (`waybill simulate`, or
//! `waybill_sandbox_sim::server::Simulator` in tests) through the wire format of
//! [`waybill_sandbox_sim::wire`]: one `POST {base_url}/api/track` per query of up to 50
//! numbers, with the `X-Api-Key` header when an `api_key` is configured.
//!
//! Classification of answers:
//! - 401/403 → `unauthorized`; 429 → `rate_limited` with `Retry-After`; 5xx → `transient`;
//! - a body that does not parse (the simulator's "malformed" fault) → `transient`, as the
//!   wire format specifies: such bodies come from a gateway in trouble, not from a
//!   changed API;
//! - 400 → `invalid_input`; a number the sandbox cannot issue → `invalid_input` for that
//!   number; a number without events yet → `not_found` for that number.

use waybill_sandbox_sim::wire::{self, Reply, TrackRequest, TrackResult, WireEvent};
use waybill_sdk::{
    Capabilities, CarrierPlugin, Config, ConfigKey, HttpRequest, HttpResponse, Manifest,
    NumberRule, PluginError, Query, RawEvent, RuleRank, State, Step, WaybillOutcome,
};

/// Where `waybill simulate` listens by default.
pub const DEFAULT_BASE_URL: &str = "http://127.0.0.1:8765";

/// The step name carried in the request state.
const TRACK_STEP: &str = "track";

/// The plugin: its configuration.
pub struct Sandbox {
    base_url: String,
    api_key: Option<String>,
}

/// Maps a sandbox status code to the standard state. `failed_before` tells whether an
/// earlier event of the same parcel was a failed attempt, so a later signature reads as
/// "delivered after failure". Unknown codes give `None` (core's text normalizer decides).
///
/// ```
/// use waybill_carrier_sandbox::state_of;
/// use waybill_sdk::State;
/// assert_eq!(state_of("SIGNED", false), Some(State::Delivered));
/// assert_eq!(state_of("SIGNED", true), Some(State::DeliveredAfterFailure));
/// assert_eq!(state_of("TELEPORTED", false), None);
/// ```
pub fn state_of(code: &str, failed_before: bool) -> Option<State> {
    Some(match code {
        "PICKUP" => State::Collected,
        "DEPART" => State::InTransit,
        "ARRIVE" => State::AtTransferCentre,
        "DEST_CITY" => State::ArrivedDestinationCity,
        "OUTLET" => State::AtDeliveryOutlet,
        "OUT" => State::OutForDelivery,
        "LOCKER" => State::InLocker,
        "LOCKER_SIGNED" => State::DeliveredFromLocker,
        "SIGNED" if failed_before => State::DeliveredAfterFailure,
        "SIGNED" => State::Delivered,
        "PROXY" => State::DeliveredByProxy,
        "FAIL" => State::AttemptFailed,
        "REFUSED" => State::Refused,
        "RETURNING" => State::Returning,
        "RETURNED" => State::Returned,
        "LOST" => State::Lost,
        "EXPORT" => State::InTransit,
        "FLIGHT" => State::LineHaul,
        "CUSTOMS" => State::CustomsInProgress,
        "CUSTOMS_HOLD" => State::CustomsException,
        "CUSTOMS_CLEARED" => State::CustomsCleared,
        _ => return None,
    })
}

impl CarrierPlugin for Sandbox {
    fn manifest() -> Manifest {
        Manifest {
            codes: vec!["sandbox".into()],
            name_zh: "沙箱快递".into(),
            name_en: "Sandbox Express".into(),
            // Matches almost anything, so the guesser must rank it below every other
            // candidate.
            number_rules: vec![NumberRule {
                rank: Some(RuleRank::Fallback),
                ..NumberRule::new("sandbox_any_lowest_rank", r"^[0-9A-Za-z]{6,32}$")
            }],
            capabilities: Capabilities {
                max_batch: wire::MAX_BATCH,
                needs_phone: false,
                rate_limit_per_sec: None,
            },
            config_keys: vec![
                ConfigKey::optional(
                    "base_url",
                    format!("URL of the sandbox simulator (default {DEFAULT_BASE_URL})"),
                ),
                ConfigKey {
                    secret: true,
                    ..ConfigKey::optional(
                        "api_key",
                        "API key the simulator was started with (--api-key); empty for none",
                    )
                },
            ],
            plugin_version: env!("CARGO_PKG_VERSION").into(),
            ..Default::default()
        }
    }

    fn new(config: &Config) -> Result<Self, PluginError> {
        let base_url = config.base_url("base_url", DEFAULT_BASE_URL)?;
        let api_key = config
            .get("api_key")
            .filter(|k| !k.is_empty())
            .map(str::to_owned);
        Ok(Sandbox { base_url, api_key })
    }

    fn start(&self, query: &Query) -> Step {
        let numbers: Vec<String> = query.waybills.iter().map(|w| w.number.clone()).collect();
        if numbers.is_empty() {
            return Step::Done(vec![]);
        }
        if numbers.len() > wire::MAX_BATCH {
            return Step::Failed(PluginError::InvalidInput {
                message: format!(
                    "{} numbers in one query, the sandbox takes at most {}",
                    numbers.len(),
                    wire::MAX_BATCH
                ),
            });
        }
        let body = match serde_json::to_vec(&TrackRequest {
            numbers: numbers.clone(),
        }) {
            Ok(b) => b,
            Err(e) => return Step::Failed(PluginError::internal(e.to_string())),
        };
        let mut request = HttpRequest::post(format!("{}{}", self.base_url, wire::TRACK_PATH))
            .header("Accept", "application/json")
            .body("application/json", body)
            .state(format!("{TRACK_STEP}:{}", numbers.join(",")));
        if let Some(key) = &self.api_key {
            request = request.header(wire::API_KEY_HEADER, key.clone());
        }
        Step::Send(request)
    }

    fn resume(&self, state: &str, response: &HttpResponse) -> Step {
        match state.split_once(':') {
            Some((TRACK_STEP, numbers)) => after_track(numbers, response),
            _ => Step::Failed(PluginError::internal(format!("unknown step {state:?}"))),
        }
    }
}

fn after_track(numbers: &str, response: &HttpResponse) -> Step {
    let reply = match wire::decode(response.status, &response.body) {
        Reply::Ok(r) => r,
        Reply::BadRequest(message) => return Step::Failed(PluginError::InvalidInput { message }),
        Reply::Unauthorized(message) => return Step::Failed(PluginError::Unauthorized { message }),
        Reply::RateLimited => {
            return Step::Failed(PluginError::RateLimited {
                retry_after_secs: response.retry_after_secs(),
            })
        }
        Reply::ServerError { status, message } => {
            return Step::Failed(PluginError::Transient {
                message: format!("HTTP {status}: {message}"),
            })
        }
        Reply::Malformed { status, reason } => {
            return Step::Failed(PluginError::Transient {
                message: format!("HTTP {status}: unreadable reply: {reason}"),
            })
        }
    };
    let outcomes = numbers
        .split(',')
        .map(|number| {
            let found = reply
                .results
                .iter()
                .find(|r| r.number.eq_ignore_ascii_case(number));
            match found {
                Some(result) => outcome(number, result),
                None => WaybillOutcome::error(
                    number,
                    PluginError::bad_response("the sandbox reply has no result for this number"),
                ),
            }
        })
        .collect();
    Step::Done(outcomes)
}

fn outcome(number: &str, result: &TrackResult) -> WaybillOutcome {
    if let Some(message) = &result.error {
        return WaybillOutcome::error(
            number,
            PluginError::InvalidInput {
                message: message.clone(),
            },
        );
    }
    if !result.found || result.events.is_empty() {
        return WaybillOutcome::error(
            number,
            PluginError::NotFound {
                message: "the sandbox has no event for this number yet".into(),
            },
        );
    }
    // The wire lists newest first; walk oldest first to know about earlier failures.
    let mut failed = false;
    let mut events: Vec<RawEvent> = result
        .events
        .iter()
        .rev()
        .map(|e| {
            let state = state_of(&e.code, failed);
            failed |= e.code == "FAIL";
            raw_event(e, state)
        })
        .collect();
    events.reverse();
    WaybillOutcome::events(number, events)
}

fn raw_event(e: &WireEvent, state: Option<State>) -> RawEvent {
    let text = match &e.text_en {
        Some(en) => format!("{} ({en})", e.text),
        None => e.text.clone(),
    };
    RawEvent {
        time: e.time.clone(),
        offset_minutes: Some(i32::from(wire::WIRE_OFFSET_HOURS) * 60),
        text,
        location: (!e.location.is_empty()).then(|| e.location.clone()),
        raw_code: Some(e.code.clone()),
        state,
    }
}

waybill_sdk::export_carrier!(Sandbox);

#[cfg(test)]
mod tests {
    use super::*;
    use waybill_sandbox_sim::journey::EventCode;
    use waybill_sdk::{InProcess, StepMachine};

    fn machine(pairs: &[(&str, &str)]) -> InProcess<Sandbox> {
        InProcess::new(&Config::from_pairs(pairs.iter().copied())).unwrap()
    }

    #[test]
    fn every_sandbox_code_has_a_state() {
        for code in EventCode::ALL {
            assert!(state_of(code.as_str(), false).is_some(), "{code:?}");
        }
    }

    #[test]
    fn start_posts_the_numbers_with_the_key_in_a_header_only() {
        let m = machine(&[("base_url", "http://sim.test:9/"), ("api_key", "k3y")]);
        let q = Query::new(vec![
            waybill_sdk::QueryWaybill::new("sandbox", "SB123456"),
            waybill_sdk::QueryWaybill::new("sandbox", "SB654321"),
        ]);
        let Step::Send(req) = m.start(&q) else {
            panic!("expected a request")
        };
        assert_eq!(req.method, "POST");
        assert_eq!(req.url, "http://sim.test:9/api/track");
        let body: TrackRequest = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(body.numbers, vec!["SB123456", "SB654321"]);
        assert!(req
            .headers
            .contains(&("X-Api-Key".to_string(), "k3y".to_string())));
        assert_eq!(req.state, "track:SB123456,SB654321");
    }

    #[test]
    fn no_key_configured_sends_no_key_header() {
        let m = machine(&[]);
        let Step::Send(req) = m.start(&Query::single("sandbox", "SB123456")) else {
            panic!("expected a request")
        };
        assert!(req.url.starts_with(DEFAULT_BASE_URL));
        assert!(!req.headers.iter().any(|(n, _)| n == "X-Api-Key"));
    }

    #[test]
    fn a_base_url_without_scheme_is_a_config_error() {
        let err = InProcess::<Sandbox>::new(&Config::from_pairs([("base_url", "sim:9")]))
            .err()
            .unwrap();
        assert_eq!(err.kind(), "config");
    }

    #[test]
    fn a_signature_after_a_failed_attempt_reads_as_delivered_after_failure() {
        let body = r#"{"code":0,"results":[{"number":"SB123456","found":true,"events":[
            {"time":"2024-05-03 11:00:00","code":"SIGNED","text":"已签收","location":"北京市"},
            {"time":"2024-05-02 18:00:00","code":"FAIL","text":"派件未成功","location":"北京市"},
            {"time":"2024-05-01 10:00:00","code":"PICKUP","text":"已揽收","location":"深圳市"}]}]}"#;
        let m = machine(&[]);
        let Step::Done(out) = m.resume("track:SB123456", &HttpResponse::new(200, body)) else {
            panic!()
        };
        let events = out[0].result.as_ref().unwrap();
        let states: Vec<_> = events.iter().map(|e| e.state).collect();
        assert_eq!(
            states,
            vec![
                Some(State::DeliveredAfterFailure),
                Some(State::AttemptFailed),
                Some(State::Collected)
            ]
        );
        assert_eq!(events[0].offset_minutes, Some(480));
    }
}
