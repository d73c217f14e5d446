//! The native API's routes under `/v1`: JSON in and out, `Authorization: Bearer <key>`,
//! `Idempotency-Key` on every POST, errors as RFC 9457 problems. The OpenAPI 3.1
//! document at `/v1/openapi.json` is generated from these handlers' annotations.
//!
//! Handlers read their bodies, paths and queries themselves, so a bad request of any kind
//! is answered with a problem that says what was wrong, never with a framework rejection.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::{RawPathParams, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use waybill_core::model::{Trace, Waybill};
use waybill_core::policy::SubscriptionFacts;
use waybill_core::problem::Flag;
use waybill_core::state::Phase;

use super::idempotency::{Answer, Keys};
use super::problem::Problem;
use super::{Eta, ProblemFlag, Tracking, WebhookEvent, WebhookSecret, WebhookSecrets, NAME};
use crate::api::limit::Endpoint as Limited;
use crate::api::usecase::{check_number, Subscribe};
use crate::api::Api;
use crate::problems::parse_kind;
use crate::store::{
    billing_month, DialectParams, MonitorStatus, Retrack, SubscribeOptions, Subscription,
    SubscriptionFilter, Tenant,
};
use waybill_core::reminder::Reminder;

/// Largest request body read (a batch of 1,000 trackings fits).
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// Most trackings in one batch.
pub const MAX_BATCH: usize = 1_000;

/// Trackings on one page of the list unless `limit` says otherwise, and the most it may.
pub const PAGE: (usize, usize) = (50, 200);

/// Most subscriptions one list request reads before it answers with what it found and a
/// cursor to go on from (so a rare filter cannot make one request scan the whole store).
pub const SCAN_LIMIT: usize = 5_000;

/// What the routes share besides the API.
#[derive(Default)]
struct Shared {
    keys: Keys,
    /// Held while a tenant's first secret is made, so two first uses make one.
    secrets: tokio::sync::Mutex<()>,
}

type Ctx = (State<Api>, Extension<Arc<Shared>>);

/// The routes, nested under `/v1`; anything else there is a 404 problem.
pub fn router() -> Router<Api> {
    let v1 = Router::new()
        .route("/trackings", post(create).get(list))
        .route("/trackings/{id}", get(show))
        .route("/trackings/{id}/stop", post(stop))
        .route("/trackings/{id}/retrack", post(retrack))
        .route("/carriers", get(carriers))
        .route("/detect", post(detect))
        .route("/usage", get(usage))
        .route("/webhook-secret", get(secret))
        .route("/webhook-secret/rotate", post(rotate))
        .route("/webhook-endpoints", get(endpoints))
        .route("/webhook-endpoints/enable", post(enable))
        .route("/openapi.json", get(openapi))
        .fallback(no_route)
        .method_not_allowed_fallback(no_method)
        .layer(Extension(Arc::new(Shared::default())));
    Router::new().nest("/v1", v1)
}

async fn no_route(uri: Uri) -> Problem {
    Problem::not_found(format!(
        "no /v1 operation at {}; /v1/openapi.json lists them",
        uri.path()
    ))
}

async fn no_method(method: Method, uri: Uri) -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        format!(
            "{} does not take {method}; /v1/openapi.json lists its operations",
            uri.path()
        ),
    )
}

/// The OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "waybill native API",
        description = "Subscribe waybills, read their normalized traces and problems, and \
                       receive Standard Webhooks pushes of every change."
    ),
    paths(
        create, list, show, stop, retrack, carriers, detect, usage, secret, rotate, endpoints,
        enable
    ),
    components(schemas(
        Tracking, ProblemFlag, Eta, Problem, NewTracking, Batch, TrackingRequest, BatchAnswer,
        BatchItem, Page, Carrier, Carriers, Detect, Detected, Candidate, Usage, Secrets,
        WebhookSecret, WebhookEvent, Endpoints, Endpoint, Enable
    )),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

async fn openapi() -> Response {
    Json(ApiDoc::openapi()).into_response()
}

/// One waybill to track.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTracking {
    /// The tracking number: ASCII letters, digits and '-'.
    #[schema(min_length = 1, max_length = 32, pattern = "^[A-Za-z0-9-]+$")]
    pub number: String,
    /// Carrier code or alias (`shunfeng`, `SF`); guessed from the number when absent.
    #[serde(default)]
    pub carrier: Option<String>,
    /// Where webhooks of this tracking go; absent: none (read it through the API).
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// Recipient's phone (some carriers want its last digits).
    #[serde(default)]
    pub phone: Option<String>,
    /// Origin address.
    #[serde(default)]
    pub origin: Option<String>,
    /// Destination address (`广东省深圳市南山区`), for polling more often near it.
    #[serde(default)]
    pub destination: Option<String>,
    /// Node reminders: send webhooks only when the parcel reaches one of these moments
    /// (and when monitoring ends); absent or empty: a webhook for every change.
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>, example = json!(["out_for_delivery", "signed"]))]
    pub reminders: Option<Vec<Reminder>>,
}

