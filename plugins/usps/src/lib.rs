//! USPS: OAuth 2.0 client-credentials token, then the Tracking API v3.
//!
//! Steps of one query (USPS v3 tracks one number per call):
//! 1. `start` → `POST {base_url}/oauth2/v3/token`, form `grant_type=client_credentials,
//!    client_id, client_secret, scope=tracking` (without the `tracking` scope, tracking
//!    calls get 401); state `token:<number>`;
//! 2. `resume(token:…)` reads `{"access_token", "token_type":"Bearer", "expires_in", ...}`
//!    → `GET {base_url}/tracking/v3/tracking/<number>?expand=DETAIL` with
//!    `Authorization: Bearer`; state `track:<number>`. The token travels in the header only;
//! 3. `resume(track:…)` reads `trackingEvents[]` (newest first) → done.
//!
//! **Errors.** `{"apiVersion","error":{"code","message","errors":[{status, code, title,
//! detail}]}}`: 404 ("Tracking is not available for this item", also before acceptance)
//! → not found; 400 → invalid input; 401/403 → unauthorized; **429 → rate limited with
//! the `Retry-After` seconds** (new apps get 60 calls an hour); 503 and other 5xx →
//! transient. OAuth errors are `{"error":"invalid_client","error_description"}`.
//!
//! **States.** The event's `eventCode` decides ([`event_codes`], USPS Publication 199
//! event codes); only an event without a documented code goes to core's text normalizer,
//! which reads `eventType`.
//!
//! **Times.** `eventTimestamp` is local time without offset; its offset is `GMTOffset`
//! when sent; else `GMTTimestamp` (UTC, `…Z`) is used as is; else the offset of the
//! event's place (`eventCountry`, default US, and `eventState`, [`waybill_sdk::zone`]);
//! else UTC.

use serde::Deserialize;
use waybill_sdk::{
    percent_encode, redact, zone, Capabilities, CarrierPlugin, CodeTable, Config, ConfigKey,
    HttpRequest, HttpResponse, Manifest, NumberRule, PluginError, Query, RawEvent, State, Step,
    WaybillOutcome,
};

/// USPS's production API host (test environment: `https://apis-tem.usps.com`).
pub const DEFAULT_BASE_URL: &str = "https://apis.usps.com";

const TOKEN_STEP: &str = "token";
const TRACK_STEP: &str = "track";

/// The plugin: credentials and endpoint.
pub struct Usps {
    base_url: String,
    client_id: String,
    client_secret: String,
}

