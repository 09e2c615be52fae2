//! Canonical content of the simulated enforcement acts, before any dialect renders them.
//!
//! Each generator is a pure function of (world, source, index): the "head" (agency, document
//! number, dates) comes from one random stream and the long texts from another, so natural keys for
//! `/truth` are cheap to compute without building whole records.

use super::prim::{RID_CHECKS, Rng, USCC_CHARSET, corrupt_check, day, mix};
use super::world::{
    DEPARTMENTS, LINGTAI_TOWNS, Party, PartyKind, World, any_party, company, person,
};
use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime};

/// Who issued a record: the document-number style differs per source so keys never collide
/// across systems unless a record is deliberately shared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Src {
    Provincial = 1,
    InternetPlus = 2,
    Credit = 3,
    Legacy = 4,
}

impl Src {
    fn penalty_doc(self) -> &'static str {
        match self {
            Src::Provincial => "罚决",
            Src::InternetPlus => "罚",
            Src::Credit => "罚字",
            Src::Legacy => "处罚",
        }
    }
}

/// How a record is broken on purpose (listed in `/truth` with a reason).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalid {
    BadUscc,
    BadResidentId,
    Missing,
    UnknownCode,
    BadDate,
    FewOfficers,
}

/// Chooses deterministically whether record `index` of a stream is invalid and how.
pub fn invalid_kind(
    seed: u64,
    stream_salt: u64,
    index: u64,
    rate: f64,
    allowed: &[Invalid],
) -> Option<Invalid> {
    if allowed.is_empty() {
        return None;
    }
    let h = super::prim::hash(&[seed, stream_salt, index, 0x1BAD]);
    if super::prim::unit(h) < rate {
        Some(allowed[(mix(h) % allowed.len() as u64) as usize])
    } else {
        None
    }
}

/// Applies the party- and officer-level breakages; returns the reason text.
pub fn break_party(seed: u64, idx: u64, party: &mut Party, kind: Invalid) -> Option<String> {
    match kind {
        Invalid::BadUscc => {
            if party.kind == PartyKind::Person
                || party.uscc.as_deref() == Some(super::world::PLACEHOLDER_USCC)
            {
                *party = company(seed, idx % 5_000_000, false, false);
            }
            let bad = corrupt_check(party.uscc.as_deref().unwrap_or_default(), USCC_CHARSET);
            let reason = format!("bad USCC check digit: party {bad}");
            party.uscc = Some(bad);
            Some(reason)
        }
        Invalid::BadResidentId => {
            if party.kind != PartyKind::Person {
                *party = person(seed, idx % 5_000_000);
            }
            let bad = corrupt_check(party.id_number.as_deref().unwrap_or_default(), RID_CHECKS);
            let reason = format!("bad resident-ID check digit: party {bad}");
            party.id_number = Some(bad);
            Some(reason)
        }
        _ => None,
    }
}

