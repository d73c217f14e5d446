//! The Kdniao dialect's request parsing through the daemon's own router: any body on
//! `/Ebusiness/EbusinessOrderHandle.aspx` (queries 1002 and 8001, recognition 2002) and
//! `/api/dist` (subscriptions 1008 and 8008). Every answer is HTTP 200 with a JSON object,
//! never a panic or an HTTP error.
//!
//! The first input byte picks the route and the request's shape; the rest is either the
//! raw body (the form parser) or `RequestData` that the harness signs with the tenant's
//! AppKey, so the fuzzer reaches the JSON of the request past the `DataSign` check, which
//! it could not forge. The store is a real SQLite database with one tenant (AppKey
//! `FUZZKEY0001`) that has a Kdniao push URL, so subscriptions the fuzzer writes are
//! stored.
#![no_main]

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{header, Request};
use axum::Router;
use libfuzzer_sys::fuzz_target;
use waybill_core::carrier::Carrier;
use waybill_core::clock::ManualClock;
use waybill_host::api::{router, Api, ApiConfig, Metrics};
use waybill_host::dialect::kdniao::ebusiness_id;
use waybill_host::engine::{Engine, EngineConfig};
use waybill_host::store::{NewTenant, SqliteStore, Store};

const APP_KEY: &str = "FUZZKEY0001";

#[path = "daemon_rig.rs"]
mod daemon_rig;
use daemon_rig::{Nowhere, Unknown};

struct Rig {
    runtime: tokio::runtime::Runtime,
    app: Router,
    ebusiness: String,
    _dir: tempfile::TempDir,
}

fn rig() -> Rig {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temporary directory");
    let (app, ebusiness) = runtime.block_on(async {
        let now = "2024-06-01T00:00:00Z".parse().expect("instant");
        let store = Arc::new(SqliteStore::open_dir(dir.path()).await.expect("store"));
        let tenant = store
            .create_tenant(
                &NewTenant {
                    name: "fuzz".into(),
                    key: APP_KEY.into(),
                    customer: None,
                },
                now,
            )
            .await
            .expect("tenant");
        store
            .set_kdniao_push_url(tenant.id, Some("http://203.0.113.7/kdniao"))
            .await
            .expect("push url");
        let carriers: Vec<Arc<dyn Carrier>> = vec![Arc::new(Unknown)];
        let engine = Engine::with_notifier(
            store,
            carriers,
            Arc::new(ManualClock::new(now)),
            Arc::new(Nowhere),
            EngineConfig::default(),
        );
        let app = router(Api::new(
            engine,
            ApiConfig::default(),
            Arc::new(Metrics::default()),
        ));
        (app, ebusiness_id(tenant.id))
    });
    Rig {
        runtime,
        app,
        ebusiness,
        _dir: dir,
    }
}

static RIG: OnceLock<Rig> = OnceLock::new();

const ROUTES: [&str; 2] = ["/Ebusiness/EbusinessOrderHandle.aspx", "/api/dist"];
const REQUEST_TYPES: [&str; 6] = ["1002", "8001", "2002", "1008", "8008", "9999"];

/// A signed form: `RequestData` is `data` (lossily UTF-8), signed with the AppKey.
fn signed_form(ebusiness: &str, request_type: &str, data: &[u8], json: bool) -> Vec<u8> {
    let data = String::from_utf8_lossy(data);
    let sign = waybill_core::sign::kdniao_data_sign(&data, APP_KEY);
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("RequestData", &data)
        .append_pair("EBusinessID", ebusiness)
        .append_pair("RequestType", request_type)
        .append_pair("DataSign", &sign)
        .append_pair("DataType", if json { "2" } else { "1" });
    form.finish().into_bytes()
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let rig = RIG.get_or_init(rig);
    let route = ROUTES[usize::from(pick & 1)];
    let request_type = REQUEST_TYPES[usize::from(pick >> 1) % REQUEST_TYPES.len()];
    // Bit 7 clear: `rest` is RequestData, signed; set: `rest` is the whole raw body.
    let body = if pick & 0x80 == 0 {
        signed_form(&rig.ebusiness, request_type, rest, pick & 0x40 == 0)
    } else {
        rest.to_vec()
    };
    let request = Request::post(route)
        .header(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded;charset=utf-8",
        )
        .body(Body::from(body))
        .expect("request");
    let answer = rig
        .runtime
        .block_on(daemon_rig::answer(&rig.app, route, request));
    assert!(answer.is_object(), "{route}: {answer}");
});
