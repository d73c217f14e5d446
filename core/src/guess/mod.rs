//! Which carrier issued a tracking number?
//!
//! The guesser matches a number, in its [`canonical`] form, against number formats kept as
//! data (the embedded `core/rules/carriers.json`, extendable at runtime) and returns every
//! carrier whose format fits, best first. Ranking, strongest evidence first:
//!
//! 1. the check digit is verified;
//! 2. a literal (letter) prefix with the exact length, e.g. `SF` + 13 digits;
//! 3. a numeric prefix, e.g. ZTO's 14 digits starting `73`–`76` or `78`;
//! 4. the length alone, e.g. DHL eCommerce's "any 14 digits".
//!
//! Within a tier, current formats come before legacy ones, a passing hint check (China
//! Post/EMS domestic S10-style digit) comes next, then the format that allows fewer
//! numbers of this length (the more specific one; a verified check digit divides the
//! space by its modulus); the region prior (default `CN`) counts as a factor of 4 there.
//! Formats whose check digit does not match are still listed, last, with
//! [`Checksum::Failed`]. When another carrier fits with the same kind of evidence, the
//! reason says so: only a trace can tell them apart.
//!
//! UPU S10 numbers name the post that issued them: China's map to `ems` (service `E?`)
//! or `youzhengguoji` (others), every other post with a kuaidi100 code in
//! `core/rules/s10_issuers.json` to that code (`…HK` → `hkpost`, `…GB` → `royalmail`,
//! EMS items `E?…GB` → `parcelforce`), the format staying `s10`; the rest keep the
//! generic carrier `s10`. The reason names the post and the check digit's result.
//!
//! A [`Prior`] learned from confirmed waybills re-ranks the candidates by how often each
//! carrier was right for numbers of the same length and start; see
//! [`Guesser::guess_with_prior`].
//!
//! ```
//! use waybill_core::guess::{Checksum, Guesser};
//! let g = Guesser::embedded();
//! let found = g.guess("sf1234567890123").unwrap();
//! assert_eq!(found[0].carrier, "shunfeng");
//!
//! let s10 = g.guess("EA123456785CN").unwrap();
//! assert_eq!((s10[0].carrier, s10[0].checksum), ("ems", Checksum::Verified));
//!
//! let hk = g.guess("RR123456785HK").unwrap();
//! assert_eq!((hk[0].carrier, hk[0].format), ("hkpost", "s10"));
//! ```

mod canonical;
mod catalog;
mod checksum;
mod compile;
mod matcher;
mod prior;
mod rules;

use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::{Serialize, Serializer};

pub use canonical::{canonical, MAX_LEN};
pub use catalog::{catalog, CarrierEntry, Catalog};
pub use prior::{Prior, PriorBucket, PriorCount, DEFAULT_MIN_SAMPLES, PREFIX_LEN};
pub use rules::{
    Algorithm, CarrierInfo, CheckSpec, FormatRule, LengthSpec, Post, PrefixKind, Prepend, RuleSet,
};

use compile::CompiledRule;
use prior::{grouped, Evidence, Learned};
use rules::{CountryFile, IssuerFile};

