//! The Kdniao (快递鸟) dialect: its routes ([`routes`]), its pushes (RequestType 101 for
//! 1008 subscriptions, 102 for 8008 在途监控 ones) and their acknowledgement.
//!
//! A tenant's Kdniao credentials are its `EBusinessID` ([`ebusiness_id`], derived from
//! the tenant's row id) and its `AppKey`, which is the tenant's API key. Kdniao sets the
//! push address per account: `waybill tenant add NAME --kdniao-push-url URL` (or `waybill
//! tenant kdniao-push-url NAME URL` later). A subscription keeps the push address and the
//! AppKey it was made with, and the `Callback` and `OrderCode` its pushes echo.
//!
//! A push is a form with `RequestData` (JSON `{EBusinessID, PushTime, Count, Data:[…]}`,
//! the full trace oldest first), `EBusinessID`, `RequestType`, `DataSign` (Base64 of the
//! lower-case hex MD5 of RequestData + AppKey) and `DataType=2`. It counts as delivered
//! only when the receiver answers 2xx with a JSON body whose `Success` is `true`
//! (`{"EBusinessID":…,"UpdateTime":…,"Success":true,"Reason":""}`).

pub mod routes;

use axum::routing::post;
use axum::Router;
use jiff::Timestamp;
use serde::Serialize;
use waybill_core::carrier::{Reply, Verdict};
use waybill_core::eta::Estimate;
use waybill_core::model::{Trace, TrackEvent, Waybill, CHINA_OFFSET};
use waybill_core::problem::Flag;
use waybill_core::shipper::kdniao_shipper_code;

use super::{Dialect, Rendered};
use crate::api::Api;
use crate::store::{Change, DialectParams, Subscription, TenantId};

/// The name subscriptions made through the Kdniao API record.
pub const NAME: &str = "kdniao";

/// `Content-Type` of a Kdniao request or push.
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded;charset=utf-8";

/// EBusinessIDs are the tenant's row id offset by this, so they look like Kdniao's
/// (seven digits) and never collide.
const EBUSINESS_ID_BASE: i64 = 1_000_000;

/// Dialect parameter: the push RequestType, "101" or "102".
const PUSH_TYPE: &str = "push_type";
/// Dialect parameter: the subscription's `Callback`, echoed as `CallBack`.
const CALLBACK: &str = "callback";
/// Dialect parameter: the subscription's `OrderCode`, echoed.
const ORDER_CODE: &str = "order_code";

/// A tenant's `EBusinessID`.
///
/// ```
/// use waybill_host::dialect::kdniao::{ebusiness_id, tenant_of_ebusiness_id};
/// assert_eq!(ebusiness_id(7), "1000007");
/// assert_eq!(tenant_of_ebusiness_id("1000007"), Some(7));
/// ```
pub fn ebusiness_id(tenant: TenantId) -> String {
    (EBUSINESS_ID_BASE + tenant).to_string()
}

/// The tenant an `EBusinessID` names, if it is one of ours.
pub fn tenant_of_ebusiness_id(id: &str) -> Option<TenantId> {
    let n: i64 = id.trim().parse().ok()?;
    (n > EBUSINESS_ID_BASE).then_some(n - EBUSINESS_ID_BASE)
}

/// The dialect parameters of a subscription made with RequestType `request_type` (1008 or
/// 8008), echoing `callback` and `order_code`.
pub fn subscription_params(request_type: u16, callback: &str, order_code: &str) -> DialectParams {
    let push_type = if request_type == 1008 { "101" } else { "102" };
    let mut p = DialectParams::new();
    p.insert(PUSH_TYPE.into(), push_type.into());
    p.insert(CALLBACK.into(), callback.into());
    p.insert(ORDER_CODE.into(), order_code.into());
    p
}

fn param<'a>(sub: &'a Subscription, name: &str) -> &'a str {
    sub.dialect_params
        .get(name)
        .and_then(|v| v.as_str())
        .unwrap_or("")
}