pub struct Template {
    pub violation: &'static str,
    pub facts: &'static str,
    pub basis: &'static str,
    pub goods: [&'static str; 4],
    pub coercive_basis: &'static str,
    pub license_name: &'static str,
}

/// Violation templates, one per department (index = department).
pub const TEMPLATES: [Template; 9] = [
    Template {
        violation: "经营超过保质期的食品",
        facts: "{D}，本局执法人员在日常监督检查中，依法对当事人{P}位于{A}的经营场所进行现场检查，发现其货架上陈列待售的{G}共计{N}件已超过标注的保质期，货值金额{V}元。",
        basis: "《中华人民共和国食品安全法》第三十四条第（十）项、第一百二十四条第一款第（五）项；《甘肃省市场监督管理行政处罚裁量权基准》食品安全类第十二项",
        goods: ["袋装酸奶", "火腿肠", "夹心饼干", "果汁饮料"],
        coercive_basis: "《中华人民共和国行政强制法》第九条、《中华人民共和国食品安全法》第一百一十条第（四）项",
        license_name: "食品经营许可证",
    },
    Template {
        violation: "未采取有效措施防治扬尘污染",
        facts: "{D}，执法人员对当事人{P}位于{A}的施工工地开展现场检查，发现该工地裸露土方约{N}平方米未采取覆盖措施，施工现场出入口未设置车辆冲洗设施，运输车辆带泥上路，现场扬尘明显。",
        basis: "《中华人民共和国大气污染防治法》第六十九条第三款、第一百一十五条第一款第（一）项；《甘肃省生态环境行政处罚自由裁量权细化标准》",
        goods: ["建筑材料", "渣土", "砂石", "水泥"],
        coercive_basis: "《中华人民共和国行政强制法》第九条、《中华人民共和国环境保护法》第二十五条",
        license_name: "排污许可证",
    },
    Template {
        violation: "未取得道路运输经营许可擅自从事道路旅客运输经营",
        facts: "{D}，执法人员在{A}附近开展道路运输市场专项整治检查时，依法拦停当事人{P}驾驶的车辆，经现场询问车内{N}名乘客并制作询问笔录，查明当事人未取得道路运输经营许可，以每人{V}元的价格有偿载客往返县城与乡镇之间。",
        basis: "《中华人民共和国道路运输条例》第十条、第六十三条第（一）项；《甘肃省交通运输行政处罚裁量基准》道路运输类第一项",
        goods: ["小型客车", "面包车", "轿车", "营运客车"],
        coercive_basis: "《中华人民共和国行政强制法》第九条、《中华人民共和国道路运输条例》第六十八条",
        license_name: "道路运输经营许可证",
    },
    Template {
        violation: "经营假农药",
        facts: "{D}，执法人员对当事人{P}位于{A}的农资经营门店进行检查，抽取其销售的{G}样品送检，经甘肃省农药检定所检验，检出有效成分含量与标签标注不符，依法认定为假农药。",
        basis: "《农药管理条例》第四十四条第一款第（一）项、第五十五条第一款第（一）项；《甘肃省农业行政处罚裁量基准》农药类第三项",
        goods: ["除草剂", "杀虫剂", "杀菌剂", "植物生长调节剂"],
        coercive_basis: "《中华人民共和国行政强制法》第九条、《农药管理条例》第四十一条第（四）项",
        license_name: "农药经营许可证",
    },
    Template {
        violation: "未按规定对从业人员进行安全生产教育和培训",
        facts: "{D}，执法人员对当事人{P}位于{A}的生产经营场所开展安全生产执法检查，抽查{N}名在岗从业人员的安全生产教育和培训档案，发现其中多名人员未经安全生产教育和培训即上岗作业，且单位无法提供年度安全培训计划及培训记录。",
        basis: "《中华人民共和国安全生产法》第二十八条第一款、第九十七条第（三）项；《甘肃省安全生产行政处罚自由裁量标准》第四十五项",
        goods: ["有限空间", "危化品仓库", "配电室", "生产车间"],
        coercive_basis: "《中华人民共和国行政强制法》第九条、《中华人民共和国安全生产法》第六十五条第一款第（四）项",
        license_name: "安全生产许可证",
    },
    Template {
        violation: "未取得医疗机构执业许可证擅自执业",
        facts: "{D}，执法人员根据群众举报对当事人{P}位于{A}的场所进行现场检查，发现当事人在未取得《医疗机构执业许可证》的情况下，为就诊人员提供输液、针灸等诊疗服务，现场查见{G}及处方笺{N}张，查获药品货值{V}元。",
        basis: "《医疗机构管理条例》第十四条第一款、第四十三条；《甘肃省卫生健康行政处罚裁量基准》医疗机构类第一项",
        goods: ["一次性输液器", "注射用药品", "针灸针", "血压计"],
        coercive_basis: "《中华人民共和国行政强制法》第九条、《中华人民共和国基本医疗卫生与健康促进法》",
        license_name: "医疗机构执业许可证",
    },
    Template {
        violation: "未经批准非法占用土地",
        facts: "{D}，执法人员在卫片执法检查中发现，当事人{P}未经批准擅自占用{A}附近集体土地{N}平方米建设{G}，经勘测定界，所占土地中含耕地约{V}平方米，不符合国土空间规划。",
        basis: "《中华人民共和国土地管理法》第四十四条第一款、第七十七条第一款；《中华人民共和国土地管理法实施条例》第五十八条",
        goods: ["砖混结构房屋", "钢架彩钢棚", "硬化场地", "临时库房"],
        coercive_basis: "《中华人民共和国行政强制法》第十二条、《中华人民共和国土地管理法》第八十三条",
        license_name: "建设用地规划许可证",
    },
    Template {
        violation: "擅自占用城市道路设置摊点",
        facts: "{D}，执法队员在日常巡查中发现，当事人{P}在{A}人行道上擅自搭建{G}经营，占用城市道路面积约{N}平方米，影响行人通行和市容环境。",
        basis: "《城市道路管理条例》第二十七条第（一）项、第四十二条第（三）项；《甘肃省城市管理综合执法行政处罚裁量基准》",
        goods: ["遮阳棚", "货架", "流动餐车", "广告牌"],
        coercive_basis: "《中华人民共和国行政强制法》第九条、《城市市容和环境卫生管理条例》第三十七条",
        license_name: "城市道路占用许可证",
    },
    Template {
        violation: "互联网上网服务营业场所接纳未成年人",
        facts: "{D}，执法人员对当事人{P}位于{A}的互联网上网服务营业场所进行检查，发现场所内有{N}名未成年人正在上网，当事人未在入口处设置未成年人禁入标志，未对上网消费者的身份证件进行核对、登记。",
        basis: "《互联网上网服务营业场所管理条例》第二十一条、第三十一条第（二）项；《甘肃省文化市场行政处罚自由裁量权基准》",
        goods: ["上网计算机", "游戏主机", "服务器", "收银系统"],
        coercive_basis: "《中华人民共和国行政强制法》第九条、《互联网上网服务营业场所管理条例》",
        license_name: "网络文化经营许可证",
    },
];

fn fill(tpl: &str, d: &str, p: &str, a: &str, g: &str, n: u64, v: u64) -> String {
    let mut out = String::with_capacity(tpl.len() + 96);
    let mut rest = tpl;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let (rep, skip): (std::borrow::Cow<str>, usize) = match tail.get(..3) {
            Some("{D}") => (d.into(), 3),
            Some("{P}") => (p.into(), 3),
            Some("{A}") => (a.into(), 3),
            Some("{G}") => (g.into(), 3),
            Some("{N}") => (n.to_string().into(), 3),
            Some("{V}") => (v.to_string().into(), 3),
            _ => ("{".into(), 1),
        };
        out.push_str(&rep);
        rest = &tail[skip..];
    }
    out.push_str(rest);
    out
}

