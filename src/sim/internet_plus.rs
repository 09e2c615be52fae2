//! Dialect of the national 互联网+监管 exchange front database: rows with the DDL's snake_case
//! columns plus the `cd_*` envelope, served one exchange batch at a time (`i`/`u`/`d` operations),
//! authenticated with an HMAC-SHA256 header signature. See docs/simulators.md §2.

use super::auth::{TIMESTAMP_WINDOW_MS, canonical_query, hmac_sha256_hex, now_ms, same};
use super::core::{Core, Params, Payload, StreamDef};
use super::prim::{Rec, V, at, date, dt, json_fields, json_str, ymd};
use super::push::{Checked, Item, Lang, PushOp};
use super::records::{self, CHECK_MODES, CHECK_TYPES, Invalid, RESULTS, Src, break_party};
use super::stream::{Entry, Op};
use super::world::{PLACEHOLDER_USCC, Party, PartyKind};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use chrono::{Duration, NaiveDate};

use Invalid::*;

pub static STREAMS: &[StreamDef] = &[
    StreamDef {
        name: "check_action",
        rtype: "inspection",
        share: 50,
        salt: 11,
        invalid: &[
            BadUscc,
            BadResidentId,
            Missing,
            UnknownCode,
            BadDate,
            FewOfficers,
        ],
        missing: "check_action_name",
        code: ("check_form", "77"),
        date: ("check_date", "2025-02-30 09:00:00"),
    },
    StreamDef {
        name: "punish_action",
        rtype: "penalty",
        share: 30,
        salt: 12,
        invalid: &[BadUscc, BadResidentId, Missing, UnknownCode, BadDate],
        missing: "illegal_fact",
        code: ("punish_type", "77"),
        date: ("punish_decision_date", "2025-02-30"),
    },
    StreamDef {
        name: "force_action",
        rtype: "coercive_measure",
        share: 20,
        salt: 13,
        invalid: &[
            BadUscc,
            BadResidentId,
            Missing,
            UnknownCode,
            BadDate,
            FewOfficers,
        ],
        missing: "illegal_fact",
        code: ("force_kind", "行政强制处理"),
        date: ("start_date", "2025-02-30 09:00:00"),
    },
];

const CD_PREFIX: [&str; 3] = ["JCXW", "CFXW", "QZXW"];

pub fn upstream_id(_core: &Core, s: usize, index: u64) -> String {
    format!("{}{:012}", CD_PREFIX[s], index + 1)
}

fn business_code(s: usize, index: u64) -> String {
    format!("62{}{:012}", CD_PREFIX[s], index + 1)
}

pub fn key(core: &Core, s: usize, index: u64) -> String {
    let w = &core.world;
    match s {
        0 => business_code(0, index),
        1 => {
            let (a, n, _) = records::penalty_head(w, Src::InternetPlus, index);
            format!("{}:{}", w.agencies[a].uscc, n)
        }
        _ => {
            let (a, n, _) = records::coercive_head(w, 2, index);
            format!("{}:{}", w.agencies[a].uscc, n)
        }
    }
}

fn batch_day(k: u64) -> NaiveDate {
    date(2025, 3, 1) + Duration::days((k / 1000) as i64)
}

/// `YYYYMMDD` + 5-digit counter: the k-th batch of a table.
pub fn batch_id(k: u64) -> String {
    format!("{}{:05}", batch_day(k).format("%Y%m%d"), k % 1000 + 1)
}

pub fn parse_batch(id: &str) -> Option<u64> {
    if id.len() != 13 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let d = NaiveDate::parse_from_str(&id[..8], "%Y%m%d").ok()?;
    let counter: u64 = id[8..].parse().ok()?;
    let days = (d - date(2025, 3, 1)).num_days();
    if days < 0 || !(1..=1000).contains(&counter) {
        return None;
    }
    Some(days as u64 * 1000 + counter - 1)
}

