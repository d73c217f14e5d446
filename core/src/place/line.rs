//! Reading places out of one line, a whole trace, or an address.
use std::collections::HashMap;

use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, Anchored, Input};

use super::table::{divisions, Division, Divisions, Entry, Level};
use super::{LinePlace, Located, Place, Resolution};

/// Words before a group that make it the next place rather than the current one.
const NEXT_WORDS: [&str; 14] = [
    "发往",
    "下一站",
    "送往",
    "转往",
    "运往",
    "前往",
    "寄往",
    "去往",
    "发至",
    "转至",
    "运至",
    "目的地",
    "转运至",
    "派往",
];
/// English ones, matched case-insensitively on word boundaries.
const NEXT_WORDS_EN: [&str; 4] = ["to", "destination", "next", "towards"];
/// Words before a group that name where the parcel came from: neither here nor next.
const PREVIOUS_WORDS: [&str; 3] = ["上一站", "来自", "上站"];

/// [`NEXT_WORDS`] then [`PREVIOUS_WORDS`], as one automaton.
fn keywords() -> &'static AhoCorasick {
    static CELL: OnceLock<AhoCorasick> = OnceLock::new();
    CELL.get_or_init(|| {
        AhoCorasick::new(NEXT_WORDS.iter().chain(&PREVIOUS_WORDS))
            // Our own constant, non-empty words: building cannot fail.
            .expect("keywords build an automaton")
    })
}

/// How far back (bytes) a keyword may stand before the group it qualifies.
const KEYWORD_REACH: usize = 15;

/// Characters that may stand between two names of one group.
fn is_separator(c: char) -> bool {
    matches!(
        c,
        ' ' | '-'
            | '·'
            | ','
            | '，'
            | '/'
            | '、'
            | '|'
            | '_'
            | '【'
            | '】'
            | '['
            | ']'
            | '('
            | ')'
            | '（'
            | '）'
            | '\t'
            | '.'
            | ':'
            | '：'
            | '\u{3000}'
    )
}

#[derive(Debug, Clone, Copy)]
struct Hit<'t> {
    start: usize,
    end: usize,
    entries: &'t [Entry],
}

fn hits<'t>(t: &'t Divisions, text: &str) -> Vec<Hit<'t>> {
    let mut out = Vec::new();
    for m in t.zh.find_iter(text) {
        out.push(Hit {
            start: m.start(),
            end: m.end(),
            entries: &t.zh_entries[m.pattern().as_usize()],
        });
    }
    if text.bytes().any(|b| b.is_ascii_alphabetic()) {
        // Pinyin is matched only from the start of a word to the end of one, so that
        // "facility in" never reads as a place name running across the space.
        let bytes = text.as_bytes();
        let letter = |i: usize| bytes.get(i).is_some_and(|b| b.is_ascii_alphanumeric());
        let before = out.len();
        let mut i = 0;
        while i < bytes.len() {
            if !bytes[i].is_ascii_alphabetic() || (i > 0 && letter(i - 1)) {
                i += 1;
                continue;
            }
            let input = Input::new(text).span(i..text.len()).anchored(Anchored::Yes);
            match t.en.find(input) {
                Some(m) if !letter(m.end()) => {
                    out.push(Hit {
                        start: m.start(),
                        end: m.end(),
                        entries: &t.en_entries[m.pattern().as_usize()],
                    });
                    i = m.end();
                }
                _ => i += 1,
            }
        }
        if out.len() > before && before > 0 {
            out.sort_by_key(|h| h.start);
        }
    }
    out
}

/// Is `a` the same as or a parent of `b`?
fn contains(a: &Division, b: &Division) -> bool {
    a.code == b.code || a.code == b.province || a.code == b.city
}

/// One group's reading: the divisions chosen for its hits, and the other places the
/// group could equally mean (as many links between its names, other final division).
struct Reading {
    chosen: Vec<u16>,
    ties: Vec<u16>,
}

