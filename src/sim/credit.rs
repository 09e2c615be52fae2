//! Dialect of the 信用信息共享平台 (双公示): 2021 field codes (CF_*/XK_*) as JSON with opaque
//! cursors, a credit-rating stream, and a legacy 2016-format penalty feed as XML; SM3-signed
//! requests. About 30% of the provincial penalties are republished here. See docs/simulators.md §3.

use super::auth::{TIMESTAMP_WINDOW_MS, canonical_query, now_ms, same, sm3_hex};
use super::core::{Core, Params, Payload, StreamDef, num_param};
use super::prim::{Rec, V, at, date, dt, dt_compact, json_fields, wan_yuan, xml_record, ymd};
use super::push::{Checked, Item, Lang, PushOp};
use super::records::{
    self, ID_TYPES, Invalid, LICENSE_KINDS, PENALTY_CATEGORIES, SCHEMES, Src, break_party,
    penalty_label,
};
use super::stream::Entry;
use super::world::{PLACEHOLDER_USCC, Party, PartyKind};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use chrono::{Duration, NaiveDateTime};

use Invalid::*;

pub static STREAMS: &[StreamDef] = &[
    StreamDef {
        name: "penalties",
        rtype: "penalty",
        share: 70,
        salt: 21,
        invalid: &[BadUscc, BadResidentId, Missing, UnknownCode, BadDate],
        missing: "CF_SY",
        code: ("CF_CFLB", "罚金"),
        date: ("CF_JDRQ", "2025/02/30"),
    },
    StreamDef {
        name: "licenses",
        rtype: "license",
        share: 15,
        salt: 22,
        invalid: &[BadUscc, BadResidentId, Missing, UnknownCode, BadDate],
        missing: "XK_NR",
        code: ("XK_XKLB", "特别许可"),
        date: ("XK_JDRQ", "2025/02/30"),
    },
    StreamDef {
        name: "credit-ratings",
        rtype: "credit_rating",
        share: 10,
        salt: 23,
        invalid: &[BadUscc, Missing, UnknownCode, BadDate],
        missing: "XY_ZTMC",
        code: ("XY_DJ", "E类"),
        date: ("XY_PJRQ", "2025/02/30"),
    },
    StreamDef {
        name: "legacy-penalties",
        rtype: "penalty",
        share: 5,
        salt: 24,
        invalid: &[BadUscc, BadResidentId, Missing, UnknownCode, BadDate],
        missing: "CF_SY",
        code: ("CF_CFLB1", "罚金"),
        date: ("CF_JDRQ", "2025-02-30"),
    },
];

const LEGACY: usize = 3;
const ID_PREFIX: [&str; 4] = ["CF", "XK", "XY", "LS"];

pub fn upstream_id(_core: &Core, s: usize, index: u64) -> String {
    format!("{}{:012}", ID_PREFIX[s], index + 1)
}

/// The provincial penalty that credit penalty `i` republishes, if any: every 5th item, mapped onto
/// the provincial indices `j` with `j % 10 < 3`.
pub fn shared(core: &Core, i: u64, initial: u64) -> Option<u64> {
    if i >= initial || !i.is_multiple_of(5) {
        return None;
    }
    let p = core.provincial_penalties;
    let available = (p / 10) * 3 + (p % 10).min(3);
    let k = i / 5;
    (k < available).then(|| (k / 3) * 10 + k % 3)
}

fn penalty_for(core: &Core, s: usize, i: u64, initial: u64) -> (records::Penalty, bool) {
    if s == LEGACY {
        return (
            records::penalty(&core.world, Src::Legacy, i, &[0, 1, 2, 6, 7]),
            false,
        );
    }
    match shared(core, i, initial) {
        Some(j) => (
            records::penalty(&core.world, Src::Provincial, j, &[0, 1, 2, 3, 4, 5, 6, 7]),
            true,
        ),
        None => (
            records::penalty(&core.world, Src::Credit, i, &[0, 1, 2, 3, 4, 5, 6, 7]),
            false,
        ),
    }
}