fn subject(r: &mut Rec, core: &Core, agency: usize, p: &Party, item_code: &str) {
    let a = &core.world.agencies[agency];
    r.s("supervise_item_implement_code", item_code.to_string());
    r.s("implement_institution", a.name.clone());
    r.s("implement_institution_code", a.uscc.clone());
    r.s("supervise_object", p.name.clone());
    r.s("administrative_cp", p.name.clone());
    let (na, ce, code) = match p.kind {
        PartyKind::Person => ("1", "111", p.id_number.clone()),
        PartyKind::Company => ("2", "001", p.uscc.clone()),
        PartyKind::Individual => ("3", "001", p.uscc.clone()),
    };
    r.s("administrative_cp_na", na);
    r.s("administrative_cp_ce_type", ce);
    r.s("administrative_cp_ui_code", code.unwrap_or_default());
    if let Some(l) = &p.legal_rep {
        r.s("legal_person", l.clone());
    }
    r.s("address_registered", p.address.clone());
    r.s("area_number", a.division);
}

fn names_and_codes(core: &Core, ids: &[usize]) -> (V, V) {
    let os: Vec<_> = ids.iter().map(|i| &core.world.officers[*i]).collect();
    (
        V::Arr(os.iter().map(|o| V::s(o.name.clone())).collect()),
        V::Arr(os.iter().map(|o| V::s(o.cert.clone())).collect()),
    )
}

fn suffix(text: String, version: u32) -> String {
    if version == 0 {
        text
    } else {
        format!("{text}（更正{version}）")
    }
}

fn render(core: &Core, s: usize, e: &Entry, initial: u64, batch: &str, cd_time: &str) -> Rec {
    let w = &core.world;
    let i = e.index;
    let mut r = Rec::with_capacity(36);
    r.s("cd_id", upstream_id(core, s, i));
    r.s("cd_time", cd_time.to_string());
    r.s("cd_source", "620000JGXT");
    r.s("cd_batch", batch.to_string());
    r.s("cd_operation", e.op.code());
    r.s("record_unique_identity", business_code(s, i));
    if e.op == Op::Delete {
        match s {
            0 => r.s("check_action_code", business_code(0, i)),
            1 => {
                let (a, n, _) = records::penalty_head(w, Src::InternetPlus, i);
                r.s("implement_institution_code", w.agencies[a].uscc.clone());
                r.s("punish_doc_no", n);
            }
            _ => {
                let (a, n, _) = records::coercive_head(w, 2, i);
                r.s("implement_institution_code", w.agencies[a].uscc.clone());
                r.s("force_doc_no", n);
            }
        }
        return r;
    }
    let inv = core.invalid(s, i, initial);
    match s {
        0 => {
            let mut x = records::inspection(w, 2, i);
            if let Some(k) = inv {
                break_party(core.seed, i, &mut x.party, k);
                if k == FewOfficers {
                    x.officers.truncate(1);
                }
            }
            if let Some(p) = &x.plan_id {
                r.s("plan_id", p.clone());
            }
            subject(&mut r, core, x.agency, &x.party, &x.supervise_item_code);
            r.s("supervise_item_check_icode", x.check_list_code);
            r.s("check_action_name", suffix(x.name, e.version));
            r.s("check_action_code", business_code(0, i));
            r.s("check_form", x.check_form);
            r.s("check_type", CHECK_TYPES[x.check_type].1);
            r.s("check_mode", CHECK_MODES[x.check_mode].1);
            r.s("check_result", RESULTS[x.result].2);
            r.s("check_date", dt(x.check_at));
            let (names, codes) = names_and_codes(core, &x.officers);
            r.put("check_personnel", names);
            r.put("check_personnel_code", codes);
            r.s("submitted_date", dt(x.submitted_at));
            r.s(
                "submitted_personnel",
                w.officers[x.officers[0]].name.clone(),
            );
        }
        1 => {
            let mut p = records::penalty(w, Src::InternetPlus, i, &[0, 1, 2, 3, 4, 6, 7]);
            if let Some(k) = inv {
                break_party(core.seed, i, &mut p.party, k);
            }
            let item = records::supervise_item_code(core.seed, w.agencies[p.agency].dept, i % 12);
            subject(&mut r, core, p.agency, &p.party, &item);
            r.s("punish_action_code", business_code(1, i));
            r.s("punish_action_name", p.violation_type);
            r.s("check_action_code", business_code(0, i));
            r.s(
                "case_source",
                ["监督检查", "投诉举报", "其他部门移送"][(i % 3) as usize],
            );
            r.s("illegal_fact", p.facts);
            r.s("punish_basis", p.basis);
            r.s(
                "punish_procedure",
                if p.procedure == 1 {
                    "简易程序"
                } else {
                    "普通程序"
                },
            );
            r.put("is_hearing", V::Bool(p.fine.unwrap_or(0) >= 10_000));
            r.s("punish_doc_no", p.decision_number);
            r.s("punish_decision_date", ymd(p.decision_date, '-'));
            r.put(
                "punish_type",
                V::Arr(p.categories.iter().map(|c| V::s(*c)).collect()),
            );
            if let Some(f) = p.fine {
                r.put("fine_amount", V::n(f));
            }
            if let Some(c) = p.confiscated {
                r.put("confiscate_amount", V::n(c));
            }
            r.s("punish_result", suffix(p.content, e.version));
            r.s("punish_valid_date", ymd(p.valid_until, '-'));
            r.s(
                "submitted_date",
                dt(at(p.decision_date + Duration::days(3), 10 * 3600)),
            );
        }
        _ => {
            let mut c = records::coercive(w, 2, i);
            if let Some(k) = inv {
                break_party(core.seed, i, &mut c.party, k);
                if k == FewOfficers {
                    c.officers.truncate(1);
                }
            }
            let item = records::supervise_item_code(core.seed, w.agencies[c.agency].dept, i % 12);
            subject(&mut r, core, c.agency, &c.party, &item);
            r.s("force_action_code", business_code(2, i));
            r.s("force_action_name", c.name);
            r.s("check_action_code", business_code(0, i));
            r.s("illegal_fact", c.facts);
            r.s("force_basis", c.basis);
            r.s("force_doc_no", c.decision_number);
            r.s(
                "force_kind",
                if c.kind == 1 {
                    "行政强制措施"
                } else {
                    "行政强制执行"
                },
            );
            if c.kind == 1 {
                r.s("force_measure_type", records::MEASURE_TYPES[c.sub].1);
            } else {
                r.s("force_execute_type", records::EXECUTE_TYPES[c.sub].1);
            }
            r.s("force_result", suffix(c.result.to_string(), e.version));
            r.s("start_date", dt(at(c.start, 9 * 3600)));
            if let Some(x) = c.extension {
                r.put("extension_days", V::n(x));
            }
            if let Some(end) = c.end {
                r.s("end_date", dt(at(end, 17 * 3600)));
            }
            let (names, codes) = names_and_codes(core, &c.officers);
            r.put("force_personnel", names);
            r.put("force_personnel_code", codes);
        }
    }
    core.break_fields(s, &mut r, inv, false);
    r
}