fn cn_date(d: NaiveDate) -> String {
    format!("{}年{}月{}日", d.year(), d.month(), d.day())
}

/// Penalty category sets (national codes) with what they need.
pub const PENALTY_SETS: [&[&str]; 8] = [
    &["01"],
    &["03"],
    &["03", "01"],
    &["03", "04"],
    &["03", "05"],
    &["06", "03"],
    &["10", "03"],
    &["02"],
];

/// The penalty_category code table (national code, label the 2021 set renders).
pub const PENALTY_CATEGORIES: [(&str, &str); 14] = [
    ("01", "警告"),
    ("02", "通报批评"),
    ("03", "罚款"),
    ("04", "没收违法所得"),
    ("05", "没收非法财物"),
    ("06", "暂扣许可证件"),
    ("07", "降低资质等级"),
    ("08", "吊销许可证件"),
    ("09", "限制开展生产经营活动"),
    ("10", "责令停产停业"),
    ("11", "责令关闭"),
    ("12", "限制从业"),
    ("13", "行政拘留"),
    ("99", "其他"),
];

pub fn penalty_label(code: &str) -> &'static str {
    PENALTY_CATEGORIES
        .iter()
        .find(|(c, _)| *c == code)
        .map_or("其他", |(_, l)| l)
}

/// The id_type code table (证件类型).
pub const ID_TYPES: [(&str, &str); 7] = [
    ("01", "身份证"),
    ("02", "护照号"),
    ("03", "港澳居民来往内地通行证"),
    ("04", "台湾居民来往大陆通行证"),
    ("05", "外国人永久居留身份证"),
    ("06", "港澳台居民居住证"),
    ("99", "其他"),
];

pub struct Penalty {
    pub agency: usize,
    pub decision_number: String,
    pub decision_date: NaiveDate,
    pub party: Party,
    pub violation_type: &'static str,
    pub facts: String,
    pub basis: &'static str,
    pub categories: &'static [&'static str],
    pub content: String,
    pub fine: Option<u64>,
    pub confiscated: Option<u64>,
    pub license_affected: Option<String>,
    pub valid_until: NaiveDate,
    pub publish_until: NaiveDate,
    pub officers: Vec<usize>,
    pub procedure: u8,
    pub remarks: String,
}

/// The natural-key part of a penalty: agency index, decision number, decision date.
pub fn penalty_head(w: &World, src: Src, idx: u64) -> (usize, String, NaiveDate) {
    let mut rng = Rng::new(&[w.seed, 0xCF00 + src as u64, idx]);
    let agency = w.pick_agency(&mut rng);
    let d = if src == Src::Legacy {
        super::prim::date(2016, 1, 4) + Duration::days(rng.range(0, 1090))
    } else {
        day(rng.range(0, 2190))
    };
    let a = &w.agencies[agency];
    let number = format!(
        "{}{}〔{}〕{}号",
        a.abbr,
        src.penalty_doc(),
        d.year(),
        idx + 1
    );
    (agency, number, d)
}

