//! A prior learned from confirmed waybills: of the numbers with this length and this start
//! whose carrier was confirmed (a trace came back), how many belonged to each carrier.
//!
//! kuaidi100 relearns its number rules from the waybills it has seen (its legacy
//! autonumber answer carries `noPre`, a prefix, and `noCount`, how many numbers it saw with
//! it). A store of confirmed subscriptions holds the same facts for one deployment; the host
//! counts them with one aggregate query and hands the counts to [`Prior::from_counts`].
//!
//! The data structure is a map from (length, prefix of 0 to [`PREFIX_LEN`] characters) to
//! the carriers seen there with their counts. A number is looked up by its longest prefix
//! whose bucket holds at least `min_samples` confirmed numbers, so a rare 4-character start
//! falls back to its 3-, 2-, 1- or 0-character bucket.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use serde::{Deserialize, Serialize};

use super::catalog::Catalog;

/// The longest prefix the prior keeps statistics for.
pub const PREFIX_LEN: usize = 4;

/// Default for [`Prior::with_min_samples`]: fewer confirmed numbers than this in a bucket
/// say too little to re-rank anything.
pub const DEFAULT_MIN_SAMPLES: u64 = 20;

/// How many confirmed waybills of one carrier have one length and start with one prefix, as
/// a store counts them (the prefix is the first [`PREFIX_LEN`] characters, or the whole
/// number when shorter).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriorCount {
    /// Carrier code (or any name the catalogue resolves).
    pub carrier: String,
    /// Length of the canonical number.
    pub length: usize,
    /// Its first characters.
    pub prefix: String,
    /// How many distinct confirmed numbers.
    pub count: u64,
}

/// Bucket key: length, prefix length and prefix bytes (zero-padded), packed in a `u64`.
fn key(length: u8, prefix: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    bytes[0] = length;
    bytes[1] = prefix.len() as u8;
    bytes[2..2 + prefix.len()].copy_from_slice(prefix);
    u64::from_le_bytes(bytes)
}

/// The keys are small packed integers, looked up up to five times per guess: one
/// multiply mixes them well enough, where SipHash would cost more than the rest of the
/// lookup.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(29);
    }
}

#[derive(Debug, Clone, Default)]
struct Bucket {
    total: u64,
    /// Carrier code and count, most frequent first.
    carriers: Vec<(String, u64)>,
}

/// Confirmed-waybill statistics by length and prefix.
///
/// ```
/// use waybill_core::guess::{Guesser, Prior, PriorCount};
/// let g = Guesser::embedded();
/// let counts = [
///     PriorCount { carrier: "yuantong".into(), length: 14, prefix: "7300".into(), count: 90 },
///     PriorCount { carrier: "zhongtong".into(), length: 14, prefix: "7300".into(), count: 10 },
/// ];
/// let prior = Prior::from_counts(counts, g.catalog());
/// assert_eq!(prior.confirmed(), 100);
/// let found = g.guess_with_prior("73001234567890", &prior).unwrap();
/// // Only zhongtong's format fits the number; the prior says how often it was right.
/// assert_eq!(found[0].carrier, "zhongtong");
/// assert!(found[0].reason.to_string().contains("100 confirmed 14-digit numbers starting 7300: 10 % zhongtong"));
/// ```
#[derive(Debug, Clone)]
pub struct Prior {
    buckets: HashMap<u64, Bucket, BuildHasherDefault<KeyHasher>>,
    min_samples: u64,
    confirmed: u64,
}

impl Default for Prior {
    fn default() -> Self {
        Prior {
            buckets: HashMap::default(),
            min_samples: DEFAULT_MIN_SAMPLES,
            confirmed: 0,
        }
    }
}

/// What the prior says about one number: the bucket it was looked up in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Evidence<'p> {
    bucket: &'p Bucket,
    length: u8,
    prefix: [u8; PREFIX_LEN],
    prefix_len: u8,
}

/// The learned evidence for one candidate, as carried by its reason.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Learned {
    pub total: u64,
    pub count: u64,
    pub length: u8,
    pub prefix: [u8; PREFIX_LEN],
    pub prefix_len: u8,
}

