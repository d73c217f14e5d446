//! Runs the SDK's conformance suite against the built `libwaybill_carrier_fedex.so`,
//! through both steps (token, then track).

use waybill_sdk::conformance::{self, Suite};
use waybill_sdk::loader::LoadedPlugin;
use waybill_sdk::{drive, Config, HttpResponse, Query, QueryWaybill, State, Step, StepMachine};

const NUMBERS: &str = "794600000017,794600000025";
const SECRET: &str = "fx-conformance-secret-01";

fn load() -> LoadedPlugin {
    conformance::load_built("waybill_carrier_fedex")
}

fn config() -> Config {
    Config::from_pairs([("client_id", "l7xx-conformance"), ("client_secret", SECRET)])
}

fn sample() -> Query {
    Query::new(vec![
        QueryWaybill::new("fedex", "794600000017"),
        QueryWaybill::new("fedex", "794600000025"),
    ])
}

fn token() -> String {
    format!("token:{NUMBERS}")
}

fn body(status: u16, bytes: &[u8]) -> HttpResponse {
    HttpResponse::new(status, bytes.to_vec())
}

/// The suite, with the fixtures of `fixtures/conformance.json`.
fn suite() -> Suite {
    Suite::from_fixture_dir(config(), sample(), &waybill_sdk::fixture_dir!())
}

#[test]
fn fedex_passes_the_conformance_suite_through_its_so() {
    let plugin = load();
    assert_eq!(plugin.manifest().codes, vec!["fedex"]);
    assert_eq!(plugin.manifest().capabilities.max_batch, 30);
    suite().run_loaded(&plugin);
}

#[test]
fn the_loaded_plugin_runs_token_then_track_and_never_leaks_the_secret() {
    let m = load().instantiate(&config()).unwrap();
    let mut seen = Vec::new();
    let out = drive(&m, &sample(), |req| {
        seen.push(req.clone());
        if req.url.ends_with("/oauth/token") {
            body(200, include_bytes!("../fixtures/token_ok.json"))
        } else {
            body(200, include_bytes!("../fixtures/track_delivered.json"))
        }
    })
    .unwrap();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|r| !r.state.contains(SECRET)));
    assert!(!String::from_utf8_lossy(&seen[1].body).contains(SECRET));
    assert_eq!(
        out[0].result.as_ref().unwrap()[0].state,
        Some(State::Delivered)
    );
    assert_eq!(out[1].result.as_ref().unwrap_err().kind(), "not_found");

    let echo = format!(r#"{{"errors":[{{"code":"NOT.AUTHORIZED.ERROR","message":"{SECRET}"}}]}}"#);
    let Step::Failed(e) = m.resume(&token(), &HttpResponse::new(401, echo)) else {
        panic!("expected a failure")
    };
    assert_eq!(e.kind(), "unauthorized");
    assert!(!e.to_string().contains(SECRET));
}
