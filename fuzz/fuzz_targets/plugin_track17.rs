//! The track17 plugin's response parser on any answer.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use waybill_carrier_track17::Track17 as Plugin;
use waybill_sdk::Query;

#[path = "plugin.rs"]
mod plugin;

static SETUP: OnceLock<(Plugin, Query)> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let (p, q) = SETUP.get_or_init(|| {
        (
            plugin::instance(&[("api_key", "17t-fuzz")]),
            plugin::query(&[
                ("youzhengguoji", "RR123456785CN", None),
                ("yuantong", "YT7300000000202", None),
            ]),
        )
    });
    plugin::answer_every_request(p, q, data);
});
