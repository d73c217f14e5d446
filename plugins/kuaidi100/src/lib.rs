//! kuaidi100 (快递100) as an upstream: the real-time query `poll/query.do`.
//!
//! kuaidi100 answers for hundreds of companies. The SDK's manifest has no notion of an
//! aggregator, so the plugin declares the single code `kuaidi100`; the host routes a
//! waybill here by configuration, and the query's `company` (the waybill's own company
//! code, e.g. `yuantong`, `shunfeng`) is sent as kuaidi100's `com`.
//!
//! Wire format (one number per call):
//! `POST {base_url}/poll/query.do`, form `customer`, `sign`, `param`, where `param` is a
//! JSON string `{"com","num","phone"?,"resultv2":"4","show":"0","order":"desc"}` and
//! `sign = UPPER(MD5(param + key + customer))` over the exact `param` sent.
//!
//! Answers:
//! - success `{message, status:"200", state, ischeck, com, nu, data:[{context, time,
//!   ftime, status, statusCode, areaCode, areaName, location}]}`, newest first; times are
//!   Beijing local time without offset (`RawEvent::offset_minutes = None` → +08:00);
//! - failure `{"result":false, "returnCode", "message"}`, classified by
//!   [`classify_return_code`].
//!
//! Event states come from `statusCode` (kuaidi100's advanced codes with `resultv2=4`) via
//! core's kuaidi100 dialect; an event without one is left to core's text normalizer,
//! except the newest, which takes the waybill's top-level `state`.

use serde::Deserialize;
use serde_json::Value;
use waybill_core::sign::kuaidi100_query_sign;
use waybill_sdk::{
    redact, Capabilities, CarrierPlugin, Config, ConfigKey, HttpRequest, HttpResponse, Manifest,
    PluginError, Query, QueryWaybill, RawEvent, State, Step, WaybillOutcome,
};

/// kuaidi100's production host.
pub const DEFAULT_BASE_URL: &str = "https://poll.kuaidi100.com";

/// The plugin's own carrier code (kuaidi100 is routed to by configuration).
pub const CODE: &str = "kuaidi100";

const QUERY_STEP: &str = "query";

/// The plugin: credentials and endpoint.
pub struct Kuaidi100 {
    base_url: String,
    customer: String,
    key: String,
}

/// The success shape of `poll/query.do`.
#[derive(Debug, Deserialize)]
struct QueryReply {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    state: Option<Value>,
    #[serde(default)]
    data: Vec<TraceItem>,
}

#[derive(Debug, Deserialize)]
struct TraceItem {
    #[serde(default)]
    time: String,
    #[serde(default)]
    ftime: String,
    #[serde(default)]
    context: String,
    #[serde(default, rename = "statusCode")]
    status_code: Option<Value>,
    #[serde(default, rename = "areaName")]
    area_name: Option<String>,
    #[serde(default)]
    location: Option<String>,
}

/// How a failure `returnCode` is handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReturnClass {
    /// The whole query failed.
    Query(PluginError),
    /// Only this waybill failed (the query itself was fine).
    Waybill(PluginError),
}

/// Classifies a failure `returnCode` with kuaidi100's `message` (already redacted of
/// secrets).
///
/// ```
/// use waybill_carrier_kuaidi100::{classify_return_code, ReturnClass};
/// assert!(matches!(classify_return_code("500", "查询无结果"),
///     ReturnClass::Waybill(e) if e.kind() == "not_found"));
/// assert!(matches!(classify_return_code("503", "验证签名失败"),
///     ReturnClass::Query(e) if e.kind() == "unauthorized"));
/// ```
pub fn classify_return_code(code: &str, message: &str) -> ReturnClass {
    let detail = |what: &str| format!("kuaidi100 returnCode {code} ({what}): {message}");
    match code {
        "500" => ReturnClass::Waybill(PluginError::NotFound {
            message: detail("no result yet"),
        }),
        "400" => ReturnClass::Waybill(PluginError::InvalidInput {
            message: detail("incomplete data or unknown company"),
        }),
        "408" => ReturnClass::Waybill(PluginError::InvalidInput {
            message: detail("phone check failed: give the phone on the waybill"),
        }),
        "503" => ReturnClass::Query(PluginError::Unauthorized {
            message: detail("signature refused: check `customer` and `key`"),
        }),
        "601" => ReturnClass::Query(PluginError::Unauthorized {
            message: detail("key expired or no quota left"),
        }),
        "501" | "502" => ReturnClass::Query(PluginError::Transient {
            message: detail("server error or busy"),
        }),
        _ => ReturnClass::Query(PluginError::bad_response(detail("undocumented code"))),
    }
}