#[derive(Debug, Deserialize)]
struct Token {
    #[serde(default)]
    access_token: String,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    /// `{"error": {...}}` from the API, `{"error": "invalid_client"}` from OAuth.
    #[serde(default)]
    error: Option<serde_json::Value>,
    #[serde(default)]
    error_description: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Tracking {
    #[serde(rename = "trackingEvents", default)]
    tracking_events: Vec<Event>,
}

#[derive(Debug, Deserialize)]
struct Event {
    #[serde(rename = "eventType", default)]
    event_type: Option<String>,
    #[serde(rename = "eventTimestamp", default)]
    event_timestamp: Option<String>,
    #[serde(rename = "GMTTimestamp", default)]
    gmt_timestamp: Option<String>,
    #[serde(rename = "GMTOffset", default)]
    gmt_offset: Option<String>,
    #[serde(rename = "eventCity", default)]
    city: Option<String>,
    #[serde(rename = "eventState", default)]
    state: Option<String>,
    #[serde(rename = "eventCountry", default)]
    country: Option<String>,
    #[serde(rename = "eventCode", default)]
    event_code: Option<String>,
}

const CODE_SOURCE: &str = "USPS Tracking API v3 (tracking.yaml); USPS Publication 199 event codes";

/// USPS's `eventCode` values.
pub fn event_codes() -> CodeTable {
    use State::*;
    let mut t = CodeTable::new("eventCode", CODE_SOURCE);
    for (code, meaning, state) in [
        ("MA", "manifest acknowledged (label created)", OrderReceived),
        ("GX", "shipping label created", OrderReceived),
        ("03", "accepted or picked up", Collected),
        ("43", "picked up", Collected),
        ("10", "processed through a facility", AtTransferCentre),
        ("A1", "arrived at a facility", AtTransferCentre),
        ("T1", "departed a facility", InTransit),
        ("EF", "departed a sort facility", InTransit),
        ("TL", "in transit to the next facility", InTransit),
        ("SF", "departed the post office", DepartedOrigin),
        ("PC", "sorting complete", AtDeliveryOutlet),
        ("07", "arrived at the delivery unit", AtDeliveryOutlet),
        ("OF", "out for delivery", OutForDelivery),
        ("01", "delivered", Delivered),
        ("17", "picked up by an agent", DeliveredByProxy),
        ("14", "arrived at the pickup point", InLocker),
        ("16", "available for pickup", InLocker),
        ("02", "notice left", AttemptFailed),
        ("52", "notice left", AttemptFailed),
        ("53", "notice left", AttemptFailed),
        ("54", "notice left", AttemptFailed),
        ("55", "notice left", AttemptFailed),
        ("56", "notice left", AttemptFailed),
        ("30", "no access to the delivery location", AttemptFailed),
        ("71", "delivery rescheduled", Redelivery),
        ("04", "refused", Refused),
        ("05", "undeliverable as addressed", AddressProblem),
        ("06", "forwarded", Redirected),
        ("08", "missent", MisSorted),
    ] {
        t = t.code(code, meaning, Some(state));
    }
    // Return to sender, with its reasons (no such number, insufficient address, moved,
    // vacant, unclaimed, ...).
    for code in [
        "09", "21", "22", "23", "24", "25", "26", "27", "28", "29", "31",
    ] {
        t = t.code(code, "return to sender", Some(Returning));
    }
    t
}

/// The state of a USPS event code.
///
/// ```
/// use waybill_carrier_usps::state_of;
/// use waybill_sdk::State;
/// assert_eq!(state_of("01"), Some(State::Delivered));
/// assert_eq!(state_of("OF"), Some(State::OutForDelivery));
/// assert_eq!(state_of("21"), Some(State::Returning));
/// assert_eq!(state_of("ZZ"), None);
/// ```
pub fn state_of(code: &str) -> Option<State> {
    event_codes().state_of(code.trim())
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// `-05:00` → -300.
fn parse_offset(s: &str) -> Option<i32> {
    let s = s.trim();
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 14 && m < 60).then_some(sign * (h * 60 + m))
}

fn event(table: &CodeTable, e: &Event) -> Option<RawEvent> {
    // Time: local + GMTOffset, else the GMT timestamp, else local at the place's zone.
    let local = non_empty(&e.event_timestamp);
    let (time, offset) = match (local, non_empty(&e.gmt_offset).and_then(parse_offset)) {
        (Some(t), Some(o)) => (t.to_owned(), Some(o)),
        _ => match (non_empty(&e.gmt_timestamp), local) {
            (Some(gmt), _) => (gmt.to_owned(), None),
            (None, Some(t)) => {
                let country = non_empty(&e.country).unwrap_or("US");
                let offset = zone::offset_minutes_at(t, country, non_empty(&e.state));
                (t.to_owned(), Some(offset.unwrap_or(0)))
            }
            (None, None) => return None,
        },
    };
    let code = non_empty(&e.event_code);
    let mut ev = RawEvent::new(time, non_empty(&e.event_type).unwrap_or_default())
        .with_codes([("eventCode", code.unwrap_or_default())]);
    ev.offset_minutes = offset;
    let parts: Vec<&str> = [&e.city, &e.state, &e.country]
        .into_iter()
        .filter_map(non_empty)
        .collect();
    ev.location = (!parts.is_empty()).then(|| parts.join(", "));
    ev.state = code.and_then(|c| table.state_of(c));
    Some(ev)
}

impl Usps {
    fn detail(&self, response: &HttpResponse) -> String {
        let body: ErrorBody = serde_json::from_slice(&response.body).unwrap_or_default();
        let text = match body.error {
            Some(serde_json::Value::String(code)) => {
                format!("{code}: {}", body.error_description.unwrap_or_default())
            }
            Some(v @ serde_json::Value::Object(_)) => {
                let message = v["message"].as_str().unwrap_or_default().to_owned();
                let details: Vec<String> = v["errors"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|e| e["detail"].as_str().or(e["title"].as_str()))
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default();
                [vec![message], details].concat().join("; ")
            }
            _ => String::new(),
        };
        redact(&text, &[&self.client_secret, &self.client_id])
    }

