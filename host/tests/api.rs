//! The kuaidi100-dialect HTTP API through its router: every subscribe return code,
//! malformed and oversized input, signed real-time queries, auto-detection, usage and
//! metrics. Every answer must be HTTP 200 with a kuaidi100 code, never a 4xx/5xx.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
use waybill_core::clock::{Clock, ManualClock};
use waybill_core::model::{EventTime, Trace, TrackEvent, Waybill, CHINA_OFFSET};
use waybill_core::state::State;
use waybill_host::api::{router, Api, ApiConfig, Metrics};
use waybill_host::engine::{Engine, EngineConfig};
use waybill_host::store::{
    billing_month, MonitorStatus, NewTenant, SqliteStore, Store, SubscriptionFilter,
};

const KEY: &str = "TESTKEY0001";
const CUSTOMER: &str = "CUSTOMER0001";
const PUBLIC_CB: &str = "http://93.184.216.34/cb?order=1";

/// A carrier double: answers from a map of number → outcome, optionally slowly, and
/// counts the waybills it was asked about.
struct Scripted {
    codes: Vec<&'static str>,
    answers: Mutex<HashMap<String, TrackOutcome>>,
    delay: Duration,
    asked: AtomicUsize,
}

impl Scripted {
    fn new(code: &'static str) -> Arc<Self> {
        Self::slow(code, Duration::ZERO)
    }

    fn slow(code: &'static str, delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            codes: vec![code],
            answers: Mutex::default(),
            delay,
            asked: AtomicUsize::new(0),
        })
    }

    fn answer(&self, number: &str, outcome: TrackOutcome) {
        self.answers
            .lock()
            .unwrap()
            .insert(number.to_owned(), outcome);
    }
}

#[async_trait]
impl Carrier for Scripted {
    fn codes(&self) -> &[&str] {
        &self.codes
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }
    async fn track(&self, waybills: &[Waybill]) -> Vec<TrackOutcome> {
        tokio::time::sleep(self.delay).await;
        self.asked.fetch_add(waybills.len(), Ordering::SeqCst);
        let answers = self.answers.lock().unwrap();
        waybills
            .iter()
            .map(|w| {
                answers
                    .get(&w.number)
                    .cloned()
                    .unwrap_or(Err(TrackError::NotFound {
                        message: "nothing yet".into(),
                    }))
            })
            .collect()
    }
}

struct Discard;
#[async_trait]
impl Notifier for Discard {
    async fn deliver(&self, _push: &Push) -> Delivery {
        Delivery::Answered(Reply::ok(r#"{"result":true,"returnCode":"200"}"#))
    }
}

fn t0() -> Timestamp {
    "2024-05-10T04:00:00Z".parse().unwrap()
}

fn trace(number: &str) -> Trace {
    let ev = |t: &str, text: &str, state| {
        TrackEvent::new(EventTime::parse(t, CHINA_OFFSET).unwrap(), text, state)
    };
    Trace::from_events(
        "sandbox",
        number,
        vec![
            ev("2024-05-09 09:00:00", "快件已揽收", State::Collected),
            ev("2024-05-10 08:00:00", "快件已签收", State::Delivered),
        ],
    )
}

struct Rig {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    app: Router,
    metrics: Arc<Metrics>,
    tenant: i64,
    clock: Arc<ManualClock>,
}

async fn rig_with(carriers: Vec<Arc<dyn Carrier>>, config: ApiConfig) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open_dir(dir.path()).await.unwrap());
    let tenant = store
        .create_tenant(
            &NewTenant {
                name: "shop".into(),
                key: KEY.into(),
                customer: Some(CUSTOMER.into()),
            },
            t0(),
        )
        .await
        .unwrap()
        .id;
    let clock = Arc::new(ManualClock::new(t0()));
    let engine = Engine::with_notifier(
        store.clone(),
        carriers.clone(),
        clock.clone(),
        Arc::new(Discard),
        EngineConfig::default(),
    );
    let metrics = Arc::new(Metrics::default());
    let api = Api::new(engine, config, metrics.clone());
    Rig {
        _dir: dir,
        store,
        app: router(api),
        metrics,
        tenant,
        clock,
    }
}

async fn rig() -> (Rig, Arc<Scripted>) {
    let sandbox = Scripted::new("sandbox");
    let shunfeng = Scripted::new("shunfeng");
    let r = rig_with(vec![sandbox.clone(), shunfeng], ApiConfig::default()).await;
    (r, sandbox)
}

fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

fn sub_param(company: &str, number: &str, callback: &str) -> String {
    json!({
        "company": company, "number": number, "key": KEY,
        "parameters": {"callbackurl": callback, "salt": "S", "resultv2": "4"}
    })
    .to_string()
}

