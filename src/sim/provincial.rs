//! Dialect of 甘肃省行政执法综合管理监督信息系统: camelCase JSON REST with bearer token,
//! `page`/`size` + `updatedSince` pagination ordered by (updateTime, id), national numeric codes,
//! amounts in 元 as numbers. See docs/simulators.md §1.

use super::core::{Core, Params, Payload, StreamDef, num_param};
use super::prim::{Rec, V, at, date, dt, json_fields, json_str, ymd};
use super::records::{self, CHECK_TYPES, Invalid, RESULTS, Src, break_party};
use super::stream::Entry;
use super::world::{Party, PartyKind};
use axum::response::Response;
use chrono::{Duration, NaiveDateTime};

use Invalid::*;

pub const PENALTIES: usize = 4;

pub static STREAMS: &[StreamDef] = &[
    StreamDef {
        name: "agencies",
        rtype: "agency",
        share: 0,
        salt: 1,
        invalid: &[],
        missing: "",
        code: ("", ""),
        date: ("", ""),
    },
    StreamDef {
        name: "officers",
        rtype: "officer",
        share: 0,
        salt: 2,
        invalid: &[],
        missing: "",
        code: ("", ""),
        date: ("", ""),
    },
    StreamDef {
        name: "items",
        rtype: "enforcement_item",
        share: 5,
        salt: 3,
        invalid: &[Missing, UnknownCode, BadDate],
        missing: "basis",
        code: ("itemType", "77"),
        date: ("publishDate", "2025-02-30"),
    },
    StreamDef {
        name: "inspections",
        rtype: "inspection",
        share: 35,
        salt: 4,
        invalid: &[
            BadUscc,
            BadResidentId,
            Missing,
            UnknownCode,
            BadDate,
            FewOfficers,
        ],
        missing: "superviseItemCode",
        code: ("checkForm", "77"),
        date: ("checkDate", "2025-02-30 10:00:00"),
    },
    StreamDef {
        name: "penalties",
        rtype: "penalty",
        share: 40,
        salt: 5,
        invalid: &[BadUscc, BadResidentId, Missing, UnknownCode, BadDate],
        missing: "illegalFacts",
        code: ("penaltyType", "77"),
        date: ("decisionDate", "2025-02-30"),
    },
    StreamDef {
        name: "coercive-measures",
        rtype: "coercive_measure",
        share: 20,
        salt: 6,
        invalid: &[
            BadUscc,
            BadResidentId,
            Missing,
            UnknownCode,
            BadDate,
            FewOfficers,
        ],
        missing: "illegalFacts",
        code: ("measureKind", "77"),
        date: ("startDate", "2025-02-30"),
    },
];

const STEP_SECS: i64 = 7;

fn base() -> NaiveDateTime {
    at(date(2025, 1, 1), 0)
}

pub fn update_time(pos: u64) -> NaiveDateTime {
    base() + Duration::seconds(pos as i64 * STEP_SECS)
}

const PREFIX: [&str; 6] = ["ZT", "RY", "SX", "JC", "CF", "QZ"];

pub fn upstream_id(_core: &Core, s: usize, index: u64) -> String {
    format!("{}{:010}", PREFIX[s], index + 1)
}

fn item_code(core: &Core, index: u64) -> (usize, String) {
    let mut rng = super::prim::Rng::new(&[core.seed, 0x5E00, index]);
    let agency = core.world.pick_agency(&mut rng);
    let ty = rng.pick(&["01", "02", "02", "02", "03", "04", "04", "05", "08", "99"]);
    (
        agency,
        format!(
            "{}-{}-{:06}",
            core.world.agencies[agency].division,
            ty,
            index + 1
        ),
    )
}

pub fn key(core: &Core, s: usize, index: u64) -> String {
    let w = &core.world;
    match s {
        0 => w.agencies[index as usize].uscc.clone(),
        1 => w.officers[index as usize].cert.clone(),
        2 => item_code(core, index).1,
        3 => upstream_id(core, s, index),
        4 => {
            let (a, n, _) = records::penalty_head(w, Src::Provincial, index);
            format!("{}:{}", w.agencies[a].uscc, n)
        }
        _ => {
            let (a, n, _) = records::coercive_head(w, 1, index);
            format!("{}:{}", w.agencies[a].uscc, n)
        }
    }
}

fn party_flat(r: &mut Rec, p: &Party) {
    r.s("partyType", p.kind.code());
    r.s("partyName", p.name.clone());
    if let Some(u) = &p.uscc {
        r.s("partyCreditCode", u.clone());
    }
    if let Some(n) = &p.reg_no {
        r.s("partyRegNo", n.clone());
    }
    if p.kind == PartyKind::Person {
        r.s("partyIdType", "01");
        r.s("partyIdNo", p.id_number.clone().unwrap_or_default());
    }
    if let Some(l) = &p.legal_rep {
        r.s("legalPerson", l.clone());
    }
}