impl Learned {
    /// Share of the bucket, in whole percent.
    pub fn percent(&self) -> u32 {
        if self.total == 0 {
            return 0;
        }
        ((self.count * 100 + self.total / 2) / self.total) as u32
    }

    pub fn prefix(&self) -> &str {
        // Only ASCII alphanumerics are stored.
        std::str::from_utf8(&self.prefix[..usize::from(self.prefix_len)]).unwrap_or("")
    }
}

impl<'p> Evidence<'p> {
    pub fn for_carrier(&self, code: &str) -> Learned {
        let count = self
            .bucket
            .carriers
            .iter()
            .find(|(c, _)| c == code)
            .map_or(0, |&(_, n)| n);
        Learned {
            total: self.bucket.total,
            count,
            length: self.length,
            prefix: self.prefix,
            prefix_len: self.prefix_len,
        }
    }
}

impl Prior {
    /// Builds the prior from per-carrier counts. Carrier names are resolved through
    /// `catalog` (an alias counts for its carrier; an unknown code is kept as it is), and
    /// prefixes are upper-cased with anything but ASCII letters and digits dropped, as the
    /// guesser's canonical form does. Counts for lengths over 255 are ignored.
    pub fn from_counts(counts: impl IntoIterator<Item = PriorCount>, catalog: &Catalog) -> Self {
        let mut prior = Prior::default();
        for row in counts {
            let Ok(length) = u8::try_from(row.length) else {
                continue;
            };
            if row.count == 0 {
                continue;
            }
            let code = catalog
                .resolve(&row.carrier)
                .map_or_else(|| row.carrier.trim().to_owned(), str::to_owned);
            let mut prefix = [0u8; PREFIX_LEN];
            let mut prefix_len = 0usize;
            for b in row.prefix.bytes().filter(u8::is_ascii_alphanumeric) {
                if prefix_len == PREFIX_LEN || prefix_len == usize::from(length) {
                    break;
                }
                prefix[prefix_len] = b.to_ascii_uppercase();
                prefix_len += 1;
            }
            prior.confirmed += row.count;
            // Every shorter prefix of this row's prefix gets the count too.
            for n in 0..=prefix_len {
                let bucket = prior.buckets.entry(key(length, &prefix[..n])).or_default();
                bucket.total += row.count;
                match bucket.carriers.iter_mut().find(|(c, _)| *c == code) {
                    Some((_, c)) => *c += row.count,
                    None => bucket.carriers.push((code.clone(), row.count)),
                }
            }
        }
        for bucket in prior.buckets.values_mut() {
            bucket
                .carriers
                .sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        }
        prior
    }

    /// The same prior, re-ranking only where a bucket holds at least `n` confirmed numbers.
    ///
    /// ```
    /// use waybill_core::guess::Prior;
    /// assert_eq!(Prior::default().with_min_samples(5).min_samples(), 5);
    /// ```
    #[must_use]
    pub fn with_min_samples(mut self, n: u64) -> Self {
        self.min_samples = n.max(1);
        self
    }

    /// The fewest confirmed numbers a bucket needs to count.
    pub fn min_samples(&self) -> u64 {
        self.min_samples
    }

    /// How many confirmed numbers the prior was built from.
    pub fn confirmed(&self) -> u64 {
        self.confirmed
    }

    /// Whether the prior holds no confirmed number.
    pub fn is_empty(&self) -> bool {
        self.confirmed == 0
    }

