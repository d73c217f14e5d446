//! Renders the kuaidi100 push: a form body with `param` (JSON) and, when the subscription
//! has a salt, `sign` = upper-case MD5(param + salt).
//!
//! `lastResult` always carries the full trace, newest first. The subscription's
//! `resultv2` sets the detail:
//! - ≥ 1: each line's status name and area (`status`, `areaCode`, `areaName`);
//! - ≥ 4: the advanced state code in `lastResult.state` and each line's `statusCode`, and
//!   `lastResult.routeInfo` {from, cur, to} and `lastResult.isLoop` ([`route`]);
//! - 8: what 4 renders plus the arrival estimate ([`waybill_core::eta`]) as kuaidi100
//!   writes it: `arrivalTime` the estimated hour of delivery (`2024-05-03 14`, China
//!   time), `totalTime` the lane's typical door-to-door time and `remainTime` what is left
//!   at the moment of sending (`1天6小时`). A parcel delivered or on its way back has no
//!   estimate and renders what 4 renders. `predictedRoute` (kuaidi100's guess of the hubs
//!   still to come) is not rendered: the lanes learn times, not routes, and a made-up
//!   route would not be honest.
//!
//! `interCom=1` (international mode) leaves out `comOld` and `comNew`, as kuaidi100 does.
//! For an international postal item it also splits the trace by country: `lastResult`
//! is the departure country's part and `destResult` the destination country's, each
//! full, newest first, with its own state ([`international`] says how the split is
//! made). A waybill that is not an international postal item gets no `destResult`.

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use waybill_core::eta::Estimate;
use waybill_core::model::{Trace, TrackEvent};
use waybill_core::state::State;

use crate::dialect::Rendered;
use crate::store::{PushHeader, Subscription};

pub mod international;
pub mod route;

/// `Content-Type` of a kuaidi100 push.
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

#[derive(Serialize)]
struct Param<'a> {
    status: &'static str,
    billstatus: &'static str,
    message: &'a str,
    #[serde(rename = "autoCheck")]
    auto_check: &'static str,
    #[serde(rename = "comOld", skip_serializing_if = "Option::is_none")]
    com_old: Option<&'a str>,
    #[serde(rename = "comNew", skip_serializing_if = "Option::is_none")]
    com_new: Option<&'a str>,
    #[serde(rename = "lastResult")]
    last_result: LastResult<'a>,
    #[serde(rename = "destResult", skip_serializing_if = "Option::is_none")]
    dest_result: Option<LastResult<'a>>,
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
    #[serde(rename = "routeInfo", skip_serializing_if = "Option::is_none")]
    route_info: Option<route::RouteInfo>,
    #[serde(rename = "isLoop", skip_serializing_if = "Option::is_none")]
    is_loop: Option<bool>,
    #[serde(rename = "arrivalTime", skip_serializing_if = "Option::is_none")]
    arrival_time: Option<String>,
    #[serde(rename = "totalTime", skip_serializing_if = "Option::is_none")]
    total_time: Option<String>,
    #[serde(rename = "remainTime", skip_serializing_if = "Option::is_none")]
    remain_time: Option<String>,
}

/// An estimate at `now`, for `resultv2=8`.
#[derive(Debug, Clone, Copy)]
pub struct EtaAt<'a> {
    /// The estimate.
    pub estimate: &'a Estimate,
    /// When the answer is sent: `remainTime` counts from here.
    pub now: Timestamp,
}

/// kuaidi100's way of writing a span: whole days and hours, `1天6小时`, `0天3小时`
/// (rounded to the nearest hour).
///
/// ```
/// use waybill_host::dialect::kuaidi100::render::days_hours;
/// use waybill_core::time::SignedDuration;
/// assert_eq!(days_hours(SignedDuration::from_mins(30 * 60 + 40)), "1天7小时");
/// assert_eq!(days_hours(SignedDuration::from_mins(-5)), "0天0小时");
/// ```
pub fn days_hours(d: SignedDuration) -> String {
    let hours = (d.as_secs_f64().max(0.0) / 3600.0).round() as i64;
    format!("{}天{}小时", hours / 24, hours % 24)
}

