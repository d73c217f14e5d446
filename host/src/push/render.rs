//! Renders the kuaidi100 push: a form body with `param` (JSON) and, when the subscription
//! has a salt, `sign` = upper-case MD5(param + salt).
//!
//! `lastResult` always carries the full trace, newest first. `resultv2` ≥ 1 adds a status
//! name and the area of each line; ≥ 4 puts the advanced state code in `lastResult.state`
//! and in each line's `statusCode`.

use serde::Serialize;
use waybill_core::model::Trace;
use waybill_core::state::State;

use crate::store::{MonitorStatus, NewPush, Subscription};

/// `Content-Type` of a kuaidi100 push.
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

/// The monitor fields of one push, besides the trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushHeader {
    /// `status`: polling, shutdown or abort.
    pub status: MonitorStatus,
    /// `message`, e.g. "3天查询无记录".
    pub message: String,
    /// `autoCheck=1`: the trace is from the company the daemon corrected to.
    pub auto_check: bool,
    /// `comOld`.
    pub com_old: String,
    /// `comNew`.
    pub com_new: String,
}

impl PushHeader {
    /// A plain push with this status and message, no company correction.
    pub fn new(status: MonitorStatus, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            auto_check: false,
            com_old: String::new(),
            com_new: String::new(),
        }
    }

    /// The header every push of a subscription carries once its company was corrected.
    pub fn for_subscription(sub: &Subscription, status: MonitorStatus, message: &str) -> Self {
        let mut h = Self::new(status, message);
        if let Some(c) = &sub.correction {
            h.auto_check = true;
            h.com_old = c.com_old.clone();
            h.com_new = c.com_new.clone();
        }
        h
    }
}

#[derive(Serialize)]
struct Param<'a> {
    status: &'static str,
    billstatus: &'static str,
    message: &'a str,
    #[serde(rename = "autoCheck")]
    auto_check: &'static str,
    #[serde(rename = "comOld")]
    com_old: &'a str,
    #[serde(rename = "comNew")]
    com_new: &'a str,
    #[serde(rename = "lastResult")]
    last_result: LastResult<'a>,
}

#[derive(Serialize)]
struct LastResult<'a> {
    message: &'static str,
    state: String,
    status: &'static str,
    condition: &'static str,
    ischeck: &'static str,
    com: &'a str,
    nu: &'a str,
    data: Vec<Line<'a>>,
}

#[derive(Serialize)]
struct Line<'a> {
    context: &'a str,
    time: String,
    ftime: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
    #[serde(rename = "statusCode", skip_serializing_if = "Option::is_none")]
    status_code: Option<String>,
    #[serde(rename = "areaCode", skip_serializing_if = "Option::is_none")]
    area_code: Option<Option<&'a str>>,
    #[serde(rename = "areaName", skip_serializing_if = "Option::is_none")]
    area_name: Option<Option<&'a str>>,
}

/// The `param` JSON of a kuaidi100 push for `trace`, as the subscription's options ask.
pub fn kuaidi100_param(sub: &Subscription, trace: &Trace, header: &PushHeader) -> String {
    let param = Param {
        status: header.status.as_str(),
        billstatus: billstatus(trace.state),
        message: &header.message,
        auto_check: if header.auto_check { "1" } else { "0" },
        com_old: &header.com_old,
        com_new: &header.com_new,
        last_result: last_result(trace, sub.options.resultv2),
    };
    // Serialising plain strings and vectors cannot fail.
    serde_json::to_string(&param).unwrap_or_default()
}

/// The `lastResult` object of a push, which is also the success answer of kuaidi100's
/// real-time query (`poll/query.do`): `message`, `state`, `status`, `condition`,
/// `ischeck`, `com`, `nu` and the full `data` list, newest first, at `resultv2`'s detail.
pub fn kuaidi100_result(trace: &Trace, resultv2: u8) -> serde_json::Value {
    serde_json::to_value(last_result(trace, resultv2)).unwrap_or_default()
}

