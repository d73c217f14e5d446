//! Kdniao's routes, on Kdniao's own paths so an existing integration changes only its host:
//! `POST /Ebusiness/EbusinessOrderHandle.aspx` for queries (1002 standard, 8001 在途监控)
//! and recognition (2002), `POST /api/dist` for subscriptions (1008, 8008).
//!
//! A request is a form with `RequestData` (JSON), `EBusinessID`, `RequestType`, `DataSign`
//! and `DataType=2`. `DataSign` must be Base64 of the lower-case hex MD5 of RequestData +
//! AppKey, compared byte for byte. Some clients URL-encode RequestData once more than the
//! form needs (the signature is still over the plain JSON): when the value as received
//! does not verify, its once-decoded form is tried.
//!
//! Every answer is HTTP 200 with Kdniao's JSON. A refusal is `{EBusinessID, Success:
//! false, Reason, ResultCode}`; ResultCode 101 a field is missing, 102 the signature
//! does not verify, 103 a field is malformed or the company is not served, 104 the
//! EBusinessID is unknown or its account inactive, 105 anything else (carrier error,
//! monthly limit, store), 405 over the rate limit.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::Json;
use serde_json::{json, Map, Value};
use waybill_core::carrier::TrackError;
use waybill_core::model::Waybill;
use waybill_core::shipper::{company_of_kdniao_shipper, kdniao_shipper_code};

use super::{ebusiness_id, kdniao_time, subscription_params, tenant_of_ebusiness_id, TracingData};
use crate::api::limit::Endpoint;
use crate::api::usecase::{check_number, Subscribe, UseError};
use crate::api::Api;
use crate::store::{SubscribeOptions, Tenant};

/// A refusal: its ResultCode and reason.
struct Refusal {
    code: u16,
    reason: String,
}

impl Refusal {
    fn new(code: u16, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
        }
    }

    fn answer(self, ebusiness: &str) -> Value {
        json!({
            "EBusinessID": ebusiness,
            "Success": false,
            "Reason": self.reason,
            "ResultCode": self.code.to_string(),
        })
    }
}

impl From<UseError> for Refusal {
    fn from(e: UseError) -> Self {
        let code = match &e {
            UseError::NoCompany => 101,
            UseError::BadInput(_)
            | UseError::UnsupportedCompany { .. }
            | UseError::Unrecognised(_) => 103,
            UseError::UnknownKey | UseError::Inactive(_) => 104,
            UseError::Busy(_) => 405,
            UseError::Duplicate { .. }
            | UseError::MonthlyLimit { .. }
            | UseError::Timeout(_)
            | UseError::Track(_)
            | UseError::Store(_) => 105,
        };
        Self::new(code, e.to_string())
    }
}

/// A verified request: who sent it, what type, its RequestData object.
struct Request {
    tenant: Arc<Tenant>,
    request_type: u16,
    data: Map<String, Value>,
}

/// Checks the envelope and the signature. `ebusiness` is set as soon as it is read, for
/// the refusal's echo.
async fn verified(
    api: &Api,
    headers: &HeaderMap,
    uri: &Uri,
    body: Body,
    ebusiness: &mut String,
) -> Result<Request, Refusal> {
    let fields = crate::api::form::fields(
        api,
        headers,
        uri,
        body,
        "RequestData=...&EBusinessID=...&RequestType=...&DataSign=...&DataType=2",
    )
    .await
    .map_err(|m| Refusal::new(103, m))?;
    let field = |name: &str| {
        fields
            .get(name)
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| Refusal::new(101, format!("missing form field `{name}`")))
    };
    ebusiness.clone_from(&field("EBusinessID")?.trim().to_owned());
    let request_type: u16 = field("RequestType")?
        .trim()
        .parse()
        .map_err(|_| Refusal::new(103, "`RequestType` must be a number such as 8001"))?;
    if let Some(t) = fields.get("DataType").map(|t| t.trim()) {
        if !t.is_empty() && t != "2" {
            return Err(Refusal::new(
                103,
                format!("`DataType` must be 2 (JSON), not {t:?}"),
            ));
        }
    }
    let raw = field("RequestData")?;
    let sign = field("DataSign")?;
    let tenant_id = tenant_of_ebusiness_id(ebusiness)
        .ok_or_else(|| Refusal::new(104, "no account has this EBusinessID"))?;
    let tenant = api
        .tenant_by_id(tenant_id)
        .await?
        .ok_or_else(|| Refusal::new(104, "no account has this EBusinessID"))?;
    let data = signed_data(raw, sign, &tenant.key).ok_or_else(|| {
        Refusal::new(
            102,
            "`DataSign` does not verify: it must be Base64 of the lower-case hex MD5 of \
             RequestData followed by the AppKey",
        )
    })?;
    let endpoint = match request_type {
        1008 | 8008 => Endpoint::Subscribe,
        2002 => Endpoint::Autonumber,
        _ => Endpoint::Query,
    };
    api.admit(&tenant, endpoint)?;
    let data = match serde_json::from_str::<Value>(&data) {
        Ok(Value::Object(o)) => o,
        Ok(_) => return Err(Refusal::new(103, "`RequestData` must be a JSON object")),
        Err(e) => return Err(Refusal::new(103, format!("`RequestData` is not JSON: {e}"))),
    };
    Ok(Request {
        tenant,
        request_type,
        data,
    })
}

