//! Trains the state model on the `train` rows of `core/corpus/lines.tsv` and writes
//! `core/rules/state_model.bin`; then reports the normalizer (rules + this model) on the
//! training rows, listing their misses.
//!
//! `cargo run -p waybill-core --example train_state_model [-- --heldout]`
//!
//! `--rules-only` reports the rules alone on the training rows and writes nothing.
//! `--heldout` also prints the accuracy on the held-back rows, per language and label, and
//! their confusion pairs: the figures for BENCHMARKS.md. Their lines are never printed, so
//! rules are not written against them.

use std::collections::BTreeMap;
use std::sync::Arc;

use waybill_core::normalize::{NgramModel, TextNormalizer, BUILTIN_RULES};
use waybill_core::state::State;

const CORPUS: &str = include_str!("../corpus/lines.tsv");

struct Row {
    heldout: bool,
    label: State,
    lang: &'static str,
    text: &'static str,
}

fn rows() -> Vec<Row> {
    CORPUS
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let c: Vec<&str> = l.splitn(5, '\t').collect();
            let label = State::ALL
                .into_iter()
                .find(|s| s.name() == c[1])
                .unwrap_or_else(|| panic!("unknown label {}", c[1]));
            Row {
                heldout: c[0] == "heldout",
                label,
                lang: c[2],
                text: c[4],
            }
        })
        .collect()
}

fn main() {
    let heldout = std::env::args().any(|a| a == "--heldout");
    // `--rules-only`: the rules without the model on the training rows, to see where the
    // rules themselves are weak.
    if std::env::args().any(|a| a == "--rules-only") {
        let rules = TextNormalizer::from_toml(BUILTIN_RULES).expect("built-in rules compile");
        report(&rules, rows().iter().filter(|r| !r.heldout), true);
        return;
    }
    let rows = rows();
    let rules = TextNormalizer::from_toml(BUILTIN_RULES).expect("built-in rules compile");
    let scrubbed: Vec<(String, State)> = rows
        .iter()
        .filter(|r| !r.heldout)
        .map(|r| (rules.scrubbed(r.text), r.label))
        .collect();
    let model = NgramModel::train(scrubbed.iter().map(|(t, s)| (t.as_str(), *s)))
        .expect("the corpus has training rows");
    let bytes = model.to_bytes();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/rules/state_model.bin");
    std::fs::write(path, &bytes).expect("write the model");
    println!(
        "model: {} classes, {} features, {} bytes -> {path}",
        model.classes().len(),
        model.vocabulary(),
        bytes.len()
    );
    let n = rules.with_model(Arc::new(model));
    report(&n, rows.iter().filter(|r| !r.heldout), true);
    if heldout {
        println!("\n== held-back split ==");
        report(&n, rows.iter().filter(|r| r.heldout), false);
    }
}

fn report<'a>(n: &TextNormalizer, rows: impl Iterator<Item = &'a Row>, list_misses: bool) {
    let mut per_lang: BTreeMap<&str, (u32, u32)> = BTreeMap::new();
    let mut per_label: BTreeMap<&str, (u32, u32)> = BTreeMap::new();
    let mut per_code: (u32, u32) = (0, 0);
    let mut confusion: BTreeMap<(&str, &str), u32> = BTreeMap::new();
    let mut by_model = (0u32, 0u32);
    for r in rows {
        let c = n.classify_text(r.text);
        let ok = c.state == r.label;
        let count = |e: &mut (u32, u32)| {
            e.1 += 1;
            e.0 += u32::from(ok);
        };
        count(per_lang.entry(r.lang).or_default());
        count(per_lang.entry("all").or_default());
        count(per_label.entry(r.label.name()).or_default());
        per_code.1 += 1;
        per_code.0 += u32::from(c.state.kuaidi100_advanced() == r.label.kuaidi100_advanced());
        if c.rule == "model" {
            by_model.1 += 1;
            by_model.0 += u32::from(ok);
        }
        if !ok {
            *confusion
                .entry((r.label.name(), c.state.name()))
                .or_default() += 1;
            if list_misses {
                println!(
                    "MISS {} -> {} [{} {:.2}] {}",
                    r.label.name(),
                    c.state.name(),
                    c.rule,
                    c.confidence,
                    r.text
                );
            }
        }
    }
    let pct = |(a, b): (u32, u32)| 100.0 * f64::from(a) / f64::from(b.max(1));
    for (lang, v) in &per_lang {
        println!("{lang}: {}/{} = {:.2} %", v.0, v.1, pct(*v));
    }
    println!(
        "same kuaidi100 advanced code: {}/{} = {:.2} %",
        per_code.0,
        per_code.1,
        pct(per_code)
    );
    println!(
        "answered by the model: {} lines, {:.2} % right",
        by_model.1,
        pct(by_model)
    );
    println!("| label | lines | right | accuracy |");
    for (label, v) in &per_label {
        println!("| `{label}` | {} | {} | {:.1} % |", v.1, v.0, pct(*v));
    }
    let mut pairs: Vec<_> = confusion.into_iter().collect();
    pairs.sort_by_key(|p| std::cmp::Reverse(p.1));
    println!("confusions (expected -> got):");
    for ((e, g), k) in pairs {
        println!("  {e} -> {g}: {k}");
    }
}