/// The state of a kuaidi100 code given as a JSON string or number (`"304"`, `3`).
///
/// ```
/// use waybill_carrier_kuaidi100::state_of_code;
/// use waybill_sdk::State;
/// assert_eq!(state_of_code(&serde_json::json!("304")), Some(State::DeliveredFromLocker));
/// assert_eq!(state_of_code(&serde_json::json!(5)), Some(State::OutForDelivery));
/// assert_eq!(state_of_code(&serde_json::json!("9")), None);
/// ```
pub fn state_of_code(code: &Value) -> Option<State> {
    code_text(code)
        .and_then(|c| c.parse::<u16>().ok())
        .and_then(State::from_kuaidi100)
}

fn code_text(code: &Value) -> Option<String> {
    match code {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl Kuaidi100 {
    /// The exact `param` string for a waybill (and the sign is computed over it).
    pub fn param(waybill: &QueryWaybill) -> Result<String, PluginError> {
        let com = waybill.company.trim().to_ascii_lowercase();
        if com.is_empty() || com == CODE {
            return Err(PluginError::InvalidInput {
                message: format!(
                    "waybill {}: kuaidi100 needs the waybill's own company code (e.g. `yuantong`), got {:?}",
                    waybill.number, waybill.company
                ),
            });
        }
        let mut param = serde_json::Map::new();
        param.insert("com".into(), com.into());
        param.insert("num".into(), waybill.number.clone().into());
        if let Some(phone) = waybill.phone.as_deref().filter(|p| !p.trim().is_empty()) {
            param.insert("phone".into(), phone.trim().into());
        }
        param.insert("resultv2".into(), "4".into());
        param.insert("show".into(), "0".into());
        param.insert("order".into(), "desc".into());
        Ok(Value::Object(param).to_string())
    }

    fn after_query(&self, number: &str, response: &HttpResponse) -> Step {
        if let Some(e) = response.status_error() {
            return Step::Failed(e);
        }
        let value: Value = match response.json() {
            Ok(v) => v,
            Err(e) => return Step::Failed(e),
        };
        if let Some(code) = value.get("returnCode").and_then(code_text) {
            if code != "200" {
                let message = value
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let message = redact(message, &[&self.key, &self.customer]);
                return match classify_return_code(&code, &message) {
                    ReturnClass::Query(e) => Step::Failed(e),
                    ReturnClass::Waybill(e) => Step::Done(vec![WaybillOutcome::error(number, e)]),
                };
            }
        }
        let reply: QueryReply = match serde_json::from_value(value) {
            Ok(r) => r,
            Err(e) => {
                return Step::Failed(PluginError::bad_response(format!(
                    "kuaidi100 reply has an unexpected shape: {e}"
                )))
            }
        };
        if reply.status.as_deref() != Some("200") {
            return Step::Failed(PluginError::bad_response(format!(
                "kuaidi100 reply without status 200 (status {:?}, message {:?})",
                reply.status,
                reply
                    .message
                    .as_deref()
                    .map(|m| redact(m, &[&self.key, &self.customer]))
            )));
        }
        Step::Done(vec![outcome(number, &reply)])
    }
}

fn outcome(number: &str, reply: &QueryReply) -> WaybillOutcome {
    if reply.data.is_empty() {
        return WaybillOutcome::error(
            number,
            PluginError::NotFound {
                message: "kuaidi100 has no trace for this number yet".into(),
            },
        );
    }
    let top = reply.state.as_ref().and_then(state_of_code);
    let events = reply
        .data
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let code = item.status_code.as_ref().and_then(code_text);
            let mut state = item.status_code.as_ref().and_then(state_of_code);
            // Data is newest first (order=desc); the waybill's state describes that line.
            if i == 0 && state.is_none() {
                state = top;
            }
            let time = if item.time.trim().is_empty() {
                item.ftime.clone()
            } else {
                item.time.clone()
            };
            let location = item
                .area_name
                .as_deref()
                .or(item.location.as_deref())
                .filter(|l| !l.trim().is_empty())
                .map(str::to_owned);
            RawEvent {
                time,
                offset_minutes: None, // Beijing time, no offset on the wire.
                text: item.context.clone(),
                location,
                raw_code: code,
                state,
            }
        })
        .collect();
    WaybillOutcome::events(number, events)
}

impl CarrierPlugin for Kuaidi100 {
    fn manifest() -> Manifest {
        Manifest {
            codes: vec![CODE.into()],
            name_zh: "快递100".into(),
            name_en: "kuaidi100 (upstream aggregator)".into(),
            // An aggregator has no number shape of its own: the guesser picks the company.
            number_rules: vec![],
            capabilities: Capabilities {
                max_batch: 1,
                // SF, SF Freight, 丰网 and ZTO need it; the others ignore it.
                needs_phone: true,
                // The only published figure is "1 单/秒" for end-user clicks.
                rate_limit_per_sec: Some(1.0),
            },
            config_keys: vec![
                ConfigKey {
                    required: true,
                    ..ConfigKey::optional("customer", "kuaidi100 customer id (授权码 customer)")
                },
                ConfigKey::secret("key", "kuaidi100 authorisation key (授权key)"),
                ConfigKey::optional("base_url", format!("API host (default {DEFAULT_BASE_URL})")),
            ],
            plugin_version: env!("CARGO_PKG_VERSION").into(),
            // Serves every company kuaidi100 knows, named by each waybill.
            aggregator: true,
        }
    }