/// The RequestData the signature covers: the value as received, or once more decoded.
fn signed_data(raw: &str, sign: &str, app_key: &str) -> Option<String> {
    let signs = [Some(sign.to_owned()), decoded(sign)];
    let data = [Some(raw.to_owned()), decoded(raw)];
    data.into_iter().flatten().find(|d| {
        let want = waybill_core::sign::kdniao_data_sign(d, app_key);
        signs.iter().flatten().any(|s| s.trim() == want)
    })
}

/// `value` URL-decoded once more, when that changes it.
fn decoded(value: &str) -> Option<String> {
    let once: String = url::form_urlencoded::parse(format!("v={value}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())?;
    (once != value).then_some(once)
}

/// A text field of RequestData: strings trimmed, integers as written.
fn text(data: &Map<String, Value>, name: &str) -> Option<String> {
    match data.get(name)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        _ => None,
    }
}

/// An address object's parts joined (`ProvinceName` + `CityName` + `ExpAreaName`), so the
/// near-destination rule can read it.
fn area(data: &Map<String, Value>, name: &str) -> Option<String> {
    let obj = data.get(name)?.as_object()?;
    let joined: String = ["ProvinceName", "CityName", "ExpAreaName"]
        .iter()
        .filter_map(|k| text(obj, k))
        .collect();
    (!joined.is_empty()).then_some(joined)
}

/// The waybill a query or subscription names, and our code for its `ShipperCode` (not
/// yet resolved: the waybill's `company` is left empty).
fn waybill(data: &Map<String, Value>) -> Result<(String, Waybill), Refusal> {
    let number = check_number(text(data, "LogisticCode"), "LogisticCode")?;
    let shipper = text(data, "ShipperCode").ok_or(UseError::NoCompany)?;
    let waybill = Waybill {
        company: String::new(),
        number,
        phone: text(data, "CustomerName"),
        from: area(data, "Sender"),
        to: area(data, "Receiver"),
    };
    Ok((company_of_kdniao_shipper(&shipper), waybill))
}

/// `POST /Ebusiness/EbusinessOrderHandle.aspx`: 1002, 8001, 2002.
pub async fn order_handle(
    State(api): State<Api>,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Json<Value> {
    let mut ebusiness = String::new();
    let answer = match verified(&api, &headers, &uri, body, &mut ebusiness).await {
        Ok(req) => match req.request_type {
            1002 | 8001 => query(&api, &req).await,
            2002 => recognize(&api, &req),
            1008 | 8008 => Err(Refusal::new(
                103,
                format!(
                    "RequestType {} is a subscription: send it to /api/dist",
                    req.request_type
                ),
            )),
            other => Err(Refusal::new(
                103,
                format!("RequestType {other} is not served here"),
            )),
        },
        Err(r) => Err(r),
    };
    finish(&api, "kdniao_query", &ebusiness, answer)
}

/// `POST /api/dist`: 1008, 8008.
pub async fn dist(State(api): State<Api>, headers: HeaderMap, uri: Uri, body: Body) -> Json<Value> {
    let mut ebusiness = String::new();
    let answer = match verified(&api, &headers, &uri, body, &mut ebusiness).await {
        Ok(req) if matches!(req.request_type, 1008 | 8008) => subscribe(&api, &req).await,
        Ok(req) => Err(Refusal::new(
            103,
            format!(
                "RequestType {} is not a subscription: send it to /Ebusiness/EbusinessOrderHandle.aspx",
                req.request_type
            ),
        )),
        Err(r) => Err(r),
    };
    finish(&api, "kdniao_subscribe", &ebusiness, answer)
}

fn finish(
    api: &Api,
    endpoint: &'static str,
    ebusiness: &str,
    answer: Result<Value, Refusal>,
) -> Json<Value> {
    match answer {
        Ok(v) => {
            api.metrics().request(endpoint, "100");
            Json(v)
        }
        Err(r) => {
            api.metrics()
                .request(endpoint, if r.code == 102 { "102" } else { "error" });
            Json(r.answer(ebusiness))
        }
    }
}

async fn query(api: &Api, req: &Request) -> Result<Value, Refusal> {
    let (company, mut waybill) = waybill(&req.data)?;
    waybill.company = api.resolve_company(Some(&company), &waybill.number, false)?;
    let order_code = text(&req.data, "OrderCode").unwrap_or_default();
    let trace = match api.query(&req.tenant, &waybill).await {
        Ok(trace) => trace,
        // Kdniao answers a waybill with no trace yet as a success with State 0.
        Err(UseError::Track(TrackError::NotFound { .. })) => {
            waybill_core::model::Trace::from_events(&waybill.company, &waybill.number, vec![])
        }
        Err(e) => return Err(e.into()),
    };
    let reason = if trace.data.is_empty() {
        "暂无轨迹信息"
    } else {
        ""
    };
    if req.request_type == 8001 {
        let eta = api
            .estimate(&waybill.company, &trace, waybill.to.as_deref())
            .await;
        // A query has no subscription: the flags the trace itself raises (a locker, no
        // update, not signed, late for its lane), with the wait for a first line from now.
        let facts = waybill_core::policy::SubscriptionFacts::new(&waybill, api.now());
        let flags = api.flags(&trace, &facts);
        let data = TracingData::of(
            req.tenant.id,
            &waybill,
            &trace,
            &flags,
            eta.as_ref(),
            &order_code,
            reason,
        );
        return serde_json::to_value(data).map_err(|e| Refusal::new(105, e.to_string()));
    }
    let (state, _) = trace.state.kdniao();
    Ok(json!({
        "EBusinessID": ebusiness_id(req.tenant.id),
        "OrderCode": order_code,
        "ShipperCode": kdniao_shipper_code(&waybill.company),
        "LogisticCode": waybill.number,
        "Success": true,
        "Reason": reason,
        "State": state.to_string(),
        "Traces": super::trace_lines(&trace, false),
    }))
}

fn recognize(api: &Api, req: &Request) -> Result<Value, Refusal> {
    let number = text(&req.data, "LogisticCode").unwrap_or_default();
    let found = api.recognize(&number)?;
    let shippers: Vec<Value> = found
        .iter()
        .map(|c| json!({"ShipperCode": kdniao_shipper_code(&c.carrier), "ShipperName": c.name}))
        .collect();
    Ok(json!({
        "EBusinessID": ebusiness_id(req.tenant.id),
        "Success": true,
        "LogisticCode": number,
        "Shippers": shippers,
        "Code": "100",
    }))
}

async fn subscribe(api: &Api, req: &Request) -> Result<Value, Refusal> {
    let push_url = req.tenant.kdniao_push_url.clone().ok_or_else(|| {
        Refusal::new(
            104,
            "this account has no push address: set one with `waybill tenant kdniao-push-url`",
        )
    })?;
    let (company, waybill) = waybill(&req.data)?;
    let callback = text(&req.data, "Callback").unwrap_or_default();
    let order_code = text(&req.data, "OrderCode").unwrap_or_default();
    // No trace yet: the estimate counts from now on the carrier's (or the destination's)
    // learned times, or says nothing.
    let empty = waybill_core::model::Trace::from_events(&company, &waybill.number, vec![]);
    let eta = api.estimate(&company, &empty, waybill.to.as_deref()).await;
    let request = Subscribe {
        company: Some(company),
        guess_company: false,
        waybill,
        callback_url: push_url,
        // Pushes are signed with the AppKey, which is the tenant's key.
        salt: Some(req.tenant.key.clone()),
        dialect: super::NAME,
        dialect_params: subscription_params(req.request_type, &callback, &order_code),
        options: SubscribeOptions::default(),
    };
    let reason = match api.subscribe(&req.tenant, request).await {
        Ok(_) => "",
        // Subscribing again is not an error at Kdniao: the waybill stays monitored.
        Err(UseError::Duplicate { .. }) => "already monitored; pushes continue",
        Err(e) => return Err(e.into()),
    };
    Ok(json!({
        "EBusinessID": ebusiness_id(req.tenant.id),
        "UpdateTime": kdniao_time(api.now()),
        "Success": true,
        "Reason": reason,
        "EstimatedDeliveryTime": super::estimated_day(eta.as_ref()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_checked_on_the_data_as_sent_or_decoded_once_more() {
        let data =
            r#"{"ShipperCode":"YTO","LogisticCode":"YT1","Note":"' \" # & + < > 中文 \u4e2d"}"#;
        let sign = waybill_core::sign::kdniao_data_sign(data, "KEY");
        assert_eq!(signed_data(data, &sign, "KEY").as_deref(), Some(data));
        let twice: String = url::form_urlencoded::byte_serialize(data.as_bytes()).collect();
        assert_eq!(signed_data(&twice, &sign, "KEY").as_deref(), Some(data));
        let sign_twice: String = url::form_urlencoded::byte_serialize(sign.as_bytes()).collect();
        assert_eq!(signed_data(data, &sign_twice, "KEY").as_deref(), Some(data));
        assert_eq!(signed_data(data, &sign, "OTHER"), None);
        let tampered = data.replace("YT1", "YT2");
        assert_eq!(signed_data(&tampered, &sign, "KEY"), None);
    }

    #[test]
    fn addresses_join_province_city_and_district() {
        let data: Map<String, Value> = serde_json::from_str(
            r#"{"Receiver":{"ProvinceName":"广东省","CityName":"深圳市","ExpAreaName":"南山区","Address":"x"}}"#,
        )
        .expect("json");
        assert_eq!(
            area(&data, "Receiver").as_deref(),
            Some("广东省深圳市南山区")
        );
        assert_eq!(area(&data, "Sender"), None);
    }
}
