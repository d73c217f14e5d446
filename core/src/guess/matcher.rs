//! A fast matcher for the patterns tracking-number formats use.
//!
//! Almost every format is an anchored run of fixed characters and character classes,
//! with a few optional parts and alternatives. Such a pattern expands into a short list of
//! linear sequences (in the order a backtracking engine would try them), each with at most
//! one variable-length run. Against an ASCII number of known length, each sequence is then
//! a single loop of bit tests, an order of magnitude cheaper than a general regex call.
//! Patterns outside that shape return `None` from [`Sequences::from_hir`] and keep using
//! the regex.

use regex_syntax::hir::{Class, Hir, HirKind, Look};

use super::canonical::MAX_LEN;

/// Cap on the expansion, so a pattern with many alternatives stays on the regex path.
const MAX_SEQUENCES: usize = 64;

/// Runs of variable length per alternative; more means backtracking that could get slow.
const MAX_VARIABLE_RUNS: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    None,
    Serial,
    Check,
}

#[derive(Debug, Clone, Copy)]
enum Item {
    Start,
    End,
    Run(Run),
}

/// `min..=max` characters, each in `class` (bit `b` set: ASCII byte `b` allowed).
#[derive(Debug, Clone, Copy)]
struct Run {
    class: u128,
    min: usize,
    max: usize,
    greedy: bool,
    group: Group,
}

/// One linear alternative of a pattern.
#[derive(Debug, Clone)]
struct Sequence {
    runs: Vec<Run>,
    min_len: usize,
    max_len: usize,
    /// The only run whose length varies, if exactly one does.
    variable: Option<usize>,
    /// More than one run varies: match by backtracking.
    backtrack: bool,
    /// Minimum and maximum length of runs `i..`, for pruning the backtracking.
    suffix: Vec<(usize, usize)>,
}

/// Where the `serial` and `check` groups landed in a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Spans {
    pub serial: Option<(usize, usize)>,
    pub check: Option<usize>,
}

/// A pattern compiled to linear sequences.
#[derive(Debug, Clone)]
pub(crate) struct Sequences {
    sequences: Vec<Sequence>,
}

impl Sequences {
    /// Compiles `hir` if it has the supported shape: anchored at both ends, made of
    /// literals, classes, bounded repetitions of single characters, optional parts,
    /// alternations and capture groups, with at most one variable run per alternative.
    pub fn from_hir(hir: &Hir) -> Option<Self> {
        let expanded = expand(hir, Group::None)?;
        let mut sequences = Vec::with_capacity(expanded.len());
        for items in expanded {
            let (first, rest) = items.split_first()?;
            let (last, middle) = rest.split_last()?;
            if !matches!(first, Item::Start) || !matches!(last, Item::End) {
                return None;
            }
            let mut runs = Vec::with_capacity(middle.len());
            for item in middle {
                match item {
                    Item::Run(run) => runs.push(*run),
                    Item::Start | Item::End => return None,
                }
            }
            let variable: Vec<usize> = runs
                .iter()
                .enumerate()
                .filter(|(_, r)| r.min != r.max)
                .map(|(i, _)| i)
                .collect();
            if variable.len() > MAX_VARIABLE_RUNS {
                return None;
            }
            let mut suffix = vec![(0, 0); runs.len() + 1];
            for i in (0..runs.len()).rev() {
                suffix[i] = (suffix[i + 1].0 + runs[i].min, suffix[i + 1].1 + runs[i].max);
            }
            sequences.push(Sequence {
                min_len: suffix[0].0,
                max_len: suffix[0].1,
                variable: (variable.len() == 1).then(|| variable[0]),
                backtrack: variable.len() > 1,
                suffix,
                runs,
            });
        }
        Some(Sequences { sequences })
    }

    /// Matches the whole of `text` (ASCII), returning the group spans of the first
    /// alternative that fits.
    /// The bytes a match can have at `pos` (all of them when the position is not fixed).
    pub fn class_at(&self, pos: usize) -> u128 {
        let mut union = 0u128;
        for seq in &self.sequences {
            let mut offset = 0;
            let mut class = u128::MAX;
            for run in &seq.runs {
                if pos < offset + run.min {
                    class = run.class;
                    break;
                }
                if run.min != run.max {
                    break;
                }
                offset += run.min;
            }
            union |= class;
        }
        union
    }

