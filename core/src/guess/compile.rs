//! Turning a [`FormatRule`] into something fast to test: a compiled regex plus the lengths
//! and first characters it can match, so most rules are skipped without running the regex.

use regex::{Regex, RegexBuilder};
use regex_syntax::hir::{Class, Hir, HirKind};

use super::canonical::MAX_LEN;
use super::matcher::Sequences;
use super::rules::{Algorithm, FormatRule};
use super::GuessError;

/// A rule ready to be matched.
#[derive(Debug, Clone)]
pub(crate) struct CompiledRule {
    pub rule: FormatRule,
    pub regex: Regex,
    /// The fast matcher, when the pattern has a shape it supports.
    pub sequences: Option<Sequences>,
    /// Index of the carrier in the catalogue.
    pub carrier: usize,
    /// The pattern names `serial`/`check` groups, so captures are needed for the checksum.
    pub captures: bool,
    /// Bit `n` set: the rule can match a canonical number of `n` characters.
    pub lengths: u128,
    /// Bit `b` set: the rule can match a number starting with ASCII byte `b`.
    pub first: u128,
    /// The same for the second byte (all bits when not known).
    pub second: u128,
    /// Per length: how many numbers of that length the format accepts, as quarter bits
    /// (4 × log2). The ranking prefers the smaller space: a number drawn from a format
    /// that allows fewer numbers is, other things equal, likelier to come from it.
    space: Vec<u16>,
}

impl CompiledRule {
    pub fn new(rule: FormatRule, carrier: usize) -> Result<Self, GuessError> {
        if rule.id.trim().is_empty() {
            return Err(bad(&rule, "the id is empty".into()));
        }
        if let Some(check) = &rule.checksum {
            if let Algorithm::SumProduct {
                weights,
                modulo1,
                modulo2,
            } = &check.algorithm
            {
                if weights.is_empty() || *modulo1 == 0 || *modulo2 == 0 || *modulo2 > 10 {
                    return Err(bad(
                        &rule,
                        "sum_product needs weights, modulo1 > 0 and 0 < modulo2 <= 10".into(),
                    ));
                }
            }
        }
        // Numbers reach the regex as ASCII, so ASCII classes lose nothing and are faster;
        // a pattern that needs Unicode mode (e.g. uses `.`) still works in it.
        let (regex, hir) = match compile(&rule.pattern, false) {
            Ok(pair) => pair,
            Err(_) => compile(&rule.pattern, true).map_err(|message| GuessError::BadPattern {
                id: rule.id.clone(),
                message,
            })?,
        };
        let names: Vec<&str> = regex.capture_names().flatten().collect();
        let captures = names.contains(&"serial");
        if captures != names.contains(&"check") {
            return Err(bad(
                &rule,
                "name both the `serial` and `check` groups, or neither".into(),
            ));
        }
        if captures && rule.checksum.is_none() {
            return Err(bad(
                &rule,
                "`serial`/`check` groups without a checksum".into(),
            ));
        }
        let props = hir.properties();
        let min = props.minimum_len().unwrap_or(0);
        let max = props.maximum_len().unwrap_or(MAX_LEN).min(MAX_LEN);
        let mut lengths = 0u128;
        for n in min.max(1)..=max {
            if rule.lengths.is_empty() || rule.lengths.iter().any(|l| l.contains(n)) {
                lengths |= 1 << n;
            }
        }
        if lengths == 0 {
            return Err(bad(
                &rule,
                format!("matches no length between 1 and {MAX_LEN}"),
            ));
        }
        let first = first_bytes(&hir).set;
        let sequences = Sequences::from_hir(&hir);
        let space = (0..=MAX_LEN)
            .map(|n| {
                if lengths & (1u128 << n) == 0 {
                    return 0;
                }
                // Without the fast matcher's view of the pattern, assume the widest space
                // (any digit or capital at every position): the weakest evidence.
                let bits = sequences
                    .as_ref()
                    .and_then(|s| s.log2_count(n))
                    .unwrap_or(n as f64 * 36f64.log2());
                (bits * 4.0).round().clamp(0.0, f64::from(u16::MAX)) as u16
            })
            .collect();
        let second = sequences.as_ref().map_or(u128::MAX, |s| s.class_at(1));
        Ok(CompiledRule {
            second,
            rule,
            regex,
            sequences,
            carrier,
            captures,
            lengths,
            first,
            space,
        })
    }

    /// Quarter bits of the format's number space at `len` characters.
    pub fn space_at(&self, len: usize) -> u32 {
        self.space.get(len).map_or(u32::MAX, |&q| u32::from(q))
    }

    pub fn allows_second(&self, byte: u8) -> bool {
        byte < 128 && self.second & (1u128 << byte) != 0
    }

    pub fn allows_first(&self, byte: u8) -> bool {
        byte < 128 && self.first & (1u128 << byte) != 0
    }
}

