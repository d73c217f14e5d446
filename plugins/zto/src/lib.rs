//! ZTO Express (中通快递): the ZOP (中通开放平台) waybill trace query.
//!
//! One `POST {base_url}/zto.merchant.waybill.track.query` per waybill, JSON body
//! `{"billCode":"<number>"}`, plus `"mobilePhone":"<last 4 digits>"` when the waybill has
//! a phone. Headers `x-appKey: <app_key>` and
//! `x-dataDigest: Base64(MD5_raw(body + app_secret))` over the exact body bytes (see
//! [`data_digest`]).
//!
//! The answer is `{"status","message","statusCode","result":[...]}`, one entry per scan,
//! oldest first: `scanDate` (`yyyy-MM-dd HH:mm:ss`, Beijing time without offset),
//! `scanType`, `desc`, `scanCity`, `scanProv`, `scanSite` (an object with `name`, or a
//! string), `preOrNextSite`, `dispOrRecMan`, `signMan`.
//!
//! # What is documented and what is assumed
//!
//! ZTO's public documentation of this interface is thin (grade C), so this plugin
//! implements the project's domain notes exactly:
//!
//! - Documented: the path, both hosts, the body fields, the two headers and the digest
//!   recipe, one number per request, the response fields above, oldest-first order,
//!   Beijing time without offset, and the `scanType` values 收件, 到件, 发件, 派件, 签收,
//!   第三方签收, 退件签收, 退件, 退回, 问题件, 疑难件, 到付.
//! - Assumed (lenient reading): `status` may be a boolean or the string `"true"`/`"false"`;
//!   `result` may be absent, `null` or empty (no trace yet: not found for the number);
//!   `scanSite` may be an object with `name` or a plain string; text fields may arrive
//!   as numbers. `preOrNextSite`, `dispOrRecMan` and `signMan` are not read (their
//!   content is repeated in `desc`, the line's text).
//! - Assumed (error classes): ZTO publishes no stable error codes, so a `status:false`
//!   answer is classified from its `message`/`statusCode`: frequency or rate wording →
//!   rate limited; digest/signature/appKey wording → unauthorized; "system busy" wording →
//!   transient; anything else → bad response. HTTP 429 → rate limited, 5xx → transient,
//!   401/403 → unauthorized (the SDK's HTTP classification).
//! - Assumed (states): which state each `scanType` stands for ([`scan_types`]); 到付
//!   (cash on delivery) and any `scanType` not in the table are left to the host's text
//!   normalizer. A signature after a return scan is the sender's: returned.
//! - Assumed (number shapes): those core's guesser already has: 14 digits starting 73–76
//!   or 78, and the legacy 12-digit series by their known prefixes.
//!
//! Strict where a mistake would change a state: `status` that is neither a boolean nor
//! its string, a `result` that is not a list of scans, or a scan without a readable
//! `scanDate` is a bad response, never a guess.

use base64::Engine as _;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use waybill_sdk::{
    redact, returned_signatures, Capabilities, CarrierPlugin, CodeTable, Config, ConfigKey,
    HttpRequest, HttpResponse, Manifest, NumberRule, PluginError, Query, RawEvent, State, Step,
    WaybillOutcome,
};

/// ZOP's production host.
pub const DEFAULT_BASE_URL: &str = "https://japi.zto.com";

/// ZOP's test host.
pub const TEST_BASE_URL: &str = "https://japi-test.zto.com";

/// The trace query's API name, appended to the host.
pub const API_PATH: &str = "zto.merchant.waybill.track.query";

const TRACK_STEP: &str = "track";

/// The plugin: credentials and endpoint.
pub struct Zto {
    base_url: String,
    app_key: String,
    app_secret: String,
}

/// The request body, in the field order it is signed in.
#[derive(Debug, Serialize)]
struct TrackBody<'a> {
    #[serde(rename = "billCode")]
    bill_code: &'a str,
    #[serde(rename = "mobilePhone", skip_serializing_if = "Option::is_none")]
    mobile_phone: Option<&'a str>,
}

