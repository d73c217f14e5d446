//! Lines per second of the place reader, alone and together with the state normalizer
//! (the work the daemon does on every line it receives).
//!
//! `cargo bench -p waybill-core --bench place -- --warm-up-time 1 --measurement-time 3`

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use waybill_core::normalize::TextNormalizer;
use waybill_core::place::{locate_line, locate_trace, parse_address};

const PLACES: &str = include_str!("../corpus/places.tsv");
const STATES: &str = include_str!("../tests/data/normalize_corpus.tsv");

/// Every line of both corpora: lines naming places and lines of every state.
fn lines() -> Vec<&'static str> {
    let places = PLACES
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.splitn(5, '\t').nth(4));
    let states = STATES
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.splitn(3, '\t').nth(2));
    places.chain(states).collect()
}

fn place(c: &mut Criterion) {
    let lines = lines();
    let normalizer = TextNormalizer::builtin();
    // Build the division table outside the measurement.
    black_box(locate_line("北京"));
    let mut group = c.benchmark_group("place");
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.bench_function("locate_line", |b| {
        b.iter(|| {
            for line in &lines {
                black_box(locate_line(black_box(line)));
            }
        })
    });
    group.bench_function("state_only", |b| {
        b.iter(|| {
            for line in &lines {
                black_box(normalizer.classify_text(black_box(line)));
            }
        })
    });
    group.bench_function("state_and_place", |b| {
        b.iter(|| {
            for line in &lines {
                black_box(normalizer.classify_text(black_box(line)));
                black_box(locate_line(black_box(line)));
            }
        })
    });
    group.bench_function("locate_trace", |b| {
        b.iter(|| {
            black_box(locate_trace(
                lines.iter().copied(),
                None,
                Some("广东省深圳市南山区"),
            ))
        })
    });
    group.finish();
    c.bench_function("place/parse_address", |b| {
        b.iter(|| black_box(parse_address(black_box("广东省深圳市南山区粤海街道科技园"))))
    });
}

criterion_group!(benches, place);
criterion_main!(benches);
