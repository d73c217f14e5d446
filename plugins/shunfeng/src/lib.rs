//! SF Express (顺丰速运): the 丰桥 (SF open platform) route query.
//!
//! One `POST {base_url}/std/service` per query of up to 10 waybills, form fields
//! `partnerID, requestID, serviceCode=EXP_RECE_SEARCH_ROUTES, timestamp, msgDigest,
//! msgData`, where `msgData` is the business JSON as a string:
//! `{"language":"zh-CN","trackingType":1,"trackingNumber":[...],"methodType":1,"checkPhoneNo"?}`
//! and `msgDigest = Base64(MD5_raw(JavaURLEncode_UTF8(msgData + timestamp + checkword)))`
//! (see [`msg_digest`]).
//!
//! The answer `{"apiResultCode","apiErrorMsg","apiResponseID","apiResultData"}` carries
//! the business result double-encoded in `apiResultData`:
//! `{"success","errorCode","errorMsg","msgData":{"routeResps":[{"mailNo","routes":[...]}]}}`;
//! routes are oldest first, `acceptTime` is Beijing time without offset.
//!
//! Classification: `apiResultCode` A1000 ok; A1002/A1003/A1004/A1006 → unauthorized;
//! A1005 → rate limited; A1009/A1099 → transient; A1001 → invalid input. Business codes
//! 8003 (too many numbers), 8013 (no number), 8247 (invalid waybill) → invalid input. A
//! number with no routes → not found for that number.
//!
//! `checkPhoneNo` (last four digits of the sender's or receiver's phone) is needed for
//! waybills not shipped on the partner's own account, and SF takes one per request:
//! a query whose waybills carry different phones is refused as invalid input.

use base64::Engine as _;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use waybill_sdk::{
    redact, Capabilities, CarrierPlugin, Config, ConfigKey, HttpRequest, HttpResponse, Manifest,
    NumberRule, PluginError, Query, RawEvent, State, Step, WaybillOutcome,
};

/// SF's production gateway host.
pub const DEFAULT_BASE_URL: &str = "https://bspgw.sf-express.com";

/// The route query's service code.
pub const SERVICE_CODE: &str = "EXP_RECE_SEARCH_ROUTES";

/// Most waybills one route query takes (more gives business code 8003).
pub const MAX_BATCH: usize = 10;

const ROUTES_STEP: &str = "routes";

/// The plugin: credentials and endpoint.
pub struct Shunfeng {
    base_url: String,
    partner_id: String,
    checkword: String,
}

/// The business JSON sent as `msgData`.
#[derive(Debug, Serialize)]
struct MsgData<'a> {
    language: &'a str,
    #[serde(rename = "trackingType")]
    tracking_type: u8,
    #[serde(rename = "trackingNumber")]
    tracking_number: Vec<&'a str>,
    #[serde(rename = "methodType")]
    method_type: u8,
    #[serde(rename = "checkPhoneNo", skip_serializing_if = "Option::is_none")]
    check_phone_no: Option<&'a str>,
}

