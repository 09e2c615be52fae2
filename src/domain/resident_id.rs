//! 公民身份号码 (GB 11643-1999): the id_number of natural persons, officers and legal
//! representatives. Personal data: the feeds mask it (REFERENCE §10), never log it in full.

use std::fmt;

use chrono::NaiveDate;

use super::{IdError, division::is_province, today_cn};

/// 2^(18−i) mod 11 for positions 1..17.
const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK: &[u8; 11] = b"10X98765432";

/// An 18-character resident identity number with a correct check character, a real birth date
/// not in the future, and an address code in a real province.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResidentId {
    value: String,
    birth: NaiveDate,
}

/// Shows only the address code so a stray `{:?}` cannot leak the number into logs.
impl fmt::Debug for ResidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResidentId({}************)", &self.value[..6])
    }
}

/// The id is redacted in messages: the failure store is read by operators who need the reason,
/// not the number (the raw payload is kept separately).
fn redact(s: &str) -> String {
    let head: String = s.chars().take(6).collect();
    format!("{head}…({} chars)", s.chars().count())
}

impl ResidentId {
    /// The check character for the first 17 digits, or `None` when they are not 17 digits.
    pub fn check_char(first17: &str) -> Option<char> {
        let b = first17.as_bytes();
        if b.len() != 17 || !b.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let sum: u32 = b
            .iter()
            .zip(WEIGHTS)
            .map(|(d, w)| u32::from(d - b'0') * w)
            .sum();
        Some(char::from(CHECK[(sum % 11) as usize]))
    }

    /// Parses an 18-character id. The check character must be an upper-case `X` (normalisers
    /// upper-case upstream values first, so that stored ids compare equal).
    pub fn parse(s: &str) -> Result<ResidentId, IdError> {
        Self::parse_at(s, today_cn())
    }

    /// [`ResidentId::parse`] with an explicit "today" for the birth-date check.
    pub fn parse_at(s: &str, today: NaiveDate) -> Result<ResidentId, IdError> {
        let b = s.as_bytes();
        if b.len() != 18
            || !b[..17].iter().all(u8::is_ascii_digit)
            || !(b[17].is_ascii_digit() || b[17] == b'X')
        {
            return Err(IdError::new(
                "RESIDENT_ID_FORMAT",
                format!(
                    "resident id `{}` must be 17 digits plus a digit or X (GB 11643)",
                    redact(s)
                ),
            ));
        }
        let expected = Self::check_char(&s[..17]).unwrap_or('?');
        if char::from(b[17]) != expected {
            return Err(IdError::new(
                "RESIDENT_ID_CHECK_DIGIT",
                format!(
                    "resident id `{}` has a wrong check character (GB 11643)",
                    redact(s)
                ),
            ));
        }
        if !is_province(&s[..2]) {
            return Err(IdError::new(
                "RESIDENT_ID_DIVISION",
                format!(
                    "resident id `{}`: address code `{}` is in no province (GB/T 2260)",
                    redact(s),
                    &s[..6]
                ),
            ));
        }
        let birth = NaiveDate::parse_from_str(&s[6..14], "%Y%m%d").map_err(|_| {
            IdError::new(
                "RESIDENT_ID_BIRTH_DATE",
                format!(
                    "resident id `{}`: birth date is not a calendar date",
                    redact(s)
                ),
            )
        })?;
        if birth > today {
            return Err(IdError::new(
                "RESIDENT_ID_BIRTH_DATE",
                format!(
                    "resident id `{}`: birth date is after today ({today})",
                    redact(s)
                ),
            ));
        }
        Ok(ResidentId {
            value: s.to_owned(),
            birth,
        })
    }

    /// Upgrades a 15-digit first-generation id (address 6, birth `YYMMDD`, sequence 3): insert
    /// `19` before the birth year and append the check character.
    pub fn parse_legacy15(s: &str) -> Result<ResidentId, IdError> {
        if s.len() != 15 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdError::new(
                "RESIDENT_ID_FORMAT",
                format!("legacy resident id `{}` must be 15 digits", redact(s)),
            ));
        }
        let first17 = format!("{}19{}", &s[..6], &s[6..]);
        let check = Self::check_char(&first17).unwrap_or('?');
        Self::parse(&format!("{first17}{check}"))
    }

    pub fn birth_date(&self) -> NaiveDate {
        self.birth
    }

    /// The sequence number (digits 15–17) is odd for men.
    pub fn is_male(&self) -> bool {
        (self.value.as_bytes()[16] - b'0') % 2 == 1
    }

    /// The six-digit address code at issue time; it may be a retired code (Pingliang ids issued
    /// before 2002 start with 6227, the old 平凉地区), so it is not a [`super::DivisionCode`].
    pub fn division(&self) -> &str {
        &self.value[..6]
    }

    pub fn as_str(&self) -> &str {
        &self.value
    }
}