    /// log2 of how many strings of `len` characters the pattern accepts, `None` when it
    /// accepts none. Alternatives are added up, so overlapping ones count twice: an upper
    /// bound, which is all the ranking needs (a smaller space is stronger evidence).
    pub fn log2_count(&self, len: usize) -> Option<f64> {
        let mut total = 0f64;
        for seq in &self.sequences {
            if len < seq.min_len || len > seq.max_len {
                continue;
            }
            // ways[n]: how many strings of n characters the runs so far can spell.
            let mut ways = vec![0f64; len + 1];
            ways[0] = 1.0;
            for run in &seq.runs {
                let size = f64::from(run.class.count_ones());
                let mut next = vec![0f64; len + 1];
                for (n, &w) in ways.iter().enumerate() {
                    if w == 0.0 {
                        continue;
                    }
                    for k in run.min..=run.max.min(len - n) {
                        next[n + k] += w * size.powi(k as i32);
                    }
                }
                ways = next;
            }
            total += ways[len];
        }
        (total > 0.0).then(|| total.log2())
    }

    #[cfg(test)]
    pub fn matches(&self, text: &[u8]) -> Option<Spans> {
        self.matches_with(text, byte_set(text))
    }

    /// [`Sequences::matches`] given `set`, the union of the bits of the bytes of `text`
    /// (see [`byte_set`]): a run whose class holds every byte of the text needs no check,
    /// which skips the digit runs of all-digit numbers.
    pub fn matches_with(&self, text: &[u8], set: u128) -> Option<Spans> {
        let len = text.len();
        'sequences: for seq in &self.sequences {
            if len < seq.min_len || len > seq.max_len {
                continue;
            }
            if seq.backtrack {
                let mut spans = Spans {
                    serial: None,
                    check: None,
                };
                if backtrack(seq, 0, text, set, 0, &mut spans) {
                    return Some(spans);
                }
                continue;
            }
            let extra = len - seq.min_len;
            let mut pos = 0;
            let mut spans = Spans {
                serial: None,
                check: None,
            };
            for (i, run) in seq.runs.iter().enumerate() {
                let n = if seq.variable == Some(i) {
                    run.min + extra
                } else {
                    run.min
                };
                let end = pos + n;
                if run.class & set != set
                    && text[pos..end]
                        .iter()
                        .any(|&b| b >= 128 || run.class & (1u128 << b) == 0)
                {
                    continue 'sequences;
                }
                match run.group {
                    Group::Serial => {
                        let start = spans.serial.map_or(pos, |(s, _)| s);
                        spans.serial = Some((start, end));
                    }
                    Group::Check if spans.check.is_none() && n > 0 => spans.check = Some(pos),
                    _ => {}
                }
                pos = end;
            }
            return Some(spans);
        }
        None
    }
}

/// Tries run `i` at `pos` with every allowed length, in the order the regex engine
/// prefers (longest first for greedy runs), then the rest.
fn backtrack(
    seq: &Sequence,
    i: usize,
    text: &[u8],
    set: u128,
    pos: usize,
    spans: &mut Spans,
) -> bool {
    let Some(run) = seq.runs.get(i) else {
        return pos == text.len();
    };
    let remaining = text.len() - pos;
    let (rest_min, rest_max) = seq.suffix[i + 1];
    // Lengths for this run that leave a feasible remainder.
    let lo = run.min.max(remaining.saturating_sub(rest_max));
    let Some(hi) = remaining.checked_sub(rest_min).map(|h| h.min(run.max)) else {
        return false;
    };
    if lo > hi {
        return false;
    }
    // The longest prefix of the remaining text inside the class bounds every length.
    let fits = if run.class & set == set {
        hi
    } else {
        text[pos..pos + hi]
            .iter()
            .take_while(|&&b| b < 128 && run.class & (1u128 << b) != 0)
            .count()
    };
    if fits < lo {
        return false;
    }
    let hi = fits.min(hi);
    let try_len = |n: usize, spans: &mut Spans| {
        let saved = *spans;
        match run.group {
            Group::Serial => {
                let start = spans.serial.map_or(pos, |(s, _)| s);
                spans.serial = Some((start, pos + n));
            }
            Group::Check if spans.check.is_none() && n > 0 => spans.check = Some(pos),
            _ => {}
        }
        if backtrack(seq, i + 1, text, set, pos + n, spans) {
            return true;
        }
        *spans = saved;
        false
    };
    if run.greedy {
        (lo..=hi).rev().any(|n| try_len(n, spans))
    } else {
        (lo..=hi).any(|n| try_len(n, spans))
    }
}

