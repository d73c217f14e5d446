//! Guesser throughput on one thread, in numbers per second.
//!
//! The corpus is the tracking_number_data test numbers (as written, spaces included) plus
//! our Chinese cases: the same file the peer harnesses in `bench/peers/` read.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use waybill_core::guess::Guesser;

const TND_CASES: &str = include_str!("../tests/data/tracking_number_data_cases.jsonl");
const CN_CASES: &str = include_str!("../tests/data/cn_cases.jsonl");

fn corpus() -> Vec<String> {
    TND_CASES
        .lines()
        .chain(CN_CASES.lines())
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|v| v["number"].as_str().map(str::to_owned))
        .collect()
}

fn bench_guess(c: &mut Criterion) {
    let numbers = corpus();
    let guesser = Guesser::embedded();
    let mut group = c.benchmark_group("guess");
    group.throughput(Throughput::Elements(numbers.len() as u64));
    group.bench_function("corpus_guess_into", |b| {
        let mut out = Vec::new();
        b.iter(|| {
            let mut found = 0usize;
            for n in &numbers {
                if guesser.guess_into(black_box(n), &mut out).is_ok() {
                    found += out.len();
                }
            }
            found
        })
    });
    group.bench_function("corpus_guess_vec", |b| {
        b.iter(|| {
            numbers
                .iter()
                .filter_map(|n| guesser.guess(black_box(n)).ok())
                .map(|v| v.len())
                .sum::<usize>()
        })
    });
    group.finish();
}

criterion_group!(benches, bench_guess);
criterion_main!(benches);
