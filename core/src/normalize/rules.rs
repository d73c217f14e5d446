//! The rule file: what it holds, how it is checked, and how its patterns are compiled.
//!
//! A rule file is TOML:
//!
//! ```toml
//! fallback = { id = "fallback.in_transit", state = "in_transit" }
//!
//! [scrub]
//! keep_in_brackets = ["驿站", "转运中心"]
//! courier_labels = ["派件员"]
//!
//! [[rule]]
//! id = "delivered.signed"
//! priority = 900
//! state = "delivered"
//! any = ["已签收", "delivered"]
//! not = ["未签收", "undelivered"]
//! ```
//!
//! A rule matches a scrubbed line when
//! - one of its `any` keywords or `regex` patterns occurs (if it has any), and
//! - every group in `all` has at least one keyword that occurs, and
//! - none of its `not` keywords or `not_regex` patterns occurs.
//!
//! Keywords match ASCII letters in any case. The matching rule with the highest
//! `priority` decides; equal priorities go to the rule written first.
//!
//! A rule may say how sure its answer is, `confidence = 0.6` (0..=1, 0.9 when not given),
//! and so may the fallback (0.3 when not given). A rule below 0.8 is *weak*: it only
//! suggests, and the statistical model, when the normalizer has one, overrules it when the
//! model is surer of another state.

use std::collections::{HashMap, HashSet};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::Regex;
use serde::Deserialize;

use crate::state::State;

/// Why a rule file was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuleError {
    /// The file is not valid TOML or has the wrong shape.
    #[error("rule file is not valid: {message}")]
    Syntax {
        /// The parser's explanation, with line and column.
        message: String,
    },
    /// Two rules share an id, so decisions could not be traced back.
    #[error("rule id {id:?} is used more than once")]
    DuplicateId {
        /// The repeated id.
        id: String,
    },
    /// A rule has nothing that could make it match.
    #[error("rule {id:?} has no positive pattern: give it `any`, `regex` or `all`")]
    NoPattern {
        /// The rule.
        id: String,
    },
    /// A rule has an empty keyword, which would match every line.
    #[error("rule {id:?} has an empty keyword")]
    EmptyKeyword {
        /// The rule.
        id: String,
    },
    /// A regular expression does not compile.
    #[error("rule {rule:?} has an invalid regex: {message}")]
    Regex {
        /// The rule (or scrub setting) holding it.
        rule: String,
        /// The regex engine's explanation.
        message: String,
    },
    /// A rule's confidence is outside 0..=1.
    #[error("rule {id:?} has confidence {confidence}, outside 0..=1")]
    Confidence {
        /// The rule.
        id: String,
        /// The value written.
        confidence: f32,
    },
    /// The keyword automaton could not be built.
    #[error("keywords could not be compiled: {message}")]
    Keywords {
        /// The automaton builder's explanation.
        message: String,
    },
}

/// The rule file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleFile {
    pub fallback: Fallback,
    #[serde(default)]
    pub scrub: ScrubSettings,
    #[serde(default, rename = "rule")]
    pub rules: Vec<RuleSpec>,
}

/// The decision when no rule matches.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Fallback {
    pub id: String,
    pub state: State,
    #[serde(default = "fallback_confidence")]
    pub confidence: f32,
}

/// A guess with nothing to go on.
fn fallback_confidence() -> f32 {
    0.3
}

/// What a rule's answer is worth when its file does not say.
fn rule_confidence() -> f32 {
    0.9
}

/// What the scrubber removes before matching.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScrubSettings {
    #[serde(default)]
    pub keep_in_brackets: Vec<String>,
    #[serde(default)]
    pub courier_labels: Vec<String>,
}

/// One rule as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleSpec {
    pub id: String,
    pub priority: i32,
    pub state: State,
    #[serde(default = "rule_confidence")]
    pub confidence: f32,
    #[serde(default)]
    pub any: Vec<String>,
    #[serde(default)]
    pub all: Vec<Vec<String>>,
    #[serde(default)]
    pub regex: Vec<String>,
    #[serde(default)]
    pub not: Vec<String>,
    #[serde(default)]
    pub not_regex: Vec<String>,
}