fn bad(rule: &FormatRule, problem: String) -> GuessError {
    GuessError::BadRule {
        id: rule.id.clone(),
        problem,
    }
}

fn compile(pattern: &str, unicode: bool) -> Result<(Regex, Hir), String> {
    let hir = regex_syntax::ParserBuilder::new()
        .unicode(unicode)
        .build()
        .parse(pattern)
        .map_err(|e| e.to_string())?;
    let regex = RegexBuilder::new(pattern)
        .unicode(unicode)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| e.to_string())?;
    Ok((regex, hir))
}

struct First {
    set: u128,
    nullable: bool,
}

/// The ASCII bytes a match can start with (non-ASCII never reaches the rules).
fn first_bytes(hir: &Hir) -> First {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => First {
            set: 0,
            nullable: true,
        },
        HirKind::Literal(lit) => First {
            set: lit.0.first().map_or(0, |&b| ascii_bit(u32::from(b))),
            nullable: lit.0.is_empty(),
        },
        HirKind::Class(class) => First {
            set: class_ranges(class)
                .into_iter()
                .fold(0, |acc, (lo, hi)| acc | ascii_range(lo, hi)),
            nullable: false,
        },
        HirKind::Repetition(rep) => {
            let sub = first_bytes(&rep.sub);
            First {
                set: sub.set,
                nullable: rep.min == 0 || sub.nullable,
            }
        }
        HirKind::Capture(cap) => first_bytes(&cap.sub),
        HirKind::Concat(items) => {
            let mut set = 0;
            for item in items {
                let f = first_bytes(item);
                set |= f.set;
                if !f.nullable {
                    return First {
                        set,
                        nullable: false,
                    };
                }
            }
            First {
                set,
                nullable: true,
            }
        }
        HirKind::Alternation(items) => items.iter().map(first_bytes).fold(
            First {
                set: 0,
                nullable: false,
            },
            |acc, f| First {
                set: acc.set | f.set,
                nullable: acc.nullable || f.nullable,
            },
        ),
    }
}

fn ascii_bit(b: u32) -> u128 {
    if b < 128 {
        1u128 << b
    } else {
        0
    }
}

fn ascii_range(lo: u32, hi: u32) -> u128 {
    (lo..=hi.min(127)).fold(0, |acc, b| acc | ascii_bit(b))
}

fn class_ranges(class: &Class) -> Vec<(u32, u32)> {
    match class {
        Class::Unicode(c) => c
            .iter()
            .map(|r| (u32::from(r.start()), u32::from(r.end())))
            .collect(),
        Class::Bytes(c) => c
            .iter()
            .map(|r| (u32::from(r.start()), u32::from(r.end())))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guess::rules::{LengthSpec, PrefixKind};

    fn rule(pattern: &str) -> FormatRule {
        FormatRule {
            id: "t".into(),
            carrier: "c".into(),
            name: "test".into(),
            pattern: pattern.into(),
            prefix: PrefixKind::Numeric,
            region: "CN".into(),
            lengths: vec![],
            checksum: None,
            country_at: None,
            legacy: false,
        }
    }

    #[test]
    fn lengths_and_first_bytes_come_from_the_pattern() {
        let c = CompiledRule::new(rule(r"^7[3-68]\d{12}$"), 0).unwrap();
        assert_eq!(c.lengths, 1 << 14);
        assert!(c.allows_first(b'7') && !c.allows_first(b'6'));
        // 5 × 10^12 numbers: log2 = 42.18, in quarter bits 169.
        assert_eq!(c.space_at(14), 169);
        assert_eq!(c.space_at(13), 0);
    }

    #[test]
    fn explicit_lengths_narrow_the_pattern() {
        let mut r = rule(r"^\d{10,40}$");
        r.lengths = vec![LengthSpec::Exact(22), LengthSpec::Range([30, 31])];
        let c = CompiledRule::new(r, 0).unwrap();
        assert_eq!(c.lengths, (1 << 22) | (1 << 30) | (1 << 31));
    }

    #[test]
    fn optional_prefix_widens_first_bytes() {
        let c = CompiledRule::new(rule(r"^(?:420\d{5})?94\d{20}$"), 0).unwrap();
        assert!(c.allows_first(b'4') && c.allows_first(b'9') && !c.allows_first(b'1'));
    }

    #[test]
    fn broken_pattern_is_a_clear_error() {
        let err = CompiledRule::new(rule(r"^(\d$"), 0).unwrap_err();
        assert!(matches!(err, GuessError::BadPattern { .. }));
    }

    #[test]
    fn serial_group_without_check_group_is_refused() {
        let err = CompiledRule::new(rule(r"^(?P<serial>\d{5})\d$"), 0).unwrap_err();
        assert!(matches!(err, GuessError::BadRule { .. }));
    }
}
