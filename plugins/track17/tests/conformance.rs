//! Runs the SDK's conformance suite against the built `libwaybill_carrier_track17.so`.

use waybill_sdk::conformance::{self, Suite};
use waybill_sdk::{Config, Query, QueryWaybill};

#[test]
fn track17_passes_the_conformance_suite_through_its_so() {
    let plugin = conformance::load_built("waybill_carrier_track17");
    let m = plugin.manifest();
    assert_eq!(m.codes, vec!["17track"]);
    assert!(m.aggregator);
    assert_eq!(m.capabilities.max_batch, 40);
    let sample = Query::new(vec![
        QueryWaybill::new("youzhengguoji", "RR123456785CN"),
        QueryWaybill::new("yuantong", "YT7300000000202"),
    ]);
    Suite::from_fixture_dir(
        Config::from_pairs([("api_key", "17t-conformance")]),
        sample,
        &waybill_sdk::fixture_dir!(),
    )
    .run_loaded(&plugin);
}
