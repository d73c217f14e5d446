//! The statistical fallback of the normalizer: multinomial naive Bayes over character
//! n-grams of the scrubbed line.
//!
//! Rules answer first; this model answers the lines no rule reads (and weak rules may
//! defer to it, see [`super::TextNormalizer`]). It is trained by
//! `cargo run -p waybill-core --example train_state_model` on the `train` rows of
//! `core/corpus/lines.tsv` and checked in as `core/rules/state_model.bin`.
//!
//! **Features.** The scrubbed line is folded (ASCII lower case, every run of digits one `0`,
//! punctuation and spaces one space, a space at each end) and every n-gram of 2 to 4
//! characters, plus every single non-ASCII character, is hashed (FNV-1a, 32 bits, the length
//! mixed in). Chinese needs the short grams (签收, 驿站), English the longer ones (`pick`,
//! `deliv`); the hash keeps the table flat and the per-line work free of allocation.
//!
//! **Scores.** For class `c`, `log P(c) + Σ log P(f | c)` over the line's features that occur
//! in the vocabulary, with add-α smoothing. A feature unseen in `c` costs the same for every
//! feature, so the file stores that cost once per class (`base`) and, per feature, only the
//! classes it was seen in with the gain over the base (quantised to 1/16 nat).
//!
//! **Confidence.** Naive Bayes treats overlapping n-grams as independent and is far too sure
//! of itself; the confidence is the softmax of the scores divided by the square root of the
//! number of features, a ranking signal between 0 and 1 rather than a calibrated
//! probability.
//!
//! File layout (little endian): `WBNG`, version byte 1, class count (u8), class names (u8
//! length + UTF-8 `State` name each), `log P(c)` and `base` (f32 per class), feature count
//! (u32), then per feature sorted by hash: hash (u32), entry count (u8), entries (class u8,
//! gain u8 in 1/16 nat).

use std::collections::BTreeMap;

use crate::state::State;

/// The largest n-gram.
const MAX_N: usize = 4;
/// Add-α smoothing of the counts.
const ALPHA: f64 = 0.3;
/// Features seen fewer times than this in training are left out of the file.
const MIN_COUNT: u32 = 2;
/// Gains are stored in units of 1/`SCALE` nat.
const SCALE: f32 = 16.0;
const MAGIC: &[u8; 4] = b"WBNG";
const VERSION: u8 = 1;

/// Why a model file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// The file does not start with the model's magic bytes and version.
    #[error("not a state model file (version {VERSION} expected)")]
    BadHeader,
    /// The file ends before its declared contents.
    #[error("state model file is truncated")]
    Truncated,
    /// A class is not a state this build knows.
    #[error("state model names an unknown state {name:?}")]
    UnknownState {
        /// The name in the file.
        name: String,
    },
    /// An entry points at a class the file did not declare.
    #[error("state model entry names class {index}, but the file has {classes}")]
    BadClass {
        /// The index in the entry.
        index: u8,
        /// How many classes the file declares.
        classes: usize,
    },
    /// Training data had no line, or a file declares no class.
    #[error("a state model needs at least one labelled line")]
    NoData,
}

/// A trained naive Bayes model over character n-grams.
///
/// ```
/// use waybill_core::normalize::NgramModel;
/// use waybill_core::state::State;
///
/// let model = NgramModel::train([
///     ("已签收", State::Delivered),
///     ("本人已签收", State::Delivered),
///     ("快件已揽收", State::Collected),
///     ("快件揽收成功", State::Collected),
/// ])
/// .unwrap();
/// let (state, confidence) = model.predict("签收了").unwrap();
/// assert_eq!(state, State::Delivered);
/// assert!(confidence > 0.5 && confidence <= 1.0);
/// let back = NgramModel::from_bytes(&model.to_bytes()).unwrap();
/// assert_eq!(back.predict("揽收").unwrap().0, State::Collected);
/// assert_eq!(back.predict("？？"), None);
/// ```
#[derive(Debug, Clone)]
pub struct NgramModel {
    classes: Vec<State>,
    log_prior: Vec<f32>,
    base: Vec<f32>,
    /// Open-addressing table from feature hash to `feature index + 1` (0 = empty slot).
    slots: Vec<u32>,
    keys: Vec<u32>,
    /// Entries of feature `i` are `entries[starts[i]..starts[i + 1]]`.
    starts: Vec<u32>,
    entries: Vec<(u8, u8)>,
}

/// Calls `f` with the hash of every feature of `text` (see the module documentation).
pub(crate) fn for_each_feature(text: &str, mut f: impl FnMut(u32)) {
    // window[0] is the newest character.
    let mut window = [' ' as u32; MAX_N];
    let mut filled = 1;
    let mut push = |c: u32, window: &mut [u32; MAX_N], filled: &mut usize| {
        window.copy_within(0..MAX_N - 1, 1);
        window[0] = c;
        *filled = (*filled + 1).min(MAX_N);
        let mut h: u32 = 0x811c_9dc5;
        for n in 1..=*filled {
            h = (h ^ window[n - 1]).wrapping_mul(0x0100_0193);
            let single_ascii = n == 1 && window[0] < 0x80;
            if !single_ascii {
                f(h ^ (n as u32).wrapping_mul(0x9e37_79b9));
            }
        }
    };
    let mut last = ' ' as u32;
    for ch in text.chars() {
        let c = fold(ch) as u32;
        // Runs of spaces and of digits collapse to one.
        if (c == ' ' as u32 || c == '0' as u32) && c == last {
            continue;
        }
        last = c;
        push(c, &mut window, &mut filled);
    }
    if last != ' ' as u32 {
        push(' ' as u32, &mut window, &mut filled);
    }
}

