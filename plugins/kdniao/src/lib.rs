//! Kdniao (快递鸟) as an upstream: the 8001 query (即时查询增值版, the in-transit
//! monitoring query), for the 400+ companies a Kdniao account tracks.
//!
//! Like kuaidi100, the plugin answers for its own code `kdniao` and declares itself an
//! aggregator: the host routes a company without a plugin here (`WAYBILL_UPSTREAM=kdniao`),
//! and the waybill's own company code is sent as Kdniao's `ShipperCode` ([`shipper_code`]).
//!
//! Wire format (one number per call): `POST {base_url}/Ebusiness/EbusinessOrderHandle.aspx`,
//! form `RequestData` (JSON `{"OrderCode":"","ShipperCode","LogisticCode","CustomerName"?}`),
//! `EBusinessID`, `RequestType=8001`, `DataSign`, `DataType=2`, where
//! `DataSign = Base64(lower_hex(MD5(RequestData + AppKey)))` over the exact `RequestData`
//! sent (core's `kdniao_data_sign`), then URL-encoded like every form value. For SF,
//! `CustomerName` carries the last four digits of the sender's or receiver's phone.
//!
//! Answer: `{EBusinessID, ShipperCode, LogisticCode, Success, Reason, State, StateEx,
//! Location, Traces:[{AcceptTime, AcceptStation, Location, Action, Remark}]}`, traces
//! oldest first, Beijing time without offset. `Success` is read as a boolean or its
//! string.
//!
//! **States.** Each trace's `Action` (Kdniao's StateEx code set, [`action_codes`]) decides;
//! the newest trace without one takes the waybill's `StateEx`, else its `State`; only a
//! line none of them settles goes to core's text normalizer.
//!
//! **Errors.** `Success:false` with a `Reason`: 非法参数 / 签名 (bad EBusinessID, AppKey or
//! sign) and 没有可用套餐 (service not bought) → unauthorized; 405 or 次数 (daily quota) →
//! rate limited; a missing, malformed or unknown number (401–404, 暂无轨迹) → per waybill,
//! invalid input or not found; anything else → bad response.

use serde::Deserialize;
use serde_json::Value;
use waybill_core::dialect::KDNIAO;
use waybill_core::sign::kdniao_data_sign;
use waybill_sdk::{
    redact, Capabilities, CarrierPlugin, CodeTable, Config, ConfigKey, HttpRequest, HttpResponse,
    Manifest, PluginError, Query, QueryWaybill, RawEvent, Step, WaybillOutcome,
};

/// Kdniao's production host.
pub const DEFAULT_BASE_URL: &str = "https://api.kdniao.com";

/// The plugin's own carrier code (Kdniao is routed to by configuration).
pub const CODE: &str = "kdniao";

/// The query type: 即时查询(增值版).
pub const REQUEST_TYPE: &str = "8001";

const QUERY_STEP: &str = "query";

/// Kdniao's `ShipperCode` for one of our company codes (core's one table).
pub use waybill_core::shipper::kdniao_shipper_code as shipper_code;

/// Kdniao's trace `Action` codes (the StateEx set, main codes included), as core's Kdniao
/// dialect table decodes them.
pub fn action_codes() -> CodeTable {
    KDNIAO.iter().fold(
        CodeTable::new("Action", "Kdniao 8001 / 在途监控 State and StateEx table"),
        |t, c| t.code(&c.code.to_string(), c.label, Some(c.state)),
    )
}

/// The plugin: credentials and endpoint.
pub struct Kdniao {
    base_url: String,
    business_id: String,
    app_key: String,
}

#[derive(Debug, Deserialize)]
struct Reply {
    #[serde(rename = "Success", default, deserialize_with = "lenient_bool")]
    success: bool,
    #[serde(rename = "Reason", default)]
    reason: Option<String>,
    #[serde(rename = "ResultCode", default)]
    result_code: Option<Value>,
    #[serde(rename = "State", default)]
    state: Option<Value>,
    #[serde(rename = "StateEx", default)]
    state_ex: Option<Value>,
    #[serde(rename = "Traces", default)]
    traces: Vec<Trace>,
}