impl Rig {
    async fn send(&self, req: Request<Body>) -> Value {
        let resp = self.app.clone().oneshot(req).await.unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "kuaidi100 answers are HTTP 200"
        );
        let bytes = to_bytes(resp.into_body(), usize::MAX).await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    async fn post(&self, path: &str, body: String) -> Value {
        self.send(
            Request::post(path)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(body))
                .unwrap(),
        )
        .await
    }

    async fn subscribe(&self, param: &str) -> Value {
        self.post("/poll", form(&[("schema", "json"), ("param", param)]))
            .await
    }

    async fn query(&self, param: &str) -> Value {
        let sign = waybill_core::sign::kuaidi100_query_sign(param, KEY, CUSTOMER);
        self.post(
            "/poll/query.do",
            form(&[("customer", CUSTOMER), ("sign", &sign), ("param", param)]),
        )
        .await
    }

    async fn subscriptions(&self) -> Vec<waybill_host::store::Subscription> {
        self.store
            .list_subscriptions(&SubscriptionFilter::default())
            .await
            .unwrap()
    }
}

fn code(v: &Value) -> &str {
    v["returnCode"].as_str().unwrap_or("<none>")
}

#[tokio::test]
async fn a_subscription_is_accepted_with_200_and_stored_with_its_options() {
    let (r, _) = rig().await;
    let v = r
        .subscribe(&sub_param("sandbox", "SB0000001", PUBLIC_CB))
        .await;
    assert_eq!(
        v,
        json!({"result": true, "returnCode": "200", "message": "提交成功"})
    );
    let subs = r.subscriptions().await;
    assert_eq!(subs.len(), 1);
    let s = &subs[0];
    assert_eq!(
        (s.company.as_str(), s.number.as_str()),
        ("sandbox", "SB0000001")
    );
    assert_eq!(s.callback_url, PUBLIC_CB);
    assert_eq!(s.salt.as_deref(), Some("S"));
    assert_eq!(s.options.resultv2, 4);
    assert_eq!(s.status, MonitorStatus::Polling);
    assert!(s.next_check_at > t0(), "first check is scheduled later");
}

#[tokio::test]
async fn international_parameters_are_stored_normalised_and_bad_ones_are_701() {
    let (r, _) = rig().await;
    let param = |extra: Value| {
        let mut parameters = json!({"callbackurl": PUBLIC_CB, "interCom": "1"});
        parameters
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({"company": "sandbox", "number": "SB0000020", "key": KEY,
            "parameters": parameters})
        .to_string()
    };
    let v = r
        .subscribe(&param(json!({
            "departureCountry": "cn", "departureCom": "EMS",
            "destinationCountry": "JP", "destinationCom": "japanpost"
        })))
        .await;
    assert_eq!(code(&v), "200", "{v}");
    let o = &r.subscriptions().await[0].options;
    assert!(o.inter_com);
    assert_eq!(
        (
            o.departure_country.as_deref(),
            o.departure_com.as_deref(),
            o.destination_country.as_deref(),
            o.destination_com.as_deref()
        ),
        (Some("CN"), Some("ems"), Some("JP"), Some("japanpost"))
    );
    for (extra, why) in [
        (json!({"destinationCountry": "Japan"}), "destinationCountry"),
        (json!({"departureCountry": "C1"}), "departureCountry"),
        (json!({"destinationCom": "japan post"}), "destinationCom"),
    ] {
        let v = r.subscribe(&param(extra)).await;
        assert_eq!(code(&v), "701", "{v}");
        assert!(v["message"].as_str().unwrap().contains(why), "{v}");
    }
}

#[tokio::test]
async fn company_aliases_resolve_to_the_canonical_code() {
    let (r, _) = rig().await;
    let v = r
        .subscribe(&sub_param("SF", "SF1234567890123", PUBLIC_CB))
        .await;
    assert_eq!(code(&v), "200", "{v}");
    assert_eq!(r.subscriptions().await[0].company, "shunfeng");
}

#[tokio::test]
async fn a_second_subscription_while_polling_is_501() {
    let (r, _) = rig().await;
    let p = sub_param("sandbox", "SB0000001", PUBLIC_CB);
    assert_eq!(code(&r.subscribe(&p).await), "200");
    let v = r.subscribe(&p).await;
    assert_eq!(code(&v), "501");
    assert_eq!(v["result"], false);
    let msg = v["message"].as_str().unwrap();
    assert!(msg.contains("SB0000001"), "{msg}");
    // The message names the waybill, not the daemon's row counter.
    let id = r.subscriptions().await[0].id;
    assert!(!msg.contains(&format!("subscription {id}")), "{msg}");
}

