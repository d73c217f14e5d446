//! Runs the SDK's conformance suite against the built `libwaybill_carrier_dhl.so`.

use waybill_sdk::conformance::{self, Suite};
use waybill_sdk::loader::LoadedPlugin;
use waybill_sdk::{Config, HttpResponse, Query, State, Step, StepMachine};

const STATE: &str = "track:00340434161094042557";
const KEY: &str = "dhl-conformance-key-0001";

fn load() -> LoadedPlugin {
    conformance::load_built("waybill_carrier_dhl")
}

fn config() -> Config {
    Config::from_pairs([("api_key", KEY)])
}

/// The suite, with the fixtures of `fixtures/conformance.json`.
fn suite() -> Suite {
    let sample = Query::single("dhl", "00340434161094042557");
    Suite::from_fixture_dir(config(), sample, &waybill_sdk::fixture_dir!())
}

#[test]
fn dhl_passes_the_conformance_suite_through_its_so() {
    let plugin = load();
    assert_eq!(plugin.manifest().codes, vec!["dhl"]);
    suite().run_loaded(&plugin);
}

#[test]
fn the_loaded_plugin_maps_states_and_keeps_the_key_out_of_errors() {
    let m = load().instantiate(&config()).unwrap();
    let ok = HttpResponse::new(200, include_bytes!("../fixtures/delivered.json").to_vec());
    let Step::Done(out) = m.resume(STATE, &ok) else {
        panic!("expected Done")
    };
    assert_eq!(
        out[0].result.as_ref().unwrap()[0].state,
        Some(State::Delivered)
    );
    let echo = format!(r#"{{"title":"Unauthorized","detail":"{KEY} unknown"}}"#);
    let Step::Failed(e) = m.resume(STATE, &HttpResponse::new(401, echo)) else {
        panic!("expected a failure")
    };
    assert_eq!(e.kind(), "unauthorized");
    assert!(!e.to_string().contains(KEY));
    let Step::Send(req) = m.start(&suite().sample) else {
        panic!("expected a request")
    };
    assert!(!req.state.contains(KEY));
}
