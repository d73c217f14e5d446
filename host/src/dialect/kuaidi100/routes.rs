//! kuaidi100's routes: `POST /poll` (subscribe), `POST /poll/query.do` (real-time query)
//! and `/autonumber/auto` (company detection).
//!
//! Every endpoint answers HTTP 200 with a kuaidi100 `returnCode`, whatever the input: a
//! malformed form, JSON or field gets its documented code and a message saying what was
//! wrong, never a 4xx/5xx from the framework.
//!
//! Subscribe return codes (kuaidi100's subscription document):
//! 200 submitted; 500 server error; 501 duplicate while the waybill is still polling, or
//! the waybill was already subscribed `[api] monthly_subscribe_limit` times (kuaidi100: 4)
//! this billing month;
//! 600 invalid key; 601 key expired; 700 unsupported company; 701 bad subscription data
//! (malformed form or JSON, empty or over-long number, bad or missing callback URL);
//! 702 company not recognisable from the number (`autoCom=1`).
//!
//! Real-time query codes: 200 (success shape); 400 incomplete or malformed data, or a
//! company no plugin serves; 408 the carrier wants a (matching) phone; 500 no result yet;
//! 501 carrier error; 502 carrier busy or too slow; 503 bad `sign` or unknown `customer`.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::Json;
use serde::Serialize;
use serde_json::{Map, Value};
use waybill_core::carrier::TrackError;
use waybill_core::model::Waybill;

use super::render::{kuaidi100_result, EtaAt};
use crate::api::limit::Endpoint;
use crate::api::usecase::{check_number, Subscribe, UseError, MAX_NUMBER_CHARS};
use crate::api::Api;
use crate::store::SubscribeOptions;

/// kuaidi100's `{result, returnCode, message}` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reply {
    /// True only for 200.
    pub result: bool,
    /// The kuaidi100 code, as a string.
    #[serde(rename = "returnCode")]
    pub return_code: &'static str,
    /// What happened, or what was wrong.
    pub message: String,
}

impl Reply {
    /// 502, kuaidi100's "server busy": the request was not handled and may be sent again.
    pub(crate) fn busy(message: String) -> Self {
        Self::new("502", message)
    }

    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            result: code == "200",
            return_code: code,
            message: message.into(),
        }
    }
}

/// The request's form fields ([`crate::api::form::fields`]); a refusal carries `bad`.
async fn form_fields(
    api: &Api,
    headers: &HeaderMap,
    uri: &Uri,
    body: Body,
    bad: &'static str,
) -> Result<HashMap<String, String>, Reply> {
    crate::api::form::fields(api, headers, uri, body, "schema=json&param=...")
        .await
        .map_err(|m| Reply::new(bad, m))
}

/// A text field of a JSON object: strings as they are (trimmed), numbers as written;
/// absent and `null` are `None`; anything else is an error naming the field.
fn text(obj: &Map<String, Value>, name: &str) -> Result<Option<String>, String> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
        // Only integers JSON holds exactly: 12345678901234567890123 would come back as
        // 1.2345678901234568e22, a number nobody sent.
        Some(Value::Number(n)) if n.is_u64() || n.is_i64() => Ok(Some(n.to_string())),
        Some(Value::Number(n)) => Err(format!(
            "`{name}` is the JSON number {n}, which cannot be kept exactly; send it as a string"
        )),
        Some(other) => Err(format!("`{name}` must be a string, not {}", kind_of(other))),
    }
}

/// A non-empty text field, or `None`.
fn non_empty(obj: &Map<String, Value>, name: &str) -> Result<Option<String>, String> {
    Ok(text(obj, name)?.filter(|s| !s.is_empty()))
}

