//! Plugin number rules as rules of core's carrier guesser.
//!
//! A plugin describes its number shapes with [`NumberRule`]s (tracking_number_data style);
//! the host turns them into core [`FormatRule`]s and adds them to a [`Guesser`], so the
//! guesser also knows the carriers that exist only as plugins.
//!
//! ```
//! use waybill_core::guess::Guesser;
//! use waybill_sdk::{Manifest, NumberRule};
//!
//! let hexi = Manifest {
//!     codes: vec!["hexi".into()],
//!     name_zh: "河西快运".into(),
//!     name_en: "Hexi Express".into(),
//!     number_rules: vec![NumberRule::new("hexi_hx12", r"^HX\d{12}$")],
//!     ..Default::default()
//! };
//! let mut g = Guesser::default();
//! assert_eq!(hexi.add_rules_to(&mut g).unwrap(), 1);
//! assert_eq!(g.guess("hx 0000 0000 0001").unwrap()[0].carrier, "hexi");
//! ```

use serde_json::{Map, Value};
use waybill_core::guess::{CarrierInfo, CheckSpec, FormatRule, GuessError, Guesser, PrefixKind};

use crate::types::{Manifest, NumberRule, RuleRank};

impl From<RuleRank> for PrefixKind {
    fn from(rank: RuleRank) -> Self {
        match rank {
            RuleRank::Literal => PrefixKind::Literal,
            RuleRank::Numeric => PrefixKind::Numeric,
            RuleRank::LengthOnly => PrefixKind::None,
            RuleRank::Fallback => PrefixKind::Fallback,
        }
    }
}

impl NumberRule {
    /// The rule as a core format of `carrier` (a code or alias the guesser knows), named
    /// after `carrier_name` in the guesser's reasons.
    ///
    /// # Errors
    ///
    /// [`GuessError::BadRule`] when the checksum is not one the guesser knows or its
    /// constants are missing. (The regex is compiled when the format is added.)
    pub fn to_format_rule(
        &self,
        carrier: &str,
        carrier_name: &str,
    ) -> Result<FormatRule, GuessError> {
        let checksum = match &self.checksum {
            None | Some(Value::Null) => None,
            Some(value) => Some(checksum_spec(value).map_err(|problem| GuessError::BadRule {
                id: self.format.clone(),
                problem,
            })?),
        };
        let name = if carrier_name.is_empty() {
            carrier
        } else {
            carrier_name
        };
        Ok(FormatRule {
            id: self.format.clone(),
            carrier: carrier.to_owned(),
            name: format!("{name} ({}, plugin rule)", self.format),
            pattern: self.regex.clone(),
            prefix: self.effective_rank().into(),
            region: if self.region.trim().is_empty() {
                "CN".to_owned()
            } else {
                self.region.trim().to_ascii_uppercase()
            },
            lengths: Vec::new(),
            checksum,
            country_at: None,
            legacy: self.legacy,
        })
    }
}