#[derive(Debug, Deserialize)]
struct Envelope {
    #[serde(rename = "apiResultCode", default)]
    api_result_code: String,
    #[serde(rename = "apiErrorMsg", default)]
    api_error_msg: Option<String>,
    #[serde(rename = "apiResultData", default)]
    api_result_data: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct ResultData {
    #[serde(default)]
    success: bool,
    #[serde(rename = "errorCode", default)]
    error_code: Option<String>,
    #[serde(rename = "errorMsg", default)]
    error_msg: Option<String>,
    #[serde(rename = "msgData", default)]
    msg_data: Option<RouteData>,
}

#[derive(Debug, Deserialize)]
struct RouteData {
    #[serde(rename = "routeResps", default)]
    route_resps: Vec<RouteResp>,
}

#[derive(Debug, Deserialize)]
struct RouteResp {
    #[serde(rename = "mailNo", default)]
    mail_no: String,
    #[serde(default)]
    routes: Vec<Route>,
}

#[derive(Debug, Deserialize)]
struct Route {
    #[serde(rename = "acceptTime", default)]
    accept_time: String,
    #[serde(rename = "acceptAddress", default)]
    accept_address: Option<String>,
    #[serde(default)]
    remark: String,
    #[serde(rename = "opCode", default)]
    op_code: Option<Value>,
    #[serde(rename = "secondaryStatusCode", default)]
    secondary_status_code: Option<Value>,
}

/// Java's `URLEncoder.encode(s, "UTF-8")`, which SF's signature is defined over: ASCII
/// letters, digits and `. - * _` stay, a space becomes `+`, every other byte is `%XX`.
///
/// ```
/// assert_eq!(waybill_carrier_shunfeng::java_url_encode("a b*~{\"河"), "a+b*%7E%7B%22%E6%B2%B3");
/// ```
pub fn java_url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'*' | b'_' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// SF's `msgDigest`: Base64 of the raw MD5 of the Java-URL-encoded
/// `msgData + timestamp + checkword`.
///
/// ```
/// // The worked example of SF's API overview.
/// let d = waybill_carrier_shunfeng::msg_digest(
///     r#"{"language":"zh-CN","orderId":"QIAO-20200618-004"}"#,
///     "12312334453453",
///     "fjcg5PGKaNpPSHFAZ4QsCOkV71R3zVci",
/// );
/// assert_eq!(d, "IIKJtuLVzoFTu4kHI8M8vA==");
/// ```
pub fn msg_digest(msg_data: &str, timestamp: &str, checkword: &str) -> String {
    let encoded = java_url_encode(&format!("{msg_data}{timestamp}{checkword}"));
    base64::engine::general_purpose::STANDARD.encode(Md5::digest(encoded.as_bytes()))
}

/// The state an SF route line stands for, from its `opCode` (the published part of SF's
/// table), then its `secondaryStatusCode`; `None` leaves the line to core's text
/// normalizer, which reads `remark` (SF says the remark is the ground truth).
///
/// A signature (80/8000) is refined from the remark: proxy (代收/代签) or locker/station
/// (丰巢, 快递柜, 驿站).
///
/// ```
/// use waybill_carrier_shunfeng::state_of;
/// use waybill_sdk::State;
/// assert_eq!(state_of(Some("54"), None, "已收取快件"), Some(State::Collected));
/// assert_eq!(state_of(Some("80"), None, "已由【丰巢智能柜】代收"), Some(State::DeliveredFromLocker));
/// assert_eq!(state_of(Some("607"), Some("201"), "运送中"), Some(State::InTransit));
/// assert_eq!(state_of(Some("607"), None, "?"), None);
/// ```
pub fn state_of(op_code: Option<&str>, secondary: Option<&str>, remark: &str) -> Option<State> {
    let by_op = op_code.and_then(|op| {
        Some(match op {
            "50" | "54" => State::Collected,
            "30" | "31" => State::AtTransferCentre,
            "36" => State::InTransit,
            "44" | "130" => State::AtDeliveryOutlet,
            "204" => State::OutForDelivery,
            "70" => State::AttemptFailed,
            "33" => State::Held,
            "80" | "8000" => delivered_kind(remark),
            "99" => State::Returning,
            "648" => State::Redirected,
            _ => return None,
        })
    });
    by_op.or_else(|| {
        Some(match secondary? {
            "101" => State::Collected,
            "201" => State::InTransit,
            "204" => State::CustomsInProgress,
            "205" => State::CustomsCleared,
            "301" => State::OutForDelivery,
            "401" => delivered_kind(remark),
            _ => return None,
        })
    })
}

fn delivered_kind(remark: &str) -> State {
    if ["丰巢", "快递柜", "智能柜", "驿站"]
        .iter()
        .any(|w| remark.contains(w))
    {
        State::DeliveredFromLocker
    } else if remark.contains("代收") || remark.contains("代签") {
        State::DeliveredByProxy
    } else {
        State::Delivered
    }
}

fn code_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A request id in UUID shape, derived from what makes the request unique (no global
/// random source in a plugin).
fn request_id(numbers: &[&str], timestamp: &str) -> String {
    let h = Md5::digest(format!("{}|{timestamp}", numbers.join(",")).as_bytes());
    let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

impl Shunfeng {
    /// Builds the route query for `query` at `timestamp_ms` (epoch milliseconds): the
    /// pure part of [`CarrierPlugin::start`], which only adds the clock.
    pub fn route_request(&self, query: &Query, timestamp_ms: u128) -> Step {
        let numbers: Vec<&str> = query.waybills.iter().map(|w| w.number.as_str()).collect();
        if numbers.is_empty() {
            return Step::Done(vec![]);
        }
        if numbers.len() > MAX_BATCH {
            return Step::Failed(PluginError::InvalidInput {
                message: format!(
                    "{} numbers in one query; SF takes at most {MAX_BATCH}",
                    numbers.len()
                ),
            });
        }
        let mut phones: Vec<&str> = query
            .waybills
            .iter()
            .filter_map(|w| w.phone_last4())
            .filter(|p| !p.is_empty())
            .collect();
        phones.sort_unstable();
        phones.dedup();
        if phones.len() > 1 {
            return Step::Failed(PluginError::InvalidInput {
                message: format!(
                    "SF takes one checkPhoneNo per request, but this query's {} waybills carry {} different phones; query them separately",
                    numbers.len(),
                    phones.len()
                ),
            });
        }
        let msg_data = MsgData {
            language: "zh-CN",
            tracking_type: 1,
            tracking_number: numbers.clone(),
            method_type: 1,
            check_phone_no: phones.first().copied(),
        };
        let msg_data = match serde_json::to_string(&msg_data) {
            Ok(s) => s,
            Err(e) => return Step::Failed(PluginError::internal(e.to_string())),
        };
        let timestamp = timestamp_ms.to_string();
        let digest = msg_digest(&msg_data, &timestamp, &self.checkword);
        let request_id = request_id(&numbers, &timestamp);
        Step::Send(
            HttpRequest::post(format!("{}/std/service", self.base_url))
                .header("Accept", "application/json")
                .form([
                    ("partnerID", self.partner_id.as_str()),
                    ("requestID", request_id.as_str()),
                    ("serviceCode", SERVICE_CODE),
                    ("timestamp", timestamp.as_str()),
                    ("msgDigest", digest.as_str()),
                    ("msgData", msg_data.as_str()),
                ])
                .state(format!("{ROUTES_STEP}:{}", numbers.join(","))),
        )
    }

    fn after_routes(&self, numbers: &str, response: &HttpResponse) -> Step {
        if let Some(e) = response.status_error() {
            return Step::Failed(e);
        }
        let envelope: Envelope = match response.json() {
            Ok(v) => v,
            Err(e) => return Step::Failed(e),
        };
        let api_message = redact(
            envelope.api_error_msg.as_deref().unwrap_or_default(),
            &[&self.checkword],
        );
        let detail = |what: &str| {
            format!(
                "SF apiResultCode {} ({what}): {api_message}",
                envelope.api_result_code
            )
        };
        let failure = match envelope.api_result_code.as_str() {
            "A1000" => None,
            "A1001" => Some(PluginError::InvalidInput {
                message: detail("missing parameter"),
            }),
            "A1002" => Some(PluginError::Unauthorized {
                message: detail("access token expired"),
            }),
            "A1003" => Some(PluginError::Unauthorized {
                message: detail("IP not allowed"),
            }),
            "A1004" => Some(PluginError::Unauthorized {
                message: detail(
                    "no permission for the route query, or sandbox/production mismatch",
                ),
            }),
            "A1005" => Some(PluginError::RateLimited {
                retry_after_secs: response.retry_after_secs(),
            }),
            "A1006" => Some(PluginError::Unauthorized {
                message: detail("msgDigest refused: check `partner_id` and `checkword`"),
            }),
            "A1009" | "A1099" => Some(PluginError::Transient {
                message: detail("SF system error"),
            }),
            _ => Some(PluginError::bad_response(detail("undocumented code"))),
        };
        if let Some(e) = failure {
            return Step::Failed(e);
        }
        let data: ResultData = match envelope.api_result_data {
            Some(Value::String(s)) => match serde_json::from_str(&s) {
                Ok(d) => d,
                Err(e) => {
                    return Step::Failed(PluginError::bad_response(format!(
                        "SF apiResultData is not the expected JSON: {e}"
                    )))
                }
            },
            Some(v @ Value::Object(_)) => match serde_json::from_value(v) {
                Ok(d) => d,
                Err(e) => {
                    return Step::Failed(PluginError::bad_response(format!(
                        "SF apiResultData has an unexpected shape: {e}"
                    )))
                }
            },
            _ => {
                return Step::Failed(PluginError::bad_response(
                    "SF answered A1000 without apiResultData",
                ))
            }
        };
        if !data.success {
            let code = data.error_code.unwrap_or_default();
            let message = format!(
                "SF errorCode {code}: {}",
                redact(
                    data.error_msg.as_deref().unwrap_or_default(),
                    &[&self.checkword]
                )
            );
            return Step::Failed(match code.as_str() {
                "8003" | "8013" | "8247" => PluginError::InvalidInput { message },
                _ => PluginError::bad_response(message),
            });
        }
        let resps = data.msg_data.map(|d| d.route_resps).unwrap_or_default();
        let outcomes = numbers
            .split(',')
            .map(|number| {
                match resps
                    .iter()
                    .find(|r| r.mail_no.eq_ignore_ascii_case(number))
                {
                    Some(r) if !r.routes.is_empty() => {
                        WaybillOutcome::events(number, r.routes.iter().map(event).collect())
                    }
                    _ => WaybillOutcome::error(
                        number,
                        PluginError::NotFound {
                            message: "SF has no route for this number (unknown, not yet scanned, or the phone digits do not match)".into(),
                        },
                    ),
                }
            })
            .collect();
        Step::Done(outcomes)
    }
}

fn event(r: &Route) -> RawEvent {
    let op = r.op_code.as_ref().and_then(code_text);
    let secondary = r.secondary_status_code.as_ref().and_then(code_text);
    RawEvent {
        time: r.accept_time.clone(),
        offset_minutes: None, // Beijing time, no offset on the wire.
        text: r.remark.clone(),
        location: r
            .accept_address
            .as_deref()
            .filter(|a| !a.trim().is_empty())
            .map(str::to_owned),
        state: state_of(op.as_deref(), secondary.as_deref(), &r.remark),
        raw_code: op,
    }
}

impl CarrierPlugin for Shunfeng {
    fn manifest() -> Manifest {
        Manifest {
            codes: vec!["shunfeng".into(), "sf".into()],
            name_zh: "顺丰速运".into(),
            name_en: "SF Express".into(),
            number_rules: vec![NumberRule::new("shunfeng_sf12", r"^SF\d{12,13}$")],
            capabilities: Capabilities {
                max_batch: MAX_BATCH,
                needs_phone: true,
                // The integration environment allows 30 calls/s per interface; production
                // limits are not published.
                rate_limit_per_sec: Some(30.0),
            },
            config_keys: vec![
                ConfigKey {
                    required: true,
                    ..ConfigKey::optional("partner_id", "顾客编码 (partnerID) from the 丰桥 platform")
                },
                ConfigKey::secret("checkword", "校验码 (checkword) of the partner id"),
                ConfigKey::optional(
                    "base_url",
                    format!(
                        "gateway host (default {DEFAULT_BASE_URL}; sandbox https://sfapi-sbox.sf-express.com)"
                    ),
                ),
            ],
            plugin_version: env!("CARGO_PKG_VERSION").into(),
            ..Default::default()
        }
    }

    fn new(config: &Config) -> Result<Self, PluginError> {
        // The portal shows the full service URL; accept it as well as the bare host.
        let base_url = config
            .base_url("base_url", DEFAULT_BASE_URL)?
            .trim_end_matches("/std/service")
            .to_owned();
        Ok(Shunfeng {
            base_url,
            partner_id: config.require("partner_id")?.trim().to_owned(),
            checkword: config.require("checkword")?.trim().to_owned(),
        })
    }

    fn start(&self, query: &Query) -> Step {
        // SF signs `timestamp` with the caller's clock; the host hands it over (SDK 1.1),
        // so the plugin never reads the system clock.
        let Some(now_ms) = query.now_ms.and_then(|t| u128::try_from(t).ok()) else {
            return Step::Failed(PluginError::Unsupported {
                message: "SF signs each request with the caller's clock, and this host sent none (it needs waybill SDK 1.1 or later)".into(),
            });
        };
        self.route_request(query, now_ms)
    }

    fn resume(&self, state: &str, response: &HttpResponse) -> Step {
        match state.split_once(':') {
            Some((ROUTES_STEP, numbers)) if !numbers.is_empty() => {
                self.after_routes(numbers, response)
            }
            _ => Step::Failed(PluginError::internal(format!("unknown step {state:?}"))),
        }
    }
}

waybill_sdk::export_carrier!(Shunfeng);

#[cfg(test)]
mod tests {
    use super::*;
    use waybill_sdk::{InProcess, QueryWaybill, StepMachine};

    const CHECKWORD: &str = "cw-5PGKaNpPSHFAZ4QsCOkV71R3";
    const STATE: &str = "routes:SF1400000000017,SF1400000000025";

    fn plugin() -> Shunfeng {
        Shunfeng::new(&Config::from_pairs([
            ("partner_id", "PARTNER01"),
            ("checkword", CHECKWORD),
            ("base_url", "http://sf.test/std/service"),
        ]))
        .unwrap()
    }

    fn resume(body: &[u8]) -> Step {
        plugin().resume(STATE, &HttpResponse::new(200, body.to_vec()))
    }

    fn form(body: &[u8]) -> Vec<(String, String)> {
        let s = String::from_utf8(body.to_vec()).unwrap();
        s.split('&')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_owned(), decode(v))
            })
            .collect()
    }