    fn after_token(&self, number: &str, response: &HttpResponse) -> Step {
        if let Some(e) = response.status_error_with(|| {
            format!(
                "USPS token HTTP {}: {}",
                response.status,
                self.detail(response)
            )
        }) {
            return Step::Failed(match (response.status, e) {
                (400 | 401 | 403, e) => PluginError::Unauthorized {
                    message: format!("{} (check `client_id` and `client_secret`)", e.message()),
                },
                (_, e) => e,
            });
        }
        let token: Token = match response.json() {
            Ok(t) => t,
            Err(e) => return Step::Failed(e),
        };
        let token = token.access_token.trim();
        if token.is_empty() {
            return Step::Failed(PluginError::bad_response(
                "USPS granted an empty access token",
            ));
        }
        Step::Send(
            HttpRequest::get(format!(
                "{}/tracking/v3/tracking/{}?expand=DETAIL",
                self.base_url,
                percent_encode(number)
            ))
            .header("Authorization", format!("Bearer {token}"))
            .header("Accept", "application/json")
            .state(format!("{TRACK_STEP}:{number}")),
        )
    }

    fn after_track(&self, number: &str, response: &HttpResponse) -> Step {
        let message = || format!("USPS HTTP {}: {}", response.status, self.detail(response));
        match response.status {
            404 => {
                return Step::Done(vec![WaybillOutcome::error(
                    number,
                    PluginError::NotFound { message: message() },
                )])
            }
            400 => {
                return Step::Done(vec![WaybillOutcome::error(
                    number,
                    PluginError::InvalidInput { message: message() },
                )])
            }
            _ => {}
        }
        if let Some(e) = response.status_error_with(message) {
            return Step::Failed(e);
        }
        let tracking: Tracking = match response.json() {
            Ok(t) => t,
            Err(e) => return Step::Failed(e),
        };
        let table = event_codes();
        let events: Vec<RawEvent> = tracking
            .tracking_events
            .iter()
            .filter_map(|e| event(&table, e))
            .collect();
        if events.is_empty() {
            return Step::Done(vec![WaybillOutcome::error(
                number,
                PluginError::NotFound {
                    message: "USPS lists no event for this number yet".into(),
                },
            )]);
        }
        Step::Done(vec![WaybillOutcome::events(number, events)])
    }
}

impl CarrierPlugin for Usps {
    fn manifest() -> Manifest {
        Manifest {
            codes: vec!["usps".into()],
            name_zh: "美国邮政".into(),
            name_en: "United States Postal Service".into(),
            // The IMpb shape from 94 with its check digit, as core's own USPS rule.
            number_rules: vec![NumberRule {
                checksum: Some(serde_json::json!({"kind": "mod10", "evens": 3, "odds": 1, "reverse": true})),
                ..NumberRule::new(
                    "usps_impb_94",
                    r"^(?:420\d{5}(?:\d{4})?)?(?P<serial>94\d{3}(?:9\d{8}(?:\d{15}|\d{11}|\d{7})|[0-8]\d{5}(?:\d{14}|\d{10})))(?P<check>\d)$",
                )
                .in_region("US")
            }],
            capabilities: Capabilities {
                max_batch: 1,
                needs_phone: false,
                // New apps get 60 calls an hour per API.
                rate_limit_per_sec: Some(60.0 / 3600.0),
            },
            config_keys: vec![
                ConfigKey {
                    required: true,
                    ..ConfigKey::optional("client_id", "Consumer key of an app on developers.usps.com (with the Tracking API)")
                },
                ConfigKey::secret("client_secret", "Consumer secret of that app"),
                ConfigKey::optional(
                    "base_url",
                    format!("API host (default {DEFAULT_BASE_URL}; test https://apis-tem.usps.com)"),
                ),
            ],
            plugin_version: env!("CARGO_PKG_VERSION").into(),
            code_tables: vec![event_codes()],
            ..Default::default()
        }
    }

    fn new(config: &Config) -> Result<Self, PluginError> {
        Ok(Usps {
            base_url: config.base_url("base_url", DEFAULT_BASE_URL)?,
            client_id: config.require("client_id")?.trim().to_owned(),
            client_secret: config.require("client_secret")?.trim().to_owned(),
        })
    }

