//! The carrier catalogue: codes, names, aliases and the formats each carrier has.

use std::collections::HashMap;

use serde::Serialize;

use super::rules::CarrierInfo;
use super::GuessError;

/// A carrier as listed by `waybill carriers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CarrierEntry {
    /// Canonical code (kuaidi100 company code where one exists).
    pub code: String,
    /// Other names that resolve to [`code`](Self::code).
    pub aliases: Vec<String>,
    /// Chinese name.
    pub name_zh: String,
    /// English name.
    pub name_en: String,
    /// Ids of the formats of this carrier, in rule order.
    pub formats: Vec<String>,
}

/// All known carriers, with alias resolution.
///
/// ```
/// use waybill_core::guess::catalog;
/// assert_eq!(catalog().resolve("SF"), Some("shunfeng"));
/// assert_eq!(catalog().resolve("中通"), Some("zhongtong"));
/// assert_eq!(catalog().resolve("nobody"), None);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    carriers: Vec<CarrierEntry>,
    index: HashMap<String, usize>,
}

/// Case-insensitive, and `-`, `_` and spaces are the same separator.
fn key(name: &str) -> String {
    name.trim()
        .chars()
        .map(|c| match c {
            '-' | ' ' => '_',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

impl Catalog {
    /// The canonical code for a code, alias, or Chinese/English name.
    pub fn resolve(&self, name: &str) -> Option<&str> {
        self.index
            .get(&key(name))
            .map(|&i| self.carriers[i].code.as_str())
    }

    /// The entry for a code or any name that resolves to one.
    pub fn get(&self, name: &str) -> Option<&CarrierEntry> {
        self.index.get(&key(name)).map(|&i| &self.carriers[i])
    }

    /// All carriers, in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = &CarrierEntry> {
        self.carriers.iter()
    }

    /// Number of carriers.
    pub fn len(&self) -> usize {
        self.carriers.len()
    }

    /// Whether there are no carriers.
    pub fn is_empty(&self) -> bool {
        self.carriers.is_empty()
    }

    /// Adds a carrier; every name must be free.
    pub(crate) fn add(&mut self, info: &CarrierInfo) -> Result<(), GuessError> {
        if info.code.trim().is_empty() {
            return Err(GuessError::BadCarrier {
                code: info.code.clone(),
                problem: "the code is empty".into(),
            });
        }
        if self.index.contains_key(&key(&info.code)) {
            return Err(GuessError::DuplicateCarrier {
                code: info.code.clone(),
            });
        }
        let position = self.carriers.len();
        let names = std::iter::once(&info.code)
            .chain(&info.aliases)
            .chain([&info.name_zh, &info.name_en]);
        let mut keys = Vec::new();
        for name in names {
            let k = key(name);
            if k.is_empty() {
                continue;
            }
            if let Some(&other) = self.index.get(&k) {
                // A name shared with another carrier would make resolution ambiguous.
                return Err(GuessError::AliasTaken {
                    alias: name.clone(),
                    code: info.code.clone(),
                    other: self.carriers[other].code.clone(),
                });
            }
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        for k in keys {
            self.index.insert(k, position);
        }
        self.carriers.push(CarrierEntry {
            code: info.code.clone(),
            aliases: info.aliases.clone(),
            name_zh: info.name_zh.clone(),
            name_en: info.name_en.clone(),
            formats: Vec::new(),
        });
        Ok(())
    }

    pub(crate) fn position(&self, name: &str) -> Option<usize> {
        self.index.get(&key(name)).copied()
    }

    pub(crate) fn entry(&self, position: usize) -> &CarrierEntry {
        &self.carriers[position]
    }

    pub(crate) fn add_format(&mut self, position: usize, id: &str) {
        if let Some(entry) = self.carriers.get_mut(position) {
            entry.formats.push(id.to_owned());
        }
    }
}

/// The catalogue of the embedded rules.
pub fn catalog() -> &'static Catalog {
    super::Guesser::embedded().catalog()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(code: &str, aliases: &[&str]) -> CarrierInfo {
        CarrierInfo {
            code: code.into(),
            name_zh: format!("{code}快递"),
            name_en: format!("{code} Express"),
            aliases: aliases.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    #[test]
    fn aliases_resolve_case_insensitively() {
        let mut c = Catalog::default();
        c.add(&info("shunfeng", &["SF", "sf-express"])).unwrap();
        assert_eq!(c.resolve("sf"), Some("shunfeng"));
        assert_eq!(c.resolve("SF_EXPRESS"), Some("shunfeng"));
        assert_eq!(c.resolve("shunfeng Express"), Some("shunfeng"));
    }

    #[test]
    fn an_alias_used_by_another_carrier_is_refused() {
        let mut c = Catalog::default();
        c.add(&info("a", &["X"])).unwrap();
        let err = c.add(&info("b", &["x"])).unwrap_err();
        assert!(matches!(err, GuessError::AliasTaken { .. }));
    }

    #[test]
    fn every_tracking_number_data_courier_code_resolves() {
        for code in [
            "amazon",
            "canada_post",
            "canpar",
            "dhl",
            "dpd",
            "fedex",
            "gofo",
            "landmark",
            "lasership",
            "old_dominion",
            "ontrac",
            "purolator",
            "s10",
            "speedee",
            "ups",
            "usps",
            "yodel",
            "yunexpress",
        ] {
            assert!(catalog().resolve(code).is_some(), "{code}");
        }
    }

    #[test]
    fn chinese_carriers_use_kuaidi100_codes() {
        for (alias, code) in [
            ("SF", "shunfeng"),
            ("ZTO", "zhongtong"),
            ("YTO", "yuantong"),
            ("STO", "shentong"),
            ("韵达", "yunda"),
            ("京东", "jd"),
            ("J&T", "jtexpress"),
            ("EMS", "ems"),
            ("中国邮政", "youzhengguonei"),
            ("deppon", "debangkuaidi"),
            ("百世", "huitongkuaidi"),
            ("4PX", "disifang"),
        ] {
            assert_eq!(catalog().resolve(alias), Some(code), "{alias}");
        }
    }

    #[test]
    fn every_carrier_has_names_in_both_languages_and_a_format() {
        for entry in catalog().iter() {
            assert!(!entry.name_zh.is_empty() && !entry.name_en.is_empty());
            assert!(!entry.formats.is_empty(), "{} has no format", entry.code);
        }
    }
}
