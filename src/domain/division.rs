//! GB/T 2260 行政区划代码 (six digits) and the NBS 统计用区划代码 of townships (nine or twelve).
//!
//! Every national record carries a `division_code`; it becomes three segments of the routing key
//! (`penalty.62.6208.620822.…`), so a wrong code misroutes a record. We know the full province
//! list, Gansu's prefectures and Pingliang's counties (REFERENCE §8.4); elsewhere we only check the
//! province, because shipping the whole national table is out of scope.

use std::fmt;

use super::IdError;

const PROVINCES: &[(&str, &str)] = &[
    ("11", "北京市"),
    ("12", "天津市"),
    ("13", "河北省"),
    ("14", "山西省"),
    ("15", "内蒙古自治区"),
    ("21", "辽宁省"),
    ("22", "吉林省"),
    ("23", "黑龙江省"),
    ("31", "上海市"),
    ("32", "江苏省"),
    ("33", "浙江省"),
    ("34", "安徽省"),
    ("35", "福建省"),
    ("36", "江西省"),
    ("37", "山东省"),
    ("41", "河南省"),
    ("42", "湖北省"),
    ("43", "湖南省"),
    ("44", "广东省"),
    ("45", "广西壮族自治区"),
    ("46", "海南省"),
    ("50", "重庆市"),
    ("51", "四川省"),
    ("52", "贵州省"),
    ("53", "云南省"),
    ("54", "西藏自治区"),
    ("61", "陕西省"),
    ("62", "甘肃省"),
    ("63", "青海省"),
    ("64", "宁夏回族自治区"),
    ("65", "新疆维吾尔自治区"),
    ("71", "台湾省"),
    ("81", "香港特别行政区"),
    ("82", "澳门特别行政区"),
];

const GANSU_PREFECTURES: &[(&str, &str)] = &[
    ("6201", "兰州市"),
    ("6202", "嘉峪关市"),
    ("6203", "金昌市"),
    ("6204", "白银市"),
    ("6205", "天水市"),
    ("6206", "武威市"),
    ("6207", "张掖市"),
    ("6208", "平凉市"),
    ("6209", "酒泉市"),
    ("6210", "庆阳市"),
    ("6211", "定西市"),
    ("6212", "陇南市"),
    ("6229", "临夏回族自治州"),
    ("6230", "甘南藏族自治州"),
];

/// Pingliang's county-level units, including 620824 华亭县, retired in 2018 when it became
/// 620881 华亭市: old records still carry it.
const PINGLIANG_COUNTIES: &[(&str, &str)] = &[
    ("620802", "崆峒区"),
    ("620821", "泾川县"),
    ("620822", "灵台县"),
    ("620823", "崇信县"),
    ("620824", "华亭县"),
    ("620825", "庄浪县"),
    ("620826", "静宁县"),
    ("620881", "华亭市"),
];

/// Lingtai's towns and townships (REFERENCE §8.5), by nine-digit code.
const LINGTAI_TOWNSHIPS: &[(&str, &str)] = &[
    ("620822001", "城市社区管理委员会地区"),
    ("620822100", "中台镇"),
    ("620822101", "邵寨镇"),
    ("620822102", "独店镇"),
    ("620822103", "什字镇"),
    ("620822104", "朝那镇"),
    ("620822105", "西屯镇"),
    ("620822106", "上良镇"),
    ("620822107", "百里镇"),
    ("620822108", "蒲窝镇"),
    ("620822201", "新开乡"),
    ("620822204", "梁原乡"),
    ("620822205", "龙门乡"),
    ("620822206", "星火乡"),
    ("620822400", "万宝川农场"),
];