/// Reads a checksum given the tracking_number_data way (`{"name": "mod10",
/// "evens_multiplier": 3, "odds_multiplier": 1}`) or core's way (`{"kind": "mod10",
/// "evens": 3, "odds": 1}`). Core's optional `serial`, `prepend` and `soft` pass through.
///
/// ```
/// use waybill_sdk::guess::checksum_spec;
/// let spec = checksum_spec(&serde_json::json!({
///     "name": "sum_product_with_weightings_and_modulo",
///     "weightings": [3, 1, 7], "modulo1": 10, "modulo2": 10
/// })).unwrap();
/// assert!(matches!(spec.algorithm, waybill_core::guess::Algorithm::SumProduct { .. }));
/// assert!(checksum_spec(&serde_json::json!({"name": "crc32"})).is_err());
/// ```
///
/// # Errors
///
/// A one-line message when the algorithm is unknown or a constant is missing.
pub fn checksum_spec(value: &Value) -> Result<CheckSpec, String> {
    let Value::Object(fields) = value else {
        return Err(format!("checksum must be a JSON object, not {value}"));
    };
    if fields.contains_key("kind") {
        return serde_json::from_value(value.clone()).map_err(|e| format!("checksum: {e}"));
    }
    let name = fields
        .get("name")
        .and_then(Value::as_str)
        .ok_or("checksum has neither `name` nor `kind`")?;
    let mut core = Map::new();
    let copy = |from: &str, to: &str, core: &mut Map<String, Value>| -> Result<(), String> {
        let v = fields
            .get(from)
            .ok_or_else(|| format!("checksum `{name}` needs `{from}`"))?;
        core.insert(to.to_owned(), v.clone());
        Ok(())
    };
    let kind = match name {
        "mod10" => {
            copy("evens_multiplier", "evens", &mut core)?;
            copy("odds_multiplier", "odds", &mut core)?;
            "mod10"
        }
        "mod7" => "mod7",
        "luhn" => "luhn",
        "s10" => "s10",
        "mod_37_36" | "mod37_36" => "mod37_36",
        "sum_product_with_weightings_and_modulo" | "sum_product" => {
            copy("weightings", "weights", &mut core)?;
            copy("modulo1", "modulo1", &mut core)?;
            copy("modulo2", "modulo2", &mut core)?;
            "sum_product"
        }
        other => return Err(format!("unknown checksum `{other}`")),
    };
    core.insert("kind".to_owned(), Value::from(kind));
    for key in ["serial", "prepend", "soft"] {
        if let Some(v) = fields.get(key) {
            core.insert(key.to_owned(), v.clone());
        }
    }
    serde_json::from_value(Value::Object(core)).map_err(|e| format!("checksum `{name}`: {e}"))
}