/// A kuaidi100 on/off flag ("1"/"0", 1/0, true/false, "" or absent = off).
fn flag(obj: &Map<String, Value>, name: &str) -> Result<bool, String> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::Number(n)) if n.as_u64() == Some(1) => Ok(true),
        Some(Value::Number(n)) if n.as_u64() == Some(0) => Ok(false),
        Some(Value::String(s)) if matches!(s.trim(), "1" | "true") => Ok(true),
        Some(Value::String(s)) if matches!(s.trim(), "" | "0" | "false") => Ok(false),
        Some(other) => Err(format!("`{name}` must be \"1\" or \"0\", not {other}")),
    }
}

/// `resultv2`: 0 (or empty) to 8.
fn resultv2(obj: &Map<String, Value>) -> Result<u8, String> {
    match text(obj, "resultv2")? {
        None => Ok(0),
        Some(s) if s.is_empty() => Ok(0),
        Some(s) => s
            .parse::<u8>()
            .ok()
            .filter(|v| *v <= 8)
            .ok_or_else(|| format!("`resultv2` must be 0, 1, 4 or 8, not {s:?}")),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The `param` form field as a JSON object.
fn param_object(fields: &HashMap<String, String>) -> Result<Map<String, Value>, String> {
    let raw = fields
        .get("param")
        .filter(|p| !p.trim().is_empty())
        .ok_or("missing form field `param` (a JSON object)")?;
    match serde_json::from_str::<Value>(raw) {
        Ok(Value::Object(obj)) => Ok(obj),
        Ok(other) => Err(format!(
            "`param` must be a JSON object, not {}",
            kind_of(&other)
        )),
        Err(e) => Err(format!("`param` is not valid JSON: {e}")),
    }
}

/// An optional two-letter country code (`departureCountry`, `destinationCountry`), upper
/// cased.
fn country(obj: &Map<String, Value>, name: &str) -> Result<Option<String>, String> {
    match non_empty(obj, name)? {
        None => Ok(None),
        Some(c) if c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()) => {
            Ok(Some(c.to_ascii_uppercase()))
        }
        Some(c) => Err(format!(
            "`{name}` must be a two-letter country code such as CN or JP, not {c:?}"
        )),
    }
}

/// An optional company code (`departureCom`, `destinationCom`), lower cased.
fn company_code(obj: &Map<String, Value>, name: &str) -> Result<Option<String>, String> {
    match non_empty(obj, name)? {
        None => Ok(None),
        Some(c)
            if c.len() <= MAX_NUMBER_CHARS
                && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
        {
            Ok(Some(c.to_ascii_lowercase()))
        }
        Some(c) => Err(format!(
            "`{name}` must be a company code such as ems (letters, digits, _), not {c:?}"
        )),
    }
}

/// `POST /poll`: subscribe a waybill.
pub async fn subscribe(
    State(api): State<Api>,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Json<Reply> {
    let reply = match subscribe_inner(&api, &headers, &uri, body).await {
        Ok(reply) | Err(reply) => reply,
    };
    api.metrics().request("poll", reply.return_code);
    Json(reply)
}

/// A use case's refusal in kuaidi100's words, for the subscribe endpoint.
fn subscribe_refusal(e: UseError) -> Reply {
    match e {
        UseError::UnknownKey => Reply::new("600", format!("授权key错误: {e}")),
        UseError::Inactive(m) => Reply::new("601", format!("key已过期: {m}")),
        UseError::Busy(m) => Reply::busy(format!("服务器繁忙: {m}")),
        UseError::BadInput(m) => Reply::new("701", format!("订阅数据错误: {m}")),
        UseError::NoCompany => Reply::new(
            "700",
            "不支持的快递公司: `company` is empty; give it, or set parameters.autoCom=1",
        ),
        UseError::UnsupportedCompany { .. } => Reply::new("700", format!("不支持的快递公司: {e}")),
        UseError::Unrecognised(m) => {
            Reply::new("702", format!("识别不到该单号对应的快递公司: {m}"))
        }
        UseError::Duplicate { .. } | UseError::MonthlyLimit { .. } => {
            Reply::new("501", format!("重复订阅: {e}"))
        }
        UseError::Timeout(_) | UseError::Track(_) | UseError::Store(_) => {
            Reply::new("500", format!("服务器错误: {e}"))
        }
    }
}

async fn subscribe_inner(
    api: &Api,
    headers: &HeaderMap,
    uri: &Uri,
    body: Body,
) -> Result<Reply, Reply> {
    let bad = |m: String| Reply::new("701", format!("订阅数据错误: {m}"));
    let fields = form_fields(api, headers, uri, body, "701").await?;
    if let Some(schema) = fields.get("schema") {
        if !schema.trim().is_empty() && !schema.trim().eq_ignore_ascii_case("json") {
            return Err(bad(format!("`schema` must be json, not {schema:?}")));
        }
    }
    let mut param = param_object(&fields).map_err(bad)?;

    let key = non_empty(&param, "key")
        .map_err(bad)?
        .ok_or_else(|| Reply::new("600", "授权key错误: `key` is missing"))?;
    let tenant = api
        .tenant_by_key(&key, Endpoint::Subscribe)
        .await
        .map_err(subscribe_refusal)?;

    let parameters = match param.remove("parameters") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(p)) => p,
        Some(other) => {
            return Err(bad(format!(
                "`parameters` must be a JSON object, not {}",
                kind_of(&other)
            )))
        }
    };
    let number =
        check_number(text(&param, "number").map_err(bad)?, "number").map_err(subscribe_refusal)?;
    let auto_com = flag(&parameters, "autoCom").map_err(bad)?;
    let options = SubscribeOptions {
        resultv2: resultv2(&parameters).map_err(bad)?,
        auto_com,
        inter_com: flag(&parameters, "interCom").map_err(bad)?,
        departure_country: country(&parameters, "departureCountry").map_err(bad)?,
        departure_com: company_code(&parameters, "departureCom").map_err(bad)?,
        destination_country: country(&parameters, "destinationCountry").map_err(bad)?,
        destination_com: company_code(&parameters, "destinationCom").map_err(bad)?,
        // kuaidi100 has no reminder parameter: it pushes every change.
        reminders: Vec::new(),
    };
    let company = non_empty(&param, "company").map_err(bad)?;
    let callback = non_empty(&parameters, "callbackurl")
        .map_err(bad)?
        .ok_or_else(|| bad("`parameters.callbackurl` is missing".into()))?;
    let salt = text(&parameters, "salt").map_err(bad)?;
    let phone = match non_empty(&parameters, "phone").map_err(bad)? {
        Some(p) => Some(p),
        None => non_empty(&param, "phone").map_err(bad)?,
    };
    let waybill = Waybill {
        company: String::new(),
        number,
        phone,
        from: non_empty(&param, "from").map_err(bad)?,
        to: non_empty(&param, "to").map_err(bad)?,
    };
    let request = Subscribe {
        company,
        guess_company: auto_com,
        waybill,
        callback_url: callback,
        salt,
        dialect: super::NAME,
        dialect_params: Default::default(),
        options,
    };
    api.subscribe(&tenant, request)
        .await
        .map_err(subscribe_refusal)?;
    Ok(Reply::new("200", "提交成功"))
}