impl Rig {
    /// Ends the live subscription of `number` (as an abort push would).
    async fn end(&self, number: &str) {
        let live = self
            .store
            .list_subscriptions(&SubscriptionFilter {
                number: Some(number.into()),
                status: Some(MonitorStatus::Polling),
                ..SubscriptionFilter::default()
            })
            .await
            .unwrap();
        for s in live {
            assert!(self
                .store
                .cancel(s.id, "test", self.clock.now())
                .await
                .unwrap());
        }
    }
}

#[tokio::test]
async fn a_fifth_subscription_in_a_month_is_501_even_after_the_waybill_ended() {
    let (r, _) = rig().await;
    let p = sub_param("sandbox", "SB0000009", PUBLIC_CB);
    for n in 1..=4 {
        assert_eq!(code(&r.subscribe(&p).await), "200", "subscribe {n}");
        r.end("SB0000009").await;
    }
    let v = r.subscribe(&p).await;
    assert_eq!(code(&v), "501", "{v}");
    assert_eq!(v["result"], false);
    let msg = v["message"].as_str().unwrap();
    assert!(msg.starts_with("重复订阅"), "{msg}");
    assert!(
        msg.contains("monthly limit of 4") && msg.contains("2024-05"),
        "{msg}"
    );
    assert_eq!(
        r.store
            .list_subscriptions(&SubscriptionFilter::default())
            .await
            .unwrap()
            .len(),
        4,
        "the refused subscribe stored nothing"
    );

    // Another tenant's limit is its own.
    let other_key = "TESTKEY0002";
    r.store
        .create_tenant(
            &NewTenant {
                name: "other".into(),
                key: other_key.into(),
                customer: None,
            },
            t0(),
        )
        .await
        .unwrap();
    let other = json!({
        "company": "sandbox", "number": "SB0000009", "key": other_key,
        "parameters": {"callbackurl": PUBLIC_CB}
    })
    .to_string();
    assert_eq!(code(&r.subscribe(&other).await), "200");

    // A new billing month (June at UTC+8) allows it again.
    r.clock.set("2024-06-01T00:00:00+08:00".parse().unwrap());
    let v = r.subscribe(&p).await;
    assert_eq!(code(&v), "200", "{v}");
}

#[tokio::test]
async fn the_monthly_limit_comes_from_the_config_and_0_lifts_it() {
    for (limit, codes) in [
        (2, ["200", "200", "501", "501"]),
        (0, ["200", "200", "200", "200"]),
    ] {
        let config = ApiConfig {
            monthly_subscribe_limit: limit,
            ..ApiConfig::default()
        };
        let r = rig_with(vec![Scripted::new("sandbox")], config).await;
        let p = sub_param("sandbox", "SB0000010", PUBLIC_CB);
        let mut got = Vec::new();
        for _ in 0..4 {
            got.push(code(&r.subscribe(&p).await).to_owned());
            r.end("SB0000010").await;
        }
        assert_eq!(got, codes, "limit {limit}");
    }
}

#[tokio::test]
async fn fifty_concurrent_subscriptions_of_one_waybill_make_one_subscription() {
    let (r, _) = rig().await;
    let p = sub_param("sandbox", "SB0000050", PUBLIC_CB);
    let mut tasks = tokio::task::JoinSet::new();
    let r = Arc::new(r);
    for _ in 0..50 {
        let (r, p) = (r.clone(), p.clone());
        tasks.spawn(async move { code(&r.subscribe(&p).await).to_owned() });
    }
    let mut codes = HashMap::<String, usize>::new();
    while let Some(c) = tasks.join_next().await {
        *codes.entry(c.unwrap()).or_default() += 1;
    }
    assert_eq!(codes.get("200"), Some(&1), "{codes:?}");
    assert_eq!(codes.get("501"), Some(&49), "{codes:?}");
    assert_eq!(r.subscriptions().await.len(), 1);
    assert_eq!(
        r.store.usage(r.tenant, &billing_month(t0())).await.unwrap(),
        1
    );
}

#[tokio::test]
async fn a_missing_or_unknown_key_is_600() {
    let (r, _) = rig().await;
    let no_key =
        json!({"company": "sandbox", "number": "SB1", "parameters": {"callbackurl": PUBLIC_CB}});
    let v = r.subscribe(&no_key.to_string()).await;
    assert_eq!(code(&v), "600");
    assert!(v["message"].as_str().unwrap().contains("missing"));
    let wrong = json!({"company": "sandbox", "number": "SB1", "key": "NOPE",
        "parameters": {"callbackurl": PUBLIC_CB}});
    assert_eq!(code(&r.subscribe(&wrong.to_string()).await), "600");
}

