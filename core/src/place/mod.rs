//! The place of every trace line, and of a subscription's `from`/`to`.
//!
//! Carriers name places in every way a person would: `【深圳宝安集散中心】`, `杭州转运中心`,
//! `浙江义乌公司`, `北京市朝阳区`, `SHENZHEN - CHINA MAINLAND`. This module reads them
//! against the GB/T 2260 division table (generated from a maintained source, see
//! `divisions.tsv`) and answers a [`Place`]: province, city, district and the 6-digit code,
//! which renders as kuaidi100's `areaCode` (`440306000000`) and `areaName`
//! (`广东,深圳市,宝安区`).
//!
//! How a line is read:
//! 1. Every division name in it is found in one pass (an Aho-Corasick automaton over full
//!    and short names; pinyin of provinces and prefectures for English lines).
//! 2. Names that follow each other with only separators between them (`广东省深圳市`,
//!    `深圳宝安`, `SHENZHEN, GUANGDONG`) form a group, read top-down: each name must lie
//!    in the one before, which picks 义乌 under 浙江 and 朝阳区 under 北京.
//! 3. A group after 发往/下一站/送往/`to` is the *next* place; the first other group is
//!    where the scan happened ([`LinePlace`]).
//! 4. A name the line leaves ambiguous (朝阳: a Beijing district, a Liaoning city) is
//!    settled by [`locate_trace`] from the other lines and the subscription's `from`/`to`;
//!    the answer's [`Resolution`] says which way it was decided.
//!
//! ```
//! use waybill_core::place::{locate_line, parse_address};
//! let line = locate_line("快件离开【深圳宝安集散中心】，发往【北京】");
//! let at = line.at.expect("a place");
//! assert_eq!((at.place.city, at.place.district), (Some("深圳市"), Some("宝安区")));
//! assert_eq!(at.place.area_code(), "440306000000");
//! assert_eq!(line.next.expect("next").place.city, Some("北京市"));
//!
//! let to = parse_address("广东省深圳市南山区").expect("an address");
//! assert_eq!(to.place.area_name(), "广东,深圳市,南山区");
//! ```
mod line;
mod table;
#[cfg(test)]
mod tests;

use serde::Serialize;

pub use line::{locate_line, locate_trace, parse_address};
use table::divisions;

/// A division-level place: the most specific division named and its parents.
///
/// ```
/// use waybill_core::place::Place;
/// let p = Place::from_code(330782).expect("义乌市");
/// assert_eq!((p.province, p.city, p.district), ("浙江省", Some("金华市"), Some("义乌市")));
/// assert_eq!(p.city_code(), Some(330700));
/// assert_eq!(Place::from_area_code("330782000000"), Some(p));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Place {
    /// GB/T 2260 code of the most specific division (district, city or province).
    pub code: u32,
    /// Province, autonomous region or municipality (`广东省`, `北京市`).
    pub province: &'static str,
    /// Prefecture-level city; a municipality is its own city (`北京市`).
    pub city: Option<&'static str>,
    /// District, county or county-level city (`南山区`, `义乌市`).
    pub district: Option<&'static str>,
}

impl Place {
    /// The place of a 6-digit GB/T 2260 code in the table, with its parents.
    pub fn from_code(code: u32) -> Option<Self> {
        let t = divisions();
        t.place(*t.index_of(code)?)
    }

    /// The place of a kuaidi100 `areaCode` (`440305000000`, also with a `CN` prefix).
    pub fn from_area_code(area_code: &str) -> Option<Self> {
        let digits = area_code.trim().trim_start_matches("CN");
        let code: u32 = digits.get(..6)?.parse().ok()?;
        Self::from_code(code)
    }

    /// kuaidi100's `areaCode`: the 6-digit code padded with zeros to 12 digits.
    pub fn area_code(&self) -> String {
        format!("{:06}000000", self.code)
    }

    /// kuaidi100's `areaName`: `广东,深圳市,南山区`; a municipality is written once
    /// (`北京市,朝阳区`), a province alone in full (`广东省`).
    pub fn area_name(&self) -> String {
        let province_short = divisions()
            .get(self.code / 10000 * 10000)
            .map_or(self.province, |d| d.short);
        let mut out = String::with_capacity(32);
        match self.city {
            None => out.push_str(self.province),
            Some(city) if city == self.province => out.push_str(city),
            Some(city) => {
                out.push_str(province_short);
                out.push(',');
                out.push_str(city);
            }
        }
        if let Some(d) = self.district {
            out.push(',');
            out.push_str(d);
        }
        out
    }

    /// Code of the city (a municipality is its own city); `None` for a province.
    pub fn city_code(&self) -> Option<u32> {
        let d = divisions().get(self.code)?;
        (d.city != 0).then_some(d.city)
    }

    /// Code of the province.
    pub fn province_code(&self) -> u32 {
        self.code / 10000 * 10000
    }

    /// True when `self` is `other` or lies inside it (南山区 in 深圳市, 深圳市 in 广东省).
    pub fn within(&self, other: &Place) -> bool {
        self.code == other.code
            || other.code == self.province_code()
            || Some(other.code) == self.city_code()
    }
}

/// How an answer was chosen among the divisions a name can mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// The name means one division.
    Unique,
    /// The line itself settled it (a parent named beside it: 北京朝阳).
    Line,
    /// Ambiguous in the line; the other lines or the subscription's from/to settled it.
    Context,
    /// Ambiguous and nothing settled it: the likeliest reading (a city over a district
    /// of the same name), with the others in `alternatives`.
    Default,
}

/// A place as found in a text, and how sure the reading is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Located {
    /// The place.
    pub place: Place,
    /// How it was chosen.
    pub resolution: Resolution,
    /// Other readings of the same words, when they were ambiguous.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alternatives: Vec<Place>,
}

/// The places of one trace line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LinePlace {
    /// Where the scan happened (the origin of 离开/发往/Departed).
    pub at: Option<Located>,
    /// Where the parcel goes next, when the line says (发往【北京】, 下一站).
    pub next: Option<Located>,
}