/// `POST /poll/query.do`: real-time query, signed with the tenant's key.
pub async fn query(
    State(api): State<Api>,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Json<Value> {
    match query_inner(&api, &headers, &uri, body).await {
        Ok(answer) => {
            api.metrics().request("query", "200");
            Json(answer)
        }
        Err(reply) => {
            api.metrics().request("query", reply.return_code);
            Json(serde_json::to_value(reply).unwrap_or_default())
        }
    }
}

fn bad_query(m: String) -> Reply {
    Reply::new("400", format!("数据不完整: {m}"))
}

/// A use case's refusal in kuaidi100's words, for the real-time query.
fn query_refusal(e: UseError) -> Reply {
    match e {
        UseError::UnknownKey => Reply::new("503", format!("验证签名失败: {e}")),
        UseError::Inactive(m) => Reply::new("601", format!("key已过期: {m}")),
        UseError::Busy(m) => Reply::busy(format!("服务器繁忙: {m}")),
        UseError::BadInput(m) => Reply::new("400", format!("数据不完整: {m}")),
        UseError::UnsupportedCompany { .. } => Reply::new("400", format!("找不到对应公司: {e}")),
        UseError::Timeout(_) => Reply::new("502", format!("服务器繁忙: {e}")),
        UseError::Track(e) => track_error_reply(&e),
        UseError::NoCompany => bad_query("`com` (the company code) is missing".into()),
        UseError::Unrecognised(_)
        | UseError::Duplicate { .. }
        | UseError::MonthlyLimit { .. }
        | UseError::Store(_) => Reply::new("501", format!("服务器错误: {e}")),
    }
}

async fn query_inner(
    api: &Api,
    headers: &HeaderMap,
    uri: &Uri,
    body: Body,
) -> Result<Value, Reply> {
    let bad = bad_query;
    let fields = form_fields(api, headers, uri, body, "400").await?;
    let field = |name: &str| {
        fields
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| bad(format!("missing form field `{name}`")))
    };
    let customer = field("customer")?;
    let sign = field("sign")?;
    let raw_param = fields
        .get("param")
        .filter(|p| !p.trim().is_empty())
        .ok_or_else(|| bad("missing form field `param`".into()))?;
    let tenant = match api.tenant_by_customer(customer).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            return Err(Reply::new(
                "503",
                "验证签名失败: no tenant has this `customer`",
            ))
        }
        Err(e) => return Err(Reply::new("501", format!("服务器错误: {e}"))),
    };
    let want = waybill_core::sign::kuaidi100_query_sign(raw_param, &tenant.key, customer);
    if !want.eq_ignore_ascii_case(sign) {
        return Err(Reply::new(
            "503",
            "验证签名失败: `sign` must be upper-case MD5(param + key + customer)",
        ));
    }
    api.admit(&tenant, Endpoint::Query).map_err(query_refusal)?;
    let param = param_object(&fields).map_err(bad)?;
    let number = check_number(text(&param, "num").map_err(bad)?, "num").map_err(query_refusal)?;
    let com = non_empty(&param, "com")
        .map_err(bad)?
        .ok_or_else(|| bad("`com` (the company code) is missing".into()))?;
    let company = api
        .resolve_company(Some(&com), &number, false)
        .map_err(query_refusal)?;
    let resultv2 = resultv2(&param).map_err(bad)?;
    let oldest_first = order_oldest_first(&param).map_err(bad)?;
    let waybill = Waybill {
        company,
        number,
        phone: non_empty(&param, "phone").map_err(bad)?,
        from: non_empty(&param, "from").map_err(bad)?,
        to: non_empty(&param, "to").map_err(bad)?,
    };
    let trace = api.query(&tenant, &waybill).await.map_err(query_refusal)?;
    let estimate = if resultv2 >= 8 {
        api.estimate(&waybill.company, &trace, waybill.to.as_deref())
            .await
    } else {
        None
    };
    let eta = estimate.as_ref().map(|estimate| EtaAt {
        estimate,
        now: api.now(),
    });
    let mut answer = kuaidi100_result(
        &trace,
        resultv2,
        waybill.from.as_deref(),
        waybill.to.as_deref(),
        eta,
    );
    // kuaidi100 lists events newest first unless the query asks for `"order": "asc"`
    // (its SDKs expose the field).
    if oldest_first {
        if let Some(Value::Array(data)) = answer.get_mut("data") {
            data.reverse();
        }
    }
    Ok(answer)
}