/// Several waybills to track.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    /// 1 to 1,000 trackings.
    #[schema(min_items = 1, max_items = 1000)]
    pub trackings: Vec<NewTracking>,
}

/// The body of `POST /v1/trackings`: one tracking, or a batch.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum TrackingRequest {
    /// One: answered 201 with the tracking.
    One(NewTracking),
    /// A batch: answered 200 with one result per item, in order.
    Many(Batch),
}

/// The answer to a batch: one item per tracking asked for, in order.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BatchAnswer {
    /// Results, in request order.
    pub results: Vec<BatchItem>,
}

/// One batch result: the tracking made, or why not.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BatchItem {
    /// The tracking, when it was made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracking: Option<Tracking>,
    /// Why it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<Problem>,
}

/// A page of trackings.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Page {
    /// The trackings, by id.
    pub data: Vec<Tracking>,
    /// Pass as `cursor` for the next page; null: no more.
    pub next_cursor: Option<String>,
}

/// A carrier this daemon tracks.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Carrier {
    /// Code, as `carrier` takes it.
    pub code: String,
    /// Chinese name.
    pub name: String,
    /// English name.
    pub name_en: String,
}

/// The carriers this daemon tracks.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Carriers {
    /// The carriers with a plugin of their own, by code.
    pub carriers: Vec<Carrier>,
    /// Company codes tracked through the upstream aggregator (`[engine] upstream`).
    pub through_upstream: Vec<String>,
}

/// A number whose carrier is wanted.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Detect {
    /// The tracking number.
    #[schema(min_length = 1, max_length = 32)]
    pub number: String,
}

/// The carriers a number may belong to.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Detected {
    /// The number as read (upper case, no separators).
    pub normalized: String,
    /// Candidates, likeliest first.
    pub candidates: Vec<Candidate>,
}

/// One candidate carrier.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Candidate {
    /// Code.
    pub carrier: String,
    /// Name.
    pub name: String,
    /// Rank score; higher is likelier.
    pub score: u32,
    /// Whether this daemon can track it.
    pub served: bool,
}

/// A month's usage.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Usage {
    /// Billing month, `YYYY-MM` at UTC+8.
    pub month: String,
    /// Distinct waybills subscribed in it.
    pub waybills: u64,
}

/// The secrets that sign webhooks now, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Secrets {
    /// Every one valid now; a receiver accepts a push signed by any.
    pub secrets: Vec<WebhookSecret>,
}

/// The tenant a request's `Authorization: Bearer` key names, admitted to `endpoint`.
async fn tenant(api: &Api, headers: &HeaderMap, endpoint: Limited) -> Result<Arc<Tenant>, Problem> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim();
    let key = value
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim())
        .filter(|key| !key.is_empty())
        .ok_or_else(|| {
            Problem::unauthorized("send the tenant's key as `Authorization: Bearer <key>`")
        })?;
    Ok(api.tenant_by_key(key, endpoint).await?)
}

/// The body, at most [`MAX_BODY_BYTES`].
async fn bytes(body: Body) -> Result<axum::body::Bytes, Problem> {
    to_bytes(body, MAX_BODY_BYTES).await.map_err(|_| {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "The request body is too large",
            format!("the body is larger than {MAX_BODY_BYTES} bytes or could not be read"),
        )
    })
}

/// The body as `T`: 400 when it is not JSON, 422 when it is JSON of another shape.
fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Problem> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| Problem::malformed(format!("the body is not JSON: {e}")))?;
    serde_json::from_value(value).map_err(|e| Problem::invalid(format!("the body {e}")))
}

/// The subscription `raw` (the `{id}` path segment) names, if it is `tenant`'s.
async fn owned(
    api: &Api,
    tenant: &Tenant,
    params: &RawPathParams,
) -> Result<Subscription, Problem> {
    let raw = params
        .iter()
        .find(|(k, _)| *k == "id")
        .map_or("", |(_, v)| v);
    let missing = || Problem::not_found(format!("you have no tracking {raw:?}"));
    let id = api
        .store()
        .tracking_row(raw, tenant.id)
        .ok_or_else(missing)?;
    match api.store().subscription(id).await? {
        Some(sub) if sub.tenant_id == tenant.id => Ok(sub),
        _ => Err(missing()),
    }
}

/// `sub` as the API shows it: its stored trace and, while it is polled, its problems.
async fn view(api: &Api, sub: &Subscription) -> Result<Tracking, Problem> {
    let trace = api
        .store()
        .trace(sub.id)
        .await?
        .unwrap_or_else(|| Trace::from_events(&sub.company, &sub.number, Vec::new()));
    let problems = problems(api, sub, &trace);
    let eta = if sub.status == MonitorStatus::Polling {
        api.estimate(&sub.company, &trace, sub.to.as_deref()).await
    } else {
        None
    };
    Ok(Tracking::new(sub, &trace, Some(&problems), eta.as_ref()))
}