#[derive(Debug, Deserialize)]
struct Trace {
    #[serde(rename = "AcceptTime", default)]
    accept_time: String,
    #[serde(rename = "AcceptStation", default)]
    accept_station: String,
    #[serde(rename = "Location", default)]
    location: Option<String>,
    #[serde(rename = "Action", default)]
    action: Option<Value>,
}

fn lenient_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match Value::deserialize(d)? {
        Value::Bool(b) => Ok(b),
        Value::Null => Ok(false),
        Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Ok(false),
        other => Err(serde::de::Error::custom(format!(
            "`Success` must be true or false, got {other}"
        ))),
    }
}

fn code_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// How a `Success:false` answer is handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The whole query failed.
    Query(PluginError),
    /// Only this waybill failed.
    Waybill(PluginError),
}

/// Classifies a `Success:false` answer from its `ResultCode` (if any) and `Reason`
/// (already redacted of secrets).
///
/// ```
/// use waybill_carrier_kdniao::{classify, Failure};
/// assert!(matches!(classify(None, "业务错误[没有可用套餐]"), Failure::Query(e) if e.kind() == "unauthorized"));
/// assert!(matches!(classify(Some("405"), "日查询次数超限"), Failure::Query(e) if e.kind() == "rate_limited"));
/// assert!(matches!(classify(None, "暂无轨迹信息"), Failure::Waybill(e) if e.kind() == "not_found"));
/// ```
pub fn classify(code: Option<&str>, reason: &str) -> Failure {
    let message = format!("Kdniao {}: {reason}", code.unwrap_or("-"));
    let has = |words: &[&str]| words.iter().any(|w| reason.contains(w));
    match code {
        Some("405") => {
            return Failure::Query(PluginError::RateLimited {
                retry_after_secs: None,
            })
        }
        Some("102") => return Failure::Query(PluginError::Unauthorized { message }),
        Some("401" | "402" | "403" | "404") => {
            return Failure::Waybill(PluginError::InvalidInput { message })
        }
        _ => {}
    }
    if has(&[
        "非法参数",
        "签名",
        "DataSign",
        "没有可用套餐",
        "套餐",
        "未开通",
    ]) {
        Failure::Query(PluginError::Unauthorized { message })
    } else if has(&["次数", "频繁", "超限"]) {
        Failure::Query(PluginError::RateLimited {
            retry_after_secs: None,
        })
    } else if has(&["暂无轨迹", "没有物流轨迹", "无轨迹", "查询无结果"]) {
        Failure::Waybill(PluginError::NotFound { message })
    } else if has(&["单号", "快递公司", "编码"]) {
        Failure::Waybill(PluginError::InvalidInput { message })
    } else {
        Failure::Query(PluginError::bad_response(message))
    }
}

