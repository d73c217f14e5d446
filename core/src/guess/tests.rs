use super::*;
use proptest::prelude::*;
use serde::Deserialize;

const TND_CASES: &str = include_str!("../../tests/data/tracking_number_data_cases.jsonl");
const CN_CASES: &str = include_str!("../../tests/data/cn_cases.jsonl");

#[derive(Deserialize)]
struct TndCase {
    number: String,
    courier: String,
    valid: bool,
    format: String,
}

#[derive(Deserialize)]
struct CnCase {
    number: String,
    carrier: String,
    top1: bool,
}

fn tnd_cases() -> Vec<TndCase> {
    TND_CASES
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Whether a candidate is the tnd case's courier. tnd's courier `s10` means "a UPU post";
/// the guesser names the post itself (`royalmail`, `usps`, …) with the format `s10`.
fn is_tnd_courier(g: &Guesser, case: &TndCase, c: &Candidate<'_>) -> bool {
    if case.courier == "s10" {
        return c.format == "s10";
    }
    g.catalog().resolve(&case.courier) == Some(c.carrier)
}

/// Ranks of the expected carrier over the valid tnd cases: (top-1 hits, top-3 hits, total).
fn tnd_ranking(g: &Guesser) -> (usize, usize, usize) {
    let (mut top1, mut top3, mut total) = (0, 0, 0);
    for case in tnd_cases().iter().filter(|c| c.valid) {
        let found = g.guess(&case.number).unwrap();
        let rank = found.iter().position(|c| is_tnd_courier(g, case, c));
        total += 1;
        top1 += usize::from(rank == Some(0));
        top3 += usize::from(rank.is_some_and(|r| r < 3));
    }
    (top1, top3, total)
}

#[test]
fn rule_file_covers_all_39_tracking_number_data_formats() {
    let cases = tnd_cases();
    let formats: std::collections::HashSet<&str> =
        cases.iter().map(|c| c.format.as_str()).collect();
    let ids: Vec<&str> = Guesser::embedded()
        .formats()
        .map(|f| f.id.as_str())
        .collect();
    for format in &formats {
        assert!(ids.contains(format), "format {format} missing");
    }
    assert_eq!(formats.len(), 39);
}

#[test]
fn every_valid_tnd_number_has_its_courier_verified_or_matched_in_its_own_format() {
    let g = Guesser::embedded();
    for case in tnd_cases().iter().filter(|c| c.valid) {
        let found = g.guess(&case.number).unwrap();
        let own = found
            .iter()
            .find(|c| c.format == case.format)
            .unwrap_or_else(|| panic!("{} not matched as {}", case.number, case.format));
        assert!(is_tnd_courier(g, case, own), "{own:?}");
        assert!(
            matches!(own.checksum, Checksum::Verified | Checksum::None),
            "{} fails its own check: {:?}",
            case.number,
            own
        );
    }
}

#[test]
fn no_invalid_tnd_number_is_verified_for_its_own_format() {
    let g = Guesser::embedded();
    for case in tnd_cases().iter().filter(|c| !c.valid) {
        let found = g.guess(&case.number).unwrap();
        let own = found
            .iter()
            .find(|c| c.format == case.format && c.checksum != Checksum::Failed);
        assert!(
            own.is_none(),
            "{} accepted as {}: {:?}",
            case.number,
            case.format,
            own
        );
    }
}

#[test]
fn tnd_ranking_reaches_190_of_192_top_1_and_every_courier_in_the_top_3() {
    let (top1, top3, total) = tnd_ranking(Guesser::embedded());
    let (top1_us, top3_us, _) = tnd_ranking(&Guesser::default().with_region("US"));
    println!("tnd valid cases: top-1 {top1}/{total}, top-3 {top3}/{total} (region CN)");
    println!("tnd valid cases: top-1 {top1_us}/{total}, top-3 {top3_us}/{total} (region US)");
    assert_eq!(total, 192);
    assert!(top1 >= 190, "top-1 {top1}");
    assert_eq!(top3, total, "top-3 {top3}");
}

#[test]
fn chinese_numbers_rank_their_carrier_as_expected() {
    let g = Guesser::embedded();
    for line in CN_CASES.lines().filter(|l| !l.trim().is_empty()) {
        let case: CnCase = serde_json::from_str(line).unwrap();
        let found = g.guess(&case.number).unwrap();
        let rank = found.iter().position(|c| c.carrier == case.carrier);
        let rank = rank.unwrap_or_else(|| panic!("{}: {found:#?}", case.number));
        if case.top1 {
            assert_eq!(rank, 0, "{}: {found:#?}", case.number);
        }
    }
}

#[test]
fn chinese_14_digit_numbers_beat_dhl_ecommerce_14() {
    let g = Guesser::embedded();
    for number in ["73100123456789", "77301234567890", "76999999999999"] {
        let found = g.guess(number).unwrap();
        let dhl = found.iter().position(|c| c.format == "dhl_ecommerce_14");
        assert!(dhl.is_some_and(|d| d > 0), "{number}: {found:#?}");
    }
}

#[test]
fn ems_domestic_hint_raises_rank_but_never_rejects() {
    let g = Guesser::embedded();
    let good = g.guess("1112345678501").unwrap();
    let bad = g.guess("1112345678601").unwrap();
    let good_ems = good.iter().find(|c| c.format == "ems_domestic").unwrap();
    let bad_ems = bad.iter().find(|c| c.format == "ems_domestic").unwrap();
    assert_eq!(good_ems.checksum, Checksum::HintMatched);
    assert_eq!(bad_ems.checksum, Checksum::HintFailed);
    assert!(good_ems.score > bad_ems.score);
    assert_eq!(bad[0].carrier, "ems");
}

#[test]
fn s10_maps_china_to_ems_or_china_post_and_others_to_their_post() {
    let g = Guesser::embedded();
    let ems = g.guess("EA123456785CN").unwrap();
    assert_eq!(ems[0].format, "s10_cn_ems");
    assert_eq!(
        g.guess("RB123456785CN").unwrap()[0].carrier,
        "youzhengguoji"
    );
    let gb = g.guess("RB123456785GB").unwrap();
    assert_eq!((gb[0].carrier, gb[0].format), ("royalmail", "s10"));
    assert!(
        gb[0].reason.to_string().contains("Royal Mail"),
        "{}",
        gb[0].reason
    );
}

#[test]
fn s10_with_an_unknown_country_is_not_a_candidate() {
    let found = Guesser::embedded().guess("RB123456785XX").unwrap();
    assert!(found.iter().all(|c| !c.format.starts_with("s10")));
}

#[test]
fn brief_example_with_wrong_check_digit_is_listed_as_failed() {
    let found = Guesser::embedded().guess("EA123456789CN").unwrap();
    let ems = found.iter().find(|c| c.format == "s10_cn_ems").unwrap();
    assert_eq!(ems.checksum, Checksum::Failed);
}

#[test]
fn region_prior_breaks_ties_only() {
    // 12 digits: SF legacy (CN) and ZTO legacy are never above a verified FedEx number.
    let cn = Guesser::embedded().guess("986578788855").unwrap();
    assert_eq!(cn[0].checksum, Checksum::Verified);
    // LP + 14: Cainiao and 4PX share the pattern; the current format wins regardless.
    let us = Guesser::default().with_region("US");
    assert_eq!(us.guess("LP00123456789012").unwrap()[0].carrier, "cainiao");
}

#[test]
fn candidates_are_sorted_and_have_a_one_line_reason() {
    let found = Guesser::embedded().guess("60120172242323").unwrap();
    assert!(found.windows(2).all(|w| w[0].score >= w[1].score));
    for c in &found {
        let reason = c.reason.to_string();
        assert!(!reason.is_empty() && !reason.contains('\n'));
    }
}

#[test]
fn invalid_input_is_an_error() {
    let g = Guesser::embedded();
    assert!(matches!(g.guess("  "), Err(GuessError::Empty)));
    assert!(matches!(
        g.guess(&"9".repeat(65)),
        Err(GuessError::TooLong { .. })
    ));
    assert!(matches!(
        g.guess("SF1\u{0}2"),
        Err(GuessError::ControlCharacter { .. })
    ));
}

#[test]
fn non_ascii_number_fits_no_format() {
    assert!(Guesser::embedded().guess("顺丰123").unwrap().is_empty());
}

#[test]
fn candidate_serialises_with_the_documented_fields() {
    let found = Guesser::embedded().guess("1Z5R89390357567127").unwrap();
    let value = serde_json::to_value(&found[0]).unwrap();
    assert_eq!(value["carrier"], "ups");
    assert_eq!(value["format"], "ups");
    assert_eq!(value["checksum"], "verified");
    assert!(value["score"].is_u64() && value["reason"].is_string());
}

#[test]
fn extension_adds_carrier_and_format_and_resolves_aliases() {
    let set = RuleSet::from_json(
        r#"{"carriers": [{"code": "zhaijisong", "name_zh": "宅急送", "name_en": "ZJS Express", "aliases": ["ZJS"]}],
            "formats": [{"id": "zjs_10", "carrier": "ZJS", "name": "ZJS (10 digits)",
                         "pattern": "^\\d{10}$", "prefix": "none", "region": "CN", "legacy": true}]}"#,
    )
    .unwrap();
    let g = Guesser::with_rules(set).unwrap();
    assert_eq!(g.catalog().resolve("zjs"), Some("zhaijisong"));
    let found = g.guess("1234567890").unwrap();
    assert!(found.iter().any(|c| c.carrier == "zhaijisong"));
    assert_eq!(g.catalog().get("宅急送").unwrap().formats, vec!["zjs_10"]);
}

