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
//! 3. **decide**: the matching rule with the highest priority wins. With none, the
//!    statistical model ([`NgramModel`], naive Bayes over character n-grams, trained on the
//!    corpus `core/corpus/lines.tsv`) answers with rule id `model`; a *weak* rule (confidence
//!    below [`WEAK_RULE`]) is overruled by the model when the model is surer of another
//!    state, and at least [`OVERRULE_AT`] sure. Without a model (a user's rule file), the file's fallback answers.
//!
//! Every answer carries a confidence: the rule's own (written in the rule file, 0.9 unless
//! it says otherwise), or the model's. [`TextNormalizer::trace`] then reads neutral lines in
//! context (see there).
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

mod ngram;
mod rules;
mod scrub;

use std::sync::{Arc, OnceLock};

use crate::carrier::{Classification, Normalizer, RawLine};
use crate::model::{EventTime, Trace, TrackEvent};
use crate::state::{Phase, State};

pub use ngram::{ModelError, NgramModel, BUILTIN_MODEL};
pub use rules::RuleError;
use rules::{CompiledRules, RuleFile};
use scrub::Scrubber;

/// The built-in rule file.
pub const BUILTIN_RULES: &str = include_str!("../../rules/normalize.toml");

/// Rules less sure than this only suggest: the model overrules them when it is surer (and
/// at least [`OVERRULE_AT`] sure).
pub const WEAK_RULE: f32 = 0.8;

/// The model overrules a weak rule only when at least this sure.
pub const OVERRULE_AT: f32 = 0.9;

/// The rule id of answers given by the statistical model.
pub const MODEL_RULE: &str = "model";

/// A model answer below this confidence counts as neutral, so [`TextNormalizer::trace`]
/// may read it from its context.
pub const NEUTRAL_BELOW: f32 = 0.6;

