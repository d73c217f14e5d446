//! DHL: Shipment Tracking – Unified (`GET {base_url}/track/shipments`).
//!
//! One number per call: `?trackingNumber=<n>&language=en[&service=<hint>]`, header
//! `DHL-API-Key: <api_key>`. The answer lists `shipments[]` (one number can match several
//! services; the one whose `id` is the number wins, else the first); each has `status`
//! and `events[]` of one shape: `timestamp, location.address.addressLocality,
//! statusCode, status, description`.
//!
//! **States.** DHL's codes decide first. `status` carries, for several divisions, an
//! UPPER_SNAKE code (`OUT_FOR_DELIVERY`, `NOT_HOME`, `DELIVERED_AT_PARCELSHOP`, ...): the
//! finest DHL gives, mapped by [`status_codes`]. Otherwise `statusCode` ([`status_code_table`]:
//! `pre-transit`, `transit`, `delivered`, `failure`; `unknown` has no state) fixes the
//! phase, and the English `status`/`description` only refine it within that phase
//! ([`state_of`]). `returnFlag` (a boolean, or its string) marks a return shipment: its
//! delivery is back at the sender (returned), its journey a return (returning).
//!
//! **Times.** DHL often prints `timestamp` without an offset (`2025-03-04T09:12:00`): the
//! local time of the event's place. Its offset is that of the event's
//! `location.address.countryCode` at that time ([`waybill_sdk::zone`], summer time
//! included); without one, that of the shipment's service home country (`parcel-de`,
//! `post-de` → DE, `parcel-nl` → NL, `parcel-pl` → PL, `parcel-uk` → GB) or of its
//! origin when origin and destination share a country; only when none is known, UTC
//! ([`NO_OFFSET_MINUTES`]). A timestamp with an offset keeps its own.
//!
//! **Errors** are ProblemDetail JSON `{title, status, detail, instance}`: 404 → not found
//! (for the number), 400 → invalid input (for the number), 401/403 → unauthorized,
//! 429 → rate limited (quota until 00:00 GMT; `Retry-After` when DHL sends one), 5xx →
//! transient.

use serde::Deserialize;
use waybill_sdk::{
    percent_encode, redact, zone, Capabilities, CarrierPlugin, CodeTable, Config, ConfigKey,
    HttpRequest, HttpResponse, Manifest, NumberRule, PluginError, Query, RawEvent, State, Step,
    WaybillOutcome,
};

/// DHL's production API host.
pub const DEFAULT_BASE_URL: &str = "https://api-eu.dhl.com";

/// The offset taken for a timestamp printed without one when no place settles it: UTC
/// (see the crate docs).
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
    /// A string in most answers, an integer in the specification's own example.
    #[serde(default, deserialize_with = "string_or_number")]
    id: String,
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    origin: Option<Location>,
    #[serde(default)]
    destination: Option<Location>,
    #[serde(rename = "returnFlag", default, deserialize_with = "lenient_bool")]
    return_flag: bool,
    #[serde(default)]
    status: Option<Event>,
    #[serde(default)]
    events: Vec<Event>,
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => s,
        serde_json::Value::Number(n) => n.to_string(),
        _ => String::new(),
    })
}

/// A boolean, or the strings `"true"`/`"false"`; anything else is an error, since the flag
/// turns a delivery into a return.
fn lenient_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Bool(b) => Ok(b),
        serde_json::Value::Null => Ok(false),
        serde_json::Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Ok(true),
        serde_json::Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Ok(false),
        other => Err(serde::de::Error::custom(format!(
            "`returnFlag` must be true or false, got {other}"
        ))),
    }
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

/// Where DHL documents its codes.
const CODE_SOURCE: &str =
    "DHL Shipment Tracking - Unified API 1.5.6 (statusCode); DHL Parcel status codes (status)";

/// DHL's `statusCode` table: the phase; the text refines it within the phase.
pub fn status_code_table() -> CodeTable {
    CodeTable::new("statusCode", CODE_SOURCE)
        .code(
            "pre-transit",
            "awaiting the shipment",
            Some(State::OrderReceived),
        )
        .code("transit", "accepted, on its way", Some(State::InTransit))
        .code("delivered", "delivered", Some(State::Delivered))
        .code(
            "failure",
            "undeliverable, customs, expired or returned",
            Some(State::Problem),
        )
        .code("unknown", "status unknown", None)
}

