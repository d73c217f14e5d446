//! DHL: Shipment Tracking – Unified (`GET {base_url}/track/shipments`).
//!
//! One number per call: `?trackingNumber=<n>&language=en[&service=<hint>]`, header
//! `DHL-API-Key: <api_key>`. The answer lists `shipments[]` (one number can match several
//! services; the one whose `id` is the number wins, else the first); each has `status`
//! and `events[]` of one shape: `timestamp, location.address.addressLocality,
//! statusCode, status, description`.
//!
//! **States.** `statusCode` is coarse (`pre-transit`, `transit`, `delivered`, `failure`,
//! `unknown`, no out-for-delivery), so [`state_of`] refines it from the English
//! `status`/`description`; `unknown` and anything unrecognised give `None` (core's text
//! normalizer decides).
//!
//! **Times.** DHL often prints `timestamp` without an offset (`2025-03-04T09:12:00`): the
//! local time of the event's location, whose zone the API does not give. We take such a
//! civil time as **UTC** (`offset_minutes = Some(0)`), not as the SDK's default +08:00:
//! most DHL events are in Europe (UTC+0…+2), so the error is at most a few hours and never
//! the eight of the Chinese default; a timestamp with an offset keeps its own.
//!
//! **Errors** are ProblemDetail JSON `{title, status, detail, instance}`: 404 → not found
//! (for the number), 400 → invalid input (for the number), 401/403 → unauthorized,
//! 429 → rate limited (quota until 00:00 GMT; `Retry-After` when DHL sends one), 5xx →
//! transient.

use serde::Deserialize;
use waybill_sdk::{
    percent_encode, redact, Capabilities, CarrierPlugin, Config, ConfigKey, HttpRequest,
    HttpResponse, Manifest, NumberRule, PluginError, Query, RawEvent, State, Step, WaybillOutcome,
};

/// DHL's production API host.
pub const DEFAULT_BASE_URL: &str = "https://api-eu.dhl.com";

/// The offset taken for a timestamp printed without one: UTC (see the crate docs).
pub const NO_OFFSET_MINUTES: i32 = 0;

const TRACK_STEP: &str = "track";