/// A normalizer driven by a rule file. Patterns are compiled once, at construction; a
/// `TextNormalizer` is `Send + Sync` and meant to be shared.
#[derive(Debug, Clone)]
pub struct TextNormalizer {
    compiled: CompiledRules,
    scrubber: Scrubber,
    fallback_id: String,
    fallback_state: State,
    fallback_confidence: f32,
    model: Option<Arc<NgramModel>>,
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
            fallback_confidence: file.fallback.confidence,
            model: None,
        })
    }

    /// The same rules with a statistical model behind them: it answers the lines no rule
    /// reads and overrules weak rules when surer.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use waybill_core::normalize::{NgramModel, TextNormalizer};
    /// use waybill_core::state::State;
    ///
    /// let rules = r#"fallback = { id = "other", state = "in_transit" }"#;
    /// let model = NgramModel::train([("收件人拒收", State::Refused), ("已揽收", State::Collected)]).unwrap();
    /// let n = TextNormalizer::from_toml(rules).unwrap().with_model(Arc::new(model));
    /// let c = n.classify_text("客户拒收了");
    /// assert_eq!((c.state, c.rule.as_str()), (State::Refused, "model"));
    /// ```
    pub fn with_model(mut self, model: Arc<NgramModel>) -> Self {
        self.model = Some(model);
        self
    }

    /// The normalizer of the built-in rule file and the built-in model, compiled on first
    /// use and shared.
    pub fn builtin() -> &'static TextNormalizer {
        static BUILTIN: OnceLock<TextNormalizer> = OnceLock::new();
        BUILTIN.get_or_init(|| {
            // The embedded files are part of the program, not input; the tests
            // `builtin_rules_compile` and `builtin_model_loads` keep them valid.
            TextNormalizer::from_toml(BUILTIN_RULES)
                .expect("built-in rule file is valid")
                .with_model(Arc::new(NgramModel::builtin().clone()))
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
        let rule = self.first_rule(&scrubbed);
        let model = || {
            self.model
                .as_ref()
                .and_then(|m| m.predict(&scrubbed))
                .map(|(state, confidence)| Classification {
                    state,
                    rule: MODEL_RULE.to_owned(),
                    confidence,
                })
        };
        match rule {
            Some(r) if r.confidence >= WEAK_RULE || self.model.is_none() => r.answer(),
            Some(r) => match model() {
                Some(m) if m.state != r.state && m.confidence > r.confidence.max(OVERRULE_AT) => m,
                _ => r.answer(),
            },
            None => model().unwrap_or_else(|| Classification {
                state: self.fallback_state,
                rule: self.fallback_id.clone(),
                confidence: self.fallback_confidence,
            }),
        }
    }

    /// The matching rule of highest priority.
    ///
    /// Only the rules a keyword of the line reaches (and those needing no keyword) are
    /// tried, in priority order; the others cannot match, so the answer is the one a walk
    /// over every rule gives. Bit sets live on the stack for files of ordinary size, so a
    /// line allocates nothing here.
    fn first_rule(&self, scrubbed: &str) -> Option<&rules::CompiledRule> {
        const STACK_WORDS: usize = 32;
        let c = &self.compiled;
        let (kw_words, rule_words, re_words) = (
            rules::words(c.keyword_count),
            rules::words(c.rules.len()),
            rules::words(c.regexes.len()),
        );
        let need = kw_words + rule_words + 2 * re_words;
        let mut stack = [0u64; STACK_WORDS];
        let mut heap = Vec::new();
        let bits: &mut [u64] = if need <= STACK_WORDS {
            &mut stack[..need]
        } else {
            heap.resize(need, 0);
            &mut heap
        };
        let (keywords, rest) = bits.split_at_mut(kw_words);
        let (candidates, rest) = rest.split_at_mut(rule_words);
        let (tried, matched) = rest.split_at_mut(re_words);
        if let Some(ac) = &c.keywords {
            for m in ac.find_overlapping_iter(scrubbed) {
                let k = m.pattern().as_usize();
                if !rules::bit(keywords, k) {
                    rules::set_bit(keywords, k);
                    for &r in &c.triggered_by[k] {
                        rules::set_bit(candidates, r);
                    }
                }
            }
        }
        for &r in &c.always {
            rules::set_bit(candidates, r);
        }
        let keywords: &[u64] = keywords;
        // Regexes run only when a rule that reaches them is tried, at most once each.
        let mut regex = |i: usize| {
            if !rules::bit(tried, i) {
                rules::set_bit(tried, i);
                if c.regexes[i].is_match(scrubbed) {
                    rules::set_bit(matched, i);
                }
            }
            rules::bit(matched, i)
        };
        for (w, &word) in candidates.iter().enumerate() {
            let mut word = word;
            while word != 0 {
                let r = w * 64 + word.trailing_zeros() as usize;
                word &= word - 1;
                if c.rules[r].matches(keywords, &mut regex) {
                    return Some(&c.rules[r]);
                }
            }
        }
        None
    }

    /// Classifies the lines of one trace, oldest first, reading neutral lines in context:
    ///
    /// - `context.first_line`: the oldest line, when the model is unsure of it (confidence
    ///   below [`NEUTRAL_BELOW`]) and no rule read it, is the collection, unless the model
    ///   put it before collection (order or pickup request);
    /// - `context.return_leg`: a line that only reports movement (its phase is in transit)
    ///   after a refusal or a return is part of the way back, so it is returning.
    ///
    /// Context answers carry the confidence of the line's own reading.
    ///
    /// ```
    /// use waybill_core::normalize::TextNormalizer;
    /// use waybill_core::state::State;
    ///
    /// let c = TextNormalizer::builtin().classify_in_context(&[
    ///     "快件已揽收",
    ///     "收件人拒收",
    ///     "快件到达【广州转运中心】",
    /// ]);
    /// assert_eq!(c[2].state, State::Returning);
    /// assert_eq!(c[2].rule, "context.return_leg");
    /// ```
    pub fn classify_in_context(&self, oldest_first: &[&str]) -> Vec<Classification> {
        let mut out: Vec<Classification> = Vec::with_capacity(oldest_first.len());
        for (i, text) in oldest_first.iter().enumerate() {
            let mut c = self.classify_text(text);
            let neutral = (c.rule == MODEL_RULE && c.confidence < NEUTRAL_BELOW)
                || c.rule == self.fallback_id;
            let before = out.last().map(|p| p.state.phase());
            if i == 0 && neutral && !matches!(c.state.phase(), Phase::InfoReceived | Phase::NoTrace)
            {
                c.state = State::Collected;
                c.rule = "context.first_line".to_owned();
            } else if c.state.phase() == Phase::InTransit
                && matches!(before, Some(Phase::Refused | Phase::Returning))
            {
                c.state = State::Returning;
                c.rule = "context.return_leg".to_owned();
            }
            out.push(c);
        }
        out
    }

    /// Builds a [`Trace`] from raw lines (time, text) in any order: the lines are put in
    /// time order, classified with [`TextNormalizer::classify_in_context`], and the overall
    /// state derived with the regression guard.
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
        let mut lines: Vec<(EventTime, String)> = lines.into_iter().collect();
        // The order Trace::from_events keeps: newest first, same-second lines in the
        // carrier's order.
        if lines.len() > 1 && lines[0].0.at < lines[lines.len() - 1].0.at {
            lines.reverse();
        }
        lines.sort_by_key(|(time, _)| std::cmp::Reverse(time.at));
        let oldest_first: Vec<&str> = lines.iter().rev().map(|(_, t)| t.as_str()).collect();
        let mut classes = self.classify_in_context(&oldest_first);
        let events = lines
            .into_iter()
            .map(|(time, context)| {
                // `classes` is oldest first, `lines` newest first.
                let c = classes
                    .pop()
                    .unwrap_or_else(|| self.classify_text(&context));
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
