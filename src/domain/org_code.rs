//! 组织机构代码 (GB 11714-1997): nine characters, eight body characters plus a mod-11 check.
//!
//! Also used inside a USCC, whose characters 9–17 are an organisation code with its own check.

use std::fmt;

use super::IdError;

const WEIGHTS: [u32; 8] = [3, 7, 9, 10, 5, 8, 4, 2];

/// A GB 11714 organisation code with a correct check character.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrgCode(String);

/// Value of a body character: digits are 0–9, letters A=10 … Z=35 (all 26, unlike GB 32100).
fn value(c: u8) -> Option<u32> {
    match c {
        b'0'..=b'9' => Some(u32::from(c - b'0')),
        b'A'..=b'Z' => Some(u32::from(c - b'A') + 10),
        _ => None,
    }
}

impl OrgCode {
    /// The check character for an eight-character body, or `None` when a character is outside
    /// `0-9A-Z`.
    ///
    /// `c = 11 − (Σ mod 11)`, with c = 10 → `X` and c = 11 → `0`. The 11 → `0` case is the one
    /// wenerme/go-gb misses (it yields no valid character when the sum is a multiple of 11).
    pub fn check_char(body: &str) -> Option<char> {
        let bytes = body.as_bytes();
        if bytes.len() != 8 {
            return None;
        }
        let mut sum = 0u32;
        for (b, w) in bytes.iter().zip(WEIGHTS) {
            sum += value(*b)? * w;
        }
        Some(match 11 - sum % 11 {
            11 => '0',
            10 => 'X',
            c => char::from(b'0' + c as u8),
        })
    }

    pub fn parse(s: &str) -> Result<OrgCode, IdError> {
        let bytes = s.as_bytes();
        let body_ok = bytes.len() == 9 && bytes[..8].iter().all(|b| value(*b).is_some());
        let check_ok = bytes.len() == 9 && (bytes[8].is_ascii_digit() || bytes[8] == b'X');
        if !body_ok || !check_ok {
            return Err(IdError::new(
                "ORG_CODE_FORMAT",
                format!(
                    "organisation code `{s}` must be 8 characters 0-9/A-Z plus a check character 0-9 or X (GB 11714)"
                ),
            ));
        }
        let expected = Self::check_char(&s[..8]).ok_or_else(|| {
            IdError::new(
                "ORG_CODE_FORMAT",
                format!("organisation code `{s}` has an invalid character"),
            )
        })?;
        if char::from(bytes[8]) != expected {
            return Err(IdError::new(
                "ORG_CODE_CHECK_DIGIT",
                format!(
                    "organisation code `{s}` ends in `{}` but its check character is `{expected}` (GB 11714)",
                    char::from(bytes[8])
                ),
            ));
        }
        Ok(OrgCode(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrgCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for OrgCode {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn table() {
        let cases: &[(&str, Result<(), &str>)] = &[
            // Chars 9–17 of the valid USCC vectors of REFERENCE §8.1.
            ("776049653", Ok(())),
            ("072831954", Ok(())),
            ("MA5CJQ4N5", Ok(())),
            ("MA1B3N1N2", Ok(())),
            ("001755309", Ok(())),
            ("776049654", Err("ORG_CODE_CHECK_DIGIT")),
            ("77604965", Err("ORG_CODE_FORMAT")),
            ("7760496534", Err("ORG_CODE_FORMAT")),
            ("77604965a", Err("ORG_CODE_FORMAT")),
            ("7760-9653", Err("ORG_CODE_FORMAT")),
            ("77604965Y", Err("ORG_CODE_FORMAT")),
        ];
        for (input, want) in cases {
            let got = OrgCode::parse(input).map(|_| ()).map_err(|e| e.code);
            assert_eq!(got, *want, "{input}");
        }
    }

    #[test]
    fn check_value_eleven_maps_to_zero_and_ten_to_x() {
        // "00000000": Σ = 0 → c = 11 − 0 = 11 → '0'. go-gb yields no character here.
        assert_eq!(OrgCode::check_char("00000000"), Some('0'));
        assert!(OrgCode::parse("000000000").is_ok());
        assert_eq!(
            OrgCode::parse("00000000X").unwrap_err().code,
            "ORG_CODE_CHECK_DIGIT"
        );
        // "00000006": Σ = 6·2 = 12 → 12 mod 11 = 1 → c = 10 → 'X'.
        assert_eq!(OrgCode::check_char("00000006"), Some('X'));
        assert!(OrgCode::parse("00000006X").is_ok());
        assert_eq!(
            OrgCode::parse("000000060").unwrap_err().code,
            "ORG_CODE_CHECK_DIGIT"
        );
    }

    proptest! {
        #[test]
        fn body_plus_its_check_char_parses(body in "[0-9A-Z]{8}") {
            let c = OrgCode::check_char(&body).unwrap();
            let code = format!("{body}{c}");
            prop_assert!(OrgCode::parse(&code).is_ok());
            for other in "0123456789X".chars().filter(|o| *o != c) {
                let bad = format!("{body}{other}");
                prop_assert_eq!(OrgCode::parse(&bad).unwrap_err().code, "ORG_CODE_CHECK_DIGIT");
            }
        }
    }
}
