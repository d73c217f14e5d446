//! Lines per second of the built-in text normalizer over the labelled corpus.
//!
//! `cargo bench -p waybill-core --bench normalize`

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use waybill_core::normalize::TextNormalizer;

const CORPUS: &str = include_str!("../tests/data/normalize_corpus.tsv");

fn corpus_lines() -> Vec<&'static str> {
    CORPUS
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.splitn(3, '\t').nth(2))
        .collect()
}

fn classify_corpus(c: &mut Criterion) {
    let lines = corpus_lines();
    let normalizer = TextNormalizer::builtin();
    let mut group = c.benchmark_group("normalize");
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.bench_function("classify_corpus", |b| {
        b.iter(|| {
            for line in &lines {
                black_box(normalizer.classify_text(black_box(line)));
            }
        })
    });
    group.finish();
}

fn compile_builtin(c: &mut Criterion) {
    c.bench_function("normalize/compile_builtin_rules", |b| {
        b.iter(|| TextNormalizer::from_toml(black_box(waybill_core::normalize::BUILTIN_RULES)))
    });
}

criterion_group!(benches, classify_corpus, compile_builtin);
criterion_main!(benches);