fn lookup(table: &'static [(&'static str, &'static str)], key: &str) -> Option<&'static str> {
    table.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// Whether the two leading digits are a real province-level code.
pub(crate) fn is_province(code2: &str) -> bool {
    lookup(PROVINCES, code2).is_some()
}

/// A six-digit GB/T 2260 code that is plausible at the depth we know.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DivisionCode(String);

fn unknown(s: &str, why: &str) -> IdError {
    IdError::new(
        "DIVISION_CODE_UNKNOWN",
        format!("division code `{s}` {why} (GB/T 2260)"),
    )
}

impl DivisionCode {
    pub fn parse(s: &str) -> Result<DivisionCode, IdError> {
        if s.len() != 6 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(unknown(s, "must be six digits"));
        }
        let (province, prefecture, county) = (&s[..2], &s[2..4], &s[4..]);
        if !is_province(province) {
            return Err(unknown(s, &format!("has no province `{province}`")));
        }
        if prefecture == "00" && county != "00" {
            return Err(unknown(s, "has a county part under a province-level code"));
        }
        if province == "62" && prefecture != "00" {
            if lookup(GANSU_PREFECTURES, &s[..4]).is_none() {
                return Err(unknown(
                    s,
                    &format!("is not under a Gansu prefecture (`{}` is none)", &s[..4]),
                ));
            }
            if &s[..4] == "6208" && county != "00" && lookup(PINGLIANG_COUNTIES, s).is_none() {
                return Err(unknown(s, "is not a county of Pingliang"));
            }
        }
        Ok(DivisionCode(s.to_owned()))
    }

    /// The name, for the codes we know: every province, Gansu's prefectures, Pingliang's
    /// counties.
    pub fn name(&self) -> Option<&'static str> {
        match (self.prefecture_part(), self.county_part()) {
            ("00", "00") => lookup(PROVINCES, self.province_code()),
            (_, "00") if self.province_code() == "62" => {
                lookup(GANSU_PREFECTURES, self.prefecture_code())
            }
            _ if self.prefecture_code() == "6208" => lookup(PINGLIANG_COUNTIES, &self.0),
            _ => None,
        }
    }

    /// The two-digit province code (`62`).
    pub fn province_code(&self) -> &str {
        &self.0[..2]
    }

    /// The four-digit prefecture code (`6208`).
    pub fn prefecture_code(&self) -> &str {
        &self.0[..4]
    }

    fn prefecture_part(&self) -> &str {
        &self.0[2..4]
    }

    fn county_part(&self) -> &str {
        &self.0[4..]
    }

    /// `xx0000`.
    pub fn is_province_level(&self) -> bool {
        &self.0[2..] == "0000"
    }

    /// `xxxx00` below a province.
    pub fn is_prefecture_level(&self) -> bool {
        !self.is_province_level() && self.county_part() == "00"
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DivisionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for DivisionCode {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A township-level statistical code: nine digits, or twelve (nine + village part). Only the
/// leading six digits are checked (as a [`DivisionCode`]): the NBS edition changes yearly.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TownshipCode(String);

impl TownshipCode {
    pub fn parse(s: &str) -> Result<TownshipCode, IdError> {
        if !(s.len() == 9 || s.len() == 12) || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdError::new(
                "DIVISION_CODE_UNKNOWN",
                format!("township code `{s}` must be 9 or 12 digits (统计用区划代码)"),
            ));
        }
        DivisionCode::parse(&s[..6]).map_err(|e| {
            IdError::new(
                "DIVISION_CODE_UNKNOWN",
                format!("township code `{s}`: {}", e.message),
            )
        })?;
        Ok(TownshipCode(s.to_owned()))
    }

    /// The county it belongs to.
    pub fn division(&self) -> DivisionCode {
        DivisionCode(self.0[..6].to_owned())
    }

    /// The nine-digit township part.
    pub fn township(&self) -> &str {
        &self.0[..9]
    }

    /// The name of a Lingtai township (a twelve-digit code names its township only when the
    /// village part is `000`).
    pub fn name(&self) -> Option<&'static str> {
        if self.0.len() == 12 && &self.0[9..] != "000" {
            return None;
        }
        lookup(LINGTAI_TOWNSHIPS, self.township())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TownshipCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn division_table() {
        let cases: &[(&str, Option<&str>, bool)] = &[
            // (code, name, valid)
            ("620000", Some("甘肃省"), true),
            ("620800", Some("平凉市"), true),
            ("620822", Some("灵台县"), true),
            ("620802", Some("崆峒区"), true),
            ("620881", Some("华亭市"), true),
            ("620824", Some("华亭县"), true),
            ("620826", Some("静宁县"), true),
            ("623000", Some("甘南藏族自治州"), true),
            ("620100", Some("兰州市"), true),
            ("620102", None, true),
            ("110000", Some("北京市"), true),
            ("110105", None, true),
            ("820000", Some("澳门特别行政区"), true),
            ("650100", None, true),
            ("620827", None, false),
            ("620899", None, false),
            ("621300", None, false),
            ("622800", None, false),
            ("623100", None, false),
            ("160000", None, false),
            ("000000", None, false),
            ("990000", None, false),
            ("620001", None, false),
            ("62082", None, false),
            ("6208222", None, false),
            ("62082a", None, false),
            ("", None, false),
        ];
        for (code, name, valid) in cases {
            let got = DivisionCode::parse(code);
            assert_eq!(got.is_ok(), *valid, "{code}");
            if let Ok(d) = got {
                assert_eq!(d.name(), *name, "{code}");
            } else {
                assert_eq!(got.unwrap_err().code, "DIVISION_CODE_UNKNOWN");
            }
        }
    }

    #[test]
    fn levels_and_parts() {
        let d = DivisionCode::parse("620822").unwrap();
        assert_eq!((d.province_code(), d.prefecture_code()), ("62", "6208"));
        assert!(!d.is_province_level() && !d.is_prefecture_level());
        assert!(DivisionCode::parse("620000").unwrap().is_province_level());
        assert!(DivisionCode::parse("620800").unwrap().is_prefecture_level());
    }

    #[test]
    fn township_table() {
        let cases: &[(&str, Option<&str>, bool)] = &[
            ("620822100", Some("中台镇"), true),
            ("620822100000", Some("中台镇"), true),
            ("620822400", Some("万宝川农场"), true),
            ("620822001000", Some("城市社区管理委员会地区"), true),
            ("620822100201", None, true),
            ("620822999", None, true),
            ("110105001", None, true),
            ("620827100", None, false),
            ("62082210", None, false),
            ("6208221000", None, false),
            ("620822100a00", None, false),
        ];
        for (code, name, valid) in cases {
            let got = TownshipCode::parse(code);
            assert_eq!(got.is_ok(), *valid, "{code}");
            match got {
                Ok(t) => {
                    assert_eq!(t.name(), *name, "{code}");
                    assert_eq!(t.division().as_str(), &code[..6]);
                }
                Err(e) => assert_eq!(e.code, "DIVISION_CODE_UNKNOWN"),
            }
        }
    }

    proptest! {
        #[test]
        fn every_province_and_gansu_prefecture_level_code_parses(i in 0usize..PROVINCES.len(), j in 0usize..GANSU_PREFECTURES.len()) {
            let p = format!("{}0000", PROVINCES[i].0);
            prop_assert!(DivisionCode::parse(&p).is_ok());
            let g = format!("{}00", GANSU_PREFECTURES[j].0);
            prop_assert_eq!(DivisionCode::parse(&g).unwrap().name(), Some(GANSU_PREFECTURES[j].1));
        }

        #[test]
        fn six_digit_codes_outside_known_provinces_fail(s in "[0-9]{6}") {
            let known = is_province(&s[..2]);
            if !known {
                prop_assert_eq!(DivisionCode::parse(&s).unwrap_err().code, "DIVISION_CODE_UNKNOWN");
            }
        }

        #[test]
        fn township_accepts_any_suffix_of_a_valid_county(suffix in "[0-9]{3}([0-9]{3})?") {
            let code = format!("620822{suffix}");
            prop_assert!(TownshipCode::parse(&code).is_ok());
        }
    }
}