    fn new(config: &Config) -> Result<Self, PluginError> {
        let base_url = config.base_url("base_url", DEFAULT_BASE_URL)?;
        Ok(Kuaidi100 {
            base_url,
            customer: config.require("customer")?.trim().to_owned(),
            key: config.require("key")?.trim().to_owned(),
        })
    }

    fn start(&self, query: &Query) -> Step {
        let waybill = match query.waybills.as_slice() {
            [] => return Step::Done(vec![]),
            [one] => one,
            many => {
                return Step::Failed(PluginError::InvalidInput {
                    message: format!(
                        "{} numbers in one query; kuaidi100 takes one per call",
                        many.len()
                    ),
                })
            }
        };
        let param = match Self::param(waybill) {
            Ok(p) => p,
            Err(e) => return Step::Failed(e),
        };
        let sign = kuaidi100_query_sign(&param, &self.key, &self.customer);
        Step::Send(
            HttpRequest::post(format!("{}/poll/query.do", self.base_url))
                .header("Accept", "application/json")
                .form([
                    ("customer", self.customer.as_str()),
                    ("sign", sign.as_str()),
                    ("param", param.as_str()),
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

waybill_sdk::export_carrier!(Kuaidi100);

#[cfg(test)]
mod tests {
    use super::*;
    use waybill_sdk::{InProcess, StepMachine};

    const KEY: &str = "kEy-9f8e7d6c5b4a";
    const CUSTOMER: &str = "CUST0001";

    fn machine() -> InProcess<Kuaidi100> {
        InProcess::new(&Config::from_pairs([
            ("customer", CUSTOMER),
            ("key", KEY),
            ("base_url", "http://k100.test/"),
        ]))
        .unwrap()
    }

    fn resume(body: &[u8]) -> Step {
        machine().resume(
            "query:YT7300000000101",
            &HttpResponse::new(200, body.to_vec()),
        )
    }

    fn form_value<'a>(body: &'a str, name: &str) -> Option<&'a str> {
        body.split('&')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
    }

    fn percent_decode(s: &str) -> String {
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

    #[test]
    fn start_posts_a_form_signed_over_the_exact_param_sent() {
        let q = Query::new(vec![
            QueryWaybill::new("YuanTong", "YT7300000000101").with_phone("13800001234")
        ]);
        let Step::Send(req) = machine().start(&q) else {
            panic!("expected a request")
        };
        assert_eq!(req.method, "POST");
        assert_eq!(req.url, "http://k100.test/poll/query.do");
        let body = String::from_utf8(req.body.clone()).unwrap();
        let param = percent_decode(form_value(&body, "param").unwrap());
        let v: Value = serde_json::from_str(&param).unwrap();
        assert_eq!(v["com"], "yuantong");
        assert_eq!(v["num"], "YT7300000000101");
        assert_eq!(v["phone"], "13800001234");
        assert_eq!(v["resultv2"], "4");
        assert_eq!(form_value(&body, "customer"), Some(CUSTOMER));
        assert_eq!(
            form_value(&body, "sign"),
            Some(kuaidi100_query_sign(&param, KEY, CUSTOMER).as_str())
        );
        assert!(!body.contains(KEY), "the key is only inside the sign");
        assert_eq!(req.state, "query:YT7300000000101");
    }

    #[test]
    fn the_plugins_own_code_is_not_a_company() {
        let Step::Failed(e) = machine().start(&Query::single("kuaidi100", "YT1")) else {
            panic!("expected a failure")
        };
        assert_eq!(e.kind(), "invalid_input");
    }

    #[test]
    fn more_than_one_number_is_refused() {
        let q = Query::new(vec![
            QueryWaybill::new("yuantong", "YT1"),
            QueryWaybill::new("yuantong", "YT2"),
        ]);
        assert!(matches!(
            machine().start(&q),
            Step::Failed(PluginError::InvalidInput { .. })
        ));
    }

    #[test]
    fn advanced_status_codes_map_through_the_kuaidi100_dialect() {
        let Step::Done(out) = resume(include_bytes!("../fixtures/in_transit.json")) else {
            panic!("expected Done")
        };
        let events = out[0].result.as_ref().unwrap();
        let states: Vec<_> = events.iter().map(|e| e.state).collect();
        assert_eq!(
            states,
            vec![
                Some(State::OutForDelivery),
                Some(State::LineHaul),
                Some(State::ArrivedDestinationCity),
                Some(State::Collected),
                None, // no statusCode: core's normalizer reads the text
            ]
        );
        assert_eq!(events[0].time, "2025-03-05 08:41:07");
        assert_eq!(events[0].offset_minutes, None);
        assert_eq!(events[0].location.as_deref(), Some("浙江,杭州市,西湖区"));
        assert_eq!(events[1].raw_code.as_deref(), Some("1002"));
    }

    #[test]
    fn a_delivered_waybill_reads_as_picked_up_from_a_station() {
        let Step::Done(out) = resume(include_bytes!("../fixtures/delivered.json")) else {
            panic!("expected Done")
        };
        let events = out[0].result.as_ref().unwrap();
        assert_eq!(events[0].state, Some(State::DeliveredFromLocker));
        assert_eq!(events[1].state, Some(State::InLocker));
    }

    #[test]
    fn the_top_level_state_fills_the_newest_line_without_a_code() {
        let body = r#"{"message":"ok","status":"200","state":"3","ischeck":"1","data":[
            {"time":"2025-03-06 18:12:31","context":"已签收"},
            {"time":"2025-03-06 08:00:00","context":"派件中"}]}"#;
        let Step::Done(out) = resume(body.as_bytes()) else {
            panic!()
        };
        let events = out[0].result.as_ref().unwrap();
        assert_eq!(events[0].state, Some(State::Delivered));
        assert_eq!(events[1].state, None);
    }

    #[test]
    fn return_codes_are_classified() {
        let cases: [(&[u8], &str, bool); 5] = [
            (
                include_bytes!("../fixtures/not_found.json"),
                "not_found",
                true,
            ),
            (
                include_bytes!("../fixtures/bad_sign.json"),
                "unauthorized",
                false,
            ),
            (
                include_bytes!("../fixtures/quota_expired.json"),
                "unauthorized",
                false,
            ),
            (
                include_bytes!("../fixtures/phone_mismatch.json"),
                "invalid_input",
                true,
            ),
            (include_bytes!("../fixtures/busy.json"), "transient", false),
        ];
        for (body, kind, per_waybill) in cases {
            match resume(body) {
                Step::Done(out) if per_waybill => {
                    assert_eq!(out[0].number, "YT7300000000101");
                    assert_eq!(out[0].result.as_ref().unwrap_err().kind(), kind);
                }
                Step::Failed(e) if !per_waybill => assert_eq!(e.kind(), kind),
                other => panic!("{kind}: got {other:?}"),
            }
        }
        assert!(matches!(
            classify_return_code("400", "找不到对应公司"),
            ReturnClass::Waybill(PluginError::InvalidInput { .. })
        ));
        assert!(matches!(
            classify_return_code("501", "x"),
            ReturnClass::Query(PluginError::Transient { .. })
        ));
        assert!(matches!(
            classify_return_code("777", "x"),
            ReturnClass::Query(PluginError::BadResponse { .. })
        ));
    }

    #[test]
    fn an_unauthorized_error_never_carries_the_key_even_when_echoed() {
        let body = format!(
            r#"{{"result":false,"returnCode":"503","message":"sign mismatch for key {KEY}"}}"#
        );
        let Step::Failed(e) = resume(body.as_bytes()) else {
            panic!()
        };
        assert_eq!(e.kind(), "unauthorized");
        assert!(!e.to_string().contains(KEY), "{e}");
        assert!(!format!("{e:?}").contains(KEY));
    }

    #[test]
    fn http_429_is_rate_limited_with_retry_after() {
        let r = HttpResponse::new(
            429,
            include_bytes!("../fixtures/rate_limited.html").to_vec(),
        )
        .with_header("Retry-After", "30");
        assert_eq!(
            machine().resume("query:YT1", &r),
            Step::Failed(PluginError::RateLimited {
                retry_after_secs: Some(30)
            })
        );
    }

    #[test]
    fn a_truncated_body_is_a_bad_response() {
        let Step::Failed(e) = resume(include_bytes!("../fixtures/malformed.json")) else {
            panic!()
        };
        assert_eq!(e.kind(), "bad_response");
    }

    #[test]
    fn an_empty_trace_is_not_found() {
        let Step::Done(out) = resume(br#"{"message":"ok","status":"200","state":"0","data":[]}"#)
        else {
            panic!()
        };
        assert_eq!(out[0].result.as_ref().unwrap_err().kind(), "not_found");
    }

    #[test]
    fn missing_credentials_are_a_config_error_naming_the_key() {
        let err = InProcess::<Kuaidi100>::new(&Config::from_pairs([("customer", "C")]))
            .err()
            .unwrap();
        assert_eq!(err.kind(), "config");
        assert!(err.to_string().contains("`key`"));
    }
}