fn last_result(trace: &Trace, resultv2: u8) -> LastResult<'_> {
    let areas = resultv2 >= 1;
    let advanced = resultv2 >= 4;
    let data = trace
        .data
        .iter()
        .map(|e| {
            let time = e.time.kuaidi100();
            Line {
                context: &e.context,
                ftime: time.clone(),
                time,
                status: areas.then(|| dialect::label(e.state, advanced)),
                status_code: advanced.then(|| dialect::code(e.state, true).to_string()),
                area_code: areas.then_some(e.area_code.as_deref()),
                area_name: areas.then_some(e.area_name.as_deref()),
            }
        })
        .collect();
    LastResult {
        message: "ok",
        state: dialect::code(trace.state, advanced).to_string(),
        status: "200",
        condition: "F00",
        ischeck: if trace.ischeck { "1" } else { "0" },
        com: &trace.com,
        nu: &trace.nu,
        data,
    }
}

/// kuaidi100's push signature: upper-case hex MD5 of `param` followed by `salt`.
///
/// ```
/// use waybill_host::push::render::kuaidi100_sign;
/// let param = r#"{"status":"polling","message":"","lastResult":{"state":"0"}}"#;
/// assert_eq!(kuaidi100_sign(param, "SALT123"), "61CC7EDCAB9995124A8D54A14113DC5C");
/// ```
pub fn kuaidi100_sign(param: &str, salt: &str) -> String {
    waybill_core::sign::kuaidi100_push_sign(param, salt)
}

/// The whole push for the outbox: form body `param=…&sign=…` to the callback URL.
pub fn kuaidi100_push(sub: &Subscription, trace: &Trace, header: &PushHeader) -> NewPush {
    let param = kuaidi100_param(sub, trace, header);
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("param", &param);
    if let Some(salt) = &sub.salt {
        form.append_pair("sign", &kuaidi100_sign(&param, salt));
    }
    NewPush {
        url: sub.callback_url.clone(),
        content_type: FORM_CONTENT_TYPE.into(),
        body: form.finish().into_bytes(),
        headers: Vec::new(),
    }
}

/// The deprecated `billstatus` word, still filled for old receivers.
fn billstatus(state: State) -> &'static str {
    use waybill_core::state::Phase;
    match state.phase() {
        Phase::Delivered | Phase::Returned => "check",
        Phase::OutForDelivery | Phase::AvailableForPickup => "sending",
        _ => "got",
    }
}

/// kuaidi100 state codes and names, from core's dialect table.
mod dialect {
    use waybill_core::state::State;

    /// Main (0–14) or advanced (101…1003) code.
    pub fn code(state: State, advanced: bool) -> u16 {
        if advanced {
            state.kuaidi100_advanced()
        } else {
            state.kuaidi100()
        }
    }

