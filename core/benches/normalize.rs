//! Lines per second of the built-in text normalizer over the labelled corpus.
//!
//! `cargo bench -p waybill-core --bench normalize`

use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use waybill_core::normalize::TextNormalizer;

const CORPUS: &str = include_str!("../tests/data/normalize_corpus.tsv");
const STATE_CORPUS: &str = include_str!("../corpus/lines.tsv");

/// The texts of the state corpus (both splits: throughput does not depend on labels).
fn state_corpus_lines() -> Vec<&'static str> {
    STATE_CORPUS
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.splitn(5, '\t').nth(4))
        .collect()
}

/// Lines per second of the whole decision (scrub, rules, the model where it answers) over
/// the 2,446 lines of `core/corpus/lines.tsv`, and of the model alone.
fn classify_state_corpus(c: &mut Criterion) {
    let lines = state_corpus_lines();
    let normalizer = TextNormalizer::builtin();
    let mut group = c.benchmark_group("state");
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.bench_function("classify_corpus_lines", |b| {
        b.iter(|| {
            for line in &lines {
                black_box(normalizer.classify_text(black_box(line)));
            }
        })
    });
    // The same rules without the model behind them, for the ratio.
    let rules_only = TextNormalizer::from_toml(waybill_core::normalize::BUILTIN_RULES)
        .expect("built-in rules compile");
    group.bench_function("classify_corpus_lines_rules_only", |b| {
        b.iter(|| {
            for line in &lines {
                black_box(rules_only.classify_text(black_box(line)));
            }
        })
    });
    let scrubbed: Vec<String> = lines.iter().map(|l| normalizer.scrubbed(l)).collect();
    let model = waybill_core::normalize::NgramModel::builtin();
    group.bench_function("model_predict_scrubbed", |b| {
        b.iter(|| {
            for line in &scrubbed {
                black_box(model.predict(black_box(line)));
            }
        })
    });
    group.finish();
}

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

/// CPU time consumed by the calling thread.
struct ThreadCpuTime;

fn thread_cpu_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant Linux supports.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

impl Measurement for ThreadCpuTime {
    type Intermediate = Duration;
    type Value = Duration;
    fn start(&self) -> Duration {
        thread_cpu_now()
    }
    fn end(&self, start: Duration) -> Duration {
        thread_cpu_now().saturating_sub(start)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuFormatter
    }
}

struct CpuFormatter;

impl ValueFormatter for CpuFormatter {
    fn scale_values(&self, typical_ns: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = if typical_ns < 1e3 {
            (1.0, "ns cpu")
        } else if typical_ns < 1e6 {
            (1e-3, "µs cpu")
        } else {
            (1e-6, "ms cpu")
        };
        values.iter_mut().for_each(|v| *v *= factor);
        unit
    }
    fn scale_throughputs(
        &self,
        _typical: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let per_iter = match *throughput {
            Throughput::Elements(n) | Throughput::Bytes(n) | Throughput::BytesDecimal(n) => n,
        } as f64;
        values
            .iter_mut()
            .for_each(|v| *v = per_iter * 1e9 / *v / 1e6);
        "Melem/s cpu"
    }
    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

/// The whole decision in CPU time of the benchmark thread (group `state_cpu`): the figure
/// that stays meaningful on a machine shared with other jobs.
fn classify_state_corpus_cpu(c: &mut Criterion<ThreadCpuTime>) {
    let lines = state_corpus_lines();
    let normalizer = TextNormalizer::builtin();
    let mut group = c.benchmark_group("state_cpu");
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.bench_function("classify_corpus_lines", |b| {
        b.iter(|| {
            for line in &lines {
                black_box(normalizer.classify_text(black_box(line)));
            }
        })
    });
    let rules_only = TextNormalizer::from_toml(waybill_core::normalize::BUILTIN_RULES)
        .expect("built-in rules compile");
    group.bench_function("classify_corpus_lines_rules_only", |b| {
        b.iter(|| {
            for line in &lines {
                black_box(rules_only.classify_text(black_box(line)));
            }
        })
    });
    let scrubbed: Vec<String> = lines.iter().map(|l| normalizer.scrubbed(l)).collect();
    let model = waybill_core::normalize::NgramModel::builtin();
    group.bench_function("model_predict_scrubbed", |b| {
        b.iter(|| {
            for line in &scrubbed {
                black_box(model.predict(black_box(line)));
            }
        })
    });
    group.bench_function("scrub_only", |b| {
        b.iter(|| {
            for line in &lines {
                black_box(normalizer.scrubbed(black_box(line)));
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

criterion_group!(
    benches,
    classify_corpus,
    classify_state_corpus,
    compile_builtin
);
criterion_group! {
    name = cpu;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = classify_state_corpus_cpu
}
criterion_main!(benches, cpu);
