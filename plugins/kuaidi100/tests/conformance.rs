//! Runs the SDK's conformance suite against the built `libwaybill_carrier_kuaidi100.so`.

use waybill_sdk::conformance::{self, Suite};
use waybill_sdk::loader::LoadedPlugin;
use waybill_sdk::{Config, HttpResponse, Query, QueryWaybill, State, Step, StepMachine};

const STATE: &str = "query:YT7300000000101";
const KEY: &str = "kEy-conformance-0001";

fn load() -> LoadedPlugin {
    conformance::load_built("waybill_carrier_kuaidi100")
}

fn ok(body: &[u8]) -> HttpResponse {
    HttpResponse::new(200, body.to_vec())
}

fn config() -> Config {
    Config::from_pairs([("customer", "CUST0001"), ("key", KEY)])
}

/// The suite, with the fixtures of `fixtures/conformance.json`.
fn suite() -> Suite {
    let sample = Query::new(vec![
        QueryWaybill::new("yuantong", "YT7300000000101").with_phone("13800001234")
    ]);
    Suite::from_fixture_dir(config(), sample, &waybill_sdk::fixture_dir!())
}

#[test]
fn kuaidi100_passes_the_conformance_suite_through_its_so() {
    let plugin = load();
    assert_eq!(plugin.manifest().codes, vec!["kuaidi100"]);
    assert_eq!(plugin.manifest().capabilities.max_batch, 1);
    suite().run_loaded(&plugin);
}

#[test]
fn the_loaded_plugin_maps_states_and_classifies_per_waybill() {
    let m = load().instantiate(&config()).unwrap();
    let Step::Done(out) = m.resume(STATE, &ok(include_bytes!("../fixtures/delivered.json"))) else {
        panic!("expected Done")
    };
    assert_eq!(
        out[0].result.as_ref().unwrap()[0].state,
        Some(State::DeliveredFromLocker)
    );
    let Step::Done(out) = m.resume(STATE, &ok(include_bytes!("../fixtures/not_found.json"))) else {
        panic!("expected Done")
    };
    assert_eq!(out[0].result.as_ref().unwrap_err().kind(), "not_found");
}

#[test]
fn the_loaded_plugin_keeps_the_key_out_of_requests_state_and_errors() {
    let m = load().instantiate(&config()).unwrap();
    let Step::Send(req) = m.start(&suite().sample) else {
        panic!("expected a request")
    };
    assert!(!req.state.contains(KEY));
    assert!(!String::from_utf8_lossy(&req.body).contains(KEY));
    let echo = format!(r#"{{"result":false,"returnCode":"601","message":"key {KEY} expired"}}"#);
    let Step::Failed(e) = m.resume(STATE, &ok(echo.as_bytes())) else {
        panic!("expected a failure")
    };
    assert_eq!(e.kind(), "unauthorized");
    assert!(!e.to_string().contains(KEY), "{e}");
}