pub fn penalty(w: &World, src: Src, idx: u64, sets: &[usize]) -> Penalty {
    let (agency, decision_number, decision_date) = penalty_head(w, src, idx);
    let mut rng = Rng::new(&[w.seed, 0xCF10 + src as u64, idx]);
    let a = &w.agencies[agency];
    let tpl = &TEMPLATES[a.dept];
    let party = any_party(w.seed, &mut rng, src != Src::InternetPlus);
    let categories = PENALTY_SETS[sets[rng.below(sets.len() as u64) as usize]];
    let fine = categories.contains(&"03").then(|| {
        let small = party.kind == PartyKind::Person && rng.chance(0.3);
        if small {
            rng.pick(&[50u64, 100, 200])
        } else {
            rng.pick(&[500u64, 1000, 2000, 3000, 5000, 8000, 10_000, 20_000, 50_000])
        }
    });
    let confiscated = (categories.contains(&"04") || categories.contains(&"05"))
        .then(|| rng.range(3, 400) as u64 * 50);
    let license_affected = categories.contains(&"06").then(|| {
        format!(
            "{}（编号：JY{}{:07}）",
            tpl.license_name,
            party.division,
            rng.below(10_000_000)
        )
    });
    let check_day = decision_date - Duration::days(rng.range(10, 80));
    let facts = fill(
        tpl.facts,
        &cn_date(check_day),
        &party.name,
        &party.address,
        rng.pick(&tpl.goods),
        rng.range(3, 120) as u64,
        rng.range(2, 60) as u64 * 10,
    );
    let mut content = String::with_capacity(96);
    for c in categories {
        if !content.is_empty() {
            content.push('，');
        }
        match *c {
            "01" => content.push_str("给予警告"),
            "02" => content.push_str("予以通报批评"),
            "03" => content.push_str(&format!("处罚款人民币{}元", fine.unwrap_or(0))),
            "04" => content.push_str(&format!("没收违法所得人民币{}元", confiscated.unwrap_or(0))),
            "05" => content.push_str(&format!(
                "没收非法财物（折价{}元）",
                confiscated.unwrap_or(0)
            )),
            "06" => content.push_str(&format!("暂扣{}三个月", tpl.license_name)),
            "10" => content.push_str("责令停产停业十五日"),
            _ => content.push_str(penalty_label(c)),
        }
    }
    content.push('。');
    if fine.is_some() || confiscated.is_some() {
        content.push_str("当事人应当自收到本决定书之日起十五日内缴纳罚没款。");
    }
    let simple = categories == ["01"] || (categories == ["03"] && fine.unwrap_or(0) <= 200);
    let valid_until = match rng.below(3) {
        0 => super::prim::date(2099, 12, 31),
        1 => decision_date + Duration::days(365),
        _ => decision_date + Duration::days(365 * 3),
    };
    Penalty {
        agency,
        decision_number,
        decision_date,
        officers: {
            let n = 2 + rng.below(2) as usize;
            w.pick_officers(&mut rng, agency, n)
        },
        party,
        violation_type: tpl.violation,
        facts,
        basis: tpl.basis,
        categories,
        content,
        fine,
        confiscated,
        license_affected,
        valid_until,
        publish_until: decision_date + Duration::days(365),
        procedure: if simple { 1 } else { 2 },
        remarks: format!("本案经{}集体讨论决定；当事人已履行完毕。", a.name),
    }
}

pub fn supervise_item_code(seed: u64, dept: usize, k: u64) -> String {
    format!(
        "{:04}{:010}",
        6200 + dept,
        mix(seed ^ (dept as u64) << 8 ^ k) % 10_000_000_000
    )
}

pub const RESULTS: [(&str, &str, &str); 5] = [
    // (canonical, provincial List B numeric, label)
    ("NO_ISSUE", "01", "未发现问题"),
    ("ISSUE_CORRECTED", "02", "发现问题经责令已改正"),
    ("ISSUE_PENDING", "09", "发现问题待后续处理"),
    (
        "UNREACHABLE_AT_ADDRESS",
        "10",
        "通过登记的住所(经营场所)无法联系",
    ),
    ("NO_SUCH_ACTIVITY", "03", "未发现开展本次抽查涉及的经营活动"),
];

pub struct Inspection {
    pub agency: usize,
    pub name: String,
    pub supervise_item_code: String,
    pub check_list_code: String,
    pub party: Party,
    pub check_form: &'static str,
    pub check_type: usize,
    pub check_mode: usize,
    pub result: usize,
    pub check_at: NaiveDateTime,
    pub submitted_at: NaiveDateTime,
    pub officers: Vec<usize>,
    pub plan_id: Option<String>,
}

