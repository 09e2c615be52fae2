//! Dialect of the 双随机、一公开 platform: spot-check tasks as JSON pages and results as a
//! GBK-encoded CSV export with Chinese column names and List A result codes, both behind a bearer
//! token and filtered by `modifiedSince=YYYYMMDDHHmmss`. See docs/simulators.md §4.

use super::core::{Core, Params, Payload, StreamDef, num_param};
use super::prim::{Rec, V, at, csv_field, date, dt_compact, json_fields, json_str, ymd_compact};
use super::push::{Checked, Item, Lang, PushOp};
use super::records::{self, Invalid, break_party};
use super::stream::Entry;
use super::world::PartyKind;
use axum::response::Response;
use chrono::{Duration, NaiveDateTime};

use Invalid::*;

pub static STREAMS: &[StreamDef] = &[
    StreamDef {
        name: "tasks",
        rtype: "spot_check_task",
        share: 10,
        salt: 31,
        invalid: &[Missing, UnknownCode, BadDate],
        missing: "taskName",
        code: ("checkKind", "综合抽查"),
        date: ("drawDate", "20250230"),
    },
    StreamDef {
        name: "results",
        rtype: "spot_check_result",
        share: 90,
        salt: 32,
        invalid: &[BadUscc, Missing, UnknownCode, BadDate, FewOfficers],
        missing: "统一社会信用代码",
        code: ("检查结果", "77"),
        date: ("检查日期", "20250230"),
    },
];

pub const COLUMNS: [&str; 15] = [
    "记录编号",
    "任务编号",
    "企业名称",
    "统一社会信用代码",
    "主体类型",
    "检查结果",
    "检查日期",
    "公示日期",
    "检查人员",
    "执法证号",
    "实施机关",
    "实施机关代码",
    "行政区划",
    "备注",
    "修改时间",
];

const STEP_SECS: i64 = 5;

fn base() -> NaiveDateTime {
    at(date(2025, 1, 1), 0)
}

fn modified(pos: u64) -> NaiveDateTime {
    base() + Duration::seconds(pos as i64 * STEP_SECS)
}

pub fn upstream_id(core: &Core, s: usize, index: u64) -> String {
    if s == 0 {
        records::task(&core.world, index).number
    } else {
        format!("SJ{:012}", index + 1)
    }
}

pub fn key(core: &Core, s: usize, index: u64) -> String {
    if s == 0 {
        return upstream_id(core, s, index);
    }
    let r = records::spot_result(&core.world, index, core.tasks);
    let t = records::task(&core.world, r.task);
    format!("{}:{}", t.number, r.party.uscc.unwrap_or_default())
}