/// The plugin: credentials and endpoint.
pub struct Dhl {
    base_url: String,
    api_key: String,
    service: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Reply {
    #[serde(default)]
    shipments: Vec<Shipment>,
}

#[derive(Debug, Deserialize)]
struct Shipment {
    #[serde(default)]
    id: String,
    #[serde(default)]
    status: Option<Event>,
    #[serde(default)]
    events: Vec<Event>,
}

#[derive(Debug, Deserialize)]
struct Event {
    #[serde(default)]
    timestamp: String,
    #[serde(default)]
    location: Option<Location>,
    #[serde(rename = "statusCode", default)]
    status_code: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(rename = "statusDetailed", default)]
    status_detailed: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Location {
    #[serde(default)]
    address: Option<Address>,
}

#[derive(Debug, Deserialize)]
struct Address {
    #[serde(rename = "addressLocality", default)]
    locality: Option<String>,
    #[serde(rename = "countryCode", default)]
    country: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Problem {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    detail: Option<String>,
}

/// Phrases that refine a `statusCode`, checked in order against the lower-cased
/// `status`, `statusDetailed` and `description`.
const TRANSIT_PHRASES: &[(&str, State)] = &[
    ("out with courier", State::OutForDelivery),
    ("out for delivery", State::OutForDelivery),
    ("delivery vehicle", State::OutForDelivery),
    ("with delivery courier", State::OutForDelivery),
    ("released by customs", State::CustomsCleared),
    ("customs clearance complete", State::CustomsCleared),
    ("cleared", State::CustomsCleared),
    ("customs", State::CustomsInProgress),
    ("clearance", State::CustomsInProgress),
    ("ready for pick", State::InLocker),
    ("available for pick", State::InLocker),
    ("delivery attempt", State::AttemptFailed),
    ("could not be delivered", State::AttemptFailed),
    ("forwarded", State::Redirected),
    ("picked up", State::Collected),
    ("accepted", State::Collected),
    ("posted", State::Collected),
    ("delivery facility", State::AtDeliveryOutlet),
    ("delivery base", State::AtDeliveryOutlet),
    ("destination parcel center", State::ArrivedDestinationCity),
    ("parcel center of origin", State::DepartedOrigin),
    ("processed", State::AtTransferCentre),
    ("arrived", State::AtTransferCentre),
    ("sort facility", State::AtTransferCentre),
    ("hub", State::AtTransferCentre),
];

const FAILURE_PHRASES: &[(&str, State)] = &[
    ("returned to sender", State::Returned),
    ("delivered back to the sender", State::Returned),
    ("return", State::Returning),
    ("refused", State::Refused),
    ("customs", State::CustomsException),
    ("clearance", State::CustomsException),
    ("address", State::AddressProblem),
    ("damaged", State::Damaged),
    ("lost", State::Lost),
    ("delay", State::Delayed),
    ("could not be delivered", State::AttemptFailed),
    ("delivery attempt", State::AttemptFailed),
    ("held", State::Held),
];

const DELIVERED_PHRASES: &[(&str, State)] = &[
    ("neighbour", State::DeliveredByProxy),
    ("neighbor", State::DeliveredByProxy),
    ("packstation", State::DeliveredFromLocker),
    ("parcel locker", State::DeliveredFromLocker),
    ("picked up by the recipient", State::DeliveredFromLocker),
    ("collected by the recipient", State::DeliveredFromLocker),
];

/// The state of a DHL event from its `statusCode` and its English text.
///
/// ```
/// use waybill_carrier_dhl::state_of;
/// use waybill_sdk::State;
/// assert_eq!(state_of("delivered", "Delivered to neighbour"), Some(State::DeliveredByProxy));
/// assert_eq!(state_of("transit", "Shipment is out with courier for delivery"), Some(State::OutForDelivery));
/// assert_eq!(state_of("transit", "Zugestellt"), Some(State::InTransit));
/// assert_eq!(state_of("failure", "Returned to sender"), Some(State::Returned));
/// assert_eq!(state_of("unknown", "whatever"), None);
/// ```
pub fn state_of(status_code: &str, text: &str) -> Option<State> {
    let text = text.to_lowercase();
    let refine = |phrases: &[(&str, State)], default: State| {
        phrases
            .iter()
            .find(|(p, _)| text.contains(p))
            .map(|(_, s)| *s)
            .unwrap_or(default)
    };
    Some(match status_code.trim().to_ascii_lowercase().as_str() {
        "pre-transit" => State::OrderReceived,
        "transit" => refine(TRANSIT_PHRASES, State::InTransit),
        "delivered" => refine(DELIVERED_PHRASES, State::Delivered),
        "failure" => refine(FAILURE_PHRASES, State::Problem),
        _ => return None,
    })
}

fn event(e: &Event) -> RawEvent {
    let text_parts: Vec<&str> = [&e.description, &e.status, &e.status_detailed]
        .into_iter()
        .filter_map(|s| s.as_deref())
        .filter(|s| !s.trim().is_empty())
        .collect();
    let text = text_parts.first().copied().unwrap_or_default().to_owned();
    let location = e
        .location
        .as_ref()
        .and_then(|l| l.address.as_ref())
        .and_then(|a| match (a.locality.as_deref(), a.country.as_deref()) {
            (Some(l), Some(c)) if !l.is_empty() && !c.is_empty() => Some(format!("{l}, {c}")),
            (Some(l), _) if !l.is_empty() => Some(l.to_owned()),
            (_, Some(c)) if !c.is_empty() => Some(c.to_owned()),
            _ => None,
        });
    let code = e.status_code.clone().filter(|c| !c.trim().is_empty());
    RawEvent {
        time: e.timestamp.clone(),
        offset_minutes: Some(NO_OFFSET_MINUTES),
        text,
        location,
        state: code
            .as_deref()
            .and_then(|c| state_of(c, &text_parts.join(" | "))),
        raw_code: code,
    }
}

impl Dhl {
    fn after_track(&self, number: &str, response: &HttpResponse) -> Step {
        if !(200..300).contains(&response.status) {
            let problem: Problem = serde_json::from_slice(&response.body).unwrap_or_default();
            let detail = redact(
                &[problem.title, problem.detail]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(": "),
                &[&self.api_key],
            );
            let message = format!("DHL HTTP {}: {detail}", response.status);
            return match response.status {
                404 => Step::Done(vec![WaybillOutcome::error(
                    number,
                    PluginError::NotFound { message },
                )]),
                400 => Step::Done(vec![WaybillOutcome::error(
                    number,
                    PluginError::InvalidInput { message },
                )]),
                401 | 403 => Step::Failed(PluginError::Unauthorized {
                    message: format!("{message} (check `api_key`)"),
                }),
                _ => Step::Failed(
                    response
                        .status_error()
                        .unwrap_or_else(|| PluginError::bad_response(message)),
                ),
            };
        }
        let reply: Reply = match response.json() {
            Ok(r) => r,
            Err(e) => return Step::Failed(e),
        };
        let shipment = reply
            .shipments
            .iter()
            .find(|s| s.id.eq_ignore_ascii_case(number))
            .or(reply.shipments.first());
        let events: Vec<RawEvent> = match shipment {
            Some(s) if !s.events.is_empty() => s.events.iter().map(event).collect(),
            Some(Shipment {
                status: Some(status),
                ..
            }) => vec![event(status)],
            _ => vec![],
        };
        if events.is_empty() {
            return Step::Done(vec![WaybillOutcome::error(
                number,
                PluginError::NotFound {
                    message: "DHL lists no event for this number".into(),
                },
            )]);
        }
        Step::Done(vec![WaybillOutcome::events(number, events)])
    }
}

impl CarrierPlugin for Dhl {
    fn manifest() -> Manifest {
        Manifest {
            codes: vec!["dhl".into()],
            name_zh: "DHL".into(),
            name_en: "DHL".into(),
            // Regions as core's own DHL rules give them: Express waybills are
            // international, the JJD and 00340 shapes are DHL Parcel Germany's. Left
            // empty they would count as Chinese shapes for the guesser's region prior.
            number_rules: vec![
                NumberRule::new("dhl_express_10", r"^\d{10}$").in_region("INT"),
                NumberRule::new("dhl_jjd", r"^JJD\d{18,20}$").in_region("EU"),
                NumberRule::new("dhl_parcel_de_sscc", r"^00340\d{15}$").in_region("EU"),
            ],
            capabilities: Capabilities {
                max_batch: 1,
                needs_phone: false,
                // The "Starter" plan: 1 call/s, 250/day.
                rate_limit_per_sec: Some(1.0),
            },
            config_keys: vec![
                ConfigKey::secret("api_key", "Consumer key of an app on developer.dhl.com"),
                ConfigKey::optional("base_url", format!("API host (default {DEFAULT_BASE_URL})")),
                ConfigKey::optional(
                    "service",
                    "Service hint sent with every query (express, parcel-de, ecommerce, ...)",
                ),
            ],
            plugin_version: env!("CARGO_PKG_VERSION").into(),
            ..Default::default()
        }
    }