pub const CHECK_TYPES: [(&str, &str); 4] = [
    ("1", "双随机抽查"),
    ("2", "重点检查"),
    ("3", "投诉举报核查"),
    ("9", "其他"),
];
pub const CHECK_MODES: [(&str, &str); 3] = [
    ("1", "现场检查"),
    ("2", "书面检查"),
    ("3", "网络(远程)检查"),
];

pub fn inspection(w: &World, salt: u64, idx: u64) -> Inspection {
    let mut rng = Rng::new(&[w.seed, 0x1C00 + salt, idx]);
    let agency = w.pick_agency(&mut rng);
    let a = &w.agencies[agency];
    let party = any_party(w.seed, &mut rng, salt == 1);
    let check_type = rng.pick(&[0usize, 0, 1, 2, 3]);
    let check_at = super::prim::at(
        day(rng.range(0, 2190)),
        8 * 3600 + rng.below(9 * 3600) as u32,
    );
    let k = rng.below(12);
    Inspection {
        agency,
        name: format!(
            "对{}开展{}{}",
            party.name, a.domain, CHECK_TYPES[check_type].1
        ),
        supervise_item_code: supervise_item_code(w.seed, a.dept, k),
        check_list_code: format!("{}{}{:04}", a.uscc, 1 + k % 5, k + 1),
        party,
        check_form: if rng.chance(0.7) { "01" } else { "02" },
        check_type,
        check_mode: rng.pick(&[0usize, 0, 0, 1, 2]),
        result: rng.pick(&[0usize, 0, 0, 1, 1, 2, 3, 4]),
        submitted_at: check_at + Duration::minutes(rng.range(60, 72 * 60)),
        check_at,
        officers: {
            let n = 2 + rng.below(2) as usize;
            w.pick_officers(&mut rng, agency, n)
        },
        plan_id: (check_type == 0)
            .then(|| format!("JH{}{}{:03}", a.division, check_at.year(), k + 1)),
    }
}

pub const MEASURE_TYPES: [(&str, &str); 5] = [
    ("1", "限制公民人身自由"),
    ("2", "查封场所、设施或者财物"),
    ("3", "扣押财物"),
    ("4", "冻结存款、汇款"),
    ("9", "其他行政强制措施"),
];
pub const EXECUTE_TYPES: [(&str, &str); 6] = [
    ("1", "加处罚款或者滞纳金"),
    ("2", "划拨存款、汇款"),
    ("3", "拍卖或者依法处理查封、扣押的场所、设施或者财物"),
    ("4", "排除妨碍、恢复原状"),
    ("5", "代履行"),
    ("9", "其他强制执行方式"),
];

pub struct Coercive {
    pub agency: usize,
    pub decision_number: String,
    pub name: String,
    pub party: Party,
    /// 1 措施, 2 执行
    pub kind: u8,
    /// index into MEASURE_TYPES or EXECUTE_TYPES
    pub sub: usize,
    pub facts: String,
    pub basis: &'static str,
    pub start: NaiveDate,
    pub duration: Option<u32>,
    pub extension: Option<u32>,
    pub end: Option<NaiveDate>,
    pub officers: Vec<usize>,
    pub result: &'static str,
}

pub fn coercive_head(w: &World, salt: u64, idx: u64) -> (usize, String, NaiveDate) {
    let mut rng = Rng::new(&[w.seed, 0x9C00 + salt, idx]);
    let agency = w.pick_agency(&mut rng);
    let start = day(rng.range(0, 2190));
    let doc = if salt == 1 { "强" } else { "强措" };
    (
        agency,
        format!(
            "{}{}〔{}〕{}号",
            w.agencies[agency].abbr,
            doc,
            start.year(),
            idx + 1
        ),
        start,
    )
}

