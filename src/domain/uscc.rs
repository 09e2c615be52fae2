//! 统一社会信用代码 (GB 32100-2015): the key of every organisation in the national records.
//!
//! Layout: pos 1 registration department, pos 2 kind, pos 3–8 GB/T 2260 division of the
//! registering authority, pos 9–17 the GB 11714 organisation code (with its own check), pos 18 a
//! mod-31 check character.

use std::fmt;

use super::{IdError, OrgCode};

/// The 31 characters of GB 32100 (no I, O, S, V, Z); a character's value is its index.
const CHARSET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
/// 3^(i) mod 31 for positions 1..17.
const WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

/// The placeholder the 双公示 standard prescribes for a 个体工商户 without a USCC. It fails the
/// checksum, so only [`Uscc::parse_party`] accepts it (and then a registration number is required).
pub const USCC_PLACEHOLDER: &str = "00000000000000000X";

/// Codes that fail the checksum yet belong to real, registered subjects (a public validator
/// whitelists these). Refusing them would drop genuine records, so party codes accept them.
pub const KNOWN_BAD_REAL_USCCS: &[&str] = &["91350203M0001QAY9B"];

/// A unified social credit code: 18 characters, correct check characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uscc(String);

fn value(c: u8) -> Option<u32> {
    CHARSET.iter().position(|x| *x == c).map(|p| p as u32)
}

impl Uscc {
    /// The check character for a 17-character prefix, or `None` when the prefix is not 17
    /// characters of the GB 32100 charset.
    ///
    /// `c = (31 − Σ mod 31) mod 31`: the final `mod 31` maps a sum that is a multiple of 31 to
    /// `0`, where wenerme/go-gb produces the out-of-range value 31.
    pub fn check_char(first17: &str) -> Option<char> {
        let bytes = first17.as_bytes();
        if bytes.len() != 17 {
            return None;
        }
        let mut sum = 0u32;
        for (b, w) in bytes.iter().zip(WEIGHTS) {
            sum += value(*b)? * w;
        }
        let c = (31 - sum % 31) % 31;
        Some(char::from(CHARSET[c as usize]))
    }

    /// A checksum-valid USCC. The placeholder and the whitelisted real-but-bad codes are refused:
    /// agencies and rated parties must carry a real, valid code.
    pub fn parse(s: &str) -> Result<Uscc, IdError> {
        check_format(s)?;
        let expected = Self::check_char(&s[..17]).ok_or_else(|| format_error(s))?;
        let actual = char::from(s.as_bytes()[17]);
        if actual != expected {
            let hint = if s == USCC_PLACEHOLDER {
                " (this is the 个体工商户 placeholder, allowed only for a party)"
            } else {
                ""
            };
            return Err(IdError::new(
                "USCC_CHECK_DIGIT",
                format!(
                    "USCC `{s}` ends in `{actual}` but its check character is `{expected}` (GB 32100){hint}"
                ),
            ));
        }
        if let Err(e) = OrgCode::parse(&s[8..17]) {
            return Err(IdError::new(
                "USCC_ORG_CODE_CHECK_DIGIT",
                format!(
                    "USCC `{s}`: characters 9–17 are not a valid GB 11714 organisation code: {e}"
                ),
            ));
        }
        Ok(Uscc(s.to_owned()))
    }

    /// A party's code: a valid USCC, the 个体工商户 placeholder, or a whitelisted real code that
    /// fails the checksum.
    pub fn parse_party(s: &str) -> Result<Uscc, IdError> {
        if s == USCC_PLACEHOLDER || KNOWN_BAD_REAL_USCCS.contains(&s) {
            return Ok(Uscc(s.to_owned()));
        }
        Self::parse(s)
    }

    pub fn is_placeholder(&self) -> bool {
        self.0 == USCC_PLACEHOLDER
    }

    /// Characters 3–8: the GB/T 2260 division of the registering authority (not validated: it
    /// is the division at registration time, which may since have been renumbered).
    pub fn division_code(&self) -> &str {
        &self.0[2..8]
    }