    /// The carriers of confirmed numbers like `number` (canonical form), most frequent
    /// first, with the length and prefix of the bucket used: `None` when no bucket for its
    /// length has `min_samples` numbers.
    ///
    /// ```
    /// use waybill_core::guess::{catalog, Prior, PriorCount};
    /// let row = |c: &str, n| PriorCount { carrier: c.into(), length: 12, prefix: "9".into(), count: n };
    /// let prior = Prior::from_counts([row("SF", 30), row("zhongtong", 10)], catalog());
    /// let bucket = prior.lookup("987654321098").unwrap();
    /// assert_eq!((bucket.length, bucket.prefix), (12, "9"));
    /// assert_eq!(bucket.carriers[0], ("shunfeng", 30));
    /// // No bucket for "8": the whole 12-digit bucket answers.
    /// assert_eq!(prior.lookup("887654321098").unwrap().prefix, "");
    /// ```
    pub fn lookup<'a>(&'a self, number: &'a str) -> Option<PriorBucket<'a>> {
        let evidence = self.evidence(number.as_bytes())?;
        Some(PriorBucket {
            length: usize::from(evidence.length),
            // The evidence was found on these bytes, so they are ASCII up to the prefix.
            prefix: number.get(..usize::from(evidence.prefix_len)).unwrap_or(""),
            carriers: evidence
                .bucket
                .carriers
                .iter()
                .map(|(c, n)| (c.as_str(), *n))
                .collect(),
        })
    }

    pub(crate) fn evidence(&self, number: &[u8]) -> Option<Evidence<'_>> {
        let length = u8::try_from(number.len()).ok()?;
        for n in (0..=PREFIX_LEN.min(number.len())).rev() {
            if let Some(bucket) = self.buckets.get(&key(length, &number[..n])) {
                let mut prefix = [0u8; PREFIX_LEN];
                prefix[..n].copy_from_slice(&number[..n]);
                if bucket.total >= self.min_samples {
                    return Some(Evidence {
                        bucket,
                        length,
                        prefix,
                        prefix_len: n as u8,
                    });
                }
            }
        }
        None
    }
}

/// What a [`Prior`] knows about numbers like one number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriorBucket<'a> {
    /// Length of the numbers counted.
    pub length: usize,
    /// The start they share (empty: all numbers of that length).
    pub prefix: &'a str,
    /// Carrier codes and how many confirmed numbers each had, most first.
    pub carriers: Vec<(&'a str, u64)>,
}

/// `1204` → `1,204`, as the reasons print counts.
pub(crate) fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guess::catalog;

    fn row(carrier: &str, length: usize, prefix: &str, count: u64) -> PriorCount {
        PriorCount {
            carrier: carrier.into(),
            length,
            prefix: prefix.into(),
            count,
        }
    }

    #[test]
    fn counts_roll_up_to_every_shorter_prefix() {
        let prior = Prior::from_counts(
            [
                row("zhongtong", 14, "7311", 15),
                row("shentong", 14, "7722", 10),
            ],
            catalog(),
        );
        let bucket = prior.lookup("73119999999999").unwrap();
        // 7311 (and 731, 73) alone has 15 < 20 numbers; "7" has 25.
        assert_eq!((bucket.length, bucket.prefix), (14, "7"));
        assert_eq!(bucket.carriers, vec![("zhongtong", 15), ("shentong", 10)]);
        let low = prior.with_min_samples(10);
        assert_eq!(low.lookup("73119999999999").unwrap().prefix, "7311");
    }

    #[test]
    fn aliases_count_for_their_carrier_and_prefixes_are_canonical() {
        let prior = Prior::from_counts(
            [row("ZTO", 14, "73", 12), row("中通", 14, "7 3", 8)],
            catalog(),
        );
        let bucket = prior.lookup("73000000000000").unwrap();
        assert_eq!(bucket.prefix, "73");
        assert_eq!(bucket.carriers, vec![("zhongtong", 20)]);
    }

    #[test]
    fn another_length_has_no_evidence() {
        let prior = Prior::from_counts([row("zhongtong", 14, "73", 50)], catalog());
        assert!(prior.lookup("7300000000000").is_none());
        assert_eq!(prior.confirmed(), 50);
    }

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(grouped(7), "7");
        assert_eq!(grouped(1204), "1,204");
        assert_eq!(grouped(1_234_567), "1,234,567");
    }

    #[test]
    fn share_rounds_to_whole_percent() {
        let l = Learned {
            total: 1204,
            count: 1048,
            length: 14,
            prefix: *b"7\0\0\0",
            prefix_len: 1,
        };
        assert_eq!(l.percent(), 87);
        assert_eq!(l.prefix(), "7");
    }
}
