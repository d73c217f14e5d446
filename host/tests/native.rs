//! The native API `/v1` through its router: trackings made one at a time and in batches,
//! read, listed page by page, stopped and retracked; Idempotency-Key replays, including
//! a duplicate sent while the first is still running; every error an RFC 9457 problem.

use std::sync::Arc;

use async_trait::async_trait;
use axum::body::{to_bytes, Body};
use axum::http::{header, Request, StatusCode};
use axum::Router;
use jiff::Timestamp;
use serde_json::{json, Value};
use tower::ServiceExt;
use waybill_core::carrier::{
    Capabilities, Carrier, Delivery, Notifier, Push, Reply, TrackError, TrackOutcome,
};
use waybill_core::clock::ManualClock;
use waybill_core::model::Waybill;
use waybill_host::api::{router, Api, ApiConfig, Metrics};
use waybill_host::dialect::native::WebhookSecrets;
use waybill_host::engine::{Engine, EngineConfig};
use waybill_host::store::{NewTenant, SqliteStore, Store, SubscriptionFilter};

const KEY: &str = "NATIVEKEY001";
const OTHER: &str = "NATIVEKEY002";
const HOOK: &str = "http://93.184.216.34/hook";

/// A carrier that has nothing yet for any number.
struct Empty;

#[async_trait]
impl Carrier for Empty {
    fn codes(&self) -> &[&str] {
        &["sandbox", "shunfeng"]
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }
    async fn track(&self, waybills: &[Waybill]) -> Vec<TrackOutcome> {
        waybills
            .iter()
            .map(|_| {
                Err(TrackError::NotFound {
                    message: "nothing yet".into(),
                })
            })
            .collect()
    }
}

struct Discard;
#[async_trait]
impl Notifier for Discard {
    async fn deliver(&self, _push: &Push) -> Delivery {
        Delivery::Answered(Reply::ok(""))
    }
}

struct Rig {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    app: Router,
}

/// What an answer said.
struct Got {
    status: StatusCode,
    content_type: String,
    replayed: bool,
    body: Value,
}

async fn rig() -> Rig {
    rig_with(EngineConfig::default()).await
}

async fn rig_with(config: EngineConfig) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open_dir(dir.path()).await.unwrap());
    let t0: Timestamp = "2026-12-01T02:00:00Z".parse().unwrap();
    for (name, key) in [("shop", KEY), ("other", OTHER)] {
        let t = NewTenant {
            name: name.into(),
            key: key.into(),
            customer: None,
        };
        store.create_tenant(&t, t0).await.unwrap();
    }
    let carriers: Vec<Arc<dyn Carrier>> = vec![Arc::new(Empty)];
    let engine = Engine::with_notifier(
        store.clone(),
        carriers.clone(),
        Arc::new(ManualClock::new(t0)),
        Arc::new(Discard),
        config,
    );
    let api = Api::new(engine, ApiConfig::default(), Arc::new(Metrics::default()));
    Rig {
        _dir: dir,
        store,
        app: router(api),
    }
}

impl Rig {
    async fn call(
        &self,
        method: &str,
        path: &str,
        key: &str,
        idem: Option<&str>,
        body: &str,
    ) -> Got {
        let mut req = Request::builder().method(method).uri(path);
        if !key.is_empty() {
            req = req.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        if let Some(k) = idem {
            req = req.header("Idempotency-Key", k);
        }
        let req = req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let content_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let replayed = resp.headers().contains_key("idempotent-replayed");
        let bytes = to_bytes(resp.into_body(), usize::MAX).await.unwrap();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("{path}: not JSON: {:?}", String::from_utf8_lossy(&bytes)));
        Got {
            status,
            content_type,
            replayed,
            body,
        }
    }

    async fn get(&self, path: &str) -> Got {
        self.call("GET", path, KEY, None, "").await
    }

    async fn post(&self, path: &str, body: Value) -> Got {
        self.call("POST", path, KEY, None, &body.to_string()).await
    }
}

