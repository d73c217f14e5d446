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

fn bench_parts(c: &mut Criterion) {
    let guesser = Guesser::embedded();
    let mut group = c.benchmark_group("parts");
    for n in [
        "1Z5R89390357567127",
        "986578788855",
        "73100123456789",
        "9400111206206406260787",
        "4201028200009261290113185417468510",
        "SF1234567890123",
        "EA123456785CN",
    ] {
        group.bench_function(format!("guess_{n}"), |b| {
            let mut out = Vec::new();
            b.iter(|| {
                guesser.guess_into(black_box(n), &mut out).ok();
                out.len()
            })
        });
    }
    group.bench_function("normalize", |b| {
        b.iter(|| {
            waybill_core::guess::normalize(black_box("4201028200009261290113185417468510")).ok()
        })
    });
    let re = regex::Regex::new(r"^7[3-68]\d{12}$").unwrap();
    group.bench_function("regex_is_match", |b| {
        b.iter(|| re.is_match(black_box("73100123456789")))
    });
    group.finish();
}
criterion_group!(parts, bench_parts);

criterion_main!(benches, parts);