fn problems(api: &Api, sub: &Subscription, trace: &Trace) -> Vec<Flag> {
    if sub.status != MonitorStatus::Polling {
        return Vec::new();
    }
    let facts = SubscriptionFacts {
        company: &sub.company,
        number: &sub.number,
        subscribed_at: sub.created_at,
        to: sub.to.as_deref(),
    };
    api.flags(trace, &facts)
}

/// The tenant's signing secrets, made on first use. The copy the tenant cache holds
/// answers while it has a valid secret (a rotation made by another daemon is seen within
/// the cache's TTL); otherwise the store is read under the lock, so two first uses make
/// one secret.
async fn secrets_of(
    api: &Api,
    shared: &Shared,
    tenant: &Tenant,
) -> Result<WebhookSecrets, Problem> {
    let cached = WebhookSecrets::parse(tenant.webhook_secrets.as_deref());
    if cached.valid_at(api.now()).next().is_some() {
        return Ok(cached);
    }
    let _one = shared.secrets.lock().await;
    stored_secrets(api, tenant.id).await
}

/// The tenant's secrets as stored, a first one made when none is valid. The caller holds
/// the secrets lock.
async fn stored_secrets(api: &Api, tenant: i64) -> Result<WebhookSecrets, Problem> {
    let stored = api
        .store()
        .tenant(tenant)
        .await?
        .ok_or_else(|| Problem::unauthorized("the tenant is gone"))?;
    let set = WebhookSecrets::parse(stored.webhook_secrets.as_deref());
    if set.valid_at(api.now()).next().is_some() {
        return Ok(set);
    }
    let fresh = WebhookSecrets(vec![WebhookSecrets::generate().map_err(no_randomness)?]);
    save_secrets(api, tenant, &fresh).await?;
    Ok(fresh)
}

/// Stores `set` as the tenant's (and every native subscription's) secrets.
async fn save_secrets(api: &Api, tenant: i64, set: &WebhookSecrets) -> Result<(), Problem> {
    api.store()
        .set_webhook_secrets(tenant, &set.to_json())
        .await?;
    api.forget_tenant(tenant);
    Ok(())
}

fn no_randomness(e: super::NoRandomness) -> Problem {
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "no-randomness",
        "No secret could be made",
        e.to_string(),
    )
}

/// What to answer: a 2xx answer, or the problem.
fn answer<T: Serialize>(status: StatusCode, result: Result<T, Problem>) -> Answer {
    match result {
        Ok(value) => Answer::json(status, &value),
        Err(p) => p.into(),
    }
}

/// A POST: the tenant admitted to `endpoint`, the body read, then `op` with both, run
/// once per Idempotency-Key.
async fn posted<F, Fut>(
    (api, shared): (&Api, &Shared),
    endpoint: Limited,
    headers: &HeaderMap,
    uri: &Uri,
    body: Body,
    op: F,
) -> Response
where
    F: FnOnce(Arc<Tenant>, axum::body::Bytes) -> Fut,
    Fut: std::future::Future<Output = Answer>,
{
    let tenant = match tenant(api, headers, endpoint).await {
        Ok(t) => t,
        Err(p) => return p.into_response(),
    };
    let body = match bytes(body).await {
        Ok(b) => b,
        Err(p) => return p.into_response(),
    };
    let request = ("POST", uri.path(), &body[..]);
    let (id, copy) = (tenant.id, body.clone());
    shared
        .keys
        .run(api, id, headers, request, || op(tenant, copy))
        .await
}

const PROBLEM: &str = "application/problem+json";