impl LastResult<'_> {
    fn with_eta(mut self, eta: Option<EtaAt<'_>>) -> Self {
        if let Some(EtaAt { estimate, now }) = eta {
            let china = jiff::tz::TimeZone::fixed(waybill_core::model::CHINA_OFFSET);
            self.arrival_time = Some(
                estimate
                    .arrival
                    .to_zoned(china)
                    .strftime("%Y-%m-%d %H")
                    .to_string(),
            );
            self.total_time = Some(days_hours(estimate.typical_total));
            self.remain_time = Some(days_hours(estimate.remaining(now)));
        }
        self
    }
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

/// The `param` JSON of a kuaidi100 push for `trace`, as the subscription's options ask
/// (`eta` is rendered at `resultv2=8` only).
pub fn kuaidi100_param(
    sub: &Subscription,
    trace: &Trace,
    header: &PushHeader,
    eta: Option<EtaAt<'_>>,
) -> String {
    let options = &sub.options;
    let resultv2 = options.resultv2;
    let eta = eta.filter(|_| resultv2 >= 8);
    let route =
        (resultv2 >= 4).then(|| route::Route::of(trace, sub.from.as_deref(), sub.to.as_deref()));
    let split = if options.inter_com {
        international::split(sub, trace)
    } else {
        None
    };
    let (last_result, dest_result) = match split {
        Some(at) => {
            let (destination, departure) = trace.data.split_at(at);
            let departure_com = options.departure_com.as_deref().unwrap_or(&trace.com);
            let destination_com = options.destination_com.as_deref().unwrap_or(&trace.com);
            (
                part(departure_com, &trace.nu, departure, resultv2, route),
                Some(part(
                    destination_com,
                    &trace.nu,
                    destination,
                    resultv2,
                    None,
                )),
            )
        }
        None => (last_result(trace, resultv2, route), None),
    };
    let last_result = last_result.with_eta(eta);
    // kuaidi100 sends no company-correction names in international mode.
    let names = !options.inter_com;
    let param = Param {
        status: header.status.as_str(),
        billstatus: billstatus(trace.state),
        message: &header.message,
        auto_check: if header.auto_check { "1" } else { "0" },
        com_old: names.then_some(header.com_old.as_str()),
        com_new: names.then_some(header.com_new.as_str()),
        last_result,
        dest_result,
    };
    // Serialising plain strings and vectors cannot fail.
    serde_json::to_string(&param).unwrap_or_default()
}

/// The `lastResult` object of a push, which is also the success answer of kuaidi100's
/// real-time query (`poll/query.do`): `message`, `state`, `status`, `condition`,
/// `ischeck`, `com`, `nu` and the full `data` list, newest first, at `resultv2`'s detail
/// (with `routeInfo` and `isLoop` from 4 on, using the query's `from` and `to`).
pub fn kuaidi100_result(
    trace: &Trace,
    resultv2: u8,
    from: Option<&str>,
    to: Option<&str>,
    eta: Option<EtaAt<'_>>,
) -> serde_json::Value {
    let route = (resultv2 >= 4).then(|| route::Route::of(trace, from, to));
    let eta = eta.filter(|_| resultv2 >= 8);
    serde_json::to_value(last_result(trace, resultv2, route).with_eta(eta)).unwrap_or_default()
}

fn last_result(trace: &Trace, resultv2: u8, route: Option<route::Route>) -> LastResult<'_> {
    result(
        &trace.com,
        &trace.nu,
        trace.state,
        trace.ischeck,
        &trace.data,
        resultv2,
        route,
    )
}

