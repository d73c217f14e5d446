//! The kuaidi100 plugin's response parser on any answer.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use waybill_carrier_kuaidi100::Kuaidi100 as Plugin;
use waybill_sdk::Query;

#[path = "plugin.rs"]
mod plugin;

static SETUP: OnceLock<(Plugin, Query)> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let (p, q) = SETUP.get_or_init(|| {
        (
            plugin::instance(&[("customer", "CUST0001"), ("key", "KEY0001")]),
            plugin::query(&[("yuantong", "YT7300000000101", Some("13800001234"))]),
        )
    });
    plugin::answer_every_request(p, q, data);
});