fn render(core: &Core, s: usize, e: &Entry, initial: u64) -> Rec {
    let w = &core.world;
    let i = e.index;
    let inv = core.invalid(s, i, initial);
    let mut r = Rec::with_capacity(16);
    if s == 0 {
        let t = records::task(w, i);
        let a = &w.agencies[t.agency];
        r.s("taskCode", t.number);
        r.s("planCode", t.plan);
        r.s(
            "taskName",
            if e.version == 0 {
                t.name
            } else {
                format!("{}（调整{}）", t.name, e.version)
            },
        );
        r.s("checkKind", t.kind);
        r.s("checkMethod", t.method);
        r.put("ratio", V::n(t.ratio));
        r.put("sampleSize", V::n(t.sample));
        r.s("drawDate", ymd_compact(t.drawn));
        r.s("deadline", ymd_compact(t.deadline));
        r.s("orgName", a.name.clone());
        r.s("orgCode", a.uscc.clone());
        r.s("isJoint", if t.joint { "1" } else { "0" });
        r.s("itemCodes", t.items.join(","));
        r.s("taskStatus", t.status);
        r.s("areaCode", a.division);
        r.s("modifyTime", dt_compact(modified(e.pos)));
        core.break_fields(s, &mut r, inv, false);
        return r;
    }
    let mut x = records::spot_result(w, i, core.tasks);
    if let Some(k) = inv {
        break_party(core.seed, i, &mut x.party, k);
        if k == FewOfficers {
            x.officers.truncate(1);
        }
    }
    let t = records::task(w, x.task);
    let a = &w.agencies[x.agency];
    let os: Vec<_> = x.officers.iter().map(|o| &w.officers[*o]).collect();
    r.s("记录编号", upstream_id(core, s, i));
    r.s("任务编号", t.number);
    r.s("企业名称", x.party.name.clone());
    r.s("统一社会信用代码", x.party.uscc.clone().unwrap_or_default());
    r.s(
        "主体类型",
        if x.party.kind == PartyKind::Individual {
            "个体工商户"
        } else {
            "企业"
        },
    );
    r.s("检查结果", x.results);
    r.s("检查日期", ymd_compact(x.inspected));
    r.s("公示日期", ymd_compact(x.published));
    r.s(
        "检查人员",
        os.iter()
            .map(|o| o.name.as_str())
            .collect::<Vec<_>>()
            .join(";"),
    );
    r.s(
        "执法证号",
        os.iter()
            .map(|o| o.cert.as_str())
            .collect::<Vec<_>>()
            .join(";"),
    );
    r.s("实施机关", a.name.clone());
    r.s("实施机关代码", a.uscc.clone());
    r.s("行政区划", a.division);
    r.s(
        "备注",
        if e.version == 0 {
            x.remarks
        } else {
            format!("结果更正{}", e.version)
        },
    );
    r.s("修改时间", dt_compact(modified(e.pos)));
    core.break_fields(s, &mut r, inv, true);
    r
}

fn start_from(core: &Core, p: &Params) -> Result<u64, Response> {
    match p.get("modifiedSince").filter(|v| !v.is_empty()) {
        None => Ok(0),
        Some(v) => {
            let t = NaiveDateTime::parse_from_str(v, "%Y%m%d%H%M%S").map_err(|_| {
                core.bad_param(&format!("modifiedSince must be YYYYMMDDHHmmss, got {v:?}"))
            })?;
            let secs = (t - base()).num_seconds();
            Ok(if secs < 0 {
                0
            } else {
                (secs / STEP_SECS + 1) as u64
            })
        }
    }
}

pub fn serve(core: &Core, path: &str, p: &Params) -> Result<Option<Payload>, Response> {
    let s = match path {
        "/api/tasks" => 0,
        "/export/results.csv" => 1,
        _ => return Ok(None),
    };
    let start = start_from(core, p)?;
    let page = num_param(core, p, "page", 1, 1, u32::MAX as u64)?;
    let max = if s == 0 { 1000 } else { 5000 };
    let size = num_param(core, p, "size", if s == 0 { 500 } else { 1000 }, 1, max)?;
    let (total, entries, _) = core.view(s, start, (page - 1) * size, size as usize);
    let initial = core.stream(s).initial;
    if s == 0 {
        let mut out = Vec::with_capacity(entries.len() * 800 + 128);
        out.extend_from_slice(b"{\"resultCode\":\"0000\",\"resultMsg\":");
        json_str(&mut out, "操作成功");
        out.extend_from_slice(format!(",\"data\":{{\"totalCount\":{total},\"pageNo\":{page},\"pageSize\":{size},\"rows\":[").as_bytes());
        for (n, e) in entries.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            json_fields(&mut out, &render(core, s, e, initial).0);
        }
        out.extend_from_slice(b"]}}");
        return Ok(Some(Payload::json(out)));
    }
    let mut text = String::with_capacity(entries.len() * 400 + 256);
    text.push_str(&COLUMNS.join(","));
    text.push_str("\r\n");
    for e in &entries {
        let r = render(core, s, e, initial);
        for (n, col) in COLUMNS.iter().enumerate() {
            if n > 0 {
                text.push(',');
            }
            csv_field(
                &mut text,
                &r.get(col)
                    .map(|v| v.text().into_owned())
                    .unwrap_or_default(),
            );
        }
        text.push_str("\r\n");
    }
    let (bytes, _, _) = encoding_rs::GBK.encode(&text);
    Ok(Some(Payload {
        content_type: "text/csv; charset=GBK",
        body: bytes.into_owned(),
        headers: vec![("x-total-count", total.to_string())],
    }))
}

