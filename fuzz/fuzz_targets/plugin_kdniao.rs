//! The kdniao plugin's response parser on any answer.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use waybill_carrier_kdniao::Kdniao as Plugin;
use waybill_sdk::Query;

#[path = "plugin.rs"]
mod plugin;

static SETUP: OnceLock<(Plugin, Query)> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let (p, q) = SETUP.get_or_init(|| {
        (
            plugin::instance(&[("ebusiness_id", "1700000"), ("app_key", "kdn-fuzz")]),
            plugin::query(&[("yuantong", "YT7300000000202", None)]),
        )
    });
    plugin::answer_every_request(p, q, data);
});