    /// Characters 9–17: the embedded organisation code.
    pub fn org_code(&self) -> &str {
        &self.0[8..17]
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn format_error(s: &str) -> IdError {
    IdError::new(
        "USCC_FORMAT",
        format!(
            "USCC `{s}` must be 18 characters: 2 of 0-9A-HJ-NPQRTUWXY, 6 digits, 10 of 0-9A-HJ-NPQRTUWXY (GB 32100)"
        ),
    )
}

/// `^[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}$` without a regex engine.
fn check_format(s: &str) -> Result<(), IdError> {
    let b = s.as_bytes();
    let ok = b.len() == 18
        && b[..2].iter().all(|c| value(*c).is_some())
        && b[2..8].iter().all(u8::is_ascii_digit)
        && b[8..].iter().all(|c| value(*c).is_some());
    if ok { Ok(()) } else { Err(format_error(s)) }
}

impl fmt::Display for Uscc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Uscc {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Verdict = Result<(), &'static str>;

    #[test]
    fn reference_vectors() {
        let cases: &[(&str, Verdict, Verdict)] = &[
            // (code, parse, parse_party)
            ("91350200776049653A", Ok(()), Ok(())),
            ("913502000728319549", Ok(()), Ok(())),
            ("91440101MA5CJQ4N59", Ok(()), Ok(())),
            ("91230500MA1B3N1N2M", Ok(()), Ok(())),
            ("11230500001755309F", Ok(()), Ok(())),
            // Invalid checksum but real: whitelisted for parties only.
            ("91350203M0001QAY9B", Err("USCC_CHECK_DIGIT"), Ok(())),
            // The 个体工商户 placeholder.
            ("00000000000000000X", Err("USCC_CHECK_DIGIT"), Ok(())),
            // Fixture codes of schemas/v1/examples (computed check characters).
            ("11620822MB1234562Y", Ok(()), Ok(())),
            ("91620822MA71AB128P", Ok(()), Ok(())),
            ("92620822MA72CD3446", Ok(()), Ok(())),
            (
                "91350200776049653B",
                Err("USCC_CHECK_DIGIT"),
                Err("USCC_CHECK_DIGIT"),
            ),
            ("9135020077604965", Err("USCC_FORMAT"), Err("USCC_FORMAT")),
            (
                "91350200776049653AA",
                Err("USCC_FORMAT"),
                Err("USCC_FORMAT"),
            ),
            ("9135020077604965IA", Err("USCC_FORMAT"), Err("USCC_FORMAT")),
            ("91350200776049653a", Err("USCC_FORMAT"), Err("USCC_FORMAT")),
            ("913502A0776049653A", Err("USCC_FORMAT"), Err("USCC_FORMAT")),
            ("", Err("USCC_FORMAT"), Err("USCC_FORMAT")),
            (
                "９１350200776049653",
                Err("USCC_FORMAT"),
                Err("USCC_FORMAT"),
            ),
        ];
        for (code, parse, party) in cases {
            assert_eq!(
                Uscc::parse(code).map(|_| ()).map_err(|e| e.code),
                *parse,
                "parse {code}"
            );
            assert_eq!(
                Uscc::parse_party(code).map(|_| ()).map_err(|e| e.code),
                *party,
                "parse_party {code}"
            );
        }
    }

    #[test]
    fn sum_multiple_of_31_gives_check_char_zero() {
        // Σ mod 31 = 0 here; go-gb computes 31 − 0 = 31 and rejects every such code.
        let prefix = "91620822MA0000074";
        let sum: u32 = prefix
            .bytes()
            .zip(WEIGHTS)
            .map(|(b, w)| value(b).unwrap() * w)
            .sum();
        assert_eq!(sum % 31, 0);
        assert_eq!(Uscc::check_char(prefix), Some('0'));
        assert!(Uscc::parse("91620822MA00000740").is_ok());
    }

    #[test]
    fn embedded_org_code_must_pass_gb11714() {
        // Build a code whose USCC check char is right but whose chars 9–17 are not a valid org
        // code: take a valid org body and a wrong org check char, then recompute pos 18.
        let first17 = "91620822MA71AB129";
        let c = Uscc::check_char(first17).unwrap();
        let code = format!("{first17}{c}");
        assert_eq!(
            Uscc::parse(&code).unwrap_err().code,
            "USCC_ORG_CODE_CHECK_DIGIT"
        );
    }

    #[test]
    fn accessors() {
        let u = Uscc::parse("91350200776049653A").unwrap();
        assert_eq!(u.division_code(), "350200");
        assert_eq!(u.org_code(), "776049653");
        assert!(!u.is_placeholder());
        assert!(
            Uscc::parse_party(USCC_PLACEHOLDER)
                .unwrap()
                .is_placeholder()
        );
        assert_eq!(u.to_string(), "91350200776049653A");
    }

    /// A 17-character prefix whose characters 9–17 form a valid organisation code.
    fn prefix17() -> impl Strategy<Value = String> {
        (
            "[0-9A-HJ-NPQRTUWXY]{2}",
            "[0-9]{6}",
            "[0-9A-HJ-NPQRTUWXY]{8}",
        )
            .prop_map(|(a, b, body)| {
                let org = OrgCode::check_char(&body).unwrap();
                format!("{a}{b}{body}{org}")
            })
    }

    proptest! {
        #[test]
        fn prefix_plus_check_char_parses(p in prefix17()) {
            let c = Uscc::check_char(&p).unwrap();
            let code = format!("{p}{c}");
            prop_assert!(Uscc::parse(&code).is_ok(), "{}", code);
            let parsed = Uscc::parse(&code).unwrap();
            prop_assert_eq!(parsed.division_code(), &p[2..8]);
        }

        #[test]
        fn changing_the_check_char_fails(p in prefix17(), idx in 0usize..31) {
            let c = Uscc::check_char(&p).unwrap();
            let other = char::from(CHARSET[idx]);
            prop_assume!(other != c);
            let code = format!("{p}{other}");
            prop_assert_eq!(Uscc::parse(&code).unwrap_err().code, "USCC_CHECK_DIGIT");
        }

        #[test]
        fn any_17_char_prefix_has_a_check_char(p in "[0-9A-HJ-NPQRTUWXY]{17}") {
            let c = Uscc::check_char(&p).unwrap();
            prop_assert!(CHARSET.contains(&(c as u8)));
        }

        #[test]
        fn arbitrary_strings_never_panic(s in "\\PC{0,24}") {
            let _ = Uscc::parse(&s);
            let _ = Uscc::parse_party(&s);
        }
    }
}
