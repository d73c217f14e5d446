//! Guesser throughput on one thread, in numbers per second.
//!
//! The corpus is the tracking_number_data test numbers (as written, spaces included) plus
//! our Chinese cases: the same numbers the peer harnesses in `bench/peers/` read.
//!
//! Two groups: `guess` measures wall time (criterion's default); `guess_cpu` measures the
//! CPU time of the benchmark thread, which stays meaningful on a machine shared with other
//! jobs, and is what the peer harnesses measure too (process CPU time).

use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use waybill_core::guess::{Guesser, Prior, PriorCount, PREFIX_LEN};

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

/// A learned prior as a store would count it: every labelled Chinese number confirmed.
fn prior(guesser: &Guesser) -> Prior {
    let counts = include_str!("../tests/data/cn_numbers.tsv")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split('\t');
            let (number, carrier) = (f.next()?, f.next()?);
            Some(PriorCount {
                carrier: carrier.to_owned(),
                length: number.len(),
                prefix: number.chars().take(PREFIX_LEN).collect(),
                count: 1,
            })
        });
    Prior::from_counts(counts, guesser.catalog()).with_min_samples(5)
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

fn bench_wall(c: &mut Criterion) {
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

fn bench_cpu(c: &mut Criterion<ThreadCpuTime>) {
    let numbers = corpus();
    let guesser = Guesser::embedded();
    let mut group = c.benchmark_group("guess_cpu");
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
    let prior = prior(guesser);
    group.bench_function("corpus_guess_into_with_prior", |b| {
        let mut out = Vec::new();
        b.iter(|| {
            let mut found = 0usize;
            for n in &numbers {
                if guesser
                    .guess_into_with(black_box(n), Some(&prior), &mut out)
                    .is_ok()
                {
                    found += out.len();
                }
            }
            found
        })
    });
    group.finish();
}

criterion_group!(wall, bench_wall);
criterion_group! {
    name = cpu;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = bench_cpu
}
criterion_main!(wall, cpu);