    fn new(config: &Config) -> Result<Self, PluginError> {
        let base_url = config.base_url("base_url", DEFAULT_BASE_URL)?;
        Ok(Dhl {
            base_url,
            api_key: config.require("api_key")?.trim().to_owned(),
            service: config
                .get("service")
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        })
    }

    fn start(&self, query: &Query) -> Step {
        let number = match query.waybills.as_slice() {
            [] => return Step::Done(vec![]),
            [one] => one.number.trim(),
            many => {
                return Step::Failed(PluginError::InvalidInput {
                    message: format!(
                        "{} numbers in one query; DHL takes one per call",
                        many.len()
                    ),
                })
            }
        };
        let mut url = format!(
            "{}/track/shipments?trackingNumber={}&language=en",
            self.base_url,
            percent_encode(number)
        );
        if let Some(service) = &self.service {
            url.push_str(&format!("&service={}", percent_encode(service)));
        }
        Step::Send(
            HttpRequest::get(url)
                .header("DHL-API-Key", self.api_key.clone())
                .header("Accept", "application/json")
                .state(format!("{TRACK_STEP}:{number}")),
        )
    }

    fn resume(&self, state: &str, response: &HttpResponse) -> Step {
        match state.split_once(':') {
            Some((TRACK_STEP, number)) if !number.is_empty() => self.after_track(number, response),
            _ => Step::Failed(PluginError::internal(format!("unknown step {state:?}"))),
        }
    }
}

waybill_sdk::export_carrier!(Dhl);

#[cfg(test)]
mod tests {
    use super::*;
    use waybill_sdk::QueryWaybill;