/// One trace line as Kdniao writes it.
#[derive(Debug, Serialize)]
pub(crate) struct TraceLine {
    #[serde(rename = "AcceptTime")]
    accept_time: String,
    #[serde(rename = "AcceptStation")]
    accept_station: String,
    #[serde(rename = "Location", skip_serializing_if = "Option::is_none")]
    location: Option<String>,
    #[serde(rename = "Action", skip_serializing_if = "Option::is_none")]
    action: Option<String>,
    #[serde(rename = "Remark")]
    remark: &'static str,
}

/// The city of a line: from its area code, else the carrier's own place name.
fn city(e: &TrackEvent) -> Option<String> {
    e.place()
        .and_then(|p| p.city.map(str::to_owned))
        .or_else(|| e.location.clone())
}

/// The lines of `trace`, oldest first as Kdniao lists them; `monitor` adds each line's
/// `Location` and `Action` (在途监控, 8001 and its pushes).
pub(crate) fn trace_lines(trace: &Trace, monitor: bool) -> Vec<TraceLine> {
    trace
        .data
        .iter()
        .rev()
        .map(|e| TraceLine {
            accept_time: e.time.kuaidi100(),
            accept_station: e.context.clone(),
            location: if monitor { city(e) } else { None },
            action: monitor.then(|| e.state.kdniao().1.to_string()),
            remark: "",
        })
        .collect()
}

/// Kdniao's `TracingData`: one waybill's state and trace, in 8001 answers and in pushes.
#[derive(Debug, Serialize)]
pub(crate) struct TracingData {
    #[serde(rename = "EBusinessID")]
    pub ebusiness_id: String,
    #[serde(rename = "OrderCode")]
    pub order_code: String,
    #[serde(rename = "ShipperCode")]
    pub shipper_code: String,
    #[serde(rename = "LogisticCode")]
    pub logistic_code: String,
    #[serde(rename = "Success")]
    pub success: bool,
    #[serde(rename = "Reason")]
    pub reason: String,
    #[serde(rename = "State")]
    pub state: String,
    #[serde(rename = "StateEx")]
    pub state_ex: String,
    #[serde(rename = "Location")]
    pub location: String,
    #[serde(rename = "CallBack", skip_serializing_if = "Option::is_none")]
    pub callback: Option<String>,
    #[serde(rename = "Traces")]
    pub traces: Vec<TraceLine>,
    /// The estimated delivery day (`yyyy-mm-dd`, China time), empty without an estimate.
    #[serde(rename = "EstimatedDeliveryTime")]
    pub estimated_delivery_time: String,
}

/// Kdniao's `EstimatedDeliveryTime`: the estimate's day in China, or empty.
pub(crate) fn estimated_day(eta: Option<&Estimate>) -> String {
    eta.map(|e| {
        e.arrival
            .to_zoned(CHINA_OFFSET.to_time_zone())
            .strftime("%Y-%m-%d")
            .to_string()
    })
    .unwrap_or_default()
}

impl TracingData {
    /// The 在途监控 view of `trace` for `tenant`, named by `waybill`'s company and number
    /// (whatever the carrier echoed). An active problem flag (the first by code) is the
    /// State 4 and StateEx Kdniao gives a problem parcel, time-based ones included;
    /// otherwise the trace's state says.
    pub(crate) fn of(
        tenant: TenantId,
        waybill: &Waybill,
        trace: &Trace,
        problems: &[Flag],
        eta: Option<&Estimate>,
        order_code: &str,
        reason: &str,
    ) -> Self {
        let (state, state_ex) = match problems.first() {
            Some(flag) => flag.kind.kdniao(),
            None => trace.state.kdniao(),
        };
        Self {
            ebusiness_id: ebusiness_id(tenant),
            order_code: order_code.into(),
            shipper_code: kdniao_shipper_code(&waybill.company),
            logistic_code: waybill.number.clone(),
            success: true,
            reason: reason.into(),
            state: state.to_string(),
            state_ex: state_ex.to_string(),
            location: trace.data.first().and_then(city).unwrap_or_default(),
            callback: None,
            traces: trace_lines(trace, true),
            estimated_delivery_time: estimated_day(eta),
        }
    }
}