/// The default preference among equally linked readings: a full name over a short one,
/// then a province over a city over a district (朝阳 alone reads as 朝阳市).
fn preference(t: &Divisions, e: &Entry) -> i32 {
    let d = &t.list[e.division as usize];
    let level = match d.level {
        Level::Province => 3,
        Level::City => 2,
        Level::District => 0,
    };
    level + if e.full { 4 } else { 0 }
}

/// Reads a group top-down: every assignment of divisions to its hits is scored by the
/// links between neighbours (one lies in the other); the most linked assignments are
/// the readings, and [`preference`] picks the default among them.
fn read_group(t: &Divisions, group: &[Hit<'_>]) -> Reading {
    // Groups are short (a province, a city, a district) and most names mean one
    // division, so the product is tiny; cap it so a pathological line stays cheap.
    let total = group
        .iter()
        .map(|h| h.entries.len())
        .try_fold(1usize, |acc, n| acc.checked_mul(n).filter(|&p| p <= 256));
    // Most groups name each division unambiguously: nothing to choose.
    if total == Some(1) {
        return Reading {
            chosen: group.iter().map(|h| h.entries[0].division).collect(),
            ties: Vec::new(),
        };
    }
    let Some(total) = total else {
        return Reading {
            chosen: group.iter().map(|h| h.entries[0].division).collect(),
            ties: Vec::new(),
        };
    };
    let mut best: Option<(i32, i32, Vec<u16>)> = None;
    let mut finals: Vec<(i32, u16)> = Vec::new();
    let mut pick = vec![0usize; group.len()];
    for n in 0..total {
        let mut rest = n;
        for (i, h) in group.iter().enumerate() {
            pick[i] = rest % h.entries.len();
            rest /= h.entries.len();
        }
        let (mut links, mut pref) = (0, 0);
        for (i, h) in group.iter().enumerate() {
            pref += preference(t, &h.entries[pick[i]]);
            if i > 0 {
                let a = &t.list[group[i - 1].entries[pick[i - 1]].division as usize];
                let b = &t.list[h.entries[pick[i]].division as usize];
                if contains(a, b) || contains(b, a) {
                    links += 1;
                }
            }
        }
        let chosen: Vec<u16> = group
            .iter()
            .enumerate()
            .map(|(i, h)| h.entries[pick[i]].division)
            .collect();
        finals.push((links, most_specific(t, &chosen)));
        let better = match &best {
            None => true,
            Some((l, p, _)) => (links, pref) > (*l, *p),
        };
        if better {
            best = Some((links, pref, chosen));
        }
    }
    let Some((links, _, chosen)) = best else {
        return Reading {
            chosen: Vec::new(),
            ties: Vec::new(),
        };
    };
    let top = most_specific(t, &chosen);
    let mut ties: Vec<u16> = Vec::new();
    for (l, f) in finals {
        if l == links && f != top && !ties.contains(&f) {
            ties.push(f);
        }
    }
    Reading { chosen, ties }
}

/// The most specific division of a linked chain, following links from the first hit.
fn most_specific(t: &Divisions, chosen: &[u16]) -> u16 {
    let mut here = chosen[0];
    for &next in &chosen[1..] {
        let (a, b) = (&t.list[here as usize], &t.list[next as usize]);
        if contains(a, b) {
            here = next;
        } else if !contains(b, a) {
            break;
        }
    }
    here
}

fn place_of(t: &Divisions, i: u16) -> Option<Place> {
    t.place(i)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    At,
    Next,
    Previous,
}

/// The role the words just before `start` give a group.
fn role(text: &str, from: usize, start: usize) -> Role {
    let lo = start.saturating_sub(KEYWORD_REACH).max(from);
    let mut lo = lo;
    while !text.is_char_boundary(lo) {
        lo += 1;
    }
    let before = &text[lo..start];
    // One pass of a small automaton over the words before the group, rather than a
    // substring search per keyword.
    let mut next = false;
    for m in keywords().find_iter(before) {
        if m.pattern().as_usize() >= NEXT_WORDS.len() {
            return Role::Previous;
        }
        next = true;
    }
    if next {
        return Role::Next;
    }
    if before.is_ascii() && !before.is_empty() {
        let words = before
            .rsplit(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty());
        for w in words.take(3) {
            if NEXT_WORDS_EN.iter().any(|n| n.eq_ignore_ascii_case(w)) {
                return Role::Next;
            }
        }
    }
    Role::At
}

struct Group {
    role: Role,
    located: Located,
}

fn groups(t: &Divisions, text: &str, with_roles: bool) -> Vec<Group> {
    let hits = hits(t, text);
    let mut out: Vec<Group> = Vec::new();
    let mut i = 0;
    let mut prev_end = 0;
    while i < hits.len() {
        let mut j = i + 1;
        while j < hits.len()
            && hits[j].start >= hits[j - 1].end
            && text[hits[j - 1].end..hits[j].start]
                .chars()
                .all(is_separator)
            && hits[j].start - hits[j - 1].end <= 6
        {
            j += 1;
        }
        let group = &hits[i..j];
        let role = if with_roles {
            role(text, prev_end, group[0].start)
        } else {
            Role::At
        };
        prev_end = group[j - i - 1].end;
        let reading = read_group(t, group);
        if !reading.chosen.is_empty() {
            let chain = split_chain(t, &reading.chosen);
            let top = most_specific(t, &reading.chosen[..chain]);
            if let Some(place) = place_of(t, top) {
                let alternatives: Vec<Place> = reading
                    .ties
                    .iter()
                    .filter_map(|&d| place_of(t, d))
                    .collect();
                let resolution = if !alternatives.is_empty() {
                    Resolution::Default
                } else if group.iter().any(|h| h.entries.len() > 1) {
                    Resolution::Line
                } else {
                    Resolution::Unique
                };
                out.push(Group {
                    role,
                    located: Located {
                        place,
                        resolution,
                        alternatives,
                    },
                });
            }
        }
        i = j;
    }
    out
}

/// How many of the chosen divisions form one linked chain from the first.
fn split_chain(t: &Divisions, chosen: &[u16]) -> usize {
    let mut n = 1;
    while n < chosen.len() {
        let (a, b) = (&t.list[chosen[n - 1] as usize], &t.list[chosen[n] as usize]);
        if !(contains(a, b) || contains(b, a)) {
            break;
        }
        n += 1;
    }
    n
}

/// Refines `base` with a later group that lies inside it (`[深圳市]` then `福田营业部`).
fn refine(base: &mut Located, later: &Located) {
    if later.place.code != base.place.code && later.place.within(&base.place) {
        if base.resolution == Resolution::Default {
            base.resolution = Resolution::Line;
            base.alternatives.clear();
        }
        base.place = later.place;
    }
}

/// The places of one trace line: where it happened and where it goes next.
///
/// An ambiguous name is read the likeliest way and says so ([`Resolution::Default`]);
/// [`locate_trace`] settles it from the rest of the trace.
///
/// ```
/// use waybill_core::place::locate_line;
/// let p = locate_line("Departed Facility in SHENZHEN - CHINA MAINLAND").at.expect("place");
/// assert_eq!((p.place.province, p.place.city), ("广东省", Some("深圳市")));
/// let p = locate_line("【金华市】浙江义乌公司 已揽收").at.expect("place");
/// assert_eq!(p.place.district, Some("义乌市"));
/// assert!(locate_line("已签收，签收人：本人").at.is_none());
/// ```
pub fn locate_line(text: &str) -> LinePlace {
    let t = divisions();
    let mut out = LinePlace::default();
    for g in groups(t, text, true) {
        match g.role {
            Role::Previous => {}
            Role::Next => {
                if out.next.is_none() {
                    out.next = Some(g.located);
                }
            }
            Role::At => match &mut out.at {
                None => out.at = Some(g.located),
                Some(base) => refine(base, &g.located),
            },
        }
    }
    out
}

/// Reads an address (a subscription's `from`/`to`), with or without separators:
/// `广东省深圳市南山区`, `广东-深圳-南山`, `北京市朝阳区`, `SHENZHEN`.
///
/// ```
/// use waybill_core::place::parse_address;
/// let p = parse_address("北京市朝阳区望京街道").expect("address").place;
/// assert_eq!((p.city, p.district, p.code), (Some("北京市"), Some("朝阳区"), 110105));
/// assert_eq!(parse_address("广东省-深圳市-南山区").map(|l| l.place.code), Some(440305));
/// assert!(parse_address("somewhere").is_none());
/// ```
pub fn parse_address(text: &str) -> Option<Located> {
    let t = divisions();
    let mut groups = groups(t, text, false).into_iter();
    let mut base = groups.next()?.located;
    for g in groups {
        refine(&mut base, &g.located);
    }
    Some(base)
}

/// The places of a whole trace's lines (in any order), with ambiguous names settled by
/// the others and by the subscription's `from` and `to`.
///
/// A line's reading is kept when it was unique. An ambiguous one takes the alternative
/// whose city (then province) the rest of the trace names most often, counting `from`
/// and `to` as several lines each; that answer says [`Resolution::Context`].
///
/// ```
/// use waybill_core::place::{locate_trace, Resolution};
/// let lines = ["快件到达【朝阳】", "北京转运中心 已发出"];
/// let places = locate_trace(lines, None, None);
/// let p = places[0].at.as_ref().expect("place");
/// assert_eq!((p.place.province, p.resolution), ("北京市", Resolution::Context));
/// let places = locate_trace(["快件到达【朝阳】"], None, Some("辽宁省朝阳市"));
/// assert_eq!(places[0].at.as_ref().map(|p| p.place.province), Some("辽宁省"));
/// ```
pub fn locate_trace<'a>(
    lines: impl IntoIterator<Item = &'a str>,
    from: Option<&str>,
    to: Option<&str>,
) -> Vec<LinePlace> {
    let mut out: Vec<LinePlace> = lines.into_iter().map(locate_line).collect();
    if !out.iter().any(|l| is_open(&l.at) || is_open(&l.next)) {
        return out;
    }
    // Evidence: cities and provinces named without doubt.
    let mut cities: HashMap<u32, u32> = HashMap::new();
    let mut provinces: HashMap<u32, u32> = HashMap::new();
    let mut count = |p: &Place, weight: u32| {
        if let Some(c) = p.city_code() {
            *cities.entry(c).or_default() += weight;
        }
        *provinces.entry(p.province_code()).or_default() += weight;
    };
    for l in &out {
        for located in [&l.at, &l.next].into_iter().flatten() {
            if located.resolution != Resolution::Default {
                count(&located.place, 1);
            }
        }
    }
    for address in [from, to].into_iter().flatten() {
        if let Some(a) = parse_address(address) {
            if a.resolution != Resolution::Default {
                count(&a.place, 3);
            }
        }
    }
    let support = |p: &Place| {
        let city = p.city_code().and_then(|c| cities.get(&c)).copied();
        city.unwrap_or(0) * 100 + provinces.get(&p.province_code()).copied().unwrap_or(0)
    };
    for l in &mut out {
        for located in [&mut l.at, &mut l.next].into_iter().flatten() {
            if located.resolution != Resolution::Default {
                continue;
            }
            let best = std::iter::once(located.place)
                .chain(located.alternatives.iter().copied())
                .map(|p| (support(&p), p))
                .max_by_key(|(s, _)| *s);
            if let Some((s, p)) = best {
                if s > 0 {
                    let old = std::mem::replace(&mut located.place, p);
                    located.alternatives.retain(|a| *a != p);
                    located.alternatives.push(old);
                    located.resolution = Resolution::Context;
                }
            }
        }
    }
    out
}

fn is_open(l: &Option<Located>) -> bool {
    l.as_ref()
        .is_some_and(|l| l.resolution == Resolution::Default)
}