pub fn auth(core: &Core, method: &Method, uri: &Uri, headers: &HeaderMap) -> Result<(), Response> {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let fail = |code: &str, msg: &str| core.error(StatusCode::UNAUTHORIZED, code, msg);
    let (Some(key), Some(ts), Some(nonce), Some(sig)) = (
        h("x-app-key"),
        h("x-timestamp"),
        h("x-nonce"),
        h("x-signature"),
    ) else {
        return Err(fail(
            "AUTH_MISSING",
            "missing X-App-Key, X-Timestamp, X-Nonce or X-Signature",
        ));
    };
    if !same(key, core.creds.get("XIEZHI_INTERNET_PLUS_APP_KEY")) {
        return Err(fail("APP_KEY_INVALID", "unknown app key"));
    }
    match ts.parse::<i64>() {
        Ok(t) if (now_ms() - t).abs() <= TIMESTAMP_WINDOW_MS => {}
        _ => {
            return Err(fail(
                "TIMESTAMP_EXPIRED",
                "X-Timestamp must be epoch milliseconds within 300 s of server time",
            ));
        }
    }
    if nonce.len() > 64 {
        return Err(fail("AUTH_MISSING", "X-Nonce longer than 64 characters"));
    }
    let message = format!(
        "{key}\n{ts}\n{nonce}\n{}\n{}\n{}",
        method.as_str(),
        uri.path(),
        canonical_query(uri.query(), None)
    );
    let expected = hmac_sha256_hex(core.creds.get("XIEZHI_INTERNET_PLUS_APP_SECRET"), &message);
    if !same(&sig.to_ascii_lowercase(), &expected) {
        return Err(fail("SIGN_INVALID", "signature mismatch"));
    }
    if !core.nonces.fresh(nonce) {
        return Err(fail(
            "NONCE_REUSED",
            "X-Nonce was already used within 10 minutes",
        ));
    }
    Ok(())
}