pub fn coercive(w: &World, salt: u64, idx: u64) -> Coercive {
    let (agency, decision_number, start) = coercive_head(w, salt, idx);
    let mut rng = Rng::new(&[w.seed, 0x9C10 + salt, idx]);
    let a = &w.agencies[agency];
    let tpl = &TEMPLATES[a.dept];
    // 限制人身自由 is for police; our agencies use 查封/扣押/冻结/其他 (and execution).
    let kind = if rng.chance(0.8) { 1 } else { 2 };
    let sub = if kind == 1 {
        rng.pick(&[1usize, 1, 2, 2, 3, 4])
    } else {
        rng.pick(&[0usize, 2, 3, 4])
    };
    let party = if sub == 3 {
        company(w.seed, rng.below(5_000_000), false, false)
    } else {
        any_party(w.seed, &mut rng, salt == 1)
    };
    let goods = rng.pick(&tpl.goods);
    let (duration, extension) = if kind == 1 {
        let d = if sub == 3 {
            30
        } else {
            rng.range(7, 30) as u32
        };
        (
            Some(d),
            rng.chance(0.1)
                .then_some(if rng.chance(0.5) { 15 } else { 30 }),
        )
    } else {
        (None, None)
    };
    let end = duration.map(|d| start + Duration::days((d + extension.unwrap_or(0)) as i64));
    let label = if kind == 1 {
        MEASURE_TYPES[sub].1
    } else {
        EXECUTE_TYPES[sub].1
    };
    let facts = fill(
        tpl.facts,
        &cn_date(start - Duration::days(rng.range(1, 10))),
        &party.name,
        &party.address,
        goods,
        rng.range(3, 120) as u64,
        rng.range(2, 60) as u64 * 10,
    );
    Coercive {
        agency,
        decision_number,
        name: format!(
            "对{}涉案{}{}",
            party.name,
            goods,
            label.split('、').next().unwrap_or(label)
        ),
        party,
        kind,
        sub,
        facts,
        basis: tpl.coercive_basis,
        start,
        duration,
        extension,
        end,
        officers: {
            let n = 2 + rng.below(2) as usize;
            w.pick_officers(&mut rng, agency, n)
        },
        result: if kind == 1 {
            "已解除"
        } else {
            "已执行完毕"
        },
    }
}

pub const LICENSE_KINDS: [(&str, &str); 6] = [
    ("01", "普通"),
    ("02", "特许"),
    ("03", "认可"),
    ("04", "核准"),
    ("05", "登记"),
    ("99", "其他"),
];

pub struct License {
    pub agency: usize,
    pub decision_number: String,
    pub decision_date: NaiveDate,
    pub party: Party,
    pub kind: usize,
    pub certificate: &'static str,
    pub number: String,
    pub content: String,
    pub valid_until: NaiveDate,
    pub status: &'static str,
}

pub fn license_head(w: &World, idx: u64) -> (usize, String, NaiveDate) {
    let mut rng = Rng::new(&[w.seed, 0x7C00, idx]);
    let dept = rng.pick(&[0usize, 0, 0, 1, 2, 3, 5, 8]);
    let agency = w.pick_agency_of(&mut rng, dept);
    let d = day(rng.range(0, 2190));
    (
        agency,
        format!(
            "{}许准字〔{}〕{}号",
            w.agencies[agency].abbr,
            d.year(),
            idx + 1
        ),
        d,
    )
}

pub fn license(w: &World, idx: u64) -> License {
    let (agency, decision_number, decision_date) = license_head(w, idx);
    let mut rng = Rng::new(&[w.seed, 0x7C10, idx]);
    let a = &w.agencies[agency];
    let tpl = &TEMPLATES[a.dept];
    let party = any_party(w.seed, &mut rng, true);
    let long = rng.chance(0.2);
    let valid_until = if long {
        super::prim::date(2099, 12, 31)
    } else {
        decision_date + Duration::days(365 * 5 - 1)
    };
    License {
        agency,
        decision_number,
        decision_date,
        kind: rng.pick(&[0usize, 0, 0, 0, 1, 3, 4]),
        certificate: tpl.license_name,
        number: format!(
            "JY{}{}{:07}",
            party.division.get(..4).unwrap_or("6208"),
            decision_date.year(),
            idx % 10_000_000
        ),
        content: format!(
            "准予{}在{}从事{}相关经营活动，经营项目及许可范围以{}载明事项为准，许可期间应当遵守相关法律法规和技术规范。",
            party.name, party.address, a.domain, tpl.license_name
        ),
        party,
        valid_until,
        status: if !long && valid_until < super::prim::date(2025, 1, 1) {
            "2"
        } else {
            "1"
        },
    }
}

pub const SCHEMES: [(&str, &str); 3] = [
    ("SAMR", "企业信用风险分类"),
    ("NDRC", "公共信用综合评价"),
    ("TAX", "纳税信用"),
];

pub struct Rating {
    pub party: Party,
    pub scheme: usize,
    pub tier_label: &'static str,
    pub period: String,
    pub rated_on: NaiveDate,
    pub agency: Option<usize>,
}