/// The byte set of a text made of digits only.
pub(crate) const DIGITS: u128 = 0x3FF << b'0';

/// The union of the bits of the bytes of `text`; a non-ASCII byte sets no bit but makes the
/// set match no class, so such text is always checked byte by byte.
pub(crate) fn byte_set(text: &[u8]) -> u128 {
    let mut set = 0u128;
    for &b in text {
        set |= if b < 128 { 1u128 << b } else { u128::MAX };
    }
    set
}

fn expand(hir: &Hir, group: Group) -> Option<Vec<Vec<Item>>> {
    match hir.kind() {
        HirKind::Empty => Some(vec![Vec::new()]),
        HirKind::Look(Look::Start) => Some(vec![vec![Item::Start]]),
        HirKind::Look(Look::End) => Some(vec![vec![Item::End]]),
        HirKind::Look(_) => None,
        HirKind::Literal(lit) => Some(vec![lit
            .0
            .iter()
            .map(|&b| {
                Item::Run(Run {
                    class: byte_bit(b),
                    min: 1,
                    max: 1,
                    greedy: true,
                    group,
                })
            })
            .collect()]),
        HirKind::Class(class) => Some(vec![vec![Item::Run(Run {
            class: class_mask(class),
            min: 1,
            max: 1,
            greedy: true,
            group,
        })]]),
        HirKind::Capture(cap) => {
            let inner = match (group, cap.name.as_deref()) {
                (Group::None, Some("serial")) => Group::Serial,
                (Group::None, Some("check")) => Group::Check,
                _ => group,
            };
            expand(&cap.sub, inner)
        }
        HirKind::Repetition(rep) => {
            let max = rep.max.map_or(MAX_LEN, |m| (m as usize).min(MAX_LEN));
            let min = (rep.min as usize).min(MAX_LEN);
            let sub = expand(&rep.sub, group)?;
            // A single character repeated: one run.
            if let [single] = sub.as_slice() {
                if let [Item::Run(run)] = single.as_slice() {
                    if run.min == 1 && run.max == 1 {
                        return Some(vec![vec![Item::Run(Run {
                            class: run.class,
                            min,
                            max,
                            greedy: rep.greedy,
                            group: run.group,
                        })]]);
                    }
                }
            }
            match (min, max) {
                // Optional part: present first when greedy, as a backtracking engine tries.
                (0, 1) => {
                    let mut out = Vec::with_capacity(sub.len() + 1);
                    if rep.greedy {
                        out.extend(sub);
                        out.push(Vec::new());
                    } else {
                        out.push(Vec::new());
                        out.extend(sub);
                    }
                    cap(out)
                }
                (n, m) if n == m => {
                    let mut out = vec![Vec::new()];
                    for _ in 0..n {
                        out = product(&out, &sub)?;
                    }
                    Some(out)
                }
                _ => None,
            }
        }
        HirKind::Concat(items) => {
            let mut out = vec![Vec::new()];
            for item in items {
                out = product(&out, &expand(item, group)?)?;
            }
            Some(merge_all(out))
        }
        HirKind::Alternation(branches) => {
            let mut out = Vec::new();
            for branch in branches {
                out.extend(expand(branch, group)?);
                if out.len() > MAX_SEQUENCES {
                    return None;
                }
            }
            Some(out)
        }
    }
}

fn product(left: &[Vec<Item>], right: &[Vec<Item>]) -> Option<Vec<Vec<Item>>> {
    if left.len() * right.len() > MAX_SEQUENCES {
        return None;
    }
    let mut out = Vec::with_capacity(left.len() * right.len());
    for l in left {
        for r in right {
            let mut seq = l.clone();
            seq.extend_from_slice(r);
            out.push(seq);
        }
    }
    Some(out)
}

fn cap(out: Vec<Vec<Item>>) -> Option<Vec<Vec<Item>>> {
    (out.len() <= MAX_SEQUENCES).then_some(out)
}