    fn start(&self, query: &Query) -> Step {
        let number = match query.waybills.as_slice() {
            [] => return Step::Done(vec![]),
            [one] => one.number.trim(),
            many => {
                return Step::Failed(PluginError::InvalidInput {
                    message: format!(
                        "{} numbers in one query; USPS takes one per call",
                        many.len()
                    ),
                })
            }
        };
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Step::Failed(PluginError::InvalidInput {
                message: format!("{number:?} is not a USPS tracking number"),
            });
        }
        Step::Send(
            HttpRequest::post(format!("{}/oauth2/v3/token", self.base_url))
                .header("Accept", "application/json")
                .form([
                    ("grant_type", "client_credentials"),
                    ("client_id", self.client_id.as_str()),
                    ("client_secret", self.client_secret.as_str()),
                    ("scope", "tracking"),
                ])
                .state(format!("{TOKEN_STEP}:{number}")),
        )
    }

    fn resume(&self, state: &str, response: &HttpResponse) -> Step {
        match state.split_once(':') {
            Some((TOKEN_STEP, number)) if !number.is_empty() => self.after_token(number, response),
            Some((TRACK_STEP, number)) if !number.is_empty() => self.after_track(number, response),
            _ => Step::Failed(PluginError::internal(format!("unknown step {state:?}"))),
        }
    }
}

waybill_sdk::export_carrier!(Usps);

#[cfg(test)]
mod tests {
    use super::*;
    use waybill_sdk::{drive, InProcess};

    const SECRET: &str = "usps-secret-Pq71Lm0aR";
    const NUMBER: &str = "9400100000000000000017";
    const TRACK: &str = "track:9400100000000000000017";

    fn plugin() -> Usps {
        Usps::new(&Config::from_pairs([
            ("client_id", "fixture-usps-client"),
            ("client_secret", SECRET),
            ("base_url", "http://usps.test"),
        ]))
        .unwrap()
    }

    fn track(status: u16, body: &[u8]) -> Step {
        plugin().resume(TRACK, &HttpResponse::new(status, body.to_vec()))
    }

    #[test]
    fn the_token_request_asks_for_the_tracking_scope() {
        let Step::Send(req) = plugin().start(&Query::single("usps", NUMBER)) else {
            panic!()
        };
        assert_eq!(req.url, "http://usps.test/oauth2/v3/token");
        let body = String::from_utf8(req.body).unwrap();
        assert!(body.starts_with("grant_type=client_credentials&client_id=fixture-usps-client&"));
        assert!(body.ends_with("&scope=tracking"));
        assert_eq!(req.state, format!("token:{NUMBER}"));
        assert!(!req.state.contains(SECRET));
    }

    #[test]
    fn a_granted_token_leads_to_the_detail_query() {
        let Step::Send(req) = plugin().resume(
            &format!("token:{NUMBER}"),
            &HttpResponse::new(200, include_bytes!("../fixtures/token_ok.json").to_vec()),
        ) else {
            panic!()
        };
        assert_eq!(
            req.url,
            "http://usps.test/tracking/v3/tracking/9400100000000000000017?expand=DETAIL"
        );
        assert!(req.headers.contains(&(
            "Authorization".into(),
            "Bearer eyJhbGciOiJSUzI1NiJ9.fixture-usps-token.c2ln".into()
        )));
        assert_eq!(req.state, TRACK);
    }

    #[test]
    fn events_take_gmt_offset_gmt_time_or_their_states_zone() {
        let Step::Done(out) = track(200, include_bytes!("../fixtures/track_delivered.json")) else {
            panic!()
        };
        let got: Vec<_> = out[0]
            .result
            .as_ref()
            .unwrap()
            .iter()
            .map(|e| (e.time.as_str(), e.offset_minutes, e.state))
            .collect();
        use State::*;
        assert_eq!(
            got,
            [
                ("2025-03-06T11:20:00", Some(-360), Some(Delivered)),
                ("2025-03-06T13:10:00Z", None, Some(OutForDelivery)),
                ("2025-03-05T21:40:00", Some(-360), Some(AtTransferCentre)), // Texas
                ("2025-03-04T18:05:00", Some(-420), Some(InTransit)),
                ("2025-03-04T14:30:00", Some(-420), Some(Collected)),
                ("2025-03-03T09:12:00", Some(-420), Some(OrderReceived)), // Arizona
            ]
        );
    }