fn officers(core: &Core, ids: &[usize]) -> V {
    V::Arr(
        ids.iter()
            .map(|i| {
                let o = &core.world.officers[*i];
                V::Obj(vec![
                    ("name", V::s(o.name.clone())),
                    ("certNo", V::s(o.cert.clone())),
                ])
            })
            .collect(),
    )
}

fn suffix(text: String, version: u32) -> String {
    if version == 0 {
        text
    } else {
        format!("{text}（更正{version}）")
    }
}

pub fn render(core: &Core, s: usize, e: &Entry, initial: u64) -> Rec {
    let w = &core.world;
    let i = e.index;
    let inv = core.invalid(s, i, initial);
    let mut r = Rec::with_capacity(32);
    r.s("id", upstream_id(core, s, i));
    match s {
        0 => {
            let a = &w.agencies[i as usize];
            r.s("orgName", a.name.clone());
            r.s("creditCode", a.uscc.clone());
            r.s("orgType", a.kind.to_string());
            r.s("orgLevel", a.level.to_string());
            r.s("areaCode", a.division);
            r.s("lawField", a.domain);
            if let Some(p) = a.parent {
                r.s("parentCreditCode", w.agencies[p].uscc.clone());
            }
            if let Some(p) = a.principal {
                r.s("entrustCreditCode", w.agencies[p].uscc.clone());
            }
            r.s("status", "1");
            r.s("address", a.address.clone());
            r.s("phone", a.phone.clone());
            r.s("leaderName", a.head.clone());
        }
        1 => {
            let o = &w.officers[i as usize];
            let a = &w.agencies[o.agency];
            r.s("name", o.name.clone());
            r.s("gender", o.gender.to_string());
            r.s("idCard", o.id_number.clone());
            r.s("orgCreditCode", a.uscc.clone());
            r.s("certNo", o.cert.clone());
            r.s("certType", o.cert_type.to_string());
            r.s("lawField", a.domain);
            r.s("issueOrg", o.issued_by.clone());
            r.s("issueDate", ymd(o.issued_on, '-'));
            r.s("expireDate", ymd(o.valid_until, '-'));
            r.s("certStatus", "1");
            r.s("areaCode", a.division);
        }
        2 => {
            let (agency, code) = item_code(core, i);
            let a = &w.agencies[agency];
            let ty = &code[7..9];
            let tpl = &records::TEMPLATES[a.dept];
            let mut rng = super::prim::Rng::new(&[core.seed, 0x5E01, i]);
            let (verb, basis) = match ty {
                "01" => (
                    "许可",
                    format!("{}等法律法规关于行政许可的规定", tpl.coercive_basis),
                ),
                "02" => ("处罚", tpl.basis.to_string()),
                "03" => ("强制", tpl.coercive_basis.to_string()),
                "04" => (
                    "检查",
                    format!("《{}监督检查办法》及{}", a.domain, tpl.coercive_basis),
                ),
                _ => ("处理", format!("{}相关规定", tpl.basis)),
            };
            r.s("itemCode", code.clone());
            r.s(
                "itemName",
                suffix(format!("对{}的行政{}", tpl.violation, verb), e.version),
            );
            r.s("itemType", ty.to_string());
            r.s("basis", basis);
            r.s("orgName", a.name.clone());
            r.s("orgCreditCode", a.uscc.clone());
            r.s("orgLevel", a.level.to_string());
            if ty == "04" {
                r.s(
                    "superviseItemCode",
                    records::supervise_item_code(core.seed, a.dept, rng.below(12)),
                );
            }
            r.s("status", if rng.chance(0.92) { "1" } else { "2" });
            r.s("version", format!("V{}", 1 + rng.below(3)));
            r.s(
                "publishDate",
                ymd(super::prim::day(rng.range(0, 1700)), '-'),
            );
            r.s("areaCode", a.division);
        }
        3 => {
            let mut x = records::inspection(w, 1, i);
            if let Some(k) = inv {
                break_party(core.seed, i, &mut x.party, k);
                if k == FewOfficers {
                    x.officers.truncate(1);
                }
            }
            let a = &w.agencies[x.agency];
            r.s("checkName", suffix(x.name, e.version));
            r.s("superviseItemCode", x.supervise_item_code);
            r.s("checkListCode", x.check_list_code);
            r.s("orgName", a.name.clone());
            r.s("orgCreditCode", a.uscc.clone());
            party_flat(&mut r, &x.party);
            r.s("areaCode", a.division);
            r.s("checkForm", x.check_form);
            r.s("checkType", CHECK_TYPES[x.check_type].0);
            r.s("checkMode", records::CHECK_MODES[x.check_mode].0);
            r.s("checkResult", RESULTS[x.result].1);
            r.s("checkDate", dt(x.check_at));
            r.put("officers", officers(core, &x.officers));
            r.s("submitTime", dt(x.submitted_at));
            if let Some(p) = x.plan_id {
                r.s("planId", p);
            }
        }
        4 => {
            let mut p = records::penalty(w, Src::Provincial, i, &[0, 1, 2, 3, 4, 5, 6, 7]);
            if let Some(k) = inv {
                break_party(core.seed, i, &mut p.party, k);
            }
            let a = &w.agencies[p.agency];
            r.s("decisionNo", p.decision_number);
            r.s("orgName", a.name.clone());
            r.s("orgCreditCode", a.uscc.clone());
            party_flat(&mut r, &p.party);
            r.s("illegalType", p.violation_type);
            r.s("illegalFacts", p.facts);
            r.s("penaltyBasis", p.basis);
            r.s("penaltyType", p.categories.join(","));
            r.s("penaltyContent", suffix(p.content, e.version));
            if let Some(f) = p.fine {
                r.put("fineAmount", V::n(f));
            }
            if let Some(c) = p.confiscated {
                r.put("confiscateAmount", V::n(c));
            }
            if let Some(l) = p.license_affected {
                r.s("licenseInfo", l);
            }
            r.s("decisionDate", ymd(p.decision_date, '-'));
            r.s("validUntil", ymd(p.valid_until, '-'));
            r.s("publishUntil", ymd(p.publish_until, '-'));
            r.s("sourceOrgName", a.name.clone());
            r.s("sourceOrgCreditCode", a.uscc.clone());
            r.s("areaCode", a.division);
            r.put("officers", officers(core, &p.officers));
            r.s("procedure", p.procedure.to_string());
            r.s("remark", p.remarks);
        }
        _ => {
            let mut c = records::coercive(w, 1, i);
            if let Some(k) = inv {
                break_party(core.seed, i, &mut c.party, k);
                if k == FewOfficers {
                    c.officers.truncate(1);
                }
            }
            let a = &w.agencies[c.agency];
            r.s("decisionNo", c.decision_number);
            r.s("measureName", suffix(c.name, e.version));
            r.s("orgName", a.name.clone());
            r.s("orgCreditCode", a.uscc.clone());
            party_flat(&mut r, &c.party);
            r.s("measureKind", c.kind.to_string());
            if c.kind == 1 {
                r.s("measureType", records::MEASURE_TYPES[c.sub].0);
            } else {
                r.s("executeType", records::EXECUTE_TYPES[c.sub].0);
            }
            r.s("illegalFacts", c.facts);
            r.s("basis", c.basis);
            r.s("startDate", ymd(c.start, '-'));
            if let Some(d) = c.duration {
                r.put("durationDays", V::n(d));
            }
            if let Some(x) = c.extension {
                r.put("extendDays", V::n(x));
            }
            if let Some(end) = c.end {
                r.s("endDate", ymd(end, '-'));
            }
            if i.is_multiple_of(3) {
                r.s("inspectionId", upstream_id(core, 3, i));
            }
            r.put("officers", officers(core, &c.officers));
            r.s("areaCode", a.division);
        }
    }
    r.s("updateTime", dt(update_time(e.pos)));
    core.break_fields(s, &mut r, inv, false);
    r
}

