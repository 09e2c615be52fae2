//! Simulator primitives: the deterministic random source, the upstream organisations' own
//! check-digit generators, dates, and a tiny value model with JSON / XML / CSV writers.
//!
//! The simulators deliberately do not reuse the pipeline's identifier validators: they stand for
//! other organisations' systems, so a bug in our validators must not be mirrored here.

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use std::borrow::Cow;

/// SplitMix64 finaliser: a cheap, well-mixed hash of one word.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Hash of several words; every record's randomness is derived from (seed, stream, index, salt).
pub fn hash(parts: &[u64]) -> u64 {
    parts
        .iter()
        .fold(0x5851_F42D_4C95_7F2D, |acc, p| mix(acc ^ mix(*p)))
}

/// A uniform draw in [0, 1) from a hash.
pub fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// Deterministic random source for one record (SplitMix64 stream).
pub struct Rng(u64);

impl Rng {
    pub fn new(parts: &[u64]) -> Rng {
        Rng(hash(parts))
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }
    /// Uniform in [0, n); n must be > 0.
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next() as u128 * n as u128) >> 64) as u64
    }
    pub fn range(&mut self, lo: i64, hi_inclusive: i64) -> i64 {
        lo + self.below((hi_inclusive - lo + 1) as u64) as i64
    }
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
    pub fn chance(&mut self, p: f64) -> bool {
        unit(self.next()) < p
    }
}

// ---------- identifiers (GB 32100, GB 11714, GB 11643) ----------

pub const USCC_CHARSET: &[u8] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
const USCC_WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];
const ORG_WEIGHTS: [u32; 8] = [3, 7, 9, 10, 5, 8, 4, 2];
const RID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
pub const RID_CHECKS: &[u8] = b"10X98765432";

/// Check character of a USCC over its first 17 characters (all from the USCC charset).
pub fn uscc_check(first17: &[u8]) -> u8 {
    let sum: u32 = first17
        .iter()
        .zip(USCC_WEIGHTS)
        .map(|(c, w)| USCC_CHARSET.iter().position(|x| x == c).unwrap_or(0) as u32 * w)
        .sum();
    USCC_CHARSET[((31 - sum % 31) % 31) as usize]
}

/// Check character of an organisation code body of 8 characters (digits / capital letters).
pub fn org_code_check(body8: &[u8]) -> u8 {
    let sum: u32 = body8
        .iter()
        .zip(ORG_WEIGHTS)
        .map(|(c, w)| {
            let v = if c.is_ascii_digit() {
                c - b'0'
            } else {
                c - b'A' + 10
            };
            v as u32 * w
        })
        .sum();
    match 11 - sum % 11 {
        10 => b'X',
        11 => b'0',
        c => b'0' + c as u8,
    }
}

/// A bijection on [0, 10^8) so that distinct subject indices give distinct organisation codes.
pub fn permute8(n: u64, seed: u64) -> u64 {
    ((n as u128 * 48_271 + (seed % 100_000_000) as u128 * 7 + 13) % 100_000_000) as u64
}

/// Organisation code (9 chars) from an 8-digit body number.
pub fn org_code(body: u64) -> String {
    let mut s = format!("{:08}", body % 100_000_000).into_bytes();
    let c = org_code_check(&s);
    s.push(c);
    String::from_utf8(s).unwrap_or_default()
}

/// USCC `<prefix2><division6><org code 9><check>`.
pub fn uscc(prefix2: &str, division: &str, org: &str) -> String {
    let mut s = String::with_capacity(18);
    s.push_str(prefix2);
    s.push_str(division);
    s.push_str(org);
    let c = uscc_check(s.as_bytes());
    s.push(c as char);
    s
}