/// Why a number could not be guessed, or why rules could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum GuessError {
    /// Nothing is left once spaces and dashes are removed.
    #[error("the tracking number is empty (after removing spaces and dashes)")]
    Empty,
    /// Too long to be a tracking number.
    #[error(
        "the tracking number is longer than {max} characters (after removing spaces and dashes)"
    )]
    TooLong {
        /// The limit, [`MAX_LEN`].
        max: usize,
    },
    /// A control character (tab, newline, NUL…) inside the number.
    #[error(
        "the tracking number contains control character U+{codepoint:04X} at character {position}"
    )]
    ControlCharacter {
        /// Index of the character in the trimmed input.
        position: usize,
        /// Its Unicode code point.
        codepoint: u32,
    },
    /// The rule text is not JSON of the rule schema.
    #[error("rule file is not valid: {source}")]
    RuleFile {
        /// The parser's error, with line and column.
        source: serde_json::Error,
    },
    /// A format's pattern does not compile.
    #[error("format `{id}`: pattern does not compile: {message}")]
    BadPattern {
        /// Format id.
        id: String,
        /// The regex compiler's message.
        message: String,
    },
    /// A format is inconsistent.
    #[error("format `{id}`: {problem}")]
    BadRule {
        /// Format id.
        id: String,
        /// What is wrong.
        problem: String,
    },
    /// A carrier entry is inconsistent.
    #[error("carrier `{code}`: {problem}")]
    BadCarrier {
        /// Carrier code.
        code: String,
        /// What is wrong.
        problem: String,
    },
    /// A format names a carrier that is neither known nor in the same rule set.
    #[error("format `{id}` names carrier `{carrier}`, which is not in the catalogue")]
    UnknownCarrier {
        /// Format id.
        id: String,
        /// The carrier it names.
        carrier: String,
    },
    /// A format id is already taken.
    #[error("format `{id}` already exists")]
    DuplicateFormat {
        /// Format id.
        id: String,
    },
    /// A carrier code is already taken.
    #[error("carrier `{code}` already exists")]
    DuplicateCarrier {
        /// Carrier code.
        code: String,
    },
    /// An alias or name already resolves to another carrier.
    #[error("carrier `{code}`: name `{alias}` already belongs to `{other}`")]
    AliasTaken {
        /// The name.
        alias: String,
        /// The carrier being added.
        code: String,
        /// The carrier that has it.
        other: String,
    },
}

/// What the check digit said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Checksum {
    /// The format has a check digit and it matches.
    Verified,
    /// The format has a check digit and it does not match.
    Failed,
    /// A hint check (not a published algorithm) matches.
    HintMatched,
    /// A hint check does not match; this does not count against the candidate.
    HintFailed,
    /// The format has no check digit.
    None,
}

impl Checksum {
    /// The snake_case name also used in JSON.
    ///
    /// ```
    /// assert_eq!(waybill_core::guess::Checksum::HintMatched.as_str(), "hint_matched");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Checksum::Verified => "verified",
            Checksum::Failed => "failed",
            Checksum::HintMatched => "hint_matched",
            Checksum::HintFailed => "hint_failed",
            Checksum::None => "none",
        }
    }
}

/// One possible carrier for a number.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate<'g> {
    /// Carrier code (kuaidi100 company code where one exists).
    pub carrier: &'g str,
    /// Format id.
    pub format: &'g str,
    /// Check digit outcome.
    pub checksum: Checksum,
    /// Rank score; higher is more likely. Only the order is meaningful.
    pub score: u32,
    /// The part of the score the rules give, without a learned prior.
    #[serde(skip)]
    rule_score: u32,
    /// One line saying why.
    pub reason: Reason<'g>,
}

/// Why a candidate matched, rendered as one line by `Display` (and in JSON).
#[derive(Clone)]
pub struct Reason<'g> {
    rule: &'g FormatRule,
    checksum: Checksum,
    post: Option<&'g Post>,
    region_prior: bool,
    /// The best other carrier with the same kind of evidence, if any.
    rival: Option<&'g str>,
    /// What the learned prior said about this candidate's carrier, and its code.
    learned: Option<(Learned, &'g str)>,
}

impl fmt::Display for Reason<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rule = self.rule;
        f.write_str(&rule.name)?;
        f.write_str(match rule.prefix {
            PrefixKind::Literal => ": literal prefix, exact length",
            PrefixKind::Numeric => ": numeric prefix and length",
            PrefixKind::None => ": length and characters only",
            PrefixKind::Fallback => ": catch-all, ranked last",
        })?;
        let label = rule.checksum.as_ref().map_or("", |c| c.algorithm.label());
        match self.checksum {
            Checksum::Verified => write!(f, "; {label} check digit verified")?,
            Checksum::Failed => write!(f, "; {label} check digit does NOT match")?,
            Checksum::HintMatched => write!(f, "; {label}-style check digit matches (hint)")?,
            Checksum::HintFailed => {
                write!(f, "; {label}-style check digit does not match (hint only)")?;
            }
            Checksum::None => f.write_str("; no check digit")?,
        }
        if let Some(post) = self.post {
            write!(f, "; {} ({})", post.post, post.country)?;
        }
        if rule.legacy {
            f.write_str("; older or less certain format")?;
        }
        if self.region_prior {
            write!(f, "; region {}", rule.region)?;
        }
        if let Some(rival) = self.rival {
            write!(
                f,
                "; {rival} fits with the same kind of evidence, only a trace can tell them apart"
            )?;
        }
        if let Some((learned, code)) = &self.learned {
            write!(
                f,
                "; learned: {} confirmed {}-{} numbers",
                grouped(learned.total),
                learned.length,
                if learned.prefix().bytes().all(|b| b.is_ascii_digit()) {
                    "digit"
                } else {
                    "character"
                },
            )?;
            if learned.prefix_len > 0 {
                write!(f, " starting {}", learned.prefix())?;
            }
            write!(f, ": {} % {code}", learned.percent())?;
        }
        Ok(())
    }
}

