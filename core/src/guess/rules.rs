//! The rule schema: carriers and number formats as data.
//!
//! The embedded file `core/rules/carriers.json` uses exactly this schema, and so do rule
//! sets that plugins add at runtime with [`Guesser::extend`](super::Guesser::extend).

use serde::{Deserialize, Serialize};

use super::GuessError;

/// The embedded rule file.
pub(crate) const EMBEDDED_RULES: &str = include_str!("../../rules/carriers.json");

/// The embedded UPU S10 country list (from tracking_number_data, MIT).
pub(crate) const EMBEDDED_COUNTRIES: &str = include_str!("../../rules/s10_countries.json");

/// The embedded table of S10 issuers: country code -> the kuaidi100 code of its post.
pub(crate) const EMBEDDED_ISSUERS: &str = include_str!("../../rules/s10_issuers.json");

/// A set of carriers and formats, as stored in a rule file.
///
/// ```
/// use waybill_core::guess::RuleSet;
/// let set = RuleSet::from_json(r#"{
///   "carriers": [{"code": "acme", "name_zh": "阿克米快递", "name_en": "Acme", "aliases": ["ACM"]}],
///   "formats": [{"id": "acme", "carrier": "acme", "name": "Acme (AC + 10 digits)",
///                "pattern": "^AC\\d{10}$", "prefix": "literal", "region": "CN"}]
/// }"#).unwrap();
/// assert_eq!(set.formats[0].id, "acme");
/// ```
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSet {
    /// Free text describing where the rules come from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub about: Option<String>,
    /// Carriers the formats refer to (may be empty when the formats use known carriers).
    #[serde(default)]
    pub carriers: Vec<CarrierInfo>,
    /// Number formats.
    #[serde(default)]
    pub formats: Vec<FormatRule>,
}

impl RuleSet {
    /// Parses a rule set from JSON text.
    ///
    /// # Errors
    ///
    /// [`GuessError::RuleFile`] when the text is not valid JSON of this schema.
    pub fn from_json(text: &str) -> Result<Self, GuessError> {
        serde_json::from_str(text).map_err(|source| GuessError::RuleFile { source })
    }

    /// The rule set compiled into the library.
    ///
    /// # Errors
    ///
    /// Only if the embedded file were broken, which the tests rule out.
    pub fn embedded() -> Result<Self, GuessError> {
        Self::from_json(EMBEDDED_RULES)
    }
}

/// A carrier: its code and how people call it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CarrierInfo {
    /// kuaidi100 company code where one exists, else the tracking_number_data courier code.
    pub code: String,
    /// Chinese name.
    pub name_zh: String,
    /// English name.
    pub name_en: String,
    /// Other names that resolve to this carrier (matched case-insensitively).
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// What kind of evidence the start of a format gives, used to rank candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrefixKind {
    /// Starts with letters only this format (or very few) uses, e.g. `SF`, `1Z`.
    Literal,
    /// Starts with specific digits, e.g. ZTO's `73`–`78`.
    Numeric,
    /// Only the length and the character classes say anything.
    None,
    /// A catch-all (a test carrier, an aggregator's "anything"): ranked below every other
    /// candidate, even one whose check digit failed.
    Fallback,
}

/// One number format of one carrier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormatRule {
    /// Stable format id (tracking_number_data's id for its formats; S10 ids start with `s10`).
    pub id: String,
    /// Carrier code (or an alias of it) this format belongs to.
    pub carrier: String,
    /// Human-readable name, used in reasons.
    pub name: String,
    /// Regex over the canonical number ([`super::canonical`]); it should be anchored with `^…$`. When the
    /// checksum's serial is not fixed by position, name the groups `serial` and `check`.
    pub pattern: String,
    /// Kind of prefix evidence.
    pub prefix: PrefixKind,
    /// Region the format is used in (`CN`, `US`, `EU`, `INT`, …), compared with the
    /// guesser's region prior.
    pub region: String,
    /// Allowed canonical lengths, narrowing what the pattern allows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lengths: Vec<LengthSpec>,
    /// Check digit, if the format has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<CheckSpec>,
    /// Index of a two-letter UPU country code that must be in the S10 country list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_at: Option<usize>,
    /// An older or less certain format: ranked below the others of its kind.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub legacy: bool,
}

/// One allowed length or an inclusive range of lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LengthSpec {
    /// Exactly this many characters.
    Exact(usize),
    /// From `[0]` to `[1]` characters, inclusive.
    Range([usize; 2]),
}

impl LengthSpec {
    pub(crate) fn contains(self, len: usize) -> bool {
        match self {
            LengthSpec::Exact(n) => n == len,
            LengthSpec::Range([lo, hi]) => (lo..=hi).contains(&len),
        }
    }
}

/// How a format's check digit is computed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckSpec {
    /// The algorithm and its constants.
    #[serde(flatten)]
    pub algorithm: Algorithm,
    /// Serial as `[from, to)` character indexes, negative counting from the end; the check
    /// character is the one at `to`. Ignored when the pattern has `serial`/`check` groups.
    /// Default `[0, -1]`: everything before the last character.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<[i32; 2]>,
    /// Text put before the serial when it does not already start with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prepend: Option<Prepend>,
    /// A hint only: a match raises the rank a little, a mismatch does not reject.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub soft: bool,
}