/// A part of a trace (one country's events) as a result of its own: its state is the one
/// its events add up to.
fn part<'a>(
    com: &'a str,
    nu: &'a str,
    events: &'a [TrackEvent],
    resultv2: u8,
    route: Option<route::Route>,
) -> LastResult<'a> {
    let state = State::fold(events.iter().rev().map(|e| e.state));
    result(com, nu, state, state.is_signed(), events, resultv2, route)
}

fn result<'a>(
    com: &'a str,
    nu: &'a str,
    state: State,
    ischeck: bool,
    events: &'a [TrackEvent],
    resultv2: u8,
    route: Option<route::Route>,
) -> LastResult<'a> {
    let areas = resultv2 >= 1;
    let advanced = resultv2 >= 4;
    let data = events
        .iter()
        .map(|e| {
            let time = e.time.kuaidi100();
            Line {
                context: &e.context,
                ftime: time.clone(),
                time,
                status: areas.then(|| codes::label(e.state, advanced)),
                status_code: advanced.then(|| codes::code(e.state, true).to_string()),
                area_code: areas.then_some(e.area_code.as_deref()),
                area_name: areas.then_some(e.area_name.as_deref()),
            }
        })
        .collect();
    let (route_info, is_loop) = match route {
        Some(r) => (Some(r.info), Some(r.is_loop)),
        None => (None, None),
    };
    LastResult {
        message: "ok",
        state: codes::code(state, advanced).to_string(),
        status: "200",
        condition: "F00",
        ischeck: if ischeck { "1" } else { "0" },
        com,
        nu,
        data,
        route_info,
        is_loop,
        arrival_time: None,
        total_time: None,
        remain_time: None,
    }
}

/// kuaidi100's push signature: upper-case hex MD5 of `param` followed by `salt`.
///
/// ```
/// use waybill_host::dialect::kuaidi100::render::kuaidi100_sign;
/// let param = r#"{"status":"polling","message":"","lastResult":{"state":"0"}}"#;
/// assert_eq!(kuaidi100_sign(param, "SALT123"), "61CC7EDCAB9995124A8D54A14113DC5C");
/// ```
pub fn kuaidi100_sign(param: &str, salt: &str) -> String {
    waybill_core::sign::kuaidi100_push_sign(param, salt)
}