pub fn serve(core: &Core, path: &str, p: &Params) -> Result<Option<Payload>, Response> {
    let Some(name) = path.strip_prefix("/api/v1/") else {
        return Ok(None);
    };
    let Some(s) = core.stream_index(name) else {
        return Ok(None);
    };
    let page = num_param(core, p, "page", 1, 1, u32::MAX as u64)?;
    let size = num_param(core, p, "size", 500, 1, 1000)?;
    let start = match p.get("updatedSince").filter(|v| !v.is_empty()) {
        None => 0,
        Some(v) => {
            let t = NaiveDateTime::parse_from_str(v, "%Y-%m-%d %H:%M:%S").map_err(|_| {
                core.bad_param(&format!(
                    "updatedSince must be YYYY-MM-DD HH:mm:ss, got {v:?}"
                ))
            })?;
            let secs = (t - base()).num_seconds();
            if secs < 0 {
                0
            } else {
                (secs / STEP_SECS + 1) as u64
            }
        }
    };
    let (total, entries, _) = core.view(s, start, (page - 1) * size, size as usize);
    let initial = core.stream(s).initial;
    let mut out = Vec::with_capacity(entries.len() * 1400 + 128);
    out.extend_from_slice(b"{\"code\":0,\"msg\":");
    json_str(&mut out, "成功");
    out.extend_from_slice(
        format!(",\"data\":{{\"total\":{total},\"page\":{page},\"size\":{size},\"list\":[")
            .as_bytes(),
    );
    for (k, e) in entries.iter().enumerate() {
        if k > 0 {
            out.push(b',');
        }
        json_fields(&mut out, &render(core, s, e, initial).0);
    }
    out.extend_from_slice(b"]}}");
    Ok(Some(Payload::json(out)))
}
