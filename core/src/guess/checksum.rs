//! Check-digit algorithms used by tracking numbers.
//!
//! Every function takes the serial (the characters the check digit is computed over, any
//! prefix already applied) and the check character, and says whether they agree. Anything
//! that is not a character the algorithm knows gives `false`, never a panic.

use super::rules::Algorithm;

/// Whether `check` is the check character of `serial` under `algorithm`.
pub(crate) fn verify(algorithm: &Algorithm, serial: &[u8], check: u8) -> bool {
    match algorithm {
        Algorithm::Mod10 {
            evens,
            odds,
            reverse,
        } => mod10(serial, *evens, *odds, *reverse).is_some_and(|d| d == check),
        Algorithm::Luhn => luhn(serial).is_some_and(|d| d == check),
        Algorithm::Mod7 => mod7(serial).is_some_and(|d| d == check),
        Algorithm::S10 => s10(serial).is_some_and(|d| d == check),
        Algorithm::SumProduct {
            weights,
            modulo1,
            modulo2,
        } => sum_product(serial, weights, *modulo1, *modulo2).is_some_and(|d| d == check),
        Algorithm::Mod37_36 => mod37_36(serial).is_some_and(|d| d == check),
    }
}

fn digit(c: u8) -> Option<u32> {
    c.is_ascii_digit().then(|| u32::from(c - b'0'))
}

fn to_ascii_digit(value: u32) -> u8 {
    // Callers reduce `value` below 10 first; the mask keeps the cast lossless regardless.
    b'0' + (value % 10) as u8
}

/// Weighted mod 10 (UPS, FedEx Ground, USPS, Canada Post, OnTrac). Characters at even
/// indexes (from the left, or from the right when `reverse`) get `evens`, the others `odds`.
/// Letters count as `(ASCII - 3) mod 10`, the UPS convention, so `A` is 2.
fn mod10(serial: &[u8], evens: u32, odds: u32, reverse: bool) -> Option<u8> {
    let mut sum: u64 = 0;
    let n = serial.len();
    for i in 0..n {
        let c = if reverse {
            serial[n - 1 - i]
        } else {
            serial[i]
        };
        let value = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A'..=b'Z' => u32::from(c - 3) % 10,
            _ => return None,
        };
        let weight = if i % 2 == 0 { evens } else { odds };
        sum += u64::from(value) * u64::from(weight);
    }
    Some(to_ascii_digit(((10 - sum % 10) % 10) as u32))
}

/// Luhn: from the right, double every other digit starting with the one next to the check
/// digit, folding products over 9.
fn luhn(serial: &[u8]) -> Option<u8> {
    let mut sum = 0u32;
    for (i, &c) in serial.iter().rev().enumerate() {
        let mut d = digit(c)?;
        if i % 2 == 0 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    Some(to_ascii_digit((10 - sum % 10) % 10))
}

/// The serial read as one (arbitrarily long) integer, modulo 7.
fn mod7(serial: &[u8]) -> Option<u8> {
    let mut rest = 0u32;
    for &c in serial {
        rest = (rest * 10 + digit(c)?) % 7;
    }
    Some(to_ascii_digit(rest))
}

/// UPU S10: weights 8,6,4,2,3,5,9,7 modulo 11; remainders 0 and 1 map to 5 and 0.
fn s10(serial: &[u8]) -> Option<u8> {
    const WEIGHTS: [u32; 8] = [8, 6, 4, 2, 3, 5, 9, 7];
    if serial.len() != WEIGHTS.len() {
        return None;
    }
    let mut sum = 0u32;
    for (&c, w) in serial.iter().zip(WEIGHTS) {
        sum += digit(c)? * w;
    }
    let check = match sum % 11 {
        0 => 5,
        1 => 0,
        r => 11 - r,
    };
    Some(to_ascii_digit(check))
}

/// Σ digit × weight, then modulo `modulo1` and modulo `modulo2` (FedEx Express 12/34).
fn sum_product(serial: &[u8], weights: &[u32], modulo1: u32, modulo2: u32) -> Option<u8> {
    if weights.is_empty() || modulo1 == 0 || modulo2 == 0 || modulo2 > 10 {
        return None;
    }
    let mut sum: u64 = 0;
    for (i, &c) in serial.iter().enumerate() {
        sum += u64::from(digit(c)?) * u64::from(weights[i % weights.len()]);
    }
    Some(to_ascii_digit(
        ((sum % u64::from(modulo1)) % u64::from(modulo2)) as u32,
    ))
}

/// ISO 7064 MOD 37,36 hybrid over 0-9A-Z (DPD); the check character may be a letter.
fn mod37_36(serial: &[u8]) -> Option<u8> {
    const ALPHABET: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut p: u32 = 36;
    for &c in serial {
        let value = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A'..=b'Z' => u32::from(c - b'A') + 10,
            _ => return None,
        };
        p += value;
        if p > 36 {
            p -= 36;
        }
        p *= 2;
        if p > 36 {
            p -= 37;
        }
    }
    let c = (37 - p) % 36;
    ALPHABET.get(c as usize).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s10_matches_the_upu_examples() {
        assert_eq!(s10(b"12345678"), Some(b'5'));
        assert_eq!(s10(b"00071758"), Some(b'1'));
        assert_eq!(s10(b"96633102"), Some(b'0'));
        assert_eq!(s10(b"76129403"), Some(b'8'));
    }

    #[test]
    fn ups_mod10_counts_letters() {
        // 1Z5R89390357567127: serial after 1Z, check 7.
        assert_eq!(mod10(b"5R8939035756712", 1, 2, false), Some(b'7'));
    }

    #[test]
    fn luhn_matches_the_textbook_example() {
        assert_eq!(luhn(b"7992739871"), Some(b'3'));
    }

    #[test]
    fn mod7_handles_long_serials() {
        assert_eq!(mod7(b"331881001"), Some(b'4'));
        assert_eq!(
            mod7(&[b'9'; 60]),
            Some(b'0' + (0..60).fold(0u32, |r, _| (r * 10 + 9) % 7) as u8)
        );
    }

    #[test]
    fn mod37_36_gives_letter_check_characters() {
        assert_eq!(mod37_36(b"09980000020033"), Some(b'F'));
    }

    #[test]
    fn non_digits_fail_instead_of_panicking() {
        assert_eq!(luhn(b"12A4"), None);
        assert_eq!(s10(b"1234567"), None);
        assert_eq!(sum_product(b"12", &[], 11, 10), None);
        assert_eq!(mod37_36(b"12-4"), None);
    }
}
