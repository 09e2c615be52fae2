//! The simulated world of Pingliang: divisions, enforcement agencies, their officers, and the
//! parties (companies, 个体工商户, natural persons) the upstream records are about.
//!
//! Agencies and officers are few and built once per seed; parties are generated on demand from an
//! index so that a million-record run never materialises them.

use super::prim::{Rng, date, org_code, permute8, resident_id, uscc};
use chrono::{Duration, NaiveDate};

/// (code, full name, one-character abbreviation used in document numbers)
pub const DIVISIONS: [(&str, &str, &str); 8] = [
    ("620800", "平凉市", "平"),
    ("620802", "崆峒区", "崆"),
    ("620821", "泾川县", "泾"),
    ("620822", "灵台县", "灵"),
    ("620823", "崇信县", "崇"),
    ("620825", "庄浪县", "庄"),
    ("620826", "静宁县", "静"),
    ("620881", "华亭市", "华"),
];

/// Lingtai towns (NBS 9-digit statistical codes, REFERENCE §8.5).
pub const LINGTAI_TOWNS: [(&str, &str); 15] = [
    ("620822001", "城市社区管理委员会"),
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

/// Department kinds: (name suffix, abbreviation, domain, domain slot for template choice).
pub const DEPARTMENTS: [(&str, &str, &str); 9] = [
    ("市场监督管理局", "市监", "市场监管"),
    ("生态环境局", "环", "生态环境"),
    ("交通运输局", "交", "交通运输"),
    ("农业农村局", "农", "农业"),
    ("应急管理局", "应急", "应急管理"),
    ("卫生健康局", "卫健", "卫生健康"),
    ("自然资源局", "自然资源", "自然资源"),
    ("综合行政执法局", "综执", "城管综合执法"),
    ("文化广播电视和旅游局", "文旅", "文化市场"),
];

pub const SURNAMES: [&str; 40] = [
    "王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "胡", "朱", "高", "林",
    "何", "郭", "马", "罗", "梁", "宋", "郑", "谢", "韩", "唐", "冯", "于", "董", "萧", "程", "曹",
    "袁", "邓", "许", "傅", "沈", "曾", "彭", "吕",
];
pub const GIVEN: [&str; 48] = [
    "伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟",
    "涛", "明", "超", "秀兰", "霞", "平", "刚", "桂英", "建华", "文", "辉", "玉兰", "海燕", "建国",
    "志强", "红梅", "晓东", "卫东", "亚楠", "子涵", "浩然", "雨桐", "宇航", "欣怡", "思远", "振华",
    "国庆", "春生", "永红", "立新", "丽娟", "宏伟", "彦军",
];
const TRADE_NAMES: [&str; 24] = [
    "丰源", "瑞祥", "宏达", "金穗", "陇原", "泾河", "荣盛", "鑫泰", "福润", "恒通", "嘉禾", "康泰",
    "绿野", "博远", "正大", "华庭", "安顺", "兴隆", "聚福", "天成", "润泽", "鼎盛", "锦程", "民丰",
];
const COMPANY_KINDS: [&str; 10] = [
    "商贸有限公司",
    "食品有限公司",
    "建材有限责任公司",
    "农业科技有限公司",
    "运输有限公司",
    "餐饮管理有限公司",
    "药业有限公司",
    "果业专业合作社",
    "建筑工程有限公司",
    "网络科技有限公司",
];
const SHOP_KINDS: [&str; 10] = [
    "小吃店",
    "便利店",
    "副食店",
    "农资门市部",
    "汽修部",
    "药店",
    "理发店",
    "百货商店",
    "烟酒店",
    "家常菜馆",
];
const STREETS: [&str; 10] = [
    "人民路",
    "新华街",
    "荆山路",
    "朝阳街",
    "西大街",
    "东关路",
    "城南路",
    "古灵台路",
    "兴业路",
    "南街",
];

#[derive(Clone, Debug)]
pub struct Agency {
    pub uscc: String,
    pub name: String,
    pub abbr: String,
    pub kind: u8,
    pub level: u8,
    pub division: &'static str,
    pub domain: &'static str,
    pub dept: usize,
    pub parent: Option<usize>,
    pub principal: Option<usize>,
    pub address: String,
    pub phone: String,
    pub head: String,
}

#[derive(Clone, Debug)]
pub struct Officer {
    pub name: String,
    pub gender: u8,
    pub id_number: String,
    pub agency: usize,
    pub cert: String,
    pub cert_type: u8,
    pub issued_by: String,
    pub issued_on: NaiveDate,
    pub valid_until: NaiveDate,
}

pub const OFFICERS_PER_AGENCY: usize = 6;

pub struct World {
    pub seed: u64,
    pub agencies: Vec<Agency>,
    pub officers: Vec<Officer>,
    /// Agencies by division code index (into DIVISIONS).
    by_division: Vec<Vec<usize>>,
}

pub fn person_name(rng: &mut Rng) -> String {
    let mut s = String::with_capacity(9);
    s.push_str(rng.pick(&SURNAMES));
    s.push_str(rng.pick(&GIVEN));
    s
}

fn phone(rng: &mut Rng) -> String {
    format!("0933-{:07}", 3_000_000 + rng.below(999_999))
}

pub fn mobile(rng: &mut Rng) -> String {
    let prefix = rng.pick(&["138", "139", "151", "152", "177", "180", "189", "193"]);
    format!("{prefix}{:08}", rng.below(100_000_000))
}

impl World {
    pub fn new(seed: u64) -> World {
        let mut agencies = Vec::new();
        let mut by_division = vec![Vec::new(); DIVISIONS.len()];
        let mut n = 0u64;
        for (di, (code, dname, dabbr)) in DIVISIONS.iter().enumerate() {
            for (k, (suffix, abbr, domain)) in DEPARTMENTS.iter().enumerate() {
                let mut rng = Rng::new(&[seed, 0xA6E, n]);
                let org = org_code(permute8(90_000_000 + n, seed));
                let level = if di == 0 { 2 } else { 3 };
                agencies.push(Agency {
                    uscc: uscc("11", code, &org),
                    name: format!("{dname}{suffix}"),
                    abbr: format!("{dabbr}{abbr}"),
                    kind: 1,
                    level,
                    division: code,
                    domain,
                    dept: k,
                    parent: if di == 0 { None } else { Some(k) },
                    principal: None,
                    address: format!(
                        "甘肃省平凉市{}{}{}号",
                        if di == 0 { "" } else { dname },
                        rng.pick(&STREETS),
                        rng.range(1, 199)
                    ),
                    phone: phone(&mut rng),
                    head: person_name(&mut rng),
                });
                by_division[di].push(agencies.len() - 1);
                n += 1;
            }
        }
        // Township 综合执法队 of Lingtai act on behalf of the county 综合行政执法局 (受委托组织).
        let lingtai = 3;
        let principal = by_division[lingtai][7];
        for (code9, town) in LINGTAI_TOWNS.iter().skip(1).take(13) {
            let mut rng = Rng::new(&[seed, 0xA6E, n]);
            let org = org_code(permute8(90_000_000 + n, seed));
            agencies.push(Agency {
                uscc: uscc("12", "620822", &org),
                name: format!("灵台县{town}综合执法队"),
                abbr: format!("灵{}综", town.chars().next().unwrap_or('镇')),
                kind: 3,
                level: 4,
                division: "620822",
                domain: "城管综合执法",
                dept: 7,
                parent: Some(principal),
                principal: Some(principal),
                address: format!("甘肃省平凉市灵台县{town}政府院内 ({code9})"),
                phone: phone(&mut rng),
                head: person_name(&mut rng),
            });
            by_division[lingtai].push(agencies.len() - 1);
            n += 1;
        }
        let mut officers = Vec::with_capacity(agencies.len() * OFFICERS_PER_AGENCY);
        for (ai, a) in agencies.iter().enumerate() {
            for k in 0..OFFICERS_PER_AGENCY {
                let oi = officers.len() as u64;
                let mut rng = Rng::new(&[seed, 0x0FF, oi]);
                let gender = 1 + rng.below(2) as u8;
                let birth = date(1968, 1, 1) + Duration::days(rng.range(0, 9000));
                let seq = rng.below(499) as u32 * 2 + if gender == 1 { 1 } else { 0 };
                let issued_on = date(2019, 3, 1) + Duration::days(rng.range(0, 900));
                let city = a.level <= 2 || k % 2 == 0;
                officers.push(Officer {
                    name: person_name(&mut rng),
                    gender,
                    // IDs carry county-level address codes: city staff were registered in 崆峒区.
                    id_number: resident_id(
                        if a.division == "620800" {
                            "620802"
                        } else {
                            a.division
                        },
                        birth,
                        seq,
                    ),
                    agency: ai,
                    cert: format!("{}{}{:05}", a.division, issued_on.format("%Y"), oi + 1),
                    cert_type: if a.dept == 4 || a.dept == 1 { 2 } else { 1 },
                    issued_by: if city {
                        "平凉市人民政府".into()
                    } else {
                        "甘肃省人民政府".into()
                    },
                    issued_on,
                    valid_until: issued_on + Duration::days(365 * 6),
                });
            }
        }
        World {
            seed,
            agencies,
            officers,
            by_division,
        }
    }

    /// An agency for a record: about half of everything happens in Lingtai.
    pub fn pick_agency(&self, rng: &mut Rng) -> usize {
        let di = if rng.chance(0.5) {
            3
        } else {
            rng.below(DIVISIONS.len() as u64) as usize
        };
        rng.pick(&self.by_division[di])
    }

    /// An agency of a given department (e.g. 市场监管 for spot checks and licences).
    pub fn pick_agency_of(&self, rng: &mut Rng, dept: usize) -> usize {
        let di = if rng.chance(0.5) {
            3
        } else {
            rng.below(DIVISIONS.len() as u64) as usize
        };
        self.by_division[di][dept]
    }

    /// `n` distinct officers of an agency.
    pub fn pick_officers(&self, rng: &mut Rng, agency: usize, n: usize) -> Vec<usize> {
        let start = agency * OFFICERS_PER_AGENCY;
        let first = rng.below(OFFICERS_PER_AGENCY as u64) as usize;
        (0..n.min(OFFICERS_PER_AGENCY))
            .map(|k| start + (first + k) % OFFICERS_PER_AGENCY)
            .collect()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartyKind {
    /// 法人及非法人组织 (national code 1)
    Company,
    /// 自然人 (2)
    Person,
    /// 个体工商户 (3)
    Individual,
}

impl PartyKind {
    pub fn code(self) -> &'static str {
        match self {
            PartyKind::Company => "1",
            PartyKind::Person => "2",
            PartyKind::Individual => "3",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            PartyKind::Company => "法人及非法人组织",
            PartyKind::Person => "自然人",
            PartyKind::Individual => "个体工商户",
        }
    }
}

pub const PLACEHOLDER_USCC: &str = "00000000000000000X";

#[derive(Clone, Debug)]
pub struct Party {
    pub kind: PartyKind,
    pub name: String,
    pub uscc: Option<String>,
    pub reg_no: Option<String>,
    pub org_code: Option<String>,
    pub id_number: Option<String>,
    pub legal_rep: Option<String>,
    pub division: &'static str,
    pub address: String,
}

fn division_for(rng: &mut Rng) -> (&'static str, &'static str) {
    let d = if rng.chance(0.6) {
        DIVISIONS[3]
    } else {
        rng.pick(&DIVISIONS[1..])
    };
    (d.0, d.1)
}

/// A company or 个体工商户 with a real (non-placeholder) USCC; `n` < 10^7 gives distinct codes.
pub fn company(seed: u64, n: u64, individual: bool, allow_placeholder: bool) -> Party {
    let mut rng = Rng::new(&[seed, 0xC0, n]);
    let (div, dname) = division_for(&mut rng);
    let org = org_code(permute8(n % 90_000_000, seed));
    let addr = format!(
        "甘肃省平凉市{dname}{}{}号",
        rng.pick(&STREETS),
        rng.range(1, 300)
    );
    let rep = person_name(&mut rng);
    if individual {
        let placeholder = allow_placeholder && rng.chance(0.125);
        let shop = rng.pick(&SHOP_KINDS);
        Party {
            kind: PartyKind::Individual,
            name: format!("{dname}{}记{shop}", &rep[..3]),
            uscc: Some(if placeholder {
                PLACEHOLDER_USCC.to_string()
            } else {
                uscc("92", div, &org)
            }),
            reg_no: placeholder.then(|| format!("{div}600{:06}", n % 1_000_000)),
            org_code: None,
            id_number: None,
            legal_rep: Some(rep),
            division: div,
            address: addr,
        }
    } else {
        let kind = rng.pick(&COMPANY_KINDS);
        let prefix = if kind.ends_with("合作社") {
            "93"
        } else {
            "91"
        };
        Party {
            kind: PartyKind::Company,
            name: {
                let n = TRADE_NAMES.len();
                let first = rng.below(n as u64) as usize;
                let second = (first + 1 + rng.below(n as u64 - 1) as usize) % n;
                format!("{dname}{}{}{kind}", TRADE_NAMES[first], TRADE_NAMES[second])
            },
            uscc: Some(uscc(prefix, div, &org)),
            reg_no: None,
            org_code: Some(org),
            id_number: None,
            legal_rep: Some(rep),
            division: div,
            address: addr,
        }
    }
}

/// A natural person with a synthetic resident ID (Pingliang address codes; never a real person).
pub fn person(seed: u64, n: u64) -> Party {
    let mut rng = Rng::new(&[seed, 0x9E, n]);
    let (div, dname) = division_for(&mut rng);
    let birth = date(1955, 1, 1) + Duration::days(rng.range(0, 17_000));
    let name = person_name(&mut rng);
    Party {
        kind: PartyKind::Person,
        id_number: Some(resident_id(div, birth, rng.below(1000) as u32)),
        name,
        uscc: None,
        reg_no: None,
        org_code: None,
        legal_rep: None,
        division: div,
        address: format!(
            "甘肃省平凉市{dname}{}{}号",
            rng.pick(&STREETS),
            rng.range(1, 300)
        ),
    }
}

/// A party for an enforcement act: 55% companies, 25% 个体工商户, 20% natural persons.
pub fn any_party(seed: u64, rng: &mut Rng, allow_placeholder: bool) -> Party {
    let n = rng.below(5_000_000);
    match rng.below(100) {
        0..55 => company(seed, n, false, false),
        55..80 => company(seed, n, true, allow_placeholder),
        _ => person(seed, n),
    }
}
