//! The built-in normalizer against the labelled corpus `tests/data/normalize_corpus.tsv`:
//! at least 97 % of the lines must get their labelled state.

use std::collections::BTreeSet;

use waybill_core::normalize::TextNormalizer;
use waybill_core::state::State;

const CORPUS: &str = include_str!("data/normalize_corpus.tsv");

struct Case {
    line_no: usize,
    expected: State,
    style: &'static str,
    text: &'static str,
}

fn cases() -> Vec<Case> {
    CORPUS
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .map(|(i, l)| {
            let mut cols = l.splitn(3, '\t');
            let (state, style, text) = match (cols.next(), cols.next(), cols.next()) {
                (Some(a), Some(b), Some(c)) => (a, b, c),
                _ => panic!("line {}: expected three tab-separated columns", i + 1),
            };
            let expected = serde_json::from_value(serde_json::Value::String(state.into()))
                .unwrap_or_else(|_| panic!("line {}: unknown state {state:?}", i + 1));
            Case {
                line_no: i + 1,
                expected,
                style,
                text,
            }
        })
        .collect()
}

#[test]
fn corpus_is_large_and_varied_enough() {
    let cases = cases();
    assert!(cases.len() >= 300, "only {} lines", cases.len());
    let chinese = [
        "sf",
        "zto",
        "yto",
        "sto",
        "yunda",
        "jd",
        "jtexpress",
        "ems",
        "deppon",
        "best",
    ];
    let international = ["ups", "fedex", "dhl", "usps"];
    let styles: BTreeSet<&str> = cases.iter().map(|c| c.style).collect();
    for s in chinese.iter().chain(&international) {
        assert!(styles.contains(s), "no line in the style of {s}");
    }
    let states: BTreeSet<State> = cases.iter().map(|c| c.expected).collect();
    assert!(states.len() >= 38, "only {} states covered", states.len());
}

#[test]
fn builtin_normalizer_classifies_at_least_97_percent_of_the_corpus() {
    let n = TextNormalizer::builtin();
    let cases = cases();
    let mut wrong = Vec::new();
    for c in &cases {
        let got = n.classify_text(c.text);
        if got.state != c.expected {
            wrong.push(format!(
                "  line {:>3} [{}] expected {}, got {} by {}: {}",
                c.line_no,
                c.style,
                c.expected.name(),
                got.state.name(),
                got.rule,
                c.text
            ));
        }
    }
    let accuracy = 1.0 - wrong.len() as f64 / cases.len() as f64;
    println!(
        "accuracy {:.2} % ({} of {} lines right)",
        accuracy * 100.0,
        cases.len() - wrong.len(),
        cases.len()
    );
    if !wrong.is_empty() {
        println!("misclassified:\n{}", wrong.join("\n"));
    }
    assert!(
        accuracy >= 0.97,
        "accuracy {:.2} % is below 97 %; misclassified:\n{}",
        accuracy * 100.0,
        wrong.join("\n")
    );
}