pub fn serve(core: &Core, path: &str, p: &Params) -> Result<Option<Payload>, Response> {
    let Some(name) = path.strip_prefix("/exchange/") else {
        return Ok(None);
    };
    let Some(s) = core.stream_index(name) else {
        return Ok(None);
    };
    let k = match p.get("batch").filter(|b| !b.is_empty()) {
        None => 0,
        Some(b) => match parse_batch(b) {
            Some(k) => k,
            None => {
                return Err(core.error(
                    StatusCode::BAD_REQUEST,
                    "BATCH_INVALID",
                    &format!("batch {b:?} is not YYYYMMDD + 5-digit counter"),
                ));
            }
        },
    };
    let (entries, count, initial) = {
        let st = core.stream(s);
        let entries: Vec<Entry> = st
            .batch_range(k)
            .map(|r| r.filter_map(|pos| st.entry(pos)).collect())
            .unwrap_or_default();
        (entries, st.batch_count(), st.initial)
    };
    let exists = k < count;
    let batch = batch_id(k);
    let next = if exists {
        batch_id(k + 1)
    } else {
        batch.clone()
    };
    let mut out = Vec::with_capacity(entries.len() * 1400 + 128);
    out.extend_from_slice(b"{\"batch\":");
    json_str(&mut out, &batch);
    out.extend_from_slice(b",\"next_batch\":");
    json_str(&mut out, &next);
    out.extend_from_slice(
        format!(",\"has_more\":{},\"rows\":[", exists && k + 1 < count).as_bytes(),
    );
    for (n, e) in entries.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        let cd_time =
            dt(at(batch_day(k), 8 * 3600 + (k % 1000) as u32 * 40)
                + Duration::seconds(n as i64 / 20));
        json_fields(&mut out, &render(core, s, e, initial, &batch, &cd_time).0);
    }
    out.extend_from_slice(b"]}");
    Ok(Some(Payload::json(out)))
}

// ---------- pushes (POST /exchange/check_action) ----------

/// Envelope columns the exchange fills itself: taken (a pulled row can be sent back as is) but
/// neither checked nor compared.
const ENVELOPE: [&str; 6] = [
    "cd_id",
    "cd_time",
    "cd_source",
    "cd_batch",
    "cd_operation",
    "record_unique_identity",
];

/// The check_action columns, as the pull renders them.
const CHECK_ACTION_COLUMNS: [&str; 24] = [
    "plan_id",
    "supervise_item_implement_code",
    "implement_institution",
    "implement_institution_code",
    "supervise_object",
    "administrative_cp",
    "administrative_cp_na",
    "administrative_cp_ce_type",
    "administrative_cp_ui_code",
    "legal_person",
    "address_registered",
    "area_number",
    "supervise_item_check_icode",
    "check_action_name",
    "check_action_code",
    "check_form",
    "check_type",
    "check_mode",
    "check_result",
    "check_date",
    "check_personnel",
    "check_personnel_code",
    "submitted_date",
    "submitted_personnel",
];