/// Adjacent fixed runs of the same class and group become one run (`\d\d\d` → `\d{3}`),
/// which keeps the match loop short.
fn merge_all(seqs: Vec<Vec<Item>>) -> Vec<Vec<Item>> {
    seqs.into_iter()
        .map(|seq| {
            let mut out: Vec<Item> = Vec::with_capacity(seq.len());
            for item in seq {
                if let (Some(Item::Run(prev)), Item::Run(run)) = (out.last_mut(), item) {
                    if prev.class == run.class
                        && prev.group == run.group
                        && prev.min == prev.max
                        && run.min == run.max
                    {
                        prev.min += run.min;
                        prev.max += run.max;
                        continue;
                    }
                }
                out.push(item);
            }
            out
        })
        .collect()
}

fn byte_bit(b: u8) -> u128 {
    if b < 128 {
        1u128 << b
    } else {
        0
    }
}

fn class_mask(class: &Class) -> u128 {
    let mut mask = 0u128;
    let mut add = |lo: u32, hi: u32| {
        for b in lo..=hi.min(127) {
            mask |= 1u128 << b;
        }
    };
    match class {
        Class::Unicode(c) => c
            .iter()
            .for_each(|r| add(u32::from(r.start()), u32::from(r.end()))),
        Class::Bytes(c) => c
            .iter()
            .for_each(|r| add(u32::from(r.start()), u32::from(r.end()))),
    }
    mask
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(pattern: &str) -> Option<Sequences> {
        let hir = regex_syntax::ParserBuilder::new()
            .unicode(false)
            .build()
            .parse(pattern)
            .unwrap();
        Sequences::from_hir(&hir)
    }

    #[test]
    fn class_at_is_exact_for_fixed_positions_and_open_after_variable_runs() {
        let m = compile(r"^(?:GM|LX)[A-Z]*\d$").unwrap();
        assert_eq!(m.class_at(1), byte_bit(b'M') | byte_bit(b'X'));
        assert_eq!(m.class_at(2), u128::MAX);
    }

    #[test]
    fn digit_byte_set_is_the_set_of_the_ten_digits() {
        assert_eq!(DIGITS, byte_set(b"0123456789"));
    }

    #[test]
    fn fixed_pattern_matches_exactly() {
        let m = compile(r"^SF\d{13}$").unwrap();
        assert!(m.matches(b"SF1234567890123").is_some());
        assert!(m.matches(b"SF123456789012").is_none());
        assert!(m.matches(b"SX1234567890123").is_none());
    }

    #[test]
    fn one_variable_run_takes_the_remaining_length() {
        let m = compile(r"^(?:77|43)\d{12,13}$").unwrap();
        assert!(m.matches(b"77123456789012").is_some());
        assert!(m.matches(b"431234567890123").is_some());
        assert!(m.matches(b"4312345678901234").is_none());
    }

    #[test]
    fn groups_report_serial_and_check_spans_like_a_backtracking_engine() {
        let p = r"^(?:420\d{5}(?:\d{4})?)?(?P<serial>(?:91)?\d{19})(?P<check>\d)$";
        let m = compile(p).unwrap();
        let re = regex::Regex::new(p).unwrap();
        for text in [
            "42022153".to_owned() + "9101026837331000039521",
            "71969010756003077385".to_owned(),
            "9101123456789000000013".to_owned(),
        ] {
            let caps = re.captures(&text).unwrap();
            let serial = caps.name("serial").unwrap();
            let spans = m.matches(text.as_bytes()).unwrap();
            assert_eq!(spans.serial, Some((serial.start(), serial.end())), "{text}");
            assert_eq!(spans.check, Some(caps.name("check").unwrap().start()));
        }
    }

    #[test]
    fn unanchored_patterns_and_word_boundaries_stay_on_the_regex() {
        assert!(compile(r"SF\d{13}").is_none());
        assert!(compile(r"^\bSF$").is_none());
        assert!(compile(r"^\d*\d*\d*\d*$").is_none());
    }

    #[test]
    fn several_variable_runs_backtrack_like_the_regex() {
        let m = compile(r"^J[A-Z]{2,3}\d{9,10}$").unwrap();
        assert!(m.matches(b"JJD0099999999").is_some());
        assert!(m.matches(b"JVGL0999999990").is_some());
        assert!(m.matches(b"JVGL09999999901").is_none());
        let m = compile(r"^GM[A-Z]*\d[0-9A-Z]*$").unwrap();
        assert!(m.matches(b"GM9E44608A27984866BA2D").is_some());
        assert!(m.matches(b"GMABCDEFGHIJKL").is_none());
    }
}