impl Kdniao {
    /// The exact `RequestData` for a waybill (the sign is computed over it).
    pub fn request_data(waybill: &QueryWaybill) -> Result<String, PluginError> {
        let company = waybill.company.trim().to_ascii_lowercase();
        if company.is_empty() || company == CODE {
            return Err(PluginError::InvalidInput {
                message: format!(
                    "waybill {}: Kdniao needs the waybill's own company code (e.g. `yuantong`), got {:?}",
                    waybill.number, waybill.company
                ),
            });
        }
        // Fields in the order of Kdniao's documentation and demos.
        #[derive(serde::Serialize)]
        struct RequestData<'a> {
            #[serde(rename = "OrderCode")]
            order_code: &'a str,
            #[serde(rename = "ShipperCode")]
            shipper_code: String,
            #[serde(rename = "LogisticCode")]
            logistic_code: &'a str,
            // SF checks the last four digits of a phone; others ignore CustomerName.
            #[serde(rename = "CustomerName", skip_serializing_if = "Option::is_none")]
            customer_name: Option<&'a str>,
        }
        serde_json::to_string(&RequestData {
            order_code: "",
            shipper_code: shipper_code(&company),
            logistic_code: &waybill.number,
            customer_name: waybill.phone_last4().filter(|p| !p.is_empty()),
        })
        .map_err(|e| PluginError::internal(e.to_string()))
    }

    fn after_query(&self, number: &str, response: &HttpResponse) -> Step {
        if let Some(e) = response.status_error() {
            return Step::Failed(e);
        }
        let reply: Reply = match response.json() {
            Ok(r) => r,
            Err(e) => return Step::Failed(e),
        };
        if !reply.success && reply.traces.is_empty() {
            let reason = redact(
                reply.reason.as_deref().unwrap_or_default(),
                &[&self.app_key, &self.business_id],
            );
            let code = reply.result_code.as_ref().and_then(code_text);
            return match classify(code.as_deref(), &reason) {
                Failure::Query(e) => Step::Failed(e),
                Failure::Waybill(e) => Step::Done(vec![WaybillOutcome::error(number, e)]),
            };
        }
        if reply.traces.is_empty() {
            return Step::Done(vec![WaybillOutcome::error(
                number,
                PluginError::NotFound {
                    message: "Kdniao has no trace for this number yet".into(),
                },
            )]);
        }
        let table = action_codes();
        let top = [&reply.state_ex, &reply.state]
            .into_iter()
            .filter_map(|v| v.as_ref().and_then(code_text))
            .find_map(|c| table.state_of(&c));
        let last = reply.traces.len() - 1;
        let events = reply
            .traces
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let action = t.action.as_ref().and_then(code_text);
                let mut state = action.as_deref().and_then(|a| table.state_of(a));
                // Traces are oldest first; the waybill's state describes the newest.
                if i == last && state.is_none() {
                    state = top;
                }
                let mut e = RawEvent::new(t.accept_time.clone(), t.accept_station.clone())
                    .with_codes([("Action", action.as_deref().unwrap_or_default())]);
                e.location = t
                    .location
                    .as_deref()
                    .filter(|l| !l.trim().is_empty())
                    .map(str::to_owned);
                e.state = state;
                e
            })
            .collect();
        Step::Done(vec![WaybillOutcome::events(number, events)])
    }
}

impl CarrierPlugin for Kdniao {
    fn manifest() -> Manifest {
        Manifest {
            codes: vec![CODE.into()],
            name_zh: "快递鸟".into(),
            name_en: "Kdniao (upstream aggregator)".into(),
            // An aggregator has no number shape of its own: the guesser picks the company.
            number_rules: vec![],
            capabilities: Capabilities {
                max_batch: 1,
                // SF checks the phone's last four digits.
                needs_phone: true,
                // Kdniao publishes daily quotas (500/day for 1002, 30 000/day per the
                // SDK's error 405), not a per-second figure; stay polite.
                rate_limit_per_sec: Some(5.0),
            },
            config_keys: vec![
                ConfigKey {
                    required: true,
                    ..ConfigKey::optional(
                        "ebusiness_id",
                        "EBusinessID (用户ID) from the Kdniao console",
                    )
                },
                ConfigKey::secret("app_key", "AppKey (API key) from the Kdniao console"),
                ConfigKey::optional("base_url", format!("API host (default {DEFAULT_BASE_URL})")),
            ],
            plugin_version: env!("CARGO_PKG_VERSION").into(),
            aggregator: true,
            code_tables: vec![action_codes()],
        }
    }

    fn new(config: &Config) -> Result<Self, PluginError> {
        Ok(Kdniao {
            base_url: config.base_url("base_url", DEFAULT_BASE_URL)?,
            business_id: config.require("ebusiness_id")?.trim().to_owned(),
            app_key: config.require("app_key")?.trim().to_owned(),
        })
    }