#[test]
fn extension_is_all_or_nothing() {
    let mut g = Guesser::default();
    let before = g.formats().count();
    let set = RuleSet::from_json(
        r#"{"formats": [
            {"id": "ok_one", "carrier": "shunfeng", "name": "x", "pattern": "^SFX\\d{3}$", "prefix": "literal", "region": "CN"},
            {"id": "broken", "carrier": "shunfeng", "name": "x", "pattern": "^(", "prefix": "literal", "region": "CN"}]}"#,
    )
    .unwrap();
    assert!(matches!(g.extend(set), Err(GuessError::BadPattern { .. })));
    assert_eq!(g.formats().count(), before);
}

#[test]
fn extension_refuses_duplicates_and_unknown_carriers() {
    let mut g = Guesser::default();
    let dup = FormatRule {
        id: "sf".into(),
        carrier: "shunfeng".into(),
        name: "dup".into(),
        pattern: "^SF$".into(),
        prefix: PrefixKind::Literal,
        region: "CN".into(),
        lengths: vec![],
        checksum: None,
        country_at: None,
        legacy: false,
    };
    assert!(matches!(
        g.extend_formats([dup.clone()]),
        Err(GuessError::DuplicateFormat { .. })
    ));
    let unknown = FormatRule {
        id: "new".into(),
        carrier: "nobody".into(),
        ..dup
    };
    assert!(matches!(
        g.extend_formats([unknown]),
        Err(GuessError::UnknownCarrier { .. })
    ));
}