/// The UPPER_SNAKE codes DHL divisions send in `status`.
pub fn status_codes() -> CodeTable {
    use State::*;
    [
        (
            "PRENOTIFICATION_RECEIVED",
            "the sender announced the shipment",
            OrderReceived,
        ),
        ("DATA_RECEIVED", "shipment data received", OrderReceived),
        (
            "DATA_RECEIVED_WITH_PREFIX_LABEL",
            "label created",
            OrderReceived,
        ),
        ("SHIPMENT_ACCEPTANCE", "accepted by DHL", Collected),
        (
            "SHIPMENT_ACCEPTANCE_PARCELSHOP",
            "handed in at a DHL point",
            Collected,
        ),
        ("PARCEL_SORTED_AT_HUB", "sorted at a hub", AtTransferCentre),
        ("SHIPMENT_SORTED", "sorted", AtTransferCentre),
        ("DEPOT_SCAN", "scanned at a depot", AtTransferCentre),
        ("SCAN_OK_GATEWAY", "scanned at a gateway", AtTransferCentre),
        ("DEPART_FACILITY", "left a facility", InTransit),
        ("GATEWAY_DEPARTED", "left the gateway", InTransit),
        ("IN_TRANSIT", "in transit", InTransit),
        ("UNDERWAY", "under way", InTransit),
        ("CUSTOMS", "in customs", CustomsInProgress),
        (
            "PARCEL_ARRIVED_AT_LOCAL_DEPOT",
            "at the local depot",
            AtDeliveryOutlet,
        ),
        (
            "ARRIVED_AT_DELIVERY_FACILITY",
            "at the delivery facility",
            AtDeliveryOutlet,
        ),
        (
            "DELIVERY_PLANNED_IN_ROUTE",
            "planned in a delivery route",
            OutForDelivery,
        ),
        ("OUT_FOR_DELIVERY", "out for delivery", OutForDelivery),
        ("IN_DELIVERY", "in delivery", OutForDelivery),
        ("NOT_HOME", "recipient not at home", AttemptFailed),
        (
            "NEW_DELIVERY_ATTEMPT",
            "another delivery attempt planned",
            Redelivery,
        ),
        ("TRANSPORT_DELAY", "delayed in transport", Delayed),
        ("EXCEPTION", "exception", Problem),
        ("DELIVERED", "delivered", Delivered),
        (
            "DELIVERED_AT_NEIGHBOURS",
            "delivered to a neighbour",
            DeliveredByProxy,
        ),
        (
            "DELIVERED_AT_PARCELSHOP",
            "at a DHL point, awaiting collection",
            InLocker,
        ),
        (
            "AWAITING_RECEIVER_COLLECTION",
            "awaiting collection by the recipient",
            InLocker,
        ),
        (
            "COLLECTED_AT_PARCELSHOP",
            "collected by the recipient at a DHL point",
            DeliveredFromLocker,
        ),
        (
            "COLLECTED_AT_PARCELSTATION",
            "collected by the recipient at a parcel station",
            DeliveredFromLocker,
        ),
        ("REFUSED", "refused by the recipient", Refused),
        (
            "PARCEL_READY_FOR_RETURN_TO_HUB",
            "ready to go back",
            Returning,
        ),
        (
            "PARCEL_SCANNED_AT_RETURN_HUB",
            "at the return hub",
            Returning,
        ),
        ("RETURNED_TO_SHIPPER", "returned to the shipper", Returned),
        (
            "DELIVERED_AT_SHIPPER",
            "delivered back to the shipper",
            Returned,
        ),
        (
            "SHIPMENT_STOPPED",
            "stopped at the sender's request",
            Intercepted,
        ),
        ("DESTROYED", "destroyed", Lost),
    ]
    .into_iter()
    .fold(
        CodeTable::new("status", CODE_SOURCE),
        |t, (code, meaning, state)| t.code(code, meaning, Some(state)),
    )
}

/// The state of a DHL event from its `statusCode` and its English text: the code fixes
/// the phase, the text refines within it. (An UPPER_SNAKE `status` is read first, by the
/// caller, from [`status_codes`].)
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

