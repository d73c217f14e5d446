//! The division table and the two automata over its names.
//!
//! `divisions.tsv` (generated, see its header) lists every province, prefecture and
//! county with its 6-digit GB/T 2260 code. It is parsed once per process into
//! [`Divisions`]: one [`Division`] per code plus
//! - `zh`: an Aho-Corasick automaton over every full name (深圳市, 宝安区) and every short
//!   name (深圳, 宝安), leftmost-longest, so 广东省深圳市南山区 reads as three names;
//! - `en`: an ASCII case-insensitive automaton over the pinyin of province and prefecture
//!   short names (shenzhen, guangzhou) and a few English exonyms (Hong Kong, Harbin).
//!
//! A pattern maps to every division that carries it (朝阳 → four of them); choosing
//! among them is the job of the line and trace readers.
use std::collections::HashMap;
use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind, StartKind};

const TABLE: &str = include_str!("divisions.tsv");

/// Provinces whose cities are the province itself: their codes stand for the city too.
const MUNICIPALITIES: [u32; 4] = [11, 12, 31, 50];

/// Administrative suffixes, longest first, stripped to form a short name.
const SUFFIXES: [&str; 12] = [
    "特别行政区",
    "自治区",
    "自治州",
    "自治县",
    "自治旗",
    "地区",
    "林区",
    "省",
    "市",
    "区",
    "县",
    "盟",
];

/// Short names that are also ordinary words of trace lines ("市中心", "城区派件",
/// "新城营业部", "和平路"), so only their full names (市中区, 城区, 新城区) count.
const NOT_SHORT_NAMES: [&str; 22] = [
    "城区", "市中", "新城", "城关", "郊区", "矿区", "站前", "和平", "新华", "向阳", "红旗", "前进",
    "胜利", "东方", "新兴", "城中", "城东", "城西", "城南", "城北", "开发", "高新",
];

/// English names that are not pinyin (the places' customary exonyms).
const EXONYMS: [(&str, u32); 10] = [
    ("hong kong", 810000),
    ("macau", 820000),
    ("macao", 820000),
    ("taiwan", 710000),
    ("tibet", 540000),
    ("inner mongolia", 150000),
    ("harbin", 230100),
    ("urumqi", 650100),
    ("hohhot", 150100),
    ("lhasa", 540100),
];

/// The administrative level of a division.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Level {
    Province,
    City,
    District,
}

/// One row of the table.
#[derive(Debug, Clone)]
pub(crate) struct Division {
    pub code: u32,
    pub name: &'static str,
    pub short: &'static str,
    pub level: Level,
    /// Code of the division's city: itself for a city, the province's code for the
    /// four municipalities (the province row included), 0 for any other province.
    pub city: u32,
    pub province: u32,
    /// Indices in the list of the province and city rows, so a hit becomes a
    /// [`super::Place`] without hashing ([`u16::MAX`] for none).
    pub province_index: u16,
    pub city_index: u16,
}

/// A pattern hit: which division, and whether the full name matched.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    pub division: u16,
    pub full: bool,
}

pub(crate) struct Divisions {
    pub list: Vec<Division>,
    by_code: HashMap<u32, u16>,
    pub zh: AhoCorasick,
    pub zh_entries: Vec<Vec<Entry>>,
    pub en: AhoCorasick,
    pub en_entries: Vec<Vec<Entry>>,
}

/// The process-wide table, built on first use (about 10 ms).
pub(crate) fn divisions() -> &'static Divisions {
    static CELL: OnceLock<Divisions> = OnceLock::new();
    CELL.get_or_init(Divisions::build)
}

fn level_of(code: u32) -> Level {
    if code % 10000 == 0 {
        Level::Province
    } else if code % 100 == 0 || (code / 100) % 100 == 90 {
        // xx90yy are county-level cities the province runs directly (仙桃, 济源): they
        // have no prefecture, so they are their own city.
        Level::City
    } else {
        Level::District
    }
}

fn short_name(name: &str) -> &str {
    for suffix in SUFFIXES {
        if let Some(stem) = name.strip_suffix(suffix) {
            return stem;
        }
    }
    name
}