    /// The status name of a line, matching the code sent beside it: the sub-state's own
    /// name when it has an advanced code, otherwise the main state's name.
    pub fn label(state: State, advanced: bool) -> &'static str {
        if advanced && state.kuaidi100_advanced() != state.kuaidi100() {
            return state.label_zh();
        }
        match state.kuaidi100() {
            1 => "揽收",
            2 => "疑难",
            3 => "签收",
            4 => "退签",
            5 => "派件",
            6 => "退回",
            7 => "转投",
            8 => "清关",
            10 => "待清关",
            11 => "清关中",
            12 => "已清关",
            13 => "清关异常",
            14 => "拒签",
            _ => "在途",
        }
    }
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;
    use waybill_core::model::{EventTime, TrackEvent, CHINA_OFFSET};

    use super::*;
    use crate::store::SubscribeOptions;

    fn sub(resultv2: u8, salt: Option<&str>) -> Subscription {
        let t: Timestamp = "2024-05-01T00:00:00Z".parse().expect("ts");
        Subscription {
            id: 7,
            tenant_id: 1,
            company: "sandbox".into(),
            number: "SB0001".into(),
            phone: None,
            from: None,
            to: None,
            callback_url: "http://receiver.example/k100?order=9".into(),
            salt: salt.map(str::to_owned),
            options: SubscribeOptions {
                resultv2,
                ..SubscribeOptions::default()
            },
            status: MonitorStatus::Polling,
            state: State::NoTrace,
            message: String::new(),
            correction: None,
            next_check_at: t,
            lease_owner: None,
            lease_until: None,
            checks: 0,
            failures: 0,
            changes: 0,
            push_seq: 0,
            trace_hash: None,
            event_count: 0,
            last_event_at: None,
            last_check_at: None,
            last_change_at: None,
            last_error: None,
            created_at: t,
            updated_at: t,
        }
    }

    fn trace() -> Trace {
        let ev = |t: &str, text: &str, state, area: Option<(&str, &str)>| TrackEvent {
            time: EventTime::parse(t, CHINA_OFFSET).expect("time"),
            context: text.into(),
            location: None,
            area_code: area.map(|a| a.0.into()),
            area_name: area.map(|a| a.1.into()),
            state,
            raw_code: None,
            rule: None,
        };
        Trace::from_events(
            "sandbox",
            "SB0001",
            vec![
                ev("2024-05-01 09:10:00", "快件已揽收", State::Collected, None),
                ev(
                    "2024-05-02 03:20:00",
                    "快件到达上海转运中心",
                    State::AtTransferCentre,
                    Some(("310000000000", "上海市")),
                ),
                ev(
                    "2024-05-03 08:00:00",
                    "快件已放入驿站，请凭取件码取件",
                    State::InLocker,
                    Some(("110105000000", "北京市,朝阳区")),
                ),
            ],
        )
    }

    #[test]
    fn param_with_resultv2_4_matches_the_kuaidi100_shape() {
        let param = kuaidi100_param(
            &sub(4, None),
            &trace(),
            &PushHeader::new(MonitorStatus::Polling, ""),
        );
        let got: serde_json::Value = serde_json::from_str(&param).expect("json");
        let want: serde_json::Value =
            serde_json::from_str(include_str!("fixtures/push_polling_resultv2_4.json"))
                .expect("fixture json");
        assert_eq!(got, want);
    }

    #[test]
    fn param_without_resultv2_has_only_context_and_times() {
        let param = kuaidi100_param(
            &sub(0, None),
            &trace(),
            &PushHeader::new(MonitorStatus::Polling, ""),
        );
        let v: serde_json::Value = serde_json::from_str(&param).expect("json");
        let line = &v["lastResult"]["data"][0];
        let keys: Vec<_> = line.as_object().expect("object").keys().cloned().collect();
        assert_eq!(keys, ["context", "ftime", "time"]);
        assert_eq!(
            v["lastResult"]["state"], "5",
            "in a locker is base state 派件"
        );
    }

    #[test]
    fn a_corrected_subscription_pushes_auto_check_with_both_companies() {
        let mut s = sub(0, None);
        s.correction = Some(crate::store::CompanyCorrection {
            com_old: "yuantong".into(),
            com_new: "sandbox".into(),
        });
        let h = PushHeader::for_subscription(&s, MonitorStatus::Polling, "");
        let v: serde_json::Value =
            serde_json::from_str(&kuaidi100_param(&s, &trace(), &h)).expect("json");
        assert_eq!(
            (&v["autoCheck"], &v["comOld"], &v["comNew"]),
            (&"1".into(), &"yuantong".into(), &"sandbox".into())
        );
    }

    #[test]
    fn body_is_a_form_with_a_sign_only_when_a_salt_was_given() {
        let h = PushHeader::new(MonitorStatus::Polling, "");
        let signed = kuaidi100_push(&sub(0, Some("SALT")), &trace(), &h);
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(&signed.body)
            .into_owned()
            .collect();
        assert_eq!(pairs[0].0, "param");
        assert_eq!(
            pairs[1],
            ("sign".into(), kuaidi100_sign(&pairs[0].1, "SALT"))
        );
        assert_eq!(signed.url, "http://receiver.example/k100?order=9");
        assert_eq!(signed.content_type, FORM_CONTENT_TYPE);

        let unsigned = kuaidi100_push(&sub(0, None), &trace(), &h);
        let names: Vec<String> = url::form_urlencoded::parse(&unsigned.body)
            .map(|(k, _)| k.into_owned())
            .collect();
        assert_eq!(names, ["param"]);
    }
}