/// Resident ID (GB 11643) from division, birth date and 3-digit sequence.
pub fn resident_id(division: &str, birth: NaiveDate, seq: u32) -> String {
    let mut s = format!(
        "{}{:04}{:02}{:02}{:03}",
        division,
        birth.year(),
        birth.month(),
        birth.day(),
        seq % 1000
    );
    let sum: u32 = s
        .bytes()
        .zip(RID_WEIGHTS)
        .map(|(c, w)| (c - b'0') as u32 * w)
        .sum();
    s.push(RID_CHECKS[(sum % 11) as usize] as char);
    s
}

/// Replaces the last (check) character with another one of the charset: a wrong check digit.
pub fn corrupt_check(s: &str, charset: &[u8]) -> String {
    let mut b = s.as_bytes().to_vec();
    if let Some(last) = b.last_mut() {
        let pos = charset.iter().position(|c| c == last).unwrap_or(0);
        *last = charset[(pos + 7) % charset.len()];
    }
    String::from_utf8(b).unwrap_or_default()
}

/// Whether `s` is a USCC (18 characters of the GB 32100 charset) with the right check character.
/// Used on pushes, where the upstream verifies what it is sent.
pub fn uscc_valid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 18 && b.iter().all(|c| USCC_CHARSET.contains(c)) && uscc_check(&b[..17]) == b[17]
}

/// Whether `s` is an organisation code (8 digits / capital letters + check character, GB 11714).
pub fn org_code_valid(s: &str) -> bool {
    let b = s.as_bytes();
    // checked before `org_code_check`, whose arithmetic assumes this charset
    b.len() == 9
        && b[..8]
            .iter()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
        && org_code_check(&b[..8]) == b[8]
}

/// Whether `s` is an 18-character resident ID (GB 11643): 17 digits with a real birth date, and
/// the right check character (`X` upper case).
pub fn resident_id_valid(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 18 || !b[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    if parse_ymd(
        &format!("{}-{}-{}", &s[6..10], &s[10..12], &s[12..14]),
        b'-',
    )
    .is_none()
    {
        return false;
    }
    let sum: u32 = b[..17]
        .iter()
        .zip(RID_WEIGHTS)
        .map(|(c, w)| (c - b'0') as u32 * w)
        .sum();
    RID_CHECKS[(sum % 11) as usize] == b[17]
}

// ---------- dates ----------

pub fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
}

/// A date `days` after 2019-01-01.
pub fn day(days: i64) -> NaiveDate {
    date(2019, 1, 1) + Duration::days(days)
}

pub fn at(d: NaiveDate, secs_of_day: u32) -> NaiveDateTime {
    d.and_time(
        NaiveTime::from_num_seconds_from_midnight_opt(secs_of_day % 86_400, 0).unwrap_or_default(),
    )
}

pub fn ymd(d: NaiveDate, sep: char) -> String {
    format!("{:04}{sep}{:02}{sep}{:02}", d.year(), d.month(), d.day())
}

pub fn ymd_compact(d: NaiveDate) -> String {
    format!("{:04}{:02}{:02}", d.year(), d.month(), d.day())
}

