//! The cost of the plugin boundary: one `start` + `resume` round through the loaded
//! `libwaybill_carrier_hexi.so` against the same type called in-process (both with
//! panic guards). The difference is the FFI overhead (conversions to and from the
//! `abi_stable` types).
//!
//! Run: `cargo build --release -p waybill-carrier-hexi && cargo bench -p waybill-carrier-hexi --bench ffi`
//! (benches link the rlib only; the first command builds the `.so`).

use std::path::PathBuf;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use waybill_carrier_hexi::Hexi;
use waybill_sdk::loader;
use waybill_sdk::{Config, HttpResponse, InProcess, Query, QueryWaybill, StepMachine};

fn library() -> PathBuf {
    // target/release/deps/ffi-xxxx → target/release/libwaybill_carrier_hexi.so
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .join("libwaybill_carrier_hexi.so")
}

fn round(m: &dyn StepMachine, query: &Query, token: &HttpResponse, track: &HttpResponse) {
    black_box(m.start(query));
    black_box(m.resume("token:HX240501000017", token));
    black_box(m.resume("track:HX240501000017", track));
}

fn bench(c: &mut Criterion) {
    let config = Config::from_pairs([("client_id", "demo"), ("client_secret", "x")]);
    let query = Query::new(vec![QueryWaybill::new("hexi", "HX240501000017")]);
    let token = HttpResponse::new(200, include_bytes!("../fixtures/token_ok.json").to_vec());
    let track = HttpResponse::new(200, include_bytes!("../fixtures/track_ok.json").to_vec())
        .with_header("Content-Type", "application/json");

    let in_process = InProcess::<Hexi>::new(&config).unwrap();
    let plugin = loader::load(&library()).unwrap_or_else(|e| panic!("{e}"));
    let loaded = plugin.instantiate(&config).unwrap();

    let mut g = c.benchmark_group("start+resume+resume (token, track of 5 events)");
    g.bench_function("in-process", |b| {
        b.iter(|| round(&in_process, &query, &token, &track))
    });
    g.bench_function("loaded .so", |b| {
        b.iter(|| round(&loaded, &query, &token, &track))
    });
    g.finish();

    let mut g = c.benchmark_group("start only");
    g.bench_function("in-process", |b| {
        b.iter(|| black_box(in_process.start(&query)))
    });
    g.bench_function("loaded .so", |b| b.iter(|| black_box(loaded.start(&query))));
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(50)
        .measurement_time(std::time::Duration::from_secs(3))
        .warm_up_time(std::time::Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