/// Track one waybill, or a batch.
#[utoipa::path(
    post,
    path = "/v1/trackings",
    request_body = TrackingRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer to a retry")),
    responses(
        (status = 201, description = "Tracked", body = Tracking),
        (status = 200, description = "A batch: one result per item", body = BatchAnswer),
        (status = 400, description = "Not JSON", body = Problem, content_type = PROBLEM),
        (status = 401, description = "No or unknown key", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Key inactive", body = Problem, content_type = PROBLEM),
        (status = 409, description = "Already tracked", body = Problem, content_type = PROBLEM),
        (status = 413, description = "Body too large", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Invalid", body = Problem, content_type = PROBLEM),
        (status = 429, description = "Over the rate", body = Problem, content_type = PROBLEM),
    )
)]
async fn create(
    (State(api), Extension(shared)): Ctx,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Response {
    let (api, shared) = (&api, &*shared);
    posted(
        (api, shared),
        Limited::Subscribe,
        &headers,
        &uri,
        body,
        |tenant, body| async move { create_answer(api, shared, &tenant, &body).await },
    )
    .await
}

async fn create_answer(api: &Api, shared: &Shared, tenant: &Arc<Tenant>, body: &[u8]) -> Answer {
    let request = match request(body) {
        Ok(r) => r,
        Err(p) => return p.into(),
    };
    let wants_webhooks = |t: &NewTracking| {
        t.webhook_url
            .as_deref()
            .is_some_and(|u| !u.trim().is_empty())
    };
    let salt = match &request {
        TrackingRequest::One(t) if wants_webhooks(t) => Some(secrets_of(api, shared, tenant).await),
        TrackingRequest::Many(b) if b.trackings.iter().any(wants_webhooks) => {
            Some(secrets_of(api, shared, tenant).await)
        }
        _ => None,
    };
    let salt = match salt.transpose() {
        Ok(set) => set.map(|s| s.to_json()),
        Err(p) => return p.into(),
    };
    match request {
        TrackingRequest::One(t) => answer(StatusCode::CREATED, track(api, tenant, t, salt).await),
        TrackingRequest::Many(batch) => {
            let mut tasks = tokio::task::JoinSet::new();
            for (i, t) in batch.trackings.into_iter().enumerate() {
                let (api, tenant, salt) = (api.clone(), tenant.clone(), salt.clone());
                tasks.spawn(async move { (i, track(&api, &tenant, t, salt).await) });
            }
            let mut results: Vec<Option<Result<Tracking, Problem>>> = Vec::new();
            results.resize_with(tasks.len(), || None);
            while let Some(done) = tasks.join_next().await {
                match done {
                    Ok((i, r)) => results[i] = Some(r),
                    Err(e) => tracing::error!(error = %e, "a batch subscription task failed"),
                }
            }
            let results = results
                .into_iter()
                .map(|r| match r.unwrap_or_else(|| Err(lost())) {
                    Ok(t) => BatchItem {
                        tracking: Some(t),
                        problem: None,
                    },
                    Err(p) => BatchItem {
                        tracking: None,
                        problem: Some(p),
                    },
                })
                .collect();
            Answer::json(StatusCode::OK, &BatchAnswer { results })
        }
    }
}

fn lost() -> Problem {
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "The subscription did not complete",
        "the task subscribing this item failed; send it again (with the same \
         Idempotency-Key the batch is replayed instead)",
    )
}

/// The body of `POST /v1/trackings`: a batch when it has `trackings`, else one tracking.
fn request(body: &[u8]) -> Result<TrackingRequest, Problem> {
    let value: serde_json::Value = parse(body)?;
    let Some(obj) = value.as_object() else {
        return Err(Problem::invalid(
            "the body must be a tracking object {\"number\": ...} or a batch {\"trackings\": [...]}",
        ));
    };
    if obj.contains_key("trackings") {
        let batch: Batch = serde_json::from_value(value)
            .map_err(|e| Problem::invalid(format!("the batch {e}")))?;
        if batch.trackings.is_empty() || batch.trackings.len() > MAX_BATCH {
            return Err(Problem::invalid(format!(
                "a batch holds 1 to {MAX_BATCH} trackings, not {}",
                batch.trackings.len()
            )));
        }
        Ok(TrackingRequest::Many(batch))
    } else {
        serde_json::from_value(value)
            .map(TrackingRequest::One)
            .map_err(|e| Problem::invalid(format!("the tracking {e}")))
    }
}

/// Subscribes one waybill through the API's use case.
async fn track(
    api: &Api,
    tenant: &Tenant,
    t: NewTracking,
    salt: Option<String>,
) -> Result<Tracking, Problem> {
    let given = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let number = check_number(Some(t.number.trim().to_owned()), "number")?;
    let callback_url = given(t.webhook_url).unwrap_or_default();
    let req = Subscribe {
        company: given(t.carrier),
        guess_company: true,
        waybill: Waybill {
            company: String::new(),
            number,
            phone: given(t.phone),
            from: given(t.origin),
            to: given(t.destination),
        },
        salt: salt.filter(|_| !callback_url.is_empty()),
        callback_url,
        dialect: NAME,
        dialect_params: DialectParams::default(),
        options: SubscribeOptions {
            reminders: reminders(t.reminders),
            ..SubscribeOptions::default()
        },
    };
    let sub = api.subscribe(tenant, req).await?;
    // Nothing was checked yet: no trace, no problem that needs one.
    let empty = Trace::from_events(&sub.company, &sub.number, Vec::new());
    let problems = problems(api, &sub, &empty);
    Ok(Tracking::new(&sub, &empty, Some(&problems), None))
}

/// The reminders asked for, each once, in journey order.
fn reminders(asked: Option<Vec<Reminder>>) -> Vec<Reminder> {
    let mut r = asked.unwrap_or_default();
    r.sort_unstable();
    r.dedup();
    r
}