pub fn key(core: &Core, s: usize, index: u64) -> String {
    let w = &core.world;
    let initial = core.stream(s).initial;
    match s {
        0 | LEGACY => {
            let (a, n, _) = match (s, shared(core, index, initial)) {
                (0, Some(j)) => records::penalty_head(w, Src::Provincial, j),
                (0, None) => records::penalty_head(w, Src::Credit, index),
                _ => records::penalty_head(w, Src::Legacy, index),
            };
            format!("{}:{}", w.agencies[a].uscc, n)
        }
        1 => {
            let (a, n, _) = records::license_head(w, index);
            format!("{}:{}", w.agencies[a].uscc, n)
        }
        _ => {
            let r = records::rating(w, index);
            format!("{}:{}", r.party.uscc.unwrap_or_default(), r.period)
        }
    }
}

const CF_PARTY: [&str; 13] = [
    "CF_XDR_MC",
    "CF_XDR_LB",
    "CF_XDR_SHXYM",
    "CF_XDR_GSZC",
    "CF_XDR_ZZJG",
    "CF_XDR_SWDJ",
    "CF_XDR_SYDW",
    "CF_XDR_SHZZ",
    "CF_FRDB",
    "CF_FR_ZJLX",
    "CF_FR_ZJHM",
    "CF_XDR_ZJLX",
    "CF_XDR_ZJHM",
];
const XK_PARTY: [&str; 13] = [
    "XK_XDR_MC",
    "XK_XDR_LB",
    "XK_XDR_SHXYM",
    "XK_XDR_GSZC",
    "XK_XDR_ZZJG",
    "XK_XDR_SWDJ",
    "XK_XDR_SYDW",
    "XK_XDR_SHZZ",
    "XK_FRDB",
    "XK_FR_ZJLX",
    "XK_FR_ZJHM",
    "XK_XDR_ZJLX",
    "XK_XDR_ZJHM",
];