/// Whether the query's `order` asks for the oldest event first (`asc`); `desc`, empty or
/// absent is newest first.
fn order_oldest_first(param: &Map<String, Value>) -> Result<bool, String> {
    match non_empty(param, "order")?.map(|o| o.to_ascii_lowercase()) {
        None => Ok(false),
        Some(o) if o == "desc" => Ok(false),
        Some(o) if o == "asc" => Ok(true),
        Some(o) => Err(format!("`order` must be asc or desc, not {o:?}")),
    }
}

fn track_error_reply(e: &TrackError) -> Reply {
    match e {
        TrackError::NotFound { .. } => {
            Reply::new("500", format!("查询无结果，请隔段时间再查: {e}"))
        }
        TrackError::RateLimited { .. } | TrackError::Transient { .. } => {
            Reply::new("502", format!("服务器繁忙: {e}"))
        }
        TrackError::InvalidInput { message } if message.to_ascii_lowercase().contains("phone") => {
            Reply::new("408", format!("手机号码校验失败: {e}"))
        }
        TrackError::InvalidInput { .. } | TrackError::Unsupported { .. } => {
            Reply::new("400", format!("数据不完整: {e}"))
        }
        TrackError::Unauthorized { .. } | TrackError::BadResponse { .. } => {
            Reply::new("501", format!("服务器错误: {e}"))
        }
    }
}