/// Query parameters as a map; a repeated one keeps its last value.
fn query(uri: &Uri) -> BTreeMap<String, String> {
    uri.query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

/// List trackings, by id, with filters.
#[utoipa::path(
    get,
    path = "/v1/trackings",
    params(
        ("status" = Option<String>, Query, description = "Only this phase: `in_transit`, `delivered`, `available_for_pickup`…"),
        ("monitor" = Option<String>, Query, description = "Only `polling`, `shutdown` or `abort`"),
        ("carrier" = Option<String>, Query, description = "Only this carrier code or alias"),
        ("problem" = Option<String>, Query, description = "Only with an active problem: `any`, a kind (`locker_timeout`) or its code (`412`)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the page before"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "Trackings per page (default 50)"),
    ),
    responses(
        (status = 200, description = "A page", body = Page),
        (status = 401, description = "No or unknown key", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Key inactive", body = Problem, content_type = PROBLEM),
        (status = 422, description = "A bad parameter", body = Problem, content_type = PROBLEM),
        (status = 429, description = "Over the rate", body = Problem, content_type = PROBLEM),
    )
)]
async fn list((State(api), _): Ctx, headers: HeaderMap, uri: Uri) -> Response {
    let result = async {
        let tenant = tenant(&api, &headers, Limited::Read).await?;
        page(&api, &tenant, &query(&uri)).await
    };
    answer(StatusCode::OK, result.await).into_response()
}

/// A page of `tenant`'s trackings that pass the filters in `q`.
async fn page(api: &Api, tenant: &Tenant, q: &BTreeMap<String, String>) -> Result<Page, Problem> {
    const KNOWN: [&str; 6] = ["status", "monitor", "carrier", "problem", "cursor", "limit"];
    if let Some(unknown) = q.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(Problem::invalid(format!(
            "unknown parameter `{unknown}`; the list takes {}",
            KNOWN.join(", ")
        )));
    }
    let text = |k: &str| q.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let phase = text("status")
        .map(|s| {
            Phase::ALL
                .into_iter()
                .find(|p| p.name() == s)
                .ok_or_else(|| {
                    let names: Vec<&str> = Phase::ALL.iter().map(|p| p.name()).collect();
                    Problem::invalid(format!(
                        "`status` {s:?} is no phase; phases: {}",
                        names.join(", ")
                    ))
                })
        })
        .transpose()?;
    let monitor = text("monitor")
        .map(|s| {
            MonitorStatus::parse(s).ok_or_else(|| {
                Problem::invalid(format!(
                    "`monitor` is polling, shutdown or abort, not {s:?}"
                ))
            })
        })
        .transpose()?;
    let problem = match text("problem") {
        None => None,
        Some("any") => Some(None),
        Some(kind) => Some(Some(parse_kind(kind).map_err(Problem::invalid)?)),
    };
    let limit = match text("limit") {
        None => PAGE.0,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=PAGE.1).contains(l))
            .ok_or_else(|| Problem::invalid(format!("`limit` is 1 to {}, not {l:?}", PAGE.1)))?,
    };
    // A cursor is the public id of the last tracking of the page before.
    let mut after = text("cursor")
        .map(|c| {
            api.store()
                .tracking_row(c, tenant.id)
                .ok_or_else(|| Problem::invalid("`cursor` is not a next_cursor this API gave"))
        })
        .transpose()?;
    let cursor = |id: i64| api.store().tracking_id(id, tenant.id);
    let chunk = 200u32;
    let (mut data, mut scanned) = (Vec::new(), 0usize);
    loop {
        let subs = api
            .store()
            .list_subscriptions(&SubscriptionFilter {
                tenant_id: Some(tenant.id),
                status: monitor,
                company: text("carrier").map(|c| api.company_code(c)),
                after_id: after,
                limit: chunk,
                ..SubscriptionFilter::default()
            })
            .await?;
        let end = subs.len() < chunk as usize;
        for sub in subs {
            scanned += 1;
            after = Some(sub.id);
            if phase.is_some_and(|p| sub.state.phase() != p) {
                continue;
            }
            let tracking = view(api, &sub).await?;
            let flagged = |kind: Option<_>| {
                tracking.problems.as_deref().is_some_and(|ps| {
                    ps.iter().any(|p| {
                        kind.is_none_or(|k: waybill_core::problem::FlagKind| p.code == k.code())
                    })
                })
            };
            if problem.is_some_and(|kind| !flagged(kind)) {
                continue;
            }
            data.push(tracking);
            if data.len() == limit {
                return Ok(Page {
                    data,
                    next_cursor: after.map(cursor),
                });
            }
        }
        if end {
            return Ok(Page {
                data,
                next_cursor: None,
            });
        }
        if scanned >= SCAN_LIMIT {
            return Ok(Page {
                data,
                next_cursor: after.map(cursor),
            });
        }
    }
}

/// One tracking, with its trace and active problems.
#[utoipa::path(
    get,
    path = "/v1/trackings/{id}",
    params(("id" = i64, Path, description = "Tracking id")),
    responses(
        (status = 200, description = "The tracking", body = Tracking),
        (status = 401, description = "No or unknown key", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Key inactive", body = Problem, content_type = PROBLEM),
        (status = 404, description = "Not yours or none", body = Problem, content_type = PROBLEM),
        (status = 429, description = "Over the rate", body = Problem, content_type = PROBLEM),
    )
)]
async fn show((State(api), _): Ctx, headers: HeaderMap, params: RawPathParams) -> Response {
    let result = async {
        let tenant = tenant(&api, &headers, Limited::Read).await?;
        let sub = owned(&api, &tenant, &params).await?;
        view(&api, &sub).await
    };
    answer(StatusCode::OK, result.await).into_response()
}

