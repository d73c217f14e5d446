//! The default trace normalizer: Chinese and English trace lines to a [`State`], with the id
//! of the rule that decided.
//!
//! [`TextNormalizer`] reads its rules from data: the built-in file
//! (`core/rules/normalize.toml`, embedded at compile time) or one a user supplies (see
//! [`TextNormalizer::from_toml`] for the format). Classifying a line takes three steps:
//!
//! 1. **scrub**: bracketed places are reduced to the kind of place they name, phone numbers
//!    and couriers' names are removed, so `【深圳市退货组】` or a courier called 王签 cannot
//!    trigger a keyword;
//! 2. **search**: one Aho–Corasick pass finds every keyword of every rule; a rule's
//!    regexes run only if the rule is reached and its keyword conditions hold;
//! 3. **decide**: the matching rule with the highest priority wins; with none, the fallback.
//!
//! ```
//! use waybill_core::carrier::{Normalizer, RawLine};
//! use waybill_core::normalize::TextNormalizer;
//! use waybill_core::state::State;
//!
//! let n = TextNormalizer::builtin();
//! let line = RawLine { text: "【深圳市】快件已被 门卫 代签收", ..Default::default() };
//! let c = n.classify(&line);
//! assert_eq!(c.state, State::DeliveredByProxy);
//! assert_eq!(n.classify(&RawLine { text: "派件中，请准备签收", ..Default::default() }).state,
//!            State::OutForDelivery);
//! ```

mod rules;
mod scrub;

use std::sync::OnceLock;

use crate::carrier::{Classification, Normalizer, RawLine};
use crate::model::{EventTime, Trace, TrackEvent};
use crate::state::State;

pub use rules::RuleError;
use rules::{CompiledRules, RuleFile};
use scrub::Scrubber;

/// The built-in rule file.
pub const BUILTIN_RULES: &str = include_str!("../../rules/normalize.toml");

/// A normalizer driven by a rule file. Patterns are compiled once, at construction; a
/// `TextNormalizer` is `Send + Sync` and meant to be shared.
#[derive(Debug, Clone)]
pub struct TextNormalizer {
    compiled: CompiledRules,
    scrubber: Scrubber,
    fallback_id: String,
    fallback_state: State,
}

impl TextNormalizer {
    /// Builds a normalizer from a TOML rule file.
    ///
    /// ```
    /// use waybill_core::carrier::{Normalizer, RawLine};
    /// use waybill_core::normalize::TextNormalizer;
    /// use waybill_core::state::State;
    ///
    /// let rules = r#"
    ///     fallback = { id = "other", state = "in_transit" }
    ///     [[rule]]
    ///     id = "signed"
    ///     priority = 10
    ///     state = "delivered"
    ///     any = ["已签收", "delivered"]
    ///     not = ["undelivered"]
    /// "#;
    /// let n = TextNormalizer::from_toml(rules).unwrap();
    /// let c = n.classify(&RawLine { text: "Package DELIVERED", ..Default::default() });
    /// assert_eq!((c.state, c.rule.as_str()), (State::Delivered, "signed"));
    /// let c = n.classify(&RawLine { text: "Undelivered", ..Default::default() });
    /// assert_eq!(c.rule, "other");
    /// assert!(TextNormalizer::from_toml("fallback = 1").is_err());
    /// ```
    pub fn from_toml(text: &str) -> Result<Self, RuleError> {
        let file = RuleFile::parse(text)?;
        let compiled = file.compile()?;
        let scrubber = Scrubber::new(&file.scrub.keep_in_brackets, &file.scrub.courier_labels)?;
        Ok(Self {
            compiled,
            scrubber,
            fallback_id: file.fallback.id,
            fallback_state: file.fallback.state,
        })
    }

    /// The normalizer of the built-in rule file, compiled on first use and shared.
    pub fn builtin() -> &'static TextNormalizer {
        static BUILTIN: OnceLock<TextNormalizer> = OnceLock::new();
        BUILTIN.get_or_init(|| {
            // The embedded file is part of the program, not input; the test
            // `builtin_rules_compile` keeps it valid.
            TextNormalizer::from_toml(BUILTIN_RULES).expect("built-in rule file is valid")
        })
    }

    /// Number of rules, the fallback not counted.
    pub fn rule_count(&self) -> usize {
        self.compiled.rules.len()
    }

    /// The text rules are matched against: places reduced to kinds, phones and couriers'
    /// names removed. Useful to explain a decision.
    ///
    /// ```
    /// use waybill_core::normalize::TextNormalizer;
    /// let s = TextNormalizer::builtin().scrubbed("【深圳市】派件员：张三 13800138000 正在派件");
    /// assert!(!s.contains("深圳") && !s.contains("138"));
    /// ```
    pub fn scrubbed(&self, text: &str) -> String {
        self.scrubber.scrub(text)
    }

    /// Classifies a text.
    pub fn classify_text(&self, text: &str) -> Classification {
        let scrubbed = self.scrubber.scrub(text);
        let mut keywords = vec![false; self.compiled.keyword_count];
        if let Some(ac) = &self.compiled.keywords {
            for m in ac.find_overlapping_iter(scrubbed.as_str()) {
                keywords[m.pattern().as_usize()] = true;
            }
        }
        // Regexes run only when a rule that reaches them is tried, at most once each.
        let mut memo: Vec<Option<bool>> = vec![None; self.compiled.regexes.len()];
        let mut regex =
            |i: usize| *memo[i].get_or_insert_with(|| self.compiled.regexes[i].is_match(&scrubbed));
        match self
            .compiled
            .rules
            .iter()
            .find(|r| r.matches(&keywords, &mut regex))
        {
            Some(rule) => Classification {
                state: rule.state,
                rule: rule.id.clone(),
            },
            None => Classification {
                state: self.fallback_state,
                rule: self.fallback_id.clone(),
            },
        }
    }

    /// Builds a [`Trace`] from raw lines (time, text) in any order: each line is
    /// classified, and the overall state derived with the regression guard.
    ///
    /// ```
    /// use waybill_core::model::{EventTime, CHINA_OFFSET};
    /// use waybill_core::normalize::TextNormalizer;
    /// use waybill_core::state::State;
    ///
    /// let t = |s| EventTime::parse(s, CHINA_OFFSET).unwrap();
    /// let trace = TextNormalizer::builtin().trace("zhongtong", "ZT1", [
    ///     (t("2024-05-01 10:00"), "【杭州市】快件已揽收".to_string()),
    ///     (t("2024-05-03 09:00"), "您的快件已签收，签收人：本人".to_string()),
    ///     // A replayed scan after delivery does not undo it.
    ///     (t("2024-05-03 10:00"), "快件已到达【杭州转运中心】".to_string()),
    /// ]);
    /// assert_eq!(trace.state, State::Delivered);
    /// assert_eq!(trace.data[0].state, State::AtTransferCentre);
    /// ```
    pub fn trace(
        &self,
        com: impl Into<String>,
        nu: impl Into<String>,
        lines: impl IntoIterator<Item = (EventTime, String)>,
    ) -> Trace {
        let events = lines
            .into_iter()
            .map(|(time, context)| {
                let c = self.classify_text(&context);
                TrackEvent {
                    time,
                    context,
                    location: None,
                    area_code: None,
                    area_name: None,
                    state: c.state,
                    raw_code: None,
                    rule: Some(c.rule),
                }
            })
            .collect();
        Trace::from_events(com, nu, events)
    }
}

impl Normalizer for TextNormalizer {
    fn classify(&self, line: &RawLine<'_>) -> Classification {
        self.classify_text(line.text)
    }
}

#[cfg(test)]
mod tests;