fn fold(ch: char) -> char {
    // The common CJK ideographs are all letters (category Lo), none numeric: answer them
    // without the slow Unicode table lookups (the test `fold_fast_path_agrees` checks).
    if ('\u{4E00}'..='\u{9FFF}').contains(&ch) {
        return ch;
    }
    fold_by_tables(ch)
}

/// `fold` by the general Unicode properties alone.
fn fold_by_tables(ch: char) -> char {
    if ch.is_ascii_alphabetic() {
        ch.to_ascii_lowercase()
    } else if ch.is_numeric() {
        '0'
    } else if ch.is_alphanumeric() {
        ch
    } else {
        ' '
    }
}

impl NgramModel {
    /// Trains a model on (text, state) pairs. The texts should be scrubbed the way the
    /// normalizer scrubs lines ([`super::TextNormalizer::scrubbed`]).
    pub fn train<'a>(
        lines: impl IntoIterator<Item = (&'a str, State)>,
    ) -> Result<NgramModel, ModelError> {
        let mut classes: Vec<State> = Vec::new();
        let mut docs: Vec<u32> = Vec::new();
        let mut totals: Vec<u64> = Vec::new();
        let mut counts: BTreeMap<u32, BTreeMap<u8, u32>> = BTreeMap::new();
        for (text, state) in lines {
            let class = match classes.iter().position(|&s| s == state) {
                Some(i) => i,
                None => {
                    classes.push(state);
                    docs.push(0);
                    totals.push(0);
                    classes.len() - 1
                }
            };
            docs[class] += 1;
            for_each_feature(text, |h| {
                *counts.entry(h).or_default().entry(class as u8).or_default() += 1;
            });
        }
        if classes.is_empty() {
            return Err(ModelError::NoData);
        }
        counts.retain(|_, per_class| per_class.values().sum::<u32>() >= MIN_COUNT);
        for per_class in counts.values() {
            for (&c, &n) in per_class {
                totals[c as usize] += u64::from(n);
            }
        }
        let vocabulary = counts.len() as f64;
        let all_docs: u32 = docs.iter().sum();
        let log_prior = docs
            .iter()
            .map(|&d| (f64::from(d) / f64::from(all_docs)).ln() as f32)
            .collect();
        let base = totals
            .iter()
            .map(|&t| (ALPHA / (t as f64 + ALPHA * vocabulary)).ln() as f32)
            .collect();
        let mut keys = Vec::with_capacity(counts.len());
        let mut starts = Vec::with_capacity(counts.len() + 1);
        let mut entries = Vec::new();
        for (key, per_class) in &counts {
            keys.push(*key);
            starts.push(entries.len() as u32);
            for (&c, &n) in per_class {
                let gain = ((f64::from(n) + ALPHA) / ALPHA).ln() as f32;
                entries.push((c, (gain * SCALE).round().clamp(0.0, 255.0) as u8));
            }
        }
        starts.push(entries.len() as u32);
        Ok(Self::assemble(
            classes, log_prior, base, keys, starts, entries,
        ))
    }

    fn assemble(
        classes: Vec<State>,
        log_prior: Vec<f32>,
        base: Vec<f32>,
        keys: Vec<u32>,
        starts: Vec<u32>,
        entries: Vec<(u8, u8)>,
    ) -> NgramModel {
        let capacity = (keys.len() * 2).next_power_of_two().max(2);
        let mut slots = vec![0u32; capacity];
        for (i, &key) in keys.iter().enumerate() {
            let mut s = slot_of(key, capacity);
            while slots[s] != 0 {
                s = (s + 1) & (capacity - 1);
            }
            slots[s] = i as u32 + 1;
        }
        NgramModel {
            classes,
            log_prior,
            base,
            slots,
            keys,
            starts,
            entries,
        }
    }