    fn start(&self, query: &Query) -> Step {
        let waybill = match query.waybills.as_slice() {
            [] => return Step::Done(vec![]),
            [one] => one,
            many => {
                return Step::Failed(PluginError::InvalidInput {
                    message: format!(
                        "{} numbers in one query; Kdniao takes one per call",
                        many.len()
                    ),
                })
            }
        };
        let data = match Self::request_data(waybill) {
            Ok(d) => d,
            Err(e) => return Step::Failed(e),
        };
        let sign = kdniao_data_sign(&data, &self.app_key);
        Step::Send(
            HttpRequest::post(format!(
                "{}/Ebusiness/EbusinessOrderHandle.aspx",
                self.base_url
            ))
            .header("Accept", "application/json")
            .form([
                ("RequestData", data.as_str()),
                ("EBusinessID", self.business_id.as_str()),
                ("RequestType", REQUEST_TYPE),
                ("DataSign", sign.as_str()),
                ("DataType", "2"),
            ])
            .state(format!("{QUERY_STEP}:{}", waybill.number)),
        )
    }

    fn resume(&self, state: &str, response: &HttpResponse) -> Step {
        match state.split_once(':') {
            Some((QUERY_STEP, number)) if !number.is_empty() => self.after_query(number, response),
            _ => Step::Failed(PluginError::internal(format!("unknown step {state:?}"))),
        }
    }
}

waybill_sdk::export_carrier!(Kdniao);

#[cfg(test)]
mod tests {
    use super::*;
    use waybill_sdk::State;

    const KEY: &str = "kdn-appkey-3f9a0c1e";
    const STATE: &str = "query:YT7300000000202";

    fn plugin() -> Kdniao {
        Kdniao::new(&Config::from_pairs([
            ("ebusiness_id", "1700000"),
            ("app_key", KEY),
            ("base_url", "http://kdniao.test/"),
        ]))
        .unwrap()
    }

    fn resume(body: &[u8]) -> Step {
        plugin().resume(STATE, &HttpResponse::new(200, body.to_vec()))
    }