fn party_2021(r: &mut Rec, k: &[&'static str; 13], p: &Party, index: u64) {
    let person = p.kind == PartyKind::Person;
    let opt = |o: &Option<String>| o.clone().unwrap_or_default();
    r.s(k[0], p.name.clone());
    r.s(k[1], p.kind.label());
    r.s(k[2], opt(&p.uscc));
    r.s(k[3], opt(&p.reg_no));
    r.s(k[4], opt(&p.org_code));
    let tax = if p.kind == PartyKind::Company && index.is_multiple_of(4) {
        opt(&p.uscc)
    } else {
        String::new()
    };
    r.s(k[5], tax);
    r.s(k[6], "");
    r.s(k[7], "");
    r.s(k[8], opt(&p.legal_rep));
    r.s(k[9], "");
    r.s(k[10], "");
    r.s(k[11], if person { "身份证" } else { "" });
    r.s(
        k[12],
        if person {
            opt(&p.id_number)
        } else {
            String::new()
        },
    );
}

fn slash(d: chrono::NaiveDate) -> String {
    ymd(d, '/')
}

fn sjc(pos: u64) -> NaiveDateTime {
    at(date(2025, 1, 1), 0) + Duration::seconds(pos as i64 * 3)
}

fn suffix(text: String, version: u32) -> String {
    if version == 0 {
        text
    } else {
        format!("{text}（更正{version}）")
    }
}

fn render(core: &Core, s: usize, e: &Entry, initial: u64) -> Rec {
    let w = &core.world;
    let i = e.index;
    let inv = core.invalid(s, i, initial);
    let mut r = Rec::with_capacity(36);
    r.s("ID", upstream_id(core, s, i));
    match s {
        0 => {
            let (mut p, is_shared) = penalty_for(core, s, i, initial);
            if let Some(k) = inv {
                break_party(core.seed, i, &mut p.party, k);
            }
            let a = &w.agencies[p.agency];
            party_2021(&mut r, &CF_PARTY, &p.party, i);
            r.s("CF_WSH", p.decision_number);
            r.s("CF_WFXW", p.violation_type);
            r.s("CF_SY", p.facts);
            r.s("CF_YJ", p.basis);
            r.s(
                "CF_CFLB",
                p.categories
                    .iter()
                    .map(|c| penalty_label(c))
                    .collect::<Vec<_>>()
                    .join(";"),
            );
            r.s("CF_NR", suffix(p.content, e.version));
            r.put("CF_NR_FK", p.fine.map_or(V::Null, |f| V::Num(wan_yuan(f))));
            r.put(
                "CF_NR_WFFF",
                p.confiscated.map_or(V::Null, |c| V::Num(wan_yuan(c))),
            );
            r.s("CF_NR_ZKDX", p.license_affected.unwrap_or_default());
            r.s("CF_JDRQ", slash(p.decision_date));
            r.s("CF_YXQ", slash(p.valid_until));
            r.s("CF_GSJZQ", slash(p.publish_until));
            r.s("CF_CFJG", a.name.clone());
            r.s("CF_CFJGDM", a.uscc.clone());
            r.s("CF_SJLY", a.name.clone());
            r.s("CF_SJLYDM", a.uscc.clone());
            // The platform trims 备注 of republished records: a harmless difference.
            let bz = if is_shared {
                p.remarks.split('；').next().unwrap_or_default().to_string()
            } else {
                p.remarks
            };
            r.s("BZ", bz);
            r.s("DFBM", a.division);
            r.s("SJC", dt(sjc(e.pos)));
        }
        1 => {
            let mut l = records::license(w, i);
            if let Some(k) = inv {
                break_party(core.seed, i, &mut l.party, k);
            }
            let a = &w.agencies[l.agency];
            party_2021(&mut r, &XK_PARTY, &l.party, i);
            r.s("XK_XKWS", "准予行政许可决定书");
            r.s("XK_WSH", l.decision_number);
            r.s("XK_XKLB", LICENSE_KINDS[l.kind].1);
            r.s("XK_XKZS", l.certificate);
            r.s("XK_XKBH", l.number);
            r.s("XK_NR", suffix(l.content, e.version));
            r.s("XK_JDRQ", slash(l.decision_date));
            r.s("XK_YXQZ", slash(l.decision_date));
            r.s("XK_YXQZI", slash(l.valid_until));
            r.s("XK_XKJG", a.name.clone());
            r.s("XK_XKJGDM", a.uscc.clone());
            r.s("XK_ZT", l.status);
            r.s("XK_LYDW", a.name.clone());
            r.s("XK_LYDWDM", a.uscc.clone());
            r.s("BZ", "");
            r.s("DFBM", a.division);
            r.s("SJC", dt(sjc(e.pos)));
        }
        2 => {
            let mut x = records::rating(w, i);
            if let Some(k) = inv {
                break_party(core.seed, i, &mut x.party, k);
            }
            r.s("XY_ZTMC", x.party.name.clone());
            r.s("XY_ZTDM", x.party.uscc.clone().unwrap_or_default());
            r.s("XY_PJTX", SCHEMES[x.scheme].1);
            r.s("XY_DJ", x.tier_label);
            r.s("XY_PJQJ", x.period);
            r.s("XY_PJRQ", slash(x.rated_on));
            let (n, c) = x
                .agency
                .map(|a| (w.agencies[a].name.clone(), w.agencies[a].uscc.clone()))
                .unwrap_or_default();
            r.s("XY_PJJG", n);
            r.s("XY_PJJGDM", c);
            r.s(
                "XY_BZ",
                if e.version == 0 {
                    String::new()
                } else {
                    format!("更正{}", e.version)
                },
            );
            r.s("DFBM", x.party.division);
            r.s("SJC", dt(sjc(e.pos)));
        }
        _ => {
            let (mut p, _) = penalty_for(core, s, i, initial);
            if let Some(k) = inv {
                break_party(core.seed, i, &mut p.party, k);
            }
            let a = &w.agencies[p.agency];
            let opt = |o: &Option<String>| o.clone().unwrap_or_default();
            r.s("CF_WSH", p.decision_number);
            r.s("CF_CFMC", p.violation_type);
            r.s("CF_CFLB1", penalty_label(p.categories[0]));
            r.s(
                "CF_CFLB2",
                p.categories.get(1).map(|c| penalty_label(c)).unwrap_or(""),
            );
            r.s("CF_SY", p.facts);
            r.s("CF_YJ", p.basis);
            r.s("CF_XDR_MC", p.party.name.clone());
            r.s("CF_XDR_LB", p.party.kind.label());
            r.s("CF_XDR_SHXYM", opt(&p.party.uscc));
            r.s("CF_XDR_ZDM", opt(&p.party.org_code));
            r.s("CF_XDR_GSDJ", opt(&p.party.reg_no));
            r.s("CF_XDR_SFZ", opt(&p.party.id_number));
            r.s("CF_FR", opt(&p.party.legal_rep));
            r.s("CF_JG", suffix(p.content, e.version));
            r.s("CF_FKJE", p.fine.map(wan_yuan).unwrap_or_default());
            r.s("CF_JDRQ", ymd(p.decision_date, '-'));
            r.s("CF_XZJG", a.name.clone());
            r.s("CF_XZJGDM", a.uscc.clone());
            r.s("CF_ZT", "0");
            r.s("DFBM", a.division);
            r.s("SJC", dt_compact(sjc(e.pos)));
            r.s("BZ", p.remarks);
        }
    }
    core.break_fields(s, &mut r, inv, true);
    r
}

pub fn auth(core: &Core, method: &Method, uri: &Uri, headers: &HeaderMap) -> Result<(), Response> {
    let q = super::core::params(uri);
    let get = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| q.get(n).cloned())
            .filter(|v| !v.is_empty())
    };
    let fail = |code: &str, msg: &str| core.error(StatusCode::UNAUTHORIZED, code, msg);
    let (Some(key), Some(ts), Some(nonce), Some(sign)) =
        (get("appKey"), get("timestamp"), get("nonce"), get("sign"))
    else {
        return Err(fail("4010", "缺少认证参数"));
    };
    if !same(&key, core.creds.get("XIEZHI_CREDIT_APP_KEY")) {
        return Err(fail("4014", "appKey无效"));
    }
    match ts.parse::<i64>() {
        Ok(t) if (now_ms() - t).abs() <= TIMESTAMP_WINDOW_MS => {}
        _ => return Err(fail("4012", "时间戳超出范围")),
    }
    let message = format!(
        "{key}\n{ts}\n{nonce}\n{}\n{}\n{}\n{}",
        method.as_str(),
        uri.path(),
        canonical_query(uri.query(), Some("sign")),
        core.creds.get("XIEZHI_CREDIT_APP_SECRET")
    );
    if !same(&sign.to_ascii_lowercase(), &sm3_hex(&message)) {
        return Err(fail("4011", "签名错误"));
    }
    if !core.nonces.fresh(&nonce) {
        return Err(fail("4013", "nonce重复"));
    }
    Ok(())
}