/// A rule with its patterns replaced by indexes into the shared automaton and regex set.
#[derive(Debug, Clone)]
pub(crate) struct CompiledRule {
    pub id: String,
    pub state: State,
    pub confidence: f32,
    any: Vec<usize>,
    all: Vec<Vec<usize>>,
    regex: Vec<usize>,
    not: Vec<usize>,
    not_regex: Vec<usize>,
}

impl CompiledRule {
    /// The rule's answer.
    pub(crate) fn answer(&self) -> crate::carrier::Classification {
        crate::carrier::Classification {
            state: self.state,
            rule: self.id.clone(),
            confidence: self.confidence,
        }
    }

    /// Whether the rule matches, given which keywords occur and a way to ask (once per
    /// regex, memoised by the caller) whether a regex matches. Keyword tests come first:
    /// they are already paid for, while most lines are decided before a regex is needed.
    /// `keywords` is a bit set: bit `k` is set when keyword `k` occurs.
    pub(crate) fn matches(&self, keywords: &[u64], regex: &mut impl FnMut(usize) -> bool) -> bool {
        let hit = |k: usize| bit(keywords, k);
        let any_hit = self.any.iter().any(|&k| hit(k));
        if !self.all.iter().all(|group| group.iter().any(|&k| hit(k)))
            || self.not.iter().any(|&k| hit(k))
        {
            return false;
        }
        let positive_given = !self.any.is_empty() || !self.regex.is_empty();
        let positive = !positive_given || any_hit || self.regex.iter().any(|&r| regex(r));
        positive && !self.not_regex.iter().any(|&r| regex(r))
    }
}

/// Every pattern of every rule, compiled once.
#[derive(Debug, Clone)]
pub(crate) struct CompiledRules {
    /// Rules sorted by descending priority, file order among equals.
    pub rules: Vec<CompiledRule>,
    pub keywords: Option<AhoCorasick>,
    pub keyword_count: usize,
    pub regexes: Vec<Regex>,
    /// Per keyword, the rules (indexes into `rules`) that cannot match unless it occurs
    /// and may match when it does: so a line only tries the rules its keywords reach.
    pub triggered_by: Vec<Vec<usize>>,
    /// Rules that can match without any keyword (a `regex` and no `all`): always tried.
    pub always: Vec<usize>,
}

/// Whether bit `i` of a bit set is set.
pub(crate) fn bit(bits: &[u64], i: usize) -> bool {
    bits[i / 64] & (1 << (i % 64)) != 0
}

/// Sets bit `i` of a bit set.
pub(crate) fn set_bit(bits: &mut [u64], i: usize) {
    bits[i / 64] |= 1 << (i % 64);
}

/// Words of a bit set of `n` bits.
pub(crate) fn words(n: usize) -> usize {
    n.div_ceil(64)
}

/// Interns patterns so a keyword shared by many rules is searched once.
#[derive(Default)]
struct Interner {
    index: HashMap<String, usize>,
    items: Vec<String>,
}

impl Interner {
    fn intern(&mut self, item: &str) -> usize {
        if let Some(&i) = self.index.get(item) {
            return i;
        }
        let i = self.items.len();
        self.items.push(item.to_owned());
        self.index.insert(item.to_owned(), i);
        i
    }
}

impl RuleFile {
    pub(crate) fn parse(text: &str) -> Result<Self, RuleError> {
        toml::from_str(text).map_err(|e| RuleError::Syntax {
            message: e.to_string(),
        })
    }

