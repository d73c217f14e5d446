//! The zto plugin's response parser on any answer.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use waybill_carrier_zto::Zto as Plugin;
use waybill_sdk::Query;

#[path = "plugin.rs"]
mod plugin;

static SETUP: OnceLock<(Plugin, Query)> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let (p, q) = SETUP.get_or_init(|| {
        (
            plugin::instance(&[("app_key", "APPKEY01"), ("app_secret", "APPSECRET01")]),
            plugin::query(&[("zhongtong", "73100000000017", Some("13800005678"))]),
        )
    });
    plugin::answer_every_request(p, q, data);
});