#[tokio::test]
async fn a_company_no_plugin_serves_is_700() {
    let (r, _) = rig().await;
    let v = r
        .subscribe(&sub_param("zhongtong", "73100000000001", PUBLIC_CB))
        .await;
    assert_eq!(code(&v), "700");
    assert!(v["message"].as_str().unwrap().contains("sandbox"), "{v}");
    let v = r
        .subscribe(&sub_param("no-such-co", "SB0000001", PUBLIC_CB))
        .await;
    assert_eq!(code(&v), "700");
    let v = r.subscribe(&sub_param("", "SB0000001", PUBLIC_CB)).await;
    assert_eq!(code(&v), "700", "empty company without autoCom");
    assert!(v["message"].as_str().unwrap().contains("autoCom"));
}

#[tokio::test]
async fn bad_subscription_data_is_701_with_the_reason() {
    let (r, _) = rig().await;
    let long = "1".repeat(33);
    let cases: Vec<(String, &str)> = vec![
        (sub_param("sandbox", "", PUBLIC_CB), "empty"),
        (sub_param("sandbox", "   ", PUBLIC_CB), "empty"),
        (sub_param("sandbox", &long, PUBLIC_CB), "33 characters"),
        (
            sub_param("sandbox", "SB\u{0}1234", PUBLIC_CB),
            "control character",
        ),
        (
            json!({"company": "sandbox", "number": "SB1", "key": KEY}).to_string(),
            "callbackurl",
        ),
        (
            sub_param("sandbox", "SB0000001", "not a url"),
            "not a valid URL",
        ),
        (
            sub_param("sandbox", "SB0000001", "ftp://93.184.216.34/x"),
            "scheme",
        ),
        (
            sub_param("sandbox", "SB0000001", "http://127.0.0.1:8080/cb"),
            "allow-private-callbacks",
        ),
        (
            sub_param("sandbox", "SB0000001", "http://169.254.169.254/latest"),
            "non-public",
        ),
        (
            json!({"company": "sandbox", "number": {"n": 1}, "key": KEY,
                "parameters": {"callbackurl": PUBLIC_CB}})
            .to_string(),
            "must be a string",
        ),
        (
            json!({"company": "sandbox", "number": "SB1", "key": KEY,
                "parameters": {"callbackurl": PUBLIC_CB, "resultv2": "x"}})
            .to_string(),
            "resultv2",
        ),
        (
            json!({"company": "sandbox", "number": "SB1", "key": KEY,
                "parameters": {"callbackurl": PUBLIC_CB, "autoCom": "maybe"}})
            .to_string(),
            "autoCom",
        ),
        (
            json!({"company": "sandbox", "number": "SB1", "key": KEY, "parameters": "cb"})
                .to_string(),
            "parameters",
        ),
        ("{not json".into(), "not valid JSON"),
        ("[1,2]".into(), "JSON object"),
    ];
    for (param, why) in cases {
        let v = r.subscribe(&param).await;
        assert_eq!(code(&v), "701", "{param}: {v}");
        assert_eq!(v["result"], false);
        let msg = v["message"].as_str().unwrap();
        assert!(msg.contains(why), "{param}: message {msg:?} lacks {why:?}");
    }
    assert!(r.subscriptions().await.is_empty());
}

#[tokio::test]
async fn numbers_no_carrier_can_track_are_refused_with_701_and_the_reason() {
    let (r, _) = rig().await;
    let cases = [
        ("SB\u{1F4E6}1234", "U+1F4E6"),
        ("SB 0000001", "a space"),
        ("SB\"0000001", "'\"'"),
        ("SB'0000001", "'\\''"),
        ("SB\u{202E}0000001", "U+202E"),
        ("SB\u{200B}0000001", "U+200B"),
        ("SB\u{FEFF}0000001", "U+FEFF"),
        ("ＳＢ0000001", "U+FF33"),
    ];
    for (number, why) in cases {
        let v = r.subscribe(&sub_param("sandbox", number, PUBLIC_CB)).await;
        assert_eq!(code(&v), "701", "{number:?}: {v}");
        let msg = v["message"].as_str().unwrap();
        assert!(
            msg.contains(why),
            "{number:?}: message {msg:?} lacks {why:?}"
        );
    }
    // A JSON number too large to be exact is refused, not stored as 1.2345678901234568e22.
    let big = r#"{"company": "sandbox", "number": 12345678901234567890123, "key": "KEY",
        "parameters": {"callbackurl": "CB"}}"#
        .replace("\"KEY\"", &format!("{KEY:?}"))
        .replace("\"CB\"", &format!("{PUBLIC_CB:?}"));
    let v = r.subscribe(&big).await;
    assert_eq!(code(&v), "701", "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("as a string"),
        "{v}"
    );
    assert!(r.subscriptions().await.is_empty());
    // An exact JSON integer is the number as written; dashes are kept.
    let exact = json!({"company": "sandbox", "number": 1234567890123_u64, "key": KEY,
        "parameters": {"callbackurl": PUBLIC_CB}})
    .to_string();
    assert_eq!(code(&r.subscribe(&exact).await), "200");
    let dashed = sub_param("sandbox", "SB-0000-002", PUBLIC_CB);
    assert_eq!(code(&r.subscribe(&dashed).await), "200");
    let numbers: Vec<String> = r
        .subscriptions()
        .await
        .into_iter()
        .map(|s| s.number)
        .collect();
    assert_eq!(numbers, ["1234567890123", "SB-0000-002"]);
}