impl AsRef<str> for ResidentId {
    fn as_ref(&self) -> &str {
        &self.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn table() {
        let cases: &[(&str, Result<(), &str>)] = &[
            ("11010519491231002X", Ok(())),
            ("620822199001011237", Ok(())),
            ("620822198503150048", Ok(())),
            ("620822199001011238", Err("RESIDENT_ID_CHECK_DIGIT")),
            ("11010519491231002x", Err("RESIDENT_ID_FORMAT")),
            ("6208221990010112", Err("RESIDENT_ID_FORMAT")),
            ("62082219900101123X7", Err("RESIDENT_ID_FORMAT")),
            ("62082219900A011237", Err("RESIDENT_ID_FORMAT")),
            ("", Err("RESIDENT_ID_FORMAT")),
        ];
        for (id, want) in cases {
            assert_eq!(
                ResidentId::parse(id).map(|_| ()).map_err(|e| e.code),
                *want,
                "{id}"
            );
        }
    }

    fn with_check(first17: &str) -> String {
        format!("{first17}{}", ResidentId::check_char(first17).unwrap())
    }

    #[test]
    fn birth_date_must_be_real_and_past() {
        let today = NaiveDate::from_ymd_opt(2025, 6, 1).unwrap();
        let feb30 = with_check("62082219900230123");
        assert_eq!(
            ResidentId::parse_at(&feb30, today).unwrap_err().code,
            "RESIDENT_ID_BIRTH_DATE"
        );
        let future = with_check("62082220250602123");
        assert_eq!(
            ResidentId::parse_at(&future, today).unwrap_err().code,
            "RESIDENT_ID_BIRTH_DATE"
        );
        let born_today = with_check("62082220250601123");
        assert!(ResidentId::parse_at(&born_today, today).is_ok());
        let leap = with_check("62082220000229123");
        assert!(ResidentId::parse_at(&leap, today).is_ok());
    }

    #[test]
    fn address_code_must_be_in_a_province() {
        let id = with_check("99082219900101123");
        assert_eq!(
            ResidentId::parse(&id).unwrap_err().code,
            "RESIDENT_ID_DIVISION"
        );
        // A retired prefecture code (old 平凉地区 6227) is fine: ids keep their issue-time code.
        assert!(ResidentId::parse(&with_check("62272219900101123")).is_ok());
    }

    #[test]
    fn accessors() {
        let id = ResidentId::parse("620822199001011237").unwrap();
        assert_eq!(
            id.birth_date(),
            NaiveDate::from_ymd_opt(1990, 1, 1).unwrap()
        );
        assert!(id.is_male());
        assert_eq!(id.division(), "620822");
        let woman = ResidentId::parse("11010519491231002X").unwrap();
        assert!(!woman.is_male());
        assert!(!format!("{woman:?}").contains("19491231"));
    }

    #[test]
    fn legacy_15_digit_ids_upgrade() {
        // 620822 900101 123 → 620822 19900101 123 7
        let id = ResidentId::parse_legacy15("620822900101123").unwrap();
        assert_eq!(id.as_str(), "620822199001011237");
        assert_eq!(
            ResidentId::parse_legacy15("62082290010112")
                .unwrap_err()
                .code,
            "RESIDENT_ID_FORMAT"
        );
        assert_eq!(
            ResidentId::parse_legacy15("620822900231123")
                .unwrap_err()
                .code,
            "RESIDENT_ID_BIRTH_DATE"
        );
    }

    proptest! {
        #[test]
        fn valid_ids_round_trip(
            province in prop::sample::select(vec!["11", "35", "44", "62", "65"]),
            rest in "[0-9]{4}",
            days in 0i64..(365 * 120),
            seq in "[0-9]{3}",
        ) {
            let birth = NaiveDate::from_ymd_opt(1900, 1, 1).unwrap() + chrono::TimeDelta::days(days);
            let first17 = format!("{province}{rest}{}{seq}", birth.format("%Y%m%d"));
            let id = with_check(&first17);
            let parsed = ResidentId::parse_at(&id, NaiveDate::from_ymd_opt(2030, 1, 1).unwrap()).unwrap();
            prop_assert_eq!(parsed.birth_date(), birth);
            prop_assert_eq!(parsed.is_male(), (seq.as_bytes()[2] - b'0') % 2 == 1);
            for other in CHECK.iter().map(|c| char::from(*c)).filter(|c| *c != id.chars().last().unwrap()) {
                let bad = format!("{first17}{other}");
                prop_assert_eq!(ResidentId::parse(&bad).unwrap_err().code, "RESIDENT_ID_CHECK_DIGIT");
            }
        }
    }
}
