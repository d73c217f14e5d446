//! Scrubbing: removing the parts of a trace line that name things rather than say what
//! happened, so they cannot trigger a rule.
//!
//! Three kinds of noise are removed before matching:
//! - bracketed places (`【深圳市宝安区】`, `[SHENZHEN]`): replaced by the *kinds* of place
//!   they name (`驿站`, `转运中心`, `access point` …), because "arrived at a station" and
//!   "arrived at a transfer centre" are different states while the town is not; roles
//!   that sign for parcels (`签收人是：【门卫】`) are kept the same way;
//! - phone numbers and hotlines (`13800138000`, `0755-12345678`, `95338`);
//! - couriers' names after a label (`派件员：张三`), keeping the label.
//!
//! Brackets are reduced to kinds rather than deleted so that rules can still look at what
//! stands next to them: `到达【深圳宝安网点】` scrubs to `到达 网点 `.

use std::borrow::Cow;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::Regex;

use super::rules::RuleError;

/// Phones and hotlines, mainland style plus toll-free numbers in US style.
const PHONE_PATTERN: &str = concat!(
    r"(?:\+?86[- ]?)?1[3-9]\d[\d*]{4}\d{4}",
    r"|0\d{2,3}-\d{7,8}",
    r"|400-?\d{3}-?\d{4}",
    r"|95\d{3,6}",
    r"|1-8\d{2}-\d{3}-\d{4}",
);

/// Opening and closing brackets that carriers put around place names.
const BRACKETS: [(char, char); 4] = [('【', '】'), ('[', ']'), ('〖', '〗'), ('［', '］')];

/// The compiled scrubber.
#[derive(Debug, Clone)]
pub(crate) struct Scrubber {
    keep_in_brackets: Option<AhoCorasick>,
    kind_names: Vec<String>,
    phone: Regex,
    courier: Option<Regex>,
}

impl Scrubber {
    pub(crate) fn new(
        keep_in_brackets: &[String],
        courier_labels: &[String],
    ) -> Result<Self, RuleError> {
        let keep_in_brackets_ac = if keep_in_brackets.is_empty() {
            None
        } else {
            Some(
                AhoCorasickBuilder::new()
                    .ascii_case_insensitive(true)
                    .match_kind(MatchKind::LeftmostLongest)
                    .build(keep_in_brackets)
                    .map_err(|e| RuleError::Keywords {
                        message: e.to_string(),
                    })?,
            )
        };
        let phone = Regex::new(PHONE_PATTERN).map_err(|e| RuleError::Regex {
            rule: "scrub.phone".into(),
            message: e.to_string(),
        })?;
        let courier = if courier_labels.is_empty() {
            None
        } else {
            let labels: Vec<String> = courier_labels.iter().map(|l| regex::escape(l)).collect();
            // A name is two or three Han characters (or a masked one, 张*) after a colon;
            // without a colon the label may be followed by a verb, so nothing is removed.
            let pattern = format!(r"({})\s*[:：]\s*[\p{{Han}}·*]{{1,3}}", labels.join("|"));
            Some(Regex::new(&pattern).map_err(|e| RuleError::Regex {
                rule: "scrub.courier_labels".into(),
                message: e.to_string(),
            })?)
        };
        Ok(Self {
            keep_in_brackets: keep_in_brackets_ac,
            kind_names: keep_in_brackets.to_vec(),
            phone,
            courier,
        })
    }

    /// The line with places reduced to their kinds, phones and couriers' names removed.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let reduced = self.reduce_brackets(text);
        // Most lines carry no digits at all; skip the phone search for them.
        let no_phone = if reduced.bytes().any(|b| b.is_ascii_digit()) {
            match self.phone.replace_all(&reduced, " ") {
                Cow::Owned(s) => s,
                Cow::Borrowed(_) => reduced,
            }
        } else {
            reduced
        };
        // A courier's name follows a colon; without one the search cannot match. Copy
        // only when a name was removed: most lines come out as they went in.
        match &self.courier {
            Some(courier) if no_phone.contains([':', '：']) => {
                match courier.replace_all(&no_phone, "$1 ") {
                    Cow::Owned(s) => s,
                    Cow::Borrowed(_) => no_phone,
                }
            }
            _ => no_phone,
        }
    }

    fn reduce_brackets(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len() + 8);
        let mut rest = text;
        while let Some((start, open)) = rest.char_indices().find(|(_, c)| is_open(*c)) {
            let close = closing(open);
            let after_open = start + open.len_utf8();
            let Some(len) = rest[after_open..].find(close) else {
                break;
            };
            out.push_str(&rest[..start]);
            out.push(' ');
            self.push_kinds(&rest[after_open..after_open + len], &mut out);
            rest = &rest[after_open + len + close.len_utf8()..];
        }
        out.push_str(rest);
        out
    }

    fn push_kinds(&self, place: &str, out: &mut String) {
        if let Some(ac) = &self.keep_in_brackets {
            for m in ac.find_iter(place) {
                out.push_str(&self.kind_names[m.pattern().as_usize()]);
                out.push(' ');
            }
        }
    }
}

fn is_open(c: char) -> bool {
    BRACKETS.iter().any(|(o, _)| *o == c)
}

fn closing(open: char) -> char {
    BRACKETS
        .iter()
        .find(|(o, _)| *o == open)
        .map(|(_, c)| *c)
        .unwrap_or(open)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrubber() -> Scrubber {
        Scrubber::new(
            &[
                "驿站".into(),
                "转运中心".into(),
                "网点".into(),
                "access point".into(),
            ],
            &["派件员".into(), "快递员".into()],
        )
        .unwrap()
    }

    #[test]
    fn bracketed_place_is_reduced_to_its_kind() {
        assert_eq!(scrubber().scrub("到达【深圳宝安网点】"), "到达 网点 ");
        assert_eq!(scrubber().scrub("已放入【幸福里菜鸟驿站】"), "已放入 驿站 ");
    }

    #[test]
    fn bracketed_town_disappears() {
        assert_eq!(scrubber().scrub("【深圳市】快件已揽收"), " 快件已揽收");
        assert_eq!(scrubber().scrub("[SHENZHEN] Departed"), "  Departed");
    }

    #[test]
    fn english_kinds_survive_in_any_case() {
        assert_eq!(
            scrubber().scrub("Delivered to [UPS ACCESS POINT 123]"),
            "Delivered to  access point "
        );
    }

    #[test]
    fn phones_and_hotlines_are_removed() {
        let s = scrubber().scrub("电话13812345678,座机0755-83395555,热线95338,掩码138****5678");
        assert!(!s.chars().any(|c| c.is_ascii_digit()), "{s}");
    }

    #[test]
    fn courier_name_after_a_label_is_removed_but_the_label_stays() {
        assert_eq!(scrubber().scrub("派件员：张三正在派件"), "派件员 在派件");
        assert_eq!(scrubber().scrub("快递员正在派件"), "快递员正在派件");
    }

    #[test]
    fn unclosed_bracket_is_left_alone() {
        assert_eq!(scrubber().scrub("到达【深圳"), "到达【深圳");
    }
}