    fn field(body: &[u8], key: &str) -> String {
        let s = String::from_utf8(body.to_vec()).unwrap();
        let v = s
            .split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
            .unwrap();
        let b = v.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' {
                out.push(u8::from_str_radix(&v[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_8001_query_is_signed_over_the_request_data_sent() {
        let q = Query::new(vec![QueryWaybill::new("yuantong", "YT7300000000202")]);
        let Step::Send(req) = plugin().start(&q) else {
            panic!()
        };
        assert_eq!(
            req.url,
            "http://kdniao.test/Ebusiness/EbusinessOrderHandle.aspx"
        );
        let data = field(&req.body, "RequestData");
        assert_eq!(
            data,
            r#"{"OrderCode":"","ShipperCode":"YTO","LogisticCode":"YT7300000000202"}"#
        );
        assert_eq!(field(&req.body, "RequestType"), "8001");
        assert_eq!(field(&req.body, "DataType"), "2");
        assert_eq!(field(&req.body, "EBusinessID"), "1700000");
        assert_eq!(field(&req.body, "DataSign"), kdniao_data_sign(&data, KEY));
        assert!(!String::from_utf8_lossy(&req.body).contains(KEY));
        assert_eq!(req.state, STATE);
    }

    #[test]
    fn the_documented_sign_vector_holds() {
        let data = r#"{"OrderCode":"","ShipperCode":"YTO","LogisticCode":"YT0000000000"}"#;
        assert_eq!(
            kdniao_data_sign(data, "APPKEY123"),
            "NjdlYWY0NDEyMzU5ZmQyNjcwZjEyMzNkYmYwNTYzZGU="
        );
    }

    #[test]
    fn sf_sends_the_phones_last_four_digits_and_its_own_shipper_code() {
        let q = Query::new(vec![
            QueryWaybill::new("shunfeng", "SF1400000000017").with_phone("13800005678")
        ]);
        let Step::Send(req) = plugin().start(&q) else {
            panic!()
        };
        let data: Value = serde_json::from_str(&field(&req.body, "RequestData")).unwrap();
        assert_eq!(data["ShipperCode"], "SF");
        assert_eq!(data["CustomerName"], "5678");
    }

    #[test]
    fn its_own_code_or_several_numbers_are_refused() {
        for q in [
            Query::single("kdniao", "X1"),
            Query::new(vec![
                QueryWaybill::new("yuantong", "YT1"),
                QueryWaybill::new("yuantong", "YT2"),
            ]),
        ] {
            assert!(matches!(
                plugin().start(&q),
                Step::Failed(PluginError::InvalidInput { .. })
            ));
        }
    }

    #[test]
    fn actions_decide_and_the_newest_line_without_one_takes_state_ex() {
        let Step::Done(out) = resume(include_bytes!("../fixtures/in_transit.json")) else {
            panic!()
        };
        let states: Vec<_> = out[0]
            .result
            .as_ref()
            .unwrap()
            .iter()
            .map(|e| e.state.unwrap())
            .collect();
        use State::*;
        assert_eq!(
            states,
            [
                Collected,
                DepartedOrigin,
                AtTransferCentre,
                AtDeliveryOutlet,
                OutForDelivery
            ]
        );
        let Step::Done(out) = resume(include_bytes!("../fixtures/delivered.json")) else {
            panic!()
        };
        let events = out[0].result.as_ref().unwrap();
        assert_eq!(events[2].state, Some(InLocker));
        // No Action on the newest line: StateEx 311 (signed at a locker) decides.
        assert_eq!(events[3].state, Some(DeliveredFromLocker));
        assert_eq!(events[3].offset_minutes, None, "Beijing time");
    }

    #[test]
    fn every_documented_code_maps_to_its_state() {
        let Step::Done(out) = resume(include_bytes!("../fixtures/every_code.json")) else {
            panic!()
        };
        let events = out[0].result.as_ref().unwrap();
        assert_eq!(events.len(), KDNIAO.len());
        for (e, row) in events.iter().zip(KDNIAO.iter()) {
            assert_eq!(
                e.raw_code.as_deref(),
                Some(format!("Action={}", row.code).as_str())
            );
            assert_eq!(e.state, State::from_kdniao(row.code), "{}", row.code);
            assert!(e.state.is_some());
        }
        // Spot checks against the published table, not core's decoder.
        assert_eq!(events[17].state, Some(State::DeliveredFromLocker)); // 311
        assert_eq!(events[25].state, Some(State::LockerTimeout)); // 412
    }

    #[test]
    fn failures_are_classified_without_the_key() {
        let Step::Done(out) = resume(include_bytes!("../fixtures/no_trace.json")) else {
            panic!()
        };
        assert_eq!(out[0].result.as_ref().unwrap_err().kind(), "not_found");
        for (body, kind) in [
            (
                &include_bytes!("../fixtures/bad_sign.json")[..],
                "unauthorized",
            ),
            (include_bytes!("../fixtures/no_plan.json"), "unauthorized"),
            (include_bytes!("../fixtures/quota.json"), "rate_limited"),
        ] {
            let Step::Failed(e) = resume(body) else {
                panic!("{kind}")
            };
            assert_eq!(e.kind(), kind);
        }
        let echo = format!(r#"{{"Success":false,"Reason":"非法参数 {KEY}"}}"#);
        let Step::Failed(e) = resume(echo.as_bytes()) else {
            panic!()
        };
        assert!(!e.to_string().contains(KEY), "{e}");
        let Step::Failed(e) = resume(br#"{"Success":"maybe","Traces":[]}"#) else {
            panic!()
        };
        assert_eq!(e.kind(), "bad_response");
    }
}