    const KEY: &str = "dhl-key-7Hq2mZ0pX";
    const STATE: &str = "track:00340434161094042557";

    fn plugin() -> Dhl {
        Dhl::new(&Config::from_pairs([
            ("api_key", KEY),
            ("base_url", "http://dhl.test/"),
            ("service", "parcel-de"),
        ]))
        .unwrap()
    }

    fn resume(status: u16, body: &[u8]) -> Step {
        plugin().resume(STATE, &HttpResponse::new(status, body.to_vec()))
    }

    #[test]
    fn start_gets_one_number_with_the_key_in_the_header() {
        let Step::Send(req) = plugin().start(&Query::single("dhl", "00340434161094042557")) else {
            panic!()
        };
        assert_eq!(req.method, "GET");
        assert_eq!(
            req.url,
            "http://dhl.test/track/shipments?trackingNumber=00340434161094042557&language=en&service=parcel-de"
        );
        assert!(req
            .headers
            .contains(&("DHL-API-Key".to_owned(), KEY.to_owned())));
        assert!(!req.url.contains(KEY));
        assert_eq!(req.state, STATE);
    }

    #[test]
    fn number_rules_are_international_or_german_not_chinese() {
        let regions: Vec<(String, String)> = Dhl::manifest()
            .number_rules
            .iter()
            .map(|r| {
                let rule = r.to_format_rule("dhl", "DHL").unwrap();
                (rule.id, rule.region)
            })
            .collect();
        assert_eq!(
            regions,
            [
                ("dhl_express_10", "INT"),
                ("dhl_jjd", "EU"),
                ("dhl_parcel_de_sscc", "EU")
            ]
            .map(|(id, region)| (id.to_owned(), region.to_owned()))
        );
    }

    #[test]
    fn two_numbers_are_refused() {
        let q = Query::new(vec![
            QueryWaybill::new("dhl", "1234567890"),
            QueryWaybill::new("dhl", "1234567891"),
        ]);
        assert!(matches!(
            plugin().start(&q),
            Step::Failed(PluginError::InvalidInput { .. })
        ));
    }

    #[test]
    fn transit_events_are_refined_from_their_text() {
        let Step::Done(out) = resume(200, include_bytes!("../fixtures/in_transit.json")) else {
            panic!()
        };
        let events = out[0].result.as_ref().unwrap();
        let states: Vec<_> = events.iter().map(|e| e.state).collect();
        assert_eq!(
            states,
            vec![
                Some(State::OutForDelivery),
                Some(State::ArrivedDestinationCity),
                Some(State::DepartedOrigin),
                Some(State::Collected),
                Some(State::OrderReceived),
            ]
        );
        assert_eq!(events[0].location.as_deref(), Some("Leipzig, DE"));
        assert_eq!(events[0].raw_code.as_deref(), Some("transit"));
    }