/// The fields of a credit tier as the system takes it (`POST /api/credit-tiers`), in the style of
/// its task API.
const TIER_FIELDS: [&str; 10] = [
    "operateType",
    "subjectCode",
    "subjectName",
    "creditScheme",
    "creditLevel",
    "ratePeriod",
    "rateDate",
    "rateOrgName",
    "rateOrgCode",
    "areaCode",
];

/// Tier labels by scheme label (REFERENCE §7): a level must belong to its scheme, since the
/// sampling ratio is read from the pair.
const TIERS: [(&str, &[&str]); 3] = [
    (
        "企业信用风险分类",
        &["信用风险低", "信用风险一般", "信用风险较高", "信用风险高"],
    ),
    ("公共信用综合评价", &["优", "良", "中", "差"]),
    ("纳税信用", &["A级", "B级", "M级", "C级", "D级"]),
];

/// `YYYY`, `YYYY-Qn` or `YYYY-MM`.
fn period_valid(p: &str) -> bool {
    let b = p.as_bytes();
    let year = b.len() >= 4 && b[..4].iter().all(u8::is_ascii_digit);
    match b.len() {
        4 => year,
        7 if year && b[4] == b'-' && b[5] == b'Q' => (b'1'..=b'4').contains(&b[6]),
        7 if year && b[4] == b'-' => p[5..7].parse::<u32>().is_ok_and(|m| (1..=12).contains(&m)),
        _ => false,
    }
}

/// Checks one pushed credit tier as the system does. Key: `<subjectCode>:<ratePeriod>` (the
/// national natural key). Messages in Chinese, like the rest of its API.
pub fn check_tier(raw: &str) -> Checked {
    let mut it = match Item::parse(raw, Lang::Zh) {
        Ok(it) => it,
        Err(rejected) => return rejected,
    };
    let op = match it.required("operateType").as_deref() {
        Some("删除") => PushOp::Delete,
        Some("新增") | Some("修改") | None => PushOp::Put,
        Some(other) => {
            it.bad_code("operateType", other, &["新增", "修改", "删除"]);
            PushOp::Put
        }
    };
    let code = it.required("subjectCode");
    it.uscc("subjectCode", &code);
    let period = it.required("ratePeriod");
    if let Some(p) = &period
        && !period_valid(p)
    {
        it.problem(
            "ratePeriod",
            "E_FORMAT",
            format!("评价期格式错误：“{p}”（YYYY、YYYY-Qn 或 YYYY-MM）"),
        );
    }
    let key = format!(
        "{}:{}",
        code.unwrap_or_default(),
        period.unwrap_or_default()
    );
    it.unknown_fields(&TIER_FIELDS);
    if op == PushOp::Delete {
        return it.finish(key, op, &["operateType"]);
    }
    it.required("subjectName");
    let scheme = it.required("creditScheme");
    let schemes: Vec<&str> = TIERS.iter().map(|(s, _)| *s).collect();
    it.code("creditScheme", &scheme, &schemes);
    let level = it.required("creditLevel");
    let allowed: Vec<&str> = match TIERS.iter().find(|(s, _)| Some(*s) == scheme.as_deref()) {
        Some((_, tiers)) => tiers.to_vec(),
        // Unknown scheme (already reported): any level of any scheme.
        None => TIERS.iter().flat_map(|(_, t)| t.iter().copied()).collect(),
    };
    it.code("creditLevel", &level, &allowed);
    let rated = it.required("rateDate");
    it.date_compact("rateDate", &rated);
    it.text("rateOrgName");
    let org = it.text("rateOrgCode");
    it.uscc("rateOrgCode", &org);
    let area = it.required("areaCode");
    it.digits("areaCode", &area, 6);
    it.finish(key, op, &["operateType"])
}
