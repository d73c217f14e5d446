//! UPS: OAuth client-credentials token, then the Track API.
//!
//! Steps of one query (UPS tracks one number per call):
//! 1. `start` → `POST {base_url}/security/v1/oauth/token` with
//!    `Authorization: Basic base64(client_id:client_secret)` and the form
//!    `grant_type=client_credentials`; state `token:<transId>:<number>`;
//! 2. `resume(token:…)` reads `{"access_token", "expires_in": "14399", ...}` (UPS sends
//!    `expires_in` as a string) → `GET {base_url}/api/track/v1/details/<number>?locale=en_US&
//!    returnSignature=false&returnMilestones=false&returnPOD=false` with
//!    `Authorization: Bearer`, `transId` (unique per request: from the host's nonce, else
//!    from the number and the host's clock) and `transactionSrc` (`waybill`, or the
//!    `transaction_src` setting); state `track:<transId>:<number>`. The token travels in
//!    the header only;
//! 3. `resume(track:…)` reads `trackResponse.shipment[].package[].activity[]` (newest
//!    first) → done.
//!
//! **Not found is HTTP 200.** UPS answers an unknown number with `200` and a shipment
//! whose `warnings` hold `TW0001` "Tracking Information Not Found" and no `package` (its
//! specification says 404; both read as not found). A malformed number is `TV1002`
//! (invalid input); `250002`/`250003` and HTTP 401/403 are unauthorized; 429 (`10429`,
//! "Quota Limit Exceeded") is rate limited; 5xx transient. Error bodies are
//! `{"response":{"errors":[{"code","message"}]}}`.
//!
//! **States.** The activity's 3-digit `status.statusCode` decides ([`status_codes`]), else
//! its `status.type` ([`status_types`]); only an activity neither settles goes to core's
//! text normalizer.
//!
//! **Times.** `date` (YYYYMMDD) and `time` (HHMMSS) are the local time of the scan. Its
//! offset is `gmtOffset` when UPS sends it; else that of the scan's place
//! (`location.address.country` and `stateProvince`, [`waybill_sdk::zone`]); else UTC.

use base64::Engine as _;
use serde::Deserialize;
use waybill_sdk::{
    percent_encode, redact, zone, Capabilities, CarrierPlugin, CodeTable, Config, ConfigKey,
    HttpRequest, HttpResponse, Manifest, NumberRule, PluginError, Query, RawEvent, State, Step,
    WaybillOutcome,
};

/// UPS's production API host (test: `https://wwwcie.ups.com`).
pub const DEFAULT_BASE_URL: &str = "https://onlinetools.ups.com";

const TOKEN_STEP: &str = "token";
const TRACK_STEP: &str = "track";

/// The plugin: credentials and endpoint.
pub struct Ups {
    base_url: String,
    client_id: String,
    client_secret: String,
    transaction_src: String,
}