#[derive(Debug, Deserialize)]
struct Envelope {
    #[serde(default)]
    status: Option<Value>,
    #[serde(default)]
    message: Option<Value>,
    #[serde(rename = "statusCode", default)]
    status_code: Option<Value>,
    #[serde(default)]
    result: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct Scan {
    #[serde(rename = "scanDate", default)]
    scan_date: Option<Value>,
    #[serde(rename = "scanType", default)]
    scan_type: Option<Value>,
    #[serde(default)]
    desc: Option<Value>,
    #[serde(rename = "scanCity", default)]
    scan_city: Option<Value>,
    #[serde(rename = "scanProv", default)]
    scan_prov: Option<Value>,
    #[serde(rename = "scanSite", default)]
    scan_site: Option<Value>,
}

/// ZOP's `x-dataDigest`: standard Base64 of the raw 16-byte MD5 of the body bytes
/// followed by the app secret.
///
/// ```
/// let d = waybill_carrier_zto::data_digest(br#"{"billCode":"73100000000017"}"#, "secret");
/// assert_eq!(d.len(), 24); // 16 bytes in Base64
/// ```
pub fn data_digest(body: &[u8], app_secret: &str) -> String {
    let mut h = Md5::new();
    h.update(body);
    h.update(app_secret.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// Where the scan types come from.
const CODE_SOURCE: &str =
    "ZTO ZOP zto.merchant.waybill.track.query, scanType values (project domain notes, grade C)";

/// ZTO's `scanType` values and the state each stands for. 到付 (cash on delivery) has no
/// state of its own; neither has a value missing here: both go to the text normalizer.
pub fn scan_types() -> CodeTable {
    CodeTable::new("scanType", CODE_SOURCE)
        .code("收件", "收件 (collected)", Some(State::Collected))
        .code(
            "到件",
            "到件 (arrived at a site)",
            Some(State::AtTransferCentre),
        )
        .code("发件", "发件 (departed a site)", Some(State::InTransit))
        .code(
            "派件",
            "派件 (out for delivery)",
            Some(State::OutForDelivery),
        )
        .code("签收", "签收 (signed for)", Some(State::Delivered))
        .code(
            "第三方签收",
            "第三方签收 (signed for by a third party: station, locker or proxy)",
            Some(State::DeliveredByProxy),
        )
        .code(
            "退件签收",
            "退件签收 (returned parcel signed for by the sender)",
            Some(State::Returned),
        )
        .code("退件", "退件 (return in progress)", Some(State::Returning))
        .code("退回", "退回 (return in progress)", Some(State::Returning))
        .code("问题件", "问题件 (problem parcel)", Some(State::Problem))
        .code("疑难件", "疑难件 (problem parcel)", Some(State::Problem))
        .code("到付", "到付 (cash on delivery; no state of its own)", None)
}

/// The state a `scanType` stands for; `None` leaves the line to the text normalizer.
///
/// ```
/// use waybill_carrier_zto::state_of;
/// use waybill_sdk::State;
/// assert_eq!(state_of("第三方签收"), Some(State::DeliveredByProxy));
/// assert_eq!(state_of("到付"), None);
/// assert_eq!(state_of("未知"), None);
/// ```
pub fn state_of(scan_type: &str) -> Option<State> {
    scan_types().state_of(scan_type.trim())
}

/// `true`/`false` as a JSON boolean or as the strings `"true"`/`"false"` (any case);
/// anything else (missing included) is `None`: `status` decides whether `result` is read.
fn lenient_bool(v: Option<&Value>) -> Option<bool> {
    match v? {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// A text field that may arrive as a string or a number; `null` and empty are `None`.
fn text_of(v: Option<&Value>) -> Option<String> {
    let s = match v? {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    (!s.is_empty()).then_some(s)
}

/// A site given as `{"name": ...}` or as a plain string.
fn site_name(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Object(o) => text_of(o.get("name")),
        other => text_of(Some(other)),
    }
}

/// Whether `t` is `yyyy-MM-dd HH:mm[:ss]`, the civil shape the host reads.
fn is_civil_time(t: &str) -> bool {
    let b = t.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    let base = b.len() >= 16
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b' '
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16);
    base && (b.len() == 16 || (b.len() == 19 && b[16] == b':' && digits(17..19)))
}

impl Zto {
    /// Builds the trace request for one waybill: the pure part of
    /// [`CarrierPlugin::start`].
    pub fn track_request(&self, query: &Query) -> Step {
        let waybill = match query.waybills.as_slice() {
            [] => return Step::Done(vec![]),
            [w] => w,
            many => {
                return Step::Failed(PluginError::InvalidInput {
                    message: format!("{} numbers in one query; ZTO takes one", many.len()),
                })
            }
        };
        let body = TrackBody {
            bill_code: &waybill.number,
            mobile_phone: waybill.phone_last4().filter(|p| !p.is_empty()),
        };
        let body = match serde_json::to_vec(&body) {
            Ok(b) => b,
            Err(e) => return Step::Failed(PluginError::internal(e.to_string())),
        };
        let digest = data_digest(&body, &self.app_secret);
        Step::Send(
            HttpRequest::post(format!("{}/{API_PATH}", self.base_url))
                .header("Accept", "application/json")
                .header("x-appKey", self.app_key.as_str())
                .header("x-dataDigest", digest)
                .body("application/json; charset=utf-8", body)
                .state(format!("{TRACK_STEP}:{}", waybill.number)),
        )
    }

    fn after_track(&self, number: &str, response: &HttpResponse) -> Step {
        let secrets = [self.app_secret.as_str()];
        if let Some(e) = response.status_error_with(|| {
            let text: String = response.text().chars().take(200).collect();
            format!("ZTO HTTP {}: {}", response.status, redact(&text, &secrets))
        }) {
            return Step::Failed(e);
        }
        let envelope: Envelope = match response.json() {
            Ok(v) => v,
            Err(e) => return Step::Failed(e),
        };
        let message = redact(
            &text_of(envelope.message.as_ref()).unwrap_or_default(),
            &secrets,
        );
        let status_code = text_of(envelope.status_code.as_ref()).unwrap_or_default();
        match lenient_bool(envelope.status.as_ref()) {
            Some(true) => {}
            Some(false) => {
                return Step::Failed(classify_failure(
                    &status_code,
                    &message,
                    response.retry_after_secs(),
                ))
            }
            None => {
                return Step::Failed(PluginError::bad_response(
                    "ZTO `status` is missing or neither true nor false",
                ))
            }
        }
        let scans: Vec<Scan> = match envelope.result {
            None | Some(Value::Null) => Vec::new(),
            Some(v @ Value::Array(_)) => match serde_json::from_value(v) {
                Ok(s) => s,
                Err(e) => {
                    return Step::Failed(PluginError::bad_response(format!(
                        "ZTO `result` has an unexpected shape: {e}"
                    )))
                }
            },
            Some(_) => {
                return Step::Failed(PluginError::bad_response(
                    "ZTO `result` is not a list of scans",
                ))
            }
        };
        if scans.is_empty() {
            return Step::Done(vec![WaybillOutcome::error(
                number,
                PluginError::NotFound {
                    message: "ZTO has no trace for this number (unknown, not yet scanned, or the phone digits do not match)".into(),
                },
            )]);
        }
        let mut events = Vec::with_capacity(scans.len());
        for (i, scan) in scans.iter().enumerate() {
            match event(scan) {
                Some(e) => events.push(e),
                None => {
                    return Step::Failed(PluginError::bad_response(format!(
                        "ZTO scan {i} has no readable `scanDate` (yyyy-MM-dd HH:mm:ss)"
                    )))
                }
            }
        }
        Step::Done(vec![WaybillOutcome::events(
            number,
            returned_signatures(events),
        )])
    }
}

/// A `status:false` answer, classified from its message and code (ZTO documents no
/// stable error codes; see the crate documentation).
fn classify_failure(code: &str, message: &str, retry_after_secs: Option<u64>) -> PluginError {
    let said = format!("{code} {message}");
    let lower = said.to_ascii_lowercase();
    let detail = format!("ZTO statusCode {code:?}: {message}");
    if ["频率", "频繁", "限流", "超限", "次数"]
        .iter()
        .any(|w| said.contains(w))
        || ["rate", "frequen", "too many", "limit"]
            .iter()
            .any(|w| lower.contains(w))
    {
        PluginError::RateLimited { retry_after_secs }
    } else if ["签名", "摘要", "验签", "密钥", "授权", "权限"]
        .iter()
        .any(|w| said.contains(w))
        || ["digest", "sign", "appkey", "app_key", "secret", "auth"]
            .iter()
            .any(|w| lower.contains(w))
    {
        PluginError::Unauthorized {
            message: format!("{detail} (check `app_key` and `app_secret`)"),
        }
    } else if ["繁忙", "系统异常", "系统错误", "超时"]
        .iter()
        .any(|w| said.contains(w))
    {
        PluginError::Transient { message: detail }
    } else {
        PluginError::bad_response(detail)
    }
}

fn event(scan: &Scan) -> Option<RawEvent> {
    let time = text_of(scan.scan_date.as_ref()).filter(|t| is_civil_time(t))?;
    let scan_type = text_of(scan.scan_type.as_ref()).unwrap_or_default();
    let site = site_name(scan.scan_site.as_ref());
    let text = text_of(scan.desc.as_ref())
        .or_else(|| site.clone().map(|s| format!("【{s}】{scan_type}")))
        .unwrap_or_else(|| scan_type.clone());
    let prov = text_of(scan.scan_prov.as_ref()).unwrap_or_default();
    let city = text_of(scan.scan_city.as_ref()).unwrap_or_default();
    let area = if city.starts_with(&prov) {
        city
    } else {
        format!("{prov}{city}")
    };
    // Beijing time, no offset on the wire: `offset_minutes: None` is +08:00.
    let mut e = RawEvent::new(time, text).with_codes([("scanType", scan_type.as_str())]);
    e.location = if area.is_empty() { site } else { Some(area) };
    e.state = state_of(&scan_type);
    Some(e)
}

impl CarrierPlugin for Zto {
    fn manifest() -> Manifest {
        Manifest {
            codes: vec!["zhongtong".into(), "zto".into()],
            name_zh: "中通快递".into(),
            name_en: "ZTO Express".into(),
            number_rules: vec![
                NumberRule::new("zhongtong_zto14", r"^7[3-68]\d{12}$"),
                // The legacy 12-digit series by their known prefixes, as core's catalog has
                // them: "any 12 digits starting 3, 5 or 7" would claim other carriers' numbers.
                NumberRule {
                    legacy: true,
                    ..NumberRule::new(
                        "zhongtong_zto12",
                        r"^(?:(?:618|680|778|768)\d{9}|(?:2008|2010|8050|7518)\d{8})$",
                    )
                },
            ],
            capabilities: Capabilities {
                max_batch: 1,
                // Only waybills outside the merchant's own account need the phone digits.
                needs_phone: false,
                rate_limit_per_sec: None,
            },
            config_keys: vec![
                ConfigKey {
                    secret: false,
                    ..ConfigKey::secret("app_key", "appKey (x-appKey) from the ZOP 中通开放平台")
                },
                ConfigKey::secret("app_secret", "appSecret of the app key, signs x-dataDigest"),
                ConfigKey::optional(
                    "base_url",
                    format!("ZOP host (default {DEFAULT_BASE_URL}; test {TEST_BASE_URL})"),
                ),
            ],
            plugin_version: env!("CARGO_PKG_VERSION").into(),
            code_tables: vec![scan_types()],
            ..Default::default()
        }
    }

    fn new(config: &Config) -> Result<Self, PluginError> {
        // Accept the full API URL as well as the bare host.
        let base_url = config
            .base_url("base_url", DEFAULT_BASE_URL)?
            .trim_end_matches(API_PATH)
            .trim_end_matches('/')
            .to_owned();
        Ok(Zto {
            base_url,
            app_key: config.require("app_key")?.trim().to_owned(),
            app_secret: config.require("app_secret")?.trim().to_owned(),
        })
    }

    fn start(&self, query: &Query) -> Step {
        self.track_request(query)
    }

    fn resume(&self, state: &str, response: &HttpResponse) -> Step {
        match state.split_once(':') {
            Some((TRACK_STEP, number)) if !number.is_empty() => self.after_track(number, response),
            _ => Step::Failed(PluginError::internal(format!("unknown step {state:?}"))),
        }
    }
}

waybill_sdk::export_carrier!(Zto);

#[cfg(test)]
mod tests {
    use super::*;
    use waybill_sdk::{InProcess, QueryWaybill, StepMachine};

    const SECRET: &str = "zto-secret-0123456789";
    const NUMBER: &str = "73100000000017";
    const STATE: &str = "track:73100000000017";

    fn plugin() -> Zto {
        Zto::new(&Config::from_pairs([
            ("app_key", "APPKEY01"),
            ("app_secret", SECRET),
            ("base_url", "http://zto.test/"),
        ]))
        .unwrap()
    }

    fn resume(body: &[u8]) -> Step {
        plugin().resume(STATE, &HttpResponse::new(200, body.to_vec()))
    }

    fn events(body: &[u8]) -> Vec<RawEvent> {
        let Step::Done(mut out) = resume(body) else {
            panic!("expected Done")
        };
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].number, NUMBER);
        out.remove(0).result.unwrap()
    }

    fn failure(body: &[u8]) -> PluginError {
        match resume(body) {
            Step::Failed(e) => e,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    fn header<'a>(req: &'a HttpRequest, name: &str) -> &'a str {
        &req.headers.iter().find(|(n, _)| n == name).unwrap().1
    }

    #[test]
    fn the_request_is_signed_over_the_exact_body_and_the_secret() {
        let q = Query::new(vec![
            QueryWaybill::new("zhongtong", NUMBER).with_phone("13800005678")
        ]);
        let Step::Send(req) = plugin().start(&q) else {
            panic!("expected a request")
        };
        assert_eq!(req.method, "POST");
        assert_eq!(req.url, "http://zto.test/zto.merchant.waybill.track.query");
        assert_eq!(
            req.body,
            br#"{"billCode":"73100000000017","mobilePhone":"5678"}"#
        );
        assert_eq!(header(&req, "x-appKey"), "APPKEY01");
        // MD5 + Base64 computed outside this crate (Python hashlib/base64).
        assert_eq!(header(&req, "x-dataDigest"), "TndwzKDw9m+xj5upmrWjAQ==");
        assert!(header(&req, "Content-Type").starts_with("application/json"));
        assert_eq!(req.state, STATE);
        assert!(!req.state.contains(SECRET));
        assert!(!String::from_utf8_lossy(&req.body).contains(SECRET));
    }

    #[test]
    fn without_a_phone_the_body_has_only_the_bill_code() {
        let Step::Send(req) = plugin().start(&Query::single("zhongtong", NUMBER)) else {
            panic!()
        };
        assert_eq!(req.body, br#"{"billCode":"73100000000017"}"#);
        assert_eq!(header(&req, "x-dataDigest"), "idG6J5YM1c62h2qbAJBaSQ==");
        assert_eq!(header(&req, "x-dataDigest"), data_digest(&req.body, SECRET));
    }

    #[test]
    fn one_number_per_request_and_none_is_done() {
        let q = Query::new(vec![
            QueryWaybill::new("zhongtong", NUMBER),
            QueryWaybill::new("zhongtong", "73100000000025"),
        ]);
        assert_eq!(
            plugin().start(&q),
            Step::Failed(PluginError::InvalidInput {
                message: "2 numbers in one query; ZTO takes one".into()
            })
        );
        assert_eq!(plugin().start(&Query::new(vec![])), Step::Done(vec![]));
    }

    #[test]
    fn the_default_host_is_production_and_the_full_url_is_accepted() {
        let m = InProcess::<Zto>::new(&Config::from_pairs([("app_key", "K"), ("app_secret", "S")]))
            .unwrap();
        let Step::Send(req) = m.start(&Query::single("zhongtong", NUMBER)) else {
            panic!()
        };
        assert_eq!(
            req.url,
            "https://japi.zto.com/zto.merchant.waybill.track.query"
        );
        let full = Zto::new(&Config::from_pairs([
            ("app_key", "K"),
            ("app_secret", "S"),
            (
                "base_url",
                "https://japi-test.zto.com/zto.merchant.waybill.track.query",
            ),
        ]))
        .unwrap();
        assert_eq!(full.base_url, TEST_BASE_URL);
        let missing = Zto::new(&Config::from_pairs([("app_key", "K")]));
        assert_eq!(missing.err().unwrap().kind(), "config");
    }

    #[test]
    fn every_scan_type_maps_to_its_state_in_scan_order() {
        use State::*;
        let ev = events(include_bytes!("../fixtures/every_type.json"));
        let got: Vec<(&str, Option<State>)> = ev
            .iter()
            .map(|e| (e.raw_code.as_deref().unwrap(), e.state))
            .collect();
        assert_eq!(
            got,
            [
                ("scanType=收件", Some(Collected)),
                ("scanType=发件", Some(InTransit)),
                ("scanType=到件", Some(AtTransferCentre)),
                ("scanType=到付", None),
                ("scanType=派件", Some(OutForDelivery)),
                ("scanType=问题件", Some(Problem)),
                ("scanType=疑难件", Some(Problem)),
                ("scanType=第三方签收", Some(DeliveredByProxy)),
                ("scanType=签收", Some(Delivered)),
            ]
        );
        let ev = events(include_bytes!("../fixtures/returned.json"));
        let got: Vec<Option<State>> = ev.iter().map(|e| e.state).collect();
        assert_eq!(
            got,
            [
                Some(Collected),
                Some(Returning),
                Some(Returning),
                Some(Returned)
            ]
        );
    }

    #[test]
    fn the_table_covers_every_documented_scan_type() {
        for t in [
            "收件",
            "到件",
            "发件",
            "派件",
            "签收",
            "第三方签收",
            "退件签收",
            "退件",
            "退回",
            "问题件",
            "疑难件",
            "到付",
        ] {
            assert!(scan_types().documents(t), "{t}");
        }
        assert_eq!(state_of(" 签收 "), Some(State::Delivered));
    }

    #[test]
    fn unknown_scan_types_go_to_the_text_normalizer_even_if_the_text_says_signed() {
        let body = r#"{"status":true,"result":[{"scanDate":"2025-03-04 18:00:00","scanType":"自定义","desc":"已签收"}]}"#;
        let ev = events(body.as_bytes());
        assert_eq!(ev[0].state, None);
        assert_eq!(ev[0].raw_code.as_deref(), Some("scanType=自定义"));
        assert_eq!(ev[0].text, "已签收");
        // No scanType at all: no code, no state.
        let body =
            r#"{"status":true,"result":[{"scanDate":"2025-03-04 18:00:00","desc":"已签收"}]}"#;
        let ev = events(body.as_bytes());
        assert_eq!((ev[0].state, ev[0].raw_code.as_deref()), (None, None));
    }

    #[test]
    fn a_signature_after_a_return_is_the_senders() {
        let ev = events(include_bytes!("../fixtures/signed_after_return.json"));
        assert_eq!(ev[0].state, Some(State::Returning));
        assert_eq!(ev[1].state, Some(State::Returned));
        assert_eq!(ev[1].location.as_deref(), Some("杭州西湖"));
    }

    #[test]
    fn times_without_offset_are_beijing_time() {
        let ev = events(include_bytes!("../fixtures/every_type.json"));
        assert_eq!(ev[0].time, "2025-03-03 18:02:11");
        assert!(ev.iter().all(|e| e.offset_minutes.is_none()));
        assert_eq!(ev[0].location.as_deref(), Some("浙江省杭州市"));
        // 上海市 as both province and city is named once.
        assert_eq!(ev[4].location.as_deref(), Some("上海市"));
        assert_eq!(ev[0].text, "【杭州西湖】的小王已揽收");
    }

    #[test]
    fn scan_site_is_read_as_an_object_or_a_string() {
        let body = r#"{"status":true,"result":[
            {"scanDate":"2025-03-03 18:02:11","scanType":"收件","scanSite":{"name":"杭州西湖","code":57101}},
            {"scanDate":"2025-03-03 20:02:11","scanType":"发件","scanSite":"杭州中转部"},
            {"scanDate":"2025-03-03 21:02:11","scanType":"到件","scanSite":12345}]}"#;
        let ev = events(body.as_bytes());
        let sites: Vec<_> = ev.iter().map(|e| e.location.as_deref()).collect();
        assert_eq!(sites, [Some("杭州西湖"), Some("杭州中转部"), Some("12345")]);
        // Without desc, the text is built from the site and the scan type.
        assert_eq!(ev[0].text, "【杭州西湖】收件");
    }

    #[test]
    fn status_may_be_a_boolean_or_its_string_and_nothing_else() {
        let body = |status: &str| {
            format!(
                r#"{{"status":{status},"result":[{{"scanDate":"2025-03-03 18:02","scanType":"收件"}}]}}"#
            )
        };
        for ok in ["true", r#""true""#, r#"" TRUE ""#] {
            assert!(matches!(resume(body(ok).as_bytes()), Step::Done(_)), "{ok}");
        }
        for bad in [r#""yes""#, "1", "null"] {
            assert_eq!(
                failure(body(bad).as_bytes()).kind(),
                "bad_response",
                "{bad}"
            );
        }
        assert_eq!(failure(br#"{"result":[]}"#).kind(), "bad_response");
        // "false" with no recognisable message: a bad response, not a guess.
        assert_eq!(
            failure(br#"{"status":"false","message":"unexpected"}"#).kind(),
            "bad_response"
        );
    }

    #[test]
    fn an_empty_absent_or_null_result_is_not_found() {
        for body in [
            &include_bytes!("../fixtures/not_found.json")[..],
            &include_bytes!("../fixtures/no_result.json")[..],
            br#"{"status":true,"result":null}"#,
        ] {
            let Step::Done(out) = resume(body) else {
                panic!()
            };
            assert_eq!(out[0].number, NUMBER);
            assert_eq!(out[0].result.as_ref().unwrap_err().kind(), "not_found");
        }
    }

    #[test]
    fn failures_are_classified() {
        let cases: [(&[u8], &str); 3] = [
            (
                include_bytes!("../fixtures/bad_digest.json"),
                "unauthorized",
            ),
            (
                include_bytes!("../fixtures/rate_limited.json"),
                "rate_limited",
            ),
            (include_bytes!("../fixtures/busy.json"), "transient"),
        ];
        for (body, kind) in cases {
            assert_eq!(failure(body).kind(), kind);
        }
        for msg in ["appKey不存在", "签名错误", "invalid dataDigest"] {
            let body = format!(r#"{{"status":false,"message":"{msg}"}}"#);
            assert_eq!(failure(body.as_bytes()).kind(), "unauthorized", "{msg}");
        }
        let body = r#"{"status":false,"message":"访问过于频繁"}"#;
        assert_eq!(failure(body.as_bytes()).kind(), "rate_limited");
    }

    #[test]
    fn http_errors_are_classified() {
        let r = HttpResponse::new(429, "").with_header("Retry-After", "2");
        assert_eq!(
            plugin().resume(STATE, &r),
            Step::Failed(PluginError::RateLimited {
                retry_after_secs: Some(2)
            })
        );
        for status in [500, 502, 503] {
            let Step::Failed(e) = plugin().resume(STATE, &HttpResponse::new(status, "busy")) else {
                panic!()
            };
            assert_eq!(e.kind(), "transient", "{status}");
        }
        let Step::Failed(e) = plugin().resume(STATE, &HttpResponse::new(401, "")) else {
            panic!()
        };
        assert_eq!(e.kind(), "unauthorized");
    }

    #[test]
    fn errors_never_carry_the_secret() {
        let body = format!(r#"{{"status":false,"message":"digest with {SECRET} wrong"}}"#);
        let e = failure(body.as_bytes());
        assert_eq!(e.kind(), "unauthorized");
        assert!(!e.to_string().contains(SECRET), "{e}");
        let r = HttpResponse::new(503, format!("echo {SECRET}"));
        let Step::Failed(e) = plugin().resume(STATE, &r) else {
            panic!()
        };
        assert!(!e.to_string().contains(SECRET), "{e}");
    }

    #[test]
    fn malformed_or_misshapen_bodies_are_bad_responses() {
        for body in [
            &include_bytes!("../fixtures/malformed.json")[..],
            &include_bytes!("../fixtures/wrong_shape.json")[..],
            b"not json",
            b"[]",
            br#"{"status":true,"result":"none"}"#,
            br#"{"status":true,"result":[1,2]}"#,
            br#"{"status":true,"result":[{"scanType":"x"}]}"#,
            br#"{"status":true,"result":[{"scanDate":"yesterday","scanType":"x"}]}"#,
            br#"{"status":true,"result":[{"scanDate":"2025-03-03 18:02:1","scanType":"x"}]}"#,
        ] {
            assert_eq!(
                failure(body).kind(),
                "bad_response",
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn an_unknown_state_string_is_an_internal_error() {
        let r = HttpResponse::new(200, "{}");
        for state in ["", "track:", "other:1"] {
            let Step::Failed(e) = plugin().resume(state, &r) else {
                panic!()
            };
            assert_eq!(e.kind(), "internal");
        }
    }

    #[test]
    fn the_manifest_is_valid_and_its_rules_fit_zto_numbers() {
        let m = Zto::manifest();
        m.validate().unwrap();
        assert_eq!(m.canonical_code(), Some("zhongtong"));
        let rules: Vec<regex::Regex> = m
            .number_rules
            .iter()
            .map(|r| regex::Regex::new(&r.regex).unwrap())
            .collect();
        let fits = |n: &str| rules.iter().any(|r| r.is_match(n));
        assert!(fits("73100000000017"));
        assert!(fits("75312345678901"));
        assert!(
            fits("778123456789") && fits("751812345678"),
            "legacy series"
        );
        assert!(!fits("531234567890"), "any 12 digits are not ZTO's");
        assert!(!fits("SF1400000000017"));
        assert!(!fits("83100000000017"));
    }
}