    #[test]
    fn every_documented_code_maps_to_its_state() {
        let Step::Done(out) = track(200, include_bytes!("../fixtures/track_every_code.json"))
        else {
            panic!()
        };
        let mut got: Vec<Option<State>> = out[0]
            .result
            .as_ref()
            .unwrap()
            .iter()
            .map(|e| e.state)
            .collect();
        got.reverse();
        use State::*;
        let mut want = vec![
            OrderReceived,
            OrderReceived,
            Collected,
            Collected,
            AtTransferCentre,
            AtTransferCentre,
            InTransit,
            InTransit,
            InTransit,
            DepartedOrigin,
            AtDeliveryOutlet,
            AtDeliveryOutlet,
            OutForDelivery,
            Delivered,
            DeliveredByProxy,
            InLocker,
            InLocker,
            AttemptFailed,
            AttemptFailed,
            AttemptFailed,
            AttemptFailed,
            AttemptFailed,
            AttemptFailed,
            AttemptFailed,
            Redelivery,
            Refused,
            AddressProblem,
            Redirected,
            MisSorted,
        ]
        .into_iter()
        .map(Some)
        .collect::<Vec<_>>();
        want.extend([Some(Returning); 11]);
        want.push(None); // undocumented: the text normalizer reads eventType
        assert_eq!(got, want);
    }

    #[test]
    fn quota_is_rate_limited_with_its_retry_after() {
        let r = HttpResponse::new(
            429,
            include_bytes!("../fixtures/rate_limited.json").to_vec(),
        )
        .with_header("Retry-After", "120");
        assert_eq!(
            plugin().resume(TRACK, &r),
            Step::Failed(PluginError::RateLimited {
                retry_after_secs: Some(120)
            })
        );
        let Step::Failed(e) = track(503, b"") else {
            panic!()
        };
        assert_eq!(e.kind(), "transient");
    }

    #[test]
    fn errors_are_classified_without_the_secret() {
        let Step::Done(out) = track(404, include_bytes!("../fixtures/not_found.json")) else {
            panic!()
        };
        let e = out[0].result.as_ref().unwrap_err();
        assert_eq!(e.kind(), "not_found");
        assert!(e.to_string().contains("not yet been accepted"), "{e}");
        let Step::Failed(e) = track(401, include_bytes!("../fixtures/unauthorized.json")) else {
            panic!()
        };
        assert_eq!(e.kind(), "unauthorized");
        let Step::Failed(e) = plugin().resume(
            &format!("token:{NUMBER}"),
            &HttpResponse::new(
                401,
                include_bytes!("../fixtures/token_refused.json").to_vec(),
            ),
        ) else {
            panic!()
        };
        assert_eq!(e.kind(), "unauthorized");
        assert!(e.to_string().contains("invalid_client"), "{e}");
        let echo = format!(r#"{{"error":"invalid_client","error_description":"{SECRET}"}}"#);
        let Step::Failed(e) =
            plugin().resume(&format!("token:{NUMBER}"), &HttpResponse::new(401, echo))
        else {
            panic!()
        };
        assert!(!e.to_string().contains(SECRET));
        let Step::Done(out) = track(200, br#"{"trackingNumber":"9400","trackingEvents":[]}"#)
        else {
            panic!()
        };
        assert_eq!(out[0].result.as_ref().unwrap_err().kind(), "not_found");
    }

    #[test]
    fn the_whole_flow_takes_two_requests() {
        let m = InProcess::<Usps>::new(&Config::from_pairs([
            ("client_id", "id"),
            ("client_secret", SECRET),
        ]))
        .unwrap();
        let mut urls = Vec::new();
        let out = drive(&m, &Query::single("usps", NUMBER), |req| {
            urls.push(req.url.clone());
            let body: &[u8] = if req.url.ends_with("/oauth2/v3/token") {
                include_bytes!("../fixtures/token_ok.json")
            } else {
                include_bytes!("../fixtures/track_delivered.json")
            };
            HttpResponse::new(200, body.to_vec())
        })
        .unwrap();
        assert_eq!(urls.len(), 2);
        assert!(urls[1].starts_with(DEFAULT_BASE_URL));
        assert_eq!(
            out[0].result.as_ref().unwrap()[0].state,
            Some(State::Delivered)
        );
    }
}
