//! The shunfeng plugin's response parser on any answer.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use waybill_carrier_shunfeng::Shunfeng as Plugin;
use waybill_sdk::Query;

#[path = "plugin.rs"]
mod plugin;

static SETUP: OnceLock<(Plugin, Query)> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let (p, q) = SETUP.get_or_init(|| {
        (
            plugin::instance(&[("partner_id", "PARTNER01"), ("checkword", "CHECKWORD01")]),
            plugin::query(&[
                ("shunfeng", "SF1400000000017", Some("13800005678")),
                ("shunfeng", "SF1400000000025", None),
            ]),
        )
    });
    plugin::answer_every_request(p, q, data);
});
