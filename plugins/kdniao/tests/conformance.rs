//! Runs the SDK's conformance suite against the built `libwaybill_carrier_kdniao.so`.

use waybill_sdk::conformance::{self, Suite};
use waybill_sdk::{Config, Query, QueryWaybill};

#[test]
fn kdniao_passes_the_conformance_suite_through_its_so() {
    let plugin = conformance::load_built("waybill_carrier_kdniao");
    let m = plugin.manifest();
    assert_eq!(m.codes, vec!["kdniao"]);
    assert!(m.aggregator);
    let config = Config::from_pairs([("ebusiness_id", "1700000"), ("app_key", "kdn-conformance")]);
    let sample = Query::new(vec![QueryWaybill::new("yuantong", "YT7300000000202")]);
    Suite::from_fixture_dir(config, sample, &waybill_sdk::fixture_dir!()).run_loaded(&plugin);
}
