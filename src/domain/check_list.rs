//! 监管事项检查实施清单编码 (互联网+监管): the USCC of the implementing agency, one type digit 1–5,
//! then a sequence (REFERENCE §2.1, §2.5). Carried by inspections to link them to the catalogue.

use std::fmt;

use super::{IdError, Uscc};

/// A check-list code whose first 18 characters are a valid USCC.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CheckListCode(String);

impl CheckListCode {
    pub fn parse(s: &str) -> Result<CheckListCode, IdError> {
        let fail = |why: String| {
            IdError::new(
                "CHECK_LIST_CODE_FORMAT",
                format!("check-list code `{s}` {why}"),
            )
        };
        let b = s.as_bytes();
        if b.len() < 20 || b.len() > 800 || !b.is_ascii() {
            return Err(fail(
                "must be a USCC, a type digit 1–5 and a sequence (20–800 ASCII characters)".into(),
            ));
        }
        Uscc::parse(&s[..18])
            .map_err(|e| fail(format!("does not start with a valid USCC: {e}")))?;
        if !(b'1'..=b'5').contains(&b[18]) {
            return Err(fail(format!(
                "has type digit `{}` (expected 1–5)",
                char::from(b[18])
            )));
        }
        if !b[19..].iter().all(u8::is_ascii_alphanumeric) {
            return Err(fail(
                "has a sequence part that is not letters and digits".into(),
            ));
        }
        Ok(CheckListCode(s.to_owned()))
    }

    /// The USCC of the implementing agency.
    pub fn agency_uscc(&self) -> &str {
        &self.0[..18]
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CheckListCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases: &[(&str, bool)] = &[
            ("11620822MB1234562Y1000001", true),
            ("11620822MB1234562Y5A01", true),
            ("11620822MB1234562Y6000001", false),
            ("11620822MB1234562Y0000001", false),
            ("11620822MB1234562Z1000001", false),
            ("11620822MB1234562Y1", false),
            ("11620822MB1234562Y1-01", false),
            ("", false),
        ];
        for (code, ok) in cases {
            let got = CheckListCode::parse(code);
            assert_eq!(got.is_ok(), *ok, "{code}");
            if let Err(e) = got {
                assert_eq!(e.code, "CHECK_LIST_CODE_FORMAT");
            }
        }
        assert_eq!(
            CheckListCode::parse("11620822MB1234562Y1000001")
                .unwrap()
                .agency_uscc(),
            "11620822MB1234562Y"
        );
    }
}