/// A status is an UPPER_SNAKE code, not a sentence: DHL sends both in the same field.
fn is_snake_code(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// The country of a service's home network, for times printed without an offset.
fn service_country(service: &str) -> Option<&'static str> {
    Some(match service {
        "parcel-de" | "post-de" => "DE",
        "parcel-nl" => "NL",
        "parcel-pl" => "PL",
        "parcel-uk" => "GB",
        _ => return None,
    })
}

fn country_of(l: Option<&Location>) -> Option<&str> {
    l?.address
        .as_ref()?
        .country
        .as_deref()
        .map(str::trim)
        .filter(|c| c.len() == 2)
}

/// What the events of one shipment share: its tables and where an offset-less time is.
struct Context<'a> {
    status_codes: CodeTable,
    fallback_country: Option<&'a str>,
    return_flag: bool,
}

impl<'a> Context<'a> {
    fn new(s: &'a Shipment, configured_service: Option<&'a str>) -> Self {
        let origin = country_of(s.origin.as_ref());
        let same_country = origin.filter(|o| country_of(s.destination.as_ref()) == Some(*o));
        Context {
            status_codes: status_codes(),
            fallback_country: s
                .service
                .as_deref()
                .or(configured_service)
                .and_then(service_country)
                .or(same_country),
            return_flag: s.return_flag,
        }
    }

    fn event(&self, e: &Event) -> RawEvent {
        let text_parts: Vec<&str> = [&e.description, &e.status, &e.status_detailed]
            .into_iter()
            .filter_map(|s| s.as_deref())
            .filter(|s| !s.trim().is_empty())
            .collect();
        let text = text_parts.first().copied().unwrap_or_default().to_owned();
        let address = e.location.as_ref().and_then(|l| l.address.as_ref());
        let location = address.and_then(|a| match (a.locality.as_deref(), a.country.as_deref()) {
            (Some(l), Some(c)) if !l.is_empty() && !c.is_empty() => Some(format!("{l}, {c}")),
            (Some(l), _) if !l.is_empty() => Some(l.to_owned()),
            (_, Some(c)) if !c.is_empty() => Some(c.to_owned()),
            _ => None,
        });
        let code = e.status_code.as_deref().map(str::trim).unwrap_or_default();
        let status = e
            .status
            .as_deref()
            .map(str::trim)
            .filter(|s| is_snake_code(s))
            .unwrap_or_default();
        let state = self
            .status_codes
            .state_of(status)
            .or_else(|| state_of(code, &text_parts.join(" | ")))
            .map(|s| self.as_return(s));
        let country = country_of(e.location.as_ref()).or(self.fallback_country);
        let offset = country
            .and_then(|c| zone::offset_minutes_at(&e.timestamp, c, None))
            .unwrap_or(NO_OFFSET_MINUTES);
        let mut ev = RawEvent::new(e.timestamp.clone(), text)
            .with_offset_minutes(offset)
            .with_codes([("statusCode", code), ("status", status)]);
        ev.location = location;
        ev.state = state;
        ev
    }

    /// A return shipment's delivery is back at the sender, its journey a return.
    fn as_return(&self, s: State) -> State {
        use waybill_sdk::Phase;
        if !self.return_flag {
            return s;
        }
        match s.phase() {
            Phase::Delivered => State::Returned,
            Phase::Collected
            | Phase::InTransit
            | Phase::OutForDelivery
            | Phase::AvailableForPickup => State::Returning,
            _ => s,
        }
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
            Some(s) => {
                let cx = Context::new(s, self.service.as_deref());
                match (&s.status, s.events.is_empty()) {
                    (_, false) => s.events.iter().map(|e| cx.event(e)).collect(),
                    (Some(status), true) => vec![cx.event(status)],
                    (None, true) => vec![],
                }
            }
            None => vec![],
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
            code_tables: vec![status_code_table(), status_codes()],
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
        assert_eq!(events[0].raw_code.as_deref(), Some("statusCode=transit"));
    }

    #[test]
    fn a_timestamp_without_offset_takes_the_offset_of_its_country_and_one_with_offset_keeps_it() {
        let Step::Done(out) = resume(200, include_bytes!("../fixtures/in_transit.json")) else {
            panic!()
        };
        // Leipzig, DE, in March: CET.
        let e = &out[0].result.as_ref().unwrap()[0];
        assert_eq!(e.time, "2025-03-05T07:41:00");
        assert_eq!(e.offset_minutes, Some(60));
        // Bonn in July: CEST.
        let Step::Done(out) = resume(200, include_bytes!("../fixtures/returned.json")) else {
            panic!()
        };
        assert_eq!(out[0].result.as_ref().unwrap()[0].offset_minutes, Some(120));
        let Step::Done(out) = resume(200, include_bytes!("../fixtures/delivered.json")) else {
            panic!()
        };
        assert_eq!(
            out[0].result.as_ref().unwrap()[0].time,
            "2025-03-06T11:27:00+01:00"
        );
    }

