//! The place of every line, end to end: sandbox waybills subscribed with `resultv2=1`
//! and a kuaidi100-style destination get pushes whose lines carry real `areaCode` and
//! `areaName`, filled by the daemon from the carrier's text.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use waybill_core::carrier::{Delivery, Notifier, Push, Reply};
use waybill_core::clock::ManualClock;
use waybill_core::place::Place;
use waybill_host::latency::{LatencyProbe, VirtualDriver};
use waybill_host::sandbox::{sandbox_numbers, SandboxOptions, SandboxStack};
use waybill_host::store::{NewSubscription, SubscribeOptions, DEFAULT_MONTHLY_SUBSCRIBE_LIMIT};

use crate::support::target_dir;

/// Keeps the `param` of every push it is handed and acknowledges it.
#[derive(Default)]
struct Keep(Mutex<Vec<serde_json::Value>>);

#[async_trait]
impl Notifier for Keep {
    async fn deliver(&self, push: &Push) -> Delivery {
        for (k, v) in url::form_urlencoded::parse(&push.body) {
            if k == "param" {
                if let Ok(v) = serde_json::from_str(&v) {
                    self.0.lock().expect("lock").push(v);
                }
            }
        }
        Delivery::Answered(Reply::ok(r#"{"result":true,"returnCode":"200"}"#))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resultv2_1_push_carries_the_area_of_each_line() {
    let dir = tempfile::tempdir().expect("dir");
    let t0: Timestamp = "2024-06-18T08:00:00+08:00".parse().expect("ts");
    let clock = Arc::new(ManualClock::new(t0));
    let keep = Arc::new(Keep::default());
    let mut options = SandboxOptions::new(dir.path());
    options.plugin_dir = Some(target_dir());
    options.notifier = Some(keep.clone());
    let stack = SandboxStack::start(options, clock.clone())
        .await
        .expect("stack");
    let tenant = stack.tenant("shop", "kp").await.expect("tenant");
    let numbers = sandbox_numbers("SBP", 20);
    let subs: Vec<NewSubscription> = numbers
        .iter()
        .map(|n| NewSubscription {
            tenant_id: tenant.id,
            company: "sandbox".into(),
            number: n.clone(),
            phone: None,
            from: None,
            to: Some("广东省深圳市南山区".into()),
            callback_url: "http://receiver.invalid/cb".into(),
            salt: Some("salt".into()),
            dialect: "kuaidi100".into(),
            dialect_params: Default::default(),
            options: SubscribeOptions {
                resultv2: 1,
                ..SubscribeOptions::default()
            },
            next_check_at: t0,
            created_at: t0,
        })
        .collect();
    stack
        .store
        .subscribe_many(&subs, DEFAULT_MONTHLY_SUBSCRIBE_LIMIT)
        .await
        .expect("subscribe");
    for n in &numbers {
        stack.sim.register(n, t0).expect("journey");
    }
    let driver = VirtualDriver {
        engine: stack.engine.clone(),
        clock: clock.clone(),
        probe: LatencyProbe::new(),
        quantum: SignedDuration::from_mins(30),
    };
    driver
        .run_until(t0 + SignedDuration::from_hours(24 * 10))
        .await
        .expect("run");

    let pushes = keep.0.lock().expect("lock").clone();
    assert!(!pushes.is_empty(), "pushes were sent");
    let (mut lines, mut located) = (0, 0);
    for p in &pushes {
        for line in p["lastResult"]["data"].as_array().expect("data") {
            lines += 1;
            assert!(
                line["status"].is_string(),
                "resultv2=1 names each line's status: {line}"
            );
            let (code, name) = (&line["areaCode"], &line["areaName"]);
            if code.is_null() {
                assert!(name.is_null(), "{line}");
                continue;
            }
            located += 1;
            let code = code.as_str().expect("code");
            assert!(code.len() == 12 && code.ends_with("000000"), "{code}");
            let place = Place::from_area_code(code).expect("a GB/T 2260 code");
            assert_eq!(name.as_str(), Some(place.area_name().as_str()), "{line}");
            // A hub's line names its own place; other lines may take the carrier's
            // location field, which the push does not show.
            let context = line["context"].as_str().unwrap_or("");
            if !context.contains("转运中心") {
                continue;
            }
            let stem = |n: &str| n.trim_end_matches(['市', '区', '县']).to_owned();
            let named = [place.city, place.district]
                .into_iter()
                .flatten()
                .map(stem)
                .any(|s| context.contains(&s));
            assert!(named, "{code} {place:?} for {context:?}");
        }
    }
    // Lines that only say 已签收 without a place stay null; the rest have an area.
    assert!(
        located * 10 >= lines * 8,
        "{located} of {lines} lines have an area"
    );
    stack.shutdown().await.expect("shutdown");
}
