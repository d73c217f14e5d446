//! Runs the SDK's conformance suite against the built `libwaybill_carrier_dhl.so`.

use waybill_sdk::conformance::{self, Expect, Fixture, Suite};
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

fn suite() -> Suite {
    Suite {
        config: config(),
        sample: Query::single("dhl", "00340434161094042557"),
        fixtures: vec![
            Fixture::new(
                "in transit",
                STATE,
                HttpResponse::new(200, include_bytes!("../fixtures/in_transit.json").to_vec()),
                Expect::Done,
            ),
            Fixture::new(
                "delivered",
                STATE,
                HttpResponse::new(200, include_bytes!("../fixtures/delivered.json").to_vec()),
                Expect::Done,
            ),
            Fixture::new(
                "not found (per number)",
                STATE,
                HttpResponse::new(404, include_bytes!("../fixtures/not_found.json").to_vec()),
                Expect::Done,
            ),
            Fixture::new(
                "bad key",
                STATE,
                HttpResponse::new(
                    401,
                    include_bytes!("../fixtures/unauthorized.json").to_vec(),
                ),
                Expect::Failed("unauthorized"),
            ),
            Fixture::new(
                "quota",
                STATE,
                HttpResponse::new(
                    429,
                    include_bytes!("../fixtures/rate_limited.json").to_vec(),
                )
                .with_header("Retry-After", "3600"),
                Expect::Failed("rate_limited"),
            ),
            Fixture::new(
                "malformed body",
                STATE,
                HttpResponse::new(200, include_bytes!("../fixtures/malformed.json").to_vec()),
                Expect::Failed("bad_response"),
            ),
        ],
    }
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