/// Labels of the canonical inspection-result set the exchange's check_result column takes.
const RESULT_LABELS: [&str; 14] = [
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

/// Checks one pushed check_action row as the exchange does.
pub fn check_row(raw: &str) -> Checked {
    let mut it = match Item::parse(raw, Lang::En) {
        Ok(it) => it,
        Err(rejected) => return rejected,
    };
    let op = match it.required("op").as_deref() {
        Some("i") | None => PushOp::Put,
        Some("u") => PushOp::Update,
        Some("d") => PushOp::Delete,
        Some(other) => {
            it.bad_code("op", other, &["i", "u", "d"]);
            PushOp::Put
        }
    };
    let key = it.required("check_action_code").unwrap_or_default();
    let mut known: Vec<&str> = vec!["op"];
    known.extend(ENVELOPE);
    known.extend(CHECK_ACTION_COLUMNS);
    it.unknown_fields(&known);
    let mut not_content = vec!["op"];
    not_content.extend(ENVELOPE);
    // A `d` row carries the key only, as the exchange's own `d` rows do.
    if op == PushOp::Delete {
        return it.finish(key, op, &not_content);
    }
    for column in [
        "plan_id",
        "supervise_object",
        "legal_person",
        "address_registered",
        "supervise_item_check_icode",
        "submitted_personnel",
    ] {
        it.text(column);
    }
    let item_code = it.required("supervise_item_implement_code");
    it.digits("supervise_item_implement_code", &item_code, 14);
    it.required("implement_institution");
    let agency = it.required("implement_institution_code");
    it.uscc("implement_institution_code", &agency);
    it.required("administrative_cp");
    let nature = it.required("administrative_cp_na");
    it.code("administrative_cp_na", &nature, &["1", "2", "3"]);
    let ce_type = it.required("administrative_cp_ce_type");
    it.code("administrative_cp_ce_type", &ce_type, &["001", "111"]);
    // 公民 are identified by resident ID, 法人 and 其他组织 by USCC.
    match (nature.as_deref(), ce_type.as_deref()) {
        (Some("1"), Some("001")) | (Some("2" | "3"), Some("111")) => it.problem(
            "administrative_cp_ce_type",
            "E_CODE",
            "administrative_cp_na 1 (公民) takes ce_type 111, 2 and 3 take 001".into(),
        ),
        _ => {}
    }
    let subject = it.required("administrative_cp_ui_code");
    // Without a usable ce_type the nature says which identifier the code must be.
    let ce_type = match ce_type.as_deref() {
        Some("001" | "111") => ce_type,
        _ => match nature.as_deref() {
            Some("1") => Some("111".to_string()),
            Some("2" | "3") => Some("001".to_string()),
            _ => None,
        },
    };
    match ce_type.as_deref() {
        // 个体工商户 (filed as 其他组织 here) registered before the USCC reform keep the
        // placeholder, as the national party rule allows; nobody else may use it.
        Some("001")
            if nature.as_deref() == Some("3") && subject.as_deref() == Some(PLACEHOLDER_USCC) => {}
        Some("001") => it.uscc("administrative_cp_ui_code", &subject),
        Some("111") => it.resident_id("administrative_cp_ui_code", &subject),
        _ => {}
    }
    let area = it.required("area_number");
    it.digits("area_number", &area, 6);
    it.required("check_action_name");
    let form = it.required("check_form");
    it.code("check_form", &form, &["01", "02"]);
    let kind = it.text("check_type");
    let kinds: Vec<&str> = CHECK_TYPES.iter().map(|(_, l)| *l).collect();
    it.code("check_type", &kind, &kinds);
    let mode = it.text("check_mode");
    let modes: Vec<&str> = CHECK_MODES.iter().map(|(_, l)| *l).collect();
    it.code("check_mode", &mode, &modes);
    let result = it.required("check_result");
    it.code("check_result", &result, &RESULT_LABELS);
    let checked_at = it.required("check_date");
    let checked_at = it.datetime("check_date", &checked_at);
    let submitted = it.text("submitted_date");
    let submitted = it.datetime("submitted_date", &submitted);
    if let (Some(c), Some(s)) = (checked_at, submitted)
        && s < c
    {
        it.problem(
            "submitted_date",
            "E_RANGE",
            "submitted_date is before check_date".into(),
        );
    }
    check_officers(&mut it);
    it.finish(key, op, &not_content)
}

/// `check_personnel` and `check_personnel_code`: parallel arrays of at least two officers.
fn check_officers(it: &mut Item) {
    let mut lists = Vec::new();
    for column in ["check_personnel", "check_personnel_code"] {
        let raw = it.raw(column).filter(|r| *r != "null");
        let list = match raw.map(serde_json::from_str::<Vec<serde_json::Value>>) {
            None => {
                it.missing(column);
                None
            }
            Some(Ok(v))
                if v.iter()
                    .all(|x| x.as_str().is_some_and(|s| !s.trim().is_empty())) =>
            {
                Some(v.len())
            }
            Some(_) => {
                it.problem(
                    column,
                    "E_TYPE",
                    "wrong type: expected an array of non-empty strings".into(),
                );
                None
            }
        };
        lists.push(list);
    }
    match (lists[0], lists[1]) {
        (Some(n), Some(m)) if n != m => it.problem(
            "check_personnel_code",
            "E_OFFICERS",
            format!("{m} certificate numbers for {n} officers"),
        ),
        (Some(n), _) if n < 2 => it.problem(
            "check_personnel",
            "E_OFFICERS",
            format!("an inspection needs at least two officers, got {n}"),
        ),
        _ => {}
    }
}
