//! kuaidi100-dialect handlers: `POST /poll` (subscribe), `POST /poll/query.do` (real-time
//! query) and `/autonumber/auto` (company detection).
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

use axum::body::{to_bytes, Body};
use axum::extract::State;
use axum::http::{header, HeaderMap, Uri};
use axum::Json;
use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Map, Value};
use waybill_core::carrier::TrackError;
use waybill_core::model::{Trace, Waybill};

use super::limit::Endpoint;
use super::Api;
use crate::dialect::kuaidi100::{self as dialect, render::kuaidi100_result};
use crate::push::callback_allowed;
use crate::store::{
    billing_month, MonitorStatus, NewSubscription, SubscribeOptions, SubscribeOutcome,
    SubscriptionFilter,
};

/// Longest tracking number kuaidi100 accepts.
pub const MAX_NUMBER_CHARS: usize = 32;

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

/// Reads the request's form fields: the URL query, then the urlencoded body (body fields
/// win). Refuses bodies over the limit and JSON or multipart bodies, which kuaidi100 does
/// not accept either.
async fn form_fields(
    api: &Api,
    headers: &HeaderMap,
    uri: &Uri,
    body: Body,
    bad: &'static str,
) -> Result<HashMap<String, String>, Reply> {
    let limit = api.inner.config.max_body_bytes;
    let bytes = to_bytes(body, limit).await.map_err(|_| {
        Reply::new(
            bad,
            format!("request body is larger than {limit} bytes or could not be read"),
        )
    })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if !bytes.is_empty()
        && (content_type.starts_with("application/json") || content_type.starts_with("multipart/"))
    {
        return Err(Reply::new(
            bad,
            format!(
                "the body must be application/x-www-form-urlencoded (schema=json&param=...), \
                 not {content_type}"
            ),
        ));
    }
    let mut fields: HashMap<String, String> = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    fields.extend(url::form_urlencoded::parse(&bytes).into_owned());
    Ok(fields)
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

/// A tracking number as given: trimmed, not empty, at most 32 characters, no control
/// characters.
fn check_number(number: Option<String>, field: &str) -> Result<String, String> {
    let number = number.unwrap_or_default();
    if number.is_empty() {
        return Err(format!("`{field}` (the tracking number) is empty"));
    }
    let chars = number.chars().count();
    if chars > MAX_NUMBER_CHARS {
        return Err(format!(
            "`{field}` is {chars} characters long; the limit is {MAX_NUMBER_CHARS}"
        ));
    }
    if let Some(c) = number.chars().find(|c| c.is_control()) {
        return Err(format!(
            "`{field}` contains control character U+{:04X}",
            c as u32
        ));
    }
    Ok(number)
}

/// Refuses a number no carrier could track: tracking numbers are ASCII letters, digits
/// and dashes, so a space, a quote, an emoji or an invisible character (bidi control,
/// zero-width space, byte-order mark) means the number was mangled on its way here, and
/// polling it for days would find nothing. The reason names the character.
fn check_trackable(number: &str, field: &str) -> Result<(), String> {
    let Some((at, c)) = number
        .chars()
        .enumerate()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '-'))
    else {
        return Ok(());
    };
    let what = match c {
        ' ' => "a space".to_owned(),
        c if c.is_ascii() => format!("{c:?}"),
        '\u{200E}'
        | '\u{200F}'
        | '\u{061C}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2066}'..='\u{2069}' => {
            format!("U+{:04X} (an invisible bidi control)", c as u32)
        }
        '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{00AD}' => {
            format!("U+{:04X} (an invisible zero-width character)", c as u32)
        }
        '\u{FF01}'..='\u{FF5E}' => format!(
            "U+{:04X} {c:?} (a full-width form of {:?})",
            c as u32,
            char::from_u32(c as u32 - 0xFEE0).unwrap_or(c)
        ),
        c if c.is_whitespace() => format!("U+{:04X} (white space)", c as u32),
        c => format!("U+{:04X} {c:?}", c as u32),
    };
    Err(format!(
        "`{field}` contains {what} at character {}: no carrier can track it; a tracking \
         number is ASCII letters, digits and '-'",
        at + 1
    ))
}

impl Api {
    /// The canonical code of `company` if a loaded carrier serves it.
    fn served_company(&self, company: &str) -> Option<String> {
        let lower = company.trim().to_ascii_lowercase();
        let resolved = self
            .inner
            .guesser
            .catalog()
            .resolve(&lower)
            .map(str::to_owned);
        [resolved, Some(lower)]
            .into_iter()
            .flatten()
            .find(|c| self.inner.engine.knows_company(c))
    }