    #[test]
    fn without_a_country_the_service_home_or_utc_gives_the_offset() {
        let body = |service: &str| {
            format!(
                r#"{{"shipments":[{{"id":"X","service":"{service}","events":[{{"timestamp":"2025-07-01T10:00:00","statusCode":"transit","location":{{"address":{{"addressLocality":"Warszawa"}}}}}}]}}]}}"#
            )
        };
        let offset = |service: &str| {
            let Step::Done(out) = resume(200, body(service).as_bytes()) else {
                panic!()
            };
            out[0].result.as_ref().unwrap()[0].offset_minutes
        };
        assert_eq!(offset("parcel-pl"), Some(120));
        assert_eq!(offset("parcel-uk"), Some(60));
        // The answer's own service wins over the configured one (parcel-de): freight has
        // no home country, and no country is printed, so only UTC is left.
        assert_eq!(offset("freight"), Some(NO_OFFSET_MINUTES));
    }

    #[test]
    fn the_specification_example_with_an_integer_id_is_read() {
        let r = HttpResponse::new(
            200,
            include_bytes!("../fixtures/spec_example.json").to_vec(),
        );
        let Step::Done(out) = plugin().resume("track:7777777770", &r) else {
            panic!()
        };
        assert_eq!(out[0].number, "7777777770");
        let events = out[0].result.as_ref().unwrap();
        let states: Vec<_> = events.iter().map(|e| e.state.unwrap()).collect();
        assert_eq!(
            states,
            [
                State::Delivered,
                State::OutForDelivery,
                State::AtTransferCentre,
                State::Collected
            ]
        );
        // Amsterdam in March, no offset printed: CET.
        assert_eq!(events[0].offset_minutes, Some(60));
        assert_eq!(
            events[1].raw_code.as_deref(),
            Some("statusCode=transit status=OUT_FOR_DELIVERY")
        );
    }