#[tokio::test]
async fn malformed_requests_get_701_not_an_http_error() {
    let (r, _) = rig().await;
    // No param at all.
    let v = r.post("/poll", "schema=json".into()).await;
    assert_eq!(code(&v), "701");
    assert!(v["message"].as_str().unwrap().contains("param"));
    // Another schema.
    let v = r
        .post(
            "/poll",
            form(&[
                ("schema", "xml"),
                ("param", &sub_param("sandbox", "SB1", PUBLIC_CB)),
            ]),
        )
        .await;
    assert_eq!(code(&v), "701");
    // JSON body instead of a form.
    let v = r
        .send(
            Request::post("/poll")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(sub_param("sandbox", "SB1", PUBLIC_CB)))
                .unwrap(),
        )
        .await;
    assert_eq!(code(&v), "701");
    assert!(v["message"]
        .as_str()
        .unwrap()
        .contains("x-www-form-urlencoded"));
    // Bytes that are not UTF-8 nor a form.
    let v = r
        .send(
            Request::post("/poll")
                .body(Body::from(vec![0xff, 0xfe, 0x00, b'=', b'&', 0x80]))
                .unwrap(),
        )
        .await;
    assert_eq!(code(&v), "701");
    // A body over the limit.
    let huge = form(&[("schema", "json"), ("param", &"x".repeat(1 << 20))]);
    let v = r.post("/poll", huge).await;
    assert_eq!(code(&v), "701");
    assert!(v["message"].as_str().unwrap().contains("larger than"));
    assert!(r.subscriptions().await.is_empty());
}

#[tokio::test]
async fn private_callbacks_are_accepted_when_allowed() {
    let c = ApiConfig {
        allow_private_callbacks: true,
        ..ApiConfig::default()
    };
    let r = rig_with(vec![Scripted::new("sandbox")], c).await;
    let v = r
        .subscribe(&sub_param("sandbox", "SB0000001", "http://127.0.0.1:9/cb"))
        .await;
    assert_eq!(code(&v), "200", "{v}");
}

#[tokio::test]
async fn auto_com_takes_the_best_served_candidate_or_answers_702() {
    let (r, _) = rig().await;
    let auto = |number: &str| {
        json!({"company": "", "number": number, "key": KEY,
            "parameters": {"callbackurl": PUBLIC_CB, "autoCom": "1"}})
        .to_string()
    };
    let v = r.subscribe(&auto("SF1234567890123")).await;
    assert_eq!(code(&v), "200", "{v}");
    let subs = r.subscriptions().await;
    assert_eq!(subs[0].company, "shunfeng");
    assert!(subs[0].options.auto_com);
    // A China Post S10 number is recognised, but no plugin here serves it.
    let v = r.subscribe(&auto("EE123456785CN")).await;
    assert_eq!(code(&v), "702", "{v}");
    // Nothing recognises this.
    let v = r.subscribe(&auto("QQ1")).await;
    assert_eq!(code(&v), "702", "{v}");
    // And this is no tracking number at all.
    let v = r.subscribe(&auto("???")).await;
    assert_eq!(code(&v), "701", "{v}");
}

#[tokio::test]
async fn a_store_failure_is_500_in_a_200_answer() {
    let (r, _) = rig().await;
    // Warm the tenant cache, then take the database away.
    assert_eq!(
        code(
            &r.subscribe(&sub_param("sandbox", "SB0000001", PUBLIC_CB))
                .await
        ),
        "200"
    );
    r.store.close().await;
    let v = r
        .subscribe(&sub_param("sandbox", "SB0000002", PUBLIC_CB))
        .await;
    assert_eq!(code(&v), "500", "{v}");
}