fn is_problem(g: &Got, status: u16, kind: &str) {
    assert_eq!(g.status.as_u16(), status, "{}", g.body);
    assert_eq!(g.content_type, "application/problem+json", "{}", g.body);
    assert_eq!(g.body["status"], status, "{}", g.body);
    assert_eq!(
        g.body["type"],
        format!("urn:waybill:problem:{kind}"),
        "{}",
        g.body
    );
    assert!(
        g.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{}",
        g.body
    );
}

#[tokio::test]
async fn a_tracking_is_made_read_stopped_and_retracked_by_its_owner_only() {
    let r = rig().await;
    let made = r
        .post(
            "/v1/trackings",
            json!({"number": "SF1234567890123", "webhook_url": HOOK, "destination": "广东省深圳市南山区"}),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let t = &made.body;
    assert_eq!(t["carrier"], "shunfeng", "guessed from the number: {t}");
    assert_eq!(
        (&t["monitor"], &t["state"]),
        (&json!("polling"), &json!("no_trace"))
    );
    assert_eq!(t["webhook_url"], HOOK);
    assert_eq!(t["problems"], json!([]));
    let id = t["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("trk_"), "an opaque id: {id}");

    // The subscription carries the tenant's signing secret, made on this first use.
    let tenant = r.store.tenant_by_key(KEY).await.unwrap().unwrap();
    let row = r.store.tracking_row(&id, tenant.id).expect("names a row");
    let sub = r.store.subscription(row).await.unwrap().unwrap();
    is_problem(
        &r.get(&format!("/v1/trackings/{row}")).await,
        404,
        "not-found",
    );
    assert_eq!(sub.dialect, "native");
    let secrets = r.get("/v1/webhook-secret").await;
    let secret = secrets.body["secrets"][0]["secret"].as_str().unwrap();
    let salt = WebhookSecrets::parse(sub.salt.as_deref());
    assert_eq!(salt.0[0].secret, secret);

    let read = r.get(&format!("/v1/trackings/{id}")).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.body["number"], "SF1234567890123");
    assert_eq!(read.body["destination"], "广东省深圳市南山区");
    let foreign = r
        .call("GET", &format!("/v1/trackings/{id}"), OTHER, None, "")
        .await;
    is_problem(&foreign, 404, "not-found");
    is_problem(&r.get("/v1/trackings/abc").await, 404, "not-found");

    let stopped = r.post(&format!("/v1/trackings/{id}/stop"), json!({})).await;
    assert_eq!(stopped.status, StatusCode::OK, "{}", stopped.body);
    assert_eq!(stopped.body["monitor"], "abort");
    is_problem(
        &r.post(&format!("/v1/trackings/{id}/stop"), json!({})).await,
        409,
        "not-polling",
    );
    let again = r
        .post(&format!("/v1/trackings/{id}/retrack"), json!({}))
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(
        (&again.body["monitor"], &again.body["message"]),
        (&json!("polling"), &json!(""))
    );

    // A second tracking of the same waybill while the first is polled is a conflict.
    let dup = r
        .post("/v1/trackings", json!({"number": "SF1234567890123"}))
        .await;
    is_problem(&dup, 409, "duplicate");
}

#[tokio::test]
async fn errors_are_problems_that_say_what_was_wrong() {
    let r = rig().await;
    let no_key = r.call("GET", "/v1/carriers", "", None, "").await;
    is_problem(&no_key, 401, "unauthorized");
    let wrong = r.call("GET", "/v1/carriers", "NOPE", None, "").await;
    is_problem(&wrong, 401, "unauthorized");
    is_problem(
        &r.call("POST", "/v1/trackings", KEY, None, "{oops").await,
        400,
        "malformed-request",
    );
    let unknown_field = r
        .post("/v1/trackings", json!({"number": "SF1", "colour": "red"}))
        .await;
    is_problem(&unknown_field, 422, "invalid-request");
    assert!(unknown_field.body["detail"]
        .as_str()
        .unwrap()
        .contains("colour"));
    let spaced = r
        .post(
            "/v1/trackings",
            json!({"number": "SF 123", "carrier": "sandbox"}),
        )
        .await;
    is_problem(&spaced, 422, "invalid-request");
    let unserved = r
        .post(
            "/v1/trackings",
            json!({"number": "123456", "carrier": "nobody"}),
        )
        .await;
    is_problem(&unserved, 422, "invalid-request");
    let private = r
        .post(
            "/v1/trackings",
            json!({"number": "SB1", "carrier": "sandbox", "webhook_url": "http://127.0.0.1/x"}),
        )
        .await;
    is_problem(&private, 422, "invalid-request");
    is_problem(&r.get("/v1/nowhere").await, 404, "not-found");
    is_problem(
        &r.call("DELETE", "/v1/trackings", KEY, None, "").await,
        405,
        "method-not-allowed",
    );
    is_problem(
        &r.get("/v1/trackings?colour=red").await,
        422,
        "invalid-request",
    );
    is_problem(
        &r.get("/v1/trackings?status=lost").await,
        422,
        "invalid-request",
    );
    is_problem(
        &r.get("/v1/trackings?cursor=xyz").await,
        422,
        "invalid-request",
    );
    is_problem(
        &r.get("/v1/usage?month=2026-13").await,
        422,
        "invalid-request",
    );
    let none = r.get("/v1/webhook-endpoints").await;
    assert_eq!(none.body, json!({"disabled": []}));
    let not_off = r
        .post("/v1/webhook-endpoints/enable", json!({"url": HOOK}))
        .await;
    is_problem(&not_off, 404, "not-found");
    let long_key = "k".repeat(300);
    let bad_key = r
        .call(
            "POST",
            "/v1/detect",
            KEY,
            Some(&long_key),
            r#"{"number":"SF1"}"#,
        )
        .await;
    is_problem(&bad_key, 400, "malformed-request");
}

#[tokio::test]
async fn a_batch_answers_each_item_in_order_and_the_list_pages_through_them() {
    let r = rig().await;
    let mut items: Vec<Value> = (0..7)
        .map(|i| json!({"number": format!("SB{i:08}"), "carrier": "sandbox"}))
        .collect();
    items.insert(3, json!({"number": "SB 1", "carrier": "sandbox"}));
    let batch = r.post("/v1/trackings", json!({"trackings": items})).await;
    assert_eq!(batch.status, StatusCode::OK, "{}", batch.body);
    let results = batch.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 8);
    assert_eq!(results[3]["problem"]["status"], 422, "{}", batch.body);
    for (i, res) in results.iter().enumerate().filter(|(i, _)| *i != 3) {
        let n = if i < 3 { i } else { i - 1 };
        assert_eq!(res["tracking"]["number"], format!("SB{n:08}"), "{res}");
    }
    // The other tenant's tracking never shows.
    let theirs = r
        .call(
            "POST",
            "/v1/trackings",
            OTHER,
            None,
            r#"{"number":"SB99999999","carrier":"sandbox"}"#,
        )
        .await;
    assert_eq!(theirs.status, StatusCode::CREATED);

    let mut seen = Vec::new();
    let mut path = "/v1/trackings?limit=3&status=no_trace&monitor=polling".to_owned();
    loop {
        let page = r.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let data = page.body["data"].as_array().unwrap();
        assert!(data.len() <= 3);
        seen.extend(
            data.iter()
                .map(|t| t["number"].as_str().unwrap().to_owned()),
        );
        match page.body["next_cursor"].as_str() {
            Some(c) => {
                // A cursor means nothing to another tenant.
                let foreign = r
                    .call("GET", &format!("/v1/trackings?cursor={c}"), OTHER, None, "")
                    .await;
                is_problem(&foreign, 422, "invalid-request");
                path = format!("/v1/trackings?limit=3&status=no_trace&cursor={c}");
            }
            None => break,
        }
    }
    let want: Vec<String> = (0..7).map(|i| format!("SB{i:08}")).collect();
    assert_eq!(seen, want);
    let delivered = r.get("/v1/trackings?status=delivered").await;
    assert_eq!(delivered.body["data"], json!([]));
    let carrier = r.get("/v1/trackings?carrier=SHUNFENG").await;
    assert_eq!(carrier.body["data"], json!([]));
    let usage = r.get("/v1/usage").await;
    assert_eq!(usage.body["waybills"], 7, "{}", usage.body);
    let carriers = r.get("/v1/carriers").await;
    let codes: Vec<&str> = carriers.body["carriers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["sandbox", "shunfeng"]);
    let detected = r
        .post("/v1/detect", json!({"number": "sf1234567890123"}))
        .await;
    assert_eq!(
        detected.body["normalized"], "SF1234567890123",
        "{}",
        detected.body
    );
    assert_eq!(detected.body["candidates"][0]["carrier"], "shunfeng");
    assert_eq!(detected.body["candidates"][0]["served"], true);
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_answer_even_to_a_concurrent_duplicate() {
    let r = rig().await;
    let body = json!({"number": "SB00000042", "carrier": "sandbox"}).to_string();
    let (a, b) = tokio::join!(
        r.call("POST", "/v1/trackings", KEY, Some("order-42"), &body),
        r.call("POST", "/v1/trackings", KEY, Some("order-42"), &body),
    );
    assert_eq!(
        (a.status, b.status),
        (StatusCode::CREATED, StatusCode::CREATED)
    );
    assert_eq!(a.body, b.body, "one tracking, answered twice");
    assert!(
        a.replayed != b.replayed,
        "exactly one of them is the replay"
    );
    let later = r
        .call("POST", "/v1/trackings", KEY, Some("order-42"), &body)
        .await;
    assert!(later.replayed);
    assert_eq!(later.body, a.body);
    let subs = r
        .store
        .list_subscriptions(&SubscriptionFilter::default())
        .await
        .unwrap();
    assert_eq!(subs.len(), 1, "subscribed once");

    // The key is the tenant's: another tenant's same key is its own request.
    let theirs = r
        .call("POST", "/v1/trackings", OTHER, Some("order-42"), &body)
        .await;
    assert_eq!(theirs.status, StatusCode::CREATED);
    assert!(!theirs.replayed);

    // The same key for another request is refused; a refusal is replayed as well.
    let other_body = json!({"number": "SB00000043", "carrier": "sandbox"}).to_string();
    let reused = r
        .call("POST", "/v1/trackings", KEY, Some("order-42"), &other_body)
        .await;
    is_problem(&reused, 422, "idempotency-key-reused");
    let dup = json!({"number": "SB00000042", "carrier": "sandbox"}).to_string();
    let first = r
        .call("POST", "/v1/trackings", KEY, Some("dup-1"), &dup)
        .await;
    is_problem(&first, 409, "duplicate");
    let second = r
        .call("POST", "/v1/trackings", KEY, Some("dup-1"), &dup)
        .await;
    is_problem(&second, 409, "duplicate");
    assert!(second.replayed);
}

#[tokio::test]
async fn a_company_without_a_plugin_is_tracked_through_the_configured_upstream() {
    let plain = rig().await;
    let zto = json!({"number": "75312345678901", "carrier": "zhongtong"});
    is_problem(
        &plain.post("/v1/trackings", zto.clone()).await,
        422,
        "invalid-request",
    );
    // "sandbox" stands in for an aggregator here; the daemon only accepts a loaded
    // aggregator plugin as upstream.
    let routed = rig_with(EngineConfig {
        upstream: Some("sandbox".into()),
        ..EngineConfig::default()
    })
    .await;
    let made = routed.post("/v1/trackings", zto).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    assert_eq!(made.body["carrier"], "zhongtong");
    let carriers = routed.get("/v1/carriers").await;
    let codes: Vec<&str> = carriers.body["carriers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["sandbox", "shunfeng"], "own plugins");
    let routed = carriers.body["through_upstream"].as_array().unwrap();
    assert!(routed.iter().any(|c| c == "zhongtong"), "{routed:?}");
    assert!(!routed.iter().any(|c| c == "shunfeng"), "{routed:?}");
}