#[derive(Debug, Deserialize)]
struct Token {
    #[serde(default)]
    access_token: String,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    response: Option<ErrorList>,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorList {
    #[serde(default)]
    errors: Vec<Coded>,
}

#[derive(Debug, Deserialize)]
struct Coded {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

#[derive(Debug, Deserialize)]
struct TrackReply {
    #[serde(rename = "trackResponse")]
    track_response: TrackResponse,
}

#[derive(Debug, Deserialize)]
struct TrackResponse {
    #[serde(default)]
    shipment: Vec<Shipment>,
}

#[derive(Debug, Deserialize)]
struct Shipment {
    #[serde(default)]
    package: Vec<Package>,
    #[serde(default)]
    warnings: Vec<Coded>,
}

#[derive(Debug, Deserialize)]
struct Package {
    #[serde(rename = "trackingNumber", default)]
    tracking_number: String,
    #[serde(default)]
    activity: Vec<Activity>,
}

#[derive(Debug, Deserialize)]
struct Activity {
    #[serde(default)]
    date: String,
    #[serde(default)]
    time: String,
    #[serde(rename = "gmtOffset", default)]
    gmt_offset: Option<String>,
    #[serde(default)]
    location: Option<ActivityLocation>,
    #[serde(default)]
    status: Option<Status>,
}

#[derive(Debug, Deserialize)]
struct ActivityLocation {
    #[serde(default)]
    address: Option<Address>,
}

#[derive(Debug, Deserialize)]
struct Address {
    #[serde(default)]
    city: Option<String>,
    #[serde(rename = "stateProvince", default)]
    state: Option<String>,
    #[serde(default)]
    country: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Status {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(rename = "statusCode", default)]
    status_code: Option<String>,
}

const CODE_SOURCE: &str =
    "UPS Tracking API (Tracking.yaml), status types and status description codes";

/// UPS's activity `status.type` values.
pub fn status_types() -> CodeTable {
    use State::*;
    CodeTable::new("type", CODE_SOURCE)
        .code(
            "M",
            "billing information received (manifest)",
            Some(OrderReceived),
        )
        .code("MV", "billing information voided", Some(Cancelled))
        .code("P", "pickup (older documents)", Some(Collected))
        .code(
            "I",
            "in transit (or out for delivery: the status code tells)",
            Some(InTransit),
        )
        .code("W", "warehousing", Some(AtTransferCentre))
        .code(
            "DO",
            "delivered to the origin freight station",
            Some(InTransit),
        )
        .code(
            "DD",
            "delivered to the destination freight station",
            Some(AtDeliveryOutlet),
        )
        .code("D", "delivered", Some(Delivered))
        .code("X", "exception", Some(Problem))
        .code("NA", "not applicable", None)
        .code("U", "update", None)
}

/// UPS's 3-digit activity `status.statusCode` values.
pub fn status_codes() -> CodeTable {
    use State::*;
    CodeTable::new("statusCode", CODE_SOURCE)
        .code("003", "ready for UPS (label created)", Some(OrderReceived))
        .code("038", "picked up", Some(Collected))
        .code("005", "on the way", Some(InTransit))
        .code("012", "clearance in progress", Some(CustomsInProgress))
        .code("006", "out for delivery", Some(OutForDelivery))
        .code("021", "out for delivery", Some(OutForDelivery))
        .code("022", "first delivery attempt made", Some(AttemptFailed))
        .code("017", "held for pickup", Some(InLocker))
        .code("011", "delivered", Some(Delivered))
        .code("013", "exception", Some(Problem))
        .code("069", "unable to deliver", Some(Problem))
        .code("064", "refused by the receiver", Some(Refused))
        .code("034", "returned to sender", Some(Returning))
        .code("007", "shipment voided", Some(Cancelled))
}

struct Tables {
    types: CodeTable,
    codes: CodeTable,
}

impl Tables {
    fn new() -> Self {
        Tables {
            types: status_types(),
            codes: status_codes(),
        }
    }
}

/// The state of a UPS activity from its `status.statusCode`, else its `status.type`.
///
/// ```
/// use waybill_carrier_ups::state_of;
/// use waybill_sdk::State;
/// assert_eq!(state_of(Some("021"), Some("I")), Some(State::OutForDelivery));
/// assert_eq!(state_of(None, Some("D")), Some(State::Delivered));
/// assert_eq!(state_of(Some("999"), Some("U")), None);
/// ```
pub fn state_of(status_code: Option<&str>, kind: Option<&str>) -> Option<State> {
    let t = Tables::new();
    status_code
        .and_then(|c| t.codes.state_of(c))
        .or_else(|| kind.and_then(|k| t.types.state_of(k)))
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// `20250304` + `141500` → `2025-03-04 14:15:00`; `None` when either is malformed.
fn civil_time(date: &str, time: &str) -> Option<String> {
    let (d, t) = (date.trim(), time.trim());
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(d, 8) || !(digits(t, 6) || digits(t, 4)) {
        return None;
    }
    let seconds = if t.len() == 6 { &t[4..6] } else { "00" };
    Some(format!(
        "{}-{}-{} {}:{}:{seconds}",
        &d[0..4],
        &d[4..6],
        &d[6..8],
        &t[0..2],
        &t[2..4]
    ))
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

fn event(tables: &Tables, a: &Activity) -> Option<RawEvent> {
    let time = civil_time(&a.date, &a.time)?;
    let address = a.location.as_ref().and_then(|l| l.address.as_ref());
    let offset = a
        .gmt_offset
        .as_deref()
        .and_then(parse_offset)
        .or_else(|| {
            let addr = address?;
            zone::offset_minutes_at(&time, non_empty(&addr.country)?, non_empty(&addr.state))
        })
        .unwrap_or(0);
    let status = a.status.as_ref();
    let code = status.and_then(|s| non_empty(&s.status_code));
    let kind = status.and_then(|s| non_empty(&s.kind));
    let text = status
        .and_then(|s| non_empty(&s.description))
        .unwrap_or_default();
    let mut e = RawEvent::new(time, text)
        .with_offset_minutes(offset)
        .with_codes([
            ("statusCode", code.unwrap_or_default()),
            ("type", kind.unwrap_or_default()),
            (
                "code",
                status.and_then(|s| non_empty(&s.code)).unwrap_or_default(),
            ),
        ]);
    e.location = address.and_then(|addr| {
        let parts: Vec<&str> = [&addr.city, &addr.state, &addr.country]
            .into_iter()
            .filter_map(non_empty)
            .collect();
        (!parts.is_empty()).then(|| parts.join(", "))
    });
    e.state = code
        .and_then(|c| tables.codes.state_of(c))
        .or_else(|| kind.and_then(|k| tables.types.state_of(k)));
    Some(e)
}

/// A transaction id unique per request: the host's nonce (SDK 1.1), else the number and
/// the host's clock; only letters and digits (UPS allows up to 32 characters).
fn trans_id(query: &Query, number: &str) -> String {
    match (query.nonce, query.now_ms) {
        (Some(n), _) => format!("wb{n:016x}"),
        (None, Some(t)) => {
            let digits: String = number.chars().filter(char::is_ascii_alphanumeric).collect();
            let tail = &digits[digits.len().saturating_sub(12)..];
            format!("wb{tail}{t:x}")
        }
        (None, None) => "waybill".to_owned(),
    }
}

impl Ups {
    fn errors(&self, response: &HttpResponse) -> Vec<Coded> {
        let body: ErrorBody = serde_json::from_slice(&response.body).unwrap_or_default();
        body.response.map(|r| r.errors).unwrap_or_default()
    }

    fn detail(&self, errors: &[Coded]) -> String {
        let text = errors
            .iter()
            .map(|e| format!("{} {}", e.code, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        redact(&text, &[&self.client_secret, &self.client_id])
    }

    fn after_token(&self, rest: &str, response: &HttpResponse) -> Step {
        let Some((trans, number)) = rest.split_once(':') else {
            return Step::Failed(PluginError::internal("token step without a number"));
        };
        if let Some(e) = response.status_error_with(|| {
            format!(
                "UPS token HTTP {}: {}",
                response.status,
                self.detail(&self.errors(response))
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
                "UPS granted an empty access token",
            ));
        }
        Step::Send(
            HttpRequest::get(format!(
                "{}/api/track/v1/details/{}?locale=en_US&returnSignature=false&returnMilestones=false&returnPOD=false",
                self.base_url,
                percent_encode(number)
            ))
            .header("Authorization", format!("Bearer {token}"))
            .header("Accept", "application/json")
            .header("transId", trans)
            .header("transactionSrc", self.transaction_src.clone())
            .state(format!("{TRACK_STEP}:{trans}:{number}")),
        )
    }

    fn after_track(&self, rest: &str, response: &HttpResponse) -> Step {
        let number = rest.split_once(':').map_or(rest, |(_, n)| n);
        let errors = if (200..300).contains(&response.status) {
            Vec::new()
        } else {
            self.errors(response)
        };
        let has = |code: &str| errors.iter().any(|e| e.code == code);
        let message = || format!("UPS HTTP {}: {}", response.status, self.detail(&errors));
        if has("TV1002") || response.status == 400 {
            return Step::Done(vec![WaybillOutcome::error(
                number,
                PluginError::InvalidInput { message: message() },
            )]);
        }
        if response.status == 404 {
            return Step::Done(vec![WaybillOutcome::error(
                number,
                PluginError::NotFound { message: message() },
            )]);
        }
        if has("250002") || has("250003") {
            return Step::Failed(PluginError::Unauthorized { message: message() });
        }
        if let Some(e) = response.status_error_with(message) {
            return Step::Failed(e);
        }
        let reply: TrackReply = match response.json() {
            Ok(r) => r,
            Err(e) => return Step::Failed(e),
        };
        let tables = Tables::new();
        let shipment = reply.track_response.shipment.first();
        let package = shipment.and_then(|s| {
            s.package
                .iter()
                .find(|p| p.tracking_number.eq_ignore_ascii_case(number))
                .or(s.package.first())
        });
        let events: Vec<RawEvent> = package
            .map(|p| {
                p.activity
                    .iter()
                    .filter_map(|a| event(&tables, a))
                    .collect()
            })
            .unwrap_or_default();
        if events.is_empty() {
            // UPS's quirk: an unknown number is HTTP 200 with warning TW0001.
            let warning = shipment
                .map(|s| {
                    s.warnings
                        .iter()
                        .map(|w| format!("{} {}", w.code, w.message))
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .filter(|w| !w.is_empty())
                .unwrap_or_else(|| "no activity".to_owned());
            return Step::Done(vec![WaybillOutcome::error(
                number,
                PluginError::NotFound {
                    message: format!("UPS: {warning}"),
                },
            )]);
        }
        Step::Done(vec![WaybillOutcome::events(number, events)])
    }
}

impl CarrierPlugin for Ups {
    fn manifest() -> Manifest {
        Manifest {
            codes: vec!["ups".into()],
            name_zh: "UPS 联合包裹".into(),
            name_en: "UPS".into(),
            // The 1Z shape with its check digit, as core's own UPS rule.
            number_rules: vec![NumberRule {
                checksum: Some(
                    serde_json::json!({"kind": "mod10", "evens": 1, "odds": 2, "serial": [2, -1]}),
                ),
                ..NumberRule::new("ups_1z", r"^1Z[0-9A-Z]{15}\d$").in_region("US")
            }],
            capabilities: Capabilities {
                max_batch: 1,
                needs_phone: false,
                // UPS publishes no figure; 429 "Quota Limit Exceeded" says when.
                rate_limit_per_sec: None,
            },
            config_keys: vec![
                ConfigKey {
                    required: true,
                    ..ConfigKey::optional("client_id", "Client id of an app on developer.ups.com")
                },
                ConfigKey::secret("client_secret", "Client secret of that app"),
                ConfigKey::optional(
                    "base_url",
                    format!("API host (default {DEFAULT_BASE_URL}; test https://wwwcie.ups.com)"),
                ),
                ConfigKey::optional(
                    "transaction_src",
                    "transactionSrc header: names the calling application (default `waybill`)",
                ),
            ],
            plugin_version: env!("CARGO_PKG_VERSION").into(),
            code_tables: vec![status_codes(), status_types()],
            ..Default::default()
        }
    }

    fn new(config: &Config) -> Result<Self, PluginError> {
        Ok(Ups {
            base_url: config.base_url("base_url", DEFAULT_BASE_URL)?,
            client_id: config.require("client_id")?.trim().to_owned(),
            client_secret: config.require("client_secret")?.trim().to_owned(),
            transaction_src: config
                .get("transaction_src")
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .unwrap_or("waybill")
                .to_owned(),
        })
    }

    fn start(&self, query: &Query) -> Step {
        let number = match query.waybills.as_slice() {
            [] => return Step::Done(vec![]),
            [one] => one.number.trim(),
            many => {
                return Step::Failed(PluginError::InvalidInput {
                    message: format!(
                        "{} numbers in one query; UPS takes one per call",
                        many.len()
                    ),
                })
            }
        };
        // UPS takes 7 to 34 characters.
        if !(7..=34).contains(&number.len()) || !number.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Step::Failed(PluginError::InvalidInput {
                message: format!("{number:?} is not a UPS inquiry number (7-34 letters or digits)"),
            });
        }
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", self.client_id, self.client_secret));
        Step::Send(
            HttpRequest::post(format!("{}/security/v1/oauth/token", self.base_url))
                .header("Authorization", format!("Basic {basic}"))
                .header("Accept", "application/json")
                .form([("grant_type", "client_credentials")])
                .state(format!("{TOKEN_STEP}:{}:{number}", trans_id(query, number))),
        )
    }

    fn resume(&self, state: &str, response: &HttpResponse) -> Step {
        match state.split_once(':') {
            Some((TOKEN_STEP, rest)) if rest.contains(':') => self.after_token(rest, response),
            Some((TRACK_STEP, rest)) if !rest.is_empty() => self.after_track(rest, response),
            _ => Step::Failed(PluginError::internal(format!("unknown step {state:?}"))),
        }
    }
}

waybill_sdk::export_carrier!(Ups);

#[cfg(test)]
mod tests {
    use super::*;
    use waybill_sdk::{drive, InProcess};

    const SECRET: &str = "ups-secret-Zx81Lr0aQ";
    const NUMBER: &str = "1Z999AA10123456784";
    const TRACK: &str = "track:wb0000000000000007:1Z999AA10123456784";

    fn plugin() -> Ups {
        Ups::new(&Config::from_pairs([
            ("client_id", "fixture-client-id"),
            ("client_secret", SECRET),
            ("base_url", "http://ups.test/"),
        ]))
        .unwrap()
    }

    fn track(status: u16, body: &[u8]) -> Step {
        plugin().resume(TRACK, &HttpResponse::new(status, body.to_vec()))
    }

    fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
        req.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn the_token_request_uses_basic_auth_and_keeps_secrets_out_of_state() {
        let q = Query::single("ups", NUMBER).with_nonce(7);
        let Step::Send(req) = plugin().start(&q) else {
            panic!()
        };
        assert_eq!(req.url, "http://ups.test/security/v1/oauth/token");
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("fixture-client-id:{SECRET}"));
        assert_eq!(
            header(&req, "Authorization"),
            Some(format!("Basic {basic}").as_str())
        );
        assert_eq!(req.body, b"grant_type=client_credentials");
        assert_eq!(req.state, format!("token:wb0000000000000007:{NUMBER}"));
        assert!(!req.state.contains(SECRET));
    }

    #[test]
    fn the_track_request_carries_bearer_trans_id_and_transaction_src() {
        let Step::Send(req) = plugin().resume(
            &format!("token:wb0000000000000007:{NUMBER}"),
            &HttpResponse::new(200, include_bytes!("../fixtures/token_ok.json").to_vec()),
        ) else {
            panic!()
        };
        assert_eq!(req.method, "GET");
        assert!(req
            .url
            .starts_with("http://ups.test/api/track/v1/details/1Z999AA10123456784?locale=en_US"));
        assert_eq!(
            header(&req, "Authorization"),
            Some("Bearer eyJraWQiOiJmaXh0dXJlIn0.not-a-real-token.c2ln")
        );
        assert_eq!(header(&req, "transId"), Some("wb0000000000000007"));
        assert_eq!(header(&req, "transactionSrc"), Some("waybill"));
        assert_eq!(req.state, TRACK);
        assert!(!req.state.contains("not-a-real-token"));
    }

    #[test]
    fn trans_ids_differ_per_request() {
        let a = trans_id(&Query::single("ups", NUMBER).with_nonce(1), NUMBER);
        let b = trans_id(&Query::single("ups", NUMBER).with_nonce(2), NUMBER);
        assert_ne!(a, b);
        let c = trans_id(&Query::single("ups", NUMBER).at(1_741_060_000_000), NUMBER);
        let d = trans_id(&Query::single("ups", NUMBER).at(1_741_060_000_001), NUMBER);
        assert_ne!(c, d);
        assert!(c.len() <= 32 && c.bytes().all(|b| b.is_ascii_alphanumeric()));
    }

    #[test]
    fn activities_map_with_local_times_and_their_offsets() {
        let Step::Done(out) = track(200, include_bytes!("../fixtures/track_delivered.json")) else {
            panic!()
        };
        let events = out[0].result.as_ref().unwrap();
        let got: Vec<_> = events
            .iter()
            .map(|e| (e.time.as_str(), e.offset_minutes, e.state))
            .collect();
        use State::*;
        assert_eq!(
            got,
            [
                ("2025-03-06 14:15:00", Some(-300), Some(Delivered)), // gmtOffset
                ("2025-03-06 08:30:00", Some(-300), Some(OutForDelivery)), // Kentucky: Eastern
                ("2025-03-05 23:10:00", Some(-300), Some(InTransit)),
                ("2025-03-04 18:22:00", Some(-420), Some(InTransit)), // Arizona
                ("2025-03-04 15:30:00", Some(-420), Some(Collected)),
                ("2025-03-03 09:00:00", Some(0), Some(OrderReceived)), // no place: UTC
            ]
        );
        assert_eq!(events[0].location.as_deref(), Some("LOUISVILLE, KY, US"));
        assert_eq!(
            events[0].raw_code.as_deref(),
            Some("statusCode=011 type=D code=KB")
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
        let want = [
            // by statusCode
            OrderReceived,
            Collected,
            InTransit,
            CustomsInProgress,
            OutForDelivery,
            OutForDelivery,
            AttemptFailed,
            InLocker,
            Delivered,
            Problem,
            Problem,
            Refused,
            Returning,
            Cancelled,
        ]
        .map(Some)
        .into_iter()
        // by type alone
        .chain([
            Some(AtTransferCentre),
            Some(InTransit),
            Some(AtDeliveryOutlet),
            None,
            None,
            Some(InTransit),
            Some(Delivered),
            Some(Problem),
            Some(OrderReceived),
            Some(Cancelled),
            Some(Collected),
        ])
        .collect::<Vec<_>>();
        assert_eq!(got, want);
    }

    #[test]
    fn an_unknown_number_is_not_found_although_ups_answers_200() {
        let Step::Done(out) = track(200, include_bytes!("../fixtures/not_found.json")) else {
            panic!()
        };
        let e = out[0].result.as_ref().unwrap_err();
        assert_eq!(e.kind(), "not_found");
        assert!(e.to_string().contains("TW0001"), "{e}");
        let Step::Done(out) = track(404, include_bytes!("../fixtures/not_found.json")) else {
            panic!()
        };
        assert_eq!(out[0].result.as_ref().unwrap_err().kind(), "not_found");
    }

    #[test]
    fn errors_are_classified_without_the_secret() {
        let Step::Done(out) = track(400, include_bytes!("../fixtures/invalid_number.json")) else {
            panic!()
        };
        assert_eq!(out[0].result.as_ref().unwrap_err().kind(), "invalid_input");
        let Step::Failed(e) = track(401, include_bytes!("../fixtures/auth_refused.json")) else {
            panic!()
        };
        assert_eq!(e.kind(), "unauthorized");
        let r = HttpResponse::new(
            429,
            include_bytes!("../fixtures/rate_limited.json").to_vec(),
        )
        .with_header("Retry-After", "30");
        assert_eq!(
            plugin().resume(TRACK, &r),
            Step::Failed(PluginError::RateLimited {
                retry_after_secs: Some(30)
            })
        );
        let echo =
            format!(r#"{{"response":{{"errors":[{{"code":"10401","message":"{SECRET}"}}]}}}}"#);
        let Step::Failed(e) =
            plugin().resume(&format!("token:x:{NUMBER}"), &HttpResponse::new(401, echo))
        else {
            panic!()
        };
        assert_eq!(e.kind(), "unauthorized");
        assert!(!e.to_string().contains(SECRET));
    }

    #[test]
    fn malformed_numbers_and_batches_are_refused_before_sending() {
        for q in [
            Query::single("ups", "1Z9"),
            Query::single("ups", "1Z999AA1/0123456784"),
            Query::new(vec![
                waybill_sdk::QueryWaybill::new("ups", NUMBER),
                waybill_sdk::QueryWaybill::new("ups", NUMBER),
            ]),
        ] {
            assert!(matches!(
                plugin().start(&q),
                Step::Failed(PluginError::InvalidInput { .. })
            ));
        }
    }

    #[test]
    fn the_whole_flow_takes_two_requests() {
        let m = InProcess::<Ups>::new(&Config::from_pairs([
            ("client_id", "id"),
            ("client_secret", SECRET),
        ]))
        .unwrap();
        let mut urls = Vec::new();
        let out = drive(&m, &Query::single("ups", NUMBER).with_nonce(9), |req| {
            urls.push(req.url.clone());
            if req.url.ends_with("/oauth/token") {
                HttpResponse::new(200, include_bytes!("../fixtures/token_ok.json").to_vec())
            } else {
                HttpResponse::new(
                    200,
                    include_bytes!("../fixtures/track_delivered.json").to_vec(),
                )
            }
        })
        .unwrap();
        assert_eq!(urls.len(), 2);
        assert!(urls[0].starts_with(DEFAULT_BASE_URL));
        assert_eq!(
            out[0].result.as_ref().unwrap()[0].state,
            Some(State::Delivered)
        );
    }
}