    fn decode(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }

    fn get<'a>(f: &'a [(String, String)], k: &str) -> &'a str {
        &f.iter().find(|(n, _)| n == k).unwrap().1
    }

    #[test]
    fn the_route_query_is_signed_over_msgdata_timestamp_and_checkword() {
        let q = Query::new(vec![
            QueryWaybill::new("shunfeng", "SF1400000000017").with_phone("13800005678"),
            QueryWaybill::new("shunfeng", "SF1400000000025"),
        ]);
        let Step::Send(req) = plugin().route_request(&q, 1_741_060_000_000) else {
            panic!("expected a request")
        };
        assert_eq!(req.url, "http://sf.test/std/service");
        let f = form(&req.body);
        assert_eq!(get(&f, "partnerID"), "PARTNER01");
        assert_eq!(get(&f, "serviceCode"), SERVICE_CODE);
        assert_eq!(get(&f, "timestamp"), "1741060000000");
        assert_eq!(get(&f, "requestID").len(), 36);
        let msg_data = get(&f, "msgData");
        assert_eq!(
            msg_data,
            r#"{"language":"zh-CN","trackingType":1,"trackingNumber":["SF1400000000017","SF1400000000025"],"methodType":1,"checkPhoneNo":"5678"}"#
        );
        assert_eq!(
            get(&f, "msgDigest"),
            msg_digest(msg_data, "1741060000000", CHECKWORD)
        );
        assert!(!String::from_utf8_lossy(&req.body).contains(CHECKWORD));
        assert_eq!(req.state, STATE);
    }

    #[test]
    fn the_java_encoder_matches_the_documented_digest() {
        assert_eq!(
            msg_digest(
                r#"{"language":"zh-CN","orderId":"QIAO-20200618-004"}"#,
                "12312334453453",
                "fjcg5PGKaNpPSHFAZ4QsCOkV71R3zVci"
            ),
            "IIKJtuLVzoFTu4kHI8M8vA=="
        );
    }

    #[test]
    fn waybills_with_different_phones_cannot_share_a_request() {
        let q = Query::new(vec![
            QueryWaybill::new("shunfeng", "SF1400000000017").with_phone("13800005678"),
            QueryWaybill::new("shunfeng", "SF1400000000025").with_phone("13900001111"),
        ]);
        let Step::Failed(e) = plugin().route_request(&q, 1) else {
            panic!()
        };
        assert_eq!(e.kind(), "invalid_input");
        assert!(!e.to_string().contains("5678"), "phones stay out of errors");
    }

    #[test]
    fn more_than_ten_numbers_are_refused_before_sending() {
        let q = Query::new(
            (0..11)
                .map(|i| QueryWaybill::new("shunfeng", format!("SF14000000000{i:02}")))
                .collect(),
        );
        assert!(matches!(
            plugin().route_request(&q, 1),
            Step::Failed(PluginError::InvalidInput { .. })
        ));
    }

    #[test]
    fn op_codes_map_to_states_in_route_order() {
        let Step::Done(out) = resume(include_bytes!("../fixtures/in_transit.json")) else {
            panic!("expected Done")
        };
        let first = out[0].result.as_ref().unwrap();
        let states: Vec<_> = first.iter().map(|e| e.state.unwrap()).collect();
        assert_eq!(
            states,
            vec![
                State::Collected,
                State::AtTransferCentre,
                State::InTransit,
                State::AtTransferCentre,
                State::AtDeliveryOutlet,
                State::OutForDelivery
            ]
        );
        assert_eq!(first[0].time, "2025-03-03 18:02:11");
        assert_eq!(first[0].offset_minutes, None);
        assert_eq!(first[0].location.as_deref(), Some("深圳市"));
        assert_eq!(first[0].raw_code.as_deref(), Some("54"));
        let second = out[1].result.as_ref().unwrap();
        assert_eq!(second[1].state, Some(State::Held));
    }

    #[test]
    fn signatures_are_refined_from_the_remark() {
        let Step::Done(out) = resume(include_bytes!("../fixtures/delivered.json")) else {
            panic!("expected Done")
        };
        let first = out[0].result.as_ref().unwrap();
        assert_eq!(first[2].state, Some(State::AttemptFailed));
        assert_eq!(first[3].state, Some(State::DeliveredFromLocker));
        let second = out[1].result.as_ref().unwrap();
        assert_eq!(second[1].state, Some(State::Delivered));
        assert_eq!(second[1].raw_code.as_deref(), Some("8000"));
    }

    #[test]
    fn a_number_without_routes_is_not_found_and_a_missing_one_too() {
        let Step::Done(out) = resume(include_bytes!("../fixtures/not_found.json")) else {
            panic!("expected Done")
        };
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].result.as_ref().unwrap_err().kind(), "not_found");
        assert_eq!(out[1].number, "SF1400000000025");
        assert_eq!(out[1].result.as_ref().unwrap_err().kind(), "not_found");
    }

    #[test]
    fn api_result_codes_are_classified() {
        let cases: [(&[u8], &str); 3] = [
            (
                include_bytes!("../fixtures/bad_digest.json"),
                "unauthorized",
            ),
            (
                include_bytes!("../fixtures/rate_limited.json"),
                "rate_limited",
            ),
            (include_bytes!("../fixtures/too_many.json"), "invalid_input"),
        ];
        for (body, kind) in cases {
            let Step::Failed(e) = resume(body) else {
                panic!("{kind}")
            };
            assert_eq!(e.kind(), kind);
        }
        let busy = r#"{"apiResultCode":"A1099","apiErrorMsg":"系统异常"}"#;
        let Step::Failed(e) = resume(busy.as_bytes()) else {
            panic!()
        };
        assert_eq!(e.kind(), "transient");
    }

    #[test]
    fn an_unauthorized_error_never_carries_the_checkword() {
        let body =
            format!(r#"{{"apiResultCode":"A1006","apiErrorMsg":"digest of {CHECKWORD} wrong"}}"#);
        let Step::Failed(e) = resume(body.as_bytes()) else {
            panic!()
        };
        assert_eq!(e.kind(), "unauthorized");
        assert!(!e.to_string().contains(CHECKWORD), "{e}");
    }

    #[test]
    fn http_429_with_retry_after_is_rate_limited() {
        let r = HttpResponse::new(429, "").with_header("Retry-After", "2");
        assert_eq!(
            plugin().resume(STATE, &r),
            Step::Failed(PluginError::RateLimited {
                retry_after_secs: Some(2)
            })
        );
    }

    #[test]
    fn unreadable_bodies_are_bad_responses() {
        let Step::Failed(e) = resume(include_bytes!("../fixtures/malformed.json")) else {
            panic!()
        };
        assert_eq!(e.kind(), "bad_response");
        let inner = r#"{"apiResultCode":"A1000","apiResultData":"{\"success\":tru"}"#;
        let Step::Failed(e) = resume(inner.as_bytes()) else {
            panic!()
        };
        assert_eq!(e.kind(), "bad_response");
    }

    #[test]
    fn start_signs_with_the_hosts_clock() {
        let m = InProcess::<Shunfeng>::new(&Config::from_pairs([
            ("partner_id", "P"),
            ("checkword", "cw"),
        ]))
        .unwrap();
        let q = Query::single("shunfeng", "SF1400000000017").at(1_741_060_000_000);
        let Step::Send(req) = m.start(&q) else {
            panic!()
        };
        assert!(req.url.starts_with(DEFAULT_BASE_URL));
        assert_eq!(get(&form(&req.body), "timestamp"), "1741060000000");
        // Same query, same request: the plugin reads no clock of its own.
        let Step::Send(again) = m.start(&q) else {
            panic!()
        };
        assert_eq!(again.body, req.body);
    }

    #[test]
    fn start_without_a_host_clock_is_refused_not_guessed() {
        let m = InProcess::<Shunfeng>::new(&Config::from_pairs([
            ("partner_id", "P"),
            ("checkword", "cw"),
        ]))
        .unwrap();
        let Step::Failed(e) = m.start(&Query::single("shunfeng", "SF1400000000017")) else {
            panic!()
        };
        assert_eq!(e.kind(), "unsupported");
    }
}