fn query_param(num: &str) -> String {
    json!({"com": "sandbox", "num": num, "resultv2": "4"}).to_string()
}

#[tokio::test]
async fn a_query_with_order_asc_lists_the_oldest_event_first() {
    let (r, sandbox) = rig().await;
    sandbox.answer("SB0000009", Ok(trace("SB0000009")));
    let contexts = |v: &Value| -> Vec<String> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["context"].as_str().unwrap().to_owned())
            .collect()
    };
    let with_order =
        |order: &str| json!({"com": "sandbox", "num": "SB0000009", "order": order}).to_string();
    let newest_first = ["快件已签收", "快件已揽收"];
    assert_eq!(
        contexts(&r.query(&query_param("SB0000009")).await),
        newest_first
    );
    assert_eq!(contexts(&r.query(&with_order("desc")).await), newest_first);
    let asc = r.query(&with_order("asc")).await;
    assert_eq!(contexts(&asc), ["快件已揽收", "快件已签收"], "{asc}");
    assert_eq!(
        asc["state"], "3",
        "the state is the newest event's whatever the order"
    );
    let v = r.query(&with_order("sideways")).await;
    assert_eq!(code(&v), "400", "{v}");
}

#[tokio::test]
async fn a_signed_query_asks_the_carrier_then_answers_from_the_cache() {
    let (r, sandbox) = rig().await;
    sandbox.answer("SB0000009", Ok(trace("SB0000009")));
    let v = r.query(&query_param("SB0000009")).await;
    assert_eq!(v["status"], "200", "{v}");
    assert_eq!(v["message"], "ok");
    assert_eq!(
        (v["com"].as_str(), v["nu"].as_str()),
        (Some("sandbox"), Some("SB0000009"))
    );
    assert_eq!(v["ischeck"], "1");
    assert_eq!(v["state"], "301", "advanced code with resultv2=4");
    assert_eq!(v["data"][0]["context"], "快件已签收", "newest first");
    assert_eq!(v["data"][1]["statusCode"], "103");
    let again = r.query(&query_param("SB0000009")).await;
    assert_eq!(again, v);
    assert_eq!(
        sandbox.asked.load(Ordering::SeqCst),
        1,
        "second answer from the cache"
    );
}

#[tokio::test]
async fn usage_counts_a_waybill_once_a_month_across_subscribe_and_query() {
    let (r, sandbox) = rig().await;
    sandbox.answer("SB0000009", Ok(trace("SB0000009")));
    r.subscribe(&sub_param("sandbox", "SB0000009", PUBLIC_CB))
        .await;
    r.query(&query_param("SB0000009")).await;
    r.query(&query_param("SB0000009")).await;
    r.query(&query_param("SB0000010")).await;
    let month = billing_month(t0());
    assert_eq!(r.store.usage(r.tenant, &month).await.unwrap(), 2);
}

#[tokio::test]
async fn a_wrong_sign_or_customer_is_503() {
    let (r, _) = rig().await;
    let p = query_param("SB0000009");
    let v = r
        .post(
            "/poll/query.do",
            form(&[
                ("customer", CUSTOMER),
                ("sign", "0123456789ABCDEF"),
                ("param", &p),
            ]),
        )
        .await;
    assert_eq!(
        v,
        json!({"result": false, "returnCode": "503",
        "message": v["message"].clone()})
    );
    assert!(v["message"].as_str().unwrap().contains("sign"));
    let sign = waybill_core::sign::kuaidi100_query_sign(&p, KEY, "OTHER");
    let v = r
        .post(
            "/poll/query.do",
            form(&[("customer", "OTHER"), ("sign", &sign), ("param", &p)]),
        )
        .await;
    assert_eq!(code(&v), "503");
}

#[tokio::test]
async fn query_failures_have_kuaidi100_codes() {
    let slow = Scripted::slow("sandbox", Duration::from_secs(5));
    let c = ApiConfig {
        query_timeout: jiff::SignedDuration::from_millis(100),
        ..ApiConfig::default()
    };
    let r = rig_with(vec![slow.clone(), Scripted::new("shunfeng")], c).await;
    // Missing fields and bad param: 400.
    let v = r.post("/poll/query.do", "customer=x".into()).await;
    assert_eq!(code(&v), "400");
    assert_eq!(code(&r.query("{oops").await), "400");
    assert_eq!(
        code(&r.query(&json!({"com": "sandbox"}).to_string()).await),
        "400"
    );
    let v = r
        .query(&json!({"com": "nobody", "num": "SB1"}).to_string())
        .await;
    assert_eq!(code(&v), "400");
    // Carrier too slow: 502.
    let v = r.query(&query_param("SB0000001")).await;
    assert_eq!(code(&v), "502", "{v}");
    // Not found: 500; phone wanted: 408.
    let sf = json!({"com": "shunfeng", "num": "SF1234567890123"}).to_string();
    assert_eq!(code(&r.query(&sf).await), "500");
}