/// The whole push: form body `param=…&sign=…`.
pub fn kuaidi100_push(
    sub: &Subscription,
    trace: &Trace,
    header: &PushHeader,
    eta: Option<EtaAt<'_>>,
) -> Rendered {
    let param = kuaidi100_param(sub, trace, header, eta);
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("param", &param);
    if let Some(salt) = &sub.salt {
        form.append_pair("sign", &kuaidi100_sign(&param, salt));
    }
    Rendered {
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
mod codes {
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
    use crate::store::{MonitorStatus, NewSubscription, SubscribeOptions};

    fn sub(resultv2: u8, salt: Option<&str>) -> Subscription {
        let t: Timestamp = "2024-05-01T00:00:00Z".parse().expect("ts");
        Subscription::created(
            7,
            "trk_kuaidi100_test".into(),
            NewSubscription {
                tenant_id: 1,
                company: "sandbox".into(),
                number: "SB0001".into(),
                phone: None,
                from: None,
                to: None,
                callback_url: "http://receiver.example/k100?order=9".into(),
                salt: salt.map(str::to_owned),
                dialect: "kuaidi100".into(),
                dialect_params: Default::default(),
                options: SubscribeOptions {
                    resultv2,
                    ..SubscribeOptions::default()
                },
                next_check_at: t,
                created_at: t,
            },
        )
    }

    fn trace() -> Trace {
        let ev = |t: &str, text: &str, state, area: Option<(&str, &str)>| TrackEvent {
            area_code: area.map(|a| a.0.into()),
            area_name: area.map(|a| a.1.into()),
            ..TrackEvent::new(
                EventTime::parse(t, CHINA_OFFSET).expect("time"),
                text,
                state,
            )
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
            None,
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
            None,
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
            serde_json::from_str(&kuaidi100_param(&s, &trace(), &h, None)).expect("json");
        assert_eq!(
            (&v["autoCheck"], &v["comOld"], &v["comNew"]),
            (&"1".into(), &"yuantong".into(), &"sandbox".into())
        );
    }

    #[test]
    fn body_is_a_form_with_a_sign_only_when_a_salt_was_given() {
        let h = PushHeader::new(MonitorStatus::Polling, "");
        let signed = kuaidi100_push(&sub(0, Some("SALT")), &trace(), &h, None);
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(&signed.body)
            .into_owned()
            .collect();
        assert_eq!(pairs[0].0, "param");
        assert_eq!(
            pairs[1],
            ("sign".into(), kuaidi100_sign(&pairs[0].1, "SALT"))
        );
        assert_eq!(signed.content_type, FORM_CONTENT_TYPE);

        let unsigned = kuaidi100_push(&sub(0, None), &trace(), &h, None);
        let names: Vec<String> = url::form_urlencoded::parse(&unsigned.body)
            .map(|(k, _)| k.into_owned())
            .collect();
        assert_eq!(names, ["param"]);
    }

    type Ev<'a> = (
        &'a str,
        &'a str,
        State,
        Option<(&'a str, &'a str)>,
        Option<&'a str>,
    );

    /// A trace from (time, text, state, area (code, name), location) lines, oldest first.
    fn trace_of(com: &str, nu: &str, lines: &[Ev<'_>]) -> Trace {
        let events = lines
            .iter()
            .map(|(t, text, state, area, location)| TrackEvent {
                location: location.map(str::to_owned),
                area_code: area.map(|a| a.0.into()),
                area_name: area.map(|a| a.1.into()),
                ..TrackEvent::new(
                    EventTime::parse(t, CHINA_OFFSET).expect("time"),
                    *text,
                    *state,
                )
            })
            .collect();
        Trace::from_events(com, nu, events)
    }

    /// An EMS item posted in Shenzhen for Japan: four lines in China, four in Japan.
    fn ems_to_japan() -> Trace {
        trace_of(
            "ems",
            "EB123456785CN",
            &[
                (
                    "2024-06-01 10:00:00",
                    "邮件已由南山营业部收寄",
                    State::Collected,
                    Some(("CN440305000000", "广东省,深圳市,南山区")),
                    None,
                ),
                (
                    "2024-06-01 18:30:00",
                    "邮件离开深圳处理中心，发往上海国际互换局",
                    State::LineHaul,
                    Some(("CN440300000000", "广东省,深圳市")),
                    None,
                ),
                (
                    "2024-06-02 21:00:00",
                    "邮件出口海关放行",
                    State::CustomsCleared,
                    Some(("CN310000000000", "上海市")),
                    None,
                ),
                (
                    "2024-06-03 02:00:00",
                    "邮件已交航班运往目的国",
                    State::InTransit,
                    Some(("CN310000000000", "上海市")),
                    None,
                ),
                (
                    "2024-06-04 09:15:00",
                    "Item received at the inward office of exchange",
                    State::InTransit,
                    None,
                    Some("Osaka, JP"),
                ),
                (
                    "2024-06-04 15:40:00",
                    "Import customs clearance completed",
                    State::CustomsCleared,
                    None,
                    Some("Osaka, JP"),
                ),
                (
                    "2024-06-05 08:05:00",
                    "With the carrier for delivery",
                    State::OutForDelivery,
                    None,
                    Some("Sakai, JP"),
                ),
                (
                    "2024-06-05 13:30:00",
                    "Delivered to the addressee's letter box",
                    State::Delivered,
                    None,
                    Some("Sakai, JP"),
                ),
            ],
        )
    }

    fn international_sub(trace: &Trace) -> Subscription {
        let mut s = sub(4, None);
        s.company = trace.com.clone();
        s.number = trace.nu.clone();
        s.options.inter_com = true;
        s
    }

    fn param_json_eta(
        s: &Subscription,
        t: &Trace,
        h: &PushHeader,
        eta: Option<EtaAt<'_>>,
    ) -> serde_json::Value {
        serde_json::from_str(&kuaidi100_param(s, t, h, eta)).expect("json")
    }

    fn param_json(s: &Subscription, t: &Trace, h: &PushHeader) -> serde_json::Value {
        serde_json::from_str(&kuaidi100_param(s, t, h, None)).expect("json")
    }

    #[test]
    fn inter_com_splits_a_postal_trace_into_departure_and_destination_results() {
        let t = ems_to_japan();
        let mut s = international_sub(&t);
        s.options.destination_com = Some("japanpost".into());
        s.correction = Some(crate::store::CompanyCorrection {
            com_old: "youzhengguoji".into(),
            com_new: "ems".into(),
        });
        let h = PushHeader::for_subscription(&s, MonitorStatus::Shutdown, "");
        let got = param_json(&s, &t, &h);
        let want: serde_json::Value =
            serde_json::from_str(include_str!("fixtures/push_intercom_resultv2_4.json"))
                .expect("fixture json");
        assert_eq!(got, want);
    }

    #[test]
    fn the_destination_comes_from_to_and_a_trace_without_it_stays_whole() {
        // Posted in the US (S10 suffix), for a Chinese address: US lines carry a
        // trailing country code, Chinese ones Chinese characters.
        let t = trace_of(
            "ems",
            "LX000000001US",
            &[
                (
                    "2024-06-01 10:00:00",
                    "Accepted at USPS origin facility",
                    State::Collected,
                    None,
                    Some("NEW YORK, NY, US"),
                ),
                (
                    "2024-06-02 10:00:00",
                    "Departed the international service center",
                    State::InTransit,
                    None,
                    Some("JAMAICA, NY, US"),
                ),
                (
                    "2024-06-05 10:00:00",
                    "邮件到达上海国际互换局",
                    State::InTransit,
                    None,
                    Some("上海市"),
                ),
                (
                    "2024-06-06 10:00:00",
                    "邮件已妥投",
                    State::Delivered,
                    None,
                    Some("北京市"),
                ),
            ],
        );
        let mut s = international_sub(&t);
        s.to = Some("北京市朝阳区".into());
        let h = PushHeader::new(MonitorStatus::Shutdown, "");
        let v = param_json(&s, &t, &h);
        let contexts = |r: &serde_json::Value| -> Vec<String> {
            r["data"]
                .as_array()
                .expect("data")
                .iter()
                .map(|l| l["context"].as_str().expect("context").to_owned())
                .collect()
        };
        assert_eq!(
            contexts(&v["destResult"]),
            ["邮件已妥投", "邮件到达上海国际互换局"]
        );
        assert_eq!(v["destResult"]["state"], "301");
        assert_eq!(v["destResult"]["ischeck"], "1");
        assert_eq!(
            contexts(&v["lastResult"]),
            [
                "Departed the international service center",
                "Accepted at USPS origin facility"
            ]
        );
        assert_eq!(v["lastResult"]["ischeck"], "0");

        // Without `to` the newest line in another country decides: the same split.
        s.to = None;
        assert_eq!(param_json(&s, &t, &h)["destResult"], v["destResult"]);

        // A domestic number of a postal company has no departure country: no split.
        let mut domestic = international_sub(&t);
        domestic.number = "1136281381675".into();
        let v = param_json(&domestic, &t, &h);
        assert!(v.get("destResult").is_none(), "{v}");
        assert_eq!(v["lastResult"]["data"].as_array().expect("data").len(), 4);
    }

    #[test]
    fn an_international_item_not_yet_abroad_has_an_empty_destination_result() {
        let mut t = ems_to_japan();
        t.data.drain(..4);
        let mut s = international_sub(&t);
        s.options.destination_country = Some("JP".into());
        let v = param_json(&s, &t, &PushHeader::new(MonitorStatus::Polling, ""));
        assert_eq!(v["destResult"]["data"], serde_json::json!([]));
        assert_eq!(v["destResult"]["ischeck"], "0");
        assert_eq!(v["lastResult"]["data"].as_array().expect("data").len(), 4);
    }

    #[test]
    fn inter_com_on_a_non_postal_waybill_only_drops_the_company_names() {
        let mut s = sub(1, None);
        s.options.inter_com = true;
        s.options.destination_country = Some("JP".into());
        let v = param_json(&s, &trace(), &PushHeader::new(MonitorStatus::Polling, ""));
        assert!(v.get("destResult").is_none(), "{v}");
        assert!(
            v.get("comOld").is_none() && v.get("comNew").is_none(),
            "{v}"
        );
        assert_eq!(v["autoCheck"], "0");
        assert_eq!(v["lastResult"]["data"].as_array().expect("data").len(), 3);
        // Without interCom both names are always there, empty when nothing was corrected.
        let v = param_json(
            &sub(1, None),
            &trace(),
            &PushHeader::new(MonitorStatus::Polling, ""),
        );
        assert_eq!((&v["comOld"], &v["comNew"]), (&"".into(), &"".into()));
    }

    #[test]
    fn event_countries_come_from_area_codes_then_locations() {
        let ev = |code: Option<&str>, name: Option<&str>, location: Option<&str>| TrackEvent {
            location: location.map(str::to_owned),
            area_code: code.map(str::to_owned),
            area_name: name.map(str::to_owned),
            ..TrackEvent::new(
                EventTime::parse("2024-06-01 10:00:00", CHINA_OFFSET).expect("time"),
                "",
                State::InTransit,
            )
        };
        let country = |e: &TrackEvent| international::event_country(e);
        assert_eq!(
            country(&ev(Some("310000000000"), None, None)).as_deref(),
            Some("CN")
        );
        assert_eq!(
            country(&ev(Some("jp130000"), None, None)).as_deref(),
            Some("JP")
        );
        assert_eq!(
            country(&ev(None, None, Some("Leipzig, DE"))).as_deref(),
            Some("DE")
        );
        assert_eq!(
            country(&ev(None, None, Some("AUSTIN, TX, US"))).as_deref(),
            Some("US")
        );
        assert_eq!(
            country(&ev(None, Some("广东,深圳市"), None)).as_deref(),
            Some("CN")
        );
        assert_eq!(country(&ev(None, None, Some("Sorting centre"))), None);
        assert_eq!(country(&ev(None, None, None)), None);
    }

    #[test]
    fn route_info_takes_from_and_to_of_the_subscription_with_matching_area_codes() {
        let t = trace_of(
            "sandbox",
            "SB0002",
            &[
                (
                    "2024-05-01 09:00:00",
                    "已揽收",
                    State::Collected,
                    Some(("440305000000", "广东,深圳市,南山区")),
                    None,
                ),
                (
                    "2024-05-02 09:00:00",
                    "到达北京转运中心",
                    State::AtTransferCentre,
                    Some(("110000000000", "北京市")),
                    None,
                ),
                (
                    "2024-05-03 09:00:00",
                    "派件中",
                    State::OutForDelivery,
                    Some(("110105000000", "北京市,朝阳区")),
                    None,
                ),
            ],
        );
        let r = route::Route::of(&t, Some("广东省深圳市南山区"), Some("北京市朝阳区"));
        let place = |n: Option<&str>, name: &str| {
            Some(route::Place {
                number: n.map(str::to_owned),
                name: name.into(),
            })
        };
        assert_eq!(
            r.info.from,
            place(Some("440305000000"), "广东省深圳市南山区")
        );
        assert_eq!(r.info.cur, place(Some("110105000000"), "北京市,朝阳区"));
        assert_eq!(r.info.to, place(Some("110105000000"), "北京市朝阳区"));
        assert!(!r.is_loop, "Beijing city and district are one city");
        // An address no event lies in still has the code of the division it names; one
        // that names none has no code.
        let r = route::Route::of(&t, Some("浙江省杭州市"), None);
        assert_eq!(r.info.from, place(Some("330100000000"), "浙江省杭州市"));
        let r = route::Route::of(&t, Some("somewhere far"), None);
        assert_eq!(r.info.from, place(None, "somewhere far"));
        assert_eq!(r.info.to, None, "not signed and no `to`");
    }

    #[test]
    fn a_route_back_to_a_city_it_left_is_a_loop() {
        let line = |t: &'static str, code: &'static str, name: &'static str| -> Ev<'static> {
            (t, "x", State::InTransit, Some((code, name)), None)
        };
        let t = trace_of(
            "sandbox",
            "SB0003",
            &[
                line("2024-05-01 09:00:00", "440305000000", "广东,深圳市,南山区"),
                line("2024-05-01 19:00:00", "440300000000", "广东,深圳市"),
                line("2024-05-02 09:00:00", "330100000000", "浙江,杭州市"),
                line("2024-05-03 09:00:00", "440303000000", "广东,深圳市,罗湖区"),
            ],
        );
        assert!(route::Route::of(&t, None, None).is_loop);
        let mut straight = t.clone();
        straight.data.remove(0);
        assert!(!route::Route::of(&straight, None, None).is_loop);
    }

    #[test]
    fn resultv2_8_adds_the_estimate_to_what_4_renders_and_1_has_no_route() {
        let h = PushHeader::new(MonitorStatus::Polling, "");
        let now: Timestamp = "2024-05-02T02:00:00Z".parse().unwrap();
        let estimate = Estimate {
            arrival: "2024-05-03T06:20:00Z".parse().unwrap(),
            early: "2024-05-03T02:00:00Z".parse().unwrap(),
            late: "2024-05-03T10:00:00Z".parse().unwrap(),
            stage: Some(waybill_core::eta::Stage::Collected),
            stage_since: Some(now),
            typical_total: SignedDuration::from_hours(52),
            basis: waybill_core::eta::Basis::ColdStart { reach: None },
            fallback: true,
            explanation: String::new(),
        };
        let eta = Some(EtaAt {
            estimate: &estimate,
            now,
        });
        let v8 = param_json_eta(&sub(8, None), &trace(), &h, eta);
        let last = &v8["lastResult"];
        assert_eq!(
            last["arrivalTime"], "2024-05-03 14",
            "China time, to the hour"
        );
        assert_eq!(last["totalTime"], "2天4小时");
        assert_eq!(last["remainTime"], "1天4小时");
        let mut v4 = param_json_eta(&sub(4, None), &trace(), &h, eta);
        assert!(v4["lastResult"].get("arrivalTime").is_none(), "{v4}");
        for key in ["arrivalTime", "totalTime", "remainTime"] {
            v4["lastResult"][key] = last[key].clone();
        }
        assert_eq!(v4, v8, "8 is 4 plus the estimate");
        assert_eq!(
            kuaidi100_param(&sub(8, None), &trace(), &h, None),
            kuaidi100_param(&sub(4, None), &trace(), &h, None),
            "no estimate (delivered): 8 renders what 4 renders"
        );
        let v = param_json(&sub(1, None), &trace(), &h);
        assert!(v["lastResult"].get("routeInfo").is_none(), "{v}");
        assert!(v["lastResult"].get("isLoop").is_none(), "{v}");
    }

    #[test]
    fn the_query_answer_carries_the_route_of_the_query_from_and_to() {
        let v = kuaidi100_result(&trace(), 4, None, Some("北京市朝阳区"), None);
        assert_eq!(
            v["routeInfo"]["to"],
            serde_json::json!({"number": "110105000000", "name": "北京市朝阳区"})
        );
        assert_eq!(v["isLoop"], false);
        assert!(kuaidi100_result(&trace(), 1, None, None, None)
            .get("routeInfo")
            .is_none());
    }
}