    pub(crate) fn compile(&self) -> Result<CompiledRules, RuleError> {
        let mut seen = HashSet::new();
        let mut keywords = Interner::default();
        // Keywords are matched case-insensitively for ASCII, so intern them lower-cased.
        let mut kw = |rule: &RuleSpec, k: &str| {
            if k.is_empty() {
                return Err(RuleError::EmptyKeyword {
                    id: rule.id.clone(),
                });
            }
            Ok(keywords.intern(&k.to_ascii_lowercase()))
        };
        let mut regexes = Interner::default();
        let mut regex_list = Vec::new();
        let mut compiled = Vec::with_capacity(self.rules.len());
        for rule in &self.rules {
            if !seen.insert(rule.id.as_str()) || rule.id == self.fallback.id {
                return Err(RuleError::DuplicateId {
                    id: rule.id.clone(),
                });
            }
            if !(0.0..=1.0).contains(&rule.confidence) {
                return Err(RuleError::Confidence {
                    id: rule.id.clone(),
                    confidence: rule.confidence,
                });
            }
            if rule.any.is_empty() && rule.regex.is_empty() && rule.all.iter().all(Vec::is_empty) {
                return Err(RuleError::NoPattern {
                    id: rule.id.clone(),
                });
            }
            for pattern in rule.regex.iter().chain(&rule.not_regex) {
                if !regexes.index.contains_key(pattern) {
                    let compiled = Regex::new(pattern).map_err(|e| RuleError::Regex {
                        rule: rule.id.clone(),
                        message: e.to_string(),
                    })?;
                    regexes.intern(pattern);
                    regex_list.push(compiled);
                }
            }
            let any = rule
                .any
                .iter()
                .map(|k| kw(rule, k))
                .collect::<Result<_, _>>()?;
            let all = rule
                .all
                .iter()
                .filter(|group| !group.is_empty())
                .map(|group| group.iter().map(|k| kw(rule, k)).collect())
                .collect::<Result<_, _>>()?;
            let not = rule
                .not
                .iter()
                .map(|k| kw(rule, k))
                .collect::<Result<_, _>>()?;
            compiled.push((
                rule.priority,
                CompiledRule {
                    id: rule.id.clone(),
                    state: rule.state,
                    confidence: rule.confidence,
                    any,
                    all,
                    regex: rule.regex.iter().map(|r| regexes.intern(r)).collect(),
                    not,
                    not_regex: rule.not_regex.iter().map(|r| regexes.intern(r)).collect(),
                },
            ));
        }
        // A stable sort keeps file order among equal priorities.
        compiled.sort_by_key(|(priority, _)| std::cmp::Reverse(*priority));

        let keyword_count = keywords.items.len();
        let automaton = if keyword_count == 0 {
            None
        } else {
            Some(
                AhoCorasickBuilder::new()
                    .ascii_case_insensitive(true)
                    // A full DFA: the fastest search, at a few hundred KB for a rule file.
                    .kind(Some(aho_corasick::AhoCorasickKind::DFA))
                    // Standard semantics allow overlapping search: every keyword that
                    // occurs is reported, even inside a longer one.
                    .match_kind(MatchKind::Standard)
                    .build(&keywords.items)
                    .map_err(|e| RuleError::Keywords {
                        message: e.to_string(),
                    })?,
            )
        };
        let rules: Vec<CompiledRule> = compiled.into_iter().map(|(_, r)| r).collect();
        // A rule needs a keyword of its first `all` group when it has one (every group
        // must hit); otherwise, with no regex, one of its `any` keywords.
        let mut triggered_by = vec![Vec::new(); keyword_count];
        let mut always = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            let needed = match rule.all.first() {
                Some(group) => group,
                None if rule.regex.is_empty() && !rule.any.is_empty() => &rule.any,
                None => {
                    always.push(i);
                    continue;
                }
            };
            for &k in needed {
                if triggered_by[k].last() != Some(&i) {
                    triggered_by[k].push(i);
                }
            }
        }
        Ok(CompiledRules {
            rules,
            triggered_by,
            always,
            keywords: automaton,
            keyword_count,
            regexes: regex_list,
        })
    }
}