    /// The model checked in with the crate (`core/rules/state_model.bin`), loaded on first
    /// use and shared.
    pub fn builtin() -> &'static NgramModel {
        static BUILTIN: std::sync::OnceLock<NgramModel> = std::sync::OnceLock::new();
        BUILTIN.get_or_init(|| {
            // The embedded file is part of the program; the test `builtin_model_loads` and
            // `checked_in_model_is_the_one_the_corpus_trains` keep it valid and current.
            NgramModel::from_bytes(BUILTIN_MODEL).expect("built-in state model is valid")
        })
    }

    /// The states the model can answer.
    pub fn classes(&self) -> &[State] {
        &self.classes
    }

    /// Number of features in the vocabulary.
    pub fn vocabulary(&self) -> usize {
        self.keys.len()
    }

    /// The most likely state of a scrubbed line and the confidence (0..=1) in it; `None`
    /// when the line has no feature the model knows.
    pub fn predict(&self, scrubbed: &str) -> Option<(State, f32)> {
        let mut scores = [0f32; State::ALL.len()];
        let scores = &mut scores[..self.classes.len()];
        let mut known = 0u32;
        for_each_feature(scrubbed, |h| {
            if let Some(i) = self.find(h) {
                known += 1;
                let (a, b) = (self.starts[i] as usize, self.starts[i + 1] as usize);
                for &(c, q) in &self.entries[a..b] {
                    scores[c as usize] += f32::from(q) / SCALE;
                }
            }
        });
        let n = known as f32;
        for (c, s) in scores.iter_mut().enumerate() {
            *s += self.log_prior[c] + n * self.base[c];
        }
        if known == 0 {
            return None;
        }
        let best = (0..scores.len())
            .max_by(|&a, &b| scores[a].total_cmp(&scores[b]))
            .unwrap_or(0);
        let temperature = n.sqrt().max(1.0);
        let top = scores[best];
        let sum: f32 = scores
            .iter()
            .map(|&s| ((s - top) / temperature).exp())
            .sum();
        Some((self.classes[best], 1.0 / sum))
    }

    fn find(&self, key: u32) -> Option<usize> {
        let capacity = self.slots.len();
        let mut s = slot_of(key, capacity);
        loop {
            match self.slots[s] {
                0 => return None,
                i if self.keys[i as usize - 1] == key => return Some(i as usize - 1),
                _ => s = (s + 1) & (capacity - 1),
            }
        }
    }

    /// The model as a file (the layout in the module documentation).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.keys.len() * 7 + self.entries.len() * 2);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(self.classes.len() as u8);
        for s in &self.classes {
            out.push(s.name().len() as u8);
            out.extend_from_slice(s.name().as_bytes());
        }
        for v in self.log_prior.iter().chain(&self.base) {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&(self.keys.len() as u32).to_le_bytes());
        for (i, key) in self.keys.iter().enumerate() {
            out.extend_from_slice(&key.to_le_bytes());
            let (a, b) = (self.starts[i] as usize, self.starts[i + 1] as usize);
            out.push((b - a) as u8);
            for &(c, q) in &self.entries[a..b] {
                out.push(c);
                out.push(q);
            }
        }
        out
    }

    /// Reads a model file.
    pub fn from_bytes(bytes: &[u8]) -> Result<NgramModel, ModelError> {
        let mut r = Reader(bytes);
        if r.take(4)? != MAGIC || r.u8()? != VERSION {
            return Err(ModelError::BadHeader);
        }
        let class_count = usize::from(r.u8()?);
        if class_count == 0 {
            return Err(ModelError::NoData);
        }
        let mut classes = Vec::with_capacity(class_count);
        for _ in 0..class_count {
            let len = usize::from(r.u8()?);
            let name = String::from_utf8_lossy(r.take(len)?).into_owned();
            let state = State::ALL
                .into_iter()
                .find(|s| s.name() == name)
                .ok_or(ModelError::UnknownState { name })?;
            classes.push(state);
        }
        let mut floats = |n| (0..n).map(|_| r.f32()).collect::<Result<Vec<_>, _>>();
        let log_prior = floats(class_count)?;
        let base = floats(class_count)?;
        let feature_count = r.u32()? as usize;
        let mut keys = Vec::with_capacity(feature_count);
        let mut starts = Vec::with_capacity(feature_count + 1);
        let mut entries = Vec::new();
        for _ in 0..feature_count {
            keys.push(r.u32()?);
            starts.push(entries.len() as u32);
            for _ in 0..r.u8()? {
                let (c, q) = (r.u8()?, r.u8()?);
                if usize::from(c) >= class_count {
                    return Err(ModelError::BadClass {
                        index: c,
                        classes: class_count,
                    });
                }
                entries.push((c, q));
            }
        }
        starts.push(entries.len() as u32);
        Ok(Self::assemble(
            classes, log_prior, base, keys, starts, entries,
        ))
    }
}

fn slot_of(key: u32, capacity: usize) -> usize {
    (key.wrapping_mul(0x9e37_79b1) >> 7) as usize & (capacity - 1)
}

/// The checked-in model file.
pub const BUILTIN_MODEL: &[u8] = include_bytes!("../../rules/state_model.bin");

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ModelError> {
        if self.0.len() < n {
            return Err(ModelError::Truncated);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, ModelError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, ModelError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn f32(&mut self) -> Result<f32, ModelError> {
        Ok(f32::from_bits(self.u32()?))
    }
}

#[cfg(test)]
mod fold_tests {
    use super::*;

    #[test]
    fn fold_fast_path_agrees() {
        for ch in ('\u{4E00}'..='\u{9FFF}').chain(['a', 'Z', '7', '，', ' ', '〇', '①']) {
            assert_eq!(fold(ch), fold_by_tables(ch), "{ch:?}");
        }
    }
}