#[tokio::test]
async fn a_carrier_asking_for_a_phone_gives_408() {
    let (r, sandbox) = rig().await;
    sandbox.answer(
        "SB0000003",
        Err(TrackError::InvalidInput {
            message: "phone number required".into(),
        }),
    );
    assert_eq!(code(&r.query(&query_param("SB0000003")).await), "408");
}

#[tokio::test]
async fn autonumber_lists_candidates_in_kuaidi100_shape() {
    let (r, _) = rig().await;
    let v = r
        .send(
            Request::get(format!("/autonumber/auto?num=SF1234567890123&key={KEY}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    let first = &v[0];
    assert_eq!(first["comCode"], "shunfeng");
    assert_eq!(first["lengthPre"], 15);
    assert_eq!(first["noPre"], "SF12");
    assert!(first["name"].as_str().is_some_and(|n| !n.is_empty()));
    let v = r
        .post(
            "/autonumber/auto",
            form(&[("num", "SF1234567890123"), ("key", "bad")]),
        )
        .await;
    assert_eq!(code(&v), "600");
    let v = r.post("/autonumber/auto", form(&[("key", KEY)])).await;
    assert_eq!(code(&v), "400");
}

#[tokio::test]
async fn metrics_count_answers_by_code_and_report_subscriptions() {
    let (r, _) = rig().await;
    r.subscribe(&sub_param("sandbox", "SB0000001", PUBLIC_CB))
        .await;
    r.subscribe(&sub_param("sandbox", "SB0000001", PUBLIC_CB))
        .await;
    assert_eq!(r.metrics.requests_of("poll", "501"), 1);
    let resp = r
        .app
        .clone()
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let text = String::from_utf8(
        to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    for line in [
        "waybill_api_requests_total{endpoint=\"poll\",code=\"200\"} 1",
        "waybill_api_requests_total{endpoint=\"poll\",code=\"501\"} 1",
        "waybill_subscriptions{status=\"polling\"} 1",
        "# TYPE waybill_due_lag_seconds gauge",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    let resp = r
        .app
        .clone()
        .oneshot(Request::get("/healthz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_disabled_or_expired_key_is_601_and_works_again_once_enabled() {
    let sandbox = Scripted::new("sandbox");
    let config = ApiConfig {
        tenant_cache_ttl: jiff::SignedDuration::ZERO,
        ..ApiConfig::default()
    };
    let r = rig_with(vec![sandbox], config).await;
    // The rig's clock stands at t0: a key that expires then is already expired.
    r.store
        .set_tenant_access(r.tenant, false, Some(t0()))
        .await
        .unwrap();
    let v = r
        .subscribe(&sub_param("sandbox", "SB0000001", PUBLIC_CB))
        .await;
    assert_eq!(code(&v), "601", "{v}");
    assert!(v["message"].as_str().unwrap().contains("expired"), "{v}");

    r.store
        .set_tenant_access(r.tenant, true, None)
        .await
        .unwrap();
    let v = r
        .subscribe(&sub_param("sandbox", "SB0000001", PUBLIC_CB))
        .await;
    assert_eq!(code(&v), "601", "{v}");
    assert!(v["message"].as_str().unwrap().contains("disabled"), "{v}");
    assert!(r.subscriptions().await.is_empty(), "nothing subscribed");

    let later = t0() + jiff::SignedDuration::from_hours(24);
    r.store
        .set_tenant_access(r.tenant, false, Some(later))
        .await
        .unwrap();
    let v = r
        .subscribe(&sub_param("sandbox", "SB0000001", PUBLIC_CB))
        .await;
    assert_eq!(code(&v), "200", "not expired until {later}: {v}");
}

#[tokio::test]
async fn a_disabled_or_expired_key_is_601_on_the_query_and_autonumber_too() {
    let sandbox = Scripted::new("sandbox");
    sandbox.answer("SB0000009", Ok(trace("SB0000009")));
    let config = ApiConfig {
        tenant_cache_ttl: jiff::SignedDuration::ZERO,
        ..ApiConfig::default()
    };
    let r = rig_with(vec![sandbox.clone()], config).await;
    let month = billing_month(t0());
    for (disabled, expires) in [(true, None), (false, Some(t0()))] {
        r.store
            .set_tenant_access(r.tenant, disabled, expires)
            .await
            .unwrap();
        let v = r.query(&query_param("SB0000009")).await;
        assert_eq!(code(&v), "601", "{v}");
        let v = r
            .post(
                "/autonumber/auto",
                form(&[("key", KEY), ("num", "SB0000009")]),
            )
            .await;
        assert_eq!(code(&v), "601", "{v}");
    }
    assert_eq!(
        sandbox.asked.load(Ordering::SeqCst),
        0,
        "the carrier was asked"
    );
    assert_eq!(
        r.store.usage(r.tenant, &month).await.unwrap(),
        0,
        "usage counted"
    );

    r.store
        .set_tenant_access(r.tenant, false, None)
        .await
        .unwrap();
    let v = r.query(&query_param("SB0000009")).await;
    assert_eq!(v["status"], "200", "{v}");
    assert_eq!(r.store.usage(r.tenant, &month).await.unwrap(), 1);
}

#[tokio::test]
async fn a_query_answer_survives_a_restart_and_is_not_fetched_again() {
    let (r, sandbox) = rig().await;
    sandbox.answer("SB0000009", Ok(trace("SB0000009")));
    let first = r.query(&query_param("SB0000009")).await;
    assert_eq!(first["status"], "200", "{first}");
    assert_eq!(sandbox.asked.load(Ordering::SeqCst), 1);

    // A new daemon on the same data directory: empty memory cache, same database.
    r.store.close().await;
    let store = Arc::new(SqliteStore::open_dir(r._dir.path()).await.unwrap());
    let carriers: Vec<Arc<dyn Carrier>> = vec![sandbox.clone()];
    let clock = Arc::new(ManualClock::new(t0() + jiff::SignedDuration::from_mins(5)));
    let engine = Engine::with_notifier(
        store.clone(),
        carriers.clone(),
        clock.clone(),
        Arc::new(Discard),
        EngineConfig::default(),
    );
    let restarted = Rig {
        _dir: r._dir,
        store,
        app: router(Api::new(
            engine,
            ApiConfig::default(),
            Arc::new(Metrics::default()),
        )),
        metrics: r.metrics,
        tenant: r.tenant,
        clock,
    };
    let again = restarted.query(&query_param("SB0000009")).await;
    assert_eq!(again, first);
    assert_eq!(
        sandbox.asked.load(Ordering::SeqCst),
        1,
        "answered from the stored result"
    );
}

#[tokio::test]
async fn a_key_over_its_rate_gets_502_and_nothing_is_done_or_counted() {
    use waybill_host::api::limit::{Rate, RateLimitConfig};
    let sandbox = Scripted::new("sandbox");
    sandbox.answer("SB0000009", Ok(trace("SB0000009")));
    sandbox.answer("SB0000010", Ok(trace("SB0000010")));
    let tight = Rate {
        per_second: 1,
        burst: 1,
    };
    let config = ApiConfig {
        rate_limit: RateLimitConfig {
            subscribe: tight,
            query: tight,
            autonumber: tight,
            read: tight,
        },
        ..ApiConfig::default()
    };
    let r = rig_with(vec![sandbox.clone()], config).await;
    let month = billing_month(t0());

    let v = r.query(&query_param("SB0000009")).await;
    assert_eq!(v["status"], "200", "{v}");
    let v = r.query(&query_param("SB0000010")).await;
    assert_eq!(code(&v), "502", "{v}");
    let message = v["message"].as_str().unwrap();
    assert!(message.contains("retry in"), "{message}");
    assert_eq!(
        sandbox.asked.load(Ordering::SeqCst),
        1,
        "the carrier was asked"
    );
    assert_eq!(r.store.usage(r.tenant, &month).await.unwrap(), 1);

    let v = r
        .subscribe(&sub_param("sandbox", "SB0000011", PUBLIC_CB))
        .await;
    assert_eq!(code(&v), "200", "{v}");
    let v = r
        .subscribe(&sub_param("sandbox", "SB0000012", PUBLIC_CB))
        .await;
    assert_eq!(code(&v), "502", "{v}");
    let live = r
        .store
        .list_subscriptions(&SubscriptionFilter {
            tenant_id: Some(r.tenant),
            ..SubscriptionFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(live.len(), 1, "the throttled subscription was not stored");

    let auto = || {
        r.post(
            "/autonumber/auto",
            form(&[("key", KEY), ("num", "SB0000009")]),
        )
    };
    assert!(auto().await.is_array());
    assert_eq!(code(&auto().await), "502");

    // An unknown key is still told so, not throttled.
    let v = r
        .post(
            "/autonumber/auto",
            form(&[("key", "NOPE"), ("num", "SB0000009")]),
        )
        .await;
    assert_eq!(code(&v), "600", "{v}");
}