/// One entry of kuaidi100's auto-detect answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AutoNumber {
    /// Company code.
    #[serde(rename = "comCode")]
    pub com_code: String,
    /// Company name.
    pub name: String,
    /// Length of the (normalised) number.
    #[serde(rename = "lengthPre")]
    pub length_pre: usize,
    /// Its first characters (up to 4).
    #[serde(rename = "noPre")]
    pub no_pre: String,
    /// The guesser's rank score (higher is likelier); kuaidi100 puts a sample count here.
    #[serde(rename = "noCount")]
    pub no_count: u32,
}

/// `GET|POST /autonumber/auto?num=…&key=…`: candidate companies, best first.
pub async fn autonumber(
    State(api): State<Api>,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Json<Value> {
    let answer = match autonumber_inner(&api, &headers, &uri, body).await {
        Ok(list) => {
            api.metrics().request("autonumber", "200");
            serde_json::to_value(list).unwrap_or_default()
        }
        Err(reply) => {
            api.metrics().request("autonumber", reply.return_code);
            serde_json::to_value(reply).unwrap_or_default()
        }
    };
    Json(answer)
}

async fn autonumber_inner(
    api: &Api,
    headers: &HeaderMap,
    uri: &Uri,
    body: Body,
) -> Result<Vec<AutoNumber>, Reply> {
    let refusal = |e: UseError| match e {
        UseError::UnknownKey => Reply::new("600", format!("授权key错误: {e}")),
        UseError::Inactive(m) => Reply::new("601", format!("key已过期: {m}")),
        UseError::Busy(m) => Reply::busy(format!("服务器繁忙: {m}")),
        UseError::Store(m) => Reply::new("500", format!("服务器错误: {m}")),
        e => Reply::new("400", format!("数据不完整: {e}")),
    };
    let fields = form_fields(api, headers, uri, body, "400").await?;
    let key = fields
        .get("key")
        .map(|k| k.trim())
        .filter(|k| !k.is_empty())
        .ok_or_else(|| Reply::new("600", "授权key错误: `key` is missing"))?;
    api.tenant_by_key(key, Endpoint::Autonumber)
        .await
        .map_err(refusal)?;
    let num = fields.get("num").map(|n| n.as_str()).unwrap_or("");
    Ok(api
        .recognize(num)
        .map_err(refusal)?
        .into_iter()
        .map(|c| AutoNumber {
            com_code: c.carrier,
            name: c.name,
            length_pre: c.normalized.chars().count(),
            no_pre: c.normalized.chars().take(4).collect(),
            no_count: c.score,
        })
        .collect())
}