const CURSOR_MASK: u64 = 0x5BD1_E995_3C6E_F372;

fn cursor_token(pos: u64) -> String {
    format!("v1.{:016x}", pos ^ CURSOR_MASK)
}

fn parse_cursor(core: &Core, p: &Params) -> Result<u64, Response> {
    match p.get("cursor").filter(|c| !c.is_empty()) {
        None => Ok(0),
        Some(c) => c
            .strip_prefix("v1.")
            .and_then(|h| u64::from_str_radix(h, 16).ok())
            .map(|v| v ^ CURSOR_MASK)
            .ok_or_else(|| {
                core.error(
                    StatusCode::BAD_REQUEST,
                    "4000",
                    &format!("参数错误：无效的cursor {c:?}"),
                )
            }),
    }
}

pub fn serve(core: &Core, path: &str, p: &Params) -> Result<Option<Payload>, Response> {
    let s = match path {
        "/api/v2/penalties" => 0,
        "/api/v2/licenses" => 1,
        "/api/v2/credit-ratings" => 2,
        "/legacy/penalties.xml" => LEGACY,
        _ => return Ok(None),
    };
    let start = parse_cursor(core, p)?;
    let limit = num_param(core, p, "limit", 500, 1, 1000)? as usize;
    let (entries, next, more, initial) = {
        let st = core.stream(s);
        let entries = st.view(start, 0, limit);
        let next = if entries.len() < limit {
            st.positions().max(start)
        } else {
            entries.last().map_or(start, |e| e.pos + 1)
        };
        (entries, next, st.view_count(next) > 0, st.initial)
    };
    if s == LEGACY {
        let mut out = String::with_capacity(entries.len() * 2000 + 256);
        out.push_str(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ExchangeMessage><Header><NextCursor>",
        );
        out.push_str(&cursor_token(next));
        out.push_str(&format!(
            "</NextCursor><HasMore>{more}</HasMore><Count>{}</Count></Header><Body>",
            entries.len()
        ));
        for e in &entries {
            xml_record(&mut out, &render(core, s, e, initial));
        }
        out.push_str("</Body></ExchangeMessage>");
        return Ok(Some(Payload {
            content_type: "application/xml; charset=utf-8",
            body: out.into_bytes(),
            headers: Vec::new(),
        }));
    }
    let mut out = Vec::with_capacity(entries.len() * 1400 + 128);
    out.extend_from_slice(b"{\"items\":[");
    for (n, e) in entries.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        json_fields(&mut out, &render(core, s, e, initial).0);
    }
    out.extend_from_slice(
        format!(
            "],\"next_cursor\":\"{}\",\"has_more\":{more}}}",
            cursor_token(next)
        )
        .as_bytes(),
    );
    Ok(Some(Payload::json(out)))
}