pub fn rating(w: &World, idx: u64) -> Rating {
    let mut rng = Rng::new(&[w.seed, 0xC4, idx]);
    // one rating per subject, so `<party_code>:<period>` is unique
    let party = company(w.seed, 5_000_000 + idx % 4_000_000, rng.chance(0.2), false);
    let scheme = rng.below(3) as usize;
    let year = 2022 + rng.below(3) as i32;
    let (tier_label, period, rated_on) = match scheme {
        0 => {
            let q = 1 + rng.below(4) as u32;
            let rated = super::prim::date(
                year + (q == 4) as i32,
                if q == 4 { 1 } else { q * 3 + 1 },
                15,
            );
            (
                rng.pick(&["A类", "B类", "B类", "B类", "C类", "D类"]),
                format!("{year}-Q{q}"),
                rated,
            )
        }
        1 => (
            rng.pick(&["优", "良", "良", "中", "差"]),
            format!("{year}"),
            super::prim::date(year + 1, 3, 31),
        ),
        _ => (
            rng.pick(&["A级", "B级", "B级", "M级", "C级", "D级"]),
            format!("{year}"),
            super::prim::date(year + 1, 4, 20),
        ),
    };
    Rating {
        agency: (scheme == 0).then(|| w.pick_agency_of(&mut rng, 0)),
        party,
        scheme,
        tier_label,
        period,
        rated_on,
    }
}

pub struct Task {
    pub number: String,
    pub plan: String,
    pub name: String,
    pub kind: &'static str,
    pub method: &'static str,
    pub ratio: u64,
    pub sample: u64,
    pub drawn: NaiveDate,
    pub deadline: NaiveDate,
    pub agency: usize,
    pub joint: bool,
    pub items: Vec<String>,
    pub status: &'static str,
}

pub fn task(w: &World, idx: u64) -> Task {
    let mut rng = Rng::new(&[w.seed, 0x7A5C, idx]);
    let dept = rng.pick(&[0usize, 0, 0, 1, 4, 5, 8]);
    let agency = w.pick_agency_of(&mut rng, dept);
    let a = &w.agencies[agency];
    let drawn = day(rng.range(1460, 2150));
    let year = drawn.year();
    let topic = rng.pick(&[
        "食品经营",
        "特种设备",
        "产品质量",
        "广告发布",
        "价格行为",
        "企业公示信息",
    ]);
    let items = (0..1 + rng.below(3))
        .map(|k| supervise_item_code(w.seed, a.dept, k))
        .collect();
    Task {
        number: format!("SSJ{}{}{:06}", a.division, year, idx + 1),
        plan: format!("JH{}{}{:03}", a.division, year, 1 + rng.below(20)),
        name: format!(
            "{}年{}{}{}双随机抽查",
            year,
            a.name,
            topic,
            if rng.chance(0.5) { "专项" } else { "常规" }
        ),
        kind: if rng.chance(0.6) {
            "定向抽查"
        } else {
            "不定向抽查"
        },
        method: rng.pick(&["现场检查", "现场检查", "书面检查", "网络监测", "委托第三方"]),
        ratio: rng.range(3, 30) as u64,
        sample: rng.range(10, 200) as u64,
        drawn,
        deadline: drawn + Duration::days(rng.range(30, 90)),
        agency,
        joint: rng.chance(0.3),
        items,
        status: rng.pick(&["已公示", "已公示", "已公示", "已录入", "检查中"]),
    }
}

pub struct SpotResult {
    pub task: u64,
    pub party: Party,
    pub results: &'static str,
    pub inspected: NaiveDate,
    pub published: NaiveDate,
    pub officers: Vec<usize>,
    pub agency: usize,
    pub remarks: String,
}

/// Result `idx` belongs to task `idx % tasks`; the party is unique per result.
pub fn spot_result(w: &World, idx: u64, tasks: u64) -> SpotResult {
    let t = idx % tasks.max(1);
    let tk = task(w, t);
    let mut rng = Rng::new(&[w.seed, 0x5E5, idx]);
    let party = company(w.seed, 9_000_000 + idx % 90_000_000, rng.chance(0.3), false);
    let inspected = tk.drawn + Duration::days(rng.range(3, 25));
    SpotResult {
        task: t,
        results: rng.pick(&["1", "1", "1", "1", "E", "A;E", "A", "F", "6", "B", "8"]),
        inspected,
        published: inspected + Duration::days(rng.range(3, 18)),
        officers: {
            let n = 2 + rng.below(2) as usize;
            w.pick_officers(&mut rng, tk.agency, n)
        },
        agency: tk.agency,
        remarks: String::new(),
        party,
    }
}