impl fmt::Debug for Reason<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_string())
    }
}

impl Serialize for Reason<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl Candidate<'_> {
    /// The same candidate with owned strings, for keeping beyond the guesser's borrow.
    pub fn to_owned_candidate(&self) -> OwnedCandidate {
        OwnedCandidate {
            carrier: self.carrier.to_owned(),
            format: self.format.to_owned(),
            checksum: self.checksum,
            score: self.score,
            reason: self.reason.to_string(),
        }
    }
}

/// A [`Candidate`] that owns its strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OwnedCandidate {
    /// Carrier code.
    pub carrier: String,
    /// Format id.
    pub format: String,
    /// Check digit outcome.
    pub checksum: Checksum,
    /// Rank score.
    pub score: u32,
    /// One line saying why.
    pub reason: String,
}

/// Score weights. A learned share (whole percent) outranks every rule tier; a tier
/// outranks everything below it; inside a tier, current beats legacy, a matched hint
/// beats none, then the smaller number space wins, measured in quarter bits below
/// [`SPACE_CAP`] (so the space term stays under [`HINT_MATCHED`]).
const LEARNED_PERCENT: u32 = 100_000;
const TIER: u32 = 10_000;
const CURRENT_FORMAT: u32 = 4_000;
const HINT_MATCHED: u32 = 2_000;
/// 400 bits: more than any format's space (64 characters of 36 values is 331 bits).
const SPACE_CAP: u32 = 1_600;
/// The region prior as a likelihood factor of 4: two bits, in quarter bits.
const REGION_PRIOR: u32 = 8;

/// The carrier guesser: rules, catalogue and region prior.
///
/// Build it once and share it; [`Guesser::embedded`] is a ready, process-wide instance.
///
/// ```
/// use waybill_core::guess::{Guesser, RuleSet};
/// let mut g = Guesser::default();
/// g.extend(RuleSet::from_json(r#"{
///   "carriers": [{"code": "acme", "name_zh": "阿克米", "name_en": "Acme"}],
///   "formats": [{"id": "acme", "carrier": "acme", "name": "Acme (AC + 10 digits)",
///                "pattern": "^AC\\d{10}$", "prefix": "literal", "region": "CN"}]
/// }"#).unwrap()).unwrap();
/// assert_eq!(g.guess("AC 0123456789").unwrap()[0].carrier, "acme");
/// assert_eq!(g.catalog().resolve("Acme"), Some("acme"));
/// ```
#[derive(Debug, Clone)]
pub struct Guesser {
    rules: Vec<CompiledRule>,
    /// Rule indexes that can match a number of a given length and first byte, flattened:
    /// bucket `len * 128 + first` is `index[buckets[b].0 .. buckets[b].1]`.
    index: Vec<u32>,
    buckets: Vec<(u32, u32)>,
    catalog: Catalog,
    /// S10 posts by country code (`(a - 'A') * 26 + (b - 'A')`).
    posts: Arc<Vec<Option<Post>>>,
    /// The issuing post's carrier by country code, as catalogue positions.
    issuers: Arc<Vec<Issuers>>,
    /// Ids of the formats whose carrier is the issuing post.
    issuer_formats: Arc<Vec<String>>,
    /// Per rule: its carrier comes from [`Guesser::issuers`].
    by_issuer: Vec<bool>,
    region: String,
    /// Per rule: its region is the region prior.
    in_region: Vec<bool>,
}