impl Manifest {
    /// Adds this plugin's number rules to `guesser`, all or nothing, and returns how many
    /// formats were added.
    ///
    /// The formats belong to the first of the manifest's codes the guesser already knows
    /// (so a plugin for `shunfeng` adds SF formats); when it knows none, the canonical code
    /// becomes a new carrier, with the other codes as aliases.
    ///
    /// # Errors
    ///
    /// Any [`GuessError`] about rules: a pattern that does not compile, an unknown
    /// checksum, a format id already taken.
    pub fn add_rules_to(&self, guesser: &mut Guesser) -> Result<usize, GuessError> {
        if self.number_rules.is_empty() {
            return Ok(0);
        }
        let Some(canonical) = self.canonical_code() else {
            return Err(GuessError::BadCarrier {
                code: String::new(),
                problem: "the manifest has no carrier code".into(),
            });
        };
        let known = self
            .codes
            .iter()
            .find_map(|c| guesser.catalog().resolve(c).map(str::to_owned));
        let mut carriers = Vec::new();
        let carrier = match known {
            Some(code) => code,
            None => {
                carriers.push(CarrierInfo {
                    code: canonical.to_owned(),
                    name_zh: self.name_zh.clone(),
                    name_en: self.name_en.clone(),
                    aliases: self.codes[1..].to_vec(),
                });
                canonical.to_owned()
            }
        };
        let formats = self
            .number_rules
            .iter()
            .map(|r| r.to_format_rule(&carrier, &self.name_en))
            .collect::<Result<Vec<_>, _>>()?;
        let added = formats.len();
        guesser.extend(waybill_core::guess::RuleSet {
            about: Some(format!("plugin {canonical}")),
            carriers,
            formats,
        })?;
        Ok(added)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use waybill_core::guess::Checksum;

    fn manifest(codes: &[&str], rules: Vec<NumberRule>) -> Manifest {
        Manifest {
            codes: codes.iter().map(|c| (*c).to_owned()).collect(),
            name_en: "Test".into(),
            number_rules: rules,
            ..Default::default()
        }
    }

    #[test]
    fn rank_is_inferred_from_the_start_of_the_regex() {
        let rank = |re: &str| NumberRule::new("x", re).effective_rank();
        assert_eq!(rank(r"^SF\d{12}$"), RuleRank::Literal);
        assert_eq!(rank(r"^00340\d{15}$"), RuleRank::Numeric);
        assert_eq!(rank(r"^\d{10}$"), RuleRank::LengthOnly);
        assert_eq!(rank(r"^[A-Z]{2}\d{9}$"), RuleRank::LengthOnly);
    }

    #[test]
    fn a_plugin_for_a_known_carrier_adds_formats_to_it() {
        let mut g = Guesser::default();
        let m = manifest(
            &["shunfeng"],
            vec![NumberRule::new("shunfeng_sfz", r"^SFZ\d{9}$")],
        );
        assert_eq!(m.add_rules_to(&mut g).unwrap(), 1);
        let found = g.guess("SFZ123456789").unwrap();
        assert_eq!(
            (found[0].carrier, found[0].format),
            ("shunfeng", "shunfeng_sfz")
        );
    }

    #[test]
    fn an_unknown_carrier_is_added_with_its_other_codes_as_aliases() {
        let mut g = Guesser::default();
        let m = manifest(
            &["hexi", "hexi-express"],
            vec![NumberRule::new("hexi_hx12", r"^HX\d{12}$")],
        );
        m.add_rules_to(&mut g).unwrap();
        assert_eq!(g.catalog().resolve("hexi-express"), Some("hexi"));
    }

    #[test]
    fn a_tracking_number_data_checksum_is_verified() {
        let mut g = Guesser::default();
        let rule = NumberRule {
            checksum: Some(json!({"name": "mod7", "serial": [2, -1]})),
            ..NumberRule::new("acme_mod7", r"^AC\d{8}$")
        };
        manifest(&["acme"], vec![rule])
            .add_rules_to(&mut g)
            .unwrap();
        // 1234567 = 7 × 176366 + 5.
        assert_eq!(
            g.guess("AC12345675").unwrap()[0].checksum,
            Checksum::Verified
        );
        assert_eq!(g.guess("AC12345672").unwrap()[0].checksum, Checksum::Failed);
    }

    #[test]
    fn a_fallback_rule_ranks_last() {
        let mut g = Guesser::default();
        let rule = NumberRule {
            rank: Some(RuleRank::Fallback),
            ..NumberRule::new("any_any", r"^[0-9A-Z]{6,32}$")
        };
        manifest(&["any"], vec![rule]).add_rules_to(&mut g).unwrap();
        let found = g.guess("SF1234567890123").unwrap();
        assert_eq!(found[0].carrier, "shunfeng");
        assert_eq!(found.last().unwrap().carrier, "any");
    }

    #[test]
    fn bad_rules_leave_the_guesser_unchanged() {
        let mut g = Guesser::default();
        let before = g.formats().count();
        let m = manifest(
            &["acme"],
            vec![
                NumberRule::new("acme_ok", r"^AC\d{8}$"),
                NumberRule {
                    checksum: Some(json!({"name": "crc32"})),
                    ..NumberRule::new("acme_bad", r"^AD\d{8}$")
                },
            ],
        );
        let e = m.add_rules_to(&mut g).unwrap_err();
        assert!(e.to_string().contains("crc32"), "{e}");
        assert_eq!(g.formats().count(), before);
        assert!(m.validate().unwrap_err().contains("crc32"));
    }

    #[test]
    fn both_checksum_schemas_read_the_same() {
        let tnd =
            checksum_spec(&json!({"name": "mod10", "evens_multiplier": 3, "odds_multiplier": 1}))
                .unwrap();
        let core = checksum_spec(&json!({"kind": "mod10", "evens": 3, "odds": 1})).unwrap();
        assert_eq!(tnd, core);
        assert!(checksum_spec(&json!({"name": "mod10"}))
            .unwrap_err()
            .contains("evens_multiplier"));
    }
}