    #[test]
    fn a_timestamp_without_offset_is_taken_as_utc_and_one_with_offset_keeps_it() {
        let Step::Done(out) = resume(200, include_bytes!("../fixtures/in_transit.json")) else {
            panic!()
        };
        let e = &out[0].result.as_ref().unwrap()[0];
        assert_eq!(e.time, "2025-03-05T07:41:00");
        assert_eq!(e.offset_minutes, Some(0));
        let Step::Done(out) = resume(200, include_bytes!("../fixtures/delivered.json")) else {
            panic!()
        };
        assert_eq!(
            out[0].result.as_ref().unwrap()[0].time,
            "2025-03-06T11:27:00+01:00"
        );
    }

    #[test]
    fn a_delivered_express_shipment_went_through_customs() {
        let Step::Done(out) = resume(200, include_bytes!("../fixtures/delivered.json")) else {
            panic!()
        };
        let states: Vec<_> = out[0]
            .result
            .as_ref()
            .unwrap()
            .iter()
            .map(|e| e.state.unwrap())
            .collect();
        assert_eq!(
            states,
            vec![
                State::Delivered,
                State::OutForDelivery,
                State::CustomsCleared,
                State::CustomsException,
                State::Collected
            ]
        );
    }

    #[test]
    fn the_status_stands_in_when_there_are_no_events() {
        let body = br#"{"shipments":[{"id":"X","status":{"timestamp":"2025-03-01T10:00:00","statusCode":"pre-transit","description":"Label created"}}]}"#;
        let Step::Done(out) = resume(200, body) else {
            panic!()
        };
        let events = out[0].result.as_ref().unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].state, Some(State::OrderReceived));
        let Step::Done(out) = resume(200, br#"{"shipments":[]}"#) else {
            panic!()
        };
        assert_eq!(out[0].result.as_ref().unwrap_err().kind(), "not_found");
    }

    #[test]
    fn problem_details_are_classified() {
        let Step::Done(out) = resume(404, include_bytes!("../fixtures/not_found.json")) else {
            panic!()
        };
        let e = out[0].result.as_ref().unwrap_err();
        assert_eq!(e.kind(), "not_found");
        assert!(e
            .to_string()
            .contains("No shipment with given tracking number"));
        let Step::Failed(e) = resume(401, include_bytes!("../fixtures/unauthorized.json")) else {
            panic!()
        };
        assert_eq!(e.kind(), "unauthorized");
        let Step::Done(out) = resume(400, br#"{"title":"Bad request","status":400}"#) else {
            panic!()
        };
        assert_eq!(out[0].result.as_ref().unwrap_err().kind(), "invalid_input");
        let Step::Failed(e) = resume(503, b"<html>down</html>") else {
            panic!()
        };
        assert_eq!(e.kind(), "transient");
    }

    #[test]
    fn an_unauthorized_error_never_carries_the_key() {
        let body =
            format!(r#"{{"title":"Unauthorized","status":401,"detail":"key {KEY} is invalid"}}"#);
        let Step::Failed(e) = resume(401, body.as_bytes()) else {
            panic!()
        };
        assert!(!e.to_string().contains(KEY), "{e}");
    }

    #[test]
    fn quota_exhaustion_is_rate_limited_with_retry_after() {
        let r = HttpResponse::new(
            429,
            include_bytes!("../fixtures/rate_limited.json").to_vec(),
        )
        .with_header("Retry-After", "3600");
        assert_eq!(
            plugin().resume(STATE, &r),
            Step::Failed(PluginError::RateLimited {
                retry_after_secs: Some(3600)
            })
        );
    }

    #[test]
    fn a_truncated_body_is_a_bad_response() {
        let Step::Failed(e) = resume(200, include_bytes!("../fixtures/malformed.json")) else {
            panic!()
        };
        assert_eq!(e.kind(), "bad_response");
    }
}