// ---------- pushes (POST /api/v2/publish/penalties | licenses) ----------

/// Field names of one 2021 publication kind, for the checks both kinds share.
struct Pub {
    party: &'static [&'static str; 13],
    number: &'static str,
    agency: &'static str,
    agency_code: &'static str,
    source: &'static str,
    source_code: &'static str,
    decision_date: &'static str,
    /// every other field of the kind, as the pull renders it
    rest: &'static [&'static str],
}

const PENALTY_PUB: Pub = Pub {
    party: &CF_PARTY,
    number: "CF_WSH",
    agency: "CF_CFJG",
    agency_code: "CF_CFJGDM",
    source: "CF_SJLY",
    source_code: "CF_SJLYDM",
    decision_date: "CF_JDRQ",
    rest: &[
        "CF_WFXW",
        "CF_SY",
        "CF_YJ",
        "CF_CFLB",
        "CF_NR",
        "CF_NR_FK",
        "CF_NR_WFFF",
        "CF_NR_ZKDX",
        "CF_YXQ",
        "CF_GSJZQ",
    ],
};

const LICENSE_PUB: Pub = Pub {
    party: &XK_PARTY,
    number: "XK_WSH",
    agency: "XK_XKJG",
    agency_code: "XK_XKJGDM",
    source: "XK_LYDW",
    source_code: "XK_LYDWDM",
    decision_date: "XK_JDRQ",
    rest: &[
        "XK_XKWS", "XK_XKLB", "XK_XKZS", "XK_XKBH", "XK_NR", "XK_YXQZ", "XK_YXQZI", "XK_ZT",
    ],
};

/// Not content: the operation, and the envelope fields the platform assigns itself (taken, so
/// that a pulled record can be sent back as is, but not compared).
const NOT_CONTENT: [&str; 3] = ["OP", "ID", "SJC"];