    #[test]
    fn a_return_shipment_is_returning_then_returned() {
        let Step::Done(out) = resume(200, include_bytes!("../fixtures/returned.json")) else {
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
            [
                State::Returned,
                State::Returning,
                State::Returning,
                State::Returning
            ]
        );
        // The flag as a string reads the same; a flag that is neither is refused.
        let body = |flag: &str| {
            format!(
                r#"{{"shipments":[{{"id":"X","returnFlag":{flag},"events":[{{"timestamp":"2025-07-01T10:00:00","statusCode":"delivered"}}]}}]}}"#
            )
        };
        let Step::Done(out) = resume(200, body(r#""true""#).as_bytes()) else {
            panic!()
        };
        assert_eq!(
            out[0].result.as_ref().unwrap()[0].state,
            Some(State::Returned)
        );
        let Step::Done(out) = resume(200, body("false").as_bytes()) else {
            panic!()
        };
        assert_eq!(
            out[0].result.as_ref().unwrap()[0].state,
            Some(State::Delivered)
        );
        assert!(matches!(
            resume(200, body(r#""maybe""#).as_bytes()),
            Step::Failed(PluginError::BadResponse { .. })
        ));
    }

    #[test]
    fn every_documented_code_maps_to_its_state() {
        let Step::Done(out) = resume(200, include_bytes!("../fixtures/every_code.json")) else {
            panic!()
        };
        let mut got: Vec<(String, Option<State>)> = out[0]
            .result
            .as_ref()
            .unwrap()
            .iter()
            .map(|e| (e.raw_code.clone().unwrap(), e.state))
            .collect();
        got.reverse(); // oldest first, as the fixture was written
        use State::*;
        let want: [(&str, Option<State>); 41] = [
            (
                "statusCode=pre-transit status=PRENOTIFICATION_RECEIVED",
                Some(OrderReceived),
            ),
            (
                "statusCode=pre-transit status=DATA_RECEIVED",
                Some(OrderReceived),
            ),
            (
                "statusCode=pre-transit status=DATA_RECEIVED_WITH_PREFIX_LABEL",
                Some(OrderReceived),
            ),
            (
                "statusCode=transit status=SHIPMENT_ACCEPTANCE",
                Some(Collected),
            ),
            (
                "statusCode=transit status=SHIPMENT_ACCEPTANCE_PARCELSHOP",
                Some(Collected),
            ),
            (
                "statusCode=transit status=PARCEL_SORTED_AT_HUB",
                Some(AtTransferCentre),
            ),
            (
                "statusCode=transit status=SHIPMENT_SORTED",
                Some(AtTransferCentre),
            ),
            (
                "statusCode=transit status=DEPOT_SCAN",
                Some(AtTransferCentre),
            ),
            (
                "statusCode=transit status=SCAN_OK_GATEWAY",
                Some(AtTransferCentre),
            ),
            ("statusCode=transit status=DEPART_FACILITY", Some(InTransit)),
            (
                "statusCode=transit status=GATEWAY_DEPARTED",
                Some(InTransit),
            ),
            ("statusCode=transit status=IN_TRANSIT", Some(InTransit)),
            ("statusCode=transit status=UNDERWAY", Some(InTransit)),
            ("statusCode=transit status=CUSTOMS", Some(CustomsInProgress)),
            (
                "statusCode=transit status=PARCEL_ARRIVED_AT_LOCAL_DEPOT",
                Some(AtDeliveryOutlet),
            ),
            (
                "statusCode=transit status=ARRIVED_AT_DELIVERY_FACILITY",
                Some(AtDeliveryOutlet),
            ),
            (
                "statusCode=transit status=DELIVERY_PLANNED_IN_ROUTE",
                Some(OutForDelivery),
            ),
            (
                "statusCode=transit status=OUT_FOR_DELIVERY",
                Some(OutForDelivery),
            ),
            (
                "statusCode=transit status=IN_DELIVERY",
                Some(OutForDelivery),
            ),
            ("statusCode=failure status=NOT_HOME", Some(AttemptFailed)),
            (
                "statusCode=transit status=NEW_DELIVERY_ATTEMPT",
                Some(Redelivery),
            ),
            ("statusCode=transit status=TRANSPORT_DELAY", Some(Delayed)),
            ("statusCode=failure status=EXCEPTION", Some(Problem)),
            ("statusCode=delivered status=DELIVERED", Some(Delivered)),
            (
                "statusCode=delivered status=DELIVERED_AT_NEIGHBOURS",
                Some(DeliveredByProxy),
            ),
            (
                "statusCode=transit status=DELIVERED_AT_PARCELSHOP",
                Some(InLocker),
            ),
            (
                "statusCode=transit status=AWAITING_RECEIVER_COLLECTION",
                Some(InLocker),
            ),
            (
                "statusCode=delivered status=COLLECTED_AT_PARCELSHOP",
                Some(DeliveredFromLocker),
            ),
            (
                "statusCode=delivered status=COLLECTED_AT_PARCELSTATION",
                Some(DeliveredFromLocker),
            ),
            ("statusCode=failure status=REFUSED", Some(Refused)),
            (
                "statusCode=failure status=PARCEL_READY_FOR_RETURN_TO_HUB",
                Some(Returning),
            ),
            (
                "statusCode=failure status=PARCEL_SCANNED_AT_RETURN_HUB",
                Some(Returning),
            ),
            (
                "statusCode=failure status=RETURNED_TO_SHIPPER",
                Some(Returned),
            ),
            (
                "statusCode=delivered status=DELIVERED_AT_SHIPPER",
                Some(Returned),
            ),
            (
                "statusCode=failure status=SHIPMENT_STOPPED",
                Some(Intercepted),
            ),
            ("statusCode=failure status=DESTROYED", Some(Lost)),
            ("statusCode=unknown", None),
            ("statusCode=pre-transit", Some(OrderReceived)),
            ("statusCode=transit", Some(ArrivedDestinationCity)),
            ("statusCode=delivered", Some(Delivered)),
            ("statusCode=failure", Some(Held)),
        ];
        assert_eq!(got.len(), want.len());
        for ((code, state), (want_code, want_state)) in got.iter().zip(want) {
            assert_eq!((code.as_str(), *state), (want_code, want_state));
        }
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