/// Stop tracking: no more polls or webhooks.
#[utoipa::path(
    post,
    path = "/v1/trackings/{id}/stop",
    params(
        ("id" = i64, Path, description = "Tracking id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer to a retry"),
    ),
    responses(
        (status = 200, description = "Stopped", body = Tracking),
        (status = 401, description = "No or unknown key", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Key inactive", body = Problem, content_type = PROBLEM),
        (status = 404, description = "Not yours or none", body = Problem, content_type = PROBLEM),
        (status = 409, description = "Not being polled", body = Problem, content_type = PROBLEM),
        (status = 429, description = "Over the rate", body = Problem, content_type = PROBLEM),
    )
)]
async fn stop(
    (State(api), Extension(shared)): Ctx,
    headers: HeaderMap,
    uri: Uri,
    params: RawPathParams,
    body: Body,
) -> Response {
    let (api, shared) = (&api, &*shared);
    posted(
        (api, shared),
        Limited::Subscribe,
        &headers,
        &uri,
        body,
        |tenant, _body| async move {
            let result = async {
                let sub = owned(api, &tenant, &params).await?;
                if !api
                    .store()
                    .cancel(sub.id, "stopped through the API", api.now())
                    .await?
                {
                    return Err(not_polling(&sub));
                }
                let sub = api.store().subscription(sub.id).await?.ok_or_else(lost)?;
                view(api, &sub).await
            };
            answer(StatusCode::OK, result.await)
        },
    )
    .await
}

fn not_polling(sub: &Subscription) -> Problem {
    Problem::new(
        StatusCode::CONFLICT,
        "not-polling",
        "The tracking is not being polled",
        format!(
            "tracking {} has ended ({}); retrack it to poll again",
            sub.id,
            sub.status.as_str()
        ),
    )
}

/// Poll again from now (a stopped or ended tracking is resumed).
#[utoipa::path(
    post,
    path = "/v1/trackings/{id}/retrack",
    params(
        ("id" = i64, Path, description = "Tracking id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer to a retry"),
    ),
    responses(
        (status = 200, description = "Polled again from now", body = Tracking),
        (status = 401, description = "No or unknown key", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Key inactive", body = Problem, content_type = PROBLEM),
        (status = 404, description = "Not yours or none", body = Problem, content_type = PROBLEM),
        (status = 409, description = "Another tracking of the waybill is polled", body = Problem, content_type = PROBLEM),
        (status = 429, description = "Over the rate", body = Problem, content_type = PROBLEM),
    )
)]
async fn retrack(
    (State(api), Extension(shared)): Ctx,
    headers: HeaderMap,
    uri: Uri,
    params: RawPathParams,
    body: Body,
) -> Response {
    let (api, shared) = (&api, &*shared);
    posted(
        (api, shared),
        Limited::Subscribe,
        &headers,
        &uri,
        body,
        |tenant, _body| async move {
            let result = async {
                let sub = owned(api, &tenant, &params).await?;
                match api.store().retrack(sub.id, api.now()).await? {
                    Retrack::Resumed => {}
                    Retrack::Missing => return Err(Problem::not_found("the tracking is gone")),
                    Retrack::Busy(other) => {
                        return Err(Problem::new(
                            StatusCode::CONFLICT,
                            "duplicate",
                            "The waybill is already tracked",
                            format!(
                                "tracking {other} of {} {} is being polled; read that one",
                                sub.company, sub.number
                            ),
                        ))
                    }
                }
                let sub = api.store().subscription(sub.id).await?.ok_or_else(lost)?;
                view(api, &sub).await
            };
            answer(StatusCode::OK, result.await)
        },
    )
    .await
}

/// The carriers this daemon tracks.
#[utoipa::path(
    get,
    path = "/v1/carriers",
    responses(
        (status = 200, description = "Carriers", body = Carriers),
        (status = 401, description = "No or unknown key", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Key inactive", body = Problem, content_type = PROBLEM),
        (status = 429, description = "Over the rate", body = Problem, content_type = PROBLEM),
    )
)]
async fn carriers((State(api), _): Ctx, headers: HeaderMap) -> Response {
    let result = async {
        tenant(&api, &headers, Limited::Read).await?;
        let carriers = api
            .served_companies()
            .into_iter()
            .map(|code| {
                let entry = api.carrier_entry(&code);
                Carrier {
                    name: entry.map_or_else(|| code.clone(), |e| e.name_zh.clone()),
                    name_en: entry.map_or_else(|| code.clone(), |e| e.name_en.clone()),
                    code,
                }
            })
            .collect();
        Ok(Carriers {
            carriers,
            through_upstream: api.routed_companies(),
        })
    };
    answer(StatusCode::OK, result.await).into_response()
}