pub struct Ticket {
    pub number: String,
    pub channel: &'static str,
    pub received: NaiveDateTime,
    pub appeal: &'static str,
    pub title: String,
    pub content: String,
    pub citizen: Option<(String, String)>,
    pub secret: bool,
    pub address: String,
    pub town: usize,
    pub urgent: bool,
    pub agency: Option<usize>,
    pub dispatched: Option<NaiveDateTime>,
    pub deadline: Option<NaiveDateTime>,
    pub status: &'static str,
    pub reply: Option<(String, NaiveDateTime)>,
    pub closed: Option<NaiveDateTime>,
    pub satisfaction: Option<&'static str>,
    pub solved: Option<&'static str>,
    pub case_no: Option<String>,
}

pub fn ticket(w: &World, idx: u64) -> Ticket {
    let mut rng = Rng::new(&[w.seed, 0x12345, idx]);
    let received = super::prim::at(day(rng.range(1460, 2185)), rng.below(86_400) as u32);
    let appeal = rng.pick(&[
        "咨询", "咨询", "求助", "投诉", "投诉", "投诉", "举报", "建议", "表扬", "其他",
    ]);
    let town = rng.below(LINGTAI_TOWNS.len() as u64) as usize;
    let dept = rng.below(DEPARTMENTS.len() as u64) as usize;
    let tpl = &TEMPLATES[dept];
    let anonymous = rng.chance(0.15);
    let citizen = (!anonymous).then(|| {
        (
            super::world::person_name(&mut rng),
            super::world::mobile(&mut rng),
        )
    });
    let town_name = LINGTAI_TOWNS[town].1;
    let place = format!(
        "灵台县{town_name}{}村附近",
        rng.pick(&["东", "西", "南", "北", "新", "老"])
    );
    let title = format!("反映{}{}问题", town_name, tpl.violation);
    let content = format!(
        "来电人反映：在{place}，有商户或个人存在{}的情况，已持续一段时间，对周边群众生活造成影响，希望相关部门尽快核实处理并给予答复。",
        tpl.violation
    );
    let status_roll = rng.below(100);
    let direct = appeal == "咨询" && rng.chance(0.6);
    let agency = (!direct).then(|| w.pick_agency_of(&mut Rng::new(&[w.seed, 0x1234A, idx]), dept));
    let dispatched = agency.map(|_| received + Duration::minutes(rng.range(5, 240)));
    let deadline = dispatched.map(|d| d + Duration::days(if appeal == "咨询" { 3 } else { 10 }));
    let (status, replied, closed) = if direct {
        (
            "直接办结",
            None,
            Some(received + Duration::minutes(rng.range(3, 30))),
        )
    } else if status_roll < 12 {
        ("办理中", None, None)
    } else if status_roll < 18 {
        (
            "已反馈",
            dispatched.map(|d| d + Duration::hours(rng.range(4, 200))),
            None,
        )
    } else {
        let r = dispatched.map(|d| d + Duration::hours(rng.range(4, 200)));
        (
            "办结归档",
            r,
            r.map(|r| r + Duration::hours(rng.range(2, 72))),
        )
    };
    let reply = replied.map(|t| {
        (
            format!(
                "经{}核实，来电反映情况属实，已依法责令当事人立即整改，并将持续跟踪监督。感谢您对我县工作的支持。",
                w.agencies[agency.unwrap_or(0)].name
            ),
            t,
        )
    });
    let followed = status == "办结归档";
    let case_no = ((appeal == "投诉" || appeal == "举报") && agency.is_some() && rng.chance(0.25))
        .then(|| {
            format!(
                "{}立〔{}〕{}号",
                w.agencies[agency.unwrap_or(0)].abbr,
                received.year(),
                idx % 100_000 + 1
            )
        });
    Ticket {
        number: format!("LT12345{}{:07}", received.format("%Y%m%d"), idx),
        channel: rng.pick(&[
            "电话",
            "电话",
            "电话",
            "电话",
            "网站",
            "微信",
            "APP",
            "短信",
            "邮件",
            "领导留言板",
            "上级转办",
        ]),
        received,
        appeal,
        title,
        content,
        citizen,
        secret: rng.chance(0.1),
        address: place,
        town,
        urgent: rng.chance(0.08),
        agency,
        dispatched,
        deadline,
        status,
        reply,
        closed,
        satisfaction: followed
            .then(|| rng.pick(&["满意", "满意", "满意", "基本满意", "不满意", "未回访"])),
        solved: followed.then(|| rng.pick(&["已解决", "已解决", "已解决", "部分解决", "未解决"])),
        case_no,
    }
}