/// Checks one pushed 2021 penalty (`license` false) or licence item as the platform does.
pub fn check_publication(license: bool, raw: &str) -> Checked {
    let f = if license { &LICENSE_PUB } else { &PENALTY_PUB };
    let mut it = match Item::parse(raw, Lang::Zh) {
        Ok(it) => it,
        Err(rejected) => return rejected,
    };
    let op = match it.text("OP").as_deref() {
        None | Some("I") | Some("U") => PushOp::Put,
        Some("D") => PushOp::Delete,
        Some(other) => {
            it.bad_code("OP", other, &["I", "U", "D"]);
            PushOp::Put
        }
    };
    let number = it.required(f.number);
    let agency_code = it.required(f.agency_code);
    it.uscc(f.agency_code, &agency_code);
    let key = format!(
        "{}:{}",
        agency_code.unwrap_or_default(),
        number.unwrap_or_default()
    );
    let mut known: Vec<&str> = vec!["OP", "BZ", "DFBM", "ID", "SJC"];
    known.extend(f.party.iter());
    known.extend([
        f.number,
        f.agency,
        f.agency_code,
        f.source,
        f.source_code,
        f.decision_date,
    ]);
    known.extend(f.rest.iter());
    it.unknown_fields(&known);
    // A withdrawal names the publication; the rest of the item is not looked at.
    if op == PushOp::Delete {
        return it.finish(key, op, &NOT_CONTENT);
    }
    check_party(&mut it, f.party);
    it.required(f.agency);
    it.required(f.source);
    let source_code = it.required(f.source_code);
    it.uscc(f.source_code, &source_code);
    let decided = it.required(f.decision_date);
    let decided = it.date(f.decision_date, &decided, b'/');
    it.text("BZ");
    let dfbm = it.text("DFBM");
    it.digits("DFBM", &dfbm, 6);
    let not_before = |it: &mut Item, field: &str, d: Option<chrono::NaiveDate>, what: &str| {
        if let (Some(d), Some(from)) = (d, decided)
            && d < from
        {
            it.problem(field, "E_RANGE", format!("{what}早于决定日期"));
        }
    };
    if license {
        it.required("XK_XKWS");
        let kind = it.required("XK_XKLB");
        let labels: Vec<&str> = LICENSE_KINDS.iter().map(|(_, l)| *l).collect();
        it.code("XK_XKLB", &kind, &labels);
        it.text("XK_XKZS");
        it.text("XK_XKBH");
        it.required("XK_NR");
        let from = it.required("XK_YXQZ");
        let from = it.date("XK_YXQZ", &from, b'/');
        let until = it.required("XK_YXQZI");
        let until = it.date("XK_YXQZI", &until, b'/');
        match (until, from) {
            (Some(u), Some(fr)) if u < fr => {
                it.problem("XK_YXQZI", "E_RANGE", "有效期至早于有效期自".into())
            }
            _ => not_before(&mut it, "XK_YXQZI", until, "有效期至"),
        }
        let status = it.required("XK_ZT");
        it.code("XK_ZT", &status, &["1", "2"]);
    } else {
        for field in ["CF_WFXW", "CF_SY", "CF_YJ", "CF_NR"] {
            it.required(field);
        }
        let labels: Vec<&str> = PENALTY_CATEGORIES.iter().map(|(_, l)| *l).collect();
        let cats: Vec<String> = it
            .required("CF_CFLB")
            .map(|c| c.split(';').map(|p| p.trim().to_string()).collect())
            .unwrap_or_default();
        for c in &cats {
            if !labels.contains(&c.as_str()) {
                it.bad_code("CF_CFLB", c, &labels);
            }
        }
        let has = |label: &str| cats.iter().any(|c| c == label);
        // Amounts in 万元; each is required with the category that imposes it.
        if !it.amount("CF_NR_FK") && has("罚款") {
            it.missing("CF_NR_FK");
        }
        if !it.amount("CF_NR_WFFF") && (has("没收违法所得") || has("没收非法财物")) {
            it.missing("CF_NR_WFFF");
        }
        let zkdx = it.text("CF_NR_ZKDX");
        if zkdx.is_none() && (has("暂扣许可证件") || has("吊销许可证件")) {
            it.missing("CF_NR_ZKDX");
        }
        let until = it.required("CF_YXQ");
        let until = it.date("CF_YXQ", &until, b'/');
        not_before(&mut it, "CF_YXQ", until, "处罚有效期");
        let publish = it.text("CF_GSJZQ");
        let publish = it.date("CF_GSJZQ", &publish, b'/');
        not_before(&mut it, "CF_GSJZQ", publish, "公示截止期");
    }
    it.finish(key, op, &NOT_CONTENT)
}