/// The carriers a number may belong to.
#[utoipa::path(
    post,
    path = "/v1/detect",
    request_body = Detect,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer to a retry")),
    responses(
        (status = 200, description = "Candidates, likeliest first", body = Detected),
        (status = 400, description = "Not JSON", body = Problem, content_type = PROBLEM),
        (status = 401, description = "No or unknown key", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Key inactive", body = Problem, content_type = PROBLEM),
        (status = 413, description = "Body too large", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Invalid", body = Problem, content_type = PROBLEM),
        (status = 429, description = "Over the rate", body = Problem, content_type = PROBLEM),
    )
)]
async fn detect(
    (State(api), Extension(shared)): Ctx,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Response {
    let (api, shared) = (&api, &*shared);
    posted(
        (api, shared),
        Limited::Autonumber,
        &headers,
        &uri,
        body,
        |_tenant, body| async move {
            let result = parse::<Detect>(&body).and_then(|d| {
                let found = api.recognize(&d.number)?;
                let normalized = found.first().map_or_else(
                    || d.number.trim().to_ascii_uppercase(),
                    |c| c.normalized.clone(),
                );
                let candidates = found
                    .into_iter()
                    .map(|c| Candidate {
                        served: api.serves(&c.carrier),
                        carrier: c.carrier,
                        name: c.name,
                        score: c.score,
                    })
                    .collect();
                Ok(Detected {
                    normalized,
                    candidates,
                })
            });
            answer(StatusCode::OK, result)
        },
    )
    .await
}

/// Distinct waybills subscribed in a billing month.
#[utoipa::path(
    get,
    path = "/v1/usage",
    params(("month" = Option<String>, Query, description = "`YYYY-MM` at UTC+8; default: this month")),
    responses(
        (status = 200, description = "Usage", body = Usage),
        (status = 401, description = "No or unknown key", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Key inactive", body = Problem, content_type = PROBLEM),
        (status = 422, description = "A bad month", body = Problem, content_type = PROBLEM),
        (status = 429, description = "Over the rate", body = Problem, content_type = PROBLEM),
    )
)]
async fn usage((State(api), _): Ctx, headers: HeaderMap, uri: Uri) -> Response {
    let result = async {
        let tenant = tenant(&api, &headers, Limited::Read).await?;
        let q = query(&uri);
        let month = match q.get("month").map(|m| m.trim()).filter(|m| !m.is_empty()) {
            None => billing_month(api.now()),
            Some(m) if is_month(m) => m.to_owned(),
            Some(m) => {
                return Err(Problem::invalid(format!(
                    "`month` is YYYY-MM (such as 2026-12), not {m:?}"
                )))
            }
        };
        let waybills = api.store().usage(tenant.id, &month).await?;
        Ok(Usage { month, waybills })
    };
    answer(StatusCode::OK, result.await).into_response()
}

fn is_month(m: &str) -> bool {
    let b = m.as_bytes();
    b.len() == 7
        && b[4] == b'-'
        && b[..4].iter().chain(&b[5..]).all(u8::is_ascii_digit)
        && matches!(m[5..].parse::<u8>(), Ok(1..=12))
}

/// The secrets that sign this tenant's webhooks (the first is made on first use).
#[utoipa::path(
    get,
    path = "/v1/webhook-secret",
    responses(
        (status = 200, description = "Valid secrets, newest first", body = Secrets),
        (status = 401, description = "No or unknown key", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Key inactive", body = Problem, content_type = PROBLEM),
        (status = 429, description = "Over the rate", body = Problem, content_type = PROBLEM),
    )
)]
async fn secret((State(api), Extension(shared)): Ctx, headers: HeaderMap) -> Response {
    let result = async {
        let tenant = tenant(&api, &headers, Limited::Read).await?;
        let set = secrets_of(&api, &shared, &tenant).await?;
        Ok(valid(&set, &api))
    };
    answer(StatusCode::OK, result.await).into_response()
}

fn valid(set: &WebhookSecrets, api: &Api) -> Secrets {
    Secrets {
        secrets: set.valid_at(api.now()).cloned().collect(),
    }
}