/// Prefix applied to the serial before the check (OnTrac's 4/5, USPS legacy's 91).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prepend {
    /// Leave the serial alone when it already starts with this.
    pub unless_prefix: String,
    /// What to put in front.
    pub content: String,
}

/// Check-digit algorithms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Algorithm {
    /// Weighted mod 10; letters count as (ASCII − 3) mod 10.
    Mod10 {
        /// Weight of characters at even indexes.
        evens: u32,
        /// Weight of characters at odd indexes.
        odds: u32,
        /// Count indexes from the right.
        #[serde(default)]
        reverse: bool,
    },
    /// Luhn (modulo 10, doubling from the right).
    Luhn,
    /// The serial as an integer, modulo 7.
    Mod7,
    /// UPU S10 (weights 8,6,4,2,3,5,9,7 modulo 11).
    S10,
    /// Σ digit × weight, modulo `modulo1`, then modulo `modulo2`.
    SumProduct {
        /// Weights, from the left, repeated if the serial is longer.
        weights: Vec<u32>,
        /// First modulus.
        modulo1: u32,
        /// Second modulus (at most 10).
        modulo2: u32,
    },
    /// ISO 7064 MOD 37,36 hybrid.
    #[serde(rename = "mod37_36")]
    Mod37_36,
}

impl Algorithm {
    /// How much a verified check character narrows the numbers a format allows: log2 of
    /// the number of values it can take, in quarter bits.
    pub(crate) fn quarter_bits(&self) -> u32 {
        let values: f64 = match self {
            Algorithm::Mod10 { .. } | Algorithm::Luhn => 10.0,
            Algorithm::Mod7 => 7.0,
            Algorithm::S10 => 11.0,
            Algorithm::SumProduct { modulo2, .. } => f64::from((*modulo2).max(1)),
            Algorithm::Mod37_36 => 36.0,
        };
        (values.log2() * 4.0).round() as u32
    }

    /// A short name for reasons.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Algorithm::Mod10 { .. } => "weighted mod 10",
            Algorithm::Luhn => "Luhn",
            Algorithm::Mod7 => "mod 7",
            Algorithm::S10 => "UPU S10",
            Algorithm::SumProduct { .. } => "weighted sum mod 11 mod 10",
            Algorithm::Mod37_36 => "ISO 7064 MOD 37,36",
        }
    }
}

/// One entry of the UPU S10 country list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Post {
    /// ISO 3166 alpha-2 code as used in S10 numbers.
    pub code: String,
    /// Country name.
    pub country: String,
    /// The postal operator.
    pub post: String,
}

#[derive(Deserialize)]
pub(crate) struct CountryFile {
    pub countries: Vec<Post>,
}

/// `s10_issuers.json`: which post issued an S10 item, as a kuaidi100 company code.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IssuerFile {
    #[allow(dead_code)] // Provenance, kept in the file for readers.
    pub source: String,
    #[allow(dead_code)]
    pub about: String,
    /// Ids of the formats whose carrier is the issuing post rather than their own.
    pub formats: Vec<String>,
    pub issuers: Vec<Issuer>,
}

/// One row of the issuer table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Issuer {
    /// ISO 3166 alpha-2 code, as in the S10 suffix.
    pub country: String,
    /// First letter of the service indicator this row is limited to (`E`: EMS items).
    #[serde(default)]
    pub service: Option<char>,
    /// kuaidi100 company code (or a code or alias already in the catalogue).
    pub carrier: String,
    /// Names for the catalogue, when the carrier is not already in it.
    #[serde(default)]
    pub name_zh: Option<String>,
    #[serde(default)]
    pub name_en: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_rule_file_parses() {
        let set = RuleSet::embedded().unwrap();
        assert!(set.formats.len() >= 39 + 14);
    }

    #[test]
    fn embedded_country_list_has_the_191_posts_of_tracking_number_data() {
        let file: CountryFile = serde_json::from_str(EMBEDDED_COUNTRIES).unwrap();
        assert_eq!(file.countries.len(), 191);
        assert!(file.countries.iter().any(|p| p.code == "CN"));
    }

    #[test]
    fn every_issuer_is_a_listed_s10_country_and_names_a_new_carrier_fully() {
        let posts: CountryFile = serde_json::from_str(EMBEDDED_COUNTRIES).unwrap();
        let file: IssuerFile = serde_json::from_str(EMBEDDED_ISSUERS).unwrap();
        assert!(file.issuers.len() >= 100);
        for issuer in &file.issuers {
            assert!(
                posts.countries.iter().any(|p| p.code == issuer.country),
                "{}",
                issuer.country
            );
            assert_eq!(issuer.name_zh.is_some(), issuer.name_en.is_some());
            assert!(matches!(issuer.service, None | Some('E')));
        }
        // China's items are mapped by their own formats (ems / youzhengguoji).
        assert!(file.issuers.iter().all(|i| i.country != "CN"));
    }

    #[test]
    fn rule_round_trips_through_json() {
        let set = RuleSet::embedded().unwrap();
        let text = serde_json::to_string(&set).unwrap();
        let again = RuleSet::from_json(&text).unwrap();
        assert_eq!(set.formats, again.formats);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = RuleSet::from_json(r#"{"formats": [], "colour": 1}"#).unwrap_err();
        assert!(matches!(err, GuessError::RuleFile { .. }));
    }
}