impl Divisions {
    fn build() -> Self {
        let mut list: Vec<Division> = Vec::with_capacity(3500);
        let mut by_code = HashMap::with_capacity(3500);
        let mut pinyin: Vec<String> = Vec::with_capacity(3500);
        for row in TABLE.lines().filter(|l| !l.starts_with('#')) {
            let mut cols = row.split('\t');
            let (Some(code), Some(name), Some(py)) = (cols.next(), cols.next(), cols.next()) else {
                continue;
            };
            let Ok(code) = code.parse::<u32>() else {
                continue;
            };
            let province = code / 10000;
            let municipal = MUNICIPALITIES.contains(&province);
            // A municipality's "city" rows (110100, 500200) repeat the province.
            if municipal && code % 10000 != 0 && code % 100 == 0 {
                continue;
            }
            if by_code.contains_key(&code) {
                continue;
            }
            let level = level_of(code);
            let city = match level {
                _ if municipal => province * 10000,
                Level::Province => 0,
                Level::City => code,
                Level::District => code / 100 * 100,
            };
            let short = ethnic_stem(short_name(name));
            let dropped = name.chars().count() - short.chars().count();
            let syllables: Vec<&str> = py.split(' ').collect();
            let kept = syllables.len().saturating_sub(dropped);
            pinyin.push(syllables[..kept].join(" "));
            by_code.insert(code, list.len() as u16);
            list.push(Division {
                code,
                name,
                short,
                level,
                city,
                province: province * 10000,
                province_index: u16::MAX,
                city_index: u16::MAX,
            });
        }
        for d in &mut list {
            d.province_index = by_code.get(&d.province).copied().unwrap_or(u16::MAX);
            d.city_index = by_code.get(&d.city).copied().unwrap_or(u16::MAX);
        }
        let (zh, zh_entries) = zh_automaton(&list);
        let (en, en_entries) = en_automaton(&list, &pinyin, &by_code);
        Self {
            list,
            by_code,
            zh,
            zh_entries,
            en,
            en_entries,
        }
    }

    pub fn get(&self, code: u32) -> Option<&Division> {
        self.by_code.get(&code).map(|&i| &self.list[i as usize])
    }

    pub fn index_of(&self, code: u32) -> Option<&u16> {
        self.by_code.get(&code)
    }

    /// The place of the division at `index`.
    pub fn place(&self, index: u16) -> Option<super::Place> {
        let d = self.list.get(index as usize)?;
        let province = self.list.get(d.province_index as usize)?.name;
        let city = match d.city {
            0 => None,
            _ => Some(self.list.get(d.city_index as usize)?.name),
        };
        Some(super::Place {
            code: d.code,
            province,
            city,
            district: (d.level == Level::District).then_some(d.name),
        })
    }
}