/// Rotate: a new secret signs from now; the previous one still signs for 24 hours.
#[utoipa::path(
    post,
    path = "/v1/webhook-secret/rotate",
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer to a retry")),
    responses(
        (status = 200, description = "Valid secrets after the rotation, newest first", body = Secrets),
        (status = 401, description = "No or unknown key", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Key inactive", body = Problem, content_type = PROBLEM),
        (status = 429, description = "Over the rate", body = Problem, content_type = PROBLEM),
    )
)]
async fn rotate(
    (State(api), Extension(shared)): Ctx,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Response {
    let (api, shared) = (&api, &*shared);
    posted(
        (api, shared),
        Limited::Subscribe,
        &headers,
        &uri,
        body,
        |tenant, _body| async move {
            let result = async {
                let _one = shared.secrets.lock().await;
                let current = stored_secrets(api, tenant.id).await?;
                let new = WebhookSecrets::generate().map_err(no_randomness)?;
                let set = current.rotated(new, api.now());
                save_secrets(api, tenant.id, &set).await?;
                Ok(valid(&set, api))
            };
            answer(StatusCode::OK, result.await)
        },
    )
    .await
}

/// A webhook URL that no longer receives pushes.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Endpoint {
    /// The URL, as the trackings name it.
    pub url: String,
    /// Why: the receiver's answer.
    pub reason: String,
    /// Since when.
    #[schema(value_type = String, format = DateTime)]
    pub disabled_at: jiff::Timestamp,
}

/// The disabled webhook URLs.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Endpoints {
    /// By URL.
    pub disabled: Vec<Endpoint>,
}

/// A URL to enable again.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Enable {
    /// The URL, as `GET /v1/webhook-endpoints` lists it.
    pub url: String,
}

async fn disabled_of(api: &Api, tenant: &Tenant) -> Result<Endpoints, Problem> {
    let disabled = api
        .store()
        .disabled_endpoints(Some(tenant.id))
        .await?
        .into_iter()
        .map(|d| Endpoint {
            url: d.url,
            reason: d.reason,
            disabled_at: d.disabled_at,
        })
        .collect();
    Ok(Endpoints { disabled })
}

/// The webhook URLs disabled because their receiver answered 410 Gone. Pushes to them are
/// dead-lettered unsent, with the reason.
#[utoipa::path(
    get,
    path = "/v1/webhook-endpoints",
    responses(
        (status = 200, description = "Disabled URLs", body = Endpoints),
        (status = 401, description = "No or unknown key", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Key inactive", body = Problem, content_type = PROBLEM),
        (status = 429, description = "Over the rate", body = Problem, content_type = PROBLEM),
    )
)]
async fn endpoints((State(api), _): Ctx, headers: HeaderMap) -> Response {
    let result = async {
        let tenant = tenant(&api, &headers, Limited::Read).await?;
        disabled_of(&api, &tenant).await
    };
    answer(StatusCode::OK, result.await).into_response()
}

/// Enable a disabled webhook URL: pushes go to it again (re-drive the ones dead-lettered
/// meanwhile with `waybill redeliver --since`).
#[utoipa::path(
    post,
    path = "/v1/webhook-endpoints/enable",
    request_body = Enable,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer to a retry")),
    responses(
        (status = 200, description = "The URLs still disabled", body = Endpoints),
        (status = 400, description = "Not JSON", body = Problem, content_type = PROBLEM),
        (status = 401, description = "No or unknown key", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Key inactive", body = Problem, content_type = PROBLEM),
        (status = 404, description = "The URL is not disabled", body = Problem, content_type = PROBLEM),
        (status = 413, description = "Body too large", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Invalid", body = Problem, content_type = PROBLEM),
        (status = 429, description = "Over the rate", body = Problem, content_type = PROBLEM),
    )
)]
async fn enable(
    (State(api), Extension(shared)): Ctx,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Response {
    let (api, shared) = (&api, &*shared);
    posted(
        (api, shared),
        Limited::Subscribe,
        &headers,
        &uri,
        body,
        |tenant, body| async move {
            let result = async {
                let Enable { url } = parse(&body)?;
                if !api.store().enable_endpoint(tenant.id, url.trim()).await? {
                    return Err(Problem::not_found(format!("{url:?} is not disabled")));
                }
                disabled_of(api, &tenant).await
            };
            answer(StatusCode::OK, result.await)
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_checked() {
        assert!(is_month("2026-12"));
        assert!(!is_month("2026-13") && !is_month("2026-1") && !is_month("２０２６-12"));
    }

    #[test]
    fn the_body_names_a_batch_by_its_trackings_field() {
        assert!(matches!(
            request(br#"{"number":"SF1"}"#),
            Ok(TrackingRequest::One(_))
        ));
        assert!(matches!(
            request(br#"{"trackings":[{"number":"SF1"}]}"#),
            Ok(TrackingRequest::Many(_))
        ));
        let p = request(br#"{"trackings":[]}"#).unwrap_err();
        assert_eq!(p.status, 422);
        let p = request(br#"{"number":"SF1","colour":"red"}"#).unwrap_err();
        assert!(p.detail.contains("colour"), "{}", p.detail);
        assert_eq!(request(b"{").unwrap_err().status, 400);
    }

    #[test]
    fn the_document_is_openapi_3_1_with_every_operation() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        for path in [
            "/v1/trackings",
            "/v1/trackings/{id}/retrack",
            "/v1/webhook-secret/rotate",
        ] {
            assert!(doc["paths"][path].is_object(), "{path} missing");
        }
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
    }
}
