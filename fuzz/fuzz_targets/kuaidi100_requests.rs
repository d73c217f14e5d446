//! The kuaidi100 dialect's request parsing through the daemon's own router: any body, form
//! or not, on `/poll`, `/poll/query.do` and `/autonumber/auto`. Every answer is HTTP 200
//! with a JSON body carrying a kuaidi100 code, never a panic or an HTTP error.
//!
//! The first input byte picks the route and the content type; the rest is the body. The
//! store is a real SQLite database in a temporary directory with one tenant (key
//! `FUZZKEY0001`, customer `FUZZCUSTOMER01`), so subscriptions the fuzzer writes are stored.
#![no_main]

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{header, Request};
use axum::Router;
use libfuzzer_sys::fuzz_target;
use waybill_core::carrier::Carrier;
use waybill_core::clock::ManualClock;
use waybill_host::api::{router, Api, ApiConfig, Metrics};
use waybill_host::engine::{Engine, EngineConfig};
use waybill_host::store::{NewTenant, SqliteStore, Store};

#[path = "daemon_rig.rs"]
mod daemon_rig;
use daemon_rig::{Nowhere, Unknown};

struct Rig {
    runtime: tokio::runtime::Runtime,
    app: Router,
    _dir: tempfile::TempDir,
}

fn rig() -> Rig {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temporary directory");
    let app = runtime.block_on(async {
        let now = "2024-06-01T00:00:00Z".parse().expect("instant");
        let store = Arc::new(SqliteStore::open_dir(dir.path()).await.expect("store"));
        store
            .create_tenant(
                &NewTenant {
                    name: "fuzz".into(),
                    key: "FUZZKEY0001".into(),
                    customer: Some("FUZZCUSTOMER01".into()),
                },
                now,
            )
            .await
            .expect("tenant");
        let carriers: Vec<Arc<dyn Carrier>> = vec![Arc::new(Unknown)];
        let engine = Engine::with_notifier(
            store,
            carriers.clone(),
            Arc::new(ManualClock::new(now)),
            Arc::new(Nowhere),
            EngineConfig::default(),
        );
        router(Api::new(
            engine,
            ApiConfig::default(),
            Arc::new(Metrics::default()),
        ))
    });
    Rig {
        runtime,
        app,
        _dir: dir,
    }
}

static RIG: OnceLock<Rig> = OnceLock::new();

const ROUTES: [&str; 3] = ["/poll", "/poll/query.do", "/autonumber/auto"];
const TYPES: [&str; 3] = [
    "application/x-www-form-urlencoded",
    "application/json",
    "text/plain; charset=gbk",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let rig = RIG.get_or_init(rig);
    let route = ROUTES[usize::from(pick) % ROUTES.len()];
    let kind = TYPES[usize::from(pick / 3) % TYPES.len()];
    let request = Request::post(route)
        .header(header::CONTENT_TYPE, kind)
        .body(Body::from(body.to_vec()))
        .expect("request");
    let answer = rig
        .runtime
        .block_on(daemon_rig::answer(&rig.app, route, request));
    assert!(answer.is_object() || answer.is_array(), "{route}: {answer}");
});