proptest! {
    #[test]
    fn arbitrary_input_never_panics(input in any::<String>()) {
        let _ = Guesser::embedded().guess(&input);
    }

    #[test]
    fn tracking_number_like_input_never_panics(input in "[0-9A-Z -]{0,70}") {
        if let Ok(found) = Guesser::embedded().guess(&input) {
            prop_assert!(found.windows(2).all(|w| w[0].score >= w[1].score));
        }
    }

    #[test]
    fn guessing_the_canonical_form_gives_the_same_answer(input in "[0-9a-zA-Z -]{1,40}") {
        let g = Guesser::embedded();
        if let Ok(canon) = canonical(&input) {
            let a: Vec<_> = g.guess(&input).unwrap().iter().map(|c| (c.format, c.score)).collect();
            let b: Vec<_> = g.guess(&canon).unwrap().iter().map(|c| (c.format, c.score)).collect();
            prop_assert_eq!(a, b);
        }
    }
}

/// The fast matcher must agree with the regex on which rules match and where the groups are.
fn assert_matchers_agree(text: &str) -> Result<(), TestCaseError> {
    for compiled in &Guesser::embedded().rules {
        let Some(sequences) = &compiled.sequences else {
            continue;
        };
        let fast = sequences.matches(text.as_bytes());
        prop_assert_eq!(
            fast.is_some(),
            compiled.regex.is_match(text),
            "{} on {}",
            &compiled.rule.id,
            text
        );
        if let (Some(spans), Some(caps)) = (fast, compiled.regex.captures(text)) {
            if compiled.captures {
                let serial = caps.name("serial").map(|m| (m.start(), m.end()));
                prop_assert_eq!(spans.serial, serial, "{} on {}", &compiled.rule.id, text);
                prop_assert_eq!(spans.check, caps.name("check").map(|m| m.start()));
            }
        }
    }
    Ok(())
}

#[test]
fn every_embedded_rule_uses_the_fast_matcher() {
    let slow: Vec<&str> = Guesser::embedded()
        .rules
        .iter()
        .filter(|r| r.sequences.is_none())
        .map(|r| r.rule.id.as_str())
        .collect();
    assert!(slow.is_empty(), "{slow:?}");
}

#[test]
fn fast_matcher_agrees_with_regex_on_every_case_number() {
    for line in TND_CASES.lines().chain(CN_CASES.lines()) {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        let number = canonical(value["number"].as_str().unwrap()).unwrap();
        assert_matchers_agree(&number).unwrap();
    }
}

proptest! {
    #[test]
    fn fast_matcher_agrees_with_regex_on_digit_strings(text in "(420[0-9]{5,9})?9[0-9]{9,33}|[0-9]{8,36}") {
        assert_matchers_agree(&text)?;
    }

    #[test]
    fn fast_matcher_agrees_with_regex_on_letter_prefixed_strings(text in "[A-Z]{1,4}[0-9A-Z]{6,20}") {
        assert_matchers_agree(&text)?;
    }
}

