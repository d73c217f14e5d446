//! Turning what a user typed or pasted into the canonical form of a tracking number, the
//! form the rules match. (Trace lines are *normalised* by [`crate::normalize`]; numbers
//! are made *canonical* here, so the two never share a name.)

use super::GuessError;

/// The longest canonical number the guesser accepts, in characters.
///
/// The longest known format (FedEx 34, USPS IMpb with routing) has 34 characters; the
/// limit leaves room for DHL eCommerce (up to 41) and rules added at runtime.
pub const MAX_LEN: usize = 64;

/// The canonical form of a tracking number: trimmed, without spaces (any Unicode space, including the
/// ideographic one) and dashes, full-width ASCII (as typed with a Chinese IME) folded to
/// ASCII, ASCII letters upper-cased.
///
/// It is idempotent: the canonical form of a canonical number is itself.
///
/// # Errors
///
/// [`GuessError::Empty`] when nothing is left, [`GuessError::TooLong`] over [`MAX_LEN`]
/// characters, [`GuessError::ControlCharacter`] for a control character inside the number.
///
/// ```
/// use waybill_core::guess::canonical;
/// assert_eq!(canonical(" sf 1234-5678 90123 ").unwrap(), "SF1234567890123");
/// assert_eq!(canonical("ＳＦ１２３").unwrap(), "SF123");
/// assert!(canonical(" - ").is_err());
/// ```
pub fn canonical(input: &str) -> Result<String, GuessError> {
    let mut out = String::with_capacity(input.len().min(MAX_LEN));
    walk(input, |c| out.push(c))?;
    Ok(out)
}

/// Feeds the canonical characters of `input` to `push`, at most [`MAX_LEN`] of them.
pub(crate) fn walk(input: &str, mut push: impl FnMut(char)) -> Result<(), GuessError> {
    if input.is_ascii() {
        walk_ascii(input.as_bytes(), |b| push(char::from(b)))
    } else {
        walk_unicode(input, push)
    }
}

/// The same as [`walk`] for ASCII input, byte by byte: most numbers take this path.
#[inline]
pub(crate) fn walk_ascii(input: &[u8], mut push: impl FnMut(u8)) -> Result<(), GuessError> {
    // `str::trim` trims exactly these ASCII bytes (tab to carriage return, and space).
    let is_space = |b: &u8| matches!(b, b'\t'..=b'\r' | b' ');
    let start = input
        .iter()
        .position(|b| !is_space(b))
        .unwrap_or(input.len());
    let end = input
        .iter()
        .rposition(|b| !is_space(b))
        .map_or(start, |i| i + 1);
    let mut count = 0usize;
    for (position, &b) in input[start..end].iter().enumerate() {
        match b {
            b' ' | b'-' => continue,
            0..=0x1F | 0x7F => {
                return Err(GuessError::ControlCharacter {
                    position,
                    codepoint: u32::from(b),
                })
            }
            _ => {}
        }
        count += 1;
        if count > MAX_LEN {
            return Err(GuessError::TooLong { max: MAX_LEN });
        }
        push(b.to_ascii_uppercase());
    }
    if count == 0 {
        return Err(GuessError::Empty);
    }
    Ok(())
}

/// The general path, for input with non-ASCII characters.
fn walk_unicode(input: &str, mut push: impl FnMut(char)) -> Result<(), GuessError> {
    let mut count = 0usize;
    for (position, raw) in input.trim().chars().enumerate() {
        let c = fold_width(raw);
        if is_dropped(c) {
            continue;
        }
        if c.is_control() {
            return Err(GuessError::ControlCharacter {
                position,
                codepoint: u32::from(c),
            });
        }
        count += 1;
        if count > MAX_LEN {
            return Err(GuessError::TooLong { max: MAX_LEN });
        }
        push(c.to_ascii_uppercase());
    }
    if count == 0 {
        return Err(GuessError::Empty);
    }
    Ok(())
}

/// Full-width forms U+FF01..U+FF5E mirror ASCII 0x21..0x7E; U+3000 is the full-width space.
fn fold_width(c: char) -> char {
    match u32::from(c) {
        0x3000 => ' ',
        cp @ 0xFF01..=0xFF5E => char::from_u32(cp - 0xFEE0).unwrap_or(c),
        _ => c,
    }
}

/// Separators people put inside numbers: spaces, dashes and the invisible marks that come
/// along with copy and paste. Control characters that are also whitespace (tab, newline)
/// are not dropped: inside a number they mean two numbers were pasted as one.
fn is_dropped(c: char) -> bool {
    match c {
        '-' | '\u{2010}'..='\u{2015}' | '\u{2212}' => true,
        '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}' => true,
        _ => c.is_whitespace() && !c.is_control(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spaces_dashes_and_case_are_removed() {
        assert_eq!(canonical("  1z 8v92-a703 ").unwrap(), "1Z8V92A703");
        assert_eq!(
            canonical("1LS7119013618127-1").unwrap(),
            "1LS71190136181271"
        );
    }

    #[test]
    fn full_width_input_is_folded_to_ascii() {
        assert_eq!(canonical("ｊｔ１２３\u{3000}４").unwrap(), "JT1234");
    }

    #[test]
    fn empty_or_separator_only_input_is_an_error() {
        assert!(matches!(canonical(""), Err(GuessError::Empty)));
        assert!(matches!(canonical(" -\u{3000}- "), Err(GuessError::Empty)));
    }

    #[test]
    fn inner_control_character_is_an_error_with_its_position() {
        let err = canonical("SF12\t34").unwrap_err();
        assert!(matches!(
            err,
            GuessError::ControlCharacter {
                position: 4,
                codepoint: 9
            }
        ));
    }

    #[test]
    fn trailing_line_end_is_trimmed_not_an_error() {
        assert_eq!(canonical("SF123\r\n").unwrap(), "SF123");
    }

    #[test]
    fn sixty_four_characters_pass_and_sixty_five_fail() {
        assert_eq!(canonical(&"1".repeat(64)).unwrap().len(), 64);
        assert!(matches!(
            canonical(&"1".repeat(65)),
            Err(GuessError::TooLong { max: 64 })
        ));
        // Separators do not count towards the limit.
        assert!(canonical(&"1 ".repeat(64)).is_ok());
    }

    proptest! {
        #[test]
        fn ascii_fast_path_agrees_with_the_general_path(input in "[\\x00-\\x7F]{0,70}") {
            let mut fast = String::new();
            let mut slow = String::new();
            let a = walk_ascii(input.as_bytes(), |b| fast.push(char::from(b))).map_err(|e| e.to_string());
            let b = walk_unicode(&input, |c| slow.push(c)).map_err(|e| e.to_string());
            prop_assert_eq!(a, b);
            prop_assert_eq!(fast, slow);
        }

        #[test]
        fn canonical_form_is_idempotent(input in any::<String>()) {
            if let Ok(once) = canonical(&input) {
                prop_assert_eq!(canonical(&once).unwrap(), once);
            }
        }

        #[test]
        fn canonical_output_has_no_separators_or_lower_case(input in "[ a-zA-Z0-9-]{0,80}") {
            if let Ok(out) = canonical(&input) {
                prop_assert!(out.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()));
            }
        }
    }
}