/// Strips the ethnic names of an autonomous prefecture or county's stem (黔南布依族苗族 →
/// 黔南, 克孜勒苏柯尔克孜 → 克孜勒苏), keeping at least two characters.
fn ethnic_stem(stem: &'static str) -> &'static str {
    let mut s = stem;
    loop {
        let Some(cut) = ETHNIC
            .iter()
            .filter_map(|n| s.strip_suffix(n))
            .find(|rest| rest.chars().count() >= 2)
        else {
            return s;
        };
        s = cut;
    }
}

/// The ethnic groups that name autonomous areas, as the names write them (with and
/// without 族); longest forms first so 蒙古族 goes before 蒙古.
const ETHNIC: [&str; 44] = [
    "柯尔克孜族",
    "柯尔克孜",
    "哈萨克族",
    "哈萨克",
    "土家族",
    "布依族",
    "傈僳族",
    "朝鲜族",
    "蒙古族",
    "维吾尔",
    "哈尼族",
    "景颇族",
    "傣族",
    "苗族",
    "侗族",
    "藏族",
    "彝族",
    "白族",
    "壮族",
    "羌族",
    "回族",
    "瑶族",
    "黎族",
    "畲族",
    "水族",
    "土族",
    "怒族",
    "佤族",
    "纳西族",
    "拉祜族",
    "仡佬族",
    "普米族",
    "独龙族",
    "撒拉族",
    "保安族",
    "东乡族",
    "裕固族",
    "达斡尔族",
    "鄂温克族",
    "鄂伦春族",
    "锡伯族",
    "毛南族",
    "仫佬族",
    "蒙古",
];

fn push_pattern(
    map: &mut HashMap<String, Vec<Entry>>,
    order: &mut Vec<String>,
    key: &str,
    entry: Entry,
) {
    let list = map.entry(key.to_owned()).or_insert_with(|| {
        order.push(key.to_owned());
        Vec::new()
    });
    if !list.iter().any(|e| e.division == entry.division) {
        list.push(entry);
    }
}

fn finish(
    map: HashMap<String, Vec<Entry>>,
    order: Vec<String>,
    ascii_ci: bool,
) -> (AhoCorasick, Vec<Vec<Entry>>) {
    let mut map = map;
    let entries: Vec<Vec<Entry>> = order
        .iter()
        .map(|k| map.remove(k).unwrap_or_default())
        .collect();
    let ac = AhoCorasickBuilder::new()
        .match_kind(MatchKind::LeftmostLongest)
        .ascii_case_insensitive(ascii_ci)
        // English names are searched anchored at word starts, Chinese ones anywhere.
        .start_kind(if ascii_ci {
            StartKind::Anchored
        } else {
            StartKind::Unanchored
        })
        .build(&order)
        // The patterns are our own non-empty table rows; a failure here is a broken
        // checked-in table, caught by every test.
        .expect("division names build an automaton");
    (ac, entries)
}

fn zh_automaton(list: &[Division]) -> (AhoCorasick, Vec<Vec<Entry>>) {
    let mut map = HashMap::new();
    let mut order = Vec::new();
    for (i, d) in list.iter().enumerate() {
        let division = i as u16;
        push_pattern(
            &mut map,
            &mut order,
            d.name,
            Entry {
                division,
                full: true,
            },
        );
        if d.short != d.name && d.short.chars().count() >= 2 && !NOT_SHORT_NAMES.contains(&d.short)
        {
            push_pattern(
                &mut map,
                &mut order,
                d.short,
                Entry {
                    division,
                    full: false,
                },
            );
        }
    }
    finish(map, order, false)
}

fn en_automaton(
    list: &[Division],
    pinyin: &[String],
    by_code: &HashMap<u32, u16>,
) -> (AhoCorasick, Vec<Vec<Entry>>) {
    let mut map = HashMap::new();
    let mut order = Vec::new();
    for (i, d) in list.iter().enumerate() {
        // Districts and counties are left out, their pinyin collides too often (nanshan,
        // chaoyang, gulou) to be read without the characters; county-level cities
        // (义乌市, 昆山市) stay, carriers name their export hubs by them.
        if d.level == Level::District && !d.name.ends_with('市') {
            continue;
        }
        let syllables: Vec<&str> = pinyin[i].split(' ').collect();
        let joined = syllables.concat();
        if joined.len() < 4 {
            continue;
        }
        let entry = Entry {
            division: i as u16,
            full: false,
        };
        push_pattern(&mut map, &mut order, &joined, entry);
        // Xi'an: an apostrophe marks a syllable that starts with a vowel.
        if syllables[1..]
            .iter()
            .any(|s| s.starts_with(['a', 'e', 'o']))
        {
            let mut marked = String::from(syllables[0]);
            for s in &syllables[1..] {
                if s.starts_with(['a', 'e', 'o']) {
                    marked.push('\'');
                }
                marked.push_str(s);
            }
            push_pattern(&mut map, &mut order, &marked, entry);
        }
    }
    for (name, code) in EXONYMS {
        if let Some(&division) = by_code.get(&code) {
            push_pattern(
                &mut map,
                &mut order,
                name,
                Entry {
                    division,
                    full: true,
                },
            );
        }
    }
    finish(map, order, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_drop_suffixes_and_ethnic_names() {
        let t = divisions();
        let short = |code| t.get(code).map(|d| d.short);
        assert_eq!(short(440300), Some("深圳"));
        assert_eq!(short(150000), Some("内蒙古"));
        assert_eq!(short(450000), Some("广西"));
        assert_eq!(short(650000), Some("新疆"));
        assert_eq!(short(522700), Some("黔南"));
        assert_eq!(short(653000), Some("克孜勒苏"));
        assert_eq!(short(330782), Some("义乌"));
    }

    #[test]
    fn municipalities_are_their_own_city() {
        let t = divisions();
        let d = t.get(110105).expect("朝阳区");
        assert_eq!(
            (d.city, d.province, d.level),
            (110000, 110000, Level::District)
        );
        assert!(
            t.get(110100).is_none(),
            "the repeated city row is folded into 110000"
        );
        let d = t.get(429004).expect("仙桃市");
        assert_eq!((d.city, d.level), (429004, Level::City));
    }
}