/// The carriers of one country's S10 items.
#[derive(Debug, Clone, Copy, Default)]
struct Issuers {
    /// Any item.
    plain: Option<usize>,
    /// EMS items (service indicator `E?`), when another carrier handles them.
    ems: Option<usize>,
}

impl Guesser {
    /// The guesser built from the embedded rules, built once per process.
    pub fn embedded() -> &'static Guesser {
        static EMBEDDED: OnceLock<Guesser> = OnceLock::new();
        EMBEDDED.get_or_init(|| {
            // The embedded files are fixed at build time and checked by the tests.
            Guesser::from_rules(RuleSet::embedded().expect("embedded rule file parses"))
                .expect("embedded rules compile")
        })
    }

    /// A guesser with only the given rules (plus the embedded S10 country list).
    ///
    /// # Errors
    ///
    /// Any [`GuessError`] about rules: bad pattern, unknown carrier, duplicate id or alias.
    pub fn from_rules(set: RuleSet) -> Result<Self, GuessError> {
        let file: CountryFile = serde_json::from_str(rules::EMBEDDED_COUNTRIES)
            .map_err(|source| GuessError::RuleFile { source })?;
        let mut posts = vec![None; 26 * 26];
        for post in file.countries {
            if let Some(i) = country_index(post.code.as_bytes()) {
                posts[i] = Some(post);
            }
        }
        let issuer_file: IssuerFile = serde_json::from_str(rules::EMBEDDED_ISSUERS)
            .map_err(|source| GuessError::RuleFile { source })?;
        let mut g = Guesser {
            rules: Vec::new(),
            index: Vec::new(),
            buckets: Vec::new(),
            catalog: Catalog::default(),
            posts: Arc::new(posts),
            issuers: Arc::new(vec![Issuers::default(); 26 * 26]),
            issuer_formats: Arc::new(issuer_file.formats.clone()),
            by_issuer: Vec::new(),
            region: "CN".into(),
            in_region: Vec::new(),
        };
        g.apply(set)?;
        g.add_issuers(&issuer_file)?;
        Ok(g)
    }

    /// Puts the issuing posts into the catalogue (each listing the issuer formats) and
    /// indexes them by country. Nothing is added when no issuer format is loaded.
    fn add_issuers(&mut self, file: &IssuerFile) -> Result<(), GuessError> {
        let formats: Vec<String> = self
            .rules
            .iter()
            .filter(|r| file.formats.contains(&r.rule.id))
            .map(|r| r.rule.id.clone())
            .collect();
        if formats.is_empty() {
            return Ok(());
        }
        let mut issuers = vec![Issuers::default(); 26 * 26];
        for issuer in &file.issuers {
            let Some(country) = country_index(issuer.country.as_bytes()) else {
                return Err(GuessError::BadCarrier {
                    code: issuer.carrier.clone(),
                    problem: format!("`{}` is not a country code", issuer.country),
                });
            };
            let position = match self.catalog.position(&issuer.carrier) {
                Some(p) => p,
                None => {
                    let (Some(name_zh), Some(name_en)) = (&issuer.name_zh, &issuer.name_en) else {
                        return Err(GuessError::BadCarrier {
                            code: issuer.carrier.clone(),
                            problem: "an issuer not in the catalogue needs name_zh and name_en"
                                .into(),
                        });
                    };
                    self.catalog.add(&CarrierInfo {
                        code: issuer.carrier.clone(),
                        name_zh: name_zh.clone(),
                        name_en: name_en.clone(),
                        aliases: Vec::new(),
                    })?;
                    self.catalog.position(&issuer.carrier).ok_or_else(|| {
                        GuessError::BadCarrier {
                            code: issuer.carrier.clone(),
                            problem: "not found after being added".into(),
                        }
                    })?
                }
            };
            for id in &formats {
                if !self.catalog.entry(position).formats.contains(id) {
                    self.catalog.add_format(position, id);
                }
            }
            let slot = &mut issuers[country];
            match issuer.service {
                Some('E') => slot.ems = Some(position),
                _ => slot.plain = Some(position),
            }
        }
        self.issuers = Arc::new(issuers);
        Ok(())
    }

    /// The embedded rules plus `extra`.
    ///
    /// # Errors
    ///
    /// As [`Guesser::extend`].
    pub fn with_rules(extra: RuleSet) -> Result<Self, GuessError> {
        let mut g = Self::embedded().clone();
        g.extend(extra)?;
        Ok(g)
    }

    /// Adds carriers and formats. All or nothing: on error the guesser is unchanged.
    ///
    /// # Errors
    ///
    /// [`GuessError::BadPattern`], [`GuessError::BadRule`], [`GuessError::UnknownCarrier`],
    /// [`GuessError::DuplicateFormat`], [`GuessError::DuplicateCarrier`],
    /// [`GuessError::AliasTaken`].
    pub fn extend(&mut self, set: RuleSet) -> Result<(), GuessError> {
        let mut next = self.clone();
        next.apply(set)?;
        *self = next;
        Ok(())
    }

    /// Adds formats of carriers already in the catalogue.
    ///
    /// # Errors
    ///
    /// As [`Guesser::extend`].
    pub fn extend_formats(
        &mut self,
        formats: impl IntoIterator<Item = FormatRule>,
    ) -> Result<(), GuessError> {
        self.extend(RuleSet {
            about: None,
            carriers: Vec::new(),
            formats: formats.into_iter().collect(),
        })
    }

    fn apply(&mut self, set: RuleSet) -> Result<(), GuessError> {
        for carrier in &set.carriers {
            self.catalog.add(carrier)?;
        }
        for rule in set.formats {
            if self.rules.iter().any(|r| r.rule.id == rule.id) {
                return Err(GuessError::DuplicateFormat { id: rule.id });
            }
            let Some(carrier) = self.catalog.position(&rule.carrier) else {
                return Err(GuessError::UnknownCarrier {
                    id: rule.id,
                    carrier: rule.carrier,
                });
            };
            let compiled = CompiledRule::new(rule, carrier)?;
            let index = u32::try_from(self.rules.len()).map_err(|_| GuessError::BadRule {
                id: compiled.rule.id.clone(),
                problem: "too many rules".into(),
            })?;
            debug_assert_eq!(index as usize, self.rules.len());
            self.catalog.add_format(carrier, &compiled.rule.id);
            self.rules.push(compiled);
        }
        self.rebuild_buckets();
        self.rebuild_region();
        self.by_issuer = self
            .rules
            .iter()
            .map(|r| self.issuer_formats.contains(&r.rule.id))
            .collect();
        Ok(())
    }

    fn rebuild_region(&mut self) {
        self.in_region = self
            .rules
            .iter()
            .map(|r| r.rule.region.eq_ignore_ascii_case(&self.region))
            .collect();
    }

    fn rebuild_buckets(&mut self) {
        self.index.clear();
        self.buckets.clear();
        for len in 0..=MAX_LEN {
            for first in 0..128u8 {
                let start = self.index.len() as u32;
                for (i, rule) in self.rules.iter().enumerate() {
                    if rule.lengths & (1u128 << len) != 0 && rule.allows_first(first) {
                        self.index.push(i as u32);
                    }
                }
                self.buckets.push((start, self.index.len() as u32));
            }
        }
    }

    /// Sets the region prior (`CN`, `US`, …) that breaks ties.
    pub fn set_region(&mut self, region: &str) {
        self.region = region.trim().to_ascii_uppercase();
        self.rebuild_region();
    }

    /// The guesser with another region prior.
    ///
    /// ```
    /// use waybill_core::guess::Guesser;
    /// let us = Guesser::default().with_region("us");
    /// assert_eq!(us.region(), "US");
    /// ```
    #[must_use]
    pub fn with_region(mut self, region: &str) -> Self {
        self.set_region(region);
        self
    }

    /// The region prior.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The carrier catalogue (embedded carriers plus any added).
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// All formats, in rule order.
    pub fn formats(&self) -> impl Iterator<Item = &FormatRule> {
        self.rules.iter().map(|r| &r.rule)
    }

    /// All candidate carriers for `number`, best first. An input that fits no format gives
    /// an empty list.
    ///
    /// # Errors
    ///
    /// [`GuessError::Empty`], [`GuessError::TooLong`], [`GuessError::ControlCharacter`].
    pub fn guess(&self, number: &str) -> Result<Vec<Candidate<'_>>, GuessError> {
        let mut out = Vec::new();
        self.guess_into(number, &mut out)?;
        Ok(out)
    }

    /// Like [`Guesser::guess`], re-ranked by a prior learned from confirmed waybills.
    ///
    /// Where the prior holds enough confirmed numbers of this length and start (see
    /// [`Prior::with_min_samples`]), candidates are ordered by their carrier's share of
    /// them first, the rules' order second (a catch-all too: a confirmed trace is better
    /// evidence than a pattern); a candidate whose check digit failed is not raised. Each reason then ends with the evidence, e.g.
    /// `learned: 1,204 confirmed 14-digit numbers starting 7: 87 % zhongtong`.
    ///
    /// ```
    /// use waybill_core::guess::{Guesser, Prior, PriorCount};
    /// let g = Guesser::embedded();
    /// // 13 digits starting 50: EMS domestic and Yunda both fit by format.
    /// let rules_only = g.guess("5012345678901").unwrap();
    /// let counts = [
    ///     PriorCount { carrier: "yunda".into(), length: 13, prefix: "5012".into(), count: 40 },
    ///     PriorCount { carrier: "ems".into(), length: 13, prefix: "5012".into(), count: 2 },
    /// ];
    /// let prior = Prior::from_counts(counts, g.catalog());
    /// let learned = g.guess_with_prior("5012345678901", &prior).unwrap();
    /// assert_eq!(learned[0].carrier, "yunda");
    /// assert!(learned[0].reason.to_string().ends_with("42 confirmed 13-digit numbers starting 5012: 95 % yunda"));
    /// # let _ = rules_only;
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Guesser::guess`].
    pub fn guess_with_prior(
        &self,
        number: &str,
        prior: &Prior,
    ) -> Result<Vec<Candidate<'_>>, GuessError> {
        let mut out = Vec::new();
        self.guess_into_with(number, Some(prior), &mut out)?;
        Ok(out)
    }

    /// Like [`Guesser::guess`], reusing `out` (cleared first) to avoid an allocation per
    /// number when guessing many.
    ///
    /// # Errors
    ///
    /// As [`Guesser::guess`].
    pub fn guess_into<'g>(
        &'g self,
        number: &str,
        out: &mut Vec<Candidate<'g>>,
    ) -> Result<(), GuessError> {
        self.guess_into_with(number, None, out)
    }

    /// [`Guesser::guess_into`] with an optional learned prior (see
    /// [`Guesser::guess_with_prior`]).
    ///
    /// # Errors
    ///
    /// As [`Guesser::guess`].
    pub fn guess_into_with<'g>(
        &'g self,
        number: &str,
        prior: Option<&Prior>,
        out: &mut Vec<Candidate<'g>>,
    ) -> Result<(), GuessError> {
        out.clear();
        let mut buf = [0u8; MAX_LEN];
        let mut len = 0;
        // Most numbers are all digits; their byte set is then known without a second pass.
        let mut digits = true;
        let raw = number.as_bytes();
        // Already canonical (digits and capitals only, as machines print them): copy it.
        let (clean, all_digits) = raw.iter().fold((true, true), |(clean, digits), &b| {
            let digit = b.wrapping_sub(b'0') < 10;
            (
                clean & (digit | (b.wrapping_sub(b'A') < 26)),
                digits & digit,
            )
        });
        if clean && !raw.is_empty() && raw.len() <= MAX_LEN {
            buf[..raw.len()].copy_from_slice(raw);
            len = raw.len();
            digits = all_digits;
        } else if number.is_ascii() {
            canonical::walk_ascii(number.as_bytes(), |b| {
                // `walk_ascii` stops before MAX_LEN characters are exceeded.
                if let Some(slot) = buf.get_mut(len) {
                    *slot = b;
                    digits &= b.is_ascii_digit();
                    len += 1;
                }
            })?;
        } else {
            let mut ascii = true;
            canonical::walk(number, |c| {
                if c.is_ascii() {
                    if let Some(slot) = buf.get_mut(len) {
                        *slot = c as u8;
                        len += 1;
                    }
                } else {
                    ascii = false;
                }
            })?;
            if !ascii {
                // Every format is ASCII; a number with other characters fits none.
                return Ok(());
            }
            digits = false;
        }
        let bytes = &buf[..len];
        let evidence = prior.and_then(|p| p.evidence(bytes));
        // The union of the bits of the canonical bytes, for the matcher's shortcut.
        let set = if digits {
            matcher::DIGITS
        } else {
            matcher::byte_set(bytes)
        };
        let first = usize::from(bytes[0]);
        let Some(&(start, end)) = self.buckets.get(len * 128 + first) else {
            return Ok(());
        };
        let second = bytes.get(1).copied();
        for &index in &self.index[start as usize..end as usize] {
            let rule = &self.rules[index as usize];
            if second.is_some_and(|b| !rule.allows_second(b)) {
                continue;
            }
            let i = index as usize;
            if let Some(candidate) = self.evaluate(
                rule,
                bytes,
                set,
                (self.in_region[i], self.by_issuer[i]),
                evidence.as_ref(),
            ) {
                // Insertion keeps the list sorted by score, equal scores in rule order;
                // lists are short, so this beats a sort call.
                let at = out.partition_point(|c| c.score >= candidate.score);
                out.insert(at, candidate);
            }
        }
        self.name_rivals(out);
        Ok(())
    }

    /// Marks, on each candidate, the best other carrier with the same kind of evidence
    /// (same tier, check digit not failed): what the number alone cannot decide.
    fn name_rivals<'g>(&'g self, out: &mut [Candidate<'g>]) {
        if out.len() < 2 {
            return;
        }
        // Tier per candidate, 0 where it cannot have or be a rival. Carrier codes come
        // from the catalogue, one string per carrier, so the address identifies it.
        let tier = |c: &Candidate<'_>| {
            if c.checksum == Checksum::Failed || c.rule_score == 0 {
                0
            } else {
                c.rule_score / TIER
            }
        };
        for i in 0..out.len() {
            let (ti, carrier) = (tier(&out[i]), out[i].carrier.as_ptr());
            if ti == 0 {
                continue;
            }
            out[i].reason.rival = out
                .iter()
                .find(|o| tier(o) == ti && o.carrier.as_ptr() != carrier)
                .map(|o| o.carrier);
        }
    }

    fn evaluate<'g>(
        &'g self,
        compiled: &'g CompiledRule,
        bytes: &[u8],
        set: u128,
        (region_prior, by_issuer): (bool, bool),
        evidence: Option<&Evidence<'_>>,
    ) -> Option<Candidate<'g>> {
        let rule = &compiled.rule;
        // Only patterns the fast matcher cannot take need the text as `str`.
        let text = || std::str::from_utf8(bytes).ok();
        let spans = match &compiled.sequences {
            Some(sequences) => Some(sequences.matches_with(bytes, set)?),
            None if compiled.captures => {
                let caps = compiled.regex.captures(text()?)?;
                Some(matcher::Spans {
                    serial: caps.name("serial").map(|m| (m.start(), m.end())),
                    check: caps.name("check").map(|m| m.start()),
                })
            }
            None if compiled.regex.is_match(text()?) => None,
            None => return None,
        };
        let checksum = match &rule.checksum {
            None => Checksum::None,
            Some(spec) => {
                let (serial, check) = match spans {
                    Some(matcher::Spans {
                        serial: Some((from, to)),
                        check: Some(at),
                    }) if compiled.captures => (&bytes[from..to], bytes.get(at).copied()),
                    _ => {
                        let [from, to] = spec.serial.unwrap_or([0, -1]);
                        match (resolve(from, bytes.len()), resolve(to, bytes.len())) {
                            (Some(from), Some(to)) if from <= to && to < bytes.len() => {
                                (&bytes[from..to], Some(bytes[to]))
                            }
                            _ => (&bytes[..0], None),
                        }
                    }
                };
                let ok = check.is_some_and(|check| verify(spec, serial, check));
                match (spec.soft, ok) {
                    (false, true) => Checksum::Verified,
                    (false, false) => Checksum::Failed,
                    (true, true) => Checksum::HintMatched,
                    (true, false) => Checksum::HintFailed,
                }
            }
        };
        let mut carrier = compiled.carrier;
        let post = match rule.country_at {
            Some(at) => {
                let code = bytes.get(at..at + 2)?;
                let country = country_index(code)?;
                if by_issuer {
                    let slot = self.issuers.get(country).copied().unwrap_or_default();
                    let ems = bytes.first() == Some(&b'E');
                    if let Some(p) = slot.ems.filter(|_| ems).or(slot.plain) {
                        carrier = p;
                    }
                }
                Some(self.posts.get(country)?.as_ref()?)
            }
            None => None,
        };
        let code: &'g str = &self.catalog.entry(carrier).code;
        let reason = Reason {
            rule,
            checksum,
            post,
            region_prior,
            rival: None,
            learned: None,
        };
        let learned = evidence.map(|e| e.for_carrier(code));
        // A failed check digit is not raised by how often the carrier was right.
        let share = match learned {
            Some(l) if checksum != Checksum::Failed => l.percent(),
            _ => 0,
        };
        let reason = Reason {
            learned: learned.map(|l| (l, code)),
            ..reason
        };
        let tier = match (checksum, rule.prefix) {
            // No rule evidence is added: a catch-all stays below every other candidate,
            // unless confirmed waybills say its carrier is the one.
            (_, PrefixKind::Fallback) => {
                return Some(Candidate {
                    carrier: code,
                    format: &rule.id,
                    checksum,
                    score: share * LEARNED_PERCENT,
                    rule_score: 0,
                    reason,
                })
            }
            // A check digit on a format that only fixes the length (FedEx Ground's 15 digits,
            // DPD's 14 + 1) leaves one number in ten (or 36) of that length: evidence of
            // the same kind as a numeric prefix, weighed against it by the size of the
            // two number spaces, not placed above it. So a 15-digit Yunda number that
            // passes FedEx's check by chance (1 in 10) stays Yunda in region CN.
            (Checksum::Verified, PrefixKind::None) => 3,
            (Checksum::Verified, _) => 5,
            (Checksum::Failed, _) => 1,
            (_, PrefixKind::Literal) => 4,
            (_, PrefixKind::Numeric) => 3,
            (_, PrefixKind::None) => 2,
        };
        // A verified check digit leaves one number in `modulus`: fewer numbers to choose from.
        let check_bits = match (&rule.checksum, checksum) {
            (Some(spec), Checksum::Verified) => spec.algorithm.quarter_bits(),
            _ => 0,
        };
        let space = compiled
            .space_at(bytes.len())
            .saturating_sub(check_bits)
            .min(SPACE_CAP);
        let rule_score = tier * TIER
            + if rule.legacy { 0 } else { CURRENT_FORMAT }
            + if checksum == Checksum::HintMatched {
                HINT_MATCHED
            } else {
                0
            }
            + (SPACE_CAP - space)
            + if region_prior { REGION_PRIOR } else { 0 };
        Some(Candidate {
            carrier: code,
            format: &rule.id,
            checksum,
            score: share * LEARNED_PERCENT + rule_score,
            rule_score,
            reason,
        })
    }
}

impl Default for Guesser {
    /// A copy of [`Guesser::embedded`], ready to be extended.
    fn default() -> Self {
        Self::embedded().clone()
    }
}

fn resolve(index: i32, len: usize) -> Option<usize> {
    if index < 0 {
        len.checked_sub(index.unsigned_abs() as usize)
    } else {
        Some(index as usize)
    }
}

fn country_index(code: &[u8]) -> Option<usize> {
    match code {
        [a @ b'A'..=b'Z', b @ b'A'..=b'Z'] => {
            Some(usize::from(a - b'A') * 26 + usize::from(b - b'A'))
        }
        _ => None,
    }
}

fn verify(spec: &CheckSpec, serial: &[u8], check: u8) -> bool {
    match &spec.prepend {
        Some(p) if !serial.starts_with(p.unless_prefix.as_bytes()) => {
            let mut buf = [0u8; 2 * MAX_LEN];
            let head = p.content.as_bytes();
            let total = head.len() + serial.len();
            if total > buf.len() {
                return false;
            }
            buf[..head.len()].copy_from_slice(head);
            buf[head.len()..total].copy_from_slice(serial);
            checksum::verify(&spec.algorithm, &buf[..total], check)
        }
        _ => checksum::verify(&spec.algorithm, serial, check),
    }
}

#[cfg(test)]
mod tests;