    /// The guesser's best candidate for `number` that a loaded carrier serves.
    fn guess_served_company(&self, number: &str) -> Result<String, String> {
        let candidates = self
            .inner
            .guesser
            .guess(number)
            .map_err(|e| e.to_string())?;
        if let Some(c) = candidates
            .iter()
            .find(|c| self.inner.engine.knows_company(c.carrier))
        {
            return Ok(c.carrier.to_owned());
        }
        let names: Vec<&str> = candidates.iter().map(|c| c.carrier).take(5).collect();
        Err(if names.is_empty() {
            format!("no known carrier format matches number {number:?}")
        } else {
            format!(
                "number {number:?} looks like {} but no loaded carrier plugin serves {}",
                names.join(", "),
                if names.len() == 1 { "it" } else { "them" }
            )
        })
    }

    fn served_list(&self) -> String {
        let codes = self.inner.engine.companies();
        if codes.is_empty() {
            "none; no carrier plugin is loaded".into()
        } else {
            codes.join(", ")
        }
    }
}

/// 601 for a key that is disabled or expired at `now`: asked before anything else is
/// done for it, so such a key reaches no carrier and counts no usage on any endpoint.
fn refuse_inactive(tenant: &crate::store::Tenant, now: Timestamp) -> Result<(), Reply> {
    if tenant.active_at(now) {
        return Ok(());
    }
    Err(Reply::new(
        "601",
        match tenant.expires_at {
            _ if tenant.disabled => "key已过期: this key has been disabled".to_owned(),
            Some(end) => format!("key已过期: this key expired at {end}"),
            None => "key已过期".to_owned(),
        },
    ))
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
    let tenant = match api.inner.tenants.by_key(&key).await {
        Ok(Some(t)) => t,
        Ok(None) => return Err(Reply::new("600", "授权key错误: no tenant has this key")),
        Err(e) => return Err(Reply::new("500", format!("服务器错误: {e}"))),
    };
    let now = api.now();
    refuse_inactive(&tenant, now)?;
    api.throttle(Endpoint::Subscribe, tenant.id)?;

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
    let number = check_number(text(&param, "number").map_err(bad)?, "number").map_err(bad)?;
    check_trackable(&number, "number").map_err(bad)?;
    let auto_com = flag(&parameters, "autoCom").map_err(bad)?;
    let inter_com = flag(&parameters, "interCom").map_err(bad)?;
    let departure_country = country(&parameters, "departureCountry").map_err(bad)?;
    let destination_country = country(&parameters, "destinationCountry").map_err(bad)?;
    let departure_com = company_code(&parameters, "departureCom").map_err(bad)?;
    let destination_com = company_code(&parameters, "destinationCom").map_err(bad)?;
    let resultv2 = resultv2(&parameters).map_err(bad)?;
    let company = match non_empty(&param, "company").map_err(bad)? {
        Some(company) => api.served_company(&company).ok_or_else(|| {
            Reply::new(
                "700",
                format!(
                    "不支持的快递公司: no loaded carrier plugin serves `{company}` (served: {})",
                    api.served_list()
                ),
            )
        })?,
        None if auto_com => api
            .guess_served_company(&number)
            .map_err(|m| Reply::new("702", format!("识别不到该单号对应的快递公司: {m}")))?,
        None => {
            return Err(Reply::new(
                "700",
                "不支持的快递公司: `company` is empty; give it, or set parameters.autoCom=1",
            ))
        }
    };
    let callback = non_empty(&parameters, "callbackurl")
        .map_err(bad)?
        .ok_or_else(|| bad("`parameters.callbackurl` is missing".into()))?;
    callback_allowed(&callback, api.inner.config.allow_private_callbacks)
        .await
        .map_err(|e| bad(e.to_string()))?;
    let salt = text(&parameters, "salt").map_err(bad)?;
    let phone = match non_empty(&parameters, "phone").map_err(bad)? {
        Some(p) => Some(p),
        None => non_empty(&param, "phone").map_err(bad)?,
    };
    let from = non_empty(&param, "from").map_err(bad)?;
    let to = non_empty(&param, "to").map_err(bad)?;

    let waybill = Waybill {
        company,
        number,
        phone,
        from,
        to,
    };
    let next_check_at = api.inner.engine.first_check_at(&waybill, now);
    let (company, number) = (waybill.company.clone(), waybill.number.clone());
    let sub = NewSubscription {
        tenant_id: tenant.id,
        company: waybill.company,
        number: waybill.number,
        phone: waybill.phone,
        from: waybill.from,
        to: waybill.to,
        callback_url: callback,
        salt,
        dialect: dialect::NAME.into(),
        options: SubscribeOptions {
            resultv2,
            auto_com,
            inter_com,
            departure_country,
            departure_com,
            destination_country,
            destination_com,
        },
        next_check_at,
        created_at: now,
    };
    match api.inner.batcher.subscribe(sub).await {
        Ok(SubscribeOutcome::Created { .. }) => Ok(Reply::new("200", "提交成功")),
        // The row id stays out of the message: it is a counter over every tenant.
        Ok(SubscribeOutcome::Duplicate { .. }) => Err(Reply::new(
            "501",
            format!(
                "重复订阅: {company} {number} is still being polled; subscribe again after its \
                 shutdown or abort push"
            ),
        )),
        Ok(SubscribeOutcome::MonthlyLimit { subscribes, limit }) => Err(Reply::new(
            "501",
            format!(
                "重复订阅: {company} {number} was already subscribed {subscribes} times in \
                 billing month {} (UTC+8); the monthly limit of {limit} subscriptions per \
                 waybill is reached, subscribe it again next month",
                billing_month(now)
            ),
        )),
        Err(e) => Err(Reply::new("500", format!("服务器错误: {e}"))),
    }
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

async fn query_inner(
    api: &Api,
    headers: &HeaderMap,
    uri: &Uri,
    body: Body,
) -> Result<Value, Reply> {
    let bad = |m: String| Reply::new("400", format!("数据不完整: {m}"));
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
    let tenant = match api.inner.tenants.by_customer(customer).await {
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
    refuse_inactive(&tenant, api.now())?;
    api.throttle(Endpoint::Query, tenant.id)?;
    let param = param_object(&fields).map_err(bad)?;
    let number = check_number(text(&param, "num").map_err(bad)?, "num").map_err(bad)?;
    let com = non_empty(&param, "com")
        .map_err(bad)?
        .ok_or_else(|| bad("`com` (the company code) is missing".into()))?;
    let company = api.served_company(&com).ok_or_else(|| {
        Reply::new(
            "400",
            format!(
                "找不到对应公司: no loaded carrier plugin serves `{com}` (served: {})",
                api.served_list()
            ),
        )
    })?;
    let resultv2 = resultv2(&param).map_err(bad)?;
    let oldest_first = order_oldest_first(&param).map_err(bad)?;
    let waybill = Waybill {
        company: company.clone(),
        number: number.clone(),
        phone: non_empty(&param, "phone").map_err(bad)?,
        from: non_empty(&param, "from").map_err(bad)?,
        to: non_empty(&param, "to").map_err(bad)?,
    };

    let now = api.now();
    if let Err(e) = api
        .store()
        .record_usage(tenant.id, &company, &number, now)
        .await
    {
        return Err(Reply::new("501", format!("服务器错误: {e}")));
    }
    let trace = find_trace(api, tenant.id, &waybill, now).await?;
    let mut answer = kuaidi100_result(
        &trace,
        resultv2,
        waybill.from.as_deref(),
        waybill.to.as_deref(),
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

/// The trace to answer with: the tenant's stored trace or the memory cache when fresh,
/// otherwise the carrier's answer within the query timeout (then cached).
async fn find_trace(
    api: &Api,
    tenant: i64,
    waybill: &Waybill,
    now: Timestamp,
) -> Result<Trace, Reply> {
    let fresh_for = api.inner.config.query_fresh_for;
    let subs = api
        .store()
        .list_subscriptions(&SubscriptionFilter {
            tenant_id: Some(tenant),
            company: Some(waybill.company.clone()),
            number: Some(waybill.number.clone()),
            ..SubscriptionFilter::default()
        })
        .await
        .map_err(|e| Reply::new("501", format!("服务器错误: {e}")))?;
    if let Some(sub) = subs.last() {
        let fresh = sub
            .last_check_at
            .is_some_and(|at| now.duration_since(at) < fresh_for);
        let ended = sub.status != MonitorStatus::Polling;
        if sub.event_count > 0 && (fresh || ended) {
            if let Ok(Some(trace)) = api.store().trace(sub.id).await {
                api.metrics().query("stored");
                return Ok(trace);
            }
        }
    }
    let cache_key = (
        waybill.company.clone(),
        format!(
            "{}\n{}",
            waybill.number,
            waybill.phone.as_deref().unwrap_or("")
        ),
    );
    if let Ok(cache) = api.inner.query_cache.lock() {
        if let Some((trace, at)) = cache.get(&cache_key) {
            if now.duration_since(*at) < fresh_for {
                api.metrics().query("cache");
                return Ok(trace.clone());
            }
        }
    }
    // The memory cache is empty after a restart; the stored answer is not.
    match api.store().cached_query(&cache_key.0, &cache_key.1).await {
        Ok(Some((trace, at))) if now.duration_since(at) < fresh_for => {
            api.metrics().query("cache");
            remember(api, cache_key, &trace, at, now);
            return Ok(trace);
        }
        Ok(_) => {}
        // A broken cache must not stop the query: ask the carrier instead.
        Err(e) => tracing::warn!(error = %e, "cannot read the stored query answer"),
    }
    // The API's own carrier list says what it serves; the request goes through the
    // engine's gate, the one limit on traffic to each carrier.
    api.inner.carriers.get(&waybill.company).ok_or_else(|| {
        Reply::new(
            "400",
            format!("找不到对应公司: `{}` has no carrier", waybill.company),
        )
    })?;
    let timeout = std::time::Duration::try_from(api.inner.config.query_timeout)
        .unwrap_or(std::time::Duration::from_secs(3));
    let outcome = match tokio::time::timeout(
        timeout,
        api.inner
            .engine
            .track(&waybill.company, std::slice::from_ref(waybill)),
    )
    .await
    {
        Ok(mut outcomes) => outcomes.pop().unwrap_or_else(|| {
            Err(TrackError::BadResponse {
                message: "the carrier gave no answer for the waybill".into(),
            })
        }),
        Err(_) => {
            return Err(Reply::new(
                "502",
                format!(
                    "服务器繁忙: the carrier did not answer within {:#}",
                    api.inner.config.query_timeout
                ),
            ))
        }
    };
    match outcome {
        // `Engine::track` already gave every line its place, as for a scheduled check.
        Ok(trace) => {
            api.metrics().query("carrier");
            if let Err(e) = api
                .store()
                .save_query(&cache_key.0, &cache_key.1, &trace, now)
                .await
            {
                tracing::warn!(error = %e, "cannot store the query answer");
            }
            remember(api, cache_key, &trace, now, now);
            Ok(trace)
        }
        Err(e) => Err(track_error_reply(&e)),
    }
}

/// Keeps a query answer fetched at `at` in the memory cache, making room if it is full.
fn remember(api: &Api, key: (String, String), trace: &Trace, at: Timestamp, now: Timestamp) {
    let fresh_for = api.inner.config.query_fresh_for;
    let entries = api.inner.config.query_cache_entries;
    if let Ok(mut cache) = api.inner.query_cache.lock() {
        if cache.len() >= entries {
            cache.retain(|_, (_, at)| now.duration_since(*at) < fresh_for);
            if cache.len() >= entries {
                cache.clear();
            }
        }
        if entries > 0 {
            cache.insert(key, (trace.clone(), at));
        }
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
    let fields = form_fields(api, headers, uri, body, "400").await?;
    let key = fields
        .get("key")
        .map(|k| k.trim())
        .filter(|k| !k.is_empty())
        .ok_or_else(|| Reply::new("600", "授权key错误: `key` is missing"))?;
    match api.inner.tenants.by_key(key).await {
        Ok(Some(tenant)) => {
            refuse_inactive(&tenant, api.now())?;
            api.throttle(Endpoint::Autonumber, tenant.id)?;
        }
        Ok(None) => return Err(Reply::new("600", "授权key错误: no tenant has this key")),
        Err(e) => return Err(Reply::new("500", format!("服务器错误: {e}"))),
    }
    let num = fields.get("num").map(|n| n.trim()).unwrap_or("");
    let bad = |m: String| Reply::new("400", format!("数据不完整: {m}"));
    let number = check_number(Some(num.to_owned()), "num").map_err(bad)?;
    let normalized = waybill_core::guess::canonical(&number).map_err(|e| bad(e.to_string()))?;
    let guesser = api.inner.guesser;
    let candidates = guesser.guess(&number).map_err(|e| bad(e.to_string()))?;
    let mut seen = std::collections::HashSet::new();
    Ok(candidates
        .iter()
        .filter(|c| seen.insert(c.carrier))
        .map(|c| AutoNumber {
            com_code: c.carrier.to_owned(),
            name: guesser
                .catalog()
                .get(c.carrier)
                .map(|e| e.name_zh.clone())
                .unwrap_or_else(|| c.carrier.to_owned()),
            length_pre: normalized.chars().count(),
            no_pre: normalized.chars().take(4).collect(),
            no_count: c.score,
        })
        .collect())
}