#[test]
fn a_fallback_format_ranks_below_even_a_failed_check_digit() {
    let mut g = Guesser::default();
    g.extend(
        RuleSet::from_json(
            r#"{"carriers": [{"code": "anything", "name_zh": "任意", "name_en": "Anything"}],
                "formats": [{"id": "anything_any", "carrier": "anything", "name": "Anything",
                             "pattern": "^[0-9A-Z]{6,32}$", "prefix": "fallback", "region": "CN"}]}"#,
        )
        .unwrap(),
    )
    .unwrap();
    let found = g.guess("EA123456784CN").unwrap();
    let last = found.last().unwrap();
    assert_eq!(last.carrier, "anything");
    assert!(found[..found.len() - 1]
        .iter()
        .any(|c| c.checksum == Checksum::Failed));
    assert!(found[..found.len() - 1]
        .iter()
        .all(|c| c.score > last.score));
    assert!(last.reason.to_string().contains("catch-all"));
    // Alone, it is still a candidate.
    assert_eq!(g.guess("QQQQQQQQ").unwrap()[0].carrier, "anything");
}

const CN_NUMBERS: &str = include_str!("../../tests/data/cn_numbers.tsv");

/// One labelled row of `cn_numbers.tsv`: number, carrier, format source, split.
fn cn_numbers(split: &str) -> Vec<[&'static str; 3]> {
    CN_NUMBERS
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f.len() == 4 && f[3] == split).then(|| [f[0], f[1], f[2]])
        })
        .collect()
}

/// Top-1 hits and total over one split, with the misses as (number, expected, got, source).
#[allow(clippy::type_complexity)]
fn cn_top1(
    g: &Guesser,
    split: &str,
) -> (
    usize,
    usize,
    Vec<(&'static str, &'static str, String, &'static str)>,
) {
    let rows = cn_numbers(split);
    let mut misses = Vec::new();
    for [number, carrier, source] in &rows {
        let found = g.guess(number).unwrap();
        let top = found.first().map_or("-", |c| c.carrier);
        if top != *carrier {
            misses.push((*number, *carrier, top.to_owned(), *source));
        }
    }
    (rows.len() - misses.len(), rows.len(), misses)
}

#[test]
fn chinese_number_set_top_1_is_at_least_90_percent_on_the_held_back_split() {
    let g = Guesser::embedded();
    let (hits, total, misses) = cn_top1(g, "held");
    let (tune_hits, tune_total, _) = cn_top1(g, "tune");
    println!(
        "cn_numbers held-back: top-1 {hits}/{total} ({:.1} %)",
        100.0 * hits as f64 / total as f64
    );
    println!(
        "cn_numbers tuning: top-1 {tune_hits}/{tune_total} ({:.1} %)",
        100.0 * tune_hits as f64 / tune_total as f64
    );
    // Per carrier counts only: the held-back misses themselves are not for reading.
    let mut per: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
    for [_, carrier, _] in cn_numbers("held") {
        per.entry(carrier).or_default().1 += 1;
    }
    for (_, carrier, _, _) in &misses {
        per.entry(carrier).or_default().0 += 1;
    }
    for (carrier, (missed, n)) in &per {
        println!("  {carrier}: {}/{n}", n - missed);
    }
    assert!(total >= 250);
    assert!(hits * 10 >= total * 9, "top-1 {hits}/{total}");
}

#[test]
fn chinese_number_set_tuning_split_misses() {
    // The tuning split's misses, for whoever tunes the rules: `--nocapture` shows them.
    let (hits, total, misses) = cn_top1(Guesser::embedded(), "tune");
    for (number, expected, got, source) in &misses {
        println!("miss {number}\t{expected}\tgot {got}\t{source}");
    }
    assert!(hits * 10 >= total * 9, "top-1 {hits}/{total}");
}

#[test]
fn a_prior_learned_from_the_tuning_split_does_not_lower_held_back_top_1() {
    // As a store would count them: every tuning number confirmed with its carrier.
    let g = Guesser::embedded();
    let counts = cn_numbers("tune")
        .into_iter()
        .map(|[number, carrier, _]| PriorCount {
            carrier: carrier.to_owned(),
            length: number.len(),
            prefix: number.chars().take(PREFIX_LEN).collect(),
            count: 1,
        });
    let prior = Prior::from_counts(counts, g.catalog());
    let rows = cn_numbers("held");
    let hits = rows
        .iter()
        .filter(|[number, carrier, _]| {
            g.guess_with_prior(number, &prior).unwrap()[0].carrier == *carrier
        })
        .count();
    let (rules_hits, total, _) = cn_top1(g, "held");
    println!(
        "cn_numbers held-back with a prior of {} tuning numbers: top-1 {hits}/{total} ({:.1} %), rules only {rules_hits}/{total}",
        prior.confirmed(),
        100.0 * hits as f64 / total as f64
    );
    assert!(hits >= rules_hits, "{hits} < {rules_hits}");
}