/// The 2021 party block: category label, then the identifiers that category needs.
fn check_party(it: &mut Item, k: &[&'static str; 13]) {
    it.required(k[0]);
    let category = it.required(k[1]);
    let labels = [
        PartyKind::Company.label(),
        PartyKind::Person.label(),
        PartyKind::Individual.label(),
    ];
    it.code(k[1], &category, &labels);
    let uscc = it.text(k[2]);
    let reg_no = it.text(k[3]);
    let org = it.text(k[4]);
    it.org_code(k[4], &org);
    for field in &k[5..9] {
        it.text(field);
    }
    let id_labels: Vec<&str> = ID_TYPES.iter().map(|(_, l)| *l).collect();
    let rep_id_type = it.text(k[9]);
    it.code(k[9], &rep_id_type, &id_labels);
    let rep_id = it.text(k[10]);
    if rep_id_type.as_deref() == Some("身份证") {
        it.resident_id(k[10], &rep_id);
    }
    let id_type = it.text(k[11]);
    it.code(k[11], &id_type, &id_labels);
    let id = it.text(k[12]);
    match category.as_deref() {
        Some("自然人") => {
            if id_type.is_none() {
                it.missing(k[11]);
            }
            if id.is_none() {
                it.missing(k[12]);
            }
        }
        Some(c @ ("法人及非法人组织" | "个体工商户")) => match uscc.as_deref() {
            None => it.missing(k[2]),
            // 个体工商户 registered before the USCC reform keep the placeholder and their 工商注册号.
            Some(PLACEHOLDER_USCC) if c == "个体工商户" => {
                if reg_no.is_none() {
                    it.missing(k[3]);
                }
            }
            Some(_) => it.uscc(k[2], &uscc),
        },
        _ => {}
    }
    if id_type.as_deref() == Some("身份证") {
        it.resident_id(k[12], &id);
    }
}

/// The fields of a published random-inspection result (`CC_` = 抽查, in the style of the 2021
/// 双公示 codes), plus the envelope the platform assigns itself.
const SPOT_RESULT_FIELDS: [&str; 14] = [
    "OP",
    "ID",
    "SJC",
    "BZ",
    "DFBM",
    "CC_RWBH",
    "CC_XDR_MC",
    "CC_XDR_LB",
    "CC_XDR_SHXYM",
    "CC_CCJG",
    "CC_JCRQ",
    "CC_GSRQ",
    "CC_JCJG",
    "CC_JCJGDM",
];

/// The labels the platform publishes results under (the canonical set, REFERENCE §6.4).
pub const SPOT_RESULT_LABELS: [&str; 14] = [
    "未发现问题",
    "发现问题经责令已改正",
    "发现问题待后续处理",
    "未发现开展本次抽查涉及的经营活动",
    "通过登记的住所(经营场所)无法联系",
    "不配合检查情节严重",
    "未按规定公示应当公示的信息",
    "公示信息隐瞒真实情况、弄虚作假",
    "已关闭停业或正在组织清算",
    "注销",
    "吊销",
    "撤销",
    "迁出",
    "违反其他相关规定",
];

/// Checks one pushed 双随机 result (`POST /api/v2/publish/spot-check-results`) as the platform
/// does. Key: `<CC_RWBH>:<CC_XDR_SHXYM>` (task number and the inspected subject's USCC).
pub fn check_spot_result(raw: &str) -> Checked {
    let mut it = match Item::parse(raw, Lang::Zh) {
        Ok(it) => it,
        Err(rejected) => return rejected,
    };
    let op = match it.text("OP").as_deref() {
        None | Some("I") | Some("U") => PushOp::Put,
        Some("D") => PushOp::Delete,
        Some(other) => {
            it.bad_code("OP", other, &["I", "U", "D"]);
            PushOp::Put
        }
    };
    let task = it.required("CC_RWBH");
    let uscc = it.required("CC_XDR_SHXYM");
    it.uscc("CC_XDR_SHXYM", &uscc);
    let key = format!("{}:{}", task.unwrap_or_default(), uscc.unwrap_or_default());
    it.unknown_fields(&SPOT_RESULT_FIELDS);
    // A withdrawal names the publication; the rest of the item is not looked at.
    if op == PushOp::Delete {
        return it.finish(key, op, &NOT_CONTENT);
    }
    it.required("CC_XDR_MC");
    let category = it.text("CC_XDR_LB");
    let labels = [
        PartyKind::Company.label(),
        PartyKind::Person.label(),
        PartyKind::Individual.label(),
    ];
    it.code("CC_XDR_LB", &category, &labels);
    let results: Vec<String> = it
        .required("CC_CCJG")
        .map(|c| c.split(';').map(|p| p.trim().to_string()).collect())
        .unwrap_or_default();
    for r in &results {
        if !SPOT_RESULT_LABELS.contains(&r.as_str()) {
            it.bad_code("CC_CCJG", r, &SPOT_RESULT_LABELS);
        }
    }
    let inspected = it.required("CC_JCRQ");
    let inspected = it.date("CC_JCRQ", &inspected, b'/');
    let published = it.text("CC_GSRQ");
    let published = it.date("CC_GSRQ", &published, b'/');
    if let (Some(p), Some(i)) = (published, inspected)
        && p < i
    {
        it.problem("CC_GSRQ", "E_RANGE", "公示日期早于检查日期".into());
    }
    it.required("CC_JCJG");
    let agency_code = it.text("CC_JCJGDM");
    it.uscc("CC_JCJGDM", &agency_code);
    it.text("BZ");
    let dfbm = it.required("DFBM");
    it.digits("DFBM", &dfbm, 6);
    it.finish(key, op, &NOT_CONTENT)
}

#[cfg(test)]
mod bench {
    use super::*;

    /// Server-side rendering speed of the heaviest stream; run in release with
    /// `cargo test --release --lib sim::credit::bench -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn render_throughput() {
        let cfg = crate::sim::SimConfig {
            records: 1_000_000,
            ..Default::default()
        };
        let world = std::sync::Arc::new(crate::sim::world::World::new(cfg.seed));
        let creds = std::sync::Arc::new(crate::sim::auth::Creds::from_env());
        let core = Core::new(crate::sim::Kind::Credit, &cfg, world, creds);
        let t = std::time::Instant::now();
        let (mut n, mut bytes) = (0u64, 0usize);
        for page in 0..200u64 {
            let p: Params = [
                ("cursor".to_string(), cursor_token(page * 1000)),
                ("limit".to_string(), "1000".to_string()),
            ]
            .into();
            let body = serve(&core, "/api/v2/penalties", &p)
                .ok()
                .flatten()
                .map(|p| p.body)
                .unwrap_or_default();
            bytes += body.len();
            n += 1000;
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{n} records in {secs:.2}s: {:.0} records/s, {:.0} bytes/record",
            n as f64 / secs,
            bytes as f64 / n as f64
        );
        assert!(bytes > 0);
    }
}