/// Kdniao's time format, at UTC+8.
pub(crate) fn kdniao_time(at: Timestamp) -> String {
    at.to_zoned(CHINA_OFFSET.to_time_zone())
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// The Kdniao dialect.
#[derive(Debug, Clone, Copy, Default)]
pub struct Kdniao;

impl Dialect for Kdniao {
    fn name(&self) -> &'static str {
        NAME
    }

    fn render(
        &self,
        sub: &Subscription,
        change: &Change,
        _push_id: &str,
        now: Timestamp,
    ) -> Rendered {
        let ebusiness = ebusiness_id(sub.tenant_id);
        let mut data = TracingData::of(
            sub.tenant_id,
            &sub.waybill(),
            &change.trace,
            &change.problems,
            change.eta.as_deref(),
            param(sub, ORDER_CODE),
            &change.header.message,
        );
        data.callback = Some(param(sub, CALLBACK).to_owned());
        #[derive(Serialize)]
        struct Body<'a> {
            #[serde(rename = "EBusinessID")]
            ebusiness_id: &'a str,
            #[serde(rename = "PushTime")]
            push_time: String,
            #[serde(rename = "Count")]
            count: &'static str,
            #[serde(rename = "Data")]
            data: [TracingData; 1],
        }
        let request_data = serde_json::to_string(&Body {
            ebusiness_id: &ebusiness,
            push_time: kdniao_time(now),
            count: "1",
            data: [data],
        })
        .unwrap_or_default();
        let push_type = match param(sub, PUSH_TYPE) {
            "101" => "101",
            _ => "102",
        };
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("RequestData", &request_data);
        form.append_pair("EBusinessID", &ebusiness);
        form.append_pair("RequestType", push_type);
        // The AppKey the subscription was made with is kept as its salt.
        let app_key = sub.salt.as_deref().unwrap_or("");
        form.append_pair(
            "DataSign",
            &waybill_core::sign::kdniao_data_sign(&request_data, app_key),
        );
        form.append_pair("DataType", "2");
        Rendered {
            content_type: FORM_CONTENT_TYPE.into(),
            body: form.finish().into_bytes(),
            headers: Vec::new(),
        }
    }

    fn judge(&self, reply: &Reply) -> Verdict {
        super::judge_reply(reply, ack)
    }

    fn routes(&self) -> Router<Api> {
        Router::new()
            .route(
                "/Ebusiness/EbusinessOrderHandle.aspx",
                post(routes::order_handle),
            )
            .route("/api/dist", post(routes::dist))
    }
}