pub fn dt(t: NaiveDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

pub fn dt_compact(t: NaiveDateTime) -> String {
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Strict `YYYY<sep>MM<sep>DD` (two-digit month and day), a real calendar date.
pub fn parse_ymd(s: &str, sep: u8) -> Option<NaiveDate> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if b.len() != 10
        || b[4] != sep
        || b[7] != sep
        || !digits(0..4)
        || !digits(5..7)
        || !digits(8..10)
    {
        return None;
    }
    NaiveDate::from_ymd_opt(
        s[0..4].parse().ok()?,
        s[5..7].parse().ok()?,
        s[8..10].parse().ok()?,
    )
}

/// Strict `YYYY-MM-DD HH:mm:ss`, a real local time.
pub fn parse_dt(s: &str) -> Option<NaiveDateTime> {
    let b = s.as_bytes();
    if b.len() != 19 || b[10] != b' ' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if ![11..13, 14..16, 17..19]
        .into_iter()
        .all(|r| b[r].iter().all(u8::is_ascii_digit))
    {
        return None;
    }
    let d = parse_ymd(&s[..10], b'-')?;
    let t = NaiveTime::from_hms_opt(
        s[11..13].parse().ok()?,
        s[14..16].parse().ok()?,
        s[17..19].parse().ok()?,
    )?;
    Some(d.and_time(t))
}

/// Epoch milliseconds of a Beijing local time.
pub fn epoch_ms(t: NaiveDateTime) -> i64 {
    (t - Duration::hours(8)).and_utc().timestamp_millis()
}

/// 元 (integer) → 万元 decimal text, exact (2000 → "0.2").
pub fn wan_yuan(yuan: u64) -> String {
    let whole = yuan / 10_000;
    let frac = yuan % 10_000;
    if frac == 0 {
        return whole.to_string();
    }
    let f = format!("{frac:04}");
    format!("{whole}.{}", f.trim_end_matches('0'))
}

// ---------- values ----------

/// One upstream field value. Numbers are kept as their exact JSON text.
#[derive(Clone, Debug)]
pub enum V {
    S(Cow<'static, str>),
    Num(String),
    Bool(bool),
    Null,
    Arr(Vec<V>),
    Obj(Vec<(&'static str, V)>),
}

impl V {
    pub fn s(s: impl Into<Cow<'static, str>>) -> V {
        V::S(s.into())
    }
    pub fn n(n: impl ToString) -> V {
        V::Num(n.to_string())
    }
    /// Text of a scalar (for XML / CSV).
    pub fn text(&self) -> Cow<'_, str> {
        match self {
            V::S(s) => Cow::Borrowed(s),
            V::Num(n) => Cow::Borrowed(n),
            V::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
            V::Null => Cow::Borrowed(""),
            V::Arr(items) => Cow::Owned(
                items
                    .iter()
                    .map(|v| v.text().into_owned())
                    .collect::<Vec<_>>()
                    .join(";"),
            ),
            V::Obj(_) => Cow::Borrowed(""),
        }
    }
}

/// An upstream record: ordered fields, as the system serialises them.
#[derive(Clone, Debug, Default)]
pub struct Rec(pub Vec<(&'static str, V)>);

impl Rec {
    pub fn with_capacity(n: usize) -> Rec {
        Rec(Vec::with_capacity(n))
    }
    pub fn put(&mut self, k: &'static str, v: V) {
        self.0.push((k, v));
    }
    pub fn s(&mut self, k: &'static str, v: impl Into<Cow<'static, str>>) {
        self.0.push((k, V::S(v.into())));
    }
    pub fn get(&self, k: &str) -> Option<&V> {
        self.0.iter().find(|(key, _)| *key == k).map(|(_, v)| v)
    }
    pub fn set(&mut self, k: &'static str, v: V) {
        match self.0.iter_mut().find(|(key, _)| *key == k) {
            Some(slot) => slot.1 = v,
            None => self.0.push((k, v)),
        }
    }
    pub fn remove(&mut self, k: &str) {
        self.0.retain(|(key, _)| *key != k);
    }
}

pub fn json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    // Almost every upstream string needs no escaping; this scan vectorises, the loop below does not.
    if !bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\') {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            0..=0x1f => None,
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        match esc {
            Some(e) => out.extend_from_slice(e),
            None => out.extend_from_slice(format!("\\u{:04x}", b).as_bytes()),
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

pub fn json_value(out: &mut Vec<u8>, v: &V) {
    match v {
        V::S(s) => json_str(out, s),
        V::Num(n) => out.extend_from_slice(n.as_bytes()),
        V::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        V::Null => out.extend_from_slice(b"null"),
        V::Arr(items) => {
            out.push(b'[');
            for (i, it) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                json_value(out, it);
            }
            out.push(b']');
        }
        V::Obj(fields) => json_fields(out, fields),
    }
}

pub fn json_fields(out: &mut Vec<u8>, fields: &[(&'static str, V)]) {
    out.push(b'{');
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json_str(out, k);
        out.push(b':');
        json_value(out, v);
    }
    out.push(b'}');
}

pub fn xml_escape(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
}

/// Writes one record as `<Record><FIELD>text</FIELD>…</Record>`.
pub fn xml_record(out: &mut String, r: &Rec) {
    out.push_str("<Record>");
    for (k, v) in &r.0 {
        let t = v.text();
        if t.is_empty() {
            out.push('<');
            out.push_str(k);
            out.push_str("/>");
        } else {
            out.push('<');
            out.push_str(k);
            out.push('>');
            xml_escape(out, &t);
            out.push_str("</");
            out.push_str(k);
            out.push('>');
        }
    }
    out.push_str("</Record>");
}

/// One CSV field with RFC 4180 quoting.
pub fn csv_field(out: &mut String, s: &str) {
    if s.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uscc_vectors_from_reference() {
        for v in [
            "91350200776049653A",
            "913502000728319549",
            "91440101MA5CJQ4N59",
            "11230500001755309F",
        ] {
            assert_eq!(uscc_check(&v.as_bytes()[..17]), v.as_bytes()[17], "{v}");
            assert_eq!(
                org_code_check(&v.as_bytes()[8..16]),
                v.as_bytes()[16],
                "{v}"
            );
        }
    }

    #[test]
    fn resident_id_vectors() {
        assert_eq!(
            resident_id("110105", date(1949, 12, 31), 2),
            "11010519491231002X"
        );
        assert_eq!(
            resident_id("620822", date(1990, 1, 1), 123),
            "620822199001011237"
        );
        assert_ne!(
            corrupt_check("620822199001011237", RID_CHECKS),
            "620822199001011237"
        );
    }

    #[test]
    fn push_checks_accept_what_the_generators_make() {
        let id = resident_id("620822", date(1990, 1, 1), 123);
        assert!(resident_id_valid(&id));
        assert!(!resident_id_valid(&corrupt_check(&id, RID_CHECKS)));
        assert!(!resident_id_valid("620822199002301236"), "30 February");
        let u = uscc("91", "620822", &org_code(12_345_678));
        assert!(uscc_valid(&u));
        assert!(!uscc_valid(&corrupt_check(&u, USCC_CHARSET)));
        assert!(
            !uscc_valid("00000000000000000X"),
            "the placeholder is no USCC"
        );
        assert!(org_code_valid(&org_code(12_345_678)));
        assert!(!org_code_valid("1234567a9"));
        assert_eq!(parse_ymd("2024/02/29", b'/'), Some(date(2024, 2, 29)));
        for bad in ["2025/02/30", "2024/2/29", "2024-02-29", "2024/02/29 "] {
            assert_eq!(parse_ymd(bad, b'/'), None, "{bad}");
        }
        assert!(parse_dt("2024-02-29 23:59:59").is_some());
        assert!(parse_dt("2025-02-30 09:00:00").is_none());
        assert!(parse_dt("2024-02-29 24:00:00").is_none());
        assert!(parse_dt("2024-02-29T09:00:00").is_none());
    }

    #[test]
    fn wan_yuan_is_exact() {
        assert_eq!(wan_yuan(2000), "0.2");
        assert_eq!(wan_yuan(1500), "0.15");
        assert_eq!(wan_yuan(200), "0.02");
        assert_eq!(wan_yuan(50_000), "5");
        assert_eq!(wan_yuan(123_456), "12.3456");
    }

    #[test]
    fn json_escapes_controls_and_quotes() {
        let mut out = Vec::new();
        json_str(&mut out, "a\"b\\c\n\u{1}");
        assert_eq!(String::from_utf8(out).unwrap(), "\"a\\\"b\\\\c\\n\\u0001\"");
    }
}