/// Whether a reply body is a Kdniao acknowledgement; the reason when it is not.
pub fn ack(body: &[u8]) -> Result<(), String> {
    let v = super::reply_json(body)?;
    match v.get("Success") {
        Some(serde_json::Value::Bool(true)) => Ok(()),
        other => Err(format!(
            "reply is not an acknowledgement (Success={}, Reason={})",
            other.unwrap_or(&serde_json::Value::Null),
            v.get("Reason").unwrap_or(&serde_json::Value::Null)
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use waybill_core::model::{EventTime, TrackEvent};
    use waybill_core::state::State;

    use super::*;
    use crate::store::{MonitorStatus, NewSubscription, PushHeader, SubscribeOptions};

    fn sub() -> Subscription {
        let t0: Timestamp = "2024-05-01T00:00:00Z".parse().expect("ts");
        let mut sub = Subscription::created(
            9,
            "trk_kdniao_test".into(),
            NewSubscription {
                tenant_id: 3,
                company: "yuantong".into(),
                number: "YT0000000000".into(),
                phone: None,
                from: None,
                to: None,
                callback_url: "http://receiver.example/kdn".into(),
                salt: Some("APPKEY123".into()),
                dialect: NAME.into(),
                dialect_params: subscription_params(8008, "cb-42", "ORDER-1"),
                options: SubscribeOptions::default(),
                next_check_at: t0,
                created_at: t0,
            },
        );
        sub.state = State::InTransit;
        sub
    }

    fn trace() -> Trace {
        let ev = |t: &str, text: &str, state, area: Option<&str>| {
            let mut e = TrackEvent::new(
                EventTime::parse(t, CHINA_OFFSET).expect("time"),
                text,
                state,
            );
            e.area_code = area.map(str::to_owned);
            e
        };
        Trace::from_events(
            "yuantong",
            "YT0000000000",
            vec![
                ev("2024-05-01 09:10:00", "快件已揽收", State::Collected, None),
                ev(
                    "2024-05-03 08:00:00",
                    "快件已放入驿站，请凭取件码取件 \"A&B\" #1 +2 <3>",
                    State::InLocker,
                    Some("110105000000"),
                ),
            ],
        )
    }

    #[test]
    fn a_push_is_a_signed_form_with_the_full_trace_oldest_first() {
        let change = Change::new(PushHeader::new(MonitorStatus::Polling, ""), trace());
        let now: Timestamp = "2024-05-03T01:00:00Z".parse().expect("ts");
        let r = Kdniao.render(&sub(), &change, "9-1", now);
        assert_eq!(r.content_type, FORM_CONTENT_TYPE);
        let form: HashMap<String, String> =
            url::form_urlencoded::parse(&r.body).into_owned().collect();
        assert_eq!(form["RequestType"], "102");
        assert_eq!(form["EBusinessID"], "1000003");
        assert_eq!(form["DataType"], "2");
        waybill_core::sign::verify_kdniao(&form["RequestData"], "APPKEY123", &form["DataSign"])
            .expect("signed with the AppKey");
        let v: serde_json::Value = serde_json::from_str(&form["RequestData"]).expect("json");
        assert_eq!(v["PushTime"], "2024-05-03 09:00:00");
        assert_eq!(v["Count"], "1");
        let d = &v["Data"][0];
        assert_eq!(
            (
                &d["ShipperCode"],
                &d["LogisticCode"],
                &d["OrderCode"],
                &d["CallBack"]
            ),
            (
                &"YTO".into(),
                &"YT0000000000".into(),
                &"ORDER-1".into(),
                &"cb-42".into()
            )
        );
        assert_eq!((&d["State"], &d["StateEx"]), (&"2".into(), &"211".into()));
        assert_eq!(d["Location"], "北京市");
        assert_eq!(d["Traces"][0]["AcceptStation"], "快件已揽收");
        assert_eq!(d["Traces"][1]["Action"], "211");
        assert_eq!(d["Traces"][1]["AcceptTime"], "2024-05-03 08:00:00");
    }

    #[test]
    fn a_1008_subscription_pushes_request_type_101() {
        let mut s = sub();
        s.dialect_params = subscription_params(1008, "", "");
        let change = Change::new(PushHeader::new(MonitorStatus::Polling, ""), trace());
        let r = Kdniao.render(&s, &change, "9-1", Timestamp::UNIX_EPOCH);
        let form: HashMap<String, String> =
            url::form_urlencoded::parse(&r.body).into_owned().collect();
        assert_eq!(form["RequestType"], "101");
    }

    #[test]
    fn only_success_true_acknowledges() {
        let ok = r#"{"EBusinessID":"1000003","UpdateTime":"2024-05-03 09:00:00","Success":true,"Reason":""}"#;
        assert_eq!(Kdniao.judge(&Reply::ok(ok)), Verdict::Accepted);
        for bad in [
            r#"{"Success":false,"Reason":"busy"}"#,
            r#"{"Success":"true"}"#,
            r#"{"result":true,"returnCode":"200"}"#,
            "OK",
        ] {
            assert!(
                matches!(Kdniao.judge(&Reply::ok(bad)), Verdict::Retry { .. }),
                "{bad}"
            );
        }
        let mut failing = Reply::ok(ok);
        failing.status = 500;
        assert_eq!(Kdniao.judge(&failing), Verdict::retry("HTTP 500"));
    }
}
